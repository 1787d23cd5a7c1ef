"""The recognition pipeline: routing per mode, retry of transient failures, fail-fast checks."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from PIL import Image

from imaging import render_lines, save
from ocrwatch.engines import EngineCache, PageResult
from ocrwatch.engines.base import EngineContext
from ocrwatch.engines.tesseract import TesseractEngine
from ocrwatch.exceptions import (
    ConfigError,
    PermanentEngineError,
    TransientEngineError,
)
from ocrwatch.recognition.pipeline import recognize_file
from ocrwatch.settings.choices import Mode
from ocrwatch.settings.model import Settings, load_settings

LINES = ["Quarterly report for the board", "Revenue grew by twelve percent"]


class FlakyTesseract(TesseractEngine):
    """The real Tesseract engine, failing transiently for its first ``failures`` calls."""

    def __init__(self, settings: Settings, *, failures: int, error: Exception) -> None:
        super().__init__(EngineContext(section=settings.tesseract))
        self.failures = failures
        self.error = error
        self.calls = 0

    def recognize(self, page: Image.Image, *, languages: Sequence[str], mode: Mode) -> PageResult:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return super().recognize(page, languages=languages, mode=mode)


@pytest.fixture(scope="module")
def printed_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean printed page."""
    return save(render_lines(LINES, size=36), tmp_path_factory.mktemp("p") / "report.png")


class TestRouting:
    """Which engine reads a page, per mode and setting."""

    def test_printed_mode_uses_tesseract(self, printed_png: Path) -> None:
        """mode=printed reads with Tesseract and the printed profile."""
        s = load_settings(overrides={"mode": "printed"})
        res = recognize_file(printed_png, settings=s, engines=EngineCache(s))
        assert [p.result.engine for p in res.pages] == ["tesseract"]
        assert res.pages[0].mode is Mode.PRINTED
        assert res.text.splitlines() == LINES

    def test_auto_keeps_confident_print(self, printed_png: Path) -> None:
        """auto: a clean printed page stays with Tesseract, its confidence recorded."""
        s = load_settings(overrides={"mode": "auto"})
        res = recognize_file(printed_png, settings=s, engines=EngineCache(s))
        page = res.pages[0]
        assert page.result.engine == "tesseract"
        assert page.route_confidence is not None
        assert page.route_confidence * 100 >= s.auto_printed_confidence

    def test_auto_rereads_below_threshold(self, printed_png: Path) -> None:
        """auto: below the confidence threshold the page is re-read by PP-OCR."""
        s = load_settings(overrides={"mode": "auto", "auto_printed_confidence": 100})
        res = recognize_file(printed_png, settings=s, engines=EngineCache(s))
        page = res.pages[0]
        assert page.result.engine == "paddle"
        assert page.mode is Mode.HANDWRITTEN
        assert res.engines.keys() == {"paddle"}
        assert res.text.splitlines() == LINES

    def test_forced_engine(self, printed_png: Path) -> None:
        """engine=paddle reads every page with PP-OCR whatever the mode."""
        s = load_settings(overrides={"mode": "printed", "engine": "paddle"})
        res = recognize_file(printed_png, settings=s, engines=EngineCache(s))
        assert res.pages[0].result.engine == "paddle"
        assert res.pages[0].mode is Mode.PRINTED

    def test_forced_engine_in_auto_is_routed(self, printed_png: Path) -> None:
        """auto + a forced engine: Tesseract decides the page kind, the forced engine reads."""
        s = load_settings(overrides={"mode": "auto", "engine": "paddle"})
        res = recognize_file(printed_png, settings=s, engines=EngineCache(s))
        page = res.pages[0]
        assert page.result.engine == "paddle"
        assert page.mode is Mode.PRINTED
        assert page.route_confidence is not None

    def test_engine_per_kind_is_a_setting(self, printed_png: Path) -> None:
        """handwritten_engine / printed_engine choose the readers of each kind of page."""
        s = load_settings(
            overrides={
                "mode": "auto",
                "auto_printed_confidence": 100,
                "handwritten_engine": "tesseract",
            }
        )
        res = recognize_file(printed_png, settings=s, engines=EngineCache(s))
        assert res.pages[0].mode is Mode.HANDWRITTEN and res.pages[0].result.engine == "tesseract"
        s = load_settings(overrides={"mode": "printed", "printed_engine": "paddle"})
        res = recognize_file(printed_png, settings=s, engines=EngineCache(s))
        assert res.pages[0].result.engine == "paddle"
        with pytest.raises(ConfigError, match="unknown engine 'nope'"):
            s = load_settings(overrides={"mode": "printed", "printed_engine": "nope"})
            recognize_file(printed_png, settings=s, engines=EngineCache(s))

    def test_unknown_language_fails_fast(self, printed_png: Path) -> None:
        """A language the engine lacks is a ConfigError listing the available ones."""
        s = load_settings(overrides={"mode": "printed", "languages": ["xx"]})
        with pytest.raises(ConfigError, match=r"xx.*available:.*eng"):
            recognize_file(printed_png, settings=s, engines=EngineCache(s))


class TestRetry:
    """Transient engine failures are retried within the policy; permanent ones are not."""

    def _run(self, png: Path, engine: FlakyTesseract, settings: Settings) -> object:
        cache = EngineCache(settings)
        cache.put(engine)
        return recognize_file(png, settings=settings, engines=cache)

    def test_transient_then_success(self, printed_png: Path) -> None:
        """Two transient failures then success: the text is right and 3 attempts recorded."""
        s = load_settings(overrides={"mode": "printed"})
        engine = FlakyTesseract(s, failures=2, error=TransientEngineError("engine busy"))
        res = self._run(printed_png, engine, s)
        assert res.text.splitlines() == LINES  # type: ignore[attr-defined]
        assert res.attempts == 3  # type: ignore[attr-defined]

    def test_gives_up_after_attempts(self, printed_png: Path) -> None:
        """A failure that never passes is re-raised after retry.call_attempts calls."""
        s = load_settings(overrides={"mode": "printed", "retry": {"call_attempts": 4}})
        engine = FlakyTesseract(s, failures=100, error=TransientEngineError("still down"))
        with pytest.raises(TransientEngineError, match="still down"):
            self._run(printed_png, engine, s)
        assert engine.calls == 4

    def test_permanent_not_retried(self, printed_png: Path) -> None:
        """A permanent failure is raised at once."""
        s = load_settings(overrides={"mode": "printed"})
        engine = FlakyTesseract(s, failures=100, error=PermanentEngineError("rejected"))
        with pytest.raises(PermanentEngineError):
            self._run(printed_png, engine, s)
        assert engine.calls == 1


class TestPages:
    """Every page of a multi-page document is read, in order."""

    def test_multipage_tiff(self, tmp_path: Path) -> None:
        """A 3-frame TIFF gives 3 pages in order, separated by form feeds."""
        frames = [render_lines([f"Section {n} begins here"], size=36) for n in (1, 2, 3)]
        path = tmp_path / "multi.tif"
        frames[0].save(path, save_all=True, append_images=frames[1:])
        s = load_settings(overrides={"mode": "printed"})
        res = recognize_file(path, settings=s, engines=EngineCache(s))
        assert [p.number for p in res.pages] == [1, 2, 3]
        assert [t.strip() for t in res.text.split("\f")] == [
            f"Section {n} begins here" for n in (1, 2, 3)
        ]
