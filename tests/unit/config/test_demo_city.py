"""The demo city (config/catalogue/) holds together: the sizes the README promises, a
supervisor per grid, the ids the demo, the scenarios and the soak depend on, quotas a meter
could lawfully use. The demo's own tests: every other unit test runs the synthetic city of
tests/catalogue.py."""

from __future__ import annotations

import re

from ecowatch.config.catalogue import (
    Catalogue,
    DeviceModel,
    OfficerRole,
    SiteKind,
    StationControl,
)
from ecowatch.config.standards import Basis, Maximum

QUZHOU = {"柯城区", "衢江区", "龙游县", "江山市", "常山县", "开化县"}


def test_the_sample_city_loads(demo_city):
    assert len(demo_city.sites) >= 7
    entry = demo_city.device("33080200000001")
    assert entry is not None and entry.site.id == "S-OUT-001"
    assert entry.device.model is DeviceModel.OUTFALL_MONITOR
    assert all(site.grid in demo_city.grids for site in demo_city.sites.values())


def of_kind(catalogue: Catalogue, kind: SiteKind) -> list[str]:
    return [s.id for s in catalogue.sites.values() if s.kind is kind]


def meters(catalogue: Catalogue) -> dict[str, str]:
    return {
        d: e.site.id
        for d, e in catalogue.devices.items()
        if e.device.model is DeviceModel.DISCHARGE_METER
    }


def test_the_sample_has_the_promised_sizes(demo_city):
    assert set(demo_city.districts) == QUZHOU
    assert len(demo_city.grids) == 8
    assert len(demo_city.enterprises) == 33
    assert len(of_kind(demo_city, SiteKind.OUTFALL)) == 33
    assert len(of_kind(demo_city, SiteKind.AIR_STATION)) == 12
    assert len(of_kind(demo_city, SiteKind.STACK)) == 3
    assert len(demo_city.sites) == 48
    assert len(meters(demo_city)) == 5
    assert len(demo_city.devices) == 33 + 12 + 5 + 3
    # Every district has an air station; the air stations have a control level.
    air = [demo_city.sites[s] for s in of_kind(demo_city, SiteKind.AIR_STATION)]
    assert {s.district for s in air} == QUZHOU
    assert {s.control for s in air} == set(StationControl)


def test_each_grid_has_officers_and_a_supervisor(demo_city):
    for grid in demo_city.grids.values():
        roles = [o.role for o in grid.officers]
        assert roles.count(OfficerRole.SUPERVISOR) == 1, grid.id
        assert 2 <= roles.count(OfficerRole.OFFICER) <= 3, grid.id
        for officer in grid.officers:
            assert officer.notify_env and officer.notify_env.startswith("ECOWATCH_NOTIFY_")
    # 柯城区's supervisor oversees both of its grids: one person.
    assert demo_city.officers["S-KC"].name == "赵志强"
    assert len(demo_city.officers) == 24


def test_every_enterprise_has_an_outfall_some_two(demo_city):
    outfalls: dict[str, list[str]] = {}
    for site in demo_city.sites.values():
        if site.kind is SiteKind.OUTFALL:
            outfalls.setdefault(site.enterprise or "", []).append(site.id)
    stacks = {demo_city.sites[s].enterprise for s in of_kind(demo_city, SiteKind.STACK)}
    # The three plants with a stack have no outfall catalogued.
    assert stacks == {"E-031", "E-032", "E-033"}
    assert set(outfalls) == set(demo_city.enterprises) - stacks
    assert {e for e, s in outfalls.items() if len(s) == 2} == {"E-007", "E-012", "E-030"}
    for enterprise in demo_city.enterprises.values():
        assert enterprise.contact is not None and enterprise.contact.notify_env
    industries = {e.industry for e in demo_city.enterprises.values()}
    assert {"chemical", "paper", "textile_dyeing", "electroplating", "food"} <= industries
    assert {"pharmaceuticals", "wastewater_treatment"} <= industries
    assert {"thermal_power", "heat_supply", "waste_incineration"} <= industries


# (site, enterprise, grid, standard, class, reference O2, device)
STACKS = {
    "S-STK-001": ("E-031", "G-KC-02", "GB 13223-2011", "coal_existing", 6, "33080200G00001"),
    "S-STK-002": ("E-032", "G-QJ-02", "GB 13271-2014", "gas_new", 3.5, "33080300G00002"),
    "S-STK-003": ("E-033", "G-LY-01", "GB 18485-2014", "incinerator", 11, "33082500G00003"),
}


