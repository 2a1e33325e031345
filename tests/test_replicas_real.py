"""Replicas for real: two `clca serve --model mock` processes on loopback behind one `openai:M@URL1,URL2` string.

The servers are real processes (uvicorn, the OpenAI-compatible app); the client is the real `openai:`
backend, the work goes through the real runner into a real run database. Readiness is polled on
/v1/models; no sleeps. Each server's own access log counts the requests it answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from clca.llm import GenParams, load_model
from clca.runner import run_items
from clca.store import RunStore

N = 200
KIND = "probe"  # a record kind of this test only


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Replica:
    def __init__(self, log: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.log = log
        cmd = [sys.executable, "-m", "clca.cli.main", "serve", "--model", "mock", "--port", str(self.port),
               "--served-model-name", "m"]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "CLCA_SERVE_API_KEY": ""}
        with open(log, "wb") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"clca serve exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/models", timeout=2).status_code == 200:
                    return
            if time.monotonic() > deadline:
                pytest.fail(f"clca serve did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.2)  # polling interval of the readiness check, not synchronisation

    def answered(self) -> int:
        """Chat requests this server answered with 200, from its own access log."""
        lines = self.log.read_text().splitlines()
        return sum(1 for line in lines if "POST /v1/chat/completions" in line and " 200" in line)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)


@pytest.fixture()
def replicas(tmp_path: Path) -> Iterator[list[Replica]]:
    reps = [Replica(tmp_path / f"replica{i}.log") for i in range(2)]
    try:
        for r in reps:
            r.wait_ready()
        yield reps
    finally:
        for r in reps:
            r.stop()


def _llm(reps: list[Replica]) -> Any:
    urls = ",".join(r.url for r in reps)
    return load_model(f"openai:m@{urls}?concurrency=8&max_retries=4&backoff_base=0"
                      "&replica_cooldown=600", cache=False)  # fmt: skip


@pytest.mark.slow
def test_requests_spread_evenly_and_a_killed_replica_loses_nothing(replicas: list[Replica], tmp_path: Path) -> None:
    a, b = replicas
    llm = _llm(replicas)
    msgs = [{"role": "user", "content": "hello"}]

    async def spread() -> None:
        await asyncio.gather(*(llm.chat(msgs, GenParams(max_tokens=8)) for _ in range(N)))

    asyncio.run(spread())
    got = [a.answered(), b.answered()]
    assert sum(got) == N, got
    assert all(abs(n - N / 2) <= 0.1 * N / 2 for n in got), f"requests per replica {got}: not within 10% of even"

    # a run of N items through the runner into a run database; replica a is killed after the 50th record
    store = RunStore(tmp_path / "run")
    done: list[int] = []

    async def item(i: int) -> bool:
        res = await llm.chat([{"role": "user", "content": f"item {i}"}], GenParams(max_tokens=8))
        store.put(KIND, f"item-{i:03d}", {"i": i, "text": res.text})
        done.append(i)
        if len(done) == 50:
            a.proc.kill()  # mid-run: requests in flight to it fail and go to the other replica
        return True

    before_b = b.answered()
    summary = asyncio.run(run_items(range(N), item, concurrency=8, progress=False))
    assert a.proc.wait(timeout=30) is not None
    keys = [r.key for r in store.iter(KIND)]
    assert summary.ok == N and summary.failed == 0, summary
    assert sorted(keys) == [f"item-{i:03d}" for i in range(N)]  # none lost, none twice
    assert sorted(done) == list(range(N))  # every item finished exactly once
    assert all(r.data["text"] == "ok" for r in store.iter(KIND))
    failures = llm.stats.failures  # type: ignore[attr-defined]
    assert failures.get("connection", 0) >= 1, failures  # the dead replica's failures are counted
    assert b.answered() - before_b >= N - 50  # the rest of the run went to the survivor
    store.close()
    asyncio.run(llm.aclose())
