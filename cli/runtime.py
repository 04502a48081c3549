"""What the commands share: settings and catalogue, signals, the bridge and the worker as
the commands run them, the worker's health, the case API. Imports no command, so any
command module (the bench, the demo) can use it without an import cycle."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import signal
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime

import click

from ecowatch import topics
from ecowatch.config.catalogue import Catalogue, load_catalogue
from ecowatch.config.kafka_accounts import Role, access_for
from ecowatch.config.settings import DEMO_CATALOGUE, Settings, load_settings
from ecowatch.devtools.watch import ChildProcess, StageFailed, StageFailure, ecowatch_argv
from ecowatch.errors import ConfigError, EcowatchError, StageStalled
from ecowatch.stall import StallWatch
from ecowatch.streams.api.client import api_as
from ecowatch.topics import BridgeSlice

log = logging.getLogger("ecowatch")


def demo_city_unless_set() -> None:
    """For the dev tools (the demo, the drill, the bench, the simulators, the local stack):
    the demo city when ECOWATCH_CATALOGUE names none, said in one line. Set in the
    environment, so that the processes they start judge the same city."""
    if not os.environ.get("ECOWATCH_CATALOGUE"):
        os.environ["ECOWATCH_CATALOGUE"] = str(DEMO_CATALOGUE)
        click.echo(f"catalogue: the demo city ({DEMO_CATALOGUE}); ECOWATCH_CATALOGUE names yours")


def settings_and_catalogue() -> tuple[Settings, Catalogue]:
    settings = load_settings()
    return settings, load_catalogue(settings.catalogue_folder())


def require_secrets(settings: Settings) -> None:
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


# Young objects per collection. The default (700) collects in the middle of every batch, so a
# batch's readings outlive two collections, are promoted, and make the full collections that
# scan the whole heap come often: 12 of them took 1.6 s of the worker's 14 s in a bench run.
GC_YOUNG_THRESHOLD = 10_000


def tune_gc() -> None:
    """For a long-running process, once its modules are loaded: what exists now (modules,
    the catalogue, Faust) is never collected, so no collection scans it again, and a batch's
    objects die young instead of being promoted."""
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


def stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


async def run_bridge(
    settings: Settings, catalogue: Catalogue, stop: asyncio.Event, on_stats=None
) -> None:
    """The bridge and its command relay until ``stop``; raises :class:`StageStalled` if it
    stood still for too long to recover by itself (its supervisor starts it again)."""
    from ecowatch.cli.health import serve_health, watch_stall
    from ecowatch.edges.kafka import ensure_topics, start_producer
    from ecowatch.ingest.mqtt.bridge import MqttBridge
    from ecowatch.ingest.mqtt.commands import CommandRelay

    kafka = access_for(settings, Role.INGEST)
    await ensure_topics(kafka, settings.kafka_partitions, topics.INGEST_TOPICS)
    producer = await start_producer(kafka, "ecowatch-bridge")
    health = None
    stalled = False
    try:
        bridge = MqttBridge(
            mqtt_host=settings.mqtt_host,
            mqtt_port=settings.mqtt_port,
            username=settings.mqtt_username,
            password=settings.mqtt_password.get_secret_value(),
            producer=producer,
            catalogue=catalogue,
            clock=settings.clock(),
            bridge_slice=BridgeSlice.parse(settings.bridge_slice),
        )
        await bridge.connect()
        if on_stats:
            on_stats(bridge.stats)
        stall = StallWatch("bridge", settings.stall_seconds)
        health = await serve_health(
            settings.health_host,
            settings.bridge_health_port,
            lambda: {
                "stage": "bridge",
                **bridge.stats.as_dict(),
                "producer": producer.stats.as_dict(),
                **stall.as_dict(),
            },
            "bridge",
        )
        # Commands travel the other way on the same MQTT connection.
        relay = CommandRelay(
            kafka=kafka,
            client=bridge.client,
            producer=producer,
            catalogue=catalogue,
            clock=settings.clock(),
        )
        relay_task = asyncio.create_task(relay.run(stop))
        watcher = asyncio.create_task(watch_stall(stall, bridge.progress, bridge.why_stalled))
        bridging = asyncio.create_task(bridge.run(stop))
        try:
            await asyncio.wait({bridging, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if watcher.done() and not bridging.done():
                # What it holds is not acknowledged: Mosquitto gives it to the next bridge, so
                # nothing is waited for on the way out (Kafka may be what stands still).
                stalled = True
                bridging.cancel()
                relay_task.cancel()
                await asyncio.wait({bridging, relay_task}, timeout=5)
                raise StageStalled(
                    f"the bridge stood still for {2 * settings.stall_seconds:.0f} s "
                    f"({stall.why}); exiting for its supervisor to start it again"
                )
            await bridging
        finally:
            watcher.cancel()
            stop.set()
            if not stalled:
                await relay_task
    finally:
        if health is not None:
            await health.cleanup()
        await producer.stop(timeout=2.0 if stalled else 15.0)


def fold_kafka_outages(settings: Settings) -> None:
    """A Kafka outage is one line when it starts and one when it ends, not the hundreds of
    errors a second aiokafka and Faust log while it lasts. Call once logging is set up: in
    a process's first seconds, before it has reached Kafka, an outage is Kafka starting."""
    from ecowatch.edges.outage import KAFKA_STARTING_SECONDS, Outage, fold_outages, port_open

    fold_outages(
        Outage("Kafka", settings.kafka_bootstrap, starting_within=KAFKA_STARTING_SECONDS),
        lambda: port_open(settings.kafka_host, settings.kafka_port),
        libraries=("aiokafka", "faust", "mode"),
        tag="kafka",
    )


