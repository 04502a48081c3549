"""Writing points to InfluxDB: batched, retried while InfluxDB is away, never silently dropped.

A write either succeeds, fails for a while (InfluxDB down or overloaded: retry with back-off,
which holds the stream and so the Kafka offsets: nothing is committed that is not stored), or
is refused for good (a 4xx other than 429: the points are wrong, retrying cannot help; the
caller sends them to the dead-letter topic).
"""

from __future__ import annotations

import asyncio
import csv
import io
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING

from influxdb_client.client.exceptions import InfluxDBError
from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync
from influxdb_client.domain.dialect import Dialect
from influxdb_client.domain.write_precision import WritePrecision
from influxdb_client.rest import ApiException

from ecowatch.clock import CHINA
from ecowatch.edges.outage import Outage
from ecowatch.schema import DataFlag, MarkStatus, MarkType
from ecowatch.streams.judging.rules.rejudge import StoredReading, StoredValue
from ecowatch.streams.storage import flux

if TYPE_CHECKING:
    from influxdb_client import InfluxDBClient

    from ecowatch.config.settings import Settings

log = logging.getLogger(__name__)

# A batch is at most a few thousand points: an InfluxDB that has not answered in 10 s is hung
# (or stopped), and saying so soon is worth more than waiting longer on the same request.
WRITE_TIMEOUT_MS = 10_000


@dataclass(frozen=True)
class Backoff:
    """Delays between attempts: first, doubled each time, capped."""

    first: float = 0.5
    # One small request every 5 s costs an InfluxDB that is down nothing, and a longer wait
    # is only time the stream stands still after it is back (the drill measured 25 s to
    # recover from a 20 s outage with a 30 s cap).
    cap: float = 5.0

    def delay(self, attempt: int) -> float:
        return min(self.cap, self.first * (2 ** max(0, attempt - 1)))


class QueryError(Exception):
    """InfluxDB did not answer a query (away, overloaded, refused it)."""


class PermanentWriteError(Exception):
    """InfluxDB refused the data itself; retrying the same points cannot succeed."""


def is_transient(status: int | None) -> bool:
    """Worth retrying? No answer, 429 (slow down) and 5xx are; other 4xx mean bad points."""
    return status is None or status == 429 or status >= 500


