"""The real local stack for the integration tests: Mosquitto, Kafka and InfluxDB on 127.0.0.1.

The session starts its own stack, on ports of its own (so a running demo is left alone), through
the same code as `ecowatch stack up`, in a state folder emptied first: every run takes the path
of a new machine (only the slow builds in ~/.cache are reused). If a service cannot be installed
or started, every test here fails with the reason; nothing is skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from ecowatch.config.catalogue import load_catalogue
from ecowatch.config.settings import Settings, load_settings
from ecowatch.devtools.stack.process import Progress
from ecowatch.devtools.stack.services import Stack
from ecowatch.devtools.watch import ChildProcess, ecowatch_argv
from ecowatch.edges.outage import port_open
from ecowatch.errors import EcowatchError
from ecowatch.streams.storage.store import influx_client
from tests.integration.test_alerts_delivery import mailbox, receiver  # noqa: F401 - fixtures

# The services' usual ports moved up by a base (20000: MQTT 21883, Kafka 29092, ...), so a
# demo on the usual ports is left alone; another base runs a second suite beside this one.
PORT_BASE = int(os.environ.get("ECOWATCH_TEST_PORT_BASE", "20000"))
TEST_PORTS = {
    "ECOWATCH_MQTT_URL": f"mqtt://127.0.0.1:{PORT_BASE + 1883}",
    "ECOWATCH_KAFKA_BOOTSTRAP": f"127.0.0.1:{PORT_BASE + 9092}",
    "ECOWATCH_INFLUX_URL": f"http://127.0.0.1:{PORT_BASE + 8086}",
    "ECOWATCH_WEB_PORT": str(PORT_BASE + 6066),
    "ECOWATCH_HJ212_PORT": str(PORT_BASE + 9212),
    "ECOWATCH_CONSOLE_PORT": str(PORT_BASE + 6080),
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in item.nodeid:
            item.add_marker(pytest.mark.stack)


@pytest.fixture(scope="session")
def stack_env() -> Iterator[dict[str, str]]:
    # A fixed folder, not a temporary one: a test run that crashed left processes whose pid
    # files are here, so this run can stop them instead of finding their ports taken.
    state = Path(os.environ.get("ECOWATCH_TEST_STATE_DIR", "/tmp/ecowatch-test-stack"))
    if "ecowatch" not in state.name:  # it is emptied below: never someone's own folder
        pytest.fail(f"ECOWATCH_TEST_STATE_DIR={state}: the folder's name must contain 'ecowatch'")
    env = {**TEST_PORTS, "ECOWATCH_STATE_DIR": str(state)}
    saved = {
        k: os.environ.get(k) for k in [*env, "ECOWATCH_INFLUX_TOKEN", "ECOWATCH_MQTT_PASSWORD"]
    }
    for k in ("ECOWATCH_INFLUX_TOKEN", "ECOWATCH_MQTT_PASSWORD"):
        os.environ.pop(k, None)  # the test stack generates its own
    os.environ.update(env)
    settings = load_settings()
    stack = Stack(settings, load_catalogue(settings.catalogue_folder()))
    stack.down()  # what a crashed run left running (its pid files are in the folder)
    shutil.rmtree(state, ignore_errors=True)
    if state.exists():
        pytest.fail(f"{state} could not be emptied: the test stack needs a new state folder")
    try:
        stack.up(Progress(lambda line: print(line, file=sys.stderr)))
    except EcowatchError as exc:
        stack.down()
        pytest.fail(f"the local stack could not start, so the pipeline cannot be tested:\n{exc}")
    try:
        yield {**env}
    finally:
        stack.down()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="session")
def settings(stack_env: dict[str, str]) -> Settings:
    return load_settings()  # with the token and password the stack generated


@pytest.fixture(scope="session")
def device_passwords(settings: Settings) -> dict[str, str]:
    return json.loads((settings.state_dir / "mosquitto" / "credentials.json").read_text())


@pytest.fixture
def devices(settings: Settings, device_passwords: dict[str, str]):
    """``devices(id)``: a monitor publishing with its own credentials, made once per test."""
    from tests.integration.test_pipeline import Device  # it imports this module

    made: dict[str, Device] = {}

    def device(device_id: str) -> Device:
        if device_id not in made:
            made[device_id] = Device(settings, device_id, device_passwords[device_id])
        return made[device_id]

    yield device
    for d in made.values():
        d.close()


def query(settings: Settings, flux: str) -> list[dict[str, Any]]:
    """The rows of a Flux query, as dicts."""
    with influx_client(settings) as client:
        return [r.values for t in client.query_api().query(flux) for r in t.records]


def wait_for(check: Callable[[], object], timeout: float, what: str, every: float = 0.3) -> object:
    """Poll until ``check`` returns something truthy; fail naming ``what`` if it never does."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    pytest.fail(f"timed out after {timeout}s waiting for {what} (last seen: {last!r})")


