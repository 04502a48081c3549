"""Issue 9's remaining attacks on the real stack: a device that repeats itself, and a meter that
lies about its account. Each is refused, or judged on the platform's own evidence, while the
other devices' readings keep being stored."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ecowatch import topics
from ecowatch.clock import CHINA
from ecowatch.config.settings import Settings
from ecowatch.kafka import read_topic
from ecowatch.kafka_accounts import Role, access_for
from ecowatch.streams.points import epoch_ms
from tests.integration.conftest import query, wait_for
from tests.integration.test_pipeline import (
    Device,
    aggregates,
    dead_letters,
    reading,
    slot,
    stored,
    stored_count,
)

# Outfall monitors and a meter no other test drives.
REPEATER = ("S-OUT-013", "33080300000013")  # GB 8978-1996 first grade: COD 100 mg/L
NEIGHBOUR = ("S-OUT-014", "33080300000014")
LIAR = ("S-OUT-003", "33080200M00002")  # card QZ-IC-0002: 8.5 % of 4,000 kg NH3-N in Nov.


@pytest.fixture
def senders(settings: Settings, device_passwords: dict[str, str]):
    """Devices publishing with their own credentials, as test_pipeline's ``devices``."""
    made: dict[str, Device] = {}

    def device(device_id: str) -> Device:
        if device_id not in made:
            made[device_id] = Device(settings, device_id, device_passwords[device_id])
        return made[device_id]

    yield device
    for d in made.values():
        d.close()


def messages(settings: Settings, topic: str, key: str) -> list[dict[str, Any]]:
    async def collect() -> list[dict[str, Any]]:
        return [
            json.loads(value)
            async for k, value in read_topic(
                access_for(settings, Role.OPS), topic, idle_timeout=1.5
            )
            if k == key.encode()
        ]

    return asyncio.run(collect())


def health(settings: Settings) -> dict[str, Any]:
    url = f"http://127.0.0.1:{settings.web_port}/health"
    with urllib.request.urlopen(url, timeout=5) as answer:
        return json.loads(answer.read())


def test_a_repeat_is_one_reading_and_a_second_value_for_its_time_is_refused(
    settings, bridge, senders
) -> None:
    """A redelivery (QoS 1, a bridge restart, a resend) is skipped: neither stored nor judged
    twice. A second reading for a taken time would overwrite the first in InfluxDB: it is
    dead-lettered, and the first stands."""
    site, device = REPEATER
    hour = slot(4).replace(hour=6)  # 14:00 in China
    times = [hour + timedelta(minutes=m) for m in range(61)]  # the hour, and the next's start
    before = health(settings)
    sender = senders(device)
    for n, ts in enumerate(times):
        assert not sender.publish(
            topics.reading_topic(site, device), reading(ts, 150.0, 20.0, seq=n)
        ).is_failure
    wait_for(stored_count(settings, device, hour, 61, "w01018"), 45, "the hour's 61 readings")
    # Everything again, as a restarted bridge's session would redeliver it; then three
    # readings for taken times with a COD that would hide the exceedance.
    for n, ts in enumerate(times):
        sender.publish(topics.reading_topic(site, device), reading(ts, 150.0, 20.0, seq=n))
    forged = times[5:8]
    for ts in forged:
        sender.publish(topics.reading_topic(site, device), reading(ts, 10.0, 20.0))
    # A new reading after them, and another device at a taken time: both stored.
    last = times[-1] + timedelta(minutes=1)
    sender.publish(topics.reading_topic(site, device), reading(last, 150.0, 20.0))
    other_site, other = NEIGHBOUR
    senders(other).publish(topics.reading_topic(other_site, other), reading(times[5], 40.0, 20.0))
    points = wait_for(stored_count(settings, device, hour, 62, "w01018"), 45, "the new reading")
    wait_for(stored_count(settings, other, hour, 1, "w01018"), 45, "the neighbour's reading")

    cod = {p["_time"]: p["value"] for p in points if p["pollutant"] == "w01018"}  # type: ignore[union-attr]
    assert len(cod) == 62 and set(cod.values()) == {150.0}  # the first values stand

    def refused() -> list[dict[str, Any]] | None:
        mine = [
            letter
            for letter in dead_letters(settings)
            if letter["reason"] == "duplicate_reading"
            and json.loads(letter["payload"])["device"] == device
        ]
        return mine if len(mine) >= 3 else None

    letters = wait_for(refused, 30, "three duplicate_reading dead letters")
    assert len(letters) == 3  # type: ignore[arg-type]
    assert {json.loads(x["payload"])["values"]["w01018"]["value"] for x in letters} == {10.0}  # type: ignore[union-attr]
    assert all("the first one stands" in x["detail"] for x in letters)  # type: ignore[union-attr]

    # The hour was judged once, on its 60 minutes: one mean, one finding.
    means = [
        p
        for p in aggregates(settings, device, hour, hour + timedelta(hours=1))
        if p["pollutant"] == "w01018" and p["period"] == "hour"
    ]
    assert [(p["mean"], p["coverage_s"]) for p in means] == [(150.0, 3600.0)]
    hourly = [
        f
        for f in messages(settings, topics.FINDINGS, site)
        if f["rule"] == "hourly_over_limit"
        and f["pollutant"] == "w01018"
        and f["active"]
        and datetime.fromisoformat(f["window_start"]) == hour
    ]
    assert len(hourly) == 1, hourly
    after = health(settings)
    assert after.get("duplicates", 0) - before.get("duplicates", 0) >= 61
    assert after.get("refused_repeats", 0) - before.get("refused_repeats", 0) >= 3


