"""`ecowatch bench core` and `ecowatch bench pipeline`: the commands. What they measure is in
``ecowatch.devtools.bench``; the bridge and the workers run as the other commands run them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from ecowatch import topics
from ecowatch.cli.runtime import (
    demo_city_unless_set,
    fold_kafka_outages,
    say_failed_stage,
    start_worker,
    tune_gc,
    wait_until_ready,
    worker_counts,
)
from ecowatch.config.catalogue import copy_with_policies, load_catalogue
from ecowatch.config.kafka_accounts import KafkaAccess, Role, access_for
from ecowatch.config.settings import Settings, load_settings
from ecowatch.devtools.bench import (
    BENCH_POLICIES,
    LOAD_GO,
    Arrivals,
    CpuMeter,
    NotificationSink,
    core_figures,
    notify_env,
    outfalls,
    percentile,
    with_descendants,
)
from ecowatch.devtools.watch import (
    ChildProcess,
    FlowWatch,
    StageFailed,
    Supervisor,
    ecowatch_argv,
)
from ecowatch.edges.kafka import group_lag
from ecowatch.errors import EcowatchError
from ecowatch.measurements import READING
from ecowatch.schema import readings_in_record
from ecowatch.streams.storage.flux import delete_predicate
from ecowatch.streams.storage.store import reading_points_per_device

POLL_SECONDS = 0.25  # InfluxDB's points per device: the latency samples' resolution
SAMPLES_PER_DEVICE = 100


@click.group()
def bench() -> None:
    """Benchmarks that print their figures (speed is measured here, not in tests)."""
    demo_city_unless_set()


@bench.command("core")
@click.option("-n", "--count", default=20_000, show_default=True, help="Operations per figure.")
def bench_core(count: int) -> None:
    """The pure hot paths, one by one, on this machine's one core."""
    settings = load_settings()
    catalogue = load_catalogue(settings.catalogue_folder())
    # As the bridge, the worker and the HJ 212 server run: without it, the full collections
    # over the figures' own inputs were most of "parse a Kafka reading" (23 µs, not 8).
    tune_gc()
    click.echo(f"python {sys.version.split()[0]}, best of 3 runs of {count:,} each")
    for figure in core_figures(catalogue, count):
        click.echo(figure.line())


@bench.command("console")
@click.option("--sites", default=500, show_default=True, help="Sites of the synthetic city.")
@click.option("--rate", default=50.0, show_default=True, help="Site updates a second.")
@click.option("--seconds", default=30.0, show_default=True, help="How long to feed them.")
@click.option(
    "--viewport", default="1920x1080", show_default=True, help="The wall's screen, WIDTHxHEIGHT."
)
@click.option(
    "--pages-before",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Another build's console/static (e.g. from `git archive`): run it and this one in "
    "turn, twice each, side by side.",
)
def bench_console(
    sites: int, rate: float, seconds: float, viewport: str, pages_before: Path | None
) -> None:
    """The wall in a real Chromium, fed site updates through the console's City and push loop:
    frames and bytes pushed a second, server CPU per update, the page's frame rate and long
    tasks, and the time from push to screen. Needs Debian's chromium and playwright (dev)."""
    import platform
    import shutil

    from ecowatch.devtools.console_bench import as_text, measure, synthetic_catalogue

    chromium = shutil.which("chromium")
    if chromium is None:
        raise click.ClickException("no chromium on PATH: `make browser` installs Debian's")
    try:
        width, height = (int(n) for n in viewport.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"expected WIDTHxHEIGHT (got {viewport!r})") from None
    settings = load_settings()
    catalogue = synthetic_catalogue(load_catalogue(settings.catalogue_folder()), sites)
    tune_gc()
    click.echo(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, python {sys.version.split()[0]}, "
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"
    )
    size = (width, height)
    if pages_before is None:
        figures = asyncio.run(measure(settings, catalogue, chromium, seconds, rate, size))
        click.echo(as_text(figures))
        return
    # Alternating, so the machine's drift falls on both alike.
    for round_ in (1, 2):
        for name, pages in (("before", pages_before), ("after", None)):
            figures = asyncio.run(
                measure(settings, catalogue, chromium, seconds, rate, size, pages)
            )
            click.echo(f"-- {name} ({pages or 'this build'}), round {round_}")
            click.echo(as_text(figures))


# -- the pipeline --------------------------------------------------------------------------------


