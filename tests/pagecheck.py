"""Checks every engine's PageResult must pass, whatever the engine."""

from __future__ import annotations

from PIL import Image

from ocrwatch.engines.base import PageResult


def check_page(result: PageResult, image: Image.Image, *, engine: str) -> None:
    """The result names its engine and page size; confidences in [0, 1]; boxes on the page."""
    assert result.engine == engine
    assert (result.width, result.height) == image.size
    for line in result.lines:
        assert line.confidence is not None and 0.0 <= line.confidence <= 1.0
        assert line.box is not None
        left, top, right, bottom = line.box
        assert 0 <= left < right <= image.width
        assert 0 <= top < bottom <= image.height
        assert line.text and line.text == line.text.strip()
