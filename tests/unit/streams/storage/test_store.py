"""What the worker reads back from InfluxDB to judge a resend's hours again: plain CSV, parsed
without the client's record objects."""

from __future__ import annotations

from datetime import UTC, datetime

from ecowatch.schema import DataFlag
from ecowatch.streams.judging.rules.rejudge import StoredValue
from ecowatch.streams.storage.store import readings_of_csv

# As InfluxDB answers with header=true and no annotations: a table per series, a blank line
# and the header again where the columns' types change (a flag is a string, a value a float).
CSV = """\
,result,table,_time,_value,_field,device,pollutant
,_result,0,2026-12-01T08:00:01Z,N,flag,D1,w01018
,_result,0,2026-12-01T08:00:00Z,M,flag,D1,w01018
,_result,1,2026-12-01T08:00:00Z,N,flag,D2,w01018

,result,table,_time,_value,_field,device,pollutant
,_result,2,2026-12-01T08:00:01Z,46.5,value,D1,w01018
,_result,2,2026-12-01T08:00:00Z,45.25,value,D1,w01018
,_result,3,2026-12-01T08:00:00Z,7.2,value,D1,w01001
,_result,4,2026-12-01T08:00:00Z,3.5,value,D2,w01018
,_result,5,2026-12-01T08:00:00Z,1.0,value,D9,w01018
"""


def test_stored_readings_come_back_per_device_in_time_order_with_their_flags() -> None:
    got = readings_of_csv(CSV, {"D1", "D2"})
    assert set(got) == {"D1", "D2"}  # D9 was not asked for
    d1 = got["D1"]
    assert [r.ts for r in d1] == [
        datetime(2026, 12, 1, 8, 0, 0, tzinfo=UTC),
        datetime(2026, 12, 1, 8, 0, 1, tzinfo=UTC),
    ]
    assert d1[0].values == {
        "w01018": StoredValue(45.25, DataFlag.MAINTENANCE),
        "w01001": StoredValue(7.2, DataFlag.NORMAL),  # no flag field: N
    }
    assert d1[1].values == {"w01018": StoredValue(46.5, DataFlag.NORMAL)}
    assert [r.values["w01018"].value for r in got["D2"]] == [3.5]


def test_an_empty_answer_is_no_readings() -> None:
    assert readings_of_csv("", {"D1"}) == {}
    assert readings_of_csv("\r\n", {"D1"}) == {}
