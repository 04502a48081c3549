"""Reaching people: routing, message templates and the delivery pipeline, with no network
(a scripted notifier stands in for apprise; the real protocols are in integration/)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from ecowatch.alerts.delivery import (
    AppriseNotifier,
    Deliverer,
    DeliveryRecord,
    DeliveryStatus,
    JsonlDeliveryLog,
    MemoryDeliveryLog,
    RetryPolicy,
    SendResult,
    TableDeliveryLog,
    delivery_lines,
    notify_type,
)
from ecowatch.alerts.routing import RecipientRole, parse_urls, route, scheme_of
from ecowatch.alerts.templates import (
    BODY_MAX,
    TITLE_MAX,
    Message,
    is_possible_repeat,
    possible_repeat,
    render,
)
from ecowatch.alerts.wording import china_time, excess_multiple
from ecowatch.alerts.wording import finding_text as evidence_line
from ecowatch.clock import ManualClock
from ecowatch.config.catalogue import Catalogue, Contact, Enterprise, Grid, Officer, OfficerRole
from ecowatch.schema import Audience, CaseStep, Finding, Notification, Rule, Severity
from tests.factories import CASE, T0, evidence, notification

ENV = {
    "ECOWATCH_NOTIFY_E_001": "json://hook.example/e001",
    "ECOWATCH_NOTIFY_O_KC_01": "json://hook.example/o1, mailto://u:secret@mail.example?to=a@x.org",
    "ECOWATCH_NOTIFY_O_KC_02": "ntfy://ntfy.example/o2",
    "ECOWATCH_NOTIFY_S_KC": "json://hook.example/s",
}


def finding(**changes: object) -> Finding:
    return evidence(**changes)


note = notification


# -- routing -----------------------------------------------------------------------------------


def test_enterprise_audience_reaches_the_contact(catalogue: Catalogue) -> None:
    r = route(note(CaseStep.REMIND, Audience.ENTERPRISE), catalogue, ENV)
    assert [(x.recipient, x.role, x.urls) for x in r.routes] == [
        ("E-001", RecipientRole.ENTERPRISE, ("json://hook.example/e001",))
    ]
    assert r.unroutable == []


def test_officers_audience_reaches_the_grids_officers_not_the_supervisor(
    catalogue: Catalogue,
) -> None:
    r = route(note(), catalogue, ENV)
    assert [(x.recipient, x.role) for x in r.routes] == [
        ("O-KC-01", RecipientRole.OFFICER),
        ("O-KC-02", RecipientRole.OFFICER),
    ]
    assert r.routes[0].urls == (
        "json://hook.example/o1",
        "mailto://u:secret@mail.example?to=a@x.org",
    )
    assert r.unroutable == []


def test_supervisor_audience_reaches_the_supervisor_only(catalogue: Catalogue) -> None:
    r = route(note(CaseStep.RAISE, Audience.SUPERVISOR), catalogue, ENV)
    assert [(x.recipient, x.role) for x in r.routes] == [("S-KC", RecipientRole.SUPERVISOR)]


def test_escalation_is_not_copied_to_the_enterprise(catalogue: Catalogue) -> None:
    r = route(note(), catalogue, ENV)
    assert "E-001" not in {x.recipient for x in r.routes}


@pytest.mark.parametrize(
    ("value", "urls"),
    [
        ("json://a/b", ("json://a/b",)),
        ("json://a/b,ntfy://t", ("json://a/b", "ntfy://t")),
        (
            "  json://a/b ,  ntfy://t\n\tdingtalk://tok/  ",
            ("json://a/b", "ntfy://t", "dingtalk://tok/"),
        ),
        # A comma inside a URL (several mail recipients) is not a separator.
        (
            "mailto://u:p@h?to=a@x.org,b@y.org, json://a/b",
            ("mailto://u:p@h?to=a@x.org,b@y.org", "json://a/b"),
        ),
        ("", ()),
        (" , ", ()),
    ],
)
def test_environment_values_hold_several_urls(value: str, urls: tuple[str, ...]) -> None:
    assert parse_urls(value) == urls


def test_a_person_without_a_url_is_reported_not_dropped(catalogue: Catalogue) -> None:
    env = {k: v for k, v in ENV.items() if k != "ECOWATCH_NOTIFY_O_KC_02"}
    env["ECOWATCH_NOTIFY_O_KC_01"] = "  "
    r = route(note(severity=Severity.WARNING), catalogue, env)
    assert r.routes == []
    gaps = {g.recipient: g.reason for g in r.unroutable}
    assert gaps == {
        "O-KC-01": "environment variable ECOWATCH_NOTIFY_O_KC_01 holds no URL",
        "O-KC-02": "environment variable ECOWATCH_NOTIFY_O_KC_02 is not set",
    }


def test_enterprise_without_url_or_without_enterprise_is_unroutable(catalogue: Catalogue) -> None:
    r = route(note(CaseStep.REMIND, Audience.ENTERPRISE), catalogue, {})
    assert r.routes == [] and [g.recipient for g in r.unroutable] == ["E-001"]
    r = route(note(CaseStep.REMIND, Audience.ENTERPRISE, enterprise=None), catalogue, ENV)
    assert r.routes == [] and r.unroutable[0].reason == "the site has no enterprise"


def test_a_violation_reaching_no_officer_goes_to_the_supervisor(catalogue: Catalogue) -> None:
    env = {"ECOWATCH_NOTIFY_S_KC": "json://hook.example/s"}
    r = route(note(), catalogue, env)
    assert [(x.recipient, x.role) for x in r.routes] == [("S-KC", RecipientRole.SUPERVISOR)]
    assert {g.recipient for g in r.unroutable} == {"O-KC-01", "O-KC-02"}
    # A warning is not moved up: the gap is reported for the operators to fix.
    r = route(note(severity=Severity.WARNING), catalogue, env)
    assert r.routes == [] and len(r.unroutable) == 2


def test_a_recipient_no_longer_in_the_grid_is_reported(catalogue: Catalogue) -> None:
    r = route(note(recipients=["O-KC-01", "O-GONE"]), catalogue, ENV)
    assert [x.recipient for x in r.routes] == ["O-KC-01", "O-KC-02"]
    assert [(g.recipient, g.role) for g in r.unroutable] == [("O-GONE", RecipientRole.OFFICER)]


def test_a_grid_without_officers_or_notify_env_is_a_gap() -> None:
    cat = Catalogue(
        grids={
            "G-X": Grid(
                id="G-X",
                name="x",
                district="d",
                officers=[Officer(id="S-X", name="s", role=OfficerRole.SUPERVISOR)],
            )
        },
        enterprises={"E-X": Enterprise(id="E-X", name="e", contact=Contact(name="c"))},
        sites={},
    )
    r = route(note(grid="G-X", severity=Severity.WARNING), cat, ENV)
    assert [(g.recipient, g.reason) for g in r.unroutable] == [("-", "grid 'G-X' has no officer")]
    r = route(note(CaseStep.RAISE, Audience.SUPERVISOR, grid="G-X"), cat, ENV)
    assert [(g.recipient, g.reason) for g in r.unroutable] == [
        ("S-X", "no notify_env in the catalogue")
    ]
    r = route(note(CaseStep.REMIND, Audience.ENTERPRISE, enterprise="E-X"), cat, ENV)
    assert r.unroutable[0].reason == "no notify_env in the catalogue"


def test_routes_and_schemes_keep_secrets_out_of_text(catalogue: Catalogue) -> None:
    r = route(note(), catalogue, ENV)
    assert "secret" not in repr(r.routes[0]) and "secret" not in repr(r)
    assert scheme_of("mailto://u:secret@h") == "mailto"
    assert scheme_of("not a url") == "?"


# -- templates ---------------------------------------------------------------------------------


def test_the_excess_is_the_multiple_minus_one() -> None:
    # 81.5 mg/L against 50 is 1.63× the limit: officers say 超标 0.63 倍.
    assert excess_multiple(finding()) == Decimal("0.63")
    assert excess_multiple(finding(multiple=None, value=120.0, limit=100.0)) == Decimal("0.2")
    assert excess_multiple(finding(value=None, multiple=2.5)) == Decimal("1.5")
    assert excess_multiple(finding(multiple=1.0, value=50.0)) is None  # at the limit: not over
    assert excess_multiple(finding(multiple=None, value=None)) is None


def test_evidence_reads_as_officers_say_it() -> None:
    zh = evidence_line(finding())
    assert (
        zh
        == "COD 小时均值 81.5 mg/L，超标 0.63 倍（限值 50 mg/L，排污许可证 91330800MA28F0A01X001P）"
    )
    assert "1.63 倍" not in zh
    en = evidence_line(finding(), "en")
    assert (
        en == "COD hourly mean 81.5 mg/L, 1.63× the limit 50 mg/L (permit 91330800MA28F0A01X001P)"
    )
    # Two decimals, rounded: 167.6 against 80 is 2.095× → 超标 1.10 倍 (1.095 rounds up).
    assert "超标 1.10 倍" in evidence_line(finding(value=167.6, limit=80.0, multiple=167.6 / 80))


def test_evidence_of_other_rules() -> None:
    offline = finding(rule=Rule.OFFLINE, pollutant=None, value=None, limit=None, multiple=None)
    assert evidence_line(offline) == "设备 33080200000001 掉线"
    quota = finding(rule=Rule.QUOTA_WARNING, pollutant="w01018", value=82.0, limit=100.0, unit="kg")
    assert evidence_line(quota) == "COD 排污量已达80%：已用 82/100 kg（82.0%）"
    assert evidence_line(quota, "en") == "COD used 82 of 100 kg (82.0%)"


def test_deadline_in_china_time() -> None:
    assert china_time(T0) == "2026-11-23 09:00"
    assert china_time(datetime(2026, 11, 23, 17, 30, tzinfo=UTC)) == "2026-11-24 01:30"
    remind = render(note(CaseStep.REMIND, Audience.ENTERPRISE))
    assert "请于 2026-11-23 11:00（北京时间）前整改或书面说明" in remind.body
    en = render(note(CaseStep.REMIND, Audience.ENTERPRISE), "en")
    assert "Rectify or explain by 2026-11-23 11:00 China time" in en.body
    late = render(note(deadline=datetime(2026, 11, 23, 16, 15, tzinfo=UTC)))
    assert "请于 2026-11-24 00:15（北京时间）前签收" in late.body


def test_reminder_in_chinese() -> None:
    m = render(note(CaseStep.REMIND, Audience.ENTERPRISE))
    assert m.title == "【提醒】巨化精细化工总排口 COD小时均值超标"
    assert m.body.splitlines()[0] == f"案件 {CASE}"  # what to act on comes first
    assert "超标 0.63 倍" in m.body
    assert "时段 2026-11-23 08:00–09:00" in m.body
    assert "数据标记 C×1 M×3" in m.body and "N×" not in m.body
    assert "近30天本站案件 3 起" in m.body
    assert "拟处置" not in m.body  # the enterprise is reminded, not told of a penalty


def test_escalation_carries_the_proposed_measure() -> None:
    m = render(note())
    assert m.title.startswith("【执法】")
    assert "拟处置：责令改正，拒不改正的按日连续处罚（《环境保护法》第五十九条）" in m.body
    en = render(note(), "en")
    assert en.title == "[Enforce] S-OUT-001 COD 1h mean > limit"
    assert "Proposed: order to rectify; daily continuous penalty (EPL Art. 59)" in en.body
    quota = note(rule=Rule.QUOTA_EXHAUSTED, evidence=finding(rule=Rule.QUOTA_EXHAUSTED))
    assert "《环境保护法》第六十条" in render(quota).body
    assert "(EPL Art. 60)" in render(quota, "en").body
    given = note(proposed_measure="按日连续处罚（第五十九条）")
    assert "拟处置：按日连续处罚（第五十九条）" in render(given).body


def test_no_flags_line_when_every_value_is_normal() -> None:
    m = render(note(evidence=finding(flags={"N": 60})))
    assert "数据标记" not in m.body


LONG_MEASURE = (
    "责令改正，拒不改正的按日连续处罚，并处以罚款，"
    "情节严重的报经有批准权的人民政府批准，责令停业、关闭"
) * 2


def _all_notifications() -> Iterable[Notification]:
    long_name = "衢州某某超长名称精细化工股份有限公司第二生产基地总排放口（东厂区）"
    for step, audience in [
        (CaseStep.REMIND, Audience.ENTERPRISE),
        (CaseStep.ESCALATE, Audience.OFFICERS),
        (CaseStep.RENOTIFY, Audience.OFFICERS),
        (CaseStep.RAISE, Audience.SUPERVISOR),
        (CaseStep.CLOSED, Audience.ENTERPRISE),
        (CaseStep.CLOSED, Audience.OFFICERS),
    ]:
        for rule in Rule:
            evidence = finding(
                rule=rule,
                value=123456.789,
                limit=1000.5,
                multiple=123.4,
                flags={"M": 12, "C": 7, "D": 3, "F": 1, "S": 2, "T": 9, "N": 1},
                limit_source="GB 8978-1996 first grade, table 4, column for new sources",
            )
            yield note(
                step,
                audience,
                case_id=f"20261123090000-S-OUT-LONG-NAME-001-w01018-{rule.value}",
                site="S-OUT-LONG-NAME-001",
                site_name=long_name,
                rule=rule,
                evidence=evidence,
                history_30d=123,
                proposed_measure=LONG_MEASURE,
            )


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_every_message_fits_a_phone(lang: str) -> None:
    for n in _all_notifications():
        m = render(n, lang)  # type: ignore[arg-type]
        assert len(m.title) <= TITLE_MAX, m.title
        assert len(m.body) <= BODY_MAX, m.body
        assert n.case_id in m.body  # the number to act on survives any shortening
        if n.step is not CaseStep.CLOSED:
            assert "2026-11-23 11:00" in m.body  # and so does the deadline
        marked = possible_repeat(m, lang)  # type: ignore[arg-type]
        assert len(marked.title) <= TITLE_MAX and len(marked.body) <= BODY_MAX
        assert marked.title != m.title and n.case_id in marked.body


# -- delivery ----------------------------------------------------------------------------------


class ScriptedNotifier:
    """Answers from a script per URL (the last answer repeats); records every call."""

    def __init__(self, script: dict[str, list[SendResult | BaseException]] | None = None) -> None:
        self.script = script or {}
        self.calls: list[tuple[str, Message, str]] = []

    async def send(self, url: str, message: Message, notify_type: str) -> SendResult:
        self.calls.append((url, message, notify_type))
        answers = self.script.get(url, [SendResult(True)])
        answer = answers.pop(0) if len(answers) > 1 else answers[0]
        if isinstance(answer, BaseException):
            raise answer
        return answer


class Sleeper:
    """An injected sleep that waits for nothing but moves the manual clock."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock, self.delays = clock, list[float]()

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        self.clock.advance(timedelta(seconds=seconds))


