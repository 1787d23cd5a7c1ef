"""ALTO 4 (v4.2): Page, PrintSpace, one TextBlock per page, TextLine, String (WC) and SP.

Measurements are in pixels of the page as loaded (``MeasurementUnit`` pixel); word
confidence ``WC`` is 0-1. Lines without a box are left out (ALTO positions are what
archives want from it).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING

from ocrwatch._version import __version__
from ocrwatch.engines.wordboxes import line_words

if TYPE_CHECKING:
    from ocrwatch.engines.base import PixelBox
    from ocrwatch.recognition.pipeline import DocumentResult

__all__ = ["ALTO_NS", "render_alto"]

ALTO_NS = "http://www.loc.gov/standards/alto/ns-v4#"
_SCHEMA = "http://www.loc.gov/standards/alto/v4/alto-4-2.xsd"
_XSI = "http://www.w3.org/2001/XMLSchema-instance"


def _pos(box: PixelBox) -> dict[str, str]:
    left, top, right, bottom = box
    return {
        "HPOS": str(left),
        "VPOS": str(top),
        "WIDTH": str(right - left),
        "HEIGHT": str(bottom - top),
    }


def _union(boxes: list[PixelBox]) -> PixelBox:
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


def _description(root: ET.Element, result: DocumentResult) -> None:
    desc = ET.SubElement(root, "Description")
    ET.SubElement(desc, "MeasurementUnit").text = "pixel"
    info = ET.SubElement(desc, "sourceImageInformation")
    ET.SubElement(info, "fileName").text = result.source.path.name
    proc = ET.SubElement(desc, "OCRProcessing", {"ID": "OCR_0"})
    step = ET.SubElement(proc, "ocrProcessingStep")
    sw = ET.SubElement(step, "processingSoftware")
    ET.SubElement(sw, "softwareName").text = "ocrwatch"
    ET.SubElement(sw, "softwareVersion").text = __version__


def render_alto(result: DocumentResult) -> bytes:
    """Return the document as an ALTO 4 XML file, UTF-8."""
    ET.register_namespace("", ALTO_NS)
    ET.register_namespace("xsi", _XSI)
    root = ET.Element(f"{{{ALTO_NS}}}alto", {f"{{{_XSI}}}schemaLocation": f"{ALTO_NS} {_SCHEMA}"})
    _description(root, result)
    layout = ET.SubElement(root, "Layout")
    for page in result.pages:
        p, res = page.number, page.result
        el = ET.SubElement(
            layout,
            "Page",
            {"ID": f"page_{p}", "PHYSICAL_IMG_NR": str(p),
             "WIDTH": str(res.width), "HEIGHT": str(res.height)},
        )  # fmt: skip
        space = ET.SubElement(el, "PrintSpace", _pos((0, 0, res.width, res.height)))
        boxed = [ln for ln in res.lines if ln.box is not None]
        if not boxed:
            continue
        block_box = _union([ln.box for ln in boxed if ln.box is not None])
        block = ET.SubElement(space, "TextBlock", {"ID": f"block_{p}", **_pos(block_box)})
        for n, line in enumerate(boxed, start=1):
            assert line.box is not None
            tl = ET.SubElement(block, "TextLine", {"ID": f"line_{p}_{n}", **_pos(line.box)})
            for k, word in enumerate(line_words(line), start=1):
                if k > 1:
                    ET.SubElement(tl, "SP")
                attrs = {"ID": f"string_{p}_{n}_{k}", "CONTENT": word.text, **_pos(word.box)}
                if word.confidence is not None:
                    attrs["WC"] = f"{word.confidence:.3f}"
                ET.SubElement(tl, "String", attrs)
    body = ET.tostring(root, encoding="unicode")
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n").encode()
