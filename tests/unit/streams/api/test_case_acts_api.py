"""The case API's acts (streams/api/views.py): once-only action ids, photos and findings with a
site visit, comments, supervision (督办) and reassignment (改派), what a case row offers, and the
refusals' codes, with the worker's tables, Kafka and the other workers stood in for."""

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

from ecowatch.alerts.routing import route
from ecowatch.alerts.templates import render
from ecowatch.config.catalogue import Catalogue
from ecowatch.edges.tokens import hashed
from ecowatch.schema import CaseEvent, Location, OfficerAction
from ecowatch.streams.api.forwarding import SiteData, SiteRouter
from ecowatch.streams.api.requests import (
    Refusal,
    ack_body,
    comment_body,
    findings_body,
    reassign_body,
    supervise_body,
)
from ecowatch.streams.api.views import CaseApi, guarded
from ecowatch.streams.judging.cases import officer_input
from ecowatch.streams.judging.engine import SiteCases, on_action
from ecowatch.streams.judging.marks import MarkPolicy
from ecowatch.streams.judging.report import SiteCaseLog
from ecowatch.streams.storage.photos import CasePhotos, image_type
from ecowatch.streams.storage.proofs import ProofStore
from tests.factories import SITE, T0, site_cases

NOW = T0 + timedelta(hours=2, minutes=5)  # the site's data clock: the case is escalated
TOKENS = hashed(
    {
        "t-kc1": "O-KC-01",
        "t-kc2": "O-KC-02",
        "t-qj": "O-QJ-01",
        "t-ops": "operator:night",
        "t-e1": "enterprise:E-001",
    }
)
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x11" * 2000
PNG = b"\x89PNG\r\n\x1a\n" + b"\x22" * 500
JPEG_SHA = hashlib.sha256(JPEG).hexdigest()


@contextmanager
def refused(
    status: int, code: str, match: str | None = None
) -> Iterator[pytest.ExceptionInfo[Refusal]]:
    with pytest.raises(Refusal, match=match) as info:
        yield info
    assert (info.value.status, info.value.code) == (status, code), info.value.reason


# -- what a request may carry --------------------------------------------------------------------


def test_findings_carry_photos_a_location_and_the_visit() -> None:
    body = {
        "text": "现场核查：已停产",
        "photos": [JPEG_SHA, JPEG_SHA],
        "location": {"lat": 28.97, "lon": 118.87, "accuracy_m": 8},
        "visited_at": "2026-11-23T10:30:00+08:00",
        "action_id": "phone-1_a",
    }
    asked = findings_body(json.dumps(body).encode(), NOW)
    assert asked.photos == (JPEG_SHA,)  # once each
    assert asked.location == Location(lat=28.97, lon=118.87, accuracy_m=8)
    assert asked.visited_at == datetime.fromisoformat("2026-11-23T10:30:00+08:00")
    assert asked.action_id == "phone-1_a"
    bare = findings_body(b'{"text": "x", "location": null, "visited_at": null}', NOW)
    assert (bare.location, bare.visited_at, bare.photos, bare.action_id) == (None, None, (), None)


