"""Decode the recognizer's per-frame character probabilities: greedy or lexicon beam search.

The beam search is a CTC prefix beam search whose hypotheses are scored, word by word, by
the word frequencies wordfreq ships in its wheel (a unigram language model per language):
a finished word adds ``alpha * ln(frequency) + beta``, an unknown one ``alpha * ln(oov) +
beta``, and a word being written that no lexicon word starts with pays the unknown-word cost
at once, so such beams fall behind early. English pages use a bigram model instead where it
knows the pair: ``ln P(word | previous word)`` from wordsegment's pair counts, else the
word's frequency times a backoff factor. Numbers and punctuation are scored by the image
alone. The image still decides: a word the recognizer is sure of survives even when the
lexicon does not know it.
"""

from __future__ import annotations

import bisect
import marshal
import math
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt
from rapidfuzz.distance import Levenshtein

from ocrwatch.wordcache import load_or_build

__all__ = [
    "VARIANTS",
    "WORDFREQ_LANGUAGES",
    "BeamSettings",
    "Lexicon",
    "beam_search",
    "greedy",
    "lexicon_for",
    "likelier",
    "recognize_crops",
    "text_score",
]

#: Tesseract-style code -> wordfreq code, for the languages whose word lists wordfreq ships.
WORDFREQ_LANGUAGES: dict[str, str] = {
    "eng": "en",
    "spa": "es",
    "fra": "fr",
    "deu": "de",
    "ita": "it",
    "por": "pt",
    "nld": "nl",
    "cat": "ca",
    "ces": "cs",
    "fin": "fi",
    "nor": "nb",
    "pol": "pl",
    "swe": "sv",
    "dan": "da",
    "hun": "hu",
    "ron": "ro",
    "tur": "tr",
    "lit": "lt",
    "lav": "lv",
    "slk": "sk",
    "slv": "sl",
    "hrv": "sh",
    "isl": "is",
}

_NEG = -1e30
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


class Lexicon:
    """Lower-cased words of one or more languages with their ln(frequency) (wordfreq).

    ``pairs`` maps ``"previous word"`` to ln P(word | previous) for the word pairs a
    bigram model knows (English: wordsegment's counts); empty for other languages.
    """

    def __init__(self, logs: dict[str, float], pairs: dict[str, float] | None = None) -> None:
        self._log = logs
        self._sorted = sorted(logs)
        self._pairs = pairs or {}

    def __len__(self) -> int:
        return len(self._log)

    @property
    def has_pairs(self) -> bool:
        """Whether a bigram model scores word pairs."""
        return bool(self._pairs)

    def log_frequency(self, word: str) -> float | None:
        """Return ln(frequency) of ``word`` (any case), None when unknown."""
        return self._log.get(word.lower())

    def log_pair(self, previous: str, word: str) -> float | None:
        """Return ln P(word | previous) (any case), None when the pair is not known."""
        return self._pairs.get(f"{previous.lower()} {word.lower()}")

    def log_probability(self, word: str, previous: str = "", backoff: float = 0.0) -> float | None:
        """Return ln P(``word`` | ``previous``) (any case), None when the word is unknown.

        Where the bigram model knows the pair, its value; else ln(frequency), plus the log
        factor ``backoff`` when there is a word before ("" for none, or for no pairs).
        """
        lf = self.log_frequency(word)
        if lf is None or not previous:
            return lf
        pair = self.log_pair(previous, word)
        return lf + backoff if pair is None else pair

    def is_prefix(self, start: str) -> bool:
        """Whether some lexicon word starts with ``start`` (any case)."""
        start = start.lower()
        i = bisect.bisect_left(self._sorted, start)
        return i < len(self._sorted) and self._sorted[i].startswith(start)


_lock = threading.Lock()
#: Part of the cached lexicons' names: change it whenever _build_lexicon changes.
_LEXICON_BUILD = "2"


@cache
def _lexicon(codes: tuple[str, ...]) -> Lexicon:
    logs, pairs = load_or_build(
        f"lexicon-{'-'.join(codes)}",
        packages=("wordfreq", "wordsegment"),
        key=(_LEXICON_BUILD, *codes),
        build=lambda: _build_lexicon(codes),
        dump=marshal.dumps,
        load=marshal.loads,
    )
    return Lexicon(logs, pairs)


