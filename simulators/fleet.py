"""The fleet: device models put on the wire, each with its own identity.

A :class:`SimulatedDevice` is a pure model plus a link. The link is MQTT (the device's own
client id, user and password; ``online`` on its retained status topic, ``offline`` as its last
will; simulators/mqtt_readings.py) or HJ 212 over TCP (CN 2011 uploads in the device's
:class:`Hj212Dialect`: HJ/T 212-2005, HJ 212-2017 or HJ 212-2025, the last with its CP
SM4-encrypted when the device has a key; counted when the platform answers 9014;
simulators/hj212_link.py). A model that falls silent (offline) drops its link
without a goodbye, so the platform hears the last will; when it comes back it reconnects (and
an HJ 212-2025 device resends what it measured meanwhile, marked RF=1). Discharge meters
listen on their command topic and obey valve commands, then report their new state at once.

``published`` counts what the platform acknowledged (PUBACK or 9014), not what was sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import ValidationError

from ecowatch import topics
from ecowatch.clock import Clock
from ecowatch.config.catalogue import Catalogue, DeviceEntry, DeviceModel
from ecowatch.config.standards import Basis, Maximum
from ecowatch.errors import ServiceDown
from ecowatch.schema import DeviceReading, ValveCommand
from ecowatch.simulators.hj212_link import KEEP_AT_MOST, Hj212Dialect, Hj212Uplink
from ecowatch.simulators.models import (
    AirStation,
    BaseMonitor,
    DischargeMeter,
    Effluent,
    FlueGasMonitor,
    Mode,
    OutfallMonitor,
)
from ecowatch.simulators.mqtt_readings import ReadingSender
from ecowatch.simulators.scenarios import ScenarioRun

log = logging.getLogger(__name__)


def model_for(entry: DeviceEntry, seed: int, catalogue: Catalogue | None = None) -> BaseMonitor:
    """A catalogue device as a model, with its site's parameters. A stack's CEMS takes its
    reference oxygen and its limits from ``catalogue``; without one, the site's own
    ``o2_reference`` if it states one, and the model's ultra-low limits at 6 % O2."""
    device, reported = entry.device.id, entry.device.pollutants
    if entry.device.model is DeviceModel.AIR_STATION:
        return AirStation(device, seed, reported=reported)
    if entry.device.model is DeviceModel.FLUE_GAS_MONITOR:
        return flue_gas_model(entry, seed, catalogue)
    if entry.device.model is DeviceModel.DISCHARGE_METER:
        quota = entry.device.quota
        assert quota is not None  # the catalogue requires one for a meter
        return DischargeMeter(
            device,
            seed,
            reported=reported,
            card_id=quota.card,
            annual_quota=quota.annual,
            year_start_month=quota.first_month,
            monthly_split=[quota.share(month) for month in range(1, 13)],
        )
    standard = entry.site.standard.id if entry.site.standard else ""
    plant = standard.startswith("GB 18918")
    effluent = Effluent.TREATMENT_PLANT if plant else Effluent.INDUSTRIAL
    return OutfallMonitor(device, seed, effluent=effluent, reported=reported)


def flue_gas_model(entry: DeviceEntry, seed: int, catalogue: Catalogue | None) -> FlueGasMonitor:
    """A stack's CEMS: its O2 moves ±2 % around the site's reference oxygen (4..8 % for a
    coal unit at 6 %), its concentrations run a little under the site's hourly limits."""
    site = entry.site
    reference = catalogue.o2_reference(site.id) if catalogue is not None else site.o2_reference
    limits: dict[str, float] = {}
    if catalogue is not None:
        for code in entry.device.pollutants:
            hourly = [
                lim.bound.value
                for lim in catalogue.limits_for(site.id, code)
                if lim.basis is Basis.HOURLY and isinstance(lim.bound, Maximum)
            ]
            if hourly:
                limits[code] = min(hourly)
    if reference is None:
        return FlueGasMonitor(entry.device.id, seed, reported=entry.device.pollutants)
    band = (max(1.0, reference - 2.0), reference + 2.0)
    return FlueGasMonitor(
        entry.device.id,
        seed,
        reported=entry.device.pollutants,
        o2_reference=reference,
        o2_band=band,
        limits=limits,
    )


