"""Boxes go back to the page as loaded: transforms of crop, deskew and upscale, undone."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from bench.photos import photograph
from PIL import Image

from imaging import render_lines, save
from ocrwatch.engines import EngineCache
from ocrwatch.recognition import geometry, pipeline
from ocrwatch.recognition.preprocess import PreparedPage, preprocess
from ocrwatch.settings.model import load_settings
from ocrwatch.settings.sections import PreprocessProfile

LINES = ["Dear Anna, thank you for", "the lovely flowers and", "the card you sent me."]


def agreement(prepared: PreparedPage, original: Image.Image, m: geometry.Matrix) -> float:
    """Correlation of the prepared image with the original sampled where ``m`` maps it."""
    prep = np.asarray(prepared.image.convert("L"), dtype=float)
    orig = np.asarray(original.convert("L"), dtype=float)
    h, w = prep.shape
    ours, theirs = [], []
    for y in range(0, h, max(1, h // 120)):
        for x in range(0, w, max(1, w // 120)):
            ox, oy = geometry.map_point(m, x + 0.5, y + 0.5)
            if 0 <= ox < orig.shape[1] and 0 <= oy < orig.shape[0]:
                ours.append(prep[y, x])
                theirs.append(orig[int(oy), int(ox)])
    return float(np.corrcoef(ours, theirs)[0, 1])


class TestMatrices:
    """compose/invert/rotation agree with Pillow."""

    def test_rotation_matches_pillow(self) -> None:
        """A dot rotated by Image.rotate(expand=True) lands where the matrix says."""
        img = Image.new("L", (300, 200), 255)
        img.paste(0, (220, 40, 226, 46))  # dot centred at (223, 43)
        turned = img.rotate(-7, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=255)
        ys, xs = np.nonzero(np.asarray(turned) < 128)
        m = geometry.rotation_about_centres(-7, src=img.size, dst=turned.size)
        x, y = geometry.map_point(m, 223, 43)
        assert abs(xs.mean() + 0.5 - x) < 1.0 and abs(ys.mean() + 0.5 - y) < 1.0

    def test_invert_round_trip(self) -> None:
        """invert(m) undoes m."""
        m = geometry.compose(geometry.scaling(2.5, 2.5), geometry.translation(3, -4))
        x, y = geometry.map_point(geometry.compose(geometry.invert(m), m), 17.0, 29.0)
        assert abs(x - 17.0) < 1e-9 and abs(y - 29.0) < 1e-9


class TestPreprocessTransform:
    """PreparedPage.to_source maps prepared pixels onto the same content in the original."""

    def test_deskew_and_upscale(self) -> None:
        """A small, rotated page: deskewed and upscaled, and the mapping finds it again."""
        page = render_lines(LINES, size=14).rotate(4, expand=True, fillcolor=255)
        prepared = preprocess(page, profile=PreprocessProfile(autocontrast=False))
        assert any(s.startswith("deskew") for s in prepared.steps)
        assert any(s.startswith("upscale") for s in prepared.steps)
        assert agreement(prepared, page, prepared.to_source) > 0.8
        # The check can fail: only undoing the upscale leaves the rotation unmatched.
        naive = geometry.scaling(1 / prepared.scale, 1 / prepared.scale)
        assert agreement(prepared, page, naive) < 0.6

    def test_crop_sheet(self) -> None:
        """A photographed sheet: the perspective flattening is undone too."""
        page = render_lines(LINES, size=48, margin=120)
        photo = Image.open(io.BytesIO(photograph(page, seed=3, name="note.png"))).convert("L")
        profile = PreprocessProfile(crop_sheet=True, deskew=False, upscale=False)
        prepared = preprocess(photo, profile=profile)
        assert "crop_sheet" in prepared.steps
        assert agreement(prepared, photo, prepared.to_source) > 0.8
        assert agreement(prepared, photo, geometry.IDENTITY) < 0.6


class TestPipelineBoxes:
    """Word boxes in the result lie on the original page's words."""

    def test_words_cover_the_ink(self, tmp_path: Path) -> None:
        """On a small rotated page, the word boxes hold the page's ink (original pixels)."""
        page = render_lines(LINES, size=14).rotate(3, expand=True, fillcolor=255)
        path = save(page, tmp_path / "small.png")
        settings = load_settings(overrides={"mode": "printed"})
        engines = EngineCache(settings)
        try:
            result = pipeline.recognize_file(path, settings=settings, engines=engines)
        finally:
            engines.close()
        record = result.pages[0]
        assert any(s.startswith("upscale") for s in record.preprocessing)
        assert (record.result.width, record.result.height) == page.size
        ink = np.asarray(page) < 128
        covered = np.zeros_like(ink)
        words = [w for line in record.result.lines for w in line.words]
        assert len(words) >= 12
        for w in words:
            left, top, right, bottom = w.box
            assert ink[top:bottom, left:right].any(), w
            covered[top:bottom, left:right] = True
        assert (ink & covered).sum() >= 0.9 * ink.sum()
