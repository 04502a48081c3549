"""The console's pure core: a site's status and colour, and the cases' counts, event by event."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from ecowatch.console.core import AQI_COLOURS, DEAD_LETTERS_KEPT, City, applied_limit
from ecowatch.console.history import corrected_flux, validity_flux
from ecowatch.console.seed import Point, latest_flux, latest_readings
from ecowatch.console.validity import (
    DayPoint,
    by_site,
    closed_days,
    lowest,
    site_days,
    wall_view,
)
from ecowatch.schema import (
    CaseEvent,
    CaseStatus,
    DeadLetter,
    DeviceStatus,
    Notification,
    Reading,
    Rule,
)
from ecowatch.streams.judging.aqi import Category
from ecowatch.streams.judging.validity import Validity
from tests.factories import finding, hourly_cod, reading

T = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)


def cod(value: float, flag: str = "N", minutes: float = 0) -> Reading:
    return reading({"w01018": (value, flag)}, T + timedelta(minutes=minutes))


def test_an_outfall_goes_from_unknown_to_normal_to_over_its_permit(catalogue):
    city = City(catalogue)
    assert city.site_view("S-OUT-001")["status"] == "unknown"
    city.on_reading(cod(40.0), 0.0)
    assert city.site_view("S-OUT-001")["status"] == "normal"
    city.on_reading(cod(95.0, minutes=1), 1.0)  # the permit's 80 mg/L, not GB 8978's 100
    view = city.site_view("S-OUT-001")
    assert view["status"] == "over" and view["values"]["w01018"]["over"]
    assert view["values"]["w01018"]["limit"]["source"].startswith("permit")
    assert city.take_changes()[0] == ["S-OUT-001"] and city.take_changes()[0] == []


def test_flags_offline_and_findings_decide_the_status(catalogue):
    city = City(catalogue)
    city.on_reading(cod(500.0, flag="C"), 0.0)  # a calibration value is not judged
    assert city.site_view("S-OUT-001")["status"] == "maintenance"
    city.on_reading(cod(40.0, flag="D", minutes=1), 1.0)
    assert city.site_view("S-OUT-001")["status"] == "abnormal"
    city.on_finding(hourly_cod(0))
    assert city.site_view("S-OUT-001")["status"] == "over"
    city.on_status(DeviceStatus(site="S-OUT-001", device="33080200000001", state="offline", at=T))
    assert city.site_view("S-OUT-001")["status"] == "offline"
    city.on_reading(cod(40.0, minutes=2), 2.0)  # back: the device spoke again
    city.on_finding(hourly_cod(60, active=False))
    assert city.site_view("S-OUT-001")["status"] == "normal"
    # An older reading resent after an outage does not repaint the present.
    city.on_reading(cod(400.0, minutes=-5), 3.0)
    assert city.site_view("S-OUT-001")["status"] == "normal"


def test_an_air_station_carries_its_aqi_colour(catalogue):
    city = City(catalogue)
    values = {"a34004": 160.0, "a34002": 80.0}
    air = reading(values, T, "S-AIR-001", "33080200A00001", model="air_station")
    city.on_reading(air, 0.0)
    aqi = city.site_view("S-AIR-001")["aqi"]
    assert aqi["category"] == Category.HEAVILY_POLLUTED
    assert aqi["colour"] == AQI_COLOURS[Category.HEAVILY_POLLUTED] == "#99004C"
    # PM2.5 has a daily limit only: shown, but one hourly value is not judged against it.
    assert applied_limit(catalogue, "S-AIR-001", "a34004").basis.value == "24h"
    assert not city.site_view("S-AIR-001")["values"]["a34004"]["over"]


# -- a stack: judged on its corrected values, never its raw ones ------------------------------

STACK, CEMS = "S-STK-001", "33080200G00001"  # coal_existing (6 % O2), permit SO2 35, NOx 50


def flue_gas(
    so2: float, o2: float, zs: float | None = None, minutes: float = 0, **more: float
) -> Reading:
    """One reading of the coal unit's CEMS: SO2 (with the CEMS's own corrected value), O2, the
    gas's flow, and what else is given (a21003 NO, a21004 NO2 ...)."""
    values = {"a21026": so2, "a19001": o2, "a00000": 120.0} | more
    r = reading(values, T + timedelta(minutes=minutes), STACK, CEMS, model="flue_gas_monitor")
    so2_m = r.values["a21026"].model_copy(update={"zs": zs})
    return r.model_copy(update={"values": {**r.values, "a21026": so2_m}})


