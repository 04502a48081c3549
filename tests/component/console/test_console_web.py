"""The console's web edge on real sockets: sign-in refusals, the case API proxied with the
caller's own token, Server-Sent Events' framing, the static files and their types, and no page
that fetches anything from another host.

The worker's case API is a small aiohttp app of the test's own on 127.0.0.1 that answers as the
real one does for a few tokens and records every Authorization header it is sent (and the marks,
标记, an enterprise declares and proves and an officer reviews); where a test needs InfluxDB's
answers, another one answers its query API with the test's points, as annotated CSV (the real
client parses them).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from playwright.async_api import async_playwright, expect

from ecowatch.config.catalogue import Catalogue
from ecowatch.config.settings import Settings
from ecowatch.console.core import City
from ecowatch.console.server import COOKIE, Console
from ecowatch.edges.tokens import hashed
from ecowatch.schema import DeadLetter, Mark, MarkStatus, MarkType, Proof, Reading
from ecowatch.streams.judging.validity import NOTHING, site_rates
from tests.factories import reading

STATIC = Path(__file__).parents[3] / "console" / "static"
CHROMIUM = shutil.which("chromium")  # Debian's (`make browser`); Playwright downloads none
T = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)  # a Wednesday in China: the week of 2026-11-23
GRIDS = {"tok-ops": None, "tok-kc": ["G-KC-01"], "tok-kc2": ["G-KC-02"]}  # None: an operator
ENTERPRISES = {"tok-e7": "E-007"}  # 衢州柯城热电有限公司: S-STK-001, grid G-KC-02
# The tokens file as `ecowatch tokens add` writes it: the console reads who holds a token there.
HOLDERS = {"tok-kc2": "O-KC-03", "tok-e7": "enterprise:E-007"}
MARK_PATH = re.compile(r"/api/sites/([^/]+)/marks(?:/([^/]+)/(proofs|review))?")


@dataclass
class Worker:
    """What the fake case API was asked, and with which token."""

    seen: list[tuple[str, str, str]] = field(default_factory=list)  # method, path?query, auth
    rows: list[dict[str, Any]] = field(default_factory=list)
    marks: dict[str, Mark] = field(default_factory=dict)
    declared: list[dict[str, Any]] = field(default_factory=list)  # the bodies, as received
    proofs: list[tuple[bytes, str, str]] = field(default_factory=list)  # body, X-Filename, type
    documents: dict[str, bytes] = field(default_factory=dict)
    reviews: list[tuple[str, dict[str, Any], str]] = field(default_factory=list)  # id, body, auth

    def app(self, catalogue: Catalogue) -> web.Application:
        async def handle(request: web.Request) -> web.Response:
            auth = request.headers.get("Authorization", "")
            self.seen.append((request.method, request.path_qs, auth))
            token = auth.removeprefix("Bearer ")
            marks = MARK_PATH.fullmatch(request.path) or request.path.startswith("/api/proofs/")
            if token in ENTERPRISES or marks:
                return await self.marking(request, token, catalogue)
            if token not in GRIDS:
                return web.json_response({"error": "a valid officer token is required"}, status=401)
            grids = GRIDS[token] or sorted(catalogue.grids)
            if request.path == "/api/cases":
                return web.json_response({"grid": "*", "grids": grids, "cases": self.rows})
            if request.path == "/api/reports/weekly":
                return web.json_response({"week": request.query["week"], "grids": []})
            if GRIDS[token] is None:  # an action
                return web.json_response({"error": "operators watch"}, status=403)
            return web.json_response({"accepted": "acknowledge"}, status=202)

        app = web.Application(client_max_size=1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", handle)
        return app

    async def marking(self, request: web.Request, token: str, catalogue: Catalogue) -> web.Response:
        """The marks' endpoints (docs/marks.md) as far as the phone goes: an enterprise's own
        sites, an officer's grids'; an enterprise is refused every case."""
        enterprise = ENTERPRISES.get(token)
        if enterprise is None and token not in GRIDS:
            return web.json_response({"error": "a valid officer token is required"}, status=401)
        if request.path.startswith("/api/proofs/"):
            data = self.documents.get(request.path.removeprefix("/api/proofs/"))
            if data is None:
                return web.json_response({"error": "no proof"}, status=404)
            headers = {"Content-Disposition": "attachment", "X-Content-Type-Options": "nosniff"}
            return web.Response(body=data, content_type="application/pdf", headers=headers)
        found = MARK_PATH.fullmatch(request.path)
        if found is None:
            return web.json_response({"error": "cases are for officers and operators"}, status=403)
        site = catalogue.sites[found.group(1)]
        grids = GRIDS.get(token) or (catalogue.grids if enterprise is None else [])
        if not (site.enterprise == enterprise or site.grid in grids):
            return web.json_response({"error": f"site {site.id} is not yours"}, status=403)
        if request.method == "GET":
            rows = [_row(m) for m in self.marks.values() if m.site == site.id]
            return web.json_response({"site": site.id, "now": T.isoformat(), "marks": rows})
        mark_id, action = found.group(2), found.group(3)
        if action == "proofs":
            mark = self.marks[mark_id]
            data = await request.read()
            name = request.headers["X-Filename"]
            self.proofs.append((data, name, request.headers["Content-Type"]))
            sha = hashlib.sha256(data).hexdigest()
            self.documents[sha] = data
            proof = Proof(
                sha256=sha,
                name=unquote(name),
                content_type=request.headers["Content-Type"],
                size=len(data),
                at=T,
                by=mark.made_by,
            )
            mark = self.marks[mark_id] = mark.model_copy(update={"proofs": (*mark.proofs, proof)})
            return web.json_response({"mark": _row(mark)}, status=202)
        body = await request.json()
        if action == "review":
            self.reviews.append((mark_id, body, request.headers["Authorization"]))
            status = MarkStatus.ACCEPTED if body["accept"] else MarkStatus.REJECTED
            update = {"status": status, "reviewed_by": HOLDERS[token], "reviewed_at": T}
            mark = self.marks[mark_id].model_copy(update=update | {"review_reason": body["reason"]})
            self.marks[mark_id] = mark
            return web.json_response({"mark": _row(mark)}, status=202)
        self.declared.append(body)
        start = datetime.fromisoformat(body["start"])
        if any(m.type == body["type"] and m.start == start for m in self.marks.values()):
            error = f"start: overlaps pending mark of the same type at {site.id}"
            return web.json_response({"error": error}, status=409)
        mark = Mark(
            id=f"M-{site.id}-{start.astimezone(UTC):%Y%m%d%H%M}-{len(self.marks) + 1}",
            site=site.id,
            device=body.get("device"),
            type=MarkType(body["type"]),
            start=start,
            end=datetime.fromisoformat(body["end"]),
            reason=body["reason"],
            made_by=f"enterprise:{enterprise}",
            made_at=T,
        )
        self.marks[mark.id] = mark
        return web.json_response({"mark": _row(mark)}, status=202)


def _row(mark: Mark) -> dict[str, Any]:
    """A mark as the API lists it: each proof with the URL that serves it."""
    row = mark.model_dump(mode="json")
    for proof in row["proofs"]:
        proof["url"] = f"/api/proofs/{proof['sha256']}?site={mark.site}"
    return row


@asynccontextmanager
async def console_for(
    catalogue: Catalogue, influx_url: str = "http://127.0.0.1:9", tokens: Path | None = None
) -> AsyncIterator[tuple[TestClient, Console, Worker]]:
    worker = Worker()
    async with TestServer(worker.app(catalogue), host="127.0.0.1") as api:
        settings = Settings(
            web_host="127.0.0.1",
            web_port=api.port,
            officer_tokens=tokens,
            influx_url=influx_url,  # by default nothing there: the chart says why it is empty
        )
        console = Console(settings, catalogue, City(catalogue))
        async with TestClient(TestServer(console.app(), host="127.0.0.1")) as client:
            yield client, console, worker


def run(test: Callable[[TestClient, Console, Worker], Awaitable[None]], catalogue) -> None:
    async def main() -> None:
        async with console_for(catalogue) as (client, console, worker):
            await test(client, console, worker)

    asyncio.run(main())


async def sign_in(client: TestClient, token: str) -> None:
    r = await client.post("/login", json={"token": token})
    assert r.status == 200, await r.text()
    assert COOKIE in r.cookies
    morsel = r.cookies[COOKIE]
    assert morsel["httponly"] and morsel["samesite"] == "Strict"


def cod(value: float, site: str = "S-OUT-001", device: str = "33080200000001") -> Reading:
    return reading({"w01018": value}, T, site, device)


# -- sign-in ------------------------------------------------------------------------------------


def test_a_bad_missing_or_forged_token_gets_no_session_and_no_data(catalogue):
    async def test(client: TestClient, console: Console, worker: Worker) -> None:
        for body in ({"token": "not-a-token"}, {"token": ""}, {}, "not json", ["tok-ops"]):
            r = await client.post("/login", data=json.dumps(body) if body != "not json" else body)
            assert r.status == 401, body
            assert "error" in await r.json() and COOKIE not in r.cookies
        # Only the non-empty token went to the worker, as the caller's Bearer token.
        assert [s[2] for s in worker.seen] == ["Bearer not-a-token"]
        for path in ("/api/city", "/api/sites/S-OUT-001", "/api/cases", "/api/weekly", "/live"):
            r = await client.get(path)
            assert r.status == 401, path
            assert (await r.json())["error"]
        assert (await client.get("/api/dead-letters")).status == 401
        r = await client.post("/api/sites/S-OUT-001/cases/c/ack", json={})
        assert r.status == 401
        # A page without a session is the login; a forged cookie is no session.
        client.session.cookie_jar.update_cookies({COOKIE: "forged"})
        r = await client.get("/wall", allow_redirects=False)
        assert r.status == 302 and r.headers["Location"] == "/login?next=/wall"
        assert console.sessions == {}

    run(test, catalogue)


def test_an_officer_sees_their_grids_and_signing_out_ends_the_session(catalogue):
    async def test(client: TestClient, console: Console, worker: Worker) -> None:
        await sign_in(client, "tok-kc")
        city = await (await client.get("/api/city")).json()
        assert city["me"]["role"] == "officer" and city["me"]["grids"] == ["G-KC-01"]
        assert {s["grid"] for s in city["sites"]} == {"G-KC-01"}
        # The pages name pollutants from here, in either language (ecowatch/pollutants.py).
        assert city["pollutants"]["w21003"] == ["氨氮", "NH3-N"]
        other = next(s.id for s in catalogue.sites.values() if s.grid != "G-KC-01")
        assert (await client.get(f"/api/sites/{other}")).status == 403
        assert (await client.post("/logout")).status == 200
        assert (await client.get("/api/city")).status == 401

    run(test, catalogue)


# -- the proxy ----------------------------------------------------------------------------------


def test_every_case_call_carries_the_callers_own_token_and_the_apis_answer(catalogue):
    async def test(client: TestClient, console: Console, worker: Worker) -> None:
        await sign_in(client, "tok-ops")
        worker.seen.clear()
        assert (await client.get("/api/cases")).status == 200
        r = await client.post("/api/sites/S-OUT-001/cases/c-1/ack", json={})
        assert r.status == 403 and (await r.json())["error"] == "operators watch"  # passed on
        assert (await client.get("/api/weekly?week=2026-11-16")).status == 200
        assert [(m, p, a) for m, p, a in worker.seen] == [
            ("GET", "/api/cases", "Bearer tok-ops"),
            ("POST", "/api/sites/S-OUT-001/cases/c-1/ack", "Bearer tok-ops"),
            ("GET", "/api/reports/weekly?week=2026-11-16", "Bearer tok-ops"),
        ]
        # Without a week: the week of data time (a simulated city lives in the past).
        console.city.on_reading(cod(20.0), 0.0)
        body = await (await client.get("/api/weekly")).json()
        assert body["week"] == "2026-11-23"
        # Another person's session keeps their own token.
        async with TestClient(TestServer(console.app(), host="127.0.0.1")) as officer:
            await sign_in(officer, "tok-kc")
            r = await officer.post("/api/sites/S-OUT-001/cases/c-1/ack", json={})
            assert r.status == 202
        assert worker.seen[-1][2] == "Bearer tok-kc"

    run(test, catalogue)


def test_the_case_apis_rows_seed_the_city_with_their_own_deadlines(catalogue):
    async def test(client: TestClient, console: Console, worker: Worker) -> None:
        worker.rows = [
            {
                "id": "c-9",
                "site": "S-OUT-001",
                "site_name": "x",
                "status": "escalated",
                "first_seen": (T - timedelta(hours=3)).isoformat(),
                "deadline": (T - timedelta(hours=2)).isoformat(),
                "ack_due": (T - timedelta(minutes=30)).isoformat(),
                "acknowledged_by": None,
                "findings": [],
            }
        ]
        await sign_in(client, "tok-ops")  # the sign-in's listing is the seed
        assert console.city.case_counts(None)["by_grid"]["G-KC-01"]["escalated"] == 1
        console.city.on_reading(cod(20.0), 0.0)  # data time passes its acknowledge-by
        assert console.city.case_counts(None)["overdue"] == ["c-9"]
        (row,) = (await (await client.get("/api/cases")).json())["cases"]
        assert row["overdue"] is True

    run(test, catalogue)


# -- marks (标记) -------------------------------------------------------------------------------


def tokens_file(folder: Path) -> Path:
    path = folder / "tokens.json"
    path.write_text(json.dumps(hashed(HOLDERS)), encoding="utf-8")
    return path


def test_an_enterprise_signs_in_to_its_own_sites_marks_and_nothing_else(catalogue, tmp_path):
    """The case API refuses an enterprise's token every case (403): the console reads who holds
    it from the tokens file, shows it its own sites, and keeps the city's data from it."""

    async def main() -> None:
        async with console_for(catalogue, tokens=tokens_file(tmp_path)) as (client, _, worker):
            r = await client.post("/login", json={"token": "tok-e7"})
            assert r.status == 200 and (await r.json())["role"] == "enterprise"
            city = await (await client.get("/api/city")).json()
            assert city["me"]["enterprise"] == "衢州柯城热电有限公司"
            assert [s["id"] for s in city["sites"]] == ["S-STK-001"]
            assert city["sites"][0]["devices"] == ["33080200G00001"]
            assert city["mark_types"]["shutdown"] == ["停炉", "shutdown"]
            assert len(city["mark_types"]) == 9
            for path in ("/api/cases", "/api/dead-letters", "/api/validity", "/live"):
                r = await client.get(path)
                assert r.status == 403, path
                assert (await r.json())["code"] == "not_for_enterprise", path
            assert (await client.get("/api/sites/S-STK-001")).status == 403
            r = await client.get("/wall", allow_redirects=False)
            assert r.status == 302 and r.headers["Location"] == "/phone"
            assert (await client.get("/phone")).status == 200
            worker.seen.clear()
            r = await client.get("/api/marks")
            assert r.status == 200 and (await r.json())["now"] == {"S-STK-001": T.isoformat()}
            assert worker.seen == [("GET", "/api/sites/S-STK-001/marks", "Bearer tok-e7")]
            # Over the API's cap: refused before it goes anywhere.
            r = await client.post(
                "/api/sites/S-STK-001/marks/M-1/proofs",
                data=b"x" * (10 * 1024 * 1024 + 1),
                headers={"Content-Type": "image/jpeg", "X-Filename": "a.jpg"},
            )
            assert r.status == 413 and len(worker.seen) == 1
        # Without the tokens file the console cannot tell whose it is: no session.
        async with console_for(catalogue) as (client, console, _):
            assert (await client.post("/login", json={"token": "tok-e7"})).status == 401
            assert console.sessions == {}

    asyncio.run(main())


