"""A scripted model for fast unit tests of pipeline logic (never the only proof a feature works)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import ModelStringError
from ._protocol import ChatResult, GenParams, Message, T
from ._spec import ModelSpec
from .structured import structured_by_reasking

Responder = Callable[[Sequence[Message], GenParams], str]


class MockLLM:
    """Answers from a list (cycled) or a function of (messages, params). Counts calls.

    score_options returns `option_probs(messages, options)` if given, else a uniform distribution.
    """

    def __init__(
        self,
        responses: Sequence[str] | Responder = ("ok",),
        option_probs: Callable[[Sequence[Message], Sequence[str]], list[float]] | None = None,
        model_id: str = "mock",
    ) -> None:
        if callable(responses):
            self._fn: Responder = responses
        else:
            cycle = itertools.cycle(list(responses))
            self._fn = lambda _m, _p: next(cycle)
        self._option_probs = option_probs
        self._model_id = model_id
        self.calls: list[list[Message]] = []

    @property
    def model_id(self) -> str:
        return self._model_id

    async def chat(self, messages: Sequence[Message], params: GenParams = GenParams()) -> ChatResult:
        self.calls.append(list(messages))
        texts = [self._fn(messages, params) for _ in range(params.n)]
        return ChatResult(texts=texts, completion_tokens=sum(len(t.split()) for t in texts))

    async def structured(
        self, messages: Sequence[Message], schema: type[T], params: GenParams = GenParams(), max_attempts: int = 3
    ) -> T:
        async def gen(msgs: list[Message], p: GenParams) -> str:
            return (await self.chat(msgs, p)).text

        return await structured_by_reasking(gen, messages, schema, params, max_attempts)

    async def score_options(self, messages: Sequence[Message], options: Sequence[str]) -> list[float]:
        self.calls.append(list(messages))
        if self._option_probs is not None:
            return self._option_probs(messages, options)
        return [1.0 / len(options)] * len(options)

    async def aclose(self) -> None:
        return None


def build(spec: ModelSpec, options: dict[str, Any]) -> MockLLM:
    """The `mock` model string (the factory `_spec.BACKENDS` names); it takes no options."""
    check(spec)
    if options:
        raise ModelStringError(f"the mock backend takes no options (got {', '.join(sorted(options))})")
    return MockLLM()


def check(spec: ModelSpec) -> None:
    if spec.options or spec.adapter is not None:
        raise ModelStringError(f"the mock backend takes no options or adapter (model string {spec.format()!r})")
