from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ecowatch.clock import (
    AcceleratedClock,
    ManualClock,
    ScaledClock,
    SystemClock,
    configured_clock,
)


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


def test_scaled_clock_is_anchored_to_the_wall_clock():
    start = datetime(2026, 11, 1, tzinfo=UTC)
    wall = iter([1000.0, 1010.0])
    clock = ScaledClock(start, speed=2880, epoch=1000.0, wall=lambda: next(wall))
    assert clock.now() == start
    assert clock.now() == start + timedelta(hours=8)  # 10 real seconds at 2880x
    assert clock.real_seconds(86_400) == 30
    assert clock.wall_at(start + timedelta(days=1)) == 1030.0


def test_scaled_clocks_of_separate_processes_agree_and_a_restart_resumes():
    """Two clocks made at different moments (two processes, or a worker restarted halfway
    through the month) read the same simulated time at the same wall time."""
    start = datetime(2026, 11, 1, tzinfo=UTC)
    now = [5000.0]
    first = ScaledClock(start, 100, epoch=4000.0, wall=lambda: now[0])
    now[0] = 6000.0
    restarted = ScaledClock(start, 100, epoch=4000.0, wall=lambda: now[0])
    assert first.now() == restarted.now() == start + timedelta(seconds=200_000)


def test_scaled_clock_stands_at_its_start_until_its_epoch():
    start = datetime(2026, 11, 1, tzinfo=UTC)
    wall = iter([990.0, 1000.0, 1001.0])
    clock = ScaledClock(start, speed=60, epoch=1000.0, wall=lambda: next(wall))
    assert clock.now() == clock.now() == start
    assert clock.now() == start + timedelta(minutes=1)


def test_scaled_clock_refuses_naive_times_and_bad_speeds():
    with pytest.raises(ValueError):
        ScaledClock(datetime(2026, 1, 1), 10, 0.0)
    with pytest.raises(ValueError):
        ScaledClock(datetime(2026, 1, 1, tzinfo=UTC), -1, 0.0)


def test_configured_clock_is_the_system_clock_unless_started():
    assert isinstance(configured_clock(None), SystemClock)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    clock = configured_clock(start, 60, 123.0)
    assert isinstance(clock, ScaledClock) and clock.epoch == 123.0 and clock.speed == 60
    with pytest.raises(ValueError):
        configured_clock(None, speed=2)
    with pytest.raises(ValueError):
        configured_clock(start, speed=2)  # no epoch: processes would disagree


def test_settings_choose_the_clock(monkeypatch, tmp_path):
    from ecowatch.config.settings import load_settings
    from ecowatch.errors import ConfigError

    monkeypatch.setenv("ECOWATCH_STATE_DIR", str(tmp_path))
    assert isinstance(load_settings().clock(), SystemClock)
    monkeypatch.setenv("ECOWATCH_CLOCK_START", "2026-11-01T00:00:00+08:00")
    monkeypatch.setenv("ECOWATCH_CLOCK_SPEED", "2880")
    with pytest.raises(ConfigError, match=r"ECOWATCH_CLOCK_EPOCH: .*required"):
        load_settings()
    monkeypatch.setenv("ECOWATCH_CLOCK_EPOCH", "1780000000")
    clock = load_settings().clock()
    assert isinstance(clock, ScaledClock)
    assert clock.start == datetime(2026, 10, 31, 16, tzinfo=UTC) and clock.speed == 2880
    monkeypatch.setenv("ECOWATCH_CLOCK_START", "2026-11-01T00:00:00")
    with pytest.raises(ConfigError, match=r"ECOWATCH_CLOCK_START: .*zone"):
        load_settings()
    monkeypatch.delenv("ECOWATCH_CLOCK_START")
    monkeypatch.delenv("ECOWATCH_CLOCK_EPOCH")
    with pytest.raises(ConfigError, match="ECOWATCH_CLOCK_SPEED"):
        load_settings()
