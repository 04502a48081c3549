"""The ``ecowatch`` command. Thin: parse options, build the parts, run them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import queue
import re
import signal
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import click

from ecowatch import topics
from ecowatch.alerts.inbox import Inbox, Received, inbox_env, officer_tokens
from ecowatch.clock import CHINA, SystemClock
from ecowatch.config.catalogue import Catalogue, load_catalogue
from ecowatch.config.settings import Settings, load_settings
from ecowatch.errors import ConfigError, EcowatchError, ServiceDown
from ecowatch.files import write_private
from ecowatch.ingest.bridge import BridgeStats
from ecowatch.kafka_accounts import Role, access_for
from ecowatch.schema import Rule
from ecowatch.topics import BridgeSlice
from ecowatch.watch import ChildProcess, FlowWatch, StageFailed, StageFailure, Supervisor

if TYPE_CHECKING:
    from ecowatch.simulators.city import FleetPlan
    from ecowatch.simulators.fleet import Fleet

log = logging.getLogger("ecowatch")


def _settings_and_catalogue() -> tuple[Settings, Catalogue]:
    settings = load_settings()
    return settings, load_catalogue(settings.catalogue)


def _require_secrets(settings: Settings) -> None:
    missing = [
        name
        for name, value in (
            ("ECOWATCH_INFLUX_TOKEN", settings.influx_token.get_secret_value()),
            ("ECOWATCH_MQTT_PASSWORD", settings.mqtt_password.get_secret_value()),
        )
        if not value
    ]
    if missing:
        raise ConfigError(
            f"{', '.join(missing)} not set: export them, or start the local stack with "
            f"`ecowatch stack up`, which writes them to {settings.state_dir / 'stack.env'}"
        )


def _stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log at debug level.")
def cli(verbose: bool) -> None:
    """ecowatch: online pollution monitoring and enforcement alerts."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # aiokafka and paho are chatty at INFO about every (re)connection.
    logging.getLogger("aiokafka").setLevel(logging.WARNING)


# -- stack -------------------------------------------------------------------------------------


@cli.group()
def stack() -> None:
    """The local Mosquitto, Kafka and InfluxDB, installed and run without Docker."""


def _stack():
    from ecowatch.stack.services import Stack

    settings, catalogue = _settings_and_catalogue()
    return Stack(settings, catalogue)


@stack.command("install")
def stack_install() -> None:
    """Install every service (slow the first time; cached after)."""
    from ecowatch.stack.process import Progress

    _stack().install(Progress(click.echo))
    click.echo("installed")


@stack.command("up")
def stack_up() -> None:
    """Install what is missing, start what is down, wait until each is healthy."""
    from ecowatch.stack.process import Progress

    s = _stack()
    s.up(Progress(click.echo))
    for status in s.status():
        click.echo(status.line())


@stack.command("down")
@click.option("--wipe", is_flag=True, help="Also delete the services' data and generated secrets.")
def stack_down(wipe: bool) -> None:
    """Stop the services this stack started (and nothing else)."""
    stopped = _stack().down(wipe=wipe)
    click.echo(
        f"stopped: {', '.join(stopped) or 'nothing was running'}"
        + (" (data wiped)" if wipe else "")
    )


@stack.command("status")
def stack_status() -> None:
    """For each service: up or down, where, and its version. Exits 1 if any is down."""
    statuses = _stack().status()
    for status in statuses:
        click.echo(status.line())
    if not all(s.up for s in statuses):
        sys.exit(1)


@stack.command("logs")
@click.argument("service", type=click.Choice(["mosquitto", "kafka", "influxdb"]))
@click.option("-n", "--lines", default=40, show_default=True)
def stack_logs(service: str, lines: int) -> None:
    """The last lines of a service's log."""
    s = _stack()
    proc = {x.name: x.proc for x in s.services}[service]
    click.echo(f"# {proc.log_file}")
    click.echo(proc.log_tail(lines))


# -- the running parts -------------------------------------------------------------------------


async def _run_bridge(
    settings: Settings, catalogue: Catalogue, stop: asyncio.Event, on_stats=None
) -> None:
    from ecowatch.ingest.bridge import MqttBridge
    from ecowatch.ingest.commands import CommandRelay
    from ecowatch.kafka import ensure_topics, start_producer

    kafka = access_for(settings, Role.INGEST)
    await ensure_topics(kafka, settings.kafka_partitions, topics.INGEST_TOPICS)
    producer = await start_producer(kafka, "ecowatch-bridge")
    try:
        bridge = MqttBridge(
            mqtt_host=settings.mqtt_host,
            mqtt_port=settings.mqtt_port,
            username=settings.mqtt_username,
            password=settings.mqtt_password.get_secret_value(),
            producer=producer,
            catalogue=catalogue,
            clock=SystemClock(),
            bridge_slice=BridgeSlice.parse(settings.bridge_slice),
        )
        await bridge.connect()
        if on_stats:
            on_stats(bridge.stats)
        # Commands travel the other way on the same MQTT connection.
        relay = CommandRelay(
            kafka=kafka,
            client=bridge.client,
            producer=producer,
            catalogue=catalogue,
            clock=SystemClock(),
        )
        relay_task = asyncio.create_task(relay.run(stop))
        try:
            await bridge.run(stop)
        finally:
            await relay_task
    finally:
        await producer.stop()


