"""`clca chat` / `clca check`: user errors are one `error: ...` line on stderr and exit code 2."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

from clca.cli.main import main
from clca.llm import MockLLM
from clca.llm.serving import serve_in_thread


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, fragment: str) -> None:
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert fragment in lines[0]
    assert "Traceback" not in err


def test_bad_model_string_via_the_installed_command() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "clca.cli.main", "chat", "--model", "gpt-4o", "hello"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert_one_line_error(r.returncode, r.stderr, "unknown model string 'gpt-4o'")


def test_unreachable_server(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    spec = f"openai:m@http://127.0.0.1:{port}/v1?max_retries=1&backoff_base=0"
    code, _, err = cli(capsys, "chat", "--no-cache", "--model", spec, "hello")
    assert_one_line_error(code, err, "gave up after 2 attempts")


def test_missing_api_key(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLCA_TEST_ABSENT_KEY", raising=False)
    spec = "openai:gpt-4o@https://api.example.com/v1?api_key_env=CLCA_TEST_ABSENT_KEY"
    code, _, err = cli(capsys, "chat", "--no-cache", "--model", spec, "hello")
    assert_one_line_error(code, err, "environment variable CLCA_TEST_ABSENT_KEY is not set")


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("embedded?bogus=1", "option bogus: unknown option (known: device, dtype"),
        ("embedded?max_batch=zero", "option max_batch: Input should be a valid integer"),
        ("embedded?prefix_cache_mb=-1", "option prefix_cache_mb: Input should be greater than or equal to 0"),
        ("embedded?dtype=int8", "option dtype: Input should be 'bfloat16', 'float16' or 'float32'"),
        ("embedded?max_batch", "options must look like '?key=value&key2=value2'"),
    ],
)
def test_bad_in_process_model_options(capsys: pytest.CaptureFixture[str], spec: str, fragment: str) -> None:
    code, _, err = cli(capsys, "chat", "--no-cache", "--model", spec, "hello")
    assert_one_line_error(code, err, fragment)


def test_bad_options_flag(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "chat", "--model", "mock", "--options", "only-one", "hello")
    assert_one_line_error(code, err, "--options")


def test_chat_reply_json_and_options(capsys: pytest.CaptureFixture[str], tmp_path) -> None:  # noqa: ANN001
    with serve_in_thread(MockLLM(['{"answer": "Paris", "confidence": 90}']), served_name="m") as url:
        spec = f"openai:m@{url}"
        code, out, _ = cli(capsys, "chat", "--cache", str(tmp_path / "c.sqlite"), "--model", spec, "Capital?")
        assert code == 0 and out.strip() == '{"answer": "Paris", "confidence": 90}'
        code, out, _ = cli(capsys, "chat", "--no-cache", "--json", "--model", spec, "Capital?")
        assert code == 0 and json.loads(out) == {"answer": "Paris", "confidence": 90}
    code, out, _ = cli(capsys, "chat", "--model", "mock", "--options", "yes|no|maybe", "Agree?")
    assert code == 0
    rows = [line.split() for line in out.strip().splitlines()]
    assert [r[0] for r in rows] == ["yes", "no", "maybe"] and sum(float(r[1]) for r in rows) == pytest.approx(
        1.0, abs=2e-4
    )


@pytest.mark.slow
def test_check_on_the_real_model(capsys: pytest.CaptureFixture[str], embedded_llm) -> None:  # noqa: ANN001
    inner = getattr(embedded_llm, "inner", embedded_llm)
    with serve_in_thread(inner) as url:  # the session's model, served: no second load
        code, out, err = cli(
            capsys, "check", "--no-cache", "--max-tokens", "8", "--model", f"openai:{inner.model_id}@{url}?timeout=900"
        )
    assert code == 0, err
    assert "[chat]" in out and "[structured]" in out and "[options]" in out
    after = out.split("[structured]", 1)[1].splitlines()
    obj = json.loads(next(line for line in after if line.startswith("{")))
    assert set(obj) == {"answer", "confidence"} and 0 <= obj["confidence"] <= 100
    rows = [line.split() for line in out.split("[options]", 1)[1].splitlines() if line.startswith("  ")]
    assert [r[0] for r in rows] == ["Yes", "No"]
    assert sum(float(r[1]) for r in rows) == pytest.approx(1.0, abs=2e-4)
