"""Checks of a whole run config that go beyond the schema, done before any model loads.

`check_run(cfg, stages)` refuses, with one line naming the key: duplicate cultures (the same country
given twice under two spellings), a profile file whose code collides with a shipped culture, unknown
`adapted_styles`, a response-cache path in a missing folder, and every file a stage will read that is
missing or unreadable: the norms file (parsed), the control conversations of the `control` variant,
`eval.reference` / `eval.questionnaire` (parsed), `eval.survey` files, `eval.items` not in the
questionnaire, and cultures with no survey answers to compare against. `clca config check` runs every
check; `clca run --until STAGE` checks what the stages up to STAGE need.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import ClcaError, ConfigError, DataError
from .hf_ref import is_hf_ref

EVAL_STYLES = ("persona", "cultural", "anthropological", "none")
_PROFILE_SUFFIXES = (".yaml", ".yml", ".json")


def is_profile_file(spec: str) -> bool:
    return Path(spec).suffix.lower() in _PROFILE_SUFFIXES


def eval_culture(spec: str) -> str:
    """What the eval stage gets for a target culture: the spec itself, or a profile file's code."""
    if not is_profile_file(spec):
        return spec
    from .culture import resolve_culture

    return resolve_culture(spec).code


def check_cultures(cultures: Sequence[str], key: str) -> None:
    """No culture twice (Egypt, EGY, eg are one culture); a profile's code must not be a shipped culture's."""
    from .culture import UnknownCultureError, get_culture, get_culture_exact, resolve_culture

    seen: dict[str, str] = {}
    for spec in cultures:
        try:  # a config names a culture exactly: "Egyptt" is refused with the did-you-mean, never read as Egypt
            c = resolve_culture(spec) if is_profile_file(spec) else get_culture_exact(spec)
        except UnknownCultureError as e:
            raise ConfigError(f"{key}: {e.one_line()}") from None
        if is_profile_file(spec):
            try:
                shipped = get_culture(c.code)
            except UnknownCultureError:
                shipped = None
            if shipped is not None:
                raise ConfigError(
                    f"{key}: profile {spec}: its code {c.code!r} is the shipped culture {shipped.name}; "
                    "set another `code:` in the profile"
                )
        if c.code in seen:
            raise ConfigError(f"{key}: {spec!r} is the same culture as {seen[c.code]!r} ({c.name}); give it once")
        seen[c.code] = spec


def check_static(cfg: Any) -> None:
    """Checks that need no stage list (run from the config validator)."""
    check_cultures(cfg.cultures, "cultures")
    bad = [s for s in cfg.adapted_styles if s not in EVAL_STYLES]
    if bad:
        raise ConfigError(f"adapted_styles: {bad[0]!r} is not one of {', '.join(EVAL_STYLES)}")
    if len(set(cfg.adapted_styles)) != len(cfg.adapted_styles):
        raise ConfigError("adapted_styles: a style is listed twice")
    cache = cfg.cache
    if not isinstance(cache, bool):
        p = Path(cache)
        if p.is_dir():
            raise ConfigError(f"cache: {p} is a folder; give a SQLite file path (or true / false)")
        if not p.parent.is_dir():
            raise ConfigError(f"cache: the folder {p.parent} does not exist")


