"""ecowatch/lineprotocol.py against the escaping cases of the InfluxDB line-protocol reference
("Special characters": measurements, tag keys and values, field keys, string field values)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from ecowatch.lineprotocol import (
    bool_field,
    epoch_ms,
    field_key,
    float_field,
    int_field,
    line,
    measurement,
    string_field,
    tag_key,
    tag_value,
    tags,
)


@pytest.mark.parametrize(
    ("name", "written"),
    [
        ("reading", "reading"),
        ("my measurement", "my\\ measurement"),  # space
        ("a,b", "a\\,b"),  # comma
        ("a=b", "a=b"),  # an equals sign is plain in a measurement
        ('say "hi"', 'say\\ "hi"'),  # quotes are plain outside string fields
        ("back\\slash", "back\\\\slash"),
    ],
)
def test_a_measurement_escapes_commas_and_spaces(name: str, written: str) -> None:
    assert measurement(name) == written


@pytest.mark.parametrize(
    ("text", "written"),
    [
        ("S-OUT-001", "S-OUT-001"),
        ("a b", "a\\ b"),
        ("a,b", "a\\,b"),
        ("a=b", "a\\=b"),
        ("a b,c=d", "a\\ b\\,c\\=d"),
        ('"quoted"', '"quoted"'),  # double quotes are plain in keys and tag values
        ("trail\\", "trail\\\\"),  # else it would escape the separator after it
        ("two\nlines", "two\\ lines"),  # no newline in line protocol: an escaped space
        ("已整改", "已整改"),
    ],
)
def test_tag_keys_tag_values_and_field_keys_escape_commas_equals_and_spaces(
    text: str, written: str
) -> None:
    assert tag_key(text) == tag_value(text) == field_key(text) == written


def test_an_empty_tag_value_is_written_as_none() -> None:
    assert tag_value("") == "-"


@pytest.mark.parametrize(
    ("text", "written"),
    [
        ("plain", '"plain"'),
        ('COD "hourly" 81.5', '"COD \\"hourly\\" 81.5"'),
        ("C:\\path", '"C:\\\\path"'),
        ("ends\\", '"ends\\\\"'),  # else the closing quote would be escaped
        ("a, b=c", '"a, b=c"'),  # commas, equals and spaces are plain inside quotes
        ("two\nlines", '"two lines"'),
        ("", '""'),
    ],
)
def test_a_string_field_is_quoted_and_escapes_quotes_and_backslashes(
    text: str, written: str
) -> None:
    assert string_field(text) == written


def test_numbers_and_booleans() -> None:
    assert float_field(3000) == "3000.0" and float_field(81.5) == "81.5"
    assert float_field(0.1 + 0.2) == "0.30000000000000004"  # read back exactly
    assert int_field(42) == "42i" and int_field(True) == "1i"
    assert bool_field(True) == "true" and bool_field(False) == "false"


def test_epoch_ms_is_exact_and_offset_independent() -> None:
    local = datetime(2026, 11, 23, 10, 0, tzinfo=timezone(timedelta(hours=8)))
    assert epoch_ms(local) == epoch_ms(local.astimezone(UTC)) == 1795399200000
    assert epoch_ms(datetime(1970, 1, 1, 0, 0, 0, 999, tzinfo=UTC)) == 0


def test_a_whole_point() -> None:
    point = line(
        "case event",
        (("site", "S-OUT-001"), ("kind", "a,b")),
        (("detail", string_field('x "y"')), ("n", int_field(2))),
        1795399200000,
    )
    assert point == 'case\\ event,site=S-OUT-001,kind=a\\,b detail="x \\"y\\"",n=2i 1795399200000'
    assert tags(()) == ""


def test_a_point_needs_a_field() -> None:
    with pytest.raises(ValueError, match="at least one field"):
        line("reading", (("site", "S"),), (), 0)
