"""Detection (发现): the rules that turn a site's readings into findings, as pure functions.

The Faust agent makes one call per event::

    judge = SiteJudge(catalogue, RuleParams(), aqi_standard="2026")
    judged = judge.judge(table.get(site), event)  # event: Reading | DeviceStatus | SiteTick
    table[site] = judged.state  # SiteState: pydantic, JSON round-trip, bounded in size
    # publish judged.findings; store judged.windows; command judged.valve for the meter

``now`` is the event's own time (the reading's ``ts``, the status's ``at``, the tick's
``now``): the judge never reads a clock, so a replay judges last month exactly as it happened.

Every rule has one shape, :class:`DetectionRule`: ``rule(state, step, ctx) -> findings``. The
judge copies the state once and hands the copy to each rule in turn, which updates its own
part; so ``judge`` is pure while the rules stay simple. A rule says what it sees through
``_verdict`` (or ``_raise`` when the condition holds, ``_clears`` when it does not), which
remember which keys (device, pollutant, rule) are active, so a clear (``active=False``) is
emitted once, after an active verdict, and never for every normal reading. An active verdict
is emitted when it starts, then again every ``refresh_every`` (fresh evidence for the case),
except by the window rules (hourly, daily): every window over the limit is its own evidence.

Only values flagged N are judged against a limit or checked for abnormal values; the other
flags are counted in the windows (``Finding.flags``). A flag T raises OVER_RANGE; a device that
stays in M, C or D longer than ``flagged_too_long`` raises FLAGGED_TOO_LONG.

Over the limit. Real-time values and hourly means are reminders (WARNING), the daily mean is
the legal judgement (VIOLATION). The limit comes from ``Catalogue.limit_for``: the 1-hour
limit where the site's standard sets one (GB 3095); the wastewater standards set only a daily
limit, which then also serves as the yardstick of the real-time value and the hourly mean (as
the Hefei chain reads an hourly anomaly). An air pollutant with only a 24 h limit (PM2.5,
PM10) is not judged per reading or hour: the AQI rule covers it; O3's 8-hour basis is not
judged here. Concentrations of a discharge meter come from the outfall's analysers, so they
are judged on the site's monitor only (a site with no monitor: on the meter).

The exceedance multiple is value / limit (81.5 against 50: 1.63, "1.63× the limit"); for a
minimum (DO) also value / limit, below 1 (1.5 against 2: 0.75); for a range (pH) none — pH is
logarithmic — and ``limit`` is the end that was crossed. A value exactly at the limit complies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Literal, Protocol

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from ecowatch.config.catalogue import Catalogue, Device, DeviceModel, Site, SiteKind
from ecowatch.config.standards import AppliedLimit, Basis, Maximum, Minimum, Range
from ecowatch.ingest.contract import ReadingLedger, Repeat, take_once
from ecowatch.pollutants import (
    FLOW,
    QUOTA_UNITS,
    SHORT_NAMES,
    TIME_WEIGHTED,
    UNITS,
    WATER_TEMP,
)
from ecowatch.schema import (
    DataFlag,
    DeviceState,
    DeviceStatus,
    Finding,
    Identifier,
    MeterStatus,
    Reading,
    Rule,
    Severity,
    ValveState,
)
from ecowatch.streams.aggregate import (
    CHINA,
    Period,
    Series,
    Weighting,
    Window,
    WindowParams,
    add_in_place,
)
from ecowatch.streams.meter import MeterAccount, account, mismatch, platform_status
from ecowatch.streams.points import realtime_aqi

ValveDecision = Literal["close", "open"]


class RuleParams(WindowParams):
    """Every threshold of the rules, with defaults; times as durations so that tests and demos
    can compress hours into seconds. Also the window rules of :class:`WindowParams`."""

    offline_after: timedelta = timedelta(minutes=30)  # 掉线: no regulation fixes it
    constant_count: int = Field(default=12, ge=2)  # 恒值: the same non-zero value N times
    zero_count: int = Field(default=6, ge=1)  # zero N times in a row
    jump_ratio: float = Field(default=5.0, gt=1)  # 陡升陡降: new/previous or previous/new
    jump_floor: float = Field(default=1.0, gt=0)  # smaller values count as this in the ratio
    jump_within: timedelta = timedelta(minutes=30)  # an older previous value is no reference
    # A jump stays active until the values have been steady this long, so that a sensor
    # swinging up and down keeps one case instead of one dismissed spike per swing.
    jump_hold: timedelta = timedelta(minutes=15)
    flagged_too_long: timedelta = timedelta(hours=4)
    long_flags: frozenset[DataFlag] = frozenset(
        {DataFlag.MAINTENANCE, DataFlag.CALIBRATION, DataFlag.FAULT}
    )
    # Legitimately zero or switching abruptly (the outlet opens and shuts): no zero, constant
    # or jump checks.
    intermittent: frozenset[str] = frozenset({FLOW})
    quota_warning_pct: float = 80.0
    quota_near_pct: float = 95.0
    quota_exhausted_pct: float = 100.0
    refresh_every: timedelta = timedelta(hours=1)


# -- state -------------------------------------------------------------------------------------


class Track(BaseModel):
    """One device's pollutant: its windows and what the abnormal-data rules remember."""

    series: Series
    last_valid: float | None = None  # the previous N value, for jumps
    last_valid_at: AwareDatetime | None = None
    jumped_at: AwareDatetime | None = None
    run_value: float | None = None  # the current run of equal N values (恒值)
    run_count: int = 0
    zeros: int = 0
    flagged_since: AwareDatetime | None = None  # first of an unbroken run of M / C / D
    flagged_as: DataFlag | None = None