PDF = "%PDF-1.4\n% 1号锅炉停炉检修通知\n%%EOF\n".encode()
REASON = "1号锅炉计划停炉检修"
REJECTION = "停炉记录与 DCS 曲线不符"


def test_an_enterprise_declares_and_proves_a_shutdown_and_an_officer_rejects_it(
    catalogue, tmp_path
):
    """On the phone, in Chinese: the enterprise of S-STK-001 declares a shutdown of its CEMS
    and attaches the notice; the API's refusal of the same period again is said after a Chinese
    lead; an officer of G-KC-02 sees the mark pending with its proof (fetched through the
    console), may not reject it without a reason, and rejects it with one; the enterprise then
    sees it rejected, with the officer's reason."""
    assert CHROMIUM is not None, "no chromium on PATH: `make browser` installs Debian's"

    async def main() -> None:
        async with console_for(catalogue, tokens=tokens_file(tmp_path)) as (client, _, worker):
            base = str(client.make_url("/")).rstrip("/")
            async with async_playwright() as p:
                browser = await p.chromium.launch(
                    executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
                )
                try:
                    await declare_and_prove(browser, base, worker)
                    await reject(browser, base, worker)
                finally:
                    await browser.close()

    asyncio.run(main())


async def phone_of(browser: Any, base: str, token: str) -> tuple[Any, Any]:
    context = await browser.new_context(locale="zh-CN", timezone_id="Asia/Shanghai")
    assert (await context.request.post(f"{base}/login", data={"token": token})).status == 200
    page = await context.new_page()
    await page.goto(f"{base}/phone")
    await page.wait_for_selector("body[data-ready='1']", timeout=10_000)
    return context, page


