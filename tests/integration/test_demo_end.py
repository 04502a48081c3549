"""How `ecowatch demo` ends on the terminal's Ctrl-C: the devices and the bridge stop, the
worker (in a process group of its own, so the Ctrl-C does not reach it) judges what they
handed to Kafka, the week's settlement is printed from its API, and then it is stopped.
It drives the catalogue's first two outfalls and first air station (as test_new_machine's demo
does); nothing here counts their points in InfluxDB."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from ecowatch.cli.demo import Stopping
from ecowatch.config.settings import Settings
from tests.integration.conftest import PORT_BASE, wait_for
from tests.integration.test_new_machine import COUNTS


def gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_ctrl_c_prints_the_weekly_table_from_the_worker_then_stops_it(
    settings: Settings, device_passwords: dict[str, str]
) -> None:
    env = {
        **os.environ,
        "ECOWATCH_APP_ID": "ecowatch-demo-end-test",
        "ECOWATCH_WEB_PORT": str(PORT_BASE + 6071),  # +1…+5 are other tests' workers
        "ECOWATCH_CONSOLE_PORT": str(PORT_BASE + 6081),
        "ECOWATCH_MQTT_USERNAME": "ecowatch-bridge-3",  # the session's bridges keep theirs
        "ECOWATCH_MQTT_PASSWORD": device_passwords["ecowatch-bridge-3"],
        "PYTHONUNBUFFERED": "1",
    }
    lines: list[str] = []
    fleet = ["--outfalls", "2", "--air-stations", "1", "--meters", "0", "--scenario", ""]
    fleet += ["--speed", "60", "--duration", "600"]
    demo = subprocess.Popen(
        [sys.executable, "-m", "ecowatch.cli", "demo", *fleet],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        text=True,
        start_new_session=True,  # the terminal's foreground group: the demo and its children
    )

    def read() -> None:
        assert demo.stdout is not None
        for line in demo.stdout:
            lines.append(line.rstrip("\n"))

    threading.Thread(target=read, daemon=True).start()

    def output() -> str:
        return "\n".join(lines)

    def stored() -> int:
        counts = [m for line in lines if (m := COUNTS.match(line))]
        return max((int(m["stored"]) for m in counts if m["stored"] != "?"), default=0)

    try:
        started = wait_for(
            lambda: (
                next((x for x in lines if x.startswith("worker started (pid ")), None)
                or demo.poll() is not None
            ),
            60,
            "the demo to start its worker",
        )
        assert isinstance(started, str), output()
        worker_pid = int(re.search(r"pid (\d+)", started).group(1))  # type: ignore[union-attr]
        worker_log = Path(re.search(r"log (\S+)\)", started).group(1))  # type: ignore[union-attr]
        # The demos of a test run share <state>/worker.log: this one's part from about here.
        worker_log_from = worker_log.stat().st_size if worker_log.exists() else 0
        wait_for(lambda: stored() > 0 or demo.poll() is not None, 90, "readings stored")
        assert stored() > 0, output()

        os.killpg(demo.pid, signal.SIGINT)  # Ctrl-C, as the terminal sends it: to the group
        interrupted = time.monotonic()
        demo.wait(60)
        print(f"the demo ended {time.monotonic() - interrupted:.1f} s after Ctrl-C")
        out = output()
        print(out)
        assert demo.returncode == 0, out
        said = [
            Stopping.FIRST,
            "waiting for the worker to judge what was bridged",
            "worker: judged ",
            "weekly settlement, week of ",
            "demo stopped; the stack keeps running",
        ]
        at = [next((i for i, x in enumerate(lines) if x.startswith(s)), -1) for s in said]
        assert -1 not in at and at == sorted(at), out  # each said, in this order
        assert "does not answer" not in out, out
        wait_for(lambda: gone(worker_pid), 10, "the demo's worker to be gone")
        # The Ctrl-C (2) never reached the worker; the demo's SIGTERM (15) stopped it.
        with open(worker_log, "rb") as f:
            log = f.read()[worker_log_from:].decode(errors="replace")
        assert "[^Worker]: Signal received: 15" in log, log[-3000:]
        assert "Signal received: 2 " not in log, log[-3000:]
        # A Kafka that is merely starting is not said to be unavailable (in the demo's bridge
        # or its worker), whichever Kafka lines there are.
        for text in (out, log):
            kafka = [x for x in text.splitlines() if "Kafka at " in x]
            print("\n".join(kafka))
            assert not [x for x in kafka if "is unavailable since" in x], kafka
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
