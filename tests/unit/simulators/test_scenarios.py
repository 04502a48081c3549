"""Scenarios load from validated YAML (every mistake names the file, the event and the field)
and play on models with a manual clock: windows start and end, one-off events fire once."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from ecowatch.clock import ManualClock
from ecowatch.config.catalogue import Catalogue
from ecowatch.durations import parse_duration
from ecowatch.errors import ConfigError
from ecowatch.schema import DataFlag, MeterEventKind, ValveState
from ecowatch.simulators.fleet import model_for
from ecowatch.simulators.models import (
    CHINA,
    AirStation,
    BaseMonitor,
    Conditions,
    DischargeMeter,
    FlueGasMonitor,
    Mode,
    OutfallMonitor,
)
from ecowatch.simulators.scenarios import (
    ACTIONS,
    SCENARIOS,
    load_scenario,
    load_scenario_file,
    scenario_names,
)

START = datetime(2026, 11, 23, 10, 0, tzinfo=CHINA)
METERS = ("33080200M00001", "33080200M00003")  # the meters the scenarios use


def fleet(catalogue: Catalogue, seed: int = 1) -> dict[str, BaseMonitor]:
    """Every catalogue device as a model, with its site's parameters (as a fleet builds it)."""
    return {
        device: model_for(entry, seed + i, catalogue)
        for i, (device, entry) in enumerate(sorted(catalogue.devices.items()))
    }


# -- durations ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("10m", 600), ("2h", 7200), ("1d", 86400), ("1h30m", 5400), ("0", 0), (0, 0)],
)
def test_durations(text, seconds):
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["10", 10, "ten minutes", "-5m", "5 minutes", "", None, True])
def test_bad_durations(text):
    with pytest.raises(ValueError, match="like 30s, 10m"):
        parse_duration(text)


# -- the shipped scenarios ---------------------------------------------------------------------


def test_the_shipped_scenarios_load():
    assert scenario_names() == [
        "calibration-window",
        "demo-city",
        "night-discharge",
        "quota-exhaustion",
        "soak-city",
        "stack-dilution",
        "stack-scr-upset",
        "stack-startup",
        "stack-wrong-reference",
        "station-offline",
        "sustained-cod-exceedance",
    ]
    for name in scenario_names():
        scenario = load_scenario(name)
        assert scenario.name == name and scenario.description
        assert scenario.source == SCENARIOS / f"{name}.yaml"
        # A repeating scenario never ends; every other one does.
        assert (scenario.length is None) == (scenario.every is not None)
    assert load_scenario("soak-city").every == timedelta(days=1)


def test_the_shipped_scenarios_name_catalogue_devices(demo_city):
    used = {d for name in scenario_names() for d in load_scenario(name).devices}
    assert used <= set(demo_city.devices)
    assert {d for d in used if "M" in d} == set(METERS)
    # stack-startup banks the unit (stopped) before lighting it.
    assert set(ACTIONS) - {e.action for n in scenario_names() for e in load_scenario(n).events} == {
        "year_reset",
    }


@pytest.mark.parametrize(
    "name",
    [
        "calibration-window",
        "demo-city",
        "station-offline",
        "stack-dilution",
        "stack-scr-upset",
        "stack-startup",
        "stack-wrong-reference",
    ],
)
def test_the_shipped_scenarios_play_on_the_sample_fleet(catalogue, name):
    models = fleet(catalogue)
    clock = ManualClock(START)
    run = load_scenario(name).run(models, clock)
    while not run.finished:
        run.tick()
        for model in models.values():
            model.reading(clock.now())
        clock.advance(timedelta(minutes=1))
    assert all(m.conditions == Conditions() for m in models.values())


def test_a_missing_scenario_lists_the_known_ones():
    with pytest.raises(ConfigError, match=r"no scenario 'nope'.*night-discharge"):
        load_scenario("nope")


# -- loading errors ----------------------------------------------------------------------------

