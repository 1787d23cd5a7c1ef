"""Fill a demo inbox with sample documents rendered on the spot (no data files shipped)."""

from __future__ import annotations

import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont

FONTS = Path("/usr/share/fonts/truetype")
PRINTED = FONTS / "dejavu" / "DejaVuSerif.ttf"
HANDWRITING = FONTS / "fifthhorseman" / "dkg.ttf"


def _page(lines: list[str], font_path: Path, size: int, *, width: int = 1700) -> Image.Image:
    font = ImageFont.truetype(str(font_path if font_path.exists() else PRINTED), size)
    img = Image.new("L", (width, int(160 + len(lines) * size * 1.7)), 250)
    draw = ImageDraw.Draw(img)
    for i, line in enumerate(lines):
        draw.text((90, 80 + i * size * 1.7), line, fill=30, font=font)
    return img


def main(inbox: Path) -> None:
    """Write a printed letter (PNG), a handwritten note (JPEG), a 2-page PDF and a bad file."""
    inbox.mkdir(parents=True, exist_ok=True)
    letter = _page(
        [
            "Invoice 2026-114",
            "Thank you for your order of 24 November.",
            "Please pay within thirty days.",
        ],
        PRINTED,
        44,
    )
    letter.save(inbox / "letter.png")
    note = _page(
        ["Buy milk and bread", "Call Maria at five", "Meeting moved to Friday"], HANDWRITING, 64
    ).filter(ImageFilter.GaussianBlur(0.6))
    note.convert("RGB").save(inbox / "note.jpg", quality=85)
    sub = inbox / "spanish"
    sub.mkdir(exist_ok=True)
    pages = [
        _page(["La reunión es el martes.", "Traiga los documentos."], PRINTED, 44),
        _page(["Gracias por su atención.", "Un saludo cordial."], PRINTED, 44),
    ]
    pages[0].save(sub / "carta.pdf", save_all=True, append_images=pages[1:], resolution=200.0)
    (inbox / "not-really-an-image.jpg").write_text("This is a text file with a .jpg name.\n")
    print(f"demo: wrote 4 sample files into {inbox}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "demo/inbox"))
