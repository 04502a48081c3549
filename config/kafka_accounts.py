"""Who may do what in Kafka: a principal per service, and the ACLs that bind it.

Kafka listens only with SASL/SCRAM-SHA-256, and its authorizer refuses whatever no ACL allows.
The plan below is the whole of it:

- ``ecowatch-ingest`` (the MQTT bridge, the HJ 212 server) is the only one that writes readings
  and device status; it reads the valve commands it relays to devices.
- ``ecowatch-worker`` (the Faust worker, with the case API in it) is the only one that writes
  valve commands, findings, case events, notifications and officers' actions: an action reaches
  Kafka only through the API, which checks the officer's token first.
- ``ecowatch-ops`` (the CLI's readers: dead letters, the demo's case feed, the bench's lag)
  reads and writes nothing else.
- ``ecowatch-admin`` is the broker's own and the stack's, to create topics and grant these.

A process signs in as ECOWATCH_KAFKA_USERNAME/ECOWATCH_KAFKA_PASSWORD when they are set (a
container is one service), otherwise as its role's principal from the accounts file (the local
stack writes ``<state>/kafka/accounts.json``, 0600).
"""

from __future__ import annotations

import asyncio
import enum
import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.protocol.admin import CreateAclsRequest, DescribeAclsRequest

from ecowatch import topics
from ecowatch.config.settings import Settings
from ecowatch.edges.files import read_json_object, write_private
from ecowatch.edges.kafka import KafkaAccess, _start, ensure_topics
from ecowatch.errors import ConfigError


class Role(enum.Enum):
    ADMIN = "ecowatch-admin"
    INGEST = "ecowatch-ingest"
    WORKER = "ecowatch-worker"
    OPS = "ecowatch-ops"

    @property
    def principal(self) -> str:
        return self.value


# What the worker's agents read. Notifications too: the deliver agent hands them to apprise.
WORKER_SOURCES = (
    topics.READINGS,
    topics.STATUS,
    topics.TICKS,
    topics.ACTIONS,
    topics.MARKS,
    topics.NOTIFICATIONS,
)
# The relay of valve commands to devices reads as a group of its own (ingest/mqtt/commands.py).
COMMAND_RELAY_GROUP = "ecowatch-command-relay"

# Kafka's ACL codes (org.apache.kafka.common.acl / resource).
_TOPIC, _GROUP = 2, 3
_LITERAL, _PREFIXED = 3, 4
_ALLOW = 3
_ANY = 1  # a filter's wildcard, for resource type, pattern, operation and permission


class Op(enum.IntEnum):
    ALL = 2
    READ = 3
    WRITE = 4
    CREATE = 5
    DESCRIBE = 8


@dataclass(frozen=True, order=True)
class Acl:
    principal: str
    resource: str  # "topic" or "group"
    name: str
    prefixed: bool
    op: Op

    def creation(self) -> tuple[int, str, int, str, str, int, int]:
        """The CreateAcls v1 entry: allow, from any host."""
        return (
            _TOPIC if self.resource == "topic" else _GROUP,
            self.name,
            _PREFIXED if self.prefixed else _LITERAL,
            f"User:{self.principal}",
            "*",
            int(self.op),
            _ALLOW,
        )


def _topic(role: Role, names: Iterable[str], *ops: Op) -> list[Acl]:
    return [Acl(role.principal, "topic", n, False, op) for n in names for op in ops]


def acl_plan(app_id: str) -> list[Acl]:
    """Every ACL of the platform. ``app_id`` is the worker's (ECOWATCH_APP_ID): its consumer
    group, and the prefix of its tables' changelogs; a worker whose id starts with it (tests,
    a second city) is covered too."""
    ingest, worker, ops = Role.INGEST, Role.WORKER, Role.OPS
    read, write, create, describe = Op.READ, Op.WRITE, Op.CREATE, Op.DESCRIBE
    ingest_writes = (topics.READINGS, topics.STATUS, topics.READINGS_DLQ)
    worker_reads = WORKER_SOURCES
    worker_writes = (
        topics.COMMANDS,
        topics.FINDINGS,
        topics.CASES,
        topics.NOTIFICATIONS,
        topics.TICKS,
        topics.ACTIONS,
        topics.MARKS,
        topics.ALARMS,
        topics.READINGS_DLQ,
    )
    plan = [
        *_topic(ingest, ingest_writes, write, describe, create),
        *_topic(ingest, [topics.COMMANDS], read, describe, create),
        Acl(ingest.principal, "group", COMMAND_RELAY_GROUP, False, read),
        *_topic(worker, worker_reads, read, describe, create),
        *_topic(worker, worker_writes, write, describe, create),
        # Its tables' changelogs and Faust's own topics, all named "<app id>-…".
        Acl(worker.principal, "topic", f"{app_id}-", True, Op.ALL),
        Acl(worker.principal, "group", app_id, True, read),
        Acl(worker.principal, "group", app_id, True, describe),
        # Reads every platform topic; describes the worker's group (its lag), nothing more.
        Acl(ops.principal, "topic", topics.TOPIC_PREFIX, True, read),
        Acl(ops.principal, "topic", topics.TOPIC_PREFIX, True, describe),
        Acl(ops.principal, "group", app_id, True, describe),
    ]
    return sorted(set(plan))


