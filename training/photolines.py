"""Make a scanned line crop look photographed by a phone (training augmentation).

A line-level generator of its own, not ``bench.photos`` (which makes the evaluation photos of
whole pages): uneven light, a shadow edge, faded or pencil-like ink, a slight shear and tilt,
resolution lost and blown up again, lens or motion blur, sensor noise and JPEG. Every choice
comes from the ``random.Random`` passed in, so a seeded stream gives the same lines.
"""

from __future__ import annotations

import io
import math
import random

import cv2
import numpy as np
from PIL import Image

__all__ = ["degrade"]


def degrade(image: Image.Image, rng: random.Random) -> Image.Image:
    """Return a greyscale copy of ``image`` with random phone-photo conditions applied."""
    arr = np.asarray(image.convert("L"), dtype=np.float32)
    h, w = arr.shape
    paper = float(np.percentile(arr, 90))

    # Faded ink or pencil: keep part of the ink's darkness.
    kept = rng.uniform(0.45, 0.95)
    arr = paper - (paper - arr) * kept

    # Shear and tilt (the page seen at an angle, locally close to affine).
    shear, angle = rng.uniform(-0.15, 0.15), math.radians(rng.uniform(-2.5, 2.5))
    if rng.random() < 0.7:
        c, s = math.cos(angle), math.sin(angle)
        m = np.array([[c, -s + shear, 0.0], [s, c, 0.0]], dtype=np.float32)
        m[:, 2] = np.array([w / 2, h / 2]) - m[:, :2] @ np.array([w / 2, h / 2])
        arr = cv2.warpAffine(arr, m, (w, h), borderMode=cv2.BORDER_REPLICATE)

    # Uneven light: a brightness gradient in a random direction, and maybe a shadow edge.
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    theta = rng.uniform(0, 2 * math.pi)
    ramp = (xx * math.cos(theta) + yy * math.sin(theta)) / max(1.0, math.hypot(w, h))
    ramp -= ramp.min()
    light = 1.0 - rng.uniform(0.1, 0.4) * ramp / max(1e-6, float(ramp.max()))
    if rng.random() < 0.4:
        edge = rng.uniform(0.2, 0.8) * w
        soft = rng.uniform(0.02, 0.15) * w
        side = 1.0 / (1.0 + np.exp(-(xx - edge - yy * rng.uniform(-0.5, 0.5)) / soft))
        if rng.random() < 0.5:
            side = 1.0 - side
        light *= 1.0 - rng.uniform(0.1, 0.35) * side
    arr = arr * light * rng.uniform(0.8, 1.05)

    # A glare spot washes the ink out.
    if rng.random() < 0.15:
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.3, 1.5) * h
        spot = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))
        arr = arr + (255.0 - arr) * rng.uniform(0.3, 0.7) * spot

    # Fewer pixels on the writing than a 300 dpi scan, scaled back up by the pipeline.
    if rng.random() < 0.6:
        f = rng.uniform(0.35, 0.8)
        small = cv2.resize(arr, (max(8, int(w * f)), max(8, int(h * f))), cv2.INTER_AREA)
        arr = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)

    # Lens blur or a short motion streak.
    if rng.random() < 0.3:
        length = rng.randint(3, 7)
        kernel = np.zeros((length, length), np.float32)
        kernel[length // 2, :] = 1.0 / length
        rot = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), rng.uniform(0, 180), 1)
        kernel = cv2.warpAffine(kernel, rot, (length, length))
        arr = cv2.filter2D(arr, -1, kernel / max(1e-6, float(kernel.sum())))
    elif rng.random() < 0.7:
        arr = cv2.GaussianBlur(arr, (0, 0), rng.uniform(0.5, 1.6))

    noise = np.random.default_rng(rng.randint(0, 2**31)).normal(0, rng.uniform(2, 8), arr.shape)
    out = Image.fromarray(np.clip(arr + noise, 0, 255).astype(np.uint8))
    buf = io.BytesIO()
    out.save(buf, "JPEG", quality=rng.randint(45, 90))
    buf.seek(0)
    with Image.open(buf) as jpeg:
        return jpeg.convert("L")
