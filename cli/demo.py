"""`ecowatch demo`: the whole pipeline with a simulated city, its people and its console."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import click
from pydantic import ValidationError

from ecowatch import topics
from ecowatch.alerts.wording import case_event_text
from ecowatch.cli.fleet import echo_happenings, fleet_options, fleet_plan
from ecowatch.cli.runtime import (
    api_as,
    bridge_failure,
    demo_city_unless_set,
    fold_kafka_outages,
    influx_points,
    run_bridge,
    say_failed_stage,
    settings_and_catalogue,
    start_worker,
    wait_until_ready,
    worker_counts,
)
from ecowatch.clock import CHINA, SystemClock
from ecowatch.config.catalogue import Catalogue
from ecowatch.config.kafka_accounts import Role, access_for
from ecowatch.config.settings import Settings, load_settings
from ecowatch.devtools.desk import OfficerDesk, people_tokens
from ecowatch.devtools.inbox import Inbox, inbox_env
from ecowatch.devtools.watch import FlowWatch, StageFailed, Supervisor
from ecowatch.errors import EcowatchError
from ecowatch.ingest.mqtt.bridge import BridgeStats
from ecowatch.schema import CaseEvent

SHOWN_CASE_EVENTS = {"reminded", "escalated", "renotified", "raised", "acknowledged", "closed"}


async def _follow_cases(settings: Settings, stop: asyncio.Event) -> None:
    """Print the cases' turns as the worker takes them (ecowatch.cases, from now on)."""
    from ecowatch.edges.kafka import start_consumer

    kafka = access_for(settings, Role.OPS)
    consumer = await start_consumer(kafka, topics.CASES, auto_offset_reset="latest")
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    try:
                        event = CaseEvent.model_validate_json(record.value)
                    except ValidationError:  # the worker's topic; nothing to show the operator
                        continue
                    if event.kind in SHOWN_CASE_EVENTS:
                        said = case_event_text(event)[:60]
                        click.echo(f"  case {event.kind:<12} {event.case_id}  {said}")
    finally:
        await consumer.stop()


class Stopping:
    """Ctrl-C and SIGTERM as the demo takes them. The first stops the monitors, then the
    bridge once it has taken what they sent; the worker, in a session of its own (the
    terminal's Ctrl-C does not reach it), judges what the bridge handed to Kafka, the week's
    settlement is asked of it and printed, and only then is it stopped. A signal while the
    demo is already stopping (the second Ctrl-C, or the first after --duration ran out)
    stops everything at once: ``task`` is cancelled and the weekly table is left out."""

    FIRST = (
        "stopping: devices and bridge first, then the weekly table; Ctrl-C again to stop at once"
    )
    AT_ONCE = "stopping at once"

    def __init__(self, stop: asyncio.Event, say: Callable[[str], None] = click.echo) -> None:
        self.stop, self.say = stop, say
        self.task: asyncio.Task | None = None
        self.at_once = False

    def __call__(self) -> None:
        if not self.stop.is_set():
            self.say(self.FIRST)
            self.stop.set()
        elif not self.at_once:
            self.say(self.AT_ONCE)
            self.at_once = True
            if self.task is not None:
                self.task.cancel()

    def install(self) -> None:
        """On the running loop, for the task that calls it (the demo's main)."""
        self.task = asyncio.current_task()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self)


# How long the worker may take, at most, to judge what was bridged before the weekly table;
# and how long its counts may stand still before it is taken as done (a reading it already
# had, a flaky link's resend, is not judged again).
DRAIN_SECONDS = 30.0
DRAIN_QUIET_SECONDS = 3.0


