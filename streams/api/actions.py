"""An officer's (or operator's) action against the case as it stands: the worker's table with
the actions this process accepted but the ``enforce`` agent has not applied yet folded on top (a
Kafka round trip), so a second acknowledgement right after the first is refused too, and a
repeat of an action (its ``action_id``) is known as one before the agent has applied the
first. Pure."""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from ecowatch.alerts.wording import both, finding_text
from ecowatch.clock import CHINA
from ecowatch.config.catalogue import Catalogue
from ecowatch.schema import CaseEvent, CaseStatus, OfficerAction
from ecowatch.streams.api.requests import MAX_FINDINGS_PER_CASE, Refusal
from ecowatch.streams.judging.cases import (
    Case,
    CaseError,
    RecordFindings,
    offered,
    officer_input,
    step,
)
from ecowatch.streams.judging.engine import case_context, resolved
from ecowatch.streams.judging.report import GoneCase

PENDING_SECONDS = 60.0  # how long an accepted action counts before the table shows it
T = TypeVar("T")


@dataclass
class InFlight(Generic[T]):
    """What this process sent that the ``enforce`` agent may not have applied yet (a Kafka
    round trip), by what it is about: folded over the table when the next request about it
    is checked, so a second request right after the first is checked against it too.
    Subclasses say what an item is about (:meth:`key_of`)."""

    seconds: float = PENDING_SECONDS
    clock: Callable[[], float] = time.monotonic
    _items: dict[Hashable, list[tuple[float, T]]] = field(default_factory=dict)

    def key_of(self, item: T) -> Hashable:
        raise NotImplementedError

    def of(self, *key: str) -> list[T]:
        """The items about ``key`` still in flight, oldest first."""
        self.prune()
        return [item for _, item in self._items.get(key, [])]

    def add(self, item: T) -> None:
        self.prune()  # forget what expired, of everything: not only of this key
        self._items.setdefault(self.key_of(item), []).append((self.clock(), item))

    def prune(self) -> None:
        """Forgets every item past ``seconds``: a case or site acted on once and never again
        would otherwise be held for as long as the process runs."""
        now = self.clock()
        for key, items in list(self._items.items()):
            kept = [(t, i) for t, i in items if now - t < self.seconds]
            if kept:
                self._items[key] = kept
            else:
                del self._items[key]

    def drop(self, item: T) -> None:
        """Takes back an item that could not be sent."""
        key = self.key_of(item)
        kept = [(t, i) for t, i in self._items.get(key, []) if i is not item]
        if kept:
            self._items[key] = kept
        else:
            self._items.pop(key, None)

    def __len__(self) -> int:
        """How many keys have items in flight (or not yet forgotten)."""
        return len(self._items)


class ActionsInFlight(InFlight[OfficerAction]):
    """Officers' actions, by site and case."""

    def key_of(self, item: OfficerAction) -> Hashable:
        return (item.site, item.case_id)


def why_unchanged(case: Case, action: OfficerAction) -> Refusal:
    if action.action == "acknowledge" and case.acknowledged_by is not None:
        who = case.acknowledged_by
        return Refusal(
            409, f"case {case.id} is already acknowledged by {who}", code="already_acknowledged"
        )
    return Refusal(
        409,
        f"case {case.id} is {case.status.value}: this {action.action} would change nothing",
        code="no_change",
    )


def already_done(case: Case | None, in_flight: Iterable[OfficerAction], action_id: str) -> bool:
    """Whether an action of this id was taken on the case: applied (the case keeps the latest
    ids) or accepted here and still on its way to the agent."""
    if case is not None and action_id in case.action_ids:
        return True
    return any(a.action_id == action_id for a in in_flight)


