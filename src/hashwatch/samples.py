"""Generated benign images, for the demo, tests and benchmarks.

hashwatch never needs real abuse material to be exercised: these images are synthetic scenes
(smooth colour fields, soft blobs, hard-edged shapes and a little sensor-like noise) that give
PDQ hashes of high quality, like photographs do, and that differ between seeds by about half of
PDQ's 256 bits, like unrelated photographs do. The same seed always gives the same image.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["encode", "generate_image", "transformed"]


def generate_image(seed: int, width: int = 640, height: int = 480) -> Image.Image:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    y /= height
    x /= width
    canvas = np.zeros((height, width, 3), dtype=np.float32)
    for _ in range(6):  # low-frequency colour waves: the broad layout of a scene
        fx, fy = rng.uniform(0.3, 3.0, size=2)
        phase = rng.uniform(0, 2 * np.pi)
        wave = np.sin(2 * np.pi * (fx * x + fy * y) + phase)
        canvas += wave[:, :, None] * rng.uniform(-40, 40, size=3)
    for _ in range(8):  # soft blobs: objects out of focus
        cx, cy = rng.uniform(0, 1, size=2)
        radius = rng.uniform(0.05, 0.3)
        blob = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * radius**2))
        canvas += blob[:, :, None] * rng.uniform(-90, 90, size=3)
    canvas += 128
    image = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(4, 9))):  # hard edges: objects in focus
        x0, x1 = sorted(rng.uniform(0, width, size=2))
        y0, y1 = sorted(rng.uniform(0, height, size=2))
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        if rng.random() < 0.5:
            draw.rectangle((x0, y0, x1, y1), fill=colour)
        else:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
    noisy = np.asarray(image, dtype=np.int16) + rng.normal(0, 4, size=(height, width, 3))
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def encode(image: Image.Image, fmt: str = "JPEG", **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def transformed(image: Image.Image, name: str) -> bytes:
    """A modified copy of the kind re-uploads carry, encoded: the demo's and tests' queries."""
    if name == "jpeg-q70":
        return encode(image, "JPEG", quality=70)
    if name == "half-size":
        half = image.resize((image.width // 2, image.height // 2), Image.Resampling.LANCZOS)
        return encode(half, "JPEG", quality=90)
    if name == "mirrored":
        return encode(image.transpose(Image.Transpose.FLIP_LEFT_RIGHT), "JPEG", quality=90)
    raise ValueError(f"unknown transform {name!r}")
