"""The Mosquitto config the stack writes: its connection limit follows the catalogue."""

from __future__ import annotations

from pathlib import Path

import pytest

from ecowatch.config.catalogue import Catalogue
from ecowatch.config.settings import Settings
from ecowatch.devtools.stack import services
from ecowatch.devtools.stack.services import BRIDGE_USERS, Mosquitto


def test_the_broker_takes_every_device_twice_the_bridges_and_headroom(
    tmp_path: Path, catalogue: Catalogue, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(services, "_run", lambda *args, **kwargs: "")  # mosquitto_passwd
    mosquitto = Mosquitto(Settings(state_dir=tmp_path / "state"), catalogue)
    mosquitto.configure()
    lines = (mosquitto.dir / "mosquitto.conf").read_text().splitlines()
    wanted = 2 * len(catalogue.devices) + len(BRIDGE_USERS) + 64
    assert f"max_connections {wanted}" in lines
    # A listener's setting: after its listener line.
    assert lines.index(f"max_connections {wanted}") > next(
        i for i, line in enumerate(lines) if line.startswith("listener ")
    )
