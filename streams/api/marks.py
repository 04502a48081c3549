"""What an enterprise or an officer may ask of a site's marks (标记), and the marks as they stand:
the worker's table with the changes this process accepted but the ``enforce`` agent has not
applied yet folded on top (a Kafka round trip), so a second declaration of the same period
right after the first is refused too. Pure: each refusal names the field or header and why."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, unquote

from ecowatch.schema import Mark, MarkEvent, MarkStatus, MarkType
from ecowatch.streams.api.actions import InFlight
from ecowatch.streams.api.requests import MAX_YEAR, MIN_YEAR, Refusal, json_object, shown
from ecowatch.streams.judging.marks import MarkRefused

MAX_REASON_CHARS = 2000  # as the Mark keeps it
MAX_NAME_CHARS = 200  # a proof's file name, as the Proof keeps it
MAX_CONTENT_TYPE_CHARS = 100
FILENAME_HEADER = "X-Filename"
_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*")


@dataclass(frozen=True)
class MarkRequest:
    device: str | None  # None: every device of the site
    type: MarkType
    start: datetime
    end: datetime
    reason: str


def _text(name: str, value: object, limit: int) -> str:
    if not isinstance(value, str):
        raise Refusal(400, f"{name}: expected a string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise Refusal(400, f"{name}: not valid Unicode (a lone surrogate)") from None
    if len(value) > limit:
        raise Refusal(413, f"{name}: {len(value)} characters; at most {limit}")
    if any(unicodedata.category(c) == "Cc" and c not in "\n\r\t" for c in value):
        raise Refusal(400, f"{name}: control characters other than new lines and tabs")
    return value


def _time(name: str, value: object) -> datetime:
    expected = "expected a time with its zone, e.g. 2026-11-23T10:00:00+08:00"
    if not isinstance(value, str):
        raise Refusal(400, f"{name}: {expected}")
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise Refusal(400, f"{name}: {expected} (got {shown(value)})") from None
    if at.tzinfo is None:
        raise Refusal(400, f"{name}: {expected}; {shown(value)} has no zone")
    if not MIN_YEAR <= at.year <= MAX_YEAR:
        raise Refusal(400, f"{name}: from {MIN_YEAR} to {MAX_YEAR} (got {value})")
    return at


def mark_body(raw: bytes) -> MarkRequest:
    """``{"device"?, "type", "start", "end", "reason"}`` → what the enterprise asks to mark."""
    expected = (
        'expected a JSON body {"device": "…" (left out: the whole site), "type": "…", '
        '"start": "…", "end": "…", "reason": "…"}'
    )
    body = json_object(raw, expected, ("device", "type", "start", "end", "reason"))
    device = body.get("device")
    if device is not None and (not isinstance(device, str) or not device):
        raise Refusal(400, "device: expected a device id of the site, or none for the whole site")
    raw_type = body.get("type")
    try:
        type_ = MarkType(raw_type)
    except ValueError:
        known = ", ".join(t.value for t in MarkType)
        got = shown(raw_type) if isinstance(raw_type, str) else repr(raw_type)[:40]
        raise Refusal(400, f"type: expected one of {known} (got {got})") from None
    # The reason's emptiness is declare's to refuse, with the rest of the marking rules.
    reason = _text("reason", body.get("reason", ""), MAX_REASON_CHARS)
    return MarkRequest(
        device, type_, _time("start", body.get("start")), _time("end", body.get("end")), reason
    )


def review_body(raw: bytes) -> tuple[bool, str]:
    """``{"accept": true|false, "reason": "…"}`` → (accept, reason); review wants a reason for
    a rejection."""
    expected = 'expected a JSON body {"accept": true|false, "reason": "…"}'
    body = json_object(raw, expected, ("accept", "reason"))
    accept = body.get("accept")
    if not isinstance(accept, bool):
        raise Refusal(400, f"accept: expected true or false; {expected}")
    return accept, _text("reason", body.get("reason", ""), MAX_REASON_CHARS)


def proof_name(header: str | None) -> str:
    """The document's file name from ``X-Filename`` (percent-encoded UTF-8)."""
    expected = f"{FILENAME_HEADER}: expected the file name, percent-encoded UTF-8"
    if header is None or not header.strip():
        raise Refusal(400, f"{expected}, e.g. {quote('停炉通知.pdf')} (missing)")
    try:
        name = unquote(header.strip(), errors="strict")
    except UnicodeDecodeError:
        raise Refusal(400, f"{expected}: not UTF-8 once decoded") from None
    name = _text(FILENAME_HEADER, name, MAX_NAME_CHARS).strip()
    if not name or any(c in name for c in "/\\\n\r\t"):
        raise Refusal(400, f"{expected}: a name, without folders (got {shown(name)})")
    return name


def proof_type(header: str | None) -> str:
    """The document's media type from ``Content-Type`` (without parameters: a proof is kept as
    sent and served with its type)."""
    media = (header or "").split(";", 1)[0].strip().lower()
    if not media:
        raise Refusal(400, "Content-Type: missing; the document's type, e.g. application/pdf")
    if len(media) > MAX_CONTENT_TYPE_CHARS or not _MEDIA_TYPE.fullmatch(media):
        raise Refusal(
            400, f"Content-Type: expected a media type like image/jpeg (got {shown(media)})"
        )
    return media


def refusal_of(exc: MarkRefused) -> Refusal:
    """A mark refused by the marking rules: 409 when it clashes with the marks as they stand
    (already reviewed, an overlapping mark), else 400 for the field the caller sent."""
    conflict = exc.field == "status" or exc.message.startswith("overlaps")
    return Refusal(409 if conflict else 400, f"{exc.field}: {exc.message}")


# -- the marks as they stand -------------------------------------------------------------------


class MarksInFlight(InFlight[MarkEvent]):
    """Mark events, by site: folded over the table's marks (:func:`marks_now`)."""

    def key_of(self, item: MarkEvent) -> Hashable:
        return (item.site,)


def _stage(mark: Mark) -> tuple[bool, int]:
    return mark.status is not MarkStatus.PENDING, len(mark.proofs)


def marks_now(table: Mapping[str, Mark], in_flight: Iterable[MarkEvent]) -> dict[str, Mark]:
    """The site's marks by id: the table's, with each event in flight applied in order (an
    event carries the mark as it stands after it)."""
    marks = dict(table)
    for event in in_flight:
        held = marks.get(event.mark.id)
        # A mark only moves on (more proof, then reviewed): an event the table has already
        # gone past (applied, and changed since by another worker) is not folded back over it.
        if held is None or _stage(event.mark) >= _stage(held):
            marks[event.mark.id] = event.mark
    return marks


def proof_url(site: str, sha256: str) -> str:
    return f"/api/proofs/{sha256}?site={quote(site, safe='')}"


def mark_row(mark: Mark) -> dict[str, Any]:
    """A mark as the API answers it: the mark, each proof with the URL that serves it."""
    row = mark.model_dump(mode="json")
    row["proofs"] = [{**p, "url": proof_url(mark.site, p["sha256"])} for p in row["proofs"]]
    return row
