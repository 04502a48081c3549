"""HJ 212 codec (2005, 2017 and 2025): packets ⇄ :class:`~.protocol.Packet` ⇄ JSON and
:class:`DeviceReading`, with 2025's SM4-encrypted CP. Pure, no I/O.

Choices this module makes where the standard leaves room:

- Length and the 1024 limit count bytes of the UTF-8 data segment; CP content is at most 950.
- CP values: pollutant suffixes Rtd, Min, Avg, Max, Cou, ZsRtd, ZsAvg, ZsMin, ZsMax, ZsCou
  are numbers; integral text (``30``) becomes ``int``, other decimal text (``42.50``) ``float``, so
  ``build`` writes ``30`` and ``42.5`` back. Flag, SampleTime and any other suffix stay text.
  Non-pollutant CP fields (RtdInterval, QnRtn, ExeRtn, ...) are numbers when they look like one,
  except DataTime and every ``...Time`` field, which stay text exactly as sent.
- PW and Flag may be absent (2005-era devices); they are then ``None`` and not written back.
- ``parse`` merges items by pollutant code whatever the ``;``/``,`` grouping; ``build`` writes
  one ``;``-group per plain field and per pollutant, in the CP dict's order. So
  ``build(parse(x)) == x`` for every packet ``build`` made, and ``parse(build(p)) == p``.
- Instrument groups (CN 3020): a ``PolId=`` item starts one, and every item after it, up to
  the next ``PolId=``, is that group's, whether ``;`` or ``,`` separates them. ``build`` writes
  each group last, as one ``;``-group of ``,``-joined items.
- Readings: CN 2011 carries real-time values (``-Rtd``); 2051/2061/2031 carry period values,
  of which the reading takes ``-Avg`` (``-Min``/``-Max``/``-Cou`` stay in the packet). A
  CEMS's corrected value beside it (``-ZsRtd``, ``-ZsAvg``) is the measurement's ``zs``;
  ``-ZsMin``/``-ZsMax``/``-ZsCou`` stay in the packet, and a corrected value without its
  measured one is no reading value.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime, tzinfo
from decimal import Decimal
from math import isfinite
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from ecowatch.ingest.hj212 import sm4
from ecowatch.ingest.hj212.protocol import (
    CODE_2017,
    CORRECTED_PREFIX,
    DATA_TIME,
    DEFAULT_TZ,
    FLAG_VERSION_SHIFT,
    GROUP_LEAD,
    HEADER_KEYS,
    HEX4,
    INT,
    LEGACY_CODES,
    LEGACY_FLUE_GAS_CODES,
    MAX_CP_CHARS,
    MAX_DATA_BYTES,
    NUMBER,
    NUMERIC_SUFFIXES,
    REQUIRED_KEYS,
    ST_FLUE_GAS,
    VALUE_SUFFIX_BY_CN,
    VERSIONS,
    BadField,
    BadHeader,
    Cp,
    CpScalar,
    CrcMismatch,
    LengthMismatch,
    Packet,
    TooLong,
    Truncated,
    Version,
    crc16,
    crc_hex,
    is_text_field,
)
from ecowatch.schema import DataFlag, DeviceReading, Measurement

# -- SM4 (HJ 212-2025 §6.4, Appendix A.2) ------------------------------------------------------

# The CNs whose CP a 2025 device on the Internet encrypts.
ENCRYPTED_CNS = frozenset({*(str(cn) for cn in range(2000, 3000)), "1014", "3020"})
CP_OPEN = b"CP=&&"


def _cp_span(data: bytes) -> tuple[int, int] | None:
    """Where the CP content lies in a data segment's bytes: after the first ``CP=&&`` (the
    header before it is plain text) and before the closing ``&&`` the segment ends with.
    Ciphertext may hold ``&&`` or ``\\r\\n``, so nothing is searched for inside it."""
    start = data.find(CP_OPEN)
    if start < 0 or len(data) < start + len(CP_OPEN) + 2 or not data.endswith(b"&&"):
        return None
    return start + len(CP_OPEN), len(data) - 2


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
    if int(flag.group(1)) >> FLAG_VERSION_SHIFT != VERSIONS.index(Version.V2025):
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
    if not HEX4.fullmatch(crc_text):
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
    """CP content as its plain part and its instrument groups (CN 3020): a ``PolId=`` item
    starts a group, and the items after it, up to the next ``PolId=``, are that group's
    (``PolId=w01018;i12001-Info=1;PolId=w01019;i12001-Info=2`` is two groups, as is the same
    with ``,`` inside each). The names repeat from one group to the next."""
    if len(body) > MAX_CP_CHARS:
        raise TooLong(f"the CP field has {len(body)} characters, at most {MAX_CP_CHARS}")
    cp: Cp = {}
    groups: list[Cp] = []
    into = cp
    for group in body.split(";"):
        for item in group.split(","):
            if item.startswith(GROUP_LEAD):
                into = {}
                groups.append(into)
            _parse_items((item,), into)
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
            cp[name] = value if is_text_field(name) else _number(value)
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
    if INT.fullmatch(text):
        return int(text)
    if NUMBER.fullmatch(text):
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


# -- readings --------------------------------------------------------------------------------


def _zone(tz: tzinfo | str) -> tzinfo:
    return ZoneInfo(tz) if isinstance(tz, str) else tz


def parse_data_time(text: str, tz: tzinfo | str = DEFAULT_TZ) -> datetime:
    """``YYYYMMDDhhmmss`` in the monitor's local time, or with milliseconds after it
    (``YYYYMMDDhhmmsszzz``, as some HJ/T 212-2005 devices send)."""
    if not DATA_TIME.fullmatch(text):
        raise BadField(f"DataTime={text!r}: expected YYYYMMDDhhmmss[zzz]", key="CP")
    try:
        naive = datetime.strptime(text[:14], "%Y%m%d%H%M%S")
    except ValueError as exc:
        raise BadField(f"DataTime={text!r}: not a real date and time ({exc})", key="CP") from exc
    if len(text) == 17:
        naive = naive.replace(microsecond=int(text[14:]) * 1000)
    return naive.replace(tzinfo=_zone(tz))


def _code_2017(code: str, st: str) -> str:
    """A pollutant code as HJ 212-2017 names it: 2005's by tables B.1 and B.2, and 001/002/003
    as flue gas (not water) when the packet's ST says it is from a flue-gas source."""
    if st == ST_FLUE_GAS and code in LEGACY_FLUE_GAS_CODES:
        return LEGACY_FLUE_GAS_CODES[code]
    return LEGACY_CODES.get(code, code)


