"""Cases: the "detect – remind – penalize" (发现—提醒—处罚) state machine, as pure functions.

A finding opens a case, one per site + pollutant + rule; a repeat finding updates it. The
machine is ``step(case, event, now, policy, context) -> (case, events, notifications)``: no
I/O and no clock of its own, so a worker (Faust table + timers), a replay of last month's
data and the unit tests all run the same code.

    pending ──(still active after the pending period)──▶ reminded ──(deadline passes, data not
      │            remind the enterprise, set a deadline      │      normal)──▶ escalated
      └─(normal again: dismissed, nobody told)               │                    │
                                                              │   no ack in time: renotify,
                                     normal for the hold ─────┘   then raise to the supervisor
                                     (never escalated): closed        │ officer acknowledges
                                                                      ▼
                                                   acknowledged ──(normal for the hold and the
                                                                  officer's findings)──▶ closed

A finding that recurs within ``recur_window`` of a closed case skips the reminder: the new case
goes to the officers at once. A VIOLATION-severity policy may do the same (deadline 0).

People act on an open case too: the grid's officers acknowledge and record findings (with
photos, where and when they were on site: 现场核查), officers and operators comment (备注), an
operator presses the officers with a note and a new deadline (督办) or hands the case to another
grid (改派: a case held by the officers goes to the new grid's, escalated again). Each act may
carry the client's ``action_id``: the case keeps the last :data:`ACTION_IDS_KEPT`, and an act
whose id it holds does nothing, so a retry or a redelivery acts once.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from ecowatch.clock import CHINA
from ecowatch.config.policies import Policy
from ecowatch.schema import (
    Audience,
    CaseEvent,
    CaseReason,
    CaseStatus,
    CaseStep,
    Finding,
    Location,
    Mark,
    MarkEventKind,
    Notification,
    OfficerAction,
    Severity,
)

OPEN = frozenset({CaseStatus.REMINDED, CaseStatus.ESCALATED, CaseStatus.ACKNOWLEDGED})
WITH_OFFICERS = frozenset({CaseStatus.ESCALATED, CaseStatus.ACKNOWLEDGED})
# A case remembers this many of the latest acts' ids: far more than a phone retries, and
# small in the site's table record (each is at most 64 characters).
ACTION_IDS_KEPT = 50


class CaseContext(BaseModel):
    """Who a site's case concerns, from the catalogue."""

    model_config = ConfigDict(frozen=True)

    site: str
    site_name: str = ""
    enterprise: str | None = None
    grid: str
    officers: list[str]
    supervisors: list[str]


