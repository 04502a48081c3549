"""The console's web edge (aiohttp): the pages, their JSON, and Server-Sent Events.

Who may see what is the case API's business: signing in hands the token to the worker's API
(``GET /api/cases``), whose answer names the caller's grids, and every case request or action
is passed on with the caller's own token, so the API's rules (401, 403, 409, ...) are the
console's. The token then lives only in this process's memory, behind a random session
cookie (HttpOnly, SameSite=Strict: another site can neither read it nor post with it).

An enterprise's token (``enterprise:E-xxx``) is refused every case (403), so who holds it is
read from the tokens file, as the API reads it; it signs in to the phone alone, to declare and
prove the marks (标记) of its own sites, which the officers of their grids review there.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import re
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
from aiohttp import web
from pydantic import ValidationError

from ecowatch.alerts.wording import MARK_TYPES, both, mark_text, names
from ecowatch.clock import CHINA
from ecowatch.config.catalogue import Catalogue, Site, SiteKind
from ecowatch.config.settings import Settings
from ecowatch.console import desk_api, phone_api, validity, wall_api
from ecowatch.console.core import City, limit_view
from ecowatch.console.history import (
    Series,
    site_corrected_history,
    site_history,
    stored_validity,
)
from ecowatch.console.seed import stored_latest
from ecowatch.edges.tokens import KIOSK, OPERATOR, hash_token, identify, load_tokens
from ecowatch.errors import ConfigError
from ecowatch.pollutants import NAMES, NO, NO2, NOX
from ecowatch.schema import AlarmSilenced, Mark
from ecowatch.streams.api.auth import Caller, caller_of
from ecowatch.streams.api.marks import FILENAME_HEADER
from ecowatch.streams.api.requests import Refusal, shown, week_query
from ecowatch.streams.judging.flue_gas import is_concentration
from ecowatch.streams.storage.proofs import MAX_PROOF_BYTES

log = logging.getLogger(__name__)

COOKIE = "ecowatch_console"
SESSION_HOURS = 12
# A kiosk (an unattended wall) is never sent back to the login: its session lasts while the
# tokens file holds its token, and each answer renews it and its cookie this far ahead.
KIOSK_DAYS = 30
KIOSK_SID = web.RequestKey("kiosk_sid", str)  # a kiosk's session id, its cookie renewed
PUSH_EVERY_S = 0.2  # how often changes go out: well within the second the issue asks for
PULSE_EVERY_S = 1.0
QUEUE_MAX = 2000  # a page this far behind is dropped; it reconnects and reloads the snapshot
PAGES = ("wall", "desk", "phone")
# The worker writes a day's validity once it closes: reading it again every few minutes is
# plenty, and at once when the window of days moves on with data time.
VALIDITY_EVERY_S = 300.0
VALIDITY_CHECK_S = 5.0
STATIC = resources.files("ecowatch.console") / "static"
# The API lists one site's marks at a time: a grid's sites are asked together, this many at once.
MARKS_AT_ONCE = 8
PROOF_TIMEOUT_S = 60.0  # a 10 MiB document each way, not a JSON answer
# What a proof's answer keeps on its way through: above all, served as a download that the
# browser neither sniffs nor runs (an enterprise's HTML is no page of the console's origin).
PROOF_HEADERS = (
    "Content-Type",
    "Content-Disposition",
    "X-Content-Type-Options",
    "Content-Security-Policy",
    "Cache-Control",
)
# Sign-in failures a client address may make in a window before it is told to wait (429).
LOGIN_FAILURES = 5
LOGIN_WINDOW_S = 60.0
LOGIN_KEYS_MAX = 10_000  # past this many addresses, the quiet ones are forgotten
LIVE_RECHECK_S = 1.0  # an open event stream re-checks its session this often
HOURS_DEFAULT, HOURS_MIN, HOURS_MAX = 6.0, 0.25, 48.0
# Every answer's. Scripts and styles come from /static alone (no inline script can run); the
# pages' scripts colour map dots and legends with style attributes (style-src-attr), which
# cannot run code. A proof's own CSP (the API's, stricter) is kept: these are defaults.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; style-src-attr 'unsafe-inline'; "
    "object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
NEXT_MAX = 2000


@dataclass(frozen=True)
class Session:
    token: str
    who: str  # officer id, "operator:<name>", or "" when the tokens file is not readable here
    grids: frozenset[str] | None  # None: every grid (an operator)
    expires: float
    enterprise: str | None = None  # an enterprise's catalogue id (its grids: none)
    # The token's hash as found in the tokens file at sign-in: each request looks for it again,
    # so a revoked token ends the session. None: the file did not name it (nothing to re-check).
    vouched: str | None = None

    def sees(self, grid: str) -> bool:
        return self.grids is None or grid in self.grids

    def may_see(self, site: Site) -> bool:
        """The API's own rule: an enterprise's sites, an officer's grids', every site."""
        return Caller(self.who, self.grids, self.enterprise).may_see(site)

    @property
    def role(self) -> str:
        if self.enterprise is not None:
            return "enterprise"
        if self.who.startswith(KIOSK):
            return "kiosk"
        return "operator" if self.grids is None else "officer"


class LoginThrottle:
    """Sign-in attempts per client address in a sliding window (pure; ``clock`` is injected).

    An attempt counts from the moment it starts, so attempts sent at once cannot all pass
    before the first fails; a success takes its own back."""

    def __init__(
        self,
        limit: int = LOGIN_FAILURES,
        window_s: float = LOGIN_WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit, self.window_s, self.clock = limit, window_s, clock
        self._tries: dict[str, deque[float]] = {}

    def attempt(self, key: str) -> float:
        """0 and the attempt counted, or the seconds ``key`` must wait before another."""
        now = self.clock()
        tries = self._tries.setdefault(key, deque())
        while tries and tries[0] <= now - self.window_s:
            tries.popleft()
        if len(tries) >= self.limit:
            return tries[0] + self.window_s - now
        if len(self._tries) > LOGIN_KEYS_MAX:
            self._forget(now)
        tries.append(now)
        return 0.0

    def succeeded(self, key: str) -> None:
        tries = self._tries.get(key)
        if tries:
            tries.pop()

    def _forget(self, now: float) -> None:
        for key in [k for k, t in self._tries.items() if not t or t[-1] <= now - self.window_s]:
            del self._tries[key]


class TokenFile:
    """The tokens file as last read: read again when it changes on disk (mtime, size, inode),
    so a token removed from it is seen at the next request without reading it each time."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._key: tuple[int, int, int] | None = None
        self._tokens: dict[str, str] = {}

    def tokens(self) -> dict[str, str] | None:
        """hash → who; None when no file is configured or it cannot be read now (missing, or
        half-written: `ecowatch tokens` rewrites it in place)."""
        if self.path is None:
            return None
        try:
            stat = self.path.stat()
            key = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
            if key != self._key:
                self._tokens = load_tokens(self.path)
                self._key = key
        except (OSError, ConfigError):
            self._key = None  # a failed read is not kept: tried again next time
            return None
        return self._tokens


