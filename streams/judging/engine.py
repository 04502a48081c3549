"""A site's cases, driven by findings, time and officers: the glue between the rules and the
case state machine, still pure. The Faust worker keeps one :class:`SiteCases` per site in a
table; the replay keeps them in a dict. Both call the same functions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from pydantic import AwareDatetime, BaseModel, Field

from ecowatch.clock import CHINA
from ecowatch.config.catalogue import Catalogue, OfficerRole
from ecowatch.config.policies import MarkPolicy
from ecowatch.schema import CaseEvent, CaseStatus, Finding, MarkEvent, Notification
from ecowatch.streams.judging.cases import (
    OPEN,
    Case,
    CaseContext,
    Marked,
    PersonInput,
    Reassign,
    Seen,
    Tick,
    late_evidence,
    next_due,
    open_case,
    step,
)
from ecowatch.streams.judging.marks import explains

HISTORY = timedelta(days=30)


class SiteCases(BaseModel):
    """Everything a site's cases need to carry on after a restart (a Faust table value)."""

    cases: dict[str, Case] = Field(default_factory=dict)  # by key: open, pending, just closed
    last_closed: dict[str, AwareDatetime] = Field(default_factory=dict)  # key → closed at
    # Openings per China day of the last 30 days, for 近30天本站案件: at most 31 entries. (One
    # time per opening, as before, grew all month: +67 % from day 10 to day 30 in the soak.)
    opened_per_day: dict[date, int] = Field(default_factory=dict)
    opened: list[AwareDatetime] = Field(default_factory=list)  # the old form, read once

    def count_opening(self, now: datetime) -> int:
        """Count a case opened ``now``; the openings of the last 30 days, this one included."""
        for t in self.opened:  # a value written by an older version
            day = t.astimezone(CHINA).date()
            self.opened_per_day[day] = self.opened_per_day.get(day, 0) + 1
        self.opened = []
        today = now.astimezone(CHINA).date()
        oldest = (now - HISTORY).astimezone(CHINA).date()
        self.opened_per_day = {d: n for d, n in self.opened_per_day.items() if d > oldest}
        self.opened_per_day[today] = self.opened_per_day.get(today, 0) + 1
        return sum(self.opened_per_day.values())


@dataclass
class Outcome:
    events: list[CaseEvent] = field(default_factory=list)
    notifications: list[Notification] = field(default_factory=list)

    def add(self, events: list[CaseEvent], notes: list[Notification]) -> None:
        self.events += events
        self.notifications += notes


def context_for(catalogue: Catalogue, site_id: str, grid_id: str | None = None) -> CaseContext:
    """Who a site's case concerns: the people of ``grid_id`` (a reassigned case's grid), else
    of the site's grid. A grid the catalogue no longer has falls back to the site's: the case
    goes on with someone rather than with nobody."""
    site = catalogue.sites[site_id]
    grid = catalogue.grids.get(grid_id or "") or catalogue.grids[site.grid]
    return CaseContext(
        site=site.id,
        site_name=site.name,
        enterprise=site.enterprise,
        grid=grid.id,
        officers=[o.id for o in grid.officers if o.role is OfficerRole.OFFICER],
        supervisors=[o.id for o in grid.officers if o.role is OfficerRole.SUPERVISOR],
    )


def case_context(catalogue: Catalogue, case: Case) -> CaseContext:
    """Who the case concerns now: its own grid's people once reassigned (改派)."""
    return context_for(catalogue, case.evidence.site, case.grid)


def grid_of(catalogue: Catalogue, case: Case) -> str:
    """The grid the case is handled by (its own once reassigned, else its site's), as
    :func:`context_for` has it."""
    if case.grid is not None and case.grid in catalogue.grids:
        return case.grid
    return catalogue.sites[case.evidence.site].grid


def resolved(action: PersonInput, site_id: str, catalogue: Catalogue) -> PersonInput:
    """The act with what the pure machine cannot look up: a 改派's new grid's people for the
    site's case (left None for a grid the catalogue does not have: the machine refuses it)."""
    if isinstance(action, Reassign) and action.grid in catalogue.grids:
        return action.model_copy(update={"to": context_for(catalogue, site_id, action.grid)})
    return action


def _retire(state: SiteCases, key: str, case: Case | None) -> None:
    """Keep open cases; a closed one leaves its closing time (for recurrences) and goes."""
    if case is None:
        state.cases.pop(key, None)
    elif case.status is CaseStatus.CLOSED:
        state.cases.pop(key, None)
        assert case.closed_at is not None
        state.last_closed[key] = case.closed_at
    else:
        state.cases[key] = case


