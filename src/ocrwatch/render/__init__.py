"""Renderers: a recognized document as hOCR, ALTO 4 or a searchable PDF (pure, bytes out)."""

from __future__ import annotations

from ocrwatch.render.alto import render_alto
from ocrwatch.render.hocr import render_hocr
from ocrwatch.render.pdf import render_pdf

__all__ = ["render_alto", "render_hocr", "render_pdf"]
