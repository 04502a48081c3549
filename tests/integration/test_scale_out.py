"""Scale-out on the real stack: two workers of one app split the partitions, and one dies.

The two workers (one app id, so one consumer group and one set of tables) each hold some sites.
An outfall is driven over its limit until its enterprise is reminded; then the worker that
holds the site is killed (SIGKILL). The other takes the site's partition within 15 s, from the
tables' changelogs: the case, the site's data clock, and what was sent. The case escalates on
time from the survivor, nothing is sent twice, and the survivor's case API answers for the site.
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from ecowatch import topics
from ecowatch.clock import CHINA
from ecowatch.config.settings import DEMO_CATALOGUE, Settings
from ecowatch.edges.files import write_private
from ecowatch.edges.tokens import hashed
from tests.integration.conftest import PORT_BASE, Service, start_bridge, wait_for, worker_with
from tests.integration.test_alerts_delivery import HttpReceiver, Mailbox
from tests.integration.test_enforcement import case_of, delivered, mails_to, messages, reading
from tests.integration.test_pipeline import Device

# COD limit 100 mg/L; grid G-JS-01, whose sites and people no other test drives: each worker
# with a fresh group replays every test's readings from the topics' start.
SITE, DEVICE = "S-OUT-025", "33088100000025"
PORTS = (PORT_BASE + 6068, PORT_BASE + 6069)  # beside the session's worker and test_enforcement's
TOKENS = {"tok-js-01": "O-JS-01", "tok-ops": "operator:night-shift"}
TAKEOVER_SECONDS = 15

# A deadline long enough that the case is reminded on one worker and escalated on the other.
POLICY = """
policies:
  - rule: realtime_over_limit
    pending: 2s
    deadline: 45s
    ack_timeout: 60s
    renotify: 1
    hold: 4s
    escalate: true
    measure: 按日连续处罚（《环境保护法》第五十九条）
  - severity: warning
    pending: 1d
  - severity: violation
    pending: 1d
"""


def api(port: int, path: str, token: str = "tok-js-01") -> tuple[int, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")
    except OSError:
        return 0, None


def holds(port: int, site: str) -> bool:
    """Whether the worker on ``port`` holds the site's partition (it answers its state)."""
    return api(port, f"/api/sites/state?site={site}", "tok-ops")[0] == 200


@pytest.fixture
def two_workers(
    settings: Settings, receiver: HttpReceiver, mailbox: Mailbox, tmp_path: Path
) -> Iterator[tuple[Service, Service]]:
    catalogue = tmp_path / "catalogue"
    shutil.copytree(DEMO_CATALOGUE, catalogue)
    (catalogue / "policies.yaml").write_text(POLICY, encoding="utf-8")
    tokens = write_private(tmp_path / "tokens.json", json.dumps(hashed(TOKENS)))
    mail = "mailto://ecowatch:s3cret@127.0.0.1:{port}?to={to}&from=ecowatch@example.org"
    env = {
        "ECOWATCH_APP_ID": f"ecowatch-scale-{int(time.time())}",  # one group, two members
        "ECOWATCH_CATALOGUE": str(catalogue),
        "ECOWATCH_TICK_SECONDS": "1",
        "ECOWATCH_OFFICER_TOKENS": str(tokens),
        "ECOWATCH_NOTIFY_E_023": receiver.url("json", "/enterprise"),
        "ECOWATCH_NOTIFY_O_JS_01": mail.format(port=mailbox.port, to="o-js-01@example.org"),
        "ECOWATCH_NOTIFY_O_JS_02": mail.format(port=mailbox.port, to="o-js-02@example.org"),
        "ECOWATCH_NOTIFY_S_JS": receiver.url("json", "/supervisor"),
    }
    with ExitStack() as stack:
        workers = tuple(
            stack.enter_context(
                worker_with(
                    f"scale-worker-{n}",
                    {**env, "ECOWATCH_WEB_PORT": str(port)},
                    tmp_path,
                    lambda port=port: api(port, "/api/cases")[0] == 200,
                )
            )
            for n, port in enumerate(PORTS)
        )
        # The second one's joining moved partitions: wait until both answer again.
        wait_for(
            lambda: all(api(p, "/api/cases")[0] == 200 for p in PORTS), 60, "both workers ready"
        )
        yield workers  # type: ignore[misc]


