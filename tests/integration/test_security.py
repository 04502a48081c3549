"""Issue 9's remaining attacks on the real stack: a device that repeats itself, and a meter that
lies about its account. Each is refused, or judged on the platform's own evidence, while the
other devices' readings keep being stored."""

from __future__ import annotations

import asyncio
import json
import socket
import urllib.request
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from ecowatch import topics
from ecowatch.clock import CHINA
from ecowatch.config.kafka_accounts import Role, access_for
from ecowatch.config.settings import Settings
from ecowatch.edges.kafka import read_topic, start_producer
from ecowatch.ingest import hj212
from ecowatch.schema import Measurement, Reading, ReadingSource
from ecowatch.streams.storage.points import epoch_ms
from tests.integration.conftest import query, wait_for
from tests.integration.test_pipeline import (
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
    settings, bridge, devices
) -> None:
    """A redelivery (QoS 1, a bridge restart, a resend) is skipped: neither stored nor judged
    twice. A second reading for a taken time would overwrite the first in InfluxDB: it is
    dead-lettered, and the first stands."""
    site, device = REPEATER
    hour = slot(4).replace(hour=6)  # 14:00 in China
    times = [hour + timedelta(minutes=m) for m in range(61)]  # the hour, and the next's start
    before = health(settings)
    sender = devices(device)
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
    devices(other).publish(topics.reading_topic(other_site, other), reading(times[5], 40.0, 20.0))
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
    settings, bridge, devices
) -> None:
    """The meter says its quota is 1e12 and it has used nothing, while it discharges 300 L/s of
    200 mg/L NH3-N: 36 kg in each 10-minute slice, past November's 340 kg in ten. The platform
    counts it from the readings it took and closes the valve."""
    site, meter = LIAR
    start = _month_slot(datetime.now(UTC), timedelta(minutes=140))
    sender = devices(meter)
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
    assert mismatch
    assert ("quota", 1e12) in {(m["account"], m["reported"]) for m in mismatch[0]["mismatches"]}

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


# -- times no clock can mean -------------------------------------------------------------------

# Outfall monitors no other test drives (COD, NH3-N, flow, pH): the attackers and the
# bystanders whose readings must keep being stored meanwhile.
YEAR_ONE = ("S-OUT-015", "33080300000015")
YEAR_9999 = ("S-OUT-019", "33082500000019")  # over HJ 212
AHEAD = ("S-OUT-020", "33082500000020")  # over HJ 212 and MQTT
BYSTANDERS = [
    ("S-OUT-016", "33080300000016"),
    ("S-OUT-017", "33080300000017"),
    ("S-OUT-018", "33080300000018"),
    ("S-OUT-021", "33082500000021"),
]


@pytest.fixture(scope="session")
def hj212_pws(settings: Settings) -> dict[str, str]:
    """Each device's HJ 212 PW, as the stack generated it."""
    return json.loads(settings.hj212_passwords_file.read_text())


def hj212_upload(mn: str, pw: str, data_time: str, qn: str, cod: float = 40.0) -> bytes:
    """A CN 2011 upload with a DataTime as written on the wire (no clock conversion: 9999 has
    no UTC equivalent in every zone)."""
    cp = {"DataTime": data_time, "w01018": {"Rtd": cod, "Flag": "N"}}
    return hj212.build(
        hj212.Packet(qn=qn, st="32", cn="2011", pw=pw, mn=mn, flag=5, cp=cp)
    ).encode()


def hj212_answer(settings: Settings, raw: bytes) -> hj212.Packet:
    with socket.create_connection((settings.hj212_host, settings.hj212_port), timeout=15) as s:
        s.sendall(raw)
        framer = hj212.Framer()
        while True:
            data = s.recv(4096)
            assert data, "the HJ 212 server closed the connection without an answer"
            frames = [f for f in framer.feed(data) if isinstance(f, bytes)]
            if frames:
                return hj212.parse(frames[0])


