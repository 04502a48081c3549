"""Alarms in a real browser: a new exceedance sounds and flashes on the desk, an operator
silences it (消警) through the case API with their own token, and every screen shows it
silenced; the console's alarm endpoints refuse what they should."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from playwright.async_api import async_playwright, expect

from ecowatch.config.settings import Settings
from ecowatch.console.core import City
from ecowatch.console.server import Console
from tests.component.console.test_console_web import CHROMIUM, GRIDS, Worker, sign_in
from tests.factories import T0, hourly_cod, reading


class SilencingWorker(Worker):
    """The fake case API, which also takes silences (POST /api/alarms/silence) as the real one
    does: an operator or an officer of the site's grid."""

    def __init__(self) -> None:
        super().__init__()
        self.silences: list[tuple[dict[str, Any], str]] = []

    def app(self, catalogue: Any) -> web.Application:
        inner = super().app(catalogue)

        async def silence(request: web.Request) -> web.Response:
            auth = request.headers.get("Authorization", "")
            token = auth.removeprefix("Bearer ")
            body = await request.json()
            if token not in GRIDS:
                return web.json_response({"error": "a valid token is required"}, status=401)
            grids = GRIDS[token]
            if grids is not None and catalogue.sites[body["site"]].grid not in grids:
                return web.json_response({"error": "not yours"}, status=403)
            self.silences.append((body, auth))
            who = "operator:王" if grids is None else "O-KC-01"
            return web.json_response({"silenced": body["alarm_id"], "by": who}, status=202)

        # The silence first; everything else as the fake worker answers it.
        (everything,) = inner.router.routes()
        app = web.Application()
        app.router.add_post("/api/alarms/silence", silence)
        app.router.add_route("*", "/{tail:.*}", everything.handler)
        return app


async def _console(catalogue: Any) -> tuple[TestServer, Console, SilencingWorker]:
    worker = SilencingWorker()
    api = TestServer(worker.app(catalogue), host="127.0.0.1")
    await api.start_server()
    settings = Settings(web_host="127.0.0.1", web_port=api.port, influx_url="http://127.0.0.1:9")
    return api, Console(settings, catalogue, City(catalogue)), worker


def test_the_alarm_endpoints_pass_a_silence_on_with_the_callers_token(catalogue):
    async def main() -> None:
        api, console, worker = await _console(catalogue)
        try:
            async with TestClient(TestServer(console.app(), host="127.0.0.1")) as client:
                assert (await client.get("/api/alarms")).status == 401
                await sign_in(client, "tok-kc2")  # G-KC-02's officer: not S-OUT-001's grid
                console.city.on_finding(hourly_cod(0))
                (alarm,) = console.city.alarms.alarms.values()
                assert (await (await client.get("/api/alarms")).json())["alarms"] == []
                r = await client.post(f"/api/alarms/{alarm.id}/silence", json={})
                assert r.status == 403 and (await r.json())["code"] == "not_your_grid"
                r = await client.post("/api/alarms/nothing/silence", json={})
                assert r.status == 404 and (await r.json())["code"] == "no_alarm"
                assert worker.silences == []
            async with TestClient(TestServer(console.app(), host="127.0.0.1")) as client:
                await sign_in(client, "tok-kc")
                view = await (await client.get("/api/alarms")).json()
                assert [a["id"] for a in view["alarms"]] == [alarm.id]
                r = await client.post(f"/api/alarms/{alarm.id}/silence", json={})
                assert r.status == 202 and (await r.json())["alarm"]["silenced_by"] == "O-KC-01"
                ((body, auth),) = worker.silences
                assert auth == "Bearer tok-kc" and body["alarm_id"] == alarm.id
                assert body["site"] == "S-OUT-001" and body["upto"] == alarm.last_at.isoformat()
        finally:
            await api.close()

    asyncio.run(main())


def test_a_new_exceedance_flashes_and_sounds_until_an_operator_silences_it(catalogue):
    assert CHROMIUM is not None, "no chromium on PATH: `make browser` installs Debian's"

    async def main() -> None:
        api, console, worker = await _console(catalogue)
        stop = asyncio.Event()
        pusher = asyncio.create_task(console.push(stop))
        try:
            async with TestClient(TestServer(console.app(), host="127.0.0.1")) as client:
                base = str(client.make_url("/")).rstrip("/")
                # Data time at the exceedance's hour: the counts are of the last day of it.
                console.city.on_reading(reading({"w01018": 20.0}, T0), 0.0)
                async with async_playwright() as p:
                    browser = await p.chromium.launch(
                        executable_path=CHROMIUM,
                        headless=True,
                        args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"],
                    )
                    try:
                        desk = await _page(browser, base, "tok-ops", "/desk?site=S-OUT-001")
                        wall = await _page(browser, base, "tok-kc", "/wall")
                        panel = desk.locator("#alarms")
                        await expect(panel.locator("li.dim")).to_have_text("暂无报警")
                        await expect(desk.locator("#conn")).to_have_text("实时连接")
                        await expect(wall.locator("#conn")).to_have_text("实时连接")

                        console.city.on_finding(hourly_cod(0, value=81.5))
                        row = panel.locator("li.alarm[data-kind='over']")
                        await expect(row).to_have_count(1, timeout=5_000)
                        await expect(row).to_have_class(_has("ringing"))
                        await expect(panel).to_have_class(_has("flash"))
                        assert int(await panel.get_attribute("data-beeps") or 0) >= 1
                        text = await row.inner_text()
                        assert "超标 0.63 倍" in text and "巨化精细化工总排口 COD" in text, text
                        # The officer of the grid sees it on the wall, ringing too.
                        on_wall = wall.locator("#alarms li.alarm[data-kind='over']")
                        await expect(on_wall).to_have_attribute("data-silenced", "0")

                        await row.locator("button.silence").click()
                        await expect(row).to_have_attribute("data-silenced", "1")
                        await expect(panel).to_have_attribute("data-ringing", "0")
                        assert "已消警" in await row.inner_text()
                        ((_, auth),) = worker.silences
                        assert auth == "Bearer tok-ops"
                        # Silenced for everyone: the wall's row too, and it no longer rings.
                        await expect(on_wall).to_have_attribute("data-silenced", "1")
                        await expect(wall.locator("#alarms")).to_have_attribute("data-ringing", "0")
                        silenced = panel.locator("[data-count='silenced']")
                        await expect(silenced).to_contain_text("已消警 1")
                        await expect(panel.locator("[data-count='new']")).to_contain_text("0")
                    finally:
                        await browser.close()
        finally:
            stop.set()
            await pusher
            await api.close()

    asyncio.run(main())


def _has(name: str) -> re.Pattern[str]:
    return re.compile(rf"(^|\s){name}(\s|$)")


async def _page(browser: Any, base: str, token: str, path: str) -> Any:
    context = await browser.new_context(locale="zh-CN", timezone_id="Asia/Shanghai")
    assert (await context.request.post(f"{base}/login", data={"token": token})).status == 200
    page = await context.new_page()
    await page.goto(base + path)
    await page.wait_for_selector("body[data-ready='1']", timeout=10_000)
    await page.wait_for_selector("#alarms.alarm-panel", timeout=10_000)
    return page
