"""The one dead-letter sender: the record it makes, its key, its counts, its log line, and its
acknowledgement rule, on a producer whose acknowledgements the test gives (delivery to a real
Kafka is tests/integration's: test_security, test_hj212_server, test_pipeline)."""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import Any

import pytest

from ecowatch import topics
from ecowatch.clock import ManualClock
from ecowatch.ingest.contract import DeadLetterBudget
from ecowatch.ingest.dead_letters import DeadLetterLost, DeadLetters
from ecowatch.schema import DeadLetter, ReadingSource, RejectReason

ORIGIN = "ecowatch/v1/S-OUT-001/33080200000001/reading"
SECRET = b'{"values": {"w01018": {"value": NaN}}, "note": "the payload itself"}'


class Kafka:
    """Takes each record; its acknowledgement is given by the test (``take``), or at once."""

    def __init__(self, at_once: bool = False, refuse_at_once: bool = False) -> None:
        self.records: list[tuple[str, bytes, bytes | None]] = []
        self.acks: list[asyncio.Future[Any]] = []
        self.at_once, self.refuse_at_once = at_once, refuse_at_once

    async def send(self, topic: str, value: bytes, *, key: bytes | None = None) -> asyncio.Future:
        if self.refuse_at_once:
            raise RuntimeError("the producer has stopped")
        self.records.append((topic, value, key))
        ack = asyncio.get_running_loop().create_future()
        if self.at_once:
            ack.set_result(None)
        self.acks.append(ack)
        return ack

    def take(self, error: Exception | None = None) -> None:
        ack = next(a for a in self.acks if not a.done())
        if error is None:
            ack.set_result(None)
        else:
            ack.set_exception(error)


def sender(kafka: Kafka, now) -> DeadLetters:
    return DeadLetters(kafka, source=ReadingSource.MQTT, clock=ManualClock(now))


def test_a_letter_keeps_the_message_and_goes_to_the_dead_letter_topic_keyed_by_origin(now):
    kafka = Kafka(at_once=True)
    letters = sender(kafka, now)

    async def go() -> None:
        await letters.send(SECRET, RejectReason.NOT_FINITE, "w01018: not finite", origin=ORIGIN)
        await letters.send(b"##garbage", RejectReason.BAD_HEADER, "", origin="tcp://x:1", key="x:1")

    asyncio.run(go())
    (topic, value, key), (_, _, other_key) = kafka.records
    assert (topic, key, other_key) == (topics.READINGS_DLQ, ORIGIN.encode(), b"x:1")
    letter = DeadLetter.model_validate_json(value)
    assert (letter.source, letter.origin, letter.reason) == ("mqtt", ORIGIN, "not_finite")
    assert letter.original() == SECRET and letter.received_at == now


def test_a_letter_is_counted_by_reason_once_kafka_has_it(now):
    kafka = Kafka()
    letters = sender(kafka, now)

    async def go() -> None:
        letter = await letters.send(SECRET, RejectReason.BAD_JSON, "", origin=ORIGIN)
        assert not letter.done() and letters.in_flight == 1
        assert letters.counts.total == 0  # handed over is not in Kafka yet
        kafka.take()
        await letter
        assert letters.in_flight == 0

    asyncio.run(go())
    assert letters.counts.as_dict() == {
        "dead_lettered": 1,
        "dead_lettered_by_reason": {"bad_json": 1},
        "suppressed_by_reason": {},
        "dead_letters_lost": 0,
    }


def test_a_letter_kafka_refuses_fails_its_future_and_is_counted_lost(now, caplog):
    kafka = Kafka()
    letters = sender(kafka, now)
    caplog.set_level(logging.INFO, logger="ecowatch.ingest.dead_letters")

    async def go() -> None:
        letter = await letters.send(SECRET, RejectReason.BAD_JSON, "bad", origin=ORIGIN)
        kafka.take(RuntimeError("TopicAuthorizationFailed"))
        with pytest.raises(DeadLetterLost, match="TopicAuthorizationFailed"):
            await letter

    asyncio.run(go())
    assert (letters.counts.total, letters.counts.lost) == (0, 1)
    lost = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(lost) == 1 and getattr(lost[0], "outage", None) == "kafka"  # folded in outages


