"""Test helpers for every stage: a fault-injecting OpenAI-compatible server (loopback only).

    from clca.testing import Fault, fault_server

    with fault_server(MockLLM(["hello"]), Fault(kind="status", status=429, first=2)) as fs:
        llm = load_model(fs.model_string(backoff_base=0), cache=False)
        ...                       # the first two requests get 429, the third succeeds
        assert fs.counters.requests == 3

Fault kinds: status (with `status`, optional `retry_after`), delay, timeout (hang), truncate,
invalid_json, bad_schema (valid completion whose content breaks the schema), drop (close the
connection without answering). Selectors: first, every, requests, prob (seeded by `seed`).

Server profiles (`fault_server(inner, profile="llamacpp")`: vllm, llamacpp, ollama, json_mode, chat_only)
accept and refuse what those servers do, so every fallback of the `openai:` backend is tested; see
`_profiles`. `counters.repeated_refusals` counts requests that resend a body refused before.
"""

from ._faults import BAD_SCHEMA_CONTENT, Fault, FaultCounters, FaultServer, fault_server
from ._profiles import PROFILES, ServerProfile

__all__ = ["BAD_SCHEMA_CONTENT", "PROFILES", "Fault", "FaultCounters", "FaultServer", "ServerProfile", "fault_server"]
