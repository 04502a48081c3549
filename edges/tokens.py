"""The case API's tokens, kept as hashes: a leaked tokens file lets nobody in.

The file (ECOWATCH_OFFICER_TOKENS) is a JSON object of ``"sha256:<hex>"`` → who: an officer's
id from the catalogue, ``"operator:<name>"`` (an operator sees every grid and acts on none), or
``"enterprise:<id>"`` (an enterprise of the catalogue: it marks its own sites' data, 标记, and
never acts on cases), or ``"kiosk:<name>"`` (an unattended wall: it reads every grid and may
post nothing; its console session lasts as long as the file holds its hash).
A token is random (``secrets.token_urlsafe(32)``, 256 bits), so one unsalted SHA-256 is enough
to make the stored value useless to a reader; a presented token is hashed and the hash looked
up, so no comparison ever runs over the secret itself.

A file of plain tokens is refused with the command that converts it (``ecowatch tokens
convert``); the tokens themselves stay the same.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from collections.abc import Mapping
from pathlib import Path

from ecowatch.edges.files import read_json_object, write_private
from ecowatch.errors import ConfigError

PREFIX = "sha256:"
HASHED = re.compile(r"sha256:[0-9a-f]{64}")
OPERATOR = "operator:"
ENTERPRISE = "enterprise:"
KIOSK = "kiosk:"


def hash_token(token: str) -> str:
    """``sha256:<hex>`` of the token's UTF-8 bytes: what the file keeps."""
    return PREFIX + hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def who_problem(who: object) -> str | None:
    """Why ``who`` cannot be a token's holder, or None if it can (a non-empty officer id,
    ``operator:<name>``, ``enterprise:<id>`` or ``kiosk:<name>``)."""
    if not isinstance(who, str) or not who.strip() or who != who.strip():
        return "expected an officer id, 'operator:<name>', 'enterprise:<id>' or 'kiosk:<name>'"
    if who.startswith(OPERATOR) and not who.removeprefix(OPERATOR).strip():
        return "an operator needs a name: 'operator:<name>'"
    if who.startswith(KIOSK) and not who.removeprefix(KIOSK).strip():
        return "a kiosk needs a name: 'kiosk:<name>'"
    enterprise = who.removeprefix(ENTERPRISE)
    if who.startswith(ENTERPRISE) and (not enterprise or enterprise != enterprise.strip()):
        return "an enterprise is named by its catalogue id: 'enterprise:<id>'"
    return None


def hashed(plain: Mapping[str, str]) -> dict[str, str]:
    """token → who, as the file keeps it: hash → who."""
    return {hash_token(token): who for token, who in plain.items()}


def identify(tokens: Mapping[str, str], token: str) -> str | None:
    """Who holds ``token`` (officer id, ``operator:<name>`` or ``enterprise:<id>``), from the
    hashed ``tokens``."""
    if not token:
        return None
    return tokens.get(hash_token(token))


def _read(path: Path) -> dict[str, object]:
    return read_json_object(
        path,
        "a JSON object of token hash to officer id",
        "no tokens file (ECOWATCH_OFFICER_TOKENS); make one with "
        f"`ecowatch tokens add OFFICER_ID --file {path}`",
    )


def load_tokens(path: Path | None) -> dict[str, str]:
    """hash → who, from the file. No file configured: nobody can use the API.

    Refused (ConfigError, naming the file and the entry by position, never its key): a plain
    token, a holder that is not an officer id, ``operator:<name>`` or ``enterprise:<id>``."""
    if path is None:
        return {}
    data = _read(path)
    out: dict[str, str] = {}
    plain = 0
    for n, (key, who) in enumerate(data.items(), start=1):
        if not HASHED.fullmatch(key):
            plain += 1
            continue
        if (problem := who_problem(who)) is not None:
            raise ConfigError(f"{path}: entry {n} ({key[:15]}…): {problem}")
        out[key] = str(who)
    if plain:
        raise ConfigError(
            f"{path}: {plain} of its {len(data)} entries are not token hashes "
            f"('sha256:<64 hex digits>'): the file must never hold the tokens themselves. "
            f"Convert it with `ecowatch tokens convert {path}` (the tokens stay the same)"
        )
    return out


def convert_file(path: Path) -> int:
    """Replace the plain tokens of a file by their hashes, in place (0600). Returns how many
    were converted; entries already hashed are kept."""
    data = _read(path)
    out: dict[str, str] = {}
    converted = 0
    for n, (key, who) in enumerate(data.items(), start=1):
        if (problem := who_problem(who)) is not None:
            raise ConfigError(f"{path}: entry {n}: {problem}")
        if HASHED.fullmatch(key):
            out[key] = str(who)
        else:
            out[hash_token(key)] = str(who)
            converted += 1
    write_private(path, json.dumps(out, indent=1) + "\n")
    return converted


def add_token(path: Path, who: str) -> str:
    """A new token for ``who``: its hash goes into the file (created 0600 if missing), the
    token is returned, to be shown once."""
    if (problem := who_problem(who)) is not None:
        raise ConfigError(f"{who!r}: {problem}")
    current = load_tokens(path) if path.exists() else {}
    token = new_token()
    current[hash_token(token)] = who
    write_private(path, json.dumps(current, indent=1) + "\n")
    return token