def test_send_never_raises_a_letter_not_even_queued_is_lost(now):
    letters = sender(Kafka(refuse_at_once=True), now)

    async def go() -> asyncio.Future[None]:
        return await letters.send(SECRET, RejectReason.UNHANDLED, "ours", origin=ORIGIN)

    letter = asyncio.run(go())
    assert isinstance(letter.exception(), DeadLetterLost)
    assert (letters.counts.lost, letters.in_flight) == (1, 0)


def test_deliver_returns_once_kafka_has_it_and_raises_when_it_did_not(now):
    kafka = Kafka(at_once=True)
    letters = sender(kafka, now)

    async def go() -> None:
        await letters.deliver(SECRET, RejectReason.INVALID_VALUE, "", origin=ORIGIN)
        kafka.at_once = False
        delivering = asyncio.ensure_future(
            letters.deliver(SECRET, RejectReason.INVALID_VALUE, "", origin=ORIGIN)
        )
        while len(kafka.acks) < 2:
            await asyncio.sleep(0)
        kafka.take(RuntimeError("RecordTooLarge"))
        with pytest.raises(DeadLetterLost):
            await delivering

    asyncio.run(go())
    assert (letters.counts.total, letters.counts.lost) == (1, 1)


def test_flush_waits_for_kafka_and_writes_off_what_it_never_took(now):
    kafka = Kafka()
    letters = sender(kafka, now)

    async def go() -> list[asyncio.Future[None]]:
        sent = [
            await letters.send(SECRET, RejectReason.CRC_MISMATCH, "", origin=ORIGIN)
            for _ in range(3)
        ]
        asyncio.get_running_loop().call_later(0.05, kafka.take)
        await letters.flush(timeout=0.3)  # one taken, two never
        kafka.take()  # Kafka answers after the flush gave up: not counted twice
        await asyncio.sleep(0)
        return sent

    sent = asyncio.run(go())
    assert [f.exception() is None for f in sent] == [True, False, False]
    assert (letters.counts.total, letters.counts.lost, letters.in_flight) == (1, 2, 0)


def test_no_lost_letter_is_reported_as_never_retrieved(now, caplog):
    """A caller may leave its letter unawaited (the loss is counted and logged already)."""
    letters = sender(Kafka(refuse_at_once=True), now)

    async def go() -> None:
        await letters.send(SECRET, RejectReason.UNHANDLED, "", origin=ORIGIN)

    asyncio.run(go())
    gc.collect()
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]


def test_past_a_devices_budget_a_letter_is_counted_as_suppressed_not_sent(now):
    letters = DeadLetters(
        Kafka(),
        source=ReadingSource.HJ212,
        clock=ManualClock(now),
        budget=DeadLetterBudget(per_second=0, burst=2),
    )
    over = [letters.over_budget("MN1", RejectReason.RATE_LIMITED, 0.0) for _ in range(5)]
    assert over == [False, False, True, True, True]
    assert not letters.over_budget("MN2", RejectReason.RATE_LIMITED, 0.0)  # its own budget
    assert letters.counts.as_dict()["suppressed_by_reason"] == {"rate_limited": 3}


def test_one_log_line_per_letter_without_its_payload(now, caplog):
    caplog.set_level(logging.INFO, logger="ecowatch.ingest.dead_letters")
    letters = sender(Kafka(at_once=True), now)

    async def go() -> None:
        await letters.send(SECRET, RejectReason.NOT_FINITE, "w01018: " + "x" * 500, origin=ORIGIN)

    asyncio.run(go())
    (line,) = [r.getMessage() for r in caplog.records]
    assert ORIGIN in line and "not_finite" in line and "the payload itself" not in line
    assert len(line) < 400  # the detail cut
