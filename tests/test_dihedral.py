"""Dihedral PDQ hashes from one matrix product: each is the reference code's hash of the turned or
mirrored pixels, bit for bit, on photographs, generated scenes and awkward sizes."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pdqhash
import pytest

from hashwatch.dihedral import dihedral_bits, pdq_quality
from hashwatch.samples import generate_image
from hashwatch.variants import DIHEDRAL
from tests.imaging import DIHEDRAL_EDITS

Pixels = npt.NDArray[np.uint8]


def reference(pixels: Pixels) -> Pixels:
    return np.asarray(pdqhash.compute(np.ascontiguousarray(pixels))[0], dtype=np.uint8)


def assert_exact(pixels: Pixels) -> None:
    # Quality: the reference's truncation of each difference can tip on the last float bit.
    assert abs(pdq_quality(pixels) - int(pdqhash.compute(np.ascontiguousarray(pixels))[1])) <= 1
    found = dihedral_bits(pixels)
    assert list(found) == list(DIHEDRAL)
    for name, apply in DIHEDRAL_EDITS.items():
        assert np.array_equal(found[name], reference(apply(pixels))), name


@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea", "rocket", "hubble"])
def test_photographs(photos: dict[str, Pixels], name: str) -> None:
    assert_exact(photos[name])


@pytest.mark.parametrize("seed", range(6))
def test_generated_scenes(seed: int) -> None:
    assert_exact(np.asarray(generate_image(seed, 500 + 37 * seed, 300 + 23 * seed)))


@pytest.mark.parametrize(
    "shape", [(5, 5), (7, 300), (63, 64), (64, 64), (65, 129), (128, 128), (129, 2000)]
)
def test_awkward_sizes(shape: tuple[int, int]) -> None:
    # Windows of one pixel (under 128 a side), the 64 x 64 shortcut, odd and long sides.
    rng = np.random.default_rng(sum(shape))
    smooth = np.cumsum(rng.integers(-9, 10, size=(*shape, 3)), axis=1)
    assert_exact(np.clip(smooth + 128, 0, 255).astype(np.uint8))


def test_too_small_an_image_has_all_bits_clear_as_the_reference_gives() -> None:
    tiny = np.full((4, 100, 3), 200, dtype=np.uint8)
    assert all(not bits.any() for bits in dihedral_bits(tiny).values())
    assert not reference(tiny).any()
    assert pdq_quality(tiny) == pdqhash.compute(tiny)[1] == 0


def test_a_view_is_hashed_as_its_pixels(photos: dict[str, Pixels]) -> None:
    view = photos["coffee"][50:350:2, ::-1]  # strided, reversed, not contiguous
    assert np.array_equal(dihedral_bits(view)["original"], reference(view))