async def declare_and_prove(browser: Any, base: str, worker: Worker) -> None:
    context, page = await phone_of(browser, base, "tok-e7")
    assert await page.inner_text("#who") == "衢州柯城热电有限公司"
    assert await page.locator("#mine").is_hidden()  # no cases for an enterprise
    form = page.locator("#declare")
    # The times start at the site's data clock (10:00 on the 25th in China), not the phone's.
    assert await form.locator("[name='start']").input_value() == "2026-11-25T10:00"
    assert await form.locator("[name='end']").input_value() == "2026-11-25T12:00"
    types = await form.locator("[name='type'] option").all_inner_texts()
    assert len(types) == 9 and "停炉" in types and "非排污单位责任" in types
    await form.locator("[name='device']").select_option(CEMS)
    await form.locator("[name='type']").select_option("shutdown")
    await form.locator("[name='start']").fill("2026-11-25T09:00")
    await form.locator("[name='end']").fill("2026-11-25T13:00")
    await form.locator("[name='reason']").fill(REASON)
    await form.locator("button[type='submit']").click()
    card = page.locator("[data-mark]")
    await card.wait_for(timeout=5_000)
    assert worker.declared == [
        {
            "type": "shutdown",
            "start": "2026-11-25T09:00:00+08:00",
            "end": "2026-11-25T13:00:00+08:00",
            "reason": REASON,
            "device": CEMS,
        }
    ]
    assert ("POST", "/api/sites/S-STK-001/marks", "Bearer tok-e7") in worker.seen
    text = await card.inner_text()
    assert "停炉标记" in text and "待审核" in text and REASON in text, text
    await card.locator("input[type='file']").set_input_files(
        {"name": "停炉检修通知.pdf", "mimeType": "application/pdf", "buffer": PDF}
    )
    await card.locator("[data-act='attach']").click()
    await page.wait_for_selector("[data-mark] a[data-proof]", timeout=5_000)
    # The name percent-encoded (UTF-8), as the API reads X-Filename.
    assert worker.proofs == [(PDF, quote("停炉检修通知.pdf"), "application/pdf")]
    assert await page.inner_text("[data-mark] .message") == "证明材料已上传"
    # The same period again: the API's 409, said in Chinese; its own words in the title only.
    await form.locator("button[type='submit']").click()
    message = form.locator(".message.error")
    await message.wait_for(timeout=5_000)
    said = await message.inner_text()
    assert said.startswith("提交失败：") and "overlaps" not in said and "409" not in said, said
    assert "overlaps" in (await message.get_attribute("title") or "")
    await context.close()


