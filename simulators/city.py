"""A city's worth of simulated devices, chosen from the catalogue: what `ecowatch simulate` and
`ecowatch demo` run."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from ecowatch.clock import AcceleratedClock, Clock, SystemClock
from ecowatch.config.catalogue import Catalogue, DeviceEntry, DeviceModel, SiteKind
from ecowatch.config.settings import Settings, load_device_credentials
from ecowatch.errors import ConfigError
from ecowatch.ingest import hj212
from ecowatch.simulators.fleet import (
    Fleet,
    FleetStats,
    Hj212Link,
    Link,
    MqttLink,
    SimulatedDevice,
    model_for,
)
from ecowatch.simulators.hj212_link import Hj212Dialect
from ecowatch.simulators.scenarios import load_scenario

# HJ 212 system codes (ST) by device model: 32 water pollution source, 22 air quality,
# 31 air pollution source (a stack).
_ST = {
    DeviceModel.OUTFALL_MONITOR: "32",
    DeviceModel.AIR_STATION: "22",
    DeviceModel.FLUE_GAS_MONITOR: "31",
}

Hj212Versions = Literal["2005", "2017", "2025", "mixed"]
# "mixed": the fleet's devices take these in turn, by their index, as a real city's mix of
# old and new loggers reaches one platform.
MIXED_VERSIONS = (hj212.Version.V2005, hj212.Version.V2017, hj212.Version.V2025)


@dataclass(frozen=True)
class FleetPlan:
    outfalls: int = 4
    air_stations: int = 1
    meters: int = 1
    stacks: int = 0  # flue-gas monitors (CEMS), the catalogue's first N
    interval: float = 60.0  # simulated seconds between a device's readings
    speed: float = 1.0  # simulated seconds per real second
    start: datetime | None = None  # simulated start; default: see simulated_start()
    duration: float = 0.0  # real seconds; 0 runs until stopped
    seed: int = 1
    transport: Literal["mqtt", "hj212"] = "mqtt"
    hj212_version: Hj212Versions = "2017"  # which HJ 212 the monitors speak (see MIXED_VERSIONS)
    sm4: bool = True  # a 2025 monitor encrypts its data CP with its own SM4 key, if it has one
    garble_every: int = 0  # one monitor on a flaky link breaks every Nth message
    scenario: str | None = None


# How far back a fast fleet may start: inside the window the platform takes resends from
# (ingest.contract.TimeWindow, 7 days), with a day to spare.
FURTHEST_START = timedelta(days=6)


def simulated_start(plan: FleetPlan, now: datetime) -> datetime:
    """Where simulated time begins. The platform refuses readings from the future, so a fleet
    faster than real time starts in the past: a timed run ends at about the real now (or starts
    six days back, if it is longer than that); an endless one starts six days back, and runs
    ahead of the clock after 6 days / (speed - 1)."""
    if plan.start is not None:
        return plan.start
    if plan.speed <= 1:
        return now
    if not plan.duration:
        return now - FURTHEST_START
    return now - min(timedelta(seconds=plan.duration * (plan.speed - 1)), FURTHEST_START)


def choose_devices(
    catalogue: Catalogue, plan: FleetPlan, extra: tuple[str, ...] = ()
) -> list[DeviceEntry]:
    """The first N outfall monitors, M air stations, K meters and S stacks' CEMS of the
    catalogue, plus any device a scenario names."""
    by_model: dict[DeviceModel, list[DeviceEntry]] = {m: [] for m in DeviceModel}
    for entry in catalogue.devices.values():
        by_model[entry.device.model].append(entry)
    wanted = {
        DeviceModel.OUTFALL_MONITOR: plan.outfalls,
        DeviceModel.AIR_STATION: plan.air_stations,
        DeviceModel.DISCHARGE_METER: plan.meters,
        DeviceModel.FLUE_GAS_MONITOR: plan.stacks,
    }
    chosen: list[DeviceEntry] = []
    for model, count in wanted.items():
        if count > len(by_model[model]):
            raise ConfigError(
                f"asked for {count} {model.value} devices, the catalogue has {len(by_model[model])}"
            )
        chosen += by_model[model][:count]
    have = {e.device.id for e in chosen}
    for device in extra:
        entry = catalogue.device(device)
        if entry is None:
            raise ConfigError(f"the scenario names device '{device}', not in the catalogue")
        if device not in have:
            chosen.append(entry)
            have.add(device)
    return chosen


def hj212_version(plan: FleetPlan, index: int) -> hj212.Version:
    """The HJ 212 version the fleet's ``index``-th device speaks."""
    if plan.hj212_version == "mixed":
        return MIXED_VERSIONS[index % len(MIXED_VERSIONS)]
    return hj212.Version(plan.hj212_version)


