"""What the platform answers a device: 9014 for data, 9011 (QnRtn) for a request or a packet
it cannot take, in the device's own version. Pure."""

from __future__ import annotations

import re
from enum import IntEnum

from ecowatch.ingest.hj212.codec import (
    CP_OPEN,
)
from ecowatch.ingest.hj212.protocol import (
    CN_DATA_ANSWER,
    CN_REQUEST_ANSWER,
    ST_SYSTEM,
    BadField,
    CrcMismatch,
    Hj212Error,
    Packet,
    Version,
    reply_flag,
    version_of,
)

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
    cp = frame.find(CP_OPEN)
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