def _need(path: Any, key: str, what: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{key}: {what} {p} not found")
    if p.is_dir():
        raise ConfigError(f"{key}: {p} is a folder; expected a {what}")
    return p


#: the model roles each stage loads (a local `hf:PATH` model of these must be a folder before the run starts)
STAGE_MODELS = {
    "scenarios": ("teacher",),
    "roleplay": ("teacher", "partner"),
    "judge": ("judge",),
    "intents": ("annotator",),
    "train": ("student",),
    "eval": ("student",),
}


def check_run(cfg: Any, stages: Sequence[str], sc: dict[str, Any] | None = None, source: str | None = None) -> None:
    """Every file the given stages will read exists and parses, and every local model they load is a folder;
    raises a one-line ClcaError (prefixed with the config file `source` when given: the file and key to edit)."""
    try:
        _check_run(cfg, stages, sc if sc is not None else cfg.stage_configs())
    except ClcaError as e:
        if source is None or e.one_line().startswith(f"{source}:"):
            raise
        raise ConfigError(f"{source}: {e.one_line()}") from None


def check_model_dirs(cfg: Any, stages: Sequence[str]) -> None:
    """A `hf:PATH` model of a role the stages load must name an existing folder (`models.ROLE: ...`)."""
    from .llm import ModelSpec

    roles = sorted({r for s in stages for r in STAGE_MODELS.get(s, ())})
    for role in roles:
        spec = getattr(cfg.models, role, None)
        if not spec:
            continue
        parsed = ModelSpec.parse(spec)
        if parsed.kind == "hf":
            path = Path(parsed.base).expanduser()
            if not path.is_dir():
                raise ConfigError(f"models.{role}: model directory {path} not found (model string {spec!r})")


def _check_run(cfg: Any, stages: Sequence[str], sc: dict[str, Any]) -> None:
    check_model_dirs(cfg, stages)
    if "scenarios" in stages and cfg.norms is not None:
        from .scenarios import load_norms_config

        file = getattr(cfg.norms, "file", cfg.norms)
        if not is_hf_ref(file):  # a Hugging Face dataset file is fetched when the stage runs
            _need(file, "norms", "norms file")
            try:
                norms = load_norms_config(cfg.norms)
                from .culture import resolve_culture

                for nm in norms:
                    if nm.culture is not None:
                        resolve_culture(nm.culture)
            except DataError as e:
                raise ConfigError(f"norms: {e.one_line()}") from None
    ds = sc.get("dataset")
    if "dataset" in stages and ds is not None and getattr(ds, "variant", None) == "control":
        _need(ds.control_path, "dataset.control_path", "control conversations file")
        from ._files import read_text
        from .dataset import load_control

        try:
            read_text(ds.control_path, "control conversations file")
            if not load_control(Path(ds.control_path)):
                raise DataError(f"{ds.control_path}: no conversations in the file")
        except DataError as e:
            raise ConfigError(f"dataset.control_path: {e.one_line()}") from None
    ev = sc.get("eval")
    if "eval" in stages and ev is not None:
        _check_eval(cfg, ev)


def _check_eval(cfg: Any, ev: Any) -> None:
    from .countries import resolve_country
    from .wvs import bundled_with_sets, load_questionnaire, load_reference

    if ev.questionnaire:
        _need(ev.questionnaire, "eval.questionnaire", "questionnaire")
    try:
        if ev.questionnaire:
            load_questionnaire(ev.questionnaire).select(ev.items)
        else:  # item sets (wvs44, iw10) expand as the evaluation expands them
            full, ids = bundled_with_sets(ev.items)
            full.select(ids)
    except DataError as e:
        raise ConfigError(f"eval.items: {e.one_line()}") from None
    for i, f in enumerate(ev.survey):
        _need(f, f"eval.survey.{i}", "survey file")
    if ev.reference:
        _need(ev.reference, "eval.reference", "reference table")
    ref = load_reference(ev.reference)
    if ev.survey:
        return  # the survey files' countries are only known once they are read (the eval stage checks them)
    known = set(ref.countries)
    for key, names in (("cultures", ev.cultures), ("compare", ev.compare)):
        for name in names:
            try:
                code = resolve_country(name, known)
            except ConfigError as e:
                raise ConfigError(f"{key}: {name!r}: {e.one_line()} (for the eval stage)") from None
            if code not in ref.countries or not ref.countries[code].items:
                where = ev.reference or "the bundled reference table"
                raise ConfigError(
                    f"{key}: {name!r}: no survey answers for {code} in {where}; give eval.survey or "
                    "eval.reference with its answers, or stop before the eval stage (--until dataset)"
                )
