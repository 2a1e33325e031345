"""The model string has one owner (`clca.llm.ModelSpec`): round trips, errors, derived strings, and an
`llm` package without import cycles."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from import_graph import import_graph
from typer.testing import CliRunner

from clca.errors import ModelStringError
from clca.llm import KINDS, ModelSpec, check_model_string

LLM_DIR = Path(__file__).resolve().parents[1] / "src" / "clca" / "llm"

SPECS = [
    ModelSpec("embedded"),
    ModelSpec("embedded", options={"max_batch": "8", "device": "cuda:1"}),
    ModelSpec("embedded", adapter="/runs/r 1/adapter", options={"prefix_cache_mb": "0"}),
    ModelSpec("hf", "/models/llama 3", adapter="/a/b", options={"dtype": "bfloat16", "odd": "a&b=c+d?e"}),
    ModelSpec("hf", "relative/dir"),
    ModelSpec("openai", "meta/llama3:8b@http://10.0.0.1:8000/v1"),
    ModelSpec("openai", "m@http://h:1/v1,https://g.example/v1", options={"api_key_env": "K", "timeout": "5"}),
    ModelSpec("mock"),
]


def test_every_kind_is_covered() -> None:
    assert {s.kind for s in SPECS} == set(KINDS)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.format())
def test_parse_of_format_is_identity(spec: ModelSpec) -> None:
    assert ModelSpec.parse(spec.format()) == spec
    assert ModelSpec.parse(f"  {spec.format()} ") == spec  # surrounding blanks do not count
    assert str(spec) == spec.format()


@pytest.mark.parametrize(
    "text",
    ["embedded", "embedded?max_batch=8", "embedded+lora:/x?max_batch=8&device=cuda:1", "hf:/m+lora:/a", "mock",
     "openai:m@http://h:8000/v1,https://g/v1?api_key_env=K&timeout=5"],
)  # fmt: skip
def test_format_of_parse_keeps_the_string(text: str) -> None:
    assert ModelSpec.parse(text).format() == text


def test_adapter_goes_before_the_options() -> None:
    spec = ModelSpec.parse("hf:/m?max_batch=8").with_adapter(Path("/runs/x/adapter"))
    assert spec.format() == "hf:/m+lora:/runs/x/adapter?max_batch=8"
    assert spec.without_options().format() == "hf:/m+lora:/runs/x/adapter"
    with pytest.raises(ModelStringError, match="adapter"):
        ModelSpec.parse("openai:m@http://h/v1").with_adapter("/a")


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("", "empty model string"),
        ("gpt4", "unknown model string"),
        ("mock?x=1", "unknown model string"),
        ("hf:", "names no path"),
        ("embedded+lora", "expected '+lora:ADAPTER_DIR'"),
        ("embedded+lora:", "expected '+lora:ADAPTER_DIR'"),
        ("embedded?max_batch", "options must look like"),
        ("openai:gpt-4o", "expected 'openai:MODEL@"),
        ("openai:m@http://h/v1,http://h/v1", "listed twice"),
    ],
)
def test_bad_syntax_is_one_line(text: str, fragment: str) -> None:
    with pytest.raises(ModelStringError) as ei:
        ModelSpec.parse(text)
    assert fragment in str(ei.value) and "\n" not in ei.value.one_line()


def test_validate_checks_options_and_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ModelStringError, match="option max_batch"):
        check_model_string("embedded?max_batch=0")
    with pytest.raises(ModelStringError, match="bad model string 'gpt4'"):
        check_model_string("gpt4")
    monkeypatch.delenv("CLCA_SPEC_KEY", raising=False)
    check_model_string("openai:m@http://127.0.0.1:9/v1?api_key_env=CLCA_SPEC_KEY")  # loopback: no key needed
    with pytest.raises(Exception, match="CLCA_SPEC_KEY"):
        check_model_string("openai:m@https://api.example.com/v1?api_key_env=CLCA_SPEC_KEY")
    assert check_model_string("mock") == ModelSpec("mock")


def test_cli_train_prints_a_valid_adapter_string_with_options(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import clca.train
    from clca.cli.train import train_app
    from clca.train import TrainResult

    out = tmp_path / "adapter"

    def fake_train(dataset_dir: Path, cfg: object, adapter: Path, resume: bool = False) -> TrainResult:
        return TrainResult(adapter_dir=adapter, base_model="embedded", global_step=1, train_loss=1.0,
                           eval_loss=None, train_tokens=10, train_runtime_s=1.0, tokens_per_second=10.0)  # fmt: skip

    monkeypatch.setattr(clca.train, "train_lora", fake_train)
    r = CliRunner().invoke(train_app, ["run", str(tmp_path), "--out", str(out), "--model", "embedded?max_batch=8"])
    assert r.exit_code == 0, r.output
    printed = r.output.split("(model string: ")[1].split(")")[0]
    assert printed == f"embedded+lora:{out}?max_batch=8"
    assert ModelSpec.parse(printed) == ModelSpec("embedded", adapter=str(out), options={"max_batch": "8"})


def test_the_server_client_never_loads_a_model() -> None:
    """Nothing the `openai:` backend imports, at any depth (functions and TYPE_CHECKING included), is the
    in-process engine or backend. (No import cycle anywhere: tests/test_import_graph.py.)"""
    graph = import_graph(LLM_DIR.parent, "clca")
    in_process = {m for m in graph if m.startswith("clca.llm.engine")} | {"clca.llm.backends._hf"}
    openai_side = {m for m in graph if m.startswith("clca.llm.backends._openai")}
    assert len(openai_side) >= 5 and "clca.llm.engine._engine" in in_process
    seen, todo = set(openai_side), list(openai_side)
    while todo:
        for dep in graph[todo.pop()] - seen:
            seen.add(dep)
            todo.append(dep)
    assert not seen & in_process, sorted(seen & in_process)


def test_a_backend_is_one_entry_of_the_table(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registering a kind in `BACKENDS` is all parse, format, is_local, with_adapter and load_model need."""
    from clca.llm import _spec, load_model

    monkeypatch.setitem(_spec.BACKENDS, "toy", _spec.Backend("clca.llm._mock", "path", adapter=True))
    spec = ModelSpec.parse("toy:/models/t+lora:/a?x=1")
    assert spec == ModelSpec("toy", "/models/t", "/a", {"x": "1"}) and ModelSpec.parse(spec.format()) == spec
    assert not spec.is_local and spec.with_adapter("/b").adapter == "/b"
    assert load_model("toy:/m", cache=False).model_id == load_model("mock", cache=False).model_id
    monkeypatch.delitem(_spec.BACKENDS, "toy")
    with pytest.raises(ModelStringError, match="unknown model string"):
        ModelSpec.parse("toy:/models/t")


