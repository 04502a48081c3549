"""`ecowatch bench console` runs end to end for a few seconds: the wall in Chromium, fed and
measured (its figures are the bench's to print, not asserted here beyond their shape)."""

from __future__ import annotations

import asyncio
import shutil

from ecowatch.config.settings import Settings
from ecowatch.devtools.console_bench import as_text, measure, synthetic_catalogue

CHROMIUM = shutil.which("chromium")


def test_the_console_bench_measures_the_wall(demo_city):
    assert CHROMIUM is not None, "no chromium on PATH: `make browser` installs Debian's"
    catalogue = synthetic_catalogue(demo_city, 200)
    settings = Settings(influx_url="http://127.0.0.1:9", officer_tokens=None)
    figures = asyncio.run(measure(settings, catalogue, CHROMIUM, seconds=2.0, rate=50.0))
    assert figures.updates == 100 and figures.tally.kinds.get("site", 0) > 50
    assert figures.page["frames"] > 0 and figures.page["error"] is None
    assert len(figures.latencies_ms) > 50  # site messages matched, server to screen
    assert "push → on screen" in as_text(figures)
