"""Turn page scans into phone-photo-like JPEGs (deterministic by seed).

The evaluation set has no phone photos, so this makes them: the page is printed on slightly
warm paper with pencil-like reduced contrast, photographed at an angle (perspective warp and
a small rotation) on a darker table, under uneven light (a brightness gradient plus a soft
shadow), through a slightly soft lens (Gaussian blur), with sensor noise, and saved as JPEG
at quality 60-80. Every random choice comes from one ``numpy`` generator seeded by the seed
and the file name, so a given (file, seed) always gives the same bytes.

Harder conditions, all off in the default :class:`PhotoParams` (whose output is pinned by a
test) and all on in :data:`HARD`: curled paper (a smooth non-linear warp of the sheet and
its outline, with the shading a bend causes), a glare spot (a soft bright blob that washes
ink out), motion blur (a short linear kernel at a random angle), a phone-sized frame (e.g.
4032 x 3024: table added around the page to the frame's 4:3 shape, then resized, so the lens
and sensor stages run at the output size) and an EXIF Orientation tag with the pixels stored
turned the way a phone sensor holds them (a viewer that applies EXIF shows the page
upright); :data:`HARD` also keeps the source's colours (blue ink, a yellow sticky note),
where the default photographs its grey levels. The extras draw from a second generator, so
switching one of them on or off leaves the other conditions of a (file, seed) as they were:
a hard photo is the mild photo plus extras, which lets a run attribute damage to one
condition.

CLI: ``python -m bench.photos SRC... --out DIR --seed N [--params mild|hard]`` writes
``DIR/<stem>.jpg`` (and copies ``<stem>.gt.txt`` beside it when one exists next to the
source).
"""

from __future__ import annotations

import argparse
import io
import shutil
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

__all__ = [
    "HARD",
    "MILD",
    "PRESETS",
    "PhotoParams",
    "Preset",
    "main",
    "photograph",
    "photograph_file",
]


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
    # Harder conditions; the defaults switch each one off.
    curl: tuple[float, float] = (0.0, 0.0)  # bend: peak displacement / the page's short side
    glare: tuple[float, float] = (0.0, 0.0)  # share of the way to white at the spot's centre
    motion_blur_px: tuple[float, float] = (0.0, 0.0)  # blur streak length, output pixels
    frame: tuple[int, int] | None = None  # output (long, short) side in pixels, e.g. 12 MP
    exif_orientations: tuple[int, ...] = ()  # EXIF Orientation values to draw from (1, 3, 6, 8)
    colour: bool = False  # keep the source's colours (the default photographs its grey levels)

    def __post_init__(self) -> None:
        """Refuse orientations a phone does not write and frames that are not landscape."""
        if not set(self.exif_orientations) <= set(_UNDO_ORIENTATION):
            raise ValueError(
                f"exif_orientations must be among 1, 3, 6, 8: {self.exif_orientations}"
            )
        if self.frame is not None and not self.frame[0] >= self.frame[1] > 0:
            raise ValueError(f"frame must be (long, short) pixels: {self.frame}")


#: Pixels as the sensor stores them for an EXIF Orientation, given the upright picture: the
#: inverse of what a viewer (``PIL.ImageOps.exif_transpose``) does to show it upright.
_UNDO_ORIENTATION: dict[int, Image.Transpose | None] = {
    1: None,
    3: Image.Transpose.ROTATE_180,
    6: Image.Transpose.ROTATE_90,
    8: Image.Transpose.ROTATE_270,
}
_EXIF_ORIENTATION_TAG = 0x0112

#: The default conditions (the ``photos`` set).
MILD = PhotoParams()

#: Real-phone-like: a 12 MP frame, harsher angle and light, curl, glare, motion blur, EXIF.
HARD = PhotoParams(
    contrast=(0.4, 0.7),
    margin=(0.04, 0.1),
    corner_jitter=0.07,
    rotation_degrees=5.0,
    light_gradient=(0.25, 0.5),
    shadow_strength=(0.2, 0.45),
    blur_sigma=(1.0, 2.2),
    noise_sigma=(4.0, 9.0),
    jpeg_quality=(75, 92),
    curl=(0.008, 0.025),
    glare=(0.45, 0.8),
    motion_blur_px=(3.0, 9.0),
    frame=(4032, 3024),
    exif_orientations=(1, 6, 6, 8, 3),  # most phone shots of a page are held portrait: 6
    colour=True,
)


class Preset(StrEnum):
    """Named photo conditions for the CLIs."""

    MILD = "mild"
    HARD = "hard"


PRESETS: dict[Preset, PhotoParams] = {Preset.MILD: MILD, Preset.HARD: HARD}


