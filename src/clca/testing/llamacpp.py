"""Run llama-cpp-python's OpenAI-compatible server without llama.cpp's extra weight buffer types.

    python -m clca.testing.llamacpp --model MODEL.gguf --model_alias smol --port 8080

takes the arguments of `python -m llama_cpp.server` and starts it with `use_extra_bufts = False` in the
model parameters (what `llama-server --no-repack` does). On CPUs with AMX, llama.cpp repacks the weights
for AMX tiles; where the kernel does not grant the process AMX tile state the server then crashes
(SIGSEGV on prompts of 4 tokens or more). llama-cpp-python has no setting for it, so this wraps
`llama_model_default_params`. Needs `llama-cpp-python[server]` (see the README).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any


def server_command(model: str | Path, port: int, *, alias: str = "smol", n_ctx: int = 4096) -> list[str]:
    """argv that starts the server on loopback `port` serving the GGUF `model` as `alias`."""
    return [
        sys.executable, "-m", __name__, "--model", str(model), "--model_alias", alias,
        "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx),
    ]  # fmt: skip


def main() -> None:
    import llama_cpp.llama_cpp as lib
    from llama_cpp.server.__main__ import main as serve

    default = lib.llama_model_default_params

    def without_extra_bufts() -> Any:
        params = default()
        params.use_extra_bufts = False
        return params

    lib.llama_model_default_params = without_extra_bufts
    serve()


if __name__ == "__main__":
    main()
