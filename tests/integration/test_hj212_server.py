"""Real monitors' HJ 212 over TCP, against the real stack: a socket client plays the device, and
a hostile one tries to forge packets and wear the server down (issue 9).

Each attacker speaks from its own loopback address (127.0.0.x), so that the per-address
connection cap is tried on one of them, and the dead letters are told apart by their origin.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest

from ecowatch.clock import CHINA
from ecowatch.config.settings import Settings
from ecowatch.ingest import hj212
from tests.integration.conftest import Service, query, wait_for
from tests.integration.test_pipeline import dead_letters, slot, stored, stored_count

SITE, MN = "S-OUT-003", "33082500000003"
OTHER_MN = "33080200000001"  # another outfall's monitor
# The server's frame deadline for these tests (30 s in production): a half packet is closed
# after this, so the test waits seconds, not half a minute.
FRAME_DEADLINE = 2.0
MAX_PER_PEER, MAX_BAD_FRAMES = 8, 20  # the server's limits (ingest/hj212/server.py)


@pytest.fixture
def quick_frame_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECOWATCH_HJ212_FRAME_DEADLINE_SECONDS", str(FRAME_DEADLINE))


@pytest.fixture
def hj212_server(quick_frame_deadline: None, hj212_server: Service) -> Service:
    """The real `ecowatch hj212 serve`, started with the short frame deadline."""
    return hj212_server


@pytest.fixture(scope="session")
def hj212_passwords(settings: Settings) -> dict[str, str]:
    """The PWs the stack generated, as a device's installer would have set them."""
    return json.loads(settings.hj212_passwords_file.read_text())


def packet(
    ts: datetime,
    values: dict[str, tuple[float, str]],
    *,
    pw: str | None,
    cn: str = "2011",
    mn: str = MN,
    qn: str | None = None,
) -> str:
    suffix = hj212.VALUE_SUFFIX_BY_CN[cn]
    local = ts.astimezone(CHINA)
    cp: dict = {"DataTime": local.strftime("%Y%m%d%H%M%S")}
    for code, (value, flag) in values.items():
        cp[code] = {suffix: value, "Flag": flag}
    return hj212.build(
        hj212.Packet(
            qn=qn or local.strftime("%Y%m%d%H%M%S") + "000",
            st="32",
            cn=cn,
            pw=pw,
            mn=mn,
            flag=5,
            cp=cp,
        )
    )


def answers(sock: socket.socket, count: int) -> list[hj212.Packet]:
    framer, got = hj212.Framer(), []
    sock.settimeout(15)
    while len(got) < count:
        data = sock.recv(4096)
        assert data, f"the server closed the connection after {len(got)} answers"
        got += [hj212.parse(f) for f in framer.feed(data) if isinstance(f, bytes)]
    return got


def connect(settings: Settings, source: str) -> socket.socket:
    """A connection from the loopback address ``source``."""
    return socket.create_connection(
        (settings.hj212_host, settings.hj212_port), timeout=15, source_address=(source, 0)
    )


def seconds_until_closed(sock: socket.socket, timeout: float = 15) -> float:
    """How long until the server closes the connection (whatever it still sends is read)."""
    started = time.monotonic()
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    except TimeoutError:
        pytest.fail(f"the server kept the connection open for {timeout} s")
    return time.monotonic() - started


def still_open(sock: socket.socket) -> bool:
    sock.settimeout(0.3)
    try:
        return sock.recv(1) != b""
    except TimeoutError:
        return True
    except ConnectionError:
        return False


def letters_from(settings: Settings, source: str) -> list[dict[str, Any]]:
    return [d for d in dead_letters(settings) if d["origin"].startswith(f"tcp://{source}:")]


def stop_counts(service: Service) -> dict[str, Any]:
    return json.loads(service.stop().strip().splitlines()[-1])


