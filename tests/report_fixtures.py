"""Builds a realistic run database for the report tests (stored shapes as the stage packages write them)."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import tempfile
from functools import lru_cache
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from clca.store import RunStore
from clca.wvs import Answer, bootstrap_ci

XSS_SCRIPT = "<script>alert(1)</script>"
XSS_IMG = '"><img src=x onerror=alert(1)>'
HOSTILE = f"{XSS_SCRIPT} and {XSS_IMG}"

CONFIDENCES = ("very_confident", "confident", "not_sure")
QUESTIONS = [f"Q{i}" for i in range(1, 46) if i != 42]


def _character(rng: random.Random, first: str, last: str, hostile: bool) -> dict[str, Any]:
    return {
        "first_name": first,
        "last_name": HOSTILE if hostile else last,
        "age": rng.randint(20, 70),
        "gender": "woman",
        "pronouns": "she/her",
        "occupation": "teacher",
        "public_info": "Known in the neighbourhood.",
        "personality": "calm",
        "secret": "Owes money to a friend.",
        "goal": "Convince the other person to help." + (f" {XSS_IMG}" if hostile else ""),
    }


def scenario(culture: str, sid: str, rng: random.Random, hostile: bool = False) -> dict[str, Any]:
    return {
        "setting": ("A small tea house on a rainy evening." + (f" {HOSTILE}" if hostile else "")),
        "relationship": "friend",
        "characters": [_character(rng, "Aiko", "Tanaka", hostile), _character(rng, "Ren", "Sato", False)],
        "culture": culture,
        "domain": "family",
        "provenance": {"kind": "seed", "id": sid, "source": "fixture"},
        "extra": {},
    }


def verdicts(rng: random.Random, hostile: bool = False) -> dict[str, Any]:
    why = "The speakers are polite." + (f" {HOSTILE}" if hostile else "")
    return {
        "culture": {
            "reasoning": why,
            "label": rng.choice(["aligned", "not_aligned"]),
            "confidence": rng.choice(CONFIDENCES),
        },
        "quality": {
            "reasoning": why,
            "label": rng.choice(["good", "good", "bad"]),
            "confidence": rng.choice(CONFIDENCES),
        },
        "meta": {
            "critique": why,
            "label": rng.choice(["aligned", "aligned", "not_aligned"]),
            "confidence": rng.choice(CONFIDENCES),
        },
    }


def _metric_rows(
    store: RunStore,
    alias: str,
    style: str,
    culture: str,
    rng: random.Random,
    level: float,
    items: list[str],
    name: str | None = None,
) -> None:
    """Metric rows exactly as clca.wvs.compute_metrics stores them (key and data shape)."""
    per = {
        "kl": {q: max(0.0, level + rng.uniform(-0.3, 0.3)) for q in items},
        "jsd": {q: max(0.0, level / 2 + rng.uniform(-0.1, 0.1)) for q in items},
        "w1": {q: level / 3 + rng.uniform(-0.05, 0.05) for q in items},
        "accuracy": {q: 0.3 + rng.uniform(0, 0.2) for q in items},
        "safeguarded": {q: rng.uniform(0, 0.05) for q in items},
    }
    per["similarity"] = {q: 1 - v for q, v in per["jsd"].items()}
    for metric, vals in per.items():
        mean, lo, hi = bootstrap_ci(list(vals.values()))
        store.put(
            "metric",
            f"{name or alias}/{style}/{culture}/base/{metric}",
            {"mean": mean, "lo": lo, "hi": hi, "per_item": vals},
        )
    # a robustness variant that the report must not mix into the main table
    store.put(
        "metric",
        f"{name or alias}/{style}/{culture}/perm1/kl",
        {"mean": 9.0, "lo": 9.0, "hi": 9.0, "per_item": {items[0]: 9.0}},
    )
    sims = {c: 0.6 + rng.uniform(0, 0.1) for c in ("USA", "DEU", "JPN", "MEX", "EGY")}
    sims[culture] = 0.8 if alias != "base" else 0.68
    store.put(
        "metric",
        f"{name or alias}/{style}/{culture}/specificity",
        {"similarity": dict(sorted(sims.items(), key=lambda kv: -kv[1])), "model": _model_shares(culture, items, rng)},
    )


@lru_cache(maxsize=1)
def _reference() -> Any:
    from clca.wvs import EvalConfig
    from clca.wvs._evaluate import eval_inputs

    return eval_inputs(EvalConfig(cultures=[]))[1]


def _model_shares(culture: str, items: list[str], rng: random.Random) -> dict[str, list[float]]:
    """The model's answer shares per item (each option of the bundled reference, then safeguarded), as the
    specificity row stores them: what the per-question figure draws."""
    country = _reference().countries.get(culture)
    out = {}
    for q in items:
        dist = country.items.get(q) if country is not None else None
        if dist is not None:
            w = [rng.uniform(0.1, 1.0) for _ in dist.codes] + [0.05]
            out[q] = [x / sum(w) for x in w]
    return out


def _answer(alias: str, style: str, culture: str, persona: str, item: str, safeguarded: float) -> dict[str, Any]:
    return Answer(
        item=item,
        persona=persona,
        culture=culture,
        style=style,
        variant="base",
        mode="logprobs",
        codes=[1, 2, 3, 4],
        probs=[(1 - safeguarded) / 4] * 4,
        safeguarded=safeguarded,
        order=[1, 2, 3, 4],
    ).model_dump()


def build_run(
    run_dir: Path,
    *,
    cultures: tuple[str, ...] = ("DEU", "JPN"),
    scenarios_per_culture: int = 4,
    samples: int = 2,
    turns: int = 4,
    hostile: bool = False,
    seed: int = 0,
    with_metrics: bool = True,
    with_training: bool = True,
) -> RunStore:
    """A run directory with every stage's rows, some failures, and (hostile=True) XSS payloads in model text."""
    rng = random.Random(seed)
    store = RunStore(run_dir)
    store.set_meta(
        "stage:roleplay",
        {
            "stage": "roleplay",
            "seconds": 12.5,
            "model_calls": 40,
            "detail": "episodes: 14 done" + (f" {XSS_SCRIPT}" if hostile else ""),
        },
    )
    store.bind_config(
        {
            "name": "fixture" + (f" {XSS_SCRIPT}" if hostile else ""),
            "cultures": list(cultures),
            "roleplay": {"samples": samples},
        },
        "0" * 64,
    )
    for culture in cultures:
        for i in range(scenarios_per_culture):
            skey = f"{culture}/seed-{i:03d}"
            store.put("scenario", skey, scenario(culture, f"seed-{i:03d}", rng, hostile and i == 0))
            for s in range(samples):
                ekey = f"{skey}/s{s}"
                if i == scenarios_per_culture - 1 and s == 1:
                    store.fail(
                        "episode", ekey, "BackendError: turn 2: server unreachable" + (f" {XSS_IMG}" if hostile else "")
                    )
                    continue
                for t in range(turns):
                    text = f"Turn {t} words here please." + (f" {HOSTILE}" if hostile and t == 1 else "")
                    tkey = f"{ekey}/t{t:03d}"
                    store.put(
                        "turn",
                        tkey,
                        {
                            "idx": t,
                            "agent": t % 2,
                            "speaker": ["Aiko Tanaka", "Ren Sato"][t % 2],
                            "action_type": "speak",
                            "argument": text,
                            "model": "embedded",
                            "seed": t,
                        },
                        parent=ekey,
                    )
                    if t == turns - 1 and s == 0:
                        store.fail("intention", tkey, "StructuredOutputError: no valid IntentAnnotation", parent=ekey)
                        continue
                    cultural = rng.random() < 0.4
                    store.put(
                        "intention",
                        tkey,
                        {
                            "episode_key": ekey,
                            "idx": t,
                            "speaker": "x",
                            "culture": culture,
                            "intention": "To be polite." + (f" {HOSTILE}" if hostile else ""),
                            "label": "cultural" if cultural else "generic",
                            "cultural_reason": "Harmony matters here." if cultural else None,
                            "unconfident_reason": None,
                            "model": "embedded",
                        },
                        parent=ekey,
                    )
                store.put(
                    "episode",
                    ekey,
                    {
                        "scenario_key": skey,
                        "sample": s,
                        "culture": culture,
                        "end_reason": "turn_limit",
                        "n_turns": turns,
                        "n_speak": turns,
                        "models": ["embedded"],
                        "seed": 0,
                        "temperature": 0.7,
                    },
                )
                if i == 0 and s == 1:
                    store.fail(
                        "judgement",
                        ekey,
                        "StructuredOutputError: clca judge: no valid QualityVerdict",
                        data={"failures": {"clca": "x"}},
                    )
                elif not (i == 1 and s == 1):  # one episode per culture stays unjudged
                    store.put("judgement", ekey, verdicts(rng, hostile and i == 0))
        store.fail(
            "scenario",
            f"{culture}/seed-{scenarios_per_culture:03d}",
            "StructuredOutputError: no valid ScenarioDraft after 3 attempts",
        )
    if with_metrics:
        items = QUESTIONS
        for culture in cultures:
            _metric_rows(store, "base", "persona", culture, rng, 0.6, items)
            _metric_rows(store, "base", "cultural", culture, rng, 0.62, items)
            _metric_rows(store, "clca", "persona", culture, rng, 0.5, items)
            if hostile:
                _metric_rows(store, "evil", "persona", culture, rng, 0.7, items[:3], name=f"evil{XSS_IMG}")
            for i, q in enumerate(items[:5]):
                key = f"base/persona/{culture}/p0/{q}"
                store.put("survey_answer", key, _answer("base", "persona", culture, "p0", q, 1.0 if i == 0 else 0.0))
            store.fail("survey_answer", f"base/persona/{culture}/p0/{items[5]}", "BackendError: server unreachable")
    if with_training:
        ds = run_dir / "dataset"
        ds.mkdir(parents=True, exist_ok=True)
        (ds / "info.json").write_text(
            json.dumps(
                {
                    "out_dir": str(ds),
                    "config": {"variant": "full"},
                    "rows": {"train": 40, "val": 6},
                    "rows_by_task": {"train": {"dialogue": 24, "intent": 16}, "val": {"dialogue": 4, "intent": 2}},
                    "scenarios": {"train": [], "val": []},
                    "episodes_read": 14,
                    "episodes_used": 9,
                    "duplicates_removed": 1,
                    "skipped": {"judge rejected": 5},
                    "token_stats": {},
                    "files": {},
                }
            )
        )
        # what clca.train leaves in an adapter directory: log_history.json and clca_adapter.json
        tr = run_dir / "adapters" / "full"
        (tr / "checkpoint-10").mkdir(parents=True, exist_ok=True)
        log: list[dict[str, Any]] = [
            {"step": s, "epoch": s / 10, "loss": 2.5 - 0.1 * s, "learning_rate": 1e-4} for s in range(1, 11)
        ]
        log.append({"step": 10, "epoch": 1.0, "eval_loss": 1.9})
        log.append({"step": 10, "epoch": 1.0, "train_loss": 2.0, "train_runtime": 3.5})
        (tr / "log_history.json").write_text(json.dumps(log, indent=1))
        (tr / "clca_adapter.json").write_text(
            json.dumps(
                {
                    "base_model": "embedded",
                    "base_model_dir": "/x",
                    "train_config": {},
                    "result": {
                        "adapter_dir": str(tr),
                        "base_model": "embedded",
                        "global_step": 10,
                        "train_loss": 2.0,
                        "eval_loss": 1.9,
                        "train_tokens": 4000,
                        "train_runtime_s": 3.5,
                        "tokens_per_second": 1142.9,
                        "resumed_from": None,
                    },
                }
            )
        )
        # the checkpoint's trainer_state.json repeats the same history: not a second training
        (tr / "checkpoint-10" / "trainer_state.json").write_text(json.dumps({"global_step": 10, "log_history": log}))
    return store


# -- headless Chromium ------------------------------------------------------------------------------------
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def browser_or_skip() -> str:
    for name in (os.environ.get("CLCA_CHROMIUM"), *BROWSERS):
        if name and (path := shutil.which(name)):
            return path
    pytest.skip("no Chromium found (apt-get install chromium, or set CLCA_CHROMIUM); skipping the browser test")


class Dom(HTMLParser):
    """Counts elements and collects text of the DOM Chromium dumps."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: dict[str, int] = {}
        self.attrs: list[tuple[str, str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] = self.tags.get(tag, 0) + 1
        self.attrs += [(tag, k, v) for k, v in attrs]

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def dump_dom(browser: str, page: Path) -> str:
    with tempfile.TemporaryDirectory() as profile:
        cmd = [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            f"--user-data-dir={profile}",
            "--dump-dom",
            page.as_uri(),
        ]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout
