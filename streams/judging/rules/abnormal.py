"""Abnormal data: over range (T), negative, zeros, constant values (恒值), sudden jumps."""

from __future__ import annotations

from datetime import datetime

from ecowatch.schema import (
    DataFlag,
    Finding,
    Reading,
    Rule,
    Severity,
)
from ecowatch.streams.judging.rules.base import (
    Context,
    SiteState,
    Step,
    new_finding,
    verdict,
)
from ecowatch.streams.judging.rules.verdict import Verdict


def _abnormal(
    active: bool,
    state: SiteState,
    ctx: Context,
    reading: Reading,
    code: str,
    rule: Rule,
    n: int = 0,
    prev: float = 0.0,
    ratio: float = 0.0,
) -> Finding:
    # Only what the rule measured: readings in a row, or the jump from the value before.
    run = {"count": n} if active and n else {}
    jump = {"previous": prev, "ratio": ratio} if active and rule is Rule.SUDDEN_JUMP else {}
    return new_finding(
        state,
        rule,
        Severity.WARNING,
        device=reading.device,
        pollutant=code,
        active=active,
        at=reading.ts,
        value=reading.values[code].value,
        unit=ctx.unit(state.site, code),
        **run,
        **jump,
    )


def _check(
    state: SiteState,
    ctx: Context,
    now: datetime,
    reading: Reading,
    code: str,
    key: str,
    holds: bool,
    rule: Rule,
    n: int = 0,
    prev: float = 0.0,
    ratio: float = 0.0,
) -> list[Finding]:
    args = (state, ctx, reading, code, rule, n, prev, ratio)
    return verdict(state, ctx, now, holds, reading.device, code, rule, _abnormal, *args, key=key)


_RULES = (
    Rule.OVER_RANGE,
    Rule.NEGATIVE_VALUE,
    Rule.ZERO_VALUES,
    Rule.CONSTANT_VALUE,
    Rule.SUDDEN_JUMP,
)


def abnormal_values(state: SiteState, step: Step, ctx: Context) -> list[Verdict]:
    """Over range (flag T), negative, zeros for N, constant for N (恒值), sudden jumps.

    A check says something only when its condition holds or its verdict is active (to clear
    it): a normal value costs its comparisons, and no finding is made."""
    ev = step.event
    if not isinstance(ev, Reading):
        return []
    info = ctx.device_info(state.site, ev.device)
    if info is None:
        return []
    p, now, active, values, tracks = ctx.params, step.now, state.active, ev.values, state.tracks
    out: list[Verdict] = []
    for code, key in info.pollutants:
        m = values.get(code)
        t = tracks.get(key)
        if m is None or t is None:
            continue
        over_k, negative_k, zero_k, constant_k, jump_k = ctx.keys(key, "abnormal", _RULES)
        v, flag = m.value, m.flag
        holds = flag is DataFlag.OVER_RANGE
        if holds or over_k in active:
            out += _check(state, ctx, now, ev, code, over_k, holds, Rule.OVER_RANGE)
        if flag is not DataFlag.NORMAL:
            continue  # the flag explains the value: only N values are checked further
        if v < 0 or negative_k in active:
            out += _check(state, ctx, now, ev, code, negative_k, v < 0, Rule.NEGATIVE_VALUE)
        if code not in p.intermittent:
            t.zeros = zeros = t.zeros + 1 if v == 0 else 0
            holds = zeros >= p.zero_count
            if holds or zero_k in active:
                out += _check(state, ctx, now, ev, code, zero_k, holds, Rule.ZERO_VALUES, zeros)
            # Zeros have their own rule: a run of zeros is not also a constant value.
            if v != 0 and v == t.run_value:
                t.run_count += 1
            else:
                t.run_value, t.run_count = (v, 1) if v != 0 else (None, 0)
            run = t.run_count
            holds = run >= p.constant_count
            if holds or constant_k in active:
                out += _check(
                    state, ctx, now, ev, code, constant_k, holds, Rule.CONSTANT_VALUE, run
                )
            prev = t.last_valid
            recent = t.last_valid_at is not None and ev.ts - t.last_valid_at <= p.jump_within
            if prev is not None and recent:
                ratio = max(v, p.jump_floor) / max(prev, p.jump_floor)
                if ratio >= p.jump_ratio or 1 / ratio >= p.jump_ratio:
                    t.jumped_at = ev.ts
                held = t.jumped_at is not None and ev.ts - t.jumped_at < p.jump_hold
                if held or jump_k in active:
                    jump = (Rule.SUDDEN_JUMP, 0, prev, ratio)
                    out += _check(state, ctx, now, ev, code, jump_k, held, *jump)
        t.last_valid, t.last_valid_at = v, ev.ts
    return out
