"""The InfluxDB layout of a reading: measurement, tags, fields, time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from ecowatch.schema import DataFlag, Measurement, Reading, ReadingSource
from ecowatch.streams.points import batch_lines, epoch_ms, reading_lines

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


def test_epoch_ms_is_exact_and_offset_independent():
    local = datetime(2026, 11, 23, 17, 30, tzinfo=CST)
    assert epoch_ms(local) == epoch_ms(local.astimezone(UTC)) == 1795426200000
    assert epoch_ms(datetime(1970, 1, 1, 0, 0, 0, 1000, tzinfo=UTC)) == 1


def test_a_batch_is_newline_separated():
    ts = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)
    assert batch_lines([make(ts), make(ts)]).count("\n") == 3
