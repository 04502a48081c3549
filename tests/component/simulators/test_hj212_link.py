"""The simulators' HJ 212 link (simulators/hj212_link.py), as the fleet and the drill use it:
each version's packets, SM4 for 2025, acknowledgements filed by QN, the RF=1 resend of what a
2025 monitor measured while off the network (paced, for the drill), and the drill's resends
of what was not answered. The bytes are read back with the real codec, over real TCP
connections to a small local platform that answers as the server does (or holds back)."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from ecowatch.cli.fleet import simulate
from ecowatch.clock import CHINA
from ecowatch.config.catalogue import Catalogue
from ecowatch.config.settings import Settings
from ecowatch.ingest import hj212
from ecowatch.schema import DataFlag, DeviceReading, Measurement
from ecowatch.simulators.city import FleetPlan, build_fleet, choose_devices
from ecowatch.simulators.fleet import FleetStats, Hj212Link, SimulatedDevice
from ecowatch.simulators.hj212_link import Hj212Dialect, Hj212Uplink, Retry
from ecowatch.simulators.models import Mode, OutfallMonitor

MN = "33080200000001"
PW = "Pw1234"
KEY = bytes.fromhex("0123456789abcdeffedcba9876543210")
T0 = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)
V2005, V2017, V2025 = hj212.Version.V2005, hj212.Version.V2017, hj212.Version.V2025


def reading(at: datetime = T0) -> DeviceReading:
    return DeviceReading(
        ts=at,
        values={
            "w01018": Measurement(value=42.5),
            "w00000": Measurement(value=3.0, flag=DataFlag.STOPPED),
        },
    )


def link(
    dialect: Hj212Dialect, port: int = 9, stats: FleetStats | None = None, **kw: int
) -> Hj212Link:
    return Hj212Link(
        MN, "32", "127.0.0.1", port, stats or FleetStats(), password=PW, dialect=dialect, **kw
    )


def cp_text(data: bytes) -> bytes:
    return data[data.index(b"CP=&&") + 5 : data.rindex(b"&&")]


class Platform:
    """A local HJ 212 endpoint: keeps every frame in order and answers 9014 to each packet that
    asks for an answer, in the packet's version, as the platform's server does. While not
    ``answering`` it holds its answers back until :meth:`release`; a garbled frame is counted
    and not answered."""

    def __init__(self, key: bytes | None = None) -> None:
        self.key = key
        self.frames: list[bytes] = []
        self.answers = 0
        self.refused = 0
        self.connections = 0
        self.peers: list[str] = []
        self.port = 0
        self.answering = True
        self.held: list[tuple[asyncio.StreamWriter, bytes]] = []
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Platform:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        if self._handlers:  # each ends once its device has closed the connection
            await asyncio.wait(self._handlers, timeout=5)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.peers.append(writer.get_extra_info("peername")[0])
        self._writers.append(writer)
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        framer = hj212.Framer()
        try:
            while data := await reader.read(4096):
                for frame in framer.feed(data):
                    if not isinstance(frame, bytes):  # the framer's verdict: garbled
                        self.refused += 1
                        continue
                    self.frames.append(frame)
                    packet = hj212.parse(frame, self.key)
                    if packet.wants_answer:
                        answer = hj212.build(hj212.data_answer(packet)).encode()
                        if self.answering:
                            writer.write(answer)
                            self.answers += 1
                        else:
                            self.held.append((writer, answer))
        except ConnectionError:
            pass  # a device that drops its link
        finally:
            writer.close()

    def release(self, newest_first: bool = False) -> None:
        """The answers held back, then answer at once again."""
        held = self.held[::-1] if newest_first else self.held
        for writer, answer in held:
            if not writer.is_closing():
                writer.write(answer)
                self.answers += 1
        self.held.clear()
        self.answering = True

    def hang_up(self) -> None:
        """The server ends every connection (a restart, say), and keeps listening."""
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()

    def packets(self) -> list[hj212.Packet]:
        return [hj212.parse(frame, self.key) for frame in self.frames]

    async def wait_for(self, frames: int, timeout: float = 5.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.frames) < frames:
                await asyncio.sleep(0.01)


async def until(condition, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


# -- what each version writes ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dialect", "qn", "flag"),
    [
        (Hj212Dialect(V2005), False, None),
        (Hj212Dialect(), True, 5),  # the default: 2017, as the simulator always spoke
        (Hj212Dialect(V2025), True, 9),
        (Hj212Dialect(V2025, KEY), True, 9),
    ],
    ids=["2005", "2017", "2025", "2025-sm4"],
)
def test_each_version_writes_what_the_codec_reads_as_that_version(
    dialect: Hj212Dialect, qn: bool, flag: int | None
) -> None:
    async def run() -> tuple[Platform, FleetStats]:
        stats = FleetStats()
        async with Platform(dialect.key) as platform:
            device = link(dialect, platform.port, stats)
            await device.open()
            device.send(reading(), garble=False)
            await platform.wait_for(1)
            await until(lambda: stats.published == 1)
            device.close()
        return platform, stats

    platform, stats = asyncio.run(run())
    (packet,) = platform.packets()
    assert packet.version is dialect.version
    assert packet.flag == flag
    assert packet.encrypted is (dialect.key is not None)
    assert (packet.qn is not None) is qn
    if qn:
        assert packet.qn == T0.astimezone(CHINA).strftime("%Y%m%d%H%M%S") + "000"
    assert packet.rf is None  # a live reading
    assert (packet.st, packet.cn, packet.mn, packet.pw) == ("32", "2011", MN, PW)
    assert packet.data_time == T0.astimezone(CHINA).strftime("%Y%m%d%H%M%S")  # 14 digits
    assert hj212.to_device_reading(packet) == (MN, reading())
    # 2005 asks for no answer and gets none: it counts as acknowledged once written.
    assert platform.answers == (0 if flag is None else 1)
    assert (stats.published, stats.resent) == (1, 0)


def uplink(dialect: Hj212Dialect) -> Hj212Uplink[None]:
    return Hj212Uplink(MN, "32", "127.0.0.1", 9, lambda _: None, password=PW, dialect=dialect)


def test_a_2005_device_that_wants_answers_sends_flag_1_and_a_qn() -> None:
    packet = hj212.parse(uplink(Hj212Dialect(V2005, answers=True)).packet(reading()))
    assert (packet.version, packet.flag, packet.wants_answer) == (V2005, 1, True)
    assert packet.qn is not None and len(packet.qn) == 17


def test_a_key_encrypts_only_a_2025_device() -> None:
    assert not Hj212Dialect(V2017, KEY).encrypts
    assert not Hj212Dialect(V2005, KEY).encrypts
    assert Hj212Dialect(V2025, KEY).encrypts
    data = uplink(Hj212Dialect(V2017, KEY)).packet(reading())
    assert hj212.parse(data).version is V2017  # plain: no key needed


def test_an_encrypted_2025_packet_hides_its_cp_and_is_unreadable_without_the_key() -> None:
    plain = uplink(Hj212Dialect(V2025)).packet(reading())
    secret = uplink(Hj212Dialect(V2025, KEY)).packet(reading())
    assert b"w01018-Rtd=42.5" in cp_text(plain)
    assert cp_text(plain) not in secret and b"w01018" not in secret
    assert b"DataTime=" not in secret
    # The header stays plain: the platform finds the device (and its key) by MN.
    assert f"MN={MN};Flag=9;CP=&&".encode() in secret
    with pytest.raises(hj212.CrcMismatch):
        hj212.parse(secret)
    with pytest.raises(hj212.CrcMismatch):
        hj212.parse(secret, bytes(16))  # another key
    packet = hj212.parse(secret, KEY)
    assert packet.encrypted and packet.version is V2025
    assert hj212.to_device_reading(packet) == (MN, reading())


# -- an outage -------------------------------------------------------------------------------


def outage(
    dialect: Hj212Dialect, offline_ticks: int, **kw: int
) -> tuple[list[hj212.Packet], list[datetime], FleetStats, Platform]:
    """One reading online, ``offline_ticks`` off the network, then one back online: what the
    platform received, the tick times, and the fleet's counts."""
    times = [T0 + timedelta(minutes=i) for i in range(offline_ticks + 2)]

    async def run() -> tuple[Platform, FleetStats]:
        stats = FleetStats()
        async with Platform(dialect.key) as platform:
            model = OutfallMonitor(MN, 7)
            device = SimulatedDevice(model, link(dialect, platform.port, stats, **kw), stats)
            await device.tick(times[0])
            await platform.wait_for(1)
            model.set_mode(Mode.OFFLINE)
            for at in times[1:-1]:
                await device.tick(at)
            assert not device.online
            model.set_mode(Mode.OFFLINE, on=False)
            await device.tick(times[-1])
            await until(lambda: stats.published == stats.sent + stats.resent)
            await platform.wait_for(stats.sent + stats.resent)
            device.close()
        return platform, stats

    platform, stats = asyncio.run(run())
    return platform.packets(), times, stats, platform


