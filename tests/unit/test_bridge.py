"""The bridge's batches of readings: per partition, in order, and parsed back as they were."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka.partitioner import DefaultPartitioner

from ecowatch import topics
from ecowatch.ingest import bridge
from ecowatch.ingest.bridge import ReadingBatches, _Inbound
from ecowatch.schema import Measurement, Reading, ReadingBatch, ReadingSource, readings_in_record

T0 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
PARTITIONS = list(range(8))


def reading(site: str, n: int) -> Reading:
    return Reading(
        site=site,
        device=f"D-{site}",
        model="outfall_monitor",
        ts=T0 + timedelta(seconds=n),
        values={"w01018": Measurement(value=40.0 + n)},
        source=ReadingSource.MQTT,
        received_at=T0 + timedelta(seconds=n),
    )


class Producer:
    """Takes what is sent; each send's delivery is completed by the test."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, int]] = []

    async def partitions_for(self, topic: str) -> set[int]:
        return set(PARTITIONS)

    async def send(self, topic: str, value: bytes, partition: int) -> asyncio.Future:
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
