"""The catalogue: grids, enterprises, sites and their devices, as validated YAML.

A catalogue is a folder of ``*.yaml`` files; each file may hold any of the top-level sections
(``grids``, ``enterprises``, ``sites``) and the folder's files are merged. Every mistake is
reported with the file, the entry and the field, and what was expected, before anything runs.

Which limit applies where: an outfall names its standard and class (``standard: {id: GB
8978-1996, class: first_grade}``, see :mod:`ecowatch.config.standards`) and may hold a
discharge permit (排污许可证) whose per-pollutant limits are stricter; an air station may name
its ambient standard. A card-swipe discharge meter (刷卡排污) is a device of model
``discharge_meter`` at an outfall, carrying its quota.

A stack (废气排放口) names its flue-gas standard and class (``{id: GB 13223-2011, class:
coal_existing}``), whose limits hold at the class's reference oxygen; the site may state its
own ``o2_reference`` (% O2), which wins. Its permit may set stricter limits, such as ultra-low
emission (``limits: {a34013: 10, a21026: 35, a21002: 50}``), in mg/m³ at that reference. Its
device is a ``flue_gas_monitor`` (CEMS), which measures O2 among the flue-gas codes.

Contacts carry no secrets: only the name of the environment variable that holds the apprise URL
(``notify_env``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

from ecowatch.config.policies import (
    MarkEntry,
    MarkPolicy,
    Policy,
    PolicyEntry,
    mark_policy,
    policy_for,
)
from ecowatch.config.standards import (
    AppliedLimit,
    Basis,
    Bound,
    BoundSpec,
    Maximum,
    Medium,
    Standard,
    package_standards,
)
from ecowatch.config.yamlfile import field_problem, read_yaml
from ecowatch.durations import PositiveDuration
from ecowatch.errors import ConfigError
from ecowatch.pollutants import (
    GAS_FLOW,
    GAS_PRESSURE,
    GAS_TEMP,
    MOISTURE,
    NO,
    NO2,
    NOX,
    O2,
    PM,
    SO2,
    VELOCITY,
)
from ecowatch.schema import Identifier, PollutantCode, Rule, Severity

SECTIONS = ("grids", "enterprises", "sites", "policies", "marks")

Fail = Callable[[str, str], NoReturn]  # reports (field, problem) for the site being checked


class SiteKind(StrEnum):
    OUTFALL = "outfall"  # a wastewater outfall (排污口)
    AIR_STATION = "air_station"  # an ambient air quality station (空气质量监测站)
    STACK = "stack"  # a flue-gas emission point (废气排放口)


class DeviceModel(StrEnum):
    OUTFALL_MONITOR = "outfall_monitor"  # wastewater online monitoring (在线监测)
    AIR_STATION = "air_station"  # air quality analysers of a station
    DISCHARGE_METER = "discharge_meter"  # card-swipe discharge meter (刷卡排污)
    FLUE_GAS_MONITOR = "flue_gas_monitor"  # flue-gas CEMS (烟气在线监测)


# How often a device of each model reports in normal operation: its nominal rate, of which the
# ingest contract allows a few times (ingest/contract.py, ReadingLimiter). Each model uploads
# real-time data (HJ 212 CN 2011) every RtdInterval, which HJ 212-2017 lets a site set from
# 30 s up to an hour: 30 s is the fastest a monitor is configured to report. Its minute, hourly
# and daily data (CN 2051, 2061, 2031) add about one reading in ten to that. The simulators
# report every 60 s.
REPORTING_INTERVAL: dict[DeviceModel, timedelta] = {
    DeviceModel.OUTFALL_MONITOR: timedelta(seconds=30),
    DeviceModel.AIR_STATION: timedelta(seconds=30),
    DeviceModel.DISCHARGE_METER: timedelta(seconds=30),
    DeviceModel.FLUE_GAS_MONITOR: timedelta(seconds=30),
}


class OfficerRole(StrEnum):
    OFFICER = "officer"
    SUPERVISOR = "supervisor"


class StationControl(StrEnum):
    """Who runs an air station's assessment (国控 / 省控 / 市控)."""

    NATIONAL = "national"
    PROVINCIAL = "provincial"
    MUNICIPAL = "municipal"


