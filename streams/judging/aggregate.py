"""Minute, hourly and daily means of one device's pollutant, as a pure accumulator (HJ 212
Appendix D).

One :class:`Series` per (device, pollutant) lives in the site's state (a Faust table value),
so it is a small pydantic model that round-trips through JSON. :func:`add` takes it and one
measurement and returns the new series and the windows that the measurement closed.

Slices. A reading's value holds from its time until the next reading (sample and hold), with
the slice capped at ``max_slice`` so that a gap does not weigh one value for hours. A slice
that crosses a minute (or hour) boundary is split between the two. Only a slice whose value (and
flow, when flow-weighted) is flagged N and not negative counts; every reading's flag is
counted in the window of its time.

Means. Flow-weighted (Appendix D), per slice: ΔD (m³) = Q (L/s) × T (s) × 1e-3 and
G (kg) = C (mg/L) × ΔD × 1e-3; the hour is C_h = ΣG / ΣD × 1e3. Without flow (air, pH, DO)
the same formula with Q = 1: the time-weighted mean, which is the plain mean for readings at
a regular interval. The daily mean is built from the valid hours: ΣG / ΣD over the day when
flow-weighted (the daily mass over the daily volume), else the mean of the hourly means.

Validity. A minute is valid with at least ``min_minute_coverage`` of valid slices; an hour
with at least ``min_hour_coverage`` (CEMS: 45 minutes); a day with at least ``min_day_hours``
valid hours (GB 3095: 20). An invalid window is still reported (with its flag counts) but has
no mean, so no verdict. A flow-weighted hour with valid data and no discharge (ΣD = 0) is
valid with no mean.

Closing. Windows are the site's local minutes, hours and days (Asia/Shanghai). Minutes are
for the operators' charts: the rules judge hours and days only. A window closes when a
reading from a later window arrives; a reading that is not later than the previous one is
dropped from the means (a device's readings arrive in order on its Kafka partition).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from ecowatch.clock import CHINA
from ecowatch.schema import DataFlag, Measurement

MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
MEAN_DECIMALS = 6  # float noise must not push a mean exactly at a limit over it
_FLAG_VALUES = {flag: flag.value for flag in DataFlag}  # Enum.value is a slow property


class WindowParams(BaseModel):
    """The averaging rules; :class:`ecowatch.streams.judging.rules.RuleParams` extends them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_minute_coverage: timedelta = timedelta(seconds=45)
    min_hour_coverage: timedelta = timedelta(minutes=45)
    min_day_hours: int = Field(default=20, ge=1, le=24)
    max_slice: timedelta = timedelta(minutes=10)


class Weighting(StrEnum):
    FLOW = "flow"  # Appendix D: concentrations of a discharge, weighted by flow
    TIME = "time"  # air, pH, DO, the flow itself


class Period(StrEnum):
    MINUTE = "minute"
    HOUR = "hour"
    DAY = "day"


# Sums and Held change on every reading: slotted dataclasses, which pydantic validates and
# serialises inside Series as it did the models, without BaseModel.__setattr__'s cost.


@dataclass(slots=True)
class Sums:
    """What an open window has gathered. ``weight`` is ΣD (m³) or Σt (s); ``weighted`` ΣC·w."""

    weighted: float = 0.0
    weight: float = 0.0
    covered_s: float = 0.0  # seconds of valid slices
    flags: dict[str, int] = field(default_factory=dict)  # readings per data flag
    # Days only: the valid hours, and the sum of their means (time-weighted series).
    valid_hours: int = 0
    hourly_means: float = 0.0
    hours_with_mean: int = 0


@dataclass(slots=True, kw_only=True)
class Held:
    """The previous reading: the value that holds until the next one."""

    ts: AwareDatetime
    value: float
    flow: float | None = None
    valid: bool


