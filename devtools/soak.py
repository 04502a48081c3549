"""The soak (`ecowatch drill --soak`): a simulated month of the city in minutes, and whether
the worker's memory and tables stay flat once the first days are past.

Every process of the run reads one simulated clock (ecowatch.clock.ScaledClock, given to the
worker and the bridge as ``ECOWATCH_CLOCK_*``), so the ingest contract takes readings dated a
month on, the worker's deadlines and hold periods pass in simulated time, and every catalogue
device reports every ``interval`` simulated seconds. The scenario ``soak-city`` repeats each
simulated day: cases open, are escalated to the officers, who acknowledge them and record
findings asking to close through the case API (the demo's officers), and close.

At simulated days 1, 10 and 30 the soak reads the worker's ``/health``: its resident memory
(``rss_bytes``) and each table's keys and bytes (``tables``); a worker whose /health has no
``rss_bytes`` is measured from ``/proc/<pid>/statm``. It fails if, at the last day, the RSS
or any table's bytes exceeds the day before it (day 10) by more than the tolerance (15 %).

The pure part (the days looked at, the samples, the verdict, the report) is at the top and
tested in ``tests/unit/devtools/test_drill.py``; the run below it drives the real processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ecowatch.clock import CHINA, ScaledClock
from ecowatch.config.catalogue import Catalogue, DeviceModel
from ecowatch.config.settings import Settings, load_settings
from ecowatch.devtools.watch import (
    ChildProcess,
    FlowWatch,
    StageFailed,
    Supervisor,
    ecowatch_argv,
    read_health,
)
from ecowatch.edges.files import private_dir
from ecowatch.errors import EcowatchError

SOAK_DAYS = 30
# 30 simulated days in 15 real minutes; with every device reporting every 5 simulated minutes
# that is 53 x 2880 / 300 = 509 readings a second, well within what a 2-core machine running
# the whole stack takes (the drill's 400/s with faults; warned above SOAK_MAX_RATE).
SOAK_SPEED = 2880.0
SOAK_INTERVAL = 300.0
SOAK_MAX_RATE = 700.0
SOAK_TOLERANCE = 0.15
# A table growing by less than this is not growth, whatever the ratio: a table of a few
# kilobytes moves by more than 15 % with one case open or closed.
TABLE_SLACK_BYTES = 64 * 1024
SOAK_SCENARIO = "soak-city"
# The simulated month begins this long after the clock is set: the worker and the bridge are
# started on it and are ready by then (a worker with new tables took 3 s; its clock stands at
# the month's start until then, see ScaledClock).
SOAK_LEAD_SECONDS = 20.0
DAY = timedelta(days=1)

# -- the pure part ---------------------------------------------------------------------------


def checkpoints(days: int) -> tuple[int, ...]:
    """The simulated days the soak measures at: 1, 10 and the last (30), those within the run.
    The verdict compares the last with the one before it."""
    if days < 1:
        raise ValueError("a soak lasts at least one simulated day")
    return tuple(sorted({d for d in (1, 10, days) if d <= days}))


def soak_start(now: datetime, days: int) -> datetime:
    """Where the simulated month begins: a midnight in China, the whole month in the past
    (readings dated ahead of the real world reach nothing but the soak's own bucket, but
    nothing has to be trusted to tell)."""
    today = now.astimezone(CHINA).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=days + 1)


def real_rate(devices: int, speed: float, interval: float) -> float:
    """Readings a real second: each device once every ``interval`` simulated seconds."""
    return devices * speed / interval


@dataclass(frozen=True)
class TableSize:
    keys: int
    bytes: int
    largest: int | None = None

    def as_dict(self) -> dict[str, int | None]:
        return {"keys": self.keys, "bytes": self.bytes, "largest": self.largest}


@dataclass
class Sample:
    """What the worker holds at one simulated day."""

    day: int
    simulated: datetime
    rss_bytes: int | None
    rss_source: str  # "health" (the worker's own figure), "statm" (read here), or "none"
    tables: dict[str, TableSize] | None  # None: the worker's /health does not say
    counts: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "day": self.day,
            "simulated": self.simulated.isoformat(),
            "rss_bytes": self.rss_bytes,
            "rss_source": self.rss_source,
            "tables": (
                {n: t.as_dict() for n, t in self.tables.items()}
                if self.tables is not None
                else None
            ),
            **self.counts,
        }


# The worker's /health counts a sample keeps beside its memory.
SAMPLED_COUNTS = ("stored_readings", "judged_readings", "findings", "case_events", "notifications")


def sample_from_health(
    day: int, simulated: datetime, health: Mapping[str, Any] | None, statm: int | None
) -> Sample:
    """A sample from the worker's /health (None: it did not answer), and its RSS read from
    /proc (``statm``) for a worker that does not report its own."""
    health = health or {}
    rss, source = health.get("rss_bytes"), "health"
    if not isinstance(rss, int):
        rss, source = statm, ("statm" if statm is not None else "none")
    tables: dict[str, TableSize] | None = None
    raw = health.get("tables")
    if isinstance(raw, Mapping):
        tables = {
            str(name): TableSize(int(t.get("keys", 0)), int(t.get("bytes", 0)), t.get("largest"))
            for name, t in sorted(raw.items())
            if isinstance(t, Mapping)
        }
    counts = {k: int(health[k]) for k in SAMPLED_COUNTS if isinstance(health.get(k), int)}
    return Sample(day, simulated, rss, source, tables, counts)


def statm_rss(pid: int, proc: Path = Path("/proc")) -> int | None:
    """A process's resident memory in bytes, from /proc/<pid>/statm; None if it is gone."""
    try:
        pages = int((proc / str(pid) / "statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class Check:
    """One figure at the reference day and the last, and whether it stayed flat."""

    what: str  # "worker RSS", or "<table> bytes"
    before: int | None
    after: int | None
    passed: bool
    note: str = ""

    @property
    def growth(self) -> float | None:
        if self.before is None or self.after is None or self.before <= 0:
            return None
        return self.after / self.before - 1

    def as_dict(self) -> dict[str, Any]:
        growth = self.growth
        return {
            "what": self.what,
            "before": self.before,
            "after": self.after,
            "growth": None if growth is None else round(growth, 4),
            "passed": self.passed,
            "note": self.note or None,
        }


def flatness(
    reference: Sample,
    last: Sample,
    tolerance: float = SOAK_TOLERANCE,
    slack: int = TABLE_SLACK_BYTES,
) -> list[Check]:
    """Whether the worker stayed flat from ``reference`` (day 10) to ``last`` (day 30): its
    RSS, and each table's bytes, at most ``tolerance`` above (a table also ``slack`` bytes
    above at least; a table new since the reference counts from 0). A figure missing at
    either day fails: nothing was measured."""
    checks: list[Check] = []
    if reference.rss_bytes is None or last.rss_bytes is None:
        checks.append(Check("worker RSS", reference.rss_bytes, last.rss_bytes, False, "missing"))
    else:
        grew = last.rss_bytes > reference.rss_bytes * (1 + tolerance)
        checks.append(Check("worker RSS", reference.rss_bytes, last.rss_bytes, not grew))
    if reference.tables is None or last.tables is None:
        note = "not in the worker's /health"
        checks.append(Check("tables", None, None, True, note))
        return checks
    for name in sorted(set(reference.tables) | set(last.tables)):
        before = reference.tables[name].bytes if name in reference.tables else 0
        if name not in last.tables:
            checks.append(Check(f"{name} bytes", before, None, True, "gone"))
            continue
        after = last.tables[name].bytes
        grew = after > before * (1 + tolerance) and after - before > slack
        checks.append(Check(f"{name} bytes", before, after, not grew))
    return checks


@dataclass
class SoakReport:
    days: int
    speed: float
    interval: float
    devices: int
    sim_start: datetime
    app_id: str
    bucket: str
    samples: list[Sample]
    daily: list[Sample]  # every simulated day's, for the trend between the days measured
    checks: list[Check]
    tolerance: float
    reference_day: int | None
    seconds: float
    published: int
    stored: int | None
    notifications: dict[str, int]
    officer_actions: dict[str, int]
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems and all(c.passed for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {
            "soak": True,
            "days": self.days,
            "speed": self.speed,
            "interval": self.interval,
            "devices": self.devices,
            "rate": round(real_rate(self.devices, self.speed, self.interval), 1),
            "sim_start": self.sim_start.isoformat(),
            "app_id": self.app_id,
            "bucket": self.bucket,
            "seconds": round(self.seconds, 1),
            "published": self.published,
            "stored": self.stored,
            "notifications": self.notifications,
            "officer_actions": self.officer_actions,
            "samples": [s.as_dict() for s in self.samples],
            "daily": [
                {
                    "day": s.day,
                    "rss_bytes": s.rss_bytes,
                    "tables_bytes": (
                        {n: t.bytes for n, t in s.tables.items()} if s.tables is not None else None
                    ),
                }
                for s in self.daily
            ],
            "tolerance": self.tolerance,
            "reference_day": self.reference_day,
            "checks": [c.as_dict() for c in self.checks],
            "problems": self.problems,
            "passed": self.passed,
        }


def size(n: int | None) -> str:
    """Bytes for people: 512 B, 12.3 KiB, 181.2 MiB."""
    if n is None:
        return "–"
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n / 2**20:.1f} MiB"


def sample_row(sample: Sample, names: list[str]) -> str:
    cells = [f"{sample.day:>3}", f"{sample.simulated.astimezone(CHINA):%Y-%m-%d}"]
    cells.append(f"{size(sample.rss_bytes):>10}")
    for name in names:
        t = (sample.tables or {}).get(name)
        cell = f"{t.keys:,} / {size(t.bytes)}" if t is not None else "missing"
        cells.append(f"{cell:>{max(len(name), 20)}}")
    return "  ".join(cells)


def sample_header(names: list[str]) -> str:
    cells = ["day", "simulated ", "worker RSS"]
    cells += [f"{name:>{max(len(name), 20)}}" for name in names]
    return "  ".join(cells)


def table_names(samples: list[Sample]) -> list[str]:
    return sorted({n for s in samples for n in (s.tables or {})})


def render_soak(report: SoakReport) -> list[str]:
    """The table of the days measured, the verdict, and the JSON line last."""
    names = table_names(report.samples)
    lines = ["", "tables: keys / bytes" if names else "tables: not in the worker's /health"]
    lines.append(sample_header(names))
    lines += [sample_row(s, names) for s in report.samples]
    if any(s.rss_source == "statm" for s in report.samples):
        lines.append("worker RSS read from /proc/<pid>/statm (not in the worker's /health)")
    lines.append("")
    if report.reference_day is not None:
        last = report.samples[-1].day
        lines.append(
            f"day {last} against day {report.reference_day} (at most "
            f"+{report.tolerance * 100:g} %; tables also +{size(TABLE_SLACK_BYTES)}):"
        )
        for c in report.checks:
            growth = c.growth
            change = f"{growth * 100:+.1f} %" if growth is not None else ""
            verdict = "ok" if c.passed else "GREW"
            note = f"  ({c.note})" if c.note else ""
            lines.append(
                f"  {c.what:<28} {size(c.before):>10} → {size(c.after):>10}  {change:>8}  "
                f"{verdict}{note}"
            )
    else:
        lines.append("one day measured: nothing to compare")
    stored = f"{report.stored:,}" if report.stored is not None else "?"
    lines.append(
        f"readings published {report.published:,}, stored {stored}; notifications "
        f"{sum(report.notifications.values()):,}; officers acted "
        f"{sum(report.officer_actions.values()):,} times"
    )
    lines += [f"problem: {p}" for p in report.problems]
    lines.append("passed" if report.passed else "FAILED")
    lines.append(json.dumps(report.as_dict(), ensure_ascii=False))
    return lines


# -- the run -----------------------------------------------------------------------------------


@dataclass
class SoakOptions:
    days: int = SOAK_DAYS
    speed: float = SOAK_SPEED
    interval: float = SOAK_INTERVAL  # simulated seconds between a device's readings
    tolerance: float = SOAK_TOLERANCE
    seed: int = 1
    keep_bucket: bool = False
    lead: float = SOAK_LEAD_SECONDS


class SoakDesk:
    """The officers, as the demo's (ecowatch.devtools.desk.OfficerDesk), counting instead of
    printing: each escalation reaching an officer is acknowledged and findings recorded asking
    to close, through the case API with that officer's token."""

    def __init__(self, settings: Settings, tokens: dict[str, str]) -> None:
        from ecowatch.devtools.desk import OfficerDesk

        self.desk = OfficerDesk(settings, tokens)
        self.received: Counter[str] = Counter()
        self.acted: Counter[str] = Counter()
        self._lock = threading.Lock()

    def on_message(self, received: Any) -> None:  # the inbox's thread
        from ecowatch.devtools.desk import CASE_ID

        title = received.title
        kind = (
            title[: title.index("】") + 1] if title.startswith("【") and "】" in title else "other"
        )
        with self._lock:
            self.received[kind] += 1
        match = CASE_ID.search(received.message)
        if title.startswith("【执法】") and match and received.recipient in self.desk.token_of:
            self.desk.todo.put((received.recipient, match.group("site"), match.group(0)))

    def work(self) -> None:
        from ecowatch.streams.api.client import api_as

        todo: queue.SimpleQueue = self.desk.todo
        while not todo.empty():
            officer, site, case_id = todo.get()
            if case_id in self.desk.taken:
                continue
            self.desk.taken.add(case_id)
            base = f"/api/sites/{site}/cases/{case_id}"
            for action, body in (
                ("ack", None),
                ("findings", {"text": "现场检查：已责令整改", "close": True}),
            ):
                try:
                    api_as(
                        self.desk.settings,
                        self.desk.token_of[officer],
                        "POST",
                        f"{base}/{action}",
                        body,
                    )
                    self.acted[action] += 1
                except EcowatchError:  # e.g. 409: the case moved on meanwhile
                    self.acted[f"{action} refused"] += 1

    def notifications(self) -> dict[str, int]:
        with self._lock:
            return dict(self.received)


class Soak:
    """Runs the soak against the local stack; ``echo`` says what happens as it happens."""

    def __init__(
        self,
        settings: Settings,
        catalogue: Catalogue,
        options: SoakOptions,
        echo: Callable[[str], None],
    ) -> None:
        self.settings, self.catalogue, self.options, self.echo = settings, catalogue, options, echo
        self.run_id = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
        self.folder = private_dir(settings.state_dir / "drill" / f"soak-{self.run_id}")
        self.app_id = f"ecowatch-soak-{self.run_id}"
        self.bucket = f"ecowatch-soak-{self.run_id}"
        self._t0 = time.monotonic()
        self.checkpoints = checkpoints(options.days)

    def say(self, text: str) -> None:
        self.echo(f"{time.strftime('%H:%M:%S')} +{time.monotonic() - self._t0:5.0f}s  {text}")

    # -- InfluxDB: a bucket of the soak's own ------------------------------------------------

    def _create_bucket(self) -> None:
        from ecowatch.streams.storage.store import influx_client

        with influx_client(self.settings) as client:
            client.buckets_api().create_bucket(
                bucket_name=self.bucket,
                org=self.settings.influx_org,
                description="ecowatch drill --soak: a simulated month of the city",
            )

    def _delete_bucket(self) -> None:
        from ecowatch.streams.storage.store import influx_client

        try:
            with influx_client(self.settings, timeout_ms=60_000) as client:
                api = client.buckets_api()
                found = api.find_bucket_by_name(self.bucket)
                if found is not None:
                    api.delete_bucket(found)
        except Exception as exc:  # said, and the report stands
            self.say(f"could not delete the bucket {self.bucket}: {exc}")

    # -- running ---------------------------------------------------------------------------

    def run(self) -> SoakReport:
        from ecowatch.devtools.desk import people_tokens
        from ecowatch.devtools.drill import _free_port, _group_to_end
        from ecowatch.devtools.inbox import Inbox, people_env
        from ecowatch.devtools.stack.process import Progress
        from ecowatch.devtools.stack.services import Stack
        from ecowatch.simulators.city import FleetPlan, build_fleet
        from ecowatch.simulators.scenarios import load_scenario

        o = self.options
        Stack(self.settings, self.catalogue).up(Progress(self.echo))
        self.settings = settings = load_settings()  # with the secrets `stack up` wrote
        counts = Counter(e.device.model for e in self.catalogue.devices.values())
        devices = sum(counts.values())
        rate = real_rate(devices, o.speed, o.interval)
        if rate > SOAK_MAX_RATE:
            self.say(
                f"warning: {rate:.0f} readings/s is more than this 2-core machine is known to "
                f"keep up with ({SOAK_MAX_RATE:.0f}/s with the stack): lower --speed or raise "
                "--interval, or a lagging worker will be measured"
            )
        self._create_bucket()
        self.say(f"InfluxDB bucket {self.bucket} (the soak's own; deleted at the end)")
        _group_to_end(settings, self.app_id)

        tokens, token_env = people_tokens(settings, self.catalogue)
        self.web_port = _free_port()
        desk = SoakDesk(settings.model_copy(update={"web_port": self.web_port}), tokens)
        inbox = Inbox(desk.on_message).__enter__()
        # Everyone's messages go to the soak's receiver: a soak never pages a real person.
        notify = {
            var: f"json://127.0.0.1:{inbox.port}/{person}"
            for var, person in people_env(self.catalogue).items()
        }
        epoch = time.time() + o.lead
        start = soak_start(datetime.now(UTC), o.days)
        clock = ScaledClock(start, o.speed, epoch)
        clock_env = {
            "ECOWATCH_CLOCK_START": start.isoformat(),
            "ECOWATCH_CLOCK_SPEED": repr(o.speed),
            "ECOWATCH_CLOCK_EPOCH": repr(epoch),
            "ECOWATCH_INFLUX_BUCKET": self.bucket,
        }
        worker_env = {
            **os.environ,
            **clock_env,
            **notify,
            **token_env,
            "ECOWATCH_APP_ID": self.app_id,
            "ECOWATCH_WEB_PORT": str(self.web_port),
            # Time passes for every site every 15 simulated minutes, at most twice a real
            # second (a tick of the city's sites, 45 of them then, took 0.2 s; 48 now: more
            # often, they overlap).
            "ECOWATCH_TICK_SECONDS": f"{min(15.0, max(0.5, 900 / o.speed)):.3f}",
        }
        bridge_env = {
            **os.environ,
            **clock_env,
            "ECOWATCH_BRIDGE_HEALTH_PORT": str(_free_port()),
        }
        self.envs = {"worker": worker_env, "bridge": bridge_env}
        self.children: dict[str, ChildProcess] = {}
        plan = FleetPlan(
            outfalls=counts[DeviceModel.OUTFALL_MONITOR],
            air_stations=counts[DeviceModel.AIR_STATION],
            meters=counts[DeviceModel.DISCHARGE_METER],
            stacks=counts[DeviceModel.FLUE_GAS_MONITOR],
            interval=o.interval,
            speed=o.speed,
            seed=o.seed,
        )
        fleet = build_fleet(settings, self.catalogue, plan, clock=clock)
        fleet.scenario = load_scenario(SOAK_SCENARIO).run(fleet.models, clock, start=start)
        self.say(
            f"a simulated month from {start:%Y-%m-%d %H:%M} (China) at {o.speed:g}x: "
            f"{o.days} days in {o.days * 86400 / o.speed / 60:.1f} min; {devices} devices over "
            f"MQTT, a reading every {o.interval:g} simulated s ({rate:.0f}/s); scenario "
            f"{SOAK_SCENARIO}, every day"
        )
        report: SoakReport | None = None
        try:
            report = asyncio.run(self._main(fleet, clock, desk, devices))
            return report
        finally:
            for child in self.children.values():
                child.stop()
            inbox.__exit__(None, None, None)
            if o.keep_bucket:
                self.echo(f"InfluxDB bucket kept: {self.bucket}")
            else:
                self._delete_bucket()
            self.echo(f"logs of the soak's processes: {self.folder}")

    def _start(self, command: str) -> ChildProcess:
        """``ecowatch <command>`` with its environment, logging to the soak's folder."""
        log = self.folder / f"{command}.log"
        child = ChildProcess(command, ecowatch_argv(command), log, env=self.envs[command])
        self.children[command] = child
        return child

    async def _main(
        self, fleet: Any, clock: ScaledClock, desk: SoakDesk, devices: int
    ) -> SoakReport:
        o = self.options
        worker, bridge = self._start("worker"), self._start("bridge")
        supervisor = Supervisor(
            [worker, bridge],
            FlowWatch([("published", "stored")], stall_after=60.0),
            owners={"stored": worker},
        )
        self.say(f"worker pid {worker.pid}, bridge pid {bridge.pid}; logs in {self.folder}")
        waited = time.monotonic()
        while not (
            "bridge subscribed" in bridge.log_tail(10_000)
            and (read_health(self.web_port) or {}).get("ready")
        ):
            supervisor.check_children()
            if time.monotonic() - waited > 180:
                raise EcowatchError("the worker or the bridge was not ready within 180 s")
            await asyncio.sleep(0.2)
        self.say(f"worker and bridge ready in {time.monotonic() - waited:.1f} s")
        early = clock.wall_at(clock.start) - time.time()
        if early > 0:
            await asyncio.sleep(early)
        else:
            self.say(f"the devices start {-early * o.speed / 3600:.1f} simulated hours late")
        stop = asyncio.Event()
        fleet_task = asyncio.create_task(fleet.run(stop))
        began = time.monotonic()
        samples: list[Sample] = []
        daily: list[Sample] = []
        problems: list[str] = []
        desk_task: asyncio.Task | None = None
        day_seen = 0
        last_flow = 0.0
        try:
            while day_seen < o.days:
                await asyncio.sleep(0.25)
                if fleet_task.done():
                    fleet_task.result()
                    raise EcowatchError("the simulated devices stopped before the month ended")
                supervisor.check_children()
                if desk_task is None or desk_task.done():
                    if desk_task is not None:
                        desk_task.result()
                    desk_task = asyncio.create_task(asyncio.to_thread(desk.work))
                if time.monotonic() - last_flow >= 2.0:
                    last_flow = time.monotonic()
                    health = await asyncio.to_thread(read_health, self.web_port)
                    stored = health.get("stored_readings") if health else None
                    supervisor.check_flow({"published": fleet.stats.published, "stored": stored})
                day = int((clock.now() - clock.start) / DAY)
                while day_seen < min(day, o.days):
                    day_seen += 1
                    sample = await self._sample(day_seen, clock.start + day_seen * DAY, worker.pid)
                    sample.counts["published"] = fleet.stats.published
                    daily.append(sample)
                    if sample.rss_bytes is None:
                        problems.append(f"day {day_seen}: the worker's RSS could not be read")
                    self._progress(sample, fleet.stats.published, desk)
                    if day_seen in self.checkpoints:
                        samples.append(sample)
        finally:
            stop.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(fleet_task, timeout=15)
            if desk_task is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(desk_task, timeout=15)
        reference = samples[-2] if len(samples) >= 2 else None
        checks = flatness(reference, samples[-1], o.tolerance) if reference else []
        final = await asyncio.to_thread(read_health, self.web_port)
        return SoakReport(
            days=o.days,
            speed=o.speed,
            interval=o.interval,
            devices=devices,
            sim_start=clock.start,
            app_id=self.app_id,
            bucket=self.bucket,
            samples=samples,
            daily=daily,
            checks=checks,
            tolerance=o.tolerance,
            reference_day=reference.day if reference else None,
            seconds=time.monotonic() - began,
            published=fleet.stats.published,
            stored=(final or {}).get("stored_readings"),
            notifications=desk.notifications(),
            officer_actions=dict(desk.acted),
            problems=problems,
        )

    async def _sample(self, day: int, simulated: datetime, pid: int) -> Sample:
        """The worker's /health (three tries: a busy worker may answer late) and its RSS."""
        health = None
        for _ in range(3):
            health = await asyncio.to_thread(read_health, self.web_port)
            if health is not None:
                break
            await asyncio.sleep(0.5)
        return sample_from_health(day, simulated, health, statm_rss(pid))

    def _progress(self, sample: Sample, published: int, desk: SoakDesk) -> None:
        tables = sample.tables
        held = f"tables {size(sum(t.bytes for t in tables.values()))}" if tables else "tables ?"
        stored = sample.counts.get("stored_readings")
        self.say(
            f"day {sample.day:>2} {sample.simulated.astimezone(CHINA):%m-%d}: published "
            f"{published:,}, stored {f'{stored:,}' if stored is not None else '?'}, worker RSS "
            f"{size(sample.rss_bytes)}, {held}; notifications "
            f"{sum(desk.notifications().values()):,}, officers acted "
            f"{sum(desk.acted.values()):,}"
            + (" (measured)" if sample.day in self.checkpoints else "")
        )


def run_soak(
    settings: Settings, catalogue: Catalogue, options: SoakOptions, echo: Callable[[str], None]
) -> SoakReport:
    try:
        return Soak(settings, catalogue, options, echo).run()
    except StageFailed as failed:
        raise EcowatchError(f"the soak stopped: {failed}") from None