@pytest.mark.parametrize(
    ("changes", "field", "code"),
    [
        ({"action_id": ""}, "action_id", "invalid_field"),
        ({"action_id": "a" * 65}, "action_id", "invalid_field"),
        ({"action_id": "a b"}, "action_id", "invalid_field"),
        ({"action_id": 5}, "action_id", "invalid_field"),
        ({"photos": ["nothex"]}, "photos", "invalid_field"),
        ({"photos": "abc"}, "photos", "invalid_field"),
        ({"photos": [f"{n:064x}" for n in range(10)]}, "photos", "invalid_field"),
        ({"location": {"lat": 91, "lon": 0, "accuracy_m": 1}}, "location.lat", "invalid_field"),
        ({"location": {"lat": 0, "lon": -181, "accuracy_m": 1}}, "location.lon", "invalid_field"),
        ({"location": {"lat": 0, "lon": 0, "accuracy_m": -1}}, "location.accuracy_m", None),
        ({"location": {"lat": True, "lon": 0, "accuracy_m": 1}}, "location.lat", None),
        ({"location": {"lat": 0, "lon": 0}}, "location.accuracy_m", None),
        ({"location": {"lat": 0, "lon": 0, "accuracy_m": 1, "alt": 3}}, "location", None),
        ({"location": [28, 118]}, "location", None),
        ({"visited_at": "2026-11-23T10:30:00"}, "visited_at", None),
        ({"visited_at": "yesterday"}, "visited_at", None),
        ({"visited_at": (NOW + timedelta(hours=1)).isoformat()}, "visited_at", "visit_in_future"),
    ],
)
def test_findings_refuse_what_they_cannot_use_naming_the_field(
    changes: dict[str, Any], field: str, code: str | None
) -> None:
    raw = json.dumps({"text": "到场", **changes}).encode()
    with pytest.raises(Refusal) as info:
        findings_body(raw, NOW)
    assert info.value.status == 400 and info.value.field == field, info.value.reason
    assert info.value.reason.startswith(f"{field}:")
    assert info.value.code == (code or "invalid_field")


def test_a_non_finite_coordinate_is_refused() -> None:
    # Python's json reads NaN and Infinity; a position must not be one.
    for bad in ("NaN", "Infinity"):
        raw = f'{{"text": "x", "location": {{"lat": {bad}, "lon": 1, "accuracy_m": 1}}}}'
        with refused(400, "invalid_field", "location.lat"):
            findings_body(raw.encode(), NOW)


def test_the_other_acts_bodies() -> None:
    assert ack_body(b"") is None and ack_body(b"{}") is None
    assert ack_body(b'{"action_id": "x-1"}') == "x-1"
    with refused(400, "bad_request", "unknown field"):
        ack_body(b'{"text": "x"}')
    assert comment_body('{"text": "已电话联系企业"}'.encode()) == ("已电话联系企业", None)
    with refused(400, "invalid_field", "text: empty"):
        comment_body(b'{"text": " "}')
    due = NOW + timedelta(hours=8)
    pressed = supervise_body(
        json.dumps({"note": "今日办结", "deadline": due.isoformat(), "action_id": "s1"}).encode(),
        NOW,
    )
    assert (pressed.note, pressed.deadline, pressed.action_id) == ("今日办结", due, "s1")
    with refused(400, "deadline_passed", "deadline: .* is not after the site's time now"):
        supervise_body(json.dumps({"note": "x", "deadline": NOW.isoformat()}).encode(), NOW)
    with refused(400, "invalid_field", "note: expected a string"):
        supervise_body(json.dumps({"deadline": due.isoformat()}).encode(), NOW)
    with refused(400, "invalid_field", "deadline: expected a time"):
        supervise_body(b'{"note": "x"}', NOW)


# -- the endpoints, with the worker stood in for -------------------------------------------------


class Topic:
    """``ecowatch.actions`` as the API produces to it."""

    def __init__(self) -> None:
        self.sent: list[OfficerAction] = []
        self.down = False

    async def send(self, key: bytes, value: bytes) -> None:
        if self.down:
            raise RuntimeError("no broker")
        action = OfficerAction.model_validate_json(value)
        assert key == action.site.encode()
        self.sent.append(action)


class Worker:
    """What the API reads of the worker: the cases table, the case log, the data clock."""

    def __init__(self, catalogue: Catalogue, cases: SiteCases) -> None:
        self.catalogue = catalogue
        self.actions = Topic()
        self.cases = {SITE: cases}
        self.logs: dict[str, SiteCaseLog] = {}
        self.judge = SimpleNamespace(ctx=SimpleNamespace(marks=MarkPolicy()))
        self.applied = 0

    def site_cases(self, site: str) -> SiteCases:
        return self.cases.get(site, SiteCases())

    def case_log(self, site: str) -> SiteCaseLog:
        return self.logs.get(site, SiteCaseLog())

    def site_now(self, site: str) -> datetime:
        return NOW

    def apply(self, now: datetime = NOW) -> list[CaseEvent]:
        """The enforce agent's part: the actions sent since, on the table."""
        events: list[CaseEvent] = []
        for action in self.actions.sent[self.applied :]:
            state, out = on_action(
                self.site_cases(action.site),
                action.case_id,
                officer_input(action),
                now,
                self.catalogue,
            )
            self.cases[action.site] = state
            self.logs[action.site] = self.case_log(action.site).add(out.events)
            events += out.events
        self.applied = len(self.actions.sent)
        return events


