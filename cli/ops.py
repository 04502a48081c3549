"""Operators' tools: `replay`, `dead-letters`, `console`."""

from __future__ import annotations

import asyncio
import json
import sys

import click

from ecowatch import topics
from ecowatch.cli.runtime import fold_kafka_outages, settings_and_catalogue, stop_on_signals
from ecowatch.config.kafka_accounts import Role, access_for
from ecowatch.config.settings import load_settings


@click.command()
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
    from ecowatch.streams.judging.replay import Replay

    settings, catalogue = settings_and_catalogue()
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


@click.command("dead-letters")
@click.option("--limit", default=20, show_default=True)
def dead_letters(limit: int) -> None:
    """Print dead letters (reason, origin, detail, payload), oldest first, as JSON lines."""
    from ecowatch.edges.kafka import read_topic

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


@click.command("console")
def console() -> None:
    """The operators' console: the wall, the desk and the phone, live, in a browser.

    Listens on ECOWATCH_CONSOLE_HOST:ECOWATCH_CONSOLE_PORT and prints its address; reads Kafka
    as the ops principal and passes case requests to the worker's API with the caller's token.
    """
    from ecowatch.console.run import serve

    settings, catalogue = settings_and_catalogue()
    fold_kafka_outages(settings)

    async def main() -> None:
        stop = asyncio.Event()
        stop_on_signals(stop)
        await serve(settings, catalogue, stop, lambda url: click.echo(f"console: {url}"))

    asyncio.run(main())
