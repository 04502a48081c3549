"""The case state machine: every transition and its edges, on a manual timeline."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from ecowatch.schema import Audience, CaseStatus, CaseStep, Finding, Rule
from ecowatch.streams.judging.cases import (
    Acknowledge,
    Case,
    CaseContext,
    CaseError,
    Policy,
    RecordFindings,
    Seen,
    Tick,
    next_due,
    open_case,
    step,
)
from tests.factories import T0
from tests.factories import hourly_cod as finding

POLICY = Policy(
    pending=timedelta(minutes=10),
    deadline=timedelta(hours=2),
    ack_timeout=timedelta(minutes=30),
    renotify=1,
    hold=timedelta(hours=1),
    recur_window=timedelta(days=7),
    measure="按日连续处罚 (EPL Art. 59)",
)
CONTEXT = CaseContext(
    site="S-OUT-001",
    site_name="巨化精细化工总排口",
    enterprise="E-001",
    grid="G-KC-01",
    officers=["O-KC-01", "O-KC-02"],
    supervisors=["S-KC"],
)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


class Timeline:
    """Feeds a case events and collects everything it says, as the worker does."""

    def __init__(self, first: Finding, policy: Policy = POLICY, **kw: object) -> None:
        self.policy = policy
        case, self.events, self.notes = open_case(first, first.at, policy, CONTEXT, **kw)
        self.case: Case | None = case

    def feed(self, event: object, minutes: float) -> None:
        assert self.case is not None
        self.case, events, notes = step(self.case, event, at(minutes), self.policy, CONTEXT)  # type: ignore[arg-type]
        self.events += events
        self.notes += notes

    @property
    def kinds(self) -> list[str]:
        return [e.kind for e in self.events]

    @property
    def steps(self) -> list[tuple[CaseStep, Audience]]:
        return [(n.step, n.audience) for n in self.notes]


def test_a_single_spike_opens_nothing_that_reaches_people():
    t = Timeline(finding(0))
    assert t.case is not None and t.case.status is CaseStatus.PENDING
    t.feed(Seen(finding=finding(5, active=False)), 5)  # recovery during the pending period
    assert t.case is None  # dismissed: forgotten
    assert t.kinds == ["detected", "normal_again", "dismissed"]
    assert t.notes == []


def test_a_persisting_finding_reminds_the_enterprise_once_the_pending_period_is_over():
    t = Timeline(finding(0))
    t.feed(Seen(finding=finding(5)), 5)
    assert t.case.status is CaseStatus.PENDING and t.notes == []
    assert next_due(t.case) == at(10)
    t.feed(Tick(), 9.99)
    assert t.notes == []
    t.feed(Tick(), 10)  # exactly at the end of the pending period
    assert t.case.status is CaseStatus.REMINDED
    assert t.steps == [(CaseStep.REMIND, Audience.ENTERPRISE)]
    remind = t.notes[0]
    assert remind.recipients == ["E-001"] and remind.deadline == at(130)
    assert remind.key == f"{t.case.id}:remind:enterprise:0"
    assert remind.proposed_measure == ""  # a reminder proposes no penalty


def test_repeat_findings_update_the_case_and_never_duplicate_it():
    t = Timeline(finding(0))
    t.feed(Tick(), 10)
    for m in (20, 30, 40):
        t.feed(Seen(finding=finding(m, value=90.0)), m)
    assert t.case.occurrences == 4 and t.case.last_seen == at(40)
    assert t.case.evidence.value == 90.0
    assert len(t.notes) == 1  # still only the reminder


def escalated() -> Timeline:
    t = Timeline(finding(0))
    t.feed(Tick(), 10)
    t.feed(Tick(), 130)  # the deadline passes, the data is still over the limit
    return t


def test_past_the_deadline_the_officers_get_the_case_with_the_proposed_measure():
    t = escalated()
    assert t.case.status is CaseStatus.ESCALATED
    assert t.steps[-1] == (CaseStep.ESCALATE, Audience.OFFICERS)
    note = t.notes[-1]
    assert note.recipients == ["O-KC-01", "O-KC-02"]
    assert note.proposed_measure.startswith("按日连续处罚")
    assert note.deadline == at(160)  # to acknowledge
    assert note.evidence.rule is Rule.HOURLY_OVER_LIMIT and note.evidence.value is not None


def test_no_acknowledgement_renotifies_then_raises_to_the_supervisor():
    t = escalated()
    t.feed(Tick(), 159)
    assert t.steps[-1] == (CaseStep.ESCALATE, Audience.OFFICERS)
    t.feed(Tick(), 160)
    assert t.steps[-1] == (CaseStep.RENOTIFY, Audience.OFFICERS)
    assert t.notes[-1].key.endswith(":renotify:officers:1")
    t.feed(Tick(), 190)
    assert t.steps[-1] == (CaseStep.RAISE, Audience.SUPERVISOR)
    assert t.notes[-1].recipients == ["S-KC"]
    t.feed(Tick(), 400)
    assert len(t.notes) == 4  # nothing more: the supervisor has it


def test_a_late_tick_renotifies_and_gives_the_officers_their_full_time_from_then():
    t = escalated()
    t.feed(Tick(), 300)  # the worker was away when the timeout fell due
    assert t.steps[-1] == (CaseStep.RENOTIFY, Audience.OFFICERS)
    assert next_due(t.case) == at(330)  # 30 minutes from the renotification actually sent
    t.feed(Tick(), 330)
    assert t.steps[-1] == (CaseStep.RAISE, Audience.SUPERVISOR)


def test_an_acknowledgement_stops_the_renotification():
    t = escalated()
    t.feed(Acknowledge(officer="O-KC-02"), 150)
    assert t.case.status is CaseStatus.ACKNOWLEDGED and t.case.acknowledged_by == "O-KC-02"
    assert next_due(t.case) is None
    t.feed(Tick(), 500)
    assert [s for s, _ in t.steps] == [CaseStep.REMIND, CaseStep.ESCALATE]


def test_an_acknowledgement_racing_the_renotification():
    t = escalated()
    t.feed(Acknowledge(officer="O-KC-01"), 160)  # the ack and the timeout at the same instant
    t.feed(Tick(), 160)
    assert CaseStep.RENOTIFY not in [s for s, _ in t.steps]
    # ... and one that lost the race: renotified first, acknowledged right after.
    u = escalated()
    u.feed(Tick(), 160)
    u.feed(Acknowledge(officer="O-KC-01"), 160)
    u.feed(Tick(), 400)
    assert [s for s, _ in u.steps].count(CaseStep.RENOTIFY) == 1
    assert CaseStep.RAISE not in [s for s, _ in u.steps]


def test_a_second_acknowledgement_changes_nothing():
    t = escalated()
    t.feed(Acknowledge(officer="O-KC-01"), 140)
    t.feed(Acknowledge(officer="O-KC-02"), 141)
    assert t.case.acknowledged_by == "O-KC-01"
    assert t.kinds.count("acknowledged") == 1


def test_closing_needs_both_the_hold_period_and_the_officers_findings():
    t = escalated()
    t.feed(Acknowledge(officer="O-KC-01"), 150)
    t.feed(Seen(finding=finding(200, active=False)), 200)  # normal again
    t.feed(RecordFindings(officer="O-KC-01", text="现场检查：曝气池故障已修复", close=True), 210)
    assert t.case.status is CaseStatus.ACKNOWLEDGED  # the hold is not over
    t.feed(Tick(), 259)
    assert t.case.status is CaseStatus.ACKNOWLEDGED
    t.feed(Tick(), 260)  # an hour of normal data
    assert t.case.status is CaseStatus.CLOSED and t.case.closed_at == at(260)
    closed = [e for e in t.events if e.kind == "closed"]
    assert closed[0].actor == "O-KC-01"
    assert t.steps[-2:] == [
        (CaseStep.CLOSED, Audience.ENTERPRISE),
        (CaseStep.CLOSED, Audience.OFFICERS),
    ]


def test_the_hold_starts_over_when_the_data_relapses():
    t = escalated()
    t.feed(RecordFindings(officer="O-KC-01", text="已责令整改", close=True), 150)
    t.feed(Seen(finding=finding(200, active=False)), 200)
    t.feed(Seen(finding=finding(230)), 230)  # over the limit again: no flapping
    t.feed(Seen(finding=finding(240, active=False)), 240)
    t.feed(Tick(), 270)  # 70 min after the first recovery, 30 after the second
    assert t.case.status is CaseStatus.ACKNOWLEDGED
    t.feed(Tick(), 300)
    assert t.case.status is CaseStatus.CLOSED
    assert "relapsed" in t.kinds


def test_normal_data_without_findings_does_not_close_an_escalated_case():
    t = escalated()
    t.feed(Acknowledge(officer="O-KC-01"), 150)
    t.feed(Seen(finding=finding(160, active=False)), 160)
    t.feed(Tick(), 1000)
    assert t.case.status is CaseStatus.ACKNOWLEDGED


def test_a_reminder_that_worked_closes_without_the_officers():
    t = Timeline(finding(0))
    t.feed(Tick(), 10)
    t.feed(Seen(finding=finding(100, active=False)), 100)
    t.feed(Tick(), 130)  # the deadline passes while the data is normal: no escalation
    assert t.case.status is CaseStatus.REMINDED
    t.feed(Tick(), 159)
    assert t.case.status is CaseStatus.REMINDED
    t.feed(Tick(), 160)  # an hour of normal data
    assert t.case.status is CaseStatus.CLOSED
    assert t.steps == [
        (CaseStep.REMIND, Audience.ENTERPRISE),
        (CaseStep.CLOSED, Audience.ENTERPRISE),
    ]


def test_a_recurrence_within_the_window_goes_to_the_officers_at_once():
    t = Timeline(finding(0), last_closed=at(-60 * 24))  # closed yesterday
    assert t.case.recurrence
    t.feed(Tick(), 10)
    assert [s for s, _ in t.steps] == [CaseStep.REMIND, CaseStep.ESCALATE]
    old = Timeline(finding(0), last_closed=at(-60 * 24 * 8))  # closed 8 days ago
    old.feed(Tick(), 10)
    assert [s for s, _ in old.steps] == [CaseStep.REMIND]


def test_a_violation_policy_escalates_with_the_reminder():
    violation = POLICY.model_copy(update={"pending": timedelta(0), "deadline": timedelta(0)})
    t = Timeline(finding(0), policy=violation)
    assert [s for s, _ in t.steps] == [CaseStep.REMIND, CaseStep.ESCALATE]


def test_officers_cannot_act_on_a_case_they_do_not_hold():
    t = Timeline(finding(0))
    t.feed(Tick(), 10)
    with pytest.raises(CaseError, match="not reached the officers"):
        t.feed(Acknowledge(officer="O-KC-01"), 20)
    with pytest.raises(CaseError):
        t.feed(RecordFindings(officer="O-KC-01", text="x"), 20)
    c = escalated()
    c.feed(RecordFindings(officer="O-KC-01", text="ok", close=True), 140)
    c.feed(Seen(finding=finding(141, active=False)), 141)
    c.feed(Tick(), 202)
    assert c.case.status is CaseStatus.CLOSED
    with pytest.raises(CaseError, match="closed"):
        c.feed(Acknowledge(officer="O-KC-01"), 203)


def test_findings_recorded_without_an_acknowledgement_take_the_case():
    t = escalated()
    t.feed(RecordFindings(officer="O-KC-02", text="已到现场"), 140)
    assert t.case.acknowledged_by == "O-KC-02" and t.case.status is CaseStatus.ACKNOWLEDGED
    assert t.kinds[-2:] == ["acknowledged", "findings_recorded"]


def test_every_event_has_a_time_and_an_actor_and_the_case_survives_json():
    t = escalated()
    t.feed(Acknowledge(officer="O-KC-01"), 150)
    assert all(e.at is not None and e.actor for e in t.events)
    again = Case.model_validate_json(t.case.model_dump_json())
    assert again == t.case


def test_notification_keys_are_unique_per_step_and_round():
    t = escalated()
    t.feed(Tick(), 160)
    t.feed(Tick(), 190)
    keys = [n.key for n in t.notes]
    assert len(keys) == len(set(keys)) == 4


def test_a_district_finding_without_an_enterprise_goes_to_the_officers():
    air = CONTEXT.model_copy(update={"site": "S-AIR-001", "enterprise": None})
    f = finding(0).model_copy(update={"site": "S-AIR-001", "rule": Rule.AQI_OVER_100})
    case, events, notes = open_case(f, f.at, POLICY, air)
    case, more, later = step(case, Tick(), at(10), POLICY, air)
    assert [(n.step, n.audience) for n in notes + later] == [(CaseStep.ESCALATE, Audience.OFFICERS)]
    assert "reminded" not in [e.kind for e in events + more]


def test_an_early_warning_reminds_but_never_pages_the_officers():
    warning = POLICY.model_copy(update={"escalate": False})
    t = Timeline(finding(0), policy=warning)
    t.feed(Tick(), 10)
    assert next_due(t.case) is None  # no deadline to wait for: nobody will be paged
    t.feed(Tick(), 500)
    assert t.steps == [(CaseStep.REMIND, Audience.ENTERPRISE)]
    t.feed(Seen(finding=finding(600, active=False)), 600)
    assert next_due(t.case) == at(660)  # the hold
    t.feed(Tick(), 660)
    assert t.case.status is CaseStatus.CLOSED


def test_next_due_follows_the_hold_of_a_case_an_officer_asked_to_close():
    t = escalated()
    t.feed(RecordFindings(officer="O-KC-01", text="已整改", close=True), 140)
    t.feed(Seen(finding=finding(150, active=False)), 150)
    assert next_due(t.case) == at(210)
