"""Pure helpers of the `openai:` backend's option scoring (unit-tested directly).

- `option_logprob`: vLLM `prompt_logprobs` of an option sent as a continued assistant message;
- `echo_option_logprob`: `/v1/completions` with `echo` + `logprobs` over clca's rendering of the prompt;
- `first_token_logprobs`: the first generated token's top alternatives (first-token scoring only).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ...errors import BackendError


def option_logprob(prompt_logprobs: list[Any], option: str) -> float:
    """Sum of the logprobs of the trailing prompt tokens that spell `option` (vLLM response shape).

    `prompt_logprobs` holds one entry per prompt token: None (first token, or a token the server
    did not score) or a dict token_id -> {"logprob", "rank", "decoded_token"}; with prompt_logprobs=0
    the dict holds the prompt token itself.
    """
    want = option.strip()
    acc, total = "", 0.0
    for entry in reversed(prompt_logprobs):
        if not isinstance(entry, dict) or not entry:
            break
        info = next(iter(entry.values()))
        try:
            acc = str(info.get("decoded_token") or "") + acc
            total += float(info["logprob"])
        except (AttributeError, KeyError, TypeError, ValueError):
            raise BackendError("malformed prompt_logprobs entry in the server response") from None
        if len(acc.lstrip()) >= len(want):
            break
    if not acc.strip().endswith(want):
        raise BackendError(
            f"the prompt tokens do not end with the option {option!r} (got {acc[-40:]!r}); the server's chat "
            "template may not support continue_final_message"
        )
    return total


def first_token_logprobs(
    top: list[tuple[str, float]], options: Sequence[str]
) -> tuple[list[float], dict[str, list[str]]]:
    """Map each option to its first token among the top alternatives.

    An option's token is the top token equal to the option, else equal to it after stripping
    whitespace, else the longest top token (stripped) that the option starts with. Returns the
    log-probabilities (-inf where no token matches) and token -> options that map to it.
    """
    logps: list[float] = []
    owners: dict[str, list[str]] = {}
    for opt in options:
        s = opt.strip()
        exact = [(t, lp) for t, lp in top if t == opt]
        stripped = [(t, lp) for t, lp in top if t.strip() == s]
        prefix = sorted(
            ((t, lp) for t, lp in top if t.strip() and s.startswith(t.strip())), key=lambda x: -len(x[0].strip())
        )
        found = exact or stripped or prefix
        if not found:
            logps.append(-math.inf)
            continue
        tok, lp = max(found, key=lambda x: x[1]) if (exact or stripped) else found[0]
        logps.append(lp)
        owners.setdefault(tok.strip(), []).append(opt)
    return logps, owners


def echo_option_logprob(
    logprobs: Any, prefix_len: int, end: int, *, text: str | None = None, generated: int | None = None
) -> float:
    """Sum of the logprobs of the echoed prompt tokens in text[prefix_len:end] (the option).

    `logprobs` is the legacy completions shape: `tokens`, `token_logprobs` and `text_offset` (character
    offsets into the echoed text). Offsets are used when they start at 0 and, given the prompt `text`,
    when the token texts spell it; otherwise they are rebuilt from the token texts. Servers that drop
    the text of special tokens from the echo (llama-cpp-python renders `<|im_start|>` as '' and offsets
    into that shorter text) are read from the end instead: the last prompt tokens (all but the
    `generated` ones, from `usage.completion_tokens`) must spell the option. A token that straddles the
    start of the option (the tokenizer merged it with the prompt) cannot be split, so that is an error.
    """
    try:
        tokens = [str(t) for t in logprobs["tokens"]]
        lps = list(logprobs["token_logprobs"])
        offsets = logprobs.get("text_offset")
    except (KeyError, TypeError, AttributeError):
        raise BackendError("no echoed prompt logprobs (tokens/token_logprobs) in the completions response") from None
    if not tokens or len(lps) != len(tokens):
        raise BackendError("malformed echoed logprobs in the completions response")
    if text is not None and not "".join(tokens).startswith(text[:end]):
        return _echo_from_end(tokens, lps, text[prefix_len:end], generated)
    if not isinstance(offsets, list) or len(offsets) != len(tokens) or not offsets or offsets[0] != 0:
        offsets, pos = [], 0
        for t in tokens:
            offsets.append(pos)
            pos += len(t)
    total, found = 0.0, 0
    for tok, lp, off in zip(tokens, lps, offsets, strict=True):
        off = int(off)
        if off < prefix_len < off + len(tok):
            raise _merged(tok)
        if prefix_len <= off < end:
            if lp is None:
                raise BackendError("an echoed option token has no logprob")
            total += float(lp)
            found += 1
    if not found:
        raise BackendError("the echoed prompt holds no token of the option (does the server echo the prompt?)")
    return total


def _merged(tok: str) -> BackendError:
    return BackendError(
        f"the server's tokenizer merged the option's first characters with the prompt (token {tok!r}); "
        "whole-option echo scoring cannot split it"
    )


def _echo_from_end(tokens: list[str], lps: list[Any], option: str, generated: int | None) -> float:
    """The option's logprob read backwards from the last prompt token (see `echo_option_logprob`)."""
    if generated is None or not 0 <= generated < len(tokens):
        raise BackendError(
            "the echoed tokens do not spell the prompt and the response has no usage.completion_tokens; "
            "cannot tell the option's tokens from the generated ones"
        )
    acc, total, tok = "", 0.0, ""
    for tok, lp in zip(reversed(tokens[: len(tokens) - generated]), reversed(lps[: len(lps) - generated]), strict=True):
        if lp is None:
            raise BackendError("an echoed option token has no logprob")
        acc = tok + acc
        total += float(lp)
        if len(acc) >= len(option):
            break
    if acc == option:
        return total
    if acc.endswith(option):
        raise _merged(tok)
    raise BackendError(f"the echoed prompt does not end with the option {option!r} (got {acc[-40:]!r})")
