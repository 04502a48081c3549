"""Time, injected: code that needs 'now' takes a clock, so tests and replays can drive it."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

# Monitoring data, deadlines and the week of the settlement are China time (UTC+8, no DST).
CHINA = ZoneInfo("Asia/Shanghai")


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that moves only when told to: for tests and replays."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start time")
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> None:
        self._now += delta

    def set(self, when: datetime) -> None:
        self._now = when


class AcceleratedClock:
    """Simulated time that runs ``speed`` times faster than the wall clock, from ``start``.

    A fleet at speed 60 lives a simulated hour every real minute: daily cycles, night-time
    discharges and quota periods can be watched in a demo or driven through a load test.
    """

    def __init__(
        self, start: datetime, speed: float, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        if start.tzinfo is None:
            raise ValueError("AcceleratedClock needs a timezone-aware start time")
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.start, self.speed = start, speed
        self._monotonic = monotonic
        self._t0 = monotonic()

    def now(self) -> datetime:
        return self.start + timedelta(seconds=(self._monotonic() - self._t0) * self.speed)

    def real_seconds(self, simulated: float) -> float:
        """How long to wait on the wall clock for ``simulated`` seconds to pass."""
        return simulated / self.speed


class ScaledClock:
    """Simulated time anchored to the wall clock: ``start + (wall - epoch) × speed``.

    ``epoch`` is the Unix time at which the simulated clock read ``start``. Anchored to the
    wall clock (not to a process's own start, as :class:`AcceleratedClock` is), every process
    given the same three values reads the same time, and a worker restarted halfway through
    a simulated month picks up where the month is, not where it began: what a soak's bridge,
    worker and devices need to agree on (``ECOWATCH_CLOCK_*``, devtools only). Until
    ``epoch`` it stands at ``start``: processes started ahead of the others (a worker that
    takes seconds to be ready, which are hours at a soak's speed) wait for the month with
    them, instead of finding every device silent for hours before it has begun.
    """

    def __init__(
        self,
        start: datetime,
        speed: float,
        epoch: float,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if start.tzinfo is None:
            raise ValueError("ScaledClock needs a timezone-aware start time")
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.start, self.speed, self.epoch = start, speed, epoch
        self._wall = wall

    def now(self) -> datetime:
        return self.start + timedelta(seconds=max(0.0, self._wall() - self.epoch) * self.speed)

    def real_seconds(self, simulated: float) -> float:
        """How long to wait on the wall clock for ``simulated`` seconds to pass."""
        return simulated / self.speed

    def wall_at(self, when: datetime) -> float:
        """The Unix time at which this clock reads ``when``."""
        return self.epoch + (when - self.start).total_seconds() / self.speed

    def describe(self) -> str:
        started = datetime.fromtimestamp(self.epoch, UTC).isoformat(timespec="seconds")
        return f"{self.start.isoformat()} at {started}, {self.speed:g}x"


def configured_clock(
    start: datetime | None, speed: float = 1.0, epoch: float | None = None
) -> Clock:
    """The clock a process runs on: the system clock, or (``start`` given) a scaled one."""
    if start is None:
        if speed != 1:
            raise ValueError("a clock speed other than 1 needs a start")
        return SystemClock()
    if epoch is None:
        raise ValueError("a clock with a start needs its epoch, for processes to agree")
    return ScaledClock(start, speed, epoch)


def data_time(seen: tuple[datetime, datetime] | None, wall: datetime) -> datetime:
    """A site's data clock now: its newest data time, ``seen[0]``, moved on by the real time
    since it arrived at ``seen[1]``. The clock a site's deadlines and hold period run on: the
    enforce agent's ticks, and officers' actions (the API). Stamped on the wall clock, an
    action in a city replaying the past (the demo's is days back) took the hold period as long
    passed, closing the case at once, and fell in another week of the settlement than the
    escalation it answered. The wall clock only for a site this worker has not heard from."""
    return wall if seen is None else seen[0] + (wall - seen[1])