def letters_of(settings: Settings, device: str, reason: str) -> list[dict[str, Any]]:
    """Dead letters of ``reason`` from ``device``: named by its MQTT topic (the origin) or in
    its HJ 212 payload (MN)."""
    return [
        x
        for x in dead_letters(settings)
        if x["reason"] == reason and (device in x["origin"] or device in x["payload"])
    ]


def times_stored(settings: Settings, device: str, since: datetime) -> set[datetime]:
    return {p["_time"] for p in stored(settings, device, since)}


def all_stored(settings: Settings, expected: dict[str, set[datetime]], since: datetime):
    """A check for wait_for: every (device, time) expected is in InfluxDB."""

    def check() -> bool:
        return all(times <= times_stored(settings, d, since) for d, times in expected.items())

    return check


def produce_readings(settings: Settings, records: list[tuple[str, bytes]]) -> None:
    """Straight onto the readings topic as the ingest principal: what a bridge of an older
    version, or one with a bug, would hand the worker past the ingest contract."""

    async def send() -> None:
        producer = await start_producer(access_for(settings, Role.INGEST), "test-security")
        try:
            for key, value in records:
                await producer.send(topics.READINGS, value, key=key.encode())
            await producer.flush()
        finally:
            await producer.stop()

    asyncio.run(send())


def kafka_reading(
    site: str, device: str, ts: str, cod: float = 40.0, received_at: str | None = None
) -> bytes:
    """A Reading as the ingest side writes it, with ``ts`` (and ``received_at``) as given."""
    now = datetime.now(UTC)
    doc = json.loads(
        Reading(
            site=site,
            device=device,
            model="outfall_monitor",
            ts=now,
            values={"w01018": Measurement(value=cod)},
            source=ReadingSource.MQTT,
            received_at=now,
        ).to_json()
    )
    doc["ts"] = ts
    if received_at is not None:
        doc["received_at"] = received_at
    return json.dumps(doc).encode()


def test_readings_dated_year_1_and_9999_are_refused_and_the_worker_keeps_storing(
    settings, worker, bridge, hj212_server, devices, hj212_pws
) -> None:
    """Year 1 with a +14:00 offset (no UTC time exists for it) over MQTT and 9999 over HJ 212
    are dead-lettered with their reason at the edge. The same times handed to the worker past
    the contract are its dead letters, not an OverflowError that stopped it after every
    restart; readings of other devices published after them are stored."""
    site, device = YEAR_ONE
    start = slot(1).replace(hour=5)
    year_one = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14)))
    assert (
        not devices(device)
        .publish(topics.reading_topic(site, device), reading(year_one, 40.0, 20.0))
        .is_failure
    )
    mn = YEAR_9999[1]
    answer = hj212_answer(
        settings, hj212_upload(mn, hj212_pws[mn], "99991231235959", "99991231235959000")
    )
    assert (answer.cn, answer.cp.get("QnRtn")) == ("9011", int(hj212.QnRtn.REJECTED))
    # Past the contract, straight to the worker: year 1 (+14:00) and 9999 (-12:00).
    produce_readings(
        settings,
        [
            (site, kafka_reading(site, device, "0001-01-01T00:00:00+14:00")),
            (YEAR_9999[0], kafka_reading(YEAR_9999[0], mn, "9999-12-31T23:59:59-12:00")),
        ],
    )
    # Other devices afterwards, over both transports: all stored.
    expected: dict[str, set[datetime]] = {}
    for n, (other_site, other) in enumerate(BYSTANDERS[:2]):
        ts = start + timedelta(minutes=n)
        devices(other).publish(topics.reading_topic(other_site, other), reading(ts, 40.0, 20.0))
        expected[other] = {ts}
    other_mn = BYSTANDERS[3][1]
    ts = start + timedelta(minutes=5)
    local = ts.astimezone(CHINA).strftime("%Y%m%d%H%M%S")
    answer = hj212_answer(
        settings, hj212_upload(other_mn, hj212_pws[other_mn], local, local + "000")
    )
    assert answer.cn == "9014"
    expected[other_mn] = {ts}
    wait_for(all_stored(settings, expected, start), 45, "the other devices' readings")

    stale = wait_for(lambda: letters_of(settings, device, "stale_timestamp"), 30, "year 1")
    assert any("0001-01-01T00:00:00+14:00" in x["payload"] for x in stale)  # type: ignore[union-attr]
    future = wait_for(lambda: letters_of(settings, mn, "future_timestamp"), 30, "year 9999")
    assert any("DataTime=99991231235959" in x["payload"] for x in future)  # type: ignore[union-attr]
    # The worker's own letters for the two it was handed (origin: the readings topic).
    from_worker = wait_for(
        lambda: (
            [
                x
                for x in dead_letters(settings)
                if x["origin"] == topics.READINGS
                and ("0001-01-01T00:00:00+14:00" in x["payload"] or "9999-12-31" in x["payload"])
            ]
            or None
        ),
        30,
        "the worker's dead letters of the two",
    )
    # One each (it used to be two: the judging's OverflowError, then InfluxDB's refusal), and
    # nothing after: the site's clock never held 9999, so its ticks do not overflow.
    assert len(from_worker) == 2, from_worker  # type: ignore[arg-type]
    assert {x["reason"] for x in from_worker} == {"invalid_value"}  # type: ignore[union-attr]
    assert not [
        x
        for x in dead_letters(settings)
        if x["origin"] == "ecowatch.ticks" and "OverflowError" in x["detail"]
    ]
    assert worker.alive() and bridge.alive() and hj212_server.alive()
    assert health(settings)["ready"]


