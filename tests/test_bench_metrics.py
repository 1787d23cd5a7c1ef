"""Tests of bench.metrics: normalization, CER, WER and bag of words on hand-made strings."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# bench/ lives at the repo root, outside the installed package: make it importable however
# pytest is started (pyproject's pytest option `pythonpath = ["."]` would do the same).
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from bench import metrics  # noqa: E402


class TestNormalize:
    """normalize() does exactly what the module docstring promises."""

    def test_collapses_horizontal_whitespace_and_strips_lines(self) -> None:
        """Runs of spaces/tabs become one space; line ends are stripped."""
        assert metrics.normalize("  a \t  b  \n\tc  ") == "a b\nc"

    def test_drops_blank_lines_and_trailing_newline(self) -> None:
        """Blank and whitespace-only lines vanish; no trailing line break is left."""
        assert metrics.normalize("a\n\n   \nb\n") == "a\nb"

    def test_form_feed_and_carriage_returns_are_line_breaks(self) -> None:
        """Page separators and CRLF count as one line break."""
        assert metrics.normalize("a\fb\r\nc\rd") == "a\nb\nc\nd"

    def test_nfc(self) -> None:
        """A decomposed accent equals the composed one."""
        assert metrics.normalize("n\u0303") == "\u00f1"

    def test_keeps_case_and_punctuation(self) -> None:
        """Case and punctuation are part of the main figures."""
        assert metrics.normalize("Hello, World!") == "Hello, World!"

    def test_folds_typographic_quotes_and_dashes(self) -> None:
        """Curly quotes, primes, dashes and the ellipsis compare equal to ASCII typing."""
        typed = "\u201cIt\u2019s 9\u20135 \u2014 ok\u2026\u201d"
        assert metrics.normalize(typed) == '"It\'s 9-5 - ok..."'

    def test_other_punctuation_is_not_folded(self) -> None:
        """Guillemets and the Spanish inverted marks stay what they are."""
        assert (
            metrics.normalize("\u00abS\u00ed\u00bb \u00bfqu\u00e9?")
            == "\u00abS\u00ed\u00bb \u00bfqu\u00e9?"
        )


class TestCharacterErrors:
    """CER counts Levenshtein edits per reference character, line breaks included."""

    def test_identical_after_normalization(self) -> None:
        """Whitespace differences alone cost nothing."""
        assert metrics.score("ab cd\nef\n", "  ab   cd \n\n ef").cer == 0.0

    def test_one_substitution(self) -> None:
        """One wrong letter out of four."""
        s = metrics.score("abcd", "abxd")
        assert (s.char_errors, s.chars) == (1, 4)
        assert s.cer == pytest.approx(0.25)

    def test_merged_lines_cost_one_edit(self) -> None:
        """Two lines read as one: the line break became a space (1 substitution of 7)."""
        s = metrics.score("abc\ndef", "abc def")
        assert (s.char_errors, s.chars) == (1, 7)

    def test_swapped_lines_are_penalised(self) -> None:
        """Wrong line order is an error for CER but not for bag of words."""
        s = metrics.score("alpha\nomega", "omega\nalpha")
        assert s.cer > 0.5
        assert s.bow_recall == 1.0 and s.bow_precision == 1.0

    def test_case_counts(self) -> None:
        """A case error is a character error."""
        assert metrics.score("Word", "word").char_errors == 1

    def test_empty_hypothesis(self) -> None:
        """Nothing read: every reference character is an error."""
        assert metrics.score("abc\nde", "").cer == 1.0


class TestUnreadable:
    """'~' in a reference (UNLV: an unreadable byte) matches anything or nothing, for free."""

    def test_tilde_matches_any_character_or_none(self) -> None:
        """'Caf~~' (a two-byte e-acute) against 'Caf\u00e9': no error, 3 scored characters."""
        s = metrics.score("Caf~~", "Caf\u00e9")
        assert (s.char_errors, s.chars) == (0, 3)

    def test_other_errors_still_count(self) -> None:
        """A wrong letter next to an unreadable mark is still an error."""
        s = metrics.score("Caf~~ bar", "Cof\u00e9 bar")
        assert s.char_errors == 1

    def test_unreadable_word_is_free_for_wer(self) -> None:
        """A token holding '~' is not scored as a word."""
        s = metrics.score("the ~~ cat", "the x cat")
        assert (s.word_errors, s.words) == (0, 2)


class TestOrderTolerant:
    """cer_ot pairs lines one to one, so block order stops counting."""

    def test_moved_block_costs_nothing(self) -> None:
        """A caption read before the article instead of after it."""
        ref = "first line of text\nsecond line here\nCAPTION ONE\nCAPTION TWO"
        hyp = "CAPTION ONE\nCAPTION TWO\nfirst line of text\nsecond line here"
        s = metrics.score(ref, hyp)
        assert s.cer_ot == 0.0
        assert s.cer > 0.3

    def test_errors_inside_lines_count(self) -> None:
        """One wrong letter in a swapped pair of lines: one edit of 10 characters."""
        s = metrics.score("alpha\nomega", "omega\nalphq")
        assert (s.ot_char_errors, s.ot_chars) == (1, 10)

    def test_missing_and_extra_lines_cost_their_characters(self) -> None:
        """A reference line never read costs its length; an invented line costs its length."""
        assert metrics.line_edits("abc\ndefg", "abc") == (4, 7)
        assert metrics.line_edits("abc", "abc\nzz") == (2, 3)

    def test_merged_lines_are_not_free(self) -> None:
        """Two reference lines read as one cannot both pair with it."""
        errors, size = metrics.line_edits("abc\ndef", "abc def")
        assert size == 6 and errors >= 3

    def test_empty_hypothesis(self) -> None:
        """Nothing read: every reference character (line breaks excluded) is an error."""
        assert metrics.score("abc\nde", "").cer_ot == 1.0


class TestWordErrors:
    """WER works on whitespace tokens of the whole text."""

    def test_word_substitution_and_deletion(self) -> None:
        """'the cat sat' -> 'the bat': one substitution, one deletion."""
        s = metrics.score("the cat sat", "the bat")
        assert (s.word_errors, s.words) == (2, 3)

    def test_line_breaks_are_word_separators(self) -> None:
        """Words split across lines are the same words."""
        assert metrics.score("a b\nc", "a\nb c").word_errors == 0

    def test_punctuation_is_part_of_a_word(self) -> None:
        """'end.' and 'end' differ."""
        assert metrics.score("the end.", "the end").word_errors == 1


class TestBagOfWords:
    """Order-tolerant recall and precision over token multisets."""

    def test_counts_multiplicity(self) -> None:
        """A repeated reference word must be read twice to be fully recalled."""
        matched, ref, hyp = metrics.bag_of_words("to be or not to be", "be to not")
        assert (matched, ref, hyp) == (3, 6, 3)

    def test_unreadable_reference_tokens_are_ignored(self) -> None:
        """UNLV marks unreadable characters with '~': such tokens are not scored."""
        s = metrics.score("good ~ba~d word", "word good")
        assert s.bow_reference == 2
        assert s.bow_recall == 1.0


class TestTotals:
    """Totals are micro-averaged: long items weigh more."""

    def test_micro_average(self) -> None:
        """(1 error / 4 chars) + (0 / 16) = 1/20, not the mean of rates."""
        t = metrics.total([metrics.score("abcd", "abxd"), metrics.score("a" * 16, "a" * 16)])
        assert t.cer == pytest.approx(1 / 20)

    def test_empty_total(self) -> None:
        """No items: zero rates, no division by zero."""
        assert metrics.total([]).cer == 0.0
