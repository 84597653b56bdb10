"""The contract every signal type meets (built-in or third-party), and PDQ's own specifics."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pdqhash
import pytest
from PIL import Image

from hashwatch.errors import InvalidHash, UnknownSignalType
from hashwatch.hashing import hash_bytes
from hashwatch.media import MediaLimits
from hashwatch.signals import (
    BytesSignalType,
    PixelSignalType,
    SignalType,
    all_signal_types,
    get_signal_type,
    register,
)
from hashwatch.signals.pdq import PDQ, bits_to_hex

SIGNAL_TYPES = all_signal_types()


def example(kind: type[SignalType], seed: int = 1) -> str:
    rng = np.random.default_rng(seed)
    return bytes(rng.integers(0, 256, kind.hex_length // 2, dtype=np.uint8)).hex()


@pytest.mark.parametrize("kind", SIGNAL_TYPES, ids=lambda k: k.name)
class TestSignalTypeContract:
    def test_normal_form_round_trips(self, kind: type[SignalType]) -> None:
        value = example(kind)
        assert kind.parse(value) == value
        assert kind.parse(kind.format(value)) == value

    def test_upper_case_and_surrounding_space_are_accepted(self, kind: type[SignalType]) -> None:
        value = example(kind)
        assert kind.parse(f"  {value.upper()}\t\n") == value

    def test_wrong_length_is_rejected_with_the_lengths(self, kind: type[SignalType]) -> None:
        with pytest.raises(InvalidHash, match=f"must be {kind.hex_length} hex characters, got 10"):
            kind.parse("0123456789")

    def test_non_hex_is_rejected_naming_the_character(self, kind: type[SignalType]) -> None:
        bad = "g" + example(kind)[1:]
        with pytest.raises(InvalidHash, match=r"must be hexadecimal .* found 'g'"):
            kind.parse(bad)

    def test_inner_space_is_rejected(self, kind: type[SignalType]) -> None:
        value = example(kind)
        with pytest.raises(InvalidHash):
            kind.parse(value[:10] + " " + value[11:])

    def test_empty_is_rejected(self, kind: type[SignalType]) -> None:
        with pytest.raises(InvalidHash, match="empty"):
            kind.parse("   ")

    def test_distance_is_zero_only_for_equal_values(self, kind: type[SignalType]) -> None:
        a, b = example(kind, 1), example(kind, 2)
        assert kind.distance(a, a) == 0
        assert kind.distance(a, b) > 0

    def test_thresholds_are_consistent(self, kind: type[SignalType]) -> None:
        assert 0 <= kind.default_threshold <= kind.max_threshold

    def test_is_found_by_its_stored_name(self, kind: type[SignalType]) -> None:
        assert get_signal_type(kind.name.upper()) is kind

    def test_hashes_media_one_way_or_the_other(self, kind: type[SignalType]) -> None:
        assert issubclass(kind, BytesSignalType | PixelSignalType)


def test_unknown_signal_type_lists_the_known_ones() -> None:
    with pytest.raises(
        UnknownSignalType, match="unknown signal type 'phash'; known types: md5, pdq"
    ):
        get_signal_type("phash")


def test_a_name_cannot_be_taken_twice() -> None:
    class Impostor(PDQ):
        pass

    with pytest.raises(ValueError, match="already taken"):
        register(Impostor)


def test_exact_hashes_are_digests_of_the_bytes_as_received() -> None:
    data = b"not an image, still hashable"
    result = hash_bytes(data, MediaLimits())
    assert result.hashes["md5"] == hashlib.md5(data).hexdigest()
    assert result.hashes["sha1"] == hashlib.sha1(data).hexdigest()
    assert result.hashes["sha256"] == hashlib.sha256(data).hexdigest()


def test_pdq_hex_packs_the_first_bit_most_significant() -> None:
    bits = np.zeros(256, dtype=np.int64)
    bits[0] = 1
    bits[255] = 1
    assert bits_to_hex(bits) == "8" + "0" * 62 + "1"


def test_pdq_distance_counts_differing_bits() -> None:
    a = "0" * 64
    b = "f" + "0" * 62 + "1"
    assert PDQ.distance(a, b) == 5


def test_pdq_of_decoded_pixels_equals_the_reference_exactly(photos: dict[str, np.ndarray]) -> None:
    for name, pixels in photos.items():
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG")
        bits, quality = pdqhash.compute(pixels)
        result = hash_bytes(buffer.getvalue(), MediaLimits())
        assert result.hashes["pdq"] == bits_to_hex(bits), name
        assert result.quality["pdq"] == quality, name
