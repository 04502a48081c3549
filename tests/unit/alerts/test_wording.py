"""The wording of findings and case events (alerts/wording.py): every rule and every case step
said in one language at a time, from the structured facts the rules give."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from ecowatch.alerts.wording import (
    EVENT_KINDS,
    LANGS,
    Lang,
    both,
    case_event_text,
    finding_text,
    limit_text,
    names,
    num,
    source_text,
)
from ecowatch.aqi_categories import Category
from ecowatch.schema import (
    CaseEvent,
    CaseReason,
    CaseStatus,
    CaseStep,
    DataFlag,
    Finding,
    FindingCause,
    LimitBound,
    MeterMismatch,
    RejectReason,
    Rule,
)
from tests.factories import T0, finding, hourly_cod

# English words that must not appear in a Chinese text (pollutant names such as COD, units,
# identifiers and standard numbers are the same in both languages).
_ENGLISH = re.compile(
    r"\b(the|limit|mean|value|readings?|device|flagged|used|quota|primary|offline|online|"
    r"range|above|below|within|negative|zero|constant|jumped|dropped|steady|missing|since|"
    r"meter|account|deadline|round|supervisor|normal|found|late|period)\b",
    re.IGNORECASE,
)
_CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")


def _in_one_language(text: str, lang: Lang) -> None:
    assert text, "nothing was said"
    if lang == "zh":
        assert _CJK.search(text), text
        assert not _ENGLISH.search(text), text
    else:
        assert not _CJK.search(text), text


_WINDOW = {"window_start": T0 - timedelta(hours=1), "window_end": T0}

# One finding of every rule, with the facts its rule gives; active, and cleared.
EVERY_RULE: dict[Rule, dict[str, object]] = {
    Rule.REALTIME_OVER_LIMIT: {"value": 80.1, "limit": 80.0, "multiple": 1.001},
    Rule.HOURLY_OVER_LIMIT: {"value": 81.5, "limit": 50.0, "multiple": 1.63, **_WINDOW},
    Rule.DAILY_OVER_LIMIT: {"value": 62.5, "limit": 50.0, "multiple": 1.25, **_WINDOW},
    Rule.CONSTANT_VALUE: {"value": 42.0, "count": 12},
    Rule.ZERO_VALUES: {"value": 0.0, "count": 12},
    Rule.NEGATIVE_VALUE: {"value": -1.5},
    Rule.OVER_RANGE: {"value": 520.0},
    Rule.SUDDEN_JUMP: {"value": 1000.0, "previous": 1.0, "ratio": 1000.0},
    Rule.MISSING_POLLUTANT: {},
    Rule.OFFLINE: {"pollutant": None, "cause": FindingCause.NO_DATA, **_WINDOW},
    Rule.FLAGGED_TOO_LONG: {"value": 30.5, "unit": "h", "flag": DataFlag.MAINTENANCE, **_WINDOW},
    Rule.QUOTA_WARNING: {"value": 2097.0, "limit": 2283.0, "unit": "kg", "period": "2026-12"},
    Rule.QUOTA_NEAR_EXHAUSTION: {"value": 2200.0, "limit": 2283.0, "unit": "kg"},
    Rule.QUOTA_EXHAUSTED: {"value": 2283.0, "limit": 2283.0, "unit": "kg"},
    Rule.METER_MISMATCH: {
        "pollutant": None,
        "mismatches": [MeterMismatch(pollutant="w01018", account="used", reported=10, platform=20)],
    },
    Rule.AQI_OVER_100: {
        "pollutant": None,
        "value": 135.0,
        "limit": 100.0,
        "unit": "",
        "category": Category.LIGHTLY_POLLUTED,
        "primary": ["PM2.5"],
    },
    Rule.CORRECTED_VALUE_MISMATCH: {
        "pollutant": "a21026",
        "unit": "mg/m³",
        "value": 37.5,
        "reported": 30.0,
        "o2_reference": 6.0,
        "o2_measured": 9.0,
    },
    Rule.HIGH_OXYGEN: {"pollutant": "a19001", "unit": "%", "value": 20.1},
    Rule.LOW_TRANSMISSION_VALIDITY: {
        "value": 86.67,
        "limit": 90.0,
        "unit": "%",
        "period": "2026-11",
        "expected": 43200,
        "received": 37440,
        "valid": 37440,
    },
    Rule.MARK_PROOF_MISSING: {"mark": "M-S-STK-002-202611230800-1"},
    Rule.MARKED_TOO_LONG: {"value": 96.5, "limit": 72.0, "unit": "h", "period": "2026-11"},
}


def test_every_rule_has_its_facts_here() -> None:
    assert set(EVERY_RULE) == set(Rule)


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("active", [True, False])
@pytest.mark.parametrize("rule", list(Rule))
def test_every_finding_is_said_in_one_language(rule: Rule, active: bool, lang: Lang) -> None:
    f = finding(rule, active, limit_source="GB 8978-1996", **EVERY_RULE[rule])
    _in_one_language(finding_text(f, lang), lang)


def test_a_month_s_low_transmission_validity_gives_its_counts() -> None:
    f = finding(Rule.LOW_TRANSMISSION_VALIDITY, **EVERY_RULE[Rule.LOW_TRANSMISSION_VALIDITY])
    assert finding_text(f) == (
        "2026-11 传输有效率 86.67%，低于 90%（应传 43,200 个，实传 37,440 个，有效 37,440 个）"
    )


def test_an_exceedance_reads_as_officers_write_it() -> None:
    f = hourly_cod(0)
    assert (
        finding_text(f)
        == "COD 小时均值 81.5 mg/L，超标 0.63 倍（限值 50 mg/L，GB 8978-1996 一级标准）"
    )
    assert finding_text(f, "en") == (
        "COD hourly mean 81.5 mg/L, 1.63× the limit 50 mg/L (GB 8978-1996 first grade)"
    )
    assert (
        finding_text(hourly_cod(0, active=False)) == "COD 小时均值 40 mg/L，未超标（限值 50 mg/L）"
    )
    late = f.model_copy(update={"late": True})
    assert finding_text(late).endswith("；补传数据中发现")


def test_a_stack_s_exceedance_is_its_corrected_concentration_with_its_oxygen() -> None:
    # SO2 measured 30 mg/m³ at 9 % O2 in a coal unit (reference 6 %): 37.5, over the ultra-low 35.
    f = finding(
        Rule.HOURLY_OVER_LIMIT,
        pollutant="a21026",
        unit="mg/m³",
        value=37.5,
        limit=35.0,
        bound=LimitBound.MAXIMUM,
        limit_source="permit P-1",
        o2_reference=6.0,
        o2_measured=9.0,
    )
    assert finding_text(f) == (
        "SO2 小时折算浓度 37.5 mg/m³，超标 0.07 倍"
        "（限值 35 mg/m³，排污许可证 P-1，基准氧含量 6%，实测 9%）"
    )
    assert finding_text(f, "en") == (
        "SO2 hourly mean corrected 37.5 mg/m³, 1.07× the limit 35 mg/m³ "
        "(permit P-1, reference O2 6%, measured 9%)"
    )


def test_a_range_and_a_minimum_say_which_side() -> None:
    ph = finding(
        Rule.REALTIME_OVER_LIMIT,
        pollutant="w01001",
        value=9.6,
        limit=9.0,
        unit="",
        bound=LimitBound.RANGE,
        limit_range=(6.0, 9.0),
    )
    assert finding_text(ph) == "pH 实时值 9.6，高于标准范围 6–9"
    low = ph.model_copy(update={"value": 5.2, "limit": 6.0})
    assert finding_text(low, "en") == "pH real-time value 5.2, below the range 6–9"
    do = finding(
        Rule.DAILY_OVER_LIMIT, pollutant="w01009", value=1.5, limit=2.0, bound=LimitBound.MINIMUM
    )
    assert "低于下限 2 mg/L" in finding_text(do)


def test_numbers_never_read_as_exponents() -> None:
    assert [num(x) for x in (1e3, 1e12, 81.5, 0.125, 0.0004, -1.5)] == [
        "1,000",
        "1,000,000,000,000",
        "81.5",
        "0.125",
        "0.0004",
        "-1.5",
    ]
    jump = finding(Rule.SUDDEN_JUMP, value=1000.0, previous=1.0, ratio=1000.0)
    assert finding_text(jump) == "COD 陡升 1 → 1,000 mg/L（1,000 倍）"
    drop = finding(Rule.SUDDEN_JUMP, value=1.0, previous=1000.0, ratio=0.001)
    assert finding_text(drop, "en") == "COD dropped 1,000 → 1 mg/L (÷1,000)"


def test_offline_says_how_long_or_why() -> None:
    quiet = finding(Rule.OFFLINE, pollutant=None, cause=FindingCause.NO_DATA, **_WINDOW)
    assert finding_text(quiet) == "设备 33080200000001 已 60 分钟无数据"
    will = finding(Rule.OFFLINE, pollutant=None, cause=FindingCause.LAST_WILL)
    assert finding_text(will, "en") == "device 33080200000001 offline (its last will)"
    back = finding(Rule.OFFLINE, False, pollutant=None, cause=FindingCause.CONNECTED)
    assert finding_text(back) == "设备 33080200000001 恢复上线：重新连接"


def test_a_finding_of_before_the_wording_module_is_read_without_its_sentence() -> None:
    old = hourly_cod(0).model_dump(by_alias=True) | {"detail": "COD hourly mean 81.5 mg/L"}
    assert Finding.model_validate(old) == hourly_cod(0)


_EVENTS = [
    {"kind": "detected", "evidence": hourly_cod(0)},
    {"kind": "reminded", "deadline": T0 + timedelta(hours=2)},
    {"kind": "escalated", "reason": CaseReason.PERSISTED},
    {"kind": "escalated", "reason": CaseReason.RECURRED},
    {"kind": "renotified", "round": 2},
    {"kind": "raised"},
    {"kind": "dismissed", "reason": CaseReason.NORMAL_WHILE_PENDING},
    {"kind": "closed", "reason": CaseReason.NORMAL_FOR_HOLD},
    {"kind": "closed", "reason": CaseReason.FINDINGS_AND_HOLD},
]


@pytest.mark.parametrize("facts", _EVENTS, ids=lambda f: f"{f['kind']}-{len(f)}")
def test_every_case_event_is_said_in_one_language(facts: dict[str, object]) -> None:
    event = CaseEvent.model_validate(
        {"case_id": "c-1", "site": "S-OUT-001", "at": T0, "actor": "system"}
        | {"status": CaseStatus.REMINDED}
        | facts
    )
    for lang, text in both(case_event_text, event).items():
        _in_one_language(text, lang)  # type: ignore[arg-type]


def test_an_officers_words_are_kept_as_written() -> None:
    words = "现场检查：已停产整改 (photo 3)"
    event = CaseEvent(
        case_id="c-1",
        site="S-OUT-001",
        kind="findings_recorded",
        at=T0,
        actor="O-KC-01",
        status=CaseStatus.ACKNOWLEDGED,
        text=words,
    )
    assert both(case_event_text, event) == {"zh": words, "en": words}
    # An event of before the wording module kept the officer's words in ``detail``.
    old = event.model_dump(mode="json") | {"detail": words, "text": ""}
    assert CaseEvent.model_validate(old).text == words
    reminded = {"kind": "reminded", "detail": "deadline 2026-11-23 11:00"}
    assert CaseEvent.model_validate(old | reminded).text == ""


# -- the names the screens show ----------------------------------------------------------------


def test_every_name_a_screen_shows_is_written_in_both_languages():
    every = names()
    for group, enum in (
        ("rules", Rule),
        ("flags", DataFlag),
        ("case_status", CaseStatus),
        ("steps", CaseStep),
        ("reject_reasons", RejectReason),
    ):
        assert set(every[group]) == {e.value for e in enum}, group
    for group, table in every.items():
        for key, (zh, en) in table.items():
            assert zh and en, (group, key)
            assert re.search(r"[\u4e00-\u9fff]", zh) or zh in ("MQTT", "HJ 212"), (group, key)
            assert not re.search(r"[\u4e00-\u9fff]", en), (group, key)
    # Every kind of event the case machine writes has its name.
    source = (Path(__file__).parents[3] / "streams/judging/cases.py").read_text(encoding="utf-8")
    written = set(re.findall(r'_event\(\s*case,\s*"([a-z_]+)"', source))
    assert written and written <= set(EVENT_KINDS), written - set(EVENT_KINDS)


def test_a_limit_reads_as_officers_write_it(catalogue):
    cod = catalogue.limit_for("S-OUT-001", "w01018")
    assert cod is not None
    assert limit_text(cod, "zh").startswith("≤ ") and "（日均值）" in limit_text(cod, "zh")
    assert limit_text(cod, "en").endswith("(daily mean)")
    assert source_text(cod, "zh").startswith("排污许可证 ")
    assert source_text(cod, "en").startswith("permit ")
    ph = catalogue.limit_for("S-OUT-001", "w01001")
    assert ph is not None and limit_text(ph, "zh") == "6～9（日均值）"
    assert source_text(ph, "zh") == "GB 8978-1996 一级标准"
