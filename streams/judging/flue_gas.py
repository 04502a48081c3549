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
from dataclasses import dataclass

from ecowatch.pollutants import GAS_FLOW, GAS_PRESSURE, GAS_TEMP, MOISTURE, NO, NO2, NOX, O2

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


@dataclass(frozen=True, slots=True)
class StackState:
    """What a flue-gas reading says of the gas it measured: the O2 its concentrations are
    corrected with, and the standard dry flow their emission rates are counted over."""

    o2: float | None
    standard_dry_m3_h: float | None

    @property
    def burning(self) -> bool:
        return self.o2 is not None and self.o2 < HIGH_O2


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


def disagrees(reported: float, ours: float, tolerance: float) -> bool:
    """The device's corrected value against the platform's: apart by more than ``tolerance``
    of the platform's, and by more than :data:`ABSOLUTE_SLACK`."""
    return abs(reported - ours) > max(tolerance * abs(ours), ABSOLUTE_SLACK)
