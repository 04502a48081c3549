"""What the benchmarks measure (`ecowatch bench core` and `bench pipeline`, whose commands are
in ``ecowatch.cli.bench``): the hot paths' timings, the pipeline's load generator, CPU read
from /proc, and latency samples. Imports no command.

Speed is measured here, never asserted in a test. `core` times the pure hot paths one by one;
`pipeline` pushes readings through the real stack (devices → Mosquitto → bridge → Kafka →
worker → InfluxDB) and times them until InfluxDB has every point.

Run as ``python -m ecowatch.devtools.bench DEVICES READINGS START RATE SAMPLE_EVERY OVER_LIMIT_EVERY
[AHEAD]``, this module is the pipeline's load generator: a process of its own, so that its CPU
is counted apart. It connects every device, publishes each device's one reading dated AHEAD
first when given (the devices' clocks ahead of the run's readings, which are then all late),
says so, and publishes the run's readings once the bench signals it (:data:`LOAD_GO`).
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from ecowatch import topics
from ecowatch.config.catalogue import Catalogue, DeviceEntry, load_catalogue
from ecowatch.config.settings import Settings, load_device_credentials, load_settings
from ecowatch.ingest import hj212
from ecowatch.ingest.validation import accept_mqtt_reading
from ecowatch.schema import DeviceReading, Measurement, Reading
from ecowatch.simulators.mqtt_readings import ReadingSender
from ecowatch.streams.judging.aqi import AqiPeriod, aqi
from ecowatch.streams.judging.rules import SiteJudge
from ecowatch.streams.storage.points import store_lines


@dataclass(frozen=True)
class Figure:
    name: str
    ops: int
    seconds: float

    def line(self) -> str:
        rate = self.ops / self.seconds if self.seconds else float("inf")
        per = self.seconds / self.ops * 1e6 if self.ops else 0.0
        return (
            f"{self.name:<46} {rate:>10,.0f} /s  {per:>8.2f} µs each"
            f"  ({self.ops:,} in {self.seconds:.2f} s)"
        )


def timed(name: str, ops: int, fn: Callable[[], object], repeat: int = 3) -> Figure:
    """The best of ``repeat`` runs: the least disturbed by the rest of the machine."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return Figure(name, ops, best)


# A COD value over every outfall's limit in the catalogue (40 to 100 mg/L): a finding.
OVER_LIMIT_COD = 250.0


def outfall_payload(ts: datetime, seq: int, over_limit: bool = False) -> bytes:
    # Values that move a little, as an analyser's do: the same value reading after reading is
    # itself a finding (恒值, constant value), and a load of them judged every device abnormal.
    return (
        DeviceReading(
            ts=ts,
            seq=seq,
            values={
                "w00000": Measurement(value=31.5 + seq % 7),
                "w01018": Measurement(value=OVER_LIMIT_COD if over_limit else 45.25 + seq % 5),
                "w21003": Measurement(value=3.5 + seq % 3 / 10),
                "w01001": Measurement(value=7.2 + seq % 4 / 10),
            },
        )
        .model_dump_json()
        .encode()
    )


def stack_payload(ts: datetime, seq: int) -> bytes:
    """A coal unit's CEMS minute, under its ultra-low limits once corrected, with its own zs
    (so the mismatch check runs) and the gas's state (so the standard dry flow does)."""
    o2 = 6.5 + seq % 5 / 10
    values = {
        "a34013": 4.0 + seq % 3 / 10,
        "a21026": 20.0 + seq % 7 / 10,
        "a21002": 35.0 + seq % 4 / 10,
        "a19001": o2,
        "a00000": 120.0 + seq % 6,
        "a01011": 12.5,
        "a01012": 118.0 + seq % 3,
        "a01013": -0.35,
        "a01014": 8.2,
    }
    measured = {
        code: Measurement(value=v, zs=round(v * 15 / (21 - o2), 2) if code < "a19" else None)
        for code, v in values.items()
    }
    return DeviceReading(ts=ts, seq=seq, values=measured).model_dump_json().encode()