async def reject(browser: Any, base: str, worker: Worker) -> None:
    context, page = await phone_of(browser, base, "tok-kc2")
    card = page.locator("[data-mark]")
    assert await card.count() == 1
    text = await card.inner_text()
    assert "停炉标记" in text and REASON in text and "2026-11-25 09:00–13:00" in text, text
    link = card.locator("a[data-proof]")
    assert await link.inner_text() == "停炉检修通知.pdf"
    # The proof through the console, with the officer's session: served as a download.
    fetched = await context.request.get(base + (await link.get_attribute("href") or ""))
    assert fetched.status == 200 and await fetched.body() == PDF
    assert fetched.headers["content-disposition"].startswith("attachment")
    assert fetched.headers["x-content-type-options"] == "nosniff"
    assert worker.seen[-1][2] == "Bearer tok-kc2"
    await card.locator("[data-act='reject']").click()  # no reason: not sent
    assert await card.locator(".message").inner_text() == "驳回须填写审核意见"
    assert worker.reviews == []
    await card.locator("textarea").fill(REJECTION)
    await card.locator("[data-act='reject']").click()
    await page.wait_for_selector("[data-mark][data-status='rejected']", timeout=5_000)
    mark_id = next(iter(worker.marks))
    assert worker.reviews == [(mark_id, {"accept": False, "reason": REJECTION}, "Bearer tok-kc2")]
    assert "已驳回" in await page.locator("[data-mark]").inner_text()
    await context.close()
    # The enterprise sees the rejection and why.
    context, page = await phone_of(browser, base, "tok-e7")
    text = await page.locator("[data-mark]").inner_text()
    assert "已驳回" in text and f"审核意见：{REJECTION}" in text and "O-KC-03" in text, text
    await context.close()