class DeviceTrack(BaseModel):
    last_heard: AwareDatetime | None = None  # last reading or "online" status
    last_will: bool = False  # the broker published its last will: offline
    valve_decision: ValveDecision | None = None  # the last valve command decided for it
    account: MeterAccount | None = None  # a discharge meter's, kept by the platform


class Mark(BaseModel):
    """An active verdict: since when, and when it was last emitted."""

    since: AwareDatetime
    emitted: AwareDatetime


class SiteState(BaseModel):
    """A site's detection state (a Faust table value): bounded by the catalogue — one track
    per device and pollutant, one mark per active (device, pollutant, rule)."""

    model_config = ConfigDict(extra="forbid")

    site: Identifier
    started: AwareDatetime | None = None  # the first event seen: offline counts from here
    tracks: dict[str, Track] = Field(default_factory=dict)  # "device|pollutant"
    devices: dict[str, DeviceTrack] = Field(default_factory=dict)
    active: dict[str, Mark] = Field(default_factory=dict)  # "device|pollutant|rule"
    # The times of each device's readings taken (the ingest contract's one reading per device
    # and time), beside the state they fed, so that both are written in one changelog record.
    readings: dict[str, ReadingLedger] = Field(default_factory=dict)


# -- events, context, results ------------------------------------------------------------------


class SiteTick(BaseModel):
    """Time passes at a site with no data: offline and flagged-too-long are checked."""

    model_config = ConfigDict(frozen=True)

    site: Identifier
    now: AwareDatetime


Event = Reading | DeviceStatus | SiteTick


@dataclass(frozen=True)
class ClosedWindow:
    """An hour or day of one device's pollutant, closed by a reading (for the store too)."""

    device: str
    pollutant: str
    window: Window


@dataclass(frozen=True)
class Step:
    """What a rule sees: the event, its time, and the windows this event closed."""

    event: Event
    now: datetime
    windows: tuple[ClosedWindow, ...] = ()
    meter: MeterStatus | None = None  # a discharge meter's account, as the platform keeps it


