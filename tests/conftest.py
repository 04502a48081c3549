"""Shared fixtures. Tests mirror the source tree: unit/ for the pure core, integration/ for the
pipeline on the real local stack (see integration/conftest.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from ecowatch.config.catalogue import Catalogue, load_catalogue
from ecowatch.config.settings import PACKAGE_CATALOGUE

NOW = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)


@pytest.fixture(scope="session")
def catalogue() -> Catalogue:
    return load_catalogue(PACKAGE_CATALOGUE)


@pytest.fixture
def now() -> datetime:
    return NOW


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]
