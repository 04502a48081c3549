"""What people read about findings and cases, in Chinese (the default) or English. Pure.

The rules and the case steps produce structured facts (``ecowatch/schema.py``: a finding's
value, limit, multiple, window, count, cause …; a case event's evidence, deadline, round,
reason). This module is the one place that writes them as sentences, one language at a time,
for every audience: the notifications (``templates.py``), the console, the case API, the CLI
and the trail in InfluxDB.

Numbers are written the way officers write them: the excess over a limit as "超标 0.63 倍"
((value − limit) / limit, in decimal as written, rounded half up), thousands with a comma, no
exponent, China time.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal, TypeVar

from ecowatch.clock import CHINA
from ecowatch.config.standards import AppliedLimit, Basis, Minimum, Range
from ecowatch.pollutants import name_of
from ecowatch.schema import (
    ABNORMAL_VALUE_RULES,
    Audience,
    CaseEvent,
    CaseReason,
    CaseStatus,
    CaseStep,
    DataFlag,
    Finding,
    FindingCause,
    LimitBound,
    Mark,
    MarkStatus,
    MarkType,
    ReadingSource,
    RejectReason,
    Rule,
    Severity,
)

Lang = Literal["zh", "en"]
LANGS: tuple[Lang, ...] = ("zh", "en")
Pair = tuple[str, str]  # (Chinese, English)

RULES: dict[Rule, Pair] = {
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
    Rule.CORRECTED_VALUE_MISMATCH: ("折算浓度与平台核算不符", "corrected value disagrees"),
    Rule.HIGH_OXYGEN: ("烟气含氧量异常偏高", "oxygen near air's"),
    Rule.LOW_TRANSMISSION_VALIDITY: ("传输有效率不达标", "transmission-validity rate too low"),
    Rule.MARK_PROOF_MISSING: ("标记逾期未上传证明材料", "mark without proof"),
    Rule.MARKED_TOO_LONG: ("当月标记时长超限", "too many marked hours"),
}

# The statistic an over-limit rule judges.
STATISTIC: dict[Rule, Pair] = {
    Rule.REALTIME_OVER_LIMIT: ("实时值", "real-time value"),
    Rule.HOURLY_OVER_LIMIT: ("小时均值", "hourly mean"),
    Rule.DAILY_OVER_LIMIT: ("日均值", "daily mean"),
}
# The same, of a stack's concentration corrected to its reference oxygen (折算浓度).
CORRECTED: dict[Rule, Pair] = {
    Rule.REALTIME_OVER_LIMIT: ("实时折算浓度", "real-time value corrected"),
    Rule.HOURLY_OVER_LIMIT: ("小时折算浓度", "hourly mean corrected"),
    Rule.DAILY_OVER_LIMIT: ("日均折算浓度", "daily mean corrected"),
}
QUOTA_RULES = frozenset({Rule.QUOTA_WARNING, Rule.QUOTA_NEAR_EXHAUSTION, Rule.QUOTA_EXHAUSTED})

FLAGS: dict[DataFlag, Pair] = {
    DataFlag.NORMAL: ("正常", "normal"),
    DataFlag.STOPPED: ("停运", "stopped"),
    DataFlag.MAINTENANCE: ("维护", "maintenance"),
    DataFlag.MANUAL: ("手工输入", "manual"),
    DataFlag.FAULT: ("故障", "fault"),
    DataFlag.CALIBRATION: ("校准", "calibration"),
    DataFlag.OVER_RANGE: ("超量程", "over range"),
    DataFlag.COMMS: ("通讯异常", "comms abnormal"),
}

_REASONS: dict[CaseReason, Pair] = {
    CaseReason.NORMAL_WHILE_PENDING: ("待定期内恢复正常", "normal within the pending period"),
    CaseReason.RECURRED: ("重复发生，直接移交执法", "recurred"),
    CaseReason.PERSISTED: ("逾期未整改", "persisted past the deadline"),
    CaseReason.NORMAL_FOR_HOLD: (
        "保持期内持续正常，自动办结",
        "normal for the hold period before any escalation",
    ),
    CaseReason.FINDINGS_AND_HOLD: (
        "核查结果已录入，保持期内持续正常",
        "normal for the hold period; findings recorded",
    ),
    CaseReason.MARK_ACCEPTED: ("标记经审核接受，结案", "the mark on its evidence was accepted"),
}

# The Ministry's mark types, as the marking rules name them (标记).
MARK_TYPES: dict[MarkType, Pair] = {
    MarkType.PRODUCTION_STOPPED: ("停产", "production stopped"),
    MarkType.OUT_OF_OPERATION: ("停运", "out of operation"),
    MarkType.STARTUP: ("启炉", "start-up"),
    MarkType.SHUTDOWN: ("停炉", "shutdown"),
    MarkType.FAULT: ("故障", "fault"),
    MarkType.CALIBRATION: ("校准", "calibration"),
    MarkType.MAINTENANCE: ("维护", "maintenance"),
    MarkType.COMMS_LOSS: ("通讯中断", "communication lost"),
    MarkType.NOT_LIABLE: ("非排污单位责任", "not the enterprise's doing"),
}
_MARK_STATUS: dict[MarkStatus, Pair] = {
    MarkStatus.PENDING: ("待审核", "to be reviewed"),
    MarkStatus.ACCEPTED: ("已接受", "accepted"),
    MarkStatus.REJECTED: ("已驳回", "rejected"),
}

# -- what the screens name: each thing's name in each language ---------------------------------

CASE_STATUS: dict[CaseStatus, Pair] = {
    CaseStatus.PENDING: ("待定", "pending"),
    CaseStatus.REMINDED: ("已提醒", "reminded"),
    CaseStatus.ESCALATED: ("已交办", "escalated"),
    CaseStatus.ACKNOWLEDGED: ("已接收", "acknowledged"),
    CaseStatus.CLOSED: ("已办结", "closed"),
    CaseStatus.DISMISSED: ("已撤销", "dismissed"),
}
# A case event's kind (streams/judging/cases.py and the API's acts), as a trail line starts.
EVENT_KINDS: dict[str, Pair] = {
    "detected": ("发现", "detected"),
    "late_evidence": ("补传数据中发现", "found in resent data"),
    "reminded": ("提醒企业", "enterprise reminded"),
    "escalated": ("移交执法", "escalated"),
    "renotified": ("再通知", "renotified"),
    "raised": ("上报网格负责人", "raised to the supervisor"),
    "acknowledged": ("执法人员接收", "acknowledged"),
    "findings_recorded": ("录入核查结果", "findings recorded"),
    "close_requested": ("申请结案", "close requested"),
    "relapsed": ("再次超标", "relapsed"),
    "normal_again": ("恢复正常", "normal again"),
    "dismissed": ("撤销", "dismissed"),
    "closed": ("办结", "closed"),
    "mark_declared": ("企业申报标记", "mark declared"),
    "mark_proof_added": ("上传标记证明", "mark proof added"),
    "mark_accepted": ("标记审核通过", "mark accepted"),
    "mark_rejected": ("标记被驳回", "mark rejected"),
    "supervised": ("督办", "supervised"),
    "commented": ("备注", "comment"),
    "reassigned": ("改派", "reassigned"),
}
STEPS: dict[CaseStep, Pair] = {
    CaseStep.REMIND: ("提醒", "reminder"),
    CaseStep.ESCALATE: ("交办执法", "escalation"),
    CaseStep.RENOTIFY: ("再通知", "renotification"),
    CaseStep.RAISE: ("上报", "raised"),
    CaseStep.CLOSED: ("结案通知", "closing notice"),
    CaseStep.MARK_REVIEW: ("标记待核", "mark to review"),
    CaseStep.SUPERVISE: ("督办", "supervision"),
    CaseStep.REASSIGN: ("改派", "reassignment"),
}
AUDIENCES: dict[Audience, Pair] = {
    Audience.ENTERPRISE: ("企业", "the enterprise"),
    Audience.OFFICERS: ("网格执法人员", "the grid's officers"),
    Audience.SUPERVISOR: ("网格负责人", "the grid's supervisor"),
}
SEVERITIES: dict[Severity, Pair] = {
    Severity.WARNING: ("预警", "warning"),
    Severity.VIOLATION: ("违法", "violation"),
}
REJECT_REASONS: dict[RejectReason, Pair] = {
    RejectReason.TOO_LARGE: ("报文过大", "too large"),
    RejectReason.NOT_UTF8: ("非UTF-8编码", "not UTF-8"),
    RejectReason.BAD_JSON: ("JSON格式错误", "bad JSON"),
    RejectReason.MISSING_FIELD: ("缺少字段", "missing field"),
    RejectReason.WRONG_TYPE: ("字段类型错误", "wrong type"),
    RejectReason.NOT_FINITE: ("数值非有限数", "not a finite number"),
    RejectReason.INVALID_VALUE: ("数值无效", "invalid value"),
    RejectReason.UNKNOWN_FIELD: ("未知字段", "unknown field"),
    RejectReason.BAD_TOPIC: ("主题错误", "bad topic"),
    RejectReason.UNKNOWN_DEVICE: ("未登记设备", "unknown device"),
    RejectReason.WRONG_SITE: ("设备与站点不符", "wrong site"),
    RejectReason.FUTURE_TIMESTAMP: ("时间超前", "timestamp in the future"),
    RejectReason.BAD_STATUS: ("状态报文错误", "bad status"),
    RejectReason.BAD_HEADER: ("包头错误", "bad header"),
    RejectReason.LENGTH_MISMATCH: ("长度不符", "length mismatch"),
    RejectReason.CRC_MISMATCH: ("CRC校验失败", "CRC mismatch"),
    RejectReason.TRUNCATED: ("报文不完整", "truncated"),
    RejectReason.TOO_LONG: ("报文超长", "too long"),
    RejectReason.BAD_FIELD: ("字段错误", "bad field"),
    RejectReason.BAD_PASSWORD: ("访问密码错误", "wrong password"),
    RejectReason.STORE_REJECTED: ("数据库拒收", "refused by the store"),
    RejectReason.STALE_TIMESTAMP: ("补传超出时限", "too old to resend"),
    RejectReason.UNKNOWN_POLLUTANT: ("未登记的监测因子", "unknown pollutant"),
    RejectReason.IMPLAUSIBLE_VALUE: ("数值不合常理", "implausible value"),
    RejectReason.NOT_A_METER: ("非刷卡排污设备", "not a discharge meter"),
    RejectReason.RETAINED: ("保留消息（旧数据）", "retained message"),
    RejectReason.DUPLICATE_READING: ("重复数据", "duplicate reading"),
    RejectReason.RATE_LIMITED: ("发送过频", "rate limited"),
    RejectReason.UNHANDLED: ("平台处理出错", "unhandled"),
}
READING_SOURCES: dict[ReadingSource, Pair] = {
    ReadingSource.MQTT: ("MQTT", "MQTT"),
    ReadingSource.HJ212: ("HJ 212", "HJ 212"),
    ReadingSource.KAFKA: ("消息队列", "Kafka"),
    ReadingSource.STORE: ("数据库回读", "the store"),
}
BASES: dict[Basis, Pair] = {
    Basis.HOURLY: ("小时均值", "hourly mean"),
    Basis.EIGHT_HOUR: ("8小时滑动平均", "8-hour mean"),
    Basis.DAILY: ("日均值", "daily mean"),
}
# Who is acting or watching, where a screen names a role rather than a person.
ROLES: dict[str, Pair] = {
    "system": ("系统", "system"),
    "operator": ("值班员", "operator"),
    "officer": ("执法人员", "officer"),
    "enterprise": ("企业", "enterprise"),
    "kiosk": ("大屏", "wall display"),
}
# What an alarm on the wall and the desk is about (console/alarms.py).
ALARM_KINDS: dict[str, Pair] = {
    "over": ("超标", "over the limit"),
    "offline": ("离线", "offline"),
    "escalated": ("移交执法", "escalated"),
    "overdue": ("超期", "overdue"),
}


# What a refusal of the case API (and the console) means to the person who pressed: by its
# ``code`` (streams/api/requests.py), the API's own English kept for a tooltip.
REFUSALS: dict[str, Pair] = {
    "invalid_field": ("填写有误：", "not valid: "),
    "visit_in_future": ("核查时间晚于站点数据时间", "the visit time is after the site's data time"),
    "deadline_passed": (
        "新期限须晚于站点当前数据时间",
        "the deadline must be after the site's data time",
    ),
    "photo_not_uploaded": ("照片尚未上传成功", "a photo has not been uploaded yet"),
    "photo_empty": ("照片为空", "the photo is empty"),
    "photo_type": ("只接受 JPEG、PNG 或 WebP 照片", "only JPEG, PNG or WebP photos"),
    "not_for_enterprise": ("企业不能办理案件", "an enterprise does not act on cases"),
    "officers_act": ("只有网格执法人员可以办理", "only the grid's officers act on this"),
    "operators_only": ("只有值班员可以办理", "only an operator may do this"),
    "not_your_grid": ("不在您的网格，无权办理", "not in your grid"),
    "no_site": ("没有该站点", "no such site"),
    "no_case": ("没有该案件", "no such case"),
    "no_photo": ("没有该照片", "no such photo"),
    "no_alarm": ("没有该报警", "no such alarm"),
    "not_escalated": ("案件尚未移交执法，暂不能办理", "the case has not reached the officers yet"),
    "already_acknowledged": ("案件已被接收", "the case was acknowledged already"),
    "no_change": ("此操作不会改变案件", "this would change nothing"),
    "findings_full": ("核查记录已满", "the case has all the findings it can hold"),
    "case_closed": ("案件已办结", "the case is closed"),
    "case_dismissed": ("案件已撤销", "the case was dismissed"),
    "reads_only": ("大屏只读，不能操作", "the wall display reads; it cannot act"),
    "too_many_attempts": ("尝试过多，请稍后再试", "too many attempts: try again later"),
    "other_site": ("来自其他网站的请求被拒绝", "a request from another site is refused"),
    # One per status, for a refusal without a code of its own.
    "bad_request": ("提交内容有误，请检查后重试", "the request is not valid: check it"),
    "unauthorized": ("请重新登录", "sign in again"),
    "forbidden": ("无权进行此操作", "you may not do this"),
    "not_found": ("未找到", "not found"),
    "conflict": ("与当前状态冲突，未能办理", "it conflicts with the current state"),
    "too_large": ("内容过大", "too large"),
    "unsupported_type": ("文件类型不支持", "this kind of file is not taken"),
    "internal": ("平台出错，请稍后重试", "the platform failed: try again later"),
    "unavailable": ("服务暂不可用，请稍后重试", "unavailable now: try again shortly"),
    "refused": ("未能办理", "not done"),
}
# The fields a refusal may name (``field``), as the forms label them.
FIELDS: dict[str, Pair] = {
    "action_id": ("操作编号", "the action id"),
    "text": ("内容", "the text"),
    "note": ("督办意见", "the note"),
    "deadline": ("期限", "the deadline"),
    "grid": ("网格", "the grid"),
    "close": ("申请结案", "ask to close"),
    "photos": ("照片", "the photos"),
    "location": ("位置", "the location"),
    "visited_at": ("核查时间", "the visit time"),
    "reason": ("理由", "the reason"),
    "start": ("开始时间", "the start"),
    "end": ("结束时间", "the end"),
    "type": ("类型", "the type"),
    "device": ("设备", "the device"),
}


def limit_text(limit: AppliedLimit, lang: Lang = "zh") -> str:
    """A limit as it is written beside a value: "≤ 80 mg/L（日均值）", "6～9（日均值）"."""
    bound, unit = limit.bound, "" if limit.unit == "dimensionless" else f" {limit.unit}"
    if isinstance(bound, Range):
        dash = "～" if lang == "zh" else "–"
        text = f"{num(bound.low)}{dash}{num(bound.high)}{unit}"
    elif isinstance(bound, Minimum):
        text = f"≥ {num(bound.value)}{unit}"
    else:
        text = f"≤ {num(bound.value)}{unit}"
    basis = pick(BASES[limit.basis], lang)
    return f"{text}（{basis}）" if lang == "zh" else f"{text} ({basis})"


def source_text(limit: AppliedLimit, lang: Lang = "zh") -> str:
    """Where a limit comes from: "GB 8978-1996 一级标准", "排污许可证 <number>"."""
    return (limit.source_zh or limit.source) if lang == "zh" else limit.source


def actor_text(actor: str, lang: Lang = "zh") -> str:
    """Who did something on a case: the system, or the person's id as the tokens file names it
    ("O-KC-03"; an operator "operator:王" shows as 值班员 王)."""
    if actor in ROLES:
        return pick(ROLES[actor], lang)
    role, _, name = actor.partition(":")
    if name and role in ROLES:
        return f"{pick(ROLES[role], lang)} {name}"
    return actor


def names() -> dict[str, dict[str, Pair]]:
    """Every name the screens show, by group: what the console hands its pages once."""

    def keyed(table: dict[Any, Pair]) -> dict[str, Pair]:
        return {str(getattr(k, "value", k)): v for k, v in table.items()}

    return {
        "rules": keyed(RULES),
        "flags": keyed(FLAGS),
        "case_status": keyed(CASE_STATUS),
        "event_kinds": EVENT_KINDS,
        "steps": keyed(STEPS),
        "audiences": keyed(AUDIENCES),
        "severities": keyed(SEVERITIES),
        "reject_reasons": keyed(REJECT_REASONS),
        "reading_sources": keyed(READING_SOURCES),
        "bases": keyed(BASES),
        "roles": ROLES,
        "alarm_kinds": ALARM_KINDS,
        "mark_types": keyed(MARK_TYPES),
        "mark_status": keyed(_MARK_STATUS),
        "refusals": REFUSALS,
        "fields": FIELDS,
    }


_FOUND_LATE: Pair = ("；补传数据中发现", "; found late, in resent data")

T = TypeVar("T")


def pick(pair: Pair, lang: Lang) -> str:
    return pair[0] if lang == "zh" else pair[1]


def both(write: Callable[[T, Lang], str], thing: T) -> dict[str, str]:
    """A text in each language, for a screen that switches without asking again."""
    return {lang: write(thing, lang) for lang in LANGS}


def rule_name(rule: Rule, lang: Lang = "zh") -> str:
    return pick(RULES[rule], lang)


def flag_name(flag: DataFlag, lang: Lang = "zh") -> str:
    return pick(FLAGS[flag], lang)


def pollutant_label(code: str | None, lang: Lang = "zh") -> str:
    return name_of(code, lang) if code is not None else ""


# -- numbers and times ------------------------------------------------------------------------


def num(x: float) -> str:
    """A measured number as a person writes it: 81.5, 0.125, 2,097; never 1e+03."""
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if x != 0 and abs(x) < 0.001:
        return f"{x:.6f}".rstrip("0")
    return f"{x:.4g}"


def with_unit(x: float, unit: str) -> str:
    return f"{num(x)} {unit}" if unit and unit != "dimensionless" else num(x)


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


def two_places(x: Decimal) -> str:
    return str(x.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def china_time(ts: datetime, with_date: bool = True) -> str:
    local = ts.astimezone(CHINA)
    return local.strftime("%Y-%m-%d %H:%M" if with_date else "%H:%M")


def window_text(finding: Finding, lang: Lang = "zh") -> str:
    start, end = finding.window_start, finding.window_end
    if start is None or end is None:
        return ""
    same_day = start.astimezone(CHINA).date() == end.astimezone(CHINA).date()
    span = f"{china_time(start)}–{china_time(end, with_date=not same_day)}"
    return f"时段 {span}" if lang == "zh" else f"window {span}"


def flags_text(finding: Finding, lang: Lang = "zh") -> str:
    odd = [f"{flag}×{n}" for flag, n in sorted(finding.flags.items()) if flag != "N" and n > 0]
    if not odd:
        return ""
    return ("数据标记 " if lang == "zh" else "flags ") + " ".join(odd)


# -- findings ---------------------------------------------------------------------------------


def finding_text(finding: Finding, lang: Lang = "zh") -> str:
    """A finding in one line, for a phone, a screen row or a log: what was found, with the
    numbers it was found on. A cleared finding says what the data shows now."""
    write = _WRITERS.get(finding.rule, _named)
    return write(finding, lang)


def _shown(f: Finding) -> str:
    return with_unit(f.value, f.unit) if f.value is not None else ""


def _over_limit(f: Finding, lang: Lang) -> str:
    """ "COD 小时均值 81.5 mg/L，超标 0.63 倍（限值 50 mg/L，GB 8978-1996 一级标准）"."""
    zh = lang == "zh"
    corrected = f.o2_reference is not None
    statistic = pick((CORRECTED if corrected else STATISTIC)[f.rule], lang)
    head = f"{pollutant_label(f.pollutant, lang)} {statistic} {_shown(f)}"
    source = (f.limit_source_zh or _source_zh(f.limit_source)) if zh else f.limit_source
    notes = [source] if source else []  # in brackets after what was found
    if corrected:
        notes.append(_oxygen(f, lang))
    if f.bound is LimitBound.RANGE and f.limit_range is not None:
        span = f"{num(f.limit_range[0])}–{num(f.limit_range[1])}"
        if f.active:
            above = f.value is not None and f.value > f.limit_range[1]
            if zh:
                said = f"，{'高于' if above else '低于'}标准范围 {span}"
            else:
                said = f", {'above' if above else 'below'} the range {span}"
        else:
            said = f"，在范围 {span} 内" if zh else f", within the range {span}"
    elif f.limit is None:
        said = ""
    elif not f.active:
        limit = with_unit(f.limit, f.unit)
        said, notes = (
            (f"，未超标（限值 {limit}）", []) if zh else (f", within the limit {limit}", [])
        )
    elif f.bound is LimitBound.MINIMUM:
        limit = with_unit(f.limit, f.unit)
        said = f"，低于下限 {limit}" if zh else f", below the minimum {limit}"
    else:
        limit = with_unit(f.limit, f.unit)
        excess = excess_multiple(f)
        if zh:
            said = f"，超标 {two_places(excess)} 倍" if excess is not None else "，超过限值"
            notes.insert(0, f"限值 {limit}")
        elif excess is not None:
            said = f", {two_places(excess + 1)}× the limit {limit}"
        else:
            said = f", over the limit {limit}"
    if notes:
        said += f"（{'，'.join(notes)}）" if zh else f" ({', '.join(notes)})"
    if f.late:
        said += pick(_FOUND_LATE, lang)
    return head + said


def _source_zh(source: str) -> str:
    """A finding written before limit_source_zh: its permit named in Chinese at least."""
    permit = source.removeprefix("permit ")
    return f"排污许可证 {permit}" if permit != source else source


def _oxygen(f: Finding, lang: Lang) -> str:
    """ "基准氧含量 6%，实测 9%": what a corrected value was corrected with."""
    ref = f"{num(f.o2_reference)}%" if f.o2_reference is not None else "?"
    measured = f"{num(f.o2_measured)}%" if f.o2_measured is not None else "?"
    if lang == "zh":
        return f"基准氧含量 {ref}，实测 {measured}"
    return f"reference O2 {ref}, measured {measured}"


def _corrected_mismatch(f: Finding, lang: Lang) -> str:
    zh, name = lang == "zh", pollutant_label(f.pollutant, lang)
    if not f.active or f.reported is None or f.value is None:
        agrees = (
            f"{name} 上报折算浓度与平台核算一致",
            f"{name}: the reported corrected value agrees",
        )
        return pick(agrees, lang)
    reported, ours = with_unit(f.reported, f.unit), with_unit(f.value, f.unit)
    if zh:
        return f"{name} 企业上报折算浓度 {reported}，平台核算 {ours}（{_oxygen(f, lang)}）"
    return (
        f"{name} corrected value reported {reported}, {ours} by the platform ({_oxygen(f, lang)})"
    )


def _high_oxygen(f: Finding, lang: Lang) -> str:
    o2 = f"{num(f.value)}%" if f.value is not None else "?"
    if lang == "zh":
        if f.active:
            return f"氧含量 {o2}，烟道仍有流量：机组未燃烧或漏入空气"
        return f"氧含量 {o2}，恢复正常"
    if f.active:
        return f"O2 {o2} with flue-gas flow: not burning, or air let in"
    return f"O2 {o2}: normal again"


def _low_validity(f: Finding, lang: Lang) -> str:
    """传输有效率: valid / expected of the month, with the counts behind it."""
    rate = f"{f.value:.2f}%" if f.value is not None else "?"
    threshold = f"{num(f.limit)}%" if f.limit is not None else "?"
    owed = f"{num(f.expected)}" if f.expected is not None else "?"
    came = f"{num(f.received)}" if f.received is not None else "?"
    valid = f"{num(f.valid)}" if f.valid is not None else "?"
    if lang == "zh":
        counts = f"应传 {owed} 个，实传 {came} 个，有效 {valid} 个"
        if f.active:
            return f"{f.period} 传输有效率 {rate}，低于 {threshold}（{counts}）"
        return f"{f.period} 传输有效率 {rate}，达到 {threshold}（{counts}）"
    counts = f"{owed} owed, {came} received, {valid} valid"
    if f.active:
        return f"{f.period} transmission-validity rate {rate}, under {threshold} ({counts})"
    return f"{f.period} transmission-validity rate {rate}, {threshold} met ({counts})"


def _marks(f: Finding, lang: Lang) -> str:
    """A mark held to account: its proof overdue (its period is the finding's window), or
    the month's marked hours."""
    zh = lang == "zh"
    if f.rule is Rule.MARK_PROOF_MISSING:
        if f.active:
            return (
                f"标记 {f.mark} 逾期未上传证明材料"
                if zh
                else f"mark {f.mark} has no proof past its deadline"
            )
        return "标记证明材料已补齐" if zh else "every mark has its proof"
    hours, limit = num(f.value or 0), num(f.limit or 0)
    if zh:
        state = "超过" if f.active else "未超过"
        return f"{f.period} 已标记 {hours} 小时，{state}每月 {limit} 小时"
    word = "over" if f.active else "within"
    return f"{f.period}: {hours} h marked, {word} the {limit} h a month"


def _abnormal(f: Finding, lang: Lang) -> str:
    zh, name, shown = lang == "zh", pollutant_label(f.pollutant, lang), _shown(f)
    rule, active = f.rule, f.active
    if rule is Rule.OVER_RANGE:
        if active:
            return (
                f"{name} {shown}，超出仪器量程（T）"
                if zh
                else (f"{name} {shown} above the instrument's range (flag T)")
            )
        return f"{name} {shown}，回到量程内" if zh else f"{name} {shown}, within the range again"
    if rule is Rule.NEGATIVE_VALUE:
        if active:
            return f"{name} 出现负值 {shown}" if zh else f"{name} negative: {shown}"
        return f"{name} {shown}，不再为负" if zh else f"{name} {shown}, no longer negative"
    if rule is Rule.ZERO_VALUES:
        if active:
            n = f.count or 0
            return f"{name} 连续 {n} 次为零" if zh else f"{name} zero {n} times in a row"
        return f"{name} {shown}，不再为零" if zh else f"{name} {shown}, no longer zero"
    if rule is Rule.CONSTANT_VALUE:
        if active:
            n = f.count or 0
            return (
                f"{name} 连续 {n} 个数据恒为 {shown}"
                if zh
                else f"{name} constant at {shown} for {n} readings"
            )
        return f"{name} {shown}，数据恢复变化" if zh else f"{name} {shown}, changing again"
    # A sudden jump: up or down, by how much.
    if not active or f.previous is None or not f.ratio or f.value is None:
        return f"{name} {shown}，数据恢复平稳" if zh else f"{name} {shown}, steady again"
    step = f"{num(f.previous)} → {shown}"
    if f.ratio >= 1:
        return (
            f"{name} 陡升 {step}（{num(f.ratio)} 倍）"
            if zh
            else (f"{name} jumped {step} (×{num(f.ratio)})")
        )
    return (
        f"{name} 陡降 {step}（降为 1/{num(1 / f.ratio)}）"
        if zh
        else (f"{name} dropped {step} (÷{num(1 / f.ratio)})")
    )


def _missing(f: Finding, lang: Lang) -> str:
    name, device = pollutant_label(f.pollutant, lang), f.device or "-"
    if lang == "zh":
        return f"设备 {device} 的数据缺少 {name}" if f.active else f"{name} 恢复上报"
    return f"{name} missing from device {device}'s record" if f.active else f"{name} reported again"


def _offline(f: Finding, lang: Lang) -> str:
    zh, device = lang == "zh", f.device or "-"
    if f.active:
        if f.cause is FindingCause.NO_DATA and f.window_start is not None:
            minutes = (f.at - f.window_start).total_seconds() / 60
            return (
                f"设备 {device} 已 {minutes:.0f} 分钟无数据"
                if zh
                else f"device {device}: no data for {minutes:.0f} min"
            )
        if f.cause is FindingCause.LAST_WILL:
            return (
                f"设备 {device} 掉线（连接异常断开）"
                if zh
                else (f"device {device} offline (its last will)")
            )
        return f"设备 {device} 掉线" if zh else f"device {device} offline"
    how = (
        {
            FindingCause.CONNECTED: ("重新连接", "connected"),
            FindingCause.DATA_AGAIN: ("收到数据", "data again"),
        }.get(f.cause)
        if f.cause
        else None
    )
    if how is None:
        return f"设备 {device} 恢复上线" if zh else f"device {device} back online"
    return f"设备 {device} 恢复上线：{how[0]}" if zh else f"device {device} back online: {how[1]}"


def _flagged(f: Finding, lang: Lang) -> str:
    zh, name = lang == "zh", pollutant_label(f.pollutant, lang)
    flag = f.flag
    label = (
        f"{flag_name(flag, lang)}（{flag.value}）"
        if zh and flag
        else (f"{flag.value} ({flag_name(flag, lang)})" if flag else "")
    )
    if not f.active:
        return f"{name} 数据标记恢复为{label}" if zh else f"{name} flagged {label} again"
    since = f.window_start.astimezone(CHINA).strftime("%m-%d %H:%M") if f.window_start else ""
    hours = f"{f.value:.1f}" if f.value is not None else "?"
    if zh:
        return f"{name} 自 {since} 起标记为{label}，已 {hours} 小时"
    return f"{name} flagged {label} since {since} ({hours} h)"


def _quota(f: Finding, lang: Lang) -> str:
    zh, name = lang == "zh", pollutant_label(f.pollutant, lang)
    # The level reached is the rule's name, said in Chinese; English says the numbers only.
    head = f"{name} {rule_name(f.rule, lang)}" if f.active and zh else name
    used = num(f.value) if f.value is not None else "?"
    if f.limit:
        share = f"{100 * (f.value or 0) / f.limit:.1f}%"
        if zh:
            line = f"{head}：已用 {used}/{num(f.limit)} {f.unit}（{share}）"
        else:
            line = f"{head} used {used} of {num(f.limit)} {f.unit} ({share})"
    else:
        line = (
            f"{head}：已用 {used} {f.unit}，无配额"
            if zh
            else (f"{head}: used {used} {f.unit}, no quota")
        )
    if f.period:
        line += f"，周期 {f.period}" if zh else f", period {f.period}"
    return line


def _meter_mismatch(f: Finding, lang: Lang) -> str:
    zh = lang == "zh"
    if not f.active or not f.mismatches:
        return (
            "刷卡排污仪账目与平台核算一致"
            if zh
            else "the meter's account agrees with the platform's"
        )
    parts = []
    for m in f.mismatches:
        name = pollutant_label(m.pollutant, lang)
        if m.account == "used":
            parts.append(
                f"{name} 上报已用 {num(m.reported)}，平台核算 {num(m.platform)}"
                if zh
                else f"{name} used {num(m.reported)} reported, {num(m.platform)} counted"
            )
        else:
            parts.append(
                f"{name} 上报配额 {num(m.reported)}，许可 {num(m.platform)}"
                if zh
                else f"{name} quota {num(m.reported)} reported, {num(m.platform)} by the permit"
            )
    if zh:
        return "刷卡排污仪账目与平台核算不符：" + "；".join(parts)
    return "meter account disagrees with the platform's: " + "; ".join(parts)


def _aqi(f: Finding, lang: Lang) -> str:
    zh = lang == "zh"
    value = f"{f.value:.0f}" if f.value is not None else "?"
    category = f.category
    said = (f.category.name_zh if zh else category.label) if category else ""
    line = (
        f"AQI {value}（{said}）"
        if zh and said
        else f"AQI {value} ({said})"
        if said
        else (f"AQI {value}")
    )
    if f.primary:
        primary = "/".join(f.primary)
        line += f"，首要污染物 {primary}" if zh else f", primary {primary}"
    return line


def _named(f: Finding, lang: Lang) -> str:
    shown = _shown(f)
    line = f"{pollutant_label(f.pollutant, lang)} {rule_name(f.rule, lang)}".strip()
    return f"{line}：{shown}" if lang == "zh" and shown else f"{line}: {shown}" if shown else line


_WRITERS: dict[Rule, Callable[[Finding, Lang], str]] = {
    **dict.fromkeys(STATISTIC, _over_limit),
    **dict.fromkeys(ABNORMAL_VALUE_RULES, _abnormal),
    Rule.MISSING_POLLUTANT: _missing,
    Rule.OFFLINE: _offline,
    Rule.FLAGGED_TOO_LONG: _flagged,
    **dict.fromkeys(QUOTA_RULES, _quota),
    Rule.METER_MISMATCH: _meter_mismatch,
    Rule.AQI_OVER_100: _aqi,
    Rule.CORRECTED_VALUE_MISMATCH: _corrected_mismatch,
    Rule.HIGH_OXYGEN: _high_oxygen,
    Rule.LOW_TRANSMISSION_VALIDITY: _low_validity,
    Rule.MARK_PROOF_MISSING: _marks,
    Rule.MARKED_TOO_LONG: _marks,
}


# -- case events ------------------------------------------------------------------------------


def mark_text(mark: Mark, lang: Lang = "zh") -> str:
    """A mark as officers read it: type, id, period, status, the enterprise's reason and the
    reviewer's."""
    zh = lang == "zh"
    same_day = mark.start.astimezone(CHINA).date() == mark.end.astimezone(CHINA).date()
    span = f"{china_time(mark.start)}–{china_time(mark.end, with_date=not same_day)}"
    kind, status = pick(MARK_TYPES[mark.type], lang), pick(_MARK_STATUS[mark.status], lang)
    if zh:
        text = f"{kind}标记 {mark.id}（{span}，{status}）"
        text += f"：{mark.reason}" if mark.reason else ""
        return text + (f"；审核意见：{mark.review_reason}" if mark.review_reason else "")
    text = f"{kind} mark {mark.id} ({span}, {status})"
    text += f": {mark.reason}" if mark.reason else ""
    return text + (f"; review: {mark.review_reason}" if mark.review_reason else "")


def last_will_text(device: str, lang: Lang = "zh") -> str:
    """A device gone offline by its own last will (MQTT), before any finding says so."""
    return (
        f"设备 {device} 离线（设备遗嘱）"
        if lang == "zh"
        else f"device {device} offline (last will)"
    )


def overdue_text(case: tuple[str, datetime, bool], lang: Lang = "zh") -> str:
    """A case past its deadline: (case id, the deadline, whether the officers' to acknowledge
    by rather than the enterprise's to rectify by)."""
    case_id, due, officers = case
    if lang == "zh":
        whose = "执法人员接收期限" if officers else "企业整改期限"
        return f"案件 {case_id} 已超期：{whose} {china_time(due)}"
    whose = "the officers' acknowledge-by" if officers else "the enterprise's rectify-by"
    return f"case {case_id} overdue: {whose} {china_time(due)}"


def _visit_text(event: CaseEvent, lang: Lang) -> str:
    """An officer's site visit beside their findings (现场核查): when, the photos, where."""
    zh = lang == "zh"
    parts: list[str] = []
    if event.visited_at is not None:
        when = china_time(event.visited_at)
        parts.append(f"现场核查 {when}" if zh else f"on site {when}")
    if event.photos:
        n = len(event.photos)
        parts.append(f"照片 {n} 张" if zh else f"{n} photo{'s' if n > 1 else ''}")
    if event.location is not None:
        place = f"{event.location.lat:.5f}, {event.location.lon:.5f}"
        within = num(event.location.accuracy_m)
        parts.append(f"定位 {place}（±{within} 米）" if zh else f"at {place} (±{within} m)")
    if not parts:
        return ""
    return f"（{'，'.join(parts)}）" if zh else f" ({'; '.join(parts)})"


def case_event_text(event: CaseEvent, lang: Lang = "zh") -> str:
    """What a case event adds to its kind: the evidence, the deadline, the round, the reason,
    the mark, an operator's note (督办, 改派), or a person's own words (kept as written), with
    what an officer brought back from the site."""
    zh = lang == "zh"
    if event.kind == "supervised":
        due = china_time(event.deadline) if event.deadline else ""
        if zh:
            return f"督办意见：{event.note}" + (f"；办理期限 {due}" if due else "")
        return event.note + (f"; deal with it by {due}" if due else "")
    if event.kind == "reassigned":
        grid = event.grid or ""
        if zh:
            return f"改派至网格 {grid}" + (f"：{event.note}" if event.note else "")
        return f"to grid {grid}" + (f": {event.note}" if event.note else "")
    if event.text:
        return event.text + _visit_text(event, lang)
    if event.mark is not None:
        said = mark_text(event.mark, lang)
        if event.reason is not None:
            said = f"{pick(_REASONS[event.reason], lang)}：{said}" if lang == "zh" else said
        return said
    if event.evidence is not None:
        return finding_text(event.evidence, lang)
    if event.deadline is not None:
        due = china_time(event.deadline)
        return f"整改期限 {due}" if lang == "zh" else f"deadline {due}"
    if event.round is not None:
        return f"第 {event.round} 轮再通知" if lang == "zh" else f"round {event.round}"
    if event.reason is not None:
        return pick(_REASONS[event.reason], lang)
    if event.kind == "raised":
        return "上报网格负责人" if lang == "zh" else "to the grid's supervisor"
    return ""
