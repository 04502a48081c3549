"""Delivering notifications through apprise: a pipeline of small stages, as Alertmanager does.

    route (alerts.routing) ─▶ per URL of each person: Dedup ─▶ Send (retries) ─▶ Record

- **Dedup** against the delivery log by the notification's idempotency ``key``, the recipient
  and the channel (the URL's place in the person's list, and its scheme): a redelivered
  notification, or the same one after a restart with a :class:`JsonlDeliveryLog` (in the
  worker, on any worker, with a :class:`TableDeliveryLog`), is not sent again. Per channel,
  not per person: a person with DingTalk and e-mail whose e-mail failed gets the e-mail on
  redelivery without a second DingTalk message.
- **Send** through a :class:`Notifier`, which says whether a failure is worth retrying. Apprise
  answers False on failure: retried with exponential back-off up to ``RetryPolicy.attempts``;
  a URL apprise cannot parse is not retried.
- **Record** every attempt (retried / sent / failed) in the log; a person who cannot be reached
  is recorded as unroutable. :meth:`DeliveryRecord.to_line` renders a record as InfluxDB line
  protocol for the writer in ``ecowatch.streams.storage.store``.

URLs are secrets (tokens, passwords): only the scheme is logged or recorded, and the loggers a
delivery runs through (apprise's, urllib3's) are filtered by ``alerts.redact`` so that theirs
hold no URL, secret or address either, at any level. Like Alertmanager,
this prefers a duplicate to a miss: a send is recorded after it happens, so a crash between
the two sends again on restart.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Protocol

import apprise
from pydantic import AwareDatetime, BaseModel, ConfigDict, ValidationError

from ecowatch import topics
from ecowatch.alerts.redact import guard_logs
from ecowatch.alerts.routing import Route, Unroutable, route, scheme_of
from ecowatch.alerts.templates import Lang, Message, possible_repeat, render
from ecowatch.clock import Clock, SystemClock
from ecowatch.config.catalogue import Catalogue
from ecowatch.edges.files import private_dir
from ecowatch.lineprotocol import epoch_ms, int_field, line, string_field
from ecowatch.measurements import DELIVERY
from ecowatch.schema import Audience, CaseStep, Notification, Severity

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]


Identity = tuple[str, str, int, str]  # (notification key, recipient, channel, scheme)


class DeliveryStatus(StrEnum):
    SENT = "sent"
    FAILED = "failed"  # given up: not retryable, or out of attempts
    RETRIED = "retried"  # this attempt failed; another follows after the back-off
    UNROUTABLE = "unroutable"  # the person has no URL configured: a routing gap


class DeliveryRecord(BaseModel):
    """One line of the delivery log. Holds the URL's scheme only, never the URL."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str
    case_id: str
    step: CaseStep
    audience: Audience
    recipient: str
    role: str
    channel: int  # the URL's place in the person's list; -1 when unroutable
    scheme: str
    status: DeliveryStatus
    attempt: int  # 1-based; 0 when nothing was attempted
    at: AwareDatetime
    detail: str = ""

    @property
    def identity(self) -> Identity:
        return (self.key, self.recipient, self.channel, self.scheme)

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, line: str | bytes) -> DeliveryRecord:
        return cls.model_validate_json(line)

    def to_line(self) -> str:
        """InfluxDB line protocol, ms precision: ``delivery,case=…,step=…,audience=…,
        recipient=…,status=…,channel=… attempt=1i,key="…",scheme="…",detail="…" <ms>``.
        ``channel`` is a tag too, so two URLs of one person sent in the same millisecond are
        two points, not one overwriting the other."""
        tag_pairs = (
            ("case", self.case_id),
            ("step", self.step.value),
            ("audience", self.audience.value),
            ("recipient", self.recipient),
            ("status", self.status.value),
            ("channel", str(self.channel)),
        )
        fields = (
            ("attempt", int_field(self.attempt)),
            ("key", string_field(self.key)),
            ("scheme", string_field(self.scheme)),
            ("detail", string_field(self.detail)),
        )
        return line(DELIVERY, tag_pairs, fields, epoch_ms(self.at))


