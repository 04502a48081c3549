"""Benchmarks that print their figures: `ecowatch bench core` and `ecowatch bench pipeline`.

Speed is measured here, never asserted in a test. `core` times the pure hot paths one by one;
`pipeline` pushes readings through the real stack (devices → Mosquitto → bridge → Kafka →
worker → InfluxDB) and times them until InfluxDB has every point.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import click
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from ecowatch import topics
from ecowatch.config.catalogue import Catalogue, load_catalogue
from ecowatch.config.settings import Settings, load_device_credentials, load_settings
from ecowatch.ingest import hj212
from ecowatch.ingest.bridge import BridgeStats
from ecowatch.ingest.validation import accept_mqtt_reading
from ecowatch.kafka import group_lag
from ecowatch.kafka_accounts import Role, access_for
from ecowatch.schema import DeviceReading, Measurement, Reading
from ecowatch.streams.aqi import Period, aqi
from ecowatch.streams.points import store_lines
from ecowatch.streams.rules import SiteJudge
from ecowatch.streams.store import count_reading_points
from ecowatch.watch import FlowWatch, StageFailed, Supervisor


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


def outfall_payload(ts: datetime, seq: int) -> bytes:
    return (
        DeviceReading(
            ts=ts,
            seq=seq,
            values={
                "w00000": Measurement(value=31.5 + seq % 7),
                "w01018": Measurement(value=45.25),
                "w21003": Measurement(value=3.5),
                "w01001": Measurement(value=7.2),
            },
        )
        .model_dump_json()
        .encode()
    )


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
                    Period.HOUR,
                    "2026",
                )
                for _ in range(n)
            ],
        ),
        timed("enforce: judge a reading in place (rules, means)", n, judge_all),
    ]


@click.group()
def bench() -> None:
    """Benchmarks that print their figures (speed is measured here, not in tests)."""


@bench.command("core")
@click.option("-n", "--count", default=20_000, show_default=True, help="Operations per figure.")
def bench_core(count: int) -> None:
    """The pure hot paths, one by one, on this machine's one core."""
    settings = load_settings()
    catalogue = load_catalogue(settings.catalogue)
    click.echo(f"python {sys.version.split()[0]}, best of 3 runs of {count:,} each")
    for figure in core_figures(catalogue, count):
        click.echo(figure.line())


# -- the pipeline --------------------------------------------------------------------------------


