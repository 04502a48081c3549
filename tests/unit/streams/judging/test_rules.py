"""The detection rules through SiteJudge, on the sample catalogue: every rule and its edges."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone

import pytest

from ecowatch.alerts.wording import finding_text
from ecowatch.config.catalogue import Catalogue, Site
from ecowatch.schema import (
    DataFlag,
    DeviceState,
    DeviceStatus,
    Finding,
    Measurement,
    MeterEvent,
    MeterEventKind,
    MeterStatus,
    Reading,
    Rule,
    Severity,
    ValveState,
)
from ecowatch.streams.judging.aggregate import Period, hour_of
from ecowatch.streams.judging.aqi import realtime_aqi
from ecowatch.streams.judging.ledger import LEDGER_DIGESTS
from ecowatch.streams.judging.rules import (
    Event,
    RuleParams,
    SiteJudge,
    SiteState,
    SiteTick,
    valve_decision,
)
from ecowatch.streams.judging.rules.rejudge import (
    REJUDGE_MAX_WAIT,
    REJUDGE_SETTLE,
    late_hours,
    note_hours,
    read_spans,
    take_settled,
)
from tests.factories import Value, reading

CST = timezone(timedelta(hours=8))
T0 = datetime(2026, 11, 23, 10, 0, tzinfo=CST)
MIN = timedelta(minutes=1)

# S-OUT-001: GB 8978-1996 first grade, permit 91330800MA28F0A01X001P: COD 80, NH3-N 10, pH 6–9.
CHEM, CHEM_MONITOR, CHEM_METER = "S-OUT-001", "33080200000001", "33080200M00001"
CHEM_PERMIT = "permit 91330800MA28F0A01X001P"
# S-OUT-005: GB 18918-2002 class 1A, no permit: COD 50.
PLANT, PLANT_MONITOR = "S-OUT-005", "33082500000005"
AIR, AIR_DEVICE = "S-AIR-001", "33080200A00001"


def en(f: Finding) -> str:
    """A finding as the wording module writes it in English: the rules give the facts."""
    return finding_text(f, "en")


def water(cod: Value, *, flow: Value = 10.0, nh3: Value = 2.0, ph: Value = 7.2) -> dict[str, Value]:
    return {"w00000": flow, "w01018": cod, "w21003": nh3, "w01001": ph}


def plant(ts: datetime, cod: Value, **kw: Value) -> Reading:
    return reading(water(cod, **kw), ts, PLANT, PLANT_MONITOR)


def chem(ts: datetime, cod: Value, **kw: Value) -> Reading:
    return reading(water(cod, **kw), ts, CHEM, CHEM_MONITOR)


def run(
    judge: SiteJudge, events: Iterable[Event], state: SiteState | None = None
) -> tuple[SiteState | None, list[Finding]]:
    found: list[Finding] = []
    for event in events:
        judged = judge.judge(state, event)
        state = judged.state
        found += judged.findings
    return state, found


def of(findings: list[Finding], rule: Rule) -> list[Finding]:
    return [f for f in findings if f.rule is rule]


def every(start: datetime, minutes: int, n: int) -> list[datetime]:
    return [start + i * minutes * MIN for i in range(n)]


@pytest.fixture
def judge(catalogue: Catalogue) -> SiteJudge:
    return SiteJudge(catalogue)


def test_the_sample_limits_are_what_the_tests_assume(catalogue: Catalogue) -> None:
    chem_cod = catalogue.limit_for(CHEM, "w01018")
    plant_cod = catalogue.limit_for(PLANT, "w01018")
    assert chem_cod is not None and plant_cod is not None
    assert str(chem_cod.bound) == "max 80" and chem_cod.source == CHEM_PERMIT
    assert str(plant_cod.bound) == "max 50" and plant_cod.source == "GB 18918-2002 class 1A"


# -- real-time ---------------------------------------------------------------------------------


def test_realtime_exactly_at_the_limit_complies_just_above_warns(judge: SiteJudge) -> None:
    state, found = run(judge, [chem(T0, 80.0)])
    assert of(found, Rule.REALTIME_OVER_LIMIT) == []
    state, found = run(judge, [chem(T0 + MIN, 80.1)], state)
    [f] = of(found, Rule.REALTIME_OVER_LIMIT)
    assert f.active and f.severity is Severity.WARNING
    assert (f.site, f.device, f.pollutant) == (CHEM, CHEM_MONITOR, "w01018")
    assert f.value == 80.1 and f.limit == 80.0 and f.multiple == 1.001
    assert f.limit_source == CHEM_PERMIT and f.unit == "mg/L" and f.at == T0 + MIN
    assert en(f) == f"COD real-time value 80.1 mg/L, 1.00× the limit 80 mg/L ({CHEM_PERMIT})"


def test_realtime_recovery_clears_once_and_refreshes_while_active(judge: SiteJudge) -> None:
    events = [chem(T0, 120.0), chem(T0 + MIN, 130.0), chem(T0 + 61 * MIN, 125.0)]
    events += [chem(T0 + 62 * MIN, 60.0), chem(T0 + 63 * MIN, 61.0)]
    _, found = run(judge, events)
    rt = of(found, Rule.REALTIME_OVER_LIMIT)
    # active at onset, not again a minute later, again after refresh_every (1 h), one clear
    assert [(f.active, f.value) for f in rt] == [(True, 120.0), (True, 125.0), (False, 60.0)]
    assert en(rt[2]) == "COD real-time value 60 mg/L, within the limit 80 mg/L"


# -- late data: resent after an outage (HJ 212-2025 RF=1), or out of order --------------------


def resend(r: Reading, arrival: datetime | None = None) -> Reading:
    """``r`` as its device resends it (RF=1), arriving at ``arrival`` (by default, now)."""
    return r.model_copy(update={"resent": True, "received_at": arrival or T0 + 10 * MIN})


def test_a_reading_dated_ahead_does_not_make_the_live_ones_late(judge: SiteJudge) -> None:
    # The contract lets a clock run up to 5 minutes fast: one reading dated 4 minutes ahead
    # must not turn the next minutes' live readings into "late" data judged apart.
    ahead = chem(T0 + 4 * MIN, 50.0).model_copy(update={"received_at": T0})
    state, _ = run(judge, [chem(T0 - MIN, 50.0), ahead])
    live = judge.judge(state, chem(T0 + MIN, 120.0))
    assert not live.late
    [f] = of(live.findings, Rule.REALTIME_OVER_LIMIT)
    assert f.active and not f.late  # today's exceedance, judged as today's
    # Old and out of order without RF=1 (a logger's backlog), it is late all the same.
    backlog = chem(T0 - 30 * MIN, 50.0).model_copy(update={"received_at": T0 + 2 * MIN})
    assert judge.judge(live.state, backlog).late


def test_old_normal_data_resent_cannot_clear_todays_exceedance(judge: SiteJudge) -> None:
    state, found = run(judge, [chem(T0, 50.0), chem(T0 + MIN, 120.0)])
    [onset] = of(found, Rule.REALTIME_OVER_LIMIT)
    assert onset.active
    # A device resends readings from before the exceedance, all normal: nothing is cleared.
    resent = [resend(chem(T0 - (30 - i) * MIN, 40.0)) for i in range(10)]
    state, found = run(judge, resent, state)
    assert found == []
    # Today's data still over: still active, no second onset; normal again: one clear.
    state, found = run(judge, [chem(T0 + 2 * MIN, 125.0), chem(T0 + 3 * MIN, 60.0)], state)
    assert [(f.active, f.value) for f in of(found, Rule.REALTIME_OVER_LIMIT)] == [(False, 60.0)]


def test_an_exceedance_found_in_resent_data_is_a_late_finding_that_changes_nothing_now(
    judge: SiteJudge,
) -> None:
    state, _ = run(judge, [chem(T0 + i * MIN, 50.0) for i in range(3)])
    assert state is not None
    before = state.model_dump()
    judged = judge.judge(state, resend(chem(T0 - 20 * MIN, 120.0)))  # over, 20 min old
    assert judged.late
    [f] = judged.findings
    assert (f.rule, f.active, f.late, f.value, f.at) == (
        Rule.REALTIME_OVER_LIMIT,
        True,
        True,
        120.0,
        T0 - 20 * MIN,
    )
    assert "found late" in en(f)
    after = judged.state.model_dump()
    # The device's present is as it was (runs, verdicts, the open minute). New: the reading's
    # place in the one-reading-per-time ledger (a second copy is a repeat), its hour, to be
    # judged again once the resend has settled, and the hour's late exceedance, found once.
    news = ("readings", "rejudge", "late_found")
    assert {k: v for k, v in after.items() if k not in news} == {
        k: v for k, v in before.items() if k not in news
    }
    assert list(after["rejudge"]) == [f"{CHEM_MONITOR}|{(T0 - 60 * MIN).isoformat()}"]
    again = judge.judge(judged.state, resend(chem(T0 - 20 * MIN, 120.0)))
    assert again.repeat is not None and again.repeat.identical
    # The next reading of today is judged as today's: normal, and nothing to clear.
    _, found = run(judge, [chem(T0 + 3 * MIN, 50.0)], judged.state)
    assert of(found, Rule.REALTIME_OVER_LIMIT) == []


def test_an_hour_of_an_outage_is_judged_again_from_the_resent_data(judge: SiteJudge) -> None:
    # 10:00-10:10 on time and normal, then the device is off the network until 11:02: the
    # 10 o'clock hour closes with 20 minutes of data, too few for a mean (no verdict).
    on_time = [chem(T0 + m * MIN, 50.0) for m in range(11)] + [chem(T0 + 62 * MIN, 50.0)]
    state, found = run(judge, on_time)
    assert state is not None and of(found, Rule.HOURLY_OVER_LIMIT) == []
    # Back, it resends what it kept (10:11-10:59, COD 120 over the permit's 80), RF=1.
    arrival = T0 + 63 * MIN
    resent = [
        resend(chem(T0 + m * MIN, 120.0), arrival + m * timedelta(0, 1)) for m in range(11, 60)
    ]
    state, found = run(judge, resent, state)
    assert found and all(f.late and f.rule is Rule.REALTIME_OVER_LIMIT for f in found)
    assert state is not None
    last = resent[-1].received_at
    assert take_settled(state, last + timedelta(seconds=5)) == []  # still resending
    [(device, hour)] = take_settled(state, last + timedelta(seconds=10))
    assert (device, hour) == (CHEM_MONITOR, T0) and state.rejudge == {}
    # The day's readings as the store gives them back: the hour again, now with a mean.
    stored = sorted([*on_time, *resent], key=lambda r: r.ts)
    windows, late = judge.rejudge(CHEM, device, hour, stored)
    assert {(cw.window.period, cw.window.start) for cw in windows} == {(Period.HOUR, T0)}
    [w] = [cw.window for cw in windows if cw.pollutant == "w01018"]  # the day is still open
    assert w.start == T0 and w.valid and w.mean is not None and w.mean > 80
    [f] = late
    assert (f.rule, f.late, f.active, f.value, f.at) == (
        Rule.HOURLY_OVER_LIMIT,
        True,
        True,
        w.mean,
        T0 + 60 * MIN,
    )
    assert "found late" in en(f)


def taken(judge: SiteJudge, state: SiteState, readings: list[Reading]) -> list[Reading]:
    """``readings`` taken into ``state``'s ledger, as the worker takes them, and all late."""
    for r in readings:
        assert judge.take(state, r) is None
    assert all(judge.is_late(state, r) for r in readings)
    return readings


