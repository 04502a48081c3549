"""The desk in a real browser (Debian's chromium): sites searched and filtered with live dots,
the city's queue of open cases (overdue first), an operator's 督办, 改派 and 备注 through the
case API with their own token and an action id, the trail with a visit's photos, the chart's
hourly and daily means against the limit of the mean judged (InfluxDB's ``aggregate`` windows
as annotated CSV), a window that stays bounded under live points, and the weekly settlement as
CSV and in print.

The fake case API is test_console_web's :class:`Worker`, taught the desk's endpoints here.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import json
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from playwright.async_api import async_playwright, expect

from ecowatch.alerts.wording import names
from ecowatch.config.catalogue import Catalogue
from ecowatch.config.settings import Settings
from ecowatch.console import server
from ecowatch.console.core import City
from ecowatch.console.server import Console
from ecowatch.schema import CaseEvent, CaseStatus
from tests.component.console.test_console_web import CHROMIUM, GRIDS, T, Worker, cod
from tests.factories import reading

ACT = re.compile(r"/api/sites/([^/]+)/cases/([^/]+)/(supervise|reassign|comment)")
ACTION_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
STACK, CEMS = "S-STK-001", "33080200G00001"
MONITOR, METER = "33080200000001", "33080200M00001"  # S-OUT-001's analyser and its meter
KIND_OF = {"supervise": "supervised", "reassign": "reassigned", "comment": "commented"}
PHOTO = "ab" * 32
PNG = base64.b64decode(  # one pixel
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
HOUR = timedelta(hours=1)


def row(case_id: str, site: str, status: str, **more: Any) -> dict[str, Any]:
    """A case as the case API lists it (streams/api/actions.py case_row)."""
    return {
        "id": case_id,
        "site": site,
        "site_name": site,
        "status": status,
        "rule": "daily_over_limit",
        "pollutant": "w01018",
        "detail": {"zh": "化学需氧量日均值超标", "en": "COD daily mean over the limit"},
        "first_seen": (T - timedelta(hours=6)).isoformat(),
        "deadline": None,
        "ack_due": None,
        "acknowledged_by": None,
        "findings": [],
        "grid": "G-KC-01",
        "supervised_due": None,
    } | more


@dataclass
class DeskWorker(Worker):
    """The case API's desk endpoints besides: 督办, 改派, 备注 (each once per action id), and
    the weekly settlement's rows."""

    acts: list[tuple[str, str, str, dict[str, Any], str]] = field(default_factory=list)
    refuse: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    week_rows: list[dict[str, Any]] = field(default_factory=list)
    on_act: Callable[[str, str, str, dict[str, Any], str], None] | None = None
    _done: set[str] = field(default_factory=set)

    def app(self, catalogue: Catalogue) -> web.Application:
        app = super().app(catalogue)

        @web.middleware
        async def desk(request: web.Request, handler: Any) -> web.StreamResponse:
            auth = request.headers.get("Authorization", "")
            token = auth.removeprefix("Bearer ")
            if request.path == f"/api/photos/{PHOTO}" and token in GRIDS:
                self.seen.append((request.method, request.path_qs, auth))
                return web.Response(body=PNG, content_type="image/png")
            if request.path == "/api/reports/weekly" and token in GRIDS:
                self.seen.append((request.method, request.path_qs, auth))
                return web.json_response({"week": request.query["week"], "grids": self.week_rows})
            found = ACT.fullmatch(request.path)
            if found is None or request.method != "POST":
                return await handler(request)
            self.seen.append((request.method, request.path_qs, auth))
            site, case_id, action = found.groups()
            body = await request.json()
            if token not in GRIDS:
                return web.json_response({"error": "a valid token is required"}, status=401)
            if GRIDS[token] is not None and action != "comment":
                return web.json_response({"error": "operators only", "code": "forbidden"}, 403)
            if action in self.refuse:
                status, answer = self.refuse[action]
                return web.json_response(answer, status=status)
            if body.get("action_id") in self._done:
                return web.json_response({"duplicate": True, "case": case_id})
            self._done.add(body["action_id"])
            self.acts.append((action, site, case_id, body, auth))
            if self.on_act is not None:
                self.on_act(action, site, case_id, body, token)
            return web.json_response({"accepted": action, "case": case_id}, status=202)

        app.middlewares.append(desk)
        return app


