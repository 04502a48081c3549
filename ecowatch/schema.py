"""The wire messages: every payload that crosses MQTT or Kafka is defined here, and only here.

MQTT, device → platform, ``ecowatch/v1/{site}/{device}/reading``: :class:`DeviceReading`.
Kafka ``ecowatch.readings`` (key: site id): :class:`Reading`, the one normalised reading that
every protocol edge (MQTT bridge, HJ 212 server) produces and every stream processor consumes;
or, from the MQTT bridge, a :class:`ReadingBatch` of several (no key; the partition of their
sites).
Kafka ``ecowatch.readings.dlq`` (key: origin): :class:`DeadLetter`.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from ecowatch.aqi_categories import Category

# HJ 212-2017 pollutant codes: one letter for the medium (w water, a air, e ...) and five digits.
PollutantCode = Annotated[str, StringConstraints(pattern=r"^[a-z][0-9]{5}$")]
Identifier = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class DataFlag(StrEnum):
    """HJ 212-2017 data flags (数据标记): only N readings may be judged against a limit."""

    NORMAL = "N"
    STOPPED = "F"  # production stopped
    MAINTENANCE = "M"
    MANUAL = "S"  # manually entered value
    FAULT = "D"
    CALIBRATION = "C"
    OVER_RANGE = "T"  # above the instrument's range
    COMMS = "B"  # communication abnormal


class Measurement(BaseModel):
    """One pollutant's value in one reading, with its data flag."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # allow_inf_nan=False: Python's json accepts NaN/Infinity, a monitor must not send them.
    value: Annotated[float, Field(allow_inf_nan=False)]
    flag: DataFlag = DataFlag.NORMAL
    # A CEMS's own value corrected to its reference oxygen (HJ 212 ZsRtd/ZsAvg, 折算值): the
    # enterprise's number, checked against the platform's, never judged in its place.
    zs: Annotated[float, Field(allow_inf_nan=False)] | None = None