def test_two_workers_split_the_sites_and_one_killed_mid_case_sends_nothing_twice(
    settings, device_passwords, two_workers, receiver, mailbox, tmp_path
):
    # The partitions are split: each worker holds some sites, and exactly one holds ours.
    sites = ["S-OUT-001", "S-OUT-002", "S-OUT-003", "S-OUT-004", "S-OUT-005", SITE]
    held = wait_for(
        lambda: (
            (h := [[s for s in sites if holds(p, s)] for p in PORTS])
            and sum(len(x) for x in h) == len(sites)
            and h
        ),
        30,
        "each site held by exactly one worker",
    )
    assert all(held), f"one worker holds every site: {held}"
    victim_at = 0 if SITE in held[0] else 1
    victim, survivor = two_workers[victim_at], two_workers[1 - victim_at]
    survivor_port = PORTS[1 - victim_at]

    (tmp_path / "bridge").mkdir()
    bridge = start_bridge(tmp_path / "bridge")
    device = Device(settings, DEVICE, device_passwords[DEVICE])
    topic = topics.reading_topic(SITE, DEVICE)

    def publish_high() -> None:
        assert not device.publish(topic, reading(240.0)).is_failure

    def our_reminders() -> list[str]:
        publish_high()
        return [c for c in messages(receiver, "【提醒】") if f"-{SITE}-" in c]

    def escalations(case_id: str) -> list[str]:
        return [
            str(m["Subject"])
            for _, m in mailbox.messages
            if m["To"] == "o-js-01@example.org"
            and case_of(m.get_content()) == case_id
            and str(m["Subject"]).startswith("【执法】")
        ]

    try:
        (driven,) = wait_for(our_reminders, 40, "the enterprise's reminder of this test's case")
        # The other worker's case API lists the case, read from the worker that holds it.
        listed = api(survivor_port, "/api/cases")
        assert listed[0] == 200 and driven in [c["id"] for c in listed[1]["cases"]], listed
        # So does its weekly settlement, from the other's case log.
        monday = datetime.now(CHINA).date() - timedelta(days=datetime.now(CHINA).weekday())
        status, week = api(survivor_port, f"/api/reports/weekly?week={monday.isoformat()}")
        assert status == 200 and week["grids"][0]["opened"] >= 1, week
        wait_for(lambda: delivered(settings, driven, "remind"), 20, "the reminder's record")
        assert escalations(driven) == [], "escalated before the kill: not mid-case"

        victim.proc.kill()  # SIGKILL: no goodbye, the group learns by the session time-out
        victim.proc.wait(10)
        killed_at = time.monotonic()

        def taken_over() -> bool:
            status, body = api(survivor_port, f"/api/sites/state?site={SITE}")
            cases = body["sites"][SITE]["cases"]["cases"].values() if status == 200 else []
            return driven in [c["id"] for c in cases]

        wait_for(taken_over, TAKEOVER_SECONDS + 5, "the survivor to hold the killed one's site")
        took = time.monotonic() - killed_at
        assert took <= TAKEOVER_SECONDS, f"the survivor took the site after {took:.1f} s"

        # The case's deadline still holds on the survivor: the officers get it, once.
        wait_for(
            lambda: (publish_high(), escalations(driven))[1], 90, "the escalation from the survivor"
        )
        time.sleep(3)  # let any redelivered notification come through
        reminders = messages(receiver, "【提醒】")
        assert len(reminders) == len(set(reminders)), f"a reminder sent twice: {reminders}"
        mails = mails_to(mailbox, "o-js-01@example.org")
        assert len(mails) == len(set(mails)), f"sent twice: {mails}"
        assert escalations(driven) and len(escalations(driven)) == 1

        # The survivor's case API answers for the site the killed worker held.
        status, listing = api(survivor_port, "/api/cases")
        assert status == 200, listing
        (case,) = [c for c in listing["cases"] if c["id"] == driven]
        assert case["site"] == SITE and case["status"] == "escalated", case
        assert survivor.alive()
    finally:
        device.close()
        bridge.stop()
