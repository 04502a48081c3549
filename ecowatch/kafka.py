"""Kafka edges shared by the bridge, the worker and the tools: topics, a producer, a reader."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaConnectionError, KafkaError

from ecowatch import topics
from ecowatch.errors import ServiceDown

log = logging.getLogger(__name__)

# kafka error code 36: TOPIC_ALREADY_EXISTS, the normal answer on every start but the first.
_TOPIC_ALREADY_EXISTS = 36
# A changelog is compacted only in closed segments; with Kafka's defaults (a week, 1 GiB) it
# never is, and a worker (memory store) reads every record ever written back at its start.
CHANGELOG_CONFIG = {
    "cleanup.policy": "compact",
    "segment.ms": str(10 * 60 * 1000),
    "min.cleanable.dirty.ratio": "0.1",
}


async def _start(
    client: AIOKafkaAdminClient | AIOKafkaProducer | AIOKafkaConsumer, bootstrap: str
) -> None:
    """Start a Kafka client, or say plainly that Kafka is not there."""
    try:
        await client.start()
    except (KafkaConnectionError, KafkaError, OSError) as exc:
        await client.close() if isinstance(client, AIOKafkaAdminClient) else await client.stop()
        raise ServiceDown("Kafka", bootstrap, str(exc)) from None


async def ensure_topics(
    bootstrap: str,
    partitions: int,
    names: tuple[str, ...] = topics.KAFKA_TOPICS,
    compacted: tuple[str, ...] = (),
) -> None:
    """Create the source topics (Faust never creates the topics it reads) and, ``compacted``,
    the tables' changelogs: created here, before the worker starts, because a changelog that
    Faust creates while its agent starts can be missing from the agent's metadata, which then
    crashes on a partition mismatch again and again."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await _start(admin, bootstrap)
    try:
        new = [NewTopic(name, num_partitions=partitions, replication_factor=1) for name in names]
        new += [
            NewTopic(
                name,
                num_partitions=partitions,
                replication_factor=1,
                topic_configs=CHANGELOG_CONFIG,
            )
            for name in compacted
        ]
        response = await admin.create_topics(new)
        for name, code, *_ in response.topic_errors:  # type: ignore[attr-defined]
            if code not in (0, _TOPIC_ALREADY_EXISTS):
                raise RuntimeError(f"Kafka refused to create topic {name}: error code {code}")
        if compacted:  # changelogs made by an older version get the same settings
            await admin.alter_configs(
                [ConfigResource(ConfigResourceType.TOPIC, n, CHANGELOG_CONFIG) for n in compacted]
            )
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
    await _start(producer, bootstrap)
    return producer


async def start_consumer(bootstrap: str, topic: str, group_id: str) -> AIOKafkaConsumer:
    """A consumer in a group that commits by hand: after the work, never before."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await _start(consumer, bootstrap)
    return consumer


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
    await _start(consumer, bootstrap)
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


async def group_lag(bootstrap: str, group_id: str, topic: str) -> int:
    """Records of ``topic`` that consumer group ``group_id`` has not committed yet (all of
    them for a group that never committed): what its next member will read first."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group_id)
    await _start(consumer, bootstrap)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            await consumer._client.force_metadata_update()  # a topic not in the cache yet
            partitions = consumer.partitions_for_topic(topic) or set()
        parts = [TopicPartition(topic, p) for p in sorted(partitions)]
        ends = await consumer.end_offsets(parts)
        starts = await consumer.beginning_offsets(parts)
        lag = 0
        for tp in parts:
            committed = await consumer.committed(tp)
            lag += ends[tp] - (committed if committed is not None else starts[tp])
        return lag
    finally:
        await consumer.stop()
