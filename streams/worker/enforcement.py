"""Detect – remind – penalize in the worker: the pure core (rules, cases) on Faust tables.

One agent, ``enforce``, owns three tables keyed by site: the rules' state, the site's cases and
its log of the cases gone (closed or dismissed, within its topic's retention), all backed by
changelogs, so a worker that restarts resumes every open case and deadline. The whole trail
of every case is in InfluxDB (``case_event``), which the weekly settlement counts from.
It reads readings, device status, ticks (time passing), officers' actions and the changes of
enterprises' marks (标记), all keyed by site and so co-partitioned with the tables.

It is also the one reader of the readings: a site's rule state remembers which (device, time)
it has taken (the ingest contract's one reading per device and time), so a repeat is known
before anything is written. A redelivered reading is skipped; a second reading for a taken time
is dead-lettered (``duplicate_reading``): InfluxDB would overwrite the first with it. A batch's
new readings are stored before the rule state that took them is written to its changelog, so
a worker that dies in between re-reads them as new, never as repeats of readings it lost.

What it decides goes out on Kafka: findings, case events, notifications, and valve commands.
Nothing is sent to a person from here: the ``deliver`` agent does that, with an idempotency key
per notification, so a redelivered event never notifies twice.

Scale-out: several workers of one app id split the partitions, and everything a partition's
new owner needs is in its tables' changelogs: the cases, the rule state, each site's data
clock (``site-clock``) and what was sent (``notification-log``). The tick timer runs on the
group's leader only, so time passes once per site whatever the number of workers.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections import Counter, defaultdict, deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

import faust
from faust.types import TP, TableT
from pydantic import ValidationError

from ecowatch import topics
from ecowatch.alerts.delivery import Deliverer, TableDeliveryLog, case_of_key, delivery_lines
from ecowatch.clock import Clock, data_time
from ecowatch.config.catalogue import Catalogue
from ecowatch.ingest.dead_letters import DeadLetters
from ecowatch.ingest.validation import rejection_of
from ecowatch.schema import (
    CaseEvent,
    DeviceCommand,
    DeviceStatus,
    Finding,
    MarkEvent,
    Notification,
    OfficerAction,
    Reading,
    ReadingBatch,
    RejectReason,
    ValveCommand,
)
from ecowatch.streams.judging.cases import CaseError, officer_input
from ecowatch.streams.judging.engine import (
    Outcome,
    SiteCases,
    on_action,
    on_findings,
    on_mark,
    on_tick,
)
from ecowatch.streams.judging.ledger import Repeat
from ecowatch.streams.judging.report import GONE, SiteCaseLog
from ecowatch.streams.judging.rules import RuleParams, SiteJudge, SiteState, SiteTick
from ecowatch.streams.judging.rules.rejudge import (
    StoredReading,
    by_device,
    note_again,
    read_spans,
    take_settled,
)
from ecowatch.streams.storage.points import (
    account_line,
    case_event_line,
    closed_lines,
    finding_line,
    mark_line,
)
from ecowatch.streams.storage.store import InfluxWriter, PermanentWriteError
from ecowatch.streams.worker.offsets import (
    Missing,
    ledger_key,
    missing_before,
    next_offset_of,
    next_offset_value,
    partition_of,
)

log = logging.getLogger(__name__)

# Stores readings in InfluxDB, dead-lettering only those it refuses (app.py).
ReadingSink = Callable[[list[Reading]], Awaitable[None]]
# Reads from Kafka the values of records the stream skipped, in offset order (app.py).
ReadBack = Callable[[Missing], Awaitable[list[bytes]]]

TICKS, ACTIONS, MARKS = topics.TICKS, topics.ACTIONS, topics.MARKS
# The agent takes its input in batches: each site's rule state is read and written once per
# batch (one changelog record, not one per reading), and its InfluxDB lines go in one request.
ENFORCE_BATCH = 500
ENFORCE_WITHIN_SECONDS = 0.1
# A batch judges resent hours again (reading their days back from InfluxDB) for at most about
# this long; the rest wait for the next tick.
REJUDGE_BUDGET_SECONDS = 0.5
# The deliver agent sweeps the notification log of the partition it is processing at most
# this often (real seconds: a bound on its work; what expires is told by the injected clock).
SWEEP_EVERY_SECONDS = 10.0


@dataclass
class Batch:
    """What one batch of the agent's input has built up: each site's rule state (judged in
    place, written back once) and the InfluxDB lines (findings, case events, aggregates)."""

    states: dict[str, SiteState] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    readings: list[Reading] = field(default_factory=list)  # new ones, to store
    # site → its data clock as this batch moved it (written to ``site-clock`` once per batch)
    clocks: dict[str, tuple[datetime, datetime]] = field(default_factory=dict)
    moved: set[str] = field(default_factory=set)  # the sites whose clock a reading moved
    # (topic, partition) → the next offset the agent expects there (``input-offsets``)
    next_offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    read_back: list[Missing] = field(default_factory=list)  # records the stream skipped
    # site → its cases and its case log as this batch changed them: read from their tables
    # once and written once per batch, not per finding (a site's cases can be hundreds of KiB
    # of JSON, and a storm of exceedances read and wrote them for every finding).
    cases: dict[str, SiteCases] = field(default_factory=dict)
    logs: dict[str, SiteCaseLog] = field(default_factory=dict)
    # site → its late readings (older than their device's newest: resends), judged together
    # once the batch's live readings are (``Enforcement._judge_late``), so that a county's
    # resends cost about what live data costs and live readings are judged first.
    late: dict[str, list[Reading]] = field(default_factory=dict)
    # site → the hours of its resends that have settled, taken at a tick: judged again after
    # the batch's readings, from one read of InfluxDB per site (``Enforcement._rejudge_all``),
    # with the tick's data time and wall time.
    rejudge: dict[str, tuple[list[tuple[str, datetime]], datetime, datetime]] = field(
        default_factory=dict
    )


def sent_keys_of(partition: int, partitions: int) -> Callable[[bytes], bool]:
    """Whether a notification log key is of ``partition``: the partition of its case id, the
    key of the notification's record (the log's changelog partition is the record's)."""
    return lambda key: _case_partition(case_of_key(key), partitions) == partition


