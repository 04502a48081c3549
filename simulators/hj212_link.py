"""One monitor's link to the platform over HJ 212 (TCP), as every simulated monitor speaks it:
the fleet's and the fault drill's.

- Each CN 2011 upload is written in the device's :class:`Hj212Dialect` (HJ/T 212-2005,
  HJ 212-2017 or HJ 212-2025, the last with its CP SM4-encrypted when the device has a key),
  with the device's own PW, and filed by its QN until the platform's 9014 answer comes:
  ``on_ack(token)`` is called once for each reading answered (for a device that asks for no
  answer, a 2005 one, once it is written: that is all it can know).
- What a device measured off the network it keeps (at most ``keep_at_most``, the oldest lost
  first) and, back on it, resends marked RF=1 after a live reading (HJ 212-2025 §8.1.2: new
  data first), at most ``resend_window`` of them unanswered at a time, as a monitor paces its
  补传.
- With a :class:`Retry`, an unanswered upload is sent again after a time-out, and all of them
  at once on a new connection, as a monitor keeps its data until the platform answers (the
  drill's). Without one, what was not answered is lost with its connection (the fleet's
  devices, as they always were).

The owner drives the connection: ``open``, ``drop`` and ``close`` as its model goes off and on
the network (the fleet), or a loop that opens it again whenever ``closed`` returns (the drill).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from ecowatch.clock import CHINA
from ecowatch.errors import ServiceDown
from ecowatch.ingest import hj212
from ecowatch.schema import DeviceReading

T = TypeVar("T")

# What a 2025 device keeps to resend after an outage: its store is finite, so a long outage
# loses the oldest readings first. 1,000 is over 16 hours of one-minute readings.
KEEP_AT_MOST = 1000


@dataclass(frozen=True)
class Hj212Dialect:
    """How one device speaks HJ 212: its protocol version and, for 2025, its SM4 key.

    - 2005 (HJ/T 212-2005): by default no QN and no Flag, as fielded 2005 loggers upload data;
      such a device asks for no answer. ``answers=True`` makes it send Flag=1 and a QN.
    - 2017: Flag=5 (version 1, answer wanted), as this simulator always spoke.
    - 2025: Flag=9 (version 2, answer wanted); with ``key``, the CP of its data uploads is
      SM4-encrypted (HJ 212-2025 §6.4: a device on the Internet encrypts CNs 2000-2999), and it
      resends what it could not send, marked RF=1.

    Pollutant codes and DataTime (14 digits) are the 2017 ones in every version: the platform
    maps a 2005 device's old codes anyway, so the simulator need not speak them.
    """

    version: hj212.Version = hj212.Version.V2017
    key: bytes | None = None  # used by a 2025 device only; the others have no encryption
    answers: bool | None = None  # wants 9014 answers; None: the version's habit (not 2005)

    @property
    def wants_answers(self) -> bool:
        return self.version is not hj212.Version.V2005 if self.answers is None else self.answers

    @property
    def flag(self) -> int | None:
        answer = hj212.FLAG_ANSWER if self.wants_answers else 0
        if self.version is hj212.Version.V2005:
            return answer or None  # no version bits; no Flag at all unless it wants answers
        return hj212.reply_flag(self.version) | answer  # reply_flag: the version's bits

    @property
    def has_qn(self) -> bool:
        # A 2005 upload without an answer needs no QN (nothing to match an answer to); the
        # platform names it by its DataTime. From 2017 on, QN is required.
        return self.version is not hj212.Version.V2005 or self.wants_answers

    @property
    def encrypts(self) -> bool:
        return self.version is hj212.Version.V2025 and self.key is not None

    @property
    def resends(self) -> bool:
        # RF (补传) is a 2025 field; 2005 and 2017 devices lose what they could not send, as
        # this simulator's devices always did.
        return self.version is hj212.Version.V2025


@dataclass(frozen=True)
class Retry:
    """An unanswered upload goes again ``after`` seconds (the standard's default time-out is
    5 s), then after twice as long each time, up to ``cap``."""

    after: float = 5.0
    cap: float = 40.0


def reading_qn(reading: DeviceReading) -> str:
    """The reading's time to the millisecond (17 digits): a kept reading was never sent, so
    its resend never reuses a QN the platform has seen."""
    local = reading.ts.astimezone(CHINA)
    return local.strftime("%Y%m%d%H%M%S") + f"{local.microsecond // 1000:03d}"


@dataclass
class _Unanswered(Generic[T]):
    token: T
    data: bytes
    sent_at: float  # monotonic
    wait: float
    kept: bool  # a kept reading resent with RF=1: counts against the resend window


class Hj212Uplink(Generic[T]):
    """One device's HJ 212 connection; ``T`` is whatever names a reading to ``on_ack``."""

    def __init__(
        self,
        device: str,
        st: str,
        host: str,
        port: int,
        on_ack: Callable[[T], None],
        *,
        password: str,
        dialect: Hj212Dialect | None = None,
        keep_at_most: int | None = KEEP_AT_MOST,
        resend_window: int | None = None,
        retry: Retry | None = None,
        local_address: str | None = None,
    ) -> None:
        self.device, self._st = device, st
        self._password = password
        self.dialect = dialect or Hj212Dialect()
        self._host, self._port = host, port
        # The server takes a few connections per address: many devices need addresses apart.
        self._local_address = local_address
        self._on_ack = on_ack
        self._keep_at_most = keep_at_most
        self._resend_window = resend_window
        self.retry = retry
        self._writer: asyncio.StreamWriter | None = None
        self._answers: asyncio.Task[None] | None = None
        self._unanswered: dict[str, _Unanswered[T]] = {}  # QN → upload
        self._kept: deque[tuple[T, DeviceReading]] = deque()  # oldest first
        self._kept_unanswered = 0
        self.kept_resent = 0  # kept readings resent with RF=1

    @property
    def connected(self) -> bool:
        return self._writer is not None

    @property
    def kept(self) -> int:
        """Readings waiting to be resent."""
        return len(self._kept)

    @property
    def unanswered(self) -> int:
        return len(self._unanswered)

    def packet(self, reading: DeviceReading, *, resent: bool = False) -> bytes:
        """The CN 2011 upload of ``reading``, as this device writes it (encrypted or not)."""
        local = reading.ts.astimezone(CHINA)
        cp: dict[str, object] = {"DataTime": local.strftime("%Y%m%d%H%M%S")}
        for code, m in reading.values.items():
            cp[code] = {"Rtd": m.value, "Flag": m.flag.value}
            if m.zs is not None:  # a CEMS's own value corrected to the reference oxygen
                cp[code] = {"Rtd": m.value, "ZsRtd": m.zs, "Flag": m.flag.value}
        dialect = self.dialect
        packet = hj212.Packet(
            qn=reading_qn(reading) if dialect.has_qn else None,
            st=self._st,
            cn="2011",
            pw=self._password,
            mn=self.device,
            flag=dialect.flag,
            rf=1 if resent else None,
            cp=cp,
            encrypted=dialect.encrypts,
        )
        return hj212.build_bytes(packet, dialect.key)

    async def open(self) -> None:
        """Connect; with a retry, whatever is unanswered goes again at once, oldest first."""
        local = (self._local_address, 0) if self._local_address is not None else None
        try:
            reader, writer = await asyncio.open_connection(self._host, self._port, local_addr=local)
        except OSError as exc:
            raise ServiceDown(
                "the HJ 212 server", f"tcp://{self._host}:{self._port}", str(exc)
            ) from None
        self._writer = writer
        self._answers = asyncio.create_task(self._read_answers(reader, writer))
        if self.retry is not None:
            for qn in sorted(self._unanswered):  # a QN is its reading's time
                self._send_again(qn)

    async def closed(self) -> None:
        """Returns once the connection has ended (dropped, closed, or lost)."""
        if self._answers is not None:
            await asyncio.wait({self._answers})

    def send(self, reading: DeviceReading, token: T, *, garble: bool = False) -> int:
        """The live reading, then what was kept, as the window allows; how many kept went.
        ``garble``: a byte lost on the line, so the CRC no longer fits (never answered)."""
        data = self.packet(reading)
        if garble:
            self._write(data[:-8] + b"\r\n")
        else:
            self._upload(reading, token, data, kept=False)
        return self.send_kept()

    def keep(self, reading: DeviceReading, token: T) -> int:
        """A reading made off the network, for a later connection to resend; how many of the
        oldest a full store lost for it (0 or 1)."""
        lost = 0
        if self._keep_at_most is not None and len(self._kept) >= self._keep_at_most:
            self._kept.popleft()
            lost = 1
        self._kept.append((token, reading))
        return lost

    def send_kept(self) -> int:
        """Resend kept readings (RF=1) while connected and the window has room; how many."""
        sent = 0
        window = self._resend_window
        while (
            self._kept
            and self._writer is not None
            and (window is None or self._kept_unanswered < window)
        ):
            token, reading = self._kept.popleft()
            self._upload(reading, token, self.packet(reading, resent=True), kept=True)
            sent += 1
        self.kept_resent += sent
        return sent

    def resend_overdue(self, now: float) -> None:
        """With a retry: each upload unanswered past its time-out goes again (``now``:
        monotonic seconds). While disconnected, the next connection sends them all."""
        if self.retry is None or self._writer is None:
            return
        for qn, upload in list(self._unanswered.items()):
            if now - upload.sent_at >= upload.wait:
                upload.wait = min(self.retry.cap, upload.wait * 2)
                self._send_again(qn)

    def drop(self) -> None:
        """The link is lost: no goodbye."""
        if self._writer is not None:
            self._writer.transport.abort()
            self._lost()

    def close(self) -> None:
        """A clean stop."""
        if self._answers is not None:
            self._answers.cancel()
        if self._writer is not None:
            self._writer.close()
            self._lost()

    def _upload(self, reading: DeviceReading, token: T, data: bytes, *, kept: bool) -> None:
        written = self._write(data)
        if not self.dialect.wants_answers:
            if written:
                self._on_ack(token)
            return
        if written or self.retry is not None:  # with a retry, it waits for a connection
            wait = self.retry.after if self.retry is not None else 0.0
            self._unanswered[reading_qn(reading)] = _Unanswered(
                token, data, time.monotonic(), wait, kept
            )
            if kept:
                self._kept_unanswered += 1

    def _write(self, data: bytes) -> bool:
        if self._writer is None:
            return False
        self._writer.write(data)
        return True

    def _send_again(self, qn: str) -> None:
        upload = self._unanswered[qn]
        self._write(upload.data)
        upload.sent_at = time.monotonic()

    async def _read_answers(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        framer = hj212.Framer()
        try:
            while data := await reader.read(65536):
                for frame in framer.feed(data):
                    if isinstance(frame, bytes):
                        with contextlib.suppress(hj212.Hj212Error):
                            self._answered(hj212.parse(frame))
        except OSError:
            pass  # reset by the server: lost like any other end
        finally:
            if self._writer is writer:  # the server ended it, not the owner
                writer.transport.abort()
                self._lost()

    def _answered(self, answer: hj212.Packet) -> None:
        if answer.cn != hj212.CN_DATA_ANSWER or answer.qn is None:
            return
        upload = self._unanswered.pop(answer.qn, None)
        if upload is None:
            return
        self._on_ack(upload.token)
        if upload.kept:
            self._kept_unanswered -= 1
            self.send_kept()

    def _lost(self) -> None:
        """The link's connection has ended."""
        self._writer = None
        if self.retry is None:  # nothing is sent again: what was unanswered is lost
            self._unanswered.clear()
            self._kept_unanswered = 0
