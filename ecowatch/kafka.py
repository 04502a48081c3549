"""Kafka edges shared by the bridge, the worker and the tools: topics, a producer, a reader."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError

from ecowatch import topics
from ecowatch.errors import ServiceDown

log = logging.getLogger(__name__)

# kafka error code 36: TOPIC_ALREADY_EXISTS, the normal answer on every start but the first.
_TOPIC_ALREADY_EXISTS = 36


async def ensure_topics(
    bootstrap: str, partitions: int, names: tuple[str, ...] = topics.KAFKA_TOPICS
) -> None:
    """Create the source topics. Faust creates its own changelogs, never the topics it reads."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    try:
        await admin.start()
    except (KafkaConnectionError, KafkaError, OSError) as exc:
        raise ServiceDown("Kafka", bootstrap, str(exc)) from None
    try:
        response = await admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1) for name in names]
        )
        for name, code, *_ in response.topic_errors:  # type: ignore[attr-defined]
            if code not in (0, _TOPIC_ALREADY_EXISTS):
                raise RuntimeError(f"Kafka refused to create topic {name}: error code {code}")
    finally:
        await admin.close()


async def start_producer(bootstrap: str, client_id: str) -> AIOKafkaProducer:
    # acks=all + idempotence: a reading the bridge acknowledged to the device is in Kafka.
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        request_timeout_ms=15_000,
    )
    try:
        await producer.start()
    except (KafkaConnectionError, KafkaError, OSError) as exc:
        await producer.stop()
        raise ServiceDown("Kafka", bootstrap, str(exc)) from None
    return producer


async def end_offsets(bootstrap: str, topic: str) -> int:
    """How many messages a topic has ever received (the sum of its partitions' end offsets)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        await consumer.start()
    except (KafkaConnectionError, KafkaError, OSError) as exc:
        await consumer.stop()
        raise ServiceDown("Kafka", bootstrap, str(exc)) from None
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        if not parts:
            await consumer.topics()  # refresh metadata once
            parts = consumer.partitions_for_topic(topic) or set()
        offsets = await consumer.end_offsets([TopicPartition(topic, p) for p in parts])
        return sum(offsets.values())
    finally:
        await consumer.stop()


async def read_topic(
    bootstrap: str, topic: str, *, idle_timeout: float = 2.0, from_beginning: bool = True
) -> AsyncIterator[tuple[bytes | None, bytes]]:
    """(key, value) of every message in a topic, until none arrives for ``idle_timeout`` seconds."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest" if from_beginning else "latest",
    )
    try:
        await consumer.start()
    except (KafkaConnectionError, KafkaError, OSError) as exc:
        await consumer.stop()
        raise ServiceDown("Kafka", bootstrap, str(exc)) from None
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=int(idle_timeout * 1000))
            if not batches:
                return
            for records in batches.values():
                for record in records:
                    yield record.key, record.value
            await asyncio.sleep(0)
    finally:
        await consumer.stop()
