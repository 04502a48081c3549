"""The proof store (streams/storage/proofs.py): by hash, written whole, private, and never
serving bytes that no longer match their hash."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from ecowatch.streams.storage import proofs
from ecowatch.streams.storage.proofs import MAX_PROOF_BYTES, ProofDamaged, ProofStore, ProofTooLarge

DOC = "停炉检修通知".encode() * 100


def test_a_document_is_kept_by_its_sha256_and_read_back(tmp_path: Path) -> None:
    store = ProofStore(tmp_path / "proofs")
    sha = store.put(DOC)
    assert sha == hashlib.sha256(DOC).hexdigest()
    assert store.path(sha) == tmp_path / "proofs" / sha[:2] / sha
    assert store.get(sha) == DOC
    assert store.put(DOC) == sha  # the same document again: kept once
    assert store.get("0" * 64) is None


def test_the_folders_are_0700_and_the_files_0600(tmp_path: Path) -> None:
    old = os.umask(0)  # the most permissive: the store narrows what it makes itself
    try:
        store = ProofStore(tmp_path / "proofs")
        sha = store.put(DOC)
    finally:
        os.umask(old)
    assert stat.S_IMODE(store.folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(store.path(sha).parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(store.path(sha).stat().st_mode) == 0o600


def test_bytes_that_no_longer_match_are_reported_not_served(tmp_path: Path) -> None:
    store = ProofStore(tmp_path)
    sha = store.put(DOC)
    store.path(sha).write_bytes(DOC[:-1] + b"!")
    with pytest.raises(ProofDamaged, match="no longer hash") as info:
        store.get(sha)
    assert info.value.sha256 == sha
    assert store.put(DOC) == sha and store.get(sha) == DOC  # sent again: written again


def test_the_size_cap(tmp_path: Path) -> None:
    assert MAX_PROOF_BYTES == 10 * 1024 * 1024
    store = ProofStore(tmp_path, max_bytes=100)
    assert store.get(store.put(b"x" * 100)) == b"x" * 100
    with pytest.raises(ProofTooLarge, match="101 bytes; a proof is at most 100"):
        store.put(b"x" * 101)
    with pytest.raises(ValueError, match="empty"):
        store.put(b"")
    # A file grown past the cap on disk is not read whole, and not served.
    sha = hashlib.sha256(b"y" * 50).hexdigest()
    store.path(sha).parent.mkdir(parents=True, exist_ok=True)
    store.path(sha).write_bytes(b"y" * 500)
    with pytest.raises(ProofDamaged):
        store.get(sha)


@pytest.mark.parametrize("name", ["", "AB" * 32, "../" + "a" * 61, "a" * 63, "g" * 64])
def test_only_a_sha256_names_a_proof(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="not a SHA-256"):
        ProofStore(tmp_path).get(name)


def test_a_failed_write_leaves_neither_the_proof_nor_a_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ProofStore(tmp_path)
    synced: list[int] = []

    def failing_replace(src: str, dst: Path) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(proofs.os, "fsync", lambda fd: synced.append(fd))
    monkeypatch.setattr(proofs.os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        store.put(DOC)
    assert synced  # the bytes were flushed to disk before the rename was tried
    sha = hashlib.sha256(DOC).hexdigest()
    assert store.get(sha) is None
    assert list(store.path(sha).parent.iterdir()) == []


def test_a_write_is_renamed_into_place_after_its_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ProofStore(tmp_path)
    calls: list[str] = []
    fsync, replace = os.fsync, os.replace

    def spy_fsync(fd: int) -> None:
        calls.append("fsync")
        fsync(fd)

    def spy_replace(src: str, dst: Path) -> None:
        assert Path(src).parent == Path(dst).parent  # one filesystem: an atomic rename
        assert Path(src).name.startswith(".") and not Path(dst).exists()
        calls.append("replace")
        replace(src, dst)

    monkeypatch.setattr(proofs.os, "fsync", spy_fsync)
    monkeypatch.setattr(proofs.os, "replace", spy_replace)
    store.put(DOC)
    assert calls == ["fsync", "replace", "fsync"]  # the file, the rename, the folder
