"""The officers' case API, served by the worker's web server (mobile enforcement).

    GET  /api/cases?status=&grid=&min_age_minutes=   the cases of the caller's grids
    POST /api/sites/{site}/cases/{case_id}/ack       acknowledge
    POST /api/sites/{site}/cases/{case_id}/findings  {"text": "...", "close": true|false}
    GET  /api/reports/weekly?week=YYYY-MM-DD          the weekly settlement of the caller's grids

Every request carries ``Authorization: Bearer <token>``. The tokens file (outside git,
ECOWATCH_OFFICER_TOKENS) holds only the tokens' hashes (``ecowatch.tokens``); a token names one
officer, who sees and acts on the cases of every grid the catalogue lists them in (a supervisor
may oversee several), or an operator, who sees every grid and acts on none.

The API refuses politely, always in JSON (``{"error": "..."}``): 401 without a known token,
403 outside the caller's grids, 400 for a parameter or body it cannot use (naming it and what
was expected), 413 for findings over 4 KiB, 404 for what does not exist, and 409 for an
action that would change nothing or does not fit the case (already acknowledged, closed, ...).
That last check runs against the case as it stands in the worker's table, with the actions
this process has accepted but the ``enforce`` agent has not yet applied folded on top, so a
second acknowledgement right after the first is refused too. An accepted action goes to the
agent through Kafka (``ecowatch.actions``), which owns the case: 202 Accepted.

Any worker of the group answers for any site. A site's tables live on the worker that holds its
partition (``app.router.key_store``): an action on a site held elsewhere is forwarded to that
worker, whole (the caller's token and body), so its check and its in-flight actions are the
owner's; the cases list and the weekly settlement read each site's state where it is held
(``GET /api/sites/state``, with the caller's token) and merge it here (the settlement's counts
of the week come from InfluxDB's case trail, the same whichever worker asks). A list stays
one answer for any set of grids, since a grid's sites are spread over every partition. While
the partitions move (a worker joined or died) the API answers 503 until they are settled.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
import unicodedata
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import aiohttp
import faust
from aiohttp.web import HTTPRequestEntityTooLarge
from faust.web import Request, Response, View

from ecowatch.alerts.wording import both, finding_text
from ecowatch.clock import CHINA, Clock
from ecowatch.config.catalogue import Catalogue
from ecowatch.schema import CaseEvent, CaseStatus, OfficerAction
from ecowatch.streams.judging.cases import (
    Case,
    CaseError,
    RecordFindings,
    officer_input,
    step,
)
from ecowatch.streams.judging.engine import SiteCases, context_for
from ecowatch.streams.judging.report import COUNTED, WEEK, GoneCase, weekly_report
from ecowatch.streams.storage.store import QueryError
from ecowatch.streams.worker.enforcement import Enforcement
from ecowatch.tokens import OPERATOR, identify

log = logging.getLogger(__name__)

MAX_FINDINGS_BYTES = 4096  # one officer's findings, UTF-8
MAX_FINDINGS_PER_CASE = 20  # so a case's record stays far below Kafka's 1 MB per record
MAX_BODY_BYTES = 16 * 1024  # the web server refuses larger request bodies (413)
MAX_MIN_AGE_MINUTES = 10 * 365 * 24 * 60  # ten years
MIN_YEAR, MAX_YEAR = 1970, 9998
PENDING_SECONDS = 60.0  # how long an accepted action counts before the table shows it
FORWARD_SECONDS = 10.0  # a request forwarded to the worker that holds a site
ROUTED = "X-Ecowatch-Routed"  # set on a forwarded request: it is never forwarded again
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class Refusal(Exception):
    """An answer other than success: the status and the reason the caller reads."""

    def __init__(self, status: int, reason: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(reason)
        self.status, self.reason, self.headers = status, reason, headers or {}


def shown(value: str, limit: int = 40) -> str:
    """A value the caller sent, quoted and cut short, for an error message."""
    return repr(value if len(value) <= limit else value[:limit] + "…")


# -- who is calling ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Caller:
    who: str  # the officer's id, or "operator:<name>"
    grids: frozenset[str] | None  # the officer's grids; None: an operator (every grid)

    def sees(self, grid: str) -> bool:
        return self.grids is None or grid in self.grids


def officer_grids(catalogue: Catalogue) -> dict[str, frozenset[str]]:
    """officer id → every grid the catalogue lists them in (a supervisor may have several)."""
    grids: dict[str, set[str]] = {}
    for grid in catalogue.grids.values():
        for officer in grid.officers:
            grids.setdefault(officer.id, set()).add(grid.id)
    return {officer: frozenset(g) for officer, g in grids.items()}


UNAUTHORIZED = {"WWW-Authenticate": 'Bearer realm="ecowatch"'}


def caller_of(
    authorization: str, tokens: dict[str, str], grids: dict[str, frozenset[str]]
) -> Caller:
    """The caller named by an ``Authorization: Bearer <token>`` header (hashed tokens)."""
    scheme, _, token = authorization.strip().partition(" ")
    who = identify(tokens, token.strip()) if scheme.lower() == "bearer" else None
    if who is not None and who.startswith(OPERATOR):
        return Caller(who, None)
    if who is None or who not in grids:
        raise Refusal(
            401, "a valid officer token is required (Authorization: Bearer …)", UNAUTHORIZED
        )
    return Caller(who, grids[who])


# -- parameters --------------------------------------------------------------------------------


def params(pairs: Iterable[tuple[str, str]], allowed: tuple[str, ...]) -> dict[str, str]:
    """The query's parameters, each at most once and each one this endpoint knows; an empty
    value counts as not given."""
    out: dict[str, str] = {}
    for name, value in pairs:
        if name not in allowed:
            expected = ", ".join(allowed) if allowed else "none"
            raise Refusal(400, f"unknown parameter {shown(name)} (expected: {expected})")
        if name in out:
            raise Refusal(400, f"{name}: given twice; expected it once")
        out[name] = value
    return {k: v for k, v in out.items() if v != ""}


@dataclass(frozen=True)
class CasesQuery:
    grids: frozenset[str] | None  # None: every grid
    status: CaseStatus | None
    min_age: timedelta
    label: str  # the answer's "grid": one grid, several joined by ",", or "*"


def cases_query(
    pairs: Iterable[tuple[str, str]], caller: Caller, catalogue: Catalogue
) -> CasesQuery:
    given = params(pairs, ("status", "grid", "min_age_minutes"))
    grids = caller.grids
    if "grid" in given:
        wanted = given["grid"]
        if wanted not in catalogue.grids:
            known = ", ".join(sorted(catalogue.grids))
            raise Refusal(
                400, f"grid: expected one of the catalogue's grids, {known} (got {shown(wanted)})"
            )
        if not caller.sees(wanted):
            yours = ", ".join(sorted(caller.grids or ()))
            raise Refusal(403, f"grid {wanted} is not yours (yours: {yours})")
        grids = frozenset({wanted})
    status = None
    if "status" in given:
        try:
            status = CaseStatus(given["status"])
        except ValueError:
            known = ", ".join(s.value for s in CaseStatus)
            raise Refusal(
                400, f"status: expected one of {known} (got {shown(given['status'])})"
            ) from None
    minutes = 0.0
    if "min_age_minutes" in given:
        raw = given["min_age_minutes"]
        try:
            minutes = float(raw)
        except ValueError:
            minutes = math.nan
        if not (math.isfinite(minutes) and 0 <= minutes <= MAX_MIN_AGE_MINUTES):
            raise Refusal(
                400,
                f"min_age_minutes: expected a number of minutes from 0 to "
                f"{MAX_MIN_AGE_MINUTES} (got {shown(raw)})",
            )
    label = "*" if grids is None else ",".join(sorted(grids))
    return CasesQuery(grids, status, timedelta(minutes=minutes), label)


def week_query(pairs: Iterable[tuple[str, str]]) -> datetime:
    """The week's Monday, 00:00 China time."""
    given = params(pairs, ("week",))
    expected = "expected the week's Monday as YYYY-MM-DD"
    if "week" not in given:
        raise Refusal(400, f"week: missing; {expected}, e.g. ?week=2026-11-30")
    raw = given["week"]
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
            raise ValueError
        day = date.fromisoformat(raw)
    except ValueError:
        raise Refusal(400, f"week: {expected} (got {shown(raw)})") from None
    if not MIN_YEAR <= day.year <= MAX_YEAR:
        raise Refusal(400, f"week: {expected}, from {MIN_YEAR} to {MAX_YEAR} (got {raw})")
    if day.weekday() != 0:
        monday = day - timedelta(days=day.weekday())
        raise Refusal(
            400, f"week: {raw} is a {DAYS[day.weekday()]}; {expected} ({monday.isoformat()})"
        )
    return datetime(day.year, day.month, day.day, tzinfo=CHINA)


