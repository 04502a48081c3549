"""The HJ 212 server's defences: PW, replay window, limits (pure), then the server itself on a
real socket with an in-memory producer (what Kafka would have been sent)."""

from __future__ import annotations

import asyncio
import json
import stat
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import ecowatch.ingest.hj212.server as server_module
from ecowatch.clock import ManualClock
from ecowatch.config.catalogue import Catalogue
from ecowatch.config.settings import Settings
from ecowatch.devtools.stack.services import hj212_passwords, hj212_sm4_keys
from ecowatch.errors import ConfigError
from ecowatch.ingest import hj212
from ecowatch.ingest.contract import DeadLetterBudget, ReadingRate
from ecowatch.ingest.hj212.server import (
    Close,
    ConnectionGate,
    ConnectionGuard,
    DeviceKeys,
    DevicePasswords,
    Hj212Limits,
    Hj212Server,
    Replay,
    ReplayWindow,
    packet_digest,
)

MN, OTHER = "33082500000003", "33080200000001"
PW, OTHER_PW = "Ab3dE6", "zz9999"


# -- passwords ---------------------------------------------------------------------------------


def test_only_the_devices_own_password_passes() -> None:
    passwords = DevicePasswords({MN: PW, OTHER: OTHER_PW})
    assert passwords.check(MN, PW)
    assert not passwords.check(MN, OTHER_PW)  # another device's
    assert not passwords.check(MN, None)  # missing
    assert not passwords.check(MN, "")
    assert not passwords.check(MN, PW.lower())
    assert not passwords.check(MN, PW + "7")
    assert not passwords.check(MN, "密码密码密码")  # not ASCII: refused, no TypeError
    assert not passwords.check("99999999999999", PW)  # no PW known for that MN
    assert MN in passwords and "99999999999999" not in passwords
    assert passwords.get(MN) == PW and passwords.get("99999999999999") is None
    made = hj212.new_password()
    assert DevicePasswords({MN: made}).check(MN, made)


