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
    SiteState,
    Step,
    name_of,
    new_finding,
    num,
    tracked,
    verdict,
    with_unit,
)
from ecowatch.streams.rules.verdict import Verdict

# Each rule's text, (active, clear): formatted only for a finding emitted.
_TEXTS = {
    Rule.OVER_RANGE: (
        "{name} {shown} above the instrument's range (flag T)",
        "{name} {shown} within the instrument's range",
    ),
    Rule.NEGATIVE_VALUE: ("{name} negative: {shown}", "{name} {shown}: not negative"),
    Rule.ZERO_VALUES: ("{name} zero {n} times in a row", "{name} {shown}: not zero"),
    Rule.CONSTANT_VALUE: (
        "{name} constant at {shown} for {n} readings",
        "{name} {shown}: changing again",
    ),
    Rule.SUDDEN_JUMP: (
        "{name} jumped {prev} → {shown} ({ratio:.2g}×)",
        "{name} {shown}: steady again",
    ),
}


def _abnormal(
    active: bool,
    state: SiteState,
    reading: Reading,
    code: str,
    unit: str,
    rule: Rule,
    n: int = 0,
    prev: float = 0.0,
    ratio: float = 0.0,
) -> Finding:
    value = reading.values[code].value
    text = _TEXTS[rule][0 if active else 1].format(
        name=name_of(code), shown=with_unit(value, unit), n=n, prev=num(prev), ratio=ratio
    )
    return new_finding(
        state,
        rule,
        Severity.WARNING,
        device=reading.device,
        pollutant=code,
        active=active,
        at=reading.ts,
        value=value,
        unit=unit,
        detail=text,
    )


def abnormal_values(state: SiteState, step: Step, ctx: Context) -> list[Verdict]:
    """Over range (flag T), negative, zeros for N, constant for N (恒值), sudden jumps."""
    ev = step.event
    if not isinstance(ev, Reading):
        return []
    p, now, device, site = ctx.params, step.now, ev.device, state.site
    out: list[Verdict] = []
    for code, t in tracked(state, ctx, ev):
        m = ev.values[code]
        v = m.value
        unit = ctx.unit(site, code)

        def check(
            holds: bool,
            rule: Rule,
            n: int = 0,
            prev: float = 0.0,
            ratio: float = 0.0,
            *,
            code: str = code,
            unit: str = unit,
        ) -> list[Finding]:
            args = (state, ev, code, unit, rule, n, prev, ratio)
            return verdict(state, ctx, now, holds, device, code, rule, _abnormal, *args)

        out += check(m.flag is DataFlag.OVER_RANGE, Rule.OVER_RANGE)
        if m.flag is not DataFlag.NORMAL:
            continue  # the flag explains the value: only N values are checked further
        out += check(v < 0, Rule.NEGATIVE_VALUE)
        if code not in p.intermittent:
            t.zeros = t.zeros + 1 if v == 0 else 0
            out += check(t.zeros >= p.zero_count, Rule.ZERO_VALUES, t.zeros)
            # Zeros have their own rule: a run of zeros is not also a constant value.
            if v != 0 and v == t.run_value:
                t.run_count += 1
            else:
                t.run_value, t.run_count = (v, 1) if v != 0 else (None, 0)
            out += check(t.run_count >= p.constant_count, Rule.CONSTANT_VALUE, t.run_count)
            prev = t.last_valid
            recent = t.last_valid_at is not None and ev.ts - t.last_valid_at <= p.jump_within
            if prev is not None and recent:
                ratio = max(v, p.jump_floor) / max(prev, p.jump_floor)
                if ratio >= p.jump_ratio or 1 / ratio >= p.jump_ratio:
                    t.jumped_at = ev.ts
                held = t.jumped_at is not None and ev.ts - t.jumped_at < p.jump_hold
                out += check(held, Rule.SUDDEN_JUMP, 0, prev, ratio)
        t.last_valid, t.last_valid_at = v, ev.ts
    return out
