"""Limit standards as data: the one place where a standard's number lives.

Each ``config/standards/gb*.yaml`` file holds one national standard: its ``id``
("GB 8978-1996"), ``title``, ``medium`` (water, ambient air or flue gas), ``source`` (number,
year, dates, which table), the default averaging ``basis``, its ``pollutants`` (HJ 212 code →
name and unit) and its ``classes`` (classes, grades or columns: "III", "1A", "first_grade",
"grade_II"), each with its limits per pollutant. A limit is exactly one of ``{max: 100}``,
``{min: 5}`` (DO) or ``{range: [6, 9]}`` (pH); a pollutant with several limits (GB 3095 per
averaging period, GB 3838 TP for rivers and for lakes) lists them. A limit may name the
``row`` of the standard's table it is read from.

A flue-gas standard's limits are in mg/m³ at standard state (273 K, 101.325 kPa), dry, at a
reference oxygen (基准氧含量): each of its classes states its ``o2_reference`` in %, which a
stack's measured concentration is corrected to before it is judged (HJ 75-2017). Only
flue-gas classes have one.

Only ``gb*.yaml`` files are limit standards. Other files in the folder (the HJ 633 AQI
breakpoints, ``hj633-*.yaml``) have their own format and loader and are not read here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from ecowatch.config.yamlfile import field_problem, read_yaml
from ecowatch.errors import ConfigError
from ecowatch.schema import PollutantCode

STANDARDS_DIR = Path(__file__).parent / "standards"
STANDARD_FILES = "gb*.yaml"  # hj633-*.yaml (AQI breakpoints) share the folder: not ours
# A limit's note where its value is the commonly cited one, not yet read in the standard's text.
UNCHECKED = "to be checked against the standard's table"


class Medium(StrEnum):
    WATER = "water"
    AIR = "air"  # ambient air
    FLUE_GAS = "flue_gas"  # a stack's emissions: mg/m³ at standard state, dry, reference O2


class Basis(StrEnum):
    """The averaging period a limit is judged on."""

    HOURLY = "1h"  # 1-hour mean
    EIGHT_HOUR = "8h"  # daily maximum 8-hour running mean (O3)
    DAILY = "24h"  # daily mean: the legal basis for the wastewater standards


class WaterBody(StrEnum):
    """GB 3838 sets TP apart for rivers and for lakes (and reservoirs); TN for lakes only."""

    RIVER = "river"
    LAKE = "lake"  # lakes and reservoirs


# -- bounds: what a value is compared with -------------------------------------------------


@dataclass(frozen=True)
class Maximum:
    value: float

    def complies(self, x: float) -> bool:
        return x <= self.value

    def at_least_as_strict_as(self, other: Bound) -> bool:
        return isinstance(other, Maximum) and self.value <= other.value

    def __str__(self) -> str:
        return f"max {self.value:g}"


@dataclass(frozen=True)
class Minimum:
    """A floor, such as dissolved oxygen: the value must not fall below it."""

    value: float

    def complies(self, x: float) -> bool:
        return x >= self.value

    def at_least_as_strict_as(self, other: Bound) -> bool:
        return isinstance(other, Minimum) and self.value >= other.value

    def __str__(self) -> str:
        return f"min {self.value:g}"


@dataclass(frozen=True)
class Range:
    """Both ends inclusive, such as pH 6–9."""

    low: float
    high: float

    def complies(self, x: float) -> bool:
        return self.low <= x <= self.high

    def at_least_as_strict_as(self, other: Bound) -> bool:
        return isinstance(other, Range) and other.low <= self.low and self.high <= other.high

    def __str__(self) -> str:
        return f"range {self.low:g}–{self.high:g}"


Bound = Maximum | Minimum | Range


@dataclass(frozen=True)
class AppliedLimit:
    """One limit as it applies: the bound, its unit and basis, and where it comes from.

    ``source`` reads "GB 8978-1996 first grade" or "permit <number>". ``low_temp_max`` is the
    GB 18918 cold-water value (NH3-N 8 instead of 5 when the water is at or below
    ``low_temp_at_or_below_c`` °C). ``o2_reference`` (flue gas only) is the oxygen in % the
    limit holds at: a stack's measured concentration is corrected to it before comparing,
    ``C × (21 − o2_reference) / (21 − O2 measured)`` (HJ 75-2017).
    """

    pollutant: str
    bound: Bound
    unit: str
    basis: Basis
    source: str
    source_zh: str = ""  # the same in Chinese: "GB 8978-1996 一级标准", "排污许可证 <number>"
    low_temp_max: float | None = None
    low_temp_at_or_below_c: float | None = None
    water_body: WaterBody | None = None
    note: str = ""
    row: str = ""  # the table and row of the standard the value is read from
    o2_reference: float | None = None  # flue gas: the % O2 the limit holds at (基准氧含量)

    def bound_at(self, water_temp_c: float | None = None) -> Bound:
        """The bound for this water temperature (unknown temperature: the normal bound)."""
        if (
            self.low_temp_max is not None
            and self.low_temp_at_or_below_c is not None
            and water_temp_c is not None
            and water_temp_c <= self.low_temp_at_or_below_c
        ):
            return Maximum(self.low_temp_max)
        return self.bound

    def complies(self, value: float, water_temp_c: float | None = None) -> bool:
        return self.bound_at(water_temp_c).complies(value)

    def replaced_by(self, spec: BoundSpec, source: str, source_zh: str = "") -> AppliedLimit:
        """This limit as a stricter one (a permit's) replaces it; the permit's cold value, if
        it gives none, is its own number all year round. It keeps the unit, the basis and the
        reference oxygen (a permit's flue-gas limit holds at the same reference), and the note
        unless it only says the standard's value is :data:`UNCHECKED`: the permit's is not."""
        return dataclasses.replace(
            self,
            bound=spec.bound,
            low_temp_max=spec.low_temp_max,
            source=source,
            source_zh=source_zh or source,
            row="",
            note="" if self.note == UNCHECKED else self.note,
        )


# -- the file format ---------------------------------------------------------------------------


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Amount = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class BoundSpec(_Frozen):
    """Exactly one of ``max``, ``min``, ``range``; ``low_temp_max`` only beside ``max``."""

    max: Amount | None = None
    min: Amount | None = None
    range: tuple[Amount, Amount] | None = None
    low_temp_max: Amount | None = None

    @model_validator(mode="after")
    def _exactly_one_kind(self) -> Self:
        given = [k for k in ("max", "min", "range") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"give exactly one of max, min or range (got {', '.join(given) or 'none'})"
            )
        if self.range is not None and self.range[0] > self.range[1]:
            raise ValueError(f"range {list(self.range)}: the low end is above the high end")
        if self.low_temp_max is not None:
            if self.max is None:
                raise ValueError("low_temp_max (the cold-water value) goes only with max")
            if self.low_temp_max < self.max:
                raise ValueError("low_temp_max is the looser cold-water value: not below max")
        return self

    @property
    def bound(self) -> Bound:
        if self.max is not None:
            return Maximum(self.max)
        if self.min is not None:
            return Minimum(self.min)
        assert self.range is not None  # guaranteed by _exactly_one_kind
        return Range(*self.range)


class Limit(BoundSpec):
    basis: Basis | None = None  # None: the standard's default basis
    water_body: WaterBody | None = None  # None: every water body
    note: str = ""
    row: str = ""  # where in the standard: "Table 1, 燃煤锅炉, 二氧化硫, 新建锅炉"


class Source(_Frozen):
    number: str
    year: int
    issued: date | None = None
    in_force: date
    table: str


class PollutantInfo(_Frozen):
    name: str
    unit: str  # "mg/L", "µg/m³", "dimensionless" (pH)


ClassId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_]+$")]


class StandardClass(_Frozen):
    """A class, grade or column of a standard, with its limits per pollutant."""

    label: str  # how a person names it after the standard's id: "first grade", "class 1A"
    label_zh: str  # as the standard's own table names it: "一级标准", "一级A标准"
    valid_from: date | None = None  # a column in force only for a while (GB 3095-2026)
    valid_until: date | None = None
    # Flue gas only: the reference oxygen in % its limits hold at (GB 13223: coal 6, gas 3).
    o2_reference: Annotated[float, Field(ge=0, lt=21, allow_inf_nan=False)] | None = None
    limits: Annotated[dict[PollutantCode, list[Limit]], Field(min_length=1)]

    @field_validator("limits", mode="before")
    @classmethod
    def _one_limit_needs_no_list(cls, raw: Any) -> Any:
        if isinstance(raw, dict):
            return {k: [v] if isinstance(v, dict) else v for k, v in raw.items()}
        return raw

    def in_force_on(self, day: date) -> bool:
        return (self.valid_from is None or self.valid_from <= day) and (
            self.valid_until is None or day <= self.valid_until
        )


class Standard(_Frozen):
    # Only GB files are read (STANDARD_FILES), so only GB ids: "GB 8978-1996", "GB/T ...".
    id: Annotated[str, StringConstraints(pattern=r"^GB(/T)? [0-9.]+-[0-9]{4}$")]
    title: str
    medium: Medium
    source: Source
    basis: Basis  # the default averaging basis of this standard's limits
    low_temperature_c: float | None = None  # low_temp_max applies at or below this (GB 18918)
    pollutants: Annotated[dict[PollutantCode, PollutantInfo], Field(min_length=1)]
    classes: Annotated[dict[ClassId, StandardClass], Field(min_length=1)]

    def label(self, class_id: str) -> str:
        """How a limit's source reads: "GB 8978-1996 first grade"."""
        return f"{self.id} {self.classes[class_id].label}"

    def label_zh(self, class_id: str) -> str:
        """The same in Chinese: "GB 8978-1996 一级标准"."""
        return f"{self.id} {self.classes[class_id].label_zh}"

    def limits(
        self,
        class_id: str,
        pollutant: str,
        *,
        basis: Basis | None = None,
        water_body: WaterBody | None = None,
    ) -> list[AppliedLimit]:
        """The class's limits for one pollutant ([] if it sets none), optionally narrowed."""
        out = []
        cls = self.classes[class_id]
        for limit in cls.limits.get(pollutant, []):
            lb = limit.basis or self.basis
            if basis is not None and lb != basis:
                continue
            if water_body is not None and limit.water_body not in (None, water_body):
                continue
            out.append(
                AppliedLimit(
                    pollutant=pollutant,
                    bound=limit.bound,
                    unit=self.pollutants[pollutant].unit,
                    basis=lb,
                    source=self.label(class_id),
                    source_zh=self.label_zh(class_id),
                    low_temp_max=limit.low_temp_max,
                    low_temp_at_or_below_c=self.low_temperature_c,
                    water_body=limit.water_body,
                    note=limit.note,
                    row=limit.row,
                    o2_reference=cls.o2_reference,
                )
            )
        return out


# -- loading -----------------------------------------------------------------------------------


def _errors(path: Path, label: str, exc: ValidationError) -> ConfigError:
    # A mistake inside a class names the class as the entry, like a catalogue entry.
    first = exc.errors()[0]["loc"]
    if len(first) >= 2 and first[0] == "classes":
        entry = f"classes entry '{first[1]}'"
        problems = [{**e, "loc": e["loc"][2:]} for e in exc.errors() if e["loc"][:2] == first[:2]]
    else:
        entry, problems = f"standard '{label}'", list(exc.errors())
    return ConfigError(f"{path}: {entry}: " + "; ".join(field_problem(e) for e in problems))


def _check(path: Path, std: Standard) -> None:
    """What a field's type cannot say: references inside the file and its name."""
    expected_stem = std.id.lower().replace(" ", "").replace("/", "")
    if path.stem != expected_stem:
        raise ConfigError(
            f"{path}: standard '{std.id}': field 'id': the file of {std.id} is "
            f"{expected_stem}.yaml (one standard per file, named after it)"
        )
    for cid, cls in std.classes.items():
        where = f"{path}: classes entry '{cid}'"
        if cls.valid_from and cls.valid_until and cls.valid_from > cls.valid_until:
            raise ConfigError(f"{where}: field 'valid_until': before valid_from")
        flue_gas = std.medium is Medium.FLUE_GAS
        if flue_gas and cls.o2_reference is None:
            raise ConfigError(
                f"{where}: field 'o2_reference': a flue-gas class needs its reference oxygen "
                f"in % (基准氧含量), e.g. 6 for a coal-fired boiler under GB 13223-2011"
            )
        if not flue_gas and cls.o2_reference is not None:
            raise ConfigError(
                f"{where}: field 'o2_reference': only a flue-gas standard has a reference "
                f"oxygen; {std.id} is a standard for {std.medium}"
            )
        for code, limits in cls.limits.items():
            if code not in std.pollutants:
                raise ConfigError(
                    f"{where}: field 'limits.{code}': pollutant not declared under "
                    f"'pollutants' (its name and unit live there)"
                )
            seen: set[tuple[Basis, WaterBody | None]] = set()
            for i, limit in enumerate(limits):
                key = (limit.basis or std.basis, limit.water_body)
                if key in seen:
                    raise ConfigError(
                        f"{where}: field 'limits.{code}.{i}': a second limit for basis "
                        f"{key[0]} and water body {key[1] or 'any'}"
                    )
                seen.add(key)
                if limit.low_temp_max is not None and std.low_temperature_c is None:
                    raise ConfigError(
                        f"{where}: field 'limits.{code}.{i}.low_temp_max': the standard "
                        f"sets no low_temperature_c for it to apply at"
                    )


def load_standard(path: Path) -> Standard:
    doc = read_yaml(path)
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a mapping (id, title, source, classes, ...)")
    try:
        std = Standard.model_validate(doc)
    except ValidationError as exc:
        raise _errors(path, str(doc.get("id", path.stem)), exc) from None
    _check(path, std)
    return std


def load_standards(folder: Path = STANDARDS_DIR) -> Mapping[str, Standard]:
    """Every ``gb*.yaml`` of the folder, by standard id, validated."""
    files = sorted(Path(folder).glob(STANDARD_FILES))
    if not files:
        raise ConfigError(f"{folder}: no standard files ({STANDARD_FILES}) found")
    # A file is named after its standard's id (checked), so no id can be defined twice.
    standards = (load_standard(path) for path in files)
    return MappingProxyType({std.id: std for std in standards})


@cache
def package_standards() -> Mapping[str, Standard]:
    """The standards shipped with ecowatch, loaded once."""
    return load_standards(STANDARDS_DIR)