FAIL = SendResult(False, True, "HTTP 500")
ONE_URL = {"ECOWATCH_NOTIFY_E_001": "json://hook.example/e001"}


def deliverer(
    catalogue: Catalogue,
    notifier: ScriptedNotifier,
    log: MemoryDeliveryLog | TableDeliveryLog | JsonlDeliveryLog | None = None,
    env: dict[str, str] | None = None,
    retry: RetryPolicy | None = None,
) -> tuple[Deliverer, Sleeper]:
    clock = ManualClock(T0)
    sleeper = Sleeper(clock)
    d = Deliverer(
        catalogue,
        log if log is not None else MemoryDeliveryLog(),
        notifier,
        clock=clock,
        sleep=sleeper,
        retry=retry or RetryPolicy(attempts=4, first=2.0, factor=2.0, cap=60.0),
        environ=ENV if env is None else env,
    )
    return d, sleeper


def test_same_key_twice_is_sent_once(catalogue: Catalogue) -> None:
    notifier = ScriptedNotifier()
    d, _ = deliverer(catalogue, notifier)
    first = asyncio.run(d.deliver(note()))
    # O-KC-01 has two URLs, O-KC-02 one: three channels, each sent once.
    assert len(first.with_status(DeliveryStatus.SENT)) == 3 and first.duplicates == []
    again = asyncio.run(d.deliver(note()))
    assert again.records == [] and len(again.duplicates) == 3
    assert len(notifier.calls) == 3
    # Another step of the same case is another key: sent.
    asyncio.run(d.deliver(note(CaseStep.RENOTIFY, key=f"{CASE}:renotify:officers:1")))
    assert len(notifier.calls) == 6


