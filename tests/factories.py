"""Shared factories for the unit tests: one synthetic COD finding at outfall S-OUT-001."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ecowatch.schema import Finding, Rule, Severity

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
        detail="COD hourly mean 81.5 mg/L, 1.63× the limit" if active else "COD normal",
    )
