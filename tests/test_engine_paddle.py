"""Tests for the paddle engine: real PP-OCRv6 (rapidocr + onnxruntime) on rendered pages."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image
from rapidfuzz.distance import Levenshtein

from imaging import HANDWRITING, render_lines, two_columns
from imaging import LEFT_COLUMN as LEFT
from imaging import RIGHT_COLUMN as RIGHT
from ocrwatch.engines.base import PageResult
from ocrwatch.engines.paddle import PaddleEngine
from ocrwatch.exceptions import ConfigError
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
def engine() -> Iterator[PaddleEngine]:
    """One engine for the module (loading the models takes a few seconds)."""
    eng = PaddleEngine.from_settings(load_settings(environ={}))
    yield eng
    eng.close()


class TestPaddleEngine:
    """PaddleEngine reads rendered pages correctly, in reading order, within the contract."""

    def test_metadata(self, engine: PaddleEngine) -> None:
        """Name, version, handwriting capability and the Latin-script languages are reported."""
        assert engine.name == "paddle"
        assert engine.capabilities.handwriting
        # The tuned recognizer shipped in ocrwatch/models reads French pages.
        assert engine.version() == "rapidocr 3.10.0 PP-OCRv6 small; ppocrv6_rec_hw.onnx for fra"
        assert {"eng", "spa", "fra", "deu", "ita", "por"} <= engine.languages()
        assert not {"rus", "ell", "vie"} & engine.languages()

    def test_params_are_explicit_and_offline(self) -> None:
        """The rapidocr parameters carry the tuned detector and the wheel's model files."""
        settings = load_settings(overrides={"paddle": {"threads": 1}}, environ={})
        params = PaddleEngine.rapidocr_params(settings.paddle)
        assert params["Global.use_cls"] is False
        assert params["Det.thresh"] == 0.2 and params["Det.box_thresh"] == 0.45
        assert params["Det.unclip_ratio"] == 1.4
        assert params["Det.score_mode"] == "slow"
        assert params["EngineConfig.onnxruntime.intra_op_num_threads"] == 1
        assert params["Det.model_path"].endswith("rapidocr/models/PP-OCRv6_det_small.onnx")
        assert params["Rec.model_path"].endswith("rapidocr/models/PP-OCRv6_rec_small.onnx")

    def test_box_score_mode_reaches_the_detector(self, engine: PaddleEngine) -> None:
        """rapidocr's detector scores boxes the way ``det_score_mode`` says (its outline for
        the curved lines of a curled photo: bench/README.md, issue 21 row 21e)."""
        assert engine._ocr.text_det.postprocess_op.score_mode == "slow"
        fast = PaddleEngine.from_settings(
            load_settings(overrides={"paddle": {"det_score_mode": "fast"}}, environ={})
        )
        try:
            assert fast._ocr.text_det.postprocess_op.score_mode == "fast"
        finally:
            fast.close()

    def test_english_lines_in_order(self, engine: PaddleEngine) -> None:
        """Three English lines come back as three lines, in order, nearly verbatim."""
        image = render_lines(ENGLISH)
        result = engine.recognize(image, languages=["eng"], mode=Mode.PRINTED)
        check_page(result, image, engine="paddle")
        assert len(result.lines) == len(ENGLISH)
        for line, expected in zip(result.lines, ENGLISH, strict=True):
            assert Levenshtein.distance(line.text, expected) <= 2, line.text
        assert result.confidence is not None and result.confidence > 0.8

    def test_spanish_accents_rgb(self, engine: PaddleEngine) -> None:
        """Spanish text on an RGB page keeps ñ, á, é, ó."""
        image = render_lines(SPANISH, mode="RGB")
        result = engine.recognize(image, languages=["spa"], mode=Mode.HANDWRITTEN)
        check_page(result, image, engine="paddle")
        assert Levenshtein.distance(result.text, "\n".join(SPANISH)) <= 2, result.text
        assert "niño" in result.text and "Mañana" in result.text

    def test_two_columns_read_column_by_column(self, engine: PaddleEngine) -> None:
        """Aligned rows of two columns are read down the left column, then the right one."""
        image = two_columns(LEFT, RIGHT)
        result = engine.recognize(image, languages=["eng"], mode=Mode.PRINTED)
        check_page(result, image, engine="paddle")
        assert Levenshtein.distance(result.text, "\n".join(LEFT + RIGHT)) <= 3, result.text

    def test_blank_page_has_no_lines(self, engine: PaddleEngine) -> None:
        """A white page gives an empty result, not an error."""
        result = engine.recognize(
            Image.new("L", (600, 400), "white"), languages=["eng"], mode=Mode.AUTO
        )
        assert result.lines == ()
        assert result.confidence is None

    def test_unknown_language(self, engine: PaddleEngine) -> None:
        """A language the model cannot read is a ConfigError listing the available ones."""
        with pytest.raises(ConfigError, match=r"available: .*eng.*spa"):
            engine.recognize(render_lines(["x"]), languages=["rus"], mode=Mode.PRINTED)
        assert engine.check(["rus"])

    def test_two_threads_same_result(self, engine: PaddleEngine) -> None:
        """Two threads recognizing at once get the same lines as one thread alone."""
        image = render_lines(ENGLISH[:1])
        expected = engine.recognize(image, languages=["eng"], mode=Mode.PRINTED)
        with ThreadPoolExecutor(max_workers=2) as pool:
            futures = [
                pool.submit(engine.recognize, image, languages=["eng"], mode=Mode.PRINTED)
                for _ in range(2)
            ]
            results = [f.result(timeout=120) for f in futures]
        assert all(r.lines == expected.lines for r in results)


