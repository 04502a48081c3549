"""Flue-gas CEMS packets (ST=31) as HJ 212's examples lay them out: minute (CN 2051) and hour
(CN 2061) values with their corrected (Zs) values, the same data in HJ/T 212-2005's codes,
instrument state (CN 3020), and HJ 212-2025's version of each, plain and SM4-encrypted."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import pytest

from ecowatch.ingest import hj212 as codec
from ecowatch.ingest.hj212 import (
    Packet,
    Version,
    build,
    data_answer,
    json_to_packet,
    packet_to_json,
    parse,
    to_device_reading,
)
from ecowatch.schema import DataFlag, DeviceReading, Measurement
from tests.unit.ingest.hj212.test_codec import KEY_A2, MN, SHANGHAI, frame, header

Items = dict[str, str]

# A coal boiler's stack at 9 % O2, reference 6 %: each concentration's Zs value is 15/12 of
# the measured one. Cou is kg for a pollutant (from the measured, not the corrected,
# concentration: mg/m³ × m³/s × 60 s), m³ for the flue gas itself (a00000); the stack's own
# state has no Zs or Cou.
# Values are written as the codec writes them back, so a packet builds back byte for byte.
CEMS_MINUTE: dict[str, Items] = {
    "a34013": {"Min": "7.6", "Avg": "8.0", "Max": "8.8", "ZsMin": "9.5", "ZsAvg": "10.0"}
    | {"ZsMax": "11.0", "Cou": "0.0409", "Flag": "N"},
    "a21026": {"Min": "28.0", "Avg": "30.0", "Max": "33.2", "ZsMin": "35.0", "ZsAvg": "37.5"}
    | {"ZsMax": "41.5", "Cou": "0.1534", "Flag": "N"},
    "a21002": {"Min": "40.0", "Avg": "42.0", "Max": "44.0", "ZsMin": "50.0", "ZsAvg": "52.5"}
    | {"ZsMax": "55.0", "Cou": "0.2147", "Flag": "C"},
    "a19001": {"Min": "8.8", "Avg": "9.0", "Max": "9.2", "Flag": "N"},
    "a00000": {"Min": "84.1", "Avg": "85.2", "Max": "86.0", "Cou": "5112.0", "Flag": "N"},
    "a01012": {"Min": "48.2", "Avg": "48.5", "Max": "48.9", "Flag": "N"},
    "a01013": {"Min": "-0.36", "Avg": "-0.35", "Max": "-0.33", "Flag": "N"},
    "a01014": {"Min": "7.6", "Avg": "7.8", "Max": "8.1", "Flag": "T"},
}
MINUTE_VALUES = {
    "a34013": Measurement(value=8.0, zs=10.0),
    "a21026": Measurement(value=30.0, zs=37.5),
    "a21002": Measurement(value=42.0, zs=52.5, flag=DataFlag.CALIBRATION),
    "a19001": Measurement(value=9.0),
    "a00000": Measurement(value=85.2),
    "a01012": Measurement(value=48.5),
    "a01013": Measurement(value=-0.35),
    "a01014": Measurement(value=7.8, flag=DataFlag.OVER_RANGE),
}
# The hour: the same means, an hour's amounts (mg/m³ × m³/s × 3600 s), the dust meter in
# maintenance for part of it.
CEMS_HOUR: dict[str, Items] = {
    **CEMS_MINUTE,
    "a34013": {**CEMS_MINUTE["a34013"], "Cou": "2.454", "Flag": "M"},
    "a21026": {**CEMS_MINUTE["a21026"], "Cou": "9.2016"},
    "a21002": {**CEMS_MINUTE["a21002"], "Cou": "12.882"},
    "a00000": {**CEMS_MINUTE["a00000"], "Cou": "306720"},
}
HOUR_VALUES = {
    **MINUTE_VALUES,
    "a34013": Measurement(value=8.0, zs=10.0, flag=DataFlag.MAINTENANCE),
}
PERIODS = [
    pytest.param("2051", "20261123172000", CEMS_MINUTE, MINUTE_VALUES, id="minute-2051"),
    pytest.param("2061", "20261123160000", CEMS_HOUR, HOUR_VALUES, id="hour-2061"),
]
# HJ/T 212-2005's codes for the same pollutants (HJ 212-2017 table B.2, column 原编码).
CODES_2005 = {
    "a34013": "01",
    "a21026": "02",
    "a21002": "03",
    "a19001": "S01",
    "a00000": "B02",
    "a01012": "S03",
    "a01013": "S08",
    "a01014": "S05",
}
# Some flue-gas devices write 01, 02 and 03 with three digits.
CODES_2005_THREE_DIGITS = {**CODES_2005, "a34013": "001", "a21026": "002", "a21002": "003"}


def cp_text(data_time: str, pollutants: dict[str, Items]) -> str:
    """CP content as the standard's examples write it: ``;`` between pollutants, ``,`` between
    one pollutant's items."""
    groups = (
        ",".join(f"{code}-{k}={v}" for k, v in items.items()) for code, items in pollutants.items()
    )
    return ";".join([f"DataTime={data_time}", *groups])


def renamed(pollutants: dict[str, Items], codes: dict[str, str]) -> dict[str, Items]:
    return {codes[code]: items for code, items in pollutants.items()}


def reading_of(raw: bytes, key: bytes | None = None) -> tuple[Packet, DeviceReading]:
    packet = parse(raw, key)
    mn, reading = to_device_reading(packet)
    assert mn == MN
    return packet, reading


