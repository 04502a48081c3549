"""The stack scenarios played on the demo heat plant's CEMS (S-STK-001, coal, ultra-low PM 10,
SO2 35, NOx 50 mg/m³ at 6 % O2) and judged by the pure engine (the replay): each raises the
finding the platform must raise. Simulated time, a reading a minute."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from statistics import mean
from typing import Any

import pytest

from ecowatch.clock import CHINA, ManualClock
from ecowatch.config.catalogue import Catalogue
from ecowatch.schema import DataFlag, DeviceReading, Reading, ReadingSource, Rule
from ecowatch.simulators.fleet import model_for
from ecowatch.simulators.scenarios import load_scenario
from ecowatch.streams.judging.flue_gas import corrected
from ecowatch.streams.judging.replay import Replay

SITE, DEVICE = "S-STK-001", "33080200G00001"
# Ten minutes before the hour: each scenario's windows open at 10m, on the hour (China time),
# so that whole hours fall inside them.
START = datetime(2026, 12, 1, 9, 50, tzinfo=CHINA)
HOUR = timedelta(hours=1)
OVER_LIMIT = {Rule.REALTIME_OVER_LIMIT, Rule.HOURLY_OVER_LIMIT, Rule.DAILY_OVER_LIMIT}
CONCENTRATIONS = {"a34013", "a21026", "a21002", "a21003", "a21004"}


@dataclass
class Played:
    readings: list[DeviceReading]
    findings: list[dict[str, Any]]  # as the replay gives them (JSON)

    def found(self, rule: Rule, pollutant: str | None = None, active: bool = True) -> list[dict]:
        return [
            f
            for f in self.findings
            if f["rule"] == rule
            and f["active"] is active
            and (pollutant is None or f["pollutant"] == pollutant)
        ]

    def hour_before(self, at: str) -> list[DeviceReading]:
        """The readings of the hour a window closing ``at`` averages."""
        end = datetime.fromisoformat(at)
        return [r for r in self.readings if end - HOUR <= r.ts < end]


def play(catalogue: Catalogue, name: str, hours: float = 5) -> Played:
    model = model_for(catalogue.device(DEVICE), 1, catalogue)
    clock = ManualClock(START)
    run = load_scenario(name).run({DEVICE: model}, clock)
    readings, lines = [], []
    while clock.now() < START + timedelta(hours=hours):
        run.tick()
        r = model.reading(clock.now())
        assert r is not None
        readings.append(r)
        reading = Reading(
            site=SITE,
            device=DEVICE,
            model=model.model,
            ts=r.ts,
            values=r.values,
            seq=r.seq,
            source=ReadingSource.MQTT,
            received_at=r.ts,
        )
        lines.append(reading.to_json().decode())
        clock.advance(timedelta(seconds=60))
    findings = [x for x in Replay(catalogue).feed(lines) if x["type"] == "finding"]
    assert all(f["site"] == SITE for f in findings)
    return Played(readings, findings)


def local_hm(at: str) -> str:
    return datetime.fromisoformat(at).astimezone(CHINA).strftime("%H:%M")


def hourly_mean(readings: list[DeviceReading], code: str) -> float:
    return mean(r.values[code].value for r in readings)


def assert_the_corrected_mean(finding: dict, hour: list[DeviceReading], code: str) -> None:
    """The hourly finding's value is the hour's mean concentration corrected with its mean O2
    to the coal unit's 6 % (HJ 75-2017): readings a minute apart, so the time-weighted mean
    is the plain mean of the hour's readings (o2_measured is rounded to 0.01 %)."""
    o2 = hourly_mean(hour, "a19001")
    assert finding["o2_reference"] == 6.0
    assert finding["o2_measured"] == pytest.approx(o2, abs=0.02)
    expected = corrected(hourly_mean(hour, code), o2, 6.0)
    assert finding["value"] == pytest.approx(expected, rel=1e-6)


