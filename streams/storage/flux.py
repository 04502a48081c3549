"""Every Flux query the platform sends, built from typed arguments: the worker's, the console's,
the drill's and the demo's, and the Grafana dashboards' (grafana/generate.py). Pure: text only,
no client, so each query is unit-tested as it is written.

Values never go into a query as raw text. A string becomes an escaped literal
(:func:`string`), a column is checked to be an identifier before ``r.<column>``, a time is an
RFC 3339 literal in UTC and a duration a Flux duration: a site id, a device id or a pollutant
code cannot end a literal and add Flux of its own. What is used as is must say so: an
:class:`Expr` (Grafana's macros and template variables), or a ``map`` body written here.

A query is a :class:`Pipeline`: a source and its steps, each on a line of its own. The
dashboards' queries keep the layout they were written with by hand (Grafana shows them to
whoever edits a panel), and the committed dashboards stay byte-identical.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from ecowatch.measurements import (
    AGGREGATE,
    AQI,
    CASE_EVENT,
    DELIVERY,
    FINDING,
    MARK,
    READING,
    VALIDITY,
)
from ecowatch.pollutants import STANDARD_DRY_FLOW


@dataclass(frozen=True)
class Expr:
    """Flux text used as is, never escaped: only code written in this module or one of the
    constants below (Grafana fills its macros and variables in before InfluxDB sees them)."""

    text: str

    def __str__(self) -> str:
        return self.text


Value = str | bool | int | float | datetime | timedelta | Expr
Time = datetime | timedelta | Expr  # a time, or a duration relative to now (-30d)

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Flux's string escapes (SPEC.md, "String literals"). Every `$` is its byte, \x24: "${"
# interpolates, and InfluxDB 2.7 reads a `$` with the character after it (so "$\${" still
# interpolates) and refuses a `\$` that no `{` follows.
_STRING_ESCAPES = str.maketrans(
    {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t", "$": "\\x24"}
)
_DURATION_UNITS = (
    ("d", timedelta(days=1)),
    ("h", timedelta(hours=1)),
    ("m", timedelta(minutes=1)),
    ("s", timedelta(seconds=1)),
    ("ms", timedelta(milliseconds=1)),
    ("us", timedelta(microseconds=1)),
)


# -- literals ---------------------------------------------------------------------------------


def identifier(name: str) -> str:
    """A column, record key or variable name as Flux reads one bare (``r.site``); anything
    else is refused rather than quoted, as these come from code, never from data."""
    if not _IDENTIFIER.fullmatch(name):
        raise ValueError(f"not a Flux identifier: {name!r}")
    return name


def string(value: str) -> str:
    """A string literal: the value exactly, whatever it holds."""
    return '"' + value.translate(_STRING_ESCAPES) + '"'


def regex(pattern: str) -> str:
    """A regular expression literal (RE2); its slashes escaped."""
    if "\n" in pattern:
        raise ValueError("a Flux regular expression is one line")
    return "/" + pattern.replace("/", "\\/") + "/"


def time(at: datetime) -> str:
    """A time literal: RFC 3339 in UTC, with its fraction of a second if it has one. A naive
    datetime is refused: Flux would read it in the server's zone, not the caller's."""
    if at.tzinfo is None:
        raise ValueError(f"a naive datetime has no place in a query: {at!r}")
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def duration(length: timedelta) -> str:
    """A duration literal, largest units first (``10m``, ``-30d``, ``1h30m``)."""
    sign, left = ("-", -length) if length < timedelta(0) else ("", length)
    parts = []
    for unit, size in _DURATION_UNITS:
        count, left = divmod(left, size)
        if count:
            parts.append(f"{count}{unit}")
    return sign + ("".join(parts) or "0s")


def _float(value: float) -> str:
    if not math.isfinite(value):
        raise ValueError(f"Flux has no literal for {value!r}")
    text = repr(value)
    if "e" in text or "E" in text:  # Flux has no exponent: 1e-05 is 0.00001
        text = format(Decimal(text), "f")
    return text if "." in text else text + ".0"


def literal(value: Value) -> str:
    """Any value of a query as its Flux literal."""
    if isinstance(value, Expr):
        return value.text
    if isinstance(value, bool):  # before int: True is an int too
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, str):
        return string(value)
    if isinstance(value, datetime):
        return time(value)
    if isinstance(value, timedelta):
        return duration(value)
    raise TypeError(f"no Flux literal for {type(value).__name__}")


def strings(values: Iterable[str]) -> str:
    """An array of string literals: ``["_time", "device"]``."""
    return "[" + ", ".join(string(v) for v in values) + "]"


def record(fields: Mapping[str, Value]) -> str:
    """A record literal, its fields in the mapping's order: ``{site: "S-1", limit: 80.0}``."""
    return "{" + ", ".join(f"{identifier(k)}: {literal(v)}" for k, v in fields.items()) + "}"


