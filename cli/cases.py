"""The case API from the command line: `cases`, `report weekly`, `tokens`; and `report
validity`, from InfluxDB."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from datetime import date, datetime, timedelta

import click

from ecowatch.cli.runtime import api, settings_and_catalogue
from ecowatch.clock import CHINA
from ecowatch.config.settings import load_settings
from ecowatch.errors import ConfigError, ServiceDown
from ecowatch.streams.judging.validity import SiteRates, Validity, day_period, site_rates


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
    closed, and overdue at the week's end; marks made, accepted and rejected; the sites of
    the lowest transmission-validity rates."""
    if week is None:
        today = datetime.now(CHINA).date()
        week = (today - timedelta(days=today.weekday())).isoformat()
    data = api(load_settings(), "GET", f"/api/reports/weekly?week={week}")
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False))
        return
    click.echo(f"week of {data['week']}")
    click.echo(
        "grid      opened  escalated  acknowledged  closed  overdue  settled  "
        "marks made/accepted/rejected  lowest transmission-validity"
    )
    for g in data["grids"]:
        marks = f"{g['marks_made']}/{g['marks_accepted']}/{g['marks_rejected']}"
        lowest = ", ".join(
            f"{r['site']} {_percent(r['transmission_validity_rate'])}" for r in g["lowest_rates"]
        )
        click.echo(
            f"{g['grid']:<9} {g['opened']:>6}  {g['escalated']:>9}  {g['acknowledged']:>12}  "
            f"{g['closed']:>6}  {len(g['overdue']):>7}  {'yes' if g['settled'] else 'NO':>7}  "
            f"{marks:>28}  {lowest}"
        )


MARK_LOOKBACK = timedelta(days=62)  # a mark covers at most 31 days, reviewed within a month


def _day(text: str, option: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{option} {text!r}: expected a day, YYYY-MM-DD") from None


def _percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.2f}%"


@report.command("validity")
@click.option("--from", "first", required=True, help="The first day, YYYY-MM-DD (China time).")
@click.option("--to", "last", required=True, help="The last day, included.")
@click.option("--site", default=None, help="Only this site.")
@click.option(
    "--threshold",
    default=0.90,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="A site's transmission-validity rate below this is flagged.",
)
@click.option("--json", "as_json", is_flag=True)
def report_validity(
    first: str, last: str, site: str | None, threshold: float, as_json: bool
) -> None:
    """Transmission and validity rates (传输有效率) per site, device and pollutant: expected
    (from each device's reporting interval, less the time its enterprise marked stopped,
    停产/停运, pending or accepted), received and valid (flagged N) values, and the
    rates received/expected, valid/received and valid/expected, from the readings InfluxDB
    holds. A site below the threshold is flagged."""
    from ecowatch.streams.judging.marks import stopped_by_device
    from ecowatch.streams.storage.store import daily_flag_counts, marks_as_they_stand

    settings, catalogue = settings_and_catalogue()
    start, end = _day(first, "--from"), _day(last, "--to")
    if end < start:
        raise ConfigError(f"--to {last} is before --from {first}")
    if site is not None and site not in catalogue.sites:
        raise ConfigError(f"--site {site!r}: no site of that id in the catalogue")
    days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    since, until = day_period(start)[0], day_period(end)[1]
    try:
        counts = daily_flag_counts(settings, since, until, site)
        # A mark's trail may have begun before the report's days (a month's stop).
        # As they stand now: a mark reviewed after the report's days counts as reviewed.
        latest = max(until, datetime.now(CHINA) + timedelta(minutes=1))
        marks = marks_as_they_stand(settings, since - MARK_LOOKBACK, latest, site)
    except Exception as exc:  # the client's errors are many kinds: each means "no answer"
        raise ServiceDown("InfluxDB", settings.influx_url, str(exc)[:160]) from None
    sites = site_rates(catalogue, counts, days, site, stopped_by_device(marks, catalogue))
    if as_json:
        click.echo(json.dumps(_validity_json(sites, first, last, threshold), ensure_ascii=False))
        return
    click.echo(f"{first} – {last}: transmission (received/expected), validity (valid/received)")
    head = ("site", "device", "pollutant", "expected", "received", "valid", "trans.", "valid.")
    click.echo(_row(*head, "trans-valid."))
    for s in sites:
        for d in s.devices:
            click.echo(_row(s.site, d.device, d.pollutant, *_figures(d.total)))
        below = f"  BELOW {threshold * 100:g}%" if s.below(threshold) else ""
        click.echo(_row(s.site, "(site)", "", *_figures(s.total)) + below)


def _row(*cells: str) -> str:
    widths = (11, 15, 9, 9, 9, 8, 8, 7, 12)
    left = 3  # site, device and pollutant read left to right; the figures line up right
    return " ".join(
        f"{c:<{w}}" if i < left else f"{c:>{w}}"
        for i, (c, w) in enumerate(zip(cells, widths, strict=True))
    )


def _figures(v: Validity) -> tuple[str, ...]:
    rates = (v.transmission_rate, v.validity_rate, v.transmission_validity_rate)
    return (str(v.expected), str(v.received), str(v.valid), *(_percent(r) for r in rates))


def _counts(v: Validity) -> dict[str, int | float | None]:
    return {"expected": v.expected, "received": v.received, "valid": v.valid, **v.rates()}


def _validity_json(sites: list[SiteRates], first: str, last: str, threshold: float) -> dict:
    return {
        "from": first,
        "to": last,
        "threshold": threshold,
        "sites": [
            {
                "site": s.site,
                **_counts(s.total),
                "below": s.below(threshold),
                "devices": [
                    {
                        "device": d.device,
                        "pollutant": d.pollutant,
                        **_counts(d.total),
                        "days": [{"day": day.isoformat(), **_counts(v)} for day, v in d.days],
                    }
                    for d in s.devices
                ],
            }
            for s in sites
        ],
    }


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
    """A new token for WHO, an officer's catalogue id (O-KC-01), operator:NAME,
    enterprise:ID (an enterprise of the catalogue, E-031, which marks its own sites' data), or
    kiosk:NAME (an unattended wall: reads every grid, can act on nothing; its console session
    lasts while the file holds it). The token is printed once; the file keeps only its hash.
    The worker reads the file when it starts."""
    from pathlib import Path

    from ecowatch.edges.tokens import ENTERPRISE, KIOSK, OPERATOR, add_token

    settings, catalogue = settings_and_catalogue()
    file = Path(path) if path else settings.officer_tokens
    if file is None:
        raise ConfigError("no tokens file: pass --file FILE or set ECOWATCH_OFFICER_TOKENS")
    if who.startswith(ENTERPRISE):
        if who.removeprefix(ENTERPRISE) not in catalogue.enterprises:
            raise ConfigError(
                f"{who!r}: no enterprise of that id in the catalogue (expected "
                f"enterprise:ID, e.g. enterprise:E-031)"
            )
    elif not who.startswith((OPERATOR, KIOSK)) and who not in catalogue.officers:
        raise ConfigError(
            f"{who!r}: no officer of that id in the catalogue (expected an officer's id, "
            f"e.g. O-KC-01, operator:NAME, enterprise:ID or kiosk:NAME)"
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
