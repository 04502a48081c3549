"""The console's security edges on real sockets (issue 20, part 6): sign-in attempts limited
per address, other sites' posts refused, a revoked token ending its session at once, the page
after sign-in kept on this site, query parameters refused with a reason, the CSP and its
companions on every answer (and no violation in the real Chromium), and each live message
serialised once for all its listeners.

The fake case API and the helpers are test_console_web.py's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from playwright.async_api import Error as PlaywrightError
from playwright.async_api import async_playwright

from ecowatch.console import server
from ecowatch.console.server import COOKIE, CSP, Console, LoginThrottle, safe_next
from ecowatch.edges.tokens import hashed
from tests.component.console.test_console_web import (
    CHROMIUM,
    HOLDERS,
    Worker,
    cod,
    console_for,
    frames,
    run,
    sign_in,
    tokens_file,
)

EVIL = "https://evil.example"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- sign-in attempts ---------------------------------------------------------------------------


def test_the_throttle_counts_each_address_in_a_sliding_window() -> None:
    clock = Clock()
    throttle = LoginThrottle(limit=3, window_s=60.0, clock=clock)
    assert [throttle.attempt("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert throttle.attempt("a") == 60.0 and throttle.attempt("b") == 0.0  # b is not a
    clock.now += 20
    assert throttle.attempt("a") == 40.0  # the oldest attempt leaves the window at +60
    clock.now += 40
    assert throttle.attempt("a") == 0.0
    throttle.succeeded("a")  # a success takes its own attempt back
    assert [throttle.attempt("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert throttle.attempt("a") == 60.0


def test_five_failed_sign_ins_a_minute_then_429_with_retry_after(catalogue):
    async def test(client: TestClient, console: Console, worker: Worker) -> None:
        clock = Clock()
        console.throttle = LoginThrottle(clock=clock)
        for _ in range(5):
            assert (await client.post("/login", json={"token": "wrong"})).status == 401
        asked = len(worker.seen)
        # Even the right token now waits, and the case API is not asked.
        r = await client.post("/login", json={"token": "tok-ops"})
        assert r.status == 429 and r.headers["Retry-After"] == "60"
        assert "too many" in (await r.json())["error"] and COOKIE not in r.cookies
        assert len(worker.seen) == asked
        clock.now += 45
        r = await client.post("/login", json={"token": "tok-ops"})
        assert r.status == 429 and r.headers["Retry-After"] == "15"
        clock.now += 15
        await sign_in(client, "tok-ops")
        assert (await client.get("/api/city")).status == 200

    run(test, catalogue)


# -- other sites' posts -------------------------------------------------------------------------


def test_a_post_from_another_site_is_refused(catalogue):
    async def test(client: TestClient, console: Console, worker: Worker) -> None:
        here = f"http://{client.host}:{client.port}"
        r = await client.post("/login", json={"token": "tok-kc"}, headers={"Origin": EVIL})
        assert r.status == 403 and COOKIE not in r.cookies and worker.seen == []
        await sign_in(client, "tok-kc")  # no Origin nor Referer: not a browser, let through
        ack = "/api/sites/S-OUT-001/cases/c-1/ack"
        refused = (
            {"Origin": EVIL},
            {"Origin": "null"},  # a sandboxed frame, a file:// page
            {"Origin": f"{EVIL}:{client.port}"},
            {"Referer": f"{EVIL}/page"},
            {"Origin": EVIL, "Referer": f"{here}/desk"},  # the Origin decides
        )
        for headers in refused:
            r = await client.post(ack, json={}, headers=headers)
            assert r.status == 403, headers
            assert (await r.json())["error"] == "a request from another site is refused"
        assert [s for s in worker.seen if s[0] == "POST"] == []
        r = await client.post("/logout", headers={"Origin": EVIL})
        assert r.status == 403 and (await client.get("/api/city")).status == 200
        for headers in ({"Origin": here}, {"Referer": f"{here}/desk?site=S-OUT-001"}):
            assert (await client.post(ack, json={}, headers=headers)).status == 202, headers
        assert (await client.post("/logout", headers={"Origin": here})).status == 200

    run(test, catalogue)


# -- a revoked token ----------------------------------------------------------------------------


def test_a_token_removed_from_the_tokens_file_ends_its_session_at_once(
    catalogue, tmp_path, monkeypatch
):
    loads: list[Path] = []
    load = server.load_tokens

    def counted(path: Path | None) -> dict[str, str]:
        loads.append(path or Path())
        return load(path)

    monkeypatch.setattr(server, "load_tokens", counted)
    monkeypatch.setattr(server, "LIVE_RECHECK_S", 0.0)

    async def main() -> None:
        path = tokens_file(tmp_path)
        async with console_for(catalogue, tokens=path) as (client, console, _):
            await sign_in(client, "tok-kc2")  # O-KC-03, named in the file
            for _ in range(3):
                assert (await client.get("/api/city")).status == 200
            assert len(loads) == 1  # read again only when it changes on disk
            # Half-written (`ecowatch tokens` rewrites in place): no answer, session kept.
            path.write_text("", encoding="utf-8")
            assert (await client.get("/api/city")).status == 401
            path.write_text(json.dumps(hashed(HOLDERS)), encoding="utf-8")
            assert (await client.get("/api/city")).status == 200
            stop = asyncio.Event()
            pusher = asyncio.create_task(console.push(stop))
            live = await client.get("/live")
            assert (await frames(live, 2))[1][0] == "pulse"  # flowing
            # Revoked: the next request has no session, and the open stream ends.
            others = {k: v for k, v in HOLDERS.items() if k != "tok-kc2"}
            path.write_text(json.dumps(hashed(others)), encoding="utf-8")
            assert (await client.get("/api/city")).status == 401
            assert console.sessions == {}
            r = await client.get("/wall", allow_redirects=False)
            assert r.status == 302 and r.headers["Location"] == "/login?next=/wall"
            rest = await asyncio.wait_for(live.content.read(), 5)  # to its end
            assert b"event: site" not in rest
            live.close()
            stop.set()
            await pusher

    asyncio.run(main())


# -- where to go after signing in ---------------------------------------------------------------


@pytest.mark.parametrize(
    "given",
    ["/\\evil.com", "//evil.com", "https://evil.com", "/\t/evil.com", "evil.com", "/a//b", "/\\/x"],
)
def test_a_next_that_could_leave_the_site_is_home(given: str) -> None:
    assert safe_next(given) == "/"


def test_the_page_after_signing_in_is_of_this_site(catalogue):
    async def test(client: TestClient, console: Console, worker: Worker) -> None:
        async def after(token: str, **body: Any) -> str:
            r = await client.post("/login", json={"token": token, **body})
            assert r.status == 200
            return (await r.json())["next"]

        for given in ("/\\evil.com", "//evil.com", "https://evil.com", "/\t/evil.com", 7):
            assert await after("tok-ops", next=given) == "/", given
        assert await after("tok-ops", next="/desk?site=S-OUT-001") == "/desk?site=S-OUT-001"
        assert await after("tok-ops") == "/wall" and await after("tok-ops", next="") == "/wall"
        assert await after("tok-kc") == "/phone"

    run(test, catalogue)


# -- query parameters ---------------------------------------------------------------------------


def test_every_query_parameter_is_checked_and_refused_with_its_reason(catalogue):
    async def test(client: TestClient, console: Console, worker: Worker) -> None:
        await sign_in(client, "tok-ops")
        worker.seen.clear()
        for bad in ("nan", "-1", "1e9", "abc", "inf", "1_0", "0.1", "49", "6h", " 6"):
            r = await client.get("/api/sites/S-OUT-001", params={"hours": bad})
            assert r.status == 400, bad
            error = (await r.json())["error"]
            assert error.startswith("hours: expected a number of hours from 0.25 to 48"), error
        for good in ("0.25", "6", "48", ""):
            r = await client.get("/api/sites/S-OUT-001", params={"hours": good})
            assert r.status == 200, good
        worker.seen.clear()
        for bad, said in (("2026-11-17", "is a Tuesday"), ("next", "Monday"), ("2026-1-5", "")):
            r = await client.get("/api/weekly", params={"week": bad})
            assert r.status == 400, bad
            error = (await r.json())["error"]
            assert error.startswith("week: ") and said in error, error
        assert (await client.get("/api/weekly", params={"week": "2026-11-16"})).status == 200
        sha = "0" * 64
        for bad in ({}, {"site": ""}, {"site": "S-NOPE"}):
            r = await client.get(f"/api/proofs/{sha}", params=bad)
            assert r.status == 400, bad
            assert (await r.json())["error"].startswith("site: expected a site"), bad
        # Only the good week went to the case API.
        assert [p for _, p, _ in worker.seen if "weekly" in p] == [
            "/api/reports/weekly?week=2026-11-16"
        ]

    run(test, catalogue)


# -- the Content-Security-Policy ----------------------------------------------------------------


def test_every_answer_carries_the_csp_and_its_companions(catalogue):
    async def test(client: TestClient, console: Console, worker: Worker) -> None:
        async def check(path: str, status: int) -> None:
            r = await client.get(path, allow_redirects=False)
            assert r.status == status, path
            assert r.headers["Content-Security-Policy"] == CSP, path
            assert r.headers["X-Content-Type-Options"] == "nosniff", path
            assert r.headers["Referrer-Policy"] == "same-origin", path

        await check("/login", 200)
        await check("/wall", 302)
        await check("/api/city", 401)
        await sign_in(client, "tok-ops")
        for path in ("/wall", "/desk", "/phone", "/static/login.js", "/api/city"):
            await check(path, 200)
        await check("/nope", 404)
        for part in (
            "default-src 'self'",
            "script-src 'self'",
            "object-src 'none'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "form-action 'self'",
        ):
            assert part in CSP
        assert "unsafe-inline" not in CSP.split("style-src-attr")[0]  # scripts, <style>: none
        for page in Path(server.__file__).with_name("static").glob("*.html"):
            assert "<script>" not in page.read_text(encoding="utf-8"), page.name

    run(test, catalogue)


# Playwright's scripts reach the page by DevTools, not through the CSP; this one reports every
# violation to the console log, beside Chromium's own "Refused to …" messages.
REPORT = """document.addEventListener("securitypolicyviolation", (e) =>
  console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`));"""


def test_the_login_and_the_wall_run_in_chromium_without_a_csp_violation(catalogue):
    """Signed in by the demo's link (token in the fragment) with a next that would leave the
    site: the login's script runs (from its own file), lands on this site's wall, and neither
    page reports a violation; an inline script added afterwards is refused and reported, so
    the watch is known to work."""
    assert CHROMIUM is not None, "no chromium on PATH: `make browser` installs Debian's"

    async def main() -> None:
        async with console_for(catalogue) as (client, console, _):
            console.city.on_reading(cod(20.0), 0.0)
            base = str(client.make_url("/")).rstrip("/")
            async with async_playwright() as p:
                browser = await p.chromium.launch(
                    executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
                )
                try:
                    await pages_under_csp(browser, base)
                finally:
                    await browser.close()

    asyncio.run(main())


async def pages_under_csp(browser: Any, base: str) -> None:
    context = await browser.new_context(locale="zh-CN", timezone_id="Asia/Shanghai")
    await context.add_init_script(REPORT)
    page = await context.new_page()
    logged: list[str] = []
    page.on("console", lambda m: logged.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: logged.append(f"pageerror: {e}"))

    def violations() -> list[str]:
        return [m for m in logged if "Content Security Policy" in m or "CSP violation" in m]

    await page.goto(f"{base}/login?next=/%5Cevil.com#token=tok-ops")
    await page.wait_for_url(f"{base}/wall", timeout=10_000)  # "/" is the wall
    await page.wait_for_selector("body[data-ready='1']", timeout=10_000)
    assert await page.locator("[data-site='S-OUT-001']").count() == 1
    await page.goto(f"{base}/desk?site=S-OUT-001")
    await page.wait_for_selector("body[data-ready='1']", timeout=10_000)
    await page.goto(f"{base}/login")
    await page.wait_for_selector("#lang:not(:empty)", timeout=10_000)  # login.js ran
    assert violations() == [], logged
    with contextlib.suppress(PlaywrightError):  # refused: Playwright may say so, or not
        await page.add_script_tag(content="document.body.dataset.inline = '1'")
    assert await page.get_attribute("body", "data-inline") is None
    await page.wait_for_timeout(200)
    assert violations(), logged
    await context.close()


# -- the live feed ------------------------------------------------------------------------------


def test_each_live_message_is_serialised_once_for_all_its_listeners(catalogue, monkeypatch):
    made: list[str] = []
    frame = server.sse_frame

    def counted(kind: str, data: Any) -> bytes:
        made.append(kind)
        return frame(kind, data)

    monkeypatch.setattr(server, "sse_frame", counted)

    async def test(client: TestClient, console: Console, worker: Worker) -> None:
        clients = [client]
        async with (
            TestClient(TestServer(console.app(), host="127.0.0.1")) as second,
            TestClient(TestServer(console.app(), host="127.0.0.1")) as officer,
        ):
            clients += [second, officer]
            for c, token in zip(clients, ("tok-ops", "tok-ops", "tok-kc2"), strict=True):
                await sign_in(c, token)
            streams = [await c.get("/live") for c in clients]
            for stream in streams:
                assert (await frames(stream, 1))[0][0] == "hello"
            console.city.on_reading(cod(500.0), 0.0)  # S-OUT-001, G-KC-01: not tok-kc2's
            made.clear()
            console._send("site", {"grid": "G-KC-01", **console.city.site_view("S-OUT-001")})
            console._send_counts()
            assert made == ["site", "cases", "cases"]  # counts: once per set of grids
            got = [await frames(s, 2 if n < 2 else 1) for n, s in enumerate(streams)]
            assert got[0] == got[1] and [k for k, _ in got[0]] == ["site", "cases"]
            assert [k for k, _ in got[2]] == ["cases"]  # the other grid's site never came
            assert json.loads(got[2][0][1]) != json.loads(got[0][1][1])
            for stream in streams:
                stream.close()

    run(test, catalogue)
