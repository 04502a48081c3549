"""The case API's tokens file keeps hashes only; plain tokens are refused with the way out."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import pytest

from ecowatch.edges.tokens import (
    add_token,
    convert_file,
    hash_token,
    hashed,
    identify,
    load_tokens,
    who_problem,
)
from ecowatch.errors import ConfigError


def test_a_token_is_kept_as_its_sha256():
    assert hash_token("tok") == "sha256:" + hashlib.sha256(b"tok").hexdigest()
    tokens = hashed({"tok": "O-KC-01", "ops": "operator:night"})
    assert "tok" not in json.dumps(tokens)
    assert identify(tokens, "tok") == "O-KC-01"
    assert identify(tokens, "ops") == "operator:night"
    assert identify(tokens, "") is None and identify(tokens, "tok ") is None
    assert identify(tokens, hash_token("tok")) is None  # the hash is not a token


def test_the_file_of_hashes_is_read(tmp_path: Path):
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps(hashed({"a": "O-KC-01", "b": "operator:x"})))
    assert load_tokens(path) == {hash_token("a"): "O-KC-01", hash_token("b"): "operator:x"}
    assert load_tokens(None) == {}


def test_a_file_of_plain_tokens_is_refused_without_showing_them(tmp_path: Path):
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps({"secret-token-1": "O-KC-01", hash_token("b"): "O-KC-02"}))
    with pytest.raises(ConfigError) as info:
        load_tokens(path)
    message = str(info.value)
    assert str(path) in message and "ecowatch tokens convert" in message
    assert "1 of its 2 entries are not token hashes" in message
    assert "secret-token-1" not in message


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[]", "expected a JSON object"),
        ("{", "expected a JSON object"),
        (json.dumps({hash_token("a"): 5}), "entry 1"),
        (json.dumps({hash_token("a"): "operator:"}), "an operator needs a name"),
        (json.dumps({hash_token("a"): " O-KC-01"}), "entry 1"),
    ],
)
def test_a_broken_file_names_itself_and_what_was_expected(tmp_path: Path, text, match):
    path = tmp_path / "tokens.json"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_tokens(path)


def test_a_missing_file_says_how_to_make_one(tmp_path: Path):
    with pytest.raises(ConfigError, match="ecowatch tokens add"):
        load_tokens(tmp_path / "none.json")


def test_convert_keeps_the_tokens_and_stores_their_hashes(tmp_path: Path):
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps({"plain": "O-KC-01", hash_token("b"): "operator:x"}))
    path.chmod(0o644)
    assert convert_file(path) == 1
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    tokens = load_tokens(path)
    assert identify(tokens, "plain") == "O-KC-01" and identify(tokens, "b") == "operator:x"
    assert "plain" not in path.read_text()


def test_add_prints_a_new_token_once_and_keeps_its_hash(tmp_path: Path):
    path = tmp_path / "private" / "tokens.json"
    first = add_token(path, "O-KC-01")
    second = add_token(path, "S-KC")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) >= 40 and first != second
    text = path.read_text()
    assert first not in text and second not in text
    tokens = load_tokens(path)
    assert identify(tokens, first) == "O-KC-01" and identify(tokens, second) == "S-KC"
    with pytest.raises(ConfigError):
        add_token(path, "operator:")


def test_who_may_hold_a_token():
    assert who_problem("O-KC-01") is None and who_problem("operator:night") is None
    assert who_problem("") and who_problem("operator: ") and who_problem(3)


def test_an_enterprise_may_hold_a_token(tmp_path: Path):
    assert who_problem("enterprise:E-031") is None
    assert "enterprise:<id>" in (who_problem("enterprise:") or "")
    assert "enterprise:<id>" in (who_problem("enterprise: E-031") or "")
    path = tmp_path / "tokens.json"
    token = add_token(path, "enterprise:E-031")
    assert identify(load_tokens(path), token) == "enterprise:E-031"
    with pytest.raises(ConfigError, match="enterprise:<id>"):
        add_token(path, "enterprise:")
