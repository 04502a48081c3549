"""The operators' console, its pure core: what the city looks like now, from the platform's events.

The Kafka feed hands every reading, device status, finding, case event, notification and dead
letter to :class:`City`; the web edge reads snapshots from it and pushes what changed. No I/O
and no clock of its own (``wall`` is passed in), so the unit tests drive it event by event.

A site's status, the most urgent first:

- ``offline``: a device said so (its last will) or the worker found it silent;
- ``over``: a value flagged N in its latest reading breaks the limit that applies (permit or
  standard), or an over-limit finding is active;
- ``abnormal``: a fault, over-range or comms flag (D, T, B), or a data-quality finding
  (constant, zeros, negative, jump, missing, flagged too long, meter mismatch; a stack's
  corrected-value mismatch and high oxygen);
- ``maintenance``: maintenance, calibration or stopped (M, C, F), or the device stopped;
- ``normal``; ``unknown`` before anything was heard from it.

Air stations carry their real-time AQI (HJ 633) and its category, coloured as Appendix A says.

A stack's limits hold at its reference oxygen (基准氧含量), so its raw values are never held
against them: each concentration carries the measured value, the platform's corrected one
(折算浓度, with the O2 of the same reading; NOx as NO2 where NO and NO2 come apart), the CEMS's
own (``zs``, shown, never judged), the measured O2 and the reference; ``over`` is the corrected
value's. At O2 ≥ 19 % there is nothing to correct to: not judged, and it says why
(``unjudged``), as the worker's real-time judging does.

Two clocks: **data time** is the newest measurement time seen (a simulated city's clock, or a
replay's), and "overdue" is judged on it, as the worker judges its cases; the wall clock is
only the pulse's (how long ago the bridge took the newest reading). Case events are not data
time: some are stamped on the wall clock (a device's status, as the bridge received it).
"""

from __future__ import annotations

from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ecowatch.alerts.wording import (
    actor_text,
    both,
    case_event_text,
    finding_text,
    limit_text,
    overdue_text,
    rule_name,
    source_text,
)
from ecowatch.config.catalogue import Catalogue, Site, SiteKind
from ecowatch.config.standards import AppliedLimit, Basis, Maximum, Minimum, Range
from ecowatch.console.alarms import Alarms
from ecowatch.pollutants import NOX, O2, SHORT_NAMES, UNITS
from ecowatch.schema import (
    DEVICE_DATA_RULES,
    OVER_LIMIT_RULES,
    AlarmSilenced,
    CaseEvent,
    CaseStatus,
    DataFlag,
    DeadLetter,
    DeviceState,
    DeviceStatus,
    Finding,
    Notification,
    Reading,
    Rule,
)
from ecowatch.streams.judging.aqi import Category, realtime_aqi
from ecowatch.streams.judging.flue_gas import HIGH_O2, corrected, is_concentration, with_nox

STATUSES = ("offline", "over", "abnormal", "maintenance", "normal", "unknown")

# HJ 633 Appendix A: the categories' colours (RGB), 优 to 严重污染.
AQI_COLOURS: dict[Category, str] = {
    Category.EXCELLENT: "#00E400",
    Category.GOOD: "#FFFF00",
    Category.LIGHTLY_POLLUTED: "#FF7E00",
    Category.MODERATELY_POLLUTED: "#FF0000",
    Category.HEAVILY_POLLUTED: "#99004C",
    Category.SEVERELY_POLLUTED: "#7E0023",
}

OVER_RULES = OVER_LIMIT_RULES | {Rule.AQI_OVER_100, Rule.QUOTA_EXHAUSTED}
# The data's truth: a device's own, a meter's account, and at a stack its CEMS's corrected
# values not the platform's, or mostly air in the flue.
DATA_RULES = DEVICE_DATA_RULES | {
    Rule.METER_MISMATCH,
    Rule.CORRECTED_VALUE_MISMATCH,
    Rule.HIGH_OXYGEN,
}
ABNORMAL_FLAGS = frozenset({DataFlag.FAULT, DataFlag.OVER_RANGE, DataFlag.COMMS})
MAINTENANCE_FLAGS = frozenset({DataFlag.MAINTENANCE, DataFlag.CALIBRATION, DataFlag.STOPPED})
# Cases the people have (the pending ones are still waiting to be told anyone).
OPEN_STATES = (CaseStatus.REMINDED, CaseStatus.ESCALATED, CaseStatus.ACKNOWLEDGED)
DEAD_LETTERS_KEPT = 8  # the newest ones the desk lists with their detail
TRAIL_MAX = 200  # events and notifications kept per case, newest last
CASES_KEPT = 5000  # cases remembered for their trail, the oldest closed ones dropped first
PULSE_WINDOW_S = 10.0