@asynccontextmanager
async def desk_console(
    catalogue: Catalogue, influx_url: str = "http://127.0.0.1:9"
) -> AsyncIterator[tuple[TestClient, Console, DeskWorker]]:
    worker = DeskWorker()
    async with TestServer(worker.app(catalogue), host="127.0.0.1") as api:
        settings = Settings(web_host="127.0.0.1", web_port=api.port, influx_url=influx_url)
        console = Console(settings, catalogue, City(catalogue))
        async with TestClient(TestServer(console.app(), host="127.0.0.1")) as client:
            yield client, console, worker


@asynccontextmanager
async def browser_on(console: Console) -> AsyncIterator[Any]:
    """Chromium, with the console pushing its changes meanwhile."""
    assert CHROMIUM is not None, "no chromium on PATH: `make browser` installs Debian's"
    stop = asyncio.Event()
    pusher = asyncio.create_task(console.push(stop))
    try:
        async with async_playwright() as p:
            browser = await p.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
            )
            try:
                yield browser
            finally:
                await browser.close()
    finally:
        stop.set()
        await pusher


async def desk_of(browser: Any, base: str, token: str, path: str = "/desk") -> tuple[Any, Any]:
    context = await browser.new_context(locale="zh-CN", timezone_id="Asia/Shanghai")
    assert (await context.request.post(f"{base}/login", data={"token": token})).status == 200
    page = await context.new_page()
    await page.goto(base + path)
    await page.wait_for_selector("body[data-ready='1']", timeout=10_000)
    await expect(page.locator("#conn")).to_have_text("实时连接", timeout=10_000)
    return context, page


def base_of(client: TestClient) -> str:
    return str(client.make_url("/")).rstrip("/")


# -- sites: search, filters, live dots -------------------------------------------------------------


def test_filtering_narrows_the_site_list_and_a_live_reading_repaints_its_dot(catalogue):
    async def main() -> None:
        async with desk_console(catalogue) as (client, console, _):
            console.city.on_reading(cod(20.0), 0.0)  # S-OUT-001: normal
            async with browser_on(console) as browser:
                _, page = await desk_of(browser, base_of(client), "tok-ops")
                items = page.locator("#sites [data-pick]")
                await expect(items).to_have_count(len(catalogue.sites))

                async def shown() -> list[str]:
                    return [await i.get_attribute("data-pick") or "" for i in await items.all()]

                await page.fill("#site-search", "S-OUT-00")
                await expect(items).to_have_count(6)
                await page.fill("#site-search", "热电")  # the enterprise's name
                assert await shown() == [STACK]
                await page.fill("#site-search", "")
                await page.select_option("#filter-kind", "air_station")
                await expect(items).to_have_count(3)
                await page.select_option("#filter-kind", "outfall")
                await page.select_option("#filter-grid", "G-KC-01")
                assert sorted(await shown()) == ["S-OUT-001", "S-OUT-002"]
                assert await page.inner_text("#site-count") == f"2/{len(catalogue.sites)}"
                await page.select_option("#filter-status", "normal")
                assert await shown() == ["S-OUT-001"]
                await page.select_option("#filter-status", "")
                dot = page.locator("#sites [data-pick='S-OUT-002'] .dot")
                assert await dot.get_attribute("data-status") == "unknown"
                # A live reading over the permit's 80: its dot turns, without a reload.
                console.city.on_reading(cod(500.0, "S-OUT-002", "33080200000002"), 1.0)
                await expect(dot).to_have_attribute("data-status", "over", timeout=5_000)
                assert "255, 59, 48" in (await dot.get_attribute("style") or "")  # #ff3b30
                # Under a status filter, a site whose status changes leaves the list.
                await page.select_option("#filter-status", "normal")
                assert await shown() == ["S-OUT-001"]
                console.city.on_reading(
                    reading({"w01018": 600.0}, T + HOUR, "S-OUT-001", MONITOR), 2.0
                )
                await expect(items).to_have_count(0, timeout=5_000)
                assert await page.inner_text("#sites") == "无匹配站点"

    asyncio.run(main())