class Here(SiteRouter):
    """A router that holds every site here: the real one's reading of the sites' states (by
    grid, with the cases reassigned into them), on the stood-in worker's tables."""

    def __init__(self, worker: Worker, catalogue: Catalogue) -> None:
        self.worker, self.catalogue = worker, catalogue

    def owner(self, site: str) -> None:
        return None

    def local(self, site: str) -> SiteData:
        return SiteData(self.worker.site_cases(site), NOW)


class Stream:
    def __init__(self, data: bytes) -> None:
        self.data = data

    async def read(self, n: int) -> bytes:
        chunk, self.data = self.data[:n], self.data[n:]
        return chunk


def request(
    token: str,
    body: bytes | dict[str, Any] = b"",
    headers: dict[str, str] | None = None,
    method: str = "POST",
    **query: str,
) -> Any:
    raw = json.dumps(body).encode() if isinstance(body, dict) else body

    async def read() -> bytes:
        return raw

    return SimpleNamespace(
        headers={"Authorization": f"Bearer {token}", **(headers or {})},
        query=MultiDict(query),
        method=method,
        read=read,
        content=Stream(raw),
        url=SimpleNamespace(path_qs="/"),
    )


VIEW = SimpleNamespace(json=lambda doc, status: (status, doc))


@pytest.fixture
def api(catalogue: Catalogue, tmp_path: Path) -> tuple[CaseApi, Worker, str]:
    state = site_cases(catalogue, timedelta(hours=2))  # escalated to G-KC-01's officers
    (case,) = state.cases.values()
    worker = Worker(catalogue, state)
    clock = SimpleNamespace(now=lambda: NOW)
    cases = CaseApi(None, worker, catalogue, TOKENS, clock, ProofStore(tmp_path))  # type: ignore[arg-type]
    cases.sites = Here(worker, catalogue)  # type: ignore[assignment]
    return cases, worker, case.id


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def post(api: CaseApi, token: str, case_id: str, action: str, body: Any = b"") -> Any:
    return run(api.accepted(VIEW, request(token, body), SITE, case_id, action))


def test_an_action_id_again_is_a_duplicate_and_sends_nothing(api) -> None:
    cases, worker, case_id = api
    first = post(cases, "t-kc1", case_id, "acknowledge", {"action_id": "ack-1"})
    assert first == (
        202,
        {"accepted": "acknowledge", "case": case_id, "officer": "O-KC-01", "action_id": "ack-1"},
    )
    # Before the agent has it (in flight): the phone's retry is answered, not refused.
    again = post(cases, "t-kc1", case_id, "acknowledge", {"action_id": "ack-1"})
    assert again[0] == 200 and again[1]["duplicate"] is True
    assert len(worker.actions.sent) == 1
    # Applied, and forgotten in flight (a restarted worker): the case's table row knows it.
    worker.apply()
    cases.in_flight._items.clear()
    assert post(cases, "t-kc1", case_id, "acknowledge", {"action_id": "ack-1"})[0] == 200
    assert len(worker.actions.sent) == 1
    # Without an id, the same ack is the refusal it always was.
    with refused(409, "already_acknowledged", "already acknowledged by O-KC-01"):
        post(cases, "t-kc2", case_id, "acknowledge")


