"""The engine's prompt-prefix cache: prompt states (KV, logits after the last token) by token prefix, LRU,
bounded in tokens. Pure book-keeping; the engine computes the states."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from ._prefix import common_prefix

Key = tuple[int, ...]
State = tuple[Any, Any]  # (KV of a prompt, logits after its last token)


class PrefixCache:
    """Prompt states by their token ids (most recently used last); `max_tokens` <= 0 keeps nothing."""

    def __init__(self, max_tokens: int) -> None:
        self.max_tokens = max_tokens
        self._entries: OrderedDict[Key, State] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Key]:
        return iter(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __getitem__(self, key: Key) -> State:
        return self._entries[key]

    def clear(self) -> None:
        self._entries.clear()

    def get(self, key: Key) -> State | None:
        """The state of exactly this prompt (marked as recently used), or None."""
        hit = self._entries.get(key)
        if hit is not None:
            self._entries.move_to_end(key)
        return hit

    def best_prefix(self, key: Key) -> tuple[int, Key | None]:
        """(tokens of key covered by the best cached entry, that entry's key)."""
        best_len, best_key = 0, None
        for cached_key in self._entries:
            n = common_prefix(cached_key, key)
            if n > best_len:
                best_len, best_key = n, cached_key
        return min(best_len, len(key) - 1), best_key

    def remember(self, key: Key, st: State, extends: Key | None = None) -> None:
        """Keep a prompt state (LRU, bounded in tokens).

        A prompt computed by extending a cached entry replaces that entry, and entries that are strict
        prefixes of the new key are dropped: the new entry holds the same leading tokens, so any later
        prompt reuses at least as much from it (at most the old entry's own tail is lost, which belonged
        to a request that is over). Each growing conversation, and each guided decoder, thus holds one
        entry, which keeps many concurrent ones within the budget instead of evicting each other.
        """
        if self.max_tokens <= 0 or len(key) > self.max_tokens:
            return
        n = len(key)
        stale = [k for k in self._entries if len(k) < n and key[: len(k)] == k]
        if extends is not None and extends in self._entries and extends not in stale:
            stale.append(extends)
        for old in stale:
            del self._entries[old]
        self._entries[key] = st
        self._entries.move_to_end(key)
        total = sum(len(k) for k in self._entries)
        while total > self.max_tokens:
            old_key, _ = self._entries.popitem(last=False)
            total -= len(old_key)
