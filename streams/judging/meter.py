"""A card-swipe discharge meter's account (刷卡排污), kept by the platform. Pure.

The regulated enterprise controls the meter, so its ``meter`` block (quota, used) is only what
the device says. The platform keeps its own account from the readings it took, the same way
the meter is meant to (HJ 212 Appendix D): for the slice since the meter's previous reading,
ΔD (m³) = Q (L/s) × T (s) × 1e-3 and G (kg) = C (mg/L) × ΔD × 1e-3, with the values measured
now; a value flagged M, C, D, S or B is replaced by the last valid one (data substitution), a
flow flagged F (stopped, the valve shut) discharges nothing, and a slice is at most
``max_slice`` long, so a gap in the data does not weigh one value for hours.

The quota is the permit's: the catalogue's monthly share of the annual quantity, for the
calendar month in China time, plus what was recharged this month (emission rights bought, the
one thing taken from the meter's report), never more than the annual quantity. The use judged
is the platform's count, or the meter's own where it says more (it counted while the platform
was not watching: the platform's first month, a gap in the data): a meter's report can close
its valve sooner, never later. So a meter reporting a quota of 1e12 or nothing used is closed
all the same when the platform's account is used up. What the meter reports is kept beside
it (InfluxDB ``reported_*`` fields), and a
meter that says it used much less than the platform counted, or holds more quota than the
permit gives, is a finding of abnormal data (``meter_mismatch``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import AwareDatetime, BaseModel, Field

from ecowatch.clock import CHINA
from ecowatch.config.catalogue import Quota
from ecowatch.pollutants import FLOW
from ecowatch.schema import (
    DataFlag,
    MeterEventKind,
    MeterMismatch,
    MeterStatus,
    Reading,
    ValveState,
)

# Flags whose value is a measurement of the discharge: N, and T (above the instrument's range:
# the discharge was at least that).
_MEASURED = frozenset({DataFlag.NORMAL, DataFlag.OVER_RANGE})
# A reported account under the platform's by more than this share (and more than ``_SLACK`` of
# the monthly quota, so rounding and the first slices do not count) is a mismatch.
MISMATCH_SHARE = 0.10
_SLACK = 0.01


class MeterAccount(BaseModel):
    """The platform's account of one meter for one month (a part of the site's rule state)."""

    period: str  # "2026-11", China time
    used: dict[str, float] = Field(default_factory=dict)  # w00000 m³, pollutants kg
    recharged: dict[str, float] = Field(default_factory=dict)
    last_ts: AwareDatetime | None = None  # the reading that ended the last slice
    valid: dict[str, float] = Field(default_factory=dict)  # last valid values, substitution


def period_of(ts: datetime) -> str:
    local = ts.astimezone(CHINA)
    return f"{local.year:04d}-{local.month:02d}"


def quota_for(quota: Quota, account: MeterAccount) -> dict[str, float]:
    """The permit's quota for the account's month, with its recharges, at most the annual."""
    month = int(account.period[5:7])
    monthly = quota.for_month(month)
    return {
        code: min(quota.annual[code], monthly[code] + account.recharged.get(code, 0.0))
        for code in quota.annual
    }


def account(
    previous: MeterAccount | None, quota: Quota, reading: Reading, max_slice: timedelta
) -> MeterAccount:
    """The account after ``reading`` of the meter (``previous`` is not changed). A reading
    not later than the last one (a late resend) changes nothing: its slice was counted."""
    period = period_of(reading.ts)
    if previous is not None and previous.last_ts is not None and reading.ts <= previous.last_ts:
        return previous
    if previous is None or previous.period != period:
        # A new month starts from nothing (the accounting year resets without carry-over too,
        # and its months are the catalogue's shares); the values measured carry on.
        valid = previous.valid if previous is not None else {}
        previous = MeterAccount(
            period=period, used=dict.fromkeys(quota.annual, 0.0), valid=dict(valid)
        )
    new = previous.model_copy(deep=True)
    for code in quota.annual:
        m = reading.values.get(code)
        if m is not None and m.flag in _MEASURED and m.value >= 0:
            new.valid[code] = m.value
    flow_m = reading.values.get(FLOW)
    stopped = flow_m is not None and flow_m.flag is DataFlag.STOPPED
    if new.last_ts is not None and not stopped:
        seconds = min((reading.ts - new.last_ts).total_seconds(), max_slice.total_seconds())
        volume = new.valid.get(FLOW, 0.0) * seconds * 1e-3
        for code in quota.annual:
            added = volume if code == FLOW else new.valid.get(code, 0.0) * volume * 1e-3
            new.used[code] = new.used.get(code, 0.0) + added
    new.last_ts = reading.ts
    if reading.meter is not None:
        for event in reading.meter.events:
            if event.kind is MeterEventKind.RECHARGED and period_of(event.at) == period:
                for code, amount in event.amounts.items():
                    if code in quota.annual:
                        new.recharged[code] = new.recharged.get(code, 0.0) + amount
    return new


def platform_status(account: MeterAccount, quota: Quota, reading: Reading) -> MeterStatus:
    """The meter's account as the platform judges it: the permit's quota; the platform's count
    of the use, or the meter's where it is higher; the valve and the card as the meter reports
    them (what it is, not what it may discharge). A meter that reports no account is taken to
    be open: it is discharging."""
    reported = reading.meter
    said = reported.used if reported is not None and reported.period == account.period else {}
    return MeterStatus(
        valve=reported.valve if reported is not None else ValveState.OPEN,
        card_id=reported.card_id if reported is not None else None,
        period=account.period,
        quota={code: round(v, 6) for code, v in quota_for(quota, account).items()},
        used={code: round(max(v, said.get(code, 0.0)), 6) for code, v in account.used.items()},
    )


def mismatch(platform: MeterStatus, reported: MeterStatus | None) -> list[MeterMismatch]:
    """Where the meter's own account flatters it against the platform's: it says it used less
    than the platform counted, or holds more quota than the permit gives. A meter that counts
    more than the platform (it counted before the platform watched, or through a gap) is not
    flattering itself, and is not a mismatch."""
    if reported is None or reported.period != platform.period:
        return []
    out = []
    for code, quota in platform.quota.items():
        slack = _SLACK * quota
        used, said = platform.used.get(code, 0.0), reported.used.get(code)
        if said is not None and said < used * (1 - MISMATCH_SHARE) - slack:
            out.append(MeterMismatch(pollutant=code, account="used", reported=said, platform=used))
        claimed = reported.quota.get(code)
        if claimed is not None and claimed > quota * (1 + MISMATCH_SHARE) + slack:
            out.append(
                MeterMismatch(pollutant=code, account="quota", reported=claimed, platform=quota)
            )
    return out
