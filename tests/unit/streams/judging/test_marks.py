"""Marks (streams/judging/marks.py): what an enterprise may mark and when, the officers'
review, and what a mark does to judging, on the synthetic city's coal unit S-STK-001."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from ecowatch.alerts.templates import render
from ecowatch.clock import CHINA
from ecowatch.config.catalogue import Catalogue
from ecowatch.schema import (
    DataFlag,
    DeviceState,
    DeviceStatus,
    Mark,
    MarkEvent,
    MarkEventKind,
    MarkSource,
    MarkStatus,
    MarkType,
    Notification,
    Proof,
    Reading,
    Rule,
)
from ecowatch.streams.judging.marks import (
    MarkPolicy,
    MarkRefused,
    add_proof,
    declare,
    excusing,
    marked_hours,
    proof_overdue,
    review,
    stopped_periods,
)
from ecowatch.streams.judging.replay import Replay
from ecowatch.streams.judging.rules import SiteJudge, SiteTick
from tests.unit.streams.judging.test_rules import of, run
from tests.unit.streams.judging.test_stacks import CEMS, STACK, flue_gas

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=CHINA)
MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)
POLICY = MarkPolicy()
PROOF = Proof(
    sha256="ab" * 32,
    name="停炉检修通知.pdf",
    content_type="application/pdf",
    size=120_000,
    at=T0,
    by="enterprise:E-031",
)


def shutdown(catalogue: Catalogue, start: datetime, end: datetime, now: datetime) -> Mark:
    return declare(
        [],
        catalogue.sites[STACK],
        device=CEMS,
        type_=MarkType.SHUTDOWN,
        start=start,
        end=end,
        reason="1号锅炉计划停炉检修",
        by="enterprise:E-031",
        now=now,
        policy=POLICY,
    )


def event(kind: MarkEventKind, mark: Mark, at: datetime, actor: str = "enterprise:E-031"):
    return MarkEvent(kind=kind, mark=mark, actor=actor, at=at)


# -- declaring, proving, reviewing -----------------------------------------------------------


def test_a_shutdown_is_marked_ahead_of_time_pending_review(catalogue: Catalogue) -> None:
    mark = shutdown(catalogue, T0, T0 + 2 * HOUR, now=T0 - timedelta(days=2))
    assert mark.status is MarkStatus.PENDING and mark.excuses
    assert (mark.site, mark.device, mark.source) == (STACK, CEMS, MarkSource.ENTERPRISE)
    assert mark.id.startswith("M-202611231000-") and len(mark.id) == len("M-202611231000-") + 10
    again = shutdown(catalogue, T0, T0 + 2 * HOUR, now=T0 - timedelta(days=2, seconds=1))
    assert again.id != mark.id  # made at another time: another mark
    assert mark.covers(CEMS, T0) and not mark.covers(CEMS, T0 + 2 * HOUR)
    assert not mark.covers("another", T0)


def test_afterwards_only_within_the_type_s_deadline_never_later(catalogue: Catalogue) -> None:
    site = catalogue.sites[STACK]

    def fault(now: datetime) -> Mark:
        return declare(
            [],
            site,
            device=CEMS,
            type_=MarkType.FAULT,
            start=T0,
            end=T0 + HOUR,
            reason="SO2 分析仪故障",
            by="enterprise:E-031",
            now=now,
            policy=POLICY,
        )

    assert fault(T0 + 12 * HOUR).type is MarkType.FAULT  # the fault's 12 hours, just
    with pytest.raises(MarkRefused) as refused:
        fault(T0 + 12 * HOUR + MIN)
    assert refused.value.field == "start" and "too late" in refused.value.message


@pytest.mark.parametrize(
    ("changes", "field_name"),
    [
        ({"device": "33080200000001"}, "device"),  # an outfall's monitor, not this stack's
        ({"end": T0}, "end"),
        ({"end": T0 + timedelta(days=32)}, "end"),
        ({"start": T0 + timedelta(days=31), "end": T0 + timedelta(days=32)}, "start"),
        ({"reason": "  "}, "reason"),
    ],
)
def test_a_mark_that_cannot_be_made_names_its_field(
    catalogue: Catalogue, changes: dict, field_name: str
) -> None:
    asked = {
        "device": CEMS,
        "type_": MarkType.MAINTENANCE,
        "start": T0,
        "end": T0 + HOUR,
        "reason": "例行维护",
        "by": "enterprise:E-031",
        "now": T0 - HOUR,
        "policy": POLICY,
    } | changes
    with pytest.raises(MarkRefused) as refused:
        declare([], catalogue.sites[STACK], **asked)
    assert refused.value.field == field_name


def test_the_same_period_cannot_be_marked_twice(catalogue: Catalogue) -> None:
    first = shutdown(catalogue, T0, T0 + 2 * HOUR, now=T0 - HOUR)
    with pytest.raises(MarkRefused, match="overlaps"):
        declare(
            [first],
            catalogue.sites[STACK],
            device=CEMS,
            type_=MarkType.SHUTDOWN,
            start=T0 + HOUR,
            end=T0 + 3 * HOUR,
            reason="again",
            by="enterprise:E-031",
            now=T0 - HOUR,
            policy=POLICY,
        )


def test_proof_review_and_what_is_owed(catalogue: Catalogue) -> None:
    mark = shutdown(catalogue, T0, T0 + 2 * HOUR, now=T0 - HOUR)
    assert proof_overdue(mark, T0 - HOUR + timedelta(days=3, minutes=1), POLICY)
    proven = add_proof(add_proof(mark, PROOF), PROOF)  # the same document once
    assert proven.proofs == (PROOF,) and not proof_overdue(proven, T0 + timedelta(days=9), POLICY)
    with pytest.raises(MarkRefused, match="says why"):
        review(proven, accept=False, reason="", officer="O-KC-03", now=T0)
    rejected = review(proven, accept=False, reason="无停炉记录", officer="O-KC-03", now=T0)
    assert rejected.status is MarkStatus.REJECTED and not rejected.excuses
    assert (rejected.reviewed_by, rejected.review_reason) == ("O-KC-03", "无停炉记录")
    with pytest.raises(MarkRefused, match="already rejected"):
        review(rejected, accept=True, reason="", officer="O-KC-04", now=T0)
    with pytest.raises(MarkRefused, match="no more proof"):
        add_proof(rejected, PROOF.model_copy(update={"sha256": "cd" * 32}))


def test_what_a_mark_explains(catalogue: Catalogue) -> None:
    mark = shutdown(catalogue, T0, T0 + 5 * HOUR, now=T0 - HOUR)
    marks = [mark]
    # A shutdown explains high oxygen and an exceedance for its first two hours only.
    assert excusing(marks, CEMS, Rule.HIGH_OXYGEN, T0 + HOUR, None, POLICY) == mark
    assert excusing(marks, CEMS, Rule.HIGH_OXYGEN, T0 + 3 * HOUR, None, POLICY) is None
    assert excusing(marks, CEMS, Rule.HOURLY_OVER_LIMIT, T0, T0 + HOUR, POLICY) == mark
    # Never a CEMS's forged correction, nor another device.
    assert excusing(marks, CEMS, Rule.CORRECTED_VALUE_MISMATCH, T0, None, POLICY) is None
    assert excusing(marks, "another", Rule.HIGH_OXYGEN, T0, None, POLICY) is None
    stopped = declare(
        [],
        catalogue.sites[STACK],
        device=None,
        type_=MarkType.PRODUCTION_STOPPED,
        start=T0,
        end=T0 + 10 * HOUR,
        reason="停产",
        by="enterprise:E-031",
        now=T0,
        policy=POLICY,
    )
    assert stopped_periods([mark, stopped], CEMS) == [(T0, T0 + 10 * HOUR)]
    assert marked_hours([mark, stopped], T0 - HOUR, T0 + 24 * HOUR) == 10.0  # overlap once


# -- judging under marks ----------------------------------------------------------------------


def high_o2_minutes(start: datetime, n: int) -> list:
    return [flue_gas(start + i * MIN, 10.0, 20.0) for i in range(n)]


def test_a_shutdown_declared_ahead_leaves_its_high_oxygen_unjudged(catalogue: Catalogue) -> None:
    """The heat plant declares its boiler's shutdown two days ahead; O2 at air's with the fan
    running is not a finding within the two hours the policy allows, and is after them."""
    mark = shutdown(catalogue, T0, T0 + 3 * HOUR, now=T0 - timedelta(days=2))
    lines = [event(MarkEventKind.DECLARED, mark, T0 - timedelta(days=2)).model_dump_json()]
    lines += [r.to_json().decode() for r in high_o2_minutes(T0, 150)]
    out = list(Replay(catalogue).feed(lines))
    found = [x for x in out if x["type"] == "finding" and x["rule"] == "high_oxygen"]
    assert [(x["active"], x["at"]) for x in found] == [(True, (T0 + 2 * HOUR).isoformat())]
    assert not [x for x in out if x["type"] == "error"]
    # Without the mark, the first minute is a finding.
    bare = list(Replay(catalogue).feed(lines[1:]))
    first = next(x for x in bare if x["type"] == "finding" and x["rule"] == "high_oxygen")
    assert first["at"] == T0.isoformat()


def test_a_mark_made_after_the_evidence_neither_ends_it_nor_repeats_it(
    catalogue: Catalogue,
) -> None:
    judge = SiteJudge(catalogue)
    state, found = run(judge, high_o2_minutes(T0, 1))
    [evidence] = of(found, Rule.HIGH_OXYGEN)
    assert evidence.active
    mark = shutdown(catalogue, T0, T0 + 2 * HOUR, now=T0 + 5 * MIN)
    state, found = run(judge, [event(MarkEventKind.DECLARED, mark, T0 + 5 * MIN)], state)
    state, found = run(judge, high_o2_minutes(T0 + 6 * MIN, 60), state)
    assert of(found, Rule.HIGH_OXYGEN) == []  # not cleared, and not repeated
    assert state is not None and "33080200G00001|a19001|high_oxygen" in state.active


def test_a_rejected_mark_brings_its_hours_back_to_be_judged(catalogue: Catalogue) -> None:
    judge = SiteJudge(catalogue)
    mark = shutdown(catalogue, T0, T0 + 2 * HOUR, now=T0 - HOUR)
    state, _ = run(judge, [event(MarkEventKind.DECLARED, mark, T0 - HOUR)])
    rejected = review(mark, accept=False, reason="无停炉记录", officer="O-KC-03", now=T0 + 3 * HOUR)
    state, _ = run(
        judge, [event(MarkEventKind.REJECTED, rejected, T0 + 3 * HOUR, "O-KC-03")], state
    )
    assert state is not None and state.marks[mark.id].status is MarkStatus.REJECTED
    # Its two hours of the CEMS are noted to be judged again from the stored readings.
    assert sorted(state.rejudge) == [
        f"{CEMS}|{(T0).isoformat()}",
        f"{CEMS}|{(T0 + HOUR).isoformat()}",
    ]
    # And from now on it excuses nothing.
    state, found = run(judge, high_o2_minutes(T0 + 4 * HOUR, 1), state)
    assert [f.active for f in of(found, Rule.HIGH_OXYGEN)] == [True]


def test_time_marked_stopped_is_not_owed(catalogue: Catalogue) -> None:
    """Production stopped from noon to midnight: the day owes 720 minutes, not 1,440."""
    day = T0.replace(hour=0)
    stopped = declare(
        [],
        catalogue.sites[STACK],
        device=None,
        type_=MarkType.PRODUCTION_STOPPED,
        start=day + 12 * HOUR,
        end=day + 24 * HOUR,
        reason="停产检修",
        by="enterprise:E-031",
        now=day,
        policy=POLICY,
    )
    lines = [event(MarkEventKind.DECLARED, stopped, day).model_dump_json()]
    lines += [flue_gas(day + i * MIN, 20.0, 6.0).to_json().decode() for i in range(721)]
    lines.append(flue_gas(day + 24 * HOUR, 20.0, 6.0).to_json().decode())
    out = list(Replay(catalogue).feed(lines))
    [so2] = [x for x in out if x["type"] == "validity" and x["pollutant"] == "a21026"]
    assert (so2["expected"], so2["received"]) == (720, 721)
    assert so2["transmission_rate"] == 1.0


def test_a_mark_without_proof_past_its_deadline_is_a_finding_until_proven(
    catalogue: Catalogue,
) -> None:
    judge = SiteJudge(catalogue)
    made = T0 - HOUR
    mark = shutdown(catalogue, T0, T0 + 2 * HOUR, now=made)
    state, found = run(judge, [event(MarkEventKind.DECLARED, mark, made)])
    state, found = run(judge, [SiteTick(site=STACK, now=made + timedelta(days=3))], state)
    assert of(found, Rule.MARK_PROOF_MISSING) == []  # within the three days
    state, found = run(
        judge, [SiteTick(site=STACK, now=made + timedelta(days=3, minutes=5))], state
    )
    [missing] = of(found, Rule.MARK_PROOF_MISSING)
    assert missing.active and missing.mark == mark.id and missing.window_start == T0
    proven = add_proof(mark, PROOF)
    at = made + timedelta(days=3, hours=1)
    _, found = run(judge, [event(MarkEventKind.PROOF_ADDED, proven, at)], state)
    [cleared] = of(found, Rule.MARK_PROOF_MISSING)
    assert not cleared.active


def test_more_marked_hours_in_a_month_than_allowed_is_a_finding(catalogue: Catalogue) -> None:
    judge = SiteJudge(catalogue)
    site, state, found = catalogue.sites[STACK], None, []
    marks: list[Mark] = []
    for day in range(4):  # four faults of 20 hours: 80 hours, over the 72 a month
        start = T0 + timedelta(days=day)
        mark = declare(
            marks,
            site,
            device=CEMS,
            type_=MarkType.FAULT,
            start=start,
            end=start + 20 * HOUR,
            reason="分析仪故障",
            by="enterprise:E-031",
            now=start,
            policy=POLICY,
        )
        marks.append(mark)
        state, said = run(judge, [event(MarkEventKind.DECLARED, mark, start)], state)
        found += of(said, Rule.MARKED_TOO_LONG)
    [over] = found
    assert over.active and (over.value, over.limit, over.unit) == (80.0, 72.0, "h")
    assert over.period == "2026-11"


# -- marks and the cases ----------------------------------------------------------------------


def fault_mark_story(catalogue: Catalogue, accept: bool) -> list[dict]:
    """S-OUT-001's COD at twice its permit limit from 08:00 China time (the replay test's
    recording): its hourly exceedance is a case at 09:00. At 09:30 the enterprise marks its
    analyser faulty from 08:00 to 10:00; at 10:00 an officer of the grid reviews the mark."""
    from tests.unit.streams.judging.test_replay import START, recording

    site, device = "S-OUT-001", "33080200000001"
    declared_at, reviewed_at = START + 90 * MIN, START + 120 * MIN
    mark = declare(
        [],
        catalogue.sites[site],
        device=device,
        type_=MarkType.FAULT,
        start=START,
        end=START + 2 * HOUR,
        reason="COD 分析仪消解单元故障",
        by="enterprise:E-001",
        now=declared_at,
        policy=POLICY,
    )
    reason = "" if accept else "故障期间数据未标识，且无维修记录"
    reviewed = review(mark, accept=accept, reason=reason, officer="O-KC-01", now=reviewed_at)
    kind = MarkEventKind.ACCEPTED if accept else MarkEventKind.REJECTED
    marks = [
        (declared_at, event(MarkEventKind.DECLARED, mark, declared_at).model_dump_json()),
        (reviewed_at, event(kind, reviewed, reviewed_at, "O-KC-01").model_dump_json()),
    ]
    lines = [(Reading.model_validate_json(r).ts, r) for r in recording()]
    ordered = sorted(lines + marks, key=lambda pair: pair[0])
    return list(Replay(catalogue).feed(text for _, text in ordered))


def test_a_fault_marked_after_the_exceedance_reaches_the_officers_and_rejected_goes_on(
    catalogue: Catalogue,
) -> None:
    out = fault_mark_story(catalogue, accept=False)
    case = "S-OUT-001-w01018-hourly_over_limit"
    trail = [x for x in out if x["type"] == "case_event" and case in x["case_id"]]
    kinds = [x["kind"] for x in trail]
    assert kinds[:2] == ["detected", "reminded"], kinds
    assert "mark_declared" in kinds and "mark_rejected" in kinds
    assert "closed" not in kinds[: kinds.index("mark_rejected") + 1]  # the case goes on
    rejected = next(x for x in trail if x["kind"] == "mark_rejected")
    assert rejected["actor"] == "O-KC-01" and rejected["mark"]["status"] == "rejected"
    # Each open case on the marked evidence asks its officers once (the hourly one here; the
    # real-time early warning's case too).
    requests = [x for x in out if x["type"] == "notification" and x["step"] == "mark_review"]
    [review_request] = [x for x in requests if case in x["case_id"]]
    assert len({x["key"] for x in requests}) == len(requests)
    assert review_request["audience"] == "officers"
    assert review_request["mark"]["type"] == "fault"
    note = Notification.model_validate({k: v for k, v in review_request.items() if k != "type"})
    body = render(note).body
    assert "故障标记" in body and "COD 分析仪消解单元故障" in body and "接受或驳回" in body, body
    # The case escalated later as it would have: the mark did not stop it.
    assert "escalated" in kinds[kinds.index("mark_rejected") :]


def test_an_accepted_mark_closes_the_case_on_its_evidence(catalogue: Catalogue) -> None:
    out = fault_mark_story(catalogue, accept=True)
    case = "S-OUT-001-w01018-hourly_over_limit"
    trail = [x for x in out if x["type"] == "case_event" and case in x["case_id"]]
    kinds = [x["kind"] for x in trail]
    at = kinds.index("mark_accepted")
    assert kinds[at + 1] == "closed" and trail[at + 1]["reason"] == "mark_accepted", kinds


# -- a device's own marks ---------------------------------------------------------------------


def test_a_device_s_flags_are_its_own_marks_per_pollutant(catalogue: Catalogue) -> None:
    """The CEMS's SO2 analyser in calibration (C) for three minutes: one mark of SO2 begun at
    the first C and ended at the next N, on the trail; nothing excused by it, nothing owed the
    less, no marked hours of the enterprise's."""
    judge = SiteJudge(catalogue)
    state, events = None, []
    for i in range(6):
        r = flue_gas(T0 + i * MIN, 20.0, 6.0)
        if 1 <= i <= 3:
            so2 = r.values["a21026"].model_copy(update={"flag": DataFlag.CALIBRATION})
            r = r.model_copy(update={"values": {**r.values, "a21026": so2}})
        judged = judge.judge(state, r)
        state, events = judged.state, events + judged.marks
    assert [(e.kind, e.at) for e in events] == [
        (MarkEventKind.DECLARED, T0 + MIN),
        (MarkEventKind.ENDED, T0 + 4 * MIN),
    ]
    mark = events[-1].mark
    assert (mark.source, mark.type, mark.pollutant, mark.device) == (
        MarkSource.DEVICE,
        MarkType.CALIBRATION,
        "a21026",
        CEMS,
    )
    assert (mark.start, mark.end, mark.status) == (T0 + MIN, T0 + 4 * MIN, MarkStatus.ACCEPTED)
    assert state is not None and state.device_marks[mark.id] == mark
    assert not state.open_device_marks and not state.marks  # a record apart: excuses nothing
    assert marked_hours([mark], T0, T0 + HOUR) == 0  # not the enterprise's hours