# Which device models a kind of site may hold.
_MODELS_AT: dict[SiteKind, frozenset[DeviceModel]] = {
    SiteKind.OUTFALL: frozenset({DeviceModel.OUTFALL_MONITOR, DeviceModel.DISCHARGE_METER}),
    SiteKind.AIR_STATION: frozenset({DeviceModel.AIR_STATION}),
    SiteKind.STACK: frozenset({DeviceModel.FLUE_GAS_MONITOR}),
}
_MEDIUM_OF: dict[SiteKind, Medium] = {
    SiteKind.OUTFALL: Medium.WATER,
    SiteKind.AIR_STATION: Medium.AIR,
    SiteKind.STACK: Medium.FLUE_GAS,
}

# What a flue-gas CEMS measures (HJ 212-2017 Table B.2); a stack's device lists the ones it has.
# CO (a21005) is measured where the standard limits it (GB 18485, waste incineration).
FLUE_GAS_CODES = frozenset(
    {PM, SO2, NOX, NO, NO2, O2, GAS_FLOW, VELOCITY, GAS_TEMP, GAS_PRESSURE, MOISTURE, "a21005"}
)
O2_AIR = 21.0  # % O2 of air: a reference oxygen lies below it (the correction divides by 21 − O2)

# The name of an environment variable, never its value: a URL here would be a leaked secret.
EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z0-9_]{0,127}$")]
Phone = Annotated[str, StringConstraints(pattern=r"^\+?[0-9][0-9 -]{5,19}$")]
MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Officer(_Entry):
    id: Identifier
    name: str
    role: OfficerRole = OfficerRole.OFFICER
    phone: Phone | None = None
    notify_env: EnvName | None = None  # e.g. ECOWATCH_NOTIFY_O_KC_01 holds the apprise URL


class Grid(_Entry):
    """An enforcement grid (网格): a district's patch with its officers."""

    id: Identifier
    name: str
    district: str
    officers: list[Officer] = Field(default_factory=list)


class Contact(_Entry):
    """An enterprise's environmental contact (环保负责人), reminded first."""

    name: str
    phone: Phone | None = None
    notify_env: EnvName | None = None


class Enterprise(_Entry):
    id: Identifier
    name: str
    industry: str = ""
    contact: Contact | None = None


class Quota(_Entry):
    """A discharge meter's permitted annual quantities (w00000 in m³, pollutants in kg).

    The accounting year starts on the 1st of a month and resets without carry-over; the
    annual amounts are split over calendar months equally or by explicit percentages.
    """

    card: Identifier  # the IC card's id
    year_starts: str  # "MM-01"
    annual: Annotated[
        dict[PollutantCode, Annotated[float, Field(gt=0, allow_inf_nan=False)]],
        Field(min_length=1),
    ]
    monthly: Literal["equal"] | dict[str, Annotated[float, Field(ge=0)]] = "equal"

    @field_validator("year_starts")
    @classmethod
    def _month_start(cls, v: str) -> str:
        month, sep, day = v.partition("-")
        if not (sep and day == "01" and month.isdigit() and len(month) == 2):
            raise ValueError("expected MM-01: monthly quotas follow calendar months")
        if not 1 <= int(month) <= 12:
            raise ValueError(f"month {month} is not 01–12")
        return v

    @field_validator("monthly")
    @classmethod
    def _twelve_percentages(cls, v: str | dict[str, float]) -> str | dict[str, float]:
        if isinstance(v, dict):
            if set(v) != set(MONTHS):
                missing, extra = set(MONTHS) - set(v), set(v) - set(MONTHS)
                raise ValueError(
                    f"give a percentage for each of {', '.join(MONTHS)}"
                    + (f"; missing {sorted(missing)}" if missing else "")
                    + (f"; unknown {sorted(extra)}" if extra else "")
                )
            if abs(sum(v.values()) - 100) > 1e-6:
                raise ValueError(f"the monthly percentages add up to {sum(v.values()):g}, not 100")
        return v

    @property
    def first_month(self) -> int:
        return int(self.year_starts[:2])

    def share(self, month: int) -> float:
        """The fraction of the annual amounts for a calendar month (1–12)."""
        if self.monthly == "equal":
            return 1 / 12
        return self.monthly[MONTHS[month - 1]] / 100

    def for_month(self, month: int) -> dict[str, float]:
        return {code: amount * self.share(month) for code, amount in self.annual.items()}

    def year_start(self, day: date) -> date:
        """The first day of the accounting year that ``day`` falls in."""
        year = day.year if day.month >= self.first_month else day.year - 1
        return date(year, self.first_month, 1)


