"""The weekly settlement adds up from the case events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ecowatch.schema import Finding, Rule, Severity
from ecowatch.streams.cases import Acknowledge, CaseEvent, CaseStatus, RecordFindings
from ecowatch.streams.engine import SiteCases, context_for, on_action, on_findings, on_tick
from ecowatch.streams.report import LOG_EVENTS, LOG_WEEKS, WEEK, SiteCaseLog, weekly_report

MONDAY = datetime(2026, 11, 22, 16, 0, tzinfo=UTC)  # Monday 00:00 in China


def hourly(site: str, device: str, at: datetime, active: bool = True) -> Finding:
    return Finding(
        site=site,
        device=device,
        pollutant="w01018",
        rule=Rule.HOURLY_OVER_LIMIT,
        severity=Severity.WARNING,
        active=active,
        at=at,
        value=80.0,
        limit=50.0,
        multiple=1.6,
    )


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


def event(at: datetime, kind: str = "reminded") -> CaseEvent:
    return CaseEvent(
        case_id="c", site="S-OUT-001", kind=kind, at=at, actor="system", status=CaseStatus.REMINDED
    )


def test_a_site_case_log_keeps_the_last_weeks_and_survives_a_json_round_trip(catalogue):
    old, edge, new = (
        MONDAY,
        MONDAY + timedelta(days=1),
        MONDAY + LOG_WEEKS * WEEK + timedelta(days=1),
    )
    log = SiteCaseLog().add([event(old), event(edge)]).add([])
    assert [e.at for e in log.events] == [old, edge]
    log = log.add([event(new, "escalated")])
    # The horizon is measured from the newest event: exactly LOG_WEEKS back is still kept.
    assert [e.at for e in log.events] == [edge, new]
    again = SiteCaseLog.model_validate_json(log.model_dump_json())
    assert again == log
    rows = {
        r.grid: r for r in weekly_report(again.events, [], MONDAY + LOG_WEEKS * WEEK, catalogue)
    }
    assert (rows["G-KC-01"].opened, rows["G-KC-01"].escalated) == (0, 1)


def test_a_site_case_log_stays_under_kafkas_record_limit_and_still_adds_up(catalogue):
    # A site whose cases churn for eight weeks: 60,000 events, far past 1 MB as they come.
    start = MONDAY - 6 * WEEK
    log = SiteCaseLog()
    kinds = ["detected", "reminded", "escalated", "acknowledged", "findings_recorded", "closed"]
    sent = 0
    for n in range(10_000):
        at = start + n * timedelta(minutes=5)
        batch = [
            CaseEvent(
                case_id=f"c{n}",
                site="S-OUT-001",
                kind=kind,
                at=at,
                actor="O-KC-01",
                status=CaseStatus.ACKNOWLEDGED,
                detail="x" * 2000,
            )
            for kind in kinds
        ]
        sent += sum(len(e.model_dump_json()) for e in batch)
        log = log.add(batch)
    assert sent > 100 * 2**20
    record = log.model_dump_json().encode()
    assert len(record) < 2**20 // 2 and len(log.events) == LOG_EVENTS
    # Every week still counts each case once per kind, from the events and the day counts.
    for week in range(5):
        monday = start + week * WEEK
        rows = weekly_report(log.events, [], monday, catalogue, log.counts("S-OUT-001"))
        kc = next(r for r in rows if r.grid == "G-KC-01")
        in_week = sum(
            1 for n in range(10_000) if monday <= start + n * timedelta(minutes=5) < monday + WEEK
        )
        assert (kc.opened, kc.escalated, kc.acknowledged, kc.closed) == (in_week,) * 4
    # The log still tells that an old case was closed, if it is among the kept events.
    assert log.events[-1].kind == "closed" and log.events[-1].detail == ""
