"""Shared fixtures. Tests mirror the source tree: unit/ for the pure core, integration/ for the
pipeline on the real local stack (see integration/conftest.py)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ecowatch.config.catalogue import Catalogue, load_catalogue
from ecowatch.config.settings import DEMO_CATALOGUE
from tests.catalogue import synthetic_catalogue

NOW = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)

# The platform has no default catalogue: the tests name the demo city, for themselves and for
# every process they start (a test may name another in its processes' environment).
os.environ.setdefault("ECOWATCH_CATALOGUE", str(DEMO_CATALOGUE))


@pytest.fixture(scope="session")
def catalogue(tmp_path_factory: pytest.TempPathFactory) -> Catalogue:
    """The small synthetic city of tests/catalogue.py, read by the loader."""
    return synthetic_catalogue(tmp_path_factory.mktemp("catalogue"))


@pytest.fixture(scope="session")
def demo_city() -> Catalogue:
    """The demo city (config/catalogue/): for the demo's own tests, and the processes of the
    integration tests, which run it."""
    return load_catalogue(DEMO_CATALOGUE)


@pytest.fixture
def now() -> datetime:
    return NOW


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]


@pytest.hookimpl(trylast=True)  # after -m has chosen
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A soak or storm test collected with other tests is left out, counted as deselected:
    the soak drives every catalogue device, which the others' workers would judge too, and
    the storm kills the services under them. Each runs in a session of its own (`pytest -m
    soak`, `pytest -m storm`)."""
    for marker in ("soak", "storm"):
        alone = [item for item in items if item.get_closest_marker(marker)]
        if alone and len(alone) < len(items):
            items[:] = [item for item in items if not item.get_closest_marker(marker)]
            config.hook.pytest_deselected(items=alone)
