"""Detect – remind – penalize end to end, on the real stack, with hours compressed to seconds.

An outfall is driven over its COD limit over MQTT. The enterprise's reminder arrives at a
local HTTP receiver; past the deadline the grid's officers get the case by e-mail (a local
SMTP server); an officer acknowledges it through the API, which stops the re-notification;
the data recovers, the officer records findings, and the case closes after the hold period.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from ecowatch import topics
from ecowatch.alerts.templates import is_possible_repeat
from ecowatch.clock import CHINA
from ecowatch.config.settings import DEMO_CATALOGUE, Settings
from ecowatch.devtools.desk import CASE_ID
from ecowatch.edges.files import write_private
from ecowatch.edges.tokens import hashed
from tests.integration.conftest import (
    PORT_BASE,
    Service,
    query,
    start_bridge,
    wait_for,
    worker_with,
)
from tests.integration.test_alerts_delivery import HttpReceiver, Mailbox
from tests.integration.test_fleet import finish, simulate, since
from tests.integration.test_pipeline import Device

SITE, DEVICE = "S-OUT-001", "33080200000001"
WEB_PORT = PORT_BASE + 6067  # its own enforcing worker, beside the session's
TOKENS = {
    "tok-kc-01": "O-KC-01",
    "tok-kc-03": "O-KC-03",  # G-KC-02's: the heat plant's stack
    "tok-qj-01": "O-QJ-01",
    "tok-qj-03": "O-QJ-03",  # G-QJ-02's: the gas boiler's stack
    "tok-ops": "operator:night-shift",
    "tok-e-001": "enterprise:E-001",  # S-OUT-001's
    "tok-e-031": "enterprise:E-031",  # the heat plant's (S-STK-001)
}

# The policy of a real-time exceedance, in seconds instead of hours, and paging the officers.
FAST_POLICY = """
policies:
  - rule: realtime_over_limit
    pending: 2s
    deadline: 6s
    ack_timeout: 8s
    renotify: 1
    hold: 4s
    escalate: true
    measure: 按日连续处罚（《环境保护法》第五十九条）
  - severity: warning
    pending: 1d
  - severity: violation
    pending: 1d
