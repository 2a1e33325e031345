"""clca: cultural learning-based culture adaptation of language models."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("clca")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0"

__all__ = ["__version__"]
