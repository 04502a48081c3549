"""Topic names, MQTT and Kafka, in one place (the README's table is written from this)."""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

MQTT_PREFIX = "ecowatch/v1"


def reading_topic(site: str, device: str) -> str:
    """Device → platform readings, QoS 1."""
    return f"{MQTT_PREFIX}/{site}/{device}/reading"


def status_topic(site: str, device: str) -> str:
    """Device → platform status, retained; the device's last will publishes ``offline`` here."""
    return f"{MQTT_PREFIX}/{site}/{device}/status"


def command_topic(site: str, device: str) -> str:
    """Platform → device commands (valve open/close for discharge meters)."""
    return f"{MQTT_PREFIX}/{site}/{device}/command"


MQTT_READINGS_FILTER = f"{MQTT_PREFIX}/+/+/reading"
MQTT_STATUS_FILTER = f"{MQTT_PREFIX}/+/+/status"


@dataclass(frozen=True)
class BridgeSlice:
    """Which sites a bridge instance takes: instance ``index`` of ``count`` (1-based).

    Bridges split the devices by site rather than through an MQTT shared subscription:
    Mosquitto 2.0 does not restore a shared subscription from its persistence after a restart,
    so what devices publish between the broker's restart and the bridge's return has no
    subscriber and is dropped, though acknowledged (measured: 7 % of a load lost). A plain
    subscription in the bridge's persistent session is restored, and queues meanwhile.
    """

    index: int = 1
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> BridgeSlice:
        index, sep, count = text.partition("/")
        if not (sep and index.isdigit() and count.isdigit()):
            raise ValueError(f"expected I/N, e.g. 1/2 for the first of two bridges, not '{text}'")
        chosen = cls(int(index), int(count))
        if not 1 <= chosen.index <= chosen.count:
            raise ValueError(f"instance {chosen.index} of {chosen.count} is not 1…{chosen.count}")
        return chosen

    def takes(self, site: str) -> bool:
        return zlib.crc32(site.encode()) % self.count == self.index - 1

    def filters(self, sites: Iterable[str]) -> list[str]:
        """The MQTT topic filters of this slice: every site's readings and status, one
        wildcard pair when there is one bridge."""
        if self.count == 1:
            return [MQTT_READINGS_FILTER, MQTT_STATUS_FILTER]
        mine = sorted(s for s in set(sites) if self.takes(s))
        return [f"{MQTT_PREFIX}/{s}/+/{channel}" for s in mine for channel in ("reading", "status")]

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


@dataclass(frozen=True)
class DeviceTopic:
    site: str
    device: str
    channel: str


def parse_device_topic(topic: str) -> DeviceTopic | None:
    """``ecowatch/v1/{site}/{device}/{channel}`` → its parts, or None for any other shape."""
    parts = topic.split("/")
    if len(parts) != 5 or "/".join(parts[:2]) != MQTT_PREFIX or not all(parts[2:]):
        return None
    return DeviceTopic(site=parts[2], device=parts[3], channel=parts[4])


# Kafka topics. Readings are keyed by site id, so one site's readings stay in order.
TOPIC_PREFIX = "ecowatch."  # every platform topic's (a Kafka ACL can name them all)
READINGS = "ecowatch.readings"
READINGS_DLQ = "ecowatch.readings.dlq"
STATUS = "ecowatch.status"
COMMANDS = "ecowatch.commands"  # platform → devices (valve commands), relayed by the bridge
FINDINGS = "ecowatch.findings"
CASES = "ecowatch.cases"
NOTIFICATIONS = "ecowatch.notifications"
TICKS = "ecowatch.ticks"  # time passing, per site: deadlines and offline devices fall due
ACTIONS = "ecowatch.actions"  # officers' acknowledgements and findings, from the API
MARKS = "ecowatch.marks"  # every change of a mark (标记): declared, proven, reviewed (API)
ALARMS = "ecowatch.alarms"  # an operator's or officer's 消警: an alarm silenced (API)

# What the ingest side (bridge, HJ 212 server) makes sure of before it starts.
INGEST_TOPICS = (READINGS, STATUS, READINGS_DLQ, COMMANDS)

KAFKA_TOPICS = (
    READINGS,
    READINGS_DLQ,
    STATUS,
    COMMANDS,
    FINDINGS,
    CASES,
    NOTIFICATIONS,
    TICKS,
    ACTIONS,
    MARKS,
    ALARMS,
)

# How long the platform's topics keep a record: explicit, the same on every broker (Kafka's
# default is the broker's setting, 168 h on ours). Kafka deletes whole segments, the oldest
# once its newest record is past the retention: a record can stay up to RETENTION + SEGMENT.
# What the worker keeps about a record (the notification log's entry that stops a second
# send) lives as long, and no longer (ecowatch.alerts.delivery.KEEP_SENT).
RETENTION = timedelta(days=7)
SEGMENT = timedelta(days=1)


def retained_for() -> timedelta:
    """The longest a record can stay in a platform topic."""
    return RETENTION + SEGMENT


def topic_config() -> dict[str, str]:
    """The platform topics' settings (``edges/kafka.py``, ``ensure_topics``), as Kafka takes
    them."""
    return {
        "cleanup.policy": "delete",
        "retention.ms": str(int(RETENTION.total_seconds() * 1000)),
        "segment.ms": str(int(SEGMENT.total_seconds() * 1000)),
    }