"""


@pytest.fixture
def fast_catalogue(tmp_path: Path) -> Path:
    folder = tmp_path / "catalogue"
    shutil.copytree(DEMO_CATALOGUE, folder)
    (folder / "policies.yaml").write_text(FAST_POLICY, encoding="utf-8")
    return folder


@pytest.fixture
def enforcing_worker(
    settings: Settings,
    fast_catalogue: Path,
    receiver: HttpReceiver,
    mailbox: Mailbox,
    tmp_path: Path,
) -> Iterator[Service]:
    # The file keeps the tokens' hashes only; the tests present the tokens.
    tokens = write_private(tmp_path / "tokens.json", json.dumps(hashed(TOKENS)))
    mail = "mailto://ecowatch:s3cret@127.0.0.1:{port}?to={to}&from=ecowatch@example.org"
    env = {
        # A worker of its own (its own group and tables) on the fast policies.
        "ECOWATCH_APP_ID": f"ecowatch-e2e-{int(time.time())}",
        "ECOWATCH_WEB_PORT": str(WEB_PORT),
        "ECOWATCH_CATALOGUE": str(fast_catalogue),
        "ECOWATCH_TICK_SECONDS": "1",
        "ECOWATCH_OFFICER_TOKENS": str(tokens),
        "ECOWATCH_NOTIFY_E_001": receiver.url("json", "/enterprise"),
        "ECOWATCH_NOTIFY_E_009": receiver.url("json", "/enterprise"),  # S-OUT-010's enterprise
        "ECOWATCH_NOTIFY_O_KC_01": mail.format(port=mailbox.port, to="o-kc-01@example.org"),
        "ECOWATCH_NOTIFY_O_KC_02": mail.format(port=mailbox.port, to="o-kc-02@example.org"),
        "ECOWATCH_NOTIFY_S_KC": receiver.url("json", "/supervisor"),
        "ECOWATCH_NOTIFY_E_031": receiver.url("json", "/heat-plant"),  # S-STK-001's
        "ECOWATCH_NOTIFY_O_KC_03": mail.format(port=mailbox.port, to="o-kc-03@example.org"),
    }
    api_up = lambda: api("GET", "/api/cases", "tok-kc-01")[0] == 200  # noqa: E731
    with worker_with("e2e-worker", env, tmp_path, api_up) as service:
        yield service


def api(method: str, path: str, token: str | None, body: dict | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{WEB_PORT}{path}",
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={
            "Content-Type": "application/json",
            **({"Authorization": f"Bearer {token}"} if token else {}),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")
    except OSError:
        return 0, None


def cli_json(*args: str, token: str, settle: float = 30.0) -> Any:
    """The command's JSON. A 503 while the workers share out the sites (a rebalance: a
    worker was just killed or started) says "try again shortly": tried again for ``settle``
    seconds, as an operator would."""
    deadline = time.monotonic() + settle
    while True:
        done = subprocess.run(
            [sys.executable, "-m", "ecowatch.cli", *args],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "ECOWATCH_API_TOKEN": token},
        )
        if "answered 503" not in done.stderr or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def mails_to(mailbox: Mailbox, address: str) -> list[tuple[str, str]]:
    """(case, step) of every e-mail to ``address``: an escalation (【执法】) and, unacknowledged,
    a renotification (【再次通知】) are two; the same one twice is the defect.

    A send that a kill cut off is sent again as 【执法】【可能重复】…, the step's tag first: it
    counts as its own step here, so a plain send and its marked repeat are not a duplicate,
    but two plain sends, or two marked ones, are."""
    out = []
    for _, m in mailbox.messages:
        if m["To"] == address:
            subject = str(m["Subject"])
            step = subject.split("】")[0] + "】"
            if is_possible_repeat(subject):
                step += "【可能重复】"
            out.append((case_of(m.get_content()), step))
    return out


def caught_up(timeout: float = 90) -> None:
    """Until the test's fresh worker has taken what the topics held before the test: it reads
    them from their start, and while it replays the earlier tests' readings and acts of a site,
    the test's own readings join whatever case of the site is open in the replay (seen as the
    earlier tests' files grew: the fault-mark test's reminder never came). Caught up: its
    judged readings and case events stand still for 3 s, nothing being published meanwhile."""
    deadline = time.monotonic() + timeout
    last: tuple[int, int] | None = None
    still = 0
    while time.monotonic() < deadline:
        status, health = api("GET", "/health", None)
        now = (
            (health.get("judged_readings", 0), health.get("case_events", 0))
            if status == 200
            else None
        )
        still = still + 1 if now is not None and now == last else 0
        if still >= 3:
            return
        last = now
        time.sleep(1)
    pytest.fail(f"the worker did not catch up with the topics in {timeout:g} s (counts {last})")


def case_of(text: str) -> str:
    match = re.search(r"\d{14}-S-OUT-\d{3}-\S+?_(?:limit|values?|value)", text)
    assert match, text
    return match.group(0)


def messages(receiver: HttpReceiver, title: str) -> list[str]:
    """The case ids of the enterprise's messages whose title starts with ``title``; a possible
    repeat (【提醒】【可能重复】…) only when ``title`` asks for one."""
    out = []
    for r in receiver.at("/enterprise"):
        doc = json.loads(r.body)
        if is_possible_repeat(doc["title"]) and "可能重复" not in title:
            continue
        if doc["title"].startswith(title):
            out.append(case_of(doc["message"]))
    return out


def delivered(settings: Settings, case_id: str, step: str) -> bool:
    """Whether a notification of the case's step is recorded as sent in InfluxDB: the worker
    writes that record after the delivery log's, so past it nothing may be sent twice."""
    rows = query(
        settings,
        f'from(bucket: "{settings.influx_bucket}") |> range(start: -1h)'
        f' |> filter(fn: (r) => r._measurement == "delivery" and r.case == "{case_id}"'
        f' and r.step == "{step}" and r.status == "sent")',
    )
    return bool(rows)


def reading(cod: float) -> bytes:
    return json.dumps(
        {
            "ts": datetime.now(UTC).isoformat(),
            "values": {
                "w01018": {"value": cod},
                "w00000": {"value": 30.0},
                "w21003": {"value": 2.0},
                "w01001": {"value": 7.2},
            },
        }
    ).encode()


