"""People's acts on a case (streams/judging/cases.py): once-only action ids, findings with a
site visit, comments (备注), supervision (督办), reassignment (改派), and what each caller is
offered."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from ecowatch.clock import CHINA
from ecowatch.config.catalogue import Catalogue
from ecowatch.schema import (
    Audience,
    CaseStatus,
    CaseStep,
    Location,
    OfficerAction,
)
from ecowatch.streams.api.actions import check_action
from ecowatch.streams.api.requests import Refusal
from ecowatch.streams.judging.cases import (
    ACTION_IDS_KEPT,
    Acknowledge,
    Case,
    CaseError,
    Comment,
    Reassign,
    RecordFindings,
    Step,
    Supervise,
    offered,
    officer_input,
    step,
)
from ecowatch.streams.judging.engine import (
    ACTION_IDS_FLOOR,
    SITE_CASES_BYTES,
    SiteCases,
    bounded,
    case_context,
    on_action,
    on_findings,
    on_tick,
    resolved,
)
from ecowatch.streams.judging.report import SiteCaseLog, weekly_report
from tests.factories import SITE, T0, hourly_cod, site_cases

SHA = "ab" * 32
NOW = T0 + timedelta(hours=2, minutes=5)  # the case went to the officers at T0 + 2 h


def case_at(catalogue: Catalogue, after: timedelta) -> Case:
    (case,) = site_cases(catalogue, after).cases.values()
    return case


def act(catalogue: Catalogue, case: Case, what: object, now: datetime = NOW) -> Step:
    policy = catalogue.policy_for(case.evidence.rule, case.evidence.pollutant, case.severity)
    context = case_context(catalogue, case)  # the case's own grid's (改派)
    return step(case, what, now, policy, context)  # type: ignore[arg-type]


def test_an_action_id_acts_once(catalogue: Catalogue) -> None:
    case = case_at(catalogue, timedelta(hours=2))
    taken, events, _ = act(catalogue, case, Acknowledge(officer="O-KC-01", action_id="a-1"))
    assert [e.kind for e in events] == ["acknowledged"]
    assert events[0].action_id == "a-1" and taken is not None and taken.action_ids == ["a-1"]
    # The same id again, even as another act (a phone's retry, a redelivered record): nothing.
    again, events, notes = act(
        catalogue, taken, Comment(actor="O-KC-01", text="x", action_id="a-1")
    )
    assert (events, notes) == ([], []) and again == taken
    # Another id acts.
    _, events, _ = act(catalogue, taken, Comment(actor="O-KC-02", text="到场", action_id="a-2"))
    assert [(e.kind, e.text, e.action_id) for e in events] == [("commented", "到场", "a-2")]


def test_a_case_keeps_the_latest_action_ids_only(catalogue: Catalogue) -> None:
    case = case_at(catalogue, timedelta(hours=2))
    for n in range(ACTION_IDS_KEPT + 5):
        after, _, _ = act(catalogue, case, Comment(actor="O-KC-01", text=f"{n}", action_id=f"c{n}"))
        assert after is not None
        case = after
    assert len(case.action_ids) == ACTION_IDS_KEPT
    assert case.action_ids[0] == "c5" and case.action_ids[-1] == f"c{ACTION_IDS_KEPT + 4}"


def test_the_act_that_closes_a_case_is_known_after_it_is_gone(catalogue: Catalogue) -> None:
    """Findings asking to close a case whose data has held normal close it at once: the case
    leaves the table, and the site's case log keeps the act's id (a retry is a duplicate)."""
    state = site_cases(catalogue, timedelta(hours=2))
    (case,) = state.cases.values()
    state, _ = on_findings(state, [hourly_cod(130, active=False)], NOW, catalogue)
    later = NOW + timedelta(days=2)
    close = RecordFindings(officer="O-KC-01", text="已整改", close=True, action_id="close-1")
    state, out = on_action(state, case.id, close, later, catalogue)
    assert not state.cases and out.events[-1].kind == "closed"
    assert {e.action_id for e in out.events} == {"close-1"}
    (gone,) = SiteCaseLog().add(out.events).events
    assert (gone.case_id, gone.kind, gone.action_id) == (case.id, "closed", "close-1")


def test_findings_carry_the_site_visit(catalogue: Catalogue) -> None:
    case = case_at(catalogue, timedelta(hours=2))
    where = Location(lat=28.97, lon=118.87, accuracy_m=12)
    found = RecordFindings(
        officer="O-KC-01",
        text="排口有异味，已取样",
        photos=(SHA,),
        location=where,
        visited_at=NOW - timedelta(minutes=30),
    )
    _, events, _ = act(catalogue, case, found)
    assert [e.kind for e in events] == ["acknowledged", "findings_recorded"]
    recorded = events[1]
    assert (recorded.photos, recorded.location, recorded.visited_at) == (
        (SHA,),
        where,
        NOW - timedelta(minutes=30),
    )
    assert recorded.text == "排口有异味，已取样"


def test_officer_input_maps_each_action(catalogue: Catalogue) -> None:
    base = {"site": SITE, "case_id": "C", "officer": "operator:night", "at": NOW}
    pressed = officer_input(
        OfficerAction(**base, action="supervise", note="尽快", deadline=NOW + timedelta(hours=4))
    )
    assert isinstance(pressed, Supervise) and pressed.note == "尽快"
    assert isinstance(officer_input(OfficerAction(**base, action="comment", text="x")), Comment)
    handed = officer_input(OfficerAction(**base, action="reassign", grid="G-QJ-01", note="属地"))
    assert isinstance(handed, Reassign) and (handed.grid, handed.note) == ("G-QJ-01", "属地")
    with pytest.raises(CaseError) as info:
        officer_input(OfficerAction(**base, action="reopen"))
    assert info.value.code == "unknown_action"


def test_anyone_comments_on_an_open_case_never_on_a_closed_one(catalogue: Catalogue) -> None:
    reminded = case_at(catalogue, timedelta(minutes=30))
    assert reminded.status is CaseStatus.REMINDED
    said = Comment(actor="operator:night", text="关注")
    after, events, notes = act(catalogue, reminded, said, T0 + timedelta(minutes=40))
    assert [e.kind for e in events] == ["commented"] and not notes
    assert after is not None and after.status is CaseStatus.REMINDED  # nothing else moves
    closed = reminded.model_copy(update={"status": CaseStatus.CLOSED})
    with pytest.raises(CaseError) as info:
        act(catalogue, closed, Comment(actor="O-KC-01", text="x"))
    assert info.value.code == "case_closed"


def test_supervising_presses_the_grids_officers(catalogue: Catalogue) -> None:
    case = case_at(catalogue, timedelta(hours=2))
    due = NOW + timedelta(hours=6)
    pressed = Supervise(operator="operator:night", note="今日内到场核查", deadline=due)
    after, events, notes = act(catalogue, case, pressed)
    assert after is not None
    (event,) = events
    assert (event.kind, event.actor, event.note, event.deadline) == (
        "supervised",
        "operator:night",
        "今日内到场核查",
        due,
    )
    (note,) = notes
    assert (note.step, note.audience, note.deadline, note.note) == (
        CaseStep.SUPERVISE,
        Audience.OFFICERS,
        due,
        "今日内到场核查",
    )
    assert set(note.recipients) == {"O-KC-01", "O-KC-02"}
    # Not yet acknowledged: the officers' acknowledge-by is the operator's deadline now.
    assert after.ack_due == due and after.supervised_due == due and after.supervised == 1
    # A second 督办 is a second notification (its own idempotency key).
    _, _, again = act(catalogue, after, pressed.model_copy(update={"deadline": due + timedelta(1)}))
    assert again[0].key != note.key


def test_supervising_wants_the_officers_to_hold_it_and_a_deadline_ahead(
    catalogue: Catalogue,
) -> None:
    reminded = case_at(catalogue, timedelta(minutes=30))
    assert reminded.status is CaseStatus.REMINDED
    pressed = Supervise(operator="operator:night", note="x", deadline=NOW + timedelta(hours=1))
    with pytest.raises(CaseError) as info:
        act(catalogue, reminded, pressed)
    assert info.value.code == "not_escalated"
    escalated = case_at(catalogue, timedelta(hours=2))
    with pytest.raises(CaseError) as info:
        act(catalogue, escalated, pressed.model_copy(update={"deadline": NOW}))
    assert info.value.code == "deadline_passed"


def test_acknowledging_wants_an_escalated_case(catalogue: Catalogue) -> None:
    reminded = case_at(catalogue, timedelta(minutes=30))
    with pytest.raises(CaseError, match="has not reached the officers yet") as info:
        act(catalogue, reminded, Acknowledge(officer="O-KC-01"))
    assert info.value.code == "not_escalated"


# -- what a caller is offered is what the API accepts -------------------------------------------


def _action(case: Case, name: str, who: str) -> OfficerAction:
    base = {"site": SITE, "case_id": case.id, "officer": who, "at": NOW}
    if name == "ack":
        return OfficerAction(**base, action="acknowledge")
    if name in ("findings", "photos"):  # a photo is taken for findings
        return OfficerAction(**base, action="findings", text="到场")
    if name == "comment":
        return OfficerAction(**base, action="comment", text="备注")
    if name == "reassign":
        return OfficerAction(**base, action="reassign", grid="G-QJ-01", note="属衢江区")
    return OfficerAction(**base, action="supervise", note="督办", deadline=NOW + timedelta(hours=3))


@pytest.mark.parametrize("after", [timedelta(0), timedelta(minutes=30), timedelta(hours=2)])
@pytest.mark.parametrize("operator", [False, True])
def test_what_is_offered_is_what_is_accepted(
    catalogue: Catalogue, after: timedelta, operator: bool
) -> None:
    case = case_at(catalogue, after)
    cases = [case]
    if case.status is CaseStatus.ESCALATED:
        acked, _, _ = act(catalogue, case, Acknowledge(officer="O-KC-01"))
        assert acked is not None
        cases.append(acked)
    who = "operator:night" if operator else "O-KC-02"
    everything = (
        ("supervise", "reassign", "comment")
        if operator
        else ("ack", "findings", "photos", "comment")
    )
    for one in cases:
        acts = offered(one, operator)
        for name in everything:
            if name in acts:
                check_action(one, [], _action(one, name, who), catalogue)
            else:
                with pytest.raises(Refusal):
                    check_action(one, [], _action(one, name, who), catalogue)
    assert offered(case.model_copy(update={"status": CaseStatus.CLOSED}), operator) == []


def test_a_site_over_its_budget_keeps_fewer_action_ids(catalogue: Catalogue) -> None:
    """Hundreds of open cases, each with its 50 latest ids: the site's record stays within the
    changelog's budget, each case keeping its latest few (a retry comes within minutes)."""
    (case,) = site_cases(catalogue, timedelta(hours=2)).cases.values()
    ids = [f"{n:064d}" for n in range(ACTION_IDS_KEPT)]
    many = {
        f"k{n}": case.model_copy(update={"id": f"C{n}", "key": f"k{n}", "action_ids": ids})
        for n in range(300)
    }
    state = bounded(SiteCases(cases=many))
    assert len(state.model_dump_json().encode()) <= SITE_CASES_BYTES
    kept = [c.action_ids for c in state.cases.values()]
    assert all(k == ids[-len(k) :] and len(k) >= ACTION_IDS_FLOOR for k in kept)


