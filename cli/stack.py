"""`ecowatch stack`: the local services."""

from __future__ import annotations

import os
import sys

import click

from ecowatch.cli.runtime import demo_city_unless_set, settings_and_catalogue
from ecowatch.config.settings import DEMO_CATALOGUE


@click.group()
def stack() -> None:
    """The local Mosquitto, Kafka and InfluxDB, installed and run without Docker."""


def _stack(starts: bool = False):
    """``starts``: the command writes the devices' MQTT accounts and ACL from the catalogue."""
    from ecowatch.devtools.stack.services import Stack

    if starts:
        demo_city_unless_set()
    else:  # installing, stopping, a status or a log reads no device
        os.environ.setdefault("ECOWATCH_CATALOGUE", str(DEMO_CATALOGUE))
    settings, catalogue = settings_and_catalogue()
    return Stack(settings, catalogue)


@stack.command("install")
def stack_install() -> None:
    """Install every service (slow the first time; cached after)."""
    from ecowatch.devtools.stack.process import Progress

    _stack().install(Progress(click.echo))
    click.echo("installed")


@stack.command("up")
def stack_up() -> None:
    """Install what is missing, start what is down, wait until each is healthy."""
    from ecowatch.devtools.stack.process import Progress

    s = _stack(starts=True)
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
