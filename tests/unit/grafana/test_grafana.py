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


def test_there_are_the_five_dashboards():
    titles = {path.name: load(path)["title"] for path in DASHBOARDS}
    assert set(titles) == {
        "site-limits.json",
        "stacks.json",
        "aqi.json",
        "cases.json",
        "pipeline.json",
    }
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


def test_a_stacks_limit_lines_are_its_hourly_limits_for_corrected_means(demo_city):
    # The demo city's stacks (config/catalogue/stacks.yaml), whose dashboard is shipped.
    rows = generator().stack_limit_rows(demo_city)
    by = {(r["site"], r["pollutant"], r["bound"]): r for r in rows}
    # Ultra-low emission: the permit's SO2 35, not GB 13223's 200 for an existing coal unit.
    assert by["S-STK-001", "a21026", "max"]["limit"] == 35.0
    assert by["S-STK-001", "a21026", "max"]["source"].startswith("permit ")
    assert by["S-STK-001", "a34013", "max"]["limit"] == 10.0
    # GB 18485: the 1-hour limit (100), which the corrected hourly mean is judged against,
    # not the 24-hour one (80).
    assert by["S-STK-003", "a21026", "max"]["limit"] == 100.0
    # The state of the gas is not limited.
    assert not {k for k in by if k[1] in {"a19001", "a00000"}}
    # A stack's raw readings are not drawn against its limits on the site-limits dashboard.
    assert not [r for r in generator().limit_rows(demo_city) if r["site"].startswith("S-STK")]


def test_the_stacks_dashboard_draws_corrected_means_against_the_limits():
    dashboard = load(GRAFANA / "dashboards" / "stacks.json")
    (site,) = dashboard["templating"]["list"]
    assert 'r.model == "flue_gas_monitor"' in site["query"]
    by_title = {p["title"]: p for p in panels(dashboard)}
    for p in by_title.values():
        assert p["targets"] and p["targets"][0]["query"], p["title"]
        assert p["type"] == "table" or p["fieldConfig"]["defaults"].get("unit"), p["title"]
    ids = [p["id"] for p in panels(dashboard)]
    assert len(set(ids)) == len(ids)
    so2 = by_title["SO2 小时折算浓度与限值"]["targets"][0]["query"]
    assert '_field == "corrected"' in so2 and 'r.period == "hour"' in so2
    assert '{site: "S-STK-001", pollutant: "a21026", bound: "max", limit: 35.0' in so2
    assert "a34013" not in so2  # each panel carries its own pollutant's limits only
    # The measured means are beside the corrected ones, never against a limit.
    measured = by_title["SO2 小时实测浓度"]["targets"][0]["query"]
    assert '_field == "mean"' in measured and "limit" not in measured
    reported = by_title["SO2 设备折算值与平台折算值（分钟）"]["targets"][0]["query"]
    assert '_field == "zs"' in reported and 'r.period == "minute"' in reported
    for title, field in [
        ("烟气含氧量与基准氧含量", "o2_reference"),
        ("小时排放量", "emission_kg"),
        ("日排放量（近 30 日）", "emission_kg"),
    ]:
        assert f'"{field}"' in by_title[title]["targets"][0]["query"], title
    assert 'r.pollutant == "qsn"' in by_title["标干流量"]["targets"][0]["query"]
    assert "finding" in by_title["报警记录（按折算浓度判定）"]["targets"][0]["query"]


def test_the_site_limits_dashboard_lists_no_stack():
    dashboard = load(GRAFANA / "dashboards" / "site-limits.json")
    site = next(v for v in dashboard["templating"]["list"] if v["name"] == "site")
    assert 'r.model != "flue_gas_monitor"' in site["query"]
    assert "S-STK" not in json.dumps(dashboard)
    assert [link["url"] for link in dashboard["links"]] == ["/d/ecowatch-stacks"]
