"""The standards files hold the standards' numbers (as in shared/notes/standards.md and, for
flue gas, shared/notes/flue-gas-marks-validity.md), and a broken standards file names the file,
the entry and the field."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest

from ecowatch.config.standards import (
    STANDARD_FILES,
    STANDARDS_DIR,
    UNCHECKED,
    Basis,
    Maximum,
    Medium,
    Minimum,
    Range,
    Standard,
    WaterBody,
    load_standards,
    package_standards,
)
from ecowatch.errors import ConfigError

IDS = {"GB 3838-2002", "GB 18918-2002", "GB 8978-1996", "GB 3095-2012", "GB 3095-2026"}
FLUE_GAS_IDS = {"GB 13223-2011", "GB 13271-2014", "GB 18485-2014", "GB 4915-2013"}
IDS |= FLUE_GAS_IDS


@pytest.fixture(scope="module")
def std() -> dict[str, Standard]:
    return dict(package_standards())


def only(s: Standard, cls: str, code: str, **narrow: object) -> Maximum | Minimum | Range:
    limits = s.limits(cls, code, **narrow)  # type: ignore[arg-type]
    assert len(limits) == 1, limits
    return limits[0].bound


def test_the_package_holds_the_nine_standards_and_nothing_else(std):
    # hj633-*.yaml (AQI breakpoints, another format) may share the folder: they are not read.
    assert set(std) == IDS
    assert std["GB 8978-1996"].medium is Medium.WATER and std["GB 3095-2012"].medium is Medium.AIR
    assert {i for i, s in std.items() if s.medium is Medium.FLUE_GAS} == FLUE_GAS_IDS


def test_sources(std):
    assert std["GB 3838-2002"].source.in_force == date(2002, 6, 1)
    assert std["GB 18918-2002"].source.in_force == date(2003, 7, 1)
    assert std["GB 8978-1996"].source.in_force == date(1998, 1, 1)
    assert "Table 4" in std["GB 8978-1996"].source.table
    assert std["GB 3095-2012"].source.in_force == date(2016, 1, 1)
    assert std["GB 3095-2026"].source.in_force == date(2026, 3, 1)
    assert all(s.source.number == s.id and s.title for s in std.values())


# GB 3838-2002 classes I / II / III / IV / V, mg/L.
GB3838 = {
    "w01009": [7.5, 6, 5, 3, 2],  # DO, a minimum
    "w01019": [2, 4, 6, 10, 15],  # CODMn
    "w01018": [15, 15, 20, 30, 40],  # COD
    "w21003": [0.15, 0.5, 1.0, 1.5, 2.0],  # NH3-N
}
TP_RIVER = [0.02, 0.1, 0.2, 0.3, 0.4]
TP_LAKE = [0.01, 0.025, 0.05, 0.1, 0.2]
TN_LAKE = [0.2, 0.5, 1.0, 1.5, 2.0]
CLASSES = ["I", "II", "III", "IV", "V"]


@pytest.mark.parametrize("i", range(5), ids=CLASSES)
def test_gb3838_surface_water_classes(std, i):
    s, cls = std["GB 3838-2002"], CLASSES[i]
    assert only(s, cls, "w01001") == Range(6, 9)
    assert only(s, cls, "w01009") == Minimum(GB3838["w01009"][i])
    for code in ("w01019", "w01018", "w21003"):
        assert only(s, cls, code) == Maximum(GB3838[code][i]), code
    assert only(s, cls, "w21011", water_body=WaterBody.RIVER) == Maximum(TP_RIVER[i])
    assert only(s, cls, "w21011", water_body=WaterBody.LAKE) == Maximum(TP_LAKE[i])
    assert only(s, cls, "w21001", water_body=WaterBody.LAKE) == Maximum(TN_LAKE[i])
    assert s.limits(cls, "w21001", water_body=WaterBody.RIVER) == []  # TN: lakes only
    assert len(s.limits(cls, "w21011")) == 2  # unnarrowed: both water bodies


def test_gb3838_do_is_a_floor(std):
    do = std["GB 3838-2002"].limits("III", "w01009")[0]
    assert do.complies(5) and do.complies(9) and not do.complies(4.9)
    assert do.source == "GB 3838-2002 class III" and do.unit == "mg/L"


# GB 18918-2002 class 1A / 1B, daily mean, mg/L.
GB18918 = {
    "w01018": (50, 60),
    "w01017": (10, 20),
    "w01012": (10, 20),
    "w21001": (15, 20),
    "w21003": (5, 8),
    "w21011": (0.5, 1),
}


@pytest.mark.parametrize(("cls", "i", "cold"), [("1A", 0, 8), ("1B", 1, 15)])
def test_gb18918_municipal_plants(std, cls, i, cold):
    s = std["GB 18918-2002"]
    for code, values in GB18918.items():
        limit = s.limits(cls, code)[0]
        assert (limit.bound, limit.unit, limit.basis) == (Maximum(values[i]), "mg/L", Basis.DAILY)
    nh3 = s.limits(cls, "w21003")[0]
    assert (nh3.low_temp_max, nh3.low_temp_at_or_below_c) == (cold, 12)
    assert s.limits(cls, "w01018")[0].low_temp_max is None
    assert only(s, cls, "w01001") == Range(6, 9)


def test_gb8978_first_grade(std):
    s = std["GB 8978-1996"]
    expected = {"w01012": 70, "w01017": 20, "w01018": 100, "w21003": 15, "w21011": 0.5}
    expected |= {"w22001": 5}
    for code, value in expected.items():
        assert only(s, "first_grade", code) == Maximum(value), code
    assert only(s, "first_grade", "w01001") == Range(6, 9)
    assert s.label("first_grade") == "GB 8978-1996 first grade"
    assert s.pollutants["w01001"].unit == "dimensionless"


# GB 3095-2012 grade I / grade II; µg/m³ except CO (mg/m³).
GB3095_2012 = [
    ("a21026", Basis.DAILY, 50, 150),
    ("a21026", Basis.HOURLY, 150, 500),
    ("a21004", Basis.DAILY, 80, 80),
    ("a21004", Basis.HOURLY, 200, 200),
    ("a21005", Basis.DAILY, 4, 4),
    ("a21005", Basis.HOURLY, 10, 10),
    ("a05024", Basis.EIGHT_HOUR, 100, 160),
    ("a05024", Basis.HOURLY, 160, 200),
    ("a34002", Basis.DAILY, 50, 150),
    ("a34004", Basis.DAILY, 35, 75),
]


@pytest.mark.parametrize(("code", "basis", "grade_i", "grade_ii"), GB3095_2012)
def test_gb3095_2012(std, code, basis, grade_i, grade_ii):
    s = std["GB 3095-2012"]
    assert only(s, "grade_I", code, basis=basis) == Maximum(grade_i)
    assert only(s, "grade_II", code, basis=basis) == Maximum(grade_ii)


def test_gb3095_units_and_bases(std):
    s = std["GB 3095-2012"]
    assert s.pollutants["a21005"].unit == "mg/m³" and s.pollutants["a34004"].unit == "µg/m³"
    assert {lim.basis for lim in s.limits("grade_II", "a05024")} == {Basis.EIGHT_HOUR, Basis.HOURLY}
    assert s.limits("grade_II", "a34004", basis=Basis.HOURLY) == []


def test_gb3095_2026_transitional_and_final_columns(std):
    s = std["GB 3095-2026"]
    day = {"basis": Basis.DAILY}
    assert only(s, "transitional_grade_II", "a34002", **day) == Maximum(120)
    assert only(s, "transitional_grade_II", "a34004", **day) == Maximum(60)
    assert only(s, "grade_I", "a34004", **day) == Maximum(25)
    assert only(s, "grade_II", "a34004", **day) == Maximum(50)
    assert only(s, "grade_I", "a34002", **day) == Maximum(50)
    assert only(s, "grade_II", "a34002", **day) == Maximum(100)
    transitional, final = s.classes["transitional_grade_II"], s.classes["grade_II"]
    assert transitional.in_force_on(date(2030, 12, 31)) and not transitional.in_force_on(
        date(2031, 1, 1)
    )
    assert final.in_force_on(date(2031, 1, 1)) and not final.in_force_on(date(2026, 11, 23))
    assert s.label("transitional_grade_II") == "GB 3095-2026 grade II (transitional)"


def test_bounds_compare_by_strictness():
    assert Maximum(80).at_least_as_strict_as(Maximum(100))
    assert not Maximum(120).at_least_as_strict_as(Maximum(100))
    assert Minimum(6).at_least_as_strict_as(Minimum(5))
    assert not Minimum(4).at_least_as_strict_as(Minimum(5))
    assert Range(6.5, 8.5).at_least_as_strict_as(Range(6, 9))
    assert not Range(5.5, 8).at_least_as_strict_as(Range(6, 9))
    assert not Maximum(9).at_least_as_strict_as(Range(6, 9))  # different kinds never compare


# -- flue gas: mg/m³ at standard state, dry, at each class's reference oxygen ------------------

# GB 13223-2011 Table 1 (hourly): (class, reference O2 from Table 3, PM, SO2, NOx). SO2 and NOx
# as in the notes; PM as commonly cited, marked to be checked.
GB13223 = [
    ("coal_new", 6, 30, 100, 100),
    ("coal_existing", 6, 30, 200, 100),
    ("gas_boiler", 3, 5, 35, 100),
    ("other_gas_boiler", 3, 10, 100, 200),
    ("gas_turbine", 15, 5, 35, 50),
    ("other_gas_turbine", 15, 10, 100, 120),
]
PM, SO2, NOX, CO = "a34013", "a21026", "a21002", "a21005"


@pytest.mark.parametrize(("cls", "o2", "pm", "so2", "nox"), GB13223, ids=[c[0] for c in GB13223])
def test_gb13223_thermal_power(std, cls, o2, pm, so2, nox):
    s = std["GB 13223-2011"]
    assert s.classes[cls].o2_reference == o2
    for code, value in ((PM, pm), (SO2, so2), (NOX, nox)):
        (limit,) = s.limits(cls, code)
        assert (limit.bound, limit.unit, limit.basis) == (Maximum(value), "mg/m³", Basis.HOURLY)
        assert limit.o2_reference == o2 and limit.row.startswith("Table 1, "), limit
        # What the notes confirm carries no note; the particulate limits are to be checked.
        assert limit.note == (UNCHECKED if code == PM else ""), (code, limit.note)


def test_gb13271_boilers(std):
    s = std["GB 13271-2014"]
    assert {c: k.o2_reference for c, k in s.classes.items()} == {
        "coal_new": 9,
        "coal_existing": 9,
        "oil_new": 3.5,
        "gas_new": 3.5,
        "gas_existing": 3.5,
    }
    assert only(s, "gas_new", PM) == Maximum(20)
    assert only(s, "gas_new", SO2) == Maximum(50)
    assert only(s, "gas_new", NOX) == Maximum(200)
    assert only(s, "coal_existing", SO2) == Maximum(400)
    (nox,) = s.limits("gas_new", NOX)
    assert (nox.basis, nox.o2_reference, nox.row) == (
        Basis.HOURLY,
        3.5,
        "Table 2, 燃气锅炉, 氮氧化物",
    )


def test_gb18485_incineration_has_hourly_and_daily_limits(std):
    s = std["GB 18485-2014"]
    assert s.classes["incinerator"].o2_reference == 11
    expected = {PM: (30, 20), SO2: (100, 80), NOX: (300, 250), CO: (100, 80)}
    for code, (hourly, daily) in expected.items():
        assert only(s, "incinerator", code, basis=Basis.HOURLY) == Maximum(hourly), code
        assert only(s, "incinerator", code, basis=Basis.DAILY) == Maximum(daily), code
    assert {lim.o2_reference for lim in s.limits("incinerator", CO)} == {11}
    assert s.limits("incinerator", CO, basis=Basis.EIGHT_HOUR) == []


def test_gb4915_cement_kilns(std):
    s = std["GB 4915-2013"]
    assert {k.o2_reference for k in s.classes.values()} == {10}
    assert [only(s, "kiln", code) for code in (PM, SO2, NOX)] == [
        Maximum(30),
        Maximum(200),
        Maximum(400),
    ]
    assert only(s, "kiln_special", NOX) == Maximum(320)


def test_every_flue_gas_limit_names_its_row_and_whether_it_is_checked(std):
    for sid in FLUE_GAS_IDS:
        s = std[sid]
        assert {p.unit for p in s.pollutants.values()} == {"mg/m³"}, sid
        for cid, cls in s.classes.items():
            assert cls.o2_reference is not None and 0 < cls.o2_reference < 21, (sid, cid)
            for code in cls.limits:
                for limit in s.limits(cid, code):
                    assert limit.row.startswith("Table "), (sid, cid, code)
                    assert limit.note in ("", UNCHECKED), (sid, cid, code)
                    # Only GB 13223's SO2 and NOx are confirmed by the notes.
                    confirmed = sid == "GB 13223-2011" and code in (SO2, NOX)
                    assert (limit.note == "") == confirmed, (sid, cid, code)


def test_no_reference_oxygen_outside_flue_gas(std):
    for s in std.values():
        if s.medium is not Medium.FLUE_GAS:
            assert all(c.o2_reference is None for c in s.classes.values()), s.id
    (cod,) = std["GB 8978-1996"].limits("first_grade", "w01018")
    assert cod.o2_reference is None and cod.row == ""


def test_a_permit_limit_drops_only_the_unchecked_note(std):
    from ecowatch.config.standards import BoundSpec

    (pm,) = std["GB 13223-2011"].limits("coal_existing", PM)
    permit = pm.replaced_by(BoundSpec(max=10), "permit X")
    assert (permit.bound, permit.o2_reference, permit.basis) == (Maximum(10), 6, Basis.HOURLY)
    assert (permit.note, permit.row, permit.source) == ("", "", "permit X")
    (tp,) = std["GB 8978-1996"].limits("first_grade", "w21011")
    assert tp.replaced_by(BoundSpec(max=0.3), "permit Y").note == tp.note != ""


# -- mistakes ----------------------------------------------------------------------------------


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    target = tmp_path / "standards"
    target.mkdir()
    for path in STANDARDS_DIR.glob(STANDARD_FILES):
        shutil.copy(path, target)
    return target


def test_other_files_in_the_folder_are_not_read(folder):
    (folder / "hj633-2012.yaml").write_text("breakpoints: {this: is not a limit standard}\n")
    (folder / "notes.yaml").write_text("- [")
    assert set(load_standards(folder)) == IDS


def broken(folder: Path, file: str, find: str, replace: str) -> str:
    path = folder / file
    text = path.read_text(encoding="utf-8")
    assert find in text
    path.write_text(text.replace(find, replace, 1), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_standards(folder)
    return str(err.value)


F8978, F18918, F3095 = "gb8978-1996.yaml", "gb18918-2002.yaml", "gb3095-2012.yaml"
F18485 = "gb18485-2014.yaml"

# fmt: off
MISTAKES = [
    pytest.param(F8978, "w01018: {max: 100}", "w01018: {max: 100, min: 5}",
                 "classes entry 'first_grade'", "limits.w01018.0", "exactly one of max, min",
                 id="two-kinds"),
    pytest.param(F8978, "w01018: {max: 100}", "w01018: {max: many}",
                 "classes entry 'first_grade'", "limits.w01018.0.max", "valid number",
                 id="not-a-number"),
    pytest.param(F8978, "w01001: {range: [6, 9]}", "w01001: {range: [9, 6]}",
                 "classes entry 'first_grade'", "limits.w01001.0", "low end is above the high end",
                 id="range-backwards"),
    pytest.param(F8978, "w01018: {max: 100}", "w01018: {max: 100}\n      w01019: {max: 5}",
                 "classes entry 'first_grade'", "limits.w01019", "not declared under 'pollutants'",
                 id="undeclared-pollutant"),
    pytest.param(F8978, "w01018: {max: 100}", "COD: {max: 100}",
                 "classes entry 'first_grade'", "limits.COD.[key]", "should match pattern",
                 id="bad-pollutant-code"),
    pytest.param(F8978, "  in_force: 1998-01-01\n", "",
                 "standard 'GB 8978-1996'", "source.in_force", "Field required",
                 id="missing-in-force"),
    pytest.param(F8978, "id: GB 8978-1996", "id: GB 8978-1997",
                 "standard 'GB 8978-1997'", "id", "gb8978-1997.yaml", id="id-unlike-file-name"),
    pytest.param(F18918, "low_temperature_c: 12\n", "",
                 "classes entry '1A'", "limits.w21003.0.low_temp_max", "no low_temperature_c",
                 id="cold-value-without-temperature"),
    pytest.param(F18918, "w21003: {max: 5, low_temp_max: 8}", "w21003: {max: 5, low_temp_max: 4}",
                 "classes entry '1A'", "limits.w21003.0", "not below max", id="cold-below-max"),
    pytest.param(F3095, "{max: 150, basis: 1h}", "{max: 150, basis: 2h}",
                 "classes entry 'grade_I'", "limits.a21026.1.basis", "'1h', '8h' or '24h'",
                 id="unknown-basis"),
    pytest.param(F3095, "{max: 150, basis: 1h}", "{max: 150, basis: 24h}",
                 "classes entry 'grade_I'", "limits.a21026.1", "a second limit for basis 24h",
                 id="two-limits-one-basis"),
    pytest.param(F3095, "medium: air", "medium: soil",
                 "standard 'GB 3095-2012'", "medium", "'water', 'air' or 'flue_gas'",
                 id="unknown-medium"),
    pytest.param(F18485, "    o2_reference: 11\n", "",
                 "classes entry 'incinerator'", "o2_reference", "needs its reference oxygen",
                 id="flue-gas-class-without-reference-oxygen"),
    pytest.param(F18485, "o2_reference: 11", "o2_reference: 21",
                 "classes entry 'incinerator'", "o2_reference", "less than 21",
                 id="reference-oxygen-of-air"),
    pytest.param(F18485, "o2_reference: 11", "o2_reference: -1",
                 "classes entry 'incinerator'", "o2_reference", "greater than or equal to 0",
                 id="reference-oxygen-negative"),
    pytest.param(F8978, "    label: first grade\n", "    label: first grade\n    o2_reference: 6\n",
                 "classes entry 'first_grade'", "o2_reference", "only a flue-gas standard",
                 id="reference-oxygen-for-water"),
    pytest.param(F3095, "medium: air", "medium: flue_gas",
                 "classes entry 'grade_I'", "o2_reference", "needs its reference oxygen",
                 id="ambient-standard-as-flue-gas"),
    pytest.param(F18485, "{max: 30, basis: 1h, row:", "{max: 30, basis: 1h, table: 4, row:",
                 "classes entry 'incinerator'", "limits.a34013.0.table", "no such field",
                 id="unknown-limit-field"),
]
# fmt: on


@pytest.mark.parametrize(("file", "find", "replace", "entry", "field", "says"), MISTAKES)
def test_each_mistake_names_file_entry_and_field(folder, file, find, replace, entry, field, says):
    message = broken(folder, file, find, replace)
    assert f"{file}: {entry}: " in message, message
    assert f"field '{field}'" in message, message
    assert says in message, message


def test_an_empty_folder(tmp_path):
    with pytest.raises(ConfigError, match="no standard files"):
        load_standards(tmp_path)
