"""One reading end to end on the real stack: device → Mosquitto → bridge → Kafka → Faust → InfluxDB.

Devices are paho clients with their own credentials; the bridge and the worker are the real
`ecowatch bridge` and `ecowatch worker` processes; the evidence is read back from InfluxDB with
Flux and from the dead-letter topic in Kafka.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from ecowatch import topics
from ecowatch.config.kafka_accounts import Role, access_for
from ecowatch.config.settings import Settings
from ecowatch.edges.kafka import read_topic, start_producer
from ecowatch.schema import Measurement, Reading, ReadingBatch, ReadingSource
from tests.integration.conftest import query, start_bridge, wait_for

OUTFALL_1 = ("S-OUT-001", "33080200000001")
OUTFALL_2 = ("S-OUT-002", "33080200000002")


class Device:
    """A monitor as the broker sees it: its own client id, user and password."""

    def __init__(self, settings: Settings, device: str, password: str) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=device, protocol=mqtt.MQTTv5
        )
        self.client.username_pw_set(device, password)
        self.acks: dict[int, Any] = {}
        self._acked = threading.Condition()
        self.client.on_publish = self._on_publish
        self.client.connect(settings.mqtt_host, settings.mqtt_port)
        self.client.loop_start()

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self._acked:
            self.acks[mid] = reason_code
            self._acked.notify_all()

    def publish(self, topic: str, payload: bytes) -> Any:
        """Publish at QoS 1 and return the broker's PUBACK reason code."""
        info = self.client.publish(topic, payload, qos=1)
        with self._acked:
            if not self._acked.wait_for(lambda: info.mid in self.acks, timeout=10):
                pytest.fail(f"no PUBACK from Mosquitto for {topic}")
            return self.acks.pop(info.mid)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def reading(ts: datetime, cod: float, flow: float, flag: str = "N", seq: int = 1) -> bytes:
    return json.dumps(
        {
            "ts": ts.isoformat(),
            "seq": seq,
            "values": {
                "w01018": {"value": cod, "flag": flag},
                "w00000": {"value": flow},
                "w21003": {"value": 3.25},
                "w01001": {"value": 7.1},
            },
        }
    ).encode()


def slot(days_back: int) -> datetime:
    """A past day of a test's own for its readings: apart from the other tests' and from the
    live fleets' (recent) data, so counts in InfluxDB are this test's alone."""
    day = datetime.now(UTC) - timedelta(days=days_back)
    return day.replace(hour=3, minute=0, second=0, microsecond=0)


def stored(settings: Settings, device: str, since: datetime) -> list[dict[str, Any]]:
    """The device's points in the day from ``since``."""
    flux = f"""
from(bucket: "{settings.influx_bucket}")
  |> range(start: {since.isoformat()}, stop: {(since + timedelta(days=1)).isoformat()})
  |> filter(fn: (r) => r._measurement == "reading" and r.device == "{device}")
  |> pivot(rowKey: ["_time", "pollutant"], columnKey: ["_field"], valueColumn: "_value")
"""
    return query(settings, flux)


def stored_count(settings: Settings, device: str, since: datetime, count: int, pollutant: str = ""):
    """A check for wait_for: the points once there are ``count`` of them (of ``pollutant``)."""

    def check() -> list[dict[str, Any]] | None:
        points = stored(settings, device, since)
        counted = [p for p in points if not pollutant or p["pollutant"] == pollutant]
        return points if len(counted) == count else None

    return check


def dead_letters(settings: Settings) -> list[dict[str, Any]]:
    async def collect() -> list[dict[str, Any]]:
        return [
            json.loads(value)
            async for _, value in read_topic(
                access_for(settings, Role.OPS), topics.READINGS_DLQ, idle_timeout=1.5
            )
        ]

    return asyncio.run(collect())


def test_readings_arrive_in_influxdb_with_values_flags_and_tags(settings, bridge, devices):
    start = slot(3)
    sent = {
        OUTFALL_1: [(start + timedelta(minutes=i), 40.0 + i, 110.5 + i) for i in range(3)],
        OUTFALL_2: [(start + timedelta(minutes=i), 80.25, 95.0) for i in range(2)],
    }
    for (site, device), rows in sent.items():
        for n, (ts, cod, flow) in enumerate(rows):
            flag = "C" if (device, n) == (OUTFALL_1[1], 1) else "N"  # one value in calibration
            code = devices(device).publish(
                topics.reading_topic(site, device), reading(ts, cod, flow, flag=flag, seq=n)
            )
            assert not code.is_failure, code

    since = start - timedelta(seconds=1)
    points = wait_for(
        stored_count(settings, OUTFALL_1[1], since, 12),
        45,
        "12 points of outfall 1 in InfluxDB",
    )
    by_key = {(p["_time"], p["pollutant"]): p for p in points}
    for n, (ts, cod, flow) in enumerate(sent[OUTFALL_1]):
        cod_point = by_key[(ts, "w01018")]
        assert cod_point["value"] == cod
        assert cod_point["flag"] == ("C" if n == 1 else "N")
        assert (cod_point["site"], cod_point["model"]) == ("S-OUT-001", "outfall_monitor")
        assert by_key[(ts, "w00000")]["value"] == flow
        assert by_key[(ts, "w21003")]["value"] == 3.25

    other = wait_for(
        stored_count(settings, OUTFALL_2[1], since, 8),
        30,
        "8 points of outfall 2 in InfluxDB",
    )
    assert {p["site"] for p in other} == {"S-OUT-002"}
    assert {p["value"] for p in other if p["pollutant"] == "w01018"} == {80.25}


BAD_MESSAGES = [
    (b"{truncated", "bad_json"),
    (b'{"ts": "2026-11-23T17:30:00+08:00", "values": {"w01018": {"value": NaN}}}', "not_finite"),
    (b'{"values": {"w01018": {"value": 1.0}}}', "missing_field"),
    (b'{"ts": "2026-11-23T17:30:00+08:00", "values": {"w01018": {"value": "high"}}}', "wrong_type"),
]


def test_bad_messages_reach_the_dead_letter_topic_and_the_bridge_keeps_running(
    settings, bridge, devices
):
    site, device = OUTFALL_1
    before = {(d["origin"], d["payload"]) for d in dead_letters(settings)}
    for body, _ in BAD_MESSAGES:
        devices(device).publish(topics.reading_topic(site, device), body)
    # A good reading after the bad ones: the bridge is still at work.
    ts = slot(4)
    devices(device).publish(topics.reading_topic(site, device), reading(ts, 55.5, 100.0))

    def new_letters() -> list[dict[str, Any]]:
        letters = [d for d in dead_letters(settings) if (d["origin"], d["payload"]) not in before]
        return letters if len(letters) >= len(BAD_MESSAGES) else []

    letters = wait_for(new_letters, 30, "4 new dead letters")
    by_payload = {d["payload"].encode(): d for d in letters}
    for body, reason in BAD_MESSAGES:
        letter = by_payload[body]  # the original payload, byte for byte
        assert letter["reason"] == reason
        assert letter["origin"] == topics.reading_topic(site, device)
        assert letter["source"] == "mqtt" and letter["detail"]

    wait_for(
        lambda: any(
            p["value"] == 55.5 for p in stored(settings, device, ts - timedelta(seconds=1))
        ),
        30,
        "the good reading after the bad ones in InfluxDB",
    )
    assert bridge.alive()


def test_a_device_cannot_publish_as_another(settings, bridge, devices):
    # The ACL lets a device write only under its own topic: the broker refuses, not the bridge.
    impostor = devices(OUTFALL_1[1])
    code = impostor.publish(topics.reading_topic(*OUTFALL_2), reading(datetime.now(UTC), 1, 1))
    assert code.is_failure and "authori" in str(code).lower(), code


def test_the_worker_dead_letters_a_record_it_cannot_parse_and_goes_on(settings, bridge, devices):
    async def produce_garbage() -> None:
        producer = await start_producer(access_for(settings, Role.INGEST), "test-garbage")
        try:
            await producer.send_and_wait(
                topics.READINGS, b'{"schema": "nonsense"}', key=b"S-OUT-001"
            )
        finally:
            await producer.stop()

    asyncio.run(produce_garbage())
    letter = wait_for(
        lambda: next(
            (d for d in dead_letters(settings) if d["payload"] == '{"schema": "nonsense"}'), None
        ),
        30,
        "the worker's dead letter for an unparseable record",
    )
    assert letter["source"] == "kafka" and letter["reason"] == "missing_field"
    assert "site" in letter["detail"]

    site, device = OUTFALL_2
    ts = slot(5)
    devices(device).publish(topics.reading_topic(site, device), reading(ts, 66.5, 90.0))
    wait_for(
        lambda: any(
            p["value"] == 66.5 for p in stored(settings, device, ts - timedelta(seconds=1))
        ),
        30,
        "a reading stored after the bad record",
    )


def test_a_bad_reading_in_a_batch_is_dead_lettered_alone(settings, bridge, devices):
    """A batch record (the bridge's) with one bad reading: the others are stored, and the bad
    one is dead-lettered with its own JSON, as if it had come alone."""
    site, device = OUTFALL_1
    ts = slot(2).replace(hour=5)

    def good(n: int, value: float) -> bytes:
        return Reading(
            site=site,
            device=device,
            model="outfall_monitor",
            ts=ts + timedelta(minutes=n),
            values={"w01018": Measurement(value=value)},
            source=ReadingSource.MQTT,
            received_at=datetime.now(UTC),
        ).to_json()

    bad = good(1, 1.0).replace(b'"value":1.0', b'"value":"one"')
    record = ReadingBatch.json_of([good(0, 41.125), bad, good(2, 42.375)])

    async def produce() -> None:
        producer = await start_producer(access_for(settings, Role.INGEST), "test-batch")
        try:
            await producer.send_and_wait(topics.READINGS, record, key=site.encode())
        finally:
            await producer.stop()

    asyncio.run(produce())
    wait_for(
        lambda: (
            {41.125, 42.375}
            <= {p["value"] for p in stored(settings, device, ts - timedelta(seconds=1))}
        ),
        30,
        "the batch's two good readings in InfluxDB",
    )

    def the_bad_one(letter: dict[str, Any]) -> bool:
        if '"one"' not in letter["payload"]:
            return False  # and not parsed: other tests' dead letters nest 1,000 arrays deep
        try:
            payload = json.loads(letter["payload"])
        except (ValueError, RecursionError):
            return False
        return payload.get("values", {}).get("w01018", {}).get("value") == "one"

    letter = wait_for(
        lambda: next((d for d in dead_letters(settings) if the_bad_one(d)), None),
        30,
        "the bad reading's dead letter",
    )
    assert letter["source"] == "kafka" and json.loads(letter["payload"])["site"] == site
    assert "readings" not in json.loads(letter["payload"])  # itself, not the batch


def test_readings_published_while_the_bridge_is_down_are_not_lost(
    settings, worker, devices, tmp_path_factory
):
    site, device = OUTFALL_2
    first = start_bridge(tmp_path_factory.mktemp("bridge-a"))
    counts = json.loads(first.stop().strip().splitlines()[-1])
    assert counts["received"] >= 0  # it printed its counts as JSON on a clean stop

    start = slot(6)
    for i in range(10):  # the bridge is down: Mosquitto queues these in its session
        code = devices(device).publish(
            topics.reading_topic(site, device), reading(start + timedelta(seconds=i), 70 + i, 80)
        )
        assert not code.is_failure

    second = start_bridge(tmp_path_factory.mktemp("bridge-b"))
    try:
        points = wait_for(
            stored_count(settings, device, start - timedelta(seconds=1), 10, "w01018"),
            45,
            "all 10 readings sent while the bridge was down",
        )
        assert sorted(p["value"] for p in points if p["pollutant"] == "w01018") == [
            70.0 + i for i in range(10)
        ]
    finally:
        out = second.stop()
    final = json.loads(out.strip().splitlines()[-1])
    assert final["bridged"] >= 10


def test_a_service_that_is_down_is_named_with_how_to_start_it(settings):
    env = {"ECOWATCH_KAFKA_BOOTSTRAP": "127.0.0.1:1"}
    done = subprocess.run(
        [sys.executable, "-m", "ecowatch.cli", "bridge"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **env},
    )
    assert done.returncode == 2
    assert "Kafka does not answer at 127.0.0.1:1" in done.stderr
    assert "ecowatch stack up" in done.stderr
    assert "Traceback" not in done.stderr


