"""The run database: one SQLite file (WAL mode) per run directory.

Every stage writes one row per artifact into `artifacts`, committed as soon as the item is done:

  artifacts(kind, key, status, data, error, parent, created_at)   PRIMARY KEY (kind, key)
    kind    scenario | episode | turn | judgement | intention | survey_answer | metric | ...
    key     stable identity of the item within its kind (e.g. "JPN/seed-007/s0" or "JPN/seed-007/s0/t003";
            kinds and key formats are owned by clca.records)
    status  "ok" or "failed"
    data    the artifact as JSON (validated pydantic model dumps)
    error   the failure reason when status = "failed"
    parent  key of the artifact this one belongs to (a turn's episode), for queries
  meta(name, value)   run config (as JSON), config hash, clca version, created_at

A re-run stage asks `done(kind, key)` and skips what is already there. Failed items (which failed
after their bounded retries) are tried again on a re-run when `retry_failed` is true (the default
of the single-stage commands); `clca run` keeps them as they are unless asked with --retry-failed,
so a finished run re-runs with zero model calls. Only the event-loop thread writes.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import __version__, runlock
from .errors import DataError, RunMismatchError
from .records import CLCA_VERSION, CONFIG, CONFIG_HASH, CREATED_AT

DB_NAME = "run.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS artifacts (
  kind TEXT NOT NULL,
  key TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
  data TEXT,
  error TEXT,
  parent TEXT,
  created_at REAL NOT NULL,
  PRIMARY KEY (kind, key)
);
CREATE INDEX IF NOT EXISTS artifacts_parent ON artifacts(kind, parent);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def _public(text: str) -> str:
    """What is stored never holds a password from a model URL (see clca._scrub)."""
    from ._scrub import scrub_url_credentials

    return scrub_url_credentials(text)


@dataclass(frozen=True)
class Record:
    kind: str
    key: str
    status: str
    data: Any
    error: str | None
    parent: str | None
    created_at: float


class RunStore:
    """Open (or create) the database of a run directory."""

    def __init__(
        self, run_dir: str | Path, *, retry_failed: bool = True, lock: bool = True, read_only: bool = False
    ) -> None:
        """lock=True (writers) takes the run directory's exclusive lock (see clca.runlock); readers pass
        lock=False. A file that is not a clca run database is refused, never written into. read_only=True
        (report, exports, stats, compare) opens an existing database under `PRAGMA query_only` (no write
        can happen), so runs on read-only storage can be read: SQLite's `immutable=1` where the folder or
        the file is not writable (an archive, a read-only mount)."""
        self.run_dir = Path(run_dir)
        self.retry_failed = retry_failed
        self.path = self.run_dir / DB_NAME
        self._kill_after = None
        self._kill_count = 0
        self._locked = False
        if read_only:
            self._db = _open_read_only(self.path)
            return
        _make_run_dir(self.run_dir, writable=lock)
        self._locked = False
        if lock:
            runlock.acquire(self.run_dir)
            self._locked = True
        try:
            self._db = _open_db(self.path)
        except BaseException:
            self._unlock()
            raise
        self._kill_after = _kill_after_hook()
        self._kill_count = 0  # writes of the hook's kind so far
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=10000")
            self._create()
        except sqlite3.DatabaseError as e:
            self._db.close()
            self._unlock()
            raise DataError(f"{self.path}: cannot be used as a run database ({e})") from None
        except BaseException:
            self._db.close()
            self._unlock()
            raise

    def _create(self) -> None:
        """Tables and version row in one transaction: a database is either complete or has no tables
        (a half-created one, from a crash or a full disk, is completed here: see _open_db)."""
        try:
            if self.get_meta(CLCA_VERSION) is not None:
                return  # complete already
        except sqlite3.OperationalError:
            pass  # no meta table yet
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for stmt in _SCHEMA.split(";"):
                if stmt.strip():
                    self._db.execute(stmt)
            if self.get_meta(CLCA_VERSION) is None:
                self.set_meta(CLCA_VERSION, __version__)
                self.set_meta(CREATED_AT, time.time())
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def _unlock(self) -> None:
        if self._locked:
            self._locked = False
            runlock.release(self.run_dir)

    # -- meta -----------------------------------------------------------------------------------
    def set_meta(self, name: str, value: Any) -> None:
        self._db.execute(
            "INSERT INTO meta(name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value=excluded.value",
            (name, _public(json.dumps(value))),
        )

    def get_meta(self, name: str) -> Any:
        row = self._db.execute("SELECT value FROM meta WHERE name=?", (name,)).fetchone()
        return None if row is None else json.loads(row[0])

    def bind_config(self, config: dict[str, Any], config_hash: str) -> None:
        """Record the run config; refuse a run directory made by a different config."""
        old = self.get_meta(CONFIG_HASH)
        if old is not None and old != config_hash:
            keys = differing_keys(self.get_meta(CONFIG), config)
            more = f" (and {len(keys) - 6} more)" if len(keys) > 6 else ""
            what = f"these keys differ: {', '.join(keys[:6])}{more}"
            raise RunMismatchError(
                f"{self.run_dir} was created by a different configuration ("
                + (what if keys else f"hash {old[:12]} != {config_hash[:12]}")
                + "); use a new run directory, or delete this one to start over"
            )
        self.set_meta(CONFIG, config)
        self.set_meta(CONFIG_HASH, config_hash)

    def bind_inputs(self, hashes: dict[str, str]) -> None:
        """Record the content hashes of the run's input files; refuse when a recorded one changed."""
        from ._inputs import META_KEY, check_inputs

        check_inputs(self.run_dir, self.get_meta(META_KEY), hashes)
        self.set_meta(META_KEY, {**(self.get_meta(META_KEY) or {}), **hashes})

    # -- artifacts ------------------------------------------------------------------------------
    def put(self, kind: str, key: str, data: Any, *, parent: str | None = None) -> None:
        """Store a finished artifact (replaces an earlier failure of the same key)."""
        self._write(kind, key, "ok", _public(json.dumps(data, ensure_ascii=False)), None, parent)

    def fail(self, kind: str, key: str, reason: str, *, parent: str | None = None, data: Any = None) -> None:
        """Record that an item failed, with its reason (and any partial data, for diagnosis)."""
        payload = None if data is None else _public(json.dumps(data, ensure_ascii=False))
        self._write(kind, key, "failed", payload, _public(reason), parent)

    def _write(self, kind: str, key: str, status: str, data: str | None, error: str | None, parent: str | None) -> None:
        self._db.execute(
            "INSERT INTO artifacts(kind, key, status, data, error, parent, created_at) VALUES (?,?,?,?,?,?,?) "
            "ON CONFLICT(kind, key) DO UPDATE SET status=excluded.status, data=excluded.data, "
            "error=excluded.error, parent=excluded.parent, created_at=excluded.created_at",
            (kind, key, status, data, error, parent, time.time()),
        )
        if self._kill_after is not None and kind == self._kill_after[0]:
            self._kill_count += 1
            if self._kill_count >= self._kill_after[1]:  # crash-test hook: die here, with no clean-up at all
                os.kill(os.getpid(), signal.SIGKILL)

    def delete(self, kind: str, key: str) -> None:
        self._db.execute("DELETE FROM artifacts WHERE kind=? AND key=?", (kind, key))

    def get(self, kind: str, key: str) -> Record | None:
        row = self._db.execute(
            "SELECT kind, key, status, data, error, parent, created_at FROM artifacts WHERE kind=? AND key=?",
            (kind, key),
        ).fetchone()
        return None if row is None else _record(row)

    def done(self, kind: str, key: str) -> bool:
        """True when the item is ok, or failed and failures are not to be retried."""
        row = self._db.execute("SELECT status FROM artifacts WHERE kind=? AND key=?", (kind, key)).fetchone()
        return row is not None and (row[0] == "ok" or not self.retry_failed)

    def iter(
        self, kind: str, *, status: str | None = "ok", parent: str | None = None, prefix: str | None = None
    ) -> Iterator[Record]:
        """Artifacts of a kind in key order, filtered by status (None = all), parent or key prefix."""
        sql = "SELECT kind, key, status, data, error, parent, created_at FROM artifacts WHERE kind=?"
        args: list[Any] = [kind]
        if status is not None:
            sql += " AND status=?"
            args.append(status)
        if parent is not None:
            sql += " AND parent=?"
            args.append(parent)
        if prefix is not None:
            sql += " AND key >= ? AND key < ?"
            args += [prefix, prefix + "\uffff"]
        sql += " ORDER BY key"
        for row in self._db.execute(sql, args).fetchall():
            yield _record(row)

    def count(self, kind: str, status: str | None = "ok") -> int:
        if status is None:
            return self._db.execute("SELECT COUNT(*) FROM artifacts WHERE kind=?", (kind,)).fetchone()[0]
        row = self._db.execute("SELECT COUNT(*) FROM artifacts WHERE kind=? AND status=?", (kind, status)).fetchone()
        return row[0]

    def failure_reasons(self, kind: str) -> dict[str, int]:
        """Failure counts per reason for a kind (reasons are grouped by their text before ':')."""
        out: dict[str, int] = {}
        for (err,) in self._db.execute("SELECT error FROM artifacts WHERE kind=? AND status='failed'", (kind,)):
            reason = (err or "unknown").split(":")[0].strip()
            out[reason] = out.get(reason, 0) + 1
        return out

    def kinds(self) -> dict[str, dict[str, int]]:
        """Counts per kind and status."""
        out: dict[str, dict[str, int]] = {}
        for kind, status, n in self._db.execute("SELECT kind, status, COUNT(*) FROM artifacts GROUP BY kind, status"):
            out.setdefault(kind, {})[status] = n
        return out

    def import_from(
        self,
        source: Path,
        *,
        exclude_kinds: tuple[str, ...] = (),
        include: tuple[tuple[str, str], ...] = (),
        meta_prefixes: tuple[str, ...] = (),
    ) -> dict[str, int]:
        """Copy another run's records (key, status, data as they are) that this run does not hold yet: every
        kind except `exclude_kinds`, plus the records of `include` (kind, key prefix) pairs, and the meta
        entries whose names start with `meta_prefixes`. Returns the number of records copied per kind.
        One transaction: all or nothing."""
        before = {k: sum(v.values()) for k, v in self.kinds().items()}
        cols = "kind, key, status, data, error, parent, created_at"
        marks = ",".join("?" * len(exclude_kinds))
        where = f"(kind NOT IN ({marks}))" if exclude_kinds else "1"
        args: list[Any] = list(exclude_kinds)
        for kind, prefix in include:
            where += " OR (kind=? AND key >= ? AND key < ?)"
            args += [kind, prefix, prefix + "\uffff"]
        self._db.execute("ATTACH DATABASE ? AS source", (str(source),))
        try:
            self._db.execute("BEGIN")
            sql = f"INSERT OR IGNORE INTO artifacts({cols}) SELECT {cols} FROM source.artifacts WHERE {where}"
            self._db.execute(sql, args)
            for pre in meta_prefixes:
                self._db.execute(
                    "INSERT OR IGNORE INTO meta(name, value) SELECT name, value FROM source.meta "
                    "WHERE name >= ? AND name < ?",
                    (pre, pre + "\uffff"),
                )
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        finally:
            self._db.execute("DETACH DATABASE source")
        after = {k: sum(v.values()) for k, v in self.kinds().items()}
        return {k: n - before.get(k, 0) for k, n in after.items() if n != before.get(k, 0)}

    def integrity_ok(self) -> bool:
        return self._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    def close(self) -> None:
        self._db.close()
        self._unlock()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _make_run_dir(run_dir: Path, *, writable: bool) -> None:
    """Create the run directory; a path that is a file, under a file, or not writable is a one-line error."""
    if run_dir.exists() and not run_dir.is_dir():
        raise DataError(f"{run_dir}: is a file, not a run directory")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except (NotADirectoryError, FileExistsError):
        raise DataError(f"{run_dir}: cannot create the run directory (a part of the path is a file)") from None
    except OSError as e:
        raise DataError(f"{run_dir}: cannot create the run directory ({e.strerror or e})") from None
    if writable and not os.access(run_dir, os.W_OK | os.X_OK):
        raise DataError(f"{run_dir}: run directory is not writable")


