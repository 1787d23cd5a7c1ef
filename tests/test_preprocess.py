"""Tests for recognition.preprocess: text height, upscaling, deskew, binarization, step switches."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

import ocrwatch.recognition.preprocess as preprocess_module
from imaging import font, render_lines
from ocrwatch.recognition.preprocess import (
    PreparedPage,
    adaptive_binarize,
    estimate_skew,
    estimate_text_height,
    median_filter,
    otsu_binarize,
    otsu_threshold,
    preprocess,
)
from ocrwatch.settings.choices import Binarize
from ocrwatch.settings.sections import PreprocessProfile

LINES = [
    "The quick brown fox jumps over the lazy dog",
    "Pack my box with five dozen liquor jugs",
    "Sphinx of black quartz, judge my vow",
    "How vexingly quick daft zebras jump",
]

ALL_OFF = PreprocessProfile(
    upscale=False,
    grayscale=False,
    autocontrast=False,
    median_filter=0,
    binarize=Binarize.OFF,
    deskew=False,
)


def x_height(size: int) -> int:
    """The x-height in pixels of DejaVu Sans at ``size`` (the height of an 'x')."""
    _, top, _, bottom = font(size).getbbox("x")
    return int(bottom - top)


def page(size: int = 30, *, repeat: int = 3) -> Image.Image:
    """A page of several lines of text."""
    return render_lines(LINES * repeat, size=size)


def rotated(image: Image.Image, degrees: float) -> Image.Image:
    """``image`` turned counter-clockwise by ``degrees`` on a white, grown canvas."""
    return image.rotate(degrees, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=255)


class TestPublicApi:
    """The module's declared API exists."""

    def test_all_names_exist(self) -> None:
        """Every name in __all__ is defined."""
        missing = [n for n in preprocess_module.__all__ if not hasattr(preprocess_module, n)]
        assert not missing


class TestTextHeight:
    """estimate_text_height measures the x-height of rendered text."""

    @pytest.mark.parametrize("size", [18, 48])
    def test_two_sizes(self, size: int) -> None:
        """The estimate is within 20% of the font's real x-height."""
        estimate = estimate_text_height(page(size))
        assert estimate is not None
        assert estimate == pytest.approx(x_height(size), rel=0.2)

    def test_larger_text_larger_estimate(self) -> None:
        """Bigger type gives a proportionally bigger estimate."""
        small, large = estimate_text_height(page(16)), estimate_text_height(page(64))
        assert small is not None and large is not None
        assert 3.0 < large / small < 5.0

    def test_blank_page(self) -> None:
        """A blank page has no text height."""
        assert estimate_text_height(Image.new("L", (800, 1000), 255)) is None

    def test_photo_like_page(self) -> None:
        """A page that is mostly dark (a photo, an inverted page) has no text height."""
        assert estimate_text_height(Image.new("L", (400, 400), 20)) is None


