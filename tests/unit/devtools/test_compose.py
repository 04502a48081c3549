"""docker-compose.yml and the Dockerfile agree with the code: the settings they set exist, the
commands they run exist, the services they point at exist, and no secret is written down."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import click
import pytest
import yaml

from ecowatch.cli import cli
from ecowatch.config.kafka_accounts import Role
from ecowatch.config.settings import Settings
from ecowatch.devtools.stack.services import BRIDGE_USERS
from ecowatch.topics import BridgeSlice

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"

ECOWATCH_SERVICES = {
    "bridge": "bridge",
    "bridge-2": "bridge",
    "worker": "worker",
    "worker-2": "worker",
    "simulators": "simulate",
    "kafka-setup": "kafka-setup",
    "hj212": "hj212",
}
# Each service that talks to Kafka signs in as its own principal (config/kafka_accounts.py).
KAFKA_PRINCIPALS = {
    "bridge": Role.INGEST,
    "bridge-2": Role.INGEST,
    "worker": Role.WORKER,
    "worker-2": Role.WORKER,
    "kafka-setup": Role.ADMIN,
    "hj212": Role.INGEST,
}
BRIDGES = ("bridge", "bridge-2")
WORKERS = ("worker", "worker-2")
KAFKA_START = ROOT / "devtools" / "stack" / "kafka" / "compose-start.sh"
IMAGES = {
    "mosquitto": r"eclipse-mosquitto:2",
    "kafka": r"apache/kafka:3\.9\.\d+",
    "influxdb": r"influxdb:2\.7(\.\d+)?",
    "grafana": r"grafana/grafana(-oss)?(:[\w.-]+)?",
}
SETTING_NAMES = {f"ECOWATCH_{name.upper()}" for name in Settings.model_fields}
# ${NAME:?message}: compose stops with the message when NAME is unset or empty.
REQUIRED_REF = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*):\?[^}]+\}")
SECRET_KEY = re.compile(r"TOKEN|PASSWORD|SECRET", re.IGNORECASE)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict) -> dict:
    return compose["services"]


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # the `- NAME=value` form
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def command(service: dict) -> list[str]:
    cmd = service.get("command") or []
    return shlex.split(cmd) if isinstance(cmd, str) else [str(a) for a in cmd]


def depends_on(service: dict) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):  # the short form means service_started
        return dict.fromkeys(deps, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def test_every_service_is_there(services):
    expected = {"mosquitto", "kafka", "influxdb", "grafana", *ECOWATCH_SERVICES}
    assert expected <= services.keys(), f"missing: {sorted(expected - services.keys())}"


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_the_infrastructure_images(services, name):
    image = services[name].get("image", "")
    assert re.fullmatch(IMAGES[name], image), f"{name}: image {image!r}"


@pytest.mark.parametrize("name", sorted(ECOWATCH_SERVICES))
def test_ecowatch_services_are_built_from_the_dockerfile(services, name):
    build = services[name].get("build")
    assert build is not None, f"{name} is not built here"
    if isinstance(build, str):
        build = {"context": build}
    context = (ROOT / build.get("context", ".")).resolve()
    assert context == ROOT, f"{name}: build context {context}"
    assert (context / build.get("dockerfile", "Dockerfile")).resolve() == DOCKERFILE
    assert DOCKERFILE.is_file()


@pytest.mark.parametrize("name", sorted(ECOWATCH_SERVICES))
def test_ecowatch_services_point_at_the_compose_services(services, name):
    env = environment(services[name])
    missing = {
        "ECOWATCH_MQTT_URL",
        "ECOWATCH_KAFKA_BOOTSTRAP",
        "ECOWATCH_INFLUX_URL",
        "ECOWATCH_INFLUX_ORG",
        "ECOWATCH_INFLUX_BUCKET",
        "ECOWATCH_INFLUX_TOKEN",
    } - env.keys()
    assert not missing, f"{name} lacks {sorted(missing)}"

    mqtt = urlsplit(env["ECOWATCH_MQTT_URL"])
    assert (mqtt.scheme, mqtt.hostname, mqtt.port) == ("mqtt", "mosquitto", 1883)
    assert env["ECOWATCH_KAFKA_BOOTSTRAP"] == "kafka:9092"
    influx = urlsplit(env["ECOWATCH_INFLUX_URL"])
    assert (influx.scheme, influx.hostname, influx.port) == ("http", "influxdb", 8086)
    assert {"mosquitto", "kafka", "influxdb"} <= services.keys()

    # The org, bucket and token are the ones InfluxDB is set up with on its first start.
    influx_env = environment(services["influxdb"])
    assert env["ECOWATCH_INFLUX_ORG"] == influx_env["DOCKER_INFLUXDB_INIT_ORG"]
    assert env["ECOWATCH_INFLUX_BUCKET"] == influx_env["DOCKER_INFLUXDB_INIT_BUCKET"]
    token = REQUIRED_REF.fullmatch(env["ECOWATCH_INFLUX_TOKEN"])
    admin_token = REQUIRED_REF.fullmatch(influx_env["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"])
    assert token and admin_token and token["name"] == admin_token["name"]

    # The values pass the settings' own validation (URL schemes, host:port).
    settings = Settings(
        mqtt_url=env["ECOWATCH_MQTT_URL"],
        kafka_bootstrap=env["ECOWATCH_KAFKA_BOOTSTRAP"],
        influx_url=env["ECOWATCH_INFLUX_URL"],
    )
    assert (settings.kafka_host, settings.kafka_port) == ("kafka", 9092)


def test_each_bridge_logs_in_as_its_own_user_and_takes_its_own_slice(services):
    envs = [environment(services[name]) for name in BRIDGES]
    users = [env["ECOWATCH_MQTT_USERNAME"] for env in envs]
    # Mosquitto takes the user name as client id: one user each, or they push each other off.
    assert len(set(users)) == len(users) and set(users) <= set(BRIDGE_USERS)
    passwords = [REQUIRED_REF.fullmatch(env["ECOWATCH_MQTT_PASSWORD"]) for env in envs]
    assert all(passwords) and len({p["name"] for p in passwords}) == len(passwords)
    # The slices cover every site once: 1/n .. n/n.
    slices = [BridgeSlice.parse(env["ECOWATCH_BRIDGE_SLICE"]) for env in envs]
    assert sorted((s.index, s.count) for s in slices) == [(1, 2), (2, 2)]


def test_each_worker_serves_its_port_and_announces_where_it_is_found(services):
    for name in WORKERS:
        worker = services[name]
        env = environment(worker)
        port = env["ECOWATCH_WEB_PORT"]
        published = [str(p).split(":")[-1] for p in worker.get("ports", [])]
        assert port in [str(p) for p in worker.get("expose", [])] + published
        # The case API forwards a request for a site the other holds to this address.
        url = urlsplit(env["ECOWATCH_WEB_URL"])
        assert (url.scheme, url.hostname, str(url.port)) == ("http", name, port)
        Settings(web_host=env["ECOWATCH_WEB_HOST"], web_url=env["ECOWATCH_WEB_URL"])


def test_every_ecowatch_variable_is_a_setting(compose):
    used: set[str] = set()
    for service in compose["services"].values():
        used |= {k for k in environment(service) if k.startswith("ECOWATCH_")}
    used |= set(re.findall(r"\$\{(ECOWATCH_[A-Z0-9_]+)", COMPOSE.read_text()))
    assert "ECOWATCH_MQTT_URL" in used  # the scan found the settings at all
    unknown = used - SETTING_NAMES
    assert not unknown, f"not fields of Settings (renamed?): {sorted(unknown)}"


def test_no_secret_is_written_down(services):
    checked = set()
    for name, service in services.items():
        for key, value in environment(service).items():
            if SECRET_KEY.search(key):
                checked.add(key)
                if value.startswith("/run/ecowatch/"):
                    # A file of secrets (the HJ 212 PWs): the operator's, mounted read only.
                    mounts = {v.split(":")[1]: v for v in service.get("volumes", [])}
                    assert mounts.get(value, "").endswith(":ro"), f"{name}: {value} not mounted ro"
                    continue
                assert REQUIRED_REF.fullmatch(value), f"{name}: {key} is not a ${{VAR:?...}}"
    assert {
        "ECOWATCH_INFLUX_TOKEN",
        "ECOWATCH_MQTT_PASSWORD",
        "DOCKER_INFLUXDB_INIT_ADMIN_TOKEN",
        "DOCKER_INFLUXDB_INIT_PASSWORD",
    } <= checked


def test_references_to_the_environment_are_required(compose):
    # Any ${VAR} in the file must fail loudly when unset rather than become an empty secret.
    refs = re.findall(r"\$\{[^}]*\}", COMPOSE.read_text())
    assert refs
    loose = [r for r in refs if not REQUIRED_REF.fullmatch(r)]
    assert not loose, f"use ${{VAR:?message}}: {loose}"


@pytest.mark.parametrize(("name", "subcommand"), sorted(ECOWATCH_SERVICES.items()))
def test_commands_are_cli_subcommands(services, name, subcommand):
    args = command(services[name])
    assert args and args[0] == subcommand, f"{name}: command {args}"
    assert args[0] in cli.commands, f"{name}: `ecowatch {args[0]}` does not exist"
    # The options parse: an unknown or mistyped one raises.
    sub = cli.commands[args[0]]
    try:
        sub.make_context(sub.name, args[1:])
    except click.UsageError as exc:
        pytest.fail(f"{name}: ecowatch {' '.join(args)}: {exc}")


def test_health_checked_dependencies_are_waited_for(services):
    waits = 0
    for name, service in services.items():
        for dep, condition in depends_on(service).items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            if "healthcheck" in services[dep]:
                assert condition == "service_healthy", f"{name} → {dep}: {condition}"
                waits += 1
    assert waits >= 4  # bridge→kafka, worker→kafka, worker→influxdb, grafana→influxdb


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = (line.strip() for line in text.splitlines())
    return [
        (parts[0].upper(), parts[1] if len(parts) > 1 else "")
        for parts in (line.split(None, 1) for line in lines if line and not line.startswith("#"))
    ]


def test_the_dockerfile_copies_every_package_folder():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    folders = set(pyproject["tool"]["setuptools"]["package-dir"].values())
    assert folders, "pyproject.toml names no package folders"
    copied: set[str] = set()
    for instruction, args in dockerfile_instructions():
        if instruction in {"COPY", "ADD"}:
            words = [w for w in args.split() if not w.startswith("--")]
            copied |= {src.rstrip("/").removeprefix("./") for src in words[:-1]}
    assert "pyproject.toml" in copied
    missing = folders - copied
    assert not missing, f"the Dockerfile does not copy {sorted(missing)}"
    for folder in folders:
        assert (ROOT / folder).is_dir(), f"package-dir {folder} does not exist"


def test_the_dockerfile_runs_the_ecowatch_script_as_a_user():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    instructions = dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.11-slim")
    entrypoint = [args for instruction, args in instructions if instruction == "ENTRYPOINT"]
    assert entrypoint and yaml.safe_load(entrypoint[-1]) == ["ecowatch"]
    assert "ecowatch" in pyproject["project"]["scripts"]
    users = [args.split(":")[0] for instruction, args in instructions if instruction == "USER"]
    assert users and users[-1] not in {"root", "0"}


@pytest.mark.parametrize(("name", "role"), sorted(KAFKA_PRINCIPALS.items()))
def test_each_service_signs_in_to_kafka_as_its_own_principal(services, name, role):
    env = environment(services[name])
    assert env["ECOWATCH_KAFKA_USERNAME"] == role.principal
    password = REQUIRED_REF.fullmatch(env["ECOWATCH_KAFKA_PASSWORD"])
    assert password, f"{name}: the Kafka password is not a ${{VAR:?...}}"
    # ... the password the Kafka container formats that principal's account with.
    kafka = environment(services["kafka"])
    variable = f"KAFKA_{role.name}_PASSWORD"
    assert REQUIRED_REF.fullmatch(kafka[variable])["name"] == password["name"] == variable
    assert f'scram {role.principal} "${variable}"' in KAFKA_START.read_text()


def test_kafka_has_an_account_for_every_principal_and_no_listener_without_one(services):
    kafka = services["kafka"]
    assert kafka["entrypoint"][-1] == "/ecowatch/kafka-start.sh"
    mounted = {v.split(":")[1]: v.split(":")[0] for v in kafka["volumes"]}
    assert (ROOT / mounted["/ecowatch/kafka-start.sh"]).resolve() == KAFKA_START
    text = KAFKA_START.read_text()
    assert all(f"scram {role.principal} " in text for role in Role)
    env = environment(kafka)
    protocols = dict(p.split(":") for p in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    assert set(protocols.values()) == {"SASL_PLAINTEXT"}
    assert env["KAFKA_ALLOW_EVERYONE_IF_NO_ACL_FOUND"] == "false"
    assert env["KAFKA_SUPER_USERS"] == f"User:{Role.ADMIN.principal}"


GRAFANA_DIR = ROOT / "grafana"


def test_grafana_mounts_the_provisioning_and_the_dashboards(services):
    grafana = services["grafana"]
    mounts = {}
    for volume in grafana["volumes"]:
        source, target, *mode = str(volume).split(":")
        mounts[target] = (source, mode)
    for sub in ("datasources", "dashboards"):
        source, mode = mounts[f"/etc/grafana/provisioning/{sub}"]
        assert (ROOT / source).resolve() == GRAFANA_DIR / "provisioning" / sub
        assert mode == ["ro"]
    # The folder the dashboards provider reads is where the repository's dashboards are.
    providers = yaml.safe_load((GRAFANA_DIR / "provisioning/dashboards/ecowatch.yaml").read_text())
    path = providers["providers"][0]["options"]["path"]
    source, mode = mounts[path]
    assert (ROOT / source).resolve() == GRAFANA_DIR / "dashboards" and mode == ["ro"]
    assert list((GRAFANA_DIR / "dashboards").glob("*.json"))


def test_grafanas_data_source_is_the_compose_influxdb(services):
    datasource_file = GRAFANA_DIR / "provisioning" / "datasources" / "influxdb.yaml"
    (source,) = yaml.safe_load(datasource_file.read_text())["datasources"]
    env = environment(services["grafana"])

    def resolved(value: str) -> str:
        # Grafana replaces ${VAR} in provisioning files from its environment.
        name = re.fullmatch(r"\$\{(\w+)\}", value)
        assert name and name[1] in env, f"{value} is not set in grafana's environment"
        return env[name[1]]

    influx = urlsplit(resolved(source["url"]))
    assert (influx.scheme, influx.hostname, influx.port) == ("http", "influxdb", 8086)
    influx_env = environment(services["influxdb"])
    assert resolved(source["jsonData"]["organization"]) == influx_env["DOCKER_INFLUXDB_INIT_ORG"]
    assert (
        resolved(source["jsonData"]["defaultBucket"]) == influx_env["DOCKER_INFLUXDB_INIT_BUCKET"]
    )
    token = REQUIRED_REF.fullmatch(resolved(source["secureJsonData"]["token"]))
    admin_token = REQUIRED_REF.fullmatch(influx_env["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"])
    assert token and admin_token and token["name"] == admin_token["name"]
