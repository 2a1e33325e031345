"""Backend for any OpenAI-compatible server (vLLM, SGLang, Ollama, llama.cpp server, OpenAI, `clca serve`).

- The API key comes only from the environment variable named by `api_key_env`; it is never
  logged, stored or put into an exception message (`_openai_config`).
- Requests go through the model's replica pool (`_openai_replicas`): bounded concurrency, the least
  busy replica, retries with backoff, resting replicas that fail twice in a row, and no resending of a
  body the server refused deterministically (such a refusal moves to the next form, see `_capabilities`).
- Structured output (here): json_schema -> json_object + schema -> json_object -> the schema in words in
  the prompt; option scoring (`_openai_options`): vLLM prompt_logprobs -> /v1/completions echo ->
  first-token top_logprobs. What the server took is found on first use and remembered per server.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any, Literal

from ..._scrub import scrub_url_credentials
from ...errors import BackendError
from .._protocol import ChatResult, GenParams, Message, T
from ..structured import schema_in_words, strict_compatible, structured_by_reasking
from ._capabilities import STRUCTURED_ORDER, ScoringPath, StructuredForm, capabilities_for
from ._openai_config import OpenAIConfig, api_key_for
from ._openai_options import OptionScorer
from ._openai_replicas import HTTPStatusError, LoopLocks, ReplicaPool, RequestStats
from ._openai_scoring import first_token_logprobs, option_logprob

__all__ = ["OpenAIConfig", "OpenAIModel", "api_key_for", "first_token_logprobs", "option_logprob"]

log = logging.getLogger("clca.llm.openai")

_FORMAT_WORDS = ("response_format", "json_schema", "schema", "json_object", "format")


class OpenAIModel:
    """An `LLM` backed by one or more replicas of an OpenAI-compatible server."""

    def __init__(self, config: OpenAIConfig) -> None:
        self.config = config
        self._key = api_key_for(config)
        self.capabilities = capabilities_for(config.model, config.base_urls)
        self._pool = ReplicaPool(config, self._key, self.model_id)
        self._locks = LoopLocks()
        self._scorer = OptionScorer(config, self._pool, self.capabilities, self._locks, self._key)
        # an explicit setting holds for this model only; the shared record keeps what the server was found to do
        self._forced_form: StructuredForm | None = None if config.json_schema else "prompt"

    @property
    def stats(self) -> RequestStats:
        """HTTP attempts, retries and failures by reason."""
        return self._pool.stats

    @property
    def scoring_path(self) -> ScoringPath | None:
        """The scoring path in use (None until the first `score_options` found one)."""
        path = self._scorer.forced or self.capabilities.scoring
        return None if path == "none" else path

    @property
    def model_id(self) -> str:
        return f"openai:{self.config.model}"

    @property
    def replica_requests(self) -> dict[str, int]:
        """HTTP attempts sent to each replica so far."""
        return {r.url: r.requests for r in self._pool.replicas}

    def __repr__(self) -> str:  # never shows the key
        return scrub_url_credentials(f"OpenAIModel(model={self.config.model!r}, base_urls={self.config.base_urls!r})")

    # -- LLM protocol -----------------------------------------------------------------------------
    async def chat(self, messages: Sequence[Message], params: GenParams = GenParams()) -> ChatResult:
        return await self._chat(messages, params)

    async def structured(
        self, messages: Sequence[Message], schema: type[T], params: GenParams = GenParams(), max_attempts: int = 3
    ) -> T:
        caps = self.capabilities
        if self._forced_form is not None:
            return await self._structured_as(self._forced_form, messages, schema, params, max_attempts)
        if caps.structured is not None:
            return await self._structured_as(caps.structured, messages, schema, params, max_attempts)
        async with self._locks("structured"):  # the first call finds the form; the others wait for it
            if caps.structured is None:
                return await self._probe_structured(messages, schema, params, max_attempts)
        # the waiters send outside the lock, so they run concurrently (bounded by `concurrency`)
        return await self._structured_as(caps.structured, messages, schema, params, max_attempts)

    async def score_options(self, messages: Sequence[Message], options: Sequence[str]) -> list[float]:
        """Normalised probability of each option as the assistant's whole answer.

        prompt_logprobs path (vLLM): one request per option with the option as a continued assistant
        message; the option's log-probability is the sum over the trailing prompt tokens that spell it.
        completions_echo path: one /v1/completions request per option over clca's rendering of the chat
        template plus the option, with echo + logprobs; the option's tokens are summed.
        top_logprobs path: the first generated token's top-20 alternatives; needs options whose first
        tokens differ (an option absent from the top 20 gets probability 0, with a warning).
        """
        return await self._scorer.score(messages, options)

    async def aclose(self) -> None:
        await self._pool.aclose()

    # -- structured output ------------------------------------------------------------------------
    async def _probe_structured(
        self, messages: Sequence[Message], schema: type[T], params: GenParams, max_attempts: int
    ) -> T:
        caps, where = self.capabilities, self._pool.where()
        for form in STRUCTURED_ORDER:
            try:
                obj = await self._structured_as(form, messages, schema, params, max_attempts)
            except HTTPStatusError as e:
                if form == "prompt" or e.refused is None or not e.refused.mentions(*_FORMAT_WORDS):
                    raise
                caps.refused[form] = f"HTTP {e.status}: {e.refused.message[:160]}"
                log.info(
                    "%s at %s refuses structured form %s; trying the next", self.model_id, self._pool.where(), form
                )
                continue
            caps.structured = form
            log.info("%s at %s: structured output uses %s", self.model_id, where, form)
            return obj
        raise AssertionError("unreachable: the prompt form sends no response_format")

    async def _structured_as(
        self, form: StructuredForm, messages: Sequence[Message], schema: type[T], params: GenParams, max_attempts: int
    ) -> T:
        js = schema.model_json_schema()
        response_format: dict[str, Any] | None = None
        if form == "json_schema":
            name = re.sub(r"[^A-Za-z0-9_-]", "_", schema.__name__)[:64] or "answer"
            response_format = {
                "type": "json_schema",
                "json_schema": {"name": name, "schema": js, "strict": strict_compatible(js)},
            }
        elif form == "json_object_schema":
            response_format = {"type": "json_object", "schema": js}
        elif form == "json_object":
            response_format = {"type": "json_object"}

        async def gen(msgs: list[Message], p: GenParams) -> str:
            return (await self._chat(msgs, p, response_format=response_format)).text

        instruction = schema_in_words(schema) if form == "prompt" else None
        return await structured_by_reasking(gen, messages, schema, params, max_attempts, instruction=instruction)

    # -- requests ---------------------------------------------------------------------------------
    async def _chat(
        self, messages: Sequence[Message], params: GenParams, response_format: dict[str, Any] | None = None
    ) -> ChatResult:
        body: dict[str, Any] = {
            "messages": [dict(m) for m in messages],
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_tokens,
            "n": params.n,
        }
        if params.stop:
            body["stop"] = list(params.stop)
        if params.seed is not None:
            body["seed"] = params.seed
        if response_format is not None:
            body["response_format"] = response_format
        data = await self._request(body)
        choices = sorted(data["choices"], key=lambda c: c.get("index", 0))
        texts = [((c.get("message") or {}).get("content") or "") for c in choices]
        if len(texts) != params.n:
            raise BackendError(f"{self.model_id}: asked for n={params.n} completions, the server returned {len(texts)}")
        usage = data.get("usage") or {}
        return ChatResult(
            texts=texts,
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            finish_reasons=[str(c.get("finish_reason") or "") for c in choices],
        )

    async def _request(self, body: dict[str, Any], endpoint: Literal["chat", "completions"] = "chat") -> dict[str, Any]:
        """POST /chat/completions (or /completions) through the replica pool, with retries."""
        return await self._pool.request(body, endpoint)
