"""HJ 633 AQI: worked examples by hand, breakpoints, categories, the special cases of each
edition, the breakpoint files and their errors, and the ``ecowatch aqi`` command.

Every expected number is worked out in a comment: IAQI = (IH - IL) / (BH - BL) * (C - BL) + IL,
rounded up (ceil), with BL ≤ C ≤ BH the breakpoints around C and IL, IH their IAQI values.
"""

from __future__ import annotations

import itertools
import json
import math
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from ecowatch.cli.aqi import aqi as aqi_command
from ecowatch.errors import ConfigError
from ecowatch.streams.judging.aqi import (
    POLLUTANTS,
    STANDARDS_DIR,
    AqiPeriod,
    Category,
    NoIaqiError,
    UsePeriod,
    aqi,
    aqi_standard,
    category_of,
    iaqi,
    load_aqi_standard,
    pollutant,
)

# -- one IAQI: worked examples -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "c", "period", "standard", "expected"),
    [
        # PM2.5 24h 80: (150-100)/(115-75)*(80-75)+100 = 106.25 → 107
        ("PM2.5", 80, "24h", "2012", 107),
        # 2026, BP at IAQI 100 is 60: (150-100)/(115-60)*(80-60)+100 = 118.18… → 119
        ("PM2.5", 80, "24h", "2026", 119),
        # PM10 24h 200: (150-100)/(250-150)*(200-150)+100 = 125
        ("PM10", 200, "24h", "2012", 125),
        # 2026, BP at IAQI 100 is 120: (150-100)/(250-120)*(200-120)+100 = 130.77… → 131
        ("PM10", 200, "24h", "2026", 131),
        # SO2 24h 300: (150-100)/(475-150)*(300-150)+100 = 123.08… → 124
        ("SO2", 300, "24h", "2012", 124),
        # SO2 1h 300: (100-50)/(500-150)*(300-150)+50 = 71.43… → 72
        ("SO2", 300, "1h", "2012", 72),
        # NO2 24h 150: (150-100)/(180-80)*(150-80)+100 = 135
        ("NO2", 150, "24h", "2026", 135),
        # NO2 1h 150: (100-50)/(200-100)*(150-100)+50 = 75
        ("NO2", 150, "1h", "2026", 75),
        # CO 24h 12 mg/m³: (150-100)/(14-4)*(12-4)+100 = 140
        ("CO", 12, "24h", "2012", 140),
        # CO 1h 12 mg/m³: (150-100)/(35-10)*(12-10)+100 = 104
        ("CO", 12, "1h", "2012", 104),
        # O3 8h 250: (200-150)/(265-215)*(250-215)+150 = 185
        ("O3", 250, "8h", "2012", 185),
        # O3 1h 250: (150-100)/(300-200)*(250-200)+100 = 125
        ("O3", 250, "1h", "2012", 125),
        # a fractional concentration: PM2.5 36: (100-50)/(75-35)*(36-35)+50 = 51.25 → 52
        ("a34004", 36, "24h", "2012", 52),
    ],
)
def test_worked_examples(name, c, period, standard, expected):
    assert iaqi(name, c, period, standard) == expected


@pytest.mark.parametrize(
    ("name", "c", "period", "expected"),
    [
        # Exact arithmetic: in floats each of these lands a hair above an integer and would
        # round up one too far.
        # O3 8h 158.8: (100-50)/(160-100)*(158.8-100)+50 = 50/60*58.8+50 = 49+50 = 99
        ("O3", 158.8, "8h", 99),
        # CO 24h 2.2: (100-50)/(4-2)*(2.2-2)+50 = 25*0.2+50 = 55
        ("CO", 2.2, "24h", 55),
        # PM2.5 24h 4.9: 50/35*4.9 = 7
        ("PM2.5", 4.9, "24h", 7),
        # PM10 24h 352.1: (300-200)/(420-350)*(352.1-350)+200 = 100/70*2.1+200 = 203
        ("PM10", 352.1, "24h", 203),
    ],
)
def test_exact_arithmetic_before_rounding_up(name, c, period, expected):
    assert iaqi(name, c, period, "2012") == expected


