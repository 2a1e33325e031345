"""A whole small run (scenarios -> roleplay -> judge -> intents, then eval) with every model role served by
a fault-injecting OpenAI-compatible server: every item ends ok or failed-with-a-reason, the report's
counts equal the database, no stage stores an empty or truncated artifact as valid, a re-run against a
healthy server fills in exactly the failures, and in-flight requests stay bounded.

The roles are served by a scripted model that answers every JSON schema validly (fast); a separate
check runs the survey stage through the fault server around the real embedded model."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from test_reliability_support import check_artifacts, schema_mock

from clca.llm import load_model
from clca.pipeline import RunConfig, load_run_config, run_pipeline
from clca.store import RunStore
from clca.testing import Fault, FaultServer, fault_server

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "configs" / "demo.yaml"
# retry settings of the tests: fast backoff, short timeout, few retries (bounded work)
FAST = {"backoff_base": 0.01, "backoff_max": 0.05, "timeout": 1.0}

# transient faults: each request is retried past them
TRANSIENT = [
    Fault(kind="timeout", delay=2.0, requests=[4, 31]),
    Fault(kind="drop", requests=[6, 25]),
    Fault(kind="truncate", requests=[8, 27]),
    Fault(kind="invalid_json", requests=[9, 29]),
    Fault(kind="status", status=429, retry_after=0, every=7),
    Fault(kind="status", status=500, every=11),
    Fault(kind="status", status=503, every=13),
    Fault(kind="bad_schema", every=5),
    Fault(kind="delay", delay=0.02, every=3),
]
# the annotator (run one item at a time, so request numbers are per item) also meets persistent
# faults: 4 x 503 exhausts one turn (2 attempts x 2 model tries); 3 x bad schema exhausts the re-asks
# of one ask, twice in a row for another turn
ANNOTATOR = [
    Fault(kind="status", status=503, requests=[3, 4, 5, 6]),
    Fault(kind="bad_schema", requests=[9, 10, 11, 12, 13, 14]),
    *TRANSIENT[4:7],
]
# survey: a burst of 500s exhausts the bounded retries of one answer
STUDENT = [Fault(kind="status", status=500, requests=[5, 6, 7]), *TRANSIENT[1:7]]


@dataclass
class FaultRun:
    run_dir: Path
    cfg: RunConfig
    servers: dict[str, FaultServer]
    cache: Path


def _cfg(run_dir: Path, specs: dict[str, str]) -> RunConfig:
    overrides: dict[str, Any] = {
        "run_dir": str(run_dir),
        "scenarios.n": 3,
        "scenarios.progress": False,
        "roleplay.max_turns": 3,
        "roleplay.progress": False,
        "judge.progress": False,
        "intents.concurrency": 1,
        "intents.progress": False,
        "eval.mode": "generate",
        "eval.samples": 3,
        "eval.personas": 2,
        "eval.styles": ["persona"],
        "eval.items": ["Q1", "Q2", "Q3"],
        "eval.bootstrap": 20,
        "eval.concurrency": 1,
        "eval.progress": False,
        **{f"models.{role}": spec for role, spec in specs.items()},
    }
    return load_run_config(DEMO, overrides)


async def _eval(cfg: RunConfig) -> None:
    from clca.wvs import evaluate

    store = RunStore(cfg.run_dir)
    llm = load_model(cfg.models.student)
    try:
        await evaluate(store, llm, "base", cfg.stage_configs()["eval"])
    finally:
        await llm.aclose()
        store.close()


@pytest.fixture(scope="module")
def fault_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultRun]:
    tmp = tmp_path_factory.mktemp("faults")
    mp = pytest.MonkeyPatch()
    cache = tmp / "responses.sqlite"  # a private response cache: earlier test runs must not answer for the server
    mp.setattr("clca.llm._cache.default_cache_path", lambda: cache)
    schedules = {"teacher": TRANSIENT, "judge": TRANSIENT, "annotator": ANNOTATOR, "student": STUDENT}
    with (
        fault_server(schema_mock(model_id="t"), *schedules["teacher"], seed=1, hang_s=5) as t,
        fault_server(schema_mock(model_id="j"), *schedules["judge"], seed=2, hang_s=5) as j,
        fault_server(schema_mock(model_id="a"), *schedules["annotator"], seed=3, hang_s=5) as a,
        fault_server(schema_mock(model_id="s"), *schedules["student"], seed=4, hang_s=5) as s,
    ):
        servers = {"teacher": t, "judge": j, "annotator": a, "student": s}
        specs = {
            "teacher": t.model_string(max_retries=4, concurrency=4, **FAST),
            "judge": j.model_string(max_retries=4, **FAST),
            "annotator": a.model_string(max_retries=1, **FAST),
            "student": s.model_string(max_retries=2, **FAST),
        }
        cfg = _cfg(tmp / "run", specs)
        asyncio.run(run_pipeline(cfg, until="intents"))
        asyncio.run(_eval(cfg))
        yield FaultRun(tmp / "run", cfg, servers, cache)
    mp.undo()


def test_every_kind_of_fault_was_injected(fault_run: FaultRun) -> None:
    faults: dict[str, int] = {}
    for fs in fault_run.servers.values():
        for k, v in fs.counters.faults.items():
            faults[k] = faults.get(k, 0) + v
    for kind in ("status 429", "status 500", "status 503", "truncate", "invalid_json", "drop", "timeout", "bad_schema"):
        assert faults.get(kind, 0) >= 1, f"no {kind} fault was injected: {faults}"


def test_every_item_is_ok_or_failed_with_a_reason(fault_run: FaultRun) -> None:
    from clca.records import SURVEY_ANSWER as ANSWER

    with RunStore(fault_run.run_dir) as store:
        kinds = store.kinds()
        n_scen = sum(kinds["scenario"].values())
        assert n_scen == 3  # one per seed asked for, ok or failed
        ok_scen = kinds["scenario"].get("ok", 0)
        assert ok_scen >= 1
        assert sum(kinds["episode"].values()) == ok_scen  # samples: 1 per scenario
        ok_eps = kinds["episode"].get("ok", 0)
        assert sum(kinds["judgement"].values()) == ok_eps
        content_turns = sum(
            1
            for ep in store.iter("episode")
            for t in store.iter("turn", parent=ep.key)
            if t.data["action_type"] != "none" and t.data["action_type"] != "leave"
        )
        assert sum(kinds["intention"].values()) == content_turns
        # the persistent annotator faults failed two turns, each recorded with its reason
        failed = {r.key: r.error for r in store.iter("intention", status="failed")}
        assert len(failed) == 2, failed
        reasons = sorted(e.split(":")[0] for e in failed.values())
        assert reasons == ["HTTP 503", "StructuredOutputError"], failed  # server errors are grouped by status
        assert any("HTTP 503" in e for e in failed.values())
        # survey: 2 cultures x 2 personas x 3 items, one exhausted by the burst of 500s
        answers = {r.key: r for r in store.iter(ANSWER, status=None)}
        assert len(answers) == 2 * 2 * 3
        bad = [r for r in answers.values() if r.status == "failed"]
        assert len(bad) == 1 and "HTTP 500" in (bad[0].error or "") and "3 attempts" in (bad[0].error or "")


def test_no_stage_stores_an_empty_or_truncated_artifact(fault_run: FaultRun) -> None:
    with RunStore(fault_run.run_dir) as store:
        counts = check_artifacts(store)
    for kind in ("scenario", "episode", "turn", "judgement", "intention", "survey_answer", "metric"):
        assert counts.get(kind, 0) >= 1, f"no ok {kind}: {counts}"


def test_report_counts_match_the_database(fault_run: FaultRun) -> None:
    from clca.report import build_summary

    with RunStore(fault_run.run_dir) as store:
        data = build_summary(store)
        kinds = store.kinds()
        for kind, by_status in kinds.items():
            st = data.stages[kind]
            assert (st.ok, st.failed) == (by_status.get("ok", 0), by_status.get("failed", 0)), kind
            assert sum(st.reasons.values()) == st.failed
            assert st.reasons == store.failure_reasons(kind)


def test_rerun_against_a_healthy_server_fills_in_exactly_the_failures(fault_run: FaultRun) -> None:
    with RunStore(fault_run.run_dir) as store:
        before = store.kinds()
        ok_keys = {k: {r.key for r in store.iter(k)} for k in before}
        failed_intent = {r.key for r in store.iter("intention", status="failed")}
        failed_eps = {r.key for r in store.iter("episode", status="failed")}
    for fs in fault_run.servers.values():
        fs.faults = []  # the server recovered
    asyncio.run(run_pipeline(fault_run.cfg, until="intents", retry_failed=True))
    asyncio.run(_eval(fault_run.cfg))
    with RunStore(fault_run.run_dir) as store:
        after = store.kinds()
        check_artifacts(store)
        # retried: the failed intentions are filled in; episodes whose role-play or judgement failed before
        # may now be played and kept, and get intentions of their own
        now = {r.key for r in store.iter("intention")}
        assert ok_keys["intention"] | failed_intent <= now
        new_eps = {k.rsplit("/", 1)[0] for k in now - ok_keys["intention"] - failed_intent}
        assert new_eps <= failed_eps | {r.key for r in store.iter("episode")} - set(ok_keys.get("episode", set()))
        for kind, keys in ok_keys.items():
            assert keys <= {r.key for r in store.iter(kind)}, f"an ok {kind} was lost"
        assert set(after["intention"]) == {"ok"}  # no failure left
        assert after["survey_answer"] == {"ok": sum(before["survey_answer"].values())}


def test_in_flight_requests_are_bounded_during_a_stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The judge stage runs 32 episodes at once; the backend lets only `concurrency` requests reach the server."""
    from clca.judge import JudgeConfig, judge_episodes

    monkeypatch.setattr("clca.llm._cache.default_cache_path", lambda: tmp_path / "cache.sqlite")
    with (
        fault_server(schema_mock(model_id="t")) as teacher,
        fault_server(schema_mock(model_id="j"), Fault(kind="delay", delay=0.2)) as judge,
    ):
        cfg = _cfg(tmp_path / "run", {k: teacher.model_string(**FAST) for k in ("teacher", "judge", "annotator")})
        cfg = cfg.model_copy(update={"scenarios": cfg.scenarios.model_copy(update={"n": 6})})
        asyncio.run(run_pipeline(cfg, until="roleplay"))

        async def go() -> None:
            llm = load_model(judge.model_string(concurrency=3, **FAST))
            try:
                with RunStore(cfg.run_dir) as store:
                    await judge_episodes(store, llm, JudgeConfig(concurrency=32, progress=False))
            finally:
                await llm.aclose()

        asyncio.run(go())
        assert judge.counters.requests >= 6 * 3
        assert judge.counters.max_in_flight == 3