def test_a_time_influxdb_cannot_store_costs_no_other_reading_of_its_batch(settings, worker) -> None:
    """InfluxDB keeps 1677-09-21 … 2262-04-11. A reading dated 2263 in the middle of a batch
    of good readings of other devices is dead-lettered alone: every good one is stored."""
    start = slot(1).replace(hour=7)
    expected: dict[str, set[datetime]] = {site_device[1]: set() for site_device in BYSTANDERS}
    records: list[tuple[str, bytes]] = []
    for minute in range(10):
        for site, device in BYSTANDERS:
            ts = start + timedelta(minutes=minute)
            records.append((site, kafka_reading(site, device, ts.isoformat())))
            expected[device].add(ts)
        if minute in (3, 6):  # 2263, said to have arrived now, then in 2263 too
            arrived = "2263-01-01T00:00:00+00:00" if minute == 6 else None
            late = kafka_reading(*YEAR_ONE, "2263-01-01T00:00:00+00:00", 60.0 + minute, arrived)
            records.append((YEAR_ONE[0], late))
    produce_readings(settings, records)
    wait_for(all_stored(settings, expected, start), 45, "all 40 good readings")
    letters = wait_for(
        lambda: [x for x in dead_letters(settings) if "2263-01-01" in x["payload"]] or None,
        30,
        "the dead letters of the readings dated 2263",
    )
    # Each refused alone, once, before it is judged or stored (ingest/contract.py,
    # refuse_on_arrival); InfluxDB's own refusal would have split the batch (streams/worker/app.py).
    assert [x["reason"] for x in letters] == ["invalid_value"] * 2  # type: ignore[union-attr]
    assert not times_stored(settings, YEAR_ONE[1], start)
    assert worker.alive()


def test_an_hj212_upload_an_hour_ahead_is_refused_like_mqtts(
    settings, worker, bridge, hj212_server, devices, hj212_pws
) -> None:
    """One window for both transports: 4 minutes ahead is a clock running a little fast
    (stored), an hour ahead is refused (HJ 212: 9011 QnRtn 2; both: ``future_timestamp``),
    while another device's readings keep being stored."""
    site, mn = AHEAD
    pw = hj212_pws[mn]
    now = datetime.now(UTC).replace(microsecond=0)
    hour_ahead, minutes_ahead = now + timedelta(hours=1), now + timedelta(minutes=4)

    def upload(ts: datetime, cod: float) -> bytes:
        local = ts.astimezone(CHINA).strftime("%Y%m%d%H%M%S")
        return hj212_upload(mn, pw, local, local + "000", cod)

    refused = hj212_answer(settings, upload(hour_ahead, 41.0))
    assert (refused.cn, refused.cp.get("QnRtn")) == ("9011", int(hj212.QnRtn.REJECTED))
    assert hj212_answer(settings, upload(minutes_ahead, 42.0)).cn == "9014"
    # MQTT, the same device and times (an hour and a minute on, not to collide).
    sender = devices(mn)
    sender.publish(
        topics.reading_topic(site, mn), reading(hour_ahead + timedelta(minutes=1), 43.0, 20.0)
    )
    sender.publish(
        topics.reading_topic(site, mn), reading(minutes_ahead - timedelta(minutes=1), 44.0, 20.0)
    )
    bystander_site, bystander = BYSTANDERS[2]
    ts = slot(1).replace(hour=9)
    devices(bystander).publish(
        topics.reading_topic(bystander_site, bystander), reading(ts, 40.0, 20.0)
    )
    since = now - timedelta(hours=2)
    ahead = {minutes_ahead, minutes_ahead - timedelta(minutes=1)}
    wait_for(all_stored(settings, {mn: ahead}, since), 45, "the readings 4 and 3 minutes ahead")
    wait_for(all_stored(settings, {bystander: {ts}}, slot(1)), 45, "the other device's reading")
    assert not {t for t in times_stored(settings, mn, since) if t > now + timedelta(minutes=5)}

    def both_refused() -> list[dict[str, Any]] | None:
        letters = letters_of(settings, mn, "future_timestamp")
        sources = {x["source"] for x in letters}
        return letters if {"hj212", "mqtt"} <= sources else None

    letters = wait_for(both_refused, 30, "future_timestamp letters from both transports")
    assert all("by more than 0:05:00" in x["detail"] for x in letters)  # type: ignore[union-attr]


# -- an HJ 212 server that stops keeps its dead letters ----------------------------------------


def test_a_stopped_hj212_server_flushes_every_dead_letter(settings, hj212_server) -> None:
    """Bad frames on several connections, each answered (so the server has queued its dead
    letter), then SIGTERM at once: every one of them is in the dead-letter topic, and the
    counts printed on stopping say none was lost."""
    frames: list[str] = []
    sockets = []
    for n in range(4):
        sock = socket.create_connection(
            (settings.hj212_host, settings.hj212_port), timeout=15, source_address=("127.0.0.51", 0)
        )
        sockets.append(sock)
        for k in range(12):  # under the 20 bad frames that close a connection
            good = hj212_upload(
                BYSTANDERS[0][1], "x", f"20261123{n:02d}{k:02d}00", f"2026112300{n:02d}{k:02d}000"
            ).decode()
            bad = good[:-6] + ("0000" if not good.endswith("0000\r\n") else "FFFF") + "\r\n"
            frames.append(bad)
            sock.sendall(bad.encode())
    for sock in sockets:  # each answered 9011 QnRtn 9: the server has queued its letter
        framer, got = hj212.Framer(), 0
        while got < 12:
            data = sock.recv(65536)
            assert data, "closed before its answers"
            got += sum(isinstance(f, bytes) for f in framer.feed(data))
    counts = json.loads(hj212_server.stop().strip().splitlines()[-1])  # SIGTERM, right away
    for sock in sockets:
        sock.close()
    assert counts["dead_lettered_by_reason"].get("crc_mismatch") == len(frames) == 48
    assert counts["dead_letters_lost"] == 0
    kept = {
        x["payload"]
        for x in dead_letters(settings)
        if x["origin"].startswith("tcp://127.0.0.51:") and x["reason"] == "crc_mismatch"
    }
    assert kept == set(frames)
