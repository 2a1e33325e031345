"""Content hashes of a run's input files, so that a resumed run never mixes old and new inputs.

Every string in a run config that names an existing regular file (culture profiles, norms, seeds, surveys,
questionnaires, references, control data, chat templates) is hashed when the run starts; a later run on
the same directory recomputes them and is refused, naming the file, when one changed.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import RunMismatchError

META_KEY = "input_hashes"
_SKIP_KEYS = frozenset({"run_dir", "cache", "name", "reuse_from"})


def _strings(value: Any, key: str = "") -> Iterator[str]:
    if key in _SKIP_KEYS:
        return
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, str(k))
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v, key)
    elif isinstance(value, str) and value and len(value) < 4096 and "\n" not in value:
        yield value


def file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def input_hashes(config: dict[str, Any]) -> dict[str, str]:
    """{path as written in the config: sha256} of every input file the config names."""
    out: dict[str, str] = {}
    for s in _strings(config):
        try:
            p = Path(s).expanduser()
            if s in out or not p.is_file():
                continue
        except (OSError, ValueError):
            continue
        out[s] = file_hash(p)
    return out


def check_inputs(run_dir: Path, recorded: dict[str, str] | None, now: dict[str, str]) -> None:
    """Refuse a resumed run whose input files changed since the run directory was made."""
    for path, digest in sorted((recorded or {}).items()):
        new = now.get(path)
        if new is None and os.path.isfile(path):
            new = file_hash(Path(path))
        if new is not None and new != digest:
            raise RunMismatchError(
                f"{path}: this input file changed since {run_dir} was made (content hash {digest[:12]} != "
                f"{new[:12]}); restore it, or use a new run directory so old and new inputs are not mixed"
            )
