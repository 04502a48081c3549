"""Folders and secret files of the state folder: made with their permissions from the start."""

from __future__ import annotations

import stat
from pathlib import Path

from ecowatch.edges.files import private_dir, write_private


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_private_dir_makes_missing_parents_and_is_0700(tmp_path: Path) -> None:
    target = tmp_path / "state" / "faust" / "ecowatch"
    assert private_dir(target) == target
    assert target.is_dir()
    assert mode(target) == 0o700


def test_private_dir_narrows_an_existing_open_folder(tmp_path: Path) -> None:
    target = tmp_path / "state"
    target.mkdir(mode=0o755)
    target.chmod(0o755)
    private_dir(target)
    assert mode(target) == 0o700


def test_write_private_creates_0600_and_narrows_an_existing_file(tmp_path: Path) -> None:
    fresh = write_private(tmp_path / "new" / "stack.env", "TOKEN=x\n")
    assert fresh.read_text() == "TOKEN=x\n"
    assert mode(fresh) == 0o600

    wide = tmp_path / "tokens.json"
    wide.write_text("old, longer content")
    wide.chmod(0o644)
    write_private(wide, "{}")
    assert mode(wide) == 0o600
    assert wide.read_text() == "{}"