GOOD_EVENT = """  - at: 10m
    device: "33080200000001"
    action: exceed
    pollutant: w01018
    factor: 2.5
    for: 3h
"""


def broken(tmp_path: Path, second_event: str, header: str = "name: t\nevents:\n") -> str:
    path = tmp_path / "broken.yaml"
    path.write_text(header + GOOD_EVENT + second_event, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_scenario_file(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ")
    return message


def test_a_good_file_loads(tmp_path):
    path = tmp_path / "good.yaml"
    path.write_text("name: good\nevents:\n" + GOOD_EVENT, encoding="utf-8")
    (event,) = load_scenario(path).events
    assert (event.at, event.for_, event.factor) == (timedelta(minutes=10), timedelta(hours=3), 2.5)  # type: ignore[union-attr]


def test_a_wrong_value_names_the_event_and_the_field(tmp_path):
    message = broken(
        tmp_path, "  - {at: 1h, device: X1, action: exceed, pollutant: w01018, factor: -1}\n"
    )
    assert "event #2 (exceed): field 'factor': Input should be greater than 0" in message


def test_an_unknown_action(tmp_path):
    message = broken(tmp_path, "  - {at: 1h, device: X1, action: explode}\n")
    assert "event #2 (explode): field 'action': unknown action 'explode'" in message
    assert "exceed, night_discharge" in message


def test_a_missing_action(tmp_path):
    message = broken(tmp_path, "  - {at: 1h, device: X1}\n")
    assert "event #2: field 'action': missing" in message


def test_an_unknown_field(tmp_path):
    message = broken(tmp_path, "  - {at: 1h, device: X1, action: offline, until: 2h}\n")
    assert "event #2 (offline): field 'until': no such field" in message


def test_a_one_off_event_takes_no_duration(tmp_path):
    message = broken(tmp_path, "  - {at: 1h, device: M1, action: year_reset, for: 1h}\n")
    assert "event #2 (year_reset): field 'for': no such field" in message


def test_a_bad_duration(tmp_path):
    message = broken(tmp_path, "  - {at: soon, device: X1, action: offline}\n")
    assert "event #2 (offline): field 'at':" in message and "like 30s, 10m" in message
    message = broken(tmp_path, "  - {at: 1h, device: X1, action: offline, for: 0s}\n")
    assert "field 'for': Input should be greater than" in message


def test_missing_fields_of_an_action(tmp_path):
    message = broken(tmp_path, "  - {at: 1h, device: M1, action: recharge}\n")
    assert "event #2 (recharge): field 'amounts': Field required" in message
    message = broken(tmp_path, "  - {at: 1h, action: zeros}\n")
    assert "event #2 (zeros): field 'device': Field required" in message


def test_an_event_that_is_not_a_mapping(tmp_path):
    assert "event #2: expected a mapping" in broken(tmp_path, "  - offline\n")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: t\nevents: [\n", "not valid YAML"),
        ("- a\n- b\n", "expected a mapping with name, description, every, events"),
        ("name: t\nwhen: now\nevents: []\n", "unknown field(s) ['when']"),
        ("events:\n" + GOOD_EVENT, "field 'name'"),
        ("name: t\nevents: []\n", "field 'events': expected a list of at least one event"),
    ],
)
def test_a_broken_file(tmp_path, text, expected):
    path = tmp_path / "broken.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"broken\.yaml") as err:
        load_scenario_file(path)
    assert expected in str(err.value)


# -- checked against the fleet -----------------------------------------------------------------


def check(tmp_path: Path, event: str, models: dict[str, BaseMonitor]) -> str:
    path = tmp_path / "check.yaml"
    path.write_text("name: check\nevents:\n" + event, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_scenario_file(path).run(models, ManualClock(START))
    return str(err.value)


def test_an_event_for_a_device_not_in_the_fleet(tmp_path):
    models = {"33080200000001": OutfallMonitor("33080200000001", 1)}
    message = check(tmp_path, "  - {at: 0s, device: X9, action: offline}\n", models)
    assert "check.yaml: event #1 (offline): field 'device': 'X9' is not in the fleet" in message


def test_meter_actions_need_a_meter(tmp_path):
    models = {"O1": OutfallMonitor("O1", 1)}
    message = check(
        tmp_path, "  - {at: 0s, device: O1, action: recharge, amounts: {w00000: 5}}\n", models
    )
    assert "event #1 (recharge): field 'action': 'recharge' needs a discharge_meter" in message
    message = check(
        tmp_path,
        "  - {at: 0s, device: A1, action: burn_quota, factor: 2}\n",
        {"A1": AirStation("A1", 1)},
    )
    assert "field 'action': a air_station has no flow" in message


def test_pollutants_are_checked_against_the_model(tmp_path):
    models = {"O1": OutfallMonitor("O1", 1), "M1": DischargeMeter("M1", 1)}
    message = check(
        tmp_path, "  - {at: 0s, device: O1, action: exceed, pollutant: w01001, factor: 2}\n", models
    )
    assert "field 'pollutant': a outfall_monitor can exceed only w00000, w01018" in message
    message = check(
        tmp_path, "  - {at: 0s, device: O1, action: out_of_range, pollutant: a34004}\n", models
    )
    assert "field 'pollutant'" in message
    message = check(
        tmp_path, "  - {at: 0s, device: M1, action: recharge, amounts: {w21011: 1}}\n", models
    )
    assert "field 'amounts': no quota for w21011" in message


@pytest.mark.parametrize(
    "event",
    [
        "{at: 0s, device: O1, action: dilute, o2: 14, for: 1h}",
        "{at: 0s, device: O1, action: startup, for: 1h}",
        "{at: 0s, device: O1, action: wrong_reference, o2_reference: 9}",
    ],
)
def test_stack_actions_need_a_flue_gas_monitor(tmp_path, event):
    message = check(tmp_path, f"  - {event}\n", {"O1": OutfallMonitor("O1", 1)})
    action = event.split("action: ")[1].split(",")[0]
    assert (
        f"event #1 ({action}): field 'action': '{action}' needs a flue_gas_monitor, "
        "not a outfall_monitor" in message
    )


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (
            "{at: 1h, device: S1, action: dilute, o2: 19}",
            "field 'o2': Input should be less than 19",
        ),
        (
            "{at: 1h, device: S1, action: dilute, o2: 0}",
            "field 'o2': Input should be greater than 0",
        ),
        ("{at: 1h, device: S1, action: dilute}", "field 'o2': Field required"),
        ("{at: 1h, device: S1, action: wrong_reference}", "field 'o2_reference': Field required"),
        (
            "{at: 1h, device: S1, action: wrong_reference, o2_reference: 21}",
            "field 'o2_reference': Input should be less than 21",
        ),
        ("{at: 1h, device: S1, action: startup, o2: 20}", "field 'o2': no such field"),
    ],
)
def test_stack_actions_check_their_values(tmp_path, event, expected):
    message = broken(tmp_path, f"  - {event}\n")
    assert "event #2 (" in message and expected in message