def test_the_act_that_closed_a_case_is_still_a_duplicate(api) -> None:
    cases, worker, case_id = api
    (case,) = worker.cases[SITE].cases.values()
    # The data has held normal for long: findings asking to close close it at once.
    normal = case.model_copy(update={"normal_since": T0})
    worker.cases[SITE] = SiteCases(cases={case.key: normal})
    body = {"text": "已整改", "close": True, "action_id": "close-1"}
    assert post(cases, "t-kc1", case_id, "findings", body)[0] == 202
    assert worker.apply(NOW + timedelta(days=3))[-1].kind == "closed"
    cases.in_flight._items.clear()
    assert not worker.cases[SITE].cases
    assert post(cases, "t-kc1", case_id, "findings", body)[1]["duplicate"] is True
    with refused(409, "case_closed", "was closed at"):
        post(cases, "t-kc1", case_id, "findings", {**body, "action_id": "close-2"})


def test_who_may_do_what(api) -> None:
    cases, _, case_id = api
    with refused(403, "officers_act"):
        post(cases, "t-ops", case_id, "acknowledge")
    with refused(403, "officers_act"):
        post(cases, "t-ops", case_id, "findings", {"text": "x"})
    with refused(403, "operators_only"):
        post(cases, "t-kc1", case_id, "supervise", {"note": "x", "deadline": NOW.isoformat()})
    with refused(403, "not_your_grid"):
        post(cases, "t-qj", case_id, "comment", {"text": "x"})
    with refused(403, "not_for_enterprise"):
        post(cases, "t-e1", case_id, "comment", {"text": "x"})
    with refused(404, "no_case"):
        post(cases, "t-kc1", "C-none", "comment", {"text": "x"})
    with refused(400, "invalid_field", "action_id: expected 1-64 characters"):
        post(cases, "t-kc1", case_id, "acknowledge", {"action_id": "no spaces"})


def test_acknowledging_a_reminded_case_says_why(api, catalogue: Catalogue) -> None:
    cases, worker, _ = api
    reminded = site_cases(catalogue, timedelta(minutes=30))
    worker.cases[SITE] = reminded
    (case,) = reminded.cases.values()
    with refused(409, "not_escalated", "has not reached the officers yet"):
        post(cases, "t-kc1", case.id, "acknowledge")
    # A comment fits any open case.
    assert post(cases, "t-ops", case.id, "comment", {"text": "请关注"})[0] == 202


def test_an_operator_supervises_and_comments(api) -> None:
    cases, worker, case_id = api
    due = NOW + timedelta(hours=6)
    done = post(
        cases, "t-ops", case_id, "supervise", {"note": "今日到场", "deadline": due.isoformat()}
    )
    assert done[0] == 202
    assert post(cases, "t-kc2", case_id, "comment", {"text": "已安排"})[0] == 202
    pressed, said = worker.actions.sent
    assert (pressed.action, pressed.officer, pressed.note, pressed.deadline) == (
        "supervise",
        "operator:night",
        "今日到场",
        due,
    )
    assert (said.action, said.text) == ("comment", "已安排")
    events = worker.apply()
    assert [e.kind for e in events] == ["supervised", "commented"]
    with refused(400, "deadline_passed"):
        post(cases, "t-ops", case_id, "supervise", {"note": "x", "deadline": T0.isoformat()})


