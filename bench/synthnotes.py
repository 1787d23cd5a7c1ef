"""Held-out handwritten-looking office notes, rendered with handwriting fonts (deterministic).

The product's handwriting settings were tuned on the IAM pages of ``../shared/eval``; these
notes check that they hold on text, layouts and photo conditions that set never showed:
36 original short notes (24 English, 12 Spanish with accents, ñ, ¿ and ¡; shopping lists,
phone messages, meeting notes, reminders with times, prices and phone numbers), each
rendered with one of four Debian handwriting font families at a varied size, with uneven
letter and word spacing, a per-line slope and baseline wobble, a little per-letter rotation
and jitter, in blue ballpoint, black pen or pencil grey, on plain, ruled, squared or sticky
note paper. Optionally each note then goes through :func:`bench.photos.photograph`.

Fonts are far more regular than real handwriting: every "a" of a note has the same shape,
letters never join the way cursive does, and no writer's slant or slips show. Scores here say
whether the product generalizes to new text, layouts, inks, papers and photo conditions; they
do not say how it reads real people's handwriting (IAM and real phone photos do that).

Each note is written as ``<id>.png`` (or ``<id>.jpg`` for photos) plus ``<id>.gt.txt`` (one
line per written line, UTF-8, ending with a newline): the layout of the eval folders.
``manifest.json`` beside them records the font, ink, paper and size of every note. A note in
the Humor Sans family is written in capitals (the font has no lower case) and its ground
truth is upper-cased to match. Every random choice comes from a generator seeded by the seed
and the note id, so a given (seed, note) always gives the same bytes.

CLI: ``python -m bench.synthnotes --out DIR --seed N [--photo hard|mild|none]
[--lang eng|spa|all]``.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import sys
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from bench import photos

__all__ = [
    "FONT_FAMILIES",
    "FONT_ROOT",
    "NOTES",
    "FontsMissingError",
    "Ink",
    "Note",
    "Paper",
    "PhotoChoice",
    "RenderedNote",
    "check_fonts",
    "main",
    "render_note",
    "write_notes",
]

FONT_ROOT = Path("/usr/share/fonts/truetype")


@dataclass(frozen=True, slots=True)
class FontFamily:
    """A handwriting font family: its files (relative to the font root) and Debian package."""

    name: str
    files: tuple[str, ...]
    package: str
    capitals_only: bool = False


FONT_FAMILIES: tuple[FontFamily, ...] = (
    FontFamily(
        "dkg",
        (
            "fifthhorseman/dkg.ttf",
            "fifthhorseman/dkgIt.ttf",
            "fifthhorseman/dkgBd.ttf",
            "fifthhorseman/dkgBI.ttf",
        ),
        "fonts-dkg-handwriting",
    ),
    FontFamily("breip", ("breip/Breip.ttf",), "fonts-breip"),
    FontFamily("femkeklaver", ("femkeklaver/femkeklaver.ttf",), "fonts-femkeklaver"),
    FontFamily("humor-sans", ("humor-sans/Humor-Sans.ttf",), "fonts-humor-sans", True),
)


class FontsMissingError(RuntimeError):
    """A handwriting font file is missing; the message names the Debian packages to install."""


class Ink(StrEnum):
    """What the note is written with."""

    BLUE_BALLPOINT = "blue ballpoint"
    BLACK_PEN = "black pen"
    PENCIL = "pencil"


class Paper(StrEnum):
    """What the note is written on."""

    PLAIN = "plain"
    RULED = "ruled"
    SQUARED = "squared"
    STICKY = "sticky note"


class PhotoChoice(StrEnum):
    """How the rendered note is handed to the product."""

    NONE = "none"  # the rendered note itself, as a 300 dpi PNG "scan"
    MILD = "mild"  # bench.photos' default conditions
    HARD = "hard"  # bench.photos.HARD: 12 MP, curl, glare, motion blur, EXIF orientation


@dataclass(frozen=True, slots=True)
class Note:
    """One note: an id (the file stem), its language (Tesseract code) and its lines."""

    id: str
    language: str
    lines: tuple[str, ...]


def _notes(language: str, texts: Sequence[str]) -> tuple[Note, ...]:
    return tuple(
        Note(f"{language}-{i:02d}", language, tuple(text.strip("\n").split("\n")))
        for i, text in enumerate(texts, start=1)
    )


_ENGLISH = (
    "Shopping list\n- milk (2 L)\n- eggs x12\n- coffee filters\n- printer paper A4\n"
    "- bananas\n- dish soap",
    "While you were out\nMr. Patel called at 10:15\nre: invoice #4471\n"
    "Please call back before 5pm\nTel 555-0193",
    "Team meeting 14/03\nBudget review moved to Friday\nAnna presents Q2 numbers\n"
    "Need 3 more chairs for room B\nAction: Tom to email vendors",
    "Reminder:\nDentist Tuesday 9:40\nBring insurance card",
    "Pick up kids at 3:15\nSoccer practice until 5\nDinner: pasta + salad",
    "Call the landlord about\nthe leaking tap in the kitchen\nRent due on the 1st: $1,250",
    "Order toner for printer 2\nHP 410A black, qty 2\nAsk Linda for the PO number",
    "To do\n1. Send the contract to Jim\n2. Book flights for May 12\n"
    "3. Renew parking permit\n4. Water the office plants",
    "Wifi for guests\nNetwork: OfficeGuest\nPassword: sunflower42",
    "Lunch order for Friday\nSam - chicken wrap\nPriya - veggie soup\nMark - tuna sandwich\n"
    "Julia - Caesar salad\nTotal $54.80",
    "Delivery came at 11:20\n2 boxes left at reception\nSigned by Karen",
    "Mom's birthday Saturday\nBuy flowers and a card\nCake from the bakery on Elm St\n"
    "Party starts at 6:30",
    "Car service\nOil change + tyre rotation\nGarage opens at 8am\nQuote was $189",
    "Interview schedule\n9:00 Sarah Jones\n10:30 Michael Brown\n1:15 Ana Lopez\n"
    "3:00 David Kim\nRoom 204, bring CVs",
    "Gym: Mon Wed Fri\nRun 5 km on Sunday\nDrink more water!",
    "Recipe for pancakes\n1 cup flour\n1 cup milk\n1 egg\n2 tbsp sugar\npinch of salt\n"
    "Cook on medium heat",
    "Plumber coming Thursday\nbetween 8 and 12\nLeave the back door open\n"
    "Key is under the blue pot",
    "Library books due March 28\nReturn 3 books\nFine is 25 cents a day",
    "Conference call notes\nClient wants draft by June 3\nChange logo colour to green\n"
    "Send revised quote\nNext call Wed 2pm",
    "Packing list\npassport\ncharger and adapter\nsunscreen\n2 shirts, 1 jacket\n"
    "boarding pass printed?",
    "Office supplies\nstaples\nsticky notes (yellow)\n3 black pens\nenvelopes C5\n"
    "whiteboard markers\nscissors\ntape\nbatteries AA\npaper clips",
    "Vet appointment for Max\nFriday 4:45pm\nVaccines + nail trim\nBring his records",
    "Note for night shift\nMachine 3 is making noise\nDo not use it until\n"
    "maintenance checks it\nCall Joe on ext. 212",
    "Pay bills\nElectric $86.20 by 15th\nPhone $45\nWater $31.75\nInternet $60 auto pay",
)

_SPANISH = (
    "Lista de la compra\n- leche y pan\n- huevos (una docena)\n- café molido\n"
    "- jamón y queso\n- plátanos",
    "Llamó la Sra. Núñez\na las 11:20\nQuiere cambiar la cita\nal jueves por la mañana\n"
    "Teléfono 612 345 789",
    "Reunión del lunes\n¿Quién prepara el informe?\nRevisar el presupuesto\n"
    "Próxima reunión: día 14",
    "¡No olvidar!\nPagar la luz antes del día 5\nRecoger el paquete en Correos",
    "Cumpleaños de Begoña\nsábado a las 19:30\nComprar regalo y tarta\n¿Traemos vino?",
    "Médico: martes 9:15\nLlevar la tarjeta sanitaria\ny los análisis de sangre",
    "Tareas de la semana\n1. Enviar facturas\n2. Llamar al fontanero\n"
    "3. Actualizar el catálogo\n4. Reservar la sala grande",
    "Pedido para la oficina\npapel A4, 5 paquetes\nbolígrafos azules\ngrapas y clips\n"
    "tóner para la impresora\nsobres grandes",
    "Mañana no hay clase\nEl niño se queda con la abuela\nRecogerlo a las 17:00",
    "Receta de tortilla\n6 huevos\n4 patatas medianas\n1 cebolla\naceite de oliva y sal\n"
    "Cocinar a fuego lento",
    "Aviso para todos\nLa máquina de café está rota\nEl técnico viene el miércoles\n"
    "Perdón por las molestias",
    "Viaje a Sevilla\nTren a las 8:45, andén 3\nHotel en la calle Betis, 21\n"
    "Volvemos el domingo\n¿Quién riega las plantas?\nLlaves: se las dejo a Íñigo",
)

#: The held-out notes: written for this benchmark, in no evaluation set.
NOTES: tuple[Note, ...] = _notes("eng", _ENGLISH) + _notes("spa", _SPANISH)

_DPI = 300  # a flatbed scan of a note; the product reads the PNG's dpi


@dataclass(frozen=True, slots=True)
class RenderedNote:
    """A rendered note: the page, its ground-truth lines and how it was drawn."""

    image: Image.Image
    lines: tuple[str, ...]
    font: str
    ink: Ink
    paper: Paper
    size: int  # font size in pixels at 300 dpi


def check_fonts(*, root: Path = FONT_ROOT) -> None:
    """Raise :class:`FontsMissingError` (naming the Debian packages) unless every font exists."""
    missing = [
        (family.package, root / rel)
        for family in FONT_FAMILIES
        for rel in family.files
        if not (root / rel).is_file()
    ]
    if missing:
        packages = sorted({package for package, _ in missing})
        all_packages = " ".join(family.package for family in FONT_FAMILIES)
        files = ", ".join(str(path) for _, path in missing)
        raise FontsMissingError(
            f"handwriting fonts missing ({files}); install the Debian packages "
            f"{' '.join(packages)} (all needed: apt-get install {all_packages})"
        )


@cache
def _font(path: Path, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(path), size)


@cache
def _writes(path: Path, char: str) -> bool:
    """Whether the font draws ``char``: some fonts map a glyph that has no ink (or none)."""
    if char.isspace():
        return True
    drawn = _pixels(_font(path, 48), char)
    # A private-use code point no handwriting font has: what the font draws for "missing".
    missing = _pixels(_font(path, 48), "\U0010fffd")
    return bool(drawn.any()) and (drawn.shape != missing.shape or bool((drawn != missing).any()))


def _pixels(font: ImageFont.FreeTypeFont, char: str) -> np.ndarray:
    img = Image.new("L", (96, 128), 0)
    ImageDraw.Draw(img).text((16, 96), char, fill=255, font=font, anchor="ls")
    return np.asarray(img)


def _written(family: FontFamily, lines: Sequence[str]) -> tuple[str, ...]:
    return tuple(line.upper() for line in lines) if family.capitals_only else tuple(lines)


def _usable(family: FontFamily, lines: Sequence[str], *, root: Path) -> bool:
    text = "".join(_written(family, lines))
    return all(_writes(root / rel, ch) for rel in family.files for ch in set(text))


def _rng(note: Note, seed: int) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(note.id.encode("utf-8"))])


def render_note(
    note: Note,
    *,
    seed: int,
    family: int = 0,
    paper: Paper | None = None,
    ink: Ink | None = None,
    root: Path = FONT_ROOT,
) -> RenderedNote:
    """Render ``note`` in font family ``family`` (index, wrapped; a family that cannot write
    one of its characters is skipped) and return the page and its ground truth.

    ``paper`` and ``ink`` replace the drawn ones (everything else stays as drawn). Raises
    :class:`FontsMissingError` when a font file is missing.
    """
    check_fonts(root=root)
    rng = _rng(note, seed)
    usable = [f for f in FONT_FAMILIES if _usable(f, note.lines, root=root)]
    if not usable:
        raise FontsMissingError(f"no handwriting font can write note {note.id}")
    fam = usable[family % len(usable)]
    font_path = root / fam.files[int(rng.integers(len(fam.files)))]
    lines = _written(fam, note.lines)

    size = int(rng.integers(44, 76))
    drawn_ink, drawn_paper = Ink(rng.choice(list(Ink))), Paper(rng.choice(list(Paper)))
    ink, paper = ink or drawn_ink, paper or drawn_paper
    pitch = size * rng.uniform(1.45, 1.9)
    margin_x = size * rng.uniform(0.8, 1.6)
    top = size * rng.uniform(1.2, 2.0)
    f = _font(font_path, size)
    longest = max(f.getlength(line) for line in lines)
    width = int(longest * 1.15 + 2 * margin_x + size * rng.uniform(0.0, 3.0))
    height = int(top + pitch * (len(lines) - 0.4) + size * rng.uniform(0.8, 3.0))

    # Ink coverage (0..1), drawn letter by letter so spacing and slope vary like a hand.
    alpha = np.zeros((height, width), np.float32)
    note_slope = rng.uniform(-1.2, 1.2)  # degrees: a writer's lines drift the same way
    for i, line in enumerate(lines):
        line_size = max(12, round(size * rng.uniform(0.94, 1.06)))
        lf = _font(font_path, line_size)
        slope = math.radians(note_slope + rng.normal(0.0, 0.5))
        wobble_amp = size * rng.uniform(0.01, 0.05)
        wobble_len = size * rng.uniform(4.0, 12.0)
        wobble_phase = rng.uniform(0, 2 * math.pi)
        x = margin_x + size * rng.uniform(-0.2, 0.4)
        baseline = top + i * pitch
        for ch in line:
            advance = lf.getlength(ch)
            if ch == " ":
                x += advance * rng.uniform(0.9, 1.8)
                continue
            y = (
                baseline
                + (x - margin_x) * math.tan(slope)
                + wobble_amp * math.sin(2 * math.pi * x / wobble_len + wobble_phase)
                + rng.normal(0.0, 0.015 * size)
            )
            turn = -math.degrees(slope) + rng.normal(0.0, 2.5)
            _stamp(alpha, ch, font=lf, x=x, y=y, degrees=turn)
            x += advance * rng.uniform(0.94, 1.14)

    page = _paper(paper, width, height, pitch=pitch, top=top, margin_x=margin_x, rng=rng)
    colour, alpha = _ink(ink, alpha, rng=rng)
    rgb = page * (1.0 - alpha[..., None]) + colour[None, None, :] * alpha[..., None]
    image = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")
    return RenderedNote(image, lines, font_path.name, ink, paper, size)


def _stamp(
    alpha: np.ndarray, ch: str, *, font: ImageFont.FreeTypeFont, x: float, y: float, degrees: float
) -> None:
    """Draw ``ch`` with its baseline's left end at (x, y), turned by ``degrees``, into alpha."""
    ascent, descent = font.getmetrics()
    pad = int(font.size) // 2
    w = int(font.getlength(ch)) + 2 * pad
    h = ascent + descent + 2 * pad
    glyph = Image.new("L", (max(w, 1), h), 0)
    ImageDraw.Draw(glyph).text((pad, pad + ascent), ch, fill=255, font=font, anchor="ls")
    glyph = glyph.rotate(degrees, resample=Image.Resampling.BICUBIC, center=(pad, pad + ascent))
    left, upper = round(x) - pad, round(y) - pad - ascent
    g = np.asarray(glyph, np.float32) / 255.0
    # Clip the glyph box to the page: a tall first letter may reach above the top edge.
    y0, x0 = max(upper, 0), max(left, 0)
    y1, x1 = min(upper + h, alpha.shape[0]), min(left + g.shape[1], alpha.shape[1])
    if y1 <= y0 or x1 <= x0:
        return
    part = g[y0 - upper : y1 - upper, x0 - left : x1 - left]
    np.maximum(alpha[y0:y1, x0:x1], part, out=alpha[y0:y1, x0:x1])


