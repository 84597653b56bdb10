"""Hashing media: one read of each file gives every registered hash.

A file is read once, with the byte limit checked before reading. The bytes feed every byte
signal type (MD5, SHA-1, SHA-256); the pixels, decoded once by hashwatch.media, feed every pixel
signal type (PDQ). Nothing is kept: the bytes and pixels are dropped when the hashes are done.

A file that is readable but not a decodable image still gets its exact hashes, with `error`
saying why it has no perceptual hash, so a video or a damaged file can still match an MD5 list.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hashwatch.errors import MediaError
from hashwatch.media import MediaLimits, check_byte_count, decode_rgb
from hashwatch.signals import BytesSignalType, PixelSignalType, all_signal_types
from hashwatch.tuning import tune_process
from hashwatch.variants import VariantHash

__all__ = ["MediaHashes", "hash_bytes", "hash_file", "hash_files", "iter_media_paths"]


@dataclass(frozen=True)
class MediaHashes:
    """The hashes of one file, or why some or all of them could not be computed."""

    path: str | None
    hashes: dict[str, str] = field(default_factory=dict)
    quality: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    #: The error itself, for shells that answer each kind differently (the HTTP API).
    failure: MediaError | None = field(default=None, compare=False, repr=False)
    #: Per perceptual signal type, the hashes of the media's variants (rotations and flips, the
    #: image with its borders trimmed) when asked for; the original's hash is in `hashes`.
    variants: dict[str, tuple[VariantHash, ...]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_json(self) -> dict[str, Any]:
        """The `hashwatch hash` line: path, each hash, each perceptual hash's quality, error."""
        out: dict[str, Any] = {"path": self.path}
        for signal_type in all_signal_types():
            if signal_type.name in self.hashes:
                out[signal_type.name] = self.hashes[signal_type.name]
            if signal_type.name in self.quality:
                out[f"{signal_type.name}_quality"] = self.quality[signal_type.name]
        for name, found in self.variants.items():
            out[f"{name}_variants"] = [v.to_json() for v in found]
        if self.error is not None:
            out["error"] = self.error
        return out


def hash_bytes(
    data: bytes,
    limits: MediaLimits,
    path: str | None = None,
    variants: Collection[str] = (),
) -> MediaHashes:
    """Every hash of `data`. Bad input is reported in the result's `error`, never raised.

    `variants`: the kinds of variant to hash as well ("dihedral", "trim"; hashwatch.variants),
    from the same decoded pixels.
    """
    try:
        check_byte_count(len(data), limits)
    except MediaError as exc:
        return MediaHashes(path=path, error=str(exc), failure=exc)
    hashes: dict[str, str] = {}
    for signal_type in all_signal_types():
        if issubclass(signal_type, BytesSignalType):
            hasher = signal_type.hasher()
            hasher.update(data)
            hashes[signal_type.name] = hasher.hexdigest()
    quality: dict[str, int] = {}
    found: dict[str, tuple[VariantHash, ...]] = {}
    pixel_types = [t for t in all_signal_types() if issubclass(t, PixelSignalType)]
    if pixel_types:
        try:
            rgb = decode_rgb(data, limits)
        except MediaError as exc:
            return MediaHashes(path=path, hashes=hashes, error=str(exc), failure=exc)
        for pixel_type in pixel_types:
            if variants:
                original, *others = pixel_type.hash_variants(rgb, variants)
                value, score = original.value, original.quality
                if others:
                    found[pixel_type.name] = tuple(others)
            else:
                value, score = pixel_type.hash_pixels(rgb)
            hashes[pixel_type.name] = value
            quality[pixel_type.name] = score
    return MediaHashes(path=path, hashes=hashes, quality=quality, variants=found)


def hash_file(
    path: str | os.PathLike[str], limits: MediaLimits, variants: Collection[str] = ()
) -> MediaHashes:
    """Every hash of the file at `path`, reading it once (`variants` as for hash_bytes)."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            check_byte_count(size, limits)
            # Read at most one byte past the limit: a file that grows while read is still caught.
            data = handle.read(limits.max_bytes + 1)
    except MediaError as exc:
        return MediaHashes(path=name, error=str(exc), failure=exc)
    except OSError as exc:
        return MediaHashes(path=name, error=f"could not read file: {exc.strerror or exc}")
    return hash_bytes(data, limits, path=name, variants=variants)


def _hash_file_task(args: tuple[str, MediaLimits, tuple[str, ...]]) -> MediaHashes:
    return hash_file(*args)


def hash_files(
    paths: Iterable[str | os.PathLike[str]],
    limits: MediaLimits,
    workers: int | None = None,
    variants: Collection[str] = (),
) -> Iterator[MediaHashes]:
    """Hash files in order, in `workers` processes (default: one per core).

    A pool costs a process start per worker, so a handful of files is hashed in this process.
    """
    names = [os.fspath(p) for p in paths]
    workers = workers or os.cpu_count() or 1
    if workers <= 1 or len(names) < 2 * workers:
        for name in names:
            yield hash_file(name, limits, variants)
        return
    # Processes, not threads: decoding and PDQ hold the GIL for most of their time.
    with ProcessPoolExecutor(max_workers=workers, initializer=tune_process) as pool:
        chunksize = max(1, min(16, len(names) // (workers * 4)))
        yield from pool.map(
            _hash_file_task, [(n, limits, tuple(variants)) for n in names], chunksize=chunksize
        )


def iter_media_paths(paths: Iterable[str | os.PathLike[str]]) -> Iterator[str]:
    """Files named directly, and every file under named directories (recursive, sorted).

    Hidden files and directories inside a walked directory (.DS_Store, .git) are skipped; a path
    named explicitly is always yielded, even when it does not exist, so its error is reported.
    """
    for raw in paths:
        path = Path(raw)
        if not path.is_dir():
            yield os.fspath(path)
            continue
        for root, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                if not name.startswith("."):
                    yield os.path.join(root, name)
