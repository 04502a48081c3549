"""The fault drill: steady load over MQTT and HJ 212 while the platform's processes are killed
and its services stopped, then what was published, acknowledged, stored and lost, the
notifications delivered twice, and how long the platform took to recover from each fault.

The pure part (the fault plan, the ledger of readings, recovery, the notification tally, the
report) is at the top and tested in ``tests/unit/devtools/test_drill.py``. The edge below it
drives the real processes: the worker, the bridge and the HJ 212 server are ``ecowatch``
commands run as children (they read their settings from the environment and ``stack.env``,
like any operator's), and the services are stopped and started through the stack's own code.

Definitions (the README's "Fault drill" says the same):

- **published**: readings the simulated devices handed to their transport.
- **acknowledged**: readings the platform acknowledged to the device: a PUBACK from Mosquitto
  (QoS 1), or a 9014 answer from the HJ 212 server.
- **stored**: readings in InfluxDB: each device's readings carry timestamps one second apart
  in a window of the drill's own, so every stored reading is one index of one device.
- **lost**: acknowledged and not stored at the end. The device was told "got it": the evidence
  is gone.
- **duplicate notifications**: a person received the same message (same title and text, so
  the same case, step and round) more than once.
- **marked possible repeats**: messages sent again, marked 【可能重复】, because a kill cut off
  their first send between its start and its record: the platform cannot know whether that
  one arrived, so it neither stays silent nor repeats itself unmarked.
- **down**: from the fault's start (kill sent, service asked to stop) to its end (the killed
  process started again, the service answering again).
- **recovered in**: from the fault's end until every device's stored count, over the readings
  dated up to the newest one it had acknowledged at the fault's end, reached the number of those
  it had acknowledged: everything acknowledged by the end of the fault is in InfluxDB.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import random
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
from influxdb_client import Dialect
from paho.mqtt.enums import CallbackAPIVersion

from ecowatch import topics
from ecowatch.alerts.templates import is_possible_repeat
from ecowatch.config.catalogue import Catalogue, DeviceEntry, copy_with_policies
from ecowatch.config.settings import Settings, load_device_credentials, load_settings
from ecowatch.devtools.bench import Arrivals, percentile
from ecowatch.devtools.supervise import Backoff, KeptProcess
from ecowatch.devtools.watch import (
    ChildProcess,
    FlowWatch,
    StageFailed,
    Supervisor,
    ecowatch_argv,
    read_health,
)
from ecowatch.edges.files import private_dir, read_json_object
from ecowatch.edges.outage import port_open
from ecowatch.errors import ConfigError, EcowatchError, ServiceDown
from ecowatch.ingest import hj212
from ecowatch.schema import DeviceReading
from ecowatch.simulators.fleet import model_for
from ecowatch.simulators.hj212_link import Hj212Dialect, Hj212Uplink, Retry
from ecowatch.simulators.models import BaseMonitor
from ecowatch.simulators.mqtt_readings import ReadingSender
from ecowatch.streams.storage import flux

# -- the plan ----------------------------------------------------------------------------------

# In the order the drill applies them by default.
FAULTS: tuple[str, ...] = ("worker", "bridge", "influxdb", "kafka", "mosquitto", "hj212")

FAULT_ACTIONS: dict[str, str] = {
    "worker": "kill -9 the worker, start it again",
    "bridge": "kill -9 the MQTT bridge, start it again",
    "influxdb": "stop InfluxDB, start it again after the outage",
    "kafka": "restart Kafka (SIGTERM, start)",
    "mosquitto": "restart Mosquitto (SIGTERM, start)",
    "hj212": "kill -9 the HJ 212 server with devices connected, start it again",
}

# The storm (--storm): every fault once, at seeded random moments within a span, without
# waiting for the platform to recover from one before the next; the services are killed
# (-9), not asked to stop, and stay away a seeded while; the platform's processes are killed
# (-9) and their keeper (ecowatch.devtools.supervise) starts them again, as `ecowatch up` would.
SERVICES = ("influxdb", "kafka", "mosquitto")
STORM_ACTIONS: dict[str, str] = {
    "worker": "kill -9 the worker; its keeper starts it again",
    "bridge": "kill -9 the MQTT bridge; its keeper starts it again",
    "hj212": "kill -9 the HJ 212 server with devices connected; its keeper starts it again",
    "influxdb": "kill -9 InfluxDB, start it again after its outage",
    "kafka": "kill -9 Kafka, start it again after its outage",
    "mosquitto": "kill -9 (or stop) Mosquitto, start it again after its outage",
}
# Everything acknowledged by the end of the storm's last fault is stored within this.
STORM_RECOVERY_SECONDS = 60.0


@dataclass(frozen=True)
class StormFault:
    at: float  # seconds after the storm begins
    fault: str
    down: float  # how long a killed service stays away (0: a process, its keeper decides)


def storm_plan(
    seed: int,
    span: float,
    faults: Sequence[str] = FAULTS,
    outage: tuple[float, float] = (4.0, 20.0),
) -> list[StormFault]:
    """Each fault once, in a seeded random order at seeded random moments in [0, span], each
    service away for a seeded time within ``outage``: faults overlap as real ones do."""
    rng = random.Random(seed)
    order = list(faults)
    rng.shuffle(order)
    moments = sorted(rng.uniform(0.0, span) for _ in order)
    return [
        StormFault(round(at, 1), fault, round(rng.uniform(*outage), 1) if fault in SERVICES else 0)
        for at, fault in zip(moments, order, strict=True)
    ]


# Each device's readings are one second apart in data time: HJ 212's DataTime has seconds,
# and one reading per (device, second) makes every stored point one reading of one device.
READING_STEP = timedelta(seconds=1)
# The pollutant counted in InfluxDB: one point per reading, and every outfall monitor has it.
COUNTED_POLLUTANT = "w01018"


def parse_faults(text: str) -> tuple[str, ...]:
    """``worker,kafka`` → ("worker", "kafka"), in the order given; ``all`` → every fault."""
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    if names == ["all"]:
        return FAULTS
    unknown = [n for n in names if n not in FAULTS]
    if unknown:
        raise ValueError(f"unknown fault {unknown[0]!r}; choose from {', '.join(FAULTS)} or all")
    if len(set(names)) != len(names):
        raise ValueError("each fault once")
    if not names:
        raise ValueError(f"name at least one fault: {', '.join(FAULTS)}")
    return tuple(names)


def due(rate: float, elapsed: float, generated: int) -> int:
    """Readings to generate now to hold ``rate`` per second ``elapsed`` seconds in."""
    return max(0, math.floor(rate * elapsed) - generated)


def reading_time(base: datetime, index: int) -> datetime:
    return base + index * READING_STEP


def reading_index(base: datetime, ts: datetime) -> int:
    return round((ts - base) / READING_STEP)


def free_window(
    occupied: Iterable[datetime],
    bucket: timedelta,
    earliest: datetime,
    latest: datetime,
    span: timedelta,
) -> datetime | None:
    """The latest start of a window of ``span`` inside [earliest, latest] that overlaps no
    occupied bucket (each ``bucket`` long, from its start), or None. The drill's readings go
    there, so everything InfluxDB holds in it for the drill's devices is the drill's."""
    taken = sorted(occupied, reverse=True)
    start = latest - span
    while start >= earliest:
        clash = next((b for b in taken if b < start + span and b + bucket > start), None)
        if clash is None:
            return start
        start = clash - span
    return None


def ephemeral_ports(ports: Mapping[str, int], low: int, high: int) -> list[str]:
    """The services whose port is in the kernel's ephemeral range: while such a service is down,
    a client reconnecting to it can be given that very port as its own and connect to itself
    (a TCP self-connect), and the service cannot bind it again. Seen here: Kafka's restart
    failed with "Address already in use" on 39092, held by 127.0.0.1:39092 ↔ itself."""
    return [f"{name} {port}" for name, port in ports.items() if low <= port <= high]


def planned_seconds(faults: Sequence[str], gap: float, influx_outage: float) -> float:
    """A generous bound on the load's duration, to reserve the drill's window: per fault a gap,
    its outage and two minutes to recover."""
    outage = {"influxdb": influx_outage, "kafka": 30.0}
    return gap + sum(gap + outage.get(f, 0.0) + 120.0 for f in faults) + 120.0


# -- the ledger --------------------------------------------------------------------------------


@dataclass
class DeviceLedger:
    """One device's readings by index: 0 … published-1 were handed to the transport."""

    device: str
    transport: str  # "mqtt" or "hj212"
    published: int = 0
    acked: set[int] = field(default_factory=set)
    newest_acked: int = -1