def test_a_stack_is_over_on_its_corrected_value_though_its_raw_one_is_under(catalogue):
    city = City(catalogue)
    city.on_reading(flue_gas(30.0, 9.0, zs=37.4), 0.0)  # the notes' worked example
    view = city.site_view(STACK)
    assert view["kind"] == "stack" and view["o2_reference"] == 6.0
    so2 = view["values"]["a21026"]
    assert so2["value"] == 30.0 < 35  # raw: under the permit's 35 mg/m³ ...
    assert so2["corrected"] == 37.5 and so2["over"]  # ... corrected to 6 % O2: over it
    assert so2["zs"] == 37.4 and so2["o2"] == 9.0 and so2["o2_reference"] == 6.0
    assert so2["unjudged"] is None and so2["limit"]["o2_reference"] == 6.0
    assert view["status"] == "over"
    # The gas's state is never corrected nor judged.
    assert view["values"]["a19001"]["corrected"] is None and not view["values"]["a19001"]["over"]


def test_a_stacks_raw_value_over_its_limit_but_corrected_under_is_not_over(catalogue):
    city = City(catalogue)
    city.on_reading(flue_gas(40.0, 3.0), 0.0)  # 40 × 15/18 = 33.3 at 6 % O2
    view = city.site_view(STACK)
    so2 = view["values"]["a21026"]
    assert so2["value"] == 40.0 > 35 and round(so2["corrected"], 1) == 33.3
    assert not so2["over"] and so2["zs"] is None and view["status"] == "normal"


def test_a_stack_near_airs_oxygen_is_not_judged_and_says_so(catalogue):
    city = City(catalogue)
    city.on_reading(flue_gas(400.0, 19.5), 0.0)  # a start-up: mostly air, ×10 would be noise
    view = city.site_view(STACK)
    so2 = view["values"]["a21026"]
    assert so2["corrected"] is None and so2["unjudged"] == "high_o2" and not so2["over"]
    assert view["status"] == "normal" and view["high_o2"] == 19.0
    # A flagged O2 corrects nothing either: the value is not judged, and says why.
    flagged_o2 = {"a21026": 400.0, "a19001": (9.0, "D")}
    city.on_reading(reading(flagged_o2, T + timedelta(minutes=1), STACK, CEMS), 1.0)
    so2 = city.site_view(STACK)["values"]["a21026"]
    assert so2["unjudged"] == "no_o2" and not so2["over"]


def test_a_stack_whose_cems_is_not_believed_or_burns_no_fuel_is_abnormal(catalogue):
    for rule in (Rule.CORRECTED_VALUE_MISMATCH, Rule.HIGH_OXYGEN):
        city = City(catalogue)
        city.on_reading(flue_gas(30.0, 6.0), 0.0)
        assert city.site_view(STACK)["status"] == "normal"
        city.on_finding(finding(rule, site=STACK, device=CEMS, pollutant="a21026", at=T))
        assert city.site_view(STACK)["status"] == "abnormal", rule


def test_a_stacks_nox_is_judged_as_no2_from_no_and_no2_reported_apart(catalogue):
    city = City(catalogue)
    # NO 30 × 46/30 + NO2 5 = 51 mg/m³ as NO2; at 9 % O2: 63.75, over the permit's 50.
    city.on_reading(flue_gas(10.0, 9.0, a21003=30.0, a21004=5.0), 0.0)
    nox = city.site_view(STACK)["values"]["a21002"]
    assert nox["derived"] == "no_no2" and round(nox["value"], 2) == 51.0
    assert round(nox["corrected"], 2) == 63.75 and nox["over"]
    assert not city.site_view(STACK)["values"]["a21003"]["over"]  # NO itself has no limit
    assert city.site_view("S-OUT-001")["o2_reference"] is None  # an outfall: uncorrected


