"""Who calls the case API: an officer (their grids, from the catalogue), an operator (every
grid, acting on none), an enterprise (its own sites' marks, 标记, never a case) or a kiosk (an
unattended wall: every grid, read only, so every POST is refused), named by a hashed bearer
token (``ecowatch.edges.tokens``)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from ecowatch.config.catalogue import Catalogue, Site
from ecowatch.edges.tokens import ENTERPRISE, KIOSK, OPERATOR, identify
from ecowatch.streams.api.requests import Refusal


@dataclass(frozen=True)
class Caller:
    who: str  # the officer's id, "operator:<name>" or "enterprise:<id>"
    grids: frozenset[str] | None  # the officer's grids; None: an operator (every grid)
    enterprise: str | None = None  # an enterprise's catalogue id (its grids: none)
    reads_only: bool = False  # a kiosk's: it may read every grid and post nothing

    def sees(self, grid: str) -> bool:
        return self.grids is None or grid in self.grids

    def may_see(self, site: Site) -> bool:
        """Whether the site's marks are the caller's to see: an enterprise's own sites, an
        officer's grids', every site for an operator."""
        if self.enterprise is not None:
            return site.enterprise == self.enterprise
        return self.sees(site.grid)


def officer_grids(catalogue: Catalogue) -> dict[str, frozenset[str]]:
    """officer id → every grid the catalogue lists them in (a supervisor may have several)."""
    grids: dict[str, set[str]] = {}
    for grid in catalogue.grids.values():
        for officer in grid.officers:
            grids.setdefault(officer.id, set()).add(grid.id)
    return {officer: frozenset(g) for officer, g in grids.items()}


UNAUTHORIZED = {"WWW-Authenticate": 'Bearer realm="ecowatch"'}
READS = frozenset({"GET", "HEAD", "OPTIONS"})


def known_holder(who: str, grids: Collection[str], enterprises: Collection[str]) -> bool:
    """Whether the tokens file's ``who`` is someone the API lets in with this catalogue."""
    if who.startswith((OPERATOR, KIOSK)):
        return True
    if who.startswith(ENTERPRISE):
        return who.removeprefix(ENTERPRISE) in enterprises
    return who in grids


def caller_of(
    authorization: str,
    tokens: dict[str, str],
    grids: dict[str, frozenset[str]],
    enterprises: Collection[str] = (),
    method: str = "GET",
) -> Caller:
    """The caller named by an ``Authorization: Bearer <token>`` header (hashed tokens); an
    enterprise's token counts only if ``enterprises`` (the catalogue's) knows it. A kiosk is
    refused here any ``method`` but a read (403), whatever the endpoint: one rule, in one
    place, that no endpoint added later can forget."""
    scheme, _, token = authorization.strip().partition(" ")
    who = identify(tokens, token.strip()) if scheme.lower() == "bearer" else None
    if who is not None and who.startswith(OPERATOR):
        return Caller(who, None)
    if who is not None and who.startswith(KIOSK):
        if method.upper() not in READS:
            raise Refusal(403, "a kiosk (an unattended wall) reads; it cannot act")
        return Caller(who, None, reads_only=True)
    if who is not None and who.startswith(ENTERPRISE):
        enterprise = who.removeprefix(ENTERPRISE)
        if enterprise in enterprises:
            return Caller(who, frozenset(), enterprise)
        who = None
    if who is None or who not in grids:
        raise Refusal(
            401, "a valid officer token is required (Authorization: Bearer …)", UNAUTHORIZED
        )
    return Caller(who, grids[who])
