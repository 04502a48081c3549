"""One reading per (device, time): what the worker has taken, kept in each site's
changelogged rule state.

Part of the ingest contract (ingest/contract.py), but only the worker can hold it: every
transport, every bridge instance and every restart hands readings to the same partition's
state. A repeat (the same values again) is skipped; a second reading for a taken time with
other values is refused, and the first stands.
"""

from __future__ import annotations

import zlib
from bisect import bisect_right
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field

from ecowatch.ingest.contract import DEFAULT_WINDOW, LATE_AFTER, refuse_on_arrival
from ecowatch.schema import Reading, RejectReason

# The values of a device's last readings are kept (as a CRC) to tell a redelivery (the same
# reading again: MQTT QoS 1, a bridge restart, an HJ 212 resend, a worker re-reading what it
# had not committed) from a second reading for the same time. 128 cover two hours of a device
# reporting every minute, and a worker's re-read after a crash (Faust commits every 2.8 s)
# for a device replaying its backlog at 45 readings/s. An older repeat is refused all the
# same, as a repeat whose values could not be compared. About 3 KB of the site's state.
LEDGER_DIGESTS = 128
# A device's times are kept as runs (first, step, count): a device on a regular interval is one
# run between its gaps. An irregular clock makes a run per reading: past this many runs, the
# oldest are forgotten and the device's window is shorter than the contract's (what is older
# than what the ledger remembers is refused as stale, never taken blindly: it could rewrite a
# stored point).
LEDGER_RUNS = 1024
_MS = timedelta(milliseconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _ms(ts: datetime) -> int:
    # InfluxDB keeps readings at millisecond precision: two times within one millisecond are
    # one point there, so they are one reading here.
    return (ts - _EPOCH) // _MS


def reading_digest(reading: Reading) -> int:
    """What a reading says (its values and meter block), as a CRC-32: stable across processes
    (unlike ``hash``) and cheap."""
    text = ";".join(
        f"{code}={m.value!r}{m.flag.value}" for code, m in sorted(reading.values.items())
    )
    if reading.meter is not None:
        text += reading.meter.model_dump_json()
    return zlib.crc32(text.encode())


class ReadingLedger(BaseModel):
    """The times of one device's readings taken within the contract's window, compact: a
    reading for a time already taken is a repeat, never a second reading (InfluxDB would
    overwrite the first with it). A JSON round-trip value of a Faust table (the site's rule
    state), bounded: at most ``LEDGER_RUNS`` runs and ``LEDGER_DIGESTS`` digests."""

    model_config = ConfigDict(extra="forbid")

    runs: list[tuple[int, int, int]] = Field(default_factory=list)  # (first ms, step ms, count)
    digests: list[tuple[int, int]] = Field(default_factory=list)  # (ms, CRC), oldest first
    since: int | None = None  # ms: nothing older is remembered (pruned, or pushed out)

    def _run_of(self, ms: int) -> int:
        """The index of the run that would hold ``ms`` (the last starting at or before it)."""
        return bisect_right(self.runs, (ms, 1 << 62, 0)) - 1

    def newest(self) -> int | None:
        """The newest time taken (ms): runs are kept in time order, late ones inserted."""
        if not self.runs:
            return None
        first, step, count = self.runs[-1]
        return first + step * (count - 1)

    def is_late(self, reading: Reading) -> bool:
        """Whether ``reading`` is late data: older than the newest one taken, and either
        resent by its device (HJ 212 RF=1) or older than :data:`LATE_AFTER` when it arrived.
        Measured from its arrival too, or one reading dated a few minutes ahead (the contract
        allows it) would make every live reading after it "late" for as long."""
        newest = self.newest()
        if newest is None or _ms(reading.ts) >= newest:
            return False
        return reading.resent or reading.received_at - reading.ts > LATE_AFTER

    def has(self, ms: int) -> bool:
        i = self._run_of(ms)
        if i < 0:
            return False
        first, step, count = self.runs[i]
        if ms == first:
            return True
        return step > 0 and (ms - first) % step == 0 and (ms - first) // step < count

    def add(self, ms: int, digest: int, horizon: int) -> None:
        runs = self.runs
        if runs:
            first, step, count = runs[-1]
            last = first + step * (count - 1)
            if count == 1 and ms > first:
                runs[-1] = (first, ms - first, 2)
            elif ms == last + step and step > 0:
                runs[-1] = (first, step, count + 1)
            elif ms > last:
                runs.append((ms, 0, 1))
            else:  # a late reading (a resend after an outage): its own run, in order
                runs.insert(self._run_of(ms) + 1, (ms, 0, 1))
        else:
            runs.append((ms, 0, 1))
        self.digests.append((ms, digest))
        if len(self.digests) > LEDGER_DIGESTS:
            del self.digests[: len(self.digests) - LEDGER_DIGESTS]
        self._forget(horizon)

    def _forget(self, horizon: int) -> None:
        """Runs wholly older than the window go; past the cap, the oldest go too."""
        runs = self.runs
        keep = 0
        while keep < len(runs) and (
            len(runs) - keep > LEDGER_RUNS
            or runs[keep][0] + runs[keep][1] * (runs[keep][2] - 1) < horizon
        ):
            keep += 1
        if keep:
            first, step, count = runs[keep - 1]
            self.since = max(self.since or horizon, first + step * (count - 1) + 1, horizon)
            del runs[:keep]


class Repeat(BaseModel):
    """A reading for a (device, time) already taken: ``identical`` (a redelivery, harmless and
    skipped) or not (refused with ``rejection``: the first reading stands)."""

    model_config = ConfigDict(frozen=True)

    identical: bool
    reason: RejectReason = RejectReason.DUPLICATE_READING
    detail: str = ""


def take_once(ledgers: dict[str, ReadingLedger], reading: Reading) -> Repeat | None:
    """None: a new reading for its device and time, now remembered; else why it is a repeat,
    or why it cannot be taken at all (:func:`refuse_on_arrival`).

    The window is the contract's, counted from the reading's arrival (``received_at``), so a
    replay of last month decides as the worker did."""
    refused = refuse_on_arrival(reading)
    if refused is not None:
        return Repeat(identical=False, reason=refused.reason, detail=refused.detail)
    ms = _ms(reading.ts)
    horizon = _ms(reading.received_at - DEFAULT_WINDOW.behind)
    ledger = ledgers.get(reading.device)
    if ledger is None:
        ledger = ledgers[reading.device] = ReadingLedger()
    elif ledger.since is not None and ms < ledger.since:
        return Repeat(
            identical=False,
            reason=RejectReason.STALE_TIMESTAMP,
            detail=(
                f"ts {reading.ts.isoformat()} is older than the readings of device "
                f"'{reading.device}' the platform remembers, so it cannot tell it from a repeat "
                "(one reading per device and time)"
            ),
        )
    digest = reading_digest(reading)
    if ledger.has(ms):
        kept = next((d for t, d in reversed(ledger.digests) if t == ms), None)
        if kept == digest:
            return Repeat(identical=True)
        said = (
            "with other values"
            if kept is not None
            else "(too long ago to compare its values: refused as a repeat all the same)"
        )
        return Repeat(
            identical=False,
            detail=(
                f"device '{reading.device}' already has a reading at {reading.ts.isoformat()} "
                f"{said}; the first one stands"
            ),
        )
    ledger.add(ms, digest, horizon)
    return None
