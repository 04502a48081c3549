"""A stack's data checked, not believed: the CEMS's own corrected values against the
platform's, and O2 near air's while the stack reports flow."""

from __future__ import annotations

from ecowatch.pollutants import GAS_FLOW, O2
from ecowatch.schema import DataFlag, Finding, Reading, Rule, Severity
from ecowatch.streams.judging.flue_gas import corrected, disagrees, still_disagrees
from ecowatch.streams.judging.rules.base import (
    Context,
    SiteState,
    Step,
    key_of,
    new_finding,
    verdict,
)
from ecowatch.streams.judging.rules.verdict import Verdict


def _o2(reading: Reading) -> float | None:
    m = reading.values.get(O2)
    return m.value if m is not None and m.flag is DataFlag.NORMAL else None


def corrected_value_mismatch(state: SiteState, step: Step, ctx: Context) -> list[Verdict]:
    """A CEMS sends its own corrected values (HJ 212 ZsRtd/ZsAvg). Where one strays from the
    platform's (the same concentration and O2, the site's reference) by more than the
    tolerance, that is a data-quality finding: a forged reference or O2 hides an exceedance."""
    ev = step.event
    if not isinstance(ev, Reading):
        return []
    reference = ctx.o2_reference(state.site)
    o2 = _o2(ev)
    if reference is None or o2 is None:
        return []
    rule, tolerance, out = Rule.CORRECTED_VALUE_MISMATCH, ctx.params.corrected_tolerance, []
    for code, m in ev.values.items():
        if m.zs is None or m.flag is not DataFlag.NORMAL:
            continue
        ours = corrected(m.value, o2, reference, ctx.params.high_o2_pct)
        if ours is None:
            continue  # near air's O2 there is nothing to correct to: high_oxygen says so

        def build(
            active: bool, code: str = code, ours: float = ours, reported: float = m.zs
        ) -> Finding:
            return new_finding(
                state,
                rule,
                Severity.WARNING,
                device=ev.device,
                pollutant=code,
                active=active,
                at=ev.ts,
                value=round(ours, 3),
                reported=reported,
                unit=ctx.unit(state.site, code),
                o2_reference=reference,
                o2_measured=o2,
            )

        key = key_of(ev.device, code, rule)
        check = still_disagrees if key in state.active else disagrees
        holds = check(m.zs, ours, tolerance)
        out += verdict(state, ctx, step.now, holds, ev.device, code, rule, build, key=key)
    return out


def high_oxygen(state: SiteState, step: Step, ctx: Context) -> list[Verdict]:
    """O2 at or above ``high_o2_pct`` while the stack reports flow: the unit is not burning
    (a start-up, a shutdown) or air is let in to dilute the gas. Its values are not judged
    against the limits meanwhile; the marks of a declared start-up say which it was."""
    ev = step.event
    if not isinstance(ev, Reading) or ctx.o2_reference(state.site) is None:
        return []
    o2, flow = _o2(ev), ev.values.get(GAS_FLOW)
    if o2 is None:
        return []
    holds = o2 >= ctx.params.high_o2_pct and flow is not None and flow.value > 0
    rule = Rule.HIGH_OXYGEN

    def build(active: bool) -> Finding:
        return new_finding(
            state,
            rule,
            Severity.WARNING,
            device=ev.device,
            pollutant=O2,
            active=active,
            at=ev.ts,
            value=o2,
            unit="%",
        )

    return verdict(state, ctx, step.now, holds, ev.device, O2, rule, build)
