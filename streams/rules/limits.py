"""Over the limit: real-time values, hourly and daily means against the site's limits."""

from __future__ import annotations

from datetime import datetime

from ecowatch.config.standards import AppliedLimit, Maximum, Minimum, Range
from ecowatch.pollutants import WATER_TEMP
from ecowatch.schema import (
    DataFlag,
    Finding,
    Reading,
    Rule,
    Severity,
)
from ecowatch.streams.aggregate import (
    Period,
    Window,
)
from ecowatch.streams.rules.base import (
    ClosedWindow,
    Context,
    Level,
    SiteState,
    Step,
    name_of,
    new_finding,
    num,
    round3,
    unit_of,
    verdict,
    with_unit,
)
from ecowatch.streams.rules.verdict import Verdict

_LEVEL_RULES = {
    Level.REALTIME: (Rule.REALTIME_OVER_LIMIT, Severity.WARNING, ""),
    Level.HOURLY: (Rule.HOURLY_OVER_LIMIT, Severity.WARNING, " hourly mean"),
    Level.DAILY: (Rule.DAILY_OVER_LIMIT, Severity.VIOLATION, " daily mean"),
}


def exceedance(
    value: float, limit: AppliedLimit, water_temp_c: float | None = None
) -> tuple[bool, float | None, float | None, str]:
    """(complies, the limit value crossed or judged against, the multiple, how it reads)."""
    bound = limit.bound_at(water_temp_c)
    unit = unit_of(limit.pollutant, limit)
    complies = bound.complies(value)
    if isinstance(bound, Maximum):
        multiple = value / bound.value if bound.value > 0 else None
        lim = with_unit(bound.value, unit)
        text = (
            f"within the limit {lim}"
            if complies
            else f"{multiple:.2f}× the limit {lim}"
            if multiple is not None
            else f"over the limit {lim}"
        )
        return complies, bound.value, round3(multiple), text
    if isinstance(bound, Minimum):
        multiple = value / bound.value if bound.value > 0 else None
        lim = with_unit(bound.value, unit)
        text = f"not below the minimum {lim}" if complies else f"below the minimum {lim}"
        if not complies and multiple is not None:
            text += f" ({multiple:.2f}×)"
        return complies, bound.value, round3(multiple), text
    assert isinstance(bound, Range)
    span = f"{num(bound.low)}–{num(bound.high)}"
    if complies:
        return True, None, None, f"within the range {span}"
    if value < bound.low:
        return False, bound.low, None, f"below the range {span}"
    return False, bound.high, None, f"above the range {span}"


def _judge_value(
    state: SiteState,
    ctx: Context,
    now: datetime,
    level: tuple[Rule, Severity, str],
    device: str,
    code: str,
    value: float,
    limit: AppliedLimit,
    at: datetime,
    water_temp_c: float | None,
    window: Window | None = None,
) -> list[Finding]:
    # Compliance alone decides whether there is anything to say; the text waits for it.
    complies = limit.bound_at(water_temp_c).complies(value)
    if complies and not state.active:
        return []  # nothing over the limit, nothing to clear

    def build(active: bool) -> Finding:
        return _finding(state, level, device, code, value, limit, at, water_temp_c, active, window)

    every = window is not None  # every window over the limit is its own evidence
    return verdict(state, ctx, now, not complies, device, code, level[0], build, every=every)


def _finding(
    state: SiteState,
    level: tuple[Rule, Severity, str],
    device: str,
    code: str,
    value: float,
    limit: AppliedLimit,
    at: datetime,
    water_temp_c: float | None,
    active: bool,
    window: Window | None = None,
    late: bool = False,
) -> Finding:
    """A value against its limit, as the evidence an officer reads."""
    rule, severity, label = level
    _, lim, multiple, text = exceedance(value, limit, water_temp_c)
    unit = unit_of(code, limit)
    found = "; found late, in resent data" if late else ""
    return new_finding(
        state,
        rule,
        severity,
        device=device,
        pollutant=code,
        active=active,
        at=at,
        value=value,
        limit=lim,
        unit=unit,
        multiple=multiple,
        limit_source=limit.source,
        window_start=window.start if window else None,
        window_end=window.end if window else None,
        flags=dict(window.flags) if window else {},
        late=late,
        detail=f"{name_of(code)}{label} {with_unit(value, unit)}, {text} ({limit.source}{found})",
    )