def test_uploads_are_stored_and_answered_and_bad_packets_dead_lettered(
    settings, hj212_server, hj212_passwords
):
    pw = hj212_passwords[MN]
    start = slot(6)
    first = packet(
        start, {"w01018": (48.5, "N"), "w21003": (2.25, "N"), "w00000": (30.0, "N")}, pw=pw
    )
    second = packet(start + timedelta(minutes=1), {"w01018": (51.0, "C")}, pw=pw)
    # A 2005-era device: 011 is COD, B01 flow.
    legacy = packet(start + timedelta(minutes=2), {"011": (47.0, "N"), "B01": (29.5, "N")}, pw=pw)
    bad_crc = first[:-6] + ("0000" if not first.endswith("0000\r\n") else "FFFF") + "\r\n"
    stranger = packet(
        start, {"w01018": (1.0, "N")}, pw=pw, mn="99999999999999", qn="20991231000000001"
    )

    with connect(settings, "127.0.0.1") as sock:
        raw = first.encode()
        sock.sendall(raw[:20])  # a partial read: the rest follows
        sock.sendall(raw[20:])
        sock.sendall(b"\x00garbage" + second.encode() + legacy.encode())  # two in one read
        got = answers(sock, 3)
        assert [p.cn for p in got] == ["9014", "9014", "9014"]
        assert [p.qn for p in got] == [hj212.parse(x).qn for x in (first, second, legacy)]

        sock.sendall(bad_crc.encode())
        (crc_answer,) = answers(sock, 1)
        assert (crc_answer.cn, crc_answer.cp.get("QnRtn")) == ("9011", 9)

        sock.sendall(stranger.encode())
        (mn_answer,) = answers(sock, 1)
        assert (mn_answer.cn, mn_answer.cp.get("QnRtn")) == ("9011", 4)

    since = start - timedelta(seconds=1)
    points = wait_for(stored_count(settings, MN, since, 6), 45, "6 points from the HJ 212 device")
    by = {(p["_time"], p["pollutant"]): p for p in points}
    assert by[(start, "w01018")]["value"] == 48.5 and by[(start, "w01018")]["site"] == SITE
    assert by[(start + timedelta(minutes=1), "w01018")]["flag"] == "C"
    assert by[(start + timedelta(minutes=2), "w01018")]["value"] == 47.0  # from code 011
    assert by[(start + timedelta(minutes=2), "w00000")]["value"] == 29.5  # from code B01

    letters = wait_for(
        lambda: letters_from(settings, "127.0.0.1") or None, 30, "HJ 212 dead letters"
    )
    reasons = {d["reason"]: d for d in letters}
    assert reasons["crc_mismatch"]["payload"] == bad_crc
    assert reasons["unknown_device"]["payload"] == stranger
    assert reasons["bad_header"]["payload"].endswith("garbage")

    counts = stop_counts(hj212_server)
    assert counts["bridged"] == 3 and counts["answered"] == 5
    assert counts["dead_lettered_by_reason"] == {
        "bad_header": 1,
        "crc_mismatch": 1,
        "unknown_device": 1,
    }
    assert not stored(settings, "99999999999999", since)