@cli.command()
def bridge() -> None:
    """Run the MQTT → Kafka bridge until stopped (Ctrl-C or SIGTERM).

    Logs its counts every 10 seconds, and prints them as one JSON line when it stops.
    """
    settings, catalogue = _settings_and_catalogue()
    _require_secrets(settings)
    _fold_kafka_outages(settings)
    holder: dict[str, BridgeStats] = {}

    async def main() -> None:
        stop = asyncio.Event()
        _stop_on_signals(stop)

        async def report() -> None:
            while not stop.is_set():
                await asyncio.sleep(10)
                if "stats" in holder:
                    log.info("bridge: %s", holder["stats"].as_dict())

        reporter = asyncio.create_task(report())
        try:
            await _run_bridge(settings, catalogue, stop, on_stats=lambda s: holder.update(stats=s))
        finally:
            reporter.cancel()

    asyncio.run(main())
    if "stats" in holder:
        click.echo(json.dumps(holder["stats"].as_dict()))


def _fold_kafka_outages(settings: Settings) -> None:
    """A Kafka outage is one line when it starts and one when it ends, not the hundreds of
    errors a second aiokafka and Faust log while it lasts. Call once logging is set up."""
    from ecowatch.outage import Outage, fold_outages
    from ecowatch.stack.process import port_open

    fold_outages(
        Outage("Kafka", settings.kafka_bootstrap),
        lambda: port_open(settings.kafka_host, settings.kafka_port),
        libraries=("aiokafka", "faust", "mode"),
        tag="kafka",
    )


@cli.command("kafka-setup")
def kafka_setup() -> None:
    """Create the platform's Kafka topics and grant its principals their ACLs, signed in as
    Kafka's admin (ECOWATCH_KAFKA_USERNAME/PASSWORD): what `ecowatch stack up` does for the
    local stack, for a Kafka of your own (docker-compose runs it once)."""
    from ecowatch.kafka_accounts import set_up

    settings = load_settings()
    kafka = access_for(settings, Role.ADMIN)
    asyncio.run(set_up(kafka, settings.kafka_partitions, settings.app_id))
    click.echo(f"kafka-setup: topics and ACLs in place at {kafka.who}")


@cli.command()
def worker() -> None:
    """Run the Faust stream worker (store readings in InfluxDB) until stopped."""
    import faust

    from ecowatch.kafka import ensure_topics
    from ecowatch.streams.app import create_app

    settings = load_settings()
    if not settings.influx_token.get_secret_value():
        _require_secrets(settings)
    app = create_app(settings)
    changelogs = tuple(table.changelog_topic.get_topic_name() for table in app.tables.values())
    kafka = access_for(settings, Role.WORKER)
    asyncio.run(ensure_topics(kafka, settings.kafka_partitions, compacted=changelogs))

    class Worker(faust.Worker):
        def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
            super().on_setup_root_logger(logger, level)
            _fold_kafka_outages(settings)  # Faust replaces the handlers: fold on its own

    Worker(app, loglevel="info", redirect_stdouts=False).execute_from_commandline()


def _fleet_plan(**options: object) -> FleetPlan:
    from ecowatch.simulators.city import FleetPlan

    start = options.pop("start")
    if start is not None and start.tzinfo is None:  # type: ignore[union-attr]
        start = start.replace(tzinfo=CHINA)  # type: ignore[union-attr]
    return FleetPlan(start=start, **options)  # type: ignore[arg-type]


