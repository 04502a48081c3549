"""Scenarios: scripted incidents for the simulated fleet, as validated YAML.

A scenario file (``simulators/scenarios/*.yaml``) says what happens to which device when,
relative to the scenario's start::

    name: sustained-cod-exceedance
    description: The chemical plant's COD stays at 2.5 times its limit for three hours.
    events:
      - at: 10m          # durations: 30s, 10m, 2h, 1d, or combined: 1h30m
        device: "33080200000001"
        action: exceed
        pollutant: w01018
        factor: 2.5
        for: 3h          # left out: until the scenario is stopped

A scenario may repeat: ``every: 1d`` at the top plays its events again every day, from
the run's start (each window must end, and each event happen, within the period), so a
simulated month sees the same incidents open and close each day.

Windowed actions hold from ``at`` for ``for``: exceed (pollutant, factor × its limit),
night_discharge, burn_quota (factor on the flow), offline, maintenance, calibration, stopped,
stuck, zeros, negative_spikes (rate), out_of_range (pollutant, default the model's primary),
raining. On a flue_gas_monitor only: dilute (o2: air let into the flue holds O2 there, 0..19;
measured concentrations fall, flow rises, corrected values stay), startup (a cold start-up,
启炉: O2 near air's, 30 % of the flow, low values, flagged N) and wrong_reference
(o2_reference: the CEMS computes its own corrected values, zs, with it instead of the
site's); an SCR upset is ``exceed`` on NOx (a21002). One-off actions happen once at ``at``
and take no ``for``; they need a discharge meter: quota (used: fraction of the period's
quota), recharge (amounts: w00000 m³, pollutants kg), year_reset, insert_card (card_id),
remove_card.

A :class:`ScenarioRun` drives models with an injected clock: each ``tick()`` recomputes the
conditions of every device the scenario names from the windows active at ``now - start`` (so
overlapping windows combine and expire cleanly; the scenario owns those devices' conditions)
and fires the one-off events that have come due, each once (once per period, if it repeats),
at the tick's time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from ecowatch.clock import Clock
from ecowatch.config.yamlfile import field_problem, read_yaml
from ecowatch.durations import Duration, PositiveDuration, format_duration
from ecowatch.errors import ConfigError
from ecowatch.schema import Identifier, PollutantCode
from ecowatch.simulators.models import (
    BaseMonitor,
    Conditions,
    DischargeMeter,
    FlueGasMonitor,
    Mode,
    MonitorModel,
)
from ecowatch.streams.judging.flue_gas import AIR_O2, HIGH_O2

SCENARIOS = Path(__file__).parent / "scenarios"

# -- events ------------------------------------------------------------------------------------


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    action: str
    at: Duration
    device: Identifier

    def describe(self) -> str:
        return f"{self.action} on {self.device}"

    def check(self, model: MonitorModel) -> tuple[str, str] | None:
        """(field, problem) when this event cannot happen to ``model``."""
        return None


class _Window(_Event):
    """An event that holds for a while: it shapes the device's conditions."""

    for_: PositiveDuration | None = Field(default=None, alias="for")

    def active(self, elapsed: timedelta) -> bool:
        return self.at <= elapsed and (self.for_ is None or elapsed < self.at + self.for_)

    def ends(self) -> timedelta | None:
        return None if self.for_ is None else self.at + self.for_

    def impose(self, conditions: Conditions) -> Conditions:
        raise NotImplementedError


class _ModeWindow(_Window):
    mode: ClassVar[Mode]

    def impose(self, conditions: Conditions) -> Conditions:
        return conditions.with_mode(self.mode)


class Offline(_ModeWindow):
    action: Literal["offline"]
    mode: ClassVar[Mode] = Mode.OFFLINE


class Maintenance(_ModeWindow):
    action: Literal["maintenance"]
    mode: ClassVar[Mode] = Mode.MAINTENANCE


class Calibration(_ModeWindow):
    action: Literal["calibration"]
    mode: ClassVar[Mode] = Mode.CALIBRATION


class Stopped(_ModeWindow):
    action: Literal["stopped"]
    mode: ClassVar[Mode] = Mode.STOPPED


