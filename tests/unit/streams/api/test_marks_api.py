"""The marks (标记) of the case API: enterprise callers, what a request may carry, the marks as
they stand (the table with the changes in flight), and each endpoint's refusals, with the
worker's table, Kafka and the other workers stood in for."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from multidict import MultiDict

from ecowatch.clock import CHINA
from ecowatch.config.catalogue import Catalogue
from ecowatch.edges.tokens import hashed
from ecowatch.schema import Mark, MarkEvent, MarkEventKind, MarkStatus, MarkType, Proof
from ecowatch.streams.api.auth import Caller, caller_of, officer_grids
from ecowatch.streams.api.mark_views import read_proof
from ecowatch.streams.api.marks import (
    MarkRequest,
    MarksInFlight,
    mark_body,
    mark_row,
    marks_now,
    proof_name,
    proof_type,
    refusal_of,
    review_body,
)
from ecowatch.streams.api.requests import Refusal
from ecowatch.streams.api.views import CaseApi
from ecowatch.streams.judging.marks import MarkPolicy, MarkRefused
from ecowatch.streams.judging.rules.base import SiteState
from ecowatch.streams.storage.proofs import ProofStore

STACK, CEMS = "S-STK-001", "33080200G00001"  # E-007's coal unit, in grid G-KC-02
T0 = datetime(2026, 11, 23, 10, 0, tzinfo=CHINA)
HOUR = timedelta(hours=1)
NOW = T0 - timedelta(days=1)  # the site's data clock: the shutdown is marked a day ahead
TOKENS = hashed(
    {
        "t-e7": "enterprise:E-007",
        "t-e1": "enterprise:E-001",
        "t-gone": "enterprise:E-999",
        "t-kc3": "O-KC-03",
        "t-kc1": "O-KC-01",
        "t-skc": "S-KC",
        "t-ops": "operator:night",
    }
)
SHUTDOWN = {
    "device": CEMS,
    "type": "shutdown",
    "start": T0.isoformat(),
    "end": (T0 + 2 * HOUR).isoformat(),
    "reason": "1号锅炉计划停炉检修",
}
PDF = b"%PDF-1.7 \xe5\x81\x9c\xe7\x82\x89\xe9\x80\x9a\xe7\x9f\xa5" * 50
PDF_HEADERS = {"Content-Type": "application/pdf", "X-Filename": "%E5%81%9C%E7%82%89.pdf"}


@contextmanager
def refused(status: int, match: str) -> Iterator[pytest.ExceptionInfo[Refusal]]:
    with pytest.raises(Refusal, match=match) as info:
        yield info
    assert info.value.status == status, info.value.reason


def body(**changes: Any) -> bytes:
    return json.dumps({**SHUTDOWN, **changes}).encode()


# -- who ---------------------------------------------------------------------------------------


def test_an_enterprise_token_sees_its_own_sites_and_no_grid(catalogue: Catalogue) -> None:
    grids, enterprises = officer_grids(catalogue), catalogue.enterprises
    e7 = caller_of("Bearer t-e7", TOKENS, grids, enterprises)
    assert e7 == Caller("enterprise:E-007", frozenset(), "E-007")
    assert e7.may_see(catalogue.sites[STACK]) and not e7.may_see(catalogue.sites["S-OUT-001"])
    assert not e7.sees("G-KC-02")  # never a grid: never its cases
    kc3 = caller_of("Bearer t-kc3", TOKENS, grids, enterprises)
    assert kc3.may_see(catalogue.sites[STACK]) and not kc3.may_see(catalogue.sites["S-OUT-001"])
    assert caller_of("Bearer t-ops", TOKENS, grids, enterprises).may_see(catalogue.sites[STACK])
    with refused(401, "valid officer token"):  # an enterprise the catalogue does not know
        caller_of("Bearer t-gone", TOKENS, grids, enterprises)
    with refused(401, "valid officer token"):  # nor one the caller was not told of
        caller_of("Bearer t-e7", TOKENS, grids)


# -- what a request may carry --------------------------------------------------------------------


def test_a_mark_in_a_json_body() -> None:
    asked = mark_body(body())
    assert asked == MarkRequest(CEMS, MarkType.SHUTDOWN, T0, T0 + 2 * HOUR, "1号锅炉计划停炉检修")
    whole = {k: v for k, v in SHUTDOWN.items() if k != "device"}
    assert mark_body(json.dumps(whole).encode()).device is None
    assert mark_body(body(device=None, start="2026-11-23T02:00:00Z")).start == T0


@pytest.mark.parametrize(
    ("raw", "status", "match"),
    [
        (b"", 400, "expected a JSON body"),
        (b"[1]", 400, "expected a JSON body"),
        (body(by="E-001"), 400, "unknown field"),
        (body(type="holiday"), 400, "type: expected one of production_stopped, "),
        (body(type=["shutdown"]), 400, "type: expected one of"),
        (body(device=""), 400, "device: expected a device id"),
        (body(device=5), 400, "device: expected a device id"),
        (body(start="2026-11-23T10:00:00"), 400, "start: .* has no zone"),
        (body(start="tomorrow"), 400, r"start: expected a time with its zone.*\(got 'tomorrow'\)"),
        (body(end=None), 400, "end: expected a time with its zone"),
        (body(end="0001-01-01T00:00:00+00:00"), 400, "end: from 1970 to 9998"),
        (body(reason=5), 400, "reason: expected a string"),
        (body(reason="a\u0000b"), 400, "reason: control characters"),
        (body(reason="\ud800"), 400, "reason: not valid Unicode"),
        (body(reason="检" * 2001), 413, "reason: 2001 characters; at most 2000"),
    ],
)
def test_a_mark_body_that_cannot_be_used_names_its_field(raw: bytes, status: int, match: str):
    with refused(status, match):
        mark_body(raw)


def test_a_review_in_a_json_body() -> None:
    assert review_body(b'{"accept": true}') == (True, "")
    assert review_body('{"accept": false, "reason": "未见停炉记录"}'.encode()) == (
        False,
        "未见停炉记录",
    )
    with refused(400, "accept: expected true or false"):
        review_body(b'{"accept": "yes"}')
    with refused(400, "unknown field"):
        review_body(b'{"accept": true, "officer": "O-KC-03"}')


def test_a_proof_names_its_file_and_its_type() -> None:
    assert proof_name("%E5%81%9C%E7%82%89.pdf") == "停炉.pdf"
    assert proof_name(" photo 1.jpg ") == "photo 1.jpg"
    assert proof_type("Application/PDF; charset=binary") == "application/pdf"
    assert proof_type("image/svg+xml") == "image/svg+xml"
    for bad, match in [
        (None, r"X-Filename: .*missing"),
        ("%FF.pdf", "not UTF-8"),
        ("..%2Fetc%2Fpasswd", "without folders"),
        ("a%00b", "control characters"),
        ("x" * 201, "201 characters"),
    ]:
        with pytest.raises(Refusal, match=match):
            proof_name(bad)
    for bad in (None, "", "pdf", "text/", "a/b c", "x/" + "y" * 100):
        with refused(400, "Content-Type"):
            proof_type(bad)


def test_the_marking_rules_refusals_keep_their_field() -> None:
    assert refusal_of(MarkRefused("status", "mark M was accepted")).status == 409
    assert refusal_of(MarkRefused("start", "overlaps the shutdown mark M")).status == 409
    late = refusal_of(MarkRefused("start", "a fault mark is made within 12 h: too late"))
    assert (late.status, late.reason) == (400, "start: a fault mark is made within 12 h: too late")


# -- the marks as they stand -------------------------------------------------------------------


def mark(**changes: Any) -> Mark:
    base: dict[str, Any] = {
        "id": f"M-{STACK}-202611231000-1",
        "site": STACK,
        "device": CEMS,
        "type": MarkType.SHUTDOWN,
        "start": T0,
        "end": T0 + 2 * HOUR,
        "reason": "停炉",
        "made_by": "enterprise:E-007",
        "made_at": NOW,
    }
    return Mark(**(base | changes))


def proof(data: bytes = PDF) -> Proof:
    sha = hashlib.sha256(data).hexdigest()
    return Proof(
        sha256=sha,
        name="停炉.pdf",
        content_type="application/pdf",
        size=len(data),
        at=NOW,
        by="enterprise:E-007",
    )


def event(kind: MarkEventKind, m: Mark) -> MarkEvent:
    return MarkEvent(kind=kind, mark=m, actor="enterprise:E-007", at=NOW)


def test_changes_in_flight_fold_over_the_table_but_never_back() -> None:
    declared = mark()
    proven = mark(proofs=(proof(),))
    accepted = proven.model_copy(update={"status": MarkStatus.ACCEPTED})
    flying = [event(MarkEventKind.DECLARED, declared), event(MarkEventKind.PROOF_ADDED, proven)]
    assert marks_now({}, flying) == {declared.id: proven}
    # The agent applied both, and another worker's review since: the table's is newer.
    assert marks_now({declared.id: accepted}, flying) == {declared.id: accepted}


def test_marks_in_flight_expire_and_can_be_dropped() -> None:
    now = [0.0]
    flight = MarksInFlight(seconds=60, clock=lambda: now[0])
    e = event(MarkEventKind.DECLARED, mark())
    flight.add(e)
    assert flight.of(STACK) == [e] and flight.of("S-OUT-001") == []
    now[0] = 61
    assert flight.of(STACK) == [] and len(flight) == 0
    flight.add(e)
    flight.drop(e)
    assert flight.of(STACK) == [] and len(flight) == 0


def test_a_mark_row_gives_each_proof_its_url() -> None:
    row = mark_row(mark(proofs=(proof(),)))
    sha = hashlib.sha256(PDF).hexdigest()
    assert row["proofs"][0]["url"] == f"/api/proofs/{sha}?site={STACK}"
    assert row["type"] == "shutdown" and json.loads(json.dumps(row)) == row


# -- the endpoints, with the worker stood in for -------------------------------------------------


class Topic:
    """``ecowatch.marks`` as the API produces to it."""

    def __init__(self) -> None:
        self.sent: list[MarkEvent] = []
        self.down = False

    async def send(self, key: bytes, value: bytes) -> None:
        if self.down:
            raise RuntimeError("no broker")
        parsed = MarkEvent.model_validate_json(value)
        assert key == parsed.site.encode()
        self.sent.append(parsed)


class Worker:
    """What the API reads of the worker: the site-rules table, the data clock, the policy."""

    def __init__(self) -> None:
        self.marks = Topic()
        self.table: dict[str, SiteState] = {}
        self.judge = SimpleNamespace(ctx=SimpleNamespace(marks=MarkPolicy()))

    def site_rules(self, site: str) -> SiteState | None:
        return self.table.get(site)

    def site_now(self, site: str) -> datetime:
        return NOW

    def apply(self) -> None:
        """The enforce agent's part: each event's mark into its site's state."""
        for e in self.marks.sent:
            state = self.table.setdefault(e.site, SiteState(site=e.site))
            state.marks[e.mark.id] = e.mark


