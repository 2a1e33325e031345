"""Tidy a model-written argument before it is checked and stored: loops, repeats and cut-off ends removed.

Small models loop ("I'm just happy to share it with you. I'm just happy to share it with you."), open with a
sentence the dialogue already holds (the partner's first sentence, copied), and run into the token budget in
the middle of a sentence. What is left after removing these is what the character says; the echo checks
(clca.echo) then judge the rest. Three rules, applied in this order, each counted by the caller:

- `loop`: the argument is cut before its first sentence that repeats one of its own earlier sentences
  (the same words, or >= NEAR_SHARE of its NEAR_N-word runs already said in this argument);
- `said_before`: a sentence that an earlier turn of the episode already holds word for word is dropped;
- `cut_off`: when the token budget ended the reply, an unfinished last sentence is dropped (if a finished
  one stays).

When nothing would be left, the argument is kept as it was, for the echo checks to reject.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ..echo import NEAR_N, NEAR_SHARE, tokens

# a sentence: up to its end mark (with closing quotes/brackets) before a space or the end, or to the end;
# CJK full stops end a sentence without a following space
_SENTENCE = re.compile(
    r"\S.*?(?:[.!?\u2026]+[\"'\u201d\u2019)\]]*(?=\s|$)|[\u3002\uff01\uff1f]+[\"'\u201d\u2019)\]\u300d]*|$)\s*",
    re.S,
)
_FINISHED = re.compile(r"[.!?\u2026\u3002\uff01\uff1f][\"'\u201d\u2019)\]\u300d]*\s*$")


def sentences(text: str) -> list[str]:
    """The sentences of text, each with its trailing whitespace (joined, they give text back, stripped)."""
    return _SENTENCE.findall(text.strip())


def _grams(toks: list[str]) -> set[tuple[str, ...]]:
    return {tuple(toks[i : i + NEAR_N]) for i in range(len(toks) - NEAR_N + 1)}


def tidy_argument(text: str, earlier: Iterable[str] = (), *, cut: bool = False) -> tuple[str, list[str]]:
    """(the tidied argument, the rules that changed it: "loop", "said_before", "cut_off").

    earlier: the episode's earlier arguments; cut: the reply ended at the token budget (finish "length").
    """
    said = {" ".join(tokens(s)) for e in earlier for s in sentences(e)}
    said.discard("")
    kept: list[str] = []
    seen: set[str] = set()
    seen_grams: set[tuple[str, ...]] = set()
    applied: list[str] = []
    parts = sentences(text)
    for s in parts:
        toks = tokens(s)
        key = " ".join(toks)
        grams = _grams(toks)
        if key and (key in seen or (grams and len(grams & seen_grams) / len(grams) >= NEAR_SHARE)):
            applied.append("loop")
            break
        seen.add(key)
        seen_grams |= grams
        if key in said:
            if "said_before" not in applied:
                applied.append("said_before")
            continue
        kept.append(s)
    # only the reply's own last sentence can be the one the budget cut (a loop cut drops it anyway)
    if cut and len(kept) > 1 and kept[-1] is parts[-1] and not _FINISHED.search(kept[-1]):
        kept.pop()
        applied.append("cut_off")
    out = "".join(kept).strip()
    if not tokens(out):
        return text.strip(), []
    return out, applied
