"""File modes that follow the user's umask, and clean-up of stale temporary folders.

`tempfile.mkstemp` creates files 0600 and `mkdtemp` folders 0700, whatever the umask; output that is
written to a temporary name and then renamed would keep those modes. `follow_umask` gives such a path the
mode a plain `open()` / `mkdir()` would have given it (0666 / 0777 minus the umask).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def follow_umask(path: str | Path, *, recursive: bool = False) -> None:
    """chmod a file (0666 & ~umask) or folder (0777 & ~umask; with recursive, everything in it)."""
    mask = current_umask()
    p = Path(path)
    if p.is_dir():
        os.chmod(p, 0o777 & ~mask)
        if recursive:
            for root, dirs, files in os.walk(p):
                for d in dirs:
                    os.chmod(os.path.join(root, d), 0o777 & ~mask)
                for f in files:
                    os.chmod(os.path.join(root, f), 0o666 & ~mask)
    else:
        os.chmod(p, 0o666 & ~mask)


def remove_stale_dirs(parent: Path, prefix: str, older_than_s: float = 3600.0) -> int:
    """Remove folders named PREFIX* in parent that were last modified more than older_than_s ago (left by a
    killed process). Returns how many were removed."""
    n = 0
    if not parent.is_dir():
        return 0
    now = time.time()
    for child in parent.iterdir():
        try:
            if child.name.startswith(prefix) and child.is_dir() and now - child.stat().st_mtime > older_than_s:
                shutil.rmtree(child, ignore_errors=True)
                n += 1
        except OSError:
            continue
    return n


MAX_INPUT_BYTES = 1 << 30  # a file read whole (configs, profiles, norms, seeds, references, questionnaires)


def check_input_file(path: Path, what: str = "file", max_bytes: int = MAX_INPUT_BYTES) -> None:
    """A one-line DataError unless path (after symlinks) is a regular file of at most max_bytes: a device,
    FIFO or socket (e.g. a link to /dev/zero) would be read forever."""
    import stat

    from .errors import DataError

    try:
        st = os.stat(path)
    except OSError as e:
        raise DataError(f"{path}: cannot read the {what} ({e.strerror or e})") from None
    if not stat.S_ISREG(st.st_mode):
        raise DataError(f"{path}: not a regular file (a device, FIFO or socket); expected a {what}")
    if st.st_size > max_bytes:
        raise DataError(f"{path}: {st.st_size} bytes, more than the {max_bytes} a {what} may have")


def read_text(path: str | Path, what: str = "file") -> str:
    """A UTF-8 text file (a leading BOM is dropped) or a one-line DataError: missing, a folder, unreadable,
    binary or not UTF-8 (e.g. Latin-1) - naming the file and, for bad bytes, the line."""
    from .errors import DataError

    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: {what} not found")
    if p.is_dir():
        raise DataError(f"{p}: is a folder; expected a {what}")
    check_input_file(p, what)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise DataError(f"{p}: cannot read the {what} ({e.strerror or e})") from None
    if b"\x00" in raw[:8192]:
        raise DataError(f"{p}: binary data; expected a UTF-8 text {what}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataError(
            f"{p}: line {line}: not UTF-8 text (byte 0x{raw[e.start]:02x}); save the {what} as UTF-8"
        ) from None
    return text.removeprefix("\ufeff")


MAX_DEPTH = 64  # nesting levels of a JSON / YAML input (clca's own files use at most 6)
_DEEP = re.compile(r"(?:(?:[\[{]|-(?=[ \t]))\s*){" + str(MAX_DEPTH + 1) + "}")


def check_nesting(text: str, where: str) -> None:
    """A one-line DataError when JSON/YAML text opens more than MAX_DEPTH levels in a row."""
    from .errors import DataError

    if _DEEP.search(text):
        raise DataError(f"{where}: nested more than {MAX_DEPTH} levels deep; not a clca input")


def load_json(text: str, where: str, **kw: Any) -> Any:
    """json.loads with the nesting bound: too deep is a one-line DataError, never a RecursionError."""
    from .errors import DataError

    check_nesting(text, where)
    try:
        return json.loads(text, **kw)
    except RecursionError:
        raise DataError(f"{where}: nested too deeply; not a clca input") from None


def check_output_file(path: str | Path, inputs: Iterable[str | Path | None] = ()) -> None:
    """An output file's path must pass the output policy (clca._outputs): not a folder, not a run database,
    not an input; its folder must be creatable and writable."""
    from ._outputs import check_output

    check_output(path, kind="file", inputs=inputs)


def iter_jsonl(
    lines: Iterable[str], where: str, *, unit: str = "line", objects: bool = False
) -> Iterator[tuple[int, Any]]:
    """(line number, parsed JSON) per non-blank JSONL line; a one-line DataError names `where` and the line
    (`unit` is the word for it: "line", or "record" where a file's errors speak of records). With `objects`,
    a line that is not a JSON object is an error too."""
    from .errors import DataError

    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = load_json(line, f"{where}: {unit} {n}")
        except json.JSONDecodeError as e:
            raise DataError(f"{where}: {unit} {n}: not valid JSON ({e.msg})") from None
        if objects and not isinstance(rec, dict):
            raise DataError(f"{where}: {unit} {n}: expected a JSON object")
        yield n, rec


@contextmanager
def atomic_file(path: str | Path) -> Iterator[TextIO]:
    """A UTF-8 text file written under a temporary name in the same folder and renamed to `path` when the
    block ends without an error (mode as a plain `open()` would give); on an error nothing is left."""
    p = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            yield f
        follow_umask(tmp)
        os.replace(tmp, p)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextmanager
def atomic_dir(out_dir: str | Path, overwrite: bool, *, command: str | None = None) -> Iterator[Path]:
    """Yield a temporary folder beside out_dir; when the block ends without an error it becomes out_dir
    (replacing an existing one only with overwrite, else a ConfigError before anything is written). With
    `command`, the folder carries clca's output marker (clca._outputs.MARKER) naming it."""
    from ._outputs import write_marker
    from .errors import ConfigError

    given = out_dir
    out_dir = Path(os.path.abspath(out_dir))
    if out_dir.exists() and not overwrite:
        raise ConfigError(f"{given} already exists; pass --overwrite to replace it")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        yield tmp
        if command is not None:
            write_marker(tmp, command)
        follow_umask(tmp, recursive=True)
        old = None
        if out_dir.exists():
            old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
            os.replace(out_dir, old)
        os.replace(tmp, out_dir)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
