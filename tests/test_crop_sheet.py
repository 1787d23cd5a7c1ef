"""crop_sheet: a phone photo's sheet is found and flattened; a scan is left alone."""

from __future__ import annotations

import io

import numpy as np
from bench.photos import photograph
from PIL import Image

from imaging import render_lines
from ocrwatch.preprocess import crop_sheet

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
