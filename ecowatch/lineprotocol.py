"""InfluxDB line protocol: the one place that escapes and formats what the platform writes.

    <measurement>[,<tag key>=<tag value>...] <field key>=<field value>[,...] <timestamp>

Escaping, as the line-protocol reference has it (InfluxDB v2, "Special characters"):

- a measurement escapes commas and spaces;
- tag keys, tag values and field keys escape commas, equals signs and spaces;
- a string field value is double-quoted and escapes double quotes and backslashes.

A backslash before one of those characters escapes it, so a backslash in the text is written
as two everywhere (``\\\\`` reads back as one), or a trailing one would swallow the separator
that follows. Line protocol has no newline in any of them: it ends the point, so a newline
is written as a space. A tag value cannot be empty: ``-`` stands for none, as the platform's
tags always have.

Timestamps are milliseconds since the epoch (the writer's precision, ``streams/storage/store.py``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from functools import lru_cache

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
NONE_TAG = "-"


def epoch_ms(ts: datetime) -> int:
    """An aware time as integer milliseconds since the epoch, exact (no float rounding)."""
    return (ts - _EPOCH) // _MS


def measurement(name: str) -> str:
    return name.replace("\\", "\\\\").replace(",", "\\,").replace(" ", "\\ ").replace("\n", " ")


def _key(text: str) -> str:
    return (
        text.replace("\\", "\\\\")
        .replace(",", "\\,")
        .replace("=", "\\=")
        .replace(" ", "\\ ")
        .replace("\n", "\\ ")  # a newline becomes a space, escaped as one
    )


# Tag values repeat (sites, devices, pollutants, rules): escaped once, then looked up.
@lru_cache(maxsize=16384)
def tag_value(value: str) -> str:
    return _key(value) or NONE_TAG


tag_key = field_key = _key


def string_field(value: str) -> str:
    """A string field value, quoted: ``"COD \\"hourly\\""``."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def float_field(value: float) -> str:
    """A float as Python reads it back (``repr``): ``81.5``, ``3000.0``."""
    return repr(float(value))


def int_field(value: int) -> str:
    return f"{int(value)}i"


def bool_field(value: bool) -> str:
    return "true" if value else "false"


def tags(pairs: Iterable[tuple[str, str]]) -> str:
    """``,k=v,k=v`` (with its leading comma), keys and values escaped; empty when no pairs."""
    return "".join(f",{_key(k)}={tag_value(v)}" for k, v in pairs)


def line(
    name: str, tag_pairs: Iterable[tuple[str, str]], fields: Iterable[tuple[str, str]], ms: int
) -> str:
    """One point. ``fields`` are (key, value already formatted by a ``*_field`` function)."""
    rendered = ",".join(f"{_key(k)}={v}" for k, v in fields)
    if not rendered:
        raise ValueError(f"a point of '{name}' needs at least one field")
    return f"{measurement(name)}{tags(tag_pairs)} {rendered} {ms}"
