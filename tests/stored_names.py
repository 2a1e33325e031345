"""A static check that `clca.records` owns every stored name: it walks the source (no module is imported)
and lists each place outside `records/` that spells a record kind, builds or splits a key, or names a
meta entry by hand.

What counts (each a `path:line: what` string):
- a record kind's string ("episode") where a kind goes: an argument of a run-database call (`store.iter`,
  `store.get`, `first_failure`, ...), a comparison, an assignment, the index of a table by kind (`rows`,
  `stages`, `kinds`), a collection or dict whose strings are all kinds; kinds are the `records` constants
  (`EPISODE`, ...). Kind names used as other things (a dataset column "scenario", a Sotopia field) are not
  in those places and are not counted;
- a key built by hand: an f-string or a `+` as the kind or key argument (or `prefix=`) of a run-database call;
- a key split by hand: `.split("/")`, `.rsplit("/")`, `.partition("/")`, `.rpartition("/")` (a line that
  splits something else says so with the comment `# not a record key`);
- a meta name by hand: a string or f-string as the name of `get_meta` / `set_meta`.
"""

from __future__ import annotations

import ast
from pathlib import Path

KINDS = frozenset(
    {
        "scenario",
        "episode",
        "turn",
        "judgement",
        "reflection_turn",
        "reflection",
        "intention",
        "survey_answer",
        "metric",
    }
)
#: calls that take a kind (and a key) of the run database
STORE_CALLS = frozenset(
    {"iter", "get", "put", "fail", "done", "count", "failure_reasons", "first_failure", "import_from", "keys"}
)
META_CALLS = frozenset({"get_meta", "set_meta"})
#: tables indexed by kind (`rows[EPISODE]`, `report.stages[EPISODE]`)
KIND_TABLES = frozenset({"rows", "stages", "kinds"})
SPLITS = frozenset({"split", "rsplit", "partition", "rpartition"})
EXEMPT = "# not a record key"


def _kind_literal(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in KINDS


def _all_kinds(nodes: list[ast.expr | None]) -> bool:
    return len(nodes) >= 2 and all(n is not None and _kind_literal(n) for n in nodes)


def _receiver(func: ast.expr) -> str:
    """The last name of a call's receiver: `self.store.get` -> 'store', `src.get` -> 'src', `f` -> ''."""
    if isinstance(func, ast.Attribute):
        v = func.value
        return v.attr if isinstance(v, ast.Attribute) else v.id if isinstance(v, ast.Name) else ""
    return ""


def _call_name(func: ast.expr) -> str:
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def _is_store_call(call: ast.Call) -> bool:
    name = _call_name(call.func)
    if name == "first_failure":
        return True
    return name in STORE_CALLS and ("store" in _receiver(call.func) or _receiver(call.func) in {"src", "db"})


def violations_in(path: Path, label: str) -> list[str]:
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    out: list[str] = []

    def add(node: ast.AST, what: str) -> None:
        line = getattr(node, "lineno", 0)
        if EXEMPT not in lines[line - 1]:
            out.append(f"{label}:{line}: {what}")

    for node in ast.walk(ast.parse(text, str(path))):
        if isinstance(node, ast.Call):
            name = _call_name(node.func)
            if _is_store_call(node):
                for arg in [*node.args[:2], *(k.value for k in node.keywords if k.arg == "prefix")]:
                    if _kind_literal(arg):
                        add(arg, f"kind {arg.value!r} spelled out")  # type: ignore[attr-defined]
                    elif isinstance(arg, ast.JoinedStr) or (isinstance(arg, ast.BinOp) and isinstance(arg.op, ast.Add)):
                        add(arg, "key built by hand")
            if name in META_CALLS and node.args and isinstance(node.args[0], (ast.Constant, ast.JoinedStr)):
                add(node, "meta name spelled out")
            if (
                name in SPLITS
                and isinstance(node.func, ast.Attribute)
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and node.args[0].value == "/"
            ):
                add(node, f"key split by hand (.{name}('/'))")
        elif isinstance(node, ast.Subscript) and _kind_literal(node.slice) and (_call_name(node.value) in KIND_TABLES):
            add(node, "kind as a table index")
        elif isinstance(node, ast.Compare):
            for side in [node.left, *node.comparators]:
                if _kind_literal(side):
                    add(side, "kind compared by its string")
                elif isinstance(side, (ast.Tuple, ast.List, ast.Set)) and any(_kind_literal(e) for e in side.elts):
                    add(side, "kinds compared by their strings")
        elif isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None and _kind_literal(node.value):
            add(node, "kind assigned as a string")
        elif isinstance(node, (ast.Tuple, ast.List, ast.Set)) and _all_kinds(list(node.elts)):
            add(node, "kinds listed as strings")
        elif isinstance(node, ast.Dict) and _all_kinds(list(node.keys)):
            add(node, "kinds as dict keys")
    return sorted(out, key=lambda v: (int(v.split(":")[1]), v))  # in line order


def stored_name_violations(root: Path, owner: str = "records") -> list[str]:
    """Every violation in the `.py` files under root, outside root/owner."""
    out: list[str] = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if rel.parts[0] != owner:
            out += violations_in(path, str(rel))
    return out
