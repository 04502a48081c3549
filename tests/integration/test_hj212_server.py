"""Real monitors' HJ 212 over TCP, against the real stack: a socket client plays the device."""

from __future__ import annotations

import json
import socket
from datetime import datetime, timedelta

from ecowatch.clock import CHINA
from ecowatch.ingest import hj212
from tests.integration.conftest import wait_for
from tests.integration.test_pipeline import dead_letters, slot, stored, stored_count

SITE, MN = "S-OUT-003", "33082500000003"


def packet(
    ts: datetime,
    values: dict[str, tuple[float, str]],
    *,
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
            pw="123456",
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


def test_uploads_are_stored_and_answered_and_bad_packets_dead_lettered(settings, hj212_server):
    start = slot(7)
    first = packet(start, {"w01018": (48.5, "N"), "w21003": (2.25, "N"), "w00000": (30.0, "N")})
    second = packet(start + timedelta(minutes=1), {"w01018": (51.0, "C")})
    # A 2005-era device: 011 is COD, B01 flow.
    legacy = packet(start + timedelta(minutes=2), {"011": (47.0, "N"), "B01": (29.5, "N")})
    bad_crc = first[:-6] + ("0000" if not first.endswith("0000\r\n") else "FFFF") + "\r\n"
    stranger = packet(start, {"w01018": (1.0, "N")}, mn="99999999999999", qn="20991231000000001")

    with socket.create_connection((settings.hj212_host, settings.hj212_port)) as sock:
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
        lambda: [d for d in dead_letters(settings) if d["source"] == "hj212"] or None,
        30,
        "HJ 212 dead letters",
    )
    reasons = {d["reason"]: d for d in letters}
    assert reasons["crc_mismatch"]["payload"] == bad_crc
    assert reasons["unknown_device"]["payload"] == stranger
    assert reasons["bad_header"]["payload"].endswith("garbage")
    assert all(d["origin"].startswith("tcp://127.0.0.1:") for d in letters)

    counts = json.loads(hj212_server.stop().strip().splitlines()[-1])
    assert counts["bridged"] == 3 and counts["answered"] == 5
    assert counts["dead_lettered_by_reason"] == {
        "bad_header": 1,
        "crc_mismatch": 1,
        "unknown_device": 1,
    }
    assert not stored(settings, "99999999999999", since)
