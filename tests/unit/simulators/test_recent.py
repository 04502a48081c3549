"""What an MQTT monitor publishes again after it loses the broker (simulators/recent.py)."""

from __future__ import annotations

from ecowatch.simulators.recent import RecentSends


def sends(recent: RecentSends[str], *timed: tuple[float, str]) -> None:
    for at, reading in timed:
        recent.sent(at, reading)


def test_what_was_sent_in_the_seconds_before_the_loss_is_sent_again_oldest_first() -> None:
    recent: RecentSends[str] = RecentSends(keep=10.0)
    sends(recent, (100.0, "a"), (105.0, "b"), (109.5, "c"))
    recent.lost(111.0)
    sends(recent, (112.0, "d"))  # after the loss: MQTT's own to send again
    assert recent.again() == ["b", "c"]  # "a" is older than 10 s before the loss
    assert recent.again() == []  # once per loss


def test_an_outage_longer_than_the_window_keeps_what_came_before_the_loss() -> None:
    recent: RecentSends[str] = RecentSends(keep=10.0)
    sends(recent, (95.0, "before"), (100.0, "last"))
    recent.lost(100.5)
    sends(recent, *((100.5 + i, f"queued {i}") for i in range(1, 30)))  # 30 s away
    assert recent.again() == ["before", "last"]


def test_a_second_loss_before_the_connection_is_back_keeps_the_first() -> None:
    recent: RecentSends[str] = RecentSends(keep=10.0)
    sends(recent, (50.0, "owed"))
    recent.lost(50.2)
    recent.lost(58.0)  # a failed reconnection
    assert recent.again() == ["owed"]


def test_without_a_loss_nothing_is_sent_again_and_only_the_last_seconds_are_kept() -> None:
    recent: RecentSends[int] = RecentSends(keep=10.0)
    for i in range(200):
        recent.sent(i * 0.5, i)  # 100 s of sends, two a second
    assert len(recent) == 21  # the last 10 s, both ends included
    assert recent.again() == []
