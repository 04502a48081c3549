"""What a caller of the case API may ask, and the refusal when it may not: the query parameters,
the weekly settlement's week, an officer's findings, the acts on a case. Pure: each refusal names
the parameter or field and what was expected, and carries a stable ``code`` (the JSON's
``"code"``) that a screen words in its own language; the English ``error`` is for people
reading logs and for the command line."""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from ecowatch.clock import CHINA
from ecowatch.config.catalogue import Catalogue
from ecowatch.schema import CaseStatus, Location

if TYPE_CHECKING:  # auth refuses with this module's Refusal
    from ecowatch.streams.api.auth import Caller

MAX_FINDINGS_BYTES = 4096  # one officer's findings, UTF-8 (and a comment, a 督办's note)
MAX_PHOTOS_PER_FINDINGS = 9
# A visit a little ahead of the site's data clock is a phone's clock, or data a few minutes
# late; further ahead, it is not a time the officer was there.
VISIT_AHEAD = timedelta(minutes=15)
MAX_SUPERVISE_AHEAD = timedelta(days=366)
ACTION_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
SHA256_HEX = re.compile(r"[0-9a-f]{64}")
MAX_FINDINGS_PER_CASE = 20  # so a case's record stays far below Kafka's 1 MB per record
MAX_BODY_BYTES = 16 * 1024  # the web server refuses larger request bodies (413)
MAX_MIN_AGE_MINUTES = 10 * 365 * 24 * 60  # ten years
MIN_YEAR, MAX_YEAR = 1970, 9998
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


# A refusal's code when it gives none of its own: one per status. The case API's own codes:
#   invalid_field (400, with ``field``: a body's field it cannot use, e.g. action_id),
#   visit_in_future (400, visited_at), deadline_passed (400, a 督办's deadline not ahead),
#   photo_not_uploaded (400, findings naming a photo not uploaded for the case),
#   photo_empty (400), photo_type (415: not JPEG, PNG or WebP, or bytes that are not it),
#   not_for_enterprise, officers_act, operators_only, not_your_grid (403),
#   no_site, no_case, no_photo (404), not_escalated (409: the officers do not hold the case
#   yet: acknowledge, findings, photos, 督办), already_acknowledged, no_change,
#   findings_full, case_closed, case_dismissed (409). A 改派 to the case's own grid is no_change;
#   to a grid the catalogue does not have, invalid_field (field grid).
STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    409: "conflict",
    413: "too_large",
    415: "unsupported_type",
    500: "internal",
    503: "unavailable",
}


