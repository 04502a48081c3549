"""An officer's site visit on the real stack (issue 20): a case of grid G-CS-01 (an outfall driven
over its COD limit over MQTT) reaches the officers; an officer acknowledges it once however
often the phone retries, uploads a photo, records findings with it, where and when they were
on site (现场核查); an operator presses the grid's officers (督办, which reaches them) and
comments (备注). The case's trail carries the photo, the place and the visit on Kafka and in
InfluxDB, the photo is served to the grid and to operators only, and once the worker has
restarted the same action ids are still known as done. Then the operator reassigns the case to
grid G-QJ-01 (改派): its officer is told at their receiver, sees the case escalated to them and
takes it, the old grid's officer no longer sees it nor acts on it, and the weekly settlement
counts the new grid's acknowledgement in the new grid.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ecowatch import topics
from ecowatch.clock import CHINA
from ecowatch.config.kafka_accounts import Role, access_for
from ecowatch.config.settings import DEMO_CATALOGUE, Settings
from ecowatch.edges.files import write_private
from ecowatch.edges.kafka import read_topic
from ecowatch.edges.tokens import hashed
from tests.integration.conftest import (
    PORT_BASE,
    Service,
    query,
    start_bridge,
    wait_for,
    worker_with,
)
from tests.integration.test_alerts_delivery import HttpReceiver
from tests.integration.test_enforcement import reading
from tests.integration.test_pipeline import Device

WEB_PORT = PORT_BASE + 6072  # its own worker (+1…+6 are other tests')
SITE, DEVICE = "S-OUT-028", "33082200000028"  # grid G-CS-01; GB 8978-1996 first grade, COD 100
TOKENS = {"tok-cs-01": "O-CS-01", "tok-qj-01": "O-QJ-01", "tok-ops": "operator:tester"}
POLICY = """
policies:
  - rule: realtime_over_limit
    pending: 1s
    deadline: 2s
    ack_timeout: 1h
    renotify: 0
    hold: 1h
    escalate: true
  - severity: warning
    pending: 1d
  - severity: violation
    pending: 1d
"""
# A real JPEG's first bytes (SOI, APP0 JFIF) and enough after them to be a photo's worth.
PHOTO = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + bytes(4096)
PHOTO_SHA = hashlib.sha256(PHOTO).hexdigest()


def call(
    method: str,
    path: str,
    token: str,
    body: dict | bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any, dict[str, str]]:
    """(status, JSON body or raw bytes, headers)."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    sent = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    request = urllib.request.Request(
        f"http://127.0.0.1:{WEB_PORT}{path}",
        method=method,
        data=data,
        headers=sent | (headers or {}),
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            status, raw, got = r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as exc:
        status, raw, got = exc.code, exc.read(), dict(exc.headers)
    except OSError:
        return 0, None, {}
    if got.get("Content-Type", "").startswith("application/json"):
        return status, json.loads(raw or b"null"), got
    return status, raw, got


def case_events(settings: Settings, case_id: str) -> list[dict[str, Any]]:
    async def collect() -> list[dict[str, Any]]:
        return [
            json.loads(value)
            async for _, value in read_topic(
                access_for(settings, Role.OPS), topics.CASES, idle_timeout=1.5
            )
            if json.loads(value)["case_id"] == case_id
        ]

    return asyncio.run(collect())


@contextmanager
def own_worker(
    name: str, env: dict[str, str], folder: Path, up: Callable[[], bool]
) -> Iterator[Service]:
    """A worker of this test's, stopped even when a check inside fails (it would hold the
    app's partitions, and the next run's worker would wait for it)."""
    with worker_with(name, env, folder, up) as service:
        try:
            yield service
        finally:
            service.stop()


@pytest.fixture
def visit_env(tmp_path: Path, receiver: HttpReceiver) -> Iterator[tuple[dict[str, str], Path]]:
    catalogue = tmp_path / "catalogue"
    shutil.copytree(DEMO_CATALOGUE, catalogue)
    (catalogue / "policies.yaml").write_text(POLICY, encoding="utf-8")
    tokens = write_private(tmp_path / "tokens.json", json.dumps(hashed(TOKENS)))
    env = {
        "ECOWATCH_APP_ID": f"ecowatch-visits-{int(time.time())}",
        "ECOWATCH_WEB_PORT": str(WEB_PORT),
        "ECOWATCH_CATALOGUE": str(catalogue),
        "ECOWATCH_TICK_SECONDS": "1",
        "ECOWATCH_OFFICER_TOKENS": str(tokens),
        "ECOWATCH_PROOF_DIR": str(tmp_path / "proofs"),
        "ECOWATCH_NOTIFY_O_CS_01": receiver.url("json", "/o-cs-01"),
        "ECOWATCH_NOTIFY_O_QJ_01": receiver.url("json", "/o-qj-01"),
    }
    yield env, tmp_path