# -- playing with a manual clock ---------------------------------------------------------------


def test_a_window_starts_and_ends_on_time():
    model = OutfallMonitor("33080200000001", 1)
    clock = ManualClock(START)
    run = load_scenario("sustained-cod-exceedance").run({"33080200000001": model}, clock)
    assert run.tick() == [] and model.conditions == Conditions()
    clock.advance(timedelta(minutes=9, seconds=59))
    assert run.tick() == [] and model.conditions.exceed == {}
    clock.advance(timedelta(seconds=1))
    assert run.tick() == ["started: exceed w01018 ×2.5 on 33080200000001"]
    assert model.conditions.exceed == {"w01018": 2.5}
    reading = model.reading(clock.now())
    assert reading is not None and reading.values["w01018"].value > 200
    clock.advance(timedelta(hours=3) - timedelta(seconds=1))
    assert run.tick() == [] and not run.finished
    clock.advance(timedelta(seconds=1))
    assert run.tick() == ["ended: exceed w01018 ×2.5 on 33080200000001"]
    assert model.conditions == Conditions() and run.finished


def test_a_late_tick_catches_up_and_overlapping_windows_combine(tmp_path):
    path = tmp_path / "overlap.yaml"
    path.write_text(
        "name: overlap\nevents:\n"
        "  - {at: 10m, device: O1, action: offline, for: 1h}\n"
        "  - {at: 30m, device: O1, action: offline, for: 1h}\n"
        "  - {at: 20m, device: O1, action: out_of_range}\n"
        "  - {at: 40m, device: O1, action: negative_spikes, rate: 0.5, for: 5m}\n",
        encoding="utf-8",
    )
    model = OutfallMonitor("O1", 1)
    clock = ManualClock(START)
    run = load_scenario(path).run({"O1": model}, clock)
    clock.advance(timedelta(minutes=42))
    assert len(run.tick()) == 4
    assert model.conditions == Conditions(
        modes=frozenset({Mode.OFFLINE, Mode.NEGATIVE_SPIKES}),
        over_range=frozenset({"w01018"}),  # the outfall's primary pollutant
        spike_rate=0.5,
    )
    clock.set(START + timedelta(minutes=75))  # the first offline window is over, not the second
    assert run.tick() == ["ended: offline on O1", "ended: negative_spikes on O1"]
    assert model.conditions.modes == {Mode.OFFLINE}
    clock.set(START + timedelta(minutes=90))
    run.tick()
    assert model.conditions.modes == frozenset() and not run.finished  # out_of_range never ends