def fleet_options(defaults: dict[str, object]) -> Callable[[Callable], Callable]:
    """The fleet's options, shared by `simulate` and `demo` (with their own defaults)."""
    options = [
        click.option(
            "--outfalls",
            default=defaults["outfalls"],
            show_default=True,
            help="Outfall monitors, the catalogue's first N.",
        ),
        click.option("--air-stations", default=defaults["air_stations"], show_default=True),
        click.option(
            "--meters",
            default=defaults["meters"],
            show_default=True,
            help="Card-swipe discharge meters (always on MQTT: they take commands).",
        ),
        click.option(
            "--interval",
            default=defaults["interval"],
            show_default=True,
            help="Simulated seconds between a device's readings.",
        ),
        click.option(
            "--speed",
            default=defaults["speed"],
            show_default=True,
            help="Time acceleration: simulated seconds per real second.",
        ),
        click.option(
            "--start",
            type=click.DateTime(),
            default=None,
            help="Simulated start time (China time unless an offset is given); by "
            "default a fast fleet starts in the past so as to end near now.",
        ),
        click.option(
            "--duration", default=0.0, help="Stop after this many real seconds (0: until Ctrl-C)."
        ),
        click.option(
            "--scenario",
            default=defaults["scenario"],
            help="A scenario's name (simulators/scenarios/) or a YAML file.",
        ),
        click.option(
            "--transport",
            type=click.Choice(["mqtt", "hj212"]),
            default="mqtt",
            show_default=True,
            help="How monitors reach the platform.",
        ),
        click.option(
            "--garble-every",
            default=defaults["garble_every"],
            show_default=True,
            help="The first monitor is on a flaky link: every Nth message arrives broken.",
        ),
        click.option("--seed", default=1, show_default=True),
    ]

    def decorate(fn: Callable) -> Callable:
        for option in reversed(options):
            fn = option(fn)
        return fn

    return decorate


def _echo_happenings(fleet: Fleet) -> None:
    for line in fleet.happenings:
        click.echo(f"  scenario: {line}")
    fleet.happenings.clear()


async def _run_fleet(fleet: Fleet, stop: asyncio.Event, report_every: float = 5.0) -> None:
    """Run a fleet, printing its counts and the scenario's turns as they happen."""
    task = asyncio.create_task(fleet.run(stop))
    while not task.done():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), timeout=report_every)
        _echo_happenings(fleet)
        stats = fleet.stats
        sim = fleet.clock.now().astimezone(CHINA)
        click.echo(
            f"{time.strftime('%H:%M:%S')}  sim {sim:%m-%d %H:%M}"
            f"  sent {stats.sent}  acknowledged {stats.published}  silent {stats.silent}"
            f"  garbled {stats.garbled}  commands {dict(stats.commands) or 0}"
        )
    task.result()


@cli.command()
@fleet_options(
    {
        "outfalls": 6,
        "air_stations": 2,
        "meters": 2,
        "interval": 60.0,
        "speed": 1.0,
        "scenario": None,
        "garble_every": 0,
    }
)
def simulate(**options: object) -> None:
    """Run simulated monitors: outfalls, air stations and discharge meters of the catalogue."""
    from ecowatch.simulators.city import build_fleet

    settings, catalogue = _settings_and_catalogue()
    plan = _fleet_plan(**options)
    fleet = build_fleet(settings, catalogue, plan)

    async def main() -> None:
        stop = asyncio.Event()
        _stop_on_signals(stop)
        if plan.duration:
            asyncio.get_running_loop().call_later(plan.duration, stop.set)
        await _run_fleet(fleet, stop)

    click.echo(
        f"{len(fleet.devices)} devices over {plan.transport}, a reading every "
        f"{plan.interval:g} simulated s, {plan.speed:g}x"
    )
    asyncio.run(main())
    click.echo(json.dumps(fleet.stats.as_dict()))


# -- demo --------------------------------------------------------------------------------------


def _influx_points(settings: Settings, since: datetime) -> int | None:
    from ecowatch.streams.store import count_reading_points

    try:
        return count_reading_points(
            settings.influx_url,
            settings.influx_token.get_secret_value(),
            settings.influx_org,
            settings.influx_bucket,
            since,
            timeout_ms=5000,
        )
    except Exception:  # the counter line says '?' rather than stop the demo
        return None


def _worker_counts(settings: Settings) -> dict | None:
    """The worker's /health (its counts, and whether it is ready); None if it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{settings.web_port}/health", timeout=1) as r:
            return json.loads(r.read())
    except (OSError, ValueError):
        return None


async def _wait_until_ready(settings: Settings, timeout: float) -> float:
    """Seconds until the worker says it is ready (tables recovered, partitions assigned)."""
    started = time.monotonic()
    while not ((await asyncio.to_thread(_worker_counts, settings)) or {}).get("ready"):
        if time.monotonic() - started > timeout:
            raise EcowatchError(f"the worker was not ready within {timeout:.0f} s")
        await asyncio.sleep(0.2)
    return time.monotonic() - started


SHOWN_CASE_EVENTS = {"reminded", "escalated", "renotified", "raised", "acknowledged", "closed"}


async def _follow_cases(settings: Settings, stop: asyncio.Event) -> None:
    """Print the cases' turns as the worker takes them (ecowatch.cases, from now on)."""
    from ecowatch.kafka import start_consumer

    kafka = access_for(settings, Role.OPS)
    consumer = await start_consumer(kafka, topics.CASES, auto_offset_reset="latest")
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    event = json.loads(record.value)
                    if event["kind"] in SHOWN_CASE_EVENTS:
                        click.echo(
                            f"  case {event['kind']:<12} {event['case_id']}  {event['detail'][:60]}"
                        )
    finally:
        await consumer.stop()