def applied_limit(catalogue: Catalogue, site_id: str, pollutant: str) -> AppliedLimit | None:
    """The limit a live value is read against: the site's one for the pollutant, or for an air
    station (limited on several bases) its hourly one."""
    limits = catalogue.limits_for(site_id, pollutant)
    if len(limits) > 1:
        limits = [lim for lim in limits if lim.basis is Basis.HOURLY]
    return limits[0] if limits else None


def limit_view(limit: AppliedLimit | None) -> dict[str, Any] | None:
    if limit is None:
        return None
    bound = limit.bound
    lines = {
        "max": bound.value if isinstance(bound, Maximum) else None,
        "min": bound.value if isinstance(bound, Minimum) else None,
        "low": bound.low if isinstance(bound, Range) else None,
        "high": bound.high if isinstance(bound, Range) else None,
    }
    return {
        "text": str(bound),
        # As a person reads it, in each language: "≤ 80 mg/L（日均值）", "GB 8978-1996 一级标准".
        "said": both(limit_text, limit),
        "source_said": both(source_text, limit),
        **lines,
        "unit": limit.unit,
        "basis": limit.basis.value,
        "source": limit.source,
        "o2_reference": limit.o2_reference,  # a stack's: the limit holds at this % O2
    }


def stack_values(
    reading: Reading, o2_reference: float, high_o2: float = HIGH_O2
) -> dict[str, dict[str, Any]]:
    """A stack's reading as its rows: each value with its corrected one (None for the gas's
    state, a flagged value, or without a valid O2 or near air's), ``zs``, the measured O2 and
    the reference. NOx as NO2 is added where the monitor reports NO and NO2 apart (the
    worker judges that sum). ``over`` is left to the caller, who knows the limits."""
    # Only N values correct and judge, as in the worker's real-time judging.
    valid = with_nox({c: m.value for c, m in reading.values.items() if m.flag is DataFlag.NORMAL})
    o2 = valid.get(O2)
    rows: dict[str, dict[str, Any]] = {}
    for code, m in reading.values.items():
        rows[code] = {"value": m.value, "flag": m.flag.value, "zs": m.zs}
    if NOX in valid and NOX not in reading.values:
        rows[NOX] = {"value": valid[NOX], "flag": DataFlag.NORMAL.value, "zs": None}
        rows[NOX]["derived"] = "no_no2"  # NO × 46/30 + NO2, not a value the CEMS sent
    for code, row in rows.items():
        value, unjudged = None, None
        if is_concentration(code) and code in valid:
            if o2 is None:
                unjudged = "no_o2"
            elif o2 >= high_o2:
                unjudged = "high_o2"
            else:
                value = corrected(valid[code], o2, o2_reference, high_o2)
        row |= {"corrected": value, "o2": o2, "o2_reference": o2_reference, "unjudged": unjudged}
    return rows


@dataclass
class SiteView:
    site: Site
    values: dict[str, dict[str, Any]] = field(default_factory=dict)  # code → value, flag, ...
    ts: datetime | None = None  # the latest reading's measurement time
    devices_offline: set[str] = field(default_factory=set)
    devices_stopped: set[str] = field(default_factory=set)
    findings: dict[str, Finding] = field(default_factory=dict)  # active ones, by rule+what
    aqi: dict[str, Any] | None = None
    o2_reference: float | None = None  # a stack's: its values are judged corrected to it

    def status(self) -> str:
        rules = {f.rule for f in self.findings.values()}
        if self.devices_offline or Rule.OFFLINE in rules:
            return "offline"
        flags = {DataFlag(v["flag"]) for v in self.values.values()}
        if any(v["over"] for v in self.values.values()) or rules & OVER_RULES:
            return "over"
        if flags & ABNORMAL_FLAGS or rules & DATA_RULES:
            return "abnormal"
        if flags & MAINTENANCE_FLAGS or self.devices_stopped:
            return "maintenance"
        return "normal" if self.ts is not None else "unknown"