class InfluxWriter:
    def __init__(
        self, url: str, token: str, org: str, bucket: str, backoff: Backoff = Backoff()
    ) -> None:
        self.url, self._token, self.org, self.bucket = url, token, org, bucket
        self._backoff = backoff
        self._client: InfluxDBClientAsync | None = None
        self.points_written = 0
        # One outage for every agent that shares this writer: said once, not per attempt.
        self.outage = Outage("InfluxDB", url)

    async def _client_of_loop(self) -> InfluxDBClientAsync:
        if self._client is None:
            # Created inside the running loop: the async client binds aiohttp to it.
            self._client = InfluxDBClientAsync(
                url=self.url, token=self._token, org=self.org, timeout=WRITE_TIMEOUT_MS
            )
        return self._client

    async def site_readings(
        self, site: str, devices: Iterable[str], start: datetime, stop: datetime
    ) -> dict[str, list[StoredReading]]:
        """The stored readings in [start, stop) of some of a site's devices, each device's in
        time order: what the hours of a site's late readings are judged again from, in one
        query for all of them.

        A day of a device's readings is thousands of rows: InfluxDB sends them unpivoted
        with only the columns used, as CSV without annotations, parsed here with ``csv``
        (the client's record objects and Flux's pivot were most of a re-judging's cost)."""
        wanted = set(devices)
        query = flux.site_readings(self.bucket, site, wanted, start, stop)
        client = await self._client_of_loop()
        text = await client.query_api().query_raw(query, org=self.org, dialect=_PLAIN_CSV)
        return readings_of_csv(text, wanted)

    async def case_counts(
        self, start: datetime, stop: datetime, kinds: Iterable[str]
    ) -> list[tuple[str, str, str, int]]:
        """(site, grid, kind, how many cases) of the ``case_event`` trail in [start, stop), for
        the weekly settlement: distinct case ids, so an event written twice (a batch judged
        again after a crash) counts once; ``grid`` a reassigned case's, else "". Raises
        :class:`QueryError` when InfluxDB does not answer."""
        text = await self._query_csv(flux.case_counts(self.bucket, start, stop, kinds))
        return grid_counts_of_csv(text)

    async def mark_counts(self, start: datetime, stop: datetime) -> list[tuple[str, str, int]]:
        """(site, kind, how many marks) of the ``mark`` trail in [start, stop), for the weekly
        settlement. Raises :class:`QueryError` when InfluxDB does not answer."""
        return counts_of_csv(await self._query_csv(flux.mark_counts(self.bucket, start, stop)))

    async def validity_counts(
        self, start: datetime, stop: datetime
    ) -> dict[tuple[str, str, str, date], tuple[int, int]]:
        """(site, device, pollutant, China day) → (received, valid) of the worker's closed
        days in [start, stop), for the weekly settlement's rates."""
        text = await self._query_csv(flux.validity_days(self.bucket, start, stop))
        out: dict[tuple[str, str, str, date], tuple[int, int]] = {}
        col: dict[str, int] = {}
        for row in csv.reader(io.StringIO(text)):
            if "_time" in row and "site" in row:
                col = {name: i for i, name in enumerate(row)}
                continue
            if col and len(row) == len(col):
                day = datetime.fromisoformat(row[col["_time"]]).astimezone(CHINA).date()
                key = (row[col["site"]], row[col["device"]], row[col["pollutant"]], day)
                out[key] = (int(row[col["received"]] or 0), int(row[col["valid"]] or 0))
        return out

    async def _query_csv(self, query: str) -> str:
        try:
            client = await self._client_of_loop()
            text = await client.query_api().query_raw(query, org=self.org, dialect=_PLAIN_CSV)
        except (ApiException, InfluxDBError, TimeoutError, OSError) as exc:
            raise QueryError(f"InfluxDB at {self.url} did not answer: {exc}") from exc
        except Exception as exc:  # aiohttp's client errors are not OSErrors
            if type(exc).__module__.startswith("aiohttp"):
                raise QueryError(f"InfluxDB at {self.url} did not answer: {exc}") from exc
            raise
        return text

    async def _write_api(self):
        return (await self._client_of_loop()).write_api()

    async def write(self, lines: str, count: int) -> None:
        """Write line protocol; retries transient failures until it succeeds. An outage is
        one line when it starts and one when it ends, however many attempts it takes."""
        attempt = 0
        while True:
            attempt += 1
            try:
                api = await self._write_api()
                await api.write(
                    bucket=self.bucket,
                    org=self.org,
                    record=lines,
                    write_precision=WritePrecision.MS,
                )
                self.points_written += count
                back = self.outage.up()
                if back:
                    log.warning(back)
                return
            except ApiException as exc:
                status = exc.status or None  # 0: no answer at all
                if not is_transient(status):
                    raise PermanentWriteError(
                        f"InfluxDB answered {status}: {exc.body or exc.reason}"
                    ) from exc
                reason = f"HTTP {status}: {exc.reason}" if status else str(exc.reason)
            except InfluxDBError as exc:
                status = exc.response.status if exc.response is not None else None
                if not is_transient(status):
                    raise PermanentWriteError(f"InfluxDB answered {status}: {exc.message}") from exc
                reason = f"HTTP {status}: {exc.message}"
            except TimeoutError:
                reason = f"no answer within {WRITE_TIMEOUT_MS / 1000:.0f} s"
            except OSError as exc:
                reason = f"{type(exc).__name__}: {exc}"
            except Exception as exc:  # aiohttp's client errors are not OSErrors
                if type(exc).__module__.startswith("aiohttp"):
                    reason = f"{type(exc).__name__}: {exc}"
                else:
                    raise
            delay = self._backoff.delay(attempt)
            down = self.outage.down(reason)
            if down:
                log.error("%s; the stream waits (`ecowatch stack status`)", down)
            log.debug(
                "InfluxDB write attempt %d failed (%s); next in %.1fs", attempt, reason, delay
            )
            await asyncio.sleep(delay)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None


_PLAIN_CSV = Dialect(header=True, annotations=[])


def readings_of_csv(text: str, devices: set[str]) -> dict[str, list[StoredReading]]:
    """Readings of ``devices`` from a Flux answer of ``_time``, ``_value``, ``_field`` (value
    or flag), ``device`` and ``pollutant`` columns, in plain CSV (a table may repeat the
    header): each device's in time order. A pollutant with no value is left out."""
    fields: dict[str, dict[str, dict[str, dict[str, str]]]] = {}
    col: dict[str, int] = {}
    for row in csv.reader(io.StringIO(text)):
        if len(row) < 2:
            continue  # the blank line between tables
        if "_time" in row and "_field" in row:
            col = {name: i for i, name in enumerate(row)}
            continue
        if not col:
            continue
        per_time = fields.setdefault(row[col["device"]], {}).setdefault(row[col["_time"]], {})
        per_time.setdefault(row[col["pollutant"]], {})[row[col["_field"]]] = row[col["_value"]]
    flags = {flag.value: flag for flag in DataFlag}
    out: dict[str, list[StoredReading]] = {}
    for device, times in fields.items():
        if device not in devices:
            continue
        readings = []
        for stamp, by_code in times.items():
            values = {
                code: StoredValue(float(f["value"]), flags[f.get("flag", "N")])
                for code, f in by_code.items()
                if "value" in f
            }
            if values:
                readings.append(StoredReading(device, datetime.fromisoformat(stamp), values))
        readings.sort(key=lambda r: r.ts)
        out[device] = readings
    return out