@pytest.mark.slow
def test_survey_on_the_real_model_through_faults_equals_in_process(
    embedded_llm: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Faults in transit change nothing: the embedded model's answer distributions through the fault
    server (429, 500, truncated and dropped responses, delays) equal those computed in-process."""
    from clca.wvs import EvalConfig, evaluate

    monkeypatch.setattr("clca.llm._cache.default_cache_path", lambda: tmp_path / "cache.sqlite")
    cfg = EvalConfig(
        cultures=["Egypt"], personas=1, items=["Q1", "Q2"], bootstrap=0, mode="logprobs", concurrency=2, progress=False
    )
    faults = [  # 7 faulty requests in all, fewer than the 9 attempts each request is allowed
        Fault(kind="status", status=429, retry_after=0, requests=[1, 9]),
        Fault(kind="status", status=500, requests=[2, 3]),
        Fault(kind="truncate", requests=[5]),
        Fault(kind="drop", requests=[7]),
        Fault(kind="invalid_json", requests=[11]),
    ]

    async def run(llm: Any, where: Path) -> dict[str, list[float]]:
        with RunStore(where) as store:
            await evaluate(store, llm, "m", cfg)
            assert store.count("survey_answer", status="failed") == 0
            return {r.key: r.data["probs"] for r in store.iter("survey_answer")}

    with fault_server(embedded_llm, *faults, served_name="smol") as fs:
        spec = fs.model_string(max_retries=8, scoring="prompt_logprobs", backoff_base=0.01, timeout=120)
        remote = load_model(spec, cache=False)
        try:
            via_faults = asyncio.run(run(remote, tmp_path / "remote"))
        finally:
            asyncio.run(remote.aclose())
        assert sum(fs.counters.faults.values()) == 7
    local = asyncio.run(run(embedded_llm, tmp_path / "local"))
    assert via_faults.keys() == local.keys() and len(local) >= 2
    for k, probs in local.items():
        assert math.isclose(sum(probs), 1.0, abs_tol=1e-6)
        assert all(math.isclose(a, b, abs_tol=1e-3) for a, b in zip(probs, via_faults[k], strict=True)), k


def test_the_artifact_check_catches_empty_and_truncated_rows(tmp_path: Path) -> None:
    """The invariant check above is not vacuous: it flags the rows a careless stage would store."""
    with RunStore(tmp_path / "run") as store:
        store.put("turn", "EGY/seed-001/s0/t000", {"action_type": "speak", "argument": "  "}, parent="EGY/seed-001/s0")
        store.put("survey_answer", "m/persona/EGY/p1/Q1", {"codes": [1, 2], "probs": [0.5, 0.4], "safeguarded": 0.0})
        store.put("judgement", "EGY/seed-009/s0", {})
        store.fail("intention", "EGY/seed-001/s0/t000", "")
        with pytest.raises(AssertionError) as ei:
            check_artifacts(store)
    msg = str(ei.value)
    for what in ("empty argument", "sum to 0.9", "empty data", "failed without a reason"):
        assert what in msg, msg
