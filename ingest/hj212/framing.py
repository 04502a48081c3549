"""Packets out of a TCP byte stream: where one starts and ends, whatever the reads cut, and
what to skip when a device sends noise. Pure: the server feeds it bytes."""

from __future__ import annotations

import re

from ecowatch.ingest.hj212.protocol import (
    MAX_DATA_BYTES,
    BadHeader,
    Hj212Error,
    LengthMismatch,
    TooLong,
    Truncated,
)

# -- stream framing --------------------------------------------------------------------------

_MAX_FRAME = 6 + MAX_DATA_BYTES + 4 + 2
# Where a packet really starts: ## and 4 digits, then the data segment's first field. A bare
# ## is not enough: an encrypted CP is ciphertext, which holds ## (or \r\n##) now and then.
_FRAME_START = re.compile(rb"##[0-9]{4}(?:QN|ST)=")


def _next_frame(buf: bytearray, at: int) -> int:
    found = _FRAME_START.search(buf, at)
    return found.start() if found else -1


def _no_start(detail: str, raw: bytes) -> BadHeader:
    return BadHeader(f"expected ## at the start of a packet: {detail}", raw=raw)


class Framer:
    """Cuts a TCP byte stream into packets. ``feed`` returns, in order, each complete frame
    (bytes from ``##`` to ``\\r\\n``, length-checked but not CRC-checked: pass it to
    :func:`parse`) and an :class:`Hj212Error` for each thing it had to skip.

    Garbage before a ``##`` is skipped (reported unless it is only whitespace), as a
    :class:`BadHeader`: no packet began. Bytes without a ``##`` are reported as soon as a line
    break ends them, and more than ``max_buffer`` of them at once, so memory stays bounded.
    When the stream ends, :meth:`finish` says what was left.
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
            # No packet has begun: the bytes up to a line break can begin none.
            cut = buf.rfind(b"\n") + 1
            if len(buf) > self.max_buffer:
                cut = len(buf) - (1 if buf.endswith(b"#") else 0)  # "#": maybe half of ##
            if cut:
                dropped = bytes(buf[:cut])
                del buf[:cut]
                if dropped.strip():
                    out.append(_no_start(f"no ## in {len(dropped)} bytes: dropped them", dropped))
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

    def finish(self, why: str = "the stream ended") -> Hj212Error | None:
        """The stream has ended (or will be waited for no longer): the error for the bytes
        held, which are dropped. :class:`Truncated` when a packet had begun (``##``) and is not
        whole; :class:`BadHeader` when they never began one; None for nothing but whitespace,
        or for the rest of a bad frame already reported."""
        raw, skipping = bytes(self._buf), self._skipping
        self._buf.clear()
        self._skipping = False
        if skipping or not raw.strip():
            return None
        if raw.startswith(b"##"):
            return Truncated(f"a frame {why} ({len(raw)} bytes arrived)", raw=raw)
        return _no_start(f"no ## in {len(raw)} bytes, then {why}", raw)

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
