"""Render a `ReportData` as a self-contained HTML page and a Markdown summary; write both atomically."""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
import yaml
from markupsafe import Markup

from .._files import atomic_dir
from .._outputs import check_output
from ..errors import ConfigError, DataError
from ..records import EPISODE, INTENTION, JUDGEMENT, METRIC, SCENARIO, SURVEY_ANSWER, TURN
from ..store import DB_NAME, RunStore
from . import _svg
from ._data import ReportData, build_summary
from ._metrics import METRICS

_TEMPLATES = Path(__file__).parent / "templates"
MAX_SHIFT_CHARTS = 12


@dataclass(frozen=True)
class ReportPaths:
    html: Path
    markdown: Path


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.1f}%"


def _md(v: Any) -> str:
    """Text safe inside a Markdown table cell: no pipes, no line breaks, no raw HTML."""
    s = " ".join(str(v).split())
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(_TEMPLATES)),
        autoescape=lambda name: name is not None and name.endswith(".html.j2"),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(fmt=_fmt, pct=_pct, md=_md)
    return env


def _est(row: Any, name: str) -> tuple[float, float | None, float | None] | None:
    e = row.values.get(name)
    return None if e is None else (e.value, e.ci_low, e.ci_high)


#: the matplotlib figure (by name) that already shows a metric's per-culture chart
FIGURE_OF_METRIC = {"kl": "kl_per_culture"}


def charts(data: ReportData, skip: Sequence[str] = ()) -> dict[str, list[Markup]]:
    """All SVG charts of the report, by section (each section's charts come from its own builder); `skip`:
    metrics whose per-culture chart a figure already shows (each figure once in the report)."""
    return {
        "pipeline": _pipeline_charts(data),
        "metrics": _metric_charts(data, skip),
        "shift": _shift_charts(data),
        "similarity": _similarity_charts(data),
        "training": _training_charts(data),
    }


def _pipeline_charts(data: ReportData) -> list[Markup]:
    """Judged dialogues kept/dropped per culture; the share of cultural intentions per culture."""
    out: list[Markup] = []
    if data.judge.by_culture:
        cs = list(data.judge.by_culture)
        vals = {
            (c, s): (float(getattr(data.judge.by_culture[c], s)), None, None) for c in cs for s in ("kept", "dropped")
        }
        out.append(
            _svg.bar_chart(
                cs, ["kept", "dropped"], vals, title="Judged dialogues per culture", y_label="dialogues",
                width=540, height=260,
            )
        )  # fmt: skip
    if data.intentions.by_culture:
        cs = list(data.intentions.by_culture)
        vals = {(c, "cultural share"): (data.intentions.by_culture[c].share or 0.0, None, None) for c in cs}
        out.append(
            _svg.bar_chart(
                cs, ["cultural share"], vals, title="Share of cultural intentions", y_label="share",
                width=540, height=260,
            )
        )  # fmt: skip
    return out


def _metric_charts(data: ReportData, skip: Sequence[str] = ()) -> list[Markup]:
    """KL and JSD to the survey per culture and model (with their confidence intervals), less `skip`."""
    out: list[Markup] = []
    scores = data.wvs.scores
    labels = list(dict.fromkeys(r.label for r in scores))
    for name in ("kl", "jsd"):
        if name in skip:
            continue
        if name in skip:
            continue
        vals = {(r.culture, r.label): t for r in scores if (t := _est(r, name)) is not None}
        if vals:
            title = f"{METRICS[name][0]} to the survey per culture (lower is better; whiskers: 95% CI)"
            cultures = [c for c in data.cultures if any(k[0] == c for k in vals)]
            out.append(_svg.bar_chart(cultures, labels, vals, title=title, y_label=METRICS[name][0], width=760))
    return out


def _shift_charts(data: ReportData) -> list[Markup]:
    """Per-question shifts (adapted minus base), one chart per culture and model pair (at most MAX_SHIFT_CHARTS)."""
    pairs: dict[tuple[str, str, str], list[Any]] = {}
    for s in data.wvs.shifts:
        pairs.setdefault((s.culture, s.base, s.adapted), []).append(s)
    return [
        _svg.diverging_bars(
            [s.question for s in items],
            [s.delta for s in items],
            title=f"{culture}: per-question {items[0].metric.upper()} shift, {adapted} minus {base}",
            x_label="negative = closer to the survey after adaptation",
        )
        for (culture, base, adapted), items in list(pairs.items())[:MAX_SHIFT_CHARTS]
    ]


def _similarity_charts(data: ReportData) -> list[Markup]:
    """The 1-JSD similarity of each model to each culture's survey (the target outlined)."""
    sim = data.wvs.similarity
    if not sim:
        return []
    rows = list(dict.fromkeys(c.model for c in sim))
    cols = list(dict.fromkeys(c.culture for c in sim))
    vals = {(c.model, c.culture): c.similarity for c in sim}
    hl = {c.model: c.target for c in sim}
    title = "1-JSD similarity to each culture's survey (outlined: target)"
    return [_svg.heatmap(rows, cols, vals, highlight=hl, title=title)]


def _training_charts(data: ReportData) -> list[Markup]:
    """Training (and eval) loss per step of each training run."""
    series: dict[str, list[tuple[float, float]]] = {}
    for t in data.trainings:
        name = t.path if len(data.trainings) > 1 else "train"
        if t.loss:
            series[f"{name} loss"] = t.loss
        if t.eval_loss:
            series[f"{name} eval loss"] = t.eval_loss
    if not series:
        return []
    return [_svg.line_chart(series, title="Training loss", x_label="step", y_label="loss")]


