"""A stack judged on its corrected values (折算浓度), and its CEMS checked, on the synthetic
city's coal unit S-STK-001 (GB 13223-2011, 6 % O2, ultra-low permit SO2 35 mg/m³)."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from ecowatch.clock import CHINA
from ecowatch.config.catalogue import Catalogue
from ecowatch.pollutants import STANDARD_DRY_FLOW
from ecowatch.schema import DataFlag, Measurement, Rule
from ecowatch.streams.judging.aggregate import Period
from ecowatch.streams.judging.flue_gas import standard_dry_flow
from ecowatch.streams.judging.rules import SiteJudge
from tests.factories import reading
from tests.unit.streams.judging.test_rules import of, run

STACK, CEMS = "S-STK-001", "33080200G00001"
T0 = datetime(2026, 11, 23, 10, 0, tzinfo=CHINA)
MIN = timedelta(minutes=1)


def flue_gas(at: datetime, so2: float, o2: float, zs: float | None = None, flag: str = "N"):
    """One minute of the coal unit's CEMS: SO2 (with the CEMS's own corrected value), O2,
    the gas's state, and PM and NOx well within their limits."""
    values: dict = {
        "a21026": (so2, flag),
        "a19001": (o2, flag),
        "a34013": 3.0,
        "a21002": 20.0,
        "a00000": 120.0,
        "a01011": 15.0,
        "a01012": 120.0,
        "a01013": -0.4,
        "a01014": 8.0,
    }
    r = reading(values, at, STACK, CEMS, model="flue_gas_monitor")
    if zs is None:
        return r
    so2_m = r.values["a21026"].model_copy(update={"zs": zs})
    return r.model_copy(update={"values": {**r.values, "a21026": so2_m}})


@pytest.fixture
def judge(catalogue: Catalogue) -> SiteJudge:
    return SiteJudge(catalogue)


def test_the_stack_is_what_the_tests_assume(catalogue: Catalogue) -> None:
    assert catalogue.o2_reference(STACK) == 6.0
    so2 = catalogue.limit_for(STACK, "a21026")
    assert so2 is not None and str(so2.bound) == "max 35"


def test_a_real_time_value_is_judged_corrected_to_the_reference_oxygen(judge: SiteJudge) -> None:
    # 30 mg/m³ at 9 % O2: 37.5 at 6 %, over the ultra-low 35 though the raw value is under.
    _, found = run(judge, [flue_gas(T0, 30.0, 9.0)])
    [f] = of(found, Rule.REALTIME_OVER_LIMIT)
    assert (f.pollutant, f.value, f.limit) == ("a21026", pytest.approx(37.5), 35.0)
    assert (f.o2_reference, f.o2_measured) == (6.0, 9.0)
    # At 6 % O2 the same 30 is 30: within.
    _, found = run(judge, [flue_gas(T0, 30.0, 6.0)])
    assert of(found, Rule.REALTIME_OVER_LIMIT) == []


def test_an_hour_is_judged_on_its_corrected_mean_and_only_with_45_valid_minutes(
    judge: SiteJudge,
) -> None:
    """A replayed hour of the coal unit: every minute at 30 mg/m³ and 9 % O2 gives an hourly
    finding on the corrected mean (37.5); an hour with 40 valid minutes gives none."""
    full = [flue_gas(T0 + i * MIN, 30.0, 9.0) for i in range(60)]
    state, found = run(judge, [*full, flue_gas(T0 + 60 * MIN, 20.0, 6.0)])
    [hourly] = of(found, Rule.HOURLY_OVER_LIMIT)
    assert hourly.value == pytest.approx(37.5) and hourly.o2_measured == pytest.approx(9.0)
    assert hourly.window_start == T0 and hourly.o2_reference == 6.0
    # The next hour: 40 valid minutes, 20 in maintenance (M): not a valid hour, no verdict.
    nxt = T0 + timedelta(hours=1)
    part = [flue_gas(nxt + i * MIN, 30.0, 9.0, flag="N" if i < 40 else "M") for i in range(60)]
    _, found = run(judge, [*part, flue_gas(nxt + 60 * MIN, 20.0, 6.0)], state)
    assert of(found, Rule.HOURLY_OVER_LIMIT) == []


def test_a_cems_correcting_with_the_wrong_reference_is_caught(judge: SiteJudge) -> None:
    # The CEMS says 30 (it "corrected" to 9 %, its measured O2): the platform's is 37.5.
    state, found = run(judge, [flue_gas(T0, 30.0, 9.0, zs=30.0)])
    [f] = of(found, Rule.CORRECTED_VALUE_MISMATCH)
    assert (f.value, f.reported, f.o2_reference, f.o2_measured) == (37.5, 30.0, 6.0, 9.0)
    # Within 5 %: no finding; and the open one clears.
    _, found = run(judge, [flue_gas(T0 + MIN, 30.0, 9.0, zs=37.0)], state)
    [cleared] = of(found, Rule.CORRECTED_VALUE_MISMATCH)
    assert not cleared.active


