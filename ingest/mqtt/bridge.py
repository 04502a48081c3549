"""The MQTT bridge: device readings from Mosquitto into Kafka, bad ones to the dead-letter topic.

Delivery is at-least-once end to end: the bridge subscribes with QoS 1 on a persistent MQTT 5
session and acknowledges a message to the broker only after Kafka has acknowledged the record
(``acks=all``). If the bridge dies, Mosquitto keeps the unacknowledged messages and redelivers
them; nothing a device published is lost, a few may arrive twice.

Nothing a device sends can stop the bridge: every message ends as a record in Kafka, a reading
or a dead letter, and is acknowledged once Kafka has it; an error in the bridge's own handling
of one message is that message's dead letter (``unhandled``).

Several bridges may run at once, each taking a slice of the sites (``topics.BridgeSlice``) on
plain subscriptions of its own persistent session: no device can join it, and Mosquitto keeps
it across its own restarts (it does not keep shared subscriptions).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import paho.mqtt.client as mqtt
from aiokafka.partitioner import DefaultPartitioner
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from ecowatch import topics
from ecowatch.clock import Clock
from ecowatch.config.catalogue import Catalogue
from ecowatch.config.settings import load_settings
from ecowatch.edges.kafka import Producer
from ecowatch.edges.outage import Outage
from ecowatch.errors import ServiceDown
from ecowatch.ingest.contract import ReadingLimiter, ReadingRate
from ecowatch.ingest.dead_letters import DeadLetterCounts, DeadLetters
from ecowatch.ingest.validation import Rejection, accept_mqtt_reading, accept_mqtt_status
from ecowatch.schema import DeviceStatus, Reading, ReadingBatch, ReadingSource, RejectReason
from ecowatch.topics import BridgeSlice

ALL_SITES = BridgeSlice()

log = logging.getLogger(__name__)

_partitioner = DefaultPartitioner()

# How long Mosquitto keeps the bridge's session (and queues readings for it) while it is away.
SESSION_EXPIRY_SECONDS = 24 * 3600


@dataclass
class BridgeStats:
    """What the bridge has done since it started. Read by the demo and logged periodically."""

    received: int = 0
    bridged: int = 0  # readings into ecowatch.readings
    statuses: int = 0  # status changes into ecowatch.status
    # The dead-letter sender's counts: in Kafka by reason, suppressed past a device's budget
    # (acknowledged, not kept), lost.
    letters: DeadLetterCounts = field(default_factory=DeadLetterCounts)

    def as_dict(self) -> dict[str, object]:
        return {
            "received": self.received,
            "bridged": self.bridged,
            "statuses": self.statuses,
            **self.letters.as_dict(),
        }


@dataclass(frozen=True)
class _Inbound:
    topic: str
    payload: bytes
    mid: int
    qos: int
    retain: bool = False


# A batch goes to Kafka when it holds this many readings or bytes, or this long after its first
# reading: a few milliseconds on a reading's way, for a Kafka record (and a Faust event in the
# worker) per batch instead of per reading.
BATCH_READINGS = 200
BATCH_BYTES = 256 * 1024  # Kafka's record limit is 1 MiB
BATCH_LINGER_S = 0.025


class ReadingBatches:
    """The readings on their way to Kafka, one batch per partition of ``ecowatch.readings``:
    each reading goes to the partition its site's key would (Kafka's default partitioner), so
    a site's readings stay in one partition, in order, with the tables keyed by site."""

    def __init__(
        self,
        producer: Producer,
        sent: Callable[[asyncio.Future, list[_Inbound]], None],
    ) -> None:
        self._producer = producer
        self._sent = sent  # (the batch's delivery, its messages): acknowledges them when done
        self._partitions: list[int] | None = None
        self._of_site: dict[str, int] = {}
        self._open: dict[int, tuple[list[bytes], list[_Inbound], int]] = {}
        self._locks: defaultdict[int, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self._flushing: set[asyncio.Task[None]] = set()  # the timers' flushes, held till done

    async def _partition(self, site: str) -> int:
        p = self._of_site.get(site)
        if p is None:
            if self._partitions is None:
                self._partitions = sorted(await self._producer.partitions_for(topics.READINGS))
            p = _partitioner(site.encode(), self._partitions, self._partitions)
            self._of_site[site] = p
        return p

    async def add(self, site: str, reading: bytes, item: _Inbound) -> None:
        p = await self._partition(site)
        readings, items, size = self._open.get(p) or ([], [], 0)
        readings.append(reading)
        items.append(item)
        self._open[p] = (readings, items, size + len(reading) + 1)
        if len(readings) >= BATCH_READINGS or size + len(reading) >= BATCH_BYTES:
            await self._flush(p)
        elif p not in self._timers:
            self._timers[p] = asyncio.get_running_loop().call_later(
                BATCH_LINGER_S, self._flush_later, p
            )

    def _flush_later(self, p: int) -> None:
        task = asyncio.get_running_loop().create_task(self._flush(p))
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)

    async def _flush(self, p: int) -> None:
        timer = self._timers.pop(p, None)
        if timer is not None:
            timer.cancel()
        # One send at a time per partition: the batches reach Kafka in the order they closed.
        async with self._locks[p]:
            batch = self._open.pop(p, None)
            if batch is None:
                return
            readings, items, _ = batch
            try:
                delivery = await self._producer.send(
                    topics.READINGS, ReadingBatch.json_of(readings), partition=p
                )
            except Exception as exc:  # the producer refused at once: left unacknowledged
                delivery = asyncio.get_running_loop().create_future()
                delivery.set_exception(exc)
            self._sent(delivery, items)

    async def flush_all(self) -> None:
        for p in list(self._open):
            await self._flush(p)


