"""PDQ: Meta's 256-bit perceptual image hash, computed by the reference C++ code (`pdqhash`).

Values are 64 lower-case hex characters, the form ThreatExchange and HMA exchange: the 256 bits
that `pdqhash.compute` returns, packed most significant bit first. Two images match when their
hashes differ in at most 31 bits (the reference threshold). Each hash comes with a quality score
from 0 to 100; the reference advice is to not match on hashes of quality below 50, because
near-uniform images (blank frames, solid colours) produce unstable hashes that collide. A low
quality is measured again on the image's full tonal range (hashwatch.variants.pdq_hash), so that
darkening a copy does not hide it under the floor.
"""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
import numpy.typing as npt

from hashwatch.signals.base import PixelSignalType
from hashwatch.variants import MIN_QUALITY, VariantHash, pdq_hash, query_variants

__all__ = ["MIN_QUALITY", "PDQ"]


class PDQ(PixelSignalType):
    name = "pdq"
    description = "PDQ perceptual hash of the decoded pixels (256 bits)"
    default_threshold = 31
    max_threshold = 256
    hex_length = 64

    @classmethod
    def hash_pixels(cls, rgb: npt.NDArray[np.uint8]) -> tuple[str, int]:
        bits, quality = pdq_hash(rgb)
        return bits_to_hex(bits), int(quality)

    @classmethod
    def hash_variants(cls, rgb: npt.NDArray[np.uint8], kinds: Collection[str]) -> list[VariantHash]:
        return query_variants(rgb, dihedral="dihedral" in kinds, trim="trim" in kinds)


def bits_to_hex(bits: npt.NDArray[np.integer]) -> str:
    """Pack pdqhash's 256 0/1 integers into the exchanged hex form (first bit most significant)."""
    return np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes().hex()
