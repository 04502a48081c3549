"""Alarms (报警): what calls for a person on duty now, read from the platform's events. Pure.

An alarm is raised by a new exceedance (an over-limit finding, AQI over 100, a quota used up),
a device gone offline, a case escalated to the officers, or a case past its deadline. While
an alarm is not silenced, more of the same (the same site, rule and pollutant; the same device;
the same case) add to it rather than ring again. Silencing (消警) is a person's decision, made
through the case API and kept on ``ecowatch.alarms``: every console reads it from the topic's
start, so a restarted console rings for nothing that was already silenced. The silences and
the findings come from different topics, read at once in no set order, so a silence of an
alarm not raised yet is kept until it is.

Alarm ids are made from what the alarm is about and when it started (data time), so the same
events read again give the same ids, and a silence finds its alarm after a restart.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from ecowatch.alerts.wording import (
    both,
    case_event_text,
    excess_multiple,
    finding_text,
    last_will_text,
)
from ecowatch.alerts.wording import two_places as _two_places
from ecowatch.clock import CHINA
from ecowatch.config.catalogue import Catalogue
from ecowatch.schema import (
    OVER_LIMIT_RULES,
    AlarmSilenced,
    CaseEvent,
    DeviceState,
    DeviceStatus,
    Finding,
    Rule,
)

KINDS = ("over", "offline", "escalated", "overdue")
OVER_ALARM_RULES = OVER_LIMIT_RULES | {Rule.AQI_OVER_100, Rule.QUOTA_EXHAUSTED}
ALARMS_KEPT = 2000  # the newest; the oldest silenced ones are forgotten first
LISTED = 200  # what a page is sent at once, newest first
SILENCES_KEPT = 5000  # silences of alarms not seen (yet, or any more)
RANKED = 5  # the enterprises most in breach the wall names
RECENT = timedelta(
    hours=24
)  # counts are of the last day of data time, and every alarm still ringing


@dataclass
class Alarm:
    id: str
    kind: str
    site: str
    grid: str
    enterprise: str  # the site's enterprise id ("" for an air station)
    about: tuple[str, ...]  # what more of the same is: rule and pollutant, a device, a case
    at: datetime  # when it started (data time)
    last_at: datetime
    detail: dict[str, str]  # {"zh": …, "en": …}
    pollutant: str | None = None
    rule: str | None = None
    case_id: str | None = None
    multiple: str | None = None  # 超标倍数 as written: "0.63"
    value: float | None = None
    limit: float | None = None
    unit: str = ""
    count: int = 1
    cleared_at: datetime | None = None  # the finding cleared, the device came back
    silenced_by: str | None = None
    silenced_at: datetime | None = None

    @property
    def silenced(self) -> bool:
        return self.silenced_by is not None

    def row(self, site_name: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "site": self.site,
            "site_name": site_name,
            "grid": self.grid,
            "pollutant": self.pollutant,
            "rule": self.rule,
            "case_id": self.case_id,
            "at": self.at.isoformat(),
            "last_at": self.last_at.isoformat(),
            "count": self.count,
            "multiple": self.multiple,
            "value": self.value,
            "limit": self.limit,
            "unit": self.unit,
            "detail": self.detail,
            "cleared_at": self.cleared_at.isoformat() if self.cleared_at else None,
            "silenced_by": self.silenced_by,
            "silenced_at": self.silenced_at.isoformat() if self.silenced_at else None,
        }


def _covers(silence: AlarmSilenced, alarm: Alarm) -> bool:
    return silence.upto is None or alarm.last_at >= silence.upto


@dataclass
class Alarms:
    catalogue: Catalogue
    alarms: OrderedDict[str, Alarm] = field(default_factory=OrderedDict)
    ringing: dict[tuple[str, ...], str] = field(default_factory=dict)  # about → unsilenced id
    silences: OrderedDict[str, AlarmSilenced] = field(default_factory=OrderedDict)
    by_hour: Counter[tuple[date, int]] = field(default_factory=Counter)  # China day, hour
    changed: list[str] = field(default_factory=list)  # ids raised, added to or silenced

    # -- what raises or clears one ------------------------------------------------------------

    def on_finding(self, finding: Finding) -> None:
        if finding.rule in OVER_ALARM_RULES:
            about = ("over", finding.site, finding.rule.value, finding.pollutant or "")
            if finding.active:
                multiple = excess_multiple(finding)
                self._raise(
                    "over",
                    about,
                    finding.site,
                    finding.at,
                    both(finding_text, finding),
                    pollutant=finding.pollutant,
                    rule=finding.rule.value,
                    multiple=_two_places(multiple) if multiple is not None else None,
                    value=finding.value,
                    limit=finding.limit,
                    unit=finding.unit or "",
                )
            else:
                self._clear(about, finding.at)
        elif finding.rule is Rule.OFFLINE:
            about = ("offline", finding.site, finding.device or "")
            if finding.active:
                detail = both(finding_text, finding)
                self._raise("offline", about, finding.site, finding.at, detail, rule="offline")
            else:
                self._clear(about, finding.at)

    def on_status(self, status: DeviceStatus) -> None:
        """A device's own word (its last will, or back online): at once, before the worker's
        silence finding; both are the same alarm."""
        about = ("offline", status.site, status.device)
        if status.state is DeviceState.OFFLINE:
            detail = both(last_will_text, status.device)
            self._raise("offline", about, status.site, status.at, detail, rule="offline")
        elif status.state is DeviceState.ONLINE:
            self._clear(about, status.at)

    def on_case_event(self, event: CaseEvent, evidence: dict[str, str] | None) -> None:
        """An escalation: the case is the officers' now. ``evidence``: the words of the
        finding that opened it, which say more to a person than the escalation's reason."""
        if event.kind != "escalated":
            return
        about = ("escalated", event.case_id)
        detail = evidence or both(case_event_text, event)
        self._raise("escalated", about, event.site, event.at, detail, case_id=event.case_id)

    def on_overdue(self, case_id: str, site: str, due: datetime, detail: dict[str, str]) -> None:
        """A case past its deadline (the enterprise's, or the officers' to acknowledge by). It
        starts at the deadline: the same id whenever the scan sees it, so once per deadline."""
        about = ("overdue", case_id, due.isoformat())
        self._raise("overdue", about, site, due, detail, case_id=case_id)

    def on_silence(self, silence: AlarmSilenced) -> None:
        alarm = self.alarms.get(silence.alarm_id)
        if alarm is not None and _covers(silence, alarm):
            self._silence(alarm, silence)
            return
        if alarm is None or not alarm.silenced:  # it waits for its alarm, or its events
            self.silences[silence.alarm_id] = silence
            while len(self.silences) > SILENCES_KEPT:
                self.silences.popitem(last=False)

    # -- the ledger ---------------------------------------------------------------------------

    def _raise(
        self,
        kind: str,
        about: tuple[str, ...],
        site_id: str,
        at: datetime,
        detail: dict[str, str],
        **facts: Any,
    ) -> None:
        site = self.catalogue.sites.get(site_id)
        if site is None:
            return
        ringing = self.alarms.get(self.ringing.get(about, ""))
        if ringing is not None:
            if at <= ringing.last_at:
                return  # the topic read again after an outage: already counted
            ringing.count += 1
            ringing.last_at, ringing.detail, ringing.cleared_at = at, detail, None
            for name, value in facts.items():
                setattr(ringing, name, value)
            self._silence_waiting(ringing)
            self.changed.append(ringing.id)
            return
        alarm_id = f"{'|'.join(about)}|{at.astimezone(CHINA):%Y%m%dT%H%M%S}"
        if alarm_id in self.alarms:
            return  # this one, silenced already, read again
        alarm = Alarm(
            alarm_id, kind, site.id, site.grid, site.enterprise or "", about, at, at, detail
        )
        for name, value in facts.items():
            setattr(alarm, name, value)
        self.alarms[alarm_id] = alarm
        self.ringing[about] = alarm_id
        local = at.astimezone(CHINA)
        self.by_hour[(local.date(), local.hour)] += 1
        self._silence_waiting(alarm)
        self.changed.append(alarm_id)
        self._forget()

    def _silence_waiting(self, alarm: Alarm) -> None:
        """A silence read before its alarm had all the events the person saw in it."""
        silence = self.silences.get(alarm.id)
        if silence is not None and _covers(silence, alarm):
            del self.silences[alarm.id]
            self._silence(alarm, silence)

    def _clear(self, about: tuple[str, ...], at: datetime) -> None:
        alarm = self.alarms.get(self.ringing.get(about, ""))
        if alarm is not None and alarm.cleared_at is None:
            alarm.cleared_at = at
            self.changed.append(alarm.id)

    def _silence(self, alarm: Alarm, silence: AlarmSilenced) -> None:
        if alarm.silenced:
            return  # the first silence stands
        alarm.silenced_by, alarm.silenced_at = silence.by, silence.at
        if self.ringing.get(alarm.about) == alarm.id:
            del self.ringing[alarm.about]
        self.changed.append(alarm.id)

    def _forget(self) -> None:
        while len(self.alarms) > ALARMS_KEPT:
            victim = next((k for k, a in self.alarms.items() if a.silenced), None)
            alarm = self.alarms.pop(victim if victim is not None else next(iter(self.alarms)))
            if self.ringing.get(alarm.about) == alarm.id:
                del self.ringing[alarm.about]
        for old in [k for k in self.by_hour if len(self.by_hour) > 24 * 3]:
            del self.by_hour[old]
            if len(self.by_hour) <= 24 * 3:
                break

    # -- views --------------------------------------------------------------------------------

    def take_changes(self) -> list[Alarm]:
        ids, self.changed = list(dict.fromkeys(self.changed)), []
        return [self.alarms[i] for i in ids if i in self.alarms]

    def row(self, alarm: Alarm) -> dict[str, Any]:
        site = self.catalogue.sites.get(alarm.site)
        return alarm.row(site.name if site else alarm.site)

    def view(
        self,
        grids: frozenset[str] | None,
        now: datetime | None,
        open_cases: Counter[str],
    ) -> dict[str, Any]:
        """The alarms a caller sees (``grids`` None: every grid): the newest, their counts by
        status, kind and grid (the last day of data time, and whatever still rings), today's by
        hour, and the enterprises most in breach today. ``open_cases``: site → open cases."""
        seen = [a for a in self.alarms.values() if grids is None or a.grid in grids]
        latest = max((a.last_at for a in self.alarms.values()), default=None)
        since = (now or latest or datetime.now(CHINA)) - RECENT
        counted = [a for a in seen if not a.silenced or a.at >= since]
        counts: dict[str, Any] = {"new": 0, "silenced": 0}
        by_kind = {k: {"new": 0, "silenced": 0} for k in KINDS}
        by_grid: dict[str, dict[str, int]] = {
            g: {"new": 0, "silenced": 0}
            for g in self.catalogue.grids
            if grids is None or g in grids
        }
        for alarm in counted:
            state = "silenced" if alarm.silenced else "new"
            counts[state] += 1
            by_kind[alarm.kind][state] += 1
            by_grid.setdefault(alarm.grid, {"new": 0, "silenced": 0})[state] += 1
        if now is None:  # no reading yet: the newest alarm's time, else the wall clock's
            now = max((a.last_at for a in self.alarms.values()), default=datetime.now(CHINA))
        today = now.astimezone(CHINA).date()
        hours = [0] * 24
        breach: Counter[str] = Counter()
        for alarm in seen:
            local = alarm.at.astimezone(CHINA)
            if local.date() == today:
                hours[local.hour] += 1
                if alarm.enterprise and alarm.kind == "over":
                    breach[alarm.enterprise] += alarm.count
        if grids is None:  # every alarm of the day, also those no longer kept
            hours = [self.by_hour.get((today, h), 0) for h in range(24)]
        enterprises = self.catalogue.enterprises
        cases_of: Counter[str] = Counter()
        for site_id, n in open_cases.items():
            site = self.catalogue.sites.get(site_id)
            if site is not None and site.enterprise and (grids is None or site.grid in grids):
                cases_of[site.enterprise] += n
        ranked = sorted(set(breach) | set(cases_of), key=lambda e: (-breach[e], -cases_of[e], e))[
            :RANKED
        ]
        listed = sorted(seen, key=lambda a: (a.silenced, -a.last_at.timestamp()))[:LISTED]
        return {
            "alarms": [self.row(a) for a in listed],
            "counts": counts | {"by_kind": by_kind, "by_grid": by_grid},
            "today": {"day": today.isoformat(), "hours": hours},
            "most_in_breach": [
                {
                    "enterprise": e,
                    "name": enterprises[e].name if e in enterprises else e,
                    "alarms": breach[e],
                    "open_cases": cases_of[e],
                }
                for e in ranked
            ],
        }
