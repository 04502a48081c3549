"""`ecowatch report validity` on a month of readings in the real InfluxDB.

September 2025 of two outfalls, a reading a minute (what the demo city's devices owe), written
as the worker writes readings (the contract refuses readings over a week old, so a month of
the past is not sent through MQTT): S-OUT-032 all month but an hour off the network and half
an hour in maintenance; S-OUT-008 silent from the 27th. The report counts what InfluxDB holds
per China-time day, owes every day of the month, and flags the site under 90 %; once the
silent site's stop is marked (and accepted), its silent days are not owed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta

from influxdb_client.client.write_api import SYNCHRONOUS

from ecowatch.clock import CHINA
from ecowatch.config.catalogue import Catalogue
from ecowatch.config.settings import Settings
from ecowatch.schema import (
    DataFlag,
    Mark,
    MarkEvent,
    MarkEventKind,
    MarkStatus,
    MarkType,
    Measurement,
    Reading,
    ReadingSource,
)
from ecowatch.streams.storage.points import mark_line, reading_lines
from ecowatch.streams.storage.store import influx_client

MONTH = datetime(2025, 9, 1, tzinfo=CHINA)
MINUTES = 30 * 1440
HEALTHY, GAPPY = "S-OUT-032", "S-OUT-008"
OFF = range(9 * 1440 + 600, 9 * 1440 + 660)  # 10 September, 10:00–11:00: no readings
MAINTENANCE = range(14 * 1440 + 120, 14 * 1440 + 150)  # 15 September, 02:00–02:30: M
SILENT_FROM = 26 * 1440  # 27 September, 00:00 China time


def month_of_readings(catalogue: Catalogue, site: str, skip: range, flagged: range, until: int):
    [device] = catalogue.sites[site].devices
    for minute in range(until):
        if minute in skip:
            continue
        flag = DataFlag.MAINTENANCE if minute in flagged else DataFlag.NORMAL
        at = MONTH + timedelta(minutes=minute)
        yield Reading(
            site=site,
            device=device.id,
            model=device.model.value,
            ts=at,
            values={code: Measurement(value=7.0, flag=flag) for code in device.pollutants},
            source=ReadingSource.MQTT,
            received_at=at,
        )


def write(settings: Settings, readings) -> None:
    lines: list[str] = []
    with influx_client(settings, 120_000) as client:
        writer = client.write_api(write_options=SYNCHRONOUS)
        for r in readings:
            lines += reading_lines(r)
            if len(lines) >= 50_000:
                writer.write(bucket=settings.influx_bucket, record=lines, write_precision="ms")
                lines = []
        writer.write(bucket=settings.influx_bucket, record=lines, write_precision="ms")


def report_validity(*options: str) -> subprocess.CompletedProcess[str]:
    september = ("--from", "2025-09-01", "--to", "2025-09-30")
    return subprocess.run(
        [sys.executable, "-m", "ecowatch.cli", "report", "validity", *september, *options],
        capture_output=True,
        text=True,
        timeout=120,
        env=os.environ.copy(),
    )


def test_a_month_with_gaps_gives_each_site_its_rates_and_flags_the_one_under_90(
    settings: Settings, demo_city: Catalogue
) -> None:
    catalogue = demo_city  # what the command reads: the test session's processes run it
    write(settings, month_of_readings(catalogue, HEALTHY, OFF, MAINTENANCE, MINUTES))
    write(settings, month_of_readings(catalogue, GAPPY, range(0), range(0), SILENT_FROM))
    done = report_validity("--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    sites = {s["site"]: s for s in report["sites"]}
    assert len(sites) == len(catalogue.sites)  # every site owes its month, data or not

    healthy = sites[HEALTHY]
    for device in healthy["devices"]:
        assert (device["expected"], device["received"], device["valid"]) == (
            MINUTES,
            MINUTES - 60,
            MINUTES - 90,
        ), device
        days = {d["day"]: d for d in device["days"]}
        assert len(days) == 30 and days["2025-09-01"]["transmission_validity_rate"] == 1.0
        assert days["2025-09-10"]["received"] == 1440 - 60
        assert (days["2025-09-15"]["received"], days["2025-09-15"]["valid"]) == (1440, 1410)
    assert healthy["transmission_validity_rate"] == round((MINUTES - 90) / MINUTES, 4)
    assert not healthy["below"]

    gappy = sites[GAPPY]
    for device in gappy["devices"]:
        assert (device["received"], device["valid"]) == (SILENT_FROM, SILENT_FROM), device
        assert [d["received"] for d in device["days"][26:]] == [0, 0, 0, 0]
    assert gappy["transmission_rate"] == round(26 / 30, 4) and gappy["validity_rate"] == 1.0
    assert gappy["below"]
    # The other sites sent nothing that month: they owed it all the same.
    others = [s for s in sites.values() if s["site"] not in (HEALTHY, GAPPY)]
    assert all(s["received"] == 0 and s["below"] for s in others)

    # The gappy site's enterprise marked its production stopped from the 27th (accepted): the
    # four silent days are not owed, and the site is whole.
    stop = Mark(
        id="M-202509270000-stopped",
        site=GAPPY,
        type=MarkType.PRODUCTION_STOPPED,
        start=MONTH + timedelta(days=26),
        end=MONTH + timedelta(days=30),
        reason="停产检修",
        made_by="enterprise:E-008",
        made_at=MONTH + timedelta(days=26, hours=2),
        status=MarkStatus.ACCEPTED,
        reviewed_by="O-KC-01",
        reviewed_at=MONTH + timedelta(days=27),
    )
    accepted = MarkEvent(
        kind=MarkEventKind.ACCEPTED, mark=stop, actor="O-KC-01", at=stop.reviewed_at
    )
    with influx_client(settings) as client:
        client.write_api(write_options=SYNCHRONOUS).write(
            bucket=settings.influx_bucket, record=mark_line(accepted), write_precision="ms"
        )
    marked = report_validity("--json", "--site", GAPPY)
    assert marked.returncode == 0, marked.stderr
    [site] = json.loads(marked.stdout)["sites"]
    assert site["expected"] == site["received"] == len(site["devices"]) * SILENT_FROM
    assert site["transmission_validity_rate"] == 1.0 and not site["below"]
    with influx_client(settings) as client:  # the trail back as it was, for the table below
        client.delete_api().delete(
            MONTH - timedelta(days=1),
            MONTH + timedelta(days=40),
            f'_measurement="mark" AND site="{GAPPY}"',
            bucket=settings.influx_bucket,
            org=settings.influx_org,
        )

    # The table says the same, the gappy site flagged.
    text = report_validity("--site", GAPPY)
    assert text.returncode == 0, text.stderr
    [site_line] = [line for line in text.stdout.splitlines() if "(site)" in line]
    assert "86.67%" in site_line and "BELOW 90%" in site_line, text.stdout
