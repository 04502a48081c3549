"""The Kafka ACL plan says what the issue asks: only ingest writes readings, only the worker
writes commands, case events and actions; and each process signs in as its own principal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ecowatch import topics
from ecowatch.config.kafka_accounts import Acl, Op, Role, access_for, acl_plan, new_accounts
from ecowatch.config.settings import Settings
from ecowatch.errors import ConfigError

PLAN = acl_plan("ecowatch")


def writers(topic: str) -> set[str]:
    """The principals some ACL lets write ``topic``."""

    def covers(acl: Acl) -> bool:
        named = topic.startswith(acl.name) if acl.prefixed else topic == acl.name
        return acl.resource == "topic" and named and acl.op in (Op.WRITE, Op.ALL)

    return {acl.principal for acl in PLAN if covers(acl)}


@pytest.mark.parametrize(
    ("topic", "only"),
    [
        (topics.READINGS, Role.INGEST),
        (topics.STATUS, Role.INGEST),
        (topics.COMMANDS, Role.WORKER),
        (topics.CASES, Role.WORKER),
        (topics.FINDINGS, Role.WORKER),
        (topics.NOTIFICATIONS, Role.WORKER),
        (topics.ACTIONS, Role.WORKER),
        ("ecowatch-site-cases-changelog", Role.WORKER),
    ],
)
def test_each_topic_has_one_writer(topic, only):
    assert writers(topic) == {only.principal}


def test_dead_letters_come_from_ingest_and_the_worker_only():
    assert writers(topics.READINGS_DLQ) == {Role.INGEST.principal, Role.WORKER.principal}


def test_ops_reads_and_never_writes():
    ops = [acl for acl in PLAN if acl.principal == Role.OPS.principal]
    assert ops and {acl.op for acl in ops} <= {Op.READ, Op.DESCRIBE}


def test_the_admin_needs_no_acl_and_every_acl_names_a_role():
    principals = {acl.principal for acl in PLAN}
    assert principals == {Role.INGEST.principal, Role.WORKER.principal, Role.OPS.principal}


def test_the_worker_owns_topics_of_its_app_id_only():
    plan = acl_plan("zj")
    owned = [a for a in plan if a.op is Op.ALL]
    assert [(a.resource, a.name, a.prefixed) for a in owned] == [("topic", "zj-", True)]


def settings(tmp_path: Path, **values: object) -> Settings:
    return Settings(state_dir=tmp_path, **values)  # type: ignore[arg-type]


def test_a_process_signs_in_as_its_role_from_the_accounts_file(tmp_path):
    accounts = new_accounts(tmp_path / "kafka" / "accounts.json")
    assert (tmp_path / "kafka" / "accounts.json").stat().st_mode & 0o777 == 0o600
    access = access_for(settings(tmp_path), Role.INGEST)
    assert (access.username, access.password) == ("ecowatch-ingest", accounts["ecowatch-ingest"])
    assert access.client_options()["security_protocol"] == "SASL_PLAINTEXT"
    assert accounts["ecowatch-ingest"] not in repr(access)


def test_accounts_are_made_once_and_kept(tmp_path):
    path = tmp_path / "accounts.json"
    assert new_accounts(path) == new_accounts(path)


def test_a_username_in_the_settings_wins(tmp_path):
    new_accounts(tmp_path / "kafka" / "accounts.json")
    chosen = settings(tmp_path, kafka_username="city-worker", kafka_password="s3cret")
    access = access_for(chosen, Role.WORKER)
    assert (access.username, access.password) == ("city-worker", "s3cret")
    assert "s3cret" not in repr(chosen)


def test_a_missing_principal_names_the_file(tmp_path):
    path = tmp_path / "kafka" / "accounts.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"ecowatch-admin": "x"}))
    with pytest.raises(ConfigError, match=r"accounts\.json.*ecowatch-ops"):
        access_for(settings(tmp_path), Role.OPS)


def test_without_accounts_kafka_is_reached_without_signing_in(tmp_path):
    access = access_for(settings(tmp_path, kafka_bootstrap="127.0.0.1:9092"), Role.OPS)
    assert access.client_options() == {"bootstrap_servers": "127.0.0.1:9092"}
