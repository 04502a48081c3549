"""The rules' typed verdict (streams/judging/rules/verdict.py): a finding or a valve order,
one shape for every rule, and a valve decision that reads back from a changelog written
before it."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from ecowatch.config.catalogue import Catalogue
from ecowatch.schema import Measurement, MeterStatus, Reading, ReadingSource, ValveState
from ecowatch.streams.judging.rules import (
    RULES,
    SiteJudge,
    SiteState,
    SiteTick,
    Step,
    Valve,
    ValveOrder,
    valve,
)

CST = timezone(timedelta(hours=8))
T0 = datetime(2026, 11, 23, 10, 0, tzinfo=CST)
SITE, METER = "S-OUT-001", "33080200M00001"
COD_Q = 25000.0 / 12


def metered(ts: datetime, used: float, state: ValveState = ValveState.OPEN) -> Reading:
    return Reading(
        site=SITE,
        device=METER,
        model="discharge_meter",
        ts=ts,
        values={"w00000": Measurement(value=10.0), "w01018": Measurement(value=40.0)},
        meter=MeterStatus(
            valve=state,
            period="2026-11",
            quota={"w00000": 365000.0 / 12, "w01018": COD_Q},
            used={"w00000": 1000.0, "w01018": used},
        ),
        source=ReadingSource.MQTT,
        received_at=ts,
    )


def test_a_valve_names_its_command_and_reason() -> None:
    assert (Valve.CLOSE.command, Valve.CLOSE.reason) == ("close_valve", "quota used up")
    assert (Valve.OPEN.command, Valve.OPEN.reason) == ("open_valve", "quota restored")
    assert Valve.CLOSE == "close"  # the value the site's state has always kept


def test_a_decision_kept_as_a_string_reads_back_as_a_valve() -> None:
    kept = '{"site": "S-OUT-001", "devices": {"M1": {"valve_decision": "close"}}}'
    state = SiteState.model_validate_json(kept)
    assert state.devices["M1"].valve_decision is Valve.CLOSE
    assert '"valve_decision":"close"' in state.model_dump_json()


def test_the_valve_rule_orders_once_and_the_judge_hands_it_over(catalogue: Catalogue) -> None:
    judge = SiteJudge(catalogue)
    judged = judge.judge(None, metered(T0, COD_Q))
    assert judged.valve is Valve.CLOSE
    assert all(not isinstance(f, ValveOrder) for f in judged.findings)
    # The command is on its way: no second order while the meter still reports it open.
    again = judge.judge(judged.state, metered(T0 + timedelta(minutes=1), COD_Q + 1))
    assert again.valve is None
    assert valve in RULES


def test_every_rule_has_one_shape(catalogue: Catalogue) -> None:
    judge = SiteJudge(catalogue)
    state = SiteState(site=SITE, started=T0)
    tick = SiteTick(site=SITE, now=T0 + timedelta(hours=1))
    for rule in RULES:
        said = rule(state, Step(tick, tick.now), judge.ctx)
        assert isinstance(said, list)