def _empty(settings: Settings, start: datetime, stop: datetime) -> None:
    from ecowatch.streams.storage.store import influx_client

    with influx_client(settings, 60_000) as client:
        client.delete_api().delete(
            start,
            stop,
            delete_predicate(READING),
            bucket=settings.influx_bucket,
            org=settings.influx_org,
        )


# --late: each device's one reading dated this long after the run's window first, so that every
# reading of the run is older than its device's newest, and arrives days after its time: late.
AHEAD_OF_WINDOW = timedelta(minutes=10)


def _window(
    settings: Settings, readings: int, late: bool = False
) -> tuple[datetime, datetime, datetime | None]:
    """The run's own window in the past (readings one second apart per device), after the last
    run's: the workers' tables remember each site's readings and refuse a repeat, so a run
    into an earlier run's window would be judged as duplicates. Emptied in InfluxDB first
    all the same. Five days back: inside the window the platform takes resends from (seven
    days); each run moves on by its own length only.

    ``late``: also the time of each device's reading ahead of the window (the third value),
    and the next run's window starts after it, so a live run after a late one is live again
    (its readings newer than every device's newest)."""
    marker = settings.state_dir / "bench-pipeline-window"
    start = (datetime.now(UTC) - timedelta(days=5)).replace(second=0, microsecond=0)
    with contextlib.suppress(OSError, ValueError):
        start = max(start, datetime.fromisoformat(marker.read_text().strip()))
    stop = start + timedelta(seconds=readings + 1)
    ahead = stop + AHEAD_OF_WINDOW if late else None
    marker.write_text(((ahead or stop) + timedelta(minutes=1)).isoformat())
    return start, stop, ahead


class _TopicEnd:
    """The readings topic's end offsets: how many readings the bridge has put in Kafka. A
    consumer without a group or a subscription, so it fetches nothing."""

    def __init__(self, kafka: KafkaAccess) -> None:
        from aiokafka import AIOKafkaConsumer

        self.consumer = AIOKafkaConsumer(**kafka.client_options())
        self.parts: list = []

    async def start(self) -> None:
        from aiokafka import TopicPartition

        await self.consumer.start()
        # A client's first metadata may not list the topic yet: ask again until it does (with
        # no partitions the count would stand still, and the bench blame the bridge).
        for _ in range(50):
            partitions = self.consumer.partitions_for_topic(topics.READINGS)
            if partitions:
                break
            await self.consumer._client.force_metadata_update()
            await asyncio.sleep(0.2)
        else:
            raise EcowatchError(f"Kafka lists no partitions of {topics.READINGS}")
        self.parts = [TopicPartition(topics.READINGS, p) for p in sorted(partitions)]

    async def count(self) -> int:
        return sum((await self.consumer.end_offsets(self.parts)).values())

    async def stop(self) -> None:
        await self.consumer.stop()