class Level(StrEnum):
    REALTIME = "realtime"
    HOURLY = "hourly"
    DAILY = "daily"


@dataclass
class Context:
    """The catalogue and parameters, with the site's limits looked up once."""

    catalogue: Catalogue
    params: RuleParams = field(default_factory=RuleParams)
    aqi_standard: str = "2026"
    _limits: dict[tuple[str, str, Level], AppliedLimit | None] = field(
        default_factory=dict, repr=False
    )

    def site(self, site_id: str) -> Site:
        return self.catalogue.sites[site_id]

    def device(self, site_id: str, device_id: str) -> Device | None:
        entry = self.catalogue.device(device_id)
        return entry.device if entry is not None and entry.site.id == site_id else None

    def limit(self, site_id: str, pollutant: str, level: Level) -> AppliedLimit | None:
        key = (site_id, pollutant, level)
        if key not in self._limits:
            self._limits[key] = self._lookup(site_id, pollutant, level)
        return self._limits[key]

    def _lookup(self, site_id: str, pollutant: str, level: Level) -> AppliedLimit | None:
        daily = self.catalogue.limit_for(site_id, pollutant, Basis.DAILY)
        if level is Level.DAILY:
            return daily
        hourly = self.catalogue.limit_for(site_id, pollutant, Basis.HOURLY)
        if hourly is not None or self.site(site_id).kind is SiteKind.AIR_STATION:
            return hourly
        return daily  # wastewater: the daily limit is the only yardstick

    def judges_limits_of(self, site_id: str, device_id: str) -> bool:
        devices = self.site(site_id).devices
        monitors = [d.id for d in devices if d.model is not DeviceModel.DISCHARGE_METER]
        return device_id in monitors if monitors else True


@dataclass(frozen=True)
class Judged:
    state: SiteState
    findings: list[Finding]
    windows: list[ClosedWindow]
    valve: ValveDecision | None = None  # for the reading's meter: the caller sends it
    # The reading was a repeat of one already taken: not judged (nor to be stored).
    repeat: Repeat | None = None
    meter: MeterStatus | None = None  # the meter's account as the platform keeps it


class DetectionRule(Protocol):
    def __call__(self, state: SiteState, step: Step, ctx: Context) -> list[Finding]: ...


# -- emitting: active once (then refreshed), clear once ----------------------------------------


def _key(device: str | None, pollutant: str | None, rule: Rule) -> str:
    return f"{device or '-'}|{pollutant or '-'}|{rule.value}"


def _raise(
    state: SiteState, finding: Finding, now: datetime, ctx: Context, every: bool = False
) -> list[Finding]:
    key = _key(finding.device, finding.pollutant, finding.rule)
    mark = state.active.get(key)
    if mark is None:
        state.active[key] = Mark(since=finding.at, emitted=now)
        return [finding]
    if every or now - mark.emitted >= ctx.params.refresh_every:
        mark.emitted = now
        return [finding]
    return []


def _clears(state: SiteState, device: str | None, pollutant: str | None, rule: Rule) -> bool:
    """Whether a normal verdict is news: the key was active, and no other device of the site
    still holds the same case (one case per site + pollutant + rule)."""
    if state.active.pop(_key(device, pollutant, rule), None) is None:
        return False
    suffix = f"|{pollutant or '-'}|{rule.value}"
    return not any(key.endswith(suffix) for key in state.active)


def _finding(state: SiteState, rule: Rule, severity: Severity, **fields: object) -> Finding:
    return Finding(site=state.site, rule=rule, severity=severity, **fields)  # type: ignore[arg-type]


def _name(code: str) -> str:
    return SHORT_NAMES.get(code, code)


def _num(x: float) -> str:
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.4g}"


def _unit(code: str, limit: AppliedLimit | None = None) -> str:
    if limit is not None:
        return "" if limit.unit == "dimensionless" else limit.unit
    return UNITS.get(code, "")


