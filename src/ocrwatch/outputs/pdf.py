"""Searchable PDF: the original pages untouched, an invisible text layer on each one.

OCRmyPDF's renderer (fpdf2) draws one invisible word per box; pikepdf lays each text page
over its page (images, vectors and sizes untouched: the file grows by the text layer only);
img2pdf wraps an image input without recompression (JPEG as is, PNG/TIFF lossless). Pages
that already carry text get no second layer. A PDF made from an image is PDF/A-2b when
pikepdf's checker accepts it (else a plain PDF, logged as ``pdf.not_pdfa``); a PDF input
keeps its own version.
"""

from __future__ import annotations

import inspect
import io
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pikepdf
import structlog
from PIL import Image, ImageOps, ImageSequence

from ocrwatch.exceptions import DependencyError

if TYPE_CHECKING:
    from ocrmypdf import OcrElement

    from ocrwatch.engines.base import PageResult
    from ocrwatch.recognition.pipeline import DocumentResult

__all__ = ["RENDERER", "check_renderer", "existing_text_pages", "image_pdf", "render_pdf"]

log = structlog.get_logger()

# Text layer units: one PDF unit per pixel; add_overlay scales the layer onto the page.
_LAYER_DPI = 72.0

#: OCRmyPDF's text-layer renderer, which its documented API does not include (hence
#: ``ocrmypdf<18``): name -> (parameters ocrwatch passes, what for). The page tree
#: (``OcrElement``) is public. ``tests/test_library_contracts.py`` checks these.
RENDERER: dict[str, tuple[tuple[str, ...], str]] = {
    "ocrmypdf.font.MultiFontManager": ((), "to choose a font for each word's glyphs"),
    "ocrmypdf.fpdf_renderer.Fpdf2MultiPageRenderer": (
        ("pages_data", "multi_font_manager"),
        "to draw the invisible text layer, one word per box",
    ),
}


def render_pdf(result: DocumentResult) -> bytes:
    """Return the source with an invisible text layer on each page, as PDF bytes.

    Raises OSError when the source cannot be read, ValueError when its pages do not match
    the result's.
    """
    source = result.source.path
    skip: set[int] = set()
    if result.source.format == "pdf":
        base = pikepdf.open(source)
        skip = existing_text_pages(source)
    else:
        data = image_pdf(source, fmt=result.source.format, pages=len(result.pages))
        base = pikepdf.open(io.BytesIO(data))
    with base:
        if len(base.pages) < len(result.pages):
            raise ValueError(f"{source}: {len(base.pages)} pages, {len(result.pages)} read")
        with pikepdf.open(io.BytesIO(_text_layer(result))) as layer:
            for record, text_page in zip(result.pages, layer.pages, strict=True):
                page = base.pages[record.number - 1]
                if record.number in skip:
                    log.info("pdf.page_has_text", path=str(source), page=record.number)
                    continue
                if record.result.lines:
                    form = base.copy_foreign(text_page.as_form_xobject())
                    page.add_overlay(form, pikepdf.Rectangle(page.cropbox))
        if result.source.format == "pdf":
            out = io.BytesIO()
            base.save(out)
            return out.getvalue()
        return _pdfa_or_plain(base, source=source)


def _pdfa_or_plain(pdf: pikepdf.Pdf, *, source: Path) -> bytes:
    """Return ``pdf`` as PDF/A-2b when pikepdf's checker passes the result, else as it is."""
    from pikepdf.pdfa import PdfaError, save

    plain = io.BytesIO()
    pdf.save(plain)
    out = io.BytesIO()
    # pikepdf.pdfa.save prepares the document in memory (output intent, XMP), writes it,
    # reads it back and validates it; on a fail nothing is written and the plain file stands.
    with pikepdf.open(io.BytesIO(plain.getvalue())) as copy:
        try:
            save(copy, out, "2b")
        except (PdfaError, ValueError) as exc:
            log.info("pdf.not_pdfa", path=str(source), reason=str(exc)[:300])
            return plain.getvalue()
    return out.getvalue()


def check_renderer() -> tuple[Any, Any]:
    """Return OCRmyPDF's MultiFontManager and Fpdf2MultiPageRenderer, checked (:data:`RENDERER`).

    Raises DependencyError naming what changed when this OCRmyPDF lacks one of them or its
    parameters are no longer the ones ocrwatch passes.
    """
    import importlib

    found = []
    for dotted, (params, why) in RENDERER.items():
        module_name, _, name = dotted.rpartition(".")
        try:
            obj = getattr(importlib.import_module(module_name), name)
        except (ImportError, AttributeError) as exc:
            raise _renderer_changed(dotted, why) from exc
        if not set(params) <= set(inspect.signature(obj).parameters):
            raise _renderer_changed(f"{dotted}({', '.join(params)})", why)
        found.append(obj)
    font_manager, renderer = found
    if not callable(getattr(renderer, "render", None)):
        raise _renderer_changed("Fpdf2MultiPageRenderer.render", "to write the text layer")
    return font_manager, renderer