def text_of(message: EmailMessage) -> str:
    """An e-mail's subject and text, decoded."""
    body = message.get_body(preferencelist=("plain", "html"))
    return f"{message['Subject']}\n{body.get_content() if body is not None else ''}"


def test_detect_remind_penalize_on_the_real_stack(
    settings, device_passwords, enforcing_worker, receiver, mailbox, tmp_path
):
    (tmp_path / "bridge").mkdir()
    bridge = start_bridge(tmp_path / "bridge")
    device = Device(settings, DEVICE, device_passwords[DEVICE])
    topic = topics.reading_topic(SITE, DEVICE)
    try:

        def publish(cod: float) -> None:
            assert not device.publish(topic, reading(cod)).is_failure

        def ours() -> list:
            """This site's reminders: the worker reads the readings topic from its start, so
            other tests' sites are reminded here too."""
            publish(240.0)
            found = []
            for r in receiver.at("/enterprise"):
                match = CASE_ID.search(json.loads(r.body)["message"])
                if match and f"-{SITE}-" in match.group(0):
                    found.append((r, match.group(0)))
            return found

        reminder, case_id = wait_for(ours, 40, f"the enterprise's reminder of {SITE}")[0]

        # COD at three times the permit's 80 mg/L, every second, until the officers have this
        # case (this worker reads the topic from its start: earlier tests' cases mail them too).
        def escalated() -> list:
            publish(240.0)
            return [
                m
                for _, m in mailbox.messages
                if "o-kc-01@example.org" in m["To"] and case_id in text_of(m)
            ]

        wait_for(escalated, 40, "the officers' escalation e-mail of this case")
        status, listing = api("GET", "/api/cases", "tok-kc-01")
        assert status == 200 and listing["grid"] == "G-KC-01"
        (case,) = [c for c in listing["cases"] if c["id"] == case_id]
        assert case["status"] == "escalated" and case["site"] == SITE
        assert case["id"] in json.loads(reminder.body)["message"]  # the case number to act on
        # Both of the grid's officers: each message is a send of its own, begun and recorded
        # in the changelog on either side of apprise, so they need not arrive together.
        officers = {"o-kc-01@example.org", "o-kc-02@example.org"}
        wait_for(
            lambda: officers <= {m["To"] for _, m in mailbox.messages}, 20, "both officers' mail"
        )

        # Tokens: none, unknown, and an officer of another grid.
        path = f"/api/sites/{SITE}/cases/{case['id']}/ack"
        assert api("POST", path, None)[0] == 401
        assert api("POST", path, "nonsense")[0] == 401
        assert api("POST", path, "tok-qj-01")[0] == 403
        other = api("GET", "/api/cases", "tok-qj-01")[1]
        assert other["grid"] == "G-QJ-01" and case["id"] not in [c["id"] for c in other["cases"]]

        # The officer acknowledges: no re-notification follows.
        # This case's mail: the worker reads the topic from its start, and other tests'
        # sites (the demo's stacks among them) have cases and mail of their own meanwhile.
        def mail_of_case() -> int:
            return sum(case_id in text_of(m) for _, m in mailbox.messages)

        sent_before = mail_of_case()
        assert api("POST", path, "tok-kc-01")[0] == 202

        def acknowledged() -> str | None:
            cases = api("GET", "/api/cases", "tok-kc-01")[1]["cases"]
            ours = [c["status"] for c in cases if c["id"] == case["id"]]
            return ours[0] if ours and ours[0] == "acknowledged" else None

        wait_for(acknowledged, 20, "the acknowledgement to reach the case")
        # While it is open, the operators' command line sees it in every grid's list (asked
        # now: once findings are in, it closes as soon as the data has held for seconds).
        listed = cli_json("cases", "--json", token="tok-ops")
        assert listed["grid"] == "*" and case["id"] in [c["id"] for c in listed["cases"]]
        assert api("POST", path, "tok-ops")[0] == 403  # operators watch, officers act
        time.sleep(10)  # longer than the 8 s acknowledgement time-out
        assert mail_of_case() == sent_before, "re-notified after the acknowledgement"
        # Nothing of this case went up to the supervisor (the worker reads the readings topic
        # from its start: other tests' sites' cases may go up, and are not this test's).
        raised = [r for r in receiver.at("/supervisor") if case["id"] in r.body.decode()]
        assert raised == []

        # The data recovers; the officer records findings and asks to close.
        findings = f"/api/sites/{SITE}/cases/{case['id']}/findings"
        assert api("POST", findings, "tok-kc-01", {"text": ""})[0] == 400
        for _ in range(3):
            publish(40.0)
            time.sleep(0.5)
        status, _ = api(
            "POST", findings, "tok-kc-01", {"text": "现场检查：预处理设施故障已修复", "close": True}
        )
        assert status == 202

        def closed() -> bool:
            publish(40.0)
            return not [
                c
                for c in api("GET", "/api/cases", "tok-kc-01")[1]["cases"]
                if c["id"] == case["id"]
            ]

        wait_for(closed, 30, "the case to close after the hold period")
        # The weekly settlement adds up: this case was opened, escalated, acknowledged, closed.
        monday = datetime.now(CHINA).date() - timedelta(days=datetime.now(CHINA).weekday())
        week = cli_json(
            "report", "weekly", "--json", "--week", monday.isoformat(), token="tok-kc-01"
        )
        (kc,) = week["grids"]
        assert kc["grid"] == "G-KC-01"
        assert min(kc["opened"], kc["escalated"], kc["acknowledged"], kc["closed"]) >= 1
        assert case["id"] not in kc["overdue"]
        bodies = [json.loads(r.body)["message"] for r in receiver.at("/enterprise")]
        assert len(bodies) >= 2 and case["id"] in bodies[-1]  # the enterprise hears it is closed
        status, body = api("POST", path, "tok-kc-01")
        assert status == 409 and "was closed at" in body["error"], body  # nothing left to do
        # What the worker holds, in /health: each table's keys, bytes and largest value.
        status, health = api("GET", "/health", None)
        tables = health["tables"]
        assert set(tables) == {
            "site-rules",
            "site-cases",
            "site-case-log",
            "site-clock",
            "input-offsets",
            "notification-log",
        }, tables
        assert tables["notification-log"]["keys"] >= 2  # the reminder, the escalation, ...
        assert tables["site-case-log"]["keys"] >= 1  # the closed case, for the 409 above
        assert all(0 < t["largest"] <= t["bytes"] for t in tables.values() if t["keys"])
        assert health["rss_bytes"] > 10 * 2**20
    finally:
        device.close()
        bridge.stop()