def test_a_batch_of_late_readings_is_grouped_per_device_and_hour() -> None:
    arrival = T0 + 10 * MIN
    late = [resend(chem(T0 - 90 * MIN + i * 5 * MIN, 50.0), arrival + i * MIN) for i in range(15)]
    hours = late_hours(late)
    # 08:30-09:40: two hours, each with the latest arrival among its readings
    assert hours == {
        (CHEM_MONITOR, T0 - 120 * MIN): arrival + 5 * MIN,
        (CHEM_MONITOR, T0 - 60 * MIN): arrival + 14 * MIN,
    }
    state = SiteState(site=CHEM)
    note_hours(state, hours)
    note_hours(state, {(CHEM_MONITOR, T0 - 60 * MIN): arrival})  # an older arrival: kept later
    assert list(state.rejudge.values()) == [arrival + 5 * MIN, arrival + 14 * MIN]
    # Nothing while the site's resend goes on; then all of its hours at once.
    assert take_settled(state, arrival + 5 * MIN + REJUDGE_SETTLE) == []
    assert take_settled(state, arrival + 14 * MIN + REJUDGE_SETTLE) == [
        (CHEM_MONITOR, T0 - 120 * MIN),
        (CHEM_MONITOR, T0 - 60 * MIN),
    ]
    assert state.rejudge == {}


