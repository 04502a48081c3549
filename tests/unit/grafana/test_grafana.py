"""The Grafana files are valid and consistent: the provisioned data source is the one every
panel names, every Flux query reads the bucket that data source provides, the dashboards are
what grafana/generate.py makes of the catalogue, and the limits drawn are the ones judged."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from ecowatch.config.catalogue import load_catalogue
from ecowatch.config.settings import DEMO_CATALOGUE

ROOT = Path(__file__).resolve().parents[3]
GRAFANA = ROOT / "grafana"
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "influxdb.yaml"
PROVIDERS = GRAFANA / "provisioning" / "dashboards" / "ecowatch.yaml"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
ENV_REF = re.compile(r"\$\{(?P<name>[A-Z_][A-Z0-9_]*)\}")
GRAFANA_MACROS = {"v.timeRangeStart", "v.timeRangeStop", "v.windowPeriod", "v.defaultBucket"}


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("grafana_generate", GRAFANA / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def datasource() -> dict[str, Any]:
    (source,) = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    return source


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for p in dashboard["panels"]:
        found += panels(p) if p.get("type") == "row" and "panels" in p else [p]
    return found


def queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    out = [
        (f"variable {v['name']}", v["query"])
        for v in dashboard["templating"]["list"]
        if v["type"] == "query"
    ]
    for p in panels(dashboard):
        out += [(p["title"], t["query"]) for t in p.get("targets", [])]
    return out


def test_the_data_source_is_influxdb_in_flux_with_everything_from_the_environment(datasource):
    assert datasource["type"] == "influxdb"
    assert datasource["jsonData"]["version"] == "Flux"
    assert datasource["uid"] == "ecowatch-influxdb"
    # No secret and no address in the file: Grafana fills them from its environment.
    assert datasource["secureJsonData"] == {"token": "${ECOWATCH_INFLUX_TOKEN}"}
    assert datasource["url"] == "${ECOWATCH_INFLUX_URL}"
    assert datasource["jsonData"]["organization"] == "${ECOWATCH_INFLUX_ORG}"
    assert datasource["jsonData"]["defaultBucket"] == "${ECOWATCH_INFLUX_BUCKET}"


def test_the_dashboards_provider_reads_files_only():
    (provider,) = yaml.safe_load(PROVIDERS.read_text())["providers"]
    assert provider["type"] == "file"
    assert provider["allowUiUpdates"] is False
    assert provider["options"]["path"].startswith("/var/lib/grafana/dashboards")


def test_there_are_the_four_dashboards():
    titles = {path.name: load(path)["title"] for path in DASHBOARDS}
    assert set(titles) == {"site-limits.json", "aqi.json", "cases.json", "pipeline.json"}
    uids = [load(path)["uid"] for path in DASHBOARDS]
    assert len(set(uids)) == len(uids)


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_panel_names_the_provisioned_data_source(path, datasource):
    dashboard = load(path)
    for p in panels(dashboard):
        if p["type"] == "text":  # no query: words only
            assert not p.get("targets"), p["title"]
            continue
        assert p["targets"], f"{p['title']}: no query"
        assert p["datasource"]["uid"] == datasource["uid"], p["title"]
        for target in p["targets"]:
            assert target["datasource"]["uid"] == datasource["uid"], p["title"]
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            assert var["datasource"]["uid"] == datasource["uid"], var["name"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_query_reads_the_data_sources_bucket(path):
    dashboard = load(path)
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    for what, flux in queries(dashboard):
        reads = re.findall(r"\b(?:from|schema\.tagValues)\(\s*bucket:\s*([^,)]+)", flux)
        assert reads, f"{what}: reads no bucket"
        assert set(reads) == {"v.defaultBucket"}, f"{what}: reads {reads}"
        # Only Grafana's macros and this dashboard's own variables are left to substitute.
        macros = set(re.findall(r"\bv\.\w+", flux))
        assert macros <= GRAFANA_MACROS, f"{what}: {macros - GRAFANA_MACROS}"
        used = set(re.findall(r"\$\{(\w+)\}", flux))
        assert used <= variables, f"{what}: no variable {used - variables}"


def test_the_dashboards_are_what_the_generator_makes_of_the_catalogue():
    # The shipped dashboards are the demo city's (Grafana's provisioning for `ecowatch demo`).
    rendered = generator().render(load_catalogue(DEMO_CATALOGUE))
    assert sorted(rendered) == [p.name for p in DASHBOARDS]
    for path in DASHBOARDS:
        assert path.read_text(encoding="utf-8") == rendered[path.name], (
            f"{path.name} is stale: run .venv/bin/python grafana/generate.py"
        )


def test_the_limit_lines_are_the_limits_a_reading_is_judged_against(catalogue):
    rows = generator().limit_rows(catalogue)
    by = {(r["site"], r["pollutant"], r["bound"]): r for r in rows}
    # The permit's COD limit, stricter than GB 8978's first grade.
    assert by["S-OUT-001", "w01018", "max"]["limit"] == 80.0
    assert by["S-OUT-001", "w01018", "max"]["source"].startswith("permit ")
    # pH is a range: two lines.
    assert (
        by["S-OUT-001", "w01001", "min"]["limit"],
        by["S-OUT-001", "w01001", "max"]["limit"],
    ) == (
        6.0,
        9.0,
    )
    # An air station: GB 3095's 1-hour SO2 limit; PM2.5 has only a 24 h limit, so no line.
    assert by["S-AIR-001", "a21026", "max"]["limit"] == 500.0
    assert ("S-AIR-001", "a34004", "max") not in by
    # Flow is not limited.
    assert ("S-OUT-001", "w00000", "max") not in by