def on_findings(
    state: SiteCases, findings: Iterable[Finding], now: datetime, catalogue: Catalogue
) -> tuple[SiteCases, Outcome]:
    state = state.model_copy(deep=True)
    out = Outcome()
    for finding in findings:
        key = finding.case_key
        policy = catalogue.policy_for(finding.rule, finding.pollutant, finding.severity)
        case = state.cases.get(key)
        context = context_for(catalogue, finding.site, case.grid if case else None)
        if finding.late and case is not None:
            out.add([late_evidence(case, finding, now)], [])
            continue  # the open case follows the present's data
        if case is None:
            if not finding.active:
                continue  # normal data with no case: nothing to follow up
            case, events, notes = open_case(
                finding,
                now,
                policy,
                context,
                last_closed=state.last_closed.get(key),
                history_30d=state.count_opening(now),
            )
        else:
            case, events, notes = step(case, Seen(finding=finding), now, policy, context)
        out.add(events, notes)
        _retire(state, key, case)
    return state, out


def on_tick(state: SiteCases, now: datetime, catalogue: Catalogue) -> tuple[SiteCases, Outcome]:
    state = state.model_copy(deep=True)
    out = Outcome()
    for key, case in list(state.cases.items()):
        if case.status not in OPEN | {CaseStatus.PENDING}:
            continue
        policy = catalogue.policy_for(case.evidence.rule, case.evidence.pollutant, case.severity)
        new, events, notes = step(case, Tick(), now, policy, case_context(catalogue, case))
        out.add(events, notes)
        _retire(state, key, new)
    return state, out


def on_mark(
    state: SiteCases, event: MarkEvent, now: datetime, catalogue: Catalogue, policy: MarkPolicy
) -> tuple[SiteCases, Outcome]:
    """A mark's change at the site: each open case whose evidence it is about hears of it
    (streams/judging/cases.py, ``Marked``)."""
    state = state.model_copy(deep=True)
    out = Outcome()
    marked = Marked(mark=event.mark, event=event.kind, actor=event.actor)
    for key, case in list(state.cases.items()):
        if case.status not in OPEN | {CaseStatus.PENDING}:
            continue
        if not explains(event.mark, case.evidence, policy):
            continue
        rule_policy = catalogue.policy_for(
            case.evidence.rule, case.evidence.pollutant, case.severity
        )
        new, events, notes = step(case, marked, now, rule_policy, case_context(catalogue, case))
        out.add(events, notes)
        _retire(state, key, new)
    return state, out


def on_action(
    state: SiteCases,
    case_id: str,
    action: PersonInput,
    now: datetime,
    catalogue: Catalogue,
) -> tuple[SiteCases, Outcome]:
    """A person's act on a case. KeyError: no such open case; CaseError: not now."""
    state = state.model_copy(deep=True)
    case = next((c for c in state.cases.values() if c.id == case_id), None)
    if case is None:
        raise KeyError(case_id)
    key = case.key
    policy = catalogue.policy_for(case.evidence.rule, case.evidence.pollutant, case.severity)
    asked = resolved(action, case.evidence.site, catalogue)
    new, events, notes = step(case, asked, now, policy, case_context(catalogue, case))
    out = Outcome(events, notes)
    _retire(state, key, new)
    return bounded(state), out


# A site's cases are one Kafka record (the site-cases changelog): at most 1 MiB. Each case keeps
# at most 20 findings of 4 KiB (the API's limits), but a site may hold dozens of open cases.
SITE_CASES_BYTES = 768 * 1024
SHORTENED = 60  # characters an older finding keeps once the site is over its budget
ACTION_IDS_FLOOR = 10  # action ids a case keeps at least, once the site is over its budget
_HISTORY = "(full text in the case's history)"


def bounded(state: SiteCases) -> SiteCases:
    """``state`` within :data:`SITE_CASES_BYTES`: over it, the older findings of the case with
    the most text are shortened, then folded into one line; each case's latest finding stays
    whole. Nothing is lost to an officer: every finding is in full in its ``findings_recorded``
    event (Kafka ``ecowatch.cases``, InfluxDB ``case_event``)."""
    while len(state.model_dump_json().encode()) > SITE_CASES_BYTES:
        cases = [c for c in state.cases.values() if len(c.findings) > 1]
        if not cases:
            break
        case = max(cases, key=lambda c: sum(len(f.encode()) for f in c.findings[:-1]))
        older = case.findings[:-1]
        if any(len(f) > SHORTENED + len(_HISTORY) + 3 for f in older):
            older = [f if len(f) <= SHORTENED else f"{f[:SHORTENED]} … {_HISTORY}" for f in older]
        elif len(older) > 1:
            older = [f"{len(older)} earlier findings {_HISTORY}"]
        else:
            break
        case.findings[:-1] = older
    # Then the older action ids (a phone retries within minutes: the latest few suffice).
    for case in sorted(state.cases.values(), key=lambda c: -len(c.action_ids)):
        if len(case.action_ids) <= ACTION_IDS_FLOOR:
            break
        if len(state.model_dump_json().encode()) <= SITE_CASES_BYTES:
            break
        case.action_ids = case.action_ids[-ACTION_IDS_FLOOR:]
    return state


def due(state: SiteCases) -> datetime | None:
    """The earliest time this site's cases need a tick."""
    times = [t for c in state.cases.values() if (t := next_due(c)) is not None]
    return min(times) if times else None
