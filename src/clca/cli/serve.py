"""`clca serve` (a backend as an OpenAI-compatible server), `clca chat` (one request), `clca check`."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import typer
from pydantic import BaseModel, Field

from ..llm import ServeLimits

SERVE_DEFAULTS = ServeLimits()  # the limits' defaults live in ServeLimits, not here
MODEL_HELP = "Model string: embedded, embedded+lora:DIR, hf:PATH[+lora:DIR], openai:MODEL@URL[,URL...], mock."


class ChatAnswer(BaseModel):
    """The schema `clca chat --json` and `clca check` ask for."""

    answer: str = Field(max_length=40, description="a short answer")
    confidence: int = Field(ge=0, le=100, description="how sure the model is, 0-100")


def _cache_arg(no_cache: bool, cache: Path | None) -> bool | Path:
    if no_cache:
        return False
    return cache if cache is not None else True


def _split_options(options: str) -> list[str]:
    from ..errors import ConfigError

    opts = [o.strip() for o in options.split("|")]
    if len(opts) < 2 or any(not o for o in opts):
        raise ConfigError(f"--options {options!r}: give two or more non-empty options separated by '|'")
    dup = next((o for i, o in enumerate(opts) if o in opts[:i]), None)
    if dup is not None:
        raise ConfigError(f"--options {options!r}: option {dup!r} is given twice")
    return opts


async def _chat(
    spec: str,
    prompt: str,
    as_json: bool,
    options: list[str] | None,
    params: Any,
    cache: bool | Path,
    verbose: bool = False,
) -> None:
    from ..llm import load_model

    llm = load_model(spec, cache=cache)
    try:
        await _ask(llm, prompt, as_json, options, params)
    finally:
        if verbose:
            _print_server(llm)


def _print_server(llm: Any) -> None:
    from ..llm import capability_records

    for rec in capability_records(llm):
        refused = "; ".join(f"{k}: {v}" for k, v in rec["refused"].items()) or "nothing"
        template = f" (chat template: {rec['chat_template']})" if rec["chat_template"] else ""
        structured, scoring = rec["structured"] or "not probed", rec["scoring"] or "not probed"
        typer.echo(
            f"server {', '.join(rec['base_urls'])} model {rec['model']}: structured output {structured}, "
            f"scoring {scoring}{template}; refused: {refused}",
            err=True,
        )


async def _ask(llm: Any, prompt: str, as_json: bool, options: list[str] | None, params: Any) -> None:
    try:
        messages = [{"role": "user", "content": prompt}]
        if options is not None:
            probs = await llm.score_options(messages, options)  # type: ignore[arg-type]
            width = max(len(o) for o in options)
            for o, p in zip(options, probs, strict=True):
                typer.echo(f"{o:<{width}}  {p:.4f}")
        elif as_json:
            obj = await llm.structured(messages, ChatAnswer, params)  # type: ignore[arg-type]
            typer.echo(obj.model_dump_json())
        else:
            res = await llm.chat(messages, params)  # type: ignore[arg-type]
            typer.echo(res.text)
    finally:
        await llm.aclose()


async def _demo(spec: str, cache: bool | Path, max_tokens: int) -> None:
    import time

    from ..llm import GenParams, load_model
    from ..prompts import render

    t0 = time.perf_counter()
    llm = load_model(spec, cache=cache)
    params = GenParams(max_tokens=max_tokens)
    try:
        typer.echo(f"model: {llm.model_id}")
        q = render("demo_chat")
        res = await llm.chat([{"role": "user", "content": q}], params)
        typer.echo(f"\n[chat] {q}\n{res.text.strip()}")
        q = render("demo_structured")
        obj = await llm.structured([{"role": "user", "content": q}], ChatAnswer, GenParams(max_tokens=96))
        typer.echo(f"\n[structured] {q}\n{obj.model_dump_json()}")
        opts = ["Yes", "No"]
        q = render("demo_options", options=opts)
        probs = await llm.score_options([{"role": "user", "content": q}], opts)
        typer.echo(f"\n[options] {q}")
        for o, p in zip(opts, probs, strict=True):
            typer.echo(f"  {o:<4} {p:.4f}")
        stats = getattr(llm, "stats", None)
        cache_note = f", cache hits {stats.hits}/{stats.hits + stats.misses}" if hasattr(stats, "hits") else ""
        typer.echo(f"\ndone in {time.perf_counter() - t0:.1f}s{cache_note}")
    finally:
        await llm.aclose()


def register(app: typer.Typer) -> None:
    """Attach `serve`, `chat` and `check` to the root app."""

    @app.command("serve")
    def serve(
        model: str = typer.Option("embedded", "--model", "-m", help=MODEL_HELP),
        host: str = typer.Option("127.0.0.1", help="Interface to listen on (default: loopback only)."),
        port: int = typer.Option(8000, min=0, max=65535, help="TCP port."),
        served_model_name: str | None = typer.Option(
            None, help="Model name clients must send (default: the backend's model id)."
        ),
        cache: Path | None = typer.Option(None, help="Answer repeated requests from this SQLite response cache."),
        max_tokens_limit: int = typer.Option(
            SERVE_DEFAULTS.max_tokens_limit, min=1, help="Most tokens one completion may ask for."
        ),
        max_prompt_tokens: int = typer.Option(
            SERVE_DEFAULTS.max_prompt_tokens, min=1, help="Most prompt tokens of one request."
        ),
        max_body_mb: float = typer.Option(SERVE_DEFAULTS.max_body_mb, min=0.001, help="Largest request body in MB."),
        max_n: int = typer.Option(SERVE_DEFAULTS.max_n, min=1, help="Most completions (n) per request."),
        api_key_env: str | None = typer.Option(
            None,
            "--api-key-env",
            help="Require `Authorization: Bearer KEY` with KEY read from this environment variable "
            "(default: CLCA_SERVE_API_KEY when it is set; no auth otherwise).",
        ),
    ) -> None:
        """Serve a model as an OpenAI-compatible API (/v1/models, /v1/chat/completions)."""
        import os

        from ..errors import ConfigError
        from ..llm import ServeLimits, is_loopback, load_model, run_server

        env = api_key_env or "CLCA_SERVE_API_KEY"
        key = os.environ.get(env) or None
        if api_key_env and key is None:
            raise ConfigError(f"--api-key-env {api_key_env}: the environment variable is not set or empty")
        limits = ServeLimits(max_tokens_limit=max_tokens_limit, max_prompt_tokens=max_prompt_tokens,
                             max_body_mb=max_body_mb, max_n=max_n, api_key=key)  # fmt: skip
        llm = load_model(model, cache=cache if cache is not None else False)
        name = served_model_name or llm.model_id
        if not is_loopback(f"http://{host}/") and key is None:
            typer.echo(f"warning: listening on {host}: anyone who can reach it can use the model (no auth)", err=True)
        auth = f"; API key from ${env}" if key else ""
        typer.echo(f"serving {llm.model_id} as {name!r} at http://{host}:{port}/v1{auth}", err=True)
        run_server(llm, host=host, port=port, served_name=name, limits=limits)

    @app.command("chat")
    def chat(
        prompt: str = typer.Argument(..., help="The user message."),
        model: str = typer.Option("embedded", "--model", "-m", help=MODEL_HELP),
        as_json: bool = typer.Option(False, "--json", help="Ask for a JSON object {answer, confidence}."),
        options: str | None = typer.Option(None, help="Score options instead, e.g. 'yes|no|maybe'."),
        max_tokens: int = typer.Option(128, min=1, help="Most tokens to generate."),
        temperature: float = typer.Option(0.0, min=0.0, help="0 = greedy."),
        seed: int | None = typer.Option(None, help="Sampling seed."),
        no_cache: bool = typer.Option(False, "--no-cache", help="Do not use the response cache."),
        cache: Path | None = typer.Option(None, help="Response cache file (default: the shared cache)."),
        verbose: bool = typer.Option(
            False, "--verbose", "-v", help="Also print what an openai: server accepted (structured form, scoring)."
        ),
    ) -> None:
        """Send one message to a model and print its reply (or a JSON answer, or option probabilities)."""
        from ..llm import GenParams

        opts = _split_options(options) if options is not None else None
        params = GenParams(temperature=temperature, max_tokens=max_tokens, seed=seed)
        asyncio.run(_chat(model, prompt, as_json, opts, params, _cache_arg(no_cache, cache), verbose))

    @app.command("check")
    def check(
        model: str = typer.Option("embedded", "--model", "-m", help=MODEL_HELP),
        max_tokens: int = typer.Option(32, min=1, help="Most tokens of the chat answer."),
        no_cache: bool = typer.Option(False, "--no-cache", help="Do not use the response cache."),
    ) -> None:
        """Check the foundation: a chat answer, a JSON answer and an option distribution from a model."""
        asyncio.run(_demo(model, _cache_arg(no_cache, None), max_tokens))