# -- the queue -------------------------------------------------------------------------------------


QUEUE_ROWS = [
    row("c-ack", "S-OUT-002", "acknowledged", acknowledged_by="O-KC-01"),
    row("c-esc", "S-OUT-001", "escalated", ack_due=(T + 2 * HOUR).isoformat()),
    row("c-late", "S-OUT-003", "reminded", deadline=(T - HOUR).isoformat(), grid="G-LY-01"),
    row("c-pend", "S-OUT-004", "pending", grid="G-QJ-01"),
    row(
        "c-sup",
        "S-OUT-006",
        "acknowledged",
        grid="G-QJ-01",
        supervised_due=(T - HOUR / 2).isoformat(),
    ),
]


def test_the_queue_lists_every_open_case_overdue_first_and_a_click_picks_it(catalogue):
    async def main() -> None:
        async with desk_console(catalogue) as (client, console, worker):
            worker.rows = QUEUE_ROWS
            console.city.on_reading(cod(20.0), 0.0)  # data time T
            async with browser_on(console) as browser:
                _, page = await desk_of(browser, base_of(client), "tok-ops")
                rows = page.locator("#queue tr[data-case]")
                await expect(rows).to_have_count(4)  # the pending case reached no one yet
                order = [await r.get_attribute("data-case") for r in await rows.all()]
                # Past its rectify-by, then past its 督办's deadline; then by deadline.
                assert order == ["c-late", "c-sup", "c-esc", "c-ack"], order
                flags = [await r.get_attribute("data-overdue") for r in await rows.all()]
                assert flags == ["1", "1", "0", "0"]
                assert "超期" in await rows.nth(0).inner_text()
                text = await page.inner_text("#queue")
                zh = names()
                for status in ("reminded", "escalated", "acknowledged"):
                    assert zh["case_status"][status][0] in text, text
                assert zh["rules"]["daily_over_limit"][0] in text, text
                assert "daily_over_limit" not in text  # the rule by its name, never its id
                assert await page.inner_text("#queue-count") == "4 · 超期 2"
                await rows.nth(2).click()
                await expect(
                    page.locator("#site-cases tr.chosen[data-case='c-esc']")
                ).to_have_count(1)
                await expect(page.locator("#trail [data-trail='c-esc']")).to_have_count(1)
                assert "S-OUT-001" in page.url and "case=c-esc" in page.url
                assert catalogue.sites["S-OUT-001"].name in await page.inner_text("#head")
                await expect(page.locator("#queue tr.chosen")).to_have_attribute(
                    "data-case", "c-esc"
                )

    asyncio.run(main())


# -- acting on a case ------------------------------------------------------------------------------


def record(console: Console, action: str, site: str, case_id: str, body: dict[str, Any]) -> None:
    """What the worker would publish for an accepted act: its event on the case's trail."""
    console.city.on_case_event(
        CaseEvent(
            case_id=case_id,
            site=site,
            kind=KIND_OF[action],
            at=T,
            actor="operator:王",
            status=CaseStatus.ESCALATED,
            text=body.get("text", ""),
            note=body.get("note", ""),
            grid=body.get("grid"),
            deadline=body.get("deadline"),
        )
    )


