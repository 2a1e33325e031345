"""The output-path policy of every command that writes: nothing clca did not create is destroyed.

Every `--out` (and any other path a command writes to) goes through `check_output` before any work is
done. It refuses, with a one-line ConfigError (exit 2) naming the path:

- a run directory, a folder that holds one anywhere below it, or a run's own files (run.sqlite and its
  WAL/SHM, the lock) or any other SQLite database - always, `--overwrite` or not;
- a path that is, contains or lies inside an input of the same command (a run directory given as input is
  covered by the rule above; a file input may not be the output; a folder output may not hold an input);
- an existing non-empty folder that clca did not write (no `.clca-output` marker and none of the command's
  own file names in it), unless `--overwrite`;
- a folder where a file is expected, and a file where a folder is expected.

The write itself goes to a temporary sibling that is renamed over the target (`atomic_file`,
`atomic_dir` in clca._files); folders written that way carry the `.clca-output` marker, so a later run of
the same command may replace them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from .errors import ConfigError, DataError

MARKER = ".clca-output"
RUN_DB = "run.sqlite"
RUN_FILES = frozenset({RUN_DB, f"{RUN_DB}-wal", f"{RUN_DB}-shm", f"{RUN_DB}-journal", ".lock"})
_SQLITE_MAGIC = b"SQLite format 3\x00"
_WALK_LIMIT = 200_000  # entries looked at when a folder to be replaced is searched for run databases


class OutputPathError(ConfigError, DataError):
    """An output path the policy refuses (a ConfigError and a DataError: exit 2, one line)."""


def _abs(p: Path) -> Path:
    return Path(os.path.realpath(os.path.abspath(p)))


def is_run_dir(p: Path) -> bool:
    return (p / RUN_DB).exists()


def _is_sqlite(p: Path) -> bool:
    try:
        with open(p, "rb") as f:
            return f.read(16) == _SQLITE_MAGIC
    except OSError:
        return False


def _run_dir_around(p: Path) -> Path | None:
    """The run directory that p is or lies inside, if any."""
    for a in (p, *p.parents):
        if is_run_dir(a):
            return a
    return None


def _run_dir_below(p: Path) -> Path | None:
    """A run directory (or SQLite run database) somewhere inside folder p."""
    seen = 0
    for root, dirs, files in os.walk(p):
        if RUN_DB in files:
            return Path(root)
        seen += len(dirs) + len(files)
        if seen > _WALK_LIMIT:
            return p  # too large to check: treat as holding one rather than risk it
    return None


def clca_wrote(folder: Path, own: Iterable[str] = ()) -> bool:
    """True when folder carries clca's marker or one of the command's own output names."""
    return (folder / MARKER).is_file() or any((folder / n).exists() for n in own)


def write_marker(folder: Path, command: str) -> None:
    (folder / MARKER).write_text(json.dumps({"written_by": f"clca {command}"}) + "\n", encoding="utf-8")


def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def check_output(
    out: str | Path,
    *,
    kind: Literal["file", "dir"],
    inputs: Iterable[str | Path | None] = (),
    overwrite: bool = False,
    own: Iterable[str] = (),
    option: str = "--out",
) -> Path:
    """Apply the policy to `out` (see the module doc); returns the absolute path to write. Nothing is
    created except the parent folder of a file output."""
    given = Path(out)
    p = _abs(given)
    where = str(given)
    if p.exists() and not (p.is_file() or p.is_dir()):
        raise OutputPathError(f"{where}: not a regular file or folder (a device or FIFO); choose another {option}")
    if p.is_file() and (_is_sqlite(p) or (p.name in RUN_FILES and is_run_dir(p.parent))):
        raise OutputPathError(f"{where}: is a run database; clca never writes over it - choose another {option}")
    for i in inputs:
        if i is None:
            continue
        ip = _abs(Path(i))
        if p == ip or (kind == "dir" and _inside(ip, p)):
            raise OutputPathError(f"{where}: is or holds an input of this command ({i}); choose another {option}")
    run = _run_dir_around(p)
    if run == p:
        raise OutputPathError(f"{where}: is a run directory (it holds {RUN_DB}); choose another {option}")
    if run is not None and p.parent == run and p.name in RUN_FILES:
        raise OutputPathError(f"{where}: is a file of the run {run}; choose another {option}")
    if kind == "file":
        if p.is_dir():
            raise OutputPathError(f"{where}: is a folder; expected an output file name")
        _check_writable_parent(p, where)
        return p
    if p.exists() and not p.is_dir():
        raise OutputPathError(f"{where}: is a file, not a directory; expected an output folder")
    if p.is_dir():
        inner = _run_dir_below(p)
        if inner is not None:
            raise OutputPathError(f"{where}: holds the run directory {inner}; clca never replaces it")
        if any(p.iterdir()) and not clca_wrote(p, own) and not overwrite:
            raise OutputPathError(
                f"{where}: is a non-empty folder that clca did not write; pass --overwrite to replace it "
                "or choose another"
            )
    return p


def _check_writable_parent(p: Path, where: str) -> None:
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputPathError(f"{where}: cannot create its folder ({e.strerror or e})") from None
    if not os.access(p.parent, os.W_OK | os.X_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise OutputPathError(f"{where}: not writable")
