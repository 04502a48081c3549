"""Watching the stages a command started: healthy is not enough, the readings must flow.

A command that starts a worker (the demo, the pipeline benchmark) must say at once when that
process dies, and also when a stage stands still while the stage before it moves (readings
bridged, nothing stored): both end the command with the stage's name, what happened and the
last lines of its log, rather than counts that stay at zero forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from ecowatch.edges.files import private_dir
from ecowatch.errors import EcowatchError

# How long a stage may stand still while the one before it has moved.
STALL_SECONDS = 20.0
LOG_TAIL_LINES = 15
# How often the children are looked at: a dead worker is told well within a second.
CHILD_CHECK_SECONDS = 0.25

T = TypeVar("T")


@dataclass(frozen=True)
class StageFailure:
    """A stage that died or stopped flowing: what to tell the person watching."""

    stage: str
    what: str
    log_path: Path | None = None
    log_tail: str = ""

    def report(self) -> str:
        head = f"{self.stage} {self.what}"
        if self.log_path is None:
            return head
        tail = "\n".join(f"  | {line}" for line in self.log_tail.splitlines()) or "  | (empty)"
        return f"{head}; the last lines of its log ({self.log_path}):\n{tail}"


class StageFailed(EcowatchError):
    """Ends a command whose stage failed; the message is the failure's report."""

    def __init__(self, failure: StageFailure) -> None:
        self.failure = failure
        super().__init__(failure.report())


