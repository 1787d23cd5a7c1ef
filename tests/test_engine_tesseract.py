"""Tests for the tesseract engine: real Tesseract 5 through tesserocr on rendered pages."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image
from rapidfuzz.distance import Levenshtein

from imaging import LEFT_COLUMN as LEFT
from imaging import RIGHT_COLUMN as RIGHT
from imaging import SERIF, render_lines, two_columns
from ocrwatch.engines.tesseract import TesseractEngine
from ocrwatch.exceptions import ConfigError, DependencyError
from ocrwatch.settings.choices import Mode
from ocrwatch.settings.model import load_settings
from pagecheck import check_page

ENGLISH = [
    "The quick brown fox jumps over the lazy dog.",
    "Invoice 4711 is due on the first of May.",
    "Please keep this letter for your records.",
]
SPANISH = ["El niño comió jamón en la montaña.", "Mañana habrá café y té."]


@pytest.fixture(scope="module")
def engine() -> Iterator[TesseractEngine]:
    """One engine for the module (Debian's eng + spa data)."""
    eng = TesseractEngine.from_settings(load_settings(environ={}))
    yield eng
    eng.close()


class TestTesseractEngine:
    """TesseractEngine reads rendered pages correctly, in order, within the contract."""

    def test_metadata(self, engine: TesseractEngine) -> None:
        """Name, version and installed languages (osd excluded) are reported."""
        assert engine.name == "tesseract"
        assert not engine.capabilities.handwriting
        assert engine.version().startswith("tesseract 5.")
        assert {"eng", "spa"} <= engine.languages()
        assert "osd" not in engine.languages()
        assert engine.check(["eng", "spa"]) == []

    def test_english_lines_in_order(self, engine: TesseractEngine) -> None:
        """Three English lines come back as three lines, in order, nearly verbatim."""
        image = render_lines(ENGLISH)
        result = engine.recognize(image, languages=["eng"], mode=Mode.PRINTED)
        check_page(result, image, engine="tesseract")
        assert len(result.lines) == len(ENGLISH)
        for line, expected in zip(result.lines, ENGLISH, strict=True):
            assert Levenshtein.distance(line.text, expected) <= 2, line.text
        assert result.confidence is not None and result.confidence > 0.8

    def test_spanish_accents(self, engine: TesseractEngine) -> None:
        """Spanish text keeps ñ, á, é, ó with the spa model."""
        image = render_lines(SPANISH)
        result = engine.recognize(image, languages=["spa"], mode=Mode.PRINTED)
        check_page(result, image, engine="tesseract")
        assert Levenshtein.distance(result.text, "\n".join(SPANISH)) <= 2, result.text
        assert "niño" in result.text and "Mañana" in result.text

    def test_accents_kept_with_eng_first(self, engine: TesseractEngine) -> None:
        """eng+spa keeps Spanish accents (English, which has none, is made the secondary)."""
        lines = ["La reunión es el martes.", "Gracias por su atención."]
        image = render_lines(lines, size=44, font_path=SERIF)
        result = engine.recognize(image, languages=["eng", "spa"], mode=Mode.PRINTED)
        assert "reunión" in result.text and "atención" in result.text, result.text

    def test_rgb_and_two_languages(self, engine: TesseractEngine) -> None:
        """An RGB page read with eng+spa gives the same words."""
        image = render_lines(ENGLISH[:1], mode="RGB")
        result = engine.recognize(image, languages=["eng", "spa"], mode=Mode.PRINTED)
        assert Levenshtein.distance(result.text, ENGLISH[0]) <= 2

    def test_two_columns_read_column_by_column(self, engine: TesseractEngine) -> None:
        """A two-column page is read down the left column, then down the right one."""
        image = two_columns(LEFT, RIGHT)
        result = engine.recognize(image, languages=["eng"], mode=Mode.PRINTED)
        check_page(result, image, engine="tesseract")
        assert Levenshtein.distance(result.text, "\n".join(LEFT + RIGHT)) <= 3, result.text

    def test_blank_page_has_no_lines(self, engine: TesseractEngine) -> None:
        """A white page gives an empty result, not an error."""
        image = Image.new("L", (600, 400), "white")
        result = engine.recognize(image, languages=["eng"], mode=Mode.PRINTED)
        assert result.lines == ()
        assert result.text == ""

    def test_unknown_language(self, engine: TesseractEngine) -> None:
        """A language without traineddata is a ConfigError naming the available ones."""
        with pytest.raises(ConfigError, match="available: eng, spa"):
            engine.recognize(render_lines(["x"]), languages=["klingon"], mode=Mode.PRINTED)
        assert engine.check(["klingon"])

    def test_two_threads_same_result(self, engine: TesseractEngine) -> None:
        """Two threads recognizing at once get the same lines as one thread alone."""
        image = render_lines(ENGLISH)
        expected = engine.recognize(image, languages=["eng"], mode=Mode.PRINTED)
        with ThreadPoolExecutor(max_workers=2) as pool:
            futures = [
                pool.submit(engine.recognize, image, languages=["eng"], mode=Mode.PRINTED)
                for _ in range(4)
            ]
            results = [f.result(timeout=120) for f in futures]
        assert all(r.lines == expected.lines for r in results)


class TestTesseractSetup:
    """The engine's constructor finds language data or says how to install it."""

    def test_missing_tessdata(self, tmp_path: Path) -> None:
        """A tessdata folder that does not exist is a DependencyError with an install hint."""
        settings = load_settings(overrides={"tesseract": {"tessdata": tmp_path / "nope"}})
        with pytest.raises(DependencyError, match="apt-get install tesseract-ocr"):
            TesseractEngine.from_settings(settings)

    def test_empty_tessdata(self, tmp_path: Path) -> None:
        """A folder without any traineddata is a DependencyError too."""
        settings = load_settings(overrides={"tesseract": {"tessdata": tmp_path}})
        with pytest.raises(DependencyError, match=r"no \*\.traineddata"):
            TesseractEngine.from_settings(settings)

    def test_close_twice(self) -> None:
        """close() can be called twice."""
        engine = TesseractEngine.from_settings(load_settings(environ={}))
        engine.recognize(render_lines(["Hello"]), languages=["eng"], mode=Mode.PRINTED)
        engine.close()
        engine.close()
