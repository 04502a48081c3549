"""How people's acts on a case read (alerts/wording.py case_event_text, alerts/templates.py):
findings with a site visit (现场核查), 督办 and 备注, in each language."""

from __future__ import annotations

from datetime import timedelta

from ecowatch.alerts.templates import render
from ecowatch.alerts.wording import both, case_event_text
from ecowatch.schema import Audience, CaseEvent, CaseStatus, CaseStep, Location
from tests.factories import CASE, SITE, T0, notification


def event(kind: str, **facts: object) -> CaseEvent:
    return CaseEvent.model_validate(
        {
            "case_id": CASE,
            "site": SITE,
            "kind": kind,
            "at": T0,
            "actor": "O-KC-01",
            "status": CaseStatus.ACKNOWLEDGED,
        }
        | facts
    )


def test_findings_say_the_visit_photos_and_place() -> None:
    found = event(
        "findings_recorded",
        text="排口有异味，已取样",
        photos=("ab" * 32, "cd" * 32),
        location=Location(lat=28.970123, lon=118.870456, accuracy_m=12),
        visited_at=T0 - timedelta(minutes=30),
    )
    assert both(case_event_text, found) == {
        "zh": "排口有异味，已取样（现场核查 2026-11-23 08:30，照片 2 张，"
        "定位 28.97012, 118.87046（±12 米））",
        "en": "排口有异味，已取样 (on site 2026-11-23 08:30; 2 photos; "
        "at 28.97012, 118.87046 (±12 m))",
    }
    # Words alone read as before.
    assert case_event_text(event("findings_recorded", text="已整改"), "en") == "已整改"


def test_supervision_and_comments_read_as_officers_write_them() -> None:
    pressed = event("supervised", note="今日内到场核查", deadline=T0 + timedelta(hours=6))
    assert both(case_event_text, pressed) == {
        "zh": "督办意见：今日内到场核查；办理期限 2026-11-23 15:00",
        "en": "今日内到场核查; deal with it by 2026-11-23 15:00",
    }
    assert case_event_text(event("commented", text="已电话联系企业")) == "已电话联系企业"
    moved = event("reassigned", grid="G-KC-02", note="属高新园区")
    assert case_event_text(moved) == "改派至网格 G-KC-02：属高新园区"


def test_a_supervision_notification_carries_the_note_and_deadline() -> None:
    note = notification(
        CaseStep.SUPERVISE,
        Audience.OFFICERS,
        note="今日内到场核查",
        deadline=T0 + timedelta(hours=6),
    )
    zh, en = render(note, "zh"), render(note, "en")
    assert zh.title.startswith("【督办】") and en.title.startswith("[Supervised] ")
    assert "督办意见：今日内到场核查（办理期限 2026-11-23 15:00，北京时间）" in zh.body
    assert "Supervised: 今日内到场核查 (deal with it by 2026-11-23 15:00 China time)" in en.body
