"""Reading order for engines that return loose text segments: group boxes into lines and columns.

Detectors such as PP-OCR return one box per text segment, unordered; one written line can come
back as several segments, and a naive top-to-bottom sort interleaves the columns of a
multi-column page (measured in bench/README.md). :func:`reading_order` fixes both:

1. **Bands.** Segments whose vertical extents overlap are chained into horizontal bands; a band
   ends where a horizontal strip of the page holds no text at all.
2. **Column groups (XY-cut in spirit).** Consecutive bands are merged into a group while a
   vertical *gutter* -- an x-range at least ``min_gutter`` wide that no box of the group
   covers, with text on both sides -- survives. A band that spans the gutter (a full-width
   heading or paragraph) closes the group. Bands without any gutter form single-column groups.
3. **Columns.** A group with gutters is cut at them when every column holds at least
   ``MIN_COLUMN_LINES`` lines (or the group is one row); the columns are read left to right,
   each itself ordered recursively (a column can hold its own sub-columns).
4. **Lines.** Inside a single-column block, segments are clustered into lines by centre-y
   (within ``line_tolerance`` x the median box height of the nearest member, so slightly skewed
   lines stay together), each line is sorted left to right and joined with one space.

Everything here is pure: functions on plain ``(left, top, right, bottom)`` tuples.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "Box",
    "Segment",
    "TextLine",
    "bounding_box",
    "column_blocks",
    "group_lines",
    "gutters",
    "reading_order",
]

#: An axis-aligned box: (left, top, right, bottom) in pixels.
Box = tuple[float, float, float, float]

#: Segments whose centres are this many median heights apart vertically are separate lines.
LINE_TOLERANCE = 0.5
#: A gutter must be at least this many median box heights wide. Printed column gaps measured
#: 0.45 median heights on our magazine scans (boxes are padded by the detector's unclip).
MIN_GUTTER = 0.3
#: A column cut is kept only when every column holds at least this many lines; two
#: handwritten lines whose word gaps happen to line up are not two columns.
MIN_COLUMN_LINES = 3
#: Share of a region's boxes allowed to cross a gutter (detector merges across columns).
CROSSING_RATIO = 0.05


@dataclass(frozen=True, slots=True)
class Segment:
    """One recognized piece of text with its confidence (0..1) and axis-aligned box."""

    text: str
    confidence: float
    box: Box


@dataclass(frozen=True, slots=True)
class TextLine:
    """Segments of one line, left to right."""

    segments: tuple[Segment, ...]

    @property
    def text(self) -> str:
        """The segments' texts joined with single spaces."""
        return " ".join(s.text.strip() for s in self.segments if s.text.strip())

    @property
    def confidence(self) -> float:
        """Mean segment confidence weighted by characters (0.0 for an empty line)."""
        weights = [(max(len(s.text.strip()), 1), s.confidence) for s in self.segments]
        total = sum(w for w, _ in weights)
        return sum(w * c for w, c in weights) / total if total else 0.0

    @property
    def box(self) -> Box:
        """The union of the segments' boxes."""
        return _union(s.box for s in self.segments)


def bounding_box(points: Iterable[Sequence[float]]) -> Box:
    """Return the axis-aligned box around a polygon's ``(x, y)`` points (e.g. a quadrilateral)."""
    pts = [(float(p[0]), float(p[1])) for p in points]
    if not pts:
        raise ValueError("a box needs at least one point")
    xs = [x for x, _ in pts]
    ys = [y for _, y in pts]
    return (min(xs), min(ys), max(xs), max(ys))


def _union(boxes: Iterable[Box]) -> Box:
    bs = list(boxes)
    return (
        min(b[0] for b in bs),
        min(b[1] for b in bs),
        max(b[2] for b in bs),
        max(b[3] for b in bs),
    )


def _height(box: Box) -> float:
    return max(box[3] - box[1], 1.0)


def _cy(box: Box) -> float:
    return (box[1] + box[3]) / 2


def _cx(box: Box) -> float:
    return (box[0] + box[2]) / 2


def _median_height(boxes: Sequence[Box]) -> float:
    return statistics.median(_height(b) for b in boxes) if boxes else 1.0


def gutters(
    boxes: Sequence[Box], *, min_width: float, tolerance: int | None = None
) -> list[tuple[float, float]]:
    """Return the x-ranges at least ``min_width`` wide with text on both sides and (almost) none
    inside, sorted left to right; an empty list means the boxes form one column.

    Up to ``tolerance`` boxes may cross a gutter (default: one in ``CROSSING_RATIO``): the
    detector sometimes merges a line with its neighbour across the column gap.
    """
    if len(boxes) < 2:
        return []
    if tolerance is None:
        tolerance = int(len(boxes) * CROSSING_RATIO)
    # Sweep the box edges left to right, tracking how many boxes cover each x-range.
    events = sorted([(b[0], 1) for b in boxes] + [(b[2], -1) for b in boxes])
    lo, hi = min(b[0] for b in boxes), max(b[2] for b in boxes)
    found: list[tuple[float, float]] = []
    depth = 0
    run_start: float | None = None
    for x, step in events:
        before = depth
        depth += step
        if before > tolerance >= depth and x > lo:
            run_start = x
        elif before <= tolerance < depth and run_start is not None:
            if x - run_start >= min_width and lo < run_start and x < hi:
                found.append((run_start, x))
            run_start = None
    return found


