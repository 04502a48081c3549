"""Topic names, MQTT and Kafka, in one place (the README's table is written from this)."""

from __future__ import annotations

from dataclasses import dataclass

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
READINGS = "ecowatch.readings"
READINGS_DLQ = "ecowatch.readings.dlq"
STATUS = "ecowatch.status"
COMMANDS = "ecowatch.commands"  # platform → devices (valve commands), relayed by the bridge
FINDINGS = "ecowatch.findings"
CASES = "ecowatch.cases"
NOTIFICATIONS = "ecowatch.notifications"
TICKS = "ecowatch.ticks"  # time passing, per site: deadlines and offline devices fall due
ACTIONS = "ecowatch.actions"  # officers' acknowledgements and findings, from the API

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
)
