"""`clca serve`: any `LLM` behind an OpenAI-compatible HTTP API, and what it refuses before model work.
The server itself (FastAPI, uvicorn) loads on first use."""

from typing import TYPE_CHECKING

from .._lazy import lazy_names
from ._serve_guard import DEFAULT_MAX_TOKENS, ServeLimits

if TYPE_CHECKING:
    from ._server import create_app, run_server, serve_in_thread

__getattr__ = lazy_names(__name__, {"._server": ("create_app", "run_server", "serve_in_thread")})

__all__ = ["DEFAULT_MAX_TOKENS", "ServeLimits", "create_app", "run_server", "serve_in_thread"]
