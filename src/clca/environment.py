"""The environment a run computed in: recorded in the run database (meta `records.ENVIRONMENT_META`), shown
by the report, and compared by `clca compare` (the runs' differences are listed and their rows marked).

What is recorded: Python, the platform, the CPU (model, cores) and the GPUs (when torch was loaded), the
versions of the packages that change numbers (torch, transformers, peft, trl, accelerate, datasets, ...),
clca's version and git commit ("not a git checkout" for an installed copy), and per loaded model its
backend, dtype and torch thread count. Nothing secret is read: no environment variables, no URLs' keys.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from .records import ENVIRONMENT_META

# the packages whose versions can change a run's numbers
PACKAGES = ("torch", "transformers", "peft", "trl", "accelerate", "datasets", "safetensors", "numpy", "openai")
NOT_GIT = "not a git checkout"
GPU_NOT_CHECKED = "not checked (torch not loaded)"  # unknown, not a difference (see flatten)
# entries that differ between any two sessions and say nothing about the numbers
_VOLATILE = {"recorded_at"}


def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _gpus() -> list[str] | str:
    """The CUDA devices torch sees; only asked when this process already loaded torch (a run that never
    did used no GPU)."""
    torch = sys.modules.get("torch")
    if torch is None:
        return GPU_NOT_CHECKED
    try:
        if not torch.cuda.is_available():
            return []
        return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except Exception as e:  # a broken driver must not stop a run from recording its environment
        return f"unknown ({type(e).__name__})"


def git_commit() -> str:
    """clca's git commit (with '-dirty' when tracked files changed), or NOT_GIT for an installed copy."""
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists():
        return NOT_GIT
    try:

        def git(*args: str) -> str:
            return subprocess.run(
                ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10, check=True
            ).stdout.strip()

        commit = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return NOT_GIT
    return f"{commit}-dirty" if dirty else commit


def model_runtime(llm: Any) -> dict[str, Any]:
    """Backend, dtype and torch threads of a (wrapped) loaded model; a server's model computes elsewhere."""
    inner, depth = llm, 0
    while hasattr(inner, "__dict__") and "inner" in inner.__dict__ and depth < 8:
        inner, depth = inner.__dict__["inner"], depth + 1
    rec: dict[str, Any] = {"backend": type(inner).__name__}
    engine = inner.__dict__.get("_engine") if hasattr(inner, "__dict__") else None
    if engine is not None:  # an in-process model that was loaded
        rec["dtype"] = str(getattr(engine, "dtype", "unknown")).removeprefix("torch.")
        rec["device"] = str(getattr(engine, "device", "unknown"))
        torch = sys.modules.get("torch")
        rec["threads"] = torch.get_num_threads() if torch is not None else None
    elif "_engine" in getattr(inner, "__dict__", {}):
        rec["dtype"] = inner.__dict__.get("_dtype") or "default (not loaded in this session)"
        rec["threads"] = inner.__dict__.get("_torch_threads")
    else:
        rec["dtype"] = rec["threads"] = "decided by the server"
    return rec


def capture(models: dict[str, Any] | None = None) -> dict[str, Any]:
    """This process's environment; `models`: model string -> loaded backend."""
    import clca

    return {
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "cpu": {"model": _cpu_model(), "cores": os.cpu_count() or 1, "usable_cores": _usable_cores()},
        "gpu": _gpus(),
        "packages": {name: _package_version(name) for name in PACKAGES},
        "clca": {"version": clca.__version__, "commit": git_commit()},
        "models": {spec: model_runtime(m) for spec, m in (models or {}).items()},
        "recorded_at": time.time(),
    }


def record_environment(store: Any, models: dict[str, Any] | None = None) -> dict[str, Any]:
    """Store this process's environment in the run; models already recorded by earlier stages (or an
    earlier session) are kept. A run continued in a different environment keeps the earlier ones under
    'earlier' (each without its own 'earlier')."""
    env = capture(models)
    old = store.get_meta(ENVIRONMENT_META)
    if isinstance(old, dict):
        env["models"] = {**(old.get("models") or {}), **env["models"]}
        if env["gpu"] == GPU_NOT_CHECKED and old.get("gpu") not in (None, GPU_NOT_CHECKED):
            env["gpu"] = old["gpu"]  # a later session that never loaded torch does not forget what was seen
        earlier = list(old.get("earlier") or [])
        prev = {k: v for k, v in old.items() if k != "earlier"}
        if differences(prev, env, models=False):
            earlier.append(prev)
        if earlier:
            env["earlier"] = earlier
    store.set_meta(ENVIRONMENT_META, env)
    return env


def flatten(env: dict[str, Any], *, models: bool = True) -> dict[str, str]:
    """'packages.torch' -> '2.13.0+cpu', ...: the comparable entries of a recorded environment."""
    out: dict[str, str] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        elif isinstance(value, list):
            out[prefix] = ", ".join(map(str, value)) or "none"
        else:
            out[prefix] = str(value)

    for key, value in env.items():
        if key in _VOLATILE or key == "earlier" or key == "models" or value == GPU_NOT_CHECKED:
            continue
        walk(key, value)
    if models:  # by what they computed with, not by model string (an adapter's path differs per run)
        recs = [r for r in (env.get("models") or {}).values() if isinstance(r, dict)]
        for field in ("backend", "dtype", "threads"):
            seen = sorted({str(r.get(field)) for r in recs})
            if seen:
                out[f"models.{field}"] = ", ".join(seen)
    return out


def differences(
    a: dict[str, Any] | None, b: dict[str, Any] | None, *, models: bool = True
) -> list[tuple[str, str, str]]:
    """(entry, value in a, value in b) for every entry that differs; a missing environment (a run made
    before clca recorded them) reads as 'not recorded'."""
    if not a or not b:
        if not a and not b:
            return []
        return [("environment", "recorded" if a else "not recorded", "recorded" if b else "not recorded")]
    fa, fb = flatten(a, models=models), flatten(b, models=models)
    missing = "not recorded"
    keys = sorted(fa.keys() | fb.keys())
    if GPU_NOT_CHECKED in (a.get("gpu"), b.get("gpu")):  # one run never looked: unknown, not a difference
        keys = [k for k in keys if k != "gpu"]
    return [(k, fa.get(k, missing), fb.get(k, missing)) for k in keys if fa.get(k) != fb.get(k)]
