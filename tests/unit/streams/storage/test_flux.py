"""The Flux text the platform sends: literals that keep a value a value (no site id, device id
or pollutant code can add Flux of its own), and each query as it is written."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from ecowatch.streams.storage import flux

T = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
DAY = timedelta(days=1)
CST = timezone(timedelta(hours=8))

# Values that end a naive literal early, interpolate, or smuggle in a predicate of their own.
HOSTILE = [
    'S-OUT-001" or r.site != "',
    "S-OUT-001\\",
    'a\\" or true or "',
    "${r._value}",
    "$",
    "$${",
    "\\${",
    "$\\${",
    "end$",
    "a$b{c}",
    "line\nbreak\r\ttab",
    "污染源",
    "",
]


def parse_string(text: str) -> str:
    """A Flux string literal back to its value, as InfluxDB 2.7's Flux reads one (SPEC.md,
    "String literals"): fails where a value would have ended the literal, interpolated, or
    made a query InfluxDB refuses (it reads `$` with the character after it)."""
    assert text.startswith('"') and text.endswith('"') and len(text) >= 2, text
    escapes = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", '"': '"'}
    out, body, i = bytearray(), text[1:-1], 0
    while i < len(body):
        c = body[i]
        if c == "\\" and body[i + 1 : i + 2] == "x":
            out.append(int(body[i + 2 : i + 4], 16))
            i += 4
            continue
        if c == "\\":
            assert body[i + 1 : i + 2] in escapes, f"invalid escape in {text}"
            out += escapes[body[i + 1]].encode()
            i += 2
            continue
        assert c != '"', f"the literal ends early: {text}"
        assert c != "$", f"a raw $: {text}"
        out += c.encode()
        i += 1
    return out.decode()


# -- literals ---------------------------------------------------------------------------------


@pytest.mark.parametrize("value", HOSTILE)
def test_a_string_is_one_literal_holding_the_value_exactly(value: str) -> None:
    assert parse_string(flux.string(value)) == value


@pytest.mark.parametrize("value", HOSTILE)
def test_a_filter_value_stays_a_value(value: str) -> None:
    text = flux.eq("site", value).text
    assert text.startswith("r.site == ")
    assert parse_string(text.removeprefix("r.site == ")) == value


def test_the_escapes_are_fluxs() -> None:
    assert flux.string('say "hi" \\ ${x} $5') == '"say \\"hi\\" \\\\ \\x24{x} \\x245"'
    assert flux.string("a\nb") == '"a\\nb"'


@pytest.mark.parametrize("name", ['site") or true or (r.x == "', "a b", "1st", "", "r.site"])
def test_a_column_that_is_not_an_identifier_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="identifier"):
        flux.eq(name, "x")
    with pytest.raises(ValueError, match="identifier"):
        flux.record({name: "x"})


def test_a_regex_escapes_its_slashes() -> None:
    assert flux.matches("_field", "^iaqi_").text == "r._field =~ /^iaqi_/"
    assert flux.regex("a/b") == "/a\\/b/"
    with pytest.raises(ValueError):
        flux.regex("a\nb")


def test_a_time_is_rfc3339_in_utc() -> None:
    assert flux.time(T) == "2026-12-01T08:00:00Z"
    assert flux.time(T.astimezone(CST)) == "2026-12-01T08:00:00Z"
    assert flux.time(T + timedelta(microseconds=250_000)) == "2026-12-01T08:00:00.250000Z"
    with pytest.raises(ValueError, match="naive"):
        flux.time(datetime(2026, 12, 1, 8, 0))


@pytest.mark.parametrize(
    ("length", "text"),
    [
        (timedelta(minutes=10), "10m"),
        (timedelta(days=-30), "-30d"),
        (timedelta(hours=1, minutes=30), "1h30m"),
        (timedelta(seconds=1, milliseconds=500), "1s500ms"),
        (timedelta(microseconds=-7), "-7us"),
        (timedelta(0), "0s"),
    ],
)
def test_a_duration_is_fluxs(length: timedelta, text: str) -> None:
    assert flux.duration(length) == text


def test_numbers_and_booleans() -> None:
    assert [flux.literal(v) for v in (True, False, 3, 80.0, 0.5)] == [
        "true",
        "false",
        "3",
        "80.0",
        "0.5",
    ]
    # Flux has no exponent: positional, and still a float.
    assert flux.literal(1e-05) == "0.00001"
    assert flux.literal(1e16) == "10000000000000000.0"
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError):
            flux.literal(bad)
    with pytest.raises(TypeError):
        flux.literal(None)  # type: ignore[arg-type]


def test_an_expression_is_used_as_is() -> None:
    assert flux.literal(flux.WINDOW_PERIOD) == "v.windowPeriod"
    assert flux.eq("site", flux.variable("site")).text == 'r.site == "${site}"'
    with pytest.raises(ValueError):
        flux.variable("site}")


def test_records_arrays_and_dicts_escape_what_they_hold() -> None:
    assert flux.record({"site": 'S"1', "limit": 40.0}) == '{site: "S\\"1", limit: 40.0}'
    assert flux.strings(["_time", 'a"b']) == '["_time", "a\\"b"]'
    assert flux.array_from("limits", [{"unit": "mg/L"}, {"unit": "${x}"}]) == (
        'limits = array.from(rows: [\n  {unit: "mg/L"},\n  {unit: "\\x24{x}"},\n])'
    )
    assert flux.dict_from_list("grids", {"S-1": 'G"1', "S-2": "G2"}) == (
        'grids = dict.fromList(pairs: [\n  {key: "S-1", value: "G\\"1"},\n'
        '  {key: "S-2", value: "G2"}\n])'
    )


def test_the_delete_predicate_takes_a_measurement_name_only() -> None:
    assert flux.delete_predicate("reading") == '_measurement="reading"'
    with pytest.raises(ValueError):
        flux.delete_predicate('reading" OR "a"="a')


# -- predicates and steps ---------------------------------------------------------------------


def test_alternatives_are_parenthesized_inside_an_and() -> None:
    either = flux.one_of("device", ["D1", "D2"])
    assert either.text == 'r.device == "D1" or r.device == "D2"'
    assert flux.all_of(flux.eq("_field", "value"), either).text == (
        'r._field == "value" and (r.device == "D1" or r.device == "D2")'
    )
    # One is no alternative: no parentheses.
    assert flux.all_of(flux.one_of("device", ["D1"])).text == 'r.device == "D1"'


def test_one_of_nothing_matches_nothing_and_is_still_flux() -> None:
    assert flux.one_of("device", []).text == "false"


def test_steps() -> None:
    assert flux.range_(T) == "range(start: 2026-12-01T08:00:00Z)"
    assert flux.range_(timedelta(days=-30), flux.RANGE_STOP) == (
        "range(start: -30d, stop: v.timeRangeStop)"
    )
    assert flux.group() == "group()"
    assert flux.group(["site", "kind"]) == 'group(columns: ["site", "kind"])'
    assert flux.sort(["_time"]) == 'sort(columns: ["_time"])'
    assert flux.sort(["aqi"], desc=True) == 'sort(columns: ["aqi"], desc: true)'
    assert flux.count() == "count()" and flux.count("case") == 'count(column: "case")'
    assert flux.aggregate_window(timedelta(minutes=10), "count", time_src="_start") == (
        'aggregateWindow(every: 10m, fn: count, createEmpty: false, timeSrc: "_start")'
    )
    with pytest.raises(ValueError):
        flux.aggregate_window(flux.WINDOW_PERIOD, "mean) |> drop(")


def test_a_long_pivot_wraps_as_the_dashboards_have_it() -> None:
    assert flux.pivot(["grid"], ["kind"], "_value") == (
        'pivot(rowKey: ["grid"], columnKey: ["kind"], valueColumn: "_value")'
    )
    assert flux.pivot(["_time", "device", "pollutant"], ["_field"], "_value") == (
        'pivot(rowKey: ["_time", "device", "pollutant"],\n'
        '      columnKey: ["_field"], valueColumn: "_value")'
    )


def test_a_pipeline_is_a_step_a_line_with_its_notes() -> None:
    pipeline = flux.from_("b", T).note("why the group").then(flux.group(["device"]), flux.count())
    assert str(pipeline) == (
        'from(bucket: "b")\n'
        "  |> range(start: 2026-12-01T08:00:00Z)\n"
        "  // why the group\n"
        '  |> group(columns: ["device"])\n'
        "  |> count()"
    )


# -- the platform's queries -------------------------------------------------------------------


def test_a_sites_readings_for_judging_again() -> None:
    assert flux.site_readings("ecowatch", "S-OUT-001", ["D2", "D1", "D2"], T, T + DAY) == (
        'from(bucket: "ecowatch")\n'
        "  |> range(start: 2026-12-01T08:00:00Z, stop: 2026-12-02T08:00:00Z)\n"
        '  |> filter(fn: (r) => r._measurement == "reading" and r.site == "S-OUT-001")\n'
        '  |> filter(fn: (r) => r.device == "D1" or r.device == "D2")\n'
        '  |> filter(fn: (r) => r._field == "value" or r._field == "flag")\n'
        '  |> keep(columns: ["_time", "_value", "_field", "device", "pollutant"])'
    )


def test_a_hostile_site_id_cannot_widen_the_readings_read() -> None:
    site = 'S-OUT-001" or r.site != "'
    query = flux.site_readings("ecowatch", site, ["D1"], T, T + DAY)
    assert f"r.site == {flux.string(site)})" in query
    assert 'r.site != ""' not in query


def test_the_settlements_case_counts() -> None:
    # A zone's time is the same instant in UTC.
    assert flux.case_counts("ecowatch", T.astimezone(CST), T + 7 * DAY, ["reminded", "closed"]) == (
        'from(bucket: "ecowatch")\n'
        "  |> range(start: 2026-12-01T08:00:00Z, stop: 2026-12-08T08:00:00Z)\n"
        '  |> filter(fn: (r) => r._measurement == "case_event" and r._field == "case")\n'
        '  |> filter(fn: (r) => r.kind == "closed" or r.kind == "reminded")\n'
        '  |> map(fn: (r) => ({r with grid: if exists r.grid then r.grid else ""}))\n'
        '  |> group(columns: ["site", "grid", "kind"])\n'
        "  |> distinct()\n"
        "  |> count()\n"
        '  |> keep(columns: ["site", "grid", "kind", "_value"])'
    )


def test_reading_points_per_device_with_and_without_a_stop() -> None:
    assert flux.reading_points_per_device("ecowatch", T) == (
        'from(bucket: "ecowatch")\n'
        "  |> range(start: 2026-12-01T08:00:00Z)\n"
        '  |> filter(fn: (r) => r._measurement == "reading" and r._field == "value")\n'
        '  |> group(columns: ["device"])\n'
        "  |> count()"
    )
    assert "range(start: 2026-12-01T08:00:00Z, stop: 2026-12-02T08:00:00Z)" in (
        flux.reading_points_per_device("ecowatch", T, T + DAY)
    )


def test_a_sites_history_for_the_console() -> None:
    assert flux.site_history("ecowatch", "S-OUT-001", T, T + DAY, 1500) == (
        'from(bucket: "ecowatch")\n'
        "  |> range(start: 2026-12-01T08:00:00Z, stop: 2026-12-02T08:00:00Z)\n"
        '  |> filter(fn: (r) => r._measurement == "reading" and r.site == "S-OUT-001"'
        ' and r._field == "value" and r.model != "discharge_meter")\n'
        '  |> keep(columns: ["_time", "_value", "pollutant"])\n'
        "  |> tail(n: 1500)"
    )


def test_the_latest_readings() -> None:
    assert flux.latest_readings("ecowatch", T, T + DAY) == (
        'from(bucket: "ecowatch")\n'
        "  |> range(start: 2026-12-01T08:00:00Z, stop: 2026-12-02T08:00:00Z)\n"
        '  |> filter(fn: (r) => r._measurement == "reading")\n'
        "  |> last()"
    )


READINGS_OF_COD = 'r._measurement == "reading" and r._field == "value" and r.pollutant == "w01018"'


def test_the_drills_counts() -> None:
    assert flux.pollutant_counts("ecowatch", "w01018", ["D1", "D2"], T, T + DAY) == (
        'from(bucket: "ecowatch")\n'
        "  |> range(start: 2026-12-01T08:00:00Z, stop: 2026-12-02T08:00:00Z)\n"
        f'  |> filter(fn: (r) => {READINGS_OF_COD} and (r.device == "D1" or r.device == "D2"))\n'
        "  |> count()\n"
        '  |> keep(columns: ["device", "_value"])'
    )
    until = flux.pollutant_counts_until(
        "ecowatch", "w01018", T, {"D1": T + timedelta(seconds=5), "D2": T + DAY}
    )
    assert until.startswith('union(tables: [from(bucket: "ecowatch")\n')
    assert until.count("from(") == 2 and until.endswith(")])")
    assert "stop: 2026-12-01T08:00:05Z)" in until and 'r.device == "D1")' in until
    assert "stop: 2026-12-02T08:00:00Z)" in until and 'r.device == "D2")' in until


def test_the_drills_times_and_windows() -> None:
    assert flux.pollutant_times("ecowatch", "w01018", ["D1"], T, T + DAY) == (
        'from(bucket: "ecowatch")\n'
        "  |> range(start: 2026-12-01T08:00:00Z, stop: 2026-12-02T08:00:00Z)\n"
        f'  |> filter(fn: (r) => {READINGS_OF_COD} and r.device == "D1")\n'
        '  |> keep(columns: ["_time"])'
    )
    devices = (d for d in ["D1", "D2"])  # any iterable, read once
    assert flux.pollutant_windows("ecowatch", "w01018", devices, T, timedelta(minutes=10)) == (
        'from(bucket: "ecowatch")\n'
        "  |> range(start: 2026-12-01T08:00:00Z)\n"
        f'  |> filter(fn: (r) => {READINGS_OF_COD} and (r.device == "D1" or r.device == "D2"))\n'
        '  |> aggregateWindow(every: 10m, fn: count, createEmpty: false, timeSrc: "_start")\n'
        '  |> keep(columns: ["_time"])'
    )


def test_the_dashboards_read_grafanas_bucket_and_range() -> None:
    for query in (flux.site_findings(), flux.aqi_table(), flux.seconds_since_last_reading()):
        assert query.startswith(
            "from(bucket: v.defaultBucket)\n"
            "  |> range(start: v.timeRangeStart, stop: v.timeRangeStop)\n"
        )
    assert "range(start: -30d, stop: v.timeRangeStop)" in flux.open_cases_per_grid({}, ["open"])
    assert flux.sites_variable() == (
        'import "influxdata/influxdb/schema"\n'
        'schema.tagValues(bucket: v.defaultBucket, tag: "site", start: -30d,\n'
        '  predicate: (r) => r._measurement == "reading")'
    )
