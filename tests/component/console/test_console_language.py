"""One language at a time: every screen of the console, in Chinese and in English, with a city
that has something of everything to show (values over their limits and flagged, a stack, an
air station, findings of several rules, a case from detection to the officer's findings, its
notifications, a dead letter, alarms, an enterprise's mark), read in a real browser. A screen
fails on any word of the other language, except what is data: the catalogue's names, the
officer's and the enterprise's own words, identifiers, codes, units and abbreviations that
both languages write alike (COD, PM2.5, mg/L, HJ 212).
"""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import async_playwright

from ecowatch.alerts.wording import both, finding_text
from ecowatch.config.catalogue import Catalogue
from ecowatch.pollutants import NAMES
from ecowatch.schema import (
    CaseEvent,
    CaseStatus,
    CaseStep,
    DeadLetter,
    Mark,
    MarkType,
    ReadingSource,
    RejectReason,
    Rule,
)
from tests.component.console.test_console_web import (
    CHROMIUM,
    T,
    console_for,
    reading,
    tokens_file,
)
from tests.factories import evidence, finding, notification

CASE = "20261125100000-S-OUT-001-w01018-hourly_over_limit"
WORDS = "现场核查：企业已停产整改，调取中控记录"  # typed by an officer: data
MARK_REASON = "1号锅炉计划停炉检修"  # typed by the enterprise: data
NOTE = "请于今日17时前核实停产情况并上报"  # an operator's 督办意见: data
PHOTO = "ab" * 32
STACK, CEMS = "S-STK-001", "33080200G00001"

# Words both languages write alike: pollutant abbreviations, units, standards, protocols.
SHARED = {
    "AQI",
    "PM",
    "CEMS",
    "COD",
    "BOD",
    "SO",
    "NO",
    "NOx",
    "NH",
    "O",
    "CO",
    "TP",
    "TN",
    "SS",
    "pH",
    "mg",
    "L",
    "m",
    "µg",
    "kg",
    "h",
    "min",
    "s",
    "HJ",
    "GB",
    "MQTT",
    "ecowatch",
    "IC",
    "N",
    "Qsn",
    "Zs",
    "InfluxDB",
    "CSV",
    "JSON",
    "UTF",
    "CRC",
}
# A language switch names the other language in its own words.
SWITCH = {"zh": "English", "en": "中文"}
CJK = re.compile(r"[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]")
LATIN_WORD = re.compile(r"[A-Za-z][A-Za-z]+")
# Identifiers: sites, devices, officers, grids, enterprises, cases, pollutant codes, marks,
# MQTT topics and paths.
IDENTIFIER = re.compile(
    r"\b(?:[A-Z]{1,4}-[A-Z0-9-]*\d[A-Za-z0-9_|:-]*|\d{6,}[A-Za-z0-9_-]*|[a-z]\d{5}|M-[\w-]+)"
    r"|\S*/\S*/\S*"
)


def data_words(catalogue: Catalogue, lang: str) -> list[str]:
    # A pollutant's name in the page's language (its names in the other are not data).
    names = [
        WORDS,
        MARK_REASON,
        NOTE,
        "王",
        *(pair[0 if lang == "zh" else 1] for pair in NAMES.values()),
    ]
    for site in catalogue.sites.values():
        names += [site.name, site.district]
    for grid in catalogue.grids.values():
        names += [grid.name, grid.district, *(o.name for o in grid.officers)]
    for company in catalogue.enterprises.values():
        names.append(company.name)
        if company.contact is not None:
            names.append(company.contact.name)
    return sorted(set(names), key=len, reverse=True)  # the longest first: no half-removed name


def strays(text: str, lang: str, data: list[str]) -> list[str]:
    """The words of the other language in ``text``, each with a little context."""
    for name in data:
        text = text.replace(name, " ")
    text = text.replace(SWITCH[lang], " ")
    text = IDENTIFIER.sub(" ", text)
    found: list[str] = []
    if lang == "en":
        for m in CJK.finditer(text):
            found.append(f"{m.group()} in …{text[max(0, m.start() - 20) : m.end() + 20]}…")
    else:
        for m in LATIN_WORD.finditer(text):
            if m.group() not in SHARED:
                found.append(f"{m.group()} in …{text[max(0, m.start() - 20) : m.end() + 20]}…")
    return found


async def shown(page: Any) -> str:
    """What a person can read on the page: its visible text, its title, the labels drawn in
    SVG (map and chart), the placeholders of its fields and its buttons' values."""
    parts = [await page.title(), await page.inner_text("body")]
    for selector, attribute in (("svg text", None), ("[placeholder]", "placeholder")):
        for element in await page.locator(selector).all():
            if not await element.is_visible():
                continue
            if attribute is None:
                parts.append(await element.text_content() or "")
            else:
                parts.append(await element.get_attribute(attribute) or "")
    return "\n".join(parts)