def _valid_value(reading: Reading, code: str) -> float | None:
    m = reading.values.get(code)
    return m.value if m is not None and m.flag is DataFlag.NORMAL else None


def late_over_limit(state: SiteState, reading: Reading, ctx: Context) -> list[Finding]:
    """A late reading's real-time values against the site's limits, each on its own: an
    exceedance is a finding marked ``late``. Nothing is cleared and the site's state is not
    touched, so old normal data resent after an outage cannot clear today's exceedance."""
    if not ctx.judges_limits_of(state.site, reading.device):
        return []
    temp = _valid_value(reading, WATER_TEMP)
    limits, level = ctx.limits(state.site, Level.REALTIME), _LEVEL_RULES[Level.REALTIME]
    return [
        _finding(
            state, level, reading.device, code, m.value, limit, reading.ts, temp, True, late=True
        )
        for code, m in reading.values.items()
        if (limit := limits[code]) is not None
        and m.flag is DataFlag.NORMAL
        and not limit.bound_at(temp).complies(m.value)
    ]


def late_window_findings(
    state: SiteState, windows: list[ClosedWindow], ctx: Context
) -> list[Finding]:
    """Hours and days judged again from stored data (after a resend): each valid mean over
    its limit is a finding marked ``late``, for the record and a found-late case; nothing is
    cleared, as for any late data."""
    temps = _water_temps(windows)
    out: list[Finding] = []
    for cw in windows:
        w = cw.window
        if w.period is Period.MINUTE or not w.valid or w.mean is None:
            continue
        by = Level.HOURLY if w.period is Period.HOUR else Level.DAILY
        limit = ctx.limit(state.site, cw.pollutant, by)
        temp = temps.get((w.period, w.start))
        if limit is None or limit.bound_at(temp).complies(w.mean):
            continue
        level, device, code = _LEVEL_RULES[by], cw.device, cw.pollutant
        out.append(_finding(state, level, device, code, w.mean, limit, w.end, temp, True, w, True))
    return out


def _water_temps(windows: list[ClosedWindow]) -> dict[tuple[Period, datetime], float | None]:
    """The water temperature's means by window: some limits depend on it."""
    return {
        (cw.window.period, cw.window.start): cw.window.mean
        for cw in windows
        if cw.pollutant == WATER_TEMP
    }


def over_limit(state: SiteState, step: Step, ctx: Context) -> list[Verdict]:
    """Real-time values, closed hourly and daily means against the site's limits."""
    ev = step.event
    if not isinstance(ev, Reading) or not ctx.judges_limits_of(state.site, ev.device):
        return []
    out: list[Verdict] = []
    temp = _valid_value(ev, WATER_TEMP)
    limits, level = ctx.limits(state.site, Level.REALTIME), _LEVEL_RULES[Level.REALTIME]
    for code, m in ev.values.items():
        limit = limits[code]
        if limit is None or m.flag is not DataFlag.NORMAL:
            continue  # flagged values are never judged: no verdict either way
        out += _judge_value(
            state, ctx, step.now, level, ev.device, code, m.value, limit, ev.ts, temp
        )
    if not step.windows:
        return out
    temps = _water_temps(list(step.windows))
    for cw in step.windows:
        w = cw.window
        if w.period is Period.MINUTE or not w.valid or w.mean is None:
            continue  # minutes are for charts; an invalid hour or day gives no verdict
        by = Level.HOURLY if w.period is Period.HOUR else Level.DAILY
        limit = ctx.limit(state.site, cw.pollutant, by)
        if limit is None:
            continue
        temp = temps.get((w.period, w.start))
        level = _LEVEL_RULES[by]
        out += _judge_value(
            state, ctx, step.now, level, cw.device, cw.pollutant, w.mean, limit, w.end, temp, w
        )
    return out