QUOTA_LOOP = """
name: quota-loop
description: >
  a meter a breath from its monthly quota, discharging hard; at 14 s a recharge of most of
  the year's rest (a quota never exceeds the permit's annual quantity: the platform checks)
events:
  - {at: 0s, device: "33080200M00001", action: quota, used: 0.99999}
  - {at: 0s, device: "33080200M00001", action: burn_quota, factor: 20, for: 1h}
  - {at: 14s, device: "33080200M00001", action: recharge,
     amounts: {w00000: 300000, w01018: 20000, w21003: 2000}}
"""


def test_a_meter_out_of_quota_is_closed_and_reopened_after_a_recharge(
    settings, enforcing_worker, tmp_path
):
    scenario = tmp_path / "quota-loop.yaml"
    scenario.write_text(QUOTA_LOOP, encoding="utf-8")
    (tmp_path / "bridge").mkdir()
    bridge = start_bridge(tmp_path / "bridge")
    started = datetime.now(UTC)
    try:
        counts = finish(
            simulate(
                "--outfalls",
                "0",
                "--air-stations",
                "0",
                "--meters",
                "1",
                "--interval",
                "1",
                "--duration",
                "26",
                "--scenario",
                str(scenario),
            )
        )
    finally:
        bridge.stop()
    # The platform closed the valve at 100 % and opened it again once there was quota.
    # Each once: another worker app on the same Kafka (an earlier test's) may decide the same
    # commands, with the same command ids, which the meter obeys once ("repeated").
    assert counts["commands"]["obeyed"] == 2 and not counts["commands"].get("refused"), counts

    def valves() -> list[str] | None:
        points = since(settings, "meter", "33080200M00001", started.isoformat())
        states = [
            p["_value"] for p in sorted(points, key=lambda p: p["_time"]) if p["_field"] == "valve"
        ]
        changes = [s for i, s in enumerate(states) if i == 0 or s != states[i - 1]]
        return changes if changes[-3:] == ["open", "closed", "open"] else None

    wait_for(valves, 30, "the valve to go open → closed → open in InfluxDB")