def delivery_lines(records: Iterable[DeliveryRecord]) -> str:
    """Records as one line-protocol batch, for ``InfluxWriter.write(lines, count)``."""
    return "\n".join(r.to_line() for r in records)


# -- the delivery log --------------------------------------------------------------------------


class DeliveryLog(Protocol):
    """What was sent, so a notification delivered again is not sent again.

    A send is begun (``begin``, made ``durable``) before the notifier runs and recorded
    (``append``, made ``durable``) after it. One begun and never recorded was cut off by a
    crash: it may or may not have reached its reader, and is sent again marked as a possible
    repeat, never again unmarked."""

    def was_sent(self, key: str, recipient: str, channel: int, scheme: str) -> bool: ...

    def in_doubt(self, key: str, recipient: str, channel: int, scheme: str) -> bool: ...

    def begin(self, key: str, recipient: str, channel: int, scheme: str) -> None: ...

    def append(self, record: DeliveryRecord) -> None: ...

    def records(self) -> list[DeliveryRecord]: ...

    async def durable(self) -> None:
        """Returns when what was written so far survives this process."""
        ...


# A send ends with one of these; RETRIED is followed by another attempt.
_SETTLED = frozenset({DeliveryStatus.SENT, DeliveryStatus.FAILED})


class MemoryDeliveryLog:
    """For tests and replays: forgets everything when the process ends."""

    def __init__(self) -> None:
        self._records: list[DeliveryRecord] = []
        self._sent: set[Identity] = set()
        self._begun: set[Identity] = set()

    def was_sent(self, key: str, recipient: str, channel: int, scheme: str) -> bool:
        return (key, recipient, channel, scheme) in self._sent

    def in_doubt(self, key: str, recipient: str, channel: int, scheme: str) -> bool:
        return (key, recipient, channel, scheme) in self._begun

    def begin(self, key: str, recipient: str, channel: int, scheme: str) -> None:
        self._begun.add((key, recipient, channel, scheme))

    def append(self, record: DeliveryRecord) -> None:
        self._records.append(record)
        if record.status in _SETTLED:
            self._begun.discard(record.identity)
        if record.status is DeliveryStatus.SENT:
            self._sent.add(record.identity)

    def records(self) -> list[DeliveryRecord]:
        return list(self._records)

    async def durable(self) -> None:
        return None


class JsonlDeliveryLog(MemoryDeliveryLog):
    """A JSON-lines file, one record per line, read back on start so a restarted process does
    not send twice. Each line is flushed and fsynced before the next send is decided; a begun
    send is a line ``{"begun": [key, recipient, channel, scheme]}``.

    The file grows with every attempt; rotating it (keeping, say, the last 30 days) is left to
    the operator, as Alertmanager's notification log keeps only a retention period.
    """

    def __init__(self, path: Path | str) -> None:
        super().__init__()
        self.path = Path(path)
        if self.path.exists():
            for n, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    if line.startswith('{"begun":'):
                        key, recipient, channel, scheme = json.loads(line)["begun"]
                        super().begin(key, recipient, int(channel), scheme)
                    else:
                        super().append(DeliveryRecord.from_json(line))
                except (ValidationError, ValueError, TypeError):
                    # A line torn by a crash mid-write: the send it describes may repeat,
                    # which is the side to err on.
                    log.warning("%s:%d: unreadable delivery record skipped", self.path, n)
        else:
            private_dir(self.path.parent)

    def _write(self, line: str) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())

    def begin(self, key: str, recipient: str, channel: int, scheme: str) -> None:
        self._write(json.dumps({"begun": [key, recipient, channel, scheme]}, ensure_ascii=False))
        super().begin(key, recipient, channel, scheme)

    def append(self, record: DeliveryRecord) -> None:
        self._write(record.to_json())
        super().append(record)


async def _nothing_to_flush() -> None:
    return None


# How long the worker's log keeps what was sent for a notification: as long as the
# notification's record can still be handed to the ``deliver`` agent again (its topic's
# retention, plus the segment Kafka deletes whole), and an hour more. A record that can come
# back finds its entry, so it is not sent twice; after that, nothing can ask.
KEEP_SENT = topics.retained_for() + timedelta(hours=1)


def case_of_key(key: bytes) -> str:
    """The case id of a notification key (``{case_id}:{step}:{audience}:{round}``): the key
    of the notification's record, so the partition of its log entry."""
    return key.decode().rsplit(":", 3)[0]


@dataclass
class Swept:
    """What one sweep of a notification log did: entries deleted, and entries of an older
    version without a time, stamped with now (they age from here)."""

    deleted: int = 0
    stamped: int = 0


class TableDeliveryLog:
    """The delivery log in a key-value table (the worker's: a Faust table backed by a
    changelog), keyed by the notification's idempotency key. Its value is JSON
    ``{"sent": [[recipient, channel, scheme], ...], "begun": [...], "at": "<ISO time>"}``:
    a notification whose partition moves to another worker finds there what was sent,
    instead of in a file on the first one. ``flush`` waits until the table's writes are in
    its changelog (the worker's: its Kafka producer's flush), so a send is never begun, nor
    passed as sent, on a write that a crash could still lose.

    Only what stops a second send is kept; every attempt's record goes to InfluxDB
    (``DeliveryReport.records``); ``records()`` keeps none. An entry is stamped (``at``,
    the injected clock's time) at every write, and :meth:`sweep` deletes the entries older
    than ``keep`` (:data:`KEEP_SENT`): the log holds one retention's notifications, not
    every one ever sent."""

    def __init__(
        self,
        table: MutableMapping[bytes, bytes],
        flush: Callable[[], Awaitable[None]] = _nothing_to_flush,
        clock: Clock | None = None,
        keep: timedelta = KEEP_SENT,
    ) -> None:
        self.table = table
        self.flush = flush
        self.clock = clock or SystemClock()
        self.keep = keep

    def _entry(self, key: str) -> dict[str, list[list[str | int]]]:
        raw = self.table.get(key.encode())
        entry = json.loads(raw) if raw else {}
        return {"sent": entry.get("sent", []), "begun": entry.get("begun", [])}

    def _put(self, key: str, entry: dict[str, list[list[str | int]]]) -> None:
        stamped = {**entry, "at": self.clock.now().isoformat()}
        self.table[key.encode()] = json.dumps(stamped, ensure_ascii=False).encode()

    def was_sent(self, key: str, recipient: str, channel: int, scheme: str) -> bool:
        return [recipient, channel, scheme] in self._entry(key)["sent"]

    def in_doubt(self, key: str, recipient: str, channel: int, scheme: str) -> bool:
        return [recipient, channel, scheme] in self._entry(key)["begun"]

    def begin(self, key: str, recipient: str, channel: int, scheme: str) -> None:
        entry = self._entry(key)
        if [recipient, channel, scheme] not in entry["begun"]:
            entry["begun"].append([recipient, channel, scheme])
            self._put(key, entry)

    def append(self, record: DeliveryRecord) -> None:
        if record.status not in _SETTLED:
            return
        entry = self._entry(record.key)
        identity: list[str | int] = [record.recipient, record.channel, record.scheme]
        if identity in entry["begun"]:
            entry["begun"].remove(identity)
        if record.status is DeliveryStatus.SENT and identity not in entry["sent"]:
            entry["sent"].append(identity)
        self._put(record.key, entry)

    def records(self) -> list[DeliveryRecord]:
        return []

    async def durable(self) -> None:
        await self.flush()

    def sweep(self, mine: Callable[[bytes], bool]) -> Swept:
        """Deletes the entries older than ``keep`` among the keys ``mine`` accepts, and stamps
        with now those that have no time (written by an older version).

        ``mine``: the worker's own keys, those of the partition it is processing (the
        ``deliver`` agent sweeps from inside its stream, where a table's delete goes to the
        changelog partition of the current record: only that partition's keys may go)."""
        now = self.clock.now()
        horizon = now - self.keep
        swept = Swept()
        for key, raw in list(self.table.items()):
            at = written_at(raw)
            # Most entries are young: known so from their time alone, before ``mine`` (a
            # hash of the key) is asked.
            if (at is not None and at >= horizon) or not mine(key):
                continue
            if at is None:
                entry = _object_of(raw)
                entry["at"] = now.isoformat()
                self.table[key] = json.dumps(entry, ensure_ascii=False).encode()
                swept.stamped += 1
            elif at < horizon:
                del self.table[key]
                swept.deleted += 1
        return swept