class MqttBridge:
    def __init__(
        self,
        *,
        mqtt_host: str,
        mqtt_port: int,
        username: str,
        password: str,
        producer: Producer,
        catalogue: Catalogue,
        clock: Clock,
        bridge_slice: BridgeSlice = ALL_SITES,
        reading_rate: ReadingRate | None = None,
    ) -> None:
        """``reading_rate``: each device's allowance; by default ECOWATCH_READING_RATE_FACTOR's."""
        self._host, self._port = mqtt_host, mqtt_port
        # Mosquitto takes the user name as the client id (use_username_as_clientid): no device
        # can take over the bridge's session by naming its id.
        self._client_id = username
        self._slice = bridge_slice
        self._connected_at = 0.0
        self._quick_drops = 0
        self._producer = producer
        self._catalogue = catalogue
        self._clock = clock
        # A message's dead letter: the message is acknowledged once Kafka has the letter.
        self.dead_letters = DeadLetters(producer, source=ReadingSource.MQTT, clock=clock)
        self.stats = BridgeStats(letters=self.dead_letters.counts)
        # paho's thread appends; the loop drains. The loop is woken (a write to its self-pipe)
        # only when it sleeps, not once per message: at thousands a second that wake-up, an
        # asyncio.Queue and a task per message were a third of the bridge's CPU.
        self._arrived: deque[_Inbound] = deque()
        self._asleep = False
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connected = threading.Event()
        self._connect_error: str | None = None
        self._pending: set[asyncio.Future] = set()  # sent to Kafka, not yet acknowledged
        # One device cannot flood: past its allowance, its readings are dead-lettered
        # (rate_limited, under the budget above) and acknowledged.
        if reading_rate is None:
            reading_rate = ReadingRate(factor=load_settings().reading_rate_factor)
        self.limiter = ReadingLimiter(reading_rate)
        self._batches = ReadingBatches(producer, self._batch_sent)
        self._mqtt_outage = Outage("Mosquitto (MQTT)", f"mqtt://{mqtt_host}:{mqtt_port}")

        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=username,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        self._client.username_pw_set(username, password)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        self._client.on_disconnect = self._on_disconnect

    # -- paho's network thread -------------------------------------------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._connect_error = str(reason_code)
            self._connected.set()
            return
        self._connected_at = time.monotonic()
        back = self._mqtt_outage.up()
        if back:
            log.warning(back)
        # Subscribing again on every (re)connect is harmless and survives a lost session.
        # `connected` is set on the SUBACK: from then on the broker keeps readings for us.
        # Retained messages are old news (a status the bridge may have taken before): never
        # sent at subscription (retain handling 2).
        options = SubscribeOptions(qos=1, retainHandling=SubscribeOptions.RETAIN_DO_NOT_SEND)
        filters = self._slice.filters(e.site.id for e in self._catalogue.devices.values())
        client.subscribe([(f, options) for f in filters])
        log.info("bridge connected to MQTT %s:%s", self._host, self._port)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        failed = [str(rc) for rc in reason_codes if rc.is_failure]
        if failed:
            self._connect_error = f"subscription refused: {', '.join(failed)}"
        else:
            log.info(
                "bridge subscribed to readings and status as %s (sites: slice %s)",
                self._client_id,
                self._slice,
            )
        self._connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if not reason_code.is_failure:
            return
        # Two bridges with one client id take the session from each other, forever, each
        # within moments of connecting. Say so, rather than only "lost MQTT" every second.
        now = time.monotonic()
        quick = now - self._connected_at < 5.0
        self._quick_drops = self._quick_drops + 1 if quick else 0
        if self._quick_drops >= 3:
            log.error(
                "bridge keeps losing MQTT right after connecting (%s): is another bridge "
                "running as '%s'? Give each its own MQTT user (ECOWATCH_MQTT_USERNAME) and slice.",
                reason_code,
                self._client_id,
            )
            return
        down = self._mqtt_outage.down(f"connection lost: {reason_code}")
        if down:
            log.error(down)

    def _on_message(self, client, userdata, msg: mqtt.MQTTMessage) -> None:
        assert self._loop is not None
        self._arrived.append(_Inbound(msg.topic, msg.payload, msg.mid, msg.qos, msg.retain))
        if self._asleep:
            self._asleep = False
            self._loop.call_soon_threadsafe(self._wake.set)

    # -- the asyncio side ------------------------------------------------------------------

    def progress(self) -> tuple[int, int]:
        """(messages taken from Mosquitto, messages done with: in Kafka and acknowledged, or
        suppressed), for the stall watch: work outstanding is the difference."""
        s = self.stats
        done = s.bridged + s.statuses + s.letters.total + sum(s.letters.suppressed.values())
        return s.received + len(self._arrived), done

    def why_stalled(self) -> str:
        """The likeliest reason nothing comes out, for the stall's line and /health."""
        if self._mqtt_outage.active:
            return "Mosquitto is unavailable"
        if error := self._producer.stats.last_error:
            return f"Kafka has not taken them; the producer's last error: {error}"
        return f"Kafka has not acknowledged {len(self._pending)} send(s)"

    @property
    def client(self) -> mqtt.Client:
        """The bridge's MQTT connection, shared with the command relay."""
        return self._client

    async def connect(self, timeout: float = 10.0) -> None:
        self._loop = asyncio.get_running_loop()
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY_SECONDS
        address = f"mqtt://{self._host}:{self._port}"
        try:
            self._client.connect(
                self._host, self._port, keepalive=30, clean_start=False, properties=props
            )
        except OSError as exc:
            raise ServiceDown("Mosquitto (MQTT)", address, str(exc)) from None
        self._client.loop_start()
        if not await asyncio.to_thread(self._connected.wait, timeout):
            self._client.loop_stop()
            raise ServiceDown("Mosquitto (MQTT)", address, f"no CONNACK/SUBACK within {timeout}s")
        if self._connect_error:
            self._client.loop_stop()
            raise ServiceDown(
                "Mosquitto (MQTT)", address, f"refused the bridge: {self._connect_error}"
            )

    async def run(self, stop: asyncio.Event) -> None:
        """Bridge until ``stop`` is set, then finish what is in flight and disconnect."""
        if self._loop is None:
            await self.connect()
        stopper = asyncio.create_task(stop.wait())
        arrived = self._arrived
        try:
            while not stop.is_set():
                while arrived and not stop.is_set():
                    await self._handle(arrived.popleft())
                # Asleep first, then look again: a message appended in between is seen here,
                # or its sender sees the flag and wakes the loop.
                self._asleep = True
                if arrived:
                    self._asleep = False
                    continue
                self._wake.clear()
                waker = asyncio.ensure_future(self._wake.wait())
                try:
                    await asyncio.wait({waker, stopper}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waker.cancel()
                self._asleep = False
        finally:
            stopper.cancel()
            await self._batches.flush_all()
            if self._pending:
                await asyncio.gather(*self._pending, return_exceptions=True)
            self._client.disconnect()
            self._client.loop_stop()

    async def _handle(self, item: _Inbound) -> None:
        self.stats.received += 1
        now = self._clock.now()
        try:
            verdict = self._judge(item, now)
            if isinstance(verdict, Rejection):
                await self._dead_letter(item, verdict, now)
                return  # acknowledged when Kafka has its dead letter
            if isinstance(verdict, Reading):
                await self._batches.add(verdict.site, verdict.to_json(), item)
                return  # acknowledged when its batch is in Kafka
            delivery = await self._producer.send(
                topics.STATUS, verdict.to_json(), key=verdict.site.encode()
            )
        except Exception as exc:  # the bridge's own failure on one message: its dead letter
            log.exception("bridge failed on a message from %s; dead-lettered", item.topic)
            failure = Rejection(RejectReason.UNHANDLED, f"{type(exc).__name__}: {exc}")
            await self._dead_letter(item, failure, now)
            return
        self._ack_when_sent(delivery, item, "statuses")

    def _judge(self, item: _Inbound, now: datetime) -> Reading | DeviceStatus | Rejection:
        if item.retain:
            return Rejection(RejectReason.RETAINED, "a retained message is not a new reading")
        if item.topic.endswith("/status"):
            return accept_mqtt_status(item.topic, item.payload, self._catalogue, now)
        return accept_mqtt_reading(
            item.topic, item.payload, self._catalogue, now, limiter=self.limiter
        )

    async def _dead_letter(self, item: _Inbound, rejection: Rejection, now: datetime) -> None:
        """The message's dead letter (counted by the sender), the message acknowledged once
        Kafka has it; past its device's budget, counted and acknowledged, not written."""
        if self.dead_letters.over_budget(item.topic, rejection.reason, time.monotonic()):
            self._ack(item)
            return
        letter = await self.dead_letters.send(
            item.payload, rejection.reason, rejection.detail, origin=item.topic, received_at=now
        )
        self._ack_when_sent(letter, item, None)

    def _batch_sent(self, delivery: asyncio.Future, items: list[_Inbound]) -> None:
        """A batch handed to the producer: its readings are acknowledged once Kafka has it."""
        self._pending.add(delivery)
        delivery.add_done_callback(lambda done: self._acknowledge_all(done, items))

    def _acknowledge_all(self, delivery: asyncio.Future, items: list[_Inbound]) -> None:
        for item in items:
            self._ack_when_stored(delivery, item, "bridged")

    def _ack_when_sent(self, delivery: asyncio.Future, item: _Inbound, counter: str | None) -> None:
        """Kafka's acknowledgement is awaited off the hot path (a callback, not a task per
        message); then Mosquitto's."""
        self._pending.add(delivery)
        delivery.add_done_callback(lambda done: self._ack_when_stored(done, item, counter))

    def _ack_when_stored(
        self, delivery: asyncio.Future, item: _Inbound, counter: str | None
    ) -> None:
        """``counter``: the stats field to count the message in once Kafka has it; None for a
        dead letter (its sender counts it, and logs it if Kafka did not take it)."""
        self._pending.discard(delivery)
        exc = None if delivery.cancelled() else delivery.exception()
        if delivery.cancelled() or exc is not None:
            # Not acknowledged: Mosquitto redelivers it on the next session. Tagged, so that a
            # Kafka outage folds these into its one line (ecowatch.edges.outage).
            if counter is not None:
                log.error(
                    "Kafka did not take the message from %s (%s); left unacknowledged",
                    item.topic,
                    "cancelled" if exc is None else f"{type(exc).__name__}: {exc}",
                    extra={"outage": "kafka"},
                )
            return
        if counter == "bridged":
            self.stats.bridged += 1
        elif counter == "statuses":
            self.stats.statuses += 1
        self._ack(item)

    def _ack(self, item: _Inbound) -> None:
        if item.qos > 0:
            self._client.ack(item.mid, item.qos)
