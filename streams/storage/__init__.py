"""InfluxDB: the writer, the points of every measurement, and every Flux query the console,
the bench, the drill and the Grafana generator read with.
"""