def test_a_worker_killed_mid_case_resumes_it_and_sends_nothing_twice(
    settings, device_passwords, enforcing_worker, receiver, mailbox, tmp_path
):
    # A site of the same grid that no other test drives: the worker's fresh group replays
    # the earlier tests' readings of S-OUT-001, and their cases must not stand in for this one.
    site, device_id = "S-OUT-010", "33080200000010"  # COD limit 100 mg/L (GB 8978 grade 1)
    (tmp_path / "bridge").mkdir()
    bridge = start_bridge(tmp_path / "bridge")
    device = Device(settings, device_id, device_passwords[device_id])
    topic = topics.reading_topic(site, device_id)
    restarted: Service | None = None

    def publish_high() -> None:
        assert not device.publish(topic, reading(240.0)).is_failure

    def driven_reminders() -> list[str]:
        publish_high()
        return [c for c in messages(receiver, "【提醒】") if f"-{site}-" in c]

    try:
        (driven,) = wait_for(driven_reminders, 40, "the enterprise's reminder of this test's case")
        # Kill once the reminder is in the delivery log (a table; its record in InfluxDB is
        # written after it). (Between apprise's send and that record lies the one window where
        # a crash means a duplicate: a duplicate is preferred to a miss, as in Alertmanager.
        # Past it, nothing may be sent twice.)
        wait_for(lambda: delivered(settings, driven, "remind"), 20, "the reminder's record")
        reminded_before_kill = set(messages(receiver, "【提醒】"))
        enforcing_worker.proc.kill()  # SIGKILL: no goodbye, offsets and timers mid-flight
        enforcing_worker.proc.wait(10)
        restarted = Service("e2e-worker-restarted", ["worker"], tmp_path)

        def escalated() -> bool:
            publish_high()
            return any(
                case_of(m.get_content()) == driven and str(m["Subject"]).startswith("【执法】")
                for _, m in mailbox.messages
                if m["To"] == "o-kc-01@example.org"
            )

        # The case's deadline still holds after the restart: the officers get it.
        wait_for(escalated, 90, "the escalation of the driven case from the restarted worker")
        time.sleep(3)  # let any redelivered notification come through
        # Each case's reminder and escalation arrive once. (The worker's fresh group also
        # replays this session's earlier readings of the site: older cases, each once too.)
        reminders = messages(receiver, "【提醒】")
        assert len(reminders) == len(set(reminders)), f"a reminder sent twice: {reminders}"
        # Per case and step: an escalation (【执法】) and, unacknowledged, a renotification
        # (【再次通知】) are two messages; the same one twice is the defect.
        mails = mails_to(mailbox, "o-kc-01@example.org")
        assert len(mails) == len(set(mails)), f"sent twice: {mails}"
        # The case driven across the restart escalated: plainly, or marked as a possible repeat
        # where the kill cut off the first worker's send (its mail may or may not have left).
        assert {(driven, "【执法】"), (driven, "【执法】【可能重复】")} & set(mails), mails
        # The restarted worker's weekly settlement still counts the reminders sent before
        # the kill: the case log is a changelogged table, not the worker's memory.
        monday = datetime.now(CHINA).date() - timedelta(days=datetime.now(CHINA).weekday())
        week = cli_json(
            "report", "weekly", "--json", "--week", monday.isoformat(), token="tok-kc-01"
        )
        (kc,) = week["grids"]
        assert kc["opened"] >= len(reminded_before_kill) >= 1 and kc["escalated"] >= 1, kc
    finally:
        device.close()
        bridge.stop()
        if restarted is not None:
            restarted.stop()


SCR_UPSET = """
name: scr-upset-now
description: the heat plant's denitrifier (SCR) fails; NOx at 1.8 × the ultra-low 50 mg/m³
events:
  - {at: 0s, device: "33080200G00001", action: exceed, pollutant: a21002, factor: 1.8, for: 2h}
"""


