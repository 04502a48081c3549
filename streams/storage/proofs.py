"""The enterprises' proofs of their marks (标记): documents and photos kept by their SHA-256 in a
folder (ECOWATCH_PROOF_DIR, default ``<state>/proofs``), as ``<2 hex>/<sha256>``.

A proof is written once and atomically (a temporary file, fsync, rename, fsync of the folder),
so a crash leaves the whole document or none; the marks say which proofs they hold, the folder
holds each document once, whoever sent it. The folder is 0700 and the files 0600. A read hashes
the bytes again: a file that no longer matches its name (a failing disk, a hand that edited it)
is reported (:class:`ProofDamaged`), never served.

Several workers must share the folder (a replicated volume, mounted at the same path on each):
a proof is stored by the worker that holds its mark's site, and any worker may be asked for it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
from pathlib import Path

from ecowatch.edges.files import private_dir

log = logging.getLogger(__name__)

MAX_PROOF_BYTES = 10 * 1024 * 1024  # one document or photo, not a video
SHA256 = re.compile(r"[0-9a-f]{64}")


class ProofTooLarge(ValueError):
    """A document over the store's size cap."""


class ProofDamaged(Exception):
    """A stored file whose bytes no longer hash to its name."""

    def __init__(self, sha256: str, path: Path) -> None:
        super().__init__(f"{path}: its bytes no longer hash to {sha256}: not served")
        self.sha256, self.path = sha256, path


class ProofStore:
    """Documents by their SHA-256 (lower-case hex) in ``folder``."""

    def __init__(self, folder: Path, max_bytes: int = MAX_PROOF_BYTES) -> None:
        self.folder, self.max_bytes = folder, max_bytes

    def path(self, sha256: str) -> Path:
        if not SHA256.fullmatch(sha256):
            raise ValueError(f"not a SHA-256 in lower-case hex: {sha256[:70]!r}")
        # Two hex digits of fan-out: a folder of a million proofs is slow to list, 256 are not.
        return self.folder / sha256[:2] / sha256

    def put(self, data: bytes) -> str:
        """Keep ``data`` (once: a document already kept intact is not written again); its
        SHA-256."""
        if not data:
            raise ValueError("an empty document proves nothing")
        if len(data) > self.max_bytes:
            raise ProofTooLarge(f"{len(data)} bytes; a proof is at most {self.max_bytes} bytes")
        sha256 = hashlib.sha256(data).hexdigest()
        target = self.path(sha256)
        try:
            if self.get(sha256) is not None:
                return sha256
        except ProofDamaged as exc:
            log.warning("proof store: %s; writing it again from the bytes just sent", exc)
        private_dir(self.folder)
        folder = private_dir(target.parent)
        fd, temp = tempfile.mkstemp(dir=folder, prefix=f".{sha256[:16]}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:  # mkstemp makes it 0600
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, target)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        _fsync_dir(folder)  # the rename itself survives a crash
        return sha256

    def get(self, sha256: str) -> bytes | None:
        """The document, None if the store has none of that hash; :class:`ProofDamaged` if the
        file's bytes no longer match it."""
        path = self.path(sha256)
        try:
            with path.open("rb") as f:
                data = f.read(self.max_bytes + 1)  # a file grown past the cap is damaged too
        except FileNotFoundError:
            return None
        if hashlib.sha256(data).hexdigest() != sha256:
            exc = ProofDamaged(sha256, path)
            log.error("proof store: %s", exc)
            raise exc
        return data


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
