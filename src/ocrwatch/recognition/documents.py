"""Open an image or PDF, check that it is safe and complete, hand out its pages one at a time.

The format comes from the content, never the name (formats.py). Pages: every TIFF frame,
every GIF/WebP frame, a JPEG's first image (not MPO previews), every PDF page rasterized by
poppler one at a time; out come RGB or L images, EXIF orientation applied, 8 bits. Refusals
are InputError subclasses naming the file; an OSError with an errno (a vanished share) is
re-raised unchanged, since waiting may fix it. Pillow's decompression-bomb limit is set to
``max_pixels`` under a lock around each decode, warnings made errors.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import shutil
import stat
import struct
import threading
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pdf2image
import pdf2image.exceptions as pdf_errors
import structlog
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

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
from ocrwatch.recognition.formats import (
    HEAD_BYTES,
    SUFFIXES,
    SUPPORTED_SUFFIXES,
    DocumentFormat,
    not_supported,
)
from ocrwatch.settings.model import Settings

__all__ = [
    "MIN_PAGE_SIDE",
    "SUPPORTED_SUFFIXES",
    "DocumentFormat",
    "Page",
    "SourceInfo",
    "load_pages",
    "probe",
]

log = structlog.get_logger()


#: A page narrower or lower than this many pixels cannot hold readable text.
MIN_PAGE_SIDE = 8

# Pillow format name -> ours. MPO is what Pillow calls camera JPEGs with extra images.
_PIL_FORMATS: Mapping[str, DocumentFormat] = {
    "JPEG": DocumentFormat.JPEG,
    "MPO": DocumentFormat.JPEG,
    "PNG": DocumentFormat.PNG,
    "BMP": DocumentFormat.BMP,
    "GIF": DocumentFormat.GIF,
    "WEBP": DocumentFormat.WEBP,
    "TIFF": DocumentFormat.TIFF,
}
# The JPEG opener itself returns MPO images: "MPO" is not an opener name of its own.
_PIL_ALLOWED = tuple(name for name in _PIL_FORMATS if name != "MPO")

# Exceptions Pillow's plugins raise on malformed data besides OSError.
_DECODE_ERRORS = (
    ValueError,
    SyntaxError,
    EOFError,
    struct.error,
    IndexError,
    TypeError,
    KeyError,
    ZeroDivisionError,
)

# Acrobat accepts a PDF only when %%EOF is within its last 1024 bytes; a PDF without it is
# almost always still being written or was cut short.
_PDF_TAIL_BYTES = 1024
_MIN_PLAUSIBLE_DPI = 50.0
_MAX_PLAUSIBLE_DPI = 4800.0

_PILLOW_LOCK = threading.RLock()


@dataclass(frozen=True)
class SourceInfo:
    """What :func:`probe` learned about an input file."""

    path: Path
    size: int
    sha256: str
    format: str  # a DocumentFormat value
    page_count: int


@dataclass(frozen=True, eq=False)
class Page:
    """One page of a document: 1-based number, RGB or L image (EXIF applied), DPI if known."""

    number: int
    image: Image.Image
    dpi: float | None


def probe(path: Path | str, *, settings: Settings, decode: bool = True) -> SourceInfo:
    """Read the file once (size, sha256), validate it and decode it fully; return its SourceInfo.

    Images: every page is decoded, unless ``decode`` is False (the pages are about to be
    loaded anyway: one decode per attempt; sizes and page counts are still checked first).
    PDFs: page count, encryption and page sizes are checked with ``pdfinfo`` (cheap;
    rasterizing waits for :func:`load_pages`). Never writes to the file.

    Raises EmptyFileError, UnsupportedFormatError, CorruptFileError, ImageTooLargeError,
    ImageTooSmallError, EncryptedPdfError (all InputError), DependencyError when poppler is
    missing, and OSError unchanged for I/O failures (file vanished, EIO).
    """
    path = Path(path)
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise UnsupportedFormatError("not a regular file", path=path)
    if st.st_size == 0:
        raise EmptyFileError("file is empty (0 bytes)", path=path)
    if st.st_size > settings.max_file_bytes:
        raise ImageTooLargeError(
            f"file has {st.st_size} bytes, more than max_file_bytes ({settings.max_file_bytes})",
            path=path,
        )
    size, sha256, head, tail = _read_once(path, limit=settings.max_file_bytes)

    if _is_pdf(head):
        fmt = DocumentFormat.PDF
        page_count = _probe_pdf(path, tail=tail, settings=settings)
    else:
        fmt, page_count = _probe_image(path, head=head, settings=settings, decode=decode)

    suffix = path.suffix.lower()
    if suffix not in SUFFIXES[fmt]:
        log.warning(
            "input.extension_mismatch", path=str(path), extension=suffix or None, format=str(fmt)
        )
    info = SourceInfo(path=path, size=size, sha256=sha256, format=fmt, page_count=page_count)
    log.debug("input.probed", path=str(path), format=str(fmt), pages=page_count, size=size)
    return info


def load_pages(
    path: Path | str,
    *,
    settings: Settings,
    info: SourceInfo | None = None,
    pages: tuple[int, int] | None = None,
) -> Iterator[Page]:
    """Yield the document's pages one at a time (lazily); probe first unless ``info`` is given.

    ``pages`` (first, last; 1-based, inclusive) limits the pages read. Raises the same
    errors as :func:`probe`, at the page where the problem shows.
    """
    path = Path(path)
    if info is None:
        info = probe(path, settings=settings)
    first, last = pages or (1, info.page_count)
    numbers = range(max(first, 1), min(last, info.page_count) + 1)
    if info.format == DocumentFormat.PDF:
        yield from _pdf_pages(path, numbers=numbers, settings=settings)
    else:
        yield from _image_pages(path, numbers=numbers, settings=settings)


# --- reading --------------------------------------------------------------------------------


def _read_once(path: Path, *, limit: int) -> tuple[int, str, bytes, bytes]:
    """Return size, sha256, the first bytes and the last bytes, reading the file once."""
    digest = hashlib.sha256()
    head = b""
    tail = b""
    size = 0
    with path.open("rb") as fh:  # read-only: the original is never opened for writing
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
            if len(head) < HEAD_BYTES:
                head += chunk[: HEAD_BYTES - len(head)]
            tail = (tail + chunk)[-_PDF_TAIL_BYTES:]
            size += len(chunk)
            if size > limit:  # it grew after stat
                raise ImageTooLargeError(
                    f"file has more than max_file_bytes ({limit}) bytes", path=path
                )
    if size == 0:
        raise EmptyFileError("file is empty (0 bytes)", path=path)
    return size, digest.hexdigest(), head, tail


def _is_pdf(head: bytes) -> bool:
    # The PDF header may follow some junk; poppler (like Acrobat) looks in the first 1024 bytes.
    return b"%PDF-" in head[:1024]


@contextmanager
def _pillow_limits(max_pixels: int) -> Iterator[None]:
    """Run one Pillow step with our pixel limit, bomb warnings as errors and no truncated loads."""
    with _PILLOW_LOCK, warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        saved_pixels = Image.MAX_IMAGE_PIXELS
        saved_truncated = ImageFile.LOAD_TRUNCATED_IMAGES
        Image.MAX_IMAGE_PIXELS = max_pixels
        ImageFile.LOAD_TRUNCATED_IMAGES = False
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved_pixels
            ImageFile.LOAD_TRUNCATED_IMAGES = saved_truncated


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


@contextmanager
def _decoding(path: Path, *, max_pixels: int, page: int | None = None) -> Iterator[None]:
    """Translate Pillow's failures into our InputErrors; let real I/O errors through."""
    where = "" if page is None else f"page {page}: "
    try:
        yield
    except InputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        found = re.search(r"\((\d+) pixels\)", str(exc))
        pixels = f"{int(found.group(1))} pixels" if found else "too many pixels"
        raise ImageTooLargeError(
            f"{where}image has {pixels}, more than max_pixels ({max_pixels})", path=path
        ) from exc
    except OSError as exc:
        if exc.errno is not None:  # a real I/O failure, not a decode failure: may pass
            raise
        raise CorruptFileError(f"{where}cannot decode image: {_one_line(exc)}", path=path) from exc
    except _DECODE_ERRORS as exc:
        raise CorruptFileError(f"{where}cannot decode image: {_one_line(exc)}", path=path) from exc