# -- Server-Sent Events -------------------------------------------------------------------------


async def frames(response, count: int) -> list[tuple[str, str]]:
    """The next ``count`` events: (event, data); each frame must be exactly
    ``event: <kind>\\ndata: <one line of JSON>\\n\\n``."""
    out: list[tuple[str, str]] = []
    buffer = b""
    while len(out) < count:
        chunk = await asyncio.wait_for(response.content.readany(), 5)
        assert chunk, "the stream ended"
        buffer += chunk
        while b"\n\n" in buffer:
            frame, buffer = buffer.split(b"\n\n", 1)
            lines = frame.decode().split("\n")
            if lines[0].startswith("retry: "):
                lines = lines[1:]
            assert len(lines) == 2 and lines[0].startswith("event: "), frame
            assert lines[1].startswith("data: "), frame
            json.loads(lines[1].removeprefix("data: "))  # one line of JSON
            out.append((lines[0].removeprefix("event: "), lines[1].removeprefix("data: ")))
    return out


def test_the_live_stream_is_well_framed_and_keeps_to_the_callers_grids(catalogue):
    async def test(client: TestClient, console: Console, worker: Worker) -> None:
        await sign_in(client, "tok-kc")
        stop = asyncio.Event()
        pusher = asyncio.create_task(console.push(stop))
        response = await client.get("/live")
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/event-stream"
        assert response.headers["Cache-Control"] == "no-store"
        assert (await frames(response, 1))[0] == ("hello", "{}")
        other = next(s for s in catalogue.sites.values() if s.grid != "G-KC-01")
        device = other.devices[0].id
        console.city.on_reading(cod(20.0, other.id, device), 0.0)  # not this officer's
        console.city.on_reading(cod(500.0), 0.0)  # S-OUT-001, grid G-KC-01: over its permit
        console.city.on_dead_letter(
            DeadLetter.of(
                source="mqtt",
                origin="ecowatch/v1/S-OUT-001/33080200000001/reading",
                reason="not_finite",
                detail="values.w01018.value: Input should be a finite number\nsecond line",
                payload=b'{"v": NaN}',
                received_at=T,
            ),
            0.0,
        )
        got: dict[str, list[dict]] = {}
        for kind, data in await frames(response, 4):
            got.setdefault(kind, []).append(json.loads(data))
        stop.set()
        await pusher
        assert [s["id"] for s in got["site"]] == ["S-OUT-001"]  # the other grid's never came
        assert got["site"][0]["status"] == "over"
        (dead,) = got["dead"]
        assert dead["by_reason"] == {"not_finite": 1} and dead["by_source"] == {"mqtt": 1}
        assert dead["latest"][0]["detail"].endswith("second line")  # a newline inside, escaped
        assert "payload" not in dead["latest"][0]  # what a device sent stays on the topic
        assert "pulse" in got
        assert set(got["pulse"][0]) >= {"data_now", "now", "readings_per_s"}
        response.close()

    run(test, catalogue)


