"""HJ 212-2017 codec: packets ⇄ :class:`Packet` ⇄ JSON and :class:`DeviceReading`. Pure, no I/O.

Wire format (HJ 212-2017, section 6 and Appendix A)::

    ## + 4-digit data length + data segment + 4 hex CRC + \\r\\n
    data segment: QN=..;ST=..;CN=..;PW=..;MN=..;Flag=..;[PNUM=..;PNO=..;]CP=&&...&&

Choices this module makes where the standard leaves room:

- Length and the 1024 limit count bytes of the UTF-8 data segment; CP content is at most 950.
- CP values: pollutant suffixes Rtd, Min, Avg, Max, Cou, ZsRtd, ZsAvg, ZsMin, ZsMax are
  numbers; integral text (``30``) becomes ``int``, other decimal text (``42.50``) ``float``, so
  ``build`` writes ``30`` and ``42.5`` back. Flag, SampleTime and any other suffix stay text.
  Non-pollutant CP fields (RtdInterval, QnRtn, ExeRtn, ...) are numbers when they look like one,
  except DataTime and every ``...Time`` field, which stay text exactly as sent.
- PW and Flag may be absent (2005-era devices); they are then ``None`` and not written back.
- ``parse`` merges items by pollutant code whatever the ``;``/``,`` grouping; ``build`` writes
  one ``;``-group per plain field and per pollutant, in the CP dict's order. So
  ``build(parse(x)) == x`` for every packet ``build`` made, and ``parse(build(p)) == p``.
- Readings: CN 2011 carries real-time values (``-Rtd``); 2051/2061/2031 carry period values,
  of which the reading takes ``-Avg`` (``-Min``/``-Max``/``-Cou`` stay in the packet).
"""

from __future__ import annotations

import json
import re
import secrets
import string
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, tzinfo
from decimal import Decimal
from enum import IntEnum, StrEnum
from math import isfinite
from typing import Any, ClassVar, TypeAlias
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from ecowatch.ingest.hj212 import sm4
from ecowatch.schema import DataFlag, DeviceReading, Measurement

MAX_DATA_BYTES = 1024
MAX_CP_CHARS = 950
HEADER_KEYS = ("QN", "ST", "CN", "PW", "MN", "Flag", "PNUM", "PNO", "RF", "CP")
# QN too, except from an HJ/T 212-2005 device: its data uploads often carry no QN and no Flag.
REQUIRED_KEYS = ("ST", "CN", "MN", "CP")

# PW, the access password: "C6" in HJ/T 212-2005 and HJ 212-2017 (the 2017 table's 9 counts
# "PW=" too), so a device's firmware holds six characters. Letters and digits: 62**6, about
# 36 bits, which is all the field allows.
PW_MAX_CHARS = 6
PW_ALPHABET = string.ascii_letters + string.digits

FLAG_ANSWER = 0b01  # bit A: the sender wants an answer
FLAG_SPLIT = 0b10  # bit D: one part of a split message; PNUM/PNO present
# Bits 7..2 of Flag: the protocol version (none in HJ/T 212-2005).
FLAG_VERSION_SHIFT = 2

NUMERIC_SUFFIXES = frozenset(
    {"Rtd", "Min", "Avg", "Max", "Cou", "ZsRtd", "ZsAvg", "ZsMin", "ZsMax"}
)
# Which suffix a data upload's reading is taken from, by CN.
VALUE_SUFFIX_BY_CN = {"2011": "Rtd", "2051": "Avg", "2061": "Avg", "2031": "Avg"}
# HJ/T 212-2005 pollutant codes that fielded devices still send → their 2017 codes (HJ 212-2017
# tables B.1 water and B.2 air, column 原编码).
LEGACY_CODES = {
    # water
    "B01": "w00000",  # wastewater flow
    "001": "w01001",  # pH
    "002": "w01002",  # colour
    "003": "w01012",  # suspended solids
    "010": "w01017",  # BOD5
    "011": "w01018",  # COD
    "015": "w01020",  # TOC
    "020": "w20111",  # total mercury
    "022": "w20115",  # total cadmium
    "023": "w20116",  # total chromium
    "024": "w20117",  # hexavalent chromium
    "026": "w20119",  # total arsenic
    "027": "w20120",  # total lead
    "060": "w21003",  # NH3-N
    "065": "w21001",  # total nitrogen
    "070": "w21016",  # cyanide
    "080": "w22001",  # petroleum
    "101": "w21011",  # total phosphorus
    "110": "w23002",  # volatile phenol
    # air (flue gas)
    "B02": "a00000",  # flue-gas flow
    "S01": "a19001",  # O2
    "S02": "a01011",  # velocity
    "S03": "a01012",  # temperature
    "S04": "a01017",  # dynamic pressure
    "S05": "a01014",  # moisture
    "S06": "a01015",  # atmospheric pressure
    "S07": "a01016",  # flue cross-section
    "S08": "a01013",  # static pressure
    "01": "a34013",  # smoke dust
    "02": "a21026",  # SO2
    "03": "a21002",  # NOx
    "04": "a21005",  # CO
}
DEFAULT_TZ = "Asia/Shanghai"

ST_SYSTEM = "91"  # system interaction: every answer
CN_REQUEST_ANSWER = "9011"
CN_DATA_ANSWER = "9014"
CN_HEARTBEAT = "9015"  # HJ 212-2025: the device is there; not a reading
# The commands (CN) of HJ 212-2017 and HJ 212-2025 (its table 12 adds 1001, 1002, 1014, 2013,
# 2062, 2111, 3022, 3024 and the 9015 heartbeat). Another CN is answered 9011 QnRtn 8.
KNOWN_CNS = frozenset(
    {
        *("1000", "1001", "1002", "1011", "1012", "1013", "1014", "1061", "1062", "1063"),
        *("1064", "1072", "2011", "2012", "2013", "2021", "2022", "2031", "2041", "2051"),
        *("2061", "2062", "2081", "2111", "3011", "3012", "3013", "3014", "3015", "3016"),
        *("3017", "3018", "3019", "3020", "3021", "3022", "3024"),
        *("9011", "9012", "9013", "9014", "9015"),
    }
)
# A CP ;-group that starts with PolId= is one instrument's (CN 3020 and the like): the same
# names repeat in each, so these groups are kept apart, in order, as Packet.groups.
GROUP_LEAD = "PolId="

CpScalar: TypeAlias = str | int | float
Pollutant: TypeAlias = dict[str, CpScalar]
Cp: TypeAlias = dict[str, CpScalar | Pollutant]