def _start_worker(settings: Settings, env: dict[str, str] | None = None) -> ChildProcess:
    """`ecowatch worker` as a child of this command, logging to <state>/worker.log."""
    return ChildProcess(
        "worker",
        [sys.executable, "-m", "ecowatch.cli", "worker"],
        settings.state_dir / "worker.log",
        env={**os.environ, **(env or {})},
    )


# A case id: the finding's time, the site, the pollutant or device, the rule.
CASE_ID = re.compile(
    r"\d{14}-(?P<site>S-[A-Z]+-\d{3})-\S+?-(?:" + "|".join(r.value for r in Rule) + r")\b"
)


class OfficerDesk:
    """The demo's officers: each escalation that reaches one in the inbox is acknowledged
    through the case API with that officer's token, and findings are recorded asking to
    close (the case closes once its data has held normal for the hold period)."""

    def __init__(self, settings: Settings, tokens: dict[str, str]) -> None:
        self.settings = settings
        self.token_of = {officer: token for token, officer in tokens.items()}
        self.todo: queue.SimpleQueue[tuple[str, str, str]] = queue.SimpleQueue()
        self.taken: set[str] = set()  # one officer of the grid takes a case

    def on_message(self, received: Received) -> None:
        first_line = received.message.splitlines()[0] if received.message else ""
        click.echo(f"  → {received.recipient:<8} {received.title}  {first_line[:70]}")
        match = CASE_ID.search(received.message)
        if received.title.startswith("【执法】") and match and received.recipient in self.token_of:
            self.todo.put((received.recipient, match.group("site"), match.group(0)))

    def work(self) -> None:
        """Act on what has arrived (called from the demo's loop, off the inbox's thread)."""
        while not self.todo.empty():
            officer, site, case_id = self.todo.get()
            if case_id in self.taken:
                continue
            self.taken.add(case_id)
            token = self.token_of[officer]
            base = f"/api/sites/{site}/cases/{case_id}"
            for action, body, said in (
                ("ack", None, "acknowledged"),
                ("findings", {"text": "现场检查：已责令整改", "close": True}, "recorded findings"),
            ):
                try:
                    _api_as(self.settings, token, "POST", f"{base}/{action}", body)
                    click.echo(f"  ✓ {officer:<8} {said} through the API: {case_id}")
                except EcowatchError as exc:  # e.g. 409: a colleague acknowledged it first
                    click.echo(f"  · {officer:<8} {action}: {exc}")


def _demo_people_tokens(
    settings: Settings, catalogue: Catalogue
) -> tuple[dict[str, str], dict[str, str]]:
    """The API tokens the demo's people use (token → who, kept in memory only), and the
    worker's environment for them. Fresh tokens for every officer and an operator, whose
    hashes go to the state folder (0600, outside git). With the operator's own file
    (ECOWATCH_OFFICER_TOKENS), which holds hashes only, the demo knows only
    ECOWATCH_API_TOKEN, if the file names it."""
    from ecowatch.tokens import hashed, identify, load_tokens, new_token

    if settings.officer_tokens is not None:
        token = settings.api_token.get_secret_value()
        who = identify(load_tokens(settings.officer_tokens), token)
        known = {token: who} if who is not None else {}
        click.echo(
            f"tokens: {settings.officer_tokens} holds hashes only: the demo's officers act "
            f"only as ECOWATCH_API_TOKEN ({who or 'not in the file'})"
        )
        return known, {}
    tokens = officer_tokens(catalogue) | {new_token(): "operator:demo"}
    path = write_private(
        settings.state_dir / "demo-officer-tokens.json", json.dumps(hashed(tokens), indent=1)
    )
    return tokens, {"ECOWATCH_OFFICER_TOKENS": str(path)}


def _echo_weekly(settings: Settings, tokens: dict[str, str], sim_now: datetime) -> None:
    """The week's settlement per grid, as the operators' API gives it, for the demo's end."""
    operator = next((t for t, who in tokens.items() if who.startswith("operator:")), None)
    if operator is None:
        click.echo("weekly report: no operator token in ECOWATCH_OFFICER_TOKENS")
        return
    day = sim_now.astimezone(CHINA).date()
    monday = day - timedelta(days=day.weekday())
    try:
        report = _api_as(settings, operator, "GET", f"/api/reports/weekly?week={monday}")
    except EcowatchError as exc:
        click.echo(f"weekly report: {exc}")
        return
    click.echo(f"weekly settlement, week of {monday} (opened, escalated, acknowledged, closed):")
    for g in report["grids"]:
        if g["opened"] or g["escalated"] or g["open_at_end"]:
            overdue = f", overdue {len(g['overdue'])}" if g["overdue"] else ""
            click.echo(
                f"  {g['grid']:<8} {g['name']:<12} {g['opened']:>3} {g['escalated']:>3} "
                f"{g['acknowledged']:>3} {g['closed']:>3}  open {g['open_at_end']}{overdue}"
            )


