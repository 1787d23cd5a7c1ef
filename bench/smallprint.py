"""A development set of small print: scanned-looking printed pages, 6-12 pt at 150-300 dpi.

The printed profile upscales pages whose measured text height is under
``preprocess.printed.text_height``; the evaluation sets hold no small print, so the threshold
is chosen on this set, never on them. Each page is an A4 or US letter sheet at its scan
resolution (150, 200 or 300 dpi) with one or two columns of text in one of five Debian fonts
(DejaVu Serif/Sans, Liberation Serif/Sans/Mono) at 6-12 pt, optionally under a bold heading,
then "scanned": rendered at twice the resolution and averaged down, turned by a small skew,
its strokes spread or thinned (toner), blurred, given paper tone, uneven light and noise,
and for some pages JPEG-compressed (quality 25-70) or thresholded to 1 bit like a fax (with
specks; half of them at standard fax resolution, every other scan line printed twice).
Point size and resolution take turns over the pages (a seeded shuffle of every pairing), so
every text height from about 12 to 50 px (em; x-height about 6 to 27 px) is present in a
set of 40.

The text is sentences of frequent English words (``wordfreq``) with numbers, amounts, dates,
times, phone and reference numbers and punctuation; nothing comes from the evaluation sets.

Written as ``<id>.png`` (dpi recorded) plus ``<id>.gt.txt`` (one line per printed line, in
reading order: heading, then the first column, then the second), the layout of the eval
folders, and ``manifest.json`` recording per page the font, point size, dpi, em and x-height
in pixels, columns, skew, blur, noise and degradation. Every random choice comes from a
generator seeded by the seed and the page number: a given (seed, page) gives the same bytes.

What it does not cover: real scanner optics and paper (show-through, stains, folds, punched
holes), fonts other than these five, tables, forms, mixed sizes within the body, italics,
photos and rules on the page, non-English text.

CLI: ``python -m bench.smallprint --out DIR --seed N [--pages N]``; the per-height breakdown
of ``bench.accuracy`` results on ``synth/smallprint``:
``python -m bench.smallprint --report RUN.json [RUN.json ...]``.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

__all__ = [
    "DPIS",
    "FONTS",
    "FONT_ROOT",
    "HEIGHT_BUCKETS",
    "POINT_SIZES",
    "Degradation",
    "FontsMissingError",
    "PageSpec",
    "RenderedPage",
    "breakdown",
    "check_fonts",
    "main",
    "page_spec",
    "render_page",
    "write_pages",
]

FONT_ROOT = Path("/usr/share/fonts/truetype")
POINT_SIZES: tuple[int, ...] = (6, 7, 8, 9, 10, 11, 12)
DPIS: tuple[int, ...] = (150, 200, 300)
DEFAULT_PAGES = 40
#: Paper sizes in inches (width, height).
PAPERS: dict[str, tuple[float, float]] = {"a4": (210 / 25.4, 297 / 25.4), "letter": (8.5, 11.0)}
#: Measured text height buckets (px, lower bounds) for the report.
HEIGHT_BUCKETS: tuple[float, ...] = (0, 10, 14, 18, 22, 28)
_SUPERSAMPLE = 2  # pages are drawn at twice the scan resolution, then averaged down


@dataclass(frozen=True, slots=True)
class Font:
    """A printing font: regular and bold files (relative to the font root), Debian package."""

    name: str
    regular: str
    bold: str
    package: str


FONTS: tuple[Font, ...] = (
    Font(
        "DejaVu Serif", "dejavu/DejaVuSerif.ttf", "dejavu/DejaVuSerif-Bold.ttf", "fonts-dejavu-core"
    ),
    Font("DejaVu Sans", "dejavu/DejaVuSans.ttf", "dejavu/DejaVuSans-Bold.ttf", "fonts-dejavu-core"),
    Font(
        "Liberation Serif",
        "liberation/LiberationSerif-Regular.ttf",
        "liberation/LiberationSerif-Bold.ttf",
        "fonts-liberation",
    ),
    Font(
        "Liberation Sans",
        "liberation/LiberationSans-Regular.ttf",
        "liberation/LiberationSans-Bold.ttf",
        "fonts-liberation",
    ),
    Font(
        "Liberation Mono",
        "liberation/LiberationMono-Regular.ttf",
        "liberation/LiberationMono-Bold.ttf",
        "fonts-liberation",
    ),
)


class FontsMissingError(RuntimeError):
    """A font file is missing; the message names the Debian packages to install."""


class Degradation(StrEnum):
    """What the scanner (or fax) did to the page after optics and noise."""

    GRAY = "gray"  # 8-bit grayscale, lossless
    JPEG = "jpeg"  # 8-bit grayscale through a JPEG at quality 35-75
    FAX = "fax"  # thresholded to 1 bit


@dataclass(frozen=True, slots=True)
class PageSpec:
    """How one page is drawn: everything random about it, drawn from its seed."""

    id: str
    font: int  # index into FONTS
    points: int
    dpi: int
    paper: str  # key of PAPERS
    columns: int
    heading: bool
    chars: int  # body text budget (characters)
    margin_in: float
    leading: float  # line pitch in em
    skew: float  # degrees, counter-clockwise positive
    blur: float  # Gaussian radius in scan pixels
    noise: float  # Gaussian noise sigma in gray levels
    ink_weight: float  # exponent on ink coverage: under 1 spread (bold), over 1 light toner
    paper_tone: int
    ink_tone: int
    degradation: Degradation
    jpeg_quality: int
    fax_standard: bool  # a fax at standard resolution: every other scan line, doubled
    text_seed: int


@dataclass(frozen=True, slots=True)
class RenderedPage:
    """A rendered page: the image (L or 1, dpi in info), its ground-truth lines, its spec."""

    image: Image.Image
    lines: tuple[str, ...]
    spec: PageSpec
    em_px: float  # points * dpi / 72
    x_height_px: float  # the font's "x" at this size, in scan pixels


def check_fonts(*, root: Path = FONT_ROOT) -> None:
    """Raise :class:`FontsMissingError` (naming the Debian packages) unless every font exists."""
    missing = [
        (font.package, root / rel)
        for font in FONTS
        for rel in (font.regular, font.bold)
        if not (root / rel).is_file()
    ]
    if missing:
        packages = " ".join(sorted({package for package, _ in missing}))
        files = ", ".join(str(path) for _, path in missing)
        raise FontsMissingError(f"fonts missing ({files}); apt-get install {packages}")


# --- text -------------------------------------------------------------------------------------

_MONTHS = (
    *("January", "February", "March", "April", "May", "June"),
    *("July", "August", "September", "October", "November", "December"),
)
_FIRST = ("Mr.", "Ms.", "Dr.", "Prof.")
_NAMES = ("Adams", "Baker", "Clark", "Evans", "Garcia", "Hughes", "Khan", "Lewis", "Moore")


# Frequent words a benchmark page should not print (wordfreq counts web text).
_UNPRINTED = frozenset(
    [
        "ass",
        "bitch",
        "bitches",
        "cock",
        "cunt",
        "damn",
        "dick",
        "fag",
        "fuck",
        "fucked",
        "fucking",
        "fuckin",
        "nigga",
        "niggas",
        "nigger",
        "porn",
        "pussy",
        "sex",
        "sexy",
        "shit",
        "slut",
        "whore",
    ]
)


@cache
def _words() -> tuple[str, ...]:
    from wordfreq import top_n_list

    return tuple(
        w
        for w in top_n_list("en", 6000)
        if w.replace("'", "").isalpha() and not w.startswith("'") and w not in _UNPRINTED
    )


def _word(rng: np.random.Generator) -> str:
    words = _words()
    # Zipf-like: frequent words more often, the long tail too.
    index = int(rng.pareto(0.7) * 30) + int(rng.integers(0, 40))
    word = words[index if index < len(words) else int(rng.integers(0, len(words)))]
    if word == "i" or word.startswith("i'"):
        word = "I" + word[1:]
    return word


def _number(rng: np.random.Generator) -> str:
    kind = int(rng.integers(0, 10))
    if kind == 0:
        return str(int(rng.integers(2, 2000)))
    if kind == 1:
        return f"${int(rng.integers(1, 99999)):,}.{int(rng.integers(0, 100)):02d}"
    if kind == 2:
        return f"{int(rng.integers(1, 100))}.{int(rng.integers(0, 10))}%"
    if kind == 3:
        day, month, year = rng.integers(1, 29), rng.integers(1, 13), rng.integers(1998, 2027)
        return f"{int(day):02d}/{int(month):02d}/{int(year)}"
    if kind == 4:
        month = _MONTHS[int(rng.integers(0, 12))]
        return f"{month} {int(rng.integers(1, 29))}, {int(rng.integers(1998, 2027))}"
    if kind == 5:
        return f"{int(rng.integers(1, 13))}:{int(rng.integers(0, 60)):02d}"
    if kind == 6:
        return f"({int(rng.integers(200, 999))}) 555-{int(rng.integers(0, 10000)):04d}"
    if kind == 7:
        return f"No. {int(rng.integers(100, 99999))}"
    if kind == 8:
        return f"{_FIRST[int(rng.integers(0, 4))]} {_NAMES[int(rng.integers(0, 9))]}"
    return f"{int(rng.integers(1, 500))}-{int(rng.integers(1, 500))}"


def _sentence(rng: np.random.Generator) -> str:
    words = [_word(rng) for _ in range(int(rng.integers(5, 19)))]
    if rng.random() < 0.45:
        words.insert(int(rng.integers(1, len(words) + 1)), _number(rng))
    if rng.random() < 0.1 and len(words) > 4:  # a parenthesis or quotation over 1-3 words
        start = int(rng.integers(1, len(words) - 2))
        end = start + int(rng.integers(0, 3))
        left, right = ("(", ")") if rng.random() < 0.6 else ('"', '"')
        words[start] = left + words[start]
        words[end] = words[end] + right
    for i in range(1, len(words) - 1):
        r = rng.random()
        if r < 0.07:
            words[i] += ","
        elif r < 0.08:
            words[i] += ";"
        elif r < 0.09:
            words[i] += ":"
        elif r < 0.1:
            words[i] += " -"
    words[0] = words[0][:1].upper() + words[0][1:]
    end = rng.choice([".", ".", ".", ".", ".", ".", "?", "!"])
    return " ".join(words) + str(end)


def _paragraphs(rng: np.random.Generator, chars: int) -> list[str]:
    out: list[str] = []
    total = 0
    while total < chars:
        paragraph = " ".join(_sentence(rng) for _ in range(int(rng.integers(2, 8))))
        out.append(paragraph)
        total += len(paragraph)
    return out


def _heading(rng: np.random.Generator) -> str:
    words = [_word(rng) for _ in range(int(rng.integers(2, 7)))]
    return " ".join(w[:1].upper() + w[1:] for w in words)


# --- layout and rendering ---------------------------------------------------------------------


def page_spec(seed: int, index: int) -> PageSpec:
    """Return the spec of page ``index`` (0-based) of the set made with ``seed``."""
    grid = [(p, d) for p in POINT_SIZES for d in DPIS]
    order = np.random.default_rng([seed, 7]).permutation(len(grid))
    points, dpi = grid[int(order[index % len(grid)])]
    rng = np.random.default_rng([seed, index])
    r = rng.random()
    degradation = (
        Degradation.FAX
        if r < 0.2 and dpi <= 200
        else Degradation.JPEG
        if r < 0.5
        else Degradation.GRAY
    )
    return PageSpec(
        id=f"sp-{index + 1:03d}",
        font=int(rng.integers(0, len(FONTS))),
        points=points,
        dpi=dpi,
        paper=str(rng.choice(["a4", "letter"])),
        columns=2 if rng.random() < 0.4 else 1,
        heading=bool(rng.random() < 0.5),
        chars=int(rng.integers(1200, 3200)),
        margin_in=float(rng.uniform(0.6, 1.0)),
        leading=float(rng.uniform(1.12, 1.35)),
        skew=0.0 if rng.random() < 0.3 else float(rng.uniform(-1.5, 1.5)),
        blur=float(rng.uniform(0.3, 1.1)),
        noise=float(rng.uniform(3.0, 14.0)),
        ink_weight=float(rng.uniform(0.6, 1.6)),
        paper_tone=int(rng.integers(205, 251)),
        ink_tone=int(rng.integers(10, 100)),
        degradation=degradation,
        jpeg_quality=int(rng.integers(25, 71)),
        fax_standard=bool(rng.random() < 0.5),
        text_seed=int(rng.integers(0, 2**31)),
    )


@cache
def _font(path: Path, size: float) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(path), size)


def _wrap(paragraph: str, font: ImageFont.FreeTypeFont, width: float) -> list[str]:
    lines: list[str] = []
    current = ""
    for word in paragraph.split(" "):
        trial = f"{current} {word}" if current else word
        if current and font.getlength(trial) > width:
            lines.append(current)
            current = word
        else:
            current = trial
    if current:
        lines.append(current)
    return lines


def render_page(spec: PageSpec, *, root: Path = FONT_ROOT) -> RenderedPage:
    """Draw ``spec``'s page as a scan and return it with its ground-truth lines."""
    family = FONTS[spec.font]
    s = _SUPERSAMPLE
    em = spec.points * spec.dpi / 72  # scan pixels
    body = _font(root / family.regular, em * s)
    bold = _font(root / family.bold, em * s * 1.35)
    width_in, height_in = PAPERS[spec.paper]
    size = (round(width_in * spec.dpi), round(height_in * spec.dpi))
    margin = spec.margin_in * spec.dpi * s
    full = size[0] * s - 2 * margin
    gutter = 0.3 * spec.dpi * s
    column = (full - gutter) / 2 if spec.columns == 2 else full
    pitch = em * s * spec.leading
    rng = np.random.default_rng(spec.text_seed)

    heading = _wrap(_heading(rng), bold, full) if spec.heading else []
    # Body lines; None marks a paragraph break (half a line of space).
    body_lines: list[str | None] = []
    for paragraph in _paragraphs(rng, spec.chars):
        if body_lines:
            body_lines.append(None)
        body_lines += _wrap(paragraph, body, column)
    top = margin + len(heading) * em * s * 1.35 * 1.3 + (pitch if heading else 0)
    rows = int((size[1] * s - margin - top) // pitch)
    per_column = math.ceil(len(body_lines) / spec.columns)
    per_column = min(per_column, rows)
    columns = [
        body_lines[i * per_column : (i + 1) * per_column][:rows] for i in range(spec.columns)
    ]

    big = Image.new("L", (size[0] * s, size[1] * s), 0)  # ink coverage, 255 = full ink
    draw = ImageDraw.Draw(big)
    lines: list[str] = []
    y = margin
    for text in heading:
        draw.text((margin, y), text, fill=255, font=bold, anchor="la")
        lines.append(text)
        y += em * s * 1.35 * 1.3
    for c, content in enumerate(columns):
        x = margin + c * (column + gutter)
        y = top
        for item in content:
            if item is None:
                y += pitch / 2
                continue
            draw.text((x, y), item, fill=255, font=body, anchor="la")
            lines.append(item)
            y += pitch
    cover = big.reduce(s)
    if spec.skew:
        cover = cover.rotate(spec.skew, resample=Image.Resampling.BICUBIC, fillcolor=0)
    page = _scan(cover, spec)
    page.info["dpi"] = (spec.dpi, spec.dpi)
    x_box = body.getbbox("x", anchor="ls")
    return RenderedPage(
        image=page,
        lines=tuple(lines),
        spec=spec,
        em_px=round(em, 2),
        x_height_px=round((x_box[3] - x_box[1]) / s, 2),
    )


def _scan(cover: Image.Image, spec: PageSpec) -> Image.Image:
    """Ink coverage -> scanned page: paper and ink tones, uneven light, noise, degradation."""
    rng = np.random.default_rng([spec.text_seed, 1])
    alpha = (np.asarray(cover, np.float32) / 255.0) ** spec.ink_weight
    cover = Image.fromarray(np.round(alpha * 255).astype(np.uint8), "L")
    alpha = np.asarray(cover.filter(ImageFilter.GaussianBlur(spec.blur)), np.float32) / 255.0
    h, w = alpha.shape
    # Light falling off a little towards one side of the scanner bed.
    ramp = np.linspace(0.0, float(rng.uniform(-0.04, 0.04)), w, dtype=np.float32)
    paper = spec.paper_tone * (1.0 + ramp)[None, :]
    gray = paper - alpha * (paper - spec.ink_tone)
    gray += rng.normal(0.0, spec.noise, size=(h, w)).astype(np.float32)
    out = Image.fromarray(np.clip(gray, 0, 255).astype(np.uint8), "L")
    if spec.degradation is Degradation.JPEG:
        buf = io.BytesIO()
        out.save(buf, format="JPEG", quality=spec.jpeg_quality)
        buf.seek(0)
        with Image.open(buf) as decoded:
            out = decoded.convert("L")
    elif spec.degradation is Degradation.FAX:
        if spec.fax_standard:  # 98 lines per inch: average row pairs, print each twice
            out = out.resize((w, (h + 1) // 2), Image.Resampling.BOX)
        threshold = (spec.paper_tone + spec.ink_tone) / 2 + float(rng.uniform(-20, 20))
        bits = np.asarray(out) > threshold
        specks = rng.random(bits.shape) < float(rng.uniform(0.0005, 0.002))
        out = Image.fromarray(bits ^ specks).convert("1")
        if spec.fax_standard:
            out = out.resize((w, h), Image.Resampling.NEAREST)
    return out


def _png(image: Image.Image, dpi: int) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG", dpi=(dpi, dpi))
    return buf.getvalue()


def write_pages(
    out_dir: Path, *, seed: int, pages: int = DEFAULT_PAGES, root: Path = FONT_ROOT
) -> list[Path]:
    """Write ``pages`` pages (``<id>.png`` + ``<id>.gt.txt``) and ``manifest.json``; return images.

    Raises :class:`FontsMissingError` before writing anything when a font is missing.
    """
    check_fonts(root=root)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    manifest: list[dict[str, Any]] = []
    for index in range(pages):
        rendered = render_page(page_spec(seed, index), root=root)
        spec = rendered.spec
        target = out_dir / f"{spec.id}.png"
        target.write_bytes(_png(rendered.image, spec.dpi))
        (out_dir / f"{spec.id}.gt.txt").write_text("\n".join(rendered.lines) + "\n", "utf-8")
        written.append(target)
        manifest.append(
            {
                "id": spec.id,
                "image": target.name,
                "font": FONTS[spec.font].name,
                "points": spec.points,
                "dpi": spec.dpi,
                "em_px": rendered.em_px,
                "x_height_px": rendered.x_height_px,
                "paper": spec.paper,
                "size": list(rendered.image.size),
                "columns": spec.columns,
                "heading": spec.heading,
                "lines": len(rendered.lines),
                "skew": round(spec.skew, 2),
                "blur": round(spec.blur, 2),
                "noise": round(spec.noise, 2),
                "degradation": spec.degradation.value,
            }
        )
    (out_dir / "manifest.json").write_text(
        json.dumps({"seed": seed, "pages": manifest}, indent=2) + "\n", encoding="utf-8"
    )
    return written


# --- report -----------------------------------------------------------------------------------


def _bucket(height: float | None) -> str:
    if height is None:
        return "none"
    low = max(b for b in HEIGHT_BUCKETS if b <= height)
    higher = [b for b in HEIGHT_BUCKETS if b > height]
    return f"{low:g}-{higher[0]:g}" if higher else f">={low:g}"


def measured_heights(folder: Path) -> dict[str, float | None]:
    """Return each page's text height as the printed profile measures it (before any upscale)."""
    from ocrwatch.recognition.preprocess import estimate_skew, estimate_text_height

    out: dict[str, float | None] = {}
    for image in sorted(folder.glob("*.png")):
        with Image.open(image) as img:
            gray = img.convert("L")
        skew = estimate_skew(gray)
        if abs(skew) >= 0.3:  # as the profile's deskew does before it measures
            gray = gray.rotate(-skew, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=255)
        out[image.name] = estimate_text_height(gray)
    return out


def breakdown(
    runs: Sequence[dict[str, Any]], manifest: dict[str, Any], heights: dict[str, float | None]
) -> list[dict[str, Any]]:
    """Return CER/WER per run and text-height bucket from ``bench.accuracy`` results."""
    from bench import metrics

    pages = {p["image"]: p for p in manifest["pages"]}
    rows: list[dict[str, Any]] = []
    for run in runs:
        label = " ".join(run.get("settings") or []) or "defaults"
        items = [it for it in run["items"] if it["set"] == "synth/smallprint"]
        groups: dict[str, list[dict[str, Any]]] = {}
        for it in items:
            groups.setdefault(_bucket(heights.get(it["item"])), []).append(it)
        for bucket in [*sorted(groups, key=_bucket_key), "all"]:
            chosen = items if bucket == "all" else groups[bucket]
            scores = [metrics.Score(**_score_fields(it)) for it in chosen]
            tot = metrics.total(scores)
            rows.append(
                {
                    "run": label,
                    "bucket": bucket,
                    "pages": len(chosen),
                    "points_dpi": sorted(
                        {(pages[it["item"]]["points"], pages[it["item"]]["dpi"]) for it in chosen}
                    ),
                    "cer": tot.cer,
                    "wer": tot.wer,
                    "s_per_page": float(np.median([it["seconds"] / it["pages"] for it in chosen])),
                }
            )
    return rows


def _bucket_key(bucket: str) -> float:
    return -1.0 if bucket == "none" else float(bucket.lstrip(">=").split("-")[0])


def _score_fields(item: dict[str, Any]) -> dict[str, Any]:
    from dataclasses import fields

    from bench import metrics

    return {f.name: item[f.name] for f in fields(metrics.Score)}


def _report(paths: Sequence[Path], *, seed: int | None, folder: Path | None) -> int:
    runs = [json.loads(p.read_text(encoding="utf-8")) for p in paths]
    # bench.accuracy generates the set with its photo seed, as many pages as it scored.
    seed = runs[0].get("photo_seed", 0) if seed is None else seed
    pages = max(sum(it["set"] == "synth/smallprint" for it in run["items"]) for run in runs)
    with tempfile.TemporaryDirectory(prefix="ocrwatch-smallprint-") as tmp:
        where = folder or Path(tmp)
        if not (where / "manifest.json").is_file():
            write_pages(where, seed=seed, pages=pages)
        manifest = json.loads((where / "manifest.json").read_text(encoding="utf-8"))
        heights = measured_heights(where)
    for page in manifest["pages"]:
        height = heights.get(page["image"])
        print(
            f"{page['id']}  {page['font']:<16} {page['points']:>2} pt {page['dpi']} dpi  "
            f"em {page['em_px']:5.1f}  x {page['x_height_px']:5.1f}  measured "
            f"{'-' if height is None else f'{height:4.0f}'}  {page['degradation']}"
        )
    rows = breakdown(runs, manifest, heights)
    print()
    print("| run | text height (px) | pages | CER | WER | s/page |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['run']} | {row['bucket']} | {row['pages']} | {row['cer']:.4f} | "
            f"{row['wer']:.4f} | {row['s_per_page']:.2f} |"
        )
    # The same as one row per height bucket, one column per run: CER / WER (s/page).
    labels = list(dict.fromkeys(row["run"] for row in rows))
    buckets = list(dict.fromkeys(row["bucket"] for row in rows))
    cell = {(row["run"], row["bucket"]): row for row in rows}
    print()
    print("| text height (px) | pages | " + " | ".join(labels) + " |")
    print("|---|---|" + "---|" * len(labels))
    for bucket in buckets:
        found = [cell.get((label, bucket)) for label in labels]
        pages = next(row["pages"] for row in found if row is not None)
        cells = [
            "-" if row is None else f"{row['cer']:.4f} / {row['wer']:.4f} ({row['s_per_page']:.1f})"
            for row in found
        ]
        print(f"| {bucket} | {pages} | " + " | ".join(cells) + " |")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code (2 when fonts are missing)."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.smallprint", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--out", type=Path, default=None, help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--pages", type=int, default=DEFAULT_PAGES, help="number of pages")
    parser.add_argument(
        "--report",
        type=Path,
        nargs="+",
        default=None,
        metavar="RUN.json",
        help="print CER/WER per measured text height of bench.accuracy results on "
        "synth/smallprint (the set is regenerated with the runs' seed, or --seed, into "
        "--out if given, or read from --out when it is there)",
    )
    parser.add_argument(
        "--font-root", type=Path, default=FONT_ROOT, help=f"font folder (default {FONT_ROOT})"
    )
    args = parser.parse_args(argv)
    try:
        if args.report:
            seed = args.seed if "--seed" in (argv if argv is not None else sys.argv) else None
            return _report(args.report, seed=seed, folder=args.out)
        if args.out is None:
            parser.error("--out is required")
        paths = write_pages(args.out, seed=args.seed, pages=args.pages, root=args.font_root)
    except FontsMissingError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