class ValveState(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class MeterEventKind(StrEnum):
    """What happens at a card-swipe discharge meter besides measuring (刷卡排污)."""

    CARD_INSERTED = "card_inserted"
    CARD_REMOVED = "card_removed"
    RECHARGED = "recharged"  # quota bought (emission-rights trading) and loaded on the card
    YEAR_RESET = "year_reset"  # a new accounting year: the quota starts afresh, no carry-over
    VALVE_OPENED = "valve_opened"
    VALVE_CLOSED = "valve_closed"


class MeterEvent(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: MeterEventKind
    at: AwareDatetime
    # For a recharge: the amounts added, by pollutant code (w00000 in m³, others in kg).
    amounts: dict[PollutantCode, Annotated[float, Field(ge=0, allow_inf_nan=False)]] = Field(
        default_factory=dict
    )
    detail: str = ""


class MeterStatus(BaseModel):
    """A discharge meter's account: the period's quota, what is used, and its valve.

    Quantities by pollutant code: w00000 volume in m³, pollutant masses (w01018 COD,
    w21003 NH3-N, ...) in kg, accumulated per HJ 212 Appendix D (ΣC·Q·Δt).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    valve: ValveState
    card_id: str | None = None
    period: str  # the accounting period the quota belongs to, e.g. "2026-11"
    quota: dict[PollutantCode, Annotated[float, Field(ge=0, allow_inf_nan=False)]]
    used: dict[PollutantCode, Annotated[float, Field(ge=0, allow_inf_nan=False)]]
    events: list[MeterEvent] = Field(default_factory=list)  # since the previous reading


class DeviceReading(BaseModel):
    """What a monitor publishes over MQTT. The topic, not the payload, says who sent it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ts: AwareDatetime  # the measurement time (HJ 212 DataTime), with its UTC offset
    values: Annotated[dict[PollutantCode, Measurement], Field(min_length=1)]
    seq: int | None = Field(default=None, ge=0)  # the device's own counter, for gap detection
    meter: MeterStatus | None = None  # discharge meters only


class ValveCommand(BaseModel):
    """Platform → discharge meter (MQTT ``.../command``): open or close the outlet valve."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    command: Literal["open_valve", "close_valve"]
    reason: str
    issued_at: AwareDatetime
    command_id: str  # echoed in the meter's next status, so the platform sees it was obeyed


class ReadingSource(StrEnum):
    MQTT = "mqtt"
    HJ212 = "hj212"
    KAFKA = "kafka"  # only in dead letters: a record on the readings topic that did not parse
    STORE = "store"  # read back from InfluxDB, to judge an hour again after a resend


class Reading(BaseModel):
    """A validated reading, normalised and enriched from the catalogue (``ecowatch.readings``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, serialize_by_alias=True)

    schema_: Literal["ecowatch.reading/1"] = Field(default="ecowatch.reading/1", alias="schema")
    site: Identifier
    device: Identifier
    model: str  # the device model: outfall_monitor, air_station, discharge_meter
    ts: AwareDatetime
    values: Annotated[dict[PollutantCode, Measurement], Field(min_length=1)]
    seq: int | None = None
    meter: MeterStatus | None = None
    source: ReadingSource
    received_at: AwareDatetime
    # Sent again by its device after an outage (HJ 212-2025 RF=1): late data, stored as such.
    resent: bool = False

    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> Reading:
        return cls.model_validate_json(data)


READING_BATCH = "ecowatch.reading-batch/1"


class ReadingBatch(BaseModel):
    """Several readings in one Kafka record of ``ecowatch.readings``, all of sites whose key
    falls in that record's partition (the bridge's batches): Kafka, Faust and the worker pay
    their per-record cost once for all of them. Each reading is taken, judged and, if bad,
    dead-lettered on its own, as when it comes alone."""

    model_config = ConfigDict(extra="forbid", frozen=True, serialize_by_alias=True)

    schema_: Literal["ecowatch.reading-batch/1"] = Field(default=READING_BATCH, alias="schema")
    readings: Annotated[list[Reading], Field(min_length=1)]

    @staticmethod
    def json_of(readings: list[bytes]) -> bytes:
        """The record, from its readings' JSON as :meth:`Reading.to_json` made it."""
        return (
            b'{"schema":"'
            + READING_BATCH.encode()
            + b'","readings":['
            + b",".join(readings)
            + b"]}"
        )

    @staticmethod
    def is_batch(raw: bytes) -> bool:
        """Whether a record of ``ecowatch.readings`` is a batch (else one reading)."""
        return READING_BATCH.encode() in raw[:64]


def readings_in_record(raw: bytes | None) -> int:
    """How many readings a record of ``ecowatch.readings`` holds (a batch's, or one)."""
    if raw is None:
        return 0
    if ReadingBatch.is_batch(raw):
        try:
            return len(ReadingBatch.model_validate_json(raw).readings)
        except ValueError:
            return 1  # the worker dead-letters it as one record
    return 1


class DeviceState(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"  # the device's MQTT last will: it vanished without saying goodbye
    STOPPED = "stopped"  # it disconnected cleanly (shut down on purpose)


class DeviceStatus(BaseModel):
    """A device's connection state (Kafka ``ecowatch.status``, key: site id).

    Devices publish the bare state word, retained, on ``.../status``; the bridge adds who and
    when from the topic and its clock.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, serialize_by_alias=True)

    schema_: Literal["ecowatch.device_status/1"] = Field(
        default="ecowatch.device_status/1", alias="schema"
    )
    site: Identifier
    device: Identifier
    state: DeviceState
    at: AwareDatetime
    # A CEMS's analysers' working states (HJ 212 CN 3020, i12001 per PolId): pollutant →
    # state (0 运行, 1 维护, 2 故障, 3 校准, 5 反吹, 6 电源故障, 7 测量, 8 标定, 9 待机, 10 运维).
    instruments: dict[PollutantCode, Annotated[int, Field(ge=0, le=99)]] = Field(
        default_factory=dict
    )

    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()


class RejectReason(StrEnum):
    """Why a message went to the dead-letter topic. One reason per kind of bad input."""

    TOO_LARGE = "too_large"
    NOT_UTF8 = "not_utf8"
    BAD_JSON = "bad_json"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    NOT_FINITE = "not_finite"
    INVALID_VALUE = "invalid_value"
    UNKNOWN_FIELD = "unknown_field"
    BAD_TOPIC = "bad_topic"
    UNKNOWN_DEVICE = "unknown_device"
    WRONG_SITE = "wrong_site"
    FUTURE_TIMESTAMP = "future_timestamp"
    BAD_STATUS = "bad_status"  # a status payload other than online / offline / stopped
    # HJ 212 packets (the codec's error kinds)
    BAD_HEADER = "bad_header"
    LENGTH_MISMATCH = "length_mismatch"
    CRC_MISMATCH = "crc_mismatch"
    TRUNCATED = "truncated"
    TOO_LONG = "too_long"
    BAD_FIELD = "bad_field"
    BAD_PASSWORD = "bad_password"  # an HJ 212 packet without its device's own PW
    STORE_REJECTED = "store_rejected"  # InfluxDB refused the points (not a transient failure)
    # The ingest contract (ingest/contract.py), the same for every transport
    STALE_TIMESTAMP = "stale_timestamp"  # older than the window a resend may fill
    UNKNOWN_POLLUTANT = "unknown_pollutant"  # not a pollutant the catalogue gives the device
    IMPLAUSIBLE_VALUE = "implausible_value"  # outside what the pollutant can physically be
    NOT_A_METER = "not_a_meter"  # a meter block from a device that is not a discharge meter
    RETAINED = "retained"  # a retained MQTT message: old news, replayed by the broker
    # A second reading for a device and time already taken, with other values: the first
    # stands (InfluxDB would overwrite it), the second is not judged
    DUPLICATE_READING = "duplicate_reading"
    # More readings from one device than its allowance (ingest/contract.py ReadingLimiter):
    # a flood, cut at the edge so one device cannot crowd out the others
    RATE_LIMITED = "rate_limited"
    # A message ecowatch itself failed on: dead-lettered, so that nothing stops on it
    UNHANDLED = "unhandled"


def _printable(text: str, limit: int) -> str:
    """At most ``limit`` characters that encode as UTF-8 (a detail may quote a device's lone
    surrogate, which would otherwise make the dead letter itself unsendable)."""
    return text[:limit].encode("utf-8", "backslashreplace").decode("utf-8")


# A dead letter keeps at most this much of the original payload (plus its length and hash):
# enough to see what was wrong, never more than Kafka takes, whatever a device sent.
DEAD_LETTER_PAYLOAD_MAX = 4096


class DeadLetter(BaseModel):
    """A message that was not accepted, kept with the reason (``ecowatch.readings.dlq``): its
    payload whole up to ``DEAD_LETTER_PAYLOAD_MAX`` bytes, else cut there, with the full
    length and SHA-256 of the original either way."""

    model_config = ConfigDict(extra="forbid", frozen=True, serialize_by_alias=True)

    schema_: Literal["ecowatch.dead_letter/1"] = Field(
        default="ecowatch.dead_letter/1", alias="schema"
    )
    source: ReadingSource
    origin: str  # the MQTT topic, or the HJ 212 peer address
    reason: RejectReason
    detail: str
    payload: str  # the original bytes (or their first part): text when UTF-8, else base64
    payload_encoding: Literal["utf-8", "base64"]
    payload_bytes: int = 0  # the original's full length
    payload_sha256: str = ""
    payload_truncated: bool = False
    received_at: datetime

    @classmethod
    def of(
        cls,
        *,
        source: ReadingSource,
        origin: str,
        reason: RejectReason,
        detail: str,
        payload: bytes,
        received_at: datetime,
    ) -> DeadLetter:
        kept = payload[:DEAD_LETTER_PAYLOAD_MAX]
        text, encoding = base64.b64encode(kept).decode("ascii"), "base64"
        # As text if it is UTF-8 (a cut may split the last character: drop its bytes).
        for cut in range(4 if len(payload) > DEAD_LETTER_PAYLOAD_MAX else 1):
            try:
                text, encoding = kept[: len(kept) - cut].decode("utf-8"), "utf-8"
                break
            except UnicodeDecodeError:
                continue
        return cls(
            source=source,
            origin=_printable(origin, 256),
            reason=reason,
            detail=_printable(detail, 1024),
            payload=text,
            payload_encoding=encoding,  # type: ignore[arg-type]
            payload_bytes=len(payload),
            payload_sha256=hashlib.sha256(payload).hexdigest(),
            payload_truncated=len(payload) > DEAD_LETTER_PAYLOAD_MAX,
            received_at=received_at,
        )

    def original(self) -> bytes:
        if self.payload_encoding == "base64":
            return base64.b64decode(self.payload)
        return self.payload.encode("utf-8")

    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()


class DeviceCommand(BaseModel):
    """A command for a device (Kafka ``ecowatch.commands``, key: site id); the bridge relays
    it to the device's MQTT command topic."""

    model_config = ConfigDict(extra="forbid", frozen=True, serialize_by_alias=True)

    schema_: Literal["ecowatch.device_command/1"] = Field(
        default="ecowatch.device_command/1", alias="schema"
    )
    site: Identifier
    device: Identifier
    command: ValveCommand

    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()


# -- detect – remind – penalize (发现—提醒—处罚) ------------------------------------------------


class Rule(StrEnum):
    """What a finding is about. One case per site + pollutant + rule."""

    REALTIME_OVER_LIMIT = "realtime_over_limit"  # an early warning (预警), on one value
    HOURLY_OVER_LIMIT = "hourly_over_limit"  # the flow-weighted hourly mean (HJ 212 App. D)
    DAILY_OVER_LIMIT = "daily_over_limit"  # the daily mean: the legal judgement
    CONSTANT_VALUE = "constant_value"  # 恒值: the same value N times in a row
    ZERO_VALUES = "zero_values"  # zero N times in a row
    NEGATIVE_VALUE = "negative_value"
    OVER_RANGE = "over_range"  # above the instrument's range (flag T)
    SUDDEN_JUMP = "sudden_jump"  # 陡升陡降
    MISSING_POLLUTANT = "missing_pollutant"  # a pollutant the device must report is absent
    OFFLINE = "offline"  # 掉线: no data for N minutes, or the device's last will
    FLAGGED_TOO_LONG = "flagged_too_long"  # maintenance / calibration / fault for too long
    QUOTA_WARNING = "quota_warning"  # 80 % of the period's quota used
    QUOTA_NEAR_EXHAUSTION = "quota_near_exhaustion"
    QUOTA_EXHAUSTED = "quota_exhausted"  # 100 %: the valve is closed by command
    # A meter's own account flatters it against the platform's (less used, more quota)
    METER_MISMATCH = "meter_mismatch"
    AQI_OVER_100 = "aqi_over_100"  # an air station's AQI above 100: a finding for the district
    # A stack's CEMS corrects to its reference oxygen otherwise than the platform does: a forged
    # reference or O2 is a known way to hide an exceedance.
    CORRECTED_VALUE_MISMATCH = "corrected_value_mismatch"
    # O2 near air's while the stack reports flow: the unit is not burning, or air is let in.
    HIGH_OXYGEN = "high_oxygen"
    # A site's month: of the values its devices owed, too few arrived valid (传输有效率 under
    # the threshold, 90 %): a low rate is itself a violation of the monitoring duty.
    LOW_TRANSMISSION_VALIDITY = "low_transmission_validity"
    # Marks (标记) held to account: a mark still without proof past its deadline, and more
    # marked hours in a month than the policy allows (a mark is not a way out of judging).
    MARK_PROOF_MISSING = "mark_proof_missing"
    MARKED_TOO_LONG = "marked_too_long"


# Families of rules, each written once: the marks say what they explain by them, the console
# colours a site by them, the wording writes them alike.
OVER_LIMIT_RULES = frozenset(
    {Rule.REALTIME_OVER_LIMIT, Rule.HOURLY_OVER_LIMIT, Rule.DAILY_OVER_LIMIT}
)
ABNORMAL_VALUE_RULES = frozenset(  # one series' values: T, negative, zeros, 恒值, 陡升陡降
    {
        Rule.OVER_RANGE,
        Rule.NEGATIVE_VALUE,
        Rule.ZERO_VALUES,
        Rule.CONSTANT_VALUE,
        Rule.SUDDEN_JUMP,
    }
)
# What a device's data says of the device itself (a fault or maintenance explains it).
DEVICE_DATA_RULES = ABNORMAL_VALUE_RULES | {Rule.MISSING_POLLUTANT, Rule.FLAGGED_TOO_LONG}


class Severity(StrEnum):
    WARNING = "warning"  # early warning or abnormal data: remind the enterprise
    VIOLATION = "violation"  # over a legal limit: the case goes to enforcement if it persists


class LimitBound(StrEnum):
    """How a limit reads: most are maxima; dissolved oxygen has a minimum, pH a range."""

    MAXIMUM = "max"
    MINIMUM = "min"
    RANGE = "range"


class FindingCause(StrEnum):
    """Why a device-level verdict holds or cleared, where the rule alone does not say."""

    LAST_WILL = "last_will"  # offline: the broker published the device's last will
    NO_DATA = "no_data"  # offline: nothing arrived for the rule's time
    DATA_AGAIN = "data_again"  # back: a reading arrived
    CONNECTED = "connected"  # back: the device said it is online


class MeterMismatch(BaseModel):
    """One quantity where a discharge meter's own account flatters it against the platform's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pollutant: PollutantCode
    account: Literal["used", "quota"]  # it says it used less, or holds more quota
    reported: float  # the meter's word
    platform: float  # the platform's count, or the permit's quota


class Finding(BaseModel):
    """A rule's verdict on a site's data (Kafka ``ecowatch.findings``, key: site id).

    ``active`` true: the condition holds at ``at``; false: the data at ``at`` is normal again
    for this rule (what lets a case recover). The evidence is structured: what an officer
    reads is written from these fields, per language, by ``alerts/wording.py``; no rule writes
    a sentence.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, serialize_by_alias=True)

    schema_: Literal["ecowatch.finding/1"] = Field(default="ecowatch.finding/1", alias="schema")
    site: Identifier
    device: Identifier | None = None
    pollutant: PollutantCode | None = None  # None for device-level rules (offline, quota)
    rule: Rule
    severity: Severity
    active: bool
    at: AwareDatetime  # the data time the verdict is about
    value: float | None = None  # the value judged: a reading's, an hourly or daily mean, an AQI
    limit: float | None = None  # the bound crossed (or judged against when clear)
    unit: str = ""
    multiple: float | None = None  # value / limit, as officers read it: "1.63×"
    limit_source: str = ""  # "GB 8978-1996 first grade" or "permit <number>"
    limit_source_zh: str = ""  # the same in Chinese: "GB 8978-1996 一级标准", "排污许可证 <number>"
    bound: LimitBound | None = None  # how the limit reads; a range's ends in limit_range
    limit_range: tuple[float, float] | None = None  # pH 6–9
    window_start: AwareDatetime | None = None  # the mean's window; since when a state holds
    window_end: AwareDatetime | None = None
    flags: dict[str, int] = Field(default_factory=dict)  # data flags counted in the window
    count: int | None = None  # readings in a row: zeros, a constant value
    previous: float | None = None  # the value before a sudden jump
    ratio: float | None = None  # the jump as value / previous (below 1: a drop)
    flag: DataFlag | None = None  # the flag held too long (M, C, D …)
    cause: FindingCause | None = None  # offline: last will or silence; back: data or connected
    period: str | None = None  # a discharge meter's quota period; a month ("2026-11")
    category: Category | None = None  # an AQI's category (HJ 633)
    primary: list[str] = Field(default_factory=list)  # an AQI's primary pollutants ("PM2.5")
    mismatches: list[MeterMismatch] = Field(default_factory=list)
    # A stack's concentration is judged corrected to its reference oxygen (折算浓度): ``value``
    # is the corrected one, beside the reference and the O2 measured; ``reported`` is the
    # CEMS's own corrected value where it disagrees.
    o2_reference: float | None = None
    o2_measured: float | None = None
    reported: float | None = None
    # A month's transmission and validity: the values owed, arrived and valid (``value`` is
    # the rate valid / expected in %, ``limit`` the threshold, ``period`` the month).
    expected: int | None = None
    received: int | None = None
    valid: int | None = None
    mark: str | None = None  # the mark (标记) a finding is about, by id
    # Found in data older than its device's newest (a resend after an outage, HJ 212 RF=1):
    # evidence of what was, judged on its own; it does not change the site's current verdicts.
    late: bool = False

    @model_validator(mode="before")
    @classmethod
    def _without_sentence(cls, data: Any) -> Any:
        # Until issue 17 a rule wrote its finding as an English sentence (``detail``); records
        # of that time stay on the topics and in the case tables, and are read without it.
        if isinstance(data, dict) and "detail" in data:
            data = {k: v for k, v in data.items() if k != "detail"}
        return data

    @property
    def case_key(self) -> str:
        """One case per site + pollutant + rule; a device-level rule (offline, quota) per
        device, so two meters of one site out of quota are two cases."""
        return f"{self.site}|{self.pollutant or self.device or '-'}|{self.rule.value}"

    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()


class Audience(StrEnum):
    ENTERPRISE = "enterprise"  # the enterprise's contact: remind, rectify or explain
    OFFICERS = "officers"  # the enforcement officers of the site's grid
    SUPERVISOR = "supervisor"  # the grid's supervisor, when no officer acknowledges


class CaseStep(StrEnum):
    """The steps of a case that reach people (each notifies once: its idempotency key)."""

    REMIND = "remind"  # 提醒: the enterprise is told, with a deadline
    ESCALATE = "escalate"  # 处罚: the officers get the case and the proposed measure
    RENOTIFY = "renotify"  # no officer acknowledged in time: sent again
    RAISE = "raise"  # still nobody: the grid's supervisor
    CLOSED = "closed"  # the enterprise and the officers hear that the case is closed
    # The enterprise marked the period of the case's evidence (标记): the officers review it.
    MARK_REVIEW = "mark_review"
    # 督办: an operator presses the grid's officers, with a note and a new deadline.
    SUPERVISE = "supervise"
    # 改派: an operator handed the case the officers held to another grid: its officers are told.
    REASSIGN = "reassign"


class Notification(BaseModel):
    """A message for people about a case (Kafka ``ecowatch.notifications``, key: case id).

    ``key`` is the idempotency key, one per (case, step, round): a redelivered notification
    with a key already in the delivery log is not sent again.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, serialize_by_alias=True)

    schema_: Literal["ecowatch.notification/1"] = Field(
        default="ecowatch.notification/1", alias="schema"
    )
    key: str
    case_id: str
    step: CaseStep
    audience: Audience
    # The app id of the worker that decided it: only that app's workers send it. Several apps
    # (a drill, a second city, a test) share the topic, and each has its own delivery log.
    app: str = ""
    site: Identifier
    site_name: str = ""
    enterprise: Identifier | None = None
    grid: Identifier
    recipients: list[str]  # officer ids, or the enterprise id
    severity: Severity
    rule: Rule
    pollutant: PollutantCode | None = None
    evidence: Finding  # the finding that drives this step
    deadline: AwareDatetime | None = None  # to rectify or explain (remind), to acknowledge
    history_30d: int = 0  # cases at this site in the last 30 days, this one included
    mark: Mark | None = None  # MARK_REVIEW: the mark the officers are asked to review
    note: str = ""  # SUPERVISE, REASSIGN: the operator's words (督办意见, 改派说明)
    proposed_measure: str = ""  # e.g. daily continuous penalty, EPL Art. 59
    created_at: AwareDatetime

    def to_json(self) -> bytes:
        return self.model_dump_json(by_alias=True).encode()


class CaseStatus(StrEnum):
    PENDING = "pending"  # seen, waiting out the pending period (a single spike opens nothing)
    REMINDED = "reminded"  # the enterprise was told; the deadline runs
    ESCALATED = "escalated"  # the officers have it; waiting for an acknowledgement
    ACKNOWLEDGED = "acknowledged"  # an officer took it
    CLOSED = "closed"
    DISMISSED = "dismissed"  # normal again within the pending period: nobody was told


class CaseReason(StrEnum):
    """Why a case moved, where its event's kind alone does not say."""

    NORMAL_WHILE_PENDING = "normal_while_pending"  # dismissed: normal before anyone was told
    RECURRED = "recurred"  # escalated at once: the same problem within the recurrence window
    PERSISTED = "persisted"  # escalated: still there at the enterprise's deadline
    NORMAL_FOR_HOLD = "normal_for_hold"  # closed: normal for the hold period, never escalated
    FINDINGS_AND_HOLD = "findings_and_hold"  # closed: findings recorded, normal for the hold
    MARK_ACCEPTED = "mark_accepted"  # closed: an officer accepted the mark on its evidence


class CaseEvent(BaseModel):
    """Every change of a case, with its time and actor (Kafka ``ecowatch.cases``).

    Structured like a finding: ``evidence`` is the finding the event is about (detected,
    relapsed, normal again, late evidence); ``text`` is what an officer wrote. The wording
    module writes the rest for people."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    case_id: str
    site: str
    kind: str  # detected, reminded, escalated, renotified, raised, acknowledged, ...
    at: AwareDatetime
    actor: str  # "system", or the officer's id
    status: CaseStatus
    evidence: Finding | None = None
    deadline: AwareDatetime | None = None  # reminded: the enterprise's deadline
    round: int | None = None  # renotified: which round
    reason: CaseReason | None = None
    text: str = ""  # an officer's own words (findings recorded, commented)
    mark: Mark | None = None  # a mark on the case's evidence: declared, accepted, rejected
    # findings_recorded: what the officer brought back from the site (现场核查)
    photos: tuple[Sha256, ...] = ()
    location: Location | None = None
    visited_at: AwareDatetime | None = None
    note: str = ""  # supervised, reassigned: the operator's words
    # The grid the case belongs to, on every event of a case reassigned (改派) from its site's
    # grid (on "reassigned": the new one); None: its site's.
    grid: str | None = None
    # The client's id of the action that made it (once-only): a case gone (closed) still
    # knows the action that closed it, so a retry of it is answered as a duplicate.
    action_id: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _without_sentence(cls, data: Any) -> Any:
        # Events written before issue 17 carry ``detail``: an English sentence, or for
        # findings_recorded the officer's words, which are kept.
        if isinstance(data, dict) and "detail" in data:
            detail = data["detail"]
            data = {k: v for k, v in data.items() if k != "detail"}
            if data.get("kind") == "findings_recorded" and not data.get("text"):
                data["text"] = detail
        return data


ActionId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


class Location(BaseModel):
    """Where an officer stood, as the phone's GPS says (WGS 84), and how sure it is."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lat: Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)]
    lon: Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)]
    accuracy_m: Annotated[float, Field(ge=0, le=100_000, allow_inf_nan=False)]


