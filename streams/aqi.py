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

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

import ecowatch.config
from ecowatch.errors import ConfigError

# Installed as package data of ecowatch.config, next to the gb*.yaml limit standards.
STANDARDS_DIR = Path(ecowatch.config.__file__).parent / "standards"
EDITIONS = ("2012", "2026")


class Period(StrEnum):
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
TABLES: dict[Period, dict[Pollutant, Period]] = {
    Period.HOUR: {
        PM25: Period.DAY,
        PM10: Period.DAY,
        SO2: Period.HOUR,
        NO2: Period.HOUR,
        O3: Period.HOUR,
        CO: Period.HOUR,
    },
    Period.DAY: {
        PM25: Period.DAY,
        PM10: Period.DAY,
        SO2: Period.DAY,
        NO2: Period.DAY,
        O3: Period.EIGHT_HOURS,
        CO: Period.DAY,
    },
}

# The second values aqi() takes for a table whose `above_top` sends to another period
# (HJ 633-2012: SO2 1h above 800 → the SO2 24h IAQI; O3 8h above 800 → the O3 1h IAQI).
SUPPLEMENTS: dict[tuple[Pollutant, Period], str] = {
    (SO2, Period.DAY): "so2_24h",
    (O3, Period.HOUR): "o3_1h",
}


def pollutant(key: str) -> Pollutant:
    """A pollutant by HJ 212 code or by name (case-insensitive): "a34004", "PM2.5", "pm2.5"."""
    found = _BY_KEY.get(key.strip().lower())
    if found is None:
        known = ", ".join(f"{p.name} ({p.code})" for p in POLLUTANTS)
        raise ValueError(f"unknown pollutant {key!r}; expected one of {known}")
    return found


# -- categories --------------------------------------------------------------------------------


class Category(StrEnum):
    """HJ 633 Table 2: the six AQI categories (类别), by their English key."""

    EXCELLENT = "excellent"
    GOOD = "good"
    LIGHTLY_POLLUTED = "lightly_polluted"
    MODERATELY_POLLUTED = "moderately_polluted"
    HEAVILY_POLLUTED = "heavily_polluted"
    SEVERELY_POLLUTED = "severely_polluted"

    @property
    def level(self) -> int:
        """The AQI level (级别): 1 (一级) to 6 (六级)."""
        return _CATEGORY_INFO[self][0]

    @property
    def name_zh(self) -> str:
        return _CATEGORY_INFO[self][1]

    @property
    def colour(self) -> str:
        return _CATEGORY_INFO[self][2]

    @property
    def upper(self) -> int | None:
        """The highest AQI of the category; None for the last, open-ended one."""
        return _CATEGORY_INFO[self][3]

    @property
    def label(self) -> str:
        """The key as words: "lightly polluted"."""
        return self.value.replace("_", " ")


_CATEGORY_INFO: dict[Category, tuple[int, str, str, int | None]] = {
    Category.EXCELLENT: (1, "优", "green", 50),
    Category.GOOD: (2, "良", "yellow", 100),
    Category.LIGHTLY_POLLUTED: (3, "轻度污染", "orange", 150),
    Category.MODERATELY_POLLUTED: (4, "中度污染", "red", 200),
    Category.HEAVILY_POLLUTED: (5, "重度污染", "purple", 300),
    Category.SEVERELY_POLLUTED: (6, "严重污染", "maroon", None),
}


def category_of(aqi_value: int) -> Category:
    """The category of an (integer) AQI: 0–50 excellent, 51–100 good, …, above 300 severely."""
    if aqi_value < 0:
        raise ValueError(f"an AQI is not negative (got {aqi_value})")
    for cat in Category:
        if cat.upper is None or aqi_value <= cat.upper:
            return cat
    raise AssertionError("unreachable: the last category is open-ended")


# -- the file format ---------------------------------------------------------------------------


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


IaqiPoint = Annotated[int, Field(ge=0, le=500)]
Concentration = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class UsePeriod(_Frozen):
    """Above the top: no IAQI from this table; report the same pollutant's ``use`` IAQI."""

    use: Period


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
        points = list(zip(self.concentration, self.iaqi, strict=True))
        for (b_lo, i_lo), (b_hi, i_hi) in pairwise(points):
            bl, bh = _exact(b_lo), _exact(b_hi)
            if c <= bh:
                return Fraction(i_hi - i_lo) / (bh - bl) * (c - bl) + i_lo
        return None


class PollutantSpec(_Frozen):
    name: str
    unit: str
    breakpoints: Annotated[dict[Period, Table], Field(min_length=1)]


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

    def table(self, p: Pollutant, period: Period | str) -> Table:
        spec = self.pollutants.get(p.code)
        tables = spec.breakpoints if spec else {}
        try:
            return tables[Period(period)]
        except (ValueError, KeyError):
            have = ", ".join(tables) or "none"
            raise ValueError(
                f"{self.standard} has no {period} breakpoints for {p.name} (it has: {have})"
            ) from None


# -- loading -----------------------------------------------------------------------------------


def _exact(x: float) -> Fraction:
    # repr gives the shortest decimal that round-trips: 0.1 is taken as exactly 1/10.
    return Fraction(x) if isinstance(x, int) else Fraction(repr(float(x)))


