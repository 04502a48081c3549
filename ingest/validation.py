"""Judging one incoming message: a pure function, so every kind of bad input is unit-testable.

``accept_mqtt_reading(topic, payload, ...)`` returns either a :class:`Reading` ready for Kafka or
a :class:`Rejection` that names the reason (one :class:`RejectReason` per kind of bad input)
and a detail a person can act on.
"""

from __future__ import annotations

import json
from datetime import datetime

from pydantic import ValidationError

from ecowatch.config.catalogue import Catalogue, DeviceEntry
from ecowatch.ingest.contract import (
    DEFAULT_WINDOW,
    ReadingLimiter,
    Rejection,
    TimeWindow,
    admit,
)
from ecowatch.schema import (
    DeviceReading,
    DeviceState,
    DeviceStatus,
    Reading,
    ReadingSource,
    RejectReason,
)
from ecowatch.topics import parse_device_topic

MAX_PAYLOAD_BYTES = 64 * 1024


def rejection_of(exc: ValidationError) -> Rejection:
    """The first schema error decides the reason; the detail lists them all, by field path."""
    errors = exc.errors(include_url=False)
    kinds = {e["type"] for e in errors}
    if "missing" in kinds:
        reason = RejectReason.MISSING_FIELD
    elif "finite_number" in kinds:
        reason = RejectReason.NOT_FINITE
    elif "extra_forbidden" in kinds:
        reason = RejectReason.UNKNOWN_FIELD
    elif any(k.endswith(("_type", "_parsing")) or k == "timezone_aware" for k in kinds):
        reason = RejectReason.WRONG_TYPE
    else:
        reason = RejectReason.INVALID_VALUE
    detail = "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or '(payload)'}: {e['msg']}" for e in errors[:5]
    )
    return Rejection(reason, detail)


def parse_device_reading(payload: bytes) -> DeviceReading | Rejection:
    if len(payload) > MAX_PAYLOAD_BYTES:
        return Rejection(
            RejectReason.TOO_LARGE, f"{len(payload)} bytes, the limit is {MAX_PAYLOAD_BYTES}"
        )
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejection(RejectReason.NOT_UTF8, str(exc))
    try:
        # NaN and Infinity are parsed (Python's json allows them) and refused by the schema.
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        return Rejection(RejectReason.BAD_JSON, str(exc))
    except ValueError as exc:  # an integer of more digits than Python converts (4,300)
        return Rejection(RejectReason.BAD_JSON, str(exc))
    except RecursionError:
        return Rejection(RejectReason.BAD_JSON, "nested too deeply")
    if "\\u" in text and _has_lone_surrogate(doc):
        # "\ud800" is valid JSON but no valid text: it could not even be written to Kafka.
        return Rejection(RejectReason.NOT_UTF8, "a string holds a lone surrogate (\\ud800-\\udfff)")
    if not isinstance(doc, dict):
        return Rejection(
            RejectReason.WRONG_TYPE, f"expected a JSON object, got {type(doc).__name__}"
        )
    try:
        return DeviceReading.model_validate(doc)
    except ValidationError as exc:
        return rejection_of(exc)


def _has_lone_surrogate(doc: object) -> bool:
    """Does a parsed document hold a lone surrogate (only a text with a \\u escape can)?"""
    try:
        json.dumps(doc, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _sender(topic: str, channel: str, catalogue: Catalogue) -> DeviceEntry | Rejection:
    """Who sent a message on ``ecowatch/v1/{site}/{device}/{channel}``, from the catalogue."""
    where = parse_device_topic(topic)
    if where is None or where.channel != channel:
        return Rejection(
            RejectReason.BAD_TOPIC, f"'{topic}' is not ecowatch/v1/SITE/DEVICE/{channel}"
        )
    entry = catalogue.device(where.device)
    if entry is None:
        return Rejection(
            RejectReason.UNKNOWN_DEVICE, f"device '{where.device}' is not in the catalogue"
        )
    if entry.site.id != where.site:
        return Rejection(
            RejectReason.WRONG_SITE,
            f"device '{where.device}' is installed at site '{entry.site.id}', not '{where.site}'",
        )
    return entry


def accept_mqtt_status(
    topic: str, payload: bytes, catalogue: Catalogue, received_at: datetime
) -> DeviceStatus | Rejection:
    """A message from ``ecowatch/v1/{site}/{device}/status`` → the device's state, or why not."""
    entry = _sender(topic, "status", catalogue)
    if isinstance(entry, Rejection):
        return entry
    word = payload.decode("utf-8", errors="replace").strip()
    try:
        state = DeviceState(word)
    except ValueError:
        allowed = ", ".join(s.value for s in DeviceState)
        return Rejection(RejectReason.BAD_STATUS, f"'{word[:40]}' is not one of {allowed}")
    return DeviceStatus(site=entry.site.id, device=entry.device.id, state=state, at=received_at)


def accept_mqtt_reading(
    topic: str,
    payload: bytes,
    catalogue: Catalogue,
    received_at: datetime,
    window: TimeWindow = DEFAULT_WINDOW,
    limiter: ReadingLimiter | None = None,
) -> Reading | Rejection:
    """A message from ``ecowatch/v1/{site}/{device}/reading`` → a normalised reading, or why not
    (with a ``limiter``: also past its device's allowance, ``rate_limited``)."""
    entry = _sender(topic, "reading", catalogue)
    if isinstance(entry, Rejection):
        return entry
    parsed = parse_device_reading(payload)
    if isinstance(parsed, Rejection):
        return parsed
    return admit(entry, parsed, ReadingSource.MQTT, received_at, window, limiter)
