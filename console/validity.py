"""The transmission-validity rates (传输有效率) the wall and the desk show, summed from the
worker's ``validity`` points and the catalogue. Pure: the points go in, the figures come out.

The worker writes one point per device, pollutant and closed China-time day: what it owed
(应传), what arrived (实传) and what was valid (有效). What is owed is the catalogue's (every
pollutant of every device, every day), so a device silent all day, which closes no day and
has no point, is owed and missing. A site's or the city's rate over days
is its counts summed, then divided (Σvalid / Σexpected): never an average of rates, which
would weigh a monitor owing 24 values a day as much as one owing 1,440.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from ecowatch.clock import CHINA
from ecowatch.config.catalogue import Catalogue
from ecowatch.streams.judging.validity import NOTHING, Counts, Validity, site_rates

DAYS = 7  # the closed days the wall and the desk look back over
LOWEST = 5  # the sites the wall names, the lowest first
THRESHOLD = 0.9  # under 90 % the screens show a rate in red
NO_DAYS: tuple[date, ...] = ()  # before the first read


@dataclass(frozen=True, slots=True)
class DayPoint:
    """One ``validity`` point: a device's closed China-time day of one pollutant."""

    site: str
    device: str
    pollutant: str
    day: date
    counts: Validity


def closed_days(now: datetime, count: int = DAYS) -> tuple[date, ...]:
    """The ``count`` China-time days before the day of ``now``, oldest first: the worker
    writes a day's point only once the day has closed, so today has none yet."""
    today = now.astimezone(CHINA).date()
    return tuple(today - timedelta(days=n) for n in range(count, 0, -1))


def figures(v: Validity) -> dict[str, Any]:
    """Counts and rates as the pages read them; ``low`` when the transmission-validity rate
    is under the threshold (nothing owed has no rate, and is not low)."""
    rate = v.transmission_validity_rate
    return {
        "expected": v.expected,
        "received": v.received,
        "valid": v.valid,
        **v.rates(),
        "low": rate is not None and rate < THRESHOLD,
    }


def _counts(points: Iterable[DayPoint]) -> Counts:
    return {
        (p.site, p.device, p.pollutant, p.day): (p.counts.received, p.counts.valid) for p in points
    }


def by_site(
    catalogue: Catalogue, points: Iterable[DayPoint], days: Collection[date]
) -> dict[str, Validity]:
    """Each site's counts over ``days``, summed over every pollutant its devices owe: owed
    from the catalogue, so a day a device was silent (the worker closed no day for it, so
    wrote no point) counts as owed and missing, not as nothing owed."""
    rates = site_rates(catalogue, _counts(points), sorted(days), None)
    return {r.site: r.total for r in rates}


def lowest(sites: Mapping[str, Validity], count: int = LOWEST) -> list[tuple[str, Validity]]:
    """The ``count`` sites with the lowest transmission-validity rate, lowest first (a tie by
    site id, so the wall does not shuffle); a site that owed nothing has no rate to rank."""
    ranked = [(sid, v) for sid, v in sites.items() if v.transmission_validity_rate is not None]
    ranked.sort(key=lambda item: (item[1].transmission_validity_rate, item[0]))
    return ranked[:count]


def wall_view(
    catalogue: Catalogue,
    points: Iterable[DayPoint],
    days: tuple[date, ...],
    shown: Collection[str] | None = None,
) -> dict[str, Any]:
    """The city's figures over ``days`` (every site's counts), and the lowest of the sites in
    ``shown`` (None: every site): an officer is named only their own grids' sites."""
    sites = by_site(catalogue, points, set(days))
    city = sum(sites.values(), NOTHING)
    ranked = lowest({s: v for s, v in sites.items() if shown is None or s in shown})
    return {
        "days": [d.isoformat() for d in days],
        "city": figures(city),
        "lowest": [{"site": sid, **figures(v)} for sid, v in ranked],
    }


def site_days(
    catalogue: Catalogue, points: Iterable[DayPoint], site: str, days: tuple[date, ...]
) -> dict[str, Any]:
    """One site's days, oldest first, each summed over every pollutant its devices owe, and
    their total."""
    [rates] = site_rates(catalogue, _counts(points), list(days), site)
    per_day = [sum((d.days[i][1] for d in rates.devices), NOTHING) for i in range(len(days))]
    return {
        "days": [{"day": d.isoformat(), **figures(v)} for d, v in zip(days, per_day, strict=True)],
        "total": figures(rates.total),
    }