class OfficerAction(BaseModel):
    """An officer's (or an operator's) action on a case (Kafka ``ecowatch.actions``, key: site
    id). ``officer``: who acted, an officer's id or ``operator:<name>``."""

    site: str
    case_id: str
    officer: str
    # "acknowledge" | "findings" | "comment" | "supervise" | "reassign"
    action: str
    text: str = ""
    close: bool = False
    at: datetime
    action_id: ActionId | None = None  # the client's: the same id twice on a case acts once
    photos: tuple[Sha256, ...] = ()  # findings
    location: Location | None = None  # findings
    visited_at: AwareDatetime | None = None  # findings
    note: str = ""  # supervise, reassign
    deadline: AwareDatetime | None = None  # supervise
    grid: str | None = None  # reassign


# -- marks (标记) --------------------------------------------------------------------------------


class MarkType(StrEnum):
    """Why a period's data does not show normal discharge, as the Ministry's marking rules
    (MEE announcement 2022 No. 21) name the reasons."""

    PRODUCTION_STOPPED = "production_stopped"  # 停产
    OUT_OF_OPERATION = "out_of_operation"  # 停运: the source or its treatment not running
    STARTUP = "startup"  # 启炉: a boiler or kiln starting
    SHUTDOWN = "shutdown"  # 停炉
    FAULT = "fault"  # 故障: the monitor's
    CALIBRATION = "calibration"  # 校准
    MAINTENANCE = "maintenance"  # 维护
    COMMS_LOSS = "comms_loss"  # 通讯中断
    NOT_LIABLE = "not_liable"  # 非排污单位责任: force majeure, the grid, a third party


