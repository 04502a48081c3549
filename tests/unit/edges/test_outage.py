"""An outage is one line when it starts and one when it ends; the library's repeats fold."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta

import pytest

from ecowatch.clock import ManualClock
from ecowatch.edges.outage import FoldedOutageErrors, Outage

T0 = datetime(2026, 11, 30, 9, 0, 0, tzinfo=UTC)


def test_an_outage_is_said_once_then_back_with_its_length_and_the_folded_count() -> None:
    clock = ManualClock(T0)
    outage = Outage("Kafka", "127.0.0.1:9092", clock)
    assert outage.up() is None  # nothing to recover from
    first = outage.down("KafkaConnectionError: Connect call failed")
    assert first == (
        f"Kafka at 127.0.0.1:9092 is unavailable since {T0.astimezone():%H:%M:%S} "
        "(KafkaConnectionError: Connect call failed); retrying, its repeated errors are folded "
        "until it is back"
    )
    assert all(outage.down("again") is None for _ in range(500))
    clock.advance(timedelta(seconds=12))
    assert outage.up() == "Kafka at 127.0.0.1:9092 is back after 12 s (500 repeated errors folded)"
    assert outage.up() is None
    assert outage.down("a second outage") is not None


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[tuple[str, str]] = []
        self.levels: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((record.name, record.getMessage()))
        self.levels.append(record.levelname)


@pytest.fixture
def capture():
    handler = Capture()
    root = logging.getLogger()
    root.addHandler(handler)
    old = root.level
    root.setLevel(logging.INFO)
    # The CLI quiets aiokafka to WARNING when a test runs a command: the libraries' own INFO
    # lines are part of what these tests watch.
    library = logging.getLogger("aiokafka")
    old_library = library.level
    library.setLevel(logging.NOTSET)
    yield handler
    root.removeHandler(handler)
    root.setLevel(old)
    library.setLevel(old_library)


def test_hundreds_of_library_errors_while_down_become_two_lines(capture: Capture) -> None:
    up = [False]
    folded = FoldedOutageErrors(
        Outage("Kafka", "127.0.0.1:9092"),
        reachable=lambda: up[0],
        libraries=("aiokafka", "faust"),
        tag="kafka",
        settle=0.2,
        probe_every=0.05,
    )
    capture.addFilter(folded)
    a_second_handler = Capture()  # every handler sees the record: decided once
    a_second_handler.addFilter(folded)
    logging.getLogger().addHandler(a_second_handler)
    try:
        for i in range(300):
            logging.getLogger("aiokafka.conn").error("Unable connect to node with id 1: %d", i)
            logging.getLogger("faust.transport").warning("Heartbeat failed")
        logging.getLogger("ecowatch.ingest.mqtt.bridge").error(
            "Kafka did not take a message", extra={"outage": "kafka"}
        )
        logging.getLogger("ecowatch.streams").warning("an unrelated warning passes")
        up[0] = True
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any("back after" in m for _, m in capture.lines):
            time.sleep(0.05)
    finally:
        logging.getLogger().removeHandler(a_second_handler)
    messages = [m for _, m in capture.lines]
    assert len(messages) == 3, messages
    assert messages[0].startswith("Kafka at 127.0.0.1:9092 is unavailable since ")
    assert "Unable connect to node with id 1: 0" in messages[0]
    assert messages[1] == "an unrelated warning passes"
    assert messages[2].startswith("Kafka at 127.0.0.1:9092 is back after ")
    assert messages[2].endswith("(600 repeated errors folded)")
    assert [m for _, m in a_second_handler.lines][:2] == messages[:2]


def test_library_errors_while_the_service_answers_pass_unchanged(capture: Capture) -> None:
    capture.addFilter(
        FoldedOutageErrors(
            Outage("Kafka", "127.0.0.1:9092"), lambda: True, ("aiokafka",), tag="kafka"
        )
    )
    logging.getLogger("aiokafka.consumer").error("OffsetCommit failed: rebalance in progress")
    logging.getLogger("aiokafka.consumer").info("joined group")
    assert [m for _, m in capture.lines] == [
        "OffsetCommit failed: rebalance in progress",
        "joined group",
    ]


def test_a_broker_that_answers_but_is_not_ready_is_unavailable(capture: Capture) -> None:
    capture.addFilter(
        FoldedOutageErrors(
            Outage("Kafka", "127.0.0.1:9092"), lambda: True, ("aiokafka",), tag="kafka"
        )
    )
    for _ in range(6):  # a new broker creating its offsets topic
        logging.getLogger("aiokafka.consumer.group_coordinator").error(
            "Group Coordinator Request failed: [Error 15] GroupCoordinatorNotAvailableError"
        )
    assert len(capture.lines) == 1
    assert "unavailable since" in capture.lines[0][1]
    assert capture.levels == ["ERROR"]


def test_a_refusal_or_a_crash_is_never_folded_into_an_outage(capture: Capture) -> None:
    capture.addFilter(
        FoldedOutageErrors(
            Outage("Kafka", "127.0.0.1:9092"), lambda: False, ("aiokafka", "faust"), tag="kafka"
        )
    )
    logging.getLogger("aiokafka.conn").error("Unable connect to node with id 1")
    logging.getLogger("aiokafka.consumer").warning("Not authorized to read from topic t.")
    logging.getLogger("faust.transport").error("[^---Fetcher]: Crashed reason=KeyError('x')")
    logging.getLogger("aiokafka.conn").error("Unable connect to node with id 1")
    messages = [m for _, m in capture.lines]
    assert len(messages) == 3, messages
    assert "unavailable since" in messages[0]
    assert messages[1:] == [
        "Not authorized to read from topic t.",
        "[^---Fetcher]: Crashed reason=KeyError('x')",
    ]


def test_an_outage_in_a_process_s_first_seconds_is_the_service_starting() -> None:
    """Every start met a Kafka that answers before it is ready: it was said as unavailable,
    then back after 3 s. Before this process has reached it, it is starting, then ready."""
    clock = ManualClock(T0)
    outage = Outage("Kafka", "127.0.0.1:9092", clock, starting_within=30)
    clock.advance(timedelta(seconds=2))
    first = outage.down("Group Coordinator Request failed: GroupCoordinatorNotAvailableError")
    assert outage.starting
    since = (T0 + timedelta(seconds=2)).astimezone()
    assert first == (
        "Kafka at 127.0.0.1:9092 is starting (Group Coordinator Request failed: "
        f"GroupCoordinatorNotAvailableError); waiting for it since {since:%H:%M:%S}, its "
        "repeated errors are folded until it is ready"
    )
    assert all(outage.down("again") is None for _ in range(4))
    clock.advance(timedelta(seconds=3))
    assert outage.up() == "Kafka at 127.0.0.1:9092 is ready after 3 s (4 repeated errors folded)"
    # Reached: an outage after that, however soon, is Kafka gone away, and back.
    clock.advance(timedelta(seconds=5))
    assert outage.down("KafkaConnectionError: Connection at 127.0.0.1:9092 closed")
    assert not outage.starting
    clock.advance(timedelta(seconds=20))
    assert outage.up() == "Kafka at 127.0.0.1:9092 is back after 20 s (0 repeated errors folded)"


def test_a_kafka_that_never_answered_since_the_start_is_starting_however_long() -> None:
    clock = ManualClock(T0)
    outage = Outage("Kafka", "127.0.0.1:9092", clock, starting_within=30)
    assert "is starting (Unable connect to node with id 1)" in outage.down(
        "Unable connect to node with id 1"
    )
    clock.advance(timedelta(seconds=95))
    assert outage.down("still not") is None
    assert outage.up() == "Kafka at 127.0.0.1:9092 is ready after 95 s (1 repeated errors folded)"


def test_an_outage_after_the_first_seconds_is_unavailable() -> None:
    clock = ManualClock(T0)
    outage = Outage("Kafka", "127.0.0.1:9092", clock, starting_within=30)
    clock.advance(timedelta(seconds=30))
    assert "is unavailable since" in outage.down("KafkaConnectionError")
    clock.advance(timedelta(seconds=4))
    assert outage.up() == "Kafka at 127.0.0.1:9092 is back after 4 s (0 repeated errors folded)"


def test_without_a_start_window_every_outage_is_unavailable() -> None:
    """Mosquitto's and InfluxDB's outages (no window) read as they always did."""
    outage = Outage("InfluxDB", "http://127.0.0.1:8086", ManualClock(T0))
    assert "is unavailable since" in outage.down("timed out")
    assert "is back after 0 s" in outage.up()


def test_a_kafka_starting_is_one_warning_then_ready(capture: Capture) -> None:
    capture.addFilter(
        FoldedOutageErrors(
            Outage("Kafka", "127.0.0.1:9092", starting_within=30),
            lambda: True,
            ("aiokafka",),
            tag="kafka",
            settle=0.2,
            probe_every=0.05,
        )
    )
    for _ in range(6):  # a new broker creating its offsets topic: its port answers
        logging.getLogger("aiokafka.consumer.group_coordinator").error(
            "Group Coordinator Request failed: [Error 15] GroupCoordinatorNotAvailableError"
        )
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and len(capture.lines) < 2:
        time.sleep(0.05)
    messages = [m for _, m in capture.lines]
    assert len(messages) == 2, messages
    assert messages[0].startswith("Kafka at 127.0.0.1:9092 is starting (Group Coordinator")
    assert messages[1].startswith("Kafka at 127.0.0.1:9092 is ready after ")
    assert messages[1].endswith("(5 repeated errors folded)")
    assert capture.levels == ["WARNING", "WARNING"]  # a Kafka starting is no error
