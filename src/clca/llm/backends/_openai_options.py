"""Option scoring of the `openai:` backend: vLLM prompt_logprobs -> /v1/completions echo over clca's
rendering of the chat template -> first-token top_logprobs. The first call probes the paths in that
order; what worked is remembered per server (`_capabilities`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from ...errors import BackendError, UnsupportedError
from .._protocol import Message
from ._capabilities import SCORING_ORDER, ScoringPath, ServerCapabilities
from ._openai_config import OpenAIConfig
from ._openai_replicas import HTTPStatusError, LoopLocks, ReplicaPool
from ._openai_scoring import echo_option_logprob, first_token_logprobs, option_logprob
from ._scoring import normalise

log = logging.getLogger("clca.llm.openai")

TOP_K = 20


class NoField(Exception):
    """The server answered but without the logprob field asked for."""


class OptionScorer:
    """`score_options` of one `openai:` model, over its replica pool."""

    def __init__(
        self, config: OpenAIConfig, pool: ReplicaPool, capabilities: ServerCapabilities, locks: LoopLocks, key: str
    ) -> None:
        self.config = config
        self.pool = pool
        self.capabilities = capabilities
        self._locks = locks
        self._key = key
        # an explicit setting holds for this model only; the shared record keeps what the server was found to do
        self.forced: ScoringPath | None = None if config.scoring == "auto" else config.scoring
        self._template: tuple[str, dict[str, str]] | None | bool = False  # False: not looked up yet

    @property
    def model_id(self) -> str:
        return self.pool.model_id

    async def score(self, messages: Sequence[Message], options: Sequence[str]) -> list[float]:
        """Normalised probability of each option as the assistant's whole answer (see `OpenAIModel.score_options`)."""
        if not options:
            raise ValueError("score_options needs at least one option")
        if any(not o.strip() for o in options):
            raise ValueError("score_options: options must be non-empty strings")
        caps = self.capabilities
        path = self.forced or caps.scoring
        if path is None:
            async with self._locks("scoring"):  # the first call finds the path; the others wait for it
                if caps.scoring is None:
                    return await self._probe(messages, options)
            path = caps.scoring
        if path == "completions_echo" and self.forced is None and await self.chat_template() is None:
            # the server's record came from a client that knew the chat template; this one does not, so
            # it takes the next path (for this model only; the shared record stays)
            if "top_logprobs" in caps.refused:
                raise self._no_scoring()
            path = self.forced = "top_logprobs"
        if path == "none":
            raise self._no_scoring()
        try:
            return await self._score_by(path, messages, options)
        except NoField as e:
            raise UnsupportedError(
                f"{self.model_id} at {self.pool.where()}: scoring={path} but the server returned {e}"
            ) from None

    async def _score_by(self, path: ScoringPath, messages: Sequence[Message], options: Sequence[str]) -> list[float]:
        if path == "prompt_logprobs":
            return normalise(await _each(options, lambda o: self._score_prompt(messages, o)))
        if path == "completions_echo":
            return normalise(await self._score_echo(messages, options))
        return normalise(self._map_top(await self._first_token_top(messages), options))

    async def _probe(self, messages: Sequence[Message], options: Sequence[str]) -> list[float]:
        caps = self.capabilities
        for path in SCORING_ORDER:
            if path == "completions_echo" and await self.chat_template() is None:
                caps.refused[path] = f"no chat template known (chat_template={self.config.chat_template})"
                continue
            try:
                if path == "top_logprobs":
                    top = await self._first_token_top(messages)
                    self._set_path(path)  # the path works; options sharing a first token are refused below
                    return normalise(self._map_top(top, options))
                probs = await self._score_by(path, messages, options)
            except (NoField, HTTPStatusError) as e:
                if isinstance(e, HTTPStatusError) and e.refused is None:
                    raise
                caps.refused[path] = _why(e)
                log.info("%s at %s: scoring path %s unavailable (%s)", self.model_id, self.pool.where(), path, e)
                continue
            self._set_path(path)
            return probs
        caps.scoring = "none"
        raise self._no_scoring()

    def _no_scoring(self) -> UnsupportedError:
        why = "; ".join(f"{k}: {v}" for k, v in self.capabilities.refused.items() if k in SCORING_ORDER)
        return UnsupportedError(
            f"{self.model_id} at {self.pool.where()} offers neither vLLM prompt_logprobs nor top_logprobs (nor "
            f"/v1/completions echo with a known chat template); option scoring needs one of them ({why})"
        )

    async def _score_prompt(self, messages: Sequence[Message], option: str) -> float:
        body = {
            "messages": [dict(m) for m in messages] + [{"role": "assistant", "content": option}],
            "temperature": 0.0,
            "max_tokens": 1,
            "extra_body": {"add_generation_prompt": False, "continue_final_message": True, "prompt_logprobs": 0},
        }
        data = await self.pool.request(body)
        plps = data.get("prompt_logprobs")
        if not isinstance(plps, list) or not plps:
            raise NoField("no prompt_logprobs in the response")
        return option_logprob(plps, option)

    async def _score_echo(self, messages: Sequence[Message], options: Sequence[str]) -> list[float]:
        from ._chat_template import render_prompt

        tpl = await self.chat_template()
        if tpl is None:
            raise NoField("no chat template known for the completions echo path")
        prefix = render_prompt(tpl[0], tpl[1], [dict(m) for m in messages])

        async def one(option: str) -> float:
            text = prefix + option
            body = {"prompt": text, "max_tokens": 1, "temperature": 0.0, "echo": True, "logprobs": 1}
            data = await self.pool.request(body, endpoint="completions")
            lp = (data["choices"][0] or {}).get("logprobs")
            if not isinstance(lp, dict) or not lp.get("tokens"):
                raise NoField("no echoed logprobs in the /v1/completions response")
            usage = data.get("usage")
            done = usage.get("completion_tokens") if isinstance(usage, dict) else None
            generated = done if isinstance(done, int) else None
            return echo_option_logprob(lp, len(prefix), len(text), text=text, generated=generated)

        return await _each(options, one)

    async def chat_template(self) -> tuple[str, dict[str, str]] | None:
        """The chat template of the echo path (see `_chat_template`); looked up once."""
        if self._template is not False:
            return self._template  # type: ignore[return-value]
        from ._chat_template import load_template, server_template

        source = self.config.chat_template
        tpl = load_template(source)
        where = source
        if tpl is None and source == "auto":
            tpl = await server_template(self.config.base_urls[0], self._key, self.config.timeout)
            where = "server /props"
        self._template = tpl
        if tpl is not None:
            self.capabilities.chat_template = where
        return tpl

    async def _first_token_top(self, messages: Sequence[Message]) -> list[tuple[str, float]]:
        body = {
            "messages": [dict(m) for m in messages],
            "temperature": 0.0,
            "max_tokens": 1,
            "logprobs": True,
            "top_logprobs": TOP_K,
        }
        data = await self.pool.request(body)
        try:
            first = data["choices"][0]["logprobs"]["content"][0]
            top = [(str(t["token"]), float(t["logprob"])) for t in first["top_logprobs"]]
        except (KeyError, IndexError, TypeError, ValueError):
            raise NoField("no top_logprobs in the response") from None
        if not top:
            raise NoField("empty top_logprobs in the response")
        return top

    def _map_top(self, top: list[tuple[str, float]], options: Sequence[str]) -> list[float]:
        logps, owners = first_token_logprobs(top, options)
        dup = [t for t, os_ in owners.items() if len(os_) > 1]
        if dup:
            raise UnsupportedError(
                f"top_logprobs scoring needs options with distinct first tokens; options {owners[dup[0]]} all start "
                f"with token {dup[0]!r} (use a vLLM server, whose prompt_logprobs score whole options, or a server "
                "with /v1/completions echo and ?chat_template=embedded|DIR so clca can render the prompt)"
            )
        if all(lp == float("-inf") for lp in logps):
            raise BackendError(f"{self.model_id}: none of the options {list(options)} is among the top-{TOP_K} tokens")
        missing = [o for o, lp in zip(options, logps, strict=True) if lp == float("-inf")]
        if missing:
            log.warning("options %s are not among the top-%d first tokens; their probability is 0", missing, TOP_K)
        return logps

    def _set_path(self, path: ScoringPath) -> None:
        if self.capabilities.scoring != path:
            log.info("%s: option scoring uses %s", self.model_id, path)
        self.capabilities.scoring = path


async def _each(options: Sequence[str], one: Callable[[str], Awaitable[float]]) -> list[float]:
    """One request per option, concurrently; the first error is raised after all have finished."""
    results = await asyncio.gather(*(one(o) for o in options), return_exceptions=True)
    for r in results:
        if isinstance(r, BaseException):
            raise r
    return [float(r) for r in results]  # type: ignore[arg-type]


def _why(e: Exception) -> str:
    if isinstance(e, HTTPStatusError) and e.refused is not None:
        return f"HTTP {e.status}: {e.refused.message[:160]}"
    return str(e)[:200]