def test_an_officer_records_findings_with_a_photo_and_the_trail_carries_it(
    settings, device_passwords, visit_env, receiver
):
    env, folder = visit_env
    (folder / "bridge").mkdir()
    bridge = start_bridge(folder / "bridge")
    device = Device(settings, DEVICE, device_passwords[DEVICE])
    topic = topics.reading_topic(SITE, DEVICE)

    def publish(cod: float) -> None:
        assert not device.publish(topic, reading(cod)).is_failure

    def ours(token: str) -> list[dict]:
        status, listing, _ = call("GET", "/api/cases", token)
        assert status == 200, listing
        return [c for c in listing["cases"] if c["site"] == SITE]

    api_up = lambda: call("GET", "/api/cases", "tok-cs-01")[0] == 200  # noqa: E731
    try:
        with own_worker("visits-worker", env, folder, api_up):

            def escalated() -> dict | None:
                publish(240.0)  # COD at 2.4 times the limit
                return next((c for c in ours("tok-cs-01") if c["status"] == "escalated"), None)

            case = wait_for(escalated, 60, f"a case of {SITE} escalated to the officers")
            assert isinstance(case, dict)
            assert case["can"] == ["ack", "findings", "photos", "comment"], case
            assert case["grid"] == "G-CS-01" and case["supervised_due"] is None
            (seen,) = [c for c in ours("tok-ops") if c["id"] == case["id"]]
            assert seen["can"] == ["comment", "supervise", "reassign"], seen
            base = f"/api/sites/{SITE}/cases/{case['id']}"

            # The phone acknowledges, and retries (a lost answer): one acknowledgement.
            status, body, _ = call("POST", f"{base}/ack", "tok-cs-01", {"action_id": "ack-01"})
            assert status == 202, body
            status, body, _ = call("POST", f"{base}/ack", "tok-cs-01", {"action_id": "ack-01"})
            assert status == 200 and body["duplicate"] is True, body
            status, body, _ = call("POST", f"{base}/ack", "tok-cs-01", {"action_id": "bad id"})
            assert (status, body["code"], body["field"]) == (400, "invalid_field", "action_id")

            # A photo of the outfall, uploaded for the case; not one of another grid's.
            shot = {"Content-Type": "image/jpeg", "X-Filename": "%E6%8E%92%E5%8F%A3.jpg"}
            status, body, _ = call("POST", f"{base}/photos", "tok-qj-01", PHOTO, shot)
            assert (status, body["code"]) == (403, "not_your_grid"), body
            status, body, _ = call("POST", f"{base}/photos", "tok-cs-01", b"GIF89a", shot)
            assert (status, body["code"]) == (415, "photo_type"), body
            status, uploaded, _ = call("POST", f"{base}/photos", "tok-cs-01", PHOTO, shot)
            assert status == 202 and uploaded["sha256"] == PHOTO_SHA, uploaded
            for token in ("tok-cs-01", "tok-ops"):
                status, data, headers = call("GET", uploaded["url"], token)
                assert status == 200 and data == PHOTO, (token, status)
                assert headers["Content-Type"] == "image/jpeg"
                assert headers["X-Content-Type-Options"] == "nosniff"
                assert headers["Cache-Control"] == "no-store"
            status, body, _ = call("GET", uploaded["url"], "tok-qj-01")
            assert (status, body["code"]) == (403, "not_your_grid"), body

            # The findings, with the photo, the place and the time of the visit.
            status, now_body, _ = call("GET", f"/api/sites/{SITE}/marks", "tok-cs-01")
            data_now = datetime.fromisoformat(now_body["now"])
            visit = {
                "text": "现场核查：污水处理站曝气池停运，已责令恢复",
                "close": False,
                "photos": [PHOTO_SHA],
                "location": {"lat": 28.98121, "lon": 118.85302, "accuracy_m": 9},
                "visited_at": (data_now - timedelta(minutes=20)).isoformat(),
                "action_id": "findings-01",
            }
            stranger = {**visit, "photos": ["0" * 64], "action_id": "findings-00"}
            status, body, _ = call("POST", f"{base}/findings", "tok-cs-01", stranger)
            assert (status, body["code"]) == (400, "photo_not_uploaded"), body
            status, body, _ = call("POST", f"{base}/findings", "tok-cs-01", visit)
            assert status == 202, body
            status, body, _ = call("POST", f"{base}/findings", "tok-cs-01", visit)
            assert status == 200 and body["duplicate"] is True, body

            # The operator presses the grid's officers (督办), and comments.
            due = data_now + timedelta(hours=4)
            pressed = {"note": "今日内整改到位", "deadline": due.isoformat(), "action_id": "dub-1"}
            status, body, _ = call("POST", f"{base}/supervise", "tok-cs-01", pressed)
            assert (status, body["code"]) == (403, "operators_only"), body
            status, body, _ = call("POST", f"{base}/supervise", "tok-ops", pressed)
            assert status == 202, body
            status, body, _ = call(
                "POST", f"{base}/comment", "tok-ops", {"text": "已电话通知企业负责人"}
            )
            assert status == 202, body

            def supervised() -> dict | None:
                (row,) = [c for c in ours("tok-cs-01") if c["id"] == case["id"]]
                return row if row["supervised_due"] else None

            row = wait_for(supervised, 20, "the 督办 to reach the case")
            assert isinstance(row, dict)
            assert datetime.fromisoformat(row["supervised_due"]) == due
            assert row["status"] == "acknowledged" and row["acknowledged_by"] == "O-CS-01"
            assert row["can"] == ["findings", "photos", "comment"], row

            # The officer hears of the 督办, with its note.
            def pressed_message() -> list[str]:
                said = [json.loads(r.body) for r in receiver.at("/o-cs-01")]  # \u-escaped
                texts = [f"{m['title']}\n{m['message']}" for m in said]
                return [t for t in texts if case["id"] in t and t.startswith("【督办】")]

            (message,) = wait_for(pressed_message, 30, "the officer's 督办 notification")
            assert message.startswith("【督办】") and "今日内整改到位" in message, message

            # The trail on Kafka: each act once, the findings with the visit.
            def trail() -> list[dict[str, Any]] | None:
                events = case_events(settings, case["id"])
                kinds = [e["kind"] for e in events]
                wanted = {"acknowledged", "findings_recorded", "supervised", "commented"}
                return events if wanted <= set(kinds) else None

            events = wait_for(trail, 30, "the case's trail on ecowatch.cases")
            assert isinstance(events, list)
            kinds = [e["kind"] for e in events]
            assert kinds.count("acknowledged") == 1 and kinds.count("findings_recorded") == 1
            (found,) = [e for e in events if e["kind"] == "findings_recorded"]
            assert found["photos"] == [PHOTO_SHA] and found["action_id"] == "findings-01"
            assert found["location"] == visit["location"]
            assert datetime.fromisoformat(found["visited_at"]) == datetime.fromisoformat(
                visit["visited_at"]
            )
            (dub,) = [e for e in events if e["kind"] == "supervised"]
            assert dub["note"] == "今日内整改到位" and dub["actor"] == "operator:tester"

            # And in InfluxDB's trail, as officers read it.
            def detail() -> str | None:
                rows = query(
                    settings,
                    f'from(bucket: "{settings.influx_bucket}") |> range(start: -1h)'
                    ' |> filter(fn: (r) => r._measurement == "case_event"'
                    f' and r.case_id == "{case["id"]}" and r.kind == "findings_recorded"'
                    ' and r._field == "detail")',
                )
                return rows[0]["_value"] if rows else None

            said = wait_for(detail, 20, "the findings in InfluxDB's case trail")
            assert isinstance(said, str) and "照片 1 张" in said and "现场核查" in said, said

        # The worker restarts (its tables from their changelogs): the phone's late retries
        # are still answered as done, and nothing is sent again.
        with own_worker("visits-worker-2", env, folder, api_up):
            for path, act in (("ack", {"action_id": "ack-01"}), ("findings", visit)):
                status, body, _ = call("POST", f"{base}/{path}", "tok-cs-01", act)
                assert status == 200 and body["duplicate"] is True, (path, status, body)
            time.sleep(3)
            kinds = [e["kind"] for e in case_events(settings, case["id"])]
            assert kinds.count("acknowledged") == 1 and kinds.count("findings_recorded") == 1

            reassigned_to_qj(settings, receiver, case["id"], base, ours)
    finally:
        device.close()
        bridge.stop()