# -- predicates -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Predicate:
    """The body of ``(r) => …``. ``alternatives``: an ``or`` of several, which ``all_of``
    puts in parentheses (``and`` binds tighter)."""

    text: str
    alternatives: bool = False

    def __str__(self) -> str:
        return self.text


def eq(column: str, value: Value) -> Predicate:
    return Predicate(f"r.{identifier(column)} == {literal(value)}")


def ne(column: str, value: Value) -> Predicate:
    return Predicate(f"r.{identifier(column)} != {literal(value)}")


def matches(column: str, pattern: str) -> Predicate:
    return Predicate(f"r.{identifier(column)} =~ {regex(pattern)}")


def one_of(column: str, values: Iterable[Value]) -> Predicate:
    """The column is any of the values; none: nothing matches (``false``, still valid Flux)."""
    tests = [eq(column, v).text for v in values]
    return Predicate(" or ".join(tests) or "false", alternatives=len(tests) > 1)


def all_of(*predicates: Predicate) -> Predicate:
    return Predicate(" and ".join(f"({p})" if p.alternatives else p.text for p in predicates))


# -- steps and pipelines ----------------------------------------------------------------------

# The dashboards' pivots were written on two lines when one would be longer than this.
_PIVOT_ONE_LINE = 80


def range_(start: Time, stop: Time | None = None) -> str:
    bounds = f"start: {literal(start)}"
    return f"range({bounds})" if stop is None else f"range({bounds}, stop: {literal(stop)})"


def filter_(predicate: Predicate) -> str:
    return f"filter(fn: (r) => {predicate})"


def map_(body: str) -> str:
    """``map`` to the record ``{body}``: Flux code written in this module, never a value."""
    return f"map(fn: (r) => ({{{body}}}))"


def group(columns: Sequence[str] | None = None) -> str:
    return "group()" if columns is None else f"group(columns: {strings(columns)})"


def keep(columns: Sequence[str]) -> str:
    return f"keep(columns: {strings(columns)})"


def sort(columns: Sequence[str], desc: bool = False) -> str:
    return f"sort(columns: {strings(columns)}{', desc: true' if desc else ''})"


def count(column: str | None = None) -> str:
    return "count()" if column is None else f"count(column: {string(column)})"


def last() -> str:
    return "last()"


def distinct() -> str:
    return "distinct()"


def unique(column: str) -> str:
    return f"unique(column: {string(column)})"


def tail(n: int) -> str:
    return f"tail(n: {int(n)})"


def limit(n: int) -> str:
    return f"limit(n: {int(n)})"


def aggregate_window(
    every: timedelta | Expr,
    fn: str,
    create_empty: bool = False,
    time_src: str | None = None,
    offset: timedelta | None = None,
) -> str:
    source = "" if time_src is None else f", timeSrc: {string(time_src)}"
    shift = "" if offset is None else f", offset: {literal(offset)}"
    return (
        f"aggregateWindow(every: {literal(every)}{shift}, fn: {identifier(fn)}, "
        f"createEmpty: {literal(create_empty)}{source})"
    )


def pivot(row_key: Sequence[str], column_key: Sequence[str], value_column: str) -> str:
    rows = f"pivot(rowKey: {strings(row_key)},"
    rest = f"columnKey: {strings(column_key)}, valueColumn: {string(value_column)})"
    one_line = f"{rows} {rest}"
    return one_line if len(one_line) <= _PIVOT_ONE_LINE else f"{rows}\n      {rest}"


@dataclass(frozen=True)
class Pipeline:
    """A stream of tables: a source (``from(…)``, a variable) and its steps, one a line."""

    source: str
    lines: tuple[str, ...] = ()

    def then(self, *steps: str) -> Pipeline:
        return replace(self, lines=self.lines + tuple(f"|> {s}" for s in steps))

    def note(self, *lines: str) -> Pipeline:
        """A comment between two steps: why the next one is there (a line each)."""
        if any("\n" in line for line in lines):
            raise ValueError("a note's lines are given one by one")
        return replace(self, lines=self.lines + tuple(f"// {line}" for line in lines))

    def __str__(self) -> str:
        return self.source + "".join(f"\n  {line}" for line in self.lines)


def from_(bucket: str | Expr, start: Time, stop: Time | None = None) -> Pipeline:
    """A bucket's points in [start, stop): a bucket's name, or Grafana's ``v.defaultBucket``."""
    return Pipeline(f"from(bucket: {literal(bucket)})").then(range_(start, stop))


def union(tables: Iterable[str | Pipeline]) -> str:
    return "union(tables: [" + ", ".join(str(t) for t in tables) + "])"


