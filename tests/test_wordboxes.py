"""Word boxes: Tesseract's own, PP-OCR's derived from its segments, kept through spelling fixes."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from PIL import Image

from imaging import render_lines
from ocrwatch.engines import Line, PageResult, Word
from ocrwatch.engines.paddle import PaddleEngine
from ocrwatch.engines.tesseract import TesseractEngine
from ocrwatch.engines.wordboxes import line_words, retext, split_box
from ocrwatch.settings.choices import Mode
from ocrwatch.settings.model import load_settings

LINES = ["Invoice 4711 is due on the first of May.", "Please keep this letter for records."]


def assert_words_on_ink(page: PageResult, image: Image.Image) -> None:
    """Every word box holds ink, lies inside its line's box, and words run left to right."""
    ink = np.asarray(image.convert("L")) < 128
    words = 0
    for line in page.lines:
        assert line.box is not None and line.words
        assert " ".join(w.text for w in line.words) == line.text
        lefts = [w.box[0] for w in line.words]
        assert lefts == sorted(lefts)
        for w in line.words:
            left, top, right, bottom = w.box
            assert ink[top:bottom, left:right].any(), w
            words += 1
    assert words >= 14


class TestSplitBox:
    """A box divided among its words by characters."""

    def test_proportional(self) -> None:
        """'ab cdef' over 70 px: 'ab' gets the first 20 px, 'cdef' the last 40."""
        words = split_box("ab cdef", (0, 5, 70, 25), 0.9)
        assert [(w.text, w.box) for w in words] == [
            ("ab", (0, 5, 20, 25)),
            ("cdef", (30, 5, 70, 25)),
        ]
        assert all(w.estimated and w.confidence == 0.9 for w in words)

    def test_empty(self) -> None:
        """No text or no width: no words."""
        assert split_box("  ", (0, 0, 10, 10), None) == ()
        assert split_box("a", (5, 0, 5, 10), None) == ()

    def test_line_words_prefers_engine_words(self) -> None:
        """A line's own words win over a split; a line without a box has none."""
        own = (Word("x", (1, 1, 2, 2)),)
        assert line_words(Line("x", 0.5, (0, 0, 9, 9), own)) == own
        assert line_words(Line("x y", 0.5, None)) == ()

    def test_retext_keeps_boxes(self) -> None:
        """A corrected word keeps its box when the word count is unchanged."""
        line = Line(
            "teh cat",
            0.8,
            (0, 0, 70, 10),
            (Word("teh", (0, 0, 30, 10)), Word("cat", (40, 0, 70, 10))),
        )
        fixed = retext(line, "the cat")
        assert [(w.text, w.box) for w in fixed.words] == [
            ("the", (0, 0, 30, 10)),
            ("cat", (40, 0, 70, 10)),
        ]
        assert [w.text for w in retext(line, "the big cat").words] == ["the", "big", "cat"]


@pytest.fixture(scope="module")
def page() -> Image.Image:
    return render_lines(LINES, size=36)


@pytest.fixture(scope="module")
def paddle() -> Iterator[PaddleEngine]:
    eng = PaddleEngine.from_settings(load_settings(environ={}))
    yield eng
    eng.close()


class TestEngineWords:
    """Real engines report word boxes on the words."""

    def test_tesseract(self, page: Image.Image) -> None:
        """Tesseract's words are its own (not estimated)."""
        engine = TesseractEngine.from_settings(load_settings(environ={}))
        try:
            result = engine.recognize(page, languages=["eng"], mode=Mode.PRINTED)
        finally:
            engine.close()
        assert_words_on_ink(result, page)
        assert not any(w.estimated for ln in result.lines for w in ln.words)

    def test_paddle(self, page: Image.Image, paddle: PaddleEngine) -> None:
        """PP-OCR's words come from its segment boxes (estimated)."""
        result = paddle.recognize(page, languages=["eng"], mode=Mode.HANDWRITTEN)
        assert_words_on_ink(result, page)
        assert all(w.estimated for ln in result.lines for w in ln.words)