class Device(_Entry):
    """A monitor. Its id is its HJ 212 MN and its MQTT user name."""

    id: Identifier
    model: DeviceModel
    pollutants: Annotated[list[PollutantCode], Field(min_length=1)]
    quota: Quota | None = None  # discharge meters only, and required there
    # How often it owes a real-time value (its RtdInterval, as its permit or the local
    # platform sets it): what its transmission rate counts as expected. A minute: 1,440 a day.
    reports_every: PositiveDuration = timedelta(minutes=1)

    @property
    def reporting_interval(self) -> timedelta:
        """How often it reports in normal operation (its model's, :data:`REPORTING_INTERVAL`)."""
        return REPORTING_INTERVAL[self.model]


class StandardRef(_Entry):
    """Which standard and class (grade, column) applies: ``{id: GB 8978-1996, class: ...}``."""

    id: str
    class_: str = Field(alias="class")


def _number_is_a_maximum(v: Any) -> Any:
    # A permit limit is nearly always a maximum: `w01018: 80` reads as `{max: 80}`.
    return {"max": v} if isinstance(v, int | float) and not isinstance(v, bool) else v


PermitLimit = Annotated[BoundSpec, BeforeValidator(_number_is_a_maximum)]


class Permit(_Entry):
    """A discharge permit (排污许可证): limits in the standard's unit and averaging basis."""

    number: Annotated[str, StringConstraints(min_length=1)]
    limits: dict[PollutantCode, PermitLimit] = Field(default_factory=dict)


class Site(_Entry):
    id: Identifier
    name: str
    kind: SiteKind
    enterprise: Identifier | None = None  # air stations belong to no enterprise
    district: str
    grid: Identifier
    lat: Annotated[float, Field(ge=-90, le=90)]
    lon: Annotated[float, Field(ge=-180, le=180)]
    devices: Annotated[list[Device], Field(min_length=1)]
    standard: StandardRef | None = None  # required for outfalls and stacks
    permit: Permit | None = None  # outfalls and stacks
    control: StationControl | None = None  # air stations only
    # Stacks only: the reference oxygen in % its limits hold at, if not its standard class's.
    o2_reference: Annotated[float, Field(allow_inf_nan=False)] | None = None


@dataclass(frozen=True)
class DeviceEntry:
    """A device with the site it is installed at: what the bridge looks a sender up by."""

    device: Device
    site: Site


