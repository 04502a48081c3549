"""Escalation policies: how long a finding may persist before whom is told, per rule and
pollutant, as durations ('10m', '2h') so tests and demos can compress hours into seconds."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ecowatch.durations import Duration, PositiveDuration
from ecowatch.schema import MarkType, PollutantCode, Rule, Severity


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


# -- marks (标记) -------------------------------------------------------------------------------

_HOUR, _DAY = timedelta(hours=1), timedelta(days=1)


def _default_afterwards() -> dict[MarkType, timedelta]:
    # Planned work (calibration, maintenance) is marked ahead; what happens to a plant is
    # marked once it is known. Defaults to set from the region's rules.
    return {
        MarkType.PRODUCTION_STOPPED: _DAY,
        MarkType.OUT_OF_OPERATION: _DAY,
        MarkType.STARTUP: _DAY,
        MarkType.SHUTDOWN: _DAY,
        MarkType.FAULT: 12 * _HOUR,
        MarkType.CALIBRATION: _HOUR,
        MarkType.MAINTENANCE: _HOUR,
        MarkType.COMMS_LOSS: _DAY,
        MarkType.NOT_LIABLE: 3 * _DAY,
    }


@dataclass(frozen=True)
class MarkPolicy:
    """How marks are held to account (streams/judging/marks.py); the catalogue's ``marks``
    entries (in policies.yaml) change what they name."""

    # How long after a period has begun it may still be marked; never later.
    afterwards: Mapping[MarkType, timedelta] = field(default_factory=_default_afterwards)
    ahead: timedelta = 30 * _DAY  # how far ahead a period may be marked
    longest: timedelta = 31 * _DAY  # a longer period is marked as several
    proof_within: timedelta = 3 * _DAY  # after the mark is made
    # How much of a start-up or a shutdown its mark explains, from its start.
    allowance: Mapping[MarkType, timedelta] = field(
        default_factory=lambda: {MarkType.STARTUP: 4 * _HOUR, MarkType.SHUTDOWN: 2 * _HOUR}
    )
    monthly_hours: float = 72.0  # more marked hours a month at a site is itself a finding


class MarkEntry(BaseModel):
    """A catalogue entry of the ``marks`` section: one type's deadline and allowance
    (``{type: fault, afterwards: 6h}``, ``{type: startup, allowance: 3h}``), or, without a
    type, the figures of every mark (``{ahead: 14d, proof_within: 2d, monthly_hours: 48}``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: MarkType | None = None
    afterwards: Duration | None = None
    allowance: PositiveDuration | None = None
    ahead: Duration | None = None
    longest: PositiveDuration | None = None
    proof_within: PositiveDuration | None = None
    monthly_hours: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one_kind(self) -> MarkEntry:
        per_type = ("afterwards", "allowance")
        every = ("ahead", "longest", "proof_within", "monthly_hours")
        if self.type is None and any(getattr(self, f) is not None for f in per_type):
            raise ValueError("afterwards and allowance are a type's: name its type")
        if self.type is not None and any(getattr(self, f) is not None for f in every):
            raise ValueError(f"{', '.join(every)} are every mark's: give them without a type")
        return self


def mark_policy(entries: Iterable[MarkEntry]) -> MarkPolicy:
    """The defaults, with what the catalogue's entries name."""
    policy = MarkPolicy()
    for e in entries:
        if e.type is None:
            named = {
                f: getattr(e, f) for f in ("ahead", "longest", "proof_within", "monthly_hours")
            }
            policy = replace(policy, **{k: v for k, v in named.items() if v is not None})
            continue
        if e.afterwards is not None:
            policy = replace(policy, afterwards={**policy.afterwards, e.type: e.afterwards})
        if e.allowance is not None:
            policy = replace(policy, allowance={**policy.allowance, e.type: e.allowance})
    return policy
