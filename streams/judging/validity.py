"""Transmission and validity rates (传输有效率), as the Ministry's platform publishes them. Pure.

For one device and pollutant over a day or a month:

- **expected**: the values it owes, from its reporting interval (the catalogue's, by model:
  a monitor reporting every minute owes 1,440 a China-time day), less the time marked
  stopped (停运, 停产), which leaves the statistics;
- **received**: the values that arrived, one per reading time, whatever their flag;
- **valid**: those flagged N (normal): maintenance, calibration, faults, over-range and
  stopped values arrived but are not data the platform can judge;
- **transmission rate** received / expected, **validity rate** valid / received, and the
  **transmission-validity rate** their product, valid / expected.

The Ministry's example: 120 expected, 114 received, 110 valid give 95.00 %, 96.49 % and
91.67 %. More received than expected (a device reporting faster than its interval) counts as
everything owed: a rate is at most 100 %.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from ecowatch.clock import CHINA
from ecowatch.config.catalogue import Catalogue
from ecowatch.schema import DataFlag

RATE_DECIMALS = 4  # 0.9167: the platform publishes percentages to two decimals
Period = tuple[datetime, datetime]  # [start, end)


@dataclass(frozen=True, slots=True)
class Validity:
    """What a device owed of one pollutant over a day or a month, and what came of it."""

    expected: int
    received: int
    valid: int

    def __add__(self, other: Validity) -> Validity:
        return Validity(
            self.expected + other.expected,
            self.received + other.received,
            self.valid + other.valid,
        )

    @property
    def transmission_rate(self) -> float | None:
        return _rate(self.received, self.expected)

    @property
    def validity_rate(self) -> float | None:
        return _rate(self.valid, self.received)

    @property
    def transmission_validity_rate(self) -> float | None:
        return _rate(self.valid, self.expected)

    def rates(self) -> dict[str, float | None]:
        return {
            "transmission_rate": self.transmission_rate,
            "validity_rate": self.validity_rate,
            "transmission_validity_rate": self.transmission_validity_rate,
        }


NOTHING = Validity(0, 0, 0)


def _rate(part: int, whole: int) -> float | None:
    """None when nothing was owed (a day wholly marked stopped): no rate, not 0 % nor 100 %."""
    if whole <= 0:
        return None
    return round(min(part, whole) / whole, RATE_DECIMALS)


def expected_values(period: Period, interval: timedelta, excluded: Iterable[Period] = ()) -> int:
    """The values a device reporting every ``interval`` owes over ``period``, less the parts
    of it in ``excluded`` (marked stopped; overlaps counted once)."""
    start, end = period
    owed = end - start
    for cut_start, cut_end in _merged(excluded):
        overlap = min(end, cut_end) - max(start, cut_start)
        if overlap > timedelta(0):
            owed -= overlap
    return max(0, int(owed / interval))


def _merged(periods: Iterable[Period]) -> list[Period]:
    out: list[Period] = []
    for start, end in sorted(periods):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def counted(flags: Mapping[str, int]) -> tuple[int, int]:
    """(received, valid) from a window's readings per data flag."""
    return sum(flags.values()), flags.get(DataFlag.NORMAL.value, 0)


def day_period(day: date) -> Period:
    start = datetime(day.year, day.month, day.day, tzinfo=CHINA)
    return start, start + timedelta(days=1)


def month_period(year: int, month: int) -> Period:
    start = datetime(year, month, 1, tzinfo=CHINA)
    days = calendar.monthrange(year, month)[1]
    return start, start + timedelta(days=days)


def days_of(period: Period) -> list[date]:
    """The China-time days that ``period`` (whole days) covers."""
    start, end = (t.astimezone(CHINA).date() for t in period)
    return [start + timedelta(days=i) for i in range((end - start).days)]


# -- a report over days -------------------------------------------------------------------------

Counts = Mapping[tuple[str, str, str, date], tuple[int, int]]  # (site, device, code, day)


@dataclass(frozen=True, slots=True)
class DeviceRates:
    """One device's pollutant over the report's days: each day's and their sum."""

    device: str
    pollutant: str
    days: tuple[tuple[date, Validity], ...]

    @property
    def total(self) -> Validity:
        return sum((v for _, v in self.days), NOTHING)


@dataclass(frozen=True, slots=True)
class SiteRates:
    site: str
    devices: tuple[DeviceRates, ...]

    @property
    def total(self) -> Validity:
        return sum((d.total for d in self.devices), NOTHING)

    def below(self, threshold: float) -> bool:
        """Under the threshold's transmission-validity rate (nothing owed: not below)."""
        rate = self.total.transmission_validity_rate
        return rate is not None and rate < threshold


def site_rates(
    catalogue: Catalogue,
    counts: Counts,
    days: list[date],
    site: str | None,
    stopped: Mapping[tuple[str, str], list[Period]] | None = None,
) -> list[SiteRates]:
    """Every device's owed pollutants over ``days`` (the catalogue's sites, or one), from what
    arrived (``counts``; a day with nothing is 0 received, not left out); ``stopped``: the
    periods each (site, device) was marked stopped, which it did not owe."""
    out = []
    for site_id, s in sorted(catalogue.sites.items()):
        if site is not None and site_id != site:
            continue
        devices = []
        for device in s.devices:
            cuts = (stopped or {}).get((site_id, device.id), [])
            for code in device.pollutants:
                per_day = []
                for day in days:
                    expected = expected_values(day_period(day), device.reports_every, cuts)
                    received, valid = counts.get((site_id, device.id, code, day), (0, 0))
                    per_day.append((day, Validity(expected, received, valid)))
                devices.append(DeviceRates(device.id, code, tuple(per_day)))
        out.append(SiteRates(site_id, tuple(devices)))
    return out
