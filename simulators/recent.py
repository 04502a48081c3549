"""What an MQTT monitor published lately, to publish again after it loses the broker.

Mosquitto acknowledges a QoS 1 message (PUBACK) once it holds it in memory, and saves its
memory to disk about once a second (``autosave_interval 1``). A broker killed with ``kill -9``
forgets what it acknowledged since its last save: a storm's drill lost 1.6 s of each MQTT
monitor's readings that way, while the HJ 212 monitors, answered only once Kafka holds a
packet, lost none. No Mosquitto 2.0 setting closes that second, so the device contract
does (docs/topics-and-schemas.md): a monitor that loses its connection publishes again what
it published in the :data:`RESEND_BEFORE_LOSS` seconds before. The platform takes one reading
per (device, time), so what the broker did keep is a repeat, skipped; a repeat with other
values does not replace the first.

The caller gives the times (``time.monotonic()`` in the devices). Sends come from the
device's own thread, the loss and the reconnection from paho's: a lock keeps them apart.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Generic, TypeVar

# Seconds before a lost connection whose readings a monitor publishes again: ten times what
# Mosquitto can lose between two saves, and more than a save of a large queue takes.
RESEND_BEFORE_LOSS = 10.0

T = TypeVar("T")


@dataclass
class RecentSends(Generic[T]):
    """A device's sends of the last ``keep`` seconds, and of the ``keep`` seconds before its
    connection was lost until it is back, however long that takes."""

    keep: float = RESEND_BEFORE_LOSS
    _sent: deque[tuple[float, T]] = field(default_factory=deque)
    _lost_at: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def sent(self, at: float, item: T) -> None:
        with self._lock:
            self._sent.append((at, item))
            # While the connection is lost, what came before the loss is still owed.
            floor = (self._lost_at if self._lost_at is not None else at) - self.keep
            while self._sent and self._sent[0][0] < floor:
                self._sent.popleft()

    def lost(self, at: float) -> None:
        """The broker went away (not at our asking). A second loss before the connection is
        back changes nothing: the first one's seconds are still owed."""
        with self._lock:
            if self._lost_at is None:
                self._lost_at = at

    def again(self) -> list[T]:
        """Connected again: what was sent in the ``keep`` seconds up to the loss, oldest first,
        to publish again. What was sent after is not in it: the broker never acknowledged
        that, and MQTT sends it again by itself."""
        with self._lock:
            lost_at, self._lost_at = self._lost_at, None
            if lost_at is None:
                return []
            return [item for at, item in self._sent if lost_at - self.keep <= at <= lost_at]

    def __len__(self) -> int:
        return len(self._sent)
