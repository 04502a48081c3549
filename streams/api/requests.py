"""What a caller of the case API may ask, and the refusal when it may not: the query parameters,
the weekly settlement's week, an officer's findings. Pure: each refusal names the parameter or
field and what was expected."""

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
from ecowatch.schema import CaseStatus

if TYPE_CHECKING:  # auth refuses with this module's Refusal
    from ecowatch.streams.api.auth import Caller

MAX_FINDINGS_BYTES = 4096  # one officer's findings, UTF-8
MAX_FINDINGS_PER_CASE = 20  # so a case's record stays far below Kafka's 1 MB per record
MAX_BODY_BYTES = 16 * 1024  # the web server refuses larger request bodies (413)
MAX_MIN_AGE_MINUTES = 10 * 365 * 24 * 60  # ten years
MIN_YEAR, MAX_YEAR = 1970, 9998
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


class Refusal(Exception):
    """An answer other than success: the status and the reason the caller reads."""

    def __init__(self, status: int, reason: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(reason)
        self.status, self.reason, self.headers = status, reason, headers or {}


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


def findings_body(raw: bytes) -> tuple[str, bool]:
    """``{"text": "...", "close": true|false}`` → (text, close)."""
    expected = 'expected a JSON body {"text": "…", "close": true|false}'
    body = json_object(raw, expected, ("text", "close"))
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