class Here:
    """A router that holds every site here."""

    def owner(self, site: str) -> None:
        return None


def request(token: str, headers: dict[str, str] | None = None, **query: str) -> Any:
    return SimpleNamespace(
        headers={"Authorization": f"Bearer {token}", **(headers or {})},
        query=MultiDict(query),
        method="POST",
    )


@pytest.fixture
def api(catalogue: Catalogue, tmp_path: Path) -> tuple[CaseApi, Worker]:
    worker = Worker()
    cases = CaseApi(None, worker, catalogue, TOKENS, None, ProofStore(tmp_path))  # type: ignore[arg-type]
    cases.marks.sites = Here()  # type: ignore[assignment]
    return cases, worker


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_an_enterprise_is_refused_every_case_endpoint(api: tuple[CaseApi, Worker]) -> None:
    cases, _ = api
    with refused(403, "cases are for officers and operators"):
        cases.case_caller(request("t-e7"))
    assert cases.case_caller(request("t-kc3")).who == "O-KC-03"


def test_a_mark_is_declared_once_even_before_the_agent_has_it(api) -> None:
    cases, worker = api
    marks = cases.marks
    clock = [0.0]
    marks.in_flight = MarksInFlight(seconds=60, clock=lambda: clock[0])
    made = run(marks.declare(request("t-e7"), STACK, body()))
    assert (made.status, made.made_by, made.made_at) == (
        MarkStatus.PENDING,
        "enterprise:E-007",
        NOW,
    )
    (sent,) = worker.marks.sent
    assert sent.kind is MarkEventKind.DECLARED and sent.mark == made and sent.at == NOW
    with refused(409, f"start: overlaps the shutdown mark {made.id}"):  # in flight
        run(marks.declare(request("t-e7"), STACK, body()))
    worker.apply()
    clock[0] = 61  # forgotten in flight: the table has it now
    with refused(409, "overlaps"):
        run(marks.declare(request("t-e7"), STACK, body()))
    assert len(worker.marks.sent) == 1


