"""Accuracy experiments ("levers") for handwriting, run with ``bench.accuracy --variant``.

Each variant is a recognizer ``(path, settings, engines) -> Reading`` built from named steps
joined by ``+``, e.g. ``--variant rapid+flatten+linerec``. These are experiments, kept apart
from ``src/``: a lever that wins is proposed for the product as a diff.

Base readers (first step):
- ``rapid``: rapidocr 3.10 with engines.md's tuned settings (classifier off, det thresh 0.2,
  box_thresh 0.45, unclip 1.4) on the whole page; boxes grouped into lines top to bottom.

Steps (applied in the order given):
- ``gray``: grayscale; ``flatten``: divide by a heavily blurred background (illumination
  flattening), ``crop``: find the paper quadrilateral and warp it flat; ``deskew``;
  ``scaleN``: resize so the median detected line height is about N px;
- ``linerec``: detect, group boxes into lines, crop each whole line with a margin and
  recognize the line crop with the recognizer alone (``use_det=False``);
- ``split``: ``linerec``, and a line crop whose row ink profile shows two or more text
  lines (the detector merged touching handwritten lines) is cut at the profile's valleys;
- ``boxrec``: per detector box instead of per line: the box is warped flat (rapidocr's own
  crop), then ``split``/``coreN`` apply inside it; pieces are grouped into lines by their
  position (so the paper edge or the table beside a rotated line never enters the analysis);
- ``coreN``: ``linerec`` with each line crop framed to its dense core band plus N % of the
  core height above and below;
- ``ts0``: keep low-confidence lines (rapidocr's text_score 0.5 -> 0);
- ``detNNNN``: detector input side (Det.limit_side_len) NNNN instead of 736;
- ``latin``: for Latin-script languages, drop characters outside Latin, digits,
  punctuation and symbols (PP-OCRv6's dictionary is mostly CJK: noise on the page reads as
  kana/hanzi), then drop pieces left empty;
- ``best2``: with ``boxrec``, each piece is also read with a looser frame (core + 1.6 core
  heights) and the reading with the higher recognizer confidence is kept;
- ``spell``: word correction with symspellpy's bundled English frequency dictionary.
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageOps

from bench.accuracy import Reading
from ocrwatch.engines.linecrops import flatten, latin_only
from ocrwatch.recognition.preprocess import crop_sheet

__all__ = ["recognizer"]

TUNED = {
    "Global.use_cls": False,
    "Global.log_level": "error",
    "Det.thresh": 0.2,
    "Det.box_thresh": 0.45,
    "Det.unclip_ratio": 1.4,
}
_lock = threading.Lock()


@cache
def _rapid(det_side: int = 736, text_score: float = 0.5) -> Any:
    from rapidocr import RapidOCR

    params = dict(TUNED)
    params["Det.limit_side_len"] = det_side
    params["Global.text_score"] = text_score
    return RapidOCR(params=params)


@dataclass
class Config:
    """A parsed variant."""

    steps: list[str] = field(default_factory=list)
    det_side: int = 736
    text_score: float = 0.5
    scale_to: int | None = None
    linerec: bool = False
    split: bool = False
    core: float | None = None
    boxrec: bool = False
    spell: bool = False
    latin: bool = False
    best2: bool = False


def parse(variant: str) -> Config:
    """Return the configuration named by ``variant`` (raises SystemExit on a bad name)."""
    parts = variant.split("+")
    if parts[0] != "rapid":
        raise SystemExit(f"unknown base reader {parts[0]!r}: use rapid")
    cfg = Config()
    for step in parts[1:]:
        if step in ("gray", "flatten", "crop", "deskew"):
            cfg.steps.append(step)
        elif m := re.fullmatch(r"scale(\d+)", step):
            cfg.scale_to = int(m.group(1))
        elif m := re.fullmatch(r"det(\d+)", step):
            cfg.det_side = int(m.group(1))
        elif m := re.fullmatch(r"ts(\d+)", step):
            cfg.text_score = int(m.group(1)) / 10
        elif step == "linerec":
            cfg.linerec = True
        elif step == "split":
            cfg.linerec = cfg.split = True
        elif step == "boxrec":
            cfg.boxrec = True
        elif m := re.fullmatch(r"core(\d+)", step):
            cfg.linerec = True
            cfg.core = int(m.group(1)) / 100
        elif step == "spell":
            cfg.spell = True
        elif step == "latin":
            cfg.latin = True
        elif step == "best2":
            cfg.best2 = True
        else:
            raise SystemExit(f"unknown lever step {step!r}")
    return cfg


# --- image steps ---------------------------------------------------------------------------


def crop_paper(gray: np.ndarray) -> np.ndarray:
    """The product's sheet crop (``preprocess.crop_sheet``) on an array; the input if none."""
    sheet = crop_sheet(Image.fromarray(gray))
    return gray if sheet is None else np.asarray(sheet)


