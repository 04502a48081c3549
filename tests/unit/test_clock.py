from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ecowatch.clock import AcceleratedClock, ManualClock


def test_accelerated_clock_runs_speed_times_faster():
    ticks = iter([100.0, 100.0, 110.0])  # t0, then two readings of the monotonic clock
    start = datetime(2026, 11, 23, 22, 0, tzinfo=UTC)
    clock = AcceleratedClock(start, speed=60, monotonic=lambda: next(ticks))
    assert clock.now() == start
    assert clock.now() == start + timedelta(minutes=10)  # 10 real seconds at 60x
    assert clock.real_seconds(600) == 10


def test_clocks_refuse_naive_times_and_bad_speeds():
    with pytest.raises(ValueError):
        ManualClock(datetime(2026, 1, 1))
    with pytest.raises(ValueError):
        AcceleratedClock(datetime(2026, 1, 1, tzinfo=UTC), speed=0)


def test_manual_clock_moves_only_when_told():
    clock = ManualClock(datetime(2026, 1, 1, tzinfo=UTC))
    clock.advance(timedelta(hours=1))
    assert clock.now().hour == 1