def test_who_may_declare(api) -> None:
    marks = api[0].marks
    with refused(403, r"declared and proven by the site's enterprise \(E-007\)"):
        run(marks.declare(request("t-kc3"), STACK, body()))
    with refused(403, f"site {STACK} is not yours"):
        run(marks.declare(request("t-e1"), STACK, body()))
    with refused(404, "no site 'S-NONE'"):
        run(marks.declare(request("t-e7"), "S-NONE", body()))
    with refused(400, "start: a shutdown mark is made within 1 d of its start"):
        run(marks.declare(request("t-e7"), STACK, body(start="2026-11-20T00:00:00+08:00")))
    with refused(400, "device: '33080200000001' is not a device of S-STK-001"):
        run(marks.declare(request("t-e7"), STACK, body(device="33080200000001")))
    with refused(400, "unknown parameter"):
        run(marks.declare(request("t-e7", x="1"), STACK, body()))


def test_a_declaration_kafka_did_not_take_is_not_held_in_flight(api) -> None:
    cases, worker = api
    worker.marks.down = True
    with refused(503, "could not be passed on"):
        run(cases.marks.declare(request("t-e7"), STACK, body()))
    worker.marks.down = False
    run(cases.marks.declare(request("t-e7"), STACK, body()))  # not refused as an overlap
    assert len(worker.marks.sent) == 1