def test_the_desk_charts_a_stacks_corrected_minute_means():
    text = corrected_flux("ecowatch", STACK, T, T + timedelta(hours=1))
    assert 'r._measurement == "aggregate"' in text and 'r._field == "corrected"' in text
    assert 'r.period == "minute"' in text and 'r.site == "S-STK-001"' in text


def event(kind: str, status: CaseStatus, minutes: float, actor: str = "system") -> CaseEvent:
    return CaseEvent(
        case_id="c-1",
        site="S-OUT-001",
        kind=kind,
        at=T + timedelta(minutes=minutes),
        actor=actor,
        status=status,
    )


def notice(step: str, deadline_minutes: float) -> Notification:
    return Notification(
        key=f"c-1|{step}",
        case_id="c-1",
        step=step,
        audience="officers",
        site="S-OUT-001",
        grid="G-KC-01",
        recipients=["O-KC-01"],
        severity="warning",
        rule="hourly_over_limit",
        evidence=hourly_cod(0),
        deadline=T + timedelta(minutes=deadline_minutes),
        created_at=T + timedelta(minutes=5),
    )


def test_a_notification_read_before_its_case_waits_for_it(catalogue):
    city = City(catalogue)
    city.on_notification(notice("escalate", 30))
    assert city.trail("c-1") is None
    city.on_case_event(event("escalated", CaseStatus.ESCALATED, 5))
    trail = city.trail("c-1")
    assert trail is not None and [r["type"] for r in trail["trail"]] == ["event", "notification"]


def test_cases_are_counted_by_grid_and_state_and_overdue_past_their_deadline(catalogue):
    city = City(catalogue)
    city.on_case_event(event("detected", CaseStatus.PENDING, 0))
    assert city.case_counts(None)["by_grid"]["G-KC-01"]["reminded"] == 0
    city.on_notification(notice("escalate", 30))  # read before its event (another topic)
    city.on_case_event(event("escalated", CaseStatus.ESCALATED, 5))
    counts = city.case_counts(None)
    assert counts["by_grid"]["G-KC-01"]["escalated"] == 1 and counts["overdue"] == []
    city.on_reading(cod(40.0, minutes=31), 0.0)  # data time passes the deadline
    assert city.case_counts(None)["overdue"] == ["c-1"]
    assert city.case_counts(frozenset({"G-QJ-01"}))["by_grid"] == {
        "G-QJ-01": {"reminded": 0, "escalated": 0, "acknowledged": 0, "overdue": 0}
    }
    city.on_case_event(event("acknowledged", CaseStatus.ACKNOWLEDGED, 32, actor="O-KC-01"))
    city.on_case_event(event("acknowledged", CaseStatus.ACKNOWLEDGED, 32, actor="O-KC-01"))
    trail = city.trail("c-1")
    assert trail is not None and not trail["overdue"]
    assert [(r["type"], r["kind"]) for r in trail["trail"]] == [
        ("event", "detected"),
        ("notification", "escalate"),  # in the order read
        ("event", "escalated"),
        ("event", "acknowledged"),  # once: the feed may read the topic again
    ]
    assert city.case_counts(None)["by_grid"]["G-KC-01"]["acknowledged"] == 1


