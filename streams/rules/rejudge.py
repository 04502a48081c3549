"""Hours that resent data fell in, judged again (HJ 212-2025 RF=1). Pure.

A device back from an outage sends its live reading first, then what it kept, marked RF=1.
By then the hours of the outage have closed with too little data to judge (an invalid hour
has no mean). The late readings do not move the site's present state (``SiteJudge``), so the
hours they fall in are noted here; once the resend has settled, the worker reads that day's
readings back from InfluxDB, where every reading is, and ``SiteJudge.rejudge`` computes the
hours and the day again with the same means as live. A valid mean over its limit is a finding
marked late, which opens a case marked found late.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from ecowatch.schema import Reading
from ecowatch.streams.aggregate import DAY, HOUR, day_of, hour_of
from ecowatch.streams.rules.base import SiteState

# No late reading for this long: the resend is over, its hours can be judged again.
REJUDGE_SETTLE = timedelta(seconds=10)
# Hours waiting at most per site: a device resends at most the contract's 7 days (168 hours);
# past this the oldest are forgotten (their readings are stored all the same).
REJUDGE_KEPT = 512


def note_late(state: SiteState, reading: Reading) -> None:
    """The hour of a late reading, to be judged again once the resend has settled."""
    key = f"{reading.device}|{hour_of(reading.ts).isoformat()}"
    state.rejudge.pop(key, None)  # re-inserted last: the oldest are first to go
    state.rejudge[key] = reading.received_at
    while len(state.rejudge) > REJUDGE_KEPT:
        del state.rejudge[next(iter(state.rejudge))]


def take_settled(state: SiteState, now: datetime) -> list[tuple[str, datetime]]:
    """(device, hour start) of the noted hours whose resend has settled, taken out of the
    state: the caller judges them again (or notes them back if it cannot yet)."""
    out: list[tuple[str, datetime]] = []
    for key, last in list(state.rejudge.items()):
        if now - last >= REJUDGE_SETTLE:
            del state.rejudge[key]
            device, _, hour = key.partition("|")
            out.append((device, datetime.fromisoformat(hour)))
    return out


def note_again(state: SiteState, device: str, hour: datetime, now: datetime) -> None:
    """An hour that could not be judged again now (InfluxDB away): tried on a later tick."""
    state.rejudge[f"{device}|{hour.isoformat()}"] = now - REJUDGE_SETTLE


def readings_span(hour: datetime, max_slice: timedelta) -> tuple[datetime, datetime]:
    """The readings that make the hour's day again: from the day's start less a slice (the
    value held into it) to an hour past its end (a reading after the day closes it)."""
    day = day_of(hour)
    return day - max_slice, day + DAY + HOUR
