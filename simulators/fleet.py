"""The fleet: device models put on MQTT, each with its own client identity and credentials.

Each simulated monitor connects as its device id (its MQTT user), announces ``online`` on its
retained status topic with ``offline`` as its last will, and publishes a reading every
``interval`` seconds at QoS 1. ``published`` counts readings the broker acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from ecowatch import topics
from ecowatch.clock import Clock
from ecowatch.errors import ServiceDown
from ecowatch.simulators.models import MonitorModel

log = logging.getLogger(__name__)


@dataclass
class FleetStats:
    published: int = 0  # acknowledged by the broker (PUBACK)
    garbled: int = 0  # deliberately broken payloads sent (a flaky link, for the demo)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def acked(self) -> None:
        with self._lock:
            self.published += 1


class SimulatedMonitor:
    """One model on one MQTT connection."""

    def __init__(
        self,
        model: MonitorModel,
        site: str,
        password: str,
        host: str,
        port: int,
        stats: FleetStats,
        garble_every: int = 0,
    ) -> None:
        self.model, self.site = model, site
        self._host, self._port = host, port
        self._stats = stats
        self._garble_every = garble_every
        self._sent = 0
        self._connected = threading.Event()
        self._refused: str | None = None
        device = model.device
        self._topic = topics.reading_topic(site, device)
        status = topics.status_topic(site, device)
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=device, protocol=mqtt.MQTTv5
        )
        self.client.username_pw_set(device, password)
        self.client.will_set(status, b"offline", qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.on_publish = self._on_publish
        self._reading_mids: set[int] = set()
        self._status = status

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._refused = str(reason_code)
        else:
            client.publish(self._status, b"online", qos=1, retain=True)
        self._connected.set()

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        # Count readings only, not the status messages.
        if mid in self._reading_mids:
            self._reading_mids.discard(mid)
            self._stats.acked()

    async def connect(self, timeout: float = 10.0) -> None:
        address = f"mqtt://{self._host}:{self._port}"
        try:
            self.client.connect(self._host, self._port, keepalive=30)
        except OSError as exc:
            raise ServiceDown("Mosquitto (MQTT)", address, str(exc)) from None
        self.client.loop_start()
        if not await asyncio.to_thread(self._connected.wait, timeout):
            raise ServiceDown("Mosquitto (MQTT)", address, f"no CONNACK for {self.model.device}")
        if self._refused:
            raise ServiceDown(
                "Mosquitto (MQTT)", address, f"refused {self.model.device}: {self._refused}"
            )

    def publish(self, clock: Clock) -> None:
        payload = self.model.reading(clock.now()).model_dump_json().encode()
        self._sent += 1
        if self._garble_every and self._sent % self._garble_every == 0:
            payload = payload[: len(payload) // 2]  # cut mid-message, as a flaky link does
            self._stats.garbled += 1
        info = self.client.publish(self._topic, payload, qos=1)
        self._reading_mids.add(info.mid)

    def close(self) -> None:
        # A clean stop says so; only a crash leaves the last will ("offline") to the broker.
        self.client.publish(self._status, b"stopped", qos=1, retain=True).wait_for_publish(2)
        self.client.disconnect()
        self.client.loop_stop()


class Fleet:
    def __init__(self, monitors: list[SimulatedMonitor], clock: Clock, interval: float) -> None:
        self.monitors = monitors
        self.clock = clock
        self.interval = interval

    async def run(self, stop: asyncio.Event) -> None:
        await asyncio.gather(*(m.connect() for m in self.monitors))
        try:
            while not stop.is_set():
                for monitor in self.monitors:
                    monitor.publish(self.clock)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.interval)
        finally:
            for monitor in self.monitors:
                monitor.close()
