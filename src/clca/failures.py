"""The reason text of a `failed` row for an error raised by a model call.

Every stage records a model error as a failed row whose reason starts with a group (the text before the
first ':', which summaries count): `HTTP 401` / `HTTP 500` when the server answered with a status (also
after retries), else the error's class name. A 401/403 gets a hint naming the server whose key is wrong.
"""

from __future__ import annotations

import re

_STATUS_AT = re.compile(r"(?P<model>\S+) at (?P<url>\S+): HTTP (?P<status>\d{3})\b")
_LAST_STATUS = re.compile(r"last error: HTTP (?P<status>\d{3})\b")
_AT_URL = re.compile(r" at (?P<url>[a-z]+://\S+?):? ")


def http_status(e: BaseException) -> int | None:
    """The HTTP status a backend error carries (its `status`, or the one named in its message)."""
    status = getattr(e, "status", None) or getattr(e, "status_code", None)
    if isinstance(status, int):
        return status
    text = str(e)
    m = _STATUS_AT.search(text) or _LAST_STATUS.search(text)
    return int(m.group("status")) if m else None


def base_url(e: BaseException) -> str | None:
    m = _AT_URL.search(str(e))
    return m.group("url") if m else None


def hint(e: BaseException) -> str | None:
    """Advice for errors the user fixes outside clca (a wrong API key)."""
    status = http_status(e)
    if status in (401, 403):
        url = base_url(e) or "the server"
        env = "the environment variable named by api_key_env (default OPENAI_API_KEY)"
        return f"check the API key for {url} ({env})"
    return None


def failure_group(e: BaseException) -> str:
    """`HTTP <status>` when the error carries one, else the error's class name."""
    status = http_status(e)
    return f"HTTP {status}" if status is not None else type(e).__name__.lstrip("_") or "Error"


def failure_reason(e: BaseException, where: str | None = None) -> str:
    """'<group>: [<where>: ]<detail>[; hint: ...]' for the `error` column of a failed row; one line."""
    detail = " ".join(str(e).split()) or type(e).__name__
    h = hint(e)
    return f"{failure_group(e)}: " + (f"{where}: " if where else "") + detail + (f"; hint: {h}" if h else "")


def first_failure(store: object, kind: str) -> str | None:
    """The reason of one failed row of a kind (for a one-line stage error), shortened."""
    for rec in store.iter(kind, status="failed"):  # type: ignore[attr-defined]
        text = rec.error or ""
        return text if len(text) <= 400 else text[:397] + "..."
    return None
