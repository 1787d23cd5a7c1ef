"""CTC decoding of the recognizer's per-frame character probabilities: greedy or beam search.

The beam search is a CTC prefix beam search whose hypotheses are scored, word by word, by
the lexicon (:mod:`ocrwatch.handwriting.lexicon`): a finished word adds ``alpha *
ln(frequency) + beta``, an unknown one ``alpha * ln(oov) + beta``, and a word being written
that no lexicon word starts with pays the unknown-word cost at once, so such beams fall
behind early. English pages use the bigram model where it knows the pair, else the word's
frequency times a backoff factor. Numbers and punctuation are scored by the image alone.
The image still decides: a word the recognizer is sure of survives even when the lexicon
does not know it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from ocrwatch.handwriting.lexicon import Lexicon
from ocrwatch.handwriting.scoring import BeamSettings

__all__ = ["beam_search", "greedy"]

_NEG = -1e30


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
    settings: BeamSettings = BeamSettings(),  # noqa: B008 - frozen
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
