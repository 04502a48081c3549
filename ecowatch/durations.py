"""Durations as people write them in YAML: '30s', '10m', '2h', '1d', '1h30m'."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?[smhd])+")


def parse_duration(value: Any) -> timedelta:
    """'30s', '10m', '2h', '1d', '1h30m' → a timedelta; a bare 0 is zero."""
    if isinstance(value, timedelta):
        return value
    if value == 0 and not isinstance(value, bool):
        return timedelta(0)
    text = value.strip().replace(" ", "") if isinstance(value, str) else None
    if text == "0":
        return timedelta(0)
    if not text or not _DURATION.fullmatch(text):
        raise ValueError(f"expected a duration like 30s, 10m, 2h, 1d or 1h30m, got {value!r}")
    parts = re.findall(r"(\d+(?:\.\d+)?)([smhd])", text)
    return timedelta(seconds=sum(float(n) * _UNITS[u] for n, u in parts))


def format_duration(d: timedelta) -> str:
    seconds, out = int(d.total_seconds()), ""
    for unit in ("d", "h", "m", "s"):
        n, seconds = divmod(seconds, _UNITS[unit])
        out += f"{n}{unit}" if n else ""
    return out or "0s"


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
PositiveDuration = Annotated[timedelta, BeforeValidator(parse_duration), Field(gt=timedelta(0))]
