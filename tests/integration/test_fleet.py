"""The simulated city on the real stack: `ecowatch simulate` as an operator runs it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from ecowatch import topics
from ecowatch.config.kafka_accounts import Role, access_for
from ecowatch.config.settings import Settings
from ecowatch.edges.kafka import start_producer
from ecowatch.schema import DeviceCommand, ValveCommand
from ecowatch.simulators.city import FleetPlan, choose_devices
from tests.integration.conftest import query, wait_for


def simulate(*args: str, timeout: float = 90) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "ecowatch.cli", "simulate", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=os.environ.copy(),
    )


def finish(proc: subprocess.Popen, timeout: float = 90) -> dict[str, Any]:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err.decode()[-3000:]
    return json.loads(out.decode().strip().splitlines()[-1])


async def produce(settings: Settings, topic: str, value: bytes, key: str) -> None:
    producer = await start_producer(access_for(settings, Role.WORKER), "test")
    try:
        await producer.send_and_wait(topic, value, key=key.encode())
    finally:
        await producer.stop()


def since(settings: Settings, measurement: str, device: str, start: str = "-6h") -> list[dict]:
    return query(
        settings,
        f'from(bucket: "{settings.influx_bucket}") |> range(start: {start}) '
        f'|> filter(fn: (r) => r._measurement == "{measurement}" and r.device == "{device}")',
    )


def test_a_city_fleet_lands_with_flags_aqi_and_meter_accounts(settings, catalogue, bridge):
    plan = FleetPlan(outfalls=2, air_stations=1, meters=1)
    devices = {e.device.id: e.device.model.value for e in choose_devices(catalogue, plan)}
    counts = finish(
        simulate(
            "--outfalls",
            "2",
            "--air-stations",
            "1",
            "--meters",
            "1",
            "--interval",
            "60",
            "--speed",
            "60",
            "--duration",
            "6",
            "--seed",
            "11",
        )
    )
    assert counts["sent"] >= 4 * 3 and counts["published"] == counts["sent"]

    for device, model in devices.items():
        points = wait_for(
            lambda d=device: since(settings, "reading", d),
            30,
            f"{model} {device}'s readings in InfluxDB",
        )
        assert {p["_field"] for p in points} == {"value", "flag"}
        assert all(p["model"] == model for p in points)
    air = next(d for d, m in devices.items() if m == "air_station")
    aqi_points = wait_for(lambda: since(settings, "aqi", air), 30, "AQI points for the station")
    assert any(p["_field"] == "aqi" and 0 <= p["_value"] <= 500 for p in aqi_points)
    meter = next(d for d, m in devices.items() if m == "discharge_meter")
    account = wait_for(lambda: since(settings, "meter", meter), 30, "the meter's account")
    fields = {p["_field"] for p in account}
    assert {"valve", "period", "quota_w00000", "used_w00000", "used_w01018"} <= fields


def test_a_meter_obeys_a_valve_command_and_reports_it(settings, catalogue, bridge):
    (entry,) = choose_devices(catalogue, FleetPlan(outfalls=0, air_stations=0, meters=1))
    site, meter = entry.site.id, entry.device.id
    started = datetime.now(UTC)
    proc = simulate(
        "--outfalls",
        "0",
        "--air-stations",
        "0",
        "--meters",
        "1",
        "--interval",
        "1",
        "--duration",
        "10",
    )
    time.sleep(4)
    # The platform's path: a command on Kafka, relayed by the bridge to the meter's topic.
    command = DeviceCommand(
        site=site,
        device=meter,
        command=ValveCommand(
            command="close_valve",
            reason="quota used up (test)",
            issued_at=datetime.now(UTC),
            command_id="test-close-1",
        ),
    )
    asyncio.run(produce(settings, topics.COMMANDS, command.to_json(), site))
    counts = finish(proc)
    assert counts["commands"] == {"obeyed": 1}

    after = f"{started.isoformat()}"
    valves = wait_for(
        lambda: (
            [p["_value"] for p in since(settings, "meter", meter, after) if p["_field"] == "valve"]
            or None
        ),
        30,
        "the meter's valve states",
    )
    assert valves[0] == "open" and valves[-1] == "closed", valves
    flags = [
        p
        for p in since(settings, "reading", meter, after)
        if p["_field"] == "flag" and p["pollutant"] == "w00000"
    ]
    assert flags[-1]["_value"] == "F"  # a closed valve: no discharge, flow flagged stopped
    assert timedelta(0) < flags[-1]["_time"] - started < timedelta(minutes=1)


def test_a_fleet_speaking_hj212(settings, catalogue, worker, hj212_server):
    plan = FleetPlan(outfalls=1, air_stations=1, meters=0)
    devices = [e.device.id for e in choose_devices(catalogue, plan)]
    counts = finish(
        simulate(
            "--transport",
            "hj212",
            "--outfalls",
            "1",
            "--air-stations",
            "1",
            "--meters",
            "0",
            "--interval",
            "60",
            "--speed",
            "60",
            "--duration",
            "5",
            "--seed",
            "21",
        )
    )
    assert counts["sent"] >= 2 * 3
    assert counts["published"] == counts["sent"]  # every upload answered with a 9014
    for device in devices:
        wait_for(
            lambda d=device: since(settings, "reading", d, "-2h"),
            30,
            f"{device}'s HJ 212 readings in InfluxDB",
        )