def test_a_reassigned_case_is_its_new_grids_in_the_feed_and_the_counts(catalogue):
    city = City(catalogue)
    city.on_case_event(event("escalated", CaseStatus.ESCALATED, 5))
    handed = event("reassigned", CaseStatus.ESCALATED, 10, actor="operator:night")
    city.on_case_event(handed.model_copy(update={"grid": "G-QJ-01", "note": "属衢江区管辖"}))
    counts = city.case_counts(None)["by_grid"]
    assert counts["G-QJ-01"]["escalated"] == 1 and counts["G-KC-01"]["escalated"] == 0
    _, turns = city.take_changes()
    assert turns[-1]["grid"] == "G-QJ-01" and turns[-1]["kind"] == "reassigned"
    assert turns[-1]["note"] == "属衢江区管辖"
    # Its later events carry the grid too; the case API's row says it as well.
    city.on_case_row(
        {
            "id": "c-1",
            "site": "S-OUT-001",
            "status": "escalated",
            "first_seen": T.isoformat(),
            "grid": "G-QJ-01",
        }
    )
    assert city.case_counts(frozenset({"G-QJ-01"}))["by_grid"]["G-QJ-01"]["escalated"] == 1


def test_case_events_do_not_move_data_time(catalogue):
    """A case event may carry the wall clock (a device's status as the bridge received it): in
    a city living days in the past it would have made every deadline overdue."""
    city = City(catalogue)
    city.on_reading(cod(40.0), 0.0)
    city.on_notification(notice("escalate", 30))
    city.on_case_event(event("escalated", CaseStatus.ESCALATED, 5))
    city.on_case_event(event("renotified", CaseStatus.ESCALATED, 6 * 24 * 60))  # six days on
    assert city.data_now == T and city.case_counts(None)["overdue"] == []


def test_a_seeded_reading_fills_the_map_but_not_the_pulse_nor_clears_offline(catalogue):
    city = City(catalogue)
    city.on_status(DeviceStatus(site="S-OUT-001", device="33080200000001", state="offline", at=T))
    city.seed_reading(cod(95.0, minutes=-10))
    view = city.site_view("S-OUT-001")
    assert view["status"] == "offline" and view["values"]["w01018"]["over"]
    assert city.pulse.view(0.0, T)["readings_per_s"] == 0 and city.pulse.last_received is None
    assert city.data_now == T - timedelta(minutes=10)
    city.seed_reading(cod(40.0, minutes=-20))  # older than what the city has: no change
    assert city.site_view("S-OUT-001")["values"]["w01018"]["value"] == 95.0


def test_a_case_api_row_is_counted_with_its_own_deadline(catalogue):
    city = City(catalogue)
    row = {
        "id": "c-7",
        "site": "S-OUT-001",
        "status": "reminded",
        "first_seen": T.isoformat(),
        "deadline": (T + timedelta(hours=1)).isoformat(),
        "ack_due": None,
    }
    city.on_case_row(row)
    assert city.case_counts(None)["by_grid"]["G-KC-01"]["reminded"] == 1
    assert city.take_changes()[1] == [
        {"case": "c-7", "site": "S-OUT-001", "grid": "G-KC-01", "type": "row"}
    ]
    city.on_case_row(row)  # the same again: nothing to push (pages reload on a push)
    assert city.take_changes()[1] == []
    city.on_reading(cod(40.0, minutes=61), 0.0)
    assert city.row_overdue(row) and city.case_counts(None)["overdue"] == ["c-7"]
    acked = row | {"status": "acknowledged", "acknowledged_by": "O-KC-01"}
    assert not city.row_overdue(acked)
    city.on_case_row(acked)
    assert city.case_counts(None)["overdue"] == []
    city.on_case_row(row | {"id": "c-8", "site": "S-NOPE"})  # not in the catalogue: ignored
    city.on_case_row(row | {"id": "c-9", "status": "bogus"})
    assert set(city.cases) == {"c-7"}


def test_dead_letters_are_counted_by_reason_and_source_the_newest_kept(catalogue):
    city = City(catalogue)
    for i in range(DEAD_LETTERS_KEPT + 2):
        city.on_dead_letter(
            DeadLetter.of(
                source="hj212" if i % 2 else "mqtt",
                origin=f"origin-{i}",
                reason="crc_mismatch" if i % 3 else "bad_json",
                detail=f"letter {i}",
                payload=b"x" * 10,
                received_at=T,
            ),
            float(i),
        )
    view = city.dead_letters.view()
    assert view["total"] == DEAD_LETTERS_KEPT + 2
    assert view["by_reason"] == {"crc_mismatch": 6, "bad_json": 4}
    assert view["by_source"] == {"hj212": 5, "mqtt": 5}
    assert [d["origin"] for d in view["latest"]][:2] == ["origin-9", "origin-8"]
    assert len(view["latest"]) == DEAD_LETTERS_KEPT