@dataclass
class FleetStats:
    sent: int = 0
    published: int = 0  # acknowledged by the platform (PUBACK, or a 9014 answer)
    garbled: int = 0  # deliberately broken payloads (a flaky link, for the demo)
    silent: int = 0  # readings a device did not send because it was offline
    resent: int = 0  # of those, kept by an HJ 212-2025 device and sent later with RF=1
    overflow: int = 0  # kept readings dropped, oldest first, from a device's full store
    reconnects: int = 0
    # Readings published again after a lost connection: the broker may have forgotten them
    # (simulators/recent.py); the platform skips those it has.
    republished: int = 0
    commands: Counter[str] = field(default_factory=Counter)  # obeyed / repeated / refused
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def acked(self) -> None:
        with self._lock:  # paho calls this from its network threads
            self.published += 1

    def as_dict(self) -> dict[str, object]:
        return {
            "sent": self.sent,
            "published": self.published,
            "garbled": self.garbled,
            "silent": self.silent,
            "resent": self.resent,
            "overflow": self.overflow,
            "reconnects": self.reconnects,
            "republished": self.republished,
            "commands": dict(self.commands),
        }


class Link(Protocol):
    """How one device reaches the platform."""

    async def open(self) -> None: ...
    def send(self, reading: DeviceReading, garble: bool) -> None: ...
    def drop(self) -> None: ...  # the link is lost: no goodbye
    def close(self) -> None: ...  # a clean stop


