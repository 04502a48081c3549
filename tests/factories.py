"""Shared factories for the unit tests: synthetic findings at outfall S-OUT-001's COD monitor."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ecowatch.schema import Finding, LimitBound, Rule, Severity

T0 = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)  # 09:00 in China


def hourly_cod(minutes: float, active: bool = True, value: float = 81.5) -> Finding:
    """The hourly COD mean at T0 + ``minutes``: over the 50 mg/L limit, or back to normal."""
    return Finding(
        site="S-OUT-001",
        device="33080200000001",
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
        bound=LimitBound.MAXIMUM,
    )


def finding(rule: Rule, active: bool = True, **facts: object) -> Finding:
    """A finding of ``rule`` at S-OUT-001's COD monitor at T0, with the facts given."""
    fields: dict[str, object] = {
        "site": "S-OUT-001",
        "device": "33080200000001",
        "pollutant": "w01018",
        "rule": rule,
        "severity": Severity.WARNING,
        "active": active,
        "at": T0,
        "unit": "mg/L",
    }
    return Finding.model_validate(fields | facts)