def _object_of(raw: bytes | None) -> dict[str, object]:
    try:
        entry = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return entry if isinstance(entry, dict) else {}


_AT = b'"at": "'  # as ``_put`` writes it, last: a quote inside a string is escaped


def written_at(raw: bytes | None) -> datetime | None:
    """When a notification log entry was last written; None for one without a time. Read
    without parsing the whole entry: the sweep reads every entry's time."""
    if not raw:
        return None
    start = raw.rfind(_AT)
    if start < 0:
        return None
    start += len(_AT)
    try:
        when = datetime.fromisoformat(raw[start : raw.index(b'"', start)].decode())
    except (ValueError, UnicodeDecodeError):
        return None
    return when if when.tzinfo is not None else None


# -- notifiers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SendResult:
    ok: bool
    retryable: bool = False
    detail: str = ""  # why it failed; never contains the URL


class Notifier(Protocol):
    async def send(self, url: str, message: Message, notify_type: str) -> SendResult: ...


_SERIOUS = frozenset({logging.WARNING, logging.ERROR, logging.CRITICAL})


def _redact(text: str) -> str:
    """A failure's text as a record's ``detail`` (the delivery log, InfluxDB) may hold it."""
    return guard_logs().scrub(text)[:200]


class AppriseNotifier:
    """Sends one message to one apprise URL with apprise's async API."""

    def __init__(self, timeout: float = 30.0) -> None:
        self.timeout = timeout
        guard_logs()  # before apprise logs its first line
        # In memory: apprise's persistent store would otherwise write under the home folder.
        self._asset = apprise.AppriseAsset(storage_mode=apprise.PersistentStoreMode.MEMORY)

    async def send(self, url: str, message: Message, notify_type: str) -> SendResult:
        guard_logs([url])
        ap = apprise.Apprise(asset=self._asset)
        if not ap.add(url):
            return SendResult(False, False, f"not a valid apprise URL (scheme {scheme_of(url)})")
        result = await ap.async_notify(
            body=message.body,
            title=message.title,
            notify_type=apprise.NotifyType(notify_type),
            body_format=apprise.NotifyFormat.TEXT,
            timeout=self.timeout,
        )
        if result:
            return SendResult(True)
        # Apprise does not say whether a failure is lasting: worth retrying, up to the limit.
        problems = [
            e.message
            for e in result.logs()
            if logging.getLevelName(str(e.level).upper()) in _SERIOUS
        ]
        reason = problems[-1] if problems else f"apprise status {result.status.name}"
        return SendResult(False, True, reason)


# -- the pipeline ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """Attempts per URL, and the delays between them: ``first``, multiplied by ``factor`` after
    each failure, capped at ``cap`` seconds."""

    attempts: int = 4
    first: float = 2.0
    factor: float = 2.0
    cap: float = 60.0

    def delay(self, attempt: int) -> float:
        """The wait after failed attempt ``attempt`` (1-based)."""
        return min(self.cap, self.first * self.factor ** (attempt - 1))


@dataclass
class Job:
    """One message for one URL of one person, as it moves through the stages."""

    notification: Notification
    route: Route
    channel: int
    url: str = field(repr=False)
    message: Message
    notify_type: str
    records: list[DeliveryRecord] = field(default_factory=list)
    possible_repeat: bool = False  # an earlier send of it was cut off: it is marked so

    @property
    def scheme(self) -> str:
        return scheme_of(self.url)

    @property
    def identity(self) -> Identity:
        return (self.notification.key, self.route.recipient, self.channel, self.scheme)

    def record(self, status: DeliveryStatus, attempt: int, at: datetime, detail: str = "") -> None:
        n = self.notification
        self.records.append(
            DeliveryRecord(
                key=n.key,
                case_id=n.case_id,
                step=n.step,
                audience=n.audience,
                recipient=self.route.recipient,
                role=self.route.role.value,
                channel=self.channel,
                scheme=self.scheme,
                status=status,
                attempt=attempt,
                at=at,
                detail=detail,
            )
        )


class DeliveryStep(Protocol):
    async def __call__(self, job: Job) -> bool:
        """Do this stage's part; False ends the job here."""
        ...


