"""The one small interface every pipeline stage uses to talk to a model."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, TypedDict, TypeVar, runtime_checkable

from pydantic import BaseModel

T = TypeVar("T", bound=BaseModel)


class Message(TypedDict):
    role: Literal["system", "user", "assistant"]
    content: str


@dataclass(frozen=True)
class GenParams:
    """Sampling settings. temperature 0 means greedy decoding."""

    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 256
    stop: tuple[str, ...] = ()
    seed: int | None = None
    n: int = 1

    @property
    def deterministic(self) -> bool:
        return self.temperature == 0.0


@dataclass
class ChatResult:
    """One or more sampled completions for one request."""

    texts: list[str]
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reasons: list[str] = field(default_factory=list)
    cached: bool = False

    @property
    def text(self) -> str:
        return self.texts[0]


@dataclass
class TokenLogprob:
    """One generated (or prompt) token with its log-probability and the top alternatives."""

    token: str
    logprob: float
    top: list[tuple[str, float]] = field(default_factory=list)


@runtime_checkable
class LLM(Protocol):
    """A chat model. Implementations: embedded / hf (in-process, batched), openai-compatible, mock."""

    @property
    def model_id(self) -> str:
        """Identity of the model (weights + adapter), used as the cache key prefix."""
        ...

    async def chat(self, messages: Sequence[Message], params: GenParams = GenParams()) -> ChatResult:
        """Generate params.n completions for one conversation."""
        ...

    async def structured(
        self,
        messages: Sequence[Message],
        schema: type[T],
        params: GenParams = GenParams(),
        max_attempts: int = 3,
    ) -> T:
        """Return a validated instance of schema; raise StructuredOutputError after max_attempts."""
        ...

    async def score_options(self, messages: Sequence[Message], options: Sequence[str]) -> list[float]:
        """Probability of each option as the assistant's answer, normalised over the options."""
        ...

    async def aclose(self) -> None:
        """Release resources (HTTP clients, worker threads)."""
        ...


@runtime_checkable
class LogprobLLM(Protocol):
    """Extra capabilities of in-process backends, used by `clca serve` to answer logprob requests."""

    async def generate_with_logprobs(
        self, messages: Sequence[Message], params: GenParams, top_logprobs: int
    ) -> tuple[str, list[TokenLogprob]]:
        """Greedy/sampled completion (n=1) with per-token logprobs and top-k alternatives."""
        ...

    async def continuation_logprobs(self, messages: Sequence[Message], continuation: str) -> list[TokenLogprob]:
        """Log-probabilities of the tokens of `continuation` as the start of the assistant reply."""
        ...