def safe_next(raw: str) -> str:
    r"""Where to go after signing in: a path of this site, else "/". Browsers read "\" as "/"
    and drop tabs and newlines in a URL, so "/\evil.com" or "/<tab>/evil.com" leave the site."""
    if (
        not raw.startswith("/")
        or len(raw) > NEXT_MAX
        or "//" in raw
        or "\\" in raw
        or any(ord(c) < 0x20 or ord(c) == 0x7F for c in raw)
    ):
        return "/"
    parts = urlsplit(raw)
    return raw if not parts.scheme and not parts.netloc else "/"


def from_this_site(request: web.Request) -> bool:
    """Whether a request comes from the console's own pages: its Origin names this host, or,
    without one, its Referer does. Neither (curl, a script) is no browser on another site's
    behalf. The host alone is compared: behind a TLS proxy the scheme seen here differs."""
    if "Origin" in request.headers:
        source = request.headers["Origin"]
    elif "Referer" in request.headers:
        source = request.headers["Referer"]
    else:
        return True
    parts = urlsplit(source)
    return parts.scheme in ("http", "https") and parts.netloc.lower() == request.host.lower()


def sse_frame(kind: str, data: Any) -> bytes:
    """One Server-Sent Event: its JSON on one line (json escapes newlines in strings)."""
    return f"event: {kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


