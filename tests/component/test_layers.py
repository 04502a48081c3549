"""The layers as Python sees them at run time (import-linter checks the source: make lint)."""

from __future__ import annotations

import json
import subprocess
import sys

# What judging is made of (pyproject.toml, "Judging is pure"), and the pure edges beside it:
# the InfluxDB points and the Flux queries (the Grafana generator imports them without a client),
# and the wording.
PURE = [
    "ecowatch.streams.judging.rules",
    "ecowatch.streams.judging.aggregate",
    "ecowatch.streams.judging.meter",
    "ecowatch.streams.judging.aqi",
    "ecowatch.streams.judging.cases",
    "ecowatch.streams.judging.engine",
    "ecowatch.streams.judging.report",
    "ecowatch.streams.judging.replay",
    "ecowatch.streams.storage.points",
    "ecowatch.streams.storage.flux",
    "ecowatch.alerts.wording",
    "ecowatch.streams.judging.ledger",
    "ecowatch.ingest.contract",
    "ecowatch.ingest.validation",
]
IO_LIBRARIES = ["faust", "aiohttp", "paho", "influxdb_client", "aiokafka", "apprise"]


def loaded_after_importing(modules: list[str]) -> set[str]:
    code = (
        "import importlib, json, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(done.stdout))


def test_judging_loads_no_io_library() -> None:
    assert loaded_after_importing(PURE).isdisjoint(IO_LIBRARIES)


def test_the_check_sees_an_io_library_when_one_is_loaded() -> None:
    # The test above could pass by never seeing anything: the worker's app loads them all.
    assert {"faust", "aiohttp", "influxdb_client", "aiokafka"} <= loaded_after_importing(
        ["ecowatch.streams.worker.app"]
    )
