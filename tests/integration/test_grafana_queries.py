"""Every Grafana panel's Flux query returns rows from the real InfluxDB, fed through the pipeline.

Readings go in over MQTT, as monitors send them: four hours of an outfall over its COD limit
(a resend of the past, which the ingest contract takes up to a week back; some values flagged M),
half an hour of an air station, and three hours of a stack's CEMS across a midnight in China (so
a day closes and its emission total is stored) whose corrected hourly means are over the limits.
The session's worker stores them, judges them and runs the cases, so InfluxDB holds readings,
AQI, means (a stack's corrected, with its O2 and emissions), findings, case events and
deliveries as in production. Then each query of each dashboard in grafana/dashboards/ runs with
its variables (the stacks dashboard's site: the stack) and Grafana's macros replaced as Grafana
would, and must return rows: an empty panel fails.
"""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from influxdb_client.client.write_api import SYNCHRONOUS

from ecowatch import topics
from ecowatch.config.settings import Settings
from ecowatch.streams.judging.aggregate import day_of
from ecowatch.streams.judging.report import COUNTED
from ecowatch.streams.storage.store import InfluxWriter, influx_client
from tests.integration.conftest import Service, query, wait_for
from tests.integration.test_pipeline import Device

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
# Sites no other test drives: the past-dated exceedance here opens cases nobody else expects.
OUTFALL, OUTFALL_DEVICE = "S-OUT-030", "33082400000030"  # GB 18918 1A, permit COD 40 mg/L
STATION, STATION_DEVICE = "S-AIR-011", "33082400A00011"
# GB 18485-2014 incinerator: hourly limits at 11 % O2 (PM 30, SO2 100, NOx 300, CO 100).
STACK, STACK_DEVICE = "S-STK-003", "33082500G00003"
POLLUTANT = "w01018"
HOURS = 4
STACK_HOURS = 3
# At 15 % O2 a concentration is corrected to 11 % by (21 - 11) / (21 - 15) = 10/6: SO2 90 is
# 150, over its 100, while the measured 90 is under it (why a stack's raw readings are not
# drawn against its limits). PM 24 → 40 (limit 30), NOx 240 → 400 (300), CO 30 → 50 (100).
STACK_O2, STACK_FACTOR = 15.0, 10.0 / 6.0
STACK_VALUES = {"a34013": 24.0, "a21026": 90.0, "a21002": 240.0, "a21005": 30.0}


def outfall_reading(ts: datetime, flag: str) -> bytes:
    return json.dumps(
        {
            "ts": ts.isoformat(),
            "values": {
                "w01018": {"value": 120.0, "flag": flag},  # three times the permit's 40
                "w00000": {"value": 30.0},
                "w21003": {"value": 1.0},
                "w21011": {"value": 0.2},
                "w21001": {"value": 8.0},
                "w01001": {"value": 7.2},
            },
        }
    ).encode()


def station_reading(ts: datetime) -> bytes:
    # PM2.5, PM10, SO2, NO2, O3 in µg/m³; CO in mg/m³: a 良 (moderate) hour.
    values = {"a34004": 80, "a34002": 120, "a21026": 20, "a21004": 40, "a05024": 100, "a21005": 0.8}
    return json.dumps(
        {"ts": ts.isoformat(), "values": {k: {"value": v} for k, v in values.items()}}
    ).encode()


def stack_reading(ts: datetime) -> bytes:
    # The concentrations with the CEMS's own corrected values (zs, its ZsRtd), which agree
    # with the platform's; the gas's state, from which the standard dry flow is worked out.
    values: dict[str, dict[str, float]] = {
        code: {"value": v, "zs": round(v * STACK_FACTOR, 3)} for code, v in STACK_VALUES.items()
    }
    state = {"a19001": STACK_O2, "a00000": 50.0, "a01011": 12.0, "a01012": 140.0}
    values |= {code: {"value": v} for code, v in (state | {"a01013": 0.2, "a01014": 12.0}).items()}
    return json.dumps({"ts": ts.isoformat(), "values": values}).encode()


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for p in dashboard["panels"]:
        found += panels(p) if p.get("type") == "row" and "panels" in p else [p]
    return found


def flux(
    text: str, settings: Settings, start: datetime, stop: datetime, site: str = OUTFALL
) -> str:
    """The query as Grafana sends it: its macros and the dashboard's variables replaced."""
    values = {
        "v.defaultBucket": json.dumps(settings.influx_bucket),
        "v.organization": json.dumps(settings.influx_org),
        "v.timeRangeStart": start.isoformat().replace("+00:00", "Z"),
        "v.timeRangeStop": stop.isoformat().replace("+00:00", "Z"),
        "v.windowPeriod": "1m",
        "${site}": site,
        "${pollutant}": POLLUTANT,
    }
    for macro, value in values.items():
        text = text.replace(macro, value)
    left = re.findall(r"\$\{\w+\}|\bv\.\w+", text)
    assert not left, f"the test does not replace {left}"
    return text