def _with_unit(x: float, unit: str) -> str:
    return f"{_num(x)} {unit}" if unit else _num(x)


# -- over the limit ----------------------------------------------------------------------------

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
    unit = _unit(limit.pollutant, limit)
    complies = bound.complies(value)
    if isinstance(bound, Maximum):
        multiple = value / bound.value if bound.value > 0 else None
        lim = _with_unit(bound.value, unit)
        text = (
            f"within the limit {lim}"
            if complies
            else f"{multiple:.2f}× the limit {lim}"
            if multiple is not None
            else f"over the limit {lim}"
        )
        return complies, bound.value, _round(multiple), text
    if isinstance(bound, Minimum):
        multiple = value / bound.value if bound.value > 0 else None
        lim = _with_unit(bound.value, unit)
        text = f"not below the minimum {lim}" if complies else f"below the minimum {lim}"
        if not complies and multiple is not None:
            text += f" ({multiple:.2f}×)"
        return complies, bound.value, _round(multiple), text
    assert isinstance(bound, Range)
    span = f"{_num(bound.low)}–{_num(bound.high)}"
    if complies:
        return True, None, None, f"within the range {span}"
    if value < bound.low:
        return False, bound.low, None, f"below the range {span}"
    return False, bound.high, None, f"above the range {span}"


def _round(x: float | None) -> float | None:
    return round(x, 3) if x is not None else None


def _judge_value(
    state: SiteState,
    ctx: Context,
    now: datetime,
    level: Level,
    device: str,
    code: str,
    value: float,
    limit: AppliedLimit,
    at: datetime,
    water_temp_c: float | None,
    window: Window | None = None,
) -> list[Finding]:
    rule, severity, label = _LEVEL_RULES[level]
    complies, lim, multiple, text = exceedance(value, limit, water_temp_c)
    unit = _unit(code, limit)

    def build(active: bool) -> Finding:
        return _finding(
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
            detail=f"{_name(code)}{label} {_with_unit(value, unit)}, {text} ({limit.source})",
        )

    if complies:
        return [build(False)] if _clears(state, device, code, rule) else []
    return _raise(state, build(True), now, ctx, every=window is not None)


def _valid_value(reading: Reading, code: str) -> float | None:
    m = reading.values.get(code)
    return m.value if m is not None and m.flag is DataFlag.NORMAL else None


def over_limit(state: SiteState, step: Step, ctx: Context) -> list[Finding]:
    """Real-time values, closed hourly and daily means against the site's limits."""
    ev = step.event
    if not isinstance(ev, Reading) or not ctx.judges_limits_of(state.site, ev.device):
        return []
    out: list[Finding] = []
    temp = _valid_value(ev, WATER_TEMP)
    for code, m in ev.values.items():
        limit = ctx.limit(state.site, code, Level.REALTIME)
        if limit is None or m.flag is not DataFlag.NORMAL:
            continue  # flagged values are never judged: no verdict either way
        out += _judge_value(
            state, ctx, step.now, Level.REALTIME, ev.device, code, m.value, limit, ev.ts, temp
        )
    temps = {
        (cw.window.period, cw.window.start): cw.window.mean
        for cw in step.windows
        if cw.pollutant == WATER_TEMP
    }
    for cw in step.windows:
        w = cw.window
        if w.period is Period.MINUTE or not w.valid or w.mean is None:
            continue  # minutes are for charts; an invalid hour or day gives no verdict
        level = Level.HOURLY if w.period is Period.HOUR else Level.DAILY
        limit = ctx.limit(state.site, cw.pollutant, level)
        if limit is None:
            continue
        temp = temps.get((w.period, w.start))
        out += _judge_value(
            state, ctx, step.now, level, cw.device, cw.pollutant, w.mean, limit, w.end, temp, w
        )
    return out


# -- abnormal data -----------------------------------------------------------------------------


