"""The case API as its callers see it: one call, with a token, errors in one line.

The commands (``ecowatch cases``, ``ecowatch report weekly``), the demo's officer desk and
the soak call the worker's API through it.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from ecowatch.config.settings import Settings
from ecowatch.errors import EcowatchError, ServiceDown


def api_as(
    settings: Settings, token: str, method: str, path: str, body: dict | None = None
) -> dict:
    host = settings.web_host
    if host in ("0.0.0.0", "::"):  # listening everywhere: ask on this machine
        host = "127.0.0.1"
    url = f"http://{f'[{host}]' if ':' in host else host}:{settings.web_port}{path}"
    request = urllib.request.Request(
        url,
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read() or b"{}").get("error", exc.reason)
        except (ValueError, AttributeError):
            detail = exc.reason
        raise EcowatchError(f"the case API answered {exc.code}: {detail}") from None
    except OSError as exc:
        raise ServiceDown("the ecowatch worker (case API)", url, str(exc)) from None
