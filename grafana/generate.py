"""Writes grafana/dashboards/*.json: the dashboards docker-compose's Grafana provisions.

Generated rather than hand-edited because two things in them come from the catalogue: the limit
that applies to each site's pollutant (the permit's or the standard's, with its source) and the
grid of each site. InfluxDB holds neither (a finding point carries no limit, a case event no
grid), so the Flux queries carry them as literals. tests/unit/grafana/test_grafana.py fails when the
committed files differ from what this writes, so a catalogue change cannot leave them stale.

    .venv/bin/python grafana/generate.py            # rewrite the files
    .venv/bin/python grafana/generate.py --check    # exit 1 if they are stale

Every query reads ``from(bucket: v.defaultBucket)``: the bucket the provisioned data source
names (grafana/provisioning/datasources/influxdb.yaml), never a name written here.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from ecowatch.config.catalogue import Catalogue, SiteKind, load_catalogue
from ecowatch.config.settings import DEMO_CATALOGUE
from ecowatch.config.standards import AppliedLimit, Basis, Maximum, Minimum, Range
from ecowatch.measurements import AGGREGATE, AQI, CASE_EVENT, DELIVERY, FINDING, READING

HERE = Path(__file__).resolve().parent
DASHBOARDS = HERE / "dashboards"
DATASOURCE = {"type": "influxdb", "uid": "ecowatch-influxdb"}
RANGE = "range(start: v.timeRangeStart, stop: v.timeRangeStop)"
# Open cases are those whose latest event says so: look back further than the time picker, so
# a case opened last week still counts today.
CASES_LOOKBACK = "range(start: -30d, stop: v.timeRangeStop)"
# HJ 633 Appendix A: the AQI categories' colours (优, 良, 轻度, 中度, 重度, 严重污染).
AQI_STEPS = [
    (None, "#00E400"),
    (51, "#FFFF00"),
    (101, "#FF7E00"),
    (151, "#FF0000"),
    (201, "#99004C"),
    (301, "#7E0023"),
]
CASE_KINDS = ["detected", "reminded", "escalated", "acknowledged", "closed"]
OPEN = ["reminded", "escalated", "acknowledged"]


# -- the catalogue as Flux literals --------------------------------------------------------


def flux_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"'


def realtime_limit(catalogue: Catalogue, site: str, pollutant: str) -> AppliedLimit | None:
    """The limit a single reading is judged against, as streams/judging/rules/limits.py looks
    it up: the 1-hour limit where the standard sets one (GB 3095), else, for wastewater, the
    daily limit (the wastewater standards set no other). An air pollutant with only a 24 h
    limit has none."""
    hourly = catalogue.limit_for(site, pollutant, Basis.HOURLY)
    if hourly is not None or catalogue.sites[site].kind is SiteKind.AIR_STATION:
        return hourly
    return catalogue.limit_for(site, pollutant, Basis.DAILY)


def limit_rows(catalogue: Catalogue) -> list[dict[str, Any]]:
    """One row per bound of every (site, pollutant) the catalogue limits: a range (pH 6–9)
    is two rows, its min and its max."""
    rows = []
    for site in sorted(catalogue.sites):
        pollutants = sorted({p for d in catalogue.sites[site].devices for p in d.pollutants})
        for pollutant in pollutants:
            applied = realtime_limit(catalogue, site, pollutant)
            if applied is None:
                continue
            bound = applied.bound
            bounds: list[tuple[str, float]] = []
            if isinstance(bound, Maximum):
                bounds = [("max", bound.value)]
            elif isinstance(bound, Minimum):
                bounds = [("min", bound.value)]
            elif isinstance(bound, Range):
                bounds = [("min", bound.low), ("max", bound.high)]
            for name, value in bounds:
                rows.append(
                    {
                        "site": site,
                        "pollutant": pollutant,
                        "bound": name,
                        "limit": float(value),
                        "unit": applied.unit,
                        "source": applied.source,
                    }
                )
    return rows


def flux_limits(catalogue: Catalogue) -> str:
    rows = []
    for r in limit_rows(catalogue):
        rows.append(
            f"  {{site: {flux_string(r['site'])}, pollutant: {flux_string(r['pollutant'])}, "
            f"bound: {flux_string(r['bound'])}, limit: {r['limit']!r}, "
            f"unit: {flux_string(r['unit'])}, source: {flux_string(r['source'])}}},"
        )
    return "limits = array.from(rows: [\n" + "\n".join(rows) + "\n])"


def flux_grids(catalogue: Catalogue) -> str:
    pairs = ",\n".join(
        f"  {{key: {flux_string(s.id)}, value: {flux_string(s.grid)}}}"
        for s in sorted(catalogue.sites.values(), key=lambda s: s.id)
    )
    return f"grids = dict.fromList(pairs: [\n{pairs}\n])"


# -- panels --------------------------------------------------------------------------------


def _grid_pos(index: int, width: int = 12, height: int = 9) -> dict[str, int]:
    per_row = 24 // width
    return {
        "x": (index % per_row) * width,
        "y": (index // per_row) * height,
        "w": width,
        "h": height,
    }


def panel(
    title: str,
    kind: str,
    flux: str,
    *,
    index: int,
    width: int = 12,
    unit: str | None = None,
    thresholds: list[tuple[float | None, str]] | None = None,
    description: str = "",
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    defaults: dict[str, Any] = {}
    if unit:
        defaults["unit"] = unit
    if thresholds:
        defaults["thresholds"] = {
            "mode": "absolute",
            "steps": [{"color": color, "value": value} for value, color in thresholds],
        }
        defaults["color"] = {"mode": "thresholds"}
    return {
        "id": index + 1,
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": _grid_pos(index, width),
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": options or {},
        "targets": [{"refId": "A", "datasource": DATASOURCE, "query": flux.strip()}],
    }


def text_panel(title: str, content: str, *, index: int, width: int = 12) -> dict[str, Any]:
    return {
        "id": index + 1,
        "type": "text",
        "title": title,
        "gridPos": _grid_pos(index, width),
        "options": {"mode": "markdown", "content": content},
    }


def query_variable(name: str, label: str, flux: str) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "query": flux.strip(),
        "definition": flux.strip(),
        "refresh": 2,  # on time-range change: a new site shows up without a reload
        "sort": 1,
        "includeAll": False,
        "multi": False,
        "current": {},
        "options": [],
    }


def dashboard(
    uid: str, title: str, panels: list[dict[str, Any]], variables: list[dict[str, Any]] = ()
) -> dict[str, Any]:
    return {
        "uid": uid,
        "title": title,
        "tags": ["ecowatch"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "10s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": list(variables)},
        "annotations": {"list": []},
        "panels": panels,
    }


# -- the four dashboards -------------------------------------------------------------------


def site_limits(catalogue: Catalogue) -> dict[str, Any]:
    limits = flux_limits(catalogue)
    readings = f"""
