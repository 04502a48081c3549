"""The bridge's batches of readings: per partition, in order, and parsed back as they were."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka.partitioner import DefaultPartitioner

from ecowatch import topics
from ecowatch.clock import ManualClock
from ecowatch.config.catalogue import Catalogue
from ecowatch.ingest.contract import DeadLetterBudget, ReadingRate
from ecowatch.ingest.mqtt import bridge
from ecowatch.ingest.mqtt.bridge import MqttBridge, ReadingBatches, _Inbound
from ecowatch.schema import (
    DeadLetter,
    Reading,
    ReadingBatch,
    readings_in_record,
)
from tests import factories

T0 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
PARTITIONS = list(range(8))


def reading(site: str, n: int) -> Reading:
    """Reading ``n`` of a site's monitor, a second after the one before."""
    return factories.reading({"w01018": 40.0 + n}, T0 + timedelta(seconds=n), site, f"D-{site}")


class Producer:
    """Takes what is sent; each send's delivery is completed by the test."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, int | None]] = []

    async def partitions_for(self, topic: str) -> set[int]:
        return set(PARTITIONS)

    async def send(
        self, topic: str, value: bytes, partition: int | None = None, key: bytes | None = None
    ) -> asyncio.Future:
        self.sent.append((topic, value, partition))
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def run_batches(
    adds: list[Reading], settle: float | None = None
) -> tuple[Producer, list[list[int]]]:
    producer, acked = Producer(), []

    async def go() -> None:
        batches = ReadingBatches(producer, lambda d, items: acked.append([i.mid for i in items]))
        for n, r in enumerate(adds):
            await batches.add(r.site, r.to_json(), _Inbound("t", b"", n, 1))
        await asyncio.sleep(bridge.BATCH_LINGER_S * 4 if settle is None else settle)

    asyncio.run(go())
    return producer, acked


def test_a_sites_readings_go_where_its_key_would_in_order():
    adds = [reading(site, n) for n in range(5) for site in ("S-OUT-001", "S-OUT-002")]
    producer, acked = run_batches(adds)
    partitioner = DefaultPartitioner()
    for topic, value, partition in producer.sent:
        assert topic == topics.READINGS
        got = ReadingBatch.model_validate_json(value).readings
        assert {partitioner(r.site.encode(), PARTITIONS, PARTITIONS) for r in got} == {partition}
        for site in {r.site for r in got}:
            assert [r for r in got if r.site == site] == [r for r in adds if r.site == site]
    assert sorted(mid for batch in acked for mid in batch) == list(range(10))


def test_a_batch_goes_after_its_linger_even_when_small():
    producer, acked = run_batches([reading("S-OUT-001", 0)])
    assert len(producer.sent) == 1 and acked == [[0]]


def test_a_full_batch_goes_at_once(monkeypatch):
    monkeypatch.setattr(bridge, "BATCH_READINGS", 3)
    producer, acked = run_batches([reading("S-OUT-001", n) for n in range(7)], settle=0.0)
    # Two full batches went without waiting; the seventh reading waits for its linger.
    assert [len(m) for m in acked] == [3, 3]
    assert len(producer.sent) == 2


def test_a_batch_is_told_apart_from_one_reading():
    one = reading("S-OUT-001", 0).to_json()
    both = ReadingBatch.json_of([one, reading("S-OUT-001", 1).to_json()])
    assert ReadingBatch.is_batch(both) and not ReadingBatch.is_batch(one)
    assert ReadingBatch.model_validate_json(both).readings[0] == Reading.from_json(one)


@pytest.mark.parametrize("bad", [b"", b"{}", b'{"schema":"ecowatch.reading/1"}'])
def test_anything_else_is_not_a_batch(bad):
    assert not ReadingBatch.is_batch(bad)


def test_a_record_says_how_many_readings_it_holds():
    one = reading("S-OUT-001", 0).to_json()
    assert readings_in_record(one) == 1
    assert readings_in_record(ReadingBatch.json_of([one, one, one])) == 3
    assert readings_in_record(b"garbage") == 1  # dead-lettered as one record


def test_a_device_past_its_allowance_is_dead_lettered_under_its_budget_and_acknowledged(
    catalogue: Catalogue,
) -> None:
    """One device flooding the bridge: past its allowance (a burst of 40 here) its readings are
    dead-lettered (rate_limited) within its dead-letter budget, then counted as suppressed;
    every message is acknowledged, and its neighbour's readings still go through."""
    site, device = "S-OUT-001", "33080200000001"
    neighbour = next(
        e for d, e in catalogue.devices.items() if d != device and "w01018" in e.device.pollutants
    )
    clock = ManualClock(T0)
    payload = b'{"ts": "2026-11-30T07:59:00+00:00", "values": {"w01018": {"value": 42.5}}}'
    producer, acked = Producer(), []

    async def go() -> MqttBridge:
        b = MqttBridge(
            mqtt_host="127.0.0.1",
            mqtt_port=1,
            username="ecowatch-bridge",
            password="",
            producer=producer,  # type: ignore[arg-type]
            catalogue=catalogue,
            clock=clock,
            reading_rate=ReadingRate(factor=4, resend_burst=0),
        )
        b.dead_letters.budget = DeadLetterBudget(per_second=0, burst=5)
        b._client.ack = lambda mid, qos: acked.append(mid)  # type: ignore[method-assign]
        for mid in range(60):
            await b._handle(_Inbound(topics.reading_topic(site, device), payload, mid, 1))
        other = topics.reading_topic(neighbour.site.id, neighbour.device.id)
        await b._handle(_Inbound(other, payload, 60, 1))
        await asyncio.sleep(bridge.BATCH_LINGER_S * 4)
        return b

    b = asyncio.run(go())
    assert sorted(acked) == list(range(61))  # handled, so acknowledged: none is redelivered
    stats = b.stats.as_dict()
    assert (stats["received"], stats["bridged"]) == (61, 41)
    assert stats["dead_lettered_by_reason"] == {"rate_limited": 5}
    assert stats["suppressed_by_reason"] == {"rate_limited": 15}
    letters = [
        DeadLetter.model_validate_json(v) for t, v, _ in producer.sent if t != topics.READINGS
    ]
    assert {(d.reason, d.origin) for d in letters} == {
        ("rate_limited", topics.reading_topic(site, device))
    }
    assert f"device '{device}' sent 41 readings" in letters[0].detail
    assert b.limiter.refused == {device: 20}