class Stuck(_ModeWindow):
    action: Literal["stuck"]
    mode: ClassVar[Mode] = Mode.STUCK


class Zeros(_ModeWindow):
    action: Literal["zeros"]
    mode: ClassVar[Mode] = Mode.ZEROS


class Raining(_ModeWindow):
    action: Literal["raining"]
    mode: ClassVar[Mode] = Mode.RAINING


class NightDischarge(_ModeWindow):
    action: Literal["night_discharge"]
    mode: ClassVar[Mode] = Mode.NIGHT_DISCHARGE


class NegativeSpikes(_ModeWindow):
    action: Literal["negative_spikes"]
    mode: ClassVar[Mode] = Mode.NEGATIVE_SPIKES
    rate: Annotated[float, Field(gt=0, le=1)] = 0.2  # chance per reading

    def impose(self, conditions: Conditions) -> Conditions:
        return replace(super().impose(conditions), spike_rate=self.rate)


class Exceed(_Window):
    action: Literal["exceed"]
    pollutant: PollutantCode
    factor: Annotated[float, Field(gt=0, le=50)]  # × the pollutant's limit

    def describe(self) -> str:
        return f"exceed {self.pollutant} ×{self.factor:g} on {self.device}"

    def impose(self, conditions: Conditions) -> Conditions:
        return replace(conditions, exceed={**conditions.exceed, self.pollutant: self.factor})

    def check(self, model: MonitorModel) -> tuple[str, str] | None:
        codes = model.exceedable() if isinstance(model, BaseMonitor) else model.pollutants
        if self.pollutant not in codes:
            return "pollutant", f"a {model.model} can exceed only {', '.join(codes)}"
        return None


class OutOfRange(_Window):
    action: Literal["out_of_range"]
    pollutant: PollutantCode | None = None  # None: the model's primary pollutant

    def impose(self, conditions: Conditions) -> Conditions:
        if self.pollutant is None:  # filled in from the model by the run (for_model)
            return conditions
        return replace(conditions, over_range=conditions.over_range | {self.pollutant})

    def check(self, model: MonitorModel) -> tuple[str, str] | None:
        if self.pollutant is not None and self.pollutant not in model.pollutants:
            return "pollutant", f"a {model.model} measures {', '.join(model.pollutants)}"
        return None

    def for_model(self, model: MonitorModel) -> OutOfRange:
        """With the pollutant filled in from the model when the file left it out."""
        if self.pollutant is None and isinstance(model, BaseMonitor):
            return self.model_copy(update={"pollutant": model.primary})
        return self


class BurnQuota(_Window):
    action: Literal["burn_quota"]
    factor: Annotated[float, Field(gt=1, le=20)]  # × the flow: production pushed hard

    def describe(self) -> str:
        return f"burn_quota flow ×{self.factor:g} on {self.device}"

    def impose(self, conditions: Conditions) -> Conditions:
        return replace(conditions, flow_factor=conditions.flow_factor * self.factor)

    def check(self, model: MonitorModel) -> tuple[str, str] | None:
        if isinstance(model, BaseMonitor) and model.flow_code is None:
            return "action", f"a {model.model} has no flow to push"
        return None


class _StackWindow(_Window):
    """A window that only a stack's flue-gas CEMS can undergo."""

    def check(self, model: MonitorModel) -> tuple[str, str] | None:
        if not isinstance(model, FlueGasMonitor):
            return "action", f"'{self.action}' needs a flue_gas_monitor, not a {model.model}"
        return None


class Dilute(_StackWindow):
    action: Literal["dilute"]
    # The O2 % air let in holds the flue at; from HIGH_O2 the gas would count as air itself.
    o2: Annotated[float, Field(gt=0, lt=HIGH_O2)]

    def describe(self) -> str:
        return f"dilute to {self.o2:g} % O2 on {self.device}"

    def impose(self, conditions: Conditions) -> Conditions:
        return replace(conditions, dilute_o2=self.o2)


class Startup(_StackWindow, _ModeWindow):
    action: Literal["startup"]
    mode: ClassVar[Mode] = Mode.STARTUP


