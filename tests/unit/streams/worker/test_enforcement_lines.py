"""What the enforcing worker writes to InfluxDB beside the readings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ecowatch.schema import (
    CaseEvent,
    CaseReason,
    CaseStatus,
    DeviceState,
    DeviceStatus,
    Finding,
    Mark,
    MarkEvent,
    MarkEventKind,
    MarkType,
    Measurement,
    Proof,
    Reading,
    ReadingSource,
    Rule,
    Severity,
)
from ecowatch.streams.judging.aggregate import Period, Window
from ecowatch.streams.judging.flue_gas import StackMean
from ecowatch.streams.judging.rules import ClosedWindow, SiteTick
from ecowatch.streams.judging.validity import Validity
from ecowatch.streams.storage.points import (
    case_event_line,
    closed_lines,
    finding_line,
    mark_line,
    window_line,
)
from ecowatch.streams.worker.enforcement import (
    clock_of,
    clock_value,
    judged_at,
    table_size,
)

T = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
MS = 1795395600000  # 2026-11-23T01:00Z


def test_an_hourly_window_with_its_appendix_d_totals():
    window = Window(
        period=Period.HOUR,
        start=T,
        end=T + timedelta(hours=1),
        valid=True,
        mean=80.0,
        coverage=timedelta(minutes=50),
        volume_m3=144.0,
        mass_kg=11.52,
        flags={"N": 10},
    )
    line = window_line("S-OUT-001", ClosedWindow("33080200000001", "w01018", window))
    assert line == (
        "aggregate,site=S-OUT-001,device=33080200000001,pollutant=w01018,period=hour "
        f"valid=true,coverage_s=3000.0,mean=80.0,volume_m3=144.0,mass_kg=11.52 {MS}"
    )


def test_a_stack_s_hour_with_its_corrected_mean_o2_and_emission():
    window = Window(
        period=Period.HOUR,
        start=T,
        end=T + timedelta(hours=1),
        valid=True,
        mean=30.0,
        coverage=timedelta(minutes=60),
        flags={"N": 60},
    )
    stack = StackMean(o2_reference=6.0, o2=9.0, corrected=37.5, emission_kg=12.0)
    line = window_line("S-STK-001", ClosedWindow("33080200G00001", "a21026", window, stack))
    assert line == (
        "aggregate,site=S-STK-001,device=33080200G00001,pollutant=a21026,period=hour "
        "valid=true,coverage_s=3600.0,mean=30.0,corrected=37.5,o2=9.0,o2_reference=6.0,"
        f"emission_kg=12.0 {MS}"
    )


def test_a_closed_day_brings_its_transmission_and_validity():
    window = Window(
        period=Period.DAY,
        start=T,
        end=T + timedelta(days=1),
        valid=True,
        mean=42.0,
        coverage=timedelta(hours=23),
        flags={"N": 1350, "M": 30},
    )
    closed = ClosedWindow("33080200000001", "w01018", window, validity=Validity(1440, 1380, 1350))
    mean, validity = closed_lines("S-OUT-001", [closed])
    assert mean.startswith("aggregate,") and "period=day" in mean
    assert validity == (
        "validity,site=S-OUT-001,device=33080200000001,pollutant=w01018,period=day "
        "expected=1440i,received=1380i,valid=1350i,transmission_rate=0.9583,"
        f"validity_rate=0.9783,transmission_validity_rate=0.9375 {MS}"
    )
    # Nothing owed (a day marked stopped): the counts, and no rate.
    stopped = ClosedWindow("33080200000001", "w01018", window, validity=Validity(0, 0, 0))
    _, line = closed_lines("S-OUT-001", [stopped])
    assert "rate" not in line and "expected=0i" in line


def test_an_invalid_window_has_no_mean():
    window = Window(
        period=Period.DAY,
        start=T,
        end=T + timedelta(days=1),
        valid=False,
        mean=None,
        coverage=timedelta(hours=3),
        flags={},
    )
    line = window_line("S-AIR-001", ClosedWindow("33080200A00001", "a21004", window))
    assert "mean=" not in line and "valid=false" in line and "period=day" in line


def test_findings_and_case_events_escape_their_text():
    f = Finding(
        site="S-OUT-001",
        pollutant="w01018",
        rule=Rule.HOURLY_OVER_LIMIT,
        severity=Severity.WARNING,
        active=True,
        at=T,
        value=81.5,
        limit=50.0,
        unit="mg/L",
        limit_source='permit "P-1"',
    )
    # The detail is the wording module's, in Chinese, escaped for line protocol.
    assert finding_line(f) == (
        "finding,site=S-OUT-001,rule=hourly_over_limit,pollutant=w01018,severity=warning "
        'active=true,value=81.5,detail="COD 小时均值 81.5 mg/L，超标 0.63 倍（限值 50 mg/L，'
        f'排污许可证 \\"P-1\\"）" {MS}'
    )
    # A finding in resent data says so.
    late = finding_line(f.model_copy(update={"late": True}))
    assert 'value=81.5,late=true,detail="' in late
    e = CaseEvent(
        case_id="c-1",
        site="S-OUT-001",
        kind="closed",
        at=T,
        actor="O-KC-01",
        status=CaseStatus.CLOSED,
        reason=CaseReason.FINDINGS_AND_HOLD,
    )
    assert case_event_line(e) == (
        "case_event,site=S-OUT-001,kind=closed,status=closed,case_id=c-1 "
        f'case="c-1",actor="O-KC-01",detail="核查结果已录入，保持期内持续正常" {MS}'
    )


def test_two_cases_stepped_on_one_tick_are_two_points():
    """A point is its measurement, tags and time: without the case id as a tag, two cases of
    a site reminded on the same tick were one point, InfluxDB keeping the last."""

    def reminded(case_id: str) -> CaseEvent:
        return CaseEvent(
            case_id=case_id,
            site="S-OUT-001",
            kind="reminded",
            at=T,
            actor="system",
            status=CaseStatus.REMINDED,
        )

    a, b = case_event_line(reminded("c-1")), case_event_line(reminded("c-2"))
    series = [line.split(" ")[0] for line in (a, b)]
    assert series[0] != series[1] and a.endswith(f" {MS}") and b.endswith(f" {MS}")


def test_a_tables_size_counts_keys_bytes_and_its_largest_value():
    items = {b"S-OUT-001": b"x" * 100, b"S-OUT-002": b"y" * 10, b"k": None}
    assert table_size(items.items()) == {"keys": 3, "bytes": 9 + 100 + 9 + 10 + 1, "largest": 100}
    assert table_size([]) == {"keys": 0, "bytes": 0, "largest": 0}


# -- the time an event is judged at -------------------------------------------------------------

WALL = datetime(2026, 12, 1, 4, 0, tzinfo=UTC)  # the wall clock; the city's data is days back
DATA = WALL - timedelta(days=6)


def a_reading(ts: datetime) -> Reading:
    return Reading(
        site="S-OUT-001",
        device="33080200000001",
        model="outfall_monitor",
        ts=ts,
        values={"w01018": Measurement(value=40.0)},
        source=ReadingSource.MQTT,
        received_at=ts,
    )


def test_a_reading_moves_the_sites_data_clock():
    at, seen = judged_at(a_reading(DATA), None, WALL)
    assert at == DATA and seen == (DATA, WALL)


def test_a_devices_status_is_judged_on_the_data_clock_and_does_not_move_it():
    # The bridge stamps a last will on the wall clock; the site's data is six days back.
    offline = DeviceStatus(
        site="S-OUT-001", device="33080200000001", state=DeviceState.OFFLINE, at=WALL
    )
    at, seen = judged_at(offline, (DATA, WALL - timedelta(seconds=30)), WALL)
    assert at == DATA + timedelta(seconds=30) and seen is None


def test_a_tick_runs_the_data_clock_on_by_real_time():
    tick = SiteTick(site="S-OUT-001", now=WALL)
    assert judged_at(tick, (DATA, WALL - timedelta(minutes=2)), WALL) == (
        DATA + timedelta(minutes=2),
        None,
    )
    assert judged_at(tick, None, WALL) == (WALL, None)  # a site not heard from: the wall clock


def test_a_sites_data_clock_round_trips_through_its_table_value():
    seen = (DATA, WALL - timedelta(seconds=30))
    assert clock_of(clock_value(seen)) == seen
    assert clock_of(None) is None


def test_the_notification_delays_give_their_median_and_99th_percentile():
    from collections import deque
    from types import SimpleNamespace

    from ecowatch.streams.worker.enforcement import Enforcement

    def figures(delays: list[float]) -> dict:
        return Enforcement.delay_figures(SimpleNamespace(notification_delays=deque(delays)))

    assert figures([]) == {}  # none handed yet: no figure rather than a zero
    got = figures([0.01 * i for i in range(1, 201)])  # 0.01 .. 2.00 s
    assert got["notification_delay_samples"] == 200
    assert got["notification_delay_p50_s"] == 1.01
    assert got["notification_delay_p99_s"] == 1.99


def test_a_mark_s_change_is_a_line_of_its_trail():
    mark = Mark(
        id="M-S-STK-001-202611230900-1",
        site="S-STK-001",
        device="33080200G00001",
        type=MarkType.SHUTDOWN,
        start=T,
        end=T + timedelta(hours=2),
        reason='停炉 "检修"',
        made_by="enterprise:E-031",
        made_at=T - timedelta(days=1),
        proofs=(
            Proof(
                sha256="ab" * 32,
                name="通知.pdf",
                content_type="application/pdf",
                size=100,
                at=T,
                by="enterprise:E-031",
            ),
        ),
    )
    line = mark_line(
        MarkEvent(kind=MarkEventKind.PROOF_ADDED, mark=mark, actor="enterprise:E-031", at=T)
    )
    head, rest = line.split(" ", 1)
    fields, ms = rest.rsplit(" ", 1)
    assert head == (
        "mark,site=S-STK-001,mark_id=M-S-STK-001-202611230900-1,kind=proof_added,"
        "type=shutdown,status=pending,source=enterprise"
    )
    assert ms == str(MS)
    assert 'device="33080200G00001"' in fields and "proofs=1i" in fields
    assert f'proof_hashes="{"ab" * 32}"' in fields
    assert '：停炉 \\"检修\\"' in fields  # the reason's quotes escaped for line protocol
    assert "停炉标记 M-S-STK-001-202611230900-1" in fields