@pytest.mark.parametrize("edition", ["2012", "2026"])
def test_every_breakpoint_gives_its_own_iaqi(edition):
    std = aqi_standard(edition)
    for p in POLLUTANTS:
        for period, table in std.pollutants[p.code].breakpoints.items():
            got = [iaqi(p.code, c, period, edition) for c in table.concentration]
            assert got == table.iaqi, (p.name, period)


def test_breakpoints_exactly_and_just_above():
    # PM2.5 24h 2012: on 35, 75, 115 → 50, 100, 150 exactly; a tenth above goes up by one:
    # 35.1: 50/40*0.1+50 = 50.125 → 51; 75.1: 50/40*0.1+100 = 100.125 → 101
    assert [iaqi("PM2.5", c, "24h", "2012") for c in (0, 35, 75, 115)] == [0, 50, 100, 150]
    assert iaqi("PM2.5", 35.1, "24h", "2012") == 51
    assert iaqi("PM2.5", 75.1, "24h", "2012") == 101
    # the 2026 PM breakpoints: PM2.5 60 and PM10 120 sit at IAQI 100
    assert iaqi("PM2.5", 60, "24h", "2026") == 100
    assert iaqi("PM10", 120, "24h", "2026") == 100


def test_pm_breakpoints_differ_between_editions():
    # PM2.5 75: 2012 on the breakpoint → 100; 2026: (150-100)/(115-60)*(75-60)+100 = 113.6… → 114
    assert iaqi("PM2.5", 75, "24h", "2012") == 100
    assert iaqi("PM2.5", 75, "24h", "2026") == 114
    # PM10 120: 2012: (100-50)/(150-50)*(120-50)+50 = 85; 2026 on the breakpoint → 100
    assert iaqi("PM10", 120, "24h", "2012") == 85
    assert iaqi("PM10", 120, "24h", "2026") == 100
    # PM10 150: 2012 on the breakpoint → 100; 2026: (150-100)/(250-120)*(150-120)+100
    # = 111.54… → 112: a day that was "good" is now "lightly polluted"
    assert aqi({"PM10": 150}, "24h", "2012").category == "good"
    r = aqi({"PM10": 150}, "24h", "2026")
    assert (r.aqi, r.category, r.exceeding) == (112, "lightly_polluted", ["PM10"])


def test_the_2026_file_changes_only_what_the_notes_list():
    old, new = aqi_standard("2012"), aqi_standard("2026")
    assert new.pollutants["a34002"].breakpoints[AqiPeriod.DAY].concentration == [
        0, 50, 120, 250, 350, 420, 500, 600
    ]  # fmt: skip
    assert new.pollutants["a34004"].breakpoints[AqiPeriod.DAY].concentration == [
        0, 35, 60, 115, 150, 250, 350, 500
    ]  # fmt: skip
    changed = {("a34002", AqiPeriod.DAY), ("a34004", AqiPeriod.DAY)}
    different = set()
    for code, spec in old.pollutants.items():
        assert new.pollutants[code].breakpoints.keys() == spec.breakpoints.keys()
        for period, table in spec.breakpoints.items():
            other = new.pollutants[code].breakpoints[period]
            assert other.iaqi == table.iaqi
            if other.concentration != table.concentration:
                different.add((code, period))
    assert different == changed
    # the special cases: 2012 sends elsewhere above the top, 2026 caps
    assert old.table(pollutant("SO2"), "1h").above_top == UsePeriod(use=AqiPeriod.DAY)
    assert old.table(pollutant("O3"), "8h").above_top == UsePeriod(use=AqiPeriod.HOUR)
    assert new.table(pollutant("SO2"), "1h").above_top == "cap"
    assert new.table(pollutant("O3"), "8h").above_top == "cap"
    assert (old.source.in_force.isoformat(), new.source.in_force.isoformat()) == (
        "2016-01-01",
        "2026-03-01",
    )


# -- capping and the special cases above the top --------------------------------------------