def _bands(segments: Sequence[Segment]) -> list[list[Segment]]:
    """Split segments into horizontal bands separated by strips with no text, top to bottom."""
    ordered = sorted(segments, key=lambda s: (s.box[1], s.box[0]))
    bands: list[list[Segment]] = []
    bottom = float("-inf")
    for seg in ordered:
        if not bands or seg.box[1] >= bottom:
            bands.append([seg])
            bottom = seg.box[3]
        else:
            bands[-1].append(seg)
            bottom = max(bottom, seg.box[3])
    return bands


def column_blocks(
    segments: Sequence[Segment], *, min_gutter: float | None = None
) -> list[list[Segment]]:
    """Return single-column blocks of ``segments`` in reading order.

    Blocks come top to bottom; where the page has columns, a column is finished before the
    one to its right starts. ``min_gutter`` defaults to ``MIN_GUTTER`` x the median box
    height.
    """
    if not segments:
        return []
    if min_gutter is None:
        min_gutter = MIN_GUTTER * _median_height([s.box for s in segments])

    groups: list[list[Segment]] = []
    group_has_gutter = False
    for band in _bands(segments):
        band_gutters = gutters([s.box for s in band], min_width=min_gutter)
        if groups:
            current = groups[-1]
            merged = gutters([s.box for s in current + band], min_width=min_gutter)
            # A gutter-less group (plain paragraph) swallows gutter-less bands; a column
            # group keeps bands that leave some gutter open (including one-column bands).
            joins = bool(merged) if group_has_gutter else not band_gutters
            if joins:
                current.extend(band)
                continue
        groups.append(list(band))
        group_has_gutter = bool(band_gutters)

    blocks: list[list[Segment]] = []
    for group in groups:
        cuts = gutters([s.box for s in group], min_width=min_gutter)
        if not cuts:
            blocks.append(group)
            continue
        columns: list[list[Segment]] = [[] for _ in range(len(cuts) + 1)]
        for seg in group:
            # By the left edge: a box merged across the gutter starts in the left column.
            index = sum(1 for gutter_left, _ in cuts if seg.box[0] >= gutter_left)
            columns[index].append(seg)
        single_row = len(group_lines(group)) == 1
        if not single_row and any(len(group_lines(c)) < MIN_COLUMN_LINES for c in columns):
            blocks.append(group)
            continue
        for column in columns:
            # Each column is strictly smaller than the group, so the recursion ends.
            blocks.extend(column_blocks(column, min_gutter=min_gutter))
    return blocks


def group_lines(
    segments: Sequence[Segment], *, tolerance: float = LINE_TOLERANCE
) -> list[TextLine]:
    """Cluster one column's segments into lines, top to bottom, each sorted left to right.

    A segment joins a line when its centre-y is within ``tolerance`` x the median box height
    of the line member horizontally closest to it (so a slightly skewed line stays one line).
    """
    if not segments:
        return []
    median_h = _median_height([s.box for s in segments])
    limit = tolerance * median_h
    lines: list[list[Segment]] = []
    for seg in sorted(segments, key=lambda s: (_cy(s.box), s.box[0])):
        best: list[Segment] | None = None
        best_dist = limit
        for line in lines:
            nearest = min(line, key=lambda m: abs(_cx(m.box) - _cx(seg.box)))
            dist = abs(_cy(nearest.box) - _cy(seg.box))
            if dist <= best_dist:
                best, best_dist = line, dist
        if best is None:
            lines.append([seg])
        else:
            best.append(seg)
    result = [TextLine(tuple(sorted(line, key=lambda s: s.box[0]))) for line in lines]
    result.sort(key=lambda ln: (statistics.fmean(_cy(s.box) for s in ln.segments), ln.box[0]))
    return result


def reading_order(
    segments: Sequence[Segment],
    *,
    line_tolerance: float = LINE_TOLERANCE,
    min_gutter: float | None = None,
) -> list[TextLine]:
    """Return the segments' lines in reading order: column blocks, then lines inside each."""
    kept = [s for s in segments if s.text.strip()]
    lines: list[TextLine] = []
    for block in column_blocks(kept, min_gutter=min_gutter):
        lines.extend(group_lines(block, tolerance=line_tolerance))
    return lines