def test_racing_redeliveries_send_once(catalogue: Catalogue) -> None:
    notifier = ScriptedNotifier()
    d, _ = deliverer(catalogue, notifier, env=ONE_URL)
    n = note(CaseStep.REMIND, Audience.ENTERPRISE)

    async def both() -> None:
        await asyncio.gather(d.deliver(n), d.deliver(n))

    asyncio.run(both())
    assert len(notifier.calls) == 1


def test_a_file_log_reloaded_still_knows_what_was_sent(
    catalogue: Catalogue, tmp_path: Path
) -> None:
    path = tmp_path / "deliveries.jsonl"
    notifier = ScriptedNotifier()
    d, _ = deliverer(catalogue, notifier, log=JsonlDeliveryLog(path))
    asyncio.run(d.deliver(note()))
    assert len(notifier.calls) == 3
    with path.open("a", encoding="utf-8") as f:
        f.write('{"key": "torn by a cra')  # a crash mid-write leaves half a line
    # A restarted process: a new log read from the file, a new deliverer.
    reloaded = JsonlDeliveryLog(path)
    assert len(reloaded.records()) == 3
    d2, _ = deliverer(catalogue, notifier, log=reloaded)
    report = asyncio.run(d2.deliver(note()))
    assert len(notifier.calls) == 3 and len(report.duplicates) == 3
    assert "secret" not in path.read_text(encoding="utf-8")


