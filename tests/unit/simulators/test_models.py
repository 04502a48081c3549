"""Device models are deterministic for a seed and produce valid, plausible readings; the
discharge meter accounts per HJ 212 Appendix D; every fault mode carries its flag."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from statistics import mean

import pytest

from ecowatch.config.catalogue import DeviceModel
from ecowatch.schema import DataFlag, DeviceReading, MeterEventKind, ValveCommand, ValveState
from ecowatch.simulators.models import (
    CHINA,
    GB_8978_FIRST_GRADE,
    GB_18918_1A,
    MODELS,
    AirStation,
    BaseMonitor,
    Conditions,
    DischargeMeter,
    Effluent,
    FlueGasMonitor,
    Mode,
    OutfallMonitor,
    appendix_d,
)
from ecowatch.streams.judging.flue_gas import corrected

WATER = {"w00000", "w01018", "w21003", "w21011", "w21001", "w01001"}


def run(seed: int, n: int = 48) -> list[DeviceReading]:
    model = OutfallMonitor(device="33080200000001", seed=seed)
    start = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)
    return [model.reading(start + timedelta(minutes=30 * i)) for i in range(n)]  # type: ignore[misc]


def readings(
    model: BaseMonitor, start: datetime, hours: float, step: timedelta = timedelta(hours=1)
) -> list[DeviceReading]:
    out, t = [], start
    while t < start + timedelta(hours=hours):
        r = model.reading(t)
        assert r is not None
        out.append(r)
        t += step
    return out


def at_hours(rs: list[DeviceReading], code: str, hours: set[int]) -> float:
    return mean(r.values[code].value for r in rs if r.ts.astimezone(CHINA).hour in hours)


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=CHINA)  # type: ignore[misc]


# -- the common shape --------------------------------------------------------------------------


def test_one_model_per_catalogue_device_model():
    assert set(MODELS) == {m.value for m in DeviceModel}
    assert all(cls.model == name for name, cls in MODELS.items())


@pytest.mark.parametrize("name", sorted(MODELS))
def test_same_seed_same_readings_for_every_kind(name: str):
    def series(seed: int) -> list[DeviceReading | None]:
        model = MODELS[name](device="33080200X00001", seed=seed)
        start = local(2026, 12, 1, 0, 0)
        return [model.reading(start + timedelta(minutes=20 * i)) for i in range(72)]

    assert series(7) == series(7)
    assert series(7) != series(8)


def test_different_devices_with_one_seed_differ():
    t = local(2026, 11, 23, 10)
    a = OutfallMonitor("33080200000001", 1).reading(t)
    b = OutfallMonitor("33080200000002", 1).reading(t)
    assert a is not None and b is not None and a.values != b.values


def test_a_device_reports_what_its_catalogue_entry_lists():
    full = OutfallMonitor("33080200000001", 1)
    four = OutfallMonitor("33080200000001", 1, reported=["w01001", "w00000", "w01018", "w21003"])
    assert four.pollutants == ("w00000", "w01018", "w21003", "w01001")
    a, b = full.reading(T0), four.reading(T0)
    assert a is not None and b is not None
    assert b.values == {code: a.values[code] for code in four.pollutants}
    four.set_mode(Mode.NEGATIVE_SPIKES)
    four.conditions = replace(four.conditions, spike_rate=1.0)
    for r in series(four, 10):
        assert r is not None and sum(m.value < 0 for m in r.values.values()) == 1
    with pytest.raises(ValueError, match="cannot report"):
        OutfallMonitor("33080200000001", 1, reported=["a34004"])


def test_a_naive_time_is_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        OutfallMonitor("33080200000001", 1).reading(datetime(2026, 11, 23, 10))


# -- outfall -----------------------------------------------------------------------------------


def test_plausible_values_and_a_daily_flow_cycle():
    rs = run(3)
    for r in rs:
        assert set(r.values) == WATER
        assert 6.0 < r.values["w01001"].value < 8.5
        assert r.values["w01018"].value > 0
    # 16:00 UTC is midnight in China (night trickle), 05:00 UTC is 13:00 (day shift peak).
    by_hour = {r.ts.hour: r.values["w00000"].value for r in rs if r.ts.minute == 0}
    assert by_hour[5] > 2 * by_hour[16]
    assert [r.seq for r in rs] == list(range(1, 49))


def test_an_ideal_instrument_shows_the_process_exactly():
    # noise=0, continuous process: full load all day, so the typical levels exactly.
    model = OutfallMonitor("33080200000001", 1, noise=0, shift=None, levels={"w01018": 60.0})
    r = model.reading(local(2026, 11, 23, 3))
    assert r is not None
    assert {c: m.value for c, m in r.values.items()} == {
        "w00000": 35.0,
        "w01018": 60.0,
        "w21003": 4.5,
        "w21011": 0.2,
        "w21001": 10.0,
        "w01001": 7.2,
    }
    # A day shift: at 03:00 the plant idles at 35 % load and weaker wastewater.
    shift = OutfallMonitor("33080200000001", 1, noise=0).reading(local(2026, 11, 23, 3))
    assert shift is not None
    assert shift.values["w00000"].value == 12.25  # 35 L/s × 0.35
    assert shift.values["w01018"].value == 40.2  # 50 mg/L × (0.7 + 0.3 × 0.35)


@pytest.mark.parametrize(
    ("effluent", "limits"),
    [(Effluent.INDUSTRIAL, GB_8978_FIRST_GRADE), (Effluent.TREATMENT_PLANT, GB_18918_1A)],
)
def test_a_healthy_outfall_is_compliant_at_every_reading_for_a_week(effluent, limits):
    model = OutfallMonitor("33080200000002", 11, effluent=effluent)
    rs = readings(model, local(2026, 11, 16), 24 * 7, timedelta(minutes=15))
    for r in rs:
        assert all(m.flag is DataFlag.NORMAL for m in r.values.values())
        for code, limit in limits.items():
            assert 0 < r.values[code].value < limit, (code, r.ts)
        assert 6.0 <= r.values["w01001"].value <= 9.0
        assert r.values["w00000"].value > 0


def test_industrial_day_shift_flow_and_load_dependent_concentration():
    rs = readings(OutfallMonitor("33080200000001", 2), local(2026, 11, 16), 24 * 7)
    assert at_hours(rs, "w00000", {13, 14}) > 2.4 * at_hours(rs, "w00000", {1, 2, 3})
    assert at_hours(rs, "w01018", {13, 14}) > 1.15 * at_hours(rs, "w01018", {1, 2, 3})


def test_treatment_plant_effluent_follows_the_diurnal_sewage_flow():
    plant = OutfallMonitor("33080200000002", 2, effluent="treatment_plant")
    rs = readings(plant, local(2026, 11, 16), 24 * 7)
    day, dawn = at_hours(rs, "w00000", {15, 16}), at_hours(rs, "w00000", {4, 5})
    assert 1.4 < day / dawn < 1.8
    assert 180 < mean(r.values["w00000"].value for r in rs) < 280  # about 20,000 m³/d


def test_sensor_drift_stays_bounded_over_months():
    model = OutfallMonitor("33080200000001", 5, shift=None)
    readings(model, local(2026, 1, 1), 24 * 90, timedelta(hours=6))
    assert all(abs(d) <= ch.drift for ch in model.channels for d in [model._drift[ch.code]])


# -- air station -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def october() -> list[DeviceReading]:
    return readings(AirStation("33080200A00001", 4), local(2026, 10, 5), 24 * 14)


def test_air_values_are_plausible(october):
    for r in october:
        assert set(r.values) == {"a34004", "a34002", "a21026", "a21004", "a05024", "a21005"}
        assert all(m.flag is DataFlag.NORMAL for m in r.values.values())
        assert 5 < r.values["a34004"].value < r.values["a34002"].value < 200
        assert 1 < r.values["a21026"].value < 40
        assert 5 < r.values["a21004"].value < 120
        assert 1 < r.values["a05024"].value < 200
        assert 0.2 < r.values["a21005"].value < 2.5


def test_no2_peaks_at_the_rush_hours(october):
    midday = at_hours(october, "a21004", {12, 13})
    assert at_hours(october, "a21004", {7, 8}) > 1.5 * midday
    assert at_hours(october, "a21004", {18, 19}) > 1.5 * midday


def test_o3_peaks_in_the_afternoon_against_no2(october):
    assert at_hours(october, "a05024", {14, 15}) > 2.5 * at_hours(october, "a05024", {5, 6})
    # Anti-correlated over the day: where NO2 is high, O3 is low.
    no2 = [at_hours(october, "a21004", {h}) for h in range(24)]
    o3 = [at_hours(october, "a05024", {h}) for h in range(24)]
    assert o3.index(max(o3)) in (13, 14, 15, 16)
    assert no2.index(min(no2)) in (12, 13, 14, 15)


@pytest.fixture(scope="module")
def winter() -> tuple[AirStation, list[DeviceReading]]:
    station = AirStation("33080200A00001", 4)
    return station, readings(station, local(2026, 11, 1), 24 * 120)


def test_winter_pm_episodes_last_days_with_a_high_pm25_share(winter):
    station, rs = winter
    episodes = station.pm_episodes(2026)
    assert 5 <= len(episodes) <= 14
    for e in episodes:
        assert timedelta(days=2) <= e.end - e.start <= timedelta(days=5)
        assert local(2026, 11, 1) <= e.start and e.end <= local(2027, 3, 1)
    hazy = [r for r in rs if (e := station.pm_episode(r.ts)) and e.envelope(r.ts) > 0.5]
    clear = [r for r in rs if station.pm_episode(r.ts) is None]
    pm25 = lambda group: mean(r.values["a34004"].value for r in group)  # noqa: E731
    ratio = lambda group: mean(r.values["a34004"].value / r.values["a34002"].value for r in group)  # noqa: E731
    assert pm25(hazy) > 1.8 * pm25(clear)
    assert pm25(hazy) > 75  # heavier than the GB 3095 grade II daily limit
    assert ratio(hazy) > 0.72 and ratio(clear) < 0.66


def test_episodes_are_a_function_of_seed_and_season_only():
    a, b = AirStation("33080200A00001", 4), AirStation("33080200A00001", 4)
    a.reading(local(2026, 12, 1))
    assert a.pm_episodes(2026) == b.pm_episodes(2026)
    assert a.pm_episodes(2026) != AirStation("33080200A00001", 5).pm_episodes(2026)
    assert a.pm_episode(local(2026, 7, 1)) is None


def test_summer_is_cleaner_than_winter(winter):
    _, rs = winter
    january = [r.values["a34004"].value for r in rs if r.ts.astimezone(CHINA).month == 1]
    july = readings(AirStation("33080200A00001", 4), local(2026, 7, 1), 24 * 31)
    assert mean(january) > 2.5 * mean(r.values["a34004"].value for r in july)
    assert max(r.values["a34004"].value for r in july) < 75
    # ... and O3 is the summer pollutant.
    assert max(r.values["a05024"].value for r in july) > 140


# -- discharge meter: Appendix D ---------------------------------------------------------------

IDEAL = {"w00000": 10.0, "w01018": 50.0, "w21003": 5.0}
T0 = local(2026, 11, 23, 10, 0)


def ideal_meter(**params) -> DischargeMeter:
    # Q = 10 L/s, COD 50 mg/L, NH3-N 5 mg/L exactly: no noise, a continuous process.
    return DischargeMeter("33080200M00001", 1, noise=0, shift=None, levels=IDEAL, **params)


def test_appendix_d_worked_example():
    # ΔD = 10 L/s × 600 s × 1e-3 = 6 m³; G = 50 mg/L × 6 m³ × 1e-3 = 0.3 kg.
    assert appendix_d(10.0, 600, {"w01018": 50.0}) == pytest.approx({"w00000": 6.0, "w01018": 0.3})
    assert appendix_d(-3.0, 600, {"w01018": 50.0}) == {"w00000": 0.0, "w01018": 0.0}


def test_the_meter_accumulates_the_slice_since_its_previous_reading():
    meter = ideal_meter()
    first = meter.reading(T0)
    assert first is not None and first.meter is not None
    assert first.meter.used == {"w00000": 0.0, "w01018": 0.0, "w21003": 0.0}
    second = meter.reading(T0 + timedelta(seconds=600))
    assert second is not None and second.meter is not None
    assert second.values["w00000"].value == 10.0
    assert second.meter.used == pytest.approx({"w00000": 6.0, "w01018": 0.3, "w21003": 0.03})
    third = meter.reading(T0 + timedelta(seconds=900))
    assert third is not None and third.meter is not None
    assert third.meter.used["w00000"] == pytest.approx(9.0)
    assert third.meter.period == "2026-11"
    assert third.meter.card_id == "IC-33080200M00001"


def test_used_is_the_appendix_d_sum_of_the_reported_values():
    meter = DischargeMeter("33080200M00001", 3)
    rs = readings(meter, T0, 6, timedelta(minutes=5))
    volume = sum(r.values["w00000"].value * 300 * 1e-3 for r in rs[1:])
    cod = sum(r.values["w01018"].value * r.values["w00000"].value * 300 * 1e-6 for r in rs[1:])
    assert rs[-1].meter is not None
    assert rs[-1].meter.used["w00000"] == pytest.approx(volume, rel=1e-6)
    assert rs[-1].meter.used["w01018"] == pytest.approx(cod, rel=1e-6)


def test_monthly_quota_is_a_share_of_the_annual_permit():
    meter = ideal_meter(annual_quota={"w00000": 120_000.0, "w01018": 6_000.0})
    assert meter.reading(T0).meter.quota == {"w00000": 10_000.0, "w01018": 500.0}  # type: ignore[union-attr]
    weighted = ideal_meter(
        annual_quota={"w00000": 130_000.0},
        year_start_month=7,
        monthly_split=[1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2],  # January..December
    )
    assert weighted.reading(local(2026, 12, 5)).meter.quota == {"w00000": 20_000.0}  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="12 non-negative"):
        ideal_meter(monthly_split=[1, 2, 3])


def test_a_new_month_restarts_used_with_its_own_share():
    meter = ideal_meter()
    meter.reading(local(2026, 11, 30, 23, 50))
    late = meter.reading(local(2026, 11, 30, 23, 59))
    assert late is not None and late.meter is not None
    assert late.meter.used["w00000"] == pytest.approx(5.4)
    meter.recharge({"w00000": 1000.0}, local(2026, 11, 30, 23, 59, 30))
    december = meter.reading(local(2026, 12, 1, 0, 9))
    assert december is not None and december.meter is not None
    assert december.meter.period == "2026-12"
    # The slice across midnight counts in the new month; November's recharge is gone.
    assert december.meter.used["w00000"] == pytest.approx(6.0)
    assert december.meter.quota["w00000"] == pytest.approx(460_000 / 12, abs=1e-5)
    assert [e.kind for e in december.meter.events] == [MeterEventKind.RECHARGED]


def test_the_accounting_year_resets_without_carry_over():
    meter = ideal_meter(year_start_month=7)
    meter.reading(local(2027, 6, 30, 23, 0))
    meter.recharge({"w00000": 5000.0, "w01018": 100.0}, local(2027, 6, 30, 23, 10))
    june = meter.reading(local(2027, 6, 30, 23, 20))
    assert june is not None and june.meter is not None
    assert june.meter.quota["w00000"] == pytest.approx(460_000 / 12 + 5000, abs=1e-5)
    july = meter.reading(local(2027, 7, 1, 0, 20))
    assert july is not None and july.meter is not None
    assert [e.kind for e in july.meter.events] == [MeterEventKind.YEAR_RESET]
    assert "2027-07" in july.meter.events[0].detail
    assert july.meter.quota["w00000"] == pytest.approx(460_000 / 12, abs=1e-5)
    # A new month that is not the year's start: no YEAR_RESET.
    august = meter.reading(local(2027, 8, 1, 0, 20))
    assert august is not None and august.meter is not None and august.meter.events == []


def test_a_forced_year_reset_and_used_near_the_quota():
    meter = ideal_meter(annual_quota={"w00000": 1200.0})
    meter.reading(T0)
    meter.set_used_fraction(0.95, T0)
    assert meter.used == {"w00000": pytest.approx(95.0)}
    meter.year_reset(T0 + timedelta(seconds=1))
    r = meter.reading(T0 + timedelta(seconds=2))
    assert r is not None and r.meter is not None
    assert r.meter.used["w00000"] == pytest.approx(0.01)  # 10 L/s × 1 s after the reset
    assert [e.kind for e in r.meter.events] == [MeterEventKind.YEAR_RESET]


def test_recharge_adds_to_the_period_quota_and_is_reported_once():
    meter = ideal_meter()
    meter.reading(T0)
    meter.recharge({"w01018": 150.0, "w21003": 12.5}, T0 + timedelta(minutes=1))
    r = meter.reading(T0 + timedelta(minutes=2))
    assert r is not None and r.meter is not None
    assert r.meter.quota["w01018"] == pytest.approx(25_000 / 12 + 150, abs=1e-5)
    (event,) = r.meter.events
    assert event.kind is MeterEventKind.RECHARGED
    assert event.amounts == {"w01018": 150.0, "w21003": 12.5}
    assert event.at == T0 + timedelta(minutes=1)
    assert meter.reading(T0 + timedelta(minutes=3)).meter.events == []  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="recharge"):
        meter.recharge({"w21011": 1.0}, T0)


def close(command_id: str) -> ValveCommand:
    return ValveCommand(command="close_valve", reason="quota", issued_at=T0, command_id=command_id)


def test_valve_commands_stop_and_restart_accumulation():
    meter = ideal_meter()
    meter.reading(T0)
    meter.apply_command(close("cmd-17"), T0 + timedelta(seconds=300))  # settles 300 s
    shut = meter.reading(T0 + timedelta(seconds=600))
    assert shut is not None and shut.meter is not None
    assert shut.meter.valve is ValveState.CLOSED
    assert [(e.kind, e.detail) for e in shut.meter.events] == [
        (MeterEventKind.VALVE_CLOSED, "cmd-17")
    ]
    assert shut.values["w00000"].value == 0.0
    assert {m.flag for m in shut.values.values()} == {DataFlag.STOPPED}
    assert shut.meter.used["w00000"] == pytest.approx(3.0)
    meter.reading(T0 + timedelta(seconds=900))
    reopen = ValveCommand(command="open_valve", reason="recharged", issued_at=T0, command_id="c18")
    meter.apply_command(reopen, T0 + timedelta(seconds=1200))
    r = meter.reading(T0 + timedelta(seconds=1500))
    assert r is not None and r.meter is not None
    assert r.meter.valve is ValveState.OPEN
    assert r.meter.events[0].detail == "c18"
    assert r.values["w00000"] == r.values["w00000"].model_copy(update={"value": 10.0})
    assert r.meter.used["w00000"] == pytest.approx(6.0)  # 300 s before the close + 300 s after


def test_an_exhausted_quota_does_not_close_the_valve():
    meter = ideal_meter(annual_quota={"w00000": 120.0})  # 10 m³ a month
    meter.reading(T0)
    r = meter.reading(T0 + timedelta(hours=1))  # 36 m³
    assert r is not None and r.meter is not None
    assert r.meter.used["w00000"] > r.meter.quota["w00000"]
    assert r.meter.valve is ValveState.OPEN and r.values["w00000"].value == 10.0


def test_card_removed_and_inserted():
    meter = ideal_meter()
    meter.reading(T0)
    meter.remove_card(T0 + timedelta(seconds=10))
    r = meter.reading(T0 + timedelta(seconds=60))
    assert r is not None and r.meter is not None
    assert r.meter.card_id is None
    assert r.meter.events[0].kind is MeterEventKind.CARD_REMOVED
    assert r.meter.used["w00000"] == pytest.approx(0.6)  # the totaliser does not need the card
    meter.insert_card("IC-OTHER", T0 + timedelta(seconds=70))
    r = meter.reading(T0 + timedelta(seconds=120))
    assert r is not None and r.meter is not None and r.meter.card_id == "IC-OTHER"
    assert (r.meter.events[0].kind, r.meter.events[0].detail) == (
        MeterEventKind.CARD_INSERTED,
        "IC-OTHER",
    )


def test_an_offline_meter_keeps_counting_and_keeps_its_events():
    meter = ideal_meter()
    meter.reading(T0)
    meter.set_mode(Mode.OFFLINE)
    meter.recharge({"w00000": 10.0}, T0 + timedelta(seconds=30))
    assert meter.reading(T0 + timedelta(seconds=60)) is None
    meter.set_mode(Mode.OFFLINE, False)
    r = meter.reading(T0 + timedelta(seconds=120))
    assert r is not None and r.meter is not None and r.seq == 2
    assert r.meter.used["w00000"] == pytest.approx(1.2)
    assert [e.kind for e in r.meter.events] == [MeterEventKind.RECHARGED]


def test_substituted_concentration_while_calibrating():
    # The span value read during calibration is not accounted: the last valid COD is.
    meter = ideal_meter()
    meter.reading(T0)
    meter.set_mode(Mode.CALIBRATION)
    r = meter.reading(T0 + timedelta(seconds=600))
    assert r is not None and r.meter is not None
    assert r.values["w01018"].flag is DataFlag.CALIBRATION
    assert r.meter.used["w01018"] == pytest.approx(0.3)


# -- fault modes and flags ---------------------------------------------------------------------


def outfall() -> OutfallMonitor:
    return OutfallMonitor("33080200000001", 9)


def series(
    model: BaseMonitor, n: int = 6, start: datetime = T0, step: timedelta = timedelta(minutes=1)
) -> list[DeviceReading | None]:
    return [model.reading(start + step * i) for i in range(n)]


def flags(r: DeviceReading | None) -> dict[str, str]:
    assert r is not None
    return {code: m.flag.value for code, m in r.values.items()}


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        (Mode.MAINTENANCE, dict.fromkeys(WATER, "M")),
        (Mode.STOPPED, dict.fromkeys(WATER, "F")),
        (Mode.CALIBRATION, {**dict.fromkeys(WATER, "C"), "w00000": "N"}),
        (Mode.STUCK, dict.fromkeys(WATER, "N")),
        (Mode.ZEROS, dict.fromkeys(WATER, "N")),
        (Mode.NEGATIVE_SPIKES, dict.fromkeys(WATER, "N")),
    ],
)
def test_each_mode_carries_its_flag(mode: Mode, expected: dict[str, str]):
    model = outfall()
    model.set_mode(mode)
    assert all(flags(r) == expected for r in series(model))


def test_stopped_means_no_flow():
    model = outfall()
    model.set_mode(Mode.STOPPED)
    assert all(r.values["w00000"].value == 0.0 for r in series(model))  # type: ignore[union-attr]


def test_offline_is_silent_and_the_sequence_resumes():
    model = outfall()
    before = series(model, 2)
    model.set_mode(Mode.OFFLINE)
    assert series(model, 3, T0 + timedelta(minutes=2)) == [None, None, None]
    model.set_mode(Mode.OFFLINE, False)
    after = model.reading(T0 + timedelta(minutes=5))
    assert [r.seq for r in before] == [1, 2] and after is not None and after.seq == 3  # type: ignore[union-attr]


def test_stuck_repeats_the_last_values():
    model = outfall()
    last = model.reading(T0)
    assert last is not None
    model.set_mode(Mode.STUCK)
    stuck = series(model, 5, T0 + timedelta(minutes=1), timedelta(hours=2))
    assert all(r is not None and r.values == last.values for r in stuck)
    model.set_mode(Mode.STUCK, False)
    assert model.reading(T0 + timedelta(hours=11)).values != last.values  # type: ignore[union-attr]


def test_zeros():
    model = outfall()
    model.set_mode(Mode.ZEROS)
    assert all({m.value for m in r.values.values()} == {0.0} for r in series(model))  # type: ignore[union-attr]


def test_negative_spikes():
    model = outfall()
    model.conditions = Conditions(modes=frozenset({Mode.NEGATIVE_SPIKES}), spike_rate=1.0)
    for r in series(model, 20):
        assert r is not None
        assert sum(m.value < 0 for m in r.values.values()) == 1
    healthy = series(outfall(), 200)
    assert all(m.value >= 0 for r in healthy for m in r.values.values())  # type: ignore[union-attr]


def test_out_of_range_is_above_the_instrument_range_and_flagged_t():
    model = outfall()
    model.out_of_range()  # the primary pollutant, COD (range 500 mg/L)
    model.out_of_range("w21003")
    for r in series(model):
        assert flags(r) == {**dict.fromkeys(WATER, "N"), "w01018": "T", "w21003": "T"}
        assert r.values["w01018"].value > 500 and r.values["w21003"].value > 50  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="does not measure"):
        model.out_of_range("a34004")


def test_calibration_settles_on_the_span():
    model = outfall()
    model.set_mode(Mode.CALIBRATION)
    first, *_, settled = series(model, 31)  # 30 minutes: ten time constants
    assert first is not None and settled is not None
    assert first.values["w01018"].value < 100
    assert settled.values["w01018"].value == pytest.approx(400.0, rel=0.01)  # 80 % of 500
    assert settled.values["w01001"].value == pytest.approx(9.18, abs=0.02)  # pH buffer
    assert settled.values["w00000"].value < 60  # the flow meter is not calibrated


def test_exceed_holds_a_multiple_of_the_limit_flagged_normal():
    model = outfall()
    model.exceed("w01018", 2.5)
    rs = series(model, 60)
    cods = [r.values["w01018"].value for r in rs]  # type: ignore[union-attr]
    assert 240 < mean(cods) < 260 and min(cods) > 150
    assert all(r.values["w01018"].flag is DataFlag.NORMAL for r in rs)  # type: ignore[union-attr]
    model.exceed("w01018", None)
    assert model.reading(T0 + timedelta(hours=2)).values["w01018"].value < 100  # type: ignore[union-attr]
    with pytest.raises(ValueError, match="cannot exceed"):
        model.exceed("w01001", 2.0)


def test_exceeding_past_the_instrument_range_is_flagged_t():
    model = outfall()
    model.exceed("w01018", 8.0)  # 800 mg/L on a 0–500 mg/L analyser
    assert flags(model.reading(T0))["w01018"] == "T"


def twin(make: Callable[[], BaseMonitor], mode: Mode, when: datetime) -> tuple:
    """The same device with and without ``mode``, read at ``when``."""
    plain, changed = make(), make()
    changed.set_mode(mode)
    return plain.reading(when), changed.reading(when)


def test_night_discharge_shows_at_night_only():
    plain, night = twin(outfall, Mode.NIGHT_DISCHARGE, local(2026, 11, 23, 23, 30))
    assert night.values["w01018"].value > 100 > plain.values["w01018"].value
    assert night.values["w00000"].value > plain.values["w00000"].value + 20
    plain, day = twin(outfall, Mode.NIGHT_DISCHARGE, local(2026, 11, 23, 14, 0))
    assert day == plain  # by day the outfall looks exactly like a compliant one


def test_night_discharge_also_shows_in_the_rain():
    def raining() -> BaseMonitor:
        model = outfall()
        model.set_mode(Mode.RAINING)
        return model

    plain, discharge = twin(raining, Mode.NIGHT_DISCHARGE, local(2026, 11, 23, 14, 0))
    assert discharge.values["w01018"].value > 100 > plain.values["w01018"].value


def test_rain_dilutes_an_outfall_and_washes_the_air():
    plain, wet = twin(outfall, Mode.RAINING, local(2026, 11, 23, 14, 0))
    assert wet.values["w00000"].value > plain.values["w00000"].value
    assert wet.values["w01018"].value < plain.values["w01018"].value

    def station() -> BaseMonitor:
        return AirStation("33080200A00001", 1)

    plain, wet = twin(station, Mode.RAINING, local(2026, 12, 20, 14, 0))
    assert wet.values["a34004"].value < 0.6 * plain.values["a34004"].value


def test_air_station_modes_and_flags():
    station = AirStation("33080200A00001", 1)
    station.set_mode(Mode.CALIBRATION)
    assert set(flags(station.reading(T0)).values()) == {"C"}
    station.conditions = station.conditions.with_mode(Mode.CALIBRATION, False)
    station.exceed("a34004", 2.0)
    r = station.reading(T0 + timedelta(minutes=1))
    assert r is not None and 120 < r.values["a34004"].value < 180  # 2 × 75 µg/m³
    assert flags(r)["a34004"] == "N"


def test_a_redelivered_command_is_not_obeyed_twice():
    from datetime import UTC, datetime, timedelta

    from ecowatch.schema import ValveCommand, ValveState
    from ecowatch.simulators.models import DischargeMeter

    meter = DischargeMeter("33080200M00001", 1)
    t = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
    meter.reading(t)
    close = ValveCommand(command="close_valve", reason="q", issued_at=t, command_id="c-1")
    reopen = ValveCommand(command="open_valve", reason="r", issued_at=t, command_id="o-1")
    assert meter.apply_command(close, t)
    assert meter.apply_command(reopen, t + timedelta(minutes=1))
    # The relay sent it again (or a second worker app decided the same): said so, not obeyed.
    assert not meter.apply_command(close, t + timedelta(minutes=2))
    assert meter.status().valve is ValveState.OPEN


# -- flue gas ----------------------------------------------------------------------------------

STACK_CONCENTRATIONS = ("a34013", "a21026", "a21002", "a21003", "a21004", "a21005")
ULTRA_LOW = {"a34013": 10.0, "a21026": 35.0, "a21002": 50.0}


def stack_day(model: FlueGasMonitor) -> list[DeviceReading]:
    """Two December days, a reading every 10 minutes."""
    return readings(model, local(2026, 12, 1, 0, 0), 48, step=timedelta(minutes=10))


def test_a_coal_stack_runs_o2_between_4_and_8_percent_higher_at_low_load():
    model = FlueGasMonitor("33080200G00001", 3)
    rs = stack_day(model)
    o2 = [r.values["a19001"].value for r in rs]
    assert all(4.0 <= v <= 8.0 for v in o2), (min(o2), max(o2))
    assert max(o2) - min(o2) > 2.0  # the load cycle moves it across the band
    # Before dawn the load is lowest and the excess air highest; mid-morning the reverse.
    assert at_hours(rs, "a19001", {3, 4, 5}) > at_hours(rs, "a19001", {9, 10, 11}) + 1.0
    assert at_hours(rs, "a00000", {3, 4, 5}) < at_hours(rs, "a00000", {9, 10, 11})
    for r in rs:
        v = {code: m.value for code, m in r.values.items()}
        assert 40 <= v["a00000"] <= 85 and 4 <= v["a01011"] <= 9.5  # m³/s, m/s
        assert 45 <= v["a01012"] <= 55 and 10 <= v["a01014"] <= 14  # °C after a wet FGD, %
        assert 0 < v["a01013"] < 1  # kPa
        assert all(m.flag is DataFlag.NORMAL for m in r.values.values())


def test_a_stacks_corrected_values_are_the_platforms_and_stay_under_ultra_low():
    model = FlueGasMonitor("33080200G00001", 5)
    for r in stack_day(model):
        o2 = r.values["a19001"].value
        for code in STACK_CONCENTRATIONS:
            m = r.values[code]
            ours = corrected(m.value, o2, 6.0)
            assert ours is not None and m.zs == pytest.approx(ours, abs=0.051)
        for code, limit in ULTRA_LOW.items():
            assert 0.4 * limit < r.values[code].zs < limit  # type: ignore[operator]
        # NOx as NO2 is its NO and NO2, as the analysers count it.
        no, no2 = r.values["a21003"].value, r.values["a21004"].value
        assert r.values["a21002"].value == pytest.approx(no * 46 / 30 + no2, abs=0.2)
    assert all(m.zs is None for code, m in r.values.items() if code not in STACK_CONCENTRATIONS)


def test_a_stack_corrects_to_its_own_reference_oxygen():
    model = FlueGasMonitor(
        "33082500G00003", 1, o2_reference=11.0, o2_band=(9.0, 13.0), limits={"a21002": 300.0}
    )
    for r in stack_day(model):
        o2 = r.values["a19001"].value
        assert 9.0 <= o2 <= 13.0
        nox = r.values["a21002"]
        assert nox.zs == pytest.approx(corrected(nox.value, o2, 11.0), abs=0.051)
        assert 150 < nox.zs < 300  # type: ignore[operator]


def test_a_stacks_exceedance_is_over_the_limit_once_corrected():
    model = FlueGasMonitor("33080200G00001", 2)
    model.exceed("a21002", 1.6)
    rs = stack_day(model)
    for r in rs:
        nox = r.values["a21002"]
        assert nox.flag is DataFlag.NORMAL
        assert 1.3 * 50 < corrected(nox.value, r.values["a19001"].value, 6.0) < 1.9 * 50  # type: ignore[operator]
        no, no2 = r.values["a21003"].value, r.values["a21004"].value
        assert no * 46 / 30 + no2 > 50  # NO and NO2 went up with it
    assert max(r.values["a21026"].zs for r in rs) < 35  # type: ignore[type-var]
    model.exceed("a21002", None)
    (after,) = readings(model, local(2026, 12, 3, 10), 1)
    assert after.values["a21002"].zs < 50  # type: ignore[operator]


def test_a_stopped_stack_has_no_flow_air_for_gas_and_no_corrected_values():
    model = FlueGasMonitor("33080200G00001", 1)
    model.set_mode(Mode.STOPPED)
    (r,) = readings(model, local(2026, 12, 1, 10), 1)
    assert r.values["a00000"].value == 0.0 and r.values["a19001"].value > 19
    assert all(m.flag is DataFlag.STOPPED for m in r.values.values())
    assert all(m.zs is None for m in r.values.values())


def stack_pair(
    noise: float = 1.0, **conditions: object
) -> tuple[list[DeviceReading], list[DeviceReading]]:
    """The same CEMS (one seed, one time) as it is and under ``conditions``: their noise and
    drift draw alike, so the readings differ by what the conditions do only."""
    plain, changed = (FlueGasMonitor("33080200G00001", 4, noise=noise) for _ in range(2))
    changed.conditions = replace(changed.conditions, **conditions)  # type: ignore[arg-type]
    return stack_day(plain), stack_day(changed)


def test_air_let_into_the_flue_lowers_the_measured_values_not_the_corrected_ones():
    # An ideal instrument, so that the O2 read is the O2 there is.
    plain, diluted = stack_pair(noise=0, dilute_o2=14.0)
    for before, after in zip(plain, diluted, strict=True):
        assert after.values["a19001"].value == 14.0
        share = 7 / (21 - before.values["a19001"].value)  # of the gas, the flue gas's
        for code in STACK_CONCENTRATIONS:
            b, a = before.values[code], after.values[code]
            assert a.value == pytest.approx(b.value * share, abs=0.08)  # 1 decimal each
            # Each corrected from a value rounded to 0.1, that one × 15/7 at 14 % O2.
            assert a.zs == pytest.approx(b.zs, abs=0.3)
            assert a.flag is DataFlag.NORMAL
        for code in ("a00000", "a01011"):  # flow and velocity: the same emission, more gas
            assert after.values[code].value == pytest.approx(
                before.values[code].value / share, rel=0.01
            )
        assert after.values["a01014"].value == before.values["a01014"].value  # moisture kept


def test_dilution_hides_an_exceedance_from_the_raw_values_only():
    model = FlueGasMonitor("33080200G00001", 6)
    model.conditions = Conditions(exceed={"a21026": 1.4}, dilute_o2=14.0)
    for r in stack_day(model):
        so2 = r.values["a21026"]
        assert so2.value < 35 < so2.zs  # type: ignore[operator]
        assert so2.zs == pytest.approx(
            corrected(so2.value, r.values["a19001"].value, 6.0), abs=0.051
        )


def test_dilution_to_less_oxygen_than_there_is_changes_nothing():
    plain, diluted = stack_pair(dilute_o2=3.0)  # the band is 4–8 %: air cannot lower O2
    assert [r.values for r in diluted] == [r.values for r in plain]


def test_a_cold_start_up_is_mostly_air_at_a_third_of_the_flow_all_flagged_n():
    model = FlueGasMonitor("33080200G00001", 7)
    model.set_mode(Mode.STARTUP)
    rs = readings(model, local(2026, 12, 1, 6, 0), 6, step=timedelta(minutes=1))
    for r in rs:
        v = {code: m.value for code, m in r.values.items()}
        assert 19.0 <= v["a19001"] <= 21.0  # the platform's high_oxygen, not judged
        assert 0.2 * 80 < v["a00000"] < 0.4 * 80 and v["a01011"] > 0  # reported, not zero
        assert v["a01012"] < 40  # a cold boiler
        for code, limit in ULTRA_LOW.items():
            assert v[code] < 0.5 * limit
        assert all(m.flag is DataFlag.NORMAL for m in r.values.values())
        assert all(m.zs is None for m in r.values.values())  # nothing to correct to
    model.set_mode(Mode.STARTUP, on=False)
    (after,) = readings(model, local(2026, 12, 1, 12, 0), 1)
    assert 4.0 <= after.values["a19001"].value <= 8.0 and after.values["a21002"].zs is not None


def test_a_wrong_reference_scales_the_devices_zs_only():
    right, wrong = stack_pair(o2_reference=9.0)
    for good, bad in zip(right, wrong, strict=True):
        o2 = bad.values["a19001"].value
        for code in STACK_CONCENTRATIONS:
            g, b = good.values[code], bad.values[code]
            assert b.value == g.value and b.flag is DataFlag.NORMAL
            assert b.zs == pytest.approx(corrected(b.value, o2, 9.0), abs=0.051)
            assert b.zs == pytest.approx(g.zs * 12 / 15, abs=0.1)  # type: ignore[operator]
