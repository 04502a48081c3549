"""A stage that takes messages in and gets nothing out says so, and gives up if it stays so.

The bridge once stood alive and blind for minutes after a Kafka restart: its counters still,
no log line, no exit. ``StallWatch`` is what each long-running stage keeps about itself: work
is outstanding (taken in, not yet out) and nothing has come out for ``after`` seconds. Then
the stage says so in one line and in its ``/health`` (``"stalled": true``, since when, why);
if it is still so ``after`` seconds later, it cannot recover by itself and exits non-zero
(:data:`STALLED_EXIT_CODE`), so that whatever supervises it (``ecowatch up``, docker-compose,
systemd) starts it again. Pure: the caller gives the counts and the time.

(``ecowatch.devtools.watch.FlowWatch`` is the same idea seen from outside, across processes:
a command watching the stages it started.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from ecowatch.clock import Clock, SystemClock

# Seconds a stage may hold work without getting any out (ECOWATCH_STALL_SECONDS).
STALL_SECONDS = 30.0
# EX_TEMPFAIL: "try again later" (sysexits.h), what a supervisor should restart on.
STALLED_EXIT_CODE = 75


@dataclass
class StallWatch:
    """One stage's own view of whether it moves. ``observe`` is called every second or so."""

    stage: str
    after: float = STALL_SECONDS
    clock: Clock = field(default_factory=SystemClock)
    since: datetime | None = None  # stalled since (the last time anything came out)
    why: str = ""
    _out: int = -1
    _waiting_since: datetime | None = None  # work outstanding and nothing out since

    def observe(self, taken: int, done: int, why: Callable[[], str] = lambda: "") -> str | None:
        """``taken``: messages in so far; ``done``: out so far (stored, answered, dead-lettered).
        Returns the line to log when the stage stalls or moves again, else None."""
        now = self.clock.now()
        if done != self._out or taken <= done:
            self._out = done
            self._waiting_since = now if taken > done else None
            if self.since is not None:
                lasted = (now - self.since).total_seconds()
                self.since, self.why = None, ""
                return f"{self.stage} moves again after standing still for {lasted:.0f} s"
            return None
        if self._waiting_since is None:
            self._waiting_since = now
        held = (now - self._waiting_since).total_seconds()
        if self.since is None and held >= self.after:
            self.since, self.why = self._waiting_since, why() or "no reason known"
            return (
                f"{self.stage} stalled: {taken - done} message(s) taken in and nothing out "
                f"for {held:.0f} s ({self.why}); it exits for a restart if still so in "
                f"{self.after:.0f} s"
            )
        return None

    @property
    def stalled(self) -> bool:
        return self.since is not None

    def gave_up(self) -> bool:
        """Still stalled ``after`` seconds after saying so: a restart is the remedy left."""
        if self.since is None:
            return False
        return (self.clock.now() - self.since).total_seconds() >= 2 * self.after

    def as_dict(self) -> dict[str, object]:
        return {
            "stalled": self.stalled,
            "stalled_since": self.since.isoformat() if self.since else None,
            "stalled_why": self.why or None,
            "stall_after_s": self.after,
        }


@dataclass
class PartitionWatch:
    """A ready worker that holds no partition of its input reads nothing, and no count moves:
    a stall ``StallWatch`` cannot see. Kafka's group gives a worker none when there are more
    workers than partitions (fine), or when the group formed while Kafka was still loading
    its topics (a fault: the worker waits for its next metadata refresh). Said once after
    ``after`` seconds, and again when partitions come."""

    stage: str
    topic: str
    after: float = STALL_SECONDS
    clock: Clock = field(default_factory=SystemClock)
    since: datetime | None = None  # holding none since
    _said: bool = False

    def observe(self, ready: bool, held: int) -> str | None:
        """``ready``: recovered and not rebalancing; ``held``: partitions of ``topic`` held."""
        now = self.clock.now()
        if not ready or held:
            was = self.since
            self.since = None
            if held and self._said and was is not None:
                self._said = False
                lasted = (now - was).total_seconds()
                return (
                    f"{self.stage} holds {held} partition(s) of {self.topic} again "
                    f"after {lasted:.0f} s"
                )
            return None
        if self.since is None:
            self.since = now
        idle = (now - self.since).total_seconds()
        if not self._said and idle >= self.after:
            self._said = True
            return (
                f"{self.stage} holds no partition of {self.topic} for {idle:.0f} s: it reads "
                "nothing (more workers than partitions, or Kafka's group formed before its "
                "topics were loaded and a rejoin is awaited)"
            )
        return None