class MqttLink:
    def __init__(
        self,
        device: str,
        site: str,
        password: str,
        host: str,
        port: int,
        stats: FleetStats,
        on_command: CommandHandler | None = None,
    ) -> None:
        self.device, self.site = device, site
        self._host, self._port = host, port
        self._stats = stats
        self._on_command = on_command
        self._reading_topic = topics.reading_topic(site, device)
        self._status_topic = topics.status_topic(site, device)
        self._command_topic = topics.command_topic(site, device)
        self._password = password
        self._status_mids: set[int] = set()
        self._mids_lock = threading.Lock()
        self._client: mqtt.Client | None = None
        self._readings: ReadingSender[None] | None = None

    def _new_client(self) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=self.device, protocol=mqtt.MQTTv5
        )
        client.username_pw_set(self.device, self._password)
        client.will_set(self._status_topic, b"offline", qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        client.on_disconnect = self._on_disconnect
        return client

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if self._readings is not None:
            self._readings.lost(reason_code)

    def _acked(self, _: None, ok: bool) -> None:
        if ok:
            self._stats.acked()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            return
        # This thread also handles the PUBACK, after this callback: no race in filing the mid.
        info = client.publish(self._status_topic, b"online", qos=1, retain=True)
        with self._mids_lock:
            self._status_mids.add(info.mid)
        if self._readings is not None:
            self._stats.republished += self._readings.connected()
        if self._on_command is not None:
            client.subscribe(self._command_topic, qos=1)

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        # paho's network thread: a status is ours; anything else a reading's.
        with self._mids_lock:
            if mid in self._status_mids:
                self._status_mids.discard(mid)
                return
        if self._readings is not None:
            self._readings.acknowledged(mid, reason_code)

    def _on_message(self, client, userdata, msg: mqtt.MQTTMessage) -> None:
        if self._on_command is not None:
            self._on_command(msg.payload)

    async def open(self, timeout: float = 10.0) -> None:
        address = f"mqtt://{self._host}:{self._port}"
        connected = threading.Event()
        refused: list[str] = []
        client = self._new_client()
        if self._readings is None:
            self._readings = ReadingSender(client, self._reading_topic, self._acked)
        else:  # back after a drop: a new client
            self._readings.forget(client)

        def on_connect(c, u, f, reason_code, p) -> None:
            if reason_code.is_failure:
                refused.append(str(reason_code))
            self._on_connect(c, u, f, reason_code, p)
            connected.set()

        client.on_connect = on_connect
        try:
            client.connect(self._host, self._port, keepalive=30)
        except OSError as exc:
            raise ServiceDown("Mosquitto (MQTT)", address, str(exc)) from None
        client.loop_start()
        if not await asyncio.to_thread(connected.wait, timeout):
            client.loop_stop()
            raise ServiceDown("Mosquitto (MQTT)", address, f"no CONNACK for {self.device}")
        if refused:
            client.loop_stop()
            raise ServiceDown("Mosquitto (MQTT)", address, f"refused {self.device}: {refused[0]}")
        client.on_connect = self._on_connect  # later reconnects by paho: status and subscription
        self._client = client

    def send(self, reading: DeviceReading, garble: bool) -> None:
        assert self._readings is not None
        payload = reading.model_dump_json(exclude_none=True).encode()
        if garble:
            payload = payload[: len(payload) // 2]  # cut mid-message, as a flaky link does
        self._readings.send(payload, None, again_if_lost=not garble)

    def _forget(self) -> None:
        with self._mids_lock:  # a new connection numbers its messages afresh
            self._status_mids.clear()
        if self._readings is not None:
            self._readings.forget()

    def drop(self) -> None:
        if self._client is not None:
            self._forget()
            self._client.loop_stop()
            sock = self._client.socket()
            if sock is not None:
                sock.close()  # no DISCONNECT: Mosquitto publishes the last will
            self._client = None

    def close(self) -> None:
        if self._client is not None:
            # A clean stop says so; only a vanished device leaves "offline" to its last will.
            self._client.publish(
                self._status_topic, b"stopped", qos=1, retain=True
            ).wait_for_publish(2)
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None
            self._forget()


class Hj212Link:
    """A real monitor's way: HJ 212 over TCP, one connection per device, each packet with the
    device's own PW (the platform refuses any other), in the device's :class:`Hj212Dialect`
    (simulators/hj212_link.py); what the platform answered, what a 2025 device resent and
    what its full store lost are counted in the fleet's stats."""

    def __init__(
        self,
        device: str,
        st: str,
        host: str,
        port: int,
        stats: FleetStats,
        *,
        password: str,
        dialect: Hj212Dialect | None = None,
        keep_at_most: int = KEEP_AT_MOST,
    ) -> None:
        self.device = device
        self._stats = stats
        self.uplink: Hj212Uplink[None] = Hj212Uplink(
            device,
            st,
            host,
            port,
            lambda _: stats.acked(),
            password=password,
            dialect=dialect,
            keep_at_most=keep_at_most,
        )

    @property
    def dialect(self) -> Hj212Dialect:
        return self.uplink.dialect

    @property
    def kept(self) -> int:
        """Readings waiting to be resent."""
        return self.uplink.kept

    async def open(self) -> None:
        await self.uplink.open()

    def send(self, reading: DeviceReading, garble: bool) -> None:
        self._stats.resent += self.uplink.send(reading, None, garble=garble)

    def keep(self, reading: DeviceReading) -> None:
        """A reading made while off the network, for the next connection to resend."""
        self._stats.overflow += self.uplink.keep(reading, None)

    def drop(self) -> None:
        self.uplink.drop()

    def close(self) -> None:
        self.uplink.close()


class CommandHandler(Protocol):
    def __call__(self, payload: bytes) -> None: ...


class SimulatedDevice:
    def __init__(
        self, model: BaseMonitor, link: Link, stats: FleetStats, garble_every: int = 0
    ) -> None:
        self.model, self.link = model, link
        self._stats = stats
        self._garble_every = garble_every
        self._sent = 0
        self.online = False

    @property
    def _keeper(self) -> Hj212Link | None:
        """The link that keeps readings through an outage to resend them (HJ 212-2025)."""
        link = self.link
        return link if isinstance(link, Hj212Link) and link.dialect.resends else None

    async def tick(self, now: datetime) -> None:
        keeper = self._keeper
        if keeper is not None and Mode.OFFLINE in self.model.conditions.modes:
            keeper.keep(self._measured_off_network(now))
            self._off_network()
            return
        reading = self.model.reading(now)
        if reading is None:
            self._off_network()
            return
        if not self.online:
            if self._sent:  # back from an outage
                self._stats.reconnects += 1
            await self.link.open()
            self.online = True
        self._sent += 1
        garble = bool(self._garble_every) and self._sent % self._garble_every == 0
        self._stats.garbled += garble
        self._stats.sent += 1
        self.link.send(reading, garble)

    def _off_network(self) -> None:
        self._stats.silent += 1
        if self.online:
            self.link.drop()
            self.online = False

    def _measured_off_network(self, now: datetime) -> DeviceReading:
        """The reading a monitor makes while it cannot reach the platform.

        The model's OFFLINE mode is 掉线, the network gone, not the power: the model keeps
        measuring through it (the drift walks, a meter's totaliser runs) and only publishes
        nothing. So does a real data logger, which stores its records and, under HJ 212-2025,
        resends them marked RF=1 once connected. The model is asked for that reading as if the
        network were up (its seq then numbers it, as the reading is published, only later)."""
        conditions = self.model.conditions
        self.model.conditions = conditions.with_mode(Mode.OFFLINE, on=False)
        try:
            reading = self.model.reading(now)
        finally:
            self.model.conditions = conditions
        assert reading is not None  # only OFFLINE makes a model silent
        return reading

    def close(self) -> None:
        if self.online:
            self.link.close()
            self.online = False


class Fleet:
    """Ticks every device once per ``interval`` simulated seconds, on the clock's time."""

    def __init__(
        self,
        devices: list[SimulatedDevice],
        clock: Clock,
        interval: float,
        stats: FleetStats,
        scenario: ScenarioRun | None = None,
        speed: float = 1.0,
    ) -> None:
        self.devices = devices
        self.clock = clock
        self.interval = interval
        self.stats = stats
        self.scenario = scenario
        self.speed = speed
        self._loop: asyncio.AbstractEventLoop | None = None
        self._by_device = {d.model.device: d for d in devices}
        self._reports: set[asyncio.Future[None]] = set()
        self.happenings: list[str] = []  # what the scenario did, for the operator to read

    def add(self, device: SimulatedDevice) -> None:
        self.devices.append(device)
        self._by_device[device.model.device] = device

    @property
    def models(self) -> Mapping[str, BaseMonitor]:
        return {d.model.device: d.model for d in self.devices}

    def command_handler(self, device: str) -> CommandHandler:
        """For a meter's MQTT link: hand the command to the asyncio loop (paho's thread calls)."""

        def handle(payload: bytes) -> None:
            assert self._loop is not None
            self._loop.call_soon_threadsafe(self._obey, device, payload)

        return handle

    def _obey(self, device: str, payload: bytes) -> None:
        target = self._by_device[device]
        try:
            command = ValveCommand.model_validate_json(payload)
        except ValidationError as exc:
            log.warning("meter %s refused a malformed command: %s", device, exc.errors()[:1])
            self.stats.commands["refused"] += 1
            return
        meter = target.model
        assert isinstance(meter, DischargeMeter)
        if not meter.apply_command(command, self.clock.now()):
            self.stats.commands["repeated"] += 1  # the same command_id again: already obeyed
            return
        self.stats.commands["obeyed"] += 1
        log.info("meter %s: %s (%s)", device, command.command, command.reason)
        # Report the new state at once, not at the next interval.
        task = asyncio.ensure_future(target.tick(self.clock.now()))
        self._reports.add(task)
        task.add_done_callback(self._reports.discard)

    async def run(self, stop: asyncio.Event) -> None:
        self._loop = asyncio.get_running_loop()
        try:
            while not stop.is_set():
                now = self.clock.now()
                if self.scenario is not None:
                    self.happenings.extend(self.scenario.apply(now))
                for device in self.devices:
                    await device.tick(now)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.interval / self.speed)
            await self._settle()
        finally:
            for device in self.devices:
                device.close()

    async def _settle(self, timeout: float = 3.0) -> None:
        """Give the last acknowledgements a moment, so the counts describe the whole run.
        (A garbled HJ 212 packet is answered 9011, never 9014: it is not waited for.)"""
        deadline = asyncio.get_running_loop().time() + timeout
        stats = self.stats
        while stats.published + stats.garbled < stats.sent + stats.resent:
            if asyncio.get_running_loop().time() > deadline:
                return
            await asyncio.sleep(0.05)
