"""The model backends: `openai:` (any OpenAI-compatible server, over replicas) and the in-process one
(`embedded`, `hf:PATH`) on the engine. `_spec.BACKENDS` names each kind's module (its `build` and `check`),
imported on first use; the backend classes load on first use too (openai; torch only when a model loads)."""

from typing import TYPE_CHECKING

from .._lazy import lazy_names
from ._capabilities import capability_records, forget_server
from ._scoring import normalise

if TYPE_CHECKING:
    from ._hf import HFModel, HFOptions
    from ._openai import OpenAIModel
    from ._openai_config import OpenAIConfig, api_key_for

_OPENAI = {"._openai": ("OpenAIModel",), "._openai_config": ("OpenAIConfig", "api_key_for")}
__getattr__ = lazy_names(__name__, {"._hf": ("HFModel", "HFOptions"), **_OPENAI})

__all__ = [
    "HFModel",
    "HFOptions",
    "OpenAIConfig",
    "OpenAIModel",
    "api_key_for",
    "capability_records",
    "forget_server",
    "normalise",
]
