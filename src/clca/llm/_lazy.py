"""Names a package loads on first use (openai, fastapi, torch), served by a module `__getattr__`."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_names(package: str, modules: Mapping[str, tuple[str, ...]]) -> Callable[[str], Any]:
    """A module `__getattr__` for `package`: each name of `modules[module]` is taken from that module
    (relative to `package`), imported on the name's first use."""
    table = {name: module for module, names in modules.items() for name in names}

    def __getattr__(name: str) -> Any:
        if name in table:
            return getattr(importlib.import_module(table[name], package), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
