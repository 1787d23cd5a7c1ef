"""Prepare a page for OCR: grayscale, denoise, deskew, upscale small text, contrast, binarize.

The steps run in that order, each switched by the mode's
:class:`~ocrwatch.settings.model.PreprocessProfile`, and the ones applied are listed in
:attr:`PreparedPage.steps` (``"grayscale"``, ``"median:3"``, ``"deskew:-2.1"``,
``"upscale:2.00"``, ``"autocontrast"``, ``"binarize:otsu"``). The input image is never modified.

Median filter and deskew run before upscaling, at native resolution: the specks a 3x3 median
removes are native pixels (an upscaled speck outgrows the window), and a rotation costs in
proportion to the pixels it resamples (four times less before a 2x upscale), after which the
Lanczos upscale is the only other resampling.

Conventions:

- Text height is an x-height: the median height of the dense core band of text lines, measured
  on the row profile of dark pixels in vertical strips (:func:`estimate_text_height`). A page is
  upscaled (Lanczos) by ``text_height / estimate`` when that is above 1.05, at most by
  ``max_upscale`` and never beyond :data:`MAX_UPSCALED_PIXELS`.
- Skew angles are counter-clockwise positive, like :meth:`PIL.Image.Image.rotate`: a skew of 4
  means the text lines rise to the right by 4 degrees; the page is rotated by ``-skew`` (white
  fill, canvas grown to keep the corners). Estimates under :data:`MIN_DESKEW_DEGREES` are left.
- A page with a DPI in ``image.info["dpi"]`` keeps it, multiplied by the upscale factor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import structlog
from PIL import Image, ImageChops, ImageFilter, ImageOps

from ocrwatch.recognition import geometry
from ocrwatch.settings.choices import Binarize
from ocrwatch.settings.sections import PreprocessProfile

__all__ = [
    "MAX_UPSCALED_PIXELS",
    "MIN_DESKEW_DEGREES",
    "PreparedPage",
    "adaptive_binarize",
    "estimate_skew",
    "estimate_text_height",
    "find_sheet",
    "median_filter",
    "otsu_binarize",
    "otsu_threshold",
    "preprocess",
]

log = structlog.get_logger()

#: Never upscale a page beyond this many pixels (memory and engine time grow with it).
MAX_UPSCALED_PIXELS = 40_000_000
#: Rotations smaller than this are not worth the resampling blur.
MIN_DESKEW_DEGREES = 0.3
# Upscaling by less than this gains nothing and blurs.
_MIN_UPSCALE = 1.05
# Skew is estimated on a copy whose longer side is at most this (speed; lines survive it).
_SKEW_SIDE = 1600
# A line's core (x-height band) spans its rows with at least this share of its peak ink; the
# peak sits on the baseline or x-line, ascenders and descenders stay well under it (DejaVu
# 12-60 px: within 12% of the true x-height; IAM handwriting: within about 20%).
_CORE_FRACTION = 0.35
# Enough dark pixels to vote on the skew; more are subsampled (speed).
_SKEW_MAX_POINTS = 250_000

GrayArray = npt.NDArray[np.uint8]


@dataclass(frozen=True, eq=False)
class PreparedPage:
    """A preprocessed page: the image, its upscale factor, the skew removed, the steps applied.

    ``to_source`` maps a pixel of ``image`` back to the input page (see :mod:`~.geometry`).
    """

    image: Image.Image
    scale: float
    skew_degrees: float
    steps: tuple[str, ...]
    to_source: geometry.Matrix = geometry.IDENTITY


@dataclass(slots=True)
class _Work:
    """A page on its way through the steps, and what they did to it."""

    page: Image.Image
    steps: list[str]
    forward: geometry.Matrix = geometry.IDENTITY  # input page -> current image
    photo: bool = False  # a sheet was found on a table
    skew: float = 0.0
    scale: float = 1.0
    height: float | None = None


def preprocess(image: Image.Image, *, profile: PreprocessProfile) -> PreparedPage:
    """Return a new, preprocessed copy of ``image`` following ``profile``; never modifies it."""
    work = _Work(page=image, steps=[])
    if profile.grayscale and image.mode != "L":
        work.page = image.convert("L")
        work.steps.append("grayscale")
    elif image.mode not in ("L", "RGB"):  # documents.py hands out L or RGB; be safe for others
        work.page = image.convert("RGB")
    _shape_steps(work, profile)
    _scale_step(work, profile)
    _tone_steps(work, profile)
    page = work.page if work.page is not image else image.copy()  # the caller may change it
    dpi = _dpi(image)
    page.info.pop("dpi", None)
    if dpi is not None:
        page.info["dpi"] = (dpi[0] * work.scale, dpi[1] * work.scale)
    return PreparedPage(
        image=page,
        scale=work.scale,
        skew_degrees=work.skew,
        steps=tuple(work.steps),
        to_source=geometry.invert(work.forward),
    )


def _shape_steps(work: _Work, profile: PreprocessProfile) -> None:
    """Sheet crop, median filter, deskew, ruled lines: at native resolution."""
    if profile.crop_sheet and work.page.mode == "L":
        found = find_sheet(work.page)
        if found is not None:
            (work.page, work.forward), work.photo = found, True
            work.steps.append("crop_sheet")
    if profile.median_filter:
        work.page = median_filter(work.page, size=profile.median_filter)
        work.steps.append(f"median:{profile.median_filter}")
    if profile.deskew and profile.max_deskew_degrees > 0:
        estimate = estimate_skew(work.page, max_degrees=profile.max_deskew_degrees)
        if abs(estimate) >= MIN_DESKEW_DEGREES:
            page = work.page
            fill: int | tuple[int, ...] = 255 if page.mode == "L" else (255,) * len(page.getbands())
            work.skew = estimate
            work.page = page.rotate(
                -estimate, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=fill
            )
            turn = geometry.rotation_about_centres(-estimate, src=page.size, dst=work.page.size)
            work.forward = geometry.compose(turn, work.forward)
            work.steps.append(f"deskew:{estimate:.1f}")
    if profile.remove_rules and work.page.mode == "L":
        work.page, rules = remove_rules(work.page)
        if rules:
            work.steps.append(f"remove_rules:{rules}")


def _scale_step(work: _Work, profile: PreprocessProfile) -> None:
    """Upscale small writing to the profile's text height (Lanczos)."""
    if profile.upscale or profile.binarize is Binarize.ADAPTIVE:
        work.height = estimate_text_height(work.page)
    if not profile.upscale:
        return
    work.scale = _upscale_factor(work.page, text_height=work.height, profile=profile)
    if work.scale > 1.0:
        page = work.page
        size = (round(page.width * work.scale), round(page.height * work.scale))
        grow = geometry.scaling(size[0] / page.width, size[1] / page.height)
        work.forward = geometry.compose(grow, work.forward)
        work.page = page.resize(size, Image.Resampling.LANCZOS)
        work.steps.append(f"upscale:{work.scale:.2f}")


