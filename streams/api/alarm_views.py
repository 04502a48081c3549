"""消警: an operator or an officer of the grid silences an alarm, for every screen.

    POST /api/alarms/silence   {"alarm_id": "...", "site": "S-OUT-001", "upto": "<ISO 8601>"}

``upto``: the newest event the person saw in the alarm (its data time), optional.

The alarms themselves are the console's reading of the findings and case events (no table
holds them); silencing one is a person's decision, so it goes on ``ecowatch.alarms`` like any
other act, after the caller's token is checked, and every console reads that topic from its
start. Silencing twice is harmless: the first one stands (202 both times).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

import faust
from faust.web import Request, Response, View

from ecowatch import topics
from ecowatch.schema import AlarmSilenced
from ecowatch.streams.api.requests import MAX_BODY_BYTES, Refusal, json_object, shown

if TYPE_CHECKING:
    from ecowatch.streams.api.views import CaseApi

log = logging.getLogger(__name__)

EXPECTED = 'expected a JSON body {"alarm_id": "…", "site": "<site id>", "upto": "<ISO 8601>"}'


def silence_of(api: CaseApi, request: Request, raw: bytes) -> AlarmSilenced:
    """The silence asked for, once the caller may silence the site's alarms."""
    caller = api.case_caller(request)  # a kiosk's POST and an enterprise are refused there
    body = json_object(raw, EXPECTED, ("alarm_id", "site", "upto"))
    alarm_id, site_id, upto = body.get("alarm_id"), body.get("site"), body.get("upto")
    if not isinstance(alarm_id, str) or not 0 < len(alarm_id) <= 200:
        raise Refusal(400, f"alarm_id: expected the alarm's id; {EXPECTED}")
    site = api.catalogue.sites.get(site_id) if isinstance(site_id, str) else None
    if site is None:
        raise Refusal(404, f"site: no site {shown(site_id, 80)} in the catalogue")
    if not caller.sees(site.grid):
        raise Refusal(403, f"site {site.id} is in grid {site.grid}, not yours")
    try:
        when = datetime.fromisoformat(upto) if isinstance(upto, str) else None
    except ValueError:
        when = None
    if upto is not None and (when is None or when.tzinfo is None):
        raise Refusal(400, f"upto: expected an ISO 8601 time with its offset; {EXPECTED}")
    return AlarmSilenced(
        alarm_id=alarm_id, site=site.id, by=caller.who, at=api.clock.now(), upto=when
    )


def install_alarm_api(app: faust.App, api: CaseApi) -> None:
    topic = app.topic(topics.ALARMS, key_type=bytes, value_type=bytes)

    @app.page("/api/alarms/silence")
    class Silence(View):
        async def post(self, request: Request) -> Response:
            try:
                raw = await request.content.read(MAX_BODY_BYTES + 1)
                if len(raw) > MAX_BODY_BYTES:
                    raise Refusal(413, f"the body is over {MAX_BODY_BYTES} bytes")
                silence = silence_of(api, request, raw)
                try:
                    await topic.send(
                        key=silence.site.encode(), value=silence.model_dump_json().encode()
                    )
                except Exception as exc:
                    log.error("case API: could not publish a silence: %s", exc)
                    raise Refusal(503, "the silence could not be passed on (Kafka)") from None
            except Refusal as exc:
                return self.error(exc.status, exc.reason, headers=exc.headers or None)
            answer: dict[str, Any] = {"silenced": silence.alarm_id, "by": silence.by}
            return self.json(answer, status=202)
