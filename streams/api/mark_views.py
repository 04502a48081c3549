"""The marks' endpoints (标记) of the case API (``docs/marks.md``).

    POST /api/sites/{site}/marks                    the site's enterprise declares a mark
    POST /api/sites/{site}/marks/{mark_id}/proofs   …adds a proof (the raw document)
    POST /api/sites/{site}/marks/{mark_id}/review   an officer of the site's grid decides
    GET  /api/sites/{site}/marks                    the site's marks
    GET  /api/proofs/{sha256}?site=                 a proof's document

Like the cases' actions, each request about a site is answered by the worker that holds it
(forwarded whole), checked against the marks of its ``site-rules`` table with the changes this
process sent but the ``enforce`` agent has not applied yet folded on top, and a change goes to
the agent through Kafka (``ecowatch.marks``, a :class:`~ecowatch.schema.MarkEvent`): 202. The
time of a change is the site's data clock, as for the officers' actions.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from aiohttp.web import HTTPRequestEntityTooLarge
from faust.web import Request, Response, View

from ecowatch.config.catalogue import Catalogue, Site
from ecowatch.schema import Mark, MarkEvent, MarkEventKind, Proof
from ecowatch.streams.api.auth import Caller
from ecowatch.streams.api.forwarding import SiteRouter
from ecowatch.streams.api.marks import (
    FILENAME_HEADER,
    MarksInFlight,
    mark_body,
    mark_row,
    marks_now,
    proof_name,
    proof_type,
    refusal_of,
    review_body,
)
from ecowatch.streams.api.requests import MAX_BODY_BYTES, Refusal, params, shown
from ecowatch.streams.judging import marks as marking
from ecowatch.streams.storage.proofs import SHA256, ProofDamaged, ProofStore
from ecowatch.streams.worker.enforcement import Enforcement

log = logging.getLogger(__name__)

READ_CHUNK = 64 * 1024


class MarkApi:
    """What each marks endpoint answers; ``install_api`` routes them."""

    def __init__(
        self,
        enforcement: Enforcement,
        catalogue: Catalogue,
        sites: SiteRouter,
        caller: Callable[[Request], Caller],
        proofs: ProofStore,
    ) -> None:
        self.enforcement, self.catalogue, self.sites = enforcement, catalogue, sites
        self.caller, self.proofs = caller, proofs
        self.in_flight = MarksInFlight()
        # The policy the judge holds marks to: the API refuses what the agent would not excuse.
        self.policy = enforcement.judge.ctx.marks

    # -- who may ---------------------------------------------------------------------------

    def site_of(self, who: Caller, site: str) -> Site:
        """The site, if the caller may see its marks."""
        found = self.catalogue.sites.get(site)
        if found is None:
            raise Refusal(404, f"no site {shown(site)}")
        if not who.may_see(found):
            raise Refusal(403, f"site {site} is not yours")
        return found

    def enterprise_site(self, who: Caller, site: str) -> Site:
        found = self.site_of(who, site)
        if who.enterprise is None:
            owner = found.enterprise or "no enterprise"
            raise Refusal(403, f"marks are declared and proven by the site's enterprise ({owner})")
        return found

    def officer_site(self, who: Caller, site: str) -> Site:
        found = self.site_of(who, site)
        if who.enterprise is not None:
            raise Refusal(403, f"officers of grid {found.grid} review marks, not the enterprise")
        if who.grids is None:
            raise Refusal(403, "operators watch; officers of the site's grid review marks")
        return found

    # -- the marks as they stand -----------------------------------------------------------

    def marks(self, site: str) -> dict[str, Mark]:
        state = self.enforcement.site_rules(site)
        return marks_now(state.marks if state else {}, self.in_flight.of(site))

    def mark(self, site: str, mark_id: str) -> Mark:
        found = self.marks(site).get(mark_id)
        if found is None:
            raise Refusal(404, f"no mark {shown(mark_id, 80)} at {site}")
        return found

    async def publish(self, event: MarkEvent) -> None:
        # Called with no await since the check: a second request sees this one in flight.
        self.in_flight.add(event)
        try:
            await self.enforcement.marks.send(
                key=event.site.encode(), value=event.model_dump_json().encode()
            )
        except Exception as exc:
            self.in_flight.drop(event)
            log.error("marks API: could not publish a mark event: %s", exc)
            raise Refusal(503, "the mark could not be passed on (Kafka); try again") from None

    # -- the endpoints, on the worker that holds the site ----------------------------------

    async def declare(self, request: Request, site: str, raw: bytes) -> Mark:
        who = self.caller(request)
        found = self.enterprise_site(who, site)
        params(request.query.items(), ())
        asked = mark_body(raw)
        now = self.enforcement.site_now(site)
        marks = self.marks(site)
        try:
            mark = marking.declare(
                marks.values(),
                found,
                device=asked.device,
                type_=asked.type,
                start=asked.start,
                end=asked.end,
                reason=asked.reason,
                by=who.who,
                now=now,
                policy=self.policy,
            )
        except marking.MarkRefused as exc:
            raise refusal_of(exc) from None
        if mark.id in marks:  # its id counts the site's marks: one pruned meanwhile reuses one
            raise Refusal(
                409,
                f"mark {mark.id} exists already (an id made twice); start the period a minute "
                "earlier or later",
            )
        await self.publish(MarkEvent(kind=MarkEventKind.DECLARED, mark=mark, actor=who.who, at=now))
        return mark

    async def add_proof(self, request: Request, site: str, mark_id: str, raw: bytes) -> Mark:
        who = self.caller(request)
        self.enterprise_site(who, site)
        params(request.query.items(), ())
        name = proof_name(request.headers.get(FILENAME_HEADER))
        content_type = proof_type(request.headers.get("Content-Type"))
        if not raw:
            raise Refusal(400, "the body is empty: send the document itself")
        sha256 = await asyncio.to_thread(lambda: hashlib.sha256(raw).hexdigest())
        now = self.enforcement.site_now(site)
        proof = Proof(
            sha256=sha256, name=name, content_type=content_type, size=len(raw), at=now, by=who.who
        )
        try:  # refused before the document is kept, when it can be told now
            marking.add_proof(self.mark(site, mark_id), proof)
        except marking.MarkRefused as exc:
            raise refusal_of(exc) from None
        try:
            await asyncio.to_thread(self.proofs.put, raw)  # fsync: off the event loop
        except OSError as exc:
            log.error("marks API: the proof store could not keep a document: %s", exc)
            raise Refusal(503, "the proof could not be kept (the proof store); try again") from None
        current = self.mark(site, mark_id)
        try:  # again: the mark may have moved on while the document was written
            mark = marking.add_proof(current, proof)
        except marking.MarkRefused as exc:
            raise refusal_of(exc) from None
        if mark is current:  # the same document again: nothing to tell the agent
            return mark
        kind = MarkEventKind.PROOF_ADDED
        await self.publish(MarkEvent(kind=kind, mark=mark, actor=who.who, at=now))
        return mark

    async def review(self, request: Request, site: str, mark_id: str, raw: bytes) -> Mark:
        who = self.caller(request)
        self.officer_site(who, site)
        params(request.query.items(), ())
        accept, reason = review_body(raw)
        now = self.enforcement.site_now(site)
        try:
            mark = marking.review(
                self.mark(site, mark_id), accept=accept, reason=reason, officer=who.who, now=now
            )
        except marking.MarkRefused as exc:
            raise refusal_of(exc) from None
        kind = MarkEventKind.ACCEPTED if accept else MarkEventKind.REJECTED
        await self.publish(MarkEvent(kind=kind, mark=mark, actor=who.who, at=now))
        return mark

    async def list_marks(self, request: Request, site: str) -> dict[str, Any]:
        who = self.caller(request)
        self.site_of(who, site)
        params(request.query.items(), ())
        # The enterprise's, as they stand, and the devices' own (a record: no review).
        state = self.enforcement.site_rules(site)
        own = list(state.device_marks.values()) if state else []
        rows = sorted([*self.marks(site).values(), *own], key=lambda m: (m.start, m.id))
        return {
            "site": site,
            "now": self.enforcement.site_now(site).isoformat(),
            "marks": [mark_row(m) for m in rows],
        }

    # -- forwarding ------------------------------------------------------------------------

    async def routed(
        self,
        view: View,
        request: Request,
        site: str,
        answer: Callable[[bytes], Awaitable[dict[str, Any]]],
        status: int,
        raw_body: bool = False,
    ) -> Response:
        """``answer`` here, or the request forwarded whole to the worker that holds the site."""
        who = self.caller(request)  # an unknown token goes no further than this worker
        if raw_body:  # refused before megabytes are read that only the site's enterprise sends
            self.enterprise_site(who, site)
        url = self.sites.owner(site) if site in self.catalogue.sites else None
        body = b""
        if request.method == "POST":
            body = (
                await read_proof(request, self.proofs.max_bytes)
                if raw_body
                else await read_json(request)
            )
        if url is None:
            return view.json(await answer(body), status=status)
        extra: dict[str, str] = {}
        if raw_body:
            extra = {
                "Content-Type": request.headers.get("Content-Type", ""),
                FILENAME_HEADER: request.headers.get(FILENAME_HEADER, ""),
            }
        code, doc = await self.sites.forward(
            request, url, request.url.path_qs, body if request.method == "POST" else None, extra
        )
        return view.json(doc, status=code)

    async def proof(self, request: Request, sha256: str) -> tuple[bytes, Proof]:
        """A proof's document, to a caller who may see the site whose mark holds it (the site
        is named: a mark's ``proofs[].url`` says it)."""
        who = self.caller(request)
        given = params(request.query.items(), ("site",))
        if not SHA256.fullmatch(sha256):
            raise Refusal(404, f"no proof {shown(sha256, 70)}: expected a SHA-256 in hex")
        if "site" not in given:
            raise Refusal(400, "site: missing; the site whose mark holds the proof")
        site = given["site"]
        self.site_of(who, site)
        url = self.sites.owner(site)
        if url is None:
            marks = list(self.marks(site).values())
        else:
            path = f"/api/sites/{quote(site, safe='')}/marks"
            code, doc = await self.sites.forward(request, url, path)
            if code != 200 or not isinstance(doc, dict):
                reason = doc.get("error") if isinstance(doc, dict) else None
                raise Refusal(503 if code >= 500 else code, str(reason or code))
            marks = [Mark.model_validate(_without_urls(m)) for m in doc["marks"]]
        proof = next((p for m in marks for p in m.proofs if p.sha256 == sha256), None)
        if proof is None:
            raise Refusal(404, f"no mark of {site} holds the proof {sha256}")
        try:
            data = await asyncio.to_thread(self.proofs.get, sha256)
        except ProofDamaged:
            raise Refusal(500, f"the stored proof {sha256} is damaged; it is not served") from None
        if data is None:
            log.error(
                "marks API: proof %s is in a mark of %s but not in %s",
                sha256,
                site,
                self.proofs.folder,
            )
            raise Refusal(404, f"the proof store has no document {sha256}")
        return data, proof


