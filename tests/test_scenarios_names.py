"""The Faker-based name check: known names accepted / rejected per locale, gender, drawing, locale table."""

from __future__ import annotations

import random

import pytest

from clca.scenarios._names import LOCALE_OVERRIDES, culture_locales, draw_name, name_problem, person_locales


@pytest.mark.parametrize(
    ("first", "last", "gender", "culture"),
    [
        ("Ahmed", "Hassan", "male", "EGY"),  # Arabic script in Faker: matched by consonant skeleton
        ("Mohamed", "El-Sayed", "man", "EGY"),
        ("Tarek", "Mostafa", "male", "EGY"),
        ("Nour", "Ali", "female", "EGY"),
        ("Akira", "Sato", "male", "JPN"),  # Faker's romanised ja_JP names
        ("Wei", "Wang", "male", "CHN"),
        ("Hans", "Müller", "male", "DEU"),
        ("José", "García", "male", "MEX"),
        ("Oliver", "Smith", "male", "GBR"),
    ],
)
def test_accepts_names_of_the_culture(first, last, gender, culture):
    assert name_problem(first, last, gender, culture) is None


@pytest.mark.parametrize(
    ("first", "last", "gender", "culture", "why"),
    [
        ("John", "Brenner", "male", "EGY", "'John' is not a male first name"),  # the Egyptian "John"
        ("Alejandro", "Lopez", "male", "EGY", "'Alejandro' is not a male first name"),
        ("John", "Smith", "male", "JPN", "'John' is not a male first name"),
        ("Akira", "Sato", "female", "JPN", "'Akira' is not a female first name"),  # gender follows the character
        ("Lukas", "Hassan", "male", "DEU", "'Hassan' is not a family name"),
        ("Hans", "Müller", "male", "MEX", "'Hans' is not a male first name"),
    ],
)
def test_rejects_names_of_other_cultures_or_the_wrong_gender(first, last, gender, culture, why):
    problem = name_problem(first, last, gender, culture)
    assert problem is not None and problem.startswith(why)


def test_locale_table_and_fallback():
    assert culture_locales("EGY") == ("ar_AA",)  # Faker's ar_EG has no person names (it would give en_US ones)
    assert culture_locales("JPN") == ("ja_JP",) and culture_locales("DEU") == ("de_DE",)
    assert "es_MX" in culture_locales("MEX") and "zh_CN" in culture_locales("CHN")
    assert all(loc in person_locales() for locs in LOCALE_OVERRIDES.values() for loc in locs)
    # no locale: no check (never counted as plausible), no draw
    assert culture_locales("custom-culture") == () and name_problem("Xyz", "Qwv", "male", "custom-culture") is None
    assert draw_name("custom-culture", "male", random.Random(0)) is None


@pytest.mark.parametrize("culture", ["EGY", "JPN", "DEU", "MEX", "CHN", "GBR"])
@pytest.mark.parametrize("gender", ["male", "female"])
def test_drawn_names_pass_the_check_and_follow_the_gender(culture, gender):
    for seed in range(3):
        first, last = draw_name(culture, gender, random.Random(seed), avoid=["Smith"])
        assert first.isascii() and last.isascii() and last != "Smith"
        assert name_problem(first, last, gender, culture) is None, (first, last)
