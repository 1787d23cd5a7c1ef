"""Character and word error rates, plus an order-tolerant bag-of-words score.

Normalization (applied to reference and hypothesis alike before every figure):

1. Unicode NFC.
2. Line breaks: ``\\r\\n``, ``\\r`` and form feeds (``\\f``, the page separator of sidecars)
   become ``\\n``.
3. Within each line, runs of spaces, tabs and other horizontal whitespace collapse to one
   space; leading and trailing spaces of each line are stripped.
4. Blank lines are dropped; the remaining lines are joined with one ``\\n`` (no trailing one).
5. Case and punctuation are KEPT.

Each remaining line break counts as one character, so wrong line order and merged or split
lines are penalised, as in ``shared/docs/engines.md``.

- CER = sum of character Levenshtein edits / sum of reference characters (micro-average over
  all items of a set, line breaks included).
- WER = sum of word Levenshtein edits / sum of reference words, where words are the
  whitespace-split tokens of the whole normalized text.
- Bag of words (order-tolerant, for multi-column pages whose ground truth is in zone order):
  the multisets of whitespace tokens are intersected; recall = matched / reference tokens,
  precision = matched / hypothesis tokens (micro-averaged). Reference tokens containing ``~``
  (UNLV's mark for unreadable characters) are left out of both counts.

Edit distances come from ``rapidfuzz.distance.Levenshtein`` (unit costs).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from rapidfuzz.distance import Levenshtein

__all__ = [
    "Score",
    "bag_of_words",
    "char_edits",
    "normalize",
    "score",
    "total",
    "word_edits",
]

# Horizontal whitespace only: \n is the line separator we keep.
_HSPACE = re.compile(r"[^\S\n]+")
UNREADABLE = "~"


def normalize(text: str) -> str:
    """Return ``text`` normalized as the module docstring states (NFC, lines kept, ...)."""
    text = unicodedata.normalize("NFC", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\f", "\n")
    text = text.replace("\v", "\n").replace("\u2028", "\n").replace("\u2029", "\n")
    lines = (_HSPACE.sub(" ", line).strip() for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


def char_edits(reference: str, hypothesis: str) -> tuple[int, int]:
    """Return (character edits, reference length) of normalized texts."""
    ref, hyp = normalize(reference), normalize(hypothesis)
    return Levenshtein.distance(ref, hyp), len(ref)


def word_edits(reference: str, hypothesis: str) -> tuple[int, int]:
    """Return (word edits, reference word count) over whitespace tokens of normalized texts."""
    ref, hyp = normalize(reference).split(), normalize(hypothesis).split()
    return Levenshtein.distance(ref, hyp), len(ref)


def bag_of_words(reference: str, hypothesis: str) -> tuple[int, int, int]:
    """Return (matched tokens, reference tokens, hypothesis tokens), ignoring order.

    Reference tokens containing ``~`` (unreadable in the ground truth) are not counted.
    """
    ref = Counter(t for t in normalize(reference).split() if UNREADABLE not in t)
    hyp = Counter(normalize(hypothesis).split())
    matched = sum((ref & hyp).values())
    return matched, sum(ref.values()), sum(hyp.values())


@dataclass(frozen=True, slots=True)
class Score:
    """Raw counts for one item or a micro-averaged total; rates are derived properties."""

    char_errors: int = 0
    chars: int = 0
    word_errors: int = 0
    words: int = 0
    bow_matched: int = 0
    bow_reference: int = 0
    bow_hypothesis: int = 0

    @property
    def cer(self) -> float:
        """Character error rate (0 for an empty reference with an empty hypothesis)."""
        return _rate(self.char_errors, self.chars)

    @property
    def wer(self) -> float:
        """Word error rate."""
        return _rate(self.word_errors, self.words)

    @property
    def bow_recall(self) -> float:
        """Share of reference words found anywhere in the hypothesis."""
        return 1.0 - _rate(self.bow_reference - self.bow_matched, self.bow_reference)

    @property
    def bow_precision(self) -> float:
        """Share of hypothesis words that are in the reference."""
        return 1.0 - _rate(self.bow_hypothesis - self.bow_matched, self.bow_hypothesis)

    def __add__(self, other: Score) -> Score:
        return Score(
            self.char_errors + other.char_errors,
            self.chars + other.chars,
            self.word_errors + other.word_errors,
            self.words + other.words,
            self.bow_matched + other.bow_matched,
            self.bow_reference + other.bow_reference,
            self.bow_hypothesis + other.bow_hypothesis,
        )

    def as_dict(self) -> dict[str, float | int]:
        """Return counts and rates as JSON-able data."""
        return {
            "cer": round(self.cer, 5),
            "wer": round(self.wer, 5),
            "bow_recall": round(self.bow_recall, 5),
            "bow_precision": round(self.bow_precision, 5),
            "char_errors": self.char_errors,
            "chars": self.chars,
            "word_errors": self.word_errors,
            "words": self.words,
            "bow_matched": self.bow_matched,
            "bow_reference": self.bow_reference,
            "bow_hypothesis": self.bow_hypothesis,
        }


def _rate(errors: int, total_: int) -> float:
    if total_ == 0:
        return 0.0 if errors == 0 else 1.0
    return errors / total_


def score(reference: str, hypothesis: str) -> Score:
    """Return the counts of one item (reference = ground truth)."""
    ce, cn = char_edits(reference, hypothesis)
    we, wn = word_edits(reference, hypothesis)
    bm, br, bh = bag_of_words(reference, hypothesis)
    return Score(ce, cn, we, wn, bm, br, bh)


def total(scores: Iterable[Score]) -> Score:
    """Return the micro-averaged sum of ``scores``."""
    out = Score()
    for s in scores:
        out = out + s
    return out
