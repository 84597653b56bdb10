"""Hashing files: one read gives every hash; folders are walked; failures are per file."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from hashwatch.hashing import hash_file, hash_files, iter_media_paths
from hashwatch.media import MediaLimits
from hashwatch.signals.pdq import PDQ
from tests.imaging import encode

LIMITS = MediaLimits()


@pytest.fixture
def folder(tmp_path: Path, photos: dict[str, np.ndarray]) -> Path:
    (tmp_path / "nested" / "deeper").mkdir(parents=True)
    (tmp_path / ".hidden").mkdir()
    (tmp_path / "a.jpg").write_bytes(encode(photos["astronaut"], "JPEG"))
    (tmp_path / "nested" / "b.png").write_bytes(encode(photos["coffee"], "PNG"))
    (tmp_path / "nested" / "deeper" / "c.webp").write_bytes(encode(photos["rocket"], "WEBP"))
    (tmp_path / "nested" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    (tmp_path / ".DS_Store").write_bytes(b"finder junk")
    (tmp_path / ".hidden" / "d.png").write_bytes(encode(photos["chelsea"], "PNG"))
    return tmp_path


def test_exact_and_perceptual_hashes_from_one_file(
    tmp_path: Path, photos: dict[str, np.ndarray]
) -> None:
    data = encode(photos["chelsea"], "JPEG", quality=85)
    path = tmp_path / "cat.jpg"
    path.write_bytes(data)
    result = hash_file(path, LIMITS)
    assert result.to_json() == {
        "path": str(path),
        "md5": hashlib.md5(data).hexdigest(),
        "sha1": hashlib.sha1(data).hexdigest(),
        "sha256": hashlib.sha256(data).hexdigest(),
        "pdq": result.hashes["pdq"],
        "pdq_quality": result.quality["pdq"],
    }
    assert len(result.hashes["pdq"]) == 64


def test_directories_are_walked_recursively_in_order_skipping_hidden(folder: Path) -> None:
    found = [Path(p).relative_to(folder).as_posix() for p in iter_media_paths([folder])]
    assert found == ["a.jpg", "nested/b.png", "nested/broken.jpg", "nested/deeper/c.webp"]


def test_a_named_missing_file_is_reported_not_skipped(tmp_path: Path) -> None:
    missing = tmp_path / "gone.jpg"
    assert list(iter_media_paths([missing])) == [str(missing)]
    result = hash_file(missing, LIMITS)
    assert result.error == "could not read file: No such file or directory"


def test_a_file_over_the_byte_limit_is_refused_before_reading(tmp_path: Path) -> None:
    big = tmp_path / "big.jpg"
    with big.open("wb") as handle:  # sparse: 60 MB on paper, nothing on disk
        handle.truncate(60_000_000)
    result = hash_file(big, LIMITS)
    assert result.error == "file is 60.0 MB, over the limit of 50.0 MB"
    assert result.hashes == {}


def test_a_path_that_cannot_be_read_as_a_file_is_reported(tmp_path: Path) -> None:
    assert hash_file(tmp_path, LIMITS).error == "could not read file: Is a directory"


def test_parallel_hashing_gives_the_same_results_in_the_same_order(folder: Path) -> None:
    paths = list(iter_media_paths([folder]))
    serial = [r.to_json() for r in hash_files(paths, LIMITS, workers=1)]
    parallel = [r.to_json() for r in hash_files(paths, LIMITS, workers=2)]
    assert parallel == serial
    assert [("error" in r) for r in serial] == [False, False, True, False]


def test_reencoded_and_resized_photos_stay_within_the_threshold(
    tmp_path: Path, photos: dict[str, np.ndarray]
) -> None:
    from PIL import Image

    for name, pixels in photos.items():
        original = hash_file(_write(tmp_path / f"{name}.png", encode(pixels, "PNG")), LIMITS)
        image = Image.fromarray(pixels)
        half = image.resize((image.width // 2, image.height // 2), Image.Resampling.BILINEAR)
        q70 = hash_file(
            _write(tmp_path / f"{name}-q70.jpg", encode(image, "JPEG", quality=70)), LIMITS
        )
        small = hash_file(_write(tmp_path / f"{name}-half.png", encode(half, "PNG")), LIMITS)
        assert PDQ.distance(original.hashes["pdq"], q70.hashes["pdq"]) <= 31, name
        assert PDQ.distance(original.hashes["pdq"], small.hashes["pdq"]) <= 31, name


def test_unrelated_photos_do_not_match(photos: dict[str, np.ndarray]) -> None:
    from hashwatch.hashing import hash_bytes

    values = {
        name: hash_bytes(encode(p, "PNG"), LIMITS).hashes["pdq"] for name, p in photos.items()
    }
    names = sorted(values)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert PDQ.distance(values[a], values[b]) > 31, (a, b)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