@functools.lru_cache(maxsize=4096)
def _case_partition(case_id: str, partitions: int) -> int:
    # A case has several notifications, and an expired key is asked about by the sweep of
    # every partition until its own partition's sweep deletes it: murmur2 in Python is ~30 µs.
    return partition_of(case_id.encode(), partitions)


def table_size(items: Iterable[tuple[bytes, bytes | None]]) -> dict[str, int]:
    """``{"keys", "bytes", "largest"}`` of a table's raw items (keys and values are bytes)."""
    keys = size = largest = 0
    for key, value in items:
        length = len(value or b"")
        keys += 1
        size += len(key) + length
        largest = max(largest, length)
    return {"keys": keys, "bytes": size, "largest": largest}


def clock_value(seen: tuple[datetime, datetime]) -> bytes:
    """A site's data clock in ``site-clock``: ``<data time>|<wall time it arrived>``."""
    return f"{seen[0].isoformat()}|{seen[1].isoformat()}".encode()


def clock_of(raw: bytes | None) -> tuple[datetime, datetime] | None:
    if not raw:
        return None
    data, _, wall = raw.decode().partition("|")
    return datetime.fromisoformat(data), datetime.fromisoformat(wall)


def judged_at(
    event: Reading | DeviceStatus | SiteTick | MarkEvent,
    seen: tuple[datetime, datetime] | None,
    wall: datetime,
) -> tuple[datetime, tuple[datetime, datetime] | None]:
    """The time an event is judged at, and the site's data clock after it (None: unchanged).
    Only a reading moves the clock: a tick and a device's status (stamped by the bridge on the
    wall clock, as a last will is) are judged on it. A status that moved it put a city
    replaying the past at the wall clock, every deadline of the site long passed, until its
    next reading."""
    if isinstance(event, Reading):
        return event.ts, (event.ts, wall)
    if seen is not None:
        return data_time(seen, wall), None
    return (event.now if isinstance(event, SiteTick) else event.at), None


