"""The Inglehart-Welzel cultural map: its ten variables, their values from survey answers (respondents,
answer shares or a model's answer distributions), country positions and the linear projection onto the map.

Steps and sources (docs/cultural-map.md):
- the ten variables and the nation-level two-factor structure: Inglehart & Baker (2000), "Modernization,
  cultural change, and the persistence of traditional values", American Sociological Review 65(1), Table 1;
  Inglehart & Welzel (2005), "Modernization, Cultural Change, and Democracy"; the WVS's "Inglehart-Welzel
  cultural map" notes. Y002 and Y003 as the WVS/EVS integrated file's documentation defines them.
- country positions from respondents (`factor_positions`): country-level means of the ten variables,
  standardized across countries, principal components of their correlation matrix, two components kept and
  varimax-rotated, regression-method factor scores, standardized; which factor is which axis, and its sign,
  from the loadings of F063 (God) and Y002 (post-materialism).
- the published positions (`published_positions`): data/wvs/iw_map.csv (source named in the file).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np

from ..errors import DataError

SECULAR, SELFEXPR = "secular", "selfexpr"
AXES = (SECULAR, SELFEXPR)
AXIS_TITLES = {SECULAR: "traditional (-) vs secular-rational (+)", SELFEXPR: "survival (-) vs self-expression (+)"}


@dataclass(frozen=True)
class MapVar:
    """One of the map's ten variables: IVS code, the WVS-7 questions it comes from, its axis, its range on
    the IVS coding, and whether a higher value means more secular / self-expressive (+1) or less (-1)."""

    code: str
    title: str
    questions: tuple[str, ...]
    axis: str
    lo: float
    hi: float
    sign: int


VARS: tuple[MapVar, ...] = (
    MapVar("F063", "importance of God", ("Q164",), SECULAR, 1, 10, -1),
    MapVar("Y003", "autonomy index", ("Q8", "Q14", "Q15", "Q17"), SECULAR, -2, 2, +1),
    MapVar("F120", "abortion justifiable", ("Q184",), SECULAR, 1, 10, +1),
    MapVar("G006", "national pride (1 = very proud)", ("Q254",), SECULAR, 1, 4, +1),
    MapVar("E018", "more respect for authority (1 = good)", ("Q45",), SECULAR, 1, 3, +1),
    MapVar("Y002", "post-materialist index", ("Q154", "Q155"), SELFEXPR, 1, 3, +1),
    MapVar("A008", "happiness (1 = very happy)", ("Q46",), SELFEXPR, 1, 4, -1),
    MapVar("F118", "homosexuality justifiable", ("Q182",), SELFEXPR, 1, 10, +1),
    MapVar("E025", "signed a petition (1 = have done)", ("Q209",), SELFEXPR, 1, 3, -1),
    MapVar("A165", "most people can be trusted (1 = yes)", ("Q57",), SELFEXPR, 1, 2, -1),
)
CODES: tuple[str, ...] = tuple(v.code for v in VARS)
QUESTIONS: tuple[str, ...] = tuple(sorted({q for v in VARS for q in v.questions}, key=lambda s: int(s[1:])))
_SINGLE = {v.code: v.questions[0] for v in VARS if len(v.questions) == 1}
MATERIALIST, POSTMATERIALIST = {1, 3}, {2, 4}  # Q154/Q155 codes: order, prices / more say, free speech


def y002(first: int | None, second: int | None) -> float | None:
    """Post-materialist index (IVS Y002) of one respondent: 1 materialist (both choices among 'order' and
    'prices'), 3 post-materialist (both among 'more say' and 'free speech'), 2 mixed; None when a choice is
    missing or both are the same."""
    if first is None or second is None or first == second:
        return None
    pair = {first, second}
    return 1.0 if pair == MATERIALIST else 3.0 if pair == POSTMATERIALIST else 2.0


def y003(independence: int | None, determination: int | None, faith: int | None, obedience: int | None) -> float | None:
    """Autonomy index (IVS Y003) of one respondent from the child qualities (1 = mentioned, 2 = not):
    (independence + determination) - (religious faith + obedience), counting mentions; -2 .. 2."""
    vals = (independence, determination, faith, obedience)
    if any(v is None for v in vals):
        return None
    m = [1.0 if v == 1 else 0.0 for v in vals]
    return m[0] + m[1] - m[2] - m[3]


def respondent_values(answers: Mapping[str, int | None]) -> dict[str, float]:
    """The ten variables of one respondent (WVS-7 question id -> answer code); missing ones left out."""
    out: dict[str, float] = {}
    for code, q in _SINGLE.items():
        if answers.get(q) is not None:
            out[code] = float(answers[q])  # type: ignore[arg-type]
    p = y002(answers.get("Q154"), answers.get("Q155"))
    if p is not None:
        out["Y002"] = p
    a = y003(answers.get("Q8"), answers.get("Q14"), answers.get("Q15"), answers.get("Q17"))
    if a is not None:
        out["Y003"] = a
    return out


def expected_values(dists: Mapping[str, tuple[Sequence[int], Sequence[float]]]) -> dict[str, float]:
    """The ten variables' expected values from answer distributions (question id -> (codes, probabilities);
    a model's answers or a country's answer shares; probabilities renormalised over the codes). Y003 is linear
    in the mentions, so its expectation is exact; Y002 needs the joint answer to Q154 and Q155: taken as the
    first choice's distribution times the second's conditioned on differing from the first."""
    p: dict[str, dict[int, float]] = {}
    for q, (codes, probs) in dists.items():
        total = float(sum(probs[: len(codes)]))
        if total > 0:
            p[q] = {int(c): float(x) / total for c, x in zip(codes, probs, strict=False)}
    out: dict[str, float] = {}
    for code, q in _SINGLE.items():
        if q in p:
            out[code] = sum(c * x for c, x in p[q].items())
    if "Q154" in p and "Q155" in p:
        e, mass = 0.0, 0.0
        for i, pi in p["Q154"].items():
            rest = 1.0 - p["Q155"].get(i, 0.0)
            for j, pj in p["Q155"].items():
                v = y002(i, j)
                if v is None or rest <= 0:
                    continue
                w = pi * pj / rest
                e, mass = e + w * v, mass + w
        if mass > 0:
            out["Y002"] = e / mass
    if all(q in p for q in ("Q8", "Q14", "Q15", "Q17")):
        m = {q: p[q].get(1, 0.0) for q in ("Q8", "Q14", "Q15", "Q17")}
        out["Y003"] = m["Q8"] + m["Q14"] - m["Q15"] - m["Q17"]
    return out


def vector(values: Mapping[str, float]) -> np.ndarray:
    """The ten variables in CODES order (NaN where missing)."""
    return np.array([values.get(c, math.nan) for c in CODES], dtype=float)


def weighted_means(rows: Sequence[tuple[Mapping[str, float], float]]) -> dict[str, float]:
    """Weighted mean of each variable over the rows (values, weight) that have it."""
    out: dict[str, float] = {}
    for c in CODES:
        pairs = [(v[c], w) for v, w in rows if c in v and w > 0]
        if pairs:
            out[c] = sum(x * w for x, w in pairs) / sum(w for _, w in pairs)
    return out


# ---------------------------------------------------------------------------------------------- projection


@dataclass
class Projection:
    """Item means (CODES order) -> map position: pos = values @ weights + intercept. Missing values are
    replaced by `fill` (the calibration countries' mean of that variable) before projecting."""

    weights: np.ndarray  # (10, 2)
    intercept: np.ndarray  # (2,)
    fill: np.ndarray  # (10,)
    method: str  # "factor" | "linear" | "index"
    countries: list[str] = field(default_factory=list)
    loo_error: float | None = None  # mean Euclidean leave-one-country-out error, map units
    note: str = ""

    def project(self, values: np.ndarray) -> np.ndarray:
        """One vector (10,) or a matrix (n, 10) -> positions (2,) or (n, 2)."""
        v = np.where(np.isnan(values), self.fill, values)
        return v @ self.weights + self.intercept

    def describe(self) -> str:
        loo = f"{self.loo_error:.3f}" if self.loo_error is not None else "n/a (needs more countries)"
        return f"{self.method} projection from {len(self.countries)} countries; leave-one-country-out error {loo}"


def index_weights() -> np.ndarray:
    """The fixed axis indices: each axis is the mean of its five variables, each rescaled to 0..1 so that
    1 is the secular / self-expression end."""
    w = np.zeros((len(VARS), 2))
    for k, v in enumerate(VARS):
        w[k, AXES.index(v.axis)] = v.sign / (v.hi - v.lo) / 5.0
    return w


def index_offset() -> np.ndarray:
    b = np.zeros(2)
    for v in VARS:
        b[AXES.index(v.axis)] += (0.0 if v.sign > 0 else 1.0) / 5.0 - (v.sign * v.lo / (v.hi - v.lo)) / 5.0
    return b


def axis_index(values: np.ndarray) -> np.ndarray:
    """The uncalibrated axis indices (0..1 each: 1 = most secular / most self-expressive) of item means;
    a missing variable is left out of its axis's mean."""
    out = np.zeros(2)
    for a in range(2):
        parts = []
        for k, v in enumerate(VARS):
            if AXES.index(v.axis) == a and not math.isnan(values[k]):
                x = (values[k] - v.lo) / (v.hi - v.lo)
                parts.append(x if v.sign > 0 else 1.0 - x)
        out[a] = float(np.mean(parts)) if parts else math.nan
    return out


def _fill(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    fill = np.nanmean(np.where(np.isnan(x), np.nan, x), axis=0)
    fill = np.where(np.isnan(fill), np.array([(v.lo + v.hi) / 2 for v in VARS]), fill)
    return np.where(np.isnan(x), fill, x), fill


def _fit(x: np.ndarray, y: np.ndarray, method: str) -> tuple[np.ndarray, np.ndarray]:
    """Least squares: 'linear' y = x W + b (all 10 weights per axis); 'index' y = a + c * axis index."""
    if method == "linear":
        design = np.hstack([x, np.ones((len(x), 1))])
        coef, *_ = np.linalg.lstsq(design, y, rcond=None)
        return coef[:-1], coef[-1]
    w0, b0 = index_weights(), index_offset()
    idx = x @ w0 + b0
    weights, intercept = np.zeros_like(w0), np.zeros(2)
    for a in range(2):
        design = np.column_stack([idx[:, a], np.ones(len(x))])
        (c, d), *_ = np.linalg.lstsq(design, y[:, a], rcond=None)
        weights[:, a] = c * w0[:, a]
        intercept[a] = c * b0[a] + d
    return weights, intercept


def calibrate(means: Mapping[str, np.ndarray], positions: Mapping[str, np.ndarray], method: str = "auto") -> Projection:
    """A linear map from item means to map positions fitted on the countries in both (least squares), with
    its leave-one-country-out error. 'linear' fits all ten weights per axis (needs 12+ countries); 'index'
    fits a scale and offset per axis on the fixed axis indices (2+ countries); 'auto' picks linear when
    there are enough countries."""
    countries = sorted(c for c in means if c in positions)
    if len(countries) < 2:
        raise DataError(f"calibrating the map needs 2+ countries with both item means and a position; have {countries}")
    x, fill = _fill(np.array([means[c] for c in countries]))
    y = np.array([positions[c] for c in countries], dtype=float)
    if method == "auto":
        method = "linear" if len(countries) >= len(VARS) + 2 else "index"
    weights, intercept = _fit(x, y, method)
    need = len(VARS) + 3 if method == "linear" else 3
    loo = None
    if len(countries) >= need:
        errs = []
        for k in range(len(countries)):
            keep = np.arange(len(countries)) != k
            w, b = _fit(x[keep], y[keep], method)
            errs.append(float(np.linalg.norm(x[k] @ w + b - y[k])))
        loo = float(np.mean(errs))
    return Projection(
        weights=weights, intercept=intercept, fill=fill, method=method, countries=countries, loo_error=loo
    )


def varimax(loadings: np.ndarray, gamma: float = 1.0, iterations: int = 100, tol: float = 1e-8) -> np.ndarray:
    """Kaiser's varimax rotation of a loading matrix (the SVD algorithm), with Kaiser normalisation."""
    h = np.sqrt((loadings**2).sum(axis=1, keepdims=True))
    h = np.where(h == 0, 1.0, h)
    a = loadings / h
    p, k = a.shape
    r = np.eye(k)
    d = 0.0
    for _ in range(iterations):
        lam = a @ r
        u, s, vt = np.linalg.svd(a.T @ (lam**3 - (gamma / p) * lam @ np.diag((lam**2).sum(axis=0))))
        r = u @ vt
        d_new = float(s.sum())
        if d_new < d * (1 + tol):
            break
        d = d_new
    return (a @ r) * h


@dataclass
class FactorSolution:
    positions: dict[str, np.ndarray]
    loadings: np.ndarray  # (10, 2), axes in AXES order
    projection: Projection
    explained: float  # share of the variance the two components carry


def factor_positions(means: Mapping[str, np.ndarray], min_countries: int = 5) -> FactorSolution:
    """Country positions the way the published map is made (see the module doc): countries with all ten
    means; PCA of the correlation matrix, two components, varimax, regression scores, standardized."""
    countries = sorted(c for c, v in means.items() if not np.isnan(v).any())
    if len(countries) < min_countries:
        raise DataError(
            f"the map's factor analysis needs {min_countries}+ countries with all ten variables; have {len(countries)}"
        )
    x = np.array([means[c] for c in countries])
    mu, sd = x.mean(axis=0), x.std(axis=0, ddof=1)
    if (sd == 0).any():
        const = [CODES[k] for k in np.flatnonzero(sd == 0)]
        raise DataError(f"the map's factor analysis: {', '.join(const)} has the same mean in every country")
    z = (x - mu) / sd
    corr = np.corrcoef(z, rowvar=False)
    eig, vec = np.linalg.eigh(corr)
    order = np.argsort(eig)[::-1][:2]
    loadings = vec[:, order] * np.sqrt(eig[order])
    rot = varimax(loadings)
    coef = np.linalg.pinv(corr) @ rot  # regression-method score coefficients
    scores = z @ coef
    smu, ssd = scores.mean(axis=0), scores.std(axis=0, ddof=1)
    g, y2 = CODES.index("F063"), CODES.index("Y002")
    sec = int(np.argmax(np.abs(rot[g])))
    cols = [sec, 1 - sec]
    if cols[1] == cols[0]:  # pragma: no cover - two columns
        cols = [0, 1]
    signs = np.array([-np.sign(rot[g, cols[0]]) or 1.0, np.sign(rot[y2, cols[1]]) or 1.0])
    weights = (coef[:, cols] / sd[:, None]) / ssd[cols][None, :] * signs[None, :]
    intercept = -(mu @ weights) - smu[cols] / ssd[cols] * signs
    proj = Projection(weights=weights, intercept=intercept, fill=mu, method="factor", countries=countries)
    pos = {c: proj.project(means[c]) for c in countries}
    return FactorSolution(
        positions=pos, loadings=rot[:, cols] * signs[None, :], projection=proj, explained=float(eig[order].sum() / 10)
    )


# ---------------------------------------------------------------------------------------------- the map


@dataclass(frozen=True)
class MapCountry:
    iso3: str
    name: str
    year: int | None
    zone: str
    position: tuple[float, float]


def published_path() -> Path:
    return Path(str(resources.files("clca") / "data" / "wvs" / "iw_map.csv"))


@lru_cache(maxsize=1)
def published_positions() -> dict[str, MapCountry]:
    """The published positions bundled with clca (z-scores; source in the file's header)."""
    path = published_path()
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln and not ln.startswith("#")]
    out: dict[str, MapCountry] = {}
    for row in csv.DictReader(lines):
        out[row["iso3"]] = MapCountry(
            iso3=row["iso3"], name=row["name"], year=int(row["year"]) if row["year"] else None, zone=row["zone"],
            position=(float(row["secular"]), float(row["selfexpr"])),
        )  # fmt: skip
    return out


ZONES = (
    "African-Islamic", "Catholic Europe", "Confucian", "English-Speaking", "Latin America", "Orthodox Europe",
    "Protestant Europe", "West & South Asia",
)  # fmt: skip