def script(*statements: str | Pipeline) -> str:
    """Statements (imports, assignments, the result), one after the other."""
    return "\n".join(str(s) for s in statements)


def array_from(name: str, rows: Iterable[Mapping[str, Value]]) -> str:
    """``name = array.from(rows: [...])``, a record a line (``import "array"``)."""
    body = "\n".join(f"  {record(row)}," for row in rows)
    return f"{identifier(name)} = array.from(rows: [\n{body}\n])"


def dict_from_list(name: str, pairs: Mapping[str, str]) -> str:
    """``name = dict.fromList(pairs: [...])`` of string keys and values (``import "dict"``)."""
    body = ",\n".join(
        f"  {{key: {string(key)}, value: {string(value)}}}" for key, value in pairs.items()
    )
    return f"{identifier(name)} = dict.fromList(pairs: [\n{body}\n])"


def delete_predicate(measurement: str) -> str:
    """The delete API's predicate (not Flux) for all of a measurement's points."""
    if not re.fullmatch(r"[A-Za-z0-9_]+", measurement):
        raise ValueError(f"not a measurement name: {measurement!r}")
    return f'_measurement="{measurement}"'


# -- the platform's queries -------------------------------------------------------------------


def site_readings(
    bucket: str, site: str, devices: Iterable[str], start: datetime, stop: datetime
) -> str:
    """Value and flag fields of some of a site's devices in [start, stop), unpivoted and with
    only the columns the worker's re-judging reads (store.readings_of_csv)."""
    return str(
        from_(bucket, start, stop).then(
            filter_(all_of(eq("_measurement", READING), eq("site", site))),
            filter_(one_of("device", sorted(set(devices)))),
            filter_(one_of("_field", ["value", "flag"])),
            keep(["_time", "_value", "_field", "device", "pollutant"]),
        )
    )


# Windows of a day start at midnight UTC; China's midnight is 16:00 UTC the day before.
CHINA_DAY_OFFSET = timedelta(hours=16)


def daily_flag_counts(bucket: str, start: datetime, stop: datetime, site: str | None) -> str:
    """Per China-time day, site, device and pollutant in [start, stop): the readings that
    arrived (``kind`` received, any flag) and those flagged N (``kind`` valid), stamped at the
    day's start. One point per reading and time, so a resend is not counted twice."""
    wanted = [eq("_measurement", READING), eq("_field", "flag")]
    if site is not None:
        wanted.append(eq("site", site))
    base = from_(bucket, start, stop).then(filter_(all_of(*wanted)))
    by_day = aggregate_window(
        timedelta(days=1), "count", time_src="_start", offset=CHINA_DAY_OFFSET
    )
    columns = keep(["_time", "_value", "site", "device", "pollutant", "kind"])
    received = base.then(by_day, 'set(key: "kind", value: "received")', columns)
    valid = base.then(
        filter_(eq("_value", "N")), by_day, 'set(key: "kind", value: "valid")', columns
    )
    return script(f"received = {received}", f"valid = {valid}", union(["received", "valid"]))


def case_counts(bucket: str, start: datetime, stop: datetime, kinds: Iterable[str]) -> str:
    """Distinct case ids per site, grid and kind of the ``case_event`` trail in [start, stop):
    an event written twice (a batch judged again after a crash) counts once. ``grid`` is a
    reassigned case's (改派), "" for a case of its site's grid (its points have no such tag)."""
    return str(
        from_(bucket, start, stop).then(
            filter_(all_of(eq("_measurement", CASE_EVENT), eq("_field", "case"))),
            filter_(one_of("kind", sorted(set(kinds)))),
            map_('r with grid: if exists r.grid then r.grid else ""'),
            group(["site", "grid", "kind"]),
            distinct(),
            count(),
            keep(["site", "grid", "kind", "_value"]),
        )
    )


def mark_counts(bucket: str, start: datetime, stop: datetime) -> str:
    """Distinct marks per site and kind (declared, proof_added, accepted, rejected) of the
    ``mark`` trail in [start, stop): a change written twice counts once."""
    return str(
        from_(bucket, start, stop).then(
            filter_(all_of(eq("_measurement", MARK), eq("_field", "actor"))),
            keep(["site", "kind", "mark_id", "_value"]),
            group(["site", "kind"]),
            unique("mark_id"),
            count(),
            keep(["site", "kind", "_value"]),
        )
    )