@pytest.mark.parametrize("edition", ["2012", "2026"])
def test_above_the_top_breakpoint_the_iaqi_is_capped_at_500(edition):
    assert iaqi("PM2.5", 500, "24h", edition) == 500
    assert iaqi("PM2.5", 501, "24h", edition) == 500
    assert iaqi("PM10", 10_000, "24h", edition) == 500
    assert iaqi("NO2", 5000, "1h", edition) == 500
    assert iaqi("CO", 61, "24h", edition) == 500
    assert iaqi("O3", 1500, "1h", edition) == 500
    r = aqi({"PM2.5": 900}, "24h", edition)
    assert (r.aqi, r.category) == (500, Category.SEVERELY_POLLUTED)


def test_so2_1h_above_800_in_2012_reports_the_24h_iaqi():
    # exactly 800 is still on the 1h table: IAQI 200
    assert iaqi("SO2", 800, "1h", "2012") == 200
    with pytest.raises(NoIaqiError) as err:
        iaqi("SO2", 801, "1h", "2012")
    assert err.value.use is AqiPeriod.DAY
    # real-time AQI: SO2 1h 900 with a 24h mean of 1000:
    # 24h IAQI (300-200)/(1600-800)*(1000-800)+200 = 225
    r = aqi({"SO2": 900, "PM2.5": 80}, "1h", "2012", so2_24h=1000)
    assert r.iaqi == {"PM2.5": 107, "SO2": 225}
    assert (r.aqi, r.primary, r.category) == (225, ["SO2"], "heavily_polluted")
    assert r.notes and "SO2 1h 900" in r.notes[0]
    # without the 24h mean there is no SO2 IAQI the standard would give: refused
    with pytest.raises(ValueError, match="so2_24h"):
        aqi({"SO2": 900}, "1h", "2012")


def test_so2_1h_above_800_in_2026_is_200():
    assert iaqi("SO2", 801, "1h", "2026") == 200
    assert iaqi("SO2", 5000, "1h", "2026") == 200
    # a 24h mean given anyway is not used (it would give 225)
    r = aqi({"SO2": 900}, "1h", "2026", so2_24h=1000)
    assert (r.aqi, r.category, r.notes) == (200, "moderately_polluted", [])


def test_o3_8h_above_800_in_2012_reports_the_1h_iaqi():
    assert iaqi("O3", 800, "8h", "2012") == 300
    with pytest.raises(NoIaqiError) as err:
        iaqi("O3", 850, "8h", "2012")
    assert err.value.use is AqiPeriod.HOUR
    # O3 8h 900, the day's maximum 1h 1100: (500-400)/(1200-1000)*(1100-1000)+400 = 450
    r = aqi({"O3": 900, "PM10": 200}, "24h", "2012", o3_1h=1100)
    assert r.iaqi == {"PM10": 125, "O3": 450}
    assert (r.aqi, r.primary, r.category) == (450, ["O3"], "severely_polluted")
    with pytest.raises(ValueError, match="o3_1h"):
        aqi({"O3": 900}, "24h", "2012")


def test_o3_8h_above_800_in_2026_is_300():
    assert iaqi("O3", 850, "8h", "2026") == 300
    r = aqi({"O3": 900}, "24h", "2026", o3_1h=1100)  # the 1h value is not used (450)
    assert (r.aqi, r.category) == (300, "heavily_polluted")


def test_a_second_value_for_the_wrong_period_is_refused():
    with pytest.raises(ValueError, match="o3_1h is for a 24h AQI"):
        aqi({"O3": 100}, "1h", "2012", o3_1h=100)
    with pytest.raises(ValueError, match="so2_24h is for a 1h AQI"):
        aqi({"SO2": 100}, "24h", "2012", so2_24h=100)
    with pytest.raises(ValueError, match="negative"):
        aqi({"O3": 900}, "24h", "2012", o3_1h=-1)


# -- the AQI -----------------------------------------------------------------------------------


