"""hOCR 1.2: ``ocr_page`` per page, ``ocr_carea``/``ocr_par``, ``ocr_line``, ``ocrx_word``.

Lines and words carry ``bbox`` and ``x_wconf``. The lines of a page go in one content area
and paragraph (ocrwatch does not segment paragraphs); readers such as OCRmyPDF's hOCR parser
look for lines inside paragraphs. Boxes are in pixels of the page as loaded (a PDF page
rasterized at ``pdf_dpi``), confidences 0-100. Lines without a box (an engine that returns
plain text) are left out: hOCR elements without a position would give viewers and PDF
renderers nothing to place.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

from ocrwatch._version import __version__
from ocrwatch.engines.wordboxes import line_words

if TYPE_CHECKING:
    from ocrwatch.engines.base import PageResult, PixelBox
    from ocrwatch.recognition.pipeline import DocumentResult

__all__ = ["render_hocr"]

_XHTML = "http://www.w3.org/1999/xhtml"
_DOCTYPE = (
    '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN" '
    '"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">\n'
)


def _bbox(box: PixelBox) -> str:
    return "bbox {} {} {} {}".format(*box)


def _wconf(confidence: float | None) -> str:
    return "" if confidence is None else f"; x_wconf {round(confidence * 100)}"


def render_hocr(result: DocumentResult) -> bytes:
    """Return the document as an hOCR (XHTML) file, UTF-8."""
    lang = result.languages[0] if result.languages else "eng"
    html = ET.Element("html", {"xmlns": _XHTML, "xml:lang": lang, "lang": lang})
    head = ET.SubElement(html, "head")
    ET.SubElement(head, "title").text = result.source.path.name
    content_type = {"http-equiv": "Content-Type", "content": "text/html;charset=utf-8"}
    ET.SubElement(head, "meta", content_type)
    ET.SubElement(head, "meta", {"name": "ocr-system", "content": f"ocrwatch {__version__}"})
    caps = "ocr_page ocr_carea ocr_par ocr_line ocrx_word ocrp_wconf"
    ET.SubElement(head, "meta", {"name": "ocr-capabilities", "content": caps})
    body = ET.SubElement(html, "body")
    for page in result.pages:
        _page(body, page.number, page.result, image=result.source.path.name)
    body_xml = ET.tostring(html, encoding="unicode")
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + _DOCTYPE + body_xml + "\n").encode()


def _page(body: ET.Element, p: int, res: PageResult, *, image: str) -> None:
    """Add one ocr_page; its lines go in one ocr_carea/ocr_par (hOCR readers expect them)."""
    title = f'image "{image}"; {_bbox((0, 0, res.width, res.height))}; ppageno {p - 1}'
    div = ET.SubElement(body, "div", {"class": "ocr_page", "id": f"page_{p}", "title": title})
    lines = [ln for ln in res.lines if ln.box is not None]
    if not lines:
        return
    boxes = [ln.box for ln in lines if ln.box is not None]
    area = (min(b[0] for b in boxes), min(b[1] for b in boxes),
            max(b[2] for b in boxes), max(b[3] for b in boxes))  # fmt: skip
    carea = ET.SubElement(div, "div", {"class": "ocr_carea", "id": f"block_{p}",
                                       "title": _bbox(area)})  # fmt: skip
    par = ET.SubElement(carea, "p", {"class": "ocr_par", "id": f"par_{p}", "title": _bbox(area)})
    for n, line in enumerate(lines, start=1):
        assert line.box is not None
        span = ET.SubElement(
            par,
            "span",
            {"class": "ocr_line", "id": f"line_{p}_{n}",
             "title": _bbox(line.box) + _wconf(line.confidence)},
        )  # fmt: skip
        for k, word in enumerate(line_words(line), start=1):
            w = ET.SubElement(
                span,
                "span",
                {"class": "ocrx_word", "id": f"word_{p}_{n}_{k}",
                 "title": _bbox(word.box) + _wconf(word.confidence)},
            )  # fmt: skip
            w.text = word.text
            w.tail = " "