def _seed_for(name: str, seed: int, *, stream: int = 0) -> np.random.Generator:
    key = [seed, zlib.crc32(name.encode("utf-8"))]
    # Stream 0 keeps the original two-number key: the mild photos stay byte-identical.
    return np.random.default_rng([*key, stream] if stream else key)


def _on(bounds: tuple[float, float]) -> bool:
    return bounds[1] > 0


def _curl(
    h: int, w: int, *, amount: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return remap maps (x, y) of a gently bent sheet and the bend's shading factor."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    u, v = xx / w, yy / h

    def field(components: int) -> np.ndarray:
        # A few long waves (under 1.5 cycles per page): a bend, not a ripple.
        out = np.zeros((h, w), np.float32)
        for _ in range(components):
            fx, fy = rng.uniform(0.2, 1.4), rng.uniform(0.0, 0.6)
            phase, weight = rng.uniform(0, 2 * np.pi), rng.uniform(0.5, 1.0)
            out += weight * np.sin(2 * np.pi * (fx * u + fy * v) + phase).astype(np.float32)
        return out / max(float(np.abs(out).max()), 1e-6)

    # Text lines run along x, so the bend mostly moves ink up and down along a line.
    dy = field(3) * amount * min(h, w)
    dx = field(2) * 0.4 * amount * min(h, w)
    slope = np.gradient(dy, axis=1)
    shade = 1.0 - rng.uniform(2.0, 5.0) * slope / max(float(np.abs(slope).max()), 1e-6) * 0.02
    return xx + dx, yy + dy, shade.astype(np.float32)


def _glare(ch: int, cw: int, *, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Return a 0..1 map of a soft, elongated specular spot with a flat bright core."""
    yy, xx = np.mgrid[0:ch, 0:cw].astype(np.float32)
    gx, gy = rng.uniform(0.25, 0.75) * cw, rng.uniform(0.25, 0.75) * ch
    radius = rng.uniform(0.05, 0.12) * max(cw, ch)
    stretch, turn = rng.uniform(1.0, 2.5), rng.uniform(0, np.pi)
    a = (xx - gx) * np.cos(turn) + (yy - gy) * np.sin(turn)
    b = -(xx - gx) * np.sin(turn) + (yy - gy) * np.cos(turn)
    q = np.sqrt((a / stretch) ** 2 + b**2) / radius
    # Flat to about half the radius, gone by 1.5 radii: a lamp's reflection, not a haze.
    core = np.clip(1.3 * np.exp(-(q**2.5)), 0.0, 1.0)
    return np.asarray(strength * core, np.float32)


def _motion_kernel(length: float, angle: float) -> np.ndarray:
    """Return a normalized line kernel of ``length`` pixels at ``angle`` radians."""
    size = int(np.ceil(length)) | 1
    kernel = np.zeros((size, size), np.float32)
    c = (size - 1) / 2
    dx, dy = np.cos(angle) * (length - 1) / 2, np.sin(angle) * (length - 1) / 2
    shift = 4  # sub-pixel end points: cv2.line takes fixed-point coordinates
    p1 = (round((c - dx) * 16), round((c - dy) * 16))
    p2 = (round((c + dx) * 16), round((c + dy) * 16))
    cv2.line(kernel, p1, p2, 1.0, thickness=1, lineType=cv2.LINE_AA, shift=shift)
    return np.asarray(kernel / kernel.sum(), np.float32)


def photograph(
    image: Image.Image, *, seed: int, name: str = "", params: PhotoParams | None = None
) -> bytes:
    """Return JPEG bytes of a simulated phone photo of ``image`` (not modified).

    ``name`` (e.g. the file name) is mixed into the seed so each page gets its own conditions.
    """
    p = params or PhotoParams()
    rng = _seed_for(name, seed)
    extra = _seed_for(name, seed, stream=1)  # the harder conditions only
    gray = np.asarray(image.convert("L"), dtype=np.float32)
    h, w = gray.shape

    # Paper and ink: keep only part of the ink's darkness, on slightly warm paper.
    contrast = rng.uniform(*p.contrast)
    paper_rgb = np.array([rng.uniform(235, 250), rng.uniform(228, 242), rng.uniform(210, 230)])
    if p.colour:
        # Coloured ink and paper (blue ballpoint, a yellow sticky note) keep their hue.
        darkness = (255.0 - np.asarray(image.convert("RGB"), np.float32)) / 255.0 * contrast
        page = paper_rgb[None, None, :] * (1.0 - darkness)
    else:
        darkness = (255.0 - gray) / 255.0 * contrast
        page = paper_rgb[None, None, :] * (1.0 - darkness[..., None])
    sheet = np.ones((h, w), np.float32)
    if _on(p.curl):
        map_x, map_y, shade = _curl(h, w, amount=extra.uniform(*p.curl), rng=extra)
        page = np.asarray(
            cv2.remap(
                page.astype(np.float32),
                map_x,
                map_y,
                cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_REPLICATE,
            ),
            np.float32,
        )
        page *= shade[..., None]
        # The outline bends too: the table shows where an edge lifts away.
        sheet = np.asarray(
            cv2.remap(sheet, map_x, map_y, cv2.INTER_LINEAR, borderValue=0.0), np.float32
        )

    # Canvas: a darker, slightly textured table around the page.
    margin = rng.uniform(*p.margin)
    mx, my = round(w * margin), round(h * margin)
    cw, ch = w + 2 * mx, h + 2 * my
    base_cw, base_ch = cw, ch
    if p.frame is not None:
        # More table on the short side until the canvas has the frame's shape.
        aspect = p.frame[0] / p.frame[1]
        if ch >= cw:
            cw = max(cw, round(ch / aspect))
            ch = max(ch, round(cw * aspect))
        else:
            ch = max(ch, round(cw / aspect))
            cw = max(cw, round(ch * aspect))
        mx, my = mx + (cw - base_cw) // 2, my + (ch - base_ch) // 2
    # Wood, grey desk or dark cloth: one brightness, a mild warm tint.
    table = rng.uniform(40, 110) * np.array([1.0, rng.uniform(0.85, 0.97), rng.uniform(0.7, 0.95)])
    texture = cv2.GaussianBlur(rng.normal(0, 12, (base_ch, base_cw)).astype(np.float32), (0, 0), 6)
    if (ch, cw) != (base_ch, base_cw):
        texture = cv2.resize(texture, (cw, ch), interpolation=cv2.INTER_LINEAR)
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
    mask = cv2.warpPerspective(sheet, matrix, (cw, ch))
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
    del xx, yy, ramp, light, shadow
    if _on(p.glare):
        # Specular light adds to what the paper reflects: it lifts ink and paper to white.
        spot = _glare(ch, cw, strength=extra.uniform(*p.glare), rng=extra)
        photo += (262.0 - photo) * spot[..., None]
    if p.frame is not None:
        size = (p.frame[1], p.frame[0]) if ch >= cw else p.frame
        grow = size[0] * size[1] > cw * ch
        how = cv2.INTER_CUBIC if grow else cv2.INTER_AREA
        photo = np.asarray(cv2.resize(photo, size, interpolation=how), np.float32)

    # Lens and sensor.
    photo = np.asarray(cv2.GaussianBlur(photo, (0, 0), rng.uniform(*p.blur_sigma)), np.float32)
    if _on(p.motion_blur_px):
        length, turn = extra.uniform(*p.motion_blur_px), extra.uniform(0, np.pi)
        photo = np.asarray(cv2.filter2D(photo, -1, _motion_kernel(length, turn)), np.float32)
    noise_sigma = rng.uniform(*p.noise_sigma)
    if p.frame is None:
        photo += rng.normal(0, noise_sigma, photo.shape).astype(np.float32)
    else:
        # Draw (and drop) the mild photo's noise so the JPEG quality below stays the same draw.
        rng.normal(0, noise_sigma, (base_ch, base_cw, 3))
        photo += extra.normal(0, noise_sigma, photo.shape).astype(np.float32)
    out = Image.fromarray(np.clip(photo, 0, 255).astype(np.uint8), "RGB")
    del photo
    buf = io.BytesIO()
    quality = int(rng.integers(p.jpeg_quality[0], p.jpeg_quality[1] + 1))
    if not p.exif_orientations:
        out.save(buf, format="JPEG", quality=quality)
        return buf.getvalue()
    orientation = int(extra.choice(p.exif_orientations))
    undo = _UNDO_ORIENTATION[orientation]
    stored = out if undo is None else out.transpose(undo)
    exif = Image.Exif()
    exif[_EXIF_ORIENTATION_TAG] = orientation
    stored.save(buf, format="JPEG", quality=quality, exif=exif)
    return buf.getvalue()


def photograph_file(
    src: Path, *, out_dir: Path, seed: int, params: PhotoParams | None = None
) -> Path:
    """Write the photo of ``src`` to ``out_dir/<stem>.jpg`` (+ its .gt.txt) and return it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with Image.open(src) as img:
        data = photograph(img, seed=seed, name=src.name, params=params)
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
    parser.add_argument(
        "--params",
        type=Preset,
        choices=list(Preset),
        default=Preset.MILD,
        help="photo conditions: mild (the photos set, default) or hard (12 MP, curl, glare, "
        "motion blur, EXIF orientation)",
    )
    args = parser.parse_args(argv)
    for src in args.sources:
        print(photograph_file(src, out_dir=args.out, seed=args.seed, params=PRESETS[args.params]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
