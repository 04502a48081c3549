"""A site's month of transmission and validity (传输有效率): too little of what its devices owed
arrived valid. Authorities rank enterprises by it, and a low rate is itself a violation.

Each device's closed days are counted into its tracks as they close (``count_day``); when
the month is over (the first event after its end), the site's month is the sum over every
pollutant its devices owe: expected from each device's reporting interval since counting
began (the month's start, or the site's first event), less the time marked stopped; received
and valid from its closed days and the day still open. Under ``validity_threshold`` (90 %)
is a finding for the month, one a month while it lasts; a month at or over it clears it.
"""

from __future__ import annotations

from datetime import datetime

from ecowatch.clock import CHINA
from ecowatch.schema import Finding, Rule, Severity
from ecowatch.streams.judging.aggregate import Series, day_of
from ecowatch.streams.judging.marks import stopped_periods
from ecowatch.streams.judging.rules.base import (
    Context,
    SiteState,
    Step,
    Track,
    new_finding,
    verdict,
)
from ecowatch.streams.judging.rules.verdict import Verdict
from ecowatch.streams.judging.validity import (
    NOTHING,
    Validity,
    counted,
    expected_values,
    month_period,
)


def month_of(at: datetime) -> str:
    return at.astimezone(CHINA).strftime("%Y-%m")


def count_day(track: Track, day_start: datetime, validity: Validity) -> None:
    """A closed day's values into its track's month."""
    month = month_of(day_start)
    if track.month != month:
        track.month, track.month_received, track.month_valid = month, 0, 0
    track.month_received += validity.received
    track.month_valid += validity.valid


def _open_day(series: Series, since: datetime, until: datetime) -> tuple[int, int]:
    """(received, valid) of the day a series still has open, if it falls in [since, until):
    its closed hours' readings and the open hour's."""
    if series.day_start is None or not day_of(since) <= series.day_start < until:
        return 0, 0
    received, valid = counted(series.day.flags)
    if series.hour_start is not None and day_of(series.hour_start) == series.day_start:
        more_received, more_valid = counted(series.hour.flags)
        received, valid = received + more_received, valid + more_valid
    return received, valid


def month_validity(state: SiteState, ctx: Context, since: datetime, until: datetime) -> Validity:
    """What the site's devices owed in [since, until) and what of it came, and valid."""
    month = month_of(since)
    total = NOTHING
    for device in ctx.site(state.site).devices:
        stopped = stopped_periods(state.marks.values(), device.id) if state.marks else ()
        for code in device.pollutants:
            expected = expected_values((since, until), device.reports_every, stopped)
            received = valid = 0
            track = state.tracks.get(f"{device.id}|{code}")
            if track is not None:
                if track.month == month:
                    received, valid = track.month_received, track.month_valid
                more_received, more_valid = _open_day(track.series, since, until)
                received, valid = received + more_received, valid + more_valid
            total += Validity(expected, received, valid)
    return total


def low_transmission_validity(state: SiteState, step: Step, ctx: Context) -> list[Verdict]:
    now = step.now
    until = state.counting_until
    if until is not None and now < until:
        return []  # on nearly every event: the month is not over
    since = state.counting_since
    local = now.astimezone(CHINA)
    this_month = month_period(local.year, local.month)
    state.counting_since, state.counting_until = this_month[0], this_month[1]
    if until is None or since is None:  # the site's first event: count from it
        state.counting_since = now
        return []
    total = month_validity(state, ctx, since, until)
    rate = total.transmission_validity_rate
    if rate is None:
        return []  # nothing was owed
    threshold = ctx.params.validity_threshold
    month = month_of(since)

    def build(active: bool) -> Finding:
        return new_finding(
            state,
            Rule.LOW_TRANSMISSION_VALIDITY,
            Severity.WARNING,
            active=active,
            at=until,
            value=round(rate * 100, 2),
            limit=round(threshold * 100, 2),
            unit="%",
            period=month,
            window_start=since,
            window_end=until,
            expected=total.expected,
            received=total.received,
            valid=total.valid,
        )

    holds = rate < threshold
    rule = Rule.LOW_TRANSMISSION_VALIDITY
    return verdict(state, ctx, now, holds, None, None, rule, build, every=True)
