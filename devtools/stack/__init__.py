"""Installs, starts and watches the real local services: Mosquitto, Kafka, InfluxDB."""
