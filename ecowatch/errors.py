"""Errors that reach a person: each says what is wrong and what to do about it."""

from __future__ import annotations


class EcowatchError(Exception):
    """An error with a message meant for the operator, shown without a traceback."""


class ConfigError(EcowatchError):
    """A setting or catalogue entry is wrong: names the file, the field and what was expected."""


class ServiceDown(EcowatchError):
    """A service the command needs does not answer."""

    def __init__(self, service: str, address: str, detail: str = "") -> None:
        self.service = service
        self.address = address
        hint = (
            "start the local stack with `ecowatch stack up` (or `make demo`), or point the "
            "matching ECOWATCH_* variable at a running one"
        )
        super().__init__(
            f"{service} does not answer at {address}"
            + (f" ({detail})" if detail else "")
            + f": {hint}"
        )


class StageStalled(EcowatchError):
    """A stage held work and got none of it out for too long to recover by itself: it exits
    with ``ecowatch.stall.STALLED_EXIT_CODE`` so that its supervisor starts it again."""