@cli.command()
@fleet_options(
    {
        "outfalls": 6,
        "air_stations": 2,
        "meters": 2,
        "interval": 60.0,
        "speed": 30.0,
        "scenario": "demo-city",
        "garble_every": 10,
    }
)
def demo(**options: object) -> None:
    """Start the stack, a worker, the bridge (and the HJ 212 server) and a simulated city
    playing a scenario; show live counts from every stage."""
    from ecowatch.ingest.hj212_server import Hj212Server
    from ecowatch.kafka import start_producer
    from ecowatch.simulators.city import build_fleet
    from ecowatch.stack.process import Progress
    from ecowatch.stack.services import Stack

    settings, catalogue = _settings_and_catalogue()
    plan = _fleet_plan(**options)
    Stack(settings, catalogue).up(Progress(click.echo))
    settings = load_settings()  # now with the secrets the stack generated
    _fold_kafka_outages(settings)  # the in-process bridge and relay are Kafka clients
    fleet = build_fleet(settings, catalogue, plan)
    tokens, worker_env = _demo_people_tokens(settings, catalogue)
    desk = OfficerDesk(settings, tokens)
    inbox = Inbox(desk.on_message).__enter__()
    worker_env |= inbox_env(catalogue, inbox.port, os.environ)
    worker = _start_worker(settings, worker_env)
    click.echo(f"worker started (pid {worker.pid}, log {worker.log_path})")
    click.echo(
        f"people: whoever has no apprise URL set gets their messages in the demo's inbox "
        f"(127.0.0.1:{inbox.port}); officers act on escalations through the case API"
    )
    # Healthy is not flowing: a stage that stands still while the one before it moves ends
    # the demo with the reason, as a worker that exits does.
    supervisor = Supervisor(
        [worker],
        FlowWatch([("acknowledged", "bridged"), ("bridged", "stored"), ("bridged", "judged")]),
        owners={"bridged": "bridge", "stored": worker, "judged": worker},
    )
    since = datetime.now(UTC) - timedelta(days=7)  # readings carry simulated (past) times

    async def main() -> None:
        stop = asyncio.Event()  # stops the monitors; the bridge then drains and stops
        _stop_on_signals(stop)
        bridge_stop = asyncio.Event()
        holder: dict[str, BridgeStats] = {}
        connected = asyncio.Event()

        def on_stats(stats: BridgeStats) -> None:
            holder["stats"] = stats
            connected.set()

        bridge_task = asyncio.create_task(_run_bridge(settings, catalogue, bridge_stop, on_stats))
        console_task = asyncio.create_task(_demo_console(settings, catalogue, tokens, stop))
        tasks: list[asyncio.Task] = [bridge_task, console_task]
        try:
            # Monitors start once the bridge is subscribed and the worker ready: from then on
            # nothing is missed, and a stage that does not move is a fault, not a slow start.
            await asyncio.wait(
                {bridge_task, asyncio.create_task(connected.wait())},
                return_when=asyncio.FIRST_COMPLETED,
            )
            _bridge_failure(bridge_task)
            took = await _wait_until_ready(settings, timeout=120)
            click.echo(f"worker ready in {took:.1f} s (tables recovered, partitions assigned)")
            click.echo(
                f"{len(fleet.devices)} devices over {plan.transport}, a reading every "
                f"{plan.interval:g} simulated s at {plan.speed:g}x"
                + (f", playing scenario '{plan.scenario}'" if plan.scenario else "")
            )
            if plan.duration:
                asyncio.get_running_loop().call_later(plan.duration, stop.set)
            hj212_server: Hj212Server | None = None
            if plan.transport == "hj212":
                producer = await start_producer(access_for(settings, Role.INGEST), "ecowatch-hj212")
                # The same constructor as `hj212 serve`: the frame deadline and PWs it sets.
                hj212_server = Hj212Server.from_settings(
                    settings, producer=producer, catalogue=catalogue, clock=SystemClock()
                )
                listening = await hj212_server.serve(settings.hj212_host, settings.hj212_port)
            fleet_task = asyncio.create_task(fleet.run(stop))
            cases_task = asyncio.create_task(_follow_cases(settings, bridge_stop))
            tasks += [fleet_task, cases_task]
            b = holder["stats"]
            click.echo(
                "time      simulated     acknowledged  bridged  dead-lettered  stored  points"
                "  commands"
            )
            while not (fleet_task.done() and bridge_task.done()):
                with contextlib.suppress(TimeoutError):
                    # While the monitors run, wake when they stop; then, when the bridge does.
                    waiting_for = bridge_task if fleet_task.done() else fleet_task
                    await asyncio.wait_for(asyncio.shield(waiting_for), timeout=2.0)
                _echo_happenings(fleet)
                _bridge_failure(bridge_task)
                tcp = hj212_server.stats if hj212_server else None
                bridged = b.bridged + (tcp.bridged if tcp else 0)
                dead = b.dead_lettered_total + (sum(tcp.dead_lettered.values()) if tcp else 0)
                if fleet_task.done() and not bridge_stop.is_set():
                    fleet_task.result()
                    # Let the bridge take what the monitors sent last, then stop it.
                    for _ in range(50):
                        if bridged + dead >= fleet.stats.published:
                            break
                        await asyncio.sleep(0.1)
                    bridge_stop.set()
                await asyncio.to_thread(desk.work)
                points = await asyncio.to_thread(_influx_points, settings, since)
                health = await asyncio.to_thread(_worker_counts, settings)
                stored = health.get("stored_readings", 0) if health else None
                supervisor.check_flow(
                    {
                        "acknowledged": fleet.stats.published,
                        "bridged": bridged,
                        "stored": stored,
                        "judged": health.get("judged_readings", 0) if health else None,
                    }
                )
                sim = fleet.clock.now().astimezone(CHINA)
                commands = sum(fleet.stats.commands.values())
                click.echo(
                    f"{time.strftime('%H:%M:%S')}  {sim:%m-%d %H:%M}  "
                    f"{fleet.stats.published:>12}  {bridged:>7}  {dead:>13}  "
                    f"{stored if stored is not None else '?':>6}  "
                    f"{points if points is not None else '?':>6}  {commands:>8}"
                )
            await cases_task
            if hj212_server is not None:
                listening.close()
                await listening.wait_closed()  # its connections and queued dead letters
                await producer.stop()
        finally:
            # Stopped early (a failed stage, Ctrl-C): the monitors and the bridge stop too.
            stop.set()
            bridge_stop.set()
            await asyncio.wait(tasks, timeout=15)

    try:
        asyncio.run(supervisor.run(main()))
        _echo_weekly(settings, tokens, fleet.clock.now())
    except StageFailed as failed:
        _say_failed_stage(failed)
        raise SystemExit(1) from None
    finally:
        inbox.__exit__(None, None, None)
        worker.stop()
    click.echo("demo stopped; the stack keeps running (`ecowatch stack down` stops it)")


