"""`ecowatch bench console`: is the wall smooth with 500 sites and 50 site updates a second?

A synthetic catalogue of ``sites`` sites is made from the configured one (its sites repeated,
each copy moved a little within its district, with devices of their own). The console runs as
it does in production (``Console``: its ``City``, its push loop and its web edge, on a socket)
in a thread of its own, so that its CPU can be read apart (``time.thread_time``), and is fed
readings as the Kafka feed feeds them (``feed.apply`` of the JSON each reading would be on
``ecowatch.readings``), at ``rate`` a second. A real Chromium opens the wall, signed in as an
operator, connected over Server-Sent Events like any wall.

Measured:

- the server: SSE frames and bytes pushed a second to the wall, and its CPU per update (the
  console thread's CPU seconds over the run ÷ the updates fed: parsing, the city, the push
  loop, serialising and writing);
- the page, by a probe added with ``add_init_script`` (test-only; the CSP does not apply to it):
  frames a second (``requestAnimationFrame`` callbacks), long tasks (``PerformanceObserver``
  ``longtask``: a task over 50 ms), and for each site message the time from the server's
  handing it to the stream to the frame after the one that painted it (an upper bound on the
  time to the screen: the wall paints pending updates once per animation frame);
- the browser's CPU (Chromium's processes and Playwright's driver).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from ecowatch import topics
from ecowatch.config.catalogue import Catalogue, Site
from ecowatch.config.settings import Settings
from ecowatch.console import feed
from ecowatch.console.core import City
from ecowatch.console.server import COOKIE, Console, Session
from ecowatch.devtools.bench import percentile, process_cpu, with_descendants
from ecowatch.schema import Measurement, Reading, ReadingSource

SITES = 500
RATE = 50.0  # site updates a second
SECONDS = 30.0
WARM_UP_S = 3.0  # the page loaded and connected, before the clock starts
OVER_EVERY = 25  # about one reading in this many is over its limit: dots change, names appear

# Typical values by pollutant, so most sites are normal and a few are not.
TYPICAL = {
    "w00000": 40.0, "w01018": 25.0, "w21003": 1.0, "w01001": 7.2, "w21011": 0.2,
    "a34004": 45.0, "a34002": 70.0, "a21026": 10.0, "a21004": 30.0, "a05024": 90.0,
    "a21005": 0.7, "a34013": 5.0, "a21002": 30.0, "a21003": 10.0, "a19001": 8.0,
    "a00000": 120.0, "a01011": 12.0, "a01012": 60.0, "a01013": -0.2, "a01014": 8.0,
}  # fmt: skip


def synthetic_catalogue(base: Catalogue, sites: int = SITES, seed: int = 20) -> Catalogue:
    """``sites`` sites: the catalogue's own, then copies of them, each moved by up to 0.04°
    (a few km) so that a district's sites spread over it, with devices of their own."""
    rng = random.Random(seed)
    originals = list(base.sites.values())
    out: dict[str, Site] = {}
    n = 0
    while len(out) < sites:
        source = originals[n % len(originals)]
        copy = n // len(originals)
        n += 1
        if copy == 0:
            out[source.id] = source
            continue
        suffix = f"B{copy:03d}"
        devices = [d.model_copy(update={"id": f"{d.id}{suffix}"}) for d in source.devices]
        out[f"{source.id}-{suffix}"] = source.model_copy(
            update={
                "id": f"{source.id}-{suffix}",
                "name": f"{source.name}{copy}",
                "lat": source.lat + rng.uniform(-0.04, 0.04),
                "lon": source.lon + rng.uniform(-0.04, 0.04),
                "devices": devices,
            }
        )
    return Catalogue(
        grids=base.grids,
        enterprises=base.enterprises,
        sites=out,
        standards=base.standards,
        policies=base.policies,
        marks=base.marks,
    )


