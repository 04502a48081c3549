"""The HJ 212 TCP server: real monitors' data uploads into the same Kafka readings topic.

Each connection gets its own :class:`Framer` (partial reads, several packets per read,
garbage between packets) and :class:`Reassembler` (split packets). A data upload (CN 2011,
2051, 2061, 2031) becomes a :class:`Reading` keyed by site, exactly as the MQTT bridge makes
them, and is answered with a 9014 data answer when its Flag asks for one — only after Kafka
has acknowledged the record, so an answered packet is never lost. A bad packet goes to the
dead-letter topic with its reason and is answered with a 9011 QnRtn when the packet's QN and MN
can be recovered.

Anyone who reaches the port may try to speak for any MN (the MNs are no secret), so:

- **PW.** Every packet must carry its device's own PW (:class:`DevicePasswords`, the file
  ``ECOWATCH_HJ212_PASSWORDS``; the local stack generates one per device), compared in constant
  time. A wrong or missing PW is answered 9011 QnRtn 3, dead-lettered (``bad_password``), and
  nothing of it is kept, not even a part of a split message or its QN.
- **Replays.** :class:`ReplayWindow` remembers the QNs each device used lately. The same packet
  again (same MN, CN, QN and content) is a device resending because our 9014 got lost: it is
  answered 9014 again and not stored twice (answering lets the device stop retrying; refusing
  would make it retry, then keep the data for a later resend that would be refused too). The
  same QN with other content is no resend: 9011 QnRtn 7 (QN error), dead-lettered.
- **Limits** (:class:`Hj212Limits`, each constant below says why its value): connections per
  address and in all, a deadline to finish a frame once it has started, bytes without a frame,
  bad frames and wrong PWs in a row. A connection over a limit is closed with a log line.
- Nothing a peer sends can stop the server: every packet is answered or dead-lettered, and
  a failure of ours on one packet is that packet's dead letter (``unhandled``), unanswered, so
  that the device resends it. A dead letter is evidence as a reading is: the producer sends
  it again across broker restarts (``ecowatch.edges.kafka.Producer``), and a rejected frame is
  answered only once Kafka has its dead letter (``ecowatch.ingest.dead_letters``), so the
  answer to a device is never ahead of the record of what it sent. A server that stops
  (leaving ``async with`` the listener ``serve`` returns, or :meth:`Hj212Server.stop`)
  closes its connections, then flushes its dead letters before the caller stops its
  producer; one Kafka did not take is counted in ``dead_letters_lost``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import re
import resource
from collections import Counter, OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from ecowatch import topics
from ecowatch.clock import Clock
from ecowatch.config.catalogue import Catalogue, DeviceEntry
from ecowatch.config.settings import Settings, load_settings
from ecowatch.edges.files import read_json_object
from ecowatch.edges.kafka import Producer
from ecowatch.errors import ConfigError
from ecowatch.ingest import hj212
from ecowatch.ingest.contract import ReadingLimiter, ReadingRate, Rejection, admit
from ecowatch.ingest.dead_letters import DeadLetterCounts, DeadLetters
from ecowatch.ingest.hj212 import sm4
from ecowatch.schema import (
    DeviceReading,
    DeviceState,
    DeviceStatus,
    ReadingSource,
    RejectReason,
)

log = logging.getLogger(__name__)

DATA_COMMANDS = frozenset(hj212.VALUE_SUFFIX_BY_CN)
READ_SIZE = 64 * 1024

# -- limits ------------------------------------------------------------------------------------

# A device that says nothing for this long is disconnected; HJ 212 devices upload at least
# every few minutes and reconnect on their own.
IDLE_TIMEOUT_SECONDS = 600.0
# Once a frame has started, the rest must arrive within this (the idle time-out alone restarts
# on every byte, so a trickle would hold the connection for ever). A packet is at most 1,036
# bytes: a second even at 9,600 baud; 30 s is three times the standard's 10 s answer time-out,
# for a mobile link that stalls and recovers.
FRAME_DEADLINE_SECONDS = 30.0
# Connections from one IP address. A data logger keeps one connection per MN; a few devices
# may share a NAT gateway, so 8, which still keeps any one address from holding the server.
MAX_CONNECTIONS_PER_PEER = 8
# Connections in all: a county's or a city's monitors, a few hundred to two thousand, one
# connection each. Each costs a file descriptor and at most about 2 MB (buffers, and 128
# split parts of about 11 KB parsed).
MAX_CONNECTIONS = 2000
# Bytes read without a single well-formed frame among them: 60 packets' worth of nothing.
# (Garbage that is not whitespace is reported per 2 KB by the framer, and counts as bad frames
# first; this catches the rest, such as megabytes of spaces.)
MAX_BYTES_WITHOUT_FRAME = 64 * 1024
# Bad frames in a row, each dead-lettered: enough for a device with a fault to show it many
# times over in the dead letters, then it must reconnect. An accepted packet starts the count
# again, so a device with one faulty channel is not cut off every 20 packets.
MAX_BAD_FRAMES = 20
# Wrong PWs in a row on one connection. A device with a wrong PW fails on every packet anyway;
# a guesser must reconnect every 3 tries (and an address holds at most 8 connections).
MAX_PASSWORD_FAILURES = 3
# How long our answers may wait for a peer that does not read them.
WRITE_TIMEOUT_SECONDS = 30.0
# How long a polite close may take before the connection is dropped.
CLOSE_TIMEOUT_SECONDS = 5.0
# How long a stopping server waits for Kafka to take its queued dead letters: the producer's
# request time-out (15 s, ecowatch.edges.kafka) and a retry. Past it, the rest are counted lost.
DEAD_LETTER_FLUSH_SECONDS = 35.0
# The replay window, per device. A device resends after 10 s, 3 times (HJ 212 defaults), and
# resends what it kept through an outage later still: a day covers that. 512 QNs are a day of
# uploads every 5 minutes plus hourly and daily data, and 3 hours at the fastest (real-time
# every 30 s and minute data), in about 110 KB. Older than the window, a replay rewrites the
# same point in InfluxDB (one per device, pollutant and time): it cannot add a reading.
REPLAY_WINDOW_SECONDS = 24 * 3600.0
REPLAY_WINDOW_PER_DEVICE = 512
# Split messages being joined on one connection, and parts per message. A logger splits one
# message at a time; 32 parts are 30 KB of CP, far beyond any fielded upload. Together they
# bound what one connection keeps in parts (PNUM above this is answered 9011 and
# dead-lettered).
MAX_SPLIT_MESSAGES = 4
MAX_SPLIT_PARTS = 32


@dataclass(frozen=True)
class Hj212Limits:
    idle_seconds: float = IDLE_TIMEOUT_SECONDS
    frame_deadline_seconds: float = FRAME_DEADLINE_SECONDS
    per_peer: int = MAX_CONNECTIONS_PER_PEER
    connections: int = MAX_CONNECTIONS
    bytes_without_frame: int = MAX_BYTES_WITHOUT_FRAME
    bad_frames: int = MAX_BAD_FRAMES
    password_failures: int = MAX_PASSWORD_FAILURES
    write_seconds: float = WRITE_TIMEOUT_SECONDS


class Close(Enum):
    """Why the server closed a connection."""

    IDLE = "idle"
    FRAME_DEADLINE = "frame_deadline"
    NO_FRAME = "no_frame"
    BAD_FRAMES = "bad_frames"
    BAD_PASSWORDS = "bad_passwords"
    WRITE_TIMEOUT = "write_timeout"
    INTERNAL_ERROR = "internal_error"

    @property
    def abusive(self) -> bool:
        """Dropped at once, answers not flushed: the peer gets no more of our time. (Wrong PWs
        are answered first: a device set up with the wrong PW learns it from QnRtn 3.)"""
        return self in {Close.NO_FRAME, Close.BAD_FRAMES, Close.WRITE_TIMEOUT}


class ConnectionGate:
    """Open connections per peer address and in all (pure bookkeeping)."""

    def __init__(self, per_peer: int = MAX_CONNECTIONS_PER_PEER, total: int = MAX_CONNECTIONS):
        self.per_peer = per_peer
        self.total = total
        self._open: Counter[str] = Counter()

    @property
    def open(self) -> int:
        return sum(self._open.values())

    def admit(self, host: str) -> str | None:
        """None, and the connection is counted; or why it is refused."""
        if self._open[host] >= self.per_peer:
            return f"{self._open[host]} connections from {host} are open (at most {self.per_peer})"
        if self.open >= self.total:
            return f"{self.open} connections are open (at most {self.total})"
        self._open[host] += 1
        return None

    def release(self, host: str) -> None:
        self._open[host] -= 1
        if self._open[host] <= 0:
            del self._open[host]


class ConnectionGuard:
    """What one connection has done against the limits; times are the caller's monotonic
    seconds, so it is pure."""

    def __init__(self, limits: Hj212Limits, now: float) -> None:
        self.limits = limits
        self.last_read = now
        self.partial_since: float | None = None  # when the unfinished frame began
        self.bytes_without_frame = 0
        self.bad_frames = 0
        self.password_failures = 0

    def read(self, size: int, frames: int, partial: bool, now: float) -> None:
        """``size`` bytes arrived, completing ``frames`` well-formed frames; ``partial``: the
        framer still holds the start of an unfinished one."""
        self.last_read = now
        self.bytes_without_frame = 0 if frames else self.bytes_without_frame + size
        if not partial:
            self.partial_since = None
        elif frames or self.partial_since is None:
            self.partial_since = now  # what is left began in this read

    def bad(self, *, password: bool = False) -> None:
        self.bad_frames += 1
        self.password_failures += password

    def accepted(self) -> None:
        self.bad_frames = self.password_failures = 0

    def abusive(self) -> Close | None:
        if self.password_failures >= self.limits.password_failures:
            return Close.BAD_PASSWORDS
        if self.bad_frames >= self.limits.bad_frames:
            return Close.BAD_FRAMES
        if self.bytes_without_frame > self.limits.bytes_without_frame:
            return Close.NO_FRAME
        return None

    def wait(self, now: float) -> float:
        """Seconds until the next time-out."""
        until = self.last_read + self.limits.idle_seconds
        if self.partial_since is not None:
            until = min(until, self.partial_since + self.limits.frame_deadline_seconds)
        return max(0.0, until - now)

    def expired(self, now: float) -> Close | None:
        if (
            self.partial_since is not None
            and now - self.partial_since >= self.limits.frame_deadline_seconds
        ):
            return Close.FRAME_DEADLINE
        if now - self.last_read >= self.limits.idle_seconds:
            return Close.IDLE
        return None


# -- replays -----------------------------------------------------------------------------------


class Replay(Enum):
    NEW = "new"
    DUPLICATE = "duplicate"  # the same packet again
    CONFLICT = "conflict"  # the same QN (and CN) with other content


def packet_digest(packet: hj212.Packet) -> bytes:
    """What a packet says, whatever its grouping or number formatting on the wire."""
    text = json.dumps(hj212.packet_to_json(packet), sort_keys=True, ensure_ascii=False)
    return hashlib.blake2b(text.encode(), digest_size=8).digest()


class ReplayWindow:
    """The QNs each device used lately, with a digest of what each said (pure; times are the
    caller's monotonic seconds). Per device, at most ``per_device`` QNs, none older than
    ``seconds``. The key is CN + QN: devices that stamp QNs to the second send their real-time
    and minute data with the same QN at the top of a minute."""

    def __init__(
        self, per_device: int = REPLAY_WINDOW_PER_DEVICE, seconds: float = REPLAY_WINDOW_SECONDS
    ) -> None:
        self.per_device = per_device
        self.seconds = seconds
        self._seen: dict[str, OrderedDict[str, tuple[float, bytes]]] = {}

    def __len__(self) -> int:
        return sum(len(qns) for qns in self._seen.values())

    def check(self, mn: str, cn: str, qn: str, digest: bytes, now: float) -> Replay:
        qns = self._seen.get(mn)
        if qns is None:
            return Replay.NEW
        self._expire(qns, now)
        seen = qns.get(f"{cn}/{qn}")
        if seen is None:
            return Replay.NEW
        return Replay.DUPLICATE if hmac.compare_digest(seen[1], digest) else Replay.CONFLICT

    def remember(self, mn: str, cn: str, qn: str, digest: bytes, now: float) -> None:
        qns = self._seen.setdefault(mn, OrderedDict())
        key = f"{cn}/{qn}"
        qns.pop(key, None)
        qns[key] = (now, digest)
        self._expire(qns, now)

    def forget(self, mn: str, cn: str, qn: str) -> None:
        """Take back a QN whose packet could not be stored (its resend must be accepted)."""
        qns = self._seen.get(mn)
        if qns is not None:
            qns.pop(f"{cn}/{qn}", None)

    def _expire(self, qns: OrderedDict[str, tuple[float, bytes]], now: float) -> None:
        while qns and (
            len(qns) > self.per_device or now - next(iter(qns.values()))[0] > self.seconds
        ):
            qns.popitem(last=False)


# -- passwords ---------------------------------------------------------------------------------

# What a PW may hold: printable ASCII without the data segment's separators, as long as the
# field allows.
_PW = re.compile(rf"[!-~]{{1,{hj212.PW_MAX_CHARS}}}")


class DevicePasswords:
    """Each device's PW (MN → PW), compared in constant time."""

    def __init__(self, by_mn: Mapping[str, str]) -> None:
        for mn, pw in by_mn.items():
            if not isinstance(pw, str) or not _PW.fullmatch(pw) or set(pw) & set(";=&"):
                raise ValueError(
                    f"the PW of MN {mn!r}: expected 1 to {hj212.PW_MAX_CHARS} printable ASCII "
                    "characters without ; = or & (HJ 212's PW field)"
                )
        self._by_mn = {mn: pw.encode() for mn, pw in by_mn.items()}

    @classmethod
    def load(cls, path: Path) -> DevicePasswords:
        """From a JSON object of MN to PW; the error names the file and what was expected."""
        data = read_json_object(
            path,
            "a JSON object of MN to PW",
            "no HJ 212 passwords file. `ecowatch stack up` makes one for the local stack; "
            "elsewhere set ECOWATCH_HJ212_PASSWORDS",
        )
        try:
            return cls(data)  # type: ignore[arg-type]
        except ValueError as exc:
            raise ConfigError(f"{path}: {exc}") from None

    def __contains__(self, mn: object) -> bool:
        return mn in self._by_mn

    def get(self, mn: str) -> str | None:
        """The device's PW, for a simulated device to send."""
        pw = self._by_mn.get(mn)
        return None if pw is None else pw.decode()

    def check(self, mn: str, pw: str | None) -> bool:
        expected = self._by_mn.get(mn)
        if expected is None or pw is None:
            return False
        return hmac.compare_digest(pw.encode("utf-8", "surrogateescape"), expected)


# -- the server --------------------------------------------------------------------------------


@dataclass
class Hj212Stats:
    connections: int = 0
    packets: int = 0
    bridged: int = 0
    answered: int = 0
    ignored: int = 0  # valid packets that carry no readings (CN 1062, ...)
    heartbeats: int = 0  # CN 9015 (HJ 212-2025): the device is there, said to the worker
    resent: int = 0  # uploads marked RF=1, stored as resent (late) readings
    encrypted: int = 0  # packets whose CP came SM4-encrypted, read with the device's key
    duplicates: int = 0  # packets already stored, answered again and not stored twice
    refused_connections: int = 0  # over a connection cap, closed at once
    closed: Counter[str] = field(default_factory=Counter)  # closed by us, by why
    # The dead-letter sender's counts: in Kafka by reason, suppressed past a device's budget
    # (counted and answered, not kept), lost (Kafka did not take them; logged).
    letters: DeadLetterCounts = field(default_factory=DeadLetterCounts)

    def as_dict(self) -> dict[str, object]:
        return {
            "connections": self.connections,
            "packets": self.packets,
            "bridged": self.bridged,
            "answered": self.answered,
            "ignored": self.ignored,
            "heartbeats": self.heartbeats,
            "resent": self.resent,
            "encrypted": self.encrypted,
            "duplicates": self.duplicates,
            "refused_connections": self.refused_connections,
            "closed_by_reason": dict(sorted(self.closed.items())),
            **self.letters.as_dict(),
        }


@dataclass
class _Connection:
    peer: str
    writer: asyncio.StreamWriter
    guard: ConnectionGuard
    framer: hj212.Framer = field(default_factory=hj212.Framer)
    reassembler: hj212.Reassembler = field(
        default_factory=lambda: hj212.Reassembler(MAX_SPLIT_MESSAGES, MAX_SPLIT_PARTS)
    )


class DeviceKeys:
    """Each device's SM4 key (MN → 16 bytes) for HJ 212-2025's encrypted CP. A device without
    one sends plain text; a packet that fails its CRC as sent is tried with its MN's key."""

    def __init__(self, by_mn: Mapping[str, str]) -> None:
        self._by_mn: dict[str, bytes] = {}
        for mn, text in by_mn.items():
            try:
                self._by_mn[mn] = sm4.parse_key(text)
            except (sm4.Sm4KeyError, AttributeError):
                raise ValueError(f"the SM4 key of MN {mn!r}: expected 32 hex digits") from None

    @classmethod
    def load(cls, path: Path) -> DeviceKeys:
        """From a JSON object of MN to key; no file, no keys (no device encrypts)."""
        if not path.exists():
            return cls({})
        data = read_json_object(path, "a JSON object of MN to SM4 key (32 hex digits)", "")
        try:
            return cls(data)  # type: ignore[arg-type]
        except ValueError as exc:
            raise ConfigError(f"{path}: {exc}") from None

    def get(self, mn: str | None) -> bytes | None:
        return self._by_mn.get(mn) if mn is not None else None


class Hj212Server:
    def __init__(
        self,
        *,
        producer: Producer,
        catalogue: Catalogue,
        clock: Clock,
        passwords: DevicePasswords | None = None,
        keys: DeviceKeys | None = None,
        limits: Hj212Limits | None = None,
        tz: str = hj212.DEFAULT_TZ,
        reading_rate: ReadingRate | None = None,
    ) -> None:
        """``passwords`` and ``keys``: by default, the files the settings name (the local
        stack's); ``reading_rate``, each device's allowance: ECOWATCH_READING_RATE_FACTOR's."""
        self._producer = producer
        self._catalogue = catalogue
        self._clock = clock
        if passwords is None:
            passwords = DevicePasswords.load(load_settings().hj212_passwords_file)
        self._passwords = passwords
        if keys is None:
            keys = DeviceKeys.load(load_settings().hj212_sm4_keys_file)
        self._keys = keys
        self.limits = limits or Hj212Limits()
        self._tz = tz
        self._gate = ConnectionGate(self.limits.per_peer, self.limits.connections)
        self._replays = ReplayWindow()
        # One device cannot flood (ingest/contract.py): past its allowance an upload is
        # refused, and its dead letters are held to a budget per MN as the bridge's are.
        if reading_rate is None:
            reading_rate = ReadingRate(factor=load_settings().reading_rate_factor)
        self.limiter = ReadingLimiter(reading_rate)
        # (MN, CN, QN) → whether Kafka took it, for the uploads being sent right now.
        self._in_flight: dict[tuple[str, str, str], asyncio.Future[bool]] = {}
        self.dead_letters = DeadLetters(producer, source=ReadingSource.HJ212, clock=clock)
        self.stats = Hj212Stats(letters=self.dead_letters.counts)
        self._listening: asyncio.Server | None = None
        self._stopping = False
        self._connections: set[asyncio.Task[None]] = set()
        self._awaiting_kafka = 0  # readings and statuses handed to Kafka, not yet taken

    @property
    def open_connections(self) -> int:
        return self._gate.open

    @classmethod
    def from_settings(
        cls, settings: Settings, *, producer: Producer, catalogue: Catalogue, clock: Clock
    ) -> Hj212Server:
        return cls(
            producer=producer,
            catalogue=catalogue,
            clock=clock,
            passwords=DevicePasswords.load(settings.hj212_passwords_file),
            keys=DeviceKeys.load(settings.hj212_sm4_keys_file),
            limits=Hj212Limits(frame_deadline_seconds=settings.hj212_frame_deadline_seconds),
            reading_rate=ReadingRate(factor=settings.reading_rate_factor),
        )

    async def serve(self, host: str, port: int) -> Listening:
        _enough_file_descriptors(self.limits.connections)
        self._listening = await asyncio.start_server(self._connection, host, port)
        log.info("HJ 212 server listening on %s:%s", host, port)
        return Listening(self._listening, self)

    def progress(self) -> tuple[int, int]:
        """(packets taken in, packets done with), for the stall watch: a packet is outstanding
        while its reading, status or dead letter waits for Kafka."""
        outstanding = self._awaiting_kafka + self.dead_letters.in_flight
        return self.stats.packets, self.stats.packets - outstanding

    def why_stalled(self) -> str:
        if error := self._producer.stats.last_error:
            return f"Kafka has not taken them; the producer's last error: {error}"
        return "Kafka has not acknowledged what was sent"

    async def stop(self, flush_seconds: float = DEAD_LETTER_FLUSH_SECONDS) -> None:
        """No new connections; the open ones closed (what they had read is handled, an
        unanswered upload is resent by its device); then every queued dead letter waited for
        (at most ``flush_seconds``, the rest counted lost), so that the caller may stop the
        producer. Idempotent."""
        self._stopping = True
        if self._listening is not None:
            self._listening.close()
        connections = [t for t in self._connections if t is not asyncio.current_task()]
        for task in connections:
            task.cancel()
        if connections:
            await asyncio.wait(connections, timeout=CLOSE_TIMEOUT_SECONDS + 1)
        await self.flush_dead_letters(flush_seconds)

    async def flush_dead_letters(self, timeout: float = DEAD_LETTER_FLUSH_SECONDS) -> None:
        """Wait until Kafka has taken (or refused) every dead letter queued so far; those it has
        not answered within ``timeout`` are counted lost."""
        await self.dead_letters.flush(timeout)

    # -- a connection --------------------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        address = writer.get_extra_info("peername") or ("?", 0)
        host, peer = str(address[0]), "{}:{}".format(*address[:2])
        refused = self._gate.admit(host)
        if refused is not None:
            self.stats.refused_connections += 1
            log.warning("HJ 212: refused a connection from %s: %s", peer, refused)
            writer.transport.abort()
            return
        self.stats.connections += 1
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        loop = asyncio.get_running_loop()
        conn = _Connection(peer, writer, ConnectionGuard(self.limits, loop.time()))
        why: Close | None = None
        try:
            why = await self._serve(reader, conn)
        except (ConnectionError, OSError) as exc:
            log.info("HJ 212 connection from %s lost: %s", peer, type(exc).__name__)
        except asyncio.CancelledError:
            if not self._stopping or task is None:
                raise
            # Closed by stop(): as politely as any other, and ended normally (asyncio's streams
            # log a cancelled connection task as an error).
            task.uncancel()
        except Exception:  # ours: it must not reach the server, nor go unseen
            log.exception("HJ 212 connection from %s failed", peer)
            why = Close.INTERNAL_ERROR
        finally:
            try:
                for incomplete in conn.reassembler.abandon():
                    await self._dead_letter(
                        peer, incomplete.payload, RejectReason.TRUNCATED, incomplete.detail
                    )
                if why is not None:
                    self.stats.closed[why.value] += 1
                    level = logging.INFO if why is Close.IDLE else logging.WARNING
                    log.log(level, "HJ 212 connection from %s closed: %s", peer, self._explain(why))
                await _close(writer, abort=why is not None and why.abusive)
            finally:
                self._gate.release(host)
                self._connections.discard(task)  # type: ignore[arg-type]

    def _explain(self, why: Close) -> str:
        limits = self.limits
        return {
            Close.IDLE: f"nothing for {limits.idle_seconds:g} s",
            Close.FRAME_DEADLINE: (
                f"a frame not finished within {limits.frame_deadline_seconds:g} s of its start"
            ),
            Close.NO_FRAME: f"over {limits.bytes_without_frame} bytes without a well-formed frame",
            Close.BAD_FRAMES: f"{limits.bad_frames} bad frames in a row",
            Close.BAD_PASSWORDS: f"{limits.password_failures} wrong PWs in a row",
            Close.WRITE_TIMEOUT: f"our answers not read for {limits.write_seconds:g} s",
            Close.INTERNAL_ERROR: "an error of ours (logged above)",
        }[why]

    async def _serve(self, reader: asyncio.StreamReader, conn: _Connection) -> Close | None:
        """Read, frame and handle until the peer leaves (None) or a limit closes it (why)."""
        loop = asyncio.get_running_loop()
        guard, framer = conn.guard, conn.framer
        while True:
            try:
                data = await asyncio.wait_for(reader.read(READ_SIZE), guard.wait(loop.time()))
            except TimeoutError:
                why = guard.expired(loop.time())
                if why is None:
                    continue
                if why is Close.FRAME_DEADLINE:
                    deadline = self.limits.frame_deadline_seconds
                    await self._unfinished(conn, f"not finished within {deadline:g} s of its start")
                return why
            if not data:
                await self._unfinished(conn, "the peer closed the connection before its end")
                return None
            try:
                frames = framer.feed(data)
            except Exception as exc:  # ours; the framer's state is not to be trusted after it
                log.exception("HJ 212: the framer failed on bytes from %s", conn.peer)
                detail = f"{type(exc).__name__}: {exc}"
                await self._dead_letter(conn.peer, data, RejectReason.UNHANDLED, detail)
                return Close.INTERNAL_ERROR
            well_formed = sum(isinstance(f, bytes) for f in frames)
            guard.read(len(data), well_formed, framer.partial, loop.time())
            for done, frame in enumerate(frames, start=1):
                await self._frame(conn, frame)
                why = guard.abusive()
                if why is not None:
                    if len(frames) > done:
                        log.info(
                            "HJ 212: %d frames from %s left unread", len(frames) - done, conn.peer
                        )
                    return why
            why = guard.abusive()
            if why is not None:
                return why
            try:
                await asyncio.wait_for(conn.writer.drain(), self.limits.write_seconds)
            except TimeoutError:
                return Close.WRITE_TIMEOUT

    async def _unfinished(self, conn: _Connection, why: str) -> None:
        """The frame left unfinished, if any: dead-lettered (``truncated``, or ``bad_header``
        for bytes that never began one), and answered if it names itself."""
        error = conn.framer.finish(why)
        if error is None:
            return  # nothing, or the rest of a bad frame already dead-lettered
        await self._reject(conn, error.raw, error, hj212.reject_answer(error.raw, error))

    # -- a packet ------------------------------------------------------------------------------

    async def _frame(self, conn: _Connection, frame: bytes | hj212.Hj212Error) -> None:
        """One frame, whatever happens: a failure of ours is the frame's dead letter."""
        try:
            await self._handle(conn, frame)
        except Exception as exc:
            log.exception("HJ 212: failed on a packet from %s", conn.peer)
            payload = frame if isinstance(frame, bytes) else frame.raw
            detail = f"{type(exc).__name__}: {exc}"
            await self._dead_letter(conn.peer, payload, RejectReason.UNHANDLED, detail)

    async def _handle(self, conn: _Connection, frame: bytes | hj212.Hj212Error) -> None:
        if isinstance(frame, hj212.Hj212Error):
            await self._reject(conn, frame.raw, frame, hj212.reject_answer(frame.raw, frame))
            return
        self.stats.packets += 1
        try:
            # The header is plain text: its MN says whose key reads an encrypted CP.
            packet = hj212.parse(frame, self._keys.get(hj212.sender_of(frame)))
        except hj212.Hj212Error as error:
            await self._reject(conn, frame, error, hj212.reject_answer(frame, error))
            return
        if packet.encrypted:
            self.stats.encrypted += 1
        entry = self._catalogue.device(packet.mn)
        if entry is None:
            letter = RejectReason.UNKNOWN_DEVICE, f"MN '{packet.mn}' is not in the catalogue"
            answer = hj212.request_answer(packet, hj212.QnRtn.MN_ERROR)
            await self._reject(conn, frame, letter, answer)
            return
        if not self._passwords.check(packet.mn, packet.pw):
            said = "no PW" if packet.pw is None else "a PW that is not its own"
            letter = RejectReason.BAD_PASSWORD, f"MN '{packet.mn}' sent {said}"
            answer = hj212.request_answer(packet, hj212.QnRtn.PW_ERROR)
            await self._reject(conn, frame, letter, answer, password=True)
            return
        if hj212.is_split(packet.flag):
            try:
                whole = conn.reassembler.add(packet)
            except hj212.Hj212Error as error:
                answer = hj212.request_answer(packet, hj212.qn_rtn_for(error))
                await self._reject(conn, frame, error, answer)
                return
            finally:
                for incomplete in conn.reassembler.take_dropped():
                    await self._dead_letter(
                        conn.peer, incomplete.payload, RejectReason.TRUNCATED, incomplete.detail
                    )
            if whole is None:  # more parts to come; each part is answered on its own
                conn.guard.accepted()
                if packet.wants_answer:
                    self._answer(conn, hj212.data_answer(packet))
                return
            packet = whole
        if packet.cn == hj212.CN_HEARTBEAT:
            await self._heartbeat(conn, packet, entry)
            return
        if packet.cn == hj212.CN_INSTRUMENT_STATES and packet.groups:
            await self._heartbeat(conn, packet, entry, hj212.instrument_states(packet))
            return
        if packet.cn not in hj212.KNOWN_CNS:
            # A command no version defines: answered CN error, never a dropped line, and on
            # the dead-letter topic for whoever installed the device.
            error = hj212.BadField(
                f"CN={packet.cn} is not a command of HJ 212-2017 or HJ 212-2025", key="CN"
            )
            await self._reject(
                conn, frame, error, hj212.request_answer(packet, hj212.QnRtn.CN_ERROR)
            )
            return
        if packet.cn not in DATA_COMMANDS:
            self.stats.ignored += 1
            conn.guard.accepted()
            if packet.wants_answer:
                self._answer(conn, hj212.request_answer(packet))
            return
        try:
            _, device_reading = hj212.to_device_reading(packet, self._tz)
        except hj212.Hj212Error as error:
            answer = hj212.request_answer(packet, hj212.qn_rtn_for(error))
            await self._reject(conn, frame, error, answer)
            return
        await self._store(conn, frame, packet, entry, device_reading)

    async def _heartbeat(
        self,
        conn: _Connection,
        packet: hj212.Packet,
        entry: DeviceEntry,
        instruments: dict[str, int] | None = None,
    ) -> None:
        """CN 9015: the device is there. Said to the worker as the device's status (online, at
        the server's clock), which keeps it from being judged offline; not a reading. CN 3020
        says so too, with its analysers' working states (their own marks in the worker)."""
        status = DeviceStatus(
            site=entry.site.id,
            device=entry.device.id,
            state=DeviceState.ONLINE,
            at=self._clock.now(),
            instruments=instruments or {},
        )
        self._awaiting_kafka += 1
        try:
            await self._producer.send_and_wait(
                topics.STATUS, status.to_json(), key=status.site.encode()
            )
        finally:
            self._awaiting_kafka -= 1
        self.stats.heartbeats += 1
        conn.guard.accepted()
        if packet.wants_answer:
            self._answer(conn, hj212.request_answer(packet))

    async def _store(
        self,
        conn: _Connection,
        frame: bytes,
        packet: hj212.Packet,
        entry: DeviceEntry,
        device_reading: DeviceReading,
    ) -> None:
        """A data upload from its own device: stored once, answered after Kafka has it."""
        digest, now = packet_digest(packet), asyncio.get_running_loop().time()
        # An HJ/T 212-2005 upload may have no QN: its DataTime names it instead.
        qn = packet.qn if packet.qn is not None else f"DataTime={packet.data_time}"
        seen = self._replays.check(packet.mn, packet.cn, qn, digest, now)
        key = (packet.mn, packet.cn, qn)
        # A copy of an upload still on its way to Kafka (the device resent it on a new
        # connection) is answered only once Kafka has it: answered at once, the device forgot a
        # reading that the failing send then lost (the drill lost one per HJ 212 device so,
        # while Kafka restarted). Not taken: no answer, and the device sends it again.
        pending = self._in_flight.get(key) if seen is Replay.DUPLICATE else None
        if pending is not None and not await asyncio.shield(pending):
            return
        if seen is Replay.DUPLICATE:
            self.stats.duplicates += 1
            conn.guard.accepted()
            log.info("HJ 212: MN %s resent QN %s: answered, not stored again", packet.mn, qn)
            if packet.wants_answer:
                self._answer(conn, hj212.data_answer(packet))
            return
        if seen is Replay.CONFLICT:
            error = hj212.BadField(
                f"QN={qn} (CN {packet.cn}) was used by MN {packet.mn} for a packet that "
                "said something else, within the replay window",
                key="QN",
            )
            answer = hj212.request_answer(packet, hj212.QnRtn.QN_ERROR)
            await self._reject(conn, frame, error, answer)
            return
        # The same contract as every transport's: time window, the device's pollutants,
        # plausible values (ingest/contract.py).
        reading = admit(
            entry, device_reading, ReadingSource.HJ212, self._clock.now(), limiter=self.limiter
        )
        if isinstance(reading, Rejection):
            # QnRtn 2 (refused) for the rate limit too: the packet is well formed and its own
            # device's, so no field is in error; refused, the device stops resending it (left
            # unanswered it would send it again, adding to its rate), and the dead letter
            # says why.
            answer = hj212.request_answer(packet, hj212.QnRtn.REJECTED)
            if reading.reason is RejectReason.RATE_LIMITED and self.dead_letters.over_budget(
                packet.mn, reading.reason, now
            ):
                conn.guard.bad()  # past its dead-letter budget too: counted, not kept
                self._answer(conn, answer)
                return
            await self._reject(conn, frame, (reading.reason, reading.detail), answer)
            return
        if packet.resent:
            reading = reading.model_copy(update={"resent": True})
            self.stats.resent += 1
        # Taken before the send, so that a copy arriving meanwhile is a duplicate; given back
        # if Kafka does not take it, so that the device's resend is stored.
        self._replays.remember(packet.mn, packet.cn, qn, digest, now)
        taken: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = taken
        self._awaiting_kafka += 1
        try:
            await self._producer.send_and_wait(
                topics.READINGS, reading.to_json(), key=reading.site.encode()
            )
        except BaseException:
            self._replays.forget(packet.mn, packet.cn, qn)
            taken.set_result(False)
            raise
        else:
            taken.set_result(True)
        finally:
            self._awaiting_kafka -= 1
            if self._in_flight.get(key) is taken:
                del self._in_flight[key]
        self.stats.bridged += 1
        conn.guard.accepted()
        if packet.wants_answer:
            self._answer(conn, hj212.data_answer(packet))

    # -- answers and dead letters ----------------------------------------------------------------

    def _answer(self, conn: _Connection, packet: hj212.Packet | None) -> None:
        if packet is None:
            return
        try:
            text = hj212.build(packet)
        except hj212.Hj212Error as error:  # a salvaged QN or MN too long to answer with
            log.info("HJ 212: no answer to %s: %s", conn.peer, error)
            return
        conn.writer.write(text.encode())
        self.stats.answered += 1

    async def _reject(
        self,
        conn: _Connection,
        payload: bytes,
        error: hj212.Hj212Error | tuple[RejectReason, str],
        answer: hj212.Packet | None,
        *,
        password: bool = False,
    ) -> None:
        """A bad frame: counted against the connection, dead-lettered, answered if possible."""
        conn.guard.bad(password=password)
        if isinstance(error, hj212.Hj212Error):
            reason, detail = RejectReason(error.kind), error.detail
        else:
            reason, detail = error
        letter = await self._dead_letter(conn.peer, payload, reason, detail)
        if answer is not None:
            # The answer waits for the evidence (a flood of bad frames on one connection is
            # slowed to Kafka's pace by it); a letter Kafka did not take answers nothing.
            await asyncio.wait({letter})
            if letter.exception() is not None:
                return
        self._answer(conn, answer)

    async def _dead_letter(
        self, peer: str, payload: bytes, reason: RejectReason, detail: str
    ) -> asyncio.Future[None]:
        """The frame's dead letter, keyed by the peer's address; the future says when Kafka has
        it (ecowatch.ingest.dead_letters). Never raises."""
        return await self.dead_letters.send(
            payload, reason, detail, origin=f"tcp://{peer}", key=peer
        )


class Listening:
    """What :meth:`Hj212Server.serve` returns: the listening socket, and the server's stop.
    Leaving ``async with`` (or ``wait_closed``) stops the HJ 212 server, its connections and
    its queued dead letters with it, so that the producer can be stopped right after."""

    def __init__(self, server: asyncio.Server, hj212_server: Hj212Server) -> None:
        self._server = server
        self._hj212 = hj212_server

    @property
    def sockets(self) -> tuple[Any, ...]:
        return tuple(self._server.sockets)

    def close(self) -> None:
        """Stop accepting; the connections and dead letters are for ``wait_closed``."""
        self._server.close()

    async def wait_closed(self) -> None:
        await self._hj212.stop()

    async def __aenter__(self) -> Listening:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.wait_closed()


async def _close(writer: asyncio.StreamWriter, *, abort: bool) -> None:
    if abort:
        writer.transport.abort()
        return
    writer.close()
    try:
        await asyncio.wait_for(writer.wait_closed(), CLOSE_TIMEOUT_SECONDS)
    except (TimeoutError, ConnectionError, OSError):
        writer.transport.abort()


def _enough_file_descriptors(connections: int) -> None:
    """Raise the process's open-file limit to hold every connection, if the system allows."""
    wanted = connections + 256  # Kafka's sockets, logs and the like
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    if soft < wanted:
        log.warning(
            "HJ 212: the open-file limit (%d) holds fewer than %d connections", soft, connections
        )
