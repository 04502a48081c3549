"""Settings from the environment (prefix ``ECOWATCH_``).

Defaults point at the local stack on 127.0.0.1. ``ecowatch stack up`` writes the secrets it
generates (the InfluxDB token, the bridge's MQTT password) to ``<state>/stack.env``; that file
is read after the environment, so an exported variable always wins and nothing secret ever
lives in the repository.
"""

from __future__ import annotations

import os
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ecowatch.clock import Clock, configured_clock
from ecowatch.edges.files import read_json_object
from ecowatch.errors import ConfigError
from ecowatch.topics import BridgeSlice

# The demo city: what `ecowatch demo`, the dev tools and the tests name. Never a default: a
# deployment that forgot ECOWATCH_CATALOGUE would watch a fictional city without a word.
DEMO_CATALOGUE = Path(__file__).parent / "catalogue"


def default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "ecowatch"


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ecowatch"


def _state_env_file() -> Path:
    state = os.environ.get("ECOWATCH_STATE_DIR")
    return (Path(state) if state else default_state_dir()) / "stack.env"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ECOWATCH_", extra="ignore")

    # Where the local stack keeps its data, pid files and logs, and where slow builds are cached.
    state_dir: Path = Field(default_factory=default_state_dir)
    cache_dir: Path = Field(default_factory=default_cache_dir)

    mqtt_url: str = "mqtt://127.0.0.1:1883"
    mqtt_username: str = "ecowatch-bridge"
    mqtt_password: SecretStr = SecretStr("")
    # Several bridges split the sites between them: instance I of N (topics.BridgeSlice). Each
    # needs its own MQTT user (the broker takes the user name as the client id, so its
    # persistent session, and the readings queued in it while it is away, is its own).
    bridge_slice: str = "1/1"

    # Where the HJ 212 server listens for real monitors (TCP). 0.0.0.0 to take the field's.
    hj212_host: str = "127.0.0.1"
    hj212_port: int = Field(default=9212, ge=1, le=65535)
    # Each device's HJ 212 PW ({"<MN>": "<PW>"}), which the server checks and the simulators
    # send. The local stack generates them at <state>/mosquitto/hj212_passwords.json.
    hj212_passwords: Path | None = None
    # Each device's SM4 key for HJ 212-2025's encrypted CP ({"<MN>": "<32 hex digits>"}), kept
    # with its PW; a device without one sends plain text. The local stack generates them at
    # <state>/mosquitto/hj212_sm4_keys.json.
    hj212_sm4_keys: Path | None = None
    # Once a frame has started, the time its sender has to finish it (see ingest/hj212_server).
    hj212_frame_deadline_seconds: float = Field(default=30.0, gt=0)

    # Readings one device may send, in times its nominal rate (its model's reporting interval,
    # config/catalogue.py), after a burst that holds an HJ 212 resend (ingest/contract.py,
    # ReadingRate). Past it, its readings are dead-lettered (rate_limited). 0: no limit, for a
    # load test that puts a fleet's load on a few devices.
    reading_rate_factor: float = Field(default=4.0, ge=0)

    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_partitions: int = Field(default=8, ge=1)
    # Kafka signs every client in (SASL/SCRAM-SHA-256): as this principal when set (one
    # service per container), otherwise as the process's role's principal from the accounts
    # file ({"<principal>": "<password>"}; the local stack's is <state>/kafka/accounts.json).
    # See config/kafka_accounts.py for what each principal may do.
    kafka_username: str = ""
    kafka_password: SecretStr = SecretStr("")
    kafka_accounts: Path | None = None

    influx_url: str = "http://127.0.0.1:8086"
    influx_org: str = "ecowatch"
    influx_bucket: str = "ecowatch"
    influx_token: SecretStr = SecretStr("")

    catalogue: Path | None = None  # required wherever a catalogue is read: catalogue_folder()
    # The HJ 633 edition for the air stations' AQI: 2026 is in force since 2026-03-01.
    aqi_standard: Literal["2012", "2026"] = "2026"
    # The devices' MQTT passwords ({"<device id>": "<password>"}), for the simulators. The local
    # stack generates them at <state>/mosquitto/credentials.json; elsewhere, point at your own.
    device_credentials: Path | None = None

    # How often time passes for every site in the worker (deadlines, timeouts, offline).
    tick_seconds: float = Field(default=15.0, gt=0)
    # API tokens: a JSON file {"sha256:<hex of the token>": "<officer id>" or "operator:<name>"}
    # kept outside git (`ecowatch tokens add`). An officer acts on the cases of their grids; an
    # operator sees every grid.
    officer_tokens: Path | None = None
    # The token `ecowatch cases` and `ecowatch report` present to the worker's API.
    api_token: SecretStr = SecretStr("")
    # The enterprises' proofs of their marks (标记), kept by SHA-256 (streams/storage/proofs.py).
    # Empty: <state>/proofs. Every worker must see the same folder (a shared, replicated
    # volume): any worker may be asked for a proof.
    proof_dir: Path | None = None

    # The Faust app's id: its consumer group, and the prefix of its tables' changelogs.
    app_id: str = "ecowatch"

    # The Faust worker's web server (health, and the officers' case API): the address it
    # listens on. 0.0.0.0 to take the network's (in a container, say).
    web_host: str = Field(default="127.0.0.1", min_length=1)
    web_port: int = Field(default=6066, ge=1, le=65535)
    # Where the app's other workers reach this one (Faust's canonical URL: the case API sends
    # a request for a site held elsewhere there). Empty: http://<web_host>:<web_port>, right on
    # one machine; with several workers on several hosts (or containers) each names its own,
    # since 0.0.0.0 is where one listens, not where the others find it.
    web_url: str = ""

    # /health of the stages without a web server of their own (JSON; 503 while stalled), for
    # supervisors' health checks. 0: none (two bridges on one machine need a port each).
    health_host: str = Field(default="127.0.0.1", min_length=1)
    bridge_health_port: int = Field(default=6067, ge=0, le=65535)
    hj212_health_port: int = Field(default=6068, ge=0, le=65535)
    # A stage holding work with nothing out for this long says it is stalled; twice as long,
    # and it exits (code 75) for its supervisor to start it again (ecowatch/stall.py).
    stall_seconds: float = Field(default=30.0, gt=0)

    # The operators' console (`ecowatch console`): the wall, the desk and the phone. Loopback
    # by default like the case API, whose rules it applies by passing the caller's token on.
    console_host: str = Field(default="127.0.0.1", min_length=1)
    console_port: int = Field(default=6080, ge=1, le=65535)

    # Devtools only (`ecowatch drill --soak`): the time the platform's processes run on. Unset,
    # the system clock. Set, a simulated clock that reads CLOCK_START at the Unix time
    # CLOCK_EPOCH and runs CLOCK_SPEED times faster than the wall clock from there; every
    # process given the same three agrees, and one restarted finds the simulated time where it
    # is (ecowatch.clock.ScaledClock). The ingest contract then takes a simulated month.
    clock_start: datetime | None = None
    clock_speed: float = Field(default=1.0, gt=0)
    clock_epoch: float | None = Field(default=None, validate_default=True)

    @field_validator("mqtt_url")
    @classmethod
    def _mqtt_scheme(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in {"mqtt", "tcp"} or not parts.hostname:
            raise ValueError("expected mqtt://HOST:PORT, for example mqtt://127.0.0.1:1883")
        return v

    @field_validator("web_url")
    @classmethod
    def _web_url(cls, v: str) -> str:
        parts = urlsplit(v)
        if v and (parts.scheme not in {"http", "https"} or not parts.hostname or not parts.port):
            raise ValueError(
                "expected http://HOST:PORT (or empty), for example http://worker-2:6066"
            )
        if v and parts.hostname in {"0.0.0.0", "::"}:
            raise ValueError("expected the host the other workers reach this one at, not 0.0.0.0")
        return v

    @field_validator("bridge_slice")
    @classmethod
    def _slice(cls, v: str) -> str:
        BridgeSlice.parse(v)
        return v

    @field_validator("clock_start")
    @classmethod
    def _aware_start(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            raise ValueError("expected a time with its zone, e.g. 2026-11-01T00:00:00+08:00")
        return v

    @field_validator("clock_speed")
    @classmethod
    def _speed_needs_start(cls, v: float, info: ValidationInfo) -> float:
        if v != 1 and info.data.get("clock_start") is None:
            raise ValueError("a speed other than 1 needs ECOWATCH_CLOCK_START (and _EPOCH)")
        return v

    @field_validator("clock_epoch")
    @classmethod
    def _start_needs_epoch(cls, v: float | None, info: ValidationInfo) -> float | None:
        if v is None and info.data.get("clock_start") is not None:
            raise ValueError(
                "required with ECOWATCH_CLOCK_START: the Unix time at which the simulated "
                "clock reads the start, the same for every process (e.g. $(date +%s))"
            )
        return v

    def clock(self) -> Clock:
        """The clock the worker, the bridge and the HJ 212 server run on (see clock_*)."""
        return configured_clock(self.clock_start, self.clock_speed, self.clock_epoch)

    @field_validator("influx_url")
    @classmethod
    def _http_scheme(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError("expected http://HOST:PORT, for example http://127.0.0.1:8086")
        return v

    @property
    def device_credentials_file(self) -> Path:
        return self.device_credentials or self.state_dir / "mosquitto" / "credentials.json"

    @property
    def proof_folder(self) -> Path:
        return self.proof_dir or self.state_dir / "proofs"

    @property
    def kafka_accounts_file(self) -> Path:
        return self.kafka_accounts or self.state_dir / "kafka" / "accounts.json"

    @property
    def hj212_passwords_file(self) -> Path:
        return self.hj212_passwords or self.state_dir / "mosquitto" / "hj212_passwords.json"

    @property
    def hj212_sm4_keys_file(self) -> Path:
        return self.hj212_sm4_keys or self.state_dir / "mosquitto" / "hj212_sm4_keys.json"

    @cached_property
    def mqtt_host(self) -> str:
        return urlsplit(self.mqtt_url).hostname or "127.0.0.1"

    @cached_property
    def mqtt_port(self) -> int:
        return urlsplit(self.mqtt_url).port or 1883

    @cached_property
    def kafka_host(self) -> str:
        return self.kafka_bootstrap.split(",")[0].rsplit(":", 1)[0]

    @cached_property
    def kafka_port(self) -> int:
        return int(self.kafka_bootstrap.split(",")[0].rsplit(":", 1)[1])

    @cached_property
    def influx_host(self) -> str:
        return urlsplit(self.influx_url).hostname or "127.0.0.1"

    @cached_property
    def influx_port(self) -> int:
        return urlsplit(self.influx_url).port or 8086

    def catalogue_folder(self) -> Path:
        """The catalogue's folder, which has no default: see :data:`DEMO_CATALOGUE`."""
        if self.catalogue is None:
            raise ConfigError(
                "ECOWATCH_CATALOGUE is not set: the folder of your catalogue's YAML files "
                f"(sites, devices, permits). The demo city is {DEMO_CATALOGUE}; the demo, the "
                "drill, the bench and the simulators use it when nothing is set, the platform "
                "never does"
            )
        return self.catalogue


def load_device_credentials(path: Path) -> dict[str, str]:
    """Device id → MQTT password, read only; the error names the file and what was expected."""
    shape = "a JSON object of device id to password"
    data = read_json_object(
        path,
        shape,
        "no device credentials file. `ecowatch stack up` makes one for the local stack; "
        "elsewhere set ECOWATCH_DEVICE_CREDENTIALS",
    )
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise ConfigError(f"{path}: expected {shape}")
    return data  # type: ignore[return-value]


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, then ``<state>/stack.env``, then the defaults."""
    env_file = _state_env_file()
    try:
        return Settings(_env_file=env_file if env_file.exists() else None, **overrides)  # type: ignore[call-arg]
    except ValidationError as exc:
        problems = "; ".join(
            f"ECOWATCH_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            for e in exc.errors()
        )
        where = f"the environment or {env_file}" if env_file.exists() else "the environment"
        raise ConfigError(f"invalid setting in {where}: {problems}") from None