def test_station_offline_silences_the_station_then_it_resumes(catalogue):
    station = AirStation("33080200A00001", 1)
    clock = ManualClock(START)
    run = load_scenario("station-offline").run({"33080200A00001": station}, clock)
    seen = []
    for minute in range(0, 60, 5):
        clock.set(START + timedelta(minutes=minute))
        run.tick()
        r = station.reading(clock.now())
        seen.append(None if r is None else r.seq)
    assert seen == [1, None, None, None, None, None, None, None, None, None, 2, 3]


def test_quota_exhaustion_runs_the_meter_through_its_quota():
    meter = DischargeMeter("33080200M00001", 2)
    clock = ManualClock(START.replace(hour=22))  # the worst case: production idles at night
    run = load_scenario("quota-exhaustion").run({"33080200M00001": meter}, clock)
    statuses = []
    for _ in range(12 * 10):  # ten hours of five-minute readings
        changes = run.tick()
        reading = meter.reading(clock.now())
        assert reading is not None and reading.meter is not None
        statuses.append((clock.now() - run.start, changes, reading))  # type: ignore[operator]
        clock.advance(timedelta(minutes=5))
    # At 5 min: the burn started and the quota action fired (98.5 %), once.
    _, changes, r = statuses[1]
    assert changes == [
        "started: burn_quota flow ×5 on 33080200M00001",
        "done: quota used set to 98.5 % on 33080200M00001",
    ]
    assert r.meter.used["w00000"] / r.meter.quota["w00000"] == pytest.approx(0.985, abs=0.001)
    exhausted = [
        at
        for at, _, r in statuses
        if all(r.meter.used[c] >= r.meter.quota[c] for c in ("w00000", "w01018", "w21003"))
    ]
    assert exhausted and exhausted[0] < timedelta(hours=8)
    assert all(r.meter.valve is ValveState.OPEN for _, _, r in statuses)  # the platform's job
    # Pushed production: five times the idle flow, and the recharge at 9 h, reported once.
    assert statuses[12][2].values["w00000"].value > 25
    recharged = [r for _, _, r in statuses if r.meter.events]
    assert len(recharged) == 1 and recharged[0].meter.events[0].kind is MeterEventKind.RECHARGED
    assert recharged[0].meter.events[0].amounts == {"w00000": 5000, "w01018": 400, "w21003": 40}