def _month_slot(now: datetime, span: timedelta) -> datetime:
    """The start of ``span`` of the past within one month (China time): the meter's account
    is monthly."""
    end = now - timedelta(minutes=1)
    local = end.astimezone(CHINA)
    month_start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    if end - span < month_start:
        end = month_start - timedelta(minutes=1)
    return (end - span).replace(second=0, microsecond=0)  # InfluxDB keeps milliseconds


def test_a_meter_lying_about_its_account_is_closed_on_the_platforms_count(
    settings, bridge, senders
) -> None:
    """The meter says its quota is 1e12 and it has used nothing, while it discharges 300 L/s of
    200 mg/L NH3-N: 36 kg in each 10-minute slice, past November's 340 kg in ten. The platform
    counts it from the readings it took and closes the valve."""
    site, meter = LIAR
    start = _month_slot(datetime.now(UTC), timedelta(minutes=140))
    sender = senders(meter)
    period = start.astimezone(CHINA).strftime("%Y-%m")
    lie = {
        "valve": "open",
        "card_id": "QZ-IC-0002",
        "period": period,
        "quota": {"w00000": 1e12, "w01018": 1e12, "w21003": 1e12},
        "used": {"w00000": 0.0, "w01018": 0.0, "w21003": 0.0},
    }
    times = [start + timedelta(minutes=10 * i) for i in range(15)]
    for ts in times:
        payload = {
            "ts": ts.isoformat(),
            "values": {
                "w00000": {"value": 300.0},
                "w01018": {"value": 60.0},
                "w21003": {"value": 200.0},
            },
            "meter": lie,
        }
        code = sender.publish(topics.reading_topic(site, meter), json.dumps(payload).encode())
        assert not code.is_failure, code
    # Its readings are evidence: stored, the lie beside the platform's account.
    wait_for(stored_count(settings, meter, start, 15, "w21003"), 45, "the meter's readings")

    def closed() -> list[dict[str, Any]] | None:
        commands = [
            c
            for c in messages(settings, topics.COMMANDS, site)
            if c["device"] == meter and c["command"]["command"] == "close_valve"
        ]
        return commands or None

    (command,) = wait_for(closed, 45, "a close_valve command for the lying meter")  # type: ignore[misc]
    assert command["command"]["reason"] == "quota used up"
    # Closed on the tenth slice's reading, not before: 10 × 36 kg > 340 kg > 9 × 36 kg.
    assert command["command"]["command_id"].endswith(f"{times[10].astimezone(UTC):%Y%m%dT%H%M%S}")
    findings = messages(settings, topics.FINDINGS, site)
    exhausted = [f for f in findings if f["rule"] == "quota_exhausted" and f["device"] == meter]
    assert exhausted and exhausted[0]["limit"] == 340.0
    mismatch = [f for f in findings if f["rule"] == "meter_mismatch" and f["device"] == meter]
    assert mismatch and "quota 1e+12 reported" in mismatch[0]["detail"]

    def account() -> list[dict[str, Any]] | None:
        flux = f"""
from(bucket: "{settings.influx_bucket}")
  |> range(start: {start.isoformat()}, stop: {(times[-1] + timedelta(seconds=1)).isoformat()})
  |> filter(fn: (r) => r._measurement == "meter" and r.device == "{meter}")
  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")
"""
        rows = query(settings, flux)
        return rows if len(rows) == 15 and all("used_w21003" in r for r in rows) else None

    rows = wait_for(account, 30, "the platform's account beside the meter's")
    last = max(rows, key=lambda r: r["_time"])  # type: ignore[arg-type]
    assert last["reported_quota_w21003"] == 1e12 and last["reported_used_w21003"] == 0.0
    assert last["quota_w21003"] == 340.0 and last["used_w21003"] > 340.0
    assert epoch_ms(times[-1]) == epoch_ms(last["_time"])
    assert stored(settings, meter, start)
