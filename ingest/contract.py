"""The ingest contract: what every transport checks before a reading becomes evidence.

The MQTT bridge and the HJ 212 server each parse their own wire format and establish who sent
it (the MQTT user the broker authenticated, the HJ 212 MN and its password); from there the
same function decides, for both: :func:`admit`. The regulated enterprise controls the device,
so nothing in the payload is trusted to say more than a measurement:
- the device is the authenticated one, looked up in the catalogue (never named by the payload);
- the time is within a window: a resend may fill the past week, a clock may run 5 minutes fast;
- only the pollutants the catalogue gives that device, each within what is physically possible;
- a ``meter`` block only from a discharge meter (its account is the device's word: the
  platform keeps its own, streams/judging/meter.py);
- one reading per device and time: the worker's, on its changelogged state
  (streams/judging/ledger.py);
- no more readings than a few times what its reporting interval allows (:class:`ReadingLimiter`):
  one device cannot flood the platform.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from ecowatch.config.catalogue import Device, DeviceEntry, DeviceModel
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

# Out-of-order data this much older than its arrival is late data (a backlog sent after an
# outage), judged on its own; younger, it is the present arriving a little out of order.
LATE_AFTER = timedelta(minutes=5)

# The times the platform can hold: InfluxDB keeps 1677-09-21 … 2262-04-11 (nanoseconds since
# 1970 in an int64), and a site's clock is moved on from its readings' times.
STORABLE_FROM = datetime(1678, 1, 1, tzinfo=UTC)
STORABLE_UNTIL = datetime(2262, 1, 1, tzinfo=UTC)


def refuse_on_arrival(reading: Reading, window: TimeWindow = DEFAULT_WINDOW) -> Rejection | None:
    """The contract's time checks again where the worker takes a reading, counted from its
    arrival (``received_at``) so that a replay decides as the worker did. The edge has checked
    them already; a reading handed to the worker past the edge (an older bridge, a bug) with a
    time no clock can mean (year 1 at +14:00, 9999) was taken into its device's ledger and its
    site's clock, then raised OverflowError in the judging and in every tick of its site after,
    and was dead-lettered twice (judging, then InfluxDB)."""
    for name, ts in (("ts", reading.ts), ("received_at", reading.received_at)):
        if not STORABLE_FROM <= ts < STORABLE_UNTIL:
            return Rejection(
                RejectReason.INVALID_VALUE,
                f"{name} {ts.isoformat()} is outside the times the platform can store "
                f"({STORABLE_FROM:%Y-%m-%d} … {STORABLE_UNTIL:%Y-%m-%d})",
            )
    return window.refuse(reading.ts, reading.received_at)


def admit(
    entry: DeviceEntry,
    reading: DeviceReading,
    source: ReadingSource,
    received_at: datetime,
    window: TimeWindow = DEFAULT_WINDOW,
    limiter: ReadingLimiter | None = None,
) -> Reading | Rejection:
    """A parsed reading from an authenticated device → the platform's ``Reading``, or why not.

    With a ``limiter``, a reading that passed every other check counts against its device's
    allowance (so a bad reading costs none: it is under the dead-letter budget instead)."""
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
    taken = Reading(
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
    if limiter is not None:
        refused = limiter.refuse(device, taken.ts, received_at)
        if refused is not None:
            return refused
    return taken


def _meter(entry: DeviceEntry, meter: MeterStatus) -> MeterStatus | Rejection:
    """A meter's account, only from a discharge meter, naming only what its card carries.

    Its quota and use are the device's word: kept as reported, never believed in its favour.
    The platform keeps its own account from the flow and concentrations it takes
    (streams/judging/meter.py), so a meter claiming a quota of 1e12 is still closed, and its
    readings still count as evidence.
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


# -- one device cannot flood ---------------------------------------------------------------------

# HJ 212-2025: a monitor keeps at most this many readings it could not send, and resends them
# (RF=1) once it is back on the network.
RESEND_CAP = 1000