class MarkStatus(StrEnum):
    PENDING = "pending"  # declared, not yet reviewed: its data is not judged meanwhile
    ACCEPTED = "accepted"  # an officer of the grid accepted it
    REJECTED = "rejected"  # an officer rejected it: its data is judged again


class MarkSource(StrEnum):
    ENTERPRISE = "enterprise"  # declared by the enterprise, with proof
    DEVICE = "device"  # the device's own flags or instrument states (automatic)


class Proof(BaseModel):
    """A document or photo that proves a mark, kept by its hash (the bytes are kept apart:
    the marks say which proof, the store holds it once)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sha256: Sha256
    name: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    content_type: Annotated[str, StringConstraints(max_length=100)]
    size: Annotated[int, Field(ge=1)]
    at: AwareDatetime
    by: str


class Mark(BaseModel):
    """A period of one device's (or a whole site's) data that the enterprise or the device says
    is not normal discharge, and what became of it. ``end`` is exclusive."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Identifier
    site: Identifier
    device: Identifier | None = None  # None: every device of the site
    # A device's own mark is of one pollutant (its flag on that value); None: all of them.
    pollutant: PollutantCode | None = None
    type: MarkType
    start: AwareDatetime
    end: AwareDatetime
    reason: Annotated[str, StringConstraints(max_length=2000)] = ""
    source: MarkSource = MarkSource.ENTERPRISE
    made_by: str
    made_at: AwareDatetime
    status: MarkStatus = MarkStatus.PENDING
    proofs: tuple[Proof, ...] = ()
    reviewed_by: str | None = None
    reviewed_at: AwareDatetime | None = None
    review_reason: Annotated[str, StringConstraints(max_length=2000)] = ""

    @property
    def excuses(self) -> bool:
        """Its data is not judged as normal discharge: pending or accepted."""
        return self.status is not MarkStatus.REJECTED

    def covers(
        self,
        device: str | None,
        start: datetime,
        end: datetime | None = None,
        pollutant: str | None = None,
    ) -> bool:
        """Whether it marks ``device``'s data (of ``pollutant``) at ``start``, or overlapping
        [start, end)."""
        if self.device is not None and device is not None and device != self.device:
            return False
        if self.pollutant is not None and pollutant is not None and pollutant != self.pollutant:
            return False
        if end is None:
            return self.start <= start < self.end
        return self.start < end and start < self.end