# -- 改派: a case handed to another grid ---------------------------------------------------------


def reassign(catalogue: Catalogue, case: Case, grid: str, now: datetime = NOW, **more: str) -> Step:
    handed = Reassign(operator="operator:night", grid=grid, note="属衢江区管辖", **more)
    return act(catalogue, case, resolved(handed, SITE, catalogue), now)


def test_a_case_the_officers_held_goes_to_the_new_grids_officers(catalogue: Catalogue) -> None:
    case = case_at(catalogue, timedelta(hours=2))
    taken, _, _ = act(catalogue, case, Acknowledge(officer="O-KC-01"))
    assert taken is not None and taken.status is CaseStatus.ACKNOWLEDGED
    later = NOW + timedelta(minutes=10)
    after, events, notes = reassign(catalogue, taken, "G-QJ-01", later)
    assert after is not None
    (event,) = events
    assert (event.kind, event.actor, event.grid, event.note, event.status) == (
        "reassigned",
        "operator:night",
        "G-QJ-01",
        "属衢江区管辖",
        CaseStatus.ESCALATED,
    )
    # Escalated again for the new grid: the acknowledgement gone, the policy's time to take it.
    policy = catalogue.policy_for(case.evidence.rule, case.evidence.pollutant, case.severity)
    assert after.status is CaseStatus.ESCALATED and after.acknowledged_by is None
    assert after.ack_due == later + policy.ack_timeout and after.grid == "G-QJ-01"
    (note,) = notes
    assert (note.step, note.audience, note.grid, note.recipients, note.note) == (
        CaseStep.REASSIGN,
        Audience.OFFICERS,
        "G-QJ-01",
        ["O-QJ-01"],
        "属衢江区管辖",
    )
    assert note.deadline == after.ack_due
    # A second reassignment is a second notification, with its own key.
    _, _, again = reassign(catalogue, after, "G-KC-02", later)
    assert again[0].key != note.key and again[0].grid == "G-KC-02"


