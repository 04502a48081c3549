"""WCAG 2's contrast ratio, for the wall's browser test (text of at least 4.5:1 against its
ground): relative luminance of sRGB colours, and a colour with alpha laid over its ground."""

from __future__ import annotations

import re

RGB = tuple[float, float, float]
RGBA = tuple[float, float, float, float]
_CSS = re.compile(r"rgba?\(\s*([\d.]+)[,\s]+([\d.]+)[,\s]+([\d.]+)(?:\s*[,/]\s*([\d.]+%?))?\s*\)")


def parse_css(colour: str) -> RGBA:
    """``rgb(r, g, b)`` or ``rgba(r, g, b, a)`` as a browser computes a colour; ``#rrggbb``."""
    if colour.startswith("#") and len(colour) == 7:
        return (int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16), 1.0)
    found = _CSS.fullmatch(colour.strip())
    if found is None:
        raise ValueError(f"not a colour this test reads: {colour!r}")
    r, g, b, a = found.groups()
    alpha = 1.0 if a is None else float(a[:-1]) / 100 if a.endswith("%") else float(a)
    return (float(r), float(g), float(b), alpha)


def over(top: RGBA, ground: RGB) -> RGB:
    """``top`` laid over an opaque ``ground`` (source-over)."""
    a = top[3]
    return (
        top[0] * a + ground[0] * (1 - a),
        top[1] * a + ground[1] * (1 - a),
        top[2] * a + ground[2] * (1 - a),
    )


def luminance(rgb: RGB) -> float:
    """WCAG 2's relative luminance of an sRGB colour (0–255 channels)."""

    def linear(c: float) -> float:
        c /= 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: RGB, b: RGB) -> float:
    """(L1 + 0.05) / (L2 + 0.05), the lighter over the darker: 1 to 21."""
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)