class _Load:
    """The load generator (``python -m ecowatch.devtools.bench``), a process of its own: what it
    says, JSON lines on its stdout, is taken in from its output file at each ``check``."""

    def __init__(
        self,
        devices: int,
        readings: int,
        start: datetime,
        rate: float,
        log_path: Path,
        over_limit_every: int = 0,
        ahead: datetime | None = None,
    ) -> None:
        every = max(1, readings // SAMPLES_PER_DEVICE)
        argv = [str(devices), str(readings), start.isoformat(), str(rate), str(every)]
        argv.append(str(over_limit_every))
        if ahead is not None:
            argv.append(ahead.isoformat())
        output_path = log_path.with_suffix(".out")
        for path in (log_path, output_path):  # each run's own
            path.unlink(missing_ok=True)
        # Its output to a file: a pipe nobody reads while it publishes could fill and stall it.
        self.child = ChildProcess(
            "load generator",
            [sys.executable, "-m", "ecowatch.devtools.bench", *argv],
            log_path,
            output_path=output_path,
        )
        self.connected = False
        self.last: dict = {"acked": 0}
        self.final: dict | None = None
        self._heard = 0  # characters of its output taken in

    def check(self) -> None:
        """Take in what it said since the last look; a load generator that failed says why
        (its log's last lines)."""
        said = self.child.output()
        end = said.rfind("\n") + 1  # whole lines: the last one may be half written
        for line in said[self._heard : end].splitlines():
            said_now = json.loads(line)
            if said_now.get("connected"):
                self.connected = True
            else:
                self.last = said_now
                if "samples" in said_now:
                    self.final = said_now
        self._heard = max(self._heard, end)
        failure = self.child.failure()
        if failure is not None and self.child.popen.returncode != 0:
            raise StageFailed(failure)

    def go(self) -> None:
        """Publish the run's readings now."""
        self.child.popen.send_signal(LOAD_GO)

    def stop(self) -> None:
        self.child.stop(timeout=10)


def _bridge_child() -> ChildProcess:
    settings = load_settings()
    return ChildProcess(
        "bridge",
        ecowatch_argv("bridge"),
        settings.state_dir / "bench-bridge.log",
        # The bench puts a fleet's load on a few devices, each reading a second apart: the
        # bridge's per-device allowance (a few times a monitor's reporting interval) would
        # cut it. A load test is the one place without it.
        env={**os.environ, "ECOWATCH_READING_RATE_FACTOR": "0"},
    )


async def _notifications_settled(workers: list[Settings], quiet: float = 3.0) -> dict[str, float]:
    """The workers' notification delays (/health), once no more have been handed to apprise
    for ``quiet`` seconds (at most 30 s): p50 and p99 the worst worker's, handed the sum."""
    last, still_since, deadline = -1, time.monotonic(), time.monotonic() + 30
    answers: list[dict] = []
    while time.monotonic() < deadline:
        answers = [a for a in [await asyncio.to_thread(worker_counts, s) for s in workers] if a]
        handed = sum(a.get("notifications_handed", 0) for a in answers)
        if handed != last:
            last, still_since = handed, time.monotonic()
        elif time.monotonic() - still_since >= quiet:
            break
        await asyncio.sleep(0.5)
    out: dict[str, float] = {"handed": sum(a.get("notifications_handed", 0) for a in answers)}
    for key, name in (("notification_delay_p50_s", "p50"), ("notification_delay_p99_s", "p99")):
        values = [a[key] for a in answers if key in a]
        if values:
            out[name] = max(values)
    return out


@dataclass
class _Run:
    """One run of the pipeline bench: what it printed is made from these."""

    late: bool
    devices: int
    readings: int
    workers: int
    rate: float
    backlog: int
    figures: dict[str, float]
    used: dict[str, float]  # CPU seconds per component
    stack_parts: tuple[str, ...]
    latencies: list[float]
    notified: dict[str, float] | None  # None: no exceedances asked for
    received: int = 0  # notifications the bench's receiver took
    # late: CPU seconds per component from the first publish until the hours the readings fell
    # in were judged again (InfluxDB read back), after the resend settled
    rejudge_used: dict[str, float] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.devices * self.readings

    @property
    def points(self) -> int:
        return int(self.figures["points"])

    def per_reading(self, name: str) -> float:
        return self.used[name] / self.total * 1e6

    @property
    def stack_cpu(self) -> float:
        return sum(self.used[name] for name in self.stack_parts)

    @property
    def end_to_end_rate(self) -> float:
        return self.points / 4 / self.figures["stored"]

    @property
    def judged_rate(self) -> float:
        return self.judged_in_run / self.figures["judged"]

    @property
    def judged_in_run(self) -> int:
        return int(self.figures["judged_readings"] - self.figures.get("judged_before", 0))

    def lines(self) -> list[str]:
        total, figures = self.total, self.figures
        p50, p99 = percentile(self.latencies, 50), percentile(self.latencies, 99)
        how = (
            f"offered at {self.rate:,.0f} readings/s"
            if self.rate
            else ("as fast as Mosquitto takes them")
        )
        out = [
            f"{'late' if self.late else 'live'}: {self.devices} devices × {self.readings} "
            f"readings = {total:,} readings ({total * 4:,} points), {self.workers} "
            f"worker{'s' if self.workers > 1 else ''}, {how}"
            + (
                f"; every reading late (each device's one reading dated "
                f"{AHEAD_OF_WINDOW.total_seconds() / 60:.0f} min after them sent and judged "
                "first)"
                if self.late
                else ""
            ),
            f"worker ready (tables recovered):         {figures['worker_ready']:.1f} s",
            f"published and acknowledged by Mosquitto: {figures['published']:.1f} s "
            f"= {total / figures['published']:,.0f} readings/s",
            f"all in InfluxDB:                         {figures['stored']:.1f} s "
            f"= {self.end_to_end_rate:,.0f} readings/s end to end "
            f"({self.points:,} of {total * 4:,} points)",
            f"all judged (rules, cases, aggregates):   {figures['judged']:.1f} s "
            f"= {self.judged_rate:,.0f} readings/s "
            f"({self.judged_in_run:,} judged; a backlog of {self.backlog:,} from before judged "
            "first, untimed)",
        ]
        if p50 is not None and p99 is not None:
            out.append(
                f"latency, publish → points in InfluxDB:   p50 {p50:.2f} s, p99 {p99:.2f} s "
                f"({len(self.latencies)} sampled readings, polled every {POLL_SECONDS:g} s)"
            )
        if self.notified is not None:
            if "p50" in self.notified and "p99" in self.notified:
                out.append(
                    f"notifications, decided → handed to apprise: p50 "
                    f"{self.notified['p50']:.3f} s, p99 {self.notified['p99']:.3f} s "
                    f"({int(self.notified.get('handed', 0))} handed, {self.received} received "
                    "by the bench)"
                )
            else:
                out.append(
                    "notifications, decided → handed to apprise: none handed (a case reminds "
                    "once: the cases of an earlier run on this stack are still open)"
                )
        out.append(
            f"CPU per reading (utime + stime from /proc, first publish to last judged, "
            f"{figures['judged']:.1f} s):"
        )
        for name in ("load generator", *self.stack_parts, "bench"):
            note = {
                "load generator": "  (not the stack's)",
                "influxdb": "  (with the bench's polls)",
                "bench": "  (this process's polls; not the stack's)",
            }.get(name, "")
            out.append(f"  {name:<16} {self.per_reading(name):>8.1f} µs{note}")
        services = ", ".join(self.stack_parts[2:])
        out.append(
            f"  {'whole stack':<16} {self.stack_cpu / total * 1e6:>8.1f} µs "
            f"(bridge, worker, {services}) = {self.stack_cpu / figures['judged']:.2f} cores"
        )
        if self.late:
            if "rejudged" in figures:
                used = self.rejudge_used
                stack = sum(used[name] for name in self.stack_parts)
                out.append(
                    f"hours judged again (once the resend settled, 10 s after its last "
                    f"reading): {int(figures['rejudged_hours'])} at {figures['rejudged']:.1f} s; "
                    f"CPU per reading with them: worker {used['worker'] / total * 1e6:.1f} µs, "
                    f"influxdb {used['influxdb'] / total * 1e6:.1f} µs, whole stack "
                    f"{stack / total * 1e6:.1f} µs"
                )
            else:
                out.append("hours judged again: not all within the time-out")
        return out

    def as_json(self) -> dict:
        figures = self.figures
        p50, p99 = percentile(self.latencies, 50), percentile(self.latencies, 99)
        out = {
            "late": self.late,
            "readings": self.total,
            "points_stored": self.points,
            "publish_seconds": round(figures["published"], 2),
            "end_to_end_seconds": round(figures["stored"], 2),
            "judged_readings": self.judged_in_run,
            "backlog_readings": self.backlog,
            "judged_seconds": round(figures["judged"], 2),
            "worker_ready_seconds": round(figures["worker_ready"], 2),
            "workers": self.workers,
            "offered_rate": self.rate or None,
            "published_per_second": round(self.total / figures["published"]),
            "end_to_end_per_second": round(self.end_to_end_rate),
            "judged_per_second": round(self.judged_rate),
            "latency_p50_seconds": round(p50, 3) if p50 is not None else None,
            "latency_p99_seconds": round(p99, 3) if p99 is not None else None,
            "latency_samples": len(self.latencies),
            "cpu_us_per_reading": {k: round(self.per_reading(k), 1) for k in self.used},
            "stack_cpu_us_per_reading": round(self.stack_cpu / self.total * 1e6, 1),
            "cpu_seconds": {k: round(v, 2) for k, v in self.used.items()},
        }
        if self.late and "rejudged" in figures:
            out |= {
                "rejudged_hours": int(figures["rejudged_hours"]),
                "rejudged_seconds": round(figures["rejudged"], 2),
                "cpu_seconds_with_rejudged_hours": {
                    k: round(v, 2) for k, v in self.rejudge_used.items()
                },
            }
        if self.notified is not None:
            out |= {
                "notification_delay_p50_seconds": self.notified.get("p50"),
                "notification_delay_p99_seconds": self.notified.get("p99"),
                "notifications_handed": int(self.notified.get("handed", 0)),
                "notifications_received": self.received,
            }
        return out


def side_by_side(live: _Run, late: _Run) -> list[str]:
    """The live and the late run's main figures in two columns, and late / live."""

    def row(name: str, a: float, b: float, unit: str, fmt: str = ",.0f") -> str:
        ratio = f"{b / a:>6.2f}" if a else "     –"
        return f"  {name:<30} {a:>10{fmt}} {b:>10{fmt}}  {ratio}  {unit}"

    out = [f"  {'':<30} {'live':>10} {'late':>10}  late/live"]
    out.append(row("end to end", live.end_to_end_rate, late.end_to_end_rate, "readings/s"))
    out.append(row("judged", live.judged_rate, late.judged_rate, "readings/s"))
    for name in ("worker", "influxdb", "kafka"):
        out.append(
            row(f"{name} CPU", live.per_reading(name), late.per_reading(name), "µs/reading", ".1f")
        )
    out.append(
        row(
            "whole stack CPU",
            live.stack_cpu / live.total * 1e6,
            late.stack_cpu / late.total * 1e6,
            "µs/reading",
            ".1f",
        )
    )
    lp, tp = percentile(live.latencies, 99), percentile(late.latencies, 99)
    if lp is not None and tp is not None:
        out.append(row("latency p99", lp, tp, "s", ".2f"))
    return out


@bench.command("pipeline")
@click.option(
    "--devices", default=30, show_default=True, help="Outfall monitors publishing at once."
)
@click.option("--readings", default=200, show_default=True, help="Readings each device publishes.")
@click.option(
    "--rate",
    default=0.0,
    show_default=True,
    help="Readings per second from all devices together; 0: as fast as Mosquitto takes them.",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 8),
    help="Workers in the group (the n-th listens on ECOWATCH_WEB_PORT + n - 1).",
)
@click.option(
    "--over-limit-every",
    default=0,
    show_default=True,
    type=click.IntRange(0),
    help="Every n-th reading of each device over its COD limit: findings, cases and their "
    "enterprises reminded at once (to a local HTTP receiver); prints the delay from deciding "
    "a notification to handing it to apprise. 0: none.",
)
@click.option(
    "--late",
    is_flag=True,
    help="Two runs, live then late, and their figures side by side. In the late run each "
    "device first sends one reading dated after the run's window (its clock ahead), then the "
    "run's readings: every one of them older than its device's newest, days after its time.",
)
@click.option(
    "--timeout", default=300.0, show_default=True, help="Give up after this many seconds."
)
def bench_pipeline(
    devices: int,
    readings: int,
    rate: float,
    workers: int,
    over_limit_every: int,
    late: bool,
    timeout: float,
) -> None:
    """Readings through the real stack, timed until InfluxDB has every point and every
    reading is judged; CPU per reading per component from /proc; latency samples.

    Needs the stack (`ecowatch stack up`); starts its own bridge and workers, and the load
    generator in a process of its own. Each reading is 4 points. The readings are dated in a
    past window of their own, and only the bench's devices' points in it are counted.
    """
    from ecowatch.devtools.stack.services import Stack

    settings = load_settings()
    fold_kafka_outages(settings)
    catalogue = load_catalogue(settings.catalogue_folder())
    candidates = outfalls(catalogue)
    if devices > len(candidates):
        raise click.UsageError(f"--devices: the catalogue has {len(candidates)} outfall monitors")
    services = {s.name: s.proc.pid() for s in Stack(settings, catalogue).services}
    if not all(services.values()):
        down = ", ".join(name for name, pid in services.items() if not pid)
        raise EcowatchError(f"{down}: not running in this stack (`ecowatch stack up`)")
    runs: list[_Run] = []
    for run_late in (False, True) if late else (False,):
        run = _run_pipeline(
            settings,
            catalogue,
            services,
            devices,
            readings,
            rate,
            workers,
            over_limit_every,
            run_late,
            timeout,
        )
        runs.append(run)
        for text in run.lines():
            click.echo(text)
        if len(runs) == 1 and late:
            click.echo("")
    if late:
        live_run, late_run = runs
        click.echo("")
        for text in side_by_side(live_run, late_run):
            click.echo(text)
        click.echo(
            json.dumps(
                {
                    "live": live_run.as_json(),
                    "late": late_run.as_json(),
                    "late_over_live_end_to_end": round(
                        late_run.end_to_end_rate / live_run.end_to_end_rate, 3
                    ),
                }
            )
        )
    else:
        click.echo(json.dumps(runs[0].as_json()))
    for run in runs:
        if run.points != run.total * 4:
            raise click.ClickException(
                f"{run.points} of {run.total * 4} points in the run's window"
                + (" (more than sent: another writer?)" if run.points > run.total * 4 else "")
            )