def test_a_flapping_flag_keeps_a_bounded_number_of_device_marks(catalogue: Catalogue) -> None:
    judge = SiteJudge(catalogue)
    state = None
    for i in range(800):  # M, N, M, N ...: 400 marks of O2 begun and ended
        r = flue_gas(T0 + i * MIN, 20.0, 6.0)
        if i % 2 == 0:
            o2 = r.values["a19001"].model_copy(update={"flag": DataFlag.MAINTENANCE})
            r = r.model_copy(update={"values": {**r.values, "a19001": o2}})
        state = judge.judge_in_place(state, r).state
    assert state is not None
    kept = list(state.device_marks.values())
    assert len(kept) == 100 and max(m.end for m in kept) == T0 + 799 * MIN


def test_a_cems_analyser_state_is_its_own_mark_until_it_runs_again(catalogue: Catalogue) -> None:
    """CN 3020: the SO2 analyser calibrating (i12001=3) while PM's runs (0); then both run."""
    judge = SiteJudge(catalogue)

    def states(at: datetime, **instruments: int) -> DeviceStatus:
        return DeviceStatus(
            site=STACK, device=CEMS, state=DeviceState.ONLINE, at=at, instruments=instruments
        )

    begun = judge.judge(None, states(T0, a21026=3, a34013=0))
    [declared] = begun.marks
    assert (declared.kind, declared.mark.type, declared.mark.pollutant) == (
        MarkEventKind.DECLARED,
        MarkType.CALIBRATION,
        "a21026",
    )
    assert declared.mark.reason == "i12001=3" and declared.mark.source is MarkSource.DEVICE
    still = judge.judge(begun.state, states(T0 + MIN, a21026=3, a34013=0))
    assert still.marks == []
    ended = judge.judge(still.state, states(T0 + 5 * MIN, a21026=0, a34013=0))
    [over] = ended.marks
    assert over.kind is MarkEventKind.ENDED and over.mark.end == T0 + 5 * MIN
