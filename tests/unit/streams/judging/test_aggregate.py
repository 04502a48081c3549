"""Minute, hourly and daily windows (HJ 212 Appendix D): worked examples by hand, in China
time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from ecowatch.schema import DataFlag, Measurement
from ecowatch.streams.judging.aggregate import (
    Period,
    Series,
    Weighting,
    Window,
    WindowParams,
    add,
    day_of,
    hour_of,
)

CST = timezone(timedelta(hours=8))
T10 = datetime(2026, 11, 23, 10, 0, tzinfo=CST)
MIN = timedelta(minutes=1)
WIDE = WindowParams(max_slice=timedelta(minutes=30))


def feed(
    series: Series,
    points: list[tuple[datetime, float, float | None, DataFlag]],
    params: WindowParams = WIDE,
    periods: tuple[Period, ...] = (Period.HOUR, Period.DAY),
) -> tuple[Series, list[Window]]:
    """The closed windows of ``periods`` (by default the hours and days the rules judge)."""
    closed: list[Window] = []
    for ts, c, q, flag in points:
        flow = Measurement(value=q) if q is not None else None
        series, out = add(series, ts, Measurement(value=c, flag=flag), params, flow)
        closed += [w for w in out if w.period in periods]
    return series, closed


N = DataFlag.NORMAL


def test_appendix_d_two_half_hour_slices() -> None:
    # Q=10 L/s, C=50 mg/L for 30 min; Q=30 L/s, C=90 mg/L for 30 min:
    # D = (10 + 30) × 1800 × 1e-3 = 72 m³; G = (50×18 + 90×54) × 1e-3 = 5.76 kg;
    # C_h = 5.76 / 72 × 1e3 = 80 mg/L (not the plain mean 70).
    s = Series(weighting=Weighting.FLOW)
    s, closed = feed(
        s,
        [(T10, 50, 10, N), (T10 + 30 * MIN, 90, 30, N), (T10 + 60 * MIN, 60, 20, N)],
    )
    assert len(closed) == 1
    hour = closed[0]
    assert hour.period is Period.HOUR
    assert hour.start == T10 and hour.end == T10 + timedelta(hours=1)
    assert hour.valid and hour.mean == 80.0
    assert hour.volume_m3 == pytest.approx(72.0)
    assert hour.mass_kg == pytest.approx(5.76)
    assert hour.coverage == timedelta(minutes=60)
    assert hour.flags == {"N": 2}  # the 11:00 reading belongs to the next hour


def test_time_weighted_without_flow_is_the_plain_mean() -> None:
    s = Series(weighting=Weighting.TIME)
    _, closed = feed(
        s, [(T10 + i * 15 * MIN, v, None, N) for i, v in enumerate([40, 60, 80, 20, 99])]
    )
    assert [w.mean for w in closed] == [50.0]
    assert closed[0].volume_m3 is None and closed[0].mass_kg is None


def test_the_hour_closes_on_the_first_reading_of_the_next_hour_in_china_time() -> None:
    # 01:59 UTC is 09:59 in China; 02:00 UTC is 10:00: the boundary is the local hour.
    utc = UTC
    s = Series(weighting=Weighting.TIME)
    points = [(datetime(2026, 11, 23, 1, m, tzinfo=utc), 10.0, None, N) for m in range(0, 60, 5)]
    s, closed = feed(s, points)
    assert closed == []  # nothing closes before a reading of the next hour
    s, closed = feed(s, [(datetime(2026, 11, 23, 2, 0, 30, tzinfo=utc), 10.0, None, N)])
    assert len(closed) == 1
    assert closed[0].start == datetime(2026, 11, 23, 9, 0, tzinfo=CST)
    assert closed[0].start.utcoffset() == timedelta(hours=8)
    assert closed[0].coverage == timedelta(minutes=60)


def test_a_slice_over_the_boundary_is_split_between_the_hours() -> None:
    s = Series(weighting=Weighting.TIME)
    # 10:50 → 11:10 with a 30 min cap: 10 min for 10:00–11:00, 10 min for 11:00–12:00.
    s, closed = feed(s, [(T10 + 50 * MIN, 7.0, None, N), (T10 + 70 * MIN, 9.0, None, N)])
    assert closed[0].coverage == timedelta(minutes=10)
    assert s.hour.covered_s == 600 and s.hour.weighted == 7.0 * 600


def test_an_hour_needs_its_minimum_coverage() -> None:
    params = WindowParams(max_slice=timedelta(minutes=1))
    s = Series(weighting=Weighting.TIME)
    short = [(T10 + i * MIN, 500.0, None, N) for i in range(44)]  # 44 one-minute slices
    _, closed = feed(s, [*short, (T10 + 61 * MIN, 1.0, None, N)], params)
    assert closed[0].coverage == timedelta(minutes=44)
    assert not closed[0].valid and closed[0].mean is None
    s = Series(weighting=Weighting.TIME)
    enough = [(T10 + i * MIN, 500.0, None, N) for i in range(45)]
    _, closed = feed(s, [*enough, (T10 + 61 * MIN, 1.0, None, N)], params)
    assert closed[0].valid and closed[0].mean == 500.0


def test_a_gap_does_not_weigh_one_value_for_hours() -> None:
    s = Series(weighting=Weighting.TIME)
    # 10:00 value 100, then nothing until 10:50: the cap (10 min) keeps 100 from filling the
    # hour; the 10:50 value holds 10 min. Coverage 20 min: invalid.
    _, closed = feed(
        s,
        [(T10, 100.0, None, N), (T10 + 50 * MIN, 20.0, None, N), (T10 + 60 * MIN, 0.0, None, N)],
        WindowParams(),
    )
    assert closed[0].coverage == timedelta(minutes=20)
    assert not closed[0].valid


def test_flagged_values_are_excluded_and_counted() -> None:
    # Every 5 min; 10:15–10:25 in maintenance (M) with high values: 45 valid minutes remain,
    # exactly the minimum, and the mean is that of the N values only.
    s = Series(weighting=Weighting.FLOW)
    points = []
    for i in range(12):
        flag = DataFlag.MAINTENANCE if i in (3, 4, 5) else N
        points.append((T10 + i * 5 * MIN, 400.0 if flag is not N else 40.0, 10.0, flag))
    _, closed = feed(s, [*points, (T10 + 60 * MIN, 40.0, 10.0, N)])
    hour = closed[0]
    assert hour.flags == {"N": 9, "M": 3}
    assert hour.coverage == timedelta(minutes=45)
    assert hour.valid and hour.mean == 40.0


def test_a_flagged_flow_invalidates_the_slice() -> None:
    s = Series(weighting=Weighting.FLOW)
    closed: list[Window] = []
    for i in range(12):
        ts = T10 + i * 5 * MIN
        flow_flag = DataFlag.FAULT if i < 4 else N
        s, out = add(s, ts, Measurement(value=50.0), WIDE, Measurement(value=10.0, flag=flow_flag))
        closed += out
    s, out = add(s, T10 + 60 * MIN, Measurement(value=50.0), WIDE, Measurement(value=10.0))
    (hour,) = [w for w in out if w.period is Period.HOUR]
    assert hour.coverage == timedelta(minutes=40) and not hour.valid


def test_no_discharge_is_a_valid_hour_without_a_mean() -> None:
    s = Series(weighting=Weighting.FLOW)
    _, closed = feed(s, [(T10 + i * 5 * MIN, 30.0, 0.0, N) for i in range(13)])
    assert closed[0].valid and closed[0].mean is None and closed[0].volume_m3 == 0


def test_late_readings_are_dropped() -> None:
    s = Series(weighting=Weighting.TIME)
    s, _ = feed(s, [(T10 + 10 * MIN, 5.0, None, N)])
    again, closed = add(s, T10 + 5 * MIN, Measurement(value=900.0), WIDE)
    assert again == s and closed == []


def test_the_day_is_the_flow_weighted_mean_of_its_valid_hours() -> None:
    # 24 hours, one reading every 30 min: 20 hours at C=40, Q=10; 4 hours at C=100, Q=30.
    s = Series(weighting=Weighting.FLOW)
    day = datetime(2026, 11, 23, 0, 0, tzinfo=CST)
    points = []
    for h in range(24):
        c, q = (100.0, 30.0) if h >= 20 else (40.0, 10.0)
        points += [(day + timedelta(hours=h, minutes=m), c, q, N) for m in (0, 30)]
    s, closed = feed(s, [*points, (day + timedelta(days=1), 40.0, 10.0, N)])
    hours = [w for w in closed if w.period is Period.HOUR]
    days = [w for w in closed if w.period is Period.DAY]
    assert len(hours) == 24 and len(days) == 1
    d = days[0]
    assert d.start == day and d.end == day + timedelta(days=1)
    # ΣG/ΣD: (40×10×20 + 100×30×4) / (10×20 + 30×4) = 20,000 / 320 = 62.5 mg/L
    assert d.valid and d.mean == 62.5
    assert d.coverage == timedelta(hours=24)
    assert d.flags == {"N": 48}
    assert s.day_start == day + timedelta(days=1)


def test_a_day_with_too_few_valid_hours_gives_no_mean() -> None:
    s = Series(weighting=Weighting.TIME)
    day = datetime(2026, 11, 23, 0, 0, tzinfo=CST)
    # 19 hours of data (the minimum is 20), then a reading the next day.
    points = [
        (day + timedelta(hours=h, minutes=m), 30.0, None, N)
        for h in range(19)
        for m in range(0, 60, 10)
    ]
    _, closed = feed(s, [*points, (day + timedelta(days=1, minutes=1), 30.0, None, N)])
    d = next(w for w in closed if w.period is Period.DAY)
    assert not d.valid and d.mean is None and d.coverage == timedelta(hours=19)


def test_the_day_of_time_weighted_series_is_the_mean_of_hourly_means() -> None:
    s = Series(weighting=Weighting.TIME)
    day = datetime(2026, 11, 23, 0, 0, tzinfo=CST)
    points = [
        (day + timedelta(hours=h, minutes=m), float(h), None, N)
        for h in range(24)
        for m in range(0, 60, 10)
    ]
    _, closed = feed(s, [*points, (day + timedelta(days=1), 0.0, None, N)])
    d = next(w for w in closed if w.period is Period.DAY)
    assert d.mean == 11.5  # (0 + 1 + ... + 23) / 24


def test_local_hour_and_day() -> None:
    ts = datetime(2026, 11, 23, 16, 30, tzinfo=UTC)  # 00:30 on the 24th in China
    assert day_of(ts) == datetime(2026, 11, 24, tzinfo=CST)
    assert hour_of(ts) == datetime(2026, 11, 24, 0, 0, tzinfo=CST)


def test_series_round_trips_through_json() -> None:
    s = Series(weighting=Weighting.FLOW)
    s, _ = feed(s, [(T10, 50, 10, N), (T10 + 30 * MIN, 90, 30, DataFlag.CALIBRATION)])
    assert Series.model_validate_json(s.model_dump_json()) == s


def test_minutes_are_the_time_weighted_mean_of_their_slices() -> None:
    # Readings every 20 s: 30, 60, 90 in the 10:00 minute; 10:01:00 closes it.
    s = Series(weighting=Weighting.TIME)
    points = [(T10 + timedelta(seconds=20 * i), v, None, N) for i, v in enumerate([30, 60, 90, 0])]
    s, closed = feed(s, points, periods=(Period.MINUTE,))
    (minute,) = closed
    assert minute.start == T10 and minute.end == T10 + MIN
    assert minute.mean == 60.0 and minute.valid and minute.flags == {"N": 3}
    assert minute.coverage == timedelta(seconds=60) and minute.volume_m3 is None


def test_a_flow_weighted_minute_is_the_minutes_mass_over_its_volume() -> None:
    # 30 s at Q=10 L/s, C=50; 30 s at Q=30 L/s, C=90: D = 0.3 + 0.9 = 1.2 m³,
    # G = (50×0.3 + 90×0.9) × 1e-3 = 0.096 kg, C = 80 mg/L.
    s = Series(weighting=Weighting.FLOW)
    points = [(T10, 50, 10, N), (T10 + timedelta(seconds=30), 90, 30, N), (T10 + MIN, 0, 0, N)]
    s, closed = feed(s, points, periods=(Period.MINUTE,))
    (minute,) = closed
    assert minute.mean == 80.0
    assert minute.volume_m3 == pytest.approx(1.2) and minute.mass_kg == pytest.approx(0.096)


def test_a_held_value_fills_the_minutes_until_the_next_reading_within_the_slice_cap() -> None:
    # A reading at 10:00 and the next at 10:05, slices capped at 2 min: 10:00 and 10:01 are
    # covered; 10:02-10:04 had no data, so no window (a gap in the chart, as for hours);
    # 10:05 stays open.
    params = WindowParams(max_slice=timedelta(minutes=2))
    s = Series(weighting=Weighting.TIME)
    s, closed = feed(
        s, [(T10, 40, None, N), (T10 + 5 * MIN, 80, None, N)], params, (Period.MINUTE,)
    )
    assert [(w.start.minute, w.mean, w.valid) for w in closed] == [(0, 40, True), (1, 40, True)]
    assert s.minute_start == T10 + 5 * MIN


def test_a_minute_closes_before_its_hour_and_the_hours_mean_is_unchanged() -> None:
    s = Series(weighting=Weighting.TIME)
    points = [(T10 + 10 * MIN * i, 50.0 + i, None, N) for i in range(7)]
    s, closed = feed(s, points, periods=(Period.MINUTE, Period.HOUR, Period.DAY))
    assert [w.period for w in closed[-2:]] == [Period.MINUTE, Period.HOUR]
    assert closed[-2].end == closed[-1].end == T10 + 60 * MIN
    hour = closed[-1]
    assert hour.mean == pytest.approx(sum(50.0 + i for i in range(6)) / 6)
    assert len([w for w in closed if w.period is Period.MINUTE]) == 60


def test_minute_coverage_below_its_minimum_has_no_mean() -> None:
    # Readings every 60 s, slices capped at 30 s: 30 s of each minute are covered (< 45 s).
    params = WindowParams(max_slice=timedelta(seconds=30))
    s = Series(weighting=Weighting.TIME)
    s, closed = feed(s, [(T10, 40, None, N), (T10 + MIN, 40, None, N)], params, (Period.MINUTE,))
    (minute,) = closed
    assert minute.coverage == timedelta(seconds=30) and not minute.valid and minute.mean is None
