"""Who hears about a notification, and through which apprise URLs. Pure: the environment is
passed in, so tests (and a dry run) decide what is configured.

Rules:

- The audience is the case machine's decision (``ecowatch.streams.judging.cases``): ENTERPRISE → the
  enterprise's contact; OFFICERS → the officers (role officer) of the site's grid; SUPERVISOR
  → the grid's supervisor(s). Routing never widens an audience on its own: an escalation is
  not copied to the enterprise. The enterprise was reminded at REMIND and hears again at
  CLOSED; the officers' message carries a *proposed* measure, an internal step before any
  penalty decision, and a copy would share the officers' idempotency key. If the enterprise
  must hear of an escalation, the case machine should emit its own ENTERPRISE notification.
- The catalogue at send time decides who is in a grid (a roster change reaches the new
  officer). An id in ``Notification.recipients`` that the catalogue no longer places in the
  audience is reported, not silently forgotten.
- Severity: a VIOLATION for the officers that reaches none of them (nobody has a URL) goes to
  the grid's supervisor(s) instead (better a supervisor than nobody for a legal breach). A
  WARNING is not moved up: the gap is reported for the operators to fix.
- URLs come from the environment variable a person's ``notify_env`` names, never from the
  repository. The value may hold several apprise URLs separated by whitespace or commas; a
  comma inside a URL (``mailto://…?to=a@x,b@y``) stays, since a split needs ``scheme://`` next.
- A person with no ``notify_env``, an unset or empty variable, or no URL in it is returned as
  :class:`Unroutable` for the caller to log and record.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from ecowatch.config.catalogue import Catalogue, Officer, OfficerRole
from ecowatch.schema import Audience, Notification, Severity


class RecipientRole(StrEnum):
    ENTERPRISE = "enterprise"
    OFFICER = "officer"
    SUPERVISOR = "supervisor"


@dataclass(frozen=True)
class Route:
    """One person to send to. ``urls`` are secrets: never log or record them."""

    recipient: str  # the officer id, or the enterprise id for its contact
    role: RecipientRole
    urls: tuple[str, ...]
    name: str = ""

    def __repr__(self) -> str:  # keeps the URLs out of logs and tracebacks
        return f"Route({self.recipient!r}, {self.role.value}, {len(self.urls)} url(s))"


@dataclass(frozen=True)
class Unroutable:
    """A person who should hear but cannot be reached: a routing gap to log and record."""

    recipient: str
    role: RecipientRole
    reason: str


@dataclass(frozen=True)
class Routing:
    routes: list[Route] = field(default_factory=list)
    unroutable: list[Unroutable] = field(default_factory=list)


# A separator is whitespace or a comma followed by the next URL's scheme.
_SPLIT = re.compile(r"[\s,]+(?=[A-Za-z][A-Za-z0-9+.-]*://)|\s+")


def parse_urls(value: str) -> tuple[str, ...]:
    """Apprise URLs in an environment value: split on whitespace, and on commas before a
    ``scheme://``; empty pieces dropped."""
    return tuple(u.strip(" ,") for u in _SPLIT.split(value.strip()) if u.strip(" ,"))


def scheme_of(url: str) -> str:
    """The URL's scheme only (``mailto``), the one part of a URL safe to record."""
    scheme, sep, _ = url.partition("://")
    return scheme.lower() if sep and re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", scheme) else "?"


def _urls(notify_env: str | None, environ: Mapping[str, str]) -> tuple[tuple[str, ...], str]:
    """(urls, why none) for a person."""
    if not notify_env:
        return (), "no notify_env in the catalogue"
    value = environ.get(notify_env)
    if value is None:
        return (), f"environment variable {notify_env} is not set"
    urls = parse_urls(value)
    return urls, "" if urls else f"environment variable {notify_env} holds no URL"


def _people(notification: Notification, catalogue: Catalogue, role: RecipientRole) -> list[Officer]:
    grid = catalogue.grids.get(notification.grid)
    if grid is None:
        return []
    wanted = OfficerRole.SUPERVISOR if role is RecipientRole.SUPERVISOR else OfficerRole.OFFICER
    return [o for o in grid.officers if o.role is wanted]


def _route_officers(
    notification: Notification,
    catalogue: Catalogue,
    role: RecipientRole,
    environ: Mapping[str, str],
) -> Routing:
    out = Routing()
    people = _people(notification, catalogue, role)
    if notification.grid not in catalogue.grids:
        out.unroutable.append(
            Unroutable("-", role, f"no grid '{notification.grid}' in the catalogue")
        )
    elif not people:
        out.unroutable.append(
            Unroutable("-", role, f"grid '{notification.grid}' has no {role.value}")
        )
    for person in people:
        urls, why = _urls(person.notify_env, environ)
        if urls:
            out.routes.append(Route(person.id, role, urls, person.name))
        else:
            out.unroutable.append(Unroutable(person.id, role, why))
    known = {p.id for p in people}
    for rid in notification.recipients:
        if rid not in known:
            out.unroutable.append(
                Unroutable(rid, role, f"not a {role.value} of grid '{notification.grid}' now")
            )
    return out


def _route_enterprise(
    notification: Notification, catalogue: Catalogue, environ: Mapping[str, str]
) -> Routing:
    eid = notification.enterprise
    if eid is None:
        return Routing(
            unroutable=[Unroutable("-", RecipientRole.ENTERPRISE, "the site has no enterprise")]
        )
    enterprise = catalogue.enterprises.get(eid)
    if enterprise is None:
        return Routing(
            unroutable=[Unroutable(eid, RecipientRole.ENTERPRISE, "not in the catalogue")]
        )
    if enterprise.contact is None:
        return Routing(unroutable=[Unroutable(eid, RecipientRole.ENTERPRISE, "no contact")])
    urls, why = _urls(enterprise.contact.notify_env, environ)
    if not urls:
        return Routing(unroutable=[Unroutable(eid, RecipientRole.ENTERPRISE, why)])
    return Routing(routes=[Route(eid, RecipientRole.ENTERPRISE, urls, enterprise.contact.name)])


def route(
    notification: Notification,
    catalogue: Catalogue,
    environ: Mapping[str, str] | None = None,
) -> Routing:
    """Who to send ``notification`` to, with their URLs, and who cannot be reached."""
    env = os.environ if environ is None else environ
    if notification.audience is Audience.ENTERPRISE:
        return _route_enterprise(notification, catalogue, env)
    if notification.audience is Audience.SUPERVISOR:
        return _route_officers(notification, catalogue, RecipientRole.SUPERVISOR, env)
    out = _route_officers(notification, catalogue, RecipientRole.OFFICER, env)
    if not out.routes and notification.severity is Severity.VIOLATION:
        up = _route_officers(
            notification.model_copy(update={"recipients": []}),
            catalogue,
            RecipientRole.SUPERVISOR,
            env,
        )
        return Routing(up.routes, out.unroutable + up.unroutable)
    return out