def test_night_discharge_shows_at_night_and_in_the_rain():
    dye_house = OutfallMonitor("33080300000004", 3)
    clock = ManualClock(START.replace(hour=0))  # the rain falls at 02:00–05:00 the next day
    run = load_scenario("night-discharge").run({"33080300000004": dye_house}, clock)
    cod: dict[int, float] = {}
    for hour in range(48):
        clock.set(START.replace(hour=0) + timedelta(hours=hour))
        run.tick()
        r = dye_house.reading(clock.now())
        assert r is not None and r.values["w01018"].flag is DataFlag.NORMAL
        cod[hour] = r.values["w01018"].value
    assert all(cod[h] > 100 for h in (0, 1, 2, 3, 4, 22, 23, 46, 47))  # nights
    assert all(cod[h] < 100 for h in (6, 10, 14, 18, 21, 30, 34, 38))  # dry days
    assert all(cod[h] > 100 for h in (26, 27, 28))  # 02:00–05:00 next day: rain, also at night
    clock.set(START + timedelta(days=2))
    run.tick()
    assert dye_house.conditions == Conditions() and run.finished


def test_calibration_window_flags_c_then_m():
    plant = OutfallMonitor("33080200000002", 1, effluent="treatment_plant")
    station = AirStation("33080200A00001", 1)
    clock = ManualClock(START)
    run = load_scenario("calibration-window").run(
        {"33080200000002": plant, "33080200A00001": station}, clock
    )
    flags = {}
    for minute in (5, 15, 25, 45, 95):
        clock.set(START + timedelta(minutes=minute))
        run.tick()
        r = plant.reading(clock.now())
        assert r is not None
        flags[minute] = (r.values["w01018"].flag.value, r.values["w00000"].flag.value)
    assert flags == {5: ("N", "N"), 15: ("C", "N"), 25: ("C", "N"), 45: ("M", "M"), 95: ("N", "N")}


def test_demo_city_recharges_and_swaps_a_card(catalogue):
    models = fleet(catalogue)
    clock = ManualClock(START)
    run = load_scenario("demo-city").run(models, clock)
    events = []
    while not run.finished:
        run.tick()
        for device in METERS:
            r = models[device].reading(clock.now())
            assert r is not None and r.meter is not None
            events += [(device, e.kind) for e in r.meter.events]
        clock.advance(timedelta(minutes=1))
    assert events == [
        ("33080200M00003", MeterEventKind.CARD_REMOVED),
        ("33080200M00003", MeterEventKind.CARD_INSERTED),
        ("33080200M00001", MeterEventKind.RECHARGED),
    ]


# -- repeating scenarios -----------------------------------------------------------------------


def test_soak_city_plays_the_same_day_every_day(demo_city):
    """Every window starts and ends and every one-off happens once each day, the same each
    day; at midnight every device the scenario names is back to normal."""
    models = fleet(demo_city)
    clock = ManualClock(START.replace(hour=0))
    run = load_scenario("soak-city").run(models, clock)
    days: list[list[str]] = []
    for _ in range(3):
        day: list[str] = []
        for _ in range(24 * 12):  # every 5 minutes
            day += run.tick()
            for model in models.values():
                model.reading(clock.now())
            clock.advance(timedelta(minutes=5))
        days.append(day)
        assert all(models[d].conditions == Conditions() for d in run.scenario.devices)
        assert not run.finished
    assert days[0] == days[1] == days[2]
    windows = sum(1 for e in run.scenario.events if e.action not in ("quota", "recharge"))
    assert sum(c.startswith("started: ") for c in days[0]) == windows
    assert sum(c.startswith("ended: ") for c in days[0]) == windows
    assert sum(c.startswith("done: ") for c in days[0]) == 3  # quota twice, a recharge


