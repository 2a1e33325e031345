"""In-process backend for local Hugging Face causal LMs (the embedded model, `hf:PATH`, optional LoRA).

The model loads lazily in the batcher's worker thread on first use; constructing an `HFModel`
only checks paths and computes `model_id`. All requests go through one `Batcher`, so concurrent
coroutines share padded batches.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ...errors import ModelStringError
from .._protocol import ChatResult, GenParams, Message, T, TokenLogprob
from .._spec import ModelSpec
from ..engine import Batcher
from ._scoring import normalise

if TYPE_CHECKING:
    from ..engine import Engine, GenOut, GenRow, ScoreJob

_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "chat_template.jinja")


def _files_hash(paths: list[Path], content: bool = False) -> str:
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(p.name.encode())
        if content:
            with p.open("rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
        else:
            h.update(str(p.stat().st_size).encode())
    return h.hexdigest()[:12]


def _check_model_dir(path: Path, spec: str) -> None:
    if not path.is_dir():
        raise ModelStringError(f"model directory not found: {path} (from model string {spec!r})")
    if not (path / "config.json").is_file():
        raise ModelStringError(f"{path} has no config.json; expected a Hugging Face model directory ({spec!r})")
    if not list(path.glob("*.safetensors")):
        raise ModelStringError(f"{path} has no *.safetensors weights; only safetensors are loaded ({spec!r})")


def _check_adapter_dir(path: Path, spec: str) -> None:
    if not path.is_dir():
        raise ModelStringError(f"LoRA adapter directory not found: {path} (from model string {spec!r})")
    if not (path / "adapter_config.json").is_file():
        raise ModelStringError(f"{path} has no adapter_config.json; expected a PEFT adapter directory ({spec!r})")
    if not (path / "adapter_model.safetensors").is_file():
        raise ModelStringError(f"{path} has no adapter_model.safetensors ({spec!r})")


class HFOptions(BaseModel):
    """Options of the in-process backend, from keyword arguments or a model string's `?key=value&...`."""

    model_config = ConfigDict(extra="forbid")

    device: str | None = None
    dtype: Literal["bfloat16", "float16", "float32"] | None = None
    max_batch: int = Field(32, ge=1)
    max_batch_tokens: int = Field(65536, ge=1)
    max_kv_mb: int | None = Field(None, ge=1)
    prefix_cache_mb: int | None = Field(None, ge=0)
    ignore_eos: bool = False
    torch_threads: int | None = Field(None, ge=1)


def build(spec: ModelSpec, options: dict[str, Any]) -> HFModel:
    """The `embedded` and `hf:` model strings (the factory `_spec.BACKENDS` names)."""
    return HFModel.from_spec(spec, **options)


def check(spec: ModelSpec) -> None:
    """The options of an `embedded`/`hf:` string, checked without touching the disk."""
    spec.options_as(HFOptions)


