"""The ingest contract every transport goes through, and the hostile payloads a device can
send: each is refused with its reason, none raises."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from ecowatch.ingest.contract import DeadLetterBudget, TimeWindow, admit
from ecowatch.ingest.validation import Rejection, accept_mqtt_reading
from ecowatch.schema import (
    DEAD_LETTER_PAYLOAD_MAX,
    DeadLetter,
    DeviceReading,
    Reading,
    ReadingSource,
    RejectReason,
)
from ecowatch.topics import BridgeSlice

SITE, DEVICE = "S-OUT-001", "33080200000001"
METER = "33080200M00001"
TOPIC = f"ecowatch/v1/{SITE}/{DEVICE}/reading"
METER_TOPIC = f"ecowatch/v1/{SITE}/{METER}/reading"


def body(now, **overrides: object) -> bytes:
    doc: dict[str, object] = {
        "ts": (now - timedelta(minutes=1)).isoformat(),
        "values": {"w01018": {"value": 42.5}, "w00000": {"value": 118.0}},
    }
    doc.update(overrides)
    return json.dumps(doc).encode()


def reason(result: Reading | Rejection) -> RejectReason | None:
    return result.reason if isinstance(result, Rejection) else None


def test_the_window_takes_a_weeks_resend_and_a_clock_five_minutes_fast(catalogue, now) -> None:
    for ts in (now - timedelta(days=6, hours=23), now + timedelta(minutes=4)):
        assert isinstance(
            accept_mqtt_reading(TOPIC, body(now, ts=ts.isoformat()), catalogue, now), Reading
        )


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        ("0001-01-01T00:00:00+14:00", RejectReason.STALE_TIMESTAMP),  # year 1, crashed the worker
        ("9999-12-31T23:59:59+00:00", RejectReason.FUTURE_TIMESTAMP),
        ("2026-11-10T00:00:00+00:00", RejectReason.STALE_TIMESTAMP),  # 13 days back
        ("2026-11-23T09:36:00+00:00", RejectReason.FUTURE_TIMESTAMP),  # 6 minutes ahead
    ],
)
def test_times_outside_the_window_are_refused(catalogue, now, ts, expected) -> None:
    assert reason(accept_mqtt_reading(TOPIC, body(now, ts=ts), catalogue, now)) is expected


def test_the_window_is_configurable(catalogue, now) -> None:
    old = body(now, ts=(now - timedelta(days=20)).isoformat())
    wide = TimeWindow(behind=timedelta(days=30))
    assert isinstance(accept_mqtt_reading(TOPIC, old, catalogue, now, wide), Reading)


def test_only_the_pollutants_the_catalogue_gives_the_device(catalogue, now) -> None:
    sneaky = body(now, values={"w01018": {"value": 40}, "a34004": {"value": 35}})
    result = accept_mqtt_reading(TOPIC, sneaky, catalogue, now)
    assert reason(result) is RejectReason.UNKNOWN_POLLUTANT
    assert "a34004" in result.detail  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("code", "value"), [("w01018", 1e300), ("w01001", 40.0), ("w00000", -1e9), ("w21003", 2e5)]
)
def test_impossible_values_are_refused(catalogue, now, code, value) -> None:
    result = accept_mqtt_reading(TOPIC, body(now, values={code: {"value": value}}), catalogue, now)
    assert reason(result) is RejectReason.IMPLAUSIBLE_VALUE


def test_an_analysers_faults_still_reach_the_rules(catalogue, now) -> None:
    # Negative spikes, zeros and over-range values are findings, not bad messages.
    for value in (-3.5, 0.0, 900.0):
        result = accept_mqtt_reading(
            TOPIC, body(now, values={"w01018": {"value": value, "flag": "N"}}), catalogue, now
        )
        assert isinstance(result, Reading), result


def meter_block(quota_cod: float) -> dict[str, object]:
    return {
        "valve": "open",
        "card_id": "QZ-IC-0001",
        "period": "2026-11",
        "quota": {"w00000": 30000.0, "w01018": quota_cod, "w21003": 200.0},
        "used": {"w00000": 10.0, "w01018": 1.0, "w21003": 0.1},
    }


def test_a_meter_block_only_from_a_discharge_meter(catalogue, now) -> None:
    forged = body(now, meter=meter_block(2000.0))
    assert reason(accept_mqtt_reading(TOPIC, forged, catalogue, now)) is RejectReason.NOT_A_METER
    values = {"w00000": {"value": 1.0}, "w01018": {"value": 30.0}}
    honest = body(now, values=values, meter=meter_block(2000.0))
    assert isinstance(accept_mqtt_reading(METER_TOPIC, honest, catalogue, now), Reading)


def test_a_meter_cannot_grant_itself_more_than_its_permit(catalogue, now) -> None:
    values = {"w00000": {"value": 1.0}, "w01018": {"value": 30.0}}
    greedy = body(now, values=values, meter=meter_block(1e12))
    result = accept_mqtt_reading(METER_TOPIC, greedy, catalogue, now)
    assert reason(result) is RejectReason.IMPLAUSIBLE_VALUE
    assert "annual quantity 25000" in result.detail  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (
            b'{"ts": "2026-11-23T17:30:00+08:00", "seq": ' + b"9" * 5000 + b"}",
            RejectReason.BAD_JSON,
        ),
        (b"[" * 100_000 + b"]" * 100_000, RejectReason.TOO_LARGE),
        (b"[" * 2000 + b"]" * 2000, RejectReason.BAD_JSON),
        (
            b'{"ts": "2026-11-23T17:30:00+08:00", "values": {"w01018": {"value": 1}}, '
            b'"meter": {"valve": "open", "card_id": "\\ud800", "period": "x", "quota": {}, '
            b'"used": {}}}',
            RejectReason.NOT_UTF8,
        ),
    ],
)
def test_hostile_payloads_are_refused_with_a_reason_never_raised(
    catalogue, now, payload, expected
) -> None:
    result = accept_mqtt_reading(TOPIC, payload, catalogue, now)
    assert reason(result) is expected
    letter = DeadLetter.of(
        source=ReadingSource.MQTT,
        origin=TOPIC,
        reason=result.reason,  # type: ignore[union-attr]
        detail=result.detail,  # type: ignore[union-attr]
        payload=payload,
        received_at=now,
    )
    assert len(letter.to_json()) < DEAD_LETTER_PAYLOAD_MAX * 2 + 2048


def test_a_dead_letter_keeps_a_bounded_part_with_the_length_and_hash(now) -> None:
    huge = "读".encode() * 1_000_000  # 3 MB of three-byte characters
    letter = DeadLetter.of(
        source=ReadingSource.MQTT,
        origin=TOPIC,
        reason=RejectReason.TOO_LARGE,
        detail="\ud800 quoted from a device",
        payload=huge,
        received_at=now,
    )
    assert letter.payload_truncated and letter.payload_bytes == len(huge)
    assert letter.payload_encoding == "utf-8"  # the cut did not split a character
    assert len(letter.payload.encode()) <= DEAD_LETTER_PAYLOAD_MAX
    assert len(letter.payload_sha256) == 64
    assert b"\\ud800" in letter.to_json()  # the lone surrogate, escaped, not a crash


def test_admit_is_the_same_for_every_transport(catalogue, now) -> None:
    entry = catalogue.device(DEVICE)
    parsed = DeviceReading.model_validate_json(body(now))
    reading = admit(entry, parsed, ReadingSource.HJ212, now)
    assert isinstance(reading, Reading) and reading.source is ReadingSource.HJ212


def test_bridge_slices_split_the_sites_and_cover_each_once(catalogue) -> None:
    sites = {e.site.id for e in catalogue.devices.values()}
    slices = [BridgeSlice(i, 3) for i in (1, 2, 3)]
    taken = [s for s in sites for sl in slices if sl.takes(s)]
    assert sorted(taken) == sorted(sites)
    filters = [f for sl in slices for f in sl.filters(sites)]
    assert len(filters) == 2 * len(sites)
    assert BridgeSlice().filters(sites) == ["ecowatch/v1/+/+/reading", "ecowatch/v1/+/+/status"]


@pytest.mark.parametrize("text", ["0/2", "3/2", "1", "a/b", "1/0"])
def test_a_wrong_slice_is_refused(text) -> None:
    with pytest.raises(ValueError):
        BridgeSlice.parse(text)


def test_a_device_past_its_dead_letter_budget_is_counted_not_kept() -> None:
    budget = DeadLetterBudget(per_second=5, burst=50)
    kept = sum(budget.allow("flooder", 0.0) for _ in range(1000))  # a burst of garbage
    assert kept == 50
    assert budget.allow("an honest neighbour", 0.0)  # one device's budget is its own
    assert sum(budget.allow("flooder", 2.0) for _ in range(100)) == 10  # 5 a second since
    assert sum(budget.allow("flooder", 100.0) for _ in range(100)) == 50  # refilled, capped
