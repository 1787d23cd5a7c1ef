"""Spelling of English handwriting: an unknown word -> the most frequent close word.

Uses symspellpy's bundled English frequency dictionary (82,765 words, in the wheel). It runs
after the lexicon decoder (:mod:`~ocrwatch.handwriting.ctc_search`),
which keeps what the image says when the
right letters are not among a frame's likely characters; this pass then still fixes such
words (bench/README.md). Only alphabetic words of 3+ letters, not all in capitals, that are not
in the dictionary change: to the most frequent
word within edit distance 1 (words under 6 letters) or 2; leading/trailing punctuation and
an initial capital are kept. Numbers, codes and known words are never touched.
"""

from __future__ import annotations

import re
import threading
from functools import cache
from importlib.resources import files
from typing import Any

from ocrwatch.handwriting.wordcache import load_or_build

__all__ = ["NEVER_SUGGEST", "correct_line", "preload"]

_WORD = re.compile(r"([^\w]*)([A-Za-z]+)([^\w]*)")

#: Never proposed as a correction: the dictionary counts web text, where these outrank
#: ordinary words ("milx" would become "milf", not "milk"). Written exactly, they are kept.
NEVER_SUGGEST = frozenset(
    [
        "anal",
        "anus",
        "bitch",
        "boob",
        "boobs",
        "cock",
        "cocks",
        "cum",
        "cunt",
        "dick",
        "dildo",
        "fag",
        "faggot",
        "fuck",
        "fucked",
        "fucker",
        "fucking",
        "gangbang",
        "hentai",
        "horny",
        "jizz",
        "milf",
        "nigga",
        "nigger",
        "nude",
        "nudes",
        "orgasm",
        "penis",
        "porn",
        "porno",
        "pussy",
        "rape",
        "raped",
        "slut",
        "sluts",
        "tits",
        "titty",
        "twat",
        "vagina",
        "whore",
        "xxx",
    ]
)
_lock = threading.Lock()
_MAX_EDITS = 2  # the dictionary's index, and the cached copy's name, depend on both
_PREFIX_LENGTH = 5


@cache
def _symspell() -> Any:
    from symspellpy import SymSpell

    # prefix_length 5 instead of 7: far fewer deletes to index, so a much faster load
    # (bench/README.md, start-up); candidates are still checked against whole words.
    sym = SymSpell(max_dictionary_edit_distance=_MAX_EDITS, prefix_length=_PREFIX_LENGTH)

    def build() -> Any:
        path = files("symspellpy") / "frequency_dictionary_en_82_765.txt"
        sym.load_dictionary(str(path), term_index=0, count_index=1)
        return sym

    def load(data: bytes) -> Any:
        if not sym.load_pickle(data, compressed=False, from_bytes=True):
            raise ValueError("not a dictionary of these settings")
        return sym

    return load_or_build(
        "spelling-en",
        packages=("symspellpy",),
        key=(str(_MAX_EDITS), str(_PREFIX_LENGTH)),
        build=build,
        dump=lambda s: s.save_pickle(compressed=False, to_bytes=True),
        load=load,
    )


def _fix(token: str) -> str:
    from symspellpy import Verbosity

    m = _WORD.fullmatch(token)
    if not m or len(m.group(2)) < 3:
        return token
    pre, word, post = m.groups()
    if word.isupper():  # acronyms and words in capitals ("OCR") are left as written
        return token
    low = word.lower()
    sym = _symspell()
    if sym.lookup(low, Verbosity.TOP, max_edit_distance=0):
        return token
    hits = sym.lookup(low, Verbosity.CLOSEST, max_edit_distance=1 if len(low) < 6 else _MAX_EDITS)
    # CLOSEST: every suggestion at the smallest distance, most frequent first.
    allowed = [str(h.term) for h in hits if str(h.term) not in NEVER_SUGGEST]
    if not allowed:
        return token
    fixed = allowed[0]
    if word[0].isupper():
        fixed = fixed[0].upper() + fixed[1:]
    return pre + fixed + post


def preload() -> None:
    """Load the dictionary now, e.g. in a thread while the first page is being read."""
    with _lock:
        _symspell()


def correct_line(text: str) -> str:
    """Return ``text`` with unknown English words replaced by their closest frequent word."""
    with _lock:  # the dictionary loads once; lookups are read-only
        _symspell()
    return " ".join(_fix(t) for t in text.split(" "))
