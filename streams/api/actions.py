"""An officer's action against the case as it stands: the worker's table with the actions this
process accepted but the ``enforce`` agent has not applied yet folded on top (a Kafka round
trip), so a second acknowledgement right after the first is refused too. Pure."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ecowatch.alerts.wording import both, finding_text
from ecowatch.clock import CHINA
from ecowatch.config.catalogue import Catalogue
from ecowatch.schema import CaseEvent, CaseStatus, OfficerAction
from ecowatch.streams.api.requests import MAX_FINDINGS_PER_CASE, Refusal
from ecowatch.streams.judging.cases import Case, CaseError, RecordFindings, officer_input, step
from ecowatch.streams.judging.engine import context_for
from ecowatch.streams.judging.report import GoneCase

PENDING_SECONDS = 60.0  # how long an accepted action counts before the table shows it


@dataclass
class InFlight:
    """Actions this process accepted that the ``enforce`` agent may not have applied yet (a
    Kafka round trip): folded over the table's case when the next action is checked."""

    seconds: float = PENDING_SECONDS
    clock: Callable[[], float] = time.monotonic
    _actions: dict[tuple[str, str], list[tuple[float, OfficerAction]]] = field(default_factory=dict)

    def of(self, site: str, case_id: str) -> list[OfficerAction]:
        now = self.clock()
        key = (site, case_id)
        kept = [(t, a) for t, a in self._actions.get(key, []) if now - t < self.seconds]
        if kept:
            self._actions[key] = kept
        else:
            self._actions.pop(key, None)
        return [a for _, a in kept]

    def add(self, action: OfficerAction) -> None:
        self.prune()  # forget what expired, of every case: not only of this one
        self._actions.setdefault((action.site, action.case_id), []).append((self.clock(), action))

    def prune(self) -> None:
        """Forgets every action past ``seconds``: a case acted on once and never again would
        otherwise be held for as long as the process runs."""
        now = self.clock()
        for key, actions in list(self._actions.items()):
            kept = [(t, a) for t, a in actions if now - t < self.seconds]
            if kept:
                self._actions[key] = kept
            else:
                del self._actions[key]

    def __len__(self) -> int:
        """How many cases have actions in flight (or not yet forgotten)."""
        return len(self._actions)

    def drop(self, action: OfficerAction) -> None:
        key = (action.site, action.case_id)
        kept = [(t, a) for t, a in self._actions.get(key, []) if a is not action]
        if kept:
            self._actions[key] = kept
        else:
            self._actions.pop(key, None)


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
