"""A site's last hours from InfluxDB, for the desk's chart (the ``reading`` measurement)."""

from __future__ import annotations

from datetime import datetime, timedelta

from ecowatch.config.settings import Settings
from ecowatch.streams.storage import flux
from ecowatch.streams.storage.store import influx_client

POINTS_PER_SERIES = 1500  # a chart a few hundred pixels wide needs no more


def history_flux(bucket: str, site: str, start: datetime, stop: datetime) -> str:
    return flux.site_history(bucket, site, _whole(start), _whole(stop), POINTS_PER_SERIES)


def _whole(at: datetime) -> datetime:
    """To the second below: the chart asks for whole seconds."""
    return at.replace(microsecond=0)


def site_history(
    settings: Settings, site: str, start: datetime, stop: datetime
) -> tuple[dict[str, list[tuple[int, float]]], str | None]:
    """pollutant → [(epoch ms, value)] between ``start`` and ``stop``; and why not, if
    InfluxDB did not answer (the desk says so rather than showing an empty chart as data)."""
    series: dict[str, list[tuple[int, float]]] = {}
    query = history_flux(settings.influx_bucket, site, start, stop + timedelta(seconds=1))
    try:
        with influx_client(settings, 5000) as client:
            for table in client.query_api().query(query):
                for record in table.records:
                    code = record.values["pollutant"]
                    ms = int(record.get_time().timestamp() * 1000)
                    series.setdefault(code, []).append((ms, float(record.get_value())))
    except Exception as exc:  # the chart is empty, with the reason; the desk goes on
        return {}, f"InfluxDB at {settings.influx_url}: {type(exc).__name__}: {str(exc)[:160]}"
    for points in series.values():
        points.sort()
    return series, None
