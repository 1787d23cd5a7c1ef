"""Map boxes from a preprocessed page back to the page as loaded (crop, deskew, upscale undone).

Preprocessing may flatten a photographed sheet (a perspective warp), rotate the page to remove
its skew and upscale it; engines report boxes on that prepared image. Searchable PDFs, hOCR
and ALTO need them on the original page, so :mod:`~.preprocess` records the projective
transform from prepared pixels to original pixels as a 3x3 matrix (:data:`Matrix`, row-major)
and :func:`map_page` applies it to every line and word box: each box's four corners are
mapped and the axis-aligned box around them is kept, clipped to the page.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np
import numpy.typing as npt

from ocrwatch.engines.base import Line, PageResult, PixelBox, Word

__all__ = [
    "IDENTITY",
    "Matrix",
    "compose",
    "invert",
    "map_box",
    "map_page",
    "map_point",
    "rotation_about_centres",
    "scaling",
    "translation",
]

#: A 3x3 projective transform, row-major, acting on column vectors (x, y, 1).
Matrix = tuple[float, float, float, float, float, float, float, float, float]

IDENTITY: Matrix = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


def compose(*matrices: Matrix) -> Matrix:
    """Return the product ``m1 @ m2 @ ...`` (the last one is applied first)."""
    out = np.eye(3)
    for m in matrices:
        out = out @ np.asarray(m, dtype=np.float64).reshape(3, 3)
    return _matrix(out)


def invert(m: Matrix) -> Matrix:
    """Return the inverse of ``m``; raises ValueError when it is singular."""
    a = np.asarray(m, dtype=np.float64).reshape(3, 3)
    if abs(np.linalg.det(a)) < 1e-12:
        raise ValueError("singular transform")
    return _matrix(np.linalg.inv(a))


def _matrix(a: npt.NDArray[np.floating[Any]]) -> Matrix:
    return tuple(float(v) for v in a.ravel())  # type: ignore[return-value]


def translation(dx: float, dy: float) -> Matrix:
    """Return the transform that moves points by (dx, dy)."""
    return (1.0, 0.0, dx, 0.0, 1.0, dy, 0.0, 0.0, 1.0)


def scaling(sx: float, sy: float) -> Matrix:
    """Return the transform that scales x by ``sx`` and y by ``sy``."""
    return (sx, 0.0, 0.0, 0.0, sy, 0.0, 0.0, 0.0, 1.0)


def rotation_about_centres(degrees: float, *, src: tuple[int, int], dst: tuple[int, int]) -> Matrix:
    """Return the transform of ``Image.rotate(degrees, expand=True)``: src pixels -> dst pixels.

    Pillow turns the picture counter-clockwise as seen, about its centre, and centres the
    result on the grown canvas ``dst``; in y-down pixel coordinates that is this matrix.
    """
    t = math.radians(degrees)
    cos, sin = math.cos(t), math.sin(t)
    rot: Matrix = (cos, sin, 0.0, -sin, cos, 0.0, 0.0, 0.0, 1.0)
    return compose(translation(dst[0] / 2, dst[1] / 2), rot, translation(-src[0] / 2, -src[1] / 2))


def map_point(m: Matrix, x: float, y: float) -> tuple[float, float]:
    """Return ``m`` applied to the point (x, y)."""
    w = m[6] * x + m[7] * y + m[8]
    return (m[0] * x + m[1] * y + m[2]) / w, (m[3] * x + m[4] * y + m[5]) / w


def map_box(m: Matrix, box: PixelBox, *, width: int, height: int) -> PixelBox:
    """Return the axis-aligned box around ``box``'s mapped corners, clipped to the page."""
    left, top, right, bottom = box
    pts = [map_point(m, x, y) for x in (left, right) for y in (top, bottom)]
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    return (
        min(max(0, math.floor(min(xs))), width),
        min(max(0, math.floor(min(ys))), height),
        min(max(0, math.ceil(max(xs))), width),
        min(max(0, math.ceil(max(ys))), height),
    )


def map_page(result: PageResult, m: Matrix, *, width: int, height: int) -> PageResult:
    """Return ``result`` with every box mapped by ``m`` onto a ``width`` x ``height`` page."""

    def word(w: Word) -> Word:
        return replace(w, box=map_box(m, w.box, width=width, height=height))

    def line(ln: Line) -> Line:
        box = None if ln.box is None else map_box(m, ln.box, width=width, height=height)
        return replace(ln, box=box, words=tuple(word(w) for w in ln.words))

    if m == IDENTITY and (result.width, result.height) == (width, height):
        return result
    return replace(result, lines=tuple(line(ln) for ln in result.lines), width=width, height=height)