def deskew(gray: np.ndarray) -> np.ndarray:
    """Rotate by the dominant text angle (projection-profile search over +-5 degrees)."""
    h, w = gray.shape
    scale = 1000 / max(h, w)
    small = cv2.resize(gray, (int(w * scale), int(h * scale)), interpolation=cv2.INTER_AREA)
    ink = (255 - small).astype(np.float32)
    ink[ink < 60] = 0
    best, best_angle = -1.0, 0.0
    centre = (small.shape[1] / 2, small.shape[0] / 2)
    for angle in np.arange(-5, 5.01, 0.5):
        m = cv2.getRotationMatrix2D(centre, angle, 1.0)
        rot = cv2.warpAffine(ink, m, (small.shape[1], small.shape[0]))
        score = float(np.var(rot.sum(axis=1)))
        if score > best:
            best, best_angle = score, float(angle)
    if abs(best_angle) < 0.25:
        return gray
    m = cv2.getRotationMatrix2D((w / 2, h / 2), best_angle, 1.0)
    return cv2.warpAffine(gray, m, (w, h), flags=cv2.INTER_CUBIC, borderValue=255)


# --- lines ---------------------------------------------------------------------------------


def group_lines(boxes: np.ndarray) -> list[list[int]]:
    """Group detected boxes into lines top to bottom (vertical overlap), left to right."""
    if len(boxes) == 0:
        return []
    tops, bottoms = boxes[:, :, 1].min(axis=1), boxes[:, :, 1].max(axis=1)
    lefts = boxes[:, :, 0].min(axis=1)
    order = np.argsort((tops + bottoms) / 2)
    lines: list[list[int]] = []
    spans: list[tuple[float, float]] = []
    for i in order:
        t, b = float(tops[i]), float(bottoms[i])
        placed = False
        for k, (lt, lb) in enumerate(spans):
            overlap = min(b, lb) - max(t, lt)
            if overlap > 0.5 * min(b - t, lb - lt):
                lines[k].append(int(i))
                spans[k] = (min(t, lt), max(b, lb))
                placed = True
                break
        if not placed:
            lines.append([int(i)])
            spans.append((t, b))
    for line in lines:
        line.sort(key=lambda j: lefts[j])
    # Lines by the centre of their span, top to bottom.
    idx = np.argsort([(t + b) / 2 for t, b in spans])
    return [lines[k] for k in idx]


def ink_of(gray: np.ndarray) -> np.ndarray:
    """Return ink strength 0..255 relative to the crop's own paper and darkest ink.

    Relative, so that pencil on a shadowed photo counts like pen on a white scan; faint
    specks (under 30 % of the crop's contrast) count as no ink.
    """
    g = gray.astype(np.float32)
    paper, dark = float(np.percentile(g, 90)), float(np.percentile(g, 0.5))
    ink = np.clip((paper - g) / max(paper - dark, 24.0), 0, 1) * 255.0
    ink[ink < 0.3 * 255] = 0
    return np.asarray(ink, dtype=np.float32)


