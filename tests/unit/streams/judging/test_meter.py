"""The discharge meter's account as the platform keeps it (HJ 212 Appendix D), pure."""

from __future__ import annotations

from datetime import timedelta

import pytest

from ecowatch.config.catalogue import Catalogue
from ecowatch.schema import DataFlag, Measurement
from ecowatch.streams.judging.meter import account as account_of
from ecowatch.streams.judging.meter import mismatch, platform_status
from tests.unit.streams.judging.test_rules import CHEM_METER, COD_Q, MIN, T0, account, metered


def test_the_platforms_account_follows_appendix_d(catalogue: Catalogue) -> None:
    entry = catalogue.device(CHEM_METER)
    assert entry is not None and entry.device.quota is not None
    quota = entry.device.quota
    r = metered(T0, account(0.0))
    acc = account_of(None, quota, r, timedelta(minutes=10))
    assert acc.period == "2026-11" and acc.used["w00000"] == 0.0  # the first reading opens it
    # 20 s later: 10 L/s for 20 s is 0.2 m³; 40 mg/L of it 0.008 kg.
    acc = account_of(
        acc, quota, metered(T0 + timedelta(seconds=20), account(0.0)), timedelta(minutes=10)
    )
    assert acc.used["w00000"] == pytest.approx(0.2) and acc.used["w01018"] == pytest.approx(0.008)
    # A gap of two hours counts as the 10-minute slice; a late resend counts nothing.
    later = account_of(
        acc, quota, metered(T0 + timedelta(hours=2), account(0.0)), timedelta(minutes=10)
    )
    assert later.used["w00000"] == pytest.approx(0.2 + 6.0)
    assert account_of(later, quota, metered(T0 + MIN, account(0.0)), timedelta(minutes=10)) == later
    # A value in maintenance is replaced by the last valid one; a stopped flow discharges nothing.
    kept = metered(T0 + timedelta(hours=2, seconds=10), account(0.0))
    kept = kept.model_copy(
        update={
            "values": {**kept.values, "w01018": Measurement(value=999.0, flag=DataFlag.MAINTENANCE)}
        }
    )
    after = account_of(later, quota, kept, timedelta(minutes=10))
    assert after.used["w01018"] - later.used["w01018"] == pytest.approx(40 * 0.1 * 1e-3)
    stopped = kept.model_copy(
        update={
            "values": {**kept.values, "w00000": Measurement(value=0.0, flag=DataFlag.STOPPED)},
            "ts": T0 + timedelta(hours=2, seconds=20),
        }
    )
    assert account_of(after, quota, stopped, timedelta(minutes=10)).used == after.used
    # Recharges are the month's share plus them, never more than the permit's year.
    status = platform_status(after.model_copy(update={"recharged": {"w01018": 1e9}}), quota, kept)
    assert status.quota["w01018"] == 25000.0
    # The meter's own count is believed only where it is higher.
    assert platform_status(after, quota, metered(T0, account(5.0))).used["w01018"] == 5.0
    assert platform_status(after, quota, metered(T0, account(0.0))).used["w01018"] == pytest.approx(
        after.used["w01018"]
    )


def test_a_mismatch_is_only_what_flatters_the_meter() -> None:
    honest = account(100.0)
    assert mismatch(honest, account(100.0)) == []
    assert mismatch(honest, account(500.0)) == []  # counts more: no gain for the meter
    assert mismatch(honest, None) == []
    [used] = mismatch(honest, account(10.0))
    assert (used.pollutant, used.account, used.reported, used.platform) == (
        "w01018",
        "used",
        10,
        100,
    )
    [quota] = mismatch(honest, account(100.0, quota=10 * COD_Q))
    assert (quota.account, round(quota.reported, 1)) == ("quota", 20833.3)
    assert mismatch(honest, account(10.0, period="2026-10")) == []  # another month: not comparable
