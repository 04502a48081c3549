"""Simulated monitors: pure device models and the fleet that puts them on MQTT."""
