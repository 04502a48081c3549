"""HJ 633-2012 Table 2: the six AQI categories (类别), their levels, Chinese names and colours.
Kernel constants: the judging computes a category, the wording and the screens name it."""

from __future__ import annotations

from enum import StrEnum


class Category(StrEnum):
    """HJ 633 Table 2: the six AQI categories (类别), by their English key."""

    EXCELLENT = "excellent"
    GOOD = "good"
    LIGHTLY_POLLUTED = "lightly_polluted"
    MODERATELY_POLLUTED = "moderately_polluted"
    HEAVILY_POLLUTED = "heavily_polluted"
    SEVERELY_POLLUTED = "severely_polluted"

    @property
    def level(self) -> int:
        """The AQI level (级别): 1 (一级) to 6 (六级)."""
        return _CATEGORY_INFO[self][0]

    @property
    def name_zh(self) -> str:
        return _CATEGORY_INFO[self][1]

    @property
    def colour(self) -> str:
        return _CATEGORY_INFO[self][2]

    @property
    def upper(self) -> int | None:
        """The highest AQI of the category; None for the last, open-ended one."""
        return _CATEGORY_INFO[self][3]

    @property
    def label(self) -> str:
        """The key as words: "lightly polluted"."""
        return self.value.replace("_", " ")


_CATEGORY_INFO: dict[Category, tuple[int, str, str, int | None]] = {
    Category.EXCELLENT: (1, "优", "green", 50),
    Category.GOOD: (2, "良", "yellow", 100),
    Category.LIGHTLY_POLLUTED: (3, "轻度污染", "orange", 150),
    Category.MODERATELY_POLLUTED: (4, "中度污染", "red", 200),
    Category.HEAVILY_POLLUTED: (5, "重度污染", "purple", 300),
    Category.SEVERELY_POLLUTED: (6, "严重污染", "maroon", None),
}


_UPPERS = tuple((cat, info[3]) for cat, info in _CATEGORY_INFO.items())  # in order


def category_of(aqi_value: int) -> Category:
    """The category of an (integer) AQI: 0–50 excellent, 51–100 good, …, above 300 severely."""
    if aqi_value < 0:
        raise ValueError(f"an AQI is not negative (got {aqi_value})")
    for cat, upper in _UPPERS:
        if upper is None or aqi_value <= upper:
            return cat
    raise AssertionError("unreachable: the last category is open-ended")