class _CreateAcls(CreateAclsRequest):
    """CreateAcls with many entries in one request (aiokafka's builder sends one)."""

    def __init__(self, acls: list[Acl]) -> None:
        self._acls = acls

    def build(self, request_struct_class):  # type: ignore[no-untyped-def,override]
        if request_struct_class.API_VERSION < 1:
            raise ConfigError("Kafka is too old for prefixed ACLs (CreateAcls v1, Kafka 2.0)")
        return request_struct_class([acl.creation() for acl in self._acls])


async def grant(admin: KafkaAccess, plan: list[Acl]) -> None:
    """Create the ACLs of ``plan`` (an ACL that exists already is left as it is)."""
    client = AIOKafkaAdminClient(**admin.client_options(), request_timeout_ms=15_000)
    await _start(client, admin)
    try:
        response = await client._send_request(_CreateAcls(plan))
        refused = [
            f"{acl}: {message or code}"
            for acl, (code, message) in zip(plan, response.creation_responses, strict=True)
            if code != 0
        ]
        if refused:
            raise ConfigError(f"Kafka refused ACLs: {'; '.join(refused)}")
        # The controller has them; the broker applies them a moment later. Until it has, a
        # client that starts now is refused: wait for the broker to show every one.
        wanted = {acl.creation() for acl in plan}
        for _ in range(100):
            if wanted <= await _described(client):
                return
            await asyncio.sleep(0.1)
        raise ConfigError(f"Kafka at {admin.bootstrap} did not apply the ACLs within 10 s")
    finally:
        await client.close()


async def _described(client: AIOKafkaAdminClient) -> set[tuple[int, str, int, str, str, int, int]]:
    """Every ACL the broker applies, as CreateAcls entries."""
    response = await client._send_request(
        DescribeAclsRequest(_ANY, None, _ANY, None, None, _ANY, _ANY)
    )
    return {
        (kind, name, pattern, principal, host, op, permission)
        for kind, name, pattern, acls in response.resources
        for principal, host, op, permission in acls
    }


async def set_up(admin: KafkaAccess, partitions: int, app_id: str) -> None:
    """As the admin: the platform's topics, then its principals' ACLs (both idempotent)."""
    await ensure_topics(admin, partitions, settle_existing=True)
    await grant(admin, acl_plan(app_id))


def new_accounts(path: Path) -> dict[str, str]:
    """A password for every principal, made once and kept (0600)."""
    accounts = read_accounts(path) if path.exists() else {}
    for role in Role:
        accounts.setdefault(role.principal, secrets.token_urlsafe(24))
    write_private(path, json.dumps(accounts, indent=1, sort_keys=True))
    return accounts


def read_accounts(path: Path) -> dict[str, str]:
    shape = "a JSON object of Kafka principal to password"
    data = read_json_object(
        path, shape, "no Kafka accounts file (`ecowatch stack up` makes one for the local stack)"
    )
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise ConfigError(f"{path}: expected {shape}")
    return data  # type: ignore[return-value]


def access_for(settings: Settings, role: Role) -> KafkaAccess:
    """How a process in ``role`` signs in to Kafka (see the module's notes)."""
    if settings.kafka_username:
        return KafkaAccess(
            settings.kafka_bootstrap,
            settings.kafka_username,
            settings.kafka_password.get_secret_value(),
        )
    path = settings.kafka_accounts_file
    if not path.exists():
        return KafkaAccess(settings.kafka_bootstrap)  # a Kafka without authentication
    accounts = read_accounts(path)
    if role.principal not in accounts:
        raise ConfigError(f"{path}: no password for the Kafka principal '{role.principal}'")
    return KafkaAccess(settings.kafka_bootstrap, role.principal, accounts[role.principal])
