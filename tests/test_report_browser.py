"""report.html in a real headless Chromium: the DOM has the tables and charts, and nothing planted runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from report_fixtures import Dom, browser_or_skip, build_run, dump_dom

from clca.report import build_summary, write_report
from clca.store import RunStore


def test_report_renders_in_chromium(run_dir: Path) -> None:
    browser = browser_or_skip()
    build_run(run_dir, hostile=True).close()
    paths = write_report(run_dir)
    with RunStore(run_dir) as s:
        data = build_summary(s)
    dom = Dom()
    dom.feed(dump_dom(browser, paths.html))
    text = " ".join(dom.text)

    # planted payloads stay text: no script element at all, no injected img, no event-handler attributes
    assert dom.tags.get("script", 0) == 0
    assert dom.tags.get("img", 0) == 0
    assert not [a for a in dom.attrs if a[1].startswith("on")]
    assert "<script>alert(1)</script>" in text  # the planted text is shown literally

    # tables: stages, stage runs, per culture, dialogue quality, drop reasons, verdict labels, survey, one metric
    # table per culture,
    # target shifts, target ranks, dataset, and the verdict table of each judged sample dialogue
    judged = sum(1 for s in data.samples if s.verdicts)
    assert dom.tags.get("table", 0) == 7 + len(data.cultures) + 1 + 1 + 1 + judged
    # charts: judged per culture, cultural share, JSD (KL is drawn once: by the compare report's KL figure),
    # one shift chart per culture and adapted model (clca and the planted one), the similarity grid, the
    # training loss; and the compare report's two matplotlib figures inline (KL per culture, per-question
    # distributions of the target culture)
    n_shift = len({(s.culture, s.adapted) for s in data.wvs.shifts})
    assert n_shift == 2 * len(data.cultures)
    assert dom.tags.get("svg", 0) == 2 + 1 + n_shift + 1 + 1 + 2
    figures = [a[2] for a in dom.attrs if a[0] == "figure" and a[1] == "data-figure"]
    assert figures == ["kl_per_culture", "items_DEU"]
    assert dom.tags.get("details", 0) == data.n_dialogues
    assert ("td", "data-kind", "episode") in dom.attrs
    # a known value: the adapted model's KL for DEU, as the table prints it
    kl = next(r for r in data.wvs.scores if r.culture == "DEU" and r.role == "adapted").values["kl"].value
    assert f"{kl:.4f}" in text
    assert f"{data.judge.kept} kept" in text


@pytest.mark.slow  # two evaluations, the report and two Chromium runs
def test_cultural_map_renders_in_chromium(tmp_path: Path) -> None:
    """The demo's report path with the map items (configs/demo.yaml evaluates iw10): a base and an adapted
    model evaluated for Egypt and the United States through the real evaluate + store (a scripted backend
    stands in for the embedded model), the report rendered in Chromium: the map figure is in the DOM with
    every country, the four model points with their CI ellipses and the two base -> adapted arrows; and a
    screenshot of the figure shows the model colours."""
    import asyncio
    import subprocess
    import tempfile

    from PIL import Image
    from test_iwmap import _leaning

    from clca.llm._mock import MockLLM
    from clca.wvs import EvalConfig, evaluate
    from clca.wvs._iwmap import published_positions

    browser = browser_or_skip()
    run = tmp_path / "run"
    cfg = EvalConfig(cultures=["Egypt"], compare=["United States"], items=["iw10"], personas=4, bootstrap=50,
                     progress=False)  # fmt: skip
    with RunStore(run) as store:
        for alias, shift in (("base", 1.5), ("adapted", -1.5)):
            asyncio.run(evaluate(store, MockLLM(option_probs=_leaning(shift)), alias, cfg))
    paths = write_report(run)
    dom = Dom()
    dom.feed(dump_dom(browser, paths.html))
    figures = [a[2] for a in dom.attrs if a[0] == "figure" and a[1] == "data-figure"]
    assert "cultural_map" in figures
    classes = [a[2] for a in dom.attrs if a[1] == "class"]
    assert classes.count("country") == len(published_positions())
    assert classes.count("model-point") == 4 and classes.count("ci-ellipse") == 4
    assert classes.count("shift-arrow") == 2 and classes.count("culture-label") == 2
    assert dom.tags.get("script", 0) == 0
    # a screenshot of the figure alone: the base model's grey and the adapted model's colour are drawn
    shot = tmp_path / "map.png"
    with tempfile.TemporaryDirectory() as profile:
        res = subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", f"--user-data-dir={profile}",
             "--hide-scrollbars", "--window-size=760,560", f"--screenshot={shot}",
             (paths.html.parent / "cultural_map.svg").as_uri()],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert res.returncode == 0 and shot.is_file(), res.stderr[-2000:]
    pixels = {c for _, c in Image.open(shot).convert("RGB").getcolors(maxcolors=1 << 24) or []}
    assert (0x55, 0x55, 0x55) in pixels  # base model markers
    assert (0x4C, 0x72, 0xB0) in pixels  # the adapted model's markers (first palette colour)