@dataclass
class Drain:
    """Whether the worker has judged what the bridge handed to Kafka, from its /health
    counts sampled over time. Done when its judged count (from ``judged_before``, its count
    when the monitors started) has reached ``bridged`` and stood still since the last look;
    or when its counts have stood still for ``quiet`` seconds; or after ``limit`` seconds at
    most. Pure: the caller gives the time. ``observe`` gives the line to say once done."""

    bridged: int
    judged_before: int
    started: float
    quiet: float = DRAIN_QUIET_SECONDS
    limit: float = DRAIN_SECONDS
    _last: tuple[int, int] | None = field(default=None, init=False)
    _still_since: float = field(init=False)

    def __post_init__(self) -> None:
        self._still_since = self.started

    def observe(self, now: float, counts: dict | None) -> str | None:
        moved = False  # a worker that does not answer does not move
        if counts is not None:
            seen = (int(counts.get("judged_readings", 0)), int(counts.get("stored_readings", 0)))
            moved = seen != self._last
            if moved:
                self._last, self._still_since = seen, now
        judged = max(self._last[0] - self.judged_before, 0) if self._last else 0
        still = now - self._still_since
        if self._last is not None and not moved and judged >= self.bridged:
            took = now - self.started
            return f"worker: judged the {self.bridged} readings bridged ({took:.1f} s)"
        of = f"{judged} of the {self.bridged} readings bridged"
        if still >= self.quiet:
            return f"worker: judged {of}; its counts stood still for {still:.0f} s"
        if now - self.started >= self.limit:
            return f"worker: judged {of} within {self.limit:.0f} s; the table may miss the rest"
        return None


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


async def _drain(settings: Settings, bridged: int, judged_before: int) -> None:
    """Wait (at most DRAIN_SECONDS) until the worker has judged what the bridge bridged: the
    weekly table is then the week the demo played."""
    click.echo(f"waiting for the worker to judge what was bridged (at most {DRAIN_SECONDS:g} s)")
    drain = Drain(bridged, judged_before, time.monotonic())
    while True:
        counts = await asyncio.to_thread(worker_counts, settings)
        said = drain.observe(time.monotonic(), counts)
        if said is not None:
            click.echo(said)
            return
        await asyncio.sleep(0.5)


def _echo_weekly(settings: Settings, tokens: dict[str, str], sim_now: datetime) -> None:
    """The week's settlement per grid, as the operators' API gives it, for the demo's end."""
    operator = next((t for t, who in tokens.items() if who.startswith("operator:")), None)
    if operator is None:
        click.echo("weekly report: no operator token in ECOWATCH_OFFICER_TOKENS")
        return
    day = sim_now.astimezone(CHINA).date()
    monday = day - timedelta(days=day.weekday())
    try:
        report = api_as(settings, operator, "GET", f"/api/reports/weekly?week={monday}")
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


