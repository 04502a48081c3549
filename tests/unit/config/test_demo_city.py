"""The demo city (config/catalogue/) holds together: the sizes the README promises, a
supervisor per grid, the ids the demo, the scenarios and the soak depend on, quotas a meter
could lawfully use. The demo's own tests: every other unit test runs the synthetic city of
tests/catalogue.py."""

from __future__ import annotations

from ecowatch.config.catalogue import (
    Catalogue,
    DeviceModel,
    OfficerRole,
    SiteKind,
    StationControl,
)
from ecowatch.config.standards import Maximum

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
    assert len(demo_city.enterprises) == 30
    assert len(of_kind(demo_city, SiteKind.OUTFALL)) == 33
    assert len(of_kind(demo_city, SiteKind.AIR_STATION)) == 12
    assert len(meters(demo_city)) == 5
    assert len(demo_city.devices) == 33 + 12 + 5
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
    assert set(outfalls) == set(demo_city.enterprises)
    assert {e for e, s in outfalls.items() if len(s) == 2} == {"E-007", "E-012", "E-030"}
    for enterprise in demo_city.enterprises.values():
        assert enterprise.contact is not None and enterprise.contact.notify_env
    industries = {e.industry for e in demo_city.enterprises.values()}
    assert {"chemical", "paper", "textile_dyeing", "electroplating", "food"} <= industries
    assert {"pharmaceuticals", "wastewater_treatment"} <= industries


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
