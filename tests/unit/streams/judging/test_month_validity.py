"""A site's month of transmission and validity (rules/validity.py): judged when the month is
over, on what its devices owed since counting began, as a finding that reminds."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from ecowatch.alerts.templates import render
from ecowatch.clock import CHINA
from ecowatch.config.catalogue import Catalogue
from ecowatch.schema import Notification, Rule
from ecowatch.streams.judging.replay import Replay
from ecowatch.streams.judging.rules import RuleParams, SiteJudge, SiteTick
from tests.factories import reading
from tests.unit.streams.judging.test_rules import of

SITE, DEVICE = "S-OUT-005", "33082500000005"  # one outfall monitor, no permit, no meter
START = datetime(2026, 11, 28, tzinfo=CHINA)  # the site's first reading: counting starts here
DECEMBER = datetime(2026, 12, 1, tzinfo=CHINA)
MINUTE = timedelta(minutes=1)


def minutes(skip: range, flagged: range = range(0)):
    """Every minute from 28 November to the end of the month, but ``skip``; ``flagged`` in
    maintenance (M)."""
    for i in range(3 * 1440):
        if i in skip:
            continue
        flag = "M" if i in flagged else "N"
        values = {"w00000": (30.0, flag), "w01018": (40.0 + i % 5, flag), "w21003": (2.0, flag)}
        values["w01001"] = (7.0 + i % 3 / 10, flag)
        yield reading(values, START + i * MINUTE, SITE, DEVICE)


def month_found(judge: SiteJudge, readings, then) -> list:
    state, found = None, []
    for r in readings:
        judged = judge.judge(state, r)
        state, found = judged.state, found + judged.findings
    judged = judge.judge(state, then)
    return of(found + judged.findings, Rule.LOW_TRANSMISSION_VALIDITY)


def test_the_site_s_device_and_pollutants_are_what_the_test_assumes(catalogue: Catalogue) -> None:
    [device] = catalogue.sites[SITE].devices
    assert device.id == DEVICE and sorted(device.pollutants) == [
        "w00000",
        "w01001",
        "w01018",
        "w21003",
    ]
    assert device.reports_every == MINUTE


def test_a_month_with_half_a_day_missing_is_under_90_and_found(catalogue: Catalogue) -> None:
    judge = SiteJudge(catalogue)
    # Silent from noon to midnight of the 29th: 3,600 of the 4,320 minutes owed since the
    # 28th (83.33 %), found at the first tick of December (nothing closed the 30th: the
    # silent device's open day is counted too).
    found = month_found(
        judge, minutes(range(1440 + 720, 2 * 1440)), SiteTick(site=SITE, now=DECEMBER)
    )
    [f] = found
    assert f.active and f.period == "2026-11" and f.severity.value == "warning"
    assert (f.expected, f.received, f.valid) == (4 * 4320, 4 * 3600, 4 * 3600)
    assert (f.value, f.limit, f.unit) == (83.33, 90.0, "%")
    assert (f.window_start, f.window_end, f.at) == (START, DECEMBER, DECEMBER)
    assert f.device is None and f.pollutant is None


def test_maintenance_counts_as_received_not_valid(catalogue: Catalogue) -> None:
    judge = SiteJudge(catalogue)
    # All arrived; 10 hours flagged M: 3,720 of 4,320 valid (86.11 %).
    found = month_found(
        judge, minutes(range(0), range(600, 1200)), SiteTick(site=SITE, now=DECEMBER)
    )
    [f] = found
    assert (f.received, f.valid, f.value) == (4 * 4320, 4 * 3720, 86.11)


def test_a_whole_month_is_not_found_and_the_threshold_is_the_operator_s(
    catalogue: Catalogue,
) -> None:
    # An hour missing: 98.61 %, over 90. The December reading itself closes the 30th.
    december = reading(
        {"w00000": 30.0, "w01018": 41.0, "w21003": 2.0, "w01001": 7.1}, DECEMBER, SITE, DEVICE
    )
    assert month_found(SiteJudge(catalogue), minutes(range(60, 120)), december) == []
    strict = SiteJudge(catalogue, RuleParams(validity_threshold=0.9999))
    [f] = month_found(strict, minutes(range(60, 120)), december)
    assert f.value == pytest.approx(98.61) and f.limit == 99.99


def test_a_replayed_month_under_90_reminds_the_enterprise(catalogue: Catalogue) -> None:
    """Replayed: the days' validity lines as they close, then the month's finding, and the
    enterprise reminded at once (the policy: pending 0, seven days to answer)."""
    lines = [r.to_json().decode() for r in minutes(range(1440 + 720, 2 * 1440))]
    first = {"w00000": 30.0, "w01018": 41.0, "w21003": 2.0, "w01001": 7.1}
    lines.append(reading(first, DECEMBER, SITE, DEVICE).to_json().decode())
    out = list(Replay(catalogue).feed(lines))
    days = [
        (x["day"], x["received"])
        for x in out
        if x["type"] == "validity" and x["pollutant"] == "w01018"
    ]
    assert days == [("2026-11-28", 1440), ("2026-11-29", 720), ("2026-11-30", 1440)]
    [f] = [x for x in out if x["type"] == "finding" and x["rule"] == "low_transmission_validity"]
    assert f["value"] == 83.33 and f["period"] == "2026-11"
    [note] = [
        x
        for x in out
        if x["type"] == "notification" and "low_transmission_validity" in x["case_id"]
    ]
    assert (note["audience"], note["step"], note["rule"]) == ("enterprise", "remind", f["rule"])
    assert note["evidence"]["value"] == 83.33 and note["evidence"]["expected"] == 4 * 4320
    text = render(Notification.model_validate({k: v for k, v in note.items() if k != "type"}))
    assert "传输有效率 83.33%，低于 90%" in text.body, text.body
