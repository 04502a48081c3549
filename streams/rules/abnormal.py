"""Abnormal data: over range (T), negative, zeros, constant values (恒值), sudden jumps."""

from __future__ import annotations

from ecowatch.schema import (
    DataFlag,
    Finding,
    Reading,
    Rule,
    Severity,
)
from ecowatch.streams.rules.base import (
    Context,
    Level,
    SiteState,
    Step,
    name_of,
    new_finding,
    num,
    tracked,
    unit_of,
    verdict,
    with_unit,
)
from ecowatch.streams.rules.verdict import Verdict


def _abnormal(
    state: SiteState, reading: Reading, code: str, unit: str, rule: Rule, detail: str
) -> Finding:
    return new_finding(
        state,
        rule,
        Severity.WARNING,
        device=reading.device,
        pollutant=code,
        active=True,
        at=reading.ts,
        value=reading.values[code].value,
        unit=unit,
        detail=detail,
    )


def abnormal_values(state: SiteState, step: Step, ctx: Context) -> list[Verdict]:
    """Over range (flag T), negative, zeros for N, constant for N (恒值), sudden jumps."""
    ev = step.event
    if not isinstance(ev, Reading):
        return []
    p, now = ctx.params, step.now
    out: list[Verdict] = []
    for code, t in tracked(state, ctx, ev):
        m = ev.values[code]
        v, name = m.value, name_of(code)
        unit = unit_of(code, ctx.limit(state.site, code, Level.DAILY))
        shown = with_unit(v, unit)

        out += verdict(
            state,
            ctx,
            now,
            m.flag is DataFlag.OVER_RANGE,
            _abnormal(
                state,
                ev,
                code,
                unit,
                Rule.OVER_RANGE,
                f"{name} {shown} above the instrument's range (flag T)",
            ),
            f"{name} {shown} within the instrument's range",
        )
        if m.flag is not DataFlag.NORMAL:
            continue  # the flag explains the value: only N values are checked further
        out += verdict(
            state,
            ctx,
            now,
            v < 0,
            _abnormal(state, ev, code, unit, Rule.NEGATIVE_VALUE, f"{name} negative: {shown}"),
            f"{name} {shown}: not negative",
        )
        if code not in p.intermittent:
            t.zeros = t.zeros + 1 if v == 0 else 0
            out += verdict(
                state,
                ctx,
                now,
                t.zeros >= p.zero_count,
                _abnormal(
                    state, ev, code, unit, Rule.ZERO_VALUES, f"{name} zero {t.zeros} times in a row"
                ),
                f"{name} {shown}: not zero",
            )
            # Zeros have their own rule: a run of zeros is not also a constant value.
            if v != 0 and v == t.run_value:
                t.run_count += 1
            else:
                t.run_value, t.run_count = (v, 1) if v != 0 else (None, 0)
            out += verdict(
                state,
                ctx,
                now,
                t.run_count >= p.constant_count,
                _abnormal(
                    state,
                    ev,
                    code,
                    unit,
                    Rule.CONSTANT_VALUE,
                    f"{name} constant at {shown} for {t.run_count} readings",
                ),
                f"{name} {shown}: changing again",
            )
            prev = t.last_valid
            recent = t.last_valid_at is not None and ev.ts - t.last_valid_at <= p.jump_within
            if prev is not None and recent:
                ratio = max(v, p.jump_floor) / max(prev, p.jump_floor)
                if ratio >= p.jump_ratio or 1 / ratio >= p.jump_ratio:
                    t.jumped_at = ev.ts
                held = t.jumped_at is not None and ev.ts - t.jumped_at < p.jump_hold
                out += verdict(
                    state,
                    ctx,
                    now,
                    held,
                    _abnormal(
                        state,
                        ev,
                        code,
                        unit,
                        Rule.SUDDEN_JUMP,
                        f"{name} jumped {num(prev)} → {shown} ({ratio:.2g}×)",
                    ),
                    f"{name} {shown}: steady again",
                )
        t.last_valid, t.last_valid_at = v, ev.ts
    return out
