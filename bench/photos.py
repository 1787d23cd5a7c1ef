"""Turn page scans into phone-photo-like JPEGs (deterministic by seed).

The evaluation set has no phone photos, so this makes them: the page is printed on slightly
warm paper with pencil-like reduced contrast, photographed at an angle (perspective warp and
a small rotation) on a darker table, under uneven light (a brightness gradient plus a soft
shadow), through a slightly soft lens (Gaussian blur), with sensor noise, and saved as JPEG
at quality 60-80. Every random choice comes from one ``numpy`` generator seeded by the seed
and the file name, so a given (file, seed) always gives the same bytes.

CLI: ``python -m bench.photos SRC... --out DIR --seed N`` writes ``DIR/<stem>.jpg`` (and
copies ``<stem>.gt.txt`` beside it when one exists next to the source).
"""

from __future__ import annotations

import argparse
import io
import shutil
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

__all__ = ["PhotoParams", "main", "photograph", "photograph_file"]


@dataclass(frozen=True, slots=True)
class PhotoParams:
    """Ranges the random photo conditions are drawn from (uniformly)."""

    contrast: tuple[float, float] = (0.45, 0.7)  # ink darkness kept (pencil, faded ink)
    margin: tuple[float, float] = (0.05, 0.12)  # table visible around the page, per side
    corner_jitter: float = 0.05  # perspective: corner offsets as a share of the page side
    rotation_degrees: float = 3.0
    light_gradient: tuple[float, float] = (0.2, 0.4)  # brightness drop across the page
    shadow_strength: tuple[float, float] = (0.15, 0.35)
    blur_sigma: tuple[float, float] = (0.6, 1.3)
    noise_sigma: tuple[float, float] = (3.0, 7.0)
    jpeg_quality: tuple[int, int] = (60, 80)


def _seed_for(name: str, seed: int) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(name.encode("utf-8"))])


def photograph(
    image: Image.Image, *, seed: int, name: str = "", params: PhotoParams | None = None
) -> bytes:
    """Return JPEG bytes of a simulated phone photo of ``image`` (not modified).

    ``name`` (e.g. the file name) is mixed into the seed so each page gets its own conditions.
    """
    p = params or PhotoParams()
    rng = _seed_for(name, seed)
    gray = np.asarray(image.convert("L"), dtype=np.float32)
    h, w = gray.shape

    # Paper and ink: keep only part of the ink's darkness, on slightly warm paper.
    contrast = rng.uniform(*p.contrast)
    paper_rgb = np.array([rng.uniform(235, 250), rng.uniform(228, 242), rng.uniform(210, 230)])
    darkness = (255.0 - gray) / 255.0 * contrast
    page = paper_rgb[None, None, :] * (1.0 - darkness[..., None])

    # Canvas: a darker, slightly textured table around the page.
    margin = rng.uniform(*p.margin)
    mx, my = round(w * margin), round(h * margin)
    cw, ch = w + 2 * mx, h + 2 * my
    # Wood, grey desk or dark cloth: one brightness, a mild warm tint.
    table = rng.uniform(40, 110) * np.array([1.0, rng.uniform(0.85, 0.97), rng.uniform(0.7, 0.95)])
    texture = cv2.GaussianBlur(rng.normal(0, 12, (ch, cw)).astype(np.float32), (0, 0), 6)
    canvas = np.clip(table[None, None, :] + texture[..., None], 0, 255).astype(np.float32)

    # Perspective: page corners jittered, plus a small rotation about the centre.
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32)
    jitter = rng.uniform(-p.corner_jitter, p.corner_jitter, (4, 2)) * np.array(
        [w, h], dtype=np.float32
    )
    angle = np.deg2rad(rng.uniform(-p.rotation_degrees, p.rotation_degrees))
    centre = np.array([w / 2, h / 2], dtype=np.float32)
    rot = np.array(
        [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]], dtype=np.float32
    )
    dst = (src - centre + jitter) @ rot.T + centre + np.array([mx, my], dtype=np.float32)
    matrix = cv2.getPerspectiveTransform(src, dst.astype(np.float32))
    warped = cv2.warpPerspective(page.astype(np.float32), matrix, (cw, ch), flags=cv2.INTER_AREA)
    mask = cv2.warpPerspective(np.ones((h, w), np.float32), matrix, (cw, ch))
    photo = warped * mask[..., None] + canvas * (1.0 - mask[..., None])

    # Uneven light: a linear gradient in a random direction and one soft shadow blob.
    yy, xx = np.mgrid[0:ch, 0:cw].astype(np.float32)
    theta = rng.uniform(0, 2 * np.pi)
    ramp = (xx / cw - 0.5) * np.cos(theta) + (yy / ch - 0.5) * np.sin(theta)
    light = 1.0 - rng.uniform(*p.light_gradient) * (ramp - ramp.min()) / np.ptp(ramp)
    sx, sy = rng.uniform(0, cw), rng.uniform(0, ch)
    radius = rng.uniform(0.25, 0.5) * max(cw, ch)
    shadow = np.exp(-(((xx - sx) ** 2 + (yy - sy) ** 2) / (2 * radius**2)))
    light *= 1.0 - rng.uniform(*p.shadow_strength) * shadow
    photo *= light[..., None]

    # Lens and sensor.
    photo = np.asarray(cv2.GaussianBlur(photo, (0, 0), rng.uniform(*p.blur_sigma)), np.float32)
    photo += rng.normal(0, rng.uniform(*p.noise_sigma), photo.shape).astype(np.float32)
    out = Image.fromarray(np.clip(photo, 0, 255).astype(np.uint8), "RGB")
    buf = io.BytesIO()
    quality = int(rng.integers(p.jpeg_quality[0], p.jpeg_quality[1] + 1))
    out.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def photograph_file(src: Path, *, out_dir: Path, seed: int) -> Path:
    """Write the photo of ``src`` to ``out_dir/<stem>.jpg`` (+ its .gt.txt) and return it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with Image.open(src) as img:
        data = photograph(img, seed=seed, name=src.name)
    target = out_dir / f"{src.stem}.jpg"
    target.write_bytes(data)
    gt = src.with_name(f"{src.stem}.gt.txt")
    if gt.is_file():
        shutil.copyfile(gt, out_dir / gt.name)
    return target


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code."""
    parser = argparse.ArgumentParser(prog="python -m bench.photos", description=__doc__)
    parser.add_argument("sources", nargs="+", type=Path, metavar="SRC")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = parser.parse_args(argv)
    for src in args.sources:
        print(photograph_file(src, out_dir=args.out, seed=args.seed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