def test_the_stacks_their_standards_and_reference_oxygen(demo_city):
    assert set(of_kind(demo_city, SiteKind.STACK)) == set(STACKS)
    for site_id, (enterprise, grid, std, cls, o2, device) in STACKS.items():
        site = demo_city.sites[site_id]
        assert (site.enterprise, site.grid) == (enterprise, grid), site_id
        assert site.standard is not None and (site.standard.id, site.standard.class_) == (std, cls)
        assert demo_city.o2_reference(site_id) == o2, site_id
        (only,) = site.devices
        assert only.id == device and only.model is DeviceModel.FLUE_GAS_MONITOR
        assert "a19001" in only.pollutants and "a34013" in only.pollutants
    # The heat plant is under ultra-low emission (超低排放): PM 10, SO2 35, NOx 50 at 6 % O2.
    for code, value in {"a34013": 10, "a21026": 35, "a21002": 50}.items():
        limit = demo_city.limit_for("S-STK-001", code)
        assert limit is not None and limit.bound == Maximum(value) and limit.o2_reference == 6
        assert limit.source.startswith("permit ")
    # The incinerator is judged on the hourly and the daily mean, and measures CO for it.
    co = {lim.basis for lim in demo_city.limits_for("S-STK-003", "a21005")}
    assert co == {Basis.HOURLY, Basis.DAILY}
    assert "a21005" in demo_city.sites["S-STK-003"].devices[0].pollutants


def test_device_ids_follow_the_demos_mn_pattern(demo_city):
    # 14 characters: the county's area code (3308xx), 00, a letter for what it is (A air
    # station, M meter, G flue gas) or 0 for an outfall monitor, and a number.
    for device_id, entry in demo_city.devices.items():
        assert re.fullmatch(r"3308[0-9]{2}00[0AMG][0-9]{5}", device_id), device_id
        if entry.device.model is DeviceModel.FLUE_GAS_MONITOR:
            assert device_id[8] == "G", device_id


def test_the_sample_stays_around_quzhou(demo_city):
    for site in demo_city.sites.values():
        assert 28.7 <= site.lat <= 29.3 and 118.2 <= site.lon <= 119.3, site.id


def test_the_ids_the_pipeline_depends_on_are_kept(demo_city):
    kept = {
        "S-OUT-001": ("33080200000001", "E-001", "G-KC-01"),
        "S-OUT-002": ("33080200000002", "E-002", "G-KC-01"),
        "S-OUT-003": ("33082500000003", "E-003", "G-LY-01"),
        "S-OUT-004": ("33080300000004", "E-004", "G-QJ-01"),
        "S-OUT-005": ("33082500000005", "E-005", "G-LY-01"),
        "S-OUT-006": ("33080300000006", "E-006", "G-QJ-01"),
        "S-AIR-001": ("33080200A00001", None, "G-KC-01"),
    }
    for site_id, (device, enterprise, grid) in kept.items():
        entry = demo_city.device(device)
        assert entry is not None and entry.site.id == site_id
        assert (entry.site.enterprise, entry.site.grid) == (enterprise, grid)
    assert meters(demo_city) == {
        "33080200M00001": "S-OUT-001",
        "33080200M00002": "S-OUT-003",
        "33080200M00003": "S-OUT-004",
        "33080200M00004": "S-OUT-006",
        "33080200M00005": "S-OUT-023",
    }
    # The simulator takes the first outfall monitors in demo_city order.
    monitors = [
        e.site.id
        for e in demo_city.devices.values()
        if e.device.model is DeviceModel.OUTFALL_MONITOR
    ]
    assert monitors[:6] == [f"S-OUT-00{i}" for i in range(1, 7)]


def test_quotas_fit_within_the_concentration_limits(demo_city):
    # A mass quota larger than volume × permitted concentration could never be used lawfully.
    for device_id, site_id in meters(demo_city).items():
        quota = demo_city.devices[device_id].device.quota
        assert quota is not None
        for code in ("w01018", "w21003"):
            limit = demo_city.limit_for(site_id, code)
            assert limit is not None and isinstance(limit.bound, Maximum)
            reachable = quota.annual["w00000"] * limit.bound.value / 1000  # m³ × mg/L → kg
            assert quota.annual[code] <= reachable, (device_id, code)
