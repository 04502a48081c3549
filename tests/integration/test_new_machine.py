"""What a newcomer meets: a state folder made from nothing, and a demo that says when a stage
dies. The session's stack and worker start from an emptied state folder (conftest), so these
run on the path of a machine that never ran ecowatch."""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

from ecowatch.config.settings import Settings
from tests.integration.conftest import Service, wait_for

# A counts line of the demo: time, simulated time, acknowledged, bridged, dead, stored, ...
COUNTS = re.compile(
    r"^\d\d:\d\d:\d\d\s+\d\d-\d\d \d\d:\d\d\s+(?P<acknowledged>\d+)\s+(?P<bridged>\d+)\s+"
    r"(?P<dead>\d+)\s+(?P<stored>\d+|\?)"
)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_state_folder_is_made_private_by_the_processes_that_use_it(
    settings: Settings, worker: Service
) -> None:
    state = settings.state_dir
    assert mode(state) == 0o700
    assert mode(state / "faust" / settings.app_id) == 0o700  # the worker's own, from nothing
    for secret in (state / "stack.env", state / "mosquitto" / "credentials.json"):
        assert mode(secret) == 0o600, secret
    for service in ("mosquitto", "kafka", "influxdb"):
        assert mode(state / service) == 0o700, service


class Demo:
    """`ecowatch demo` as a newcomer runs it, its output read line by line as it comes."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ecowatch.cli", "demo", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def output(self) -> str:
        return "\n".join(self.lines)

    def stored(self) -> int:
        counts = [m for line in self.lines if (m := COUNTS.match(line))]
        return max((int(m["stored"]) for m in counts if m["stored"] != "?"), default=0)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def test_the_demo_stores_readings_and_says_at_once_that_its_worker_was_killed(
    settings: Settings, worker: Service, device_passwords: dict[str, str]
) -> None:
    # A worker, consumer group and web port of its own, beside the session's.
    env = {
        **os.environ,
        "ECOWATCH_APP_ID": "ecowatch-demo-test",
        "ECOWATCH_WEB_PORT": str(settings.web_port + 2),  # +1 is test_enforcement's
        # A bridge user of its own: the session's bridges keep theirs.
        "ECOWATCH_MQTT_USERNAME": "ecowatch-bridge-2",
        "ECOWATCH_MQTT_PASSWORD": device_passwords["ecowatch-bridge-2"],
        "PYTHONUNBUFFERED": "1",
    }
    started = time.monotonic()
    demo = Demo(
        [
            "--outfalls",
            "2",
            "--air-stations",
            "1",
            "--meters",
            "0",
            "--scenario",
            "",
            "--speed",
            "60",
            "--duration",
            "600",
        ],
        env,
    )
    try:
        pid_line = wait_for(
            lambda: (
                next((x for x in demo.lines if x.startswith("worker started (pid ")), None)
                or demo.proc.poll() is not None
            ),
            60,
            "the demo to start its worker",
        )
        assert isinstance(pid_line, str), demo.output()
        worker_pid = int(re.search(r"pid (\d+)", pid_line).group(1))  # type: ignore[union-attr]
        wait_for(
            lambda: demo.stored() > 0 or demo.proc.poll() is not None,
            90,
            "the demo to show readings stored",
        )
        assert demo.stored() > 0, demo.output()
        print(f"readings stored {time.monotonic() - started:.1f} s after the demo started")

        os.kill(worker_pid, signal.SIGKILL)
        killed = time.monotonic()
        demo.proc.wait(30)
        told = time.monotonic() - killed
        print(f"the demo ended {told:.2f} s after its worker was killed")
        out = demo.output()
        assert demo.proc.returncode != 0, out
        assert "worker was killed by SIGKILL (exit code -9); the last lines of its log" in out
        assert re.search(r"^  \| .+", out, re.MULTILINE), out  # the log's tail is shown
        # Said at once: the demo looks at its children four times a second (the bound here is
        # generous, for a loaded machine; the issue asks for 5 s).
        assert told < 10, out
    finally:
        demo.stop()