def local(at: datetime) -> str:
    return at.astimezone(CHINA).strftime("%Y%m%d%H%M%S")


def test_back_from_an_outage_a_2025_device_sends_its_live_reading_then_the_kept_ones() -> None:
    packets, times, stats, platform = outage(Hj212Dialect(V2025, KEY), offline_ticks=3)
    assert platform.connections == 2  # the link was dropped, then opened again
    assert [(p.data_time, p.rf) for p in packets] == [
        (local(times[0]), None),
        (local(times[4]), None),  # live first (HJ 212-2025 §8.1.2)
        (local(times[1]), 1),
        (local(times[2]), 1),
        (local(times[3]), 1),
    ]
    assert all(p.encrypted and p.version is V2025 for p in packets)
    assert len({p.qn for p in packets}) == 5  # no QN the platform has seen again
    counts = stats.as_dict()
    assert (counts["sent"], counts["resent"], counts["silent"]) == (2, 3, 3)
    assert (counts["published"], counts["overflow"], counts["reconnects"]) == (5, 0, 1)


def test_the_kept_readings_are_what_the_monitor_measured_meanwhile() -> None:
    packets, times, _, _ = outage(Hj212Dialect(V2025), offline_ticks=2)
    # The same model with no outage: the resent values are the ones it would have sent then.
    twin = OutfallMonitor(MN, 7)
    expected = {local(at): twin.reading(at) for at in times}
    for packet in packets:
        _, got = hj212.to_device_reading(packet)
        want = expected[packet.data_time]  # type: ignore[index]
        assert want is not None and got.values == want.values


