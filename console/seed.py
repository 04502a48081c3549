"""The city as it stands when the console starts: each device's latest reading from InfluxDB.

The Kafka feed reads readings from now on only, so without this a console started on a running
platform would show every site as "no data" until its next reading. The data's own clock
decides what "latest" means (a simulated city lives days in the past): the newest reading
stored sets data time, and each device's last reading within ``WINDOW`` of it is taken; a site
with nothing in that window stays "no data". The open cases come from the case API (the web
edge, with a caller's token) and the status topic, read from its start, says who is offline.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pydantic import ValidationError

from ecowatch.config.settings import Settings
from ecowatch.schema import Reading, ReadingSource
from ecowatch.streams.storage import flux
from ecowatch.streams.storage.store import influx_client

log = logging.getLogger(__name__)

WINDOW = timedelta(hours=2)  # of data time: older than this before the newest is not "now"
LOOK_BACK = timedelta(days=8)  # the ingest contract takes readings up to 7 days old
LOOK_AHEAD = timedelta(hours=1)  # and a few minutes ahead of the clock


@dataclass(frozen=True)
class Point:
    """One series' last point: a ``reading`` field of one pollutant of one device."""

    site: str
    device: str
    model: str
    pollutant: str
    field: str  # "value", "flag", or a CEMS's "zs"
    at: datetime
    value: object


def latest_flux(bucket: str, now: datetime) -> str:
    """The last point of every reading series within the ingest contract's reach of ``now``."""
    start = (now - LOOK_BACK).replace(microsecond=0)
    return flux.latest_readings(bucket, start, (now + LOOK_AHEAD).replace(microsecond=0))


def latest_readings(points: Iterable[Point], window: timedelta = WINDOW) -> list[Reading]:
    """Each device's last reading within ``window`` of the newest point, oldest first: the
    pollutants measured at the device's last time, with their flags."""
    kept = list(points)
    if not kept:
        return []
    newest = max(p.at for p in kept)
    devices: dict[tuple[str, str], list[Point]] = {}
    for p in kept:
        if p.at >= newest - window:
            devices.setdefault((p.site, p.device), []).append(p)
    readings: list[Reading] = []
    for (site, device), found in devices.items():
        times = [p.at for p in found if p.field == "value"]
        if not times:
            continue
        at = max(times)
        flags = {p.pollutant: str(p.value) for p in found if p.field == "flag" and p.at == at}
        # A stack's desk shows the CEMS's own corrected value beside the platform's.
        zs = {p.pollutant: {"zs": p.value} for p in found if p.field == "zs" and p.at == at}
        values = {
            p.pollutant: {"value": p.value, "flag": flags.get(p.pollutant, "N")}
            | zs.get(p.pollutant, {})
            for p in found
            if p.field == "value" and p.at == at
        }
        try:
            readings.append(
                Reading.model_validate(
                    {
                        "site": site,
                        "device": device,
                        "model": found[0].model,
                        "ts": at,
                        "values": values,
                        # Not shown anywhere: the seed has no transport of its own to name.
                        "source": ReadingSource.MQTT,
                        "received_at": at,
                    }
                )
            )
        except ValidationError as exc:  # stored before a schema change: the live feed will do
            log.debug("console: a stored reading of %s skipped: %s", device, exc)
    return sorted(readings, key=lambda r: r.ts)


def stored_latest(settings: Settings, now: datetime | None = None) -> list[Reading]:
    """The latest readings from InfluxDB (blocking: run it in a thread); [] if it does not
    answer, said once in the log (the map then fills as readings arrive)."""
    flux = latest_flux(settings.influx_bucket, now or datetime.now(UTC))
    points: list[Point] = []
    try:
        with influx_client(settings, 15_000) as client:
            for table in client.query_api().query(flux):
                for r in table.records:
                    v = r.values
                    points.append(
                        Point(
                            v.get("site", ""),
                            v.get("device", ""),
                            v.get("model", ""),
                            v.get("pollutant", ""),
                            r.get_field(),
                            r.get_time(),
                            r.get_value(),
                        )
                    )
    except Exception as exc:
        log.warning(
            "console: the latest readings were not read from InfluxDB at %s (%s: %.160s); "
            "the map fills as readings arrive",
            settings.influx_url,
            type(exc).__name__,
            exc,
        )
        return []
    return latest_readings(points)
