"""Matching with variants of the query image, on SQLite and PostgreSQL: rotated, mirrored and
letterboxed copies match through the variant that undoes the edit, each list decides which kinds
of variant it takes, and a change to that choice reaches a running matcher."""

from __future__ import annotations

import numpy as np
import pytest

from hashwatch.hashing import hash_bytes
from hashwatch.lists import add_entries, create_list, get_list, make_entry, update_list
from hashwatch.matching import Matcher
from hashwatch.media import MediaLimits
from hashwatch.organisations import get_or_create_organisation
from hashwatch.store import Store
from tests.imaging import encode

ACTOR = "test"
LIMITS = MediaLimits()
BOTH = ("dihedral", "trim")


def jpeg(pixels: np.ndarray) -> bytes:
    return encode(np.ascontiguousarray(pixels), "JPEG", quality=90)


def letterboxed(pixels: np.ndarray, share: float = 0.15) -> np.ndarray:
    bar = int(pixels.shape[0] * share)
    out = np.zeros((pixels.shape[0] + 2 * bar, *pixels.shape[1:]), dtype=np.uint8)
    out[bar : bar + pixels.shape[0]] = pixels
    return out


@pytest.fixture
def lists_of(store: Store, photos: dict[str, np.ndarray]) -> dict[str, int]:
    """Three lists holding the same photo's PDQ hash, taking all, only dihedral, or no variants."""
    value = hash_bytes(encode(photos["coffee"], "PNG"), LIMITS).hashes["pdq"]
    ids = {}
    with store.session() as session:
        owner = get_or_create_organisation(session)
        for name, kinds in (("all", list(BOTH)), ("turns", ["dihedral"]), ("plain", [])):
            hash_list = create_list(session, owner, name, ACTOR, variants=kinds)
            add_entries(session, hash_list, [make_entry("pdq", value, "A", source=name)], ACTOR)
            ids[name] = hash_list.id
    return ids


def matched_lists(matcher: Matcher, data: bytes, kinds: tuple[str, ...] = BOTH) -> dict[str, str]:
    report = matcher.match_media(hash_bytes(data, LIMITS, variants=kinds))
    return {m.list: m.variant for m in report.matches}


def test_turned_and_mirrored_copies_match_through_the_variant_that_undoes_them(
    store: Store, lists_of: dict[str, int], photos: dict[str, np.ndarray]
) -> None:
    with store.session() as session:
        matcher = Matcher.from_store(session)
    coffee = photos["coffee"]
    # A copy turned a quarter clockwise is undone by a quarter counter-clockwise (np.rot90).
    cases = {
        "rotate-90": np.rot90(coffee, -1),
        "rotate-180": np.rot90(coffee, 2),
        "flip-horizontal": coffee[:, ::-1],
        "flip-vertical": coffee[::-1],
    }
    for variant, pixels in cases.items():
        assert matched_lists(matcher, jpeg(pixels)) == {"all": variant, "turns": variant}
    # Without variants, a turned copy is as far from its original as an unrelated image.
    assert matched_lists(matcher, jpeg(cases["rotate-90"]), ()) == {}


def test_a_letterboxed_copy_matches_once_its_bars_are_trimmed(
    store: Store, lists_of: dict[str, int], photos: dict[str, np.ndarray]
) -> None:
    with store.session() as session:
        matcher = Matcher.from_store(session)
    boxed = jpeg(letterboxed(photos["coffee"]))
    assert matched_lists(matcher, boxed, ()) == {}
    assert matched_lists(matcher, boxed) == {"all": "trimmed"}
    # Trimmed and turned: only a list taking both kinds matches.
    assert matched_lists(matcher, jpeg(letterboxed(np.rot90(photos["coffee"], 2)))) == {
        "all": "trimmed+rotate-180"
    }


def test_an_unaltered_copy_matches_as_the_original_on_every_list(
    store: Store, lists_of: dict[str, int], photos: dict[str, np.ndarray]
) -> None:
    with store.session() as session:
        matcher = Matcher.from_store(session)
    found = matched_lists(matcher, jpeg(photos["coffee"]))
    assert found == {"all": "original", "turns": "original", "plain": "original"}
    # Another photo matches nothing, with or without its variants.
    assert matched_lists(matcher, jpeg(photos["astronaut"])) == {}
    assert matched_lists(matcher, jpeg(np.rot90(photos["astronaut"]))) == {}


def test_a_list_that_takes_variants_later_matches_them_after_a_refresh(
    store: Store, lists_of: dict[str, int], photos: dict[str, np.ndarray]
) -> None:
    with store.session() as session:
        matcher = Matcher.from_store(session)
    mirrored = jpeg(photos["coffee"][:, ::-1])
    assert "plain" not in matched_lists(matcher, mirrored)
    with store.session() as session:
        owner = get_or_create_organisation(session)
        update_list(session, get_list(session, owner, "plain"), ACTOR, variants=["dihedral"])
        update_list(session, get_list(session, owner, "all"), ACTOR, variants=[])
    with store.session() as session:
        result = matcher.refresh(session)
    assert result.lists_updated == 2
    assert matched_lists(matcher, mirrored) == {
        "plain": "flip-horizontal",
        "turns": "flip-horizontal",
    }


def test_matching_within_chosen_lists_applies_to_variants_too(
    store: Store, lists_of: dict[str, int], photos: dict[str, np.ndarray]
) -> None:
    with store.session() as session:
        matcher = Matcher.from_store(session)
    media = hash_bytes(jpeg(np.rot90(photos["coffee"])), LIMITS, variants=BOTH)
    report = matcher.match_media(media, lists=[lists_of["turns"]])
    assert [(m.list, m.variant) for m in report.matches] == [("turns", "rotate-270")]


def test_a_near_uniform_image_is_skipped_with_its_variants(
    store: Store, lists_of: dict[str, int]
) -> None:
    with store.session() as session:
        matcher = Matcher.from_store(session)
    flat = np.full((300, 400, 3), 128, dtype=np.uint8)
    flat[:, 200:] = 130  # nearly uniform: a low-quality PDQ hash
    report = matcher.match_media(hash_bytes(jpeg(flat), LIMITS, variants=BOTH))
    assert report.matches == []
    assert report.skipped and "below the floor" in report.skipped[0]
