"""Shared factories for the tests: readings, findings and notifications at the synthetic city's
outfall S-OUT-001 (tests/catalogue.py), at T0 unless told otherwise. Each takes overrides for
any field, so a test says only what it is about."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from ecowatch.config.catalogue import Catalogue
from ecowatch.schema import (
    Audience,
    CaseStep,
    Finding,
    LimitBound,
    Measurement,
    MeterStatus,
    Notification,
    Reading,
    ReadingSource,
    Rule,
    Severity,
)
from ecowatch.streams.judging.engine import SiteCases, on_findings, on_tick

T0 = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)  # 09:00 in China, a Monday
SITE, MONITOR = "S-OUT-001", "33080200000001"  # the chemical plant's outfall and COD monitor
CASE = "20261123090000-S-OUT-001-w01018-hourly_over_limit"  # its case of T0's hourly COD

# A value as a test writes it: a number (flag N), or (number, flag).
Value = float | tuple[float, str]


def reading(
    values: Mapping[str, Value],
    at: datetime = T0,
    site: str = SITE,
    device: str = MONITOR,
    model: str = "outfall_monitor",
    meter: MeterStatus | None = None,
    **fields: object,
) -> Reading:
    """A reading as the ingest contract hands it to the worker (over MQTT, received at once)."""
    measured = {
        code: Measurement(value=v[0], flag=v[1]) if isinstance(v, tuple) else Measurement(value=v)
        for code, v in values.items()
    }
    base: dict[str, object] = {
        "site": site,
        "device": device,
        "model": model,
        "ts": at,
        "values": measured,
        "meter": meter,
        "source": ReadingSource.MQTT,
        "received_at": at,
    }
    return Reading.model_validate(base | fields)


def hourly_cod(minutes: float, active: bool = True, value: float = 81.5) -> Finding:
    """The hourly COD mean at T0 + ``minutes``: over the 50 mg/L limit, or back to normal."""
    return Finding(
        site=SITE,
        device=MONITOR,
        pollutant="w01018",
        rule=Rule.HOURLY_OVER_LIMIT,
        severity=Severity.WARNING,
        active=active,
        at=T0 + timedelta(minutes=minutes),
        value=value if active else 40.0,
        limit=50.0,
        unit="mg/L",
        multiple=value / 50 if active else 0.8,
        limit_source="GB 8978-1996 first grade",
        limit_source_zh="GB 8978-1996 一级标准",
        bound=LimitBound.MAXIMUM,
    )


def finding(rule: Rule, active: bool = True, **facts: object) -> Finding:
    """A finding of ``rule`` at S-OUT-001's COD monitor at T0, with the facts given."""
    fields: dict[str, object] = {
        "site": SITE,
        "device": MONITOR,
        "pollutant": "w01018",
        "rule": rule,
        "severity": Severity.WARNING,
        "active": active,
        "at": T0,
        "unit": "mg/L",
    }
    return Finding.model_validate(fields | facts)


def evidence(**changes: object) -> Finding:
    """The evidence of :data:`CASE`: the hour to T0 at 81.5 mg/L against the permit's 50."""
    return finding(
        Rule.HOURLY_OVER_LIMIT,
        severity=Severity.VIOLATION,
        value=81.5,
        limit=50.0,
        multiple=81.5 / 50,
        limit_source="permit 91330800MA28F0A01X001P",
        limit_source_zh="排污许可证 91330800MA28F0A01X001P",
        bound=LimitBound.MAXIMUM,
        window_start=T0 - timedelta(hours=1),
        window_end=T0,
        flags={"N": 56, "M": 3, "C": 1},
    ).model_copy(update=changes)


def notification(
    step: CaseStep = CaseStep.ESCALATE,
    audience: Audience = Audience.OFFICERS,
    round_: int = 0,
    **changes: object,
) -> Notification:
    """A notification of :data:`CASE`, its deadline two hours after T0."""
    base: dict[str, object] = {
        "key": f"{CASE}:{step.value}:{audience.value}:{round_}",
        "case_id": CASE,
        "step": step,
        "audience": audience,
        "site": SITE,
        "site_name": "巨化精细化工总排口",
        "enterprise": "E-001",
        "grid": "G-KC-01",
        "recipients": [],
        "severity": Severity.VIOLATION,
        "rule": Rule.HOURLY_OVER_LIMIT,
        "pollutant": "w01018",
        "evidence": evidence(),
        "deadline": T0 + timedelta(hours=2),
        "history_30d": 3,
        "proposed_measure": "",
        "created_at": T0,
    }
    return Notification.model_validate(base | changes)


def site_cases(
    catalogue: Catalogue, after: timedelta = timedelta(0), *findings: Finding
) -> SiteCases:
    """S-OUT-001's cases as the engine has them ``after`` T0, opened by ``findings`` (T0's
    hourly COD over its limit unless told): pending at once, reminded within the hour,
    escalated to the officers two hours on (the synthetic city's policy)."""
    state, _ = on_findings(SiteCases(), list(findings) or [hourly_cod(0)], T0, catalogue)
    if after:
        state, _ = on_tick(state, T0 + after, catalogue)
    return state