from(bucket: v.defaultBucket)
  |> {RANGE}
  |> filter(fn: (r) => r._measurement == "{READING}" and r._field == "value")
  |> filter(fn: (r) => r.site == "${{site}}" and r.pollutant == "${{pollutant}}")"""
    series = f"""
import "array"
{limits}
data = {readings.strip()}
  |> aggregateWindow(every: v.windowPeriod, fn: mean, createEmpty: false)
  |> map(fn: (r) => ({{_time: r._time, _value: r._value, series: "device " + r.device}}))
  |> group(columns: ["series"])
bound = limits
  |> filter(fn: (r) => r.site == "${{site}}" and r.pollutant == "${{pollutant}}")
  |> map(fn: (r) => ({{_value: r.limit, series: r.bound + " limit (" + r.source + ")"}}))
// The limit as a flat line across the chosen time range: its value at both ends.
line = union(tables: [
  bound |> map(fn: (r) => ({{r with _time: v.timeRangeStart}})),
  bound |> map(fn: (r) => ({{r with _time: v.timeRangeStop}})),
]) |> group(columns: ["series"]) |> sort(columns: ["_time"])
union(tables: [data, line])
"""
    latest = f"""
import "array"
{limits}
latest = {readings.strip().replace(' and r.pollutant == "${pollutant}"', "")}
  |> last()
  |> pivot(rowKey: ["_time", "device", "pollutant"],
      columnKey: ["_field"], valueColumn: "_value")
  |> group()
