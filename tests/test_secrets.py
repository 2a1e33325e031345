"""Secrets and untrusted text.

- An API key planted in the environment during a small run against a loopback server appears in no
  file of the run directory, the response cache, the captured output, logs or exception messages.
- `<script>` planted in model output reaches the HTML report only escaped.
- Static checks over src/: YAML is loaded safely, nothing is unpickled, weights load from safetensors.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from test_reliability_support import schema_mock

from clca.errors import BackendError, ClcaError
from clca.llm import GenParams, MockLLM, load_model
from clca.testing import Fault, fault_server

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "clca"
XSS = '<script>alert("clca-xss")</script>'


def _clca(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(
        [sys.executable, "-m", "clca.cli.main", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=600
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def _files_holding(root: Path, needle: bytes) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


@pytest.mark.slow
def test_planted_key_and_script_payload_through_a_whole_run(tmp_path: Path) -> None:
    key = f"sk-PLANTED-{secrets.token_hex(12)}"
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.update(OPENAI_API_KEY=key, TQDM_DISABLE="1", CLCA_CACHE=str(tmp_path / "cache"))
    # a few faults so error texts (which quote the server's messages) are produced and logged
    faults = [Fault(kind="status", status=500, requests=[2, 5]), Fault(kind="status", status=401, requests=[40])]
    with fault_server(schema_mock(payload=XSS), *faults) as fs:
        spec = fs.model_string(backoff_base=0, max_retries=2)
        (tmp_path / "cfg.yaml").write_text(
            # the scripted teacher puts the payload into every text, so its turns echo the scenario: not checked here
            "run_dir: run\ncultures: [Egypt]\nscenarios: {n: 2}\nroleplay: {max_turns: 3, echo_checks: false}\n"
            "intents: {episodes: all}\n"
            f"models: {{teacher: '{spec}', judge: '{spec}', annotator: '{spec}', student: '{spec}'}}\n",
            encoding="utf-8",
        )
        outs = [_clca(tmp_path, env, "run", "cfg.yaml", "--until", "intents")]
        outs.append(
            _clca(
                tmp_path,
                env,
                "eval",
                "--model",
                spec,
                "--alias",
                "base",
                "--culture",
                "Egypt",
                "--mode",
                "generate",
                "--samples",
                "2",
                "--personas",
                "1",
                "--item",
                "Q1",
                "--item",
                "Q2",
                "--bootstrap",
                "10",
                "--run-dir",
                "run",
                "--quiet",
            )  # fmt: skip
        )
        outs.append(_clca(tmp_path, env, "report", "run"))
        sent = {hashlib.sha256(f"Bearer {key}".encode()).hexdigest()}
        assert fs.counters.auth_digests == sent  # the key was in use on every request...
        assert fs.counters.faults["status 401"] == 1
    run = tmp_path / "run"
    assert (run / "run.sqlite").is_file() and (tmp_path / "cache" / "responses.sqlite").is_file()
    # ...and is written nowhere: run directory (database, WAL, report), response cache, captured output
    assert _files_holding(tmp_path, key.encode()) == []
    assert _files_holding(tmp_path, b"PLANTED") == []
    for r in outs:
        assert key not in r.stdout + r.stderr and "PLANTED" not in r.stdout + r.stderr
    # the payload reached the report, escaped
    html = (run / "report" / "report.html").read_text(encoding="utf-8")
    assert XSS not in html and "<script" not in html.lower()
    assert "&lt;script&gt;alert(" in html
    md = (run / "report" / "summary.md").read_text(encoding="utf-8")
    assert "<script" not in md.lower()


class _Echo(MockLLM):
    """A server whose error messages quote the request's secret (as a careless proxy might)."""

    def __init__(self, key: str) -> None:
        super().__init__(["x"])
        self.key = key

    async def chat(self, messages, params=GenParams()):  # noqa: ANN001, ANN201
        raise ClcaError(f"upstream refused the key {self.key} for this model")


def test_key_is_scrubbed_from_errors_and_logs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    key = f"sk-PLANTED-{secrets.token_hex(12)}"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    caplog.set_level(logging.DEBUG)
    with fault_server(_Echo(key)) as fs:  # answers 500 with the key in the message
        llm = load_model(fs.model_string(backoff_base=0, max_retries=2), cache=tmp_path / "c.sqlite")

        async def go() -> BackendError:
            try:
                with pytest.raises(BackendError) as ei:
                    await llm.chat([{"role": "user", "content": "hi"}], GenParams(max_tokens=4))
                return ei.value
            finally:
                await llm.aclose()

        err = asyncio.run(go())
        assert fs.counters.requests == 3
    text = str(err) + repr(err) + err.one_line() + repr(llm)
    assert "HTTP 500" in text and "upstream refused the key *** for this model" in text
    assert key not in text and key not in caplog.text
    assert "upstream refused" in caplog.text  # the retries were logged, scrubbed
    assert key.encode() not in (tmp_path / "c.sqlite").read_bytes()


# -- static checks over the source tree ------------------------------------------------------------------
def _sources() -> list[tuple[Path, str]]:
    return [(p, p.read_text(encoding="utf-8")) for p in sorted(SRC.rglob("*.py"))]


def test_yaml_is_loaded_safely_everywhere() -> None:
    bad = re.compile(r"yaml\.(load|load_all|unsafe_load|full_load|full_load_all)\s*\(|(Unsafe|Full)Loader|yaml\.Loader")
    hits = [f"{p.relative_to(ROOT)}:{m.group(0)}" for p, text in _sources() for m in bad.finditer(text)]
    assert hits == []
    assert any("yaml.safe_load(" in text for _, text in _sources())  # the check looks at real code


def test_nothing_is_unpickled() -> None:
    bad = re.compile(
        r"\b(import pickle|from pickle|cPickle|pickle\.loads?|joblib|dill|cloudpickle|shelve|marshal\.load)"
    )
    hits = [f"{p.relative_to(ROOT)}:{m.group(0)}" for p, text in _sources() for m in bad.finditer(text)]
    assert hits == []
    for p, text in _sources():
        for m in re.finditer(r"torch\.load\(([^)]*)\)", text):
            assert "weights_only=True" in m.group(1), f"{p.relative_to(ROOT)}: {m.group(0)}"


def test_model_weights_load_only_from_safetensors() -> None:
    """Every model-weights load names use_safetensors=True, reads a GGUF file (the embedded model's
    packaged weights; no pickle), or is a PEFT adapter load guarded by an adapter_model.safetensors check."""
    calls = 0
    for p, text in _sources():
        for m in re.finditer(r"(\w+)\.from_pretrained\(", text):
            cls = m.group(1)
            args = text[m.end() : text.find("\n", m.end())]
            if cls.endswith("Tokenizer"):
                continue  # tokenizer files are JSON/text
            calls += 1
            where = f"{p.relative_to(ROOT)}: {cls}.from_pretrained({args}"
            if cls == "PeftModel":
                assert "adapter_model.safetensors" in text, where
            else:
                assert "use_safetensors=True" in args or "gguf_file=" in args, where
        for m in re.finditer(r"trust_remote_code\s*=\s*True", text):
            raise AssertionError(f"{p.relative_to(ROOT)}: {m.group(0)}")
    assert calls >= 3
