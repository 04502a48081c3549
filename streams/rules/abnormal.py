"""Abnormal data: over range (T), negative, zeros, constant values (恒值), sudden jumps."""

from __future__ import annotations

from collections.abc import Callable

from ecowatch.schema import (
    DataFlag,
    Finding,
    Reading,
    Rule,
    Severity,
)
from ecowatch.streams.rules.base import (
    Build,
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

Detail = Callable[[bool], str]  # a finding's text, active or clear
Shown = Callable[[], str]  # the value with its unit


def _abnormal(
    state: SiteState, reading: Reading, code: str, unit: str, rule: Rule, detail: Detail
) -> Build:
    def build(active: bool) -> Finding:
        return new_finding(
            state,
            rule,
            Severity.WARNING,
            device=reading.device,
            pollutant=code,
            active=active,
            at=reading.ts,
            value=reading.values[code].value,
            unit=unit,
            detail=detail(active),
        )

    return build


def abnormal_values(state: SiteState, step: Step, ctx: Context) -> list[Verdict]:
    """Over range (flag T), negative, zeros for N, constant for N (恒值), sudden jumps."""
    ev = step.event
    if not isinstance(ev, Reading):
        return []
    p, now, device = ctx.params, step.now, ev.device
    out: list[Verdict] = []
    for code, t in tracked(state, ctx, ev):
        m = ev.values[code]
        v, name = m.value, name_of(code)
        unit = ctx.unit(state.site, code)

        # The texts are made only for a finding emitted: most readings emit none.
        def shown(v: float = v, unit: str = unit) -> str:
            return with_unit(v, unit)

        def over(active: bool, name: str = name, shown: Shown = shown) -> str:
            if active:
                return f"{name} {shown()} above the instrument's range (flag T)"
            return f"{name} {shown()} within the instrument's range"

        rule = Rule.OVER_RANGE
        holds = m.flag is DataFlag.OVER_RANGE
        build = _abnormal(state, ev, code, unit, rule, over)
        out += verdict(state, ctx, now, holds, device, code, rule, build)
        if m.flag is not DataFlag.NORMAL:
            continue  # the flag explains the value: only N values are checked further

        def negative(active: bool, name: str = name, shown: Shown = shown) -> str:
            return f"{name} negative: {shown()}" if active else f"{name} {shown()}: not negative"

        rule = Rule.NEGATIVE_VALUE
        build = _abnormal(state, ev, code, unit, rule, negative)
        out += verdict(state, ctx, now, v < 0, device, code, rule, build)
        if code not in p.intermittent:
            t.zeros = t.zeros + 1 if v == 0 else 0
            zeros = t.zeros

            def zero(active: bool, name: str = name, shown: Shown = shown, n: int = zeros) -> str:
                return (
                    f"{name} zero {n} times in a row" if active else f"{name} {shown()}: not zero"
                )

            rule = Rule.ZERO_VALUES
            build = _abnormal(state, ev, code, unit, rule, zero)
            out += verdict(state, ctx, now, zeros >= p.zero_count, device, code, rule, build)
            # Zeros have their own rule: a run of zeros is not also a constant value.
            if v != 0 and v == t.run_value:
                t.run_count += 1
            else:
                t.run_value, t.run_count = (v, 1) if v != 0 else (None, 0)
            run = t.run_count

            def constant(active: bool, name: str = name, shown: Shown = shown, n: int = run) -> str:
                if active:
                    return f"{name} constant at {shown()} for {n} readings"
                return f"{name} {shown()}: changing again"

            rule = Rule.CONSTANT_VALUE
            build = _abnormal(state, ev, code, unit, rule, constant)
            out += verdict(state, ctx, now, run >= p.constant_count, device, code, rule, build)
            prev = t.last_valid
            recent = t.last_valid_at is not None and ev.ts - t.last_valid_at <= p.jump_within
            if prev is not None and recent:
                ratio = max(v, p.jump_floor) / max(prev, p.jump_floor)
                if ratio >= p.jump_ratio or 1 / ratio >= p.jump_ratio:
                    t.jumped_at = ev.ts
                held = t.jumped_at is not None and ev.ts - t.jumped_at < p.jump_hold

                def jump(
                    active: bool,
                    name: str = name,
                    shown: Shown = shown,
                    prev: float = prev,
                    ratio: float = ratio,
                ) -> str:
                    if active:
                        return f"{name} jumped {num(prev)} → {shown()} ({ratio:.2g}×)"
                    return f"{name} {shown()}: steady again"

                rule = Rule.SUDDEN_JUMP
                build = _abnormal(state, ev, code, unit, rule, jump)
                out += verdict(state, ctx, now, held, device, code, rule, build)
        t.last_valid, t.last_valid_at = v, ev.ts
    return out
