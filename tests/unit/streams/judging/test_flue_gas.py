"""A stack's numbers (streams/judging/flue_gas.py), on the shared notes' worked example and on
values worked by hand from HJ 75-2017's formulas."""

from __future__ import annotations

import pytest

from ecowatch.pollutants import GAS_FLOW, GAS_PRESSURE, GAS_TEMP, MOISTURE, NO, NO2, NOX, O2
from ecowatch.streams.judging.flue_gas import (
    HIGH_O2,
    at_standard_state,
    corrected,
    disagrees,
    dry,
    emission_rate,
    nox_as_no2,
    stack_state,
    standard_dry_flow,
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
