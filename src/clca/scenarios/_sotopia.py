"""Import and export of Sotopia's JSONL profile exports, lossless for every record and field.

A Sotopia export is four files:
  environment_profiles.jsonl      env_id, codename, source, scenario, agent_goals[2], relationship, ...
  agent_profiles.jsonl            agent_id, first_name, last_name, age, occupation, gender, ...
  relationship_profiles.jsonl     relationship_id, agent1_id, agent2_id, relationship, background_story
  env_agent_combo_storages.jsonl  combo_id, env_id, agent_ids[2]
Each combo becomes one Scenario. Fields we do not use, and the original records themselves, are kept in
`Scenario.extra["sotopia"]`; records that no combo references are kept in `SotopiaImport.unreferenced`.
Exporting the imported scenarios (with `unreferenced`) rewrites the same records.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import DataError
from ..hf_ref import parse_hf_ref
from ._io import iter_json_records, write_jsonl
from ._schema import Character, Provenance, Relationship, Scenario

FILES = {
    "envs": "environment_profiles.jsonl",
    "agents": "agent_profiles.jsonl",
    "relationships": "relationship_profiles.jsonl",
    "combos": "env_agent_combo_storages.jsonl",
}
_REQUIRED = {
    "envs": ("env_id", "scenario", "agent_goals", "relationship"),
    "agents": ("agent_id", "first_name", "last_name", "age", "gender", "gender_pronoun", "occupation"),
    "relationships": ("relationship_id", "agent1_id", "agent2_id", "relationship"),
    "combos": ("combo_id", "env_id", "agent_ids"),
}
_KIND_ID = {"envs": "env_id", "agents": "agent_id", "relationships": "relationship_id", "combos": "combo_id"}


@dataclass
class SotopiaImport:
    scenarios: list[Scenario]
    #: records no combo references, per file kind ("envs", "agents", "relationships")
    unreferenced: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def _read(path: Path, kind: str) -> list[dict[str, Any]]:
    from .._files import read_text

    if not path.exists():
        raise DataError(f"{path}: Sotopia file not found")
    out: list[dict[str, Any]] = []
    for n, rec in iter_json_records(read_text(path, "Sotopia file").splitlines(), str(path), objects=True):
        for k in _REQUIRED[kind]:
            if k not in rec:
                raise DataError(f"{path}: record {n}: field '{k}': missing")
        if not isinstance(rec[_KIND_ID[kind]], str):
            raise DataError(f"{path}: record {n}: field '{_KIND_ID[kind]}': expected text")
        out.append(rec)
    return out


def read_sotopia_files(directory: str | Path) -> dict[str, list[dict[str, Any]]]:
    """The raw records of the four files of a Sotopia export directory."""
    d = Path(directory)
    return {kind: _read(d / name, kind) for kind, name in FILES.items()}


def _text(v: Any) -> str:
    if isinstance(v, (list, dict)):
        raise ValueError(f"expected text, got a {'list' if isinstance(v, list) else 'mapping'}")
    s = "" if v is None else str(v).strip()
    return s or "(none)"


def _character(agent: dict[str, Any], goal: str) -> Character:
    return Character(
        first_name=_text(agent["first_name"]),
        last_name=_text(agent["last_name"]),
        age=int(agent["age"]),
        gender=_text(agent["gender"]),
        pronouns=_text(agent["gender_pronoun"]),
        occupation=_text(agent["occupation"]),
        public_info=_text(agent.get("public_info")),
        personality=_text(agent.get("personality_and_values")),
        secret=_text(agent.get("secret")),
        goal=goal,
    )


def import_sotopia(directory: str | Path) -> SotopiaImport:
    """One Scenario per env-agent combo of a Sotopia export; originals kept in `extra["sotopia"]`."""
    d = Path(directory)
    recs = read_sotopia_files(d)
    envs = {e["env_id"]: e for e in recs["envs"]}
    agents = {a["agent_id"]: a for a in recs["agents"]}
    rels_by_pair: dict[frozenset[str], list[dict[str, Any]]] = {}
    for r in recs["relationships"]:
        rels_by_pair.setdefault(frozenset((r["agent1_id"], r["agent2_id"])), []).append(r)
    scenarios: list[Scenario] = []
    used: dict[str, set[str]] = {"envs": set(), "agents": set(), "relationships": set()}
    if not recs["combos"]:
        raise DataError(f"{d / FILES['combos']}: no env-agent combos in the file; nothing to import")
    for n, combo in enumerate(recs["combos"], 1):
        where = f"{d / FILES['combos']}: record {n}"
        for k in ("env_id", "combo_id"):
            if not isinstance(combo[k], str):
                raise DataError(f"{where}: field '{k}': expected text, got {type(combo[k]).__name__}")
        if isinstance(combo["agent_ids"], list) and not all(isinstance(i, str) for i in combo["agent_ids"]):
            raise DataError(f"{where}: field 'agent_ids': expected two agent ids (text)")
        env = envs.get(combo["env_id"])
        if env is None:
            raise DataError(f"{where}: field 'env_id': {combo['env_id']!r} is not in {FILES['envs']}")
        ids = combo["agent_ids"]
        if not isinstance(ids, list) or len(ids) != 2:
            raise DataError(f"{where}: field 'agent_ids': expected two agent ids")
        missing = [i for i in ids if i not in agents]
        if missing:
            raise DataError(f"{where}: field 'agent_ids': {missing[0]!r} is not in {FILES['agents']}")
        goals = env["agent_goals"]
        if not isinstance(goals, list) or len(goals) != 2:
            raise DataError(f"{d / FILES['envs']}: env {env['env_id']}: field 'agent_goals': expected two goals")
        rels = rels_by_pair.get(frozenset(ids), [])
        try:
            scenario = Scenario(
                setting=_text(env["scenario"]),
                relationship=Relationship.from_code(env["relationship"]),
                characters=[_character(agents[i], g) for i, g in zip(ids, goals, strict=True)],
                culture=None,
                provenance=Provenance(kind="sotopia", id=combo["combo_id"], source=str(env.get("source", "sotopia"))),
                extra={
                    "sotopia": {"combo": combo, "env": env, "agents": [agents[i] for i in ids], "relationships": rels}
                },
            )
        except (ValidationError, ValueError, TypeError, KeyError) as e:
            msg = str(e).splitlines()[0] if not isinstance(e, ValidationError) else e.errors()[0]["msg"]
            raise DataError(f"{where}: cannot build a scenario: {msg}") from None
        scenarios.append(scenario)
        used["envs"].add(env["env_id"])
        used["agents"].update(ids)
        used["relationships"].update(r["relationship_id"] for r in rels)
    unreferenced = {
        kind: [r for r in recs[kind] if r[_KIND_ID[kind]] not in used[kind]]
        for kind in ("envs", "agents", "relationships")
    }
    return SotopiaImport(scenarios=scenarios, unreferenced=unreferenced)


def _stable_id(*parts: str) -> str:
    return "clca-" + hashlib.sha1("\x1f".join(parts).encode()).hexdigest()[:20]


def _scenario_key(s: Scenario) -> str:
    return f"{s.culture or 'neutral'}/{s.provenance.id}"


def to_sotopia_records(
    scenarios: Iterable[Scenario], unreferenced: dict[str, list[dict[str, Any]]] | None = None
) -> dict[str, list[dict[str, Any]]]:
    """Sotopia records for scenarios. Imported scenarios give back their original records (with our
    setting/goals/character fields written over them); our own scenarios get fresh, stable ids."""
    out: dict[str, dict[str, dict[str, Any]]] = {k: {} for k in FILES}
    for s in scenarios:
        orig = s.extra.get("sotopia") if isinstance(s.extra.get("sotopia"), dict) else None
        if orig is not None:
            env = dict(orig["env"])
            agents = [dict(a) for a in orig["agents"]]
            combo = dict(orig["combo"])
            rels = [dict(r) for r in orig.get("relationships", [])]
        else:
            key = _scenario_key(s)
            env = {"env_id": _stable_id("env", key), "codename": key, "source": s.provenance.source}
            agents = [{"agent_id": _stable_id("agent", key, str(i))} for i in range(2)]
            combo = {"combo_id": _stable_id("combo", key), "env_id": env["env_id"]}
            rels = [
                {
                    "relationship_id": _stable_id("rel", key),
                    "agent1_id": agents[0]["agent_id"],
                    "agent2_id": agents[1]["agent_id"],
                    "relationship": str(s.relationship.code),
                    "background_story": "",
                }
            ]
        env["scenario"] = _same_or_new(env.get("scenario"), s.setting)
        old_goals = env.get("agent_goals") if isinstance(env.get("agent_goals"), list) else [None, None]
        env["agent_goals"] = [_same_or_new(o, c.goal) for o, c in zip(old_goals, s.characters, strict=True)]
        if orig is None or Relationship.from_code(env["relationship"]) != s.relationship:
            env["relationship"] = str(s.relationship.code)
        env.setdefault("age_constraint", "none")
        env.setdefault("occupation_constraint", "none")
        env.setdefault("agent_constraint", "none")
        for a, c in zip(agents, s.characters, strict=True):
            _merge_character(a, c)
        combo["agent_ids"] = [a["agent_id"] for a in agents]
        out["envs"].setdefault(env["env_id"], env)
        for a in agents:
            out["agents"].setdefault(a["agent_id"], a)
        for r in rels:
            out["relationships"].setdefault(r["relationship_id"], r)
        out["combos"].setdefault(combo["combo_id"], combo)
    for kind, recs in (unreferenced or {}).items():
        for r in recs:
            out[kind].setdefault(r[_KIND_ID[kind]], r)
    return {k: list(v.values()) for k, v in out.items()}


def _same_or_new(old: Any, new: str) -> Any:
    """Keep the original value when ours only differs by surrounding whitespace (lossless round trip)."""
    return old if isinstance(old, str) and old.strip() == new else new


def _merge_character(agent: dict[str, Any], c: Character) -> None:
    """Write our character fields onto a Sotopia agent record, keeping "(none)" placeholders lossless."""
    fields = {
        "first_name": c.first_name,
        "last_name": c.last_name,
        "age": c.age,
        "occupation": c.occupation,
        "gender": c.gender,
        "gender_pronoun": c.pronouns,
        "public_info": c.public_info,
        "personality_and_values": c.personality,
        "secret": c.secret,
    }
    for k, v in fields.items():
        old = agent.get(k)
        if isinstance(v, str) and v == "(none)" and (old is None or (isinstance(old, str) and not old.strip())):
            continue  # placeholder for an empty original value
        agent[k] = _same_or_new(old, v) if isinstance(v, str) else v


def export_sotopia(
    scenarios: Iterable[Scenario],
    out_dir: str | Path,
    unreferenced: dict[str, list[dict[str, Any]]] | None = None,
    *,
    overwrite: bool = False,
) -> dict[str, int]:
    """Write the four Sotopia JSONL files into out_dir (atomically, each). Returns counts per file."""
    from .._outputs import check_output

    d = check_output(out_dir, kind="dir", overwrite=overwrite, own=FILES.values())
    recs = to_sotopia_records(scenarios, unreferenced)
    return {FILES[k]: write_jsonl(d / FILES[k], recs[k]) for k in FILES}


#: where Sotopia's profile files are published on Hugging Face (the Space of the Sotopia demo; the
#: datasets cmu-lti/sotopia and cmu-lti/sotopia-pi hold episodes and Redis dumps, not profile files)
HF_REPO = "cmu-lti/sotopia-space"
HF_REPO_TYPE = "space"
HF_FOLDER = "profiles"


def fetch_sotopia_hf(repo: str = HF_REPO, *, repo_type: str = HF_REPO_TYPE, revision: str | None = None) -> Path:
    """Download Sotopia's four profile files from Hugging Face into the local HF cache (needs a network
    once; later calls read the cache) and return the directory that holds them."""
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:  # pragma: no cover - huggingface_hub comes with transformers/datasets
        raise DataError("sotopia: 'hf' needs the huggingface_hub package (pip install huggingface_hub)") from None
    paths: list[Path] = []
    for name in FILES.values():
        try:
            got = hf_hub_download(repo, f"{HF_FOLDER}/{name}", repo_type=repo_type, revision=revision)
        except Exception as e:  # network, missing repo/file, offline mode: one line with the cause
            msg = " ".join(str(e).split())[:200]
            raise DataError(f"sotopia: cannot download {HF_FOLDER}/{name} from {repo_type} {repo}: {msg}") from None
        paths.append(Path(got))
    folders = {p.parent for p in paths}
    if len(folders) != 1:  # pragma: no cover - hf_hub_download keeps a repo's folder layout
        raise DataError(f"sotopia: the downloaded files of {repo} are not in one folder")
    return folders.pop()


def sotopia_dir(spec: str | Path) -> Path:
    """The local directory of a `sotopia:` setting: a path, or `hf` / `hf:OWNER/NAME` (downloaded)."""
    ref = parse_hf_ref(spec)
    if ref is not None:
        return fetch_sotopia_hf(ref.repo or ref.file or HF_REPO)
    d = Path(str(spec).strip()).expanduser()
    if not d.is_dir():
        raise DataError(f"{d}: Sotopia profile directory not found (expected {', '.join(FILES.values())})")
    return d


def sotopia_seeds(spec: str | Path, per_env: int | None = 1, ids: Iterable[str] | None = None) -> list[Scenario]:
    """Sotopia's scenarios as seeds: one per env-agent combo, at most `per_env` combos per environment
    (the first ones in the combo file; None = all), or exactly the combos `ids` names (combo ids)."""
    scenarios = import_sotopia(sotopia_dir(spec)).scenarios
    if ids is not None:
        wanted = list(ids)
        by_id = {s.provenance.id: s for s in scenarios}
        missing = [i for i in wanted if i not in by_id]
        if missing:
            example = scenarios[0].provenance.id
            raise DataError(f"unknown Sotopia combo id(s): {', '.join(missing)} (ids look like {example})")
        return [by_id[i] for i in wanted]
    if per_env is None:
        return scenarios
    taken: dict[str, int] = {}
    out: list[Scenario] = []
    for s in scenarios:
        env_id = s.extra["sotopia"]["env"]["env_id"]
        if taken.get(env_id, 0) < per_env:
            taken[env_id] = taken.get(env_id, 0) + 1
            out.append(s)
    return out
