"""The catalogue loads the sample city, and every mistake names the file, the entry, the field."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ecowatch.config.catalogue import DeviceModel, load_catalogue
from ecowatch.config.settings import PACKAGE_CATALOGUE, load_settings
from ecowatch.errors import ConfigError


def test_the_sample_city_loads(catalogue):
    assert len(catalogue.sites) >= 7
    entry = catalogue.device("33080200000001")
    assert entry is not None and entry.site.id == "S-OUT-001"
    assert entry.device.model is DeviceModel.OUTFALL_MONITOR
    assert all(site.grid in catalogue.grids for site in catalogue.sites.values())


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    target = tmp_path / "catalogue"
    shutil.copytree(PACKAGE_CATALOGUE, target)
    return target


def broken(folder: Path, find: str, replace: str) -> str:
    path = folder / "sites.yaml"
    text = path.read_text(encoding="utf-8")
    assert find in text
    path.write_text(text.replace(find, replace, 1), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_catalogue(folder)
    return str(err.value)


def test_a_wrong_field_value(folder):
    message = broken(folder, "lat: 28.9545", "lat: north")
    assert "sites.yaml" in message and "'S-OUT-001'" in message and "field 'lat'" in message
    assert "valid number" in message


def test_an_unknown_field(folder):
    message = broken(folder, "    lat: 28.9545", "    latitude: 28.9545\n    lat: 28.9545")
    assert "'S-OUT-001'" in message and "field 'latitude': no such field" in message


def test_a_bad_pollutant_code(folder):
    message = broken(folder, "pollutants: [w00000, w01018, w21003, w01001]}", "pollutants: [COD]}")
    assert "'S-OUT-001'" in message and "devices.0.pollutants.0" in message


def test_a_missing_grid(folder):
    message = broken(folder, "grid: G-KC-01", "grid: G-XX-99")
    assert "'S-OUT-001'" in message and "field 'grid'" in message and "G-XX-99" in message


def test_a_device_installed_twice(folder):
    message = broken(folder, '"33080200000002"', '"33080200000001"')
    assert "'S-OUT-002'" in message and "already installed at site 'S-OUT-001'" in message


def test_a_duplicate_site(folder):
    message = broken(folder, "id: S-OUT-002", "id: S-OUT-001")
    assert "duplicate id" in message and "sites.yaml" in message


def test_yaml_that_does_not_parse(folder):
    message = broken(folder, "sites:", "sites: [")
    assert "sites.yaml" in message and "not valid YAML" in message


def test_an_empty_folder(tmp_path):
    with pytest.raises(ConfigError, match="no catalogue files"):
        load_catalogue(tmp_path)


def test_a_bad_setting_names_the_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("ECOWATCH_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("ECOWATCH_MQTT_URL", "http://example")
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert "ECOWATCH_MQTT_URL" in str(err.value) and "mqtt://HOST:PORT" in str(err.value)


def test_the_state_env_file_is_read_and_the_environment_wins(monkeypatch, tmp_path):
    monkeypatch.setenv("ECOWATCH_STATE_DIR", str(tmp_path))
    (tmp_path / "stack.env").write_text(
        "ECOWATCH_INFLUX_TOKEN=from-file\nECOWATCH_MQTT_PASSWORD=p1\n"
    )
    monkeypatch.delenv("ECOWATCH_INFLUX_TOKEN", raising=False)
    monkeypatch.setenv("ECOWATCH_MQTT_PASSWORD", "from-env")
    settings = load_settings()
    assert settings.influx_token == "from-file"
    assert settings.mqtt_password == "from-env"
