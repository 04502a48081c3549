"""Kafka edges shared by the bridge, the worker and the tools: topics, a producer, a reader.

Every client connects with a ``KafkaAccess``: the address and the principal it signs in as
(SASL/SCRAM). Which principal may do what is in ``ecowatch.config.kafka_accounts``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    InvalidTopicError,
    KafkaConnectionError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordTooLargeError,
    TopicAuthorizationFailedError,
)

from ecowatch import topics
from ecowatch.edges.outage import port_open
from ecowatch.errors import ConfigError, ServiceDown

log = logging.getLogger(__name__)

SCRAM = "SCRAM-SHA-256"


@dataclass(frozen=True)
class KafkaAccess:
    """Where Kafka is and who signs in: a principal and its password (SCRAM-SHA-256), or
    nobody for a Kafka without authentication."""

    bootstrap: str
    username: str = ""
    password: str = field(default="", repr=False)

    @property
    def who(self) -> str:
        return f"{self.username}@{self.bootstrap}" if self.username else self.bootstrap

    def client_options(self) -> dict[str, Any]:
        """The aiokafka keyword arguments for this access."""
        if not self.username:
            return {"bootstrap_servers": self.bootstrap}
        return {
            "bootstrap_servers": self.bootstrap,
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": SCRAM,
            "sasl_plain_username": self.username,
            "sasl_plain_password": self.password,
        }


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
    client: AIOKafkaAdminClient | AIOKafkaProducer | AIOKafkaConsumer, access: KafkaAccess
) -> None:
    """Start a Kafka client, or say plainly that Kafka is not there or refused the principal."""
    try:
        await client.start()
    except (KafkaConnectionError, KafkaError, OSError) as exc:
        await client.close() if isinstance(client, AIOKafkaAdminClient) else await client.stop()
        text = str(exc).lower()
        if "authentication" in text or "sasl" in text:
            raise ConfigError(
                f"Kafka at {access.bootstrap} refused to sign in {access.username or 'anyone'}"
                f" ({exc}): check ECOWATCH_KAFKA_USERNAME/ECOWATCH_KAFKA_PASSWORD or the "
                "accounts file (ECOWATCH_KAFKA_ACCOUNTS)"
            ) from None
        if isinstance(exc, _REFUSALS):
            raise ConfigError(
                f"Kafka at {access.bootstrap} does not allow {access.username or 'anyone'} to do"
                f" this ({type(exc).__name__}): see the ACLs in config/kafka_accounts.py"
            ) from None
        if access.username and _answers(access.bootstrap):
            # A failed SCRAM exchange ends in a closed connection: the port answering says why.
            raise ConfigError(
                f"Kafka at {access.bootstrap} answers but did not let {access.username} in "
                "(a wrong password, or no such principal): check ECOWATCH_KAFKA_USERNAME/"
                "ECOWATCH_KAFKA_PASSWORD or the accounts file (ECOWATCH_KAFKA_ACCOUNTS)"
            ) from None
        hint = "" if access.username else " (no Kafka account is set: ECOWATCH_KAFKA_ACCOUNTS)"
        raise ServiceDown("Kafka", access.bootstrap, f"{exc}{hint}") from None


def _answers(bootstrap: str) -> bool:
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    return port.isdigit() and port_open(host, int(port))


_REFUSALS = (
    ClusterAuthorizationFailedError,
    TopicAuthorizationFailedError,
    GroupAuthorizationFailedError,
)


async def ensure_topics(
    access: KafkaAccess,
    partitions: int,
    names: tuple[str, ...] = topics.KAFKA_TOPICS,
    compacted: tuple[str, ...] = (),
    settle_existing: bool = False,
) -> None:
    """Create the source topics (Faust never creates the topics it reads) with their
    retention (``topics.topic_config``) and, ``compacted``, the tables' changelogs: created
    here, before the worker starts, because a changelog that Faust creates while its agent
    starts can be missing from the agent's metadata, which then crashes on a partition
    mismatch again and again.

    ``settle_existing`` (the admin's, ``kafka-setup``): topics made before, by an older
    version or by Kafka's defaults, get the same retention. Only the admin may change a
    topic's settings; the other principals create what is missing, never alter. Kafka's
    AlterConfigs sets a topic's whole configuration: a setting made on these topics by hand
    is reset (make it here instead)."""
    admin = AIOKafkaAdminClient(**access.client_options(), request_timeout_ms=10_000)
    await _start(admin, access)
    try:
        # Only the missing ones: a principal may use a topic it has no right to create.
        existing = set(await admin.list_topics())
        source = topics.topic_config()
        new = [
            NewTopic(name, num_partitions=partitions, replication_factor=1, topic_configs=source)
            for name in names
            if name not in existing
        ]
        new += [
            NewTopic(
                name,
                num_partitions=partitions,
                replication_factor=1,
                topic_configs=CHANGELOG_CONFIG,
            )
            for name in compacted
            if name not in existing
        ]
        if new:
            response = await admin.create_topics(new)
            for name, code, *_ in response.topic_errors:  # type: ignore[attr-defined]
                if code not in (0, _TOPIC_ALREADY_EXISTS):
                    raise RuntimeError(f"Kafka refused to create topic {name}: error code {code}")
        settle = [n for n in names if n in existing] if settle_existing else []
        if compacted:  # changelogs made by an older version get the same settings
            await _alter(admin, {n: CHANGELOG_CONFIG for n in compacted}, strict=False)
        if settle:
            await _alter(admin, {n: source for n in settle})
            log.info("topics: %s keep records %s", ", ".join(settle), source)
    finally:
        await admin.close()


async def _alter(
    admin: AIOKafkaAdminClient, configs: dict[str, dict[str, str]], strict: bool = True
) -> None:
    """Set topics' configurations; a topic Kafka refuses to change is an error (``strict``)
    or a warning."""
    responses = await admin.alter_configs(
        [ConfigResource(ConfigResourceType.TOPIC, n, c) for n, c in configs.items()]
    )
    refused = [
        f"{name}: {message or code}"
        for response in responses
        for code, message, _, name in response.resources  # type: ignore[attr-defined]
        if code != 0
    ]
    if refused and strict:
        raise RuntimeError(f"Kafka refused the topics' settings: {'; '.join(refused)}")
    if refused:
        log.warning("Kafka refused the topics' settings: %s", "; ".join(refused))


def _new_producer(access: KafkaAccess, client_id: str) -> AIOKafkaProducer:
    # acks=all + idempotence: a reading the bridge acknowledged to the device is in Kafka.
    return AIOKafkaProducer(
        **access.client_options(),
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        request_timeout_ms=15_000,
    )


# Errors that no new producer and no wait will cure: the record or the principal is refused.
# Everything else (a broker away, a leader moving, the idempotent producer's own sequence or
# epoch errors) is retried on a new producer until Kafka takes the record.
_REFUSED_RECORD = (
    *_REFUSALS,
    MessageSizeTooLargeError,
    InvalidTopicError,
    RecordTooLargeError,
)


@dataclass
class ProducerStats:
    """What a producer went through: shown in the stage's /health."""

    renewals: int = 0  # producers replaced after a failed delivery
    retried: int = 0  # records sent again on a new producer
    refused: int = 0  # records Kafka will never take (too large, not allowed)
    last_error: str = ""

    def as_dict(self) -> dict[str, object]:
        return {
            "renewals": self.renewals,
            "retried": self.retried,
            "refused": self.refused,
            "last_error": self.last_error,
        }


class Producer:
    """A Kafka producer that outlives its broker.

    aiokafka's idempotent producer gives up on a batch whose partition has no leader for
    ``request_timeout_ms`` (a broker stopped or restarting: ``drain_by_nodes`` expires it),
    after the batch may already have taken a sequence number. The next batch of that
    partition then carries a sequence the broker does not expect: ``OutOfOrderSequenceNumber``
    ends aiokafka's sender task, and from then on every send fails at once (the accumulator
    keeps the error). ``UnknownProducerId`` and ``InvalidProducerEpoch``/``ProducerFenced``
    (the broker lost or moved on from the producer's state) end the same way.

    So after any failed delivery this producer is replaced by a new one (a new producer id,
    sequences from 0), once per failure however many records failed with it, and each
    record that failed is sent again on the new one, with a growing wait while Kafka is away.
    The future that :meth:`send` returns completes only when Kafka has the record: a caller
    acknowledges its source (MQTT, an HJ 212 answer) on it, never before. A record Kafka
    wrote whose answer was lost is written twice; the worker's one-reading-per-(device,
    time) rule absorbs that. Records Kafka refuses for good (too large, not allowed) fail.
    """

    def __init__(
        self,
        access: KafkaAccess,
        client_id: str,
        *,
        backoff: tuple[float, float] = (0.2, 5.0),
        factory: Callable[[KafkaAccess, str], AIOKafkaProducer] = _new_producer,
    ) -> None:
        self._access, self._client_id = access, client_id
        self._factory = factory
        self._backoff = backoff
        self._producer: AIOKafkaProducer | None = None
        self._generation = 0
        self._healthy = asyncio.Event()
        self._renewing = asyncio.Lock()
        self._retries: set[asyncio.Task[None]] = set()
        self._retiring: set[asyncio.Task[None]] = set()
        self._stopped = False
        self.stats = ProducerStats()

    async def start(self) -> None:
        producer = self._factory(self._access, self._client_id)
        await _start(producer, self._access)
        self._producer = producer
        self._healthy.set()

    @property
    def generation(self) -> int:
        """How many producers were replaced: 0 until the first failure."""
        return self._generation

    async def partitions_for(self, topic: str) -> set[int]:
        await self._healthy.wait()
        assert self._producer is not None
        return await self._producer.partitions_for(topic)

    async def send(
        self,
        topic: str,
        value: bytes,
        *,
        key: bytes | None = None,
        partition: int | None = None,
    ) -> asyncio.Future[Any]:
        """Hand a record over; the returned future completes when Kafka has it."""
        landed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        record = (topic, value, key, partition)
        if not self._healthy.is_set():  # a new producer is on its way: no use for the old one
            await self._healthy.wait()
        generation = self._generation
        try:
            assert self._producer is not None
            delivery = await self._producer.send(topic, value, key=key, partition=partition)
        except Exception as exc:  # refused at once (the sender has died, no metadata): retry
            self._failed(landed, record, generation, exc)
            return landed
        delivery.add_done_callback(lambda done: self._delivered(done, landed, record, generation))
        return landed

    async def send_and_wait(
        self,
        topic: str,
        value: bytes,
        *,
        key: bytes | None = None,
        partition: int | None = None,
    ) -> Any:
        return await (await self.send(topic, value, key=key, partition=partition))

    def _delivered(
        self,
        delivery: asyncio.Future[Any],
        landed: asyncio.Future[Any],
        record: tuple[str, bytes, bytes | None, int | None],
        generation: int,
    ) -> None:
        if landed.done():
            return
        if delivery.cancelled():
            self._failed(landed, record, generation, asyncio.CancelledError())
        elif (exc := delivery.exception()) is not None:
            self._failed(landed, record, generation, exc)
        else:
            landed.set_result(delivery.result())

    def _failed(
        self,
        landed: asyncio.Future[Any],
        record: tuple[str, bytes, bytes | None, int | None],
        generation: int,
        exc: BaseException,
    ) -> None:
        self.stats.last_error = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, _REFUSED_RECORD) or self._stopped:
            self.stats.refused += isinstance(exc, _REFUSED_RECORD)
            if not landed.done():
                landed.set_exception(exc if isinstance(exc, Exception) else KafkaError(str(exc)))
            return
        task = asyncio.get_running_loop().create_task(self._send_again(landed, record, generation))
        self._retries.add(task)
        task.add_done_callback(self._retries.discard)

    async def _send_again(
        self,
        landed: asyncio.Future[Any],
        record: tuple[str, bytes, bytes | None, int | None],
        generation: int,
    ) -> None:
        topic, value, key, partition = record
        wait = self._backoff[0]
        while not landed.done():
            await self._renew(generation)
            generation = self._generation
            self.stats.retried += 1
            try:
                assert self._producer is not None
                delivery = await self._producer.send(topic, value, key=key, partition=partition)
                landed.set_result(await delivery)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
                if isinstance(exc, _REFUSED_RECORD):
                    self.stats.refused += 1
                    landed.set_exception(exc)
                    return
                await asyncio.sleep(wait)
                wait = min(wait * 2, self._backoff[1])

    async def _renew(self, failed_generation: int) -> None:
        """Replace the producer of ``failed_generation``, unless another failure already did.
        While Kafka is away this waits, trying again and again, until a producer starts."""
        async with self._renewing:
            if self._generation != failed_generation:
                return
            self._healthy.clear()
            old, self._producer = self._producer, None
            if old is not None:  # its sender may be dead or stuck: stopped aside, not awaited
                retire = asyncio.get_running_loop().create_task(_retire(old))
                self._retiring.add(retire)
                retire.add_done_callback(self._retiring.discard)
            wait = self._backoff[0]
            while True:
                producer = self._factory(self._access, self._client_id)
                try:
                    await _start(producer, self._access)
                    break
                except Exception as exc:  # away, or answering but not ready to sign in yet
                    self.stats.last_error = f"{type(exc).__name__}: {exc}"
                    await asyncio.sleep(wait)
                    wait = min(wait * 2, self._backoff[1])
            self._producer = producer
            self._generation += 1
            self.stats.renewals += 1
            self._healthy.set()
            log.warning(
                "Kafka producer %s replaced after a failed delivery (%s); records not "
                "acknowledged are sent again",
                self._client_id,
                self.stats.last_error,
                extra={"outage": "kafka"},
            )

    async def flush(self) -> None:
        """Until every record handed over so far is in Kafka (or refused)."""
        while self._retries:
            await asyncio.gather(*list(self._retries), return_exceptions=True)
        if self._producer is not None:
            await self._producer.flush()

    async def stop(self, timeout: float = 15.0) -> None:
        """Stop, flushing what is queued for at most ``timeout`` seconds (Kafka may be away)."""
        self._stopped = True
        for task in list(self._retries):
            task.cancel()
        await asyncio.gather(*self._retries, *self._retiring, return_exceptions=True)
        if self._producer is not None:  # its flush waits for a Kafka that may not come back
            await _retire(self._producer, timeout=timeout)


