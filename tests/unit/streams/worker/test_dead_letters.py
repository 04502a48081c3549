"""The worker's dead letters: the one sender (ecowatch.ingest.dead_letters) over Faust's
producer, through a thin adapter."""

from __future__ import annotations

import asyncio

from ecowatch import topics
from ecowatch.clock import ManualClock
from ecowatch.ingest.dead_letters import DeadLetters
from ecowatch.schema import DeadLetter, ReadingSource, RejectReason
from ecowatch.streams.worker.app import FaustDeadLetterTopic


class FaustTopic:
    """What the adapter uses of a ``faust.Topic``: its name, and ``send`` returning the future
    of Kafka's acknowledgement (aiokafka's, which Faust hands back)."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes | None, bytes]] = []
        self.acks: list[asyncio.Future] = []

    def get_topic_name(self) -> str:
        return topics.READINGS_DLQ

    async def send(self, *, key: bytes | None = None, value: bytes) -> asyncio.Future:
        self.sent.append((key, value))
        self.acks.append(asyncio.get_running_loop().create_future())
        return self.acks[-1]


def test_a_record_the_worker_cannot_take_is_dead_lettered_through_faust(now) -> None:
    faust_topic = FaustTopic()
    letters = DeadLetters(
        FaustDeadLetterTopic(faust_topic),  # type: ignore[arg-type]
        source=ReadingSource.KAFKA,
        clock=ManualClock(now),
    )

    async def go() -> None:
        letter = await letters.send(
            b'{"schema": "nonsense"}', RejectReason.WRONG_TYPE, "", origin=topics.READINGS
        )
        assert letters.counts.total == 0  # in Faust's buffer, not yet in Kafka
        faust_topic.acks[0].set_result(None)
        await letter

    asyncio.run(go())
    ((key, value),) = faust_topic.sent
    assert key == topics.READINGS.encode()
    letter = DeadLetter.model_validate_json(value)
    assert (letter.source, letter.origin, letter.payload) == (
        "kafka",
        topics.READINGS,
        '{"schema": "nonsense"}',
    )
    assert letters.counts.as_dict()["dead_lettered_by_reason"] == {"wrong_type": 1}