def test_an_scr_upset_is_an_hourly_nox_exceedance_on_the_corrected_means(demo_city):
    played = play(demo_city, "stack-scr-upset")  # NOx ×1.6 from 10:00 to 12:00
    hourly = played.found(Rule.HOURLY_OVER_LIMIT)
    assert [(local_hm(f["at"]), f["pollutant"]) for f in hourly] == [
        ("11:00", "a21002"),
        ("12:00", "a21002"),
    ]
    for f in hourly:
        hour = played.hour_before(f["at"])
        assert_the_corrected_mean(f, hour, "a21002")
        assert 4.0 <= f["o2_measured"] <= 8.0
        assert f["value"] == pytest.approx(1.6 * 50, rel=0.1) and f["limit"] == 50.0
    early = played.found(Rule.REALTIME_OVER_LIMIT)[0]
    assert (local_hm(early["at"]), early["pollutant"]) == ("10:00", "a21002")
    assert early["value"] > 50 and early["o2_reference"] == 6.0 and early["o2_measured"]
    # Once the unit is denitrified again, both clear.
    assert played.found(Rule.HOURLY_OVER_LIMIT, "a21002", active=False)
    assert played.found(Rule.REALTIME_OVER_LIMIT, "a21002", active=False)


def test_dilution_does_not_hide_an_so2_exceedance_from_the_corrected_means(demo_city):
    played = play(demo_city, "stack-dilution")  # SO2 ×1.4 and O2 held at 14 %, 10:00–12:00
    hourly = played.found(Rule.HOURLY_OVER_LIMIT)
    assert [(local_hm(f["at"]), f["pollutant"]) for f in hourly] == [
        ("11:00", "a21026"),
        ("12:00", "a21026"),
    ]
    for f in hourly:
        hour = played.hour_before(f["at"])
        raw = [r.values["a21026"].value for r in hour]
        assert max(raw) < 35 and hourly_mean(hour, "a21026") < 35  # as measured: compliant
        assert_the_corrected_mean(f, hour, "a21026")
        assert f["value"] > 35 and f["o2_measured"] == pytest.approx(14, abs=0.3)


def test_a_cold_start_up_is_high_oxygen_and_not_judged_against_the_limits(demo_city):
    played = play(demo_city, "stack-startup")  # banked 09:50–10:00, starting 10:00–11:30
    begin, end = START + timedelta(minutes=10), START + timedelta(hours=1, minutes=40)
    high = played.found(Rule.HIGH_OXYGEN)[0]
    assert high["at"] == begin.isoformat() and high["pollutant"] == "a19001"
    assert high["value"] >= 19
    (cleared,) = played.found(Rule.HIGH_OXYGEN, active=False)
    assert cleared["at"] == end.isoformat()  # the first reading on load
    during = [f for f in played.findings if datetime.fromisoformat(f["at"]) <= end]
    assert not [f for f in during if f["rule"] in OVER_LIMIT]
    assert not [f for f in during if f["rule"] == Rule.CORRECTED_VALUE_MISMATCH]
    # The CEMS said nothing it could not: no corrected value near air's O2, every flag N.
    starting = [r for r in played.readings if begin <= r.ts < end]
    assert all(
        m.zs is None and m.flag is DataFlag.NORMAL for r in starting for m in r.values.values()
    )


def test_a_wrong_reference_is_a_mismatch_and_hides_no_nox_exceedance(demo_city):
    played = play(demo_city, "stack-wrong-reference")  # 9 % for 6 %, NOx ×1.15, 10:00–13:00
    mismatched = played.found(Rule.CORRECTED_VALUE_MISMATCH)
    assert {f["pollutant"] for f in mismatched} <= CONCENTRATIONS
    first = {f["pollutant"]: f for f in mismatched if local_hm(f["at"]) == "10:00"}
    assert {"a21026", "a21002", "a21003"} <= set(first)
    for f in first.values():
        # The device's (reported) is 12/15 of the platform's (value), at the same O2.
        assert f["reported"] == pytest.approx(f["value"] * 12 / 15, rel=0.01, abs=0.06)
        assert f["o2_reference"] == 6.0
    hourly = played.found(Rule.HOURLY_OVER_LIMIT)
    assert [(local_hm(f["at"]), f["pollutant"]) for f in hourly] == [
        ("11:00", "a21002"),
        ("12:00", "a21002"),
        ("13:00", "a21002"),
    ]
    for f in hourly:
        hour = played.hour_before(f["at"])
        assert_the_corrected_mean(f, hour, "a21002")
        assert f["value"] > 50
        # What the device's own corrected NOx says of the hour: compliant.
        assert mean(r.values["a21002"].zs for r in hour) < 50  # type: ignore[misc]
    # The right reference again at 13:00: the mismatches clear.
    assert {f["pollutant"] for f in played.found(Rule.CORRECTED_VALUE_MISMATCH, active=False)} >= {
        "a21026",
        "a21002",
        "a21003",
    }
