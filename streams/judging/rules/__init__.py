"""Detection (发现): the rules that turn a site's readings into findings, as pure functions.

One module per rule family, each rule the same shape; the judge runs them all:

- ``base``: parameters, the site's state, the step a rule sees, emitting a verdict;
- ``limits``: over the limit (real-time, hourly, daily); ``abnormal``: abnormal data;
- ``flags``: missing pollutants, flagged too long; ``offline``: devices gone quiet;
- ``quota``: a discharge meter's quota, its own account, its valve;
- ``verdict``: what a rule says, a :class:`Finding` or a :class:`ValveOrder`;
- ``air_quality``: AQI over 100; ``judge``: :class:`SiteJudge`, every rule over one event.

The Faust agent makes one call per event::

    judge = SiteJudge(catalogue, RuleParams(), aqi_standard="2026")
    judged = judge.judge(table.get(site), event)  # event: Reading | DeviceStatus | SiteTick
    table[site] = judged.state  # SiteState: pydantic, JSON round-trip, bounded in size
    # publish judged.findings; store judged.windows; command judged.valve for the meter

``now`` is the event's own time (the reading's ``ts``, the status's ``at``, the tick's
``now``): the judge never reads a clock, so a replay judges last month exactly as it happened.

Every rule has one shape, :class:`DetectionRule`: ``rule(state, step, ctx) -> verdicts``, a
verdict being a :class:`Finding` or a :class:`ValveOrder`. The judge copies the state once and
hands the copy to each rule in turn, which updates its own part; so ``judge`` is pure while
the rules stay simple. A rule says what it sees through ``base.verdict`` (or ``emit`` when
the condition holds, ``clears`` when it does not), which remember which keys (device,
pollutant, rule) are active, so a clear (``active=False``) is emitted once, after an active
verdict, and never for every normal reading. An active verdict is emitted when it starts,
then again every ``refresh_every`` (fresh evidence for the case), except by the window rules
(hourly, daily): every window over the limit is its own evidence. ``verdict`` builds the
finding only when it is emitted: judging is the worker's hot path, and a normal reading emits
nothing.

Only values flagged N are judged against a limit or checked for abnormal values; the other
flags are counted in the windows (``Finding.flags``). A flag T raises OVER_RANGE; a device that
stays in M, C or D longer than ``flagged_too_long`` raises FLAGGED_TOO_LONG.

Over the limit. Real-time values and hourly means are reminders (WARNING), the daily mean is
the legal judgement (VIOLATION). The limit comes from ``Catalogue.limit_for``: the 1-hour
limit where the site's standard sets one (GB 3095); the wastewater standards set only a daily
limit, which then also serves as the yardstick of the real-time value and the hourly mean (as
the Hefei chain reads an hourly anomaly). An air pollutant with only a 24 h limit (PM2.5,
PM10) is not judged per reading or hour: the AQI rule covers it; O3's 8-hour basis is not
judged here. Concentrations of a discharge meter come from the outfall's analysers, so they
are judged on the site's monitor only (a site with no monitor: on the meter).

The exceedance multiple is value / limit (81.5 against 50: 1.63, "1.63× the limit"); for a
minimum (DO) also value / limit, below 1 (1.5 against 2: 0.75); for a range (pH) none — pH is
logarithmic — and ``limit`` is the end that was crossed. A value exactly at the limit complies.
"""

from ecowatch.streams.judging.rules.abnormal import abnormal_values
from ecowatch.streams.judging.rules.air_quality import aqi_over_100
from ecowatch.streams.judging.rules.base import (
    ActiveVerdict,
    ClosedWindow,
    Context,
    DetectionRule,
    DeviceTrack,
    Event,
    Level,
    RuleParams,
    SiteState,
    SiteTick,
    Step,
    Track,
)
from ecowatch.streams.judging.rules.flags import flagged_too_long, missing_pollutant
from ecowatch.streams.judging.rules.judge import RULES, Judged, SiteJudge
from ecowatch.streams.judging.rules.limits import exceedance, over_limit
from ecowatch.streams.judging.rules.offline import offline
from ecowatch.streams.judging.rules.quota import (
    meter_mismatch,
    quota,
    quota_exhausted,
    valve,
    valve_decision,
)
from ecowatch.streams.judging.rules.stacks import corrected_value_mismatch, high_oxygen
from ecowatch.streams.judging.rules.verdict import Valve, ValveOrder, Verdict

__all__ = [
    "RULES",
    "ActiveVerdict",
    "ClosedWindow",
    "Context",
    "DetectionRule",
    "DeviceTrack",
    "Event",
    "Judged",
    "Level",
    "RuleParams",
    "SiteJudge",
    "SiteState",
    "SiteTick",
    "Step",
    "Track",
    "Valve",
    "ValveOrder",
    "Verdict",
    "abnormal_values",
    "aqi_over_100",
    "corrected_value_mismatch",
    "exceedance",
    "flagged_too_long",
    "high_oxygen",
    "meter_mismatch",
    "missing_pollutant",
    "offline",
    "over_limit",
    "quota",
    "quota_exhausted",
    "valve",
    "valve_decision",
]