async def _retire(producer: AIOKafkaProducer, timeout: float = 30.0) -> None:
    with contextlib.suppress(Exception):
        async with asyncio.timeout(timeout):
            await producer.stop()


async def start_producer(access: KafkaAccess, client_id: str) -> Producer:
    """A producer whose every record reaches Kafka, across broker restarts (see Producer)."""
    producer = Producer(access, client_id)
    await producer.start()
    return producer


async def start_consumer(
    access: KafkaAccess,
    topic: str,
    group_id: str | None = None,
    auto_offset_reset: str = "earliest",
) -> AIOKafkaConsumer:
    """A consumer that commits by hand (after the work, never before), in a group if given."""
    consumer = AIOKafkaConsumer(
        topic,
        **access.client_options(),
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset=auto_offset_reset,
    )
    await _start(consumer, access)
    return consumer


async def read_topic(
    access: KafkaAccess, topic: str, *, idle_timeout: float = 2.0, from_beginning: bool = True
) -> AsyncIterator[tuple[bytes | None, bytes]]:
    """(key, value) of every message in a topic, until none arrives for ``idle_timeout`` seconds."""
    consumer = await start_consumer(
        access, topic, auto_offset_reset="earliest" if from_beginning else "latest"
    )
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


async def read_range(
    access: KafkaAccess, topic: str, partition: int, start: int, stop: int, timeout: float = 30.0
) -> list[bytes]:
    """The values of one partition's records at offsets [start, stop), in order; fewer when
    retention has removed the first of them. Read without a group: nothing is committed."""
    consumer = AIOKafkaConsumer(**access.client_options(), enable_auto_commit=False)
    await _start(consumer, access)
    tp = TopicPartition(topic, partition)
    values: list[bytes] = []
    try:
        consumer.assign([tp])
        first = (await consumer.beginning_offsets([tp]))[tp]
        consumer.seek(tp, max(start, first))
        async with asyncio.timeout(timeout):
            while await consumer.position(tp) < stop:
                fetched = await consumer.getmany(tp, timeout_ms=1000)
                values += [
                    r.value for r in fetched.get(tp, []) if r.offset < stop and r.value is not None
                ]
    finally:
        await consumer.stop()
    return values


