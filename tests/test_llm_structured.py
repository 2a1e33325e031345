"""Schema-guided structured output on the real embedded model: first-try validity over varied schemas."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from enum import Enum
from typing import Literal

import pytest
from pydantic import BaseModel, Field

from clca.errors import StructuredOutputError
from clca.llm import GenParams
from clca.llm.backends import HFModel


class Mood(str, Enum):
    calm = "calm"
    tense = "tense"
    joyful = "joyful"


class Score(BaseModel):
    reasoning: str = Field(max_length=120)
    score: int = Field(ge=0, le=10)


class Relationship(BaseModel):
    relationship: Literal["stranger", "know_by_name", "acquaintance", "friend", "romantic", "family"]


class Judge(BaseModel):
    believability: Score
    goal: Score


class Person(BaseModel):
    first_name: str = Field(min_length=1, max_length=30)
    age: int = Field(ge=18, le=90)
    occupation: str


class Intention(BaseModel):
    intention: str = Field(min_length=3)
    polite: bool


class Tags(BaseModel):
    tags: list[str] = Field(min_length=1, max_length=3)


class Maybe(BaseModel):
    secret: str | None = None
    mood: Mood


class Probability(BaseModel):
    probability: float = Field(ge=0.0, le=1.0)


class Count(BaseModel):
    count: int = Field(ge=0)
    unit: Literal["people", "days"]


class Action(BaseModel):
    action_type: Literal["none", "speak", "non-verbal communication", "action", "leave"]
    argument: str


class Scenario(BaseModel):
    title: str = Field(max_length=60)
    people: list[Person] = Field(min_length=1, max_length=2)


CASES: list[tuple[str, type[BaseModel]]] = [
    ("Rate how believable this reply is: 'I will be there at seven, I promise.'", Score),
    ("Two colleagues greet each other by first name every morning. What is their relationship?", Relationship),
    ("Judge this dialogue. A: 'Could you pass the salt?' B: 'Of course, here you are.'", Judge),
    ("Invent a character who lives in Lima.", Person),
    ("What does the speaker intend by saying 'It is getting rather late, isn't it?'", Intention),
    ("Give tags for a story about a tea ceremony.", Tags),
    ("Describe the mood of a quiet Sunday morning.", Maybe),
    ("How likely is it to rain in London in November?", Probability),
    ("How many guests usually attend a small family dinner?", Count),
    ("You are at a market and want a lower price. What do you do next?", Action),
    ("Write a scenario about neighbours sharing food.", Scenario),
    ("Rate the politeness of: 'Give me that now.'", Score),
    ("A mother and her son talk at dinner. What is their relationship?", Relationship),
    ("Invent a retired teacher from Cairo.", Person),
    ("Why might someone say 'Let me think about it' in a negotiation?", Intention),
    ("Tag a conversation about wedding gifts.", Tags),
    ("Describe the mood at a birthday party.", Maybe),
    ("What is the chance that a coin lands heads?", Probability),
    ("You meet your manager in the elevator. What do you do?", Action),
    ("Judge this dialogue. A: 'You are late again.' B: 'Sorry, the train was delayed.'", Judge),
]


@pytest.fixture(scope="module")
def hf() -> Iterator[HFModel]:
    model = HFModel.from_spec("embedded")
    yield model
    asyncio.run(model.aclose())


@pytest.mark.slow
def test_first_try_validity_over_20_schemas(hf: HFModel) -> None:
    params = GenParams(max_tokens=24, seed=1)

    async def one(prompt: str, schema: type[BaseModel]) -> BaseModel | StructuredOutputError:
        try:
            return await hf.structured([{"role": "user", "content": prompt}], schema, params, max_attempts=1)
        except StructuredOutputError as e:
            return e

    async def all_cases() -> list[BaseModel | StructuredOutputError]:
        return await asyncio.gather(*[one(p, s) for p, s in CASES])

    results = asyncio.run(all_cases())
    ok = [isinstance(r, schema) for r, (_, schema) in zip(results, CASES, strict=True)]
    rate = sum(ok) / len(ok)
    print(f"structured first-try validity: {sum(ok)}/{len(ok)} = {rate:.0%}")
    failures = [str(r) for r in results if isinstance(r, StructuredOutputError)]
    assert rate >= 0.95, failures
    assert hf.batcher.stats.largest >= 5  # concurrent structured calls shared batches


def test_impossible_constraint_raises_after_attempts(hf: HFModel) -> None:
    class Code(BaseModel):
        code: str = Field(pattern=r"^ZZ-\d{9}-QQ$")

    with pytest.raises(StructuredOutputError) as info:
        asyncio.run(
            hf.structured([{"role": "user", "content": "Give a code."}], Code, GenParams(max_tokens=6), max_attempts=2)
        )
    assert info.value.attempts == 2 and len(info.value.reasons) == 2
    assert all("code" in r for r in info.value.reasons)