def test_an_operator_supervises_comments_and_reassigns_and_a_refusal_is_said_in_chinese(
    catalogue,
):
    async def main() -> None:
        async with desk_console(catalogue) as (client, console, worker):
            # "reassign": offered only where the API lists it (its `can`), as the worker does.
            worker.rows = [
                row("c-esc", "S-OUT-001", "escalated", can=["comment", "supervise", "reassign"])
            ]
            worker.on_act = lambda action, site, case, body, _: record(
                console, action, site, case, body
            )
            console.city.on_reading(cod(20.0), 0.0)
            base = base_of(client)
            async with browser_on(console) as browser:
                context, page = await desk_of(browser, base, "tok-ops")  # the sign-in seeds
                # An officer's findings with a photo, the place and the time of the visit.
                console.city.on_case_event(
                    CaseEvent(
                        case_id="c-esc",
                        site="S-OUT-001",
                        kind="findings_recorded",
                        at=T,
                        actor="O-KC-01",
                        status=CaseStatus.ACKNOWLEDGED,
                        text="现场排污口已封堵",
                        photos=(PHOTO,),
                        location={"lat": 28.97, "lon": 118.87, "accuracy_m": 12},
                        visited_at=T - HOUR,
                    )
                )
                await page.goto(f"{base}/desk?site=S-OUT-001&case=c-esc")
                await page.wait_for_selector("body[data-ready='1']", timeout=10_000)
                await expect(page.locator("#conn")).to_have_text("实时连接", timeout=10_000)
                thumb = page.locator("#trail li[data-kind='findings_recorded'] img.thumb")
                await expect(thumb).to_have_count(1)
                src = await thumb.get_attribute("src")
                assert src == f"/api/photos/{PHOTO}?site=S-OUT-001"
                # Through the console's photo proxy, with the operator's token: an image.
                await expect(thumb).to_have_js_property("complete", True, timeout=5_000)
                assert await thumb.evaluate("e => e.naturalWidth") == 1
                assert (
                    "GET",
                    f"/api/photos/{PHOTO}?site=S-OUT-001",
                    "Bearer tok-ops",
                ) in worker.seen
                visit = await page.inner_text("#trail li[data-kind='findings_recorded']")
                assert "28.97000, 118.87000" in visit and "现场核查" in visit, visit

                tabs = page.locator("#case-actions [data-tab]")
                assert await tabs.all_inner_texts() == ["督办", "改派", "备注"]
                form = page.locator("#case-actions form[data-action='supervise']")
                # The deadline starts a day after the site's data time (10:00 on the 25th).
                deadline = form.locator("[name='deadline']")
                assert await deadline.input_value() == "2026-11-26T10:00"
                await form.locator("button[type='submit']").click()  # no note: not sent
                assert await form.locator(".message").inner_text() == "请填写督办意见"
                await form.locator("[name='note']").fill("请今日内到场核查并反馈")
                await form.locator("button[type='submit']").click()
                await expect(form.locator(".message.ok")).to_have_count(1, timeout=5_000)
                supervised = page.locator("#trail li[data-kind='supervised']")
                await expect(supervised).to_have_count(1, timeout=5_000)
                assert "请今日内到场核查并反馈" in await supervised.inner_text()

                await tabs.nth(2).click()
                form = page.locator("#case-actions form[data-action='comment']")
                await form.locator("[name='text']").fill("已电话联系企业负责人")
                await form.locator("button[type='submit']").click()
                await expect(page.locator("#trail li[data-kind='commented']")).to_have_count(
                    1, timeout=5_000
                )

                await tabs.nth(1).click()
                form = page.locator("#case-actions form[data-action='reassign']")
                choices = await form.locator("[name='grid'] option").all_inner_texts()
                assert catalogue.grids["G-KC-01"].name not in choices  # its own grid
                await form.locator("[name='grid']").select_option("G-KC-02")
                await form.locator("[name='note']").fill("属地调整")
                await form.locator("button[type='submit']").click()
                reassigned = page.locator("#trail li[data-kind='reassigned']")
                await expect(reassigned).to_have_count(1, timeout=5_000)

                assert [(a, s, c, auth) for a, s, c, _, auth in worker.acts] == [
                    ("supervise", "S-OUT-001", "c-esc", "Bearer tok-ops"),
                    ("comment", "S-OUT-001", "c-esc", "Bearer tok-ops"),
                    ("reassign", "S-OUT-001", "c-esc", "Bearer tok-ops"),
                ]
                bodies = [body for *_, body, _ in worker.acts]
                ids = [b.pop("action_id") for b in bodies]
                assert all(ACTION_ID.fullmatch(i) for i in ids) and len(set(ids)) == 3
                assert bodies == [
                    {"note": "请今日内到场核查并反馈", "deadline": "2026-11-26T10:00:00+08:00"},
                    {"text": "已电话联系企业负责人"},
                    {"grid": "G-KC-02", "note": "属地调整"},
                ]

                # A refusal with a code: the page's own words, the API's English in a title.
                english = "deadline 2026-11-25T09:00:00+08:00 is not after the case's time now"
                worker.refuse["supervise"] = (
                    400,
                    {"error": english, "code": "deadline_passed", "field": "deadline"},
                )
                await tabs.nth(0).click()
                form = page.locator("#case-actions form[data-action='supervise']")
                await form.locator("[name='note']").fill("再次督办")
                await deadline.fill("2026-11-25T09:00")
                await form.locator("button[type='submit']").click()
                message = form.locator(".message.error")
                await expect(message).to_have_text("新期限须晚于站点当前数据时间", timeout=5_000)
                assert await message.get_attribute("title") == english
                # A code the page does not know: a sentence by the status, still in Chinese.
                worker.refuse["comment"] = (409, {"error": "case c-esc is odd", "code": "odd"})
                await tabs.nth(2).click()
                form = page.locator("#case-actions form[data-action='comment']")
                await form.locator("[name='text']").fill("补充说明")
                await form.locator("button[type='submit']").click()
                await expect(form.locator(".message.error")).to_have_text(
                    "与当前状态冲突，未能办理", timeout=5_000
                )
                assert "odd" not in await page.inner_text("#case-actions")
                assert len(worker.acts) == 3
                await context.close()

                # An officer of the grid comments, with their own token; nothing else offered.
                context, page = await desk_of(
                    browser, base, "tok-kc", "/desk?site=S-OUT-001&case=c-esc"
                )
                tabs = page.locator("#case-actions [data-tab]")
                await expect(tabs).to_have_count(1)
                assert await tabs.all_inner_texts() == ["备注"]
                worker.refuse.clear()
                form = page.locator("#case-actions form[data-action='comment']")
                await form.locator("[name='text']").fill("已到场")
                await form.locator("button[type='submit']").click()
                await expect(form.locator(".message.ok")).to_have_count(1, timeout=5_000)
                assert worker.acts[-1][4] == "Bearer tok-kc"
                await context.close()

    asyncio.run(main())