_INT = re.compile(r"[+-]?[0-9]+")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_HEX4 = re.compile(rb"[0-9A-Fa-f]{4}")
_CODE_2017 = re.compile(r"[a-z][0-9]{5}")
_DATA_TIME = re.compile(r"[0-9]{14}(?:[0-9]{3})?")
_NAME_FORBIDDEN = re.compile(r"[;,=&\-\r\n]")
_VALUE_FORBIDDEN = re.compile(r"[;,\r\n]|&&")
_HEADER_FORBIDDEN = re.compile(r"[;=\r\n]|&&")


# -- errors ----------------------------------------------------------------------------------


class Hj212Error(ValueError):
    """A malformed packet. ``kind`` is stable (for logs, dead letters and the CLI's JSON)."""

    kind: ClassVar[str] = "hj212"

    def __init__(self, detail: str, *, key: str | None = None, raw: bytes = b"") -> None:
        super().__init__(detail)
        self.detail = detail
        self.key = key  # the data-segment field at fault, when known (chooses the QnRtn)
        # The bytes the Framer dropped for this error, kept for the dead-letter topic.
        self.raw = raw


class BadHeader(Hj212Error):
    kind = "bad_header"


class LengthMismatch(Hj212Error):
    kind = "length_mismatch"


class CrcMismatch(Hj212Error):
    kind = "crc_mismatch"


class Truncated(Hj212Error):
    kind = "truncated"


class TooLong(Hj212Error):
    kind = "too_long"


class BadField(Hj212Error):
    kind = "bad_field"


# -- CRC -------------------------------------------------------------------------------------


def _crc_rounds(register: int) -> int:
    for _ in range(8):
        lsb = register & 1
        register >>= 1
        if lsb:
            register ^= 0xA001
    return register


# After ``(crc >> 8) ^ byte`` the register is below 256, so its eight rounds are a table look-up:
# the bit-by-bit loop was most of the cost of reading a packet (70 of 116 µs).
_CRC_TABLE = tuple(_crc_rounds(i) for i in range(256))


def crc16(data: bytes) -> int:
    """Appendix A's "ANSI CRC16". Not CRC-16/MODBUS: the byte is XORed into the shifted-down
    register (``crc >> 8``), not into its low byte."""
    crc = 0xFFFF
    table = _CRC_TABLE
    for byte in data:
        crc = table[(crc >> 8) ^ byte]
    return crc


def crc_hex(data: bytes) -> str:
    return f"{crc16(data):04X}"


# -- flags -----------------------------------------------------------------------------------


class Version(StrEnum):
    """The protocol a packet speaks, from Flag's bits 7..2; a device is answered in its own."""

    V2005 = "2005"  # HJ/T 212-2005: no version bits (or no Flag at all)
    V2017 = "2017"  # HJ 212-2017: version 1
    V2025 = "2025"  # HJ 212-2025: version 2


_VERSIONS = (Version.V2005, Version.V2017, Version.V2025)  # by Flag's version bits


def version_of(flag: int | None) -> Version:
    if flag is None:
        return Version.V2005
    bits = flag >> FLAG_VERSION_SHIFT
    if bits >= len(_VERSIONS):
        raise BadField(
            f"Flag={flag}: protocol version {bits} is unknown: expected 0 (HJ/T 212-2005), "
            "1 (HJ 212-2017) or 2 (HJ 212-2025) in bits 7..2",
            key="Flag",
        )
    return _VERSIONS[bits]


def reply_flag(version: Version) -> int:
    """An answer's Flag: the request's version, no answer wanted, not split."""
    return _VERSIONS.index(version) << FLAG_VERSION_SHIFT


def wants_answer(flag: int | None) -> bool:
    return flag is not None and bool(flag & FLAG_ANSWER)


def is_split(flag: int | None) -> bool:
    return flag is not None and bool(flag & FLAG_SPLIT)


def new_password() -> str:
    """A random PW as long as the field allows, for a device's HJ 212 settings."""
    return "".join(secrets.choice(PW_ALPHABET) for _ in range(PW_MAX_CHARS))


# -- the packet model ------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Packet:
    """One data segment. ``cp`` maps plain fields (DataTime, RtdInterval, QnRtn, ...) to their
    value and pollutant codes to ``{suffix: value}``. Construction validates everything that
    ``build`` needs, so a Packet can always be written (unless it is too long)."""

    qn: str | None  # None only from an HJ/T 212-2005 device
    st: str
    cn: str
    mn: str
    cp: Cp = field(default_factory=dict)
    pw: str | None = None
    flag: int | None = None
    pnum: int | None = None
    pno: int | None = None
    rf: int | None = None  # RF=1: a resend (补传) of data the device could not send at the time
    groups: tuple[Cp, ...] = ()  # the CP's instrument groups (PolId=...), in order
    # Not a field of the data segment: the CP arrived (or is to go) SM4-encrypted (HJ 212-2025
    # §6.4), so it is read with, and written with, the device's key.
    encrypted: bool = False

    def __post_init__(self) -> None:
        for key, value in (("ST", self.st), ("CN", self.cn), ("MN", self.mn)):
            _check_header_text(key, value, required=True)
        _check_int("Flag", self.flag, 0, 255)
        version = version_of(self.flag)  # an unknown version is refused here
        if self.qn is not None:
            _check_header_text("QN", self.qn, required=True)
        elif version is not Version.V2005:
            raise BadField("missing required field QN: expected QN=...", key="QN")
        if self.pw is not None:
            _check_header_text("PW", self.pw, required=False)
        for key, value in (("ST", self.st), ("CN", self.cn)):
            if not value.isascii() or not value.isdigit():
                raise BadField(f"{key}={value!r}: expected a decimal code", key=key)
        _check_int("PNUM", self.pnum, 1, 9999)
        _check_int("PNO", self.pno, 1, 9999)
        if (self.pnum is None) != (self.pno is None):
            raise BadField("expected PNUM and PNO together", key="PNUM")
        if self.pnum is not None and self.pno is not None and self.pno > self.pnum:
            raise BadField(f"PNO={self.pno}: expected 1..PNUM={self.pnum}", key="PNO")
        if is_split(self.flag) and self.pnum is None:
            raise BadField(
                f"Flag={self.flag} marks a split packet: expected PNUM and PNO", key="Flag"
            )
        _check_int("RF", self.rf, 0, 1)
        # A private copy: the dataclass is frozen, its CP should not change behind its back.
        object.__setattr__(self, "cp", _checked_cp(self.cp))
        if not isinstance(self.groups, tuple | list):
            raise BadField("CP groups: expected a list of groups", key="CP")
        groups = tuple(_checked_cp(g) for g in self.groups)
        if any(not str(next(iter(g), "")).startswith(GROUP_LEAD[:-1]) for g in groups):
            raise BadField(f"CP groups: each must start with {GROUP_LEAD}...", key="CP")
        object.__setattr__(self, "groups", groups)

    @property
    def version(self) -> Version:
        return version_of(self.flag)

    @property
    def resent(self) -> bool:
        return self.rf == 1

    @property
    def data_time(self) -> str | None:
        value = self.cp.get("DataTime")
        return value if isinstance(value, str) else None

    @property
    def pollutants(self) -> dict[str, Pollutant]:
        return {k: v for k, v in self.cp.items() if isinstance(v, dict)}

    @property
    def fields(self) -> dict[str, CpScalar]:
        """The CP fields that are not pollutants (DataTime, RtdInterval, QnRtn, ...)."""
        return {k: v for k, v in self.cp.items() if not isinstance(v, dict)}

    @property
    def wants_answer(self) -> bool:
        return wants_answer(self.flag)


