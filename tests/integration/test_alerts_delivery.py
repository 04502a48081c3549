"""Delivery over real protocols, no fakes: apprise posts JSON and forms to an HTTP receiver and
sends e-mail (with SMTP AUTH, no TLS) to an SMTP server, both local on random free ports.
Needs no Kafka or InfluxDB, so none of the stack fixtures are used."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from ecowatch.alerts.delivery import (
    AppriseNotifier,
    Deliverer,
    DeliveryLog,
    DeliveryStatus,
    JsonlDeliveryLog,
    MemoryDeliveryLog,
    RetryPolicy,
    delivery_lines,
)
from ecowatch.alerts.templates import render
from ecowatch.config.catalogue import Catalogue
from ecowatch.schema import Audience, CaseStep, Notification
from tests.factories import CASE, notification

# -- a local HTTP receiver ---------------------------------------------------------------------


@dataclass
class Received:
    path: str
    content_type: str
    body: bytes


@dataclass
class HttpReceiver:
    port: int
    requests: list[Received] = field(default_factory=list)
    statuses: dict[str, list[int]] = field(default_factory=dict)  # path → answers to give
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, scheme: str, path: str) -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def at(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.path == path]


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    state = HttpReceiver(port=0)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with state.lock:
                state.requests.append(
                    Received(self.path, self.headers.get("Content-Type", ""), body)
                )
                answers = state.statuses.get(self.path, [])
                status = answers.pop(0) if answers else 200
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# -- a local SMTP server -----------------------------------------------------------------------


@dataclass
class Mailbox:
    port: int
    messages: list[tuple[Envelope, EmailMessage]] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)


def free_port() -> int:
    # aiosmtpd's Controller checks readiness by connecting to its port, so it needs a real one.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox(port=free_port())

    class Handler:
        async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
            raw = envelope.original_content or b""
            email = message_from_bytes(raw, policy=policy.default)
            box.messages.append((envelope, email))  # type: ignore[arg-type]
            return "250 OK"

    def authenticator(
        server: Any, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        login, password = auth_data.login.decode(), auth_data.password.decode()
        box.logins.append((login, password))
        return AuthResult(success=(login, password) == ("ecowatch", "s3cret"))

    controller = Controller(
        Handler(),
        hostname="127.0.0.1",
        port=box.port,
        authenticator=authenticator,
        auth_require_tls=False,  # plain SMTP on localhost, as apprise's mailto:// speaks it
    )
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


# -- notifications -----------------------------------------------------------------------------


def note(step: CaseStep, audience: Audience, round_: int = 0) -> Notification:
    return notification(step, audience, round_, history_30d=2)


REMIND = note(CaseStep.REMIND, Audience.ENTERPRISE)
ESCALATE = note(CaseStep.ESCALATE, Audience.OFFICERS)


def deliverer(
    catalogue: Catalogue, env: dict[str, str], log: DeliveryLog | None = None
) -> Deliverer:
    return Deliverer(
        catalogue,
        log if log is not None else MemoryDeliveryLog(),
        AppriseNotifier(timeout=10),
        retry=RetryPolicy(attempts=3, first=0.05, factor=2.0, cap=0.2),
        environ=env,
    )


# -- tests -------------------------------------------------------------------------------------


def test_reminder_is_posted_as_json(catalogue: Catalogue, receiver: HttpReceiver) -> None:
    env = {"ECOWATCH_NOTIFY_E_001": receiver.url("json", "/hooks/e001")}
    report = asyncio.run(deliverer(catalogue, env).deliver(REMIND))

    [request] = receiver.at("/hooks/e001")
    payload = json.loads(request.body)
    message = render(REMIND)
    assert payload["title"] == message.title
    assert payload["message"] == message.body
    assert "超标 0.63 倍" in payload["message"] and CASE in payload["message"]
    assert payload["type"] == "failure"  # a violation
    assert [(r.status, r.recipient, r.scheme, r.attempt) for r in report.records] == [
        (DeliveryStatus.SENT, "E-001", "json", 1)
    ]


def test_escalation_reaches_officers_by_email_and_form(
    catalogue: Catalogue, receiver: HttpReceiver, mailbox: Mailbox
) -> None:
    mail = (
        f"mailto://ecowatch:s3cret@127.0.0.1:{mailbox.port}"
        "?to=officer@example.org&from=ecowatch@example.org"
    )
    env = {
        "ECOWATCH_NOTIFY_O_KC_01": mail,
        "ECOWATCH_NOTIFY_O_KC_02": receiver.url("form", "/hooks/o2"),
    }
    report = asyncio.run(deliverer(catalogue, env).deliver(ESCALATE))
    message = render(ESCALATE)

    assert mailbox.logins == [("ecowatch", "s3cret")]
    [(envelope, email)] = mailbox.messages
    assert envelope.rcpt_tos == ["officer@example.org"]
    assert email["Subject"] == message.title
    text = email.get_body(preferencelist=("plain", "html"))
    assert text is not None
    content = text.get_content()
    assert CASE in content and "超标 0.63 倍" in content and "第五十九条" in content

    [request] = receiver.at("/hooks/o2")
    form = urllib.parse.parse_qs(request.body.decode())
    assert form["title"] == [message.title]
    assert form["message"] == [message.body]

    sent = sorted((r.recipient, r.scheme) for r in report.with_status(DeliveryStatus.SENT))
    assert sent == [("O-KC-01", "mailto"), ("O-KC-02", "form")]
    assert all("s3cret" not in r.to_json() + r.to_line() for r in report.records)


def test_a_failing_endpoint_is_retried_then_succeeds(
    catalogue: Catalogue, receiver: HttpReceiver
) -> None:
    receiver.statuses["/hooks/flaky"] = [500]
    env = {"ECOWATCH_NOTIFY_E_001": receiver.url("json", "/hooks/flaky")}
    log = MemoryDeliveryLog()
    asyncio.run(deliverer(catalogue, env, log).deliver(REMIND))

    assert len(receiver.at("/hooks/flaky")) == 2
    records = log.records()
    assert [(r.status, r.attempt) for r in records] == [
        (DeliveryStatus.RETRIED, 1),
        (DeliveryStatus.SENT, 2),
    ]
    assert "500" in records[0].detail and "127.0.0.1" not in records[0].detail
    assert records[1].at > records[0].at


def test_an_unreachable_endpoint_fails_after_its_attempts(catalogue: Catalogue) -> None:
    env = {"ECOWATCH_NOTIFY_E_001": f"json://127.0.0.1:{free_port()}/nobody"}
    log = MemoryDeliveryLog()
    asyncio.run(deliverer(catalogue, env, log).deliver(REMIND))
    assert [(r.status, r.attempt) for r in log.records()] == [
        (DeliveryStatus.RETRIED, 1),
        (DeliveryStatus.RETRIED, 2),
        (DeliveryStatus.FAILED, 3),
    ]


def test_an_invalid_url_is_not_retried_and_the_others_still_go(
    catalogue: Catalogue, receiver: HttpReceiver
) -> None:
    env = {"ECOWATCH_NOTIFY_E_001": f"nosuchservice://x, {receiver.url('json', '/hooks/ok')}"}
    report = asyncio.run(deliverer(catalogue, env).deliver(REMIND))
    assert sorted((r.channel, r.scheme, r.status, r.attempt) for r in report.records) == [
        (0, "nosuchservice", DeliveryStatus.FAILED, 1),
        (1, "json", DeliveryStatus.SENT, 1),
    ]
    assert len(receiver.at("/hooks/ok")) == 1


def test_a_redelivered_notification_is_not_sent_twice_even_after_a_restart(
    catalogue: Catalogue, receiver: HttpReceiver, mailbox: Mailbox, tmp_path: Path
) -> None:
    env = {
        "ECOWATCH_NOTIFY_O_KC_01": (
            f"mailto://ecowatch:s3cret@127.0.0.1:{mailbox.port}"
            "?to=officer@example.org&from=ecowatch@example.org"
        ),
        "ECOWATCH_NOTIFY_O_KC_02": receiver.url("json", "/hooks/o2"),
    }
    path = tmp_path / "deliveries.jsonl"
    first = deliverer(catalogue, env, JsonlDeliveryLog(path))
    asyncio.run(first.deliver(ESCALATE))
    asyncio.run(first.deliver(ESCALATE))  # Kafka redelivers to the same worker
    restarted = deliverer(catalogue, env, JsonlDeliveryLog(path))  # a new process
    report = asyncio.run(restarted.deliver(ESCALATE))

    assert len(mailbox.messages) == 1 and len(receiver.at("/hooks/o2")) == 1
    assert report.records == [] and len(report.duplicates) == 2
    # The next round of the escalation is a new key: it is sent.
    asyncio.run(restarted.deliver(note(CaseStep.RENOTIFY, Audience.OFFICERS, round_=1)))
    assert len(mailbox.messages) == 2 and len(receiver.at("/hooks/o2")) == 2
    assert "s3cret" not in path.read_text(encoding="utf-8")


# -- no secret in any log line -----------------------------------------------------------------

HOOK_TOKEN, HOOK_PASSWORD = "hK7tokenQ2w9", "pw-Zx81!vq"


class EveryRecord(logging.Handler):
    """Every record at every level, rendered as a log file would have it (tracebacks too)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record) + repr(record.args) + str(record.exc_text))


