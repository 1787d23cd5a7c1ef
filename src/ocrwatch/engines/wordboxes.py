"""Word boxes for engines that report only line or segment boxes (PP-OCR, corrected lines).

PP-OCR's detector boxes text *segments* (often a word or a few words) and its recognizer reads
each one; no character positions come back through the path ocrwatch uses. A segment's box is
split among its words in proportion to their characters (a space counts as one), which puts
each word within a character or two of where it is printed. Such words are marked
``estimated``. A line without a box gets no words: nothing can be placed.
"""

from __future__ import annotations

from collections.abc import Iterable

from ocrwatch.engines.base import Line, PixelBox, Word
from ocrwatch.engines.reading_order import Segment

__all__ = ["line_words", "retext", "split_box", "words_from_segments"]


def split_box(text: str, box: PixelBox, confidence: float | None) -> tuple[Word, ...]:
    """Return ``text``'s words with ``box`` divided by character counts, left to right."""
    tokens = text.split()
    left, top, right, bottom = box
    total = len(" ".join(tokens))
    if not tokens or total == 0 or right <= left:
        return ()
    step = (right - left) / total
    words: list[Word] = []
    pos = 0
    for token in tokens:
        x0 = left + round(pos * step)
        x1 = left + round((pos + len(token)) * step)
        words.append(
            Word(text=token, box=(x0, top, max(x1, x0 + 1), bottom), confidence=confidence,
                 estimated=True)
        )  # fmt: skip
        pos += len(token) + 1
    return tuple(words)


def words_from_segments(segments: Iterable[Segment]) -> tuple[Word, ...]:
    """Return the words of a line's segments (each segment's box split among its words)."""
    words: list[Word] = []
    for seg in segments:
        left, top, right, bottom = seg.box
        box = (max(0, int(left)), max(0, int(top)), round(right), round(bottom))
        words.extend(split_box(seg.text, box, seg.confidence))
    return tuple(words)


def line_words(line: Line) -> tuple[Word, ...]:
    """Return the line's words: the engine's own, else its box split by characters."""
    if line.words:
        return line.words
    if line.box is None:
        return ()
    return split_box(line.text, line.box, line.confidence)


def retext(line: Line, text: str) -> Line:
    """Return ``line`` with new ``text`` (a spelling fix), its word boxes kept where they fit."""
    tokens = text.split()
    if line.words and len(tokens) == len(line.words):
        words = tuple(
            Word(text=t, box=w.box, confidence=w.confidence, estimated=w.estimated)
            for t, w in zip(tokens, line.words, strict=True)
        )
    elif line.box is not None:
        words = split_box(text, line.box, line.confidence)
    else:
        words = ()
    return Line(text=text, confidence=line.confidence, box=line.box, words=words)
