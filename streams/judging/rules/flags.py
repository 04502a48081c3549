"""Missing pollutants (缺项) and values flagged M, C or D for too long."""

from __future__ import annotations

from datetime import timedelta

from ecowatch.schema import (
    DeviceStatus,
    Finding,
    Reading,
    Rule,
    Severity,
)
from ecowatch.streams.judging.rules.base import (
    Context,
    SiteState,
    Step,
    clears,
    emit,
    key_of,
    new_finding,
    tracked,
    verdict,
)
from ecowatch.streams.judging.rules.verdict import Verdict


def missing_pollutant(state: SiteState, step: Step, ctx: Context) -> list[Verdict]:
    """A pollutant the catalogue says the device reports is absent from its record (缺项)."""
    ev = step.event
    if not isinstance(ev, Reading):
        return []
    info = ctx.device_info(state.site, ev.device)
    if info is None:
        return []
    out: list[Verdict] = []
    rule, device, values = Rule.MISSING_POLLUTANT, ev.device, ev.values
    for code in info.device.pollutants:
        if code in values and (not state.active or key_of(device, code, rule) not in state.active):
            continue  # reported, and nothing to clear: almost every reading

        def build(active: bool, code: str = code) -> Finding:
            return new_finding(
                state,
                rule,
                Severity.WARNING,
                device=device,
                pollutant=code,
                active=active,
                at=ev.ts,
            )

        out += verdict(state, ctx, step.now, code not in values, device, code, rule, build)
    return out


def flagged_too_long(state: SiteState, step: Step, ctx: Context) -> list[Verdict]:
    """A pollutant that stays in maintenance, calibration or fault beyond the allowance."""
    ev, p, rule = step.event, ctx.params, Rule.FLAGGED_TOO_LONG
    if isinstance(ev, DeviceStatus):
        return []
    out: list[Verdict] = []
    if isinstance(ev, Reading):
        for code, t in tracked(state, ctx, ev):
            flag = ev.values[code].flag
            if flag in p.long_flags:
                if t.flagged_since is None:
                    t.flagged_since = ev.ts
                t.flagged_as = flag
            elif t.flagged_since is not None:
                t.flagged_since = t.flagged_as = None
                if clears(state, ev.device, code, rule):
                    out.append(
                        new_finding(
                            state,
                            rule,
                            Severity.WARNING,
                            device=ev.device,
                            pollutant=code,
                            active=False,
                            at=ev.ts,
                            flag=flag,
                        )
                    )
    for key, t in state.tracks.items():
        if t.flagged_since is None or step.now - t.flagged_since <= p.flagged_too_long:
            continue
        device, code = key.split("|", 1)
        hours = (step.now - t.flagged_since) / timedelta(hours=1)
        f = new_finding(
            state,
            rule,
            Severity.WARNING,
            device=device,
            pollutant=code,
            active=True,
            at=step.now,
            value=round(hours, 2),
            unit="h",
            window_start=t.flagged_since,
            window_end=step.now,
            flag=t.flagged_as,
        )
        out += emit(state, f, step.now, ctx)
    return out