def test_a_wrong_or_missing_pw_is_refused_and_nothing_of_it_is_stored(
    settings, hj212_server, hj212_passwords
):
    start = slot(5)
    forged = [
        packet(start, {"w01018": (900.0, "N")}, pw="123456"),  # made up
        packet(start + timedelta(minutes=1), {"w01018": (901.0, "N")}, pw=None),  # missing
        packet(  # another device's own PW
            start + timedelta(minutes=2), {"w01018": (902.0, "N")}, pw=hj212_passwords[OTHER_MN]
        ),
    ]
    with connect(settings, "127.0.0.21") as sock:
        for raw in forged:
            sock.sendall(raw.encode())
            (answer,) = answers(sock, 1)
            assert (answer.cn, answer.qn, answer.cp) == ("9011", hj212.parse(raw).qn, {"QnRtn": 3})
        # Three wrong PWs in a row: a guesser must reconnect.
        assert seconds_until_closed(sock) < 5

    # The device itself, afterwards: stored. Its point is in once the forged ones would be.
    genuine = packet(start + timedelta(minutes=3), {"w01018": (42.0, "N")}, pw=hj212_passwords[MN])
    with connect(settings, "127.0.0.22") as sock:
        sock.sendall(genuine.encode())
        assert answers(sock, 1)[0].cn == "9014"
    since = start - timedelta(seconds=1)
    points = wait_for(stored_count(settings, MN, since, 1), 45, "the genuine point")
    assert [(p["_time"], p["value"]) for p in points] == [(start + timedelta(minutes=3), 42.0)]

    letters = wait_for(
        lambda: letters_from(settings, "127.0.0.21") or None, 30, "the forged packets' letters"
    )
    assert sorted(d["payload"] for d in letters) == sorted(forged)
    assert {d["reason"] for d in letters} == {"bad_password"}
    counts = stop_counts(hj212_server)
    assert counts["bridged"] == 1 and counts["closed_by_reason"] == {"bad_passwords": 1}


def test_a_replayed_qn_is_not_stored_twice(settings, hj212_server, hj212_passwords):
    pw = hj212_passwords[MN]
    start = slot(4)
    original = packet(start, {"w01018": (40.0, "N")}, pw=pw)
    qn = hj212.parse(original).qn
    # The same QN again, saying something else: a later time and another value.
    altered = packet(start + timedelta(minutes=5), {"w01018": (400.0, "N")}, pw=pw, qn=qn)
    later = packet(start + timedelta(minutes=10), {"w01018": (41.0, "N")}, pw=pw)
    with connect(settings, "127.0.0.31") as sock:
        sock.sendall(original.encode())
        assert answers(sock, 1)[0].cn == "9014"
    with connect(settings, "127.0.0.31") as sock:  # resent, as after a lost answer
        sock.sendall(original.encode())
        (again,) = answers(sock, 1)
        assert (again.cn, again.qn) == ("9014", qn)  # the device may stop retrying
        sock.sendall(altered.encode())
        (refused,) = answers(sock, 1)
        assert (refused.cn, refused.cp) == ("9011", {"QnRtn": 7})
        sock.sendall(later.encode())
        assert answers(sock, 1)[0].cn == "9014"

    since = start - timedelta(seconds=1)
    points = wait_for(stored_count(settings, MN, since, 2), 45, "the two genuine points")
    assert sorted((p["_time"], p["value"]) for p in points) == [
        (start, 40.0),
        (start + timedelta(minutes=10), 41.0),
    ]
    (letter,) = wait_for(
        lambda: letters_from(settings, "127.0.0.31"), 30, "the altered packet's dead letter"
    )
    assert (letter["reason"], letter["payload"]) == ("bad_field", altered)
    counts = stop_counts(hj212_server)
    assert (counts["bridged"], counts["duplicates"]) == (2, 1)


class Device(threading.Thread):
    """A genuine monitor reporting every 0.3 s on its own connection, while others attack."""

    def __init__(self, settings: Settings, pw: str, start: datetime) -> None:
        super().__init__(daemon=True)
        self.settings, self.pw, self.start_ts = settings, pw, start
        self.stop = threading.Event()
        self.sent: list[datetime] = []
        self.answered: list[str] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with connect(self.settings, "127.0.0.2") as sock:
                while not self.stop.is_set():
                    ts = self.start_ts + timedelta(minutes=len(self.sent))
                    sock.sendall(packet(ts, {"w01018": (30.0, "N")}, pw=self.pw).encode())
                    self.sent.append(ts)
                    self.answered.append(answers(sock, 1)[0].cn)
                    self.stop.wait(0.3)
        except BaseException as exc:  # reported by the test
            self.error = exc


