"""Which worker holds a site, and asking it.

A site's tables live on the worker that holds its partition (``app.router.key_store``). An
action on a site held elsewhere is forwarded to that worker whole (the caller's token and
body), so its check and its in-flight actions are the owner's; lists read each site's state
where it is held (``GET /api/sites/state``, with the caller's token). A forwarded request is
marked (:data:`ROUTED`) and never forwarded again: if its site moved meanwhile, the answer is
503 and the caller tries again. While the partitions move the API answers 503.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import aiohttp
import faust
from faust.web import Request

from ecowatch.config.catalogue import Catalogue
from ecowatch.streams.api.auth import Caller
from ecowatch.streams.api.requests import Refusal
from ecowatch.streams.judging.engine import SiteCases, grid_of
from ecowatch.streams.worker.enforcement import Enforcement

log = logging.getLogger(__name__)

FORWARD_SECONDS = 10.0  # a request forwarded to the worker that holds a site
ROUTED = "X-Ecowatch-Routed"  # set on a forwarded request: it is never forwarded again
REBALANCING = "the workers are sharing out the sites (a rebalance); try again"


@dataclass(frozen=True)
class SiteData:
    """A site's state as the worker that holds it has it."""

    cases: SiteCases
    now: datetime  # the site's data clock


def same_node(a: Any, b: Any) -> bool:
    return (a.host, a.port) == (b.host, b.port)


class SiteRouter:
    """The sites' states and actions, wherever the worker that holds each one is."""

    def __init__(self, app: faust.App, enforcement: Enforcement, catalogue: Catalogue) -> None:
        self.app, self.enforcement, self.catalogue = app, enforcement, catalogue

    def settled(self) -> None:
        app = self.app
        if app.rebalancing or not app.tables.recovery.completed.is_set():
            raise Refusal(503, REBALANCING + " shortly")

    def owner(self, site: str) -> Any | None:
        """The URL of the worker that holds the site's partition; None: this one."""
        self.settled()
        table = self.enforcement.cases_table.name
        try:
            url = self.app.router.key_store(table, site.encode())
        except KeyError:
            raise Refusal(503, f"no worker holds site {site} right now; try again") from None
        return None if same_node(url, self.app.conf.canonical_url) else url

    def local(self, site: str) -> SiteData:
        return SiteData(self.enforcement.site_cases(site), self.enforcement.site_now(site))

    def sites_of(self, who: Caller, grids: frozenset[str] | None) -> list[str]:
        """The sites of ``grids`` (None: of every grid the caller sees), in catalogue order."""
        return [
            s.id
            for s in self.catalogue.sites.values()
            if who.sees(s.grid) and (grids is None or s.grid in grids)
        ]

    def in_grids(self, data: SiteData, grids: frozenset[str] | None) -> SiteData:
        """The site's state with only the cases of ``grids`` (None: all): a case reassigned
        (改派) away is no longer its site's grid's, one reassigned in is the new grid's."""
        if grids is None:
            return data
        cases = data.cases.cases
        kept = {k: c for k, c in cases.items() if grid_of(self.catalogue, c) in grids}
        if len(kept) == len(cases):
            return data
        return SiteData(data.cases.model_copy(update={"cases": kept}), data.now)

    def reassigned_here(self, grids: frozenset[str], skip: set[str]) -> list[str]:
        """The sites held here, but for ``skip`` (those read anyway), with a case reassigned
        into ``grids``. It reads every such site's cases (a table row, parsed), so a listing
        costs in proportion to the sites this worker holds, not to the grids asked: fine for a
        city's hundreds; an index of reassigned cases by grid would be the next step."""
        found = []
        for site in self.catalogue.sites:
            if site in skip or self.owner(site) is not None:
                continue
            if self.in_grids(self.local(site), grids).cases.cases:
                found.append(site)
        return found

    async def forward(
        self,
        request: Request,
        url: Any,
        path_qs: str,
        body: bytes | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> tuple[int, Any]:
        """A request sent on to the worker at ``url``, with the caller's token (and ``extra``
        headers: a proof's Content-Type and file name)."""
        if request.headers.get(ROUTED):
            # Forwarded here, but the site is not here: the partitions moved in between.
            raise Refusal(503, REBALANCING)
        headers = {ROUTED: "1", "Authorization": request.headers.get("Authorization", "")}
        if body is not None:
            headers["Content-Type"] = "application/json"
        headers.update(extra or {})
        try:
            async with self.app.http_client.request(
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

    async def site_data(
        self, request: Request, who: Caller, grids: frozenset[str] | None
    ) -> dict[str, SiteData]:
        """The state of every site of ``grids`` (None: every grid the caller sees), and of each
        site of another grid with a case reassigned into them, from this worker's tables or
        from the worker that holds it; each with only the cases of those grids."""
        out: dict[str, SiteData] = {}
        elsewhere: dict[Any, list[str]] = {}
        wanted = grids if grids is not None else who.grids  # None: every grid
        asked = self.sites_of(who, grids)
        for site in asked:
            url = self.owner(site)
            if url is None:
                out[site] = self.in_grids(self.local(site), wanted)
            else:
                elsewhere.setdefault(url, []).append(site)
        if wanted is not None:
            # Cases reassigned into the grids from sites of other grids (改派): any worker may
            # hold one, so every worker that holds a site is asked.
            for site in self.reassigned_here(wanted, set(asked)):
                out[site] = self.in_grids(self.local(site), wanted)
            for site in self.catalogue.sites:
                if site not in out and (url := self.owner(site)) is not None:
                    elsewhere.setdefault(url, [])
        # Each worker is asked by grid, not by site: a province's sites do not fit in a URL.
        pairs = [("grid", g) for g in sorted(grids)] if grids is not None else []
        query = urlencode(pairs)
        for url, held in elsewhere.items():
            status, body = await self.forward(request, url, f"/api/sites/state?{query}")
            if status != 200:
                reason = body.get("error") if isinstance(body, dict) else None
                raise Refusal(503 if status >= 500 else status, str(reason or status))
            for site in held:
                if site not in body["sites"]:  # that worker no longer holds it: they moved
                    raise Refusal(503, "the workers are sharing out the sites; try again")
            for site, data in body["sites"].items():  # the held ones and those reassigned in
                if site not in self.catalogue.sites:
                    continue
                got = SiteData(
                    SiteCases.model_validate(data["cases"]), datetime.fromisoformat(data["now"])
                )
                out[site] = self.in_grids(got, wanted)
        return out