def test_daily_aqi_of_all_six():
    r = aqi(
        {
            "PM2.5": 80,  # (150-100)/(115-75)*(80-75)+100 = 106.25 → 107
            "PM10": 163,  # (150-100)/(250-150)*(163-150)+100 = 106.5 → 107
            "SO2": 100,  # (100-50)/(150-50)*(100-50)+50 = 75
            "NO2": 150,  # (150-100)/(180-80)*(150-80)+100 = 135
            "CO": 3,  # (100-50)/(4-2)*(3-2)+50 = 75
            "O3": 180,  # 8h: (150-100)/(215-160)*(180-160)+100 = 118.18… → 119
        },
        "24h",
        "2012",
    )
    assert r.iaqi == {"PM2.5": 107, "PM10": 107, "SO2": 75, "NO2": 135, "O3": 119, "CO": 75}
    assert (r.aqi, r.category, r.primary) == (135, Category.LIGHTLY_POLLUTED, ["NO2"])
    assert r.exceeding == ["PM2.5", "PM10", "NO2", "O3"]
    assert (r.category.name_zh, r.category.colour, r.category.level) == ("轻度污染", "orange", 3)
    assert (r.period, r.standard) == (AqiPeriod.DAY, "HJ 633-2012")


def test_real_time_aqi_uses_the_1h_tables_and_the_24h_pm_tables():
    # the same numbers as hourly values: SO2 1h 300 → 72 (see the worked examples), NO2 1h 150
    # → 75, CO 1h 12 → 104, O3 1h 250 → 125; PM2.5 80 on the 24h table → 107
    r = aqi({"PM2.5": 80, "SO2": 300, "NO2": 150, "CO": 12, "O3": 250}, "1h", "2012")
    assert r.iaqi == {"PM2.5": 107, "SO2": 72, "NO2": 75, "O3": 125, "CO": 104}
    assert (r.aqi, r.primary) == (125, ["O3"])
    assert r.exceeding == ["PM2.5", "O3", "CO"]
    # as daily values the gases read on their 24h tables and O3 as 8h: O3 250 → 185
    assert aqi({"O3": 250}, "24h", "2012").aqi == 185


def test_primary_pollutants_tie_on_the_reported_iaqi():
    # PM2.5 80 → 106.25 and PM10 163 → 106.5: both reported as 107, both primary
    r = aqi({"PM10": 163, "PM2.5": 80}, "24h", "2012")
    assert r.primary == ["PM2.5", "PM10"]
    # PM10 162: (150-100)/(250-150)*(162-150)+100 = 106 → PM2.5 alone
    assert aqi({"PM2.5": 80, "PM10": 162}, "24h", "2012").primary == ["PM2.5"]
    # SO2 24h 150 and NO2 24h 80 are both exactly 100: tied, and not exceeding (100 is not > 100)
    r = aqi({"SO2": 150, "NO2": 80}, "24h", "2012")
    assert (r.aqi, r.primary, r.exceeding) == (100, ["SO2", "NO2"], [])


def test_no_primary_pollutant_at_50_or_below():
    # PM2.5 35 → 50 exactly, SO2 24h 50 → 50: excellent, no primary pollutant
    r = aqi({"PM2.5": 35, "SO2": 50}, "24h", "2012")
    assert (r.aqi, r.category, r.primary) == (50, "excellent", [])
    # PM2.5 35.8: 50/40*0.8+50 = 51 → good, with a primary pollutant
    r = aqi({"PM2.5": 35.8, "SO2": 50}, "24h", "2012")
    assert (r.aqi, r.category, r.primary) == (51, "good", ["PM2.5"])


@pytest.mark.parametrize(
    ("value", "key", "zh", "colour"),
    [
        (0, "excellent", "优", "green"),
        (50, "excellent", "优", "green"),
        (51, "good", "良", "yellow"),
        (100, "good", "良", "yellow"),
        (101, "lightly_polluted", "轻度污染", "orange"),
        (150, "lightly_polluted", "轻度污染", "orange"),
        (151, "moderately_polluted", "中度污染", "red"),
        (200, "moderately_polluted", "中度污染", "red"),
        (201, "heavily_polluted", "重度污染", "purple"),
        (300, "heavily_polluted", "重度污染", "purple"),
        (301, "severely_polluted", "严重污染", "maroon"),
        (500, "severely_polluted", "严重污染", "maroon"),
    ],
)
def test_category_boundaries(value, key, zh, colour):
    cat = category_of(value)
    assert (cat, cat.name_zh, cat.colour) == (key, zh, colour)


