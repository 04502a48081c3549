"""The case API's pure parts: who calls, what they may ask, and when an action is refused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest

from ecowatch.clock import CHINA, data_time
from ecowatch.edges.tokens import hashed
from ecowatch.schema import CaseEvent, CaseStatus, OfficerAction
from ecowatch.streams.api.actions import ActionsInFlight, case_row, check_action, gone
from ecowatch.streams.api.auth import Caller, caller_of, officer_grids
from ecowatch.streams.api.requests import (
    MAX_FINDINGS_BYTES,
    MAX_FINDINGS_PER_CASE,
    Refusal,
    cases_query,
    findings_body,
    params,
    week_query,
)
from ecowatch.streams.judging.cases import officer_input
from ecowatch.streams.judging.engine import SiteCases, on_action, on_findings
from ecowatch.streams.judging.report import SiteCaseLog
from tests.factories import T0, site_cases
from tests.factories import hourly_cod as hourly

KC = Caller("O-KC-01", frozenset({"G-KC-01"}))
OPS = Caller("operator:night", None)


@contextmanager
def refused(status: int, match: str) -> Iterator[pytest.ExceptionInfo[Refusal]]:
    """A Refusal with this status and a reason matching ``match`` must be raised inside."""
    with pytest.raises(Refusal, match=match) as info:
        yield info
    assert info.value.status == status, info.value.reason


# -- who ---------------------------------------------------------------------------------------


def test_a_supervisor_of_two_grids_reaches_both(catalogue):
    grids = officer_grids(catalogue)
    assert grids["S-KC"] == {"G-KC-01", "G-KC-02"}
    assert grids["O-KC-01"] == {"G-KC-01"}
    tokens = hashed({"t-skc": "S-KC", "t-ops": "operator:night"})
    assert caller_of("Bearer t-skc", tokens, grids) == Caller("S-KC", grids["S-KC"])
    assert caller_of("bearer  t-ops ", tokens, grids) == Caller("operator:night", None)


@pytest.mark.parametrize(
    "header", ["", "Bearer", "Bearer ", "t-skc", "Basic t-skc", "Bearer nonsense", "Bearer \ud800"]
)
def test_no_known_token_is_401(catalogue, header):
    tokens = hashed({"t-skc": "S-KC"})
    with refused(401, "valid officer token") as info:
        caller_of(header, tokens, officer_grids(catalogue))
    assert info.value.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_token_of_an_officer_the_catalogue_does_not_know_is_401(catalogue):
    with refused(401, "valid officer token"):
        caller_of("Bearer t", hashed({"t": "O-GONE-01"}), officer_grids(catalogue))


# -- parameters --------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["abc", "nan", "NaN", "inf", "-inf", "1e400", "-1", "5256001"])
def test_min_age_must_be_a_finite_number_of_minutes(catalogue, value):
    with refused(400, "min_age_minutes: expected a number of minutes from 0 to"):
        cases_query([("min_age_minutes", value)], KC, catalogue)


def test_the_cases_query_in_range(catalogue):
    q = cases_query([("min_age_minutes", "90"), ("status", "escalated")], KC, catalogue)
    assert q.min_age == timedelta(minutes=90) and q.status is CaseStatus.ESCALATED
    assert q.grids == {"G-KC-01"} and q.label == "G-KC-01"
    blank = cases_query([("status", ""), ("grid", ""), ("min_age_minutes", "")], KC, catalogue)
    assert blank.status is None and blank.min_age == timedelta(0)  # empty: not given
    assert cases_query([], OPS, catalogue).grids is None
    assert cases_query([], OPS, catalogue).label == "*"
    assert cases_query([("grid", "G-QJ-01")], OPS, catalogue).grids == {"G-QJ-01"}


def test_the_cases_query_refuses_what_it_cannot_use(catalogue):
    with refused(400, "status: expected one of pending, reminded, escalated"):
        cases_query([("status", "open")], KC, catalogue)
    with refused(400, r"grid: expected one of the catalogue's grids, G-KC-01.* \(got 'G-XX-99'\)"):
        cases_query([("grid", "G-XX-99")], KC, catalogue)
    with refused(403, "grid G-QJ-01 is not yours"):
        cases_query([("grid", "G-QJ-01")], KC, catalogue)
    with refused(400, "unknown parameter 'min_age'"):
        cases_query([("min_age", "5")], KC, catalogue)
    with refused(400, "status: given twice"):
        cases_query([("status", "escalated"), ("status", "pending")], KC, catalogue)


def test_a_supervisor_lists_each_of_their_grids_or_one(catalogue):
    skc = Caller("S-KC", officer_grids(catalogue)["S-KC"])
    assert cases_query([], skc, catalogue).label == "G-KC-01,G-KC-02"
    assert cases_query([("grid", "G-KC-02")], skc, catalogue).grids == {"G-KC-02"}


def test_an_echoed_value_is_cut_short(catalogue):
    with refused(400, "status") as info:
        cases_query([("status", "x" * 10_000)], KC, catalogue)
    assert len(info.value.reason) < 200


def test_the_week_is_a_monday():
    assert week_query([("week", "2026-11-23")]) == datetime(2026, 11, 23, tzinfo=CHINA)
    with refused(400, r"2026-11-25 is a Wednesday; .*Monday .*\(2026-11-23\)"):
        week_query([("week", "2026-11-25")])
    for bad in ("", "2026-1-5", "23/11/2026", "2026-02-30", "abc", "nan"):
        with refused(400, "week:"):
            week_query([("week", bad)])
    for far in ("0001-01-01", "9999-12-27"):
        with refused(400, "from 1970 to 9998"):
            week_query([("week", far)])
    with refused(400, "unknown parameter 'grid'"):
        week_query([("week", "2026-11-23"), ("grid", "G-KC-01")])


def test_actions_take_no_parameters():
    assert params([], ()) == {}
    with refused(400, r"unknown parameter 'x' \(expected: none\)"):
        params([("x", "1")], ())


# -- findings ----------------------------------------------------------------------------------


def test_findings_in_a_json_body():
    asked = findings_body(b'{"text": "\xe5\xb7\xb2\xe6\x95\xb4\xe6\x94\xb9", "close": true}')
    assert (asked.text, asked.close) == ("已整改", True)
    two_lines = findings_body(b'{"text": "line one\\nline\\ttwo"}')
    assert (two_lines.text, two_lines.close) == ("line one\nline\ttwo", False)
    exactly = "检" * (MAX_FINDINGS_BYTES // 3) + "x" * (MAX_FINDINGS_BYTES % 3)
    assert findings_body(json.dumps({"text": exactly}).encode()).text == exactly


@pytest.mark.parametrize(
    ("body", "status", "match"),
    [
        (b"", 400, "expected a JSON body"),
        (b"not json", 400, "expected a JSON body"),
        (b"\xff\xfe", 400, "expected a JSON body"),
        (b"[1]", 400, "expected a JSON body"),
        (b'{"text": 5}', 400, "text: expected a string"),
        (b'{"close": true}', 400, "text: expected a string"),
        (b'{"text": "   "}', 400, "text: empty"),
        (b'{"text": "ok", "close": "false"}', 400, "close: expected true or false"),
        (b'{"text": "ok", "officer": "O-KC-02"}', 400, "unknown field"),
        (b'{"text": "a\\u0000b"}', 400, "control characters"),
        (b'{"text": "\\ud800"}', 400, "lone surrogate"),
        (json.dumps({"text": "x" * (MAX_FINDINGS_BYTES + 1)}).encode(), 413, "4097 bytes"),
        (json.dumps({"text": "检" * 1366}).encode(), 413, "4098 bytes"),
    ],
)
def test_findings_that_cannot_be_used_are_refused(body, status, match):
    with refused(status, match):
        findings_body(body)


# -- the case as it stands ---------------------------------------------------------------------


def escalated(catalogue) -> SiteCases:
    return site_cases(catalogue, timedelta(hours=2))


def action(case_id: str, officer: str, what: str = "acknowledge", **kw) -> OfficerAction:
    at = T0 + timedelta(hours=2, minutes=5)
    return OfficerAction(
        site="S-OUT-001", case_id=case_id, officer=officer, action=what, at=at, **kw
    )


def test_a_second_acknowledgement_is_refused_with_who_took_it(catalogue):
    state = escalated(catalogue)
    (case,) = state.cases.values()
    first = action(case.id, "O-KC-01")
    check_action(case, [], first, catalogue)  # fits: no refusal
    # Not yet applied by the agent (in flight): a colleague's ack right after is refused.
    with refused(409, "already acknowledged by O-KC-01"):
        check_action(case, [first], action(case.id, "O-KC-02"), catalogue)
    # Applied: the table's case says so.
    state, _ = on_action(state, case.id, officer_input(first), first.at, catalogue)
    (acked,) = state.cases.values()
    with refused(409, "already acknowledged by O-KC-01"):
        check_action(acked, [first], action(case.id, "O-KC-02"), catalogue)
    with refused(409, "already acknowledged by O-KC-01"):
        check_action(acked, [], action(case.id, "O-KC-01"), catalogue)
    # Findings still fit, from anyone of the grid.
    check_action(acked, [first], action(case.id, "O-KC-02", "findings", text="到场"), catalogue)


def test_a_case_row_carries_its_deadlines(catalogue):
    """The rectify-by once reminded and the acknowledge-by once escalated, in data time, so a
    screen says "overdue" from the case itself; an acknowledgement ends the wait."""
    (reminded,) = site_cases(catalogue, timedelta(minutes=30)).cases.values()
    row = case_row(reminded, "S-OUT-001", "name")
    assert row["status"] == "reminded" and row["ack_due"] is None
    assert row["deadline"] == reminded.deadline.isoformat()
    assert datetime.fromisoformat(row["deadline"]) > T0
    (case,) = escalated(catalogue).cases.values()
    row = case_row(case, "S-OUT-001", "name")
    assert row["status"] == "escalated"
    assert datetime.fromisoformat(row["ack_due"]) == case.ack_due > T0 + timedelta(hours=2)
    assert json.loads(json.dumps(row)) == row  # plain JSON, as the API sends it
    acked, _ = on_action(
        escalated(catalogue),
        case.id,
        officer_input(action(case.id, "O-KC-01")),
        T0 + timedelta(hours=2, minutes=5),
        catalogue,
    )
    (taken,) = acked.cases.values()
    assert case_row(taken, "S-OUT-001", "name")["ack_due"] is None


def test_acting_before_the_officers_have_the_case_is_refused(catalogue):
    (case,) = site_cases(catalogue).cases.values()
    with refused(409, "not reached the officers"):
        check_action(case, [], action(case.id, "O-KC-01"), catalogue)
    with refused(409, "no officer holds it"):
        check_action(case, [], action(case.id, "O-KC-01", "findings", text="x"), catalogue)


def test_a_case_keeps_a_bounded_number_of_findings(catalogue):
    state = escalated(catalogue)
    (case,) = state.cases.values()
    n = MAX_FINDINGS_PER_CASE
    done = [action(case.id, "O-KC-01", "findings", text=f"第{i}次") for i in range(n)]
    check_action(case, done[:-1], done[-1], catalogue)
    with refused(409, f"has {MAX_FINDINGS_PER_CASE} findings"):
        check_action(case, done, action(case.id, "O-KC-01", "findings", text="再一次"), catalogue)


def test_a_closed_case_is_known_from_the_case_log():
    at = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)

    def event(kind: str, status: CaseStatus) -> CaseEvent:
        return CaseEvent(
            case_id="C1", site="S-OUT-001", kind=kind, at=at, actor="system", status=status
        )

    log = [event("escalated", CaseStatus.ESCALATED), event("closed", CaseStatus.CLOSED)]
    closed = gone("C1", log)
    assert closed is not None and closed.status == 409 and closed.code == "case_closed"
    assert closed.reason == "case C1 was closed at 2026-11-23 10:00"
    assert gone("C1", log[:1]) is None  # the log knows it open: not gone
    assert gone("C2", log) is None
    # As the site's case log keeps it: the cases gone, without the rest of the event.
    kept = SiteCaseLog().add(log).events
    assert getattr(gone("C1", kept), "reason", None) == "case C1 was closed at 2026-11-23 10:00"


def test_actions_in_flight_expire_and_can_be_dropped():
    now = [0.0]
    flight = ActionsInFlight(seconds=60, clock=lambda: now[0])
    a = action("C1", "O-KC-01")
    flight.add(a)
    assert flight.of("S-OUT-001", "C1") == [a] and flight.of("S-OUT-001", "C2") == []
    now[0] = 61
    assert flight.of("S-OUT-001", "C1") == []
    flight.add(a)
    flight.drop(a)
    assert flight.of("S-OUT-001", "C1") == [] and len(flight) == 0


def test_actions_in_flight_of_cases_never_asked_again_are_forgotten():
    # One action on each of many cases, none asked about again: each add forgets what expired.
    now = [0.0]
    flight = ActionsInFlight(seconds=60, clock=lambda: now[0])
    for n in range(1000):
        now[0] = n * 1.0
        flight.add(action(f"C{n}", "O-KC-01"))
    assert len(flight) == 60  # the last minute's only
    now[0] += 60
    flight.prune()
    assert len(flight) == 0


def test_an_officer_acts_on_the_sites_data_clock_not_the_wall_clock(catalogue):
    """A city living six days in the past (the demo's): findings asking to close, stamped on
    the wall clock, found the hold period long over and closed the case at once; on the site's
    data clock the case waits for the data to hold normal."""
    wall = T0 + timedelta(days=6)
    arrived = wall - timedelta(seconds=30)  # the site's newest reading, 30 s ago
    seen = (T0 + timedelta(hours=2, minutes=10), arrived)
    assert data_time(seen, wall) == T0 + timedelta(hours=2, minutes=10, seconds=30)
    assert data_time(None, wall) == wall  # a site not heard from: nothing better

    def closes_at(now: datetime) -> bool:
        state = escalated(catalogue)
        (case,) = state.cases.values()
        state, _ = on_findings(
            state, [hourly(120, active=False)], T0 + timedelta(hours=2), catalogue
        )
        acknowledge = officer_input(action(case.id, "O-KC-01"))
        state, _ = on_action(state, case.id, acknowledge, now, catalogue)
        findings = action(case.id, "O-KC-01", "findings", text="已整改", close=True)
        state, out = on_action(state, case.id, officer_input(findings), now, catalogue)
        return any(e.kind == "closed" for e in out.events)

    assert closes_at(wall)  # the bug: the hold "passed" six days ago
    assert not closes_at(data_time(seen, wall))