def test_a_2025_device_keeps_at_most_its_store_and_loses_the_oldest_first() -> None:
    packets, times, stats, _ = outage(Hj212Dialect(V2025), offline_ticks=5, keep_at_most=2)
    assert [(p.data_time, p.rf) for p in packets] == [
        (local(times[0]), None),
        (local(times[6]), None),
        (local(times[4]), 1),
        (local(times[5]), 1),
    ]
    assert (stats.resent, stats.overflow, stats.silent) == (2, 3, 5)


@pytest.mark.parametrize("version", [V2005, V2017])
def test_a_2005_or_2017_device_still_loses_what_it_could_not_send(version: hj212.Version) -> None:
    packets, times, stats, _ = outage(Hj212Dialect(version), offline_ticks=3)
    assert [(p.data_time, p.rf) for p in packets] == [
        (local(times[0]), None),
        (local(times[4]), None),
    ]
    assert (stats.sent, stats.resent, stats.silent, stats.reconnects) == (2, 0, 3, 1)


# -- the city and the command ----------------------------------------------------------------


def city(
    tmp_path: Path, catalogue: Catalogue, keyed: set[str], **plan: object
) -> tuple[list[str], list[Hj212Dialect]]:
    counts = {"outfalls": 4, "air_stations": 1, "meters": 0, "stacks": 1}
    fleet_plan = FleetPlan(transport="hj212", **counts, **plan)  # type: ignore[arg-type]
    devices = [e.device.id for e in choose_devices(catalogue, fleet_plan)]
    passwords, keys = tmp_path / "pw.json", tmp_path / "keys.json"
    passwords.write_text(json.dumps(dict.fromkeys(devices, PW)))
    keys.write_text(json.dumps({d: KEY.hex() for d in keyed}))
    settings = Settings(state_dir=tmp_path, hj212_passwords=passwords, hj212_sm4_keys=keys)
    fleet = build_fleet(settings, catalogue, fleet_plan)
    links = [d.link for d in fleet.devices]
    assert all(isinstance(lk, Hj212Link) for lk in links)
    return devices, [lk.dialect for lk in links]  # type: ignore[union-attr]


def test_the_city_speaks_2017_by_default(tmp_path: Path, catalogue: Catalogue) -> None:
    # Four outfalls, an air station and the stack.
    _, dialects = city(tmp_path, catalogue, keyed=set())
    assert dialects == [Hj212Dialect(V2017)] * 6


def test_a_stack_speaks_as_an_air_pollution_source_with_its_corrected_values(
    tmp_path: Path, catalogue: Catalogue
) -> None:
    plan = FleetPlan(outfalls=0, air_stations=0, meters=0, stacks=1, transport="hj212")
    (entry,) = choose_devices(catalogue, plan)
    passwords = tmp_path / "pw.json"
    passwords.write_text(json.dumps({entry.device.id: PW}))
    settings = Settings(state_dir=tmp_path, hj212_passwords=passwords)
    (device,) = build_fleet(settings, catalogue, plan).devices
    link = device.link
    assert isinstance(link, Hj212Link)
    reading = device.model.reading(T0)
    assert reading is not None
    packet = hj212.parse(link.uplink.packet(reading))
    assert packet.st == "31"
    assert packet.cp["a21026"]["ZsRtd"] == reading.values["a21026"].zs


