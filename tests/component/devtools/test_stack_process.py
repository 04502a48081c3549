"""The stack's services as processes (devtools/stack/process.py): known by a pid file and a
marker, started by one command and stopped by another, each start's part of a shared log."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from ecowatch.devtools.stack.process import ManagedProcess, pid_alive, wait_until

SERVICE = "import sys, time; print('listening', flush=True); time.sleep(60)  # {marker}"


def managed(folder: Path) -> ManagedProcess:
    return ManagedProcess("broker", folder / "broker.pid", folder / "broker.log", str(folder))


def serve(proc: ManagedProcess, folder: Path, code: str = SERVICE) -> None:
    proc.spawn([sys.executable, "-c", code.format(marker=folder)])
    assert wait_until(lambda: "listening" in proc.log_since_spawn(), 10, proc.starting)


def test_a_service_is_known_by_its_pid_file_and_stopped_by_another_command(
    tmp_path: Path,
) -> None:
    first = managed(tmp_path)
    serve(first, tmp_path)
    pid = first.pid()
    assert pid is not None and first.starting()
    # `ecowatch stack down`, a later command: no child of its own, only the pid file.
    later = managed(tmp_path)
    assert later.pid() == pid and not later.starting()
    assert later.stop(timeout=5)
    assert not pid_alive(pid) and not (tmp_path / "broker.pid").exists()
    assert later.pid() is None and not later.stop()


def test_a_recycled_pid_without_the_marker_is_not_ours(tmp_path: Path) -> None:
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / "broker.pid").write_text(str(stranger.pid))
        proc = managed(tmp_path)
        assert proc.pid() is None
        assert not proc.stop(timeout=1)
        assert stranger.poll() is None  # left alone
    finally:
        stranger.kill()
        stranger.wait()


def test_each_start_is_marked_in_the_shared_log_and_read_from_its_own_part(
    tmp_path: Path,
) -> None:
    proc = managed(tmp_path)
    proc.spawn([sys.executable, "-c", "print('first run')"])
    assert wait_until(lambda: "first run" in proc.log_since_spawn(), 10, lambda: True)
    serve(proc, tmp_path)
    assert "first run" not in proc.log_since_spawn()
    tail = proc.log_tail(lines=10)
    assert "first run" in tail and tail.count("--- ") == 2 and "starting: " in tail
    proc.stop(timeout=5)


def test_stop_kills_a_service_that_ignores_sigterm_after_the_timeout(tmp_path: Path) -> None:
    proc = managed(tmp_path)
    stubborn = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('listening', flush=True); time.sleep(60)  # {marker}"
    )
    serve(proc, tmp_path, stubborn)
    child = proc._child
    assert child is not None
    started = time.monotonic()
    assert proc.stop(timeout=0.5)
    assert 0.5 <= time.monotonic() - started < 5
    assert child.popen.wait(5) == -signal.SIGKILL


def test_a_service_that_never_ran_has_no_log_yet(tmp_path: Path) -> None:
    proc = managed(tmp_path)
    assert proc.log_tail() == "(no log yet)" and proc.log_since_spawn() == ""
