"""The fault drill's HJ 212 monitor (devtools/drill.py on simulators/hj212_link.py) against a
small local platform over real TCP: every reading it publishes is acknowledged in the drill's
ledger, through an outage of its own and through the server hanging up on it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from ecowatch.config.catalogue import Catalogue
from ecowatch.config.settings import Settings
from ecowatch.devtools.drill import COUNTED_POLLUTANT, Hj212Device, Ledger
from ecowatch.ingest import hj212
from tests.component.simulators.test_hj212_link import Platform, until

BASE = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def test_the_drill_s_monitor_has_every_reading_acknowledged_through_outages(
    catalogue: Catalogue,
) -> None:
    entry = next(
        e
        for e in catalogue.devices.values()
        if e.device.model.value == "outfall_monitor" and COUNTED_POLLUTANT in e.device.pollutants
    )
    device_id = entry.device.id
    ledger = Ledger({device_id: "hj212"})

    async def run() -> tuple[Platform, Hj212Device]:
        async with Platform() as platform:
            settings = Settings(hj212_host="127.0.0.1", hj212_port=platform.port)
            device = Hj212Device(
                entry, 1, ledger, BASE, settings=settings, password="Pw1234", address="127.0.0.9"
            )
            device.start()
            await until(lambda: device.connected)
            for _ in range(3):
                device.send_next()
            await until(lambda: ledger.acknowledged == 3)
            # Off the network: it keeps measuring and keeps what it measured.
            device.go_offline()
            for _ in range(4):
                device.send_next()
            assert (device.kept, device.kept_total, device.connected) == (4, 4, False)
            device.come_back()  # reconnects by itself and resends what it kept, RF=1
            await until(lambda: ledger.acknowledged == 7)
            # The server hangs up with one reading unanswered: sent again once connected.
            platform.answering = False
            device.send_next()
            await platform.wait_for(8)
            platform.hang_up()
            platform.held.clear()
            platform.answering = True
            await until(lambda: ledger.acknowledged == 8)
            await device.close()
        return platform, device

    platform, device = asyncio.run(run())
    packets = platform.packets()
    assert platform.connections == 3 and set(platform.peers) == {"127.0.0.9"}
    assert [p.rf for p in packets[3:7]] == [1, 1, 1, 1] and device.kept_resent == 4
    assert all(p.version is hj212.Version.V2025 and p.mn == device_id for p in packets)
    assert packets[-1].data_time == packets[-2].data_time  # the unanswered one, again
    assert ledger.snapshot() == {device_id: (7, 8)}
