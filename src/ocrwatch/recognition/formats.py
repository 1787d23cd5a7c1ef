"""What a file is: the formats ocrwatch reads (decided by content, not name), and what not.

:func:`not_supported` turns content ocrwatch cannot read into the error the user sees:
``corrupt_file`` when it starts like a format we read, else ``unsupported_format`` naming
what it looks like (plain text, a HEIC photo, a ZIP archive, only zero bytes, ...).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path

from PIL import Image

from ocrwatch.exceptions import CorruptFileError, InputError, UnsupportedFormatError

__all__ = ["HEAD_BYTES", "SUFFIXES", "SUPPORTED_SUFFIXES", "DocumentFormat", "not_supported"]

#: How much of a file's start is read to tell what it is.
HEAD_BYTES = 4096


class DocumentFormat(StrEnum):
    """The formats ocrwatch reads, as detected from a file's content."""

    JPEG = "jpeg"
    PNG = "png"
    BMP = "bmp"
    GIF = "gif"
    WEBP = "webp"
    TIFF = "tiff"
    PDF = "pdf"


SUFFIXES: Mapping[DocumentFormat, frozenset[str]] = {
    DocumentFormat.JPEG: frozenset({".jpg", ".jpeg"}),
    DocumentFormat.PNG: frozenset({".png"}),
    DocumentFormat.BMP: frozenset({".bmp"}),
    DocumentFormat.GIF: frozenset({".gif"}),
    DocumentFormat.WEBP: frozenset({".webp"}),
    DocumentFormat.TIFF: frozenset({".tif", ".tiff"}),
    DocumentFormat.PDF: frozenset({".pdf"}),
}

#: File name suffixes of the formats ocrwatch reads (lower case, with the dot).
SUPPORTED_SUFFIXES: frozenset[str] = frozenset().union(*SUFFIXES.values())


_SUPPORTED_MAGIC: tuple[tuple[bytes, int, DocumentFormat], ...] = (
    (b"\xff\xd8\xff", 0, DocumentFormat.JPEG),
    (b"\x89PNG\r\n\x1a\n", 0, DocumentFormat.PNG),
    (b"GIF87a", 0, DocumentFormat.GIF),
    (b"GIF89a", 0, DocumentFormat.GIF),
    (b"WEBP", 8, DocumentFormat.WEBP),
    (b"II*\x00", 0, DocumentFormat.TIFF),
    (b"MM\x00*", 0, DocumentFormat.TIFF),
    (b"II+\x00", 0, DocumentFormat.TIFF),
    (b"MM\x00+", 0, DocumentFormat.TIFF),
)

_OTHER_MAGIC: tuple[tuple[bytes, int, str], ...] = (
    (b"ftypheic", 4, "a HEIC photo"),
    (b"ftypheix", 4, "a HEIC photo"),
    (b"ftypmif1", 4, "a HEIF photo"),
    (b"ftypavif", 4, "an AVIF image"),
    (b"\x00\x00\x00\x0cjP  ", 0, "a JPEG 2000 image"),
    (b"PK\x03\x04", 0, "a ZIP archive (or an Office document)"),
    (b"\xd0\xcf\x11\xe0", 0, "an old Office document"),
    (b"{\\rtf", 0, "an RTF document"),
    (b"%!PS", 0, "a PostScript file"),
    (b"\x1f\x8b", 0, "a gzip archive"),
    (b"Rar!", 0, "a RAR archive"),
    (b"7z\xbc\xaf", 0, "a 7-Zip archive"),
    (b"\x7fELF", 0, "a program (ELF)"),
)


def not_supported(path: Path, *, head: bytes) -> InputError:
    """Return the error for content we cannot read: corrupt if it claims a format we read."""
    if not head:
        head = _read_head(path)
    suffix = path.suffix.lower() or "none"
    for magic, offset, fmt in _SUPPORTED_MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return CorruptFileError(
                f"content starts like {fmt.name} but cannot be decoded", path=path
            )
    if head[:2] == b"BM" and not _looks_like_text(head):
        return CorruptFileError("content starts like BMP but cannot be decoded", path=path)
    what, settled = _describe(path, head)
    return UnsupportedFormatError(
        f"content is {what}, not an image or PDF ocrwatch reads (extension {suffix})",
        path=path,
        settled=settled,
    )


def _read_head(path: Path) -> bytes:
    with path.open("rb") as fh:
        return fh.read(HEAD_BYTES)


def _describe(path: Path, head: bytes) -> tuple[str, bool]:
    """Return what the content looks like, and whether that is final (not a write in progress)."""
    if head and not head.strip(b"\x00"):
        return "only zero bytes so far (a writer that sets the size first, still writing?)", False
    for magic, offset, what in _OTHER_MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return what, True
    if _looks_like_text(head):
        start = head.lstrip().lower()
        if start.startswith((b"<!doctype html", b"<html")):
            return "an HTML page", True
        if start.startswith((b"<?xml", b"<svg")):
            return "XML (or SVG)", True
        return "plain text", True
    try:  # Name other image formats Pillow knows (PSD, ICO, PPM, ...); only for the message.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # opening reads the header only: no pixels
            with Image.open(path) as other:
                return f"a {other.format} image", True
    except Exception:  # any failure only means we cannot name it
        pass
    return f"unrecognized binary data (starts with {head[:8].hex(' ')})", False


def _looks_like_text(head: bytes) -> bool:
    if not head or b"\x00" in head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # not just a character cut at the end of the sample
            return False
        text = head[: exc.start].decode("utf-8")
    printable = sum(ch.isprintable() or ch in "\t\r\n\f" for ch in text)
    return bool(text) and printable >= 0.95 * len(text)