def build_fleet(
    settings: Settings, catalogue: Catalogue, plan: FleetPlan, clock: Clock | None = None
) -> Fleet:
    scenario = load_scenario(plan.scenario) if plan.scenario else None
    entries = choose_devices(catalogue, plan, scenario.devices if scenario else ())
    if clock is None:
        now = SystemClock().now()
        clock = (
            AcceleratedClock(simulated_start(plan, now), plan.speed)
            if plan.speed != 1
            else SystemClock()
        )
    needs_mqtt = plan.transport == "mqtt" or any(
        e.device.model is DeviceModel.DISCHARGE_METER for e in entries
    )
    credentials = load_device_credentials(settings.device_credentials_file) if needs_mqtt else {}
    hj212_passwords = hj212_keys = None
    if plan.transport == "hj212":
        from ecowatch.ingest.hj212.server import DeviceKeys, DevicePasswords

        hj212_passwords = DevicePasswords.load(settings.hj212_passwords_file)
        if plan.sm4 and plan.hj212_version in ("2025", "mixed"):
            hj212_keys = DeviceKeys.load(settings.hj212_sm4_keys_file)  # no file: no keys
    stats = FleetStats()
    fleet = Fleet([], clock, plan.interval, stats, speed=plan.speed)
    for i, entry in enumerate(entries):
        model = model_for(entry, plan.seed + i, catalogue)
        device = entry.device.id
        link: Link
        # A meter's account and valve have no place in HJ 212: meters always speak MQTT.
        if plan.transport == "hj212" and entry.device.model is not DeviceModel.DISCHARGE_METER:
            st = _ST.get(entry.device.model, "32" if entry.site.kind is SiteKind.OUTFALL else "22")
            pw = hj212_passwords.get(device) if hj212_passwords is not None else None
            if pw is None:
                raise ConfigError(
                    f"{settings.hj212_passwords_file}: no HJ 212 PW for device '{device}'"
                )
            version = hj212_version(plan, i)
            # Only a 2025 device encrypts, with the key the platform keeps for it (the same
            # file); one without a key sends plain text, which the platform reads as it is.
            key = hj212_keys.get(device) if hj212_keys is not None else None
            dialect = Hj212Dialect(version, key if version is hj212.Version.V2025 else None)
            link = Hj212Link(
                device,
                st,
                settings.hj212_host,
                settings.hj212_port,
                stats,
                password=pw,
                dialect=dialect,
            )
        else:
            if device not in credentials:
                raise ConfigError(
                    f"{settings.device_credentials_file}: no password for device '{device}'"
                )
            is_meter = entry.device.model is DeviceModel.DISCHARGE_METER
            link = MqttLink(
                device,
                entry.site.id,
                credentials[device],
                settings.mqtt_host,
                settings.mqtt_port,
                stats,
                on_command=fleet.command_handler(device) if is_meter else None,
            )
        garble = plan.garble_every if i == 0 else 0
        fleet.add(SimulatedDevice(model, link, stats, garble_every=garble))
    if scenario is not None:
        fleet.scenario = scenario.run(fleet.models, clock, start=clock.now())
    return fleet
