"""The ingest contract: what every transport checks before a reading becomes evidence.

The MQTT bridge and the HJ 212 server each parse their own wire format and establish who sent
it (the MQTT user the broker authenticated, the HJ 212 MN and its password); from there the
same function decides, for both: :func:`admit`. The regulated enterprise controls the device,
so nothing in the payload is trusted to say more than a measurement:
- the device is the authenticated one, looked up in the catalogue (never named by the payload);
- the time is within a window: a resend may fill the past week, a clock may run 5 minutes fast;
- only the pollutants the catalogue gives that device, each within what is physically possible;
- a ``meter`` block only from a discharge meter, its quota within the catalogue's permit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ecowatch.config.catalogue import DeviceEntry, DeviceModel
from ecowatch.pollutants import plausible
from ecowatch.schema import DeviceReading, MeterStatus, Reading, ReadingSource, RejectReason


@dataclass(frozen=True)
class Rejection:
    reason: RejectReason
    detail: str


@dataclass(frozen=True)
class TimeWindow:
    """Which measurement times are taken, relative to the platform's clock on arrival."""

    # A device back from a week's outage resends what it kept (HJ 212 RF=1); older than that
    # is not monitoring any more, and is refused with its reason rather than judged late.
    behind: timedelta = timedelta(days=7)
    # A monitor's clock may run a little fast; more than this is a wrong clock.
    ahead: timedelta = timedelta(minutes=5)

    def refuse(self, ts: datetime, received_at: datetime) -> Rejection | None:
        if ts - received_at > self.ahead:
            return Rejection(
                RejectReason.FUTURE_TIMESTAMP,
                f"ts {ts.isoformat()} is ahead of the platform's clock "
                f"({received_at.isoformat()}) by more than {self.ahead}",
            )
        if received_at - ts > self.behind:
            return Rejection(
                RejectReason.STALE_TIMESTAMP,
                f"ts {ts.isoformat()} is older than the {self.behind.days}-day window a resend "
                f"may fill (received {received_at.isoformat()})",
            )
        return None


DEFAULT_WINDOW = TimeWindow()


def admit(
    entry: DeviceEntry,
    reading: DeviceReading,
    source: ReadingSource,
    received_at: datetime,
    window: TimeWindow = DEFAULT_WINDOW,
) -> Reading | Rejection:
    """A parsed reading from an authenticated device → the platform's ``Reading``, or why not."""
    refused = window.refuse(reading.ts, received_at)
    if refused is not None:
        return refused
    device = entry.device
    unknown = sorted(set(reading.values) - set(device.pollutants))
    if unknown:
        return Rejection(
            RejectReason.UNKNOWN_POLLUTANT,
            f"device '{device.id}' measures {', '.join(device.pollutants)}, "
            f"not {', '.join(unknown)}",
        )
    for code, measurement in reading.values.items():
        bounds = plausible(code)
        if not bounds.admits(measurement.value):
            return Rejection(
                RejectReason.IMPLAUSIBLE_VALUE,
                f"{code} = {measurement.value:g} is outside what an analyser can output "
                f"({bounds.low:g} … {bounds.high:g})",
            )
    if reading.meter is not None:
        refused_meter = _meter(entry, reading.meter)
        if isinstance(refused_meter, Rejection):
            return refused_meter
    return Reading(
        site=entry.site.id,
        device=device.id,
        model=device.model.value,
        ts=reading.ts,
        values=reading.values,
        seq=reading.seq,
        meter=reading.meter,
        source=source,
        received_at=received_at,
    )


def _meter(entry: DeviceEntry, meter: MeterStatus) -> MeterStatus | Rejection:
    """A meter's account, checked against what the catalogue grants the meter.

    A period's quota is the month's share plus what was recharged, so it varies; but it can
    never exceed the permit's annual quantity (排污许可量), and it names only what the meter's
    card carries. A device claiming more is refused: it would never be closed.
    """
    device = entry.device
    if device.model is not DeviceModel.DISCHARGE_METER or device.quota is None:
        return Rejection(
            RejectReason.NOT_A_METER,
            f"device '{device.id}' is a {device.model.value}: only a discharge meter reports "
            "a meter account",
        )
    annual = device.quota.annual
    for part, amounts in (("quota", meter.quota), ("used", meter.used)):
        strangers = sorted(set(amounts) - set(annual))
        if strangers:
            return Rejection(
                RejectReason.UNKNOWN_POLLUTANT,
                f"meter.{part} names {', '.join(strangers)}; card {device.quota.card} carries "
                f"{', '.join(annual)}",
            )
    for code, amount in meter.quota.items():
        if amount > annual[code]:
            return Rejection(
                RejectReason.IMPLAUSIBLE_VALUE,
                f"meter.quota.{code} = {amount:g} exceeds the permit's annual quantity "
                f"{annual[code]:g} (catalogue, card {device.quota.card})",
            )
    return meter


@dataclass
class DeadLetterBudget:
    """How many dead letters one device may cause: a token bucket per device (``burst`` at
    once, then ``per_second``). A device sending garbage as fast as it can would otherwise
    fill the dead-letter topic and the disks behind it with its own noise; past its budget its
    bad messages are counted, not kept. Pure: the caller gives the time."""

    per_second: float = 5.0
    burst: float = 50.0
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)

    def allow(self, device: str, now: float) -> bool:
        tokens, at = self._buckets.get(device, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.per_second)
        if tokens < 1.0:
            self._buckets[device] = (tokens, now)
            return False
        self._buckets[device] = (tokens - 1.0, now)
        return True