class WrongReference(_StackWindow):
    action: Literal["wrong_reference"]
    o2_reference: Annotated[float, Field(ge=0, lt=AIR_O2)]  # % O2 the CEMS's zs use

    def describe(self) -> str:
        return f"wrong_reference {self.o2_reference:g} % O2 on {self.device}"

    def impose(self, conditions: Conditions) -> Conditions:
        return replace(conditions, o2_reference=self.o2_reference)


class _Once(_Event):
    """An event that happens once, to a discharge meter's account or card."""

    def fire(self, meter: DischargeMeter, now: datetime) -> None:
        raise NotImplementedError

    def check(self, model: MonitorModel) -> tuple[str, str] | None:
        if not isinstance(model, DischargeMeter):
            return "action", f"'{self.action}' needs a discharge_meter, not a {model.model}"
        return None


class Quota(_Once):
    action: Literal["quota"]
    used: Annotated[float, Field(ge=0, le=2)]  # fraction of the period's quota already used

    def describe(self) -> str:
        return f"quota used set to {self.used * 100:g} % on {self.device}"

    def fire(self, meter: DischargeMeter, now: datetime) -> None:
        meter.set_used_fraction(self.used, now)


class Recharge(_Once):
    action: Literal["recharge"]
    amounts: Annotated[
        dict[PollutantCode, Annotated[float, Field(ge=0, allow_inf_nan=False)]],
        Field(min_length=1),
    ]

    def describe(self) -> str:
        amounts = ", ".join(f"{code} +{amount:g}" for code, amount in self.amounts.items())
        return f"recharge {amounts} on {self.device}"

    def fire(self, meter: DischargeMeter, now: datetime) -> None:
        meter.recharge(self.amounts, now)

    def check(self, model: MonitorModel) -> tuple[str, str] | None:
        problem = super().check(model)
        if problem is None and isinstance(model, DischargeMeter):
            unknown = sorted(set(self.amounts) - set(model.annual_quota))
            if unknown:
                return "amounts", (
                    f"no quota for {', '.join(unknown)}; the meter accounts "
                    f"{', '.join(model.annual_quota)}"
                )
        return problem


class YearReset(_Once):
    action: Literal["year_reset"]

    def fire(self, meter: DischargeMeter, now: datetime) -> None:
        meter.year_reset(now)


class InsertCard(_Once):
    action: Literal["insert_card"]
    card_id: str | None = None  # None: the meter's own card

    def fire(self, meter: DischargeMeter, now: datetime) -> None:
        meter.insert_card(self.card_id, now)


class RemoveCard(_Once):
    action: Literal["remove_card"]

    def fire(self, meter: DischargeMeter, now: datetime) -> None:
        meter.remove_card(now)


Window = (
    Exceed
    | NightDischarge
    | BurnQuota
    | Offline
    | Maintenance
    | Calibration
    | Stopped
    | Stuck
    | Zeros
    | NegativeSpikes
    | OutOfRange
    | Raining
    | Dilute
    | Startup
    | WrongReference
)
Once = Quota | Recharge | YearReset | InsertCard | RemoveCard
Event = Annotated[Window | Once, Field(discriminator="action")]
_EVENT: TypeAdapter[Window | Once] = TypeAdapter(Event)
ACTIONS: tuple[str, ...] = tuple(
    get_args(cls.model_fields["action"].annotation)[0]
    for cls in (*get_args(Window), *get_args(Once))
)


