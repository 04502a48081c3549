"""The phone's own endpoints, registered by the console's app (server.py).

- A case's photos (现场照片): ``POST /api/sites/{site}/cases/{case_id}/photos`` passes the
  image on to the case API as it came, and ``GET /api/photos/{sha256}?site=`` serves it back,
  both with the caller's own token (as server.py's ``add_proof`` and ``proof`` do for marks).
- Sign-in by a short one-time code or its QR code: a signed-in person asks
  ``POST /api/signin-codes`` on the desk; the phone hands the code to ``POST /login/code``
  once, within CODE_TTL_S, and gets a session of the same token. The token itself never
  leaves this process: the code only names it here, in memory.
- What a phone card shows beside a case (:func:`site_extras`, in ``/api/sites/{site}``): the
  enterprise's contact, map links to the site, and the active findings' numbers.
"""

from __future__ import annotations

import math
import secrets
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode
from weakref import WeakKeyDictionary

import segno
from aiohttp import web

from ecowatch.alerts.wording import excess_multiple, num, two_places
from ecowatch.config.catalogue import Catalogue
from ecowatch.streams.storage.photos import MAX_PHOTO_BYTES  # the case API's cap

if TYPE_CHECKING:
    from ecowatch.console.core import City
    from ecowatch.console.server import Console, Session

CODE_DIGITS = 8  # 10⁸ codes against 5 tries a minute an address: guessing one is hopeless
CODE_TTL_S = 300.0
CODES_PER_SESSION = 5  # a desk asking again and again keeps only its newest few
CODES_MAX = 10_000


def _json_error(error: str, status: int) -> web.Response:
    return web.json_response({"error": error}, status=status)


# -- photos -------------------------------------------------------------------------------------


async def add_photo(console: Console, request: web.Request) -> web.StreamResponse:
    """A photo of a visit, passed on to the case's photos as it came."""
    me = console.need(request)
    site, case_id = (quote(request.match_info[k], safe="") for k in ("site", "case_id"))
    path = f"/api/sites/{site}/cases/{case_id}/photos"
    status, answer = await console.pass_document(request, me, path, MAX_PHOTO_BYTES, "a photo")
    if status == 202 and isinstance(answer, dict) and answer.get("sha256"):
        # The console's own path to it: the API's serves the API's origin, not this one.
        answer["url"] = f"/api/photos/{answer['sha256']}?site={quote(request.match_info['site'])}"
    return web.json_response(answer, status=status)


async def photo(console: Console, request: web.Request) -> web.StreamResponse:
    """A photo from the API, with the caller's token: served as the API serves it (its type,
    nosniff). Kept for a day in the browser: a hash's bytes never change."""
    me = console.need(request)
    answer = await console.fetch_document(request, me, "/api/photos")
    if answer.status == 200:
        answer.headers["Cache-Control"] = "private, max-age=86400"
    return answer


# -- one-time sign-in codes ---------------------------------------------------------------------


@dataclass(frozen=True)
class Code:
    session: Session  # whose: the phone gets a session of the same token
    expires: float  # time.time()
    sid: str  # the asking session's cookie, to keep its codes few


class SigninCodes:
    """Codes waiting to be used, in memory: a restart forgets them (ask again on the desk)."""

    def __init__(self, clock: Any = time.time) -> None:
        self.clock = clock
        self._codes: dict[str, Code] = {}

    def make(self, session: Session, sid: str) -> tuple[str, float]:
        now = self.clock()
        self._forget(now)
        mine = [c for c, v in self._codes.items() if v.sid == sid]
        for old in mine[: max(0, len(mine) - CODES_PER_SESSION + 1)]:
            del self._codes[old]  # dicts keep order: the oldest first
        if len(self._codes) >= CODES_MAX:
            del self._codes[next(iter(self._codes))]
        while (code := f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}") in self._codes:
            pass
        self._codes[code] = Code(session, now + CODE_TTL_S, sid)
        return code, now + CODE_TTL_S

    def take(self, code: str) -> Session | None:
        """The code's session, once: a code tried is gone, used or expired."""
        found = self._codes.pop(code, None)
        if found is None or found.expires < self.clock():
            return None
        return found.session

    def _forget(self, now: float) -> None:
        for code in [c for c, v in self._codes.items() if v.expires < now]:
            del self._codes[code]


def login_url(request: web.Request, code: str) -> str:
    """The phone's way in, on the host the desk itself was reached at. Behind a TLS proxy
    the scheme seen here is http: the proxy's X-Forwarded-Proto says https."""
    scheme = request.headers.get("X-Forwarded-Proto", request.scheme).split(",")[0].strip()
    scheme = scheme if scheme in ("http", "https") else "http"
    return f"{scheme}://{request.host}/login?code={code}"


def qr_svg(url: str) -> str:
    """The URL as an SVG QR code, drawn here (segno): the page loads nothing from elsewhere."""
    return segno.make(url, error="m").svg_inline(scale=5, border=2, dark="#000", light="#fff")


async def make_code(console: Console, codes: SigninCodes, request: web.Request) -> web.Response:
    from ecowatch.console.server import COOKIE

    me = console.need(request, enterprise=True)
    if me.role not in ("officer", "operator", "enterprise"):
        return _json_error("this session may not hand out sign-in codes", 403)  # a kiosk's
    code, expires = codes.make(me, request.cookies.get(COOKIE, ""))
    url = login_url(request, code)
    return web.json_response(
        {
            "code": code,
            "expires_at": datetime.fromtimestamp(expires, UTC).isoformat(),
            "ttl_s": int(CODE_TTL_S),
            "url": url,
            "qr_svg": qr_svg(url),
        },
        status=201,
    )