def _paper(
    kind: Paper,
    width: int,
    height: int,
    *,
    pitch: float,
    top: float,
    margin_x: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Return an RGB float page: paper colour with grain, and rules or squares if any."""
    if kind is Paper.STICKY:
        base = np.array([rng.uniform(245, 255), rng.uniform(232, 245), rng.uniform(120, 160)])
    else:
        base = np.full(3, rng.uniform(238, 252)) - np.array([0.0, 1.0, 4.0])
    grain = rng.normal(0.0, 2.0, (height, width, 1)).astype(np.float32)
    page = np.broadcast_to(base, (height, width, 3)).astype(np.float32) + grain
    rule = np.array([150.0, 185.0, 225.0])  # the light blue of school and office pads
    weight = rng.uniform(0.35, 0.6)
    # Handwriting sits a little above a printed rule; squares are half the line pitch.
    if kind is Paper.RULED:
        for k in range(1, int(height / pitch) + 2):
            yy = int(top + (k - 1) * pitch + pitch * 0.12)
            if 0 <= yy < height:
                page[yy : yy + 2] = page[yy : yy + 2] * (1 - weight) + rule * weight
        xx = int(margin_x * 0.6)
        page[:, xx : xx + 2] = page[:, xx : xx + 2] * 0.5 + np.array([230.0, 110.0, 110.0]) * 0.5
    elif kind is Paper.SQUARED:
        step = pitch / 2
        offset = (top + pitch * 0.12) % step
        for k in range(int(height / step) + 2):
            yy = int(offset + k * step)
            page[yy : yy + 1] = page[yy : yy + 1] * (1 - weight) + rule * weight
        for k in range(int(width / step) + 2):
            xx = int(k * step)
            page[:, xx : xx + 1] = page[:, xx : xx + 1] * (1 - weight) + rule * weight
    return page


def _ink(ink: Ink, alpha: np.ndarray, *, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Return the ink colour and its coverage after pressure and grain."""
    h, w = alpha.shape
    # Pressure changes slowly along the writing: a smooth field of 0.7..1.
    coarse = rng.uniform(0.7, 1.0, (max(2, h // 60), max(2, w // 60))).astype(np.float32)
    pressure = np.asarray(
        Image.fromarray(coarse, "F").resize((w, h), Image.Resampling.BICUBIC), np.float32
    )
    if ink is Ink.PENCIL:
        colour = np.full(3, rng.uniform(80, 115))
        grain = np.clip(rng.normal(1.0, 0.25, (h, w)), 0.3, 1.0).astype(np.float32)
        cover = alpha * pressure * grain * rng.uniform(0.6, 0.8)
    elif ink is Ink.BLUE_BALLPOINT:
        colour = np.array([rng.uniform(15, 45), rng.uniform(30, 60), rng.uniform(110, 160)])
        cover = alpha * pressure * rng.uniform(0.85, 0.97)
    else:
        colour = np.full(3, rng.uniform(15, 35))
        cover = alpha * np.clip(pressure + 0.15, 0, 1) * rng.uniform(0.9, 1.0)
    return colour, np.clip(cover, 0.0, 1.0).astype(np.float32)


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", dpi=(_DPI, _DPI))
    return buf.getvalue()


def write_notes(
    out_dir: Path,
    *,
    seed: int,
    photo: PhotoChoice = PhotoChoice.NONE,
    languages: Sequence[str] = ("eng", "spa"),
    limit: int | None = None,
    root: Path = FONT_ROOT,
) -> list[Path]:
    """Write the notes of ``languages`` (first ``limit`` of each) to ``out_dir``; return images.

    Each note is ``<id>.png`` (``photo`` none) or ``<id>.jpg`` plus ``<id>.gt.txt``; a
    ``manifest.json`` lists how each was drawn. Raises :class:`FontsMissingError` first thing
    when a font is missing.
    """
    check_fonts(root=root)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    manifest: list[dict[str, object]] = []
    for language in languages:
        notes = [n for n in NOTES if n.language == language][:limit]
        for index, note in enumerate(notes):
            # Families take turns (offset by the seed) so every font is in every set.
            rendered = render_note(note, seed=seed, family=index + seed, root=root)
            if photo is PhotoChoice.NONE:
                data, suffix = _png(rendered.image), ".png"
            else:
                params = photos.PRESETS[photos.Preset(photo.value)]
                data = photos.photograph(
                    rendered.image, seed=seed, name=f"{note.id}.png", params=params
                )
                suffix = ".jpg"
            target = out_dir / f"{note.id}{suffix}"
            target.write_bytes(data)
            truth = "\n".join(rendered.lines) + "\n"
            (out_dir / f"{note.id}.gt.txt").write_text(truth, encoding="utf-8")
            written.append(target)
            manifest.append(
                {
                    "id": note.id,
                    "language": note.language,
                    "image": target.name,
                    "font": rendered.font,
                    "ink": rendered.ink.value,
                    "paper": rendered.paper.value,
                    "size_px": rendered.size,
                    "lines": len(rendered.lines),
                    "photo": photo.value,
                }
            )
    (out_dir / "manifest.json").write_text(
        json.dumps({"seed": seed, "notes": manifest}, indent=2, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code (2 when fonts are missing)."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.synthnotes",
        description=(__doc__ or "").split("\n\n")[0],
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--photo",
        type=PhotoChoice,
        choices=list(PhotoChoice),
        default=PhotoChoice.NONE,
        help="none: the rendered note as a 300 dpi PNG (default); mild or hard: a phone "
        "photo of it through bench.photos",
    )
    parser.add_argument(
        "--lang", choices=("eng", "spa", "all"), default="all", help="which notes (default all)"
    )
    parser.add_argument(
        "--font-root", type=Path, default=FONT_ROOT, help=f"font folder (default {FONT_ROOT})"
    )
    args = parser.parse_args(argv)
    languages = ("eng", "spa") if args.lang == "all" else (args.lang,)
    try:
        paths = write_notes(
            args.out, seed=args.seed, photo=args.photo, languages=languages, root=args.font_root
        )
    except FontsMissingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