def reassigned_to_qj(
    settings: Settings,
    receiver: HttpReceiver,
    case_id: str,
    base: str,
    ours: Callable[[str], list[dict]],
) -> None:
    """改派 on the real stack: the operator hands the case (acknowledged by O-CS-01) to grid
    G-QJ-01; its officer hears of it, sees it escalated to them and takes it; O-CS-01 no
    longer sees it nor acts on it."""
    handed = {"grid": "G-QJ-01", "note": "排口位于衢江区，属地管辖", "action_id": "reassign-1"}
    status, body, _ = call("POST", f"{base}/reassign", "tok-cs-01", handed)
    assert (status, body["code"]) == (403, "operators_only"), body
    status, body, _ = call("POST", f"{base}/reassign", "tok-ops", {**handed, "grid": "G-CS-01"})
    assert (status, body["code"]) == (409, "no_change"), body
    status, body, _ = call("POST", f"{base}/reassign", "tok-ops", {**handed, "grid": "G-XX"})
    assert (status, body["code"], body["field"]) == (400, "invalid_field", "grid"), body
    status, body, _ = call("POST", f"{base}/reassign", "tok-ops", handed)
    assert status == 202, body
    status, body, _ = call("POST", f"{base}/reassign", "tok-ops", handed)
    assert status == 200 and body["duplicate"] is True, body

    def theirs() -> dict | None:
        rows = [c for c in ours("tok-qj-01") if c["id"] == case_id]
        return rows[0] if rows and rows[0]["grid"] == "G-QJ-01" else None

    row = wait_for(theirs, 20, "the case in G-QJ-01's list")
    assert isinstance(row, dict)
    assert (row["status"], row["acknowledged_by"]) == ("escalated", None), row
    assert row["can"] == ["ack", "findings", "photos", "comment"], row
    assert not [c for c in ours("tok-cs-01") if c["id"] == case_id]
    (seen,) = [c for c in ours("tok-ops") if c["id"] == case_id]
    assert seen["grid"] == "G-QJ-01", seen

    def handed_message() -> list[str]:
        said = [json.loads(r.body) for r in receiver.at("/o-qj-01")]
        texts = [f"{m['title']}\n{m['message']}" for m in said]
        return [t for t in texts if case_id in t and t.startswith("【改派】")]

    (message,) = wait_for(handed_message, 30, "O-QJ-01's 改派 notification")
    assert "属地管辖" in message and "签收" in message, message
    assert not [r for r in receiver.at("/o-cs-01") if "【改派】" in json.loads(r.body)["title"]]

    status, body, _ = call("POST", f"{base}/comment", "tok-cs-01", {"text": "x"})
    assert (status, body["code"]) == (403, "not_your_grid"), body
    status, body, _ = call("POST", f"{base}/ack", "tok-qj-01", {"action_id": "ack-qj"})
    assert status == 202, body

    def taken() -> dict | None:
        (now,) = [c for c in ours("tok-qj-01") if c["id"] == case_id]
        return now if now["acknowledged_by"] == "O-QJ-01" else None

    wait_for(taken, 20, "O-QJ-01's acknowledgement")

    # The trail in InfluxDB names the case's grid; the week's settlement counts it there.
    def tagged() -> list[dict[str, Any]]:
        return query(
            settings,
            f'from(bucket: "{settings.influx_bucket}") |> range(start: -1h)'
            ' |> filter(fn: (r) => r._measurement == "case_event"'
            f' and r.case_id == "{case_id}" and r._field == "case" and r.grid == "G-QJ-01")',
        )

    rows = wait_for(tagged, 20, "the reassigned case's trail tagged with its grid")
    assert {"reassigned", "acknowledged"} <= {r["kind"] for r in rows}, rows
    at = rows[0]["_time"].astimezone(CHINA)
    monday = (at - timedelta(days=at.weekday())).date().isoformat()
    status, week, _ = call("GET", f"/api/reports/weekly?week={monday}", "tok-qj-01")
    assert status == 200, week
    (qj,) = [g for g in week["grids"] if g["grid"] == "G-QJ-01"]
    assert qj["acknowledged"] >= 1 and qj["open_at_end"] >= 1, qj
