"""`ecowatch bench console`'s synthetic city: as many sites as asked, each its own, fed as the
Kafka feed feeds the console."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from ecowatch import topics
from ecowatch.console import feed
from ecowatch.console.core import City
from ecowatch.devtools.console_bench import readings, synthetic_catalogue


def test_the_synthetic_city_has_the_sites_asked_each_with_devices_of_its_own(demo_city):
    city = synthetic_catalogue(demo_city, 500)
    assert len(city.sites) == 500
    assert set(demo_city.sites) <= set(city.sites)
    devices = [d.id for s in city.sites.values() for d in s.devices]
    assert len(devices) == len(set(devices))
    kinds = Counter(s.kind for s in city.sites.values())
    assert set(kinds) == {s.kind for s in demo_city.sites.values()}
    copy = city.sites["S-AIR-001-B001"]
    assert copy.grid == demo_city.sites["S-AIR-001"].grid
    assert abs(copy.lat - demo_city.sites["S-AIR-001"].lat) <= 0.04


def test_its_readings_are_what_the_feed_reads(demo_city):
    catalogue = synthetic_catalogue(demo_city, 120)
    city = City(catalogue)
    records = readings(catalogue, 300, datetime(2026, 12, 6, tzinfo=UTC), 50.0)
    for value in records:
        feed.apply(city, topics.READINGS, value, 0.0)
    changed, _ = city.take_changes()
    assert len(changed) > 90  # most of the 120 sites heard from
    statuses = Counter(city.sites[s].status() for s in changed)
    assert statuses["normal"] > statuses["over"] > 0, statuses
