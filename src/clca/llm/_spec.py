"""The model string, owned here: `ModelSpec` parses, formats and validates it; nothing else splits it.

    embedded[+lora:DIR][?key=value&...]               the embedded SmolLM2-135M-Instruct
    hf:PATH[+lora:DIR][?key=value&...]                a local Hugging Face causal LM directory
    openai:MODEL@BASE_URL[,BASE_URL...][?key=value&...]
                                                      an OpenAI-compatible server; several URLs = replicas
    mock                                              the scripted MockLLM (tests)

`ModelSpec.parse` checks the syntax only; `validate()` also checks the options (each backend's options
model) and, for `openai:`, that the API key is available; neither loads a model nor touches the network.

Every backend is registered once, in `BACKENDS` below: its kind, the module with its factory and check
(imported on first use), the syntax of its strings and what it takes. `parse`, `format`, `with_adapter`,
`is_local`, `load_model` and `validate` all read that table; adding a backend is one line there.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import parse_qsl, quote, urlsplit

from pydantic import BaseModel, ValidationError

from ..errors import ModelStringError

Kind = str  # a key of BACKENDS
LORA = "+lora:"
EXPECTED = "expected 'embedded', 'embedded+lora:DIR', 'hf:PATH[+lora:DIR]', 'openai:MODEL@BASE_URL' or 'mock'"
OPENAI_SYNTAX = "expected 'openai:MODEL@http(s)://HOST[:PORT]/v1[,http(s)://HOST2...][?option=value&...]'"
_SAFE = ":/,@.-_~"  # characters an option value keeps as they are when the string is formatted

Opts = TypeVar("Opts", bound=BaseModel)


class UnknownModelKind(ModelStringError):
    """The string names no known backend."""


@dataclass(frozen=True)
class ModelSpec:
    """A parsed model string: backend kind, base (hf: the path; openai: MODEL@URL[,URL...]; else ""),
    an optional LoRA adapter directory (embedded and hf only), and the `?key=value` options as strings."""

    kind: Kind
    base: str = ""
    adapter: str | None = None
    options: Mapping[str, str] = field(default_factory=dict)

    # -- parse / format --------------------------------------------------------------------------------
    @classmethod
    def parse(cls, text: str) -> ModelSpec:
        """The syntax of a model string (no options model, no file or network check)."""
        s = text.strip()
        if not s:
            raise ModelStringError(f"empty model string; {EXPECTED}")
        body, _, query = s.partition("?")
        name, colon, _ = body.partition(":")
        b = BACKENDS.get(name)
        if b is not None and b.syntax == "target" and colon:  # KIND:MODEL@URL[,URL...] ('+' may be in MODEL)
            base = body[len(name) + 1 :]
            openai_target(base, s)  # syntax of MODEL@URL[,URL...]
            return cls(name, base, None, parse_query(query, s) if query else {})
        head, sep, rest = body.partition("+")
        name, colon, path = head.partition(":")
        b = BACKENDS.get(name)
        if b is None or b.syntax == "target" or (b.syntax == "path") != bool(colon) or (query and not b.options):
            raise UnknownModelKind(f"unknown model string {s!r}; {EXPECTED}")
        if b.syntax == "path" and not path.strip():
            raise ModelStringError(f"model string {s!r} names no path; expected '{name}:PATH[+lora:DIR]'")
        adapter = None
        if sep:
            if not b.adapter:
                raise UnknownModelKind(f"unknown model string {s!r}; {EXPECTED}")
            if not rest.startswith("lora:") or not rest[5:].strip():
                raise ModelStringError(f"model string {s!r}: expected '+lora:ADAPTER_DIR' after the model")
            adapter = rest[5:].strip()
        return cls(name, path.strip(), adapter, parse_query(query, s) if query else {})

    def format(self) -> str:
        """The model string; `ModelSpec.parse(spec.format()) == spec`."""
        head = self.kind if BACKENDS[self.kind].syntax == "name" else f"{self.kind}:{self.base}"
        lora = f"{LORA}{self.adapter}" if self.adapter is not None else ""
        query = "&".join(f"{quote(str(k), safe=_SAFE)}={quote(str(v), safe=_SAFE)}" for k, v in self.options.items())
        return head + lora + (f"?{query}" if query else "")

    def __str__(self) -> str:
        return self.format()

    def public(self) -> str:
        """The model string as stored or shown: credentials in its URLs replaced by '***'."""
        from .._scrub import scrub_url_credentials

        return scrub_url_credentials(self.format())

    @classmethod
    def remote(cls, model: str, base_urls: list[str], **options: Any) -> ModelSpec:
        """The `openai:` string of a served model (`openai:MODEL@URL[,URL...]?k=v`), checked by `parse`."""
        spec = cls("openai", f"{model}@{','.join(base_urls)}", None, {k: str(v) for k, v in options.items()})
        return cls.parse(spec.format())

    # -- derived specs ---------------------------------------------------------------------------------
    def with_adapter(self, adapter: str | Path) -> ModelSpec:
        """This model with a LoRA adapter (its options stay at the end of the string)."""
        if not BACKENDS[self.kind].adapter:
            takes = " and ".join(k for k, b in BACKENDS.items() if b.adapter)
            raise ModelStringError(f"model string {self.format()!r}: only {takes} models take an adapter")
        return replace(self, adapter=str(adapter))

    def without_options(self) -> ModelSpec:
        return replace(self, options={})

    @property
    def is_local(self) -> bool:
        """Runs in-process (embedded or hf:)."""
        return BACKENDS[self.kind].local

    def local_model_dir(self) -> Path:
        """The base model's directory (the embedded model is converted on first call); adapter and options
        play no part. Raises for remote models and for directories that do not exist."""
        if self.kind == "embedded":
            from ._embedded import embedded_model_dir

            return embedded_model_dir()
        if self.kind != "hf":
            raise ModelStringError(f"model string {self.format()!r}: expected 'embedded' or 'hf:PATH' (a local model)")
        path = Path(self.base).expanduser().resolve()
        if not path.is_dir():
            raise ModelStringError(f"model directory not found: {path} (from model string {self.format()!r})")
        return path

    # -- validation ------------------------------------------------------------------------------------
    def validate(self) -> None:
        """Options and (openai:) the API key's presence, without loading anything or any network call."""
        backend(self.kind, "check")(self)

    def options_as(self, options_model: type[Opts], **overrides: Any) -> Opts:
        """The string's options validated by a backend's options model (keyword overrides win)."""
        try:
            return options_model(**{**self.options, **overrides})
        except ValidationError as e:
            raise ModelStringError(validation_message(self.format(), e, options_model)) from None


