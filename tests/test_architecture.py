"""docs/architecture.md matches the code: its package picture names every package and top-level module once,
in layers that every import respects; its module tables name every file; no module imports another
package's private module (nor one subpackage of llm/ another's); llm/'s subpackages each have an `__all__` face
and import one another in one direction. Each import check also runs on a planted violation."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from import_graph import import_graph, imports_of, module_files

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "clca"
DOC = ROOT / "docs" / "architecture.md"


def unit_of(module: str, package: str = "clca") -> str:
    """The picture's unit of a module: its top-level package ('llm/') or top-level module ('pipeline.py')."""
    parts = module.split(".")[1:]
    if not parts:
        return "__init__.py"
    return f"{parts[0]}/" if (SRC / parts[0]).is_dir() else f"{parts[0]}.py"


def picture_layers(text: str) -> dict[str, int]:
    """Unit -> layer, from the picture's code block (rows `N  unit unit ...  job`)."""
    block = text.split("## Packages and the direction of dependencies", 1)[1].split("```", 2)[1]
    layers: dict[str, int] = {}
    for line in block.splitlines():
        m = re.match(r"^(\d+)\s+(.*)$", line)
        if m:
            for tok in m.group(2).split():
                if re.fullmatch(r"[\w]+/|[\w]+\.py", tok):
                    assert tok not in layers, f"{tok} is in the picture twice"
                    layers[tok] = int(m.group(1))
    return layers


def tree_units(root: Path) -> set[str]:
    return {f"{p.name}/" for p in root.iterdir() if (p / "__init__.py").is_file()} | {p.name for p in root.glob("*.py")}


def layer_violations(graph: Mapping[str, set[str]], layers: Mapping[str, int]) -> list[str]:
    """Imports from a unit to a unit of a higher layer (a layer with a smaller number)."""
    out = []
    for m, targets in graph.items():
        for t in targets:
            a, b = unit_of(m), unit_of(t)
            if a != b and layers[b] < layers[a]:
                out.append(f"{m} (layer {layers[a]}) imports {t} (layer {layers[b]})")
    return sorted(out)


def private_imports(root: Path, package: str) -> list[str]:
    """Imports of a private module (`_name`) from outside the package that holds it."""
    files = module_files(root, package)
    out = set()
    for m, p in files.items():
        for t, line in imports_of(m, p, files):
            owner, _, last = t.rpartition(".")
            if last.startswith("_") and not (m == owner or m.startswith(owner + ".")):
                out.add(f"{m}:{line} imports {t}")
    return sorted(out)


def test_the_picture_names_every_package_and_module_once() -> None:
    layers = picture_layers(DOC.read_text(encoding="utf-8"))
    assert set(layers) == tree_units(SRC)
    assert layers["cli/"] == 1 and layers["records/"] == max(layers.values())


def test_every_import_respects_the_layers() -> None:
    layers = picture_layers(DOC.read_text(encoding="utf-8"))
    graph = import_graph(SRC, "clca")
    assert layer_violations(graph, layers) == []
    planted = {**graph, "clca.records._keys": {"clca.pipeline"}}  # the database layer importing the pipeline
    assert layer_violations(planted, layers) == ["clca.records._keys (layer 6) imports clca.pipeline (layer 2)"]


def test_the_module_tables_name_every_file() -> None:
    text = DOC.read_text(encoding="utf-8").split("## Every module", 1)[1]
    listed = re.findall(r"^\| `([\w/]+\.py)` \|", text, re.M)
    assert len(listed) == len(set(listed))
    files = {p.relative_to(SRC).as_posix() for p in SRC.rglob("*.py")}
    wanted = {f for f in files if not (f.endswith("/__init__.py"))}
    assert set(listed) == wanted, (sorted(wanted - set(listed)), sorted(set(listed) - wanted))