@click.command()
@fleet_options(
    {
        "outfalls": 6,
        "air_stations": 2,
        "meters": 2,
        "stacks": 3,
        "interval": 60.0,
        "speed": 30.0,
        "scenario": "demo-city",
        "garble_every": 10,
    }
)
def demo(**options: object) -> None:
    """Start the stack, a worker, the bridge (and the HJ 212 server) and a simulated city
    playing a scenario; show live counts from every stage."""
    from ecowatch.devtools.stack.process import Progress
    from ecowatch.devtools.stack.services import Stack
    from ecowatch.edges.kafka import start_producer
    from ecowatch.ingest.hj212.server import Hj212Server
    from ecowatch.simulators.city import build_fleet

    demo_city_unless_set()
    settings, catalogue = settings_and_catalogue()
    plan = fleet_plan(**options)
    Stack(settings, catalogue).up(Progress(click.echo))
    settings = load_settings()  # now with the secrets the stack generated
    fold_kafka_outages(settings)  # the in-process bridge and relay are Kafka clients
    fleet = build_fleet(settings, catalogue, plan)
    tokens, worker_env = people_tokens(settings, catalogue)
    desk = OfficerDesk(settings, tokens)
    inbox = Inbox(desk.on_message).__enter__()
    worker_env |= inbox_env(catalogue, inbox.port, os.environ)
    worker = start_worker(settings, worker_env)
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

    # Stops the monitors; the bridge then takes what they sent and stops; the worker judges
    # what is in Kafka; the weekly table; the worker stops (see Stopping).
    stopping = Stopping(asyncio.Event())

    async def main() -> None:
        stop = stopping.stop
        stopping.install()
        bridge_stop = asyncio.Event()
        cases_stop = asyncio.Event()
        holder: dict[str, BridgeStats] = {}
        connected = asyncio.Event()

        def on_stats(stats: BridgeStats) -> None:
            holder["stats"] = stats
            connected.set()

        bridge_task = asyncio.create_task(run_bridge(settings, catalogue, bridge_stop, on_stats))
        console_task = asyncio.create_task(_demo_console(settings, catalogue, tokens, stop))
        tasks: list[asyncio.Task] = [bridge_task, console_task]
        try:
            # Monitors start once the bridge is subscribed and the worker ready: from then on
            # nothing is missed, and a stage that does not move is a fault, not a slow start.
            await asyncio.wait(
                {bridge_task, asyncio.create_task(connected.wait())},
                return_when=asyncio.FIRST_COMPLETED,
            )
            bridge_failure(bridge_task)
            took = await wait_until_ready(settings, timeout=120)
            click.echo(f"worker ready in {took:.1f} s (tables recovered, partitions assigned)")
            judged_before = ((await asyncio.to_thread(worker_counts, settings)) or {}).get(
                "judged_readings", 0
            )
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
            cases_task = asyncio.create_task(_follow_cases(settings, cases_stop))
            tasks += [fleet_task, cases_task]
            b = holder["stats"]

            def passed_on() -> tuple[int, int]:
                """Readings bridged to Kafka, and messages dead-lettered, by MQTT and TCP."""
                tcp = hj212_server.stats if hj212_server else None
                return (
                    b.bridged + (tcp.bridged if tcp else 0),
                    b.letters.total + (tcp.letters.total if tcp else 0),
                )

            click.echo(
                "time      simulated     acknowledged  bridged  dead-lettered  stored  points"
                "  commands"
            )
            while not (fleet_task.done() and bridge_task.done()):
                with contextlib.suppress(TimeoutError):
                    # While the monitors run, wake when they stop; then, when the bridge does.
                    waiting_for = bridge_task if fleet_task.done() else fleet_task
                    await asyncio.wait_for(asyncio.shield(waiting_for), timeout=2.0)
                echo_happenings(fleet)
                bridge_failure(bridge_task)
                if fleet_task.done() and not bridge_stop.is_set():
                    fleet_task.result()
                    # Let the bridge take what the monitors sent last, then stop it.
                    for _ in range(50):
                        if sum(passed_on()) >= fleet.stats.published:
                            break
                        await asyncio.sleep(0.1)
                    bridge_stop.set()
                bridged, dead = passed_on()
                await asyncio.to_thread(desk.work)
                points = await asyncio.to_thread(influx_points, settings, since)
                health = await asyncio.to_thread(worker_counts, settings)
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
            if hj212_server is not None:
                listening.close()
                await listening.wait_closed()  # its connections and queued dead letters
                await producer.stop()
            # Devices and bridge stopped: the worker (never sent the terminal's Ctrl-C)
            # judges what they handed to Kafka, for the weekly table; the cases it turns on
            # the way still print.
            await _drain(settings, passed_on()[0], judged_before)
            cases_stop.set()
            await cases_task
        finally:
            # Stopped early (a failed stage, a second Ctrl-C): the monitors and the bridge
            # stop too.
            stop.set()
            bridge_stop.set()
            cases_stop.set()
            await asyncio.wait(tasks, timeout=2 if stopping.at_once else 15)

    try:
        asyncio.run(supervisor.run(main()))
        # From here a signal stops at once, SIGTERM as Ctrl-C does (the loop took both).
        signal.signal(signal.SIGTERM, _interrupt)
        _echo_weekly(settings, tokens, fleet.clock.now())
    except StageFailed as failed:
        say_failed_stage(failed)
        raise SystemExit(1) from None
    except asyncio.CancelledError:
        if not stopping.at_once:  # the second signal cancelled main; nothing else does
            raise
    except KeyboardInterrupt:  # a signal once the loop had ended (the weekly table)
        if not stopping.at_once:
            click.echo(Stopping.AT_ONCE)
            stopping.at_once = True
    finally:
        inbox.__exit__(None, None, None)
        worker.stop()
    click.echo("demo stopped; the stack keeps running (`ecowatch stack down` stops it)")
    if stopping.at_once:
        raise SystemExit(130)  # as a program that Ctrl-C stopped


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
