"""The Faust worker: the app, its one agent (enforcement) that owns the I/O around the pure
judging, and the offsets it commits.
"""
