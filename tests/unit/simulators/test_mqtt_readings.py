"""One device's readings over MQTT (simulators/mqtt_readings.py), on a stand-in for paho's
client: which acknowledgement goes with which reading, whatever the threads' order, and what
is published again after the broker is lost."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from ecowatch.simulators.mqtt_readings import ReadingSender

OK = ReasonCode(PacketTypes.PUBACK, "Success")
REFUSED = ReasonCode(PacketTypes.PUBACK, "Not authorized")
LOST = ReasonCode(PacketTypes.DISCONNECT, "Unspecified error")
BYE = ReasonCode(PacketTypes.DISCONNECT, "Normal disconnection")


@dataclass
class Client:
    """paho's publish(): the next mid; ``ack_first`` acknowledges it before returning, as
    paho's network thread may."""

    sender: ReadingSender | None = None
    ack_first: bool = False
    sent: list[bytes] = field(default_factory=list)
    mid: int = 0

    def publish(self, topic: str, payload: bytes, qos: int) -> SimpleNamespace:
        self.mid += 1
        self.sent.append(payload)
        if self.ack_first and self.sender is not None:
            self.sender.acknowledged(self.mid, OK)
        return SimpleNamespace(mid=self.mid)


def sender(client: Client) -> tuple[ReadingSender[int], list[tuple[int, bool]]]:
    acks: list[tuple[int, bool]] = []
    s: ReadingSender[int] = ReadingSender(client, "t", lambda i, ok: acks.append((i, ok)))  # type: ignore[arg-type]
    client.sender = s
    return s, acks


def test_each_acknowledgement_goes_with_its_reading() -> None:
    client = Client()
    s, acks = sender(client)
    s.send(b"r0", 0)
    s.send(b"r1", 1)
    assert s.unacknowledged == 2
    s.acknowledged(2, OK)
    s.acknowledged(1, REFUSED)
    assert acks == [(1, True), (0, False)] and s.unacknowledged == 0


def test_an_acknowledgement_that_beats_publish_to_its_mid_is_not_lost() -> None:
    client = Client(ack_first=True)
    s, acks = sender(client)
    s.send(b"r0", 0)
    assert acks == [(0, True)] and s.unacknowledged == 0


def test_after_a_lost_broker_the_last_seconds_are_published_again_once() -> None:
    client = Client()
    s, acks = sender(client)
    s.send(b"r0", 0)
    s.acknowledged(1, OK)
    s.lost(LOST)
    assert s.connected() == 1
    assert client.sent == [b"r0", b"r0"] and s.republished == 1
    s.acknowledged(2, OK)  # the copy's acknowledgement: the reading was counted already
    assert acks == [(0, True)]
    s.connected()  # a later connection owes nothing
    assert s.republished == 1


def test_a_disconnection_of_our_own_asks_for_nothing_again() -> None:
    client = Client()
    s, _ = sender(client)
    s.send(b"r0", 0)
    s.lost(BYE)
    s.connected()
    assert client.sent == [b"r0"]


def test_a_garbled_payload_is_not_sent_twice() -> None:
    client = Client()
    s, _ = sender(client)
    s.send(b"{broken", 0, again_if_lost=False)
    s.lost(LOST)
    s.connected()
    assert client.sent == [b"{broken"]
