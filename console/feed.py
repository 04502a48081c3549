"""The console's Kafka edge: the platform's topics, read as the read-only ops principal, into
the pure :class:`~ecowatch.console.core.City`.

What describes the present from its history (device status, findings, case events and their
notifications) is read from the start of the topics, so a console started late knows every
open case and its trail; readings and dead letters only from now on (the map fills within a
reporting interval, and the pulse is about now).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer
from pydantic import ValidationError

from ecowatch import topics
from ecowatch.console.core import City
from ecowatch.edges.kafka import KafkaAccess, _start
from ecowatch.schema import (
    AlarmSilenced,
    CaseEvent,
    DeadLetter,
    DeviceStatus,
    Finding,
    Notification,
    Reading,
    ReadingBatch,
)

log = logging.getLogger(__name__)

HISTORY = (topics.STATUS, topics.FINDINGS, topics.CASES, topics.NOTIFICATIONS, topics.ALARMS)
LIVE = (topics.READINGS, topics.READINGS_DLQ)
RETRY_S = 5.0


def apply(city: City, topic: str, value: bytes, wall: float) -> None:
    """One record into the city; one that does not parse is skipped (the worker dead-letters
    what it cannot read; the console only watches)."""
    try:
        if topic == topics.READINGS and ReadingBatch.is_batch(value):
            for reading in ReadingBatch.model_validate_json(value).readings:
                city.on_reading(reading, wall)
        elif topic == topics.READINGS:
            city.on_reading(Reading.model_validate_json(value), wall)
        elif topic == topics.READINGS_DLQ:
            city.on_dead_letter(DeadLetter.model_validate_json(value), wall)
        elif topic == topics.STATUS:
            city.on_status(DeviceStatus.model_validate_json(value))
        elif topic == topics.FINDINGS:
            city.on_finding(Finding.model_validate_json(value))
        elif topic == topics.CASES:
            city.on_case_event(CaseEvent.model_validate_json(value))
        elif topic == topics.NOTIFICATIONS:
            city.on_notification(Notification.model_validate_json(value))
        elif topic == topics.ALARMS:
            city.on_silence(AlarmSilenced.model_validate_json(value))
    except (ValidationError, ValueError) as exc:
        log.debug("console: skipped a record of %s: %s", topic, exc)


async def follow(
    city: City,
    access: KafkaAccess,
    names: tuple[str, ...],
    offset_reset: str,
    stop: asyncio.Event,
    on_ready: Callable[[], None] = lambda: None,
) -> None:
    """Feed ``names`` into the city until ``stop``; reconnects after an outage, from the start
    again for history (the city takes a repeat as the same state)."""
    while not stop.is_set():
        consumer = AIOKafkaConsumer(
            *names,
            **access.client_options(),
            group_id=None,  # no group: the ops principal reads, commits nothing
            auto_offset_reset=offset_reset,
            enable_auto_commit=False,
        )
        try:
            await _start(consumer, access)
        except Exception as exc:
            log.warning("console: Kafka feed %s not started (%s); retrying", names, exc)
            await _sleep_or_stop(stop, RETRY_S)
            continue
        on_ready()
        try:
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=200, max_records=2000)
                wall = time.monotonic()
                for tp, records in batches.items():
                    for record in records:
                        if record.value is not None:
                            apply(city, tp.topic, record.value, wall)
        except Exception as exc:
            log.warning("console: Kafka feed %s broke (%s); reconnecting", names, exc)
            await _sleep_or_stop(stop, RETRY_S)
        finally:
            await consumer.stop()


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