class Series(BaseModel):
    """One device's pollutant: the open minute, hour and day and the value being held."""

    weighting: Weighting
    minute_start: AwareDatetime | None = None
    minute: Sums = Field(default_factory=Sums)
    hour_start: AwareDatetime | None = None
    hour: Sums = Field(default_factory=Sums)
    day_start: AwareDatetime | None = None
    day: Sums = Field(default_factory=Sums)
    held: Held | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Window:
    """A closed minute, hour or day. ``mean`` is None when the window is invalid or had no
    discharge. A dataclass: made by this module from its own sums (about one a reading, for
    the minutes), never parsed, so there is nothing to validate."""

    period: Period
    start: datetime
    end: datetime
    valid: bool
    mean: float | None
    coverage: timedelta  # of valid data (hours: from slices; days: valid hours × 1 h)
    volume_m3: float | None = None  # flow-weighted only: ΣD
    mass_kg: float | None = None  # flow-weighted only: ΣG
    flags: dict[str, int]


def minute_of(ts: datetime) -> datetime:
    return ts.astimezone(CHINA).replace(second=0, microsecond=0)


def hour_of(ts: datetime) -> datetime:
    return ts.astimezone(CHINA).replace(minute=0, second=0, microsecond=0)


def day_of(ts: datetime) -> datetime:
    return ts.astimezone(CHINA).replace(hour=0, minute=0, second=0, microsecond=0)


def _next_hour(start: datetime) -> datetime:
    # Asia/Shanghai has no DST: local hours are 3600 s apart.
    return hour_of(start + HOUR)


def _valid(m: Measurement, flow: Measurement | None, weighting: Weighting) -> bool:
    if m.flag is not DataFlag.NORMAL or m.value < 0:
        return False
    if weighting is Weighting.FLOW:
        return flow is not None and flow.flag is DataFlag.NORMAL and flow.value >= 0
    return True


def add(
    series: Series,
    ts: datetime,
    m: Measurement,
    params: WindowParams,
    flow: Measurement | None = None,
) -> tuple[Series, list[Window]]:
    """One measurement (with the reading's flow, for a flow-weighted series): the new series
    and the minutes, hours and days it closed, oldest first (a minute before its hour).
    ``series`` is left as it was."""
    if series.held is not None and ts <= series.held.ts:
        return series, []  # late or duplicate: the slices are already laid
    s = series.model_copy(deep=True)
    return s, add_in_place(s, ts, m, params, flow)


def add_in_place(
    s: Series,
    ts: datetime,
    m: Measurement,
    params: WindowParams,
    flow: Measurement | None = None,
) -> list[Window]:
    """:func:`add` on a series the caller owns (the judge's working copy): no copy made."""
    closed: list[Window] = []
    held = s.held
    if held is None:
        _enter(s, ts, params, closed)
    elif ts <= held.ts:
        return closed
    else:
        end = min(ts, held.ts + params.max_slice)
        start = s.minute_start
        if start is not None and start <= held.ts and ts - start < MINUTE:
            # Most readings: the slice and the reading are in the open minute, so there is
            # one segment and no window to close.
            _accumulate(s, held, (end - held.ts).total_seconds())
        else:
            _lay_slice(s, held, end, params, closed)
            _enter(s, ts, params, closed)
    flag = _FLAG_VALUES[m.flag]
    flags = s.minute.flags
    flags[flag] = flags.get(flag, 0) + 1
    flags = s.hour.flags
    flags[flag] = flags.get(flag, 0) + 1
    flow_value = flow.value if flow is not None else None
    valid = _valid(m, flow, s.weighting)
    if held is None:
        s.held = Held(ts=ts, value=m.value, flow=flow_value, valid=valid)
    else:  # the series' own: updated in place rather than made anew on every reading
        held.ts, held.value, held.flow, held.valid = ts, m.value, flow_value, valid
    return closed


def _lay_slice(
    s: Series, held: Held, end: datetime, params: WindowParams, closed: list[Window]
) -> None:
    """The held value from its time to ``end``, split over the minutes (and so the hours)
    it crosses."""
    t = held.ts
    while t < end:
        _enter(s, t, params, closed)
        seg_end = min(end, s.minute_start + MINUTE)  # type: ignore[operator]  # just entered
        _accumulate(s, held, (seg_end - t).total_seconds())
        t = seg_end


def _accumulate(s: Series, held: Held, seconds: float) -> None:
    """A segment of the held value, within the open minute."""
    if not held.valid:
        return
    if s.weighting is Weighting.FLOW:
        assert held.flow is not None  # a valid flow-weighted slice has its flow
        weight = held.flow * seconds * 1e-3  # ΔD, m³
    else:
        weight = seconds
    weighted = held.value * weight
    for sums in (s.minute, s.hour):
        sums.weighted += weighted
        sums.weight += weight
        sums.covered_s += seconds