def every_query() -> list[tuple[str, str]]:
    """(what, Flux) for every panel target and query variable of every dashboard."""
    out = []
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        for var in dashboard.get("templating", {}).get("list", []):
            if var.get("type") == "query":
                out.append((f"{path.name}: variable {var['name']}", var["query"]))
        for p in panels(dashboard):
            for target in p.get("targets", []):
                out.append((f"{path.name}: {p['title']} ({target['refId']})", target["query"]))
    return out


def test_every_dashboard_query_returns_rows(
    settings: Settings, device_passwords: dict[str, str], worker: Service, bridge: Service
) -> None:
    queries = every_query()
    assert len(DASHBOARDS) == 5 and len(queries) >= 34, [w for w, _ in queries]

    now = datetime.now(UTC).replace(microsecond=0)
    first = now - timedelta(hours=HOURS)
    # The stack's hours: two before the latest midnight in China at least 75 minutes ago and
    # one after it, closed by a reading past it (the last a quarter of an hour ago or more).
    midnight = day_of(now - timedelta(minutes=75)).astimezone(UTC)
    stack_first = midnight - timedelta(hours=STACK_HOURS - 1)
    outfall = Device(settings, OUTFALL_DEVICE, device_passwords[OUTFALL_DEVICE])
    station = Device(settings, STATION_DEVICE, device_passwords[STATION_DEVICE])
    stack = Device(settings, STACK_DEVICE, device_passwords[STACK_DEVICE])
    try:
        # One reading a minute, seven seconds past it (no other test's device time), the last
        # one a minute ago; every tenth COD value in maintenance (flag M).
        for i in range(HOURS * 60):
            ts = first + timedelta(minutes=i, seconds=7)
            flag = "M" if i % 10 == 5 else "N"
            topic = topics.reading_topic(OUTFALL, OUTFALL_DEVICE)
            assert not outfall.publish(topic, outfall_reading(ts, flag)).is_failure
        for i in range(30):
            ts = now - timedelta(minutes=30 - i, seconds=-7)
            topic = topics.reading_topic(STATION, STATION_DEVICE)
            assert not station.publish(topic, station_reading(ts)).is_failure
        for i in range(STACK_HOURS * 60 + 2):
            ts = stack_first + timedelta(minutes=i, seconds=7)
            topic = topics.reading_topic(STACK, STACK_DEVICE)
            assert not stack.publish(topic, stack_reading(ts)).is_failure
    finally:
        outfall.close()
        station.close()
        stack.close()

    # Everything the pipeline makes of them is in InfluxDB: the last readings, the case the
    # exceedance opened and the reminder's delivery (unroutable: this worker has no URLs).
    # Only then are the panels asked, so a row can only be missing because a query is wrong.
    since = stack_first - timedelta(days=1, hours=1)  # the stack's closed day starts before

    def stored(flux_filter: str) -> int:
        rows = query(
            settings,
            f'from(bucket: "{settings.influx_bucket}") '
            f"|> range(start: {flux_time(since)}) "
            f"|> filter(fn: (r) => {flux_filter}) |> group() |> count()",
        )
        return sum(int(r["_value"]) for r in rows)

    reading = 'r._measurement == "reading" and r._field == "value" and r.pollutant == "w01018"'
    wait_for(
        lambda: (
            stored(f'{reading} and r.site == "{OUTFALL}"') >= HOURS * 60
            and stored(f'r._measurement == "aqi" and r._field == "aqi" and r.site == "{STATION}"')
            >= 30
            and stored(
                f'r._measurement == "case_event" and r._field == "case" and r.site == "{OUTFALL}"'
            )
            and stored('r._measurement == "delivery" and r._field == "attempt"')
            # The stack's last hour closed, its day's emission total and its findings.
            and stored(
                f'r._measurement == "aggregate" and r._field == "corrected" and r.site == "{STACK}"'
                f' and r.period == "hour" and r._time >= {flux_time(midnight)}'
            )
            and stored(
                f'r._measurement == "aggregate" and r._field == "emission_kg" and '
                f'r.site == "{STACK}" and r.period == "day"'
            )
            and stored(f'r._measurement == "finding" and r.site == "{STACK}"')
        ),
        90,
        "the readings, AQI, a stack's windows, case events and deliveries in InfluxDB",
        every=1,
    )

    # The chosen range takes in the stack's hours as well as the last few.
    start, stop = min(first, stack_first) - timedelta(hours=1), now + timedelta(minutes=5)
    results = {
        what: query(settings, flux(text, settings, start, stop, site_of(what)))
        for what, text in queries
    }
    empty = [what for what, rows in results.items() if not rows]
    assert not empty, "panels with no rows:\n" + "\n".join(empty)

    # The rows are this test's data, not only whatever else is in the bucket.
    site_rows = results["site-limits.json: variable site"]
    assert OUTFALL in {r["_value"] for r in site_rows}
    (latest,) = [
        rows for what, rows in results.items() if what.startswith("site-limits.json: Latest")
    ]
    cod = [r for r in latest if r["pollutant"] == POLLUTANT]
    assert cod and cod[0]["limit"] == 40.0 and cod[0]["complies"] is False, cod
    (series,) = [rows for what, rows in results.items() if "against the limit that" in what]
    names = {r["series"] for r in series}
    assert any(n.startswith("max limit (permit ") for n in names), names
    assert f"device {OUTFALL_DEVICE}" in names, names
    assert STACK not in {r["_value"] for r in site_rows}  # no stack against raw limits

    # The stacks dashboard: this stack, its corrected hours over the limit and the limit from
    # the standard, the measured hours under it, the O2 and the emissions the worker counted.
    assert STACK in {r["_value"] for r in results["stacks.json: variable site"]}
    assert OUTFALL not in {r["_value"] for r in results["stacks.json: variable site"]}
    (so2,) = [
        rows for what, rows in results.items() if what.startswith("stacks.json: SO2 小时折算")
    ]
    corrected = [r["_value"] for r in so2 if r["series"] == f"折算浓度 {STACK_DEVICE}"]
    assert len(corrected) >= STACK_HOURS, so2
    assert all(v == pytest.approx(90.0 * STACK_FACTOR) for v in corrected), corrected
    assert {r["_value"] for r in so2 if r["series"] == "限值 (GB 18485-2014 incinerator)"} == {
        100.0
    }, so2
    (measured,) = [rows for what, rows in results.items() if "SO2 小时实测" in what]
    assert {r["_value"] for r in measured} == {90.0}, measured
    (oxygen,) = [rows for what, rows in results.items() if "烟气含氧量与基准氧含量" in what]
    assert {(r["series"], r["_value"]) for r in oxygen} == {
        ("烟气含氧量 (小时均值)", STACK_O2),
        ("基准氧含量", 11.0),
    }, oxygen
    (hourly,) = [rows for what, rows in results.items() if "小时排放量" in what]
    (daily,) = [rows for what, rows in results.items() if "日排放量" in what]
    day = [r for r in daily if r["_time"] == midnight - timedelta(days=1)]
    before = [r["_value"] for r in hourly if r["series"] == "SO2" and r["_time"] < midnight]
    assert len(before) == STACK_HOURS - 1 and day, (hourly, daily)
    assert day[0]["SO2"] == pytest.approx(sum(before)), (day, before)
    # The closed day's transmission and validity, as the worker wrote it: a minute owed all
    # day, the stack's last hours of it sent (every value N).
    owed = query(
        settings,
        f'from(bucket: "{settings.influx_bucket}") |> range(start: -30d)'
        f' |> filter(fn: (r) => r._measurement == "validity" and r.site == "{STACK}"'
        ' and r.pollutant == "a21026")'
        ' |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")',
    )
    [so2_day] = [r for r in owed if r["_time"] == midnight - timedelta(days=1)]
    assert so2_day["expected"] == 1440 and 0 < so2_day["received"] <= 3 * 60, so2_day
    assert so2_day["valid"] == so2_day["received"], so2_day
    assert so2_day["transmission_rate"] == round(so2_day["received"] / 1440, 4), so2_day


