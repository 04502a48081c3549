"""The fault drill's pure parts: the plan, the ledger, recovery, the tally and the report."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ecowatch.alerts.templates import Message, possible_repeat
from ecowatch.devtools.drill import (
    FAULTS,
    SERVICES,
    DrillReport,
    FaultOutcome,
    Ledger,
    NotificationTally,
    Recovery,
    account,
    due,
    ephemeral_ports,
    free_window,
    parse_faults,
    planned_seconds,
    reading_index,
    reading_time,
    render,
    storm_plan,
)
from ecowatch.devtools.soak import (
    Sample,
    SoakDesk,
    SoakReport,
    TableSize,
    checkpoints,
    flatness,
    real_rate,
    render_soak,
    sample_from_health,
    soak_start,
    statm_rss,
)

T0 = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)


def test_faults_are_taken_in_the_order_given_or_all() -> None:
    assert parse_faults("kafka, worker") == ("kafka", "worker")
    assert parse_faults("all") == FAULTS
    assert parse_faults(",".join(FAULTS)) == FAULTS


@pytest.mark.parametrize(
    ("text", "says"),
    [("worker,zookeeper", "unknown fault 'zookeeper'"), ("worker,worker", "once"), ("", "least")],
)
def test_a_wrong_fault_list_is_refused_naming_the_problem(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_faults(text)


def test_the_load_holds_its_rate_whatever_the_loop_does() -> None:
    assert due(400, 0.0, 0) == 0
    assert due(400, 0.01, 0) == 4
    assert due(400, 1.0, 396) == 4
    assert due(400, 1.0, 410) == 0  # never negative: ahead is ahead
    assert due(400, 2.5, 4) == 996  # a loop that slept long catches up


def test_readings_are_one_second_apart_and_found_again_by_their_time() -> None:
    assert reading_time(T0, 0) == T0
    assert reading_time(T0, 3600) == T0 + timedelta(hours=1)
    assert reading_index(T0, T0 + timedelta(seconds=42)) == 42


def test_the_window_is_the_latest_one_clear_of_stored_readings() -> None:
    bucket, span = timedelta(minutes=10), timedelta(hours=1)
    earliest, latest = T0, T0 + timedelta(days=1)
    assert free_window([], bucket, earliest, latest, span) == latest - span
    # A bucket inside the latest hour pushes the window to end where that bucket starts.
    taken = latest - timedelta(minutes=30)
    assert free_window([taken], bucket, earliest, latest, span) == taken - span
    # A window that starts where an earlier bucket ends is clear of it.
    before = taken - span - bucket
    assert free_window([taken, before], bucket, earliest, latest, span) == taken - span
    # One that would overlap it by a minute moves before it.
    assert free_window([taken, before + timedelta(minutes=1)], bucket, earliest, latest, span) == (
        before + timedelta(minutes=1) - span
    )


def test_no_window_when_every_hour_is_taken() -> None:
    bucket = timedelta(minutes=10)
    occupied = [T0 + i * bucket for i in range(6 * 24)]
    assert free_window(occupied, bucket, T0, T0 + timedelta(days=1), timedelta(hours=1)) is None


def test_the_reserved_window_grows_with_the_faults_and_the_outage() -> None:
    one = planned_seconds(("worker",), 20, 20)
    assert planned_seconds(("worker", "influxdb"), 20, 20) > one + 20 + 20
    assert planned_seconds(("influxdb",), 20, 60) - planned_seconds(("influxdb",), 20, 20) == 40


def ledger_with(acked: dict[str, list[int]], published: int) -> Ledger:
    ledger = Ledger({d: "mqtt" if d.startswith("m") else "hj212" for d in acked})
    for device, indexes in acked.items():
        for _ in range(published):
            ledger.publish(device)
        for i in indexes:
            ledger.ack(device, i)
    return ledger


def test_lost_is_acknowledged_and_not_stored_and_nothing_else() -> None:
    ledger = ledger_with({"m1": [0, 1, 2, 3], "h1": [0, 1, 2]}, published=4)
    # m1's reading 2 was acknowledged and is missing: lost. h1's 3 was never acknowledged
    # (the device still holds it): unacknowledged, not lost, even though it is not stored.
    accounts = account(ledger, {"m1": {0, 1, 3}, "h1": {0, 1, 2, 99}})
    assert accounts.published == 8
    assert accounts.acknowledged == 7
    assert accounts.stored == 6  # index 99 is no reading the drill published
    assert accounts.lost == 1
    assert accounts.lost_by_device == {"m1": 1}
    assert accounts.unacknowledged == 1
    assert accounts.by_transport["mqtt"] == {
        "published": 4,
        "acknowledged": 4,
        "stored": 3,
        "lost": 1,
    }


def test_a_reading_stored_without_its_acknowledgement_is_not_lost() -> None:
    ledger = ledger_with({"h1": [0]}, published=2)
    accounts = account(ledger, {"h1": {0, 1}})
    assert (accounts.lost, accounts.stored, accounts.unacknowledged) == (0, 2, 1)


def test_the_snapshot_is_what_each_device_had_acknowledged_at_the_faults_end() -> None:
    ledger = ledger_with({"m1": [0, 1, 3], "m2": []}, published=5)
    assert ledger.snapshot() == {"m1": (3, 3)}  # m2 acknowledged nothing: nothing to wait for
    ledger.ack("m1", 4)
    assert ledger.snapshot() == {"m1": (4, 4)}


def test_recovery_is_when_the_store_caught_up_with_what_was_acknowledged() -> None:
    recovery = Recovery(ended_at=100.0, targets={"m1": (9, 10), "h1": (4, 3)})
    assert not recovery.observe(101.0, {"m1": 10, "h1": 2})
    assert recovery.seconds is None
    assert recovery.observe(103.5, {"m1": 10, "h1": 3})
    assert recovery.seconds == pytest.approx(3.5)
    # Once recovered, it stays so: a later poll does not move the time.
    assert recovery.observe(110.0, {"m1": 10, "h1": 3})
    assert recovery.seconds == pytest.approx(3.5)


def test_a_device_missing_from_the_counts_has_stored_nothing() -> None:
    recovery = Recovery(ended_at=0.0, targets={"m1": (0, 1)})
    assert not recovery.observe(1.0, {})


def test_the_same_message_to_the_same_person_twice_is_a_duplicate() -> None:
    tally = NotificationTally()
    tally.record("E-001", "【提醒】巨化 COD超标", "案件 X\n请于 10:00 前整改")
    tally.record("O-KC-01", "【提醒】巨化 COD超标", "案件 X\n请于 10:00 前整改")  # another person
    tally.record("E-001", "【提醒】巨化 COD超标", "案件 X\n请于 11:00 前整改")  # another round
    assert (tally.delivered, tally.duplicates) == (3, 0)
    tally.record("E-001", "【提醒】巨化 COD超标", "案件 X\n请于 10:00 前整改")
    tally.record("E-001", "【提醒】巨化 COD超标", "案件 X\n请于 10:00 前整改")
    assert (tally.delivered, tally.duplicates) == (5, 2)
    assert tally.duplicated() == [("E-001", "【提醒】巨化 COD超标", 3)]


def test_a_message_marked_as_a_possible_repeat_is_counted_apart(tmp_path: Path) -> None:
    tally = NotificationTally(tmp_path / "notifications.jsonl")
    plain = Message("【提醒】巨化 COD超标", "案件 X\n请于 10:00 前整改")
    marked = possible_repeat(plain)
    for m in (plain, marked):
        tally.record("E-001", m.title, m.body)
    # Not a duplicate: the second says it may be one. Counted, and each arrival kept on file.
    assert (tally.delivered, tally.duplicates, tally.possible_repeats) == (2, 0, 1)
    lines = (tmp_path / "notifications.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["title"] for line in lines] == [plain.title, marked.title]


def report(lost: bool = False, duplicates: int = 0, recovered: bool = True) -> DrillReport:
    ledger = ledger_with({"m1": [0, 1], "h1": [0, 1]}, published=2)
    stored = {"m1": {0} if lost else {0, 1}, "h1": {0, 1}}
    worker = FaultOutcome("worker", started_at=10.0, ended_at=10.2, applied=True, detail="pid 1")
    worker.recovery = Recovery(10.2, {"m1": (1, 2)}, recovered_at=16.4 if recovered else None)
    influx = FaultOutcome("influxdb", started_at=20.0, ended_at=41.5, applied=True, detail="up")
    influx.recovery = Recovery(41.5, {}, recovered_at=43.0)
    return DrillReport(
        rate=400,
        devices={"mqtt": 1, "hj212": 1},
        seconds=60,
        accounts=account(ledger, stored),
        notifications=12,
        duplicate_notifications=duplicates,
        faults=[worker, influx],
    )


def test_the_report_is_a_table_then_one_json_line() -> None:
    lines = render(report())
    assert lines[0].split()[:4] == ["fault", "applied", "down", "recovered"]
    assert lines[1].split()[:4] == ["worker", "yes", "0.2", "s"]
    assert "6.2 s" in lines[1]
    assert "21.5 s" in lines[2] and "1.5 s" in lines[2]
    assert any(line.startswith("lost ") and line.split()[1] == "0" for line in lines)
    doc = json.loads(lines[-1])
    assert doc["lost"] == 0 and doc["duplicate_notifications"] == 0 and doc["passed"]
    assert doc["faults"][0] == {
        "fault": "worker",
        "applied": True,
        "down_s": 0.2,
        "recovery_s": 6.2,
        "detail": "pid 1",
    }
    assert doc["by_transport"]["hj212"]["stored"] == 2


@pytest.mark.parametrize(
    "failing",
    [
        report(lost=True),
        report(duplicates=1),
        report(recovered=False),
    ],
)
def test_a_loss_a_duplicate_or_a_fault_not_recovered_fails_the_drill(
    failing: DrillReport,
) -> None:
    assert not failing.passed
    assert json.loads(render(failing)[-1])["passed"] is False


def test_a_fault_that_was_not_applied_fails_the_drill() -> None:
    r = report()
    assert r.passed
    r.faults[0].applied = False
    assert not r.passed
    assert " NO " in render(r)[1]


def test_ports_a_reconnecting_client_may_take_are_named() -> None:
    ports = {"MQTT": 1883, "Kafka": 39092, "InfluxDB": 8086, "HJ 212": 60999}
    assert ephemeral_ports(ports, 32768, 60999) == ["Kafka 39092", "HJ 212 60999"]
    assert ephemeral_ports({"Kafka": 29092}, 32768, 60999) == []


def test_a_storm_plan_is_every_fault_once_overlapping_and_the_same_for_a_seed() -> None:
    plan = storm_plan(7, span=40.0)
    assert sorted(f.fault for f in plan) == sorted(FAULTS)
    assert [f.at for f in plan] == sorted(f.at for f in plan)
    assert all(0 <= f.at <= 40.0 for f in plan)
    assert all((f.down > 0) == (f.fault in SERVICES) for f in plan)
    assert storm_plan(7, span=40.0) == plan  # seeded: a storm can be run again
    assert storm_plan(8, span=40.0) != plan
    # Faults overlap: some service is still away when the next fault begins.
    assert any(later.at < f.at + f.down for i, f in enumerate(plan) for later in plan[i + 1 :]), (
        plan
    )


# -- the soak (devtools/soak.py) ---------------------------------------------------------------

MIB = 2**20


def _sample(day: int, rss: int | None, tables: dict[str, int] | None) -> Sample:
    return Sample(
        day,
        T0 + timedelta(days=day),
        rss,
        "health",
        None if tables is None else {n: TableSize(10, b) for n, b in tables.items()},
    )


def test_the_soak_measures_days_1_10_and_its_last() -> None:
    assert checkpoints(30) == (1, 10, 30)
    assert checkpoints(10) == (1, 10)
    assert checkpoints(3) == (1, 3)
    assert checkpoints(1) == (1,)
    with pytest.raises(ValueError):
        checkpoints(0)


def test_the_soak_month_begins_at_a_china_midnight_in_the_past() -> None:
    now = datetime(2026, 12, 6, 7, 50, tzinfo=UTC)  # 15:50 in China
    start = soak_start(now, 30)
    assert start.isoformat() == "2026-11-05T00:00:00+08:00"
    assert start + timedelta(days=30) < now
    assert real_rate(50, 2880, 300) == 480


def test_a_sample_reads_the_workers_health() -> None:
    health = {
        "ready": True,
        "rss_bytes": 150 * MIB,
        "tables": {"site-rules": {"keys": 45, "bytes": 400_000, "largest": 18_000}},
        "stored_readings": 1000,
        "findings": 12,
    }
    sample = sample_from_health(10, T0, health, statm=99)
    assert sample.rss_bytes == 150 * MIB and sample.rss_source == "health"
    assert sample.tables == {"site-rules": TableSize(45, 400_000, 18_000)}
    assert sample.counts == {"stored_readings": 1000, "findings": 12}


def test_a_sample_of_a_worker_that_does_not_report_its_memory(tmp_path: Path) -> None:
    """Before the worker reports rss_bytes and tables: RSS from /proc/<pid>/statm, the
    tables missing; a worker that does not answer at all has neither."""
    (tmp_path / "42").mkdir()
    (tmp_path / "42" / "statm").write_text("90000 25600 3000 1 0 30000 0\n")
    statm = statm_rss(42, proc=tmp_path)
    assert statm == 25600 * os.sysconf("SC_PAGE_SIZE")
    assert statm_rss(43, proc=tmp_path) is None
    sample = sample_from_health(1, T0, {"ready": True, "stored_readings": 5}, statm)
    assert (sample.rss_bytes, sample.rss_source, sample.tables) == (statm, "statm", None)
    gone = sample_from_health(1, T0, None, None)
    assert (gone.rss_bytes, gone.rss_source, gone.counts) == (None, "none", {})


def test_flat_figures_pass() -> None:
    day10 = _sample(10, 150 * MIB, {"site-rules": 500_000, "site-clock": 3_300})
    day30 = _sample(30, 160 * MIB, {"site-rules": 560_000, "site-clock": 3_300})
    checks = flatness(day10, day30, tolerance=0.15)
    assert [c.what for c in checks] == ["worker RSS", "site-clock bytes", "site-rules bytes"]
    assert all(c.passed for c in checks)
    assert checks[0].growth == pytest.approx(10 / 150)


def test_growth_past_the_tolerance_fails() -> None:
    day10 = _sample(10, 150 * MIB, {"site-case-log": 400_000})
    day30 = _sample(30, 175 * MIB, {"site-case-log": 480_000})
    rss, table = flatness(day10, day30, tolerance=0.15)
    assert not rss.passed and rss.growth == pytest.approx(25 / 150)
    assert not table.passed and table.as_dict()["growth"] == 0.2


def test_a_small_table_moving_by_a_few_kilobytes_is_not_growth() -> None:
    """+50 % of 20 KiB is one case more: under the slack; a table new since day 10 counts
    from nothing, and fails only when it holds more than the slack."""
    day10 = _sample(10, 150 * MIB, {"site-cases": 20_000})
    day30 = _sample(30, 150 * MIB, {"site-cases": 30_000, "new": 10_000, "big": 100_000})
    checks = {c.what: c for c in flatness(day10, day30, slack=64 * 1024)}
    assert checks["site-cases bytes"].passed
    assert checks["new bytes"].passed and checks["new bytes"].growth is None
    assert not checks["big bytes"].passed


def test_missing_figures() -> None:
    """No RSS at either day fails (nothing measured); tables a worker does not report yet
    are said to be missing, and the verdict is the RSS's."""
    with_rss = _sample(10, 150 * MIB, None)
    checks = flatness(with_rss, _sample(30, 151 * MIB, None))
    assert [(c.what, c.passed, c.note) for c in checks] == [
        ("worker RSS", True, ""),
        ("tables", True, "not in the worker's /health"),
    ]
    assert not flatness(with_rss, _sample(30, None, None))[0].passed


