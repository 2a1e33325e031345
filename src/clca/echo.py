"""Echo and degeneracy checks of model-written text (role-play arguments, intentions, judge reasons).

Small models fill a text slot with nearby prompt text ("the exact words the person says"), repeat the
previous turn verbatim or nearly so (the same sentences with a few words changed), or answer with one word
taken from the last turn ("Doorphone", "doorphone").
These checks treat such output as invalid: the caller re-asks within its limits and counts the failure.

Each check returns None (fine) or one problem string "<reason>: <detail>"; the part before ':' is the
counted failure reason (`echo_prompt`, `echo_repeat`, `echo_near`, `echo_word`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from .errors import StructuredOutputError

#: an output copying this many consecutive tokens of a prompt text is an echo
ECHO_SPAN = 5
#: an output sharing at least this share of its NEAR_N-token runs with one earlier output is a near-copy of it
NEAR_SHARE = 0.6
NEAR_N = 4
_TOKEN = re.compile(r"\w+(?:'\w+)*")


class EchoError(StructuredOutputError):
    """The model's output copied its prompt or repeated itself within all allowed attempts."""


def tokens(text: str) -> list[str]:
    """Lower-case word tokens (any script)."""
    return _TOKEN.findall(text.lower())


def _ngrams(toks: Sequence[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(toks[i : i + n]) for i in range(len(toks) - n + 1)}


def copied_span(text: str, source: str, n: int = ECHO_SPAN) -> str | None:
    """The first run of n consecutive tokens of text that also occurs in source, or None."""
    toks = tokens(text)
    if len(toks) < n:
        return None
    grams = _ngrams(tokens(source), n)
    for i in range(len(toks) - n + 1):
        if tuple(toks[i : i + n]) in grams:
            return " ".join(toks[i : i + n])
    return None


def prompt_grams(prompts: Iterable[str], n: int = ECHO_SPAN) -> frozenset[tuple[str, ...]]:
    """The n-token runs of prompt texts, computed once for many checks against the same prompts."""
    out: set[tuple[str, ...]] = set()
    for p in prompts:
        out |= _ngrams(tokens(p), n)
    return frozenset(out)


def echo_problem(
    text: str,
    *,
    prompts: Iterable[str] = (),
    previous: Iterable[str] = (),
    last: str | None = None,
    n: int = ECHO_SPAN,
    grams: frozenset[tuple[str, ...]] | None = None,
) -> str | None:
    """Why text is an echo or degenerate, or None.

    prompts: texts the output must not copy n+ tokens from (system prompt, instructions, help text),
    or grams: their `prompt_grams` computed beforehand;
    previous: earlier outputs it must not repeat verbatim or nearly (>= NEAR_SHARE of its NEAR_N-token runs
    in one of them): the partner's and its own;
    last: the previous turn's text, for the single-repeated-word check.
    """
    toks = tokens(text)
    if not toks:
        return None
    grams = prompt_grams(prompts, n) if grams is None else grams
    for i in range(len(toks) - n + 1):
        if tuple(toks[i : i + n]) in grams:
            span = " ".join(toks[i : i + n])
            return f"echo_prompt: copies {span!r} from the prompt"
    joined = " ".join(toks)
    mine = _ngrams(toks, NEAR_N)
    for prev in previous:
        prev_toks = tokens(prev)
        if joined == " ".join(prev_toks):
            return f"echo_repeat: repeats the earlier {text.strip()[:60]!r} verbatim"
        if mine:
            share = len(mine & _ngrams(prev_toks, NEAR_N)) / len(mine)
            if share >= NEAR_SHARE:
                return f"echo_near: {share:.0%} of its {NEAR_N}-word runs copy the earlier {prev.strip()[:60]!r}"
    if len(toks) == 1 and last is not None and toks[0] in tokens(last):
        return f"echo_word: the single word {toks[0]!r} repeated from the last turn"
    return None


def check_fields(values: Iterable[str | None], prompts: Sequence[str]) -> str | None:
    """The first echo problem among several text fields of one answer (intentions, judge reasons)."""
    for v in values:
        if v:
            problem = echo_problem(v, prompts=prompts)
            if problem is not None:
                return problem
    return None