def _check_size(
    path: Path, size: tuple[int, int], *, settings: Settings, page: int, unit: str = "image"
) -> None:
    width, height = size
    if width * height > settings.max_pixels:
        raise ImageTooLargeError(
            f"page {page}: {unit} is {width}x{height} = {width * height} pixels, more than "
            f"max_pixels ({settings.max_pixels})",
            path=path,
        )
    if min(width, height) < MIN_PAGE_SIDE:
        raise ImageTooSmallError(
            f"page {page}: {unit} is {width}x{height} pixels, too small to hold text "
            f"(needs at least {MIN_PAGE_SIDE}x{MIN_PAGE_SIDE})",
            path=path,
        )


# --- images ---------------------------------------------------------------------------------


def _open_image(path: Path, *, head: bytes, settings: Settings) -> ImageFile.ImageFile:
    """Open (header only) with Pillow restricted to our formats; caller holds _pillow_limits."""
    with _decoding(path, max_pixels=settings.max_pixels):
        try:
            return Image.open(path, formats=_PIL_ALLOWED)
        except UnidentifiedImageError as exc:
            raise not_supported(path, head=head) from exc


def _frame_count(image: ImageFile.ImageFile) -> int:
    if _PIL_FORMATS[str(image.format)] is DocumentFormat.JPEG:
        return 1
    return int(getattr(image, "n_frames", 1))


