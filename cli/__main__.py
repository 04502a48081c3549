"""``python -m ecowatch.cli``: how the commands start their children (the worker, the bridge)."""

from ecowatch.cli import main

main()