def _check_header_text(key: str, value: object, *, required: bool) -> None:
    if not isinstance(value, str):
        raise BadField(f"{key}: expected text, got {type(value).__name__}", key=key)
    if required and not value:
        raise BadField(f"{key} is empty: expected a value", key=key)
    if _HEADER_FORBIDDEN.search(value):
        raise BadField(f"{key}={value!r}: expected no ';', '=', '&&' or line break", key=key)


def _check_int(key: str, value: object, low: int, high: int) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadField(f"{key}={value!r}: expected an integer {low}..{high}", key=key)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and isfinite(value)


def _is_text_field(name: str) -> bool:
    return name.endswith("Time")  # DataTime, SystemTime, BeginTime, ...: timestamps as sent


def _check_name(what: str, name: object) -> str:
    if not isinstance(name, str) or not name or _NAME_FORBIDDEN.search(name):
        raise BadField(
            f"CP {what} {name!r}: expected a non-empty name without ; , = & - or line break",
            key="CP",
        )
    return name


def _check_scalar(where: str, value: object, expect: str) -> CpScalar:
    """``expect``: "number", "text" or "either" (a plain field, number when it looks like one)."""
    is_number, is_text = _is_number(value), isinstance(value, str)
    if (expect == "number" and not is_number) or (expect == "text" and not is_text):
        wanted = "a finite number" if expect == "number" else "text"
        raise BadField(f"CP {where}={value!r}: expected {wanted}", key="CP")
    if not (is_number or is_text):
        raise BadField(f"CP {where}={value!r}: expected text or a finite number", key="CP")
    if isinstance(value, str) and _VALUE_FORBIDDEN.search(value):
        raise BadField(f"CP {where}={value!r}: expected no ; , && or line break", key="CP")
    return value  # type: ignore[return-value]


def _checked_cp(cp: object) -> Cp:
    if not isinstance(cp, Mapping):
        raise BadField(f"CP: expected a mapping, got {type(cp).__name__}", key="CP")
    out: Cp = {}
    for name, value in cp.items():
        if isinstance(value, Mapping):
            code = _check_name("pollutant code", name)
            if not value:
                raise BadField(f"CP pollutant {code}: expected at least one suffix", key="CP")
            items: Pollutant = {}
            for suffix, item in value.items():
                suffix = _check_name(f"suffix of {code}", suffix)
                expect = "number" if suffix in NUMERIC_SUFFIXES else "text"
                items[suffix] = _check_scalar(f"{code}-{suffix}", item, expect)
            out[code] = items
        else:
            name = _check_name("field", name)
            expect = "text" if _is_text_field(name) else "either"
            out[name] = _check_scalar(name, value, expect)
    return out


# -- SM4 (HJ 212-2025 §6.4, Appendix A.2) ------------------------------------------------------

# The CNs whose CP a 2025 device on the Internet encrypts.
ENCRYPTED_CNS = frozenset({*(str(cn) for cn in range(2000, 3000)), "1014", "3020"})
_CP_OPEN = b"CP=&&"


def _cp_span(data: bytes) -> tuple[int, int] | None:
    """Where the CP content lies in a data segment's bytes: after the first ``CP=&&`` (the
    header before it is plain text) and before the closing ``&&`` the segment ends with.
    Ciphertext may hold ``&&`` or ``\\r\\n``, so nothing is searched for inside it."""
    start = data.find(_CP_OPEN)
    if start < 0 or len(data) < start + len(_CP_OPEN) + 2 or not data.endswith(b"&&"):
        return None
    return start + len(_CP_OPEN), len(data) - 2


_HEADER_FLAG = re.compile(r"(?:^|;)Flag=([0-9]+)(?:;|$)")
_HEADER_CN = re.compile(r"(?:^|;)CN=([0-9]+)(?:;|$)")


def _decrypted(data: bytes, key: bytes) -> bytes | None:
    """The plain data segment of an encrypted one, whichever form its ciphertext was sent in
    (raw bytes, or Appendix A.2's ``{0xNN,...}`` text); None when its plain header says it
    cannot be one (not HJ 212-2025, or a CN that is not encrypted). Without that, a packet
    damaged on the line would be "decrypted" too, and 1 in 65,536 of them would pass the CRC
    as garbage."""
    span = _cp_span(data)
    if span is None:
        return None
    header = data[: span[0]].decode("utf-8", "replace")
    flag, cn = _HEADER_FLAG.search(header), _HEADER_CN.search(header)
    if flag is None or cn is None or cn.group(1) not in ENCRYPTED_CNS:
        return None
    if int(flag.group(1)) >> FLAG_VERSION_SHIFT != _VERSIONS.index(Version.V2025):
        return None
    content = data[span[0] : span[1]]
    try:
        as_text = sm4.from_text_form(content.decode("ascii"))
    except UnicodeDecodeError:
        as_text = None
    plain = sm4.decrypt_cp(key, content if as_text is None else as_text)
    return data[: span[0]] + plain + data[span[1] :]


# -- parse -----------------------------------------------------------------------------------


