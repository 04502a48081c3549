"""Marks (标记): periods an enterprise says its data does not show normal discharge, as the
Ministry's marking rules have it (MEE announcement 2022 No. 21). Pure.

An enterprise declares a mark for one device or its whole site: a type, a start and an end, a
reason, and proof (documents or photos, kept by hash). It may do so ahead of time, or
afterwards within its type's deadline, never later. Officers of the site's grid accept or
reject it, with a reason. Data under a pending or accepted mark is not judged as normal
discharge for what the mark explains (:data:`EXPLAINS`): a shutdown explains high oxygen and
an exceedance, not a CEMS whose corrected values are forged. Start-up and shutdown explain
only the first hours the policy allows of them. A rejected mark explains nothing.

The policy's figures (deadlines, allowances, the monthly hours) are configuration: the
marking rules and the industry rules that go with them set them per industry and region.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime, timedelta

from ecowatch.clock import CHINA
from ecowatch.config.catalogue import Catalogue, Site
from ecowatch.config.policies import MarkPolicy
from ecowatch.schema import (
    DEVICE_DATA_RULES,
    OVER_LIMIT_RULES,
    DataFlag,
    Finding,
    Mark,
    MarkEventKind,
    MarkSource,
    MarkStatus,
    MarkType,
    Proof,
    Rule,
)

_OVER_LIMIT, _DATA = OVER_LIMIT_RULES, DEVICE_DATA_RULES
_STOPPED = _OVER_LIMIT | _DATA | {Rule.OFFLINE, Rule.HIGH_OXYGEN}

# What each mark explains. Never explained: a meter's or a CEMS's account that flatters it
# (a forgery is not a reason), quotas, the air, and the month's transmission (stopped time
# leaves its expected values instead).
EXPLAINS: dict[MarkType, frozenset[Rule]] = {
    MarkType.PRODUCTION_STOPPED: _STOPPED,
    MarkType.OUT_OF_OPERATION: _STOPPED,
    MarkType.STARTUP: _OVER_LIMIT | {Rule.HIGH_OXYGEN, Rule.SUDDEN_JUMP},
    MarkType.SHUTDOWN: _OVER_LIMIT | {Rule.HIGH_OXYGEN, Rule.SUDDEN_JUMP},
    MarkType.FAULT: _OVER_LIMIT | _DATA | {Rule.OFFLINE},
    MarkType.CALIBRATION: _OVER_LIMIT | _DATA,
    MarkType.MAINTENANCE: _OVER_LIMIT | _DATA | {Rule.OFFLINE},
    MarkType.COMMS_LOSS: frozenset({Rule.OFFLINE, Rule.MISSING_POLLUTANT}),
    MarkType.NOT_LIABLE: _STOPPED,
}
# Time that leaves a device's expected values (传输有效率): it was not meant to report.
STOPPED_TYPES = frozenset({MarkType.PRODUCTION_STOPPED, MarkType.OUT_OF_OPERATION})

_HOUR = timedelta(hours=1)
_DAY = timedelta(days=1)


class MarkRefused(ValueError):
    """A mark that cannot be made or changed: which field, and why, for the one who asked."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(f"{field_name}: {message}")
        self.field = field_name
        self.message = message


def declare(
    existing: Iterable[Mark],
    site: Site,
    *,
    device: str | None,
    type_: MarkType,
    start: datetime,
    end: datetime,
    reason: str,
    by: str,
    now: datetime,
    policy: MarkPolicy,
) -> Mark:
    """A new mark of the site's (or one device's) period, pending review; refused when the
    period is not one the enterprise may mark now."""
    existing = list(existing)
    if device is not None and device not in {d.id for d in site.devices}:
        raise MarkRefused("device", f"'{device}' is not a device of {site.id}")
    if not start < end:
        raise MarkRefused("end", f"{end.isoformat()} is not after the start {start.isoformat()}")
    if end - start > policy.longest:
        raise MarkRefused(
            "end", f"a mark covers at most {policy.longest.days} days: mark the rest apart"
        )
    if start > now + policy.ahead:
        raise MarkRefused("start", f"more than {policy.ahead.days} days ahead")
    latest = start + policy.afterwards[type_]
    if now > latest:
        raise MarkRefused(
            "start",
            f"a {type_.value} mark is made within {_span(policy.afterwards[type_])} of its "
            f"start, by {latest.isoformat()}: too late",
        )
    if not reason.strip():
        raise MarkRefused("reason", "say why the data does not show normal discharge")
    for m in existing:
        if m.excuses and m.type is type_ and m.device == device and m.covers(device, start, end):
            raise MarkRefused("start", f"overlaps the {type_.value} mark {m.id}")
    # Its start, and a digest of what, who and when it was made: unique without a counter
    # (marks long past are forgotten, so a count repeats) and short whatever the site's id.
    made = f"{site.id}|{device}|{type_.value}|{start.isoformat()}|{by}|{now.isoformat()}"
    digest = hashlib.sha256(made.encode()).hexdigest()[:10]
    return Mark(
        id=f"M-{start.astimezone(CHINA):%Y%m%d%H%M}-{digest}",
        site=site.id,
        device=device,
        type=type_,
        start=start,
        end=end,
        reason=reason.strip(),
        source=MarkSource.ENTERPRISE,
        made_by=by,
        made_at=now,
    )


