"""User-supplied culture profiles (YAML or JSON) for cultures without shipped figures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import DataError
from ._model import Culture, HofstedeScores, IWPosition, slug


class ProfileFile(BaseModel):
    """The accepted keys of a profile file; anything else is an error."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    code: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")
    hofstede: HofstedeScores | None = None
    iw: IWPosition | None = None
    description: str | None = None


def _first_error(e: ValidationError) -> str:
    err = e.errors()[0]
    loc = ".".join(str(x) for x in err["loc"]) or "(root)"
    msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
    return f"field '{loc}': {msg}"


def load_profile(path: str | Path) -> Culture:
    """Read and strictly validate a culture profile file.

    Keys: name (required), code (optional short id used in artifact keys; default: slug of name),
    hofstede (optional, any of pdi/idv/mas/uai/lto/ivr, 0-120), iw (optional, traditional_secular /
    survival_self_expression, -5..5, year), description (optional free text added to the prompt text).
    """
    from .._files import load_json, read_text
    from ..config import strict_yaml

    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: culture profile file not found")
    text = read_text(p, "culture profile")
    try:
        raw: Any = load_json(text, str(p)) if p.suffix.lower() == ".json" else strict_yaml(text, str(p))
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        raise DataError(
            f"{p}: not valid {'JSON' if p.suffix.lower() == '.json' else 'YAML'}: {' '.join(str(e).split())[:200]}"
        ) from None
    if not isinstance(raw, dict):
        raise DataError(f"{p}: a culture profile must be a mapping with at least a 'name' key")
    try:
        prof = ProfileFile.model_validate(raw)
    except ValidationError as e:
        raise DataError(f"{p}: {_first_error(e)}") from None
    code = prof.code or slug(prof.name)
    if not code:
        raise DataError(f"{p}: field 'name': cannot derive a code from {prof.name!r}; set 'code'")
    return Culture(id=code, name=prof.name, hofstede=prof.hofstede, iw=prof.iw, description=prof.description)
