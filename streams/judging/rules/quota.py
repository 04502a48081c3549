"""Card-swipe discharge meters (刷卡排污): the quota's levels, the meter's own account against
the platform's, and the valve."""

from __future__ import annotations

from ecowatch.pollutants import QUOTA_UNITS
from ecowatch.schema import (
    Finding,
    MeterStatus,
    Reading,
    Rule,
    Severity,
    ValveState,
)
from ecowatch.streams.judging.meter import mismatch
from ecowatch.streams.judging.rules.base import (
    Context,
    DeviceTrack,
    RuleParams,
    SiteState,
    Step,
    new_finding,
    round3,
    verdict,
)
from ecowatch.streams.judging.rules.verdict import Valve, ValveOrder, Verdict


def _quota_levels(p: RuleParams) -> tuple[tuple[Rule, float, Severity], ...]:
    return (
        (Rule.QUOTA_WARNING, p.quota_warning_pct, Severity.WARNING),
        (Rule.QUOTA_NEAR_EXHAUSTION, p.quota_near_pct, Severity.WARNING),
        # Discharging on needs the valve closed; going on regardless is Art. 60 territory.
        (Rule.QUOTA_EXHAUSTED, p.quota_exhausted_pct, Severity.VIOLATION),
    )


def _reached(used: float, quota: float, pct: float) -> bool:
    # used/quota ≥ pct/100, without dividing: 20,000 of 25,000 is exactly 80 %.
    return used * 100 >= quota * pct


def quota(state: SiteState, step: Step, ctx: Context) -> list[Verdict]:
    """A meter's use of each quantity of its period's quota, at 80 %, 95 % and 100 %, on the
    account the platform keeps (streams/judging/meter.py), never the meter's word alone.

    The levels are cumulative (at 100 % all three are active), each its own case; a new period
    or a recharge that brings the use below a level clears it. A zero quota is exhausted."""
    ev, meter = step.event, step.meter
    if not isinstance(ev, Reading) or meter is None:
        return []
    out: list[Verdict] = []
    for code, amount in meter.quota.items():
        used = meter.used.get(code, 0.0)
        unit = QUOTA_UNITS.get(code, "kg")
        share = used / amount if amount > 0 else None
        for rule, level, severity in _quota_levels(ctx.params):

            def build(
                active: bool,
                rule: Rule = rule,
                severity: Severity = severity,
                code: str = code,
                used: float = used,
                amount: float = amount,
                unit: str = unit,
                share: float | None = share,
            ) -> Finding:
                return new_finding(
                    state,
                    rule,
                    severity,
                    device=ev.device,
                    pollutant=code,
                    active=active,
                    at=ev.ts,
                    value=used,
                    limit=amount,
                    unit=unit,
                    multiple=round3(share),
                    period=meter.period,
                )

            holds = _reached(used, amount, level)
            out += verdict(state, ctx, step.now, holds, ev.device, code, rule, build)
    return out


def meter_mismatch(state: SiteState, step: Step, ctx: Context) -> list[Verdict]:
    """A meter whose own account flatters it against the platform's (abnormal data)."""
    ev, meter = step.event, step.meter
    if not isinstance(ev, Reading) or meter is None:
        return []
    problems = mismatch(meter, ev.meter)

    def build(active: bool) -> Finding:
        return new_finding(
            state,
            Rule.METER_MISMATCH,
            Severity.WARNING,
            device=ev.device,
            active=active,
            at=ev.ts,
            period=meter.period,
            mismatches=problems,
        )

    rule = Rule.METER_MISMATCH
    return verdict(state, ctx, step.now, bool(problems), ev.device, None, rule, build)


def quota_exhausted(meter: MeterStatus, pct: float = 100.0) -> bool:
    return any(_reached(meter.used.get(c, 0.0), q, pct) for c, q in meter.quota.items())


def valve_decision(
    meter: MeterStatus, previous: Valve | None, exhausted_pct: float = 100.0
) -> Valve | None:
    """Whether to command the meter's valve: CLOSE when a quantity of the quota is used up
    and the valve is open; OPEN when the platform closed it (``previous`` CLOSE) and the
    quota has room again (a recharge, a new period). None otherwise, also while a command is
    on its way (the valve not yet where ``previous`` sent it). A valve closed by someone else
    is not ours to open."""
    exhausted = quota_exhausted(meter, exhausted_pct)
    if exhausted and meter.valve is ValveState.OPEN and previous != Valve.CLOSE:
        return Valve.CLOSE
    if not exhausted and meter.valve is ValveState.CLOSED and previous == Valve.CLOSE:
        return Valve.OPEN
    return None


def valve(state: SiteState, step: Step, ctx: Context) -> list[Verdict]:
    """A meter's valve, commanded from the platform's account (:func:`valve_decision`)."""
    ev, meter = step.event, step.meter
    if not isinstance(ev, Reading) or meter is None:
        return []
    track = state.devices.setdefault(ev.device, DeviceTrack())
    decided = valve_decision(meter, track.valve_decision, ctx.params.quota_exhausted_pct)
    if decided is None:
        return []
    track.valve_decision = decided
    return [ValveOrder(ev.device, decided)]