def test_a_stack_over_its_ultra_low_limit_reaches_the_officer_in_corrected_terms(
    settings, enforcing_worker, hj212_server, receiver, mailbox, tmp_path
):
    """The heat plant's CEMS speaks HJ 212-2025 to the platform while its SCR fails: NOx
    corrected to 6 % O2 is over the permit's ultra-low 50 mg/m³ (its measured value at 7–8 %
    O2 is lower). The enterprise is reminded and the grid's officer paged, in 折算浓度 with
    the reference and the measured O2, and the officer acknowledges the case."""
    scenario = tmp_path / "scr-upset.yaml"
    scenario.write_text(SCR_UPSET, encoding="utf-8")
    fleet = simulate(
        *("--transport", "hj212", "--hj212-version", "2025", "--scenario", str(scenario)),
        *("--outfalls", "0", "--air-stations", "0", "--meters", "0", "--stacks", "1"),
        *("--interval", "60", "--speed", "60", "--duration", "60", "--seed", "31"),
    )
    try:

        def paged() -> list[EmailMessage]:
            return [
                m
                for _, m in mailbox.messages
                if m["To"] == "o-kc-03@example.org" and "S-STK-001" in text_of(m)
            ]

        [page, *_] = wait_for(paged, 90, "the officer's page of the heat plant's stack")
        reminders = [json.loads(r.body)["message"] for r in receiver.at("/heat-plant")]
        assert reminders, "the enterprise was not reminded before its officer was paged"
        for text in (reminders[0], text_of(page)):
            assert "氮氧化物" in text and "折算浓度" in text, text
            assert "基准氧含量 6%" in text and "实测" in text, text
        match = CASE_ID.search(text_of(page))
        assert match and "S-STK-001" in match.group(0), text_of(page)
        case_id = match.group(0)
        path = f"/api/sites/S-STK-001/cases/{case_id}/ack"
        assert api("POST", path, "tok-kc-01")[0] == 403  # another grid's officer
        assert api("POST", path, "tok-kc-03")[0] == 202

        def acknowledged() -> bool:
            cases = api("GET", "/api/cases", "tok-kc-03")[1]["cases"]
            return any(c["id"] == case_id and c["status"] == "acknowledged" for c in cases)

        wait_for(acknowledged, 20, "the officer's acknowledgement on the stack's case")
        # What was stored beside the readings: the CEMS's own corrected NOx, and the
        # platform's hourly corrected means with their O2 and the emission.
        zs = since(settings, "reading", "33080200G00001", "-1d")
        assert any(r["_field"] == "zs" and r["pollutant"] == "a21002" for r in zs)
    finally:
        finish(fleet, timeout=120)


def stack_minute(o2: float, at: datetime | None = None) -> bytes:
    """A flue-gas CEMS's reading: O2 near air's while the fan moves gas (a boiler stopping)."""
    values = {"a34013": 2.0, "a21026": 8.0, "a21002": 20.0, "a19001": o2, "a00000": 40.0}
    values |= {"a01011": 4.2, "a01012": 60.0, "a01013": -0.1, "a01014": 5.0}
    stamp = (at or datetime.now(UTC)).isoformat()
    return json.dumps(
        {"ts": stamp, "values": {k: {"value": v} for k, v in values.items()}}
    ).encode()