def test_the_bridge_takes_its_allowance_from_the_settings(monkeypatch, catalogue) -> None:
    monkeypatch.setenv("ECOWATCH_READING_RATE_FACTOR", "2.5")
    b = MqttBridge(
        mqtt_host="127.0.0.1",
        mqtt_port=1,
        username="ecowatch-bridge",
        password="",
        producer=Producer(),  # type: ignore[arg-type]
        catalogue=catalogue,
        clock=ManualClock(T0),
    )
    assert b.limiter.rate == ReadingRate(factor=2.5)


class RefusingKafka(Producer):
    """Takes readings; refuses every dead letter (a topic the principal may not write)."""

    async def send(
        self, topic: str, value: bytes, partition: int | None = None, key: bytes | None = None
    ) -> asyncio.Future:
        done = await super().send(topic, value, partition=partition, key=key)
        if topic == topics.READINGS_DLQ:
            done = asyncio.get_running_loop().create_future()
            done.set_exception(RuntimeError("TopicAuthorizationFailed"))
        return done


def test_a_message_is_acknowledged_only_once_kafka_has_its_dead_letter(catalogue) -> None:
    """Mosquitto redelivers what was not acknowledged: a dead letter Kafka did not take leaves
    its message unacknowledged, counted lost, never counted dead-lettered."""
    site, device = "S-OUT-001", "33080200000001"
    good = b'{"ts": "2026-11-30T07:59:00+00:00", "values": {"w01018": {"value": 42.5}}}'
    acked: list[int] = []

    async def go() -> MqttBridge:
        b = MqttBridge(
            mqtt_host="127.0.0.1",
            mqtt_port=1,
            username="ecowatch-bridge",
            password="",
            producer=RefusingKafka(),  # type: ignore[arg-type]
            catalogue=catalogue,
            clock=ManualClock(T0),
        )
        b._client.ack = lambda mid, qos: acked.append(mid)  # type: ignore[method-assign]
        await b._handle(_Inbound(topics.reading_topic(site, device), b"{not json", 1, 1))
        await b._handle(_Inbound(topics.reading_topic(site, device), good, 2, 1))
        await asyncio.sleep(bridge.BATCH_LINGER_S * 4)
        return b

    b = asyncio.run(go())
    assert acked == [2]  # the reading; the bad message waits for its redelivery
    stats = b.stats.as_dict()
    assert (stats["dead_lettered"], stats["dead_letters_lost"], stats["bridged"]) == (0, 1, 1)
    assert b.progress() == (2, 1)  # the bad message is outstanding
