"""Detection quality: how often PDQ finds an edited copy of a listed image, and at what cost.

    python bench/robustness.py [FOLDER]       # FOLDER: distinct benign images, one per file
    python bench/robustness.py --generated 20 --list-size 0    # a quick look (about 2 minutes)

The default run (19 photographs and 80 generated images, a 1M-entry search) takes about 7
minutes on one core of the reference machine.

Without FOLDER, scikit-image's sample photographs (colour and grey, those shipped offline) and
--generated synthetic images (hashwatch.samples.generate_image) are written to a temporary folder
and used. Every file becomes one list entry: decoded as production decodes uploads
(hashwatch.media.decode_rgb with the default MediaLimits) and hashed with plain PDQ, plus the
candidate crop, tilt and tone hashes of hashwatch.variants.entry_variants. Every image is then
edited by every transform of bench/transforms.py, encoded (JPEG quality 95, the transform's own
JPEG quality, or PNG), decoded the same way and hashed with hashwatch.variants.query_variants
(one-call and exact dihedral variants). Each query is
compared with every entry's every hash, so one run gives recall for each combination of query
variants and entry hashes, false matches between distinct images, and the full distance
distribution of distinct pairs, from which the false-match rate of large lists is estimated.
It also times hashing and searching with and without the variants, and writes
docs/detection-quality.md and docs/detection-quality.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import io
import json
import math
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pdqhash
import skimage.data
from PIL import Image
from report import command, machine, read_section
from scipy.stats import binom
from transforms import TARGETS, TRANSFORMS, Transform

from hashwatch import entryhashes
from hashwatch.dihedral import dihedral_bits
from hashwatch.errors import MediaError
from hashwatch.hashing import iter_media_paths
from hashwatch.index import HammingIndex
from hashwatch.media import MediaLimits, decode_rgb
from hashwatch.samples import encode, generate_image
from hashwatch.signals.pdq import MIN_QUALITY, PDQ
from hashwatch.tuning import tune_allocator
from hashwatch.variants import (
    DIHEDRAL,
    ENTRY_CROPS,
    ENTRY_TILTS,
    ENTRY_TONES,
    entry_variants,
    query_variants,
    trim_borders,
)

DOCS = Path(__file__).resolve().parent.parent / "docs"
#: The section of detection-quality.md that bench/matcher.py writes.
MATCHER_SECTION = "matcher-entry-hashes"
THRESHOLD = PDQ.default_threshold
LIMITS = MediaLimits()
FAR = 999  # the distance recorded for a hash that does not exist (no border, low quality)

#: scikit-image's sample images that ship with the package (no download), photographs and
#: micrographs; stereo_motorcycle gives a pair, of which only the left view is used (the right is
#: a near-duplicate), and cat is left out (it is chelsea).
PHOTOS = (
    "astronaut",
    "brick",
    "camera",
    "cell",
    "chelsea",
    "clock",
    "coffee",
    "coins",
    "grass",
    "gravel",
    "hubble_deep_field",
    "immunohistochemistry",
    "microaneurysms",
    "moon",
    "page",
    "retina",
    "rocket",
    "stereo_motorcycle",
    "text",
)

#: Query hashes measured: one compute_dihedral call's variants, then the exact ones
#: (hashwatch.dihedral; their "original" and "trimmed" equal the one-call ones).
FAST = (*DIHEDRAL, "trimmed", *(f"trimmed+{name}" for name in DIHEDRAL[1:]))
EXACT = tuple(f"exact:{name}" for name in FAST)
QUERY_NAMES = (*FAST, *EXACT)
#: The library's default: whether query_variants hashes the dihedral variants exactly.
EXACT_DEFAULT = bool(inspect.signature(query_variants).parameters["exact"].default)
QUERY_DEFAULT = EXACT if EXACT_DEFAULT else FAST

#: Every entry hash measured: the designs below choose among them.
SIDES = ("left", "right", "top", "bottom")
ALL_CROPS = tuple((side, p) for p in (2, 3, 5, 7, 10) for side in (*SIDES, "all"))
ALL_TILTS = (1.5, -1.5, 2, -2, 3, -3, 4, -4, 4.5, -4.5)
ALL_TONES = ("brightness+30", "brightness+40", "gamma0.6", "gamma1.6", "saturation+50")
ENTRY_NAMES = (
    "original",
    "trimmed",
    *(f"crop-{side}-{p}" for side, p in ALL_CROPS),
    *(f"tilt{d:+g}" for d in ALL_TILTS),
    *ALL_TONES,
)


@dataclass(frozen=True)
class Config:
    """Which query variants and which entry hashes take part in a search."""

    name: str
    query: tuple[str, ...]
    entry: tuple[str, ...]


def crops(*percents: int, sides: Sequence[str] = (*SIDES, "all")) -> tuple[str, ...]:
    return tuple(f"crop-{side}-{p}" for p in percents for side in sides)


def tilts(*degrees: float) -> tuple[str, ...]:
    return tuple(f"tilt{sign * d:+g}" for d in degrees for sign in (1, -1))


#: The entry hashes a list stores by default (hashwatch.entryhashes, "crops+tones":
#: entry_variants' defaults), after the entry's own.
DEFAULT_ENTRY = (
    "original",
    "trimmed",
    *(f"crop-{side}-{p}" for side, p in ENTRY_CROPS),
    *(f"tilt{d:+g}" for d in ENTRY_TILTS),
    *ENTRY_TONES,
)
ONE_CALL = "one call" if EXACT_DEFAULT else "one call, the default"
EXACTLY = "exact, the default" if EXACT_DEFAULT else "exact"
COLUMNS = (
    Config("plain PDQ", ("original",), ("original",)),
    Config(f"+ dihedral ({ONE_CALL})", DIHEDRAL, ("original",)),
    Config(f"+ dihedral ({EXACTLY})", EXACT[:8], ("original",)),
    Config("+ dihedral + trim", QUERY_DEFAULT, ("original",)),
    Config("+ dihedral + trim + entry hashes (defaults)", QUERY_DEFAULT, DEFAULT_ENTRY),
    Config(
        f"defaults, but {'one-call' if EXACT_DEFAULT else 'exact'} dihedral",
        FAST if EXACT_DEFAULT else EXACT,
        DEFAULT_ENTRY,
    ),
)
RECOMMENDED, OTHER_MODE = COLUMNS[4], COLUMNS[5]


def design(name: str, *entry: str) -> Config:
    return Config(name, QUERY_DEFAULT, ("original", *entry))


#: Entry hash designs compared, all with the default query variants.
T = "trimmed"
CROPS = (T, *crops(5), *crops(2, sides=["all"]))  # the crops of the default, "crops"
DESIGNS = (
    design("none"),
    design("trimmed", T),
    design("trimmed, all-5", T, *crops(5, sides=["all"])),
    design("trimmed, 4 sides 5", T, *crops(5, sides=SIDES)),
    design("trimmed, 4 sides 5, all-5", T, *crops(5)),
    design("trimmed, 4 sides 5, all-2, 5", T, *crops(5), *crops(2, sides=["all"])),
    design("trimmed, 4 sides 5, all-3, 5", T, *crops(5), *crops(3, sides=["all"])),
    design("trimmed, 4 sides 7, all-7", T, *crops(7)),
    design("trimmed, 4 sides 3, 7, all-3, 7", T, *crops(3, 7)),
    design("trimmed, 4 sides 5, 10, all-5, 10", T, *crops(5, 10)),
    design("trimmed, 4 sides 5, 10, all-2, 5, 10", T, *crops(5, 10), *crops(2, sides=["all"])),
    design("trimmed, 4 sides and all 2, 5, 10", T, *crops(2, 5, 10)),
    design("trimmed, 4 sides and all 3, 5, 7, 10", T, *crops(3, 5, 7, 10)),
    design("trimmed, tilts 3", T, *tilts(3)),
    design("trimmed, tilts 2, 4", T, *tilts(2, 4)),
    design("trimmed, tilts 1.5, 3, 4.5", T, *tilts(1.5, 3, 4.5)),
    design(
        "trimmed, 4 sides 5, all-2, 5, tilts 2, 4",
        T,
        *crops(5),
        *crops(2, sides=["all"]),
        *tilts(2, 4),
    ),
    design(
        "trimmed, 4 sides 5, 10, all-2, 5, 10, tilts 2, 4",
        T,
        *crops(5, 10),
        *crops(2, sides=["all"]),
        *tilts(2, 4),
    ),
    design("crops, brightness+30", *CROPS, "brightness+30"),
    design("crops, brightness+30, gamma1.6", *CROPS, "brightness+30", "gamma1.6"),
    design(
        "crops, brightness+30, gamma1.6, saturation+50",
        *CROPS,
        "brightness+30",
        "gamma1.6",
        "saturation+50",
    ),
    design("crops, 4 tones", *CROPS, *ENTRY_TONES),
    design("crops, 4 tones, brightness+40", *CROPS, *ENTRY_TONES, "brightness+40"),
)
#: The strongest setting an operator can choose today: the entry hash setting "wide"
#: (hashwatch.entryhashes.WIDE_CROPS, TILTS and the tones), with the default query variants.
STRONGEST = Config(
    "opt-in: wide entry hashes",
    QUERY_DEFAULT,
    ("original", T, *crops(5, 10), *crops(2, sides=["all"]), *tilts(2, 4), *ENTRY_TONES),
)
CONFIGS = (*COLUMNS, *DESIGNS, STRONGEST)
COUNT_AT = (THRESHOLD, 40, 50)
#: What the chosen design must find of the tone edits at strengths its hashes do not sit on.
TONE_CHECK_GOAL = 0.98


# --- the images -------------------------------------------------------------------------------


def write_default_folder(folder: Path, generated: int) -> None:
    for name in PHOTOS:
        try:
            pixels = getattr(skimage.data, name)()
        except Exception as exc:  # an image that needs a download (pooch) is skipped
            print(f"skipping skimage.data.{name}: {type(exc).__name__}", file=sys.stderr)
            continue
        if isinstance(pixels, tuple):
            pixels = pixels[0]
        Image.fromarray(pixels).save(folder / f"photo-{name}.png")
    for seed in range(generated):
        generate_image(10_000 + seed).save(folder / f"generated-{seed:04d}.png")


@dataclass
class Source:
    name: str
    data: bytes  # the file, decoded as an upload is for the list's hashes
    image: Image.Image  # full resolution, for the edits
    kind: int  # 0 a photograph or a given file, 1 generated: for the distance statistics


def load_sources(folder: Path) -> list[Source]:
    sources = []
    for path in iter_media_paths([folder]):
        data = Path(path).read_bytes()
        try:
            decode_rgb(data, LIMITS)
        except MediaError as exc:
            print(f"skipping {path}: {exc}", file=sys.stderr)
            continue
        with Image.open(io.BytesIO(data)) as image:
            rgb = image.convert("RGB")
        name = Path(path).name
        sources.append(Source(name, data, rgb, 1 if name.startswith("generated-") else 0))
    return sources


# --- hashing ----------------------------------------------------------------------------------

Words = npt.NDArray[np.uint64]
Mask = npt.NDArray[np.bool_]


def words(value: str) -> Words:
    return np.frombuffer(bytes.fromhex(value), dtype=np.uint64)


@dataclass
class Entries:
    codes: Words  # (S, E, 4): every candidate hash of every entry, ENTRY_NAMES order
    present: Mask  # (S, E)
    quality: npt.NDArray[np.int64]  # (S,): the quality of each entry's own hash


def entry_hashes(sources: list[Source]) -> Entries:
    """Every candidate entry hash of every listed image, kept as a list keeps them (those below
    the quality floor left out, as hashwatch.entryhashes.compute leaves them out). The default
    design's are checked against the product's own: they are the hashes a list stores."""
    codes = np.zeros((len(sources), len(ENTRY_NAMES), 4), dtype=np.uint64)
    present = np.zeros((len(sources), len(ENTRY_NAMES)), dtype=bool)
    quality = np.zeros(len(sources), dtype=np.int64)
    for i, source in enumerate(sources):
        rgb = decode_rgb(source.data, LIMITS)
        value, quality[i] = PDQ.hash_pixels(rgb)
        found = {"original": value}
        extra = entry_variants(rgb, crops=ALL_CROPS, tilts=ALL_TILTS, tones=ALL_TONES, trim=True)
        found.update((v.variant, v.value) for v in extra if v.quality >= MIN_QUALITY)
        stored = {h.variant: h.value for h in entryhashes.compute(rgb, entryhashes.DEFAULT_SETTING)}
        assert stored == {n: found[n] for n in DEFAULT_ENTRY[1:] if n in found}, source.name
        for j, name in enumerate(ENTRY_NAMES):
            if name in found:
                codes[i, j] = words(found[name])
                present[i, j] = True
    return Entries(codes, present, quality)


@dataclass
class Queries:
    codes: Words  # (N, Q, 4), QUERY_NAMES order
    usable: Mask  # (N, Q): present and of quality at least MIN_QUALITY
    present: Mask  # (N, Q)
    source: npt.NDArray[np.int64]  # (N,)
    transform: npt.NDArray[np.int64]  # (N,)


def query_hashes(sources: list[Source], transforms: Sequence[Transform]) -> Queries:
    count = len(sources) * len(transforms)
    codes = np.zeros((count, len(QUERY_NAMES), 4), dtype=np.uint64)
    usable = np.zeros((count, len(QUERY_NAMES)), dtype=bool)
    present = np.zeros((count, len(QUERY_NAMES)), dtype=bool)
    position = {name: j for j, name in enumerate(QUERY_NAMES)}
    started = time.perf_counter()
    for i, source in enumerate(sources):
        for t, transform in enumerate(transforms):
            n = i * len(transforms) + t
            edited = transform.edit(source.image, i)
            data = encode(edited, transform.fmt, **dict(transform.options))
            rgb = decode_rgb(data, LIMITS)
            found = query_variants(rgb, exact=False)
            found += [
                replace(v, variant=f"exact:{v.variant}") for v in query_variants(rgb, exact=True)
            ]
            for variant in found:
                j = position[variant.variant]
                codes[n, j] = words(variant.value)
                present[n, j] = True
                usable[n, j] = variant.quality >= MIN_QUALITY
        if i % 20 == 19 or i == len(sources) - 1:
            rate = (i + 1) * len(transforms) / (time.perf_counter() - started)
            print(f"  hashed the edits of {i + 1}/{len(sources)} images ({rate:.0f}/s)", flush=True)
    source_of = np.repeat(np.arange(len(sources)), len(transforms))
    transform_of = np.tile(np.arange(len(transforms)), len(sources))
    return Queries(codes, usable, present, source_of, transform_of)


# --- comparing --------------------------------------------------------------------------------


@dataclass
class Comparison:
    #: (N, Q, E): each query hash against its own entry's hashes, whatever their quality
    own: npt.NDArray[np.int16]
    #: false[config][T]: (query, unrelated entry) pairs within T under the config
    false: dict[str, dict[int, int]]
    examples: dict[str, list[tuple[int, int, int]]]  # (query, entry, distance) within 31
    #: (kind pair, Q, E, 257): distances of query hashes to unrelated entries' hashes
    histogram: npt.NDArray[np.int64]


def positions(config: Config) -> tuple[list[int], list[int]]:
    return [QUERY_NAMES.index(n) for n in config.query], [
        ENTRY_NAMES.index(n) for n in config.entry
    ]


def compare(queries: Queries, entries: Entries, kinds: npt.NDArray[np.int64]) -> Comparison:
    """Every query hash against every entry hash, a few queries at a time."""
    count, q_names, _ = queries.codes.shape
    e_names = len(ENTRY_NAMES)
    own = np.full((count, q_names, e_names), FAR, dtype=np.int16)
    false = {c.name: dict.fromkeys(COUNT_AT, 0) for c in CONFIGS}
    examples: dict[str, list[tuple[int, int, int]]] = {c.name: [] for c in CONFIGS}
    histogram = np.zeros((3, q_names, e_names, 257), dtype=np.int64)
    cell = (np.arange(q_names)[:, None] * e_names + np.arange(e_names)[None, :]) * 257
    chosen = {c.name: positions(c) for c in CONFIGS}
    chunk = 8
    for start in range(0, count, chunk):
        stop = min(count, start + chunk)
        xor = queries.codes[start:stop, :, None, None, :] ^ entries.codes[None, None, :, :, :]
        d = np.bitwise_count(xor).sum(axis=-1, dtype=np.int16)  # (c, Q, S, E)
        rows = np.arange(stop - start)
        mine = queries.source[start:stop]
        present = queries.present[start:stop, :, None, None] & entries.present[None, None, :, :]
        d[~present] = FAR
        own[start:stop] = d[rows, :, mine, :]
        # From here on as the matcher searches: query hashes under the quality floor skipped.
        d[~queries.usable[start:stop]] = FAR
        d[rows, :, mine, :] = FAR
        pair_kind = (kinds[mine][:, None] + kinds[None, :])[:, None, :, None]  # (c, 1, S, 1)
        keep = d < FAR
        flat = (pair_kind * (q_names * e_names * 257) + cell[None, :, None, :] + d)[keep]
        histogram += np.bincount(flat, minlength=histogram.size).reshape(histogram.shape)
        for config in CONFIGS:
            qi, ei = chosen[config.name]
            best = d[:, qi][:, :, :, ei].min(axis=(1, 3))  # (c, S)
            for threshold in COUNT_AT:
                false[config.name][threshold] += int(np.count_nonzero(best <= threshold))
            for row, entry in zip(*np.nonzero(best <= THRESHOLD), strict=True):
                examples[config.name].append((start + int(row), int(entry), int(best[row, entry])))
    return Comparison(own, false, examples, histogram)


def best_distance(
    comparison: Comparison, config: Config, usable: Mask | None = None
) -> npt.NDArray[np.int16]:
    """For each query, its smallest distance to its own entry under `config`, counting only the
    query hashes marked `usable` (the matcher's quality floor) where given."""
    qi, ei = positions(config)
    own = comparison.own[:, qi][:, :, ei]
    if usable is not None:
        own = np.where(usable[:, qi, None], own, FAR)
    return own.min(axis=(1, 2))


def distinct_histogram(
    comparison: Comparison, config: Config, kinds: Sequence[int] = (0, 1, 2)
) -> npt.NDArray[np.int64]:
    qi, ei = positions(config)
    return comparison.histogram[list(kinds)][:, qi][:, :, ei].sum(axis=(0, 1, 2))


@dataclass
class Recall:
    """Recall per transform, over the queries whose own entry has a usable hash.

    An entry whose own hash is below the quality floor is a list problem, not a matching one
    (its edited copies are at least as poor, and the matcher skips poor query hashes); such
    entries stay in the list, where they count for false matches, but not in recall.
    """

    found: dict[str, Mask]
    transform: npt.NDArray[np.int64]
    countable: Mask

    def row(self, config: Config, t: int) -> float:
        mask = (self.transform == t) & self.countable
        return float(self.found[config.name][mask].mean())

    def mean(self, config: Config, rows: Sequence[int]) -> float:
        return float(np.mean([self.row(config, t) for t in rows]))


# --- the false-match model ---------------------------------------------------------------------


@dataclass
class Tail:
    comparisons: int
    mean: float
    std: float
    degrees: float  # Daugman's effective number of independent bits
    minimum: int
    empirical: dict[int, float]  # fraction of distinct comparisons within d
    fitted: dict[int, float]  # the binomial with `degrees` bits, its tail at d
    #: a straight line through log10 of the measured tail (where it has at least 10 counts and
    #: is under 1%), extended down to d
    extrapolated: dict[int, float]
    fit_range: tuple[int, int]  # the distances that line was fitted on
    empirical_at_fit: float  # the measured fraction at the first of them
    reference: dict[int, float]  # binomial(256, 0.5)


def tail_of(histogram: npt.NDArray[np.int64], points: Sequence[int]) -> Tail:
    total = int(histogram.sum())
    d = np.arange(len(histogram))
    mean = float((histogram * d).sum() / total)
    std = float(math.sqrt((histogram * (d - mean) ** 2).sum() / total))
    p = mean / 256
    degrees = p * (1 - p) / (std / 256) ** 2
    cumulative = np.cumsum(histogram)
    usable = np.flatnonzero((cumulative >= 10) & (cumulative <= 0.01 * total))
    if len(usable) >= 3:
        slope, intercept = np.polyfit(usable, np.log10(cumulative[usable] / total), 1)
        extrapolated = {x: float(10 ** (intercept + slope * x)) for x in points}
        fit_range = (int(usable[0]), int(usable[-1]))
        at_fit = float(cumulative[usable[0]] / total)
    else:
        extrapolated, fit_range, at_fit = {x: float("nan") for x in points}, (0, 0), 0.0
    return Tail(
        comparisons=total,
        mean=mean,
        std=std,
        degrees=degrees,
        minimum=int(np.flatnonzero(histogram)[0]),
        empirical={x: float(cumulative[x] / total) for x in points},
        fitted={
            x: float(binom.cdf(math.floor(x / 256 * degrees), round(degrees), p)) for x in points
        },
        extrapolated=extrapolated,
        fit_range=fit_range,
        empirical_at_fit=at_fit,
        reference={x: float(binom.cdf(x, 256, 0.5)) for x in points},
    )


# --- cost -------------------------------------------------------------------------------------


def median_ms(function: Any, inputs: Sequence[Any], repeat: int = 3) -> float:
    function(inputs[0])
    times = []
    for _ in range(repeat):
        for item in inputs:
            started = time.perf_counter()
            function(item)
            times.append(time.perf_counter() - started)
    return float(np.median(times)) * 1000


def hashing_cost(sources: list[Source]) -> list[tuple[str, float]]:
    """Milliseconds per image for each hashing step, on 1024 x 768 decoded images."""
    picked = sources[:: max(1, len(sources) // 8)][:8]
    plain = [np.asarray(s.image.resize((1024, 768), Image.Resampling.LANCZOS)) for s in picked]
    bordered = []
    for rgb in plain:
        framed = np.zeros((768 + 2 * 77, 1024 + 2 * 102, 3), dtype=np.uint8)
        framed[77:-77, 102:-102] = rgb
        bordered.append(framed)
    jpegs = [encode(Image.fromarray(rgb), "JPEG", quality=95) for rgb in plain]
    entry_count = len(ENTRY_CROPS) + len(ENTRY_TILTS) + len(ENTRY_TONES)
    # Copies dark enough to fall under the quality floor, so measured again on their full range.
    dark = [np.round(rgb * 0.3).astype(np.uint8) for rgb in plain]
    dark = [rgb for rgb in dark if pdqhash.compute(rgb)[1] < MIN_QUALITY] or dark
    return [
        ("decode a 1024 x 768 JPEG (for scale)", median_ms(lambda b: decode_rgb(b, LIMITS), jpegs)),
        ("plain PDQ (pdqhash.compute)", median_ms(pdqhash.compute, plain)),
        ("PDQ.hash_pixels (quality over the floor: one pass)", median_ms(PDQ.hash_pixels, plain)),
        (
            "PDQ.hash_pixels, a copy darkened under the floor (its quality measured again)",
            median_ms(PDQ.hash_pixels, dark),
        ),
        (
            "8 dihedral hashes (pdqhash.compute_dihedral)",
            median_ms(pdqhash.compute_dihedral, plain),
        ),
        (
            "8 exact dihedral hashes (hashwatch.dihedral.dihedral_bits)",
            median_ms(dihedral_bits, plain),
        ),
        ("trim_borders, no border (the common case)", median_ms(trim_borders, plain)),
        ("trim_borders, 10% border", median_ms(trim_borders, bordered)),
        *(
            (
                f"query_variants, exact={exact}, {label}",
                median_ms(lambda rgb, exact=exact: query_variants(rgb, exact=exact), images),
            )
            for exact in (False, True)
            for label, images in (
                ("no border (8 hashes)", plain),
                ("10% border (16 hashes)", bordered),
            )
        ),
        (
            f"entry_variants, defaults ({entry_count} hashes, no border)",
            median_ms(entry_variants, plain),
        ),
    ]


def search_cost(
    queries: Queries, list_size: int, extra: int, images: int
) -> list[tuple[str, int, float, float]]:
    """Query images per second through HammingIndex at `list_size` entries, per configuration.

    The list is synthetic (bench/index.py's clustered codes, which imitate real lists); each
    entry's extra hashes are its code with 20-70 random bits flipped, as measured crops are. The
    queries are the real variant hashes of this run's edited images.
    """
    from index import clustered_codes  # bench/index.py; imported here: it loads faiss

    rng = np.random.default_rng(5)
    base = clustered_codes(rng, list_size)
    per_image = []
    for n in rng.permutation(len(queries.source))[:images]:
        rows = queries.codes[n][queries.usable[n]].view(np.uint8).reshape(-1, 32)
        names = [name for name, ok in zip(QUERY_NAMES, queries.usable[n], strict=True) if ok]
        if names:
            per_image.append((rows, names))
    plans: list[tuple[str, int, Any]] = [
        ("plain PDQ", 0, lambda names: [n == "original" for n in names]),
        ("+ dihedral", 0, lambda names: [n in DIHEDRAL for n in names]),
        ("+ dihedral + trim", 0, lambda names: [n in FAST for n in names]),
        ("+ dihedral + trim + entry hashes", extra, lambda names: [n in FAST for n in names]),
    ]
    results = []
    index: HammingIndex | None = None
    held = -1
    for name, entry_extra, choose in plans:
        if entry_extra != held:
            index = None
            codes = base
            if entry_extra:
                copies = np.repeat(base, entry_extra, axis=0)
                for start in range(0, len(copies), 200_000):
                    block = copies[start : start + 200_000]
                    rate = rng.uniform(20 / 256, 70 / 256, size=(len(block), 1)).astype(np.float32)
                    block ^= np.packbits(
                        rng.random((len(block), 256), dtype=np.float32) < rate, axis=1
                    )
                codes = np.concatenate([base, copies])
                del copies
            started = time.perf_counter()
            index, held = HammingIndex(codes), entry_extra
            print(
                f"  indexed {len(codes):,} codes in {time.perf_counter() - started:.1f} s",
                flush=True,
            )
        assert index is not None
        batches = [rows[np.array(choose(names), dtype=bool)] for rows, names in per_image]
        batches = [batch for batch in batches if len(batch)]
        index.search(batches[0], THRESHOLD)
        started = time.perf_counter()
        for batch in batches:
            index.search(batch, THRESHOLD)
        elapsed = time.perf_counter() - started
        hashes = sum(len(b) for b in batches)
        results.append((name, len(index), len(batches) / elapsed, hashes / elapsed))
        print(f"  {name}: {results[-1][2]:,.0f} images/s", flush=True)
    return results


# --- the report -------------------------------------------------------------------------------


def tail_ratio(tail: Tail) -> str:
    """How many times the fitted binomial the measured tail is, at its lowest measured point."""
    x = tail.fit_range[0]
    if not x:
        return "(no data)"
    fitted = float(
        binom.cdf(math.floor(x / 256 * tail.degrees), round(tail.degrees), tail.mean / 256)
    )
    return f"{tail.empirical_at_fit / fitted:,.0f}"


def pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def rate_text(value: float) -> str:
    if value == 0:
        return "0"
    return f"{value:.1e}" if value < 0.01 or value >= 1000 else f"{value:.3g}"


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(str(cell) for cell in row) + " |" for row in rows),
    ]


INTRO = """\
# Detection quality

How often does a PDQ search find an edited copy of a listed image, how often does it match an
unrelated image, and what do the extra hashes of `hashwatch.variants` buy? Written by
`bench/robustness.py`; every figure below comes from the run described under "Run".

## Method

Each image of a folder of distinct benign images becomes one list entry. Without a folder the
bench uses scikit-image's sample photographs and micrographs (colour and grey, the ones shipped
offline) and synthetic scenes from `hashwatch.samples.generate_image`. Every image is edited by
each transform of `bench/transforms.py` at several strengths, saved (JPEG quality 95 unless the
edit is a JPEG re-encoding, PNG for screenshots), and decoded and hashed exactly as an upload is
(`hashwatch.media.decode_rgb` with the default limits, which decodes large images at reduced
scale), so the figures are those production would see. Query hashes of quality under 50 are
skipped, as the matcher does. A query counts as found when any of its hashes is within 31 bits
of any hash of its own entry.

The columns add, left to right:

- **+ dihedral (one call)**: the seven rotated and mirrored variants of the query, from one
  `pdqhash.compute_dihedral` call (`query_variants(exact=False)`, what other PDQ users do): it
  derives them from a 64 x 64 reduction of the image that does not commute with mirroring, so
  its variants are 5-20 bits off on photographs and far more on fine texture;
- **+ dihedral (exact)**: the same eight hashes, each that of the turned or mirrored pixels
  (`hashwatch.dihedral`, the default `exact=True`);
- **+ dihedral + trim**: where `trim_borders` finds a solid border, letterbox or screenshot
  frame, the trimmed query and its seven variants too (`trim=True`, the default);
- **+ entry hashes (defaults)**: each listed image also carries the entry hashes a list stores
  for it by default (`hashwatch.entryhashes.compute`, setting `crops+tones`, the same hashes a
  published intake item or `hashwatch lists add-images` stores): crops of itself, its own
  trimmed hash where it has a plain edge, and four tone edits of itself (brighter with clipped
  highlights, gamma 0.6 and 1.6, more saturated), each of quality 50 or more. A query cannot
  restore the pixels a crop removed or an edit clipped; the list's copy can remove or clip them
  too. Lists received as hashes only (no images) cannot have these;
- **defaults, but one-call dihedral**: the defaults with the one-call variants instead.

Every query is compared with every other image's every hash, so each extra hash on either side
is counted where it could cause a false match: "false matches" are (query, unrelated entry)
pairs within the threshold, out of every such pair.

Limits of the method: the images are benign stand-ins and the synthetic ones are most of the
set; they differ from each other as unrelated photographs do, but they are not photographs.
The transforms and `trim_borders` were written by the same hand, so the border and screenshot
rows measure the frames drawn in `bench/transforms.py` (solid bars; a phone's photo viewer; a
desktop viewer window), not every frame seen in the wild: a screenshot with a caption or a
toolbar between the frame and the picture is not trimmed. The crop hashes sit on the 5% grid
the issue's crop rows test, and the tone hashes on the strengths of its colour rows; crops
between grid points and tone edits at other strengths are reported apart ("Off the grid").
Tilts are drawn at random angles within each row's range, for the same reason.

Quality is the product's (`hashwatch.variants.pdq_hash`): PDQ's own, measured again on the
image stretched to its full tonal range where it falls under 50, so a darkened copy is not
skipped for being dark.
"""


def write_report(
    sources: list[Source],
    queries: Queries,
    entries: Entries,
    comparison: Comparison,
    hashing: list[tuple[str, float]],
    search: list[tuple[str, int, float, float]],
    list_size: int,
    elapsed: float,
) -> None:
    names = [c.name for c in COLUMNS]
    countable = entries.quality[queries.source] >= MIN_QUALITY
    recall = Recall(
        {c.name: best_distance(comparison, c, queries.usable) <= THRESHOLD for c in CONFIGS},
        queries.transform,
        countable,
    )
    photos = np.array([s.kind == 0 for s in sources])[queries.source]
    no_floor = Recall(
        {RECOMMENDED.name: best_distance(comparison, RECOMMENDED) <= THRESHOLD},
        queries.transform,
        countable,
    )
    photos_only = Recall(recall.found, queries.transform, countable & photos)
    main_rows = [t for t, tr in enumerate(TRANSFORMS) if not tr.check]
    check_rows = [t for t, tr in enumerate(TRANSFORMS) if tr.check]
    categories = list(dict.fromkeys(TRANSFORMS[t].category for t in main_rows))
    poor = [s.name for s, q in zip(sources, entries.quality, strict=True) if q < MIN_QUALITY]
    recommended = RECOMMENDED
    out = [INTRO, "## Recall per transform", ""]
    out.append(
        f"{len(sources)} images ({sum(s.kind == 0 for s in sources)} photographs or given files, "
        f"{sum(s.kind == 1 for s in sources)} generated), {len(main_rows)} transforms: "
        f"{len(main_rows) * len(sources):,} edited copies, each compared with the "
        f"{len(sources) - 1} other entries. Threshold {THRESHOLD}. Recall is the share of edited "
        "copies whose own entry was found; entries whose own hash is below quality 50 "
        f"({', '.join(poor) or 'none'}) are left out of recall (the matcher never matches such "
        "images on purpose) but kept in the list for false matches.\n"
    )
    rows_json = []
    body = []
    for t in main_rows:
        values = [recall.row(c, t) for c in COLUMNS]
        body.append([TRANSFORMS[t].name, TRANSFORMS[t].category, *map(pct, values)])
        rows_json.append(
            {"transform": TRANSFORMS[t].name, "category": TRANSFORMS[t].category}
            | dict(zip(names, values, strict=True))
        )
    out += table(["transform", "category", *names], body)
    out += ["", "Per category (the mean of its rows) and over all transforms:", ""]
    body = []
    category_json = {}
    for category in categories:
        members = [t for t in main_rows if TRANSFORMS[t].category == category]
        values = [recall.mean(c, members) for c in COLUMNS]
        extra = [photos_only.mean(RECOMMENDED, members), no_floor.mean(RECOMMENDED, members)]
        category_json[category] = dict(zip(names, values, strict=True)) | {
            "defaults, photographs only": extra[0],
            "defaults, no quality floor": extra[1],
        }
        body.append([category, len(members), *map(pct, values), *map(pct, extra)])
    overall = [recall.mean(c, main_rows) for c in COLUMNS]
    overall_extra = [
        photos_only.mean(RECOMMENDED, main_rows),
        no_floor.mean(RECOMMENDED, main_rows),
    ]
    body.append(
        [
            "**all transforms**",
            len(main_rows),
            *(f"**{pct(v)}**" for v in [*overall, *overall_extra]),
        ]
    )
    all_pairs = len(queries.source) * (len(sources) - 1)
    body.append(
        [
            "false matches at 31 (of image pairs)",
            "",
            *(f"{comparison.false[c.name][THRESHOLD]} of {all_pairs:,}" for c in COLUMNS),
            "",
            "",
        ]
    )
    comparisons = {c.name: int(distinct_histogram(comparison, c).sum()) for c in COLUMNS}
    body.append(
        ["hash comparisons, distinct images", "", *(f"{comparisons[n]:,}" for n in names), "", ""]
    )
    out += table(
        ["category", "rows", *names, "defaults, photographs only", "defaults, no quality floor"],
        body,
    )
    out.append(
        f"\nImage pairs: every edited copy (including the {len(check_rows)} check rows below) "
        "against every other entry. The last two columns are the defaults again, on the "
        f"{int(np.sum([s.kind == 0 for s in sources]))} photographs (and given files) alone, and "
        "with no quality floor on query hashes: where that column is higher, edits pushed the "
        "hash's quality under 50 (darker, flatter, blurred copies of low-contrast images), and "
        "the matcher skipped it rather than missed it."
    )

    # Targets.
    targets_json = []
    body = []

    def target(label: str, members: list[int], goal: float) -> None:
        plain, ours = recall.mean(COLUMNS[0], members), recall.mean(recommended, members)
        other = recall.mean(OTHER_MODE, members)
        strongest = recall.mean(STRONGEST, members)
        body.append(
            [
                f"{label}: at least {pct(goal)}",
                pct(plain),
                pct(ours),
                "yes" if ours >= goal else "**no**",
                pct(other),
                pct(strongest),
                "yes" if strongest >= goal else "**no**",
            ]
        )
        targets_json.append(
            {
                "target": label,
                "goal": goal,
                "plain": plain,
                "recommended": ours,
                "other": other,
                "strongest": strongest,
            }
        )

    for label, cats, goal in TARGETS:
        target(label, [t for t in main_rows if TRANSFORMS[t].category in cats], goal)
    for name in ("crop 5% one side", "crop 5% all sides"):
        target(name, [t for t in main_rows if TRANSFORMS[t].name == name], 0.80)
    target("all transforms (mean of rows)", main_rows, 0.95)
    plain_false = comparison.false[COLUMNS[0].name][THRESHOLD]
    ours_false = comparison.false[recommended.name][THRESHOLD]
    strongest_false = comparison.false[STRONGEST.name][THRESHOLD]
    body.append(
        [
            "zero false matches",
            plain_false,
            ours_false,
            "yes" if ours_false == 0 else "**no**",
            comparison.false[OTHER_MODE.name][THRESHOLD],
            strongest_false,
            "yes" if strongest_false == 0 else "**no**",
        ]
    )
    out += ["", "## Targets", ""]
    header = ["target", "plain PDQ", "defaults", "met", OTHER_MODE.name, STRONGEST.name, "met"]
    out += table(header, body)
    out += [
        "",
        "The last two columns are the strongest setting an operator can choose: lists whose "
        "`entry_hashes` setting is `wide` (19 entry hashes per listed image, about 1.8 times "
        "the index of the default `crops+tones`).",
    ]

    # Designs.
    crop_rows = [t for t in main_rows if TRANSFORMS[t].category.startswith("crop")]
    five = [t for t in main_rows if TRANSFORMS[t].name.startswith("crop 5%")]
    tilt_rows = [t for t in main_rows if TRANSFORMS[t].category == "small rotation"]
    colour_rows = [t for t in main_rows if TRANSFORMS[t].category == "colour"]
    first_label, first_categories, first_goal = TARGETS[0]  # re-encoding ... colour: 99%
    first_rows = [t for t in main_rows if TRANSFORMS[t].category in first_categories]
    crop_checks = [t for t in check_rows if TRANSFORMS[t].category.startswith("crop")]
    tone_checks = [t for t in check_rows if TRANSFORMS[t].category == "colour"]
    base = recall.mean(DESIGNS[0], main_rows)
    out += [
        "",
        "## Entry hash designs",
        "",
        "Extra hashes stored per list entry, all with the dihedral and trimmed query variants. "
        "Recall on the six crop rows (2, 5 and 10%, one side and all sides), on the two 5% rows, "
        "on the 3% and 7% check rows, on the three tilt rows, on the nine colour rows, on the "
        "tone check rows (strengths the tone hashes do not sit on, and darker copies), on the "
        f"{len(first_rows)} rows of the first target ({first_label}), and over all "
        "transforms; the gain is over no entry hashes, per extra hash, over all transforms. "
        '"trimmed" exists only for entries with a plain edge, so it adds less than one hash on '
        'average; "crops" is the default\'s crops (trimmed, 4 sides 5, all-2, 5), "4 tones" its '
        "tone edits (brightness+30, gamma0.6, gamma1.6, saturation+50).",
        "",
    ]
    body = []
    designs_json = []
    for config in DESIGNS:
        _, ei = positions(config)
        extra = float(entries.present[:, ei].sum(axis=1).mean()) - 1
        values = {
            "crop rows": recall.mean(config, crop_rows),
            "5% crops": recall.mean(config, five),
            "3 and 7% crops": recall.mean(config, crop_checks) if crop_checks else float("nan"),
            "tilts": recall.mean(config, tilt_rows),
            "colour": recall.mean(config, colour_rows),
            "tone checks": recall.mean(config, tone_checks) if tone_checks else float("nan"),
            first_label: recall.mean(config, first_rows),
            "all transforms": recall.mean(config, main_rows),
        }
        gain = (values["all transforms"] - base) / extra if extra > 0 else 0.0
        counts = comparison.false[config.name]
        mark = " (default)" if set(config.entry) == set(recommended.entry) else ""
        body.append(
            [
                config.name + mark,
                f"{extra:.2f}",
                *map(pct, values.values()),
                f"{100 * gain:+.2f}" if extra > 0 else "",
                " / ".join(str(counts[x]) for x in COUNT_AT),
            ]
        )
        designs_json.append(
            {"design": config.name, "entry": list(config.entry), "extra_hashes": extra}
            | values
            | {"false": counts}
        )
    eligible = [
        d
        for d in designs_json
        if d["false"][THRESHOLD] == 0
        and d[first_label] >= first_goal
        and d["tone checks"] >= TONE_CHECK_GOAL
        and min(recall.row(next(c for c in DESIGNS if c.name == d["design"]), t) for t in five)
        >= 0.80
    ]
    chosen = min(eligible, key=lambda d: (d["extra_hashes"], -d["all transforms"]), default=None)
    out += [
        'Chosen by the rule "the fewest extra hashes among the designs with no false match that '
        f"meet the targets a list's defaults answer for ({first_label}: at least "
        f"{pct(first_goal)}; both 5% crop rows: at least 80%), with {pct(TONE_CHECK_GOAL)} or "
        "more on the tone check rows, so that the tone hashes hold off the strengths they sit "
        'on": '
        + (f"**{chosen['design']}**" if chosen else "none qualifies")
        + (
            " (the default)."
            if chosen and set(chosen["entry"]) == set(recommended.entry)
            else ", not the default."
        ),
        "",
    ]
    out += table(
        [
            "design",
            "extra hashes per entry",
            "crop rows",
            "5% crops",
            "3 and 7% crops",
            "tilts",
            "colour",
            "tone checks",
            first_label,
            "all transforms",
            "gain per extra hash (points)",
            "false matches at 31 / 40 / 50",
        ],
        body,
    )

    reaching = [
        d for d in designs_json if d["all transforms"] >= 0.95 and d["false"][THRESHOLD] == 0
    ]
    smallest = min(reaching, key=lambda d: d["extra_hashes"], default=None)
    out += [
        "",
        "The smallest design that reaches 95% over all transforms with no false match: "
        + (
            f"**{smallest['design']}** ({smallest['extra_hashes']:.2f} extra hashes per entry, "
            f"{pct(smallest['all transforms'])})."
            if smallest
            else "none of those measured."
        ),
    ]

    # Check rows.
    out += ["", "## Off the grid", ""]
    out.append(
        "Crops and tone edits the default entry hashes do not sit on, and copies darker and "
        "flatter than the issue's rows (left out of the averages above):\n"
    )
    out += table(
        ["transform", *names],
        [[TRANSFORMS[t].name, *(pct(recall.row(c, t)) for c in COLUMNS)] for t in check_rows],
    )

    # Distances to own entry.
    out += [
        "",
        "## Distances of edited copies to their own entry",
        "",
        "The smallest distance of an edited copy to its own entry, plain and with the recommended "
        "variants: median / 90th percentile.",
        "",
    ]
    plain_d = best_distance(comparison, COLUMNS[0])
    ours_d = best_distance(comparison, recommended)
    body = []
    for category in categories:
        mask = np.isin(
            queries.transform, [t for t in main_rows if TRANSFORMS[t].category == category]
        )
        mask &= countable

        def summary(d: npt.NDArray[np.int16], mask: Mask = mask) -> str:
            x = np.minimum(d[mask], 256)
            return f"{np.median(x):.0f} / {np.percentile(x, 90):.0f}"

        body.append([category, summary(plain_d), summary(ours_d)])
    out += table(["category", "plain PDQ", "recommended"], body)

    # Thresholds.
    points = (THRESHOLD, 40, 50, 60, 70, 80, 90, 100)
    out += [
        "",
        "## Thresholds and the false-match rate of large lists",
        "",
        "Every comparison of a query hash with a hash of an unrelated entry gives the distance "
        "distribution of distinct images. Its lower tail is the false-match rate per "
        "comparison: a query image searched with q hashes against a list of L entries holding e "
        "hashes each makes q x e x L comparisons, and so expects q x e x L x rate false matches "
        "(also an upper bound on the chance of at least one). Where the measured tail runs out, "
        "the tables use a fitted binomial: Daugman's method for iris codes, a binomial with the "
        "measured mean and the number of independent bits that reproduces the measured spread. "
        "The binomial(256, 0.5) tail, what 256 independent fair bits would give, is shown for "
        "reference.",
        "",
    ]
    body = []
    for threshold in COUNT_AT:
        at = Recall(
            {
                c.name: best_distance(comparison, c, queries.usable) <= threshold
                for c in (COLUMNS[0], recommended)
            },
            queries.transform,
            countable,
        )
        body.append(
            [
                threshold,
                pct(at.mean(COLUMNS[0], main_rows)),
                pct(at.mean(recommended, main_rows)),
                *(
                    pct(at.mean(recommended, [t for t in main_rows if TRANSFORMS[t].category == c]))
                    for c in ("colour", "small rotation", "crop one side", "watermark")
                ),
                comparison.false[COLUMNS[0].name][threshold],
                comparison.false[recommended.name][threshold],
            ]
        )
    out.append("What a higher threshold buys in this sample, and what it cost here:\n")
    out += table(
        [
            "threshold",
            "recall, plain PDQ",
            "recall, defaults",
            "colour",
            "small rotation",
            "crop one side",
            "watermark",
            "false matches, plain",
            "false matches, defaults",
        ],
        body,
    )
    out.append("")
    tails = {
        c.name: tail_of(distinct_histogram(comparison, c), points)
        for c in (COLUMNS[0], recommended)
    }
    for config in (COLUMNS[0], recommended):
        tail = tails[config.name]
        by_kind = []
        for kind, label in (
            (0, "photograph pairs"),
            (1, "photograph-generated"),
            (2, "generated pairs"),
        ):
            h = distinct_histogram(comparison, config, [kind])
            if h.sum():
                k = tail_of(h, points)
                by_kind.append(f"{label} {k.mean:.1f} / {k.std:.1f} / {k.minimum}")
        out += [
            f"**{config.name}**: {tail.comparisons:,} comparisons of distinct images; mean "
            f"{tail.mean:.1f} bits, standard deviation {tail.std:.1f}, smallest {tail.minimum} "
            f"(binomial(256, 0.5): 128, 8.0), so about {tail.degrees:.0f} independent bits "
            f"instead of 256. Mean / sd / smallest by kind: {'; '.join(by_kind)}.",
            "",
        ]
        out += table(
            [
                "distance at most",
                "measured fraction (count)",
                "fitted binomial",
                "measured tail extended",
                "binomial(256, 0.5)",
            ],
            [
                [
                    x,
                    f"{rate_text(tail.empirical[x])} "
                    f"({round(tail.empirical[x] * tail.comparisons):,})",
                    rate_text(tail.fitted[x]),
                    rate_text(tail.extrapolated[x]),
                    rate_text(tail.reference[x]),
                ]
                for x in points
            ],
        )
        out.append("")
    plain_tail, ours_tail = tails[COLUMNS[0].name], tails[recommended.name]
    qi, ei = positions(recommended)
    q_ours = float(queries.usable[:, qi].sum(axis=1).mean())
    e_ours = float(entries.present[:, ei].sum(axis=1).mean())
    low, high = ours_tail.fit_range
    out += [
        "The two models disagree, and the data side with the cautious one. The fitted binomial "
        "matches the bulk of the distribution but not its lower tail: where the tail has counts, "
        f"the measured fraction is {tail_ratio(plain_tail)} times the fit for plain PDQ and "
        f"{tail_ratio(ours_tail)} times with the variants. The second model draws a straight "
        "line through the logarithm of the measured tail (fitted on distances "
        f"{low}-{high} for the defaults, where there are at least 10 comparisons and under 1% of "
        "them) and extends it down; a binomial-like tail bends down faster than that line, so "
        "this is an estimate from above, while the binomial fit, already below the data where "
        "it can be checked, is one from below.",
        "",
        "Expected false matches per query image against a whole list, by each model, and in "
        "brackets the 95% upper bound from having seen none in this many comparisons "
        "(3 / comparisons, scaled the same way). Plain PDQ: 1 query hash, 1 hash per entry. "
        f"Defaults: {q_ours:.1f} query hashes on average (8, or 16 where a border was trimmed) "
        f"and {e_ours:.2f} hashes per entry, so {q_ours * e_ours:.0f} comparisons per entry.",
        "",
    ]
    expected_json = []
    body = []
    for entries_count in (1_000_000, 10_000_000):
        for x in (THRESHOLD, 40, 50):
            cells = []
            for name, per_query in ((COLUMNS[0].name, 1.0), (recommended.name, q_ours * e_ours)):
                tail = tails[name]
                scale = per_query * entries_count
                bound = 3 / tail.comparisons * scale
                cells += [
                    rate_text(tail.fitted[x] * scale),
                    f"{rate_text(tail.extrapolated[x] * scale)} (< {rate_text(bound)})",
                ]
                expected_json.append(
                    {
                        "entries": entries_count,
                        "distance": x,
                        "config": name,
                        "fitted_binomial": tail.fitted[x] * scale,
                        "tail_extended": tail.extrapolated[x] * scale,
                        "bound_none_seen": bound,
                    }
                )
            reference = plain_tail.reference[x] * entries_count
            body.append([f"{entries_count / 1e6:g}M", x, *cells, rate_text(reference)])
    out += table(
        [
            "list entries",
            "distance",
            "plain PDQ, binomial fit",
            "plain PDQ, tail extended",
            "defaults, binomial fit",
            "defaults, tail extended",
            "binomial(256, 0.5), plain",
        ],
        body,
    )
    out += [
        "",
        f"How the measured distribution differs from binomial(256, 0.5): its bulk is close to it "
        f"(spread {plain_tail.std:.1f} bits for plain PDQ and {ours_tail.std:.1f} with every "
        f"variant pair, against 8.0: about {plain_tail.degrees:.0f} and "
        f"{ours_tail.degrees:.0f} independent fair bits), but its lower tail is much heavier: "
        "pairs of unrelated images that share a broad layout (a bright top over a dark bottom, "
        "a centred subject) sit closer than independent bits would put them, and the variants "
        "add more such pairs (mirrors and transposes of near-symmetric scenes, crops), bringing "
        f"the closest distinct pair from {plain_tail.minimum} to {ours_tail.minimum} bits. "
        f"{'No' if ours_tail.empirical[50] == 0 else 'Some'} distinct pair came within 50 bits, "
        "so every rate at 31-50 bits above is a model's, not an observation. These images are "
        "unrelated by construction; real lists hold many images that share a layout (the same "
        "room, series or pose) and sit closer still, so the distances between a real list's own "
        "entries, computed the same way, are the distribution to check before raising the "
        "threshold or adding hashes.",
    ]

    # Trimming on borderless images.
    no_border = [
        t
        for t in main_rows
        if TRANSFORMS[t].category not in ("border", "screenshot")
        and not any(w in TRANSFORMS[t].name for w in ("border", "letterbox", "tilt"))
    ]
    share = float(
        queries.present[np.isin(queries.transform, no_border), FAST.index("trimmed")].mean()
    )
    trimmed_entries = [s.name for s, ok in zip(sources, entries.present[:, 1], strict=True) if ok]
    out += [
        "",
        "## Trimming images that have no border",
        "",
        f"`trim_borders` found a border on {len(trimmed_entries)} of the {len(sources)} listed "
        f"images, which have none added ({', '.join(trimmed_entries) or 'none'}): plain skies, "
        "backgrounds of micrographs, page margins. It did so on "
        f"{pct(share)} of the edited copies without an added border or tilt. Each such trim adds "
        "8 query hashes (or one entry hash); the false-match counts above include them.",
    ]

    # Cost.
    out += [
        "",
        "## Cost",
        "",
        "Hashing, median milliseconds per image (1024 x 768 pixels, one core):",
        "",
    ]
    out += table(["step", "ms"], [[name, f"{ms:.2f}"] for name, ms in hashing])
    if search:
        out += [
            "",
            f"Searching `HammingIndex` (threshold 31, one core), each query image's hashes in one "
            f"call, with {list_size:,} list entries (synthetic clustered codes as in "
            "bench/index.py; each extra entry hash is the entry's code with 20-70 random bits "
            "flipped, as real crops land) and the real query hashes of this run:",
            "",
        ]
        out += table(
            ["configuration", "codes in the index", "query images/s", "query hashes/s"],
            [[n, f"{size:,}", f"{i:,.0f}", f"{h:,.0f}"] for n, size, i, h in search],
        )
    # bench/matcher.py's figures (the product's matcher, with and without entry hashes) are
    # kept across runs of this script: it owns that section.
    matcher_section = read_section(MATCHER_SECTION, DOCS / "detection-quality.md")
    out += [
        "",
        matcher_section
        or "## Matcher throughput with entry hashes\n\n(run `python bench/matcher.py`)",
        "",
        "## Run",
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d} on {machine()}, in {elapsed / 60:.1f} minutes.",
        f"Command: `{command()}`",
        "",
    ]
    (DOCS / "detection-quality.md").write_text("\n".join(out))
    result = {
        "images": len(sources),
        "threshold": THRESHOLD,
        "columns": [c.__dict__ for c in COLUMNS],
        "rows": rows_json,
        "categories": category_json,
        "overall": dict(zip(names, overall, strict=True)),
        "false_matches": {c.name: comparison.false[c.name] for c in CONFIGS},
        "image_pairs": all_pairs,
        "targets": targets_json,
        "designs": designs_json,
        "tails": {name: tail.__dict__ for name, tail in tails.items()},
        "expected_false_matches": expected_json,
        "hashing_ms": dict(hashing),
        "search": [
            {"configuration": n, "codes": size, "images_per_s": i, "hashes_per_s": h}
            for n, size, i, h in search
        ],
        "machine": machine(),
        "command": command(),
    }
    (DOCS / "detection-quality.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {DOCS / 'detection-quality.md'} and {DOCS / 'detection-quality.json'}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folder", nargs="?", type=Path, help="distinct benign images, one per file")
    parser.add_argument("--generated", type=int, default=80, help="generated images, no FOLDER")
    parser.add_argument(
        "--list-size", type=int, default=1_000_000, help="entries in the search timing (0: skip)"
    )
    parser.add_argument("--search-images", type=int, default=2000, help="query images timed")
    parser.add_argument(
        "--hashes",
        type=Path,
        help="keep the computed hashes in this .npz file and reuse them when it exists: re-runs "
        "the analysis alone after a change to the designs (delete it after changing the hashing)",
    )
    args = parser.parse_args()
    tune_allocator()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.folder
        if folder is None:
            folder = Path(scratch)
            write_default_folder(folder, args.generated)
        sources = load_sources(folder)
    if len(sources) < 2:
        raise SystemExit("need at least two images")
    print(f"{len(sources)} images, {len(TRANSFORMS)} transforms", flush=True)
    if args.hashes and args.hashes.exists():
        saved = np.load(args.hashes)
        entries = Entries(*(saved[f"entries_{f.name}"] for f in dataclasses.fields(Entries)))
        queries = Queries(*(saved[f"queries_{f.name}"] for f in dataclasses.fields(Queries)))
        if entries.codes.shape[:2] != (len(sources), len(ENTRY_NAMES)) or len(
            queries.source
        ) != len(sources) * len(TRANSFORMS):
            raise SystemExit(f"{args.hashes} was made from other images or transforms")
    else:
        entries = entry_hashes(sources)
        queries = query_hashes(sources, TRANSFORMS)
        if args.hashes:
            np.savez(
                args.hashes,
                **{f"entries_{k}": v for k, v in dataclasses.asdict(entries).items()},
                **{f"queries_{k}": v for k, v in dataclasses.asdict(queries).items()},
            )
    kinds = np.array([s.kind for s in sources], dtype=np.int64)
    comparison = compare(queries, entries, kinds)
    countable = entries.quality[queries.source] >= MIN_QUALITY
    for config in CONFIGS:
        found = (best_distance(comparison, config, queries.usable) <= THRESHOLD)[countable].mean()
        print(f"  {config.name}: recall {found:.3f}, false {comparison.false[config.name]}")
        for n, entry, distance in comparison.examples[config.name][:3]:
            what = TRANSFORMS[queries.transform[n]].name
            mine, other = sources[queries.source[n]].name, sources[entry].name
            print(f"    {mine} / {what} ~ {other}: {distance}")
    hashing = hashing_cost(sources)
    search = []
    if args.list_size:
        extra = len(ENTRY_CROPS) + len(ENTRY_TILTS) + len(ENTRY_TONES)
        search = search_cost(queries, args.list_size, extra, args.search_images)
    elapsed = time.perf_counter() - started
    write_report(sources, queries, entries, comparison, hashing, search, args.list_size, elapsed)


if __name__ == "__main__":
    main()
