"""The package's import graph, read from the source: no import circle anywhere (imports inside functions
included), and the cycle finder itself catches a planted circle."""

from __future__ import annotations

from pathlib import Path

from import_graph import find_cycle, import_graph, imports_of, module_files

SRC = Path(__file__).resolve().parents[1] / "src" / "clca"


def test_no_import_cycle_in_the_package() -> None:
    graph = import_graph(SRC, "clca")
    assert len(graph) > 100  # every module was read
    assert "clca.run_config" in graph["clca.pipeline"] and "clca.reuse" in graph["clca.pipeline"]
    assert "clca.run_config" in graph["clca.report._data"]  # the stage list, read without the pipeline
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_cycle_finder_reports_a_planted_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"x": {"x"}}) == ["x", "x"]


def test_a_circle_closed_inside_a_function_is_found(tmp_path: Path) -> None:
    """A copy of the old circle (the pipeline imports the study, the study imports the pipeline when a
    function runs) in a small package: the graph sees the function-level import and the finder the cycle."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "pipeline.py").write_text("from .study import check_reuse\nRunConfig = object\n")
    (pkg / "study.py").write_text("def check_reuse():\n    from .pipeline import RunConfig\n    return RunConfig\n")
    (pkg / "report").mkdir()
    (pkg / "report" / "__init__.py").write_text("from . import _data\n")
    (pkg / "report" / "_data.py").write_text("from .. import study\nfrom ..pipeline import RunConfig as R\n")
    files = module_files(pkg, "pkg")
    assert set(files) == {"pkg", "pkg.pipeline", "pkg.study", "pkg.report", "pkg.report._data"}
    assert sorted(imports_of("pkg.report._data", files["pkg.report._data"], files)) == [
        ("pkg.pipeline", 2),
        ("pkg.study", 1),
    ]
    graph = import_graph(pkg, "pkg")
    assert graph["pkg.study"] == {"pkg.pipeline"} and graph["pkg.report"] == {"pkg.report._data"}
    assert find_cycle(graph) == ["pkg.pipeline", "pkg.study", "pkg.pipeline"]
    (pkg / "study.py").write_text("def check_reuse():\n    return None\n")  # the circle broken
    assert find_cycle(import_graph(pkg, "pkg")) is None
