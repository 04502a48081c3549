"""Keeping processes running (devtools/supervise.py): real child processes, a manual clock for
the waits between restarts."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from ecowatch.devtools.supervise import Backoff, KeptProcess, exit_reason
from ecowatch.stall import STALLED_EXIT_CODE


def test_the_wait_doubles_with_quick_failures_up_to_its_cap() -> None:
    b = Backoff(first=1, cap=30)
    assert [b.wait(n) for n in range(8)] == [0, 1, 2, 4, 8, 16, 30, 30]


def test_a_stalled_stage_is_named_as_such() -> None:
    assert "stood still" in exit_reason(STALLED_EXIT_CODE)
    assert exit_reason(-9) == "was killed by SIGKILL (exit code -9)"


def wait_exit(process: KeptProcess) -> None:
    assert process.child is not None
    process.child.popen.wait(10)


def test_a_process_that_exits_is_started_again_with_one_line_each_time(tmp_path: Path) -> None:
    now = [1000.0]
    lines: list[str] = []
    process = KeptProcess(
        "bridge",
        [sys.executable, "-c", f"import sys; sys.exit({STALLED_EXIT_CODE})"],
        tmp_path / "bridge.log",
        None,
        lines.append,
        lambda: now[0],
        Backoff(first=1, cap=30, settled=60),
    )
    first = process.start()
    wait_exit(process)
    process.tend()  # seen: said, restart planned in 1 s
    assert len(lines) == 1 and "stood still" in lines[0] and "restart 1 in 1 s" in lines[0]
    process.tend()
    assert process.restarts == 0  # not before its time
    now[0] += 1
    process.tend()
    assert process.restarts == 1 and process.child is not None
    assert process.child.pid != first.pid and lines[-1].startswith("bridge restarted as pid")
    wait_exit(process)
    process.tend()
    assert "restart 2 in 2 s" in lines[-1]  # a second quick failure waits longer
    now[0] += 2
    process.tend()
    assert process.restarts == 2 and process.exits == [STALLED_EXIT_CODE] * 2
    process.stop()


def test_a_process_that_ran_a_while_is_restarted_at_once_after_a_kill(tmp_path: Path) -> None:
    now = [0.0]
    lines: list[str] = []
    process = KeptProcess(
        "worker",
        [sys.executable, "-c", "import time; time.sleep(60)"],
        tmp_path / "worker.log",
        None,
        lines.append,
        lambda: now[0],
    )
    process.start()
    now[0] += 600  # settled
    assert process.child is not None
    process.child.popen.kill()
    wait_exit(process)
    process.tend()
    assert "killed by SIGKILL" in lines[0] and "restart 1 in 1 s" in lines[0]
    now[0] += 1
    process.tend()
    assert process.running
    started = time.monotonic()
    process.stop(timeout=5)
    assert not process.running and time.monotonic() - started < 5
    process.tend()  # stopped: never started again
    assert not process.running
