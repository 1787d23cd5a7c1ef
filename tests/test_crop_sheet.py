"""crop_sheet: a phone photo's sheet is found and flattened; a scan is left alone."""

from __future__ import annotations

import io

import numpy as np
from bench.photos import photograph
from PIL import Image

from imaging import render_lines
from ocrwatch.recognition.preprocess import crop_sheet, preprocess
from ocrwatch.settings.sections import PreprocessProfile

LINES = ["Dear Anna, thank you for", "the lovely flowers and", "the card you sent me."]


class TestCropSheet:
    """The sheet on a darker table is cut out; a flat scan has no table to cut."""

    def test_photo_sheet_found(self) -> None:
        """A photo-like image (perspective, dark margin) gives a smaller, brighter crop."""
        page = render_lines(LINES, size=48, margin=120)
        photo = Image.open(io.BytesIO(photograph(page, seed=3, name="note.png"))).convert("L")
        cropped = crop_sheet(photo)
        assert cropped is not None
        assert cropped.width < photo.width and cropped.height < photo.height
        # The table around the sheet is gone: the crop's border is paper, not table.
        border = np.concatenate([np.asarray(cropped)[:5].ravel(), np.asarray(cropped)[-5:].ravel()])
        photo_border = np.concatenate(
            [np.asarray(photo)[:5].ravel(), np.asarray(photo)[-5:].ravel()]
        )
        assert border.mean() > photo_border.mean() + 20

    def test_scan_untouched(self) -> None:
        """A flat scan (all paper) is not cropped."""
        assert crop_sheet(render_lines(LINES, size=48)) is None

    def test_blank_frame(self) -> None:
        """A uniform image has no sheet to find."""
        assert crop_sheet(Image.new("L", (640, 480), 128)) is None


class TestLocalContrast:
    """profile.local_contrast: CLAHE on photos (a sheet was found), never on scans."""

    def test_applied_to_photos_and_lifts_faint_ink(self) -> None:
        """On a photo whose right half is washed out by glare, that half's ink gets darker
        against its paper than autocontrast alone leaves it."""
        page = render_lines(LINES * 3, size=40, margin=100)
        arr = np.asarray(page).astype(np.float32)
        glare = arr.copy()
        glare[:, arr.shape[1] // 2 :] = 255 - (255 - glare[:, arr.shape[1] // 2 :]) * 0.25
        table = Image.new("L", (page.width + 200, page.height + 200), 50)
        table.paste(Image.fromarray(glare.astype(np.uint8)), (100, 100))
        base = {"deskew": False, "upscale": False, "median_filter": 0, "crop_sheet": True}
        plain = preprocess(table, profile=PreprocessProfile.model_validate(base))
        lifted = preprocess(
            table, profile=PreprocessProfile.model_validate({**base, "local_contrast": True})
        )
        assert "local_contrast" in lifted.steps and "local_contrast" not in plain.steps

        def faint_half_contrast(image: Image.Image) -> float:
            half = np.asarray(image)[:, image.width // 2 :].astype(np.float32)
            return float(np.percentile(half, 90) - np.percentile(half, 1))

        assert faint_half_contrast(lifted.image) > 1.1 * faint_half_contrast(plain.image)

    def test_scan_left_alone(self) -> None:
        """A flat scan has no sheet to find, so no local contrast step runs."""
        profile = PreprocessProfile(crop_sheet=True, local_contrast=True, deskew=False)
        result = preprocess(render_lines(LINES, size=48), profile=profile)
        assert "local_contrast" not in result.steps