class Crash(BaseException):
    """The process dying mid-send: nothing after it runs (a notifier's Exception is retried)."""


def crashing_notifier() -> ScriptedNotifier:
    return ScriptedNotifier({ONE_URL["ECOWATCH_NOTIFY_E_001"]: [Crash()]})


@pytest.mark.parametrize("kind", ["table", "file"])
def test_a_send_cut_off_by_a_crash_is_sent_again_marked_as_a_possible_repeat(
    catalogue: Catalogue, tmp_path: Path, kind: str
) -> None:
    table: dict[bytes, bytes] = {}
    path = tmp_path / "deliveries.jsonl"

    def log() -> TableDeliveryLog | JsonlDeliveryLog:
        # Each call is a restarted process: the table as its changelog restores it, or the file.
        return TableDeliveryLog(table) if kind == "table" else JsonlDeliveryLog(path)

    n = note(CaseStep.REMIND, Audience.ENTERPRISE)
    crashed, _ = deliverer(catalogue, crashing_notifier(), log=log(), env=ONE_URL)
    with pytest.raises(Crash):
        asyncio.run(crashed.deliver(n))

    notifier = ScriptedNotifier()
    restarted, _ = deliverer(catalogue, notifier, log=log(), env=ONE_URL)
    report = asyncio.run(restarted.deliver(n))
    [(_, message, _)] = notifier.calls
    assert message == possible_repeat(render(n))  # not the plain message a second time
    # The step's tag stays first, so that an officer's mail rule on 【提醒】 still finds it.
    assert message.title.startswith("【提醒】【可能重复】")
    assert is_possible_repeat(message.title) and not is_possible_repeat(render(n).title)
    assert report.possible_repeats == [("E-001", 0, "json")]
    [sent] = report.with_status(DeliveryStatus.SENT)
    assert sent.detail == "possible repeat"

    # Recorded as sent now: neither plain nor marked again.
    again, _ = deliverer(catalogue, notifier, log=log(), env=ONE_URL)
    assert len(asyncio.run(again.deliver(n)).duplicates) == 1
    assert len(notifier.calls) == 1


