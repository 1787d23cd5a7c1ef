"""Test helpers users can run too: the Aspose OCR Cloud emulator (:mod:`.aspose_emulator`)."""

from __future__ import annotations

from typing import Any

__all__ = ["AsposeEmulator", "Endpoint", "Fault"]


def __getattr__(name: str) -> Any:
    # Lazy, so that ``python -m ocrwatch.testing.aspose_emulator`` does not import the
    # module twice (runpy warns when a package pre-imports the module it runs).
    if name in __all__:
        from ocrwatch.testing import aspose_emulator

        return getattr(aspose_emulator, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