@pytest.mark.parametrize(("cn", "data_time", "pollutants", "values"), PERIODS)
def test_a_cems_period_packet_gives_avg_and_zsavg_and_keeps_every_item(
    cn: str, data_time: str, pollutants: dict[str, Items], values: dict[str, Measurement]
) -> None:
    raw = frame(f"{header(cn, st='31', flag='5')};CP=&&{cp_text(data_time, pollutants)}&&")
    packet, reading = reading_of(raw)
    assert packet.version is Version.V2017 and build(packet).encode() == raw
    assert set(packet.pollutants) == set(pollutants)
    for code, items in pollutants.items():  # every item kept, numbers as numbers
        assert {k: str(v) for k, v in packet.pollutants[code].items()} == items
    assert isinstance(packet.pollutants["a00000"]["Cou"], int | float)  # m³, not text
    assert reading.values == values
    assert reading.ts == datetime.strptime(data_time, "%Y%m%d%H%M%S").replace(tzinfo=SHANGHAI)


@pytest.mark.parametrize("codes", [CODES_2005, CODES_2005_THREE_DIGITS], ids=["01", "001"])
@pytest.mark.parametrize(("cn", "data_time", "pollutants", "values"), PERIODS)
def test_the_same_packet_in_2005_codes_is_the_same_reading(
    codes: dict[str, str],
    cn: str,
    data_time: str,
    pollutants: dict[str, Items],
    values: dict[str, Measurement],
) -> None:
    # HJ/T 212-2005 style: no QN and no Flag.
    cp = cp_text(data_time, renamed(pollutants, codes))
    raw = frame(f"ST=31;CN={cn};PW=123456;MN={MN};CP=&&{cp}&&")
    packet, reading = reading_of(raw)
    assert packet.version is Version.V2005 and set(packet.pollutants) == set(codes.values())
    sent_2017 = frame(f"{header(cn, st='31', flag='5')};CP=&&{cp_text(data_time, pollutants)}&&")
    assert reading == reading_of(sent_2017)[1]
    assert reading.values == values


def test_a_water_packets_001_stays_ph_in_period_values_too() -> None:
    # The flue gas's three-digit forms hold only under ST=31; table B.1 has 001 as pH.
    cp = "DataTime=20261123160000;001-Min=7.1,001-Avg=7.3,001-Max=7.4,001-Flag=N"
    _, reading = reading_of(frame(f"ST=32;CN=2061;PW=123456;MN={MN};CP=&&{cp}&&"))
    assert reading.values == {"w01001": Measurement(value=7.3)}


# CN 3020: a CEMS's two analysers, each its own group with the same item names (working state
# i12001: 0 running, 3 calibrating; i12002: 0 talking to the data logger; i13001: range).
CEMS_3020_CP = (
    "DataTime=20261123173000;"
    "PolId=a21026,i12001-Info=0,i12002-Info=0,i13001-Info=500;"
    "PolId=a34013,i12001-Info=3,i12002-Info=0,i13001-Info=100"
)
CEMS_3020_GROUPS = (
    {
        "PolId": "a21026",
        "i12001": {"Info": "0"},
        "i12002": {"Info": "0"},
        "i13001": {"Info": "500"},
    },
    {
        "PolId": "a34013",
        "i12001": {"Info": "3"},
        "i12002": {"Info": "0"},
        "i13001": {"Info": "100"},
    },
)


def test_a_cems_state_packet_keeps_each_analysers_group_whole() -> None:
    raw = frame(f"{header('3020', st='31', flag='5')};CP=&&{CEMS_3020_CP}&&")
    packet = parse(raw)
    assert packet.cp == {"DataTime": "20261123173000"}
    assert packet.groups == CEMS_3020_GROUPS
    assert build(packet).encode() == raw
    assert json_to_packet(packet_to_json(packet)) == packet


# -- HJ 212-2025: Flag's version bits 2 (Flag 8-11) --------------------------------------------


@pytest.mark.parametrize("key", [None, KEY_A2], ids=["plain", "sm4"])
@pytest.mark.parametrize(("cn", "data_time", "pollutants", "values"), PERIODS)
def test_a_2025_cems_period_packet_carries_its_zs_values(
    key: bytes | None,
    cn: str,
    data_time: str,
    pollutants: dict[str, Items],
    values: dict[str, Measurement],
) -> None:
    # Flag=9: HJ 212-2025, answer wanted. 2051 and 2061 are among the CNs it encrypts.
    plain = frame(f"{header(cn, st='31', flag='9')};CP=&&{cp_text(data_time, pollutants)}&&")
    raw = plain if key is None else codec.build_bytes(replace(parse(plain), encrypted=True), key)
    packet, reading = reading_of(raw, key)
    assert packet.version is Version.V2025 and packet.encrypted is (key is not None)
    assert packet.pollutants["a21026"]["ZsMax"] == float(pollutants["a21026"]["ZsMax"])
    assert reading.values == values
    assert data_answer(packet).flag == 8  # answered in 2025's own Flag


@pytest.mark.parametrize("key", [None, KEY_A2], ids=["plain", "sm4"])
def test_a_2025_cems_state_packet_keeps_its_groups(key: bytes | None) -> None:
    plain = frame(f"{header('3020', st='31', flag='9')};CP=&&{CEMS_3020_CP}&&")
    raw = plain if key is None else codec.build_bytes(replace(parse(plain), encrypted=True), key)
    packet = parse(raw, key)
    assert packet.version is Version.V2025 and packet.encrypted is (key is not None)
    assert packet.groups == CEMS_3020_GROUPS


def test_the_analysers_working_states_of_a_cems_state_packet() -> None:
    raw = frame(f"{header('3020', st='31', flag='5')};CP=&&{CEMS_3020_CP}&&")
    assert codec.instrument_states(codec.parse(raw)) == {"a21026": 0, "a34013": 3}
