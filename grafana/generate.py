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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ecowatch.config.catalogue import Catalogue, SiteKind, load_catalogue
from ecowatch.config.settings import DEMO_CATALOGUE
from ecowatch.config.standards import AppliedLimit, Basis, Maximum, Minimum, Range
from ecowatch.pollutants import NOX, PM, SO2, name_of
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
STACKS_UID = "ecowatch-stacks"
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
    """One row per bound of every (site, pollutant) the catalogue limits, stacks left out (a
    stack's limits hold for its corrected concentrations, not its readings: see
    :func:`stack_limit_rows`): a range (pH 6–9) is two rows, its min and its max."""
    return _limit_rows(catalogue, [s for s in catalogue.sites if not _is_stack(catalogue, s)])


def stack_limit_rows(catalogue: Catalogue) -> list[dict[str, Any]]:
    """The stacks' rows: each concentration's hourly limit (the permit's where it sets one),
    which the corrected hourly mean is judged against."""
    return _limit_rows(catalogue, [s for s in catalogue.sites if _is_stack(catalogue, s)])


def _is_stack(catalogue: Catalogue, site: str) -> bool:
    return catalogue.sites[site].kind is SiteKind.STACK


def _limit_rows(catalogue: Catalogue, sites: list[str]) -> list[dict[str, Any]]:
    rows = []
    for site in sorted(sites):
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
    uid: str,
    title: str,
    panels: list[dict[str, Any]],
    variables: list[dict[str, Any]] = (),
    *,
    since: str = "now-6h",
    links: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    board: dict[str, Any] = {
        "uid": uid,
        "title": title,
        "tags": ["ecowatch"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "10s",
        "time": {"from": since, "to": "now"},
        "templating": {"list": list(variables)},
        "annotations": {"list": []},
        "panels": panels,
    }
    if links:  # only where there are: the other dashboards' files stay as they were
        board["links"] = list(links)
    return board


def dashboard_link(title: str, uid: str) -> dict[str, Any]:
    """A link in a dashboard's header to another one, keeping the time range."""
    return {
        "title": title,
        "type": "link",
        "url": f"/d/{uid}",
        "icon": "dashboard",
        "keepTime": True,
        "includeVars": False,
        "targetBlank": False,
        "asDropdown": False,
        "tags": [],
        "tooltip": "",
    }


def laid_out(rows: list[list[dict[str, Any]]], height: int = 9) -> list[dict[str, Any]]:
    """Panels row by row, each row's panels sharing its width: ids and positions in order
    (``panel``'s own index places panels of one width only)."""
    out: list[dict[str, Any]] = []
    for y, row in enumerate(rows):
        width = 24 // len(row)
        for x, p in enumerate(row):
            grid = {"x": x * width, "y": y * height, "w": width, "h": height}
            out.append({**p, "id": len(out) + 1, "gridPos": grid})
    return out


# -- the five dashboards -------------------------------------------------------------------


def site_limits(catalogue: Catalogue) -> dict[str, Any]:
    limits = limit_rows(catalogue)
    series = flux.readings_against_limits(limits)
    latest = flux.latest_against_limits(limits)
    findings = flux.site_findings()
    means = flux.site_means()
    # A stack's limits hold for its corrected concentrations: its raw readings are not drawn
    # against them here (not listed, no limit rows), but on the stacks dashboard.
    site_var = flux.sites_but_stacks_variable()
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
                    "1-hour limit; wastewater: the daily limit). From the catalogue. Stacks "
                    "(烟气排放口) are judged on corrected concentrations: see the stacks dashboard."
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
        links=[dashboard_link("烟气排放口：折算浓度与限值 (stacks)", STACKS_UID)],
    )


