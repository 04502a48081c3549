"""Every InfluxDB point the worker writes, as line protocol: readings, AQI, meter accounts,
windows, findings and case events. Pure, so the layout is unit-tested.

Measurement ``reading``, one point per pollutant of a reading:

    reading,site=S-OUT-001,device=33080200000001,model=outfall_monitor,pollutant=w01018 \\
        value=42.1,flag="N" <ts in ms>

A CEMS's own corrected value (HJ 212 ZsRtd) is the field ``zs`` beside the value, on record
for the mismatch the platform checks it for.

Escaping and formatting are ``ecowatch.lineprotocol``'s; the tags here are identifiers that the
reading schema restricts to ``[A-Za-z0-9_.-]``, so their escaping is a cached no-op.
"""

from __future__ import annotations

from collections.abc import Iterable

from ecowatch.alerts.wording import case_event_text, finding_text, mark_text
from ecowatch.lineprotocol import (
    NONE_TAG,
    bool_field,
    epoch_ms,
    float_field,
    int_field,
    line,
    string_field,
    tag_value,
    tags,
)
from ecowatch.measurements import (
    AGGREGATE,
    AQI,
    CASE_EVENT,
    FINDING,
    MARK,
    METER,
    READING,
    VALIDITY,
)
from ecowatch.schema import CaseEvent, DataFlag, Finding, MarkEvent, MeterStatus, Reading
from ecowatch.streams.judging.aqi import POLLUTANTS, AqiResult, realtime_aqi
from ecowatch.streams.judging.rules import ClosedWindow

_FLAGS = {flag: string_field(flag.value) for flag in DataFlag}


def _site_device(name: str, reading: Reading) -> str:
    return name + tags((("site", reading.site), ("device", reading.device)))


def reading_lines(reading: Reading) -> list[str]:
    ms = epoch_ms(reading.ts)
    head = f"{_site_device(READING, reading)},model={tag_value(reading.model)},pollutant="
    # A resent reading (HJ 212-2025 RF=1) says so in a field of its own: late data, on record.
    late = ",resent=true" if reading.resent else ""
    return [
        f"{head}{tag_value(code)} value={float_field(m.value)},flag={_FLAGS[m.flag]}"
        f"{'' if m.zs is None else f',zs={float_field(m.zs)}'}{late} {ms}"
        for code, m in reading.values.items()
    ]


def batch_lines(readings: Iterable[Reading]) -> str:
    return "\n".join(line for r in readings for line in reading_lines(r))


def store_lines(readings: list[Reading], aqi_standard: str) -> tuple[str, int, int]:
    """Everything a batch of readings puts in InfluxDB: their points, the real-time AQI of each
    air-station reading and each discharge meter's account. Returns (line protocol, reading
    points, derived points)."""
    lines = [line for r in readings for line in reading_lines(r)]
    reading_points = len(lines)
    for r in readings:
        if r.model == "air_station" and (result := realtime_aqi(r, aqi_standard)) is not None:
            lines.append(aqi_line(r, result))
        if r.meter is not None:
            lines.append(meter_line(r))
    return "\n".join(lines), reading_points, len(lines) - reading_points


def meter_line(reading: Reading) -> str:
    """``meter,site=…,device=… valve="open",card="…",period="…",reported_quota_<code>=…,
    reported_used_<code>=…``: a card-swipe meter's account as the meter reports it, at each
    reading (w00000 in m³, pollutants in kg). The platform's own account goes on the same point
    (:func:`account_line`)."""
    m = reading.meter
    assert m is not None
    fields = [f"valve={string_field(m.valve.value)}", f"period={string_field(m.period)}"]
    if m.card_id is not None:
        fields.append(f"card={string_field(m.card_id)}")
    fields += [f"reported_quota_{code}={float_field(v)}" for code, v in m.quota.items()]
    fields += [f"reported_used_{code}={float_field(v)}" for code, v in m.used.items()]
    return f"{_site_device(METER, reading)} {','.join(fields)} {epoch_ms(reading.ts)}"


def account_line(reading: Reading, account: MeterStatus) -> str:
    """``meter,site=…,device=… quota_<code>=…,used_<code>=…``: the meter's account as the
    platform keeps it (the permit's quota, the use it judges), beside what the meter reported."""
    fields = [f"quota_{code}={float_field(v)}" for code, v in account.quota.items()]
    fields += [f"used_{code}={float_field(v)}" for code, v in account.used.items()]
    return f"{_site_device(METER, reading)} {','.join(fields)} {epoch_ms(reading.ts)}"


def aqi_line(reading: Reading, result: AqiResult) -> str:
    """``aqi,site=…,device=…,period=1h,standard=… aqi=…i,category="…",primary="…",
    iaqi_<code>=…i <ts>``: one point per air-station reading."""
    by_name = {p.name: p.code for p in POLLUTANTS}
    iaqis = ",".join(
        f"iaqi_{by_name[name]}={int_field(value)}" for name, value in result.iaqi.items()
    )
    primary = string_field("/".join(result.primary))
    edition = result.standard.rsplit("-", 1)[-1]
    return (
        f"{_site_device(AQI, reading)}"
        f"{tags((('period', result.period.value), ('standard', edition)))} "
        f"aqi={int_field(result.aqi)},category={string_field(result.category.value)},"
        f"primary={primary},{iaqis} {epoch_ms(reading.ts)}"
    )


