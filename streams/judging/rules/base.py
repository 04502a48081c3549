"""What every rule shares: its parameters, the site's state, the step it sees, the
context it looks things up in, and how a verdict is emitted (active once, then refreshed;
clear once)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from ecowatch.config.catalogue import Catalogue, Device, DeviceModel, Site, SiteKind
from ecowatch.config.policies import MarkPolicy
from ecowatch.config.standards import AppliedLimit, Basis
from ecowatch.pollutants import FLOW, GAS_FLOW, STANDARD_DRY_FLOW, UNITS, WATER_TEMP
from ecowatch.schema import (
    DataFlag,
    DeviceStatus,
    Finding,
    Identifier,
    Mark,
    MarkEvent,
    MeterStatus,
    Reading,
    Rule,
    Severity,
)
from ecowatch.streams.judging.aggregate import (
    Series,
    Window,
    WindowParams,
)
from ecowatch.streams.judging.flue_gas import HIGH_O2, StackMean
from ecowatch.streams.judging.ledger import ReadingLedger
from ecowatch.streams.judging.marks import excusing
from ecowatch.streams.judging.meter import MeterAccount
from ecowatch.streams.judging.rules.verdict import Valve, Verdict
from ecowatch.streams.judging.validity import Validity


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
    intermittent: frozenset[str] = frozenset({FLOW, GAS_FLOW})
    quota_warning_pct: float = 80.0
    quota_near_pct: float = 95.0
    quota_exhausted_pct: float = 100.0
    refresh_every: timedelta = timedelta(hours=1)
    # A stack: how far a CEMS's own corrected value may stray from the platform's, and the
    # O2 from which the gas is mostly air (not burning, or air let in; not judged as such).
    corrected_tolerance: float = Field(default=0.05, gt=0)
    high_o2_pct: float = Field(default=HIGH_O2, gt=0, le=21)
    # A site's month under this transmission-validity rate (valid / expected) is a finding.
    validity_threshold: float = Field(default=0.90, ge=0, le=1)


# -- state -------------------------------------------------------------------------------------


# The state's parts that change on every reading are plain slotted dataclasses: pydantic still
# validates and serialises them inside SiteState (the same JSON), but setting a field costs a
# store, not BaseModel.__setattr__ (about 1 µs, some 50 times a reading).


@dataclass(slots=True)
class Track:
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
    # The month's closed days (``month``, "2026-11"): the values that arrived, and valid.
    month: str | None = None
    month_received: int = 0
    month_valid: int = 0


@dataclass(slots=True)
class DeviceTrack:
    last_heard: AwareDatetime | None = None  # last reading or "online" status
    last_will: bool = False  # the broker published its last will: offline
    valve_decision: Valve | None = None  # the last valve command decided for it
    account: MeterAccount | None = None  # a discharge meter's, kept by the platform
    # A stack's: each concentration's emission of the open day so far (kg), its hours' sum.
    emitted_kg: dict[str, float] = field(default_factory=dict)


@dataclass(slots=True)
class ActiveVerdict:
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
    active: dict[str, ActiveVerdict] = Field(default_factory=dict)  # "device|pollutant|rule"
    # The times of each device's readings taken (the ingest contract's one reading per device
    # and time), beside the state they fed, so that both are written in one changelog record.
    readings: dict[str, ReadingLedger] = Field(default_factory=dict)
    # Hours that late readings (resends) fell in, to be judged again once the resend has
    # settled: "device|hour start" → when the last of them arrived (rules/rejudge.py).
    rejudge: dict[str, AwareDatetime] = Field(default_factory=dict)
    # Late real-time exceedances found: "device|pollutant|rule|hour start" → the hour. One
    # finding per hour of a resend, not one per reading (streams/judging/rules/rejudge.py).
    late_found: dict[str, AwareDatetime] = Field(default_factory=dict)
    # The month whose transmission and validity is being counted: from when (the month's
    # start, or the site's first event) until its end, when it is judged.
    counting_since: AwareDatetime | None = None
    counting_until: AwareDatetime | None = None
    # The enterprise's marks (标记), pending, accepted or rejected, by id: until they are old.
    marks: dict[str, Mark] = Field(default_factory=dict)
    # The devices' own marks (their flags, their analysers' states), by id: a record apart,
    # since they excuse nothing; and those still open, "device|pollutant|by" → id.
    device_marks: dict[str, Mark] = Field(default_factory=dict)
    open_device_marks: dict[str, str] = Field(default_factory=dict)


# -- events, context, results ------------------------------------------------------------------


class SiteTick(BaseModel):
    """Time passes at a site with no data: offline and flagged-too-long are checked."""

    model_config = ConfigDict(frozen=True)

    site: Identifier
    now: AwareDatetime


Event = Reading | DeviceStatus | SiteTick | MarkEvent


@dataclass(frozen=True)
class ClosedWindow:
    """A minute, hour or day of one device's pollutant, closed by a reading (for the store
    too); a stack's concentration with its O2, corrected mean and emission; a day with what
    its device owed of the pollutant and what came of it."""

    device: str
    pollutant: str
    window: Window
    stack: StackMean | None = None
    validity: Validity | None = None  # a day of a pollutant its device owes


@dataclass(frozen=True, slots=True)
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


class Limits(dict[str, AppliedLimit | None]):
    """A site's limits at one level by pollutant (None: not judged), filled on first use."""

    def __init__(self, lookup: Callable[[str], AppliedLimit | None]) -> None:
        super().__init__()
        self._lookup = lookup

    def __missing__(self, pollutant: str) -> AppliedLimit | None:
        limit = self[pollutant] = self._lookup(pollutant)
        return limit


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """A device of a site as the rules need it, looked up once per (site, device)."""

    device: Device
    judges_limits: bool  # its concentrations are judged (a meter's only with no monitor)
    pollutants: tuple[tuple[str, str], ...]  # (code, "device|code") as the catalogue lists them
    averaged: tuple[tuple[str, str], ...]  # the same and the water temperature: what has means
    has_flow: bool  # its concentrations are flow-weighted (Appendix D)
    owed: frozenset[str]  # the pollutants it must report: what its validity rates count