def _renderer_changed(what: str, why: str) -> DependencyError:
    from importlib.metadata import version

    return DependencyError(
        f"ocrmypdf {version('ocrmypdf')} no longer has {what}; ocrwatch's searchable PDF "
        f"needs it {why}. ocrwatch was written against ocrmypdf 17.13: "
        "pip install 'ocrmypdf>=17.13,<18'"
    )


def _text_layer(result: DocumentResult) -> bytes:
    """Return a PDF of invisible text, one page per recognized page, 1 unit per pixel."""
    font_manager, renderer = check_renderer()
    fonts = font_manager()  # OCRmyPDF's own fonts (its package data), then the system's
    pages = [(r.number - 1, _page_tree(r.result), _LAYER_DPI) for r in result.pages]
    with tempfile.TemporaryDirectory(prefix="ocrwatch-pdf-") as tmp:
        path = Path(tmp) / "layer.pdf"
        renderer(pages_data=pages, multi_font_manager=fonts).render(path)
        return path.read_bytes()


def _page_tree(page: PageResult) -> OcrElement:
    """Return the page's lines and words as OCRmyPDF's element tree (pixels, top-left)."""
    from ocrmypdf import BoundingBox, OcrClass, OcrElement  # its public API

    from ocrwatch.engines.wordboxes import line_words

    def bbox(box: tuple[int, int, int, int]) -> BoundingBox:
        return BoundingBox(left=box[0], top=box[1], right=box[2], bottom=box[3])

    lines = []
    for line in page.lines:
        words = [
            OcrElement(ocr_class=OcrClass.WORD, bbox=bbox(w.box), text=w.text,
                       confidence=w.confidence)
            for w in line_words(line)
            if w.box[2] > w.box[0] and w.box[3] > w.box[1]
        ]  # fmt: skip
        if line.box is not None and words:
            lines.append(OcrElement(ocr_class=OcrClass.LINE, bbox=bbox(line.box), children=words))
    size = (0, 0, max(page.width, 1), max(page.height, 1))
    return OcrElement(ocr_class=OcrClass.PAGE, bbox=bbox(size), children=lines)


def image_pdf(path: Path, *, fmt: str, pages: int) -> bytes:
    """Return an image file as a PDF of ``pages`` pages, without recompression where possible.

    ``fmt`` is the format ``recognition.documents.probe`` found (``jpeg``, ``png``, ...).
    """
    import img2pdf

    if fmt in ("png", "tiff") or (fmt == "jpeg" and _plain_jpeg(path)):
        try:
            data = bytes(img2pdf.convert(str(path)))
            if _page_count(data) == pages:
                return data
        except (img2pdf.AlphaChannelError, img2pdf.ExifOrientationError, ValueError) as exc:
            log.info("pdf.lossless_fallback", path=str(path), reason=str(exc))
    frames = [_png(frame) for frame in _frames(path)][:pages]
    return bytes(img2pdf.convert(frames))


def _plain_jpeg(path: Path) -> bool:
    """True for a JPEG img2pdf embeds as it is (one image: no camera extras, no CMYK)."""
    with Image.open(path) as img:
        return img.format in ("JPEG", "MPO") and img.mode in ("L", "RGB")


def _frames(path: Path) -> list[Image.Image]:
    with Image.open(path) as img:
        frames = [ImageOps.exif_transpose(f.copy()) for f in ImageSequence.Iterator(img)]
        if img.format in ("JPEG", "MPO"):
            frames = frames[:1]  # MPO extras are previews, not pages (as in documents.py)
    return frames


def _png(frame: Image.Image) -> bytes:
    """Return ``frame`` as a PNG without alpha (transparency composited on white)."""
    if frame.mode in ("RGBA", "LA", "PA") or (frame.mode == "P" and "transparency" in frame.info):
        rgba = frame.convert("RGBA")
        flat = Image.new("RGB", rgba.size, "white")
        flat.paste(rgba, mask=rgba.getchannel("A"))
        frame = flat
    elif frame.mode not in ("1", "L", "RGB"):
        frame = frame.convert("RGB")
    buf = io.BytesIO()
    frame.save(buf, format="PNG")
    return buf.getvalue()


def _page_count(data: bytes) -> int:
    with pikepdf.open(io.BytesIO(data)) as pdf:
        return len(pdf.pages)


def existing_text_pages(path: Path) -> set[int]:
    """Return the 1-based numbers of the PDF's pages that already carry extractable text."""
    try:
        out = subprocess.run(
            ["pdftotext", "-q", "-enc", "UTF-8", str(path), "-"],
            capture_output=True,
            check=False,
            timeout=120,
        ).stdout.decode("utf-8", "replace")
    except (OSError, subprocess.TimeoutExpired):
        return set()
    return {n for n, text in enumerate(out.split("\f"), start=1) if text.strip()}
