"""Spaces around punctuation in the PP-OCR readings, set by the page's typography.

The recognizer reads the gap a writer leaves before a comma or a full stop as a space, and
sometimes misses the one after a comma. The readings are set the way the page's languages
print: no space before ``, . )`` anywhere, a space after ``,`` and ``;`` before a word, no
space inside an opening straight quote; before ``; : ! ?`` no space, except on French pages,
which take one (French typography). A page that mixes French with other languages keeps
those four as read. Only the paddle engine's readings pass here: an engine with its own
language model (Tesseract, Aspose) reaches the sidecar as it read.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["tidy_spacing"]

_SPACE_BEFORE_CLOSING = re.compile(r"(?<=\S) +(?=[,.)\]])")
_SPACE_BEFORE_HIGH = re.compile(r"(?<=\S) +(?=[;:!?])")
_LETTER_BEFORE_HIGH = re.compile(r"(?<=[^\W\d_])(?=[;:!?])")  # "mot;" but not "10:30"
_NO_SPACE_AFTER = re.compile(r"([,;])(?=[^\W\d_])")
_OPENING_QUOTE = re.compile(r'(^|(?<=\s))" +(?=\w)')
#: Languages that set a space before ; : ! ?
_SPACED_HIGH = frozenset({"fra"})


def tidy_spacing(text: str, languages: Sequence[str]) -> str:
    """Return ``text`` with the spaces around punctuation its page's languages use."""
    text = _SPACE_BEFORE_CLOSING.sub("", text)
    text = _NO_SPACE_AFTER.sub(r"\1 ", text)
    text = _OPENING_QUOTE.sub('"', text)
    spaced = {code in _SPACED_HIGH for code in languages}
    if spaced == {False}:
        text = _SPACE_BEFORE_HIGH.sub("", text)
    elif spaced == {True}:
        text = _LETTER_BEFORE_HIGH.sub(" ", text)
    return text