def test_a_send_is_begun_in_the_changelog_before_apprise_and_recorded_after(
    catalogue: Catalogue,
) -> None:
    """The table's writes are flushed (the worker: its Kafka producer) on either side of the
    notifier, so no crash can lose the fact that a send was begun or done."""
    table: dict[bytes, bytes] = {}
    seen: list[str] = []
    n = note(CaseStep.REMIND, Audience.ENTERPRISE)

    async def flush() -> None:
        seen.append("flush " + table[n.key.encode()].decode())

    class Watching(ScriptedNotifier):
        async def send(self, url: str, message: Message, notify_type: str) -> SendResult:
            seen.append("send")
            return await super().send(url, message, notify_type)

    sent_log = TableDeliveryLog(table, flush, clock=ManualClock(T0))
    d, _ = deliverer(catalogue, Watching(), log=sent_log, env=ONE_URL)
    asyncio.run(d.deliver(n))
    at = '"at": "2026-11-23T01:00:00+00:00"'  # each write is stamped with the clock's time
    assert seen == [
        'flush {"sent": [], "begun": [["E-001", 0, "json"]], ' + at + "}",
        "send",
        'flush {"sent": [["E-001", 0, "json"]], "begun": [], ' + at + "}",
    ]


def test_retries_back_off_exponentially_then_succeed(catalogue: Catalogue) -> None:
    url = ONE_URL["ECOWATCH_NOTIFY_E_001"]
    notifier = ScriptedNotifier({url: [FAIL, FAIL, SendResult(True)]})
    d, sleeper = deliverer(catalogue, notifier, env=ONE_URL)
    report = asyncio.run(d.deliver(note(CaseStep.REMIND, Audience.ENTERPRISE)))
    assert sleeper.delays == [2.0, 4.0]
    assert [(r.status, r.attempt, r.at) for r in report.records] == [
        (DeliveryStatus.RETRIED, 1, T0),
        (DeliveryStatus.RETRIED, 2, T0 + timedelta(seconds=2)),
        (DeliveryStatus.SENT, 3, T0 + timedelta(seconds=6)),
    ]
    assert report.records[0].detail == "HTTP 500"
    assert d.log.records() == report.records