def readings(catalogue: Catalogue, count: int, start: datetime, rate: float) -> list[bytes]:
    """``count`` readings as JSON, of sites taken at random, ``1/rate`` s apart in data time:
    values near their typical ones, one in about OVER_EVERY several times higher."""
    rng = random.Random(212)
    sites = list(catalogue.sites.values())
    out = []
    for i in range(count):
        site = rng.choice(sites)
        device = site.devices[0]
        loud = rng.randrange(OVER_EVERY) == 0
        values = {
            code: round(TYPICAL.get(code, 1.0) * rng.uniform(0.8, 1.2) * (6 if loud else 1), 3)
            for code in device.pollutants
        }
        out.append(_reading(site, values, start + timedelta(seconds=i / rate)))
    return out


def _reading(site: Site, values: dict[str, float], at: datetime) -> bytes:
    """A reading of the site's first device as the bridge puts it on ``ecowatch.readings``."""
    device = site.devices[0]
    return Reading(
        site=site.id,
        device=device.id,
        model=device.model.value,
        ts=at,
        values={code: Measurement(value=v) for code, v in values.items()},
        source=ReadingSource.MQTT,
        received_at=at,
    ).to_json()


# The page's probe (test-only, added before the page's own scripts): frames, long tasks, and
# when each site message arrived and was on screen. A message is painted by the wall in the
# frame after it arrived; it is on screen by the start of the frame after that one.
PROBE = r"""(() => {
  const probe = window.__probe = { frames: 0, longtasks: [], painted: [], error: null };
  try {
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) probe.longtasks.push([e.startTime, e.duration]);
    }).observe({ type: "longtask", buffered: true });
  } catch (e) { probe.error = String(e); }
  const now = () => performance.timeOrigin + performance.now();
  let waiting = [], rendering = [];
  const raf = window.requestAnimationFrame.bind(window);
  function tick() {
    probe.frames++;
    const t = now();
    for (const m of rendering) probe.painted.push([m[0], m[1], t]);
    rendering = waiting; waiting = [];
    raf(tick);
  }
  raf(tick);
  const Native = window.EventSource;
  const ID = /"id": "([^"]+)"/, TS = /"ts": "([^"]+)"/;
  window.EventSource = function (url, options) {
    const source = new Native(url, options);
    source.addEventListener("site", (e) => {
      const id = ID.exec(e.data), ts = TS.exec(e.data);
      waiting.push([id ? id[1] : "", ts ? ts[1] : ""]);
    });
    return source;
  };
  window.EventSource.prototype = Native.prototype;
})();"""

_ID = re.compile(rb'"id": "([^"]+)"')
_TS = re.compile(rb'"ts": "([^"]+)"')


@dataclass
class Tally:
    """What the console sent the wall: frames, bytes, and when each site message went."""

    frames: int = 0
    bytes: int = 0
    site_sent: dict[tuple[str, str], float] = field(default_factory=dict)  # (id, ts) → epoch ms

    kinds: dict[str, int] = field(default_factory=dict)  # frames by event

    def reset(self) -> None:
        self.frames, self.bytes = 0, 0
        self.site_sent.clear()
        self.kinds.clear()


