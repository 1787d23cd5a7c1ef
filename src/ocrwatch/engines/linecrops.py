"""Line crops for the PP-OCR recognizer: frame each detected line to its writing.

PP-OCR's detector returns generous boxes (unclip 1.4): around handwriting with long ascenders
and descenders a box is about 2.5x the x-height and often takes in parts of the neighbouring
lines, so the recognizer (fixed 48-pixel input height) sees small, crowded writing. Each
detector box, warped flat the way rapidocr does, is framed to its dense core band (about the
x-height) plus one core height above and below, and trimmed to its ink left and right. The
ink analysis runs on an evenly lit copy of the page (:func:`flatten`), so pencil on a shadowed
phone photo behaves like pen on a scan. Measured in ``bench/README.md`` (lever table).

Sometimes the detector returns one box for several lines, even for a whole page (IAM n02-028
read without preprocessing): a box taller than a line is cut at the gaps of its ink's row
profile (:func:`split_lines`) before framing, so every line is still read.
"""

from __future__ import annotations

import itertools
import re
import unicodedata

import cv2
import numpy as np
import numpy.typing as npt

__all__ = [
    "CORE_MARGIN",
    "LOOSE_MARGIN",
    "box_pieces",
    "flatten",
    "frame_piece",
    "latin_only",
    "split_lines",
]

FloatArray = npt.NDArray[np.float32]
GrayArray = npt.NDArray[np.uint8]

#: Room kept above and below a line's core band, in core heights (ascenders, descenders).
CORE_MARGIN = 1.0
#: The looser frame a doubtful piece is read again with (see ``PaddleSettings.reread_below``).
LOOSE_MARGIN = 2.0


