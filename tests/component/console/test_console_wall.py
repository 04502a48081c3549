"""The wall read from 5 m, in a real browser: at 1080p, 4K and a tiled wall no text is under
24 px on a 1080-line screen (scaled in proportion), none under 4.5:1 contrast against its
ground; each air station shows its AQI number and the city its own, from the city-mean
concentrations; the state of the city, today's alarms hour by hour and the enterprises most in
breach. And the kiosk: a long-lived read-only token that sees the whole city, can act on
nothing, is not sent to the login after SESSION_HOURS, and is ended by its revocation.

The worker's case API is test_console_web's fake, which here also knows the kiosk's token;
/api/alarms (the lead's, console/alarms.py) is answered by the test's own middleware with a
fixed view, so what the wall draws of it is known.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from playwright.async_api import async_playwright, expect

from ecowatch.config.catalogue import Catalogue
from ecowatch.config.settings import Settings
from ecowatch.console.core import STATUSES, City
from ecowatch.console.server import COOKIE, KIOSK_DAYS, SESSION_HOURS, Console
from ecowatch.console.wall_api import city_aqi, status_counts
from ecowatch.edges.tokens import hashed
from tests.component.console.test_console_web import CHROMIUM, HOLDERS, T, Worker
from tests.contrast import contrast, over, parse_css
from tests.factories import reading

KIOSK = "tok-kiosk"
WALL_HOLDERS = {**HOLDERS, KIOSK: "kiosk:指挥大厅"}
TEXT_MIN_PX = 24.0  # on a screen 1080 pixels high
CONTRAST_MIN = 4.5

ALARMS: dict[str, Any] = {
    "alarms": [
        {
            "id": "A-1",
            "kind": "over",
            "site": "S-OUT-001",
            "site_name": "柯城化工一号排口",
            "grid": "G-KC-01",
            "pollutant": "w01018",
            "at": T.isoformat(),
            "multiple": "0.63",
            "value": 130.4,
            "limit": 80,
            "unit": "mg/L",
            "detail": {
                "zh": "化学需氧量 130.4 mg/L，超标 0.63 倍",
                "en": "COD 130.4 mg/L, 0.63× over",
            },
            "case_id": None,
            "silenced_by": None,
            "silenced_at": None,
        },
        {
            "id": "A-2",
            "kind": "offline",
            "site": "S-OUT-002",
            "site_name": "污水处理厂排口",
            "grid": "G-KC-01",
            "pollutant": None,
            "at": (T - timedelta(hours=1)).isoformat(),
            "multiple": None,
            "value": None,
            "limit": None,
            "unit": "",
            "detail": {"zh": "设备离线", "en": "device offline"},
            "case_id": None,
            "silenced_by": "operator:王",
            "silenced_at": T.isoformat(),
        },
    ],
    "counts": {
        "new": 1,
        "silenced": 1,
        "by_kind": {"over": {"new": 1, "silenced": 0}, "offline": {"new": 0, "silenced": 1}},
        "by_grid": {"G-KC-01": {"new": 1, "silenced": 1}},
    },
    "today": {"day": "2026-11-25", "hours": [0] * 8 + [3, 1, 7] + [0] * 13},
    "most_in_breach": [
        {"enterprise": "E-001", "name": "衢州某化工有限公司", "alarms": 7, "open_cases": 2},
        {"enterprise": "E-002", "name": "衢州某污水处理有限公司", "alarms": 3, "open_cases": 0},
    ],
}


class WallWorker(Worker):
    """The fake case API, knowing also the kiosk's token: every grid to read, no action."""

    def app(self, catalogue: Catalogue) -> web.Application:
        app = super().app(catalogue)

        @web.middleware
        async def kiosk(
            request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
        ) -> web.StreamResponse:
            if request.headers.get("Authorization") != f"Bearer {KIOSK}":
                return await handler(request)
            self.seen.append((request.method, request.path_qs, f"Bearer {KIOSK}"))
            if request.method != "GET":
                return web.json_response({"error": "a kiosk reads; it cannot act"}, status=403)
            grids = sorted(catalogue.grids)
            return web.json_response({"grid": "*", "grids": grids, "cases": self.rows})

        app.middlewares.append(kiosk)
        return app


