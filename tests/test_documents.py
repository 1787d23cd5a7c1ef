"""Tests for recognition.documents: real files of every format, bad inputs, originals untouched."""

from __future__ import annotations

import hashlib
import inspect
import os
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from structlog.testing import capture_logs

import ocrwatch.recognition.documents as documents
from imaging import render_lines, save
from ocrwatch.exceptions import (
    CorruptFileError,
    DependencyError,
    EmptyFileError,
    EncryptedPdfError,
    ImageTooLargeError,
    ImageTooSmallError,
    InputError,
    UnsupportedFormatError,
)
from ocrwatch.recognition.documents import SUPPORTED_SUFFIXES, Page, SourceInfo, load_pages, probe
from ocrwatch.settings.model import Settings


@pytest.fixture
def settings() -> Settings:
    """Default settings (PDF pages at 300 dpi)."""
    return Settings()


def text_image(label: str = "Hello ocrwatch", *, width: int | None = None) -> Image.Image:
    """A small page of dark text on white."""
    return render_lines([label, "second line 123"], size=32, width=width)


def pages_of(path: Path, settings: Settings) -> list[Page]:
    """Probe and load every page of ``path``."""
    return list(load_pages(path, settings=settings, info=probe(path, settings=settings)))


def fingerprint(path: Path) -> tuple[bytes, int]:
    """The bytes and mtime of a file, to prove it was not touched."""
    return path.read_bytes(), path.stat().st_mtime_ns


def make_png(path: Path, *, width: int, height: int, idat: bytes) -> Path:
    """Write a 1-bit grayscale PNG with the given header size and raw IDAT payload."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )
    return path


def assert_names_file(exc: InputError, path: Path) -> None:
    """The error carries the path and a one-line message naming the file."""
    assert exc.path == path
    assert path.name in str(exc)
    assert "\n" not in str(exc)


class TestPublicApi:
    """The module's declared API exists and matches the common brief."""

    def test_all_names_exist(self) -> None:
        """Every name in __all__ is defined."""
        missing = [name for name in documents.__all__ if not hasattr(documents, name)]
        assert not missing

    def test_supported_suffixes(self) -> None:
        """The suffix set is exactly the formats we read."""
        assert {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".pdf"} == (
            SUPPORTED_SUFFIXES
        )