class Dedup:
    def __init__(self, log_: DeliveryLog, lang: Lang) -> None:
        self.log, self.lang = log_, lang

    async def __call__(self, job: Job) -> bool:
        if self.log.was_sent(*job.identity):
            log.info(
                "%s to %s (%s #%d) already sent: not again",
                job.notification.key,
                job.route.recipient,
                job.scheme,
                job.channel,
            )
            return False
        if self.log.in_doubt(*job.identity):
            log.warning(
                "%s to %s (%s #%d) was begun and never recorded (a crash mid-send): sent "
                "again, marked as a possible repeat",
                job.notification.key,
                job.route.recipient,
                job.scheme,
                job.channel,
            )
            job.message = possible_repeat(job.message, self.lang)
            job.possible_repeat = True
        return True


class Begin:
    """Marks the send as begun, durably, before the notifier runs: a crash from here until
    ``Record`` leaves it in doubt, not forgotten."""

    def __init__(self, log_: DeliveryLog) -> None:
        self.log = log_

    async def __call__(self, job: Job) -> bool:
        self.log.begin(*job.identity)
        await self.log.durable()
        return True


class Send:
    def __init__(self, notifier: Notifier, retry: RetryPolicy, sleep: Sleep, clock: Clock) -> None:
        self.notifier, self.retry, self.sleep, self.clock = notifier, retry, sleep, clock

    async def __call__(self, job: Job) -> bool:
        for attempt in range(1, self.retry.attempts + 1):
            try:
                result = await self.notifier.send(job.url, job.message, job.notify_type)
            except Exception as exc:  # a notifier's bug or a network surprise: retry it
                result = SendResult(False, True, f"{type(exc).__name__}: {exc}")
            # Whatever the notifier says goes to the log and the records: scrubbed here, once
            # for every notifier (a library's error text may quote the URL).
            result = SendResult(result.ok, result.retryable, _redact(result.detail))
            at = self.clock.now()
            if result.ok:
                marked = "possible repeat" if job.possible_repeat else ""
                job.record(DeliveryStatus.SENT, attempt, at, marked)
                log.info(
                    "%s to %s (%s #%d) sent",
                    job.notification.key,
                    job.route.recipient,
                    job.scheme,
                    job.channel,
                )
                return True
            last = not result.retryable or attempt == self.retry.attempts
            if last:
                job.record(DeliveryStatus.FAILED, attempt, at, result.detail)
                log.error(
                    "%s to %s (%s #%d) failed after %d attempt(s): %s",
                    job.notification.key,
                    job.route.recipient,
                    job.scheme,
                    job.channel,
                    attempt,
                    result.detail,
                )
                return True
            delay = self.retry.delay(attempt)
            job.record(DeliveryStatus.RETRIED, attempt, at, result.detail)
            log.warning(
                "%s to %s (%s #%d): attempt %d failed (%s); retrying in %.1fs",
                job.notification.key,
                job.route.recipient,
                job.scheme,
                job.channel,
                attempt,
                result.detail,
                delay,
            )
            await self.sleep(delay)
        return True  # attempts < 1: nothing tried, nothing to record


class Record:
    def __init__(self, log_: DeliveryLog) -> None:
        self.log = log_

    async def __call__(self, job: Job) -> bool:
        for record in job.records:
            self.log.append(record)
        await self.log.durable()
        return True