@dataclass(frozen=True)
class Catalogue:
    grids: dict[str, Grid]
    enterprises: dict[str, Enterprise]
    sites: dict[str, Site]
    standards: Mapping[str, Standard] = field(default_factory=package_standards)
    policies: tuple[PolicyEntry, ...] = ()
    marks: MarkPolicy = field(default_factory=MarkPolicy)  # how marks are held to account

    def policy_for(self, rule: Rule, pollutant: str | None, severity: Severity) -> Policy:
        """The escalation policy of a case: the most specific catalogue entry, else defaults."""
        return policy_for(self.policies, rule, pollutant, severity)

    @cached_property
    def devices(self) -> dict[str, DeviceEntry]:
        return {d.id: DeviceEntry(d, s) for s in self.sites.values() for d in s.devices}

    def device(self, device_id: str) -> DeviceEntry | None:
        return self.devices.get(device_id)

    @cached_property
    def officers(self) -> dict[str, Officer]:
        """Every officer by id (a supervisor of several grids appears once)."""
        return {o.id: o for g in self.grids.values() for o in g.officers}

    @cached_property
    def districts(self) -> list[str]:
        return sorted({g.district for g in self.grids.values()})

    def o2_reference(self, site_id: str) -> float | None:
        """The reference oxygen (% O2) a stack's concentrations are corrected to before they
        are judged: the site's own if it states one, else its standard class's; None for a
        site judged uncorrected (an outfall, an air station). Unknown site: KeyError."""
        site = self.sites[site_id]
        if site.o2_reference is not None:
            return site.o2_reference
        if site.standard is None:
            return None
        return self.standards[site.standard.id].classes[site.standard.class_].o2_reference

    def limits_for(self, site_id: str, pollutant: str) -> list[AppliedLimit]:
        """Every limit that applies to a site's pollutant: one per averaging basis. A stack's
        limits carry the reference oxygen that applies to it (:meth:`o2_reference`)."""
        site = self.sites[site_id]
        if site.standard is None:
            return []
        ref = site.standard
        found = self.standards[ref.id].limits(ref.class_, pollutant)
        if site.o2_reference is not None:
            found = [dataclasses.replace(lim, o2_reference=site.o2_reference) for lim in found]
        if site.permit is not None and pollutant in site.permit.limits:
            # Checked on load: the standard has exactly one limit here, looser than the permit's.
            return [
                found[0].replaced_by(
                    site.permit.limits[pollutant],
                    f"permit {site.permit.number}",
                    f"排污许可证 {site.permit.number}",
                )
            ]
        return found

    def limit_for(
        self, site_id: str, pollutant: str, basis: Basis | None = None
    ) -> AppliedLimit | None:
        """The limit a site's pollutant is judged against: the permit's where it sets one,
        else the site's standard; None if neither limits the pollutant. A pollutant limited
        on several averaging bases (GB 3095) needs ``basis``. Unknown site: KeyError."""
        found = [
            lim
            for lim in self.limits_for(site_id, pollutant)
            if basis is None or lim.basis == basis
        ]
        if len(found) > 1:
            bases = ", ".join(lim.basis for lim in found)
            raise LookupError(
                f"site '{site_id}': {pollutant} is limited on several bases ({bases}); name one"
            )
        return found[0] if found else None


_MODELS: dict[str, type[BaseModel]] = {
    "grids": Grid,
    "enterprises": Enterprise,
    "sites": Site,
    "policies": PolicyEntry,
    "marks": MarkEntry,
}


def _parse_file(path: Path) -> dict[str, list[tuple[int, _Entry]]]:
    doc = read_yaml(path) or {}
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a mapping with sections {', '.join(SECTIONS)}")
    unknown = set(doc) - set(SECTIONS)
    if unknown:
        raise ConfigError(
            f"{path}: unknown section(s) {sorted(unknown)}; expected {', '.join(SECTIONS)}"
        )
    parsed: dict[str, list[tuple[int, _Entry]]] = {}
    for section, raw_entries in doc.items():
        if not isinstance(raw_entries, list):
            raise ConfigError(f"{path}: section '{section}' must be a list of entries")
        entries = []
        for i, raw in enumerate(raw_entries):
            label = raw.get("id", f"#{i + 1}") if isinstance(raw, dict) else f"#{i + 1}"
            try:
                entries.append((i, _MODELS[section].model_validate(raw)))
            except ValidationError as exc:
                problems = "; ".join(field_problem(e) for e in exc.errors())
                raise ConfigError(f"{path}: {section} entry '{label}': {problems}") from None
        parsed[section] = entries
    return parsed