def marks_as_they_stand(bucket: str, start: datetime, stop: datetime, site: str | None) -> str:
    """Each of the enterprises' marks' last change in [start, stop) (the ``mark`` trail; a
    device's own marks are left out), or one site's: its type and status, device, start and
    end, one row per mark."""
    wanted = [eq("_measurement", MARK), eq("source", "enterprise")]
    if site is not None:
        wanted.append(eq("site", site))
    return str(
        from_(bucket, start, stop).then(
            filter_(all_of(*wanted)),
            filter_(one_of("_field", ["device", "start", "end"])),
            group(["mark_id", "_field"]),
            last(),
            group(),
            # One point holds the three: their last rows share its type and status.
            pivot(["mark_id", "site", "type", "status"], ["_field"], "_value"),
            keep(["site", "mark_id", "type", "status", "device", "start", "end"]),
        )
    )


def reading_points_per_device(bucket: str, start: datetime, stop: datetime | None = None) -> str:
    """Reading points (value fields) per device since ``start``, or in [start, stop)."""
    return str(
        from_(bucket, start, stop).then(
            filter_(all_of(eq("_measurement", READING), eq("_field", "value"))),
            group(["device"]),
            count(),
        )
    )


def site_history(bucket: str, site: str, start: datetime, stop: datetime, points: int) -> str:
    """A site's values per pollutant in [start, stop), the last ``points`` of each series."""
    # The outfall monitor's analysers are the chart's; a discharge meter at the same outfall
    # measures the same pollutants and would zigzag one line between two instruments.
    analysers = all_of(
        eq("_measurement", READING),
        eq("site", site),
        eq("_field", "value"),
        ne("model", "discharge_meter"),
    )
    return str(
        from_(bucket, start, stop).then(
            filter_(analysers), keep(["_time", "_value", "pollutant"]), tail(points)
        )
    )


def site_corrected_history(
    bucket: str, site: str, start: datetime, stop: datetime, points: int
) -> str:
    """A stack's minute windows per pollutant in [start, stop), corrected to its reference
    oxygen (折算浓度), the last ``points`` of each series: what its limits are read against,
    never the raw values of :func:`site_history`."""
    corrected = all_of(
        eq("_measurement", AGGREGATE),
        eq("site", site),
        eq("period", "minute"),  # the finest windows: a chart of hours needs no raw points
        eq("_field", "corrected"),
    )
    return str(
        from_(bucket, start, stop).then(
            filter_(corrected), keep(["_time", "_value", "pollutant"]), tail(points)
        )
    )


def validity_days(bucket: str, start: datetime, stop: datetime, site: str | None = None) -> str:
    """Every device's closed China-time days of each pollutant in [start, stop) (``validity``,
    period day), or one site's: expected, received and valid as columns of one row, stamped at
    the day's start. Only the counts: a site's or the city's rate is summed from them, never
    averaged from the devices' rates."""
    wanted = [eq("_measurement", VALIDITY), eq("period", "day")]
    if site is not None:
        wanted.append(eq("site", site))
    return str(
        from_(bucket, start, stop).then(
            filter_(all_of(*wanted)),
            filter_(one_of("_field", ["expected", "received", "valid"])),
            pivot(["_time"], ["_field"], "_value"),
            keep(["_time", "site", "device", "pollutant", "expected", "received", "valid"]),
        )
    )


def latest_readings(bucket: str, start: datetime, stop: datetime) -> str:
    """The last point of every reading series (site, device, model, pollutant, field) in
    [start, stop)."""
    # last() per series is pushed down to InfluxDB's storage: cheap even over days of readings.
    return str(from_(bucket, start, stop).then(filter_(eq("_measurement", READING)), last()))


def _pollutant_values(
    bucket: str, pollutant: str, devices: Iterable[str], start: datetime, stop: datetime | None
) -> Pipeline:
    # One field of one pollutant: one point per reading of each device.
    return from_(bucket, start, stop).then(
        filter_(
            all_of(
                eq("_measurement", READING),
                eq("_field", "value"),
                eq("pollutant", pollutant),
                one_of("device", list(devices)),
            )
        )
    )


def pollutant_counts(
    bucket: str, pollutant: str, devices: Iterable[str], start: datetime, stop: datetime
) -> str:
    """Readings of ``pollutant`` per device in [start, stop): ``device`` and ``_value``."""
    values = _pollutant_values(bucket, pollutant, devices, start, stop)
    return str(values.then(count(), keep(["device", "_value"])))


def pollutant_counts_until(
    bucket: str, pollutant: str, start: datetime, stops: Mapping[str, datetime]
) -> str:
    """Readings of ``pollutant`` per device from ``start`` up to each device's own stop."""
    return union(
        _pollutant_values(bucket, pollutant, [device], start, stop).then(
            count(), keep(["device", "_value"])
        )
        for device, stop in stops.items()
    )


def pollutant_times(
    bucket: str, pollutant: str, devices: Iterable[str], start: datetime, stop: datetime
) -> str:
    """The time of every reading of ``pollutant`` in [start, stop): ``_time``."""
    values = _pollutant_values(bucket, pollutant, devices, start, stop)
    return str(values.then(keep(["_time"])))


