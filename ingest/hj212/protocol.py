"""HJ 212's vocabulary (2005, 2017 and 2025): the limits, header keys and command numbers, the
errors a packet can have, the CRC of Appendix A, the Flag's bits and versions, and the packet
model (:class:`Packet`) with its checks. Pure, no I/O.

Wire format (HJ 212-2017, section 6 and Appendix A)::

    ## + 4-digit data length + data segment + 4 hex CRC + \\r\\n
    data segment: QN=..;ST=..;CN=..;PW=..;MN=..;Flag=..;[PNUM=..;PNO=..;]CP=&&...&&
"""

from __future__ import annotations

import re
import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from math import isfinite
from typing import ClassVar, TypeAlias

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

# Zs...: a CEMS's values corrected to its reference oxygen (折算值), beside the measured ones.
NUMERIC_SUFFIXES = frozenset(
    {"Rtd", "Min", "Avg", "Max", "Cou", "ZsRtd", "ZsAvg", "ZsMin", "ZsMax", "ZsCou"}
)
# Which suffix a data upload's reading is taken from, by CN; its corrected value (the reading's
# ``zs``) is the same suffix after "Zs" (ZsRtd, ZsAvg).
VALUE_SUFFIX_BY_CN = {"2011": "Rtd", "2051": "Avg", "2061": "Avg", "2031": "Avg"}
CORRECTED_PREFIX = "Zs"
# HJ/T 212-2005 pollutant codes that fielded devices still send → their 2017 codes (HJ 212-2017
# tables B.1 water and B.2 air, column 原编码). Water's 2005 codes have three digits and air's
# two (or a letter), so one map holds both without a collision; the three-digit flue-gas forms
# some devices write are LEGACY_FLUE_GAS_CODES'.
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
    # air (flue gas), table B.2: every 原编码 of the table, as two public transcriptions of it
    # agree (srdgame/lua-HJ212 hj212.csv, chenqi92/alltobs-hj212 PollutionGas.java). No air
    # code of the table has 16 as its 2005 code, so 16 is not mapped.
    "B02": "a00000",  # flue-gas flow
    "S01": "a19001",  # O2
    "S02": "a01011",  # velocity
    "S03": "a01012",  # temperature
    "S04": "a01017",  # dynamic pressure
    "S05": "a01014",  # moisture
    "S06": "a01015",  # cooler (制冷) temperature
    "S07": "a01016",  # flue cross-section
    "S08": "a01013",  # static pressure
    "01": "a34013",  # smoke dust
    "02": "a21026",  # SO2
    "03": "a21002",  # NOx
    "04": "a21005",  # CO
    "05": "a21028",  # hydrogen sulphide
    "06": "a21018",  # fluoride
    "07": "a21017",  # cyanide
    "08": "a21024",  # hydrogen chloride
    "09": "a34038",  # asphalt (bitumen) fume
    "10": "a21001",  # ammonia
    "11": "a21022",  # chlorine
    "12": "a99051",  # carbon disulphide
    "13": "a30022",  # mercaptans
    "14": "a34039",  # sulphuric acid mist
    "15": "a34040",  # chromic acid mist
    "17": "a25003",  # toluene
    "18": "a25005",  # xylene
    "19": "a31001",  # formaldehyde
    "20": "a25044",  # benzo[a]pyrene
    "21": "a26001",  # anilines
    "22": "a25023",  # nitrobenzene
    "23": "a25010",  # chlorobenzene
    "24": "a99049",  # phosgene
    "25": "a24087",  # hydrocarbons
    "26": "a31002",  # acetaldehyde
    "27": "a23001",  # phenols
    "28": "a30001",  # methanol
    "29": "a24046",  # vinyl chloride
    "30": "a05001",  # carbon dioxide
    "31": "a20057",  # mercury and its compounds
    "32": "a20043",  # lead and its compounds
    "33": "a20025",  # cadmium and its compounds
    "34": "a20091",  # tin and its compounds
    "35": "a20063",  # nickel and its compounds
    "36": "a20016",  # beryllium and its compounds
    "37": "a01010",  # Ringelmann blackness
}
# ST=31 (大气环境污染源, the same in HJ/T 212-2005 and HJ 212-2017): a flue-gas packet. Some
# flue-gas devices write the 2005 codes 01, 02 and 03 with three digits; in no table of the
# standard, and in table B.1 the same codes are water's (001 pH, 002 colour, 003 suspended
# solids), so they are read as flue gas only from a packet whose ST says it is one.
ST_FLUE_GAS = "31"
LEGACY_FLUE_GAS_CODES = {
    "001": "a34013",  # smoke dust, as 01
    "002": "a21026",  # SO2, as 02
    "003": "a21002",  # NOx, as 03
}
DEFAULT_TZ = "Asia/Shanghai"

ST_SYSTEM = "91"  # system interaction: every answer
CN_REQUEST_ANSWER = "9011"
CN_DATA_ANSWER = "9014"
CN_HEARTBEAT = "9015"  # HJ 212-2025: the device is there; not a reading
CN_INSTRUMENT_STATES = "3020"  # the analysers' working states, a PolId group each
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
# A CP item PolId= starts one instrument's group (CN 3020 and the like): the items after it, up
# to the next PolId=, are that instrument's, whether ; or , separates them. The same names
# repeat from one instrument to the next, so the groups are kept apart, in order, as
# Packet.groups.
GROUP_LEAD = "PolId="

CpScalar: TypeAlias = str | int | float
Pollutant: TypeAlias = dict[str, CpScalar]
Cp: TypeAlias = dict[str, CpScalar | Pollutant]

INT = re.compile(r"[+-]?[0-9]+")
NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
HEX4 = re.compile(rb"[0-9A-Fa-f]{4}")
CODE_2017 = re.compile(r"[a-z][0-9]{5}")
DATA_TIME = re.compile(r"[0-9]{14}(?:[0-9]{3})?")
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


VERSIONS = (Version.V2005, Version.V2017, Version.V2025)  # by Flag's version bits


def version_of(flag: int | None) -> Version:
    if flag is None:
        return Version.V2005
    bits = flag >> FLAG_VERSION_SHIFT
    if bits >= len(VERSIONS):
        raise BadField(
            f"Flag={flag}: protocol version {bits} is unknown: expected 0 (HJ/T 212-2005), "
            "1 (HJ 212-2017) or 2 (HJ 212-2025) in bits 7..2",
            key="Flag",
        )
    return VERSIONS[bits]


def reply_flag(version: Version) -> int:
    """An answer's Flag: the request's version, no answer wanted, not split."""
    return VERSIONS.index(version) << FLAG_VERSION_SHIFT


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


def is_text_field(name: str) -> bool:
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
            expect = "text" if is_text_field(name) else "either"
            out[name] = _check_scalar(name, value, expect)
    return out
