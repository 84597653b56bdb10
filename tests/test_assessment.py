"""Assessment on SQLite and PostgreSQL: intake with duplicate grouping, independent grading,
escalation, publication to the change feed, media deletion only after commit, revocation,
orphan purge and the dashboard. Images are benign (scikit-image photos and generated blocks)."""

from __future__ import annotations

import base64
import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from hashwatch import assessment, entryhashes
from hashwatch.assessment import (
    dashboard,
    decide,
    get_item,
    grade,
    grades_of,
    intake,
    item_entries,
    next_item,
    published_items,
    purge_orphans,
    queue_for,
    revoke_item,
)
from hashwatch.errors import (
    Conflict,
    EmptyMedia,
    Forbidden,
    InvalidInput,
    ItemNotFound,
    MediaError,
    UnsupportedMedia,
)
from hashwatch.hashing import hash_bytes
from hashwatch.lists import (
    add_entries,
    changes,
    create_list,
    delete_list,
    make_entry,
    revoke_entry,
    update_list,
)
from hashwatch.matching import Matcher
from hashwatch.media import MediaLimits, decode_rgb
from hashwatch.organisations import create_organisation, get_organisation
from hashwatch.samples import generate_image
from hashwatch.store import Store
from hashwatch.store.models import (
    Assessment,
    AuditEvent,
    HashList,
    IntakeItem,
    ItemState,
    ListEntry,
    User,
)
from tests.imaging import encode

ACTOR = "test"
LIMITS = MediaLimits()
USERS = (
    ("hotline", "ana", "analyst"),
    ("hotline", "ben", "analyst"),
    ("hotline", "cat", "analyst"),
    ("hotline", "sam", "senior"),
    ("hotline", "sue", "senior"),
    ("hotline", "ada", "admin"),
    ("elsewhere", "olga", "analyst"),
    ("elsewhere", "oscar", "senior"),
)


