"""Tests of bench.photos on rendered pages: deterministic, and photo-like in the right ways."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# bench/ lives at the repo root, outside the installed package: make it importable however
# pytest is started (pyproject's pytest option `pythonpath = ["."]` would do the same).
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from bench import photos  # noqa: E402

from imaging import render_lines, save  # noqa: E402

LINES = ["The quick brown fox jumps", "over the lazy dog, twice.", "Pack my box with jugs."]


@pytest.fixture(scope="module")
def page() -> Image.Image:
    """A rendered page of black text on white."""
    return render_lines(LINES, size=36)


def _decode(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


class TestDeterminism:
    """The same (image, seed, name) always gives the same bytes."""

    def test_same_seed_same_bytes(self, page: Image.Image) -> None:
        """Two calls with one seed are identical."""
        assert photos.photograph(page, seed=3, name="p") == photos.photograph(
            page, seed=3, name="p"
        )

    def test_other_seed_or_name_differs(self, page: Image.Image) -> None:
        """Seed and file name both change the conditions."""
        base = photos.photograph(page, seed=3, name="p")
        assert photos.photograph(page, seed=4, name="p") != base
        assert photos.photograph(page, seed=3, name="q") != base

    def test_input_not_modified(self, page: Image.Image) -> None:
        """The source image is only read."""
        before = page.tobytes()
        photos.photograph(page, seed=1)
        assert page.tobytes() == before


@pytest.fixture(scope="module")
def shot(page: Image.Image) -> np.ndarray:
    """The photo of the rendered page as an RGB float array."""
    img = _decode(photos.photograph(page, seed=11, name="page.png"))
    assert img.format == "JPEG" and img.mode == "RGB"
    return np.asarray(img, dtype=np.float32)


class TestPhotoEffects:
    """The output looks like a phone photo of the page, not like the scan."""

    def test_page_sits_on_a_darker_margin(self, page: Image.Image, shot: np.ndarray) -> None:
        """The canvas grew, and its border (the table) is much darker than its middle (paper)."""
        h, w = shot.shape[:2]
        assert w > page.width and h > page.height
        gray = shot.mean(axis=2)
        border = np.concatenate([gray[:4].ravel(), gray[-4:].ravel()])
        middle = np.percentile(gray[h // 3 : 2 * h // 3, w // 3 : 2 * w // 3], 90)
        assert border.mean() < middle - 60

    def test_ink_contrast_is_reduced(self, shot: np.ndarray) -> None:
        """Pencil-like: the darkest ink is far from black while the paper stays light."""
        gray = shot.mean(axis=2)
        h, w = gray.shape
        paper = gray[h // 6 : 5 * h // 6, w // 6 : 5 * w // 6]
        assert np.percentile(paper, 0.5) > 60
        assert np.percentile(paper, 90) > 150

    def test_paper_has_sensor_noise(self, page: Image.Image) -> None:
        """Sensor noise: a flat paper area is no longer one value."""
        blank = Image.new("L", page.size, "white")
        arr = np.asarray(_decode(photos.photograph(blank, seed=5)), dtype=np.float32).mean(axis=2)
        h, w = arr.shape
        patch = arr[h // 2 - 20 : h // 2 + 20, w // 2 - 20 : w // 2 + 20]
        assert patch.std() > 0.5

    def test_light_is_uneven(self) -> None:
        """A blank page is brighter on one side than the other (gradient or shadow)."""
        blank = Image.new("L", (800, 600), "white")
        arr = np.asarray(_decode(photos.photograph(blank, seed=2)), dtype=np.float32).mean(axis=2)
        h, w = arr.shape
        quads = [
            arr[h // 5 : h // 2, w // 5 : w // 2].mean(),
            arr[h // 5 : h // 2, w // 2 : 4 * w // 5].mean(),
            arr[h // 2 : 4 * h // 5, w // 5 : w // 2].mean(),
            arr[h // 2 : 4 * h // 5, w // 2 : 4 * w // 5].mean(),
        ]
        assert max(quads) - min(quads) > 8


class TestCli:
    """python -m bench.photos writes one JPEG per source and copies its ground truth."""

    def test_writes_jpeg_and_ground_truth(self, tmp_path: Path, page: Image.Image) -> None:
        """SRC.png + SRC.gt.txt -> OUT/SRC.jpg + OUT/SRC.gt.txt, same bytes on a rerun."""
        src = save(page, tmp_path / "in" / "note.png")
        (tmp_path / "in" / "note.gt.txt").write_text("\n".join(LINES) + "\n", encoding="utf-8")
        assert photos.main([str(src), "--out", str(tmp_path / "out"), "--seed", "9"]) == 0
        first = (tmp_path / "out" / "note.jpg").read_bytes()
        assert (tmp_path / "out" / "note.gt.txt").read_text(encoding="utf-8").startswith("The")
        assert photos.main([str(src), "--out", str(tmp_path / "out2"), "--seed", "9"]) == 0
        assert (tmp_path / "out2" / "note.jpg").read_bytes() == first