def test_a_site_whose_late_readings_never_stop_is_judged_again_all_the_same() -> None:
    state = SiteState(site=CHEM)
    t = T0
    note_hours(state, {(CHEM_MONITOR, T0 - 60 * MIN): t})
    while t < T0 + REJUDGE_MAX_WAIT - MIN:  # a late reading every 5 s: never settled
        t += timedelta(seconds=5)
        note_hours(state, {(CHEM_MONITOR, hour_of(t - 30 * MIN)): t})
        assert take_settled(state, t) == []
    t += 2 * MIN
    taken_hours = take_settled(state, t)
    assert (CHEM_MONITOR, T0 - 60 * MIN) in taken_hours and state.rejudge == {}


def test_a_resend_over_the_limit_is_one_late_finding_per_hour_however_many_readings(
    judge: SiteJudge,
) -> None:
    state, _ = run(judge, [chem(T0 + i * MIN, 50.0) for i in range(3)])
    assert state is not None
    # Two hours of readings a minute apart, all over the limit, in three batches.
    resent = [resend(chem(T0 - 120 * MIN + i * MIN, 120.0)) for i in range(120)]
    taken(judge, state, resent)
    found = [
        f
        for batch in (resent[:50], resent[50:90], resent[90:])
        for f in judge.judge_late(state, batch)
    ]
    assert [(f.rule, f.at, f.late) for f in found] == [
        (Rule.REALTIME_OVER_LIMIT, T0 - 120 * MIN, True),  # the first of each hour
        (Rule.REALTIME_OVER_LIMIT, T0 - 60 * MIN, True),
    ]
    assert len(state.rejudge) == 2  # the two hours, noted once each
    # The present is as it was: nothing active, nothing cleared.
    assert state.active == {}


def test_a_sites_hours_of_one_day_are_one_read_and_days_in_a_row_too() -> None:
    slice_ = timedelta(minutes=10)
    day = datetime(2026, 11, 23, tzinfo=CST)
    hours = [("D1", day + 3 * 60 * MIN), ("D2", day + 9 * 60 * MIN), ("D1", day + 20 * 60 * MIN)]
    assert read_spans(hours, slice_) == [(day - slice_, day + timedelta(hours=25))]
    two_days = [*hours, ("D2", day + timedelta(days=1, hours=2))]
    assert read_spans(two_days, slice_) == [(day - slice_, day + timedelta(days=2, hours=1))]
    apart = [*hours, ("D1", day + timedelta(days=3))]
    assert read_spans(apart, slice_) == [
        (day - slice_, day + timedelta(hours=25)),
        (day + timedelta(days=3) - slice_, day + timedelta(days=4, hours=1)),
    ]


