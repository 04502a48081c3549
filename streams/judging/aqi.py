"""The HJ 633 air quality index (AQI, 空气质量指数): pure functions over breakpoints as data.

The breakpoints of each edition live in ``config/standards/hj633-<year>.yaml`` (2012 and 2026),
validated on load; every mistake names the file and the field. This module computes:

- ``iaqi(pollutant, concentration, period, standard)``: one individual index (IAQI, 分指数)
  from one breakpoint table ("1h", "8h" or "24h");
- ``aqi(concentrations, period, standard)``: the real-time ("1h") or daily ("24h") AQI of the
  pollutants given, with its category, primary pollutant(s) and exceeding pollutants.

Pollutants are named by HJ 212 code or by name (PM2.5 a34004, PM10 a34002, SO2 a21026,
NO2 a21004, O3 a05024, CO a21005); concentrations are µg/m³, CO mg/m³, used as given (no
rounding of the concentrations first). Arithmetic is exact (fractions): a value on a breakpoint
gives that breakpoint's IAQI, never one more from a float error before rounding up.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from fractions import Fraction
from functools import cache
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

import ecowatch.config
from ecowatch.aqi_categories import Category, category_of
from ecowatch.config.yamlfile import field_problem, read_yaml
from ecowatch.errors import ConfigError
from ecowatch.schema import DataFlag, Reading

# Installed as package data of ecowatch.config, next to the gb*.yaml limit standards.
STANDARDS_DIR = Path(ecowatch.config.__file__).parent / "standards"
EDITIONS = ("2012", "2026")


class AqiPeriod(StrEnum):
    """The averaging period of a breakpoint table (and, 1h or 24h, of an AQI)."""

    HOUR = "1h"
    EIGHT_HOURS = "8h"  # O3: the daily maximum 8-hour running mean
    DAY = "24h"


@dataclass(frozen=True)
class Pollutant:
    code: str  # HJ 212
    name: str
    unit: str


PM25 = Pollutant("a34004", "PM2.5", "µg/m³")
PM10 = Pollutant("a34002", "PM10", "µg/m³")
SO2 = Pollutant("a21026", "SO2", "µg/m³")
NO2 = Pollutant("a21004", "NO2", "µg/m³")
O3 = Pollutant("a05024", "O3", "µg/m³")
CO = Pollutant("a21005", "CO", "mg/m³")
POLLUTANTS: tuple[Pollutant, ...] = (PM25, PM10, SO2, NO2, O3, CO)  # the order of every output

_BY_KEY: dict[str, Pollutant] = {
    **{p.code: p for p in POLLUTANTS},
    **{p.name.lower(): p for p in POLLUTANTS},
}

# Which table each pollutant's IAQI comes from, per AQI period. The real-time (1h) AQI applies
# the 24h tables to PM10 and PM2.5: HJ 633 has no 1h breakpoints for particulates, so their
# given (hourly) values are read against the 24h ones. The daily AQI takes O3 as the daily
# maximum 8-hour running mean.
TABLES: dict[AqiPeriod, dict[Pollutant, AqiPeriod]] = {
    AqiPeriod.HOUR: {
        PM25: AqiPeriod.DAY,
        PM10: AqiPeriod.DAY,
        SO2: AqiPeriod.HOUR,
        NO2: AqiPeriod.HOUR,
        O3: AqiPeriod.HOUR,
        CO: AqiPeriod.HOUR,
    },
    AqiPeriod.DAY: {
        PM25: AqiPeriod.DAY,
        PM10: AqiPeriod.DAY,
        SO2: AqiPeriod.DAY,
        NO2: AqiPeriod.DAY,
        O3: AqiPeriod.EIGHT_HOURS,
        CO: AqiPeriod.DAY,
    },
}

# The second values aqi() takes for a table whose `above_top` sends to another period
# (HJ 633-2012: SO2 1h above 800 → the SO2 24h IAQI; O3 8h above 800 → the O3 1h IAQI).
SUPPLEMENTS: dict[tuple[Pollutant, AqiPeriod], str] = {
    (SO2, AqiPeriod.DAY): "so2_24h",
    (O3, AqiPeriod.HOUR): "o3_1h",
}


def pollutant(key: str) -> Pollutant:
    """A pollutant by HJ 212 code or by name (case-insensitive): "a34004", "PM2.5", "pm2.5"."""
    found = _BY_KEY.get(key) or _BY_KEY.get(key.strip().lower())
    if found is None:
        known = ", ".join(f"{p.name} ({p.code})" for p in POLLUTANTS)
        raise ValueError(f"unknown pollutant {key!r}; expected one of {known}")
    return found


# -- the file format ---------------------------------------------------------------------------


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


IaqiPoint = Annotated[int, Field(ge=0, le=500)]
Concentration = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class UsePeriod(_Frozen):
    """Above the top: no IAQI from this table; report the same pollutant's ``use`` IAQI."""

    use: AqiPeriod


