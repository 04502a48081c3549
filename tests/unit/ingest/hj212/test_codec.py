"""HJ 212-2017 codec: CRC, parse/build, errors, split packets, framing, readings, replies, CLI."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import reduce
from itertools import permutations
from operator import xor
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from ecowatch.cli.hj212 import hj212
from ecowatch.ingest import hj212 as codec
from ecowatch.ingest.hj212 import (
    LEGACY_CODES,
    BadField,
    BadHeader,
    CrcMismatch,
    Framer,
    Hj212Error,
    LengthMismatch,
    Packet,
    QnRtn,
    Reassembler,
    TooLong,
    Truncated,
    Version,
    build,
    crc16,
    crc_hex,
    data_answer,
    format_number,
    is_split,
    json_to_packet,
    packet_to_json,
    parse,
    qn_rtn_for,
    reject_answer,
    request_answer,
    sm4,
    to_device_reading,
    wants_answer,
)
from ecowatch.schema import DataFlag, Measurement

SHANGHAI = ZoneInfo("Asia/Shanghai")

# HJ 212-2017 Appendix A's worked example (its prose misprints the CRC as 1C08).
APPENDIX_A = (
    b"##0101QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;"
    b"CP=&&RtdInterval=30&&1C80\r\n"
)
# An air station's real-time packet as a fielded device sent it (quoted in a public HJ 212
# project): its CRC is printed in lowercase.
REAL_AIR = (
    b"##0317QN=20191012133710130;ST=22;CN=2011;PW=123456;MN=Y80110010000010;Flag=4;"
    b"CP=&&DataTime=20191012133710;a21005-Rtd=0.00,a21005-Flag=N;a21004-Rtd=0.00,a21004-Flag=N;"
    b"a21007-Rtd=0.033,a21007-Flag=N;a21006-Rtd=0.036,a21006-Flag=N;a21001-Rtd=25.40,"
    b"a21001-Flag=N;a21003-Rtd=101.94,a21003-Flag=N;a21002-Rtd=49.20,a21002-Flag=N&&cc01\r\n"
)
MN = "33080200000001"


# -- an independent CRC: table-driven, the table built by linearity -----------------------------


def _reference_table() -> list[int]:
    # The register after one byte depends only on the 8-bit value (crc >> 8) ^ byte, and the
    # 8 shifts are linear over XOR: one entry per bit, then every index as the XOR of its bits.
    per_bit = []
    for bit in range(8):
        reg = 1 << bit
        for _ in range(8):
            reg = (reg >> 1) ^ (0xA001 * (reg & 1))
        per_bit.append(reg)
    return [reduce(xor, (per_bit[b] for b in range(8) if i >> b & 1), 0) for i in range(256)]


_TABLE = _reference_table()


def reference_crc(data: bytes) -> int:
    reg = 0xFFFF
    for byte in data:
        reg = _TABLE[(reg >> 8) ^ byte]
    return reg


def modbus_crc(data: bytes) -> int:
    reg = 0xFFFF
    for byte in data:
        reg ^= byte
        for _ in range(8):
            reg = (reg >> 1) ^ (0xA001 * (reg & 1))
    return reg


def frame(data: str, *, length: int | None = None, crc: str | None = None) -> bytes:
    """A packet around ``data`` framed by the test itself, with the reference CRC."""
    raw = data.encode()
    declared = len(raw) if length is None else length
    check = f"{reference_crc(raw):04X}" if crc is None else crc
    return b"##%04d" % declared + raw + check.encode() + b"\r\n"


def header(cn: str = "2011", st: str = "32", flag: str = "4") -> str:
    return f"QN=20261123173000123;ST={st};CN={cn};PW=123456;MN={MN};Flag={flag}"


def data_packet(cn: str, cp: dict, st: str = "32", flag: int = 4) -> Packet:
    return Packet(qn="20261123173000123", st=st, cn=cn, pw="123456", mn=MN, flag=flag, cp=cp)


# -- CRC ---------------------------------------------------------------------------------------


def test_appendix_a_packet_verifies_and_parses() -> None:
    packet = parse(APPENDIX_A)
    assert packet == Packet(
        qn="20160801085857223",
        st="32",
        cn="1062",
        pw="100000",
        mn="010000A8900016F000169DC0",
        flag=5,
        cp={"RtdInterval": 30},
    )
    assert crc_hex(APPENDIX_A[6:-6]) == "1C80"
    assert build(packet).encode() == APPENDIX_A
    assert packet.wants_answer


@pytest.mark.parametrize(
    "data",
    [
        APPENDIX_A[6:-6],
        REAL_AIR[6:-6],
        b"",
        b"QN=20261123173000123;ST=91;CN=9014;PW=123456;MN=33080200000001;Flag=4;CP=&&&&",
        "CP=&&DataTime=20261123173000;w01018-Rtd=42.5,w01018-Flag=N;备注=站点&&".encode(),
        bytes(range(256)),
    ],
)
def test_crc_matches_an_independent_table_driven_implementation(data: bytes) -> None:
    assert crc16(data) == reference_crc(data)
    assert crc_hex(data) == f"{reference_crc(data):04X}"


def test_crc_is_not_modbus() -> None:
    data = APPENDIX_A[6:-6]
    assert crc16(data) == 0x1C80
    assert modbus_crc(data) != 0x1C80


def test_crc_in_lowercase_is_accepted() -> None:
    assert parse(APPENDIX_A.replace(b"1C80", b"1c80")).cn == "1062"
    air = parse(REAL_AIR)
    assert air.pollutants["a21003"] == {"Rtd": 101.94, "Flag": "N"}
    assert air.data_time == "20191012133710"


def test_built_packets_print_the_crc_in_uppercase() -> None:
    assert build(parse(APPENDIX_A.replace(b"1C80", b"1c80"))).encode() == APPENDIX_A


# -- building and parsing data packets -----------------------------------------------------------

WATER_2011 = {
    "DataTime": "20261123173000",
    "w01018": {"Rtd": 42.5, "Flag": "N"},
    "w21003": {"Rtd": 1.25, "Flag": "M"},
    "w00000": {"Rtd": 118, "Flag": "N"},
}
WATER_2061 = {
    "DataTime": "20261123160000",
    "w01018": {"Min": 38.0, "Avg": 41.2, "Max": 45.9, "Cou": 17.8, "Flag": "N"},
    "w00000": {"Min": 110.0, "Avg": 120.0, "Max": 130.0, "Cou": 432.0, "Flag": "N"},
}
AIR_2011 = {
    "DataTime": "20261123173000",
    "a21026": {"Rtd": 35.0, "ZsRtd": 48.3, "Flag": "N"},
    "a34013": {"Rtd": 8.1, "ZsRtd": 11.2, "Flag": "C"},
    "a19001": {"Rtd": 9.8, "Flag": "N"},
}
AIR_2051 = {
    "DataTime": "20261123172000",
    "a34004": {"Min": 30, "Avg": 33.5, "Max": 37, "Flag": "N"},
    "a05024": {"Min": 80, "Avg": 92.25, "Max": 101, "Flag": "N"},
}
AIR_2031 = {
    "DataTime": "20261122000000",
    "a21002": {"Min": 12.0, "Avg": 20.5, "Max": 31.0, "Cou": 0.84, "Flag": "N"},
}


@pytest.mark.parametrize(
    ("st", "cn", "cp", "cp_text"),
    [
        (
            "32",
            "2011",
            WATER_2011,
            "DataTime=20261123173000;w01018-Rtd=42.5,w01018-Flag=N;"
            "w21003-Rtd=1.25,w21003-Flag=M;w00000-Rtd=118,w00000-Flag=N",
        ),
        (
            "32",
            "2061",
            WATER_2061,
            "DataTime=20261123160000;w01018-Min=38.0,w01018-Avg=41.2,w01018-Max=45.9,"
            "w01018-Cou=17.8,w01018-Flag=N;w00000-Min=110.0,w00000-Avg=120.0,w00000-Max=130.0,"
            "w00000-Cou=432.0,w00000-Flag=N",
        ),
        (
            "31",
            "2011",
            AIR_2011,
            "DataTime=20261123173000;a21026-Rtd=35.0,a21026-ZsRtd=48.3,a21026-Flag=N;"
            "a34013-Rtd=8.1,a34013-ZsRtd=11.2,a34013-Flag=C;a19001-Rtd=9.8,a19001-Flag=N",
        ),
        (
            "22",
            "2051",
            AIR_2051,
            "DataTime=20261123172000;a34004-Min=30,a34004-Avg=33.5,a34004-Max=37,a34004-Flag=N;"
            "a05024-Min=80,a05024-Avg=92.25,a05024-Max=101,a05024-Flag=N",
        ),
        (
            "31",
            "2031",
            AIR_2031,
            "DataTime=20261122000000;a21002-Min=12.0,a21002-Avg=20.5,a21002-Max=31.0,"
            "a21002-Cou=0.84,a21002-Flag=N",
        ),
    ],
)
def test_build_writes_the_standard_layout_and_parse_reads_it_back(
    st: str, cn: str, cp: dict, cp_text: str
) -> None:
    packet = data_packet(cn, cp, st=st)
    text = build(packet)
    data = f"{header(cn, st)};CP=&&{cp_text}&&"
    assert text == frame(data).decode()
    assert int(text[2:6]) == len(data.encode())
    assert parse(text) == packet
    assert build(parse(text)) == text


def test_values_keep_int_or_float_from_their_text_and_are_normalised_on_build() -> None:
    packet = parse(
        frame(f"{header()};CP=&&DataTime=20261123173000;w01018-Rtd=042.50,w00000-Rtd=7&&")
    )
    assert packet.pollutants == {"w01018": {"Rtd": 42.5}, "w00000": {"Rtd": 7}}
    assert isinstance(packet.cp["w00000"]["Rtd"], int)  # type: ignore[index]
    assert isinstance(packet.cp["w01018"]["Rtd"], float)  # type: ignore[index]
    assert ";w01018-Rtd=42.5;w00000-Rtd=7&&" in build(packet)
    assert format_number(1e-05) == "0.00001"
    assert format_number(1e16) == "10000000000000000.0"
    assert format_number(-3) == "-3"


def test_items_are_merged_by_code_whatever_the_grouping() -> None:
    data = f"{header()};CP=&&DataTime=20261123173000,w01018-Rtd=4;w01018-Flag=D;&&"
    assert parse(frame(data)).cp == {
        "DataTime": "20261123173000",
        "w01018": {"Rtd": 4, "Flag": "D"},
    }


def test_pw_and_flag_may_be_absent() -> None:
    data = f"QN=20261123173000123;ST=32;CN=2011;MN={MN};CP=&&DataTime=20261123173000;011-Rtd=5&&"
    packet = parse(frame(data))
    assert (packet.pw, packet.flag) == (None, None)
    assert build(packet) == frame(data).decode()


def test_chinese_text_counts_its_utf8_bytes() -> None:
    packet = Packet(qn="1", st="91", cn="3020", mn=MN, flag=4, cp={"Info": "衢州站"})
    text = build(packet)
    data = f"QN=1;ST=91;CN=3020;MN={MN};Flag=4;CP=&&Info=衢州站&&"
    assert len(data.encode()) == len(data) + 6  # three characters, three bytes each
    assert text == frame(data).decode()
    assert parse(text.encode()) == packet


# -- one error kind per malformation -------------------------------------------------------------

GOOD = f"{header()};CP=&&DataTime=20261123173000;w01018-Rtd=42.5,w01018-Flag=N&&"


@pytest.mark.parametrize(
    ("raw", "error", "kind"),
    [
        (frame(GOOD)[2:], BadHeader, "bad_header"),
        (b"  " + frame(GOOD), BadHeader, "bad_header"),
        (b"##01x1" + frame(GOOD)[6:], BadHeader, "bad_header"),
        (frame(GOOD, length=len(GOOD) - 1), LengthMismatch, "length_mismatch"),
        (frame(GOOD, crc="0000"), CrcMismatch, "crc_mismatch"),
        (frame(GOOD, crc="12G4"), CrcMismatch, "crc_mismatch"),
        (frame(GOOD)[:-2], Truncated, "truncated"),
        (frame(GOOD)[:40] + b"\r\n", Truncated, "truncated"),
        (frame(GOOD, length=len(GOOD) + 1), Truncated, "truncated"),
        (frame(GOOD, length=1100), TooLong, "too_long"),
        (frame(f"{header()};CP=&&Note={'x' * 1000}&&", length=1100), TooLong, "too_long"),
        (frame(f"{header()};CP=&&Note={'x' * 960}&&"), TooLong, "too_long"),
    ],
)
def test_each_framing_malformation_has_its_own_kind(
    raw: bytes, error: type[Hj212Error], kind: str
) -> None:
    with pytest.raises(error) as caught:
        parse(raw)
    assert caught.value.kind == kind
    assert isinstance(caught.value, Hj212Error)
    assert "expected" in caught.value.detail or "at most" in caught.value.detail


@pytest.mark.parametrize(
    ("data", "key"),
    [
        (GOOD.replace(";ST=32", ";ST32"), None),  # an item without =
        (GOOD.replace("QN=20261123173000123;", ""), "QN"),
        (GOOD.replace(";ST=32", ""), "ST"),
        (GOOD.replace(";CN=2011", ""), "CN"),
        (GOOD.replace(f";MN={MN}", ""), "MN"),
        (GOOD.split(";CP=")[0], "CP"),
        (GOOD.replace("Flag=4", "Flag=five"), "Flag"),
        (GOOD.replace("ST=32", "ST=3x"), "ST"),
        (GOOD.replace("CN=2011", "CN="), "CN"),
        (GOOD.removesuffix("&&"), "CP"),  # CP not closed
        (GOOD.replace("CP=&&", "CP="), "CP"),
        (GOOD.replace("w01018-Flag=N", "w01018-Flag"), "CP"),  # CP item without =
        (GOOD.replace("-Rtd=42.5", "-Rtd=4x"), "CP"),  # non-numeric pollutant value
        (GOOD.replace("-Rtd=42.5", "-Rtd=nan"), "CP"),
        (GOOD.replace("-Rtd=42.5", "-Rtd="), "CP"),
        (GOOD.replace("w01018-Rtd", "-Rtd"), "CP"),
        (GOOD.replace("w01018-Flag=N", "w01018-Rtd=1"), "CP"),  # the same item twice
        (GOOD.replace("Flag=4", "Flag=4;Flag=5"), "Flag"),
        (GOOD.replace("Flag=4", "Flag=4;XX=1"), None),  # unknown data-segment field
        (GOOD.replace("Flag=4", "Flag=6"), "Flag"),  # split bit without PNUM/PNO
        (GOOD.replace("Flag=4", "Flag=6;PNUM=2;PNO=3"), "PNO"),
    ],
)
def test_each_bad_field_is_bad_field(data: str, key: str | None) -> None:
    with pytest.raises(BadField) as caught:
        parse(frame(data))
    assert caught.value.kind == "bad_field"
    assert caught.value.key == key
    assert "expected" in caught.value.detail or "twice" in caught.value.detail


def test_a_data_segment_that_is_not_utf8_is_a_bad_field() -> None:
    raw = GOOD.encode().replace(b"Flag=N", b"Flag=\xff")
    packet = b"##%04d" % len(raw) + raw + b"%04X\r\n" % reference_crc(raw)
    with pytest.raises(BadField, match="UTF-8"):
        parse(packet)


def test_error_kinds_are_distinct_and_stable() -> None:
    kinds = [e.kind for e in (BadHeader, LengthMismatch, CrcMismatch, Truncated, TooLong, BadField)]
    assert kinds == [
        "bad_header",
        "length_mismatch",
        "crc_mismatch",
        "truncated",
        "too_long",
        "bad_field",
    ]
    assert all(issubclass(e, Hj212Error) and issubclass(e, ValueError) for e in (BadField, TooLong))


def test_a_packet_that_cannot_be_written_is_refused() -> None:
    with pytest.raises(BadField, match="expected no ; , && or line break"):
        data_packet("2011", {"DataTime": "20261123173000", "Note": "a;b"})
    with pytest.raises(BadField, match="expected a finite number"):
        data_packet("2011", {"w01018": {"Rtd": "42"}})
    with pytest.raises(BadField, match="expected a finite number"):
        data_packet("2011", {"w01018": {"Rtd": float("inf")}})
    with pytest.raises(BadField, match="expected text"):
        data_packet("2011", {"DataTime": 20261123173000})
    with pytest.raises(BadField):
        data_packet("2011", {"w01-018": {"Rtd": 1}})
    with pytest.raises(TooLong, match="CP field has 1049 characters, at most 950"):
        build(data_packet("2011", {f"w{n:05d}": {"Rtd": 1.5} for n in range(70)}))
    with pytest.raises(TooLong, match="data segment has 1026 bytes, at most 1024"):
        build(data_packet("2011", {"Note": "x" * 944}))


# -- flags and split packets ------------------------------------------------------------------


def test_flag_bits() -> None:
    assert wants_answer(5) and not wants_answer(4) and not wants_answer(None)
    assert is_split(6) and is_split(7) and not is_split(5) and not is_split(None)


def _parts() -> list[Packet]:
    cps = [
        {"DataTime": "20261123160000", "w01018": {"Avg": 41.2, "Flag": "N"}},
        {"DataTime": "20261123160000", "w21003": {"Avg": 1.1}, "w01018": {"Cou": 17.8}},
        {"DataTime": "20261123160000", "w00000": {"Avg": 120.0, "Cou": 432.0}},
    ]
    return [
        Packet(qn="20261123170000001", st="32", cn="2061", mn=MN, flag=7, pnum=3, pno=n, cp=cp)
        for n, cp in enumerate(cps, start=1)
    ]


MERGED_CP = {
    "DataTime": "20261123160000",
    "w01018": {"Avg": 41.2, "Flag": "N", "Cou": 17.8},
    "w21003": {"Avg": 1.1},
    "w00000": {"Avg": 120.0, "Cou": 432.0},
}


@pytest.mark.parametrize("order", list(permutations(range(3))))
def test_split_packets_are_reassembled_in_any_order(order: tuple[int, ...]) -> None:
    parts = [parse(build(p)) for p in _parts()]
    joiner = Reassembler()
    results = [joiner.add(parts[i]) for i in order]
    assert results[:2] == [None, None]
    whole = results[2]
    assert whole is not None
    assert whole.cp == MERGED_CP
    assert (whole.pnum, whole.pno, whole.flag) == (None, None, 5)
    assert joiner.pending == 0


def test_interleaved_split_messages_and_unsplit_packets() -> None:
    joiner = Reassembler()
    first = _parts()
    other = [Packet(**{**vars(p), "qn": "20261123170000002"}) for p in first]
    plain = data_packet("2011", WATER_2011)
    assert joiner.add(first[0]) is None
    assert joiner.add(other[2]) is None
    assert joiner.add(plain) == plain
    assert joiner.add(first[1]) is None
    assert joiner.add(first[1]) is None  # a resent part counts once
    assert joiner.add(other[0]) is None
    assert joiner.pending == 2
    assert joiner.add(first[2]).cp == MERGED_CP  # type: ignore[union-attr]
    assert joiner.add(other[1]).qn == "20261123170000002"  # type: ignore[union-attr]


def test_reassembly_memory_is_bounded() -> None:
    joiner = Reassembler(max_messages=2, max_parts=3)
    for n in range(3):
        assert joiner.add(Packet(**{**vars(_parts()[0]), "qn": f"Q{n}"})) is None
    assert (joiner.pending, joiner.dropped) == (2, 1)
    too_many = Packet(qn="Q9", st="32", cn="2061", mn=MN, flag=6, pnum=4, pno=1)
    with pytest.raises(BadField, match="PNUM=4"):
        joiner.add(too_many)


def test_parts_that_disagree_are_refused() -> None:
    joiner = Reassembler()
    first, second, _ = _parts()
    joiner.add(first)
    with pytest.raises(BadField, match="PNUM"):
        joiner.add(Packet(**{**vars(second), "pnum": 4}))
    joiner.add(first)
    joiner.add(Packet(**{**vars(second), "cp": {"DataTime": "20261123150000"}}))
    with pytest.raises(BadField, match="disagree on CP DataTime"):
        joiner.add(_parts()[2])


# -- framing a TCP stream -----------------------------------------------------------------------

P1 = APPENDIX_A
P2 = frame(GOOD)
P3 = REAL_AIR


def test_framer_handles_reads_split_anywhere() -> None:
    framer = Framer()
    out: list[bytes | Hj212Error] = []
    for i in range(len(P1 + P2)):
        out += framer.feed((P1 + P2)[i : i + 1])
    assert out == [P1, P2]


def test_framer_returns_several_packets_from_one_read() -> None:
    assert Framer().feed(P1 + P2 + P3) == [P1, P2, P3]


def test_framer_skips_garbage_between_packets() -> None:
    out = Framer().feed(b"\x00junk" + P1 + b"\r\n" + P2 + b"noise#" + P3)
    kinds = [x.kind if isinstance(x, Hj212Error) else x for x in out]
    assert kinds == ["bad_header", P1, P2, "bad_header", P3]  # the bare \r\n is not reported
    assert "skipped 6 bytes" in str(out[3])


def test_framer_resynchronises_after_bad_frames() -> None:
    truncated = P1[:50]
    wrong_length = b"##0050" + P2[6:]
    out = Framer().feed(truncated + P2 + wrong_length + b"##9999xx\r\n" + b"#" + P3)
    kinds = [x.kind if isinstance(x, Hj212Error) else x for x in out]
    assert kinds == ["truncated", P2, "length_mismatch", "too_long", "bad_header", P3]
    assert str(out[0]) == "expected 101 bytes of data, a new ## began after 44"
    assert str(out[2]) == "expected 50 bytes of data, got 130"


def test_framer_bounds_its_buffer_and_reports_what_it_drops() -> None:
    framer = Framer(max_buffer=2048)
    out = framer.feed(b"x" * 5000)
    assert [x.kind for x in out] == ["bad_header"]  # type: ignore[union-attr]
    out = framer.feed(b"y" * 100 + P1[:30])
    assert [x.kind for x in out] == ["bad_header"]  # type: ignore[union-attr]
    assert framer.feed(P1[30:]) == [P1]


def test_framer_leaves_the_crc_to_parse() -> None:
    bad = frame(GOOD, crc="0000")
    (raw,) = Framer().feed(bad)
    assert raw == bad
    with pytest.raises(CrcMismatch):
        parse(raw)  # type: ignore[arg-type]


# -- readings ------------------------------------------------------------------------------------


def test_realtime_reading_takes_rtd_values_flags_and_local_time() -> None:
    mn, reading = to_device_reading(parse(build(data_packet("2011", WATER_2011))))
    assert mn == MN
    assert reading.ts == datetime(2026, 11, 23, 17, 30, tzinfo=SHANGHAI)
    assert reading.ts.utcoffset() == timedelta(hours=8)
    assert reading.ts.astimezone(UTC) == datetime(2026, 11, 23, 9, 30, tzinfo=UTC)
    assert reading.values == {
        "w01018": Measurement(value=42.5, flag=DataFlag.NORMAL),
        "w21003": Measurement(value=1.25, flag=DataFlag.MAINTENANCE),
        "w00000": Measurement(value=118.0, flag=DataFlag.NORMAL),
    }


def test_period_readings_take_avg_and_skip_pollutants_without_it() -> None:
    cp = {**WATER_2061, "w21011": {"Cou": 0.3}}
    _, hourly = to_device_reading(data_packet("2061", cp), tz="UTC")
    assert hourly.values == {"w01018": Measurement(value=41.2), "w00000": Measurement(value=120.0)}
    assert hourly.ts == datetime(2026, 11, 23, 16, 0, tzinfo=ZoneInfo("UTC"))
    _, minute = to_device_reading(data_packet("2051", AIR_2051, st="22"))
    assert minute.values == {"a34004": Measurement(value=33.5), "a05024": Measurement(value=92.25)}
    _, daily = to_device_reading(data_packet("2031", AIR_2031, st="31"))
    assert daily.values == {"a21002": Measurement(value=20.5)}
    assert daily.ts == datetime(2026, 11, 22, tzinfo=SHANGHAI)


def test_2005_codes_are_mapped_to_2017_codes_in_readings() -> None:
    data = (
        f"{header()};CP=&&DataTime=20261123173000;B01-Rtd=36.91;011-Rtd=231.0,011-Flag=N;"
        "060-Rtd=1.803,060-Flag=D;101-Rtd=0.42;065-Rtd=12.5&&"
    )
    packet = parse(frame(data))
    assert set(packet.pollutants) == {"B01", "011", "060", "101", "065"}  # kept as sent
    _, reading = to_device_reading(packet)
    assert reading.values == {
        "w00000": Measurement(value=36.91),
        "w01018": Measurement(value=231.0),
        "w21003": Measurement(value=1.803, flag=DataFlag.FAULT),
        "w21011": Measurement(value=0.42),
        "w21001": Measurement(value=12.5),
    }


def test_the_2005_code_map_is_the_standards_tables() -> None:
    # HJ 212-2017 tables B.1 (water, 19 codes mapped) and B.2 (air, every 原编码: 01-15, 17-37,
    # S01-S08, B02) list each 2005 code once.
    water = {k: v for k, v in LEGACY_CODES.items() if v.startswith("w")}
    air = {k: v for k, v in LEGACY_CODES.items() if v.startswith("a")}
    assert (len(water), len(air)) == (19, 45) and len(LEGACY_CODES) == 64
    assert len(set(LEGACY_CODES.values())) == len(LEGACY_CODES)  # no two codes merge
    assert (water["001"], water["110"], air["02"], air["S01"]) == (
        "w01001",
        "w23002",
        "a21026",
        "a19001",
    )
    assert (air["05"], air["10"], air["30"], air["37"]) == ("a21028", "a21001", "a05001", "a01010")
    # Air's two-digit codes cannot be read as water's three-digit ones, nor the reverse.
    numeric_air = {k for k in air if k.isdigit()}
    assert numeric_air == {f"{n:02d}" for n in range(1, 38)} - {"16"}
    assert all(len(k) == 3 for k in water)


@pytest.mark.parametrize(
    ("cn", "cp", "match"),
    [
        ("2011", {"DataTime": "20261123173000"}, "no -Rtd values"),
        ("2061", {"DataTime": "20261123160000", "w01018": {"Rtd": 1.0}}, "no -Avg values"),
        ("1062", {"RtdInterval": 30}, "CN=1062 carries no readings"),
        ("2011", {"w01018": {"Rtd": 1.0}}, "missing CP DataTime"),
        ("2011", {"DataTime": "2026-11-23", "w01018": {"Rtd": 1.0}}, "YYYYMMDDhhmmss"),
        ("2011", {"DataTime": "20261131173000", "w01018": {"Rtd": 1.0}}, "not a real date"),
        ("2011", {"DataTime": "20261123173000", "w01018": {"Rtd": 1, "Flag": "X"}}, "Flag='X'"),
        ("2011", {"DataTime": "20261123173000", "SB1": {"Rtd": 1.0}}, "code 'SB1'"),
        ("2011", {"DataTime": "20261123173000", "011": {"Rtd": 1}, "w01018": {"Rtd": 2}}, "twice"),
    ],
)
def test_readings_refuse_what_they_cannot_represent(cn: str, cp: dict, match: str) -> None:
    with pytest.raises(BadField, match=match):
        to_device_reading(data_packet(cn, cp))


# -- replies -------------------------------------------------------------------------------------


def test_data_answer_9014() -> None:
    request = data_packet("2011", WATER_2011, flag=5)
    text = build(data_answer(request))
    data = f"QN=20261123173000123;ST=91;CN=9014;PW=123456;MN={MN};Flag=4;CP=&&&&"
    assert text == frame(data).decode()
    assert parse(text) == data_answer(request)
    assert int(text[-6:-2], 16) == reference_crc(data.encode())


def test_request_answer_9011() -> None:
    text = build(request_answer(parse(APPENDIX_A)))
    data = "QN=20160801085857223;ST=91;CN=9011;PW=100000;MN=010000A8900016F000169DC0;Flag=4;"
    assert text == frame(data + "CP=&&QnRtn=1&&").decode()
    assert parse(text).cp == {"QnRtn": 1}


@pytest.mark.parametrize(
    ("raw", "rtn"),
    [
        (APPENDIX_A.replace(b"1C80", b"1C08"), QnRtn.CRC_ERROR),
        (frame(GOOD.replace("ST=32", "ST=3x")), QnRtn.ST_ERROR),
        (frame(GOOD.replace("Flag=4", "Flag=x")), QnRtn.FLAG_ERROR),
        (frame(GOOD.replace("CN=2011", "CN=")), QnRtn.CN_ERROR),
        (frame(GOOD.replace("-Rtd=42.5", "-Rtd=x")), QnRtn.UNKNOWN),
        (frame(GOOD, length=len(GOOD) - 1), QnRtn.UNKNOWN),
    ],
)
def test_bad_packets_get_a_9011_with_the_right_qnrtn(raw: bytes, rtn: QnRtn) -> None:
    with pytest.raises(Hj212Error) as caught:
        parse(raw)
    assert qn_rtn_for(caught.value) == rtn
    answer = reject_answer(raw, caught.value)
    assert answer is not None
    reparsed = parse(build(answer))
    assert (reparsed.st, reparsed.cn, reparsed.flag, reparsed.cp) == (
        "91",
        "9011",
        4,
        {"QnRtn": rtn},
    )
    if raw.startswith(b"##0101"):
        assert (reparsed.qn, reparsed.mn, reparsed.pw) == (
            "20160801085857223",
            "010000A8900016F000169DC0",
            "100000",
        )
    else:
        assert (reparsed.qn, reparsed.mn, reparsed.pw) == ("20261123173000123", MN, "123456")


def test_no_9011_when_the_sender_cannot_be_named() -> None:
    assert reject_answer(b"garbage\r\n", BadHeader("expected ##")) is None


# -- JSON ----------------------------------------------------------------------------------------


def test_packet_to_json_uses_the_standard_names() -> None:
    doc = packet_to_json(parse(build(data_packet("2061", WATER_2061))))
    assert doc == {
        "version": "2017",  # from Flag's bits 7..2
        "QN": "20261123173000123",
        "ST": "32",
        "CN": "2061",
        "PW": "123456",
        "MN": MN,
        "Flag": 4,
        "CP": {
            "DataTime": "20261123160000",
            "w01018": {"Min": 38.0, "Avg": 41.2, "Max": 45.9, "Cou": 17.8, "Flag": "N"},
            "w00000": {"Min": 110.0, "Avg": 120.0, "Max": 130.0, "Cou": 432.0, "Flag": "N"},
        },
    }
    assert json_to_packet(json.loads(json.dumps(doc))) == data_packet("2061", WATER_2061)
    split = packet_to_json(_parts()[1])
    assert (split["Flag"], split["PNUM"], split["PNO"]) == (7, 3, 2)
    assert json_to_packet(split) == _parts()[1]
    assert packet_to_json(parse(APPENDIX_A))["CP"] == {"RtdInterval": 30}


@pytest.mark.parametrize(
    ("doc", "match"),
    [
        ([1, 2], "expected a JSON object"),
        ({"QN": "1", "ST": "32", "CN": "2011", "MN": MN}, "missing required key CP"),
        ({"QN": "1", "ST": 32, "CN": "2011", "MN": MN, "CP": {}}, "ST: expected a string"),
        ({"QN": "1", "ST": "32", "CN": "2011", "MN": MN, "CP": {}, "Flag": True}, "Flag=True"),
        ({"QN": "1", "ST": "32", "CN": "2011", "MN": MN, "CP": []}, "CP: expected an object"),
        ({"QN": "1", "ST": "32", "CN": "2011", "MN": MN, "CP": {"a": [1]}}, "expected text or"),
        ({"QN": "1", "ST": "32", "CN": "2011", "MN": MN, "CP": {}, "XX": 1}, "unknown key"),
    ],
)
def test_json_to_packet_refuses_bad_objects(doc: object, match: str) -> None:
    with pytest.raises(BadField, match=match):
        json_to_packet(doc)


# -- CLI -----------------------------------------------------------------------------------------


def test_cli_decode_reads_a_stream_of_packets_and_prints_errors_in_place() -> None:
    stdin = (
        APPENDIX_A
        + b"\r\n"  # a stray line ending between packets is no error
        + REAL_AIR
        + b"not a packet\r\n"
        + APPENDIX_A.replace(b"1C80", b"1C08")
    )
    result = CliRunner().invoke(hj212, ["decode"], input=stdin)
    assert result.exit_code == 1
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines[0] == packet_to_json(parse(APPENDIX_A))
    assert lines[1]["CP"]["a21003"] == {"Rtd": 101.94, "Flag": "N"}
    assert lines[2]["error"] == "bad_header"
    assert lines[3] == {
        "error": "crc_mismatch",
        "detail": "expected CRC 1C80, the packet says 1C08",
    }
    assert len(lines) == 4


def test_cli_decode_of_good_packets_exits_0_and_keeps_chinese() -> None:
    packet = Packet(qn="1", st="91", cn="3020", mn=MN, flag=4, cp={"Info": "衢州站"})
    result = CliRunner().invoke(hj212, ["decode"], input=build(packet).encode())
    assert result.exit_code == 0
    assert "衢州站" in result.stdout
    assert json.loads(result.stdout) == packet_to_json(packet)


def test_cli_encode_then_decode_round_trips() -> None:
    docs = [
        packet_to_json(data_packet("2011", WATER_2011)),
        packet_to_json(data_packet("2051", AIR_2051, st="22")),
        packet_to_json(_parts()[0]),
        packet_to_json(parse(APPENDIX_A)),
        packet_to_json(parse(APPENDIX_A1_2025)),
    ]
    runner = CliRunner()
    encoded = runner.invoke(hj212, ["encode"], input="\n".join(json.dumps(d) for d in docs))
    assert encoded.exit_code == 0
    packets = encoded.stdout_bytes.split(b"\r\n")
    assert packets[3] + b"\r\n" == APPENDIX_A and packets[4] + b"\r\n" == APPENDIX_A1_2025
    decoded = runner.invoke(hj212, ["decode"], input=encoded.stdout_bytes)
    assert decoded.exit_code == 0
    assert [json.loads(line) for line in decoded.stdout.splitlines()] == docs


def test_cli_encode_reports_bad_objects_and_exits_1() -> None:
    good = json.dumps(packet_to_json(parse(APPENDIX_A)))
    stdin = "\n".join(["{not json", '{"QN": "1"}', good, json.dumps({"QN": "1", "CP": 3})])
    result = CliRunner().invoke(hj212, ["encode"], input=stdin)
    assert result.exit_code == 1
    lines = result.stdout_bytes.split(b"\n")
    assert json.loads(lines[0])["error"] == "bad_json"
    assert json.loads(lines[1]) == {"error": "bad_field", "detail": "missing required key ST"}
    assert lines[2] + b"\n" == APPENDIX_A
    assert json.loads(lines[3])["error"] == "bad_field"


# -- SM4: HJ 212-2025's encrypted CP --------------------------------------------------------------

KEY_A2 = b"0" * 16  # Appendix A.2's example key: 16 bytes of 0x30
KEY_A2_HEX = KEY_A2.hex()


def encrypted_upload() -> Packet:
    cp = {
        "DataTime": "20261123173000",
        "w01018": {"Rtd": 231.5, "Flag": "N"},
        "w00000": {"Rtd": 31.5, "Flag": "N"},
    }
    return replace(data_packet("2011", cp, flag=9), encrypted=True)


def test_an_encrypted_packet_is_read_with_its_devices_key_only() -> None:
    packet = encrypted_upload()
    raw = codec.build_bytes(packet, KEY_A2)
    plain = build(replace(packet, encrypted=False)).encode()
    # ECB without padding keeps the length; the CRC is the plain text's; the CP is not.
    assert len(raw) == len(plain) and raw[-6:] == plain[-6:] and raw != plain
    assert b"w01018" not in raw and raw.startswith(plain[: plain.index(b"CP=&&") + 5])
    assert parse(raw, KEY_A2) == packet
    with pytest.raises(CrcMismatch):
        parse(raw)  # no key
    with pytest.raises(CrcMismatch, match="nor after decrypting"):
        parse(raw, b"1" * 16)  # another device's key
    # A plain packet reads the same with or without a key.
    assert parse(plain, KEY_A2) == replace(packet, encrypted=False)


def test_ciphertext_holding_crlf_and_ampersands_is_framed_by_its_length() -> None:
    # Find a CP whose ciphertext holds \r\n or &&: the framer must not cut there.
    for n in range(2000):
        cp = {**encrypted_upload().cp, "w01018": {"Rtd": 200 + n / 10, "Flag": "N"}}
        packet = replace(encrypted_upload(), cp=cp)
        raw = codec.build_bytes(packet, KEY_A2)
        cipher = raw[raw.index(b"CP=&&") + 5 : -8]
        if b"\r\n" in cipher or b"&&" in cipher or b"##" in cipher:
            break
    else:
        pytest.fail("no ciphertext with a delimiter in it among 2000 packets")
    (frame,) = Framer().feed(raw)
    assert frame == raw and parse(frame, KEY_A2) == packet


@pytest.mark.parametrize("inside", [b"##", b"\r\n"])
def test_ciphertext_holding_a_delimiter_is_framed_by_its_length_when_it_trickles_in(
    inside: bytes,
) -> None:
    # A socket hands over a packet in pieces; a piece that ends inside the ciphertext must
    # not be cut at a ## or \r\n there (CI once lost a resend so, with the stack's random key).
    for n in range(20000):
        cp = {**encrypted_upload().cp, "w01018": {"Rtd": 100 + n / 100, "Flag": "N"}}
        packet = replace(encrypted_upload(), cp=cp)
        raw = codec.build_bytes(packet, KEY_A2)
        if inside in raw[raw.index(b"CP=&&") + 5 : -8]:
            break
    else:
        pytest.fail(f"no ciphertext with {inside!r} in it among 20000 packets")
    stream = raw + build(data_packet("2011", WATER_2011)).encode() + raw
    framer, frames = Framer(), []
    for i in range(0, len(stream), 7):
        frames += framer.feed(stream[i : i + 7])
    assert frames == [raw, build(data_packet("2011", WATER_2011)).encode(), raw]
    assert parse(frames[0], KEY_A2) == packet


def test_a_damaged_packet_is_a_crc_error_even_when_decrypting_it_would_match_by_chance() -> None:
    # A CI run found this: a 2017 upload damaged on the line (CRC 0000), whose CP "decrypted"
    # with its device's key gives garbage with CRC 0000 (1 chance in 65,536). A 2017 packet is
    # never encrypted, so it is not decrypted; and garbage that matches is no plain text.
    key = bytes.fromhex("7fc9b93f9419c92253ea5de6a62730e7")
    cp = {"DataTime": "20261123030600", "w01018": {"Rtd": 40.0, "Flag": "N"}}
    packet = Packet(qn="20261123000306000", st="32", cn="2011", pw="x", mn=MN, flag=5, cp=cp)
    damaged = build(replace(packet, mn="33080300000016"))[:-6] + "0000\r\n"
    with pytest.raises(CrcMismatch):
        parse(damaged.encode(), key)
    as_2025 = damaged.replace("Flag=5", "Flag=9")  # as if a 2025 device's, same CRC
    with pytest.raises(CrcMismatch):
        parse(as_2025.encode(), key)


def test_appendix_a2s_text_form_of_the_ciphertext_is_read_too() -> None:
    packet = encrypted_upload()
    raw = codec.build_bytes(packet, KEY_A2)
    start, crc = raw.index(b"CP=&&") + 5, raw[-6:-2]
    text_form = sm4.to_text_form(raw[start:-8]).encode()
    data = raw[6:start] + text_form + b"&&"
    sent = b"##%04d" % len(data) + data + crc + b"\r\n"
    assert parse(sent, KEY_A2) == packet


def test_cli_encrypts_and_decrypts_with_the_key_and_fails_without_it() -> None:
    doc = packet_to_json(encrypted_upload())
    assert doc["encrypted"] is True and doc["version"] == "2025"
    runner = CliRunner()
    encoded = runner.invoke(hj212, ["encode", "--sm4-key", KEY_A2_HEX], input=json.dumps(doc))
    assert encoded.exit_code == 0
    decoded = runner.invoke(hj212, ["decode", "--sm4-key", KEY_A2_HEX], input=encoded.stdout_bytes)
    assert decoded.exit_code == 0 and json.loads(decoded.stdout) == doc
    two = encoded.stdout_bytes + build(replace(encrypted_upload(), encrypted=False)).encode()
    without = runner.invoke(hj212, ["decode"], input=two)
    assert without.exit_code == 1  # the encrypted one is its error; the plain one decodes
    first, second = (json.loads(line) for line in without.stdout.splitlines())
    assert first["error"] == "crc_mismatch" and second["CN"] == "2011"
    # Encrypting asks for a key, and a bad key is refused before anything is read.
    no_key = runner.invoke(hj212, ["encode"], input=json.dumps(doc))
    assert no_key.exit_code == 1 and "SM4 key" in json.loads(no_key.stdout)["detail"]
    bad = runner.invoke(hj212, ["decode", "--sm4-key", "1234"], input=b"")
    assert bad.exit_code == 2 and "32 hex" in bad.output


def test_the_framer_hands_over_the_bytes_it_drops():
    good = codec.build(
        codec.Packet(
            qn="20261123173000000",
            st="32",
            cn="2011",
            mn="33080200000001",
            pw="123456",
            flag=5,
            cp={"DataTime": "20261123173000", "w01018": {"Rtd": 42.5, "Flag": "N"}},
        )
    ).encode()
    framer = codec.Framer()
    out = framer.feed(b"noise!" + good + b"##00x9garbage\r\n" + good)
    errors = [x for x in out if isinstance(x, codec.Hj212Error)]
    frames = [x for x in out if isinstance(x, bytes)]
    assert frames == [good, good]
    assert [e.raw for e in errors] == [b"noise!", b"##00x9garbage\r\n"]


# -- what the TCP server relies on --------------------------------------------------------------


def test_a_new_password_fills_the_pw_field_with_letters_and_digits() -> None:
    made = {codec.new_password() for _ in range(200)}
    assert len(made) == 200
    for pw in made:
        assert len(pw) == codec.PW_MAX_CHARS == 6
        assert set(pw) <= set(codec.PW_ALPHABET)
        assert parse(build(replace(data_packet("2011", WATER_2011), pw=pw))).pw == pw


def test_the_framer_says_whether_it_holds_an_unfinished_frame() -> None:
    framer = Framer()
    assert framer.feed(b"\r\n") == [] and not framer.partial  # whitespace starts nothing
    assert framer.feed(P1[:10]) == [] and framer.partial
    assert framer.pending().endswith(P1[:10])
    assert framer.feed(P1[10:]) == [P1] and not framer.partial
    assert framer.feed(b"##00x9garbage")  # a bad frame, whose rest is being skipped
    assert framer.partial and framer.pending() == b""
    assert framer.feed(b"\r\n") == [] and not framer.partial


def test_dropped_and_abandoned_split_messages_are_handed_over() -> None:
    joiner = Reassembler(max_messages=1, max_parts=4)
    first, second, _ = _parts()
    assert joiner.add(first) is None
    assert joiner.add(replace(second, qn="Q2")) is None  # pushes the first message out
    (gone,) = joiner.take_dropped()
    assert (gone.qn, gone.mn, gone.pnum, [p.pno for p in gone.parts]) == (first.qn, MN, 3, [1])
    assert "pushed out by 1 newer ones with 1 of 3 parts (PNO 1)" in gone.detail
    assert json.loads(gone.payload) == packet_to_json(first)
    assert joiner.take_dropped() == [] and joiner.dropped == 1
    (left,) = joiner.abandon()
    assert (left.qn, left.why, joiner.pending) == ("Q2", "the connection closed", 0)


def test_parts_that_disagree_are_handed_over_too() -> None:
    joiner = Reassembler()
    first, second, third = _parts()
    joiner.add(first)
    joiner.add(second)
    with pytest.raises(BadField, match="PNUM"):
        joiner.add(replace(third, pnum=4))
    (gone,) = joiner.take_dropped()
    assert [p.pno for p in gone.parts] == [1, 2] and "PNUM=4" in gone.detail
    joiner.add(first)
    joiner.add(replace(second, cp={"DataTime": "20261123150000"}))
    with pytest.raises(BadField, match="disagree on CP DataTime"):
        joiner.add(third)
    (gone,) = joiner.take_dropped()  # the others; the caller reports the part that raised
    assert [p.pno for p in gone.parts] == [1, 2]


# -- the three versions: HJ/T 212-2005, HJ 212-2017, HJ 212-2025 --------------------------------

# HJ 212-2025 Appendix A.1's example: version 2 in Flag (9: answer wanted), an empty CP.
APPENDIX_A1_2025 = (
    b"##0087QN=20240601085857223;ST=32;CN=1011;PW=123456;MN=010000A8900016F000169DC0;Flag=9;"
    b"CP=&&&&2200\r\n"
)


def test_the_2025_appendix_a1_packet_parses_and_builds_back() -> None:
    packet = parse(APPENDIX_A1_2025)
    assert (packet.version, packet.flag, packet.cn, packet.cp) == (Version.V2025, 9, "1011", {})
    assert packet.wants_answer and not packet.resent
    assert build(packet).encode() == APPENDIX_A1_2025
    assert packet_to_json(packet)["version"] == "2025"


def test_a_2005_upload_without_qn_or_flag_is_a_packet_not_an_error() -> None:
    data = (
        "ST=32;CN=2011;PW=123456;MN=88888880000001;CP=&&DataTime=20040516021000123;011-Rtd=52.3&&"
    )
    packet = parse(frame(data))
    assert (packet.version, packet.qn, packet.flag) == (Version.V2005, None, None)
    assert not packet.wants_answer
    assert build(packet).encode() == frame(data)
    mn, reading = to_device_reading(packet)
    assert mn == "88888880000001"
    assert reading.values == {"w01018": Measurement(value=52.3)}
    # A 17-digit DataTime: milliseconds after the seconds.
    assert reading.ts == datetime(2004, 5, 16, 2, 10, 0, 123000, tzinfo=SHANGHAI)
    doc = packet_to_json(packet)
    assert "QN" not in doc and doc["version"] == "2005"
    assert json_to_packet(doc) == packet


def test_only_a_2005_packet_may_leave_out_qn() -> None:
    data = f"ST=32;CN=2011;PW=123456;MN={MN};Flag=5;CP=&&DataTime=20261123173000&&"
    with pytest.raises(BadField, match="missing required field QN") as caught:
        parse(frame(data))
    assert caught.value.key == "QN"


@pytest.mark.parametrize(
    ("flag", "version", "answer_flag"), [(1, "2005", 0), (5, "2017", 4), (9, "2025", 8)]
)
def test_each_version_is_answered_in_its_own(flag: int, version: str, answer_flag: int) -> None:
    packet = data_packet("2011", {"DataTime": "20261123173000"}, flag=flag)
    assert packet.version == Version(version)
    assert data_answer(packet).flag == answer_flag
    assert request_answer(packet).flag == answer_flag
    assert data_answer(packet).version == packet.version


def test_an_unknown_protocol_version_is_a_flag_error() -> None:
    with pytest.raises(BadField, match="protocol version 3 is unknown") as caught:
        parse(frame(header(flag="13") + ";CP=&&DataTime=20261123173000&&"))
    assert qn_rtn_for(caught.value) is QnRtn.FLAG_ERROR


def test_a_2025_resend_carries_rf_after_the_flag() -> None:
    data = (
        "QN=20261123173000123;ST=32;CN=2011;PW=123456;MN=33080200000001;Flag=9;RF=1;"
        "CP=&&DataTime=20261123170000;w01018-Rtd=231.5,w01018-Flag=N&&"
    )
    packet = parse(frame(data))
    assert packet.resent and packet.rf == 1 and packet.version is Version.V2025
    assert build(packet).encode() == frame(data)
    assert packet_to_json(packet)["RF"] == 1
    with pytest.raises(BadField, match="RF=2"):
        parse(frame(data.replace("RF=1", "RF=2")))


def test_instrument_groups_repeat_their_names_and_decode_into_a_list() -> None:
    # CN 3020: one PolId group per instrument, the same names in each.
    cp = (
        "DataTime=20261123173000;PolId=w01018,i12001-Info=1,i12003-Info=0;"
        "PolId=w21003,i12001-Info=0,i12003-Info=2"
    )
    data = f"{header(cn='3020', flag='5')};CP=&&{cp}&&"
    packet = parse(frame(data))
    assert packet.cp == {"DataTime": "20261123173000"}
    assert packet.groups == (
        {"PolId": "w01018", "i12001": {"Info": "1"}, "i12003": {"Info": "0"}},
        {"PolId": "w21003", "i12001": {"Info": "0"}, "i12003": {"Info": "2"}},
    )
    assert build(packet).encode() == frame(data)
    doc = packet_to_json(packet)
    assert [g["PolId"] for g in doc["CPGroups"]] == ["w01018", "w21003"]
    assert json_to_packet(json.loads(json.dumps(doc))) == packet


def test_json_whose_version_contradicts_its_flag_is_refused() -> None:
    doc = packet_to_json(data_packet("2011", {"DataTime": "20261123173000"}, flag=5))
    doc["version"] = "2025"
    with pytest.raises(BadField, match="does not match Flag=5"):
        json_to_packet(doc)


def test_a_packet_too_long_for_the_wire_is_split_into_parts_that_merge_back() -> None:
    # 2025: CP at most 950 characters, the data segment at most 1024 bytes; longer is split.
    cp: dict = {"DataTime": "20261123173000"}
    cp |= {f"w{n:05d}": {"Rtd": 100 + n / 4, "Flag": "N"} for n in range(1, 61)}
    packet = data_packet("2011", cp, flag=9)
    with pytest.raises(TooLong):
        build(packet)
    for key in (None, KEY_A2):
        whole = packet if key is None else replace(packet, encrypted=True)
        wire = codec.build_parts(whole, key)
        parts = [parse(raw, key) for raw in wire]
        assert len(parts) > 1 and [p.pno for p in parts] == list(range(1, len(parts) + 1))
        assert all(p.pnum == len(parts) and is_split(p.flag) for p in parts)
        assert all(len(raw) - 12 <= codec.MAX_DATA_BYTES for raw in wire)
        assert all(p.cp["DataTime"] == "20261123173000" for p in parts)
        reassembler = Reassembler()
        merged = [m for p in reversed(parts) if (m := reassembler.add(p)) is not None]
        assert merged == [whole]  # bit D cleared, no PNUM/PNO: the packet as it was


def test_a_packet_that_fits_is_one_part() -> None:
    packet = data_packet("2011", WATER_2011, flag=9)
    assert codec.build_parts(packet) == [build(packet).encode()]


# -- flue gas (CEMS): corrected values, 2005 codes, instruments ---------------------------------

# A CEMS's real-time upload (HJ 212-2017 Table B.2 codes): dust, SO2 and NOx each with the value
# corrected to the reference oxygen (ZsRtd) beside the measured one; O2 has none.
CEMS_2011 = (
    f"{header('2011', st='31', flag='5')};CP=&&DataTime=20261123173000;"
    "a34013-Rtd=8.1,a34013-ZsRtd=11.2,a34013-Flag=N;a21026-Rtd=30.0,a21026-ZsRtd=37.5,"
    "a21026-Flag=N;a21002-Rtd=42.0,a21002-ZsRtd=52.5,a21002-Flag=N;a19001-Rtd=9.0,a19001-Flag=N&&"
)
# Its minute values: the reading takes Avg and ZsAvg; the rest stays in the packet.
CEMS_2051 = (
    f"{header('2051', st='31', flag='5')};CP=&&DataTime=20261123172000;"
    "a21026-Min=28.0,a21026-Avg=30.0,a21026-Max=33.0,a21026-ZsMin=35.0,a21026-ZsAvg=37.5,"
    "a21026-ZsMax=41.25,a21026-Cou=0.12,a21026-ZsCou=0.15,a21026-Flag=N;"
    "a19001-Min=8.5,a19001-Avg=9.0,a19001-Max=9.5,a19001-Flag=N&&"
)


def test_a_cems_realtime_upload_gives_each_pollutants_corrected_value_beside_it() -> None:
    packet = parse(frame(CEMS_2011))
    assert build(packet).encode() == frame(CEMS_2011)
    _, reading = to_device_reading(packet)
    assert reading.values == {
        "a34013": Measurement(value=8.1, zs=11.2),
        "a21026": Measurement(value=30.0, zs=37.5),
        "a21002": Measurement(value=42.0, zs=52.5),
        "a19001": Measurement(value=9.0),
    }


def test_a_cems_period_upload_takes_avg_and_zsavg_and_keeps_the_rest_in_the_packet() -> None:
    packet = parse(frame(CEMS_2051))
    assert build(packet).encode() == frame(CEMS_2051)
    assert packet.cp["a21026"] == {
        "Min": 28.0,
        "Avg": 30.0,
        "Max": 33.0,
        "ZsMin": 35.0,
        "ZsAvg": 37.5,
        "ZsMax": 41.25,
        "Cou": 0.12,
        "ZsCou": 0.15,  # a number, as every Zs suffix
        "Flag": "N",
    }
    for cn in ("2051", "2061", "2031"):
        _, reading = to_device_reading(replace(packet, cn=cn))
        assert reading.values == {
            "a21026": Measurement(value=30.0, zs=37.5),
            "a19001": Measurement(value=9.0),
        }


def test_a_corrected_value_without_its_measured_one_is_no_reading_value() -> None:
    cp = {
        "DataTime": "20261123173000",
        "a21026": {"ZsRtd": 37.5, "Flag": "N"},  # no Rtd
        "a34013": {"Rtd": 8.1, "ZsAvg": 11.2},  # ZsAvg is a period value's, not 2011's
    }
    _, reading = to_device_reading(data_packet("2011", cp, st="31"))
    assert reading.values == {"a34013": Measurement(value=8.1)}
    with pytest.raises(BadField, match="no -Rtd values"):
        to_device_reading(data_packet("2011", {**cp, "a34013": {"ZsRtd": 1.0}}, st="31"))
    with pytest.raises(BadField, match="ZsRtd"):
        parse(frame(CEMS_2011.replace("a34013-ZsRtd=11.2", "a34013-ZsRtd=high")))


def test_a_2005_flue_gas_upload_maps_its_codes_by_table_b2() -> None:
    # HJ/T 212-2005: no QN, no Flag; 01 smoke dust, 02 SO2, 03 NOx, S01 O2, and the flue gas's
    # own state: B02 flow, S02 velocity, S03 temperature, S05 moisture, S08 pressure.
    data = (
        f"ST=31;CN=2011;PW=123456;MN={MN};CP=&&DataTime=20261123173000;"
        "01-Rtd=8.1,01-ZsRtd=11.2,01-Flag=N;02-Rtd=30.0,02-ZsRtd=37.5;03-Rtd=42.0,03-Flag=D;"
        "S01-Rtd=9.0;B02-Rtd=85.2;S02-Rtd=12.4;S03-Rtd=48.5;S05-Rtd=7.8;S08-Rtd=-0.35&&"
    )
    packet = parse(frame(data))
    assert packet.version is Version.V2005 and build(packet).encode() == frame(data)
    _, reading = to_device_reading(packet)
    assert reading.values == {
        "a34013": Measurement(value=8.1, zs=11.2),
        "a21026": Measurement(value=30.0, zs=37.5),
        "a21002": Measurement(value=42.0, flag=DataFlag.FAULT),
        "a19001": Measurement(value=9.0),
        "a00000": Measurement(value=85.2),
        "a01011": Measurement(value=12.4),
        "a01012": Measurement(value=48.5),
        "a01014": Measurement(value=7.8),
        "a01013": Measurement(value=-0.35),
    }


def test_three_digit_flue_gas_codes_are_gas_only_from_a_flue_gas_packet() -> None:
    # 001/002/003 are water's pH, colour and suspended solids in table B.1; some flue-gas
    # devices write 01/02/03 so. The packet's ST decides: 31 is a flue-gas source.
    assert codec.LEGACY_FLUE_GAS_CODES == {"001": "a34013", "002": "a21026", "003": "a21002"}
    assert all(LEGACY_CODES[k].startswith("w") for k in codec.LEGACY_FLUE_GAS_CODES)
    cp = {"DataTime": "20261123173000", "001": {"Rtd": 7.2}, "002": {"Rtd": 30}, "003": {"Rtd": 9}}
    _, gas = to_device_reading(data_packet("2011", cp, st="31"))
    assert gas.values == {
        "a34013": Measurement(value=7.2),
        "a21026": Measurement(value=30.0),
        "a21002": Measurement(value=9.0),
    }
    _, water = to_device_reading(data_packet("2011", cp, st="32"))
    assert set(water.values) == {"w01001", "w01002", "w01012"}
    with pytest.raises(BadField, match="a34013 is sent twice"):
        to_device_reading(data_packet("2011", {**cp, "01": {"Rtd": 7.0}}, st="31"))


def test_each_instrument_group_holds_the_items_after_its_polid() -> None:
    # CN 3020, the standard's layout: ; between every item, the same names for each instrument.
    sent = (
        f"{header(cn='3020', flag='5')};CP=&&DataTime=20261123173000;"
        "PolId=w01018;i12001-Info=1;PolId=w01019;i12001-Info=2&&"
    )
    packet = parse(frame(sent))
    assert packet.cp == {"DataTime": "20261123173000"}
    assert packet.groups == (
        {"PolId": "w01018", "i12001": {"Info": "1"}},
        {"PolId": "w01019", "i12001": {"Info": "2"}},
    )
    # Written back with , inside each group: read back the same, and then byte for byte.
    built = build(packet)
    assert "PolId=w01018,i12001-Info=1;PolId=w01019,i12001-Info=2&&" in built
    assert parse(built) == packet and build(parse(built)) == built
    doc = packet_to_json(packet)
    assert doc["CPGroups"] == [
        {"PolId": "w01018", "i12001": {"Info": "1"}},
        {"PolId": "w01019", "i12001": {"Info": "2"}},
    ]
    assert json_to_packet(json.loads(json.dumps(doc))) == packet
    # Within one instrument a name still appears once.
    with pytest.raises(BadField, match="CP i12001-Info appears twice"):
        parse(frame(sent.replace("PolId=w01019;", "")))


def test_a_split_3020_keeps_each_instrument_whole() -> None:
    groups = tuple({"PolId": f"w{n:05d}", "i12001": {"Info": str(n % 11)}} for n in range(60))
    packet = Packet(
        qn="20261123173000123",
        st="32",
        cn="3020",
        mn=MN,
        pw="123456",
        flag=9,
        cp={"DataTime": "20261123173000"},
        groups=groups,
    )
    wire = codec.build_parts(packet)
    assert len(wire) > 1
    parts = [parse(raw) for raw in wire]
    assert all(g in groups for p in parts for g in p.groups)
    assert codec.merge_parts(parts) == packet


def test_a_stream_without_any_double_hash_is_a_bad_header_not_a_truncated_frame() -> None:
    framer = Framer()
    (error,) = framer.feed(b"AT+CSQ\r\nOK\r\n")  # a modem's chatter: reported at its line end
    assert isinstance(error, BadHeader) and error.kind == "bad_header"
    assert error.raw == b"AT+CSQ\r\nOK\r\n" and not framer.partial
    assert framer.feed(b"no line break yet") == [] and framer.partial
    ended = framer.finish()
    assert isinstance(ended, BadHeader) and ended.raw == b"no line break yet"
    assert framer.pending() == b"" and framer.finish() is None
    # A packet begun and not finished is still truncated; whitespace or a bad frame's rest,
    # nothing.
    assert framer.feed(P1[:30]) == []
    cut = framer.finish("the peer closed the connection before its end")
    assert isinstance(cut, Truncated) and cut.raw == P1[:30]
    assert str(cut) == "a frame the peer closed the connection before its end (30 bytes arrived)"
    assert framer.feed(b" \r\n ") == [] and framer.finish() is None
    assert framer.feed(b"##00x9garbage") and framer.finish() is None
    # Garbage then a packet: one bad header, then the packet, as before.
    out = framer.feed(b"junk\n" + P1)
    assert [x.kind if isinstance(x, Hj212Error) else x for x in out] == ["bad_header", P1]