def point(device: str, pollutant: str, field: str, minutes: float, value: object) -> Point:
    site = {"33080200000001": "S-OUT-001", "33080200000002": "S-OUT-002"}.get(device, "S-X")
    return Point(
        site, device, "outfall_monitor", pollutant, field, T + timedelta(minutes=minutes), value
    )


def test_the_latest_stored_reading_of_each_device_within_two_hours_of_data_time():
    readings = latest_readings(
        [
            point("33080200000001", "w01018", "value", 0, 41.0),
            point("33080200000001", "w01018", "flag", 0, "D"),
            point("33080200000001", "w01018", "zs", 0, 43.0),  # a CEMS's own, kept
            point("33080200000001", "w00000", "value", -30, 100.0),  # not at its last time
            point("33080200000002", "w01018", "value", -121, 30.0),  # 2 h before the newest
            point("33080200000003", "w01018", "flag", -5, "N"),  # a flag without a value
        ]
    )
    (only,) = readings
    assert only.site == "S-OUT-001" and only.ts == T
    assert {c: (m.value, m.flag.value) for c, m in only.values.items()} == {"w01018": (41.0, "D")}
    assert only.values["w01018"].zs == 43.0
    assert latest_readings([]) == []
    assert "last()" in latest_flux("ecowatch", T) and 'r._measurement == "reading"' in latest_flux(
        "ecowatch", T
    )


# -- transmission and validity (传输有效率) --------------------------------------------------------

DAY = date(2026, 11, 22)


def day_point(site: str, device: str, code: str, day: date, *counts: int) -> DayPoint:
    expected, received, valid = counts
    return DayPoint(site, device, code, day, Validity(expected, received, valid))


def whole_day(site: str, device: str, codes: list[str], day: date, valid: int = 1440) -> list:
    return [day_point(site, device, code, day, 1440, 1440, valid) for code in codes]


WATER = ["w00000", "w01018", "w21003", "w01001"]
MONITOR_2 = ("S-OUT-002", "33080200000002")  # one monitor, four pollutants


def test_a_sites_rate_is_its_counts_summed_never_its_devices_rates_averaged(catalogue):
    # S-OUT-002: all day, all valid (100 %); S-OUT-005: all day, COD valid for 1,000 minutes
    # only. Every other site sent nothing that day: owed all the same, 0 %.
    points = whole_day(*MONITOR_2, WATER, DAY)
    points += whole_day("S-OUT-005", "33082500000005", ["w00000", "w21003", "w01001"], DAY)
    points += [day_point("S-OUT-005", "33082500000005", "w01018", DAY, 1440, 1440, 1000)]
    points += whole_day(*MONITOR_2, WATER, DAY + timedelta(days=1))  # not asked
    view = wall_view(catalogue, points, (DAY,))
    assert view["days"] == ["2026-11-22"]
    owed = sum(len(d.pollutants) for s in catalogue.sites.values() for d in s.devices) * 1440
    city = view["city"]
    assert (city["expected"], city["received"], city["valid"]) == (owed, 8 * 1440, 7 * 1440 + 1000)
    assert city["transmission_validity_rate"] == round((7 * 1440 + 1000) / owed, 4) and city["low"]
    lowest_named = [(r["site"], r["transmission_validity_rate"], r["low"]) for r in view["lowest"]]
    # The silent sites first (0 %), by id; S-OUT-005 (4,320 + 1,000 of 5,760: 92.36 %) and
    # S-OUT-002 (100 %) are not among the five lowest of ten.
    assert lowest_named[0] == ("S-AIR-001", 0.0, True) and len(lowest_named) == 5
    five = {sid: v for sid, v in by_site(catalogue, points, {DAY}).items()}
    assert five["S-OUT-005"] == Validity(5760, 5760, 5320) and five["S-OUT-002"].valid == 5760
    # An officer is named only their own grids' sites; the city's figure stays the city's.
    mine = wall_view(catalogue, points, (DAY,), shown={"S-OUT-002", "S-OUT-005"})
    assert [(r["site"], r["transmission_validity_rate"]) for r in mine["lowest"]] == [
        ("S-OUT-005", 0.9236),
        ("S-OUT-002", 1.0),
    ]
    assert mine["city"] == city