class TestReread:
    """``paddle.reread_below``: doubtful pieces are read again with a looser frame."""

    def test_keeps_the_likelier_reading(self, engine: PaddleEngine) -> None:
        """English pages are re-read by default: the layout is the same, the text no further
        from the truth than with one reading, and at least one handwritten line gains
        confidence. French pages (not in reread_languages) are read once."""
        settings = load_settings(overrides={"paddle": {"reread_below": 0.0}}, environ={})
        reader = PaddleEngine.from_settings(settings)
        try:
            image = render_lines(ENGLISH, size=34, font_path=HANDWRITING)
            once = reader.recognize(image, languages=["eng"], mode=Mode.HANDWRITTEN)
            twice = engine.recognize(image, languages=["eng"], mode=Mode.HANDWRITTEN)
            french = [
                r.recognize(image, languages=["fra"], mode=Mode.HANDWRITTEN)
                for r in (reader, engine)
            ]
        finally:
            reader.close()
        assert [ln.box for ln in twice.lines] == [ln.box for ln in once.lines]
        pairs = list(zip(once.lines, twice.lines, strict=True))
        assert any(b.confidence > a.confidence for a, b in pairs)

        def edits(result: PageResult) -> int:
            read = "\n".join(ln.text for ln in result.lines)
            return Levenshtein.distance(read, "\n".join(ENGLISH))

        assert edits(twice) <= edits(once)
        assert french[0].lines == french[1].lines


