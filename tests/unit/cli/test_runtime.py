"""The long-running commands' shared runtime (cli/runtime.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from ecowatch.cli.runtime import GC_YOUNG_THRESHOLD, tune_gc


@pytest.fixture
def gc_restored() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_tune_gc_freezes_what_is_loaded_and_collects_young_objects_less_often(
    gc_restored: None,
) -> None:
    kept = object.__new__(type("Loaded", (), {}))  # something that exists before the call
    _, middle, old = gc.get_threshold()
    tune_gc()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (GC_YOUNG_THRESHOLD, middle, old)
    # Frozen objects are outside every generation: no collection scans them again.
    assert not any(o is kept for o in gc.get_objects())