def pollutant_windows(
    bucket: str, pollutant: str, devices: Iterable[str], start: datetime, every: timedelta
) -> str:
    """The start (``_time``) of each window of ``every`` since ``start`` that holds a reading
    of ``pollutant`` of the devices."""
    values = _pollutant_values(bucket, pollutant, devices, start, None)
    return str(
        values.then(
            aggregate_window(every, "count", time_src="_start"),
            keep(["_time"]),
        )
    )


# -- Grafana's dashboards ---------------------------------------------------------------------
# Every query reads the bucket the provisioned data source names, over the dashboard's time
# range; Grafana replaces its macros (v.*) and the dashboard's variables (${…}) before
# sending. A panel's text is what Grafana shows whoever edits it: laid out to be read.

DASHBOARD_BUCKET = Expr("v.defaultBucket")
RANGE_START = Expr("v.timeRangeStart")
RANGE_STOP = Expr("v.timeRangeStop")
WINDOW_PERIOD = Expr("v.windowPeriod")
# Open cases are those whose latest event says so: look back further than the time picker, so
# a case opened last week still counts today.
CASES_LOOKBACK = timedelta(days=-30)
# How far back the dashboards' variables list the sites and pollutants.
VARIABLES_LOOKBACK = timedelta(days=-30)
_NO_GRID = 'dict.get(dict: grids, key: r.site, default: "(no grid)")'


def variable(name: str) -> Expr:
    """A dashboard variable as a string, ``"${site}"``: Grafana puts its value in."""
    return Expr(f'"${{{identifier(name)}}}"')


SITE = variable("site")
POLLUTANT = variable("pollutant")


def _dashboard(start: Time = RANGE_START) -> Pipeline:
    return from_(DASHBOARD_BUCKET, start, RANGE_STOP)


def _tag_values(tag: str, predicate: Predicate) -> str:
    return script(
        'import "influxdata/influxdb/schema"',
        f"schema.tagValues(bucket: {DASHBOARD_BUCKET}, tag: {string(tag)}, "
        f"start: {duration(VARIABLES_LOOKBACK)},\n  predicate: (r) => {predicate})",
    )


def sites_variable() -> str:
    """The sites with readings: the ``site`` variable's choices."""
    return _tag_values("site", eq("_measurement", READING))


def pollutants_variable() -> str:
    """The chosen site's pollutants: the ``pollutant`` variable's choices."""
    return _tag_values("pollutant", all_of(eq("_measurement", READING), eq("site", SITE)))


def _site_readings(of_pollutant: bool) -> Pipeline:
    site = eq("site", SITE)
    chosen = all_of(site, eq("pollutant", POLLUTANT)) if of_pollutant else site
    return _dashboard().then(
        filter_(all_of(eq("_measurement", READING), eq("_field", "value"))), filter_(chosen)
    )


def readings_against_limits(limits: Sequence[Mapping[str, Value]]) -> str:
    """Each device's values of the chosen site and pollutant (mean per interval), and the
    limits that apply as flat lines. ``limits``: rows of site, pollutant, bound (min or max),
    limit, unit and source."""
    data = _site_readings(True).then(
        aggregate_window(WINDOW_PERIOD, "mean"),
        map_('_time: r._time, _value: r._value, series: "device " + r.device'),
        group(["series"]),
    )
    series = 'r.bound + " limit (" + r.source + ")"'
    return _with_limit_line(data, limits, POLLUTANT, series)


def _with_limit_line(
    data: Pipeline, limits: Sequence[Mapping[str, Value]], pollutant: Expr | str, series: str
) -> str:
    """``data`` and, from the ``limits`` rows of the chosen site and ``pollutant``, each limit
    as a flat line across the chosen time range (its value at both ends) named by ``series``
    (a Flux expression of the row)."""
    bound = Pipeline("limits").then(
        filter_(all_of(eq("site", SITE), eq("pollutant", pollutant))),
        map_(f"_value: r.limit, series: {series}"),
    )
    ends = ",\n".join(
        f"  bound |> {map_(f'r with _time: {at}')}" for at in (RANGE_START, RANGE_STOP)
    )
    return script(
        'import "array"',
        array_from("limits", limits),
        f"data = {data}",
        f"bound = {bound}",
        "// The limit as a flat line across the chosen time range: its value at both ends.",
        f"line = union(tables: [\n{ends},\n]) |> {group(['series'])} |> {sort(['_time'])}",
        union(["data", "line"]),
    )


