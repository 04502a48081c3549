"""The demo's people: a local inbox that receives their messages, and tokens for its officers.

In a deployment every enterprise contact, officer and supervisor has an apprise URL in the
environment variable the catalogue names (DingTalk, WeCom, e-mail, ...). On a demo machine
nobody does, so the demo points every unset variable at this inbox (``json://`` URLs, one
path per person): the worker delivers through apprise exactly as it would in production, and
the demo prints what each person received.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ecowatch.config.catalogue import Catalogue


@dataclass(frozen=True)
class Received:
    recipient: str  # the catalogue id: E-001, O-KC-01, S-KC, ...
    title: str
    message: str


def people_env(catalogue: Catalogue) -> dict[str, str]:
    """notify_env variable → the id of the person it reaches, for everyone in the catalogue."""
    out = {
        e.contact.notify_env: e.id
        for e in catalogue.enterprises.values()
        if e.contact is not None and e.contact.notify_env
    }
    for grid in catalogue.grids.values():
        out.update({o.notify_env: o.id for o in grid.officers if o.notify_env})
    return out


def inbox_env(catalogue: Catalogue, port: int, environ: Mapping[str, str]) -> dict[str, str]:
    """The apprise URLs that send to the inbox everyone whose variable is unset in
    ``environ`` (a person with a real URL keeps it)."""
    return {
        var: f"json://127.0.0.1:{port}/{person}"
        for var, person in people_env(catalogue).items()
        if not environ.get(var)
    }


def officer_tokens(catalogue: Catalogue) -> dict[str, str]:
    """A fresh token per officer and supervisor (token → officer id), for a demo's API."""
    return {secrets.token_urlsafe(16): o.id for g in catalogue.grids.values() for o in g.officers}


class Inbox:
    """An HTTP receiver on 127.0.0.1 for apprise's ``json://`` posts; calls ``on_message``
    from its own thread for each one."""

    def __init__(self, on_message: Callable[[Received], None]) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                try:
                    doc = json.loads(self.rfile.read(length) or b"{}")
                except ValueError:
                    self.send_response(400)
                    self.end_headers()
                    return
                recipient = self.path.strip("/").split("?")[0] or "?"
                on_message(
                    Received(recipient, str(doc.get("title", "")), str(doc.get("message", "")))
                )
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass  # the demo prints what arrives; no access log on the screen

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Inbox:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
