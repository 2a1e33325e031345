"""Remove an API key from text that leaves the process (error messages, logs, failure reasons).

Servers echo keys in altered forms: upper- or lower-cased, or with '-' turned into '_' (or the other
way round, or '.'); every such variant is replaced with '***', not only the exact key.
"""

from __future__ import annotations

import re
from functools import lru_cache


@lru_cache(maxsize=16)
def _pattern(key: str) -> re.Pattern[str]:
    parts = [re.escape(ch) if ch.isalnum() else r"[^A-Za-z0-9]?" for ch in key]
    return re.compile("".join(parts), re.IGNORECASE)


def scrub_key(text: str, key: str | None) -> str:
    """text with every case / separator variant of key replaced by '***' (keys under 8 characters and the
    placeholder 'EMPTY' are left alone: too short to find reliably, and not secret)."""
    if not key or key == "EMPTY" or len(key) < 8:
        return text.replace(key, "***") if key and key != "EMPTY" else text
    return _pattern(key).sub("***", text)


_URL_USERINFO = re.compile(r"(?i)\b(https?://)[^\s/@?#\"'<>]*@")


def scrub_url_credentials(text: str) -> str:
    """text with the user:password part of every http(s) URL replaced by '***'
    (`openai:m@http://user:PW@host/v1` -> `openai:m@http://***@host/v1`)."""
    if "://" not in text or "@" not in text:
        return text
    return _URL_USERINFO.sub(r"\1***@", text)