async def _demo_console(
    settings: Settings, catalogue: Catalogue, tokens: dict[str, str], stop: asyncio.Event
) -> None:
    """The operators' console beside the demo. Its link carries the demo operator's token in
    the fragment, which the browser keeps to itself: the page signs in with it."""
    from pydantic import SecretStr

    from ecowatch.console.run import serve

    operator = next((t for t, who in tokens.items() if who.startswith("operator:")), None)

    def say(url: str) -> None:
        link = f"{url}login#token={operator}" if operator else url
        click.echo(f"console: {url}  (the wall, the desk and the phone; signed in: {link})")

    if operator and not settings.api_token.get_secret_value():
        # Its own token too: the open cases are on the wall before anyone signs in.
        settings = settings.model_copy(update={"api_token": SecretStr(operator)})
    try:
        await serve(settings, catalogue, stop, say)
    except EcowatchError as exc:  # the demo goes on without its screens
        click.echo(f"console: not started: {exc}", err=True)


def _say_failed_stage(failed: StageFailed) -> None:
    """Said before the clean-up, which can take a while (a worker waiting on a hung service)."""
    click.echo(f"ecowatch: {failed}", err=True)
    click.echo("stopping what this command started", err=True)


def _bridge_failure(bridge_task: asyncio.Task) -> None:
    """The in-process bridge must not end before it is told to: say why it did."""
    if not bridge_task.done() or bridge_task.cancelled():
        return
    exc = bridge_task.exception()
    if exc is not None:
        raise StageFailed(StageFailure("bridge", f"failed: {exc}")) from exc


@cli.command()
@click.argument("readings", type=click.File("r", encoding="utf-8"))
@click.option(
    "--tick",
    default="5m",
    show_default=True,
    help="How often time passes between readings (deadlines, offline devices).",
)
@click.option(
    "--only", default="", help="Print only these line types, e.g. notification,case_event."
)
def replay(readings, tick: str, only: str) -> None:
    """Run recorded readings (JSON lines, in time order) through the detection and escalation
    code the workers use, on the readings' own clock; print findings, case events,
    notifications and valve commands as JSON lines. No services needed."""
    from ecowatch.durations import parse_duration
    from ecowatch.streams.replay import Replay

    settings, catalogue = _settings_and_catalogue()
    try:
        step = parse_duration(tick)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--tick") from None
    wanted = {t.strip() for t in only.split(",") if t.strip()}
    run = Replay(catalogue, aqi_standard=settings.aqi_standard, tick=step)
    for line in run.feed(readings):
        if line["type"] == "error":
            click.echo(f"ecowatch replay: line {line['line']}: {line['detail']}", err=True)
        elif not wanted or line["type"] in wanted:
            click.echo(json.dumps(line, ensure_ascii=False))
    if run.errors:
        click.echo(f"ecowatch replay: {run.errors} line(s) could not be read", err=True)
        sys.exit(1)