class TestUpscale:
    """Small text is upscaled toward profile.text_height, large text is left alone."""

    def test_small_text_upscaled(self) -> None:
        """Text with an x-height well under the target is upscaled with Lanczos."""
        source = page(14)
        result = preprocess(source, profile=PreprocessProfile(text_height=32, deskew=False))
        assert result.scale > 1.5
        assert f"upscale:{result.scale:.2f}" in result.steps
        assert result.image.width == round(source.width * result.scale)

    def test_large_text_not_upscaled(self) -> None:
        """Text already above the target keeps its size."""
        source = page(80, repeat=1)
        result = preprocess(source, profile=PreprocessProfile(text_height=32, deskew=False))
        assert result.scale == 1.0
        assert not any(step.startswith("upscale") for step in result.steps)
        assert result.image.size == source.size

    def test_max_upscale_respected(self) -> None:
        """The factor never exceeds max_upscale."""
        profile = PreprocessProfile(text_height=200, max_upscale=2.0, deskew=False)
        result = preprocess(page(14), profile=profile)
        assert result.scale == 2.0

    def test_pixel_cap(self) -> None:
        """A big page is not upscaled beyond MAX_UPSCALED_PIXELS."""
        big = Image.new("L", (5000, 6000), 255)
        big.paste(page(12), (0, 0))
        result = preprocess(big, profile=PreprocessProfile(text_height=64, deskew=False))
        width, height = result.image.size
        assert width * height <= preprocess_module.MAX_UPSCALED_PIXELS * 1.01

    def test_dpi_carried(self) -> None:
        """The DPI in image.info is multiplied by the upscale factor."""
        source = page(14)
        source.info["dpi"] = (300, 300)
        result = preprocess(source, profile=PreprocessProfile(text_height=32, deskew=False))
        assert result.image.info["dpi"] == pytest.approx((300 * result.scale, 300 * result.scale))

    def test_no_dpi_stays_none(self) -> None:
        """An image without a DPI does not get one invented."""
        result = preprocess(page(14), profile=PreprocessProfile(deskew=False))
        assert "dpi" not in result.image.info


class TestDeskew:
    """Skew is estimated (counter-clockwise positive) and removed."""

    @pytest.mark.parametrize("degrees", [4.0, -4.0, 1.5])
    def test_estimate_recovers_rotation(self, degrees: float) -> None:
        """Text turned counter-clockwise by N degrees is estimated at N (within 0.7)."""
        estimate = estimate_skew(rotated(page(), degrees), max_degrees=10)
        assert estimate == pytest.approx(degrees, abs=0.7)

    def test_straight_page(self) -> None:
        """Straight text has no skew."""
        assert abs(estimate_skew(page())) < 0.3

    def test_blank_page(self) -> None:
        """A blank page gives 0.0."""
        assert estimate_skew(Image.new("L", (600, 800), 255)) == 0.0

    def test_outside_range_not_trusted(self) -> None:
        """A rotation beyond max_deskew_degrees is not half-corrected."""
        assert estimate_skew(rotated(page(), 8.0), max_degrees=3) == 0.0

    def test_preprocess_straightens(self) -> None:
        """preprocess records the skew, rotates it away and the result reads straight."""
        result = preprocess(rotated(page(), 4.0), profile=PreprocessProfile(upscale=False))
        assert result.skew_degrees == pytest.approx(4.0, abs=0.7)
        assert f"deskew:{result.skew_degrees:.1f}" in result.steps
        assert abs(estimate_skew(result.image)) < 0.5
        corners = np.asarray(result.image)[[0, 0, -1, -1], [0, -1, 0, -1]]
        assert corners.min() > 200  # the fill is white, not black

    def test_small_skew_left_alone(self) -> None:
        """Skew under MIN_DESKEW_DEGREES is not worth a rotation."""
        result = preprocess(page(), profile=PreprocessProfile(upscale=False))
        assert result.skew_degrees == 0.0
        assert not any(step.startswith("deskew") for step in result.steps)