def test_a_mismatch_near_the_threshold_is_one_finding_not_a_flapping_one(
    judge: SiteJudge,
) -> None:
    """SO2 low (4.5 mg/m³ at 6 % O2): a CEMS 25 % under is 1.1 mg/m³ off, just past the
    1 mg/m³ slack; the analyser's noise then brings the gap to 0.9. The finding stays open
    until the two agree within half the tolerance and half the slack."""
    state, found = run(judge, [flue_gas(T0, 4.5, 6.0, zs=3.4)])
    assert [f.active for f in of(found, Rule.CORRECTED_VALUE_MISMATCH)] == [True]
    state, found = run(judge, [flue_gas(T0 + MIN, 4.5, 6.0, zs=3.6)], state)
    assert of(found, Rule.CORRECTED_VALUE_MISMATCH) == []  # 0.9 off: still open, no flap
    _, found = run(judge, [flue_gas(T0 + 2 * MIN, 4.5, 6.0, zs=4.2)], state)
    assert [f.active for f in of(found, Rule.CORRECTED_VALUE_MISMATCH)] == [False]


def test_oxygen_near_air_s_with_flow_is_a_finding_and_nothing_is_judged_corrected(
    judge: SiteJudge,
) -> None:
    # A start-up: O2 20 % while the fan moves gas. Corrected, 10 mg/m³ would read 150.
    _, found = run(judge, [flue_gas(T0, 10.0, 20.0)])
    [f] = of(found, Rule.HIGH_OXYGEN)
    assert f.active and f.value == 20.0 and f.pollutant == "a19001"
    assert of(found, Rule.REALTIME_OVER_LIMIT) == []


def test_a_measurement_carries_the_cems_corrected_value() -> None:
    assert Measurement(value=30.0, zs=37.5).zs == 37.5


def test_a_stack_s_windows_carry_o2_the_corrected_mean_and_the_emission(judge: SiteJudge) -> None:
    """A day at 30 mg/m³ SO2 and 9 % O2: each hour's SO2 window has O2 9, the corrected 37.5,
    and its emission from the measured 30 and the standard dry flow (never the corrected
    37.5); the day's emission is its 24 hours'."""
    qsn = standard_dry_flow(120.0, 120.0, -0.4, 8.0)  # the flue_gas() minute's, m³/h
    day = T0.replace(hour=0)
    state, windows = None, []
    for i in range(24 * 60 + 1):
        judged = judge.judge(state, flue_gas(day + i * MIN, 30.0, 9.0))
        state, windows = judged.state, windows + judged.windows
    so2 = {cw.window.period: cw for cw in windows if cw.pollutant == "a21026"}
    hour, whole_day = so2[Period.HOUR], so2[Period.DAY]
    assert hour.stack is not None and whole_day.stack is not None
    assert hour.stack.o2 == pytest.approx(9.0) and hour.stack.o2_reference == 6.0
    assert hour.stack.corrected == pytest.approx(37.5)
    assert hour.stack.emission_kg == pytest.approx(30.0 * qsn * 1e-6)
    assert whole_day.stack.emission_kg == pytest.approx(24 * 30.0 * qsn * 1e-6)
    assert whole_day.stack.corrected == pytest.approx(37.5)
    # The standard dry flow is a series of its own; the gas's state has no figures.
    flows = [cw for cw in windows if cw.pollutant == STANDARD_DRY_FLOW]
    assert flows and flows[-1].window.mean == pytest.approx(qsn)
    assert all(cw.stack is None for cw in windows if cw.pollutant in ("a19001", "qsn"))


def test_no_emission_is_counted_for_an_hour_without_a_valid_flow(judge: SiteJudge) -> None:
    # The flow meter in maintenance for the hour: the SO2 mean stands, no emission counted.
    state, windows = None, []
    for i in range(61):
        r = flue_gas(T0 + i * MIN, 30.0, 9.0)
        flow = r.values["a00000"].model_copy(update={"flag": DataFlag.MAINTENANCE})
        r = r.model_copy(update={"values": {**r.values, "a00000": flow}})
        judged = judge.judge(state, r)
        state, windows = judged.state, windows + judged.windows
    [hour] = [cw for cw in windows if cw.pollutant == "a21026" and cw.window.period is Period.HOUR]
    assert hour.stack is not None and hour.stack.corrected == pytest.approx(37.5)
    assert hour.stack.emission_kg is None