def test_attacks_are_refused_while_a_device_keeps_reporting(
    settings, hj212_server, hj212_passwords
):
    pw = hj212_passwords[MN]
    start = slot(3)
    device = Device(settings, pw, start)
    device.start()
    wait_for(lambda: len(device.answered) >= 2 or device.error, 15, "the device's first answers")

    # Half a packet, then nothing: the idle time-out would restart on every byte; the frame
    # deadline does not.
    half = packet(start, {"w01018": (1.0, "N")}, pw="123456").encode()[:60]
    with connect(settings, "127.0.0.11") as sock:
        sock.sendall(half)
        took = seconds_until_closed(sock)
    assert FRAME_DEADLINE - 0.5 < took < FRAME_DEADLINE + 5

    # More connections from one address than it may hold: the extra ones are closed at once,
    # the others stay.
    held = [connect(settings, "127.0.0.12") for _ in range(MAX_PER_PEER)]
    extra = [connect(settings, "127.0.0.12") for _ in range(2)]
    for sock in extra:
        assert seconds_until_closed(sock) < 2
    assert all(still_open(sock) for sock in held)
    for sock in held + extra:
        sock.close()

    # A megabyte without ## (letters, then spaces): closed long before the end.
    for source, garbage in (("127.0.0.13", b"x"), ("127.0.0.14", b" ")):
        with connect(settings, source) as sock:
            with contextlib.suppress(OSError):  # closed while we were still sending
                sock.sendall(garbage * 1_000_000)
            seconds_until_closed(sock)

    # Thousands of bad frames (a wrong CRC): closed after 20, so 20 dead letters.
    good = packet(start, {"w01018": (2.0, "N")}, pw=pw)
    bad_crc = (good[:-6] + ("0000" if not good.endswith("0000\r\n") else "FFFF") + "\r\n").encode()
    with connect(settings, "127.0.0.15") as sock:
        with contextlib.suppress(OSError):
            sock.sendall(bad_crc * 3000)
        seconds_until_closed(sock)

    # A split packet announcing 65 parts: answered and dead-lettered, the line kept.
    split = replace(hj212.parse(good), flag=7, pnum=65, pno=1)
    with connect(settings, "127.0.0.16") as sock:
        sock.sendall(hj212.build(split).encode())
        (answer,) = answers(sock, 1)
        assert (answer.cn, answer.cp) == ("9011", {"QnRtn": 100})
        assert still_open(sock)

    time.sleep(1)  # the device reports a few more times after the attacks
    device.stop.set()
    device.join(10)
    assert device.error is None, repr(device.error)
    assert len(device.sent) >= 5 and device.answered == ["9014"] * len(device.sent)

    since = start - timedelta(seconds=1)
    count = len(device.sent)
    points = wait_for(stored_count(settings, MN, since, count), 45, f"the device's {count} points")
    assert sorted(p["_time"] for p in points) == device.sent  # and nothing of the attackers'
    assert all(p["value"] == 30.0 for p in points)

    letters = dead_letters(settings)

    def reasons(source: str) -> list[str]:
        return [d["reason"] for d in letters if d["origin"].startswith(f"tcp://{source}:")]

    assert reasons("127.0.0.11") == ["truncated"] and reasons("127.0.0.12") == []
    assert 0 < len(reasons("127.0.0.13")) <= MAX_BAD_FRAMES  # per 2 KB of letters, at most
    assert set(reasons("127.0.0.13")) == {"bad_header"} and reasons("127.0.0.14") == []
    assert reasons("127.0.0.15") == ["crc_mismatch"] * MAX_BAD_FRAMES
    assert reasons("127.0.0.16") == ["bad_field"]
    pnum = next(d for d in letters if d["origin"].startswith("tcp://127.0.0.16:"))
    assert "PNUM=65" in pnum["detail"]

    counts = stop_counts(hj212_server)
    assert counts["refused_connections"] == 2
    # Letters close by bad frames or by bytes, whichever comes first with the reads' sizes.
    closed = counts["closed_by_reason"]
    assert closed["frame_deadline"] == 1 and closed["no_frame"] >= 1 and closed["bad_frames"] >= 1
    assert sum(closed.values()) == 4, closed
    assert counts["bridged"] == len(device.sent)
    log = hj212_server.log()
    assert "refused a connection from 127.0.0.12" in log
    assert "closed: 20 bad frames in a row" in log