class TestBinarize:
    """Otsu splits bimodal images; adaptive copes with uneven light."""

    def test_otsu_threshold_bimodal(self) -> None:
        """The threshold falls between two noisy grey levels and separates them."""
        rng = np.random.default_rng(7)
        dark, light = rng.normal(60, 12, 50_000), rng.normal(190, 12, 150_000)
        data = np.concatenate([dark, light]).clip(0, 255)
        image = Image.fromarray(data.astype(np.uint8).reshape(400, 500))
        threshold = otsu_threshold(image)
        assert 90 < threshold < 160
        assert otsu_threshold(np.asarray(image)) == threshold
        binary = np.asarray(otsu_binarize(image))
        assert set(np.unique(binary)) == {0, 255}
        assert (binary == 0).mean() == pytest.approx(0.25, abs=0.01)

    def test_adaptive_beats_global_on_gradient(self) -> None:
        """Under a strong light gradient, adaptive keeps a white background and dark text."""
        text = np.asarray(page(28), dtype=np.float64)
        light = np.linspace(1.0, 0.25, text.shape[1])[None, :]  # bright left, dark right
        lit = Image.fromarray((text * light).clip(0, 255).astype(np.uint8))
        ink = text < 128
        background = text > 250

        global_result = np.asarray(otsu_binarize(lit))
        adaptive_result = np.asarray(adaptive_binarize(lit))

        assert (global_result[background] == 255).mean() < 0.8  # global Otsu blackens the shade
        assert (adaptive_result[background] == 255).mean() > 0.97
        assert (adaptive_result[ink] == 0).mean() > 0.7

    def test_profile_switches(self) -> None:
        """The binarize setting picks the method and the result is pure black and white."""
        for method in (Binarize.OTSU, Binarize.ADAPTIVE):
            result = preprocess(page(), profile=PreprocessProfile(binarize=method))
            assert f"binarize:{method.value}" in result.steps
            assert set(np.unique(np.asarray(result.image))) <= {0, 255}


class TestMedian:
    """The median filter removes specks exactly like a 3x3 median."""

    def test_matches_pillow(self) -> None:
        """The fast 3x3 median equals Pillow's MedianFilter pixel for pixel."""
        noise = Image.effect_noise((257, 131), 80).convert("L")
        ours = np.asarray(median_filter(noise, size=3))
        pillow = np.asarray(noise.filter(ImageFilter.MedianFilter(3)))
        assert np.array_equal(ours, pillow)

    def test_removes_specks(self) -> None:
        """Isolated black pixels disappear, a real stroke stays."""
        image = Image.new("L", (100, 100), 255)
        for x, y in [(10, 10), (50, 70), (90, 30)]:
            image.putpixel((x, y), 0)
        ImageDraw.Draw(image).rectangle((40, 20, 60, 40), fill=0)
        result = preprocess(image, profile=ALL_OFF.model_copy(update={"median_filter": 3}))
        data = np.asarray(result.image)
        assert data[10, 10] == data[70, 50] == data[30, 90] == 255
        assert data[30, 50] == 0
        assert result.steps == ("median:3",)


class TestSteps:
    """Each step can be switched off, and steps lists exactly what ran."""

    def test_all_on(self) -> None:
        """A small, skewed RGB page goes through every step, in order."""
        source = rotated(page(14), 3.0).convert("RGB")
        profile = PreprocessProfile(text_height=32, median_filter=3, binarize=Binarize.OTSU)
        result = preprocess(source, profile=profile)
        names = [step.split(":")[0] for step in result.steps]
        assert names == ["grayscale", "median", "deskew", "upscale", "autocontrast", "binarize"]
        assert result.image.mode == "L"

    def test_all_off(self) -> None:
        """With everything off, the result is an equal copy and no step is listed."""
        source = page().convert("RGB")
        result = preprocess(source, profile=ALL_OFF)
        assert result.steps == ()
        assert result.scale == 1.0
        assert result.skew_degrees == 0.0
        assert result.image is not source
        assert result.image.tobytes() == source.tobytes()

    @pytest.mark.parametrize(
        ("switch", "step"),
        [
            ({"grayscale": False}, "grayscale"),
            ({"upscale": False}, "upscale"),
            ({"autocontrast": False}, "autocontrast"),
            ({"median_filter": 0}, "median"),
            ({"deskew": False}, "deskew"),
            ({"binarize": Binarize.OFF}, "binarize"),
        ],
    )
    def test_each_switch(self, switch: dict[str, object], step: str) -> None:
        """Turning one step off removes it from steps and leaves the others."""
        source = rotated(page(14), 3.0).convert("RGB")
        base = {"text_height": 32, "median_filter": 3, "binarize": Binarize.OTSU}
        result = preprocess(source, profile=PreprocessProfile.model_validate({**base, **switch}))
        names = {s.split(":")[0] for s in result.steps}
        assert step not in names
        assert len(names) == 5

    def test_grayscale_off_keeps_colour(self) -> None:
        """Without grayscale (and binarization), an RGB page stays RGB."""
        result = preprocess(page().convert("RGB"), profile=PreprocessProfile(grayscale=False))
        assert result.image.mode == "RGB"

    def test_input_unchanged(self) -> None:
        """The input image's pixels, size, mode and info are untouched."""
        source = rotated(page(14), 3.0).convert("RGB")
        source.info["dpi"] = (200, 200)
        before = (source.tobytes(), source.size, source.mode, dict(source.info))
        profile = PreprocessProfile(median_filter=3, binarize=Binarize.ADAPTIVE)
        result = preprocess(source, profile=profile)
        assert isinstance(result, PreparedPage)
        assert (source.tobytes(), source.size, source.mode, dict(source.info)) == before