def _enter(s: Series, t: datetime, params: WindowParams, closed: list[Window]) -> None:
    """Make the minute and hour of ``t`` the open ones, closing those before them."""
    start = s.minute_start
    # The open minute is a minute of China time, which is whole minutes from UTC: ``t`` is
    # in it exactly when it is less than a minute past its start (no time zone arithmetic).
    if start is not None and start <= t and t - start < MINUTE:
        return  # the same minute, so the same hour and day
    minute = minute_of(t)
    if start is not None:
        closed.append(_close_minute(s, params))
    s.minute_start, s.minute = minute, Sums()
    if s.hour_start is None or hour_of(t) != s.hour_start:
        _roll(s, hour_of(t), params, closed)


def _roll(s: Series, new_hour: datetime, params: WindowParams, closed: list[Window]) -> None:
    """Close the open hour (and its day if ``new_hour`` is in another day); open ``new_hour``."""
    if s.hour_start is not None:
        closed.append(_close_hour(s, params))
    if s.day_start is not None and day_of(new_hour) != s.day_start:
        closed.append(_close_day(s, params))
    if s.day_start is None or day_of(new_hour) != s.day_start:
        s.day_start, s.day = day_of(new_hour), Sums()
    s.hour_start, s.hour = new_hour, Sums()


def _mean(sums: Sums) -> float | None:
    return round(sums.weighted / sums.weight, MEAN_DECIMALS) if sums.weight > 0 else None


def _merge_flags(into: dict[str, int], flags: dict[str, int]) -> None:
    for flag, n in flags.items():
        into[flag] = into.get(flag, 0) + n


def _window(
    s: Series,
    sums: Sums,
    period: Period,
    span: tuple[datetime, datetime],
    valid: bool,
    mean: float | None,
    coverage: timedelta,
) -> Window:
    flow = s.weighting is Weighting.FLOW
    return Window(
        period=period,
        start=span[0],
        end=span[1],
        valid=valid,
        mean=mean,
        coverage=coverage,
        volume_m3=sums.weight if flow else None,  # flow-weighted only: ΣD
        mass_kg=sums.weighted * 1e-3 if flow else None,  # ΣC·ΔD (mg/L · m³) → kg
        flags=dict(sums.flags),
    )


def _close_minute(s: Series, params: WindowParams) -> Window:
    assert s.minute_start is not None
    m = s.minute
    valid = m.covered_s >= params.min_minute_coverage.total_seconds()
    span = (s.minute_start, s.minute_start + MINUTE)
    mean = _mean(m) if valid else None
    return _window(s, m, Period.MINUTE, span, valid, mean, timedelta(seconds=m.covered_s))


def _close_hour(s: Series, params: WindowParams) -> Window:
    assert s.hour_start is not None
    h = s.hour
    valid = h.covered_s >= params.min_hour_coverage.total_seconds()
    mean = _mean(h) if valid else None
    if s.day_start is not None:
        _merge_flags(s.day.flags, h.flags)
        if valid:
            s.day.valid_hours += 1
            s.day.weighted += h.weighted
            s.day.weight += h.weight
            if mean is not None:
                s.day.hourly_means += mean
                s.day.hours_with_mean += 1
    span = (s.hour_start, _next_hour(s.hour_start))
    return _window(s, h, Period.HOUR, span, valid, mean, timedelta(seconds=h.covered_s))


def _close_day(s: Series, params: WindowParams) -> Window:
    assert s.day_start is not None
    d = s.day
    valid = d.valid_hours >= params.min_day_hours
    flow = s.weighting is Weighting.FLOW
    mean: float | None = None
    if valid and flow:
        mean = _mean(d)
    elif valid and d.hours_with_mean:
        mean = round(d.hourly_means / d.hours_with_mean, MEAN_DECIMALS)
    span = (s.day_start, day_of(s.day_start + timedelta(hours=36)))
    return _window(s, d, Period.DAY, span, valid, mean, timedelta(hours=d.valid_hours))