def finding_line(f: Finding) -> str:
    fields = [("active", bool_field(f.active))]
    if f.value is not None:
        fields.append(("value", float_field(f.value)))
    if f.late:
        fields.append(("late", bool_field(True)))
    # What an officer reads, in Chinese: Grafana's tables show it as it is.
    fields.append(("detail", string_field(finding_text(f))))
    tag_pairs = (
        ("site", f.site),
        ("rule", f.rule.value),
        ("pollutant", f.pollutant or NONE_TAG),
        ("severity", f.severity.value),
    )
    return line(FINDING, tag_pairs, fields, epoch_ms(f.at))


def window_line(site: str, closed: ClosedWindow) -> str:
    """``aggregate,site,device,pollutant,period=minute|hour|day valid,coverage_s[,mean,volume_m3,
    mass_kg]`` at the window's start: the means beside the raw points. A stack's
    concentrations add ``corrected`` (折算, the value judged), ``o2`` (the window's mean),
    ``o2_reference`` and ``emission_kg`` (from the measured mean and the standard dry flow; a
    day's is its hours' sum); its standard dry flow is the series ``pollutant=qsn`` (m³/h)."""
    w = closed.window
    fields = [
        ("valid", bool_field(w.valid)),
        ("coverage_s", float_field(w.coverage.total_seconds())),
    ]
    quantities = [("mean", w.mean), ("volume_m3", w.volume_m3), ("mass_kg", w.mass_kg)]
    if (stack := closed.stack) is not None:
        quantities += [
            ("corrected", stack.corrected),
            ("o2", stack.o2),
            ("o2_reference", stack.o2_reference),
            ("emission_kg", stack.emission_kg),
        ]
    fields += [(name, float_field(v)) for name, v in quantities if v is not None]
    tag_pairs = (
        ("site", site),
        ("device", closed.device),
        ("pollutant", closed.pollutant),
        ("period", w.period.value),
    )
    return line(AGGREGATE, tag_pairs, fields, epoch_ms(w.start))


def validity_line(site: str, closed: ClosedWindow) -> str:
    """``validity,site,device,pollutant,period=day expected,received,valid[,transmission_rate,
    validity_rate,transmission_validity_rate]`` at the day's start: what a device owed of a
    pollutant that China-time day and what came of it (a rate is absent when nothing was
    owed, or nothing received)."""
    v = closed.validity
    assert v is not None
    fields = [
        ("expected", int_field(v.expected)),
        ("received", int_field(v.received)),
        ("valid", int_field(v.valid)),
    ]
    fields += [(name, float_field(rate)) for name, rate in v.rates().items() if rate is not None]
    tag_pairs = (
        ("site", site),
        ("device", closed.device),
        ("pollutant", closed.pollutant),
        ("period", closed.window.period.value),
    )
    return line(VALIDITY, tag_pairs, fields, epoch_ms(closed.window.start))


def closed_lines(site: str, windows: Iterable[ClosedWindow]) -> list[str]:
    """Every point the windows a reading closed put in InfluxDB: their means, and a day's
    validity."""
    out = []
    for closed in windows:
        out.append(window_line(site, closed))
        if closed.validity is not None:
            out.append(validity_line(site, closed))
    return out


def mark_line(e: MarkEvent) -> str:
    """``mark,site,mark_id,kind,type,status,source device,start,end,actor,proofs,proof_hashes,
    detail``
    at the change's time: a mark's trail (declared, proof added, accepted, rejected), each
    proof by its SHA-256, the detail in Chinese. The mark's id is a tag, so two marks changed
    at one time are two points."""
    m = e.mark
    tag_pairs = (
        ("site", m.site),
        ("mark_id", m.id),
        ("kind", e.kind.value),
        ("type", m.type.value),
        ("status", m.status.value),
        ("source", m.source.value),
    )
    fields = (
        ("device", string_field(m.device or "")),
        ("start", string_field(m.start.isoformat())),
        ("end", string_field(m.end.isoformat())),
        ("actor", string_field(e.actor)),
        ("proofs", int_field(len(m.proofs))),
        ("proof_hashes", string_field(",".join(p.sha256 for p in m.proofs))),
        ("detail", string_field(mark_text(m))),
    )
    return line(MARK, tag_pairs, fields, epoch_ms(e.at))


def case_event_line(e: CaseEvent) -> str:
    """``case_event,site,kind,status,case_id case,actor,detail`` at the event's time, the
    detail in Chinese. The case id is a tag too: two cases of a site stepped on one tick are
    two points, not one that InfluxDB overwrites with the other (the ``case`` field stays, for
    Grafana's queries). A reassigned case's events (改派) carry its grid as the tag ``grid``:
    the weekly settlement counts them there."""
    tag_pairs = (
        ("site", e.site),
        ("kind", e.kind),
        ("status", e.status.value),
        ("case_id", e.case_id),
    ) + ((("grid", e.grid),) if e.grid else ())
    fields = (
        ("case", string_field(e.case_id)),
        ("actor", string_field(e.actor)),
        ("detail", string_field(case_event_text(e))),
    )
    return line(CASE_EVENT, tag_pairs, fields, epoch_ms(e.at))