class Case(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    key: str  # site|pollutant|rule
    status: CaseStatus
    severity: Severity
    evidence: Finding  # the latest active finding
    first_seen: AwareDatetime
    last_seen: AwareDatetime
    occurrences: int = 1
    recurrence: bool = False  # opened within recur_window of a closed case
    pending_until: AwareDatetime | None = None
    deadline: AwareDatetime | None = None
    ack_due: AwareDatetime | None = None
    renotified: int = 0
    raised: bool = False
    acknowledged_by: str | None = None
    findings: list[str] = Field(default_factory=list)  # the officers' findings, in order
    close_requested_by: str | None = None
    normal_since: AwareDatetime | None = None  # data normal again from (hysteresis)
    hold_until: AwareDatetime | None = None  # normal_since + the policy's hold
    escalates: bool = True  # the policy's: False for early warnings
    closed_at: AwareDatetime | None = None
    history_30d: int = 1
    # Opened from an exceedance found in data resent after an outage (HJ 212 RF=1).
    found_late: bool = False
    action_ids: list[str] = Field(default_factory=list)  # the latest acts', oldest first
    supervised: int = 0  # how many times an operator pressed the officers (督办)
    supervised_due: AwareDatetime | None = None  # the latest 督办's deadline for the officers
    # The grid the case is handled by, once an operator reassigned it (改派); None: its site's.
    grid: str | None = None
    reassigned: int = 0  # how many times; in the notifications' keys from then on


# -- the events a case reacts to ---------------------------------------------------------------


class Seen(BaseModel):
    """A rule's verdict for this case's key (active or back to normal)."""

    finding: Finding


class Tick(BaseModel):
    """Time passes: deadlines and timeouts fall due."""


class Acknowledge(BaseModel):
    officer: str
    action_id: str | None = None


class RecordFindings(BaseModel):
    officer: str
    text: str
    close: bool = False  # the officer asks to close once the data has held normal
    photos: tuple[str, ...] = ()  # SHA-256s of the photos uploaded for the case
    location: Location | None = None
    visited_at: datetime | None = None
    action_id: str | None = None


class Comment(BaseModel):
    """备注: an officer's or an operator's words on the case's trail; it changes nothing else."""

    actor: str
    text: str
    action_id: str | None = None


class Supervise(BaseModel):
    """督办: an operator presses the grid's officers, with a note and a new deadline."""

    operator: str
    note: str
    deadline: datetime
    action_id: str | None = None


class Reassign(BaseModel):
    """改派: an operator hands the case to another grid, saying why. ``to``: the new grid's
    people, from the catalogue (the engine fills it: the machine has no catalogue); None when
    the catalogue has no such grid."""

    operator: str
    grid: str
    note: str = ""
    action_id: str | None = None
    to: CaseContext | None = None


class Marked(BaseModel):
    """The enterprise marked the period of the case's evidence, or an officer reviewed the
    mark (``event``: declared, proof added, accepted, rejected)."""

    mark: Mark
    event: MarkEventKind
    actor: str


PersonInput = Acknowledge | RecordFindings | Comment | Supervise | Reassign
CaseInput = Seen | Tick | Marked | PersonInput
PERSON_INPUTS = (Acknowledge, RecordFindings, Comment, Supervise, Reassign)


class CaseError(ValueError):
    """An action that does not fit the case's state (the API answers 409 with it); ``code``
    says which kind of misfit, for a screen to word in its own language."""

    def __init__(self, message: str, code: str = "conflict") -> None:
        super().__init__(message)
        self.code = code


Step = tuple[Case | None, list[CaseEvent], list[Notification]]


def case_id(finding: Finding) -> str:
    local = finding.at.astimezone(CHINA)
    what = finding.pollutant or finding.device or "site"
    return f"{local:%Y%m%d%H%M%S}-{finding.site}-{what}-{finding.rule.value}"


def open_case(
    finding: Finding,
    now: datetime,
    policy: Policy,
    context: CaseContext,
    last_closed: datetime | None = None,
    history_30d: int = 1,
) -> Step:
    """A first active finding for a key with no open case.

    One found in resent data (``finding.late``) opens it as if seen live, its pending period
    counted from the data's time, then normal from ``now`` (the site's present data has no
    such verdict, or it would have a case): the enterprise is reminded of it as found late,
    and the case closes after the hold unless the data relapses. Nothing is dismissed for
    having come late."""
    recurrence = last_closed is not None and finding.at - last_closed <= policy.recur_window
    case = Case(
        id=case_id(finding),
        key=finding.case_key,
        status=CaseStatus.PENDING,
        severity=finding.severity,
        evidence=finding,
        first_seen=finding.at,
        last_seen=finding.at,
        recurrence=recurrence,
        pending_until=finding.at + policy.pending,
        history_30d=history_30d,
        found_late=finding.late,
    )
    events = [_event(case, "detected", now, evidence=finding)]
    case, more, notes = step(case, Tick(), now, policy, context)
    if finding.late and case is not None:
        normal = finding.model_copy(update={"active": False, "at": now, "late": False})
        case, after, later = step(case, Seen(finding=normal), now, policy, context)
        more, notes = more + after, notes + later
    return case, events + more, notes


def late_evidence(case: Case, finding: Finding, now: datetime) -> CaseEvent:
    """An exceedance found in resent data for a key whose case is open: on its trail, as
    evidence; the case goes on with the present's data."""
    return _event(case, "late_evidence", now, evidence=finding)


def step(case: Case, event: CaseInput, now: datetime, policy: Policy, context: CaseContext) -> Step:
    """One event for an existing case. Returns the new case (None: forget it), what happened,
    and who must be told. Raises CaseError for an officer's action that does not fit."""
    case = case.model_copy(deep=True)
    events: list[CaseEvent] = []
    notes: list[Notification] = []
    acted = isinstance(event, PERSON_INPUTS)
    aid = event.action_id if isinstance(event, PERSON_INPUTS) else None
    if aid is not None and aid in case.action_ids:
        return case, events, notes  # done already: a retry or a redelivery acts once

    if case.status in (CaseStatus.CLOSED, CaseStatus.DISMISSED):
        if acted:
            raise CaseError(f"case {case.id} is {case.status.value}", f"case_{case.status.value}")
        return case, events, notes

    if isinstance(event, Seen):
        _seen(case, event.finding, now, events)
    elif isinstance(event, Marked):
        _marked(case, event, now, context, events, notes)
        if case.status is CaseStatus.CLOSED:
            return case, events, notes
    elif isinstance(event, PERSON_INPUTS):
        _acted(case, event, now, policy, context, events, notes)
        if isinstance(event, Reassign) and event.to is not None:
            context = event.to  # what falls due from now on is the new grid's

    _advance(case, now, policy, context, events, notes)
    if aid is not None:
        case.action_ids = [*case.action_ids, aid][-ACTION_IDS_KEPT:]
        # Each event says the act that made it: a case closed by it, gone from the table,
        # still answers a retry of it as done (the site's case log keeps the id).
        events = [e.model_copy(update={"action_id": aid}) for e in events]
    if case.status is CaseStatus.DISMISSED:
        return None, events, notes
    return case, events, notes


def _acted(
    case: Case,
    event: PersonInput,
    now: datetime,
    policy: Policy,
    context: CaseContext,
    events: list[CaseEvent],
    notes: list[Notification],
) -> None:
    """A person's act on an open (or pending) case; CaseError when it does not fit."""
    if isinstance(event, Comment):
        events.append(_event(case, "commented", now, actor=event.actor, text=event.text))
        return
    if isinstance(event, Reassign):
        _reassign(case, event, now, policy, context, events, notes)
        return
    if case.status not in WITH_OFFICERS:
        if isinstance(event, Acknowledge):
            why = "has not reached the officers yet"
        else:
            why = f"is {case.status.value}: no officer holds it"
        raise CaseError(f"case {case.id} {why}", "not_escalated")
    if isinstance(event, Acknowledge):
        if case.acknowledged_by is None:
            _take(case, event.officer, now, events)
    elif isinstance(event, RecordFindings):
        if case.acknowledged_by is None:  # recording findings is taking the case
            _take(case, event.officer, now, events)
        case.findings.append(f"{event.officer}: {event.text}")
        found = _event(
            case,
            "findings_recorded",
            now,
            actor=event.officer,
            text=event.text,
            photos=event.photos,
            location=event.location,
            visited_at=event.visited_at,
        )
        events.append(found)
        if event.close:
            case.close_requested_by = event.officer
            events.append(_event(case, "close_requested", now, actor=event.officer))
    else:
        if event.deadline <= now:
            due = event.deadline.isoformat()
            raise CaseError(
                f"deadline {due} is not after the case's time now ({now.isoformat()})",
                "deadline_passed",
            )
        case.supervised += 1
        case.supervised_due = event.deadline
        if case.status is CaseStatus.ESCALATED:
            # Nobody has taken it: the operator's deadline is the officers' to acknowledge by
            # (renotify and raise follow from it, as from the policy's).
            case.ack_due = event.deadline
        events.append(
            _event(
                case,
                "supervised",
                now,
                actor=event.operator,
                note=event.note,
                deadline=event.deadline,
            )
        )
        notes.append(
            _note(case, CaseStep.SUPERVISE, Audience.OFFICERS, now, context, policy, event.note)
        )


def _reassign(
    case: Case,
    event: Reassign,
    now: datetime,
    policy: Policy,
    context: CaseContext,
    events: list[CaseEvent],
    notes: list[Notification],
) -> None:
    """改派: the case is the new grid's from now on. One the officers held (escalated or taken)
    goes back to escalated for the new grid's officers, who are told and have the policy's time
    to acknowledge it; before that, only its grid changes (a later escalation goes there)."""
    if event.grid == context.grid:
        raise CaseError(f"case {case.id} is in grid {event.grid} already", "no_change")
    if event.to is None or event.to.grid != event.grid:
        raise CaseError(f"grid: no grid {event.grid!r} in the catalogue", "invalid_field")
    case.grid = event.grid
    case.reassigned += 1
    held = case.status in WITH_OFFICERS
    if held:
        # The old grid's acknowledgement, close request, rounds and 督办 deadline were theirs.
        case.status = CaseStatus.ESCALATED
        case.acknowledged_by = case.close_requested_by = None
        case.ack_due = now + policy.ack_timeout
        case.renotified, case.raised = 0, False
        case.supervised_due = None
    events.append(
        _event(case, "reassigned", now, actor=event.operator, note=event.note, grid=event.grid)
    )
    if held:
        notes.append(
            _note(case, CaseStep.REASSIGN, Audience.OFFICERS, now, event.to, policy, event.note)
        )


def _take(case: Case, officer: str, now: datetime, events: list[CaseEvent]) -> None:
    case.acknowledged_by = officer
    case.status = CaseStatus.ACKNOWLEDGED
    case.ack_due = None
    events.append(_event(case, "acknowledged", now, actor=officer))


def _seen(case: Case, finding: Finding, now: datetime, events: list[CaseEvent]) -> None:
    if finding.active:
        case.evidence = finding
        case.last_seen = finding.at
        case.occurrences += 1
        if case.normal_since is not None:  # active again: the hold starts over (no flapping)
            case.normal_since = None
            events.append(_event(case, "relapsed", now, evidence=finding))
    elif case.normal_since is None:
        case.normal_since = finding.at
        events.append(_event(case, "normal_again", now, evidence=finding))


def _advance(
    case: Case,
    now: datetime,
    policy: Policy,
    context: CaseContext,
    events: list[CaseEvent],
    notes: list[Notification],
) -> None:
    """Let the timers and conditions move the case as far as they go at ``now``."""
    case.escalates = policy.escalate
    case.hold_until = case.normal_since + policy.hold if case.normal_since else None
    held = case.hold_until is not None and now >= case.hold_until

    if case.status is CaseStatus.PENDING:
        if case.normal_since is not None:
            case.status = CaseStatus.DISMISSED
            why = CaseReason.NORMAL_WHILE_PENDING
            events.append(_event(case, "dismissed", now, reason=why))
            return
        if case.pending_until is not None and now < case.pending_until:
            return
        case.status = CaseStatus.REMINDED
        if context.enterprise is None:
            # An air station's finding is the district's: nobody to remind, officers at once.
            case.deadline = now
        else:
            case.deadline = now + (timedelta(0) if case.recurrence else policy.deadline)
            events.append(_event(case, "reminded", now, deadline=case.deadline))
            notes.append(_note(case, CaseStep.REMIND, Audience.ENTERPRISE, now, context, policy))

    if case.status is CaseStatus.REMINDED:
        if held:
            _close(
                case,
                now,
                context,
                events,
                notes,
                actor="system",
                reason=CaseReason.NORMAL_FOR_HOLD,
            )
            return
        if (
            policy.escalate
            and case.deadline is not None
            and now >= case.deadline
            and case.normal_since is None
        ):
            case.status = CaseStatus.ESCALATED
            case.ack_due = now + policy.ack_timeout
            why = CaseReason.RECURRED if case.recurrence else CaseReason.PERSISTED
            events.append(_event(case, "escalated", now, reason=why))
            notes.append(_note(case, CaseStep.ESCALATE, Audience.OFFICERS, now, context, policy))

    if case.status is CaseStatus.ESCALATED:
        while case.ack_due is not None and now >= case.ack_due:
            if case.renotified < policy.renotify:
                case.renotified += 1
                events.append(_event(case, "renotified", now, round=case.renotified))
                notes.append(
                    _note(case, CaseStep.RENOTIFY, Audience.OFFICERS, now, context, policy)
                )
                case.ack_due = now + policy.ack_timeout
            elif not case.raised:
                case.raised = True
                events.append(_event(case, "raised", now))
                notes.append(_note(case, CaseStep.RAISE, Audience.SUPERVISOR, now, context, policy))
                case.ack_due = None
            else:
                case.ack_due = None

    if (
        case.status is CaseStatus.ACKNOWLEDGED
        and held
        and case.findings
        and case.close_requested_by is not None
    ):
        _close(
            case,
            now,
            context,
            events,
            notes,
            actor=case.close_requested_by,
            reason=CaseReason.FINDINGS_AND_HOLD,
        )


def _marked(
    case: Case,
    event: Marked,
    now: datetime,
    context: CaseContext,
    events: list[CaseEvent],
    notes: list[Notification],
) -> None:
    """A mark on the case's evidence: on its trail; when declared, the officers review it
    (a mark never ends evidence behind their back); accepted, the case closes; rejected, it
    goes on as before."""
    mark, actor = event.mark, event.actor
    if event.event is MarkEventKind.DECLARED:
        events.append(_event(case, "mark_declared", now, actor=actor, mark=mark))
        note = _note(case, CaseStep.MARK_REVIEW, Audience.OFFICERS, now, context, None)
        # One review request per mark: its id is in the idempotency key.
        notes.append(note.model_copy(update={"key": f"{note.key}:{mark.id}", "mark": mark}))
    elif event.event is MarkEventKind.PROOF_ADDED:
        events.append(_event(case, "mark_proof_added", now, actor=actor, mark=mark))
    elif event.event is MarkEventKind.REJECTED:
        events.append(_event(case, "mark_rejected", now, actor=actor, mark=mark))
    elif event.event is MarkEventKind.ACCEPTED:
        events.append(_event(case, "mark_accepted", now, actor=actor, mark=mark))
        _close(case, now, context, events, notes, actor=actor, reason=CaseReason.MARK_ACCEPTED)


def _close(
    case: Case,
    now: datetime,
    context: CaseContext,
    events: list[CaseEvent],
    notes: list[Notification],
    actor: str,
    reason: CaseReason,
) -> None:
    case.status = CaseStatus.CLOSED
    case.closed_at = now
    case.deadline = case.ack_due = None
    events.append(_event(case, "closed", now, actor=actor, reason=reason))
    if context.enterprise is not None:
        notes.append(_note(case, CaseStep.CLOSED, Audience.ENTERPRISE, now, context, None))
    if case.acknowledged_by is not None or case.renotified or case.raised:
        notes.append(_note(case, CaseStep.CLOSED, Audience.OFFICERS, now, context, None))


def next_due(case: Case) -> datetime | None:
    """When the case next needs a Tick (the worker's timer)."""
    if case.status is CaseStatus.PENDING:
        return case.pending_until
    times: list[datetime | None] = []
    if case.status is CaseStatus.REMINDED:
        times = [case.deadline if case.escalates else None, case.hold_until]
    elif case.status is CaseStatus.ESCALATED:
        times = [case.ack_due]
    elif case.status is CaseStatus.ACKNOWLEDGED and case.close_requested_by and case.findings:
        times = [case.hold_until]
    due = [t for t in times if t is not None]
    return min(due) if due else None


def _event(case: Case, kind: str, at: datetime, actor: str = "system", **facts: Any) -> CaseEvent:
    # A reassigned case's every event names its grid: the console and the settlement's trail
    # follow the case, not its site.
    facts.setdefault("grid", case.grid)
    return CaseEvent(
        case_id=case.id,
        site=case.evidence.site,
        kind=kind,
        at=at,
        actor=actor,
        status=case.status,
        **facts,
    )


def _note(
    case: Case,
    step_: CaseStep,
    audience: Audience,
    now: datetime,
    context: CaseContext,
    policy: Policy | None,
    note: str = "",  # an operator's words to the officers (督办, 改派)
) -> Notification:
    if audience is Audience.ENTERPRISE:
        recipients = [context.enterprise] if context.enterprise else []
    elif audience is Audience.OFFICERS:
        recipients = list(context.officers)
    else:
        recipients = list(context.supervisors)
    round_ = {
        CaseStep.RENOTIFY: case.renotified,
        CaseStep.SUPERVISE: case.supervised,
        CaseStep.REASSIGN: case.reassigned,
    }.get(step_, 0)
    deadline = {CaseStep.REMIND: case.deadline, CaseStep.SUPERVISE: case.supervised_due}.get(
        step_, case.ack_due
    )
    key = f"{case.id}:{step_.value}:{audience.value}:{round_}"
    if case.reassigned:
        # The new grid's renotifications and raise start again at round 1: their keys must
        # not be taken for the old grid's, already sent.
        key += f":g{case.reassigned}"
    return Notification(
        key=key,
        case_id=case.id,
        step=step_,
        audience=audience,
        site=context.site,
        site_name=context.site_name,
        enterprise=context.enterprise,
        grid=context.grid,
        recipients=recipients,
        severity=case.severity,
        rule=case.evidence.rule,
        pollutant=case.evidence.pollutant,
        evidence=case.evidence,
        deadline=deadline if step_ is not CaseStep.CLOSED else None,
        history_30d=case.history_30d,
        proposed_measure=policy.measure if policy and step_ is not CaseStep.REMIND else "",
        created_at=now,
        note=note,
    )


def officer_input(action: OfficerAction) -> PersonInput:
    """What an officer's or operator's action (Kafka ``ecowatch.actions``) asks of the case."""
    who, aid = action.officer, action.action_id
    if action.action == "acknowledge":
        return Acknowledge(officer=who, action_id=aid)
    if action.action == "findings":
        return RecordFindings(
            officer=who,
            text=action.text,
            close=action.close,
            photos=action.photos,
            location=action.location,
            visited_at=action.visited_at,
            action_id=aid,
        )
    if action.action == "comment":
        return Comment(actor=who, text=action.text, action_id=aid)
    if action.action == "supervise" and action.deadline is not None:
        return Supervise(operator=who, note=action.note, deadline=action.deadline, action_id=aid)
    if action.action == "reassign" and action.grid is not None:
        return Reassign(operator=who, grid=action.grid, note=action.note, action_id=aid)
    raise CaseError(f"no such action {action.action!r}", "unknown_action")


def offered(case: Case, operator: bool) -> list[str]:
    """What the caller may do on the case now, by the case API's names: an officer of its grid
    (``operator`` False) or an operator. The API refuses what this leaves out."""
    if case.status in (CaseStatus.CLOSED, CaseStatus.DISMISSED):
        return []
    held = case.status in WITH_OFFICERS
    if operator:
        return ["comment", "supervise", "reassign"] if held else ["comment", "reassign"]
    acts = ["ack"] if case.status is CaseStatus.ESCALATED and case.acknowledged_by is None else []
    return [*acts, "findings", "photos", "comment"] if held else ["comment"]
