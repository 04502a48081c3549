"""The case API refuses politely, on the real stack (issue 9, item 6).

A worker of its own, with a tokens file of hashes (one of them added by `ecowatch tokens add`):
it listens on loopback only, Faust's own pages are gone, every bad parameter gets a 400 that
names it, and a real case (an outfall of grid G-KC-01 driven over its COD limit over MQTT)
is acted on by officers of the grid, a supervisor of two grids, an officer of another grid
and an operator: each gets the answer that fits, and an action that would change nothing
gets 409 with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ecowatch import topics
from ecowatch.clock import CHINA
from ecowatch.config.settings import DEMO_CATALOGUE, Settings
from ecowatch.edges.files import write_private
from ecowatch.edges.tokens import hash_token, hashed
from tests.integration.conftest import PORT_BASE, Service, start_bridge, wait_for, worker_with
from tests.integration.test_enforcement import reading
from tests.integration.test_pipeline import Device

WEB_PORT = PORT_BASE + 6069  # its own worker (+1 is test_enforcement's, +2 test_new_machine's)
SITE, DEVICE = "S-OUT-012", "33080200000012"  # grid G-KC-01; COD limit 100 mg/L; no other test
TOKENS = {
    "tok-kc-01": "O-KC-01",  # G-KC-01
    "tok-kc-03": "O-KC-03",  # G-KC-02 only
    "tok-s-kc": "S-KC",  # supervisor of G-KC-01 and G-KC-02 (listed in both)
    "tok-ops": "operator:tester",
}

# Real-time exceedances reach the officers within seconds; nobody is re-notified meanwhile.
POLICY = """
policies:
  - rule: realtime_over_limit
    pending: 1s
    deadline: 2s
    ack_timeout: 1h
    renotify: 0
    hold: 2s
    escalate: true
  - severity: warning
    pending: 1d
  - severity: violation
    pending: 1d
"""


def call(
    method: str,
    path: str,
    token: str | None = None,
    body: dict | bytes | None = None,
    auth: str | None = None,
) -> tuple[int, Any]:
    """(status, JSON body, or the text of a non-JSON one)."""
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if auth is not None:
        headers["Authorization"] = auth
    request = urllib.request.Request(
        f"http://127.0.0.1:{WEB_PORT}{path}", method=method, data=data, headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    except OSError:
        return 0, None
    try:
        return status, json.loads(raw or b"null")
    except ValueError:
        return status, raw.decode(errors="replace")


@dataclass
class ApiWorker:
    service: Service
    kc02: str  # O-KC-02's token, from `ecowatch tokens add`


@pytest.fixture(scope="module")
def api_worker(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiWorker]:
    folder = tmp_path_factory.mktemp("api-worker")
    catalogue = folder / "catalogue"
    shutil.copytree(DEMO_CATALOGUE, catalogue)
    (catalogue / "policies.yaml").write_text(POLICY, encoding="utf-8")
    tokens = write_private(folder / "tokens.json", json.dumps(hashed(TOKENS)))
    # A second officer of G-KC-01 gets a token the way an operator gives one out.
    added = subprocess.run(
        [sys.executable, "-m", "ecowatch.cli", "tokens", "add", "O-KC-02", "--file", str(tokens)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert added.returncode == 0, added.stderr
    token = added.stdout.strip()
    assert token and token not in tokens.read_text() and hash_token(token) in tokens.read_text()
    env = {
        "ECOWATCH_APP_ID": f"ecowatch-api-{int(time.time())}",
        "ECOWATCH_WEB_PORT": str(WEB_PORT),
        "ECOWATCH_CATALOGUE": str(catalogue),
        "ECOWATCH_TICK_SECONDS": "1",
        "ECOWATCH_OFFICER_TOKENS": str(tokens),
        # Faust's own variables must not reopen what the settings close.
        "WEB_BIND": "0.0.0.0",
        "APP_WEB_TABLES_ENABLED": "true",
        "APP_WEB_ROUTER_ENABLED": "true",
    }
    api_up = lambda: call("GET", "/api/cases", "tok-kc-01")[0] == 200  # noqa: E731
    with worker_with("api-worker", env, folder, api_up) as service:
        yield ApiWorker(service, token)


def listeners(port: int) -> set[str]:
    """The local addresses listening on ``port`` (TCP, IPv4 and IPv6), as /proc shows them."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, hex_port = fields[1].rsplit(":", 1)
            if fields[3] == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


def test_the_case_api_listens_on_loopback_only(api_worker):
    # 127.0.0.1 in /proc's little-endian hex; 0.0.0.0 would be 00000000 (or :: in tcp6).
    assert listeners(WEB_PORT) == {"0100007F"}