def test_no_url_secret_reaches_a_log_line_sent_or_failed(
    catalogue: Catalogue, receiver: HttpReceiver, mailbox: Mailbox, tmp_path: Path
) -> None:
    """Apprise logs URLs at DEBUG and on failures, urllib3 logs each request's path and query:
    with the root logger and apprise's at DEBUG, a delivery that is sent (JSON with a token in
    its path and query and a password, e-mail with SMTP AUTH) and one that fails (the receiver
    refuses connections) leave neither token nor password in any record, nor in the delivery
    log or its InfluxDB lines."""
    hook = (
        f"json://ops:{HOOK_PASSWORD}@127.0.0.1:{receiver.port}/hooks/{HOOK_TOKEN}"
        f"?-token={HOOK_TOKEN}"
    )
    mail = (
        f"mailto://ecowatch:s3cret@127.0.0.1:{mailbox.port}"
        "?to=officer@example.org&from=ecowatch@example.org"
    )
    refused = f"json://ops:{HOOK_PASSWORD}@127.0.0.1:{free_port()}/down/{HOOK_TOKEN}"
    env = {"ECOWATCH_NOTIFY_E_001": hook, "ECOWATCH_NOTIFY_O_KC_01": f"{mail} {refused}"}
    secrets = (HOOK_TOKEN, HOOK_PASSWORD, "pw-Zx81%21vq", "s3cret", "officer@example.org")

    handler = EveryRecord()
    loggers = [logging.getLogger(), logging.getLogger("apprise")]
    # Everything at DEBUG, whatever earlier code set (the InfluxDB client quiets urllib3).
    chatty = [logging.getLogger(n) for n in ("urllib3", "urllib3.connectionpool")]
    saved = [(lg, lg.level) for lg in loggers + chatty]
    for lg in loggers:
        lg.addHandler(handler)
    for lg in loggers + chatty:
        lg.setLevel(logging.DEBUG)
    path = tmp_path / "deliveries.jsonl"
    try:
        d = deliverer(catalogue, env, JsonlDeliveryLog(path))
        sent = asyncio.run(d.deliver(REMIND))
        escalated = asyncio.run(d.deliver(ESCALATE))
    finally:
        for lg, level in saved:
            lg.removeHandler(handler)
            lg.setLevel(level)

    # It did go, through the token and the password, and the refused one did fail.
    [request] = receiver.at(f"/hooks/{HOOK_TOKEN}?token={HOOK_TOKEN}")
    assert json.loads(request.body)["title"] == render(REMIND).title
    assert mailbox.logins == [("ecowatch", "s3cret")] and len(mailbox.messages) == 1
    statuses = sorted(
        (r.scheme, r.channel, r.status)
        for r in sent.records + escalated.records
        if r.status is not DeliveryStatus.UNROUTABLE  # O-KC-02 has no URL here
    )
    assert statuses == [
        ("json", 0, DeliveryStatus.SENT),
        ("json", 1, DeliveryStatus.FAILED),
        ("json", 1, DeliveryStatus.RETRIED),
        ("json", 1, DeliveryStatus.RETRIED),
        ("mailto", 0, DeliveryStatus.SENT),
    ]
    # Apprise and urllib3 did speak, at DEBUG and on the failure; none of it holds a secret.
    names = {line.split(" ", 2)[1].rstrip(":") for line in handler.lines}
    assert {"apprise", "urllib3.connectionpool", "ecowatch.alerts.delivery"} <= names
    assert any(line.startswith("WARNING apprise:") for line in handler.lines)
    # (aiosmtpd's "mail.log" is the receiving mail server, the provider's side: not ours.)
    ours = [line for line in handler.lines if not line.split(" ", 2)[1].startswith("mail.")]
    assert [line for line in ours if any(s in line for s in secrets)] == []
    written = path.read_text(encoding="utf-8") + delivery_lines(sent.records + escalated.records)
    assert [s for s in secrets if s in written] == []
