"""Norm inputs for norm-based scenario generation: JSONL, CSV (any of `, ; | tab`), and Sotopia-pi's
inspirational prompts (`used_prompt.csv`, `model|source|pk|prompt`), with filters by source, a limit
and a seed.

Columns (first match wins): the norm text `norm`, `prompt` or `text`; the id `id` or `pk` (default:
the record number); `source` (default `user` when the file has no source column, `unknown` where a
row's source is empty or `nan`); `culture` (optional when a default culture is given or the caller
accepts culture-free norms, which a run plays in every target culture).
"""

from __future__ import annotations

import csv
import json
import random
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .._bounds import seed_field
from ..errors import DataError
from ..hf_ref import is_hf_ref, parse_hf_ref
from ._io import _first_error

TEXT_COLUMNS = ("norm", "prompt", "text")
ID_COLUMNS = ("id", "pk")
_MISSING = {"", "nan", "none", "null", "n/a"}


class Norm(BaseModel):
    """A cultural norm (or an inspirational prompt) to build a scenario around."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    norm: str = Field(min_length=3)
    culture: str | None = Field(
        default=None, min_length=1, description="a culture name, ISO code or alias; None = every target culture"
    )
    source: str = Field(default="user", min_length=1)


class NormsConfig(BaseModel):
    """The `norms:` section of a run config (a plain path is the same as `{file: PATH}`)."""

    model_config = ConfigDict(extra="forbid")

    file: Path = Field(
        description="norms file: JSONL, CSV, Sotopia-pi's used_prompt.csv, or hf:OWNER/DATASET/FILE "
        "(e.g. hf:cmu-lti/sotopia-pi/used_prompt.csv, downloaded once)"
    )
    culture: str | None = Field(
        None, description="culture of norms without one; None = each norm without one is used for every target culture"
    )
    sources: list[str] | None = Field(None, description="keep only norms from these sources (e.g. [normbank])")
    limit: int | None = Field(None, ge=1, description="use at most this many norms (after the source filter)")
    seed: int | None = seed_field(None, "draw the `limit` norms at random with this seed; None = the first ones")


def hf_dataset_file(spec: str) -> Path:
    """`hf:OWNER/DATASET/FILE` (e.g. hf:cmu-lti/sotopia-pi/used_prompt.csv, Sotopia-pi's published
    inspirational prompts): the file of a Hugging Face dataset, downloaded once into the HF cache."""
    ref = parse_hf_ref(spec)
    if ref is None or ref.repo is None or not ref.file or "//" in ref.file:
        raise DataError(f"{spec}: expected hf:OWNER/DATASET/FILE, e.g. hf:cmu-lti/sotopia-pi/used_prompt.csv")
    repo, filename = ref.repo, ref.file
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(repo, filename, repo_type="dataset"))
    except Exception as e:  # network, missing repo/file, offline mode: one line with the cause
        raise DataError(
            f"{spec}: cannot download {filename} from dataset {repo}: {' '.join(str(e).split())[:200]}"
        ) from None


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, str) and v.strip().casefold() in _MISSING)


def _read_rows(p: Path) -> tuple[list[tuple[int, Any]], list[str] | None]:
    """(record number, raw record) per row, and the CSV header (None for JSONL)."""
    from .._files import load_json, read_text

    text = read_text(p, "norms file")  # a UTF-8 BOM (Excel's CSV export) is dropped; Latin-1 is a one-line error
    if p.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        rows: list[tuple[int, Any]] = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append((n, load_json(line, f"{p}: record {n}")))
            except json.JSONDecodeError as e:
                raise DataError(f"{p}: record {n}: not valid JSON ({e.msg})") from None
        return rows, None
    first = text.split("\n", 1)[0]
    delim = max(",|;\t", key=first.count) if first else ","
    reader = csv.DictReader(text.splitlines(keepends=True), delimiter=delim)
    header = [h.strip() for h in (reader.fieldnames or [])]
    reader.fieldnames = header
    if not any(c in header for c in TEXT_COLUMNS):
        raise DataError(f"{p}: CSV header must contain 'norm' (or 'prompt' / 'text'); got {header}")
    return [(n, {k: v for k, v in r.items() if k is not None}) for n, r in enumerate(reader, 1)], header


def _normalise(raw: dict[str, Any], n: int, has_source: bool, culture: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {k: v for k, v in raw.items() if not (isinstance(v, str) and v == "")}
    for k in TEXT_COLUMNS[1:]:
        if "norm" not in out and k in out:
            out["norm"] = out.pop(k)
    if "id" not in out and "pk" in out:
        out["id"] = out.pop("pk")
    out.setdefault("id", f"{n:03d}")
    if isinstance(out.get("id"), int):
        out["id"] = str(out["id"])
    if has_source and _missing(out.get("source")):
        out["source"] = "unknown"
    if _missing(out.get("culture")):
        out.pop("culture", None)
        if culture is not None:
            out["culture"] = culture
    out.pop("model", None)  # Sotopia-pi: the model that wrote the environment from the prompt
    return out


def load_norms(
    path: str | Path | NormsConfig,
    *,
    culture: str | None = None,
    sources: Sequence[str] | None = None,
    limit: int | None = None,
    seed: int | None = None,
    allow_no_culture: bool = False,
) -> list[Norm]:
    """Norms from a file, optionally filtered by source (case-insensitive) and cut to `limit` (the first
    ones, or a seeded random draw kept in file order). `culture` fills norms without one; with
    `allow_no_culture` such norms keep `culture=None` (see `expand_norms`), otherwise they are an error.

    A `NormsConfig` (a run's `norms:` section) is read with its own settings, culture-free norms allowed.
    Errors name the file, the record number and the field.
    """
    if isinstance(path, NormsConfig):
        return load_norms_config(path)
    p = hf_dataset_file(str(path)) if is_hf_ref(path) else Path(path)
    if not p.is_file():
        raise DataError(f"{p}: norms file not found")
    rows, header = _read_rows(p)
    has_source = header is None or "source" in header
    norms: list[Norm] = []
    seen: set[str] = set()
    for n, raw in rows:
        if not isinstance(raw, dict):
            raise DataError(f"{p}: record {n}: expected an object with 'norm' and 'culture'")
        rec = _normalise(raw, n, has_source and "source" in raw, culture)
        try:
            norm = Norm.model_validate(rec)
        except ValidationError as e:
            raise DataError(f"{p}: record {n}: {_first_error(e)}") from None
        if norm.culture is None and not allow_no_culture:
            raise DataError(
                f"{p}: record {n}: field 'culture': missing "
                "(add a culture column, or give a default culture: --culture / norms.culture)"
            )
        if norm.id in seen:
            raise DataError(f"{p}: record {n}: field 'id': duplicate id {norm.id!r}")
        seen.add(norm.id)
        norms.append(norm)
    if not norms:
        raise DataError(f"{p}: no norms in the file")
    return select_norms(norms, sources=sources, limit=limit, seed=seed, where=str(p))


def select_norms(
    norms: Sequence[Norm],
    *,
    sources: Sequence[str] | None = None,
    limit: int | None = None,
    seed: int | None = None,
    where: str = "norms",
) -> list[Norm]:
    """Norms of the given sources, cut to `limit` (first ones, or drawn with `seed`, in input order)."""
    out = list(norms)
    if sources:
        wanted = {s.casefold() for s in sources}
        out = [nm for nm in out if nm.source.casefold() in wanted]
        if not out:
            have = ", ".join(f"{k} ({v})" for k, v in sorted(Counter(nm.source for nm in norms).items()))
            raise DataError(f"{where}: no norm has source {', '.join(sources)}; sources here: {have}")
    if limit is not None and limit < len(out):
        if seed is None:
            out = out[:limit]
        else:
            picked = set(random.Random(seed).sample(range(len(out)), limit))
            out = [nm for i, nm in enumerate(out) if i in picked]
    return out


def load_norms_config(cfg: NormsConfig | str | Path) -> list[Norm]:
    """The norms a run config names; norms without a culture stay culture-free (every target culture)."""
    c = cfg if isinstance(cfg, NormsConfig) else NormsConfig(file=Path(cfg))
    return load_norms(c.file, culture=c.culture, sources=c.sources, limit=c.limit, seed=c.seed, allow_no_culture=True)


def expand_norms(norms: Iterable[Norm], cultures: Sequence[str]) -> list[Norm]:
    """Each culture-free norm once per culture (same id; the scenario key carries the culture)."""
    out: list[Norm] = []
    for nm in norms:
        if nm.culture is not None:
            out.append(nm)
        else:
            out.extend(nm.model_copy(update={"culture": c}) for c in cultures)
    return out


def source_counts(norms: Iterable[Norm]) -> dict[str, int]:
    return dict(sorted(Counter(nm.source for nm in norms).items()))
