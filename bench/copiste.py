"""copiste_fr split by text number: training, validation and held-out test writers.

The number in a file name (``imp_wikitexte_0172_2.jpg`` -> ``0172``) names the copied text;
pages ``_1``/``_2`` of one number share a writer, so every page of a number falls in one part.
The lists are fixed here (every 4th number from the second -> test, every 8th from the fourth
-> validation, of the 91 numbers in the set) so bench and training agree without the data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

__all__ = [
    "TEST_NUMBERS",
    "VALIDATION_NUMBERS",
    "LineBox",
    "Part",
    "line_boxes",
    "pages",
    "part_of",
    "text_number",
]

#: Held-out writers: never trained on, never used to choose a checkpoint or a setting.
TEST_NUMBERS = frozenset(
    [
        "0005",
        "0015",
        "0030",
        "0050",
        "0065",
        "0085",
        "0095",
        "0105",
        "0117",
        "0130",
        "0145",
        "0155",
        "0165",
        "0175",
        "0185",
        "0205",
        "0217",
        "0227",
        "0240",
        "0255",
        "0272",
        "0282",
        "0307",
    ]
)
#: Writers the training loop scores checkpoints on (and the LM weights are tuned on).
VALIDATION_NUMBERS = frozenset(
    [
        "0010",
        "0040",
        "0080",
        "0100",
        "0125",
        "0150",
        "0170",
        "0200",
        "0222",
        "0245",
        "0277",
    ]
)

_NUMBER = re.compile(r"_(\d{4})(?:_|\.|$)")


class Part(StrEnum):
    """Which part of the split a page belongs to."""

    TRAIN = "train"
    VALIDATION = "validation"
    TEST = "test"


@dataclass(frozen=True, slots=True)
class LineBox:
    """One written line of a page: its box (crop coordinates) and transcription."""

    box: tuple[int, int, int, int]
    text: str


def text_number(path: Path) -> str:
    """Return the text number in ``path``'s name; raise ValueError when it has none."""
    m = _NUMBER.search(path.name)
    if m is None:
        raise ValueError(f"no text number in {path.name}")
    return m.group(1)


def part_of(path: Path) -> Part:
    """Return the split part of the page ``path``."""
    number = text_number(path)
    if number in TEST_NUMBERS:
        return Part.TEST
    if number in VALIDATION_NUMBERS:
        return Part.VALIDATION
    return Part.TRAIN


def pages(folder: Path, part: Part | None = None) -> list[Path]:
    """Return the page images of ``folder`` (sorted), only those of ``part`` when given."""
    found = sorted(folder.glob("*.jpg"))
    return [p for p in found if part is None or part_of(p) == part]


def line_boxes(page: Path) -> list[LineBox]:
    """Return the lines of ``page`` from its ``<id>.lines.tsv`` (``x0 y0 x1 y1 text``)."""
    tsv = page.with_name(page.stem + ".lines.tsv")
    out: list[LineBox] = []
    for row in tsv.read_text(encoding="utf-8").splitlines():
        fields = row.split("\t")
        if len(fields) < 5 or not fields[4].strip():
            continue
        x0, y0, x1, y1 = (int(float(v)) for v in fields[:4])
        out.append(LineBox(box=(x0, y0, x1, y1), text=fields[4].strip()))
    return out