# A stack's concentrations in the order operators read them; others limited at a stack after.
STACK_ORDER = (PM, SO2, NOX)
MG_M3 = "conmgm3"  # Grafana's mg/m³
LIMIT_LINE = {  # a limit is drawn red and dashed, apart from the values
    "matcher": {"id": "byRegexp", "options": ".*限值.*"},
    "properties": [
        {"id": "color", "value": {"mode": "fixed", "fixedColor": "red"}},
        {"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}},
    ],
}


def stack_pollutants(catalogue: Catalogue) -> list[str]:
    """The concentrations that have a limit at some stack, in :data:`STACK_ORDER` first."""
    limited = {r["pollutant"] for r in stack_limit_rows(catalogue)}
    return [p for p in STACK_ORDER if p in limited] + sorted(limited - set(STACK_ORDER))


def stack_names(catalogue: Catalogue) -> dict[str, str]:
    """Code → Chinese name of every code a stack's windows carry (NOx too: the platform adds
    it up where a CEMS reports NO and NO2 apart)."""
    codes = {
        p
        for s in catalogue.sites.values()
        if s.kind is SiteKind.STACK
        for d in s.devices
        for p in d.pollutants
    }
    return {code: name_of(code) for code in sorted(codes | {NOX})}


def stacks(catalogue: Catalogue) -> dict[str, Any]:
    """A stack's CEMS as the platform judges it: corrected (折算) hourly means against the
    hourly limit, the measured means beside them, the O2 they were corrected with, the
    device's own corrected values against the platform's, emissions, flow and findings."""
    limits = stack_limit_rows(catalogue)
    names = stack_names(catalogue)
    rows = []
    for code in stack_pollutants(catalogue):
        name = name_of(code)
        corrected = panel(
            f"{name} 小时折算浓度与限值",
            "timeseries",
            flux.stack_corrected_against_limits(
                code, [r for r in limits if r["pollutant"] == code]
            ),
            index=0,
            unit=MG_M3,
            description=(
                "折算到基准氧含量的小时均值（判定所用的值），每点标在该小时的开始；红色虚线为"
                "小时限值（排污许可证优先，否则排放标准），来自目录。Corrected hourly means, "
                "the values judged, against the hourly limit."
            ),
        )
        corrected["fieldConfig"]["overrides"] = [LIMIT_LINE]
        rows.append(
            [
                corrected,
                panel(
                    f"{name} 小时实测浓度",
                    "timeseries",
                    flux.stack_measured_hours(code),
                    index=0,
                    unit=MG_M3,
                    description=(
                        "未折算的实测小时均值：对照用，不与限值比较。Measured hourly means, "
                        "not corrected: never compared with the limit."
                    ),
                ),
                panel(
                    f"{name} 设备折算值与平台折算值（分钟）",
                    "timeseries",
                    flux.stack_reported_against_corrected(code),
                    index=0,
                    unit=MG_M3,
                    description=(
                        "CEMS 上报的折算值 ZsRtd（分钟均值）与平台由分钟均值和含氧量算出的折算"
                        "浓度。两者分开：设备的基准氧或计算有误。The CEMS's own corrected "
                        "values against the platform's."
                    ),
                ),
            ]
        )
    hourly = panel(
        "小时排放量",
        "timeseries",
        flux.stack_hourly_emissions(names),
        index=0,
        unit="masskg",
        description=(
            "实测（未折算）小时均值 × 标干流量 × 1 小时。Hourly emission from the measured "
            "mean and the standard dry flow."
        ),
    )
    hourly["fieldConfig"]["defaults"]["custom"] = {"drawStyle": "bars", "fillOpacity": 60}
    rows += [
        [
            panel(
                "烟气含氧量与基准氧含量",
                "timeseries",
                flux.stack_oxygen(),
                index=0,
                unit="percent",
                description=(
                    "每小时折算所用的含氧量均值，与折算到的基准氧含量。The hour's mean O2 "
                    "and the reference O2 its concentrations are corrected to."
                ),
            ),
            panel(
                "标干流量",
                "timeseries",
                flux.stack_standard_dry_flow(),
                index=0,
                unit="suffix:m³/h",
                description="标准状态干烟气流量（分钟、小时均值）。Standard dry flow.",
            ),
        ],
        [
            hourly,
            panel(
                "日排放量（近 30 日）",
                "table",
                flux.stack_daily_emissions(names),
                index=0,
                unit="masskg",
                description=(
                    "已结束各日的排放量，为其各小时之和；当日在次日零点后出现。Closed days' "
                    "emissions, the sum of their hours."
                ),
            ),
        ],
        [
            panel(
                "报警记录（按折算浓度判定）",
                "table",
                flux.site_findings(),
                index=0,
                description="该排放口的报警，值为折算浓度。The stack's findings, newest first.",
            )
        ],
    ]
    return dashboard(
        STACKS_UID,
        "ecowatch · 烟气排放口：折算浓度与限值 (stacks)",
        laid_out(rows),
        [query_variable("site", "排放口 Stack", flux.stacks_variable())],
        since="now-24h",
        links=[dashboard_link("a site's readings against its limits", "ecowatch-site-limits")],
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
    "stacks.json": stacks,
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
