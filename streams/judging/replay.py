"""Replay: recorded readings through the same detection and escalation code the workers run,
on a clock driven by the readings' own timestamps. No services needed.

It lets an operator try a new policy against last month's data, and it makes the whole chain
(rules → findings → cases → notifications, and valve commands) testable from a file. Each
device's closed China-time day prints its transmission and validity rates per pollutant
(``validity`` lines). A line that is a mark's change (``ecowatch.mark_event/1``, as the API
puts it on ``ecowatch.marks``) is taken in its time order with the readings.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from ecowatch.clock import CHINA
from ecowatch.config.catalogue import Catalogue
from ecowatch.schema import MarkEvent, Reading
from ecowatch.streams.judging.engine import (
    Outcome,
    SiteCases,
    due,
    on_findings,
    on_mark,
    on_tick,
)
from ecowatch.streams.judging.rules import (
    ClosedWindow,
    RuleParams,
    SiteJudge,
    SiteState,
    SiteTick,
)

Line = dict[str, Any]
MARK_EVENT = '"ecowatch.mark_event/1"'  # a line carrying it is a mark's change, not a reading


class Replay:
    """Feeds readings in time order; between them, time passes in ``tick`` steps so that
    deadlines, acknowledgement timeouts and offline devices fall due as they would live."""

    def __init__(
        self,
        catalogue: Catalogue,
        params: RuleParams | None = None,
        aqi_standard: str = "2026",
        tick: timedelta = timedelta(minutes=5),
    ) -> None:
        self.catalogue = catalogue
        self.judge = SiteJudge(catalogue, params, aqi_standard)
        self.tick = tick
        self.rules: dict[str, SiteState] = {}
        self.cases: dict[str, SiteCases] = {}
        self.now: datetime | None = None
        self.errors = 0

    def feed(self, lines: Iterable[str]) -> Iterator[Line]:
        for number, text in enumerate(lines, 1):
            if not text.strip():
                continue
            # A mark's change, as the API puts it on ecowatch.marks; else a reading.
            model = MarkEvent if MARK_EVENT in text else Reading
            try:
                event = model.model_validate_json(text)
            except ValidationError as exc:
                self.errors += 1
                yield {"type": "error", "line": number, "detail": _first_error(exc)}
                continue
            if event.site not in self.catalogue.sites:
                self.errors += 1
                detail = f"site '{event.site}' is not in the catalogue"
                yield {"type": "error", "line": number, "detail": detail}
                continue
            at = event.ts if isinstance(event, Reading) else event.at
            yield from self.advance(at)
            yield from self._judge(event.site, event, at)

    def advance(self, until: datetime) -> Iterator[Line]:
        """Let time pass up to ``until``: every site ticks at least every ``tick``, and at
        the moment a case falls due."""
        if self.now is None:
            self.now = until
            return
        while self.now < until:
            nxt = min(until, self.now + self.tick)
            dues = [t for s in self.cases.values() if (t := due(s)) is not None and t > self.now]
            if dues and min(dues) < nxt:
                nxt = min(dues)
            self.now = nxt
            for site in sorted(self.rules):
                yield from self._judge(site, SiteTick(site=site, now=nxt), nxt)

    def _judge(
        self, site: str, event: Reading | SiteTick | MarkEvent, now: datetime
    ) -> Iterator[Line]:
        judged = self.judge.judge(self.rules.get(site), event)
        self.rules[site] = judged.state
        for finding in judged.findings:
            yield {"type": "finding", **finding.model_dump(mode="json")}
        for closed in judged.windows:
            if closed.validity is not None:
                yield validity_line(site, closed)
        for marked in judged.marks:  # a device's own marks, begun or ended by its flags
            yield {"type": "mark_event", **marked.model_dump(mode="json", by_alias=True)}
        cases = self.cases.get(site, SiteCases())
        cases, outcome = on_findings(cases, judged.findings, now, self.catalogue)
        if isinstance(event, MarkEvent):
            cases, marked = on_mark(cases, event, now, self.catalogue, self.judge.ctx.marks)
            outcome.add(marked.events, marked.notifications)
        cases, ticked = on_tick(cases, now, self.catalogue)
        self.cases[site] = cases
        yield from _lines(outcome)
        yield from _lines(ticked)
        if judged.valve is not None and isinstance(event, Reading):
            yield {
                "type": "command",
                "site": site,
                "device": event.device,
                "command": judged.valve.command,
                "at": now.isoformat(),
            }


def _first_error(exc: ValidationError) -> str:
    first = exc.errors(include_url=False)[0]
    where = ".".join(str(p) for p in first["loc"]) or "(line)"
    return f"{where}: {first['msg']}"


def validity_line(site: str, closed: ClosedWindow) -> Line:
    """A device's closed China-time day of one pollutant: what it owed and what came of it."""
    v = closed.validity
    assert v is not None
    return {
        "type": "validity",
        "site": site,
        "device": closed.device,
        "pollutant": closed.pollutant,
        "day": closed.window.start.astimezone(CHINA).date().isoformat(),
        "expected": v.expected,
        "received": v.received,
        "valid": v.valid,
        **v.rates(),
    }


def _lines(outcome: Outcome) -> Iterator[Line]:
    for event in outcome.events:
        yield {"type": "case_event", **event.model_dump(mode="json")}
    for note in outcome.notifications:
        yield {"type": "notification", **note.model_dump(mode="json")}
