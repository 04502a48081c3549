"""The phone in a real Chromium at a phone's size: only what the officer can act on, the
evidence and the way to the site first, drafts that outlive live events and reloads, actions
queued while offline and sent once, photos shrunk and uploaded before the findings that name
them, and sign-in by a one-time code from the desk.

The case API is test_console_web.py's fake worker with the phone's endpoints on top: it
answers each action as the real one does (202; the same action_id again: 200 and a duplicate),
counts every POST it receives, retries included, and keeps the photos by their SHA-256.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import struct
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from ecowatch.config.catalogue import Catalogue
from ecowatch.config.settings import Settings
from ecowatch.console import phone_api, server
from ecowatch.console.core import City
from ecowatch.console.server import COOKIE, Console
from ecowatch.schema import CaseEvent, CaseStatus, Finding, Rule, Severity
from tests.component.console.test_console_web import CHROMIUM, GRIDS, T, Worker

CASE_ACTION = re.compile(r"/api/sites/([^/]+)/cases/([^/]+)/(ack|findings|photos)")
PHOTO = re.compile(r"/api/photos/([0-9a-f]{64})")
HERE = {"latitude": 28.9102, "longitude": 118.8098, "accuracy": 12}  # beside S-OUT-001
PHONE = {"width": 390, "height": 844}
CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")


def case_row(case_id: str, site: str, status: str, can: list[str], **more: Any) -> dict[str, Any]:
    names = {"S-OUT-001": "巨化精细化工总排口", "S-OUT-002": "柯城污水处理厂排口"}
    return {
        "id": case_id,
        "site": site,
        "site_name": names.get(site, site),
        "status": status,
        "rule": "hourly_over_limit",
        "pollutant": "w01018",
        "detail": {"zh": "COD 小时均值超标", "en": "COD hourly mean over the limit"},
        "first_seen": (T - timedelta(hours=2)).isoformat(),
        "deadline": None,
        "ack_due": (T + timedelta(hours=1)).isoformat() if status == "escalated" else None,
        "acknowledged_by": None,
        "findings": [],
        "grid": "G-KC-01",
        "can": can,
        **more,
    }


def rows() -> list[dict[str, Any]]:
    """Two cases to act on, three with nothing to do now (folded into one line)."""
    return [
        case_row("c-esc", "S-OUT-001", "escalated", ["ack", "findings"]),
        case_row("c-held", "S-OUT-002", "acknowledged", ["findings"]),
        case_row("c-rem", "S-OUT-002", "reminded", []),
        case_row("c-p1", "S-OUT-001", "pending", []),
        case_row("c-p2", "S-OUT-002", "pending", []),
    ]


@dataclass
class PhoneWorker(Worker):
    """The fake case API with the actions as the contract has them (action_id, photos)."""

    received: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)  # every POST
    done: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    photos: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    lose_answers: int = 0  # the next accepted actions' answers are lost on the way (504)

    def app(self, catalogue: Catalogue) -> web.Application:
        app = super().app(catalogue)

        @web.middleware
        async def phone(
            request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
        ) -> web.StreamResponse:
            token = request.headers.get("Authorization", "").removeprefix("Bearer ")
            acting = CASE_ACTION.fullmatch(request.path)
            if request.method == "POST" and acting and GRIDS.get(token):
                return await self.act(request, *acting.groups())
            shown = PHOTO.fullmatch(request.path)
            if request.method == "GET" and shown and token in GRIDS:
                data, kind = self.photos[shown.group(1)]
                return web.Response(body=data, headers={"Content-Type": kind})
            return await handler(request)

        app.middlewares.append(phone)
        return app

    def actions(self, kind: str) -> list[dict[str, Any]]:
        return [body for k, _, body in self.received if k == kind]

    async def act(self, request: web.Request, site: str, case_id: str, kind: str) -> web.Response:
        if kind == "photos":
            data = await request.read()
            sha = hashlib.sha256(data).hexdigest()
            self.photos[sha] = (data, request.headers["Content-Type"])
            self.received.append(("photos", case_id, {"sha256": sha}))
            url = f"/api/photos/{sha}?site={site}"
            answer = {"sha256": sha, "size": len(data), "content_type": "image/jpeg", "url": url}
            return web.json_response(answer, status=202)
        body = await request.json() if request.can_read_body else {}
        self.received.append((kind, case_id, body))
        action_id = body.get("action_id")
        if (case_id, action_id) in self.done:
            return web.json_response({"duplicate": True, **self.done[(case_id, action_id)]})
        row = next(r for r in self.rows if r["id"] == case_id)
        if kind not in row["can"]:
            error = f"case {case_id} is {row['status']}"
            return web.json_response({"error": error, "code": "not_now"}, status=409)
        if any(p not in self.photos for p in body.get("photos", [])):
            return web.json_response({"error": "photo not uploaded"}, status=400)
        row.update(status="acknowledged", can=["findings"], acknowledged_by="O-KC-01")
        if kind == "findings":
            row["findings"] = [*row["findings"], f"O-KC-01: {body['text']}"]
        answer = {"accepted": kind, "case": case_id}
        self.done[(case_id, action_id)] = answer
        if self.lose_answers:
            self.lose_answers -= 1
            return web.json_response({"error": "gateway timeout"}, status=504)
        return web.json_response(answer, status=202)


@asynccontextmanager
async def phone_console(catalogue: Catalogue) -> AsyncIterator[tuple[str, Console, PhoneWorker]]:
    worker = PhoneWorker(rows=rows())
    async with TestServer(worker.app(catalogue), host="127.0.0.1") as api:
        settings = Settings(
            web_host="127.0.0.1", web_port=api.port, influx_url="http://127.0.0.1:9"
        )
        console = Console(settings, catalogue, City(catalogue))
        # COD at S-OUT-001: its hourly mean 130.4 against the permit's 80 (超标 0.63 倍).
        console.city.on_finding(
            Finding(
                site="S-OUT-001",
                pollutant="w01018",
                rule=Rule.HOURLY_OVER_LIMIT,
                severity=Severity.VIOLATION,
                active=True,
                at=T,
                value=130.4,
                limit=80.0,
                unit="mg/L",
            )
        )
        async with TestClient(TestServer(console.app(), host="127.0.0.1")) as client:
            stop = asyncio.Event()
            pusher = asyncio.create_task(console.push(stop))
            try:
                yield str(client.make_url("/")).rstrip("/"), console, worker
            finally:
                stop.set()
                await pusher


def stored_history(settings: Any, site: str, start: datetime, stop: datetime) -> tuple[dict, None]:
    """InfluxDB's answer for the trend: COD over the last hours, every 10 minutes."""
    at = int((T - timedelta(hours=6)).timestamp() * 1000)
    return {"w01018": [(at + n * 600_000, 60.0 + 3 * n) for n in range(37)]}, None


async def with_browser(test: Callable[[Browser], Awaitable[None]]) -> None:
    assert CHROMIUM is not None, "no chromium on PATH: `make browser` installs Debian's"
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        try:
            await test(browser)
        finally:
            await browser.close()


async def officer_phone(browser: Browser, base: str) -> tuple[BrowserContext, Page]:
    context = await browser.new_context(
        locale="zh-CN",
        timezone_id="Asia/Shanghai",
        viewport=PHONE,
        is_mobile=True,
        has_touch=True,
        geolocation=HERE,
        permissions=["geolocation"],
    )
    assert (await context.request.post(f"{base}/login", data={"token": "tok-kc"})).status == 200
    page = await context.new_page()
    await page.goto(f"{base}/phone")
    await page.wait_for_selector("body[data-ready='1']", timeout=10_000)
    await page.wait_for_selector("[data-case='c-esc'] .c-where a", timeout=10_000)
    return context, page


def card(page: Page, case_id: str) -> Any:
    return page.locator(f"#cards [data-case='{case_id}']")


# -- only what the officer can act on, evidence first ----------------------------------------


def test_the_phone_offers_only_what_can_be_done_with_the_evidence_and_the_way_there(
    catalogue: Catalogue, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server, "site_history", stored_history)

    async def test(browser: Browser) -> None:
        async with phone_console(catalogue) as (base, _, worker):
            context, page = await officer_phone(browser, base)
            ids = await page.locator("#cards .card.case").evaluate_all(
                "els => els.map(e => e.dataset.case)"
            )
            assert ids == ["c-esc", "c-held"]  # escalated first; the rest folded
            summary = await page.inner_text("#folded summary")
            assert "另有 3 件暂无需处理" in summary and "待定 2" in summary, summary
            assert await card(page, "c-esc").locator("[data-act]").evaluate_all(
                "els => els.map(e => e.dataset.act)"
            ) == ["ack", "open"]
            held = card(page, "c-held").locator(".c-acts [data-act]")
            assert await held.evaluate_all("els => els.map(e => e.dataset.act)") == ["open"]

            esc = card(page, "c-esc")
            numbers = await esc.locator(".ev-numbers").inner_text()
            assert "130.4 mg/L" in numbers and "限值 80 mg/L" in numbers, numbers
            assert "超标 0.63 倍" in numbers, numbers
            assert await esc.locator(".ev-detail").inner_text() == "COD 小时均值超标"
            assert await esc.locator("svg.sparkline").get_attribute("data-points") == "37"
            # The contact's call link and the map apps' links, from the catalogue (WGS-84).
            call = esc.locator("a.call")
            assert await call.get_attribute("href") == "tel:05700001000"
            assert "张伟" in await esc.locator(".c-where").inner_text()
            site = catalogue.sites["S-OUT-001"]
            amap = urlsplit(await esc.locator("a.map-amap").get_attribute("href") or "")
            assert (amap.scheme, amap.netloc, amap.path) == ("https", "uri.amap.com", "/marker")
            query = parse_qs(amap.query)
            assert query["position"] == [f"{site.lon},{site.lat}"]
            assert query["coordinate"] == ["wgs84"] and query["name"] == [site.name]
            baidu = parse_qs(
                urlsplit(await esc.locator("a.map-baidu").get_attribute("href") or "").query
            )
            assert baidu["location"] == [f"{site.lat},{site.lon}"]
            assert baidu["coord_type"] == ["wgs84"] and baidu["output"] == ["html"]

            # Acknowledged: sent once with its action_id; the card is filled again in place,
            # its acknowledge button gone (the API's "can" no longer has it).
            await esc.locator("[data-act='ack']").tap()
            await expect(esc.locator(".c-message")).to_have_attribute("data-state", "sent_ok")
            await expect(esc.locator("[data-act='ack']")).to_have_count(0, timeout=5_000)
            (ack,) = worker.actions("ack")
            assert re.fullmatch(r"[0-9a-f]{32}", ack["action_id"])
            await expect(esc).to_have_attribute("data-status", "acknowledged")

            # In English, nothing of the page's own is Chinese (names of places and people
            # are the catalogue's).
            await page.evaluate("localStorage.setItem('ecowatch.lang', 'en')")
            await page.reload()
            await page.wait_for_selector("#cards [data-case='c-esc'] .c-where a", timeout=10_000)
            await esc.locator("[data-act='open']").tap()
            await expect(esc.locator(".where-now")).to_have_text("location ±12 m")
            texts = [
                await page.inner_text("#folded summary"),
                await page.inner_text("#mine"),
                await esc.locator(".c-acts").inner_text(),
                await esc.locator(".ev-numbers").inner_text(),
                await esc.locator(".ev-detail").inner_text(),
                await esc.locator(".spark").inner_text(),
                await esc.locator(".maps").inner_text(),
                await esc.locator("a.call").inner_text(),
                await esc.locator("form.findings").inner_text(),
            ]
            assert not [x for x in texts if CJK.search(x)], texts
            assert "1.63× the limit" in texts[3], texts
            await context.close()

    asyncio.run(with_browser(test))


def test_an_open_draft_survives_a_live_case_event_and_a_reload(catalogue: Catalogue) -> None:
    async def test(browser: Browser) -> None:
        async with phone_console(catalogue) as (base, console, worker):
            context, page = await officer_phone(browser, base)
            esc = card(page, "c-esc")
            await esc.locator("[data-act='open']").tap()
            form = esc.locator("form.findings")
            await form.locator("textarea").fill("现场检查：总排口有异味")
            await form.locator("[name='close']").check()
            await form.locator("textarea").focus()
            await esc.evaluate("e => { e.dataset.same = 'yes'; }")
            # A reminded case is escalated to the grid: the live event brings its card, and
            # the card being written on is left alone (the same element, its text, its focus).
            worker.rows[2] = case_row("c-rem", "S-OUT-002", "escalated", ["ack", "findings"])
            console.city.on_case_event(
                CaseEvent(
                    case_id="c-rem",
                    site="S-OUT-002",
                    kind="escalated",
                    at=T,
                    actor="system",
                    status=CaseStatus.ESCALATED,
                )
            )
            await card(page, "c-rem").wait_for(timeout=5_000)
            assert await esc.get_attribute("data-same") == "yes"
            assert await form.locator("textarea").input_value() == "现场检查：总排口有异味"
            assert await form.locator("[name='close']").is_checked()
            focused = await page.evaluate("document.activeElement.name")
            assert focused == "text"
            # The location (the phone's GPS, with its accuracy) and the visit's time are shown.
            await expect(form.locator(".where-now")).to_have_text("位置 ±12 米")
            assert "到场时间" in await form.locator(".visited").inner_text()
            # A reload: the form opens again with what was written.
            await page.reload()
            await page.wait_for_selector("body[data-ready='1']", timeout=10_000)
            form = card(page, "c-esc").locator("form.findings")
            await expect(form.locator("textarea")).to_have_value("现场检查：总排口有异味")
            assert await form.locator("[name='close']").is_checked()
            await context.close()

    asyncio.run(with_browser(test))