# -- the scenario ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    events: tuple[Window | Once, ...]
    source: Path | None = None
    every: timedelta | None = None  # the script plays again every period (``every: 1d``)

    @property
    def devices(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(e.device for e in self.events))

    @property
    def length(self) -> timedelta | None:
        """When the last event is over; None when a window is open-ended, or it repeats."""
        if self.every is not None:
            return None
        ends = [e.ends() if isinstance(e, _Window) else e.at for e in self.events]
        known = [end for end in ends if end is not None]
        return max(known) if len(known) == len(ends) else None

    def check(self, models: Mapping[str, MonitorModel]) -> None:
        """Every event's device is in the fleet and can do what the event asks."""
        for i, event in enumerate(self.events):
            where = f"{self.source or self.name}: event #{i + 1} ({event.action})"
            model = models.get(event.device)
            if model is None:
                raise ConfigError(
                    f"{where}: field 'device': '{event.device}' is not in the fleet "
                    f"(known: {', '.join(sorted(models)) or 'none'})"
                )
            problem = event.check(model)
            if problem is not None:
                raise ConfigError(f"{where}: field '{problem[0]}': {problem[1]}")

    def within(self, elapsed: timedelta) -> tuple[int, timedelta]:
        """(which period, the time into it) ``elapsed`` after the start; one period if it
        does not repeat."""
        if self.every is None or elapsed < timedelta(0):
            return 0, elapsed
        period = elapsed // self.every
        return period, elapsed - period * self.every

    def run(
        self, models: Mapping[str, MonitorModel], clock: Clock, start: datetime | None = None
    ) -> ScenarioRun:
        return ScenarioRun(self, models, clock, start)


@dataclass
class ScenarioRun:
    """A scenario playing on a fleet's models; ``tick()`` (or ``apply(now)``) before each round
    of readings. ``start`` defaults to the clock's time when the run is made."""

    scenario: Scenario
    models: Mapping[str, MonitorModel]
    clock: Clock
    start: datetime | None = None
    _events: tuple[Window | Once, ...] = field(init=False, repr=False)
    _active: set[int] = field(init=False, default_factory=set, repr=False)
    _fired: set[int] = field(init=False, default_factory=set, repr=False)
    _windowed: tuple[str, ...] = field(init=False, repr=False)
    _applied: timedelta | None = field(init=False, default=None, repr=False)  # elapsed, last
    _period: int = field(init=False, default=0, repr=False)  # of a repeating scenario

    def __post_init__(self) -> None:
        self.scenario.check(self.models)
        if self.start is None:
            self.start = self.clock.now()
        # out_of_range without a pollutant means the device's primary one.
        self._events = tuple(
            e.for_model(self.models[e.device]) if isinstance(e, OutOfRange) else e
            for e in self.scenario.events
        )
        self._windowed = tuple(
            dict.fromkeys(e.device for e in self._events if isinstance(e, _Window))
        )

    def tick(self) -> list[str]:
        return self.apply(self.clock.now())

    def apply(self, now: datetime) -> list[str]:
        """Bring the models to the scenario's state at ``now``; returns what changed."""
        assert self.start is not None
        elapsed = self._applied = now - self.start
        period, into = self.scenario.within(elapsed)
        changes: list[str] = []
        if period != self._period:
            # A new period: what the last one had still to do happens first (a tick that came
            # late), then its one-off events are due again.
            changes += self._fire(lambda e: True, now)
            self._period, self._fired = period, set()
        active = {
            i for i, e in enumerate(self._events) if isinstance(e, _Window) and e.active(into)
        }
        for i in sorted(active - self._active):
            changes.append(f"started: {self._events[i].describe()}")
        for i in sorted(self._active - active):
            changes.append(f"ended: {self._events[i].describe()}")
        self._active = active
        for device in self._windowed:
            self.models[device].conditions = self.conditions(device, elapsed)
        return changes + self._fire(lambda e: e.at <= into, now)

    def _fire(self, due_now: Callable[[_Once], bool], now: datetime) -> list[str]:
        """Fire the one-off events ``due_now`` picks that have not fired (this period)."""
        changes: list[str] = []
        due = sorted(
            (e.at, i)
            for i, e in enumerate(self._events)
            if isinstance(e, _Once) and i not in self._fired and due_now(e)
        )
        for _, i in due:
            event = self._events[i]
            meter = self.models[event.device]
            assert isinstance(event, _Once) and isinstance(meter, DischargeMeter)
            event.fire(meter, now)
            self._fired.add(i)
            changes.append(f"done: {event.describe()}")
        return changes

    def conditions(self, device: str, elapsed: timedelta) -> Conditions:
        """The device's conditions ``elapsed`` after the start: a pure function of the script;
        overlapping windows combine (two exceedances of one pollutant: the later one wins)."""
        conditions = Conditions()
        _, into = self.scenario.within(elapsed)
        for event in self._events:
            if isinstance(event, _Window) and event.device == device and event.active(into):
                conditions = event.impose(conditions)
        return conditions

    @property
    def finished(self) -> bool:
        """The last apply saw every one-off event fired and every window over (never, with an
        open-ended window)."""
        length = self.scenario.length
        done = len(self._fired) == sum(isinstance(e, _Once) for e in self._events)
        if not done or length is None or self._applied is None:
            return False
        return self._applied >= length


