"""The worker's half of the platform: judging (pure), the Faust worker around it, storage in
InfluxDB and the case API. Read judging first; the worker is its edges."""