def _index(section: str, items: Iterable[tuple[Path, _Entry]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    seen: dict[str, Path] = {}
    for path, entry in items:
        key = entry.id  # type: ignore[attr-defined]
        if key in out:
            raise ConfigError(
                f"{path}: {section} entry '{key}': duplicate id (first defined in {seen[key]})"
            )
        out[key], seen[key] = entry, path
    return out


def _check_officers(grids: dict[str, Grid], where: dict[str, Path]) -> None:
    # A supervisor may oversee several grids; listed in each, they must be the same person.
    first: dict[str, tuple[str, Officer]] = {}
    for grid in grids.values():
        here: set[str] = set()
        for i, officer in enumerate(grid.officers):
            at = f"{where[grid.id]}: grids entry '{grid.id}': field 'officers.{i}'"
            if officer.id in here:
                raise ConfigError(f"{at}: officer '{officer.id}' is listed twice in this grid")
            here.add(officer.id)
            other_grid, other = first.setdefault(officer.id, (grid.id, officer))
            if other != officer:
                raise ConfigError(
                    f"{at}: officer '{officer.id}' is also in grid '{other_grid}' with other "
                    f"details (one person: describe them identically in each grid)"
                )


def _check_standard(site: Site, standards: Mapping[str, Standard], fail: Fail) -> Standard | None:
    if site.standard is None:
        if site.kind is SiteKind.OUTFALL:
            fail("standard", "an outfall needs one, e.g. {id: GB 8978-1996, class: first_grade}")
        if site.kind is SiteKind.STACK:
            fail(
                "standard",
                "a stack needs a flue-gas one, e.g. {id: GB 13223-2011, class: coal_new}",
            )
        return None
    ref = site.standard
    std = standards.get(ref.id)
    if std is None:
        fail("standard.id", f"no standard '{ref.id}' (known: {', '.join(sorted(standards))})")
    if ref.class_ not in std.classes:
        fail(
            "standard.class",
            f"{ref.id} has no class '{ref.class_}' (known: {', '.join(std.classes)})",
        )
    if std.medium is not _MEDIUM_OF[site.kind]:
        fail(
            "standard.id",
            f"{ref.id} is a standard for {std.medium}; {_a(site.kind)} needs one for "
            f"{_MEDIUM_OF[site.kind]}",
        )
    return std


def _a(kind: str) -> str:
    """A kind of site or device with its article: "an outfall", "a stack", "a flue_gas_monitor"."""
    return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}"


def _check_o2_reference(site: Site, fail: Fail) -> None:
    if site.o2_reference is None:
        return
    if site.kind is not SiteKind.STACK:
        fail("o2_reference", f"only a stack has a reference oxygen, not {_a(site.kind)}")
    if not 0 <= site.o2_reference < O2_AIR:
        fail(
            "o2_reference",
            f"{site.o2_reference:g} % is not a reference oxygen: expected 0 ≤ O2 < {O2_AIR:g} % "
            f"(e.g. 6 for a coal-fired boiler)",
        )


def _check_permit(site: Site, std: Standard | None, fail: Fail) -> None:
    if site.permit is None:
        return
    if site.kind not in (SiteKind.OUTFALL, SiteKind.STACK):
        fail(
            "permit", f"a discharge permit belongs to an outfall or a stack, not to {_a(site.kind)}"
        )
    if std is None or site.standard is None:
        return  # an outfall or a stack without a standard has already failed
    for code, spec in site.permit.limits.items():
        at = f"permit.limits.{code}"
        found = std.limits(site.standard.class_, code)
        if not found:
            fail(at, f"{std.label(site.standard.class_)} sets no limit for {code} to compare with")
        if len(found) > 1:
            fail(at, f"{std.id} limits {code} on several bases; a permit limit cannot say which")
        base = found[0]
        stricter = spec.bound.at_least_as_strict_as(base.bound)
        if stricter and spec.low_temp_max is not None:
            assert isinstance(base.bound, Maximum)  # only a max is stricter than a max
            cold = base.low_temp_max if base.low_temp_max is not None else base.bound.value
            stricter = spec.low_temp_max <= cold
        if not stricter:
            fail(
                at,
                f"permit limit {_shown(spec.bound, spec.low_temp_max)} {base.unit} is looser "
                f"than {base.source}'s {_shown(base.bound, base.low_temp_max)} {base.unit}: "
                f"a permit may only be stricter",
            )


def _shown(bound: Bound, low_temp_max: float | None) -> str:
    return f"{bound}" + (f" ({low_temp_max:g} when cold)" if low_temp_max is not None else "")


def _check_devices(site: Site, cards: dict[str, str], fail: Fail) -> None:
    for i, device in enumerate(site.devices):
        if device.model not in _MODELS_AT[site.kind]:
            fail(f"devices.{i}.model", f"{_a(device.model)} is not installed at {_a(site.kind)}")
        if device.model is DeviceModel.FLUE_GAS_MONITOR:
            _check_flue_gas_codes(device, f"devices.{i}.pollutants", fail)
        metered = device.model is DeviceModel.DISCHARGE_METER
        if metered and device.quota is None:
            fail(f"devices.{i}.quota", "a discharge_meter needs its quota (permitted quantities)")
        if not metered and device.quota is not None:
            fail(f"devices.{i}.quota", "only a discharge_meter has a quota")
        if device.quota is None:
            continue
        for code in device.quota.annual:
            if code not in device.pollutants:
                fail(
                    f"devices.{i}.quota.annual.{code}",
                    f"the meter does not measure {code} (its pollutants: "
                    f"{', '.join(device.pollutants)})",
                )
        card = device.quota.card
        if card in cards:
            fail(f"devices.{i}.quota.card", f"card '{card}' is already in meter '{cards[card]}'")
        cards[card] = device.id


def _check_flue_gas_codes(device: Device, at: str, fail: Fail) -> None:
    other = [code for code in device.pollutants if code not in FLUE_GAS_CODES]
    if other:
        known = ", ".join(sorted(FLUE_GAS_CODES))
        fail(at, f"{', '.join(other)}: not measured by a flue_gas_monitor (known: {known})")
    if O2 not in device.pollutants:
        fail(at, f"a flue_gas_monitor measures O2 ({O2}): its concentrations are corrected with it")


def copy_with_policies(source: Path, folder: Path, policies: str) -> Path:
    """A copy of the catalogue in ``source`` with other escalation policies (``policies``, the
    text of a policies.yaml): for a drill or a bench whose cases must move within seconds."""
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(source, folder)
    (folder / "policies.yaml").write_text(policies, encoding="utf-8")
    return folder


def load_catalogue(folder: Path, standards: Mapping[str, Standard] | None = None) -> Catalogue:
    """Load and check a catalogue folder, against the package's standards unless given."""
    folder = Path(folder)
    files = sorted(folder.glob("*.yaml"))
    if not files:
        raise ConfigError(f"{folder}: no catalogue files (*.yaml) found; set ECOWATCH_CATALOGUE")
    standards = package_standards() if standards is None else standards
    gathered: dict[str, list[tuple[Path, _Entry]]] = {s: [] for s in SECTIONS}
    for path in files:
        for section, entries in _parse_file(path).items():
            gathered[section].extend((path, e) for _, e in entries)

    grids = _index("grids", gathered["grids"])
    enterprises = _index("enterprises", gathered["enterprises"])
    sites = _index("sites", gathered["sites"])
    _check_officers(grids, {g.id: p for p, g in gathered["grids"]})  # type: ignore[attr-defined]

    # Cross-references, each named by the file that holds the reference.
    where = {s.id: p for p, s in gathered["sites"]}  # type: ignore[attr-defined]
    device_sites: dict[str, str] = {}
    cards: dict[str, str] = {}
    for site in sites.values():
        path = where[site.id]

        def fail(field: str, problem: str, path: Path = path, site: Site = site) -> NoReturn:
            raise ConfigError(f"{path}: sites entry '{site.id}': field '{field}': {problem}")

        if site.grid not in grids:
            fail("grid", f"no grid '{site.grid}' (known: {', '.join(sorted(grids)) or 'none'})")
        if grids[site.grid].district != site.district:
            fail(
                "district",
                f"'{site.district}', but its grid '{site.grid}' is in "
                f"'{grids[site.grid].district}'",
            )
        if site.kind in (SiteKind.OUTFALL, SiteKind.STACK) and site.enterprise is None:
            fail("enterprise", f"{_a(site.kind)} needs one")
        if site.enterprise is not None and site.enterprise not in enterprises:
            fail("enterprise", f"no enterprise '{site.enterprise}'")
        if site.control is not None and site.kind is not SiteKind.AIR_STATION:
            fail("control", "only air stations have a control level")
        for device in site.devices:
            if device.id in device_sites:
                fail(
                    "devices",
                    f"device '{device.id}' is already installed at site "
                    f"'{device_sites[device.id]}'",
                )
            device_sites[device.id] = site.id
        _check_devices(site, cards, fail)
        _check_o2_reference(site, fail)
        _check_permit(site, _check_standard(site, standards, fail), fail)
    policies = tuple(entry for _, entry in gathered["policies"])  # type: ignore[misc]
    marks = mark_policy(entry for _, entry in gathered["marks"])  # type: ignore[misc]
    return Catalogue(
        grids=grids,
        enterprises=enterprises,
        sites=sites,
        standards=standards,
        policies=policies,
        marks=marks,
    )
