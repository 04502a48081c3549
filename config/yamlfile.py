"""Reading a YAML file of the configuration, and saying what is wrong with it.

The catalogue, the standards, the AQI tables and the scenarios are YAML that people write.
A mistake names the file, the entry and the field, and what was expected, in the same words
whichever file it is in: these two functions are those words.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from ecowatch.errors import ConfigError


def read_yaml(path: Path, what: str = "") -> Any:
    """The document in ``path`` (None for an empty file). ``what`` names it in an error
    ("the scenario")."""
    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot read{' ' + what if what else ''}: {exc.strerror or exc}"
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None


def field_problem(err: Mapping[str, Any], skip: int = 0, whole: str = "(entry)") -> str:
    """One of pydantic's errors as "field 'a.b': what was expected". ``skip``: leading parts of
    its location that the entry already names; ``whole``: the field's name when nothing is
    left (the entry itself is wrong)."""
    field = ".".join(str(p) for p in err["loc"][skip:]) or whole
    expected = "no such field" if err["type"] == "extra_forbidden" else err["msg"]
    return f"field '{field}': {expected}"