def test_derived_model_strings_come_from_modelspec() -> None:
    spec = ModelSpec.remote("mock", ["http://127.0.0.1:8000/v1"], max_retries=3, backoff_base=0)
    assert spec.format() == "openai:mock@http://127.0.0.1:8000/v1?max_retries=3&backoff_base=0"
    assert ModelSpec.remote("m", ["http://a/v1", "http://b/v1"]).base == "m@http://a/v1,http://b/v1"
    hand = []
    for path in sorted(LLM_DIR.parent.rglob("*.py")):
        if path.is_relative_to(LLM_DIR):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.JoinedStr) and node.values:
                first = node.values[0]
                if isinstance(first, ast.Constant) and str(first.value).startswith(("openai:", "hf:", "embedded+")):
                    hand.append(f"{path.name}:{node.lineno}")
    assert hand == [], hand


def test_hf_dataset_references_are_parsed_once() -> None:
    from clca.hf_ref import HfRef, is_hf_ref, parse_hf_ref

    assert parse_hf_ref("hf:cmu-lti/sotopia-pi/used_prompt.csv") == HfRef("cmu-lti/sotopia-pi", "used_prompt.csv")
    assert parse_hf_ref("hf:cmu-lti/sotopia") == HfRef("cmu-lti/sotopia", None)
    assert parse_hf_ref("hf") == HfRef(None, None) and parse_hf_ref(" hf: ") == HfRef(None, None)
    assert parse_hf_ref("hf:a//b") == HfRef(None, "a//b") and parse_hf_ref("data/norms.csv") is None
    assert is_hf_ref("hf:x/y/z") and not is_hf_ref("hfdata.csv")
    src = LLM_DIR.parent
    users = sorted(p.name for p in src.rglob("*.py") if '"hf:"' in p.read_text(encoding="utf-8"))
    assert users == ["hf_ref.py"], users
