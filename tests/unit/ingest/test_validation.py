"""The bridge's judgement of one MQTT message: each kind of bad input has its own reason."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from ecowatch.ingest.validation import (
    MAX_PAYLOAD_BYTES,
    Rejection,
    accept_mqtt_reading,
    accept_mqtt_status,
)
from ecowatch.schema import (
    DataFlag,
    DeadLetter,
    DeviceStatus,
    Reading,
    ReadingSource,
    RejectReason,
)

SITE, DEVICE = "S-OUT-001", "33080200000001"
TOPIC = f"ecowatch/v1/{SITE}/{DEVICE}/reading"


def payload(**overrides: object) -> bytes:
    doc: dict[str, object] = {
        "ts": "2026-11-23T17:30:00+08:00",
        "seq": 7,
        "values": {"w01018": {"value": 42.5, "flag": "N"}, "w00000": {"value": 118.0}},
    }
    doc.update(overrides)
    return json.dumps(doc).encode()


def judge(catalogue, now, body: bytes, topic: str = TOPIC):
    return accept_mqtt_reading(topic, body, catalogue, now)


def test_a_good_reading_is_normalised_and_enriched(catalogue, now):
    reading = judge(catalogue, now, payload())
    assert isinstance(reading, Reading)
    assert (reading.site, reading.device, reading.model) == (SITE, DEVICE, "outfall_monitor")
    assert reading.values["w01018"].value == 42.5
    assert reading.values["w00000"].flag is DataFlag.NORMAL  # the default flag is N
    assert reading.source is ReadingSource.MQTT
    assert reading.received_at == now
    assert reading.ts.utcoffset() == timedelta(hours=8)
    # It survives the trip through Kafka's bytes unchanged.
    assert Reading.from_json(reading.to_json()) == reading


@pytest.mark.parametrize(
    ("body", "reason", "detail_mentions"),
    [
        (b"{not json", RejectReason.BAD_JSON, "Expecting"),
        (b"\xff\xfe\x00garbage", RejectReason.NOT_UTF8, "utf-8"),
        (b"[1, 2]", RejectReason.WRONG_TYPE, "JSON object"),
        (payload(ts=None), RejectReason.WRONG_TYPE, "ts"),
        (
            payload(values={"w01018": {"value": "high"}}),
            RejectReason.WRONG_TYPE,
            "values.w01018.value",
        ),
        (
            payload(values={"w01018": {"value": float("nan")}}),
            RejectReason.NOT_FINITE,
            "values.w01018.value",
        ),
        (payload(values={"w01018": {"value": float("inf")}}), RejectReason.NOT_FINITE, "w01018"),
        (payload(values={}), RejectReason.INVALID_VALUE, "values"),
        (payload(values={"COD": {"value": 1.0}}), RejectReason.INVALID_VALUE, "COD"),
        (
            payload(values={"w01018": {"value": 1.0, "flag": "Q"}}),
            RejectReason.INVALID_VALUE,
            "flag",
        ),
        (payload(ts="2026-11-23T17:30:00"), RejectReason.WRONG_TYPE, "timezone"),
        (payload(colour="red"), RejectReason.UNKNOWN_FIELD, "colour"),
        (payload(seq=-1), RejectReason.INVALID_VALUE, "seq"),
        (payload(ts="2026-11-24T09:30:00+00:00"), RejectReason.FUTURE_TIMESTAMP, "ahead"),
        (b'{"values": {"w01018": {"value": 1}}}', RejectReason.MISSING_FIELD, "ts"),
        (
            b'{"ts": "2026-11-23T17:30:00+08:00", "values": {"w01018": {}}}',
            RejectReason.MISSING_FIELD,
            "value",
        ),
        (b" " * (MAX_PAYLOAD_BYTES + 1), RejectReason.TOO_LARGE, "limit"),
    ],
    ids=lambda x: x.value if isinstance(x, RejectReason) else None,
)
def test_each_kind_of_bad_payload_has_its_reason(catalogue, now, body, reason, detail_mentions):
    verdict = judge(catalogue, now, body)
    assert isinstance(verdict, Rejection), verdict
    assert verdict.reason is reason, verdict.detail
    assert detail_mentions in verdict.detail


def test_nan_literal_as_a_device_would_send_it(catalogue, now):
    body = b'{"ts": "2026-11-23T17:30:00+08:00", "values": {"w01018": {"value": NaN}}}'
    verdict = judge(catalogue, now, body)
    assert isinstance(verdict, Rejection) and verdict.reason is RejectReason.NOT_FINITE


@pytest.mark.parametrize(
    ("topic", "reason"),
    [
        ("ecowatch/v1/S-OUT-001/99999999999999/reading", RejectReason.UNKNOWN_DEVICE),
        ("ecowatch/v1/S-OUT-002/33080200000001/reading", RejectReason.WRONG_SITE),
        ("ecowatch/v1/S-OUT-001/33080200000001/status", RejectReason.BAD_TOPIC),
        ("ecowatch/v2/S-OUT-001/33080200000001/reading", RejectReason.BAD_TOPIC),
        ("ecowatch/v1/S-OUT-001/reading", RejectReason.BAD_TOPIC),
    ],
)
def test_who_sent_it_is_checked_against_the_catalogue(catalogue, now, topic, reason):
    verdict = judge(catalogue, now, payload(), topic=topic)
    assert isinstance(verdict, Rejection) and verdict.reason is reason


def test_a_clock_a_little_fast_is_tolerated(catalogue, now):
    body = payload(ts=(now + timedelta(minutes=4)).isoformat())
    assert isinstance(judge(catalogue, now, body), Reading)


def test_dead_letter_keeps_the_original_bytes(now):
    for original in (b"{broken", b"\xff\x00binary"):
        letter = DeadLetter.of(
            source=ReadingSource.MQTT,
            origin=TOPIC,
            reason=RejectReason.BAD_JSON,
            detail="x",
            payload=original,
            received_at=now,
        )
        again = DeadLetter.model_validate_json(letter.to_json())
        assert again.original() == original
        assert json.loads(letter.to_json())["schema"] == "ecowatch.dead_letter/1"


@pytest.mark.parametrize("word", ["online", "offline", "stopped", " offline\n"])
def test_a_status_word_becomes_the_device_state(catalogue, now, word):
    status = accept_mqtt_status(
        f"ecowatch/v1/{SITE}/{DEVICE}/status", word.encode(), catalogue, now
    )
    assert isinstance(status, DeviceStatus)
    assert (status.site, status.device, status.state.value, status.at) == (
        SITE,
        DEVICE,
        word.strip(),
        now,
    )


@pytest.mark.parametrize(
    ("topic", "body", "reason"),
    [
        (f"ecowatch/v1/{SITE}/{DEVICE}/status", b"sleeping", RejectReason.BAD_STATUS),
        (f"ecowatch/v1/{SITE}/99999999999999/status", b"online", RejectReason.UNKNOWN_DEVICE),
        (f"ecowatch/v1/{SITE}/{DEVICE}/reading", b"online", RejectReason.BAD_TOPIC),
    ],
)
def test_a_bad_status_is_rejected(catalogue, now, topic, body, reason):
    verdict = accept_mqtt_status(topic, body, catalogue, now)
    assert isinstance(verdict, Rejection) and verdict.reason is reason
