"""Character and word error rates, plus an order-tolerant bag-of-words score.

Normalization (applied to reference and hypothesis alike before every figure):

1. Unicode NFC.
2. Line breaks: ``\\r\\n``, ``\\r`` and form feeds (``\\f``, the page separator of sidecars)
   become ``\\n``.
3. Within each line, runs of spaces, tabs and other horizontal whitespace collapse to one
   space; leading and trailing spaces of each line are stripped.
4. Blank lines are dropped; the remaining lines are joined with one ``\\n`` (no trailing one).
5. Typographic punctuation is folded to its ASCII form: curly single quotes and primes to
   ``'``, curly double quotes to ``"``, hyphen and dash variants (U+2010-U+2015, minus sign)
   to ``-``, the ellipsis character to ``...``. Ground truths are typed in ASCII (UNLV, IAM,
   UW-III) while Tesseract prints the typographic marks that are on the page; without this
   fold every apostrophe of a magazine page would count as an error.
6. Otherwise case and punctuation are KEPT.

Each remaining line break counts as one character, so wrong line order and merged or split
lines are penalised, as in ``shared/docs/engines.md``.

``~`` in a reference is UNLV's mark for an unreadable byte (``Caf~~`` for "Café"): it matches
any one hypothesis character, or none, at no cost, and is not counted in the reference
length. It is applied on rapidfuzz's optimal unit-cost alignment (edits that touch a ``~``
are discounted), which can only over-count.

- CER = sum of character Levenshtein edits / sum of reference characters (micro-average over
  all items of a set, line breaks included).
- WER = sum of word Levenshtein edits / sum of reference words, where words are the
  whitespace-split tokens of the whole normalized text.
- Order-tolerant CER (``cer_ot``, for multi-column pages whose ground truth is in zone
  order, as ``shared/eval/README.md`` asks): reference and hypothesis lines are paired one to
  one so that the total edits are smallest (``scipy.optimize.linear_sum_assignment``); a
  paired line costs its Levenshtein edits, an unpaired line costs all its characters (a
  missing reference line: deletions; an extra hypothesis line: insertions). Divided by the
  reference characters without line breaks. Block order stops counting; merged or split
  lines still cost.
- Bag of words (order-tolerant, for multi-column pages whose ground truth is in zone order):
  the multisets of whitespace tokens are intersected; recall = matched / reference tokens,
  precision = matched / hypothesis tokens (micro-averaged). Reference tokens containing ``~``
  (UNLV's mark for unreadable characters) are left out of both counts.

Edit distances come from ``rapidfuzz.distance.Levenshtein`` (unit costs); the line pairing
from ``scipy.optimize.linear_sum_assignment``.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from rapidfuzz.distance import Levenshtein
from rapidfuzz.process import cdist
from scipy.optimize import linear_sum_assignment

__all__ = [
    "Score",
    "bag_of_words",
    "char_edits",
    "line_edits",
    "normalize",
    "score",
    "total",
    "word_edits",
]

# Horizontal whitespace only: \n is the line separator we keep.
_HSPACE = re.compile(r"[^\S\n]+")
UNREADABLE = "~"
_FOLD = str.maketrans(
    {
        **dict.fromkeys("\u2018\u2019\u201a\u201b\u2032", "'"),
        **dict.fromkeys("\u201c\u201d\u201e\u201f\u2033", '"'),
        **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212", "-"),
        "\u2026": "...",
    }
)


def normalize(text: str) -> str:
    """Return ``text`` normalized as the module docstring states (NFC, lines kept, ...)."""
    text = unicodedata.normalize("NFC", text).translate(_FOLD)
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\f", "\n")
    text = text.replace("\v", "\n").replace("\u2028", "\n").replace("\u2029", "\n")
    lines = (_HSPACE.sub(" ", line).strip() for line in text.split("\n"))
    return "\n".join(line for line in lines if line)


def _edits(ref: Sequence[Hashable], hyp: Sequence[Hashable], wild: Callable[[Any], bool]) -> int:
    """Levenshtein edits of ``hyp`` against ``ref``, where ``wild`` reference items are free."""
    if not any(wild(r) for r in ref):
        return int(Levenshtein.distance(ref, hyp))
    return sum(
        1
        for op in Levenshtein.editops(ref, hyp)
        if not (op.tag in ("replace", "delete") and wild(ref[op.src_pos]))
    )


def _is_unreadable(item: Any) -> bool:
    return isinstance(item, str) and UNREADABLE in item


def char_edits(reference: str, hypothesis: str) -> tuple[int, int]:
    """Return (character edits, scored reference length) of normalized texts."""
    ref, hyp = normalize(reference), normalize(hypothesis)
    return _edits(ref, hyp, _is_unreadable), len(ref) - ref.count(UNREADABLE)


def word_edits(reference: str, hypothesis: str) -> tuple[int, int]:
    """Return (word edits, scored reference word count) over whitespace tokens."""
    ref, hyp = normalize(reference).split(), normalize(hypothesis).split()
    return _edits(ref, hyp, _is_unreadable), sum(1 for t in ref if UNREADABLE not in t)


def line_edits(reference: str, hypothesis: str) -> tuple[int, int]:
    """Return (order-tolerant character edits, reference characters without line breaks).

    Lines are paired one to one at the least total cost (see the module docstring).
    """
    ref, hyp = normalize(reference).split("\n"), normalize(hypothesis).split("\n")
    ref = [r for r in ref if r]
    hyp = [h for h in hyp if h]
    size = sum(len(r) - r.count(UNREADABLE) for r in ref)
    if not ref or not hyp:
        return size if ref else sum(map(len, hyp)), size
    n, m = len(ref), len(hyp)
    pair = cdist(ref, hyp, scorer=Levenshtein.distance, dtype=np.int64)
    for i, r in enumerate(ref):
        if UNREADABLE in r:
            pair[i] = [_edits(r, h, _is_unreadable) for h in hyp]
    # Square (n+m) matrix: a reference line may stay unpaired (cost: all its characters), a
    # hypothesis line too; pairing two "unpaired" slots costs nothing.
    big = int(pair.max(initial=0)) + sum(map(len, ref)) + sum(map(len, hyp)) + 1
    cost = np.zeros((n + m, n + m), dtype=np.int64)
    cost[:n, :m] = pair
    cost[:n, m:] = big
    cost[n:, :m] = big
    cost[np.arange(n), m + np.arange(n)] = [len(r) - r.count(UNREADABLE) for r in ref]
    cost[n + np.arange(m), np.arange(m)] = [len(h) for h in hyp]
    rows, cols = linear_sum_assignment(cost)
    return int(cost[rows, cols].sum()), size


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
    ot_char_errors: int = 0
    ot_chars: int = 0
    ci_char_errors: int = 0  # character edits with both texts lower-cased

    @property
    def cer(self) -> float:
        """Character error rate (0 for an empty reference with an empty hypothesis)."""
        return _rate(self.char_errors, self.chars)

    @property
    def cer_ci(self) -> float:
        """Character error rate with both texts lower-cased (copiste_fr keeps its source's case)."""
        return _rate(self.ci_char_errors, self.chars)

    @property
    def cer_ot(self) -> float:
        """Order-tolerant character error rate (lines paired, block order ignored)."""
        return _rate(self.ot_char_errors, self.ot_chars)

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
            self.ot_char_errors + other.ot_char_errors,
            self.ot_chars + other.ot_chars,
            self.ci_char_errors + other.ci_char_errors,
        )

    def as_dict(self) -> dict[str, float | int]:
        """Return counts and rates as JSON-able data."""
        return {
            "cer": round(self.cer, 5),
            "cer_ci": round(self.cer_ci, 5),
            "cer_ot": round(self.cer_ot, 5),
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
            "ot_char_errors": self.ot_char_errors,
            "ot_chars": self.ot_chars,
            "ci_char_errors": self.ci_char_errors,
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
    oe, on = line_edits(reference, hypothesis)
    ci, _ = char_edits(reference.lower(), hypothesis.lower())
    return Score(ce, cn, we, wn, bm, br, bh, oe, on, ci)


def total(scores: Iterable[Score]) -> Score:
    """Return the micro-averaged sum of ``scores``."""
    out = Score()
    for s in scores:
        out = out + s
    return out