class MarkEventKind(StrEnum):
    DECLARED = "declared"
    PROOF_ADDED = "proof_added"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    ENDED = "ended"  # a device's own mark: its flag is over


class MarkEvent(BaseModel):
    """Every change of a mark (Kafka ``ecowatch.marks``, key: site id): the mark as it stands
    after it, who and when. The mark's trail is these events in order."""

    model_config = ConfigDict(extra="forbid", frozen=True, serialize_by_alias=True)

    schema_: Literal["ecowatch.mark_event/1"] = Field(
        default="ecowatch.mark_event/1", alias="schema"
    )
    kind: MarkEventKind
    mark: Mark
    actor: str
    at: AwareDatetime

    @property
    def site(self) -> str:
        return self.mark.site


class AlarmSilenced(BaseModel):
    """An alarm silenced (消警) by an operator or an officer of its grid (Kafka
    ``ecowatch.alarms``, key: site id). Alarms are the console's reading of the findings and
    cases; a silence is the one thing about them that people decide, so it is kept here and
    every console, started at any time, silences the same alarms."""

    model_config = ConfigDict(extra="forbid", frozen=True, serialize_by_alias=True)

    schema_: Literal["ecowatch.alarm_silenced/1"] = Field(
        default="ecowatch.alarm_silenced/1", alias="schema"
    )
    alarm_id: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    site: str
    by: str
    at: AwareDatetime
    # The newest event the person saw in the alarm (its data time): read again after a
    # restart, the silence waits for the events it covered, so an exceedance it took in
    # does not ring as a new alarm, and a later one still does.
    upto: AwareDatetime | None = None
