"""Escalation policies: how long a finding may persist before whom is told, per rule and
pollutant, as durations ('10m', '2h') so tests and demos can compress hours into seconds."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field

from ecowatch.durations import Duration
from ecowatch.schema import PollutantCode, Rule, Severity


class Policy(BaseModel):
    """How a case escalates (see ecowatch.streams.judging.cases for the state machine)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pending: Duration = timedelta(minutes=10)  # debounce: a single spike opens nothing
    deadline: Duration = timedelta(hours=2)  # to rectify or explain after the reminder
    ack_timeout: Duration = timedelta(minutes=30)  # for an officer to acknowledge
    renotify: int = Field(default=1, ge=0)  # rounds sent to the officers again, then raise
    hold: Duration = timedelta(hours=1)  # normal this long before a case may close
    recur_window: Duration = timedelta(days=7)  # a recurrence within it skips the reminder
    measure: str = ""  # the proposed measure an escalation carries
    # False for early warnings (预警): the enterprise is reminded, the officers never paged;
    # the legal judgement (hourly, daily means) has its own cases that do escalate.
    escalate: bool = True


class PolicyEntry(Policy):
    """A catalogue entry: the policy for a rule, a severity, a pollutant, or a mix of them.
    The most specific entry that matches wins; none matching gives the defaults above."""

    rule: Rule | None = None
    pollutant: PollutantCode | None = None
    severity: Severity | None = None

    def matches(self, rule: Rule, pollutant: str | None, severity: Severity) -> bool:
        return (
            (self.rule is None or self.rule is rule)
            and (self.pollutant is None or self.pollutant == pollutant)
            and (self.severity is None or self.severity is severity)
        )

    @property
    def specificity(self) -> tuple[int, int, int]:
        return (self.rule is not None, self.pollutant is not None, self.severity is not None)

    def policy(self) -> Policy:
        return Policy(**self.model_dump(include=set(Policy.model_fields)))


def policy_for(
    entries: Iterable[PolicyEntry], rule: Rule, pollutant: str | None, severity: Severity
) -> Policy:
    matching = [e for e in entries if e.matches(rule, pollutant, severity)]
    if not matching:
        return Policy()
    return max(matching, key=lambda e: e.specificity).policy()