def split_rows(gray: np.ndarray) -> list[tuple[int, int]]:
    """Return row ranges of the text lines in a line crop (one range when it holds one line).

    The detector sometimes returns one box for two or three handwritten lines whose ascenders
    and descenders touch; their row ink profile still has one strong peak per line (the
    x-height band) with a clear valley between.
    """
    h = gray.shape[0]
    ink = ink_of(gray)
    prof = cv2.GaussianBlur(ink.sum(axis=1).reshape(-1, 1), (1, 0), max(2.0, h / 30)).ravel()
    if prof.max() <= 0:
        return [(0, h)]
    win = max(3, h // 8)
    peaks = [
        i
        for i in range(h)
        if prof[i] >= 0.3 * prof.max() and prof[i] == prof[max(0, i - win) : i + win + 1].max()
    ]
    cuts = []
    for a, b in itertools.pairwise(peaks):
        if b - a < 0.2 * h:
            continue
        v = a + int(np.argmin(prof[a:b]))
        if prof[v] < 0.45 * min(prof[a], prof[b]):
            cuts.append(v)
    bounds = [0, *cuts, h]
    return [(bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1)]


def _trim_columns(gray: np.ndarray, pad: int) -> tuple[int, int]:
    ink = ink_of(gray) > 0
    # A column counts when a few pixels are ink (one noisy pixel does not).
    cols = np.flatnonzero(ink.sum(axis=0) >= 2)
    if not len(cols):
        return 0, gray.shape[1]
    return max(int(cols[0]) - pad, 0), min(int(cols[-1]) + pad + 1, gray.shape[1])


def _spell() -> Callable[[str], str]:
    from importlib.resources import files

    from symspellpy import SymSpell, Verbosity

    sym = SymSpell(max_dictionary_edit_distance=2, prefix_length=7)
    dic = files("symspellpy") / "frequency_dictionary_en_82_765.txt"
    sym.load_dictionary(str(dic), term_index=0, count_index=1)

    def fix_word(token: str) -> str:
        m = re.fullmatch(r"([^\w]*)([A-Za-z]+)([^\w]*)", token)
        if not m or len(m.group(2)) < 3:
            return token
        pre, word, post = m.groups()
        low = word.lower()
        if sym.lookup(low, Verbosity.TOP, max_edit_distance=0):
            return token
        hits = sym.lookup(low, Verbosity.TOP, max_edit_distance=1 if len(low) < 6 else 2)
        if not hits:
            return token
        fixed = str(hits[0].term)
        if word[0].isupper():
            fixed = fixed[0].upper() + fixed[1:]
        return pre + fixed + post

    def fix(text: str) -> str:
        return "\n".join(" ".join(fix_word(t) for t in ln.split(" ")) for ln in text.split("\n"))

    return fix


_spell_cached = cache(_spell)


def core_band(gray: np.ndarray) -> tuple[int, int]:
    """Return the rows of a one-line crop's dense core (about the x-height band)."""
    prof = ink_of(gray).sum(axis=1)
    if prof.max() <= 0:
        return 0, gray.shape[0]
    rows = np.flatnonzero(prof >= 0.35 * prof.max())
    return int(rows[0]), int(rows[-1]) + 1


def line_crops(gray: np.ndarray, boxes: np.ndarray, cfg: Config) -> list[tuple[int, int, int, int]]:
    """Return one (left, top, right, bottom) crop per text line, top to bottom.

    ``gray`` should have even light (``flatten``): the ink analysis is relative to the paper.
    Boxes are grouped into lines; with ``split`` a crop holding several lines is cut at its
    row-profile valleys; with ``coreN`` each crop is framed to its core band plus N % of the
    core height above and below (ascenders, descenders) so the writing fills the recognizer's
    48-pixel input instead of the detector's generous box.
    """
    out = []
    for line in group_lines(boxes):
        pts = boxes[line].reshape(-1, 2)
        x0, y0 = (int(v) for v in np.maximum(pts.min(axis=0), 0))
        x1, y1 = (int(v) for v in pts.max(axis=0))
        sub = gray[y0:y1, x0:x1]
        if sub.size == 0:
            continue
        bands = split_rows(sub) if cfg.split else [(0, sub.shape[0])]
        for top, bottom in bands:
            if cfg.core is None:
                if len(bands) == 1:
                    out.append((x0, y0, x1, y1))
                else:
                    left, right = _trim_columns(sub[top:bottom], 8)
                    out.append((x0 + left, y0 + top, x0 + right, y0 + bottom))
                continue
            ct, cb = core_band(sub[top:bottom])
            ch = cb - ct
            t = max(top + ct - int(cfg.core * ch), 0)
            b = min(top + cb + int(cfg.core * ch), sub.shape[0])
            left, right = _trim_columns(sub[t:b], int(0.3 * ch))
            if b > t and right > left:
                out.append((x0 + left, y0 + t, x0 + right, y0 + b))
    return out


def box_pieces(
    bgr: np.ndarray, flat: np.ndarray, boxes: np.ndarray, cfg: Config
) -> tuple[list[np.ndarray], np.ndarray]:
    """Return crops to recognize and their page boxes (quads) for each detector box.

    Each quad is warped flat like rapidocr does; ``split`` cuts a box that holds several
    lines at its row-profile valleys, ``coreN`` frames each piece to its core band + N %.
    """
    from rapidocr.utils.process_img import get_rotate_crop_image

    crops: list[np.ndarray] = []
    quads: list[np.ndarray] = []
    for quad in boxes:
        q = np.asarray(quad, dtype=np.float32)
        img = get_rotate_crop_image(bgr, q.copy())
        ana = get_rotate_crop_image(flat, q.copy())
        if img.shape[:2] != ana.shape[:2] or ana.size == 0:
            crops.append(img)
            quads.append(q)
            continue
        h = ana.shape[0]
        bands = split_rows(ana) if cfg.split else [(0, h)]
        for top, bottom in bands:
            t, b = top, bottom
            left, right = 0, ana.shape[1]
            if cfg.core is not None:
                ct, cb = core_band(ana[top:bottom])
                ch = cb - ct
                t = max(top + ct - int(cfg.core * ch), top if len(bands) > 1 else 0)
                b = min(top + cb + int(cfg.core * ch), bottom if len(bands) > 1 else h)
                left, right = _trim_columns(ana[t:b], int(0.3 * ch))
            elif len(bands) > 1:
                left, right = _trim_columns(ana[t:b], 8)
            if b - t < 4 or right - left < 4:
                continue
            crops.append(np.ascontiguousarray(img[t:b, left:right]))
            # Page position of the piece: interpolate along the quad's left and right edges.
            tl, tr, br, bl = q
            f0, f1 = t / h, b / h
            quads.append(
                np.array(
                    [tl + (bl - tl) * f0, tr + (br - tr) * f0, tr + (br - tr) * f1,
                     tl + (bl - tl) * f1],
                    dtype=np.float32,
                )
            )  # fmt: skip
    return crops, np.array(quads, dtype=np.float32).reshape(-1, 4, 2)


def gray_for(bgr: np.ndarray) -> np.ndarray:
    """Return the grayscale of a BGR array."""
    return np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))