def test_a_proof_is_kept_and_added_once(api) -> None:
    cases, worker = api
    marks = cases.marks
    made = run(marks.declare(request("t-e7"), STACK, body()))
    proven = run(marks.add_proof(request("t-e7", PDF_HEADERS), STACK, made.id, PDF))
    (p,) = proven.proofs
    assert (p.name, p.content_type, p.size) == ("停炉.pdf", "application/pdf", len(PDF))
    assert (p.by, p.at) == ("enterprise:E-007", NOW)
    assert marks.proofs.get(p.sha256) == PDF
    assert [e.kind for e in worker.marks.sent] == [
        MarkEventKind.DECLARED,
        MarkEventKind.PROOF_ADDED,
    ]
    again = run(marks.add_proof(request("t-e7", PDF_HEADERS), STACK, made.id, PDF))
    assert again.proofs == proven.proofs and len(worker.marks.sent) == 2  # nothing new sent
    with refused(404, "no mark 'M-x' at S-STK-001"):
        run(marks.add_proof(request("t-e7", PDF_HEADERS), STACK, "M-x", PDF))
    with refused(403, "declared and proven by the site's enterprise"):
        run(marks.add_proof(request("t-kc3", PDF_HEADERS), STACK, made.id, PDF))
    with refused(400, "the body is empty"):
        run(marks.add_proof(request("t-e7", PDF_HEADERS), STACK, made.id, b""))
    with refused(400, "X-Filename"):
        run(marks.add_proof(request("t-e7", {"Content-Type": "image/png"}), STACK, made.id, PDF))


def test_an_officer_of_the_grid_reviews_once(api) -> None:
    cases, worker = api
    marks = cases.marks
    made = run(marks.declare(request("t-e7"), STACK, body()))
    accept = b'{"accept": true, "reason": "\xe5\x90\x8c\xe6\x84\x8f"}'
    with refused(403, f"site {STACK} is not yours"):  # O-KC-01 is of grid G-KC-01
        run(marks.review(request("t-kc1"), STACK, made.id, accept))
    with refused(403, "officers of grid G-KC-02 review marks, not the enterprise"):
        run(marks.review(request("t-e7"), STACK, made.id, accept))
    with refused(403, "operators watch"):
        run(marks.review(request("t-ops"), STACK, made.id, accept))
    with refused(400, "reason: a rejection says why"):
        run(marks.review(request("t-kc3"), STACK, made.id, b'{"accept": false}'))
    done = run(marks.review(request("t-kc3"), STACK, made.id, accept))
    assert (done.status, done.reviewed_by, done.review_reason) == (
        MarkStatus.ACCEPTED,
        "O-KC-03",
        "同意",
    )
    assert worker.marks.sent[-1].kind is MarkEventKind.ACCEPTED
    # The supervisor's review right after, before the agent has the first: refused.
    with refused(409, f"status: mark {made.id} was already accepted"):
        run(marks.review(request("t-skc"), STACK, made.id, b'{"accept": false, "reason": "x"}'))
    with refused(409, "no more proof"):
        run(marks.add_proof(request("t-e7", PDF_HEADERS), STACK, made.id, PDF))
    assert marks.proofs.get(hashlib.sha256(PDF).hexdigest()) is None  # refused before it was kept