def test_a_reassigned_cases_timers_reach_the_new_grid(catalogue: Catalogue) -> None:
    """Renotification and raising run again for the new grid, with keys of their own (the old
    grid's round 1 was sent already: the same key would be dropped as a duplicate)."""
    state = site_cases(catalogue, timedelta(hours=2))
    (case,) = state.cases.values()
    policy = catalogue.policy_for(case.evidence.rule, case.evidence.pollutant, case.severity)
    handed = Reassign(operator="operator:night", grid="G-QJ-01", note="x")
    state, out = on_action(state, case.id, handed, NOW, catalogue)
    (escalated,) = state.cases.values()
    assert escalated.grid == "G-QJ-01" and out.notifications[0].grid == "G-QJ-01"
    state, out = on_tick(state, NOW + policy.ack_timeout, catalogue)
    notes = out.notifications
    assert notes and all(n.grid == "G-QJ-01" for n in notes)
    assert all(n.key.endswith(":g1") for n in notes)
    assert all(e.grid == "G-QJ-01" for e in out.events)  # the trail follows the case


def test_a_reminded_case_only_changes_grid(catalogue: Catalogue) -> None:
    reminded = case_at(catalogue, timedelta(minutes=30))
    after, events, notes = reassign(catalogue, reminded, "G-QJ-01", T0 + timedelta(minutes=40))
    assert after is not None and after.status is CaseStatus.REMINDED and not notes
    assert [(e.kind, e.grid) for e in events] == [("reassigned", "G-QJ-01")]
    # Its escalation, later, goes to the new grid's officers.
    state = SiteCases(cases={after.key: after})
    state, out = on_tick(state, T0 + timedelta(hours=2), catalogue)
    escalation = [n for n in out.notifications if n.step is CaseStep.ESCALATE]
    assert escalation and escalation[0].grid == "G-QJ-01"
    assert escalation[0].recipients == ["O-QJ-01"]


