"""Late data (resent after an outage, HJ 212-2025 RF=1, or old and out of order), judged in
groups. Pure.

A device back from an outage sends its live reading first, then what it kept. Its late readings
do not move the site's present state (``SiteJudge``): they are judged apart, per batch of the
worker and per site, so that a resend costs about what live data costs:

- their real-time values over a limit are findings marked late, one per device, pollutant and
  hour (:func:`first_late_of_hour`), not one per reading: a resend of a day over the limit was
  thousands of findings, each one a case event on the trail and a point in InfluxDB;
- the hours they fall in are noted once per batch (:func:`note_hours`), with the latest
  arrival among them. Once the site's resends have settled, the worker takes every noted
  hour of the site at once (:func:`take_settled`), reads the days they are in back from
  InfluxDB in one query per site (:func:`read_spans`), and ``SiteJudge.rejudge_hours``
  computes all those hours and their days again in one pass per device, with the same means
  as live. A valid mean over
  its limit is a finding marked late, which opens a case marked found late.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from ecowatch.schema import DataFlag, Reading
from ecowatch.streams.judging.aggregate import DAY, HOUR, day_of, hour_of
from ecowatch.streams.judging.rules.base import SiteState


@dataclass(frozen=True, slots=True)
class StoredValue:
    """A pollutant's value as read back from the store (what the means use of a
    ``Measurement``)."""

    value: float
    flag: DataFlag


@dataclass(frozen=True, slots=True)
class StoredReading:
    """A reading as read back from the store to judge its hours again: what the means use of
    a ``Reading``. Plain slotted objects: a day of a device is thousands of them, and the
    store holds only readings the worker validated before writing them."""

    device: str
    ts: datetime
    values: dict[str, StoredValue]


# No late reading for this long: the resend is over, its hours can be judged again.
REJUDGE_SETTLE = timedelta(seconds=10)
# A site whose late readings never stop (a device whose readings all come late) has its hours
# judged again this often all the same.
REJUDGE_MAX_WAIT = timedelta(minutes=5)
# Hours waiting at most per site: a device resends at most the contract's 7 days (168 hours);
# past this the oldest are forgotten (their readings are stored all the same).
REJUDGE_KEPT = 512
# Late real-time findings remembered per site ("device|pollutant|rule|hour"): a resend whose
# hour is over the limit says so once, whatever the number of readings and batches it takes.
LATE_FOUND_KEPT = 512


def late_hours(readings: Iterable[Reading]) -> dict[tuple[str, datetime], datetime]:
    """Late readings grouped by (device, hour start): the latest arrival in each."""
    out: dict[tuple[str, datetime], datetime] = {}
    for r in readings:
        key = (r.device, hour_of(r.ts))
        known = out.get(key)
        if known is None or r.received_at > known:
            out[key] = r.received_at
    return out


def note_hours(state: SiteState, hours: dict[tuple[str, datetime], datetime]) -> None:
    """The hours of a batch's late readings, each noted once, to be judged again once the
    resend has settled."""
    rejudge = state.rejudge
    for (device, hour), arrived in hours.items():
        key = f"{device}|{hour.isoformat()}"
        known = rejudge.pop(key, None)  # re-inserted last: the oldest are first to go
        rejudge[key] = arrived if known is None or arrived > known else known
    while len(rejudge) > REJUDGE_KEPT:
        del rejudge[next(iter(rejudge))]


def note_late(state: SiteState, reading: Reading) -> None:
    """The hour of one late reading (:func:`note_hours` of one)."""
    note_hours(state, late_hours([reading]))


def first_late_of_hour(state: SiteState, key: str, hour: datetime) -> bool:
    """Whether a late exceedance of ``key`` ("device|pollutant|rule") in ``hour`` is the first
    one found for that hour (then remembered): only the first is a finding."""
    seen = f"{key}|{hour.isoformat()}"
    if seen in state.late_found:
        return False
    state.late_found[seen] = hour
    while len(state.late_found) > LATE_FOUND_KEPT:
        del state.late_found[next(iter(state.late_found))]
    return True


def take_settled(state: SiteState, now: datetime) -> list[tuple[str, datetime]]:
    """(device, hour start) of every noted hour of the site, taken out of the state, once its
    resends have settled: no late reading for :data:`REJUDGE_SETTLE`, or the oldest noted
    hour waiting for :data:`REJUDGE_MAX_WAIT` (a device whose readings all come late never
    settles). The caller judges them again all at once, from one read (or notes them back if
    it cannot yet); none while the resend goes on."""
    noted = state.rejudge
    if not noted:
        return []
    arrivals = noted.values()
    if now - max(arrivals) < REJUDGE_SETTLE and now - min(arrivals) < REJUDGE_MAX_WAIT:
        return []
    out = []
    for key in noted:
        device, _, hour = key.partition("|")
        out.append((device, datetime.fromisoformat(hour)))
    noted.clear()
    return out


def note_again(state: SiteState, device: str, hour: datetime, now: datetime) -> None:
    """An hour that could not be judged again now (InfluxDB away): tried on a later tick."""
    state.rejudge[f"{device}|{hour.isoformat()}"] = now - REJUDGE_SETTLE


def readings_span(hour: datetime, max_slice: timedelta) -> tuple[datetime, datetime]:
    """The readings that make the hour's day again: from the day's start less a slice (the
    value held into it) to an hour past its end (a reading after the day closes it)."""
    day = day_of(hour)
    return day - max_slice, day + DAY + HOUR


def read_spans(
    hours: Iterable[tuple[str, datetime]], max_slice: timedelta
) -> list[tuple[datetime, datetime]]:
    """The time spans to read back to judge ``hours`` (of any devices of one site) again: each
    hour's :func:`readings_span`, the overlapping ones merged, so that a site's hours of one
    day (or of days in a row) are one read, however many hours and devices."""
    spans = sorted({readings_span(hour, max_slice) for _, hour in hours})
    merged: list[tuple[datetime, datetime]] = []
    for start, stop in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], stop))
        else:
            merged.append((start, stop))
    return merged


def by_device(hours: Iterable[tuple[str, datetime]]) -> dict[str, set[datetime]]:
    out: dict[str, set[datetime]] = {}
    for device, hour in hours:
        out.setdefault(device, set()).add(hour)
    return out
