"""The producer that outlives its broker (ecowatch.edges.kafka.Producer), against scripted aiokafka
producers: which failures replace the producer, that each record lands once it is in Kafka,
and that nothing is acknowledged before. The real broker restart is drilled in
tests/integration/test_drill.py."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    OutOfOrderSequenceNumber,
    UnknownProducerId,
)

from ecowatch.edges.kafka import KafkaAccess, Producer

ACCESS = KafkaAccess("127.0.0.1:1")


class ScriptedKafka:
    """One aiokafka producer: ``fail`` says, for each record sent, the error its delivery ends
    in (None: Kafka has it). ``refuse_start`` makes it fail to start (Kafka away)."""

    def __init__(
        self, log: list[tuple[int, bytes]], number: int, fail: Callable[[bytes], Exception | None]
    ) -> None:
        self.log, self.number, self.fail = log, number, fail
        self.refuse_start = False
        self.stopped = False

    async def start(self) -> None:
        if self.refuse_start:
            raise KafkaConnectionError("Unable connect to node")

    async def stop(self) -> None:
        self.stopped = True

    async def flush(self) -> None:
        return None

    async def partitions_for(self, topic: str) -> set[int]:
        return {0, 1}

    async def send(self, topic: str, value: bytes, key=None, partition=None) -> asyncio.Future:
        delivery = asyncio.get_running_loop().create_future()
        error = self.fail(value)
        if error is None:
            self.log.append((self.number, value))
            delivery.set_result(("metadata", value))
        else:
            delivery.set_exception(error)
        return delivery


class Broker:
    """The producers made so far, and what each delivered."""

    def __init__(self, script: Callable[[int, bytes], Exception | None]) -> None:
        self.script = script
        self.delivered: list[tuple[int, bytes]] = []
        self.made: list[ScriptedKafka] = []
        self.away_for = 0  # the next N producers fail to start

    def factory(self, access: KafkaAccess, client_id: str) -> ScriptedKafka:
        number = len(self.made)
        made = ScriptedKafka(self.delivered, number, lambda value: self.script(number, value))
        if number > 0 and self.away_for > 0:
            self.away_for -= 1
            made.refuse_start = True
        self.made.append(made)
        return made


def producer_for(broker: Broker) -> Producer:
    return Producer(ACCESS, "test", backoff=(0.001, 0.01), factory=broker.factory)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "fatal",
    [OutOfOrderSequenceNumber(), UnknownProducerId(), KafkaTimeoutError(), KafkaConnectionError()],
    ids=lambda e: type(e).__name__,
)
def test_a_failed_delivery_replaces_the_producer_and_sends_the_record_again(
    fatal: Exception,
) -> None:
    """The first producer's sender is broken for good (as aiokafka's is after an
    OutOfOrderSequenceNumber): every record it had lands through the second, once."""
    broker = Broker(lambda number, value: fatal if number == 0 else None)

    async def scenario() -> list[object]:
        producer = producer_for(broker)
        await producer.start()
        landed = [await producer.send("t", f"r{i}".encode()) for i in range(5)]
        results = await asyncio.gather(*landed)
        await producer.stop()
        assert producer.stats.renewals == 1  # one failure, one new producer, for five records
        assert producer.generation == 1
        return results

    results = asyncio.run(scenario())
    assert results == [("metadata", f"r{i}".encode()) for i in range(5)]
    assert sorted(broker.delivered) == [(1, f"r{i}".encode()) for i in range(5)]
    assert broker.made[0].stopped  # the broken one is retired


def test_a_record_waits_out_a_kafka_that_is_away_and_is_not_acknowledged_before() -> None:
    broker = Broker(lambda number, value: KafkaConnectionError() if number == 0 else None)
    broker.away_for = 3  # three new producers fail to start before Kafka is back

    async def scenario() -> None:
        producer = producer_for(broker)
        await producer.start()
        landed = await producer.send("t", b"held")
        await asyncio.sleep(0)
        assert not landed.done()  # nothing to acknowledge while no producer has it
        assert await landed == ("metadata", b"held")
        await producer.stop()

    asyncio.run(scenario())
    assert broker.delivered == [(4, b"held")]
    assert [p.refuse_start for p in broker.made] == [False, True, True, True, False]


def test_a_record_kafka_refuses_for_good_fails_and_no_producer_is_replaced() -> None:
    broker = Broker(lambda number, value: MessageSizeTooLargeError() if value == b"big" else None)

    async def scenario() -> None:
        producer = producer_for(broker)
        await producer.start()
        big = await producer.send("t", b"big")
        with pytest.raises(MessageSizeTooLargeError):
            await big
        assert await producer.send_and_wait("t", b"small") == ("metadata", b"small")
        assert producer.stats.renewals == 0 and producer.stats.refused == 1
        await producer.stop()

    asyncio.run(scenario())


def test_sends_made_while_a_new_producer_starts_wait_for_it() -> None:
    """Not handed to the broken producer, where they would only fail too."""
    broker = Broker(lambda number, value: OutOfOrderSequenceNumber() if number == 0 else None)
    broker.away_for = 2

    async def scenario() -> None:
        producer = producer_for(broker)
        await producer.start()
        first = await producer.send("t", b"a")
        await asyncio.sleep(0.001)  # the renewal is under way
        second = await producer.send("t", b"b")
        await asyncio.gather(first, second)
        await producer.stop()

    asyncio.run(scenario())
    assert {value for number, value in broker.delivered if number == 3} == {b"a", b"b"}
    assert all(number == 3 for number, _ in broker.delivered)
