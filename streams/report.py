"""The weekly settlement (周周能结清): per grid, the week's cases opened, acknowledged, closed,
and what is overdue at the week's end. Pure: computed from case events and open cases."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta

from pydantic import BaseModel, Field

from ecowatch.clock import CHINA
from ecowatch.config.catalogue import Catalogue
from ecowatch.streams.cases import Case, CaseEvent, CaseStatus, next_due

WEEK = timedelta(days=7)
MICROSECOND = timedelta(microseconds=1)
# How far back a site's case log reaches: the weeks an operator may still ask about.
LOG_WEEKS = 8
# What the settlement counts, and what tells an officer that a case is gone (closed or
# dismissed): the only kinds the log keeps. The whole trail (detection, renotifications, the
# officers' findings in full) is on Kafka ``ecowatch.cases`` and in InfluxDB ``case_event``.
COUNTED = {
    "reminded": "opened",
    "escalated": "escalated",
    "acknowledged": "acknowledged",
    "closed": "closed",
}
LOGGED = frozenset({*COUNTED, "dismissed"})
# Events kept one by one. Each is about 250 bytes without its detail: 2,000 are half a MB,
# well under Kafka's 1 MiB per record however a site's cases churn; older ones are kept as
# counts per day, so the settlement of any of the weeks still adds up.
LOG_EVENTS = 2000


class SiteCaseLog(BaseModel):
    """A site's case events of the last :data:`LOG_WEEKS` weeks (a Faust table value), so
    the weekly settlement survives a worker's restart. Bounded: only the kinds the settlement
    and the API use, without their detail, the last :data:`LOG_EVENTS` of them one by one and
    the rest as counts per day (China time). InfluxDB keeps the full history."""

    events: list[CaseEvent] = Field(default_factory=list)
    # Older events, counted: China date (YYYY-MM-DD) → kind → how many.
    earlier: dict[str, dict[str, int]] = Field(default_factory=dict)

    def add(self, events: Iterable[CaseEvent]) -> SiteCaseLog:
        new = [e.model_copy(update={"detail": ""}) for e in events if e.kind in LOGGED]
        kept = [*self.events, *new]
        if not kept:
            return self
        horizon = max(e.at for e in kept) - LOG_WEEKS * WEEK
        kept = [e for e in kept if e.at >= horizon]
        earlier = {
            day: dict(kinds)
            for day, kinds in self.earlier.items()
            if date.fromisoformat(day) >= horizon.astimezone(CHINA).date()
        }
        if len(kept) > LOG_EVENTS:
            kept.sort(key=lambda e: e.at)
            for e in kept[: len(kept) - LOG_EVENTS]:
                if e.kind in COUNTED:
                    day = earlier.setdefault(e.at.astimezone(CHINA).date().isoformat(), {})
                    day[e.kind] = day.get(e.kind, 0) + 1
            kept = kept[len(kept) - LOG_EVENTS :]
        return SiteCaseLog(events=kept, earlier=earlier)

    def counts(self, site: str) -> list[tuple[str, date, str, int]]:
        """The counted older events: (site, China date, kind, how many)."""
        return [
            (site, date.fromisoformat(day), kind, n)
            for day, kinds in self.earlier.items()
            for kind, n in kinds.items()
        ]


class GridWeek(BaseModel):
    grid: str
    name: str
    district: str
    opened: int = 0  # cases that reached people this week (reminded)
    escalated: int = 0
    acknowledged: int = 0
    closed: int = 0
    overdue: list[str] = []  # open cases past their deadline or acknowledgement time at the end
    open_at_end: int = 0

    @property
    def settled(self) -> bool:
        """Every case of the week answered: nothing overdue."""
        return not self.overdue


def weekly_report(
    events: Iterable[CaseEvent],
    open_cases: Iterable[Case],
    week_start: datetime,
    catalogue: Catalogue,
    earlier: Iterable[tuple[str, date, str, int]] = (),
) -> list[GridWeek]:
    """One row per grid (every grid, even a quiet one) for ``[week_start, week_start + 7 d)``;
    ``earlier``: the case logs' counted older events (:meth:`SiteCaseLog.counts`)."""
    end = week_start + WEEK
    rows = {
        g.id: GridWeek(grid=g.id, name=g.name, district=g.district)
        for g in catalogue.grids.values()
    }

    def row(site: str) -> GridWeek | None:
        site_entry = catalogue.sites.get(site)
        return rows.get(site_entry.grid) if site_entry else None

    counted = COUNTED
    first, last = week_start.astimezone(CHINA).date(), (end - MICROSECOND).astimezone(CHINA).date()
    for site, day, kind, n in earlier:
        if first <= day <= last and kind in counted and (r := row(site)) is not None:
            setattr(r, counted[kind], getattr(r, counted[kind]) + n)
    for event in events:
        if not (week_start <= event.at < end) or event.kind not in counted:
            continue
        if (r := row(event.site)) is not None:
            setattr(r, counted[event.kind], getattr(r, counted[event.kind]) + 1)
    for case in open_cases:
        if case.status in (CaseStatus.CLOSED, CaseStatus.DISMISSED, CaseStatus.PENDING):
            continue
        if (r := row(case.evidence.site)) is None:
            continue
        r.open_at_end += 1
        due = next_due(case)
        if due is not None and due < end:
            r.overdue.append(case.id)
    return sorted(rows.values(), key=lambda r: r.grid)
