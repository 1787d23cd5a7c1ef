"""Test helpers that render their own images of text (no evaluation data in the repo)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
SANS = FONT_DIR / "DejaVuSans.ttf"
SERIF = FONT_DIR / "DejaVuSerif.ttf"
#: A handwriting font (Debian fonts-dkg-handwriting, installed by scripts/setup.sh).
HANDWRITING = Path("/usr/share/fonts/truetype/fifthhorseman/dkg.ttf")


def font(size: int = 40, *, path: Path = SANS) -> ImageFont.FreeTypeFont:
    """Return a TrueType font (DejaVu ships with Debian's fonts-dejavu-core)."""
    return ImageFont.truetype(str(path), size)


def render_lines(
    lines: Sequence[str],
    *,
    size: int = 40,
    margin: int = 40,
    line_gap: float = 1.6,
    width: int | None = None,
    font_path: Path = SANS,
    mode: str = "L",
) -> Image.Image:
    """Render ``lines`` of black text on white, one under the other, and return the image."""
    f = font(size, path=font_path)
    probe = ImageDraw.Draw(Image.new("L", (1, 1)))
    text_w = max(int(probe.textlength(line, font=f)) for line in lines)
    w = width or text_w + 2 * margin
    h = int(2 * margin + len(lines) * size * line_gap)
    img = Image.new(mode, (w, h), "white")
    draw = ImageDraw.Draw(img)
    for i, line in enumerate(lines):
        draw.text((margin, margin + i * size * line_gap), line, fill="black", font=f)
    return img


def save(img: Image.Image, path: Path, **params: Any) -> Path:
    """Save ``img`` to ``path`` (format from the suffix) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **params)
    return path


#: Two columns of text whose rows line up: naive top-to-bottom reading would interleave them.
LEFT_COLUMN = [
    "Apples are red and",
    "sweet to eat when",
    "they are ripe in the",
    "autumn, and pears",
    "are green or yellow",
    "in the same season.",
]
RIGHT_COLUMN = [
    "Dogs can bark at",
    "the postman while",
    "cats sleep on the",
    "sofa all afternoon",
    "and birds sing in",
    "the garden trees.",
]


def two_columns(left: Sequence[str], right: Sequence[str], *, size: int = 32) -> Image.Image:
    """Render two columns of text side by side, rows aligned, with a clear gutter."""
    f = font(size)
    img = Image.new("L", (1080, 120 + len(left) * size * 2), "white")
    draw = ImageDraw.Draw(img)
    for column, x in ((left, 40), (right, 560)):
        for i, text in enumerate(column):
            draw.text((x, 60 + i * int(size * 1.5)), text, fill="black", font=f)
    return img
