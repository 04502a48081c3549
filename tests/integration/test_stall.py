"""A bridge that stands still says so and exits for a restart (issue 16): Kafka frozen
(SIGSTOP: its connections open, no answers) under a bridge with a 3 s stall limit. Its
/health says stalled and why, it exits 75, and the bridge started again takes what it held:
Mosquitto kept it, unacknowledged."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from ecowatch import topics
from ecowatch.config.catalogue import load_catalogue
from ecowatch.config.settings import Settings
from ecowatch.devtools.stack.services import Stack
from ecowatch.devtools.watch import read_health
from ecowatch.stall import STALLED_EXIT_CODE
from tests.integration.conftest import wait_for
from tests.integration.test_pipeline import Device, reading

SITE = "S-OUT-024"  # a monitor no other test drives
USER = "ecowatch-bridge-4"  # a session of its own: the other tests' bridges keep theirs


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Bridge:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.log_path = log
        with open(log, "ab") as f:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "ecowatch.cli", "bridge"],
                stdout=f,
                stderr=subprocess.STDOUT,
                env=env,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def forget_session(settings: Settings, device_passwords: dict[str, str]) -> Iterator[None]:
    yield
    # Its persistent session would queue every later test's readings for nobody.
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=USER, protocol=mqtt.MQTTv5)
    c.username_pw_set(USER, device_passwords[USER])
    c.connect(settings.mqtt_host, settings.mqtt_port, clean_start=True)
    c.loop_start()
    time.sleep(0.5)
    c.disconnect()
    c.loop_stop()


def test_a_bridge_that_stands_still_says_so_exits_75_and_its_successor_takes_what_it_held(
    settings: Settings,
    device_passwords: dict[str, str],
    tmp_path: Path,
    forget_session: None,
) -> None:
    catalogue = load_catalogue(settings.catalogue_folder())
    (entry,) = [e for e in catalogue.devices.values() if e.site.id == SITE][:1]
    device = Device(settings, entry.device.id, device_passwords[entry.device.id])
    topic = topics.reading_topic(SITE, entry.device.id)
    port = free_port()
    env = {
        **os.environ,
        "ECOWATCH_MQTT_USERNAME": USER,
        "ECOWATCH_MQTT_PASSWORD": device_passwords[USER],
        "ECOWATCH_BRIDGE_HEALTH_PORT": str(port),
        "ECOWATCH_STALL_SECONDS": "3",
    }
    kafka = Stack(settings, catalogue).kafka
    kafka_pid = kafka.proc.pid()
    assert kafka_pid is not None
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    first = Bridge(env, tmp_path / "bridge-1.log")
    second: Bridge | None = None
    frozen = False
    try:
        wait_for(
            lambda: (read_health(port) or {}).get("stage") == "bridge", 30, "the bridge's /health"
        )
        for i in range(5):
            assert not device.publish(
                topic, reading(start + timedelta(seconds=i), 20, 1.0)
            ).is_failure
        wait_for(
            lambda: (read_health(port) or {}).get("bridged", 0) >= 5, 20, "five readings bridged"
        )

        os.kill(kafka_pid, signal.SIGSTOP)
        frozen = True
        for i in range(5, 10):
            assert not device.publish(
                topic, reading(start + timedelta(seconds=i), 20, 1.0)
            ).is_failure
        stalled = wait_for(
            lambda: (h := read_health(port)) and h.get("stalled") and h,
            15,
            "/health to say stalled",
        )
        assert stalled["stalled_since"] and stalled["stalled_why"], stalled
        assert stalled["bridged"] == 5
        code = first.proc.wait(20)  # nothing is waited for on a stall's way out
        assert code == STALLED_EXIT_CODE, first.log()[-3000:]
        assert "bridge stalled: " in first.log() and "exiting for its supervisor" in first.log()

        os.kill(kafka_pid, signal.SIGCONT)
        frozen = False
        # As its keeper would: started again; Mosquitto gives it what the first one held.
        second = Bridge(env, tmp_path / "bridge-2.log")
        moved = wait_for(
            lambda: (h := read_health(port)) and h.get("bridged", 0) >= 5 and h, 60, "the held five"
        )
        assert not moved["stalled"]
    finally:
        if frozen:
            os.kill(kafka_pid, signal.SIGCONT)
        first.stop()
        if second is not None:
            second.stop()
        device.close()