def _tracked(state: SiteState, ctx: Context, reading: Reading) -> list[tuple[str, Track]]:
    """The reading's pollutants that the catalogue says its device reports, with their tracks."""
    device = ctx.device(state.site, reading.device)
    if device is None:
        return []
    return [
        (code, state.tracks[f"{reading.device}|{code}"])
        for code in device.pollutants
        if code in reading.values and f"{reading.device}|{code}" in state.tracks
    ]


def _verdict(
    state: SiteState, ctx: Context, now: datetime, holds: bool, finding: Finding, normal: str
) -> list[Finding]:
    """A condition's verdict: ``finding`` (active) when it holds, else its clear reading
    ``normal`` if the key was active."""
    if holds:
        return _raise(state, finding, now, ctx)
    if _clears(state, finding.device, finding.pollutant, finding.rule):
        return [finding.model_copy(update={"active": False, "detail": normal})]
    return []


def _abnormal(
    state: SiteState, reading: Reading, code: str, unit: str, rule: Rule, detail: str
) -> Finding:
    return _finding(
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


def abnormal_values(state: SiteState, step: Step, ctx: Context) -> list[Finding]:
    """Over range (flag T), negative, zeros for N, constant for N (恒值), sudden jumps."""
    ev = step.event
    if not isinstance(ev, Reading):
        return []
    p, now = ctx.params, step.now
    out: list[Finding] = []
    for code, t in _tracked(state, ctx, ev):
        m = ev.values[code]
        v, name = m.value, _name(code)
        unit = _unit(code, ctx.limit(state.site, code, Level.DAILY))
        shown = _with_unit(v, unit)

        out += _verdict(
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
        out += _verdict(
            state,
            ctx,
            now,
            v < 0,
            _abnormal(state, ev, code, unit, Rule.NEGATIVE_VALUE, f"{name} negative: {shown}"),
            f"{name} {shown}: not negative",
        )
        if code not in p.intermittent:
            t.zeros = t.zeros + 1 if v == 0 else 0
            out += _verdict(
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
            out += _verdict(
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
                out += _verdict(
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
                        f"{name} jumped {_num(prev)} → {shown} ({ratio:.2g}×)",
                    ),
                    f"{name} {shown}: steady again",
                )
        t.last_valid, t.last_valid_at = v, ev.ts
    return out


def missing_pollutant(state: SiteState, step: Step, ctx: Context) -> list[Finding]:
    """A pollutant the catalogue says the device reports is absent from its record (缺项)."""
    ev = step.event
    if not isinstance(ev, Reading):
        return []
    device = ctx.device(state.site, ev.device)
    if device is None:
        return []
    out: list[Finding] = []
    for code in device.pollutants:
        f = _finding(
            state,
            Rule.MISSING_POLLUTANT,
            Severity.WARNING,
            device=ev.device,
            pollutant=code,
            active=True,
            at=ev.ts,
            detail=f"{_name(code)} missing from device {ev.device}'s record",
        )
        out += _verdict(
            state, ctx, step.now, code not in ev.values, f, f"{_name(code)} reported again"
        )
    return out


def flagged_too_long(state: SiteState, step: Step, ctx: Context) -> list[Finding]:
    """A pollutant that stays in maintenance, calibration or fault beyond the allowance."""
    ev, p, rule = step.event, ctx.params, Rule.FLAGGED_TOO_LONG
    if isinstance(ev, DeviceStatus):
        return []
    out: list[Finding] = []
    if isinstance(ev, Reading):
        for code, t in _tracked(state, ctx, ev):
            flag = ev.values[code].flag
            if flag in p.long_flags:
                if t.flagged_since is None:
                    t.flagged_since = ev.ts
                t.flagged_as = flag
            elif t.flagged_since is not None:
                t.flagged_since = t.flagged_as = None
                if _clears(state, ev.device, code, rule):
                    out.append(
                        _finding(
                            state,
                            rule,
                            Severity.WARNING,
                            device=ev.device,
                            pollutant=code,
                            active=False,
                            at=ev.ts,
                            detail=f"{_name(code)} flagged {flag} again",
                        )
                    )
    for key, t in state.tracks.items():
        if t.flagged_since is None or step.now - t.flagged_since <= p.flagged_too_long:
            continue
        device, code = key.split("|", 1)
        hours = (step.now - t.flagged_since) / timedelta(hours=1)
        since = t.flagged_since.astimezone(CHINA).strftime("%m-%d %H:%M")
        f = _finding(
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
            detail=f"{_name(code)} flagged {t.flagged_as} since {since} ({hours:.1f} h)",
        )
        out += _raise(state, f, step.now, ctx)
    return out


# -- offline -----------------------------------------------------------------------------------


def offline(state: SiteState, step: Step, ctx: Context) -> list[Finding]:
    """No data for ``offline_after`` (on a tick), or the device's MQTT last will (掉线)."""
    ev, rule = step.event, Rule.OFFLINE

    def back(device: str, why: str) -> list[Finding]:
        if not _clears(state, device, None, rule):
            return []
        detail = f"device {device} back online: {why}"
        return [
            _finding(
                state,
                rule,
                Severity.WARNING,
                device=device,
                active=False,
                at=step.now,
                detail=detail,
            )
        ]

    if isinstance(ev, Reading):
        if ctx.device(state.site, ev.device) is None:
            return []
        track = state.devices.setdefault(ev.device, DeviceTrack())
        track.last_heard = max(filter(None, (track.last_heard, ev.ts)))
        track.last_will = False
        return back(ev.device, "data again")
    if isinstance(ev, DeviceStatus):
        if ctx.device(state.site, ev.device) is None:
            return []
        track = state.devices.setdefault(ev.device, DeviceTrack())
        if ev.state is DeviceState.OFFLINE:
            track.last_will = True
            f = _finding(
                state,
                rule,
                Severity.WARNING,
                device=ev.device,
                active=True,
                at=ev.at,
                detail=f"device {ev.device} offline (last will)",
            )
            return _raise(state, f, step.now, ctx)
        if ev.state is DeviceState.ONLINE:
            track.last_will = False
            track.last_heard = max(filter(None, (track.last_heard, ev.at)))
            return back(ev.device, "connected")
        return []  # stopped on purpose: the timeout still applies, a monitor must run
    out: list[Finding] = []
    for device in ctx.site(state.site).devices:
        track = state.devices.get(device.id, DeviceTrack())
        heard = track.last_heard or state.started
        if heard is None or step.now - heard <= ctx.params.offline_after:
            continue
        minutes = (step.now - heard) / timedelta(minutes=1)
        f = _finding(
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
            detail=f"device {device.id}: no data for {minutes:.0f} min",
        )
        out += _raise(state, f, step.now, ctx)
    return out


# -- quota (刷卡排污) ---------------------------------------------------------------------------


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


def quota(state: SiteState, step: Step, ctx: Context) -> list[Finding]:
    """A meter's use of each quantity of its period's quota, at 80 %, 95 % and 100 %, on the
    account the platform keeps (streams/meter.py), never the meter's word alone.

    The levels are cumulative (at 100 % all three are active), each its own case; a new period
    or a recharge that brings the use below a level clears it. A zero quota is exhausted."""
    ev, meter = step.event, step.meter
    if not isinstance(ev, Reading) or meter is None:
        return []
    out: list[Finding] = []
    for code, amount in meter.quota.items():
        used = meter.used.get(code, 0.0)
        unit = QUOTA_UNITS.get(code, "kg")
        share = used / amount if amount > 0 else None
        pct = f"{share * 100:.1f} %" if share is not None else "no quota"
        text = (
            f"{_name(code)} used {_num(used)} of {_num(amount)} {unit} ({pct}), "
            f"period {meter.period}"
        )
        for rule, level, severity in _quota_levels(ctx.params):
            f = _finding(
                state,
                rule,
                severity,
                device=ev.device,
                pollutant=code,
                active=True,
                at=ev.ts,
                value=used,
                limit=amount,
                unit=unit,
                multiple=_round(share),
                detail=text,
            )
            out += _verdict(state, ctx, step.now, _reached(used, amount, level), f, text)
    return out


def meter_mismatch(state: SiteState, step: Step, ctx: Context) -> list[Finding]:
    """A meter whose own account flatters it against the platform's (abnormal data)."""
    ev, meter = step.event, step.meter
    if not isinstance(ev, Reading) or meter is None:
        return []
    problems = mismatch(meter, ev.meter)
    detail = "; ".join(problems) or "the meter's account agrees with the platform's"
    f = _finding(
        state,
        Rule.METER_MISMATCH,
        Severity.WARNING,
        device=ev.device,
        active=True,
        at=ev.ts,
        detail=f"meter account: {detail}"[:500],
    )
    return _verdict(state, ctx, step.now, bool(problems), f, detail)


def quota_exhausted(meter: MeterStatus, pct: float = 100.0) -> bool:
    return any(_reached(meter.used.get(c, 0.0), q, pct) for c, q in meter.quota.items())


def valve_decision(
    meter: MeterStatus, previous: ValveDecision | None, exhausted_pct: float = 100.0
) -> ValveDecision | None:
    """Whether to command the meter's valve: "close" when a quantity of the quota is used up
    and the valve is open; "open" when the platform closed it (``previous`` "close") and the
    quota has room again (a recharge, a new period). None otherwise, also while a command is
    on its way (the valve not yet where ``previous`` sent it). A valve closed by someone else
    is not ours to open."""
    exhausted = quota_exhausted(meter, exhausted_pct)
    if exhausted and meter.valve is ValveState.OPEN and previous != "close":
        return "close"
    if not exhausted and meter.valve is ValveState.CLOSED and previous == "close":
        return "open"
    return None


# -- air quality -------------------------------------------------------------------------------


def aqi_over_100(state: SiteState, step: Step, ctx: Context) -> list[Finding]:
    """An air station's real-time AQI (HJ 633) above 100: a finding for the district."""
    ev, rule = step.event, Rule.AQI_OVER_100
    if not isinstance(ev, Reading) or ctx.site(state.site).kind is not SiteKind.AIR_STATION:
        return []
    result = realtime_aqi(ev, ctx.aqi_standard)
    if result is None:
        return []
    primary = "/".join(result.primary) or "-"
    detail = f"AQI {result.aqi} ({result.category.label}), primary {primary}"
    f = _finding(
        state,
        rule,
        Severity.WARNING,
        device=ev.device,
        active=True,
        at=ev.ts,
        value=float(result.aqi),
        limit=100.0,
        limit_source=result.standard,
        detail=detail,
    )
    return _verdict(state, ctx, step.now, result.aqi > 100, f, detail)


RULES: tuple[DetectionRule, ...] = (
    over_limit,
    abnormal_values,
    missing_pollutant,
    flagged_too_long,
    offline,
    quota,
    meter_mismatch,
    aqi_over_100,
)


# -- the judge ---------------------------------------------------------------------------------


class SiteJudge:
    """Every rule over one site's events: what the Faust agent calls, once per event."""

    def __init__(
        self,
        catalogue: Catalogue,
        params: RuleParams | None = None,
        aqi_standard: str = "2026",
        rules: tuple[DetectionRule, ...] = RULES,
    ) -> None:
        self.ctx = Context(catalogue, params or RuleParams(), aqi_standard)
        self.rules = rules

    def initial(self, site: str) -> SiteState:
        return SiteState(site=site)

    def judge(self, state: SiteState | None, event: Event) -> Judged:
        """The new state, the findings, the closed windows and (for a meter) the valve
        decision. ``state`` is not changed. The event's time is ``now``."""
        # A JSON round trip (pydantic-core) copies far faster than copy.deepcopy.
        copy = None if state is None else SiteState.model_validate_json(state.model_dump_json())
        return self.judge_in_place(copy, event)

    def take(self, state: SiteState, reading: Reading) -> Repeat | None:
        """The ingest contract's one reading per (device, time): None when ``reading`` is new
        (and now remembered in ``state``), else the repeat it is."""
        return take_once(state.readings, reading)

    def judge_in_place(
        self, state: SiteState | None, event: Event, *, taken: bool = False
    ) -> Judged:
        """:meth:`judge` on a state the caller owns (the worker's working copy of a batch):
        ``state`` becomes the new state, with no copy made. Nothing is changed when the
        event is refused (a site not in the catalogue, or another site's state). A reading is
        first :meth:`take`-n, unless ``taken`` (the caller did): a repeat is not judged."""
        if event.site not in self.ctx.catalogue.sites:
            raise KeyError(f"site '{event.site}' is not in the catalogue")
        state = self.initial(event.site) if state is None else state
        if state.site != event.site:
            raise ValueError(f"state of site '{state.site}' given an event of '{event.site}'")
        now = (
            event.ts
            if isinstance(event, Reading)
            else event.at
            if isinstance(event, DeviceStatus)
            else event.now
        )
        if isinstance(event, Reading) and not taken:
            repeat = self.take(state, event)
            if repeat is not None:
                return Judged(state, [], [], repeat=repeat)
        if state.started is None:
            state.started = now
        windows = self._aggregate(state, event) if isinstance(event, Reading) else []
        meter = self._account(state, event) if isinstance(event, Reading) else None
        step = Step(event, now, tuple(windows), meter)
        findings = [f for rule in self.rules for f in rule(state, step, self.ctx)]
        valve = None
        if isinstance(event, Reading) and meter is not None:
            track = state.devices.setdefault(event.device, DeviceTrack())
            pct = self.ctx.params.quota_exhausted_pct
            valve = valve_decision(meter, track.valve_decision, pct)
            if valve is not None:
                track.valve_decision = valve
        return Judged(state, findings, windows, valve, meter=meter)

    def _account(self, state: SiteState, reading: Reading) -> MeterStatus | None:
        """A discharge meter's account, kept by the platform from the meter's readings."""
        device = self.ctx.device(state.site, reading.device)
        if device is None or device.model is not DeviceModel.DISCHARGE_METER:
            return None
        if device.quota is None:
            return None
        track = state.devices.setdefault(reading.device, DeviceTrack())
        max_slice = self.ctx.params.max_slice
        track.account = account(track.account, device.quota, reading, max_slice)
        return platform_status(track.account, device.quota, reading)

    def _aggregate(self, state: SiteState, reading: Reading) -> list[ClosedWindow]:
        device = self.ctx.device(state.site, reading.device)
        if device is None:
            return []  # not this site's device: the bridge dead-letters those
        flow = reading.values.get(FLOW) if FLOW in device.pollutants else None
        out: list[ClosedWindow] = []
        for code in [*device.pollutants, WATER_TEMP]:
            m = reading.values.get(code)
            if m is None:
                continue
            key = f"{reading.device}|{code}"
            track = state.tracks.get(key)
            if track is None:
                by_flow = FLOW in device.pollutants and code not in TIME_WEIGHTED
                weighting = Weighting.FLOW if by_flow else Weighting.TIME
                track = state.tracks[key] = Track(series=Series(weighting=weighting))
            by_flow = track.series.weighting is Weighting.FLOW
            closed = add_in_place(
                track.series, reading.ts, m, self.ctx.params, flow if by_flow else None
            )
            out += [ClosedWindow(reading.device, code, w) for w in closed]
        return out