@pytest.mark.parametrize(
    ("pm25", "aqi_value", "key"),
    [
        (75, 100, "good"),  # on the breakpoint
        (75.1, 101, "lightly_polluted"),  # 50/40*0.1+100 = 100.125 → 101
        (115, 150, "lightly_polluted"),
        (115.1, 151, "moderately_polluted"),  # 50/35*0.1+150 = 150.14… → 151
        (150, 200, "moderately_polluted"),
        (150.1, 201, "heavily_polluted"),  # 100/100*0.1+200 = 200.1 → 201
        (250, 300, "heavily_polluted"),
        (250.1, 301, "severely_polluted"),  # 100/100*0.1+300 = 300.1 → 301
    ],
)
def test_category_boundaries_from_concentrations(pm25, aqi_value, key):
    r = aqi({"PM2.5": pm25}, "24h", "2012")
    assert (r.aqi, r.category) == (aqi_value, key)


def test_missing_pollutants_are_allowed_but_not_all():
    r = aqi({"a21004": 150, "CO": None}, "1h", "2026")  # by code; None: not measured
    assert r.iaqi == {"NO2": 75}
    with pytest.raises(ValueError, match="at least one"):
        aqi({}, "1h", "2026")
    with pytest.raises(ValueError, match="at least one"):
        aqi({"PM2.5": None}, "1h", "2026")


@pytest.mark.parametrize(
    ("concentrations", "period", "standard", "message"),
    [
        ({"PM2.5": -1}, "24h", "2012", "negative"),
        ({"PM2.5": float("nan")}, "24h", "2012", "finite"),
        ({"PM1": 10}, "24h", "2012", "unknown pollutant"),
        ({"PM2.5": 10, "a34004": 10}, "24h", "2012", "given twice"),
        ({"PM2.5": 10}, "8h", "2012", "1h or 24h"),
        ({"PM2.5": 10}, "24h", "2020", "unknown HJ 633 edition"),
    ],
)
def test_bad_input_is_a_value_error(concentrations, period, standard, message):
    with pytest.raises(ValueError, match=message):
        aqi(concentrations, period, standard)


def test_iaqi_needs_a_table_the_standard_has():
    with pytest.raises(ValueError, match=r"no 1h breakpoints for PM2\.5"):
        iaqi("PM2.5", 10, "1h", "2012")


# -- the breakpoint files ----------------------------------------------------------------------


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    target = tmp_path / "hj633-2012.yaml"
    shutil.copy(STANDARDS_DIR / "hj633-2012.yaml", target)
    return target