def _api(settings: Settings, method: str, path: str, body: dict | None = None) -> dict:
    """Call the worker's case API with ECOWATCH_API_TOKEN; errors are one clear line."""
    token = settings.api_token.get_secret_value()
    if not token:
        raise ConfigError("ECOWATCH_API_TOKEN is not set: an officer's or operator's API token")
    return _api_as(settings, token, method, path, body)


def _api_as(
    settings: Settings, token: str, method: str, path: str, body: dict | None = None
) -> dict:
    host = settings.web_host
    if host in ("0.0.0.0", "::"):  # listening everywhere: ask on this machine
        host = "127.0.0.1"
    url = f"http://{f'[{host}]' if ':' in host else host}:{settings.web_port}{path}"
    request = urllib.request.Request(
        url,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read() or b"{}").get("error", exc.reason)
        except (ValueError, AttributeError):
            detail = exc.reason
        raise EcowatchError(f"the case API answered {exc.code}: {detail}") from None
    except OSError as exc:
        raise ServiceDown("the ecowatch worker (case API)", url, str(exc)) from None


@cli.group(invoke_without_command=True)
@click.option("--grid", default=None, help="Only this grid (an operator's, or one of yours).")
@click.option("--status", default=None, help="pending, reminded, escalated, acknowledged.")
@click.option("--min-age", "min_age", default=0.0, help="Only cases at least this old (minutes).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def cases(
    ctx: click.Context, grid: str | None, status: str | None, min_age: float, as_json: bool
) -> None:
    """The open cases (your grids', or every grid's for an operator); `ack` and `findings`
    act on one. Talks to the worker's API with ECOWATCH_API_TOKEN."""
    if ctx.invoked_subcommand is not None:
        return
    settings = load_settings()
    query = urllib.parse.urlencode(
        {k: v for k, v in {"grid": grid, "status": status, "min_age_minutes": min_age}.items() if v}
    )
    listing = _api(settings, "GET", f"/api/cases?{query}")
    if as_json:
        click.echo(json.dumps(listing, ensure_ascii=False))
        return
    click.echo(f"grid {listing['grid']}: {len(listing['cases'])} open case(s)")
    for c in listing["cases"]:
        click.echo(f"  {c['status']:<12} {c['id']}  {c['site_name']}  {c['detail']}")


@cases.command("ack")
@click.argument("site")
@click.argument("case_id")
def cases_ack(site: str, case_id: str) -> None:
    """Acknowledge a case: you take it; the re-notifications stop."""
    click.echo(json.dumps(_api(load_settings(), "POST", f"/api/sites/{site}/cases/{case_id}/ack")))


@cases.command("findings")
@click.argument("site")
@click.argument("case_id")
@click.argument("text")
@click.option("--close", is_flag=True, help="Close once the data has held normal.")
def cases_findings(site: str, case_id: str, text: str, close: bool) -> None:
    """Record your findings on a case (and ask to close it). At most 4096 bytes (UTF-8)."""
    path = f"/api/sites/{site}/cases/{case_id}/findings"
    click.echo(json.dumps(_api(load_settings(), "POST", path, {"text": text, "close": close})))


@cli.group()
def report() -> None:
    """Reports."""


@report.command("weekly")
@click.option("--week", default=None, help="The week's Monday, YYYY-MM-DD (default: this week).")
@click.option("--json", "as_json", is_flag=True)
def report_weekly(week: str | None, as_json: bool) -> None:
    """The weekly settlement (周周能结清): per grid, cases opened, escalated, acknowledged,
    closed, and overdue at the week's end."""
    if week is None:
        today = datetime.now(CHINA).date()
        week = (today - timedelta(days=today.weekday())).isoformat()
    data = _api(load_settings(), "GET", f"/api/reports/weekly?week={week}")
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False))
        return
    click.echo(f"week of {data['week']}")
    click.echo("grid      opened  escalated  acknowledged  closed  overdue  settled")
    for g in data["grids"]:
        click.echo(
            f"{g['grid']:<9} {g['opened']:>6}  {g['escalated']:>9}  {g['acknowledged']:>12}  "
            f"{g['closed']:>6}  {len(g['overdue']):>7}  {'yes' if g['settled'] else 'NO'}"
        )


@cli.group()
def tokens() -> None:
    """The case API's tokens file (ECOWATCH_OFFICER_TOKENS), which keeps only their hashes."""


