"""One writer per run directory: an exclusive lock on RUN_DIR/.lock.

The lock is `fcntl.flock` on an open file, so the kernel releases it when the holding process dies
(SIGKILL included): a lock file left by a killed run is simply taken over, with no stale-pid guessing.
The holder writes its pid into the file so a refused second process can name it. Inside one process the
lock is re-entrant (counted per directory), so a stage and the report it writes share the holder's lock.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from .errors import ClcaError

LOCK_NAME = ".lock"

_held: dict[str, tuple[int, int]] = {}  # resolved run dir -> (fd, count)
_guard = threading.Lock()


class RunLockedError(ClcaError):
    """Another process is writing into the same run directory."""


def acquire(run_dir: Path) -> None:
    """Take the run directory's lock (re-entrant within this process); RunLockedError when another holds it."""
    import fcntl

    key = str(run_dir.resolve())
    with _guard:
        if key in _held:
            fd, n = _held[key]
            _held[key] = (fd, n + 1)
            return
        path = run_dir / LOCK_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            who = f"pid {holder}" if holder else "another process"
            raise RunLockedError(
                f"{run_dir} is in use by another clca process ({who}); wait for it to finish or stop it "
                "(two writers would mix their results)"
            ) from None
        except OSError:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        _held[key] = (fd, 1)


def release(run_dir: Path) -> None:
    """Drop one hold of the lock; the last one unlocks (the file stays, holding no pid)."""
    import fcntl

    key = str(run_dir.resolve())
    with _guard:
        if key not in _held:
            return
        fd, n = _held[key]
        if n > 1:
            _held[key] = (fd, n - 1)
            return
        del _held[key]
        try:
            os.ftruncate(fd, 0)
        except OSError:
            pass
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def holder_pid(run_dir: Path) -> int | None:
    """The pid written by the current holder, or None (no lock file, or not held)."""
    try:
        return _read_pid_path(run_dir / LOCK_NAME)
    except OSError:
        return None


def _read_pid_path(path: Path) -> int | None:
    text = path.read_text(errors="replace").strip()
    return int(text) if text.isdigit() else None


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
