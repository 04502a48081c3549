"""Marks held to account (streams/judging/marks.py): a mark is not a way out of judging. A
mark still without proof past its deadline is a finding, and so is a month with more marked
hours at a site than the policy allows. Judged as time passes and as marks change, not on
every reading."""

from __future__ import annotations

from datetime import datetime

from ecowatch.clock import CHINA
from ecowatch.schema import Finding, Mark, MarkEvent, Rule, Severity
from ecowatch.streams.judging.marks import marked_hours, proof_overdue
from ecowatch.streams.judging.rules.base import (
    Context,
    SiteState,
    SiteTick,
    Step,
    new_finding,
    verdict,
)
from ecowatch.streams.judging.rules.verdict import Verdict
from ecowatch.streams.judging.validity import month_period


def marks_held_to_account(state: SiteState, step: Step, ctx: Context) -> list[Verdict]:
    if not state.marks or not isinstance(step.event, SiteTick | MarkEvent):
        return []
    return _proof_missing(state, ctx, step.now) + _marked_too_long(state, ctx, step.now)


def _proof_missing(state: SiteState, ctx: Context, now: datetime) -> list[Verdict]:
    """One finding while any of the site's marks is without proof past its deadline (one case
    per site and rule), naming the first of them."""
    overdue = [m for m in state.marks.values() if proof_overdue(m, now, ctx.marks)]
    rule = Rule.MARK_PROOF_MISSING

    def build(active: bool) -> Finding:
        mark: Mark | None = overdue[0] if overdue else None
        return new_finding(
            state,
            rule,
            Severity.WARNING,
            active=active,
            at=now,
            mark=mark.id if mark else None,
            window_start=mark.start if mark else None,
            window_end=mark.end if mark else None,
        )

    return verdict(state, ctx, now, bool(overdue), None, None, rule, build)


def _marked_too_long(state: SiteState, ctx: Context, now: datetime) -> list[Verdict]:
    """The month's hours under the enterprise's pending or accepted marks, over the policy's."""
    local = now.astimezone(CHINA)
    start, end = month_period(local.year, local.month)
    hours = marked_hours(state.marks.values(), start, end)
    limit, rule = ctx.marks.monthly_hours, Rule.MARKED_TOO_LONG

    def build(active: bool) -> Finding:
        return new_finding(
            state,
            rule,
            Severity.WARNING,
            active=active,
            at=now,
            value=round(hours, 1),
            limit=limit,
            unit="h",
            period=local.strftime("%Y-%m"),
            window_start=start,
            window_end=end,
        )

    return verdict(state, ctx, now, hours > limit, None, None, rule, build)
