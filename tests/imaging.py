"""Helpers that build benign test inputs: encoded images and hand-made hostile headers."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

Pixels = npt.NDArray[np.uint8]

#: What each dihedral variant name does to the pixels, in numpy terms (np.rot90 turns
#: counter-clockwise): variant "X" is the hash of the image with X applied.
DIHEDRAL_EDITS: dict[str, Callable[[Pixels], Pixels]] = {
    "original": lambda a: a,
    "rotate-90": lambda a: np.rot90(a, 1),
    "rotate-180": lambda a: np.rot90(a, 2),
    "rotate-270": lambda a: np.rot90(a, 3),
    "flip-vertical": lambda a: a[::-1],
    "flip-horizontal": lambda a: a[:, ::-1],
    "transpose": lambda a: a.transpose(1, 0, 2),
    "transverse": lambda a: np.rot90(a, 2).transpose(1, 0, 2),
}


def encode(pixels: npt.NDArray[np.uint8] | Image.Image, fmt: str, **options: Any) -> bytes:
    image = pixels if isinstance(pixels, Image.Image) else Image.fromarray(pixels)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG that declares `width` x `height` pixels: a decompression bomb's shape."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )
