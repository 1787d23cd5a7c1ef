"""Word lists of the handwriting language model: each language's word frequencies, English pairs.

The frequencies are the ones wordfreq ships in its wheel (a unigram model per language);
English pages also get ``ln P(word | previous word)`` from the word-pair counts wordsegment
ships. Built once per language set and cached on disk (:mod:`ocrwatch.handwriting.wordcache`).
"""

from __future__ import annotations

import bisect
import marshal
import math
import threading
from collections.abc import Sequence
from functools import cache

from ocrwatch.handwriting.wordcache import load_or_build

__all__ = ["WORDFREQ_LANGUAGES", "Lexicon", "english_only", "lexicon_for"]

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
    return logs, _english_pairs() if english_only(codes) else {}


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




def english_only(languages: Sequence[str]) -> bool:
    """Return whether a page in ``languages`` is English only.

    The rules tuned on English and nothing else (word pairs, the spelling pass, the second
    reading's default) apply to such pages only: on an eng+spa page they would favour
    English readings.
    """
    return tuple(languages) == ("eng",)
