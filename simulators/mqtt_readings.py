"""One device's readings over MQTT (QoS 1), as every simulated monitor sends them: the
fleet's, the drill's and the bench's.

- Each PUBACK is filed against the reading it acknowledges. paho's network thread may handle
  a PUBACK before ``publish()`` has returned its mid to the sending thread: that early
  acknowledgement waits until the sender files the mid.
- After a connection the device did not close, what it sent in the seconds before is
  published again once it is connected (``simulators/recent.py``): a broker killed with
  ``kill -9`` may have acknowledged and forgotten it.

The owner keeps its paho client and its callbacks, and hands this class the events that
concern readings: ``acknowledged`` from ``on_publish``, ``connected`` from ``on_connect``,
``lost`` from ``on_disconnect``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

import paho.mqtt.client as mqtt

from ecowatch.simulators.recent import RecentSends

T = TypeVar("T")
_NONE = object()


class ReadingSender(Generic[T]):
    """``on_ack(token, ok)`` is called once for each reading sent (``ok``: the broker took
    it); not for its copy published again after a lost connection, which the platform skips
    if it has the reading already."""

    def __init__(
        self,
        client: mqtt.Client,
        topic: str,
        on_ack: Callable[[T, bool], None],
        republish: bool = True,
    ) -> None:
        self._client = client
        self._topic = topic
        self._on_ack = on_ack
        self._pending: dict[int, T] = {}  # mid → the reading's token
        self._early: dict[int, bool] = {}  # PUBACKs that beat publish() to their mid
        self._again: set[int] = set()  # mids of readings published again
        self._lock = threading.Lock()  # never held while calling paho: it holds its own
        self._recent: RecentSends[tuple[T, bytes]] | None = RecentSends() if republish else None
        self.republished = 0

    def send(self, payload: bytes, token: T, again_if_lost: bool = True) -> None:
        """Publish one reading. ``again_if_lost``: False for a payload not worth sending twice
        (a garbled one)."""
        if self._recent is not None and again_if_lost:
            self._recent.sent(time.monotonic(), (token, payload))
        info = self._client.publish(self._topic, payload, qos=1)
        with self._lock:
            early = self._early.pop(info.mid, None)
            if early is None:
                self._pending[info.mid] = token
        if early is not None:
            self._on_ack(token, early)

    def acknowledged(self, mid: int, reason_code: mqtt.ReasonCode) -> None:
        """From the owner's ``on_publish``, for a mid that is not one of its own messages."""
        ok = not reason_code.is_failure
        with self._lock:
            if mid in self._again:
                self._again.discard(mid)
                return
            token = self._pending.pop(mid, _NONE)
            if token is _NONE:
                self._early[mid] = ok
                return
        self._on_ack(token, ok)  # type: ignore[arg-type]

    def connected(self) -> int:
        """From the owner's ``on_connect`` (paho's thread, which handles the PUBACKs too,
        after this callback: no early acknowledgement here). How many it published again."""
        again = self._recent.again() if self._recent is not None else []
        for _, payload in again:
            info = self._client.publish(self._topic, payload, qos=1)
            with self._lock:
                self._again.add(info.mid)
        self.republished += len(again)
        return len(again)

    def lost(self, reason_code: mqtt.ReasonCode) -> None:
        """From the owner's ``on_disconnect``: a failure is the broker gone, not us."""
        if reason_code.is_failure and self._recent is not None:
            self._recent.lost(time.monotonic())

    def forget(self, client: mqtt.Client | None = None) -> None:
        """A new client (``client``) numbers its messages afresh: what the old one had
        pending is gone."""
        with self._lock:
            self._pending.clear()
            self._early.clear()
            self._again.clear()
            if client is not None:
                self._client = client

    @property
    def unacknowledged(self) -> int:
        with self._lock:
            return len(self._pending)
