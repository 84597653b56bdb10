"""The SignalType contract: what hashwatch needs to know about one kind of hash.

A signal type parses and normalises a value, formats it, computes it from media, measures the
distance between two values, and says which distance still counts as a match by default. The
store keeps values in their normal form; indexes (hashwatch.index) search many values at scale;
media decoding lives in hashwatch.media. Adding a hash type is one new module that subclasses
one of the two families below and registers itself (see docs/signal-types.md).
"""

from __future__ import annotations

import hashlib
import re
from abc import ABC, abstractmethod
from collections.abc import Collection
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from hashwatch.errors import InvalidHash
from hashwatch.variants import VariantHash

__all__ = ["BytesSignalType", "ExactDigestSignalType", "PixelSignalType", "SignalType"]

_HEX = re.compile(r"[0-9a-f]*")


class SignalType(ABC):
    """One kind of hash. Subclasses are used as classes; they hold no state."""

    #: The stored name. Fixed forever once values are stored under it; never derived from code.
    name: ClassVar[str]
    #: What the hash is, for help texts and docs.
    description: ClassVar[str]
    #: Largest distance that still counts as a match when a list sets no threshold of its own.
    default_threshold: ClassVar[int]
    #: Largest threshold a list may set (0 for exact hashes: they match or they do not).
    max_threshold: ClassVar[int]
    #: Number of hex characters of a value.
    hex_length: ClassVar[int]

    @classmethod
    def parse(cls, text: str) -> str:
        """Return the normal form of `text` (lower-case hex), or raise InvalidHash saying why.

        Upper case and surrounding white space are accepted; nothing else is.
        """
        if not isinstance(text, str):
            raise InvalidHash(f"{cls.name} value must be text, not {type(text).__name__}")
        value = text.strip().lower()
        if not value:
            raise InvalidHash(f"{cls.name} value is empty")
        if len(value) != cls.hex_length:
            raise InvalidHash(
                f"{cls.name} value must be {cls.hex_length} hex characters, "
                f"got {len(value)}: {_preview(text)}"
            )
        if _HEX.fullmatch(value) is None:
            bad = next(c for c in value if c not in "0123456789abcdef")
            raise InvalidHash(
                f"{cls.name} value must be hexadecimal (0-9, a-f), found {bad!r}: {_preview(text)}"
            )
        return value

    @classmethod
    def format(cls, value: str) -> str:
        """The text form of a normalised value, as exported and printed."""
        return value

    @classmethod
    @abstractmethod
    def distance(cls, a: str, b: str) -> int:
        """Distance between two normalised values; 0 means identical."""


class BytesSignalType(SignalType):
    """A hash of a file's bytes exactly as received."""

    @classmethod
    @abstractmethod
    def hasher(cls) -> hashlib._Hash:
        """A fresh incremental hasher, so all byte hashes share one read of the file."""


class ExactDigestSignalType(BytesSignalType):
    """A cryptographic digest: equal or not, so the threshold is always 0."""

    default_threshold = 0
    max_threshold = 0
    digest_name: ClassVar[str]

    @classmethod
    def hasher(cls) -> hashlib._Hash:
        # usedforsecurity=False: these identify known files, they do not protect secrets, and
        # FIPS-mode builds of OpenSSL refuse MD5 and SHA-1 otherwise.
        return hashlib.new(cls.digest_name, usedforsecurity=False)

    @classmethod
    def distance(cls, a: str, b: str) -> int:
        return 0 if a == b else cls.hex_length * 4


class PixelSignalType(SignalType):
    """A perceptual hash computed from decoded pixels, compared by Hamming distance."""

    @classmethod
    @abstractmethod
    def hash_pixels(cls, rgb: npt.NDArray[np.uint8]) -> tuple[str, int]:
        """Hash an RGB image (height x width x 3, uint8); return (value, quality 0-100)."""

    @classmethod
    def hash_variants(cls, rgb: npt.NDArray[np.uint8], kinds: Collection[str]) -> list[VariantHash]:
        """The image's hash ("original", first) and the hashes of those of its variants that
        this signal type can search for, of the given kinds (hashwatch.variants). A type with
        no variants returns the original alone."""
        value, quality = cls.hash_pixels(rgb)
        return [VariantHash("original", value, quality)]

    @classmethod
    def to_bytes(cls, value: str) -> bytes:
        return bytes.fromhex(value)

    @classmethod
    def distance(cls, a: str, b: str) -> int:
        return (int(a, 16) ^ int(b, 16)).bit_count()


def _preview(text: str, limit: int = 80) -> str:
    shown = text if len(text) <= limit else text[:limit] + "..."
    return repr(shown)
