"""The ``ecowatch`` command. Thin: parse options, build the parts, run them.

One module per command group; what they share (settings, signals, the bridge and the worker
as the commands run them, the case API) is in ``runtime``, which imports no command.
"""

from __future__ import annotations

import logging
import sys

import click

from ecowatch.errors import EcowatchError, StageStalled
from ecowatch.stall import STALLED_EXIT_CODE


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


def _register_commands() -> None:
    """Every command group: each lives in this package, and calls into the layers below."""
    from ecowatch.cli.aqi import aqi
    from ecowatch.cli.bench import bench
    from ecowatch.cli.cases import cases, report, tokens
    from ecowatch.cli.demo import demo
    from ecowatch.cli.drill import drill
    from ecowatch.cli.fleet import simulate
    from ecowatch.cli.hj212 import hj212
    from ecowatch.cli.ops import console, dead_letters, replay
    from ecowatch.cli.parts import bridge, hj212_serve, kafka_setup, worker
    from ecowatch.cli.stack import stack
    from ecowatch.cli.up import up

    hj212.add_command(hj212_serve)
    for command in (
        stack,
        up,
        bridge,
        worker,
        kafka_setup,
        simulate,
        demo,
        replay,
        cases,
        report,
        tokens,
        dead_letters,
        console,
        hj212,
        aqi,
        bench,
        drill,
    ):
        cli.add_command(command)


_register_commands()


def main() -> None:
    try:
        cli(standalone_mode=True)
    except StageStalled as exc:
        click.echo(f"ecowatch: {exc}", err=True)
        sys.exit(STALLED_EXIT_CODE)
    except EcowatchError as exc:
        click.echo(f"ecowatch: {exc}", err=True)
        sys.exit(2)


__all__ = ["cli", "main"]