# -- the chart: means against the limit of the mean judged -----------------------------------------


@dataclass
class Means:
    """InfluxDB's query API answering the desk's means query (``aggregate`` windows of one
    site, pivoted: the mean field and ``valid`` as columns) with the test's windows, as
    annotated CSV; any other query with no tables."""

    windows: list[tuple[str, str, str, str, datetime, float, bool]]  # site, device, code, period
    queries: list[str] = field(default_factory=list)

    def app(self) -> web.Application:
        async def query(request: web.Request) -> web.Response:
            text = (await request.json())["query"]
            self.queries.append(text)
            if 'r._measurement == "aggregate"' not in text or 'r.period == "hour"' not in text:
                return web.Response(text="", content_type="text/csv")
            site = re.search(r'r\.site == "([^"]+)"', text)
            assert site is not None
            name = "corrected" if 'r._field == "corrected"' in text else "mean"
            lines = [
                "#datatype,string,long,dateTime:RFC3339,string,string,string,double,boolean",
                "#group,false,false,false,true,true,true,false,false",
                "#default,_result,,,,,,,",
                f",result,table,_time,device,pollutant,period,{name},valid",
            ]
            tables: dict[tuple[str, str, str], int] = {}
            for where, device, code, period, at, value, valid in self.windows:
                if where != site.group(1):
                    continue
                n = tables.setdefault((device, code, period), len(tables))
                stamp = at.isoformat().replace("+00:00", "Z")
                lines.append(f",,{n},{stamp},{device},{code},{period},{value},{str(valid).lower()}")
            return web.Response(text="\r\n".join(lines) + "\r\n\r\n", content_type="text/csv")

        app = web.Application()
        app.router.add_post("/api/v2/query", query)
        return app