def test_faust_pages_are_gone_and_health_tells_no_secrets(settings, api_worker):
    for path in ("/table/", "/table/site-cases/", "/router/", "/graph/", "/assignment/"):
        for token in (None, "tok-ops"):
            status, body = call("GET", path, token)
            assert status == 404, (path, token, status, body)
    assert call("GET", "/performance/")[0] == 404
    status, health = call("GET", "/health")
    assert status == 200 and health["status"] == "ok"
    text = json.dumps(health)
    secrets = (settings.influx_token, settings.mqtt_password, settings.kafka_password)
    for secret in (*(s.get_secret_value() for s in secrets), *TOKENS):
        assert not secret or secret not in text
    assert "sha256:" not in text


@pytest.mark.parametrize(
    ("path", "named"),
    [
        ("/api/cases?min_age_minutes=abc", "min_age_minutes"),
        ("/api/cases?min_age_minutes=nan", "min_age_minutes"),
        ("/api/cases?min_age_minutes=inf", "min_age_minutes"),
        ("/api/cases?min_age_minutes=-5", "min_age_minutes"),
        ("/api/cases?min_age_minutes=1e308", "min_age_minutes"),
        ("/api/cases?status=bogus", "status"),
        ("/api/cases?grid=G-NOPE", "grid"),
        ("/api/cases?min_age=5", "min_age"),
        ("/api/cases?status=escalated&status=pending", "status"),
        ("/api/reports/weekly", "week"),
        ("/api/reports/weekly?week=abc", "week"),
        ("/api/reports/weekly?week=2026-11-25", "Monday"),
        ("/api/reports/weekly?week=9999-12-27", "week"),
        ("/api/reports/weekly?week=2026-11-23&grid=G-KC-01", "grid"),
    ],
)
def test_a_parameter_it_cannot_use_is_400_naming_it(api_worker, path, named):
    status, body = call("GET", path, "tok-kc-01")
    assert status == 400, (status, body)
    assert named in body["error"] and "expected" in body["error"], body


def test_tokens_unknown_or_out_of_place_are_refused(api_worker):
    for auth in (None, "Bearer nonsense", "Basic dG9rLWtjLTAx", "tok-kc-01"):
        status, body = call("GET", "/api/cases", auth=auth)
        assert status == 401 and "token" in body["error"], (auth, status, body)
    # The file's content is no key: a hash presented as a token is refused.
    assert call("GET", "/api/cases", hash_token("tok-kc-01"))[0] == 401
    # An officer asks for a grid not theirs; a supervisor reaches each of theirs, only those.
    assert call("GET", "/api/cases?grid=G-KC-02", "tok-kc-01")[0] == 403
    for grid in ("G-KC-01", "G-KC-02"):
        status, listing = call("GET", f"/api/cases?grid={grid}", "tok-s-kc")
        assert status == 200 and listing["grids"] == [grid], listing
    assert call("GET", "/api/cases?grid=G-QJ-01", "tok-s-kc")[0] == 403
    status, listing = call("GET", "/api/cases", "tok-s-kc")
    assert status == 200 and listing["grids"] == ["G-KC-01", "G-KC-02"], listing