# -- loading -----------------------------------------------------------------------------------

_TOP = ("name", "description", "every", "events")


def _describe(err: Mapping[str, Any]) -> str:
    if err["type"] == "union_tag_invalid":
        return f"field 'action': unknown action {err['ctx']['tag']!r}; expected one of " + (
            ", ".join(ACTIONS)
        )
    if err["type"] == "union_tag_not_found":
        return "field 'action': missing; expected one of " + ", ".join(ACTIONS)
    if err["type"] == "model_attributes_type":
        return "expected a mapping of at, device, action and the action's fields"
    # The first part of the location is the action (the union's tag), named by the event.
    return field_problem(err, skip=1, whole="(event)")


def load_scenario_file(path: Path) -> Scenario:
    path = Path(path)
    doc = read_yaml(path, "the scenario")
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: expected a mapping with {', '.join(_TOP)}")
    unknown = sorted(set(doc) - set(_TOP))
    if unknown:
        raise ConfigError(f"{path}: unknown field(s) {unknown}; expected {', '.join(_TOP)}")
    name = doc.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{path}: field 'name': expected the scenario's name, e.g. {path.stem}")
    description = doc.get("description") or ""
    if not isinstance(description, str):
        raise ConfigError(f"{path}: field 'description': expected text")
    raw_events = doc.get("events")
    if not isinstance(raw_events, list) or not raw_events:
        raise ConfigError(f"{path}: field 'events': expected a list of at least one event")
    events = []
    for i, raw in enumerate(raw_events):
        action = raw.get("action") if isinstance(raw, dict) else None
        where = f"event #{i + 1}" + (f" ({action})" if isinstance(action, str) else "")
        try:
            events.append(_EVENT.validate_python(raw))
        except ValidationError as exc:
            problems = "; ".join(_describe(e) for e in exc.errors(include_url=False))
            raise ConfigError(f"{path}: {where}: {problems}") from None
    every = _every(path, doc.get("every"), events)
    return Scenario(
        name=name, description=description, events=tuple(events), source=path, every=every
    )


_PERIOD: TypeAdapter[timedelta] = TypeAdapter(PositiveDuration)


def _every(path: Path, raw: object, events: list[Window | Once]) -> timedelta | None:
    """The period a repeating scenario plays again after; each event within it."""
    if raw is None:
        return None
    try:
        every = _PERIOD.validate_python(raw)
    except ValidationError as exc:
        problem = exc.errors(include_url=False)[0]["msg"]
        raise ConfigError(f"{path}: field 'every': {problem}") from None
    for i, event in enumerate(events):
        where = f"{path}: event #{i + 1} ({event.action})"
        if event.at >= every:
            raise ConfigError(f"{where}: field 'at': must come before the period ends (every)")
        if isinstance(event, _Window):
            end = event.ends()
            if end is None or end > every:
                raise ConfigError(
                    f"{where}: field 'for': a repeating scenario's window must end within "
                    f"its period (every: {format_duration(every)})"
                )
    return every


def scenario_names(folder: Path = SCENARIOS) -> list[str]:
    return sorted(p.stem for p in Path(folder).glob("*.yaml"))


def load_scenario(name_or_path: str | Path, folder: Path = SCENARIOS) -> Scenario:
    """A shipped scenario by name (``night-discharge``), or a scenario file by path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return load_scenario_file(path)
    candidate = Path(folder) / f"{name_or_path}.yaml"
    if not candidate.is_file():
        raise ConfigError(
            f"no scenario '{name_or_path}' in {folder}; "
            f"known: {', '.join(scenario_names(folder)) or 'none'}"
        )
    return load_scenario_file(candidate)
