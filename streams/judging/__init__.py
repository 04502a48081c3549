"""Judging, pure: the rules, the aggregates, the meter's account, AQI, cases, the engine that
runs them, the weekly report, replay and the reading ledger. No I/O library is imported here
(an import-linter contract and tests/component/test_layers.py keep it so).
"""
