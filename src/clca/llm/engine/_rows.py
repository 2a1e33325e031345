"""Requests and results as the in-process engine sees them (token ids, not messages), and its time counters."""

from __future__ import annotations

from dataclasses import dataclass

from .._protocol import TokenLogprob


@dataclass
class GenRow:
    """One sequence to generate. A chat request with n samples becomes n rows."""

    prompt_ids: list[int]
    max_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int = 0
    sample_index: int = 0
    top_logprobs: int = -1  # -1: no logprobs; 0: logprob of the chosen token only; k: plus top-k alternatives
    allowed_ids: list[int] | None = None  # if set, only these tokens may be chosen (constrained decoding)
    banned_first_ids: list[int] | None = None  # tokens that may not be chosen at the first step
    ignore_eos: bool = False


@dataclass
class GenOut:
    text: str
    token_ids: list[int]
    finish_reason: str  # "stop" (EOS or stop string) | "length"
    prompt_tokens: int
    logprobs: list[TokenLogprob] | None = None


@dataclass
class ScoreJob:
    """Per-token logprobs of each continuation after one shared prompt."""

    prompt_ids: list[int]
    continuations: list[list[int]]
    top_logprobs: int = 0


@dataclass
class EngineStats:
    """Where the worker's time goes (seconds and counts since load; benchmarks print differences)."""

    busy_s: float = 0.0  # inside generate() / score()
    prefill_s: float = 0.0  # prompt forwards (incl. assembling cached prefixes)
    prefill_batches: int = 0
    prefill_rows: int = 0
    cache_s: float = 0.0  # prefix-cache lookups and stores
    decode_s: float = 0.0  # decoding forwards + choosing tokens
    decode_steps: int = 0
    decode_row_steps: int = 0  # sum over steps of the rows decoded (mean batch = this / steps)
    generated_tokens: int = 0
    join_s: float = 0.0  # adding rows to a running decoding batch (copying KV), beyond their prompts
    cancelled_rows: int = 0  # rows that left a running batch because their caller was gone
    score_extra_s: float = 0.0  # continuation tokens beyond the first of scored options
    gen_calls: int = 0
    gen_rows: int = 0
    score_calls: int = 0
    score_jobs: int = 0

    def copy(self) -> EngineStats:
        return EngineStats(**self.__dict__)

    def minus(self, before: EngineStats) -> EngineStats:
        return EngineStats(**{k: v - getattr(before, k) for k, v in self.__dict__.items()})
