"""Messages too long for one packet (Flag bit D, PNUM/PNO): split into parts on the way out,
and put back together on the way in, whatever order and mix the parts come in. Pure."""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, replace

from ecowatch.ingest.hj212.codec import (
    build_bytes,
    data_segment,
    packet_to_json,
)
from ecowatch.ingest.hj212.protocol import (
    FLAG_SPLIT,
    MAX_DATA_BYTES,
    BadField,
    Cp,
    Hj212Error,
    Packet,
    Pollutant,
    TooLong,
)


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
