"""Every ``from ecowatch… import name`` in the source names something that exists, the ones
inside functions too: those run only on their own path (the soak's import of a class the
drill no longer had failed only in the soak session of ``make test``)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("ecowatch", "edges", "config", "ingest", "streams", "alerts", "simulators")
SOURCES += ("console", "cli", "devtools", "grafana")


def _imports() -> list[tuple[str, int, str, str]]:
    found = []
    for folder in SOURCES:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ecowatch"):
                    rel = str(path.relative_to(ROOT))
                    found += [(rel, node.lineno, node.module or "", a.name) for a in node.names]
    return found


def _exists(module: str, name: str) -> bool:
    try:
        imported = importlib.import_module(module)
    except ImportError:
        return False
    if hasattr(imported, name):
        return True
    try:
        importlib.import_module(f"{module}.{name}")
    except ImportError:
        return False
    return True


def test_every_import_of_ecowatch_names_what_exists() -> None:
    imports = _imports()
    assert len(imports) > 500  # the walk found the source
    missing = [f"{f}:{line}: {m} has no {n}" for f, line, m, n in imports if not _exists(m, n)]
    assert not missing, "\n".join(missing)


def test_the_check_sees_a_name_that_is_not_there() -> None:
    assert _exists("ecowatch.devtools.watch", "ChildProcess")
    assert not _exists("ecowatch.devtools.drill", "Stage")