class Enforcement:
    """The tables, agents and timer of detect – remind – penalize, installed on an app."""

    def __init__(
        self,
        app: faust.App,
        catalogue: Catalogue,
        clock: Clock,
        writer: InfluxWriter,
        tick_seconds: float,
        params: RuleParams | None = None,
        aqi_standard: str = "2026",
        dead_letters: DeadLetters | None = None,
        store: ReadingSink | None = None,
        read_back: ReadBack | None = None,
    ) -> None:
        self.app, self.catalogue, self.clock, self.writer = app, catalogue, clock, writer
        # A record the worker cannot take goes there; its offset is committed with the batch
        # (Faust's commit flushes the producer first: the letter is in Kafka by then).
        self._dead_letters = dead_letters
        self._store = store
        self._read_back = read_back
        self.judge = SiteJudge(catalogue, params, aqi_standard)
        raw = {"key_serializer": "raw", "value_serializer": "raw"}
        # JSON bytes of the pure core's pydantic models (the app's serialisers are raw). The
        # agent writes its tables after a batch, outside Faust's per-event iteration, so the
        # changelog partition comes from the key (the site) by the producers' partitioner, the
        # same that placed the site's input records: the changelog stays co-partitioned.
        table = {"default": None, "key_type": bytes, "value_type": bytes, "use_partitioner": True}
        self.rules_table = app.Table("site-rules", **table)
        self.cases_table = app.Table("site-cases", **table)
        self.log_table = app.Table("site-case-log", **table)
        # site → its data clock (``clock_value``): (the latest data time, the wall-clock time
        # it arrived). A tick's time is the site's data clock moved on by the real time since,
        # so a fleet replaying the past (or a device whose clock is off) is not judged offline
        # by the wall clock. In a table, so a partition that moves keeps its sites' clocks.
        self.clock_table = app.Table("site-clock", **table)
        # input partition → the next offset the agent expects there (streams/worker/offsets.py).
        # Its keys are chosen so that the partitioner places each on its own partition.
        self.offsets_table = app.Table("input-offsets", **table)
        self._ledger_keys: dict[tuple[str, int], bytes] = {}
        # notification key → the channels sent ([[recipient, channel, scheme], ...]). Keyed by
        # notification, but written only by the deliver agent while it handles that
        # notification, so without the partitioner: the changelog partition is the one of the
        # notification's record (keyed by case id), and the log moves with the notifications.
        self.sent_table = app.Table(
            "notification-log", default=None, key_type=bytes, value_type=bytes
        )
        self.inputs = app.topic(topics.READINGS, topics.STATUS, TICKS, ACTIONS, MARKS, **raw)
        self.findings = app.topic(topics.FINDINGS, **raw)
        self.case_events = app.topic(topics.CASES, **raw)
        self.notifications = app.topic(topics.NOTIFICATIONS, **raw)
        self.app_id = app.conf.id
        self.commands = app.topic(topics.COMMANDS, **raw)
        self.ticks = app.topic(TICKS, **raw)
        self.actions = app.topic(ACTIONS, **raw)
        self.marks = app.topic(MARKS, **raw)  # the case API's marks (标记), as MarkEvents
        # What this process has done (the worker's /health): judged readings, findings, ...
        self.counts: Counter[str] = Counter()
        # Seconds from a notification's decision (its record's time) to its hand-over to
        # apprise, the last ones: the worker's /health gives their p50 and p99.
        self.notification_delays: deque[float] = deque(maxlen=10_000)
        # A send is begun and recorded in the changelog, flushed, on either side of apprise.
        # Each entry is stamped with the clock's time and swept by the deliver agent once its
        # notification's record can no longer come back (``alerts.delivery.KEEP_SENT``).
        self.sent_log = TableDeliveryLog(
            self.sent_table, flush=lambda: app.producer.flush(), clock=clock
        )
        self.deliverer = Deliverer(catalogue, self.sent_log, clock=clock)
        self._swept_at: dict[int, float] = {}  # partition → when the sweep last ran (monotonic)
        app.agent(self.inputs, name="enforce")(self._enforce)
        app.agent(self.notifications, name="deliver")(self._deliver)
        # On the leader only: one tick per site and interval, whatever the number of workers.
        # Each goes to the partition of its site, so its owner judges it. (Ticking only the
        # sites of one's own partitions would need the assignment mirrored in the timer, and a
        # rebalance would drop or double ticks; the leader's are one stream, moved as a whole.)
        app.timer(interval=tick_seconds, on_leader=True)(self._tick_all)

    def tables(self) -> dict[str, TableT]:
        return {
            t.name: t
            for t in (
                self.rules_table,
                self.cases_table,
                self.log_table,
                self.clock_table,
                self.offsets_table,
                self.sent_table,
            )
        }

    def table_sizes(self) -> dict[str, dict[str, int]]:
        """Each table as this worker holds it in memory (its partitions, and any it keeps
        as a standby or since a rebalance), for /health: keys, bytes of keys and values, and
        the largest value (a changelog record: Kafka takes at most 1 MiB)."""
        return {name: table_size(t.data.items()) for name, t in self.tables().items()}

    def delay_figures(self) -> dict[str, float | int]:
        """The notifications' delays from decision to apprise, for /health."""
        delays = sorted(self.notification_delays)
        if not delays:
            return {}
        return {
            "notification_delay_samples": len(delays),
            "notification_delay_p50_s": round(delays[len(delays) // 2], 3),
            "notification_delay_p99_s": round(
                delays[min(len(delays) - 1, len(delays) * 99 // 100)], 3
            ),
        }

    # -- state -------------------------------------------------------------------------------

    def site_cases(self, site: str) -> SiteCases:
        raw = self.cases_table.get(site.encode())
        return SiteCases.model_validate_json(raw) if raw else SiteCases()

    def case_log(self, site: str) -> SiteCaseLog:
        raw = self.log_table.get(site.encode())
        return SiteCaseLog.model_validate_json(raw) if raw else SiteCaseLog()

    def site_rules(self, site: str) -> SiteState | None:
        raw = self.rules_table.get(site.encode())
        return SiteState.model_validate_json(raw) if raw else None

    def _cases_of(self, site: str, batch: Batch) -> SiteCases:
        """The site's cases as this batch has them (its table's, until the batch changes them)."""
        cases = batch.cases.get(site)
        return cases if cases is not None else self.site_cases(site)

    def _log_of(self, site: str, batch: Batch) -> SiteCaseLog:
        logged = batch.logs.get(site)
        return logged if logged is not None else self.case_log(site)

    def site_clock(self, site: str) -> tuple[datetime, datetime] | None:
        return clock_of(self.clock_table.get(site.encode()))

    def site_now(self, site: str) -> datetime:
        """The site's data clock now (``ecowatch.clock.data_time``), from the worker's tables
        (the site's partition is this worker's, or its clock is not known here)."""
        return data_time(self.site_clock(site), self.clock.now())

    def _site_time(
        self, site: str, event: Reading | DeviceStatus | SiteTick | MarkEvent, batch: Batch
    ) -> datetime:
        if site not in batch.clocks:
            known = self.site_clock(site)
            if known is not None:
                batch.clocks[site] = known
        at, seen = judged_at(event, batch.clocks.get(site), self.clock.now())
        if seen is not None:
            batch.clocks[site] = seen
            batch.moved.add(site)
        return at

    # -- agents ------------------------------------------------------------------------------

    async def _enforce(self, stream: faust.StreamT) -> None:
        # ``take_events`` acknowledges a batch only once this loop has finished with it, so
        # offsets are committed after the batch's state and lines are written.
        async for events in stream.take_events(ENFORCE_BATCH, within=ENFORCE_WITHIN_SECONDS):
            self.counts["batches_taken"] += 1  # and "batches_done" below: the stall watch's
            batch = Batch()
            for event in events:
                message = event.message
                await self._catch_up(message.topic, message.partition, message.offset, batch)
                await self._take(message.topic, event.value, batch)
            # The live readings are judged; then the late ones, per site, and the hours of
            # settled resends; then all of it is stored and written at once.
            await self._judge_late(batch)
            await self._rejudge_all(batch)
            await self._flush(batch)
            await self._release(batch.read_back)
            self.counts["batches_done"] += 1

    async def _take(self, topic: str, raw: bytes, batch: Batch) -> None:
        if topic == topics.READINGS and ReadingBatch.is_batch(raw):
            await self._take_batch(raw, batch)
            return
        try:
            await self._one(topic, raw, batch)
        except Exception as exc:
            # One record that fails anywhere is its own dead letter, and the stream goes on:
            # a record that raised again after every restart stopped the worker's judging.
            await self._refuse(topic, raw, exc)

    async def _take_batch(self, raw: bytes, batch: Batch) -> None:
        """A bridge's batch of readings: each taken as if it came alone, and one that fails
        is its own dead letter (its JSON alone, not the batch's)."""
        try:
            readings: list[Reading | bytes] = list(ReadingBatch.model_validate_json(raw).readings)
        except ValidationError:
            # Some reading of it is bad: each one parsed on its own finds which.
            try:
                items = json.loads(raw)["readings"]
                readings = [
                    json.dumps(item, ensure_ascii=False, separators=(",", ":")).encode()
                    for item in items
                ]
            except (ValueError, KeyError, TypeError) as exc:
                await self._refuse(topics.READINGS, raw, exc)
                return
        for reading in readings:
            try:
                if isinstance(reading, bytes):
                    await self._one(topics.READINGS, reading, batch)
                else:
                    await self._event(reading, batch)
            except Exception as exc:
                one = reading if isinstance(reading, bytes) else reading.to_json()
                await self._refuse(topics.READINGS, one, exc)

    def _ledger_key(self, topic: str, partition: int) -> bytes:
        key = self._ledger_keys.get((topic, partition))
        if key is None:
            key = ledger_key(topic, partition, self.app.conf.topic_partitions)
            self._ledger_keys[(topic, partition)] = key
        return key

    async def _catch_up(self, topic: str, partition: int, offset: int, batch: Batch) -> None:
        """Takes first the records of this partition that the stream skipped before
        ``offset`` (``offsets.py``), read back from Kafka; then notes ``offset`` as taken."""
        where = (topic, partition)
        expected = batch.next_offsets.get(where)
        if expected is None:
            expected = next_offset_of(self.offsets_table.get(self._ledger_key(topic, partition)))
        batch.next_offsets[where] = max(expected or 0, offset + 1)
        missing = missing_before(topic, partition, expected, offset)
        if missing is None:
            return
        for raw in await self._skipped("enforce", missing):
            await self._take(topic, raw, batch)
        batch.read_back.append(missing)

    async def _skipped(self, agent: str, missing: Missing) -> list[bytes]:
        """The records the stream skipped, read back from Kafka: said, and counted."""
        log.warning(
            "%s: the stream skipped %d records of %s[%d] (offsets %d-%d): read back from "
            "Kafka and taken first",
            agent,
            len(missing),
            missing.topic,
            missing.partition,
            missing.start,
            missing.stop - 1,
        )
        records = await self._read_missing(missing)
        self.counts["read_back"] += len(records)
        if len(records) < len(missing):
            # Only Kafka's retention removes records of these topics.
            self.counts["read_back_gone"] += len(missing) - len(records)
            log.error(
                "%s: %d skipped records of %s[%d] are no longer in Kafka",
                agent,
                len(missing) - len(records),
                missing.topic,
                missing.partition,
            )
        return records

    async def _read_missing(self, missing: Missing) -> list[bytes]:
        """The skipped records, from Kafka; the stream waits (nothing is committed) while
        Kafka does not answer, as it does for a store that InfluxDB does not take."""
        if self._read_back is None:
            return []
        delay = 0.5
        while True:
            try:
                return await self._read_back(missing)
            except Exception as exc:
                log.warning(
                    "enforce: reading back %s failed (%s); again in %.1f s", missing, exc, delay
                )
                await asyncio.sleep(delay)
                delay = min(5.0, delay * 2)

    async def _release(self, read_back: list[Missing]) -> None:
        """Tells Faust's consumer that the offsets read back are done (stored and their state
        written), so its commit goes past them: the stream never acknowledges them itself,
        and a commit stopped at the first of them would replay the partition from there at
        every restart. ``_add_gap`` is the consumer's own mechanism for offsets no event
        acknowledges (compacted topics, transaction markers)."""
        add_gap = getattr(self.app.consumer, "_add_gap", None)
        for m in read_back:
            if add_gap is not None:
                await add_gap(TP(m.topic, m.partition), m.start, m.stop - 1)

    async def _refuse(self, topic: str, raw: bytes, exc: Exception) -> None:
        self.counts["refused_records"] += 1
        detail = f"{type(exc).__name__}: {exc}"
        log.warning("enforce: a record of %s is dead-lettered: %.300s", topic, detail)
        if self._dead_letters is None:
            return
        if topic == topics.READINGS and isinstance(exc, ValidationError):
            rejection = rejection_of(exc)
            reason, detail = rejection.reason, rejection.detail
        elif isinstance(exc, (ValidationError, KeyError, CaseError)):
            reason = RejectReason.INVALID_VALUE
        else:
            reason = RejectReason.UNHANDLED
        await self._dead_letters.send(raw, reason, detail, origin=topic)

    async def _flush(self, batch: Batch) -> None:
        # The readings first: the rule state written below says they were taken.
        if batch.readings and self._store is not None:
            await self._store(batch.readings)
        for site, state in batch.states.items():
            self.rules_table[site.encode()] = state.model_dump_json().encode()
        for site, cases in batch.cases.items():
            self.cases_table[site.encode()] = cases.model_dump_json().encode()
        for site, logged in batch.logs.items():
            self.log_table[site.encode()] = logged.model_dump_json().encode()
        for site in batch.moved:
            self.clock_table[site.encode()] = clock_value(batch.clocks[site])
        # Last: the offsets taken. A worker that dies before this reads the batch again.
        for (topic, partition), offset in batch.next_offsets.items():
            self.offsets_table[self._ledger_key(topic, partition)] = next_offset_value(offset)
        if not batch.lines:
            return
        try:
            await self.writer.write("\n".join(batch.lines), len(batch.lines))
        except PermanentWriteError as exc:
            # Derived points only (the readings are the store agent's): say so and go on.
            log.error("InfluxDB refused %d enforcement points: %s", len(batch.lines), exc)

    async def _one(self, topic: str, raw: bytes, batch: Batch) -> None:
        if topic == ACTIONS:
            action = OfficerAction.model_validate_json(raw)
            state, out = on_action(
                self._cases_of(action.site, batch),
                action.case_id,
                officer_input(action),
                action.at,
                self.catalogue,
            )
            batch.cases[action.site] = state
            await self._publish(out, [], batch)
            return
        event: Reading | DeviceStatus | SiteTick | MarkEvent
        if topic == topics.READINGS:
            event = Reading.from_json(raw)
        elif topic == topics.STATUS:
            event = DeviceStatus.model_validate_json(raw)
        elif topic == MARKS:
            event = MarkEvent.model_validate_json(raw)
        else:
            event = SiteTick.model_validate_json(raw)
        await self._event(event, batch, raw)

    async def _event(
        self,
        event: Reading | DeviceStatus | SiteTick | MarkEvent,
        batch: Batch,
        raw: bytes | None = None,
    ) -> None:
        """A reading, a device's status, a tick or a mark's change, parsed: judged on its
        site's state. ``raw``: the record it came in, for its dead letter (else it is
        serialised again)."""
        site = event.site
        if site not in self.catalogue.sites:
            raise KeyError(f"site '{site}' is not in the catalogue")
        working = batch.states.get(site) or self.site_rules(site) or self.judge.initial(site)
        batch.states[site] = working
        if isinstance(event, Reading):
            # Taken (and so stored) before it is judged: a rule that fails on it makes it a
            # dead letter, but the measurement is evidence all the same.
            repeat = self.judge.take(working, event)
            if repeat is not None:
                await self._repeat(raw or event.to_json(), repeat)
                return
            batch.readings.append(event)
            if self.judge.is_late(working, event):
                # Older than its device's newest (a resend): judged with the batch's other
                # late readings of the site, after the live ones (``_judge_late``). It does
                # not move the site's data clock: that is the present's.
                batch.late.setdefault(site, []).append(event)
                self.counts["judged_readings"] += 1
                self.counts["late_readings"] += 1
                return
        now = self._site_time(site, event, batch)
        judged = self.judge.judge_in_place(working, event, taken=True)
        if isinstance(event, Reading):
            self.counts["judged_readings"] += 1
        if isinstance(event, SiteTick):
            settled = take_settled(working, event.now)
            if settled:
                hours, _, _ = batch.rejudge.get(site, ([], now, event.now))
                batch.rejudge[site] = (hours + settled, now, event.now)
        # Most readings change no case: then the cases table is neither read nor written.
        # Timers fall due on ticks (every ECOWATCH_TICK_SECONDS), not on every reading.
        if judged.findings or isinstance(event, SiteTick | MarkEvent):
            cases, out = on_findings(
                self._cases_of(site, batch), judged.findings, now, self.catalogue
            )
            if isinstance(event, SiteTick):
                cases, ticked = on_tick(cases, now, self.catalogue)
                out.add(ticked.events, ticked.notifications)
            if isinstance(event, MarkEvent):
                # The mark's trail, and the open cases whose evidence it is about.
                batch.lines.append(mark_line(event))
                policy = self.judge.ctx.marks
                cases, marked = on_mark(cases, event, now, self.catalogue, policy)
                out.add(marked.events, marked.notifications)
            if out.events or judged.findings:
                batch.cases[site] = cases
            await self._publish(out, judged.findings, batch)
        batch.lines += closed_lines(site, judged.windows)
        batch.lines += [mark_line(m) for m in judged.marks]  # the device's own marks
        if judged.meter is not None and isinstance(event, Reading):
            batch.lines.append(account_line(event, judged.meter))
        if judged.valve is not None and isinstance(event, Reading):
            command = DeviceCommand(
                site=site,
                device=event.device,
                command=ValveCommand(
                    command=judged.valve.command,
                    reason=judged.valve.reason,
                    issued_at=now,
                    command_id=f"{event.device}-{judged.valve.value}-{event.ts:%Y%m%dT%H%M%S}",
                ),
            )
            await self.commands.send(key=site.encode(), value=command.to_json())

    async def _judge_late(self, batch: Batch) -> None:
        """The batch's late readings, per site: their exceedances are findings marked late
        (one per device, pollutant and hour), which open cases marked found late
        (streams/judging/cases.py, open_case), judged at the site's present data time; their hours
        are noted once each, to be judged again once the resend has settled."""
        for site, readings in batch.late.items():
            try:
                findings = self.judge.judge_late(batch.states[site], readings)
                self.counts["late_findings"] += len(findings)
                if not findings:
                    continue
                now = self._present(site, batch)
                cases, out = on_findings(self._cases_of(site, batch), findings, now, self.catalogue)
                batch.cases[site] = cases
                await self._publish(out, findings, batch)
            except Exception as exc:
                # As a reading that fails alone: each is its own dead letter (and stored, as
                # a reading is once taken: the measurement is evidence all the same).
                for reading in readings:
                    await self._refuse(topics.READINGS, reading.to_json(), exc)

    def _present(self, site: str, batch: Batch) -> datetime:
        """The site's data time now, as this batch has moved its clock."""
        seen = batch.clocks.get(site) or self.site_clock(site)
        return data_time(seen, self.clock.now())

    async def _rejudge_all(self, batch: Batch) -> None:
        """The settled hours of resends, judged again: per site, one read of InfluxDB for all
        of its hours and devices, then all those hours and their
        days computed again in one pass per device. Their windows replace what was written,
        and a mean over its limit is a late finding (a found-late case). InfluxDB away: the
        hours are tried again on a later tick."""
        if not batch.rejudge:
            return
        began = time.monotonic()
        for site, (hours, now, wall) in batch.rejudge.items():
            state = batch.states[site]
            if time.monotonic() - began > REJUDGE_BUDGET_SECONDS:
                # The batch's live readings wait for this: the other sites' hours are taken
                # at the next tick (a worker started after a county's resends found 30 sites
                # to judge again at once, and stood still for 20 s).
                for device, hour in hours:
                    note_again(state, device, hour, wall)
                self.counts["rejudge_deferred"] += 1
                continue
            # One site after the other: InfluxDB on the same cores as the worker, sent every
            # site's read at once, was slow enough to time out the writes (each retried, and
            # InfluxDB 2.7 then returned both copies of the points).
            try:
                stored = await self._read_back_hours(site, hours)
            except Exception as exc:  # the store's errors are many kinds: all mean "not now"
                for device, hour in hours:
                    note_again(state, device, hour, wall)
                log.warning("%s: %d hours are judged again later: %s", site, len(hours), exc)
                continue
            windows, findings = self.judge.rejudge_hours(site, by_device(hours), stored)
            self.counts["rejudged_hours"] += len(hours)
            batch.lines += closed_lines(site, windows)
            if findings:
                cases, out = on_findings(self._cases_of(site, batch), findings, now, self.catalogue)
                batch.cases[site] = cases
                await self._publish(out, findings, batch)

    async def _read_back_hours(
        self, site: str, hours: list[tuple[str, datetime]]
    ) -> list[StoredReading]:
        """The stored readings the hours are judged again from: one query per span of days
        in a row (one, mostly) for all the site's devices concerned; each device's readings
        in time order."""
        devices = [d for d in by_device(hours) if self.catalogue.device(d) is not None]
        if not devices:
            return []
        per_device: dict[str, list[StoredReading]] = {}
        for start, stop in read_spans(hours, self.judge.ctx.params.max_slice):
            got = await self.writer.site_readings(site, devices, start, stop)
            self.counts["rejudge_reads"] += 1
            for device, readings in got.items():
                per_device.setdefault(device, []).extend(readings)
        return [r for readings in per_device.values() for r in readings]

    async def _repeat(self, raw: bytes, repeat: Repeat) -> None:
        """A reading for a (device, time) already taken: neither stored nor judged again."""
        if repeat.identical:
            self.counts["duplicates"] += 1  # a redelivery: harmless
            return
        self.counts["refused_repeats"] += 1
        if self._dead_letters is not None:
            await self._dead_letters.send(raw, repeat.reason, repeat.detail, origin=topics.READINGS)

    async def _publish(self, out: Outcome, findings: list[Finding], batch: Batch) -> None:
        batch.lines += [finding_line(f) for f in findings] + [
            case_event_line(e) for e in out.events
        ]
        for f in findings:
            await self.findings.send(key=f.site.encode(), value=f.to_json())
        for e in out.events:
            await self.case_events.send(key=e.site.encode(), value=e.model_dump_json().encode())
        # Only a case gone (closed, dismissed) changes a site's case log: the rest of the
        # trail is in InfluxDB, which the weekly settlement counts from.
        by_site: defaultdict[str, list[CaseEvent]] = defaultdict(list)
        for e in out.events:
            if e.kind in GONE:
                by_site[e.site].append(e)
        for site, events in by_site.items():
            batch.logs[site] = self._log_of(site, batch).add(events)
        for n in out.notifications:
            stamped = n.model_copy(update={"app": self.app_id})
            await self.notifications.send(key=n.case_id.encode(), value=stamped.to_json())
        self.counts["findings"] += len(findings)
        self.counts["case_events"] += len(out.events)
        self.counts["notifications"] += len(out.notifications)

    async def _deliver(self, stream: faust.StreamT) -> None:
        # The same ledger as ``enforce``'s: a notification the stream skipped is a person
        # never told. It is written per notification (the stream acknowledges each one).
        async for event in stream.events():
            message = event.message
            key = self._ledger_key(message.topic, message.partition)
            expected = next_offset_of(self.offsets_table.get(key))
            missing = missing_before(message.topic, message.partition, expected, message.offset)
            if missing is not None:
                for raw in await self._skipped("deliver", missing):
                    await self._deliver_one(raw)
                await self._release([missing])
            await self._deliver_one(event.value, message.timestamp)
            self.offsets_table[key] = next_offset_value(max(expected or 0, message.offset + 1))
            self._sweep(message.partition)

    def _sweep(self, partition: int) -> None:
        """Deletes the notification log's expired entries of ``partition``, at most every
        :data:`SWEEP_EVERY_SECONDS`. Called inside the deliver agent's stream: a delete there
        goes to the changelog partition of the current record, so only the keys of that
        partition (of the notification's case id) are deleted. (From a timer, outside the
        stream, Faust refuses to change this table; with the partitioner, a delete would hash
        the notification's key, not its case id, and land on the wrong changelog partition:
        the entry would come back at the next recovery.) A partition with no notifications is
        not swept, but does not grow either."""
        now = time.monotonic()
        last = self._swept_at.get(partition)
        if last is not None and now - last < SWEEP_EVERY_SECONDS:
            return
        self._swept_at[partition] = now
        swept = self.sent_log.sweep(sent_keys_of(partition, self.app.conf.topic_partitions))
        self.counts["notification_log_deleted"] += swept.deleted
        self.counts["notification_log_stamped"] += swept.stamped

    async def _deliver_one(self, raw: bytes, decided_at: float | None = None) -> None:
        """``decided_at``: when the worker that decided it sent it (the record's timestamp,
        seconds since the epoch), for the delay until it is handed to apprise."""
        try:
            note = Notification.model_validate_json(raw)
        except ValidationError as exc:
            log.warning("deliver: skipped a malformed notification: %s", exc)
            return
        if note.app and note.app != self.app_id:
            self.counts["notifications_of_other_apps"] += 1
            return
        self.counts["notifications_handed"] += 1
        if decided_at:
            self.notification_delays.append(max(0.0, time.time() - decided_at))
        report = await self.deliverer.deliver(note)
        self.counts["notifications_possible_repeats"] += len(report.possible_repeats)
        if report.records:
            await self.writer.write(delivery_lines(report.records), len(report.records))

    async def _tick_all(self) -> None:
        """Time passes for every site (deadlines, timeouts, offline devices). A tick is a
        message, not a table write from here: tables change only inside the agent."""
        now = self.clock.now()
        for site in self.catalogue.sites:
            tick = SiteTick(site=site, now=now)
            await self.ticks.send(key=site.encode(), value=tick.model_dump_json().encode())
