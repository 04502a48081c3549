"""Transmission and validity rates (streams/judging/validity.py), on the Ministry's worked
example and a replayed day with gaps."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from ecowatch.clock import CHINA
from ecowatch.config.catalogue import Catalogue
from ecowatch.schema import MarkStatus, MarkType, Reading, ReadingSource
from ecowatch.streams.judging.marks import stopped_by_device
from ecowatch.streams.judging.replay import Replay
from ecowatch.streams.judging.validity import (
    Validity,
    counted,
    day_period,
    days_of,
    expected_values,
    month_period,
    site_rates,
)
from tests.factories import reading

MINUTE = timedelta(minutes=1)


def test_the_ministry_s_example() -> None:
    v = Validity(expected=120, received=114, valid=110)
    assert v.transmission_rate == 0.95
    assert v.validity_rate == pytest.approx(0.9649, abs=1e-4)
    assert v.transmission_validity_rate == pytest.approx(0.9167, abs=1e-4)


def test_a_rate_is_at_most_whole_and_none_when_nothing_was_owed() -> None:
    assert Validity(100, 130, 125).transmission_rate == 1.0  # reporting faster than owed
    assert Validity(100, 130, 125).transmission_validity_rate == 1.0
    wholly_stopped = Validity(0, 0, 0)
    assert wholly_stopped.rates() == {
        "transmission_rate": None,
        "validity_rate": None,
        "transmission_validity_rate": None,
    }
    assert Validity(10, 0, 0).validity_rate is None and Validity(10, 0, 0).transmission_rate == 0
    assert Validity(1, 2, 3) + Validity(10, 20, 30) == Validity(11, 22, 33)


def test_a_day_owes_1440_minutes_less_its_stopped_time() -> None:
    day = day_period(date(2026, 11, 23))
    assert day[0] == datetime(2026, 11, 23, tzinfo=CHINA) and day[1] - day[0] == timedelta(days=1)
    assert expected_values(day, MINUTE) == 1440
    assert expected_values(day, timedelta(hours=1)) == 24
    stopped = (day[0] + timedelta(hours=2), day[0] + timedelta(hours=5))
    overlapping = (day[0] + timedelta(hours=4), day[0] + timedelta(hours=6))
    before = (day[0] - timedelta(days=3), day[0] + timedelta(hours=1))
    assert expected_values(day, MINUTE, [stopped]) == 1440 - 180
    assert expected_values(day, MINUTE, [stopped, overlapping]) == 1440 - 240  # once
    assert expected_values(day, MINUTE, [before]) == 1440 - 60
    assert expected_values(day, MINUTE, [(day[0] - timedelta(days=1), day[1])]) == 0


def test_months_and_their_days() -> None:
    february = month_period(2026, 2)
    assert expected_values(february, MINUTE) == 28 * 1440
    assert len(days_of(february)) == 28 and days_of(february)[0] == date(2026, 2, 1)
    assert counted({"N": 1350, "M": 30, "D": 0}) == (1380, 1350)


def test_a_replayed_day_with_a_gap_and_maintenance_prints_its_rates(catalogue: Catalogue) -> None:
    """S-OUT-001's monitor every minute of 23 November (China time), silent 01:00–02:00 and in
    maintenance (M) 10:00–10:30; the first reading of the 24th closes the day."""
    site, device = "S-OUT-001", "33080200000001"
    start = datetime(2026, 11, 23, tzinfo=CHINA)
    lines = []
    for i in range(1441):
        at = start + i * MINUTE
        if 60 <= i < 120:
            continue  # off the network for an hour
        flag = "M" if 600 <= i < 630 else "N"
        values = {"w01018": (40.0 + i % 7, flag), "w00000": (30.0, flag), "w21003": 2.0}
        r = reading(values, at, site, device)
        lines.append(r.model_copy(update={"source": ReadingSource.MQTT}).to_json().decode())
    out = [x for x in Replay(catalogue).feed(lines) if x["type"] == "validity"]
    by_code = {x["pollutant"]: x for x in out}
    assert set(by_code) == set(catalogue.device(device).device.pollutants) & {  # type: ignore[union-attr]
        "w01018",
        "w00000",
        "w21003",
    }
    cod = by_code["w01018"]
    assert (cod["site"], cod["device"], cod["day"]) == (site, device, "2026-11-23")
    assert (cod["expected"], cod["received"], cod["valid"]) == (1440, 1380, 1350)
    assert cod["transmission_rate"] == pytest.approx(1380 / 1440, abs=1e-4)
    assert cod["validity_rate"] == pytest.approx(1350 / 1380, abs=1e-4)
    assert cod["transmission_validity_rate"] == pytest.approx(1350 / 1440, abs=1e-4)
    nh3 = by_code["w21003"]  # never in maintenance: every value that came is valid
    assert (nh3["received"], nh3["valid"]) == (1380, 1380)
    assert isinstance(Reading.model_validate_json(lines[0]), Reading)


def test_a_site_s_rates_over_days_count_a_silent_day_as_owed(catalogue: Catalogue) -> None:
    site, device = "S-OUT-001", "33080200000001"
    days = [date(2026, 11, 23), date(2026, 11, 24)]
    codes = catalogue.device(device).device.pollutants  # type: ignore[union-attr]
    # The first day all but an hour, the second nothing at all (the device was off).
    counts = {(site, device, code, days[0]): (1380, 1350) for code in codes}
    [rates] = site_rates(catalogue, counts, days, site)
    assert rates.site == site and {d.pollutant for d in rates.devices} == set(codes)
    cod = next(d for d in rates.devices if d.pollutant == "w01018")
    assert [v for _, v in cod.days] == [Validity(1440, 1380, 1350), Validity(1440, 0, 0)]
    assert cod.total == Validity(2880, 1380, 1350)
    # The site: every pollutant of every device it has, each owing its two days.
    owed = sum(len(d.pollutants) for d in catalogue.sites[site].devices) * 2 * 1440
    assert rates.total == Validity(owed, 1380 * len(codes), 1350 * len(codes))
    assert rates.total.transmission_validity_rate == round(1350 * len(codes) / owed, 4)
    rate = rates.total.transmission_validity_rate
    assert rate is not None and rates.below(rate + 0.01) and not rates.below(rate)
    every_site = site_rates(catalogue, counts, days, None)
    assert len(every_site) == len(catalogue.sites)
    assert all(not s.below(0.9) or s.total.valid == 0 for s in every_site if s.site != site)


def test_time_marked_stopped_is_not_owed_in_the_report(catalogue: Catalogue) -> None:
    """Marks as their trail stands: a site-wide stop accepted, a device's stop rejected, a
    fault (not a stop): only the first leaves the days it covers unowed."""
    site, monitor = "S-OUT-001", "33080200000001"
    day = date(2026, 11, 23)
    start, end = day_period(day)
    rows = [
        (
            site,
            None,
            MarkType.PRODUCTION_STOPPED,
            MarkStatus.ACCEPTED,
            start + timedelta(hours=12),
            end,
        ),
        ("S-OUT-002", "33080200000002", MarkType.OUT_OF_OPERATION, MarkStatus.REJECTED, start, end),
        ("S-OUT-002", "33080200000002", MarkType.FAULT, MarkStatus.ACCEPTED, start, end),
    ]
    stopped = stopped_by_device(rows, catalogue)
    assert set(stopped) == {(site, monitor), (site, "33080200M00001")}  # both of its devices
    [one, two] = site_rates(catalogue, {}, [day], None, stopped)[3:5]
    assert (one.site, one.total.expected) == (site, 7 * 720)  # half a day owed
    assert (two.site, two.total.expected) == ("S-OUT-002", 4 * 1440)  # owed whole
