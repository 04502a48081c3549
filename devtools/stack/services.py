"""The real local stack: Mosquitto, Kafka (KRaft) and InfluxDB 2.7 on 127.0.0.1, without Docker.

Every service has the same shape: ``install`` (slow, cached outside the work tree), ``start``
(idempotent, waits for health with a time-out), ``stop`` (only the process it started),
``status``. Data, configs, pid files and logs live under one state folder:

    <state>/stack.env                  secrets generated here (InfluxDB token, bridge password)
    <state>/mosquitto/                 mosquitto.conf, passwd, acl, credentials.json, data/, log
    <state>/kafka/                     server.properties, accounts.json (its principals), data/, log
    <state>/influxdb/                  bolt, engine, sqlite, log
"""

from __future__ import annotations

import asyncio
import base64
import getpass
import json
import os
import re
import secrets
import shutil
import subprocess
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

from ecowatch.config.catalogue import Catalogue
from ecowatch.config.kafka_accounts import Role, new_accounts, read_accounts, set_up
from ecowatch.config.settings import Settings
from ecowatch.devtools.stack.process import ManagedProcess, Progress, wait_until
from ecowatch.edges.files import private_dir, write_private
from ecowatch.edges.kafka import SCRAM, KafkaAccess
from ecowatch.edges.outage import port_open
from ecowatch.errors import EcowatchError
from ecowatch.topics import MQTT_PREFIX

HERE = Path(__file__).parent
KAFKA_VERSION = "3.9.2"
INFLUX_VERSION = "v2.7.12"
BRIDGE_USER = "ecowatch-bridge"
# The MQTT users of further bridge instances (ECOWATCH_MQTT_USERNAME + ECOWATCH_BRIDGE_SLICE):
# the broker takes the user as the client id, so each instance has its own session.
BRIDGE_USERS = (BRIDGE_USER, *(f"ecowatch-bridge-{i}" for i in range(2, 5)))
# Larger MQTT packets are refused by the broker itself (the connection is closed); the bridge
# dead-letters what is over its own, smaller limit, so a device learns why.
MQTT_MAX_PACKET_BYTES = 256 * 1024


# Arguments that carry a password (Kafka's --add-scram) are shown without it.
_PASSWORD = re.compile(r"(password=)[^,\]\s]+")


class StackError(EcowatchError):
    """A service could not be installed or started: says which, why (its log), and what to do."""


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    up: bool
    address: str
    version: str
    pid: int | None

    def line(self) -> str:
        state = "up" if self.up else "down"
        pid = f" pid {self.pid}" if self.pid else ""
        return f"{self.name:<10} {state:<5} {self.address:<28} {self.version}{pid}"


def _run(
    argv: list[str], what: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> str:
    try:
        done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise StackError(f"{what}: '{argv[0]}' is not installed") from None
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-25:])
        shown = " ".join(_PASSWORD.sub(r"\1***", arg) for arg in argv)
        raise StackError(f"{what} failed (exit {done.returncode}): {shown}\n{tail}")
    return done.stdout


