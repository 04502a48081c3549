"""Processes the stack starts itself: spawn with a pid file, check, stop only our own."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ecowatch.files import private_dir


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
    """One long-running server process, known by a pid file and a marker in its command line.

    The marker (a path inside the state folder) makes ``stop`` refuse to signal a recycled pid
    that belongs to somebody else.
    """

    def __init__(self, name: str, pid_file: Path, log_file: Path, marker: str) -> None:
        self.name = name
        self.pid_file = pid_file
        self.log_file = log_file
        self.marker = marker

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
    ) -> subprocess.Popen:
        private_dir(self.log_file.parent)
        with open(self.log_file, "ab") as log:
            self._spawn_offset = log.tell()
            log.write(
                f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(argv)}\n".encode()
            )
            log.flush()
            proc = subprocess.Popen(
                list(argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # not killed by the terminal's Ctrl-C; `down` stops it
                env=env,
                cwd=cwd,
            )
        self.pid_file.write_text(str(proc.pid))
        self._child = proc
        return proc

    def starting(self) -> bool:
        """Is the process we just spawned still running? (Its command line may not show the
        marker yet, right after the fork, so ask the child itself.)"""
        child = getattr(self, "_child", None)
        return child is not None and child.poll() is None

    def stop(self, timeout: float = 20.0) -> bool:
        """SIGTERM, then SIGKILL after ``timeout``. True if a process of ours was running."""
        pid = self.pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and pid_alive(pid):
            time.sleep(0.1)
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
            while pid_alive(pid):
                time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)
        return True

    def log_since_spawn(self) -> str:
        """What the process wrote since we started it (earlier runs share the log file)."""
        try:
            with open(self.log_file, "rb") as f:
                f.seek(getattr(self, "_spawn_offset", 0))
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return "(no log yet)"
        return "\n".join(text.splitlines()[-lines:])


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
