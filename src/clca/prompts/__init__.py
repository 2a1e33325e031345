"""All prompt templates live here as Jinja2 files (`<stage>_<name>.j2`); render them by name."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

_DIR = Path(__file__).parent


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(_DIR)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )


def render(name: str, **variables: Any) -> str:
    """Render template `name` (without the .j2 suffix); a missing variable is an error."""
    return _env().get_template(f"{name}.j2").render(**variables).strip()


def names() -> list[str]:
    return sorted(p.stem for p in _DIR.glob("*.j2"))