def parse(packet: bytes | str, key: bytes | None = None) -> Packet:
    """A whole packet, ``##`` to ``\\r\\n``, checked in wire order: header, length, CRC, fields.

    With ``key`` (the device's SM4 key), a packet whose CRC fails as sent is decrypted and
    checked again: the standard's CRC is that of the plain text. Such a packet comes back
    ``encrypted``."""
    raw = packet.encode("utf-8") if isinstance(packet, str) else bytes(packet)
    if not raw.startswith(b"##"):
        raise BadHeader(f"expected the packet to start with ##, got {raw[:8]!r}")
    head = raw[2:6]
    if len(head) < 4 or not head.isdigit():
        raise BadHeader(f"expected 4 decimal digits of data length after ##, got {head!r}")
    declared = int(head)
    if declared > MAX_DATA_BYTES:
        raise TooLong(f"the header declares {declared} bytes of data, at most {MAX_DATA_BYTES}")
    if not raw.endswith(b"\r\n"):
        raise Truncated("expected the packet to end with \\r\\n")
    body = raw[6:-2]
    actual = len(body) - 4  # the last 4 bytes are the CRC
    if actual > MAX_DATA_BYTES:
        raise TooLong(f"the data segment has {actual} bytes, at most {MAX_DATA_BYTES}")
    if actual < declared:
        raise Truncated(
            f"expected {declared} bytes of data (as the header declares) and a 4-digit CRC, "
            f"only {len(body)} bytes arrived"
        )
    if actual > declared:
        raise LengthMismatch(
            f"expected {declared} bytes of data as the header declares, "
            f"the data segment has {actual}"
        )
    data, crc_text = body[:-4], body[-4:]
    if not _HEX4.fullmatch(crc_text):
        raise CrcMismatch(f"expected 4 hex digits of CRC before \\r\\n, got {crc_text!r}")
    crc, encrypted = int(crc_text, 16), False
    if crc != crc16(data):
        plain = _decrypted(data, key) if key is not None else None
        if plain is None or crc != crc16(plain):
            hint = (
                " (nor after decrypting its CP with the device's SM4 key)"
                if key is not None
                else ""
            )
            raise CrcMismatch(
                f"expected CRC {crc_hex(data)}, the packet says {crc_text.decode()}{hint}"
            )
        data, encrypted = plain, True
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if encrypted:  # the CRC matched garbage by chance: the key did not make plain text
            raise CrcMismatch(
                f"the CRC {crc_text.decode()} matched no plain text (decrypted: not UTF-8)"
            ) from exc
        raise BadField(f"expected a UTF-8 data segment: {exc}") from exc
    packet = parse_data_segment(text)
    return replace(packet, encrypted=True) if encrypted else packet


def parse_data_segment(text: str) -> Packet:
    """The data segment alone (what lies between the length and the CRC)."""
    if text.startswith("CP=&&"):
        cp_at = 0
    else:
        found = text.find(";CP=&&")
        if found < 0:
            raise BadField("expected CP=&&...&& as the last field of the data segment", key="CP")
        cp_at = found + 1
    rest = text[cp_at + len("CP=&&") :]
    if len(rest) < 2 or not rest.endswith("&&"):
        raise BadField("expected the CP field to end the data segment with &&", key="CP")
    fields: dict[str, str] = {}
    header = text[: cp_at - 1].split(";") if cp_at else []
    for item in header:
        name, sep, value = item.partition("=")
        if not sep:
            raise BadField(f"expected name=value in the data segment, got {item!r}")
        if name not in HEADER_KEYS or name == "CP":
            raise BadField(f"unknown field {name!r}: expected one of {', '.join(HEADER_KEYS)}")
        if name in fields:
            raise BadField(f"field {name} appears twice", key=name)
        fields[name] = value
    for key in REQUIRED_KEYS[:-1]:
        if key not in fields:
            raise BadField(f"missing required field {key}: expected {key}=...", key=key)
    cp, groups = parse_cp_groups(rest[:-2])
    return Packet(
        qn=fields.get("QN"),
        st=fields["ST"],
        cn=fields["CN"],
        pw=fields.get("PW"),
        mn=fields["MN"],
        flag=_header_int(fields, "Flag"),
        pnum=_header_int(fields, "PNUM"),
        pno=_header_int(fields, "PNO"),
        rf=_header_int(fields, "RF"),
        cp=cp,
        groups=tuple(groups),
    )


def _header_int(fields: Mapping[str, str], key: str) -> int | None:
    text = fields.get(key)
    if text is None:
        return None
    if not text.isascii() or not text.isdigit():
        raise BadField(f"{key}={text!r}: expected a non-negative integer", key=key)
    return int(text)


def parse_cp(body: str) -> Cp:
    """CP content (between the ``&&`` markers): ``;`` between groups, ``,`` between the items of
    one group, ``=`` between name and value; ``code-Suffix`` names are pollutant values. A CP
    with instrument groups (``PolId=...``) is :func:`parse_cp_groups`'s."""
    cp, groups = parse_cp_groups(body)
    if groups:
        raise BadField(f"CP has {len(groups)} instrument group(s) ({GROUP_LEAD}...)", key="CP")
    return cp


def parse_cp_groups(body: str) -> tuple[Cp, list[Cp]]:
    """CP content as its plain part and its instrument groups: each ``;``-group that starts
    with ``PolId=`` is one instrument's (CN 3020), whose names repeat from one to the next."""
    if len(body) > MAX_CP_CHARS:
        raise TooLong(f"the CP field has {len(body)} characters, at most {MAX_CP_CHARS}")
    cp: Cp = {}
    groups: list[Cp] = []
    for group in body.split(";"):
        if group.startswith(GROUP_LEAD):
            groups.append(_parse_items(group.split(","), {}))
        else:
            _parse_items(group.split(","), cp)
    return cp, groups


def _parse_items(items: Iterable[str], cp: Cp) -> Cp:
    """Each ``name=value`` item into ``cp`` (a group's, or the plain part)."""
    for item in items:
        if not item:
            continue  # devices often end CP with a stray ';'
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise BadField(f"expected name=value in CP, got {item!r}", key="CP")
        code, dash, suffix = name.partition("-")
        if dash:
            if not code or not suffix:
                raise BadField(f"expected code-Suffix in CP, got {name!r}", key="CP")
            entry = cp.setdefault(code, {})
            if not isinstance(entry, dict):
                raise BadField(f"CP {code} is both a field and a pollutant", key="CP")
            if suffix in entry:
                raise BadField(f"CP {name} appears twice", key="CP")
            entry[suffix] = _pollutant_value(name, suffix, value)
        else:
            if name in cp:
                raise BadField(f"CP {name} appears twice", key="CP")
            cp[name] = value if _is_text_field(name) else _number(value)
    return cp


def _pollutant_value(name: str, suffix: str, text: str) -> CpScalar:
    if suffix not in NUMERIC_SUFFIXES:
        return text
    value = _number(text)
    if isinstance(value, str):
        raise BadField(f"CP {name}={text!r}: expected a decimal number", key="CP")
    return value


def _number(text: str) -> CpScalar:
    """Integral text → int, other decimal text → float; anything else → the text itself."""
    if _INT.fullmatch(text):
        return int(text)
    if _NUMBER.fullmatch(text):
        value = float(text)
        if isfinite(value):
            return value
    return text


# -- build -----------------------------------------------------------------------------------


def format_number(value: int | float) -> str:
    """Positional notation (``0.00001``, never ``1e-05``); a float keeps its point, so that
    parsing it back gives a float again."""
    if isinstance(value, int):
        return str(value)
    text = format(Decimal(repr(value)), "f")
    return text if "." in text else text + ".0"


def _format_value(value: CpScalar) -> str:
    return value if isinstance(value, str) else format_number(value)


def format_cp(cp: Cp) -> str:
    groups = []
    for name, value in cp.items():
        if isinstance(value, dict):
            groups.append(
                ",".join(f"{name}-{suffix}={_format_value(v)}" for suffix, v in value.items())
            )
        else:
            groups.append(f"{name}={_format_value(value)}")
    return ";".join(groups)


def _format_group(group: Cp) -> str:
    """One instrument group: its items joined by ``,`` (one ``;``-group on the wire)."""
    return ",".join(format_cp(group).split(";"))


def data_segment(packet: Packet) -> str:
    parts = [] if packet.qn is None else [f"QN={packet.qn}"]
    parts += [f"ST={packet.st}", f"CN={packet.cn}"]
    if packet.pw is not None:
        parts.append(f"PW={packet.pw}")
    parts.append(f"MN={packet.mn}")
    if packet.flag is not None:
        parts.append(f"Flag={packet.flag}")
    if packet.pnum is not None:
        parts += [f"PNUM={packet.pnum}", f"PNO={packet.pno}"]
    if packet.rf is not None:
        parts.append(f"RF={packet.rf}")
    cp = ";".join(
        text for text in (format_cp(packet.cp), *map(_format_group, packet.groups)) if text
    )
    if len(cp) > MAX_CP_CHARS:
        raise TooLong(f"the CP field has {len(cp)} characters, at most {MAX_CP_CHARS}")
    parts.append(f"CP=&&{cp}&&")
    return ";".join(parts)


def build(packet: Packet) -> str:
    """The whole packet: ``##``, length, data segment, CRC and ``\\r\\n`` (plain text: an
    ``encrypted`` packet is :func:`build_bytes`'s, with its key)."""
    if packet.encrypted:
        raise BadField("an encrypted packet is bytes: build_bytes(packet, key)", key="CP")
    data = data_segment(packet).encode("utf-8")
    if len(data) > MAX_DATA_BYTES:
        raise TooLong(f"the data segment has {len(data)} bytes, at most {MAX_DATA_BYTES}")
    return f"##{len(data):04d}{data.decode('utf-8')}{crc_hex(data)}\r\n"


def build_bytes(packet: Packet, key: bytes | None = None) -> bytes:
    """The whole packet as bytes; an ``encrypted`` one with its CP encrypted with ``key``
    (CRC first, over the plain text; ECB without padding keeps the length)."""
    if not packet.encrypted:
        return build(packet).encode("utf-8")
    if key is None:
        raise BadField("an encrypted packet needs its device's SM4 key", key="CP")
    plain = data_segment(packet).encode("utf-8")
    if len(plain) > MAX_DATA_BYTES:
        raise TooLong(f"the data segment has {len(plain)} bytes, at most {MAX_DATA_BYTES}")
    span = _cp_span(plain)
    assert span is not None  # data_segment always writes CP=&&...&& last
    data = plain[: span[0]] + sm4.encrypt_cp(key, plain[span[0] : span[1]]) + plain[span[1] :]
    return b"##%04d" % len(data) + data + crc_hex(plain).encode() + b"\r\n"


def build_parts(packet: Packet, key: bytes | None = None) -> list[bytes]:
    """The packet as the wire must carry it: whole when its CP has at most
    :data:`MAX_CP_CHARS` characters and its data segment :data:`MAX_DATA_BYTES` bytes, else
    split (HJ 212-2025 §6.3): parts numbered PNUM/PNO with Flag's bit D, each with the plain
    fields (DataTime, ...) and as many whole pollutants and instrument groups as fit, in
    order, so that :func:`merge_parts` gives the packet back."""
    try:
        return [build_bytes(packet, key)]
    except TooLong:
        pass  # split below
    if packet.flag is None:
        raise TooLong("a packet without Flag cannot be split (no bit D): it is too long")
    fields = packet.fields
    items: list[tuple[str, Pollutant] | Cp] = [*packet.pollutants.items(), *packet.groups]
    parts: list[tuple[Cp, list[Cp]]] = []
    cp, groups = dict(fields), list[Cp]()
    for item in items:
        trial = _with(cp, groups, item)
        if _fits(packet, *trial):
            cp, groups = trial
            continue
        if cp == fields and not groups:
            raise TooLong("one pollutant or instrument group alone is longer than a packet")
        parts.append((cp, groups))
        cp, groups = _with(dict(fields), [], item)
        if not _fits(packet, cp, groups):
            raise TooLong("one pollutant or instrument group alone is longer than a packet")
    parts.append((cp, groups))
    flag = packet.flag | FLAG_SPLIT
    return [
        build_bytes(
            replace(packet, cp=cp, groups=tuple(groups), flag=flag, pnum=len(parts), pno=n),
            key,
        )
        for n, (cp, groups) in enumerate(parts, 1)
    ]


def _with(cp: Cp, groups: list[Cp], item: tuple[str, Pollutant] | Cp) -> tuple[Cp, list[Cp]]:
    if isinstance(item, tuple):  # a pollutant: (code, its suffixes)
        return {**cp, item[0]: item[1]}, groups
    return cp, [*groups, item]  # an instrument group


def _fits(packet: Packet, cp: Cp, groups: list[Cp]) -> bool:
    """Whether a part with this CP fits (PNUM/PNO counted at their widest, 4 digits)."""
    part = replace(packet, cp=cp, groups=tuple(groups), pnum=9999, pno=9999, encrypted=False)
    try:
        return len(data_segment(part).encode("utf-8")) <= MAX_DATA_BYTES
    except TooLong:
        return False


# -- replies ---------------------------------------------------------------------------------


class QnRtn(IntEnum):
    """Request answer codes (9011 ``QnRtn``)."""

    READY = 1
    REJECTED = 2
    PW_ERROR = 3
    MN_ERROR = 4
    ST_ERROR = 5
    FLAG_ERROR = 6
    QN_ERROR = 7
    CN_ERROR = 8
    CRC_ERROR = 9
    UNKNOWN = 100


_QN_RTN_BY_KEY = {
    "PW": QnRtn.PW_ERROR,
    "MN": QnRtn.MN_ERROR,
    "ST": QnRtn.ST_ERROR,
    "Flag": QnRtn.FLAG_ERROR,
    "QN": QnRtn.QN_ERROR,
    "CN": QnRtn.CN_ERROR,
}