@dataclass
class Figures:
    sites: int
    rate: float
    seconds: float
    updates: int
    viewport: tuple[int, int]
    tally: Tally
    server_cpu_s: float
    browser_cpu_s: float
    page: dict[str, Any]
    latencies_ms: list[float]
    ready_s: float  # from asking for the page to the whole city drawn
    load_longtasks: list[tuple[float, float]]  # the page's long tasks while it loaded

    def lines(self) -> list[str]:
        s, page, lat = self.seconds, self.page, self.latencies_ms
        long = [d for _, d in page["longtasks"]]
        return [
            f"{self.sites} sites, {self.updates:,} updates in {s:.1f} s "
            f"({self.updates / s:.1f}/s offered at {self.rate:g}/s), wall at "
            f"{self.viewport[0]}×{self.viewport[1]}",
            f"page ready (the city drawn) in {self.ready_s:.2f} s; long tasks while loading: "
            f"{', '.join(f'{d:.0f} ms' for _, d in self.load_longtasks) or 'none'}",
            f"server: {self.tally.frames / s:,.1f} SSE frames/s to the wall, "
            f"{self.tally.bytes / s / 1024:,.1f} KiB/s ("
            + ", ".join(f"{k} {n:,}" for k, n in sorted(self.tally.kinds.items()))
            + ")",
            f"server CPU: {self.server_cpu_s / s * 100:.1f} % of a core, "
            f"{self.server_cpu_s / max(1, self.updates) * 1e6:,.0f} µs per update",
            f"browser: {page['frames'] / s:.1f} frames/s, {len(long)} long tasks "
            f"(>50 ms; longest {max(long, default=0):.0f} ms, {sum(long):.0f} ms in all), "
            f"CPU {self.browser_cpu_s / s * 100:.1f} % of a core (Chromium + driver)",
            f"push → on screen: p50 {_ms(lat, 50)} ms, p95 {_ms(lat, 95)} ms, "
            f"p99 {_ms(lat, 99)} ms, max {_ms(lat, 100)} ms "
            f"({len(lat):,} site messages)",
        ]

    def as_json(self) -> dict[str, Any]:
        s, lat = self.seconds, self.latencies_ms
        long = [d for _, d in self.page["longtasks"]]
        return {
            "sites": self.sites,
            "updates": self.updates,
            "seconds": round(s, 2),
            "ready_s": round(self.ready_s, 2),
            "frames_per_s": round(self.tally.frames / s, 1),
            "bytes_per_s": round(self.tally.bytes / s),
            "frames_by_event": dict(sorted(self.tally.kinds.items())),
            "server_cpu_us_per_update": round(self.server_cpu_s / max(1, self.updates) * 1e6),
            "page_fps": round(self.page["frames"] / s, 1),
            "long_tasks": len(long),
            "long_task_max_ms": round(max(long, default=0)),
            "push_to_screen_ms": {
                f"p{q}": None if (v := percentile(lat, q)) is None else round(v)
                for q in (50, 95, 99)
            },
        }


class ConsoleThread:
    """The console (app, push loop, and the feed of readings) on an event loop of its own."""

    def __init__(self, settings: Settings, catalogue: Catalogue) -> None:
        self.console = Console(settings, catalogue, City(catalogue))
        self.loop = asyncio.new_event_loop()
        self.tally = Tally()
        self.port = 0
        self.stop = asyncio.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="console", daemon=True)
        self._count()

    def _count(self) -> None:
        """Every frame the console queues for the wall, counted and timed as it goes."""
        put = self.console._put
        tally = self.tally

        def counted(queue: asyncio.Queue[bytes], frame: bytes) -> None:
            tally.frames += 1
            tally.bytes += len(frame)
            kind = frame[7 : frame.find(b"\n")].decode() if frame.startswith(b"event: ") else "?"
            tally.kinds[kind] = tally.kinds.get(kind, 0) + 1
            if frame.startswith(b"event: site\n"):
                found, ts = _ID.search(frame), _TS.search(frame)
                if found and ts:
                    key = (found.group(1).decode(), ts.group(1).decode())
                    tally.site_sent[key] = time.time() * 1000
            put(queue, frame)

        self.console._put = counted  # type: ignore[method-assign]

    def start(self) -> str:
        self._thread.start()
        self._ready.wait(30)
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        runner = web.AppRunner(self.console.app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        pusher = asyncio.create_task(self.console.push(self.stop))
        self._ready.set()
        await self.stop.wait()
        await pusher
        await runner.cleanup()

    def call(self, fn: Callable[[], Any]) -> Any:
        """``fn`` run on the console's loop (its thread), and its answer."""

        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(30)

    def feed(self, records: list[bytes], rate: float) -> tuple[float, float]:
        """The records applied as the Kafka feed applies them, ``rate`` a second on schedule;
        returns the console thread's CPU seconds and the wall time the run took."""

        async def run() -> tuple[float, float]:
            cpu0, t0 = time.thread_time(), time.perf_counter()
            for i, value in enumerate(records):
                delay = t0 + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                feed.apply(self.console.city, topics.READINGS, value, time.monotonic())
            took = time.perf_counter() - t0
            # What was fed is pushed (PUSH_EVERY_S) before the CPU is read.
            await asyncio.sleep(0.5)
            return time.thread_time() - cpu0, took

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.stop.set)
        self._thread.join(30)