def test_a_mixed_city_takes_the_versions_in_turn_and_keys_only_for_2025(
    tmp_path: Path, catalogue: Catalogue
) -> None:
    devices = [e.device.id for e in choose_devices(catalogue, FleetPlan(outfalls=4, meters=0))]
    keyed = {devices[1], devices[2]}  # a 2017 device with a key, and a 2025 one
    _, dialects = city(tmp_path, catalogue, keyed, hj212_version="mixed")
    assert dialects == [
        Hj212Dialect(V2005),
        Hj212Dialect(V2017),  # its key is not used: 2017 has no encryption
        Hj212Dialect(V2025, KEY),
        Hj212Dialect(V2005),
        Hj212Dialect(V2017),
        Hj212Dialect(V2025),  # the stack
    ]
    _, plain = city(tmp_path, catalogue, keyed, hj212_version="2025", sm4=False)
    assert plain == [Hj212Dialect(V2025)] * 6
    _, some = city(tmp_path, catalogue, keyed, hj212_version="2025")
    assert [d.key for d in some] == [None, KEY, KEY, None, None, None]  # no key: plain text


def test_simulate_refuses_an_hj212_version_over_mqtt() -> None:
    result = CliRunner().invoke(simulate, ["--hj212-version", "2025"])
    assert result.exit_code == 2
    assert "--hj212-version needs --transport hj212" in result.output


# -- acknowledgements, resends and the drill's monitor ------------------------------------------


def times(n: int) -> list[datetime]:
    return [T0 + timedelta(seconds=i) for i in range(n)]


def rf1_times(platform: Platform) -> list[str | None]:
    return [p.data_time for p in platform.packets() if p.rf == 1]


def live_times(platform: Platform) -> list[str | None]:
    return [p.data_time for p in platform.packets() if p.rf is None]


def drill_uplink(port: int, acks: list[int], **kw: object) -> Hj212Uplink[int]:
    return Hj212Uplink(
        MN,
        "32",
        "127.0.0.1",
        port,
        acks.append,
        password=PW,
        dialect=Hj212Dialect(V2025),
        **kw,  # type: ignore[arg-type]
    )


def test_each_answer_acknowledges_its_own_reading_once_by_its_qn() -> None:
    acks: list[int] = []

    async def run() -> Hj212Uplink[int]:
        async with Platform() as platform:
            platform.answering = False
            device = drill_uplink(platform.port, acks)
            await device.open()
            for i, at in enumerate(times(3)):
                device.send(reading(at), i)
            await platform.wait_for(3)
            assert device.unanswered == 3 and acks == []
            platform.release(newest_first=True)
            await until(lambda: len(acks) == 3)
            # An answer to a reading it never sent, and one answer again: nothing more.
            never = device.packet(reading(T0 + timedelta(hours=1)))
            answers = [hj212.parse(never), hj212.parse(platform.frames[0])]
            platform.held = [
                (platform._writers[0], hj212.build(hj212.data_answer(a)).encode()) for a in answers
            ]
            platform.release()
            await asyncio.sleep(0.1)
            device.close()
        return device

    device = asyncio.run(run())
    assert acks == [2, 1, 0] and device.unanswered == 0


def test_a_garbled_upload_is_never_acknowledged_nor_waited_for() -> None:
    acks: list[int] = []

    async def run() -> tuple[Platform, Hj212Uplink[int]]:
        async with Platform() as platform:
            device = drill_uplink(platform.port, acks, retry=Retry(0.01, 0.01))
            await device.open()
            device.send(reading(), 0, garble=True)
            device.send(reading(T0 + timedelta(seconds=1)), 1)
            await until(lambda: acks == [1])
            device.resend_overdue(10**9)
            await asyncio.sleep(0.1)
            device.close()
        return platform, device

    platform, device = asyncio.run(run())
    assert platform.refused == 1 and len(platform.frames) == 1  # the garbled one never again
    assert acks == [1] and device.unanswered == 0


