"""A site's last hours from InfluxDB, for the desk's chart (the ``reading`` measurement)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ecowatch.config.settings import Settings
from ecowatch.measurements import READING
from ecowatch.streams.storage.store import influx_client

POINTS_PER_SERIES = 1500  # a chart a few hundred pixels wide needs no more


def history_flux(bucket: str, site: str, start: datetime, stop: datetime) -> str:
    # The outfall monitor's analysers are the chart's; a discharge meter at the same outfall
    # measures the same pollutants and would zigzag one line between two instruments.
    return (
        f'from(bucket: "{bucket}") |> range(start: {rfc3339(start)}, stop: {rfc3339(stop)})'
        f' |> filter(fn: (r) => r._measurement == "{READING}" and r.site == "{site}"'
        f' and r._field == "value" and r.model != "discharge_meter")'
        f' |> keep(columns: ["_time", "_value", "pollutant"])'
        f" |> tail(n: {POINTS_PER_SERIES})"
    )


def rfc3339(at: datetime) -> str:
    """A time as Flux writes one (UTC, whole seconds)."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def site_history(
    settings: Settings, site: str, start: datetime, stop: datetime
) -> tuple[dict[str, list[tuple[int, float]]], str | None]:
    """pollutant → [(epoch ms, value)] between ``start`` and ``stop``; and why not, if
    InfluxDB did not answer (the desk says so rather than showing an empty chart as data)."""
    series: dict[str, list[tuple[int, float]]] = {}
    # The site id comes from the catalogue (identifiers only), never from the caller's text.
    flux = history_flux(settings.influx_bucket, site, start, stop + timedelta(seconds=1))
    try:
        with influx_client(settings, 5000) as client:
            for table in client.query_api().query(flux):
                for record in table.records:
                    code = record.values["pollutant"]
                    ms = int(record.get_time().timestamp() * 1000)
                    series.setdefault(code, []).append((ms, float(record.get_value())))
    except Exception as exc:  # the chart is empty, with the reason; the desk goes on
        return {}, f"InfluxDB at {settings.influx_url}: {type(exc).__name__}: {str(exc)[:160]}"
    for points in series.values():
        points.sort()
    return series, None
