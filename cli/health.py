"""``/health`` for the stages that have no web server of their own (the bridge, the HJ 212
server): their counts, their producer's renewals and whether they stand still, as JSON, for
a supervisor's health check (docker-compose, ``ecowatch up``) and for a person."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping

from aiohttp import web

from ecowatch.stall import StallWatch

log = logging.getLogger("ecowatch")


async def serve_health(
    host: str, port: int, snapshot: Callable[[], Mapping[str, object]], stage: str
) -> web.AppRunner | None:
    """Answer GET /health with ``snapshot()``, 503 while stalled; None if ``port`` is 0 or
    taken (said in one line: health is for watching, the stage runs without it)."""
    if not port:
        return None

    async def health(request: web.Request) -> web.Response:
        body = dict(snapshot())
        return web.json_response(body, status=503 if body.get("stalled") else 200)

    app = web.Application()
    app.router.add_get("/health", health)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        await runner.cleanup()
        log.warning("%s: no /health on %s:%s (%s)", stage, host, port, exc.strerror)
        return None
    log.info("%s: /health on http://%s:%s/health", stage, host, port)
    return runner


async def watch_stall(
    watch: StallWatch,
    progress: Callable[[], tuple[int, int]],
    why: Callable[[], str],
    every: float = 1.0,
) -> None:
    """Observe the stage's progress every ``every`` seconds; log its stalls and recoveries.
    Returns (for the caller to exit) when the stage has given up."""
    while True:
        await asyncio.sleep(every)
        taken, done = progress()
        line = watch.observe(taken, done, why)
        if line:
            (log.error if watch.stalled else log.warning)(line)
        if watch.gave_up():
            return
