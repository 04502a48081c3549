"""What a rule says: a :class:`Finding` (the wire type, ``ecowatch.findings``) or a
:class:`ValveOrder` for a discharge meter. Every rule returns a list of them."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from ecowatch.schema import Finding


class Valve(StrEnum):
    """Where the platform sends a meter's valve. The value is what the site's state keeps
    (``DeviceTrack.valve_decision``), so a changelog written before this type reads back."""

    CLOSE = "close"
    OPEN = "open"

    @property
    def command(self) -> Literal["close_valve", "open_valve"]:
        """The device command's name (:class:`ecowatch.schema.ValveCommand`)."""
        return "close_valve" if self is Valve.CLOSE else "open_valve"

    @property
    def reason(self) -> str:
        return "quota used up" if self is Valve.CLOSE else "quota restored"


@dataclass(frozen=True, slots=True)
class ValveOrder:
    """A valve command decided for one meter of the site: the caller sends it."""

    device: str
    valve: Valve


Verdict = Finding | ValveOrder