def test_a_file_of_plain_tokens_stops_the_worker_before_it_starts(tmp_path):
    plain = tmp_path / "plain.json"
    plain.write_text(json.dumps({"a-plain-secret": "O-KC-01"}))
    done = subprocess.run(
        [sys.executable, "-m", "ecowatch.cli", "worker"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "ECOWATCH_OFFICER_TOKENS": str(plain)},
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert str(plain) in done.stderr and "ecowatch tokens convert" in done.stderr
    assert "a-plain-secret" not in done.stderr


def test_actions_on_a_real_case_get_the_answer_that_fits(
    settings, device_passwords, api_worker, tmp_path
):
    (tmp_path / "bridge").mkdir()
    bridge = start_bridge(tmp_path / "bridge")
    device = Device(settings, DEVICE, device_passwords[DEVICE])
    topic = topics.reading_topic(SITE, DEVICE)

    def publish(cod: float) -> None:
        assert not device.publish(topic, reading(cod)).is_failure

    def ours(token: str) -> list[dict]:
        status, listing = call("GET", "/api/cases", token)
        assert status == 200, listing
        return [c for c in listing["cases"] if c["site"] == SITE]

    try:

        def escalated() -> dict | None:
            publish(240.0)  # COD at 2.4 times the limit
            return next((c for c in ours("tok-kc-01") if c["status"] == "escalated"), None)

        case = wait_for(escalated, 60, f"a case of {SITE} escalated to the officers")
        assert isinstance(case, dict)
        # Its deadlines, in data time: rectify-by (2 s after the reminder), acknowledge-by (1 h).
        deadline, ack_due = (datetime.fromisoformat(case[k]) for k in ("deadline", "ack_due"))
        assert timedelta(minutes=59) < ack_due - deadline < timedelta(minutes=61), case
        base = f"/api/sites/{SITE}/cases/{case['id']}"
        kc02 = api_worker.kc02

        # Out of place: another grid's officer, an operator, a case or site that is not there.
        assert case["id"] not in [c["id"] for c in ours("tok-kc-03")]
        status, body = call("POST", f"{base}/ack", "tok-kc-03")
        assert status == 403 and "G-KC-01" in body["error"], body
        assert call("POST", f"{base}/ack", "tok-ops")[0] == 403
        assert call("POST", f"{base}/ack", "nonsense")[0] == 401
        assert call("POST", f"/api/sites/{SITE}/cases/no-such-case/ack", "tok-kc-01")[0] == 404
        assert call("POST", f"/api/sites/S-NOPE/cases/{case['id']}/ack", "tok-kc-01")[0] == 404
        assert call("POST", f"{base}/ack?force=1", "tok-kc-01")[0] == 400
        # The supervisor of two grids sees this case of their first grid.
        assert case["id"] in [c["id"] for c in ours("tok-s-kc")]

        # Findings the case cannot keep: over 4 KiB of text, a body over 16 KiB, not JSON.
        status, body = call("POST", f"{base}/findings", kc02, {"text": "检" * 1366})
        assert status == 413 and "4098 bytes" in body["error"], body
        status, body = call("POST", f"{base}/findings", kc02, {"text": "x" * 40_000})
        assert status == 413 and "error" in body, body
        assert call("POST", f"{base}/findings", kc02, b"{not json")[0] == 400
        status, body = call("POST", f"{base}/findings", kc02, {"text": "ok", "close": "false"})
        assert status == 400 and "close" in body["error"], body

        # Two officers acknowledge at once: the first takes it, the second is told who did.
        status, body = call("POST", f"{base}/ack", "tok-kc-01")
        assert status == 202, body
        status, body = call("POST", f"{base}/ack", kc02)
        assert status == 409 and "already acknowledged by O-KC-01" in body["error"], body
        wait_for(
            lambda: [c for c in ours("tok-kc-01") if c["status"] == "acknowledged"],
            20,
            "the acknowledgement to reach the case",
        )
        status, body = call("POST", f"{base}/ack", kc02)
        assert status == 409 and "already acknowledged by O-KC-01" in body["error"], body
        assert call("POST", f"{base}/ack", "tok-s-kc")[0] == 409
        time.sleep(1)
        (now,) = [c for c in ours("tok-kc-01") if c["id"] == case["id"]]
        assert now["acknowledged_by"] == "O-KC-01"  # the refused ones changed nothing
        assert now["ack_due"] is None  # taken: nobody is waited for any more

        # The supervisor records findings on the case of their first grid, asking to close;
        # the data recovers and the case closes.
        for _ in range(3):
            publish(40.0)
            time.sleep(0.5)
        findings = {"text": "现场检查：废水处理设施已恢复运行", "close": True}
        status, body = call("POST", f"{base}/findings", "tok-s-kc", findings)
        assert status == 202 and body["officer"] == "S-KC", body

        def closed() -> bool:
            publish(40.0)
            return case["id"] not in [c["id"] for c in ours("tok-kc-01")]

        wait_for(closed, 40, "the case to close after the hold period")
        status, body = call("POST", f"{base}/findings", kc02, {"text": "补充"})
        assert status == 409 and f"case {case['id']} was closed at" in body["error"], body
        assert call("POST", f"{base}/ack", "tok-kc-01")[0] == 409

        # The supervisor's weekly settlement covers both their grids, and only those.
        monday = datetime.now(CHINA).date() - timedelta(days=datetime.now(CHINA).weekday())
        status, week = call("GET", f"/api/reports/weekly?week={monday}", "tok-s-kc")
        assert status == 200 and [g["grid"] for g in week["grids"]] == ["G-KC-01", "G-KC-02"]
        (kc,) = [g for g in week["grids"] if g["grid"] == "G-KC-01"]
        assert kc["closed"] >= 1 and kc["acknowledged"] >= 1, kc
    finally:
        device.close()
        bridge.stop()