def apt_install(packages: list[str], service: str, progress: Progress) -> None:
    """Install Debian packages; a clear error where that is not possible (not root, no apt)."""
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        raise StackError(
            f"{service} needs the Debian packages {' '.join(packages)}: install them "
            f"(sudo apt-get install {' '.join(packages)}), then run the command again"
        )
    progress.step(service, f"installing Debian packages: {' '.join(packages)} (apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    _run(["apt-get", "update", "-qq"], "apt-get update", env=env)
    _run(["apt-get", "install", "-y", "-qq", *packages], "apt-get install", env=env)


def _require_free(service: str, host: str, port: int, variable: str) -> None:
    if port_open(host, port):
        raise StackError(
            f"{service}: port {host}:{port} is already taken by a process this stack did not "
            f"start. Stop it, or choose another port with {variable}."
        )


def write_env_file(state: Path, values: dict[str, str]) -> None:
    """Merge ``values`` into ``<state>/stack.env`` (mode 0600): the generated secrets."""
    path = state / "stack.env"
    current: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            if "=" in line and not line.startswith("#"):
                k, v = line.split("=", 1)
                current[k] = v
    current.update(values)
    body = "# Written by `ecowatch stack up`: secrets of the local stack. Not for git.\n"
    body += "".join(f"{k}={v}\n" for k, v in sorted(current.items()))
    write_private(path, body)


# -- Mosquitto ---------------------------------------------------------------------------------


class Mosquitto:
    name = "mosquitto"

    def __init__(self, settings: Settings, catalogue: Catalogue) -> None:
        self.settings = settings
        self.catalogue = catalogue
        self.dir = settings.state_dir / "mosquitto"
        self.proc = ManagedProcess(
            self.name, self.dir / "mosquitto.pid", self.dir / "mosquitto.log", str(self.dir)
        )

    @property
    def address(self) -> str:
        return f"mqtt://{self.settings.mqtt_host}:{self.settings.mqtt_port}"

    @staticmethod
    def binary() -> str | None:
        return shutil.which("mosquitto") or (
            "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
        )

    def installed(self) -> bool:
        return self.binary() is not None and shutil.which("mosquitto_passwd") is not None

    def install(self, progress: Progress) -> None:
        if self.installed():
            return
        apt_install(["mosquitto", "mosquitto-clients"], self.name, progress)
        # Debian's package starts a system-wide broker on 1883; the stack runs its own.
        for stop in (
            ["systemctl", "disable", "--now", "mosquitto"],
            ["service", "mosquitto", "stop"],
        ):
            subprocess.run(stop, capture_output=True, check=False)

    def version(self) -> str:
        binary = self.binary()
        if binary is None:
            return "not installed"
        out = subprocess.run([binary, "-h"], capture_output=True, text=True, check=False)
        m = re.search(r"mosquitto version (\S+)", out.stdout + out.stderr)
        return f"mosquitto {m.group(1)}" if m else "mosquitto"

    def credentials(self) -> dict[str, str]:
        """User → password for the bridge and every device of the catalogue, made once, kept."""
        path = self.dir / "credentials.json"
        users: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
        wanted = [*BRIDGE_USERS, *self.catalogue.devices]
        for user in wanted:
            users.setdefault(user, secrets.token_urlsafe(18))
        write_private(path, json.dumps(users, indent=1, sort_keys=True))
        return users

    def _acl(self) -> str:
        # Each device publishes only under its own topic and reads only its own commands;
        # the bridge reads everything and writes commands.
        lines = []
        for bridge in BRIDGE_USERS:
            lines += [
                f"user {bridge}",
                f"topic read {MQTT_PREFIX}/#",
                f"topic write {MQTT_PREFIX}/+/+/command",
                "",
            ]
        for device_id, entry in sorted(self.catalogue.devices.items()):
            base = f"{MQTT_PREFIX}/{entry.site.id}/{device_id}"
            lines += [
                f"user {device_id}",
                f"topic write {base}/reading",
                f"topic readwrite {base}/status",
                f"topic read {base}/command",
                "",
            ]
        return "\n".join(lines)

    def configure(self) -> dict[str, str]:
        users = self.credentials()
        private_dir(self.dir / "data")
        passwd = write_private(
            self.dir / "passwd", "".join(f"{u}:{p}\n" for u, p in sorted(users.items()))
        )
        _run(["mosquitto_passwd", "-U", str(passwd)], "hashing the Mosquitto password file")
        (self.dir / "acl").write_text(self._acl())
        # Connections the broker takes: 2 x the catalogue's devices + the bridges' users + 64.
        # Each device holds one, and a device that reconnects (a link that dropped, a simulator
        # or a test publishing as it) briefly holds two: the broker counts a connection when it
        # accepts it, before the new one takes the old one's client id. The platform's own
        # clients are the bridges (the command relay shares their connection); 64 more for the
        # tools (bench, drill, mosquitto_sub) and the clients that try and are refused. Past it,
        # a flood of connections is closed at once instead of exhausting the broker's files.
        max_connections = 2 * len(self.catalogue.devices) + len(BRIDGE_USERS) + 64
        (self.dir / "mosquitto.conf").write_text(
            "\n".join(
                [
                    "# Written by `ecowatch stack up`; edits are overwritten.",
                    "per_listener_settings false",
                    f"listener {self.settings.mqtt_port} {self.settings.mqtt_host}",
                    f"max_connections {max_connections}",
                    "protocol mqtt",
                    "allow_anonymous false",
                    # A client's id is its user name: a device cannot take another's id (and
                    # fire its last will) or the bridge's (and its session).
                    "use_username_as_clientid true",
                    f"max_packet_size {MQTT_MAX_PACKET_BYTES}",
                    f"password_file {passwd}",
                    f"acl_file {self.dir / 'acl'}",
                    # Mosquitto started as root drops to user 'mosquitto', who cannot read
                    # the 0600 password file; keep the user that runs the stack.
                    f"user {getpass.getuser()}",
                    "persistence true",
                    f"persistence_location {self.dir / 'data'}/",
                    # Saved every second, not once a minute: a broker killed (-9) loses what
                    # it acknowledged since its last save, the bridge's queue. (Saving on
                    # every change instead rewrote a 10 MB queue many times a second, a
                    # quarter of a core, and still lost the last ~0.05 s.)
                    "autosave_interval 1",
                    # The bridge acknowledges after Kafka does: allow many messages in flight,
                    # and queue plenty for a bridge that is briefly away.
                    "max_inflight_messages 1000",
                    "max_queued_messages 200000",
                    "log_dest stdout",
                    "log_type error",
                    "log_type warning",
                    "log_type notice",
                    "log_timestamp_format %Y-%m-%dT%H:%M:%S",
                    "",
                ]
            )
        )
        return users

    def start(self, progress: Progress) -> dict[str, str]:
        users = self.configure()
        if self.proc.pid() is not None:
            # Reload password file and ACL for devices added to the catalogue since.
            os.kill(self.proc.pid() or 0, 1)
            return {"ECOWATCH_MQTT_PASSWORD": users[BRIDGE_USER]}
        host, port = self.settings.mqtt_host, self.settings.mqtt_port
        _require_free(self.name, host, port, "ECOWATCH_MQTT_URL")
        progress.step(self.name, f"starting on {self.address}")
        binary = self.binary()
        assert binary is not None
        self.proc.spawn([binary, "-c", str(self.dir / "mosquitto.conf")])
        if not wait_until(lambda: port_open(host, port), 15, self.proc.starting):
            raise StackError(
                f"Mosquitto did not start on {self.address}. Its log ({self.proc.log_file}):\n"
                f"{self.proc.log_tail()}\nFix the cause above, then run `ecowatch stack up` again."
            )
        return {"ECOWATCH_MQTT_PASSWORD": users[BRIDGE_USER]}

    def stop(self) -> bool:
        return self.proc.stop()

    def status(self) -> ServiceStatus:
        pid = self.proc.pid()
        up = pid is not None and port_open(self.settings.mqtt_host, self.settings.mqtt_port)
        return ServiceStatus(self.name, up, self.address, self.version(), pid)


# -- Kafka -------------------------------------------------------------------------------------


def _cluster_id() -> str:
    """A KRaft cluster id (a UUID in URL-safe base64). Not one that starts with '-', which
    StorageTool would take for an option (it failed one start in a few dozen); Kafka's own
    Uuid.randomUuid avoids those too."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


class Kafka:
    name = "kafka"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.dir = settings.state_dir / "kafka"
        self.libs = settings.cache_dir / "kafka" / KAFKA_VERSION / "libs"
        self.proc = ManagedProcess(
            self.name, self.dir / "kafka.pid", self.dir / "kafka.log", str(self.dir)
        )

    @property
    def address(self) -> str:
        return self.settings.kafka_bootstrap

    @property
    def controller_port(self) -> int:
        return self.settings.kafka_port + 1

    def installed(self) -> bool:
        return (self.libs / f"kafka_2.13-{KAFKA_VERSION}.jar").exists()

    def install(self, progress: Progress) -> None:
        if self.installed():
            return
        for tool in ("java", "mvn"):
            if shutil.which(tool) is None:
                raise StackError(f"Kafka needs '{tool}' (Java 17 and Maven) to assemble the broker")
        progress.step(self.name, f"assembling Kafka {KAFKA_VERSION} from Maven Central (mvn)")
        tmp = self.libs.with_name("libs.partial")
        shutil.rmtree(tmp, ignore_errors=True)
        _run(
            [
                "mvn",
                "-q",
                "-B",
                "-f",
                str(HERE / "kafka" / "pom.xml"),
                f"-Dkafka.version={KAFKA_VERSION}",
                "dependency:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={tmp}",
            ],
            "assembling the Kafka broker with Maven",
        )
        shutil.rmtree(self.libs, ignore_errors=True)
        tmp.rename(self.libs)

    def version(self) -> str:
        return f"kafka {KAFKA_VERSION} (KRaft)" if self.installed() else "not installed"

    def _java(self, main: str, *args: str, extra: list[str] | None = None) -> list[str]:
        return [
            "java",
            *(extra or []),
            f"-Dlog4j.configuration=file:{self.dir / 'log4j.properties'}",
            f"-Dkafka.logs.dir={self.dir / 'logs'}",
            "-cp",
            f"{self.libs}/*",
            main,
            *args,
        ]

    @property
    def accounts_file(self) -> Path:
        return self.settings.kafka_accounts_file

    def admin_access(self) -> KafkaAccess:
        accounts = read_accounts(self.accounts_file)
        admin = Role.ADMIN.principal
        return KafkaAccess(self.settings.kafka_bootstrap, admin, accounts[admin])

    def configure(self) -> None:
        host, port = self.settings.kafka_host, self.settings.kafka_port
        private_dir(self.dir / "data")
        formatted = (self.dir / "data" / "meta.properties").exists()
        if formatted and not self.accounts_file.exists():
            raise StackError(
                f"Kafka's data in {self.dir / 'data'} was made by an ecowatch without Kafka "
                "accounts, and SCRAM accounts can only be added when Kafka's storage is "
                "formatted. Remove that Kafka's data (`ecowatch stack down`, then delete "
                f"{self.dir}) and run `ecowatch stack up` again."
            )
        accounts = new_accounts(self.accounts_file)
        admin, secret = Role.ADMIN.principal, accounts[Role.ADMIN.principal]
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule"
        plain = "org.apache.kafka.common.security.plain.PlainLoginModule"
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{host}:{self.controller_port}",
            "listeners": f"CLIENT://{host}:{port},CONTROLLER://{host}:{self.controller_port}",
            "advertised.listeners": f"CLIENT://{host}:{port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "CLIENT",
            # No listener without a password: clients sign in with SCRAM; the controller's
            # own port with PLAIN (SCRAM accounts live in the metadata the controller serves,
            # so it cannot use them itself), known only to the broker.
            "listener.security.protocol.map": "CONTROLLER:SASL_PLAINTEXT,CLIENT:SASL_PLAINTEXT",
            "sasl.enabled.mechanisms": SCRAM,
            "sasl.mechanism.inter.broker.protocol": SCRAM,
            f"listener.name.client.{SCRAM.lower()}.sasl.jaas.config": (
                f'{scram} required username="{admin}" password="{secret}";'
            ),
            "sasl.mechanism.controller.protocol": "PLAIN",
            "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
            "listener.name.controller.plain.sasl.jaas.config": (
                f'{plain} required username="{admin}" password="{secret}" user_{admin}="{secret}";'
            ),
            # What no ACL allows is refused (config/kafka_accounts.py holds the ACLs).
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": f"User:{admin}",
            "allow.everyone.if.no.acl.found": "false",
            "log.dirs": str(self.dir / "data"),
            "num.partitions": str(self.settings.kafka_partitions),
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "8",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "log.retention.hours": "168",
        }
        # It holds the admin's password: 0600 from the start.
        properties = "".join(f"{k}={v}\n" for k, v in props.items())
        write_private(self.dir / "server.properties", properties)
        (self.dir / "log4j.properties").write_text(
            "log4j.rootLogger=WARN, stdout\n"
            "log4j.logger.kafka.server.KafkaServer=INFO\n"
            "log4j.logger.kafka.server.KafkaRaftServer=INFO\n"
            "log4j.appender.stdout=org.apache.log4j.ConsoleAppender\n"
            "log4j.appender.stdout.layout=org.apache.log4j.PatternLayout\n"
            "log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
        )
        if not formatted:
            # SCRAM accounts can be made only here, in the storage's first metadata (KIP-900).
            cluster_id = _cluster_id()
            scram_args = [
                arg
                for user, password in sorted(accounts.items())
                for arg in ("--add-scram", f"{SCRAM}=[name={user},password={password}]")
            ]
            _run(
                self._java(
                    "kafka.tools.StorageTool",
                    "format",
                    "-t",
                    cluster_id,
                    "-c",
                    str(self.dir / "server.properties"),
                    "--ignore-formatted",
                    *scram_args,
                ),
                "formatting Kafka's KRaft storage",
            )

    def _ready(self) -> bool:
        # The broker accepts connections a moment before it serves metadata; ask for it.
        return port_open(self.settings.kafka_host, self.settings.kafka_port) and (
            "Kafka Server started" in self.proc.log_since_spawn()
        )

    def start(self, progress: Progress) -> dict[str, str]:
        if self.proc.pid() is not None:
            self.grant(progress)  # ACLs of a newer ecowatch, or of another app id
            return {}
        if not self.installed():
            raise StackError("Kafka is not installed: run `ecowatch stack install`")
        host, port = self.settings.kafka_host, self.settings.kafka_port
        _require_free(self.name, host, port, "ECOWATCH_KAFKA_BOOTSTRAP")
        _require_free(self.name, host, self.controller_port, "ECOWATCH_KAFKA_BOOTSTRAP (port + 1)")
        self.configure()
        progress.step(
            self.name, f"starting on {self.address} (controller on port {self.controller_port})"
        )
        self.proc.spawn(
            self._java(
                "kafka.Kafka",
                str(self.dir / "server.properties"),
                extra=["-Xms256m", "-Xmx1g", "-XX:+UseG1GC", "-Djava.awt.headless=true"],
            )
        )
        if not wait_until(self._ready, 90, self.proc.starting):
            raise StackError(
                f"Kafka did not start on {self.address}. Its log ({self.proc.log_file}):\n"
                f"{self.proc.log_tail()}\n"
                "Fix the cause above (a stale data folder can be removed with "
                "`ecowatch stack down --wipe`), then run `ecowatch stack up` again."
            )
        self.grant(progress)
        return {}

    def grant(self, progress: Progress) -> None:
        """The platform's topics and ACLs, as the admin (both idempotent: every start)."""
        progress.step(self.name, "topics and ACLs for ecowatch-ingest, -worker and -ops")
        settings = self.settings
        asyncio.run(set_up(self.admin_access(), settings.kafka_partitions, settings.app_id))

    def stop(self) -> bool:
        return self.proc.stop(timeout=30)

    def status(self) -> ServiceStatus:
        pid = self.proc.pid()
        up = pid is not None and port_open(self.settings.kafka_host, self.settings.kafka_port)
        return ServiceStatus(self.name, up, self.address, self.version(), pid)


# -- InfluxDB ----------------------------------------------------------------------------------


class InfluxDB:
    name = "influxdb"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.dir = settings.state_dir / "influxdb"
        self.binary = settings.cache_dir / "influxdb" / INFLUX_VERSION / "influxd"
        self.proc = ManagedProcess(
            self.name, self.dir / "influxd.pid", self.dir / "influxd.log", str(self.dir)
        )

    @property
    def address(self) -> str:
        return self.settings.influx_url

    def installed(self) -> bool:
        return self.binary.exists()

    def install(self, progress: Progress) -> None:
        if self.installed():
            return
        for tool in ("go", "cargo"):
            if shutil.which(tool) is None:
                raise StackError(f"building InfluxDB needs '{tool}' (Go and Rust's cargo)")
        if shutil.which("pkg-config") is None:
            apt_install(["pkg-config"], self.name, progress)
        progress.step(
            self.name,
            f"building InfluxDB OSS {INFLUX_VERSION} from source (Go + libflux in Rust); "
            "2 to 5 minutes on 2 cores, once: cached in " + str(self.binary.parent),
        )
        env = {
            **os.environ,
            "ECOWATCH_CACHE": str(self.settings.cache_dir),
            "INFLUX_VERSION": INFLUX_VERSION,
        }
        log = self.settings.cache_dir / "influxdb" / "build.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "w") as out:
            proc = subprocess.Popen(
                ["bash", str(HERE / "scripts" / "build-influxdb.sh")],
                env=env,
                stdout=subprocess.PIPE,
                stderr=out,
                text=True,
            )
            assert proc.stdout is not None
            for line in proc.stdout:  # the script's own step lines
                progress.step(self.name, line.strip())
            code = proc.wait()
        if code != 0 or not self.installed():
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
            raise StackError(f"building InfluxDB failed (exit {code}); full log: {log}\n{tail}")

    def version(self) -> str:
        if not self.installed():
            return "not installed"
        out = subprocess.run(
            [str(self.binary), "version"], capture_output=True, text=True, check=False
        )
        m = re.search(r"InfluxDB (v\S+)", out.stdout)
        return f"influxdb {m.group(1) if m else INFLUX_VERSION}"

    def _get(self, path: str) -> tuple[int, dict]:
        try:
            with urllib.request.urlopen(self.address + path, timeout=2) as resp:
                return resp.status, json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            return exc.code, {}
        except (OSError, ValueError):
            return 0, {}

    def healthy(self) -> bool:
        code, body = self._get("/health")
        return code == 200 and body.get("status") == "pass"

    def _onboard(self, progress: Progress) -> dict[str, str]:
        _, body = self._get("/api/v2/setup")
        if not body.get("allowed"):
            token = self.settings.influx_token.get_secret_value()
            if not token:
                raise StackError(
                    f"InfluxDB at {self.address} is already set up, but no token is known: set "
                    "ECOWATCH_INFLUX_TOKEN, or wipe the local data: `ecowatch stack down --wipe`"
                )
            return {}
        progress.step(
            self.name,
            f"onboarding: org '{self.settings.influx_org}', bucket '{self.settings.influx_bucket}'",
        )
        token = secrets.token_urlsafe(32)
        request = urllib.request.Request(
            self.address + "/api/v2/setup",
            method="POST",
            headers={"Content-Type": "application/json"},
            data=json.dumps(
                {
                    "username": "ecowatch",
                    "password": secrets.token_urlsafe(18),
                    "org": self.settings.influx_org,
                    "bucket": self.settings.influx_bucket,
                    "token": token,
                }
            ).encode(),
        )
        with urllib.request.urlopen(request, timeout=10) as resp:
            if resp.status != 201:
                raise StackError(f"InfluxDB onboarding answered {resp.status}")
        return {"ECOWATCH_INFLUX_TOKEN": token}

    def start(self, progress: Progress) -> dict[str, str]:
        if self.proc.pid() is None:
            if not self.installed():
                raise StackError("InfluxDB is not built: run `ecowatch stack install`")
            host, port = self.settings.influx_host, self.settings.influx_port
            _require_free(self.name, host, port, "ECOWATCH_INFLUX_URL")
            private_dir(self.dir)
            progress.step(self.name, f"starting on {self.address}")
            self.proc.spawn(
                [
                    str(self.binary),
                    f"--bolt-path={self.dir / 'influxd.bolt'}",
                    f"--engine-path={self.dir / 'engine'}",
                    f"--sqlite-path={self.dir / 'influxd.sqlite'}",
                    f"--http-bind-address={host}:{port}",
                    "--reporting-disabled",
                    "--log-level=warn",
                ]
            )
            if not wait_until(self.healthy, 60, self.proc.starting):
                raise StackError(
                    f"InfluxDB did not become healthy on {self.address}. Its log "
                    f"({self.proc.log_file}):\n{self.proc.log_tail()}\n"
                    "Fix the cause above, then run `ecowatch stack up` again."
                )
        return self._onboard(progress)

    def stop(self) -> bool:
        return self.proc.stop()

    def status(self) -> ServiceStatus:
        pid = self.proc.pid()
        return ServiceStatus(
            self.name, pid is not None and self.healthy(), self.address, self.version(), pid
        )


# -- HJ 212 ------------------------------------------------------------------------------------


def hj212_passwords(settings: Settings, catalogue: Catalogue) -> dict[str, str]:
    """MN → HJ 212 PW for every device of the catalogue, made once, kept (0600) beside the
    devices' MQTT passwords: what `ecowatch hj212 serve` checks and the simulators send."""
    from ecowatch.ingest.hj212 import new_password

    path = settings.state_dir / "mosquitto" / "hj212_passwords.json"
    known: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    for mn in catalogue.devices:
        known.setdefault(mn, new_password())
    write_private(path, json.dumps(known, indent=1, sort_keys=True))
    return known


def hj212_sm4_keys(settings: Settings, catalogue: Catalogue) -> dict[str, str]:
    """MN → SM4 key (32 hex digits) for every device of the catalogue, made once, kept (0600)
    beside its PW: HJ 212-2025 devices on the Internet encrypt their CP with it."""
    path = settings.state_dir / "mosquitto" / "hj212_sm4_keys.json"
    known: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    for mn in catalogue.devices:
        known.setdefault(mn, secrets.token_hex(16))
    write_private(path, json.dumps(known, indent=1, sort_keys=True))
    return known


# -- the stack ---------------------------------------------------------------------------------


class Stack:
    def __init__(self, settings: Settings, catalogue: Catalogue) -> None:
        self.settings = settings
        self.mosquitto = Mosquitto(settings, catalogue)
        self.kafka = Kafka(settings)
        self.influxdb = InfluxDB(settings)
        self.services = (self.mosquitto, self.kafka, self.influxdb)

    def install(self, progress: Progress) -> None:
        for service in self.services:
            service.install(progress)

    def up(self, progress: Progress) -> dict[str, str]:
        """Install what is missing, start what is down; returns the secrets it generated."""
        self.install(progress)
        private_dir(self.settings.state_dir)
        hj212_passwords(self.settings, self.mosquitto.catalogue)
        hj212_sm4_keys(self.settings, self.mosquitto.catalogue)
        generated: dict[str, str] = {}
        for service in self.services:
            generated |= service.start(progress)
        if generated:
            write_env_file(self.settings.state_dir, generated)
        return generated

    def down(self, wipe: bool = False) -> list[str]:
        stopped = [s.name for s in reversed(self.services) if s.stop()]
        if wipe:
            for service in self.services:
                shutil.rmtree(service.dir, ignore_errors=True)
            (self.settings.state_dir / "stack.env").unlink(missing_ok=True)
        return stopped

    def status(self) -> list[ServiceStatus]:
        return [s.status() for s in self.services]
