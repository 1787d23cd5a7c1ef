"""bench.copiste's writer split and bench.metrics' case-insensitive CER (no eval data read)."""

from __future__ import annotations

from pathlib import Path

import pytest
from bench import metrics
from bench.copiste import (
    TEST_NUMBERS,
    VALIDATION_NUMBERS,
    Part,
    line_boxes,
    pages,
    part_of,
    text_number,
)


class TestSplit:
    """Every page of one text number falls in one part; the parts do not overlap."""

    def test_text_number(self) -> None:
        """The four-digit number is found with any prefix and page suffix."""
        assert text_number(Path("imp_wikitexte_0172_2.jpg")) == "0172"
        assert text_number(Path("oldbatch_wikitexte_0005.jpg")) == "0005"
        assert text_number(Path("wikitexte_0172_double.jpg")) == "0172"
        with pytest.raises(ValueError, match="no text number"):
            text_number(Path("LICENSE"))

    def test_pages_of_a_writer_stay_together(self) -> None:
        """Pages _1 and _2 of a number, and other prefixes of it, get the same part."""
        assert part_of(Path("wikitexte_0015_1.jpg")) is Part.TEST
        assert part_of(Path("imp_wikitexte_0015.jpg")) is Part.TEST
        assert part_of(Path("wikitexte_0010_2.jpg")) is Part.VALIDATION
        assert part_of(Path("wikitexte_0022.jpg")) is Part.TRAIN

    def test_parts_are_disjoint(self) -> None:
        """No number is both held out and validation."""
        assert not TEST_NUMBERS & VALIDATION_NUMBERS
        assert len(TEST_NUMBERS) == 23 and len(VALIDATION_NUMBERS) == 11

    def test_pages_and_lines(self, tmp_path: Path) -> None:
        """pages() filters by part; line_boxes() reads x0 y0 x1 y1 text, skipping empty text."""
        for name in ("wikitexte_0015.jpg", "wikitexte_0022.jpg"):
            (tmp_path / name).write_bytes(b"")
        (tmp_path / "wikitexte_0022.lines.tsv").write_text(
            "1\t2\t300\t40\tLa Fédération\n5\t50\t310\t90\t \n", encoding="utf-8"
        )
        assert [p.name for p in pages(tmp_path, Part.TRAIN)] == ["wikitexte_0022.jpg"]
        assert [p.name for p in pages(tmp_path)] == ["wikitexte_0015.jpg", "wikitexte_0022.jpg"]
        lines = line_boxes(tmp_path / "wikitexte_0022.jpg")
        assert [(ln.box, ln.text) for ln in lines] == [((1, 2, 300, 40), "La Fédération")]


class TestCaseInsensitiveCer:
    """CER ci ignores case only."""

    def test_case_only(self) -> None:
        """A reading differing only in case has CER ci 0 and CER > 0."""
        s = metrics.score("La Fédération", "LA FÉDÉRATION")
        assert s.cer_ci == 0.0
        assert s.cer > 0.5

    def test_other_errors_count(self) -> None:
        """A wrong letter still counts, and totals add up."""
        total = metrics.total([metrics.score("abc", "ABD"), metrics.score("de", "de")])
        assert total.ci_char_errors == 1
        assert total.cer_ci == pytest.approx(1 / 5)