class Ledger:
    """Which reading of which device was published and acknowledged. Acknowledgements come from
    paho's threads and the asyncio loop alike: one lock."""

    def __init__(self, devices: Mapping[str, str]) -> None:
        self.devices = {d: DeviceLedger(d, transport) for d, transport in devices.items()}
        self._lock = threading.Lock()

    def publish(self, device: str) -> int:
        with self._lock:
            ledger = self.devices[device]
            ledger.published += 1
            return ledger.published - 1

    def ack(self, device: str, index: int) -> None:
        with self._lock:
            ledger = self.devices[device]
            ledger.acked.add(index)
            ledger.newest_acked = max(ledger.newest_acked, index)

    @property
    def published(self) -> int:
        return sum(d.published for d in self.devices.values())

    @property
    def acknowledged(self) -> int:
        with self._lock:
            return sum(len(d.acked) for d in self.devices.values())

    def snapshot(self) -> dict[str, tuple[int, int]]:
        """Device → (newest acknowledged index, how many up to it were acknowledged)."""
        with self._lock:
            return {
                d.device: (d.newest_acked, sum(1 for i in d.acked if i <= d.newest_acked))
                for d in self.devices.values()
                if d.newest_acked >= 0
            }


@dataclass(frozen=True)
class Accounts:
    published: int
    acknowledged: int
    stored: int
    lost: int  # acknowledged, not stored
    unacknowledged: int  # published, never acknowledged (the device would still resend it)
    lost_by_device: dict[str, int]
    by_transport: dict[str, dict[str, int]]


def account(ledger: Ledger, stored: Mapping[str, set[int]]) -> Accounts:
    """The final figures from the ledger and the indexes InfluxDB holds per device."""
    lost_by: dict[str, int] = {}
    by_transport: dict[str, Counter[str]] = {}
    for d in ledger.devices.values():
        held = {i for i in stored.get(d.device, set()) if 0 <= i < d.published}
        lost = len(d.acked - held)
        if lost:
            lost_by[d.device] = lost
        c = by_transport.setdefault(d.transport, Counter())
        c["published"] += d.published
        c["acknowledged"] += len(d.acked)
        c["stored"] += len(held)
        c["lost"] += lost
    total = Counter[str]()
    for c in by_transport.values():
        total.update(c)
    return Accounts(
        published=total["published"],
        acknowledged=total["acknowledged"],
        stored=total["stored"],
        lost=total["lost"],
        unacknowledged=total["published"] - total["acknowledged"],
        lost_by_device=lost_by,
        by_transport={t: dict(c) for t, c in sorted(by_transport.items())},
    )


# -- recovery ----------------------------------------------------------------------------------


@dataclass
class Recovery:
    """Watches one fault's backlog: at the fault's end, each device had acknowledged ``count``
    readings up to index ``newest``; recovered once InfluxDB holds as many of those."""

    ended_at: float  # monotonic seconds
    targets: dict[str, tuple[int, int]]  # device → (newest acknowledged index, count up to it)
    recovered_at: float | None = None

    def observe(self, now: float, stored_up_to_newest: Mapping[str, int]) -> bool:
        """``stored_up_to_newest``: per device, stored readings with index <= its newest."""
        if self.recovered_at is None and all(
            stored_up_to_newest.get(d, 0) >= count for d, (_, count) in self.targets.items()
        ):
            self.recovered_at = now
        return self.recovered_at is not None

    @property
    def seconds(self) -> float | None:
        return None if self.recovered_at is None else max(0.0, self.recovered_at - self.ended_at)


# -- notifications -----------------------------------------------------------------------------


class NotificationTally:
    """Every message the drill's receiver got. A notification's text carries its case, step and
    deadline (each renotification round its own), so the same person getting the same title and
    text twice is the same notification delivered twice.

    With ``path``, each arrival is also appended there as a JSON line with its time, so a
    duplicate can be traced to the moment (and the fault) it came in."""

    def __init__(self, path: Path | None = None) -> None:
        self.received: Counter[tuple[str, str, str]] = Counter()
        self.path = path
        self._lock = threading.Lock()

    def record(self, recipient: str, title: str, message: str) -> None:
        with self._lock:
            self.received[(recipient, title, message)] += 1
            if self.path is not None:
                line = {"at": time.time(), "to": recipient, "title": title, "message": message}
                with self.path.open("a", encoding="utf-8") as f:
                    f.write(json.dumps(line, ensure_ascii=False) + "\n")

    @property
    def delivered(self) -> int:
        with self._lock:
            return sum(self.received.values())

    @property
    def duplicates(self) -> int:
        with self._lock:
            return sum(n - 1 for n in self.received.values())

    @property
    def possible_repeats(self) -> int:
        """Messages marked as possible repeats: sent again after a kill cut off their send."""
        with self._lock:
            return sum(n for (_, title, _), n in self.received.items() if is_possible_repeat(title))

    def duplicated(self) -> list[tuple[str, str, int]]:
        """(recipient, title, times) of each notification delivered more than once."""
        with self._lock:
            return [(r, t, n) for (r, t, _), n in self.received.items() if n > 1]


# -- the report --------------------------------------------------------------------------------


@dataclass
class FaultOutcome:
    fault: str
    started_at: float  # monotonic
    ended_at: float | None = None
    applied: bool = False  # the evidence says it happened (pid changed, port closed, ...)
    detail: str = ""
    evidence: dict[str, object] = field(default_factory=dict)
    recovery: Recovery | None = None

    @property
    def down_seconds(self) -> float | None:
        return None if self.ended_at is None else self.ended_at - self.started_at

    @property
    def recovery_seconds(self) -> float | None:
        return self.recovery.seconds if self.recovery is not None else None