def china_day(day: int) -> datetime:
    """November ``day``'s start in China: 16:00 UTC the day before."""
    return datetime(2026, 11, day, tzinfo=UTC) - timedelta(hours=8)


MEAN_WINDOWS = [
    # S-OUT-001's COD (a 24 h permit limit of 80): two days and the last five hours.
    ("S-OUT-001", MONITOR, "w01018", "day", china_day(23), 60.0, True),
    ("S-OUT-001", MONITOR, "w01018", "day", china_day(24), 85.0, True),
    ("S-OUT-001", METER, "w01018", "day", china_day(24), 999.0, True),
    *[("S-OUT-001", MONITOR, "w01018", "hour", T - n * HOUR, 50.0 + n, True) for n in range(1, 6)],
    # The stack's SO2 (an hourly permit limit of 35), corrected: five hours, one invalid.
    *[(STACK, CEMS, "a21026", "hour", T - n * HOUR, 20.0 + 4 * n, n != 3) for n in range(1, 6)],
]


def test_the_chart_draws_hourly_means_against_a_1h_limit_and_daily_ones_against_a_24h_one(
    catalogue,
):
    async def main() -> None:
        influx = Means(MEAN_WINDOWS)
        async with (
            TestServer(influx.app(), host="127.0.0.1") as db,
            desk_console(catalogue, f"http://127.0.0.1:{db.port}") as (client, console, _),
        ):
            console.city.on_reading(cod(20.0), 0.0)
            so2 = reading({"a21026": 30.0, "a19001": 9.0}, T, STACK, CEMS)
            console.city.on_reading(so2, 0.0)
            async with browser_on(console) as browser:
                _, page = await desk_of(browser, base_of(client), "tok-ops", "/desk?site=S-OUT-001")
                chart = page.locator("#chart")
                assert await chart.get_attribute("data-judged") == "day"
                await expect(chart.locator(".limit-line[data-basis='24h']")).to_have_count(1)
                assert await chart.locator(".limit-line[data-basis='1h']").count() == 0
                # Two days (the meter's day is not the analyser's), both judged; the hours drawn,
                # not judged.
                assert await chart.locator(".mean-day.judged").count() == 2
                assert await chart.locator(".mean-hour").count() == 5
                assert await chart.locator(".mean-hour.judged").count() == 0
                text = await chart.text_content() or ""
                for words in ("日均值限值 80 mg/L", "日均值", "小时均值"):
                    assert words in text, text
                assert "近48小时" in await page.inner_text("#chart-note")

                await page.goto(f"{base_of(client)}/desk?site={STACK}")
                await page.wait_for_selector("body[data-ready='1']", timeout=10_000)
                await page.click("#tabs button[data-p='a21026']")
                assert await chart.get_attribute("data-judged") == "hour"
                await expect(chart.locator(".limit-line[data-basis='1h']")).to_have_count(1)
                assert await chart.locator(".mean-hour.judged").count() == 5
                assert await chart.locator(".mean-hour[data-valid='0']").count() == 1
                assert await chart.locator(".mean-day").count() == 0
                text = await chart.text_content() or ""
                assert "小时均值限值 35 mg/m³" in text and "基准氧含量 6%" in text, text
            # A stack's means are its corrected ones; an outfall's its measured means.
            means = [q for q in influx.queries if 'r._measurement == "aggregate"' in q]
            stack = [q for q in means if STACK in q]
            assert stack and all('r._field == "corrected"' in q for q in stack)
            assert any('r._field == "mean"' in q and "S-OUT-001" in q for q in means)

    asyncio.run(main())