def test_the_hours_of_a_resend_are_judged_again_in_one_pass_as_each_one_alone(
    judge: SiteJudge,
) -> None:
    # A day and a bit of stored readings, 5 minutes apart; two devices' hours noted.
    day = datetime(2026, 11, 22, tzinfo=CST)
    stored = [chem(day + i * 5 * MIN, 60.0 + (i // 12) % 3 * 20) for i in range(12 * 26)]
    noted = {CHEM_MONITOR: {day + 2 * 60 * MIN, day + 14 * 60 * MIN, day + 25 * 60 * MIN}}
    windows, found = judge.rejudge_hours(CHEM, noted, stored)
    one_by_one = [judge.rejudge(CHEM, CHEM_MONITOR, h, stored) for h in sorted(noted[CHEM_MONITOR])]
    alone = {
        (cw.pollutant, cw.window.period, cw.window.start): cw.window
        for w, _ in one_by_one
        for cw in w
    }
    together = {(cw.pollutant, cw.window.period, cw.window.start): cw.window for cw in windows}
    assert together == alone
    # The three hours (the last one, in the next day, still open: not closed) and the first
    # day, once, for each pollutant.
    periods = sorted({(p, s) for _, p, s in together})
    assert periods == [
        (Period.DAY, day),
        (Period.HOUR, day + 2 * 60 * MIN),
        (Period.HOUR, day + 14 * 60 * MIN),
    ]
    # The same findings, the day's once.
    assert sorted((f.rule, f.at) for f in found) == sorted(
        {(f.rule, f.at) for _, fs in one_by_one for f in fs}
    )
    assert found and all(f.late for f in found)


def test_flagged_values_are_never_judged(judge: SiteJudge) -> None:
    flags = [DataFlag.MAINTENANCE, DataFlag.CALIBRATION, DataFlag.FAULT]
    flags += [DataFlag.STOPPED, DataFlag.MANUAL]
    _, found = run(judge, [chem(T0 + i * MIN, (500.0, f)) for i, f in enumerate(flags)])
    assert of(found, Rule.REALTIME_OVER_LIMIT) == []


def test_ph_range_reports_the_crossed_end_and_no_multiple(judge: SiteJudge) -> None:
    state, found = run(judge, [chem(T0, 60.0, ph=9.0), chem(T0 + MIN, 60.0, ph=6.0)])
    assert of(found, Rule.REALTIME_OVER_LIMIT) == []
    state, found = run(judge, [chem(T0 + 2 * MIN, 60.0, ph=9.6)], state)
    [high] = of(found, Rule.REALTIME_OVER_LIMIT)
    assert high.pollutant == "w01001" and high.limit == 9.0 and high.multiple is None
    assert high.unit == "" and "pH real-time value 9.6, above the range 6–9" in en(high)
    state, found = run(judge, [chem(T0 + 3 * MIN, 60.0, ph=5.5)], state)
    # Still the same key: the case stays active, no new onset.
    assert of(found, Rule.REALTIME_OVER_LIMIT) == []
    judge2 = SiteJudge(judge.ctx.catalogue)
    _, found = run(judge2, [chem(T0, 60.0, ph=5.5)])
    [low] = of(found, Rule.REALTIME_OVER_LIMIT)
    assert low.limit == 6.0 and "below the range 6–9" in en(low)


def test_do_is_judged_against_a_minimum(catalogue: Catalogue) -> None:
    # A surface-water section under GB 3838-2002 class V: DO at least 2 mg/L.
    base = catalogue.sites[PLANT].model_dump(by_alias=True)
    section = Site.model_validate(
        {
            **base,
            "id": "S-SW-001",
            "standard": {"id": "GB 3838-2002", "class": "V"},
            "devices": [
                {
                    "id": "SW0000000001",
                    "model": "outfall_monitor",
                    "pollutants": ["w01009", "w01001"],
                }
            ],
        }
    )
    cat = dataclasses.replace(catalogue, sites={**catalogue.sites, "S-SW-001": section})
    judge = SiteJudge(cat)

    def do(ts: datetime, v: float) -> Reading:
        return reading({"w01009": v, "w01001": 7.0}, ts, "S-SW-001", "SW0000000001")

    state, found = run(judge, [do(T0, 2.0)])
    assert of(found, Rule.REALTIME_OVER_LIMIT) == []
    _, found = run(judge, [do(T0 + MIN, 1.5)], state)
    [f] = of(found, Rule.REALTIME_OVER_LIMIT)
    assert f.limit == 2.0 and f.multiple == 0.75
    assert en(f).startswith("DO real-time value 1.5 mg/L, below the minimum 2 mg/L (GB 3838")


def test_meter_concentrations_are_judged_on_the_monitor_only(judge: SiteJudge) -> None:
    r = reading(
        {"w00000": 10.0, "w01018": 200.0, "w21003": 2.0},
        T0,
        CHEM,
        CHEM_METER,
        model="discharge_meter",
    )
    _, found = run(judge, [r])
    assert of(found, Rule.REALTIME_OVER_LIMIT) == []


# -- hourly and daily means ----------------------------------------------------------------------


def test_hourly_mean_over_the_limit_closes_on_the_next_hour(judge: SiteJudge) -> None:
    state, found = run(judge, [plant(ts, 81.5) for ts in every(T0, 5, 12)])
    assert of(found, Rule.HOURLY_OVER_LIMIT) == []  # the hour is not over yet
    _, found = run(judge, [plant(T0 + 60 * MIN, 40.0)], state)
    [f] = of(found, Rule.HOURLY_OVER_LIMIT)
    assert f.active and f.severity is Severity.WARNING
    assert f.value == 81.5 and f.limit == 50.0 and f.multiple == 1.63
    assert f.window_start == T0 and f.window_end == T0 + 60 * MIN and f.at == f.window_end
    assert f.flags == {"N": 12}
    assert en(f) == "COD hourly mean 81.5 mg/L, 1.63× the limit 50 mg/L (GB 18918-2002 class 1A)"


def test_appendix_d_mean_exactly_at_the_permit_limit_complies(catalogue: Catalogue) -> None:
    # Q=10 L/s C=50 then Q=30 L/s C=90, 30 min each: C_h = 80 mg/L, S-OUT-001's permit limit.
    judge = SiteJudge(catalogue, RuleParams(max_slice=timedelta(minutes=30)))
    events = [chem(T0, 50.0, flow=10.0), chem(T0 + 30 * MIN, 90.0, flow=30.0)]
    _, found = run(judge, [*events, chem(T0 + 60 * MIN, 50.0)])
    assert of(found, Rule.HOURLY_OVER_LIMIT) == []
    # One more L/s in the second half: (500 + 90×31) / 41 = 80.24 > 80.
    events[1] = chem(T0 + 30 * MIN, 90.0, flow=31.0)
    _, found = run(judge, [*events, chem(T0 + 60 * MIN, 50.0)])
    [f] = of(found, Rule.HOURLY_OVER_LIMIT)
    assert f.value == pytest.approx(80.2439, abs=1e-4) and f.multiple == 1.003


def test_a_flag_change_mid_hour_judges_the_n_values_only(judge: SiteJudge) -> None:
    # 10:15–10:25 in calibration with the span gas value: excluded, 45 valid minutes remain.
    events = [
        plant(ts, (400.0, DataFlag.CALIBRATION) if i in (3, 4, 5) else 45.0)
        for i, ts in enumerate(every(T0, 5, 12))
    ]
    _, found = run(judge, [*events, plant(T0 + 60 * MIN, 45.0)])
    assert of(found, Rule.HOURLY_OVER_LIMIT) == []
    events = [
        plant(ts, (20.0, DataFlag.MAINTENANCE) if i in (3, 4, 5) else 55.0)
        for i, ts in enumerate(every(T0, 5, 12))
    ]
    _, found = run(judge, [*events, plant(T0 + 60 * MIN, 45.0)])
    [f] = of(found, Rule.HOURLY_OVER_LIMIT)
    assert f.value == 55.0 and f.flags == {"N": 9, "M": 3}


def test_an_invalid_hour_gives_no_verdict(judge: SiteJudge) -> None:
    # 10:00–10:30 every 5 min, held 10 min after the last: 40 valid minutes < 45.
    events = [plant(ts, 200.0) for ts in every(T0, 5, 7)]
    _, found = run(judge, [*events, plant(T0 + 60 * MIN, 40.0)])
    assert of(found, Rule.REALTIME_OVER_LIMIT)  # the early warning did fire
    assert of(found, Rule.HOURLY_OVER_LIMIT) == []


def test_hourly_recovery_is_cleared_once(judge: SiteJudge) -> None:
    events = [plant(ts, 81.5) for ts in every(T0, 10, 6)]
    events += [plant(ts, 40.0) for ts in every(T0 + 60 * MIN, 10, 12)]
    _, found = run(judge, [*events, plant(T0 + 180 * MIN, 40.0)])
    hourly = of(found, Rule.HOURLY_OVER_LIMIT)
    assert [(f.active, f.value, f.window_start) for f in hourly] == [
        (True, 81.5, T0),
        (False, 40.0, T0 + 60 * MIN),  # 12:00 closes 11:00–12:00; 13:00 closes nothing new
    ]
    assert en(hourly[1]).startswith("COD hourly mean 40 mg/L, within the limit 50 mg/L")


def test_every_hour_over_the_limit_is_its_own_evidence(catalogue: Catalogue) -> None:
    # Unlike per-reading rules, which repeat only every refresh_every.
    judge = SiteJudge(catalogue, RuleParams(refresh_every=timedelta(hours=3)))
    events = [plant(ts, 60.0) for ts in every(T0, 10, 18)]
    _, found = run(judge, events)
    hourly = of(found, Rule.HOURLY_OVER_LIMIT)
    assert [f.window_start for f in hourly] == [T0, T0 + 60 * MIN]


def test_daily_mean_is_the_legal_judgement(catalogue: Catalogue) -> None:
    judge = SiteJudge(catalogue, RuleParams(max_slice=timedelta(minutes=30)))
    day = datetime(2026, 11, 23, 0, 0, tzinfo=CST)
    # 20 hours at 40 mg/L (10 L/s) and 4 hours at 100 mg/L (30 L/s): ΣG/ΣD = 62.5 mg/L.
    events = [
        plant(ts, 100.0 if ts.hour >= 20 else 40.0, flow=30.0 if ts.hour >= 20 else 10.0)
        for ts in every(day, 30, 48)
    ]
    _, found = run(judge, [*events, plant(day + timedelta(days=1), 40.0)])
    [f] = of(found, Rule.DAILY_OVER_LIMIT)
    assert f.active and f.severity is Severity.VIOLATION
    assert f.value == 62.5 and f.multiple == 1.25
    assert f.window_start == day and f.window_end == day + timedelta(days=1)
    assert f.flags == {"N": 48}
    assert en(f).startswith("COD daily mean 62.5 mg/L, 1.25× the limit 50 mg/L")


def test_a_day_exactly_at_the_limit_complies(catalogue: Catalogue) -> None:
    judge = SiteJudge(catalogue, RuleParams(max_slice=timedelta(minutes=30)))
    day = datetime(2026, 11, 23, 0, 0, tzinfo=CST)
    events = [plant(ts, 50.0) for ts in every(day, 30, 48)]
    _, found = run(judge, [*events, plant(day + timedelta(days=1), 40.0)])
    assert of(found, Rule.DAILY_OVER_LIMIT) == [] and of(found, Rule.HOURLY_OVER_LIMIT) == []


# -- abnormal data -----------------------------------------------------------------------------


def test_constant_value_n_minus_one_then_n(catalogue: Catalogue) -> None:
    judge = SiteJudge(catalogue, RuleParams(constant_count=5))
    # COD stuck at 42.0; NH3-N and pH vary as they do in real life.
    events = [chem(ts, 42.0, nh3=2 + i / 10, ph=7 + i / 10) for i, ts in enumerate(every(T0, 1, 5))]
    state, found = run(judge, events[:4])
    assert of(found, Rule.CONSTANT_VALUE) == []
    state, found = run(judge, events[4:], state)
    [f] = of(found, Rule.CONSTANT_VALUE)
    assert f.pollutant == "w01018" and en(f) == "COD constant at 42 mg/L for 5 readings"
    _, found = run(judge, [chem(T0 + 5 * MIN, 42.5)], state)
    [c] = of(found, Rule.CONSTANT_VALUE)
    assert not c.active and c.pollutant == "w01018"


def test_zeros_for_n_and_flow_may_be_zero(catalogue: Catalogue) -> None:
    judge = SiteJudge(catalogue, RuleParams(zero_count=3, constant_count=3))
    state, found = run(judge, [chem(ts, 0.0, flow=0.0) for ts in every(T0, 1, 2)])
    assert of(found, Rule.ZERO_VALUES) == []
    state, found = run(judge, [chem(T0 + 2 * MIN, 0.0, flow=0.0)], state)
    [f] = of(found, Rule.ZERO_VALUES)
    assert f.pollutant == "w01018"  # not the flow: an outlet may stand still
    assert [g.pollutant for g in of(found, Rule.CONSTANT_VALUE)] == ["w21003", "w01001"]
    _, found = run(judge, [chem(T0 + 3 * MIN, 30.0, flow=0.0)], state)
    assert [g.active for g in of(found, Rule.ZERO_VALUES)] == [False]


def test_negative_value_and_recovery(judge: SiteJudge) -> None:
    state, found = run(judge, [chem(T0, 40.0), chem(T0 + MIN, -1.5)])
    [f] = of(found, Rule.NEGATIVE_VALUE)
    assert f.active and f.value == -1.5 and en(f) == "COD negative: -1.5 mg/L"
    _, found = run(judge, [chem(T0 + 2 * MIN, 40.0)], state)
    assert [g.active for g in of(found, Rule.NEGATIVE_VALUE)] == [False]


def test_flag_t_is_over_range_and_not_an_exceedance(judge: SiteJudge) -> None:
    state, found = run(judge, [chem(T0, (520.0, DataFlag.OVER_RANGE))])
    [f] = of(found, Rule.OVER_RANGE)
    assert en(f) == "COD 520 mg/L above the instrument's range (flag T)"
    assert of(found, Rule.REALTIME_OVER_LIMIT) == []
    _, found = run(judge, [chem(T0 + MIN, 40.0)], state)
    assert [g.active for g in of(found, Rule.OVER_RANGE)] == [False]


def test_sudden_jump_by_ratio(judge: SiteJudge) -> None:
    _, found = run(judge, [chem(T0, 20.0), chem(T0 + MIN, 90.0)])  # 4.5×: no
    assert of(found, Rule.SUDDEN_JUMP) == []
    state, found = run(judge, [chem(T0, 20.0), chem(T0 + MIN, 120.0)])  # 6×
    [f] = of(found, Rule.SUDDEN_JUMP)
    assert f.value == 120.0 and en(f) == "COD jumped 20 → 120 mg/L (×6)"
    # Steady again: the jump holds for jump_hold (15 min), then clears once.
    state, found = run(judge, [chem(T0 + 10 * MIN, 118.0)], state)
    assert of(found, Rule.SUDDEN_JUMP) == []
    _, found = run(judge, [chem(T0 + 16 * MIN, 119.0), chem(T0 + 17 * MIN, 118.5)], state)
    assert [g.active for g in of(found, Rule.SUDDEN_JUMP)] == [False]


def test_a_fall_is_a_jump_too_and_stale_references_are_not(judge: SiteJudge) -> None:
    _, found = run(judge, [chem(T0, 100.0), chem(T0 + MIN, 10.0)])
    assert len(of(found, Rule.SUDDEN_JUMP)) == 1
    _, found = run(judge, [chem(T0, 100.0), chem(T0 + 31 * MIN, 10.0)])  # jump_within 30 min
    assert of(found, Rule.SUDDEN_JUMP) == []


def test_missing_pollutant(judge: SiteJudge) -> None:
    r = reading({"w00000": 10.0, "w01018": 40.0, "w01001": 7.1}, T0, CHEM, CHEM_MONITOR)
    state, found = run(judge, [r])
    [f] = of(found, Rule.MISSING_POLLUTANT)
    assert f.pollutant == "w21003" and f.device == CHEM_MONITOR
    _, found = run(judge, [chem(T0 + MIN, 40.0)], state)
    [c] = of(found, Rule.MISSING_POLLUTANT)
    assert not c.active and c.pollutant == "w21003"


def test_a_case_shared_by_two_devices_clears_when_both_are_normal(judge: SiteJudge) -> None:
    # The monitor and the meter of S-OUT-001 both report NH3-N: one case, site|w21003|rule.
    monitor_without = reading({"w00000": 1.0, "w01018": 4.0, "w01001": 7.0}, T0, CHEM, CHEM_MONITOR)
    meter_without = reading(
        {"w00000": 1.0, "w01018": 4.0}, T0, CHEM, CHEM_METER, model="discharge_meter"
    )
    state, found = run(judge, [monitor_without, meter_without])
    assert [f.device for f in of(found, Rule.MISSING_POLLUTANT)] == [CHEM_MONITOR, CHEM_METER]
    state, found = run(judge, [chem(T0 + MIN, 40.0)], state)
    assert of(found, Rule.MISSING_POLLUTANT) == []  # the meter still misses it
    meter_with = reading(
        {"w00000": 1.0, "w01018": 4.0, "w21003": 2.0},
        T0 + MIN,
        CHEM,
        CHEM_METER,
        model="discharge_meter",
    )
    _, found = run(judge, [meter_with], state)
    [c] = of(found, Rule.MISSING_POLLUTANT)
    assert not c.active and c.case_key == f"{CHEM}|w21003|missing_pollutant"


# -- offline -----------------------------------------------------------------------------------


def test_offline_by_tick_after_the_timeout_and_back(judge: SiteJudge) -> None:
    state, _ = run(judge, [plant(T0, 40.0)])
    state, found = run(judge, [SiteTick(site=PLANT, now=T0 + 30 * MIN)], state)
    assert found == []  # exactly the timeout: not yet
    state, found = run(judge, [SiteTick(site=PLANT, now=T0 + 31 * MIN)], state)
    [f] = found
    assert f.rule is Rule.OFFLINE and f.device == PLANT_MONITOR and f.pollutant is None
    assert f.value == 31.0 and f.window_start == T0
    state, found = run(judge, [SiteTick(site=PLANT, now=T0 + 40 * MIN)], state)
    assert found == []  # still offline: no repeat before refresh_every
    _, found = run(judge, [plant(T0 + 45 * MIN, 40.0)], state)
    [c] = of(found, Rule.OFFLINE)
    assert not c.active and en(c) == f"device {PLANT_MONITOR} back online: data again"


def test_a_device_never_heard_is_offline_from_the_first_event(judge: SiteJudge) -> None:
    state, _ = run(judge, [chem(T0, 40.0)])  # the meter at S-OUT-001 says nothing
    _, found = run(judge, [SiteTick(site=CHEM, now=T0 + 31 * MIN)], state)
    assert {f.device for f in of(found, Rule.OFFLINE)} == {CHEM_MONITOR, CHEM_METER}


def test_offline_by_last_will_and_online_again(judge: SiteJudge) -> None:
    def status(state_: DeviceState, at: datetime) -> DeviceStatus:
        return DeviceStatus(site=PLANT, device=PLANT_MONITOR, state=state_, at=at)

    state, _ = run(judge, [plant(T0, 40.0)])
    state, found = run(judge, [status(DeviceState.OFFLINE, T0 + 2 * MIN)], state)
    [f] = found
    assert f.rule is Rule.OFFLINE and f.active and "last will" in en(f)
    state, found = run(judge, [status(DeviceState.ONLINE, T0 + 50 * MIN)], state)
    assert [(g.rule, g.active) for g in found] == [(Rule.OFFLINE, False)]
    # Online counts as heard: no offline on the next tick, no second clear.
    _, found = run(
        judge,
        [SiteTick(site=PLANT, now=T0 + 60 * MIN), status(DeviceState.ONLINE, T0 + 61 * MIN)],
        state,
    )
    assert found == []


def test_flagged_too_long(catalogue: Catalogue) -> None:
    judge = SiteJudge(catalogue, RuleParams(flagged_too_long=timedelta(hours=1)))
    events = [plant(ts, (40.0, DataFlag.MAINTENANCE)) for ts in every(T0, 10, 7)]  # to 11:00
    state, found = run(judge, events)
    assert of(found, Rule.FLAGGED_TOO_LONG) == []  # exactly 1 h: not too long yet
    state, found = run(judge, [SiteTick(site=PLANT, now=T0 + 65 * MIN)], state)
    [f] = of(found, Rule.FLAGGED_TOO_LONG)
    assert f.pollutant == "w01018" and f.window_start == T0
    assert en(f) == "COD flagged M (maintenance) since 11-23 10:00 (1.1 h)"
    # Maintenance turning into calibration is the same stretch; N ends it.
    state, found = run(judge, [plant(T0 + 70 * MIN, (40.0, DataFlag.CALIBRATION))], state)
    assert of(found, Rule.FLAGGED_TOO_LONG) == []
    _, found = run(judge, [plant(T0 + 80 * MIN, 40.0)], state)
    [c] = of(found, Rule.FLAGGED_TOO_LONG)
    assert not c.active and c.pollutant == "w01018"


def test_stopped_is_not_flagged_too_long(catalogue: Catalogue) -> None:
    judge = SiteJudge(catalogue, RuleParams(flagged_too_long=timedelta(hours=1)))
    _, found = run(judge, [plant(ts, (0.0, DataFlag.STOPPED)) for ts in every(T0, 10, 12)])
    assert of(found, Rule.FLAGGED_TOO_LONG) == []


# -- quota -------------------------------------------------------------------------------------


# The permit's November quota of the meter at S-OUT-001 (card QZ-IC-0001, equal months).
COD_Q, FLOW_Q = 25000.0 / 12, 365000.0 / 12


def account(
    used: float,
    quota: float = COD_Q,
    valve: ValveState = ValveState.OPEN,
    period: str = "2026-11",
    events: list[MeterEvent] | None = None,
) -> MeterStatus:
    """The meter's own account, honest unless a test says otherwise."""
    return MeterStatus(
        valve=valve,
        period=period,
        quota={"w00000": FLOW_Q, "w01018": quota},
        used={"w00000": 1000.0, "w01018": used},
        events=events or [],
    )


def metered(ts: datetime, status: MeterStatus, flow: float = 10.0, cod: float = 40.0) -> Reading:
    values: dict[str, Value] = {"w00000": flow, "w01018": cod, "w21003": 2.0}
    return reading(values, ts, CHEM, CHEM_METER, model="discharge_meter", meter=status)


def test_quota_levels_and_their_clears(judge: SiteJudge) -> None:
    # The meter counted before the platform watched: its higher count is believed.
    state, found = run(judge, [metered(T0, account(0.799 * COD_Q))])  # 79.9 %
    assert [f for f in found if f.rule.value.startswith("quota")] == []

    judged = judge.judge(state, metered(T0 + MIN, account(0.8 * COD_Q)))  # exactly 80 %
    [w] = of(judged.findings, Rule.QUOTA_WARNING)
    assert w.pollutant == "w01018" and w.value == round(0.8 * COD_Q, 6)
    assert w.limit == round(COD_Q, 6) and w.multiple == 0.8 and w.unit == "kg"
    assert en(w) == "COD used 1,667 of 2,083 kg (80.0%), period 2026-11"
    assert judged.valve is None

    judged = judge.judge(judged.state, metered(T0 + 2 * MIN, account(0.95 * COD_Q)))  # 95 %
    assert [f.rule for f in judged.findings] == [Rule.QUOTA_NEAR_EXHAUSTION]

    judged = judge.judge(judged.state, metered(T0 + 3 * MIN, account(COD_Q)))  # 100 %
    [x] = judged.findings
    assert x.rule is Rule.QUOTA_EXHAUSTED and x.severity is Severity.VIOLATION
    assert judged.valve == "close"

    # The valve closed; the meter reports it. Nothing more to command.
    closed = account(COD_Q + 1, valve=ValveState.CLOSED)
    judged = judge.judge(judged.state, metered(T0 + 4 * MIN, closed, flow=0.0))
    assert judged.findings == [] and judged.valve is None

    # A recharge of 5,000 kg COD: the quota is the month's share plus it; everything clears.
    bought = MeterEvent(kind=MeterEventKind.RECHARGED, at=T0 + 5 * MIN, amounts={"w01018": 5000})
    recharged = account(COD_Q + 1, quota=COD_Q + 5000, valve=ValveState.CLOSED, events=[bought])
    judged = judge.judge(judged.state, metered(T0 + 5 * MIN, recharged, flow=0.0))
    assert {(f.rule, f.active) for f in judged.findings} == {
        (Rule.QUOTA_EXHAUSTED, False),
        (Rule.QUOTA_NEAR_EXHAUSTION, False),
        (Rule.QUOTA_WARNING, False),
    }
    assert judged.valve == "open" and judged.meter is not None
    assert judged.meter.quota["w01018"] == round(COD_Q + 5000, 6)

    # A new period: use starts from zero.
    judged = judge.judge(judged.state, metered(T0 + 6 * MIN, account(12.0, period="2026-12")))
    assert [f for f in judged.findings if f.rule.value.startswith("quota")] == []


def test_a_meter_that_lies_about_its_account_is_closed_on_the_platforms(
    judge: SiteJudge,
) -> None:
    # The meter says it holds a quota of 1e12 and has used nothing, while it discharges 300 L/s
    # of 1,000 mg/L COD: 180 kg in each 10-minute slice, the month's 2,083 kg in 12 slices.
    lie = account(0.0, quota=1e12)
    state: SiteState | None = None
    closed_at = None
    found: list[Finding] = []
    for i in range(14):
        judged = judge.judge(state, metered(T0 + i * 10 * MIN, lie, flow=300.0, cod=1000.0))
        state, found = judged.state, found + judged.findings
        if judged.valve == "close":
            closed_at = i
    assert closed_at == 12  # 12 slices of 180 kg: 2,160 kg of 2,083
    assert judged.meter is not None and judged.meter.quota["w01018"] == round(COD_Q, 6)
    [x] = [f for f in of(found, Rule.QUOTA_EXHAUSTED) if f.active]
    assert x.value == pytest.approx(2160.0) and x.limit == round(COD_Q, 6)
    # Its account flatters it: a finding of abnormal data, naming both figures.
    mismatch = [f for f in of(found, Rule.METER_MISMATCH) if f.active]
    assert mismatch and "quota 1,000,000,000,000 reported" in en(mismatch[0])


def test_valve_decision_transitions() -> None:
    full, room = COD_Q, 100.0
    open_, shut = ValveState.OPEN, ValveState.CLOSED
    assert valve_decision(account(full, valve=open_), None) == "close"
    assert valve_decision(account(full, valve=open_), "open") == "close"  # exhausted again
    assert valve_decision(account(full, valve=open_), "close") is None  # command on its way
    assert valve_decision(account(full, valve=shut), "close") is None
    assert valve_decision(account(room, valve=shut), "close") == "open"  # recharge / period
    assert valve_decision(account(room, valve=shut), "open") is None  # command on its way
    assert valve_decision(account(room, valve=shut), None) is None  # not closed by us
    assert valve_decision(account(room, valve=open_), None) is None
    assert valve_decision(account(COD_Q - 1, valve=open_), None) is None


# -- air quality -------------------------------------------------------------------------------


def station(ts: datetime, pm25: float) -> Reading:
    values: dict[str, Value] = {
        "a34004": pm25,
        "a34002": 50.0,
        "a21026": 10.0,
        "a21004": 20.0,
        "a05024": 60.0,
        "a21005": 0.5,
    }
    return reading(values, ts, AIR, AIR_DEVICE, model="air_station")


def test_aqi_100_is_not_a_finding_101_is(judge: SiteJudge) -> None:
    # HJ 633-2026: PM2.5 60 µg/m³ is IAQI 100; 61 is 100.9, rounded up to 101.
    at_100, at_101 = station(T0, 60.0), station(T0 + MIN, 61.0)
    assert realtime_aqi(at_100, "2026").aqi == 100  # type: ignore[union-attr]
    assert realtime_aqi(at_101, "2026").aqi == 101  # type: ignore[union-attr]
    state, found = run(judge, [at_100])
    assert of(found, Rule.AQI_OVER_100) == []
    state, found = run(judge, [at_101], state)
    [f] = of(found, Rule.AQI_OVER_100)
    assert f.active and f.value == 101.0 and f.pollutant is None and f.device == AIR_DEVICE
    assert en(f) == "AQI 101 (lightly polluted), primary PM2.5"
    _, found = run(judge, [station(T0 + 2 * MIN, 30.0)], state)
    [c] = of(found, Rule.AQI_OVER_100)
    assert not c.active and c.value < 100


def test_air_hourly_limit_on_the_1h_basis(judge: SiteJudge) -> None:
    # SO2 has a 1 h limit (500 µg/m³ in grade II); PM2.5 only a 24 h one: no real-time verdict.
    r = station(T0, 300.0).model_copy(
        update={"values": {**station(T0, 300.0).values, "a21026": Measurement(value=520.0)}}
    )
    _, found = run(judge, [r])
    rt = of(found, Rule.REALTIME_OVER_LIMIT)
    assert [(f.pollutant, f.limit) for f in rt] == [("a21026", 500.0)]


# -- state ---------------------------------------------------------------------------------------


def test_state_round_trips_through_json_and_judging_carries_on(judge: SiteJudge) -> None:
    events: list[Event] = [plant(ts, 81.5) for ts in every(T0, 10, 6)]
    events.append(
        DeviceStatus(site=PLANT, device=PLANT_MONITOR, state=DeviceState.OFFLINE, at=T0 + 55 * MIN)
    )
    state, _ = run(judge, events)
    assert state is not None
    again = SiteState.model_validate_json(state.model_dump_json())
    assert again == state
    tail: list[Event] = [plant(T0 + 60 * MIN, 40.0), SiteTick(site=PLANT, now=T0 + 120 * MIN)]
    assert run(judge, tail, again)[1] == run(judge, tail, state)[1]


def test_judge_leaves_the_given_state_alone(judge: SiteJudge) -> None:
    state, _ = run(judge, [plant(T0, 81.5)])
    assert state is not None
    before = state.model_dump_json()
    judge.judge(state, plant(T0 + 10 * MIN, 90.0))
    assert state.model_dump_json() == before


def test_judging_in_place_is_judging_on_a_copy(judge: SiteJudge) -> None:
    # The worker judges a batch in place; the result must be what the pure judge gives.
    events: list[Event] = [plant(ts, 45.0 + 10 * (i % 3)) for i, ts in enumerate(every(T0, 7, 30))]
    events.append(SiteTick(site=PLANT, now=T0 + 300 * MIN))
    copied, found = run(judge, events)
    owned: SiteState | None = None
    found_in_place: list[Finding] = []
    for event in events:
        judged = judge.judge_in_place(owned, event)
        assert owned is None or judged.state is owned  # no copy made
        owned, found_in_place = judged.state, found_in_place + judged.findings
    assert owned == copied and found_in_place == found and found
    with pytest.raises(ValueError):
        judge.judge_in_place(owned, chem(T0 + 301 * MIN, 40.0))
    assert owned == copied  # a refused event changes nothing


def test_state_stays_bounded(judge: SiteJudge) -> None:
    events = [plant(ts, 30.0 + (i % 7)) for i, ts in enumerate(every(T0, 10, 6 * 24 * 3))]
    state, _ = run(judge, events)
    assert state is not None
    assert len(state.tracks) == 4
    # The one-reading-per-time ledger: one run for a regular device, its last digests.
    (ledger,) = state.readings.values()
    assert len(ledger.runs) == 1 and len(ledger.digests) == LEDGER_DIGESTS
    assert len(state.model_dump_json()) < 5000 + 30 * LEDGER_DIGESTS