def proof_headers(proof: Proof) -> dict[str, str]:
    """How a proof is served: as a download that the browser neither sniffs nor runs (an
    enterprise's HTML or SVG is not a page of this origin)."""
    return {
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(proof.name, safe='')}",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox",
        "Cache-Control": "private, max-age=86400",
    }


def _without_urls(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "proofs": [{k: v for k, v in p.items() if k != "url"} for p in row["proofs"]]}


async def read_json(request: Request) -> bytes:
    try:
        return await request.read()
    except HTTPRequestEntityTooLarge:
        raise Refusal(413, f"the body is over {MAX_BODY_BYTES} bytes") from None


async def read_proof(request: Request, limit: int) -> bytes:
    """The raw document, at most ``limit`` bytes. Read from the stream: ``request.read()``
    stops at the web server's cap for JSON bodies (16 KiB)."""
    too_large = Refusal(413, f"a proof is at most {limit} bytes ({limit // (1024 * 1024)} MiB)")
    length = request.headers.get("Content-Length", "")
    if length.isdigit() and int(length) > limit:
        raise too_large  # before a byte of it is read
    chunks: list[bytes] = []
    size = 0
    # aiohttp's request, under Faust's abstract one (which has no stream).
    content = request.content  # type: ignore[attr-defined]
    while chunk := await content.read(READ_CHUNK):
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)
