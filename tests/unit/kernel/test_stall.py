"""A stage's own stall watch (ecowatch/stall.py): when it says it stands still, when it moves
again, and when it gives up for a restart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ecowatch.clock import ManualClock
from ecowatch.stall import PartitionWatch, StallWatch


def watch(after: float = 30.0) -> tuple[StallWatch, ManualClock]:
    clock = ManualClock(datetime(2026, 12, 6, 8, 0, tzinfo=UTC))
    return StallWatch("bridge", after, clock), clock


def seconds(clock: ManualClock, n: float) -> None:
    clock.advance(timedelta(seconds=n))


def test_work_held_with_nothing_out_is_a_stall_said_once_then_a_restart() -> None:
    w, clock = watch()
    assert w.observe(100, 100) is None
    assert w.observe(120, 100) is None  # 20 taken in, none out yet
    seconds(clock, 29)
    assert w.observe(140, 100, lambda: "Kafka away") is None
    seconds(clock, 1)
    line = w.observe(150, 100, lambda: "Kafka away")
    assert line is not None and "50 message(s)" in line and "Kafka away" in line
    assert w.stalled and w.as_dict()["stalled"] is True
    assert w.as_dict()["stalled_since"] == "2026-12-06T08:00:00+00:00"
    assert w.observe(160, 100) is None  # said once
    seconds(clock, 29)
    assert not w.gave_up()
    seconds(clock, 1)
    assert w.gave_up()  # still so 30 s after saying it


def test_an_idle_stage_is_not_stalled_however_long_nothing_comes() -> None:
    w, clock = watch()
    w.observe(10, 10)
    seconds(clock, 3600)
    assert w.observe(10, 10) is None and not w.stalled


def test_a_slow_stage_that_still_gets_work_out_is_not_stalled() -> None:
    w, clock = watch()
    for done in range(1, 101):
        seconds(clock, 5)
        assert w.observe(done + 500, done) is None  # a backlog, draining
    assert not w.stalled


def test_moving_again_ends_the_stall_in_one_line() -> None:
    w, clock = watch(after=10)
    w.observe(5, 0)
    seconds(clock, 10)
    assert w.observe(5, 0) is not None
    seconds(clock, 5)
    line = w.observe(5, 5)
    assert line == "bridge moves again after standing still for 15 s"
    assert not w.stalled and not w.gave_up()
    assert w.as_dict()["stalled_since"] is None


def partitions(after: float = 30.0) -> tuple[PartitionWatch, ManualClock]:
    clock = ManualClock(datetime(2026, 12, 6, 8, 0, tzinfo=UTC))
    return PartitionWatch("worker", "readings", after, clock), clock


def test_a_ready_worker_without_partitions_says_so_once_and_again_when_they_come() -> None:
    w, clock = partitions()
    assert w.observe(ready=True, held=0) is None
    seconds(clock, 29)
    assert w.observe(ready=True, held=0) is None
    seconds(clock, 1)
    line = w.observe(ready=True, held=0)
    assert line is not None and "no partition of readings for 30 s" in line
    seconds(clock, 60)
    assert w.observe(ready=True, held=0) is None  # said once
    line = w.observe(ready=True, held=3)
    assert line is not None and "holds 3 partition(s) of readings again after 90 s" in line
    assert w.observe(ready=True, held=3) is None


def test_a_worker_recovering_or_rebalancing_is_not_counted_as_idle() -> None:
    w, clock = partitions()
    assert w.observe(ready=False, held=0) is None
    seconds(clock, 100)
    assert w.observe(ready=False, held=0) is None
    assert w.observe(ready=True, held=0) is None  # the wait starts when it is ready
    seconds(clock, 29)
    assert w.observe(ready=True, held=0) is None
    assert w.observe(ready=True, held=8) is None  # came in time: nothing was said
