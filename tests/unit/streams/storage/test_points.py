"""The InfluxDB layout of a reading: measurement, tags, fields, time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from ecowatch.schema import (
    DataFlag,
    Measurement,
    MeterStatus,
    Reading,
    ReadingSource,
    ValveState,
)
from ecowatch.streams.storage.points import (
    batch_lines,
    epoch_ms,
    reading_lines,
    realtime_aqi,
    store_lines,
)

CST = timezone(timedelta(hours=8))


def make(ts: datetime) -> Reading:
    return Reading(
        site="S-OUT-001",
        device="33080200000001",
        model="outfall_monitor",
        ts=ts,
        values={
            "w01018": Measurement(value=42.5),
            "w01001": Measurement(value=7, flag=DataFlag.CALIBRATION),
        },
        source=ReadingSource.MQTT,
        received_at=ts,
    )


def test_one_point_per_pollutant_with_value_and_flag():
    ts = datetime(2026, 11, 23, 17, 30, 0, 123000, tzinfo=CST)
    lines = reading_lines(make(ts))
    ms = 1795426200123
    tags = "reading,site=S-OUT-001,device=33080200000001,model=outfall_monitor"
    assert lines == [
        f'{tags},pollutant=w01018 value=42.5,flag="N" {ms}',
        f'{tags},pollutant=w01001 value=7.0,flag="C" {ms}',
    ]


def test_a_resent_reading_says_so_in_each_point():
    ts = datetime(2026, 11, 23, 17, 30, tzinfo=CST)
    lines = reading_lines(make(ts).model_copy(update={"resent": True}))
    assert [line.split(" ")[1] for line in lines] == [
        'value=42.5,flag="N",resent=true',
        'value=7.0,flag="C",resent=true',
    ]


def test_a_cems_corrected_value_is_kept_beside_the_measured_one():
    ts = datetime(2026, 11, 23, 17, 30, tzinfo=CST)
    r = make(ts).model_copy(
        update={"values": {"a21026": Measurement(value=30.0, zs=37.5)}, "site": "S-STK-001"}
    )
    [line] = reading_lines(r)
    assert line.split(" ")[1] == 'value=30.0,flag="N",zs=37.5'


def test_epoch_ms_is_exact_and_offset_independent():
    local = datetime(2026, 11, 23, 17, 30, tzinfo=CST)
    assert epoch_ms(local) == epoch_ms(local.astimezone(UTC)) == 1795426200000
    assert epoch_ms(datetime(1970, 1, 1, 0, 0, 0, 1000, tzinfo=UTC)) == 1


def test_a_batch_is_newline_separated():
    ts = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)
    assert batch_lines([make(ts), make(ts)]).count("\n") == 3


def air_reading(values: dict[str, Measurement]) -> Reading:
    ts = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    return Reading(
        site="S-AIR-001",
        device="33080200A00001",
        model="air_station",
        ts=ts,
        values=values,
        source=ReadingSource.MQTT,
        received_at=ts,
    )


def test_an_air_station_reading_gets_its_realtime_aqi_point():
    reading = air_reading(
        {
            "a34004": Measurement(value=80),  # PM2.5: 2026 breakpoints 60→100, 115→150: IAQI 119
            "a21004": Measurement(value=60),  # NO2 1h: 0→0, 100→50: IAQI 30
            "a05024": Measurement(value=500, flag=DataFlag.CALIBRATION),  # not air quality
        }
    )
    text, points, aqi_points = store_lines([reading, make(reading.ts)], "2026")
    assert (points, aqi_points) == (3 + 2, 1)
    aqi_point = text.splitlines()[-1]
    assert aqi_point == (
        "aqi,site=S-AIR-001,device=33080200A00001,period=1h,standard=2026 "
        'aqi=119i,category="lightly_polluted",primary="PM2.5",iaqi_a34004=119i,iaqi_a21004=30i '
        f"{epoch_ms(reading.ts)}"
    )


def test_no_aqi_without_a_valid_aqi_pollutant():
    reading = air_reading({"a34004": Measurement(value=80, flag=DataFlag.MAINTENANCE)})
    assert realtime_aqi(reading, "2026") is None
    assert store_lines([reading], "2026")[2] == 0
    # 2012 has no 1h SO2 IAQI above 800 without the day's mean: SO2 is left out, not invented.
    so2 = air_reading({"a21026": Measurement(value=900), "a34004": Measurement(value=30)})
    result = realtime_aqi(so2, "2012")
    assert result is not None and list(result.iaqi) == ["PM2.5"]


def test_a_meter_reading_carries_its_account():
    ts = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    reading = Reading(
        site="S-OUT-001",
        device="33080200M00001",
        model="discharge_meter",
        ts=ts,
        values={"w00000": Measurement(value=0, flag=DataFlag.STOPPED)},
        meter=MeterStatus(
            valve=ValveState.CLOSED,
            card_id='QZ "7"',
            period="2026-11",
            quota={"w00000": 30000.0, "w01018": 2000.0},
            used={"w00000": 30012.5, "w01018": 1500.0},
        ),
        source=ReadingSource.MQTT,
        received_at=ts,
    )
    text, points, derived = store_lines([reading], "2026")
    assert (points, derived) == (1, 1)
    assert text.splitlines()[-1] == (
        'meter,site=S-OUT-001,device=33080200M00001 valve="closed",period="2026-11",'
        'card="QZ \\"7\\"",reported_quota_w00000=30000.0,reported_quota_w01018=2000.0,'
        f"reported_used_w00000=30012.5,reported_used_w01018=1500.0 {epoch_ms(ts)}"
    )