def read(image: Image.Image, cfg: Config) -> str:
    """Return the text of one page image under ``cfg``."""
    gray = np.asarray(ImageOps.exif_transpose(image).convert("L"))
    for step in cfg.steps:
        if step == "flatten":
            gray = flatten(gray)
        elif step == "crop":
            gray = crop_paper(gray)
        elif step == "deskew":
            gray = deskew(gray)
    rapid = _rapid(cfg.det_side, cfg.text_score)
    bgr = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    with _lock:
        if cfg.scale_to:
            det = rapid(bgr, use_det=True, use_cls=False, use_rec=False)
            if det.boxes is not None and len(det.boxes):
                hs = det.boxes[:, :, 1].max(axis=1) - det.boxes[:, :, 1].min(axis=1)
                factor = float(np.clip(cfg.scale_to / np.median(hs), 0.33, 3.0))
                if abs(factor - 1) > 0.1:
                    bgr = cv2.resize(
                        bgr,
                        None,
                        fx=factor,
                        fy=factor,
                        interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC,
                    )
        if cfg.boxrec:
            det = rapid(bgr, use_det=True, use_cls=False, use_rec=False)
            if det.boxes is None or not len(det.boxes):
                return ""
            flat = flatten(gray_for(bgr))
            crops, quads = box_pieces(bgr, flat, det.boxes, cfg)
            if not crops:
                return ""
            rec = rapid.recognize_txt(crops)
            if cfg.best2:
                loose = Config(split=cfg.split, core=(cfg.core or 1.0) + 0.6, boxrec=True)
                crops2, _ = box_pieces(bgr, flat, det.boxes, loose)
                if len(crops2) == len(crops):
                    rec2 = rapid.recognize_txt(crops2)
                    pairs = zip(rec.txts, rec.scores, rec2.txts, rec2.scores, strict=True)
                    best = [(t, s) if s >= s2 else (t2, s2) for t, s, t2, s2 in pairs]
                    rec = type(rec)(
                        txts=tuple(t for t, _ in best), scores=tuple(s for _, s in best)
                    )
            keep = [
                i
                for i, (t, sc) in enumerate(zip(rec.txts, rec.scores, strict=True))
                if sc >= cfg.text_score and t.strip()
            ]
            txts = [rec.txts[i] for i in keep]
            if cfg.latin:
                txts = [latin_only(t) for t in txts]
                keep = [k for k, t in zip(keep, txts, strict=True) if t]
                txts = [t for t in txts if t]
            quads = quads[keep]
            texts = [" ".join(txts[i] for i in ln) for ln in group_lines(quads)]
        elif cfg.linerec:
            det = rapid(bgr, use_det=True, use_cls=False, use_rec=False)
            if det.boxes is None or not len(det.boxes):
                return ""
            # Analyse lines on an evenly lit copy; recognize the pixels of the page itself.
            rects = line_crops(flatten(gray_for(bgr)), det.boxes, cfg)
            if not rects:
                return ""
            bgr_crops = [np.ascontiguousarray(bgr[t:b, x0:x1]) for x0, t, x1, b in rects]
            rec = rapid.recognize_txt(bgr_crops)
            texts = [t for t, s in zip(rec.txts, rec.scores, strict=True) if s >= cfg.text_score]
        else:
            out = rapid(bgr, use_det=True, use_cls=False, use_rec=True)
            if out.boxes is None or not len(out.boxes):
                return ""
            texts = [" ".join(out.txts[i] for i in ln) for ln in group_lines(out.boxes)]
    text = "\n".join(t.strip() for t in texts if t.strip())
    if cfg.spell:
        text = _spell_cached()(text)
    return text


def recognizer(variant: str) -> Callable[[Path, Any, Any], Reading]:
    """Return the recognizer named by ``variant`` for ``bench.accuracy``."""
    cfg = parse(variant)

    def run(path: Path, settings: Any, engines: Any) -> Reading:
        with Image.open(path) as img:
            text = read(img, cfg)
        return Reading(text + "\n", 1, {"rapidocr": "3.10.0 " + variant})

    return run


def variants(names: Sequence[str]) -> list[Config]:
    """Parse several variants (for checking a list of names up front)."""
    return [parse(n) for n in names]