async def group_lag(
    access: KafkaAccess,
    group_id: str,
    topic: str,
    weigh: Callable[[bytes], int] | None = None,
) -> int:
    """Records of ``topic`` that consumer group ``group_id`` has not committed yet (all of
    them for a group that never committed): what its next member will read first. With
    ``weigh``, what they hold instead: the records are read, and ``weigh`` says how much each
    one is (the readings of a batch)."""
    consumer = AIOKafkaConsumer(**access.client_options(), group_id=group_id)
    await _start(consumer, access)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            await consumer._client.force_metadata_update()  # a topic not in the cache yet
            partitions = consumer.partitions_for_topic(topic) or set()
        parts = [TopicPartition(topic, p) for p in sorted(partitions)]
        ends = await consumer.end_offsets(parts)
        starts = await consumer.beginning_offsets(parts)
        lag = 0
        behind: dict[TopicPartition, int] = {}
        for tp in parts:
            committed = await consumer.committed(tp)
            behind[tp] = committed if committed is not None else starts[tp]
            lag += ends[tp] - behind[tp]
        if weigh is None or lag == 0:
            return lag
        weight = 0
        for tp, start in behind.items():
            if start >= ends[tp]:
                continue
            consumer.assign([tp])  # read only: this consumer never commits
            consumer.seek(tp, start)
            while await consumer.position(tp) < ends[tp]:
                fetched = await consumer.getmany(tp, timeout_ms=1000)
                weight += sum(weigh(r.value) for r in fetched.get(tp, []) if r.offset < ends[tp])
        return weight
    finally:
        await consumer.stop()
