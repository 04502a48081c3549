"""`ecowatch simulate` and the fleet options it shares with `demo`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import click

from ecowatch.clock import CHINA

if TYPE_CHECKING:
    from ecowatch.simulators.city import FleetPlan
    from ecowatch.simulators.fleet import Fleet


from ecowatch.cli.runtime import demo_city_unless_set, settings_and_catalogue, stop_on_signals


def fleet_plan(**options: object) -> FleetPlan:
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
            "--stacks",
            default=defaults["stacks"],
            show_default=True,
            help="Stacks' flue-gas CEMS, the catalogue's first N.",
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


def echo_happenings(fleet: Fleet) -> None:
    for line in fleet.happenings:
        click.echo(f"  scenario: {line}")
    fleet.happenings.clear()


async def _run_fleet(fleet: Fleet, stop: asyncio.Event, report_every: float = 5.0) -> None:
    """Run a fleet, printing its counts and the scenario's turns as they happen."""
    task = asyncio.create_task(fleet.run(stop))
    while not task.done():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), timeout=report_every)
        echo_happenings(fleet)
        stats = fleet.stats
        sim = fleet.clock.now().astimezone(CHINA)
        click.echo(
            f"{time.strftime('%H:%M:%S')}  sim {sim:%m-%d %H:%M}"
            f"  sent {stats.sent}  acknowledged {stats.published}  silent {stats.silent}"
            f"  resent {stats.resent}  garbled {stats.garbled}"
            f"  commands {dict(stats.commands) or 0}"
        )
    task.result()


@click.command()
@fleet_options(
    {
        "outfalls": 6,
        "air_stations": 2,
        "meters": 2,
        "stacks": 3,
        "interval": 60.0,
        "speed": 1.0,
        "scenario": None,
        "garble_every": 0,
    }
)
# Only here, not in fleet_options: `demo` keeps its devices on HJ 212-2017.
@click.option(
    "--hj212-version",
    type=click.Choice(["2005", "2017", "2025", "mixed"]),
    default="2017",
    show_default=True,
    help="With --transport hj212: the protocol the monitors speak. 2005: no QN and no Flag, "
    "so no answers; 2017: Flag=5; 2025: Flag=9, and what a monitor measured while off the "
    "network is resent after it, marked RF=1. mixed: 2005, 2017 and 2025 in turn, by the "
    "device's index.",
)
@click.option(
    "--sm4/--no-sm4",
    default=True,
    show_default=True,
    help="HJ 212-2025 monitors encrypt their data CP with their own SM4 key (the file "
    "ECOWATCH_HJ212_SM4_KEYS names; `ecowatch stack up` makes one per device); a monitor "
    "without a key sends plain text. --no-sm4: every 2025 monitor sends plain text.",
)
def simulate(**options: object) -> None:
    """Run simulated monitors: outfalls, air stations and discharge meters of the catalogue."""
    from ecowatch.simulators.city import build_fleet

    if options["hj212_version"] != "2017" and options["transport"] != "hj212":
        raise click.UsageError("--hj212-version needs --transport hj212")
    demo_city_unless_set()
    settings, catalogue = settings_and_catalogue()
    plan = fleet_plan(**options)
    fleet = build_fleet(settings, catalogue, plan)

    async def main() -> None:
        stop = asyncio.Event()
        stop_on_signals(stop)
        if plan.duration:
            asyncio.get_running_loop().call_later(plan.duration, stop.set)
        await _run_fleet(fleet, stop)

    over = plan.transport
    if plan.transport == "hj212":
        over += f" {plan.hj212_version}"
        if plan.hj212_version in ("2025", "mixed"):
            over += " (2025 with SM4 where a device has a key)" if plan.sm4 else " (2025 plain)"
    click.echo(
        f"{len(fleet.devices)} devices over {over}, a reading every "
        f"{plan.interval:g} simulated s, {plan.speed:g}x"
    )
    asyncio.run(main())
    click.echo(json.dumps(fleet.stats.as_dict()))
