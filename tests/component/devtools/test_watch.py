"""Watching a command's stages: a child that exits, and a stage that stands still."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ecowatch.devtools.watch import (
    ChildProcess,
    FlowWatch,
    StageFailed,
    Supervisor,
    exit_description,
)

EDGES = [("acknowledged", "bridged"), ("bridged", "stored")]


def test_a_stage_moving_with_its_upstream_never_stalls() -> None:
    watch = FlowWatch(EDGES, stall_after=20)
    for t in range(0, 120, 2):
        assert watch.observe(t, {"acknowledged": t * 10, "bridged": t * 10, "stored": t * 9}) == []


def test_nothing_stored_20_s_after_readings_were_bridged_is_a_stall_told_once() -> None:
    watch = FlowWatch(EDGES, stall_after=20)
    assert watch.observe(0, {"acknowledged": 0, "bridged": 0, "stored": 0}) == []
    assert watch.observe(2, {"acknowledged": 10, "bridged": 10, "stored": 0}) == []
    assert watch.observe(21, {"acknowledged": 100, "bridged": 100, "stored": 0}) == []
    stalls = watch.observe(22, {"acknowledged": 110, "bridged": 110, "stored": 0})
    assert [(s.upstream, s.downstream, s.seconds) for s in stalls] == [("bridged", "stored", 20)]
    assert "no 'stored' for 20 s while 'bridged' moved" in stalls[0].what()
    assert watch.observe(30, {"acknowledged": 120, "bridged": 120, "stored": 0}) == []


def test_the_watch_rearms_once_the_stage_moves_again() -> None:
    watch = FlowWatch(EDGES, stall_after=20)
    watch.observe(0, {"bridged": 5, "stored": 0})
    assert watch.observe(20, {"bridged": 5, "stored": 0})
    watch.observe(21, {"bridged": 5, "stored": 5})  # caught up
    assert watch.observe(60, {"bridged": 5, "stored": 5}) == []  # nothing to do: not a stall
    watch.observe(61, {"bridged": 9, "stored": 5})
    assert watch.observe(81, {"bridged": 9, "stored": 5})


def test_a_stage_that_does_not_answer_counts_as_standing_still() -> None:
    watch = FlowWatch(EDGES, stall_after=20)
    watch.observe(0, {"bridged": 3, "stored": None})
    assert watch.observe(20, {"bridged": 4, "stored": None})


def test_downstream_draining_after_upstream_stopped_is_not_a_stall() -> None:
    watch = FlowWatch(EDGES, stall_after=20)
    watch.observe(0, {"bridged": 100, "stored": 0})
    for t in range(2, 60, 2):  # upstream done; downstream keeps moving
        assert watch.observe(t, {"bridged": 100, "stored": min(100, t * 3)}) == []


def test_exit_descriptions_name_the_signal() -> None:
    assert exit_description(1) == "exited with code 1"
    assert exit_description(-9) == "was killed by SIGKILL (exit code -9)"


def child(tmp_path: Path, code: str) -> ChildProcess:
    return ChildProcess("worker", [sys.executable, "-c", code], tmp_path / "worker.log")


def test_a_child_that_exits_is_told_with_its_log_tail_from_this_run(tmp_path: Path) -> None:
    (tmp_path / "worker.log").write_text("an earlier run's line\n")
    proc = child(tmp_path, "import sys; print('starting'); print('boom', flush=True); sys.exit(3)")
    proc.popen.wait(10)
    failure = proc.failure()
    assert failure is not None
    report = failure.report()
    assert report.startswith("worker exited with code 3; the last lines of its log")
    assert "  | boom" in report and "earlier run" not in report


def test_supervisor_ends_the_body_at_once_when_a_child_is_killed(tmp_path: Path) -> None:
    proc = child(tmp_path, "import time; print('up', flush=True); time.sleep(60)")
    supervisor = Supervisor([proc])
    cleaned: list[str] = []

    async def body() -> None:
        try:
            await asyncio.sleep(60)
        finally:
            cleaned.append("yes")

    async def scenario() -> None:
        asyncio.get_running_loop().call_later(0.5, proc.popen.send_signal, signal.SIGKILL)
        await asyncio.wait_for(supervisor.run(body()), timeout=5)

    with pytest.raises(StageFailed, match="worker was killed by SIGKILL") as failed:
        asyncio.run(scenario())
    assert "  | up" in str(failed.value)
    assert cleaned == ["yes"]


def test_supervisor_names_the_owner_of_a_stalled_stage(tmp_path: Path) -> None:
    proc = child(tmp_path, "import time; print('waiting for Kafka', flush=True); time.sleep(30)")
    now = [0.0]
    supervisor = Supervisor(
        [proc], FlowWatch(EDGES, stall_after=20), owners={"stored": proc}, monotonic=lambda: now[0]
    )
    try:
        supervisor.check_flow({"bridged": 1, "stored": 0})
        now[0] = 25
        with pytest.raises(StageFailed, match="worker stood still: no 'stored'"):
            supervisor.check_flow({"bridged": 2, "stored": 0})
    finally:
        proc.stop(timeout=1)


def _gone(pid: int) -> bool:
    """Exited (a zombie waiting for whoever reaps it counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


# A command as the demo is: Ctrl-C taken, its child asked (here: is it alive?), then stopped.
COMMAND = """
import signal, sys, time
from pathlib import Path
from ecowatch.devtools.watch import ChildProcess
sleeper = [sys.executable, "-c", "import time; time.sleep(30)"]
child = ChildProcess("worker", sleeper, Path(sys.argv[1]))
interrupted = []
signal.signal(signal.SIGINT, lambda *_: interrupted.append(True))
print(child.pid, flush=True)
while not interrupted:
    time.sleep(0.05)
time.sleep(0.3)
print("after Ctrl-C the child is", "alive" if child.popen.poll() is None else "gone", flush=True)
child.stop(timeout=5)
print("then stopped by the command:", child.popen.returncode, flush=True)
"""


def test_the_terminal_s_ctrl_c_reaches_the_command_and_not_its_child(tmp_path: Path) -> None:
    """Ctrl-C goes to the terminal's foreground process group. The child has a group of its
    own: it is stopped when and how the command says (the demo's worker answers for the
    week's table first)."""
    command = subprocess.Popen(
        [sys.executable, "-c", COMMAND, str(tmp_path / "worker.log")],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a terminal's foreground group of its own, not pytest's
    )
    try:
        assert command.stdout is not None
        pid = int(command.stdout.readline())
        assert os.getpgid(pid) == pid != os.getpgid(command.pid)
        os.killpg(command.pid, signal.SIGINT)  # as the terminal sends it
        out, _ = command.communicate(timeout=10)
    finally:
        command.kill()
        command.wait()
    assert out.splitlines() == [
        "after Ctrl-C the child is alive",
        f"then stopped by the command: {-signal.SIGTERM}",
    ]


def test_a_child_still_dies_with_the_command_that_started_it(tmp_path: Path) -> None:
    """Out of the command's group, it no longer gets the group's signals: a command killed
    outright (SIGKILL, a test's time-out) must not leave its worker behind all the same."""
    command = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; "
            "from ecowatch.devtools.watch import ChildProcess;"
            f"c = ChildProcess('worker', [sys.executable, '-c', 'import time; time.sleep(60)'],"
            f" Path({str(tmp_path / 'worker.log')!r})); print(c.pid, flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert command.stdout is not None
        pid = int(command.stdout.readline())
        assert not _gone(pid)
        command.kill()
        command.wait(5)
        deadline = time.monotonic() + 5
        while not _gone(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _gone(pid)
    finally:
        command.kill()
        command.wait()


def test_a_child_started_from_a_helper_thread_outlives_the_thread(tmp_path: Path) -> None:
    """The kernel sends the parent-death signal when the starting *thread* ends: a bridge a
    test restarted from a helper thread was stopped the moment that thread finished, and the
    readings its session held waited for nobody."""
    started: list[ChildProcess] = []
    helper = threading.Thread(
        target=lambda: started.append(child(tmp_path, "import time; time.sleep(30)"))
    )
    helper.start()
    helper.join()
    [proc] = started
    try:
        time.sleep(0.5)  # the signal, if any, comes at once
        assert proc.running, proc.log_tail()
    finally:
        proc.stop(5)


# -- the one child-process wrapper: what the commands, the stack, the bench and the tests share --


def test_a_command_s_stdout_can_be_kept_apart_from_its_log(tmp_path: Path) -> None:
    (tmp_path / "bridge.out").write_text('{"an earlier run": 1}\n')
    says = "import sys; print('{\"bridged\": 3}'); print('log', file=sys.stderr)"
    proc = ChildProcess(
        "bridge",
        [sys.executable, "-c", says],
        tmp_path / "bridge.log",
        output_path=tmp_path / "bridge.out",
    )
    proc.popen.wait(10)
    assert proc.output() == '{"bridged": 3}\n'  # this run's only
    assert proc.log_since_start() == "log\n"
    assert not proc.running


def test_stop_asks_then_kills_a_child_that_will_not_go(tmp_path: Path) -> None:
    stubborn = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ignoring SIGTERM', flush=True); time.sleep(60)"
    )
    proc = child(tmp_path, stubborn)
    deadline = time.monotonic() + 10
    while "ignoring" not in proc.log_since_start() and time.monotonic() < deadline:
        time.sleep(0.05)
    started = time.monotonic()
    proc.stop(timeout=0.5)
    assert proc.popen.returncode == -signal.SIGKILL
    assert 0.5 <= time.monotonic() - started < 5


def test_kill_is_a_sigkill_with_no_goodbye_and_says_the_exit_code(tmp_path: Path) -> None:
    proc = child(tmp_path, "import time; time.sleep(60)")
    assert proc.kill() == -signal.SIGKILL
    assert proc.failure() is not None and not proc.running
    assert proc.kill() == -signal.SIGKILL  # again: nothing to kill, the same answer


def test_a_service_child_runs_in_its_folder_and_outlives_its_command(tmp_path: Path) -> None:
    """The stack's services (die_with_parent=False) keep running after `ecowatch stack up`."""
    command = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; "
            "from ecowatch.devtools.watch import ChildProcess; "
            "c = ChildProcess('mosquitto', [sys.executable, '-c', "
            "'import os, time; print(os.getcwd(), flush=True); time.sleep(60)'], "
            f"Path({str(tmp_path / 'mosquitto.log')!r}), cwd=Path({str(tmp_path)!r}), "
            "die_with_parent=False); print(c.pid, flush=True)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    out, _ = command.communicate(timeout=10)
    pid = int(out)
    try:
        time.sleep(0.3)
        assert not _gone(pid)
        assert (tmp_path / "mosquitto.log").read_text().strip() == str(tmp_path)
    finally:
        os.kill(pid, signal.SIGKILL)
