"""Every run records its environment (clca.environment): stored in the run database, read back, shown by
the report, and `clca compare` lists the differences between the compared runs' environments."""

from __future__ import annotations

import platform
import subprocess
from importlib.metadata import version
from pathlib import Path

import pytest
from test_compare import mock_run

from clca.environment import NOT_GIT, differences, git_commit, model_runtime, record_environment
from clca.llm import MockLLM
from clca.records import ENVIRONMENT_META
from clca.report import write_report
from clca.report._compare_render import write_comparison
from clca.store import RunStore

ROOT = Path(__file__).resolve().parents[1]


def _head() -> str:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return NOT_GIT
    return out.stdout.strip()


def test_a_stored_run_reads_its_environment_back(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with RunStore(run) as store:
        record_environment(store, {"mock": MockLLM()})
    with RunStore(run, lock=False) as store:  # a new connection: what the database holds
        env = store.get_meta(ENVIRONMENT_META)
    assert env["python"].endswith(platform.python_version())
    assert env["platform"] == platform.platform()
    assert env["cpu"]["cores"] >= 1 and env["cpu"]["model"]
    for name in ("torch", "transformers", "peft", "trl", "accelerate", "datasets"):
        assert env["packages"][name] == version(name)
    assert env["clca"]["commit"] == NOT_GIT or env["clca"]["commit"].removesuffix("-dirty") == _head()
    assert git_commit().removesuffix("-dirty") == env["clca"]["commit"].removesuffix("-dirty")
    assert env["models"]["mock"]["backend"] == "MockLLM"
    assert env["models"]["mock"]["dtype"] == "decided by the server"
    # a second session in a different environment keeps the first one under 'earlier'
    with RunStore(run) as store:
        planted = store.get_meta(ENVIRONMENT_META)
        planted["packages"]["torch"] = "0.0.1"
        store.set_meta(ENVIRONMENT_META, planted)
        again = record_environment(store)
    assert again["models"] == env["models"]  # models of earlier sessions are kept
    assert [e["packages"]["torch"] for e in again["earlier"]] == ["0.0.1"]


def test_clca_eval_records_the_environment_of_its_run(tmp_path: Path) -> None:
    from clca.cli.main import main

    run = tmp_path / "ev"
    with pytest.raises(SystemExit) as e:
        main(["eval", "--model", "mock", "--culture", "Egypt", "--item", "Q1", "--personas", "1",
              "--bootstrap", "0", "--run-dir", str(run), "--quiet"])  # fmt: skip
    assert e.value.code in (0, None)
    with RunStore(run, lock=False) as store:
        env = store.get_meta(ENVIRONMENT_META)
    assert env["packages"]["torch"] == version("torch") and env["models"]["mock"]["backend"] == "MockLLM"


@pytest.mark.slow  # loads the embedded model (a few seconds alone, longer on a busy machine)
def test_an_in_process_model_records_its_dtype_and_threads() -> None:
    import torch

    from clca.llm import load_model

    llm = load_model("embedded?dtype=float32&torch_threads=1", cache=False)
    before = model_runtime(llm)
    assert (before["dtype"], before["threads"]) == ("float32", 1)  # configured, not loaded yet
    threads = torch.get_num_threads()
    try:
        llm.engine  # noqa: B018  (loads the model)
        rec = model_runtime(llm)
    finally:
        torch.set_num_threads(threads)
    assert rec == {"backend": "HFModel", "dtype": "float32", "device": "cpu", "threads": 1}


def test_report_shows_and_compare_lists_a_planted_version_difference(tmp_path: Path) -> None:
    a, b = mock_run(tmp_path / "a"), mock_run(tmp_path / "b", seed=1)
    for run in (a, b):
        with RunStore(run) as store:
            record_environment(store, {"embedded": MockLLM()})
    with RunStore(b) as store:
        env = store.get_meta(ENVIRONMENT_META)
        real = env["packages"]["transformers"]
        env["packages"]["transformers"] = "4.46.0"
        store.set_meta(ENVIRONMENT_META, env)
    with RunStore(a, lock=False) as sa, RunStore(b, lock=False) as sb:
        diff = differences(sa.get_meta(ENVIRONMENT_META), sb.get_meta(ENVIRONMENT_META))
    assert diff == [("packages.transformers", real, "4.46.0")]

    summary = write_report(a, tmp_path / "report", figures=False).markdown.read_text(encoding="utf-8")
    assert f"packages.transformers {real}" in summary and "- model embedded: MockLLM" in summary

    paths = write_comparison([a, b], tmp_path / "cmp", figures=False, resamples=20)
    note = f"packages.transformers: {real} → 4.46.0"
    assert paths.environment_notes == [f"environment of b differs: {note}"]
    md = paths.markdown.read_text(encoding="utf-8")
    assert f"- b: {note}" in md
    rows = [line for line in md.splitlines() if line.startswith(("| base model |", "| dataset: "))]
    assert any("| b ‡ |" in r for r in rows) and not any("| b |" in r or "a ‡" in r for r in rows)
    assert "Environments differ" in paths.html.read_text(encoding="utf-8")
    # the same runs with equal environments: nothing listed, nothing marked
    with RunStore(b) as store:
        env["packages"]["transformers"] = real
        store.set_meta(ENVIRONMENT_META, env)
    same = write_comparison([a, b], tmp_path / "cmp2", figures=False, resamples=20)
    assert same.environment_notes == [] and "‡" not in same.markdown.read_text(encoding="utf-8")


def test_a_run_without_a_recorded_environment_reads_as_not_recorded() -> None:
    assert differences(None, None) == []
    assert differences({"python": "3.11"}, None) == [("environment", "recorded", "not recorded")]
    a = {"python": "3.11", "models": {"x+lora:/r1": {"dtype": "float32", "threads": 2}}, "recorded_at": 1}
    b = {"python": "3.11", "models": {"x+lora:/r2": {"dtype": "float32", "threads": 2}}, "recorded_at": 2}
    assert differences(a, b) == []  # the adapter's path and the time are not the environment
    assert differences({**a, "gpu": "not checked (torch not loaded)"}, {**b, "gpu": []}) == []  # unknown
    b["models"]["x+lora:/r2"]["threads"] = 4
    assert differences(a, b) == [("models.threads", "2", "4")]
    with pytest.raises(TypeError):
        differences(a)  # type: ignore[call-arg]


def test_a_pipeline_run_records_the_environment_and_its_models(tmp_path: Path) -> None:
    """`clca run` (scenarios only) with the teacher on a real HTTP server on loopback (the scripted schema model)."""
    import asyncio

    from test_reliability_support import schema_mock

    from clca.pipeline import load_run_config, run_pipeline
    from clca.testing import fault_server

    with fault_server(schema_mock(model_id="teacher"), profile="vllm", served_name="m") as fs:
        spec = fs.model_string(backoff_base=0.01, max_retries=2)
        overrides = {"run_dir": str(tmp_path / "run"), "cache": False, "scenarios.n": 1,
                     "scenarios.progress": False, "models.teacher": spec}  # fmt: skip
        cfg = load_run_config(ROOT / "configs" / "demo.yaml", overrides)
        asyncio.run(run_pipeline(cfg, until="scenarios"))
    with RunStore(tmp_path / "run", lock=False) as store:
        env = store.get_meta(ENVIRONMENT_META)
    assert env["packages"]["transformers"] == version("transformers")
    assert env["models"][spec] == {"backend": "OpenAIModel", "dtype": "decided by the server",
                                   "threads": "decided by the server"}  # fmt: skip
