"""The weekly settlement (周周能结清): per grid, the week's cases opened, acknowledged, closed,
and what is overdue at the week's end. Pure: computed from case events and open cases."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from pydantic import BaseModel, Field

from ecowatch.config.catalogue import Catalogue
from ecowatch.streams.cases import Case, CaseEvent, CaseStatus, next_due

WEEK = timedelta(days=7)
# How far back a site's case log reaches: the weeks an operator may still ask about.
LOG_WEEKS = 8


class SiteCaseLog(BaseModel):
    """A site's case events of the last :data:`LOG_WEEKS` weeks (a Faust table value), so
    the weekly settlement survives a worker's restart. InfluxDB keeps the full history."""

    events: list[CaseEvent] = Field(default_factory=list)

    def add(self, events: Iterable[CaseEvent]) -> SiteCaseLog:
        kept = [*self.events, *events]
        if not kept:
            return self
        horizon = max(e.at for e in kept) - LOG_WEEKS * WEEK
        return SiteCaseLog(events=[e for e in kept if e.at >= horizon])


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
) -> list[GridWeek]:
    """One row per grid (every grid, even a quiet one) for ``[week_start, week_start + 7 d)``."""
    end = week_start + WEEK
    rows = {
        g.id: GridWeek(grid=g.id, name=g.name, district=g.district)
        for g in catalogue.grids.values()
    }

    def row(site: str) -> GridWeek | None:
        site_entry = catalogue.sites.get(site)
        return rows.get(site_entry.grid) if site_entry else None

    counted = {
        "reminded": "opened",
        "escalated": "escalated",
        "acknowledged": "acknowledged",
        "closed": "closed",
    }
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