def report_figures(store: RunStore, data: ReportData, out: Path) -> tuple[list[Any], str | None]:
    """The comparison's matplotlib figures of this one run (KL per culture with CIs per model and style; the
    per-question small multiples of model vs survey for the first target culture), written into OUT as SVG
    with the plotted data as CSV, and returned with their inline SVG markup; with a one-line reason instead
    when they cannot be drawn (e.g. the survey the run was scored against is no longer readable). No WVS
    metrics: no figures."""
    if not data.wvs.scores:
        return [], None
    from ._compare import run_comparison
    from ._figures import write_figures

    try:
        comp = run_comparison(store, Path(store.run_dir).name)
        figs = write_figures(comp, out, ablation=False, svg=True)
    except (ConfigError, DataError) as e:
        return [], f"figures not drawn: {e}"
    from ._map import map_figure, read_map

    targets = [c for c in comp.runs[0].targets if c in comp.cultures] if comp.runs else []
    cmap = map_figure(read_map(store, "", data.wvs.base_model), out, comp.cultures, targets, svg=True)
    return figs + ([cmap] if cmap is not None else []), None


def _context(data: ReportData, figures: Sequence[Any] = (), figures_note: str | None = None) -> dict[str, Any]:
    config = yaml.safe_dump(data.config, sort_keys=False, allow_unicode=True) if data.config else None
    metric_cols = [m for m in METRICS if any(m in r.values for r in data.wvs.scores)]
    best: dict[str, dict[str, float]] = {}
    for r in data.wvs.scores:
        for m, e in r.values.items():
            cur = best.setdefault(r.culture, {}).get(m)
            lower = METRICS.get(m, ("", True))[1]
            if cur is None or (e.value < cur if lower else e.value > cur):
                best[r.culture][m] = e.value
    return {
        "d": data,
        "config_text": config,
        "config_json": json.dumps(data.config, ensure_ascii=False) if data.config else "",
        "charts": charts(data, skip=[m for m, fig in FIGURE_OF_METRIC.items() if fig in {f.name for f in figures}]),
        "figures": [(f, Markup(f.svg or "")) for f in figures],
        "figures_note": figures_note,
        "metric_cols": metric_cols,
        "best": best,
        "metric_titles": {k: v[0] for k, v in METRICS.items()},
        "generated": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "stage_titles": {
            SCENARIO: "Scenarios",
            EPISODE: "Episodes (dialogues)",
            TURN: "Turns",
            JUDGEMENT: "Judgements",
            INTENTION: "Intentions",
            SURVEY_ANSWER: "Survey answers",
            METRIC: "Metrics",
        },
    }


def render_html(data: ReportData, figures: Sequence[Any] = (), figures_note: str | None = None) -> str:
    return _env().get_template("report.html.j2").render(**_context(data, figures, figures_note))


def render_markdown(data: ReportData, figures: Sequence[Any] = (), figures_note: str | None = None) -> str:
    return _env().get_template("summary.md.j2").render(**_context(data, figures, figures_note)).strip() + "\n"


def write_report(
    run: RunStore | str | Path,
    out_dir: str | Path | None = None,
    *,
    samples: int = 30,
    base_model: str | None = None,
    figures: bool = True,
    overwrite: bool = False,
) -> ReportPaths:
    """Write report.html and summary.md of a run (an open RunStore or a run directory) into OUT_DIR
    (default RUN_DIR/report), with the figures' files (SVG, and their data as CSV) beside them unless
    figures=False. The output policy (clca._outputs) is applied first; everything is rendered into a
    temporary sibling folder that then replaces OUT_DIR."""
    if isinstance(run, RunStore):
        return _write(run, Path(run.run_dir), out_dir, samples, base_model, figures, overwrite)
    run_path = Path(run)
    if not (run_path / DB_NAME).is_file():
        raise DataError(f"{run_path}: not a run directory (no {DB_NAME} in it)")
    _out(run_path, out_dir, overwrite)  # before opening anything
    with RunStore(run_path, read_only=True) as store:
        return _write(store, run_path, out_dir, samples, base_model, figures, overwrite)


def _out(run_path: Path, out_dir: str | Path | None, overwrite: bool) -> Path:
    out = Path(out_dir) if out_dir is not None else run_path / "report"
    return check_output(out, kind="dir", inputs=[run_path], overwrite=overwrite, own=("report.html", "summary.md"))


def _write(
    store: RunStore,
    run_path: Path,
    out_dir: str | Path | None,
    samples: int,
    base_model: str | None,
    figures: bool,
    overwrite: bool = False,
) -> ReportPaths:
    out = _out(run_path, out_dir, overwrite)
    data = build_summary(store, samples=samples, base_model=base_model)
    try:
        with atomic_dir(out, True) as tmp:  # report.html marks it as clca's
            figs, note = report_figures(store, data, tmp) if figures else ([], None)
            (tmp / "report.html").write_text(render_html(data, figs, note), encoding="utf-8")
            (tmp / "summary.md").write_text(render_markdown(data, figs, note), encoding="utf-8")
    except OSError as e:
        raise DataError(f"{out}: cannot write the report folder ({e.strerror or e})") from None
    given = Path(out_dir) if out_dir is not None else run_path / "report"
    return ReportPaths(html=given / "report.html", markdown=given / "summary.md")
