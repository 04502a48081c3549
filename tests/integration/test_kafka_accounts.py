"""Kafka on the real stack signs everyone in and lets each principal do only its part: a local
process that is not the platform's cannot write valve commands or officers' actions."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError

from ecowatch import topics
from ecowatch.config.kafka_accounts import Role, access_for
from ecowatch.config.settings import Settings
from ecowatch.edges.kafka import KafkaAccess, ensure_topics, read_topic, start_producer
from ecowatch.errors import ConfigError, EcowatchError
from ecowatch.schema import DeadLetter, ReadingSource, RejectReason


async def write(access: KafkaAccess, topic: str, value: bytes = b"{}") -> str:
    """'written', or why not."""
    try:
        producer = await start_producer(access, "test-acl")
    except EcowatchError as exc:
        return f"refused at sign-in: {exc}"
    try:
        await asyncio.wait_for(producer.send_and_wait(topic, value, key=b"S-X"), 20)
        return "written"
    except KafkaError as exc:
        return f"refused: {type(exc).__name__}"
    finally:
        await producer.stop()


@pytest.mark.parametrize(
    ("role", "topic", "allowed"),
    [
        (Role.INGEST, topics.READINGS, True),
        (Role.INGEST, topics.COMMANDS, False),
        (Role.INGEST, topics.ACTIONS, False),
        (Role.INGEST, topics.CASES, False),
        (Role.WORKER, topics.COMMANDS, True),
        (Role.WORKER, topics.ACTIONS, True),
        (Role.WORKER, topics.READINGS, False),
        (Role.OPS, topics.ACTIONS, False),
        (Role.OPS, topics.READINGS, False),
    ],
)
def test_each_principal_writes_only_its_topics(settings: Settings, role, topic, allowed):
    outcome = asyncio.run(write(access_for(settings, role), topic))
    assert (outcome == "written") is allowed, outcome


def test_kafka_refuses_a_client_that_does_not_sign_in(settings: Settings):
    outcome = asyncio.run(write(KafkaAccess(settings.kafka_bootstrap), topics.COMMANDS))
    assert outcome.startswith("refused at sign-in"), outcome


def test_kafka_refuses_a_wrong_password_and_says_so(settings: Settings):
    forged = KafkaAccess(settings.kafka_bootstrap, Role.WORKER.principal, "guessed")
    with pytest.raises(ConfigError, match="did not let ecowatch-worker in"):
        asyncio.run(start_producer(forged, "test-acl"))


def test_ops_reads_what_the_platform_wrote(settings: Settings):
    letter = DeadLetter.of(
        source=ReadingSource.MQTT,
        origin="test_kafka_accounts",
        reason=RejectReason.BAD_JSON,
        detail="written by ingest for ops to read",
        payload=b"{",
        received_at=datetime.now(UTC),
    )
    asyncio.run(write(access_for(settings, Role.INGEST), topics.READINGS_DLQ, letter.to_json()))

    async def first() -> bytes | None:
        async for _, value in read_topic(
            access_for(settings, Role.OPS), topics.READINGS_DLQ, idle_timeout=2
        ):
            return value
        return None

    assert asyncio.run(first()) is not None


def test_the_secrets_of_kafka_are_private(settings: Settings):
    kafka = settings.state_dir / "kafka"
    for name in ("accounts.json", "server.properties"):
        assert (kafka / name).stat().st_mode & 0o777 == 0o600, name


async def topic_config(admin: KafkaAccess, name: str) -> dict[str, str]:
    client = AIOKafkaAdminClient(**admin.client_options())
    await client.start()
    try:
        (response,) = await client.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name)]
        )
        ((*_, entries),) = response.resources
        return {entry[0]: entry[1] for entry in entries}
    finally:
        await client.close()


def test_the_platforms_topics_keep_records_as_topics_py_says(settings: Settings):
    """Made with the retention, and a topic made before (Kafka's defaults) gets it from the
    admin's set-up (``kafka-setup``); any other principal leaves an existing topic alone."""
    admin = access_for(settings, Role.ADMIN)
    wanted = topics.topic_config()
    made = asyncio.run(topic_config(admin, topics.NOTIFICATIONS))
    assert {k: made[k] for k in wanted} == wanted

    # A name the worker may see and change (its app id's), so that it leaves the topic as it
    # is because it is told to, not because Kafka would refuse it.
    older = f"{settings.app_id}-test-retention-{datetime.now(UTC):%Y%m%d%H%M%S%f}"

    async def plain_then_settled() -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
        client = AIOKafkaAdminClient(**admin.client_options())
        await client.start()
        try:
            await client.create_topics([NewTopic(older, 1, 1)])
        finally:
            await client.close()
        before = await topic_config(admin, older)
        await ensure_topics(access_for(settings, Role.WORKER), 1, (older,))
        untouched = await topic_config(admin, older)
        await ensure_topics(admin, 1, (older,), settle_existing=True)
        return before, untouched, await topic_config(admin, older)

    before, untouched, after = asyncio.run(plain_then_settled())
    # The broker's defaults: the stack's retention is 168 h too, but a segment is 7 days.
    assert before["segment.ms"] != wanted["segment.ms"]
    assert untouched["segment.ms"] == before["segment.ms"]
    assert {k: after[k] for k in wanted} == wanted
