"""Message text for each case step and audience, in Chinese (default) or English. Pure.

Short enough for a phone: a title of at most :data:`TITLE_MAX` characters and a body of at
most :data:`BODY_MAX`. The body starts with the case number (what a person acts on: the API and
`ecowatch cases` take it), then the evidence, the deadline in China time, and for the officers
the proposed measure. The evidence and every phrase about a finding are ``wording.py``'s; this
module lays them out as a message.
"""

from __future__ import annotations

from dataclasses import dataclass

from ecowatch.alerts.wording import (
    QUOTA_RULES,
    RULES,
    STATISTIC,
    Lang,
    china_time,
    finding_text,
    flags_text,
    mark_text,
    pick,
    pollutant_label,
    window_text,
)
from ecowatch.schema import Audience, CaseStep, Notification, Rule

TITLE_MAX = 40
BODY_MAX = 300


@dataclass(frozen=True)
class Message:
    title: str
    body: str


# English rule names short enough for a title (the Chinese ones already are).
_SHORT_EN: dict[Rule, str] = {
    Rule.REALTIME_OVER_LIMIT: "live value > limit",
    Rule.HOURLY_OVER_LIMIT: "1h mean > limit",
    Rule.DAILY_OVER_LIMIT: "daily mean > limit",
    Rule.FLAGGED_TOO_LONG: "in maintenance",
    Rule.QUOTA_NEAR_EXHAUSTION: "quota nearly out",
    Rule.QUOTA_EXHAUSTED: "quota out, valve shut",
    Rule.LOW_TRANSMISSION_VALIDITY: "low valid-data rate",
}

_TAG: dict[CaseStep, tuple[str, str]] = {
    CaseStep.REMIND: ("【提醒】", "[Remind] "),
    CaseStep.ESCALATE: ("【执法】", "[Enforce] "),
    CaseStep.RENOTIFY: ("【再次通知】", "[Again] "),
    CaseStep.RAISE: ("【上报】", "[Raised] "),
    CaseStep.CLOSED: ("【结案】", "[Closed] "),
    CaseStep.MARK_REVIEW: ("【标记待核】", "[Review mark] "),
    CaseStep.SUPERVISE: ("【督办】", "[Supervised] "),
    CaseStep.REASSIGN: ("【改派】", "[Reassigned] "),
}

# When the catalogue's policy names no measure: what the law provides for this kind of rule.
_DEFAULT_MEASURE: tuple[tuple[frozenset[Rule], tuple[str, str]], ...] = (
    (
        frozenset(STATISTIC),
        (
            "责令改正，拒不改正的按日连续处罚（《环境保护法》第五十九条）",
            "order to rectify; daily continuous penalty (EPL Art. 59)",
        ),
    ),
    (
        QUOTA_RULES,
        (
            "责令限制生产、停产整治（《环境保护法》第六十条）",
            "limit or halt production (EPL Art. 60)",
        ),
    ),
)
_INSPECT = ("现场核查", "on-site inspection")


def _cut(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def proposed_measure(notification: Notification, lang: Lang = "zh") -> str:
    if notification.proposed_measure:
        return notification.proposed_measure
    for rules, text in _DEFAULT_MEASURE:
        if notification.rule in rules:
            return pick(text, lang)
    return pick(_INSPECT, lang)


def _title(n: Notification, lang: Lang) -> str:
    tag = pick(_TAG[n.step], lang)
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
    if n.step is CaseStep.MARK_REVIEW and n.mark is not None:
        marked = mark_text(n.mark, lang)
        if zh:
            return f"企业对上述数据作出{marked}。请核查证明材料后接受或驳回；驳回前案件照常办理。"
        return f"The enterprise made a {marked}. Check its proof, then accept or reject it."
    if n.step is CaseStep.SUPERVISE:
        # The operator's note may be long; the whole of it is on the case's trail.
        note = _cut(n.note, 120)
        if zh:
            return f"督办意见：{note}" + (f"（办理期限 {due}，北京时间）" if due else "")
        return f"Supervised: {note}" + (f" (deal with it by {due} China time)" if due else "")
    if n.step is CaseStep.REASSIGN:
        # Why it came to this grid, cut for a phone; the whole note is on the case's trail.
        why = _cut(n.note, 100)
        if zh:
            said = "本案改派至本网格办理" + (f"，改派说明：{why}" if why else "") + "。"
            return said + (f"请于 {due}（北京时间）前签收。" if due else "")
        said = "The case was reassigned to this grid" + (f": {why}" if why else "") + "."
        return said + (f" Acknowledge by {due} China time." if due else "")
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
    return pick(lead, lang) + ack


def render(notification: Notification, lang: Lang = "zh") -> Message:
    """The title and body for a notification, fitted to :data:`TITLE_MAX` / :data:`BODY_MAX`."""
    n, zh = notification, lang == "zh"
    f = n.evidence
    site = _cut(n.site_name, 20) if zh and n.site_name else n.site
    # Highest priority first; lines marked optional are dropped (last first) if too long.
    lines: list[tuple[str, bool]] = [
        ((f"案件 {n.case_id}" if zh else f"Case {n.case_id}"), False),
        (f"{site}：{finding_text(f, lang)}" if zh else f"{site}: {finding_text(f, lang)}", False),
        (_action(n, lang), False),
    ]
    if n.step in (CaseStep.ESCALATE, CaseStep.RENOTIFY, CaseStep.RAISE, CaseStep.REASSIGN):
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
        lines.append((window_text(f, lang), True))
        lines.append((flags_text(f, lang), True))
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
    title = message.title[:at] + pick(_REPEAT_TAG, lang) + message.title[at:]
    return Message(
        _cut(title, TITLE_MAX),
        _cut(pick(_REPEAT_LINE, lang) + "\n" + message.body, BODY_MAX),
    )