class TestFormats:
    """Every supported format loads into RGB or L pages with the right count."""

    @pytest.mark.parametrize(
        ("suffix", "fmt"),
        [
            (".jpg", "jpeg"),
            (".png", "png"),
            (".bmp", "bmp"),
            (".gif", "gif"),
            (".webp", "webp"),
            (".tif", "tiff"),
        ],
    )
    def test_single_image(self, tmp_path: Path, settings: Settings, suffix: str, fmt: str) -> None:
        """A one-page image probes as its format and yields one page of its size."""
        img = text_image()
        path = save(img, tmp_path / f"page{suffix}")
        info = probe(path, settings=settings)
        assert info.format == fmt
        assert info.page_count == 1
        assert info.size == path.stat().st_size
        assert info.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
        (page,) = list(load_pages(path, settings=settings, info=info))
        assert page.number == 1
        assert page.image.mode in ("RGB", "L")
        assert page.image.size == img.size
        # The text survived: the page has dark pixels.
        assert np.asarray(page.image.convert("L")).min() < 80

    def test_multipage_tiff(self, tmp_path: Path, settings: Settings) -> None:
        """Every frame of a 3-page TIFF is a page, in order."""
        frames = [text_image(f"page {n}", width=300 + 100 * n) for n in range(1, 4)]
        path = save(frames[0], tmp_path / "scan.tiff", save_all=True, append_images=frames[1:])
        pages = pages_of(path, settings)
        assert [p.number for p in pages] == [1, 2, 3]
        assert [p.image.size for p in pages] == [f.size for f in frames]

    def test_two_page_pdf(self, tmp_path: Path, settings: Settings) -> None:
        """Every PDF page is rasterized at settings.pdf_dpi and carries that DPI."""
        first, second = text_image("first"), text_image("second", width=500)
        path = save(
            first, tmp_path / "doc.pdf", save_all=True, append_images=[second], resolution=100
        )
        info = probe(path, settings=settings)
        assert (info.format, info.page_count) == ("pdf", 2)
        pages = list(load_pages(path, settings=settings, info=info))
        assert [p.number for p in pages] == [1, 2]
        for page, source in zip(pages, (first, second), strict=True):
            assert page.dpi == settings.pdf_dpi
            assert page.image.info["dpi"] == (settings.pdf_dpi, settings.pdf_dpi)
            assert page.image.mode in ("RGB", "L")
            # 100 dpi in the PDF, 300 dpi out: three times the pixels per side.
            assert abs(page.image.width - 3 * source.width) <= 3
            assert abs(page.image.height - 3 * source.height) <= 3

    def test_pdf_dpi_setting(self, tmp_path: Path) -> None:
        """A lower pdf_dpi gives proportionally smaller pages."""
        path = save(text_image(), tmp_path / "doc.pdf", resolution=100)
        (page,) = pages_of(path, Settings(pdf_dpi=100))
        assert page.dpi == 100
        assert abs(page.image.width - text_image().width) <= 2

    def test_owner_password_only_pdf_is_read(self, tmp_path: Path, settings: Settings) -> None:
        """A PDF with only an owner password (restrictions, no open password) is readable."""
        src = save(text_image(), tmp_path / "src.pdf")
        path = tmp_path / "restricted.pdf"
        subprocess.run(
            ["qpdf", "--encrypt", "", "owner", "256", "--", str(src), str(path)], check=True
        )
        assert len(pages_of(path, settings)) == 1

    def test_animated_gif_every_frame(self, tmp_path: Path, settings: Settings) -> None:
        """A GIF with several frames yields one page per frame."""
        frames = [text_image("one"), text_image("two")]
        path = save(frames[0], tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
        pages = pages_of(path, settings)
        assert [p.number for p in pages] == [1, 2]
        assert all(p.image.mode in ("RGB", "L") for p in pages)

    def test_camera_mpo_is_one_page(self, tmp_path: Path, settings: Settings) -> None:
        """A camera JPEG carrying an extra image (MPO) is one page, read as JPEG."""
        path = save(
            text_image(), tmp_path / "photo.jpg", format="MPO", save_all=True,
            append_images=[text_image("preview")],
        )  # fmt: skip
        with Image.open(path) as check:
            assert check.format == "MPO"
            assert getattr(check, "n_frames", 1) == 2
        info = probe(path, settings=settings)
        assert (info.format, info.page_count) == ("jpeg", 1)
        assert len(list(load_pages(path, settings=settings, info=info))) == 1

    def test_transparent_png_on_white(self, tmp_path: Path, settings: Settings) -> None:
        """Transparent areas of an RGBA image become white, opaque text stays dark."""
        img = Image.new("RGBA", (200, 100), (0, 0, 0, 0))
        ImageDraw.Draw(img).rectangle((20, 20, 80, 80), fill=(0, 0, 0, 255))
        path = save(img, tmp_path / "alpha.png")
        (page,) = pages_of(path, settings)
        assert page.image.mode == "RGB"
        assert page.image.getpixel((150, 50)) == (255, 255, 255)
        assert page.image.getpixel((50, 50)) == (0, 0, 0)

    def test_palette_with_transparency(self, tmp_path: Path, settings: Settings) -> None:
        """A palette GIF with a transparent colour gets a white background."""
        img = Image.new("P", (100, 100), 0)
        img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
        ImageDraw.Draw(img).rectangle((10, 10, 40, 40), fill=1)
        path = save(img, tmp_path / "pal.gif", transparency=0)
        (page,) = pages_of(path, settings)
        assert page.image.mode == "RGB"
        assert page.image.getpixel((80, 80)) == (255, 255, 255)
        assert page.image.getpixel((20, 20)) == (255, 0, 0)

    def test_sixteen_bit_png_scaled(self, tmp_path: Path, settings: Settings) -> None:
        """A 16-bit grayscale scan becomes 8-bit L with black and white preserved."""
        data = np.full((100, 200), 65535, dtype=np.uint16)
        data[40:60, 20:180] = 0
        path = tmp_path / "deep.png"
        Image.fromarray(data).save(path)
        with Image.open(path) as check:
            assert check.mode.startswith("I")
        (page,) = pages_of(path, settings)
        assert page.image.mode == "L"
        assert page.image.getpixel((100, 50)) == 0
        assert page.image.getpixel((5, 5)) == 255

    def test_one_bit_and_cmyk(self, tmp_path: Path, settings: Settings) -> None:
        """1-bit TIFF and CMYK JPEG come out as L and RGB."""
        bilevel = save(text_image().convert("1"), tmp_path / "fax.tif", compression="group4")
        cmyk = save(text_image().convert("CMYK"), tmp_path / "print.jpg")
        (fax,) = pages_of(bilevel, settings)
        (colour,) = pages_of(cmyk, settings)
        assert fax.image.mode == "L"
        assert set(np.unique(np.asarray(fax.image))) <= {0, 255}
        assert colour.image.mode == "RGB"

    def test_dpi_from_file(self, tmp_path: Path, settings: Settings) -> None:
        """A plausible DPI in the file is kept; an implausible one is dropped."""
        good = save(text_image(), tmp_path / "good.png", dpi=(300, 300))
        bad = save(text_image(), tmp_path / "bad.png", dpi=(10, 10))
        (good_page,) = pages_of(good, settings)
        (bad_page,) = pages_of(bad, settings)
        assert good_page.dpi == 300
        assert good_page.image.info["dpi"] == (300, 300)
        assert bad_page.dpi is None
        assert "dpi" not in bad_page.image.info


class TestExifOrientation:
    """The EXIF orientation is applied so pages come out upright."""

    def test_orientation_6_rotated(self, tmp_path: Path, settings: Settings) -> None:
        """Orientation 6 (rotate 90 degrees clockwise to view) swaps the sides; left goes on top."""
        stored = Image.new("L", (400, 200), 255)
        ImageDraw.Draw(stored).rectangle((0, 0, 80, 199), fill=0)  # a black band on the left
        exif = Image.Exif()
        exif[0x0112] = 6
        path = save(stored, tmp_path / "phone.jpg", exif=exif.tobytes())
        (page,) = pages_of(path, settings)
        assert page.image.size == (200, 400)
        upright = np.asarray(page.image.convert("L"))
        assert upright[:60].mean() < 40  # the band is now at the top
        assert upright[-200:].mean() > 215


class TestBadInputs:
    """Each kind of bad file raises its own InputError naming the file."""

    def test_empty_file(self, tmp_path: Path, settings: Settings) -> None:
        """A zero-byte file is an EmptyFileError."""
        path = tmp_path / "empty.jpg"
        path.write_bytes(b"")
        with pytest.raises(EmptyFileError) as caught:
            probe(path, settings=settings)
        assert_names_file(caught.value, path)

    def test_truncated_jpeg(self, tmp_path: Path, settings: Settings) -> None:
        """A JPEG cut in half is a CorruptFileError (truncated data is never accepted)."""
        full = save(render_lines(["A longer page of text"] * 6, size=40), tmp_path / "full.jpg")
        data = full.read_bytes()
        path = tmp_path / "half.jpg"
        path.write_bytes(data[: len(data) // 2])
        with pytest.raises(CorruptFileError) as caught:
            probe(path, settings=settings)
        assert_names_file(caught.value, path)

    def test_text_named_png(self, tmp_path: Path, settings: Settings) -> None:
        """A text file named .png is unsupported, and the message says what it is."""
        path = tmp_path / "notes.png"
        path.write_text("Meeting notes\nnot an image at all\n", encoding="utf-8")
        with pytest.raises(UnsupportedFormatError) as caught:
            probe(path, settings=settings)
        assert_names_file(caught.value, path)
        assert "plain text" in str(caught.value)

    @pytest.mark.parametrize(
        ("data", "said"),
        [(b"\xff", "unrecognized binary data"), (b"\x00" * 5000, "only zero bytes")],
    )
    def test_binary_is_not_called_text(
        self, tmp_path: Path, settings: Settings, data: bytes, said: str
    ) -> None:
        """A lone 0xff byte is binary, not text; a file of zeros says it may be unwritten."""
        path = tmp_path / "x.png"
        path.write_bytes(data)
        with pytest.raises(UnsupportedFormatError) as caught:
            probe(path, settings=settings)
        assert said in str(caught.value) and "plain text" not in str(caught.value)
        assert ".png" in str(caught.value)

    def test_other_format_named(self, tmp_path: Path, settings: Settings) -> None:
        """An image format we do not read (PPM) is unsupported and named in the message."""
        path = save(text_image(), tmp_path / "scan.ppm")
        with pytest.raises(UnsupportedFormatError, match="PPM"):
            probe(path, settings=settings)

    def test_png_signature_with_garbage(self, tmp_path: Path, settings: Settings) -> None:
        """Content that starts like a PNG but is not one is corrupt, not unsupported."""
        path = tmp_path / "broken.png"
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00garbage" * 20)
        with pytest.raises(CorruptFileError):
            probe(path, settings=settings)

    def test_jpeg_named_png_accepted_with_warning(self, tmp_path: Path, settings: Settings) -> None:
        """A real JPEG with a .png name is read as JPEG and the mismatch is logged."""
        path = save(text_image(), tmp_path / "mislabelled.png", format="JPEG")
        with capture_logs() as logs:
            info = probe(path, settings=settings)
        assert info.format == "jpeg"
        events = [e for e in logs if e["event"] == "input.extension_mismatch"]
        assert len(events) == 1
        assert events[0]["log_level"] == "warning"
        assert events[0]["extension"] == ".png"

    def test_encrypted_pdf(self, tmp_path: Path, settings: Settings) -> None:
        """A PDF that needs a password is an EncryptedPdfError."""
        src = save(text_image(), tmp_path / "src.pdf")
        path = tmp_path / "locked.pdf"
        subprocess.run(
            ["qpdf", "--encrypt", "user", "owner", "256", "--", str(src), str(path)], check=True
        )
        with pytest.raises(EncryptedPdfError) as caught:
            probe(path, settings=settings)
        assert_names_file(caught.value, path)

    def test_broken_pdf(self, tmp_path: Path, settings: Settings) -> None:
        """A file with a PDF header but no readable structure is a CorruptFileError."""
        path = tmp_path / "broken.pdf"
        path.write_bytes(b"%PDF-1.7\n" + b"this is not a pdf body\n" * 20 + b"%%EOF\n")
        with pytest.raises(CorruptFileError) as caught:
            probe(path, settings=settings)
        assert_names_file(caught.value, path)

    def test_truncated_pdf(self, tmp_path: Path, settings: Settings) -> None:
        """A PDF cut short (still being written) is a CorruptFileError."""
        full = save(
            text_image(), tmp_path / "full.pdf", save_all=True, append_images=[text_image()]
        )
        data = full.read_bytes()
        path = tmp_path / "cut.pdf"
        path.write_bytes(data[: int(len(data) * 0.7)])
        with pytest.raises(CorruptFileError, match="truncated"):
            probe(path, settings=settings)

    def test_one_pixel_image(self, tmp_path: Path, settings: Settings) -> None:
        """A 1-pixel image is an ImageTooSmallError."""
        path = save(Image.new("L", (1, 1), 0), tmp_path / "dot.png")
        with pytest.raises(ImageTooSmallError) as caught:
            probe(path, settings=settings)
        assert_names_file(caught.value, path)

    def test_huge_dimensions_rejected_before_decoding(
        self, tmp_path: Path, settings: Settings
    ) -> None:
        """A 30000x30000 PNG is refused from its header: its pixel data is never decoded.

        The pixel data here is deliberately broken, so decoding would raise CorruptFileError;
        getting ImageTooLargeError proves the size was checked first.
        """
        path = make_png(tmp_path / "bomb.png", width=30000, height=30000, idat=zlib.compress(b"\0"))
        with pytest.raises(ImageTooLargeError) as caught:
            probe(path, settings=settings)
        assert_names_file(caught.value, path)
        assert "900000000" in str(caught.value)

    def test_real_bomb_png(self, tmp_path: Path, settings: Settings) -> None:
        """A valid 30000x30000 1-bit PNG (small on disk) is an ImageTooLargeError."""
        row = b"\x00" + b"\xff" * (30000 // 8)
        compressor = zlib.compressobj(9)
        idat = b"".join(compressor.compress(row) for _ in range(30000)) + compressor.flush()
        path = make_png(tmp_path / "bomb.png", width=30000, height=30000, idat=idat)
        assert path.stat().st_size < 1_000_000
        with pytest.raises(ImageTooLargeError):
            probe(path, settings=settings)

    def test_pixels_just_over_limit(self, tmp_path: Path) -> None:
        """Between one and two times max_pixels (Pillow only warns there) is still refused."""
        path = save(Image.new("L", (1100, 1000), 255), tmp_path / "wide.png")
        with pytest.raises(ImageTooLargeError, match="max_pixels"):
            probe(path, settings=Settings(max_pixels=1_000_000))
        assert probe(path, settings=Settings(max_pixels=1_100_000)).page_count == 1

    def test_pdf_page_over_pixel_limit(self, tmp_path: Path) -> None:
        """A PDF page that would rasterize beyond max_pixels is refused before rasterizing."""
        path = save(text_image(), tmp_path / "poster.pdf", resolution=10)  # a huge page
        with pytest.raises(ImageTooLargeError, match="page 1"):
            probe(path, settings=Settings(max_pixels=1_000_000, pdf_dpi=300))

    def test_file_over_byte_limit(self, tmp_path: Path) -> None:
        """A file larger than max_file_bytes is an ImageTooLargeError."""
        path = save(Image.effect_noise((200, 200), 80), tmp_path / "noisy.png")
        assert path.stat().st_size > 2048
        with pytest.raises(ImageTooLargeError, match="max_file_bytes") as caught:
            probe(path, settings=Settings(max_file_bytes=2048))
        assert_names_file(caught.value, path)

    def test_too_many_pages(self, tmp_path: Path) -> None:
        """More pages than max_pages is an ImageTooLargeError, for TIFF and PDF alike."""
        frames = [text_image(str(n)) for n in range(3)]
        tiff = save(frames[0], tmp_path / "long.tif", save_all=True, append_images=frames[1:])
        pdf = save(frames[0], tmp_path / "long.pdf", save_all=True, append_images=frames[1:])
        for path in (tiff, pdf):
            with pytest.raises(ImageTooLargeError, match="max_pages"):
                probe(path, settings=Settings(max_pages=2))
            assert probe(path, settings=Settings(max_pages=3)).page_count == 3

    def test_vanished_file_is_os_error(self, tmp_path: Path, settings: Settings) -> None:
        """A missing file raises FileNotFoundError (transient for the daemon), not an InputError."""
        with pytest.raises(FileNotFoundError):
            probe(tmp_path / "gone.jpg", settings=settings)

    def test_missing_poppler(
        self, tmp_path: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Without pdfinfo/pdftoppm on PATH, reading a PDF is a DependencyError."""
        path = save(text_image(), tmp_path / "doc.pdf")
        empty_bin = tmp_path / "bin"
        empty_bin.mkdir()
        monkeypatch.setenv("PATH", str(empty_bin))
        with pytest.raises(DependencyError, match="poppler"):
            probe(path, settings=settings)


class TestOriginalsUntouched:
    """probe and load_pages never change an original, good or bad."""

    def test_bytes_and_mtime_unchanged(self, tmp_path: Path, settings: Settings) -> None:
        """After probing and loading, every file has its old bytes and mtime."""
        good = [
            save(text_image(), tmp_path / "a.jpg"),
            save(text_image(), tmp_path / "b.tiff", save_all=True, append_images=[text_image()]),
            save(text_image(), tmp_path / "c.pdf", save_all=True, append_images=[text_image()]),
        ]
        bad = tmp_path / "d.png"
        bad.write_text("not an image", encoding="utf-8")
        for path in [*good, bad]:
            os.utime(path, ns=(1_000_000_000, 1_000_000_000))  # a distinctive old mtime
        before = {path: fingerprint(path) for path in [*good, bad]}
        for path in good:
            assert pages_of(path, settings)
        with pytest.raises(UnsupportedFormatError):
            probe(bad, settings=settings)
        assert {path: fingerprint(path) for path in [*good, bad]} == before


class TestLazyPages:
    """load_pages hands out one page at a time."""

    def test_generator_numbers_and_count(self, tmp_path: Path, settings: Settings) -> None:
        """Pages come one by one with increasing numbers; their count matches the probe."""
        frames = [text_image(f"p{n}") for n in range(3)]
        path = save(frames[0], tmp_path / "doc.pdf", save_all=True, append_images=frames[1:])
        info = probe(path, settings=settings)
        assert inspect.isgenerator(load_pages(path, settings=settings, info=info))
        pages = load_pages(path, settings=settings, info=info)
        first = next(pages)
        assert first.number == 1
        rest = list(pages)
        assert [p.number for p in rest] == [2, 3]
        assert 1 + len(rest) == info.page_count

    def test_nothing_read_until_iterated(self, tmp_path: Path, settings: Settings) -> None:
        """Calling load_pages does no work; problems surface when the first page is asked for."""
        pages = load_pages(tmp_path / "not-yet.png", settings=settings)
        with pytest.raises(FileNotFoundError):
            next(pages)

    def test_probes_when_no_info(self, tmp_path: Path, settings: Settings) -> None:
        """Without an info, load_pages validates the file itself."""
        path = tmp_path / "empty.png"
        path.write_bytes(b"")
        with pytest.raises(EmptyFileError):
            list(load_pages(path, settings=settings))

    def test_source_info_is_frozen(self, tmp_path: Path, settings: Settings) -> None:
        """SourceInfo is an immutable value."""
        info = probe(save(text_image(), tmp_path / "a.png"), settings=settings)
        assert isinstance(info, SourceInfo)
        with pytest.raises(AttributeError):
            info.size = 1  # type: ignore[misc]