@dataclass
class DeliveryReport:
    """What one ``deliver`` call did: the records it added, and the channels it skipped as
    already sent (recipient, channel, scheme)."""

    records: list[DeliveryRecord] = field(default_factory=list)
    duplicates: list[tuple[str, int, str]] = field(default_factory=list)
    # Sent again after a send of it was cut off, marked as a possible repeat.
    possible_repeats: list[tuple[str, int, str]] = field(default_factory=list)

    def with_status(self, status: DeliveryStatus) -> list[DeliveryRecord]:
        return [r for r in self.records if r.status is status]


def notify_type(notification: Notification) -> str:
    """Apprise's message type (the colour or icon on most services)."""
    if notification.step is CaseStep.CLOSED:
        return apprise.NotifyType.SUCCESS.value
    if notification.severity is Severity.VIOLATION:
        return apprise.NotifyType.FAILURE.value
    return apprise.NotifyType.WARNING.value


class Deliverer:
    """Routes, renders and delivers notifications; ``await deliver(notification)``."""

    def __init__(
        self,
        catalogue: Catalogue,
        delivery_log: DeliveryLog,
        notifier: Notifier | None = None,
        *,
        clock: Clock | None = None,
        sleep: Sleep = asyncio.sleep,
        retry: RetryPolicy | None = None,
        environ: Mapping[str, str] | None = None,
        lang: Lang = "zh",
    ) -> None:
        self.catalogue = catalogue
        self.log = delivery_log
        self.clock = clock or SystemClock()
        self.environ = environ  # None: os.environ at each delivery (a changed URL applies)
        self.lang: Lang = lang
        self.stages: Sequence[DeliveryStep] = (
            Dedup(delivery_log, lang),
            Begin(delivery_log),
            Send(notifier or AppriseNotifier(), retry or RetryPolicy(), sleep, self.clock),
            Record(delivery_log),
        )
        # One job per channel at a time: a redelivery racing the first delivery waits, then
        # finds it sent. Weak values: a lock lives only while some job holds it.
        self._locks: weakref.WeakValueDictionary[tuple[str, str, int, str], asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    async def deliver(self, notification: Notification) -> DeliveryReport:
        report = DeliveryReport()
        routing = route(notification, self.catalogue, self.environ)
        # Known before any notifier runs, whichever it is: its lines are scrubbed of them.
        guard_logs(url for person in routing.routes for url in person.urls)
        for gap in routing.unroutable:
            self._unroutable(notification, gap, report)
        message = render(notification, self.lang)
        kind = notify_type(notification)
        jobs = [
            Job(notification, person, channel, url, message, kind)
            for person in routing.routes
            for channel, url in enumerate(person.urls)
        ]
        done = await asyncio.gather(*(self._run(job) for job in jobs))
        for job, completed in zip(jobs, done, strict=True):
            report.records.extend(job.records)
            if not completed:
                report.duplicates.append((job.route.recipient, job.channel, job.scheme))
            elif job.possible_repeat:
                report.possible_repeats.append((job.route.recipient, job.channel, job.scheme))
        return report

    async def _run(self, job: Job) -> bool:
        lock = self._locks.setdefault(job.identity, asyncio.Lock())
        async with lock:
            for stage in self.stages:
                if not await stage(job):
                    return False
        return True

    def _unroutable(self, n: Notification, gap: Unroutable, report: DeliveryReport) -> None:
        log.warning("%s: cannot reach %s %s: %s", n.key, gap.role.value, gap.recipient, gap.reason)
        record = DeliveryRecord(
            key=n.key,
            case_id=n.case_id,
            step=n.step,
            audience=n.audience,
            recipient=gap.recipient,
            role=gap.role.value,
            channel=-1,
            scheme="",
            status=DeliveryStatus.UNROUTABLE,
            attempt=0,
            at=self.clock.now(),
            detail=gap.reason,
        )
        self.log.append(record)
        report.records.append(record)
