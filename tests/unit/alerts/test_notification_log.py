"""The worker's notification log keeps what stops a second send for as long as the
notification's record can come back, and no longer; the deliver agent sweeps only the keys of
the partition it is processing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from ecowatch import topics
from ecowatch.alerts.delivery import (
    KEEP_SENT,
    DeliveryRecord,
    DeliveryStatus,
    TableDeliveryLog,
    case_of_key,
    written_at,
)
from ecowatch.clock import ManualClock
from ecowatch.schema import Audience, CaseStep
from ecowatch.streams.worker.enforcement import sent_keys_of
from ecowatch.streams.worker.offsets import partition_of

T0 = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
PARTITIONS = 4


def sent(key: str, at: datetime) -> DeliveryRecord:
    return DeliveryRecord(
        key=key,
        case_id=case_of_key(key.encode()),
        step=CaseStep.REMIND,
        audience=Audience.ENTERPRISE,
        recipient="E-001",
        role="enterprise",
        channel=0,
        scheme="json",
        status=DeliveryStatus.SENT,
        attempt=1,
        at=at,
    )


def key_of(n: int) -> str:
    return f"20261123090000-S-OUT-{n:03d}-w01018-hourly_over_limit:remind:enterprise:0"


def test_the_log_keeps_an_entry_as_long_as_its_record_can_come_back():
    assert topics.RETENTION + topics.SEGMENT + timedelta(hours=1) == KEEP_SENT
    assert topics.topic_config()["retention.ms"] == str(7 * 24 * 3600 * 1000)


def test_entries_are_stamped_with_the_clocks_time_and_expire_after_keep_sent():
    clock = ManualClock(T0)
    table: dict[bytes, bytes] = {}
    log = TableDeliveryLog(table, clock=clock)
    first, later = key_of(1), key_of(2)
    log.begin(first, "E-001", 0, "json")
    log.append(sent(first, T0))
    assert written_at(table[first.encode()]) == T0
    clock.advance(timedelta(days=3))
    log.append(sent(later, clock.now()))  # a later notification: stamped later
    clock.set(T0 + KEEP_SENT)
    assert log.sweep(lambda key: True).deleted == 0  # exactly KEEP_SENT old: still kept
    clock.advance(timedelta(seconds=1))
    swept = log.sweep(lambda key: True)
    assert (swept.deleted, swept.stamped) == (1, 0)
    assert list(table) == [later.encode()] and log.was_sent(later, "E-001", 0, "json")
    # Swept, the first is forgotten: its record is out of Kafka, nothing can deliver it again.
    assert not log.was_sent(first, "E-001", 0, "json")
    clock.advance(timedelta(days=3))
    assert log.sweep(lambda key: True).deleted == 1 and table == {}


def test_an_entry_of_an_older_version_is_stamped_at_first_sight_then_ages():
    clock = ManualClock(T0)
    key = key_of(1).encode()
    table = {key: json.dumps({"sent": [["E-001", 0, "json"]], "begun": []}).encode()}
    log = TableDeliveryLog(table, clock=clock)
    assert written_at(table[key]) is None
    assert log.sweep(lambda k: True).stamped == 1
    assert written_at(table[key]) == T0 and log.was_sent(key_of(1), "E-001", 0, "json")
    clock.advance(KEEP_SENT + timedelta(seconds=1))
    assert log.sweep(lambda k: True).deleted == 1 and table == {}
    assert written_at(b"not json") is None and written_at(b'{"at": "yesterday"}') is None


class ChangelogTable(dict[bytes, bytes]):
    """A Faust table without the partitioner, as the deliver agent sees it: a write or a
    delete goes to the changelog partition of the record being processed (``current``), and
    outside a record's processing Faust refuses it."""

    def __init__(self) -> None:
        super().__init__()
        self.current: int | None = None
        self.changelog: list[tuple[int, bytes, bytes | None]] = []

    def __setitem__(self, key: bytes, value: bytes) -> None:
        if self.current is None:
            raise TypeError("Cannot modify table key from outside of stream iteration")
        self.changelog.append((self.current, key, value))
        super().__setitem__(key, value)

    def __delitem__(self, key: bytes) -> None:
        if self.current is None:
            raise TypeError("Cannot modify table key from outside of stream iteration")
        self.changelog.append((self.current, key, None))
        super().__delitem__(key)


def own_partition(key: bytes) -> int:
    return partition_of(case_of_key(key).encode(), PARTITIONS)


def test_the_sweep_deletes_only_the_keys_of_the_partition_being_processed():
    clock = ManualClock(T0)
    table = ChangelogTable()
    log = TableDeliveryLog(table, clock=clock)
    keys = [key_of(n) for n in range(40)]
    for key in keys:  # each written while its own record (keyed by case id) is processed
        table.current = own_partition(key.encode())
        log.append(sent(key, T0))
    partitions = {own_partition(k.encode()) for k in keys}
    assert len(partitions) > 1  # the keys are spread: the test means something
    clock.advance(KEEP_SENT + timedelta(minutes=1))
    table.changelog.clear()

    table.current = 0
    swept = log.sweep(sent_keys_of(0, PARTITIONS))
    of_0 = [k.encode() for k in keys if own_partition(k.encode()) == 0]
    assert swept.deleted == len(of_0) > 0
    # Every tombstone went to the partition of its key, and the others' keys are all there.
    assert all(p == own_partition(k) for p, k, _ in table.changelog)
    assert sorted(table) == sorted(k.encode() for k in keys if own_partition(k.encode()) != 0)

    for p in sorted(partitions - {0}):
        table.current = p
        log.sweep(sent_keys_of(p, PARTITIONS))
    assert table == {}
    assert all(p == own_partition(k) and v is None for p, k, v in table.changelog)