def findings_body(raw: bytes) -> tuple[str, bool]:
    """``{"text": "...", "close": true|false}`` → (text, close)."""
    expected = 'expected a JSON body {"text": "…", "close": true|false}'
    try:
        body = json.loads(raw)
    except ValueError:  # also bytes that are not UTF-8
        raise Refusal(400, expected) from None
    if not isinstance(body, dict):
        raise Refusal(400, expected)
    unknown = sorted(set(body) - {"text", "close"})
    if unknown:
        raise Refusal(400, f"unknown field(s) {', '.join(shown(k) for k in unknown)}; {expected}")
    text, close = body.get("text"), body.get("close", False)
    if not isinstance(text, str):
        raise Refusal(400, f"text: expected a string of findings; {expected}")
    if not isinstance(close, bool):
        raise Refusal(400, "close: expected true or false")
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise Refusal(400, "text: not valid Unicode (a lone surrogate)") from None
    if size > MAX_FINDINGS_BYTES:
        raise Refusal(
            413, f"text: {size} bytes (UTF-8); findings are at most {MAX_FINDINGS_BYTES} bytes"
        )
    if not text.strip():
        raise Refusal(400, "text: empty; the findings are what the officer found on site")
    if any(unicodedata.category(c) == "Cc" and c not in "\n\r\t" for c in text):
        raise Refusal(400, "text: control characters other than new lines and tabs")
    return text, close


