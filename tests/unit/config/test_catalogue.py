"""The catalogue: which limit applies, the meters' quotas, the policies (on the synthetic city of
tests/catalogue.py); and every mistake names the file, the entry and the field (breaking a
copy of the demo city's hand-written files, the shape a deployment writes)."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest

from ecowatch.config.catalogue import (
    FLUE_GAS_CODES,
    DeviceModel,
    SiteKind,
    load_catalogue,
)
from ecowatch.config.settings import DEMO_CATALOGUE, load_settings
from ecowatch.config.standards import (
    STANDARD_FILES,
    STANDARDS_DIR,
    Basis,
    Maximum,
    Range,
    load_standards,
)
from ecowatch.errors import ConfigError


def test_a_meter_quota_by_month_and_accounting_year(catalogue):
    equal = catalogue.devices["33080200M00001"].device.quota
    assert equal is not None
    assert equal.for_month(2)["w00000"] == pytest.approx(365000 / 12)
    assert equal.year_start(date(2026, 6, 30)) == date(2025, 7, 1)
    assert equal.year_start(date(2026, 7, 1)) == date(2026, 7, 1)
    explicit = catalogue.devices["33080200M00002"].device.quota
    assert explicit is not None and explicit.card == "QZ-IC-0002"
    assert explicit.for_month(2) == pytest.approx({"w00000": 36500, "w01018": 2900, "w21003": 200})
    assert sum(explicit.share(m) for m in range(1, 13)) == pytest.approx(1)
    assert explicit.year_start(date(2026, 11, 23)) == date(2026, 1, 1)


# -- which limit applies ------------------------------------------------------------------------


def test_the_standard_applies_where_no_permit_limits(catalogue):
    cod = catalogue.limit_for("S-OUT-003", "w01018")
    assert cod is not None
    assert (cod.bound, cod.unit, cod.basis) == (Maximum(100), "mg/L", Basis.DAILY)
    assert cod.source == "GB 8978-1996 first grade"
    assert cod.complies(100) and not cod.complies(100.1)
    # A permit without stricter limits leaves the standard in charge.
    paper = catalogue.limit_for("S-OUT-003", "w21003")
    assert paper is not None and paper.source == "GB 8978-1996 first grade"
    assert paper.bound == Maximum(15)


def test_a_stricter_permit_wins(catalogue):
    cod = catalogue.limit_for("S-OUT-001", "w01018")
    assert cod is not None
    assert cod.bound == Maximum(80) and cod.unit == "mg/L" and cod.basis is Basis.DAILY
    assert cod.source == "permit 91330800MA28F0A01X001P"
    nh3 = catalogue.limit_for("S-OUT-001", "w21003")
    assert nh3 is not None and nh3.bound == Maximum(10)
    # The permit says nothing on pH: the standard's range applies.
    ph = catalogue.limit_for("S-OUT-001", "w01001")
    assert ph is not None and ph.bound == Range(6, 9) and ph.unit == "dimensionless"
    assert ph.source == "GB 8978-1996 first grade"
    assert ph.complies(6) and ph.complies(9) and not ph.complies(5.9) and not ph.complies(9.1)


def test_gb18918_ammonia_has_its_cold_water_value(catalogue):
    nh3 = catalogue.limit_for("S-OUT-005", "w21003")
    assert nh3 is not None
    assert nh3.source == "GB 18918-2002 class 1A"
    assert (nh3.bound, nh3.low_temp_max, nh3.low_temp_at_or_below_c) == (Maximum(5), 8, 12)
    assert not nh3.complies(6, water_temp_c=13)
    assert nh3.complies(6, water_temp_c=12) and not nh3.complies(8.5, water_temp_c=10)
    assert not nh3.complies(6)  # temperature unknown: the normal value
    # A quasi-class-IV permit (准IV类) at another plant: 2 (4 when cold).
    permit = catalogue.limit_for("S-OUT-002", "w21003")
    assert permit is not None and permit.source.startswith("permit ")
    assert (permit.bound, permit.low_temp_max) == (Maximum(2), 4)
    assert permit.bound_at(water_temp_c=8) == Maximum(4)
    tp = catalogue.limit_for("S-OUT-005", "w21011")
    assert tp is not None and tp.bound == Maximum(0.5)


def test_air_stations_are_judged_per_averaging_period(catalogue):
    pm25 = catalogue.limit_for("S-AIR-001", "a34004")
    assert pm25 is not None
    assert (pm25.bound, pm25.unit, pm25.basis) == (Maximum(60), "µg/m³", Basis.DAILY)
    assert pm25.source == "GB 3095-2026 grade II (transitional)"
    with pytest.raises(LookupError, match="several bases"):
        catalogue.limit_for("S-AIR-001", "a21026")
    so2 = catalogue.limit_for("S-AIR-001", "a21026", basis=Basis.HOURLY)
    assert so2 is not None and so2.bound == Maximum(500)
    assert {lim.basis for lim in catalogue.limits_for("S-AIR-001", "a05024")} == {
        Basis.EIGHT_HOUR,
        Basis.HOURLY,
    }
    co = catalogue.limit_for("S-AIR-001", "a21005", basis="24h")
    assert co is not None and (co.bound, co.unit) == (Maximum(4), "mg/m³")
    background = catalogue.limit_for("S-AIR-003", "a34004")
    assert background is not None and background.bound == Maximum(35)


def test_a_stack_is_judged_at_its_reference_oxygen_under_its_permit(catalogue):
    stack = catalogue.sites["S-STK-001"]
    assert stack.kind is SiteKind.STACK and stack.o2_reference is None
    assert catalogue.o2_reference("S-STK-001") == 6  # GB 13223-2011 coal: Table 3
    entry = catalogue.device("33080200G00001")
    assert entry is not None and entry.site.id == "S-STK-001"
    assert entry.device.model is DeviceModel.FLUE_GAS_MONITOR
    assert set(entry.device.pollutants) <= FLUE_GAS_CODES and "a19001" in entry.device.pollutants
    # Ultra-low emission (超低排放): the permit's limits, hourly, in mg/m³ at 6 % O2.
    for code, value in {"a34013": 10, "a21026": 35, "a21002": 50}.items():
        limit = catalogue.limit_for("S-STK-001", code)
        assert limit is not None, code
        assert (limit.bound, limit.unit, limit.basis) == (Maximum(value), "mg/m³", Basis.HOURLY)
        assert limit.o2_reference == 6 and limit.source == "permit 91330800MA2G0H0071001P"
        assert limit.note == ""  # the standard's "to be checked" is not the permit's
    # NO, NO2 and the flue gas's state are measured, not limited.
    assert catalogue.limit_for("S-STK-001", "a21003") is None
    assert catalogue.limit_for("S-STK-001", "a19001") is None


def test_only_a_stack_has_a_reference_oxygen(catalogue):
    assert catalogue.o2_reference("S-OUT-001") is None
    assert catalogue.o2_reference("S-AIR-001") is None
    cod = catalogue.limit_for("S-OUT-001", "w01018")
    assert cod is not None and cod.o2_reference is None
    with pytest.raises(KeyError):
        catalogue.o2_reference("S-STK-999")


def test_a_stacks_own_reference_oxygen_wins(folder):
    stacks = folder / "stacks.yaml"
    text = stacks.read_text(encoding="utf-8")
    find = "    standard: {id: GB 13271-2014, class: gas_new}\n"
    assert find in text
    stacks.write_text(text.replace(find, find + "    o2_reference: 3\n"), encoding="utf-8")
    city = load_catalogue(folder)
    assert city.sites["S-STK-002"].o2_reference == 3
    assert city.o2_reference("S-STK-002") == 3
    assert city.o2_reference("S-STK-003") == 11  # the others keep their class's
    nox = city.limit_for("S-STK-002", "a21002")
    assert nox is not None and (nox.o2_reference, nox.bound) == (3, Maximum(200))
    # Under a permit too: the permit's limit holds at the reference that applies.
    heat = city.limit_for("S-STK-001", "a21026")
    assert heat is not None and heat.o2_reference == 6


def test_no_limit_and_unknown_site(catalogue):
    assert catalogue.limit_for("S-OUT-001", "w00000") is None  # flow is not limited
    assert catalogue.limits_for("S-OUT-001", "w01019") == []
    with pytest.raises(KeyError):
        catalogue.limit_for("S-OUT-999", "w01018")


# -- mistakes name the file, the entry and the field ------------------------------------------


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    target = tmp_path / "catalogue"
    shutil.copytree(DEMO_CATALOGUE, target)
    return target


def broken(folder: Path, find: str, replace: str, file: str = "outfalls.yaml") -> str:
    path = folder / file
    text = path.read_text(encoding="utf-8")
    assert find in text
    path.write_text(text.replace(find, replace, 1), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_catalogue(folder)
    return str(err.value)


def test_a_wrong_field_value(folder):
    message = broken(folder, "lat: 28.9545", "lat: north")
    assert "outfalls.yaml" in message and "'S-OUT-001'" in message and "field 'lat'" in message
    assert "valid number" in message


def test_an_unknown_field(folder):
    message = broken(folder, "    lat: 28.9545", "    latitude: 28.9545\n    lat: 28.9545")
    assert "'S-OUT-001'" in message and "field 'latitude': no such field" in message


def test_a_bad_pollutant_code(folder):
    message = broken(folder, "pollutants: [w00000, w01018, w21003, w01001]}", "pollutants: [COD]}")
    assert "'S-OUT-001'" in message and "devices.0.pollutants.0" in message


def test_a_missing_grid(folder):
    message = broken(folder, "grid: G-KC-01", "grid: G-XX-99")
    assert "'S-OUT-001'" in message and "field 'grid'" in message and "G-XX-99" in message


def test_a_device_installed_twice(folder):
    message = broken(folder, '"33080200000002"', '"33080200000001"')
    assert "'S-OUT-002'" in message and "already installed at site 'S-OUT-001'" in message


def test_a_duplicate_site(folder):
    message = broken(folder, "id: S-OUT-002", "id: S-OUT-001")
    assert "duplicate id" in message and "outfalls.yaml" in message


def test_yaml_that_does_not_parse(folder):
    message = broken(folder, "sites:", "sites: [")
    assert "outfalls.yaml" in message and "not valid YAML" in message


S1_STANDARD = "standard: {id: GB 8978-1996, class: first_grade}"
S1_PERMIT = "limits: {w01018: 80, w21003: 10}}"
S1_METER = "annual: {w00000: 365000, w01018: 25000, w21003: 2500}"
AIR_DEVICE = (
    '      - {id: "33080200A00001", model: air_station, '
    "pollutants: [a34004, a34002, a21026, a21004, a05024, a21005]}\n"
)


def mistake(
    name: str,
    find: str,
    replace: str,
    entry: str,
    field: str,
    says: str,
    file: str = "outfalls.yaml",
) -> object:
    return pytest.param(file, find, replace, entry, field, says, id=name)


S2_COLD = "w21003: {max: 2, low_temp_max: 4}"
STACKS = "stacks.yaml"
STK1_STANDARD = "standard: {id: GB 13223-2011, class: coal_existing}"
STK1_PERMIT = "limits: {a34013: 10, a21026: 35, a21002: 50}}"
STK1_CODES = (
    "pollutants: [a34013, a21026, a21002, a21003, a21004, a19001, a00000, a01011, a01012, "
    "a01013, a01014]"
)
STK3_STANDARD = "standard: {id: GB 18485-2014, class: incinerator}"
S1_SUPERVISOR = "role: supervisor, phone: 0570-0000100, notify_env: ECOWATCH_NOTIFY_S_KC}"
A_METER = (
    '      - {id: "33080200M00009", model: discharge_meter, pollutants: [w00000],'
    ' quota: {card: QZ-IC-0009, year_starts: "01-01", annual: {w00000: 1000}}}\n'
)

# (name, find, replace, entry, field, what the message also says[, file])
# fmt: off
MISTAKES = [
    mistake("permit-looser-than-standard", S1_PERMIT, "limits: {w01018: 120, w21003: 10}}",
            "S-OUT-001", "permit.limits.w01018",
            "max 120 mg/L is looser than GB 8978-1996 first grade's max 100 mg/L"),
    mistake("permit-cold-value-looser", S2_COLD, "w21003: {max: 2, low_temp_max: 9}",
            "S-OUT-002", "permit.limits.w21003", "(8 when cold)"),
    mistake("permit-ph-range-wider", S1_PERMIT, "limits: {w01001: {range: [5.5, 9]}}}",
            "S-OUT-001", "permit.limits.w01001", "range 5.5–9 dimensionless is looser"),
    mistake("permit-unregulated", S1_PERMIT, "limits: {w01009: {min: 3}}}",
            "S-OUT-001", "permit.limits.w01009", "sets no limit for w01009"),
    mistake("permit-limit-two-kinds", S1_PERMIT, "limits: {w01018: {max: 80, min: 1}}}",
            "S-OUT-001", "permit.limits.w01018", "exactly one of max, min or range"),
    mistake("unknown-standard", S1_STANDARD, "standard: {id: GB 8979-1996, class: first_grade}",
            "S-OUT-001", "standard.id", "no standard 'GB 8979-1996' (known: GB 13223-2011"),
    mistake("unknown-class", S1_STANDARD, "standard: {id: GB 8978-1996, class: second_grade}",
            "S-OUT-001", "standard.class", "no class 'second_grade' (known: first_grade)"),
    mistake("air-standard", S1_STANDARD, "standard: {id: GB 3095-2012, class: grade_II}",
            "S-OUT-001", "standard.id", "a standard for air; an outfall needs one for water"),
    mistake("outfall-without-standard", f"    {S1_STANDARD}\n", "",
            "S-OUT-001", "standard", "an outfall needs one"),
    mistake("quota-year-start", 'year_starts: "07-01"', 'year_starts: "07-15"',
            "S-OUT-001", "devices.1.quota.year_starts", "expected MM-01"),
    mistake("quota-monthly-sum", "monthly: {jan: 8,", "monthly: {jan: 9,",
            "S-OUT-003", "devices.1.quota.monthly", "add up to 101, not 100"),
    mistake("quota-monthly-month", "monthly: {jan: 8,", "monthly: {january: 8,",
            "S-OUT-003", "devices.1.quota.monthly", "missing ['jan']; unknown ['january']"),
    mistake("quota-negative", S1_METER, "annual: {w00000: 365000, w01018: -5}",
            "S-OUT-001", "devices.1.quota.annual.w01018", "greater than 0"),
    mistake("quota-unmeasured-pollutant", S1_METER, "annual: {w00000: 365000, w21011: 50}",
            "S-OUT-001", "devices.1.quota.annual.w21011", "does not measure w21011"),
    mistake("quota-card-twice", "card: QZ-IC-0002", "card: QZ-IC-0001",
            "S-OUT-003", "devices.1.quota.card", "already in meter '33080200M00001'"),
    mistake("quota-on-a-monitor", "model: discharge_meter", "model: outfall_monitor",
            "S-OUT-001", "devices.1.quota", "only a discharge_meter has a quota"),
    mistake("meter-without-quota", "        quota:\n          card: QZ-IC-0001\n"
            "          year_starts: \"07-01\"\n          annual: {w00000: 365000, w01018: 25000,"
            " w21003: 2500}\n          monthly: equal\n", "",
            "S-OUT-001", "devices.1.quota", "a discharge_meter needs its quota"),
    mistake("meter-at-an-air-station", AIR_DEVICE, AIR_DEVICE + A_METER,
            "S-AIR-001", "devices.1.model", "a discharge_meter is not installed at an air_station",
            file="air-stations.yaml"),
    mistake("permit-at-an-air-station", "    control: national\n",
            "    control: national\n    permit: {number: X1}\n",
            "S-AIR-001", "permit", "belongs to an outfall", file="air-stations.yaml"),
    mistake("control-at-an-outfall", "    grid: G-KC-01\n",
            "    grid: G-KC-01\n    control: national\n",
            "S-OUT-001", "control", "only air stations"),
    mistake("district-not-the-grids", "district: 柯城区", "district: 衢江区",
            "S-OUT-001", "district", "grid 'G-KC-01' is in '柯城区'"),
    mistake("officer-secret-url", "notify_env: ECOWATCH_NOTIFY_O_KC_01", "notify_env: 'mailto://a:pw@x.cn'",
            "G-KC-01", "officers.0.notify_env", "should match pattern", file="grids.yaml"),
    mistake("officer-phone", "phone: 0570-0000102", "phone: call me",
            "G-KC-01", "officers.1.phone", "should match pattern", file="grids.yaml"),
    mistake("officer-role", "role: supervisor", "role: boss",
            "G-KC-01", "officers.2.role", "'officer' or 'supervisor'", file="grids.yaml"),
    mistake("officer-two-versions", S1_SUPERVISOR + "\n  - id: G-QJ-01",
            S1_SUPERVISOR.replace("0000100", "0000999") + "\n  - id: G-QJ-01",
            "G-KC-02", "officers.3", "also in grid 'G-KC-01' with other details",
            file="grids.yaml"),
    # -- stacks (stacks.yaml) --
    mistake("stack-without-standard", f"    {STK1_STANDARD}\n", "",
            "S-STK-001", "standard", "a stack needs a flue-gas one", file=STACKS),
    mistake("stack-water-standard", STK1_STANDARD, S1_STANDARD,
            "S-STK-001", "standard.id", "a standard for water; a stack needs one for flue_gas",
            file=STACKS),
    mistake("stack-ambient-standard", STK1_STANDARD,
            "standard: {id: GB 3095-2012, class: grade_II}",
            "S-STK-001", "standard.id", "a standard for air; a stack needs one for flue_gas",
            file=STACKS),
    mistake("outfall-flue-gas-standard", S1_STANDARD, STK1_STANDARD,
            "S-OUT-001", "standard.id", "a standard for flue_gas; an outfall needs one for water"),
    mistake("stack-unknown-class", STK1_STANDARD, "standard: {id: GB 13223-2011, class: coal}",
            "S-STK-001", "standard.class", "no class 'coal' (known: coal_new, coal_existing",
            file=STACKS),
    mistake("stack-without-enterprise", "    enterprise: E-031\n", "",
            "S-STK-001", "enterprise", "a stack needs one", file=STACKS),
    mistake("stack-reference-oxygen-of-air", f"    {STK1_STANDARD}\n",
            f"    {STK1_STANDARD}\n    o2_reference: 21\n",
            "S-STK-001", "o2_reference", "21 % is not a reference oxygen: expected 0 ≤ O2 < 21 %",
            file=STACKS),
    mistake("stack-reference-oxygen-negative", f"    {STK1_STANDARD}\n",
            f"    {STK1_STANDARD}\n    o2_reference: -3\n",
            "S-STK-001", "o2_reference", "-3 % is not a reference oxygen", file=STACKS),
    mistake("stack-reference-oxygen-not-a-number", f"    {STK1_STANDARD}\n",
            f"    {STK1_STANDARD}\n    o2_reference: six\n",
            "S-STK-001", "o2_reference", "valid number", file=STACKS),
    mistake("reference-oxygen-at-an-outfall", f"    {S1_STANDARD}\n",
            f"    {S1_STANDARD}\n    o2_reference: 6\n",
            "S-OUT-001", "o2_reference", "only a stack has a reference oxygen, not an outfall"),
    mistake("reference-oxygen-at-an-air-station", "    control: national\n",
            "    control: national\n    o2_reference: 6\n",
            "S-AIR-001", "o2_reference", "not an air_station", file="air-stations.yaml"),
    mistake("flue-gas-monitor-at-an-outfall", '{id: "33080200000002", model: outfall_monitor,',
            '{id: "33080200000002", model: flue_gas_monitor,',
            "S-OUT-002", "devices.0.model", "a flue_gas_monitor is not installed at an outfall"),
    mistake("flue-gas-monitor-at-an-air-station", "model: air_station, pollutants",
            "model: flue_gas_monitor, pollutants",
            "S-AIR-001", "devices.0.model",
            "a flue_gas_monitor is not installed at an air_station", file="air-stations.yaml"),
    mistake("outfall-monitor-at-a-stack", "model: flue_gas_monitor", "model: outfall_monitor",
            "S-STK-001", "devices.0.model", "an outfall_monitor is not installed at a stack",
            file=STACKS),
    mistake("flue-gas-monitor-water-code", STK1_CODES, "pollutants: [w01018, a19001, a34013]",
            "S-STK-001", "devices.0.pollutants", "w01018: not measured by a flue_gas_monitor",
            file=STACKS),
    mistake("flue-gas-monitor-without-oxygen", STK1_CODES, "pollutants: [a34013, a21026]",
            "S-STK-001", "devices.0.pollutants", "a flue_gas_monitor measures O2 (a19001)",
            file=STACKS),
    mistake("stack-permit-looser", STK1_PERMIT, "limits: {a34013: 10, a21026: 250}}",
            "S-STK-001", "permit.limits.a21026",
            "max 250 mg/m³ is looser than GB 13223-2011 coal-fired boiler, existing's max 200",
            file=STACKS),
    mistake("stack-permit-unlimited-pollutant", STK1_PERMIT, "limits: {a21003: 20}}",
            "S-STK-001", "permit.limits.a21003", "sets no limit for a21003", file=STACKS),
    mistake("stack-permit-on-two-bases", STK3_STANDARD,
            STK3_STANDARD + "\n    permit: {number: X3, limits: {a21026: 50}}",
            "S-STK-003", "permit.limits.a21026", "limits a21026 on several bases", file=STACKS),
    mistake("enterprise-secret-url", "notify_env: ECOWATCH_NOTIFY_E_001", "notify_env: 'tgram://b/1'",
            "E-001", "contact.notify_env", "should match pattern", file="enterprises.yaml"),
]
# fmt: on


@pytest.mark.parametrize(("file", "find", "replace", "entry", "field", "says"), MISTAKES)
def test_each_mistake_names_file_entry_and_field(folder, file, find, replace, entry, field, says):
    message = broken(folder, find, replace, file=file)
    assert f"{file}: " in message, message
    assert f"entry '{entry}'" in message, message
    assert f"field '{field}'" in message, message
    assert says in message, message


def test_the_catalogue_is_checked_against_the_standards_it_is_given(folder, tmp_path):
    # The standard's number lives in one place: lower GB 8978 COD below a permit's 80 and that
    # permit becomes looser than the standard.
    standards = tmp_path / "standards"
    standards.mkdir()
    for path in STANDARDS_DIR.glob(STANDARD_FILES):
        shutil.copy(path, standards)
    gb8978 = standards / "gb8978-1996.yaml"
    gb8978.write_text(gb8978.read_text().replace("w01018: {max: 100}", "w01018: {max: 70}"))
    with pytest.raises(ConfigError) as err:
        load_catalogue(folder, standards=load_standards(standards))
    assert "'S-OUT-001'" in str(err.value) and "permit.limits.w01018" in str(err.value)
    assert "max 70 mg/L" in str(err.value)


def test_an_empty_folder(tmp_path):
    with pytest.raises(ConfigError, match="no catalogue files"):
        load_catalogue(tmp_path)


def test_a_bad_setting_names_the_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("ECOWATCH_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("ECOWATCH_MQTT_URL", "http://example")
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert "ECOWATCH_MQTT_URL" in str(err.value) and "mqtt://HOST:PORT" in str(err.value)


def test_the_state_env_file_is_read_and_the_environment_wins(monkeypatch, tmp_path):
    monkeypatch.setenv("ECOWATCH_STATE_DIR", str(tmp_path))
    (tmp_path / "stack.env").write_text(
        "ECOWATCH_INFLUX_TOKEN=from-file\nECOWATCH_MQTT_PASSWORD=p1\n"
    )
    monkeypatch.delenv("ECOWATCH_INFLUX_TOKEN", raising=False)
    monkeypatch.setenv("ECOWATCH_MQTT_PASSWORD", "from-env")
    settings = load_settings()
    assert settings.influx_token.get_secret_value() == "from-file"
    assert settings.mqtt_password.get_secret_value() == "from-env"


def test_policies_come_from_the_catalogue_most_specific_first(catalogue):
    from datetime import timedelta

    from ecowatch.schema import Rule, Severity

    daily = catalogue.policy_for(Rule.DAILY_OVER_LIMIT, "w01018", Severity.VIOLATION)
    assert (daily.pending, daily.deadline, daily.hold) == (
        timedelta(0),
        timedelta(0),
        timedelta(days=1),
    )
    assert "第五十九条" in daily.measure
    stuck = catalogue.policy_for(Rule.CONSTANT_VALUE, "w01018", Severity.WARNING)
    assert stuck.pending == timedelta(minutes=30) and stuck.deadline == timedelta(hours=4)
    # A rule's own entry beats the severity-wide one.
    offline = catalogue.policy_for(Rule.OFFLINE, None, Severity.WARNING)
    assert offline.deadline == timedelta(hours=2)


def test_a_bad_policy_names_the_file_and_the_field(folder):
    (folder / "policies.yaml").write_text(
        "policies:\n  - rule: hourly_over_limit\n    hold: soon\n"
    )
    with pytest.raises(ConfigError) as err:
        load_catalogue(folder)
    assert "policies.yaml" in str(err.value) and "hold" in str(err.value)
    assert "30s, 10m" in str(err.value)


def test_the_marks_deadlines_and_allowances_come_from_the_catalogue(tmp_path: Path) -> None:
    from datetime import timedelta

    from ecowatch.schema import MarkType
    from tests.catalogue import write_catalogue

    folder = write_catalogue(tmp_path / "city")
    (folder / "marks.yaml").write_text(
        "marks:\n"
        "  - {type: fault, afterwards: 6h}\n"
        "  - {type: startup, allowance: 3h}\n"
        "  - {proof_within: 2d, monthly_hours: 48}\n",
        encoding="utf-8",
    )
    marks = load_catalogue(folder).marks
    assert marks.afterwards[MarkType.FAULT] == timedelta(hours=6)
    assert marks.afterwards[MarkType.CALIBRATION] == timedelta(hours=1)  # the default stands
    assert marks.allowance[MarkType.STARTUP] == timedelta(hours=3)
    assert (marks.proof_within, marks.monthly_hours) == (timedelta(days=2), 48.0)
    # A type's figure without its type, or every mark's with one: the file and what is wrong.
    (folder / "marks.yaml").write_text("marks:\n  - {afterwards: 6h}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"marks.yaml: marks entry '#1': .*name its type"):
        load_catalogue(folder)