@dataclass(frozen=True)
class ReadingRate:
    """How many readings one device may send: ``factor`` times its nominal rate (one reading
    per its model's reporting interval, ``config/catalogue.py`` REPORTING_INTERVAL), with a
    burst of :data:`RESEND_CAP` plus ``factor`` times what it reports in :data:`LATE_AFTER`.
    ``factor`` 0: no limit (``ECOWATCH_READING_RATE_FACTOR``)."""

    # 4 x: a device at its nominal rate uses a quarter of its allowance, so its minute, hourly
    # and daily data on top of its real-time data, and a clock that runs a little fast, are
    # never near it; a flood (hundreds a second) is cut after its burst.
    factor: float = 4.0
    resend_burst: float = RESEND_CAP

    def per_second(self, interval: timedelta) -> float:
        return self.factor / interval.total_seconds()

    def burst(self, interval: timedelta) -> float:
        return self.resend_burst + self.factor * (LATE_AFTER / interval)


@dataclass
class _Allowance:
    tokens: float
    at: datetime  # arrival of the last reading counted (the platform's clock)
    newest: datetime  # the newest measurement time counted
    window_start: datetime  # the readings of the last minute or so, for the detail
    seen: int = 0


class ReadingLimiter:
    """A token bucket per device: a reading takes one token; the bucket refills at ``factor``
    times the device's nominal rate, up to its burst. Pure: the times are the reading's arrival
    (``received_at``, the injected clock's) and its measurement time.

    How resent readings count. A device back from an outage sends its backlog at once: an HJ
    212-2025 monitor its live reading, then up to 1,000 kept readings with RF=1; an MQTT device
    the QoS 1 messages it kept; Mosquitto the readings it queued for a bridge that was away (up
    to a day). Cutting them would drop evidence that was only late, so:
    - the bucket refills with whichever has advanced more since the device's last reading: the
      platform's clock, or the newest measurement time among its readings. A backlog sent in
      order (MQTT: paho's queue, the bridge's session) covers the time the device was away at
      its nominal spacing, so it earns its own tokens, however long the outage was;
    - a backlog sent after newer readings (HJ 212 RF=1 after the live one) earns none: the
      burst holds it, sized to HJ 212-2025's resend cap (1,000) plus the live readings of 5
      minutes at ``factor`` times the nominal rate (40 at one per 30 s), so a resend does not
      cut the live readings sent beside it.
    The price of the measurement-time credit: a device's newest time can only go forward, from
    its first reading (at most 7 days old, the contract's window) to 5 minutes ahead of the
    platform's clock, so it yields at most that much extra allowance once per device (80,000
    readings at 4 x one per 30 s), after which the platform's clock paces the device. A flood of
    readings with the same or earlier times, the usual kind, earns nothing and is cut after
    the burst. The state is a few numbers per device of the catalogue (only its devices reach
    the contract)."""

    def __init__(self, rate: ReadingRate | None = None) -> None:
        self.rate = rate or ReadingRate()
        self._devices: dict[str, _Allowance] = {}
        self.refused: Counter[str] = Counter()  # readings over the allowance, by device

    def refuse(self, device: Device, ts: datetime, received_at: datetime) -> Rejection | None:
        """None: the reading is within its device's allowance (and counted); else why not."""
        rate = self.rate
        if rate.factor <= 0:
            return None
        interval = device.reporting_interval
        burst, per_second = rate.burst(interval), rate.per_second(interval)
        a = self._devices.get(device.id)
        if a is None:
            a = self._devices[device.id] = _Allowance(burst, received_at, ts, received_at)
        elapsed = max((received_at - a.at).total_seconds(), (ts - a.newest).total_seconds(), 0.0)
        a.tokens = min(burst, a.tokens + elapsed * per_second)
        a.at, a.newest = max(a.at, received_at), max(a.newest, ts)
        if (received_at - a.window_start).total_seconds() > 60.0:
            a.window_start, a.seen = received_at, 0
        a.seen += 1
        if a.tokens >= 1.0:
            a.tokens -= 1.0
            return None
        self.refused[device.id] += 1
        span = max((received_at - a.window_start).total_seconds(), 0.0)
        return Rejection(
            RejectReason.RATE_LIMITED,
            f"device '{device.id}' sent {a.seen} readings in {span:.1f} s, over its allowance: "
            f"a burst of {burst:g}, then {per_second * 60:g} a minute ({rate.factor:g} x one "
            f"per {interval.total_seconds():g} s, the {device.model.value}'s reporting "
            "interval) or as fast as its readings' times advance",
        )
