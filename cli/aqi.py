"""``ecowatch aqi``: the HJ 633 AQI of concentrations given on the command line.

Registered by the CLI package (``cli.add_command(aqi)``). Needs no service: it reads only the
breakpoint files shipped with ecowatch.
"""

from __future__ import annotations

import json
import math
from typing import Any

import click

from ecowatch.streams.judging.aqi import (
    CO,
    EDITIONS,
    NO2,
    O3,
    PM10,
    PM25,
    SO2,
    AqiPeriod,
    AqiResult,
    NoIaqiError,
    Pollutant,
)
from ecowatch.streams.judging.aqi import aqi as compute_aqi


class _Concentration(click.ParamType):
    """A finite, non-negative number: a bad value is a usage error naming the option."""

    name = "number"

    def __init__(self, unit: str) -> None:
        self.unit = unit

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        try:
            number = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number ({self.unit})", param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number ({self.unit})", param, ctx)
        if number < 0:
            self.fail(f"{value} {self.unit}: a concentration cannot be negative", param, ctx)
        return number


# option name → pollutant, in the order of the help and of the checks
_OPTIONS: dict[str, Pollutant] = {
    "pm25": PM25,
    "pm10": PM10,
    "so2": SO2,
    "no2": NO2,
    "co": CO,
    "o3": O3,
}


def _human(result: AqiResult) -> str:
    cat = result.category
    primary = ", ".join(result.primary) or "none"
    each = ", ".join(f"{name} {value}" for name, value in result.iaqi.items())
    line = (
        f"AQI {result.aqi} {cat.name_zh} ({cat.label}) | primary: {primary} | "
        f"IAQI: {each} | {result.standard} {result.period}"
    )
    return "\n".join([line, *(f"note: {n}" for n in result.notes)])


@click.command("aqi")
@click.option("--pm25", type=_Concentration("µg/m³"), help="PM2.5, µg/m³.")
@click.option("--pm10", type=_Concentration("µg/m³"), help="PM10, µg/m³.")
@click.option("--so2", type=_Concentration("µg/m³"), help="SO2, µg/m³.")
@click.option("--no2", type=_Concentration("µg/m³"), help="NO2, µg/m³.")
@click.option("--co", type=_Concentration("mg/m³"), help="CO, mg/m³.")
@click.option(
    "--o3",
    type=_Concentration("µg/m³"),
    help="O3, µg/m³: the 1-hour mean with --period 1h, the daily maximum 8-hour mean with 24h.",
)
@click.option(
    "--o3-1h",
    "o3_1h",
    type=_Concentration("µg/m³"),
    help="HJ 633-2012, --period 24h: the day's maximum 1-hour O3, whose IAQI is reported "
    "when --o3 is above 800.",
)
@click.option(
    "--so2-24h",
    "so2_24h",
    type=_Concentration("µg/m³"),
    help="HJ 633-2012, --period 1h: the 24-hour SO2 mean, whose IAQI is reported when --so2 "
    "is above 800.",
)
@click.option(
    "--period",
    type=click.Choice([AqiPeriod.HOUR.value, AqiPeriod.DAY.value]),
    default=AqiPeriod.HOUR.value,
    show_default=True,
    help="1h: real-time AQI from hourly values; 24h: daily AQI from daily values.",
)
@click.option(
    "--standard",
    type=click.Choice(list(EDITIONS)),
    default="2026",
    show_default=True,
    help="The HJ 633 edition (2026 is in force from 2026-03-01).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def aqi(
    o3_1h: float | None,
    so2_24h: float | None,
    period: str,
    standard: str,
    as_json: bool,
    **concentrations: float | None,
) -> None:
    """The HJ 633 air quality index (AQI) of the concentrations given (at least one)."""
    given = {_OPTIONS[opt].name: v for opt, v in concentrations.items() if v is not None}
    if not given:
        raise click.UsageError(
            "give at least one concentration: " + ", ".join(f"--{o}" for o in _OPTIONS)
        )
    # Said here with the option names; aqi() would name its keyword arguments.
    if o3_1h is not None and period != AqiPeriod.DAY:
        raise click.UsageError("--o3-1h goes with --period 24h (with 1h, --o3 is the 1h value)")
    if so2_24h is not None and period != AqiPeriod.HOUR:
        raise click.UsageError("--so2-24h goes with --period 1h (with 24h, --so2 is that value)")
    try:
        result = compute_aqi(given, period, standard, o3_1h=o3_1h, so2_24h=so2_24h)
    except NoIaqiError as exc:
        if exc.argument is None:
            raise
        raise click.UsageError(f"{exc.reason}: give --{exc.argument.replace('_', '-')}") from None
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if as_json:
        out = {
            "aqi": result.aqi,
            "category": result.category.value,
            "primary": result.primary,
            "iaqi": result.iaqi,
        }
        click.echo(json.dumps(out, ensure_ascii=False))
    else:
        click.echo(_human(result))
