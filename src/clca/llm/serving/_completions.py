"""`POST /v1/completions` of `clca serve`: legacy text completions with `echo` and per-token `logprobs`.

This is the request shape lm-evaluation-harness's `local-completions` model uses for log-likelihoods
(`echo: true, logprobs: 1, max_tokens: 1`: the log-probability of every prompt token) and for
generation. Prompts may be text or token ids (one or a batch). It needs a backend that exposes its
tokenizer and raw token-level scoring and generation (the in-process backends); others answer 400.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from .._protocol import TokenLogprob

DEFAULT_COMPLETION_TOKENS = 16  # OpenAI's default for /v1/completions


class CompletionError(ValueError):
    """A request this endpoint cannot honour (answered as an OpenAI-style 400 naming the field)."""


@runtime_checkable
class TokenLevelLLM(Protocol):
    """What the endpoint needs of a backend: its tokenizer and token-level scoring and generation."""

    tokenizer: Any

    def encode(self, text: str) -> list[int]: ...

    async def score_ids(
        self, prompt_ids: list[int], continuations: list[list[int]], top_logprobs: int = 0
    ) -> list[list[TokenLogprob]]: ...

    async def generate_ids(self, prompt_ids: list[int], rows: list[dict[str, Any]]) -> list[Any]: ...


class CompletionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    prompt: str | list[str] | list[int] | list[list[int]]
    max_tokens: int | None = Field(None, ge=0)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    n: int = Field(1, ge=1, le=64)
    stop: str | list[str] | None = None
    seed: int | None = None
    echo: bool = False
    logprobs: int | None = Field(None, ge=0, le=20)
    stream: bool = False
    # accepted and honoured only at their neutral values
    best_of: int | None = None
    suffix: str | None = None
    logit_bias: dict[str, float] | None = None
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    user: str | None = None

    def check(self) -> None:
        if self.stream:
            raise CompletionError("stream: stream=true is not supported by clca serve")
        if self.best_of not in (None, 1, self.n):
            raise CompletionError("best_of: only best_of = n is supported")
        if self.suffix:
            raise CompletionError("suffix: not supported by clca serve")
        if self.logit_bias:
            raise CompletionError("logit_bias: not supported by clca serve")
        if self.presence_penalty or self.frequency_penalty:
            raise CompletionError("presence_penalty/frequency_penalty: only 0 is supported by clca serve")

    def prompts(self, llm: TokenLevelLLM) -> list[list[int]]:
        p = self.prompt
        if isinstance(p, str):
            batch: list[Any] = [p]
        elif p and all(isinstance(x, int) for x in p):
            batch = [p]
        else:
            batch = list(p)
        if not batch:
            raise CompletionError("prompt: must not be empty")
        out = [llm.encode(x) if isinstance(x, str) else [int(t) for t in x] for x in batch]
        if any(not ids for ids in out):
            raise CompletionError("prompt: an empty prompt has no tokens to complete or score")
        return out


def _tok(llm: TokenLevelLLM, tid: int) -> str:
    return llm.tokenizer.decode([tid])


async def _one(llm: TokenLevelLLM, req: CompletionRequest, ids: list[int], index: int, seed: int) -> dict[str, Any]:
    max_tokens = DEFAULT_COMPLETION_TOKENS if req.max_tokens is None else req.max_tokens
    want_lp = req.logprobs is not None
    k = req.logprobs or 0
    tokens: list[str] = []
    token_lps: list[float | None] = []
    tops: list[dict[str, float] | None] = []
    text = ""
    if req.echo:
        text = llm.tokenizer.decode(ids)
        tokens = [_tok(llm, t) for t in ids]
        token_lps = [None]
        tops = [None]
        if want_lp and len(ids) > 1:
            (scored,) = await llm.score_ids(ids[:1], [ids[1:]], k)
            token_lps += [t.logprob for t in scored]
            tops += [{**dict(t.top[:k]), t.token: t.logprob} if k else {t.token: t.logprob} for t in scored]
        else:
            token_lps += [None] * (len(ids) - 1)
            tops += [None] * (len(ids) - 1)
    finish = "length"
    gen_tokens = 0
    if max_tokens > 0:
        stop = (req.stop,) if isinstance(req.stop, str) else tuple(req.stop or ())
        row = {"max_tokens": max_tokens, "temperature": req.temperature, "top_p": req.top_p, "stop": stop,
               "seed": seed, "sample_index": index, "top_logprobs": k if want_lp else -1}  # fmt: skip
        (out,) = await llm.generate_ids(ids, [row])
        text += out.text
        finish = out.finish_reason
        gen_tokens = len(out.token_ids)
        if want_lp:
            for t in out.logprobs or []:
                tokens.append(t.token)
                token_lps.append(t.logprob)
                tops.append({**dict(t.top[:k]), t.token: t.logprob} if k else {t.token: t.logprob})
    elif not req.echo:
        finish = "length"
    choice: dict[str, Any] = {"index": index, "text": text, "finish_reason": finish, "logprobs": None}
    if want_lp:
        offsets, pos = [], 0
        for t in tokens:
            offsets.append(pos)
            pos += len(t)
        choice["logprobs"] = {"tokens": tokens, "token_logprobs": token_lps, "top_logprobs": tops,
                              "text_offset": offsets}  # fmt: skip
    choice["_usage"] = (len(ids), gen_tokens)
    return choice


async def complete(llm: Any, req: CompletionRequest, name: str, limits: Any = None) -> dict[str, Any]:
    """The response body of one /v1/completions request; `limits` (clca serve's ServeLimits) bound
    max_tokens, n and the prompt length."""
    req.check()
    inner = getattr(llm, "inner", llm)
    if not isinstance(inner, TokenLevelLLM):
        raise CompletionError(f"/v1/completions needs an in-process backend; this server runs {llm.model_id}")
    if limits is not None:
        if req.max_tokens is not None and req.max_tokens > limits.max_tokens_limit:
            raise CompletionError(
                f"max_tokens {req.max_tokens} is over this server's limit of {limits.max_tokens_limit} "
                "(--max-tokens-limit)"
            )
        if req.n > limits.max_n:
            raise CompletionError(f"n {req.n} is over this server's limit of {limits.max_n} completions per request")
    prompts = await asyncio.to_thread(req.prompts, inner)  # tokenizing is CPU work: off the event loop
    if limits is not None and max(len(ids) for ids in prompts) > limits.max_prompt_tokens:
        longest = max(len(ids) for ids in prompts)
        raise CompletionError(
            f"prompt: {longest} tokens, over this server's limit of {limits.max_prompt_tokens} (--max-prompt-tokens)"
        )
    base = req.seed if req.seed is not None else int.from_bytes(os.urandom(4), "little")
    jobs = [_one(inner, req, ids, pi * req.n + j, base + j) for pi, ids in enumerate(prompts) for j in range(req.n)]
    choices = await asyncio.gather(*jobs)
    prompt_tokens = sum(len(ids) for ids in prompts)
    completion_tokens = sum(c.pop("_usage")[1] for c in choices)
    return {
        "id": f"cmpl-{uuid.uuid4().hex}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": name,
        "choices": choices,
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }  # fmt: skip
