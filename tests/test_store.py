import pytest

from clca.errors import RunMismatchError
from clca.store import RunStore


def test_put_get_iter_and_failures(run_dir):
    s = RunStore(run_dir)
    s.put("scenario", "a", {"x": 1})
    s.fail("scenario", "b", "invalid: names unchanged")
    s.put("turn", "ep1/000", {"t": 0}, parent="ep1")
    s.put("turn", "ep1/001", {"t": 1}, parent="ep1")
    assert s.done("scenario", "a") and not s.done("scenario", "b")
    assert [r.key for r in s.iter("turn", parent="ep1")] == ["ep1/000", "ep1/001"]
    assert s.count("scenario") == 1 and s.count("scenario", None) == 2
    assert s.failure_reasons("scenario") == {"invalid": 1}
    s.put("scenario", "b", {"x": 2})  # a retry replaces the failure
    assert s.count("scenario") == 2
    assert s.integrity_ok()
    s.close()
    s2 = RunStore(run_dir)  # persisted across connections
    assert s2.get("scenario", "b").data == {"x": 2}
    assert s2._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_config_binding_refuses_other_config(run_dir):
    s = RunStore(run_dir)
    s.bind_config({"a": 1}, "hash1")
    s.bind_config({"a": 1}, "hash1")
    with pytest.raises(RunMismatchError, match="different configuration"):
        s.bind_config({"a": 2}, "hash2")