class Service:
    """An ecowatch command run as its own process, as an operator would run it (with this
    process's environment as it is now): its log is its stderr, and what it prints on stdout
    (the counts a bridge or HJ 212 server says on its way out) is what ``stop`` returns."""

    def __init__(self, name: str, argv: list[str], log_dir: Path) -> None:
        self.name = name
        self.child = ChildProcess(
            name,
            ecowatch_argv(*argv),
            log_dir / f"{name}.log",
            output_path=log_dir / f"{name}.out",
        )
        self.log_path = self.child.log_path

    @property
    def proc(self) -> subprocess.Popen:
        return self.child.popen

    def alive(self) -> bool:
        return self.child.running

    def log(self) -> str:
        return self.child.log_since_start()

    def stop(self, timeout: float = 30) -> str:
        """SIGTERM, then SIGKILL after ``timeout``; what it printed on stdout."""
        self.child.stop(timeout)
        return self.child.output()


@pytest.fixture(scope="session")
def worker(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    service = Service("worker", ["worker"], tmp_path_factory.mktemp("worker"))

    def healthy() -> bool:
        if not service.alive():
            pytest.fail(f"the worker exited early:\n{service.log()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{settings.web_port}/health", timeout=1):
                return True
        except OSError:
            return False

    wait_for(healthy, 90, "the Faust worker's /health")
    yield service
    service.stop()


@contextmanager
def worker_with(
    name: str, env: dict[str, str], log_dir: Path, api_up: Callable[[], bool]
) -> Iterator[Service]:
    """A worker of a test's own (its app id, port, catalogue, tokens in ``env``, which stays
    set while it runs), ready once ``api_up``; stopped after."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        service = Service(name, ["worker"], log_dir)
        wait_for(lambda: api_up() or not service.alive(), 90, f"the {name}'s case API")
        assert service.alive(), service.log()[-3000:]
        yield service
        service.stop()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def start_bridge(log_dir: Path) -> Service:
    service = Service("bridge", ["bridge"], log_dir)
    wait_for(
        lambda: "bridge subscribed" in service.log() or not service.alive(),
        30,
        "the bridge to connect to MQTT",
    )
    if not service.alive():
        pytest.fail(f"the bridge exited early:\n{service.log()[-3000:]}")
    return service


@pytest.fixture
def bridge(worker: Service, tmp_path_factory: pytest.TempPathFactory):
    # One bridge per test, stopped after it: bridges share one client id (one MQTT session),
    # as a restarted bridge does in production.
    service = start_bridge(tmp_path_factory.mktemp("bridge"))
    yield service
    if service.alive():
        service.stop()


@pytest.fixture
def hj212_server(settings: Settings, worker: Service, tmp_path_factory: pytest.TempPathFactory):
    service = Service("hj212", ["hj212", "serve"], tmp_path_factory.mktemp("hj212"))
    wait_for(
        lambda: port_open(settings.hj212_host, settings.hj212_port) or not service.alive(),
        30,
        "the HJ 212 server to listen",
    )
    assert service.alive(), service.log()
    yield service
    if service.alive():
        service.stop()
