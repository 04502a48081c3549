"""The desk's own endpoints, registered by the console's app (server.py).

- ``POST /api/sites/{site}/cases/{case_id}/supervise|reassign|comment``: an operator's 督办 (a
  note and a new deadline), a reassignment to another grid, a comment; passed on to the case
  API with the caller's own token, as the console passes every action (its 403, 409, ... are
  the console's answer).
- ``GET /api/sites/{site}/means?hours=``: the site's hourly and daily means from InfluxDB (the
  worker's ``aggregate`` windows: a stack's corrected ones) and each limit with its basis, so
  the chart draws a limit against the mean it is judged on.
- ``GET /api/weekly.csv?week=&lang=zh|en``: the weekly settlement as CSV, UTF-8 with a BOM (so
  Excel opens the Chinese right), its header in the caller's language.
"""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from aiohttp import web

from ecowatch.console.core import limit_view
from ecowatch.console.history import site_means
from ecowatch.pollutants import NO, NO2, NOX
from ecowatch.streams.api.requests import Refusal, shown, week_query

if TYPE_CHECKING:
    from ecowatch.console.server import Console

ACTIONS = "supervise|reassign|comment"
DAY = timedelta(days=1)
BOM = "\ufeff"
LANGS = ("zh", "en")
# The settlement's columns: the API row's key (or a derived one) and its header in each language.
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("name", "网格", "Grid"),
    ("grid", "网格编号", "Grid id"),
    ("district", "区县", "District"),
    ("opened", "新发", "Opened"),
    ("escalated", "已交办", "Escalated"),
    ("acknowledged", "已确认", "Acknowledged"),
    ("closed", "已办结", "Closed"),
    ("open_at_end", "周末未结", "Open at week's end"),
    ("overdue_count", "超期", "Overdue"),
    ("overdue", "超期案件", "Overdue cases"),
    ("marks_made", "标记申报", "Marks declared"),
    ("marks_accepted", "标记接受", "Marks accepted"),
    ("marks_rejected", "标记驳回", "Marks rejected"),
    ("settled", "是否结清", "Settled"),
)
SETTLED = {"zh": ("已结清", "未结清"), "en": ("settled", "not settled")}


def routes(console: Console) -> list[web.RouteDef]:
    desk = Desk(console)
    return [
        web.post(f"/api/sites/{{site}}/cases/{{case_id}}/{{action:{ACTIONS}}}", desk.act),
        web.get("/api/sites/{site}/means", desk.means),
        web.get("/api/weekly.csv", desk.weekly_csv),
    ]


def _json_error(status: int, error: str) -> web.Response:
    return web.json_response({"error": error}, status=status)


def _cell(value: Any) -> str:
    """A value as a spreadsheet reads it: a text starting like a formula is kept as text."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


def weekly_rows(body: dict[str, Any], lang: str) -> list[list[str]]:
    """The settlement's table: the header in ``lang``, then a row per grid."""
    header = [zh if lang == "zh" else en for _, zh, en in COLUMNS]
    rows = [header]
    yes, no = SETTLED[lang]
    for grid in body.get("grids", []):
        if not isinstance(grid, dict):
            continue
        overdue = [str(c) for c in grid.get("overdue", [])]
        derived = {
            "overdue_count": len(overdue),
            "overdue": "; ".join(overdue),
            "settled": yes if grid.get("settled", not overdue) else no,
        }
        rows.append([_cell(derived.get(key, grid.get(key))) for key, _, _ in COLUMNS])
    return rows


def weekly_csv_text(body: dict[str, Any], lang: str) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(weekly_rows(body, lang))
    return BOM + out.getvalue()


class Desk:
    def __init__(self, console: Console) -> None:
        self.console = console

    async def act(self, request: web.Request) -> web.StreamResponse:
        """督办, reassign or comment: the body (with its ``action_id``) passed on as it came;
        the case API judges who may and what is missing."""
        me = self.console.need(request)
        try:
            body = await request.json()
        except ValueError:
            return _json_error(400, "expected a JSON body")
        if not isinstance(body, dict):
            return _json_error(400, "expected a JSON object")
        site, case_id, action = (request.match_info[k] for k in ("site", "case_id", "action"))
        path = f"/api/sites/{quote(site, safe='')}/cases/{quote(case_id, safe='')}/{action}"
        status, answer = await self.console.call_worker("POST", path, me.token, body)
        return web.json_response(answer, status=status)

    async def means(self, request: web.Request) -> web.StreamResponse:
        """The site's hourly and daily means over the chart's window (a day's window starting
        up to a day before it, so the day it began in is whole), and every limit of each of
        its pollutants with its basis."""
        from ecowatch.console.server import hours_of  # the server imports this module

        console = self.console
        me = console.need(request)
        site_id = request.match_info["site"]
        console._visible_site(me, site_id)
        site = console.catalogue.sites[site_id]
        state = console.city.sites[site_id]
        stack = state.o2_reference is not None
        end = state.ts or datetime.now(UTC)
        start = end - timedelta(hours=hours_of(request.query.get("hours", "")))
        means, error = await asyncio.to_thread(
            site_means, console.settings, console.catalogue, site_id, start - DAY, end, stack
        )
        codes = {p for d in site.devices for p in d.pollutants}
        if stack and {NO, NO2} <= codes:
            codes.add(NOX)  # judged as NO2 from NO and NO2, as the site's view lists it
        limits = {
            code: [view for lim in found if (view := limit_view(lim)) is not None]
            for code in sorted(codes)
            if (found := console.catalogue.limits_for(site_id, code))
        }
        return web.json_response(
            {
                "site": site_id,
                "start": start.isoformat(),
                "end": end.isoformat(),
                "hour": means.get("hour", {}),
                "day": means.get("day", {}),
                "limits": limits,
                "error": error,
            }
        )

    async def weekly_csv(self, request: web.Request) -> web.StreamResponse:
        console = self.console
        me = console.need(request)
        lang = request.query.get("lang", "") or "zh"
        if lang not in LANGS:
            return _json_error(400, f"lang: expected zh or en (got {shown(lang)})")
        week = request.query.get("week", "")
        if week:
            try:
                week_query([("week", week)])  # the API's own rule, said before asking it
            except Refusal as refused:
                return _json_error(400, refused.reason)
        week = week or console.data_week()
        status, body = await console.call_worker(
            "GET", f"/api/reports/weekly?week={quote(week)}", me.token
        )
        if status != 200 or not isinstance(body, dict):
            return web.json_response(body, status=status)
        name = f"weekly-{body.get('week', week)}.csv"
        return web.Response(
            body=weekly_csv_text(body, lang).encode("utf-8"),
            content_type="text/csv",
            charset="utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="{name}"',
                "Cache-Control": "no-store",
            },
        )