def core_figures(catalogue: Catalogue, n: int) -> list[Figure]:
    now = datetime.now(UTC)
    entry = next(e for e in catalogue.devices.values() if e.device.model.value == "outfall_monitor")
    topic = topics.reading_topic(entry.site.id, entry.device.id)
    payloads = [outfall_payload(now - timedelta(seconds=i), i) for i in range(n)]
    readings = [accept_mqtt_reading(topic, p, catalogue, now) for p in payloads]
    assert all(isinstance(r, Reading) for r in readings)
    raw = [r.to_json() for r in readings]  # type: ignore[union-attr]
    packet = hj212.build(
        hj212.Packet(
            qn="20261123173000000",
            st="32",
            cn="2011",
            pw="123456",
            mn=entry.device.id,
            flag=5,
            cp={
                "DataTime": "20261123173000",
                "w01018": {"Rtd": 45.25, "Flag": "N"},
                "w21003": {"Rtd": 3.5, "Flag": "N"},
                "w00000": {"Rtd": 31.5, "Flag": "N"},
                "w01001": {"Rtd": 7.2, "Flag": "N"},
            },
        )
    ).encode()
    stream = packet * n
    # As a socket delivers them: 64 KiB reads, packets cut across reads.
    reads = [stream[i : i + 65536] for i in range(0, len(stream), 65536)]

    def frame_and_parse() -> None:
        framer = hj212.Framer()
        for data in reads:
            for frame in framer.feed(data):
                hj212.parse(frame)  # type: ignore[arg-type]

    batch = readings[:1000]
    # The enforce agent's pure core on one site: readings 10 s apart, judged in place.
    judge = SiteJudge(catalogue)
    times = [now + timedelta(seconds=10 * i) for i in range(n)]
    in_order = [
        accept_mqtt_reading(topic, outfall_payload(t, i), catalogue, t) for i, t in enumerate(times)
    ]
    assert all(isinstance(r, Reading) for r in in_order)

    def judge_all() -> None:
        state = None
        for r in in_order:
            state = judge.judge_in_place(state, r).state  # type: ignore[arg-type]

    # A stack's: corrected values, the CEMS checked, O2 and standard dry flow beside its means.
    stack = next(
        e for e in catalogue.devices.values() if e.device.model.value == "flue_gas_monitor"
    )
    stack_topic = topics.reading_topic(stack.site.id, stack.device.id)
    stack_readings = [
        accept_mqtt_reading(stack_topic, stack_payload(t, i), catalogue, t)
        for i, t in enumerate(times)
    ]
    assert all(isinstance(r, Reading) for r in stack_readings), stack_readings[0]

    def judge_stack() -> None:
        state = None
        for r in stack_readings:
            state = judge.judge_in_place(state, r).state  # type: ignore[arg-type]

    return [
        timed(
            "bridge: validate an MQTT reading",
            n,
            lambda: [accept_mqtt_reading(topic, p, catalogue, now) for p in payloads],
        ),
        timed("worker: parse a Kafka reading", n, lambda: [Reading.from_json(b) for b in raw]),
        timed(
            "worker: InfluxDB lines, per reading",
            len(batch) * (n // len(batch) or 1),
            lambda: [store_lines(batch, "2026") for _ in range(n // len(batch) or 1)],
        ),  # type: ignore[arg-type]
        timed("hj212: frame + parse a packet (64 KiB reads)", n, frame_and_parse),
        timed(
            "hj212: parse + build a packet",
            n,
            lambda: [hj212.build(hj212.parse(packet)) for _ in range(n)],
        ),
        timed(
            "aqi: real-time AQI of six pollutants",
            n,
            lambda: [
                aqi(
                    {
                        "a34004": 80,
                        "a34002": 120,
                        "a21026": 20,
                        "a21004": 60,
                        "a05024": 150,
                        "a21005": 1.2,
                    },
                    AqiPeriod.HOUR,
                    "2026",
                )
                for _ in range(n)
            ],
        ),
        timed("enforce: judge a reading in place (rules, means)", n, judge_all),
        timed("enforce: judge a stack's reading in place", n, judge_stack),
    ]


# -- the pipeline's load generator ---------------------------------------------------------------


PAYLOAD_POLLUTANTS = frozenset({"w00000", "w01018", "w21003", "w01001"})


def outfalls(catalogue: Catalogue) -> list[DeviceEntry]:
    """The outfall monitors that measure every pollutant of the bench's payload (a reading
    with another is dead-lettered, and would never reach InfluxDB)."""
    return [
        e
        for e in catalogue.devices.values()
        if e.device.model.value == "outfall_monitor"
        and set(e.device.pollutants) >= PAYLOAD_POLLUTANTS
    ]


# -- findings and their notifications (--over-limit-every) -----------------------------------

# The enterprise is reminded at once of a real-time exceedance (the catalogue's policy waits
# 15 minutes of data time first), and nothing escalates during a bench: the delay measured is
# the platform's own, from deciding to notify to handing the message to apprise.
BENCH_POLICIES = """
policies:
  - rule: realtime_over_limit
    pending: 0
    deadline: 7d
    ack_timeout: 7d
    renotify: 0
    hold: 7d
    escalate: false
  - severity: warning
    pending: 7d
  - severity: violation
    pending: 7d
"""


def notify_env(catalogue: Catalogue, entries: Iterable[DeviceEntry], url: str) -> dict[str, str]:
    """The apprise URL of the enterprises of ``entries``, in their ``notify_env`` variables."""
    out: dict[str, str] = {}
    for e in entries:
        enterprise = catalogue.enterprises.get(e.site.enterprise or "")
        if enterprise is not None and enterprise.contact and enterprise.contact.notify_env:
            out[enterprise.contact.notify_env] = url
    return out


class NotificationSink:
    """A local HTTP server that takes apprise's JSON posts and counts them."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with sink._lock:
                    sink.received += 1
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:  # quiet
                return

        self.received = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self._server.server_address[1]}/enterprise"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class Publisher:
    """One device publishing a fixed number of readings, as fast as the broker takes them or
    at a given rate; every ``sample_every``-th reading's publish time (wall clock) is kept."""

    def __init__(
        self,
        settings: Settings,
        device: str,
        site: str,
        password: str,
        sample_every: int,
        over_limit_every: int = 0,
    ) -> None:
        self.device, self.site = device, site
        self.sample_every = sample_every
        self.over_limit_every = over_limit_every  # every n-th reading over the limit; 0: none
        self.acked = 0
        self.samples: list[tuple[int, float]] = []  # (reading's index, published at)
        self._done = threading.Event()
        self._one = threading.Event()  # publish_one's reading acknowledged
        self._target = 0
        self._lock = threading.Lock()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=device, protocol=mqtt.MQTTv5
        )
        self.client.username_pw_set(device, password)
        self.client.max_inflight_messages_set(200)
        self.client.max_queued_messages_set(0)
        # No broker is killed under the bench: nothing to publish again.
        self.readings: ReadingSender[int] = ReadingSender(
            self.client, topics.reading_topic(site, device), self._acked, republish=False
        )
        self.client.on_publish = lambda c, u, mid, rc, p: self.readings.acknowledged(mid, rc)
        self.client.connect(settings.mqtt_host, settings.mqtt_port)
        self.client.loop_start()

    def _acked(self, index: int, ok: bool) -> None:
        if index < 0:  # publish_one's
            self._one.set()
            return
        with self._lock:
            self.acked += 1
            if self.acked >= self._target:
                self._done.set()

    def publish_one(self, ts: datetime, seq: int, timeout: float = 30.0) -> None:
        """One reading, waited for until Mosquitto has acknowledged it; not counted in
        ``acked`` (the run's readings are)."""
        self._one.clear()
        self.readings.send(outfall_payload(ts, seq), -1)
        self._one.wait(timeout)

    def publish(self, start: datetime, count: int, rate: float) -> None:
        """``rate``: this device's readings per second; 0 for as fast as the broker takes them."""
        self._target = count
        began = time.monotonic()
        for i in range(count):
            if rate:
                ahead = began + i / rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
            n = self.over_limit_every
            payload = outfall_payload(start + timedelta(seconds=i), i, bool(n) and i % n == n - 1)
            if i % self.sample_every == 0:
                self.samples.append((i, time.time()))
            self.readings.send(payload, i)

    def wait(self, timeout: float) -> bool:
        return self._done.wait(timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


# The bench's go to its load generator: the workers have judged the readings ahead.
LOAD_GO = signal.SIGUSR1


def _say(line: dict) -> None:
    print(json.dumps(line), flush=True)


def run_load(
    devices: int,
    readings: int,
    start: datetime,
    rate: float,
    sample_every: int,
    over_limit_every: int = 0,
    ahead: datetime | None = None,
) -> None:
    """The load generator's process: connect every device (and publish each one's reading
    dated ``ahead``), say so, wait for the bench's go (:data:`LOAD_GO`), publish, and say how
    many readings Mosquitto acknowledged (every 0.5 s), then its own CPU and the samples."""
    # Held from the start (paho's threads inherit the mask) until waited for below: a go is
    # neither lost nor, left to its default action, fatal.
    signal.pthread_sigmask(signal.SIG_BLOCK, {LOAD_GO})
    settings = load_settings()
    catalogue = load_catalogue(settings.catalogue_folder())
    credentials = load_device_credentials(settings.device_credentials_file)
    publishers = [
        Publisher(
            settings,
            e.device.id,
            e.site.id,
            credentials[e.device.id],
            sample_every,
            over_limit_every,
        )
        for e in outfalls(catalogue)[:devices]
    ]
    if ahead is not None:
        for p in publishers:
            p.publish_one(ahead, readings)
    _say({"connected": True, "ahead": len(publishers) if ahead is not None else 0})
    signal.sigwait({LOAD_GO})
    cpu0 = process_cpu(os.getpid()) or 0.0
    t0 = time.perf_counter()
    threads = [
        threading.Thread(target=p.publish, args=(start, readings, rate / devices), daemon=True)
        for p in publishers
    ]
    for t in threads:
        t.start()
    while not all(p.wait(0) for p in publishers):
        time.sleep(0.5)
        _say({"acked": sum(p.acked for p in publishers)})
    published = time.perf_counter() - t0
    _say(
        {
            "acked": sum(p.acked for p in publishers),
            "published_seconds": published,
            "cpu_seconds": (process_cpu(os.getpid()) or 0.0) - cpu0,
            "samples": [[p.device, i, at] for p in publishers for i, at in p.samples],
        }
    )
    for p in publishers:
        p.close()


# -- CPU from /proc ------------------------------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu(pid: int) -> float | None:
    """User + system CPU seconds of one process (utime + stime in /proc/PID/stat), or None if
    it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # the name may hold spaces
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def with_descendants(pids: Iterable[int]) -> list[int]:
    """The processes and every descendant (a service started through a script, a JVM's
    helpers): their CPU is the service's."""
    parent_of: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent_of[int(entry.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
    found = [p for p in pids if p in parent_of]
    todo = list(found)
    while todo:
        pid = todo.pop()
        children = [c for c, parent in parent_of.items() if parent == pid]
        found += children
        todo += children
    return found


@dataclass
class CpuMeter:
    """CPU seconds per component between ``start()`` and ``stop()``, read from /proc."""

    components: Mapping[str, list[int]]
    _at_start: dict[int, float] = field(default_factory=dict)
    used: dict[str, float] = field(default_factory=dict)

    def start(self) -> None:
        self._at_start = {
            pid: cpu
            for pids in self.components.values()
            for pid in pids
            if (cpu := process_cpu(pid)) is not None
        }

    def stop(self) -> dict[str, float]:
        for name, pids in self.components.items():
            self.used[name] = sum(
                (process_cpu(pid) or self._at_start.get(pid, 0.0)) - self._at_start.get(pid, 0.0)
                for pid in pids
                if pid in self._at_start
            )
        return self.used


# -- latency -------------------------------------------------------------------------------------


@dataclass
class Arrivals:
    """When each device's readings reached InfluxDB, from polls of the points per device.

    A device's readings travel in order (one MQTT connection, one Kafka partition, the
    worker's batches in turn), so once InfluxDB holds n readings of a device, its first n
    have arrived. A reading's arrival is the end of the first poll that saw it: late by at
    most one poll's period plus its query, never early."""

    polls: dict[str, list[tuple[float, int]]] = field(default_factory=dict)

    def seen(self, at: float, readings_per_device: Mapping[str, int]) -> None:
        for device, n in readings_per_device.items():
            self.polls.setdefault(device, []).append((at, n))

    def arrived(self, device: str, index: int) -> float | None:
        for at, n in self.polls.get(device, ()):
            if n > index:
                return at
        return None

    def latencies(self, samples: Iterable[tuple[str, int, float]]) -> list[float]:
        out = []
        for device, index, published in samples:
            at = self.arrived(device, index)
            if at is not None:
                out.append(at - published)
        return sorted(out)


def percentile(sorted_values: list[float], q: float) -> float | None:
    """The nearest-rank percentile (q in 0..100) of sorted values."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


if __name__ == "__main__":
    _devices, _readings, _start, _rate, _every, _over = sys.argv[1:7]
    _ahead = sys.argv[7] if len(sys.argv) > 7 else ""
    run_load(
        int(_devices),
        int(_readings),
        datetime.fromisoformat(_start).astimezone(UTC),
        float(_rate),
        int(_every),
        int(_over),
        datetime.fromisoformat(_ahead).astimezone(UTC) if _ahead else None,
    )
