"""``hj212 decode`` and ``hj212 encode``: HJ 212 packets (HJ/T 212-2005, HJ 212-2017 and
HJ 212-2025) ⇄ JSON, one object per line.

``decode`` reads a byte stream of packets, each framed by ``##`` and its length and ending in
``\\r\\n`` (as a device sends them: an encrypted CP may hold any byte, ``\\r\\n`` included, so
packets are cut by their length, never by line), and prints one JSON object per packet, with
``"version"`` (``"2005"``, ``"2017"`` or ``"2025"``), ``"RF"`` when present and
``"encrypted": true`` when its CP was SM4-encrypted (read with ``--sm4-key``).
``encode`` reads one JSON object per line (the same keys; ``"encrypted": true`` encrypts with
``--sm4-key``) and writes each packet with its ``\\r\\n``, so ``hj212 encode | hj212 decode``
round-trips.

What cannot be handled prints ``{"error": "<kind>", "detail": "..."}`` in its place; the rest
is still processed, and the command exits 1 at the end. The kinds are those of
:class:`~ecowatch.ingest.hj212.protocol.Hj212Error`, plus ``bad_json`` for a line ``encode`` cannot
read as JSON. An encrypted packet without the right key is that packet's ``crc_mismatch``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any, BinaryIO

import click

from ecowatch.ingest.hj212 import (
    Framer,
    Hj212Error,
    build_bytes,
    json_to_packet,
    packet_to_json,
    parse,
    sm4,
)


def _lines(stream: BinaryIO) -> Iterator[bytes]:
    for line in stream:
        line = line.removesuffix(b"\n").removesuffix(b"\r")
        if line.strip():
            yield line


def _echo(doc: dict[str, Any]) -> None:
    click.echo(json.dumps(doc, ensure_ascii=False))


def _error(kind: str, detail: str) -> None:
    _echo({"error": kind, "detail": detail})


def _key(text: str | None) -> bytes | None:
    if text is None:
        return None
    try:
        return sm4.parse_key(text)
    except sm4.Sm4KeyError as exc:
        raise click.BadParameter(str(exc), param_hint="--sm4-key") from None


_KEY_OPTION = click.option(
    "--sm4-key",
    metavar="HEX",
    envvar="ECOWATCH_HJ212_SM4_KEY",
    help="The device's SM4 key, 32 hex digits (HJ 212-2025). Also ECOWATCH_HJ212_SM4_KEY, "
    "which keeps it out of the shell's history.",
)


@click.group("hj212")
def hj212() -> None:
    """HJ 212 packets (2005, 2017, 2025) ⇄ JSON lines."""


@hj212.command()
@_KEY_OPTION
def decode(sm4_key: str | None) -> None:
    """Packets on stdin (a byte stream) → JSON objects on stdout (one per line)."""
    key, failed = _key(sm4_key), False
    framer, stream = Framer(), click.get_binary_stream("stdin")
    while chunk := stream.read(65536):
        for item in framer.feed(chunk):
            if isinstance(item, Hj212Error):
                _error(item.kind, item.detail)
                failed = True
                continue
            try:
                _echo(packet_to_json(parse(item, key)))
            except Hj212Error as exc:
                _error(exc.kind, exc.detail)
                failed = True
    # What the stream left: a packet begun and not finished, or bytes that never began one.
    if (left := framer.finish()) is not None:
        _error(left.kind, left.detail)
        failed = True
    if failed:
        sys.exit(1)


@hj212.command()
@_KEY_OPTION
def encode(sm4_key: str | None) -> None:
    """JSON objects on stdin (one per line) → packets on stdout, each ending in \\r\\n."""
    key, failed = _key(sm4_key), False
    out = click.get_binary_stream("stdout")
    for line in _lines(click.get_binary_stream("stdin")):
        try:
            doc = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            _error("bad_json", f"expected one JSON object per line: {exc}")
            failed = True
            continue
        try:
            out.write(build_bytes(json_to_packet(doc), key))
            out.flush()
        except Hj212Error as exc:
            _error(exc.kind, exc.detail)
            failed = True
    if failed:
        sys.exit(1)