def check_action(
    case: Case,
    in_flight: list[OfficerAction],
    action: OfficerAction,
    catalogue: Catalogue,
    grids: frozenset[str] | None = None,
) -> None:
    """Refuse (409, with the reason) an action that does not fit the case, or would change
    nothing, once the accepted actions still in flight are applied; and (403) an officer's
    (``grids``: theirs; None: an operator) on a case that is not their grids' by then."""
    policy = catalogue.policy_for(case.evidence.rule, case.evidence.pollutant, case.severity)
    current = case
    for earlier in in_flight:
        # A 改派 in flight changes whose case it is: each act is folded on the case as it is
        # once the earlier ones are applied.
        context = case_context(catalogue, current)
        if not earlier.officer.startswith("operator:") and earlier.officer not in (
            *context.officers,
            *context.supervisors,
        ):
            # Accepted while the case was another grid's: the table, which has the case
            # reassigned since, has it applied already (folded again, an old grid's
            # acknowledgement would hold the case the new grid's officers must take).
            continue
        try:
            asked_before = resolved(officer_input(earlier), action.site, catalogue)
            after, _, _ = step(current, asked_before, action.at, policy, context)
        except CaseError:
            continue  # the agent will refuse it too
        if after is None:
            dismissed = CaseStatus.DISMISSED.value
            raise Refusal(409, f"case {case.id} is {dismissed}", code=f"case_{dismissed}")
        current = after
    context = case_context(catalogue, current)
    if grids is not None and context.grid not in grids:
        raise Refusal(
            403, f"case {case.id} is in grid {context.grid}, not yours", code="not_your_grid"
        )
    try:
        asked = resolved(officer_input(action), action.site, catalogue)
    except CaseError as exc:
        raise Refusal(400, str(exc), code=exc.code) from None
    if isinstance(asked, RecordFindings) and len(current.findings) >= MAX_FINDINGS_PER_CASE:
        raise Refusal(
            409,
            f"case {case.id} has {MAX_FINDINGS_PER_CASE} findings, the most a case keeps",
            code="findings_full",
        )
    try:
        after, events, _ = step(current, asked, action.at, policy, context)
    except CaseError as exc:
        if exc.code == "invalid_field":  # a 改派 to a grid the catalogue does not have
            raise Refusal(400, str(exc), code=exc.code, field="grid") from None
        raise Refusal(409, str(exc), code=exc.code) from None
    if after is None or not events:
        raise why_unchanged(current, action)


def gone(case_id: str, events: Iterable[CaseEvent | GoneCase]) -> Refusal | None:
    """Why a case no longer in the table cannot be acted on (closed or dismissed), from the
    site's case log (the cases gone within ``ecowatch.cases``' retention); None if the log
    does not know it either."""
    last = None
    for event in events:
        if event.case_id == case_id:
            last = event
    if last is not None and last.kind in ("closed", "dismissed"):
        when = last.at.astimezone(CHINA).strftime("%Y-%m-%d %H:%M")
        return Refusal(409, f"case {case_id} was {last.kind} at {when}", code=f"case_{last.kind}")
    return None


def closed_by(case_id: str, events: Iterable[CaseEvent | GoneCase], action_id: str) -> bool:
    """Whether the action of this id is the one that closed the case (its retry after the case
    left the table is a duplicate, not a refusal)."""
    return any(e.case_id == case_id and e.action_id == action_id for e in events)


def can(case: Case, operator: bool) -> list[str]:
    """What the caller may do on the case now (``offered``), less findings once the case
    holds as many as it keeps: the phone offers only what the API accepts."""
    acts = offered(case, operator)
    if len(case.findings) >= MAX_FINDINGS_PER_CASE:
        acts = [a for a in acts if a not in ("findings", "photos")]
    return acts


def case_row(
    case: Case, site_id: str, site_name: str, grid: str = "", acts: list[str] | None = None
) -> dict[str, Any]:
    """A case as the API lists it; ``acts``: what the caller may do on it (:func:`can`)."""
    row = {
        "id": case.id,
        "site": site_id,
        "site_name": site_name,
        "status": case.status.value,
        "rule": case.evidence.rule.value,
        "pollutant": case.evidence.pollutant,
        "detail": both(finding_text, case.evidence),  # {"zh": …, "en": …}
        "first_seen": case.first_seen.isoformat(),
        # What the case waits for, in data time: the enterprise's rectify-by (set when it is
        # reminded) and the officers' acknowledge-by (set when it is escalated; None once taken).
        "deadline": case.deadline.isoformat() if case.deadline else None,
        "ack_due": case.ack_due.isoformat() if case.ack_due else None,
        "acknowledged_by": case.acknowledged_by,
        "findings": case.findings,
        "grid": grid,
        # The latest 督办's deadline for the officers (data time), if an operator pressed them.
        "supervised_due": case.supervised_due.isoformat() if case.supervised_due else None,
    }
    if acts is not None:
        row["can"] = acts
    return row