def test_out_of_attempts_is_failed_and_may_be_sent_again(catalogue: Catalogue) -> None:
    url = ONE_URL["ECOWATCH_NOTIFY_E_001"]
    notifier = ScriptedNotifier({url: [FAIL]})
    d, sleeper = deliverer(
        catalogue, notifier, env=ONE_URL, retry=RetryPolicy(attempts=5, first=10, cap=30)
    )
    n = note(CaseStep.REMIND, Audience.ENTERPRISE)
    report = asyncio.run(d.deliver(n))
    assert sleeper.delays == [10, 20, 30, 30]  # doubled, capped
    assert [r.status for r in report.records] == [DeliveryStatus.RETRIED] * 4 + [
        DeliveryStatus.FAILED
    ]
    # A failure is not a send: a redelivery tries again.
    notifier.script[url] = [SendResult(True)]
    assert asyncio.run(d.deliver(n)).with_status(DeliveryStatus.SENT)


def test_a_failure_not_worth_retrying_is_tried_once(catalogue: Catalogue) -> None:
    url = ONE_URL["ECOWATCH_NOTIFY_E_001"]
    notifier = ScriptedNotifier({url: [SendResult(False, False, "bad URL")]})
    d, sleeper = deliverer(catalogue, notifier, env=ONE_URL)
    report = asyncio.run(d.deliver(note(CaseStep.REMIND, Audience.ENTERPRISE)))
    assert len(notifier.calls) == 1 and sleeper.delays == []
    assert [(r.status, r.attempt, r.detail) for r in report.records] == [
        (DeliveryStatus.FAILED, 1, "bad URL")
    ]


def test_a_notifier_that_raises_is_retried(catalogue: Catalogue) -> None:
    url = ONE_URL["ECOWATCH_NOTIFY_E_001"]
    notifier = ScriptedNotifier({url: [ConnectionResetError("peer reset"), SendResult(True)]})
    d, _ = deliverer(catalogue, notifier, env=ONE_URL)
    report = asyncio.run(d.deliver(note(CaseStep.REMIND, Audience.ENTERPRISE)))
    assert [r.status for r in report.records] == [DeliveryStatus.RETRIED, DeliveryStatus.SENT]
    assert report.records[0].detail == "ConnectionResetError: peer reset"


def test_only_the_failed_channel_is_sent_again(catalogue: Catalogue) -> None:
    mail = "mailto://u:secret@mail.example?to=a@x.org"
    notifier = ScriptedNotifier({mail: [SendResult(False, False, "refused")]})
    d, _ = deliverer(catalogue, notifier)
    asyncio.run(d.deliver(note()))
    notifier.script[mail] = [SendResult(True)]
    notifier.calls.clear()
    report = asyncio.run(d.deliver(note()))
    assert [c[0] for c in notifier.calls] == [mail]
    assert [(r.recipient, r.channel, r.scheme) for r in report.records] == [
        ("O-KC-01", 1, "mailto")
    ]