@dataclass
class Context:
    """The catalogue and parameters, with what the rules look up in them cached per site,
    device and pollutant: the catalogue does not change while a judge lives."""

    catalogue: Catalogue
    params: RuleParams = field(default_factory=RuleParams)
    aqi_standard: str = "2026"
    marks: MarkPolicy = field(default_factory=MarkPolicy)
    _limits: dict[tuple[str, Level], Limits] = field(default_factory=dict, repr=False)
    _devices: dict[tuple[str, str], DeviceInfo | None] = field(default_factory=dict, repr=False)
    _units: dict[tuple[str, str], str] = field(default_factory=dict, repr=False)
    _keys: dict[tuple[str, str], tuple[str, ...]] = field(default_factory=dict, repr=False)
    _o2: dict[str, float | None] = field(default_factory=dict, repr=False)

    def o2_reference(self, site_id: str) -> float | None:
        """The reference oxygen a stack's concentrations are corrected to (its own, else its
        standard class's); None for a site that is not a stack."""
        if site_id not in self._o2:
            self._o2[site_id] = self.catalogue.o2_reference(site_id)
        return self._o2[site_id]

    def site(self, site_id: str) -> Site:
        return self.catalogue.sites[site_id]

    def device(self, site_id: str, device_id: str) -> Device | None:
        info = self.device_info(site_id, device_id)
        return info.device if info is not None else None

    def device_info(self, site_id: str, device_id: str) -> DeviceInfo | None:
        key = (site_id, device_id)
        try:
            return self._devices[key]
        except KeyError:
            pass
        entry = self.catalogue.device(device_id)
        info = None
        if entry is not None and entry.site.id == site_id:
            d = entry.device
            codes = tuple((code, f"{device_id}|{code}") for code in d.pollutants)
            averaged = (*codes, (WATER_TEMP, f"{device_id}|{WATER_TEMP}"))
            if self.o2_reference(site_id) is not None:  # a stack's emissions need its Qsn
                averaged += ((STANDARD_DRY_FLOW, f"{device_id}|{STANDARD_DRY_FLOW}"),)
            judges = self._judges_limits_of(site_id, device_id)
            owed = frozenset(d.pollutants)
            info = DeviceInfo(d, judges, codes, averaged, FLOW in d.pollutants, owed)
        self._devices[key] = info
        return info

    def limit(self, site_id: str, pollutant: str, level: Level) -> AppliedLimit | None:
        return self.limits(site_id, level)[pollutant]

    def limits(self, site_id: str, level: Level) -> Limits:
        """The site's limits at ``level``, by pollutant, each looked up on first use: a rule
        takes the table once per event (an Enum's hash is a Python call) and then indexes it
        by code."""
        key = (site_id, level)
        try:
            return self._limits[key]
        except KeyError:
            table = self._limits[key] = Limits(lambda code: self._lookup(site_id, code, level))
            return table

    def unit(self, site_id: str, pollutant: str) -> str:
        """The pollutant's unit at the site: its daily limit's, else the catalogue's."""
        key = (site_id, pollutant)
        try:
            return self._units[key]
        except KeyError:
            unit = self._units[key] = unit_of(pollutant, self.limit(*key, Level.DAILY))
            return unit

    def keys(self, track: str, family: str, rules: tuple[Rule, ...]) -> tuple[str, ...]:
        """The active-verdict keys of ``rules`` for a track ("device|pollutant"), made once:
        a rule family asks with its own name and rules."""
        try:
            return self._keys[(track, family)]
        except KeyError:
            device, pollutant = track.split("|", 1)
            keys = tuple(key_of(device, pollutant, rule) for rule in rules)
            self._keys[(track, family)] = keys
            return keys

    def _lookup(self, site_id: str, pollutant: str, level: Level) -> AppliedLimit | None:
        daily = self.catalogue.limit_for(site_id, pollutant, Basis.DAILY)
        if level is Level.DAILY:
            return daily
        hourly = self.catalogue.limit_for(site_id, pollutant, Basis.HOURLY)
        if hourly is not None or self.site(site_id).kind is SiteKind.AIR_STATION:
            return hourly
        return daily  # wastewater: the daily limit is the only yardstick

    def judges_limits_of(self, site_id: str, device_id: str) -> bool:
        info = self.device_info(site_id, device_id)
        return (
            info.judges_limits if info is not None else self._judges_limits_of(site_id, device_id)
        )

    def _judges_limits_of(self, site_id: str, device_id: str) -> bool:
        devices = self.site(site_id).devices
        monitors = [d.id for d in devices if d.model is not DeviceModel.DISCHARGE_METER]
        return device_id in monitors if monitors else True