def repeating(tmp_path: Path, events: str, every: str = "1d") -> Path:
    path = tmp_path / "daily.yaml"
    path.write_text(f"name: daily\nevery: {every}\nevents:\n{events}", encoding="utf-8")
    return path


def test_a_late_tick_finishes_the_last_period_before_the_next(tmp_path):
    path = repeating(
        tmp_path,
        "  - {at: 1h, device: M1, action: quota, used: 0.5}\n"
        "  - {at: 20h, device: M1, action: quota, used: 0.9}\n"
        "  - {at: 2h, device: O1, action: offline, for: 1h}\n",
    )
    models = {"M1": DischargeMeter("M1", 1), "O1": OutfallMonitor("O1", 1)}
    clock = ManualClock(START)
    run = load_scenario(path).run(models, clock)
    clock.advance(timedelta(hours=2, minutes=30))
    assert run.tick() == ["started: offline on O1", "done: quota used set to 50 % on M1"]
    clock.advance(timedelta(days=1))  # 02:30 the next day: the 20h one of the first day, late
    assert run.tick() == [
        "done: quota used set to 90 % on M1",
        "done: quota used set to 50 % on M1",
    ]
    assert models["O1"].conditions.modes == {Mode.OFFLINE}  # the second day's window
    clock.advance(timedelta(hours=1))
    assert run.tick() == ["ended: offline on O1"]


@pytest.mark.parametrize(
    ("events", "every", "expected"),
    [
        ("  - {at: 23h, device: O1, action: offline, for: 2h}\n", "1d", "field 'for'"),
        ("  - {at: 1h, device: O1, action: offline}\n", "1d", "field 'for'"),
        ("  - {at: 1d, device: M1, action: quota, used: 0.5}\n", "1d", "field 'at'"),
        ("  - {at: 1h, device: O1, action: offline, for: 1h}\n", "0s", "field 'every'"),
        ("  - {at: 1h, device: O1, action: offline, for: 1h}\n", "daily", "field 'every'"),
    ],
)
def test_a_repeating_scenario_keeps_its_events_within_the_period(tmp_path, events, every, expected):
    with pytest.raises(ConfigError, match=expected):
        load_scenario(repeating(tmp_path, events, every))


def stack_conditions(name: str, at: timedelta) -> Conditions:
    """The demo heat plant's CEMS's conditions ``at`` into a stack scenario."""
    model = FlueGasMonitor("33080200G00001", 1)
    clock = ManualClock(START)
    run = load_scenario(name).run({"33080200G00001": model}, clock)
    clock.advance(at)
    run.tick()
    return model.conditions


def test_the_stack_scenarios_set_what_they_say():
    in_ = timedelta(minutes=30)
    assert stack_conditions("stack-scr-upset", in_) == Conditions(exceed={"a21002": 1.6})
    assert stack_conditions("stack-dilution", in_) == Conditions(
        exceed={"a21026": 1.4}, dilute_o2=14.0
    )
    assert stack_conditions("stack-startup", timedelta(minutes=5)).modes == {Mode.STOPPED}
    assert stack_conditions("stack-startup", in_) == Conditions(modes=frozenset({Mode.STARTUP}))
    assert stack_conditions("stack-wrong-reference", in_) == Conditions(
        exceed={"a21002": 1.15}, o2_reference=9.0
    )
    for name in ("stack-scr-upset", "stack-dilution", "stack-startup", "stack-wrong-reference"):
        assert stack_conditions(name, timedelta(hours=4)) == Conditions()


def test_the_demo_city_upsets_the_heat_plants_scr(demo_city):
    (upset,) = [e for e in load_scenario("demo-city").events if e.device == "33080200G00001"]
    assert (upset.action, upset.pollutant, upset.factor) == ("exceed", "a21002", 1.8)  # type: ignore[union-attr]
    assert demo_city.device("33080200G00001").device.model.value == "flue_gas_monitor"