def add_proof(mark: Mark, proof: Proof) -> Mark:
    """The mark with one more proof (a proof already there is not added twice)."""
    if mark.status is not MarkStatus.PENDING:
        raise MarkRefused("status", f"mark {mark.id} was {mark.status.value}: no more proof")
    if any(p.sha256 == proof.sha256 for p in mark.proofs):
        return mark
    return mark.model_copy(update={"proofs": (*mark.proofs, proof)})


def review(mark: Mark, *, accept: bool, reason: str, officer: str, now: datetime) -> Mark:
    """An officer's decision on a pending mark; a rejection says why."""
    if mark.status is not MarkStatus.PENDING:
        raise MarkRefused("status", f"mark {mark.id} was already {mark.status.value}")
    if not accept and not reason.strip():
        raise MarkRefused("reason", "a rejection says why")
    status = MarkStatus.ACCEPTED if accept else MarkStatus.REJECTED
    return mark.model_copy(
        update={
            "status": status,
            "reviewed_by": officer,
            "reviewed_at": now,
            "review_reason": reason.strip(),
        }
    )


def explained_span(mark: Mark, policy: MarkPolicy) -> tuple[datetime, datetime]:
    """The part of its period a mark explains: a start-up's or a shutdown's first hours."""
    allowance = policy.allowance.get(mark.type)
    if allowance is None:
        return mark.start, mark.end
    return mark.start, min(mark.end, mark.start + allowance)


def excusing(
    marks: Iterable[Mark],
    device: str | None,
    rule: Rule,
    start: datetime,
    end: datetime | None,
    policy: MarkPolicy,
    pollutant: str | None = None,
    needed: timedelta | None = None,
) -> Mark | None:
    """The pending or accepted mark that explains ``rule`` for ``device`` (``pollutant``) at
    ``start``, if any; or, for a window [start, end), the one that leaves less of it unmarked
    than ``needed`` to judge it (45 minutes of an hour): a short mark does not excuse a whole
    hour. The enterprise's marks: a device's own excuse nothing (its flagged values are not
    judged anyway, and its flags held too long are a finding of their own)."""
    for m in marks:
        if not m.excuses or rule not in EXPLAINS[m.type]:
            continue
        span_start, span_end = explained_span(m, policy)
        explained = m.model_copy(update={"start": span_start, "end": span_end})
        if not explained.covers(device, start, end, pollutant):
            continue
        if end is None:
            return m
        unmarked = (end - start) - (min(end, span_end) - max(start, span_start))
        if needed is None or unmarked < needed:
            return m
    return None


def explains(mark: Mark, finding: Finding, policy: MarkPolicy) -> bool:
    """Whether ``mark`` (whatever its status) is about ``finding``'s evidence: its rule, its
    device, and its time or window within what the mark explains."""
    if finding.rule not in EXPLAINS[mark.type]:
        return False
    if mark.device is not None and finding.device is not None and mark.device != finding.device:
        return False
    start, end = explained_span(mark, policy)
    explained = mark.model_copy(update={"start": start, "end": end})
    device, pollutant = finding.device, finding.pollutant
    if finding.window_start is not None and finding.window_end is not None:
        return explained.covers(device, finding.window_start, finding.window_end, pollutant)
    return explained.covers(device, finding.at, None, pollutant)


def stopped_periods(marks: Iterable[Mark], device: str) -> list[tuple[datetime, datetime]]:
    """The periods the device was marked stopped (停产, 停运): not owed (传输有效率)."""
    # The enterprise's marks: a device's own F flags came as values, counted as received.
    return [
        (m.start, m.end)
        for m in marks
        if m.excuses and m.type in STOPPED_TYPES and (m.device is None or m.device == device)
    ]


MarkRow = tuple[str, str | None, MarkType, MarkStatus, datetime, datetime]  # site, device, ...