@dataclass
class CaseState:
    id: str
    site: str
    grid: str
    status: CaseStatus
    kind: str  # the latest event's kind
    at: datetime
    opened_at: datetime
    due: datetime | None = None  # the deadline of its latest notification (remind or ack)
    trail: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=TRAIL_MAX))

    @property
    def open(self) -> bool:
        return self.status in OPEN_STATES


class Pulse:
    """Readings and dead letters per second over the last ``PULSE_WINDOW_S`` of wall time, and
    how fresh the newest reading is."""

    def __init__(self) -> None:
        self.readings: deque[float] = deque()
        self.dead_letters: deque[float] = deque()
        self.last_received: datetime | None = None  # when the bridge took the newest reading
        self.last_seen: float | None = None  # wall time the console saw it

    @staticmethod
    def _rate(times: deque[float], wall: float) -> float:
        while times and times[0] < wall - PULSE_WINDOW_S:
            times.popleft()
        return len(times) / PULSE_WINDOW_S

    def view(self, wall: float, now: datetime) -> dict[str, Any]:
        return {
            "readings_per_s": round(self._rate(self.readings, wall), 2),
            "dead_letters_per_s": round(self._rate(self.dead_letters, wall), 2),
            "bridge_age_s": (
                round((now - self.last_received).total_seconds(), 1)
                if self.last_received is not None
                else None
            ),
            "seen_age_s": round(wall - self.last_seen, 1) if self.last_seen is not None else None,
        }


class DeadLetters:
    """Dead letters seen since the console started: counts by reason and by source, and the
    newest few with their detail (never their payload: what a device sent stays on the topic)."""

    def __init__(self) -> None:
        self.by_reason: dict[str, int] = {}
        self.by_source: dict[str, int] = {}
        self.latest: deque[dict[str, Any]] = deque(maxlen=DEAD_LETTERS_KEPT)
        self.total = 0
        self.changed = False

    def add(self, letter: DeadLetter) -> None:
        reason, source = letter.reason.value, letter.source.value
        self.by_reason[reason] = self.by_reason.get(reason, 0) + 1
        self.by_source[source] = self.by_source.get(source, 0) + 1
        self.total += 1
        self.latest.append(
            {
                "reason": reason,
                "source": source,
                "origin": letter.origin,
                "detail": letter.detail[:300],
                "received_at": letter.received_at.isoformat(),
                "payload_bytes": letter.payload_bytes,
            }
        )
        self.changed = True

    def view(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "by_reason": dict(sorted(self.by_reason.items(), key=lambda kv: (-kv[1], kv[0]))),
            "by_source": dict(sorted(self.by_source.items(), key=lambda kv: (-kv[1], kv[0]))),
            "latest": list(reversed(self.latest)),  # newest first
        }


def _due(
    status: CaseStatus, deadline: datetime | None, ack_due: datetime | None
) -> datetime | None:
    """What a case waits for: the enterprise's rectify-by while reminded, the officers'
    acknowledge-by while escalated; nothing once someone has answered."""
    if status is CaseStatus.REMINDED:
        return deadline
    if status is CaseStatus.ESCALATED:
        return ack_due
    return None


# What an act on a case carries beside its words: a visit's photos (by hash), place and time, a
# supervision's note and deadline, the grid a case was reassigned to (on the events that have them).
VISIT_FIELDS = ("photos", "location", "visited_at", "note", "grid", "deadline")


def _visit(event: CaseEvent) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name in VISIT_FIELDS:
        value = getattr(event, name, None)
        if value:
            found[name] = _plain(value)
    return found


