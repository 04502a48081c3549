"""Writes grafana/dashboards/*.json: the dashboards docker-compose's Grafana provisions.

Generated rather than hand-edited because two things in them come from the catalogue: the limit
that applies to each site's pollutant (the permit's or the standard's, with its source) and the
grid of each site. InfluxDB holds neither (a finding point carries no limit, a case event no
grid), so the Flux queries carry them as literals. tests/unit/grafana/test_grafana.py fails when the
committed files differ from what this writes, so a catalogue change cannot leave them stale.

    .venv/bin/python grafana/generate.py            # rewrite the files
    .venv/bin/python grafana/generate.py --check    # exit 1 if they are stale

The Flux queries are built in streams/storage/flux.py, with every other query of the platform;
each reads ``from(bucket: v.defaultBucket)``: the bucket the provisioned data source
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
from ecowatch.streams.storage import flux

HERE = Path(__file__).resolve().parent
DASHBOARDS = HERE / "dashboards"
DATASOURCE = {"type": "influxdb", "uid": "ecowatch-influxdb"}
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


# -- the catalogue's limits and grids ---------------------------------------------------------


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


def grids(catalogue: Catalogue) -> dict[str, str]:
    """Site → its grid, by site id."""
    return {s.id: s.grid for s in sorted(catalogue.sites.values(), key=lambda s: s.id)}


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
    query: str,
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
        "targets": [{"refId": "A", "datasource": DATASOURCE, "query": query.strip()}],
    }


def text_panel(title: str, content: str, *, index: int, width: int = 12) -> dict[str, Any]:
    return {
        "id": index + 1,
        "type": "text",
        "title": title,
        "gridPos": _grid_pos(index, width),
        "options": {"mode": "markdown", "content": content},
    }


def query_variable(name: str, label: str, query: str) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DATASOURCE,
        "query": query.strip(),
        "definition": query.strip(),
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
    limits = limit_rows(catalogue)
    series = flux.readings_against_limits(limits)
    latest = flux.latest_against_limits(limits)
    findings = flux.site_findings()
    means = flux.site_means()
    site_var = flux.sites_variable()
    pollutant_var = flux.pollutants_variable()
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
    over_time = flux.aqi_over_time()
    latest = flux.aqi_now()
    table = flux.aqi_table()
    iaqi = flux.iaqi_over_time()
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
    of_site = grids(catalogue)
    over_time = flux.case_events_over_time(CASE_KINDS)
    per_grid = flux.case_events_per_grid(of_site, CASE_KINDS)
    open_cases = flux.open_cases_per_grid(of_site, OPEN)
    trail = flux.case_trail(of_site)
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
    stored = flux.readings_per_second()
    flagged = flux.flagged_values()
    findings = flux.findings_per_rule()
    deliveries = flux.deliveries_per_status()
    freshness = flux.seconds_since_last_reading()
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