def qn_rtn_for(error: Hj212Error) -> QnRtn:
    if isinstance(error, CrcMismatch):
        return QnRtn.CRC_ERROR
    return _QN_RTN_BY_KEY.get(error.key or "", QnRtn.UNKNOWN)


def data_answer(packet: Packet) -> Packet:
    """9014: the platform received the data packet ``packet`` (sent when it wants an answer),
    in the packet's own protocol version."""
    return Packet(
        qn=packet.qn,
        st=ST_SYSTEM,
        cn=CN_DATA_ANSWER,
        pw=packet.pw,
        mn=packet.mn,
        flag=reply_flag(packet.version),
    )


def request_answer(packet: Packet, rtn: QnRtn = QnRtn.READY) -> Packet:
    """9011: the answer to a request, ready (1) or why not, in the request's version."""
    return _request_answer(packet.qn, packet.mn, packet.pw, rtn, packet.version)


def _request_answer(
    qn: str | None, mn: str, pw: str | None, rtn: QnRtn, version: Version
) -> Packet:
    return Packet(
        qn=qn,
        st=ST_SYSTEM,
        cn=CN_REQUEST_ANSWER,
        pw=pw,
        mn=mn,
        flag=reply_flag(version),
        cp={"QnRtn": int(rtn)},
    )


def _salvaged(text: str, key: str) -> str | None:
    match = re.search(rf"(?:^|[;#0-9]){key}=([^;&\r\n]*)", text)
    return match.group(1) if match else None


def sender_of(frame: bytes) -> str | None:
    """The MN in a frame's plain header (before ``CP=&&``): whose SM4 key reads the rest."""
    cp = frame.find(_CP_OPEN)
    return _salvaged(frame[: cp if cp >= 0 else None].decode("utf-8", "replace"), "MN")


def reject_answer(raw: bytes | str, error: Hj212Error) -> Packet | None:
    """9011 for a packet that did not parse, addressed with the QN, MN and PW found in its text;
    ``None`` when they cannot be found (nobody to answer)."""
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    qn, mn, pw, flag = (_salvaged(text, key) for key in ("QN", "MN", "PW", "Flag"))
    if not qn or not mn:
        return None
    try:
        if flag is None:
            version = Version.V2005  # no Flag at all: an HJ/T 212-2005 device
        else:
            version = version_of(int(flag)) if flag.isdigit() else Version.V2017
    except BadField:
        version = Version.V2017  # an unknown version: answered as most devices speak
    try:
        return _request_answer(qn, mn, pw, qn_rtn_for(error), version)
    except BadField:
        return None


# -- split packets ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Incomplete:
    """A split message that will never be whole (pushed out, or its connection closed): the
    parts that did arrive, for the dead-letter topic."""

    qn: str
    mn: str
    pnum: int
    parts: tuple[Packet, ...]
    why: str

    @property
    def detail(self) -> str:
        got = ", ".join(str(p.pno) for p in self.parts)
        return (
            f"split message QN={self.qn} MN={self.mn}: {self.why} with {len(self.parts)} of "
            f"{self.pnum} parts (PNO {got})"
        )

    @property
    def payload(self) -> bytes:
        """The parts as JSON, one per line (a part's own bytes are not kept)."""
        return "\n".join(
            json.dumps(packet_to_json(p), ensure_ascii=False) for p in self.parts
        ).encode()


class Reassembler:
    """Joins the parts of a split message (PNUM/PNO), keyed by QN + MN, in any order.

    Memory is bounded: at most ``max_messages`` incomplete messages (the oldest started is
    dropped first, counted in ``dropped``) of at most ``max_parts`` parts each. What is dropped
    is not forgotten silently: :meth:`take_dropped` hands it over, and :meth:`abandon` hands
    over whatever is still incomplete when the stream ends.
    """

    def __init__(self, max_messages: int = 64, max_parts: int = 64) -> None:
        self.max_messages = max_messages
        self.max_parts = max_parts
        self.dropped = 0
        self._pending: OrderedDict[tuple[str, str], dict[int, Packet]] = OrderedDict()
        self._dropped: list[Incomplete] = []

    @property
    def pending(self) -> int:
        return len(self._pending)

    def add(self, packet: Packet) -> Packet | None:
        """The whole message once its last part is in; the packet itself when it is not split;
        otherwise ``None``. The whole message has the merged CP, no PNUM/PNO, bit D cleared."""
        if packet.pnum is None or packet.pno is None:
            return packet
        if packet.pnum > self.max_parts:
            raise BadField(f"PNUM={packet.pnum}: at most {self.max_parts} parts", key="PNUM")
        key = (packet.qn, packet.mn)
        parts = self._pending.get(key)
        if parts is None:
            while len(self._pending) >= self.max_messages:
                old_key, old_parts = self._pending.popitem(last=False)
                self._drop(old_key, old_parts, f"pushed out by {self.max_messages} newer ones")
            parts = self._pending[key] = {}
        elif next(iter(parts.values())).pnum != packet.pnum:
            del self._pending[key]
            self._drop(key, parts, f"a part said PNUM={packet.pnum}")
            raise BadField(f"QN={packet.qn} MN={packet.mn}: parts disagree on PNUM", key="PNUM")
        parts[packet.pno] = packet  # a resent part replaces the earlier copy
        if len(parts) < packet.pnum:
            return None
        del self._pending[key]
        try:
            return merge_parts(parts[n] for n in range(1, packet.pnum + 1))
        except Hj212Error:
            # This part is the caller's to report (it raised); the others are dropped here.
            others = {n: p for n, p in parts.items() if n != packet.pno}
            if others:
                self._drop(key, others, "its parts disagree")
            raise

    def take_dropped(self) -> list[Incomplete]:
        """The messages dropped since the last call."""
        dropped, self._dropped = self._dropped, []
        return dropped

    def abandon(self, why: str = "the connection closed") -> list[Incomplete]:
        """Every incomplete message (the stream has ended), and those dropped before."""
        while self._pending:
            key, parts = self._pending.popitem(last=False)
            self._drop(key, parts, why)
        return self.take_dropped()

    def _drop(self, key: tuple[str, str], parts: dict[int, Packet], why: str) -> None:
        self.dropped += 1
        ordered = tuple(parts[n] for n in sorted(parts))
        pnum = ordered[0].pnum if ordered and ordered[0].pnum is not None else 0
        self._dropped.append(Incomplete(qn=key[0], mn=key[1], pnum=pnum, parts=ordered, why=why))