# -- the case as it stands ---------------------------------------------------------------------


@dataclass
class InFlight:
    """Actions this process accepted that the ``enforce`` agent may not have applied yet (a
    Kafka round trip): folded over the table's case when the next action is checked."""

    seconds: float = PENDING_SECONDS
    clock: Callable[[], float] = time.monotonic
    _actions: dict[tuple[str, str], list[tuple[float, OfficerAction]]] = field(default_factory=dict)

    def of(self, site: str, case_id: str) -> list[OfficerAction]:
        now = self.clock()
        key = (site, case_id)
        kept = [(t, a) for t, a in self._actions.get(key, []) if now - t < self.seconds]
        if kept:
            self._actions[key] = kept
        else:
            self._actions.pop(key, None)
        return [a for _, a in kept]

    def add(self, action: OfficerAction) -> None:
        self.prune()  # forget what expired, of every case: not only of this one
        self._actions.setdefault((action.site, action.case_id), []).append((self.clock(), action))

    def prune(self) -> None:
        """Forgets every action past ``seconds``: a case acted on once and never again would
        otherwise be held for as long as the process runs."""
        now = self.clock()
        for key, actions in list(self._actions.items()):
            kept = [(t, a) for t, a in actions if now - t < self.seconds]
            if kept:
                self._actions[key] = kept
            else:
                del self._actions[key]

    def __len__(self) -> int:
        """How many cases have actions in flight (or not yet forgotten)."""
        return len(self._actions)

    def drop(self, action: OfficerAction) -> None:
        key = (action.site, action.case_id)
        kept = [(t, a) for t, a in self._actions.get(key, []) if a is not action]
        if kept:
            self._actions[key] = kept
        else:
            self._actions.pop(key, None)


def why_unchanged(case: Case, action: OfficerAction) -> str:
    if action.action == "acknowledge" and case.acknowledged_by is not None:
        return f"case {case.id} is already acknowledged by {case.acknowledged_by}"
    return f"case {case.id} is {case.status.value}: this {action.action} would change nothing"


def check_action(
    case: Case,
    in_flight: list[OfficerAction],
    action: OfficerAction,
    catalogue: Catalogue,
) -> None:
    """Refuse (409, with the reason) an action that does not fit the case, or would change
    nothing, once the accepted actions still in flight are applied."""
    policy = catalogue.policy_for(case.evidence.rule, case.evidence.pollutant, case.severity)
    context = context_for(catalogue, action.site)
    current: Case | None = case
    for earlier in in_flight:
        try:
            current, _, _ = step(current, officer_input(earlier), action.at, policy, context)
        except CaseError:
            continue  # the agent will refuse it too
        if current is None:
            raise Refusal(409, f"case {case.id} is {CaseStatus.DISMISSED.value}")
    assert current is not None
    if isinstance(officer_input(action), RecordFindings) and (
        len(current.findings) >= MAX_FINDINGS_PER_CASE
    ):
        raise Refusal(
            409, f"case {case.id} has {MAX_FINDINGS_PER_CASE} findings, the most a case keeps"
        )
    try:
        after, events, _ = step(current, officer_input(action), action.at, policy, context)
    except CaseError as exc:
        raise Refusal(409, str(exc)) from None
    if after is None or not events:
        raise Refusal(409, why_unchanged(current, action))


