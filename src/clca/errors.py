"""Error types. Every ClcaError carries a one-line, user-facing message; the CLI prints it and exits 2."""

from __future__ import annotations


class ClcaError(Exception):
    """Base class for errors that are the user's to fix (bad input, bad config, unreachable server)."""

    exit_code = 2

    def one_line(self) -> str:
        return " ".join(str(self).split())


class ConfigError(ClcaError):
    """A configuration file or option is invalid."""


class DataError(ClcaError):
    """An input data file (survey, scenarios, norms, profiles) is malformed."""


class ModelStringError(ClcaError):
    """A model string could not be parsed or names no usable model."""


class BackendError(ClcaError):
    """A model backend failed after its retries (server unreachable, HTTP errors, missing API key)."""


class UnsupportedError(BackendError):
    """The backend cannot do what was asked (e.g. option scoring without logprobs)."""


class StructuredOutputError(ClcaError):
    """The model did not produce a valid object within the allowed attempts."""

    def __init__(self, schema: str, attempts: int, reasons: list[str]):
        self.schema = schema
        self.attempts = attempts
        self.reasons = reasons
        last = reasons[-1] if reasons else "no output"
        super().__init__(f"no valid {schema} after {attempts} attempts; last error: {last}")


class RunMismatchError(ClcaError):
    """A run directory was created by a different configuration."""
