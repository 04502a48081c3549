"""``make lint``'s layer check: import-linter over the package as it installs.

ecowatch's parts live in top-level folders that install as ``ecowatch.*`` (``package-dir``
in pyproject.toml), and import-linter reads a package from one folder. So this builds that
folder: ``ecowatch/`` of symbolic links to the kernel's files and to each mapped folder, in a
temporary directory, and runs ``lint-imports`` there with the contracts in pyproject.toml.
Run as a script: it imports nothing of ecowatch.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def build_view(into: Path) -> Path:
    mapped = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-dir"
    ]
    package = into / "ecowatch"
    package.mkdir()
    for entry in (ROOT / mapped["ecowatch"]).iterdir():
        if entry.name != "__pycache__":
            (package / entry.name).symlink_to(entry)
    for name, folder in mapped.items():
        if name != "ecowatch":
            (package / name.removeprefix("ecowatch.")).symlink_to(ROOT / folder)
    return package


def main() -> int:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    with tempfile.TemporaryDirectory(prefix="lint-view-") as view:
        build_view(Path(view))
        env = {**os.environ, "PYTHONPATH": view}
        return subprocess.run(
            [str(lint_imports), str(ROOT / "pyproject.toml"), "--no-cache"],
            cwd=view,
            env=env,
        ).returncode


if __name__ == "__main__":
    sys.exit(main())