def test_the_charts_window_stays_fixed_and_its_points_bounded_under_live_points(
    catalogue, monkeypatch: pytest.MonkeyPatch
):
    """240 live readings three minutes apart (12 h) on a stack's 6 h chart: the chart keeps
    the last 6 h of them, and no more points than that."""
    monkeypatch.setattr(server, "PUSH_EVERY_S", 0.01)  # each reading its own push
    every = timedelta(minutes=3)

    def so2(n: int) -> Any:
        return reading({"a21026": 20.0 + n % 7, "a19001": 9.0}, T + n * every, STACK, CEMS)

    async def main() -> None:
        async with desk_console(catalogue) as (client, console, _):
            console.city.on_reading(so2(0), 0.0)
            async with browser_on(console) as browser:
                _, page = await desk_of(browser, base_of(client), "tok-ops", f"/desk?site={STACK}")
                await page.click("#tabs button[data-p='a21026']")
                for n in range(1, 241):
                    console.city.on_reading(so2(n), float(n))
                    await asyncio.sleep(0.02)
                last = int((T + 240 * every).timestamp() * 1000)
                chart = page.locator("#chart")
                await expect(chart).to_have_attribute("data-last-t", str(last), timeout=10_000)
                points = int(await chart.get_attribute("data-points") or 0)
                measured = int(await chart.get_attribute("data-measured-points") or 0)
                first = int(await chart.get_attribute("data-first-t") or 0)
                window = 6 * 3600 * 1000
                assert last - first <= window, (last - first) / 3600e3
                assert 60 <= points <= window // (3 * 60 * 1000) + 1, points
                assert measured <= window // (3 * 60 * 1000) + 1, measured
                drawn = await chart.locator(".main-line").get_attribute("points") or ""
                assert len(drawn.split()) == points

    asyncio.run(main())


# -- the weekly settlement: CSV and print ----------------------------------------------------------


WEEK_ROWS = [
    {
        "grid": "G-KC-01",
        "name": "柯城区第一网格",
        "district": "柯城区",
        "opened": 3,
        "escalated": 2,
        "acknowledged": 1,
        "closed": 1,
        "overdue": ["c-late"],
        "open_at_end": 2,
        "marks_made": 1,
        "marks_accepted": 1,
        "marks_rejected": 0,
        "lowest_rates": [],
        "settled": False,
    },
    {
        "grid": "G-KC-02",
        "name": "=柯城区第二网格",  # as a formula, were it not kept as text
        "district": "柯城区",
        "opened": 0,
        "escalated": 0,
        "acknowledged": 0,
        "closed": 0,
        "overdue": [],
        "open_at_end": 0,
        "marks_made": 0,
        "marks_accepted": 0,
        "marks_rejected": 0,
        "lowest_rates": [],
        "settled": True,
    },
]


def test_the_weekly_settlement_exports_as_csv_and_prints_alone(catalogue):
    async def main() -> None:
        async with desk_console(catalogue) as (client, console, worker):
            worker.week_rows = WEEK_ROWS
            console.city.on_reading(cod(20.0), 0.0)  # the week of data time: 2026-11-23
            base = base_of(client)
            async with browser_on(console) as browser:
                context, page = await desk_of(browser, base, "tok-ops")
                link = page.locator("#weekly-csv")
                await expect(link).to_have_attribute(
                    "href", "/api/weekly.csv?week=2026-11-23&lang=zh"
                )
                assert await link.inner_text() == "导出 CSV"
                async with page.expect_download() as download:
                    await link.click()
                saved = await (await download.value).path()
                data = saved.read_bytes()
                assert data.startswith(b"\xef\xbb\xbf")  # Excel reads it as UTF-8
                rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
                assert (
                    rows[0][:4] == ["网格", "网格编号", "区县", "新发"]
                    and rows[0][-1] == "是否结清"
                )
                assert rows[1][:2] == ["柯城区第一网格", "G-KC-01"]
                assert rows[1][3:10] == ["3", "2", "1", "1", "2", "1", "c-late"]
                assert rows[1][-1] == "未结清" and rows[2][-1] == "已结清"
                assert rows[2][0] == "'=柯城区第二网格" and len(rows) == 3
                assert (
                    "GET",
                    "/api/reports/weekly?week=2026-11-23",
                    "Bearer tok-ops",
                ) in worker.seen

                english = await context.request.get(
                    f"{base}/api/weekly.csv?week=2026-11-23&lang=en"
                )
                assert english.status == 200
                assert english.headers["content-type"] == "text/csv; charset=utf-8"
                assert 'filename="weekly-2026-11-23.csv"' in english.headers["content-disposition"]
                rows = list(csv.reader(io.StringIO((await english.body()).decode("utf-8-sig"))))
                assert rows[0][0] == "Grid" and rows[1][-1] == "not settled"
                for bad in ("lang=fr", "week=2026-11-24", "week=nope"):
                    refused = await context.request.get(f"{base}/api/weekly.csv?{bad}")
                    assert refused.status == 400, bad
                    assert json.loads(await refused.text())["error"], bad

                assert await page.inner_text("#print") == "打印"
                await page.emulate_media(media="print")
                await expect(page.locator("#weekly")).to_be_visible()
                assert "柯城区第一网格" in await page.inner_text("#weekly")
                for hidden in (
                    "header.bar", "#sites", "#filters", "#chart", "#values", "#queue",
                    "#trail", "#alarms", "#dead-latest", "#validity", "#print", "#weekly-csv",
                ):  # fmt: skip
                    await expect(page.locator(hidden).first).to_be_hidden()
                await page.emulate_media(media="screen")
                await expect(page.locator("#sites")).to_be_visible()

    asyncio.run(main())


