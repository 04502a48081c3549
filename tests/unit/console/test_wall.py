"""The wall's pure parts: WCAG 2's contrast (the browser test's yardstick), the city's AQI from
the city-mean concentrations, and the kiosk's token: read only, at the API and in the console."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from ecowatch.aqi_categories import Category
from ecowatch.console.core import City
from ecowatch.console.server import Session
from ecowatch.console.wall_api import city_aqi, city_means, status_counts
from ecowatch.edges.tokens import add_token, hashed, identify, load_tokens, who_problem
from ecowatch.streams.api.auth import Caller, caller_of, known_holder, officer_grids
from ecowatch.streams.api.requests import Refusal
from ecowatch.streams.api.views import CaseApi
from ecowatch.streams.judging.aqi import AqiPeriod, aqi
from tests.contrast import contrast, luminance, over, parse_css
from tests.factories import reading

T = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
WHITE, BLACK = (255.0, 255.0, 255.0), (0.0, 0.0, 0.0)

# -- contrast (WCAG 2) --------------------------------------------------------------------------


def test_contrast_runs_from_1_to_21_and_reads_either_way():
    assert contrast(WHITE, BLACK) == pytest.approx(21.0)
    assert contrast(BLACK, WHITE) == pytest.approx(21.0)
    assert contrast((17.0, 34.0, 51.0), (17.0, 34.0, 51.0)) == pytest.approx(1.0)
    assert luminance(WHITE) == pytest.approx(1.0) and luminance(BLACK) == 0.0


@pytest.mark.parametrize(
    ("fg", "bg", "ratio"),
    [
        # Known pairs (WebAIM's checker): #777 on white is the classic near miss.
        ("#777777", "#ffffff", 4.48),
        ("#767676", "#ffffff", 4.54),
        ("#ff0000", "#ffffff", 4.0),
        ("#0000ff", "#ffffff", 8.59),
        # The 1.7:1: the old "no data" grey as text on the wall's panel.
        ("#3a4653", "#112233", 1.68),
    ],
)
def test_contrast_of_known_pairs(fg, bg, ratio):
    assert contrast(parse_css(fg)[:3], parse_css(bg)[:3]) == pytest.approx(ratio, abs=0.01)


def test_computed_colours_are_read_and_alpha_is_laid_over_the_ground():
    assert parse_css("rgb(220, 232, 242)") == (220, 232, 242, 1.0)
    assert parse_css("rgba(0, 0, 0, 0.5)") == (0, 0, 0, 0.5)
    assert parse_css("rgb(0 0 0 / 50%)") == (0, 0, 0, 0.5)
    assert over((255.0, 255.0, 255.0, 0.5), BLACK) == (127.5, 127.5, 127.5)
    with pytest.raises(ValueError, match="not a colour"):
        parse_css("color(srgb 1 0 0)")


# -- the city's AQI -----------------------------------------------------------------------------

AIR = ("S-AIR-001", "33080200A00001"), ("S-AIR-002", "33080200A00002")


def test_the_city_aqi_is_of_the_city_mean_concentrations_not_a_mean_of_aqis(catalogue):
    """Station 1 is dusty (PM2.5), station 2 sunny (O3): each is polluted by its own pollutant;
    the city, their means, is neither as bad, and its AQI is no mean of theirs."""
    city = City(catalogue)
    one = {"a34004": 120.0, "a34002": 150.0, "a05024": 40.0}
    two = {"a34004": 20.0, "a34002": 30.0, "a05024": 300.0}
    for (site, device), values in zip(AIR, (one, two), strict=True):
        city.on_reading(reading(values, T, site, device, model="air_station"), 0.0)
    means, stations = city_means(city)
    assert stations == 2
    assert means == {"a34004": 70.0, "a34002": 90.0, "a05024": 170.0}
    found = city_aqi(city)
    assert found is not None
    assert found["aqi"] == aqi(means, AqiPeriod.HOUR, city.aqi_standard).aqi
    numbers = [city.sites[s].aqi["aqi"] for s, _ in AIR]  # type: ignore[index]
    assert found["aqi"] != round(sum(numbers) / 2)
    assert (found["station_min"], found["station_max"]) == (min(numbers), max(numbers))
    assert found["colour"].startswith("#") and found["category_said"]["zh"]


def test_an_offline_station_and_a_flagged_value_are_left_out(catalogue):
    city = City(catalogue)
    (s1, d1), (s2, d2) = AIR
    city.on_reading(reading({"a34004": (100.0, "N"), "a05024": (900.0, "C")}, T, s1, d1), 0.0)
    city.on_reading(reading({"a34004": 10.0}, T, s2, d2), 0.0)
    assert city_means(city)[0] == {"a34004": 55.0}
    assert city_means(city, shown={s2})[0] == {"a34004": 10.0}
    city.sites[s2].devices_offline.add(d2)
    assert city_means(city) == ({"a34004": 100.0}, 1)
    assert city_aqi(City(catalogue)) is None  # no air heard yet


def test_sites_by_status(catalogue):
    city = City(catalogue)
    city.on_reading(reading({"w01018": 500.0}, T), 0.0)
    counts = status_counts(city)
    assert counts["over"] == 1 and counts["unknown"] == len(catalogue.sites) - 1
    assert sum(status_counts(city, shown={"S-OUT-001"}).values()) == 1


# -- the kiosk's token --------------------------------------------------------------------------


def test_a_kiosk_may_hold_a_token(tmp_path: Path):
    assert who_problem("kiosk:大厅") is None
    assert "kiosk:<name>" in (who_problem("kiosk:") or "")
    assert "kiosk:<name>" in (who_problem("kiosk: ") or "")
    path = tmp_path / "tokens.json"
    token = add_token(path, "kiosk:大厅")
    assert identify(load_tokens(path), token) == "kiosk:大厅"


def test_the_api_lets_a_kiosk_read_every_grid_and_refuses_it_every_post(catalogue):
    grids = officer_grids(catalogue)
    tokens = hashed({"t-wall": "kiosk:hall"})
    for method in ("GET", "HEAD", "get"):
        reader = caller_of("Bearer t-wall", tokens, grids, (), method)
        assert reader == Caller("kiosk:hall", None, reads_only=True)
        assert all(reader.sees(g) for g in catalogue.grids)
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        with pytest.raises(Refusal, match="kiosk") as refused:
            caller_of("Bearer t-wall", tokens, grids, (), method)
        assert refused.value.status == 403
    assert known_holder("kiosk:hall", grids, ()) and known_holder("operator:x", grids, ())
    assert known_holder("O-KC-01", grids, ()) and not known_holder("O-GONE", grids, ())
    assert not known_holder("enterprise:E-999", grids, ("E-001",))


def test_a_kiosks_console_session_is_the_kiosk_role_over_every_grid():
    kiosk = Session("t", "kiosk:hall", None, 0.0, vouched="sha256:x")
    assert kiosk.role == "kiosk" and kiosk.sees("G-KC-01")
    assert Session("t", "operator:x", None, 0.0).role == "operator"


def test_the_case_api_hands_the_method_to_the_kiosk_rule(catalogue):
    """Every endpoint of the worker's API asks ``CaseApi.caller``: a kiosk's POST stops there."""
    api = SimpleNamespace(
        tokens=hashed({"t-wall": "kiosk:hall"}),
        grids=officer_grids(catalogue),
        catalogue=catalogue,
    )
    asked = SimpleNamespace(headers={"Authorization": "Bearer t-wall"}, method="GET")
    assert CaseApi.caller(api, asked).reads_only  # type: ignore[arg-type]
    with pytest.raises(Refusal) as refused:
        CaseApi.caller(api, SimpleNamespace(headers=asked.headers, method="POST"))  # type: ignore[arg-type]
    assert refused.value.status == 403


def test_the_city_aqi_reads_on_every_category_colour():
    """wall.js writes the city's AQI on its category's colour (HJ 633 Appendix A) in an ink of
    its own per category: every pair at 4.5:1 or better."""
    wall = (Path(__file__).parents[3] / "console" / "static" / "wall.js").read_text()
    pairs = re.findall(r'\["(\w+)", "(#[0-9A-Fa-f]{6})", "(#[0-9a-f]{3})"\]', wall)
    assert [k for k, _, _ in pairs] == [c.value for c in Category]
    for key, ground, ink in pairs:
        full = "#" + "".join(c * 2 for c in ink[1:])
        ratio = contrast(parse_css(full)[:3], parse_css(ground)[:3])
        assert ratio >= 4.5, (key, ground, ink, ratio)