def _soak_report(samples: list[Sample], checks: list) -> SoakReport:
    return SoakReport(
        days=30,
        speed=2880,
        interval=300,
        devices=50,
        sim_start=T0,
        app_id="ecowatch-soak-1",
        bucket="ecowatch-soak-1",
        samples=samples,
        daily=samples,
        checks=checks,
        tolerance=0.15,
        reference_day=samples[-2].day if len(samples) > 1 else None,
        seconds=900.0,
        published=432_000,
        stored=431_990,
        notifications={"【执法】": 120},
        officer_actions={"ack": 60, "findings": 60},
    )


def test_the_soak_prints_a_row_per_day_measured_and_a_json_line() -> None:
    samples = [
        _sample(1, 140 * MIB, {"site-rules": 300_000}),
        _sample(10, 150 * MIB, {"site-rules": 500_000}),
        _sample(30, 180 * MIB, {"site-rules": 510_000}),
    ]
    report = _soak_report(samples, flatness(samples[1], samples[2]))
    lines = render_soak(report)
    rows = [line for line in lines if line[:3].strip() in ("1", "10", "30")]
    assert len(rows) == 3 and "140.0 MiB" in rows[0] and "10 / 488.3 KiB" in rows[1]
    assert any("worker RSS" in line and "GREW" in line for line in lines)
    assert lines[-2] == "FAILED"
    data = json.loads(lines[-1])
    assert data["passed"] is False and data["rate"] == 480 and data["reference_day"] == 10
    assert [s["day"] for s in data["samples"]] == [1, 10, 30]
    assert data["daily"][1] == {
        "day": 10,
        "rss_bytes": 150 * MIB,
        "tables_bytes": {"site-rules": 500_000},
    }
    assert data["checks"][0] == {
        "what": "worker RSS",
        "before": 150 * MIB,
        "after": 180 * MIB,
        "growth": 0.2,
        "passed": False,
        "note": None,
    }


def test_a_soak_of_one_day_has_nothing_to_compare() -> None:
    lines = render_soak(_soak_report([_sample(1, 140 * MIB, None)], []))
    assert "tables: not in the worker's /health" in lines
    assert "one day measured: nothing to compare" in lines
    assert json.loads(lines[-1])["passed"] is True


def test_the_soak_desk_acts_on_escalations_to_officers_only() -> None:
    from ecowatch.config.settings import Settings
    from ecowatch.devtools.inbox import Received

    desk = SoakDesk(Settings(), {"tok": "O-KC-01"})
    case = "20261105101500-S-OUT-001-w01018-hourly_over_limit"
    desk.on_message(Received("O-KC-01", "【执法】hourly", f"case {case}\nmore"))
    desk.on_message(Received("E-001", "【提醒】hourly", f"case {case}"))
    desk.on_message(Received("O-XX-99", "【执法】hourly", f"case {case}"))  # no token
    assert desk.notifications() == {"【执法】": 2, "【提醒】": 1}
    assert desk.desk.todo.get_nowait() == ("O-KC-01", "S-OUT-001", case)
    assert desk.desk.todo.empty()