def test_who_sees_a_sites_marks_and_its_proofs(api) -> None:
    cases, _ = api
    marks = cases.marks
    made = run(marks.declare(request("t-e7"), STACK, body()))
    run(marks.add_proof(request("t-e7", PDF_HEADERS), STACK, made.id, PDF))
    for token in ("t-e7", "t-kc3", "t-skc", "t-ops"):
        listed = run(marks.list_marks(request(token), STACK))
        assert [m["id"] for m in listed["marks"]] == [made.id], token
        assert listed["now"] == NOW.isoformat()
    for token in ("t-e1", "t-kc1"):
        with refused(403, "is not yours"):
            run(marks.list_marks(request(token), STACK))
    sha = hashlib.sha256(PDF).hexdigest()
    data, held = run(marks.proof(request("t-kc3", site=STACK), sha))
    assert data == PDF and held.content_type == "application/pdf"
    with refused(403, "is not yours"):
        run(marks.proof(request("t-e1", site=STACK), sha))
    with refused(400, "site: missing"):
        run(marks.proof(request("t-e7"), sha))
    with refused(404, "no mark of S-STK-001 holds the proof"):
        run(marks.proof(request("t-e7", site=STACK), "0" * 64))
    with refused(404, "expected a SHA-256"):
        run(marks.proof(request("t-e7", site=STACK), "../../etc/passwd"))
    marks.proofs.path(sha).write_bytes(b"forged")
    with refused(500, "is damaged; it is not served"):
        run(marks.proof(request("t-e7", site=STACK), sha))


# -- reading and forwarding ----------------------------------------------------------------------


class Stream:
    """aiohttp's request body stream, in chunks."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    async def read(self, n: int) -> bytes:
        chunk, self.data = self.data[:n], self.data[n:]
        return chunk


def test_a_proof_is_read_from_the_stream_up_to_its_cap() -> None:
    def upload(data: bytes, length: str | None = None) -> Any:
        headers = {"Content-Length": length} if length is not None else {}
        return SimpleNamespace(headers=headers, content=Stream(data))

    assert run(read_proof(upload(b"x" * 200_000), 200_000)) == b"x" * 200_000
    with refused(413, "a proof is at most 100 bytes"):
        run(read_proof(upload(b"x" * 10, "101"), 100))  # told: refused before reading
    with refused(413, "a proof is at most 100 bytes"):
        run(read_proof(upload(b"x" * 101), 100))  # not told (chunked): counted


class Elsewhere:
    """A router whose every site is held by another worker."""

    def __init__(self) -> None:
        self.forwarded: list[tuple[str, bytes | None, dict[str, str] | None]] = []

    def owner(self, site: str) -> str:
        return "http://worker-2:6066"

    async def forward(self, request: Any, url: str, path_qs: str, body=None, extra=None):
        self.forwarded.append((path_qs, body, extra))
        return 202, {"mark": "as the owner answered"}


def test_a_proof_for_a_site_held_elsewhere_is_forwarded_whole(api) -> None:
    marks = api[0].marks
    router = marks.sites = Elsewhere()  # type: ignore[assignment]
    view = SimpleNamespace(json=lambda doc, status: (status, doc))
    path = f"/api/sites/{STACK}/marks/M-1/proofs"

    def upload(token: str) -> Any:
        return SimpleNamespace(
            headers={"Authorization": f"Bearer {token}", **PDF_HEADERS},
            query=MultiDict(),
            method="POST",
            content=Stream(PDF),
            url=SimpleNamespace(path_qs=path),
        )

    async def here(raw: bytes) -> dict[str, Any]:
        raise AssertionError("answered here")

    answer = run(marks.routed(view, upload("t-e7"), STACK, here, 202, raw_body=True))
    assert answer == (202, {"mark": "as the owner answered"})
    assert router.forwarded == [(path, PDF, PDF_HEADERS)]
    # An officer's upload is refused here, before its bytes are read or sent on.
    with refused(403, "declared and proven by the site's enterprise"):
        run(marks.routed(view, upload("t-kc3"), STACK, here, 202, raw_body=True))
    assert len(router.forwarded) == 1
