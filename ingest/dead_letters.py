"""The one dead-letter sender: a message that was not accepted, to ``ecowatch.readings.dlq``.

Every stage that refuses input (the MQTT bridge, the HJ 212 server, the command relay, the
worker) sends its dead letters through a :class:`DeadLetters`: it makes the
:class:`~ecowatch.schema.DeadLetter` from the raw bytes, sends it keyed by its origin, logs
one line (never the payload) and counts it by reason.

The acknowledgement rule, the same for all: a dead letter is evidence as a reading is.
:meth:`DeadLetters.send` hands the letter to Kafka and returns the future of Kafka's
acknowledgement, and never raises (nothing a message holds may stop a stage):

- the future completes once Kafka has the letter: counted in ``dead_lettered``;
- it fails with :class:`DeadLetterLost` once Kafka will not take it (refused, the producer
  stopped, the letter could not even be made) or :meth:`DeadLetters.flush` gave up waiting:
  counted in ``dead_letters_lost`` and logged.

Whoever acknowledges the message the letter stands for (an MQTT ack, an HJ 212 answer, a
Kafka offset commit) does so only once the future has completed; when it failed, the message
is left unacknowledged and its source gives it again where it can (Mosquitto redelivers, a
device resends an unanswered upload, the relay reads again from its last commit).
:meth:`DeadLetters.deliver` is that wait in one call. A stage that stops calls
:meth:`DeadLetters.flush` before it stops its producer.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from ecowatch import topics
from ecowatch.clock import Clock
from ecowatch.ingest.contract import DeadLetterBudget
from ecowatch.schema import DeadLetter, ReadingSource, RejectReason

log = logging.getLogger(__name__)


class LetterProducer(Protocol):
    """What sends the letters: ``ecowatch.edges.kafka.Producer``, or the worker's Faust adapter.
    ``send`` hands a record over and returns the future of Kafka's acknowledgement."""

    async def send(
        self, topic: str, value: bytes, *, key: bytes | None = None
    ) -> asyncio.Future[Any]: ...


class DeadLetterLost(Exception):
    """Kafka did not take a dead letter: the message it stands for is not to be acknowledged."""


@dataclass
class DeadLetterCounts:
    """What became of a stage's dead letters, shown in its /health (the field names are read
    by the demo, the console and the tests)."""

    taken: Counter[str] = field(default_factory=Counter)  # in Kafka, by reason
    # Past their device's budget: counted by reason, not kept.
    suppressed: Counter[str] = field(default_factory=Counter)
    lost: int = 0  # Kafka did not take them (logged)

    @property
    def total(self) -> int:
        return sum(self.taken.values())

    def as_dict(self) -> dict[str, object]:
        return {
            "dead_lettered": self.total,
            "dead_lettered_by_reason": dict(sorted(self.taken.items())),
            "suppressed_by_reason": dict(sorted(self.suppressed.items())),
            "dead_letters_lost": self.lost,
        }