def test_passwords_are_compared_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []

    def compare(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return a == b

    monkeypatch.setattr(server_module.hmac, "compare_digest", compare)
    assert DevicePasswords({MN: PW}).check(MN, "wrong1") is False
    assert calls == [(b"wrong1", PW.encode())]


@pytest.mark.parametrize(
    "pw", ["1234567", "", "12;456", "12=456", "a&b", "12 456", "密码", 123456], ids=repr
)
def test_a_password_the_field_cannot_carry_is_refused(pw: object) -> None:
    with pytest.raises(ValueError, match="PW of MN"):
        DevicePasswords({MN: pw})  # type: ignore[dict-item]


def test_loading_passwords_names_the_file_and_what_was_expected(tmp_path: Path) -> None:
    missing = tmp_path / "none.json"
    with pytest.raises(ConfigError, match=r"none\.json: no HJ 212 passwords file"):
        DevicePasswords.load(missing)
    for text, match in [("{", "JSON object"), ("[1]", "JSON object"), ('{"a": "1234567"}', "PW")]:
        bad = tmp_path / "bad.json"
        bad.write_text(text)
        with pytest.raises(ConfigError, match=rf"bad\.json: .*{match}"):
            DevicePasswords.load(bad)
    good = tmp_path / "good.json"
    good.write_text(json.dumps({MN: PW}))
    assert DevicePasswords.load(good).check(MN, PW)


def test_the_stack_makes_a_private_password_per_device_once(
    tmp_path: Path, catalogue: Catalogue
) -> None:
    settings = Settings(state_dir=tmp_path / "state")
    first = hj212_passwords(settings, catalogue)
    path = settings.hj212_passwords_file
    assert path == tmp_path / "state" / "mosquitto" / "hj212_passwords.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert set(first) == set(catalogue.devices)
    assert all(len(pw) == hj212.PW_MAX_CHARS for pw in first.values())
    assert len(set(first.values())) == len(first)
    assert hj212_passwords(settings, catalogue) == first  # kept, not made again
    assert DevicePasswords.load(path).check(MN, first[MN])


def test_the_stack_makes_a_private_sm4_key_per_device_once(
    tmp_path: Path, catalogue: Catalogue
) -> None:
    settings = Settings(state_dir=tmp_path / "state")
    first = hj212_sm4_keys(settings, catalogue)
    path = settings.hj212_sm4_keys_file
    assert path == tmp_path / "state" / "mosquitto" / "hj212_sm4_keys.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert set(first) == set(catalogue.devices) and len(set(first.values())) == len(first)
    assert hj212_sm4_keys(settings, catalogue) == first  # kept, not made again
    assert DeviceKeys.load(path).get(MN) == bytes.fromhex(first[MN])


def test_sm4_keys_are_optional_and_a_bad_one_names_its_file_and_device(tmp_path: Path) -> None:
    assert DeviceKeys.load(tmp_path / "none.json").get(MN) is None  # no file: nobody encrypts
    bad = tmp_path / "keys.json"
    bad.write_text(json.dumps({MN: "00" * 15}))
    with pytest.raises(ConfigError, match=rf"keys\.json: the SM4 key of MN '{MN}': expected 32"):
        DeviceKeys.load(bad)


# -- the replay window -------------------------------------------------------------------------


def upload(qn: str = "20261123173000000", cod: float = 42.5, **header: Any) -> hj212.Packet:
    fields: dict[str, Any] = {"st": "32", "cn": "2011", "pw": PW, "mn": MN, "flag": 5} | header
    cp = {"DataTime": qn[:14], "w01018": {"Rtd": cod, "Flag": "N"}}
    return hj212.Packet(qn=qn, cp=cp, **fields)


def test_a_packet_says_the_same_whatever_its_wire_form() -> None:
    data = hj212.data_segment(upload()).replace("w01018-Rtd=42.5", "w01018-Rtd=42.50")
    other_form = f"##{len(data):04d}{data}{hj212.crc_hex(data.encode())}\r\n"
    assert packet_digest(hj212.parse(other_form)) == packet_digest(upload())
    assert packet_digest(upload(cod=42.6)) != packet_digest(upload())


def test_the_same_qn_again_is_a_duplicate_or_a_conflict() -> None:
    window = ReplayWindow()
    same = packet_digest(upload())
    assert window.check(MN, "2011", "Q1", same, now=0) is Replay.NEW
    window.remember(MN, "2011", "Q1", same, now=0)
    assert window.check(MN, "2011", "Q1", same, now=1) is Replay.DUPLICATE
    assert window.check(MN, "2011", "Q1", packet_digest(upload(cod=1.0)), 1) is Replay.CONFLICT
    # Minute data stamped with the same QN, another device's QN: not replays.
    assert window.check(MN, "2051", "Q1", same, now=1) is Replay.NEW
    assert window.check(OTHER, "2011", "Q1", same, now=1) is Replay.NEW


def test_a_qn_that_could_not_be_stored_can_come_again() -> None:
    window = ReplayWindow()
    window.remember(MN, "2011", "Q1", b"d", now=0)
    window.forget(MN, "2011", "Q1")
    assert window.check(MN, "2011", "Q1", b"d", now=1) is Replay.NEW


def test_the_replay_window_is_bounded_in_count_and_time() -> None:
    window = ReplayWindow(per_device=3, seconds=100)
    for n in range(5):
        window.remember(MN, "2011", f"Q{n}", b"d", now=n)
    assert len(window) == 3
    assert window.check(MN, "2011", "Q1", b"d", now=5) is Replay.NEW  # pushed out by newer ones
    assert window.check(MN, "2011", "Q4", b"d", now=5) is Replay.DUPLICATE
    assert window.check(MN, "2011", "Q4", b"d", now=104.5) is Replay.NEW  # older than 100 s
    assert len(window) == 0


def test_the_default_window_is_a_day_and_512_qns() -> None:
    window = ReplayWindow()
    assert (window.seconds, window.per_device) == (86400, 512)


# -- limits ------------------------------------------------------------------------------------


def test_connections_are_capped_per_address_and_in_all() -> None:
    gate = ConnectionGate(per_peer=2, total=3)
    assert gate.admit("10.0.0.1") is None
    assert gate.admit("10.0.0.1") is None
    assert "2 connections from 10.0.0.1" in str(gate.admit("10.0.0.1"))
    assert gate.admit("10.0.0.2") is None
    assert "3 connections are open" in str(gate.admit("10.0.0.3"))
    gate.release("10.0.0.1")
    assert gate.admit("10.0.0.3") is None
    assert gate.open == 3


def test_the_default_limits() -> None:
    limits = Hj212Limits()
    assert (limits.per_peer, limits.connections) == (8, 2000)
    assert (limits.frame_deadline_seconds, limits.idle_seconds) == (30, 600)
    assert (limits.bytes_without_frame, limits.bad_frames, limits.password_failures) == (
        64 * 1024,
        20,
        3,
    )


LIMITS = Hj212Limits(
    idle_seconds=600, frame_deadline_seconds=30, bytes_without_frame=1000, bad_frames=3
)


def test_a_frame_must_be_finished_within_its_deadline_however_slowly_it_trickles() -> None:
    guard = ConnectionGuard(LIMITS, now=0)
    assert guard.wait(0) == 600
    guard.read(1, frames=0, partial=True, now=10)  # "#"
    for t in range(11, 40):
        guard.read(1, frames=0, partial=True, now=t)  # a byte a second
    assert guard.expired(39.9) is None
    assert guard.wait(39) == 1
    assert guard.expired(40) is Close.FRAME_DEADLINE


def test_the_deadline_starts_again_with_each_finished_frame() -> None:
    guard = ConnectionGuard(LIMITS, now=0)
    guard.read(500, frames=0, partial=True, now=0)
    guard.read(800, frames=1, partial=True, now=25)  # one frame done, the next begun
    assert guard.expired(54) is None and guard.expired(55) is Close.FRAME_DEADLINE
    guard.read(300, frames=1, partial=False, now=50)  # nothing left over
    assert guard.partial_since is None
    assert guard.wait(50) == 600 and guard.expired(649) is None
    assert guard.expired(650) is Close.IDLE


def test_bytes_without_a_frame_close_the_connection() -> None:
    guard = ConnectionGuard(LIMITS, now=0)
    guard.read(1000, frames=0, partial=False, now=0)  # whitespace: not even partial
    assert guard.abusive() is None
    guard.read(1, frames=0, partial=False, now=0)
    assert guard.abusive() is Close.NO_FRAME
    guard.read(1, frames=1, partial=False, now=0)
    assert guard.abusive() is None


def test_bad_frames_and_wrong_passwords_in_a_row_close_the_connection() -> None:
    guard = ConnectionGuard(LIMITS, now=0)
    guard.bad()
    guard.bad()
    guard.accepted()  # a device with one faulty channel is not cut off
    guard.bad()
    guard.bad()
    assert guard.abusive() is None
    guard.bad()
    assert guard.abusive() is Close.BAD_FRAMES
    guard = ConnectionGuard(Hj212Limits(password_failures=2), now=0)
    guard.bad(password=True)
    assert guard.abusive() is None
    guard.bad(password=True)
    assert guard.abusive() is Close.BAD_PASSWORDS
    assert Close.BAD_FRAMES.abusive and not Close.FRAME_DEADLINE.abusive
    assert not Close.BAD_PASSWORDS.abusive  # answered first: QnRtn 3 tells a device its PW is wrong


def split(qn: str, pnum: int, pnos: list[int]) -> list[hj212.Packet]:
    return [
        upload(qn=qn, flag=7, pnum=pnum, pno=n) if n == 1 else
        hj212.Packet(qn=qn, st="32", cn="2011", pw=PW, mn=MN, flag=7, pnum=pnum, pno=n,
                     cp={f"w0101{n}": {"Rtd": float(n)}})
        for n in pnos
    ]  # fmt: skip


# -- the server, on a socket, with an in-memory producer ----------------------------------------


class MemoryProducer:
    """What the server sends to Kafka, kept in lists; ``fail`` readings raise first."""

    def __init__(self, fail: int = 0) -> None:
        self.readings: list[dict[str, Any]] = []
        self.letters: list[dict[str, Any]] = []
        self.fail = fail

    async def send_and_wait(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        if self.fail:
            self.fail -= 1
            raise RuntimeError("the broker is away")
        self.readings.append(json.loads(value))

    async def send(self, topic: str, value: bytes, key: bytes | None = None) -> asyncio.Future:
        self.letters.append(json.loads(value))
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


Client = tuple[asyncio.StreamReader, asyncio.StreamWriter]


def run(
    catalogue: Catalogue,
    scenario: Callable[[Hj212Server, Callable[[], Awaitable[Client]]], Awaitable[None]],
    producer: MemoryProducer,
    limits: Hj212Limits | None = None,
    reading_rate: ReadingRate | None = None,
    before: Callable[[Hj212Server], None] = lambda server: None,
) -> Hj212Server:
    server = Hj212Server(
        producer=producer,  # type: ignore[arg-type]
        catalogue=catalogue,
        # The packets' DataTime (2026-11-23 17:30 China time), a minute on: inside the window.
        clock=ManualClock(datetime(2026, 11, 23, 9, 31, tzinfo=UTC)),
        passwords=DevicePasswords({MN: PW, OTHER: OTHER_PW}),
        keys=DeviceKeys({}),
        limits=limits,
        reading_rate=reading_rate,
    )
    before(server)

    async def main() -> None:
        listening = await server.serve("127.0.0.1", 0)
        port = listening.sockets[0].getsockname()[1]
        async with listening:
            await asyncio.wait_for(
                scenario(server, lambda: asyncio.open_connection("127.0.0.1", port)), 20
            )

    asyncio.run(main())
    return server


async def answers(reader: asyncio.StreamReader, count: int) -> list[hj212.Packet]:
    framer, got = hj212.Framer(), []
    while len(got) < count:
        data = await asyncio.wait_for(reader.read(4096), 5)
        assert data, f"closed after {len(got)} answers"
        got += [hj212.parse(f) for f in framer.feed(data) if isinstance(f, bytes)]
    return got


async def settled(server: Hj212Server) -> None:
    """Until the server is done with every connection (its dead letters sent)."""
    while server.open_connections:
        await asyncio.sleep(0.01)


async def closed(reader: asyncio.StreamReader) -> bool:
    try:
        while await asyncio.wait_for(reader.read(65536), 5):
            pass
    except ConnectionError:
        pass
    return True


def wire(packet: hj212.Packet) -> bytes:
    return hj212.build(packet).encode()


def test_a_wrong_or_missing_pw_is_answered_3_dead_lettered_and_not_stored(
    catalogue: Catalogue,
) -> None:
    producer = MemoryProducer()

    async def scenario(server: Hj212Server, connect: Callable[[], Awaitable[Client]]) -> None:
        reader, writer = await connect()
        for n, pw in enumerate([OTHER_PW, None]):
            writer.write(wire(upload(qn=f"2026112317300000{n}", pw=pw)))
            (answer,) = await answers(reader, 1)
            assert (answer.cn, answer.cp) == ("9011", {"QnRtn": 3})
            assert answer.qn == f"2026112317300000{n}"
        # Nor can a part of a split message get in by way of the reassembler.
        writer.write(wire(replace(split("Q1", 2, [1])[0], pw="x")))
        assert (await answers(reader, 1))[0].cp == {"QnRtn": 3}
        assert await closed(reader)  # three wrong PWs in a row
        writer.close()
        await settled(server)

    server = run(catalogue, scenario, producer)
    assert producer.readings == []
    assert [d["reason"] for d in producer.letters] == ["bad_password"] * 3
    assert "not its own" in producer.letters[0]["detail"]
    assert "no PW" in producer.letters[1]["detail"]
    assert server.stats.closed == {"bad_passwords": 1}


def test_a_resent_packet_is_answered_again_and_stored_once(catalogue: Catalogue) -> None:
    producer = MemoryProducer()

    async def scenario(server: Hj212Server, connect: Callable[[], Awaitable[Client]]) -> None:
        reader, writer = await connect()
        writer.write(wire(upload()) * 2)
        assert [a.cn for a in await answers(reader, 2)] == ["9014", "9014"]
        writer.write(wire(upload(cod=99.0)))  # the same QN, saying something else
        (answer,) = await answers(reader, 1)
        assert (answer.cn, answer.cp) == ("9011", {"QnRtn": 7})
        writer.close()
        await settled(server)

    server = run(catalogue, scenario, producer)
    assert len(producer.readings) == 1 and producer.readings[0]["values"]["w01018"]["value"] == 42.5
    assert [(d["reason"], "replay window" in d["detail"]) for d in producer.letters] == [
        ("bad_field", True)
    ]
    assert (server.stats.bridged, server.stats.duplicates) == (1, 1)


def test_2005_2017_and_2025_devices_are_each_answered_in_their_own_version(
    catalogue: Catalogue,
) -> None:
    producer = MemoryProducer()
    # HJ/T 212-2005 with no QN (Flag 1: answer wanted, no version bits), 2017, 2025.
    no_qn = replace(upload(), qn=None, flag=1)
    sent = [no_qn, upload(qn="20261123173000001"), upload(qn="20261123173000002", flag=9)]

    async def scenario(server: Hj212Server, connect: Callable[[], Awaitable[Client]]) -> None:
        reader, writer = await connect()
        writer.write(b"".join(wire(p) for p in sent))
        got = await answers(reader, 3)
        assert [(a.cn, a.flag, a.version.value) for a in got] == [
            ("9014", 0, "2005"),
            ("9014", 4, "2017"),
            ("9014", 8, "2025"),
        ]
        assert [a.qn for a in got] == [None, "20261123173000001", "20261123173000002"]
        writer.write(wire(no_qn))  # the 2005 packet again: its DataTime names it
        assert (await answers(reader, 1))[0].cn == "9014"
        writer.close()
        await settled(server)

    server = run(catalogue, scenario, producer)
    assert (server.stats.bridged, server.stats.duplicates) == (3, 1)  # the 2005 resend: once
    assert producer.letters == []


def test_a_2025_device_encrypts_resends_and_beats_and_each_is_taken_as_such(
    catalogue: Catalogue,
) -> None:
    producer = MemoryProducer()
    key = b"k" * 16
    encrypted = replace(upload(qn="20261123173000001", flag=9), encrypted=True)
    resend = replace(upload(qn="20261123173000002", cod=51.0, flag=9), rf=1)
    beat = hj212.Packet(qn="20261123173000003", st="32", cn="9015", pw=PW, mn=MN, flag=9)

    async def scenario(server: Hj212Server, connect: Callable[[], Awaitable[Client]]) -> None:
        reader, writer = await connect()
        writer.write(hj212.build_bytes(encrypted, key) + wire(resend) + wire(beat))
        got = await answers(reader, 3)
        assert [(a.cn, a.flag) for a in got] == [("9014", 8), ("9014", 8), ("9011", 8)]
        writer.close()
        await settled(server)

    server = Hj212Server(
        producer=producer,  # type: ignore[arg-type]
        catalogue=catalogue,
        clock=ManualClock(datetime(2026, 11, 23, 9, 31, tzinfo=UTC)),
        passwords=DevicePasswords({MN: PW}),
        keys=DeviceKeys({MN: key.hex()}),
    )

    async def main() -> None:
        listening = await server.serve("127.0.0.1", 0)
        port = listening.sockets[0].getsockname()[1]
        async with listening:
            await scenario(server, lambda: asyncio.open_connection("127.0.0.1", port))

    asyncio.run(main())
    readings = [r for r in producer.readings if r["schema"] == "ecowatch.reading/1"]
    statuses = [r for r in producer.readings if r["schema"] == "ecowatch.device_status/1"]
    assert [(r["values"]["w01018"]["value"], r["resent"]) for r in readings] == [
        (42.5, False),
        (51.0, True),  # RF=1: stored, marked as resent
    ]
    assert [(s["device"], s["state"]) for s in statuses] == [(MN, "online")]  # not a reading
    stats = server.stats.as_dict()
    assert (stats["encrypted"], stats["resent"], stats["heartbeats"]) == (1, 1, 1)
    assert producer.letters == []


def test_an_encrypted_packet_from_a_device_without_its_key_is_a_crc_error(
    catalogue: Catalogue,
) -> None:
    producer = MemoryProducer()
    encrypted = replace(upload(flag=9), encrypted=True)

    async def scenario(server: Hj212Server, connect: Callable[[], Awaitable[Client]]) -> None:
        reader, writer = await connect()
        writer.write(hj212.build_bytes(encrypted, b"k" * 16))
        (answer,) = await answers(reader, 1)
        assert (answer.cn, answer.cp, answer.flag) == ("9011", {"QnRtn": 9}, 8)
        writer.close()
        await settled(server)

    run(catalogue, scenario, producer)  # run() gives the server no keys
    assert producer.readings == []
    assert [d["reason"] for d in producer.letters] == ["crc_mismatch"]


def test_an_unknown_command_is_answered_cn_error_and_dead_lettered_and_the_line_stays(
    catalogue: Catalogue,
) -> None:
    producer = MemoryProducer()
    unknown = hj212.Packet(qn="20261123173000009", st="32", cn="4711", pw=PW, mn=MN, flag=9)

    async def scenario(server: Hj212Server, connect: Callable[[], Awaitable[Client]]) -> None:
        reader, writer = await connect()
        writer.write(wire(unknown) + wire(upload()))
        got = await answers(reader, 2)
        assert [(a.cn, a.cp.get("QnRtn")) for a in got] == [("9011", 8), ("9014", None)]
        writer.close()
        await settled(server)

    run(catalogue, scenario, producer)
    assert len(producer.readings) == 1
    [letter] = producer.letters
    assert letter["reason"] == "bad_field" and "CN=4711" in letter["detail"]


def test_instrument_states_are_taken_and_bytes_without_a_packet_are_a_bad_header(
    catalogue: Catalogue,
) -> None:
    producer = MemoryProducer()
    # CN 3020 from two instruments, ; between every item (refused as "appears twice" before).
    data = (
        f"QN=20261123173000011;ST=32;CN=3020;PW={PW};MN={MN};Flag=5;CP=&&DataTime="
        "20261123173000;PolId=w01018;i12001-Info=1;PolId=w01019;i12001-Info=2&&"
    ).encode()
    states = b"##%04d" % len(data) + data + hj212.crc_hex(data).encode() + b"\r\n"

    async def scenario(server: Hj212Server, connect: Callable[[], Awaitable[Client]]) -> None:
        reader, writer = await connect()
        writer.write(states + b"AT+CSQ\r\n")  # a modem's line: no packet began
        (answer,) = await answers(reader, 1)
        assert (answer.cn, answer.cp) == ("9011", {"QnRtn": 1})
        writer.write(b"+CSQ: 21")  # and the line closes before its end
        writer.close()
        await settled(server)

    server = run(catalogue, scenario, producer)
    # The instruments' states go to the worker as the device's status (online), one each.
    [status] = producer.readings
    assert status["schema"] == "ecowatch.device_status/1" and status["state"] == "online"
    assert status["instruments"] == {"w01018": 1, "w01019": 2}
    assert server.stats.heartbeats == 1 and server.stats.ignored == 0
    assert [d["reason"] for d in producer.letters] == ["bad_header", "bad_header"]
    assert "closed the connection" in producer.letters[1]["detail"]


def test_a_failure_of_ours_is_the_packets_dead_letter_and_its_resend_is_stored(
    catalogue: Catalogue,
) -> None:
    producer = MemoryProducer(fail=1)

    async def scenario(server: Hj212Server, connect: Callable[[], Awaitable[Client]]) -> None:
        reader, writer = await connect()
        writer.write(wire(upload()))
        with pytest.raises(TimeoutError):  # unanswered: the device will resend
            await asyncio.wait_for(reader.read(4096), 0.5)
        writer.write(wire(upload()))  # the resend, on the same connection
        assert [a.cn for a in await answers(reader, 1)] == ["9014"]
        writer.close()
        await settled(server)

    run(catalogue, scenario, producer)
    assert [d["reason"] for d in producer.letters] == ["unhandled"]
    assert "the broker is away" in producer.letters[0]["detail"]
    assert len(producer.readings) == 1


def test_pnum_over_the_limit_is_answered_and_dead_lettered_and_the_line_stays(
    catalogue: Catalogue,
) -> None:
    producer = MemoryProducer()

    async def scenario(server: Hj212Server, connect: Callable[[], Awaitable[Client]]) -> None:
        reader, writer = await connect()
        writer.write(wire(split("Q1", 65, [1])[0]))
        (answer,) = await answers(reader, 1)
        assert (answer.cn, answer.cp) == ("9011", {"QnRtn": 100})
        writer.write(wire(upload()))
        assert [a.cn for a in await answers(reader, 1)] == ["9014"]
        # A split message left unfinished when the device goes: dead-lettered, not forgotten.
        writer.write(wire(split("Q2", 3, [2])[0]))
        await answers(reader, 1)
        writer.close()
        await settled(server)

    run(catalogue, scenario, producer)
    assert [d["reason"] for d in producer.letters] == ["bad_field", "truncated"]
    assert "PNUM=65" in producer.letters[0]["detail"]
    assert (
        "QN=Q2" in producer.letters[1]["detail"] and "1 of 3 parts" in producer.letters[1]["detail"]
    )
    assert len(producer.readings) == 1


def test_limits_close_connections_that_would_wear_the_server_down(catalogue: Catalogue) -> None:
    producer = MemoryProducer()
    limits = Hj212Limits(per_peer=3, frame_deadline_seconds=0.3, bad_frames=5)

    async def scenario(server: Hj212Server, connect: Callable[[], Awaitable[Client]]) -> None:
        held = [await connect() for _ in range(3)]
        extra, _ = await connect()
        assert await closed(extra)  # the fourth from this address
        for _, w in held:
            w.close()
        await settled(server)

        reader, writer = await connect()  # half a packet, then nothing
        writer.write(wire(upload())[:40])
        started = asyncio.get_running_loop().time()
        assert await closed(reader)
        assert asyncio.get_running_loop().time() - started >= 0.25

        reader, writer = await connect()  # megabytes of spaces
        writer.write(b" " * 200_000)
        assert await closed(reader)

        reader, writer = await connect()  # bad frames
        bad = wire(upload())[:-6] + b"0000\r\n"
        writer.write(bad * 50)
        assert await closed(reader)
        await settled(server)

    server = run(catalogue, scenario, producer, limits)
    assert server.stats.refused_connections == 1
    assert server.stats.closed == {"frame_deadline": 1, "no_frame": 1, "bad_frames": 1}
    reasons = [d["reason"] for d in producer.letters]
    assert reasons == ["truncated"] + ["crc_mismatch"] * 5
    assert producer.readings == []


# -- stopping: the queued dead letters flushed, or counted lost --------------------------------


class SlowKafka(MemoryProducer):
    """Takes dead letters when told to (``take``), or never: Kafka behind, or gone."""

    def __init__(self) -> None:
        super().__init__()
        self.queued: list[asyncio.Future] = []

    async def send(self, topic: str, value: bytes, key: bytes | None = None) -> asyncio.Future:
        self.letters.append(json.loads(value))
        self.queued.append(asyncio.get_running_loop().create_future())
        return self.queued[-1]

    def take(self, n: int, error: Exception | None = None) -> None:
        for future in [f for f in self.queued if not f.done()][:n]:
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(error)


def test_a_stopping_server_waits_for_its_dead_letters_and_closes_its_connections(
    catalogue: Catalogue,
) -> None:
    """Two bad frames (one shorter than it says, one with a wrong PW), and half a split message
    on a connection still open when the server stops: the stop closes the connection (the half
    is dead-lettered as truncated) and returns only once Kafka has taken all three letters."""
    producer = SlowKafka()
    done_at: dict[str, int] = {}

    async def scenario(server: Hj212Server, connect: Callable[[], Awaitable[Client]]) -> None:
        reader, writer = await connect()
        writer.write(b"##0010garbage!\r\n" + wire(upload(pw="wrong1")))
        await queued(producer, 2)
        assert not await nothing_within(reader, 0.2)  # unanswered while Kafka has no letter
        producer.take(2)
        await answers(reader, 1)  # the wrong PW's 9011 (the short frame has no QN to answer)
        writer.write(wire(split("20261123173000001", 2, [1])[0]))
        await answers(reader, 1)  # the first part is answered on its own
        loop = asyncio.get_running_loop()
        loop.call_later(0.3, lambda: done_at.setdefault("taken", len(producer.letters)))
        loop.call_later(0.3, producer.take, 1)
        await server.stop(flush_seconds=5)
        done_at["stopped"] = len(producer.letters)
        assert await closed(reader)

    server = run(catalogue, scenario, producer)
    assert [x["reason"] for x in producer.letters] == ["truncated", "bad_password", "truncated"]
    assert done_at == {"taken": 3, "stopped": 3}
    assert server.stats.letters.lost == 0 and server.open_connections == 0


async def queued(producer: SlowKafka, count: int) -> None:
    while len(producer.queued) < count:
        await asyncio.sleep(0.01)


async def nothing_within(reader: asyncio.StreamReader, seconds: float) -> bytes:
    try:
        return await asyncio.wait_for(reader.read(4096), seconds)
    except TimeoutError:
        return b""


def test_dead_letters_kafka_refused_or_never_took_are_counted_lost(catalogue: Catalogue) -> None:
    """And their frames are not answered: the answer never runs ahead of the evidence."""
    producer = SlowKafka()

    async def scenario(server: Hj212Server, connect: Callable[[], Awaitable[Client]]) -> None:
        reader, writer = await connect()
        writer.write(wire(upload(pw="wrong1")))
        await queued(producer, 1)
        producer.take(1, RuntimeError("not authorized"))
        writer.write(wire(upload(pw="wrong2")))
        await queued(producer, 2)
        assert not await nothing_within(reader, 0.2)
        await server.stop(flush_seconds=0.2)  # the second is never taken
        producer.take(2)  # Kafka answers after the stop gave up: not counted twice

    server = run(catalogue, scenario, producer)
    assert len(producer.letters) == 2
    assert server.stats.letters.total == 0  # counted once Kafka has them
    assert server.stats.letters.lost == 2
    assert server.stats.as_dict()["dead_letters_lost"] == 2


class StalledKafka(MemoryProducer):
    """The first reading waits until ``release`` is set, then fails (a broker restarting)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = asyncio.Event()
        self.first = True

    async def send_and_wait(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        if self.first:
            self.first = False
            await self.release.wait()
            raise RuntimeError("the broker is away")
        await super().send_and_wait(topic, value, key)


def test_a_copy_resent_while_the_first_is_in_flight_is_answered_only_if_kafka_took_it(
    catalogue: Catalogue,
) -> None:
    producer = StalledKafka()

    async def scenario(server: Hj212Server, connect: Callable[[], Awaitable[Client]]) -> None:
        _, first = await connect()
        first.write(wire(upload()))
        await asyncio.sleep(0.2)  # its send to Kafka hangs
        reader, writer = await connect()  # the device gives up on that line and resends
        writer.write(wire(upload()))
        with pytest.raises(TimeoutError):  # not answered while the first is undecided
            await asyncio.wait_for(reader.read(4096), 0.5)
        producer.release.set()  # the first send fails
        with pytest.raises(TimeoutError):  # so the copy is not answered either
            await asyncio.wait_for(reader.read(4096), 0.5)
        writer.write(wire(upload()))  # the device's next resend is stored and answered
        assert [a.cn for a in await answers(reader, 1)] == ["9014"]
        for w in (first, writer):
            w.close()
        await settled(server)

    server = run(catalogue, scenario, producer)
    assert len(producer.readings) == 1
    assert server.stats.bridged == 1


def test_uploads_past_a_devices_allowance_are_refused_2_and_dead_lettered_under_its_budget(
    catalogue: Catalogue,
) -> None:
    """One device flooding: past its allowance (here a burst of 40: 4 x the readings of 5
    minutes at one per 30 s, no resend allowance) each upload is answered 9011 QnRtn 2, as the
    contract's other refusals, and dead-lettered (rate_limited) within its dead-letter budget;
    past that, counted and answered, not kept."""
    producer = MemoryProducer()
    flood = b"".join(wire(upload(qn=f"20261123173000{n:03}")) for n in range(45))

    def small_budget(server: Hj212Server) -> None:
        server.dead_letters.budget = DeadLetterBudget(per_second=0, burst=2)

    async def scenario(server: Hj212Server, connect: Callable[[], Awaitable[Client]]) -> None:
        reader, writer = await connect()
        writer.write(flood)
        got = await answers(reader, 45)
        assert [a.cn for a in got] == ["9014"] * 40 + ["9011"] * 5
        assert {a.cp.get("QnRtn") for a in got[40:]} == {2}
        writer.close()
        await settled(server)

    rate = ReadingRate(factor=4, resend_burst=0)
    server = run(catalogue, scenario, producer, reading_rate=rate, before=small_budget)
    assert len(producer.readings) == 40
    assert [d["reason"] for d in producer.letters] == ["rate_limited"] * 2
    assert f"device '{MN}' sent 41 readings" in producer.letters[0]["detail"]
    assert "a burst of 40, then 8 a minute" in producer.letters[0]["detail"]
    stats = server.stats.as_dict()
    assert stats["dead_lettered_by_reason"] == {"rate_limited": 2}
    assert stats["suppressed_by_reason"] == {"rate_limited": 3}
    assert server.limiter.refused == {MN: 5}


def test_the_server_takes_its_allowance_from_the_settings(
    tmp_path: Path, catalogue: Catalogue
) -> None:
    settings = Settings(state_dir=tmp_path / "state", reading_rate_factor=0)
    hj212_passwords(settings, catalogue)
    server = Hj212Server.from_settings(
        settings,
        producer=MemoryProducer(),  # type: ignore[arg-type]
        catalogue=catalogue,
        clock=ManualClock(datetime(2026, 11, 23, 9, 31, tzinfo=UTC)),
    )
    assert server.limiter.rate == ReadingRate(factor=0)  # a load test's: no limit
