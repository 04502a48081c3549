"""Device models are deterministic for a seed and produce valid, plausible readings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ecowatch.simulators.models import OutfallMonitor


def run(seed: int, n: int = 48):
    model = OutfallMonitor(device="33080200000001", seed=seed)
    start = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)
    return [model.reading(start + timedelta(minutes=30 * i)) for i in range(n)]


def test_same_seed_same_readings():
    assert run(7) == run(7)
    assert run(7) != run(8)


def test_plausible_values_and_a_daily_flow_cycle():
    readings = run(3)
    for r in readings:
        assert set(r.values) == {"w00000", "w01018", "w21003", "w01001"}
        assert 6.0 < r.values["w01001"].value < 8.5
        assert r.values["w01018"].value > 0
    # 16:00 UTC is midnight in China (night trickle), 05:00 UTC is 13:00 (day shift peak).
    by_hour = {r.ts.hour: r.values["w00000"].value for r in readings if r.ts.minute == 0}
    assert by_hour[5] > 2 * by_hour[16]
    assert [r.seq for r in readings] == list(range(1, 49))
