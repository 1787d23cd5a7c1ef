"""auto routing of small printed images, and cloud readings reaching the result unchanged."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from cloud import make_settings
from imaging import HANDWRITING, render_lines, save
from ocrwatch.engines import EngineCache
from ocrwatch.engines.linecrops import box_pieces, flatten, split_lines
from ocrwatch.engines.paddle import PaddleEngine
from ocrwatch.handwriting.lexicon import lexicon_for
from ocrwatch.recognition import pipeline
from ocrwatch.settings.choices import Mode
from ocrwatch.settings.model import load_settings
from ocrwatch.testing.aspose_emulator import AsposeEmulator

SECRET = "emulator-secret-routing-7Qw"


def blocky_label() -> Image.Image:
    """A 336x128 label: "PAGE 01" / "INVOICE 0037" in Pillow's bitmap font enlarged 4x.

    Clean black capitals, 28 px tall, with the stair-step edges of an enlarged bitmap font
    (the issue's example, which Tesseract read right at 62 % confidence).
    """
    bitmap = ImageFont.load_default_imagefont()
    small = Image.new("L", (84, 32), 255)
    draw = ImageDraw.Draw(small)
    draw.text((4, 4), "PAGE 01", font=bitmap, fill=0)
    draw.text((4, 18), "INVOICE 0037", font=bitmap, fill=0)
    return small.resize((336, 128), Image.Resampling.NEAREST).convert("RGB")


@pytest.fixture(scope="module")
def label_png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The blocky label as a PNG file."""
    return save(blocky_label(), tmp_path_factory.mktemp("label") / "label.png")


class TestSmallPrintedImages:
    """auto mode: a small clean printed image is printed, and keeps its language."""

    def test_first_pass_doubts_it(self) -> None:
        """Tesseract's plain pass is under the threshold (what used to misroute it)."""
        settings = load_settings(overrides={"mode": "auto", "languages": ["spa"]})
        engines = EngineCache(settings)
        try:
            from ocrwatch.recognition import preprocess

            tess = engines.get("tesseract")
            image = preprocess.preprocess(blocky_label(), profile=settings.preprocess.printed).image
            result = tess.recognize(image, languages=["spa"], mode=Mode.PRINTED)
        finally:
            engines.close()
        assert (result.confidence or 0) * 100 < settings.auto_printed_confidence

    def test_routes_printed_with_its_language(self, label_png: Path) -> None:
        """The label routes printed, is read by Tesseract in Spanish, text intact."""
        settings = load_settings(overrides={"mode": "auto", "languages": ["spa"]})
        engines = EngineCache(settings)
        try:
            doc = pipeline.recognize_file(label_png, settings=settings, engines=engines)
        finally:
            engines.close()
        page = doc.pages[0]
        assert page.mode is Mode.PRINTED
        assert page.route_confidence is not None
        assert page.route_confidence * 100 >= settings.auto_printed_confidence
        assert page.result.engine == "tesseract"
        assert doc.languages == ("spa",)
        assert doc.text.split() == ["PAGE", "01", "INVOICE", "0037"]

    def test_aspose_is_asked_for_spanish(self, label_png: Path) -> None:
        """auto + Aspose: the label goes to Aspose as Spanish print, not as HWT_ENG."""
        local = EngineCache(load_settings())
        try:
            with AsposeEmulator(client_secret=SECRET, engines=local, retry_after=0) as emu:
                settings = make_settings(emu, mode="auto", languages=["spa"])
                engines = EngineCache(settings)
                try:
                    doc = pipeline.recognize_file(label_png, settings=settings, engines=engines)
                finally:
                    engines.close()
                assert emu.submissions[-1].settings["language"] == "Spanish"
        finally:
            local.close()
        assert doc.pages[0].mode is Mode.PRINTED


class TestCloudReadingUnchanged:
    """A reading from an engine with its own language model reaches the result as given."""

    def test_handwritten_aspose_text_is_not_rewritten(self, tmp_path: Path) -> None:
        """Handwritten English via Aspose: the text is exactly what the cloud returned."""
        lines = ["Send the OCR report to Teh Bakery", "before FRIDAY, thx"]
        image = render_lines(lines, font_path=HANDWRITING, size=44)
        path = save(image, tmp_path / "note.png")
        local = EngineCache(load_settings())
        try:
            cloud_reading = local.get("paddle").recognize(
                image.convert("RGB"), languages=["eng"], mode=Mode.HANDWRITTEN
            )
            with AsposeEmulator(client_secret=SECRET, engines=local, retry_after=0) as emu:
                settings = make_settings(emu, mode="handwritten", languages=["eng"])
                engines = EngineCache(settings)
                try:
                    doc = pipeline.recognize_file(path, settings=settings, engines=engines)
                finally:
                    engines.close()
                assert emu.submissions[-1].settings["language"] == "HWT_ENG"
        finally:
            local.close()
        # The spelling pass used to turn "TEh" into "The" here, Aspose's reading or not.
        assert doc.text.split() == cloud_reading.text.split()


@pytest.fixture(scope="module")
def paddle() -> Iterator[PaddleEngine]:
    """One paddle engine for the module."""
    engine = PaddleEngine.from_settings(load_settings(environ={}))
    yield engine
    engine.close()


class TestWholePageBox:
    """A detector box around a whole page (IAM n02-028) still gives every line back."""

    LINES = (
        "Dear Anna, thanks for the letter",
        "we will come on Sunday at noon",
        "and bring the apple pie with us",
        "see you soon, love from Tom",
    )

    def test_one_box_becomes_lines(self, paddle: PaddleEngine) -> None:
        """One box over four close handwritten lines is cut into four, each read."""
        image = render_lines(self.LINES, font_path=HANDWRITING, size=44, line_gap=1.25)
        gray = np.asarray(image)
        flat = flatten(gray)
        h, w = gray.shape
        whole = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32)
        assert len(split_lines(flat, whole)) == len(self.LINES)
        rgb = np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
        crops, _, lines = box_pieces(rgb, flat, np.array([whole]))
        assert len(lines) == len(self.LINES)
        assert all(line[:, 1].max() - line[:, 1].min() < h / 2 for line in lines)
        texts, _ = paddle._read(paddle._ocr.text_rec, crops, None)
        for text, line in zip(texts, self.LINES, strict=True):
            assert set(text.lower().split()) & set(line.lower().split()), (text, line)

    def test_second_reading_frames_each_line(self, paddle: PaddleEngine) -> None:
        """The looser second frame of a piece cut from a page-wide box is its line's, not
        the page's (framed from the page box, every second reading was of the whole page)."""
        image = render_lines(self.LINES, font_path=HANDWRITING, size=44, line_gap=1.25)
        gray = np.asarray(image)
        flat = flatten(gray)
        h, w = gray.shape
        whole = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32)
        rgb = np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
        _, _, lines = box_pieces(rgb, flat, np.array([whole]))
        # first readings that any second reading beats, so the second ones are what is left
        texts, scores = ["-"] * len(lines), [-100.0] * len(lines)
        lexicon = lexicon_for(["eng"])
        paddle._reread(paddle._ocr.text_rec, rgb, flat, lines, texts, scores, lexicon)
        assert min(scores) >= 0.0
        for text, line in zip(texts, self.LINES, strict=True):
            assert set(text.lower().split()) & set(line.lower().split()), (text, line)

    def test_one_line_box_is_kept(self) -> None:
        """A box around a single line is not cut."""
        image = render_lines(["just one line of writing"], font_path=HANDWRITING, size=44)
        gray = np.asarray(image)
        h, w = gray.shape
        box = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32)
        assert len(split_lines(flatten(gray), box)) == 1
