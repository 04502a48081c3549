"""Settings that other processes rely on are checked when they are read."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ecowatch.config.settings import Settings


def test_a_worker_is_found_where_it_listens_unless_it_says_otherwise():
    assert Settings().web_url == ""  # Faust's canonical URL is then http://<web_host>:<web_port>
    assert Settings(web_url="http://worker-2:6066").web_url == "http://worker-2:6066"


@pytest.mark.parametrize(
    "url",
    [
        "worker-2:6066",  # no scheme
        "http://worker-2",  # no port: Faust would announce port 80
        "mqtt://worker-2:6066",
        "http://0.0.0.0:6066",  # where it listens, not where the others find it
    ],
)
def test_a_web_url_the_other_workers_cannot_reach_is_refused(url):
    with pytest.raises(ValidationError, match="web_url"):
        Settings(web_url=url)


def test_there_is_no_default_catalogue_and_the_worker_says_what_to_set(monkeypatch, capsys) -> None:
    from ecowatch.cli import main
    from ecowatch.errors import ConfigError

    monkeypatch.delenv("ECOWATCH_CATALOGUE", raising=False)
    with pytest.raises(ConfigError, match="ECOWATCH_CATALOGUE is not set"):
        Settings(_env_file=None).catalogue_folder()  # type: ignore[call-arg]
    monkeypatch.setattr("sys.argv", ["ecowatch", "worker"])
    with pytest.raises(SystemExit) as exit_:
        main()
    assert exit_.value.code == 2  # before any service is asked anything
    assert "ECOWATCH_CATALOGUE is not set" in capsys.readouterr().err