def _plain(value: Any) -> Any:
    """A field as JSON: a model as its dump, a time as ISO 8601, a tuple as a list."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def _when(raw: Any) -> datetime | None:
    return datetime.fromisoformat(raw) if isinstance(raw, str) and raw else None


class City:
    """Every site's state and every case's, as the platform's events say; and what changed
    since the web edge last asked (:meth:`take_changes`)."""

    def __init__(
        self, catalogue: Catalogue, aqi_standard: str = "2026", high_o2: float = HIGH_O2
    ) -> None:
        self.catalogue = catalogue
        self.aqi_standard = aqi_standard
        self.high_o2 = high_o2  # the worker's high_o2_pct: its default unless told
        self.sites = {
            sid: SiteView(site, o2_reference=catalogue.o2_reference(sid))
            for sid, site in catalogue.sites.items()
        }
        self.cases: OrderedDict[str, CaseState] = OrderedDict()
        self.pulse = Pulse()
        self.dead_letters = DeadLetters()
        # The newest measurement time seen (readings only): what "overdue" is judged against.
        self.data_now: datetime | None = None
        self._changed_sites: set[str] = set()
        self._changed_cases: list[dict[str, Any]] = []
        self._limits: dict[tuple[str, str], AppliedLimit | None] = {}
        # Notifications read before their case's first event (another topic, another order).
        self._early: OrderedDict[str, list[Notification]] = OrderedDict()
        self.alarms = Alarms(catalogue)
        # The deadlines already handed to the alarms as passed (case id, deadline).
        self._overdue_seen: OrderedDict[tuple[str, datetime], None] = OrderedDict()

    # -- events -------------------------------------------------------------------------------

    def limit(self, site_id: str, pollutant: str) -> AppliedLimit | None:
        key = (site_id, pollutant)
        if key not in self._limits:
            self._limits[key] = applied_limit(self.catalogue, site_id, pollutant)
        return self._limits[key]

    def on_reading(self, reading: Reading, wall: float) -> None:
        self.pulse.readings.append(wall)
        self.pulse.last_seen = wall
        self.pulse.last_received = reading.received_at
        self._take(reading, live=True)

    def seed_reading(self, reading: Reading) -> None:
        """A site's latest reading from InfluxDB at start, so the map is whole at once. It
        neither counts in the pulse nor clears a device's offline or stopped status (the status
        topic, read from its start, knows better than a stored reading)."""
        self._take(reading, live=False)

    def _take(self, reading: Reading, live: bool) -> None:
        state = self.sites.get(reading.site)
        if state is None:
            return
        if state.ts is not None and reading.ts < state.ts:
            return  # a resend from an outage: the map shows the newest
        state.ts = reading.ts
        self._advance(reading.ts)
        if live:
            state.devices_offline.discard(reading.device)
            state.devices_stopped.discard(reading.device)
        if state.o2_reference is not None:
            self._take_stack(state, reading, state.o2_reference)
        else:
            self._take_values(state, reading)
        if state.site.kind is SiteKind.AIR_STATION:
            result = realtime_aqi(reading, self.aqi_standard)
            if result is not None:
                state.aqi = {
                    "aqi": result.aqi,
                    "category": result.category.value,
                    "category_zh": result.category.name_zh,
                    "category_said": {"zh": result.category.name_zh, "en": result.category.label},
                    "colour": AQI_COLOURS[result.category],
                    "primary": result.primary,
                }
        self._changed_sites.add(reading.site)

    def _take_values(self, state: SiteView, reading: Reading) -> None:
        for code, m in reading.values.items():
            limit = self.limit(reading.site, code)
            # One air value against a daily mean's limit says nothing yet: only hourly ones
            # judge it (AQI carries the rest); an outfall's values get the worker's early
            # warning.
            judged = (
                m.flag is DataFlag.NORMAL
                and limit is not None
                and (state.site.kind is SiteKind.OUTFALL or limit.basis is Basis.HOURLY)
            )
            state.values[code] = {
                "value": m.value,
                "flag": m.flag.value,
                "over": judged and not limit.complies(m.value),  # type: ignore[union-attr]
                "device": reading.device,
            }

    def _take_stack(self, state: SiteView, reading: Reading, o2_reference: float) -> None:
        """A stack's values judged corrected, never raw: its limits hold at the reference."""
        for code, row in stack_values(reading, o2_reference, self.high_o2).items():
            limit = self.limit(reading.site, code)
            value = row["corrected"]
            over = limit is not None and value is not None and not limit.complies(value)
            state.values[code] = row | {"over": over, "device": reading.device}

    def on_status(self, status: DeviceStatus) -> None:
        state = self.sites.get(status.site)
        if state is None:
            return
        state.devices_offline.discard(status.device)
        state.devices_stopped.discard(status.device)
        if status.state is DeviceState.OFFLINE:
            state.devices_offline.add(status.device)
        elif status.state is DeviceState.STOPPED:
            state.devices_stopped.add(status.device)
        self.alarms.on_status(status)
        self._changed_sites.add(status.site)

    def on_finding(self, finding: Finding) -> None:
        state = self.sites.get(finding.site)
        if state is None:
            return
        key = f"{finding.rule.value}|{finding.pollutant or finding.device or ''}"
        if finding.active:
            state.findings[key] = finding
        else:
            state.findings.pop(key, None)
        self.alarms.on_finding(finding)
        self._changed_sites.add(finding.site)

    def on_dead_letter(self, letter: DeadLetter, wall: float) -> None:
        self.pulse.dead_letters.append(wall)
        self.dead_letters.add(letter)

    def on_case_event(self, event: CaseEvent) -> None:
        site = self.catalogue.sites.get(event.site)
        if site is None:
            return
        # Not self._advance(event.at): a case event may carry the wall clock (a device status
        # as the bridge received it), which would pass every deadline of a simulated city.
        case = self.cases.get(event.case_id)
        if case is None:
            case = CaseState(
                event.case_id, event.site, site.grid, event.status, event.kind, event.at, event.at
            )
            self.cases[event.case_id] = case
            self._forget_old_cases()
        row = {
            "type": "event",
            "kind": event.kind,
            "at": event.at.isoformat(),
            "actor": event.actor,
            "actor_said": both(actor_text, event.actor),
            "status": event.status.value,
            "detail": both(case_event_text, event),
        } | _visit(event)
        if row in case.trail:
            return  # the feed read the topic again after an outage
        case.status, case.kind, case.at = event.status, event.kind, event.at
        if event.grid in self.catalogue.grids:
            # Reassigned (改派): the new grid's from now on, in the feed and the counts.
            case.grid = event.grid
        if case.status not in (CaseStatus.REMINDED, CaseStatus.ESCALATED):
            case.due = None  # an acknowledged case waits for the data and the findings
        self._record(case, row)
        if event.kind == "escalated":  # an alarm, with the words of what opened the case
            opened = next((r["detail"] for r in case.trail if r["kind"] == "detected"), None)
            self.alarms.on_case_event(event, opened)
        for note in self._early.pop(case.id, []):
            self.on_notification(note)

    def _record(self, case: CaseState, row: dict[str, Any]) -> None:
        case.trail.append(row)
        self._changed_cases.append({"case": case.id, "site": case.site, "grid": case.grid, **row})

    def on_notification(self, note: Notification) -> None:
        case = self.cases.get(note.case_id)
        if case is None:
            self._early.setdefault(note.case_id, []).append(note)
            while len(self._early) > TRAIL_MAX:
                self._early.popitem(last=False)
            return
        if note.deadline is not None:
            case.due = note.deadline  # counts only while reminded or escalated (overdue())
        row = {
            "type": "notification",
            "kind": note.step.value,
            "at": note.created_at.isoformat(),
            "actor": "system",
            "actor_said": both(actor_text, "system"),
            "audience": note.audience.value,
            "recipients": note.recipients,
            "deadline": note.deadline.isoformat() if note.deadline else None,
            "detail": both(finding_text, note.evidence),
        }
        if row not in case.trail:
            self._record(case, row)

    def on_silence(self, silence: AlarmSilenced) -> None:
        self.alarms.on_silence(silence)

    def scan_overdue(self) -> None:
        """An alarm for each open case past its deadline in data time (once per deadline)."""
        if self.data_now is None:
            return
        for case in self.cases.values():
            if not self.overdue(case) or case.due is None:
                continue
            seen = (case.id, case.due)
            if seen in self._overdue_seen:
                continue  # every second: the words are written once per deadline
            self._overdue_seen[seen] = None
            while len(self._overdue_seen) > CASES_KEPT:
                self._overdue_seen.popitem(last=False)
            officers = case.status is CaseStatus.ESCALATED
            detail = both(overdue_text, (case.id, case.due, officers))
            self.alarms.on_overdue(case.id, case.site, case.due, detail)

    def alarms_view(self, grids: frozenset[str] | None) -> dict[str, Any]:
        open_cases: Counter[str] = Counter(c.site for c in self.cases.values() if c.open)
        return self.alarms.view(grids, self.data_now, open_cases)

    def on_case_row(self, row: dict[str, Any]) -> None:
        """A case as the case API lists it (at start, and whenever a page asks): its status and
        its own deadlines, which the city takes over what it pieced together from the topics.
        A case the topics never showed (past their retention) is known from here on."""
        site = self.catalogue.sites.get(str(row.get("site", "")))
        try:
            status = CaseStatus(row.get("status"))
            first_seen = _when(row.get("first_seen"))
        except ValueError:
            return
        if site is None or first_seen is None:
            return
        case = self.cases.get(row["id"])
        before = None if case is None else (case.status, case.due, case.grid)
        if case is None:
            case = CaseState(
                row["id"], site.id, site.grid, status, status.value, first_seen, first_seen
            )
            self.cases[case.id] = case
            self._forget_old_cases()
        case.status = status
        if row.get("grid") in self.catalogue.grids:  # the case's own grid (改派)
            case.grid = str(row["grid"])
        if "deadline" in row or "ack_due" in row:
            case.due = _due(status, _when(row.get("deadline")), _when(row.get("ack_due")))
        if (case.status, case.due, case.grid) != before:  # only a change is pushed: pages reload
            self._changed_cases.append(
                {"case": case.id, "site": case.site, "grid": case.grid, "type": "row"}
            )

    def row_overdue(self, row: dict[str, Any]) -> bool:
        """A case API row past its own deadline (rectify-by or acknowledge-by) in data time."""
        try:
            due = _due(
                CaseStatus(row.get("status")), _when(row.get("deadline")), _when(row.get("ack_due"))
            )
        except ValueError:
            return False
        return due is not None and self.data_now is not None and due < self.data_now

    def _advance(self, at: datetime) -> None:
        if self.data_now is None or at > self.data_now:
            self.data_now = at

    def _forget_old_cases(self) -> None:
        while len(self.cases) > CASES_KEPT:
            victim = next((k for k, c in self.cases.items() if not c.open), None)
            self.cases.pop(victim if victim is not None else next(iter(self.cases)))

    # -- views ---------------------------------------------------------------------------------

    def site_view(self, site_id: str) -> dict[str, Any]:
        state = self.sites[site_id]
        values = {}
        for code, v in state.values.items():
            values[code] = {
                **v,
                "name": SHORT_NAMES.get(code, code),
                "limit": limit_view(self.limit(site_id, code)),
                "unit": UNITS.get(code, ""),
            }
        return {
            "id": site_id,
            "kind": state.site.kind.value,
            "o2_reference": state.o2_reference,
            # From this O2 a stack's values are not judged (the gas is mostly air).
            "high_o2": self.high_o2 if state.o2_reference is not None else None,
            "status": state.status(),
            "ts": state.ts.isoformat() if state.ts else None,
            "aqi": state.aqi,
            "values": values,
            "offline_devices": sorted(state.devices_offline),
            "findings": [
                {
                    "rule": f.rule.value,
                    "rule_name": both(rule_name, f.rule),
                    "pollutant": f.pollutant,
                    "severity": f.severity.value,
                    "detail": both(finding_text, f),
                    "flags": f.flags,
                    "at": f.at.isoformat(),
                }
                for f in state.findings.values()
            ],
        }

    def overdue(self, case: CaseState) -> bool:
        return (
            case.status in (CaseStatus.REMINDED, CaseStatus.ESCALATED)
            and case.due is not None
            and self.data_now is not None
            and case.due < self.data_now
        )

    def case_counts(self, grids: frozenset[str] | None) -> dict[str, Any]:
        """Open cases by grid and state, and the overdue ones, for the grids a caller sees."""
        counts: dict[str, dict[str, int]] = {}
        for gid in self.catalogue.grids:
            if grids is None or gid in grids:
                counts[gid] = {s.value: 0 for s in OPEN_STATES} | {"overdue": 0}
        overdue: list[str] = []
        for case in self.cases.values():
            if not case.open or case.grid not in counts:
                continue
            counts[case.grid][case.status.value] += 1
            if self.overdue(case):
                counts[case.grid]["overdue"] += 1
                overdue.append(case.id)
        return {"by_grid": counts, "overdue": overdue}

    def trail(self, case_id: str) -> dict[str, Any] | None:
        case = self.cases.get(case_id)
        if case is None:
            return None
        return {
            "id": case.id,
            "site": case.site,
            "grid": case.grid,
            "status": case.status.value,
            "overdue": self.overdue(case),
            "due": case.due.isoformat() if case.due else None,
            "trail": list(case.trail),
        }

    def take_changes(self) -> tuple[list[str], list[dict[str, Any]]]:
        """The sites and case turns changed since the last call (the web edge pushes them)."""
        sites, self._changed_sites = sorted(self._changed_sites), set()
        cases, self._changed_cases = self._changed_cases, []
        return sites, cases
