"""``hj212 decode`` and ``hj212 encode``: HJ 212-2017 packets ⇄ JSON, one per line.

``decode`` reads one packet per line (the ``\\r\\n`` ending is optional: a line is taken as the
packet without its line ending, plus ``\\r\\n``) and prints one JSON object per packet.
``encode`` reads one JSON object per line and prints one packet per line, *without* its
``\\r\\n``, so that ``hj212 encode | hj212 decode`` round-trips line by line.

A line that cannot be handled prints ``{"error": "<kind>", "detail": "..."}`` in its place;
the other lines are still processed, and the command exits 1 at the end. The kinds are those of
:class:`~ecowatch.ingest.hj212.Hj212Error`, plus ``bad_json`` for a line ``encode`` cannot read
as JSON. Blank lines are skipped.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any, BinaryIO

import click

from ecowatch.ingest.hj212 import Hj212Error, build, json_to_packet, packet_to_json, parse


def _lines(stream: BinaryIO) -> Iterator[bytes]:
    for line in stream:
        line = line.removesuffix(b"\n").removesuffix(b"\r")
        if line.strip():
            yield line


def _echo(doc: dict[str, Any]) -> None:
    click.echo(json.dumps(doc, ensure_ascii=False))


def _error(kind: str, detail: str) -> None:
    _echo({"error": kind, "detail": detail})


@click.group("hj212")
def hj212() -> None:
    """HJ 212-2017 packets ⇄ JSON lines."""


@hj212.command()
def decode() -> None:
    """Packets on stdin (one per line) → JSON objects on stdout (one per line)."""
    failed = False
    for line in _lines(click.get_binary_stream("stdin")):
        try:
            _echo(packet_to_json(parse(line + b"\r\n")))
        except Hj212Error as exc:
            _error(exc.kind, exc.detail)
            failed = True
    if failed:
        sys.exit(1)


@hj212.command()
def encode() -> None:
    """JSON objects on stdin (one per line) → packets on stdout, one per line, without \\r\\n."""
    failed = False
    for line in _lines(click.get_binary_stream("stdin")):
        try:
            doc = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            _error("bad_json", f"expected one JSON object per line: {exc}")
            failed = True
            continue
        try:
            click.echo(build(json_to_packet(doc)).removesuffix("\r\n"))
        except Hj212Error as exc:
            _error(exc.kind, exc.detail)
            failed = True
    if failed:
        sys.exit(1)
