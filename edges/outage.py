"""A service outage is one line when it starts and one when it ends.

While Kafka restarts, aiokafka and Faust log hundreds of errors a second; the line that
matters (which service, since when, that we are retrying) is lost in them. ``Outage`` keeps
one service's outage and words its two lines; ``FoldedOutageErrors`` is the logging edge that
turns a library's repeated errors into those lines, probing the service to learn when it is
back.
"""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime

from ecowatch.clock import Clock, SystemClock

log = logging.getLogger("ecowatch.edges.outage")


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether anything listens there: a service that is starting, or back."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


# The two lines of an outage, in one place. A service that is starting (this process has not
# reached it yet) is waited for; one that was reached and went away is unavailable, then back.
UNAVAILABLE = (
    "{service} at {address} is unavailable since {since} ({reason}); retrying, "
    "its repeated errors are folded until it is back"
)
BACK = "{service} at {address} is back after {lasted} s ({folded} repeated errors folded)"
STARTING = (
    "{service} at {address} is starting ({reason}); waiting for it since {since}, "
    "its repeated errors are folded until it is ready"
)
READY = "{service} at {address} is ready after {lasted} s ({folded} repeated errors folded)"


class Outage:
    """One service's outage: ``down`` says the first line, ``up`` the last; the repeats in
    between are counted, not said. Thread-safe (paho's and the probe's threads call it).

    An outage that begins within ``starting_within`` seconds of this object's making (a
    process's start), before any outage of it has ended, is the service ``starting``: this
    process has not reached it yet, so it is not "unavailable" but waited for. Every later
    one (the process had the service, and lost it) is unavailable, then back.
    """

    def __init__(
        self,
        service: str,
        address: str,
        clock: Clock | None = None,
        starting_within: float = 0.0,
    ) -> None:
        self.service, self.address = service, address
        self._clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._born = self._clock.now()
        self._starting_within = starting_within
        self.reached = False  # an outage has ended: this process has had the service
        self.since: datetime | None = None
        self.starting = False  # the outage under way is the service starting
        self.folded = 0

    @property
    def active(self) -> bool:
        return self.since is not None

    def down(self, reason: str) -> str | None:
        """The line to say if this starts an outage; None (counted) if one is under way."""
        with self._lock:
            if self.since is not None:
                self.folded += 1
                return None
            self.since = self._clock.now()
            young = (self.since - self._born).total_seconds() < self._starting_within
            self.starting = young and not self.reached
            # The machine's local time, as the log lines' own timestamps are.
            return (STARTING if self.starting else UNAVAILABLE).format(
                service=self.service,
                address=self.address,
                since=f"{self.since.astimezone():%H:%M:%S}",
                reason=_short(reason),
            )

    def up(self) -> str | None:
        """The line to say if an outage ends here; None if there was none."""
        with self._lock:
            if self.since is None:
                return None
            lasted = (self._clock.now() - self.since).total_seconds()
            line = (READY if self.starting else BACK).format(
                service=self.service,
                address=self.address,
                lasted=f"{lasted:.0f}",
                folded=self.folded,
            )
            self.since, self.folded, self.reached = None, 0, True
            return line


def _short(reason: str, limit: int = 160) -> str:
    first = reason.strip().splitlines()[0] if reason.strip() else "no answer"
    return first if len(first) <= limit else first[: limit - 1] + "…"


# What Kafka clients say while a broker is away or not ready yet (restarting, electing
# leaders, creating the offsets topic): an outage even while its port already answers.
KAFKA_UNAVAILABLE = re.compile(
    r"NotAvailable|NotCoordinator|NotLeader|NodeNotReady|Unable connect|Unable to update "
    r"metadata|KafkaConnectionError|Connection at \S+ closed|RequestTimedOut|Connect call failed"
)


