"""消警 through the case API: who may silence which site's alarm, and what the silence says."""

from __future__ import annotations

import json
from datetime import datetime
from types import SimpleNamespace
from typing import Any

import pytest

from ecowatch.clock import CHINA, ManualClock
from ecowatch.edges.tokens import hashed
from ecowatch.streams.api.alarm_views import silence_of
from ecowatch.streams.api.auth import caller_of, officer_grids
from ecowatch.streams.api.requests import Refusal

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=CHINA)
TOKENS = hashed(
    {
        "t-ops": "operator:night",
        "t-kc1": "O-KC-01",
        "t-kc3": "O-KC-03",
        "t-e1": "enterprise:E-001",
        "t-wall": "kiosk:hall",
    }
)


def api_of(catalogue: Any) -> Any:
    grids = officer_grids(catalogue)

    def case_caller(request: Any) -> Any:
        who = caller_of(
            request.headers["Authorization"], TOKENS, grids, catalogue.enterprises, "POST"
        )
        if who.enterprise is not None:
            raise Refusal(403, "cases are for officers and operators")
        return who

    return SimpleNamespace(case_caller=case_caller, catalogue=catalogue, clock=ManualClock(NOW))


def asked(token: str, **body: Any) -> tuple[Any, bytes]:
    return SimpleNamespace(headers={"Authorization": f"Bearer {token}"}), json.dumps(body).encode()


def silence(catalogue: Any, token: str, **body: Any) -> Any:
    return silence_of(api_of(catalogue), *asked(token, **body))


def test_an_operator_or_an_officer_of_the_grid_silences_with_the_time_they_saw(catalogue):
    upto = "2026-11-23T09:00:00+08:00"
    done = silence(catalogue, "t-ops", alarm_id="over|S-OUT-001|x", site="S-OUT-001", upto=upto)
    assert done.by == "operator:night" and done.at == NOW
    assert done.upto == datetime.fromisoformat(upto) and done.site == "S-OUT-001"
    assert silence(catalogue, "t-kc1", alarm_id="a", site="S-OUT-001").by == "O-KC-01"


@pytest.mark.parametrize(
    ("token", "body", "status", "match"),
    [
        ("t-kc3", {"alarm_id": "a", "site": "S-OUT-001"}, 403, "not yours"),
        ("t-e1", {"alarm_id": "a", "site": "S-OUT-001"}, 403, "officers and operators"),
        ("t-wall", {"alarm_id": "a", "site": "S-OUT-001"}, 403, "kiosk"),
        ("t-ops", {"alarm_id": "", "site": "S-OUT-001"}, 400, "alarm_id"),
        ("t-ops", {"alarm_id": "a", "site": "S-NOPE"}, 404, "no site"),
        ("t-ops", {"alarm_id": "a", "site": "S-OUT-001", "upto": "yesterday"}, 400, "upto"),
        ("t-ops", {"alarm_id": "a", "site": "S-OUT-001", "upto": "2026-11-23T09:00"}, 400, "upto"),
        ("t-ops", {"alarm_id": "a", "site": "S-OUT-001", "by": "O-KC-01"}, 400, "unknown"),
    ],
)
def test_what_a_silence_may_not_be(catalogue, token, body, status, match):
    with pytest.raises(Refusal, match=match) as refused:
        silence(catalogue, token, **body)
    assert refused.value.status == status
