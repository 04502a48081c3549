"""A stack's numbers as the platform computes them, not as the enterprise's CEMS says them
(HJ 75-2017 and HJ 76-2017, data processing). Pure.

A CEMS reports concentrations dry, at standard state (273 K, 101.325 kPa), with NOx as NO2;
the flow it measures is wet, at the stack's temperature and pressure. The platform:

- corrects a concentration to the reference oxygen of the site's standard or permit
  (折算浓度): ``C × (21 − O2_ref) / (21 − O2)``, the value judged against the limit;
- adds NO and NO2 up as NO2 where a monitor reports them apart: ``NO × 46/30 + NO2``;
- turns the measured flow into standard dry flow, ``Qs × 273/(273 + t) × (Ba + Ps)/101.325 ×
  (1 − Xsw)``, and the emission rate from the measured (never the corrected) concentration:
  ``C × Qsn × 10⁻⁶`` kg/h;
- and, for a concentration that came wet or at the stack's state, gives it dry
  (``C / (1 − Xsw)``) and at standard state (``C × 101.325/(Ba + Ps) × (273 + t)/273``).

Worked example (the shared notes): SO2 30 mg/m³ at 9 % O2 in a coal unit (reference 6 %) is
30 × 15/12 = 37.5 mg/m³, over the ultra-low 35.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import timedelta

from ecowatch.pollutants import (
    FLUE_GAS_STATE,
    GAS_FLOW,
    GAS_PRESSURE,
    GAS_TEMP,
    MOISTURE,
    NO,
    NO2,
    NOX,
    O2,
    STANDARD_DRY_FLOW,
)
from ecowatch.schema import DataFlag, Measurement
from ecowatch.streams.judging.aggregate import Period, Window

AIR_O2 = 21.0  # % of dry air, the correction's 21
# At or above this O2, flue gas is mostly air: the unit is not burning (start-up, shutdown) or
# air is let in. A correction there multiplies by 10 or more: not judged, a finding of its own.
HIGH_O2 = 19.0
STANDARD_K = 273.0
STANDARD_KPA = 101.325
NO_TO_NO2 = 46.0 / 30.0  # molar masses: NO counted as NO2


def corrected(
    concentration: float, o2: float, o2_reference: float, high_o2: float = HIGH_O2
) -> float | None:
    """折算浓度 at ``o2_reference`` %; None at or above ``high_o2`` (no combustion to correct
    to)."""
    if o2 >= high_o2:
        return None
    return concentration * (AIR_O2 - o2_reference) / (AIR_O2 - o2)


def nox_as_no2(no: float, no2: float) -> float:
    return no * NO_TO_NO2 + no2


def dry(wet: float, moisture_pct: float) -> float:
    return wet / (1 - moisture_pct / 100)


def at_standard_state(
    concentration: float, temp_c: float, static_kpa: float, ambient_kpa: float = STANDARD_KPA
) -> float:
    """A concentration at the stack's temperature and pressure, at 273 K and 101.325 kPa."""
    absolute = ambient_kpa + static_kpa
    return concentration * STANDARD_KPA / absolute * (STANDARD_K + temp_c) / STANDARD_K


def standard_dry_flow(
    flow_m3_s: float,
    temp_c: float,
    static_kpa: float,
    moisture_pct: float,
    ambient_kpa: float = STANDARD_KPA,
) -> float:
    """The measured (wet, working-state) flow as standard dry m³/h."""
    absolute = ambient_kpa + static_kpa
    state = STANDARD_K / (STANDARD_K + temp_c) * absolute / STANDARD_KPA
    return flow_m3_s * 3600 * state * (1 - moisture_pct / 100)


def emission_rate(concentration_mg_m3: float, standard_dry_m3_h: float) -> float:
    """kg/h, from the measured concentration (the amounts are never corrected)."""
    return concentration_mg_m3 * standard_dry_m3_h * 1e-6


def is_concentration(code: str) -> bool:
    """A pollutant of the flue gas (corrected, judged, counted), not the state of the gas."""
    return code not in FLUE_GAS_STATE and code != STANDARD_DRY_FLOW


@dataclass(frozen=True, slots=True)
class StackState:
    """What a flue-gas reading says of the gas it measured: the O2 its concentrations are
    corrected with, and the standard dry flow their emission rates are counted over."""

    o2: float | None
    standard_dry_m3_h: float | None

    @property
    def burning(self) -> bool:
        return self.o2 is not None and self.o2 < HIGH_O2