def _run_pipeline(
    settings: Settings,
    catalogue,
    services: dict[str, int | None],
    devices: int,
    readings: int,
    rate: float,
    workers: int,
    over_limit_every: int,
    late: bool,
    timeout: float,
) -> _Run:
    candidates = outfalls(catalogue)
    ours = [e.device.id for e in candidates[:devices]]
    start, stop, ahead = _window(settings, readings, late)
    _empty(settings, start, stop)
    total = devices * readings
    expected = total * 4

    # What the worker's group has not committed yet it judges again first (after a worker
    # that did not stop cleanly): the enforce agent is done at backlog + this run's readings.
    kafka = access_for(settings, Role.OPS)
    backlog = asyncio.run(group_lag(kafka, settings.app_id, topics.READINGS, readings_in_record))
    # With exceedances, the workers judge on a catalogue whose reminders go at once, to a
    # receiver of the bench's own.
    sink: NotificationSink | None = None
    alerting: dict[str, str] = {}
    if over_limit_every:
        sink = NotificationSink()
        folder = copy_with_policies(
            settings.catalogue_folder(), settings.state_dir / "bench-catalogue", BENCH_POLICIES
        )
        alerting = {
            "ECOWATCH_CATALOGUE": str(folder),
            **notify_env(catalogue, candidates[:devices], sink.url),
        }
    # Each worker answers /health on a port of its own.
    worker_settings = [
        settings.model_copy(update={"web_port": settings.web_port + i}) for i in range(workers)
    ]
    children = [
        start_worker(s, {"ECOWATCH_WEB_PORT": str(s.web_port), **alerting}, name=f"worker-{i + 1}")
        if workers > 1
        else start_worker(s, alerting)
        for i, s in enumerate(worker_settings)
    ]
    bridge = _bridge_child()
    # A child that exits, or a stage that stands still while the one before it moves, ends
    # the bench at once with the reason, instead of a time-out with nothing to go on.
    supervisor = Supervisor(
        [*children, bridge],
        FlowWatch([("acknowledged", "bridged"), ("bridged", "stored"), ("bridged", "judged")]),
        owners={"bridged": bridge, "stored": children[0], "judged": children[0]},
    )
    figures: dict[str, float] = {}
    notified: dict[str, float] = {}
    used_until_judged: dict[str, float] = {}
    rejudge_used: dict[str, float] = {}  # late: CPU seconds until the hours were judged again
    arrivals = Arrivals()
    meter = CpuMeter({})
    load: _Load | None = None

    def health() -> dict | None:
        answers = [worker_counts(s) for s in worker_settings]
        if any(a is None for a in answers):
            return None
        return {
            k: sum(a.get(k, 0) for a in answers)  # type: ignore[union-attr]
            for k in ("stored_readings", "judged_readings", "rejudged_hours")
        }

    async def main() -> None:
        nonlocal load, meter
        # The bridge is subscribed (its SUBACK) before any device publishes.
        while "bridge subscribed" not in bridge.log_tail(200):
            supervisor.check_children()
            await asyncio.sleep(0.2)
        # Timed from ready workers: their start (reading the tables' changelogs back) is a
        # figure of its own.
        readies = await asyncio.gather(*(wait_until_ready(s, timeout) for s in worker_settings))
        figures["worker_ready"] = max(readies)
        topic_end = _TopicEnd(kafka)
        await topic_end.start()

        load = _Load(
            devices,
            readings,
            start,
            rate,
            settings.state_dir / "bench-load.log",
            over_limit_every,
            ahead,
        )
        while not load.connected:
            load.check()
            await asyncio.sleep(0.2)
        # Late: the readings ahead judged before the run's clock starts, so that every
        # device's newest reading is the one ahead when the run's readings come.
        before = backlog + (devices if ahead is not None else 0)
        waited = time.perf_counter()
        while True:
            counts = await asyncio.to_thread(health)
            if counts and counts["judged_readings"] >= before:
                figures["judged_before"] = counts["judged_readings"]
                break
            if time.perf_counter() - waited > timeout:
                raise EcowatchError(f"the workers did not judge the {before} readings before")
            supervisor.check_children()
            await asyncio.sleep(0.2)
        in_kafka_before = await topic_end.count()
        t0 = time.perf_counter()
        meter = CpuMeter(
            {
                "bridge": with_descendants([bridge.pid]),
                "worker": with_descendants([c.pid for c in children]),
                **{name: with_descendants([pid]) for name, pid in services.items() if pid},
                "bench": [os.getpid()],
            }
        )
        meter.start()
        load.go()

        async def flow(points: int | None, counts: dict | None) -> None:
            load.check()  # type: ignore[union-attr]
            supervisor.check_flow(
                {
                    "acknowledged": load.last["acked"],  # type: ignore[union-attr]
                    "bridged": await topic_end.count() - in_kafka_before,
                    "stored": points,
                    "judged": counts.get("judged_readings") if counts else None,
                }
            )

        points = 0
        try:
            while time.perf_counter() - t0 < timeout:
                per_device = await asyncio.to_thread(
                    reading_points_per_device, settings, start, stop, ours
                )
                arrivals.seen(time.time(), {d: n // 4 for d, n in per_device.items()})
                points = sum(per_device.values())
                if load.final is not None and "published" not in figures:
                    figures["published"] = load.final["published_seconds"]
                if points >= expected:
                    break
                await flow(points, await asyncio.to_thread(health))
                await asyncio.sleep(POLL_SECONDS)
            figures["stored"] = time.perf_counter() - t0
            figures["points"] = points
            # The enforce agent judges the same readings on its own: wait until it has them.
            judged = 0
            target = figures["judged_before"] + total
            while time.perf_counter() - t0 < timeout:
                counts = await asyncio.to_thread(health)
                judged = counts["judged_readings"] if counts else judged
                if judged >= target:
                    break
                await flow(None, counts)
                await asyncio.sleep(0.5)
            figures["judged"] = time.perf_counter() - t0
            figures["judged_readings"] = judged
            used_until_judged.update(meter.stop())
            if late:
                # The hours the late readings fell in are judged again once the resend has
                # settled (streams/judging/rules/rejudge.py): timed and metered apart, until then.
                hours = devices * len(hours_between(start, stop))
                while time.perf_counter() - t0 < timeout:
                    counts = await asyncio.to_thread(health)
                    if counts and counts["rejudged_hours"] >= hours:
                        figures["rejudged"] = time.perf_counter() - t0
                        figures["rejudged_hours"] = counts["rejudged_hours"]
                        rejudge_used.update(meter.stop())
                        break
                    await flow(None, counts)
                    await asyncio.sleep(0.5)
            if sink is not None:  # the last reminders, sent after their readings were judged
                notified.update(await _notifications_settled(worker_settings))
            while load.final is None and load.child.running:
                load.check()
                await asyncio.sleep(0.1)
            load.check()  # its last line, and how it ended
            figures.setdefault("published", load.final["published_seconds"])  # type: ignore[index]
        finally:
            await topic_end.stop()

    try:
        asyncio.run(supervisor.run(main()))
    except StageFailed as failed:
        say_failed_stage(failed)
        raise SystemExit(1) from None
    finally:
        if load is not None:
            load.stop()
        bridge.stop()
        for child in children:
            child.stop()  # never leave a worker behind in the group
        if sink is not None:
            sink.close()
    assert load is not None and load.final is not None
    used = {"load generator": load.final["cpu_seconds"], **used_until_judged}
    return _Run(
        late=late,
        devices=devices,
        readings=readings,
        workers=workers,
        rate=rate,
        backlog=backlog,
        figures=figures,
        used=used,
        stack_parts=("bridge", "worker", *services),
        latencies=arrivals.latencies(tuple(s) for s in load.final["samples"]),
        notified=notified if sink is not None else None,
        received=sink.received if sink is not None else 0,
        rejudge_used=rejudge_used,
    )


def hours_between(start: datetime, stop: datetime) -> list[datetime]:
    """The hours (China time, as the means are kept) that readings in [start, stop) fall in."""
    from ecowatch.streams.judging.aggregate import HOUR, hour_of

    out, hour = [], hour_of(start)
    while hour < stop:
        out.append(hour)
        hour += HOUR
    return out
