"""Spelling correction of English handwriting: what changes and what never does."""

from __future__ import annotations

from ocrwatch.engines import Line, PageResult
from ocrwatch.handwriting.spelling import correct_line
from ocrwatch.recognition.correct import correct_page


class TestCorrectLine:
    """correct_line fixes unknown words only, keeping case and punctuation."""

    def test_fixes_near_misses(self) -> None:
        """Misread words within one or two edits become the frequent English word."""
        assert correct_line("the quikc brown fox jumps") == "the quick brown fox jumps"
        assert correct_line("see yuo tomorow") == "see you tomorrow"

    def test_keeps_case_and_punctuation(self) -> None:
        """An initial capital and surrounding punctuation survive the fix."""
        assert correct_line("Tomorow, (meetinq).") == "Tomorrow, (meeting)."

    def test_never_suggests_offensive_words(self) -> None:
        """A misread ordinary word never turns into a vulgar one, however frequent online."""
        assert "milf" not in correct_line("Buy milx and bread")

    def test_never_touches_numbers_codes_known_or_short(self) -> None:
        """Numbers, codes with digits, known words and 1-2 letter words stay as they are."""
        text = "Invoice 4711 code AB12 at 5pm is ok"
        assert correct_line(text) == text


class TestCorrectPage:
    """correct_page corrects every line and counts the changed words."""

    def test_counts_changes(self) -> None:
        """Two misread words on two lines count as two corrections; boxes are kept."""
        page = PageResult(
            lines=(
                Line("Buy milk and breaad", 0.8, (0, 0, 10, 5)),
                Line("Call Maria at fivee", 0.7),
            ),
            engine="paddle",
            width=100,
            height=50,
        )
        fixed, changed = correct_page(page)
        assert fixed.text == "Buy milk and bread\nCall Maria at five"
        assert changed == 2
        assert fixed.lines[0].box == (0, 0, 10, 5)
        assert (fixed.width, fixed.height, fixed.engine) == (100, 50, "paddle")
