"""Personas, prompt styles, option variants, answer parsing; logprobs and generate modes on the real model."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from clca.llm import MockLLM
from clca.wvs import (
    STYLES,
    Persona,
    ask,
    build_messages,
    default_questionnaire,
    load_reference,
    load_survey,
    option_order,
    parse_answer,
    personas_from_marginals,
    personas_from_survey,
)

Q = default_questionnaire()
EGYPTIAN = Persona(
    id="p1", country="EGY",
    demographics={"region": "Giza", "settlement": "urban", "sex": "female", "age": "34", "education": "higher",
                  "marital_status": "married", "household_size": "4", "profession": "clerical",
                  "employment": "employed full time", "social_class": "lower middle class", "born_in_country": "yes"},
)  # fmt: skip


def test_persona_prompt_renders_all_details() -> None:
    msgs = build_messages("persona", EGYPTIAN, Q.get("Q1"), "base", 0)
    system, user = msgs[0]["content"], msgs[1]["content"]
    assert msgs[0]["role"] == "system" and "Egypt" in system
    for v in ("Giza", "urban area", "female", "34 years old", "higher", "married", "clerical", "lower middle class"):
        assert v in system
    assert Q.get("Q1").text in user and "1. Very important" in user and "4. Not important at all" in user
    assert "only the number" in user


def test_each_style_renders() -> None:
    item = Q.get("Q33")
    seen = set()
    for style in STYLES:
        msgs = build_messages(style, EGYPTIAN, item, "base", 0)
        assert msgs[-1]["role"] == "user" and item.text in msgs[-1]["content"]
        if style == "none":
            assert len(msgs) == 1
        else:
            assert "Egypt" in msgs[0]["content"]
            seen.add(msgs[0]["content"])
    assert len(seen) == 3  # persona, cultural and anthropological prompts differ
    cultural = build_messages("cultural", EGYPTIAN, item, "base", 0)[0]["content"]
    assert "Giza" not in cultural  # cultural prompting uses the country only
    assert "Giza" in build_messages("anthropological", EGYPTIAN, item, "base", 0)[0]["content"]
    # the shared prefix: the same system prompt for every item of a persona
    assert (
        build_messages("persona", EGYPTIAN, Q.get("Q1"), "base", 0)[0]
        == build_messages("persona", EGYPTIAN, Q.get("Q45"), "base", 0)[0]
    )


def test_variants_permute_and_paraphrase() -> None:
    item = Q.get("Q33")
    assert option_order(item, "base", 0) == [1, 2, 3, 4, 5]
    perm = option_order(item, "perm1", 0)
    assert sorted(perm) == [1, 2, 3, 4, 5] and perm == option_order(item, "perm1", 0)
    assert any(option_order(it, "perm1", 0) != it.codes for it in Q)
    user = build_messages("none", EGYPTIAN, item, "perm1", 0)[0]["content"]
    assert f"1. {item.options[perm[0]]}" in user
    para = build_messages("none", EGYPTIAN, item, "para", 0)[0]["content"]
    assert item.paraphrase in para and item.text not in para


def test_parse_answer() -> None:
    item = Q.get("Q1")
    order = [1, 2, 3, 4]
    assert parse_answer("2", item, order) == 2
    assert parse_answer(" 3. Not very important", item, order) == 3
    assert parse_answer("**4**", item, order) == 4
    assert parse_answer("Option 1", item, order) == 1
    assert parse_answer("Very important", item, order) == 1
    assert parse_answer("7", item, order) is None  # out of range -> safeguarded
    assert parse_answer("I cannot answer that as an AI.", item, order) is None
    assert parse_answer("It depends on many things", item, order) is None
    assert parse_answer("", item, order) is None
    assert parse_answer("1", item, [4, 3, 2, 1]) == 4  # displayed number -> code under a permutation


def test_generate_mode_counts_safeguarded() -> None:
    llm = MockLLM(["2", "I cannot say.", "9", "Strongly agree", "2."])
    a = asyncio.run(ask(llm, style="persona", persona=EGYPTIAN, item=Q.get("Q29"), variant="base", mode="generate",
                        samples=5))  # fmt: skip
    assert a.probs == pytest.approx([0.2, 0.4, 0.0, 0.0])
    assert a.safeguarded == pytest.approx(0.4)
    assert sum(a.with_safeguarded()) == pytest.approx(1.0)
    assert len(a.samples) == 5


def test_logprobs_mode_maps_display_order_to_codes() -> None:
    item = Q.get("Q33")

    def first_option(_m, options):  # noqa: ANN001, ANN202
        return [0.6] + [0.1] * (len(options) - 1)

    a = asyncio.run(ask(MockLLM(option_probs=first_option), style="none", persona=EGYPTIAN, item=item,
                        variant="perm1", mode="logprobs"))  # fmt: skip
    shown_first = option_order(item, "perm1", 0)[0]
    assert a.probs[item.codes.index(shown_first)] == pytest.approx(0.6)
    assert sum(a.probs) == pytest.approx(1.0) and a.safeguarded == 0.0


@pytest.mark.shared
def test_personas_from_respondents(shared_data: Path) -> None:
    survey = load_survey(shared_data / "cultural-trends" / "us_wvs_wave7_v7_n303.csv")
    ps = personas_from_survey(survey, "USA", 25, seed=7)
    assert len(ps) == 25 and len({p.id for p in ps}) == 25  # distinct ids
    assert [p.id for p in ps] == [p.id for p in personas_from_survey(survey, "USA", 25, seed=7)]
    assert [p.id for p in ps] != [p.id for p in personas_from_survey(survey, "USA", 25, seed=8)]
    assert all(p.answers and p.demographics.get("sex") in ("male", "female") for p in ps)
    uniform = personas_from_survey(survey, "USA", 1000, seed=0, sampling="uniform")
    assert len(uniform) == 303  # uniform: without replacement, all of them when fewer
    weighted = personas_from_survey(survey, "USA", 1000, seed=0)  # default: drawn by W_WEIGHT, with repeats
    assert len(weighted) == 1000 and len({p.id for p in weighted}) == 1000
    assert len({p.source for p in weighted}) < 303  # low-weight respondents may not be drawn at all
    msgs = build_messages("persona", ps[0], Q.get("Q1"), "base", 0)
    assert "United States" in msgs[0]["content"] and ps[0].demographics["region"] in msgs[0]["content"]


def test_personas_from_marginals() -> None:
    ref = load_reference()
    ps = personas_from_marginals(ref.countries["EGY"].marginals, "EGY", 30, seed=1)
    assert len(ps) == 30 and all(p.country == "EGY" and not p.answers for p in ps)
    sexes = {p.demographics["sex"] for p in ps}
    assert sexes <= set(ref.countries["EGY"].marginals["sex"].values) and len(sexes) == 2
    assert all(p.demographics["age"] in ref.countries["EGY"].marginals["age"].values for p in ps)
    bare = personas_from_marginals({}, "IRQ", 2)
    assert (
        bare[0].demographics == {}
        and "Iraq" in build_messages("persona", bare[0], Q.get("Q1"), "base", 0)[0]["content"]
    )


@pytest.mark.slow
def test_embedded_logprobs_each_style_sums_to_one(embedded_llm) -> None:  # noqa: ANN001
    item = Q.get("Q43")

    async def run() -> list:
        return await asyncio.gather(*[
            ask(embedded_llm, style=s, persona=EGYPTIAN, item=item, variant="base", mode="logprobs") for s in STYLES
        ])  # fmt: skip

    answers = asyncio.run(run())
    for a in answers:
        assert len(a.probs) == 3 and sum(a.probs) == pytest.approx(1.0, abs=1e-6)
        assert all(0.0 <= p <= 1.0 for p in a.probs) and a.safeguarded == 0.0
    # different framings give different distributions (the prompt reaches the model)
    assert len({tuple(round(p, 6) for p in a.probs) for a in answers}) > 1


@pytest.mark.slow
def test_embedded_generate_mode(embedded_llm) -> None:  # noqa: ANN001
    a = asyncio.run(ask(embedded_llm, style="persona", persona=EGYPTIAN, item=Q.get("Q7"), variant="base",
                        mode="generate", samples=4, temperature=1.0))  # fmt: skip
    assert len(a.samples) == 4
    assert sum(a.with_safeguarded()) == pytest.approx(1.0)
    for text in a.samples:  # every sample is either parsed to an option or counted as safeguarded
        assert parse_answer(text, Q.get("Q7"), a.order) in (None, 1, 2)