# -- static files -------------------------------------------------------------------------------


def test_the_pages_and_their_files_are_served_with_their_types(catalogue):
    async def test(client: TestClient, console: Console, worker: Worker) -> None:
        r = await client.get("/login")
        assert r.status == 200 and r.content_type == "text/html" and r.charset == "utf-8"
        assert r.headers["Cache-Control"] == "no-store"
        for name in sorted(p.name for p in STATIC.iterdir()):
            r = await client.get(f"/static/{name}")
            kind = {".js": "text/javascript", ".css": "text/css"}.get(Path(name).suffix)
            if kind is None:  # the pages are served by their own routes only
                assert r.status == 404, name
                continue
            assert r.status == 200 and r.content_type == kind and r.charset == "utf-8", name
            assert await r.text() == (STATIC / name).read_text(encoding="utf-8")
        for bad in ("..%2Fserver.py", "%2E%2E%2Fcore.py", ".hidden.js", "nope.js", "a%2Fb.css"):
            assert (await client.get(f"/static/{bad}")).status == 404, bad
        await sign_in(client, "tok-ops")
        for page in ("wall", "desk", "phone"):
            r = await client.get(f"/{page}")
            assert r.status == 200 and r.content_type == "text/html", page
        assert (await client.get("/nope")).status == 404

    run(test, catalogue)


# Namespace names are identifiers, never fetched (document.createElementNS).
NAMESPACES = {"http://www.w3.org/2000/svg"}


def test_no_page_fetches_anything_from_another_host():
    """Control rooms are often off the Internet: every file the pages load is the console's."""
    found = []
    for item in sorted(STATIC.iterdir()):
        text = item.read_text(encoding="utf-8")
        # An absolute or scheme-relative URL: http://host, https://10.0.0.1:8080, //cdn...
        for url in re.findall(r"""(?:https?:)?//[A-Za-z0-9\[][^\s"'`)<>;,]*""", text):
            if url not in NAMESPACES:
                found.append(f"{item.name}: {url}")
        for attr in re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)""", text):
            if not (attr.startswith("/") and not attr.startswith("//")) and attr != "#":
                found.append(f"{item.name}: {attr}")
        found += [f"{item.name}: @import" for _ in re.findall(r"@import", text)]
    assert found == []
    assert any("http://www.w3.org/2000/svg" in p.read_text() for p in STATIC.glob("*.js"))


# -- a stack in a real browser ------------------------------------------------------------------

STACK, CEMS = "S-STK-001", "33080200G00001"  # coal_existing: 6 % O2; permit SO2 35 mg/m³


def test_the_wall_draws_a_stack_as_a_stack_and_the_desk_shows_it_corrected(catalogue):
    """SO2 30 mg/m³ measured at 9 % O2 is 37.5 at the stack's 6 %, over the permit's 35: the
    desk shows the measured and the corrected value with both oxygens, the corrected one in
    red, and the wall a marker of the stack's own shape, named in the legend."""
    so2 = reading({"a21026": 30.0, "a19001": 9.0, "a00000": 120.0}, T, STACK, CEMS)
    so2 = so2.model_copy(
        update={
            "values": so2.values | {"a21026": so2.values["a21026"].model_copy(update={"zs": 37.4})}
        }
    )

    later = so2.model_copy(update={"ts": T + timedelta(minutes=1)})
    # Not skipped: a missing browser is the machine's fault, said as such.
    assert CHROMIUM is not None, "no chromium on PATH: `make browser` installs Debian's"

    async def test(client: TestClient, console: Console, worker: Worker) -> None:
        console.city.on_reading(so2, 0.0)
        stop = asyncio.Event()
        pusher = asyncio.create_task(console.push(stop))
        base = str(client.make_url("/")).rstrip("/")
        async with async_playwright() as p:
            browser = await p.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
            )
            try:
                context = await browser.new_context(locale="zh-CN", timezone_id="Asia/Shanghai")
                signed = await context.request.post(f"{base}/login", data={"token": "tok-ops"})
                assert signed.status == 200
                page = await context.new_page()
                await console.reload_validity()  # InfluxDB is away: the panel says so
                await page.goto(f"{base}/wall")
                await page.wait_for_selector("body[data-ready='1']", timeout=10_000)
                assert (await page.inner_text("#v-error")).startswith("InfluxDB at ")
                mark = page.locator(f"[data-site='{STACK}']")
                assert await mark.evaluate("e => e.tagName") == "polygon"  # ▲, not ◆ nor ●
                assert await mark.get_attribute("data-status") == "over"
                outfall = page.locator("[data-site='S-OUT-001']")
                assert await outfall.evaluate("e => e.tagName") == "rect"
                assert "▲ 废气排放口" in await page.inner_text("[data-legend='stack']")

                await page.goto(f"{base}/desk?site={STACK}")
                await page.wait_for_selector("body[data-ready='1']", timeout=10_000)
                header = await page.inner_text("#values tr:first-child")
                for words in ("实测浓度", "折算浓度", "CEMS 折算值", "实测氧含量", "基准氧含量"):
                    assert words in header, header
                row = page.locator("#values tr[data-pollutant='a21026']")
                cells = await row.locator("td").all_inner_texts()
                assert cells[1:6] == ["30.00", "37.50", "37.40", "9.0%", "6%"], cells
                assert await row.locator("td.corrected.over-value").count() == 1
                assert await row.locator("td.measured.over-value").count() == 0
                assert await page.inner_text("#o2-reference") == "6%"
                # A live reading reaches the chart (InfluxDB is away here): its corrected value
                # is the line held against the limit, at the reference; the measured one beside.
                # Selectors, not wait_for_function: its string is eval'd, which the CSP forbids.
                await expect(page.locator("#conn")).to_have_text("实时连接", timeout=10_000)
                await page.click("#tabs button[data-p='a21026']")
                console.city.on_reading(later, 1.0)
                await page.wait_for_selector("#chart[data-last='37.5']", timeout=5_000)
                assert await page.get_attribute("#chart", "data-measured-points") == "1"
                limit = await page.text_content("#chart") or ""
                assert "限值 35" in limit and "基准氧含量 6%" in limit, limit
                assert "实测浓度（不对照限值）" in limit
            finally:
                await browser.close()
                stop.set()
                await pusher

    run(test, catalogue)


