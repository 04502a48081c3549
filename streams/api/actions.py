"""An officer's action against the case as it stands: the worker's table with the actions this
process accepted but the ``enforce`` agent has not applied yet folded on top (a Kafka round
trip), so a second acknowledgement right after the first is refused too. Pure."""

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
from ecowatch.streams.judging.cases import Case, CaseError, RecordFindings, officer_input, step
from ecowatch.streams.judging.engine import context_for
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


def why_unchanged(case: Case, action: OfficerAction) -> str:
    if action.action == "acknowledge" and case.acknowledged_by is not None:
        return f"case {case.id} is already acknowledged by {case.acknowledged_by}"
    return f"case {case.id} is {case.status.value}: this {action.action} would change nothing"


def check_action(
    case: Case,
    in_flight: list[OfficerAction],
    action: OfficerAction,
    catalogue: Catalogue,
) -> None:
    """Refuse (409, with the reason) an action that does not fit the case, or would change
    nothing, once the accepted actions still in flight are applied."""
    policy = catalogue.policy_for(case.evidence.rule, case.evidence.pollutant, case.severity)
    context = context_for(catalogue, action.site)
    current: Case | None = case
    for earlier in in_flight:
        try:
            current, _, _ = step(current, officer_input(earlier), action.at, policy, context)
        except CaseError:
            continue  # the agent will refuse it too
        if current is None:
            raise Refusal(409, f"case {case.id} is {CaseStatus.DISMISSED.value}")
    assert current is not None
    if isinstance(officer_input(action), RecordFindings) and (
        len(current.findings) >= MAX_FINDINGS_PER_CASE
    ):
        raise Refusal(
            409, f"case {case.id} has {MAX_FINDINGS_PER_CASE} findings, the most a case keeps"
        )
    try:
        after, events, _ = step(current, officer_input(action), action.at, policy, context)
    except CaseError as exc:
        raise Refusal(409, str(exc)) from None
    if after is None or not events:
        raise Refusal(409, why_unchanged(current, action))


def gone(case_id: str, events: Iterable[CaseEvent | GoneCase]) -> str | None:
    """Why a case no longer in the table cannot be acted on (closed or dismissed), from the
    site's case log (the cases gone within ``ecowatch.cases``' retention); None if the log
    does not know it either."""
    last = None
    for event in events:
        if event.case_id == case_id:
            last = event
    if last is not None and last.kind in ("closed", "dismissed"):
        when = last.at.astimezone(CHINA).strftime("%Y-%m-%d %H:%M")
        return f"case {case_id} was {last.kind} at {when}"
    return None


def case_row(case: Case, site_id: str, site_name: str) -> dict[str, Any]:
    return {
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
    }