@tokens.command("add")
@click.argument("who")
@click.option(
    "--file",
    "path",
    type=click.Path(dir_okay=False),
    default=None,
    help="The tokens file (default: ECOWATCH_OFFICER_TOKENS); created 0600 if missing.",
)
def tokens_add(who: str, path: str | None) -> None:
    """A new token for WHO, an officer's catalogue id (O-KC-01) or operator:NAME. The token is
    printed once; the file keeps only its hash. The worker reads the file when it starts."""
    from pathlib import Path

    from ecowatch.tokens import OPERATOR, add_token

    settings, catalogue = _settings_and_catalogue()
    file = Path(path) if path else settings.officer_tokens
    if file is None:
        raise ConfigError("no tokens file: pass --file FILE or set ECOWATCH_OFFICER_TOKENS")
    if not who.startswith(OPERATOR) and who not in catalogue.officers:
        raise ConfigError(
            f"{who!r}: no officer of that id in the catalogue (expected an officer's id, "
            f"e.g. O-KC-01, or operator:NAME)"
        )
    token = add_token(file, who)
    click.echo(token)
    click.echo(
        f"the token of {who}, shown this once: {file} keeps only its hash. Restart the worker "
        "to let it in.",
        err=True,
    )


@tokens.command("convert")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
def tokens_convert(path: str) -> None:
    """Replace the plain tokens of an old tokens file by their hashes, in place (0600)."""
    from pathlib import Path

    from ecowatch.tokens import convert_file

    converted = convert_file(Path(path))
    click.echo(
        f"{path}: {converted} token(s) replaced by their hashes; the tokens themselves are "
        "unchanged"
    )


# -- operators' tools --------------------------------------------------------------------------


@cli.command("dead-letters")
@click.option("--limit", default=20, show_default=True)
def dead_letters(limit: int) -> None:
    """Print dead letters (reason, origin, detail, payload), oldest first, as JSON lines."""
    from ecowatch.kafka import read_topic

    settings = load_settings()

    async def main() -> None:
        n = 0
        kafka = access_for(settings, Role.OPS)
        async for _, value in read_topic(kafka, topics.READINGS_DLQ):
            click.echo(value.decode())
            n += 1
            if n >= limit:
                return

    asyncio.run(main())


@cli.command("console")
def console() -> None:
    """The operators' console: the wall, the desk and the phone, live, in a browser.

    Listens on ECOWATCH_CONSOLE_HOST:ECOWATCH_CONSOLE_PORT and prints its address; reads Kafka
    as the ops principal and passes case requests to the worker's API with the caller's token.
    """
    from ecowatch.console.run import serve

    settings, catalogue = _settings_and_catalogue()
    _fold_kafka_outages(settings)

    async def main() -> None:
        stop = asyncio.Event()
        _stop_on_signals(stop)
        await serve(settings, catalogue, stop, lambda url: click.echo(f"console: {url}"))

    asyncio.run(main())


@click.command("serve")
def hj212_serve() -> None:
    """Run the HJ 212 TCP server for real monitors until stopped (Ctrl-C or SIGTERM).

    Listens on ECOWATCH_HJ212_HOST:ECOWATCH_HJ212_PORT; prints its counts as JSON when stopped.
    """
    from ecowatch.ingest.hj212_server import Hj212Server
    from ecowatch.kafka import ensure_topics, start_producer

    settings, catalogue = _settings_and_catalogue()
    _fold_kafka_outages(settings)
    holder: dict[str, Hj212Server] = {}

    async def main() -> None:
        stop = asyncio.Event()
        _stop_on_signals(stop)
        kafka = access_for(settings, Role.INGEST)
        await ensure_topics(kafka, settings.kafka_partitions, topics.INGEST_TOPICS)
        producer = await start_producer(kafka, "ecowatch-hj212")
        try:
            server = Hj212Server.from_settings(
                settings, producer=producer, catalogue=catalogue, clock=SystemClock()
            )
            holder["server"] = server
            try:
                listening = await server.serve(settings.hj212_host, settings.hj212_port)
            except OSError as exc:
                raise ConfigError(
                    f"ECOWATCH_HJ212_PORT: cannot listen on "
                    f"{settings.hj212_host}:{settings.hj212_port} ({exc.strerror})"
                ) from None
            async with listening:
                await stop.wait()
        finally:
            await producer.stop()

    asyncio.run(main())
    if "server" in holder:
        click.echo(json.dumps(holder["server"].stats.as_dict()))


def _register_domain_commands() -> None:
    """Commands whose code lives beside its domain (the codec, the AQI)."""
    from ecowatch.bench import bench
    from ecowatch.drill import drill
    from ecowatch.ingest.hj212_cli import hj212
    from ecowatch.streams.aqi_cli import aqi

    hj212.add_command(hj212_serve)
    cli.add_command(hj212)
    cli.add_command(aqi)
    cli.add_command(bench)
    cli.add_command(drill)


_register_domain_commands()


def main() -> None:
    try:
        cli(standalone_mode=True)
    except EcowatchError as exc:
        click.echo(f"ecowatch: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