class _Publisher:
    """One device publishing a fixed number of readings as fast as the broker takes them."""

    def __init__(self, settings: Settings, device: str, site: str, password: str) -> None:
        self.device, self.site = device, site
        self.acked = 0
        self._done = threading.Event()
        self._target = 0
        self._lock = threading.Lock()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=device, protocol=mqtt.MQTTv5
        )
        self.client.username_pw_set(device, password)
        self.client.max_inflight_messages_set(200)
        self.client.max_queued_messages_set(0)
        self.client.on_publish = self._on_publish
        self.client.connect(settings.mqtt_host, settings.mqtt_port)
        self.client.loop_start()

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self._lock:
            self.acked += 1
            if self.acked >= self._target:
                self._done.set()

    def publish(self, start: datetime, count: int) -> None:
        self._target = count
        topic = topics.reading_topic(self.site, self.device)
        for i in range(count):
            self.client.publish(topic, outfall_payload(start + timedelta(seconds=i), i), qos=1)

    def wait(self, timeout: float) -> bool:
        return self._done.wait(timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _points_since(settings: Settings, start: datetime, stop: datetime) -> int:
    return count_reading_points(
        settings.influx_url,
        settings.influx_token.get_secret_value(),
        settings.influx_org,
        settings.influx_bucket,
        start,
        stop,
    )


def _empty(settings: Settings, start: datetime, stop: datetime) -> None:
    from influxdb_client import InfluxDBClient

    with InfluxDBClient(
        url=settings.influx_url,
        token=settings.influx_token.get_secret_value(),
        org=settings.influx_org,
        timeout=60_000,
    ) as client:
        client.delete_api().delete(
            start,
            stop,
            '_measurement="reading"',
            bucket=settings.influx_bucket,
            org=settings.influx_org,
        )


@bench.command("pipeline")
@click.option(
    "--devices", default=30, show_default=True, help="Outfall monitors publishing at once."
)
@click.option("--readings", default=200, show_default=True, help="Readings each device publishes.")
@click.option(
    "--timeout", default=300.0, show_default=True, help="Give up after this many seconds."
)
def bench_pipeline(devices: int, readings: int, timeout: float) -> None:
    """Readings through the real stack, timed until InfluxDB has every point.

    Needs the stack (`ecowatch stack up`); starts its own bridge and worker. Each reading is
    4 points. The readings are dated in a past hour of their own, so the count is theirs.
    """
    from ecowatch.cli import (
        _fold_kafka_outages,
        _run_bridge,
        _say_failed_stage,
        _start_worker,
        _wait_until_ready,
        _worker_counts,
    )

    settings = load_settings()
    _fold_kafka_outages(settings)
    catalogue = load_catalogue(settings.catalogue)
    credentials = load_device_credentials(settings.device_credentials_file)
    outfalls = [e for e in catalogue.devices.values() if e.device.model.value == "outfall_monitor"]
    if devices > len(outfalls):
        raise click.UsageError(f"--devices: the catalogue has {len(outfalls)} outfall monitors")
    # The bench's own window in the past (readings one second apart per device), emptied
    # first: points are idempotent, so a second run into a full window would count nothing.
    # Five days back: inside the window the platform takes resends from (seven days).
    start = (datetime.now(UTC) - timedelta(days=5)).replace(microsecond=0)
    start -= timedelta(seconds=start.timestamp() % 86400)
    stop = start + timedelta(seconds=readings + 1)
    _empty(settings, start, stop)
    before = _points_since(settings, start, stop)
    expected = before + devices * readings * 4

    # What the worker's group has not committed yet it judges again first (after a worker
    # that did not stop cleanly): the enforce agent is done at backlog + this run's readings.
    kafka = access_for(settings, Role.OPS)
    backlog = asyncio.run(group_lag(kafka, settings.app_id, topics.READINGS))
    worker = _start_worker(settings)
    # A worker that exits, or a stage that stands still while the one before it moves, ends
    # the bench at once with the reason, instead of a time-out with nothing to go on.
    supervisor = Supervisor(
        [worker],
        FlowWatch([("acknowledged", "bridged"), ("bridged", "stored"), ("bridged", "judged")]),
        owners={"bridged": "bridge", "stored": worker, "judged": worker},
    )
    figures: dict[str, float] = {}
    total = devices * readings

    async def main() -> None:
        bridge_stop = asyncio.Event()
        ready = asyncio.Event()
        holder: dict[str, BridgeStats] = {}

        def on_stats(stats: BridgeStats) -> None:
            holder["stats"] = stats
            ready.set()

        bridge = asyncio.create_task(_run_bridge(settings, catalogue, bridge_stop, on_stats))
        await asyncio.wait(
            {bridge, asyncio.create_task(ready.wait())}, return_when=asyncio.FIRST_COMPLETED
        )
        if bridge.done():
            bridge.result()
        # Timed from a ready worker: its start (reading the tables' changelogs back) is a
        # figure of its own.
        figures["worker_ready"] = await _wait_until_ready(settings, timeout)

        def flow(points: int | None, health: dict | None) -> None:
            supervisor.check_flow(
                {
                    "acknowledged": sum(p.acked for p in publishers),
                    "bridged": holder["stats"].bridged,
                    "stored": points,
                    "judged": health.get("judged_readings") if health else None,
                }
            )

        publishers = [
            _Publisher(settings, e.device.id, e.site.id, credentials[e.device.id])
            for e in outfalls[:devices]
        ]
        t0 = time.perf_counter()
        await asyncio.gather(*(asyncio.to_thread(p.publish, start, readings) for p in publishers))
        await asyncio.gather(*(asyncio.to_thread(p.wait, timeout) for p in publishers))
        figures["published"] = time.perf_counter() - t0
        samples: list[float] = []
        while time.perf_counter() - t0 < timeout:
            count = await asyncio.to_thread(_points_since, settings, start, stop)
            samples.append(count)
            if count >= expected:
                break
            flow(count, await asyncio.to_thread(_worker_counts, settings))
            await asyncio.sleep(0.5)
        figures["stored"] = time.perf_counter() - t0
        figures["points"] = samples[-1] - before if samples else 0
        # The enforce agent judges the same readings on its own: wait until it has them all.
        judged = 0
        while time.perf_counter() - t0 < timeout:
            health = await asyncio.to_thread(_worker_counts, settings)
            judged = health.get("judged_readings", 0) if health else judged
            if judged >= backlog + total:
                break
            flow(None, health)
            await asyncio.sleep(0.5)
        figures["judged"] = time.perf_counter() - t0
        figures["judged_readings"] = judged
        for p in publishers:
            p.close()
        bridge_stop.set()
        await bridge

    try:
        asyncio.run(supervisor.run(main()))
    except StageFailed as failed:
        _say_failed_stage(failed)
        raise SystemExit(1) from None
    finally:
        worker.stop()  # never leave a worker behind in the group
    points = int(figures["points"])
    click.echo(
        f"{devices} devices × {readings} readings = {total:,} readings ({total * 4:,} points)"
    )
    click.echo(f"worker ready (tables recovered):         {figures['worker_ready']:.1f} s")
    click.echo(
        f"published and acknowledged by Mosquitto: {figures['published']:.1f} s "
        f"= {total / figures['published']:,.0f} readings/s"
    )
    click.echo(
        f"all in InfluxDB:                         {figures['stored']:.1f} s "
        f"= {points / 4 / figures['stored']:,.0f} readings/s end to end "
        f"({points:,} of {total * 4:,} points)"
    )
    click.echo(
        f"all judged (rules, cases, aggregates):   {figures['judged']:.1f} s "
        f"= {figures['judged_readings'] / figures['judged']:,.0f} readings/s "
        f"({int(figures['judged_readings']):,} judged, {backlog:,} of them a backlog from before)"
    )
    click.echo(
        json.dumps(
            {
                "readings": total,
                "points_stored": points,
                "publish_seconds": round(figures["published"], 2),
                "end_to_end_seconds": round(figures["stored"], 2),
                "judged_readings": int(figures["judged_readings"]),
                "backlog_readings": backlog,
                "judged_seconds": round(figures["judged"], 2),
                "worker_ready_seconds": round(figures["worker_ready"], 2),
            }
        )
    )
    if points < total * 4:
        raise click.ClickException(f"only {points} of {total * 4} points arrived in {timeout} s")
