"""The demo's people: officers who act on what reaches them, and the tokens they act with.

The officers' inbox is ``devtools/inbox.py``; the demo (``ecowatch demo``) and the soak put
this desk behind it.
"""

from __future__ import annotations

import json
import queue
import re

import click

from ecowatch.config.catalogue import Catalogue
from ecowatch.config.settings import Settings
from ecowatch.devtools.inbox import Received, officer_tokens
from ecowatch.edges.files import write_private
from ecowatch.errors import EcowatchError
from ecowatch.schema import Rule
from ecowatch.streams.api.client import api_as

# A case id: the finding's time, the site, the pollutant or device, the rule.
CASE_ID = re.compile(
    r"\d{14}-(?P<site>S-[A-Z]+-\d{3})-\S+?-(?:" + "|".join(r.value for r in Rule) + r")\b"
)


class OfficerDesk:
    """The demo's officers: each escalation that reaches one in the inbox is acknowledged
    through the case API with that officer's token, and findings are recorded asking to
    close (the case closes once its data has held normal for the hold period)."""

    def __init__(self, settings: Settings, tokens: dict[str, str]) -> None:
        self.settings = settings
        self.token_of = {officer: token for token, officer in tokens.items()}
        self.todo: queue.SimpleQueue[tuple[str, str, str]] = queue.SimpleQueue()
        self.taken: set[str] = set()  # one officer of the grid takes a case

    def on_message(self, received: Received) -> None:
        first_line = received.message.splitlines()[0] if received.message else ""
        click.echo(f"  → {received.recipient:<8} {received.title}  {first_line[:70]}")
        match = CASE_ID.search(received.message)
        if received.title.startswith("【执法】") and match and received.recipient in self.token_of:
            self.todo.put((received.recipient, match.group("site"), match.group(0)))

    def work(self) -> None:
        """Act on what has arrived (called from the demo's loop, off the inbox's thread)."""
        while not self.todo.empty():
            officer, site, case_id = self.todo.get()
            if case_id in self.taken:
                continue
            self.taken.add(case_id)
            token = self.token_of[officer]
            base = f"/api/sites/{site}/cases/{case_id}"
            for action, body, said in (
                ("ack", None, "acknowledged"),
                ("findings", {"text": "现场检查：已责令整改", "close": True}, "recorded findings"),
            ):
                try:
                    api_as(self.settings, token, "POST", f"{base}/{action}", body)
                    click.echo(f"  ✓ {officer:<8} {said} through the API: {case_id}")
                except EcowatchError as exc:  # e.g. 409: a colleague acknowledged it first
                    click.echo(f"  · {officer:<8} {action}: {exc}")


def people_tokens(
    settings: Settings, catalogue: Catalogue
) -> tuple[dict[str, str], dict[str, str]]:
    """The API tokens the demo's people use (token → who, kept in memory only), and the
    worker's environment for them. Fresh tokens for every officer and an operator, whose
    hashes go to the state folder (0600, outside git). With the operator's own file
    (ECOWATCH_OFFICER_TOKENS), which holds hashes only, the demo knows only
    ECOWATCH_API_TOKEN, if the file names it."""
    from ecowatch.edges.tokens import hashed, identify, load_tokens, new_token

    if settings.officer_tokens is not None:
        token = settings.api_token.get_secret_value()
        who = identify(load_tokens(settings.officer_tokens), token)
        known = {token: who} if who is not None else {}
        click.echo(
            f"tokens: {settings.officer_tokens} holds hashes only: the demo's officers act "
            f"only as ECOWATCH_API_TOKEN ({who or 'not in the file'})"
        )
        return known, {}
    tokens = officer_tokens(catalogue) | {new_token(): "operator:demo"}
    path = write_private(
        settings.state_dir / "demo-officer-tokens.json", json.dumps(hashed(tokens), indent=1)
    )
    return tokens, {"ECOWATCH_OFFICER_TOKENS": str(path)}
