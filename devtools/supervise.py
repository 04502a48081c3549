"""Keeping the platform's processes running: whichever exits is started again, with a growing
wait between quick failures, and one line each time.

A stage that stands still exits on purpose (``ecowatch.stall``); a worker killed by the OOM
killer, a bridge whose broker vanished, a server hit by a bug: none of these may need a human.
``ecowatch up`` keeps the worker, the bridge, the HJ 212 server and the console this way; the
storm drill keeps its stages so; docker-compose (``restart: unless-stopped``) and systemd
(``Restart=always``) do the same for a deployment.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ecowatch.devtools.watch import ChildProcess, exit_description
from ecowatch.stall import STALLED_EXIT_CODE


@dataclass(frozen=True)
class Backoff:
    """The wait before a restart: ``first`` after a run shorter than ``settled``, doubling
    with each quick failure up to ``cap``; a run that lasted ``settled`` starts afresh."""

    first: float = 1.0
    cap: float = 30.0
    settled: float = 60.0

    def wait(self, quick_failures: int) -> float:
        if quick_failures <= 0:
            return 0.0
        return min(self.cap, self.first * 2 ** (quick_failures - 1))


def exit_reason(code: int) -> str:
    """Why a kept process ended, in the words of its restart line."""
    if code == STALLED_EXIT_CODE:
        return f"stood still and exited for a restart (code {code})"
    return exit_description(code)


class KeptProcess:
    """One process, started again whenever it exits, until :meth:`stop`. ``say`` gets one line
    per exit and restart; ``monotonic`` is the clock (seconds)."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        env: Mapping[str, str] | None,
        say: Callable[[str], None],
        monotonic: Callable[[], float],
        backoff: Backoff = Backoff(),
    ) -> None:
        self.name, self.argv, self.log_path, self.env = name, list(argv), log_path, env
        self._say, self._now, self.backoff = say, monotonic, backoff
        self.child: ChildProcess | None = None
        self.restarts = 0
        self.exits: list[int] = []
        self._quick = 0
        self._started_at = 0.0
        self._restart_at: float | None = None
        self._stopped = False

    def start(self) -> ChildProcess:
        self.child = ChildProcess(self.name, self.argv, self.log_path, env=self.env)
        self._started_at = self._now()
        self._restart_at = None
        return self.child

    @property
    def running(self) -> bool:
        return self.child is not None and self.child.popen.poll() is None

    def tend(self) -> None:
        """Look once: an exit is said and its restart planned; a planned restart due is made."""
        if self._stopped or self.child is None:
            return
        now = self._now()
        code = self.child.popen.poll()
        if code is not None and self._restart_at is None:
            self.exits.append(code)
            lasted = now - self._started_at
            self._quick = self._quick + 1 if lasted < self.backoff.settled else 1
            wait = self.backoff.wait(self._quick)
            self._restart_at = now + wait
            self._say(
                f"{self.name} (pid {self.child.pid}) {exit_reason(code)} after {lasted:.0f} s; "
                f"restart {self.restarts + 1} in {wait:.0f} s (log {self.log_path})"
            )
        if self._restart_at is not None and now >= self._restart_at:
            self.restarts += 1
            child = self.start()
            self._say(f"{self.name} restarted as pid {child.pid}")

    def stop(self, timeout: float = 30.0) -> None:
        self._stopped = True
        if self.child is not None:
            self.child.stop(timeout)


async def keep(kept: Sequence[KeptProcess], stop: asyncio.Event, every: float = 0.25) -> None:
    """Tend the processes until ``stop`` is set (then the caller stops them, in its order)."""
    while not stop.is_set():
        for process in kept:
            process.tend()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)
