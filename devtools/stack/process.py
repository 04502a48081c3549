"""Processes the stack starts itself: spawn with a pid file, check, stop only our own."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ecowatch.devtools.watch import ChildProcess, last_lines, read_log, stop_pid
from ecowatch.edges.files import private_dir


class Progress:
    """Prints which step of a long install or start is running, and for how long it has run."""

    def __init__(self, echo: Callable[[str], None] = print) -> None:
        self._start = time.monotonic()
        self._echo = echo

    def step(self, service: str, message: str) -> None:
        self._echo(f"[stack +{time.monotonic() - self._start:5.0f}s] {service}: {message}")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); it is not running. But a Go program (influxd)
    # shutting down shows its main thread as a zombie while its other threads still hold
    # the port: a zombie with other threads left is still running.
    try:
        with open(f"/proc/{pid}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] != "Z":
                return True
        return len(os.listdir(f"/proc/{pid}/task")) > 1
    except (OSError, IndexError):
        return False


def _cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


class ManagedProcess:
    """One long-running server process, known by a pid file and a marker in its command line:
    ``ecowatch stack down`` stops what an earlier command started. The process this command
    spawns is a :class:`ChildProcess` that outlives it (no PDEATHSIG).

    The marker (a path inside the state folder) makes ``stop`` refuse to signal a recycled pid
    that belongs to somebody else.
    """

    def __init__(self, name: str, pid_file: Path, log_file: Path, marker: str) -> None:
        self.name = name
        self.pid_file = pid_file
        self.log_file = log_file
        self.marker = marker
        self._child: ChildProcess | None = None  # spawned by this command

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        if pid_alive(pid) and self.marker in _cmdline(pid):
            return pid
        return None

    def spawn(
        self, argv: Sequence[str], env: dict[str, str] | None = None, cwd: Path | None = None
    ) -> ChildProcess:
        private_dir(self.log_file.parent)
        with open(self.log_file, "ab") as log:
            log.write(
                f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(argv)}\n".encode()
            )
        # Not killed by the terminal's Ctrl-C (a session of its own) nor with this command:
        # `down` stops it.
        self._child = ChildProcess(
            self.name, argv, self.log_file, env, cwd=cwd, die_with_parent=False
        )
        self.pid_file.write_text(str(self._child.pid))
        return self._child

    def starting(self) -> bool:
        """Is the process we just spawned still running? (Its command line may not show the
        marker yet, right after the fork, so ask the child itself.)"""
        return self._child is not None and self._child.running

    def stop(self, timeout: float = 20.0) -> bool:
        """SIGTERM, then SIGKILL after ``timeout``. True if a process of ours was running."""
        pid = self.pid()
        if pid is not None:
            # By pid: an earlier command may have started it, so it need not be our child.
            stop_pid(pid, timeout, lambda: pid_alive(pid))
        self.pid_file.unlink(missing_ok=True)
        return pid is not None

    def log_since_spawn(self) -> str:
        """What the process wrote since we started it (earlier runs share the log file)."""
        return self._child.log_since_start() if self._child is not None else ""

    def log_tail(self, lines: int = 25) -> str:
        text = read_log(self.log_file)
        return "(no log yet)" if text is None else last_lines(text, lines)


def wait_until(check: Callable[[], bool], timeout: float, alive: Callable[[], bool]) -> bool:
    """Poll ``check`` until it passes, the time runs out, or the process dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        if not alive():
            return False
        time.sleep(0.2)
    return check()
