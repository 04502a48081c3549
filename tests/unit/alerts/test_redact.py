"""No apprise URL, secret or recipient's address in any log line, at any level: the redactor on
the loggers a delivery runs through (apprise's, urllib3's, ours), with no network. The real
apprise, sending and failing, is in integration/test_alerts_delivery.py."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import pytest

from ecowatch.alerts.delivery import (
    Deliverer,
    DeliveryStatus,
    MemoryDeliveryLog,
    RetryPolicy,
    SendResult,
)
from ecowatch.alerts.redact import GUARDED_LOGGERS, Redactor, guard_logs, secret_parts
from ecowatch.alerts.templates import Message
from ecowatch.config.catalogue import Catalogue
from ecowatch.schema import Audience, CaseStep
from tests.unit.alerts.test_alerts import note

TOKEN, PASSWORD, ADDRESS = "tok3nZYX987", "pa55-W0rd!", "boss@corp.example"
HOOK = f"json://ops:{PASSWORD}@hooks.example:8443/notify/{TOKEN}?-sig={TOKEN}x"
MAIL = f"mailto://ecowatch:{PASSWORD}@smtp.example?to={ADDRESS}"
SECRETS = (TOKEN, PASSWORD, ADDRESS, "pa55-W0rd%21", "boss%40corp.example")


class Everything(logging.Handler):
    """Every record at every level, rendered as a handler would write it (traceback too)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def captured() -> Iterator[Everything]:
    handler = Everything()
    loggers = [logging.getLogger(), logging.getLogger("apprise")]
    saved = [(lg, lg.level) for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        for lg, level in saved:
            lg.removeHandler(handler)
            lg.setLevel(level)


def leaks(text: str) -> list[str]:
    return [s for s in SECRETS if s in text]


def test_the_secret_parts_of_a_url_are_its_credentials_path_and_query() -> None:
    parts = secret_parts(MAIL)
    assert {MAIL, "ecowatch", PASSWORD, "pa55-W0rd%21", ADDRESS, "boss%40corp.example"} <= parts
    assert TOKEN in secret_parts(HOOK) and f"{TOKEN}x" in secret_parts(HOOK)
    # A short path segment is no secret of its own (it would blank the word everywhere).
    assert "hook" not in secret_parts("json://example.org/hook/abc")


@pytest.mark.parametrize(
    "line",
    [
        "Loaded JSON URL: {hook}",
        "JSON POST URL: https://hooks.example:8443/notify/{token} (cert_verify=True)",
        'https://hooks.example:8443 "POST /notify/{token}?-sig=abc HTTP/1.1" 500 0',
        "Max retries exceeded with url: /notify/{token}?sig=1 (Caused by ...)",
        "Unparseable URL {mail}",
        "Sending E-Mail to {address} as ecowatch:{password}@smtp.example",
        "Failed to send to {token}",
    ],
)
def test_a_line_holding_a_url_or_its_parts_is_scrubbed(line: str) -> None:
    redactor = Redactor()
    redactor.know([HOOK, MAIL])
    text = line.format(hook=HOOK, mail=MAIL, token=TOKEN, address=ADDRESS, password=PASSWORD)
    assert leaks(redactor.scrub(text)) == []


def test_apprise_and_urllib3_records_are_scrubbed_at_every_level_with_tracebacks(
    captured: Everything, monkeypatch: pytest.MonkeyPatch
) -> None:
    guard_logs([HOOK, MAIL])
    for name in ("apprise", "urllib3.connectionpool", "ecowatch.alerts.delivery"):
        logger = logging.getLogger(name)
        # A library may have raised its logger's level (the InfluxDB client quiets urllib3's)
        # earlier in the same process: this test is about the filter, not the levels.
        monkeypatch.setattr(logger, "level", logger.level)  # restored after the test
        logger.setLevel(logging.DEBUG)  # (and Logger's cache of levels cleared)
        logger.debug("Loaded URL: %s", HOOK)
        logger.info("POST /notify/%s HTTP/1.1", TOKEN)
        logger.warning("Failed to send to %s", MAIL)
        try:
            raise ConnectionError(f"refused: {HOOK} for {ADDRESS}")
        except ConnectionError:
            logger.exception("send failed")
        logger.error("stack", stack_info=True, extra={"url": "x"})
    # Five each, none dropped (apprise's may come twice, through a handler of its own that
    # an earlier delivery in the same process left on it, and the root's).
    assert len(set(captured.lines)) == 5 * 3
    assert [line for line in captured.lines if leaks(line)] == []
    assert any("ConnectionError: refused: json://<redacted>" in line for line in captured.lines)


def test_every_guarded_logger_carries_the_filter() -> None:
    redactor = guard_logs()
    assert all(redactor in logging.getLogger(name).filters for name in GUARDED_LOGGERS)
    guard_logs()  # twice: still once on each
    assert all(logging.getLogger(n).filters.count(redactor) == 1 for n in GUARDED_LOGGERS)


class Leaky:
    """A notifier whose failures say the URL, as some libraries' exceptions do."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def send(self, url: str, message: Message, notify_type: str) -> SendResult:
        self.calls.append(url)
        logging.getLogger("apprise").debug("posting to %s", url)
        if self.calls.count(url) == 1:
            raise OSError(f"cannot reach {url}")
        return SendResult(False, False, f"HTTP 401 from {url} for {ADDRESS}")


def test_a_failure_naming_its_url_reaches_no_log_nor_record(
    catalogue: Catalogue, captured: Everything
) -> None:
    log = MemoryDeliveryLog()
    deliverer = Deliverer(
        catalogue,
        log,
        Leaky(),
        sleep=lambda _: asyncio.sleep(0),
        retry=RetryPolicy(attempts=3, first=0.0),
        environ={"ECOWATCH_NOTIFY_E_001": f"{HOOK} {MAIL}"},
    )
    asyncio.run(deliverer.deliver(note(CaseStep.REMIND, Audience.ENTERPRISE)))
    records = log.records()
    assert {r.status for r in records} == {DeliveryStatus.RETRIED, DeliveryStatus.FAILED}
    assert [r for r in records if leaks(r.to_json() + r.to_line())] == []
    assert any("<secret>" in r.detail or "<redacted>" in r.detail for r in records)
    assert captured.lines and [line for line in captured.lines if leaks(line)] == []
