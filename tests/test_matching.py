"""The matcher over the store, on SQLite and PostgreSQL: thresholds, quality floor, revocation,
and matches that explain themselves."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from hashwatch.hashing import hash_bytes
from hashwatch.lists import add_entries, create_list, get_list, make_entry, revoke
from hashwatch.matching import Matcher
from hashwatch.media import MediaLimits
from hashwatch.organisations import get_or_create_organisation
from hashwatch.store import Store
from tests.imaging import encode

ACTOR = "test"
LIMITS = MediaLimits()
LISTED = ("astronaut", "coffee", "rocket")


def flip_bits(value: str, count: int) -> str:
    number = int(value, 16)
    for bit in range(count):
        number ^= 1 << (bit * 7)
    return f"{number:064x}"


@pytest.fixture
def listed(store: Store, photos: dict[str, np.ndarray]) -> dict[str, dict[str, str]]:
    """A list holding the PDQ and MD5 of three photos, each graded and sourced."""
    hashes = {name: hash_bytes(encode(photos[name], "PNG"), LIMITS).hashes for name in LISTED}
    with store.session() as session:
        owner = get_or_create_organisation(session)
        hash_list = create_list(session, owner, "hotline", ACTOR)
        add_entries(
            session,
            hash_list,
            [
                make_entry(kind, hashes[name][kind], "A1", ["age:4-8"], "IWF", name)
                for name in LISTED
                for kind in ("pdq", "md5")
            ],
            ACTOR,
        )
    return hashes


def matcher_for(store: Store, *names: str) -> Matcher:
    with store.session() as session:
        owner = get_or_create_organisation(session)
        return Matcher.from_store(session, [get_list(session, owner, n) for n in names])


def test_altered_copies_match_and_explain_themselves(
    store: Store, listed: dict[str, dict[str, str]], photos: dict[str, np.ndarray]
) -> None:
    matcher = matcher_for(store, "hotline")
    image = Image.fromarray(photos["coffee"])
    half = image.resize((image.width // 2, image.height // 2))
    for data in (encode(image, "JPEG", quality=70), encode(half, "JPEG", quality=90)):
        report = matcher.match_media(hash_bytes(data, LIMITS))
        assert len(report.matches) == 1
        match = report.matches[0].to_json()
        assert 0 <= match.pop("distance") <= 31
        assert match == {
            "list": "hotline",
            "list_id": match["list_id"],
            "entry_id": match["entry_id"],
            "signal_type": "pdq",
            "value": listed["coffee"]["pdq"],
            "category": "A1",
            "labels": ["age:4-8"],
            "source": "IWF",
            "variant": "original",
            "entry_variant": "original",
        }


def test_an_exact_copy_matches_by_md5_and_pdq(
    store: Store, listed: dict[str, dict[str, str]], photos: dict[str, np.ndarray]
) -> None:
    report = matcher_for(store, "hotline").match_media(
        hash_bytes(encode(photos["rocket"], "PNG"), LIMITS)
    )
    assert sorted((m.signal_type, m.distance) for m in report.matches) == [("md5", 0), ("pdq", 0)]


def test_unlisted_photos_do_not_match(
    store: Store, listed: dict[str, dict[str, str]], photos: dict[str, np.ndarray]
) -> None:
    matcher = matcher_for(store, "hotline")
    for name in ("chelsea", "immunohistochemistry", "hubble"):
        assert matcher.match_media(hash_bytes(encode(photos[name], "JPEG"), LIMITS)).matches == []


def test_each_list_applies_its_own_threshold(
    store: Store, listed: dict[str, dict[str, str]]
) -> None:
    with store.session() as session:
        owner = get_or_create_organisation(session)
        strict = create_list(session, owner, "strict", ACTOR, thresholds={"pdq": 5})
        add_entries(session, strict, [make_entry("pdq", listed["astronaut"]["pdq"])], ACTOR)
    matcher = matcher_for(store, "hotline", "strict")
    near = flip_bits(listed["astronaut"]["pdq"], 4)
    farther = flip_bits(listed["astronaut"]["pdq"], 20)
    edge = flip_bits(listed["astronaut"]["pdq"], 31)
    beyond = flip_bits(listed["astronaut"]["pdq"], 32)
    assert [(m.list, m.distance) for m in matcher.match_value("pdq", near).matches] == [
        ("hotline", 4),
        ("strict", 4),
    ]
    assert [m.list for m in matcher.match_value("pdq", farther).matches] == ["hotline"]
    assert [m.distance for m in matcher.match_value("pdq", edge).matches] == [31]
    assert matcher.match_value("pdq", beyond).matches == []


def test_low_quality_hashes_are_reported_not_matched_unless_the_floor_is_lowered(
    store: Store, listed: dict[str, dict[str, str]]
) -> None:
    matcher = matcher_for(store, "hotline")
    value = listed["coffee"]["pdq"]
    report = matcher.match_value("pdq", value, quality=30)
    assert report.matches == []
    assert report.skipped == ["pdq quality 30 is below the floor of 50; not matched"]
    assert len(matcher.match_value("pdq", value, quality=30, quality_floor=20).matches) == 1
    assert len(matcher.match_value("pdq", value, quality=50).matches) == 1


def test_a_revoked_entry_never_matches_again(
    store: Store, listed: dict[str, dict[str, str]]
) -> None:
    value = listed["astronaut"]["pdq"]
    assert len(matcher_for(store, "hotline").match_value("pdq", value).matches) == 1
    with store.session() as session:
        hash_list = get_list(session, get_or_create_organisation(session), "hotline")
        revoke(session, hash_list, f"pdq:{value}", "false positive", ACTOR)
    matcher = matcher_for(store, "hotline")
    assert matcher.match_value("pdq", value).matches == []
    assert matcher.match_value("pdq", flip_bits(value, 3)).matches == []
    assert len(matcher.match_value("md5", listed["astronaut"]["md5"]).matches) == 1


def test_query_values_are_normalised(store: Store, listed: dict[str, dict[str, str]]) -> None:
    matcher = matcher_for(store, "hotline")
    assert len(matcher.match_value("MD5", f" {listed['coffee']['md5'].upper()} ").matches) == 1


def test_only_the_chosen_lists_are_matched(store: Store, listed: dict[str, dict[str, str]]) -> None:
    with store.session() as session:
        create_list(session, get_or_create_organisation(session), "empty", ACTOR)
    assert matcher_for(store, "empty").match_value("md5", listed["coffee"]["md5"]).matches == []
