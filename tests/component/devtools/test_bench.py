"""The pipeline bench's measuring parts (CPU from /proc, latency samples) and the CLI package's
shape: `python -m ecowatch.cli` runs, and the bench's measuring code imports no command."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from ecowatch.devtools.bench import Arrivals, CpuMeter, percentile, process_cpu, with_descendants


def test_process_cpu_reads_utime_and_stime_of_this_process() -> None:
    before = process_cpu(os.getpid())
    deadline = time.process_time() + 0.2
    while time.process_time() < deadline:
        pass
    after = process_cpu(os.getpid())
    assert before is not None and after is not None
    assert after - before >= 0.1


def test_process_cpu_of_a_process_that_is_gone_is_none() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert process_cpu(child.pid) is None


def test_a_process_counts_with_its_descendants() -> None:
    # A shell that starts a sleeper: the sleeper's CPU is the shell's service's.
    shell = subprocess.Popen(["sh", "-c", "sleep 5 & wait"])
    try:
        for _ in range(50):
            tree = with_descendants([shell.pid])
            if len(tree) > 1:
                break
            time.sleep(0.05)
        assert tree[0] == shell.pid and len(tree) == 2
    finally:
        shell.kill()
        shell.wait()


def test_cpu_meter_gives_the_cpu_used_between_start_and_stop() -> None:
    meter = CpuMeter({"me": [os.getpid()], "gone": [999_999_999]})
    meter.start()
    deadline = time.process_time() + 0.2
    while time.process_time() < deadline:
        pass
    used = meter.stop()
    assert used["me"] >= 0.1
    assert used["gone"] == 0


def test_a_reading_arrives_at_the_first_poll_that_holds_it() -> None:
    arrivals = Arrivals()
    arrivals.seen(10.0, {"D1": 0, "D2": 5})
    arrivals.seen(10.5, {"D1": 3, "D2": 10})
    assert arrivals.arrived("D1", 0) == 10.5
    assert arrivals.arrived("D2", 4) == 10.0
    assert arrivals.arrived("D2", 10) is None  # never seen: not a latency
    latencies = arrivals.latencies([("D1", 2, 9.9), ("D2", 7, 10.2), ("D2", 10, 10.3)])
    assert latencies == pytest.approx([0.3, 0.6])


def test_percentile_is_the_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 50) is None


def test_the_bench_measuring_code_imports_no_command() -> None:
    code = (
        "import sys, ecowatch.devtools.bench; "
        "print(any(m.startswith('ecowatch.cli') for m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_python_m_ecowatch_cli_runs() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "ecowatch.cli", "bench", "pipeline", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--workers" in out.stdout and "--rate" in out.stdout


def test_a_late_run_dates_each_devices_reading_ahead_and_the_next_run_after_it(tmp_path) -> None:
    from datetime import timedelta
    from types import SimpleNamespace

    from ecowatch.cli.bench import AHEAD_OF_WINDOW, _window

    settings = SimpleNamespace(state_dir=tmp_path)
    start, stop, ahead = _window(settings, 2000)  # type: ignore[arg-type]
    assert ahead is None and stop - start == timedelta(seconds=2001)
    late_start, late_stop, ahead = _window(settings, 2000, late=True)  # type: ignore[arg-type]
    assert late_start > stop and ahead == late_stop + AHEAD_OF_WINDOW
    # A live run after a late one: its readings newer than every device's reading ahead.
    live_start, _, _ = _window(settings, 2000)  # type: ignore[arg-type]
    assert live_start > ahead


def test_the_hours_a_runs_readings_fall_in_are_china_hours() -> None:
    from datetime import UTC, datetime, timedelta

    from ecowatch.cli.bench import hours_between

    start = datetime(2026, 12, 1, 8, 59, 3, tzinfo=UTC)  # 16:59:03 in China
    hours = hours_between(start, start + timedelta(seconds=2001))
    assert [h.hour for h in hours] == [16, 17]


def _load(tmp_path, monkeypatch, credentials: bool = True):  # type: ignore[no-untyped-def]
    """The real load generator with no devices: it needs no broker, and says all it says."""
    from datetime import UTC, datetime

    from ecowatch.cli.bench import _Load

    monkeypatch.setenv("ECOWATCH_STATE_DIR", str(tmp_path))
    if credentials:
        (tmp_path / "mosquitto").mkdir()
        (tmp_path / "mosquitto" / "credentials.json").write_text("{}")
    return _Load(0, 10, datetime(2026, 12, 1, tzinfo=UTC), 0.0, tmp_path / "bench-load.log")


def _until(check, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_the_load_generator_connects_waits_for_the_go_then_says_what_it_did(
    tmp_path, monkeypatch
) -> None:
    load = _load(tmp_path, monkeypatch)
    try:
        _until(lambda: load.check() or load.connected)
        time.sleep(0.5)  # without the go it publishes nothing
        load.check()
        assert load.final is None and load.child.running
        load.go()
        _until(lambda: load.check() or not load.child.running)
        load.check()  # exited 0: no failure
        assert load.final is not None and load.final["samples"] == []
        assert load.final["acked"] == 0 and "cpu_seconds" in load.final
    finally:
        load.stop()


def test_a_load_generator_that_fails_ends_the_bench_with_its_log(tmp_path, monkeypatch) -> None:
    from ecowatch.devtools.watch import StageFailed

    load = _load(tmp_path, monkeypatch, credentials=False)
    try:
        load.child.popen.wait(30)
        with pytest.raises(StageFailed, match="load generator exited with code 1") as failed:
            load.check()
        assert "no device credentials file" in str(failed.value)
    finally:
        load.stop()