def merge_parts(parts: Iterable[Packet]) -> Packet:
    """One packet from the parts of a split message, in order; the header is part 1's."""
    ordered = list(parts)
    cp: Cp = {}
    for part in ordered:
        for name, value in part.cp.items():
            if isinstance(value, dict):
                entry = cp.setdefault(name, {})
                if not isinstance(entry, dict):
                    raise BadField(f"CP {name} is both a field and a pollutant", key="CP")
                for suffix, item in value.items():
                    if entry.get(suffix, item) != item:
                        raise BadField(f"parts disagree on CP {name}-{suffix}", key="CP")
                    entry[suffix] = item
            elif cp.get(name, value) != value:
                raise BadField(f"parts disagree on CP {name}", key="CP")
            else:
                cp[name] = value
    first = ordered[0]
    return Packet(
        qn=first.qn,
        st=first.st,
        cn=first.cn,
        pw=first.pw,
        mn=first.mn,
        flag=None if first.flag is None else first.flag & ~FLAG_SPLIT,
        rf=first.rf,
        cp=cp,
        groups=tuple(g for part in ordered for g in part.groups),
        encrypted=any(part.encrypted for part in ordered),
    )


# -- stream framing --------------------------------------------------------------------------

_MAX_FRAME = 6 + MAX_DATA_BYTES + 4 + 2
# Where a packet really starts: ## and 4 digits, then the data segment's first field. A bare
# ## is not enough: an encrypted CP is ciphertext, which holds ## (or \r\n##) now and then.
_FRAME_START = re.compile(rb"##[0-9]{4}(?:QN|ST)=")


def _next_frame(buf: bytearray, at: int) -> int:
    found = _FRAME_START.search(buf, at)
    return found.start() if found else -1


class Framer:
    """Cuts a TCP byte stream into packets. ``feed`` returns, in order, each complete frame
    (bytes from ``##`` to ``\\r\\n``, length-checked but not CRC-checked: pass it to
    :func:`parse`) and an :class:`Hj212Error` for each thing it had to skip.

    Garbage before a ``##`` is skipped (reported unless it is only whitespace); more than
    ``max_buffer`` bytes without a ``##`` are dropped and reported, so memory stays bounded.
    """

    def __init__(self, max_buffer: int = 2048) -> None:
        if max_buffer < _MAX_FRAME:
            raise ValueError(f"max_buffer must hold a whole packet: at least {_MAX_FRAME}")
        self.max_buffer = max_buffer
        self._buf = bytearray()
        self._skipping = False  # dropping the rest of a bad frame, up to \r\n or the next ##

    @property
    def partial(self) -> bool:
        """Whether it holds the start of something unfinished: bytes other than whitespace, or
        the rest of a bad frame still to skip. (A stray \\r\\n between packets is not.)"""
        return self._skipping or bool(self._buf.strip())

    def pending(self) -> bytes:
        """The bytes held for a frame not finished yet."""
        return bytes(self._buf)

    def feed(self, data: bytes) -> list[bytes | Hj212Error]:
        self._buf += data
        out: list[bytes | Hj212Error] = []
        while self._step(out):
            pass
        return out

    def _step(self, out: list[bytes | Hj212Error]) -> bool:
        """One framing decision; False when it needs more bytes."""
        buf = self._buf
        if not buf:
            return False
        if self._skipping:
            return self._skip()
        start = buf.find(b"##")
        if start < 0:
            if len(buf) > self.max_buffer:
                keep = 1 if buf.endswith(b"#") else 0  # may be the first half of ##
                if buf.strip():
                    dropped = bytes(buf[: len(buf) - keep])
                    out.append(
                        BadHeader(f"no ## in {len(dropped)} bytes: dropped them", raw=dropped)
                    )
                del buf[: len(buf) - keep]
            return False
        while buf[start + 2 : start + 3] == b"#":
            start += 1  # "###0101...": the packet starts at the last pair
        if start:
            garbage = bytes(buf[:start])
            del buf[:start]
            if garbage.strip():
                out.append(
                    BadHeader(
                        f"expected ## at the start of a packet: skipped {start} bytes", raw=garbage
                    )
                )
        if len(buf) < 6:
            return False
        head = bytes(buf[2:6])
        if not head.isdigit():
            out.append(
                BadHeader(
                    f"expected 4 decimal digits of data length after ##, got {head!r}",
                    raw=self._up_to_delimiter(),
                )
            )
            return self._start_skipping()
        declared = int(head)
        if declared > MAX_DATA_BYTES:
            out.append(
                TooLong(
                    f"the header declares {declared} bytes, at most {MAX_DATA_BYTES}",
                    raw=self._up_to_delimiter(),
                )
            )
            return self._start_skipping()
        end = 6 + declared + 6
        if len(buf) >= end and buf[end - 2 : end] == b"\r\n":
            out.append(bytes(buf[:end]))
            del buf[:end]
            return True
        # The frame does not end where its header says: find where it really ends.
        crlf = buf.find(b"\r\n", 6)
        nxt = _next_frame(buf, 2)
        if crlf >= 0 and (nxt < 0 or crlf < nxt):
            if len(buf) < end and not _FRAME_START.match(buf, crlf + 2):
                return False  # maybe a \r\n inside the data, or the rest is on its way
            actual = crlf - 6 - 4
            error_type = Truncated if actual < declared else LengthMismatch
            out.append(
                error_type(
                    f"expected {declared} bytes of data, got {actual}", raw=bytes(buf[: crlf + 2])
                )
            )
            del buf[: crlf + 2]
            return True
        if nxt >= 0:
            out.append(
                Truncated(
                    f"expected {declared} bytes of data, a new ## began after {nxt - 6}",
                    raw=bytes(buf[:nxt]),
                )
            )
            del buf[:nxt]
            return True
        if len(buf) >= end:
            out.append(
                LengthMismatch(
                    f"expected \\r\\n after {declared} bytes of data and a CRC",
                    raw=self._up_to_delimiter(),
                )
            )
            return self._start_skipping()
        return False

    def _up_to_delimiter(self) -> bytes:
        """The bad frame's bytes as far as they are here: to the next \\r\\n or ##."""
        buf = self._buf
        crlf, nxt = buf.find(b"\r\n", 2), buf.find(b"##", 2)
        if crlf >= 0 and (nxt < 0 or crlf < nxt):
            return bytes(buf[: crlf + 2])
        return bytes(buf[:nxt] if nxt >= 0 else buf)

    def _start_skipping(self) -> bool:
        del self._buf[:1]  # only one byte: "###0101..." resynchronises on the second #
        self._skipping = True
        return True

    def _skip(self) -> bool:
        buf = self._buf
        cuts = [i for i in (buf.find(b"##"), buf.find(b"\r\n")) if i >= 0]
        if not cuts:
            keep = 1 if buf.endswith((b"#", b"\r")) else 0  # may be half a delimiter
            del buf[: len(buf) - keep]
            return False
        first = min(cuts)
        del buf[: first + (2 if buf[first : first + 2] == b"\r\n" else 0)]
        self._skipping = False
        return True