def _tone_steps(work: _Work, profile: PreprocessProfile) -> None:
    """Local contrast (photos), autocontrast, binarization."""
    if profile.local_contrast and work.photo:
        # Photos only (a sheet was found on a table): glare and shadows leave parts of the
        # page faint. Scans are left alone; there it only raised paper texture (IAM worse).
        import cv2

        tiles = max(2, round(max(work.page.size) / 400))
        clahe = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(tiles, tiles))
        work.page = Image.fromarray(clahe.apply(np.asarray(work.page)))
        work.steps.append("local_contrast")
    if profile.autocontrast:
        work.page = ImageOps.autocontrast(work.page, cutoff=1)
        work.steps.append("autocontrast")
    if profile.binarize is Binarize.OTSU:
        work.page = otsu_binarize(work.page)
        work.steps.append("binarize:otsu")
    elif profile.binarize is Binarize.ADAPTIVE:
        height = None if work.height is None else work.height * work.scale
        radius = None if height is None else _adaptive_radius(height)
        work.page = adaptive_binarize(work.page, radius=radius)
        work.steps.append("binarize:adaptive")


# --- helpers (public for tests and benchmarks) ------------------------------------------------


def remove_rules(gray: Image.Image) -> tuple[Image.Image, int]:
    """Return ``gray`` with long horizontal rules (lined paper) painted over, and their count.

    A rule is a run of dark pixels (dashes joined) at least a quarter of the page wide and
    at most 12 pixels tall (morphological opening of the adaptive-threshold mask). Its pixels
    take the lightest value found within 4 pixels above or below, so writing crossing it is
    cut only by the rule's thickness.
    """
    import cv2

    a = np.asarray(gray)
    h, w = a.shape
    if w < 200 or h < 50:
        return gray, 0
    mask = cv2.adaptiveThreshold(a, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY_INV, 31, 8)
    # Join the dashes of dotted rules (gaps of a few pixels) before looking for long runs.
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((1, 9), np.uint8))
    rules = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((1, max(40, w // 4)), np.uint8))
    # A rule is thin: a band of long runs taller than 12 rows is writing joined up, not paper.
    n_rules = 0
    count, labels, stats, _ = cv2.connectedComponentsWithStats(rules, connectivity=8)
    for k in range(1, count):
        if stats[k, cv2.CC_STAT_HEIGHT] > 12:
            rules[labels == k] = 0
        else:
            n_rules += 1
    if n_rules == 0:
        return gray, 0
    cover = cv2.dilate(rules, np.ones((3, 1), np.uint8))
    light = cv2.dilate(a, np.ones((9, 1), np.uint8))
    out = np.where(cover > 0, light, a)
    return Image.fromarray(out), n_rules


def crop_sheet(gray: Image.Image) -> Image.Image | None:
    """Return the sheet of paper in a photo, flattened to a rectangle; None if there is none."""
    found = find_sheet(gray)
    return None if found is None else found[0]


def find_sheet(gray: Image.Image) -> tuple[Image.Image, geometry.Matrix] | None:
    """Return the flattened sheet and the transform from ``gray``'s pixels to it, or None.

    A phone photo shows the sheet on a darker table, in perspective. The largest bright
    four-cornered region is taken as the sheet when it covers 20-97% of the frame (a flat
    scan is all sheet, so nothing happens), warped to a rectangle, and its edge trimmed
    (the edge's shadow would read as a stroke).
    """
    import cv2

    arr = np.asarray(gray)
    h, w = arr.shape
    scale = 800 / max(h, w)
    small = cv2.resize(
        arr, (max(int(w * scale), 1), max(int(h * scale), 1)), interpolation=cv2.INTER_AREA
    )
    blur = cv2.GaussianBlur(small, (5, 5), 0)
    _, mask = cv2.threshold(blur, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((15, 15), np.uint8))
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    sheet = max(contours, key=cv2.contourArea)
    if not 0.2 < cv2.contourArea(sheet) / (small.shape[0] * small.shape[1]) < 0.97:
        return None
    quad = cv2.approxPolyDP(cv2.convexHull(sheet), 0.02 * cv2.arcLength(sheet, True), True)
    if len(quad) != 4:
        return None
    pts = quad.reshape(4, 2).astype(np.float32) / scale
    sums, diffs = pts.sum(axis=1), np.diff(pts, axis=1).ravel()
    tl, br = pts[np.argmin(sums)], pts[np.argmax(sums)]
    tr, bl = pts[np.argmin(diffs)], pts[np.argmax(diffs)]
    width = int(max(np.linalg.norm(tr - tl), np.linalg.norm(br - bl)))
    height = int(max(np.linalg.norm(bl - tl), np.linalg.norm(br - tr)))
    if width < 32 or height < 32:
        return None
    dst = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float32)
    matrix = cv2.getPerspectiveTransform(np.array([tl, tr, br, bl], dtype=np.float32), dst)
    warped = cv2.warpPerspective(arr, matrix, (width, height), flags=cv2.INTER_CUBIC)
    dy, dx = int(height * 0.004), int(width * 0.004)
    sheet_image = Image.fromarray(np.ascontiguousarray(warped[dy : height - dy, dx : width - dx]))
    warp = tuple(float(v) for v in matrix.ravel())
    return sheet_image, geometry.compose(geometry.translation(-dx, -dy), warp)  # type: ignore[arg-type]


def otsu_threshold(gray: Image.Image | GrayArray) -> int:
    """Return Otsu's global threshold of an 8-bit image: pixels <= it are dark (foreground)."""
    import cv2

    data = np.ascontiguousarray(_array(gray))
    if data.size == 0:
        return 127
    # OpenCV's class 0 is [0, t] too; a one-level image gives 0, as the threshold it is.
    threshold, _ = cv2.threshold(data, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    return int(threshold)


def otsu_binarize(image: Image.Image) -> Image.Image:
    """Return an L image of 0 (text) and 255 (background) split at Otsu's threshold."""
    gray = _gray(image)
    threshold = otsu_threshold(gray)
    return gray.point([0 if level <= threshold else 255 for level in range(256)])


def adaptive_binarize(
    image: Image.Image, *, radius: int | None = None, sensitivity: float = 0.15, min_delta: int = 8
) -> Image.Image:
    """Return an L image of 0/255 thresholded against the local mean (uneven light, photos).

    A pixel is text when it is darker than its neighbourhood's mean by ``sensitivity`` (a
    fraction: light falls off multiplicatively) and by at least ``min_delta`` grey levels, so
    flat areas, dark or light, turn white. ``radius`` defaults to about twice the text height.
    """
    gray = _gray(image)
    if radius is None:
        height = estimate_text_height(gray)
        radius = 25 if height is None else _adaptive_radius(height)
    # The threshold depends on the local mean only, so one lookup table computes it; Pillow's
    # C loops keep this at a few tens of milliseconds per page.
    mean = gray.filter(ImageFilter.BoxBlur(radius))
    threshold = mean.point(
        [max(0, min(math.floor(m * (1 - sensitivity)), m - min_delta)) for m in range(256)]
    )
    darker_by = ImageChops.subtract(threshold, gray)  # > 0 where the pixel is below threshold
    return darker_by.point([255] + [0] * 255)


def median_filter(image: Image.Image, *, size: int) -> Image.Image:
    """Return ``image`` median-filtered with a ``size`` x ``size`` window (edges replicated)."""
    if size == 3 and image.mode == "L":
        import cv2

        # OpenCV's median replicates the edges too, and is many times faster than Pillow's.
        return Image.fromarray(cv2.medianBlur(np.asarray(image, dtype=np.uint8), 3))
    return image.filter(ImageFilter.MedianFilter(size))


def estimate_text_height(image: Image.Image) -> float | None:
    """Return the typical x-height of the page's text in pixels, or None when no text is found.

    Dark pixels (Otsu) are counted per row in vertical strips (so skew and columns matter
    little); each run of inked rows is a line, and its x-height the span of rows holding at
    least 35% of the line's peak ink (the peak sits on the baseline or the x-line; ascenders,
    descenders and the thin middle of handwritten letters do not decide it). Returns the median
    over lines weighted by their ink, capped (dots, commas and specks count little); None for
    blank or flat pages and for those with fewer than three lines.
    """
    data = _array(image)
    if data.size == 0 or int(data.max()) - int(data.min()) < 32:
        return None
    ink = data <= otsu_threshold(image if isinstance(image, Image.Image) else data)
    if ink.mean() > 0.5:  # mostly "ink": a photo or an inverted page, not text on paper
        return None
    height, width = ink.shape
    strip = min(width, max(64, width // 8))
    cores: list[int] = []
    weights: list[int] = []
    for left in range(0, width - strip // 2, strip):
        part = ink[:, left : left + strip]
        _line_cores(
            part.sum(axis=1), strip_width=part.shape[1], page=height, cores=cores, weights=weights
        )
    if len(cores) < 3:
        return None
    # Weights are capped at the median line's ink so that a picture (one huge "line") cannot
    # outvote the text, while dots and specks still count little.
    ink_per_line = np.asarray(weights, dtype=np.float64)
    ink_per_line = np.minimum(ink_per_line, np.median(ink_per_line))
    order = np.argsort(cores, kind="stable")
    sorted_cores = np.asarray(cores)[order]
    cumulative = np.cumsum(ink_per_line[order])
    return float(sorted_cores[int(np.searchsorted(cumulative, cumulative[-1] / 2))])


def estimate_skew(image: Image.Image, *, max_degrees: float = 10.0) -> float:
    """Return the page's text skew in degrees (counter-clockwise positive), 0.0 when unsure.

    Dark pixels of a downscaled copy are projected onto the vertical axis at candidate angles
    up to twice ``max_degrees``; the angle whose row histogram is most peaked (largest sum of
    squares) wins, first in 0.5 degree steps, then refined to 0.1. A winner beyond
    ``max_degrees`` (a page turned further than we correct) gives 0.0.
    """
    if max_degrees <= 0:
        return 0.0
    gray = _gray(image)
    factor = max(1, math.ceil(max(gray.size) / _SKEW_SIDE))
    small = gray.reduce(factor) if factor > 1 else gray
    data = np.asarray(small)
    if data.size == 0 or int(data.max()) - int(data.min()) < 32:
        return 0.0
    ys, xs = np.nonzero(data <= otsu_threshold(small))
    if ys.size < 50 or ys.size > data.size // 2:
        return 0.0
    if ys.size > _SKEW_MAX_POINTS:
        step = math.ceil(ys.size / _SKEW_MAX_POINTS)
        ys, xs = ys[::step], xs[::step]
    y = ys.astype(np.float32) - data.shape[0] / 2
    x = xs.astype(np.float32) - data.shape[1] / 2

    def peakedness(angle: float) -> float:
        # Row of each dark pixel once the page is turned back by ``angle`` (y grows downwards,
        # so text rising to the right has y falling as x grows).
        rad = math.radians(angle)
        rows = y * math.cos(rad) + x * math.sin(rad)
        hist = np.bincount((rows - rows.min()).astype(np.int64))
        return float(np.dot(hist, hist))

    # Search twice as far as we correct: a page turned further than max_degrees must not have a
    # side peak inside the range mistaken for its skew.
    reach = min(45.0, 2 * max_degrees + 1)
    coarse = np.arange(-reach, reach + 1e-9, 0.5)
    best = float(coarse[int(np.argmax([peakedness(a) for a in coarse]))])
    fine = np.arange(best - 0.5, best + 0.5 + 1e-9, 0.1)
    best = float(fine[int(np.argmax([peakedness(a) for a in fine]))])
    if abs(best) > max_degrees:
        return 0.0
    return round(best, 2) + 0.0  # no -0.0


# --- internals --------------------------------------------------------------------------------


def _gray(image: Image.Image) -> Image.Image:
    return image if image.mode == "L" else image.convert("L")


def _array(image: Image.Image | GrayArray) -> GrayArray:
    if isinstance(image, np.ndarray):
        return image.astype(np.uint8, copy=False)
    return np.asarray(_gray(image), dtype=np.uint8)


def _dpi(image: Image.Image) -> tuple[float, float] | None:
    value: Any = image.info.get("dpi")
    try:
        x, y = float(value[0]), float(value[1])
    except (TypeError, ValueError, IndexError, KeyError):
        return None
    return (x, y) if x > 0 and y > 0 else None


def _line_cores(
    profile: npt.NDArray[np.int64],
    *,
    strip_width: int,
    page: int,
    cores: list[int],
    weights: list[int],
) -> None:
    """Append the x-height and the ink of each line (run of inked rows) of one strip's profile."""
    # A row belongs to a line when a few pixels of the strip are ink; stray specks do not
    # join lines that way.
    inked = profile > max(1, strip_width // 50)
    if not inked.any():
        return
    edges = np.diff(np.concatenate(([0], inked.astype(np.int8), [0])))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    for start, end in zip(starts, ends, strict=True):
        run = profile[start:end]
        if run.size < 3 or run.size > max(page // 2, 200):  # specks, rules, pictures
            continue
        core = np.flatnonzero(run >= run.max() * _CORE_FRACTION)
        cores.append(int(core[-1] - core[0] + 1))
        weights.append(int(run.sum()))


def _adaptive_radius(text_height: float) -> int:
    # The window must be wider than a character, or the insides of thick strokes turn white.
    return int(min(100, max(10, 2 * text_height)))


def _upscale_factor(
    image: Image.Image, *, text_height: float | None, profile: PreprocessProfile
) -> float:
    height = text_height
    if height is None or height >= profile.text_height:
        return 1.0
    factor = min(profile.text_height / height, profile.max_upscale)
    factor = min(factor, math.sqrt(MAX_UPSCALED_PIXELS / max(1, image.width * image.height)))
    factor = round(factor, 2)
    log.debug("preprocess.text_height", text_height=height, factor=factor)
    return factor if factor >= _MIN_UPSCALE else 1.0
