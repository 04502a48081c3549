"""Folders and files of the state folder, made with the permissions they need from the start.

The state folder holds readings, dead letters, service data and secrets: only its owner reads
it. A process creates every folder it uses before using it (a new machine has none of them),
and a secret file is created 0600, never written first and narrowed after.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ecowatch.errors import ConfigError

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def private_dir(path: Path) -> Path:
    """``path`` and any missing parents, the last one 0700 (narrowed if it was wider)."""
    path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o077:
        path.chmod(PRIVATE_DIR)
    return path


def write_private(path: Path, text: str) -> Path:
    """Write ``text`` to a 0600 file (created so, or narrowed before a byte is written)."""
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
    try:
        os.fchmod(fd, PRIVATE_FILE)  # an existing file keeps its mode through O_CREAT
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            fd = -1
            out.write(text)
    finally:
        if fd >= 0:
            os.close(fd)
    return path


def read_json_object(path: Path, shape: str, when_missing: str) -> dict[str, object]:
    """A JSON object from a settings file (credentials, passwords, tokens). A mistake names the
    file and the ``shape`` expected ("a JSON object of MN to PW"); a missing file says
    ``when_missing`` (how to make one)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: {when_missing}") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: expected {shape} ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected {shape}")
    return data
