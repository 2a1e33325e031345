"""The engine's prompt KV cache: a radix tree over token ids, bounded in bytes.

Every prompt the engine computes is stored as a path from the root; a node holds the keys and values of
its own token segment only, so prompts that share a prefix share that prefix's memory. Role-play is the
case this is built for: both sides of a conversation share the system part, each side keeps its own
branch (its private part, then the transcript), and each branch grows turn by turn; many conversations
share the parts common to their scenarios. A lookup returns the KV of the longest stored prefix of a
prompt, or the stored state of an exact match (KV and the logits after its last token), as views of the
nodes' segments (`_kvcache.Segs`): nothing is copied until the engine assembles a batch.

Memory is counted in bytes (KV segments plus stored logits rows) and kept under the budget by evicting
the least recently used leaves. A node that gets a child loses its logits row: the prompt it ended is
covered by the longer one (a later exact request for it recomputes one token on top of the cached KV).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from ._kvcache import KV, Segs, seg_join, seg_slice
from ._prefix import common_prefix


class _Node:
    __slots__ = ("tokens", "kv", "logits", "children", "parent", "used")

    def __init__(self, tokens: tuple[int, ...], kv: KV, parent: _Node | None) -> None:
        self.tokens = tokens
        self.kv = kv
        self.logits: torch.Tensor | None = None
        self.children: dict[int, _Node] = {}
        self.parent = parent
        self.used = 0


def _nbytes(kv: KV) -> int:
    return sum(k.numel() * k.element_size() + v.numel() * v.element_size() for k, v in kv)


def _slice(kv: KV, a: int, b: int | None) -> KV:
    """Own copy of positions [a, b) of a KV (a view would keep the whole source tensor alive)."""
    return [(k[:, :, a:b].clone(), v[:, :, a:b].clone()) for k, v in kv]


class PrefixCache:
    """Radix tree of prompt states, bounded by `budget_bytes` (0 disables storing)."""

    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = max(0, int(budget_bytes))
        self._root = _Node((), [], None)
        self._tick = 0
        self.bytes = 0  # KV segments + logits rows held now
        self.peak_bytes = 0  # most held after any store (between calls)

    # ------------------------------------------------------------------------------------------ reading

    def __len__(self) -> int:
        """Number of stored prompt ends (nodes holding a logits row)."""
        return sum(1 for n in self._nodes() if n.logits is not None)

    def tokens(self) -> int:
        """Token positions held (each shared prefix counted once)."""
        return sum(len(n.tokens) for n in self._nodes())

    def _nodes(self) -> Iterator[_Node]:
        stack = list(self._root.children.values())
        while stack:
            n = stack.pop()
            yield n
            stack.extend(n.children.values())

    def _walk(self, key: tuple[int, ...]) -> tuple[int, list[tuple[_Node, int]]]:
        """(tokens of key matched, [(node, tokens of that node used)] along the path)."""
        node, pos, path = self._root, 0, []
        while pos < len(key):
            child = node.children.get(key[pos])
            if child is None:
                break
            seg = child.tokens
            if key[pos : pos + len(seg)] == seg:
                path.append((child, len(seg)))
                pos += len(seg)
                node = child
                continue
            m = common_prefix(seg, key[pos : pos + len(seg)])
            path.append((child, m))  # m >= 1: the child was found by its first token
            pos += m
            break
        return pos, path

    def _touch(self, path: list[tuple[_Node, int]]) -> None:
        self._tick += 1
        for node, _ in path:
            node.used = self._tick

    @staticmethod
    def _gather(path: list[tuple[_Node, int]]) -> Segs:
        return [node.kv if m == len(node.tokens) else [(k[:, :, :m], v[:, :, :m]) for k, v in node.kv]
                for node, m in path]  # fmt: skip

    def get(self, key: tuple[int, ...]) -> tuple[Segs, torch.Tensor] | None:
        """The stored state of exactly this prompt, or None."""
        pos, path = self._walk(key)
        if pos != len(key) or not path:
            return None
        last, m = path[-1]
        if m != len(last.tokens) or last.logits is None:
            return None
        self._touch(path)
        return self._gather(path), last.logits

    def longest(self, key: tuple[int, ...], limit: int) -> tuple[int, Segs | None]:
        """(n, KV of key's first n tokens) for the longest stored prefix, n <= limit."""
        pos, path = self._walk(key)
        n = min(pos, limit)
        if n <= 0:
            return 0, None
        trimmed: list[tuple[_Node, int]] = []
        left = n
        for node, m in path:
            if left <= 0:
                break
            trimmed.append((node, min(m, left)))
            left -= m
        self._touch(trimmed)
        return n, self._gather(trimmed)

    # ------------------------------------------------------------------------------------------ writing

    def put(self, key: tuple[int, ...], kv: Segs, logits: torch.Tensor) -> None:
        """Store a prompt's state (kv covers all of key); only the tokens not yet in the tree cost memory."""
        if not key or self.budget_bytes <= 0:
            return
        per_token = _nbytes([(k[:, :, :1], v[:, :, :1]) for k, v in kv[0]])
        if len(key) * per_token + logits.numel() * logits.element_size() > self.budget_bytes:
            return
        pos, path = self._walk(key)
        if path and path[-1][1] < len(path[-1][0].tokens):
            path[-1] = (self._split(path[-1][0], path[-1][1]), path[-1][1])
        parent = path[-1][0] if path else self._root
        if pos == len(key):
            end = parent
        else:
            end = _Node(key[pos:], seg_join(seg_slice(kv, pos, len(key))), parent)
            parent.children[key[pos]] = end
            self.bytes += _nbytes(end.kv)
            path.append((end, len(end.tokens)))
            if parent.logits is not None:  # the prompt it ended is covered by this longer one
                self.bytes -= parent.logits.numel() * parent.logits.element_size()
                parent.logits = None
        if end.logits is None:
            end.logits = logits.detach().clone()
            self.bytes += end.logits.numel() * end.logits.element_size()
        self._touch(path)
        self._evict(keep=end)
        self.peak_bytes = max(self.peak_bytes, self.bytes)

    def _split(self, node: _Node, m: int) -> _Node:
        """Cut node after its first m tokens: a new parent holds those, node keeps the rest."""
        parent = node.parent
        assert parent is not None
        upper = _Node(node.tokens[:m], _slice(node.kv, 0, m), parent)
        upper.used = node.used
        parent.children[upper.tokens[0]] = upper
        node.tokens, node.kv, node.parent = node.tokens[m:], _slice(node.kv, m, None), upper
        upper.children[node.tokens[0]] = node
        return upper

    def _evict(self, keep: _Node) -> None:
        while self.bytes > self.budget_bytes:
            leaves = [n for n in self._nodes() if not n.children and n is not keep]
            if not leaves:
                return
            victim = min(leaves, key=lambda n: n.used)
            self._drop(victim)

    def _drop(self, node: _Node) -> None:
        parent = node.parent
        assert parent is not None
        del parent.children[node.tokens[0]]
        self.bytes -= _nbytes(node.kv)
        if node.logits is not None:
            self.bytes -= node.logits.numel() * node.logits.element_size()
        node.kv, node.logits, node.parent = [], None, None

    def clear(self) -> None:
        self._root = _Node((), [], None)
        self.bytes = 0