def _build_lexicon(codes: tuple[str, ...]) -> tuple[dict[str, float], dict[str, float]]:
    """Return ln(frequency) per word of ``codes`` and ln P(b | a) per English pair "a b"."""
    from wordfreq import get_frequency_dict

    merged: dict[str, float] = {}
    for code in codes:
        for entry, freq in get_frequency_dict(WORDFREQ_LANGUAGES[code], wordlist="best").items():
            # The decoder's words are runs of letters: "don't" and "l'eau" give their parts.
            for word in entry.replace("\u2019", "'").split("'"):
                if word.isalpha() and freq > merged.get(word, 0.0):
                    merged[word] = freq
    logs = {w: math.log(merged[w]) for w in sorted(merged) if merged[w] > 0}  # sorts fast later
    # Pairs only for English pages: on an eng+spa page they would favour English readings.
    return logs, _english_pairs() if codes == ("eng",) else {}


def _english_pairs() -> dict[str, float]:
    """Return ln P(b | a) for the 250,000 commonest English word pairs (wordsegment's data).

    wordsegment ships Peter Norvig's counts of the commonest words and word pairs of
    Google's web corpus; P(b | a) = count(a b) / count(a).
    """
    from importlib.resources import files

    root = files("wordsegment")
    counts: dict[str, int] = {}
    with (root / "unigrams.txt").open(encoding="utf-8") as fh:
        for line in fh:
            word, _, count = line.partition("\t")
            counts[word] = int(count)
    pairs: dict[str, float] = {}
    with (root / "bigrams.txt").open(encoding="utf-8") as fh:
        for line in fh:
            pair, _, count = line.partition("\t")
            first = counts.get(pair.partition(" ")[0])
            if first:
                pairs[pair] = math.log(int(count) / first)
    return pairs


def lexicon_for(languages: Sequence[str]) -> Lexicon | None:
    """Return the merged lexicon of ``languages`` (cached), None when wordfreq has none of them."""
    codes = tuple(sorted({c for c in languages if c in WORDFREQ_LANGUAGES}))
    if not codes:
        return None
    with _lock:  # built once per language set; read-only afterwards
        return _lexicon(codes)


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


def greedy(probs: npt.NDArray[np.float32], classes: Sequence[str]) -> tuple[str, float]:
    """Return best-path text of a (T, C) probability matrix and its mean character probability."""
    best = probs.argmax(axis=1)
    keep = best != 0
    keep[1:] &= best[1:] != best[:-1]
    chosen = best[keep]
    if chosen.size == 0:
        return "", 0.0
    score = float(probs[np.flatnonzero(keep), chosen].mean())
    return "".join(classes[k] for k in chosen), score


def _logadd(a: float, b: float) -> float:
    if a < b:
        a, b = b, a
    if b <= _NEG:
        return a
    return a + math.log1p(math.exp(b - a))


def _tail_word(text: str) -> str:
    i = len(text)
    while i > 0 and text[i - 1].isalpha():
        i -= 1
    return text[i:]


def beam_search(
    probs: npt.NDArray[np.float32],
    classes: Sequence[str],
    lexicon: Lexicon,
    settings: BeamSettings = BeamSettings(),
) -> str:
    """Return the best text of a (T, C) CTC probability matrix under ``lexicon``'s word scores."""
    pairs = settings.pairs and lexicon.has_pairs
    alpha = settings.pair_alpha if pairs else settings.alpha
    oov_cost = alpha * math.log(settings.oov) + settings.beta
    backoff = math.log(settings.backoff)

    def word_score(text: str) -> float:
        # ``text`` ends with the word just finished
        word = _tail_word(text)
        previous = _previous_word(text[: -len(word)]) if pairs else ""
        lp = lexicon.log_probability(word, previous, backoff)
        return oov_cost if lp is None else alpha * lp + settings.beta

    partials: dict[str, float] = {}  # the same word starts recur in every frame's beams

    def partial(word: str) -> float:
        score = partials.get(word)
        if score is None:
            score = partials[word] = _partial_score(word, lexicon, oov_cost)
        return score

    # prefix -> [log p ending in blank, log p ending in a character, word score so far]
    beams: dict[str, list[float]] = {"": [0.0, _NEG, 0.0]}
    blanks = np.log(np.maximum(probs[:, 0], 1e-30)).tolist()
    for cands, blank in zip(_candidates(probs, settings.prune), blanks, strict=True):
        nxt = _step(beams, cands, blank, classes, partial, word_score)
        ranked = sorted(nxt.items(), key=lambda kv: _logadd(kv[1][0], kv[1][1]) + kv[1][2])
        beams = dict(ranked[-settings.beam :])

    def final(item: tuple[str, list[float]]) -> float:
        prefix, (pb, pnb, lm) = item
        word = _tail_word(prefix)
        if word:
            lm += word_score(prefix) - partial(word)
        return _logadd(pb, pnb) + lm

    return max(beams.items(), key=final)[0]


