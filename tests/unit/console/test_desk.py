"""The desk's pure parts: the weekly settlement as CSV and the Flux of a site's means."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

from ecowatch.console.desk_api import weekly_csv_text, weekly_rows
from ecowatch.console.history import means_flux

T = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
WEEK = {
    "week": "2026-11-23",
    "grids": [
        {"grid": "G-1", "name": "柯城区第一网格", "district": "柯城区", "opened": 2,
         "escalated": 1, "acknowledged": 1, "closed": 0, "overdue": ["c-1", "c-2"],
         "open_at_end": 2, "marks_made": 0, "marks_accepted": 0, "marks_rejected": 0,
         "settled": False},
        {"grid": "G-2", "name": "@SUM(A1)", "district": "-1", "overdue": [], "settled": True},
    ],
}  # fmt: skip


def test_the_weekly_csv_has_a_bom_its_header_in_the_callers_language_and_a_row_a_grid():
    text = weekly_csv_text(WEEK, "zh")
    assert text.startswith("\ufeff") and "\r\n" in text
    rows = list(csv.reader(io.StringIO(text.removeprefix("\ufeff"))))
    assert rows[0][0] == "网格" and rows[0][-1] == "是否结清" and len(rows) == 3
    assert rows[1][8:10] == ["2", "c-1; c-2"] and rows[1][-1] == "未结清"
    # What a spreadsheet would run as a formula is kept as text; a missing count is empty.
    assert rows[2][0] == "'@SUM(A1)" and rows[2][2] == "'-1" and rows[2][3] == ""
    assert rows[2][-1] == "已结清"
    english = weekly_rows(WEEK, "en")
    assert english[0][:2] == ["Grid", "Grid id"] and english[1][-1] == "not settled"


def test_a_sites_means_are_its_hourly_and_daily_windows_with_their_validity():
    text = means_flux("ecowatch", 'S-"1', T - timedelta(days=3), T, "corrected")
    assert 'r._measurement == "aggregate"' in text and 'r.site == "S-\\"1"' in text  # escaped
    assert '(r.period == "hour" or r.period == "day")' in text
    assert '(r._field == "corrected" or r._field == "valid")' in text
    assert 'pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")' in text