def test_a_pending_case_may_be_reassigned(catalogue: Catalogue) -> None:
    reminded = case_at(catalogue, timedelta(0))
    pending = reminded.model_copy(
        update={"status": CaseStatus.PENDING, "pending_until": T0 + timedelta(hours=1)}
    )
    after, events, notes = reassign(catalogue, pending, "G-LY-01", T0)
    assert after is not None and after.grid == "G-LY-01" and not notes
    assert after.status is CaseStatus.PENDING and events[0].kind == "reassigned"


def test_reassigning_refuses_the_same_grid_an_unknown_one_and_a_closed_case(
    catalogue: Catalogue,
) -> None:
    case = case_at(catalogue, timedelta(hours=2))
    with pytest.raises(CaseError) as info:
        reassign(catalogue, case, "G-KC-01")  # the site's grid: where it is
    assert info.value.code == "no_change"
    with pytest.raises(CaseError) as info:
        reassign(catalogue, case, "G-NOWHERE")
    assert info.value.code == "invalid_field"
    moved, _, _ = reassign(catalogue, case, "G-QJ-01")
    assert moved is not None
    with pytest.raises(CaseError) as info:
        reassign(catalogue, moved, "G-QJ-01")  # its own grid now
    assert info.value.code == "no_change"
    closed = case.model_copy(update={"status": CaseStatus.CLOSED})
    with pytest.raises(CaseError) as info:
        reassign(catalogue, closed, "G-QJ-01")
    assert info.value.code == "case_closed"


