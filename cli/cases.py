"""The case API from the command line: `cases`, `report weekly`, `tokens`."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timedelta

import click

from ecowatch.cli.runtime import api, settings_and_catalogue
from ecowatch.clock import CHINA
from ecowatch.config.settings import load_settings
from ecowatch.errors import ConfigError


@click.group(invoke_without_command=True)
@click.option("--grid", default=None, help="Only this grid (an operator's, or one of yours).")
@click.option("--status", default=None, help="pending, reminded, escalated, acknowledged.")
@click.option("--min-age", "min_age", default=0.0, help="Only cases at least this old (minutes).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def cases(
    ctx: click.Context, grid: str | None, status: str | None, min_age: float, as_json: bool
) -> None:
    """The open cases (your grids', or every grid's for an operator); `ack` and `findings`
    act on one. Talks to the worker's API with ECOWATCH_API_TOKEN."""
    if ctx.invoked_subcommand is not None:
        return
    settings = load_settings()
    query = urllib.parse.urlencode(
        {k: v for k, v in {"grid": grid, "status": status, "min_age_minutes": min_age}.items() if v}
    )
    listing = api(settings, "GET", f"/api/cases?{query}")
    if as_json:
        click.echo(json.dumps(listing, ensure_ascii=False))
        return
    click.echo(f"grid {listing['grid']}: {len(listing['cases'])} open case(s)")
    for c in listing["cases"]:
        click.echo(f"  {c['status']:<12} {c['id']}  {c['site_name']}  {c['detail']['zh']}")


@cases.command("ack")
@click.argument("site")
@click.argument("case_id")
def cases_ack(site: str, case_id: str) -> None:
    """Acknowledge a case: you take it; the re-notifications stop."""
    click.echo(json.dumps(api(load_settings(), "POST", f"/api/sites/{site}/cases/{case_id}/ack")))


@cases.command("findings")
@click.argument("site")
@click.argument("case_id")
@click.argument("text")
@click.option("--close", is_flag=True, help="Close once the data has held normal.")
def cases_findings(site: str, case_id: str, text: str, close: bool) -> None:
    """Record your findings on a case (and ask to close it). At most 4096 bytes (UTF-8)."""
    path = f"/api/sites/{site}/cases/{case_id}/findings"
    click.echo(json.dumps(api(load_settings(), "POST", path, {"text": text, "close": close})))


@click.group()
def report() -> None:
    """Reports."""


@report.command("weekly")
@click.option("--week", default=None, help="The week's Monday, YYYY-MM-DD (default: this week).")
@click.option("--json", "as_json", is_flag=True)
def report_weekly(week: str | None, as_json: bool) -> None:
    """The weekly settlement (周周能结清): per grid, cases opened, escalated, acknowledged,
    closed, and overdue at the week's end."""
    if week is None:
        today = datetime.now(CHINA).date()
        week = (today - timedelta(days=today.weekday())).isoformat()
    data = api(load_settings(), "GET", f"/api/reports/weekly?week={week}")
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False))
        return
    click.echo(f"week of {data['week']}")
    click.echo("grid      opened  escalated  acknowledged  closed  overdue  settled")
    for g in data["grids"]:
        click.echo(
            f"{g['grid']:<9} {g['opened']:>6}  {g['escalated']:>9}  {g['acknowledged']:>12}  "
            f"{g['closed']:>6}  {len(g['overdue']):>7}  {'yes' if g['settled'] else 'NO'}"
        )


@click.group()
def tokens() -> None:
    """The case API's tokens file (ECOWATCH_OFFICER_TOKENS), which keeps only their hashes."""


@tokens.command("add")
@click.argument("who")
@click.option(
    "--file",
    "path",
    type=click.Path(dir_okay=False),
    default=None,
    help="The tokens file (default: ECOWATCH_OFFICER_TOKENS); created 0600 if missing.",
)
def tokens_add(who: str, path: str | None) -> None:
    """A new token for WHO, an officer's catalogue id (O-KC-01) or operator:NAME. The token is
    printed once; the file keeps only its hash. The worker reads the file when it starts."""
    from pathlib import Path

    from ecowatch.edges.tokens import OPERATOR, add_token

    settings, catalogue = settings_and_catalogue()
    file = Path(path) if path else settings.officer_tokens
    if file is None:
        raise ConfigError("no tokens file: pass --file FILE or set ECOWATCH_OFFICER_TOKENS")
    if not who.startswith(OPERATOR) and who not in catalogue.officers:
        raise ConfigError(
            f"{who!r}: no officer of that id in the catalogue (expected an officer's id, "
            f"e.g. O-KC-01, or operator:NAME)"
        )
    token = add_token(file, who)
    click.echo(token)
    click.echo(
        f"the token of {who}, shown this once: {file} keeps only its hash. Restart the worker "
        "to let it in.",
        err=True,
    )


@tokens.command("convert")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
def tokens_convert(path: str) -> None:
    """Replace the plain tokens of an old tokens file by their hashes, in place (0600)."""
    from pathlib import Path

    from ecowatch.edges.tokens import convert_file

    converted = convert_file(Path(path))
    click.echo(
        f"{path}: {converted} token(s) replaced by their hashes; the tokens themselves are "
        "unchanged"
    )
