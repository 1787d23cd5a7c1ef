"""The spelling pass over a recognized page: each line's words corrected, word boxes kept."""

from __future__ import annotations

from ocrwatch.engines.base import Line, PageResult
from ocrwatch.engines.wordboxes import retext
from ocrwatch.handwriting.spelling import correct_line

__all__ = ["correct_page"]


def correct_page(page: PageResult) -> tuple[PageResult, int]:
    """Return ``page`` with every line corrected, and how many words changed."""
    changed = 0
    lines: list[Line] = []
    for line in page.lines:
        fixed = correct_line(line.text)
        if fixed != line.text:
            changed += sum(
                a != b for a, b in zip(fixed.split(" "), line.text.split(" "), strict=False)
            )
            line = retext(line, fixed)
        lines.append(line)
    return PageResult(
        lines=tuple(lines), engine=page.engine, width=page.width, height=page.height
    ), changed
