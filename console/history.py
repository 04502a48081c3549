"""A site's last hours from InfluxDB, for the desk's chart: the ``reading`` measurement's raw
values, and for a stack its minute windows corrected to the reference oxygen (``aggregate``,
field ``corrected``): the series its limits are read against; the worker's hourly and daily
means (``aggregate``, period hour|day), which cases are judged on. And the worker's
``validity`` days, for the wall's and the desk's transmission-validity rates."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta

from ecowatch.clock import CHINA
from ecowatch.config.catalogue import Catalogue, DeviceModel
from ecowatch.config.settings import Settings
from ecowatch.console.validity import DayPoint
from ecowatch.measurements import AGGREGATE
from ecowatch.streams.judging.validity import Validity, day_period
from ecowatch.streams.storage import flux
from ecowatch.streams.storage.store import influx_client

# A minute's readings over the desk's longest window (48 h); the chart thins them to its width.
POINTS_PER_SERIES = 3000
MEAN_PERIODS = ("hour", "day")

# pollutant → [(window start in epoch ms, mean, valid)]; a stack's means are its corrected ones.
Means = dict[str, list[tuple[int, float, bool]]]

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


def means_flux(bucket: str, site: str, start: datetime, stop: datetime, field: str) -> str:
    """A site's hourly and daily windows starting in [start, stop): ``field`` (``mean``, or a
    stack's ``corrected``) and ``valid`` as columns of one row per window. Built from flux.py's
    escaping builders, as every query there is."""
    wanted = flux.all_of(
        flux.eq("_measurement", AGGREGATE),
        flux.eq("site", site),
        flux.one_of("period", MEAN_PERIODS),
        flux.one_of("_field", [field, "valid"]),
    )
    return str(
        flux.from_(bucket, _whole(start), _whole(stop)).then(
            flux.filter_(wanted),
            flux.pivot(["_time"], ["_field"], "_value"),
            flux.keep(["_time", "device", "pollutant", "period", field, "valid"]),
        )
    )


def site_means(
    settings: Settings,
    catalogue: Catalogue,
    site: str,
    start: datetime,
    stop: datetime,
    stack: bool,
) -> tuple[dict[str, Means], str | None]:
    """{"hour": Means, "day": Means} of the site's windows starting in [start, stop], from its
    analysers (a discharge meter's windows of the same pollutant would interleave with them);
    and why not, if InfluxDB did not answer."""
    field = "corrected" if stack else "mean"
    devices = catalogue.sites[site].devices
    analysers = {d.id for d in devices if d.model is not DeviceModel.DISCHARGE_METER}
    out: dict[str, Means] = {period: {} for period in MEAN_PERIODS}
    query = means_flux(settings.influx_bucket, site, start, stop + timedelta(seconds=1), field)
    try:
        with influx_client(settings, 5000) as client:
            for table in client.query_api().query(query):
                for record in table.records:
                    v = record.values
                    if v.get(field) is None or v.get("period") not in out:
                        continue
                    if analysers and v.get("device") not in analysers:
                        continue
                    ms = int(record.get_time().timestamp() * 1000)
                    row = (ms, float(v[field]), v.get("valid") is not False)
                    out[v["period"]].setdefault(v["pollutant"], []).append(row)
    except Exception as exc:  # the chart shows the raw values, and says why no means
        return {}, f"InfluxDB at {settings.influx_url}: {type(exc).__name__}: {str(exc)[:160]}"
    for means in out.values():
        for rows in means.values():
            rows.sort()
    return out, None


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