def flatten(gray: GrayArray) -> GrayArray:
    """Return ``gray`` divided by its blurred background: even light, ink stretched to dark."""
    h, w = gray.shape
    k = max(31, (min(h, w) // 20) | 1)
    small = cv2.resize(gray, (max(w // 4, 1), max(h // 4, 1)), interpolation=cv2.INTER_AREA)
    bg = cv2.morphologyEx(small, cv2.MORPH_CLOSE, np.ones((k // 4 | 1, k // 4 | 1), np.uint8))
    bg = cv2.GaussianBlur(bg, (0, 0), k / 8)
    bg = cv2.resize(bg, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    out = np.clip(gray.astype(np.float32) / np.maximum(bg, 1.0) * 235.0, 0, 255)
    lo = float(np.percentile(out, 0.5))
    out = (out - lo) / max(235.0 - lo, 1.0) * 255.0
    return np.clip(out, 0, 255).astype(np.uint8)


def _ink(gray: GrayArray) -> FloatArray:
    """Ink strength 0..255 relative to the crop's own paper; faint specks count as none."""
    g = gray.astype(np.float32)
    paper, dark = float(np.percentile(g, 90)), float(np.percentile(g, 0.5))
    ink = np.clip((paper - g) / max(paper - dark, 24.0), 0, 1) * 255.0
    ink[ink < 0.3 * 255] = 0
    return np.asarray(ink, dtype=np.float32)


def _core_band(gray: GrayArray) -> tuple[int, int]:
    prof = _ink(gray).sum(axis=1)
    if prof.max() <= 0:
        return 0, gray.shape[0]
    rows = np.flatnonzero(prof >= 0.35 * prof.max())
    return int(rows[0]), int(rows[-1]) + 1


def _ink_columns(gray: GrayArray, pad: int) -> tuple[int, int]:
    cols = np.flatnonzero((_ink(gray) > 0).sum(axis=0) >= 2)
    if not len(cols):
        return 0, gray.shape[1]
    return max(int(cols[0]) - pad, 0), min(int(cols[-1]) + pad + 1, gray.shape[1])


def frame_piece(
    image: npt.NDArray[np.uint8],
    flat: GrayArray,
    quad: npt.NDArray[np.float32],
    *,
    margin: float = CORE_MARGIN,
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.float32]] | None:
    """Return (crop to recognize, its page quadrilateral) for one detector box, or None.

    ``margin`` is the room kept above and below the core band, in core heights. None means
    the framed crop is too small to hold writing (under 4 pixels either way).
    """
    from rapidocr.utils.process_img import get_rotate_crop_image

    q = np.asarray(quad, dtype=np.float32)
    img = get_rotate_crop_image(image, q.copy())
    ana = get_rotate_crop_image(flat, q.copy())
    if img.shape[:2] != ana.shape[:2] or ana.size == 0:  # rotated (vertical) box: as is
        return img, q
    h = ana.shape[0]
    ct, cb = _core_band(ana)
    ch = cb - ct
    t, b = max(ct - int(margin * ch), 0), min(cb + int(margin * ch), h)
    left, right = _ink_columns(ana[t:b], int(0.3 * ch))
    if b - t < 4 or right - left < 4:
        return None
    tl, tr, br, bl = q
    f0, f1 = t / h, b / h
    framed = np.array(
        [tl + (bl - tl) * f0, tr + (br - tr) * f0, tr + (br - tr) * f1, tl + (bl - tl) * f1],
        dtype=np.float32,
    )
    return np.ascontiguousarray(img[t:b, left:right]), framed


def box_pieces(
    image: npt.NDArray[np.uint8],
    flat: GrayArray,
    quads: npt.NDArray[np.float32],
) -> tuple[
    list[npt.NDArray[np.uint8]], list[npt.NDArray[np.float32]], list[npt.NDArray[np.float32]]
]:
    """Return (crops, their framed page quadrilaterals, their lines) of the detector's boxes.

    ``image`` is what the recognizer reads (BGR or gray), ``flat`` the :func:`flatten`-ed
    grayscale of the same page for the ink analysis. A box over several lines gives one
    piece per line (:func:`split_lines`); a piece's line is the quadrilateral it was framed
    in, to frame again with another margin. Boxes too small to hold writing are left out.
    """
    crops: list[npt.NDArray[np.uint8]] = []
    out_quads: list[npt.NDArray[np.float32]] = []
    lines: list[npt.NDArray[np.float32]] = []
    for quad in quads:
        for part in split_lines(flat, quad):
            piece = frame_piece(image, flat, part)
            if piece is not None:
                crops.append(piece[0])
                out_quads.append(piece[1])
                lines.append(part)
    return crops, out_quads, lines


def split_lines(flat: GrayArray, quad: npt.NDArray[np.float32]) -> list[npt.NDArray[np.float32]]:
    """Return ``quad`` cut into one quadrilateral per line of writing (itself when one line).

    Only boxes at least a quarter as tall as wide and half as tall as the page are
    examined: cutting ordinary boxes (short words on a note) cost more than it gained. The
    ink's row profile is smoothed over one core height (the typical run of dense rows, about
    the x-height); its peaks at least 1.5 core heights apart are lines, and where the profile
    between two peaks drops under half the lower peak the box is cut at that lowest row.
    """
    q = np.asarray(quad, dtype=np.float32)
    x0, y0 = (max(int(v), 0) for v in np.floor(q.min(axis=0)))
    x1 = min(int(np.ceil(q[:, 0].max())), flat.shape[1])
    y1 = min(int(np.ceil(q[:, 1].max())), flat.shape[0])
    w, h = x1 - x0, y1 - y0
    if w <= 0 or h < 60 or h < 0.25 * w or h < flat.shape[0] / 2:
        return [q]
    prof = _ink(flat[y0:y1, x0:x1]).sum(axis=1)
    if prof.max() <= 0:
        return [q]
    strong = np.concatenate([[0], (prof >= 0.35 * prof.max()).astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(strong))
    core = max(3, int(np.median(edges[1::2] - edges[0::2])))
    sm = np.convolve(prof, np.ones(core) / core, mode="same")
    floor = 0.3 * float(sm.max())
    peaks: list[int] = []
    for r in range(h):
        lo, hi = max(0, r - core), min(h, r + core + 1)
        if sm[r] >= floor and sm[r] == sm[lo:hi].max():
            if peaks and r - peaks[-1] < 1.5 * core:
                if sm[r] > sm[peaks[-1]]:
                    peaks[-1] = r
                continue
            peaks.append(r)
    cuts = [0]
    keep = peaks[:1]
    for p in peaks[1:]:
        valley = keep[-1] + int(np.argmin(sm[keep[-1] : p + 1]))
        if sm[valley] < 0.5 * min(sm[keep[-1]], sm[p]):
            cuts.append(valley)
            keep.append(p)
        elif sm[p] > sm[keep[-1]]:
            keep[-1] = p
    if len(cuts) < 2:
        return [q]
    cuts.append(h)
    return [
        np.array([[x0, y0 + a], [x1, y0 + a], [x1, y0 + b], [x0, y0 + b]], dtype=np.float32)
        for a, b in itertools.pairwise(cuts)
    ]


def latin_only(text: str) -> str:
    """Return ``text`` without letters of non-Latin scripts (CJK, kana, Hangul, ...)."""
    out = []
    for ch in text:
        latin_letter = ch.isalpha() and "LATIN" in unicodedata.name(ch, "")
        other = not ch.isalpha() and unicodedata.category(ch)[0] in "PSNZ"
        if ch.isascii() or latin_letter or other:
            out.append(ch)
    return re.sub(r" {2,}", " ", "".join(out)).strip()
