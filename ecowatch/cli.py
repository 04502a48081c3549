"""The ``ecowatch`` command. Thin: parse options, build the parts, run them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime

import click

from ecowatch import topics
from ecowatch.clock import SystemClock
from ecowatch.config.catalogue import Catalogue, DeviceModel, load_catalogue
from ecowatch.config.settings import Settings, load_device_credentials, load_settings
from ecowatch.errors import ConfigError, EcowatchError
from ecowatch.ingest.bridge import BridgeStats

log = logging.getLogger("ecowatch")


def _settings_and_catalogue() -> tuple[Settings, Catalogue]:
    settings = load_settings()
    return settings, load_catalogue(settings.catalogue)


def _require_secrets(settings: Settings) -> None:
    missing = [
        name
        for name, value in (
            ("ECOWATCH_INFLUX_TOKEN", settings.influx_token),
            ("ECOWATCH_MQTT_PASSWORD", settings.mqtt_password),
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
    from ecowatch.kafka import ensure_topics, start_producer

    await ensure_topics(settings.kafka_bootstrap, settings.kafka_partitions)
    producer = await start_producer(settings.kafka_bootstrap, "ecowatch-bridge")
    try:
        bridge = MqttBridge(
            mqtt_host=settings.mqtt_host,
            mqtt_port=settings.mqtt_port,
            username=settings.mqtt_username,
            password=settings.mqtt_password,
            share_group=settings.mqtt_share_group,
            producer=producer,
            catalogue=catalogue,
            clock=SystemClock(),
            client_id=settings.bridge_client_id,
        )
        await bridge.connect()
        if on_stats:
            on_stats(bridge.stats)
        await bridge.run(stop)
    finally:
        await producer.stop()


@cli.command()
def bridge() -> None:
    """Run the MQTT → Kafka bridge until stopped (Ctrl-C or SIGTERM).

    Logs its counts every 10 seconds, and prints them as one JSON line when it stops.
    """
    settings, catalogue = _settings_and_catalogue()
    _require_secrets(settings)
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


@cli.command()
def worker() -> None:
    """Run the Faust stream worker (store readings in InfluxDB) until stopped."""
    import faust

    from ecowatch.kafka import ensure_topics
    from ecowatch.streams.app import create_app

    settings = load_settings()
    if not settings.influx_token:
        _require_secrets(settings)
    asyncio.run(ensure_topics(settings.kafka_bootstrap, settings.kafka_partitions))
    app = create_app(settings)
    faust.Worker(app, loglevel="info", redirect_stdouts=False).execute_from_commandline()


def _build_fleet(
    settings: Settings,
    catalogue: Catalogue,
    outfalls: int,
    interval: float,
    garble_every: int,
    seed: int,
):
    from ecowatch.simulators.fleet import Fleet, FleetStats, SimulatedMonitor
    from ecowatch.simulators.models import OutfallMonitor

    credentials = load_device_credentials(settings.device_credentials_file)
    entries = [
        e for e in catalogue.devices.values() if e.device.model is DeviceModel.OUTFALL_MONITOR
    ]
    if outfalls > len(entries):
        raise ConfigError(
            f"{settings.catalogue}: asked for {outfalls} outfall monitors, "
            f"the catalogue has {len(entries)}"
        )
    missing = [e.device.id for e in entries[:outfalls] if e.device.id not in credentials]
    if missing:
        raise ConfigError(
            f"{settings.device_credentials_file}: no password for device(s) {', '.join(missing)}"
        )
    stats = FleetStats()
    monitors = [
        SimulatedMonitor(
            OutfallMonitor(device=e.device.id, seed=seed + i),
            e.site.id,
            credentials[e.device.id],
            settings.mqtt_host,
            settings.mqtt_port,
            stats,
            garble_every=garble_every if i == 0 else 0,  # one monitor on a flaky link
        )
        for i, e in enumerate(entries[:outfalls])
    ]
    return Fleet(monitors, SystemClock(), interval), stats


@cli.command()
@click.option("--outfalls", default=3, show_default=True, help="How many outfall monitors.")
@click.option("--interval", default=2.0, show_default=True, help="Seconds between readings.")
@click.option("--duration", default=0.0, help="Stop after this many seconds (0: until Ctrl-C).")
@click.option("--garble-every", default=0, help="Break every Nth message of the first monitor.")
@click.option("--seed", default=1, show_default=True)
def simulate(outfalls: int, interval: float, duration: float, garble_every: int, seed: int) -> None:
    """Run simulated monitors that publish readings over MQTT."""
    settings, catalogue = _settings_and_catalogue()
    fleet, stats = _build_fleet(settings, catalogue, outfalls, interval, garble_every, seed)

    async def main() -> None:
        stop = asyncio.Event()
        _stop_on_signals(stop)
        if duration:
            asyncio.get_running_loop().call_later(duration, stop.set)
        await fleet.run(stop)

    asyncio.run(main())
    click.echo(f"published {stats.published} readings ({stats.garbled} garbled on purpose)")


# -- demo --------------------------------------------------------------------------------------


def _influx_points(settings: Settings, since: datetime) -> int | None:
    from influxdb_client import InfluxDBClient

    flux = (
        f'from(bucket: "{settings.influx_bucket}") |> range(start: {since.isoformat()}) '
        '|> filter(fn: (r) => r._measurement == "reading" and r._field == "value") '
        "|> group() |> count()"
    )
    try:
        with InfluxDBClient(
            url=settings.influx_url,
            token=settings.influx_token,
            org=settings.influx_org,
            timeout=5000,
        ) as c:
            tables = c.query_api().query(flux)
        return sum(int(rec.get_value()) for t in tables for rec in t.records)
    except Exception:  # the counter line says '?' rather than stop the demo
        return None


def _worker_counts(settings: Settings) -> dict:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{settings.web_port}/health", timeout=1) as r:
            return json.loads(r.read())
    except (OSError, ValueError):
        return {}


def _start_worker(settings: Settings) -> subprocess.Popen:
    log_path = settings.state_dir / "worker.log"
    out = open(log_path, "ab")  # noqa: SIM115 - handed to the child for its lifetime
    return subprocess.Popen(
        [sys.executable, "-m", "ecowatch.cli", "worker"],
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )


@cli.command()
@click.option("--outfalls", default=4, show_default=True)
@click.option("--interval", default=2.0, show_default=True, help="Seconds between readings.")
@click.option("--duration", default=0.0, help="Stop after this many seconds (0: until Ctrl-C).")
@click.option(
    "--garble-every",
    default=10,
    show_default=True,
    help="One monitor is on a flaky link: every Nth of its messages arrives broken.",
)
def demo(outfalls: int, interval: float, duration: float, garble_every: int) -> None:
    """Start the stack, a worker, the bridge and simulated monitors; show live counts."""
    from ecowatch.stack.process import Progress
    from ecowatch.stack.services import Stack

    settings, catalogue = _settings_and_catalogue()
    Stack(settings, catalogue).up(Progress(click.echo))
    settings = load_settings()  # now with the secrets the stack generated
    fleet, fleet_stats = _build_fleet(settings, catalogue, outfalls, interval, garble_every, seed=1)
    worker_proc = _start_worker(settings)
    click.echo(f"worker started (pid {worker_proc.pid}, log {settings.state_dir / 'worker.log'})")
    since = datetime.now(UTC)

    async def main() -> None:
        stop = asyncio.Event()  # stops the monitors; the bridge then drains and stops
        _stop_on_signals(stop)
        if duration:
            asyncio.get_running_loop().call_later(duration, stop.set)
        bridge_stop = asyncio.Event()
        holder: dict[str, BridgeStats] = {}
        connected = asyncio.Event()

        def on_stats(stats: BridgeStats) -> None:
            holder["stats"] = stats
            connected.set()

        bridge_task = asyncio.create_task(_run_bridge(settings, catalogue, bridge_stop, on_stats))
        # Monitors start once the bridge is subscribed: from then on nothing is missed.
        await asyncio.wait(
            {bridge_task, asyncio.create_task(connected.wait())},
            return_when=asyncio.FIRST_COMPLETED,
        )
        if bridge_task.done():
            bridge_task.result()  # raises the reason it could not start
        fleet_task = asyncio.create_task(fleet.run(stop))
        b = holder["stats"]
        click.echo(
            "time      published  bridged  dead-lettered  stored(readings)  in InfluxDB(points)"
        )
        while not (fleet_task.done() and bridge_task.done()):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(fleet_task), timeout=2.0)
            if fleet_task.done() and not bridge_stop.is_set():
                fleet_task.result()
                # Let the bridge take what the monitors sent last, then stop it.
                for _ in range(50):
                    if b.bridged + b.dead_lettered_total >= fleet_stats.published:
                        break
                    await asyncio.sleep(0.1)
                bridge_stop.set()
            points = await asyncio.to_thread(_influx_points, settings, since)
            stored = (await asyncio.to_thread(_worker_counts, settings)).get("stored_readings", 0)
            click.echo(
                f"{time.strftime('%H:%M:%S')}  {fleet_stats.published:>9}  {b.bridged:>7}  "
                f"{b.dead_lettered_total:>13}  {stored:>16}  "
                f"{points if points is not None else '?':>19}"
            )
            if bridge_task.done():
                bridge_task.result()

    try:
        asyncio.run(main())
    finally:
        worker_proc.send_signal(signal.SIGTERM)
        try:
            worker_proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker_proc.kill()
    click.echo("demo stopped; the stack keeps running (`ecowatch stack down` stops it)")


# -- operators' tools --------------------------------------------------------------------------


@cli.command("dead-letters")
@click.option("--limit", default=20, show_default=True)
def dead_letters(limit: int) -> None:
    """Print dead letters (reason, origin, detail, payload), oldest first, as JSON lines."""
    from ecowatch.kafka import read_topic

    settings = load_settings()

    async def main() -> None:
        n = 0
        async for _, value in read_topic(settings.kafka_bootstrap, topics.READINGS_DLQ):
            click.echo(value.decode())
            n += 1
            if n >= limit:
                return

    asyncio.run(main())


@click.command("serve")
def hj212_serve() -> None:
    """Run the HJ 212 TCP server for real monitors until stopped (Ctrl-C or SIGTERM).

    Listens on ECOWATCH_HJ212_HOST:ECOWATCH_HJ212_PORT; prints its counts as JSON when stopped.
    """
    from ecowatch.ingest.hj212_server import Hj212Server
    from ecowatch.kafka import ensure_topics, start_producer

    settings, catalogue = _settings_and_catalogue()
    holder: dict[str, Hj212Server] = {}

    async def main() -> None:
        stop = asyncio.Event()
        _stop_on_signals(stop)
        await ensure_topics(settings.kafka_bootstrap, settings.kafka_partitions)
        producer = await start_producer(settings.kafka_bootstrap, "ecowatch-hj212")
        try:
            server = Hj212Server(producer=producer, catalogue=catalogue, clock=SystemClock())
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
    from ecowatch.ingest.hj212_cli import hj212
    from ecowatch.streams.aqi_cli import aqi

    hj212.add_command(hj212_serve)
    cli.add_command(hj212)
    cli.add_command(aqi)


_register_domain_commands()


def main() -> None:
    try:
        cli(standalone_mode=True)
    except EcowatchError as exc:
        click.echo(f"ecowatch: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