def stopped_by_device(
    rows: Iterable[MarkRow], catalogue: Catalogue
) -> dict[tuple[str, str], list[tuple[datetime, datetime]]]:
    """(site, device) → the periods it was marked stopped (停产, 停运; pending or accepted),
    from marks as their trail last stands (a whole site's mark: each of its devices)."""
    out: dict[tuple[str, str], list[tuple[datetime, datetime]]] = {}
    for site, device, type_, status, start, end in rows:
        if type_ not in STOPPED_TYPES or status is MarkStatus.REJECTED:
            continue
        s = catalogue.sites.get(site)
        devices = [device] if device else [d.id for d in s.devices] if s else []
        for d in devices:
            out.setdefault((site, d), []).append((start, end))
    return out


def proof_overdue(mark: Mark, now: datetime, policy: MarkPolicy) -> bool:
    return (
        mark.source is MarkSource.ENTERPRISE
        and mark.status is MarkStatus.PENDING
        and not mark.proofs
        and now > mark.made_at + policy.proof_within
    )


def marked_hours(marks: Iterable[Mark], start: datetime, end: datetime) -> float:
    """Hours of [start, end) under the enterprise's excusing marks (overlaps counted once)."""
    spans = sorted(
        (max(m.start, start), min(m.end, end))
        for m in marks
        if m.excuses and m.source is MarkSource.ENTERPRISE and m.start < end and start < m.end
    )
    total, reach = timedelta(0), start
    for s, e in spans:
        s = max(s, reach)
        if e > s:
            total += e - s
            reach = e
    return total / _HOUR


def _span(length: timedelta) -> str:
    hours = length / _HOUR
    return f"{hours / 24:g} d" if hours >= 24 else f"{hours:g} h"


# -- a device's own marks ---------------------------------------------------------------------

# The HJ 212 data flags that mark a value as not normal discharge, as the marking rules count
# them: the device says so itself (停运 F, 维护 M, 校准 C, 故障 D).
FLAG_MARKS: dict[DataFlag, MarkType] = {
    DataFlag.STOPPED: MarkType.OUT_OF_OPERATION,
    DataFlag.MAINTENANCE: MarkType.MAINTENANCE,
    DataFlag.CALIBRATION: MarkType.CALIBRATION,
    DataFlag.FAULT: MarkType.FAULT,
}
# An open mark of a device's own covers until its flag is over; until then, a day ahead.
OPEN_END = timedelta(days=1)


# A CEMS's analyser states (HJ 212 CN 3020, i12001) that are marks: 1 维护, 2 故障, 3 校准,
# 5 反吹 (blowback), 6 电源故障, 8 标定, 10 运维; 0 运行, 7 测量 and 9 待机 end one.
INSTRUMENT_MARKS: dict[int, MarkType] = {
    1: MarkType.MAINTENANCE,
    2: MarkType.FAULT,
    3: MarkType.CALIBRATION,
    5: MarkType.MAINTENANCE,
    6: MarkType.FAULT,
    8: MarkType.CALIBRATION,
    10: MarkType.MAINTENANCE,
}


def device_mark(
    open_mark: Mark | None,
    site: str,
    device: str,
    pollutant: str,
    kind: MarkType | None,
    said: str,
    at: datetime,
) -> tuple[Mark | None, list[tuple[MarkEventKind, Mark]]]:
    """What the device says of one pollutant's data now (``kind``: a mark's type, or None
    for normal; ``said``: its words, "flag M", "i12001=3") against its open mark of it: the
    mark now open (None: none) and what happened to marks (begun, ended), for their trail.
    A device's mark needs no review: it is the device's word on its data, accepted as such."""
    changes: list[tuple[MarkEventKind, Mark]] = []
    if open_mark is not None:
        if kind is open_mark.type:
            return open_mark, changes  # the same still: the mark goes on
        ended = open_mark.model_copy(update={"end": max(at, open_mark.start)})
        changes.append((MarkEventKind.ENDED, ended))
        open_mark = None
    if kind is None:
        return None, changes
    digest = hashlib.sha256(f"{device}|{pollutant}|{kind.value}|{said}|{at.isoformat()}".encode())
    mark = Mark(
        id=f"D-{at.astimezone(CHINA):%Y%m%d%H%M}-{digest.hexdigest()[:10]}",
        site=site,
        device=device,
        pollutant=pollutant,
        type=kind,
        start=at,
        end=at + OPEN_END,
        reason=said,
        source=MarkSource.DEVICE,
        made_by=device,
        made_at=at,
        status=MarkStatus.ACCEPTED,
    )
    changes.append((MarkEventKind.DECLARED, mark))
    return mark, changes