class HFModel:
    """A local causal LM run in-process with dynamic batching. Implements `LLM` and `LogprobLLM`.

    Options (keyword arguments of `load_model` / `from_spec`):
      device: "cuda", "cuda:1", "cpu", ... (default: cuda when available, else cpu)
      dtype: "bfloat16", "float16", "float32" (default: bfloat16 on GPU, float32 on CPU)
      max_batch: most rows decoded together (default 32)
      max_batch_tokens: bound on rows x (prompt + max_tokens) tokens in one batch (default 65536); the
          memory budget lowers it (`engine/_budget.py`)
      max_kv_mb: memory budget of all the KV the engine holds, MiB: the prefix cache and every batch
          (default: from the available memory when the model loads, printed then; see `engine/_budget.py`)
      prefix_cache_mb: the prompt-prefix KV cache's part of it, MiB, at most (default: half the budget;
          0 disables the cache)
      ignore_eos: keep generating past end-of-sequence until max_tokens (benchmarks only)
      torch_threads: torch intra-op threads (default: torch's own choice)
    """

    def __init__(
        self,
        model_dir: Path | None,
        adapter_dir: Path | None = None,
        *,
        device: str | None = None,
        dtype: str | None = None,
        max_batch: int = 32,
        max_batch_tokens: int = 65536,
        max_kv_mb: int | None = None,
        prefix_cache_mb: int | None = None,
        ignore_eos: bool = False,
        torch_threads: int | None = None,
    ) -> None:
        self._model_dir = model_dir  # None = the embedded model, resolved (and converted) on first use
        self._adapter_dir = adapter_dir
        self._device, self._dtype = device, dtype
        self._prefix_cache_mb = prefix_cache_mb
        self._max_kv_mb = max_kv_mb
        self.ignore_eos = ignore_eos
        self._torch_threads = torch_threads
        if model_dir is None:
            from .._embedded import EMBEDDED_NAME

            mid = f"embedded:{EMBEDDED_NAME}"
        else:
            files = [p for p in model_dir.iterdir() if p.suffix in (".json", ".safetensors") and p.is_file()]
            mid = f"hf:{model_dir}#{_files_hash(files)}"
        if adapter_dir is not None:
            mid += f"+lora:{adapter_dir}#{_files_hash([adapter_dir / 'adapter_model.safetensors'], content=True)}"
        if dtype is not None:  # the weights' precision changes outputs, so it is part of the identity
            mid += f";dtype={dtype}"
        self._model_id = mid
        self._engine: Engine | None = None
        self._tokenizer: Any = None
        self._tokenizer_lock = threading.Lock()  # first use may come from several server threads at once
        self.batcher = Batcher(
            self._load,
            self._run_gen,
            self._run_score,
            max_batch=max_batch,
            max_batch_tokens=max_batch_tokens,
            decode=self._run_decode,
        )

    @classmethod
    def from_spec(cls, spec: str | ModelSpec, **options: Any) -> HFModel:
        """'embedded', 'embedded+lora:DIR', 'hf:PATH' or 'hf:PATH+lora:DIR', each with optional
        '?key=value&...' options (`HFOptions`; keyword options win over the string's)."""
        parsed = spec if isinstance(spec, ModelSpec) else ModelSpec.parse(spec)
        text = parsed.format()
        if not parsed.is_local:
            raise ModelStringError(f"cannot parse model string {text!r}; expected 'embedded[+lora:DIR]' or 'hf:PATH'")
        opts = parsed.options_as(HFOptions, **options)
        adapter = None
        if parsed.adapter is not None:
            adapter = Path(parsed.adapter).expanduser().resolve()
            _check_adapter_dir(adapter, text)
        model_dir = None  # the embedded model
        if parsed.kind == "hf":
            model_dir = Path(parsed.base).expanduser().resolve()
            _check_model_dir(model_dir, text)
        return cls(model_dir, adapter, **opts.model_dump())

    @property
    def model_id(self) -> str:
        return self._model_id

    # ------------------------------------------------------------------------------------------ loading

    def _resolved_dir(self) -> Path:
        if self._model_dir is not None:
            return self._model_dir
        from .._embedded import embedded_model_dir

        return embedded_model_dir()

    @property
    def tokenizer(self) -> Any:
        """The tokenizer (loaded on first use, without the model weights)."""
        if self._tokenizer is None:
            with self._tokenizer_lock:  # transformers' lazy imports are not safe to race
                if self._tokenizer is None:
                    from transformers import AutoTokenizer

                    tok = AutoTokenizer.from_pretrained(str(self._resolved_dir()))
                    if not getattr(tok, "chat_template", None):
                        raise ModelStringError(f"the model at {self._resolved_dir()} has no chat template")
                    self._tokenizer = tok
        return self._tokenizer

    def _load(self) -> None:  # runs in the worker thread
        if self._engine is not None:
            return
        import torch

        from ..engine import Engine

        if self._torch_threads:
            torch.set_num_threads(self._torch_threads)
        self._engine = Engine(
            self._resolved_dir(),
            self._adapter_dir,
            device=self._device,
            dtype=self._dtype,
            prefix_cache_mb=self._prefix_cache_mb,
            max_kv_mb=self._max_kv_mb,
        )
        from ..engine import announce

        budget = self._engine.budget
        self.batcher.max_batch_tokens = min(self.batcher.max_batch_tokens, budget.batch_tokens)
        announce(budget)

    @property
    def engine(self) -> Engine:
        """The loaded engine (loads it synchronously if no request has done so yet)."""
        self._load()
        assert self._engine is not None
        return self._engine

    def _run_gen(self, rows: list[GenRow]) -> list[GenOut]:
        assert self._engine is not None
        return self._engine.generate(rows)

    def _run_decode(self, first: list[Any], done: Any, admit: Any, cancelled: Any) -> None:
        assert self._engine is not None
        self._engine.decode(first, done, admit, cancelled)

    def _run_score(self, jobs: list[ScoreJob]) -> list[list[list[TokenLogprob]]]:
        assert self._engine is not None
        return self._engine.score(jobs)

    # ------------------------------------------------------------------------------------------ encoding

    def prompt_text(self, messages: Sequence[Message]) -> str:
        """The chat-template text that precedes the assistant's reply."""
        if not messages:
            raise ValueError("messages must not be empty")
        if messages[-1]["role"] == "assistant":  # a prefilled reply: the model continues it
            return self.tokenizer.apply_chat_template(list(messages), continue_final_message=True, tokenize=False)
        return self.tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=False)

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    # ------------------------------------------------------------------------------------------ internal API

    async def generate_ids(self, prompt_ids: list[int], rows: list[dict[str, Any]]) -> list[GenOut]:
        """Generate one row per dict of GenRow options after the given prompt (used by chat and guided decoding)."""
        from ..engine import GenRow

        gen_rows = [GenRow(prompt_ids=prompt_ids, **{"ignore_eos": self.ignore_eos, **r}) for r in rows]
        costs = [len(prompt_ids) + r.max_tokens for r in gen_rows]
        return await self.batcher.submit_gen(gen_rows, costs)

    async def score_ids(
        self, prompt_ids: list[int], continuations: list[list[int]], top_logprobs: int = 0
    ) -> list[list[TokenLogprob]]:
        from ..engine import ScoreJob

        job = ScoreJob(prompt_ids, continuations, top_logprobs)
        cost = len(prompt_ids) + sum(len(c) for c in continuations)  # the KV of one row: prompt, then branches
        return await self.batcher.submit_score(job, cost)

    # ------------------------------------------------------------------------------------------ LLM protocol

    async def chat(self, messages: Sequence[Message], params: GenParams = GenParams()) -> ChatResult:
        prompt = self.encode(self.prompt_text(messages))
        seed = params.seed if params.seed is not None else int.from_bytes(os.urandom(8), "little") >> 1
        rows = [
            {
                "max_tokens": params.max_tokens,
                "temperature": params.temperature,
                "top_p": params.top_p,
                "stop": tuple(params.stop),
                "seed": seed,
                "sample_index": i,
            }
            for i in range(max(params.n, 1))
        ]
        outs = await self.generate_ids(prompt, rows)
        return ChatResult(
            texts=[o.text for o in outs],
            prompt_tokens=len(prompt),
            completion_tokens=sum(len(o.token_ids) for o in outs),
            finish_reasons=[o.finish_reason for o in outs],
        )

    async def structured(
        self,
        messages: Sequence[Message],
        schema: type[T],
        params: GenParams = GenParams(),
        max_attempts: int = 3,
    ) -> T:
        from ..structured import guided_structured

        return await guided_structured(self, messages, schema, params, max_attempts)

    async def score_options(self, messages: Sequence[Message], options: Sequence[str]) -> list[float]:
        """P(option) ∝ exp(sum of the option's token logprobs as the start of the reply), normalised."""
        if not options:
            raise ValueError("options must not be empty")
        prompt = self.encode(self.prompt_text(messages))
        conts = [self.encode(o) for o in options]
        if any(not c for c in conts):
            raise ValueError("options must be non-empty strings")
        lps = await self.score_ids(prompt, conts)
        return normalise([sum(t.logprob for t in toks) for toks in lps])

    async def aclose(self) -> None:
        self.batcher.close()

    # ------------------------------------------------------------------------------------------ LogprobLLM

    async def generate_with_logprobs(
        self, messages: Sequence[Message], params: GenParams, top_logprobs: int
    ) -> tuple[str, list[TokenLogprob]]:
        prompt = self.encode(self.prompt_text(messages))
        seed = params.seed if params.seed is not None else int.from_bytes(os.urandom(8), "little") >> 1
        row = {
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "stop": tuple(params.stop),
            "seed": seed,
            "top_logprobs": max(top_logprobs, 0),
        }
        (out,) = await self.generate_ids(prompt, [row])
        return out.text, list(out.logprobs or [])

    async def continuation_logprobs(
        self, messages: Sequence[Message], continuation: str, top_logprobs: int = 0
    ) -> list[TokenLogprob]:
        prompt = self.encode(self.prompt_text(messages))
        (toks,) = await self.score_ids(prompt, [self.encode(continuation)], top_logprobs)
        return toks
