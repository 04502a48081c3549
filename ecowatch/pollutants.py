"""The pollutants ecowatch knows, by HJ 212-2017 code: names, units, and what is plausible.

Defined once: the rules, the points, the alerts and the ingest contract take them from here.
"""

from __future__ import annotations

from dataclasses import dataclass

FLOW = "w00000"
PH = "w01001"
DO = "w01009"
WATER_TEMP = "w01010"  # GB 18918's cold-water NH3-N limit needs it when a monitor sends it

# A stack's flue gas (HJ 212-2017 Table B.2; a CEMS reports them, HJ 75-2017).
GAS_FLOW = "a00000"  # flue-gas flow, m³/s (wet, as measured)
VELOCITY = "a01011"
GAS_TEMP = "a01012"
GAS_PRESSURE = "a01013"  # static pressure
MOISTURE = "a01014"  # % of the wet gas
O2 = "a19001"
PM = "a34013"  # particulate matter (烟尘)
SO2 = "a21026"
NOX = "a21002"  # as NO2
NO = "a21003"
NO2 = "a21004"
# The state of the flue gas, not an emission: what a concentration is corrected with.
FLUE_GAS_STATE = frozenset({GAS_FLOW, VELOCITY, GAS_TEMP, GAS_PRESSURE, MOISTURE, O2})
# The platform's own: a stack's standard dry flow (标干流量, m³/h), worked out from flow,
# temperature, pressure and moisture to count emissions. Not an HJ 212 code (no reading can
# carry it), a series beside the device's pollutants in the means and InfluxDB.
STANDARD_DRY_FLOW = "qsn"

# Not concentrations of a discharge: averaged over time, never weighted by flow.
TIME_WEIGHTED = frozenset({FLOW, PH, DO, WATER_TEMP}) | FLUE_GAS_STATE

# What people call each pollutant: (Chinese, English), as officers write them. Anything else
# is shown by its code. The rules, the notifications and the console's pages (through
# /api/city) all take the names from here.
NAMES: dict[str, tuple[str, str]] = {
    FLOW: ("废水流量", "flow"),
    PH: ("pH", "pH"),
    DO: ("溶解氧", "DO"),
    WATER_TEMP: ("水温", "water temperature"),
    "w01012": ("悬浮物", "SS"),
    "w01017": ("BOD5", "BOD5"),
    "w01018": ("COD", "COD"),
    "w01019": ("高锰酸盐指数", "CODMn"),
    "w21001": ("总氮", "TN"),
    "w21003": ("氨氮", "NH3-N"),
    "w21011": ("总磷", "TP"),
    "w22001": ("石油类", "oils"),
    "a21026": ("SO2", "SO2"),
    "a21004": ("NO2", "NO2"),
    NOX: ("氮氧化物", "NOx"),
    NO: ("NO", "NO"),
    PM: ("颗粒物", "PM"),
    GAS_FLOW: ("烟气流量", "flue-gas flow"),
    VELOCITY: ("烟气流速", "velocity"),
    GAS_TEMP: ("烟气温度", "flue-gas temperature"),
    GAS_PRESSURE: ("烟气静压", "static pressure"),
    MOISTURE: ("烟气湿度", "moisture"),
    O2: ("氧含量", "O2"),
    STANDARD_DRY_FLOW: ("标干流量", "standard dry flow"),
    "a21005": ("CO", "CO"),
    "a05024": ("O3", "O3"),
    "a34002": ("PM10", "PM10"),
    "a34004": ("PM2.5", "PM2.5"),
}
# The English names, for what is still worded in English (the findings' details).
SHORT_NAMES = {code: en for code, (_, en) in NAMES.items()}


def name_of(code: str, lang: str = "zh") -> str:
    """The name people use for ``code`` in ``lang`` ("zh" or "en"); the code if it has none."""
    names = NAMES.get(code)
    return code if names is None else names[0 if lang == "zh" else 1]


# Water: mg/L; ambient air: µg/m³, CO mg/m³; flue gas: mg/m³ (the standards say each).
UNITS = {
    FLOW: "L/s",
    WATER_TEMP: "°C",
    GAS_FLOW: "m³/s",
    VELOCITY: "m/s",
    GAS_TEMP: "°C",
    GAS_PRESSURE: "kPa",
    MOISTURE: "%",
    O2: "%",
    STANDARD_DRY_FLOW: "m³/h",
}
QUOTA_UNITS = {FLOW: "m³"}  # pollutant masses in kg


@dataclass(frozen=True)
class Plausible:
    """What an analyser of this pollutant can output at all, faults included. Wider than any
    instrument's range on purpose: an over-range (T), zero or negative value is a finding for
    the rules (abnormal data), not a message to refuse; only the impossible is refused here,
    so a device cannot push 1e300 or pH 40 into the evidence."""

    low: float
    high: float

    def admits(self, value: float) -> bool:
        return self.low <= value <= self.high


# Concentrations reach 1e5 mg/L only in the worst industrial wastewater; an analyser's negative
# spike is a few times its noise, far above -1e3.
_CONCENTRATION = Plausible(-1e3, 1e5)
PLAUSIBLE: dict[str, Plausible] = {
    FLOW: Plausible(-1e3, 1e6),  # L/s: the largest plants discharge ~2e4
    PH: Plausible(-1.0, 15.0),
    DO: Plausible(-10.0, 100.0),
    WATER_TEMP: Plausible(-10.0, 100.0),
    "a21005": Plausible(-100.0, 1e3),  # CO, mg/m³
    GAS_FLOW: Plausible(-1e3, 1e5),  # m³/s: the largest power-plant stacks carry ~1e3
    VELOCITY: Plausible(-50.0, 200.0),
    GAS_TEMP: Plausible(-50.0, 1500.0),
    GAS_PRESSURE: Plausible(-200.0, 200.0),  # kPa, relative to the atmosphere
    MOISTURE: Plausible(-10.0, 100.0),
    O2: Plausible(-5.0, 30.0),  # air is 20.9 %
}


def plausible(code: str) -> Plausible:
    return PLAUSIBLE.get(code, _CONCENTRATION)