def broken(path: Path, find: str, replace: str) -> str:
    text = path.read_text(encoding="utf-8")
    assert find in text
    path.write_text(text.replace(find, replace, 1), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_aqi_standard(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ")
    return message


def test_the_shipped_files_load(copy):
    assert load_aqi_standard(copy) == aqi_standard("2012")
    assert aqi_standard("2026").based_on == "HJ 633-2012"
    assert len(aqi_standard("2026").changes) == 5


def test_breakpoints_must_increase(copy):
    message = broken(copy, "concentration: [0, 35, 75, 115,", "concentration: [0, 35, 75, 75,")
    assert "pollutants entry 'a34004' (PM2.5)" in message
    assert "field 'breakpoints.24h.concentration.3'" in message and "increase" in message


def test_iaqi_values_must_increase(copy):
    message = broken(copy, "iaqi:          [0, 50, 100, 150, 200]", "iaqi: [0, 50, 150, 100, 200]")
    assert "pollutants entry 'a21026' (SO2)" in message
    assert "field 'breakpoints.1h.iaqi.3'" in message


def test_as_many_breakpoints_as_iaqi_values(copy):
    message = broken(copy, "[0, 2, 4, 14, 24, 36, 48, 60]", "[0, 2, 4, 14, 24, 36, 48]")
    assert "pollutants entry 'a21005' (CO)" in message
    assert "field 'breakpoints.24h.concentration'" in message and "7 breakpoints for 8" in message


def test_a_wrong_value_type(copy):
    message = broken(copy, "[0, 40, 80, 180,", "[0, forty, 80, 180,")
    assert "pollutants entry 'a21004' (NO2)" in message
    assert "field 'breakpoints.24h.concentration.1'" in message and "valid number" in message


def test_a_negative_breakpoint(copy):
    message = broken(copy, "[0, 50, 150, 250, 350,", "[-10, 50, 150, 250, 350,")
    assert "pollutants entry 'a34002' (PM10)" in message
    assert "field 'breakpoints.24h.concentration.0'" in message


def test_an_unknown_field(copy):
    message = broken(copy, "rounding: ceil", "rounding: ceil\nround: up")
    assert "standard 'HJ 633-2012'" in message and "field 'round': no such field" in message


def test_a_wrong_unit(copy):
    message = broken(copy, "name: CO\n    unit: mg/m³", "name: CO\n    unit: µg/m³")
    assert "pollutants entry 'a21005' (CO)" in message and "field 'unit'" in message


def test_a_missing_table(copy):
    text = copy.read_text(encoding="utf-8")
    start = text.index("      8h:")
    end = text.index("above_top: {use: 1h}") + len("above_top: {use: 1h}\n")
    copy.write_text(text[:start] + text[end:], encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_aqi_standard(copy)
    message = str(err.value)
    assert "pollutants entry 'a05024' (O3)" in message
    assert "field 'breakpoints': missing 8h" in message


def test_above_top_must_send_to_a_table_that_exists(copy):
    message = broken(copy, "above_top: {use: 24h}", "above_top: {use: 8h}")
    assert "pollutants entry 'a21026' (SO2)" in message
    assert "field 'breakpoints.1h.above_top.use'" in message


def test_the_file_is_named_after_its_edition(copy):
    message = broken(copy, "standard: HJ 633-2012", "standard: HJ 633-2013")
    assert "field 'standard'" in message and "hj633-2013.yaml" in message


def test_not_a_mapping(copy):
    copy.write_text("- just a list\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_aqi_standard(copy)


# -- ecowatch aqi ------------------------------------------------------------------------------


def run(*args: str):
    return CliRunner().invoke(aqi_command, list(args))


def test_cli_json():
    result = run(
        *("--pm25", "80", "--pm10", "163", "--so2", "100"),
        *("--period", "24h", "--standard", "2012", "--json"),
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {
        "aqi": 107,
        "category": "lightly_polluted",
        "primary": ["PM2.5", "PM10"],
        "iaqi": {"PM2.5": 107, "PM10": 107, "SO2": 75},
    }


def test_cli_o3_is_the_8h_value_with_period_24h():
    # O3 250: daily (8h table) → 185; real-time (1h table) → 125
    daily = json.loads(run("--o3", "250", "--period", "24h", "--json").output)
    hourly = json.loads(run("--o3", "250", "--period", "1h", "--json").output)
    assert (daily["aqi"], hourly["aqi"]) == (185, 125)


def test_cli_defaults_are_real_time_and_2026():
    # PM2.5 80 on the 2026 table → 119; CO 12 as a 1h value → 104 (24h it would be 140)
    out = json.loads(run("--pm25", "80", "--co", "12", "--json").output)
    assert out["iaqi"] == {"PM2.5": 119, "CO": 104}


def test_cli_human_line():
    result = run("--pm25", "80", "--no2", "150", "--period", "24h", "--standard", "2012")
    assert result.exit_code == 0, result.output
    assert result.output == (
        "AQI 135 轻度污染 (lightly polluted) | primary: NO2 | IAQI: PM2.5 107, NO2 135 | "
        "HJ 633-2012 24h\n"
    )
    result = run("--pm25", "10")  # 50/35*10 = 14.29 → 15
    assert result.output.startswith("AQI 15 优 (excellent) | primary: none | IAQI: PM2.5 15 |")


def test_cli_special_case_of_2012():
    result = run("--o3", "900", "--o3-1h", "1100", "--period", "24h", "--standard", "2012")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("AQI 450 严重污染 (severely polluted) | primary: O3")
    result = run("--o3", "900", "--period", "24h", "--standard", "2012")
    assert result.exit_code == 2
    assert "O3 8h 900" in result.output and "give --o3-1h" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--pm25", "-3"], "Invalid value for '--pm25': -3 µg/m³: a concentration cannot be"),
        (["--co", "nan"], "Invalid value for '--co': 'nan' is not a finite number (mg/m³)"),
        (["--so2", "x"], "Invalid value for '--so2': 'x' is not a number"),
        ([], "give at least one concentration"),
        (["--pm25", "3", "--o3-1h", "10"], "--o3-1h goes with --period 24h"),
        (["--pm25", "3", "--period", "8h"], "Invalid value for '--period'"),
    ],
)
def test_cli_usage_errors(args, message):
    result = run(*args)
    assert result.exit_code == 2
    assert message in result.output


# -- the fast ceiling agrees with the exact formula --------------------------------------------


def _exact_ceiling(table, value):  # HJ 633 formula 1 in fractions, as the module once did
    from fractions import Fraction

    exact = table.exact(Fraction(repr(float(value))) if isinstance(value, float) else value)
    return None if exact is None else math.ceil(exact)


@pytest.mark.parametrize("edition", ["2012", "2026"])
def test_the_fast_ceiling_is_the_exact_one_on_and_between_breakpoints(edition: str) -> None:
    import random

    rng = random.Random(633)
    std = aqi_standard(edition)
    for spec in std.pollutants.values():
        for table in spec.breakpoints.values():
            values: list[float] = []
            for lo, hi in itertools.pairwise(table.concentration):
                values += [lo, hi, (lo + hi) / 2, lo + (hi - lo) / 3, hi * (1 + 1e-12)]
                values += [rng.uniform(lo, hi) for _ in range(50)]
                # Where formula 1 gives a whole number: the float lands on or by it.
                values += [lo + (hi - lo) * k / (hi - lo) for k in range(0, int(hi - lo) + 1, 7)]
                values += [round(rng.uniform(lo, hi), 1) for _ in range(50)]
            values += [table.top * 1.5, 0, 0.0]
            for v in values:
                assert table.ceiling(v) == _exact_ceiling(table, v), (edition, spec.name, v)


@pytest.mark.parametrize("edition", ["2012", "2026"])
@pytest.mark.parametrize("period", [AqiPeriod.HOUR, AqiPeriod.DAY])
def test_aqi_gives_each_pollutant_the_iaqi_of_its_table(edition: str, period: AqiPeriod) -> None:
    """aqi() reads the tables through a plan made once per standard: it must give what iaqi()
    gives on the table HJ 633 names, whole numbers and floats alike, above the top too."""
    import random

    from ecowatch.streams.judging.aqi import TABLES

    rng = random.Random(8)
    std = aqi_standard(edition)
    for p in POLLUTANTS:
        use = TABLES[period][p]
        top = std.table(p, use).top
        values = [0, 0.0, top, top * 2, int(top) * 3, 1.2, 80, 150]
        values += [rng.uniform(0, top) for _ in range(100)]
        values += [float(rng.randint(0, int(top))) for _ in range(30)]
        for v in values:
            try:
                expected = iaqi(p.code, v, use, edition)
            except NoIaqiError:
                with pytest.raises(NoIaqiError):
                    aqi({p.code: v}, period, std)
                continue
            assert aqi({p.code: v}, period, std).iaqi == {p.name: expected}, (p.name, v)
            assert aqi({p.name: v}, period, edition).aqi == expected, (p.name, v)