class DeadLetters:
    """One stage's dead letters, from ``source`` (see the module's acknowledgement rule).

    ``budget``: how many letters one device may cause (:meth:`over_budget`); ``level``: the
    level of each letter's log line (INFO for what devices send, which is expected noise)."""

    def __init__(
        self,
        producer: LetterProducer,
        *,
        source: ReadingSource,
        clock: Clock,
        budget: DeadLetterBudget | None = None,
        level: int = logging.INFO,
    ) -> None:
        self._producer = producer
        self._source = source
        self._clock = clock
        self.budget = budget if budget is not None else DeadLetterBudget()
        self._level = level
        self.counts = DeadLetterCounts()
        # Handed to Kafka, not yet taken or lost: what flush waits for.
        self._in_flight: set[asyncio.Future[None]] = set()

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def over_budget(self, device: str, reason: RejectReason, now: float) -> bool:
        """Whether ``device`` is past its dead-letter budget (``now``: monotonic seconds): then
        this letter is counted as suppressed and is not to be sent, and its message may be
        acknowledged at once."""
        if self.budget.allow(device, now):
            return False
        self.counts.suppressed[reason.value] += 1
        return True

    def letter(
        self,
        payload: bytes,
        reason: RejectReason,
        detail: str,
        *,
        origin: str,
        received_at: datetime | None = None,
    ) -> DeadLetter:
        """The record of a message that was not accepted (its payload kept, bounded)."""
        return DeadLetter.of(
            source=self._source,
            origin=origin,
            reason=reason,
            detail=detail,
            payload=payload,
            received_at=received_at or self._clock.now(),
        )

    async def send(
        self,
        payload: bytes,
        reason: RejectReason,
        detail: str,
        *,
        origin: str,
        key: str | None = None,
        received_at: datetime | None = None,
    ) -> asyncio.Future[None]:
        """Hand a dead letter to Kafka, keyed by ``key`` (by default its origin). Never raises:
        the future says whether Kafka took it (module docstring)."""
        letter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        try:
            record = self.letter(payload, reason, detail, origin=origin, received_at=received_at)
            delivery = await self._producer.send(
                topics.READINGS_DLQ,
                record.to_json(),
                key=(key or origin).encode("utf-8", "backslashreplace"),
            )
        except Exception as exc:  # not even queued: refused at once, or a bug of ours
            self._lose(letter, reason, origin, exc)
            return letter
        log.log(
            self._level,
            "dead-lettered a %s message from %s: %s (%.200s)",
            self._source.value,
            origin,
            reason.value,
            detail,
        )
        self._in_flight.add(letter)
        delivery.add_done_callback(lambda done: self._landed(done, letter, reason, origin))
        return letter

    async def deliver(
        self,
        payload: bytes,
        reason: RejectReason,
        detail: str,
        *,
        origin: str,
        key: str | None = None,
    ) -> None:
        """:meth:`send`, returning once Kafka has the letter; raises :class:`DeadLetterLost` if
        it did not take it."""
        await (await self.send(payload, reason, detail, origin=origin, key=key))

    async def flush(self, timeout: float) -> None:
        """Wait until Kafka has taken (or refused) every letter handed over so far; those it has
        not answered within ``timeout`` seconds are written off as lost."""
        pending = set(self._in_flight)
        if not pending:
            return
        log.info("waiting for Kafka to take %d dead letter(s)", len(pending))
        await asyncio.wait(pending, timeout=timeout)
        late = [f for f in pending if not f.done()]
        for letter in late:  # Kafka's answer may still come: _landed then counts nothing
            self._write_off(letter, DeadLetterLost(f"not taken within {timeout:g} s"))
        if late:
            log.error(
                "Kafka did not take %d dead letter(s) within %g s of the stop", len(late), timeout
            )

    def _landed(
        self,
        delivery: asyncio.Future[Any],
        letter: asyncio.Future[None],
        reason: RejectReason,
        origin: str,
    ) -> None:
        error = delivery.exception() if not delivery.cancelled() else asyncio.CancelledError()
        if letter.done():
            return  # written off by a flush that could not wait longer: counted there
        if error is None:
            self._in_flight.discard(letter)
            self.counts.taken[reason.value] += 1
            letter.set_result(None)
        else:
            self._lose(letter, reason, origin, error)

    def _lose(
        self, letter: asyncio.Future[None], reason: RejectReason, origin: str, error: BaseException
    ) -> None:
        # Tagged: during a Kafka outage this folds into its one line (ecowatch.edges.outage).
        log.error(
            "the dead letter of a %s message from %s (%s) was lost: %r",
            self._source.value,
            origin,
            reason.value,
            error,
            extra={"outage": "kafka"},
        )
        self._write_off(letter, DeadLetterLost(f"{type(error).__name__}: {error}"))

    def _write_off(self, letter: asyncio.Future[None], error: DeadLetterLost) -> None:
        self._in_flight.discard(letter)
        self.counts.lost += 1
        letter.set_exception(error)
        # Marked as seen: a caller need not await its letter (the loss is counted and logged),
        # and asyncio would otherwise report the exception as never retrieved.
        letter.exception()
