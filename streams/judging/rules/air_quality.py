"""Air quality: an air station's real-time AQI (HJ 633) above 100."""

from __future__ import annotations

from ecowatch.config.catalogue import SiteKind
from ecowatch.schema import (
    Finding,
    Reading,
    Rule,
    Severity,
)
from ecowatch.streams.judging.aqi import realtime_aqi
from ecowatch.streams.judging.rules.base import (
    Context,
    SiteState,
    Step,
    new_finding,
    verdict,
)
from ecowatch.streams.judging.rules.verdict import Verdict


def aqi_over_100(state: SiteState, step: Step, ctx: Context) -> list[Verdict]:
    """An air station's real-time AQI (HJ 633) above 100: a finding for the district."""
    ev, rule = step.event, Rule.AQI_OVER_100
    if not isinstance(ev, Reading) or ctx.site(state.site).kind is not SiteKind.AIR_STATION:
        return []
    result = realtime_aqi(ev, ctx.aqi_standard)
    if result is None:
        return []

    def build(active: bool) -> Finding:
        return new_finding(
            state,
            rule,
            Severity.WARNING,
            device=ev.device,
            active=active,
            at=ev.ts,
            value=float(result.aqi),
            limit=100.0,
            limit_source=result.standard,
            category=result.category,
            primary=list(result.primary),
        )

    return verdict(state, ctx, step.now, result.aqi > 100, ev.device, None, rule, build)
