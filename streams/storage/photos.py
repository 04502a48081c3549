"""The officers' photos of their site visits (现场核查), kept in the proof store by SHA-256
(``proofs.py``: written once, atomically, checked on every read), with a record of which case
of which site each was uploaded for: ``<proof folder>/photos/<site>/<sha256>/<case id>.json``.

The record is what lets the case API take a photo in an officer's findings only if it was
uploaded for that case, and serve it only to who may see that site: a hash alone proves
nothing (the store also holds the enterprises' proofs). It is in the shared folder beside the
bytes, so it survives a restart and any worker reads it, as it reads the proofs.
"""

from __future__ import annotations

import os
import re
import tempfile
from datetime import datetime
from pathlib import Path

from pydantic import AwareDatetime, BaseModel, ConfigDict

from ecowatch.edges.files import private_dir
from ecowatch.streams.storage.proofs import ProofStore

MAX_PHOTO_BYTES = 5 * 1024 * 1024
# The types a phone's camera gives and every browser shows; never SVG or HTML (a page of this
# origin), nor HEIC (which most browsers cannot show).
PHOTO_TYPES = ("image/jpeg", "image/png", "image/webp")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


def image_type(data: bytes) -> str | None:
    """The photo's type from its first bytes (JPEG, PNG or WebP), None for anything else: what
    is served as an image is one, whatever the uploader's Content-Type said."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


class PhotoRecord(BaseModel):
    """A photo uploaded for a case: what the uploader said of it, who and when (data time)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sha256: str
    site: str
    case_id: str
    name: str
    content_type: str
    size: int
    by: str
    at: AwareDatetime


class CasePhotos:
    """Photos by case, in the proof store's folder."""

    def __init__(self, store: ProofStore, max_bytes: int = MAX_PHOTO_BYTES) -> None:
        self.store, self.max_bytes = store, max_bytes
        self.folder = store.folder / "photos"

    def _dir(self, site: str, sha256: str) -> Path:
        if not _NAME.fullmatch(site) or not _SHA256.fullmatch(sha256):
            raise ValueError(f"not a site and a SHA-256: {site[:70]!r}, {sha256[:70]!r}")
        return self.folder / site / sha256

    def _path(self, site: str, sha256: str, case_id: str) -> Path:
        if not _NAME.fullmatch(case_id):
            raise ValueError(f"not a case id: {case_id[:70]!r}")
        return self._dir(site, sha256) / f"{case_id}.json"

    def put(
        self, site: str, case_id: str, data: bytes, name: str, by: str, at: datetime
    ) -> PhotoRecord:
        """Keep the photo (once, however many cases it is uploaded for) and record it for the
        case. ValueError: not a JPEG, PNG or WebP, or over :attr:`max_bytes`."""
        content_type = image_type(data)
        if content_type is None:
            raise ValueError("not a JPEG, PNG or WebP image")
        if len(data) > self.max_bytes:
            raise ValueError(f"{len(data)} bytes; a photo is at most {self.max_bytes}")
        sha256 = self.store.put(data)
        record = PhotoRecord(
            sha256=sha256,
            site=site,
            case_id=case_id,
            name=name,
            content_type=content_type,
            size=len(data),
            by=by,
            at=at,
        )
        target = self._path(site, sha256, case_id)
        private_dir(self.folder)
        private_dir(self.folder / site)
        folder = private_dir(target.parent)
        fd, temp = tempfile.mkstemp(dir=folder, prefix=".record.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(record.model_dump_json().encode())
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, target)  # a record whole or none: the photo is taken or not
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        return record

    def uploaded_for(self, site: str, case_id: str, sha256: str) -> bool:
        """Whether the photo was uploaded for this case of this site."""
        try:
            return self._path(site, sha256, case_id).is_file()
        except ValueError:
            return False

    def record(self, site: str, sha256: str) -> PhotoRecord | None:
        """The photo's record at this site (its first case's), None if it was never uploaded
        for a case of the site."""
        try:
            folder = self._dir(site, sha256)
        except ValueError:
            return None
        try:
            first = min(p for p in folder.iterdir() if p.suffix == ".json")
        except (FileNotFoundError, ValueError):
            return None
        return PhotoRecord.model_validate_json(first.read_bytes())

    def get(self, sha256: str) -> bytes | None:
        """The photo's bytes (:class:`~ecowatch.streams.storage.proofs.ProofDamaged` if they
        no longer match their hash)."""
        return self.store.get(sha256)