def test_a_shutdown_declared_ahead_is_not_judged_and_the_officer_accepts_it(
    settings, device_passwords, enforcing_worker, tmp_path
):
    """The heat plant marks its boiler's shutdown a few seconds ahead, with its notice as
    proof; its O2 at air's then is no finding, while the gas boiler's, unmarked, is. The
    grid's officer sees the mark pending, fetches the proof, and accepts it; every change is
    a line of the mark's trail in InfluxDB."""
    (tmp_path / "bridge").mkdir()
    bridge = start_bridge(tmp_path / "bridge")
    plant = Device(settings, "33080200G00001", device_passwords["33080200G00001"])
    boiler = Device(settings, "33080300G00002", device_passwords["33080300G00002"])
    try:
        start = datetime.now(UTC) + timedelta(seconds=5)
        status, body = api(
            "POST",
            "/api/sites/S-STK-001/marks",
            "tok-e-031",
            {
                "device": "33080200G00001",
                "type": "shutdown",
                "start": start.isoformat(),
                "end": (start + timedelta(hours=1)).isoformat(),
                "reason": "1号锅炉计划停炉检修",
            },
        )
        assert status == 202, body
        mark = body["mark"]
        assert mark["status"] == "pending" and mark["made_by"] == "enterprise:E-031"
        # Another enterprise may not mark the plant's stack; an officer may not declare.
        assert api("POST", "/api/sites/S-STK-001/marks", "tok-e-001", {})[0] == 403
        notice = b"%PDF-1.4 shutdown notice"
        request = urllib.request.Request(
            f"http://127.0.0.1:{WEB_PORT}/api/sites/S-STK-001/marks/{mark['id']}/proofs",
            method="POST",
            data=notice,
            headers={
                "Authorization": "Bearer tok-e-031",
                "Content-Type": "application/pdf",
                "X-Filename": urllib.parse.quote("停炉通知.pdf"),
            },
        )
        with urllib.request.urlopen(request, timeout=10) as r:
            assert r.status == 202
        time.sleep(max(0.0, (start - datetime.now(UTC)).total_seconds()) + 1)
        for _ in range(8):
            assert not plant.publish(
                topics.reading_topic("S-STK-001", "33080200G00001"), stack_minute(20.3)
            ).is_failure
            assert not boiler.publish(
                topics.reading_topic("S-STK-002", "33080300G00002"), stack_minute(20.3)
            ).is_failure
            time.sleep(0.5)

        def boiler_found() -> list:
            return query(
                settings,
                f'from(bucket: "{settings.influx_bucket}") |> range(start: -10m)'
                ' |> filter(fn: (r) => r._measurement == "finding" and r.rule == "high_oxygen"'
                ' and r._field == "active")',
            )

        found = wait_for(
            lambda: [r for r in boiler_found() if r["site"] == "S-STK-002"] or None,
            30,
            "the unmarked gas boiler's high-oxygen finding",
        )
        assert found
        assert not [r for r in boiler_found() if r["site"] == "S-STK-001"]  # the marked stack's

        # The grid's officer: the mark pending with its proof; the proof itself; accepted.
        status, listing = api("GET", "/api/sites/S-STK-001/marks", "tok-kc-03")
        assert status == 200, listing
        [pending] = [m for m in listing["marks"] if m["id"] == mark["id"]]
        [proof] = pending["proofs"]
        assert pending["status"] == "pending" and proof["name"] == "停炉通知.pdf"
        assert (
            api(
                "POST",
                f"/api/sites/S-STK-001/marks/{mark['id']}/review",
                "tok-qj-03",
                {"accept": True},
            )[0]
            == 403
        )
        got = urllib.request.Request(
            f"http://127.0.0.1:{WEB_PORT}/api/proofs/{proof['sha256']}?site=S-STK-001",
            headers={"Authorization": "Bearer tok-kc-03"},
        )
        with urllib.request.urlopen(got, timeout=10) as r:
            assert r.read() == notice
        path = f"/api/sites/S-STK-001/marks/{mark['id']}/review"
        assert (
            api("POST", path, "tok-kc-03", {"accept": True, "reason": "停炉计划已备案"})[0] == 202
        )

        def accepted() -> bool:
            marks = api("GET", "/api/sites/S-STK-001/marks", "tok-kc-03")[1]["marks"]
            return any(m["id"] == mark["id"] and m["status"] == "accepted" for m in marks)

        wait_for(accepted, 20, "the accepted mark in the worker's table")

        def trail() -> set[str] | None:
            rows = query(
                settings,
                f'from(bucket: "{settings.influx_bucket}") |> range(start: -1d)'
                ' |> filter(fn: (r) => r._measurement == "mark" and r._field == "actor")',
            )
            kinds = {r["kind"] for r in rows if r["mark_id"] == mark["id"]}
            return kinds if kinds >= {"declared", "proof_added", "accepted"} else None

        wait_for(trail, 20, "the mark's trail: declared, proof added, accepted")

        # The week's settlement counts it for the grid, in the weeks of its trail's stamps
        # (the site's data clock: declared and accepted may fall either side of Monday 00:00).
        def monday_of(day: date) -> date:
            return day - timedelta(days=day.weekday())

        made = datetime.fromisoformat(mark["made_at"]).astimezone(CHINA).date()
        kc2 = {"marks_made": 0, "marks_accepted": 0}
        for week_of in sorted({monday_of(made), monday_of(datetime.now(CHINA).date())}):
            week = cli_json(
                "report", "weekly", "--json", "--week", week_of.isoformat(), token="tok-kc-03"
            )
            [grid] = [g for g in week["grids"] if g["grid"] == "G-KC-02"]
            for column in kc2:
                kc2[column] += grid[column]
        assert kc2["marks_made"] >= 1 and kc2["marks_accepted"] >= 1, kc2
    finally:
        plant.close()
        boiler.close()
        bridge.stop()


