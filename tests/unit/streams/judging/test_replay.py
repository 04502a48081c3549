"""Replay: recorded readings through rules → findings → cases → notifications, no services."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from click.testing import CliRunner

from ecowatch.cli import cli
from ecowatch.schema import Reading, ReadingSource
from ecowatch.simulators.models import OutfallMonitor
from ecowatch.streams.judging.replay import Replay

START = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)  # 08:00 in China


def recording(hours_over: int = 4, hours: int = 10) -> list[str]:
    """S-OUT-001's monitor, every 5 minutes: COD at twice its permit limit, then normal."""
    monitor = OutfallMonitor("33080200000001", 3)
    lines = []
    for i in range(12 * hours):
        now = START + timedelta(minutes=5 * i)
        monitor.exceed("w01018", 2.0 if i < 12 * hours_over else None)
        r = monitor.reading(now)
        assert r is not None
        lines.append(
            Reading(
                site="S-OUT-001",
                device="33080200000001",
                model="outfall_monitor",
                ts=r.ts,
                values=r.values,
                seq=r.seq,
                source=ReadingSource.MQTT,
                received_at=now,
            )
            .to_json()
            .decode()
        )
    return lines


def hm(line: dict) -> str:
    ts = line.get("at") or line.get("created_at")
    return datetime.fromisoformat(ts).strftime("%H:%M")


def test_a_cod_exceedance_plays_out_as_the_policy_says(catalogue):
    out = list(Replay(catalogue).feed(recording()))
    cod = [x for x in out if "w01018-hourly_over_limit" in x.get("case_id", "")]
    story = [(hm(x), x["kind"]) for x in cod if x["type"] == "case_event"]
    # The first hour (08:00–09:00 China) closes with the 01:00 UTC reading; policy: pending 0,
    # deadline 2h, 30 min to acknowledge, 1 renotification, then the supervisor.
    assert story[:6] == [
        ("01:00", "detected"),
        ("01:00", "reminded"),
        ("03:00", "escalated"),
        ("03:30", "renotified"),
        ("04:00", "raised"),
        ("05:00", "normal_again"),
    ]
    notes = [(hm(x), x["step"], x["audience"]) for x in cod if x["type"] == "notification"]
    assert notes == [
        ("01:00", "remind", "enterprise"),
        ("03:00", "escalate", "officers"),
        ("03:30", "renotify", "officers"),
        ("04:00", "raise", "supervisor"),
    ]
    escalation = next(x for x in cod if x.get("step") == "escalate")
    assert (
        escalation["evidence"]["multiple"] > 2.0 and "第五十九条" in escalation["proposed_measure"]
    )
    # No officer closed it: the escalated case stays open however normal the data.
    assert "closed" not in [k for _, k in story]


def test_an_early_warning_reminds_the_enterprise_and_closes_on_its_own(catalogue):
    out = list(Replay(catalogue).feed(recording()))
    warning = [x for x in out if "realtime_over_limit" in x.get("case_id", "")]
    notes = [(x["step"], x["audience"]) for x in warning if x["type"] == "notification"]
    assert notes == [("remind", "enterprise"), ("closed", "enterprise")]


def test_bad_lines_are_reported_and_the_rest_replayed(catalogue):
    lines = recording(hours=1)
    lines.insert(3, '{"site": "S-OUT-001"}')
    lines.insert(5, lines[0].replace("S-OUT-001", "S-NOWHERE"))
    run = Replay(catalogue)
    out = list(run.feed(lines))
    errors = [x for x in out if x["type"] == "error"]
    assert [e["line"] for e in errors] == [4, 6] and run.errors == 2
    assert "S-NOWHERE" in errors[1]["detail"]
    assert any(x["type"] == "finding" for x in out)


def test_the_command_prints_json_lines(tmp_path):
    path = tmp_path / "readings.jsonl"
    path.write_text("\n".join(recording(hours=6)) + "\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["replay", str(path), "--only", "notification"])
    assert result.exit_code == 0, result.output
    notes = [json.loads(line) for line in result.output.splitlines()]
    assert notes and {n["type"] for n in notes} == {"notification"}
    assert any(n["step"] == "escalate" for n in notes)
    bad = CliRunner().invoke(cli, ["replay", str(path), "--tick", "soon"])
    assert bad.exit_code == 2 and "--tick" in bad.output


def test_the_case_commands_need_a_token_and_say_so(monkeypatch):
    from ecowatch.cli import main

    monkeypatch.delenv("ECOWATCH_API_TOKEN", raising=False)
    monkeypatch.setattr("sys.argv", ["ecowatch", "cases"])
    import pytest

    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2


def test_a_replayed_day_of_a_coal_unit_is_judged_on_its_corrected_hourly_means(catalogue):
    """S-STK-001 (ultra-low SO2 35 mg/m³ at 6 % O2), a reading a minute for a day: SO2 30 at
    9 % O2 (37.5 corrected) for the first six hours, of which the fourth has 40 valid minutes
    (20 in maintenance); then 20 at 6 %. Hourly findings on the corrected means, none for the
    hour with fewer than 45 valid minutes."""
    lines = []
    for i in range(24 * 60):
        at = START + timedelta(minutes=i)
        hour, minute = divmod(i, 60)
        over = hour < 6
        flag = "M" if hour == 3 and minute >= 40 else "N"
        values = {
            "a21026": {"value": 30.0 if over else 20.0, "flag": flag},
            "a19001": {"value": 9.0 if over else 6.0, "flag": flag},
            "a34013": {"value": 3.0},
            "a21002": {"value": 20.0 + minute % 7},
            "a00000": {"value": 120.0},
        }
        lines.append(
            Reading.model_validate(
                {
                    "site": "S-STK-001",
                    "device": "33080200G00001",
                    "model": "flue_gas_monitor",
                    "ts": at,
                    "values": values,
                    "source": "mqtt",
                    "received_at": at,
                }
            )
            .to_json()
            .decode()
        )
    out = list(Replay(catalogue).feed(lines))
    hourly = [
        x
        for x in out
        if x["type"] == "finding" and x["rule"] == "hourly_over_limit" and x["active"]
    ]
    # China time: the day starts at 08:00; the fourth hour (11:00–12:00) is not judged.
    assert [hm(x) for x in hourly] == ["09:00", "10:00", "11:00", "13:00", "14:00"]
    assert {x["pollutant"] for x in hourly} == {"a21026"}
    for x in hourly:
        assert x["value"] == 37.5 and x["o2_reference"] == 6.0 and x["o2_measured"] == 9.0