# -- 2005, 2017 and 2025 devices on one port (issue 12) -----------------------------------------

# Monitors no other test drives (S-OUT-022 to -024): a 2025 device (SM4, heartbeat, resends),
# a 2005 one and a 2017 one. Another test's device here would add to its counts in InfluxDB.
V2025, V2005, V2017 = "33088100000022", "33088100000023", "33088100000024"


def upload(mn: str, ts: datetime, cod: float, pw: str, **header: Any) -> hj212.Packet:
    local = ts.astimezone(CHINA)
    cp = {"DataTime": local.strftime("%Y%m%d%H%M%S"), "w01018": {"Rtd": cod, "Flag": "N"}}
    qn = local.strftime("%Y%m%d%H%M%S") + "000"
    fields: dict[str, Any] = {"qn": qn, "st": "32", "cn": "2011", "pw": pw, "mn": mn} | header
    return hj212.Packet(cp=cp, **fields)


def test_2005_2017_and_2025_devices_share_the_port_each_answered_in_its_own_version(
    settings, hj212_server, hj212_passwords
):
    keys = json.loads(settings.hj212_sm4_keys_file.read_text())
    key = bytes.fromhex(keys[V2025])
    start = slot(3)
    at = [start + timedelta(minutes=m) for m in range(4)]
    pw25, pw05, pw17 = (hj212_passwords[mn] for mn in (V2025, V2005, V2017))

    with connect(settings, "127.0.0.1") as sock:
        # A 2025 device on the Internet: its upload encrypted with its own key.
        first = replace(upload(V2025, at[0], 41.5, pw25, flag=9), encrypted=True)
        raw = hj212.build_bytes(first, key)
        assert b"w01018" not in raw  # the CP is ciphertext on the wire
        sock.sendall(raw)
        (answer,) = answers(sock, 1)
        assert (answer.cn, answer.flag, answer.version) == ("9014", 8, hj212.Version.V2025)
        # Its heartbeat: answered in 2025, not a reading.
        beat = hj212.Packet(qn="20261201000000001", st="32", cn="9015", pw=pw25, mn=V2025, flag=9)
        sock.sendall(hj212.build(beat).encode())
        (answer,) = answers(sock, 1)
        assert (answer.cn, answer.cp, answer.flag) == ("9011", {"QnRtn": 1}, 8)
        # Back from an outage: the live reading first, then what it kept, marked RF=1.
        live = replace(upload(V2025, at[3], 43.0, pw25, flag=9), encrypted=True)
        kept = [
            replace(upload(V2025, at[m], 42.0 + m / 10, pw25, flag=9), encrypted=True, rf=1)
            for m in (1, 2)
        ]
        sock.sendall(b"".join(hj212.build_bytes(p, key) for p in (live, *kept)))
        assert [a.cn for a in answers(sock, 3)] == ["9014"] * 3

        # A 2005 device: no QN and no Flag (so no answer), then one that wants an answer.
        silent = upload(V2005, at[0], 38.0, pw05, qn=None)
        asking = upload(V2005, at[1], 39.0, pw05, qn=None, flag=1)
        sock.sendall(hj212.build(silent).encode() + hj212.build(asking).encode())
        (answer,) = answers(sock, 1)
        assert (answer.cn, answer.flag, answer.qn, answer.version.value) == (
            "9014",
            0,
            None,
            "2005",
        )
        # A 2017 device, as before.
        sock.sendall(hj212.build(upload(V2017, at[0], 40.0, pw17, flag=5)).encode())
        (answer,) = answers(sock, 1)
        assert (answer.cn, answer.flag) == ("9014", 4)

    since = start - timedelta(seconds=1)
    points = wait_for(stored_count(settings, V2025, since, 4), 45, "the 2025 device's 4 points")
    by_time = {p["_time"]: p for p in points}
    assert [by_time[t]["value"] for t in at] == [41.5, 42.1, 42.2, 43.0]  # decrypted
    assert [bool(by_time[t].get("resent")) for t in at] == [False, True, True, False]
    wait_for(stored_count(settings, V2005, since, 2), 45, "the 2005 device's 2 points")
    wait_for(stored_count(settings, V2017, since, 1), 45, "the 2017 device's point")

    counts = stop_counts(hj212_server)
    assert (counts["encrypted"], counts["heartbeats"], counts["resent"]) == (4, 1, 2)
    assert counts["bridged"] == 7 and counts["dead_lettered"] == 0


