"""The officers' case API, served by the worker's web server (mobile enforcement).

    GET  /api/cases?status=&grid=&min_age_minutes=    the cases of the caller's grids
    POST /api/sites/{site}/cases/{case_id}/ack        acknowledge (escalated cases)
    POST /api/sites/{site}/cases/{case_id}/findings   {"text", "close", "photos", "location",
                                                      "visited_at"} (现场核查)
    POST /api/sites/{site}/cases/{case_id}/photos     a photo for the findings (raw JPEG/PNG/WebP)
    POST /api/sites/{site}/cases/{case_id}/comment    {"text"} (备注: officers and operators)
    POST /api/sites/{site}/cases/{case_id}/supervise  {"note", "deadline"} (督办: operators)
    POST /api/sites/{site}/cases/{case_id}/reassign   {"grid", "note"} (改派: operators)
    GET  /api/photos/{sha256}?site=                   a case's photo, as an image
    GET  /api/reports/weekly?week=YYYY-MM-DD           the weekly settlement of the caller's grids

Every POST on a case takes the client's ``"action_id"`` (1-64 of A-Z a-z 0-9 _ -): the same id
again on the same case is answered 200 ``{"duplicate": true, ...}`` and nothing is sent again,
whether the first is still on its way to the agent (in flight) or applied (the case keeps the
latest ids in its table row, and the site's case log the one that closed it). Each case row
says what the caller may do on it now (``"can"``), so a screen offers only what is accepted.

and the marks (标记) an enterprise declares and the officers review (``mark_views.py``,
``docs/marks.md``).

Every request carries ``Authorization: Bearer <token>``. The tokens file (outside git,
ECOWATCH_OFFICER_TOKENS) holds only the tokens' hashes (``edges/tokens.py``); a token names
one officer, who sees and acts on the cases of every grid the catalogue lists them in (a
supervisor may oversee several), an operator, who sees every grid and acts on none, or an
enterprise, which marks its own sites' data and is refused every case endpoint (403).

The API refuses politely, always in JSON (``{"error": "...", "code": "..."}``: ``code`` is
stable, for a screen to say it in its own language, and ``field`` names a field it cannot use;
operators comment, supervise (督办) and reassign (改派) but neither acknowledge nor record
findings; a reassigned case is its new grid's, for who sees it and who acts on it): 401 without
a known token,
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

import asyncio
import logging
from collections.abc import Awaitable
from datetime import datetime
from typing import Any
from urllib.parse import quote

import faust
from aiohttp.web import HTTPRequestEntityTooLarge
from faust.web import Request, Response, View

from ecowatch.clock import Clock
from ecowatch.config.catalogue import Catalogue
from ecowatch.schema import CaseStatus, OfficerAction
from ecowatch.streams.api.actions import (
    ActionsInFlight,
    already_done,
    can,
    case_row,
    check_action,
    closed_by,
    gone,
)
from ecowatch.streams.api.alarm_views import install_alarm_api
from ecowatch.streams.api.auth import Caller, caller_of, known_holder, officer_grids
from ecowatch.streams.api.forwarding import SiteRouter
from ecowatch.streams.api.mark_views import MarkApi, proof_headers, read_proof
from ecowatch.streams.api.marks import FILENAME_HEADER, mark_row, proof_name
from ecowatch.streams.api.requests import (
    MAX_BODY_BYTES,
    MAX_FINDINGS_BYTES,
    Refusal,
    ack_body,
    action_id_in,
    cases_query,
    comment_body,
    findings_body,
    params,
    reassign_body,
    shown,
    supervise_body,
    week_query,
)
from ecowatch.streams.judging.cases import Case
from ecowatch.streams.judging.engine import case_context, grid_of
from ecowatch.streams.judging.report import COUNTED, WEEK, weekly_report
from ecowatch.streams.storage.photos import (
    MAX_PHOTO_BYTES,
    PHOTO_TYPES,
    CasePhotos,
    PhotoRecord,
    image_type,
)
from ecowatch.streams.storage.proofs import SHA256, ProofDamaged, ProofStore
from ecowatch.streams.storage.store import QueryError
from ecowatch.streams.worker.enforcement import Enforcement

log = logging.getLogger(__name__)


# Who may do what on a case, by action: officers of the case's grid, operators, or both.
OFFICERS_ACT = frozenset({"acknowledge", "findings", "photos"})
OPERATORS_ACT = frozenset({"supervise", "reassign"})


async def guarded(view: View, answer: Awaitable[Response]) -> Response:
    try:
        return await answer
    except Refusal as exc:
        return view.error(exc.status, exc.reason, headers=exc.headers or None, **exc.body())


def photo_url(site: str, sha256: str) -> str:
    return f"/api/photos/{sha256}?site={quote(site, safe='')}"


def photo_headers(record: PhotoRecord) -> dict[str, str]:
    """How a photo is served: as the image it was checked to be, never sniffed as something
    else, never kept by a browser or a proxy (a site visit's evidence)."""
    return {
        "Content-Disposition": f"inline; filename*=UTF-8''{quote(record.name, safe='')}",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox",
        "Cache-Control": "no-store",
    }


def photo_fits(case: Case) -> None:
    """A photo is for findings: refused while the case takes none (not with the officers)."""
    if case.status not in (CaseStatus.ESCALATED, CaseStatus.ACKNOWLEDGED):
        raise Refusal(
            409,
            f"case {case.id} is {case.status.value}: no officer holds it, so no findings yet",
            code="not_escalated",
        )


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
        self.photos = CasePhotos(proofs)
        strangers = sorted(
            w
            for w in set(tokens.values())
            if not known_holder(w, self.grids, catalogue.enterprises)
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
            request.method,  # a kiosk's token reads only
        )

    def case_caller(self, request: Request) -> Caller:
        """The caller of a case endpoint: an officer or an operator, never an enterprise."""
        who = self.caller(request)
        if who.enterprise is not None:
            raise Refusal(
                403,
                "cases are for officers and operators; an enterprise marks its data",
                code="not_for_enterprise",
            )
        return who

    def case_site(self, who: Caller, site: str, action: str, case: Case | None = None) -> str:
        """The case's grid (``case``: as the table has it; None: the site's grid), if the
        caller may take ``action`` on it (403, 404 otherwise). A reassigned case is its new
        grid's: its site's officers no longer act on it."""
        if site not in self.catalogue.sites:
            raise Refusal(404, f"no site {shown(site)}", code="no_site")
        grid = self.catalogue.sites[site].grid
        if case is not None:
            grid = case_context(self.catalogue, case).grid
        if who.grids is None:
            if action in OFFICERS_ACT:
                raise Refusal(
                    403, "operators watch; officers of the case's grid act", code="officers_act"
                )
            return grid
        if action in OPERATORS_ACT:
            raise Refusal(403, f"operators {action}; officers do not", code="operators_only")
        if grid not in who.grids:
            whose = f"case {case.id}" if case is not None else f"site {site}"
            raise Refusal(403, f"{whose} is in grid {grid}, not yours", code="not_your_grid")
        return grid

    def role_fits(self, who: Caller, site: str, action: str) -> None:
        """The caller's role may take ``action`` (403), on a site of the catalogue (404); whose
        grid the case is comes once the case is read (:meth:`case_site`)."""
        if site not in self.catalogue.sites:
            raise Refusal(404, f"no site {shown(site)}", code="no_site")
        if who.grids is None and action in OFFICERS_ACT:
            raise Refusal(
                403, "operators watch; officers of the case's grid act", code="officers_act"
            )
        if who.grids is not None and action in OPERATORS_ACT:
            raise Refusal(403, f"operators {action}; officers do not", code="operators_only")

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
        wanted: frozenset[str] | None = None  # named sites: whole
        if not sites:
            held = router.sites_of(who, frozenset(grids) or None)
            sites = [s for s in held if router.owner(s) is None]
            wanted = frozenset(grids) or who.grids
            if wanted is not None:  # and the sites with a case reassigned into the grids
                sites += router.reassigned_here(wanted, set(held))
        answer: dict[str, Any] = {}
        for site in sites:
            data = router.in_grids(router.local(site), wanted)
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
        # The sites of the grids, and those with a case reassigned into them (改派), with only
        # the cases the grids handle now.
        data = await self.sites.site_data(request, who, query.grids)
        for site in (s for s in catalogue.sites.values() if s.id in data):
            for case in data[site.id].cases.cases.values():
                if query.status is not None and case.status is not query.status:
                    continue
                if now - case.first_seen < query.min_age:
                    continue
                # A kiosk reads every grid and does nothing: it is offered nothing.
                acts = [] if who.reads_only else can(case, operator=who.grids is None)
                grid = grid_of(catalogue, case)
                rows.append(case_row(case, site.id, site.name, grid, acts))
        listed = sorted(query.grids) if query.grids is not None else sorted(catalogue.grids)
        return {"grid": query.label, "grids": listed, "cases": rows}

    async def act(
        self, request: Request, site: str, case_id: str, action: str
    ) -> tuple[OfficerAction, bool]:
        """The action taken on the case, and whether it is a duplicate (taken before: nothing
        is sent again)."""
        who, catalogue = self.case_caller(request), self.catalogue
        params(request.query.items(), ())
        self.role_fits(who, site, action)
        try:
            raw = await request.read()
        except HTTPRequestEntityTooLarge:
            raise Refusal(
                413,
                f"the body is over {MAX_BODY_BYTES} bytes; findings are at most "
                f"{MAX_FINDINGS_BYTES}",
            ) from None
        here = self.sites.local(site)
        aid = action_id_in(raw)
        case = next((c for c in here.cases.cases.values() if c.id == case_id), None)
        in_flight = self.in_flight.of(site, case_id)
        done = OfficerAction(
            site=site, case_id=case_id, officer=who.who, action=action, at=here.now, action_id=aid
        )
        if case is not None and aid is not None and already_done(case, in_flight, aid):
            # A phone's late retry of an act done before the case was reassigned (改派) away
            # from the caller's grid is answered as done, not refused.
            grids = {catalogue.sites[site].grid, grid_of(catalogue, case)}
            if who.grids is None or grids & who.grids:
                return done, True
        # The case's own grid decides (a reassigned one's); a case not here, its site's.
        self.case_site(who, site, action, case)
        if case is None:
            logged = self.enforcement.case_log(site).events
            if aid is not None and closed_by(case_id, logged, aid):
                return done, True
            reason = gone(case_id, logged)
            if reason is not None:
                raise reason
            raise Refusal(404, f"no open case {shown(case_id, 80)} at {site}", code="no_case")
        if aid is not None and already_done(case, in_flight, aid):
            return done, True
        command = self.command(raw, site, case_id, who, action, here.now, catalogue)
        for sha in command.photos:
            if not self.photos.uploaded_for(site, case_id, sha):
                raise Refusal(
                    400,
                    f"photos: {sha} was not uploaded for case {case_id} (POST it to "
                    f".../cases/{case_id}/photos first)",
                    code="photo_not_uploaded",
                    field="photos",
                )
        check_action(case, in_flight, command, catalogue, who.grids)
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
        return command, False

    @staticmethod
    def command(
        raw: bytes,
        site: str,
        case_id: str,
        who: Caller,
        action: str,
        now: datetime,
        catalogue: Catalogue,
    ) -> OfficerAction:
        """The action a request's body asks for, at the site's data time ``now``."""
        at = {"site": site, "case_id": case_id, "officer": who.who, "action": action, "at": now}
        if action == "findings":
            asked = findings_body(raw, now)
            return OfficerAction(
                **at,
                text=asked.text,
                close=asked.close,
                photos=asked.photos,
                location=asked.location,
                visited_at=asked.visited_at,
                action_id=asked.action_id,
            )
        if action == "comment":
            text, aid = comment_body(raw)
            return OfficerAction(**at, text=text, action_id=aid)
        if action == "supervise":
            pressed = supervise_body(raw, now)
            return OfficerAction(
                **at, note=pressed.note, deadline=pressed.deadline, action_id=pressed.action_id
            )
        if action == "reassign":
            handed = reassign_body(raw, catalogue)
            return OfficerAction(
                **at, grid=handed.grid, note=handed.note, action_id=handed.action_id
            )
        return OfficerAction(**at, action_id=ack_body(raw))

    async def accepted(
        self, view: View, request: Request, site: str, case_id: str, action: str
    ) -> Response:
        """An action taken here, or forwarded whole to the worker that holds the site: 202, or
        200 ``{"duplicate": true, ...}`` for an action id the case has had already."""
        self.case_caller(request)  # an unknown token goes no further than this worker
        url = self.sites.owner(site) if site in self.catalogue.sites else None
        if url is not None:
            try:
                body = await request.read()
            except HTTPRequestEntityTooLarge:
                raise Refusal(413, f"the body is over {MAX_BODY_BYTES} bytes") from None
            status, doc = await self.sites.forward(request, url, request.url.path_qs, body)
            return view.json(doc, status=status)
        done, duplicate = await self.act(request, site, case_id, action)
        answer: dict[str, Any] = {"accepted": action, "case": case_id, "officer": done.officer}
        if done.action_id is not None:
            answer["action_id"] = done.action_id
        if duplicate:
            return view.json({"duplicate": True, **answer}, status=200)
        return view.json(answer, status=202)

    # -- photos (现场核查) --------------------------------------------------------------------

    async def upload_photo(self, view: View, request: Request, site: str, case_id: str) -> Response:
        """``POST .../cases/{case_id}/photos``: a photo for the case's findings, kept here or
        forwarded whole to the worker that holds the site (which knows the case)."""
        who = self.case_caller(request)
        params(request.query.items(), ())
        self.role_fits(who, site, "photos")  # refused before megabytes are read
        url = self.sites.owner(site)
        if url is None:  # held here: the case's grid is known before the bytes are read
            here = self.sites.local(site).cases.cases.values()
            self.case_site(who, site, "photos", next((c for c in here if c.id == case_id), None))
        raw = await read_proof(request, MAX_PHOTO_BYTES)
        if url is not None:
            extra = {
                "Content-Type": request.headers.get("Content-Type", ""),
                FILENAME_HEADER: request.headers.get(FILENAME_HEADER, ""),
            }
            code, doc = await self.sites.forward(request, url, request.url.path_qs, raw, extra)
            return view.json(doc, status=code)
        record = await self.keep_photo(request, who, site, case_id, raw)
        answer = {
            "sha256": record.sha256,
            "size": record.size,
            "content_type": record.content_type,
            "url": photo_url(site, record.sha256),
        }
        return view.json(answer, status=202)

    async def keep_photo(
        self, request: Request, who: Caller, site: str, case_id: str, raw: bytes
    ) -> PhotoRecord:
        """The photo kept for an open case that takes findings; refused with why otherwise."""
        name = proof_name(request.headers.get(FILENAME_HEADER))
        said = (request.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        if said not in PHOTO_TYPES:
            raise Refusal(
                415,
                f"Content-Type: a photo is one of {', '.join(PHOTO_TYPES)} (got {shown(said)})",
                code="photo_type",
            )
        if not raw:
            raise Refusal(400, "the body is empty: send the photo itself", code="photo_empty")
        if image_type(raw) != said:
            raise Refusal(
                415, f"the body is not a {said} image (its bytes say otherwise)", code="photo_type"
            )
        here = self.sites.local(site)
        case = next((c for c in here.cases.cases.values() if c.id == case_id), None)
        if case is None:
            reason = gone(case_id, self.enforcement.case_log(site).events)
            if reason is not None:
                raise reason
            raise Refusal(404, f"no open case {shown(case_id, 80)} at {site}", code="no_case")
        photo_fits(case)
        try:
            return await asyncio.to_thread(
                self.photos.put, site, case_id, raw, name, who.who, here.now
            )
        except OSError as exc:
            log.error("case API: the proof store could not keep a photo: %s", exc)
            raise Refusal(503, "the photo could not be kept (the proof store); try again") from None

    async def photo(self, request: Request, sha256: str) -> tuple[bytes, PhotoRecord]:
        """``GET /api/photos/{sha256}?site=``: a photo uploaded for a case of the site, to a
        caller who may see the site's cases (the store is shared: no forwarding)."""
        who = self.case_caller(request)
        given = params(request.query.items(), ("site",))
        if not SHA256.fullmatch(sha256):
            raise Refusal(
                404, f"no photo {shown(sha256, 70)}: expected a SHA-256 in hex", code="no_photo"
            )
        if "site" not in given:
            raise Refusal(400, "site: missing; the site whose case holds the photo", field="site")
        site = given["site"]
        if site not in self.catalogue.sites:
            raise Refusal(404, f"no site {shown(site)}", code="no_site")
        if not who.sees(self.catalogue.sites[site].grid):
            raise Refusal(403, f"site {site} is not in your grids", code="not_your_grid")
        record = await asyncio.to_thread(self.photos.record, site, sha256)
        if record is None:
            raise Refusal(404, f"no case of {site} holds the photo {sha256}", code="no_photo")
        try:
            data = await asyncio.to_thread(self.photos.get, sha256)
        except ProofDamaged:
            raise Refusal(500, f"the stored photo {sha256} is damaged; it is not served") from None
        if data is None or image_type(data) is None:
            log.error("case API: photo %s of %s is recorded but not in the store", sha256, site)
            raise Refusal(404, f"the proof store has no photo {sha256}", code="no_photo")
        return data, record

    async def weekly(self, request: Request) -> dict[str, Any]:
        """The week's cases counted from InfluxDB's ``case_event`` trail (any week, however
        old, as long as the bucket keeps it), its marks from the ``mark`` trail and its sites'
        transmission-validity rates from the ``validity`` days; what is open and overdue at
        its end from the tables of the workers that hold the sites."""
        who = self.case_caller(request)
        day = week_query(request.query.items())
        sites = self.sites.sites_of(who, None)
        data = await self.sites.site_data(request, who, None)
        open_cases = [  # with those reassigned into the caller's grids (改派)
            c
            for got in data.values()
            for c in got.cases.cases.values()
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
        week = day.date()
        counts = [(s, week, kind, n) for s, grid, kind, n in counted if not grid and s in sites]
        # A reassigned case's steps (改派), in the grid that held it then.
        by_grid = [(grid, week, kind, n) for _, grid, kind, n in counted if grid and who.sees(grid)]
        marks = [(site, kind, n) for site, kind, n in marks if site in sites]
        rows = weekly_report(
            [], open_cases, day, self.catalogue, counts, marks, validity, grid_counts=by_grid
        )
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

    @app.page("/api/sites/{site}/cases/{case_id}/comment")
    class CaseComment(View):
        async def post(self, request: Request, site: str, case_id: str) -> Response:
            return await guarded(self, api.accepted(self, request, site, case_id, "comment"))

    @app.page("/api/sites/{site}/cases/{case_id}/supervise")
    class Supervise(View):
        async def post(self, request: Request, site: str, case_id: str) -> Response:
            return await guarded(self, api.accepted(self, request, site, case_id, "supervise"))

    @app.page("/api/sites/{site}/cases/{case_id}/reassign")
    class Reassign(View):
        async def post(self, request: Request, site: str, case_id: str) -> Response:
            return await guarded(self, api.accepted(self, request, site, case_id, "reassign"))

    @app.page("/api/sites/{site}/cases/{case_id}/photos")
    class CasePhotoUpload(View):
        async def post(self, request: Request, site: str, case_id: str) -> Response:
            return await guarded(self, api.upload_photo(self, request, site, case_id))

    @app.page("/api/photos/{sha256}")
    class CasePhoto(View):
        async def get(self, request: Request, sha256: str) -> Response:
            async def answer() -> Response:
                data, record = await api.photo(request, sha256)
                kind = image_type(data) or record.content_type
                return self.bytes(data, content_type=kind, headers=photo_headers(record))

            return await guarded(self, answer())

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

    install_alarm_api(app, api)  # 消警 (alarm_views.py)
    return api