class FakeVault:
    """The media store's interface over a dict."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self._count = 0

    def put(self, data: bytes) -> str:
        self._count += 1
        name = f"{self._count:032x}"
        self.files[name] = data
        return name

    def get(self, name: str) -> bytes:
        return self.files[name]

    def delete(self, name: str) -> bool:
        return self.files.pop(name, None) is not None

    def names(self) -> list[str]:
        return sorted(self.files)


# --- fixtures and helpers --------------------------------------------------------------------


@pytest.fixture
def vault() -> FakeVault:
    return FakeVault()


@pytest.fixture
def world(store: Store) -> Store:
    """Two organisations, a list each, and people of every role."""
    with store.session() as session:
        organisations = {
            name: create_organisation(session, name, ACTOR) for name in ("hotline", "elsewhere")
        }
        create_list(session, organisations["hotline"], "verified", ACTOR)
        create_list(session, organisations["elsewhere"], "theirs", ACTOR)
        for organisation, username, role in USERS:
            session.add(
                User(
                    organisation_id=organisations[organisation].id,
                    username=username,
                    password_hash="not-a-real-hash",
                    role=role,
                )
            )
    return store


def user(session: Session, username: str) -> User:
    return session.scalars(select(User).where(User.username == username)).one()


def the_list(session: Session, name: str = "verified") -> HashList:
    return session.scalars(select(HashList).where(HashList.name == name)).one()


def item(session: Session, item_id: int) -> IntakeItem:
    found = session.get(IntakeItem, item_id)
    assert found is not None
    return found


def take_in(store: Store, vault: FakeVault, data: bytes, **options: Any) -> IntakeItem:
    with store.session() as session:
        return intake(session, vault, the_list(session), data, ACTOR, **options)


def grade_as(
    store: Store, vault: FakeVault, item_id: int, username: str, chosen: str, **options: Any
) -> IntakeItem:
    with store.session() as session:
        return grade(
            session,
            vault,
            item(session, item_id),
            user(session, username),
            chosen,
            ACTOR,
            **options,
        )


def decide_as(
    store: Store, vault: FakeVault, item_id: int, username: str, chosen: str, **options: Any
) -> IntakeItem:
    with store.session() as session:
        return decide(
            session,
            vault,
            item(session, item_id),
            user(session, username),
            chosen,
            ACTOR,
            **options,
        )


def feed(store: Store) -> list[Any]:
    with store.session() as session:
        return changes(session, the_list(session))


def jpeg(pixels: np.ndarray, quality: int = 90) -> bytes:
    return encode(pixels, "JPEG", quality=quality)


def altered(pixels: np.ndarray) -> bytes:
    """The same picture resized to half and re-encoded at a lower quality."""
    image = Image.fromarray(pixels)
    return encode(image.resize((image.width // 2, image.height // 2)), "JPEG", quality=70)


def blocks(seed: int) -> bytes:
    """A benign generated picture: a 16 x 16 grid of random grey blocks, as PNG."""
    grid = np.random.default_rng(seed).integers(0, 256, (16, 16), dtype=np.uint8)
    pixels = np.kron(grid, np.ones((16, 16), dtype=np.uint8))
    return encode(np.repeat(pixels[:, :, None], 3, axis=2), "PNG")


# --- intake ----------------------------------------------------------------------------------


def test_intake_hashes_the_image_and_keeps_its_media(
    world: Store, vault: FakeVault, photos: dict[str, np.ndarray]
) -> None:
    data = jpeg(photos["astronaut"])
    taken = take_in(world, vault, data, source="report 42")
    expected = hash_bytes(data, LIMITS)
    assert taken.state == ItemState.QUEUED
    assert (taken.md5, taken.sha1, taken.sha256, taken.pdq) == tuple(
        expected.hashes[k] for k in ("md5", "sha1", "sha256", "pdq")
    )
    assert taken.pdq_quality == expected.quality["pdq"]
    assert (taken.media_type, taken.media_bytes, taken.source) == (
        "image/jpeg",
        len(data),
        "report 42",
    )
    assert taken.required_grades == 2
    assert taken.media_name is not None
    assert vault.files == {taken.media_name: data}
    with world.session() as session:
        stored = item(session, taken.id)
        assert stored.state == ItemState.QUEUED
        assert stored.organisation_id == the_list(session).owner_id
        assert stored.created_by == ACTOR


def test_intake_of_a_png_names_its_type(world: Store, vault: FakeVault) -> None:
    assert take_in(world, vault, blocks(1)).media_type == "image/png"


@pytest.mark.parametrize(
    ("data", "error"), [(b"", EmptyMedia), (b"this is not an image", UnsupportedMedia)]
)
def test_bad_media_raises_and_stores_nothing(
    world: Store, vault: FakeVault, data: bytes, error: type[MediaError]
) -> None:
    with pytest.raises(error):
        take_in(world, vault, data)
    assert vault.files == {}
    with world.session() as session:
        assert session.scalar(select(func.count()).select_from(IntakeItem)) == 0


def test_intake_refuses_a_long_source(world: Store, vault: FakeVault) -> None:
    with pytest.raises(InvalidInput):
        take_in(world, vault, blocks(1), source="x" * 201)
    assert vault.files == {}


@pytest.mark.parametrize("with_matcher", [False, True])
def test_exact_and_pdq_copies_of_a_listed_image_are_grouped_with_its_entry(
    world: Store, vault: FakeVault, photos: dict[str, np.ndarray], with_matcher: bool
) -> None:
    listed_png = encode(photos["coffee"], "PNG")
    hashes = hash_bytes(listed_png, LIMITS).hashes
    with world.session() as session:
        hash_list = the_list(session)
        add_entries(
            session,
            hash_list,
            [make_entry("sha1", hashes["sha1"], "A"), make_entry("pdq", hashes["pdq"], "A")],
            ACTOR,
        )
        entry_of = {
            e.signal_type: e.id
            for e in session.scalars(select(ListEntry).where(ListEntry.list_id == hash_list.id))
        }
        matcher = Matcher.from_store(session, [hash_list]) if with_matcher else None
    exact = take_in(world, vault, listed_png, matcher=matcher)
    near = take_in(world, vault, altered(photos["coffee"]), matcher=matcher)
    other = take_in(world, vault, jpeg(photos["chelsea"]), matcher=matcher)
    assert (exact.state, exact.listed_entry_id, exact.duplicate_of_id) == (
        ItemState.DUPLICATE,
        entry_of["sha1"],
        None,
    )
    assert (near.state, near.listed_entry_id) == (ItemState.DUPLICATE, entry_of["pdq"])
    assert exact.media_name is None and near.media_name is None
    assert other.state == ItemState.QUEUED
    assert list(vault.files) == [other.media_name]


def test_a_revoked_entry_does_not_make_a_duplicate(world: Store, vault: FakeVault) -> None:
    data = blocks(3)
    with world.session() as session:
        hash_list = the_list(session)
        add_entries(
            session, hash_list, [make_entry("md5", hash_bytes(data, LIMITS).hashes["md5"])], ACTOR
        )
        entry = session.scalars(select(ListEntry)).one()
        revoke_entry(session, hash_list, entry.id, "false positive", ACTOR)
    assert take_in(world, vault, data).state == ItemState.QUEUED


def test_copies_of_a_waiting_item_are_grouped_with_it(
    world: Store, vault: FakeVault, photos: dict[str, np.ndarray]
) -> None:
    first = take_in(world, vault, jpeg(photos["astronaut"]))
    again = take_in(world, vault, jpeg(photos["astronaut"]))
    resized = take_in(world, vault, altered(photos["astronaut"]))
    unrelated = take_in(world, vault, jpeg(photos["rocket"]))
    assert (again.state, again.duplicate_of_id) == (ItemState.DUPLICATE, first.id)
    assert (resized.state, resized.duplicate_of_id) == (ItemState.DUPLICATE, first.id)
    assert again.media_name is None and resized.media_name is None
    assert unrelated.state == ItemState.QUEUED
    assert sorted(vault.files) == sorted([first.media_name, unrelated.media_name])
    # Escalated items are waiting too.
    grade_as(world, vault, first.id, "ana", "A")
    grade_as(world, vault, first.id, "ben", "B")
    later = take_in(world, vault, altered(photos["astronaut"]))
    assert (later.state, later.duplicate_of_id) == (ItemState.DUPLICATE, first.id)


def test_a_published_image_taken_in_again_is_grouped_with_its_entry(
    world: Store, vault: FakeVault, photos: dict[str, np.ndarray]
) -> None:
    first = take_in(world, vault, jpeg(photos["astronaut"]))
    grade_as(world, vault, first.id, "ana", "A")
    published = grade_as(world, vault, first.id, "ben", "A")
    again = take_in(world, vault, altered(photos["astronaut"]))
    assert again.state == ItemState.DUPLICATE
    assert again.listed_entry_id in published.entry_ids
    assert vault.files == {}


def test_a_rolled_back_intake_removes_its_media(world: Store, vault: FakeVault) -> None:
    with pytest.raises(RuntimeError), world.session() as session:
        intake(session, vault, the_list(session), blocks(4), ACTOR)
        assert len(vault.files) == 1
        raise RuntimeError("the request failed after the intake")
    assert vault.files == {}


def test_intake_into_a_local_copy_is_refused(world: Store, vault: FakeVault) -> None:
    with world.session() as session:
        the_list(session).origin_url = "https://origin.example"
    with pytest.raises(Conflict):
        take_in(world, vault, blocks(5))
    assert vault.files == {}


# --- grading ---------------------------------------------------------------------------------


def test_two_agreeing_analysts_publish_to_the_change_feed(
    world: Store, vault: FakeVault, photos: dict[str, np.ndarray]
) -> None:
    taken = take_in(world, vault, jpeg(photos["astronaut"]), source="report 7")
    first = grade_as(
        world, vault, taken.id, "ana", "a1", age_band="3-6", labels=["series:one", "indoor"]
    )
    # One grade changes nothing anyone can see, and reveals nothing.
    assert (first.state, first.grade, first.age_band) == (ItemState.QUEUED, None, None)
    assert feed(world) == []
    with world.session() as session:
        assert queue_for(session, user(session, "ana")) == []
        assert [i.id for i in queue_for(session, user(session, "ben"))] == [taken.id]
        assert next_item(session, user(session, "ana")) is None
    done = grade_as(world, vault, taken.id, "ben", "A1", age_band="3-6", labels=["series:two"])
    assert (done.state, done.grade, done.age_band) == (ItemState.PUBLISHED, "A1", "3-6")
    assert done.decided_at is not None
    assert done.media_name is None
    assert vault.files == {}
    changed = feed(world)
    assert sorted(c.signal_type for c in changed) == ["md5", "pdq", "sha1", "sha256"]
    assert sorted(done.entry_ids) == sorted(c.entry_id for c in changed)
    for change in changed:
        assert change.kind == "add"
        assert change.category == "A1"
        assert change.labels == ["age:3-6", "series:one", "indoor", "series:two"]
        assert change.source == "report 7"
        assert change.note == f"intake item {taken.id}"
    value_of = {c.signal_type: c.value for c in changed}
    assert value_of == {
        "md5": taken.md5,
        "sha1": taken.sha1,
        "sha256": taken.sha256,
        "pdq": taken.pdq,
    }
    with world.session() as session:
        stored = item(session, taken.id)
        assert (stored.state, stored.media_name) == (ItemState.PUBLISHED, None)
        assert [g.final for g in grades_of(session, stored)] == [False, False]
        assert [i.id for i in published_items(session, user(session, "cat"))] == [taken.id]
        assert queue_for(session, user(session, "cat")) == []


def test_entries_someone_else_added_meanwhile_are_recorded_too(
    world: Store, vault: FakeVault
) -> None:
    data = blocks(6)
    taken = take_in(world, vault, data)
    with world.session() as session:
        add_entries(session, the_list(session), [make_entry("md5", taken.md5, "B")], ACTOR)
        existing = session.scalars(select(ListEntry.id)).one()
    grade_as(world, vault, taken.id, "ana", "A")
    done = grade_as(world, vault, taken.id, "ben", "A")
    assert done.state == ItemState.PUBLISHED
    assert existing in done.entry_ids
    assert len(done.entry_ids) == 4
    assert len(feed(world)) == 4  # the md5 entry was not added twice


def test_a_user_grades_an_item_once(world: Store, vault: FakeVault) -> None:
    taken = take_in(world, vault, blocks(1))
    grade_as(world, vault, taken.id, "ana", "B")
    with pytest.raises(Conflict):
        grade_as(world, vault, taken.id, "ana", "A")
    with world.session() as session:
        assert len(grades_of(session, item(session, taken.id))) == 1


@pytest.mark.parametrize(
    ("chosen", "band", "labels"),
    [("D", None, ()), ("", None, ()), ("A", "4-8", ()), ("A", None, ("age:3-6",))],
)
def test_a_bad_grade_is_invalid_input(
    world: Store, vault: FakeVault, chosen: str, band: str | None, labels: tuple[str, ...]
) -> None:
    taken = take_in(world, vault, blocks(1))
    with pytest.raises(InvalidInput):
        grade_as(world, vault, taken.id, "ana", chosen, age_band=band, labels=labels)
    with world.session() as session:
        assert grades_of(session, item(session, taken.id)) == []


def test_a_disabled_user_cannot_grade(world: Store, vault: FakeVault) -> None:
    taken = take_in(world, vault, blocks(1))
    with world.session() as session:
        user(session, "ana").disabled_at = datetime.now(UTC)
    with pytest.raises(Forbidden):
        grade_as(world, vault, taken.id, "ana", "A")


def test_none_rejects_and_publishes_nothing(world: Store, vault: FakeVault) -> None:
    taken = take_in(world, vault, blocks(1))
    grade_as(world, vault, taken.id, "ana", "none", age_band="3-6")
    done = grade_as(world, vault, taken.id, "ben", "NONE")
    assert (done.state, done.grade, done.age_band, done.entry_ids) == (
        ItemState.REJECTED,
        "none",
        None,
        [],
    )
    assert feed(world) == []
    assert vault.files == {}


@pytest.mark.parametrize("required", [1, 3])
def test_the_list_sets_how_many_grades_an_item_needs(
    world: Store, vault: FakeVault, required: int
) -> None:
    with world.session() as session:
        the_list(session).required_grades = required
    taken = take_in(world, vault, blocks(1))
    assert taken.required_grades == required
    graders = ["ana", "ben", "cat"][:required]
    for name in graders[:-1]:
        assert grade_as(world, vault, taken.id, name, "C").state == ItemState.QUEUED
    done = grade_as(world, vault, taken.id, graders[-1], "C")
    assert done.state == ItemState.PUBLISHED
    assert {c.category for c in feed(world)} == {"C"}


def test_disagreement_on_the_age_band_escalates(world: Store, vault: FakeVault) -> None:
    taken = take_in(world, vault, blocks(1))
    grade_as(world, vault, taken.id, "ana", "A", age_band="3-6")
    assert grade_as(world, vault, taken.id, "ben", "A", age_band="7-10").state == "escalated"


@pytest.mark.parametrize(
    ("final", "state", "published"),
    [("B", ItemState.PUBLISHED, True), ("none", ItemState.REJECTED, False)],
)
def test_disagreement_goes_to_a_senior_whose_decision_is_final(
    world: Store, vault: FakeVault, final: str, state: str, published: bool
) -> None:
    taken = take_in(world, vault, blocks(1))
    grade_as(world, vault, taken.id, "ana", "A", labels=["from-ana"])
    escalated = grade_as(world, vault, taken.id, "sue", "B")
    assert (escalated.state, escalated.grade) == (ItemState.ESCALATED, None)
    assert list(vault.files) == [taken.media_name]  # kept for the senior
    with world.session() as session:
        assert queue_for(session, user(session, "cat")) == []  # not for another analyst
        assert [i.id for i in queue_for(session, user(session, "sam"))] == [taken.id]
        assert [i.id for i in queue_for(session, user(session, "ada"))] == [taken.id]
        assert queue_for(session, user(session, "sue")) == []  # she graded it
    with pytest.raises(Conflict):  # escalated items take no more grades
        grade_as(world, vault, taken.id, "cat", "A")
    with pytest.raises(Forbidden):
        decide_as(world, vault, taken.id, "cat", "A")
    with pytest.raises(Conflict):
        decide_as(world, vault, taken.id, "sue", "B")
    done = decide_as(world, vault, taken.id, "sam", final, age_band="11-13", labels=["by-sam"])
    assert done.state == state
    assert done.grade == final
    assert vault.files == {}
    changed = feed(world)
    if published:
        assert len(changed) == 4
        assert {(c.category, tuple(c.labels)) for c in changed} == {("B", ("age:11-13", "by-sam"))}
    else:
        assert changed == []
    with world.session() as session:
        grades = grades_of(session, item(session, taken.id))
        assert [(g.grade, g.final) for g in grades] == [("A", False), ("B", False), (final, True)]
    with pytest.raises(Conflict):  # decided once
        decide_as(world, vault, taken.id, "ada", "A")


def test_only_escalated_items_are_decided(world: Store, vault: FakeVault) -> None:
    taken = take_in(world, vault, blocks(1))
    with pytest.raises(Conflict):
        decide_as(world, vault, taken.id, "sam", "A")


def test_another_organisation_sees_nothing(world: Store, vault: FakeVault) -> None:
    taken = take_in(world, vault, blocks(1))
    grade_as(world, vault, taken.id, "ana", "A")
    grade_as(world, vault, taken.id, "ben", "B")
    with world.session() as session:
        for name in ("olga", "oscar"):
            assert queue_for(session, user(session, name)) == []
            assert next_item(session, user(session, name)) is None
            assert published_items(session, user(session, name)) == []
            with pytest.raises(ItemNotFound):
                get_item(session, user(session, name), taken.id)
        assert get_item(session, user(session, "cat"), taken.id).id == taken.id
        with pytest.raises(ItemNotFound):
            get_item(session, user(session, "cat"), taken.id + 1000)
    with pytest.raises(ItemNotFound):
        grade_as(world, vault, taken.id, "olga", "A")
    with pytest.raises(ItemNotFound):
        decide_as(world, vault, taken.id, "oscar", "A")
    with pytest.raises(ItemNotFound), world.session() as session:
        revoke_item(session, item(session, taken.id), user(session, "oscar"), "no", ACTOR)
    assert list(vault.files) == [taken.media_name]


def test_two_graders_finishing_at_once_settle_the_item_once(world: Store, vault: FakeVault) -> None:
    taken = take_in(world, vault, blocks(1))
    outcome: list[object] = []

    def second() -> None:
        try:
            outcome.append(grade_as(world, vault, taken.id, "ben", "A").state)
        except Exception as exc:  # reported below, not lost in the thread
            outcome.append(exc)

    with world.session() as session:
        grade(session, vault, item(session, taken.id), user(session, "ana"), "A", ACTOR)
        thread = threading.Thread(target=second)
        thread.start()
        thread.join(0.5)  # ben waits for ana's transaction: the item's lock
        assert thread.is_alive()
    thread.join(30)
    assert outcome == [ItemState.PUBLISHED]
    assert len(feed(world)) == 4
    assert vault.files == {}


# --- media deletion after commit -------------------------------------------------------------


def test_a_rolled_back_decision_keeps_the_media_and_the_item_queued(
    world: Store, vault: FakeVault
) -> None:
    taken = take_in(world, vault, blocks(1))
    grade_as(world, vault, taken.id, "ana", "A")
    with pytest.raises(RuntimeError), world.session() as session:
        done = grade(session, vault, item(session, taken.id), user(session, "ben"), "A", ACTOR)
        assert done.state == ItemState.PUBLISHED
        assert list(vault.files) == [taken.media_name]  # not before the commit
        raise RuntimeError("the request failed after the decision")
    assert list(vault.files) == [taken.media_name]
    assert feed(world) == []
    with world.session() as session:
        stored = item(session, taken.id)
        assert (stored.state, stored.media_name) == (ItemState.QUEUED, taken.media_name)
    # The session that rolled back leaves nothing behind to fire at a later commit.
    assert grade_as(world, vault, taken.id, "ben", "A").state == ItemState.PUBLISHED
    assert vault.files == {}


def test_a_decision_in_a_rolled_back_savepoint_keeps_the_media(
    world: Store, vault: FakeVault
) -> None:
    taken = take_in(world, vault, blocks(1))
    grade_as(world, vault, taken.id, "ana", "A")
    with world.session() as session:
        savepoint = session.begin_nested()
        grade(session, vault, item(session, taken.id), user(session, "ben"), "A", ACTOR)
        savepoint.rollback()
    assert list(vault.files) == [taken.media_name]
    with world.session() as session:
        assert item(session, taken.id).state == ItemState.QUEUED


def test_a_closed_session_that_never_committed_deletes_nothing(
    world: Store, vault: FakeVault
) -> None:
    taken = take_in(world, vault, blocks(1))
    grade_as(world, vault, taken.id, "ana", "A")
    session = world.sessions()
    grade(session, vault, item(session, taken.id), user(session, "ben"), "A", ACTOR)
    session.close()
    session.execute(select(1))  # a later transaction of the same session commits
    session.commit()
    session.close()
    assert list(vault.files) == [taken.media_name]


def test_purge_orphans_deletes_only_media_no_waiting_item_names(
    world: Store, vault: FakeVault
) -> None:
    queued = take_in(world, vault, blocks(1))
    escalated = take_in(world, vault, blocks(2))
    grade_as(world, vault, escalated.id, "ana", "A")
    grade_as(world, vault, escalated.id, "ben", "B")
    orphan = vault.put(b"left behind by a crash")
    with world.session() as session:
        assert purge_orphans(session, vault) == 1
        assert purge_orphans(session, vault) == 0
    assert sorted(vault.files) == sorted([queued.media_name, escalated.media_name])
    assert orphan not in vault.files


# --- revocation ------------------------------------------------------------------------------


def test_publication_makes_the_entry_hashes_from_the_media_before_it_goes(
    world: Store, vault: FakeVault
) -> None:
    image = generate_image(4)
    data = encode(image, "PNG")
    taken = take_in(world, vault, data)
    grade_as(world, vault, taken.id, "ana", "A")
    grade_as(world, vault, taken.id, "ben", "A")
    assert vault.files == {}
    extra = {c.signal_type: c.extra_hashes for c in feed(world)}
    expected = entryhashes.compute(decode_rgb(data, MediaLimits()), entryhashes.DEFAULT_SETTING)
    assert extra == {"pdq": expected, "md5": (), "sha1": (), "sha256": ()}
    # A copy with 5% cut off its left side is far from the image's own hash, and found.
    cut = round(image.width * 0.05)
    copy = encode(image.crop((cut, 0, image.width, image.height)), "JPEG", quality=90)
    with world.session() as session:
        matcher = Matcher.from_store(session, [the_list(session)])
    [match] = matcher.match_media(hash_bytes(copy, MediaLimits())).matches
    assert (match.value, match.entry_variant) == (taken.pdq, "crop-left-5")


def test_a_list_may_publish_without_entry_hashes_and_unreadable_media_costs_only_them(
    world: Store, vault: FakeVault
) -> None:
    with world.session() as session:
        update_list(session, the_list(session), ACTOR, entry_hashes="none")
    first = take_in(world, vault, encode(generate_image(5), "PNG"))
    grade_as(world, vault, first.id, "ana", "B")
    grade_as(world, vault, first.id, "ben", "B")
    assert all(c.extra_hashes == () for c in feed(world))
    with world.session() as session:
        update_list(session, the_list(session), ACTOR, entry_hashes="crops+tilts")
    second = take_in(world, vault, encode(generate_image(6), "PNG"))
    assert second.media_name is not None
    vault.files[second.media_name] = b"damaged in the vault"
    grade_as(world, vault, second.id, "ana", "B")
    published = grade_as(world, vault, second.id, "ben", "B")
    assert published.state == ItemState.PUBLISHED
    assert all(c.extra_hashes == () for c in feed(world))
    assert len(feed(world)) == 8


def test_a_senior_revokes_a_published_item_through_the_feed(world: Store, vault: FakeVault) -> None:
    taken = take_in(world, vault, blocks(1))
    grade_as(world, vault, taken.id, "ana", "B")
    published = grade_as(world, vault, taken.id, "ben", "B")
    with world.session() as session:
        with pytest.raises(Forbidden):
            revoke_item(session, item(session, taken.id), user(session, "ana"), "wrong", ACTOR)
        with pytest.raises(InvalidInput):
            revoke_item(session, item(session, taken.id), user(session, "sam"), "  ", ACTOR)
    with world.session() as session:
        revoke_item(session, item(session, taken.id), user(session, "sam"), "misgraded", ACTOR)
    revocations = [c for c in feed(world) if c.kind == "revoke"]
    assert sorted(c.entry_id for c in revocations) == sorted(published.entry_ids)
    assert {c.revoke_reason for c in revocations} == {"misgraded"}
    with world.session() as session:
        stored = item(session, taken.id)
        assert all(e.revoked_seq is not None for e in item_entries(session, stored))
        with pytest.raises(Conflict):  # nothing left to revoke
            revoke_item(session, stored, user(session, "ada"), "again", ACTOR)


def test_only_published_items_are_revoked(world: Store, vault: FakeVault) -> None:
    taken = take_in(world, vault, blocks(1))
    with pytest.raises(Conflict), world.session() as session:
        revoke_item(session, item(session, taken.id), user(session, "sam"), "why", ACTOR)


# --- dashboard and audit ---------------------------------------------------------------------


def test_the_dashboard_on_a_known_scenario(world: Store, vault: FakeVault) -> None:
    now = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)
    ids = [take_in(world, vault, blocks(seed)).id for seed in range(1, 6)]
    agreed_a, decided_b, rejected, escalated, queued = ids
    take_in(world, vault, blocks(1))  # a duplicate of the first
    grade_as(world, vault, agreed_a, "ana", "A", age_band="3-6")
    grade_as(world, vault, agreed_a, "ben", "A", age_band="3-6")
    grade_as(world, vault, decided_b, "ana", "A")
    grade_as(world, vault, decided_b, "ben", "B")
    decide_as(world, vault, decided_b, "sam", "B", age_band="11-13")
    grade_as(world, vault, rejected, "ana", "none")
    grade_as(world, vault, rejected, "ben", "none")
    grade_as(world, vault, escalated, "cat", "C")
    grade_as(world, vault, escalated, "ben", "B")
    with world.session() as session:
        # Pin every time to the scenario's clock: one grade today, one two days ago, one too old.
        session.execute(update(Assessment).values(created_at=now - timedelta(hours=1)))
        session.execute(
            update(Assessment)
            .where(Assessment.user_id == user(session, "cat").id)
            .values(created_at=now - timedelta(days=2))
        )
        session.execute(
            update(Assessment)
            .where(Assessment.item_id == rejected, Assessment.user_id == user(session, "ana").id)
            .values(created_at=now - timedelta(days=20))
        )
        session.execute(update(IntakeItem).values(created_at=now - timedelta(days=1)))
        session.execute(
            update(IntakeItem)
            .where(IntakeItem.id == escalated)
            .values(created_at=now - timedelta(hours=30))
        )
        session.execute(
            update(IntakeItem)
            .where(IntakeItem.id == queued)
            .values(created_at=now - timedelta(minutes=5))
        )
    with world.session() as session:  # another organisation's work does not show
        other = intake(session, vault, the_list(session, "theirs"), blocks(9), ACTOR)
        grade(session, vault, other, user(session, "olga"), "A", ACTOR)
    with world.session() as session:
        figures = dashboard(session, get_organisation(session, "hotline"), now=now)
    assert (figures.queued, figures.escalated) == (1, 1)
    assert (figures.published, figures.rejected, figures.duplicates) == (2, 1, 1)
    assert figures.oldest_waiting_seconds == 30 * 3600
    assert figures.grades_per_day == [
        ("cat", "2025-03-12", 1),
        ("ana", "2025-03-14", 2),
        ("ben", "2025-03-14", 4),
        ("sam", "2025-03-14", 1),
    ]
    # Decided by agreement: the A and the rejection; reached their grades: those, the B, the
    # escalated one.
    assert (figures.decided_by_agreement, figures.reached_required_grades) == (2, 4)
    assert figures.agreement_rate == 0.5
    [composition] = figures.lists
    assert composition.list == "verified"
    assert composition.images == 2
    assert composition.by_category == {"A": 1, "B": 1}
    assert composition.by_age_band == {"3-6": 1, "11-13": 1}
    out = figures.to_json()
    assert json.loads(json.dumps(out)) == out
    assert out["lists"][0]["by_category"] == {"A": 1, "B": 1}
    assert out["grades_per_day"][0] == {"analyst": "cat", "day": "2025-03-12", "grades": 1}


def test_an_empty_dashboard(world: Store) -> None:
    with world.session() as session:
        figures = dashboard(session, get_organisation(session, "hotline"))
    assert (figures.queued, figures.oldest_waiting_seconds, figures.agreement_rate) == (
        0,
        None,
        None,
    )
    assert figures.grades_per_day == []
    assert [(c.list, c.images, c.by_category) for c in figures.lists] == [("verified", 0, {})]


def test_every_step_is_audited_without_media(
    world: Store, vault: FakeVault, photos: dict[str, np.ndarray]
) -> None:
    data = jpeg(photos["chelsea"])
    taken = take_in(world, vault, data)
    take_in(world, vault, data)
    grade_as(world, vault, taken.id, "ana", "A")
    grade_as(world, vault, taken.id, "ben", "B")
    decide_as(world, vault, taken.id, "sam", "A", age_band="7-10")
    with world.session() as session:
        revoke_item(session, item(session, taken.id), user(session, "ada"), "misgraded", ACTOR)
    with world.session() as session:
        events = list(session.scalars(select(AuditEvent).order_by(AuditEvent.id)))
    actions = [e.action for e in events]
    for action in (
        "intake.add",
        "assessment.grade",
        "intake.escalate",
        "assessment.decide",
        "entries.add",
        "intake.publish",
        "entry.revoke",
        "intake.revoke",
    ):
        assert action in actions
    assert actions.count("intake.add") == 2
    grades = [e.detail for e in events if e.action == "assessment.grade"]
    assert [(d["user"], d["grade"], d["item_id"]) for d in grades] == [
        ("ana", "A", taken.id),
        ("ben", "B", taken.id),
    ]
    added = next(e.detail for e in events if e.action == "intake.add")
    assert added["hashes"]["sha256"] == taken.sha256
    text = json.dumps([e.detail for e in events])
    for form in (data[:48].hex(), base64.b64encode(data[:48]).decode(), repr(data[:48])):
        assert form not in text
    ours = [e for e in events if e.action.startswith(("intake.", "assessment."))]
    assert {e.organisation_id for e in ours} == {taken.organisation_id}


def test_the_vault_protocols_fit_the_fake() -> None:
    listable: assessment.ListableMediaVault = FakeVault()
    plain: assessment.MediaVault = listable
    assert plain.delete(plain.put(b"x")) is True


def test_a_list_with_intake_items_keeps_its_record(world: Store, vault: FakeVault) -> None:
    take_in(world, vault, blocks(7))
    with world.session() as session, pytest.raises(Conflict, match="intake item"):
        delete_list(session, the_list(session), ACTOR)
    with world.session() as session:
        assert the_list(session).name == "verified"
