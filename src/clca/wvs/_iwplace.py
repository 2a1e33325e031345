"""Models on the Inglehart-Welzel map: the map an evaluation uses (background positions and projection),
each evaluated (model, style, culture)'s position with a bootstrap CI over personas, and its distances to
every culture on the map; stored as one metric row per (model, style, culture) (`records.map_key`)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..countries import country_name
from ..errors import DataError
from ..records import map_key
from ..store import RunStore
from ._answer import Answer
from ._iwmap import (
    AXES,
    QUESTIONS,
    VARS,
    MapCountry,
    Projection,
    calibrate,
    expected_values,
    factor_positions,
    published_positions,
    respondent_values,
    vector,
    weighted_means,
)
from ._questionnaire import Questionnaire
from ._reference import ReferenceTable
from ._result import MetricRow

CHI2_95_2DF = 5.991464547107979  # the 95 % quantile of chi-square with 2 degrees of freedom (the CI ellipse)
MIN_FACTOR_COUNTRIES = 10  # below this a respondent file's own factor analysis is not used


@dataclass
class CulturalMap:
    """The background countries (positions and zones) and the projection models are placed with."""

    countries: dict[str, MapCountry]
    projection: Projection
    source: str  # "published" | "survey"

    def summary(self) -> dict[str, Any]:
        return {
            "source": self.source, "method": self.projection.method, "countries": self.projection.countries,
            "loo_error": self.projection.loo_error, "weights": self.projection.weights.tolist(),
            "intercept": self.projection.intercept.tolist(), "note": self.projection.note,
            "positions": {c: list(m.position) for c, m in self.countries.items()} if self.source == "survey" else None,
        }  # fmt: skip


def survey_means(files: Sequence[str], q: Questionnaire, labels: str | None = None) -> dict[str, np.ndarray]:
    """Country-level weighted means of the ten variables from respondent files (every country in them)."""
    from ._survey import iter_respondents

    rows: dict[str, list[tuple[dict[str, float], float]]] = defaultdict(list)
    for f in files:
        for r in iter_respondents(f, q, labels):
            vals = respondent_values(r.answers)
            if vals:
                rows[r.country].append((vals, r.weight))
    return {c: vector(weighted_means(v)) for c, v in rows.items()}


def reference_means(ref: ReferenceTable) -> dict[str, np.ndarray]:
    """Country-level means from answer shares (countries with at least one of the map's questions)."""
    out: dict[str, np.ndarray] = {}
    for c, cref in ref.countries.items():
        dists = {q: (d.codes, d.shares) for q, d in cref.items.items() if q in QUESTIONS}
        vals = expected_values(dists)
        if len(vals) >= 8:
            out[c] = vector(vals)
    return out


def build_map(
    ref: ReferenceTable, survey_files: Sequence[str] = (), q: Questionnaire | None = None, labels: str | None = None
) -> CulturalMap:
    """The map of an evaluation: with a respondent file holding the ten variables for MIN_FACTOR_COUNTRIES+
    countries, its own factor solution (positions of its countries); otherwise the published positions, and a
    projection calibrated on the countries whose item means are known (the file's, else the reference's)."""
    published = published_positions()
    means: dict[str, np.ndarray] = {}
    if survey_files and q is not None:
        means = survey_means(survey_files, q, labels)
        complete = {c: v for c, v in means.items() if not np.isnan(v).any()}
        if len(complete) >= MIN_FACTOR_COUNTRIES:
            sol = factor_positions(complete)
            countries = {
                c: MapCountry(iso3=c, name=country_name(c), year=None,
                              zone=published[c].zone if c in published else "other",
                              position=(float(p[0]), float(p[1])))
                for c, p in sol.positions.items()
            }  # fmt: skip
            sol.projection.note = f"factor solution of {len(complete)} countries; explains {sol.explained:.0%}"
            return CulturalMap(countries=countries, projection=sol.projection, source="survey")
    for c, v in reference_means(ref).items():
        means.setdefault(c, v)
    positions = {c: np.array(m.position) for c, m in published.items()}
    if len([c for c in means if c in positions]) < 2:
        raise DataError("the cultural map needs item means of 2+ countries on the published map (give --survey)")
    proj = calibrate(means, positions)
    proj.note = "calibrated on the published positions"
    return CulturalMap(countries=dict(published), projection=proj, source="published")


@dataclass
class Placement:
    position: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    cov: np.ndarray
    per_persona: dict[str, list[float]]
    distances: dict[str, float]
    distance_ci: tuple[float, float] | None
    target: str
    boot: list[list[float]] = field(default_factory=list)

    @property
    def distance(self) -> float | None:
        return self.distances.get(self.target)

    @property
    def nearest(self) -> str | None:
        return min(self.distances, key=lambda c: self.distances[c]) if self.distances else None


def place(
    per_persona: Mapping[str, np.ndarray], cmap: CulturalMap, target: str, resamples: int = 1000, seed: int = 0
) -> Placement:
    """Position of the mean of the personas' projected positions, its percentile CI and covariance over
    persona bootstrap resamples, and the Euclidean distance to every culture on the map."""
    ids = sorted(per_persona)
    pos = np.array([per_persona[p] for p in ids])
    mean = pos.mean(axis=0)
    rng = np.random.default_rng(seed)
    tpos = np.array(cmap.countries[target].position) if target in cmap.countries else None
    if len(ids) > 1 and resamples > 0:
        boot = pos[rng.integers(0, len(ids), size=(resamples, len(ids)))].mean(axis=1)
        lo, hi = np.percentile(boot, 2.5, axis=0), np.percentile(boot, 97.5, axis=0)
        cov = np.cov(boot, rowvar=False)
        dci = None
        if tpos is not None:
            d = np.linalg.norm(boot - tpos, axis=1)
            dci = (float(np.percentile(d, 2.5)), float(np.percentile(d, 97.5)))
    else:
        lo, hi, cov, dci = mean, mean, np.zeros((2, 2)), None
    dist = {c: float(np.linalg.norm(mean - np.array(m.position))) for c, m in cmap.countries.items()}
    return Placement(
        position=mean, lo=lo, hi=hi, cov=cov, per_persona={p: [float(x) for x in pos[k]] for k, p in enumerate(ids)},
        distances=dict(sorted(dist.items(), key=lambda kv: kv[1])), distance_ci=dci, target=target,
    )  # fmt: skip


MIN_PER_AXIS = 3  # a persona is placed when it has answers for 3+ of each axis's five variables


def placeable(values: Mapping[str, float]) -> bool:
    """Enough of each axis's variables known to place a persona (the rest filled, see Projection)."""
    return all(sum(1 for v in VARS if v.axis == axis and v.code in values) >= MIN_PER_AXIS for axis in AXES)


def persona_values(answers: Sequence[Answer]) -> dict[str, dict[str, float]]:
    """Persona -> the ten variables' expected values from that persona's answers (one variant)."""
    by: dict[str, dict[str, tuple[list[int], list[float]]]] = defaultdict(dict)
    for a in answers:
        if a.item in QUESTIONS:
            by[a.persona][a.item] = (a.codes, a.probs)
    return {p: expected_values(d) for p, d in by.items()}


def map_metrics(
    store: RunStore,
    alias: str,
    styles: Sequence[str],
    cultures: Sequence[str],
    cmap: CulturalMap,
    *,
    variant: str = "base",
    resamples: int = 1000,
    seed: int = 0,
) -> tuple[list[MetricRow], list[str]]:
    """Place every (style, culture) of a model from its stored answers; store one map row each; return the
    metric rows (iw_secular, iw_selfexpr, iw_distance) and one line per placement for the terminal."""
    from ..records import METRIC, SURVEY_ANSWER, key_prefix

    rows: list[MetricRow] = []
    lines: list[str] = []
    for style in styles:
        for c in cultures:
            answers = [
                a for rec in store.iter(SURVEY_ANSWER, prefix=key_prefix(alias, style, c))
                if (a := Answer.model_validate(rec.data)).variant == variant
            ]  # fmt: skip
            known = persona_values(answers)
            vals = {p: v for p, v in known.items() if placeable(v)}
            if not vals:
                if known:
                    most = max(len(v) for v in known.values())
                    lines.append(
                        f"map {alias}/{style}/{c}: not placed (no persona answered {MIN_PER_AXIS} of each axis's "
                        f"five variables; at most {most} of 10 variables)"
                    )
                continue
            per = {p: cmap.projection.project(vector(v)) for p, v in vals.items()}
            pl = place(per, cmap, c, resamples=resamples, seed=seed)
            missing = sorted({v.code for v in VARS if any(v.code not in x for x in vals.values())})
            store.put(METRIC, map_key(alias, style, c), {
                "x": float(pl.position[0]), "y": float(pl.position[1]),
                "lo": [float(v) for v in pl.lo], "hi": [float(v) for v in pl.hi], "cov": pl.cov.tolist(),
                "distance": pl.distance, "distance_ci": list(pl.distance_ci) if pl.distance_ci else None,
                "nearest": pl.nearest, "distances": pl.distances, "per_persona": pl.per_persona,
                "values": {p: v for p, v in vals.items()}, "missing": missing, "map": cmap.summary(),
            })  # fmt: skip
            for k, axis in enumerate(AXES):
                rows.append(MetricRow(model=alias, style=style, culture=c, variant=variant, theme="cultural map",
                                      metric=f"iw_{axis}", mean=float(pl.position[k]), lo=float(pl.lo[k]),
                                      hi=float(pl.hi[k]), n=len(per)))  # fmt: skip
            if pl.distance is not None:
                dlo, dhi = pl.distance_ci or (pl.distance, pl.distance)
                rows.append(MetricRow(model=alias, style=style, culture=c, variant=variant, theme="cultural map",
                                      metric="iw_distance", mean=pl.distance, lo=dlo, hi=dhi, n=len(per)))  # fmt: skip
            d = "-" if pl.distance is None else f"{pl.distance:.2f}"
            lines.append(
                f"map {alias}/{style}/{c}: ({pl.position[0]:+.2f}, {pl.position[1]:+.2f}) "
                f"[{pl.lo[0]:+.2f}..{pl.hi[0]:+.2f}, {pl.lo[1]:+.2f}..{pl.hi[1]:+.2f}], distance to {c} {d}, "
                f"nearest {pl.nearest}"
            )
    return rows, lines


def ellipse(cov: np.ndarray, level: float = CHI2_95_2DF) -> tuple[float, float, float] | None:
    """Semi-axes (a >= b) and the angle in degrees of the CI ellipse of a 2x2 covariance; None when flat."""
    c = np.asarray(cov, dtype=float)
    if c.shape != (2, 2) or not np.isfinite(c).all():
        return None
    eig, vec = np.linalg.eigh(c)
    if eig[1] <= 0:
        return None
    a, b = math.sqrt(level * eig[1]), math.sqrt(level * max(eig[0], 0.0))
    angle = math.degrees(math.atan2(vec[1, 1], vec[0, 1]))
    return a, b, angle