# -- readings --------------------------------------------------------------------------------


def _zone(tz: tzinfo | str) -> tzinfo:
    return ZoneInfo(tz) if isinstance(tz, str) else tz


def parse_data_time(text: str, tz: tzinfo | str = DEFAULT_TZ) -> datetime:
    """``YYYYMMDDhhmmss`` in the monitor's local time, or with milliseconds after it
    (``YYYYMMDDhhmmsszzz``, as some HJ/T 212-2005 devices send)."""
    if not _DATA_TIME.fullmatch(text):
        raise BadField(f"DataTime={text!r}: expected YYYYMMDDhhmmss[zzz]", key="CP")
    try:
        naive = datetime.strptime(text[:14], "%Y%m%d%H%M%S")
    except ValueError as exc:
        raise BadField(f"DataTime={text!r}: not a real date and time ({exc})", key="CP") from exc
    if len(text) == 17:
        naive = naive.replace(microsecond=int(text[14:]) * 1000)
    return naive.replace(tzinfo=_zone(tz))


def to_device_reading(packet: Packet, tz: tzinfo | str = DEFAULT_TZ) -> tuple[str, DeviceReading]:
    """(MN, reading) from a data upload. CN 2011 gives each pollutant's ``-Rtd``; 2051, 2061 and
    2031 give ``-Avg``. Flags come from ``-Flag`` (default N); 2005-era codes are mapped to 2017
    ones. A pollutant without the chosen suffix (say only ``-Cou``) is left out."""
    suffix = VALUE_SUFFIX_BY_CN.get(packet.cn)
    if suffix is None:
        raise BadField(
            f"CN={packet.cn} carries no readings: expected one of {', '.join(VALUE_SUFFIX_BY_CN)}",
            key="CN",
        )
    if packet.data_time is None:
        raise BadField("missing CP DataTime: expected YYYYMMDDhhmmss", key="CP")
    ts = parse_data_time(packet.data_time, tz)
    values: dict[str, Measurement] = {}
    for code, items in packet.pollutants.items():
        if suffix not in items:
            continue
        target = LEGACY_CODES.get(code, code)
        if not _CODE_2017.fullmatch(target):
            raise BadField(
                f"pollutant code {code!r}: expected a 2017 code such as w01018 or a 2005 code "
                f"({', '.join(LEGACY_CODES)})",
                key="CP",
            )
        if target in values:
            raise BadField(f"pollutant {target} is sent twice (as {code} too)", key="CP")
        flag_text = items.get("Flag", DataFlag.NORMAL.value)
        try:
            flag = DataFlag(flag_text)
        except ValueError as exc:
            expected = ", ".join(f.value for f in DataFlag)
            raise BadField(
                f"CP {code}-Flag={flag_text!r}: expected one of {expected}", key="CP"
            ) from exc
        try:
            values[target] = Measurement(value=float(items[suffix]), flag=flag)
        except (OverflowError, ValidationError) as exc:
            raise BadField(f"CP {code}-{suffix}: expected a finite number ({exc})") from exc
    if not values:
        raise BadField(f"CN={packet.cn} packet has no -{suffix} values: expected at least one")
    return packet.mn, DeviceReading(ts=ts, values=values)


# -- JSON ------------------------------------------------------------------------------------


# JSON keys besides the data segment's fields: the protocol version (derived from Flag), the
# CP's instrument groups, and whether the packet came (or is to go) SM4-encrypted.
JSON_KEYS = (*HEADER_KEYS, "version", "CPGroups", "encrypted")


def _cp_json(cp: Cp) -> dict[str, Any]:
    return {k: dict(v) if isinstance(v, dict) else v for k, v in cp.items()}


def packet_to_json(packet: Packet) -> dict[str, Any]:
    """The data segment as JSON, keyed as the standard names the fields, with ``version``."""
    doc: dict[str, Any] = {"version": packet.version.value}
    if packet.qn is not None:
        doc["QN"] = packet.qn
    doc["ST"] = packet.st
    doc["CN"] = packet.cn
    if packet.pw is not None:
        doc["PW"] = packet.pw
    doc["MN"] = packet.mn
    if packet.flag is not None:
        doc["Flag"] = packet.flag
    if packet.pnum is not None:
        doc["PNUM"] = packet.pnum
        doc["PNO"] = packet.pno
    if packet.rf is not None:
        doc["RF"] = packet.rf
    doc["CP"] = _cp_json(packet.cp)
    if packet.groups:
        doc["CPGroups"] = [_cp_json(g) for g in packet.groups]
    if packet.encrypted:
        doc["encrypted"] = True
    return doc


def json_to_packet(doc: object) -> Packet:
    """The reverse of :func:`packet_to_json`; every mistake is a :class:`BadField`."""
    if not isinstance(doc, Mapping):
        raise BadField(f"expected a JSON object, got {type(doc).__name__}")
    unknown = [k for k in doc if k not in JSON_KEYS]
    if unknown:
        raise BadField(f"unknown key(s) {', '.join(map(str, unknown))}: expected {JSON_KEYS}")
    for key in REQUIRED_KEYS:
        if key not in doc:
            raise BadField(f"missing required key {key}", key=key)
    for key in ("QN", "ST", "CN", "PW", "MN"):
        if key in doc and not isinstance(doc[key], str):
            raise BadField(f"{key}: expected a string, got {doc[key]!r}", key=key)
    cp, groups = doc["CP"], doc.get("CPGroups", [])
    if not isinstance(cp, Mapping):
        raise BadField(f"CP: expected an object, got {cp!r}", key="CP")
    if not isinstance(groups, list) or not all(isinstance(g, Mapping) for g in groups):
        raise BadField(f"CPGroups: expected a list of objects, got {groups!r}", key="CP")
    encrypted = doc.get("encrypted", False)
    if not isinstance(encrypted, bool):
        raise BadField(f"encrypted: expected true or false, got {encrypted!r}", key="CP")
    packet = Packet(
        qn=doc.get("QN"),
        st=doc["ST"],
        cn=doc["CN"],
        pw=doc.get("PW"),
        mn=doc["MN"],
        flag=doc.get("Flag"),
        pnum=doc.get("PNUM"),
        pno=doc.get("PNO"),
        rf=doc.get("RF"),
        cp=cp,
        groups=tuple(groups),
        encrypted=encrypted,
    )
    said = doc.get("version")
    if said is not None and said != packet.version.value:
        raise BadField(
            f"version {said!r} does not match Flag={packet.flag} (version "
            f"{packet.version.value}): expected them to agree, or no version",
            key="Flag",
        )
    return packet