def _probe_image(
    path: Path, *, head: bytes, settings: Settings, decode: bool = True
) -> tuple[DocumentFormat, int]:
    with _pillow_limits(settings.max_pixels):
        image = _open_image(path, head=head, settings=settings)
        with image:
            fmt = _PIL_FORMATS[str(image.format)]
            with _decoding(path, max_pixels=settings.max_pixels):
                count = _frame_count(image)
            if count > settings.max_pages:
                raise ImageTooLargeError(
                    f"image has {count} pages, more than max_pages ({settings.max_pages})",
                    path=path,
                )
            for index in range(count):
                with _decoding(path, max_pixels=settings.max_pixels, page=index + 1):
                    image.seek(index)
                    _check_size(path, image.size, settings=settings, page=index + 1)
                    if decode:
                        image.load()
    return fmt, count


def _image_pages(path: Path, *, numbers: range, settings: Settings) -> Iterator[Page]:
    with _pillow_limits(settings.max_pixels):
        image = _open_image(path, head=b"", settings=settings)
    with image:
        for number in numbers:
            index = number - 1
            # The lock is held per frame, never across a yield.
            with (
                _pillow_limits(settings.max_pixels),
                _decoding(path, max_pixels=settings.max_pixels, page=number),
            ):
                image.seek(index)
                _check_size(path, image.size, settings=settings, page=number)
                image.load()
                dpi = _plausible_dpi(image.info.get("dpi"))
                page_image = _to_rgb_or_l(_upright(image, path=path))
            _set_dpi(page_image, dpi)
            yield Page(number=number, image=page_image, dpi=dpi)


def _upright(image: Image.Image, *, path: Path) -> Image.Image:
    """Return a copy with the EXIF orientation applied (unchanged if the EXIF is unreadable)."""
    try:
        return ImageOps.exif_transpose(image)
    except (*_DECODE_ERRORS, OSError) as exc:
        if isinstance(exc, OSError) and exc.errno is not None:
            raise
        log.warning("input.exif_unreadable", path=str(path), error=_one_line(exc))
        return image.copy()


def _plausible_dpi(value: Any) -> float | None:
    try:
        x, y = float(value[0]), float(value[1])
    except (TypeError, ValueError, IndexError, KeyError):
        return None
    dpi = (x + y) / 2  # faxes are anisotropic (204x196); the mean is close enough for OCR
    if not math.isfinite(dpi) or not _MIN_PLAUSIBLE_DPI <= dpi <= _MAX_PLAUSIBLE_DPI:
        return None
    return round(dpi, 1)


def _set_dpi(image: Image.Image, dpi: float | None) -> None:
    # Engines read image.info["dpi"] (Tesseract misreads pages without one); never pass on
    # an implausible value such as (1, 1).
    if dpi is None:
        image.info.pop("dpi", None)
    else:
        image.info["dpi"] = (dpi, dpi)


def _to_rgb_or_l(image: Image.Image) -> Image.Image:
    """Return an RGB or L version: transparency on white, palettes expanded, 16-bit scaled."""
    mode = image.mode
    if mode in ("RGB", "L"):
        return image
    if mode == "1":
        return image.convert("L")
    if mode == "P" and "transparency" not in image.info:
        return image.convert("RGB")
    if mode in ("LA", "La"):
        la = image.convert("LA")
        out = Image.new("L", la.size, 255)
        out.paste(la.getchannel("L"), mask=la.getchannel("A"))
        return out
    if mode in ("P", "PA", "RGBA", "RGBa"):
        rgba = image.convert("RGBA")
        out = Image.new("RGB", rgba.size, "white")
        out.paste(rgba.convert("RGB"), mask=rgba.getchannel("A"))
        return out
    if mode.startswith("I") or mode == "F":
        return _scale_to_8bit(image)
    return image.convert("RGB")  # CMYK, YCbCr, LAB, HSV, RGBX


def _scale_to_8bit(image: Image.Image) -> Image.Image:
    """Map a 16/32-bit or float image to L: [0, max] (or [min, max] when negative) to [0, 255]."""
    data = np.asarray(image).astype(np.float32)
    low = min(float(data.min()), 0.0)
    high = float(data.max())
    if high <= low:
        return Image.new("L", image.size, 255 if high > 0 else 0)
    if low == 0.0 and high <= 255.0 and image.mode != "F":
        scaled = data  # 16-bit container holding 8-bit values
    else:
        scaled = (data - low) * (255.0 / (high - low))
    return Image.fromarray(np.clip(scaled + 0.5, 0, 255).astype(np.uint8))