CJK = re.compile(r"[\u3000-\u30ff\u4e00-\u9fff\uff00-\uffef]")


def test_in_english_the_desks_own_words_and_its_refusals_are_english(catalogue):
    """The desk's controls, chart and queue in English alone (the names of places, sites and
    grids are the catalogue's, in Chinese), and a refusal in English from its code."""

    async def main() -> None:
        influx = Means(MEAN_WINDOWS)
        async with (
            TestServer(influx.app(), host="127.0.0.1") as db,
            desk_console(catalogue, f"http://127.0.0.1:{db.port}") as (client, console, worker),
        ):
            worker.rows = [
                row("c-esc", "S-OUT-001", "escalated", can=["comment", "supervise", "reassign"])
            ]
            console.city.on_reading(cod(20.0), 0.0)
            base = base_of(client)
            async with browser_on(console) as browser:
                context = await browser.new_context(locale="zh-CN", timezone_id="Asia/Shanghai")
                await context.add_init_script("localStorage.setItem('ecowatch.lang', 'en')")
                assert (await context.request.post(f"{base}/login", data={"token": "tok-ops"})).ok
                page = await context.new_page()
                await page.goto(f"{base}/desk?site=S-OUT-001&case=c-esc")
                await page.wait_for_selector("body[data-ready='1']", timeout=10_000)
                await expect(page.locator("#case-actions [data-tab]")).to_have_count(3)
                assert await page.locator("#case-actions [data-tab]").all_inner_texts() == [
                    "Supervise",
                    "Reassign",
                    "Comment",
                ]
                options = await page.locator("#filter-status option").all_inner_texts()
                assert options[:2] == ["every status", "over the limit"], options
                assert await page.get_attribute("#site-search", "placeholder") == (
                    "search name, id or enterprise"
                )
                own = (
                    "#filter-status",
                    "#filter-kind",
                    "#case-actions form[data-action='supervise']",
                )
                for part in (*own, "#chart", "#chart-note", "#tabs"):
                    text = await page.locator(part).text_content() or ""
                    assert not CJK.search(text), (part, text)
                for part in ("#queue-panel h2", "#weekly-panel h2", "#weekly tr:first-child"):
                    text = await page.locator(part).inner_text()
                    assert not CJK.search(text), (part, text)
                assert "daily-mean limit 80 mg/L" in (await page.text_content("#chart") or "")
                worker.refuse["supervise"] = (400, {"error": "…", "code": "deadline_passed"})
                form = page.locator("#case-actions form[data-action='supervise']")
                await form.locator("[name='note']").fill("on site today")
                await form.locator("button[type='submit']").click()
                await expect(form.locator(".message.error")).to_have_text(
                    "the deadline must be after the site's data time", timeout=5_000
                )

    asyncio.run(main())