def to_device_reading(packet: Packet, tz: tzinfo | str = DEFAULT_TZ) -> tuple[str, DeviceReading]:
    """(MN, reading) from a data upload. CN 2011 gives each pollutant's ``-Rtd``; 2051, 2061 and
    2031 give ``-Avg``; a CEMS's corrected value beside it (``-ZsRtd``, ``-ZsAvg``) becomes the
    measurement's ``zs``. Flags come from ``-Flag`` (default N); 2005-era codes are mapped to
    2017 ones (001/002/003 as flue gas from an ST=31 packet, else as water). A pollutant
    without the chosen suffix (say only ``-Cou``, or only ``-ZsRtd``) is left out."""
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
    corrected = CORRECTED_PREFIX + suffix
    for code, items in packet.pollutants.items():
        if suffix not in items:
            continue
        target = _code_2017(code, packet.st)
        if not CODE_2017.fullmatch(target):
            # Examples only: every 2005 code of tables B.1/B.2 would swamp a dead letter's detail.
            raise BadField(
                f"pollutant code {code!r}: expected a 2017 code such as w01018 or a 2005 code "
                "of HJ 212-2017 tables B.1/B.2 (011, 02, S01, B02, ...)",
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
        zs = items.get(corrected)
        try:
            values[target] = Measurement(
                value=float(items[suffix]), flag=flag, zs=None if zs is None else float(zs)
            )
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


INSTRUMENT_STATE = "i12001"  # an analyser's working state, in its PolId group (CN 3020)


def instrument_states(packet: Packet) -> dict[str, int]:
    """A CN 3020 packet's analysers' working states: pollutant (its 2017 code) → i12001's
    value; a group without one, or with one that is not a whole number, is left out."""
    out: dict[str, int] = {}
    for group in packet.groups:
        code = _code_2017(str(group.get("PolId", "")), packet.st)
        item = group.get(INSTRUMENT_STATE)
        value = item.get("Info") if isinstance(item, dict) else None
        if CODE_2017.fullmatch(code) and isinstance(value, str) and value.isdigit():
            out[code] = int(value)
    return out