async def measure(
    settings: Settings,
    catalogue: Catalogue,
    chromium: str,
    seconds: float = SECONDS,
    rate: float = RATE,
    viewport: tuple[int, int] = (1920, 1080),
    pages: Path | None = None,
) -> Figures:
    """One run; ``pages``: the static pages of another build (before a change), served by
    the same console."""
    from playwright.async_api import async_playwright

    server = ConsoleThread(settings, catalogue)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    count = int(seconds * rate)
    # Every site heard from first (the map whole, as after the console's seed), then the run.
    sites = list(catalogue.sites.values())
    seeded = [
        _reading(site, {c: TYPICAL.get(c, 1.0) for c in site.devices[0].pollutants}, at)
        for site, at in zip(
            sites,
            (start - timedelta(seconds=len(sites) - i) for i in range(len(sites))),
            strict=True,
        )
    ]
    records = readings(catalogue, count, start, rate)
    if pages is not None:
        server.console.pages = pages
    base = server.start()
    try:
        city = server.console.city
        server.call(lambda: [feed.apply(city, topics.READINGS, v, 0.0) for v in seeded])
        sid = secrets.token_urlsafe(16)
        server.console.sessions[sid] = Session("bench", "operator:bench", None, time.time() + 3600)
        async with async_playwright() as p:
            browser = await p.chromium.launch(
                executable_path=chromium, headless=True, args=["--no-sandbox"]
            )
            try:
                context = await browser.new_context(
                    viewport={"width": viewport[0], "height": viewport[1]},
                    locale="zh-CN",
                    timezone_id="Asia/Shanghai",
                )
                await context.add_cookies([{"name": COOKIE, "value": sid, "url": base}])
                await context.add_init_script(PROBE)
                page = await context.new_page()
                loading = time.perf_counter()
                await page.goto(f"{base}/wall")
                await page.wait_for_selector("body[data-ready='1']", timeout=30_000)
                ready_s = time.perf_counter() - loading
                await page.wait_for_selector("#conn:not(.lost)", timeout=30_000)
                await asyncio.sleep(WARM_UP_S)
                loaded = await page.evaluate("() => window.__probe.longtasks")
                await page.evaluate(
                    "() => { const p = window.__probe; p.frames = 0; p.longtasks = [];"
                    " p.painted = []; }"
                )
                server.call(server.tally.reset)
                # Chromium's processes and Playwright's driver: this process's descendants.
                browser_pids = [p for p in with_descendants([os.getpid()]) if p != os.getpid()]
                browser_cpu0 = sum(process_cpu(p) or 0.0 for p in browser_pids)
                server_cpu, took = await asyncio.to_thread(server.feed, records, rate)
                browser_cpu = sum(process_cpu(p) or 0.0 for p in browser_pids) - browser_cpu0
                probe = await page.evaluate("() => window.__probe")
            finally:
                await browser.close()
    finally:
        server.close()
    sent = server.tally.site_sent
    latencies = sorted(
        at - sent[(site, ts)] for site, ts, at in probe["painted"] if (site, ts) in sent
    )
    return Figures(
        sites=len(catalogue.sites),
        rate=rate,
        seconds=took,
        updates=count,
        viewport=viewport,
        tally=server.tally,
        server_cpu_s=server_cpu,
        browser_cpu_s=browser_cpu,
        page=probe,
        latencies_ms=latencies,
        ready_s=ready_s,
        load_longtasks=loaded,
    )


def _ms(values: list[float], q: float) -> str:
    found = percentile(values, q)
    return "–" if found is None else f"{found:.0f}"


def as_text(figures: Figures) -> str:
    return "\n".join([*figures.lines(), json.dumps(figures.as_json())])
