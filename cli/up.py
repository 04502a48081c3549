"""`ecowatch up`: the platform's own processes, kept running on one machine."""

from __future__ import annotations

import asyncio
import os
import sys
import time

import click

from ecowatch.cli.runtime import require_secrets, stop_on_signals
from ecowatch.config.catalogue import load_catalogue
from ecowatch.config.settings import load_settings
from ecowatch.devtools.supervise import KeptProcess, keep

# Each process as an `ecowatch` command, in the order they start. They stop in the reverse
# order of their place in the flow: what takes readings in first, the worker when it has
# judged what they handed over, the console last.
PROCESSES: dict[str, list[str]] = {
    "worker": ["worker"],
    "bridge": ["bridge"],
    "hj212": ["hj212", "serve"],
    "console": ["console"],
}
STOP_ORDER = ("bridge", "hj212", "worker", "console")


@click.command("up")
@click.option(
    "--without",
    multiple=True,
    type=click.Choice(list(PROCESSES)),
    help="Leave this process out (it runs elsewhere); may be given more than once.",
)
def up(without: tuple[str, ...]) -> None:
    """Run the worker, the MQTT bridge, the HJ 212 server and the console, and keep them
    running until stopped (Ctrl-C or SIGTERM): whichever exits is started again after a wait
    that grows with quick failures (1 s, 2 s, … 30 s), with one line each time. A stage that
    stands still exits on purpose (code 75) and is started again the same way.

    Needs the services (`ecowatch stack up`, or ECOWATCH_* pointing at running ones). Each
    process logs to <state>/up/<name>.log.
    """
    settings = load_settings()
    load_catalogue(settings.catalogue_folder())  # said once here, not by each kept process
    require_secrets(settings)
    folder = settings.state_dir / "up"

    def say(line: str) -> None:
        click.echo(f"{time.strftime('%H:%M:%S')}  {line}")

    kept = [
        KeptProcess(
            name,
            [sys.executable, "-m", "ecowatch.cli", *argv],
            folder / f"{name}.log",
            {**os.environ},
            say,
            time.monotonic,
        )
        for name, argv in PROCESSES.items()
        if name not in without
    ]
    for process in kept:
        child = process.start()
        say(f"{process.name} started (pid {child.pid}, log {process.log_path})")

    async def main() -> None:
        stop = asyncio.Event()
        stop_on_signals(stop)
        await keep(kept, stop)

    try:
        asyncio.run(main())
    finally:
        say("stopping: " + ", then ".join(p for p in STOP_ORDER if p not in without))
        by_name = {p.name: p for p in kept}
        for name in STOP_ORDER:
            if name in by_name:
                by_name[name].stop()
        restarts = {p.name: p.restarts for p in kept if p.restarts}
        say(f"stopped; restarts: {restarts or 'none'}")
