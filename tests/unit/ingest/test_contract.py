"""The ingest contract every transport goes through, and the hostile payloads a device can
send: each is refused with its reason, none raises."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest

from ecowatch.ingest.contract import (
    RESEND_CAP,
    DeadLetterBudget,
    ReadingLimiter,
    ReadingRate,
    TimeWindow,
    admit,
)
from ecowatch.ingest.validation import Rejection, accept_mqtt_reading
from ecowatch.schema import (
    DEAD_LETTER_PAYLOAD_MAX,
    DeadLetter,
    DeviceReading,
    Reading,
    ReadingSource,
    RejectReason,
)
from ecowatch.streams.judging.ledger import LEDGER_DIGESTS, LEDGER_RUNS, ReadingLedger, take_once
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


def test_a_meter_claiming_more_than_its_permit_is_still_measured(catalogue, now) -> None:
    # Its flow and COD are evidence: taken, and judged on the platform's own account of the
    # meter (streams/judging/meter.py), never on the quota it claims (a finding of abnormal data).
    values = {"w00000": {"value": 1.0}, "w01018": {"value": 30.0}}
    greedy = body(now, values=values, meter=meter_block(1e12))
    result = accept_mqtt_reading(METER_TOPIC, greedy, catalogue, now)
    assert isinstance(result, Reading) and result.meter is not None
    # A card that names what the permit does not carry is no meter account at all.
    odd = meter_block(1.0) | {"used": {"w21011": 1.0}}
    stranger = accept_mqtt_reading(METER_TOPIC, body(now, values=values, meter=odd), catalogue, now)
    assert reason(stranger) is RejectReason.UNKNOWN_POLLUTANT


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


# -- one device cannot flood ----------------------------------------------------------------------

NOMINAL = timedelta(seconds=30)  # the catalogue's reporting interval (REPORTING_INTERVAL)
BURST = RESEND_CAP + 40  # the resend cap, and 4 x the readings of 5 minutes at one per 30 s


def taken(limiter: ReadingLimiter, device, times: list[tuple[datetime, datetime]]) -> int:
    """How many of the (measurement time, arrival) readings the limiter lets through."""
    return sum(limiter.refuse(device, ts, at) is None for ts, at in times)


def test_the_allowance_comes_from_the_catalogues_reporting_interval(catalogue) -> None:
    device = catalogue.device(DEVICE).device
    assert device.reporting_interval == NOMINAL
    rate = ReadingRate()
    assert rate.per_second(NOMINAL) * 60 == pytest.approx(8.0)  # 4 x two a minute
    assert rate.burst(NOMINAL) == BURST


def test_a_flood_is_cut_after_its_burst_and_says_why(catalogue, now) -> None:
    device, limiter = catalogue.device(DEVICE).device, ReadingLimiter()
    # As fast as it can: thousands within a second, each with a time of its own.
    flood = [
        (now - timedelta(milliseconds=i), now + timedelta(microseconds=i)) for i in range(5000)
    ]
    assert taken(limiter, device, flood) == BURST
    refused = limiter.refuse(device, now, now + timedelta(seconds=1))
    assert refused is not None and refused.reason is RejectReason.RATE_LIMITED
    assert f"device '{DEVICE}' sent 5001 readings in 1.0 s" in refused.detail
    assert "a burst of 1040, then 8 a minute (4 x one per 30 s" in refused.detail
    assert limiter.refused[DEVICE] == 5000 - BURST + 1
    # Its neighbour's allowance is its own.
    assert limiter.refuse(catalogue.device(METER).device, now, now) is None


def test_a_device_at_its_nominal_rate_is_never_cut(catalogue, now) -> None:
    device, limiter = catalogue.device(DEVICE).device, ReadingLimiter()
    # A week of real-time data every 30 s, with its minute, hourly and daily data beside it,
    # each sent a few seconds after its time.
    times = []
    for n in range(7 * 24 * 120):
        at = now + n * NOMINAL
        times.append((at, at + timedelta(seconds=2)))
        if n % 20 == 0:  # the 10-minute data, and the hour's and the day's on the hour
            times += [(at - timedelta(minutes=10), at + timedelta(seconds=3))] * (
                1 + (n % 120 == 0) + (n % 2880 == 0)
            )
    assert taken(limiter, device, times) == len(times)
    assert not limiter.refused


def test_a_resend_after_an_outage_passes_beside_the_live_readings(catalogue, now) -> None:
    """HJ 212-2025: back from 9 hours off the network, the monitor sends its live reading,
    then the 1,000 readings it kept (RF=1, older than the live one), all at once, and goes on
    reporting live."""
    device, limiter = catalogue.device(DEVICE).device, ReadingLimiter()
    before = [(now + n * NOMINAL, now + n * NOMINAL) for n in range(100)]
    assert taken(limiter, device, before) == 100
    back = now + timedelta(hours=10)
    resend = [(back - timedelta(hours=9) + n * NOMINAL, back) for n in range(RESEND_CAP)]
    assert taken(limiter, device, [(back, back), *resend]) == 1 + RESEND_CAP
    live = [(back + n * NOMINAL, back + n * NOMINAL) for n in range(1, 200)]
    assert taken(limiter, device, live) == len(live)
    # Another outage an hour later: its backlog (120) fits what has refilled since (480).
    later = back + timedelta(hours=2)
    again = [(later - timedelta(hours=1) + n * NOMINAL, later) for n in range(120)]
    assert taken(limiter, device, [(later, later), *again]) == 121


def test_a_backlog_in_order_passes_however_long_the_outage(catalogue, now) -> None:
    """Mosquitto queued a day of a device's readings for a bridge that was away (or a device
    kept its QoS 1 messages): they arrive within seconds, in order, more than the resend cap.
    They cover the time they were away at the nominal spacing, so they earn their tokens."""
    device, limiter = catalogue.device(DEVICE).device, ReadingLimiter()
    start = now - timedelta(days=1)
    assert limiter.refuse(device, start, start) is None
    day = [(start + n * NOMINAL, now + timedelta(milliseconds=n)) for n in range(1, 2881)]
    assert taken(limiter, device, day) == len(day)
    # The same day again (a crash before the acknowledgements) earns nothing: what is left of
    # the burst holds it (the day's last reading took one), and a third time it is cut.
    assert taken(limiter, device, day) == BURST - 1
    assert taken(limiter, device, day[:10]) == 0


def test_time_passes_and_the_bucket_refills(catalogue, now) -> None:
    device, limiter = catalogue.device(DEVICE).device, ReadingLimiter()
    flood = [(now, now)] * 2000
    assert taken(limiter, device, flood) == BURST
    minute = now + timedelta(minutes=1)
    assert taken(limiter, device, [(now, minute)] * 100) == 8  # 4 x 2 a minute
    assert taken(limiter, device, [(now, minute)] * 100) == 0
    day = now + timedelta(days=1)
    assert taken(limiter, device, [(now, day)] * 2000) == BURST  # refilled, capped


def test_the_limit_is_the_contracts_and_only_a_good_reading_counts(catalogue, now) -> None:
    limiter = ReadingLimiter(ReadingRate(factor=4, resend_burst=0))  # a burst of 40 only
    bad = body(now, values={"w01018": {"value": 1e300}})
    for _ in range(100):  # refused for what it says: under the dead-letter budget, not this
        assert reason(accept_mqtt_reading(TOPIC, bad, catalogue, now, limiter=limiter)) is (
            RejectReason.IMPLAUSIBLE_VALUE
        )
    verdicts = [
        accept_mqtt_reading(TOPIC, body(now), catalogue, now, limiter=limiter) for _ in range(41)
    ]
    assert all(isinstance(v, Reading) for v in verdicts[:40])
    assert reason(verdicts[40]) is RejectReason.RATE_LIMITED
    entry = catalogue.device(DEVICE)
    parsed = DeviceReading.model_validate_json(body(now))
    refused = admit(entry, parsed, ReadingSource.HJ212, now, limiter=limiter)
    assert reason(refused) is RejectReason.RATE_LIMITED  # one allowance, whatever the transport


def test_a_factor_of_0_is_no_limit(catalogue, now) -> None:
    device, limiter = catalogue.device(DEVICE).device, ReadingLimiter(ReadingRate(factor=0))
    assert taken(limiter, device, [(now, now)] * 5000) == 5000


# -- one reading per (device, timestamp) -----------------------------------------------------------


def _reading(now, minutes: float, cod: float = 42.5, device: str = DEVICE) -> Reading:
    return Reading(
        site=SITE,
        device=device,
        model="outfall_monitor",
        ts=now - timedelta(minutes=minutes),
        values={"w01018": {"value": cod}, "w00000": {"value": 118.0}},
        source=ReadingSource.MQTT,
        received_at=now,
    )


def test_a_redelivery_is_a_harmless_repeat_and_other_values_are_refused(now) -> None:
    ledgers: dict[str, ReadingLedger] = {}
    assert take_once(ledgers, _reading(now, 10)) is None
    again = take_once(ledgers, _reading(now, 10).model_copy(update={"received_at": now}))
    assert again is not None and again.identical
    other = take_once(ledgers, _reading(now, 10, cod=20.0))
    assert other is not None and not other.identical
    assert other.reason is RejectReason.DUPLICATE_READING and "first one stands" in other.detail
    # Another device at the same time, and the same device a millisecond later, are new.
    assert take_once(ledgers, _reading(now, 10, device=METER)) is None
    assert take_once(ledgers, _reading(now, 10 - 1 / 60_000)) is None
    # Within a millisecond is one point in InfluxDB, so one reading here.
    within = _reading(now, 10).model_copy(
        update={"ts": now - timedelta(minutes=10, microseconds=-300)}
    )
    assert take_once(ledgers, within) is not None


def test_a_regular_device_is_one_run_and_late_readings_are_remembered_in_order(now) -> None:
    ledgers: dict[str, ReadingLedger] = {}
    for m in range(600, 0, -1):  # ten hours, a reading a minute, in order
        assert take_once(ledgers, _reading(now, m)) is None
    ledger = ledgers[DEVICE]
    assert len(ledger.runs) == 1 and len(ledger.digests) == LEDGER_DIGESTS
    # A resend from before the run, and one between two readings: new, and then known.
    for late in (700.0, 300.5):
        assert take_once(ledgers, _reading(now, late)) is None
        assert take_once(ledgers, _reading(now, late)) is not None
    assert [r[0] for r in ledger.runs] == sorted(r[0] for r in ledger.runs)
    # A repeat too old to compare its values is refused all the same: it could rewrite a point.
    old = take_once(ledgers, _reading(now, 599, cod=1.0))
    assert old is not None and not old.identical and "too long ago" in old.detail


def test_the_ledger_forgets_what_is_older_than_the_window_and_stays_bounded(now) -> None:
    ledgers: dict[str, ReadingLedger] = {}
    # An irregular clock: every reading its own run, far more than the ledger keeps.
    for i in range(2 * LEDGER_RUNS + 200):
        r = _reading(now, 9000 - i * 2 - (i * i % 7) / 60).model_copy(update={"received_at": now})
        assert take_once(ledgers, r) is None
    ledger = ledgers[DEVICE]
    assert len(ledger.runs) <= LEDGER_RUNS and ledger.since is not None
    # What is older than the ledger remembers cannot be told from a repeat: refused as stale.
    stale = take_once(ledgers, _reading(now, 9000))
    assert stale is not None and stale.reason is RejectReason.STALE_TIMESTAMP
    # A week later, what fell out of the contract's window is forgotten.
    later = now + timedelta(days=8)
    take_once(ledgers, _reading(later, 1).model_copy(update={"received_at": later}))
    assert len(ledger.runs) == 1
    size = len(ReadingLedger.model_validate_json(ledger.model_dump_json()).model_dump_json())
    assert size < 6000


@pytest.mark.parametrize(
    ("ts", "received", "reason"),
    [
        # Times no clock can mean: not taken, so neither the ledger nor the site's clock holds
        # them (year 1 at +14:00 has no UTC time; 9999 + a tick overflows).
        ("0001-01-01T00:00:00+14:00", None, RejectReason.INVALID_VALUE),
        ("9999-12-31T23:59:59-12:00", None, RejectReason.INVALID_VALUE),
        ("2263-01-01T00:00:00+00:00", "2263-01-01T00:00:00+00:00", RejectReason.INVALID_VALUE),
        # Storable, but outside the window counted from its arrival.
        ("2261-12-31T00:00:00+00:00", None, RejectReason.FUTURE_TIMESTAMP),
        ("1700-01-01T00:00:00+00:00", None, RejectReason.STALE_TIMESTAMP),
    ],
)
def test_the_worker_takes_no_reading_outside_the_contracts_times(
    now, ts: str, received: str | None, reason: RejectReason
) -> None:
    reading = _reading(now, 0).model_copy(
        update={
            "ts": datetime.fromisoformat(ts),
            "received_at": datetime.fromisoformat(received) if received else now,
        }
    )
    ledgers: dict[str, ReadingLedger] = {}
    refused = take_once(ledgers, reading)
    assert refused is not None and not refused.identical and refused.reason is reason
    assert ledgers == {} or ledgers[DEVICE].runs == []  # nothing of it remembered
    assert take_once(ledgers, _reading(now, 1)) is None  # the device's next reading is taken
