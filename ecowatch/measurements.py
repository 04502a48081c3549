"""InfluxDB's measurements, each name once: the writers, the Flux queries (the worker's, the
console's, the bench's and the drill's) and the Grafana generator use these.

Their tags and fields: docs/topics-and-schemas.md, "In InfluxDB".
"""

from __future__ import annotations

READING = "reading"  # one point per reading and pollutant: value, flag
METER = "meter"  # a discharge meter's account, as the platform keeps it
AQI = "aqi"  # an air station's real-time AQI (HJ 633) and its IAQIs
AGGREGATE = "aggregate"  # minute, hour and day means of a device's pollutant
FINDING = "finding"  # what a rule found, active or ended
CASE_EVENT = "case_event"  # every change of a case (the weekly settlement counts these)
DELIVERY = "delivery"  # each attempt to reach a person, and how it went
VALIDITY = "validity"  # a device's day of one pollutant: expected, received, valid, rates
MARK = "mark"  # every change of an enterprise's mark (标记): its trail

ALL = (READING, METER, AQI, AGGREGATE, FINDING, CASE_EVENT, DELIVERY, VALIDITY, MARK)
