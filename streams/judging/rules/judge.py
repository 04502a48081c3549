"""The judge: every rule over one site's events, once per event."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from ecowatch.config.catalogue import Catalogue, DeviceModel
from ecowatch.pollutants import FLOW, NO, NO2, NOX, STANDARD_DRY_FLOW, TIME_WEIGHTED
from ecowatch.schema import (
    DataFlag,
    DeviceStatus,
    Finding,
    MarkEvent,
    MarkStatus,
    MarkType,
    MeterStatus,
    Reading,
)
from ecowatch.streams.judging.aggregate import (
    Period,
    Series,
    Weighting,
    Window,
    add_in_place,
    day_of,
    hour_of,
)
from ecowatch.streams.judging.flue_gas import nox_window, stack_mean, standard_dry_flow_of
from ecowatch.streams.judging.ledger import Repeat, take_once
from ecowatch.streams.judging.marks import (
    FLAG_MARKS,
    INSTRUMENT_MARKS,
    device_mark,
    stopped_periods,
)
from ecowatch.streams.judging.meter import account, platform_status
from ecowatch.streams.judging.rules.abnormal import abnormal_values
from ecowatch.streams.judging.rules.air_quality import aqi_over_100
from ecowatch.streams.judging.rules.base import (
    ClosedWindow,
    Context,
    DetectionRule,
    DeviceInfo,
    DeviceTrack,
    Event,
    RuleParams,
    SiteState,
    Step,
    Track,
)
from ecowatch.streams.judging.rules.flags import flagged_too_long, missing_pollutant
from ecowatch.streams.judging.rules.limits import late_over_limit, late_window_findings, over_limit
from ecowatch.streams.judging.rules.marks import marks_held_to_account
from ecowatch.streams.judging.rules.offline import offline
from ecowatch.streams.judging.rules.quota import meter_mismatch, quota, valve
from ecowatch.streams.judging.rules.rejudge import StoredReading, late_hours, note_hours
from ecowatch.streams.judging.rules.stacks import corrected_value_mismatch, high_oxygen
from ecowatch.streams.judging.rules.validity import count_day, low_transmission_validity
from ecowatch.streams.judging.rules.verdict import Valve, ValveOrder
from ecowatch.streams.judging.validity import Validity, counted, expected_values


@dataclass(frozen=True)
class Judged:
    state: SiteState
    findings: list[Finding]
    windows: list[ClosedWindow]
    valve: Valve | None = None  # for the reading's meter: the caller sends it
    # The reading was a repeat of one already taken: not judged (nor to be stored).
    repeat: Repeat | None = None
    meter: MeterStatus | None = None  # the meter's account as the platform keeps it
    # Older than its device's newest reading: judged on its own (late_over_limit), the
    # site's state unchanged but for the reading's place in the one-per-time ledger.
    late: bool = False
    # The device's own marks begun or ended by the reading's flags: for the marks' trail.
    marks: list[MarkEvent] = field(default_factory=list)


MARKS_KEPT = timedelta(days=40)  # after a mark's period: a month's judging and its review

RULES: tuple[DetectionRule, ...] = (
    over_limit,
    abnormal_values,
    missing_pollutant,
    flagged_too_long,
    offline,
    quota,
    meter_mismatch,
    aqi_over_100,
    corrected_value_mismatch,
    high_oxygen,
    low_transmission_validity,
    marks_held_to_account,
    valve,
)


class SiteJudge:
    """Every rule over one site's events: what the Faust agent calls, once per event."""

    def __init__(
        self,
        catalogue: Catalogue,
        params: RuleParams | None = None,
        aqi_standard: str = "2026",
        rules: tuple[DetectionRule, ...] = RULES,
    ) -> None:
        self.ctx = Context(catalogue, params or RuleParams(), aqi_standard, catalogue.marks)
        self.rules = rules

    def initial(self, site: str) -> SiteState:
        return SiteState(site=site)

    def judge(self, state: SiteState | None, event: Event) -> Judged:
        """The new state, the findings, the closed windows and (for a meter) the valve
        decision. ``state`` is not changed. The event's time is ``now``."""
        # A JSON round trip (pydantic-core) copies far faster than copy.deepcopy.
        copy = None if state is None else SiteState.model_validate_json(state.model_dump_json())
        return self.judge_in_place(copy, event)

    def take(self, state: SiteState, reading: Reading) -> Repeat | None:
        """The ingest contract's one reading per (device, time): None when ``reading`` is new
        (and now remembered in ``state``), else the repeat it is."""
        return take_once(state.readings, reading)

    def judge_in_place(
        self, state: SiteState | None, event: Event, *, taken: bool = False
    ) -> Judged:
        """:meth:`judge` on a state the caller owns (the worker's working copy of a batch):
        ``state`` becomes the new state, with no copy made. Nothing is changed when the
        event is refused (a site not in the catalogue, or another site's state). A reading is
        first :meth:`take`-n, unless ``taken`` (the caller did): a repeat is not judged."""
        site = event.site
        if site not in self.ctx.catalogue.sites:
            raise KeyError(f"site '{site}' is not in the catalogue")
        state = self.initial(site) if state is None else state
        if state.site != site:
            raise ValueError(f"state of site '{state.site}' given an event of '{site}'")
        windows: list[ClosedWindow] = []
        meter = None
        marked: list[MarkEvent] = []
        if isinstance(event, Reading):
            now = event.ts
            if not taken:
                repeat = self.take(state, event)
                if repeat is not None:
                    return Judged(state, [], [], repeat=repeat)
            if self.is_late(state, event):
                # The rules keep the device's present (runs of values, active verdicts, the
                # open minute): old data resent after an outage must not move it, or a resend
                # of normal values would clear today's exceedance. Judged on its own instead,
                # and its hour again once the resend has settled (streams/judging/rules/rejudge.py).
                return Judged(state, self.judge_late(state, [event]), [], late=True)
            if state.started is None:
                state.started = now
            windows = self._aggregate(state, event)
            meter = self._account(state, event)
            marked = self._device_marks(state, event)
        elif isinstance(event, MarkEvent):
            now = event.at
            self._take_mark(state, event)
        else:
            now = event.at if isinstance(event, DeviceStatus) else event.now
            if state.started is None:
                state.started = now
            if isinstance(event, DeviceStatus) and event.instruments:
                marked = self._instrument_marks(state, event)
        step = Step(event, now, tuple(windows), meter)
        findings: list[Finding] = []
        order: Valve | None = None
        ctx = self.ctx
        for rule in self.rules:
            said = rule(state, step, ctx)
            if not said:
                continue
            for verdict in said:
                if isinstance(verdict, ValveOrder):
                    order = verdict.valve  # one meter per reading: at most one order
                else:
                    findings.append(verdict)
        return Judged(state, findings, windows, order, meter=meter, marks=marked)

    def is_late(self, state: SiteState, reading: Reading) -> bool:
        """Whether a taken ``reading`` is late data: older than its device's newest, resent
        or long after its time (``ReadingLedger.is_late``)."""
        ledger = state.readings.get(reading.device)
        return ledger is not None and ledger.is_late(reading)

    def judge_late(self, state: SiteState, readings: list[Reading]) -> list[Finding]:
        """Late readings of the site (taken, and :meth:`is_late`), judged together, as the
        worker does once per batch: their real-time exceedances, one finding marked late per
        device, pollutant and hour, and their hours noted once each, to be judged again
        (streams/judging/rules/rejudge.py). The site's present state is not touched."""
        note_hours(state, late_hours(readings))
        ctx = self.ctx
        return [f for r in readings for f in late_over_limit(state, r, ctx)]

    def rejudge(
        self, site: str, device: str, hour: datetime, readings: Sequence[Reading | StoredReading]
    ) -> tuple[list[ClosedWindow], list[Finding]]:
        """The hour ``hour`` of ``device`` and its day: :meth:`rejudge_hours` of one."""
        return self.rejudge_hours(site, {device: {hour}}, readings)

    def rejudge_hours(
        self,
        site: str,
        hours: dict[str, set[datetime]],
        readings: Sequence[Reading | StoredReading],
    ) -> tuple[list[ClosedWindow], list[Finding]]:
        """The noted ``hours`` of each device and their days, computed again from
        ``readings`` (the devices' stored readings of those days, in time order, as one read
        gives them back) with the same means as live, in one pass per device: the hours' and
        the days' windows (for the store: they replace what was written) and a finding marked
        late for each valid mean over its limit."""
        state = self.initial(site)
        days = {device: {day_of(h) for h in hs} for device, hs in hours.items()}
        windows: list[ClosedWindow] = []
        for reading in readings:
            wanted = hours.get(reading.device)
            if wanted is None:
                continue
            for cw in self._aggregate(state, reading):
                w = cw.window
                if (w.period is Period.HOUR and w.start in wanted) or (
                    w.period is Period.DAY and w.start in days[reading.device]
                ):
                    windows.append(cw)
        return windows, late_window_findings(state, windows, self.ctx)

    def _account(self, state: SiteState, reading: Reading) -> MeterStatus | None:
        """A discharge meter's account, kept by the platform from the meter's readings."""
        device = self.ctx.device(state.site, reading.device)
        if device is None or device.model is not DeviceModel.DISCHARGE_METER:
            return None
        if device.quota is None:
            return None
        track = state.devices.setdefault(reading.device, DeviceTrack())
        max_slice = self.ctx.params.max_slice
        track.account = account(track.account, device.quota, reading, max_slice)
        return platform_status(track.account, device.quota, reading)

    def _aggregate(self, state: SiteState, reading: Reading | StoredReading) -> list[ClosedWindow]:
        info = self.ctx.device_info(state.site, reading.device)
        if info is None:
            return []  # not this site's device: the bridge dead-letters those
        values, tracks, params, ts = reading.values, state.tracks, self.ctx.params, reading.ts
        flow = values.get(FLOW) if info.has_flow else None
        reference = self.ctx.o2_reference(state.site)
        out: list[ClosedWindow] = []
        for code, key in info.averaged:
            m = values.get(code)
            if code == STANDARD_DRY_FLOW and reference is not None:
                m = standard_dry_flow_of(values)
            if m is None:
                continue
            track = tracks.get(key)
            if track is None:
                by_flow = info.has_flow and code not in TIME_WEIGHTED
                weighting = Weighting.FLOW if by_flow else Weighting.TIME
                track = tracks[key] = Track(series=Series(weighting=weighting))
            series = track.series
            by_flow = series.weighting is Weighting.FLOW
            closed = add_in_place(series, ts, m, params, flow if by_flow else None)
            for w in closed:
                owed = self._owed(state, info, code, w)
                if owed is not None:
                    count_day(track, w.start, owed)
                out.append(ClosedWindow(reading.device, code, w, validity=owed))
        if out and reference is not None:
            out = self._stack_windows(state, info, out, reference)
        return out

    @staticmethod
    def _owed(state: SiteState, info: DeviceInfo, code: str, w: Window) -> Validity | None:
        """A closed day's transmission and validity of a pollutant its device owes (the
        catalogue's: not the water's temperature it may send besides, nor a derived series);
        time marked stopped (停产, 停运) is not owed."""
        if w.period is not Period.DAY or code not in info.owed:
            return None
        received, valid = counted(w.flags)
        stopped = stopped_periods(state.marks.values(), info.device.id) if state.marks else ()
        expected = expected_values((w.start, w.end), info.device.reports_every, stopped)
        return Validity(expected, received, valid)

    def _device_marks(self, state: SiteState, reading: Reading) -> list[MarkEvent]:
        """The device's own marks by its flags (M, C, F, D, per pollutant) begun or ended by
        the reading; nearly every reading has only N values and no mark open: nothing."""
        values = reading.values
        if not state.open_device_marks and all(m.flag is DataFlag.NORMAL for m in values.values()):
            return []
        said = {
            code: (FLAG_MARKS.get(m.flag), f"flag {m.flag.value}") for code, m in values.items()
        }
        return self._device_says(state, reading.device, "flag", said, reading.ts)

    def _instrument_marks(self, state: SiteState, status: DeviceStatus) -> list[MarkEvent]:
        """A CEMS's analysers' states (CN 3020 i12001) as its own marks, per pollutant."""
        said = {
            code: (INSTRUMENT_MARKS.get(value), f"i12001={value}")
            for code, value in status.instruments.items()
        }
        return self._device_says(state, status.device, "i12001", said, status.at)

    def _device_says(
        self,
        state: SiteState,
        device: str,
        by: str,
        said: dict[str, tuple[MarkType | None, str]],
        at: datetime,
    ) -> list[MarkEvent]:
        open_marks, kept, out = state.open_device_marks, state.device_marks, []
        for code, (kind, words) in said.items():
            key = f"{device}|{code}|{by}"  # flags and instrument states mark apart
            mark_id = open_marks.get(key)
            was = kept.get(mark_id) if mark_id is not None else None
            now_open, changes = device_mark(was, state.site, device, code, kind, words, at)
            for change, mark in changes:
                kept[mark.id] = mark
                out.append(MarkEvent(kind=change, mark=mark, actor=device, at=at))
            if now_open is None:
                open_marks.pop(key, None)
            else:
                open_marks[key] = now_open.id
        if out:
            _forget_device_marks(state)
        return out

    def _take_mark(self, state: SiteState, event: MarkEvent) -> None:
        """A mark as it now stands; a rejected one's hours are judged again from the stored
        readings (streams/judging/rules/rejudge.py), so its findings come back. Marks whose
        period ended long ago are forgotten."""
        mark = event.mark
        state.marks[mark.id] = mark
        if mark.status is MarkStatus.REJECTED:
            devices = (
                [mark.device] if mark.device else [d.id for d in self.ctx.site(state.site).devices]
            )
            hour, hours = hour_of(mark.start), {}
            while hour < mark.end:
                for device in devices:
                    hours[(device, hour)] = event.at
                hour += timedelta(hours=1)
            note_hours(state, hours)
        forget = event.at - MARKS_KEPT
        for mark_id in [i for i, m in state.marks.items() if m.end < forget]:
            del state.marks[mark_id]

    def _stack_windows(
        self, state: SiteState, info: DeviceInfo, closed: list[ClosedWindow], reference: float
    ) -> list[ClosedWindow]:
        """A stack's windows with their O2, corrected mean and emission (NOx as NO2 added
        where the monitor reports NO and NO2 apart); the days' emissions summed from their
        hours'. Windows close in order, an hour before its day."""
        beside = {(cw.pollutant, cw.window.period, cw.window.start): cw.window for cw in closed}
        device = closed[0].device
        if NOX not in info.device.pollutants:
            closed = closed + [
                ClosedWindow(device, NOX, nox_window(w, no2))
                for (code, period, start), w in beside.items()
                if code == NO and (no2 := beside.get((NO2, period, start))) is not None
            ]
        track = state.devices.setdefault(device, DeviceTrack())
        high_o2 = self.ctx.params.high_o2_pct
        out = []
        for cw in closed:
            w = cw.window
            figures = stack_mean(cw.pollutant, w, beside, reference, high_o2)
            if figures is not None and w.period is Period.HOUR and figures.emission_kg:
                emitted = track.emitted_kg
                emitted[cw.pollutant] = emitted.get(cw.pollutant, 0.0) + figures.emission_kg
            elif figures is not None and w.period is Period.DAY:
                day = track.emitted_kg.pop(cw.pollutant, None)
                figures = replace(figures, emission_kg=day)
            out.append(replace(cw, stack=figures))
        return out


DEVICE_MARKS_KEPT = 100  # a site's ended device marks kept: its state is one changelog record


def _forget_device_marks(state: SiteState) -> None:
    open_ids = set(state.open_device_marks.values())
    ended = [m for m in state.device_marks.values() if m.id not in open_ids]
    for m in sorted(ended, key=lambda m: m.end)[: max(0, len(ended) - DEVICE_MARKS_KEPT)]:
        del state.device_marks[m.id]