_CLCA_TABLES = {"artifacts", "meta"}


def _open_db(path: Path) -> sqlite3.Connection:
    """Connect to a run database; an existing SQLite file of anything else (or not SQLite) is refused."""
    fresh = not path.exists()
    if not fresh and not path.is_file():
        raise DataError(f"{path}: is not a file")
    if not fresh and os.path.getsize(path) > 0:
        with path.open("rb") as f:
            if f.read(16) != b"SQLite format 3\x00":
                raise DataError(f"{path}: not a SQLite database (corrupt or another kind of file)")
    try:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as e:
        raise DataError(f"{path}: cannot open the run database ({e})") from None
    if fresh:
        return db
    try:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        ours = (
            _CLCA_TABLES <= tables and db.execute("SELECT 1 FROM meta WHERE name='clca_version'").fetchone() is not None
        )
    except sqlite3.DatabaseError as e:
        db.close()
        raise DataError(f"{path}: cannot be read as a run database ({e})") from None
    if tables and not ours and not _half_created(db, tables):
        db.close()
        raise DataError(
            f"{path}: not a clca run database (tables: {', '.join(sorted(tables)) or 'none'}); left unchanged - "
            f"if it is a clca run cut off while being created, delete {path} (and any {path.name}-wal, -shm beside it)"
        )
    return db


