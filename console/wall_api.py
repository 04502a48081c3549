"""The wall's own endpoints, registered by the console's app (server.py).

``GET /api/wall``: the city's real-time AQI and how many sites stand in each status.

The city's AQI is not the mean of its stations' AQIs (HJ 663 / HJ 633): each pollutant's
concentration is averaged over the city's stations first (their latest valid values), and the
AQI is computed from those city means. An index averaged over stations would let a station
whose primary pollutant is PM2.5 and one whose is O3 hide each other. An offline station, or a
value not flagged N, is left out of the means, as HJ 663 leaves out invalid data.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ecowatch.config.catalogue import SiteKind
from ecowatch.console.core import AQI_COLOURS, STATUSES, City
from ecowatch.schema import DataFlag
from ecowatch.streams.judging.aqi import AQI_CODES, SO2, AqiPeriod, NoIaqiError, aqi

if TYPE_CHECKING:
    from ecowatch.console.server import Console


def city_means(city: City, shown: Collection[str] | None = None) -> tuple[dict[str, float], int]:
    """Each AQI pollutant's mean over the air stations' latest valid values (of ``shown``
    sites, None: every one), and how many stations gave any."""
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    stations = 0
    for sid, state in city.sites.items():
        if state.site.kind is not SiteKind.AIR_STATION or (shown is not None and sid not in shown):
            continue
        if state.status() == "offline":
            continue
        gave = False
        for code, v in state.values.items():
            if code in AQI_CODES and v["flag"] == DataFlag.NORMAL.value and v["value"] >= 0:
                sums[code] = sums.get(code, 0.0) + v["value"]
                counts[code] = counts.get(code, 0) + 1
                gave = True
        stations += gave
    return {code: sums[code] / counts[code] for code in sums}, stations


def city_aqi(city: City, shown: Collection[str] | None = None) -> dict[str, Any] | None:
    """The city's real-time AQI from the city-mean concentrations (None without any), with
    its category, colour, primary pollutants, the means, and the stations' range of AQIs."""
    means, stations = city_means(city, shown)
    if not means:
        return None
    try:
        result = aqi(means, AqiPeriod.HOUR, city.aqi_standard)
    except NoIaqiError:  # HJ 633-2012 SO2 above 800 without its 24h mean: as a station does
        means.pop(SO2.code, None)
        if not means:
            return None
        result = aqi(means, AqiPeriod.HOUR, city.aqi_standard)
    numbers = [
        s.aqi["aqi"]
        for sid, s in city.sites.items()
        if s.aqi is not None and (shown is None or sid in shown) and s.status() != "offline"
    ]
    return {
        "aqi": result.aqi,
        "category": result.category.value,
        "category_said": {"zh": result.category.name_zh, "en": result.category.label},
        "colour": AQI_COLOURS[result.category],
        "primary": result.primary,
        "means": {code: round(v, 1) for code, v in means.items()},
        "stations": stations,
        "station_min": min(numbers) if numbers else None,
        "station_max": max(numbers) if numbers else None,
    }


def status_counts(city: City, shown: Collection[str] | None = None) -> dict[str, int]:
    counts = dict.fromkeys(STATUSES, 0)
    for sid, state in city.sites.items():
        if shown is None or sid in shown:
            counts[state.status()] += 1
    return counts


def routes(console: Console) -> list[web.RouteDef]:
    async def wall(request: web.Request) -> web.StreamResponse:
        me = console.need(request)
        shown = (
            None
            if me.grids is None
            else {s.id for s in console.catalogue.sites.values() if me.sees(s.grid)}
        )
        return web.json_response(
            {
                "aqi": city_aqi(console.city, shown),
                "statuses": status_counts(console.city, shown),
                "data_now": console.city.data_now.isoformat() if console.city.data_now else None,
            }
        )

    return [web.get("/api/wall", wall)]