def _describe(err: Any) -> str:
    where = ".".join(str(p) for p in err["loc"]) or "(entry)"
    expected = "no such field" if err["type"] == "extra_forbidden" else err["msg"]
    return f"field '{where}': {expected}"


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
    return ConfigError(f"{path}: {where}: " + "; ".join(_describe(e) for e in problems))


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
    where: str, p: Pollutant, period: Period, table: Table, tables: Mapping[Period, Table]
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
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
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
    return standard if isinstance(standard, AqiStandard) else aqi_standard(str(standard))


# -- computing ---------------------------------------------------------------------------------


class NoIaqiError(ValueError):
    """The concentration is above the top of a table that gives no IAQI there: the standard
    reports the same pollutant's IAQI for another period (``use``) instead."""

    def __init__(
        self,
        standard: str,
        p: Pollutant,
        period: Period,
        concentration: float,
        top: float,
        use: Period,
        argument: str | None = None,
    ) -> None:
        self.pollutant, self.period, self.use, self.argument = p, period, use, argument
        self.reason = (
            f"{standard}: {p.name} {period} {concentration:g} {p.unit} is above {top:g}, the "
            f"top of its {period} breakpoints, where the {use} IAQI is reported instead"
        )
        hint = f": give the {p.name} {use} value ({argument})" if argument else ""
        super().__init__(self.reason + hint)


def _concentration(p: Pollutant, value: float, what: str = "") -> Fraction:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{what or p.name}: expected a number in {p.unit} (got {value!r})")
    if not math.isfinite(value):
        raise ValueError(f"{what or p.name}: expected a finite number (got {value})")
    if value < 0:
        raise ValueError(f"{what or p.name}: a concentration cannot be negative (got {value:g})")
    return _exact(value)


def _rounded(std: AqiStandard, exact: Fraction) -> int:
    assert std.rounding == "ceil"  # the only rule the file format allows
    return math.ceil(exact)


def iaqi(
    pollutant_key: str, concentration: float, period: Period | str, standard: str | AqiStandard
) -> int:
    """The IAQI of one concentration on one table (period "1h", "8h" or "24h"), rounded up.

    Above the top breakpoint the IAQI is capped at the table's top: 500 for the full tables
    (the index ends there; above it is "severely polluted" either way), 200 for SO2 1h and
    300 for O3 8h in HJ 633-2026. Where HJ 633-2012 gives no IAQI above the top (SO2 1h,
    O3 8h) this raises NoIaqiError, naming the period whose IAQI is reported instead.
    """
    std = _standard(standard)
    p = pollutant(pollutant_key)
    table = std.table(p, period)
    exact = table.exact(_concentration(p, concentration))
    if exact is not None:
        return _rounded(std, exact)
    if isinstance(table.above_top, UsePeriod):
        raise NoIaqiError(
            std.standard, p, Period(period), concentration, table.top, table.above_top.use
        )
    return table.iaqi[-1]


@dataclass(frozen=True)
class AqiResult:
    aqi: int
    category: Category  # a StrEnum: compares equal to its English key; .name_zh, .colour
    primary: list[str]  # the pollutants with the largest IAQI; empty unless AQI > 50
    iaqi: dict[str, int]  # pollutant name → IAQI, for the pollutants given
    exceeding: list[str]  # IAQI above 100 (超标)
    period: Period = Period.DAY
    standard: str = ""  # "HJ 633-2026"
    notes: list[str] = field(default_factory=list)  # a special rule that applied, in words


def aqi(
    concentrations: Mapping[str, float | None],
    period: Period | str,
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
        aqi_period = Period(period)
        tables = TABLES[aqi_period]
    except (ValueError, KeyError):
        raise ValueError(f"an AQI is for period 1h or 24h (got {period!r})") from None
    seconds = {(O3, Period.HOUR): o3_1h, (SO2, Period.DAY): so2_24h}
    for (p, use), value in seconds.items():
        if value is None:
            continue
        argument = SUPPLEMENTS[(p, use)]
        if tables[p] == use:  # e.g. o3_1h with a 1h AQI, which reads the O3 value as 1h
            raise ValueError(
                f"{argument} is for a {'24h' if aqi_period is Period.HOUR else '1h'} AQI: "
                f"a {aqi_period} AQI reads {p.name} on its {use} breakpoints already"
            )
        # Checked even where this edition does not need it (HJ 633-2026), then ignored.
        _concentration(p, value, argument)

    given: dict[Pollutant, float] = {}
    for key, value in concentrations.items():
        p = pollutant(key)
        if p in given:
            raise ValueError(f"{p.name} ({p.code}) is given twice")
        if value is not None:
            _concentration(p, value)
            given[p] = value
    if not given:
        raise ValueError("no concentration given: an AQI needs at least one pollutant")

    values: dict[str, int] = {}
    notes: list[str] = []
    for p in POLLUTANTS:  # fixed order, whatever the caller's
        if p not in given:
            continue
        try:
            values[p.name] = iaqi(p.code, given[p], tables[p], std)
        except NoIaqiError as exc:
            second = seconds[(p, exc.use)]
            if second is None:
                argument = SUPPLEMENTS[(p, exc.use)]
                raise NoIaqiError(
                    std.standard,
                    p,
                    exc.period,
                    given[p],
                    std.table(p, exc.period).top,
                    exc.use,
                    argument,
                ) from None
            values[p.name] = iaqi(p.code, second, exc.use, std)
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
