"""How the demo ends: the first Ctrl-C stops the devices and the bridge, the worker judges what
they handed over, the week's table is printed, then the worker stops; the second stops at once.
"""

from __future__ import annotations

import asyncio
import os
import signal

from ecowatch.cli.demo import Drain, Stopping


def test_the_first_signal_stops_the_devices_and_says_how_to_stop_at_once() -> None:
    said: list[str] = []
    stopping = Stopping(asyncio.Event(), said.append)
    stopping()
    assert stopping.stop.is_set() and not stopping.at_once
    assert said == [
        "stopping: devices and bridge first, then the weekly table; Ctrl-C again to stop at once"
    ]


def test_real_signals_first_stop_the_devices_then_cancel_everything() -> None:
    """SIGINT, then SIGTERM, to this process, taken by the loop as the demo's are."""
    said: list[str] = []
    order: list[str] = []

    async def main(stopping: Stopping) -> None:
        stopping.install()
        try:
            os.kill(os.getpid(), signal.SIGINT)  # the terminal's Ctrl-C
            await asyncio.wait_for(stopping.stop.wait(), 5)
            order.append("devices and bridge stopped")
            os.kill(os.getpid(), signal.SIGTERM)  # the second: stop at once
            await asyncio.sleep(5)
            order.append("the weekly table")  # never reached
        except asyncio.CancelledError:
            order.append("cancelled")
            raise

    stopping = Stopping(asyncio.Event(), said.append)
    try:
        asyncio.run(main(stopping))
    except asyncio.CancelledError:
        order.append("at once")
    assert order == ["devices and bridge stopped", "cancelled", "at once"]
    assert stopping.at_once
    assert said == [Stopping.FIRST, Stopping.AT_ONCE]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # given back


def test_a_signal_while_already_stopping_stops_at_once_and_only_once() -> None:
    """After --duration ran out, the first Ctrl-C is the impatient one."""
    said: list[str] = []

    async def main() -> None:
        stopping = Stopping(asyncio.Event(), said.append)
        stopping.task = asyncio.current_task()
        stopping.stop.set()  # the demo's time is up: stopping on its own
        stopping()
        stopping()  # a third Ctrl-C cancels nothing more
        assert stopping.at_once
        await asyncio.sleep(1)

    try:
        asyncio.run(main())
    except asyncio.CancelledError:
        said.append("cancelled")
    assert said == [Stopping.AT_ONCE, "cancelled"]


def counts(judged: int, stored: int | None = None) -> dict:
    return {"judged_readings": judged, "stored_readings": judged if stored is None else stored}


def test_drained_once_the_worker_has_judged_what_was_bridged_and_stands_still() -> None:
    drain = Drain(bridged=120, judged_before=40, started=0.0)
    assert drain.observe(0.0, counts(100)) is None  # 60 of 120
    assert drain.observe(0.5, counts(150)) is None  # 110
    assert drain.observe(1.0, counts(160)) is None  # 120, but it moved since the last look
    assert drain.observe(1.5, counts(160)) == "worker: judged the 120 readings bridged (1.5 s)"


def test_drained_when_its_counts_stand_still_short_of_what_was_bridged() -> None:
    """A resend the worker already had is not judged again: the count may never get there."""
    drain = Drain(bridged=120, judged_before=0, started=0.0, quiet=3.0)
    assert drain.observe(0.0, counts(110)) is None
    assert drain.observe(1.0, counts(117)) is None
    assert drain.observe(2.0, counts(117, stored=118)) is None  # storing still moves
    assert drain.observe(4.5, counts(117, stored=118)) is None
    assert drain.observe(5.0, counts(117, stored=118)) == (
        "worker: judged 117 of the 120 readings bridged; its counts stood still for 3 s"
    )


def test_the_drain_is_bounded_while_the_worker_keeps_moving() -> None:
    drain = Drain(bridged=10_000, judged_before=0, started=0.0, limit=30.0)
    said = None
    for step in range(100):
        said = drain.observe(step * 0.5, counts(step * 10))
        if said:
            break
    assert said == (
        "worker: judged 600 of the 10000 readings bridged within 30 s; the table may miss the rest"
    )


def test_a_worker_that_does_not_answer_stands_still() -> None:
    drain = Drain(bridged=5, judged_before=0, started=0.0, quiet=3.0)
    assert drain.observe(0.5, None) is None
    assert drain.observe(3.0, None) == (
        "worker: judged 0 of the 5 readings bridged; its counts stood still for 3 s"
    )
