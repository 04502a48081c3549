"""A site's last hours from InfluxDB, for the desk's chart: the ``reading`` measurement's raw
values, and for a stack its minute windows corrected to the reference oxygen (``aggregate``,
field ``corrected``): the series its limits are read against. And the worker's ``validity``
days, for the wall's and the desk's transmission-validity rates."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta

from ecowatch.clock import CHINA
from ecowatch.config.settings import Settings
from ecowatch.console.validity import DayPoint
from ecowatch.streams.judging.validity import Validity, day_period
from ecowatch.streams.storage import flux
from ecowatch.streams.storage.store import influx_client

POINTS_PER_SERIES = 1500  # a chart a few hundred pixels wide needs no more

Series = dict[str, list[tuple[int, float]]]  # pollutant → [(epoch ms, value)]


def history_flux(bucket: str, site: str, start: datetime, stop: datetime) -> str:
    return flux.site_history(bucket, site, _whole(start), _whole(stop), POINTS_PER_SERIES)


def corrected_flux(bucket: str, site: str, start: datetime, stop: datetime) -> str:
    return flux.site_corrected_history(bucket, site, _whole(start), _whole(stop), POINTS_PER_SERIES)


def _whole(at: datetime) -> datetime:
    """To the second below: the chart asks for whole seconds."""
    return at.replace(microsecond=0)


def site_history(
    settings: Settings, site: str, start: datetime, stop: datetime
) -> tuple[Series, str | None]:
    """pollutant → [(epoch ms, value)] between ``start`` and ``stop``; and why not, if
    InfluxDB did not answer (the desk says so rather than showing an empty chart as data)."""
    return _series(settings, history_flux, site, start, stop)


def site_corrected_history(
    settings: Settings, site: str, start: datetime, stop: datetime
) -> tuple[Series, str | None]:
    """A stack's corrected minute means (折算浓度), as :func:`site_history` gives raw values."""
    return _series(settings, corrected_flux, site, start, stop)


def _series(
    settings: Settings,
    query_of: Callable[[str, str, datetime, datetime], str],
    site: str,
    start: datetime,
    stop: datetime,
) -> tuple[Series, str | None]:
    series: Series = {}
    query = query_of(settings.influx_bucket, site, start, stop + timedelta(seconds=1))
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


def validity_flux(bucket: str, days: tuple[date, ...], site: str | None = None) -> str:
    """The ``validity`` points of ``days`` (consecutive, oldest first): each stamped at its
    day's start, China midnight."""
    return flux.validity_days(bucket, day_period(days[0])[0], day_period(days[-1])[1], site)


def stored_validity(
    settings: Settings, days: tuple[date, ...], site: str | None = None
) -> tuple[list[DayPoint], str | None]:
    """The worker's ``validity`` points of ``days`` (every site's, or one's); and why not, if
    InfluxDB did not answer (the screens say so rather than show no rate as data)."""
    points: list[DayPoint] = []
    try:
        with influx_client(settings, 15_000) as client:
            for table in client.query_api().query(
                validity_flux(settings.influx_bucket, days, site)
            ):
                for r in table.records:
                    v = r.values
                    counts = Validity(
                        int(v.get("expected") or 0),
                        int(v.get("received") or 0),
                        int(v.get("valid") or 0),
                    )
                    day = r.get_time().astimezone(CHINA).date()
                    points.append(DayPoint(v["site"], v["device"], v["pollutant"], day, counts))
    except Exception as exc:  # the panel says why it has no rate; the console goes on
        return [], f"InfluxDB at {settings.influx_url}: {type(exc).__name__}: {str(exc)[:160]}"
    return points, None
