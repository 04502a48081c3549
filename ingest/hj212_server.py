"""The HJ 212 TCP server: real monitors' data uploads into the same Kafka readings topic.

Each connection gets its own :class:`Framer` (partial reads, several packets per read,
garbage between packets) and :class:`Reassembler` (split packets). A data upload (CN 2011,
2051, 2061, 2031) becomes a :class:`Reading` keyed by site, exactly as the MQTT bridge makes
them, and is answered with a 9014 data answer when its Flag asks for one — only after Kafka
has acknowledged the record, so an answered packet is never lost. A bad packet goes to the
dead-letter topic with the codec's error kind and is answered with a 9011 QnRtn when the
packet's QN and MN can be recovered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer

from ecowatch import topics
from ecowatch.clock import Clock
from ecowatch.config.catalogue import Catalogue
from ecowatch.ingest import hj212
from ecowatch.schema import DeadLetter, Reading, ReadingSource, RejectReason

log = logging.getLogger(__name__)

DATA_COMMANDS = frozenset(hj212.VALUE_SUFFIX_BY_CN)
READ_SIZE = 64 * 1024
# A device that says nothing for this long is disconnected; HJ 212 devices upload at least
# every few minutes and reconnect on their own.
IDLE_TIMEOUT_SECONDS = 600.0


@dataclass
class Hj212Stats:
    connections: int = 0
    packets: int = 0
    bridged: int = 0
    answered: int = 0
    ignored: int = 0  # valid packets that carry no readings (CN 1062, heartbeats, ...)
    dead_lettered: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, object]:
        return {
            "connections": self.connections,
            "packets": self.packets,
            "bridged": self.bridged,
            "answered": self.answered,
            "ignored": self.ignored,
            "dead_lettered": sum(self.dead_lettered.values()),
            "dead_lettered_by_reason": dict(sorted(self.dead_lettered.items())),
        }


class Hj212Server:
    def __init__(
        self,
        *,
        producer: AIOKafkaProducer,
        catalogue: Catalogue,
        clock: Clock,
        tz: str = hj212.DEFAULT_TZ,
    ) -> None:
        self._producer = producer
        self._catalogue = catalogue
        self._clock = clock
        self._tz = tz
        self.stats = Hj212Stats()

    async def serve(self, host: str, port: int) -> asyncio.Server:
        server = await asyncio.start_server(self._connection, host, port)
        log.info("HJ 212 server listening on %s:%s", host, port)
        return server

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = "{}:{}".format(*writer.get_extra_info("peername")[:2])
        self.stats.connections += 1
        framer, reassembler = hj212.Framer(), hj212.Reassembler()
        try:
            while True:
                data = await asyncio.wait_for(reader.read(READ_SIZE), IDLE_TIMEOUT_SECONDS)
                if not data:
                    break
                for frame in framer.feed(data):
                    await self._frame(frame, peer, writer, reassembler)
                await writer.drain()
        except (TimeoutError, ConnectionError) as exc:
            log.info("HJ 212 connection from %s closed: %s", peer, type(exc).__name__)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _frame(
        self,
        frame: bytes | hj212.Hj212Error,
        peer: str,
        writer: asyncio.StreamWriter,
        reassembler: hj212.Reassembler,
    ) -> None:
        if isinstance(frame, hj212.Hj212Error):
            await self._dead_letter(peer, frame.raw, frame)
            return
        self.stats.packets += 1
        try:
            packet = hj212.parse(frame)
        except hj212.Hj212Error as error:
            await self._dead_letter(peer, frame, error)
            self._answer(writer, hj212.reject_answer(frame, error))
            return
        if hj212.is_split(packet.flag):
            whole = reassembler.add(packet)
            if whole is None:  # more parts to come; each part is answered on its own
                if packet.wants_answer:
                    self._answer(writer, hj212.data_answer(packet))
                return
            packet = whole
        if packet.cn not in DATA_COMMANDS:
            self.stats.ignored += 1
            if packet.wants_answer:
                self._answer(writer, hj212.request_answer(packet))
            return
        try:
            mn, device_reading = hj212.to_device_reading(packet, self._tz)
        except hj212.Hj212Error as error:
            await self._dead_letter(peer, frame, error)
            self._answer(writer, hj212.reject_answer(frame, error))
            return
        entry = self._catalogue.device(mn)
        if entry is None:
            letter = RejectReason.UNKNOWN_DEVICE, f"MN '{mn}' is not in the catalogue"
            await self._dead_letter(peer, frame, letter)
            self._answer(writer, hj212.request_answer(packet, hj212.QnRtn.MN_ERROR))
            return
        now = self._clock.now()
        reading = Reading(
            site=entry.site.id,
            device=entry.device.id,
            model=entry.device.model.value,
            ts=device_reading.ts,
            values=device_reading.values,
            source=ReadingSource.HJ212,
            received_at=now,
        )
        await self._producer.send_and_wait(
            topics.READINGS, reading.to_json(), key=reading.site.encode()
        )
        self.stats.bridged += 1
        if packet.wants_answer:
            self._answer(writer, hj212.data_answer(packet))

    def _answer(self, writer: asyncio.StreamWriter, packet: hj212.Packet | None) -> None:
        if packet is not None:
            writer.write(hj212.build(packet).encode())
            self.stats.answered += 1

    async def _dead_letter(
        self,
        peer: str,
        payload: bytes,
        error: hj212.Hj212Error | tuple[RejectReason, str],
    ) -> None:
        if isinstance(error, hj212.Hj212Error):
            reason, detail = RejectReason(error.kind), error.detail
        else:
            reason, detail = error
        letter = DeadLetter.of(
            source=ReadingSource.HJ212,
            origin=f"tcp://{peer}",
            reason=reason,
            detail=detail,
            payload=payload,
            received_at=self._clock.now(),
        )
        log.info("dead-lettered an HJ 212 packet from %s: %s (%s)", peer, reason, detail)
        await self._producer.send_and_wait(topics.READINGS_DLQ, letter.to_json(), key=peer.encode())
        self.stats.dead_lettered[reason.value] += 1
