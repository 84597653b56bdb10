"""Hashing speed and accuracy: hashwatch against threatexchange's PDQ hasher on the same files.

For generated benign images and scikit-image's photographs, as JPEG (quality 90) and PNG at 1, 3
and 12 megapixels, this measures images per second per core, end to end from file to hashes:
- hashwatch as `hashwatch hash` runs it (one read; MD5, SHA-1, SHA-256; reduced-scale decode; PDQ);
- hashwatch with --full-resolution (every pixel decoded, as the reference does);
- threatexchange's `pdq_from_file` (PDQ alone: no exact hashes);
and a pool of all cores for hashwatch. Accuracy: the Hamming distance of each PDQ hash to the
full-resolution reference hash (pdqhash on every decoded pixel), mean and max.

    pip install -e '.[bench]'
    python bench/hashing.py             # 8 images per row
    python bench/hashing.py --count 4   # quicker
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pdqhash
import skimage.data
from PIL import Image
from report import write_section
from threatexchange.signal_type.pdq.pdq_hasher import pdq_from_file

from hashwatch.hashing import hash_file, hash_files
from hashwatch.media import MediaLimits
from hashwatch.samples import encode, generate_image
from hashwatch.signals.pdq import PDQ, bits_to_hex
from hashwatch.tuning import tune_allocator

SIZES = {"1 MP": (1152, 864), "3 MP": (2048, 1536), "12 MP": (4000, 3000)}
FORMATS = {"JPEG": {"quality": 90}, "PNG": {}}
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "retina")


def sources(kind: str, width: int, height: int, count: int) -> list[Image.Image]:
    if kind == "generated":
        return [generate_image(seed, width, height) for seed in range(count)]
    photos = [Image.fromarray(getattr(skimage.data, name)()) for name in PHOTOS]
    return [
        photos[i % len(photos)].resize((width, height), Image.Resampling.LANCZOS)
        for i in range(count)
    ]


def reference(path: Path) -> tuple[str, int]:
    """PDQ of every decoded pixel, as the reference hasher computes it."""
    rgb = np.asarray(Image.open(path).convert("RGB"))
    bits, quality = pdqhash.compute(rgb)
    return bits_to_hex(bits), int(quality)


def rate(function: Callable[[Path], object], paths: list[Path]) -> tuple[float, list[object]]:
    function(paths[0])  # warm up
    started = time.perf_counter()
    results = [function(path) for path in paths]
    return len(paths) / (time.perf_counter() - started), results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=8, help="images per row")
    args = parser.parse_args()
    tune_allocator()  # as the hashwatch command does
    fast, full = MediaLimits(), MediaLimits(min_side=None)
    cores = os.cpu_count() or 1
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for kind in ("generated", "photographs"):
            for size_name, (width, height) in SIZES.items():
                images = sources(kind, width, height, args.count)
                for fmt, options in FORMATS.items():
                    paths = []
                    for i, image in enumerate(images):
                        path = Path(folder) / f"{kind}-{width}-{i}.{fmt.lower()}"
                        path.write_bytes(encode(image, fmt, **options))
                        paths.append(path)
                    refs = [reference(p) for p in paths]
                    ours_rate, ours = rate(lambda p: hash_file(p, fast), paths)
                    full_rate, _ = rate(lambda p: hash_file(p, full), paths)
                    te_rate, te = rate(pdq_from_file, paths)
                    started = time.perf_counter()
                    list(hash_files(paths, fast, workers=cores))
                    pool_rate = len(paths) / (time.perf_counter() - started)
                    ours_d = [
                        PDQ.distance(r.hashes["pdq"], ref[0])
                        for r, ref in zip(ours, refs, strict=True)
                    ]  # type: ignore[attr-defined]
                    te_d = [PDQ.distance(h[0], ref[0]) for h, ref in zip(te, refs, strict=True)]  # type: ignore[index]
                    quality = min(ref[1] for ref in refs)
                    mb = sum(p.stat().st_size for p in paths) / len(paths) / 1e6
                    rows.append(
                        f"| {kind} {size_name} {fmt} ({mb:.1f} MB) | {ours_rate:.1f} | "
                        f"{ours_rate / te_rate:.1f}x | {full_rate:.1f} | {te_rate:.1f} | "
                        f"{pool_rate:.1f} | {np.mean(ours_d):.1f} / {max(ours_d)} | "
                        f"{max(te_d)} | {quality} |"
                    )
                    print(rows[-1], flush=True)
                    for path in paths:
                        path.unlink()
    table = [
        "| files | hashwatch images/s, 1 core | vs threatexchange | hashwatch --full-resolution "
        f"| threatexchange pdq_from_file | hashwatch, {cores} processes | hashwatch distance to "
        "reference, mean / max | threatexchange max distance | lowest quality |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows,
    ]
    body = (
        f"{args.count} images per row: generated benign images, and scikit-image's photographs "
        f"({', '.join(PHOTOS)}) resized to each size. hashwatch computes MD5, SHA-1, SHA-256 "
        "and PDQ from one read; threatexchange's `pdq_from_file` computes PDQ only. Distances are "
        "to the PDQ of every decoded pixel (the reference); the tolerance is 10 bits on images of "
        "quality 80 or more.\n\n" + "\n".join(table)
    )
    write_section("hashing", "Hashing speed and accuracy", body)


if __name__ == "__main__":
    main()