@dataclass
class DrillReport:
    rate: float
    devices: dict[str, int]  # transport → devices
    seconds: float
    accounts: Accounts
    notifications: int
    duplicate_notifications: int
    faults: list[FaultOutcome]
    possible_repeats: int = 0
    problems: list[str] = field(default_factory=list)
    # Where the readings were dated, and by whom: to count them again in InfluxDB.
    window: tuple[datetime, datetime] | None = None
    device_ids: list[str] = field(default_factory=list)
    restarts: dict[str, int] = field(default_factory=dict)  # storm: by each stage's keeper
    live_latency: dict[str, float | int | None] = field(default_factory=dict)  # outage-resend
    # MQTT readings published again after a lost connection (simulators/recent.py).
    republished: int = 0

    @property
    def passed(self) -> bool:
        return (
            self.accounts.lost == 0
            and self.duplicate_notifications == 0
            and all(f.applied and f.recovery_seconds is not None for f in self.faults)
            and not self.problems
        )

    def as_dict(self) -> dict[str, object]:
        a = self.accounts
        return {
            "rate": self.rate,
            "devices": self.devices,
            "seconds": round(self.seconds, 1),
            "published": a.published,
            "acknowledged": a.acknowledged,
            "stored": a.stored,
            "lost": a.lost,
            "unacknowledged": a.unacknowledged,
            "by_transport": a.by_transport,
            "lost_by_device": a.lost_by_device,
            "notifications": self.notifications,
            "duplicate_notifications": self.duplicate_notifications,
            "possible_repeats": self.possible_repeats,
            "faults": [
                {
                    "fault": f.fault,
                    "applied": f.applied,
                    "down_s": _round(f.down_seconds),
                    "recovery_s": _round(f.recovery_seconds),
                    "detail": f.detail,
                    **f.evidence,
                }
                for f in self.faults
            ],
            "problems": self.problems,
            "window": [t.isoformat() for t in self.window] if self.window else None,
            "device_ids": self.device_ids,
            "restarts": self.restarts,
            "live_latency": self.live_latency,
            "republished": self.republished,
            "passed": self.passed,
        }


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 1)


def _seconds(x: float | None) -> str:
    return "—" if x is None else f"{x:.1f} s"


def render(report: DrillReport) -> list[str]:
    """The table a person reads, then one JSON line for a machine."""
    a = report.accounts
    lines = [
        f"{'fault':<10} {'applied':<8} {'down':>8} {'recovered in':>13}  what happened",
    ]
    for f in report.faults:
        lines.append(
            f"{f.fault:<10} {'yes' if f.applied else 'NO':<8} {_seconds(f.down_seconds):>8} "
            f"{_seconds(f.recovery_seconds) if f.recovery else '—':>13}  {f.detail}"
        )
    per = ", ".join(
        f"{t.replace('hj212', 'HJ 212').replace('mqtt', 'MQTT')} {c['published']:,}"
        for t, c in a.by_transport.items()
    )
    lines += [
        "",
        f"readings published         {a.published:>9,}  ({per})",
        f"acknowledged               {a.acknowledged:>9,}  (PUBACK or 9014)",
        f"stored in InfluxDB         {a.stored:>9,}",
        f"lost                       {a.lost:>9,}  (acknowledged, not stored)",
        f"unacknowledged             {a.unacknowledged:>9,}  (published, never acknowledged)",
        f"notifications delivered    {report.notifications:>9,}",
        f"duplicate notifications    {report.duplicate_notifications:>9,}",
        f"marked possible repeats    {report.possible_repeats:>9,}  (a kill cut off their send)",
    ]
    if report.live_latency:
        ll = report.live_latency
        lines.append(
            f"resent backlog             {ll['kept']:>9,}  drained in {ll['drain_s']} s; live "
            f"readings meanwhile p50 {ll['p50_s']} s, p99 {ll['p99_s']} s ({ll['samples']:,})"
        )
    if report.restarts:
        said = ", ".join(f"{name} {n}" for name, n in report.restarts.items())
        lines.append(f"restarted by their keepers     {said}")
    if report.republished:
        lines.append(
            f"republished after a lost broker {report.republished:>7,}  (MQTT monitors: what "
            "they sent just before; the platform skips what it has)"
        )
    if a.lost_by_device:
        lines.append(f"lost by device: {json.dumps(a.lost_by_device)}")
    lines += [f"problem: {p}" for p in report.problems]
    lines.append(json.dumps(report.as_dict(), ensure_ascii=False))
    return lines


_CSV = Dialect(header=True, annotations=[])

# -- the edge: devices -------------------------------------------------------------------------

# An exceedance: COD held at this multiple of the limit, so a case opens and people are told.
EXCEED_FACTOR = 2.5
# HJ 212: an unanswered packet is sent again after this (the standard's default time-out is
# 5 s), doubling up to the cap, as a monitor keeps its data until the platform answers.
HJ212_RESEND_AFTER = 5.0
HJ212_RESEND_CAP = 40.0
# Kept readings resent (RF=1) and not yet answered, at most, per monitor.
HJ212_RESEND_WINDOW = 50
POLL_SECONDS = 1.0
POLL_SECONDS_SAMPLING = 0.25


class DrillDevice:
    """A catalogue device, its model, and the exceedance the drill switches on and off."""

    def __init__(self, entry: DeviceEntry, seed: int, ledger: Ledger, base: datetime) -> None:
        self.entry = entry
        self.device, self.site = entry.device.id, entry.site.id
        self.model: BaseMonitor = model_for(entry, seed)
        self.ledger = ledger
        self.base = base

    def exceed(self, on: bool) -> None:
        self.model.exceed(COUNTED_POLLUTANT, EXCEED_FACTOR if on else None)

    def next_reading(self) -> tuple[int, DeviceReading]:
        index = self.ledger.publish(self.device)
        reading = self.model.reading(reading_time(self.base, index))
        assert reading is not None  # the drill never switches a model offline
        return index, reading

    def send_next(self) -> int:
        """Measure the next reading and hand it on; its index."""
        raise NotImplementedError

    @property
    def connected(self) -> bool:
        raise NotImplementedError