# -- transmission and validity (传输有效率) in a real browser ----------------------------------


@dataclass
class Influx:
    """InfluxDB's query API as far as the console's validity reads go: each query answered
    with the test's ``validity`` points (one site's when the query names one) as annotated
    CSV; any other query (the desk's chart) with no tables."""

    points: list[tuple[str, str, str, date, int, int, int]]  # site, device, code, day, counts
    queries: list[str] = field(default_factory=list)

    def app(self) -> web.Application:
        async def query(request: web.Request) -> web.Response:
            text = (await request.json())["query"]
            self.queries.append(text)
            if 'r._measurement == "validity"' not in text:
                return web.Response(text="", content_type="text/csv")
            named = re.search(r'r\.site == "([^"]+)"', text)
            lines = [
                "#datatype,string,long,dateTime:RFC3339,string,string,string,long,long,long",
                "#group,false,false,false,true,true,true,false,false,false",
                "#default,_result,,,,,,,,",
                ",result,table,_time,site,device,pollutant,expected,received,valid",
            ]
            for n, (site, device, code, day, *counts) in enumerate(self.points):
                if named and named.group(1) != site:
                    continue
                # Stamped at the day's start: China midnight, 16:00 UTC the day before.
                at = datetime(day.year, day.month, day.day, tzinfo=UTC) - timedelta(hours=8)
                stamp = at.isoformat().replace("+00:00", "Z")
                lines.append(f",,{n},{stamp},{site},{device},{code},{','.join(map(str, counts))}")
            return web.Response(text="\r\n".join(lines) + "\r\n\r\n", content_type="text/csv")

        app = web.Application()
        app.router.add_post("/api/v2/query", query)
        return app


DAYS = [date(2026, 11, 18) + timedelta(days=n) for n in range(7)]
SILENT_METER = "33080200M00001"  # S-OUT-001's discharge meter: no day closed all week


def week_of_points(catalogue: Catalogue) -> list[tuple[str, str, str, date, int, int, int]]:
    """Every pollutant every device owes, every day whole, but: S-OUT-001's COD monitor 1,380
    of 1,440 a day, 1,200 valid, and nothing stored of its 20th; its meter silent all week (no
    point: owed all the same); S-OUT-002's COD 1,430 valid a day."""
    points = []
    for site in catalogue.sites.values():
        for device in site.devices:
            for code in device.pollutants:
                for day in DAYS:
                    counts = (1440, 1440, 1440)
                    if device.id == SILENT_METER:
                        continue
                    if (device.id, code) == ("33080200000001", "w01018"):
                        if day == date(2026, 11, 20):
                            continue
                        counts = (1440, 1380, 1200)
                    if (device.id, code) == ("33080200000002", "w01018"):
                        counts = (1440, 1440, 1430)
                    points.append((site.id, device.id, code, day, *counts))
    return points


def percent(rate: float | None) -> str:
    assert rate is not None
    return f"{rate * 100:.2f}%"