def test_with_a_retry_an_unanswered_upload_goes_again_each_time_out_doubling_to_a_cap() -> None:
    acks: list[int] = []

    async def run() -> Platform:
        async with Platform() as platform:
            platform.answering = False
            device = drill_uplink(platform.port, acks, retry=Retry(after=1.0, cap=1.5))
            await device.open()
            device.send(reading(), 0)
            await platform.wait_for(1)
            sent = time.monotonic()
            device.resend_overdue(sent + 0.5)  # not yet
            device.resend_overdue(sent + 1.0)  # its time-out: again, and next after 1.5 s
            await platform.wait_for(2)
            again = time.monotonic()
            device.resend_overdue(again + 1.0)  # not yet: the wait doubled (to its cap)
            device.resend_overdue(again + 1.5)
            await platform.wait_for(3)
            device.resend_overdue(time.monotonic() + 1.5)  # the cap: 1.5 s, not 3
            await platform.wait_for(4)
            platform.release()
            await until(lambda: device.unanswered == 0)
            device.close()
        return platform

    platform = asyncio.run(run())
    assert len(platform.frames) == 4 and len({bytes(f) for f in platform.frames}) == 1
    assert acks == [0]  # four answers to one QN: acknowledged once


def test_with_a_retry_a_new_connection_sends_everything_unanswered_oldest_first() -> None:
    acks: list[int] = []

    async def run() -> Platform:
        async with Platform() as platform:
            platform.answering = False
            device = drill_uplink(platform.port, acks, retry=Retry())
            at = times(4)
            await device.open()
            for i in range(3):
                device.send(reading(at[i]), i)
            await platform.wait_for(3)
            platform.hang_up()  # the server killed with the device connected
            await asyncio.wait_for(device.closed(), 5)
            assert not device.connected
            device.send(reading(at[3]), 3)  # measured while reconnecting: waits for it
            platform.answering = True
            platform.held.clear()
            await device.open()
            await until(lambda: len(acks) == 4)
            device.close()
        return platform

    platform = asyncio.run(run())
    assert platform.connections == 2
    assert live_times(platform) == [local(t) for t in times(3) + times(4)]
    assert sorted(acks) == [0, 1, 2, 3]


def test_without_a_retry_a_lost_connection_loses_what_it_left_unanswered() -> None:
    acks: list[int] = []

    async def run() -> Platform:
        async with Platform() as platform:
            platform.answering = False
            device = drill_uplink(platform.port, acks)
            await device.open()
            device.send(reading(), 0)
            await platform.wait_for(1)
            device.drop()
            assert device.unanswered == 0 and not device.connected
            device.send(reading(T0 + timedelta(seconds=1)), 1)  # nowhere to go: lost
            platform.answering = True
            await device.open()
            device.send(reading(T0 + timedelta(seconds=2)), 2)
            await until(lambda: acks == [2])
            device.close()
        return platform

    platform = asyncio.run(run())
    assert live_times(platform) == [local(T0), local(T0 + timedelta(seconds=2))]


def test_kept_readings_are_resent_oldest_first_at_most_a_window_unanswered() -> None:
    """The drill's monitor back from an outage: what it kept goes with RF=1, paced by the
    answers, while its live readings go as usual."""
    acks: list[int] = []
    at = times(7)

    async def run() -> tuple[Platform, Hj212Uplink[int]]:
        async with Platform() as platform:
            platform.answering = False
            device = drill_uplink(platform.port, acks, resend_window=2, keep_at_most=None)
            for i in range(5):
                assert device.keep(reading(at[i]), i) == 0
            await device.open()
            assert device.send_kept() == 2 and device.kept == 3
            assert device.send(reading(at[5]), 5) == 0  # the window is full
            await platform.wait_for(3)
            platform.release()  # each answer to a resend lets the next one go
            await until(lambda: len(acks) == 6)
            assert device.send(reading(at[6]), 6) == 0
            await until(lambda: len(acks) == 7)
            device.close()
        return platform, device

    platform, device = asyncio.run(run())
    assert rf1_times(platform) == [local(t) for t in at[:5]]
    assert live_times(platform) == [local(at[5]), local(at[6])]
    assert sorted(acks) == list(range(7)) and device.kept_resent == 5 and device.kept == 0


def test_a_full_store_loses_its_oldest_reading_and_says_so() -> None:
    device = drill_uplink(9, [], keep_at_most=2)
    assert [device.keep(reading(t), i) for i, t in enumerate(times(3))] == [0, 0, 1]
    assert device.kept == 2


def test_a_device_connects_from_an_address_of_its_own() -> None:
    async def run() -> Platform:
        async with Platform() as platform:
            device = drill_uplink(platform.port, [], local_address="127.0.0.7")
            await device.open()
            device.close()
        return platform

    assert asyncio.run(run()).peers == ["127.0.0.7"]