class MqttDevice(DrillDevice):
    """QoS 1 without waiting: paho keeps what the broker has not acknowledged and sends it again
    after a reconnect; each PUBACK is filed against its reading's index, and what a broker
    killed -9 may have forgotten is published again (simulators/mqtt_readings.py)."""

    def __init__(self, *args: object, settings: Settings, password: str, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.connects = 0
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=self.device, protocol=mqtt.MQTTv5
        )
        self.client.username_pw_set(self.device, password)
        self.client.max_inflight_messages_set(100)
        self.client.max_queued_messages_set(0)  # keep everything while the broker is away
        self.client.reconnect_delay_set(0.2, 2)
        self.readings: ReadingSender[int] = ReadingSender(
            self.client, topics.reading_topic(self.site, self.device), self._acked
        )
        self.client.on_publish = self._on_publish
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.connect(settings.mqtt_host, settings.mqtt_port, keepalive=15)
        self.client.loop_start()

    def _acked(self, index: int, ok: bool) -> None:
        if ok:
            self.ledger.ack(self.device, index)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if not reason_code.is_failure:
            self.connects += 1
            self.readings.connected()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.readings.lost(reason_code)

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        self.readings.acknowledged(mid, reason_code)

    @property
    def connected(self) -> bool:
        return self.client.is_connected()

    @property
    def republished(self) -> int:
        return self.readings.republished

    def send_next(self) -> int:
        index, reading = self.next_reading()
        self.readings.send(reading.model_dump_json(exclude_none=True).encode(), index)
        return index

    @property
    def unacknowledged(self) -> int:
        return self.readings.unacknowledged

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Hj212Device(DrillDevice):
    """A monitor on HJ 212-2025 over TCP (simulators/hj212_link.py) from an address of its own
    (the server takes at most 8 connections per address), keeping each packet until its 9014
    comes: sent again after a time-out, and all at once after a reconnect.

    Taken off the network (:meth:`go_offline`), it keeps measuring and keeps what it measured;
    back on it (:meth:`come_back`), it sends its live readings as usual and resends what it
    kept marked RF=1, oldest first, at most :data:`HJ212_RESEND_WINDOW` unanswered at a time,
    as a monitor paces its 补传."""

    def __init__(
        self, *args: object, settings: Settings, password: str, address: str, **kw: object
    ) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.uplink: Hj212Uplink[int] = Hj212Uplink(
            self.device,
            "32",  # a water pollution source
            settings.hj212_host,
            settings.hj212_port,
            self._acked,
            password=password,
            dialect=Hj212Dialect(hj212.Version.V2025),
            keep_at_most=None,  # a drill's outage loses nothing it measured
            resend_window=HJ212_RESEND_WINDOW,
            retry=Retry(HJ212_RESEND_AFTER, HJ212_RESEND_CAP),
            local_address=address,
        )
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._offline = False
        self.kept_total = 0  # readings it kept while off the network

    def _acked(self, index: int) -> None:
        self.ledger.ack(self.device, index)

    def go_offline(self) -> None:
        """Off the network: the connection drops and stays down; readings are kept."""
        self._offline = True
        self.uplink.drop()

    def come_back(self) -> None:
        self._offline = False

    @property
    def kept(self) -> int:
        return self.uplink.kept

    @property
    def kept_resent(self) -> int:
        """Of the readings it kept, those resent with RF=1."""
        return self.uplink.kept_resent

    @property
    def connected(self) -> bool:
        return self.uplink.connected

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        """Connected whenever it is on the network: a lost connection is opened again."""
        while not self._stop.is_set():
            if self._offline:
                await asyncio.sleep(0.2)
                continue
            try:
                await self.uplink.open()  # what is unanswered goes again at once
            except ServiceDown:
                await asyncio.sleep(0.5)
                continue
            self.uplink.send_kept()  # then what it kept, as far as the window goes
            await self.uplink.closed()

    def send_next(self) -> int:
        index, reading = self.next_reading()
        if self._offline:  # measured, kept until the network is back
            self.uplink.keep(reading, index)
            self.kept_total += 1
        else:
            self.uplink.send(reading, index)
        return index

    def resend_overdue(self, now: float) -> None:
        self.uplink.resend_overdue(now)

    async def close(self) -> None:
        self._stop.set()
        self.uplink.drop()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task


# -- the edge: processes and services ----------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _group_to_end(settings: Settings, group: str) -> None:
    """Commit the drill worker's new consumer group at the end of every source topic, so it
    judges the drill's readings only, not the topics' history (a new Faust group starts at
    the earliest offset). The drill's one direct Kafka client."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from ecowatch.config.kafka_accounts import WORKER_SOURCES, Role, access_for
    from ecowatch.edges.kafka import ensure_topics

    async def commit() -> None:
        # As the worker whose group it is: only its principal may commit for it.
        kafka = access_for(settings, Role.WORKER)
        await ensure_topics(kafka, settings.kafka_partitions)
        consumer = AIOKafkaConsumer(
            **kafka.client_options(), group_id=group, enable_auto_commit=False
        )
        await consumer.start()
        try:
            await consumer._client.force_metadata_update()
            parts = [
                TopicPartition(t, p)
                for t in WORKER_SOURCES
                for p in sorted(consumer.partitions_for_topic(t) or ())
            ]
            consumer.assign(parts)
            ends = await consumer.end_offsets(parts)
            if ends:
                await consumer.commit(dict(ends))
        finally:
            await consumer.stop()

    # A new group's first request meets "coordinator not available" a few times: expected.
    quiet = logging.getLogger("aiokafka")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        asyncio.run(commit())
    finally:
        quiet.setLevel(level)


FAST_POLICIES = """\
# Written by `ecowatch drill`: a real-time exceedance goes to the enterprise, then the
# officers, a renotification and the supervisor within seconds; nothing else pages anyone.
policies:
  - rule: realtime_over_limit
    pending: 0s
    deadline: 4s
    ack_timeout: 6s
    renotify: 1
    hold: 1h
    escalate: true
  - severity: warning
    pending: 30d
  - severity: violation
    pending: 30d