def lined_note(lines: Sequence[str], *, size: int = 44, pitch: int = 70) -> Image.Image:
    """Handwriting on lined paper: a grey rule under every line and on every empty row."""
    from PIL import ImageDraw

    from imaging import HANDWRITING, font

    f = font(size, path=HANDWRITING)
    width, height = 1400, pitch * (len(lines) + 4)
    img = Image.new("L", (width, height), 250)
    draw = ImageDraw.Draw(img)
    for y in range(pitch, height, pitch):
        draw.line((0, y, width, y), fill=150, width=3)
    for i, text in enumerate(lines):
        # The writing sits on its rule, descenders crossing it.
        draw.text((60, pitch * (i + 1) - int(size * 0.8)), text, fill=20, font=f)
    return img


class TestRemoveRules:
    """Lined paper: the rules are painted over, the writing stays."""

    LINES = ("Remember to water the plants", "and call grandma on Sunday")

    def test_rules_go_writing_stays(self) -> None:
        """Every rule is found; rows of rule become paper; ink of the writing is kept."""
        from ocrwatch.recognition.preprocess import remove_rules

        img = lined_note(self.LINES)
        out, count = remove_rules(img)
        assert count == 5  # rules at y = 70, 140, ..., 350 on a 420-pixel page
        a = np.asarray(out)
        # A rule row far right of the writing is paper now.
        assert a[70 * 4, 1300] > 230
        # The writing's dark ink is still there.
        assert (a < 80).sum() > 0.8 * (np.asarray(img) < 80).sum()

    def test_plain_page_untouched(self) -> None:
        """A page without rules comes back unchanged, count 0."""
        from imaging import HANDWRITING, render_lines
        from ocrwatch.recognition.preprocess import remove_rules

        img = render_lines(self.LINES, font_path=HANDWRITING, size=44)
        out, count = remove_rules(img)
        assert count == 0
        assert np.array_equal(np.asarray(out), np.asarray(img))

    def test_lined_note_reads_without_dashes(self) -> None:
        """Through the handwritten profile and PP-OCR, both lines read and no rule does."""
        from rapidfuzz.distance import Levenshtein

        from ocrwatch.engines.paddle import PaddleEngine
        from ocrwatch.recognition.preprocess import preprocess
        from ocrwatch.settings.choices import Mode
        from ocrwatch.settings.model import load_settings

        settings = load_settings(environ={})
        prepared = preprocess(lined_note(self.LINES), profile=settings.preprocess.handwritten)
        assert any(step.startswith("remove_rules") for step in prepared.steps)
        engine = PaddleEngine.from_settings(settings)
        try:
            page = engine.recognize(prepared.image, languages=["eng"], mode=Mode.HANDWRITTEN)
        finally:
            engine.close()
        texts = [line.text for line in page.lines]
        assert len(texts) == len(self.LINES), texts
        for got, want in zip(texts, self.LINES, strict=True):
            assert Levenshtein.normalized_distance(got, want) < 0.15, got