def test_a_photo_is_uploaded_for_a_case_then_recorded_with_findings(api) -> None:
    cases, worker, case_id = api

    def upload(token: str, data: bytes, kind: str = "image/jpeg", case: str = case_id) -> Any:
        headers = {"Content-Type": kind, "X-Filename": "%E7%8E%B0%E5%9C%BA.jpg"}
        return run(cases.upload_photo(VIEW, request(token, data, headers), SITE, case))

    status, answer = upload("t-kc1", JPEG)
    assert status == 202
    assert answer == {
        "sha256": JPEG_SHA,
        "size": len(JPEG),
        "content_type": "image/jpeg",
        "url": f"/api/photos/{JPEG_SHA}?site={SITE}",
    }
    with refused(415, "photo_type"):
        upload("t-kc1", b"GIF89a" + b"\x00" * 100, "image/gif")
    with refused(415, "photo_type", "not a image/png image"):
        upload("t-kc1", JPEG, "image/png")  # the bytes decide, not the header
    with refused(403, "officers_act"):
        upload("t-ops", JPEG)
    with refused(403, "not_your_grid"):
        upload("t-qj", JPEG)
    with refused(404, "no_case"):
        upload("t-kc1", JPEG, case="C-none")
    png_sha = hashlib.sha256(PNG).hexdigest()
    body = {"text": "排口取样", "photos": [JPEG_SHA, png_sha]}
    with refused(400, "photo_not_uploaded", f"photos: {png_sha} was not uploaded"):
        post(cases, "t-kc1", case_id, "findings", body)
    upload("t-kc1", PNG, "image/png")
    where = {"lat": 28.9, "lon": 118.8, "accuracy_m": 20}
    visit = {**body, "location": where, "visited_at": NOW.isoformat()}
    assert post(cases, "t-kc1", case_id, "findings", visit)[0] == 202
    (sent,) = worker.actions.sent
    assert sent.photos == (JPEG_SHA, png_sha) and sent.location == Location(**where)
    (_, found) = worker.apply()
    assert (found.kind, found.photos, found.visited_at) == (
        "findings_recorded",
        (JPEG_SHA, png_sha),
        NOW,
    )


def test_a_photo_is_served_to_who_may_see_the_site(api) -> None:
    cases, _, case_id = api
    headers = {"Content-Type": "image/jpeg", "X-Filename": "a.jpg"}
    run(cases.upload_photo(VIEW, request("t-kc1", JPEG, headers), SITE, case_id))

    def get(token: str, sha: str = JPEG_SHA, **query: str) -> Any:
        return run(cases.photo(request(token, method="GET", **query), sha))

    for token in ("t-kc1", "t-kc2", "t-ops"):
        data, record = get(token, site=SITE)
        assert data == JPEG and record.content_type == "image/jpeg" and record.by == "O-KC-01"
    with refused(403, "not_your_grid"):
        get("t-qj", site=SITE)
    with refused(403, "not_for_enterprise"):
        get("t-e1", site=SITE)
    with refused(404, "no_photo"):  # in the store, but not a photo of this site's cases
        get("t-ops", site="S-OUT-004")
    with refused(404, "no_photo"):
        get("t-kc1", "0" * 64, site=SITE)
    with refused(404, "no_photo"):
        get("t-kc1", "../etc", site=SITE)
    with refused(400, "bad_request", "site: missing"):
        get("t-kc1")


def test_case_rows_say_what_the_caller_can_do(api) -> None:
    cases, worker, case_id = api

    def row(token: str) -> dict[str, Any]:
        listed = run(cases.list_cases(request(token, method="GET")))
        (found,) = [r for r in listed["cases"] if r["id"] == case_id]
        return found

    officer = row("t-kc1")
    assert officer["can"] == ["ack", "findings", "photos", "comment"]
    assert (officer["grid"], officer["supervised_due"]) == ("G-KC-01", None)
    assert row("t-ops")["can"] == ["comment", "supervise", "reassign"]
    post(cases, "t-kc1", case_id, "acknowledge")
    due = NOW + timedelta(hours=3)
    post(cases, "t-ops", case_id, "supervise", {"note": "x", "deadline": due.isoformat()})
    worker.apply()
    assert row("t-kc2")["can"] == ["findings", "photos", "comment"]
    assert row("t-kc2")["supervised_due"] == due.isoformat()


def test_a_refusal_answers_its_code_and_field() -> None:
    async def refuse() -> Any:
        raise Refusal(400, "action_id: bad", code="invalid_field", field="action_id")

    view = SimpleNamespace(
        error=lambda status, reason, headers=None, **more: (status, reason, more)
    )
    status, reason, more = run(guarded(view, refuse()))  # type: ignore[arg-type]
    assert (status, reason, more) == (
        400,
        "action_id: bad",
        {"code": "invalid_field", "field": "action_id"},
    )
    assert Refusal(503, "x").body() == {"code": "unavailable"}