def influx_points(settings: Settings, since: datetime) -> int | None:
    from ecowatch.streams.storage.store import reading_points_per_device

    try:
        return sum(reading_points_per_device(settings, since, timeout_ms=5000).values())
    except Exception:  # the counter line says '?' rather than stop the demo
        return None


def worker_counts(settings: Settings) -> dict | None:
    """The worker's /health (its counts, and whether it is ready); None if it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{settings.web_port}/health", timeout=1) as r:
            return json.loads(r.read())
    except (OSError, ValueError):
        return None


async def wait_until_ready(settings: Settings, timeout: float) -> float:
    """Seconds until the worker says it is ready (tables recovered, partitions assigned)."""
    started = time.monotonic()
    while not ((await asyncio.to_thread(worker_counts, settings)) or {}).get("ready"):
        if time.monotonic() - started > timeout:
            raise EcowatchError(f"the worker was not ready within {timeout:.0f} s")
        await asyncio.sleep(0.2)
    return time.monotonic() - started


def start_worker(
    settings: Settings, env: dict[str, str] | None = None, name: str = "worker"
) -> ChildProcess:
    """`ecowatch worker` as a child of this command, logging to <state>/<name>.log."""
    return ChildProcess(
        name,
        ecowatch_argv("worker"),
        settings.state_dir / f"{name}.log",
        env={**os.environ, **(env or {})},
    )


def say_failed_stage(failed: StageFailed) -> None:
    """Said before the clean-up, which can take a while (a worker waiting on a hung service)."""
    click.echo(f"ecowatch: {failed}", err=True)
    click.echo("stopping what this command started", err=True)


def bridge_failure(bridge_task: asyncio.Task) -> None:
    """The in-process bridge must not end before it is told to: say why it did."""
    if not bridge_task.done() or bridge_task.cancelled():
        return
    exc = bridge_task.exception()
    if exc is not None:
        raise StageFailed(StageFailure("bridge", f"failed: {exc}")) from exc


def api(settings: Settings, method: str, path: str, body: dict | None = None) -> dict:
    """Call the worker's case API with ECOWATCH_API_TOKEN; errors are one clear line."""
    token = settings.api_token.get_secret_value()
    if not token:
        raise ConfigError("ECOWATCH_API_TOKEN is not set: an officer's or operator's API token")
    return api_as(settings, token, method, path, body)
