"""A site's cases driven through the engine, with the sample catalogue's policies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ecowatch.alerts.templates import render
from ecowatch.alerts.wording import case_event_text
from ecowatch.schema import Audience, CaseStatus, CaseStep, Finding, Rule, Severity
from ecowatch.streams.judging.cases import Acknowledge, CaseError, RecordFindings
from ecowatch.streams.judging.engine import (
    SITE_CASES_BYTES,
    SiteCases,
    context_for,
    due,
    on_action,
    on_findings,
    on_tick,
)
from tests.factories import T0
from tests.factories import hourly_cod as hourly


def daily(day: int) -> Finding:
    return Finding(
        site="S-OUT-001",
        device="33080200000001",
        pollutant="w01018",
        rule=Rule.DAILY_OVER_LIMIT,
        severity=Severity.VIOLATION,
        active=True,
        at=T0 + timedelta(days=day),
        value=65.0,
        limit=50.0,
        multiple=1.3,
        unit="mg/L",
    )


def test_the_context_comes_from_the_catalogue(catalogue):
    ctx = context_for(catalogue, "S-OUT-001")
    assert ctx.enterprise == "E-001" and ctx.grid == "G-KC-01"
    assert ctx.officers and ctx.supervisors
    assert not set(ctx.officers) & set(ctx.supervisors)


def test_an_hourly_exceedance_reminds_then_escalates_on_the_catalogue_policy(catalogue):
    state, out = on_findings(SiteCases(), [hourly(0)], T0, catalogue)
    # hourly_over_limit: pending 0, deadline 2h (tests/catalogue.py)
    assert [(n.step, n.audience) for n in out.notifications] == [
        (CaseStep.REMIND, Audience.ENTERPRISE)
    ]
    assert due(state) == T0 + timedelta(hours=2)
    state, out = on_findings(state, [hourly(60)], T0 + timedelta(minutes=60), catalogue)
    assert out.notifications == [] and len(state.cases) == 1  # updated, not duplicated
    state, out = on_tick(state, T0 + timedelta(hours=2), catalogue)
    assert [(n.step, n.audience) for n in out.notifications] == [
        (CaseStep.ESCALATE, Audience.OFFICERS)
    ]
    assert "第五十九条" in out.notifications[0].proposed_measure


def test_a_daily_violation_goes_to_the_officers_at_once(catalogue):
    _, out = on_findings(SiteCases(), [daily(0)], T0, catalogue)
    assert [n.step for n in out.notifications] == [CaseStep.REMIND, CaseStep.ESCALATE]


def test_officers_close_a_case_and_a_recurrence_skips_the_reminder(catalogue):
    state, _ = on_findings(SiteCases(), [hourly(0)], T0, catalogue)
    state, _ = on_tick(state, T0 + timedelta(hours=2), catalogue)
    (case,) = state.cases.values()
    officer = context_for(catalogue, "S-OUT-001").officers[0]
    state, out = on_action(
        state, case.id, Acknowledge(officer=officer), T0 + timedelta(hours=2, minutes=5), catalogue
    )
    assert out.events[0].kind == "acknowledged" and out.events[0].actor == officer
    t = T0 + timedelta(hours=3)
    state, _ = on_findings(state, [hourly(180, active=False)], t, catalogue)
    state, out = on_action(
        state, case.id, RecordFindings(officer=officer, text="已整改", close=True), t, catalogue
    )
    state, out = on_tick(state, t + timedelta(hours=2), catalogue)  # hold 2h
    assert [e.kind for e in out.events] == ["closed"]
    assert state.cases == {} and case.key in state.last_closed
    with pytest.raises(KeyError):
        on_action(state, case.id, Acknowledge(officer=officer), t + timedelta(hours=3), catalogue)
    # The same exceedance two days later: straight to the officers, history counted.
    later = hourly(60 * 24 * 2)
    state, out = on_findings(state, [later], later.at, catalogue)
    assert [n.step for n in out.notifications] == [CaseStep.REMIND, CaseStep.ESCALATE]
    assert out.notifications[-1].history_30d == 2


def test_an_officer_acting_too_early_is_told_why(catalogue):
    state, _ = on_findings(SiteCases(), [hourly(0)], T0, catalogue)
    (case,) = state.cases.values()
    with pytest.raises(CaseError, match="not reached the officers"):
        on_action(state, case.id, Acknowledge(officer="O-KC-01"), T0, catalogue)


def test_the_site_state_survives_json(catalogue):
    state, _ = on_findings(SiteCases(), [hourly(0), daily(0)], T0, catalogue)
    again = SiteCases.model_validate_json(state.model_dump_json())
    assert again == state
    assert {c.status for c in again.cases.values()} == {CaseStatus.REMINDED, CaseStatus.ESCALATED}


def test_a_sites_cases_stay_under_kafkas_record_limit_however_much_officers_write(catalogue):
    # Forty open cases at one site (pollutants × rules × devices), each escalated, and each
    # given the most findings the API takes (20 × 4 KiB): 3.2 MB of text.
    findings = [hourly(0).model_copy(update={"pollutant": f"w{n:05d}"}) for n in range(40)]
    state, _ = on_findings(SiteCases(), findings, T0, catalogue)
    state, _ = on_tick(state, T0 + timedelta(days=3), catalogue)
    held = [c for c in state.cases.values() if c.status is CaseStatus.ESCALATED]
    assert len(held) == 40
    text = "现场检查：" + "排污口在线监测数据异常，" * 112  # 4,047 bytes of UTF-8
    trail = []
    for case in held:
        for n in range(20):
            state, out = on_action(
                state, case.id, RecordFindings(officer="O-KC-01", text=f"{n} {text}"), T0, catalogue
            )
            trail += [e for e in out.events if e.kind == "findings_recorded"]
    record = state.model_dump_json().encode()
    assert 40 * 20 * 4000 > 3 * 2**20 > SITE_CASES_BYTES >= len(record)
    # The latest finding of each case is whole; the full text of every one is in the trail.
    assert all(c.findings[-1] == f"O-KC-01: 19 {text}" for c in state.cases.values())
    assert len(trail) == 800 and all(text in e.text for e in trail)


# -- exceedances found late, in data resent after an outage (HJ 212 RF=1) ------------------------


def test_an_exceedance_found_late_opens_a_case_that_reminds_and_closes_after_the_hold(catalogue):
    found_at = T0 + timedelta(hours=5)  # the device resent its 10:00 hour five hours later
    late = hourly(0).model_copy(update={"late": True})
    state, out = on_findings(SiteCases(), [late], found_at, catalogue)
    [case] = state.cases.values()
    assert case.found_late and case.status is CaseStatus.REMINDED
    assert case.evidence.at == T0 and case.normal_since == found_at
    [note] = out.notifications
    assert (note.step, note.audience) == (CaseStep.REMIND, Audience.ENTERPRISE)
    assert note.evidence.late
    assert "补传" in render(note).body and "resent" in render(note, "en").body
    # Normal since it was found: after the hold (2 h) it closes, never escalated.
    state, out = on_tick(state, found_at + timedelta(hours=2), catalogue)
    assert state.cases == {} and [n.step for n in out.notifications] == [CaseStep.CLOSED]


def test_an_exceedance_found_late_for_an_open_case_is_evidence_on_its_trail(catalogue):
    state, _ = on_findings(SiteCases(), [hourly(60)], T0 + timedelta(minutes=60), catalogue)
    [before] = state.cases.values()
    late = hourly(0, value=95.0).model_copy(update={"late": True})
    state, out = on_findings(state, [late], T0 + timedelta(minutes=70), catalogue)
    [after] = state.cases.values()
    assert after == before  # the case follows the present's data
    assert [(e.kind, e.evidence) for e in out.events] == [("late_evidence", late)]
    assert "95 mg/L" in case_event_text(out.events[0]) and "补传" in case_event_text(out.events[0])
    assert out.notifications == []


def test_the_30_day_history_is_a_count_per_day_and_stays_small_all_month() -> None:
    """One entry per China day of the last 30 days, however many cases open: a month of
    openings no longer grows the site's table all month (the soak measured +67 %)."""
    state = SiteCases()
    start = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)
    counts = [state.count_opening(start + timedelta(hours=6 * i)) for i in range(4 * 60)]
    assert len(state.opened_per_day) <= 31
    # Four a day (the first China day has three): thirty days of them at most, the oldest gone.
    assert counts[2] == 3 and counts[6] == 7
    assert 4 * 29 < counts[-1] <= 4 * 30
    # A value written by the older version (one time per opening) is counted, then dropped.
    old = SiteCases.model_validate_json(
        SiteCases(opened=[start, start + timedelta(days=1)]).model_dump_json()
    )
    assert old.count_opening(start + timedelta(days=2)) == 3 and old.opened == []
