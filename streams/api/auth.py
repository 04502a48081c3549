"""Who calls the case API: an officer (their grids, from the catalogue) or an operator (every
grid, acting on none), named by a hashed bearer token (``ecowatch.edges.tokens``)."""

from __future__ import annotations

from dataclasses import dataclass

from ecowatch.config.catalogue import Catalogue
from ecowatch.edges.tokens import OPERATOR, identify
from ecowatch.streams.api.requests import Refusal


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