# --- PDFs -----------------------------------------------------------------------------------


def _require_poppler() -> None:
    missing = [tool for tool in ("pdfinfo", "pdftoppm") if shutil.which(tool) is None]
    if missing:
        raise DependencyError(
            f"{' and '.join(missing)} not found on PATH: install poppler-utils to read PDFs"
        )


def _poppler_timeout(settings: Settings) -> int:
    return max(1, math.ceil(settings.file_timeout))


def _pdf_failure(path: Path, exc: Exception, *, settings: Settings, page: int | None) -> Exception:
    """Map a pdf2image failure to our tree (or to the OSError it really is)."""
    where = "" if page is None else f"page {page}: "
    if isinstance(exc, pdf_errors.PDFInfoNotInstalledError):
        return DependencyError("pdfinfo cannot be run: install poppler-utils to read PDFs")
    if isinstance(exc, pdf_errors.PDFPopplerTimeoutError):
        return ImageTooLargeError(
            f"{where}poppler took longer than file_timeout ({settings.file_timeout:g} s)",
            path=path,
        )
    detail = str(exc)
    if "password" in detail.lower():
        return EncryptedPdfError("PDF needs a password", path=path)
    if "Couldn't open file" in detail:
        os.stat(path)  # vanished: FileNotFoundError propagates as the I/O error it is
        if not os.access(path, os.R_OK):
            return PermissionError(13, "Permission denied", str(path))
    lines = [ln.strip() for ln in detail.splitlines()[1:] if ln.strip()]
    reason = lines[0] if lines else _one_line(exc)
    return CorruptFileError(f"{where}cannot read PDF: {reason}", path=path)


_PDF_ERRORS = (
    pdf_errors.PopplerNotInstalledError,
    pdf_errors.PDFPageCountError,
    pdf_errors.PDFSyntaxError,
    pdf_errors.PDFPopplerTimeoutError,
)
_PAGE_SIZE = re.compile(r"^Page\s+(\d+) size$")
_POINTS = re.compile(r"^([\d.]+) x ([\d.]+) pts")


def _probe_pdf(path: Path, *, tail: bytes, settings: Settings) -> int:
    _require_poppler()
    if b"%%EOF" not in tail:
        raise CorruptFileError(
            "PDF is truncated (no %%EOF in its last 1024 bytes); still being written?",
            path=path,
        )
    try:
        # One call: -l clamps to the real page count, and one past the limit is enough to tell.
        info = pdf2image.pdfinfo_from_path(
            str(path),
            first_page=1,
            last_page=settings.max_pages + 1,
            timeout=_poppler_timeout(settings),
        )
    except _PDF_ERRORS as exc:
        raise _pdf_failure(path, exc, settings=settings, page=None) from exc
    pages = int(info["Pages"])
    if pages < 1:
        raise CorruptFileError("PDF has no pages", path=path)
    if pages > settings.max_pages:
        raise ImageTooLargeError(
            f"PDF has {pages} pages, more than max_pages ({settings.max_pages})", path=path
        )
    dpi = settings.pdf_dpi
    for key, value in info.items():
        key_match = _PAGE_SIZE.match(str(key))
        size_match = _POINTS.match(str(value))
        if key_match and size_match:
            width = math.ceil(float(size_match.group(1)) * dpi / 72)
            height = math.ceil(float(size_match.group(2)) * dpi / 72)
            _check_size(
                path,
                (width, height),
                settings=settings,
                page=int(key_match.group(1)),
                unit=f"page at {dpi} dpi",
            )
    return pages


def _pdf_pages(path: Path, *, numbers: range, settings: Settings) -> Iterator[Page]:
    _require_poppler()
    dpi = settings.pdf_dpi
    for number in numbers:
        with (
            _pillow_limits(settings.max_pixels),
            _decoding(path, max_pixels=settings.max_pixels, page=number),
        ):
            try:
                images = pdf2image.convert_from_path(
                    str(path),
                    dpi=dpi,
                    first_page=number,
                    last_page=number,
                    timeout=_poppler_timeout(settings),
                )
            except _PDF_ERRORS as exc:
                raise _pdf_failure(path, exc, settings=settings, page=number) from exc
            if len(images) != 1:
                raise CorruptFileError(f"page {number}: poppler could not render it", path=path)
            raster = images[0]
            _check_size(path, raster.size, settings=settings, page=number)
            raster.load()
            page_image = _to_rgb_or_l(raster)
        _set_dpi(page_image, float(dpi))
        yield Page(number=number, image=page_image, dpi=float(dpi))
