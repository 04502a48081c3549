"""``ecowatch console``: the Kafka feed, the pushes and the web server, in one process."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiohttp import web

from ecowatch.config.catalogue import Catalogue
from ecowatch.config.kafka_accounts import Role, access_for
from ecowatch.config.settings import Settings
from ecowatch.console.core import City
from ecowatch.console.feed import HISTORY, LIVE, follow
from ecowatch.console.server import Console
from ecowatch.errors import ConfigError

log = logging.getLogger(__name__)


def console_url(settings: Settings) -> str:
    host = settings.console_host
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    return f"http://{shown}:{settings.console_port}/"


async def serve(
    settings: Settings,
    catalogue: Catalogue,
    stop: asyncio.Event,
    on_listening: Callable[[str], None] = lambda url: None,
) -> None:
    """Run the console until ``stop``: listening first, so the address is there at once; the
    map is seeded from InfluxDB's latest readings while the feed catches up."""
    city = City(catalogue, settings.aqi_standard)
    console = Console(settings, catalogue, city)
    runner = web.AppRunner(console.app(), access_log=None)  # no request lines: less noise
    await runner.setup()
    site = web.TCPSite(runner, settings.console_host, settings.console_port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise ConfigError(
            f"ECOWATCH_CONSOLE_PORT: cannot listen on {settings.console_host}:"
            f"{settings.console_port} ({exc.strerror})"
        ) from None
    on_listening(console_url(settings))
    kafka = access_for(settings, Role.OPS)
    tasks = [
        asyncio.create_task(console.seed()),
        asyncio.create_task(follow(city, kafka, HISTORY, "earliest", stop)),
        asyncio.create_task(follow(city, kafka, LIVE, "latest", stop)),
        asyncio.create_task(console.push(stop)),
        asyncio.create_task(console.keep_validity(stop)),
    ]
    try:
        await stop.wait()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await runner.cleanup()