def test_no_module_imports_another_packages_private_module(tmp_path: Path) -> None:
    assert private_imports(SRC, "clca") == []
    pkg = tmp_path / "pkg"
    for sub in ("llm", "judge"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "_files.py").write_text("")
    (pkg / "llm" / "_spec.py").write_text("from .. import _files\n")  # a parent's private module: allowed
    (pkg / "llm" / "_registry.py").write_text("from ._spec import X\n")  # its own package's: allowed
    (pkg / "judge" / "_models.py").write_text("def f():\n    from ..llm._spec import X\n")
    (pkg / "pipeline.py").write_text("from .llm import _registry\n")
    assert private_imports(pkg, "pkg") == [
        "pkg.judge._models:2 imports pkg.llm._spec",
        "pkg.pipeline:1 imports pkg.llm._registry",
    ]


def test_a_subpackage_reaches_another_only_through_its_face(tmp_path: Path) -> None:
    """llm/'s subpackages: one importing another's private module is caught, at any depth; going through
    the other's `__init__`, or using the parent's private modules, is not."""
    pkg = tmp_path / "pkg"
    for sub in ("llm", "llm/engine", "llm/backends"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "llm" / "_protocol.py").write_text("")
    (pkg / "llm" / "engine" / "_radix.py").write_text("from .._protocol import LLM\n")  # the parent's: allowed
    (pkg / "llm" / "engine" / "_engine.py").write_text("from ._radix import PrefixCache\n")  # its own: allowed
    (pkg / "llm" / "backends" / "_hf.py").write_text(
        "from ..engine import Engine\n"  # the face: allowed
        "def f():\n    from ..engine._radix import PrefixCache\n"
    )
    (pkg / "llm" / "backends" / "_openai.py").write_text("from ..engine import _engine\n")
    (pkg / "llm" / "_registry.py").write_text("from .backends._hf import build\n")  # the parent into a child
    assert private_imports(pkg, "pkg") == [
        "pkg.llm._registry:1 imports pkg.llm.backends._hf",
        "pkg.llm.backends._hf:3 imports pkg.llm.engine._radix",
        "pkg.llm.backends._openai:1 imports pkg.llm.engine._engine",
    ]


def test_each_llm_subpackage_has_a_face_and_private_modules() -> None:
    import importlib

    subs = sorted(p.parent for p in (SRC / "llm").glob("*/__init__.py"))
    assert [p.name for p in subs] == ["backends", "engine", "serving", "structured"]
    for sub in subs:
        assert all(f.name.startswith("_") for f in sub.glob("*.py")), sub
        mod = importlib.import_module(f"clca.llm.{sub.name}")
        assert mod.__all__, sub
        for name in mod.__all__:  # lazy names included: a typo in a lazy table fails here
            assert getattr(mod, name) is not None, (sub.name, name)


#: which of llm/'s subpackages each may import (the table in docs/architecture.md, "Inside `llm/`")
LLM_SUBPACKAGE_IMPORTS: dict[str, set[str]] = {
    "backends": {"engine", "structured"},
    "serving": {"structured"},
    "engine": set(),
    "structured": set(),
}


def subpackage_violations(graph: Mapping[str, set[str]], allowed: Mapping[str, set[str]], parent: str) -> list[str]:
    """Imports from one subpackage of `parent` into another that the table in docs/architecture.md does not allow."""

    def sub(m: str) -> str | None:
        rest = m[len(parent) + 1 :].split(".")[0] if m.startswith(parent + ".") else None
        return rest if rest in allowed else None

    return sorted(
        f"{m} imports {t}"
        for m, targets in graph.items()
        for t in targets
        if (a := sub(m)) and (b := sub(t)) and a != b and b not in allowed[a]
    )


def test_llm_subpackages_import_in_one_direction() -> None:
    graph = import_graph(SRC, "clca")
    assert subpackage_violations(graph, LLM_SUBPACKAGE_IMPORTS, "clca.llm") == []
    planted = {**graph, "clca.llm.engine._scheduler": {"clca.llm.backends"}}  # the engine importing a backend
    assert subpackage_violations(planted, LLM_SUBPACKAGE_IMPORTS, "clca.llm") == [
        "clca.llm.engine._scheduler imports clca.llm.backends"
    ]