def exit_description(code: int) -> str:
    """'exited with code 1' or 'was killed by SIGKILL' (Popen gives -N for signal N)."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name} (exit code {code})"
    return f"exited with code {code}"


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child, before it runs: SIGTERM when the command that started it dies, however
    it dies. A demo, bench or drill killed with SIGKILL (a test's time-out) left its worker
    behind, still in the topics' consumer groups, judging what the next tests published.
    The kernel sends it when the starting *thread* ends, so :class:`ChildProcess` asks for it
    only from the main thread."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def ecowatch_argv(*args: str) -> list[str]:
    """``ecowatch <args>`` as this interpreter runs it (the venv's, whatever PATH says)."""
    return [sys.executable, "-m", "ecowatch.cli", *args]


def read_log(path: Path, offset: int = 0) -> str | None:
    """What a log holds from ``offset`` on; None if it cannot be read (not written yet)."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")
    except OSError:
        return None


def last_lines(text: str, lines: int) -> str:
    return "\n".join(text.splitlines()[-lines:])


def stop_pid(pid: int, timeout: float, running: Callable[[], bool]) -> None:
    """SIGTERM, then SIGKILL if it still runs after ``timeout`` seconds; returns once it has
    gone. ``running`` says whether it still runs (a child's poll, which also reaps it, or a
    look at /proc for a service an earlier command started)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while running() and time.monotonic() < deadline:
        time.sleep(0.05)
    if running():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        while running():
            time.sleep(0.05)


class ChildProcess:
    """A process the command started, with its log; the log is read from where this run began
    (an earlier run may have written to the same file).

    It runs in a session (and process group) of its own, so the terminal's Ctrl-C reaches the
    command alone, which stops its children in its own order and time (the demo asks its
    worker for the week's settlement before stopping it): every command that starts one
    calls ``stop`` on its way out, and a command that dies takes it along (PDEATHSIG), unless
    ``die_with_parent`` is False (the stack's services outlive the command that starts them).

    Its stdout and stderr go to the log, unless ``output_path`` names a file of its own for
    stdout: what the process says back (a service's counts on its way out, the bench's load
    generator's progress) then stays apart from what it logs."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
        *,
        cwd: Path | None = None,
        die_with_parent: bool = True,
        output_path: Path | None = None,
    ) -> None:
        self.name = name
        self.log_path = log_path
        self.output_path = output_path
        self._output_offset = 0
        private_dir(log_path.parent)
        with contextlib.ExitStack() as files:
            log = files.enter_context(open(log_path, "ab"))
            self._log_offset = log.tell()
            stdout = log
            if output_path is not None:
                stdout = files.enter_context(open(output_path, "ab"))
                self._output_offset = stdout.tell()
            self.popen = subprocess.Popen(
                list(argv),
                stdout=stdout,
                stderr=subprocess.STDOUT if stdout is log else log,
                stdin=subprocess.DEVNULL,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                start_new_session=True,
                # From another thread the child would die with that thread: a bridge started
                # from a test's helper thread was stopped as soon as the thread ended.
                preexec_fn=_die_with_parent if die_with_parent and _on_main_thread() else None,
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def running(self) -> bool:
        return self.popen.poll() is None

    def log_since_start(self) -> str:
        return read_log(self.log_path, self._log_offset) or ""

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return last_lines(self.log_since_start(), lines)

    def output(self) -> str:
        """What it wrote to its stdout (``output_path``) since it started."""
        if self.output_path is None:
            return ""
        return read_log(self.output_path, self._output_offset) or ""

    def failure(self) -> StageFailure | None:
        """Its failure if it has exited (at all: a worker of a running command never should)."""
        code = self.popen.poll()
        if code is None:
            return None
        return StageFailure(self.name, exit_description(code), self.log_path, self.log_tail())

    def stall(self, what: str) -> StageFailure:
        return StageFailure(self.name, what, self.log_path, self.log_tail())

    def kill(self) -> int:
        """SIGKILL, no goodbye (a fault drill's); its exit code."""
        with contextlib.suppress(ProcessLookupError):
            self.popen.kill()
        return self.popen.wait()

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM, then SIGKILL: a worker left behind would hold its partitions."""
        if self.running:
            stop_pid(self.pid, timeout, lambda: self.popen.poll() is None)


@dataclass
class _Edge:
    upstream: str
    downstream: str
    up_count: int = 0
    down_count: int = 0
    waiting_since: float | None = None  # upstream moved and downstream has not since
    reported: bool = False


@dataclass(frozen=True)
class Stall:
    upstream: str
    downstream: str
    seconds: float

    def what(self) -> str:
        return (
            f"stood still: no '{self.downstream}' for {self.seconds:.0f} s "
            f"while '{self.upstream}' moved"
        )


@dataclass
class FlowWatch:
    """Counts of stages in a pipeline, sampled over time; a stage stalls when its count stands
    still for ``stall_after`` seconds after the stage before it has moved. Each stall is told
    once, and the watch re-arms when the stage moves again. Pure: the caller gives the time.

    ``edges`` are (upstream, downstream) names of the counts; a count of None (a stage that
    did not answer) is taken as no movement.
    """

    edges: Sequence[tuple[str, str]]
    stall_after: float = STALL_SECONDS
    _state: list[_Edge] = field(init=False)

    def __post_init__(self) -> None:
        self._state = [_Edge(up, down) for up, down in self.edges]

    def observe(self, now: float, counts: Mapping[str, int | None]) -> list[Stall]:
        stalls = []
        for edge in self._state:
            up, down = counts.get(edge.upstream), counts.get(edge.downstream)
            if down is not None and down != edge.down_count:
                edge.down_count, edge.waiting_since, edge.reported = down, None, False
            if up is not None and up != edge.up_count:
                edge.up_count = up
                if edge.waiting_since is None:
                    edge.waiting_since = now
            if (
                edge.waiting_since is not None
                and not edge.reported
                and now - edge.waiting_since >= self.stall_after
            ):
                edge.reported = True
                stalls.append(Stall(edge.upstream, edge.downstream, now - edge.waiting_since))
        return stalls


class Supervisor:
    """The children a command started and the flow between its stages, checked together.

    ``owners`` names, for a count, the child whose log explains it (stored → the worker), or
    the name of a stage that runs in this process (bridged → "bridge");
    ``check`` raises :class:`StageFailed` for the first failure it finds.
    """

    def __init__(
        self,
        children: Sequence[ChildProcess],
        flow: FlowWatch | None = None,
        owners: Mapping[str, ChildProcess | str] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.children = list(children)
        self.flow = flow
        self.owners = dict(owners or {})
        self._monotonic = monotonic

    def check_children(self) -> None:
        for child in self.children:
            failure = child.failure()
            if failure is not None:
                raise StageFailed(failure)

    def check_flow(self, counts: Mapping[str, int | None]) -> None:
        self.check_children()  # a dead worker explains a stall better than the stall does
        if self.flow is None:
            return
        for stall in self.flow.observe(self._monotonic(), counts):
            owner = self.owners.get(stall.downstream, stall.downstream)
            if isinstance(owner, ChildProcess):
                raise StageFailed(owner.stall(stall.what()))
            raise StageFailed(StageFailure(owner, stall.what()))

    async def watch(self, every: float = CHILD_CHECK_SECONDS) -> None:
        """Look at the children until one has exited, then raise its failure."""
        while True:
            self.check_children()
            await asyncio.sleep(every)

    async def run(self, body: Awaitable[T]) -> T:
        """Run ``body`` while watching the children: a child that exits cancels ``body`` (its
        own clean-up runs) and raises :class:`StageFailed` at once, whatever ``body`` was
        waiting for."""
        work = asyncio.ensure_future(body)
        watcher = asyncio.create_task(self.watch())
        try:
            await asyncio.wait({work, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if watcher.done():
                work.cancel()
                # Whatever the body's clean-up raises, the stage's failure is the story.
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await work
                watcher.result()  # raises the failure
            return await work
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, StageFailed):
                await watcher


def read_health(port: int, host: str = "127.0.0.1") -> dict | None:
    """A stage's /health as a dict, stalled (503) or not; None if it does not answer."""
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/health", timeout=1) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as exc:  # 503 while stalled: the same body
        try:
            return json.loads(exc.read())
        except ValueError:
            return None
    except (OSError, ValueError):
        return None
