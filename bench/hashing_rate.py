"""How fast files hash: images per second per core, end to end from file to all four hashes.

Generated benign images of 1, 3 and 12 megapixels, saved as JPEG (quality 90) and PNG, are hashed
by the same code as `hashwatch hash` (read once; MD5, SHA-1, SHA-256 of the bytes; decode; PDQ).
The time of one process is split into its stages; then a pool of all cores gives throughput.
Figures go to docs/benchmarks.md.

    python bench/hashing_rate.py              # 20 images per size and format
    python bench/hashing_rate.py --count 5    # quicker
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from report import write_section

from hashwatch.hashing import hash_file, hash_files
from hashwatch.media import MediaLimits, decode_rgb
from hashwatch.samples import encode, generate_image
from hashwatch.signals import get_signal_type
from hashwatch.signals.pdq import PDQ

SIZES = {"1 MP": (1152, 864), "3 MP": (2048, 1536), "12 MP": (4000, 3000)}
FORMATS = {"JPEG": {"quality": 90}, "PNG": {}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=20, help="images per size and format")
    args = parser.parse_args()
    limits = MediaLimits()
    cores = os.cpu_count() or 1
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for size_name, (width, height) in SIZES.items():
            sources = [generate_image(seed, width, height) for seed in range(min(args.count, 4))]
            for fmt, options in FORMATS.items():
                paths = []
                for i in range(args.count):
                    path = Path(folder) / f"{size_name.replace(' ', '')}-{i}.{fmt.lower()}"
                    path.write_bytes(encode(sources[i % len(sources)], fmt, **options))
                    paths.append(path)
                hash_file(paths[0], limits)  # warm up imports and caches

                # One process: the end-to-end rate, then each stage on its own.
                started = time.perf_counter()
                for path in paths:
                    hash_file(path, limits)
                one_core = time.perf_counter() - started
                read = decode = pdq = exact = 0.0
                for path in paths:
                    t0 = time.perf_counter()
                    data = path.read_bytes()
                    t1 = time.perf_counter()
                    for name in ("md5", "sha1", "sha256"):
                        hasher = get_signal_type(name).hasher()  # type: ignore[attr-defined]
                        hasher.update(data)
                        hasher.hexdigest()
                    t2 = time.perf_counter()
                    rgb = decode_rgb(data, limits)
                    t3 = time.perf_counter()
                    PDQ.hash_pixels(rgb)
                    t4 = time.perf_counter()
                    read += t1 - t0
                    exact += t2 - t1
                    decode += t3 - t2
                    pdq += t4 - t3

                started = time.perf_counter()
                list(hash_files(paths, limits, workers=cores))
                pool = time.perf_counter() - started

                n = len(paths)
                mb = sum(p.stat().st_size for p in paths) / n / 1e6
                rows.append(
                    f"| {size_name} {fmt} ({mb:.1f} MB) | {n / one_core:.1f} | "
                    f"{1000 * one_core / n:.0f} ms | {1000 * decode / n:.0f} | {1000 * pdq / n:.0f} | "
                    f"{1000 * exact / n:.0f} | {1000 * read / n:.1f} | {n / pool:.1f} |"
                )
                print(rows[-1], flush=True)
                for path in paths:
                    path.unlink()
    table = [
        f"| file | images/s, 1 core | per image | decode ms | PDQ ms | MD5+SHA-1+SHA-256 ms | read ms | images/s, {cores} processes |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
    ]
    body = (
        f"{args.count} generated benign images per row, each hashed end to end by the code behind "
        "`hashwatch hash` (one read, the three exact hashes, decode, PDQ at full resolution). "
        "The stage columns time each stage alone in one process.\n\n" + "\n".join(table)
    )
    write_section("hashing", "Hashing rate", body)


if __name__ == "__main__":
    main()
