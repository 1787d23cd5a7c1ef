"""The installed ocrwatch version (a leaf module: importing it loads nothing else)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__ = version("ocrwatch")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+unknown"
