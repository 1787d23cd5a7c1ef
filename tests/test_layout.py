"""Tests for ocrwatch.engines.reading_order: segments -> lines -> reading order, on plain boxes."""

from __future__ import annotations

from ocrwatch.engines.reading_order import (
    Segment,
    TextLine,
    bounding_box,
    column_blocks,
    group_lines,
    gutters,
    reading_order,
)

H = 40  # box height of one text line in these synthetic layouts


def seg(text: str, left: float, top: float, width: float, *, conf: float = 0.9) -> Segment:
    """One segment box of height H."""
    return Segment(text, conf, (left, top, left + width, top + H))


def texts(lines: list[TextLine]) -> list[str]:
    """The lines' texts."""
    return [line.text for line in lines]


class TestBoundingBox:
    """bounding_box turns detector quadrilaterals into axis-aligned boxes."""

    def test_quadrilateral(self) -> None:
        """A slightly rotated quad gives its enclosing rectangle."""
        quad = [(10.0, 12.0), (110.0, 10.0), (111.0, 40.0), (11.0, 42.0)]
        assert bounding_box(quad) == (10.0, 10.0, 111.0, 42.0)


class TestGroupLines:
    """group_lines clusters segments of one column into left-to-right lines."""

    def test_split_line_is_joined_in_x_order(self) -> None:
        """Segments of one line, given out of order, come back as one line, left to right."""
        lines = group_lines([seg("world", 300, 100, 150), seg("hello", 50, 102, 200)])
        assert texts(lines) == ["hello world"]

    def test_lines_top_to_bottom(self) -> None:
        """Separate lines are ordered by their vertical position."""
        segments = [
            seg("third", 50, 200, 100),
            seg("first", 50, 100, 100),
            seg("second", 50, 150, 100),
        ]
        assert texts(group_lines(segments)) == ["first", "second", "third"]

    def test_skewed_line_stays_one_line(self) -> None:
        """A line drifting down by less than half a line height per segment is still one line."""
        segments = [seg("a", 0, 100, 90), seg("b", 100, 115, 90), seg("c", 200, 130, 90)]
        segments.append(seg("next", 0, 160, 90))
        assert texts(group_lines(segments)) == ["a b c", "next"]

    def test_confidence_weighted_by_characters(self) -> None:
        """A line's confidence is the character-weighted mean of its segments'."""
        (line,) = group_lines([seg("aaa", 0, 0, 60, conf=1.0), seg("b", 80, 0, 20, conf=0.0)])
        assert line.confidence == 0.75
        assert line.box == (0, 0, 100, H)


class TestGutters:
    """gutters finds empty vertical strips between text."""

    def test_gap_between_columns(self) -> None:
        """The x-range between two stacks of boxes is a gutter; the page margins are not."""
        boxes = [(0, 0, 100, 40), (0, 50, 100, 90), (150, 0, 250, 40), (150, 50, 250, 90)]
        assert gutters(boxes, min_width=20, tolerance=0) == [(100, 150)]

    def test_narrow_gap_ignored(self) -> None:
        """A gap narrower than min_width (a word space) is not a gutter."""
        assert gutters([(0, 0, 100, 40), (110, 0, 200, 40)], min_width=20, tolerance=0) == []

    def test_crossing_box_tolerated(self) -> None:
        """A box merged across the gap by the detector does not hide the gutter."""
        boxes = [(0, 0, 250, 40)] + [(0, 50 * i, 100, 50 * i + 40) for i in range(1, 6)]
        boxes += [(150, 50 * i, 250, 50 * i + 40) for i in range(1, 6)]
        assert gutters(boxes, min_width=20, tolerance=0) == []
        assert gutters(boxes, min_width=20, tolerance=1) == [(100, 150)]


class TestReadingOrder:
    """reading_order reads columns one after the other and headings in place."""

    def two_columns(self, top: float, rows: int) -> list[Segment]:
        """Two columns of ``rows`` aligned lines each, named L0.. and R0.."""
        out = []
        for i in range(rows):
            out.append(seg(f"L{i}", 0, top + 50 * i, 300))
            out.append(seg(f"R{i}", 350, top + 50 * i, 300))
        return out

    def test_columns_not_merged(self) -> None:
        """Aligned lines of two columns are read column by column, not row by row."""
        lines = reading_order(self.two_columns(100, 4))
        assert texts(lines) == ["L0", "L1", "L2", "L3", "R0", "R1", "R2", "R3"]

    def test_heading_and_footer_around_columns(self) -> None:
        """A full-width heading comes first and a full-width footer last."""
        segments = [
            seg("Heading", 0, 0, 650),
            *self.two_columns(100, 3),
            seg("Footer", 0, 300, 650),
        ]
        assert texts(reading_order(segments)) == [
            "Heading", "L0", "L1", "L2", "R0", "R1", "R2", "Footer",
        ]  # fmt: skip

    def test_unaligned_columns(self) -> None:
        """Columns whose lines are offset (one band) are still split at the gutter."""
        segments = [seg(f"L{i}", 0, 100 + 50 * i, 300) for i in range(4)]
        segments += [seg(f"R{i}", 350, 125 + 50 * i, 300) for i in range(3)]
        assert texts(reading_order(segments)) == ["L0", "L1", "L2", "L3", "R0", "R1", "R2"]

    def test_longer_left_column(self) -> None:
        """Lines below the end of the right column still belong to the left column."""
        segments = [*self.two_columns(100, 3), seg("L3", 0, 250, 300), seg("L4", 0, 300, 300)]
        assert texts(reading_order(segments)) == ["L0", "L1", "L2", "L3", "L4", "R0", "R1", "R2"]

    def test_two_lines_with_aligned_word_gaps_stay_lines(self) -> None:
        """Two short lines whose segment gaps line up are lines, not two columns."""
        segments = [seg("a", 0, 0, 100), seg("b", 150, 0, 100)]
        segments += [seg("c", 0, 50, 100), seg("d", 150, 50, 100)]
        assert texts(reading_order(segments)) == ["a b", "c d"]

    def test_single_column_paragraph(self) -> None:
        """A plain paragraph of full-width lines keeps its order."""
        segments = [seg(f"line {i}", 0, 50 * i, 500 - 40 * (i % 2)) for i in range(6)]
        assert texts(reading_order(segments[::-1])) == [f"line {i}" for i in range(6)]

    def test_empty_and_blank_segments(self) -> None:
        """No segments, or only blank ones, give no lines."""
        assert reading_order([]) == []
        assert reading_order([seg("  ", 0, 0, 100)]) == []
        assert column_blocks([]) == []