def gone(case_id: str, events: Iterable[CaseEvent | GoneCase]) -> str | None:
    """Why a case no longer in the table cannot be acted on (closed or dismissed), from the
    site's case log (the cases gone within ``ecowatch.cases``' retention); None if the log
    does not know it either."""
    last = None
    for event in events:
        if event.case_id == case_id:
            last = event
    if last is not None and last.kind in ("closed", "dismissed"):
        when = last.at.astimezone(CHINA).strftime("%Y-%m-%d %H:%M")
        return f"case {case_id} was {last.kind} at {when}"
    return None


# -- the views ---------------------------------------------------------------------------------


async def guarded(view: View, answer: Awaitable[Response]) -> Response:
    try:
        return await answer
    except Refusal as exc:
        return view.error(exc.status, exc.reason, headers=exc.headers or None)


def case_row(case: Case, site_id: str, site_name: str) -> dict[str, Any]:
    return {
        "id": case.id,
        "site": site_id,
        "site_name": site_name,
        "status": case.status.value,
        "rule": case.evidence.rule.value,
        "pollutant": case.evidence.pollutant,
        "detail": both(finding_text, case.evidence),  # {"zh": …, "en": …}
        "first_seen": case.first_seen.isoformat(),
        # What the case waits for, in data time: the enterprise's rectify-by (set when it is
        # reminded) and the officers' acknowledge-by (set when it is escalated; None once taken).
        "deadline": case.deadline.isoformat() if case.deadline else None,
        "ack_due": case.ack_due.isoformat() if case.ack_due else None,
        "acknowledged_by": case.acknowledged_by,
        "findings": case.findings,
    }


@dataclass(frozen=True)
class SiteData:
    """A site's state as the worker that holds it has it."""

    cases: SiteCases
    now: datetime  # the site's data clock


def same_node(a: Any, b: Any) -> bool:
    return (a.host, a.port) == (b.host, b.port)