applied = limits |> filter(fn: (r) => r.site == "${{site}}")
join(tables: {{value: latest, limit: applied}}, on: ["pollutant"])
  |> map(fn: (r) => ({{
      time: r._time, device: r.device, pollutant: r.pollutant, value: r.value,
      bound: r.bound, limit: r.limit, unit: r.unit, source: r.source,
      multiple: if r.bound == "max" and r.limit > 0.0 then r.value / r.limit else 0.0,
      complies: if r.bound == "max" then r.value <= r.limit else r.value >= r.limit,
  }}))
  |> sort(columns: ["pollutant", "bound"])
"""
    findings = f"""
from(bucket: v.defaultBucket)
  |> {RANGE}
  |> filter(fn: (r) => r._measurement == "{FINDING}" and r.site == "${{site}}")
  |> pivot(rowKey: ["_time", "rule", "pollutant", "severity"],
      columnKey: ["_field"], valueColumn: "_value")
  |> group()
  |> keep(columns: ["_time", "rule", "pollutant", "severity", "active", "value", "detail"])
  |> sort(columns: ["_time"], desc: true)
  |> limit(n: 200)
"""
    means = f"""
from(bucket: v.defaultBucket)
  |> {RANGE}
  |> filter(fn: (r) => r._measurement == "{AGGREGATE}" and r._field == "mean")
  |> filter(fn: (r) => r.site == "${{site}}" and r.pollutant == "${{pollutant}}")
  |> filter(fn: (r) => r.period == "minute" or r.period == "hour")
  |> map(fn: (r) => ({{_time: r._time, _value: r._value, series: r.period + " mean, " + r.device}}))
  |> group(columns: ["series"])
"""
    site_var = f"""
import "influxdata/influxdb/schema"
schema.tagValues(bucket: v.defaultBucket, tag: "site", start: -30d,
  predicate: (r) => r._measurement == "{READING}")
"""
    pollutant_var = f"""
import "influxdata/influxdb/schema"
schema.tagValues(bucket: v.defaultBucket, tag: "pollutant", start: -30d,
  predicate: (r) => r._measurement == "{READING}" and r.site == "${{site}}")
"""
    return dashboard(
        "ecowatch-site-limits",
        "ecowatch · a site's readings against its limits",
        [
            panel(
                "${pollutant} at ${site}, against the limit that applies",
                "timeseries",
                series,
                index=0,
                width=24,
                description=(
                    "Each device's values (mean per interval) and the limit a single reading is "
                    "judged against: the permit's where it sets one, else the standard's (GB 3095 "
                    "1-hour limit; wastewater: the daily limit). From the catalogue."
                ),
            ),
            panel("Latest values of ${site} against the limits", "table", latest, index=2),
            panel("Findings at ${site}", "table", findings, index=3),
            panel(
                "Minute and hourly means of ${pollutant} at ${site}", "timeseries", means, index=4
            ),
        ],
        [
            query_variable("site", "Site", site_var),
            query_variable("pollutant", "Pollutant", pollutant_var),
        ],
    )


def air_quality(catalogue: Catalogue) -> dict[str, Any]:
    aqi = f"""
from(bucket: v.defaultBucket)
  |> {RANGE}
  |> filter(fn: (r) => r._measurement == "{AQI}" and r._field == "aqi")"""
    over_time = f"""
{aqi.strip()}
  |> aggregateWindow(every: v.windowPeriod, fn: max, createEmpty: false)
  |> map(fn: (r) => ({{_time: r._time, _value: r._value, site: r.site}}))
  |> group(columns: ["site"])
"""
    latest = f"""
{aqi.strip()}
  |> last()
  |> map(fn: (r) => ({{_time: r._time, _value: r._value, site: r.site}}))
  |> group(columns: ["site"])
"""
    table = f"""
from(bucket: v.defaultBucket)
  |> {RANGE}
  |> filter(fn: (r) => r._measurement == "{AQI}")
  |> filter(fn: (r) => r._field == "aqi" or r._field == "category" or r._field == "primary")
  |> last()
  |> pivot(rowKey: ["_time", "site", "device", "standard"],
      columnKey: ["_field"], valueColumn: "_value")
  |> group()
  |> keep(columns: ["_time", "site", "standard", "aqi", "category", "primary"])
  |> sort(columns: ["aqi"], desc: true)
"""
    iaqi = f"""
