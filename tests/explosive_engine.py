"""A Tesseract that refuses a marked page: a real engine with an injected failure.

Registered for subprocess tests through the ``ocrwatch.engines`` entry point in a
throw-away dist-info folder (:func:`register`); its page fails after a real reading.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from ocrwatch.engines.base import PageResult
from ocrwatch.engines.tesseract import TesseractEngine
from ocrwatch.exceptions import PermanentEngineError

if TYPE_CHECKING:
    from PIL import Image

    from ocrwatch.settings.choices import Mode

#: A page whose text holds this word fails.
MARK = "EXPLODE"


class ExplosiveEngine(TesseractEngine):
    """Reads like Tesseract; raises PermanentEngineError, quoting the page, if it says EXPLODE."""

    name: ClassVar[str] = "explosive"

    def recognize(self, page: Image.Image, *, languages: Sequence[str], mode: Mode) -> PageResult:
        result = super().recognize(page, languages=languages, mode=mode)
        if MARK in result.text:
            raise PermanentEngineError(f"refused a page that says {result.text.strip()!r}")
        return result


def register(root: Path) -> str:
    """Write a dist-info under ``root`` that registers the engine; return a PYTHONPATH."""
    dist = root / "ocrwatch_test_explosive-0.dist-info"
    dist.mkdir(parents=True, exist_ok=True)
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: ocrwatch-test-explosive\nVersion: 0\n"
    )
    (dist / "entry_points.txt").write_text(
        "[ocrwatch.engines]\nexplosive = explosive_engine:ExplosiveEngine\n"
    )
    return f"{root}:{Path(__file__).parent}"