class DetectionRule(Protocol):
    """Every rule's shape: what it sees in one step of a site, as verdicts; it updates its
    own part of ``state``."""

    def __call__(self, state: SiteState, step: Step, ctx: Context) -> list[Verdict]: ...


# -- emitting: active once (then refreshed), clear once ----------------------------------------


def key_of(device: str | None, pollutant: str | None, rule: Rule) -> str:
    # A StrEnum formats as its value: "device|pollutant|rule".
    return f"{device or '-'}|{pollutant or '-'}|{rule}"


def emit(
    state: SiteState, finding: Finding, now: datetime, ctx: Context, every: bool = False
) -> list[Finding]:
    key = key_of(finding.device, finding.pollutant, finding.rule)
    mark = state.active.get(key)
    if mark is None:
        state.active[key] = ActiveVerdict(since=finding.at, emitted=now)
        return [finding]
    if every or now - mark.emitted >= ctx.params.refresh_every:
        mark.emitted = now
        return [finding]
    return []


def clears(state: SiteState, device: str | None, pollutant: str | None, rule: Rule) -> bool:
    """Whether a normal verdict is news: the key was active, and no other device of the site
    still holds the same case (one case per site + pollutant + rule)."""
    if state.active.pop(key_of(device, pollutant, rule), None) is None:
        return False
    suffix = f"|{pollutant or '-'}|{rule}"
    return not any(key.endswith(suffix) for key in state.active)


# Makes the verdict's finding, active or its clear, from the arguments ``verdict`` passes on:
# called only when the finding is emitted, so that a normal reading (almost every one) builds
# no Finding and formats no text. A module-level function with its arguments costs no closure.
Build = Callable[..., Finding]


def verdict(
    state: SiteState,
    ctx: Context,
    now: datetime,
    holds: bool,
    device: str | None,
    pollutant: str | None,
    rule: Rule,
    build: Build,
    *args: object,
    every: bool = False,
    key: str | None = None,
    during: tuple[datetime, datetime | None] | None = None,
) -> list[Finding]:
    """A condition's verdict: ``build(True, *args)`` when it holds (once, then every
    ``refresh_every``, or ``every`` time), else ``build(False, *args)`` if the key was
    active. ``key``: ``key_of(device, pollutant, rule)``, when the caller has it made.

    Data under a pending or accepted mark that explains the rule (at ``now``, or over the
    window ``during``) says nothing: no new finding, and an open one neither repeated nor
    cleared (a mark made after the evidence goes to the officers; it does not end it)."""
    if key is None:
        key = key_of(device, pollutant, rule)
    if holds and state.marks:
        start, end = during if during is not None else (now, None)
        needed = None
        if end is not None:  # a window: judged with what a valid hour (day) needs unmarked
            hour = end - start <= timedelta(hours=1)
            needed = (
                ctx.params.min_hour_coverage if hour else timedelta(hours=ctx.params.min_day_hours)
            )
        marks = state.marks.values()
        if excusing(marks, device, rule, start, end, ctx.marks, pollutant, needed) is not None:
            return []
    if holds:
        mark = state.active.get(key)
        if mark is None:
            finding = build(True, *args)
            state.active[key] = ActiveVerdict(since=finding.at, emitted=now)
            return [finding]
        if every or now - mark.emitted >= ctx.params.refresh_every:
            mark.emitted = now
            return [build(True, *args)]
        return []
    if key in state.active and clears(state, device, pollutant, rule):
        return [build(False, *args)]
    return []


def new_finding(state: SiteState, rule: Rule, severity: Severity, **fields: object) -> Finding:
    return Finding(site=state.site, rule=rule, severity=severity, **fields)  # type: ignore[arg-type]


def unit_of(code: str, limit: AppliedLimit | None = None) -> str:
    if limit is not None:
        return "" if limit.unit == "dimensionless" else limit.unit
    return UNITS.get(code, "")


def round3(x: float | None) -> float | None:
    return round(x, 3) if x is not None else None


def tracked(state: SiteState, ctx: Context, reading: Reading) -> list[tuple[str, Track]]:
    """The reading's pollutants that the catalogue says its device reports, with their tracks."""
    info = ctx.device_info(state.site, reading.device)
    if info is None:
        return []
    values, tracks = reading.values, state.tracks
    return [
        (code, tracks[key]) for code, key in info.pollutants if code in values and key in tracks
    ]