def the_city(console: Any, worker: Any, catalogue: Catalogue) -> None:
    city = console.city
    at = T
    city.on_reading(reading({"w01018": 95.0, "w21003": (3.0, "D"), "w01001": 7.2}, at), 0.0)
    city.on_reading(
        reading({"w01018": 30.0, "w21003": (2.0, "M")}, at, "S-OUT-002", "33080200000002"), 0.0
    )
    city.on_reading(
        reading({"a21026": 40.0, "a19001": 9.0, "a00000": 120.0, "a21002": 60.0}, at, STACK, CEMS),
        0.0,
    )
    city.on_reading(
        reading(
            {"a34004": 160.0, "a34002": 200.0, "a21026": 10.0, "a21004": 40.0},
            at,
            "S-AIR-001",
            "33080200A00001",
        ),
        0.0,
    )
    hourly = evidence(at=at)
    city.on_finding(hourly)
    city.on_finding(finding(Rule.CONSTANT_VALUE, at=at, value=120.0, count=12, limit=None))
    city.on_finding(
        finding(Rule.OFFLINE, pollutant=None, at=at, site="S-OUT-002", device="33080200000002")
    )
    steps = [
        ("detected", CaseStatus.PENDING, {"evidence": hourly}),
        ("reminded", CaseStatus.REMINDED, {"deadline": at + timedelta(hours=2)}),
        ("escalated", CaseStatus.ESCALATED, {}),
        ("acknowledged", CaseStatus.ACKNOWLEDGED, {"actor": "O-KC-01"}),
        (
            "findings_recorded",
            CaseStatus.ACKNOWLEDGED,
            {
                "actor": "O-KC-01",
                "text": WORDS,
                "photos": (PHOTO,),
                "location": {"lat": 28.97, "lon": 118.87, "accuracy_m": 12.0},
                "visited_at": at + timedelta(minutes=3),
            },
        ),
        (
            "supervised",
            CaseStatus.ACKNOWLEDGED,
            {"actor": "operator:王", "note": NOTE, "deadline": at + timedelta(hours=4)},
        ),
        ("commented", CaseStatus.ACKNOWLEDGED, {"actor": "operator:王", "text": NOTE}),
    ]
    for minutes, (kind, status, facts) in enumerate(steps):
        city.on_case_event(
            CaseEvent(
                case_id=CASE,
                site="S-OUT-001",
                kind=kind,
                at=at + timedelta(minutes=minutes),
                actor=facts.pop("actor", "system"),
                status=status,
                **facts,
            )
        )
    for step in (CaseStep.REMIND, CaseStep.ESCALATE):
        city.on_notification(notification(step, case_id=CASE, evidence=hourly))
    city.on_dead_letter(
        DeadLetter.of(
            source=ReadingSource.MQTT,
            origin="ecowatch/v1/S-OUT-001/x/reading",
            reason=RejectReason.BAD_JSON,
            detail="Expecting value: line 1 column 2",
            payload=b"{",
            received_at=T,
        ),
        0.0,
    )
    row = {
        "id": CASE,
        "site": "S-OUT-001",
        "site_name": catalogue.sites["S-OUT-001"].name,
        "status": "escalated",
        "rule": "hourly_over_limit",
        "pollutant": "w01018",
        "detail": both(finding_text, hourly),
        "first_seen": at.isoformat(),
        "deadline": (at + timedelta(hours=2)).isoformat(),
        "ack_due": (at + timedelta(hours=3)).isoformat(),
        "acknowledged_by": None,
        "findings": [],
        "grid": "G-KC-01",
        "supervised_due": None,
        "can": ["ack", "findings", "comment"],
    }
    pending = row | {"id": CASE + "-2", "status": "pending", "can": []}
    worker.rows = [row, pending]
    mark = Mark(
        id=f"M-{STACK}-202611251000-1",
        site=STACK,
        device=CEMS,
        type=MarkType.SHUTDOWN,
        start=at,
        end=at + timedelta(hours=2),
        reason=MARK_REASON,
        made_by="enterprise:E-007",
        made_at=at,
    )
    worker.marks[mark.id] = mark


SCREENS = [
    # (token, path, what to open before reading)
    ("tok-ops", "/wall", []),
    ("tok-ops", "/desk?site=S-OUT-001", [f"[data-case='{CASE}']"]),
    ("tok-ops", f"/desk?site={STACK}", []),
    ("tok-ops", "/desk?site=S-AIR-001", []),
    ("tok-kc", "/phone", ["[data-act='open']"]),
    ("tok-kc2", "/phone", []),
    ("tok-e7", "/phone", []),
]


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_no_screen_mixes_languages(catalogue, tmp_path: Path, lang: str):
    assert CHROMIUM is not None, "no chromium on PATH: `make browser` installs Debian's"
    data = data_words(catalogue, lang)

    async def main() -> None:
        async with console_for(catalogue, tokens=tokens_file(tmp_path)) as (
            client,
            console,
            worker,
        ):
            the_city(console, worker, catalogue)
            base = str(client.make_url("/")).rstrip("/")
            stop = asyncio.Event()
            pusher = asyncio.create_task(console.push(stop))
            problems: dict[str, list[str]] = {}
            async with async_playwright() as p:
                browser = await p.chromium.launch(
                    executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
                )
                try:
                    context = await browser.new_context(
                        locale="zh-CN" if lang == "zh" else "en-GB", timezone_id="Asia/Shanghai"
                    )
                    await context.add_init_script(
                        f"localStorage.setItem('ecowatch.lang', '{lang}')"
                    )
                    page = await context.new_page()
                    await page.goto(f"{base}/login")
                    await page.wait_for_selector("form", timeout=10_000)
                    problems["/login"] = strays(await shown(page), lang, data)
                    for token, path, opens in SCREENS:
                        await context.clear_cookies()
                        signed = await context.request.post(f"{base}/login", data={"token": token})
                        assert signed.status == 200, (token, await signed.text())
                        await page.goto(base + path)
                        await page.wait_for_selector("body[data-ready='1']", timeout=10_000)
                        for selector in opens:
                            for element in await page.locator(selector).all():
                                await element.click()
                        await page.wait_for_timeout(1500)  # the panels that load after
                        problems[f"{token} {path}"] = strays(await shown(page), lang, data)
                finally:
                    await browser.close()
                    stop.set()
                    await pusher
            mixed = {screen: found for screen, found in problems.items() if found}
            assert not mixed, "\n".join(
                f"{screen}: " + " | ".join(repr(f) for f in found[:12])
                for screen, found in mixed.items()
            )

    asyncio.run(main())