def test_stack_status_reports_each_service(settings):
    done = subprocess.run(
        [sys.executable, "-m", "ecowatch.cli", "stack", "status"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = {line.split()[0]: line for line in done.stdout.splitlines()}
    assert settings.mqtt_url in lines["mosquitto"] and " up " in lines["mosquitto"]
    assert "kafka 3.9" in lines["kafka"] and settings.kafka_bootstrap in lines["kafka"]
    assert "influxdb v2.7" in lines["influxdb"] and " up " in lines["influxdb"]


def test_a_device_that_vanishes_is_reported_offline_by_its_last_will(
    settings, bridge, device_passwords
):
    site, device = OUTFALL_1
    status_topic = topics.status_topic(site, device)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=device, protocol=mqtt.MQTTv5)
    client.username_pw_set(device, device_passwords[device])
    client.will_set(status_topic, b"offline", qos=1, retain=True)
    client.connect(settings.mqtt_host, settings.mqtt_port)
    client.loop_start()
    client.publish(status_topic, b"online", qos=1, retain=True).wait_for_publish(5)
    client.loop_stop()
    client.socket().close()  # the link drops: no DISCONNECT, so Mosquitto sends the will

    def states() -> list[str] | None:
        async def collect() -> list[str]:
            return [
                json.loads(value)["state"]
                async for key, value in read_topic(
                    access_for(settings, Role.OPS), topics.STATUS, idle_timeout=1.0
                )
                if json.loads(value)["device"] == device
            ]

        seen = asyncio.run(collect())
        return seen if seen[-2:] == ["online", "offline"] else None

    wait_for(states, 30, "online then offline for the device on ecowatch.status")


def aggregates(settings: Settings, device: str, start: datetime, stop: datetime) -> list[dict]:
    flux = f"""
from(bucket: "{settings.influx_bucket}")
  |> range(start: {start.isoformat()}, stop: {stop.isoformat()})
  |> filter(fn: (r) => r._measurement == "aggregate" and r.device == "{device}")
  |> pivot(rowKey: ["_time", "pollutant", "period"], columnKey: ["_field"], valueColumn: "_value")
"""
    return query(settings, flux)


def test_minute_and_hourly_means_land_beside_the_raw_points(settings, bridge, devices):
    # An outfall no other test drives, read every 20 s across an hour's end: 10 s ago or more.
    site, device = "S-OUT-033", "33082400000033"
    hour_end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    if datetime.now(UTC) - hour_end < timedelta(minutes=1, seconds=10):
        hour_end -= timedelta(hours=1)
    first = hour_end - timedelta(minutes=2)
    cods = [40.0, 50.0, 90.0, 60.0, 60.0, 90.0, 30.0, 30.0, 30.0, 10.0]  # 3 minutes + 1
    for n, cod in enumerate(cods):
        ts = first + timedelta(seconds=20 * n)
        code = devices(device).publish(
            topics.reading_topic(site, device), reading(ts, cod, 25.0, seq=n)
        )
        assert not code.is_failure, code

    def three_minutes_and_the_hour() -> list[dict] | None:
        points = aggregates(
            settings, device, first - timedelta(hours=1), hour_end + timedelta(hours=1)
        )
        cod = [p for p in points if p["pollutant"] == "w01018"]
        return (
            cod
            if len([p for p in cod if p["period"] == "minute"]) >= 3
            and any(p["period"] == "hour" for p in cod)
            else None
        )

    cod = wait_for(three_minutes_and_the_hour, 45, "COD's minute and hourly means in InfluxDB")
    minutes = sorted((p for p in cod if p["period"] == "minute"), key=lambda p: p["_time"])
    # The flow is constant, so each flow-weighted minute is the mean of its three readings.
    assert [p["_time"] for p in minutes] == [first + timedelta(minutes=i) for i in range(3)]
    assert [p["mean"] for p in minutes] == [60.0, 70.0, 30.0]
    assert all(p["valid"] and p["coverage_s"] == 60.0 for p in minutes)
    assert minutes[0]["volume_m3"] == pytest.approx(25.0 * 60 * 1e-3)  # 25 L/s for 60 s
    (hour,) = [p for p in cod if p["period"] == "hour"]
    # The hour closed with two minutes of data: reported, and invalid (45 minutes needed).
    assert hour["_time"] == hour_end - timedelta(hours=1)
    assert hour["coverage_s"] == 120.0 and not hour["valid"] and hour.get("mean") is None