def latest_against_limits(limits: Sequence[Mapping[str, Value]]) -> str:
    """The chosen site's latest values beside their limits: the multiple, and whether each
    complies."""
    latest = _site_readings(False).then(
        last(), pivot(["_time", "device", "pollutant"], ["_field"], "_value"), group()
    )
    joined = Pipeline('join(tables: {value: latest, limit: applied}, on: ["pollutant"])').then(
        map_(
            "\n      time: r._time, device: r.device, pollutant: r.pollutant, value: r.value,"
            "\n      bound: r.bound, limit: r.limit, unit: r.unit, source: r.source,"
            '\n      multiple: if r.bound == "max" and r.limit > 0.0 then r.value / r.limit'
            " else 0.0,"
            '\n      complies: if r.bound == "max" then r.value <= r.limit'
            " else r.value >= r.limit,"
            "\n  "
        ),
        sort(["pollutant", "bound"]),
    )
    return script(
        'import "array"',
        array_from("limits", limits),
        f"latest = {latest}",
        f"applied = limits |> {filter_(eq('site', SITE))}",
        joined,
    )


def site_findings() -> str:
    """The chosen site's findings, newest first."""
    return str(
        _dashboard().then(
            filter_(all_of(eq("_measurement", FINDING), eq("site", SITE))),
            pivot(["_time", "rule", "pollutant", "severity"], ["_field"], "_value"),
            group(),
            keep(["_time", "rule", "pollutant", "severity", "active", "value", "detail"]),
            sort(["_time"], desc=True),
            limit(200),
        )
    )


def site_means() -> str:
    """The minute and hourly means of the chosen site's pollutant, per device."""
    return str(
        _dashboard().then(
            filter_(all_of(eq("_measurement", AGGREGATE), eq("_field", "mean"))),
            filter_(all_of(eq("site", SITE), eq("pollutant", POLLUTANT))),
            filter_(one_of("period", ["minute", "hour"])),
            map_('_time: r._time, _value: r._value, series: r.period + " mean, " + r.device'),
            group(["series"]),
        )
    )


# -- a stack's dashboard ----------------------------------------------------------------------
# A stack is judged on its corrected (折算) hourly means, never on its raw readings: its
# panels read the worker's windows (``aggregate``), which carry the corrected mean, the O2 it
# was corrected with, the reference and the emission (streams/storage/points.py window_line).

FLUE_GAS_MONITOR = "flue_gas_monitor"  # a stack's CEMS: the model tag of its readings
# The stacks' daily totals are points at the start of each closed day: look back further than
# the time picker's hours, or a day's total would only show on the morning of that day.
DAILY_LOOKBACK = timedelta(days=-30)
_NAME = "dict.get(dict: names, key: r.pollutant, default: r.pollutant)"  # its name, else its code


def sites_but_stacks_variable() -> str:
    """The sites with readings other than stacks' (their limits are not their raw readings'):
    the site-limits dashboard's ``site`` variable."""
    return _tag_values("site", all_of(eq("_measurement", READING), ne("model", FLUE_GAS_MONITOR)))


def stacks_variable() -> str:
    """The stacks with readings (a flue-gas CEMS's): the stacks dashboard's ``site``."""
    return _tag_values("site", all_of(eq("_measurement", READING), eq("model", FLUE_GAS_MONITOR)))


def _stack_windows(field: str, periods: Sequence[str], pollutant: str | None = None) -> Pipeline:
    """One field of the chosen stack's windows of ``periods`` (of one pollutant, or all)."""
    chosen = [eq("site", SITE)] + ([] if pollutant is None else [eq("pollutant", pollutant)])
    return _dashboard().then(
        filter_(all_of(eq("_measurement", AGGREGATE), eq("_field", field))),
        filter_(all_of(*chosen, one_of("period", periods))),
    )


def stack_corrected_against_limits(pollutant: str, limits: Sequence[Mapping[str, Value]]) -> str:
    """The chosen stack's corrected hourly means of ``pollutant`` (the values judged) and its
    hourly limit as a flat line. ``limits``: rows of site, pollutant, bound, limit, unit and
    source, as for :func:`readings_against_limits`."""
    data = _stack_windows("corrected", ["hour"], pollutant).then(
        map_('_time: r._time, _value: r._value, series: "折算浓度 " + r.device'),
        group(["series"]),
    )
    return _with_limit_line(data, limits, pollutant, '"限值 (" + r.source + ")"')


def stack_measured_hours(pollutant: str) -> str:
    """The chosen stack's measured (uncorrected) hourly means of ``pollutant``."""
    return str(
        _stack_windows("mean", ["hour"], pollutant).then(
            map_('_time: r._time, _value: r._value, series: "实测浓度 " + r.device'),
            group(["series"]),
        )
    )