async def login_by_code(console: Console, codes: SigninCodes, request: web.Request) -> web.Response:
    """A one-time code for a session cookie, counted against the address as a token's
    sign-in is (server.py LoginThrottle)."""
    from ecowatch.console.server import COOKIE, SESSION_HOURS, safe_next

    address = request.remote or ""
    wait = console.throttle.attempt(address)
    if wait > 0:
        return web.json_response(
            {"error": "too many sign-in attempts, try again later", "code": "too_many_attempts"},
            status=429,
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )
    try:
        body = await request.json()
        code = "".join(str(body.get("code", "")).split())  # typed with spaces: 1234 5678
        given = body.get("next")
    except (ValueError, AttributeError):
        code, given = "", None
    found = codes.take(code) if code.isdigit() and len(code) == CODE_DIGITS else None
    if found is None:
        return web.json_response(
            {"error": "the code is not valid or has expired", "code": "unauthorized"}, status=401
        )
    console.throttle.succeeded(address)
    # Its own session from now: signing out on the desk leaves the phone signed in.
    session = replace(found, expires=time.time() + SESSION_HOURS * 3600)
    sid = secrets.token_urlsafe(32)
    console.sessions[sid] = session
    after = "/phone" if given in (None, "") else safe_next(given if isinstance(given, str) else "")
    response = web.json_response({"who": session.who, "role": session.role, "next": after})
    response.set_cookie(
        COOKIE, sid, httponly=True, samesite="Strict", max_age=SESSION_HOURS * 3600, path="/"
    )
    return response


# -- a card's evidence, contact and way to the site ---------------------------------------------


def map_links(name: str, lat: float, lon: float) -> list[dict[str, str]]:
    """Links that open the site in the common Chinese map apps (or their web pages). The
    catalogue's coordinates are WGS-84 (GPS): each link says so (coordinate=wgs84 for 高德,
    coord_type=wgs84 for 百度), and the app shifts them to its own GCJ-02 / BD-09. 腾讯地图's
    URI API is left out: its documented form needs a registered key (referer)."""
    amap = urlencode(
        {
            "position": f"{lon},{lat}",  # 高德: longitude first
            "name": name,
            "coordinate": "wgs84",
            "callnative": "1",
            "src": "ecowatch",
        },
        safe=",",
        quote_via=quote,
    )
    baidu = urlencode(
        {
            "location": f"{lat},{lon}",  # 百度: latitude first
            "title": name,
            "content": name,
            "coord_type": "wgs84",
            "output": "html",
            "src": "webapp.ecowatch.console",
        },
        safe=",",
        quote_via=quote,
    )
    return [
        {"app": "amap", "url": f"https://uri.amap.com/marker?{amap}"},
        {"app": "baidu", "url": f"https://api.map.baidu.com/marker?{baidu}"},
    ]


def site_extras(catalogue: Catalogue, city: City, site_id: str) -> dict[str, Any]:
    """What a phone card adds to ``/api/sites/{site}``: where, who to call, and the numbers of
    each active finding (value, limit, 超标倍数 as officers write it)."""
    site = catalogue.sites[site_id]
    enterprise = catalogue.enterprises.get(site.enterprise or "")
    contact = enterprise.contact if enterprise else None
    phone = contact.phone if contact and contact.phone else None
    evidence = []
    for f in city.sites[site_id].findings.values():
        excess = excess_multiple(f)
        evidence.append(
            {
                "rule": f.rule.value,
                "pollutant": f.pollutant,
                "value": num(f.value) if f.value is not None else None,
                "limit": num(f.limit) if f.limit is not None else None,
                "unit": "" if f.unit == "dimensionless" else f.unit,
                "excess": two_places(excess) if excess is not None else None,
                "at": f.at.isoformat(),
            }
        )
    return {
        "lat": site.lat,
        "lon": site.lon,
        "maps": map_links(site.name, site.lat, site.lon),
        "contact": (
            {
                "name": contact.name,
                "phone": phone,
                # Digits and + only: what a dialler takes from a tel: link.
                "tel": "tel:" + "".join(c for c in phone if c.isdigit() or c == "+")
                if phone
                else None,
            }
            if contact
            else None
        ),
        "evidence": evidence,
    }


_CODES: WeakKeyDictionary[Console, SigninCodes] = WeakKeyDictionary()


def codes_of(console: Console) -> SigninCodes:
    """The console's codes: one store however many times its app is made."""
    return _CODES.setdefault(console, SigninCodes())


def routes(console: Console) -> list[web.RouteDef]:
    codes = codes_of(console)

    async def add(request: web.Request) -> web.StreamResponse:
        return await add_photo(console, request)

    async def get(request: web.Request) -> web.StreamResponse:
        return await photo(console, request)

    async def make(request: web.Request) -> web.StreamResponse:
        return await make_code(console, codes, request)

    async def use(request: web.Request) -> web.StreamResponse:
        return await login_by_code(console, codes, request)

    return [
        web.post("/api/sites/{site}/cases/{case_id}/photos", add),
        web.get("/api/photos/{sha256}", get),
        web.post("/api/signin-codes", make),
        web.post("/login/code", use),
    ]
