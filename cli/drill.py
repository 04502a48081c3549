"""``ecowatch drill``: faults one by one, storms, a county's outage, and the month-long soak
(the drills themselves: ``devtools/drill.py`` and ``devtools/soak.py``)."""

from __future__ import annotations

import sys

import click

from ecowatch.cli.runtime import demo_city_unless_set
from ecowatch.config.settings import load_settings
from ecowatch.devtools.drill import (
    FAULTS,
    STORM_RECOVERY_SECONDS,
    DrillOptions,
    parse_faults,
    render,
    run_drill,
)


@click.command("drill")
@click.option("--rate", default=400.0, show_default=True, help="Readings per second in all.")
@click.option(
    "--devices",
    "mqtt_devices",
    default=20,
    show_default=True,
    help="Outfall monitors publishing over MQTT (QoS 1).",
)
@click.option(
    "--hj212-devices",
    default=10,
    show_default=True,
    help="Outfall monitors speaking HJ 212 over TCP, each from its own loopback address.",
)
@click.option(
    "--faults",
    default=",".join(FAULTS),
    show_default=True,
    help="Which faults, in this order (or 'all').",
)
@click.option(
    "--fault-gap",
    default=20.0,
    show_default=True,
    help="Seconds of steady load before the first fault and after each recovery.",
)
@click.option(
    "--influx-outage-seconds", default=20.0, show_default=True, help="How long InfluxDB is down."
)
@click.option(
    "--recovery-timeout",
    default=180.0,
    show_default=True,
    help="A fault not recovered from within this many seconds fails the drill.",
)
@click.option("--seed", default=1, show_default=True, help="The devices' and the storm's seed.")
@click.option(
    "--storm",
    is_flag=True,
    help="Faults together: each once at a seeded moment within --storm-span, services killed "
    "(-9) and away a seeded while, processes killed (-9) and restarted by their keepers; "
    "everything acknowledged must be stored within 60 s of the last fault.",
)
@click.option(
    "--storm-span",
    default=40.0,
    show_default=True,
    help="Seconds within which the storm's faults begin.",
)
@click.option(
    "--storm-mosquitto",
    type=click.Choice(["kill", "term"]),
    default="kill",
    show_default=True,
    help="How the storm stops Mosquitto. Mosquitto 2.0 saves its queue about once a second: "
    "kill -9 loses what it acknowledged since (see the README).",
)
@click.option(
    "--storm-recovery-limit",
    default=STORM_RECOVERY_SECONDS,
    show_default=True,
    help="Seconds after the storm's last fault by which everything acknowledged must be "
    "stored and every stage be back.",
)
@click.option(
    "--outage-resend",
    is_flag=True,
    help="A county's network outage: --outage-share of the HJ 212-2025 monitors off the "
    "network for --outage-seconds while the others report, then resending what they kept "
    "(RF=1); prints the backlog's drain time and the live readings' latency meanwhile.",
)
@click.option("--outage-share", default=0.5, show_default=True, type=click.FloatRange(0, 1))
@click.option("--outage-seconds", default=120.0, show_default=True)
@click.option(
    "--live-p99-limit",
    default=2.0,
    show_default=True,
    help="The live readings' p99 (publish → InfluxDB) allowed while the backlog drains.",
)
@click.option(
    "--first-monitor",
    default=1,
    show_default=True,
    help="Drive the catalogue's outfall monitors from this one on (1-based).",
)
@click.option(
    "--soak",
    is_flag=True,
    help="A simulated month of the city (every catalogue device, scenario soak-city each "
    "day, officers acting) on a scaled clock, with a worker and a bridge of its own and an "
    "InfluxDB bucket of its own; prints the worker's RSS and tables at days 1, 10 and --days, "
    "and fails if the last exceeds day 10 by more than --tolerance.",
)
@click.option("--days", default=30, show_default=True, help="--soak: simulated days.")
@click.option(
    "--speed",
    default=2880.0,
    show_default=True,
    help="--soak: simulated seconds per real second (2880: 30 days in 15 min).",
)
@click.option(
    "--interval",
    default=300.0,
    show_default=True,
    help="--soak: simulated seconds between a device's readings (53 devices at 2880x and "
    "300 s: 509 readings/s).",
)
@click.option(
    "--tolerance",
    default=0.15,
    show_default=True,
    type=click.FloatRange(0, 10),
    help="--soak: how much the last day may exceed day 10 (RSS, each table's bytes).",
)
@click.option(
    "--keep-bucket", is_flag=True, help="--soak: keep its InfluxDB bucket (deleted by default)."
)
def drill(
    rate: float,
    mqtt_devices: int,
    hj212_devices: int,
    faults: str,
    fault_gap: float,
    influx_outage_seconds: float,
    recovery_timeout: float,
    seed: int,
    storm: bool,
    storm_span: float,
    storm_mosquitto: str,
    storm_recovery_limit: float,
    outage_resend: bool,
    outage_share: float,
    outage_seconds: float,
    live_p99_limit: float,
    first_monitor: int,
    soak: bool,
    days: int,
    speed: float,
    interval: float,
    tolerance: float,
    keep_bucket: bool,
) -> None:
    """Steady load over MQTT and HJ 212 while the worker and the bridge are killed (-9),
    InfluxDB is stopped, Kafka and Mosquitto restarted and the HJ 212 server killed with
    devices connected; then readings published, acknowledged, stored and lost, duplicate
    notifications, and the time to recover after each fault. Exits 1 unless nothing was lost,
    nothing was sent twice, and every fault was applied and recovered from.

    Starts the local stack if it is down, and its own worker (a consumer group and tables of
    its own), bridge and HJ 212 server; everyone's notifications go to the drill's receiver.

    --soak runs a simulated month instead (see its option).
    """
    from ecowatch.config.catalogue import load_catalogue

    demo_city_unless_set()
    if soak:
        _soak(storm, outage_resend, days, speed, interval, tolerance, keep_bucket, seed)
        return

    if rate <= 0 or mqtt_devices < 0 or hj212_devices < 0 or fault_gap < 0:
        raise click.UsageError("--rate must be > 0; device counts and --fault-gap >= 0")
    try:
        chosen = parse_faults(faults)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--faults") from None
    settings = load_settings()
    options = DrillOptions(
        rate=rate,
        mqtt_devices=mqtt_devices,
        hj212_devices=hj212_devices,
        faults=chosen,
        gap=fault_gap,
        influx_outage=influx_outage_seconds,
        recovery_timeout=recovery_timeout,
        seed=seed,
        first_monitor=first_monitor,
        storm=storm,
        storm_span=storm_span,
        storm_mosquitto=storm_mosquitto,
        storm_recovery_limit=storm_recovery_limit,
        outage_resend=outage_resend,
        outage_share=outage_share,
        outage_seconds=outage_seconds,
        live_p99_limit=live_p99_limit,
    )
    if storm and outage_resend:
        raise click.UsageError("--storm and --outage-resend are two drills: choose one")
    report = run_drill(settings, load_catalogue(settings.catalogue_folder()), options, click.echo)
    for line in render(report):
        click.echo(line)
    if not report.passed:
        sys.exit(1)


def _soak(
    storm: bool,
    outage_resend: bool,
    days: int,
    speed: float,
    interval: float,
    tolerance: float,
    keep_bucket: bool,
    seed: int,
) -> None:
    """`ecowatch drill --soak` (devtools/soak.py)."""
    from ecowatch.config.catalogue import load_catalogue
    from ecowatch.devtools.soak import SoakOptions, render_soak, run_soak

    if storm or outage_resend:
        raise click.UsageError("--soak is a drill of its own: not with --storm or --outage-resend")
    if days < 1 or speed <= 0 or interval <= 0:
        raise click.UsageError("--days must be >= 1, --speed and --interval > 0")
    settings = load_settings()
    options = SoakOptions(
        days=days,
        speed=speed,
        interval=interval,
        tolerance=tolerance,
        seed=seed,
        keep_bucket=keep_bucket,
    )
    report = run_soak(settings, load_catalogue(settings.catalogue_folder()), options, click.echo)
    for line in render_soak(report):
        click.echo(line)
    if not report.passed:
        sys.exit(1)