def standard_dry_flow_of(values: Mapping[str, Measurement]) -> Measurement | None:
    """A reading's standard dry flow as a measurement of its own, flagged as the first of
    the flow, temperature, pressure and moisture it is worked out from that is not N."""
    flow, temp = values.get(GAS_FLOW), values.get(GAS_TEMP)
    pressure, moisture = values.get(GAS_PRESSURE), values.get(MOISTURE)
    if flow is None or temp is None or pressure is None or moisture is None:
        return None
    flag = DataFlag.NORMAL
    for m in (flow, temp, pressure, moisture):
        if m.flag is not DataFlag.NORMAL:
            flag = m.flag
            break
    qsn = standard_dry_flow(flow.value, temp.value, pressure.value, moisture.value)
    return Measurement(value=qsn, flag=flag)


def stack_state(values: Mapping[str, float]) -> StackState:
    """A reading's O2 and standard dry flow, from the values it carries (code → value)."""
    flow = values.get(GAS_FLOW)
    parts = (values.get(GAS_TEMP), values.get(GAS_PRESSURE), values.get(MOISTURE))
    qsn = None
    if flow is not None and all(p is not None for p in parts):
        temp, pressure, moisture = parts
        assert temp is not None and pressure is not None and moisture is not None
        qsn = standard_dry_flow(flow, temp, pressure, moisture)
    return StackState(values.get(O2), qsn)


def with_nox(values: Mapping[str, float]) -> dict[str, float]:
    """The values, with NOx as NO2 added where the monitor reports NO and NO2 apart."""
    out = dict(values)
    if NOX not in out and NO in out and NO2 in out:
        out[NOX] = nox_as_no2(out[NO], out[NO2])
    return out


ABSOLUTE_SLACK = 1.0  # mg/m³: near zero, two values differ by their analyser's noise


def disagrees(
    reported: float, ours: float, tolerance: float, slack: float = ABSOLUTE_SLACK
) -> bool:
    """The device's corrected value against the platform's: apart by more than ``tolerance``
    of the platform's, and by more than ``slack``."""
    return abs(reported - ours) > max(tolerance * abs(ours), slack)


def still_disagrees(reported: float, ours: float, tolerance: float) -> bool:
    """Whether an open mismatch holds: only agreement within half the tolerance and half the
    slack clears it, so that a gap near the threshold (a small value, the analyser's noise
    on top) is one finding, not one every few minutes."""
    return disagrees(reported, ours, tolerance / 2, ABSOLUTE_SLACK / 2)


# -- a stack's closed windows -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StackMean:
    """A stack's closed window of one concentration as the platform judges and counts it."""

    o2_reference: float
    o2: float | None  # the window's mean O2, %
    corrected: float | None  # 折算浓度 of the mean: None without a valid O2 mean, or near air's
    # What left the stack in the window: the measured (never the corrected) mean × the mean
    # standard dry flow × its length; a day's is the sum of its hours'. None without flow.
    emission_kg: float | None


WindowKey = tuple[str, Period, object]  # (pollutant, period, start)


def nox_window(no: Window, no2: Window) -> Window:
    """NOx as NO2 for a window where a monitor reports NO and NO2 apart (HJ 75-2017)."""
    both = no.mean is not None and no2.mean is not None
    mean = nox_as_no2(no.mean, no2.mean) if both else None  # type: ignore[arg-type]
    return replace(no, valid=no.valid and no2.valid, mean=mean)


def window_emission(mean_mg_m3: float, qsn: Window) -> float | None:
    """kg over a minute or an hour, from its measured mean and its mean standard dry flow."""
    if qsn.mean is None or not qsn.valid:
        return None
    hours = (qsn.end - qsn.start) / timedelta(hours=1)
    return emission_rate(mean_mg_m3, qsn.mean) * hours


def stack_mean(
    code: str,
    window: Window,
    beside: Mapping[WindowKey, Window],
    o2_reference: float,
    high_o2: float,
) -> StackMean | None:
    """A concentration's window with the O2 and standard dry flow that closed beside it
    (``beside``: the device's windows closed by the same reading); None for the gas's state.
    A day's emission is left to the caller, who sums the hours'."""
    if not is_concentration(code):
        return None
    key = (window.period, window.start)
    o2_window = beside.get((O2, *key))
    o2 = o2_window.mean if o2_window is not None and o2_window.valid else None
    value = None
    if window.mean is not None and o2 is not None:
        value = corrected(window.mean, o2, o2_reference, high_o2)
    emission = None
    qsn = beside.get((STANDARD_DRY_FLOW, *key))
    if window.period is not Period.DAY and window.mean is not None and qsn is not None:
        emission = window_emission(window.mean, qsn)
    return StackMean(o2_reference, o2, value, emission)