"""


@dataclass
class DrillOptions:
    rate: float = 400.0
    mqtt_devices: int = 20
    hj212_devices: int = 10
    faults: tuple[str, ...] = FAULTS
    gap: float = 20.0  # steady load before the first fault and after each recovery
    influx_outage: float = 20.0
    recovery_timeout: float = 180.0
    drain_timeout: float = 180.0
    seed: int = 1
    # Which of the catalogue's outfall monitors the drill drives, from this one (1-based):
    # a drill on a stack others use leaves the monitors they drive alone.
    first_monitor: int = 1
    storm: bool = False
    storm_span: float = 40.0  # the storm's faults begin within this many seconds
    # How the storm stops Mosquitto: "kill" (-9) or "term". Mosquitto 2.0 saves its queue at
    # most about once a second (autosave_on_changes): -9 loses what it acknowledged since.
    storm_mosquitto: str = "kill"
    storm_recovery_limit: float = STORM_RECOVERY_SECONDS
    # --outage-resend: this share of the HJ 212 monitors off the network this long, then
    # resending what they kept (RF=1) while the others report live.
    outage_resend: bool = False
    outage_share: float = 0.5
    outage_seconds: float = 120.0
    live_p99_limit: float = 2.0


class Drill:
    """Runs the drill against the local stack; ``echo`` says what happens as it happens."""

    def __init__(
        self,
        settings: Settings,
        catalogue: Catalogue,
        options: DrillOptions,
        echo: Callable[[str], None],
    ) -> None:
        from ecowatch.devtools.stack.services import Stack

        self.settings = settings
        self.catalogue = catalogue
        self.options = options
        self.echo = echo
        self.stack = Stack(settings, catalogue)
        self.run_id = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
        self.folder = private_dir(settings.state_dir / "drill" / self.run_id)
        self.tally = NotificationTally(self.folder / "notifications.jsonl")
        self.outcomes: list[FaultOutcome] = []
        self.problems: list[str] = []
        self._t0 = time.monotonic()
        self._stored_total: int | None = None
        self._recoveries: list[Recovery] = []
        # --outage-resend: publish times of the live devices' readings while a backlog drains,
        # and when InfluxDB held them (polled every POLL_SECONDS_SAMPLING then).
        self.poll_seconds = POLL_SECONDS_SAMPLING if options.outage_resend else POLL_SECONDS
        self.arrivals = Arrivals()
        self._samples: list[tuple[str, int, float]] = []
        self._sampling = False
        self._live: set[str] = set()
        self.live_latency: dict[str, float | int | None] = {}
        entries = [
            e
            for e in catalogue.devices.values()
            if e.device.model.value == "outfall_monitor"
            and COUNTED_POLLUTANT in e.device.pollutants
        ]
        wanted = options.mqtt_devices + options.hj212_devices
        first = options.first_monitor - 1
        if first < 0 or first + wanted > len(entries) or wanted < 1:
            raise ConfigError(
                f"--devices, --hj212-devices, --first-monitor: the catalogue has "
                f"{len(entries)} outfall monitors for the drill"
            )
        self.entries = entries[first : first + wanted]

    def say(self, text: str) -> None:
        self.echo(f"{time.strftime('%H:%M:%S')} +{time.monotonic() - self._t0:5.0f}s  {text}")

    # -- InfluxDB ----------------------------------------------------------------------------

    def _flux(self, query: str, timeout_ms: int = 10_000) -> list[list[str]]:
        """A Flux query's answer as CSV rows: the header, then the data."""
        from ecowatch.streams.storage.store import influx_client

        with influx_client(self.settings, timeout_ms) as client:
            rows = [r for r in client.query_api().query_csv(query, dialect=_CSV) if r]
        # Each table of the answer repeats the header: keep the first, drop the repeats.
        return rows[:1] + [r for r in rows[1:] if r != rows[0]]

    def _counts(self, stops: Mapping[str, datetime] | None = None) -> dict[str, int]:
        """Stored readings per device in the drill's window, or up to each device's ``stops``."""
        bucket, pollutant = self.settings.influx_bucket, COUNTED_POLLUTANT
        if stops is None:
            devices, end = self.ledger.devices, self.window_end
            query = flux.pollutant_counts(bucket, pollutant, devices, self.base, end)
        else:
            query = flux.pollutant_counts_until(bucket, pollutant, self.base, stops)
        rows = self._flux(query)
        header, *data = rows or [[]]
        if not data:
            return {}
        di, vi = header.index("device"), header.index("_value")
        out: dict[str, int] = Counter()
        for row in data:
            out[row[di]] += int(row[vi])
        return dict(out)

    def _stored_indexes(self, device: str) -> set[int]:
        query = flux.pollutant_times(
            self.settings.influx_bucket, COUNTED_POLLUTANT, [device], self.base, self.window_end
        )
        header, *data = self._flux(query, timeout_ms=60_000) or [[]]
        if not data:
            return set()
        ti = header.index("_time")
        return {
            reading_index(self.base, datetime.fromisoformat(row[ti].replace("Z", "+00:00")))
            for row in data
        }

    def _choose_window(self, span: timedelta) -> datetime:
        """A window of the drill's own: no reading of its devices stored there yet."""
        now = datetime.now(UTC).replace(microsecond=0)
        bucket = timedelta(minutes=10)
        earliest = now - timedelta(days=6, hours=12)  # readings older than 7 days are refused
        devices = [e.device.id for e in self.entries]
        query = flux.pollutant_windows(
            self.settings.influx_bucket, COUNTED_POLLUTANT, devices, earliest, bucket
        )
        header, *data = self._flux(query, timeout_ms=120_000) or [[]]
        ti = header.index("_time") if data else 0
        occupied = {datetime.fromisoformat(r[ti].replace("Z", "+00:00")) for r in data}
        start = free_window(occupied, bucket, earliest, now - timedelta(hours=1), span)
        if start is None:
            raise EcowatchError(
                "no free window for the drill's readings in the last 6.5 days: InfluxDB holds "
                "readings of these devices all through it"
            )
        return start

    # -- running ---------------------------------------------------------------------------

    def run(self) -> DrillReport:
        from ecowatch.devtools.stack.process import Progress
        from ecowatch.devtools.stack.services import Stack

        o = self.options
        self.stack.up(Progress(self.echo))
        # With the secrets a first `stack up` generated (InfluxDB's start needs its token).
        self.settings = load_settings()
        self.stack = Stack(self.settings, self.catalogue)
        self._warn_of_ephemeral_ports()
        per_device = o.rate / len(self.entries)
        if o.storm:
            planned = 2 * o.gap + o.storm_span + 20.0 + o.recovery_timeout + 120.0
        elif o.outage_resend:
            planned = 2 * o.gap + o.outage_seconds + o.recovery_timeout + 120.0
        else:
            planned = planned_seconds(o.faults, o.gap, o.influx_outage)
        span = timedelta(seconds=math.ceil(per_device * planned))
        self.ledger = Ledger(
            {
                e.device.id: ("mqtt" if i < o.mqtt_devices else "hj212")
                for i, e in enumerate(self.entries)
            }
        )
        self.base = self._choose_window(span)
        self.window_end = self.base + span
        self.say(
            f"readings dated {self.base:%Y-%m-%d %H:%M}Z onwards, one second apart per device "
            f"({per_device:.1f} per device per real second)"
        )
        app_id = f"ecowatch-drill-{self.run_id}"
        _group_to_end(self.settings, app_id)
        from ecowatch.devtools.inbox import Inbox, people_env

        inbox = Inbox(lambda r: self.tally.record(r.recipient, r.title, r.message)).__enter__()
        # Everyone's messages go to the drill's receiver: a drill never pages a real person.
        notify = {
            var: f"json://127.0.0.1:{inbox.port}/{person}"
            for var, person in people_env(self.catalogue).items()
        }
        self.web_port = _free_port()
        # A drill puts a fleet's load on a few monitors, each far above its catalogue rate:
        # no per-device rate limit in its bridge and HJ 212 server.
        base_env = {**os.environ, "ECOWATCH_READING_RATE_FACTOR": "0"}
        worker_env = {
            **base_env,
            **notify,
            "ECOWATCH_APP_ID": app_id,
            "ECOWATCH_WEB_PORT": str(self.web_port),
            "ECOWATCH_CATALOGUE": str(
                copy_with_policies(
                    self.settings.catalogue_folder(), self.folder / "catalogue", FAST_POLICIES
                )
            ),
            "ECOWATCH_TICK_SECONDS": "1",
        }
        # Their own /health (stalled or not): the storm asks them whether they are back.
        self.health_ports = {"bridge": _free_port(), "hj212": _free_port()}
        bridge_env = {**base_env, "ECOWATCH_BRIDGE_HEALTH_PORT": str(self.health_ports["bridge"])}
        hj212_env = {**base_env, "ECOWATCH_HJ212_HEALTH_PORT": str(self.health_ports["hj212"])}
        commands = {"worker": ["worker"], "bridge": ["bridge"], "hj212": ["hj212", "serve"]}
        envs = {"worker": worker_env, "bridge": bridge_env, "hj212": hj212_env}
        # The platform's processes the drill runs (``ecowatch <command>``), kills and starts
        # again. In a storm they are kept: their keeper's rounds start whatever exited again,
        # planned or not; otherwise the drill starts them again, and any death it did not cause
        # ends it.
        self.stages = {
            name: KeptProcess(
                name,
                ecowatch_argv(*command),
                self.folder / f"{name}.log",
                envs[name],
                lambda line: self.say(f"keeper: {line}"),
                time.monotonic,
                Backoff(first=1.0, cap=10.0),
            )
            for name, command in commands.items()
        }
        self.kept: dict[str, KeptProcess] = dict(self.stages) if o.storm else {}
        self.supervisor = Supervisor(
            [],
            FlowWatch(
                [("acknowledged", "stored")],
                # The planned outages stand the store still on purpose; longer is a fault.
                stall_after=(
                    o.storm_span + 120.0 if o.storm else max(60.0, o.influx_outage + 60.0)
                ),
            ),
            owners={},
        )
        try:
            return asyncio.run(self._main())
        finally:
            for stage in self.stages.values():
                stage.stop()
            inbox.__exit__(None, None, None)
            self.echo(f"logs of the drill's processes: {self.folder}")

    def _warn_of_ephemeral_ports(self) -> None:
        try:
            text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text()
            low, high = (int(x) for x in text.split())
        except (OSError, ValueError):
            return
        s = self.settings
        ports = {"MQTT": s.mqtt_port, "Kafka": s.kafka_port, "Kafka controller": s.kafka_port + 1}
        ports |= {"InfluxDB": s.influx_port, "HJ 212": s.hj212_port}
        clashes = ephemeral_ports(ports, low, high)
        if clashes:
            self.say(
                f"warning: {', '.join(clashes)} in the ephemeral port range {low}-{high}: a "
                "client reconnecting while the service is down may take the port itself and "
                "keep the service from starting again; choose ports below it"
            )

    def _start_stage(self, name: str) -> ChildProcess:
        child = self.stages[name].start()
        if name in self.kept:  # watched by its keeper, not by the supervisor
            return child
        self.supervisor.children = [c for c in self.supervisor.children if c.name != name] + [child]
        self.supervisor.owners["stored"] = self.stages["worker"].child or "worker"
        return child

    async def _wait_for(self, check: Callable[[], bool], timeout: float, what: str) -> float:
        started = time.monotonic()
        while not check():
            self.supervisor.check_children()
            if time.monotonic() - started > timeout:
                raise EcowatchError(f"{what} did not happen within {timeout:.0f} s")
            await asyncio.sleep(0.1)
        return time.monotonic() - started

    async def _stage_ready(self, name: str) -> None:
        if name == "worker":
            await self._wait_for(
                lambda: bool((read_health(self.web_port) or {}).get("ready")),
                180,
                "the worker ready",
            )
        elif name == "bridge":
            child = self.stages[name].child
            assert child is not None
            await self._wait_for(
                lambda: "bridge subscribed" in child.log_since_start(), 60, "the bridge subscribed"
            )
        else:
            s = self.settings
            await self._wait_for(
                lambda: port_open(s.hj212_host, s.hj212_port), 60, "the HJ 212 server listening"
            )

    async def _main(self) -> DrillReport:
        return await self.supervisor.run(self._drill())

    async def _drill(self) -> DrillReport:
        o = self.options
        for name in ("worker", "bridge", "hj212"):
            child = self._start_stage(name)
            self.say(f"{name} started (pid {child.pid}, log {child.log_path})")
        for name in ("bridge", "hj212", "worker"):
            await self._stage_ready(name)
        self.say("worker ready, bridge subscribed, HJ 212 server listening")
        self.devices = self._connect_devices()
        await self._wait_for(
            lambda: all(d.connected for d in self.devices), 30, "every device connected"
        )
        self.say(
            f"{o.mqtt_devices} devices over MQTT, {o.hj212_devices} over HJ 212: "
            f"{o.rate:g} readings/s in all"
        )
        stop_load = asyncio.Event()
        load = asyncio.create_task(self._load(stop_load))
        poll = asyncio.create_task(self._poll())
        tend = asyncio.create_task(self._tend())
        started = time.monotonic()
        try:
            await self._steady(o.gap)
            exceeding = iter(self._exceeders())
            if o.storm:
                await self._storm(next(exceeding, []))
            elif o.outage_resend:
                await self._outage_resend()
            for fault in () if o.storm or o.outage_resend else o.faults:
                # A device over its limit from just before the fault: its case's notifications
                # go out while the fault lasts.
                hot = next(exceeding, [])
                for d in hot:
                    d.exceed(True)
                await self._steady(min(3.0, o.gap))
                outcome = await self._apply(fault)
                self.outcomes.append(outcome)
                await self._recover(outcome)
                for d in hot:
                    d.exceed(False)
                await self._steady(o.gap)
            stop_load.set()
            await load
            await self._drain()
        finally:
            stop_load.set()
            poll.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await poll
            tend.cancel()
            await asyncio.gather(*(self._close(d) for d in self.devices))
        seconds = time.monotonic() - started
        await self._notifications_settle()
        self.say("counting what InfluxDB holds, reading by reading")
        stored = {d: await asyncio.to_thread(self._stored_indexes, d) for d in self.ledger.devices}
        duplicated = self.tally.duplicated()
        for recipient, title, times in duplicated:
            self.problems.append(f"{recipient} received {title!r} {times} times")
        return DrillReport(
            rate=o.rate,
            devices={"mqtt": o.mqtt_devices, "hj212": o.hj212_devices},
            seconds=seconds,
            accounts=account(self.ledger, stored),
            notifications=self.tally.delivered,
            duplicate_notifications=self.tally.duplicates,
            possible_repeats=self.tally.possible_repeats,
            faults=self.outcomes,
            problems=self.problems,
            window=(self.base, self.window_end),
            device_ids=list(self.ledger.devices),
            restarts={name: kept.restarts for name, kept in self.kept.items()},
            live_latency=self.live_latency,
            republished=sum(d.republished for d in self.devices if isinstance(d, MqttDevice)),
        )

    def _connect_devices(self) -> list[DrillDevice]:
        s, o = self.settings, self.options
        credentials = load_device_credentials(s.device_credentials_file)
        passwords = read_json_object(
            s.hj212_passwords_file, "a JSON object of MN to PW", "run `ecowatch stack up`"
        )
        devices: list[DrillDevice] = []
        for i, entry in enumerate(self.entries):
            args = (entry, o.seed + i, self.ledger, self.base)
            if i < o.mqtt_devices:
                devices.append(MqttDevice(*args, settings=s, password=credentials[entry.device.id]))
            else:
                n = i - o.mqtt_devices
                device = Hj212Device(
                    *args,
                    settings=s,
                    password=str(passwords[entry.device.id]),
                    address=f"127.0.{1 + n // 250}.{1 + n % 250}",
                )
                device.start()
                devices.append(device)
        return devices

    async def _close(self, device: DrillDevice) -> None:
        if isinstance(device, Hj212Device):
            await device.close()
        elif isinstance(device, MqttDevice):
            await asyncio.to_thread(device.close)

    def _exceeders(self) -> list[list[DrillDevice]]:
        """Per fault, the devices that go over their limit: one of each transport, fresh ones
        each time while there are (a new case, so new notifications)."""
        mqtt_ = [d for d in self.devices if isinstance(d, MqttDevice)]
        tcp = [d for d in self.devices if isinstance(d, Hj212Device)]
        return [
            [group[i % len(group)] for group in (mqtt_, tcp) if group]
            for i in range(len(self.options.faults))
        ]

    async def _load(self, stop: asyncio.Event) -> None:
        """Round robin over the devices at the drill's rate; HJ 212 resends on the side."""
        rate, devices = self.options.rate, self.devices
        generated, turn, started, resent_at = 0, 0, time.monotonic(), 0.0
        window = int((self.window_end - self.base) / READING_STEP)
        while not stop.is_set():
            now = time.monotonic()
            for _ in range(due(rate, now - started, generated)):
                device = devices[turn % len(devices)]
                turn += 1
                generated += 1
                if self.ledger.devices[device.device].published >= window:
                    raise EcowatchError(
                        "the drill ran past the window it reserved for its readings"
                    )
                index = device.send_next()
                if self._sampling and device.device in self._live:
                    self._samples.append((device.device, index, now))
            if now - resent_at >= 0.5:
                resent_at = now
                for d in devices:
                    if isinstance(d, Hj212Device):
                        d.resend_overdue(now)
            await asyncio.sleep(0.01)

    async def _steady(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def _poll(self) -> None:
        """Counts from InfluxDB every second: progress, the flow watch, pending recoveries."""
        last_said = 0.0
        while True:
            now = time.monotonic()
            counts: dict[str, int] | None
            try:
                counts = await asyncio.to_thread(self._counts)
            except Exception:  # InfluxDB away (on purpose, or not): no movement this time
                counts = None
            stored = sum(counts.values()) if counts is not None else None
            if stored is not None:
                self._stored_total = stored
                if self._sampling:
                    self.arrivals.seen(time.monotonic(), counts)
            acked = self.ledger.acknowledged
            self.supervisor.check_flow({"acknowledged": acked, "stored": stored})
            for recovery in [r for r in self._recoveries if r.recovered_at is None]:
                stops = {
                    d: reading_time(self.base, newest + 1)
                    for d, (newest, _) in recovery.targets.items()
                }
                with contextlib.suppress(Exception):
                    held = await asyncio.to_thread(self._counts, stops)
                    recovery.observe(time.monotonic(), held)
            if now - last_said >= 5:
                last_said = now
                self.say(
                    f"published {self.ledger.published:,}  acknowledged {acked:,}  "
                    f"stored {self._stored_total if self._stored_total is not None else '?':,}  "
                    f"notifications {self.tally.delivered}"
                )
            await asyncio.sleep(max(0.0, self.poll_seconds - (time.monotonic() - now)))

    async def _recover(self, outcome: FaultOutcome) -> None:
        assert outcome.ended_at is not None
        recovery = Recovery(outcome.ended_at, self.ledger.snapshot())
        outcome.recovery = recovery
        self._recoveries.append(recovery)
        deadline = time.monotonic() + self.options.recovery_timeout
        while recovery.recovered_at is None and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        if recovery.seconds is None:
            self.problems.append(
                f"{outcome.fault}: not recovered within {self.options.recovery_timeout:.0f} s"
            )
            self.say(f"{outcome.fault}: NOT recovered within {self.options.recovery_timeout:.0f} s")
        else:
            self.say(f"{outcome.fault}: recovered {recovery.seconds:.1f} s after the fault's end")

    async def _drain(self) -> None:
        """The load has stopped: wait until every reading is acknowledged and stored."""
        self.say("load stopped; waiting until every reading is acknowledged and stored")
        deadline = time.monotonic() + self.options.drain_timeout
        while time.monotonic() < deadline:
            for d in self.devices:
                if isinstance(d, Hj212Device):
                    d.resend_overdue(time.monotonic())
            acked = self.ledger.acknowledged
            if acked >= self.ledger.published and (self._stored_total or 0) >= acked:
                return
            await asyncio.sleep(0.5)
        self.say("drain: gave up waiting; the counts below are as they stand")

    async def _notifications_settle(self, quiet: float = 5.0, limit: float = 30.0) -> None:
        """Deliveries trail the readings (escalations come seconds after a case opens)."""
        seen, since, end = self.tally.delivered, time.monotonic(), time.monotonic() + limit
        while time.monotonic() < end and time.monotonic() - since < quiet:
            await asyncio.sleep(0.5)
            if self.tally.delivered != seen:
                seen, since = self.tally.delivered, time.monotonic()

    # -- a county's outage, and its resends ---------------------------------------------------

    async def _outage_resend(self) -> None:
        o = self.options
        tcp = [d for d in self.devices if isinstance(d, Hj212Device)]
        away = tcp[: max(1, math.ceil(o.outage_share * len(tcp)))] if tcp else []
        if not away:
            raise ConfigError("--outage-resend needs HJ 212 monitors: --hj212-devices N")
        self._live = {d.device for d in self.devices if d not in away}
        self.say(
            f"outage: {len(away)} of {len(tcp)} HJ 212-2025 monitors off the network for "
            f"{o.outage_seconds:.0f} s; {len(self._live)} others keep reporting"
        )
        outcome = FaultOutcome("outage-resend", time.monotonic())
        for d in away:
            d.go_offline()
        await asyncio.sleep(o.outage_seconds)
        kept = sum(d.kept for d in away)
        targets = {
            d.device: (
                self.ledger.devices[d.device].published - 1,
                self.ledger.devices[d.device].published,
            )
            for d in away
        }
        for d in away:
            d.come_back()
        outcome.ended_at = time.monotonic()
        recovery = Recovery(outcome.ended_at, targets)
        outcome.recovery = recovery
        self._recoveries.append(recovery)
        self._sampling = True
        self.say(f"outage over: {kept:,} kept readings resent with RF=1, live ones meanwhile")
        deadline = time.monotonic() + o.recovery_timeout
        while recovery.recovered_at is None and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        self._sampling = False
        # The last live readings of the window: give their arrival a few polls.
        await asyncio.sleep(3 * self.poll_seconds)
        latencies = self.arrivals.latencies(self._samples)
        p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
        self.live_latency = {
            "p50_s": _round(p50),
            "p99_s": _round(p99),
            "samples": len(latencies),
            "drain_s": _round(recovery.seconds),
            "kept": kept,
        }
        outcome.applied = kept > 0 and all(d.kept_resent == d.kept_total for d in away)
        outcome.evidence = {
            "monitors": len(away),
            "kept": kept,
            "resent_rf1": sum(d.kept_resent for d in away),
            "live_p50_s": _round(p50),
            "live_p99_s": _round(p99),
        }
        outcome.detail = (
            f"{len(away)} monitors away {outcome.down_seconds:.0f} s kept {kept:,} readings; "
            f"drained in {_seconds(recovery.seconds)}; live readings meanwhile p50 "
            f"{_seconds(p50)}, p99 {_seconds(p99)} ({len(latencies):,} sampled)"
        )
        self.outcomes.append(outcome)
        self.say(f"outage-resend: {outcome.detail}")
        if p99 is None or p99 > o.live_p99_limit:
            self.problems.append(
                f"live readings' p99 {_seconds(p99)} while the backlog drained, over "
                f"{o.live_p99_limit:g} s"
            )
        await self._steady(o.gap)

    # -- the storm -------------------------------------------------------------------------

    async def _tend(self) -> None:
        """The keepers' rounds (storm only): whatever exited is started again."""
        while self.kept:
            for kept in self.kept.values():
                kept.tend()
            await asyncio.sleep(0.25)

    async def _storm(self, hot: list[DrillDevice]) -> None:
        o = self.options
        plan = storm_plan(o.seed, o.storm_span, o.faults)
        self.say(
            f"storm (seed {o.seed}): "
            + ", ".join(
                f"+{f.at:.0f}s {f.fault}" + (f" (away {f.down:.0f}s)" if f.down else "")
                for f in plan
            )
        )
        for d in hot:  # a case open through the storm: its notifications go out meanwhile
            d.exceed(True)
        begun = time.monotonic()

        async def at_its_time(planned: StormFault) -> FaultOutcome:
            await asyncio.sleep(max(0.0, begun + planned.at - time.monotonic()))
            return await self._storm_fault(planned)

        outcomes = await asyncio.gather(*(at_its_time(f) for f in plan))
        self.outcomes.extend(outcomes)
        last = max(x.ended_at or x.started_at for x in outcomes)
        recovery = Recovery(last, self.ledger.snapshot())
        for outcome in outcomes:
            outcome.recovery = recovery
        self._recoveries.append(recovery)
        self.say("storm over: waiting until everything acknowledged by its end is stored")
        deadline = time.monotonic() + o.recovery_timeout
        while recovery.recovered_at is None and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        limit = o.storm_recovery_limit
        if recovery.seconds is None or recovery.seconds > limit:
            self.problems.append(
                f"storm: not recovered within {limit:.0f} s of its last fault"
                f" ({_seconds(recovery.seconds)})"
            )
        self.say(f"storm: recovered {_seconds(recovery.seconds)} after its last fault")
        back = await self._stages_back(last + limit - time.monotonic())
        if back:
            self.problems.append(f"storm: not back within {limit:.0f} s of the last fault: {back}")
        for d in hot:
            d.exceed(False)
        await self._steady(o.gap)

    async def _stages_back(self, within: float) -> str:
        """'' once every stage runs and says it moves (worker ready, bridge and HJ 212 server
        not stalled), else what is not back when ``within`` seconds are up."""
        deadline = time.monotonic() + max(within, 1.0)
        while True:
            missing = []
            if not (read_health(self.web_port) or {}).get("ready"):
                missing.append("worker not ready")
            for name, port in self.health_ports.items():
                health = read_health(port)
                if health is None or health.get("stalled"):
                    missing.append(f"{name} {'stalled' if health else 'not answering'}")
            if not missing or time.monotonic() > deadline:
                return ", ".join(missing)
            await asyncio.sleep(0.5)

    async def _storm_fault(self, planned: StormFault) -> FaultOutcome:
        fault = planned.fault
        self.say(f"storm: {fault}: {STORM_ACTIONS[fault]}")
        outcome = FaultOutcome(fault, time.monotonic())
        if fault in SERVICES:
            await self._kill_service(fault, planned.down, outcome)
        else:
            await self._kill_kept(fault, outcome)
        self.say(f"storm: {fault}: {outcome.detail}")
        return outcome

    async def _kill_kept(self, name: str, outcome: FaultOutcome) -> None:
        kept = self.kept[name]
        old = kept.child
        assert old is not None
        code = await asyncio.to_thread(old.kill)
        # Its keeper starts it again; nobody else does.
        with contextlib.suppress(EcowatchError):
            await self._wait_for(lambda: kept.child is not old and kept.running, 60, name)
        outcome.ended_at = time.monotonic()
        new = kept.child
        assert new is not None
        outcome.applied = code == -signal.SIGKILL and new.pid != old.pid
        outcome.evidence = {"old_pid": old.pid, "new_pid": new.pid, "exit_code": code}
        outcome.detail = (
            f"pid {old.pid} killed (exit {code}), its keeper restarted it as pid {new.pid}"
        )

    async def _kill_service(self, name: str, down: float, outcome: FaultOutcome) -> None:
        from ecowatch.devtools.stack.process import Progress, pid_alive

        service = {"influxdb": self.stack.influxdb, "kafka": self.stack.kafka}.get(
            name, self.stack.mosquitto
        )
        old_pid = service.proc.pid()
        if old_pid is None:
            outcome.detail = "was not running: not applied"
            outcome.ended_at = time.monotonic()
            return
        outcome.started_at = time.monotonic()
        term = name == "mosquitto" and self.options.storm_mosquitto == "term"
        os.kill(old_pid, signal.SIGTERM if term else signal.SIGKILL)
        await self._wait_for(lambda: not pid_alive(old_pid), 20, f"{name} gone")
        killed_at = time.monotonic()
        await asyncio.sleep(max(0.0, down - (time.monotonic() - killed_at)))
        error = ""
        for attempt in range(3):  # a start that fails (a port still held) is tried again
            try:
                await asyncio.to_thread(service.start, Progress(lambda line: None))
                break
            except EcowatchError as exc:
                error = str(exc).splitlines()[0]
                self.say(f"storm: {name} did not start (try {attempt + 1}): {error}")
                await asyncio.sleep(3)
        outcome.ended_at = time.monotonic()
        new_pid = service.proc.pid()
        outcome.applied = new_pid not in (None, old_pid)
        outcome.evidence = {
            "old_pid": old_pid,
            "new_pid": new_pid,
            "signal": "SIGTERM" if term else "SIGKILL",
            "away_s": round(outcome.ended_at - killed_at, 1),
        }
        outcome.detail = (
            f"pid {old_pid} {'stopped (SIGTERM)' if term else 'killed (-9)'}, "
            f"away {outcome.ended_at - killed_at:.1f} s, "
            f"back as pid {new_pid}" + (f"; {error}" if new_pid is None else "")
        )

    # -- the faults ------------------------------------------------------------------------

    async def _apply(self, fault: str) -> FaultOutcome:
        self.say(f"fault {fault}: {FAULT_ACTIONS[fault]}")
        outcome = FaultOutcome(fault, time.monotonic())
        if fault in ("worker", "bridge", "hj212"):
            await self._kill_and_restart(fault, outcome)
        else:
            await self._restart_service(fault, outcome)
        self.say(f"fault {fault}: {outcome.detail}")
        return outcome

    async def _kill_and_restart(self, name: str, outcome: FaultOutcome) -> None:
        old = self.stages[name].child
        assert old is not None
        connected = sum(1 for d in self.devices if isinstance(d, Hj212Device) and d.connected)
        # Killed and replaced with no await in between: the supervisor never sees the planned
        # death as a failure, and any other death still ends the drill.
        outcome.started_at = time.monotonic()
        code = old.kill()
        new = self._start_stage(name)
        outcome.ended_at = time.monotonic()
        outcome.evidence = {"old_pid": old.pid, "new_pid": new.pid, "exit_code": code}
        outcome.applied = code == -signal.SIGKILL and new.pid != old.pid
        outcome.detail = f"pid {old.pid} killed (exit {code}), restarted as pid {new.pid}"
        if name == "hj212":
            outcome.evidence["devices_connected"] = connected
            outcome.applied = outcome.applied and connected > 0
            outcome.detail += f"; {connected} HJ 212 devices were connected"

    async def _restart_service(self, name: str, outcome: FaultOutcome) -> None:
        from ecowatch.devtools.stack.process import Progress

        service = {"influxdb": self.stack.influxdb, "kafka": self.stack.kafka}.get(
            name, self.stack.mosquitto
        )
        s = self.settings
        host, port = {
            "influxdb": (s.influx_host, s.influx_port),
            "kafka": (s.kafka_host, s.kafka_port),
            "mosquitto": (s.mqtt_host, s.mqtt_port),
        }[name]
        old_pid = service.proc.pid()
        reconnects = sum(d.connects for d in self.devices if isinstance(d, MqttDevice))
        outcome.started_at = time.monotonic()
        await asyncio.to_thread(service.stop)
        stopped_at = time.monotonic()
        closed = not port_open(host, port)
        if name == "influxdb":
            await asyncio.sleep(
                max(0.0, self.options.influx_outage - (time.monotonic() - stopped_at))
            )
        await asyncio.to_thread(service.start, Progress(lambda line: None))
        outcome.ended_at = time.monotonic()
        new_pid = service.proc.pid()
        outcome.evidence = {
            "old_pid": old_pid,
            "new_pid": new_pid,
            "port_closed": closed,
            "stopped_for_s": round(outcome.ended_at - stopped_at, 1),
        }
        outcome.applied = closed and old_pid is not None and new_pid not in (None, old_pid)
        outcome.detail = (
            f"pid {old_pid} stopped, its port closed for {outcome.ended_at - stopped_at:.1f} s, "
            f"back as pid {new_pid}"
        )
        if name == "mosquitto":
            await asyncio.sleep(3)  # paho reconnects with a back-off of up to 2 s
            again = sum(d.connects for d in self.devices if isinstance(d, MqttDevice)) - reconnects
            outcome.evidence["mqtt_reconnects"] = again
            outcome.applied = outcome.applied and again > 0
            outcome.detail += f"; {again} MQTT devices reconnected"


def run_drill(
    settings: Settings, catalogue: Catalogue, options: DrillOptions, echo: Callable[[str], None]
) -> DrillReport:
    drill = Drill(settings, catalogue, options, echo)
    try:
        return drill.run()
    except StageFailed as failed:
        # A stage that died or stood still unplanned: say so, with its log, and stop.
        raise EcowatchError(f"the drill stopped: {failed}") from None