def counts_of_csv(text: str) -> list[tuple[str, str, int]]:
    """(site, kind, count) rows of a Flux answer with ``site``, ``kind`` and ``_value``
    columns, in plain CSV (a table may repeat the header)."""
    return [(site, kind, n) for site, _, kind, n in grid_counts_of_csv(text)]


def grid_counts_of_csv(text: str) -> list[tuple[str, str, str, int]]:
    """(site, grid, kind, count) rows of a Flux answer with ``site``, ``grid``, ``kind`` and
    ``_value`` columns, in plain CSV (a table may repeat the header); "" for a grid the answer
    leaves out."""
    out: list[tuple[str, str, str, int]] = []
    col: dict[str, int] = {}
    for row in csv.reader(io.StringIO(text)):
        if len(row) < 2:
            continue
        if "_value" in row and "site" in row:
            col = {name: i for i, name in enumerate(row)}
            continue
        if col:
            grid = row[col["grid"]] if "grid" in col else ""
            out.append((row[col["site"]], grid, row[col["kind"]], int(row[col["_value"]])))
    return out


def influx_client(settings: Settings, timeout_ms: int = 10_000) -> InfluxDBClient:
    """A synchronous client for the settings' InfluxDB (queries, deletes); close it after use
    (``with influx_client(settings) as client: ...``)."""
    from influxdb_client import InfluxDBClient

    return InfluxDBClient(
        url=settings.influx_url,
        token=settings.influx_token.get_secret_value(),
        org=settings.influx_org,
        timeout=timeout_ms,
    )


def reading_points_per_device(
    settings: Settings,
    start: datetime,
    stop: datetime | None = None,
    devices: Iterable[str] | None = None,
    timeout_ms: int = 30_000,
) -> dict[str, int]:
    """Reading points (value fields) per device in [start, stop): the evidence the demo, the
    benchmarks and the drills count. ``devices``: only theirs (a bench's own: any other
    device's readings dated in the window, a simulated city replaying the past, are not its
    points); their sum is every point of the window."""
    query = flux.reading_points_per_device(settings.influx_bucket, start, stop)
    with influx_client(settings, timeout_ms) as client:
        tables = client.query_api().query(query)
    counts = {str(r.values["device"]): int(r.get_value()) for t in tables for r in t.records}
    if devices is None:
        return counts
    return {d: counts.get(d, 0) for d in devices}


def daily_flag_counts(
    settings: Settings, start: datetime, stop: datetime, site: str | None = None
) -> dict[tuple[str, str, str, date], tuple[int, int]]:
    """(site, device, pollutant, China-time day) → (received, valid) readings in [start,
    stop), as InfluxDB holds them (after any resend)."""
    query = flux.daily_flag_counts(settings.influx_bucket, start, stop, site)
    out: dict[tuple[str, str, str, date], list[int]] = {}
    with influx_client(settings, 60_000) as client:
        for table in client.query_api().query(query):
            for r in table.records:
                day = r.get_time().astimezone(CHINA).date()
                key = (
                    str(r.values["site"]),
                    str(r.values["device"]),
                    str(r.values["pollutant"]),
                    day,
                )
                counts = out.setdefault(key, [0, 0])
                counts[0 if r.values["kind"] == "received" else 1] = int(r.get_value())
    return {key: (received, valid) for key, (received, valid) in out.items()}


def marks_as_they_stand(
    settings: Settings, start: datetime, stop: datetime, site: str | None = None
) -> list[tuple[str, str | None, MarkType, MarkStatus, datetime, datetime]]:
    """Each mark whose trail has a change in [start, stop), as its last change left it:
    (site, device or None for the whole site, type, status, start, end)."""
    query = flux.marks_as_they_stand(settings.influx_bucket, start, stop, site)
    out = []
    with influx_client(settings, 60_000) as client:
        for table in client.query_api().query(query):
            for r in table.records:
                v = r.values
                out.append(
                    (
                        str(v["site"]),
                        str(v["device"]) if v.get("device") else None,  # "": the site's
                        MarkType(v["type"]),
                        MarkStatus(v["status"]),
                        datetime.fromisoformat(str(v["start"])),
                        datetime.fromisoformat(str(v["end"])),
                    )
                )
    return out