def _previous_word(text: str) -> str:
    """Return the word before a word that starts after ``text``: "" unless only spaces part them."""
    stripped = text.rstrip(" ")
    if not stripped or stripped == text:
        return ""
    return _tail_word(stripped)


def _candidates(probs: npt.NDArray[np.float32], prune: float) -> list[list[tuple[int, float]]]:
    """Return, per frame, the characters above ``prune`` with their log probabilities.

    Found for all frames at once (the matrix has 18,710 columns; a per-frame scan in Python
    would dominate the time). A frame with none keeps its best non-blank character.
    """
    best = probs.argmax(axis=1)
    frames, chars = np.nonzero(probs >= prune)
    per_frame: list[list[tuple[int, float]]] = [[] for _ in range(probs.shape[0])]
    for t, k, p in zip(frames.tolist(), chars.tolist(), probs[frames, chars].tolist(), strict=True):
        if k:
            per_frame[t].append((k, math.log(p)))
    for t, cands in enumerate(per_frame):
        if not cands and best[t] != 0:
            cands.append((int(best[t]), math.log(max(float(probs[t, best[t]]), 1e-30))))
    return per_frame


def _step(
    beams: dict[str, list[float]],
    cands: list[tuple[int, float]],
    blank: float,
    classes: Sequence[str],
    partial: Callable[[str], float],
    word_score: Callable[[str], float],
) -> dict[str, list[float]]:
    """Extend every beam by one frame: a blank, the same character held, or a new one."""
    nxt: dict[str, list[float]] = {}
    for prefix, (pb, pnb, lm) in beams.items():
        total = _logadd(pb, pnb)
        e = _entry(nxt, prefix, lm)
        e[0] = _logadd(e[0], total + blank)
        last = prefix[-1] if prefix else ""
        for k, lp in cands:
            ch = classes[k]
            if ch == last:
                e[1] = _logadd(e[1], pnb + lp)  # the same character held
                base = pb + lp  # a repeat after a blank
            else:
                base = total + lp
            new = prefix + ch
            if new in nxt:
                nxt[new][1] = _logadd(nxt[new][1], base)
                continue
            new_lm = lm
            if not ch.isalpha() and last.isalpha():
                # a word ended: replace its provisional score by its real one
                new_lm += word_score(prefix) - partial(_tail_word(prefix))
            elif ch.isalpha():
                word = _tail_word(new)
                new_lm += partial(word) - partial(word[:-1])
            _entry(nxt, new, new_lm)[1] = base
    return nxt


def _entry(beams: dict[str, list[float]], prefix: str, lm: float) -> list[float]:
    e = beams.get(prefix)
    if e is None:
        e = beams[prefix] = [_NEG, _NEG, lm]
    return e


def _partial_score(word: str, lexicon: Lexicon, oov_cost: float) -> float:
    # A word still being written: nothing while some lexicon word starts like it, the
    # unknown-word cost as soon as none does (charged once, refunded when the word ends).
    if not word or lexicon.is_prefix(word):
        return 0.0
    return oov_cost


def recognize_crops(
    text_rec: Any,
    crops: Sequence[npt.NDArray[np.uint8]],
    *,
    lexicon: Lexicon | None,
    settings: BeamSettings = BeamSettings(),
) -> tuple[list[str], list[float]]:
    """Read line crops with rapidocr's recognizer; return texts and confidences.

    ``text_rec`` is rapidocr's loaded ``TextRecognizer`` (its preprocessing, batching and
    onnxruntime session are used as they are); the output matrix is decoded here: greedy
    when ``lexicon`` is None, else by :func:`beam_search`. The confidence is the greedy
    path's mean character probability either way.
    """
    classes: Sequence[str] = text_rec.postprocess_op.character
    n = len(crops)
    texts = [""] * n
    scores = [0.0] * n
    order = np.argsort([c.shape[1] / float(c.shape[0]) for c in crops])
    _, height, width = text_rec.rec_image_shape[:3]
    step = text_rec.rec_batch_num
    for start in range(0, n, step):
        idx = order[start : start + step]
        ratio = max([width / height] + [crops[k].shape[1] / crops[k].shape[0] for k in idx])
        batch = np.stack([text_rec.resize_norm_img(crops[k], ratio) for k in idx])
        preds = text_rec.session(batch.astype(np.float32))
        for row, k in enumerate(idx):
            text, score = greedy(preds[row], classes)
            if lexicon is not None and text:
                text = beam_search(preds[row], classes, lexicon, settings)
            texts[k], scores[k] = text, score
    return texts, scores