def test_the_wall_and_the_desk_show_the_transmission_validity_rates(catalogue):
    """Over the 7 China-time days closed before data time's (18 to 24 November), each site's
    and the city's figures are the counts summed over what the catalogue says is owed:
    S-OUT-001, its meter silent and its COD short, is the lowest and red."""
    points = week_of_points(catalogue)
    points.append(("S-OUT-002", "33080200000002", "w01018", date(2026, 11, 17), 1440, 0, 0))
    days = DAYS
    influx = Influx(points)
    assert CHROMIUM is not None, "no chromium on PATH: `make browser` installs Debian's"

    async def main() -> None:
        async with (
            TestServer(influx.app(), host="127.0.0.1") as db,
            console_for(catalogue, f"http://127.0.0.1:{db.port}") as (client, console, _),
        ):
            console.city.on_reading(cod(20.0), 0.0)  # data time: 10:00 on the 25th in China
            stop = asyncio.Event()
            keeper = asyncio.create_task(console.keep_validity(stop))
            for _ in range(100):
                if console.validity_read_at is not None:
                    break
                await asyncio.sleep(0.05)
            assert console.validity_error is None and console.validity_days == tuple(days)
            (asked,) = influx.queries
            assert "range(start: 2026-11-17T16:00:00Z, stop: 2026-11-24T16:00:00Z)" in asked
            base = str(client.make_url("/")).rstrip("/")
            try:
                async with async_playwright() as p:
                    browser = await p.chromium.launch(
                        executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
                    )
                    try:
                        await check_pages(browser, base, catalogue)
                    finally:
                        await browser.close()
            finally:
                stop.set()
                await keeper
            # The desk asked for its site's days alone.
            assert any('r.site == "S-OUT-001"' in q and "validity" in q for q in influx.queries)

    asyncio.run(main())


async def check_pages(browser: Any, base: str, catalogue: Catalogue) -> None:
    counts = {(p[0], p[1], p[2], p[3]): (p[5], p[6]) for p in week_of_points(catalogue)}
    sites = {r.site: r for r in site_rates(catalogue, counts, DAYS, None)}
    city = sum((r.total for r in sites.values()), NOTHING)
    one = sites["S-OUT-001"]
    context = await browser.new_context(locale="zh-CN", timezone_id="Asia/Shanghai")
    assert (await context.request.post(f"{base}/login", data={"token": "tok-ops"})).status == 200
    page = await context.new_page()
    await page.goto(f"{base}/wall")
    await page.wait_for_selector("body[data-ready='1']", timeout=10_000)
    panel = await page.inner_text("#validity-panel")
    assert "传输有效率" in panel and "11-24" in panel, panel
    assert await page.inner_text("#v-city") == percent(city.transmission_validity_rate)
    sub = await page.inner_text("#v-city-sub")
    assert f"传输率 {percent(city.transmission_rate)}" in sub, sub
    assert f"有效率 {percent(city.validity_rate)}" in sub, sub
    assert await page.inner_text("#v-error") == ""
    first = page.locator("#v-lowest tr[data-site]").first
    assert await first.get_attribute("data-site") == "S-OUT-001"
    cells = await first.locator("td").all_inner_texts()
    t = one.total
    rates = [percent(t.transmission_validity_rate), percent(t.transmission_rate)]
    assert cells == [catalogue.sites["S-OUT-001"].name, *rates, percent(t.validity_rate)], cells
    assert await first.locator("td.tv.over-value").count() == 1  # under 90 %: red
    second = page.locator("#v-lowest tr[data-site='S-OUT-002']")
    assert await second.locator("td.over-value").count() == 0
    assert await page.locator("#v-lowest tr[data-site]").count() == 5

    await page.goto(f"{base}/desk?site=S-OUT-001")
    await page.wait_for_selector("body[data-ready='1']", timeout=10_000)
    header = await page.inner_text("#validity tr:first-child")
    for words in ("日期", "应传", "实传", "有效", "传输率", "有效率", "传输有效率"):
        assert words in header, header
    assert await page.locator("#validity tr[data-day]").count() == 7
    row = page.locator("#validity tr[data-day='2026-11-24']")
    cells = await row.locator("td").all_inner_texts()
    day = sum((d.days[-1][1] for d in one.devices), NOTHING)
    assert cells == [
        "11-24",
        str(day.expected),
        str(day.received),
        str(day.valid),
        percent(day.transmission_rate),
        percent(day.validity_rate),
        percent(day.transmission_validity_rate),
    ], cells
    assert await row.locator("td.tv.over-value").count() == 1
    silent = await page.locator("#validity tr[data-day='2026-11-20'] td").all_inner_texts()
    # The 20th: no COD point and no meter point, owed all the same (3 of 7 streams came).
    assert silent[1:3] == [str(7 * 1440), str(3 * 1440)], silent
    total = await page.locator("#validity tr.total td").all_inner_texts()
    assert total[:3] == [str(t.expected), str(t.received), str(t.valid)], total
    assert await page.inner_text("#validity-error") == ""