def test_the_photo_store_records_which_case_a_photo_is_for(tmp_path: Path) -> None:
    photos = CasePhotos(ProofStore(tmp_path))
    record = photos.put(SITE, "C-1", JPEG, "a.jpg", "O-KC-01", NOW)
    assert record.sha256 == JPEG_SHA and record.content_type == "image/jpeg"
    assert photos.uploaded_for(SITE, "C-1", JPEG_SHA)
    assert not photos.uploaded_for(SITE, "C-2", JPEG_SHA)
    assert not photos.uploaded_for("S-OUT-002", "C-1", JPEG_SHA)
    assert not photos.uploaded_for(SITE, "../C-1", JPEG_SHA)
    assert photos.record(SITE, JPEG_SHA) == record and photos.get(JPEG_SHA) == JPEG
    assert photos.record("S-OUT-002", JPEG_SHA) is None
    with pytest.raises(ValueError, match="not a JPEG"):
        photos.put(SITE, "C-1", b"<svg/>", "x.svg", "O-KC-01", NOW)
    small = CasePhotos(ProofStore(tmp_path), max_bytes=100)
    with pytest.raises(ValueError, match="at most 100"):
        small.put(SITE, "C-1", JPEG, "a.jpg", "O-KC-01", NOW)
    assert image_type(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image/webp"


def test_a_retry_is_a_duplicate_even_if_its_fields_would_no_longer_pass(api) -> None:
    """The retry of a 督办 whose deadline the site's clock has passed since: done, not 400."""
    cases, worker, case_id = api
    due = NOW + timedelta(minutes=1)
    pressed = {"note": "x", "deadline": due.isoformat(), "action_id": "dub-1"}
    assert post(cases, "t-ops", case_id, "supervise", pressed)[0] == 202
    later = pressed | {"deadline": (NOW - timedelta(minutes=1)).isoformat()}
    assert post(cases, "t-ops", case_id, "supervise", later) == (
        200,
        {
            "duplicate": True,
            "accepted": "supervise",
            "case": case_id,
            "officer": "operator:night",
            "action_id": "dub-1",
        },
    )
    with refused(400, "deadline_passed"):
        post(cases, "t-ops", case_id, "supervise", later | {"action_id": "dub-2"})
    assert len(worker.actions.sent) == 1


# -- 改派: a case handed to another grid ---------------------------------------------------------


def test_a_reassignments_body(catalogue: Catalogue) -> None:
    handed = reassign_body(
        '{"grid": "G-QJ-01", "note": "属地", "action_id": "r-1"}'.encode(), catalogue
    )
    assert (handed.grid, handed.note, handed.action_id) == ("G-QJ-01", "属地", "r-1")
    assert reassign_body(b'{"grid": "G-QJ-01", "note": ""}', catalogue).note == ""
    for bad in (b'{"grid": "G-NOWHERE"}', b'{"note": "x"}', b'{"grid": 5}'):
        with refused(400, "invalid_field", "grid: expected one of the catalogue's grids") as info:
            reassign_body(bad, catalogue)
        assert info.value.field == "grid"
    with refused(400, "invalid_field", "note: empty"):
        reassign_body(b'{"grid": "G-QJ-01", "note": "  "}', catalogue)


def listed(api: CaseApi, token: str) -> list[dict[str, Any]]:
    return run(api.list_cases(request(token, method="GET")))["cases"]


def test_an_operator_reassigns_a_case_to_another_grid(api, catalogue: Catalogue) -> None:
    cases, worker, case_id = api
    post(cases, "t-kc1", case_id, "acknowledge")
    worker.apply()
    body = {"grid": "G-QJ-01", "note": "属衢江区管辖", "action_id": "r-1"}
    with refused(403, "operators_only"):
        post(cases, "t-kc1", case_id, "reassign", body)
    with refused(409, "no_change", "in grid G-KC-01 already"):
        post(cases, "t-ops", case_id, "reassign", {**body, "grid": "G-KC-01"})
    with refused(400, "invalid_field") as info:
        post(cases, "t-ops", case_id, "reassign", {**body, "grid": "G-NOWHERE"})
    assert info.value.field == "grid"
    assert post(cases, "t-ops", case_id, "reassign", body)[0] == 202
    assert post(cases, "t-ops", case_id, "reassign", body)[1]["duplicate"] is True
    # In flight already: the old grid's officers no longer act on it, the new grid's do.
    with refused(403, "not_your_grid", "is in grid G-QJ-01, not yours"):
        post(cases, "t-kc2", case_id, "comment", {"text": "x"})
    (event,) = worker.apply()
    assert (event.kind, event.grid, event.note) == ("reassigned", "G-QJ-01", "属衢江区管辖")
    # The new grid's officer sees it, escalated to them, and may take it; the old grid's not.
    (row,) = [r for r in listed(cases, "t-qj") if r["id"] == case_id]
    assert (row["grid"], row["status"], row["acknowledged_by"]) == ("G-QJ-01", "escalated", None)
    assert row["can"] == ["ack", "findings", "photos", "comment"]
    assert not [r for r in listed(cases, "t-kc1") if r["id"] == case_id]
    (seen,) = [r for r in listed(cases, "t-ops") if r["id"] == case_id]
    assert seen["grid"] == "G-QJ-01" and seen["can"] == ["comment", "supervise", "reassign"]
    with refused(403, "not_your_grid"):
        post(cases, "t-kc1", case_id, "acknowledge")
    assert post(cases, "t-qj", case_id, "acknowledge")[0] == 202
    assert [e.kind for e in worker.apply()] == ["acknowledged"]
    # A photo for the findings: the new grid's officer's to upload, not the old grid's.
    headers = {"Content-Type": "image/jpeg", "X-Filename": "a.jpg"}
    with refused(403, "not_your_grid"):
        run(cases.upload_photo(VIEW, request("t-kc1", JPEG, headers), SITE, case_id))
    assert run(cases.upload_photo(VIEW, request("t-qj", JPEG, headers), SITE, case_id))[0] == 202


def test_the_site_state_a_worker_answers_follows_the_cases_grid(api) -> None:
    """What another worker reads here for a listing: the grid's sites without the cases
    reassigned away, and the sites of other grids with a case reassigned into it."""
    cases, worker, case_id = api
    post(cases, "t-ops", case_id, "reassign", {"grid": "G-QJ-01"})
    worker.apply()

    def state(token: str, **query: str) -> dict[str, Any]:
        return run(cases.site_state(request(token, method="GET", **query)))["sites"]

    assert state("t-kc1")[SITE]["cases"]["cases"] == {}
    assert [c["id"] for c in state("t-qj")[SITE]["cases"]["cases"].values()] == [case_id]
    assert [c["id"] for c in state("t-ops", grid="G-QJ-01")[SITE]["cases"]["cases"].values()] == [
        case_id
    ]
    assert SITE not in state("t-ops", grid="G-LY-01")


def test_a_reassignment_reaches_the_new_grids_officers(api, catalogue: Catalogue) -> None:
    cases, worker, case_id = api
    post(cases, "t-ops", case_id, "reassign", {"grid": "G-QJ-01", "note": "属地管辖"})
    (action,) = worker.actions.sent
    _, out = on_action(worker.site_cases(SITE), case_id, officer_input(action), NOW, catalogue)
    (note,) = out.notifications
    environ = {"ECOWATCH_NOTIFY_O_QJ_01": "json://qj", "ECOWATCH_NOTIFY_O_KC_01": "json://kc"}
    routing = route(note, catalogue, environ)
    assert [(r.recipient, r.urls) for r in routing.routes] == [("O-QJ-01", ("json://qj",))]
    message = render(note)
    assert message.title.startswith("【改派】") and "属地管辖" in message.body
    assert "改派至本网格" in message.body and "签收" in message.body
    english = render(note, "en")
    assert english.title.startswith("[Reassigned] ") and "reassigned to this grid" in english.body