def _half_created(db: sqlite3.Connection, tables: set[str]) -> bool:
    """Only clca's tables, all empty: a creation cut off before its version row (completed, not refused)."""
    if not tables <= _CLCA_TABLES:
        return False
    return all(db.execute(f"SELECT 1 FROM {t} LIMIT 1").fetchone() is None for t in tables)


def _open_read_only(path: Path) -> sqlite3.Connection:
    """An existing run database opened for reading only (see RunStore read_only); never created."""
    if not path.is_file():
        raise DataError(f"{path.parent}: no run database ({DB_NAME}) here")
    with path.open("rb") as f:
        if f.read(16) != b"SQLite format 3\x00":
            raise DataError(f"{path}: not a SQLite database (corrupt or another kind of file)")
    from urllib.parse import quote

    uri = "file:" + quote(str(path.resolve()))
    writable = os.access(path.parent, os.W_OK | os.X_OK) and os.access(path, os.W_OK)
    # writable storage: an ordinary connection under query_only (safe beside a live writer, and its WAL
    # is cleaned up on close as usual); read-only storage: immutable (no journal, no lock file)
    modes = ["mode=rw", "immutable=1"] if writable else ["immutable=1"]
    last: Exception | None = None
    for mode in modes:
        try:
            db = sqlite3.connect(f"{uri}?{mode}", uri=True, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA query_only=1")
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.DatabaseError as e:
            last = e
            continue
        if not _CLCA_TABLES <= tables or db.execute("SELECT 1 FROM meta WHERE name='clca_version'").fetchone() is None:
            db.close()
            raise DataError(f"{path}: not a clca run database; left unchanged")
        return db
    raise DataError(f"{path}: cannot be read as a run database ({last})")


def _kill_after_hook() -> tuple[str, int] | None:
    """Test hook for crash tests: CLCA_TEST_KILL_AFTER="KIND:N" makes the process SIGKILL itself right after
    its N-th write of artifacts of KIND (counted per store, so a resumed run always does new work first).
    Unset in normal use."""
    spec = os.environ.get("CLCA_TEST_KILL_AFTER")
    if not spec:
        return None
    kind, _, n = spec.rpartition(":")
    if not kind or not n.isdigit() or int(n) < 1:
        raise ValueError(f"CLCA_TEST_KILL_AFTER={spec!r}: expected KIND:N with N >= 1")
    return kind, int(n)


def _record(row: tuple) -> Record:
    kind, key, status, data, error, parent, created = row
    return Record(kind, key, status, None if data is None else json.loads(data), error, parent, created)


def differing_keys(old: Any, new: Any, prefix: str = "") -> list[str]:
    """The dotted keys whose values differ between two stored configs (nested mappings compared key by key)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for k in [*old, *(k for k in new if k not in old)]:
            out += differing_keys(old.get(k), new.get(k), f"{prefix}{k}.")
        return out
    return [] if old == new else [prefix.rstrip(".") or "(whole config)"]
