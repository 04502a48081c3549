"""Delivery of notifications to people (apprise)."""
