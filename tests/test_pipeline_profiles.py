"""A demo-sized `clca run` (scenarios -> roleplay -> judge -> intents) with teacher, judge and annotator on
an emulated real server (clca.testing profiles: vLLM, llama-cpp-python, Ollama, JSON mode only, chat only):
every stage succeeds through the structured-output fallbacks, no refused body is ever resent, and what
each server accepted is in the run database and the report.

The served model is the scripted schema model of the reliability tests (answers every schema it is shown
in the prompt), so each profile runs in seconds; scoring on the real model is in test_llm_openai_profiles."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from test_reliability_support import check_artifacts, schema_mock

from clca.pipeline import load_run_config, run_pipeline
from clca.report import write_report
from clca.store import RunStore
from clca.testing import fault_server

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "configs" / "demo.yaml"
FORMS = {
    "vllm": "json_schema",
    "llamacpp": "json_object_schema",
    "ollama": "json_schema",
    "json_mode": "json_object",
    "chat_only": "prompt",
}

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("profile", list(FORMS))
def test_demo_run_completes_on_each_server_profile(profile: str, tmp_path: Path) -> None:
    with fault_server(schema_mock(model_id="teacher"), profile=profile, served_name="m") as fs:
        spec = fs.model_string(backoff_base=0.01, max_retries=2)
        cfg = load_run_config(
            DEMO,
            {
                "run_dir": str(tmp_path / "run"),
                "cache": False,
                "scenarios.n": 2,
                "scenarios.progress": False,
                "roleplay.max_turns": 3,
                "roleplay.progress": False,
                "judge.progress": False,
                "intents.progress": False,
                "models.teacher": spec,
                "models.judge": spec,
                "models.annotator": spec,
            },
        )
        results = asyncio.run(run_pipeline(cfg, until="intents"))
        counters = fs.counters
    assert [r.stage for r in results] == ["scenarios", "roleplay", "judge", "reflect", "intents"]
    with RunStore(tmp_path / "run") as store:
        kinds = store.kinds()
        for kind in ("scenario", "episode", "judgement", "intention"):
            assert kinds.get(kind, {}).get("ok", 0) > 0, (kind, kinds)
            assert kinds.get(kind, {}).get("failed", 0) == 0, (kind, store.failure_reasons(kind))
        check_artifacts(store)
        servers = store.get_meta("model_servers")
        (rec,) = servers.values()
        assert rec["structured"] == FORMS[profile] and rec["model"] == "m"
        paths = write_report(store)
    # every refused form was sent once (the first structured request), never again
    assert counters.repeated_refusals == 0
    assert (
        sum(counters.refusals.values())
        == {"vllm": 0, "llamacpp": 1, "ollama": 0, "json_mode": 2, "chat_only": 3}[profile]
    )
    html = Path(paths.html).read_text()
    assert "Model servers" in html and FORMS[profile] in html
