"""Every input record reaches the agent: the worker's own ledger of the offsets it has taken.

Faust 0.15 can leave records of a partition out of the stream while a restarted worker
recovers its tables: it resumes the flow before it seeks back to the committed offsets, and
what was fetched in between is dropped (faust-streaming issues #216 and #606 are this
family). The drill showed it: after ``kill -9`` of the worker, offsets 2148–2153 of each
readings partition never reached the new one, its commit then stood still at the gap, and
six readings per device were acknowledged to their devices but never stored.

So the agent does not trust the stream to be gapless. Per input partition it keeps the next
offset it expects, in a changelogged table co-partitioned with the input (so the partition's
next owner knows it too). A record that arrives past it means the ones between were not
handed over: the agent reads them back from Kafka and takes them first, in order. A record
below it was handed over again (a seek back, a redelivery): it is taken again, and the
ingest contract's one-reading-per-time makes that harmless.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka.partitioner import DefaultPartitioner

_partitioner = DefaultPartitioner()


@dataclass(frozen=True)
class Missing:
    """Offsets [start, stop) of a partition that the stream skipped."""

    topic: str
    partition: int
    start: int
    stop: int

    def __len__(self) -> int:
        return self.stop - self.start


def ledger_key(topic: str, partition: int, partitions: int) -> bytes:
    """The ledger's key for one input partition: a key that Kafka's default partitioner (the
    one that placed the sites' records, and places the table's changelog records) sends to the
    same partition number, so the entry moves with the partition it describes."""
    every = list(range(partitions))
    for salt in range(100_000):
        key = f"{topic}#{partition}#{salt}".encode()
        if _partitioner(key, every, every) == partition:
            return key
    raise ValueError(f"no ledger key found for partition {partition} of {partitions}")


def partition_of(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner sends a record with ``key`` to."""
    every = list(range(partitions))
    return _partitioner(key, every, every)


def next_offset_value(offset: int) -> bytes:
    return str(offset).encode()


def next_offset_of(raw: bytes | None) -> int | None:
    return int(raw) if raw else None


def missing_before(topic: str, partition: int, expected: int | None, offset: int) -> Missing | None:
    """The records skipped before ``offset``, if the ledger expected an earlier one."""
    if expected is None or offset <= expected:
        return None  # the first record seen, the next one, or one handed over again
    return Missing(topic, partition, expected, offset)
