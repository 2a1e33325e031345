"""report.html in a real headless Chromium: the DOM has the tables and charts, and nothing planted runs."""

from __future__ import annotations

from pathlib import Path

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
    # charts: judged per culture, cultural share, KL, JSD, one shift chart per culture and adapted model
    # (clca and the planted one), the similarity grid, the training loss; and the compare report's two
    # matplotlib figures inline (KL per culture, per-question distributions of the target culture)
    n_shift = len({(s.culture, s.adapted) for s in data.wvs.shifts})
    assert n_shift == 2 * len(data.cultures)
    assert dom.tags.get("svg", 0) == 2 + 2 + n_shift + 1 + 1 + 2
    figures = [a[2] for a in dom.attrs if a[0] == "figure" and a[1] == "data-figure"]
    assert figures == ["kl_per_culture", "items_DEU"]
    assert dom.tags.get("details", 0) == data.n_dialogues
    assert ("td", "data-kind", "episode") in dom.attrs
    # a known value: the adapted model's KL for DEU, as the table prints it
    kl = next(r for r in data.wvs.scores if r.culture == "DEU" and r.role == "adapted").values["kl"].value
    assert f"{kl:.4f}" in text
    assert f"{data.judge.kept} kept" in text