class TestTunedRecognizer:
    """``paddle.rec_model`` / ``tuned_languages``: which pages the tuned recognizer reads."""

    def test_tuned_for_listed_languages_only(self, tmp_path: Path) -> None:
        """A recognizer file given for French serves French pages, named in the version."""
        import shutil

        from ocrwatch.engines.paddle import REC_MODEL, _model_dir

        copy = tmp_path / "tuned.onnx"
        shutil.copyfile(_model_dir() / REC_MODEL, copy)
        settings = load_settings(
            overrides={"paddle": {"rec_model": str(copy), "tuned_languages": ["fra"]}},
            environ={},
        )
        engine = PaddleEngine.from_settings(settings)
        try:
            assert engine.version().endswith("; tuned.onnx for fra")
            assert engine._text_rec(["fra"]) is not engine._text_rec(["eng"])
            assert engine._text_rec(["fra", "eng"]) is engine._text_rec(["eng"])
            image = render_lines(["Le chat dort sur le canapé."], font_path=HANDWRITING)
            page = engine.recognize(image, languages=["fra"], mode=Mode.HANDWRITTEN)
            assert Levenshtein.distance(page.text.strip(), "Le chat dort sur le canapé.") <= 3
        finally:
            engine.close()

    def test_loaded_by_the_first_page_that_needs_it(self, tmp_path: Path) -> None:
        """A broken tuned file costs nothing to English pages; a French page gets DependencyError.

        The tuned recognizer loads on demand (start-up time), so the error comes with the
        page, as an environment fault the daemon retries, not as a quarantine.
        """
        from ocrwatch.exceptions import DependencyError

        broken = tmp_path / "broken.onnx"
        broken.write_bytes(b"not an onnx model")
        settings = load_settings(
            overrides={"paddle": {"rec_model": str(broken), "tuned_languages": ["fra"]}},
            environ={},
        )
        engine = PaddleEngine.from_settings(settings)
        try:
            image = render_lines(["the cat sat"], font_path=HANDWRITING)
            page = engine.recognize(image, languages=["eng"], mode=Mode.HANDWRITTEN)
            assert Levenshtein.distance(page.text.strip(), "the cat sat") <= 3
            with pytest.raises(DependencyError, match=r"broken\.onnx"):
                engine.recognize(image, languages=["fra"], mode=Mode.HANDWRITTEN)
            assert engine.check(["eng"]) == []
            (problem,) = engine.check(["fra"])  # what `ocrwatch check --lang fra` prints
            assert "broken.onnx" in problem
        finally:
            engine.close()

    def test_second_reading_by_the_other_recognizer(self, tmp_path: Path) -> None:
        """``reread_with = "other"``: an English page's second reading is the tuned
        recognizer's (a broken tuned file now fails English pages too, and `check` says so);
        with ``"same"`` English pages never touch it."""
        from ocrwatch.exceptions import DependencyError

        broken = tmp_path / "broken.onnx"
        broken.write_bytes(b"not an onnx model")
        image = render_lines(["the cat sat"], font_path=HANDWRITING)

        def engine_with(reread_with: str) -> PaddleEngine:
            overrides = {"rec_model": str(broken), "tuned_languages": ["fra"]}
            overrides["reread_with"] = reread_with  # type: ignore[assignment]
            return PaddleEngine.from_settings(
                load_settings(overrides={"paddle": overrides}, environ={})
            )

        same = engine_with("same")
        try:
            page = same.recognize(image, languages=["eng"], mode=Mode.HANDWRITTEN)
            assert Levenshtein.distance(page.text.strip(), "the cat sat") <= 3
        finally:
            same.close()
        other = engine_with("other")
        try:
            with pytest.raises(DependencyError, match=r"broken\.onnx"):
                other.recognize(image, languages=["eng"], mode=Mode.HANDWRITTEN)
            (problem,) = other.check(["eng"])
            assert "broken.onnx" in problem
        finally:
            other.close()

    def test_other_reading_reads(self, tmp_path: Path) -> None:
        """With a working tuned file, English and French pages read with ``reread_with =
        "other"`` (each page's second reading by the other recognizer) come out right."""
        import shutil

        from ocrwatch.engines.paddle import REC_MODEL, _model_dir

        copy = tmp_path / "tuned.onnx"
        shutil.copyfile(_model_dir() / REC_MODEL, copy)
        paddle = {
            "rec_model": str(copy),
            "tuned_languages": ["fra"],
            "reread_with": "other",
            "reread_languages": ["eng", "fra"],
        }
        engine = PaddleEngine.from_settings(load_settings(overrides={"paddle": paddle}, environ={}))
        try:
            for text, language in (("the cat sat", "eng"), ("Le chat dort.", "fra")):
                image = render_lines([text], font_path=HANDWRITING)
                page = engine.recognize(image, languages=[language], mode=Mode.HANDWRITTEN)
                assert Levenshtein.distance(page.text.strip(), text) <= 3, (language, page.text)
        finally:
            engine.close()

    def test_missing_file_is_a_dependency_error(self, tmp_path: Path) -> None:
        """A rec_model path that does not exist stops at construction, naming the file."""
        from ocrwatch.exceptions import DependencyError

        settings = load_settings(
            overrides={"paddle": {"rec_model": str(tmp_path / "nope.onnx")}}, environ={}
        )
        with pytest.raises(DependencyError, match=r"nope\.onnx"):
            PaddleEngine.from_settings(settings)


def test_rapidocr_model_table_parsed_once() -> None:
    """Importing rapidocr through the engine parses its model table once (start-up time),
    and OmegaConf.load is itself again afterwards (rapidocr mutates later configs)."""
    code = (
        "from ocrwatch.engines.paddle import _detector_class\n"
        "_detector_class()\n"
        "from omegaconf import OmegaConf\n"
        "import rapidocr.utils.model_resolver as resolver\n"
        "import rapidocr.inference_engine.base as base\n"
        "assert resolver._MODEL_CONFIG is base.InferSession.model_info\n"
        "assert OmegaConf.load.__qualname__ == 'OmegaConf.load', OmegaConf.load\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
