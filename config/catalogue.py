"""The catalogue: enterprises, sites, devices and grids, as validated YAML.

A catalogue is a folder of ``*.yaml`` files; each file may hold any of the top-level sections
(``grids``, ``enterprises``, ``sites``) and the folder's files are merged. Every mistake is
reported with the file, the entry and the field, and what was expected, before anything runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ecowatch.errors import ConfigError
from ecowatch.schema import Identifier, PollutantCode

SECTIONS = ("grids", "enterprises", "sites")


class SiteKind(StrEnum):
    OUTFALL = "outfall"  # a wastewater outfall (排污口)
    AIR_STATION = "air_station"  # an ambient air quality station (空气质量监测站)


class DeviceModel(StrEnum):
    OUTFALL_MONITOR = "outfall_monitor"  # wastewater online monitoring (在线监测)
    AIR_STATION = "air_station"  # air quality analysers of a station
    DISCHARGE_METER = "discharge_meter"  # card-swipe discharge meter (刷卡排污)


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Officer(_Entry):
    id: Identifier
    name: str
    role: str = "officer"  # officer | supervisor


class Grid(_Entry):
    """An enforcement grid (网格): a district's patch with its officers."""

    id: Identifier
    name: str
    district: str
    officers: list[Officer] = Field(default_factory=list)


class Enterprise(_Entry):
    id: Identifier
    name: str
    industry: str = ""


class Device(_Entry):
    """A monitor. Its id is its HJ 212 MN and its MQTT user name."""

    id: Identifier
    model: DeviceModel
    pollutants: Annotated[list[PollutantCode], Field(min_length=1)]


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

    @cached_property
    def devices(self) -> dict[str, DeviceEntry]:
        return {d.id: DeviceEntry(d, s) for s in self.sites.values() for d in s.devices}

    def device(self, device_id: str) -> DeviceEntry | None:
        return self.devices.get(device_id)


_MODELS: dict[str, type[_Entry]] = {"grids": Grid, "enterprises": Enterprise, "sites": Site}


def _describe(err: dict[str, Any]) -> str:
    field = ".".join(str(p) for p in err["loc"]) or "(entry)"
    expected = err["msg"]
    if err["type"] == "extra_forbidden":
        expected = "no such field"
    return f"field '{field}': {expected}"


def _parse_file(path: Path) -> dict[str, list[tuple[int, _Entry]]]:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
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
                problems = "; ".join(_describe(e) for e in exc.errors())
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


def load_catalogue(folder: Path) -> Catalogue:
    folder = Path(folder)
    files = sorted(folder.glob("*.yaml"))
    if not files:
        raise ConfigError(f"{folder}: no catalogue files (*.yaml) found; set ECOWATCH_CATALOGUE")
    gathered: dict[str, list[tuple[Path, _Entry]]] = {s: [] for s in SECTIONS}
    for path in files:
        for section, entries in _parse_file(path).items():
            gathered[section].extend((path, e) for _, e in entries)

    grids = _index("grids", gathered["grids"])
    enterprises = _index("enterprises", gathered["enterprises"])
    sites = _index("sites", gathered["sites"])

    # Cross-references, each named by the file that holds the reference.
    where = {s.id: p for p, s in gathered["sites"]}  # type: ignore[attr-defined]
    device_sites: dict[str, str] = {}
    for site in sites.values():
        path = where[site.id]
        if site.grid not in grids:
            raise ConfigError(
                f"{path}: sites entry '{site.id}': field 'grid': no grid '{site.grid}' "
                f"(known: {', '.join(sorted(grids)) or 'none'})"
            )
        if site.kind is SiteKind.OUTFALL and site.enterprise is None:
            raise ConfigError(
                f"{path}: sites entry '{site.id}': field 'enterprise': an outfall needs one"
            )
        if site.enterprise is not None and site.enterprise not in enterprises:
            raise ConfigError(
                f"{path}: sites entry '{site.id}': field 'enterprise': "
                f"no enterprise '{site.enterprise}'"
            )
        for device in site.devices:
            if device.id in device_sites:
                raise ConfigError(
                    f"{path}: sites entry '{site.id}': field 'devices': device '{device.id}' "
                    f"is already installed at site '{device_sites[device.id]}'"
                )
            device_sites[device.id] = site.id
    return Catalogue(grids=grids, enterprises=enterprises, sites=sites)