def stack_reported_against_corrected(pollutant: str) -> str:
    """The CEMS's own corrected values of ``pollutant`` (``zs``, per minute) beside the
    platform's corrected minute means: where the two part, one of them is wrong."""
    platform = _stack_windows("corrected", ["minute"], pollutant).then(
        map_('_time: r._time, _value: r._value, series: "平台折算 " + r.device')
    )
    # The minute's start, as the platform's minute points are stamped.
    reported = (
        _dashboard()
        .then(
            filter_(all_of(eq("_measurement", READING), eq("_field", "zs"))),
            filter_(all_of(eq("site", SITE), eq("pollutant", pollutant))),
            aggregate_window(timedelta(minutes=1), "mean", time_src="_start"),
        )
        .then(map_('_time: r._time, _value: r._value, series: "设备折算 ZsRtd " + r.device'))
    )
    return script(
        f"platform = {platform}",
        f"reported = {reported}",
        f"{union(['platform', 'reported'])} |> {group(['series'])} |> {sort(['_time'])}",
    )


def stack_oxygen() -> str:
    """The chosen stack's hourly mean O2 (what its concentrations were corrected with) and
    the reference O2 they were corrected to, as the worker recorded them."""
    label = '(if r._field == "o2" then "烟气含氧量 (小时均值)" else "基准氧含量")'
    return str(
        _dashboard()
        .then(
            filter_(
                all_of(eq("_measurement", AGGREGATE), one_of("_field", ["o2", "o2_reference"]))
            ),
            filter_(all_of(eq("site", SITE), eq("period", "hour"))),
        )
        .note("Every concentration of an hour carries the same two: one row per hour each.")
        .then(
            group(["_field"]),
            unique("_time"),
            map_(f"_time: r._time, _value: r._value,\n      series: {label}"),
            group(["series"]),
            sort(["_time"]),
        )
    )


def stack_hourly_emissions(names: Mapping[str, str]) -> str:
    """The chosen stack's emission per hour (kg), per pollutant (``names``: code → name)."""
    return script(
        'import "dict"',
        dict_from_list("names", names),
        _stack_windows("emission_kg", ["hour"]).then(
            map_(f"_time: r._time, _value: r._value,\n      series: {_NAME}"),
            group(["series"]),
        ),
    )


def stack_daily_emissions(names: Mapping[str, str]) -> str:
    """The chosen stack's closed days of the last 30: a row per day, a column per pollutant
    (kg, its hours' sum)."""
    days = from_(DASHBOARD_BUCKET, DAILY_LOOKBACK, RANGE_STOP).then(
        filter_(all_of(eq("_measurement", AGGREGATE), eq("_field", "emission_kg"))),
        filter_(all_of(eq("site", SITE), eq("period", "day"))),
        map_(f"_time: r._time, _value: r._value,\n      pollutant: {_NAME}"),
        group(),
        pivot(["_time"], ["pollutant"], "_value"),
        sort(["_time"], desc=True),
    )
    return script('import "dict"', dict_from_list("names", names), days)


def stack_standard_dry_flow() -> str:
    """The chosen stack's standard dry flow (m³/h), minute and hourly means."""
    label = 'if r.period == "hour" then "小时均值 " else "分钟均值 "'
    return str(
        _stack_windows("mean", ["minute", "hour"], STANDARD_DRY_FLOW).then(
            map_(f"_time: r._time, _value: r._value,\n      series: ({label}) + r.device"),
            group(["series"]),
        )
    )


def _aqi() -> Pipeline:
    return _dashboard().then(filter_(all_of(eq("_measurement", AQI), eq("_field", "aqi"))))


def aqi_over_time() -> str:
    """Each station's highest real-time AQI per interval."""
    return str(
        _aqi().then(
            aggregate_window(WINDOW_PERIOD, "max"),
            map_("_time: r._time, _value: r._value, site: r.site"),
            group(["site"]),
        )
    )


def aqi_now() -> str:
    """Each station's latest real-time AQI."""
    return str(
        _aqi().then(last(), map_("_time: r._time, _value: r._value, site: r.site"), group(["site"]))
    )


def aqi_table() -> str:
    """Each station's latest AQI, category and primary pollutant, the highest AQI first."""
    return str(
        _dashboard().then(
            filter_(eq("_measurement", AQI)),
            filter_(one_of("_field", ["aqi", "category", "primary"])),
            last(),
            pivot(["_time", "site", "device", "standard"], ["_field"], "_value"),
            group(),
            keep(["_time", "site", "standard", "aqi", "category", "primary"]),
            sort(["aqi"], desc=True),
        )
    )


def iaqi_over_time() -> str:
    """The highest IAQI of each pollutant across stations, per interval."""
    return str(
        _dashboard().then(
            filter_(all_of(eq("_measurement", AQI), matches("_field", "^iaqi_"))),
            group(["_field"]),
            aggregate_window(WINDOW_PERIOD, "max"),
        )
    )