from(bucket: v.defaultBucket)
  |> {RANGE}
  |> filter(fn: (r) => r._measurement == "{AQI}" and r._field =~ /^iaqi_/)
  |> group(columns: ["_field"])
  |> aggregateWindow(every: v.windowPeriod, fn: max, createEmpty: false)
"""
    return dashboard(
        "ecowatch-aqi",
        "ecowatch · air quality (HJ 633 AQI)",
        [
            panel(
                "Real-time AQI now, by station",
                "stat",
                latest,
                index=0,
                width=24,
                thresholds=AQI_STEPS,
                options={"colorMode": "background", "textMode": "value_and_name"},
            ),
            panel(
                "Real-time AQI by station",
                "timeseries",
                over_time,
                index=2,
                thresholds=AQI_STEPS,
            ),
            panel("Latest AQI, category and primary pollutant", "table", table, index=3),
            panel("Highest IAQI of each pollutant across stations", "timeseries", iaqi, index=4),
        ],
    )


def cases(catalogue: Catalogue) -> dict[str, Any]:
    grids = flux_grids(catalogue)
    kinds = " or ".join(f'r.kind == "{k}"' for k in CASE_KINDS)
    events = f"""
from(bucket: v.defaultBucket)
  |> {RANGE}
  |> filter(fn: (r) => r._measurement == "{CASE_EVENT}" and r._field == "case")"""
    over_time = f"""
{events.strip()}
  |> filter(fn: (r) => {kinds})
  |> group(columns: ["kind"])
  |> aggregateWindow(every: v.windowPeriod, fn: count, createEmpty: false)
"""
    per_grid = f"""
import "dict"
{grids}
{events.strip()}
  |> filter(fn: (r) => {kinds})
  |> map(fn: (r) => ({{r with grid: dict.get(dict: grids, key: r.site, default: "(no grid)")}}))
  |> group(columns: ["grid", "kind"])
  |> count()
  |> group()
  |> pivot(rowKey: ["grid"], columnKey: ["kind"], valueColumn: "_value")
  |> sort(columns: ["grid"])
"""
    is_open = " or ".join(f'r.status == "{s}"' for s in OPEN)
    open_cases = f"""
import "dict"
{grids}
from(bucket: v.defaultBucket)
  |> {CASES_LOOKBACK}
  |> filter(fn: (r) => r._measurement == "{CASE_EVENT}" and r._field == "case")
  // A case's status is that of its latest event.
  |> group(columns: ["_value"])
  |> sort(columns: ["_time"])
  |> last()
  |> filter(fn: (r) => {is_open})
  |> map(fn: (r) => ({{grid: dict.get(dict: grids, key: r.site, default: "(no grid)"),
      status: r.status, case: r._value}}))
  |> group(columns: ["grid", "status"])
  |> count(column: "case")
  |> group()
  |> pivot(rowKey: ["grid"], columnKey: ["status"], valueColumn: "case")
  |> sort(columns: ["grid"])
"""
    trail = f"""
import "dict"
{grids}
from(bucket: v.defaultBucket)
  |> {RANGE}
  |> filter(fn: (r) => r._measurement == "{CASE_EVENT}")
  // Each case is its own series (its case_id tag), so the pivot keeps two cases stepped
  // on one tick apart without case_id in the row key: points written before the tag have
  // no such column, and a pivot whose row key names a missing column fails.
  |> pivot(rowKey: ["_time", "site", "kind", "status"],
      columnKey: ["_field"], valueColumn: "_value")
  |> group()
  |> map(fn: (r) => ({{_time: r._time,
      grid: dict.get(dict: grids, key: r.site, default: "(no grid)"), site: r.site,
      case: r.case, kind: r.kind, status: r.status, actor: r.actor,
      detail: r.detail}}))
  |> sort(columns: ["_time"], desc: true)
  |> limit(n: 200)
"""
    return dashboard(
        "ecowatch-cases",
        "ecowatch · cases (detect – remind – penalize)",
        [
            panel(
                "Case events per interval: detected, reminded (opened), escalated, closed",
                "timeseries",
                over_time,
                index=0,
                width=24,
                options={"legend": {"displayMode": "table", "placement": "right"}},
            ),
            panel("Case events per grid in the time range", "table", per_grid, index=2),
            panel("Open cases per grid and status (last 30 days)", "table", open_cases, index=3),
            panel("Latest case events", "table", trail, index=4, width=24),
        ],
    )


def pipeline(catalogue: Catalogue) -> dict[str, Any]:
    per_second = "float(v: int(v: v.windowPeriod)) / 1000000000.0"
    stored = f"""
