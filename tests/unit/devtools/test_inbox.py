"""The demo's inbox: apprise delivers to it over HTTP as it would to any json:// endpoint."""

from __future__ import annotations

import threading

import apprise

from ecowatch.devtools.inbox import Inbox, Received, inbox_env, officer_tokens, people_env


def test_everyone_in_the_catalogue_has_a_variable_and_set_ones_are_kept(catalogue):
    people = people_env(catalogue)
    assert people["ECOWATCH_NOTIFY_E_001"] == "E-001"
    assert people["ECOWATCH_NOTIFY_S_KC"] == "S-KC"
    env = inbox_env(catalogue, 8123, {"ECOWATCH_NOTIFY_E_001": "mailto://real@example.org"})
    assert "ECOWATCH_NOTIFY_E_001" not in env  # a real URL is never overridden
    assert env["ECOWATCH_NOTIFY_O_KC_01"] == "json://127.0.0.1:8123/O-KC-01"
    assert len(env) == len(people) - 1


def test_officer_tokens_are_fresh_and_name_every_officer(catalogue):
    a, b = officer_tokens(catalogue), officer_tokens(catalogue)
    assert set(a.values()) == {o.id for g in catalogue.grids.values() for o in g.officers}
    assert not set(a) & set(b)


def test_apprise_delivers_to_the_inbox_per_recipient():
    got: list[Received] = []
    arrived = threading.Event()

    def on_message(r: Received) -> None:
        got.append(r)
        arrived.set()

    with Inbox(on_message) as inbox:
        sender = apprise.Apprise()
        assert sender.add(f"json://127.0.0.1:{inbox.port}/O-KC-01")
        assert sender.notify(title="【执法】柯城", body="COD 超标 2.00 倍")
        assert arrived.wait(5)
    assert got == [Received("O-KC-01", "【执法】柯城", "COD 超标 2.00 倍")]
