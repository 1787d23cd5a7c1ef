"""Tests of bench.smallprint: the small-print development set is deterministic and honest."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import string
import sys
from pathlib import Path

import pytest
from PIL import Image

# bench/ lives at the repo root, outside the installed package (see test_bench_photos.py).
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from bench import metrics  # noqa: E402
from bench import smallprint as sp  # noqa: E402


def _clean(spec: sp.PageSpec, **changes: object) -> sp.PageSpec:
    """``spec`` as a clean, straight, short page (plus ``changes``)."""
    return dataclasses.replace(
        spec,
        degradation=sp.Degradation.GRAY,
        skew=0.0,
        chars=400,
        noise=3.0,
        blur=0.5,
        ink_weight=1.0,
        **changes,
    )


class TestSpecs:
    """The pages vary what small print varies, within the range asked."""

    def test_every_size_and_resolution_pairing_in_forty_pages(self) -> None:
        """6-12 pt x 150/200/300 dpi: all 21 pairings, em heights 12.5 to 50 px."""
        specs = [sp.page_spec(0, i) for i in range(40)]
        pairs = {(s.points, s.dpi) for s in specs}
        assert pairs == {(p, d) for p in range(6, 13) for d in (150, 200, 300)}
        ems = [s.points * s.dpi / 72 for s in specs]
        assert min(ems) == 12.5 and max(ems) == 50.0
        assert {s.font for s in specs} == set(range(len(sp.FONTS)))
        assert {s.columns for s in specs} == {1, 2}
        assert set(sp.Degradation) == {s.degradation for s in specs}
        assert all(s.dpi <= 200 for s in specs if s.degradation is sp.Degradation.FAX)
        assert all(abs(s.skew) <= 1.5 for s in specs)

    def test_seeded(self) -> None:
        """One seed gives the same specs; another gives others."""
        assert [sp.page_spec(3, i) for i in range(5)] == [sp.page_spec(3, i) for i in range(5)]
        assert [sp.page_spec(3, i) for i in range(5)] != [sp.page_spec(4, i) for i in range(5)]


class TestRender:
    """A rendered page is a realistic scan of exactly its ground truth."""

    def test_same_seed_same_pixels(self) -> None:
        """Rendering one spec twice gives identical pixels."""
        spec = _clean(sp.page_spec(1, 0), dpi=150)
        one = sp.render_page(spec).image
        assert sp.render_page(spec).image.tobytes() == one.tobytes()
        other = sp.render_page(_clean(sp.page_spec(2, 0), dpi=150)).image
        assert other.tobytes() != one.tobytes()

    @pytest.mark.parametrize(("paper", "dpi"), [("a4", 150), ("letter", 200)])
    def test_page_size_and_text_size(self, paper: str, dpi: int) -> None:
        """The page is the sheet at its dpi; em and x-height follow the point size."""
        spec = _clean(sp.page_spec(0, 0), paper=paper, dpi=dpi, points=6, font=0)
        page = sp.render_page(spec)
        width, height = sp.PAPERS[paper]
        assert page.image.size == (round(width * dpi), round(height * dpi))
        assert page.image.info["dpi"] == (dpi, dpi)
        assert page.em_px == pytest.approx(6 * dpi / 72, abs=0.01)
        assert 0.4 * page.em_px < page.x_height_px < 0.6 * page.em_px

    def test_fax_is_one_bit_and_jpeg_gray(self) -> None:
        """Fax pages are bilevel; JPEG and plain pages 8-bit grayscale."""
        base = _clean(sp.page_spec(0, 0), dpi=150)
        fax = sp.render_page(dataclasses.replace(base, degradation=sp.Degradation.FAX)).image
        jpeg = sp.render_page(dataclasses.replace(base, degradation=sp.Degradation.JPEG)).image
        assert fax.mode == "1" and jpeg.mode == "L"

    def test_text_is_plain_english_with_numbers(self) -> None:
        """ASCII words, numbers and punctuation; no empty or padded line."""
        lines = [
            line
            for i in range(6)
            for line in sp.render_page(_clean(sp.page_spec(5, i), dpi=150)).lines
        ]
        text = "\n".join(lines)
        assert set(text) <= set(string.printable) - set("\t\r\x0b\x0c")
        assert any(c.isdigit() for c in text) and {".", ","} <= set(text)
        assert all(line and line.strip() == line for line in lines)

    @pytest.mark.parametrize("columns", [1, 2])
    def test_tesseract_reads_ground_truth(self, columns: int) -> None:
        """A large clean page (12 pt, 200 dpi) reads back as its ground truth.

        Two columns: the words (Tesseract's layout analysis may split a short column's line
        ends off into a block of their own, so line order is not checked there).
        """
        tesserocr = pytest.importorskip("tesserocr")
        spec = _clean(sp.page_spec(0, 1), points=12, dpi=200, columns=columns)
        page = sp.render_page(spec)
        text = tesserocr.image_to_text(
            page.image, lang="eng", path="/usr/share/tesseract-ocr/5/tessdata"
        )
        score = metrics.score("\n".join(page.lines) + "\n", text)
        assert score.bow_recall > 0.97 and score.bow_precision > 0.97, text
        if columns == 1:
            assert score.cer < 0.02, text


class TestWritePages:
    """write_pages lays pages out like the eval folders, deterministically, with metadata."""

    def test_layout_manifest_and_determinism(self, tmp_path: Path) -> None:
        """<id>.png + <id>.gt.txt + manifest.json; same bytes for the same seed."""

        def digest(folder: Path) -> dict[str, str]:
            return {
                p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())
            }

        # Seed 12 starts with two 150-dpi pages (fast).
        images = sp.write_pages(tmp_path / "a", seed=12, pages=2)
        assert [p.name for p in images] == ["sp-001.png", "sp-002.png"]
        manifest = json.loads((tmp_path / "a" / "manifest.json").read_text(encoding="utf-8"))
        assert manifest["seed"] == 12
        for image, entry in zip(images, manifest["pages"], strict=True):
            truth = image.with_name(f"{image.stem}.gt.txt").read_text(encoding="utf-8")
            assert truth.endswith("\n") and not truth.endswith("\n\n")
            assert len(truth.splitlines()) == entry["lines"]
            assert entry["em_px"] == pytest.approx(entry["points"] * entry["dpi"] / 72, abs=0.01)
            with Image.open(image) as img:
                assert img.format == "PNG"
                assert round(img.info["dpi"][0]) == entry["dpi"]
                assert list(img.size) == entry["size"]
        sp.write_pages(tmp_path / "b", seed=12, pages=2)
        assert digest(tmp_path / "a") == digest(tmp_path / "b")

    def test_missing_fonts_named_before_writing(self, tmp_path: Path) -> None:
        """An empty font folder: the Debian packages are named and nothing is written."""
        with pytest.raises(sp.FontsMissingError, match="fonts-dejavu-core fonts-liberation"):
            sp.write_pages(tmp_path / "out", seed=0, root=tmp_path)
        assert not (tmp_path / "out").exists()


class TestBreakdown:
    """The report groups bench.accuracy items by measured text height."""

    def test_buckets(self) -> None:
        """Heights fall in the bucket whose lower bound they reach; the total comes last."""
        manifest = {
            "pages": [
                {"image": "a.png", "points": 6, "dpi": 150},
                {"image": "b.png", "points": 12, "dpi": 300},
            ]
        }
        counts = {f.name: 0 for f in dataclasses.fields(metrics.Score)}
        items = [
            {"set": "synth/smallprint", "item": "a.png", "seconds": 2.0, "pages": 1, **counts},
            {"set": "synth/smallprint", "item": "b.png", "seconds": 4.0, "pages": 1, **counts},
        ]
        items[0].update(char_errors=1, chars=10)
        items[1].update(char_errors=0, chars=30)
        rows = sp.breakdown([{"items": items}], manifest, {"a.png": 7.0, "b.png": 28.0})
        assert [(r["bucket"], r["pages"]) for r in rows] == [("0-10", 1), (">=28", 1), ("all", 2)]
        assert rows[-1]["cer"] == pytest.approx(1 / 40)
        assert rows[-1]["s_per_page"] == pytest.approx(3.0)