@web.middleware
async def fixed_alarms(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    if request.method == "GET" and request.path == "/api/alarms":
        return web.json_response(ALARMS)
    return await handler(request)


@asynccontextmanager
async def wall_console(
    catalogue: Catalogue, tokens: Path
) -> AsyncIterator[tuple[TestClient, Console, WallWorker]]:
    worker = WallWorker()
    async with TestServer(worker.app(catalogue), host="127.0.0.1") as api:
        settings = Settings(
            web_host="127.0.0.1",
            web_port=api.port,
            officer_tokens=tokens,
            influx_url="http://127.0.0.1:9",
        )
        console = Console(settings, catalogue, City(catalogue))
        app = console.app()
        app.middlewares.append(fixed_alarms)
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            yield client, console, worker


def tokens_file(folder: Path, holders: dict[str, str] = WALL_HOLDERS) -> Path:
    path = folder / "tokens.json"
    path.write_text(json.dumps(hashed(holders)), encoding="utf-8")
    return path


def city_of_readings(console: Console, catalogue: Catalogue) -> None:
    """Every site heard from: the air stations with different air (so the city's AQI is not any
    one station's), one outfall over its permit."""
    air = {
        "S-AIR-001": {
            "a34004": 80.0,
            "a34002": 120.0,
            "a21026": 9.0,
            "a21004": 30.0,
            "a05024": 60.0,
        },
        "S-AIR-002": {
            "a34004": 20.0,
            "a34002": 40.0,
            "a21026": 7.0,
            "a21004": 20.0,
            "a05024": 230.0,
        },
        "S-AIR-003": {
            "a34004": 10.0,
            "a34002": 20.0,
            "a21026": 5.0,
            "a21004": 10.0,
            "a05024": 40.0,
        },
    }
    for site in catalogue.sites.values():
        device = site.devices[0]
        if site.id in air:
            values: dict[str, Any] = {**air[site.id], "a21005": 0.6}
            r = reading(values, T, site.id, device.id, model="air_station")
        elif site.kind == "stack":
            r = reading({"a21026": 20.0, "a19001": 6.0}, T, site.id, device.id)
        else:
            cod = 250.0 if site.id == "S-OUT-001" else 20.0
            r = reading({"w01018": cod}, T, site.id, device.id)
        console.city.on_reading(r, 0.0)


# The page's every piece of text: its effective size (an SVG's text scaled by its transform),
# its colour, and its ground: the colours behind it from the nearest up to the first opaque
# one, and each colour of a gradient on the way (any of them may be behind the text).
COLLECT = """() => {
  const items = [];
  const clear = (c) => !c || c === "transparent" || c === "rgba(0, 0, 0, 0)";
  for (const el of document.querySelectorAll("body *")) {
    const own = [...el.childNodes].filter((n) => n.nodeType === 3 && n.textContent.trim())
      .map((n) => n.textContent.trim()).join(" ");
    if (!own || ["SCRIPT", "STYLE", "TITLE", "OPTION"].includes(el.tagName.toUpperCase())) continue;
    const cs = getComputedStyle(el);
    if (cs.visibility !== "visible" || cs.display === "none") continue;
    const box = el.getBoundingClientRect();
    if (!box.width || !box.height || box.bottom <= 0 || box.right <= 0
        || box.top >= innerHeight || box.left >= innerWidth) continue;
    const svg = el instanceof SVGElement;
    let scale = 1;
    if (svg) { const m = el.getScreenCTM(); scale = Math.hypot(m.a, m.b); }
    let opacity = 1;
    for (let a = el; a; a = a.parentElement) opacity *= parseFloat(getComputedStyle(a).opacity);
    const layers = [], gradients = [];
    for (let a = el; a; a = a.parentElement) {
      const s = getComputedStyle(a);
      const stops = s.backgroundImage.match(/rgba?\\([^)]*\\)/g) || [];
      if (stops.length) { gradients.push(...stops); break; }
      if (!clear(s.backgroundColor)) {
        layers.push(s.backgroundColor);
        if (!s.backgroundColor.startsWith("rgba")) break;
      }
    }
    if (svg) {
      const d = document.querySelector("polygon.district");
      if (d) gradients.push(getComputedStyle(d).fill);  // a label may stand on a district
      const panel = el.closest(".panel");
      if (panel) gradients.push(getComputedStyle(panel).backgroundColor);
    }
    items.push({ tag: el.tagName, id: el.id, cls: el.getAttribute("class") || "",
      text: own.slice(0, 40), size: parseFloat(cs.fontSize) * scale,
      colour: svg ? cs.fill : cs.color, opacity, layers, gradients });
  }
  return { width: innerWidth, height: innerHeight, items };
}"""

PAGE_GROUND = (11.0, 22.0, 34.0)  # --bg, behind everything


def grounds(item: dict[str, Any]) -> list[tuple[float, float, float]]:
    """Every opaque colour the text may stand on."""
    bases = [parse_css(c)[:3] for c in item["gradients"]] or [PAGE_GROUND]
    layers = [parse_css(c) for c in item["layers"]]
    if layers and layers[-1][3] == 1.0 and not item["gradients"]:
        bases = [layers[-1][:3]]
        layers = layers[:-1]
    out = []
    for base in bases:
        ground = base
        for layer in reversed(layers):  # the farthest first
            ground = over(layer, ground)
        out.append(ground)
    return out


def problems(found: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The text under 24 px on a 1080-line screen, and the text under 4.5:1."""
    small, faint = [], []
    per_1080 = 1080 / found["height"]
    for item in found["items"]:
        where = f"{item['tag']}#{item['id']}.{item['cls']} {item['text']!r}"
        size = item["size"] * per_1080
        if size < TEXT_MIN_PX - 0.01:
            small.append(f"{where}: {size:.1f} px at 1080p")
        r, g, b, a = parse_css(item["colour"])
        for ground in grounds(item):
            ratio = contrast(over((r, g, b, a * item["opacity"]), ground), ground)
            if ratio < CONTRAST_MIN:
                faint.append(f"{where}: {ratio:.2f}:1 ({item['colour']} on {ground})")
                break
    return small, faint


async def launch(p: Any) -> Any:
    assert CHROMIUM is not None, "no chromium on PATH: `make browser` installs Debian's"
    return await p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_the_wall_reads_from_5_m_on_every_screen(catalogue, tmp_path, lang):
    """No text under 24 px-equivalent nor under 4.5:1, on 1080p, 4K and two tiled walls; every
    air station's AQI number and the city's, the state of the city, today's alarms by hour and
    the enterprises most in breach."""

    async def main() -> None:
        async with wall_console(catalogue, tokens_file(tmp_path)) as (client, console, _):
            city_of_readings(console, catalogue)
            stop = asyncio.Event()
            pusher = asyncio.create_task(console.push(stop))
            base = str(client.make_url("/")).rstrip("/")
            try:
                async with async_playwright() as p:
                    browser = await launch(p)
                    try:
                        await check_screens(browser, base, console, catalogue, lang)
                    finally:
                        await browser.close()
            finally:
                stop.set()
                await pusher

    asyncio.run(main())


SCREENS = [(1920, 1080), (3840, 2160), (3840, 1080), (5760, 2160)]


async def check_screens(
    browser: Any, base: str, console: Console, catalogue: Catalogue, lang: str
) -> None:
    expected = city_aqi(console.city)
    assert expected is not None
    numbers = {sid: s.aqi["aqi"] for sid, s in console.city.sites.items() if s.aqi}
    assert len(numbers) == 3 and expected["aqi"] not in (round(sum(numbers.values()) / 3),), (
        "the test's air should tell a mean of AQIs from the AQI of mean concentrations"
    )
    for width, height in SCREENS:
        context = await browser.new_context(
            locale="zh-CN", timezone_id="Asia/Shanghai", viewport={"width": width, "height": height}
        )
        await context.add_init_script(f"localStorage.setItem('ecowatch.lang', '{lang}')")
        assert (
            await context.request.post(f"{base}/login", data={"token": "tok-ops"})
        ).status == 200
        page = await context.new_page()
        await page.goto(f"{base}/wall")
        await page.wait_for_selector("body[data-ready='1']", timeout=10_000)
        await page.wait_for_selector("#breach tr[data-enterprise='E-001']", timeout=10_000)
        for sid, n in numbers.items():
            await expect(page.locator(f"text.aqi-num[data-site='{sid}']")).to_have_text(str(n))
        assert await page.inner_text("#city-aqi-num") == str(expected["aqi"])
        statuses = {
            s: int(await page.inner_text(f"#statuses .st[data-status='{s}'] b")) for s in STATUSES
        }
        assert statuses == status_counts(console.city), statuses
        assert statuses["over"] >= 1 and statuses["unknown"] == 0, statuses
        bars = page.locator("#hours i")
        assert await bars.count() == 24
        assert await bars.nth(10).get_attribute("data-count") == "7"
        assert await bars.nth(10).get_attribute("class") == "now"  # 10:00 in China, data time
        assert "衢州某化工有限公司" in await page.inner_text("#breach")
        found = await page.evaluate(COLLECT)
        assert len(found["items"]) > 50, found["items"]
        small, faint = problems(found)
        assert small == [], f"{width}×{height}: {small}"
        assert faint == [], f"{width}×{height}: {faint}"
        # Nothing runs off the screen: the page itself never scrolls.
        overflow = await page.evaluate(
            "() => [document.documentElement.scrollWidth, document.documentElement.scrollHeight]"
        )
        assert overflow == [width, height], (width, height, overflow)
        await context.close()


def test_a_live_update_repaints_its_site_and_the_counts_in_one_frame(catalogue, tmp_path):
    """Updates are painted once per animation frame: a burst of them is one repaint, and the
    state of the city follows."""

    async def main() -> None:
        async with wall_console(catalogue, tokens_file(tmp_path)) as (client, console, _):
            city_of_readings(console, catalogue)
            stop = asyncio.Event()
            pusher = asyncio.create_task(console.push(stop))
            base = str(client.make_url("/")).rstrip("/")
            try:
                async with async_playwright() as p:
                    browser = await launch(p)
                    try:
                        context = await browser.new_context(locale="zh-CN")
                        login = await context.request.post(
                            f"{base}/login", data={"token": "tok-ops"}
                        )
                        assert login.status == 200
                        page = await context.new_page()
                        await page.goto(f"{base}/wall")
                        await page.wait_for_selector("body[data-ready='1']", timeout=10_000)
                        await expect(page.locator("#conn")).to_have_text("实时连接")
                        over = page.locator("#statuses .st[data-status='over'] b")
                        before = status_counts(console.city)["over"]
                        await expect(over).to_have_text(str(before))
                        later = T + timedelta(minutes=1)
                        for site in ("S-OUT-002", "S-OUT-003"):
                            device = catalogue.sites[site].devices[0].id
                            console.city.on_reading(
                                reading({"w01018": 500.0}, later, site, device), 1.0
                            )
                        await expect(over).to_have_text(str(before + 2), timeout=5_000)
                        mark = page.locator("[data-site='S-OUT-003'].site-mark")
                        await expect(mark).to_have_attribute("data-status", "over")
                        assert await page.locator("text.site-label:visible").count() >= 3
                    finally:
                        await browser.close()
            finally:
                stop.set()
                await pusher

    asyncio.run(main())


# -- the kiosk ----------------------------------------------------------------------------------


def test_a_kiosk_sees_the_whole_city_and_can_act_on_nothing(catalogue, tmp_path):
    async def main() -> None:
        async with wall_console(catalogue, tokens_file(tmp_path)) as (client, _, worker):
            r = await client.post("/login", json={"token": KIOSK, "next": "/desk"})
            assert r.status == 200
            body = await r.json()
            assert body == {"who": "kiosk:指挥大厅", "role": "kiosk", "next": "/wall"}
            assert int(r.cookies[COOKIE]["max-age"]) == KIOSK_DAYS * 86400
            city = await (await client.get("/api/city")).json()
            assert city["me"]["role"] == "kiosk"
            assert {s["id"] for s in city["sites"]} == set(catalogue.sites)
            for path in ("/api/cases", "/api/validity", "/api/wall", "/api/sites/S-OUT-001"):
                assert (await client.get(path)).status == 200, path
            worker.seen.clear()
            for path, data in (
                ("/api/sites/S-OUT-001/cases/c-1/ack", {}),
                ("/api/sites/S-OUT-001/cases/c-1/findings", {"text": "x", "close": False}),
                ("/api/sites/S-OUT-001/cases/c-1/supervise", {"note": "x"}),
                ("/api/alarms/A-1/silence", {}),
                ("/api/sites/S-STK-001/marks", {}),
                ("/api/sites/S-STK-001/marks/M-1/review", {"accept": True, "reason": "x"}),
                ("/api/anything/at/all", {}),
            ):
                r = await client.post(path, json=data)
                assert r.status == 403, path
                assert (await r.json())["code"] == "reads_only", path
            assert worker.seen == []  # refused here: nothing went on to the case API
            assert (await client.post("/logout")).status == 200
            assert (await client.get("/api/city")).status == 401

    asyncio.run(main())


def test_a_kiosk_is_not_sent_to_the_login_after_session_hours_but_revocation_ends_it(
    catalogue, tmp_path
):
    async def main() -> None:
        tokens = tokens_file(tmp_path)
        async with (
            wall_console(catalogue, tokens) as (client, console, _),
            TestClient(TestServer(console.app(), host="127.0.0.1")) as operator,
        ):
            assert (await operator.post("/login", json={"token": "tok-ops"})).status == 200
            assert (await client.post("/login", json={"token": KIOSK})).status == 200
            start = time.time()
            console.clock = lambda: start + SESSION_HOURS * 3600 + 60
            assert (await operator.get("/api/city")).status == 401  # 12 h: over
            r = await client.get("/api/city")
            assert r.status == 200
            # Its cookie sent again with each answer, as far ahead as ever.
            assert int(r.cookies[COOKIE]["max-age"]) == KIOSK_DAYS * 86400
            # Used every day, it lasts: each answer renews it.
            for day in range(1, 3 * KIOSK_DAYS, KIOSK_DAYS // 2):
                console.clock = lambda day=day: start + day * 86400
                assert (await client.get("/api/wall")).status == 200, day
            # Revoked: the next request finds it gone, and its stream (at the next pulse) too.
            stop = asyncio.Event()
            pusher = asyncio.create_task(console.push(stop))
            stream = await client.get("/live")
            assert stream.status == 200
            tokens.write_text(
                json.dumps(hashed({k: v for k, v in WALL_HOLDERS.items() if k != KIOSK})),
                encoding="utf-8",
            )
            assert (await client.get("/api/city")).status == 401
            try:
                ended = await asyncio.wait_for(stream.content.read(), timeout=5)
            finally:
                stop.set()
                await pusher
            assert b"event: hello" in ended
            assert all(s.role != "kiosk" for s in console.sessions.values())

    asyncio.run(main())


def test_the_login_page_sends_a_kiosk_to_the_wall_which_offers_no_silencing(catalogue, tmp_path):
    async def main() -> None:
        async with wall_console(catalogue, tokens_file(tmp_path)) as (client, console, _):
            city_of_readings(console, catalogue)
            base = str(client.make_url("/")).rstrip("/")
            async with async_playwright() as p:
                browser = await launch(p)
                try:
                    page = await (await browser.new_context(locale="zh-CN")).new_page()
                    await page.goto(f"{base}/login?next=/desk")
                    await page.fill("#token", KIOSK)
                    await page.click("button[type=submit]")
                    await page.wait_for_url(f"{base}/wall", timeout=10_000)
                    await page.wait_for_selector("body[data-role='kiosk']", timeout=10_000)
                    await page.wait_for_selector("#alarms li[data-alarm='A-1']", timeout=10_000)
                    assert await page.locator("#alarms [data-silence]").count() == 0
                    assert "大屏" in await page.inner_text("#who")
                finally:
                    await browser.close()

    asyncio.run(main())
