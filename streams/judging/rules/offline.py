"""Offline devices (掉线): no data for a while, or the broker's last will."""

from __future__ import annotations

from datetime import timedelta

from ecowatch.schema import (
    DeviceState,
    DeviceStatus,
    Finding,
    FindingCause,
    Reading,
    Rule,
    Severity,
)
from ecowatch.streams.judging.rules.base import (
    Context,
    DeviceTrack,
    SiteState,
    Step,
    clears,
    emit,
    new_finding,
)
from ecowatch.streams.judging.rules.verdict import Verdict


def offline(state: SiteState, step: Step, ctx: Context) -> list[Verdict]:
    """No data for ``offline_after`` (on a tick), or the device's MQTT last will (掉线)."""
    ev, rule = step.event, Rule.OFFLINE

    def back(device: str, why: FindingCause) -> list[Finding]:
        if not clears(state, device, None, rule):
            return []
        return [
            new_finding(
                state,
                rule,
                Severity.WARNING,
                device=device,
                active=False,
                at=step.now,
                cause=why,
            )
        ]

    if isinstance(ev, Reading):
        if ctx.device(state.site, ev.device) is None:
            return []
        track = state.devices.get(ev.device)
        if track is None:
            track = state.devices[ev.device] = DeviceTrack()
        if track.last_heard is None or ev.ts > track.last_heard:
            track.last_heard = ev.ts
        track.last_will = False
        return back(ev.device, FindingCause.DATA_AGAIN)
    if isinstance(ev, DeviceStatus):
        if ctx.device(state.site, ev.device) is None:
            return []
        track = state.devices.setdefault(ev.device, DeviceTrack())
        if ev.state is DeviceState.OFFLINE:
            track.last_will = True
            f = new_finding(
                state,
                rule,
                Severity.WARNING,
                device=ev.device,
                active=True,
                at=ev.at,
                cause=FindingCause.LAST_WILL,
            )
            return emit(state, f, step.now, ctx)
        if ev.state is DeviceState.ONLINE:
            track.last_will = False
            track.last_heard = max(filter(None, (track.last_heard, ev.at)))
            return back(ev.device, FindingCause.CONNECTED)
        return []  # stopped on purpose: the timeout still applies, a monitor must run
    out: list[Verdict] = []
    for device in ctx.site(state.site).devices:
        track = state.devices.get(device.id, DeviceTrack())
        heard = track.last_heard or state.started
        if heard is None or step.now - heard <= ctx.params.offline_after:
            continue
        minutes = (step.now - heard) / timedelta(minutes=1)
        f = new_finding(
            state,
            rule,
            Severity.WARNING,
            device=device.id,
            active=True,
            at=step.now,
            value=round(minutes, 1),
            unit="min",
            window_start=heard,
            window_end=step.now,
            cause=FindingCause.NO_DATA,
        )
        out += emit(state, f, step.now, ctx)
    return out