def test_a_fault_marked_after_the_exceedance_reaches_the_officers_who_reject_it(
    settings, device_passwords, enforcing_worker, receiver, mailbox, tmp_path
):
    """S-OUT-001's COD is over its limit and the enterprise is reminded; it then marks its
    analyser faulty over that time. The grid's officers get the mark to review (【标记待核】),
    reject it, and the case goes on to them (【执法】)."""
    (tmp_path / "bridge").mkdir()
    bridge = start_bridge(tmp_path / "bridge")
    device = Device(settings, DEVICE, device_passwords[DEVICE])
    topic = topics.reading_topic(SITE, DEVICE)
    caught_up()
    try:
        began = datetime.now(UTC)
        # This test's case: the worker reads the topic from its start, so earlier tests'
        # readings of the site open cases of their own times. A case's id begins with its
        # first finding's time (China time).
        since = (began - timedelta(seconds=2)).astimezone(CHINA).strftime("%Y%m%d%H%M%S")

        def reminded() -> str | None:
            assert not device.publish(topic, reading(240.0)).is_failure
            for r in receiver.at("/enterprise"):
                doc = json.loads(r.body)
                if doc["title"].startswith("【提醒】") and (m := CASE_ID.search(doc["message"])):
                    case = m.group(0)
                    ours = case[:14] >= since and case.endswith("realtime_over_limit")
                    if f"-{SITE}-" in case and ours:
                        return case
            return None

        case_id = wait_for(reminded, 40, "the enterprise's reminder of S-OUT-001's COD")
        status, body = api(
            "POST",
            f"/api/sites/{SITE}/marks",
            "tok-e-001",
            {
                "device": DEVICE,
                "type": "fault",
                "start": (began - timedelta(minutes=1)).isoformat(),
                "end": (datetime.now(UTC) + timedelta(minutes=30)).isoformat(),
                "reason": "COD 分析仪消解单元故障",
            },
        )
        assert status == 202, body
        mark_id = body["mark"]["id"]

        def review_requested() -> list:
            return [
                m
                for _, m in mailbox.messages
                if m["To"] == "o-kc-01@example.org"
                and str(m["Subject"]).startswith("【标记待核】")
                and mark_id in text_of(m)
            ]

        [request, *_] = wait_for(review_requested, 30, "the officers' request to review the mark")
        assert "故障标记" in text_of(request) and "COD 分析仪消解单元故障" in text_of(request)
        path = f"/api/sites/{SITE}/marks/{mark_id}/review"
        assert api("POST", path, "tok-kc-01", {"accept": False, "reason": ""})[0] == 400
        status, _ = api("POST", path, "tok-kc-01", {"accept": False, "reason": "无维修记录"})
        assert status == 202

        def escalated() -> list:
            assert not device.publish(topic, reading(240.0)).is_failure
            return [
                m
                for _, m in mailbox.messages
                if m["To"] == "o-kc-01@example.org"
                and str(m["Subject"]).startswith("【执法】")
                and case_id in text_of(m)
            ]

        wait_for(escalated, 40, "the case going on to the officers after the rejection")
        cases = api("GET", "/api/cases", "tok-kc-01")[1]["cases"]
        assert any(c["id"] == case_id for c in cases), "the rejected mark closed the case"
    finally:
        device.close()
        bridge.stop()