def flux_time(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def site_of(what: str) -> str:
    """The site the test chooses in a dashboard's ``site`` variable."""
    return STACK if what.startswith("stacks.json:") else OUTFALL


def test_the_case_trail_and_the_settlement_see_every_case_of_one_tick(settings: Settings) -> None:
    """Two cases of a site reminded on the same tick are two points (their ``case_id`` tag),
    and a point written before the tag existed still shows and counts: the trail panel's
    pivot and the weekly settlement's distinct count read both."""
    site = "S-TRAIL-TEST"  # no catalogue site: no settlement row, no other test's data
    at = datetime(2020, 3, 2, 1, 0, tzinfo=UTC)  # a Monday morning in China, long ago
    ms = int(at.timestamp() * 1000)
    points = [
        f'case_event,site={site},kind=reminded,status=reminded case="old",actor="system" {ms}',
        *(
            f"case_event,site={site},kind=reminded,status=reminded,case_id={c} "
            f'case="{c}",actor="system" {ms + 60_000}'
            for c in ("c1", "c2", "c2")  # c2 written twice (a batch judged again)
        ),
    ]
    with influx_client(settings) as client:
        client.write_api(write_options=SYNCHRONOUS).write(
            bucket=settings.influx_bucket, record="\n".join(points), write_precision="ms"
        )
    (trail,) = [t for what, t in every_query() if what.startswith("cases.json: Latest case events")]
    rows = query(settings, flux(trail, settings, at - timedelta(hours=1), at + timedelta(hours=1)))
    assert sorted(r["case"] for r in rows if r["site"] == site) == ["c1", "c2", "old"]

    writer = InfluxWriter(
        settings.influx_url,
        settings.influx_token.get_secret_value(),
        settings.influx_org,
        settings.influx_bucket,
    )

    async def counted() -> list[tuple[str, str, str, int]]:
        try:
            return await writer.case_counts(at, at + timedelta(days=7), COUNTED)
        finally:
            await writer.close()

    assert [c for c in asyncio.run(counted()) if c[0] == site] == [(site, "", "reminded", 3)]