from(bucket: v.defaultBucket)
  |> {RANGE}
  |> filter(fn: (r) => r._measurement == "{READING}" and r._field == "value")
  // A reading is one point per pollutant: count one per (device, time).
  |> group(columns: ["device"])
  |> unique(column: "_time")
  |> group(columns: ["model"])
  |> aggregateWindow(every: v.windowPeriod, fn: count, createEmpty: false)
  |> map(fn: (r) => ({{r with _value: float(v: r._value) / ({per_second})}}))
"""
    flagged = f"""
from(bucket: v.defaultBucket)
  |> {RANGE}
  |> filter(fn: (r) => r._measurement == "{READING}" and r._field == "flag" and r._value != "N")
  |> map(fn: (r) => ({{r with flag: r._value, _value: 1}}))
  |> group(columns: ["flag"])
  |> aggregateWindow(every: v.windowPeriod, fn: sum, createEmpty: false)
"""
    findings = f"""
from(bucket: v.defaultBucket)
  |> {RANGE}
  |> filter(fn: (r) => r._measurement == "{FINDING}" and r._field == "active" and r._value == true)
  |> group(columns: ["rule"])
  |> aggregateWindow(every: v.windowPeriod, fn: count, createEmpty: false)
"""
    deliveries = f"""
from(bucket: v.defaultBucket)
  |> {RANGE}
  |> filter(fn: (r) => r._measurement == "{DELIVERY}" and r._field == "attempt")
  |> group(columns: ["status"])
  |> aggregateWindow(every: v.windowPeriod, fn: count, createEmpty: false)
"""
    freshness = f"""
from(bucket: v.defaultBucket)
  |> {RANGE}
  |> filter(fn: (r) => r._measurement == "{READING}" and r._field == "value")
  |> group(columns: ["site"])
  |> last()
  |> map(fn: (r) => ({{site: r.site, last_reading: r._time,
      _value: float(v: int(v: now()) - int(v: r._time)) / 1000000000.0}}))
  |> group()
  |> sort(columns: ["_value"], desc: true)
"""
    dead_letters = (
        "Dead letters are not in InfluxDB: they are kept on the Kafka topic "
        "`ecowatch.readings.dlq` with their reason. Read them with "
        "`ecowatch dead-letters`; the worker's `/health` counts its own (`dead_lettered`)."
    )
    return dashboard(
        "ecowatch-pipeline",
        "ecowatch · the pipeline's health",
        [
            panel("Readings stored per second, by model", "timeseries", stored, index=0),
            panel(
                "Values flagged other than N (maintenance, fault, calibration, …)",
                "timeseries",
                flagged,
                index=1,
            ),
            panel("Findings per interval, by rule", "timeseries", findings, index=2),
            panel("Notification deliveries, by status", "timeseries", deliveries, index=3),
            panel(
                "Seconds since each site's last reading",
                "table",
                freshness,
                index=4,
                unit="s",
                thresholds=[(None, "green"), (300, "orange"), (1800, "red")],
            ),
            text_panel("Dead letters", dead_letters, index=5),
        ],
    )


BUILDERS = {
    "site-limits.json": site_limits,
    "aqi.json": air_quality,
    "cases.json": cases,
    "pipeline.json": pipeline,
}


def render(catalogue: Catalogue) -> dict[str, str]:
    """File name → its JSON text."""
    return {
        name: json.dumps(build(catalogue), ensure_ascii=False, indent=2) + "\n"
        for name, build in BUILDERS.items()
    }


def main(argv: list[str]) -> int:
    files = render(load_catalogue(DEMO_CATALOGUE))
    if "--check" in argv:
        stale = [
            n
            for n, text in files.items()
            if not (DASHBOARDS / n).is_file()
            or (DASHBOARDS / n).read_text(encoding="utf-8") != text
        ]
        for name in stale:
            print(f"grafana/dashboards/{name} is stale: run grafana/generate.py", file=sys.stderr)
        return 1 if stale else 0
    DASHBOARDS.mkdir(exist_ok=True)
    for name, text in files.items():
        (DASHBOARDS / name).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
