"""MQTT: the bridge that takes readings and device status from Mosquitto into Kafka, and the
command relay that sends valve orders back to the meters.
"""