def test_the_lowest_five_sites_lowest_first_without_those_that_owed_nothing():
    sites = {f"S-{n}": Validity(100, 100, 100 - n) for n in range(8)}
    sites["S-tie"] = Validity(100, 100, 93)  # as low as S-7: the id decides, steadily
    sites["S-stopped"] = Validity(0, 0, 0)  # wholly stopped: no rate, neither 0 % nor 100 %
    assert [s for s, _ in lowest(sites)] == ["S-7", "S-tie", "S-6", "S-5", "S-4"]
    assert lowest({"S-stopped": Validity(0, 0, 0)}) == []


def test_the_desk_sums_a_sites_days_over_its_devices_and_pollutants(catalogue):
    days = (DAY - timedelta(days=1), DAY)
    points = whole_day(*MONITOR_2, ["w00000", "w21003"], DAY)
    points += [day_point(*MONITOR_2, "w01018", DAY, 1440, 1440, 1300)]
    points += [day_point(*MONITOR_2, "w01001", DAY, 1440, 1440, 1200)]
    points += whole_day("S-OUT-005", "33082500000005", WATER, DAY)  # another site's
    view = site_days(catalogue, points, "S-OUT-002", days)
    before, day = view["days"]
    # The day before: the monitor was silent, so no point: owed, nothing came (0 %, red).
    assert (before["day"], before["expected"], before["received"]) == ("2026-11-21", 5760, 0)
    assert before["transmission_validity_rate"] == 0.0 and before["low"]
    assert (day["expected"], day["received"], day["valid"]) == (5760, 5760, 5380)
    assert day["transmission_rate"] == 1.0 and day["validity_rate"] == 0.934
    assert day["transmission_validity_rate"] == 0.934 and not day["low"]
    assert (view["total"]["expected"], view["total"]["valid"]) == (11520, 5380)


def test_the_closed_days_are_those_before_the_china_day_of_data_time():
    # 10:00 in China on the 25th, and 01:00 (17:00 UTC the day before): the 18th to the 24th.
    for now in (
        datetime(2026, 11, 25, 2, 0, tzinfo=UTC),
        datetime(2026, 11, 24, 17, 0, tzinfo=UTC),
    ):
        days = closed_days(now)
        assert days[0] == date(2026, 11, 18) and days[-1] == date(2026, 11, 24) and len(days) == 7
    # 23:59 in China on the 24th: the 24th is still open.
    assert closed_days(datetime(2026, 11, 24, 15, 59, tzinfo=UTC))[-1] == date(2026, 11, 23)


def test_the_validity_flux_asks_for_the_days_counts_of_one_site_or_all():
    days = closed_days(datetime(2026, 11, 25, 2, 0, tzinfo=UTC))
    text = validity_flux("ecowatch", days, 'S"x')
    # From the first day's China midnight to the last one's end (16:00 UTC the day before).
    assert "range(start: 2026-11-17T16:00:00Z, stop: 2026-11-24T16:00:00Z)" in text
    assert 'r._measurement == "validity"' in text and 'r.period == "day"' in text
    assert 'r.site == "S\\"x"' in text  # escaped: a site id cannot end the literal
    for name in ("expected", "received", "valid"):
        assert f'r._field == "{name}"' in text
    assert 'columnKey: ["_field"]' in text
    assert "r.site" not in validity_flux("ecowatch", days)  # the city's: every site