def test_a_resend_after_an_outage_gets_its_hour_judged_again_and_a_found_late_case(
    settings, hj212_server, hj212_passwords
):
    # S-OUT-031 (COD 100 mg/L), driven by no other test.
    site, mn = "S-OUT-031", "33082400000031"
    pw, hour = hj212_passwords[mn], slot(4)

    def reading(minute: int, cod: float, **header: Any) -> bytes:
        local = (hour + timedelta(minutes=minute)).astimezone(CHINA)
        cp: dict = {"DataTime": local.strftime("%Y%m%d%H%M%S")}
        values = {"w00000": 30.0, "w01018": cod, "w21003": 2.0}
        cp |= {code: {"Rtd": v, "Flag": "N"} for code, v in (values | {"w01001": 7.2}).items()}
        qn = local.strftime("%Y%m%d%H%M%S") + "000"
        packet = hj212.Packet(qn=qn, st="32", cn="2011", pw=pw, mn=mn, flag=9, cp=cp, **header)
        return hj212.build(packet).encode()

    with connect(settings, "127.0.0.1") as sock:
        # Eleven minutes of normal data, then off the network until 62 minutes past: the
        # hour closes with too little data for a mean, so it is judged with no verdict.
        sock.sendall(b"".join(reading(m, 30.0) for m in [*range(11), 62]))
        assert len(answers(sock, 12)) == 12
        # Back, the device resends what it kept: COD 150 for the rest of the hour, RF=1.
        sock.sendall(b"".join(reading(m, 150.0, rf=1) for m in range(11, 60)))
        assert len(answers(sock, 49)) == 49

    def hour_again() -> dict[str, Any] | None:
        rows = query(
            settings,
            f'from(bucket: "{settings.influx_bucket}") '
            f"|> range(start: {hour.isoformat()}, stop: {(hour + timedelta(hours=1)).isoformat()}) "
            f'|> filter(fn: (r) => r._measurement == "aggregate" and r.device == "{mn}" '
            'and r.pollutant == "w01018" and r.period == "hour") '
            '|> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")',
        )
        return rows[0] if rows and rows[0].get("valid") else None

    # The worker judges the hour again once the resend has settled (10 s, then a tick).
    judged = wait_for(hour_again, 90, "the 11 o'clock hour judged again with a mean")
    assert judged["mean"] > 100
    findings = query(
        settings,
        f'from(bucket: "{settings.influx_bucket}") '
        f"|> range(start: {hour.isoformat()}, stop: {(hour + timedelta(hours=2)).isoformat()}) "
        f'|> filter(fn: (r) => r._measurement == "finding" and r.site == "{site}" '
        'and r.rule == "hourly_over_limit") '
        '|> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")',
    )
    [late] = findings
    assert late["late"] is True and late["active"] is True and late["value"] == judged["mean"]
    assert late["detail"].endswith("补传数据中发现")  # the wording module's, in Chinese
    counts = stop_counts(hj212_server)
    assert counts["resent"] == 49