def install_api(
    app: faust.App,
    enforcement: Enforcement,
    catalogue: Catalogue,
    tokens: dict[str, str],
    clock: Clock,
) -> None:
    """The API's views on the app. ``tokens``: hash → who (``ecowatch.tokens.load_tokens``)."""
    grids = officer_grids(catalogue)
    strangers = sorted(
        {w for w in tokens.values() if not w.startswith(OPERATOR) and w not in grids}
    )
    if strangers:
        log.warning(
            "the tokens file names officers the catalogue does not know (refused): %s",
            ", ".join(strangers),
        )
    in_flight = InFlight()

    def caller(request: Request) -> Caller:
        return caller_of(request.headers.get("Authorization", ""), tokens, grids)

    def settled() -> None:
        if app.rebalancing or not app.tables.recovery.completed.is_set():
            raise Refusal(
                503, "the workers are sharing out the sites (a rebalance); try again shortly"
            )

    def owner(site: str) -> Any | None:
        """The URL of the worker that holds the site's partition; None: this one."""
        settled()
        try:
            url = app.router.key_store(enforcement.cases_table.name, site.encode())
        except KeyError:
            raise Refusal(503, f"no worker holds site {site} right now; try again") from None
        return None if same_node(url, app.conf.canonical_url) else url

    def local(site: str) -> SiteData:
        return SiteData(enforcement.site_cases(site), enforcement.site_now(site))

    async def forward(
        request: Request, url: Any, path_qs: str, body: bytes | None = None
    ) -> tuple[int, Any]:
        """A request sent on to the worker at ``url``, with the caller's token."""
        if request.headers.get(ROUTED):
            # Forwarded here, but the site is not here: the partitions moved in between.
            raise Refusal(503, "the workers are sharing out the sites (a rebalance); try again")
        headers = {ROUTED: "1", "Authorization": request.headers.get("Authorization", "")}
        if body is not None:
            headers["Content-Type"] = "application/json"
        try:
            async with app.http_client.request(
                request.method if body is not None else "GET",
                str(url.with_path("")) + path_qs,
                headers=headers,
                data=body,
                timeout=aiohttp.ClientTimeout(total=FORWARD_SECONDS),
            ) as response:
                return response.status, await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.warning("case API: the worker at %s did not answer: %s", url, exc)
            raise Refusal(503, "the worker that holds the site did not answer; try again") from None

    def sites_of(who: Caller, grids: frozenset[str] | None) -> list[str]:
        """The sites of ``grids`` (None: of every grid the caller sees), in catalogue order."""
        return [
            s.id
            for s in catalogue.sites.values()
            if who.sees(s.grid) and (grids is None or s.grid in grids)
        ]

    async def site_data(request: Request, grids: frozenset[str] | None) -> dict[str, SiteData]:
        """The state of every site of ``grids`` (None: every grid the caller sees), from this
        worker's tables or from the worker that holds it."""
        out: dict[str, SiteData] = {}
        elsewhere: dict[Any, list[str]] = {}
        for site in sites_of(caller(request), grids):
            url = owner(site)
            if url is None:
                out[site] = local(site)
            else:
                elsewhere.setdefault(url, []).append(site)
        # Each worker is asked by grid, not by site: a province's sites do not fit in a URL.
        pairs = [("grid", g) for g in sorted(grids)] if grids is not None else []
        query = urlencode(pairs)
        for url, held in elsewhere.items():
            status, body = await forward(request, url, f"/api/sites/state?{query}")
            if status != 200:
                reason = body.get("error") if isinstance(body, dict) else None
                raise Refusal(503 if status >= 500 else status, str(reason or status))
            for site in held:
                data = body["sites"].get(site)
                if data is None:  # that worker no longer holds it: the partitions moved
                    raise Refusal(503, "the workers are sharing out the sites; try again")
                out[site] = SiteData(
                    SiteCases.model_validate(data["cases"]), datetime.fromisoformat(data["now"])
                )
        return out

    async def site_state(request: Request) -> dict[str, Any]:
        """``GET /api/sites/state?[site=…]*[grid=…]*``: the state of the sites held here, of
        the sites named (each must be here, or 503), else of the grids named (else of every
        grid the caller sees). (``log=1``, which an older worker asks with, is ignored: the
        weekly settlement reads InfluxDB.)"""
        who = caller(request)
        sites: list[str] = []
        grids: set[str] = set()
        for name, value in request.query.items():
            if name == "site":
                sites.append(value)
            elif name == "grid":
                grids.add(value)
            elif name == "log":
                continue
            else:
                raise Refusal(400, f"unknown parameter {shown(name)} (expected: site, grid, log)")
        for grid in grids:
            if grid not in catalogue.grids or not who.sees(grid):
                raise Refusal(403, f"grid {shown(grid)} is not yours")
        for site in sites:
            if site not in catalogue.sites:
                raise Refusal(404, f"no site {shown(site)}")
            if not who.sees(catalogue.sites[site].grid):
                raise Refusal(403, f"site {site} is not in your grids")
            if owner(site) is not None:
                raise Refusal(503, f"site {site} is not held here (a rebalance); try again")
        if not sites:
            sites = [s for s in sites_of(who, frozenset(grids) or None) if owner(s) is None]
        answer: dict[str, Any] = {}
        for site in sites:
            data = local(site)
            answer[site] = {
                "cases": data.cases.model_dump(mode="json"),
                "log": None,  # an older worker reads it
                "now": data.now.isoformat(),
            }
        return {"sites": answer}

    async def list_cases(request: Request) -> dict[str, Any]:
        who = caller(request)
        query = cases_query(request.query.items(), who, catalogue)
        now = clock.now()
        rows: list[dict[str, Any]] = []
        data = await site_data(request, query.grids)
        for site in (catalogue.sites[s] for s in sites_of(who, query.grids)):
            for case in data[site.id].cases.cases.values():
                if query.status is not None and case.status is not query.status:
                    continue
                if now - case.first_seen < query.min_age:
                    continue
                rows.append(case_row(case, site.id, site.name))
        listed = sorted(query.grids) if query.grids is not None else sorted(catalogue.grids)
        return {"grid": query.label, "grids": listed, "cases": rows}

    async def act(request: Request, site: str, case_id: str, action: str) -> OfficerAction:
        who = caller(request)
        params(request.query.items(), ())
        if site not in catalogue.sites:
            raise Refusal(404, f"no site {shown(site)}")
        if who.grids is None:
            raise Refusal(403, "operators watch; officers of the site's grid act")
        site_grid = catalogue.sites[site].grid
        if site_grid not in who.grids:
            raise Refusal(403, f"site {site} is in grid {site_grid}, not yours")
        text, close = "", False
        if action == "findings":
            try:
                raw = await request.read()
            except HTTPRequestEntityTooLarge:
                raise Refusal(
                    413,
                    f"the body is over {MAX_BODY_BYTES} bytes; findings are at most "
                    f"{MAX_FINDINGS_BYTES}",
                ) from None
            text, close = findings_body(raw)
        here = local(site)
        command = OfficerAction(
            site=site,
            case_id=case_id,
            officer=who.who,
            action=action,
            text=text,
            close=close,
            at=here.now,
        )
        case = next((c for c in here.cases.cases.values() if c.id == case_id), None)
        if case is None:
            reason = gone(case_id, enforcement.case_log(site).events)
            if reason is not None:
                raise Refusal(409, reason)
            raise Refusal(404, f"no open case {shown(case_id, 80)} at {site}")
        check_action(case, in_flight.of(site, case_id), command, catalogue)
        # No await between the check and this: a second request sees this one in flight.
        in_flight.add(command)
        try:
            await enforcement.actions.send(
                key=site.encode(), value=command.model_dump_json().encode()
            )
        except Exception as exc:
            in_flight.drop(command)
            log.error("case API: could not publish an action: %s", exc)
            raise Refusal(503, "the action could not be passed on (Kafka); try again") from None
        return command

    @app.page("/api/cases")
    class Cases(View):
        async def get(self, request: Request) -> Response:
            async def answer() -> Response:
                return self.json(await list_cases(request))

            return await guarded(self, answer())

    async def accepted(view: View, request: Request, site: str, case_id: str, action: str):
        async def answer() -> Response:
            caller(request)  # an unknown token goes no further than this worker
            url = owner(site) if site in catalogue.sites else None
            if url is not None:
                try:
                    body = await request.read()
                except HTTPRequestEntityTooLarge:
                    raise Refusal(413, f"the body is over {MAX_BODY_BYTES} bytes") from None
                status, doc = await forward(request, url, request.url.path_qs, body)
                return view.json(doc, status=status)
            done = await act(request, site, case_id, action)
            return view.json(
                {"accepted": action, "case": case_id, "officer": done.officer}, status=202
            )

        return await guarded(view, answer())

    @app.page("/api/sites/{site}/cases/{case_id}/ack")
    class Ack(View):
        async def post(self, request: Request, site: str, case_id: str) -> Response:
            return await accepted(self, request, site, case_id, "acknowledge")

    @app.page("/api/sites/{site}/cases/{case_id}/findings")
    class Findings(View):
        async def post(self, request: Request, site: str, case_id: str) -> Response:
            return await accepted(self, request, site, case_id, "findings")

    async def weekly(request: Request) -> dict[str, Any]:
        """The week's cases counted from InfluxDB's ``case_event`` trail (any week, however
        old, as long as the bucket keeps it); what is open and overdue at its end from the
        tables of the workers that hold the sites."""
        who = caller(request)
        day = week_query(request.query.items())
        sites = sites_of(who, None)
        data = await site_data(request, None)
        open_cases = [
            c
            for s in sites
            for c in data[s].cases.cases.values()
            if c.status is not CaseStatus.CLOSED
        ]
        try:
            counted = await enforcement.writer.case_counts(day, day + WEEK, COUNTED)
        except QueryError as exc:
            log.warning("weekly settlement: %s", exc)
            raise Refusal(503, "the case history (InfluxDB) did not answer; try again") from None
        counts = [(site, day.date(), kind, n) for site, kind, n in counted if site in sites]
        rows = weekly_report([], open_cases, day, catalogue, counts)
        return {
            "week": day.date().isoformat(),
            "grids": [{**r.model_dump(), "settled": r.settled} for r in rows if who.sees(r.grid)],
        }

    @app.page("/api/sites/state")
    class SiteState(View):
        async def get(self, request: Request) -> Response:
            async def answer() -> Response:
                return self.json(await site_state(request))

            return await guarded(self, answer())

    @app.page("/api/reports/weekly")
    class Weekly(View):
        async def get(self, request: Request) -> Response:
            async def answer() -> Response:
                return self.json(await weekly(request))

            return await guarded(self, answer())