def _case_events(start: Time = RANGE_START) -> Pipeline:
    return _dashboard(start).then(
        filter_(all_of(eq("_measurement", CASE_EVENT), eq("_field", "case")))
    )


def case_events_over_time(kinds: Sequence[str]) -> str:
    """Case events of ``kinds`` per interval, per kind."""
    return str(
        _case_events().then(
            filter_(one_of("kind", kinds)),
            group(["kind"]),
            aggregate_window(WINDOW_PERIOD, "count"),
        )
    )


def case_events_per_grid(grids: Mapping[str, str], kinds: Sequence[str]) -> str:
    """Case events of ``kinds`` in the time range, a row per grid (``grids``: site → grid)."""
    return script(
        'import "dict"',
        dict_from_list("grids", grids),
        _case_events().then(
            filter_(one_of("kind", kinds)),
            map_(f"r with grid: {_NO_GRID}"),
            group(["grid", "kind"]),
            count(),
            group(),
            pivot(["grid"], ["kind"], "_value"),
            sort(["grid"]),
        ),
    )


def open_cases_per_grid(grids: Mapping[str, str], open_statuses: Sequence[str]) -> str:
    """Cases whose latest event leaves them in one of ``open_statuses``, per grid and
    status, over the last 30 days."""
    return script(
        'import "dict"',
        dict_from_list("grids", grids),
        _case_events(CASES_LOOKBACK)
        .note("A case's status is that of its latest event.")
        .then(
            group(["_value"]),
            sort(["_time"]),
            last(),
            filter_(one_of("status", open_statuses)),
            map_(f"grid: {_NO_GRID},\n      status: r.status, case: r._value"),
            group(["grid", "status"]),
            count("case"),
            group(),
            pivot(["grid"], ["status"], "case"),
            sort(["grid"]),
        ),
    )


def case_trail(grids: Mapping[str, str]) -> str:
    """The latest case events with their grid, newest first."""
    return script(
        'import "dict"',
        dict_from_list("grids", grids),
        _dashboard()
        .then(filter_(eq("_measurement", CASE_EVENT)))
        .note(
            "Each case is its own series (its case_id tag), so the pivot keeps two cases stepped",
            "on one tick apart without case_id in the row key: points written before the tag have",
            "no such column, and a pivot whose row key names a missing column fails.",
        )
        .then(
            pivot(["_time", "site", "kind", "status"], ["_field"], "_value"),
            group(),
            map_(
                f"_time: r._time,\n      grid: {_NO_GRID}, site: r.site,"
                "\n      case: r.case, kind: r.kind, status: r.status, actor: r.actor,"
                "\n      detail: r.detail"
            ),
            sort(["_time"], desc=True),
            limit(200),
        ),
    )


def readings_per_second() -> str:
    """Readings stored per second, per model."""
    per_second = f"float(v: int(v: {WINDOW_PERIOD})) / 1000000000.0"
    return str(
        _dashboard()
        .then(filter_(all_of(eq("_measurement", READING), eq("_field", "value"))))
        .note("A reading is one point per pollutant: count one per (device, time).")
        .then(
            group(["device"]),
            unique("_time"),
            group(["model"]),
            aggregate_window(WINDOW_PERIOD, "count"),
            map_(f"r with _value: float(v: r._value) / ({per_second})"),
        )
    )


def flagged_values() -> str:
    """Values flagged other than N, per flag and interval."""
    flagged = all_of(eq("_measurement", READING), eq("_field", "flag"), ne("_value", "N"))
    return str(
        _dashboard().then(
            filter_(flagged),
            map_("r with flag: r._value, _value: 1"),
            group(["flag"]),
            aggregate_window(WINDOW_PERIOD, "sum"),
        )
    )


def findings_per_rule() -> str:
    """Findings that began, per rule and interval."""
    began = all_of(eq("_measurement", FINDING), eq("_field", "active"), eq("_value", True))
    return str(
        _dashboard().then(filter_(began), group(["rule"]), aggregate_window(WINDOW_PERIOD, "count"))
    )


def deliveries_per_status() -> str:
    """Attempts to reach a person, per status and interval."""
    return str(
        _dashboard().then(
            filter_(all_of(eq("_measurement", DELIVERY), eq("_field", "attempt"))),
            group(["status"]),
            aggregate_window(WINDOW_PERIOD, "count"),
        )
    )


def seconds_since_last_reading() -> str:
    """Each site's last reading and the seconds since, the longest first."""
    return str(
        _dashboard().then(
            filter_(all_of(eq("_measurement", READING), eq("_field", "value"))),
            group(["site"]),
            last(),
            map_(
                "site: r.site, last_reading: r._time,"
                "\n      _value: float(v: int(v: now()) - int(v: r._time)) / 1000000000.0"
            ),
            group(),
            sort(["_value"], desc=True),
        )
    )
