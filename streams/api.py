"""The officers' case API, served by the worker's web server (mobile enforcement).

    GET  /api/cases?status=&min_age_minutes=      the cases of the officer's grid
    POST /api/sites/{site}/cases/{case_id}/ack    acknowledge
    POST /api/sites/{site}/cases/{case_id}/findings   {"text": "...", "close": true|false}
    GET  /api/reports/weekly?week=YYYY-MM-DD       the grid's weekly settlement

Every request carries ``Authorization: Bearer <token>``; a token names one officer (a JSON
file outside git, ECOWATCH_OFFICER_TOKENS), and an officer sees and acts on the cases of
their own grid only. An action is checked against the case as it stands (409 if it does not
fit), then goes to the ``enforce`` agent through Kafka, which owns the case: 202 Accepted.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import faust
from faust.web import Request, Response, View

from ecowatch.clock import CHINA, Clock
from ecowatch.config.catalogue import Catalogue
from ecowatch.errors import ConfigError
from ecowatch.streams.cases import CaseError, CaseStatus, step
from ecowatch.streams.enforcement import Enforcement, OfficerAction
from ecowatch.streams.engine import context_for
from ecowatch.streams.report import weekly_report


def load_tokens(path: Path | None) -> dict[str, str]:
    """token → officer id. No file: no officer can use the API (every request is refused)."""
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"{path}: expected a JSON object of token to officer id ({exc})"
        ) from None
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        raise ConfigError(f"{path}: expected a JSON object of token to officer id")
    return data


def install_api(
    app: faust.App,
    enforcement: Enforcement,
    catalogue: Catalogue,
    tokens: dict[str, str],
    clock: Clock,
) -> None:
    grid_of = {o.id: g.id for g in catalogue.grids.values() for o in g.officers}

    def officer_of(request: Request) -> tuple[str, str | None] | None:
        """(officer, their grid), or (operator, None) for an operator who sees every grid."""
        header = request.headers.get("Authorization", "")
        token = header.removeprefix("Bearer ").strip()
        who = tokens.get(token) if token else None
        if who is not None and who.startswith("operator:"):
            return who, None
        if who is None or who not in grid_of:
            return None
        return who, grid_of[who]

    def in_view(grid: str | None, site_grid: str, wanted: str | None) -> bool:
        return (grid is None or site_grid == grid) and (wanted is None or site_grid == wanted)

    def refused(view: View) -> Response:
        return view.error(401, "a valid officer token is required (Authorization: Bearer …)")

    @app.page("/api/cases")
    class Cases(View):
        async def get(self, request: Request) -> Response:
            who = officer_of(request)
            if who is None:
                return refused(self)
            _, grid = who
            grid_filter = request.query.get("grid")
            wanted = request.query.get("status")
            min_age = timedelta(minutes=float(request.query.get("min_age_minutes", 0)))
            now = clock.now()
            rows: list[dict[str, Any]] = []
            for site in catalogue.sites.values():
                if not in_view(grid, site.grid, grid_filter):
                    continue
                for case in enforcement.site_cases(site.id).cases.values():
                    if wanted and case.status.value != wanted:
                        continue
                    if now - case.first_seen < min_age:
                        continue
                    rows.append(
                        {
                            "id": case.id,
                            "site": site.id,
                            "site_name": site.name,
                            "status": case.status.value,
                            "rule": case.evidence.rule.value,
                            "pollutant": case.evidence.pollutant,
                            "detail": case.evidence.detail,
                            "first_seen": case.first_seen.isoformat(),
                            "acknowledged_by": case.acknowledged_by,
                            "findings": case.findings,
                        }
                    )
            return self.json({"grid": grid or grid_filter or "*", "cases": rows})

    async def act(view: View, request: Request, site: str, case_id: str, action: str) -> Response:
        who = officer_of(request)
        if who is None:
            return refused(view)
        officer, grid = who
        if site not in catalogue.sites:
            return view.error(404, f"no site {site}")
        if grid is None:
            return view.error(403, "operators watch; officers of the site's grid act")
        if catalogue.sites[site].grid != grid:
            return view.error(403, f"site {site} is not in your grid {grid}")
        body: dict[str, Any] = {}
        if action == "findings":
            try:
                body = await request.json()
            except ValueError:
                return view.error(400, 'expected a JSON body {"text": ..., "close": ...}')
            if not isinstance(body, dict) or not str(body.get("text", "")).strip():
                return view.error(400, 'expected a JSON body with a non-empty "text"')
        now = clock.now()
        command = OfficerAction(
            site=site,
            case_id=case_id,
            officer=officer,
            action=action,
            text=str(body.get("text", "")),
            close=bool(body.get("close", False)),
            at=now,
        )
        case = next(
            (c for c in enforcement.site_cases(site).cases.values() if c.id == case_id), None
        )
        if case is None:
            return view.error(404, f"no open case {case_id} at {site}")
        policy = catalogue.policy_for(case.evidence.rule, case.evidence.pollutant, case.severity)
        try:  # the same check the agent will make: refuse now what it would refuse then
            step(case, command.as_input(), now, policy, context_for(catalogue, site))
        except CaseError as exc:
            return view.error(409, str(exc))
        await enforcement.actions.send(key=site.encode(), value=command.model_dump_json().encode())
        return view.json({"accepted": action, "case": case_id, "officer": officer}, status=202)

    @app.page("/api/sites/{site}/cases/{case_id}/ack")
    class Ack(View):
        async def post(self, request: Request, site: str, case_id: str) -> Response:
            return await act(self, request, site, case_id, "acknowledge")

    @app.page("/api/sites/{site}/cases/{case_id}/findings")
    class Findings(View):
        async def post(self, request: Request, site: str, case_id: str) -> Response:
            return await act(self, request, site, case_id, "findings")

    @app.page("/api/reports/weekly")
    class Weekly(View):
        async def get(self, request: Request) -> Response:
            who = officer_of(request)
            if who is None:
                return refused(self)
            _, grid = who
            try:
                day = datetime.strptime(request.query["week"], "%Y-%m-%d").replace(tzinfo=CHINA)
            except (KeyError, ValueError):
                return self.error(400, "expected ?week=YYYY-MM-DD (the week's Monday)")
            sites = [s.id for s in catalogue.sites.values() if grid is None or s.grid == grid]
            open_cases = [
                c
                for s in sites
                for c in enforcement.site_cases(s).cases.values()
                if c.status is not CaseStatus.CLOSED
            ]
            events = [e for s in sites for e in enforcement.case_log(s).events]
            rows = weekly_report(events, open_cases, day, catalogue)
            return self.json(
                {
                    "week": day.date().isoformat(),
                    "grids": [
                        {**r.model_dump(), "settled": r.settled}
                        for r in rows
                        if grid is None or r.grid == grid
                    ],
                }
            )
