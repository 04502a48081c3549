"""Alarms (报警) from the platform's events, and 消警: one per exceedance until silenced, the
same ids when the topics are read again, silences that arrive before their alarm."""

from __future__ import annotations

from datetime import datetime, timedelta

from ecowatch.console.core import City
from ecowatch.schema import (
    AlarmSilenced,
    CaseEvent,
    CaseStatus,
    DeviceState,
    DeviceStatus,
    Rule,
)
from tests.factories import CASE, T0, finding, hourly_cod, notification, reading

DEVICE = "33080200000001"


def escalated(case_id: str = "c-1", minutes: float = 30) -> CaseEvent:
    return CaseEvent(
        case_id=case_id,
        site="S-OUT-001",
        kind="escalated",
        at=T0 + timedelta(minutes=minutes),
        actor="system",
        status=CaseStatus.ESCALATED,
    )


def silence(alarm_id: str, by: str = "operator:王", upto: datetime | None = None) -> AlarmSilenced:
    return AlarmSilenced(alarm_id=alarm_id, site="S-OUT-001", by=by, at=T0, upto=upto)


def test_an_exceedance_rings_once_and_more_of_it_adds_to_the_same_alarm(catalogue):
    city = City(catalogue)
    city.on_finding(hourly_cod(0, value=81.5))
    (alarm,) = city.alarms.take_changes()
    row = city.alarms.row(alarm)
    assert row["kind"] == "over" and row["pollutant"] == "w01018"
    assert row["multiple"] == "0.63"  # 81.5 against 50: 超标 0.63 倍
    assert row["detail"]["zh"] and row["detail"]["en"] and row["silenced_by"] is None
    city.on_finding(hourly_cod(60, value=90.0))  # the next hour, still not silenced
    (same,) = city.alarms.take_changes()
    assert same.id == alarm.id and same.count == 2 and same.multiple == "0.80"
    city.on_finding(hourly_cod(60, value=90.0))  # the topic read again: nothing more
    assert city.alarms.take_changes() == [] and same.count == 2
    city.on_finding(hourly_cod(90, active=False))
    assert city.alarms.take_changes()[0].cleared_at is not None


def test_once_silenced_the_next_exceedance_is_a_new_alarm(catalogue):
    city = City(catalogue)
    city.on_finding(hourly_cod(0))
    first = city.alarms.take_changes()[0]
    city.on_silence(silence(first.id))
    assert city.alarms.take_changes()[0].silenced_by == "operator:王"
    city.on_silence(silence(first.id, by="O-KC-01"))  # the first silence stands
    assert first.silenced_by == "operator:王"
    city.on_finding(hourly_cod(60))
    (second,) = city.alarms.take_changes()
    assert second.id != first.id and second.silenced_by is None


def test_a_restarted_console_reads_the_same_ids_and_its_silences_in_any_order(catalogue):
    events = [hourly_cod(0), finding(Rule.OFFLINE, pollutant=None), hourly_cod(60)]
    first = City(catalogue)
    for event in events:
        first.on_finding(event)
    ids = sorted(first.alarms.alarms)
    seen = {a.id: a.last_at for a in first.alarms.alarms.values()}
    # Read again, the silences' topic before the findings' this time: each silence waits for
    # the events its person saw (the second hour went into the first alarm).
    again = City(catalogue)
    for alarm_id in ids:
        again.on_silence(silence(alarm_id, upto=seen[alarm_id]))
    for event in events:
        again.on_finding(event)
    assert sorted(again.alarms.alarms) == ids
    assert all(a.silenced for a in again.alarms.alarms.values())
    assert again.alarms_view(None)["counts"]["new"] == 0


def test_a_device_offline_by_its_last_will_and_by_the_worker_is_one_alarm(catalogue):
    city = City(catalogue)
    city.on_status(DeviceStatus(site="S-OUT-001", device=DEVICE, state=DeviceState.OFFLINE, at=T0))
    later = T0 + timedelta(minutes=10)
    city.on_finding(finding(Rule.OFFLINE, pollutant=None, at=later))
    (alarm,) = city.alarms.alarms.values()
    assert alarm.kind == "offline" and alarm.count == 2
    city.on_status(
        DeviceStatus(site="S-OUT-001", device=DEVICE, state=DeviceState.ONLINE, at=later)
    )
    assert alarm.cleared_at == later


def test_escalations_and_overdue_cases_ring_once_per_deadline(catalogue):
    city = City(catalogue)
    city.on_case_event(escalated(CASE))
    (alarm,) = city.alarms.take_changes()
    assert alarm.kind == "escalated" and alarm.case_id == CASE
    due = T0 + timedelta(hours=2)
    city.on_notification(notification(deadline=due))  # the officers' acknowledge-by
    city.scan_overdue()
    assert city.alarms.take_changes() == []  # data time has not passed it
    city.on_reading(reading({"w01018": 40.0}, due + timedelta(minutes=5)), 0.0)
    city.scan_overdue()
    city.scan_overdue()
    (overdue,) = city.alarms.take_changes()
    assert overdue.kind == "overdue" and overdue.case_id == CASE
    assert "执法人员接收期限" in overdue.detail["zh"]


def test_the_view_counts_by_state_kind_and_grid_and_ranks_the_worst(catalogue):
    city = City(catalogue)
    city.on_finding(hourly_cod(0))
    city.on_finding(finding(Rule.OFFLINE, pollutant=None))
    over = next(a for a in city.alarms.alarms.values() if a.kind == "over")
    city.on_silence(silence(over.id))
    view = city.alarms_view(None)
    assert view["counts"]["new"] == 1 and view["counts"]["silenced"] == 1
    assert view["counts"]["by_kind"]["offline"] == {"new": 1, "silenced": 0}
    grid = catalogue.sites["S-OUT-001"].grid
    assert view["counts"]["by_grid"][grid] == {"new": 1, "silenced": 1}
    assert sum(view["today"]["hours"]) == 2
    (worst,) = view["most_in_breach"]
    assert worst["enterprise"] == catalogue.sites["S-OUT-001"].enterprise and worst["alarms"] == 1
    other = next(g for g in catalogue.grids if g != grid)
    assert city.alarms_view(frozenset({other}))["alarms"] == []