def test_findings_made_offline_are_queued_and_go_out_exactly_once(catalogue: Catalogue) -> None:
    async def test(browser: Browser) -> None:
        async with phone_console(catalogue) as (base, _, worker):
            context, page = await officer_phone(browser, base)
            held = card(page, "c-held")
            await held.locator("[data-act='open']").tap()
            form = held.locator("form.findings")
            await expect(form.locator(".where-now")).to_have_text("位置 ±12 米")
            await form.locator("textarea").fill("已责令停产整改")
            await context.set_offline(True)
            await form.locator("button[type='submit']").tap()
            message = held.locator(".c-message")
            await expect(message).to_have_attribute("data-state", "queued", timeout=5_000)
            assert await message.inner_text() == "已保存，联网后自动发送"
            assert worker.actions("findings") == []
            # Still queued after a reload (on a phone, a tab is often killed meanwhile).
            queue = await page.evaluate("localStorage.getItem('ecowatch.phone.queue')")
            assert "已责令停产整改" in queue
            # Back online, the answer to the first try is lost (504 after the API took it):
            # the retry carries the same action_id and is answered as a duplicate.
            worker.lose_answers = 1
            await context.set_offline(False)
            await expect(message).to_have_attribute("data-state", "sent_ok", timeout=30_000)
            sent = worker.actions("findings")
            assert len(sent) == 2 and sent[0] == sent[1], sent
            assert len(worker.done) == 1  # done once
            body = sent[0]
            assert body["text"] == "已责令停产整改" and body["close"] is False
            assert body["location"] == {
                "lat": HERE["latitude"],
                "lon": HERE["longitude"],
                "accuracy_m": HERE["accuracy"],
            }
            visited = datetime.fromisoformat(body["visited_at"])
            assert abs(visited - datetime.now(UTC)) < timedelta(minutes=5)
            assert await page.evaluate("localStorage.getItem('ecowatch.phone.queue')") == "[]"
            await context.close()

    asyncio.run(with_browser(test))


def test_a_refusal_is_said_in_the_pages_language_with_the_apis_words_in_the_title(
    catalogue: Catalogue,
) -> None:
    async def test(browser: Browser) -> None:
        async with phone_console(catalogue) as (base, _, worker):
            context, page = await officer_phone(browser, base)
            esc = card(page, "c-esc")
            worker.rows[0]["can"] = ["findings"]  # taken meanwhile by another officer
            await esc.locator("[data-act='ack']").tap()
            message = esc.locator(".c-message")
            await expect(message).to_have_attribute("data-state", "refused", timeout=5_000)
            assert await message.inner_text() == "与当前状态冲突，未能办理"
            assert await message.get_attribute("title") == "case c-esc is escalated"
            await context.close()

    asyncio.run(with_browser(test))


