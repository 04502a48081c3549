"""Readings as InfluxDB points (line protocol). Pure, so the layout is unit-tested.

Measurement ``reading``, one point per pollutant of a reading:

    reading,site=S-OUT-001,device=33080200000001,model=outfall_monitor,pollutant=w01018 \\
        value=42.1,flag="N" <ts in ms>

Tags are identifiers that the reading schema already restricts to ``[A-Za-z0-9_.-]``, so no
escaping is needed.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from ecowatch.schema import Reading

MEASUREMENT = "reading"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def epoch_ms(ts: datetime) -> int:
    return (ts - _EPOCH) // _MS


def reading_lines(reading: Reading) -> list[str]:
    ms = epoch_ms(reading.ts)
    tags = f"{MEASUREMENT},site={reading.site},device={reading.device},model={reading.model}"
    return [
        f'{tags},pollutant={code} value={float(m.value)!r},flag="{m.flag.value}" {ms}'
        for code, m in reading.values.items()
    ]


def batch_lines(readings: Iterable[Reading]) -> str:
    return "\n".join(line for r in readings for line in reading_lines(r))