def bad_request(error: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(
        text=json.dumps({"error": error}, ensure_ascii=False), content_type="application/json"
    )


def hours_of(raw: str) -> float:
    """The desk's ``?hours=``: a plain decimal from HOURS_MIN to HOURS_MAX; empty: the default.
    A pattern, not float(): that takes "nan", "inf" and "1_0"."""
    if raw == "":
        return HOURS_DEFAULT
    expected = f"hours: expected a number of hours from {HOURS_MIN} to {HOURS_MAX:g}"
    if not re.fullmatch(r"\d{1,3}(?:\.\d{1,6})?|\.\d{1,6}", raw):
        raise bad_request(f"{expected} (got {shown(raw)})")
    hours = float(raw)
    if not (math.isfinite(hours) and HOURS_MIN <= hours <= HOURS_MAX):
        raise bad_request(f"{expected} (got {shown(raw)})")
    return hours


@web.middleware
async def same_origin_posts(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Another site's page may not post here (a sign-in, a case action, a mark)."""
    if request.method == "POST" and not from_this_site(request):
        return web.json_response(
            {"error": "a request from another site is refused", "code": "other_site"}, status=403
        )
    return await handler(request)


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


class Console:
    def __init__(self, settings: Settings, catalogue: Catalogue, city: City) -> None:
        self.settings = settings
        self.catalogue = catalogue
        self.city = city
        host = settings.web_host if settings.web_host not in ("0.0.0.0", "::") else "127.0.0.1"
        self.worker = f"http://{host}:{settings.web_port}"
        self.sessions: dict[str, Session] = {}
        # Where the pages and their scripts come from: the package's, or another build's for
        # `ecowatch bench console --pages-before` (the same server, the pages compared).
        self.pages: Traversable = STATIC
        # Each open event stream's queue of frames, and the grids it may see (None: all).
        self.listeners: dict[asyncio.Queue[bytes], frozenset[str] | None] = {}
        self.throttle = LoginThrottle()
        self.clock: Callable[[], float] = time.time  # the sessions' clock (a test moves it)
        tokens = settings.officer_tokens
        self.token_file = TokenFile(Path(tokens) if tokens is not None else None)
        self.http: aiohttp.ClientSession | None = None
        self.started = datetime.now(UTC)  # the dead letters are counted from here
        # The city's validity days as last read (keep_validity), and why not if it failed.
        self.validity_days = validity.NO_DAYS
        self.validity_points: list[validity.DayPoint] = []
        self.validity_error: str | None = None
        self.validity_read_at: datetime | None = None

    # -- who is calling ------------------------------------------------------------------------

    def _holder(self, token: str) -> str:
        """Who holds the token, from the hashed tokens file when this process can read it (a
        name to show; the worker decides what they may do)."""
        tokens = self.token_file.tokens()
        return (identify(tokens, token) or "") if tokens is not None else ""

    def _enterprise(self, token: str) -> Session | None:
        """An enterprise's session: the case API refused its token every case (403), so who
        holds it comes from the tokens file, judged as the API judges it."""
        tokens = self.token_file.tokens()
        if tokens is None:
            log.warning("console: a token the case API refuses cases (403), and no tokens file")
            return None
        try:
            caller = caller_of(f"Bearer {token}", tokens, {}, self.catalogue.enterprises)
        except (ConfigError, Refusal):
            return None
        if caller.enterprise is None:
            return None
        expires = self.clock() + SESSION_HOURS * 3600
        return Session(
            token, caller.who, frozenset(), expires, caller.enterprise, hash_token(token)
        )

    async def sign_in(self, token: str) -> Session | None:
        status, body = await self.call_worker("GET", "/api/cases", token)
        if status == 403:
            return self._enterprise(token)
        if status != 200 or not isinstance(body, dict):
            return None
        self._take_rows(body)
        grids = frozenset(body.get("grids", []))
        who = self._holder(token)
        everyone = who.startswith((OPERATOR, KIOSK)) or (
            not who and grids == set(self.catalogue.grids)
        )
        lasts = KIOSK_DAYS * 86400 if who.startswith(KIOSK) else SESSION_HOURS * 3600
        return Session(
            token,
            who,
            None if everyone else grids,
            self.clock() + lasts,
            vouched=hash_token(token) if who else None,
        )

    def session(self, request: web.Request) -> Session | None:
        """The caller's session while it lasts and, if the tokens file named its token, while
        the file still does (a revoked token ends it at once, not after SESSION_HOURS)."""
        sid = request.cookies.get(COOKIE, "")
        found = self.sessions.get(sid)
        if found is None:
            return None
        tokens = self.token_file.tokens() if found.vouched is not None else {}
        revoked = tokens is not None and found.vouched is not None and found.vouched not in tokens
        if found.expires < self.clock() or revoked:
            self.sessions.pop(sid, None)
            return None
        if tokens is None:
            return None  # the file unreadable for now (mid-rewrite?): no answer, session kept
        if found.role == "kiosk":  # renewed while in use (kiosk_reads_only sends its cookie again)
            found = self.sessions[sid] = replace(found, expires=self.clock() + KIOSK_DAYS * 86400)
            request[KIOSK_SID] = sid
        return found

    @web.middleware
    async def kiosk_reads_only(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        """A kiosk watches: every POST but signing in or out is refused, whatever its path.
        Its cookie goes out again with each answer, so the browser never drops it."""
        if request.method == "POST" and request.path not in ("/login", "/logout"):
            me = self.session(request)
            if me is not None and me.role == "kiosk":
                error = "a wall display reads; it cannot act"
                return web.json_response({"error": error, "code": "reads_only"}, status=403)
        response = await handler(request)
        sid = request.get(KIOSK_SID)
        if sid is not None and not response.prepared and COOKIE not in response.cookies:
            response.set_cookie(COOKIE, sid, **_cookie(KIOSK_DAYS * 86400))
        return response

    def need(self, request: web.Request, *, enterprise: bool = False) -> Session:
        """The caller's session; an enterprise's only where ``enterprise`` (its marks): the
        city's map, cases and dead letters are the officers' and operators'."""
        found = self.session(request)
        if found is None:
            raise web.HTTPUnauthorized(
                text=json.dumps({"error": "sign in with your token", "code": "unauthorized"}),
                content_type="application/json",
            )
        if found.enterprise is not None and not enterprise:
            raise web.HTTPForbidden(
                text=json.dumps(
                    {"error": "an enterprise marks its own sites", "code": "not_for_enterprise"},
                    ensure_ascii=False,
                ),
                content_type="application/json",
            )
        return found

    async def call_worker(
        self,
        method: str,
        path: str,
        token: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 10.0,
    ) -> tuple[int, Any]:
        """The case API with the caller's token: its status and JSON, or 503 if it is away.
        ``raw``: a document sent as the body itself, with its ``headers``, not JSON."""
        assert self.http is not None
        try:
            async with self.http.request(
                method,
                self.worker + path,
                headers={"Authorization": f"Bearer {token}", **(headers or {})},
                json=body if raw is None else None,
                data=raw,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as r:
                try:
                    return r.status, await r.json(content_type=None)
                except ValueError:
                    return r.status, {"error": (await r.text())[:200]}
        except (aiohttp.ClientError, TimeoutError) as exc:
            return 503, {"error": f"the case API at {self.worker} does not answer ({exc})"}

    def _take_rows(self, body: Any) -> None:
        """The case API's rows into the city: a case the topics did not show (past their
        retention, or a console started late) is counted, with its own deadlines."""
        for row in body.get("cases", []) if isinstance(body, dict) else []:
            if isinstance(row, dict) and "id" in row:
                self.city.on_case_row(row)
                row["overdue"] = self.city.row_overdue(row)

    async def seed(self) -> None:
        """The city as it stands at start: each device's latest stored reading, and the open
        cases if the console has a token of its own (ECOWATCH_API_TOKEN; otherwise the first
        sign-in brings them)."""
        readings = await asyncio.to_thread(stored_latest, self.settings)
        for reading in readings:
            self.city.seed_reading(reading)
        log.info("console: %d devices' latest readings taken from InfluxDB", len(readings))
        token = self.settings.api_token.get_secret_value()
        if not token:
            return
        # A console started with its worker asks until the worker's API is up (503 until its
        # tables are read back), for a minute at most; a sign-in brings the cases after that.
        status = 0
        for _ in range(30):
            status, body = await self.call_worker("GET", "/api/cases", token)
            if status == 200:
                self._take_rows(body)
                return
            if status not in (0, 502, 503, 504):
                break
            await asyncio.sleep(2)
        log.warning("console: the open cases were not read from the case API (%s)", status)

    # -- pages ---------------------------------------------------------------------------------

    async def page(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info.get("page", "wall")
        if name not in PAGES:
            raise web.HTTPNotFound()
        me = self.session(request)
        if me is None:
            raise web.HTTPFound(f"/login?next=/{name}")
        if me.enterprise is not None and name != "phone":
            raise web.HTTPFound("/phone")  # its marks are there; the city is not its to watch
        return self._html(f"{name}.html")

    async def login_page(self, request: web.Request) -> web.StreamResponse:
        return self._html("login.html")

    def _html(self, name: str) -> web.Response:
        return web.Response(
            text=(self.pages / name).read_text(encoding="utf-8"),
            content_type="text/html",
            headers={"Cache-Control": "no-store"},
        )

    async def static(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        kinds = {".js": "text/javascript", ".css": "text/css"}
        kind = kinds.get(Path(name).suffix)
        if kind is None or "/" in name or name.startswith("."):
            raise web.HTTPNotFound()
        item = self.pages / name
        if not item.is_file():
            raise web.HTTPNotFound()
        return web.Response(text=item.read_text(encoding="utf-8"), content_type=kind)

    async def login(self, request: web.Request) -> web.StreamResponse:
        """A token for a session cookie, and where to go next (``next``, if of this site)."""
        address = request.remote or ""
        wait = self.throttle.attempt(address)
        if wait > 0:
            return web.json_response(
                {
                    "error": "too many sign-in attempts, try again later",
                    "code": "too_many_attempts",
                },
                status=429,
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )
        try:
            body = await request.json()
            token = str(body.get("token", "")).strip()
            given = body.get("next")
        except (ValueError, AttributeError):
            token, given = "", None
        found = await self.sign_in(token) if token else None
        if found is None:
            return web.json_response(
                {"error": "the token is not valid", "code": "unauthorized"}, status=401
            )
        self.throttle.succeeded(address)
        sid = secrets.token_urlsafe(32)
        self.sessions[sid] = found
        home = "/wall" if found.role in ("operator", "kiosk") else "/phone"
        after = home if given in (None, "") else safe_next(given if isinstance(given, str) else "")
        if found.role == "kiosk":
            after = "/wall"  # the one screen it is for
        response = web.json_response({"who": found.who, "role": found.role, "next": after})
        kiosk = found.role == "kiosk"
        response.set_cookie(
            COOKIE, sid, **_cookie(KIOSK_DAYS * 86400 if kiosk else SESSION_HOURS * 3600)
        )
        return response

    async def logout(self, request: web.Request) -> web.StreamResponse:
        self.sessions.pop(request.cookies.get(COOKIE, ""), None)
        response = web.json_response({"signed_out": True})
        response.del_cookie(COOKIE, path="/")
        return response

    # -- data ----------------------------------------------------------------------------------

    async def city_view(self, request: web.Request) -> web.StreamResponse:
        me = self.need(request, enterprise=True)
        sites = [s for s in self.catalogue.sites.values() if me.may_see(s)]
        company = self.catalogue.enterprises.get(me.enterprise or "")
        return web.json_response(
            {
                "me": {
                    "who": me.who,
                    "role": me.role,
                    "grids": sorted(me.grids or []),
                    "enterprise": company.name if company else "",
                },
                # The pages' pollutant names: code → [Chinese, English].
                "pollutants": {code: list(pair) for code, pair in NAMES.items()},
                # Every other name a page shows (rules, flags, steps, …): group → key → pair.
                "names": names(),
                # The marks' types (标记), in the rules' order: type → [Chinese, English].
                "mark_types": {kind.value: list(names) for kind, names in MARK_TYPES.items()},
                "grids": [
                    {"id": g.id, "name": g.name, "district": g.district}
                    for g in self.catalogue.grids.values()
                    if me.sees(g.id)
                ],
                "sites": [
                    {
                        "id": s.id,
                        "name": s.name,
                        "kind": s.kind.value,
                        # A stack's limits hold at this % O2 (基准氧含量); None elsewhere.
                        "o2_reference": self.catalogue.o2_reference(s.id),
                        "district": s.district,
                        "grid": s.grid,
                        "lat": s.lat,
                        "lon": s.lon,
                        "enterprise": (
                            self.catalogue.enterprises[s.enterprise].name if s.enterprise else ""
                        ),
                        "devices": [d.id for d in s.devices],  # what a mark may name
                    }
                    for s in sites
                ],
                "state": {s.id: self.city.site_view(s.id) for s in sites},
                "cases": self.city.case_counts(me.grids),
                "pulse": self._pulse(),
            }
        )

    def _pulse(self) -> dict[str, Any]:
        # Both clocks, named: data time (the readings' own, simulated in a demo) and now.
        now = datetime.now(UTC)
        view = self.city.pulse.view(time.monotonic(), now)
        view["data_now"] = self.city.data_now.isoformat() if self.city.data_now else None
        view["now"] = now.isoformat()
        view["dead_letters_total"] = self.city.dead_letters.total
        return view

    def _visible_site(self, me: Session, site_id: str) -> None:
        site = self.catalogue.sites.get(site_id)
        if site is None:
            raise web.HTTPNotFound(
                text=json.dumps({"error": f"no site {site_id!r}", "code": "no_site"}),
                content_type="application/json",
            )
        if not me.sees(site.grid):
            raise web.HTTPForbidden(
                text=json.dumps(
                    {
                        "error": f"site {site_id} is in grid {site.grid}, not yours",
                        "code": "not_your_grid",
                    }
                ),
                content_type="application/json",
            )

    async def site_view(self, request: web.Request) -> web.StreamResponse:
        me = self.need(request)
        site_id = request.match_info["site"]
        self._visible_site(me, site_id)
        site = self.catalogue.sites[site_id]
        view = self.city.site_view(site_id)
        measured = {p for d in site.devices for p in d.pollutants}
        stack = self.city.sites[site_id].o2_reference is not None
        if stack and {NO, NO2} <= measured:
            measured.add(NOX)  # judged as NO2 from NO and NO2 where the CEMS sends no NOx
        pollutants = sorted(measured)
        limits = {p: lim for p in pollutants if (lim := limit_view(self.city.limit(site_id, p)))}
        ts = self.city.sites[site_id].ts
        end = ts or datetime.now(UTC)
        hours = hours_of(request.query.get("hours", ""))
        start = end - timedelta(hours=hours)
        days = self.closed_days()
        (
            (history, error),
            (corrected, corrected_error),
            (points, validity_error),
        ) = await asyncio.gather(
            asyncio.to_thread(site_history, self.settings, site_id, start, end),
            (
                asyncio.to_thread(site_corrected_history, self.settings, site_id, start, end)
                if stack
                else _nothing()
            ),
            asyncio.to_thread(stored_validity, self.settings, days, site_id),
        )
        status, cases = await self.call_worker("GET", f"/api/cases?grid={site.grid}", me.token)
        if status == 200:
            self._take_rows(cases)
        rows = [c for c in cases.get("cases", []) if c["site"] == site_id] if status == 200 else []
        enterprise = self.catalogue.enterprises.get(site.enterprise or "")
        return web.json_response(
            {
                **view,
                "name": site.name,
                "kind": site.kind.value,
                "district": site.district,
                "grid": site.grid,
                "enterprise": enterprise.name if enterprise else "",
                "standard": (f"{site.standard.id} {site.standard.class_}" if site.standard else ""),
                # The standard and class as each language names it: "GB 8978-1996 一级标准".
                "standard_said": self._standard_said(site),
                "permit": site.permit.number if site.permit else "",
                "air": site.kind is SiteKind.AIR_STATION,
                "pollutants": pollutants,
                # A stack's flue-gas state (O2, flow, temperature, ...): never corrected.
                "gas_state": [p for p in pollutants if stack and not is_concentration(p)],
                "limits": limits,
                "history": history,
                "history_error": error,
                # A stack's minute means corrected to its reference: its chart's judged line.
                "history_corrected": corrected,
                "history_corrected_error": corrected_error,
                "cases": rows,
                "cases_error": None if status == 200 else cases.get("error"),
                # The phone's: the contact, map links, the active findings' numbers.
                **phone_api.site_extras(self.catalogue, self.city, site_id),
                # Its last closed days' 应传/实传/有效 and rates (传输有效率), from InfluxDB.
                "validity": {
                    **validity.site_days(self.catalogue, points, site_id, days),
                    "error": validity_error,
                },
            }
        )

    def _standard_said(self, site: Site) -> dict[str, str]:
        if site.standard is None:
            return {"zh": "", "en": ""}
        standard = self.catalogue.standards[site.standard.id]
        return {
            "zh": standard.label_zh(site.standard.class_),
            "en": standard.label(site.standard.class_),
        }

    async def cases(self, request: web.Request) -> web.StreamResponse:
        me = self.need(request)
        status, body = await self.call_worker("GET", "/api/cases", me.token)
        if status == 200:
            self._take_rows(body)  # "overdue" from each case's own deadline, in data time
        return web.json_response(body, status=status)

    async def trail(self, request: web.Request) -> web.StreamResponse:
        me = self.need(request)
        found = self.city.trail(request.match_info["case_id"])
        if found is None:
            return web.json_response(
                {"error": "no such case seen by the console", "code": "no_case"}, status=404
            )
        self._visible_site(me, found["site"])
        return web.json_response(found)

    async def act(self, request: web.Request) -> web.StreamResponse:
        me = self.need(request)
        site, case_id, action = (request.match_info[k] for k in ("site", "case_id", "action"))
        body = None
        # Passed on as it came (an ack's too: its action_id makes a retry a duplicate).
        if action == "findings" or request.can_read_body:
            try:
                body = await request.json()
            except ValueError:
                return web.json_response({"error": "expected a JSON body"}, status=400)
        path = f"/api/sites/{site}/cases/{case_id}/{action}"
        status, answer = await self.call_worker("POST", path, me.token, body)
        return web.json_response(answer, status=status)

    # -- marks (标记) ---------------------------------------------------------------------------

    async def marks(self, request: web.Request) -> web.StreamResponse:
        """The marks of the enterprises' sites the caller may see (an enterprise: its own; an
        officer: their grids'), each with its words (alerts/wording.py) and its site's data
        clock. The API lists one site at a time; a site it did not answer for is named."""
        me = self.need(request, enterprise=True)
        sites = [s.id for s in self.catalogue.sites.values() if s.enterprise and me.may_see(s)]
        gate = asyncio.Semaphore(MARKS_AT_ONCE)

        async def one(site: str) -> tuple[str, int, Any]:
            async with gate:
                path = f"/api/sites/{quote(site, safe='')}/marks"
                return site, *await self.call_worker("GET", path, me.token)

        rows: list[dict[str, Any]] = []
        now: dict[str, str] = {}
        errors: list[dict[str, Any]] = []
        for site, status, body in await asyncio.gather(*(one(s) for s in sites)):
            if status != 200 or not isinstance(body, dict):
                error = body.get("error") if isinstance(body, dict) else None
                errors.append({"site": site, "status": status, "error": error or str(status)})
                continue
            now[site] = body.get("now", "")
            rows += [_said(row) for row in body.get("marks", []) if isinstance(row, dict)]
        return web.json_response({"now": now, "marks": rows, "errors": errors})

    async def mark_act(self, request: web.Request) -> web.StreamResponse:
        """Declare a mark (the enterprise) or review one (an officer): passed on as JSON."""
        me = self.need(request, enterprise=True)
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"error": "expected a JSON body"}, status=400)
        path = f"/api/sites/{quote(request.match_info['site'], safe='')}/marks"
        if "mark_id" in request.match_info:
            path += f"/{quote(request.match_info['mark_id'], safe='')}/review"
        status, answer = await self.call_worker("POST", path, me.token, body)
        return web.json_response(_with_said(answer), status=status)

    async def add_proof(self, request: web.Request) -> web.StreamResponse:
        """A proof's document, passed on to the mark's proofs."""
        me = self.need(request, enterprise=True)
        site, mark_id = (quote(request.match_info[k], safe="") for k in ("site", "mark_id"))
        path = f"/api/sites/{site}/marks/{mark_id}/proofs"
        status, answer = await self.pass_document(request, me, path, MAX_PROOF_BYTES, "a proof")
        return web.json_response(_with_said(answer), status=status)

    async def pass_document(
        self, request: web.Request, me: Session, path: str, cap: int, what: str
    ) -> tuple[int, Any]:
        """A document (a mark's proof, a visit's photo) passed on to the case API as it came,
        with its type and file name. Read from the stream up to ``cap`` (the API's): the app's
        body limit is for JSON."""
        too_large = (
            413,
            {"error": f"{what} is at most {cap // (1024 * 1024)} MiB", "code": "too_large"},
        )
        if (request.content_length or 0) > cap:
            return too_large
        chunks: list[bytes] = []
        size = 0
        while chunk := await request.content.read(64 * 1024):
            size += len(chunk)
            if size > cap:
                return too_large
            chunks.append(chunk)
        headers = {
            "Content-Type": request.headers.get("Content-Type", ""),
            FILENAME_HEADER: request.headers.get(FILENAME_HEADER, ""),
        }
        return await self.call_worker(
            "POST",
            path,
            me.token,
            raw=b"".join(chunks),
            headers={k: v for k, v in headers.items() if v},  # missing: the API says so
            timeout=PROOF_TIMEOUT_S,
        )

    async def proof(self, request: web.Request) -> web.StreamResponse:
        """A proof's document from the API, with the caller's token (a mark's ``proofs[].url``
        is this path): served as the API serves it, a download."""
        me = self.need(request, enterprise=True)
        return await self.fetch_document(request, me, "/api/proofs")

    async def fetch_document(
        self, request: web.Request, me: Session, under: str
    ) -> web.StreamResponse:
        """A stored document (a proof, a photo) by its hash and ``?site=``, fetched from the API
        with the caller's token and served with the API's own headers (type, disposition,
        nosniff, its CSP)."""
        site = request.query.get("site", "")
        if site not in self.catalogue.sites:
            raise bad_request(f"site: expected a site of the catalogue (got {shown(site)})")
        sha = quote(request.match_info["sha256"], safe="")
        path = f"{under}/{sha}?site={quote(site, safe='')}"
        assert self.http is not None
        try:
            async with self.http.get(
                self.worker + path,
                headers={"Authorization": f"Bearer {me.token}"},
                timeout=aiohttp.ClientTimeout(total=PROOF_TIMEOUT_S),
            ) as r:
                data = await r.read()  # at most the API's cap
                kept = {k: r.headers[k] for k in PROOF_HEADERS if k in r.headers}
        except (aiohttp.ClientError, TimeoutError) as exc:
            error = f"the case API at {self.worker} does not answer ({exc})"
            return web.json_response({"error": error, "code": "unavailable"}, status=503)
        kept["X-Content-Type-Options"] = "nosniff"
        return web.Response(body=data, status=r.status, headers=kept)

    async def weekly(self, request: web.Request) -> web.StreamResponse:
        """The case API's weekly settlement (周周能结清) of the caller's grids; by default the
        week of data time, the one the cases live in (a simulated city is days in the past)."""
        me = self.need(request)
        week = request.query.get("week", "")
        if week:
            try:
                week_query([("week", week)])  # the API's own rule, said before asking it
            except Refusal as refused:
                raise bad_request(refused.reason) from None
        week = week or self.data_week()
        status, body = await self.call_worker(
            "GET", f"/api/reports/weekly?week={quote(week)}", me.token
        )
        return web.json_response(body, status=status)

    def data_week(self) -> str:
        """The Monday (China time) of the week of data time, or of today without data."""
        day = (self.city.data_now or datetime.now(UTC)).astimezone(CHINA).date()
        return (day - timedelta(days=day.weekday())).isoformat()

    def closed_days(self) -> tuple[date, ...]:
        """The closed days before the day of data time (a simulated city lives in the past,
        and the worker closes its days on data time), or of today without data."""
        return validity.closed_days(self.city.data_now or datetime.now(UTC))

    async def reload_validity(self) -> None:
        days = self.closed_days()
        points, error = await asyncio.to_thread(stored_validity, self.settings, days)
        if error is None:
            self.validity_days, self.validity_points = days, points
        else:  # the last figures stay, with the days they are of, and the error beside
            log.warning("console: the validity days were not read: %s", error)
        self.validity_error = error
        self.validity_read_at = datetime.now(UTC)

    async def keep_validity(self, stop: asyncio.Event) -> None:
        """The city's validity days from InfluxDB: at start, every VALIDITY_EVERY_S, and as
        soon as data time moves into another day."""
        last, tried = 0.0, validity.NO_DAYS
        while not stop.is_set():
            days = self.closed_days()
            if days != tried or time.monotonic() - last >= VALIDITY_EVERY_S:
                tried, last = days, time.monotonic()
                await self.reload_validity()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), VALIDITY_CHECK_S)

    async def validity_view(self, request: web.Request) -> web.StreamResponse:
        """The wall's panel: the city's transmission-validity rate over the closed days (every
        site's counts) and the lowest of the caller's sites."""
        me = self.need(request)
        shown = {s.id for s in self.catalogue.sites.values() if me.sees(s.grid)}
        view = validity.wall_view(self.catalogue, self.validity_points, self.validity_days, shown)
        for row in view["lowest"]:
            row["name"] = self.catalogue.sites[row["site"]].name
        read_at = self.validity_read_at
        return web.json_response(
            view
            | {
                "error": self.validity_error,
                "read_at": read_at.isoformat() if read_at else None,
            }
        )

    async def dead_letters(self, request: web.Request) -> web.StreamResponse:
        self.need(request)
        return web.json_response(
            {"since": self.started.isoformat(), **self.city.dead_letters.view()}
        )

    # -- alarms (报警, 消警) ---------------------------------------------------------------------

    async def alarms(self, request: web.Request) -> web.StreamResponse:
        """The alarms of the caller's grids, their counts, today's by hour, the worst sites."""
        me = self.need(request)
        return web.json_response(self.city.alarms_view(me.grids))

    async def silence(self, request: web.Request) -> web.StreamResponse:
        """消警: passed to the case API with the caller's token (it checks who may, and keeps
        the silence on ``ecowatch.alarms`` for every console); taken here at once too, so the
        page that silenced it sees it without waiting for the topic."""
        me = self.need(request)
        alarm = self.city.alarms.alarms.get(request.match_info["alarm_id"])
        if alarm is None:
            return web.json_response({"error": "no such alarm", "code": "no_alarm"}, status=404)
        if not me.sees(alarm.grid):
            return web.json_response(
                {"error": f"alarm of grid {alarm.grid}, not yours", "code": "not_your_grid"},
                status=403,
            )
        body = {"alarm_id": alarm.id, "site": alarm.site, "upto": alarm.last_at.isoformat()}
        status, answer = await self.call_worker("POST", "/api/alarms/silence", me.token, body)
        if status == 202 and isinstance(answer, dict):
            by = str(answer.get("by") or me.who)
            now = datetime.now(UTC)
            self.city.on_silence(
                AlarmSilenced(alarm_id=alarm.id, site=alarm.site, by=by, at=now, upto=alarm.last_at)
            )
            return web.json_response({"alarm": self.city.alarms.row(alarm)}, status=202)
        return web.json_response(answer, status=status)

    # -- live ----------------------------------------------------------------------------------

    async def live(self, request: web.Request) -> web.StreamResponse:
        me = self.need(request)
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        queue: asyncio.Queue[bytes] = asyncio.Queue(QUEUE_MAX)
        self.listeners[queue] = me.grids
        checked = time.monotonic()
        try:
            await response.write(b"retry: 2000\nevent: hello\ndata: {}\n\n")
            while frame := await queue.get():  # b"": dropped (too far behind) or shutting down
                if time.monotonic() - checked >= LIVE_RECHECK_S:
                    checked = time.monotonic()
                    if self.session(request) is None:
                        break  # signed out, expired, or its token revoked
                await response.write(frame)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.listeners.pop(queue, None)
        return response

    def _send(self, kind: str, data: dict[str, Any]) -> None:
        """One message, serialised once: the same bytes to every listener that may see it."""
        grid = data.get("grid")
        frame = sse_frame(kind, data)
        for queue, grids in list(self.listeners.items()):
            if grid is None or grids is None or grid in grids:
                self._put(queue, frame)

    def _send_counts(self) -> None:
        """The cases' counts, each listener's for its grids: serialised once a set of grids."""
        frames: dict[frozenset[str] | None, bytes] = {}
        for queue, grids in list(self.listeners.items()):
            if grids not in frames:
                frames[grids] = sse_frame("cases", self.city.case_counts(grids))
            self._put(queue, frames[grids])

    def _put(self, queue: asyncio.Queue[bytes], frame: bytes) -> None:
        try:
            queue.put_nowait(frame)
        except asyncio.QueueFull:
            self.listeners.pop(queue, None)
            with contextlib.suppress(asyncio.QueueEmpty):
                queue.get_nowait()
            queue.put_nowait(b"")

    async def push(self, stop: asyncio.Event) -> None:
        """What changed, every PUSH_EVERY_S; the pulse every second."""
        last_pulse = 0.0
        while not stop.is_set():
            await asyncio.sleep(PUSH_EVERY_S)
            sites, turns = self.city.take_changes()
            for site_id in sites:
                grid = self.catalogue.sites[site_id].grid
                self._send("site", {"grid": grid, **self.city.site_view(site_id)})
            for turn in turns:
                self._send("case", turn)
            if turns:
                self._send_counts()
            if self.city.dead_letters.changed:
                self.city.dead_letters.changed = False
                self._send(
                    "dead", {"since": self.started.isoformat(), **self.city.dead_letters.view()}
                )
            for alarm in self.city.alarms.take_changes():
                self._send("alarm", {"grid": alarm.grid, "alarm": self.city.alarms.row(alarm)})
            if time.monotonic() - last_pulse >= PULSE_EVERY_S:
                last_pulse = time.monotonic()
                self.city.scan_overdue()  # data time moved on: cases past their deadline
                self._send("pulse", self._pulse())

    # -- the app -------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(
            client_max_size=64 * 1024, middlewares=[same_origin_posts, self.kiosk_reads_only]
        )
        app.on_response_prepare.append(security_headers)
        app.add_routes(
            [
                web.get("/", _to_wall),
                web.get("/login", self.login_page),
                web.post("/login", self.login),
                web.post("/logout", self.logout),
                web.get("/static/{name}", self.static),
                web.get("/api/city", self.city_view),
                web.get("/api/sites/{site}", self.site_view),
                web.get("/api/cases", self.cases),
                web.get("/api/cases/{case_id}/trail", self.trail),
                web.post(r"/api/sites/{site}/cases/{case_id}/{action:ack|findings}", self.act),
                web.get("/api/marks", self.marks),
                web.post("/api/sites/{site}/marks", self.mark_act),
                web.post("/api/sites/{site}/marks/{mark_id}/review", self.mark_act),
                web.post("/api/sites/{site}/marks/{mark_id}/proofs", self.add_proof),
                web.get("/api/proofs/{sha256}", self.proof),
                web.get("/api/weekly", self.weekly),
                web.get("/api/dead-letters", self.dead_letters),
                web.get("/api/validity", self.validity_view),
                web.get("/api/alarms", self.alarms),
                web.post("/api/alarms/{alarm_id}/silence", self.silence),
                web.get("/live", self.live),
                *desk_api.routes(self),
                *phone_api.routes(self),
                *wall_api.routes(self),
                web.get("/{page}", self.page),
            ]
        )

        async def client(app: web.Application):
            self.http = aiohttp.ClientSession()
            yield
            await self.http.close()

        async def hang_up(app: web.Application) -> None:
            # Open event streams would hold the shutdown for its whole timeout.
            for queue in list(self.listeners):
                with contextlib.suppress(asyncio.QueueFull):
                    queue.put_nowait(b"")

        app.cleanup_ctx.append(client)
        app.on_shutdown.append(hang_up)
        return app


def _cookie(max_age: int) -> dict[str, Any]:
    return {"httponly": True, "samesite": "Strict", "max_age": max_age, "path": "/"}


def _said(row: dict[str, Any]) -> dict[str, Any]:
    """A mark's row with its words in each language, as a case's trail writes a mark."""
    proofs = [{k: v for k, v in p.items() if k != "url"} for p in row.get("proofs", [])]
    try:
        mark = Mark.model_validate({**row, "proofs": proofs})
    except (ValidationError, AttributeError):
        return row  # a newer API's row: shown without its words rather than not at all
    return {**row, "said": both(mark_text, mark)}


def _with_said(answer: Any) -> Any:
    """A change's answer (``{"mark": …}``) with the mark's words, as the listing has them."""
    if isinstance(answer, dict) and isinstance(answer.get("mark"), dict):
        return {**answer, "mark": _said(answer["mark"])}
    return answer


async def _nothing() -> tuple[Series, str | None]:
    return {}, None


async def _to_wall(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/wall")
