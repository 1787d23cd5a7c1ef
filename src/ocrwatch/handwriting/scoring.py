"""Score readings under the language model: a text's mean word log probability, the likelier of two.

A word is scored as the beam search scores it (:meth:`Lexicon.log_probability`); the weights
of both live in :class:`BeamSettings`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from rapidfuzz.distance import Levenshtein

from ocrwatch.handwriting.lexicon import Lexicon

__all__ = ["VARIANTS", "BeamSettings", "likelier", "text_score"]

#: Two readings of one piece are variants of one text when at most this share of their
#: characters differ (Levenshtein distance / the longer length).
VARIANTS = 0.25


@dataclass(frozen=True, slots=True)
class BeamSettings:
    """Weights of the beam search (natural-log units)."""

    beam: int = 12
    alpha: float = 0.35  # weight of ln(word frequency)
    beta: float = 2.0  # bonus per word, against the LM's preference for fewer words
    oov: float = 1e-8  # frequency charged for a word the lexicon does not know
    prune: float = 1e-3  # characters below this probability in a frame are not tried
    pairs: bool = True  # score a word by the one before it where a bigram model knows the pair
    pair_alpha: float = 0.5  # replaces alpha when the lexicon has a bigram model
    backoff: float = 0.2  # factor on a known word's frequency when its pair is not known


_WORD = re.compile(r"[^\W\d_]+")


def text_score(text: str, lexicon: Lexicon, settings: BeamSettings = BeamSettings()) -> float:
    """Return the mean log probability of ``text``'s words under ``lexicon``'s language model.

    Each word is scored as :func:`beam_search` scores it, without the weights
    (:meth:`Lexicon.log_probability`), and ln(``settings.oov``) for an unknown word, the floor
    of every score. A text without words scores 0.
    """
    words = _WORD.findall(text)
    if not words:
        return 0.0
    floor = math.log(settings.oov)
    backoff = math.log(settings.backoff)
    pairs = settings.pairs and lexicon.has_pairs
    total = 0.0
    previous = ""
    for word in words:
        score = lexicon.log_probability(word, previous if pairs else "", backoff)
        total += floor if score is None else max(score, floor)
        previous = word
    return total / len(words)


def likelier(
    first: tuple[str, float],
    second: tuple[str, float],
    lexicon: Lexicon | None,
    *,
    weight: float,
    settings: BeamSettings = BeamSettings(),
) -> tuple[str, float]:
    """Return the likelier of two readings (text, confidence) of one piece; ``first`` on a tie.

    Between two variants of one text (at most :data:`VARIANTS` of their characters differ) a
    reading counts its confidence plus ``weight`` times :func:`text_score`: the recognizer's
    confidence alone cannot tell "nat" from "not". Readings further apart, say a line and
    one letter of it, are not variants: a short reading's few common words would win there,
    so the confidence alone decides, as it does without a lexicon or with ``weight`` 0.
    """
    if (
        lexicon is None
        or weight == 0.0
        or Levenshtein.normalized_distance(first[0], second[0]) > VARIANTS
    ):
        return second if second[1] > first[1] else first

    def total(reading: tuple[str, float]) -> float:
        return reading[1] + weight * text_score(reading[0], lexicon, settings)

    return second if total(second) > total(first) else first
