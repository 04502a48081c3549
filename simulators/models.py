"""Device models: pure and deterministic (state + time + seed → next reading).

Every model has the same small shape, :class:`MonitorModel`: it is built from a device id and a
seed (plus parameters with sensible defaults), and ``reading(now)`` returns the next
:class:`DeviceReading`, or ``None`` while the device is offline. Two models built with the same
seed and asked at the same times give the same readings: randomness comes only from a
``random.Random`` seeded with device and seed, time only from ``now``. No I/O, no threads.

What a scenario can do to a device is its :class:`Conditions`: fault modes (:class:`Mode`),
sustained exceedance, values pushed above the instrument range, production pushed hard, and a
stack's start-up, air let into its flue or a wrong reference oxygen in its CEMS.
Values carry the HJ 212 data flags: F while the source is not discharging, M in maintenance,
C on the analysers while calibrating, T above the instrument's range, otherwise N — stuck
values, zeros, negative spikes and a stack's start-up stay N on purpose: the platform has to
find them.

Adding a kind: subclass :class:`BaseMonitor` as a ``@dataclass(kw_only=True)``, give it
``model`` (the catalogue's DeviceModel value), ``channels`` (pollutant code, rounding,
instrument range, noise, drift), ``primary``, ``standard`` and ``typical(code)``, and write
``_process(now, hours)``, the true values at ``now`` before the sensors. Then add it to
:data:`MODELS`. Noise, drift, faults, flags, seq and offline come from the base.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import ClassVar, Protocol

from ecowatch.clock import CHINA
from ecowatch.pollutants import (
    GAS_FLOW,
    GAS_PRESSURE,
    GAS_TEMP,
    MOISTURE,
    NO,
    NO2,
    NOX,
    O2,
    PM,
    SO2,
    VELOCITY,
)
from ecowatch.schema import (
    DataFlag,
    DeviceReading,
    Measurement,
    MeterEvent,
    MeterEventKind,
    MeterStatus,
    ValveCommand,
    ValveState,
)

# The CEMS corrects as the platform does: one formula (HJ 75-2017), the platform's.
from ecowatch.streams.judging.flue_gas import (
    AIR_O2,
    HIGH_O2,
    NO_TO_NO2,
    corrected,
    nox_as_no2,
)

FLOW = "w00000"  # L/s; its accumulated volume is in m³
PH = "w01001"


class Mode(StrEnum):
    """A fault or situation a scenario switches on for a while."""

    MAINTENANCE = "maintenance"  # every value flagged M
    CALIBRATION = "calibration"  # analysers flagged C, reading the standard's span
    STOPPED = "stopped"  # the source is not discharging: flow 0, every value flagged F
    OFFLINE = "offline"  # silent: reading() returns None
    STUCK = "stuck"  # the last values repeat, flagged N (恒值)
    ZEROS = "zeros"  # every value 0.0, flagged N
    NEGATIVE_SPIKES = "negative_spikes"  # now and then one value goes negative, flagged N
    RAINING = "raining"  # stormwater dilutes outfalls, washes particles out of the air
    NIGHT_DISCHARGE = "night_discharge"  # illicit discharge (偷排) at night and in the rain
    STARTUP = "startup"  # a stack's cold start-up (启炉): mostly air, little flow, flags N


@dataclass(frozen=True)
class Conditions:
    """What is being done to a device right now; the default is a healthy device."""

    modes: frozenset[Mode] = frozenset()
    # Sustained exceedance: pollutant → multiple of its limit (of its typical level when the
    # model has no limit for it, e.g. flow).
    exceed: Mapping[str, float] = field(default_factory=dict)
    over_range: frozenset[str] = frozenset()  # pollutants pushed above the instrument range
    flow_factor: float = 1.0  # production pushed hard: burns through a discharge quota
    spike_rate: float = 0.2  # chance per reading of a negative spike, with NEGATIVE_SPIKES
    # A stack's: air let into the flue holds O2 near this % (稀释), the same emission spread
    # over more gas.
    dilute_o2: float | None = None
    # A stack's CEMS computes its own corrected values (zs) with this reference O2 instead of
    # the site's: a known way to hide an exceedance.
    o2_reference: float | None = None

    def with_mode(self, mode: Mode, on: bool = True) -> Conditions:
        modes = self.modes | {mode} if on else self.modes - {mode}
        return replace(self, modes=frozenset(modes))


@dataclass(frozen=True)
class Channel:
    """One measured quantity of a model: rounding, instrument range, noise and drift."""

    code: str
    decimals: int
    range: float  # the instrument's upper range: a value above it is flagged T
    noise: float  # standard deviation of the measurement noise, relative
    drift: float  # bound of the slow sensor drift, relative
    analyser: bool = True  # calibrated with a standard; the flow meter is not
    additive: bool = False  # pH: noise and drift in pH units, not relative
    span: float | None = None  # the calibration standard; None: 80 % of the range


class MonitorModel(Protocol):
    model: ClassVar[str]
    device: str
    seed: int
    conditions: Conditions

    @property
    def pollutants(self) -> tuple[str, ...]: ...

    def reading(self, now: datetime) -> DeviceReading | None: ...


# -- shapes of the day and the year ------------------------------------------------------------


def local_time(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError(f"a model needs a timezone-aware time, got {now.isoformat()}")
    return now.astimezone(CHINA)


def hour_of_day(now: datetime) -> float:
    local = local_time(now)
    return local.hour + local.minute / 60 + local.second / 3600


def in_window(hour: float, window: tuple[int, int]) -> bool:
    """Whether ``hour`` falls in [start, end), the window wrapping midnight when start > end."""
    start, end = window
    return start <= hour < end if start <= end else hour >= start or hour < end


def bump(hour: float, centre: float, width: float) -> float:
    """A bell around ``centre`` on the 24-hour circle (so a night peak wraps midnight)."""
    d = (hour - centre + 12) % 24 - 12
    return math.exp(-0.5 * (d / width) ** 2)


def shift_load(hour: float, shift: tuple[int, int] | None, idle: float = 0.35) -> float:
    """Production load of a day-shift plant: ``idle`` outside the shift (cooling water,
    cleaning), a smooth rise to full load mid-shift. ``None``: a continuous process."""
    if shift is None:
        return 1.0
    start, end = shift
    length = (end - start) % 24 or 24
    into = (hour - start) % 24
    if into > length:
        return idle
    return idle + (1 - idle) * math.sin(math.pi * into / length)


def influent_load(hour: float) -> float:
    """A municipal plant's effluent flow relative to its daily mean: sewage is lowest before
    dawn; the morning and evening peaks reach the outlet damped and hours late."""
    return (
        1
        - 0.22 * math.cos(2 * math.pi * (hour - 4.5) / 24)
        + 0.06 * math.cos(4 * math.pi * (hour - 10.5) / 24)
    )


def appendix_d(
    flow: float, seconds: float, concentrations: Mapping[str, float]
) -> dict[str, float]:
    """HJ 212 Appendix D for one time slice: volume ΔD (m³) = Q (L/s) × T (s) × 1e-3, and per
    pollutant the mass G (kg) = C (mg/L) × ΔD × 1e-3. A totaliser does not count backwards,
    so negative inputs count as zero."""
    volume = max(flow, 0.0) * max(seconds, 0.0) * 1e-3
    out = {FLOW: volume}
    for code, c in concentrations.items():
        out[code] = max(c, 0.0) * volume * 1e-3
    return out


def _clipped_gauss(rng: random.Random) -> float:
    # Noise clipped at 3σ: a healthy device's baseline must never cross a limit by chance.
    return min(3.0, max(-3.0, rng.gauss(0.0, 1.0)))


# -- the base ----------------------------------------------------------------------------------


@dataclass
class BaseMonitor:
    """What every model shares: seeded randomness, sensor noise and drift, fault modes, flags.

    ``reading(now)`` runs: process (``_process``, the truth at ``now``) → exceedance override →
    sensors (drift, noise) → faults (stuck, zeros, spikes, over range, calibration) → rounding
    and flags → ``_account`` (the discharge meter's totaliser) → ``None`` when offline.
    """

    model: ClassVar[str]
    channels: ClassVar[tuple[Channel, ...]]
    primary: ClassVar[str]  # the pollutant ``out_of_range`` pushes when none is named
    standard: ClassVar[Mapping[str, float]] = {}  # upper limits the values are judged against
    flow_code: ClassVar[str | None] = None  # the value that drops to 0 when not discharging
    calibration_tau: ClassVar[float] = 180.0  # s for an analyser to settle on the standard

    device: str
    seed: int
    _: KW_ONLY
    noise: float = 1.0  # scale of noise and drift; 0 makes an ideal instrument (worked examples)
    night_window: tuple[int, int] = (22, 5)  # when an illicit discharge runs
    ranges: Mapping[str, float] = field(default_factory=dict)  # instrument ranges, overriding
    limits: Mapping[str, float] = field(default_factory=dict)  # limits, overriding ``standard``
    # The pollutants this installation reports (the catalogue's list); None: all it measures.
    # The rest are still simulated, so the reported values do not depend on the choice.
    reported: Sequence[str] | None = None
    conditions: Conditions = field(default_factory=Conditions)

    _rng: random.Random = field(init=False, repr=False, compare=False)
    _seq: int = field(init=False, default=0, repr=False, compare=False)
    _last_time: datetime | None = field(init=False, default=None, repr=False, compare=False)
    _drift: dict[str, float] = field(init=False, default_factory=dict, repr=False, compare=False)
    _last_values: dict[str, float] | None = field(
        init=False, default=None, repr=False, compare=False
    )
    _stuck: dict[str, float] | None = field(init=False, default=None, repr=False, compare=False)
    _calibrating_since: datetime | None = field(init=False, default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.noise < 0:
            raise ValueError(f"noise must be >= 0, got {self.noise}")
        if self.reported is not None:
            unknown = set(self.reported) - {ch.code for ch in self.channels}
            if unknown or not self.reported:
                raise ValueError(
                    f"{self.model} cannot report {sorted(unknown) or 'nothing'}; "
                    f"it measures {', '.join(ch.code for ch in self.channels)}"
                )
            self.reported = tuple(self.reported)
        self._rng = random.Random(f"{self.model}:{self.device}:{self.seed}")
        self._drift = {ch.code: 0.0 for ch in self.channels}

    # What a kind defines.

    def typical(self, code: str) -> float:
        """The pollutant's typical level (full load, annual mean): scales spikes and the
        exceedance of pollutants without a limit."""
        raise NotImplementedError

    def _process(self, now: datetime, hours: float) -> dict[str, float]:
        """The true values at ``now``, before the sensors: one per channel. ``hours`` since the
        previous reading, for the kind's own slow processes."""
        raise NotImplementedError

    def _exceeded(self, true: dict[str, float]) -> None:
        """Sustained exceedance: each pollutant held at its factor × its limit (its typical
        level without one), in place of its true value."""
        for code, factor in self.conditions.exceed.items():
            if code in true:
                true[code] = factor * self._reference(code)

    def _corrected(self, values: Mapping[str, float]) -> dict[str, float]:
        """The device's own corrected values (a CEMS's 折算值, ``zs``) from the rounded
        values it reports; none for most kinds."""
        return {}

    def _account(self, now: datetime, values: Mapping[str, Measurement]) -> None:
        """Called with every reading, published or not (the discharge meter's totaliser)."""

    def _outlet_open(self) -> bool:
        return True

    # Shared behaviour.

    @property
    def measured(self) -> tuple[str, ...]:
        """Everything the model simulates, reported or not."""
        return tuple(ch.code for ch in self.channels)

    @property
    def pollutants(self) -> tuple[str, ...]:
        """What the device reports, in the model's order."""
        if self.reported is None:
            return self.measured
        return tuple(c for c in self.measured if c in self.reported)

    def limit(self, code: str) -> float | None:
        return self.limits.get(code, self.standard.get(code))

    def instrument_range(self, code: str) -> float:
        return self.ranges.get(code, self._channel(code).range)

    def exceedable(self) -> tuple[str, ...]:
        """The pollutants ``exceed`` accepts: pH is two-sided, a multiple of it means nothing."""
        reported = self.pollutants
        return tuple(ch.code for ch in self.channels if not ch.additive and ch.code in reported)

    def set_mode(self, mode: Mode, on: bool = True) -> None:
        self.conditions = self.conditions.with_mode(mode, on)

    def exceed(self, pollutant: str, factor: float | None) -> None:
        """Hold ``pollutant`` at ``factor`` × its limit (sustained exceedance); None ends it."""
        if pollutant not in self.exceedable():
            raise ValueError(
                f"{self.model} cannot exceed '{pollutant}'; it can: {', '.join(self.exceedable())}"
            )
        exceed = dict(self.conditions.exceed)
        if factor is None:
            exceed.pop(pollutant, None)
        elif factor <= 0:
            raise ValueError(f"exceedance factor must be > 0, got {factor}")
        else:
            exceed[pollutant] = factor
        self.conditions = replace(self.conditions, exceed=exceed)

    def out_of_range(self, pollutant: str | None = None, on: bool = True) -> None:
        code = pollutant or self.primary
        self._channel(code)
        over = self.conditions.over_range | {code} if on else self.conditions.over_range - {code}
        self.conditions = replace(self.conditions, over_range=frozenset(over))

    def reading(self, now: datetime) -> DeviceReading | None:
        local_time(now)  # refuses a naive time
        hours = self._hours_since_last(now)
        self._walk_drift(hours)
        c = self.conditions
        true = self._process(now, hours)
        self._exceeded(true)
        shut = self._shut()
        if shut and self.flow_code is not None:
            true[self.flow_code] = 0.0
        values = self._faults(now, self._sense(true))
        values = {ch.code: round(values[ch.code], ch.decimals) + 0.0 for ch in self.channels}
        zs = self._corrected(values)
        measurements = {
            ch.code: Measurement(
                value=values[ch.code],
                flag=self._flag(ch, values[ch.code], shut),
                zs=zs.get(ch.code),
            )
            for ch in self.channels
        }
        self._last_values = values
        self._account(now, measurements)
        if Mode.OFFLINE in c.modes:
            return None  # silent; the seq counts published readings, so it shows no gap
        self._seq += 1
        published = {code: measurements[code] for code in self.pollutants}
        return DeviceReading(ts=now, seq=self._seq, values=published)

    # Internals.

    def _channel(self, code: str) -> Channel:
        for ch in self.channels:
            if ch.code == code:
                return ch
        raise ValueError(
            f"{self.model} does not measure '{code}'; it measures {', '.join(self.measured)}"
        )

    def _reference(self, code: str) -> float:
        limit = self.limit(code)
        return limit if limit is not None else self.typical(code)

    def _shut(self) -> bool:
        return Mode.STOPPED in self.conditions.modes or not self._outlet_open()

    def _illicit(self, now: datetime) -> bool:
        modes = self.conditions.modes
        return Mode.NIGHT_DISCHARGE in modes and (
            Mode.RAINING in modes or in_window(hour_of_day(now), self.night_window)
        )

    def _hours_since_last(self, now: datetime) -> float:
        last, self._last_time = self._last_time, now
        return 0.0 if last is None else max(0.0, (now - last).total_seconds() / 3600)

    def _walk_drift(self, hours: float) -> None:
        # A bounded random walk: a few per cent a day, never beyond the channel's bound.
        for ch in self.channels:
            bound = ch.drift * self.noise
            step = _clipped_gauss(self._rng) * 0.3 * ch.drift * self.noise * math.sqrt(hours)
            self._drift[ch.code] = min(bound, max(-bound, self._drift[ch.code] + step))

    def _sense(self, true: Mapping[str, float]) -> dict[str, float]:
        out = {}
        for ch in self.channels:
            g = _clipped_gauss(self._rng) * ch.noise * self.noise
            v, d = true[ch.code], self._drift[ch.code]
            out[ch.code] = v + d + g if ch.additive else v * (1 + d) * (1 + g)
        return out

    def _faults(self, now: datetime, values: dict[str, float]) -> dict[str, float]:
        c, rng = self.conditions, self._rng
        if Mode.STUCK in c.modes:
            if self._stuck is None:
                self._stuck = dict(self._last_values or values)
            values = dict(self._stuck)
        else:
            self._stuck = None
        if Mode.ZEROS in c.modes:
            values = dict.fromkeys(values, 0.0)
        if Mode.NEGATIVE_SPIKES in c.modes:
            hit, code, size = rng.random(), rng.choice(self.pollutants), rng.uniform(0.2, 1.0)
            if hit < c.spike_rate:
                values[code] = -size * max(abs(values[code]), self.typical(code))
        for code in sorted(c.over_range):
            if code in values:
                values[code] = self.instrument_range(code) * rng.uniform(1.05, 1.5)
        if Mode.CALIBRATION in c.modes:
            if self._calibrating_since is None:
                self._calibrating_since = now
            t = max(0.0, (now - self._calibrating_since).total_seconds())
            settled = 1 - math.exp(-t / self.calibration_tau)
            for ch in self.channels:
                if ch.analyser:
                    span = ch.span if ch.span is not None else 0.8 * self.instrument_range(ch.code)
                    values[ch.code] += (span - values[ch.code]) * settled
        else:
            self._calibrating_since = None
        return values

    def _flag(self, ch: Channel, value: float, shut: bool) -> DataFlag:
        modes = self.conditions.modes
        if shut:
            return DataFlag.STOPPED
        if Mode.MAINTENANCE in modes:
            return DataFlag.MAINTENANCE
        if Mode.CALIBRATION in modes and ch.analyser:
            return DataFlag.CALIBRATION
        if value > self.instrument_range(ch.code):
            return DataFlag.OVER_RANGE
        return DataFlag.NORMAL


# -- wastewater ------------------------------------------------------------------------------

_WATER_CHANNELS: dict[str, Channel] = {
    FLOW: Channel(FLOW, 2, range=1000.0, noise=0.05, drift=0.03, analyser=False),
    "w01018": Channel("w01018", 1, range=500.0, noise=0.06, drift=0.05),  # COD
    "w21003": Channel("w21003", 3, range=50.0, noise=0.08, drift=0.06),  # NH3-N
    "w21011": Channel("w21011", 3, range=10.0, noise=0.08, drift=0.06),  # TP
    "w21001": Channel("w21001", 2, range=100.0, noise=0.06, drift=0.05),  # TN
    # pH: noise and drift in pH units; calibrated with the 9.18 buffer.
    PH: Channel(PH, 2, range=14.0, noise=0.1, drift=0.15, additive=True, span=9.18),
}


class Effluent(StrEnum):
    INDUSTRIAL = "industrial"  # judged against GB 8978-1996, first grade
    TREATMENT_PLANT = "treatment_plant"  # municipal plant, GB 18918-2002 class 1A


# Typical values: an industrial outfall's at full load, a plant's at its daily mean flow;
# flow L/s, concentrations mg/L, pH.
TYPICAL_EFFLUENT: dict[Effluent, dict[str, float]] = {
    Effluent.INDUSTRIAL: {
        FLOW: 35.0,
        "w01018": 50.0,
        "w21003": 4.5,
        "w21011": 0.2,
        "w21001": 10.0,
        PH: 7.2,
    },
    Effluent.TREATMENT_PLANT: {
        FLOW: 230.0,  # about 20,000 m³/d
        "w01018": 26.0,
        "w21003": 1.0,
        "w21011": 0.22,
        "w21001": 9.0,
        PH: 7.0,
    },
}
GB_8978_FIRST_GRADE = {"w01018": 100.0, "w21003": 15.0, "w21011": 0.5}
GB_18918_1A = {"w01018": 50.0, "w21003": 5.0, "w21011": 0.5, "w21001": 15.0}

# An illicit discharge is untreated wastewater: the concentration multiplies.
_ILLICIT = {"w01018": 3.5, "w21003": 2.5, "w21011": 3.0, "w21001": 2.0}


@dataclass(kw_only=True)
class OutfallMonitor(BaseMonitor):
    """A wastewater outfall's online monitor: flow w00000 (L/s), COD w01018, NH3-N w21003,
    TP w21011, TN w21001 (mg/L), pH w01001.

    An industrial outfall follows its day shift (a trickle at night); a treatment plant's
    effluent follows the diurnal sewage flow, damped. Concentrations rise a little with load.
    Rain adds stormwater: more flow, diluted. The baseline stays within the effluent's
    standard (GB 8978 first grade, or GB 18918 1A) at every reading.
    """

    model: ClassVar[str] = "outfall_monitor"
    channels: ClassVar[tuple[Channel, ...]] = tuple(
        _WATER_CHANNELS[c] for c in (FLOW, "w01018", "w21003", "w21011", "w21001", PH)
    )
    primary: ClassVar[str] = "w01018"
    flow_code: ClassVar[str | None] = FLOW

    effluent: Effluent = Effluent.INDUSTRIAL
    levels: Mapping[str, float] = field(default_factory=dict)  # overrides TYPICAL_EFFLUENT
    shift: tuple[int, int] | None = (8, 20)  # industrial only; None: a continuous process

    def __post_init__(self) -> None:
        self.effluent = Effluent(self.effluent)
        super().__post_init__()

    def limit(self, code: str) -> float | None:
        plant = self.effluent is Effluent.TREATMENT_PLANT
        return self.limits.get(code, (GB_18918_1A if plant else GB_8978_FIRST_GRADE).get(code))

    def typical(self, code: str) -> float:
        return self.levels.get(code, TYPICAL_EFFLUENT[self.effluent][code])

    def _process(self, now: datetime, hours: float) -> dict[str, float]:
        hour, modes = hour_of_day(now), self.conditions.modes
        if self.effluent is Effluent.TREATMENT_PLANT:
            load = influent_load(hour)
            strength = 0.85 + 0.15 * load  # less retention time at high flow
            rain_flow, rain_dilution = 1.6, 0.8  # combined sewers
        else:
            load = shift_load(hour, self.shift)
            strength = 0.7 + 0.3 * load  # weaker wastewater while idling
            rain_flow, rain_dilution = 1.25, 0.85  # poorly separated yard drainage
        out = {code: self.typical(code) * strength for code in self.measured}
        out[FLOW] = self.typical(FLOW) * load * self.conditions.flow_factor
        out[PH] = self.typical(PH)
        if Mode.RAINING in modes:
            out[FLOW] *= rain_flow
            for code in _ILLICIT:
                out[code] *= rain_dilution
        if self._illicit(now):
            out[FLOW] += 0.8 * self.typical(FLOW)
            for code, factor in _ILLICIT.items():
                out[code] *= factor
        return out


# -- card-swipe discharge meter ----------------------------------------------------------------


@dataclass(kw_only=True)
class DischargeMeter(BaseMonitor):
    """A card-swipe discharge meter (刷卡排污): flow w00000 (L/s), COD w01018 and NH3-N w21003
    (mg/L) from the analysers, an outlet valve, an IC card reader, and a totaliser.

    Accounting (HJ 212 Appendix D, :func:`appendix_d`): at each reading the slice since the
    previous reading (or since the valve opened) adds ΔD = Q×T×1e-3 m³ and G = C×ΔD×1e-3 kg,
    using the values measured now; a value flagged M, C, D, S or B is replaced by the last
    valid one, as data substitution does. Nothing accumulates while the valve is closed or the
    source is stopped. The totaliser runs while the meter is offline; the events wait for the
    next published reading.

    Valve: a closed valve shuts the outlet, so the source is not discharging: flow 0.0 and every
    value flagged F (HJ 212 "stopped"). Closing settles the slice up to the command with the
    last measured values. The meter never closes its own valve — not even when the quota is
    used up (``used`` simply grows past ``quota``): judging the quota and commanding the valve
    is the platform's job (:meth:`apply_command`).

    Quota: the annual permit (``annual_quota``; w00000 m³, pollutants kg) is split into monthly
    quotas (``monthly_split``: 12 weights for January..December, like the catalogue's
    ``Quota.share``; equal by default). The period is the calendar month in China time
    ("2026-11"); at a new month ``used`` restarts from 0 with that month's share. A recharge
    (emission rights bought) adds to the current period's quota. At the start of the
    accounting year (the 1st of ``year_start_month``, e.g. 7 for 1 July) a YEAR_RESET event is
    recorded and nothing carries over. The account lives in the meter; the card identifies the
    enterprise, so a removed card (``card_id`` None in the status) does not stop the
    totaliser: the platform sees flow without a card.
    """

    model: ClassVar[str] = "discharge_meter"
    channels: ClassVar[tuple[Channel, ...]] = (
        replace(_WATER_CHANNELS[FLOW], range=300.0),  # DN200 electromagnetic flow meter
        _WATER_CHANNELS["w01018"],
        _WATER_CHANNELS["w21003"],
    )
    primary: ClassVar[str] = "w01018"
    standard: ClassVar[Mapping[str, float]] = {"w01018": 100.0, "w21003": 15.0}
    flow_code: ClassVar[str | None] = FLOW

    levels: Mapping[str, float] = field(default_factory=dict)
    shift: tuple[int, int] | None = (8, 20)
    # A permit that a normal year uses to about three quarters.
    annual_quota: Mapping[str, float] = field(
        default_factory=lambda: {FLOW: 460_000.0, "w01018": 25_000.0, "w21003": 2_500.0}
    )
    monthly_split: Sequence[float] | None = None  # January..December; normalised
    year_start_month: int = 1  # the accounting year starts on the 1st of this month
    card_id: str | None = None  # the enterprise's card; None: "IC-<device>"
    card_inserted: bool = True
    valve: ValveState = ValveState.OPEN

    _card: str | None = field(init=False, default=None, repr=False, compare=False)
    _period: str | None = field(init=False, default=None, repr=False, compare=False)
    _year: int | None = field(init=False, default=None, repr=False, compare=False)
    _quota: dict[str, float] = field(init=False, default_factory=dict, repr=False, compare=False)
    _used: dict[str, float] = field(init=False, default_factory=dict, repr=False, compare=False)
    _events: list[MeterEvent] = field(init=False, default_factory=list, repr=False, compare=False)
    _accounted_until: datetime | None = field(init=False, default=None, repr=False, compare=False)
    _valid: dict[str, float] = field(init=False, default_factory=dict, repr=False, compare=False)
    _obeyed: list[str] = field(init=False, default_factory=list, repr=False, compare=False)

    _TYPICAL: ClassVar[Mapping[str, float]] = {FLOW: 20.0, "w01018": 60.0, "w21003": 6.0}

    def __post_init__(self) -> None:
        if not 1 <= self.year_start_month <= 12:
            raise ValueError(f"year_start_month must be 1..12, got {self.year_start_month}")
        split = list(self.monthly_split) if self.monthly_split is not None else [1.0] * 12
        if len(split) != 12 or any(w < 0 for w in split) or sum(split) <= 0:
            raise ValueError("monthly_split needs 12 non-negative weights, not all zero")
        self.monthly_split = [w / sum(split) for w in split]
        unknown = set(self.annual_quota) - {ch.code for ch in self.channels}
        if unknown:
            raise ValueError(f"annual_quota for pollutants the meter does not measure: {unknown}")
        self.card_id = self.card_id or f"IC-{self.device}"
        self._card = self.card_id if self.card_inserted else None
        self.valve = ValveState(self.valve)
        super().__post_init__()

    def typical(self, code: str) -> float:
        return self.levels.get(code, self._TYPICAL[code])

    def _process(self, now: datetime, hours: float) -> dict[str, float]:
        modes = self.conditions.modes
        load = shift_load(hour_of_day(now), self.shift)
        strength = 0.7 + 0.3 * load
        out = {code: self.typical(code) * strength for code in self.measured}
        out[FLOW] = self.typical(FLOW) * load * self.conditions.flow_factor
        if Mode.RAINING in modes:
            out[FLOW] *= 1.25
            for code in ("w01018", "w21003"):
                out[code] *= 0.85
        if self._illicit(now):
            out[FLOW] += 0.8 * self.typical(FLOW)
            for code in ("w01018", "w21003"):
                out[code] *= _ILLICIT[code]
        return out

    def _outlet_open(self) -> bool:
        return self.valve is ValveState.OPEN

    # The account.

    @property
    def card(self) -> str | None:
        return self._card

    @property
    def period(self) -> str | None:
        return self._period

    @property
    def quota(self) -> dict[str, float]:
        return dict(self._quota)

    @property
    def used(self) -> dict[str, float]:
        return dict(self._used)

    def status(self) -> MeterStatus:
        """The account now, with the events not yet published."""
        return MeterStatus(
            valve=self.valve,
            card_id=self._card,
            period=self._period or "",
            quota={k: round(v, 6) for k, v in self._quota.items()},
            used={k: round(v, 6) for k, v in self._used.items()},
            events=list(self._events),
        )

    def reading(self, now: datetime) -> DeviceReading | None:
        reading = super().reading(now)
        if reading is None:
            return None  # the events wait for the next published reading
        status, self._events = self.status(), []
        return reading.model_copy(update={"meter": status})

    def apply_command(self, cmd: ValveCommand, now: datetime) -> bool:
        """Obey the platform: open or close the valve, recording the command_id as the detail.
        A command already obeyed (same command_id: the relay re-sends after a failure, or a
        second worker app on the same Kafka decided the same) is ignored, so a redelivery
        cannot reopen a valve closed since. False: ignored so."""
        if cmd.command_id in self._obeyed:
            return False
        self._obeyed.append(cmd.command_id)
        del self._obeyed[:-32]  # remember the last few: redeliveries come soon after
        self._roll(now)
        if cmd.command == "close_valve":
            self._settle_open(now)
            self.valve = ValveState.CLOSED
            kind = MeterEventKind.VALVE_CLOSED
        else:
            if self.valve is ValveState.CLOSED:
                self._accounted_until = now  # discharge starts now, not at the last reading
            self.valve = ValveState.OPEN
            kind = MeterEventKind.VALVE_OPENED
        self._event(kind, now, detail=cmd.command_id)
        return True

    def insert_card(self, card_id: str | None, now: datetime) -> None:
        self._roll(now)
        self._card = card_id or self.card_id
        self._event(MeterEventKind.CARD_INSERTED, now, detail=self._card or "")

    def remove_card(self, now: datetime) -> None:
        self._roll(now)
        removed, self._card = self._card, None
        self._event(MeterEventKind.CARD_REMOVED, now, detail=removed or "")

    def recharge(self, amounts: Mapping[str, float], now: datetime) -> None:
        """Emission rights bought and loaded: adds to the current period's quota."""
        unknown = set(amounts) - set(self.annual_quota)
        if unknown or any(a < 0 for a in amounts.values()):
            raise ValueError(
                f"recharge amounts must be >= 0 and for {sorted(self.annual_quota)}, got {amounts}"
            )
        self._roll(now)
        for code, amount in amounts.items():
            self._quota[code] += amount
        self._event(
            MeterEventKind.RECHARGED, now, amounts=dict(amounts), detail="emission rights bought"
        )

    def year_reset(self, now: datetime) -> None:
        """Start the accounting year afresh now (the scenario's shortcut to the 1st of the
        year-start month): the month's share of the permit, nothing used, nothing carried."""
        self._roll(now)
        self._settle_open(now)  # what flowed until now belongs to the old year
        self._start_period(local_time(now).month)
        self._event(MeterEventKind.YEAR_RESET, now, detail="accounting year restarted")

    def set_used_fraction(self, fraction: float, now: datetime) -> None:
        """Set the period's used amounts to ``fraction`` of its quota (a scenario shortcut)."""
        if fraction < 0:
            raise ValueError(f"fraction must be >= 0, got {fraction}")
        self._roll(now)
        self._settle_open(now)
        self._used = {code: q * fraction for code, q in self._quota.items()}

    def _account(self, now: datetime, values: Mapping[str, Measurement]) -> None:
        self._roll(now)
        for code, m in values.items():
            if m.flag in (DataFlag.NORMAL, DataFlag.OVER_RANGE):
                self._valid[code] = m.value
        if self._shut():
            self._accounted_until = now
            return
        self._settle(now, self._valid.get(FLOW, 0.0))

    def _settle_open(self, now: datetime) -> None:
        """Account up to ``now`` between readings, with the last measured values."""
        if self._shut():
            self._accounted_until = now
        else:
            self._settle(now, self._valid.get(FLOW, 0.0))

    def _settle(self, now: datetime, flow: float) -> None:
        if self._accounted_until is not None and Mode.STOPPED not in self.conditions.modes:
            seconds = (now - self._accounted_until).total_seconds()
            concentrations = {c: self._valid.get(c, 0.0) for c in self._quota if c != FLOW}
            for code, amount in appendix_d(flow, seconds, concentrations).items():
                if code in self._used:
                    self._used[code] += amount
        self._accounted_until = now

    def _roll(self, now: datetime) -> None:
        local = local_time(now)
        period = f"{local.year:04d}-{local.month:02d}"
        if period == self._period:
            return
        year = local.year if local.month >= self.year_start_month else local.year - 1
        if self._period is not None and year != self._year:
            self._event(
                MeterEventKind.YEAR_RESET,
                now,
                detail=f"accounting year {year}-{self.year_start_month:02d} begins; no carry-over",
            )
        self._period, self._year = period, year
        self._start_period(local.month)

    def _start_period(self, month: int) -> None:
        assert self.monthly_split is not None
        share = self.monthly_split[month - 1]
        self._quota = {code: q * share for code, q in self.annual_quota.items()}
        self._used = dict.fromkeys(self.annual_quota, 0.0)

    def _event(
        self,
        kind: MeterEventKind,
        now: datetime,
        amounts: Mapping[str, float] | None = None,
        detail: str = "",
    ) -> None:
        self._events.append(
            MeterEvent(kind=kind, at=now, amounts=dict(amounts or {}), detail=detail)
        )


# -- ambient air -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PmEpisode:
    """A winter haze episode: PM2.5 rises to ``intensity`` × its usual level mid-episode, and
    secondary aerosol raises the PM2.5/PM10 ratio."""

    start: datetime
    end: datetime
    intensity: float

    def envelope(self, when: datetime) -> float:
        """0 outside, rising to 1 mid-episode and falling back: a few days' build-up and clear."""
        if not self.start <= when < self.end:
            return 0.0
        return math.sin(math.pi * (when - self.start) / (self.end - self.start))


# Quzhou-like annual means: µg/m³, CO mg/m³. O3's is the daytime scale.
TYPICAL_AIR = {
    "a34004": 28.0,
    "a34002": 48.0,
    "a21026": 7.0,
    "a21004": 24.0,
    "a05024": 60.0,
    "a21005": 0.65,
}
# GB 3095-2012 grade II: the 1-hour limit where there is one, else the 24-hour one.
GB_3095_GRADE_II = {
    "a34004": 75.0,
    "a34002": 150.0,
    "a21026": 500.0,
    "a21004": 200.0,
    "a05024": 200.0,
    "a21005": 10.0,
}


@dataclass(kw_only=True)
class AirStation(BaseMonitor):
    """An ambient air quality station: PM2.5 a34004, PM10 a34002, SO2 a21026, NO2 a21004,
    O3 a05024 (µg/m³), CO a21005 (mg/m³).

    Shapes people know: NO2 (and CO) peak in the morning (about 08:00) and evening (about
    18:30) rush hours and sag at midday; O3 is photochemical, peaking mid-afternoon, higher in
    summer, and titrated by the rush-hour NO2 (so the two move against each other). PM is worse
    in winter and in winter haze episodes (November–February, a few days each, PM2.5 two to
    three times its usual level with a high PM2.5/PM10 ratio); summer is clean. A slow
    "stagnation" random walk (the weather) moves the primary pollutants together. Rain washes
    particles out and clouds cut O3. An illicit night discharge here is a neighbour's
    emissions at night: SO2 and PM rise.
    """

    model: ClassVar[str] = "air_station"
    channels: ClassVar[tuple[Channel, ...]] = (
        Channel("a34004", 1, range=1000.0, noise=0.08, drift=0.04),
        Channel("a34002", 1, range=1000.0, noise=0.08, drift=0.04),
        Channel("a21026", 1, range=1400.0, noise=0.10, drift=0.05),
        Channel("a21004", 1, range=900.0, noise=0.08, drift=0.04),
        Channel("a05024", 1, range=1000.0, noise=0.08, drift=0.04),
        Channel("a21005", 3, range=60.0, noise=0.06, drift=0.04),
    )
    primary: ClassVar[str] = "a34004"
    standard: ClassVar[Mapping[str, float]] = GB_3095_GRADE_II

    levels: Mapping[str, float] = field(default_factory=dict)  # overrides TYPICAL_AIR

    _stagnation: float = field(init=False, default=0.0, repr=False, compare=False)
    _episodes: dict[int, tuple[PmEpisode, ...]] = field(
        init=False, default_factory=dict, repr=False, compare=False
    )

    def typical(self, code: str) -> float:
        return self.levels.get(code, TYPICAL_AIR[code])

    def pm_episodes(self, season: int) -> tuple[PmEpisode, ...]:
        """The haze episodes of the winter starting in November of ``season``: a pure function
        of device, seed and season, whatever the readings asked before."""
        if season not in self._episodes:
            rng = random.Random(f"{self.model}:{self.device}:{self.seed}:pm:{season}")
            begin = datetime(season, 11, 1, tzinfo=CHINA)
            end = datetime(season + 1, 3, 1, tzinfo=CHINA)
            episodes = []
            t = begin + timedelta(hours=rng.randrange(24, 24 * 8))
            while True:
                length = timedelta(hours=rng.randrange(48, 24 * 5))
                if t + length > end:
                    break
                episodes.append(PmEpisode(t, t + length, round(rng.uniform(2.0, 3.2), 2)))
                t += length + timedelta(hours=rng.randrange(24 * 5, 24 * 14))
            self._episodes[season] = tuple(episodes)
        return self._episodes[season]

    def pm_episode(self, now: datetime) -> PmEpisode | None:
        local = local_time(now)
        if local.month not in (11, 12, 1, 2):
            return None
        season = local.year if local.month >= 11 else local.year - 1
        return next((e for e in self.pm_episodes(season) if e.start <= now < e.end), None)

    def _process(self, now: datetime, hours: float) -> dict[str, float]:
        local, modes = local_time(now), self.conditions.modes
        hour = hour_of_day(now)
        day = local.timetuple().tm_yday
        winter = math.cos(2 * math.pi * (day - 15) / 365)  # +1 mid-January, -1 mid-July
        sun = math.cos(2 * math.pi * (day - 196) / 365)  # +1 mid-July
        # The weather: a bounded random walk in log space, about a day's memory.
        step = _clipped_gauss(self._rng) * 0.12 * math.sqrt(hours)
        self._stagnation = min(0.4, max(-0.4, self._stagnation + step))
        met = math.exp(self._stagnation)

        episode = self.pm_episode(now)
        env = episode.envelope(now) if episode else 0.0
        haze = 1 + (episode.intensity - 1) * env if episode else 1.0

        traffic = 0.7 + 0.6 * bump(hour, 8, 1.1) + 0.5 * bump(hour, 18.5, 1.4)
        traffic += 0.2 * bump(hour, 1, 3)  # shallow night boundary layer keeps NO2 up
        no2_level = self.typical("a21004") * (1 + 0.25 * winter) * met
        no2 = no2_level * traffic
        pm25 = self.typical("a34004") * (1 + 0.45 * winter) * met * haze
        pm25 *= 1 + 0.15 * math.cos(2 * math.pi * (hour - 8) / 24)
        usual_ratio = self.typical("a34004") / self.typical("a34002") * (1 + 0.05 * winter)
        ratio = min(0.9, usual_ratio + (0.82 - usual_ratio) * env)
        so2 = self.typical("a21026") * (1 + 0.3 * winter) * met * (0.85 + 0.4 * bump(hour, 11, 2.5))
        co = self.typical("a21005") * (1 + 0.3 * winter) * met * (0.35 + 0.5 * traffic)
        co *= 1 + 0.3 * (haze - 1)
        o3_level = self.typical("a05024")
        photo = o3_level * (1.25 + 0.58 * sun) * bump(hour, 14.5, 2.3)
        if Mode.RAINING in modes:
            photo *= 0.4  # clouds
        o3 = 0.5 * o3_level + photo - 0.5 * no2_level * (traffic - 0.7)  # NO + O3 titration
        if Mode.RAINING in modes:
            pm25, no2, so2, co = pm25 * 0.45, no2 * 0.85, so2 * 0.7, co * 0.9
        if self._illicit(now):
            pm25, so2, co = pm25 * 1.8, so2 * 3.5, co * 1.3
        return {
            "a34004": pm25,
            "a34002": pm25 / ratio,
            "a21026": so2,
            "a21004": no2,
            "a05024": max(2.0, o3),
            "a21005": co,
        }


# -- flue gas ----------------------------------------------------------------------------------

CO = "a21005"
NO2_SHARE = 0.05  # of NOx (as NO2) leaving a coal boiler, most is NO
# Ultra-low emission (超低排放) for coal-fired power and heat, mg/m³ dry at standard state and
# 6 % O2 (环发〔2015〕164号): what the heat plant's permit sets.
ULTRA_LOW = {PM: 10.0, SO2: 35.0, NOX: 50.0}
# Where a limit is known, a concentration runs at this share of it at the reference oxygen: a
# little under, so that noise and drift (3σ at most) never cross it by chance.
UNDER_LIMIT = {PM: 0.6, SO2: 0.7, NOX: 0.75}
# A coal heat plant's unit at full load, after wet desulfurisation: flue gas m³/s (wet, at the
# stack's state), °C, kPa static, % moisture; concentrations mg/m³ dry, standard state, at the
# reference oxygen; O2 % the middle of its band.
TYPICAL_STACK = {
    GAS_FLOW: 80.0,
    VELOCITY: 8.3,
    GAS_TEMP: 52.0,
    GAS_PRESSURE: 0.4,
    MOISTURE: 12.5,
    O2: 6.0,
    PM: 6.0,
    SO2: 24.5,
    NOX: 37.5,
    NO: 37.5 * (1 - NO2_SHARE) / NO_TO_NO2,
    NO2: 37.5 * NO2_SHARE,
    CO: 20.0,
}
CONCENTRATIONS = (PM, SO2, NOX, NO, NO2, CO)
# A cold start-up: O2 whose sensor noise (3σ 3 %, drift 1 %) keeps it over HIGH_O2, and the
# share of the full-load flow the burners move.
STARTUP_O2 = 20.0
STARTUP_FLOW = 0.3


@dataclass(kw_only=True)
class FlueGasMonitor(BaseMonitor):
    """A stack's flue-gas CEMS (烟气在线监测, HJ 75/76-2017): PM a34013, SO2 a21026, NOx a21002
    (as NO2), NO a21003, NO2 a21004, CO a21005 (mg/m³, dry, at standard state), O2 a19001 (%),
    and the gas itself: flow a00000 (m³/s, wet, as measured), velocity a01011 (m/s),
    temperature a01012 (°C), static pressure a01013 (kPa), moisture a01014 (%).

    A coal-fired heat and power unit, burning all day: load follows the day (lowest before
    dawn, peaks mid-morning and early evening) and the season (heating in winter), between
    about half and full load. Excess air rises as load falls, so O2 moves across
    ``o2_band`` (low at full load, high at low load). Flow, velocity, temperature, pressure and
    moisture follow the load, as after a wet desulfuriser. The concentrations are held a
    little under their limits at the reference oxygen (``UNDER_LIMIT`` of each), so the
    measured (uncorrected) value is that × (21 − O2)/(21 − ref): higher when O2 is low.

    Each concentration carries ``zs``, the CEMS's own value corrected to ``o2_reference``
    from the values it reports, with the platform's formula (``streams/judging/flue_gas.py``),
    none at O2 ≥ 19 %. An exceedance holds the corrected value at factor × limit (NOx takes NO
    and NO2 with it). Stopped: no flow, the stack full of air (O2 near 21 %), cooling.

    What a scenario does to a stack besides: a cold start-up (``Mode.STARTUP``, 启炉: O2
    about 20 %, 30 % of the flow, cool, low concentrations, no zs, flags N); air let into the
    flue (``Conditions.dilute_o2``, 稀释: lower measured values, more flow, the same corrected
    values and amounts); a wrong reference (``Conditions.o2_reference``: the zs computed with
    it, the measured values unchanged).
    """

    model: ClassVar[str] = "flue_gas_monitor"
    channels: ClassVar[tuple[Channel, ...]] = (
        Channel(PM, 2, range=100.0, noise=0.08, drift=0.05),
        Channel(SO2, 1, range=200.0, noise=0.06, drift=0.04),
        Channel(NOX, 1, range=300.0, noise=0.05, drift=0.04),
        Channel(NO, 1, range=200.0, noise=0.05, drift=0.04),
        Channel(NO2, 1, range=50.0, noise=0.08, drift=0.05),
        Channel(CO, 1, range=500.0, noise=0.06, drift=0.04),
        Channel(O2, 2, range=25.0, noise=0.01, drift=0.01),
        Channel(GAS_FLOW, 2, range=300.0, noise=0.03, drift=0.02, analyser=False),
        Channel(VELOCITY, 2, range=30.0, noise=0.03, drift=0.02, analyser=False),
        Channel(GAS_TEMP, 1, range=200.0, noise=0.01, drift=0.01, analyser=False),
        Channel(GAS_PRESSURE, 3, range=5.0, noise=0.05, drift=0.05, analyser=False),
        Channel(MOISTURE, 2, range=40.0, noise=0.03, drift=0.03, analyser=False),
    )
    primary: ClassVar[str] = NOX
    standard: ClassVar[Mapping[str, float]] = ULTRA_LOW
    flow_code: ClassVar[str | None] = GAS_FLOW

    o2_reference: float = 6.0  # % O2 the limits hold at: coal-fired boilers, GB 13223-2011
    o2_band: tuple[float, float] = (4.0, 8.0)  # O2 % at full load, at the lowest load
    duct_area: float = 9.6  # m² at the measuring point (a 3.5 m flue): velocity = flow / area
    levels: Mapping[str, float] = field(default_factory=dict)  # overrides the typical levels

    def __post_init__(self) -> None:
        low, high = self.o2_band
        if not 0 <= low < high < HIGH_O2 or not 0 <= self.o2_reference < AIR_O2:
            raise ValueError(
                f"o2_band must be 0 <= low < high < {HIGH_O2:g} and o2_reference 0..21, got "
                f"{self.o2_band} and {self.o2_reference}"
            )
        super().__post_init__()

    def typical(self, code: str) -> float:
        if code in self.levels:
            return self.levels[code]
        if code == O2:
            return sum(self.o2_band) / 2
        if code in (NO, NO2):
            nox = self.typical(NOX)
            return nox * (1 - NO2_SHARE) / NO_TO_NO2 if code == NO else nox * NO2_SHARE
        limit = self.limit(code)
        if code in UNDER_LIMIT and limit is not None:
            return UNDER_LIMIT[code] * limit
        return TYPICAL_STACK[code]

    def load(self, now: datetime) -> float:
        """The unit's load, 0.5..1: the day's demand and the heating season."""
        hour = hour_of_day(now)
        winter = math.cos(2 * math.pi * (local_time(now).timetuple().tm_yday - 15) / 365)
        day = 0.6 * bump(hour, 10, 3.0) + 0.5 * bump(hour, 19, 2.5) - 0.6 * bump(hour, 4, 3.0)
        return min(1.0, max(0.5, 0.7 + 0.06 * winter + 0.35 * day))

    def _process(self, now: datetime, hours: float) -> dict[str, float]:
        if Mode.STOPPED in self.conditions.modes:
            return {
                **{code: 0.02 * self.typical(code) for code in CONCENTRATIONS},
                O2: 20.6,  # air, a little of it burnt in the banked fire
                GAS_FLOW: 0.0,
                VELOCITY: 0.0,
                GAS_TEMP: 30.0,
                GAS_PRESSURE: 0.01,
                MOISTURE: 2.0,
            }
        if Mode.STARTUP in self.conditions.modes:
            # Oil burners warming a boiler full of air: O2 near air's (>= 19 % with the
            # sensor's noise, so that the platform finds high_oxygen), a reported flow,
            # concentrations low but not so low that the load's return is a 陡升 jump.
            flow = STARTUP_FLOW * self.typical(GAS_FLOW) * self.conditions.flow_factor
            return {
                **{code: 0.3 * self.typical(code) for code in CONCENTRATIONS},
                O2: STARTUP_O2,
                GAS_FLOW: flow,
                VELOCITY: flow / self.duct_area,
                GAS_TEMP: 35.0,
                GAS_PRESSURE: self.typical(GAS_PRESSURE) * STARTUP_FLOW**2,
                MOISTURE: 5.0,
            }
        load = self.load(now)
        low, high = self.o2_band
        margin = 0.1 * (high - low)  # so that the sensor's noise keeps O2 inside the band
        o2 = high - margin - (high - low - 2 * margin) * (load - 0.5) / 0.5
        flow = self.typical(GAS_FLOW) * load * self.conditions.flow_factor
        # The concentrations at the reference oxygen, a little higher at full load, measured
        # at the O2 there is.
        to_measured = (AIR_O2 - o2) / (AIR_O2 - self.o2_reference)
        strength = 0.9 + 0.1 * load
        out = {code: self.typical(code) * strength * to_measured for code in CONCENTRATIONS}
        if self._illicit(now):  # the desulfuriser and denitrifier bypassed at night
            for code, factor in ((SO2, 3.0), (NOX, 2.0), (NO, 2.0), (NO2, 2.0), (PM, 1.5)):
                out[code] *= factor
        out |= {
            O2: o2,
            GAS_FLOW: flow,
            VELOCITY: flow / self.duct_area,
            GAS_TEMP: self.typical(GAS_TEMP) - 4.0 * (1 - load),
            GAS_PRESSURE: self.typical(GAS_PRESSURE) * load**2,
            MOISTURE: self.typical(MOISTURE) - 1.5 * (1 - load),
        }
        return out

    def _sense(self, true: Mapping[str, float]) -> dict[str, float]:
        # The CEMS does not measure NOx: it counts the NO and NO2 it measured as NO2.
        out = super()._sense(true)
        out[NOX] = nox_as_no2(out[NO], out[NO2])
        return out

    def _exceeded(self, true: dict[str, float]) -> None:
        """A concentration is held at factor × its limit corrected to the reference oxygen,
        so the platform's correction finds it so; NOx takes NO and NO2 with it. Then air let
        in dilutes what the unit emits, the exceedance included (:meth:`_diluted`)."""
        exceed = self.conditions.exceed
        for code, factor in exceed.items():
            if code not in true:
                continue
            if code in CONCENTRATIONS:
                before = true[code]
                at_o2 = (AIR_O2 - true[O2]) / (AIR_O2 - self.o2_reference)
                true[code] = factor * self._reference(code) * at_o2
                if code == NOX and before > 0:
                    for part in (NO, NO2):
                        if part not in exceed:
                            true[part] *= true[NOX] / before
            else:
                true[code] = factor * self._reference(code)
        self._diluted(true)

    def _diluted(self, true: dict[str, float]) -> None:
        """Air let into the flue: O2 held at ``dilute_o2``, the concentrations × (21 − o2) /
        (21 − the O2 before) as the same emission is spread over more gas, the flow and
        velocity ÷ that. So the corrected values are unchanged, and the platform's amounts
        (C × standard dry flow) too, moisture being kept. Air only raises O2: a target at or
        under the O2 there is changes nothing."""
        o2 = self.conditions.dilute_o2
        if o2 is None or o2 <= true[O2]:
            return
        share = (AIR_O2 - o2) / (AIR_O2 - true[O2])  # of the diluted gas, the flue gas's
        for code in CONCENTRATIONS:
            true[code] *= share
        true[GAS_FLOW] /= share
        true[VELOCITY] /= share
        true[O2] = o2

    def _corrected(self, values: Mapping[str, float]) -> dict[str, float]:
        # A scenario's wrong reference replaces the site's in the CEMS's own arithmetic only.
        reference = self.conditions.o2_reference
        if reference is None:
            reference = self.o2_reference
        out = {}
        for code in CONCENTRATIONS:
            zs = corrected(values[code], values[O2], reference)
            if zs is not None:
                out[code] = round(zs, self._channel(code).decimals) + 0.0
        return out


MODELS: dict[str, type[BaseMonitor]] = {
    m.model: m for m in (OutfallMonitor, AirStation, DischargeMeter, FlueGasMonitor)
}
