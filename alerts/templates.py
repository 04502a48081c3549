"""Message text for each case step and audience, in Chinese (default) or English. Pure.

Short enough for a phone: a title of at most :data:`TITLE_MAX` characters and a body of at
most :data:`BODY_MAX`. The body starts with the case number (what a person acts on: the API and
`ecowatch cases` take it), then the evidence, the deadline in China time, and for the officers
the proposed measure.

The exceedance is said the way officers say it: "超标 0.63 倍" is the excess over the limit,
(value − limit) / limit, so a value at 1.63× the limit is 超标 0.63 倍, not 1.63 倍.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

from ecowatch.clock import CHINA
from ecowatch.pollutants import name_of
from ecowatch.schema import Audience, CaseStep, Finding, Notification, Rule

TITLE_MAX = 40
BODY_MAX = 300
Lang = Literal["zh", "en"]


@dataclass(frozen=True)
class Message:
    title: str
    body: str


RULES: dict[Rule, tuple[str, str]] = {
    Rule.REALTIME_OVER_LIMIT: ("实时值超标预警", "real-time value over limit"),
    Rule.HOURLY_OVER_LIMIT: ("小时均值超标", "hourly mean over limit"),
    Rule.DAILY_OVER_LIMIT: ("日均值超标", "daily mean over limit"),
    Rule.CONSTANT_VALUE: ("数据恒值", "constant value"),
    Rule.ZERO_VALUES: ("数据连续为零", "zero values"),
    Rule.NEGATIVE_VALUE: ("数据为负值", "negative value"),
    Rule.OVER_RANGE: ("超仪器量程", "over instrument range"),
    Rule.SUDDEN_JUMP: ("数据陡升陡降", "sudden jump"),
    Rule.MISSING_POLLUTANT: ("监测因子缺失", "pollutant missing"),
    Rule.OFFLINE: ("设备掉线", "device offline"),
    Rule.FLAGGED_TOO_LONG: ("维护/校准超时", "maintenance too long"),
    Rule.QUOTA_WARNING: ("排污量已达80%", "quota 80% used"),
    Rule.QUOTA_NEAR_EXHAUSTION: ("排污量即将用尽", "quota nearly used up"),
    Rule.QUOTA_EXHAUSTED: ("排污量用尽，已关阀", "quota used up, valve closed"),
    Rule.METER_MISMATCH: ("刷卡排污仪账目与平台核算不符", "meter account disagrees with platform"),
    Rule.AQI_OVER_100: ("AQI超过100", "AQI over 100"),
}

# English rule names short enough for a title (the Chinese ones already are).
_SHORT_EN: dict[Rule, str] = {
    Rule.REALTIME_OVER_LIMIT: "live value > limit",
    Rule.HOURLY_OVER_LIMIT: "1h mean > limit",
    Rule.DAILY_OVER_LIMIT: "daily mean > limit",
    Rule.FLAGGED_TOO_LONG: "in maintenance",
    Rule.QUOTA_NEAR_EXHAUSTION: "quota nearly out",
    Rule.QUOTA_EXHAUSTED: "quota out, valve shut",
}

# The statistic an over-limit rule judges.
_STATISTIC: dict[Rule, tuple[str, str]] = {
    Rule.REALTIME_OVER_LIMIT: ("实时值", "real-time value"),
    Rule.HOURLY_OVER_LIMIT: ("小时均值", "hourly mean"),
    Rule.DAILY_OVER_LIMIT: ("日均值", "daily mean"),
}
_QUOTA = frozenset({Rule.QUOTA_WARNING, Rule.QUOTA_NEAR_EXHAUSTION, Rule.QUOTA_EXHAUSTED})

_TAG: dict[CaseStep, tuple[str, str]] = {
    CaseStep.REMIND: ("【提醒】", "[Remind] "),
    CaseStep.ESCALATE: ("【执法】", "[Enforce] "),
    CaseStep.RENOTIFY: ("【再次通知】", "[Again] "),
    CaseStep.RAISE: ("【上报】", "[Raised] "),
    CaseStep.CLOSED: ("【结案】", "[Closed] "),
}

# When the catalogue's policy names no measure: what the law provides for this kind of rule.
_DEFAULT_MEASURE: tuple[tuple[frozenset[Rule], tuple[str, str]], ...] = (
    (
        frozenset(_STATISTIC),
        (
            "责令改正，拒不改正的按日连续处罚（《环境保护法》第五十九条）",
            "order to rectify; daily continuous penalty (EPL Art. 59)",
        ),
    ),
    (
        _QUOTA,
        (
            "责令限制生产、停产整治（《环境保护法》第六十条）",
            "limit or halt production (EPL Art. 60)",
        ),
    ),
)
_INSPECT = ("现场核查", "on-site inspection")


def _pick(pair: tuple[str, str], lang: Lang) -> str:
    return pair[0] if lang == "zh" else pair[1]


def excess_multiple(finding: Finding) -> Decimal | None:
    """超标倍数: how far over the limit, as a multiple of it ((value − limit) / limit).
    A value of 81.5 against 50 is 1.63× the limit and 超标 0.63 倍. None if not over.

    In decimal, from the value and the limit as written, so 167.6 against 80 (2.095×) is shown
    as 1.10 倍, as a person would round it, not 1.09 (binary 1.0949999…)."""
    if finding.value is not None and finding.limit:
        multiple = Decimal(repr(finding.value)) / Decimal(repr(finding.limit))
    elif finding.multiple is not None:
        multiple = Decimal(repr(finding.multiple))
    else:
        return None
    return multiple - 1 if multiple > 1 else None


def _two(x: Decimal) -> str:
    return str(x.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def china_time(ts: datetime, with_date: bool = True) -> str:
    local = ts.astimezone(CHINA)
    return local.strftime("%Y-%m-%d %H:%M" if with_date else "%H:%M")


def _num(v: float) -> str:
    return f"{v:.0f}" if abs(v) >= 1000 else f"{v:.4g}"


def _cut(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def pollutant_label(code: str | None, lang: Lang = "zh") -> str:
    if code is None:
        return ""
    return name_of(code, lang)


def evidence_line(finding: Finding, lang: Lang = "zh") -> str:
    """The evidence in one line: "COD 小时均值 81.5 mg/L，超标 0.63 倍（限值 50，permit …）"."""
    zh = lang == "zh"
    name = pollutant_label(finding.pollutant, lang)
    unit = f" {finding.unit}" if finding.unit and finding.unit != "dimensionless" else ""
    source = _cut(finding.limit_source, 30)
    if finding.rule in _STATISTIC and finding.value is not None:
        line = f"{name} {_pick(_STATISTIC[finding.rule], lang)} {_num(finding.value)}{unit}"
        excess = excess_multiple(finding)
        if excess is not None:
            line += f"，超标 {_two(excess)} 倍" if zh else f", {_two(excess + 1)}× the limit"
        if finding.limit is not None:
            limit = _num(finding.limit)
            if zh:
                line += f"（限值 {limit}，{source}）" if source else f"（限值 {limit}）"
            else:
                line += f" (limit {limit}, {source})" if source else f" (limit {limit})"
        return line
    line = f"{name} {_pick(RULES[finding.rule], lang)}".strip()
    if finding.rule in _QUOTA and finding.value is not None and finding.limit:
        pct = 100 * finding.value / finding.limit
        used = f"{_num(finding.value)}/{_num(finding.limit)}{unit}"
        return f"{line}：已用 {used}（{pct:.0f}%）" if zh else f"{line}: used {used} ({pct:.0f}%)"
    if finding.value is not None:
        return (
            f"{line}：{_num(finding.value)}{unit}" if zh else f"{line}: {_num(finding.value)}{unit}"
        )
    return line


def _window(finding: Finding, lang: Lang) -> str:
    start, end = finding.window_start, finding.window_end
    if start is None or end is None:
        return ""
    same_day = start.astimezone(CHINA).date() == end.astimezone(CHINA).date()
    span = f"{china_time(start)}–{china_time(end, with_date=not same_day)}"
    return f"时段 {span}" if lang == "zh" else f"window {span}"


def _flags(finding: Finding, lang: Lang) -> str:
    odd = [f"{flag}×{n}" for flag, n in sorted(finding.flags.items()) if flag != "N" and n > 0]
    if not odd:
        return ""
    return ("数据标记 " if lang == "zh" else "flags ") + " ".join(odd)


def proposed_measure(notification: Notification, lang: Lang = "zh") -> str:
    if notification.proposed_measure:
        return notification.proposed_measure
    for rules, text in _DEFAULT_MEASURE:
        if notification.rule in rules:
            return _pick(text, lang)
    return _pick(_INSPECT, lang)


def _title(n: Notification, lang: Lang) -> str:
    tag = _pick(_TAG[n.step], lang)
    name = pollutant_label(n.pollutant, lang)
    if lang == "zh":
        what = f"{name}{RULES[n.rule][0]}"
        site = n.site_name or n.site
    else:
        what = f"{name} {_SHORT_EN.get(n.rule, RULES[n.rule][1])}".strip()
        site = n.site
    # The site keeps at least 12 characters; the rule's wording gives way (it is in the body).
    room = max(12, TITLE_MAX - len(tag) - len(what) - 1)
    return _cut(f"{tag}{_cut(site, room)} {what}", TITLE_MAX)


def _action(n: Notification, lang: Lang) -> str:
    zh = lang == "zh"
    due = f"{china_time(n.deadline)}" if n.deadline else ""
    if n.step is CaseStep.CLOSED:
        return "案件已结案，数据已恢复正常。" if zh else "The case is closed; the data is normal."
    if n.step is CaseStep.REMIND:
        if zh:
            return f"请于 {due}（北京时间）前整改或书面说明。" if due else "请尽快整改或书面说明。"
        return f"Rectify or explain by {due} China time." if due else "Rectify or explain."
    lead = {
        CaseStep.ESCALATE: ("逾期未整改，转网格执法。", "Not rectified in time."),
        CaseStep.RENOTIFY: ("尚无人签收，再次通知。", "Not yet acknowledged."),
        CaseStep.RAISE: ("执法人员未签收，上报。", "No officer acknowledged."),
    }[n.step]
    ack = (
        (f"请于 {due}（北京时间）前签收。" if zh else f" Acknowledge by {due} China time.")
        if due
        else ""
    )
    return _pick(lead, lang) + ack


_FOUND_LATE = ("（设备断线后补传的数据中发现）", "Found late, in data resent after an outage.")


def render(notification: Notification, lang: Lang = "zh") -> Message:
    """The title and body for a notification, fitted to :data:`TITLE_MAX` / :data:`BODY_MAX`."""
    n, zh = notification, lang == "zh"
    f = n.evidence
    site = _cut(n.site_name, 20) if zh and n.site_name else n.site
    # Highest priority first; lines marked optional are dropped (last first) if too long.
    lines: list[tuple[str, bool]] = [
        ((f"案件 {n.case_id}" if zh else f"Case {n.case_id}"), False),
        (f"{site}：{evidence_line(f, lang)}" if zh else f"{site}: {evidence_line(f, lang)}", False),
        (_action(n, lang), False),
    ]
    if f.late:  # the exceedance is on record from a resend: it is not what the data says now
        lines.insert(2, (_pick(_FOUND_LATE, lang), False))
    if n.step in (CaseStep.ESCALATE, CaseStep.RENOTIFY, CaseStep.RAISE):
        measure = _cut(proposed_measure(n, lang), 60)
        lines.append(((f"拟处置：{measure}" if zh else f"Proposed: {measure}"), False))
    if n.step is not CaseStep.CLOSED:
        if n.history_30d > 0:
            history = (
                f"近30天本站案件 {n.history_30d} 起"
                if zh
                else f"30-day cases here: {n.history_30d}"
            )
            # A repeat offender matters to officers; a reminder may lose the line for room.
            lines.append((history, n.audience is Audience.ENTERPRISE))
        # Optional lines are dropped from the last one up when the body is too long.
        lines.append((_window(f, lang), True))
        lines.append((_flags(f, lang), True))
    body_lines = [(text, optional) for text, optional in lines if text]
    body = "\n".join(text for text, _ in body_lines)
    while len(body) > BODY_MAX and any(optional for _, optional in body_lines):
        last = max(i for i, (_, optional) in enumerate(body_lines) if optional)
        del body_lines[last]
        body = "\n".join(text for text, _ in body_lines)
    return Message(_title(n, lang), _cut(body, BODY_MAX))


_REPEAT_TAG = ("【可能重复】", "[Possible repeat] ")
_REPEAT_LINE = (
    "（发送中系统中断，现补发；此前可能已收到同一通知。）",
    "(Resent after an interruption while sending: you may have this one already.)",
)


def _category_end(title: str) -> int:
    """Where the step's tag (【执法】, "[Enforce] ") ends in a rendered title; 0 without one."""
    tags = (tag for pair in _TAG.values() for tag in pair)
    return next((len(tag) for tag in tags if title.startswith(tag)), 0)


def is_possible_repeat(title: str) -> bool:
    rest = title[_category_end(title) :]
    return rest.startswith(_REPEAT_TAG)


def possible_repeat(message: Message, lang: Lang = "zh") -> Message:
    """The message marked as one that may have reached its reader already: a send cut off by a
    crash is sent again like this (FIX's PossDup), never again unmarked.

    The step's tag stays first (【执法】【可能重复】…): officers' mail rules sort on it."""
    at = _category_end(message.title)
    title = message.title[:at] + _pick(_REPEAT_TAG, lang) + message.title[at:]
    return Message(
        _cut(title, TITLE_MAX),
        _cut(_pick(_REPEAT_LINE, lang) + "\n" + message.body, BODY_MAX),
    )
