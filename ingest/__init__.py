"""Protocol edges: the MQTT bridge (and, later, HJ 212). Validate, normalise, produce to Kafka."""