class Refusal(Exception):
    """An answer other than success: the status, the reason the caller reads, a stable
    ``code`` for screens, and for a request's field the field's name."""

    def __init__(
        self,
        status: int,
        reason: str,
        headers: dict[str, str] | None = None,
        code: str | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.status, self.reason, self.headers = status, reason, headers or {}
        self.code = code or STATUS_CODES.get(status, "refused")
        self.field = field

    def body(self) -> dict[str, str]:
        """The JSON answer's fields beside ``error``."""
        return {"code": self.code} | ({"field": self.field} if self.field else {})


def invalid(name: str, message: str, status: int = 400, code: str = "invalid_field") -> Refusal:
    """A request's field that cannot be used: named in the message and in ``field``."""
    return Refusal(status, f"{name}: {message}", code=code, field=name)


def shown(value: str, limit: int = 40) -> str:
    """A value the caller sent, quoted and cut short, for an error message."""
    return repr(value if len(value) <= limit else value[:limit] + "…")


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


def json_object(raw: bytes, expected: str, fields: tuple[str, ...]) -> dict[str, Any]:
    """A request's JSON object of only ``fields``; refused saying what was ``expected``."""
    try:
        body = json.loads(raw)
    except ValueError:  # also bytes that are not UTF-8
        raise Refusal(400, expected) from None
    if not isinstance(body, dict):
        raise Refusal(400, expected)
    unknown = sorted(set(body) - set(fields))
    if unknown:
        raise Refusal(400, f"unknown field(s) {', '.join(shown(k) for k in unknown)}; {expected}")
    return body


def action_id_of(body: dict[str, Any]) -> str | None:
    """The client's ``action_id``, if given: 1-64 characters of A-Z a-z 0-9 _ -."""
    value = body.get("action_id")
    if value is None:
        return None
    if not isinstance(value, str) or not ACTION_ID.fullmatch(value):
        got = shown(value) if isinstance(value, str) else repr(value)[:40]
        raise invalid("action_id", f"expected 1-64 characters of A-Z a-z 0-9 _ - (got {got})")
    return value


def action_id_in(raw: bytes) -> str | None:
    """The ``action_id`` of a body, before the rest of it is checked: a retry of an action
    taken is answered as one even if its other fields would no longer pass (a deadline that
    has passed since). None if the body is not a JSON object (its full check says why)."""
    try:
        body = json.loads(raw) if raw.strip() else None
    except ValueError:
        return None
    return action_id_of(body) if isinstance(body, dict) else None


def words(name: str, value: object, what: str, limit: int = MAX_FINDINGS_BYTES) -> str:
    """A person's words: a non-empty string of at most ``limit`` bytes of UTF-8, new lines and
    tabs but no other control characters."""
    if not isinstance(value, str):
        raise invalid(name, f"expected a string, {what}")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise invalid(name, "not valid Unicode (a lone surrogate)") from None
    if size > limit:
        raise invalid(name, f"{size} bytes (UTF-8); at most {limit} bytes", 413, "too_large")
    if not value.strip():
        raise invalid(name, f"empty; {what}")
    if any(unicodedata.category(c) == "Cc" and c not in "\n\r\t" for c in value):
        raise invalid(name, "control characters other than new lines and tabs")
    return value


def moment(name: str, value: object) -> datetime:
    """A time with its zone (ISO 8601)."""
    expected = "expected a time with its zone, e.g. 2026-11-23T10:00:00+08:00"
    if not isinstance(value, str):
        raise invalid(name, expected)
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise invalid(name, f"{expected} (got {shown(value)})") from None
    if at.tzinfo is None:
        raise invalid(name, f"{expected}; {shown(value)} has no zone")
    if not MIN_YEAR <= at.year <= MAX_YEAR:
        raise invalid(name, f"from {MIN_YEAR} to {MAX_YEAR} (got {value})")
    return at


def _number(name: str, value: object, low: float, high: float) -> float:
    # bool is an int to Python; a GPS fix is not true or false. JSON's NaN/Infinity parse too.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid(name, f"expected a number from {low:g} to {high:g}")
    x = float(value)
    if not (math.isfinite(x) and low <= x <= high):
        raise invalid(name, f"expected a number from {low:g} to {high:g} (got {value!r:.40})")
    return x


def location_of(value: object) -> Location | None:
    """``{"lat", "lon", "accuracy_m"}`` (WGS 84 degrees, metres), or null."""
    if value is None:
        return None
    expected = 'expected {"lat": degrees, "lon": degrees, "accuracy_m": metres} or null'
    if not isinstance(value, dict):
        raise invalid("location", expected)
    unknown = sorted(set(value) - {"lat", "lon", "accuracy_m"})
    if unknown:
        raise invalid("location", f"unknown field(s) {', '.join(map(shown, unknown))}; {expected}")
    return Location(
        lat=_number("location.lat", value.get("lat"), -90, 90),
        lon=_number("location.lon", value.get("lon"), -180, 180),
        accuracy_m=_number("location.accuracy_m", value.get("accuracy_m"), 0, 100_000),
    )


def photos_of(value: object) -> tuple[str, ...]:
    """A list of distinct SHA-256s (lower-case hex), in the officer's order."""
    if value is None:
        return ()
    if not isinstance(value, list) or not all(
        isinstance(v, str) and SHA256_HEX.fullmatch(v) for v in value
    ):
        raise invalid("photos", "expected a list of the photos' SHA-256s (as the upload answered)")
    if len(value) > MAX_PHOTOS_PER_FINDINGS:
        raise invalid("photos", f"{len(value)} photos; at most {MAX_PHOTOS_PER_FINDINGS}")
    return tuple(dict.fromkeys(value))


@dataclass(frozen=True)
class FindingsRequest:
    text: str
    close: bool = False
    photos: tuple[str, ...] = ()
    location: Location | None = None
    visited_at: datetime | None = None
    action_id: str | None = None


def findings_body(raw: bytes, now: datetime | None = None) -> FindingsRequest:
    """``{"text", "close", "photos", "location", "visited_at", "action_id"}`` (all but text
    optional) → the findings; ``now``: the site's data time, which a visit is not after (by
    more than :data:`VISIT_AHEAD`)."""
    expected = (
        'expected a JSON body {"text": "…", "close": true|false, "photos": [sha256…], '
        '"location": {"lat", "lon", "accuracy_m"}|null, "visited_at": "…"|null, "action_id"}'
    )
    fields = ("text", "close", "photos", "location", "visited_at", "action_id")
    body = json_object(raw, expected, fields)
    text = words("text", body.get("text"), "the findings are what the officer found on site")
    close = body.get("close", False)
    if not isinstance(close, bool):
        raise invalid("close", "expected true or false")
    visited = body.get("visited_at")
    visited_at = None if visited is None else moment("visited_at", visited)
    if visited_at is not None and now is not None and visited_at > now + VISIT_AHEAD:
        raise invalid(
            "visited_at",
            f"{visited_at.isoformat()} is after the site's time now ({now.isoformat()})",
            code="visit_in_future",
        )
    return FindingsRequest(
        text,
        close,
        photos_of(body.get("photos")),
        location_of(body.get("location")),
        visited_at,
        action_id_of(body),
    )


def ack_body(raw: bytes) -> str | None:
    """An acknowledgement's body: none, or ``{"action_id"?}``; the action id."""
    if not raw.strip():
        return None
    return action_id_of(json_object(raw, 'expected no body, or {"action_id": "…"}', ("action_id",)))


def comment_body(raw: bytes) -> tuple[str, str | None]:
    """``{"text", "action_id"?}`` → (text, action id)."""
    body = json_object(
        raw, 'expected a JSON body {"text": "…", "action_id"?}', ("text", "action_id")
    )
    return words("text", body.get("text"), "a comment says something"), action_id_of(body)


@dataclass(frozen=True)
class SuperviseRequest:
    note: str
    deadline: datetime
    action_id: str | None


def supervise_body(raw: bytes, now: datetime) -> SuperviseRequest:
    """``{"note", "deadline", "action_id"?}`` → 督办: the deadline after ``now`` (the site's
    data time) and within a year of it."""
    expected = 'expected a JSON body {"note": "…", "deadline": "…", "action_id"?}'
    body = json_object(raw, expected, ("note", "deadline", "action_id"))
    note = words("note", body.get("note"), "督办 says what the officers must do")
    deadline = moment("deadline", body.get("deadline"))
    if deadline <= now:
        raise invalid(
            "deadline",
            f"{deadline.isoformat()} is not after the site's time now ({now.isoformat()})",
            code="deadline_passed",
        )
    if deadline > now + MAX_SUPERVISE_AHEAD:
        raise invalid("deadline", f"at most a year ahead of the site's time ({now.isoformat()})")
    return SuperviseRequest(note, deadline, action_id_of(body))


@dataclass(frozen=True)
class ReassignRequest:
    grid: str
    note: str
    action_id: str | None


def reassign_body(raw: bytes, catalogue: Catalogue) -> ReassignRequest:
    """``{"grid", "note"?, "action_id"?}`` → 改派 to a grid of the catalogue (whether it is
    another grid than the case's is the case's to say: 409 ``no_change``)."""
    expected = 'expected a JSON body {"grid": "…", "note": "…", "action_id"?}'
    body = json_object(raw, expected, ("grid", "note", "action_id"))
    grid = body.get("grid")
    if not isinstance(grid, str) or grid not in catalogue.grids:
        known = ", ".join(sorted(catalogue.grids))
        got = shown(grid) if isinstance(grid, str) else repr(grid)[:40]
        raise invalid("grid", f"expected one of the catalogue's grids, {known} (got {got})")
    note = body.get("note")
    # The desk may send no reason; one given is a person's words like any other.
    said = "" if note is None or note == "" else words("note", note, "why it goes to the grid")
    return ReassignRequest(grid, said, action_id_of(body))
