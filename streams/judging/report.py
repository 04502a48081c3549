"""The weekly settlement (周周能结清): per grid, the week's cases opened, acknowledged, closed,
and what is overdue at the week's end; the marks made, accepted and rejected, and the sites of
the lowest transmission-validity rates. Pure: computed from case events (or their counts, as
InfluxDB's trail gives them) and open cases. And a site's log of the cases gone (closed or
dismissed), for the case API."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta

from pydantic import AwareDatetime, BaseModel, Field

from ecowatch import topics
from ecowatch.clock import CHINA
from ecowatch.config.catalogue import Catalogue
from ecowatch.schema import CaseEvent, CaseStatus
from ecowatch.streams.judging.cases import Case, next_due
from ecowatch.streams.judging.engine import grid_of
from ecowatch.streams.judging.validity import Counts, site_rates

WEEK = timedelta(days=7)
MICROSECOND = timedelta(microseconds=1)
# What the settlement counts (from InfluxDB's ``case_event`` trail: distinct case ids per
# site and kind in the week), under the name of its column.
COUNTED = {
    "reminded": "opened",
    "escalated": "escalated",
    "acknowledged": "acknowledged",
    "closed": "closed",
}
# What tells an officer that a case is gone: the only kinds a site's case log keeps.
GONE = frozenset({"closed", "dismissed"})
# How long the log keeps a case gone: as long as its topic (``ecowatch.cases``) keeps the
# event. Older, an action on the case is answered "no open case"; the trail is in InfluxDB.
LOG_KEEP = topics.RETENTION
# A safety cap: a site closing this many cases in a retention is far past any real one. Each
# entry is about 100 bytes of JSON: at most about 100 KB per site, far below Kafka's 1 MiB.
LOG_EVENTS = 1000


class GoneCase(BaseModel):
    """A case closed or dismissed: what the case API answers an action on it with."""

    case_id: str
    kind: str  # "closed" | "dismissed"
    at: AwareDatetime
    action_id: str | None = None  # the act that closed it: a retry of it is a duplicate


class SiteCaseLog(BaseModel):
    """A site's cases closed or dismissed within :data:`LOG_KEEP` of its newest one (a Faust
    table value, so it survives a worker's restart): the case API tells an officer acting on
    one that it is gone, and when. Bounded by time and by :data:`LOG_EVENTS`. The weekly
    settlement counts from InfluxDB's trail, which keeps the whole history.

    A value written by an older version (every counted kind, with ``earlier`` day counts)
    still reads: its other fields are ignored, and its other kinds leave at the next
    :meth:`add`."""

    events: list[GoneCase] = Field(default_factory=list)

    def add(self, events: Iterable[CaseEvent]) -> SiteCaseLog:
        new = [
            GoneCase(case_id=e.case_id, kind=e.kind, at=e.at, action_id=e.action_id)
            for e in events
            if e.kind in GONE
        ]
        if not new:
            return self
        kept = sorted([*(e for e in self.events if e.kind in GONE), *new], key=lambda e: e.at)
        horizon = kept[-1].at - LOG_KEEP
        kept = [e for e in kept if e.at >= horizon][-LOG_EVENTS:]
        return SiteCaseLog(events=kept)


# What the settlement counts of the marks' trail (InfluxDB ``mark``: distinct mark ids per site
# and kind in the week), under the name of its column.
MARKS_COUNTED = {
    "declared": "marks_made",
    "accepted": "marks_accepted",
    "rejected": "marks_rejected",
}
LOWEST_SITES = 3  # a grid's sites named for the lowest transmission-validity rates


class SiteRate(BaseModel):
    site: str
    transmission_validity_rate: float | None


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
    # The enterprises' marks (标记) of the grid's sites this week: made, accepted, rejected.
    marks_made: int = 0
    marks_accepted: int = 0
    marks_rejected: int = 0
    # The grid's sites with the lowest transmission-validity rate over the week (lowest first).
    lowest_rates: list[SiteRate] = []

    @property
    def settled(self) -> bool:
        """Every case of the week answered: nothing overdue."""
        return not self.overdue


def weekly_report(
    events: Iterable[CaseEvent],
    open_cases: Iterable[Case],
    week_start: datetime,
    catalogue: Catalogue,
    counts: Iterable[tuple[str, date, str, int]] = (),
    marks: Iterable[tuple[str, str, int]] = (),
    validity: Counts | None = None,
    grid_counts: Iterable[tuple[str, date, str, int]] = (),
) -> list[GridWeek]:
    """One row per grid (every grid, even a quiet one) for ``[week_start, week_start + 7 d)``;
    ``counts``: events counted already, (site, China date, kind, how many): the worker
    passes the week's counts from InfluxDB (``InfluxWriter.case_counts``) this way.
    ``marks``: the week's marks per (site, kind: declared, accepted, rejected, how many);
    ``validity``: the week's days that arrived per (site, device, pollutant, day): each grid
    names its sites of the lowest transmission-validity rate, what is owed from the
    catalogue (a silent device owes all the same). A reassigned case (改派) is counted in its
    grid, not its site's: ``grid_counts`` are its steps' counts by (grid, China date, kind, how
    many), each step in the grid that held the case then; its events carry ``grid``."""
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
    for site, day, kind, n in counts:
        if first <= day <= last and kind in counted and (r := row(site)) is not None:
            setattr(r, counted[kind], getattr(r, counted[kind]) + n)
    for grid, day, kind, n in grid_counts:
        if first <= day <= last and kind in counted and (r := rows.get(grid)) is not None:
            setattr(r, counted[kind], getattr(r, counted[kind]) + n)
    for event in events:
        if not (week_start <= event.at < end) or event.kind not in counted:
            continue
        r = rows.get(event.grid) if event.grid else row(event.site)
        if r is not None:
            setattr(r, counted[event.kind], getattr(r, counted[event.kind]) + 1)
    for site, kind, n in marks:
        if kind in MARKS_COUNTED and (r := row(site)) is not None:
            column = MARKS_COUNTED[kind]
            setattr(r, column, getattr(r, column) + n)
    if validity is not None:
        days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
        by_grid: dict[str, list[SiteRate]] = {}
        for rates in site_rates(catalogue, validity, days, None):
            rate = rates.total.transmission_validity_rate
            if rate is not None:
                grid = catalogue.sites[rates.site].grid
                by_grid.setdefault(grid, []).append(
                    SiteRate(site=rates.site, transmission_validity_rate=rate)
                )
        for grid, sites in by_grid.items():
            ranked = sorted(sites, key=lambda s: (s.transmission_validity_rate, s.site))
            rows[grid].lowest_rates = ranked[:LOWEST_SITES]
    for case in open_cases:
        if case.status in (CaseStatus.CLOSED, CaseStatus.DISMISSED, CaseStatus.PENDING):
            continue
        # A case reassigned (改派) is open at the week's end in its own grid.
        if (r := rows.get(grid_of(catalogue, case))) is None:
            continue
        r.open_at_end += 1
        due = next_due(case)
        if due is not None and due < end:
            r.overdue.append(case.id)
    return sorted(rows.values(), key=lambda r: r.grid)