def test_unroutable_people_are_recorded_and_reached_once_configured(
    catalogue: Catalogue,
) -> None:
    notifier = ScriptedNotifier()
    d, _ = deliverer(catalogue, notifier, env={})
    n = note(CaseStep.REMIND, Audience.ENTERPRISE)
    report = asyncio.run(d.deliver(n))
    [gap] = report.records
    assert (gap.status, gap.recipient, gap.attempt, gap.channel) == (
        DeliveryStatus.UNROUTABLE,
        "E-001",
        0,
        -1,
    )
    assert "ECOWATCH_NOTIFY_E_001" in gap.detail
    d.environ = ONE_URL
    assert asyncio.run(d.deliver(n)).with_status(DeliveryStatus.SENT)
    assert len(notifier.calls) == 1


def test_the_message_sent_is_the_rendered_one(catalogue: Catalogue) -> None:
    notifier = ScriptedNotifier()
    d, _ = deliverer(catalogue, notifier, env=ONE_URL)
    n = note(CaseStep.REMIND, Audience.ENTERPRISE)
    asyncio.run(d.deliver(n))
    [(url, message, kind)] = notifier.calls
    assert url == ONE_URL["ECOWATCH_NOTIFY_E_001"]
    assert message == render(n) and kind == "failure"


def test_notify_type_by_severity_and_step() -> None:
    assert notify_type(note()) == "failure"
    assert notify_type(note(severity=Severity.WARNING)) == "warning"
    assert notify_type(note(CaseStep.CLOSED)) == "success"


def test_records_render_as_line_protocol_without_secrets() -> None:
    record = DeliveryRecord(
        key=f"{CASE}:escalate:officers:0",
        case_id=CASE,
        step=CaseStep.ESCALATE,
        audience=Audience.OFFICERS,
        recipient="O-KC-01",
        role="officer",
        channel=1,
        scheme="mailto",
        status=DeliveryStatus.RETRIED,
        attempt=2,
        at=T0,
        detail='SMTP said "no", try later',
    )
    assert record.to_line() == (
        f"delivery,case={CASE},step=escalate,audience=officers,recipient=O-KC-01,"
        f'status=retried,channel=1 attempt=2i,key="{CASE}:escalate:officers:0",'
        f'scheme="mailto",detail="SMTP said \\"no\\", try later" 1795395600000'
    )
    assert DeliveryRecord.from_json(record.to_json()) == record
    odd = record.model_copy(update={"recipient": "a b,c=d", "detail": "two\nlines"})
    assert "recipient=a\\ b\\,c\\=d," in odd.to_line() and "\n" not in odd.to_line()
    assert delivery_lines([record, record]).count("\n") == 1


def test_apprise_notifier_refuses_an_invalid_url_without_retry() -> None:
    result = asyncio.run(
        AppriseNotifier().send("nosuchservice://tok:secret@x", Message("t", "b"), "info")
    )
    assert (result.ok, result.retryable) == (False, False)
    assert "secret" not in result.detail and "nosuchservice" in result.detail


def test_a_table_log_on_another_worker_still_knows_what_was_sent(catalogue: Catalogue) -> None:
    # The worker's log is a changelogged table: a partition that moves takes it along. Here the
    # table is a dict shared by two deliverers, as the changelog shares it between workers.
    table: dict[bytes, bytes] = {}
    notifier = ScriptedNotifier()
    first, _ = deliverer(catalogue, notifier, log=TableDeliveryLog(table))
    asyncio.run(first.deliver(note()))
    assert len(notifier.calls) == 3
    assert list(table) == [note().key.encode()]  # one value per notification, keyed by it
    other, _ = deliverer(catalogue, notifier, log=TableDeliveryLog(dict(table)))
    report = asyncio.run(other.deliver(note()))
    assert len(notifier.calls) == 3 and len(report.duplicates) == 3
    assert b"secret" not in b"".join(table.values())  # recipients and schemes, never URLs
