"""hOCR 1.2: one ``ocr_page`` per page, ``ocr_line`` and ``ocrx_word`` with bbox and x_wconf.

Boxes are in pixels of the page as loaded (a PDF page rasterized at ``pdf_dpi``), confidences
0-100. Lines without a box (an engine that returns plain text) are left out: hOCR elements
without a position would give viewers and PDF renderers nothing to place.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

from ocrwatch import __version__
from ocrwatch.engines.wordboxes import line_words

if TYPE_CHECKING:
    from ocrwatch.engines.base import PixelBox
    from ocrwatch.pipeline import DocumentResult

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
    caps = "ocr_page ocr_line ocrx_word ocrp_wconf"
    ET.SubElement(head, "meta", {"name": "ocr-capabilities", "content": caps})
    body = ET.SubElement(html, "body")
    for page in result.pages:
        p = page.number
        res = page.result
        title = f'image "{result.source.path.name}"; {_bbox((0, 0, res.width, res.height))}'
        attrs = {"class": "ocr_page", "id": f"page_{p}", "title": f"{title}; ppageno {p - 1}"}
        div = ET.SubElement(body, "div", attrs)
        n = 0
        for line in res.lines:
            if line.box is None:
                continue
            n += 1
            span = ET.SubElement(
                div,
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
    body_xml = ET.tostring(html, encoding="unicode")
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + _DOCTYPE + body_xml + "\n").encode()
