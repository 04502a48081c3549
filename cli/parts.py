"""The running parts: `bridge`, `worker`, `kafka-setup` and `hj212 serve`."""

from __future__ import annotations

import asyncio
import json
import logging

import click

from ecowatch import topics
from ecowatch.cli.runtime import (
    fold_kafka_outages,
    require_secrets,
    run_bridge,
    settings_and_catalogue,
    stop_on_signals,
    tune_gc,
)
from ecowatch.config.kafka_accounts import Role, access_for
from ecowatch.config.settings import load_settings
from ecowatch.errors import ConfigError, StageStalled
from ecowatch.ingest.mqtt.bridge import BridgeStats

log = logging.getLogger("ecowatch")


@click.command()
def bridge() -> None:
    """Run the MQTT → Kafka bridge until stopped (Ctrl-C or SIGTERM).

    Logs its counts every 10 seconds, and prints them as one JSON line when it stops.
    """
    settings, catalogue = settings_and_catalogue()
    require_secrets(settings)
    fold_kafka_outages(settings)
    tune_gc()
    holder: dict[str, BridgeStats] = {}

    async def main() -> None:
        stop = asyncio.Event()
        stop_on_signals(stop)

        async def report() -> None:
            while not stop.is_set():
                await asyncio.sleep(10)
                if "stats" in holder:
                    log.info("bridge: %s", holder["stats"].as_dict())

        reporter = asyncio.create_task(report())
        try:
            await run_bridge(settings, catalogue, stop, on_stats=lambda s: holder.update(stats=s))
        finally:
            reporter.cancel()

    asyncio.run(main())
    if "stats" in holder:
        click.echo(json.dumps(holder["stats"].as_dict()))


@click.command("kafka-setup")
def kafka_setup() -> None:
    """Create the platform's Kafka topics and grant its principals their ACLs, signed in as
    Kafka's admin (ECOWATCH_KAFKA_USERNAME/PASSWORD): what `ecowatch stack up` does for the
    local stack, for a Kafka of your own (docker-compose runs it once)."""
    from ecowatch.config.kafka_accounts import set_up

    settings = load_settings()
    kafka = access_for(settings, Role.ADMIN)
    asyncio.run(set_up(kafka, settings.kafka_partitions, settings.app_id))
    click.echo(f"kafka-setup: topics and ACLs in place at {kafka.who}")


@click.command()
def worker() -> None:
    """Run the Faust stream worker (store readings in InfluxDB) until stopped."""
    import faust

    from ecowatch.edges.kafka import ensure_topics
    from ecowatch.streams.worker.app import create_app

    settings = load_settings()
    settings.catalogue_folder()  # a missing catalogue is said before anything else
    if not settings.influx_token.get_secret_value():
        require_secrets(settings)
    app = create_app(settings, settings.clock())
    changelogs = tuple(table.changelog_topic.get_topic_name() for table in app.tables.values())
    kafka = access_for(settings, Role.WORKER)
    asyncio.run(ensure_topics(kafka, settings.kafka_partitions, compacted=changelogs))

    class Worker(faust.Worker):
        def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
            super().on_setup_root_logger(logger, level)
            fold_kafka_outages(settings)  # Faust replaces the handlers: fold on its own

    tune_gc()
    Worker(app, loglevel="info", redirect_stdouts=False).execute_from_commandline()


@click.command("serve")
def hj212_serve() -> None:
    """Run the HJ 212 TCP server for real monitors until stopped (Ctrl-C or SIGTERM).

    Listens on ECOWATCH_HJ212_HOST:ECOWATCH_HJ212_PORT; prints its counts as JSON when stopped.
    """
    from ecowatch.cli.health import serve_health, watch_stall
    from ecowatch.edges.kafka import ensure_topics, start_producer
    from ecowatch.ingest.hj212.server import Hj212Server
    from ecowatch.stall import StallWatch

    settings, catalogue = settings_and_catalogue()
    fold_kafka_outages(settings)
    tune_gc()
    holder: dict[str, Hj212Server] = {}

    async def main() -> None:
        stop = asyncio.Event()
        stop_on_signals(stop)
        kafka = access_for(settings, Role.INGEST)
        await ensure_topics(kafka, settings.kafka_partitions, topics.INGEST_TOPICS)
        producer = await start_producer(kafka, "ecowatch-hj212")
        stall = StallWatch("HJ 212 server", settings.stall_seconds)
        try:
            server = Hj212Server.from_settings(
                settings, producer=producer, catalogue=catalogue, clock=settings.clock()
            )
            holder["server"] = server
            try:
                listening = await server.serve(settings.hj212_host, settings.hj212_port)
            except OSError as exc:
                raise ConfigError(
                    f"ECOWATCH_HJ212_PORT: cannot listen on "
                    f"{settings.hj212_host}:{settings.hj212_port} ({exc.strerror})"
                ) from None
            health = await serve_health(
                settings.health_host,
                settings.hj212_health_port,
                lambda: {
                    "stage": "hj212",
                    **server.stats.as_dict(),
                    "producer": producer.stats.as_dict(),
                    **stall.as_dict(),
                },
                "HJ 212 server",
            )
            watcher = asyncio.create_task(watch_stall(stall, server.progress, server.why_stalled))
            stopping = asyncio.create_task(stop.wait())
            try:
                async with listening:
                    await asyncio.wait({stopping, watcher}, return_when=asyncio.FIRST_COMPLETED)
                    if watcher.done():  # an unanswered upload is resent by its device
                        raise StageStalled(
                            f"the HJ 212 server stood still for {2 * settings.stall_seconds:.0f}"
                            f" s ({stall.why}); exiting for its supervisor to start it again"
                        )
            finally:
                watcher.cancel()
                stopping.cancel()
                if health is not None:
                    await health.cleanup()
        finally:
            await producer.stop(timeout=2.0 if stall.gave_up() else 15.0)

    asyncio.run(main())
    if "server" in holder:
        click.echo(json.dumps(holder["server"].stats.as_dict()))
