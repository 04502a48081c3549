"""A short soak on the real stack (issue 16): `ecowatch drill --soak` for three simulated
days at a high speed. Not whether the worker stays flat (three days are still its ramp: the
30-day run is a command for the README), but that the month runs on the scaled clock end to
end: readings dated days back pass the bridge's contract and are stored, cases open and are
escalated and the officers act on them, the worker is measured at days 1 and 3, and the
verdict is drawn from those real figures."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ecowatch.config.settings import Settings
from ecowatch.streams.storage.store import influx_client

# 53 devices, a reading every 20 simulated minutes each, at 5760x: 254 readings/s, 3 days in
# 45 s (with the stack's start and the soak's lead, about 90 s in all).
SOAK = ["drill", "--soak", "--days", "3", "--speed", "5760", "--interval", "1200"]


# Every catalogue device, readings dated a month back: the other tests' workers, which read
# the topics from their start, would judge them too. So it runs in a session (and on a
# stack) of its own: `make test` runs `pytest -m soak` after the rest; a session that
# collects it with other tests leaves it out, counted as deselected (tests/conftest.py).
pytestmark = pytest.mark.soak


def test_a_short_soak_measures_the_worker_on_simulated_days(settings: Settings) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ecowatch.cli", *SOAK],
        capture_output=True,
        text=True,
        timeout=420,
    )
    out = done.stdout
    assert done.returncode in (0, 1), f"{out[-4000:]}\n{done.stderr[-3000:]}"
    lines = out.strip().splitlines()
    report = json.loads(lines[-1])
    assert (done.returncode == 0) == report["passed"], out[-3000:]

    # The days measured, a row each, from real figures.
    assert [s["day"] for s in report["samples"]] == [1, 3]
    header = next(i for i, line in enumerate(lines) if line.startswith("day  simulated"))
    assert "worker RSS" in lines[header]
    assert [line.split()[0] for line in lines[header + 1 : header + 3]] == ["1", "3"]
    for sample in report["samples"]:
        assert sample["rss_bytes"] > 50 * 2**20, sample  # a Faust worker, measured
        assert sample["rss_source"] in ("health", "statm")
        if sample["tables"] is not None:  # once the worker's /health reports them
            assert sample["tables"]["site-clock"]["keys"] >= 48, sample  # every site
    assert report["reference_day"] == 1
    checks = {c["what"]: c for c in report["checks"]}
    rss = checks["worker RSS"]
    assert rss["before"] == report["samples"][0]["rss_bytes"]
    assert rss["after"] == report["samples"][1]["rss_bytes"]
    assert rss["passed"] == (rss["after"] <= rss["before"] * (1 + report["tolerance"]))

    # The month ran on the scaled clock: three days of readings taken and stored, cases
    # escalated to the officers, who acted on them through the case API.
    # (A round of the devices takes time of its own beside the 0.2 s between rounds: 88 %
    # of the nominal 72 a day each, measured with 50 of them.)
    assert report["published"] >= 0.75 * 3 * 53 * 72, report["published"]
    assert report["stored"] >= 0.8 * report["published"], report
    assert report["notifications"].get("【执法】", 0) > 0, report["notifications"]
    assert report["officer_actions"].get("ack", 0) > 0, report["officer_actions"]
    assert any("day  3" in line and "published" in line for line in lines)

    # A month of the city does not land in the stack's own bucket: its bucket is gone.
    with influx_client(settings) as client:
        assert client.buckets_api().find_bucket_by_name(report["bucket"]) is None
