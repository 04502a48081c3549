"""The tools that build, drive and measure a stack: the local services (``stack``), the
demo, the fault drill and soak, the benchmarks, and the processes they start and keep.

No runtime layer imports them (import-linter, ``make lint``); the commands do.
"""
