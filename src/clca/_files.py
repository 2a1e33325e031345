"""File modes that follow the user's umask, and clean-up of stale temporary folders.

`tempfile.mkstemp` creates files 0600 and `mkdtemp` folders 0700, whatever the umask; output that is
written to a temporary name and then renamed would keep those modes. `follow_umask` gives such a path the
mode a plain `open()` / `mkdir()` would have given it (0666 / 0777 minus the umask).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path


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
