"""A stack's numbers (streams/judging/flue_gas.py), on the shared notes' worked example and on
values worked by hand from HJ 75-2017's formulas."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from ecowatch.clock import CHINA
from ecowatch.pollutants import GAS_FLOW, GAS_PRESSURE, GAS_TEMP, MOISTURE, NO, NO2, NOX, O2, SO2
from ecowatch.schema import DataFlag, Measurement
from ecowatch.streams.judging.aggregate import Period, Window
from ecowatch.streams.judging.flue_gas import (
    HIGH_O2,
    at_standard_state,
    corrected,
    disagrees,
    dry,
    emission_rate,
    nox_as_no2,
    nox_window,
    stack_mean,
    stack_state,
    standard_dry_flow,
    standard_dry_flow_of,
    window_emission,
    with_nox,
)


def test_so2_at_9_percent_o2_corrected_to_6_is_over_the_ultra_low_limit() -> None:
    assert corrected(30.0, 9.0, 6.0) == pytest.approx(37.5)  # 30 × 15/12
    assert corrected(30.0, 6.0, 6.0) == pytest.approx(30.0)  # at the reference: as measured
    # Diluted with air: the raw value falls, the corrected one does not.
    assert corrected(15.0, 15.0, 6.0) == pytest.approx(37.5)


def test_no_correction_near_air_s_oxygen() -> None:
    assert corrected(30.0, HIGH_O2, 6.0) is None
    assert corrected(30.0, 20.9, 6.0) is None
    assert corrected(30.0, HIGH_O2 - 0.1, 6.0) == pytest.approx(30.0 * 15 / 2.1)


def test_nox_is_no_as_no2_plus_no2() -> None:
    assert nox_as_no2(30.0, 4.0) == pytest.approx(30.0 * 46 / 30 + 4.0)  # 50
    assert with_nox({NO: 30.0, NO2: 4.0})[NOX] == pytest.approx(50.0)
    assert with_nox({NOX: 48.0, NO: 30.0, NO2: 4.0})[NOX] == 48.0  # the monitor's NOx stands


def test_dry_basis_and_standard_state() -> None:
    assert dry(90.0, 10.0) == pytest.approx(100.0)
    # At 0 °C and the atmosphere's pressure a concentration is already at standard state.
    assert at_standard_state(50.0, 0.0, 0.0) == pytest.approx(50.0)
    # Hot gas is thinner: at 100 °C a cubic metre holds 273/373 of the standard one's mass.
    assert at_standard_state(50.0, 100.0, 0.0) == pytest.approx(50.0 * 373 / 273)


def test_standard_dry_flow_and_the_emission_rate_from_the_measured_concentration() -> None:
    # 100 m³/s at 120 °C, -0.5 kPa, 8 % moisture.
    qsn = standard_dry_flow(100.0, 120.0, -0.5, 8.0)
    assert qsn == pytest.approx(100 * 3600 * 273 / 393 * 100.825 / 101.325 * 0.92)
    assert emission_rate(30.0, qsn) == pytest.approx(30.0 * qsn * 1e-6)  # kg/h
    state = stack_state(
        {GAS_FLOW: 100.0, GAS_TEMP: 120.0, GAS_PRESSURE: -0.5, MOISTURE: 8.0, O2: 6.5}
    )
    assert state.standard_dry_m3_h == pytest.approx(qsn) and state.o2 == 6.5 and state.burning
    assert stack_state({GAS_FLOW: 100.0, O2: 20.0}).standard_dry_m3_h is None  # no temperature
    assert not stack_state({O2: 20.0}).burning


def test_a_corrected_value_disagrees_beyond_its_tolerance() -> None:
    assert not disagrees(36.0, 37.5, 0.05)  # 4 %
    assert disagrees(30.0, 37.5, 0.05)  # corrected with the wrong reference (or none)
    assert not disagrees(0.2, 0.0, 0.05) and disagrees(2.0, 0.0, 0.05)  # near zero: 1 mg/m³


def _window(period: Period, mean: float | None, valid: bool = True) -> Window:
    start = datetime(2026, 11, 23, 10, tzinfo=CHINA)
    length = {Period.MINUTE: timedelta(minutes=1), Period.HOUR: timedelta(hours=1)}[period]
    return Window(
        period=period,
        start=start,
        end=start + length,
        valid=valid,
        mean=mean,
        coverage=length,
        flags={"N": 1},
    )


def test_a_window_s_figures_from_the_o2_and_the_standard_dry_flow_beside_it() -> None:
    hour = _window(Period.HOUR, 30.0)
    key = (Period.HOUR, hour.start)
    beside = {(O2, *key): _window(Period.HOUR, 9.0), ("qsn", *key): _window(Period.HOUR, 4e5)}
    figures = stack_mean(SO2, hour, beside, 6.0, HIGH_O2)
    assert figures is not None
    assert (figures.o2, figures.corrected) == (9.0, pytest.approx(37.5))
    assert figures.emission_kg == pytest.approx(30.0 * 4e5 * 1e-6)  # 12 kg in the hour
    # A minute's emission is a sixtieth of an hour's at the same rate.
    assert window_emission(30.0, _window(Period.MINUTE, 4e5)) == pytest.approx(12.0 / 60)
    # No valid O2 mean: no corrected value; near air's: none either; the gas's state: none.
    invalid_o2 = {**beside, (O2, *key): _window(Period.HOUR, None, valid=False)}
    assert stack_mean(SO2, hour, invalid_o2, 6.0, HIGH_O2).corrected is None  # type: ignore[union-attr]
    near_air = {**beside, (O2, *key): _window(Period.HOUR, 19.5)}
    assert stack_mean(SO2, hour, near_air, 6.0, HIGH_O2).corrected is None  # type: ignore[union-attr]
    assert stack_mean(O2, hour, beside, 6.0, HIGH_O2) is None
    assert stack_mean("qsn", hour, beside, 6.0, HIGH_O2) is None


def test_nox_windows_from_no_and_no2_and_the_standard_dry_flow_of_a_reading() -> None:
    nox = nox_window(_window(Period.HOUR, 30.0), _window(Period.HOUR, 4.0))
    assert nox.mean == pytest.approx(50.0) and nox.valid
    assert not nox_window(_window(Period.HOUR, 30.0), _window(Period.HOUR, None, False)).valid
    values = {
        GAS_FLOW: Measurement(value=120.0),
        GAS_TEMP: Measurement(value=120.0),
        GAS_PRESSURE: Measurement(value=-0.4),
        MOISTURE: Measurement(value=8.0, flag=DataFlag.MAINTENANCE),
    }
    qsn = standard_dry_flow_of(values)
    assert qsn is not None and qsn.value == pytest.approx(standard_dry_flow(120, 120, -0.4, 8))
    assert qsn.flag is DataFlag.MAINTENANCE  # not valid while a part is not
    assert standard_dry_flow_of({GAS_FLOW: Measurement(value=120.0)}) is None
