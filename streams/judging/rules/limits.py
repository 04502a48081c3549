"""Over the limit: real-time values, hourly and daily means against the site's limits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from ecowatch.config.standards import AppliedLimit, Maximum, Minimum, Range
from ecowatch.pollutants import O2, WATER_TEMP
from ecowatch.schema import (
    DataFlag,
    Finding,
    LimitBound,
    Reading,
    Rule,
    Severity,
)
from ecowatch.streams.judging.aggregate import (
    Period,
    Window,
    hour_of,
)
from ecowatch.streams.judging.flue_gas import corrected, with_nox
from ecowatch.streams.judging.rules.base import (
    ClosedWindow,
    Context,
    Level,
    SiteState,
    Step,
    key_of,
    new_finding,
    round3,
    unit_of,
    verdict,
)
from ecowatch.streams.judging.rules.rejudge import first_late_of_hour
from ecowatch.streams.judging.rules.verdict import Verdict

_LEVEL_RULES = {
    Level.REALTIME: (Rule.REALTIME_OVER_LIMIT, Severity.WARNING),
    Level.HOURLY: (Rule.HOURLY_OVER_LIMIT, Severity.WARNING),
    Level.DAILY: (Rule.DAILY_OVER_LIMIT, Severity.VIOLATION),
}


class Exceedance(NamedTuple):
    """A value against the bound of its limit, as the evidence records it."""

    complies: bool
    limit: float | None  # the bound crossed, or judged against: the maximum, the minimum, a
    # range's end nearest the value (None for a range complied with)
    multiple: float | None  # value / limit, for a maximum or a minimum above zero
    bound: LimitBound
    limit_range: tuple[float, float] | None  # a range's ends


def exceedance(value: float, limit: AppliedLimit, water_temp_c: float | None = None) -> Exceedance:
    """A value against its limit (at the water's temperature, for GB 18918's low-temperature
    maxima)."""
    bound = limit.bound_at(water_temp_c)
    complies = bound.complies(value)
    if isinstance(bound, Maximum | Minimum):
        multiple = value / bound.value if bound.value > 0 else None
        kind = LimitBound.MAXIMUM if isinstance(bound, Maximum) else LimitBound.MINIMUM
        return Exceedance(complies, bound.value, round3(multiple), kind, None)
    assert isinstance(bound, Range)
    ends = (bound.low, bound.high)
    crossed = None if complies else bound.low if value < bound.low else bound.high
    return Exceedance(complies, crossed, None, LimitBound.RANGE, ends)


@dataclass(slots=True)
class _Judged:
    """A value against the limit that applies to it: a reading's, or a closed window's mean."""

    level: tuple[Rule, Severity]
    device: str
    code: str
    value: float
    limit: AppliedLimit
    at: datetime
    water_temp_c: float | None
    window: Window | None = None
    # A stack's: ``value`` is corrected to ``o2_reference`` from the O2 measured with it.
    o2: float | None = None
    o2_reference: float | None = None

    def complies(self) -> bool:
        return self.limit.bound_at(self.water_temp_c).complies(self.value)


def _valid_value(reading: Reading, code: str) -> float | None:
    m = reading.values.get(code)
    return m.value if m is not None and m.flag is DataFlag.NORMAL else None


def _realtime_values(
    state: SiteState, reading: Reading, ctx: Context, only_over: bool
) -> list[_Judged]:
    """A reading's values that have a real-time limit (flagged values are never judged);
    ``only_over``: those over it only. Most readings are normal with nothing to clear: then
    nothing is made for them (this is on every reading's path)."""
    if not ctx.judges_limits_of(state.site, reading.device):
        return []
    if (reference := ctx.o2_reference(state.site)) is not None:
        return _realtime_corrected(state, reading, ctx, only_over, reference)
    temp = _valid_value(reading, WATER_TEMP)
    limits, level = ctx.limits(state.site, Level.REALTIME), _LEVEL_RULES[Level.REALTIME]
    device, at = reading.device, reading.ts
    return [
        _Judged(level, device, code, m.value, limit, at, temp)
        for code, m in reading.values.items()
        if (limit := limits[code]) is not None
        and m.flag is DataFlag.NORMAL
        and not (only_over and limit.bound_at(temp).complies(m.value))
    ]


def _valid_values(reading: Reading) -> dict[str, float]:
    return {c: m.value for c, m in reading.values.items() if m.flag is DataFlag.NORMAL}


def _realtime_corrected(
    state: SiteState, reading: Reading, ctx: Context, only_over: bool, reference: float
) -> list[_Judged]:
    """A stack's real-time values corrected to its reference oxygen with the O2 measured in
    the same reading (NOx as NO2 where NO and NO2 come apart). Near air's O2 nothing is
    judged: the unit is not burning (a finding of its own, ``high_oxygen``)."""
    values = with_nox(_valid_values(reading))
    o2 = values.get(O2)
    if o2 is None:
        return []
    high = ctx.params.high_o2_pct
    limits, level = ctx.limits(state.site, Level.REALTIME), _LEVEL_RULES[Level.REALTIME]
    out = []
    for code, measured in values.items():
        limit = limits[code]
        if limit is None or (value := corrected(measured, o2, reference, high)) is None:
            continue
        if only_over and limit.bound_at(None).complies(value):
            continue
        out.append(
            _Judged(
                level, reading.device, code, value, limit, reading.ts, None, None, o2, reference
            )
        )
    return out


def _closed_means(state: SiteState, windows: Sequence[ClosedWindow], ctx: Context) -> list[_Judged]:
    """The valid hourly and daily means among closed windows that have a limit (minutes are
    for charts; an invalid window gives no verdict). Each is judged with what closed beside
    it: the water's temperature (GB 18918's cold limits), or at a stack its corrected mean,
    from the window's mean O2 (HJ 75-2017 judges the corrected hourly mean); a stack's window
    without a valid O2 mean, or with one near air's, is not judged."""
    means = [
        cw
        for cw in windows
        if cw.window.period is not Period.MINUTE and cw.window.valid and cw.window.mean is not None
    ]
    temps = {
        (cw.window.period, cw.window.start): cw.window.mean
        for cw in means
        if cw.pollutant == WATER_TEMP
    }
    out: list[_Judged] = []
    for cw in means:
        device, code, w = cw.device, cw.pollutant, cw.window
        if not ctx.judges_limits_of(state.site, device):
            continue
        by = Level.HOURLY if w.period is Period.HOUR else Level.DAILY
        limit = ctx.limit(state.site, code, by)
        if limit is None or w.mean is None:
            continue
        value, o2, reference = w.mean, None, None
        if (stack := cw.stack) is not None:
            if stack.corrected is None:
                continue
            value, o2, reference = stack.corrected, stack.o2, stack.o2_reference
        level, temp = _LEVEL_RULES[by], temps.get((w.period, w.start))
        out.append(_Judged(level, device, code, value, limit, w.end, temp, w, o2, reference))
    return out


def _finding(state: SiteState, v: _Judged, active: bool, late: bool = False) -> Finding:
    """A value against its limit, as the evidence an officer reads."""
    rule, severity = v.level
    judged, w = exceedance(v.value, v.limit, v.water_temp_c), v.window
    return new_finding(
        state,
        rule,
        severity,
        device=v.device,
        pollutant=v.code,
        active=active,
        at=v.at,
        value=v.value,
        limit=judged.limit,
        unit=unit_of(v.code, v.limit),
        multiple=judged.multiple,
        limit_source=v.limit.source,
        limit_source_zh=v.limit.source_zh,
        bound=judged.bound,
        limit_range=judged.limit_range,
        window_start=w.start if w else None,
        window_end=w.end if w else None,
        flags=dict(w.flags) if w else {},
        late=late,
        o2_reference=v.o2_reference,
        o2_measured=round(v.o2, 2) if v.o2 is not None else None,
    )


def _judge_value(state: SiteState, ctx: Context, now: datetime, v: _Judged) -> list[Finding]:
    # Compliance alone decides whether there is anything to say; the text waits for it.
    complies = v.complies()
    if complies and not state.active:
        return []  # nothing over the limit, nothing to clear

    def build(active: bool) -> Finding:
        return _finding(state, v, active)

    w = v.window
    every = w is not None  # every window over the limit is its own evidence
    during = (w.start, w.end) if w is not None else (v.at, None)
    rule = v.level[0]
    return verdict(
        state, ctx, now, not complies, v.device, v.code, rule, build, every=every, during=during
    )


def over_limit(state: SiteState, step: Step, ctx: Context) -> list[Verdict]:
    """Real-time values, closed hourly and daily means against the site's limits."""
    ev = step.event
    if not isinstance(ev, Reading):
        return []
    out: list[Verdict] = []
    # With no verdict active at the site, a value within its limit has nothing to say.
    for v in _realtime_values(state, ev, ctx, only_over=not state.active):
        out += _judge_value(state, ctx, step.now, v)
    if step.windows:
        for v in _closed_means(state, step.windows, ctx):
            out += _judge_value(state, ctx, step.now, v)
    return out


# Late data (resent after an outage, HJ 212 RF=1) is judged on its own: each value or mean
# over its limit is a finding marked late, for the record and a found-late case. Nothing is
# cleared and the site's state is not touched, so old normal data resent after an outage
# cannot clear today's exceedance.


def late_over_limit(state: SiteState, reading: Reading, ctx: Context) -> list[Finding]:
    """A late reading's real-time values over their limits: each the first of its device,
    pollutant and hour (``first_late_of_hour``), or nothing: a resend over the limit for an
    hour is one finding, as live data over it is one finding, then one every hour."""
    over = _realtime_values(state, reading, ctx, True)
    if not over:
        return []
    hour = hour_of(reading.ts)
    return [
        _finding(state, v, True, late=True)
        for v in over
        if first_late_of_hour(state, key_of(v.device, v.code, v.level[0]), hour)
    ]


def late_window_findings(
    state: SiteState, windows: Sequence[ClosedWindow], ctx: Context
) -> list[Finding]:
    """Hours and days judged again from stored data (after a resend): valid means over their
    limits."""
    return [
        _finding(state, v, True, late=True)
        for v in _closed_means(state, windows, ctx)
        if not v.complies()
    ]