class Table(_Frozen):
    """One pollutant's breakpoints for one period: ``concentration[i]`` ↔ ``iaqi[i]``."""

    iaqi: Annotated[list[IaqiPoint], Field(min_length=2)]
    concentration: Annotated[list[Concentration], Field(min_length=2)]
    above_top: Literal["cap"] | UsePeriod = "cap"

    @property
    def top(self) -> float:
        return self.concentration[-1]

    def exact(self, c: Fraction) -> Fraction | None:
        """The IAQI by linear interpolation (HJ 633 formula 1); None above the top breakpoint."""
        points = list(zip(_compiled(self).exact, self.iaqi, strict=True))
        for (bl, i_lo), (bh, i_hi) in pairwise(points):
            if c <= bh:
                return Fraction(i_hi - i_lo) / (bh - bl) * (c - bl) + i_lo
        return None

    def ceiling(self, value: float) -> int | None:
        """``ceil(exact(value))``, None above the top, without fractions: in floats where they
        decide, else in integers (:func:`_ceiling`)."""
        return _ceiling(_compiled(self), self.iaqi, value)


_NEAR_WHOLE = 1e-6


def _ceiling(k: _Breakpoints, points: list[int], value: float) -> int | None:
    """:meth:`Table.ceiling` on a table's compiled breakpoints. The float interpolation is off
    the exact one by far less than 1e-6, so unless it falls that near a whole number, its
    ceiling is the exact one's. Comparing floats orders them as their exact decimals do (a
    float's shortest repr rounds back to it, so the order is kept)."""
    bps = k.floats
    v = float(value)
    # A scan, not bisect: the same answer on any table, even one never checked as increasing.
    for i in range(1, len(bps)):
        if v <= bps[i]:
            b_hi, b_lo, i_lo, i_hi = bps[i], bps[i - 1], points[i - 1], points[i]
            x = (i_hi - i_lo) / (b_hi - b_lo) * (v - b_lo) + i_lo
            if abs(x - round(x)) > _NEAR_WHOLE:
                return math.ceil(x)
            # Formula 1 over the decimals as written, as integer ratios n / d.
            nc, dc = _decimal(value)
            (nl, dl), (nh, dh) = k.ratios[i - 1], k.ratios[i]
            num = (i_hi - i_lo) * (nc * dl - nl * dc) * (dh * dl)
            den = (dc * dl) * (nh * dl - nl * dh)  # > 0: the breakpoints increase
            return i_lo - (-num // den)
    return None


def _decimal(x: float) -> tuple[int, int]:
    """``_exact(x)`` as (numerator, denominator), not reduced: 1.2 → (12, 10)."""
    if isinstance(x, int):
        return x, 1
    whole, dot, decimals = repr(float(x)).partition(".")
    if dot and "e" not in decimals:
        return int(whole + decimals), 10 ** len(decimals)
    return _exact(x).as_integer_ratio()  # 1e-05, 1.5e+16


@dataclass(frozen=True, slots=True)
class _Breakpoints:
    floats: tuple[float, ...]  # the concentrations as floats, for the fast path
    exact: tuple[Fraction, ...]  # the same as written (decimal)
    ratios: tuple[tuple[int, int], ...]  # and as integer ratios, for the exact ceiling


# A table's breakpoints converted once (a Table is a frozen model: no attribute to keep them
# in). Keyed by id, with the table held so that the id stays its own.
_COMPILED: dict[int, tuple[Table, _Breakpoints]] = {}


def _compiled(table: Table) -> _Breakpoints:
    hit = _COMPILED.get(id(table))
    if hit is not None and hit[0] is table:
        return hit[1]
    exact = tuple(_exact(b) for b in table.concentration)
    compiled = _Breakpoints(
        tuple(float(b) for b in table.concentration),
        exact,
        tuple(e.as_integer_ratio() for e in exact),
    )
    _COMPILED[id(table)] = (table, compiled)
    return compiled


class PollutantSpec(_Frozen):
    name: str
    unit: str
    breakpoints: Annotated[dict[AqiPeriod, Table], Field(min_length=1)]


class Source(_Frozen):
    number: str
    year: int
    issued: date | None = None
    in_force: date


class AqiStandard(_Frozen):
    """One edition of HJ 633: its breakpoint tables per pollutant (by HJ 212 code) and period."""

    standard: Annotated[str, StringConstraints(pattern=r"^HJ 633-[0-9]{4}$")]
    title: str
    source: Source
    based_on: str | None = None
    changes: list[str] = Field(default_factory=list)  # what differs from based_on, in words
    rounding: Literal["ceil"]  # the only rule either edition uses (see the 2012 file)
    pollutants: Annotated[
        dict[Annotated[str, StringConstraints(pattern=r"^[a-z][0-9]{5}$")], PollutantSpec],
        Field(min_length=1),
    ]

    @property
    def edition(self) -> str:
        """The year of the edition: "2012" for HJ 633-2012."""
        return self.standard.rsplit("-", 1)[1]

    def table(self, p: Pollutant, period: AqiPeriod | str) -> Table:
        spec = self.pollutants.get(p.code)
        tables = spec.breakpoints if spec else {}
        try:
            # A AqiPeriod is a StrEnum: "1h" finds the same table as AqiPeriod.HOUR.
            return tables[period]  # type: ignore[index]
        except (ValueError, KeyError, TypeError):
            have = ", ".join(tables) or "none"
            raise ValueError(
                f"{self.standard} has no {period} breakpoints for {p.name} (it has: {have})"
            ) from None


# -- loading -----------------------------------------------------------------------------------


def _exact(x: float) -> Fraction:
    # repr gives the shortest decimal that round-trips: 0.1 is taken as exactly 1/10.
    return Fraction(x) if isinstance(x, int) else Fraction(repr(float(x)))


def _entry(code: str, doc: Any) -> str:
    raw = doc.get("pollutants") if isinstance(doc, dict) else None
    spec = raw.get(code) if isinstance(raw, dict) else None
    name = spec.get("name") if isinstance(spec, dict) else None
    return f"pollutants entry '{code}'" + (f" ({name})" if isinstance(name, str) else "")


def _errors(path: Path, doc: dict[str, Any], exc: ValidationError) -> ConfigError:
    # A mistake inside a pollutant names the pollutant as the entry, as the catalogue does.
    first = exc.errors()[0]["loc"]
    if len(first) >= 2 and first[0] == "pollutants":
        where = _entry(str(first[1]), doc)
        problems = [{**e, "loc": e["loc"][2:]} for e in exc.errors() if e["loc"][:2] == first[:2]]
    else:
        where = f"standard '{doc.get('standard', path.stem)}'"
        problems = list(exc.errors())
    return ConfigError(f"{path}: {where}: " + "; ".join(field_problem(e) for e in problems))


def _increasing(values: list[float] | list[int]) -> int | None:
    """The first position that does not rise above the one before it, if any."""
    return next((i for i in range(1, len(values)) if values[i] <= values[i - 1]), None)


def _check(path: Path, std: AqiStandard) -> None:
    """What the field types cannot say: the file's name, the pollutants, the breakpoints."""
    top = f"{path}: standard '{std.standard}'"
    expected_stem = std.standard.lower().replace(" ", "")
    if path.stem != expected_stem:
        raise ConfigError(
            f"{top}: field 'standard': the file of {std.standard} is "
            f"{expected_stem}.yaml (one edition per file, named after it)"
        )
    if std.source.number != std.standard or str(std.source.year) != std.edition:
        raise ConfigError(
            f"{top}: field 'source': number and year must be those of "
            f"{std.standard} (got {std.source.number}, {std.source.year})"
        )
    codes = {p.code for p in POLLUTANTS}
    for code in std.pollutants:
        if code not in codes:
            raise ConfigError(
                f"{path}: pollutants entry '{code}': not an AQI pollutant "
                f"(expected {', '.join(p.code for p in POLLUTANTS)})"
            )
    for p in POLLUTANTS:
        where = f"{path}: pollutants entry '{p.code}' ({p.name})"
        spec = std.pollutants.get(p.code)
        if spec is None:
            raise ConfigError(f"{top}: field 'pollutants': no entry for {p.code} ({p.name})")
        if spec.name != p.name:
            raise ConfigError(f"{where}: field 'name': {p.code} is {p.name}, not {spec.name}")
        # NFKC: the micro sign (U+00B5) and the Greek mu (U+03BC) are the same unit here.
        if unicodedata.normalize("NFKC", spec.unit) != unicodedata.normalize("NFKC", p.unit):
            raise ConfigError(f"{where}: field 'unit': expected {p.unit} (got {spec.unit})")
        needed = {TABLES[aqi_period][p] for aqi_period in TABLES}
        missing = sorted(needed - set(spec.breakpoints))
        if missing:
            raise ConfigError(
                f"{where}: field 'breakpoints': missing {', '.join(missing)} (the AQI uses it)"
            )
        for period, table in spec.breakpoints.items():
            _check_table(where, p, period, table, spec.breakpoints)


def _check_table(
    where: str, p: Pollutant, period: AqiPeriod, table: Table, tables: Mapping[AqiPeriod, Table]
) -> None:
    f = f"breakpoints.{period}"
    if len(table.concentration) != len(table.iaqi):
        raise ConfigError(
            f"{where}: field '{f}.concentration': {len(table.concentration)} breakpoints "
            f"for {len(table.iaqi)} IAQI values (field '{f}.iaqi'): one per IAQI value"
        )
    for name, values in (("iaqi", table.iaqi), ("concentration", table.concentration)):
        if values[0] != 0:
            raise ConfigError(f"{where}: field '{f}.{name}': must start at 0 (got {values[0]})")
        i = _increasing(values)
        if i is not None:
            raise ConfigError(
                f"{where}: field '{f}.{name}.{i}': breakpoints must increase strictly "
                f"({values[i]:g} follows {values[i - 1]:g})"
            )
    if isinstance(table.above_top, UsePeriod):
        use = table.above_top.use
        target = tables.get(use)
        if use == period or target is None or target.above_top != "cap":
            raise ConfigError(
                f"{where}: field '{f}.above_top.use': needs another period of {p.name} that "
                f"has breakpoints and caps (got {use})"
            )
        if (p, use) not in SUPPLEMENTS:
            raise ConfigError(
                f"{where}: field '{f}.above_top.use': aqi() takes a second value only for "
                + ", ".join(f"{q.name} {u}" for q, u in SUPPLEMENTS)
            )


def load_aqi_standard(path: Path) -> AqiStandard:
    """One ``hj633-<year>.yaml`` file, validated; a mistake raises ConfigError (file, field)."""
    path = Path(path)
    doc = read_yaml(path)
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a mapping (standard, title, source, pollutants...)")
    try:
        std = AqiStandard.model_validate(doc)
    except ValidationError as exc:
        raise _errors(path, doc, exc) from None
    _check(path, std)
    return std


@cache
def aqi_standard(edition: str) -> AqiStandard:
    """The shipped edition "2012" or "2026", loaded once."""
    if edition not in EDITIONS:
        raise ValueError(f"unknown HJ 633 edition {edition!r}; expected {' or '.join(EDITIONS)}")
    return load_aqi_standard(STANDARDS_DIR / f"hj633-{edition}.yaml")


def _standard(standard: str | AqiStandard) -> AqiStandard:
    if type(standard) is str:
        return aqi_standard(standard)  # the usual case: a pydantic isinstance is a Python call
    return standard if isinstance(standard, AqiStandard) else aqi_standard(str(standard))


# -- computing ---------------------------------------------------------------------------------


class NoIaqiError(ValueError):
    """The concentration is above the top of a table that gives no IAQI there: the standard
    reports the same pollutant's IAQI for another period (``use``) instead."""

    def __init__(
        self,
        standard: str,
        p: Pollutant,
        period: AqiPeriod,
        concentration: float,
        top: float,
        use: AqiPeriod,
        argument: str | None = None,
    ) -> None:
        self.pollutant, self.period, self.use, self.argument = p, period, use, argument
        self.reason = (
            f"{standard}: {p.name} {period} {concentration:g} {p.unit} is above {top:g}, the "
            f"top of its {period} breakpoints, where the {use} IAQI is reported instead"
        )
        hint = f": give the {p.name} {use} value ({argument})" if argument else ""
        super().__init__(self.reason + hint)


def _check_concentration(p: Pollutant, value: float, what: str = "") -> None:
    if type(value) is float and 0.0 <= value < math.inf:
        return  # the usual case, in two comparisons (NaN fails the first)
    if type(value) is int and value >= 0 and math.isfinite(value):
        return  # a whole number (isfinite raises OverflowError on a huge one, as below)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{what or p.name}: expected a number in {p.unit} (got {value!r})")
    if not math.isfinite(value):
        raise ValueError(f"{what or p.name}: expected a finite number (got {value})")
    if value < 0:
        raise ValueError(f"{what or p.name}: a concentration cannot be negative (got {value:g})")


def _concentration(p: Pollutant, value: float, what: str = "") -> Fraction:
    _check_concentration(p, value, what)
    return _exact(value)


def iaqi(
    pollutant_key: str, concentration: float, period: AqiPeriod | str, standard: str | AqiStandard
) -> int:
    """The IAQI of one concentration on one table (period "1h", "8h" or "24h"), rounded up.

    Above the top breakpoint the IAQI is capped at the table's top: 500 for the full tables
    (the index ends there; above it is "severely polluted" either way), 200 for SO2 1h and
    300 for O3 8h in HJ 633-2026. Where HJ 633-2012 gives no IAQI above the top (SO2 1h,
    O3 8h) this raises NoIaqiError, naming the period whose IAQI is reported instead.
    """
    std = _standard(standard)
    p = pollutant(pollutant_key)
    _check_concentration(p, concentration)
    return _iaqi(std, p, concentration, period)


# What aqi() reads per pollutant for one standard and AQI period, looked up once: (pollutant,
# the table's period, the table and its breakpoints, or None where _iaqi must say why not).
# Keyed by id, with the standard held so that the id stays its own (a frozen model, as
# _COMPILED assumes of its tables).
_Plan = tuple[tuple[Pollutant, AqiPeriod, tuple[Table, _Breakpoints] | None], ...]
_PLANS: dict[tuple[int, AqiPeriod], tuple[AqiStandard, _Plan]] = {}


def _plan(std: AqiStandard, aqi_period: AqiPeriod) -> _Plan:
    hit = _PLANS.get((id(std), aqi_period))
    if hit is not None and hit[0] is std:
        return hit[1]
    steps = []
    for p in POLLUTANTS:
        use = TABLES[aqi_period][p]
        try:
            table = std.table(p, use) if std.rounding == "ceil" else None
        except ValueError:
            table = None  # _iaqi raises the same error, when the pollutant is given
        steps.append((p, use, None if table is None else (table, _compiled(table))))
    plan = tuple(steps)
    _PLANS[(id(std), aqi_period)] = (std, plan)
    return plan


def _iaqi(std: AqiStandard, p: Pollutant, concentration: float, period: AqiPeriod | str) -> int:
    """:func:`iaqi` of a checked concentration."""
    table = std.table(p, period)
    assert std.rounding == "ceil"  # the only rule the file format allows
    rounded = table.ceiling(concentration)
    if rounded is not None:
        return rounded
    if isinstance(table.above_top, UsePeriod):
        raise NoIaqiError(
            std.standard, p, AqiPeriod(period), concentration, table.top, table.above_top.use
        )
    return table.iaqi[-1]


@dataclass(frozen=True)
class AqiResult:
    aqi: int
    category: Category  # a StrEnum: compares equal to its English key; .name_zh, .colour
    primary: list[str]  # the pollutants with the largest IAQI; empty unless AQI > 50
    iaqi: dict[str, int]  # pollutant name → IAQI, for the pollutants given
    exceeding: list[str]  # IAQI above 100 (超标)
    period: AqiPeriod = AqiPeriod.DAY
    standard: str = ""  # "HJ 633-2026"
    notes: list[str] = field(default_factory=list)  # a special rule that applied, in words


def aqi(
    concentrations: Mapping[str, float | None],
    period: AqiPeriod | str,
    standard: str | AqiStandard,
    *,
    o3_1h: float | None = None,
    so2_24h: float | None = None,
) -> AqiResult:
    """The real-time ("1h") or daily ("24h") AQI of the pollutants given.

    ``concentrations`` maps pollutant code or name to its value (None: not measured). For
    "1h" these are 1-hour means (PM10 and PM2.5 read against their 24h breakpoints); for
    "24h" they are 24-hour means, O3 being the daily maximum 8-hour running mean. The AQI is
    over the pollutants given; none given is a ValueError.

    HJ 633-2012 reports another IAQI above the top of two tables, which needs a second value:
    ``o3_1h`` (the day's maximum 1-hour O3) when a daily O3 8h value is above 800, and
    ``so2_24h`` (the 24-hour SO2 mean) when a real-time SO2 value is above 800. Without it
    this raises NoIaqiError (a ValueError), rather than report a number the standard does not
    give. HJ 633-2026 caps both tables instead (SO2 1h → 200, O3 8h → 300) and ignores them.
    """
    std = _standard(standard)
    try:
        aqi_period = period if type(period) is AqiPeriod else AqiPeriod(period)
        tables = TABLES[aqi_period]
    except (ValueError, KeyError):
        raise ValueError(f"an AQI is for period 1h or 24h (got {period!r})") from None
    # Keyed by code and built only when given: a Pollutant's (dataclass) hash is slow.
    seconds: dict[tuple[Pollutant, AqiPeriod], float | None] = {}
    if o3_1h is not None or so2_24h is not None:
        seconds = {(O3, AqiPeriod.HOUR): o3_1h, (SO2, AqiPeriod.DAY): so2_24h}
    for (p, use), value in seconds.items():
        if value is None:
            continue
        argument = SUPPLEMENTS[(p, use)]
        if tables[p] == use:  # e.g. o3_1h with a 1h AQI, which reads the O3 value as 1h
            raise ValueError(
                f"{argument} is for a {'24h' if aqi_period is AqiPeriod.HOUR else '1h'} AQI: "
                f"a {aqi_period} AQI reads {p.name} on its {use} breakpoints already"
            )
        # Checked even where this edition does not need it (HJ 633-2026), then ignored.
        _check_concentration(p, value, argument)

    given: dict[str, float] = {}  # by code
    for key, value in concentrations.items():
        p = _BY_KEY.get(key) or pollutant(key)
        if p.code in given:
            raise ValueError(f"{p.name} ({p.code}) is given twice")
        if value is not None:
            if type(value) is not float or not 0.0 <= value < math.inf:
                _check_concentration(p, value)  # the usual case checked inline, as it does
            given[p.code] = value
    if not given:
        raise ValueError("no concentration given: an AQI needs at least one pollutant")

    values: dict[str, int] = {}
    notes: list[str] = []
    for p, use, fast in _plan(std, aqi_period):  # fixed order, whatever the caller's
        value = given.get(p.code)
        if value is None:
            continue
        if fast is not None:  # _iaqi inline; what it raises is left to it, below
            table, k = fast
            rounded = _ceiling(k, table.iaqi, value)
            if rounded is None and not isinstance(table.above_top, UsePeriod):
                rounded = table.iaqi[-1]
            if rounded is not None:
                values[p.name] = rounded
                continue
        try:
            values[p.name] = _iaqi(std, p, value, use)
        except NoIaqiError as exc:
            second = seconds.get((p, exc.use))
            if second is None:
                argument = SUPPLEMENTS[(p, exc.use)]
                raise NoIaqiError(
                    std.standard,
                    p,
                    exc.period,
                    value,
                    std.table(p, exc.period).top,
                    exc.use,
                    argument,
                ) from None
            values[p.name] = _iaqi(std, p, second, exc.use)
            notes.append(f"{exc.reason} ({second:g} {p.unit})")

    top = max(values.values())
    # Ties on the reported (integer) IAQI are all primary (并列首要污染物).
    primary = [name for name, v in values.items() if v == top] if top > 50 else []
    return AqiResult(
        aqi=top,
        category=category_of(top),
        primary=primary,
        iaqi=values,
        exceeding=[name for name, v in values.items() if v > 100],
        period=aqi_period,
        standard=std.standard,
        notes=notes,
    )


AQI_CODES = frozenset(p.code for p in POLLUTANTS)


def realtime_aqi(reading: Reading, standard: str) -> AqiResult | None:
    """An air station's real-time AQI (HJ 633, 1h) from one reading's valid values.

    Only values flagged N count: a value under calibration or maintenance is not air quality.
    None when the reading holds no AQI pollutant with a valid value.
    """
    valid = {
        code: m.value
        for code, m in reading.values.items()
        if code in AQI_CODES and m.flag is DataFlag.NORMAL and m.value >= 0
    }
    if not valid:
        return None
    try:
        return aqi(valid, AqiPeriod.HOUR, standard)
    except NoIaqiError:
        # HJ 633-2012 gives no 1h SO2 IAQI above 800 µg/m³ without the 24h mean, which a
        # single reading does not have: leave SO2 out rather than invent a number.
        valid.pop(SO2.code, None)
        return aqi(valid, AqiPeriod.HOUR, standard) if valid else None
