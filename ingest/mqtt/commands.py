"""Commands from the platform to devices: Kafka ``ecowatch.commands`` → MQTT ``.../command``.

Runs beside the bridge, on the bridge's MQTT connection (the bridge user may write command
topics; devices may only read their own). A record's offset is committed only once Mosquitto
has acknowledged the command (QoS 1), so a relay that dies re-sends rather than loses; the
meter ignores a command it has already obeyed (same ``command_id``). A command that cannot be
relayed is dead-lettered, and committed only once Kafka has its dead letter.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

import paho.mqtt.client as mqtt
from aiokafka import AIOKafkaConsumer
from pydantic import ValidationError

from ecowatch import topics
from ecowatch.clock import Clock
from ecowatch.config.catalogue import Catalogue, DeviceModel
from ecowatch.config.kafka_accounts import COMMAND_RELAY_GROUP
from ecowatch.edges.kafka import KafkaAccess, Producer, start_consumer
from ecowatch.ingest.dead_letters import DeadLetters
from ecowatch.ingest.validation import rejection_of
from ecowatch.schema import DeviceCommand, ReadingSource, RejectReason

log = logging.getLogger(__name__)


class CommandRelay:
    def __init__(
        self,
        *,
        kafka: KafkaAccess,
        client: mqtt.Client,
        producer: Producer,
        catalogue: Catalogue,
        clock: Clock,
    ) -> None:
        self._kafka = kafka
        self._client = client
        self._catalogue = catalogue
        # A command the platform itself wrote and that cannot be relayed is a fault worth a
        # warning, not a device's noise.
        self.dead_letters = DeadLetters(
            producer, source=ReadingSource.KAFKA, clock=clock, level=logging.WARNING
        )
        self.counts: Counter[str] = Counter()  # relayed, by command

    async def run(self, stop: asyncio.Event) -> None:
        """Relay until ``stop``; after a failure, start again from the last commit."""
        while not stop.is_set():
            try:
                await self._run(stop)
            except Exception:
                log.exception("the command relay failed; restarting from the last commit in 2 s")
                await asyncio.sleep(2)

    async def _run(self, stop: asyncio.Event) -> None:
        consumer: AIOKafkaConsumer = await start_consumer(
            self._kafka, topics.COMMANDS, group_id=COMMAND_RELAY_GROUP
        )
        try:
            while not stop.is_set():
                batches = await consumer.getmany(timeout_ms=500)
                for records in batches.values():
                    for record in records:
                        await self._relay(record.value)
                if batches:
                    await consumer.commit()
        finally:
            await consumer.stop()

    async def _relay(self, raw: bytes) -> None:
        try:
            command = DeviceCommand.model_validate_json(raw)
        except ValidationError as exc:
            rejection = rejection_of(exc)
            await self._dead_letter(raw, rejection.reason, rejection.detail)
            return
        entry = self._catalogue.device(command.device)
        if entry is None or entry.site.id != command.site:
            await self._dead_letter(
                raw,
                RejectReason.UNKNOWN_DEVICE,
                f"device '{command.device}' is not at site '{command.site}' in the catalogue",
            )
            return
        if entry.device.model is not DeviceModel.DISCHARGE_METER:
            await self._dead_letter(
                raw,
                RejectReason.INVALID_VALUE,
                f"device '{command.device}' is a {entry.device.model.value}: it has no valve",
            )
            return
        info = self._client.publish(
            topics.command_topic(command.site, command.device),
            command.command.model_dump_json().encode(),
            qos=1,
        )
        await asyncio.to_thread(info.wait_for_publish, 30)
        if not info.is_published():
            # Not committed: raising stops the relay, and the next one sends it again.
            raise RuntimeError(f"Mosquitto did not acknowledge the command for {command.device}")
        self.counts[command.command.command] += 1
        log.info(
            "relayed %s to %s (%s)", command.command.command, command.device, command.command.reason
        )

    async def _dead_letter(self, raw: bytes, reason: RejectReason, detail: str) -> None:
        # Awaited: the record is committed only once Kafka has its letter. Lost, this raises
        # (DeadLetterLost), and the relay reads the command again from its last commit.
        await self.dead_letters.deliver(raw, reason, detail, origin=topics.COMMANDS)