# A Kafka outage that begins this soon after a process started, before it ever reached
# Kafka, is Kafka starting: a broker just started (by `stack up`, the demo, docker-compose)
# answers its port before it has elected leaders and made its offsets topic, and a worker's
# first group join meets that within its first seconds.
KAFKA_STARTING_SECONDS = 30.0


# What is never folded, outage or not: a refusal does not pass with time, and a crashed
# service (Faust's fetcher, say) stops the worker; the log must say why.
NEVER_FOLDED = re.compile(r"authori[sz]|authenticat|SASL|Crashed", re.IGNORECASE)


class FoldedOutageErrors(logging.Filter):
    """A filter for the log handlers: a warning or error of the ``libraries`` (or of a record
    logged with ``extra={"outage": <tag>}``) starts the outage, said once, when the service
    does not answer or the record says it is ``unavailable``; the rest are folded until
    ``reachable`` has held for ``settle`` seconds with no new error, when the outage ends with
    one line. Other errors while the service answers pass unchanged: they are not an outage.
    """

    def __init__(
        self,
        outage: Outage,
        reachable: Callable[[], bool],
        libraries: Sequence[str],
        tag: str,
        unavailable: re.Pattern[str] = KAFKA_UNAVAILABLE,
        settle: float = 3.0,
        probe_every: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.outage = outage
        self._reachable = reachable
        self._libraries = tuple(libraries)
        self._tag = tag
        self._unavailable = unavailable
        self._settle, self._probe_every = settle, probe_every
        self._monotonic = monotonic
        self._last_error = 0.0
        self._checked: tuple[float, bool] = (-1e9, True)
        self._probe: threading.Thread | None = None

    def _concerns(self, record: logging.LogRecord) -> bool:
        if getattr(record, "outage", None) == self._tag:
            return True
        return record.levelno >= logging.WARNING and record.name.startswith(self._libraries)

    def _answers(self) -> bool:
        at, answered = self._checked
        now = self._monotonic()
        if now - at >= self._probe_every:  # at most one probe a second, whatever the log rate
            answered = self._reachable()
            self._checked = (now, answered)
        return answered

    def filter(self, record: logging.LogRecord) -> bool:
        # One record passes through every handler's filter: decide once.
        decided = getattr(record, "_outage_decision", None)
        if decided is not None:
            return decided
        decision = self._decide(record)
        record._outage_decision = decision  # type: ignore[attr-defined]
        return decision

    def _decide(self, record: logging.LogRecord) -> bool:
        if not self._concerns(record) or NEVER_FOLDED.search(record.getMessage()):
            return True
        if self.outage.active:
            self._last_error = self._monotonic()
            self.outage.down(record.getMessage())
            return False
        message = record.getMessage()
        if not self._unavailable.search(message) and self._answers():
            return True
        line = self.outage.down(message)
        if line is None:
            return False
        self._last_error = self._monotonic()
        # This record becomes the outage's one line: a service starting is not an error.
        level = logging.WARNING if self.outage.starting else logging.ERROR
        record.name, record.levelno, record.levelname = log.name, level, logging.getLevelName(level)
        record.msg, record.args, record.exc_info, record.exc_text = line, (), None, None
        record.stack_info = None
        self._start_probe()
        return True

    def _start_probe(self) -> None:
        if self._probe is not None and self._probe.is_alive():
            return
        self._probe = threading.Thread(target=self._watch, name="outage-probe", daemon=True)
        self._probe.start()

    def _watch(self) -> None:
        while True:
            time.sleep(self._probe_every)
            quiet = self._monotonic() - self._last_error >= self._settle
            if quiet and self._reachable():
                line = self.outage.up()
                if line:
                    log.warning(line)
                return


def fold_outages(
    outage: Outage, reachable: Callable[[], bool], libraries: Sequence[str], tag: str
) -> FoldedOutageErrors:
    """Install the filter on every handler of the root logger (call after logging is set up)."""
    folded = FoldedOutageErrors(outage, reachable, libraries, tag)
    for handler in logging.getLogger().handlers:
        handler.addFilter(folded)
    return folded
