"""The officers' case API, served by the worker's web server (mobile enforcement).

    GET  /api/cases?status=&grid=&min_age_minutes=   the cases of the caller's grids
    POST /api/sites/{site}/cases/{case_id}/ack       acknowledge
    POST /api/sites/{site}/cases/{case_id}/findings  {"text": "...", "close": true|false}
    GET  /api/reports/weekly?week=YYYY-MM-DD          the weekly settlement of the caller's grids

and the marks (标记) an enterprise declares and the officers review (``mark_views.py``,
``docs/marks.md``).

Every request carries ``Authorization: Bearer <token>``. The tokens file (outside git,
ECOWATCH_OFFICER_TOKENS) holds only the tokens' hashes (``edges/tokens.py``); a token names
one officer, who sees and acts on the cases of every grid the catalogue lists them in (a
supervisor may oversee several), an operator, who sees every grid and acts on none, or an
enterprise, which marks its own sites' data and is refused every case endpoint (403).

The API refuses politely, always in JSON (``{"error": "..."}``): 401 without a known token,
403 outside the caller's grids, 400 for a parameter or body it cannot use (naming it and what
was expected), 413 for findings over 4 KiB, 404 for what does not exist, and 409 for an
action that would change nothing or does not fit the case (already acknowledged, closed, ...).
That last check runs against the case as it stands in the worker's table, with the actions
this process has accepted but the ``enforce`` agent has not yet applied folded on top, so a
second acknowledgement right after the first is refused too. An accepted action goes to the
agent through Kafka (``ecowatch.actions``), which owns the case: 202 Accepted.

Any worker of the group answers for any site (``forwarding.py``): an action on a site held
elsewhere is forwarded to that worker, and the cases list and the weekly settlement read each
site's state where it is held and merge it here (the settlement's counts of the week come from
InfluxDB's case trail, the same whichever worker asks). A list stays one answer for any set of
grids, since a grid's sites are spread over every partition.

The parts: ``auth.py`` (who calls), ``requests.py`` (what they may ask), ``actions.py`` (an
action against the case as it stands), ``forwarding.py`` (which worker holds a site),
``marks.py`` and ``mark_views.py`` (the marks), and here, each endpoint's answer
(:class:`CaseApi`) and the pages that serve it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Any

import faust
from aiohttp.web import HTTPRequestEntityTooLarge
from faust.web import Request, Response, View

from ecowatch.clock import Clock
from ecowatch.config.catalogue import Catalogue
from ecowatch.edges.tokens import ENTERPRISE, OPERATOR
from ecowatch.schema import CaseStatus, OfficerAction
from ecowatch.streams.api.actions import ActionsInFlight, case_row, check_action, gone
from ecowatch.streams.api.auth import Caller, caller_of, officer_grids
from ecowatch.streams.api.forwarding import SiteRouter
from ecowatch.streams.api.mark_views import MarkApi, proof_headers
from ecowatch.streams.api.marks import mark_row
from ecowatch.streams.api.requests import (
    MAX_BODY_BYTES,
    MAX_FINDINGS_BYTES,
    Refusal,
    cases_query,
    findings_body,
    params,
    shown,
    week_query,
)
from ecowatch.streams.judging.report import COUNTED, WEEK, weekly_report
from ecowatch.streams.storage.proofs import ProofStore
from ecowatch.streams.storage.store import QueryError
from ecowatch.streams.worker.enforcement import Enforcement

log = logging.getLogger(__name__)


async def guarded(view: View, answer: Awaitable[Response]) -> Response:
    try:
        return await answer
    except Refusal as exc:
        return view.error(exc.status, exc.reason, headers=exc.headers or None)


class CaseApi:
    """What each endpoint answers; :func:`install_api` puts it on the worker's web server.
    ``tokens``: hash → who (``ecowatch.edges.tokens.load_tokens``); ``proofs``: the store of
    the marks' proofs (the marks' endpoints are :attr:`marks`)."""

    def __init__(
        self,
        app: faust.App,
        enforcement: Enforcement,
        catalogue: Catalogue,
        tokens: dict[str, str],
        clock: Clock,
        proofs: ProofStore,
    ) -> None:
        self.enforcement, self.catalogue, self.tokens, self.clock = (
            enforcement,
            catalogue,
            tokens,
            clock,
        )
        self.grids = officer_grids(catalogue)
        self.sites = SiteRouter(app, enforcement, catalogue)
        self.in_flight = ActionsInFlight()
        self.marks = MarkApi(enforcement, catalogue, self.sites, self.caller, proofs)
        strangers = sorted(
            w
            for w in set(tokens.values())
            if not w.startswith(OPERATOR)
            and w not in self.grids
            and w.removeprefix(ENTERPRISE) not in catalogue.enterprises
        )
        if strangers:
            log.warning(
                "the tokens file names officers or enterprises the catalogue does not know "
                "(refused): %s",
                ", ".join(strangers),
            )

    def caller(self, request: Request) -> Caller:
        return caller_of(
            request.headers.get("Authorization", ""),
            self.tokens,
            self.grids,
            self.catalogue.enterprises,
        )

    def case_caller(self, request: Request) -> Caller:
        """The caller of a case endpoint: an officer or an operator, never an enterprise."""
        who = self.caller(request)
        if who.enterprise is not None:
            raise Refusal(403, "cases are for officers and operators; an enterprise marks its data")
        return who

    async def site_state(self, request: Request) -> dict[str, Any]:
        """``GET /api/sites/state?[site=…]*[grid=…]*``: the state of the sites held here, of
        the sites named (each must be here, or 503), else of the grids named (else of every
        grid the caller sees). (``log=1``, which an older worker asks with, is ignored: the
        weekly settlement reads InfluxDB.)"""
        who, catalogue, router = self.case_caller(request), self.catalogue, self.sites
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
            if router.owner(site) is not None:
                raise Refusal(503, f"site {site} is not held here (a rebalance); try again")
        if not sites:
            held = router.sites_of(who, frozenset(grids) or None)
            sites = [s for s in held if router.owner(s) is None]
        answer: dict[str, Any] = {}
        for site in sites:
            data = router.local(site)
            answer[site] = {
                "cases": data.cases.model_dump(mode="json"),
                "log": None,  # an older worker reads it
                "now": data.now.isoformat(),
            }
        return {"sites": answer}

    async def list_cases(self, request: Request) -> dict[str, Any]:
        who, catalogue = self.case_caller(request), self.catalogue
        query = cases_query(request.query.items(), who, catalogue)
        now = self.clock.now()
        rows: list[dict[str, Any]] = []
        data = await self.sites.site_data(request, who, query.grids)
        for site in (catalogue.sites[s] for s in self.sites.sites_of(who, query.grids)):
            for case in data[site.id].cases.cases.values():
                if query.status is not None and case.status is not query.status:
                    continue
                if now - case.first_seen < query.min_age:
                    continue
                rows.append(case_row(case, site.id, site.name))
        listed = sorted(query.grids) if query.grids is not None else sorted(catalogue.grids)
        return {"grid": query.label, "grids": listed, "cases": rows}

    async def act(self, request: Request, site: str, case_id: str, action: str) -> OfficerAction:
        who, catalogue = self.case_caller(request), self.catalogue
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
        here = self.sites.local(site)
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
            reason = gone(case_id, self.enforcement.case_log(site).events)
            if reason is not None:
                raise Refusal(409, reason)
            raise Refusal(404, f"no open case {shown(case_id, 80)} at {site}")
        check_action(case, self.in_flight.of(site, case_id), command, catalogue)
        # No await between the check and this: a second request sees this one in flight.
        self.in_flight.add(command)
        try:
            await self.enforcement.actions.send(
                key=site.encode(), value=command.model_dump_json().encode()
            )
        except Exception as exc:
            self.in_flight.drop(command)
            log.error("case API: could not publish an action: %s", exc)
            raise Refusal(503, "the action could not be passed on (Kafka); try again") from None
        return command

    async def accepted(
        self, view: View, request: Request, site: str, case_id: str, action: str
    ) -> Response:
        """An action taken here, or forwarded whole to the worker that holds the site."""
        self.case_caller(request)  # an unknown token goes no further than this worker
        url = self.sites.owner(site) if site in self.catalogue.sites else None
        if url is not None:
            try:
                body = await request.read()
            except HTTPRequestEntityTooLarge:
                raise Refusal(413, f"the body is over {MAX_BODY_BYTES} bytes") from None
            status, doc = await self.sites.forward(request, url, request.url.path_qs, body)
            return view.json(doc, status=status)
        done = await self.act(request, site, case_id, action)
        return view.json({"accepted": action, "case": case_id, "officer": done.officer}, status=202)

    async def weekly(self, request: Request) -> dict[str, Any]:
        """The week's cases counted from InfluxDB's ``case_event`` trail (any week, however
        old, as long as the bucket keeps it), its marks from the ``mark`` trail and its sites'
        transmission-validity rates from the ``validity`` days; what is open and overdue at
        its end from the tables of the workers that hold the sites."""
        who = self.case_caller(request)
        day = week_query(request.query.items())
        sites = self.sites.sites_of(who, None)
        data = await self.sites.site_data(request, who, None)
        open_cases = [
            c
            for s in sites
            for c in data[s].cases.cases.values()
            if c.status is not CaseStatus.CLOSED
        ]
        writer = self.enforcement.writer
        try:
            counted = await writer.case_counts(day, day + WEEK, COUNTED)
            marks = await writer.mark_counts(day, day + WEEK)
            validity = await writer.validity_counts(day, day + WEEK)
        except QueryError as exc:
            log.warning("weekly settlement: %s", exc)
            raise Refusal(503, "the case history (InfluxDB) did not answer; try again") from None
        counts = [(site, day.date(), kind, n) for site, kind, n in counted if site in sites]
        marks = [(site, kind, n) for site, kind, n in marks if site in sites]
        rows = weekly_report([], open_cases, day, self.catalogue, counts, marks, validity)
        return {
            "week": day.date().isoformat(),
            "grids": [{**r.model_dump(), "settled": r.settled} for r in rows if who.sees(r.grid)],
        }


def install_api(
    app: faust.App,
    enforcement: Enforcement,
    catalogue: Catalogue,
    tokens: dict[str, str],
    clock: Clock,
    proofs: ProofStore,
) -> CaseApi:
    """The case API's pages on the app's web server, each a thin view over :class:`CaseApi`
    (and the marks' over :class:`MarkApi`). ``proofs``: the store of the marks' proofs
    (ECOWATCH_PROOF_DIR)."""
    store = proofs
    api = CaseApi(app, enforcement, catalogue, tokens, clock, store)
    marks = api.marks

    @app.page("/api/cases")
    class Cases(View):
        async def get(self, request: Request) -> Response:
            async def answer() -> Response:
                return self.json(await api.list_cases(request))

            return await guarded(self, answer())

    @app.page("/api/sites/{site}/cases/{case_id}/ack")
    class Ack(View):
        async def post(self, request: Request, site: str, case_id: str) -> Response:
            return await guarded(self, api.accepted(self, request, site, case_id, "acknowledge"))

    @app.page("/api/sites/{site}/cases/{case_id}/findings")
    class Findings(View):
        async def post(self, request: Request, site: str, case_id: str) -> Response:
            return await guarded(self, api.accepted(self, request, site, case_id, "findings"))

    @app.page("/api/sites/state")
    class SiteState(View):
        async def get(self, request: Request) -> Response:
            async def answer() -> Response:
                return self.json(await api.site_state(request))

            return await guarded(self, answer())

    @app.page("/api/reports/weekly")
    class Weekly(View):
        async def get(self, request: Request) -> Response:
            async def answer() -> Response:
                return self.json(await api.weekly(request))

            return await guarded(self, answer())

    @app.page("/api/sites/{site}/marks")
    class Marks(View):
        async def get(self, request: Request, site: str) -> Response:
            async def answer(_: bytes) -> dict[str, Any]:
                return await marks.list_marks(request, site)

            return await guarded(self, marks.routed(self, request, site, answer, 200))

        async def post(self, request: Request, site: str) -> Response:
            async def answer(raw: bytes) -> dict[str, Any]:
                return {"mark": mark_row(await marks.declare(request, site, raw))}

            return await guarded(self, marks.routed(self, request, site, answer, 202))

    @app.page("/api/sites/{site}/marks/{mark_id}/proofs")
    class MarkProofs(View):
        async def post(self, request: Request, site: str, mark_id: str) -> Response:
            async def answer(raw: bytes) -> dict[str, Any]:
                return {"mark": mark_row(await marks.add_proof(request, site, mark_id, raw))}

            routed = marks.routed(self, request, site, answer, 202, raw_body=True)
            return await guarded(self, routed)

    @app.page("/api/sites/{site}/marks/{mark_id}/review")
    class MarkReview(View):
        async def post(self, request: Request, site: str, mark_id: str) -> Response:
            async def answer(raw: bytes) -> dict[str, Any]:
                return {"mark": mark_row(await marks.review(request, site, mark_id, raw))}

            return await guarded(self, marks.routed(self, request, site, answer, 202))

    @app.page("/api/proofs/{sha256}")
    class ProofDocument(View):
        async def get(self, request: Request, sha256: str) -> Response:
            async def answer() -> Response:
                data, proof = await marks.proof(request, sha256)
                return self.bytes(
                    data, content_type=proof.content_type, headers=proof_headers(proof)
                )

            return await guarded(self, answer())

    return api