# -- the backends, registered here once -------------------------------------------------------------------
@dataclass(frozen=True)
class Backend:
    """A backend kind. `module` defines `build(spec, options) -> LLM` and `check(spec)` (raises
    ModelStringError/BackendError for bad options or a missing key); it is imported on first use.
    syntax: "name" (the kind alone: `embedded`, `mock`), "path" (`KIND:PATH`), "target" (`KIND:MODEL@URL[,URL]`)."""

    module: str
    syntax: Literal["name", "path", "target"]
    adapter: bool = False  # takes `+lora:DIR`
    local: bool = False  # runs in-process (a local model directory)
    options: bool = True  # takes `?key=value` options


BACKENDS: dict[str, Backend] = {
    "embedded": Backend("clca.llm.backends._hf", "name", adapter=True, local=True),
    "hf": Backend("clca.llm.backends._hf", "path", adapter=True, local=True),
    "openai": Backend("clca.llm.backends._openai_backend", "target"),
    "mock": Backend("clca.llm._mock", "name", options=False),
}
KINDS: tuple[Kind, ...] = tuple(BACKENDS)


def backend(kind: str, which: Literal["build", "check"]) -> Any:
    """The factory or check of a backend kind, imported now (heavy imports happen only here)."""
    import importlib

    return getattr(importlib.import_module(BACKENDS[kind].module), which)


def check_model_string(text: str) -> ModelSpec:
    """Parse and validate a model string (config loading); every error is `bad model string '...': ...`."""
    try:
        spec = ModelSpec.parse(text)
    except UnknownModelKind:
        raise ModelStringError(
            f"bad model string {text!r}; expected embedded, hf:PATH[+lora:DIR] or openai:MODEL@BASE_URL"
        ) from None
    spec.validate()
    return spec


# -- helpers of the syntax -------------------------------------------------------------------------------
def parse_query(query: str, spec: str) -> dict[str, str]:
    """The `key=value&...` options after a model string's `?` (values still strings)."""
    try:
        return dict(parse_qsl(query, keep_blank_values=True, strict_parsing=True))
    except ValueError:
        raise ModelStringError(f"bad model string {spec!r}: options must look like '?key=value&key2=value2'") from None


def validation_message(spec: str, e: ValidationError, known: type[BaseModel]) -> str:
    """One line naming the first bad option of a model string (`known`: the options model's class)."""
    err = e.errors()[0]
    where = ".".join(str(x) for x in err["loc"]) or "(options)"
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        msg = f"unknown option (known: {', '.join(sorted(known.model_fields))})"
    return f"bad model string {spec!r}: option {where}: {msg}"


def openai_target(base: str, spec: str) -> tuple[str, list[str]]:
    """'MODEL@URL[,URL...]' -> (model, normalised base URLs)."""
    at = min((i for i in (base.find("@http://"), base.find("@https://")) if i >= 0), default=-1)
    if at <= 0:
        raise ModelStringError(f"bad model string {spec!r}: {OPENAI_SYNTAX}")
    model, urls = base[:at].strip(), [u.strip() for u in base[at + 1 :].split(",")]
    base_urls = [_normalise_url(u, spec) for u in urls]
    if len(set(base_urls)) != len(base_urls):
        raise ModelStringError(f"bad model string {spec!r}: a base URL is listed twice")
    return model, base_urls


def openai_config(spec: ModelSpec | str, config: type[Opts], **options: Any) -> Opts:
    """An `openai:` spec as the backend's config (`config`: its class; keyword options win)."""
    s = spec if isinstance(spec, ModelSpec) else ModelSpec.parse(spec)
    if s.kind != "openai":
        raise ModelStringError(f"not an openai model string: {s.format()!r}")
    model, base_urls = openai_target(s.base, s.format())
    return s.options_as(config, model=model, base_urls=base_urls, **options)


def is_loopback(url: str) -> bool:
    """True when the URL's host is localhost or a loopback address."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _normalise_url(url: str, spec: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ModelStringError(f"bad model string {spec!r}: {url!r} is not an http(s) URL; {OPENAI_SYNTAX}")
    try:
        parts.port  # noqa: B018  (raises on a malformed port)
    except ValueError:
        raise ModelStringError(f"bad model string {spec!r}: {url!r} has an invalid port") from None
    url = url.rstrip("/")
    if parts.path in ("", "/"):
        url += "/v1"
    return url