def test_check_action_judges_by_the_cases_grid(catalogue: Catalogue) -> None:
    """An officer of the new grid acts on a reassigned case; one of the old grid does not, nor
    once a 改派 is in flight."""
    case = case_at(catalogue, timedelta(hours=2))
    base = {"site": SITE, "case_id": case.id, "at": NOW}
    handed = OfficerAction(**base, officer="operator:night", action="reassign", grid="G-QJ-01")
    ack_kc = OfficerAction(**base, officer="O-KC-01", action="acknowledge")
    ack_qj = OfficerAction(**base, officer="O-QJ-01", action="acknowledge")
    kc, qj = frozenset({"G-KC-01"}), frozenset({"G-QJ-01"})
    check_action(case, [], ack_kc, catalogue, kc)
    with pytest.raises(Refusal) as info:
        check_action(case, [handed], ack_kc, catalogue, kc)
    assert (info.value.status, info.value.code) == (403, "not_your_grid")
    check_action(case, [handed], ack_qj, catalogue, qj)
    moved, _, _ = reassign(catalogue, case, "G-QJ-01")
    assert moved is not None
    with pytest.raises(Refusal) as info:
        check_action(moved, [], ack_kc, catalogue, kc)
    assert info.value.code == "not_your_grid"
    unknown = handed.model_copy(update={"grid": "G-NOWHERE"})
    with pytest.raises(Refusal) as info:
        check_action(case, [], unknown, catalogue)
    assert (info.value.status, info.value.code, info.value.field) == (400, "invalid_field", "grid")
    same = handed.model_copy(update={"grid": "G-KC-01"})
    with pytest.raises(Refusal) as info:
        check_action(case, [], same, catalogue)
    assert (info.value.status, info.value.code) == (409, "no_change")


def test_the_settlement_counts_a_reassigned_case_in_its_grid(catalogue: Catalogue) -> None:
    case = case_at(catalogue, timedelta(hours=2))
    moved, _, _ = reassign(catalogue, case, "G-QJ-01")
    assert moved is not None
    monday = T0 - timedelta(days=T0.astimezone(CHINA).weekday())
    week = monday.astimezone(CHINA).replace(hour=0, minute=0, second=0, microsecond=0)
    acked = Acknowledge(officer="O-QJ-01")
    _, taken, _ = act(catalogue, moved, resolved(acked, SITE, catalogue))
    rows = {
        r.grid: r
        for r in weekly_report(
            taken,
            [moved],
            week,
            catalogue,
            grid_counts=[("G-QJ-01", week.date(), "closed", 1)],
        )
    }
    assert rows["G-QJ-01"].open_at_end == 1 and rows["G-KC-01"].open_at_end == 0
    assert rows["G-QJ-01"].acknowledged == 1 and rows["G-KC-01"].acknowledged == 0
    assert rows["G-QJ-01"].closed == 1
