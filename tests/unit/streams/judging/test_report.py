"""The weekly settlement adds up from the case events."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from ecowatch import topics
from ecowatch.clock import CHINA
from ecowatch.schema import CaseEvent, CaseStatus, Finding, Rule
from ecowatch.streams.judging.cases import Acknowledge, RecordFindings
from ecowatch.streams.judging.engine import SiteCases, context_for, on_action, on_findings, on_tick
from ecowatch.streams.judging.report import LOG_EVENTS, LOG_KEEP, WEEK, SiteCaseLog, weekly_report
from tests.factories import finding

MONDAY = datetime(2026, 11, 22, 16, 0, tzinfo=UTC)  # Monday 00:00 in China


def hourly(site: str, device: str, at: datetime, active: bool = True) -> Finding:
    facts = {"site": site, "device": device, "at": at, "value": 80.0, "limit": 50.0}
    return finding(Rule.HOURLY_OVER_LIMIT, active, multiple=1.6, **facts)


def test_a_week_of_two_grids(catalogue):
    events = []
    # S-OUT-001 (G-KC-01): reminded, escalated, acknowledged, closed within the week.
    t = MONDAY + timedelta(hours=10)
    a, out = on_findings(SiteCases(), [hourly("S-OUT-001", "33080200000001", t)], t, catalogue)
    events += out.events
    a, out = on_tick(a, t + timedelta(hours=2), catalogue)
    events += out.events
    (case,) = a.cases.values()
    officer = context_for(catalogue, "S-OUT-001").officers[0]
    a, out = on_action(a, case.id, Acknowledge(officer=officer), t + timedelta(hours=3), catalogue)
    events += out.events
    a, out = on_findings(
        a,
        [hourly("S-OUT-001", "33080200000001", t + timedelta(hours=4), False)],
        t + timedelta(hours=4),
        catalogue,
    )
    events += out.events
    a, out = on_action(
        a,
        case.id,
        RecordFindings(officer=officer, text="已整改", close=True),
        t + timedelta(hours=5),
        catalogue,
    )
    events += out.events
    a, out = on_tick(a, t + timedelta(hours=7), catalogue)
    events += out.events
    # S-OUT-004 (G-QJ-01): escalated on Saturday, nobody acknowledged by Sunday night.
    s = MONDAY + timedelta(days=5)
    b, out = on_findings(SiteCases(), [hourly("S-OUT-004", "33080300000004", s)], s, catalogue)
    events += out.events
    b, out = on_tick(b, s + timedelta(hours=2), catalogue)
    events += out.events

    rows = {
        r.grid: r
        for r in weekly_report(events, [*a.cases.values(), *b.cases.values()], MONDAY, catalogue)
    }
    kc, qj = rows["G-KC-01"], rows["G-QJ-01"]
    assert (kc.opened, kc.escalated, kc.acknowledged, kc.closed) == (1, 1, 1, 1)
    assert kc.settled and kc.open_at_end == 0
    assert (qj.opened, qj.escalated, qj.acknowledged, qj.closed) == (1, 1, 0, 0)
    assert qj.overdue == [next(iter(b.cases.values())).id] and not qj.settled
    assert len(rows) == len(catalogue.grids)  # quiet grids are listed too
    # Next week counts none of this week's events.
    later = weekly_report(events, [], MONDAY + timedelta(days=7), catalogue)
    assert all(r.opened == r.closed == 0 for r in later)


def event(at: datetime, kind: str = "reminded", case: str = "c") -> CaseEvent:
    return CaseEvent(
        case_id=case, site="S-OUT-001", kind=kind, at=at, actor="system", status=CaseStatus.REMINDED
    )


def test_the_week_adds_up_from_counts_as_influxdb_gives_them(catalogue):
    # The worker passes (site, the week's Monday, kind, distinct cases) from the case_event
    # trail; a kind the settlement does not count, or a site not in the catalogue, is left out.
    monday = MONDAY.astimezone(CHINA).date()
    counts = [
        ("S-OUT-001", monday, "reminded", 3),
        ("S-OUT-001", monday, "closed", 2),
        ("S-OUT-004", monday, "escalated", 1),
        ("S-OUT-001", monday, "detected", 9),
        ("S-NOWHERE", monday, "reminded", 5),
    ]
    rows = {r.grid: r for r in weekly_report([], [], MONDAY, catalogue, counts)}
    kc, qj = rows["G-KC-01"], rows["G-QJ-01"]
    assert (kc.opened, kc.escalated, kc.acknowledged, kc.closed) == (3, 0, 0, 2)
    assert (qj.opened, qj.escalated) == (0, 1)
    later = weekly_report([], [], MONDAY + WEEK, catalogue, counts)  # another week's Monday
    assert all(r.opened == r.closed == 0 for r in later)


def test_the_week_counts_the_grids_marks_and_names_their_lowest_rates(catalogue):
    marks = [
        ("S-OUT-001", "declared", 3),
        ("S-OUT-002", "declared", 1),
        ("S-OUT-001", "accepted", 1),
        ("S-OUT-002", "rejected", 2),
        ("S-OUT-001", "proof_added", 4),  # not a column of the settlement
        ("S-STK-001", "declared", 1),
    ]
    monday = MONDAY.astimezone(CHINA).date()
    week = [monday + timedelta(days=i) for i in range(7)]
    # G-KC-01's sites over the week: S-OUT-002 every value, S-OUT-001's monitor half its
    # days, its meter nothing; S-AIR-001 sent nothing (owed all the same: 0 %).
    counts = {}
    for site, device, pollutants, days in (
        ("S-OUT-002", "33080200000002", ["w00000", "w01018", "w21003", "w01001"], week),
        ("S-OUT-001", "33080200000001", ["w00000", "w01018", "w21003", "w01001"], week[:3]),
    ):
        for code in pollutants:
            for day in days:
                counts[(site, device, code, day)] = (1440, 1440)
    rows = {
        r.grid: r for r in weekly_report([], [], MONDAY, catalogue, marks=marks, validity=counts)
    }
    kc = rows["G-KC-01"]
    assert (kc.marks_made, kc.marks_accepted, kc.marks_rejected) == (4, 1, 2)
    assert rows["G-KC-02"].marks_made == 1 and rows["G-QJ-01"].marks_made == 0
    # S-OUT-001: 4 × 3 of (4 + 3) × 7 owed days; S-OUT-002 all; S-AIR-001 none.
    assert [(r.site, r.transmission_validity_rate) for r in kc.lowest_rates] == [
        ("S-AIR-001", 0.0),
        ("S-OUT-001", round(12 / 49, 4)),
        ("S-OUT-002", 1.0),
    ]


def test_a_site_case_log_keeps_the_cases_gone_within_the_topics_retention():
    old, edge = MONDAY, MONDAY + timedelta(days=1)
    new = edge + LOG_KEEP
    log = SiteCaseLog().add(
        [event(old, "closed", "c1"), event(edge, "dismissed", "c2"), event(edge, "reminded", "c3")]
    )
    # Only what tells that a case is gone, without anything else of the event.
    assert [(e.case_id, e.kind, e.at) for e in log.events] == [
        ("c1", "closed", old),
        ("c2", "dismissed", edge),
    ]
    assert log.add([event(new, "escalated", "c4")]) is log  # nothing gone: not rewritten
    log = log.add([event(new, "closed", "c4")])
    # The horizon is measured from the newest: exactly one retention back is still kept.
    assert [e.case_id for e in log.events] == ["c2", "c4"]
    assert SiteCaseLog.model_validate_json(log.model_dump_json()) == log
    assert LOG_KEEP == topics.RETENTION


def test_a_site_case_log_of_an_older_version_still_reads():
    closed = event(MONDAY, "closed", "c1")
    older = {
        "events": [event(MONDAY, "reminded", "c1").model_dump(mode="json"), closed.model_dump()],
        "earlier": {"2026-11-20": {"reminded": 4}},
    }
    log = SiteCaseLog.model_validate_json(json.dumps(older, default=str))
    assert [e.kind for e in log.events] == ["reminded", "closed"]
    log = log.add([event(MONDAY + timedelta(hours=1), "dismissed", "c2")])
    assert [(e.case_id, e.kind) for e in log.events] == [("c1", "closed"), ("c2", "dismissed")]


def test_a_site_case_log_stays_small_however_a_sites_cases_churn():
    # A site whose cases churn for eight weeks: 60,000 events, far past 1 MB as they come.
    start = MONDAY - 6 * WEEK
    log = SiteCaseLog()
    kinds = ["detected", "reminded", "escalated", "acknowledged", "findings_recorded", "closed"]
    sent = 0
    for n in range(10_000):
        at = start + n * timedelta(minutes=5)
        batch = [
            CaseEvent(
                case_id=f"20261122000000-S-OUT-001-w01018-hourly_over_limit-{n}",
                site="S-OUT-001",
                kind=kind,
                at=at,
                actor="O-KC-01",
                status=CaseStatus.ACKNOWLEDGED,
                text="x" * 2000,
            )
            for kind in kinds
        ]
        sent += sum(len(e.model_dump_json()) for e in batch)
        log = log.add(batch)
    assert sent > 100 * 2**20
    record = log.model_dump_json().encode()
    assert len(log.events) == LOG_EVENTS and len(record) < 2**20 // 8, len(record)
    # The newest are kept: the last case closed is known gone.
    assert log.events[-1].case_id.endswith("-9999") and log.events[-1].kind == "closed"
