"""Device models: pure and deterministic (state + time + seed → next reading).

Every model has the same small shape, :class:`MonitorModel`: it is built from a device id and a
seed, and ``reading(now)`` returns the next :class:`DeviceReading`. Two models built with the
same seed and asked at the same times give the same readings, so a test or a load test can
replay a fleet exactly.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar, Protocol
from zoneinfo import ZoneInfo

from ecowatch.schema import DeviceReading, Measurement

CHINA = ZoneInfo("Asia/Shanghai")


class MonitorModel(Protocol):
    model: ClassVar[str]
    device: str

    def reading(self, now: datetime) -> DeviceReading: ...


def _hour_of_day(now: datetime) -> float:
    local = now.astimezone(CHINA)
    return local.hour + local.minute / 60 + local.second / 3600


@dataclass
class OutfallMonitor:
    """An industrial outfall's online monitor: flow w00000 (L/s, as HJ 212 has it), COD w01018,
    NH3-N w21003 (mg/L), pH w01001.

    Production runs in the day shift, so flow follows a daily cycle; concentrations rise a
    little with load and carry measurement noise. Values stay within a compliant range.
    """

    model: ClassVar[str] = "outfall_monitor"
    device: str
    seed: int
    base_flow: float = 35.0  # L/s, about 125 m³/h at full load
    base_cod: float = 45.0
    base_nh3n: float = 4.0
    _rng: random.Random = field(init=False, repr=False)
    _seq: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self._rng = random.Random(f"{self.device}:{self.seed}")

    def reading(self, now: datetime) -> DeviceReading:
        hour = _hour_of_day(now)
        # Day shift 08:00–20:00: load peaks early afternoon, a trickle at night.
        load = (
            0.35 + 0.65 * max(0.0, math.sin(math.pi * (hour - 8) / 12)) if 8 <= hour <= 20 else 0.35
        )
        rng = self._rng
        flow = self.base_flow * load * rng.gauss(1.0, 0.05)
        cod = self.base_cod * (0.8 + 0.4 * load) * rng.gauss(1.0, 0.06)
        nh3n = self.base_nh3n * (0.8 + 0.4 * load) * rng.gauss(1.0, 0.08)
        ph = rng.gauss(7.2, 0.12)
        self._seq += 1
        return DeviceReading(
            ts=now,
            seq=self._seq,
            values={
                "w00000": Measurement(value=round(max(flow, 0.0), 2)),
                "w01018": Measurement(value=round(max(cod, 0.0), 2)),
                "w21003": Measurement(value=round(max(nh3n, 0.0), 3)),
                "w01001": Measurement(value=round(ph, 2)),
            },
        )