# -- photos -----------------------------------------------------------------------------------


def png(width: int, height: int) -> bytes:
    """A PNG of a camera's size (a gradient, so it compresses like a photo would not)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = bytes(range(256)) * (width * 3 // 256 + 2)
    raw = b"".join(b"\x00" + row[(y % 256) : (y % 256) + width * 3] for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 6))
        + chunk(b"IEND", b"")
    )


def jpeg_size(data: bytes) -> tuple[int, int]:
    """A JPEG's width and height, from its start-of-frame marker."""
    assert data[:2] == b"\xff\xd8", "not a JPEG"
    at = 2
    while at < len(data):
        marker, length = data[at + 1], struct.unpack(">H", data[at + 2 : at + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            height, width = struct.unpack(">HH", data[at + 5 : at + 9])
            return width, height
        at += 2 + length
    raise AssertionError("no start of frame")


def test_a_photo_is_shrunk_uploaded_and_named_by_its_hash_in_the_findings(
    catalogue: Catalogue,
) -> None:
    async def test(browser: Browser) -> None:
        async with phone_console(catalogue) as (base, _, worker):
            context, page = await officer_phone(browser, base)
            esc = card(page, "c-esc")
            await esc.locator("[data-act='open']").tap()
            form = esc.locator("form.findings")
            big = png(3200, 2400)
            await form.locator("input[type='file']").set_input_files(
                {"name": "IMG_0001.png", "mimeType": "image/png", "buffer": big}
            )
            thumb = form.locator("img.thumb")
            await thumb.wait_for(timeout=10_000)
            (sha,) = worker.photos
            data, kind = worker.photos[sha]
            assert kind == "image/jpeg" and jpeg_size(data) == (1600, 1200)
            assert hashlib.sha256(data).hexdigest() == sha
            # The thumbnail comes through the console with the officer's session.
            assert await thumb.get_attribute("src") == f"/api/photos/{sha}?site=S-OUT-001"
            await expect(thumb).to_have_js_property("complete", True)
            assert await thumb.evaluate("img => img.naturalWidth") == 1600
            # A reload keeps the photo in the draft; the findings name it by its hash.
            await page.reload()
            await page.wait_for_selector("body[data-ready='1']", timeout=10_000)
            form = card(page, "c-esc").locator("form.findings")
            await form.locator(f"img.thumb[data-sha='{sha}']").wait_for(timeout=5_000)
            await form.locator("textarea").fill("排口采样，已拍照")
            await form.locator("[name='close']").check()
            await form.locator("button[type='submit']").tap()
            message = card(page, "c-esc").locator(".c-message")
            await expect(message).to_have_attribute("data-state", "sent_ok", timeout=5_000)
            (body,) = worker.actions("findings")
            assert body["photos"] == [sha] and body["close"] is True
            assert body["location"]["accuracy_m"] == HERE["accuracy"]
            await context.close()

    asyncio.run(with_browser(test))


# -- sign-in by a one-time code -----------------------------------------------------------------


def test_a_one_time_code_signs_a_phone_in_once_and_not_after_it_expires(
    catalogue: Catalogue,
) -> None:
    async def test(browser: Browser) -> None:
        async with phone_console(catalogue) as (base, console, worker):
            desk = await browser.new_context(locale="zh-CN")
            assert (await desk.request.post(f"{base}/login", data={"token": "tok-kc"})).ok
            # Without a session: no code.
            stranger = await browser.new_context()
            assert (await stranger.request.post(f"{base}/api/signin-codes")).status == 401
            # The desk's button (signin.js, mounted by the desk): a code and its QR code.
            screen = await desk.new_page()
            await screen.goto(f"{base}/phone")
            await screen.wait_for_selector("body[data-ready='1']", timeout=10_000)
            await screen.add_script_tag(url="/static/signin.js")
            await screen.evaluate(
                "() => { const d = document.createElement('div'); d.id = 'signin';"
                " document.body.append(d); signinCode(d); }"
            )
            await screen.click("#signin .signin-ask")
            digits = screen.locator("#signin .signin-digits")
            await digits.wait_for(timeout=5_000)
            assert await screen.locator("#signin .signin-qr svg").count() == 1
            typed = await digits.get_attribute("data-code") or ""
            assert await digits.inner_text() == f"{typed[:4]} {typed[4:]}"
            assert "有效期还剩" in await screen.inner_text("#signin .signin-left")
            # Typed on a phone's sign-in page: signed in as the desk's person.
            phone = await browser.new_context(
                locale="zh-CN", viewport=PHONE, is_mobile=True, has_touch=True
            )
            page = await phone.new_page()
            await page.goto(f"{base}/login")
            await page.fill("#code", typed)
            await page.click("#code-login button[type='submit']")
            await page.wait_for_url(f"{base}/phone", timeout=10_000)
            await phone.close()

            r = await desk.request.post(f"{base}/api/signin-codes")
            assert r.status == 201
            made = await r.json()
            code = made["code"]
            assert re.fullmatch(r"\d{8}", code)
            assert made["url"] == f"{base}/login?code={code}"
            assert made["qr_svg"].startswith("<svg") and "<path" in made["qr_svg"]
            expires = datetime.fromisoformat(made["expires_at"])
            assert timedelta(minutes=4) < expires - datetime.now(UTC) <= timedelta(minutes=5)

            # The QR code's link on a phone: signed in, on the phone page, code wiped.
            phone = await browser.new_context(
                locale="zh-CN", viewport=PHONE, is_mobile=True, has_touch=True
            )
            page = await phone.new_page()
            await page.goto(made["url"])
            await page.wait_for_url(f"{base}/phone", timeout=10_000)
            await page.wait_for_selector("body[data-ready='1']", timeout=10_000)
            await card(page, "c-esc").wait_for(timeout=5_000)
            assert worker.seen[-1][2] == "Bearer tok-kc"  # the same token, the desk's
            session = console.sessions[(await phone.cookies())[0]["value"]]
            assert session.token == "tok-kc" and session.grids == frozenset({"G-KC-01"})

            # Once only: the same code again is refused, in the page's language.
            other = await browser.new_context(locale="zh-CN", viewport=PHONE, is_mobile=True)
            page = await other.new_page()
            await page.goto(f"{base}/login")
            await page.fill("#code", code)
            await page.click("#code-login button[type='submit']")
            await expect(page.locator("#code-message")).to_have_text(
                "登录码无效或已过期，请在工作台重新获取"
            )
            assert not [c for c in await other.cookies() if c["name"] == COOKIE]

            # Past five minutes: refused.
            late = (await (await desk.request.post(f"{base}/api/signin-codes")).json())["code"]
            codes = phone_api.codes_of(console)
            codes.clock = lambda: datetime.now(UTC).timestamp() + 301
            r = await other.request.post(f"{base}/login/code", data={"code": late})
            assert r.status == 401
            codes.clock = lambda: datetime.now(UTC).timestamp()

            # Guessing is throttled as token sign-ins are: five tries a minute an address.
            statuses = []
            for n in range(6):
                r = await other.request.post(f"{base}/login/code", data={"code": f"{n:08d}"})
                statuses.append(r.status)
            assert statuses[-1] == 429 and set(statuses[:-1]) <= {401, 429}, statuses
            for context in (desk, stranger, phone, other):
                await context.close()

    asyncio.run(with_browser(test))


def test_a_desk_keeps_only_its_newest_codes_and_each_works_once() -> None:
    now = [1000.0]
    codes = phone_api.SigninCodes(clock=lambda: now[0])
    who = server.Session("tok-kc", "", frozenset({"G-KC-01"}), expires=now[0] + 60)
    made = [codes.make(who, "desk-1")[0] for _ in range(phone_api.CODES_PER_SESSION + 2)]
    assert codes.take(made[0]) is None and codes.take(made[1]) is None  # the oldest dropped
    assert codes.take(made[-1]) == who
    assert codes.take(made[-1]) is None  # once
    now[0] += phone_api.CODE_TTL_S + 1
    assert codes.take(made[-2]) is None  # expired
