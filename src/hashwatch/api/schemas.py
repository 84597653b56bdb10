"""Request and response bodies, as pydantic models: they validate input and document the API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from hashwatch.store.models import ACCESS_LEVELS

__all__ = [
    "AddResultOut",
    "AnalystDayOut",
    "AssessmentOut",
    "ChangeOut",
    "ChangesOut",
    "CompositionOut",
    "DashboardOut",
    "DecisionIn",
    "EntriesIn",
    "EntryHashIO",
    "EntryIn",
    "GradeIn",
    "GrantIn",
    "GrantOut",
    "GrantsOut",
    "HashIn",
    "HashOut",
    "ItemDetailOut",
    "ItemOut",
    "ItemResult",
    "ListIn",
    "ListOut",
    "ListPatch",
    "ListsOut",
    "MatchIn",
    "MatchOut",
    "MatchRecord",
    "MediaMatchOut",
    "QueueOut",
    "RevokeItemIn",
    "RevokedOut",
]


#: Ids are 64-bit in PostgreSQL (63 usable) and SQLite: anything larger cannot name a row.
MAX_ID = 2**62

Id = Annotated[int, Field(ge=1, le=MAX_ID)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ContentIn(_Strict):
    """The platform's own reference to the content a hash came from: with it, a match is
    recorded as a match event for review (hashwatch.review)."""

    content_id: str = Field(min_length=1, max_length=200)
    user_id: str = Field(min_length=1, max_length=200, description="The uploading user.")
    uploaded_at: datetime | None = None
    ip_address: str | None = Field(default=None, max_length=64)
    extra: dict[str, str] = Field(default_factory=dict, max_length=32)


class HashIn(_Strict):
    signal_type: str = Field(max_length=32, examples=["pdq"])
    value: str = Field(
        max_length=256,
        examples=["f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"],
    )
    #: A perceptual hash's quality (0-100) where the caller has it; low-quality hashes are skipped.
    quality: int | None = Field(default=None, ge=0, le=100)
    content: ContentIn | None = None


class MatchIn(_Strict):
    hashes: list[HashIn] = Field(description="Up to the batch limit (10,000 by default).")
    lists: list[Id] | None = Field(
        default=None, description="Match only these lists (ids); all lists you may match if absent."
    )


class MatchRecord(BaseModel):
    list_name: str = Field(alias="list")
    list_id: int
    entry_id: int
    signal_type: str
    value: str
    distance: int
    category: str | None
    labels: tuple[str, ...]
    source: str
    variant: str = Field(
        description='Which hash of the query matched: "original", or a variant of an uploaded '
        'image such as "rotate-90", "flip-horizontal" or "trimmed".'
    )
    entry_variant: str = Field(
        default="original",
        description='Which hash of the entry matched: "original" (its value), or one of the '
        'entry hashes of a listed image, such as "crop-left-5" or "trimmed".',
    )


class ItemResult(BaseModel):
    item: int
    signal_type: str
    matches: list[MatchRecord]
    skipped: list[str]
    event_id: int | None = Field(
        default=None, description="The match event recorded, when the item carried `content`."
    )


class MatchOut(BaseModel):
    results: list[ItemResult]
    matched_items: int


class VariantOut(BaseModel):
    variant: str
    value: str
    quality: int


class HashOut(BaseModel):
    hashes: dict[str, str]
    quality: dict[str, int]
    variants: dict[str, list[VariantOut]] = Field(
        default_factory=dict,
        description="Per perceptual signal type, the hashes of the image's variants, when asked.",
    )
    size: int
    error: str | None = Field(
        default=None, description="Why some hashes are missing (e.g. not an image: exact only)."
    )


class MediaMatchOut(HashOut):
    matches: list[MatchRecord]
    skipped: list[str]
    event_id: int | None = Field(
        default=None, description="The match event recorded, when a content reference was sent."
    )


VariantKind = Literal["dihedral", "trim"]
EntryHashSetting = Literal["crops+tones", "crops", "crops+tilts", "wide", "none"]
_ENTRY_HASHES = (
    "Which entry hashes are made for images listed here (published intake items, images added "
    "by `hashwatch lists add-images`): crops+tones (the default: 5% off each side, 2% and 5% off "
    "all sides, the image trimmed where it has a plain edge, and four tone edits: brightness "
    "+30%, gamma 0.6 and 1.6, saturation +50%), crops (without the tone edits), crops+tilts "
    "(crops and tilts of 2 and 4 degrees each way), wide (10% crops too, the tilts and the tone "
    "edits: 19 hashes per entry) or none. Entries already listed keep theirs."
)
_VARIANTS = (
    "Which kinds of variant of an uploaded image match this list: dihedral (its rotations and "
    "flips), trim (the image with uniform borders cut off). Both when a list is created without "
    "saying; [] for none."
)


_REQUIRED_GRADES = (
    "Independent agreeing grades an intake item needs before it is published to this list."
)


class ListIn(_Strict):
    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=4000)
    thresholds: dict[str, int] = Field(default_factory=dict, examples=[{"pdq": 31}])
    variants: list[VariantKind] | None = Field(default=None, description=_VARIANTS)
    required_grades: int = Field(default=2, ge=1, le=9, description=_REQUIRED_GRADES)
    entry_hashes: EntryHashSetting = Field(default="crops+tones", description=_ENTRY_HASHES)


class ListPatch(_Strict):
    description: str | None = Field(default=None, max_length=4000)
    thresholds: dict[str, int] | None = None
    variants: list[VariantKind] | None = Field(default=None, description=_VARIANTS)
    required_grades: int | None = Field(default=None, ge=1, le=9, description=_REQUIRED_GRADES)
    entry_hashes: EntryHashSetting | None = Field(default=None, description=_ENTRY_HASHES)


class ListOut(BaseModel):
    id: int
    name: str
    owner: str
    access: str
    description: str
    thresholds: dict[str, int]
    variants: list[str]
    required_grades: int
    entry_hashes: str
    entries: int
    revoked: int
    by_signal_type: dict[str, int]
    by_category: dict[str, int]
    last_seq: int
    created_at: str
    updated_at: str
    origin: dict[str, Any] | None = None


class ListsOut(BaseModel):
    lists: list[ListOut]


class EntryHashIO(BaseModel):
    """One entry hash: the variant of the listed image and its PDQ hash."""

    variant: str = Field(max_length=32, examples=["crop-left-5"])
    value: str = Field(max_length=256)


_EXTRA_HASHES = (
    "A PDQ entry's entry hashes: PDQ hashes of variants of the listed image (crop-left-5, "
    "crop-all-2, trimmed, tilt+2, ...), which let cropped copies match it. At most 16."
)


class EntryIn(_Strict):
    signal_type: str = Field(max_length=32)
    value: str = Field(max_length=256)
    category: str | None = Field(default=None, max_length=8)
    labels: list[str] | str | None = None
    source: str | None = Field(default=None, max_length=200)
    note: str | None = Field(default=None, max_length=4000)
    extra_hashes: list[EntryHashIO] | None = Field(default=None, description=_EXTRA_HASHES)


class EntriesIn(_Strict):
    entries: list[EntryIn]


class AddResultOut(BaseModel):
    added: int
    already_present: int
    revoked_kept: int
    skipped_unsupported: int
    rejected: int


class RevokedOut(BaseModel):
    entry_id: int
    signal_type: str
    value: str
    seq: int
    revoked_at: str
    reason: str


class ChangeOut(BaseModel):
    seq: int
    kind: str
    at: str
    entry_id: int
    signal_type: str
    value: str
    category: str | None
    labels: list[str]
    source: str
    note: str
    reason: str | None = None
    extra_hashes: list[EntryHashIO] = Field(default_factory=list, description=_EXTRA_HASHES)


class ChangesOut(BaseModel):
    list_id: int
    changes: list[ChangeOut]
    next_after: int = Field(description="Pass as `after` to read the next page.")
    last_seq: int = Field(description="The list's latest sequence number.")
    more: bool


class GrantIn(_Strict):
    organisation: str = Field(min_length=1, max_length=200)
    access: str = Field(description=" or ".join(ACCESS_LEVELS), examples=["read"])


class GrantOut(BaseModel):
    organisation: str
    access: str
    created_at: str


class GrantsOut(BaseModel):
    grants: list[GrantOut]


# --- intake and assessment -------------------------------------------------------------------

Username = Annotated[
    str, Field(min_length=1, max_length=100, description="The analyst acting, by user name.")
]


class GradeIn(_Strict):
    analyst: Username
    grade: str = Field(
        max_length=8,
        description="A, B or C (UK scale); A1, A2, B1 or B2 (US industry scale); or none "
        "(not abuse material).",
        examples=["B"],
    )
    age_band: str | None = Field(
        default=None,
        max_length=16,
        description="Apparent age of the youngest child: 0-2, 3-6, 7-10, 11-13, 14-15, 16-17 "
        "or unknown.",
        examples=["7-10"],
    )
    labels: list[Annotated[str, Field(max_length=100)]] = Field(default_factory=list, max_length=20)


class DecisionIn(GradeIn):
    """A senior analyst's final grade of an item the graders disagreed on."""


class RevokeItemIn(_Strict):
    analyst: Username
    reason: str = Field(min_length=1, max_length=4000, description="Why; kept in the feed.")


class ItemOut(BaseModel):
    id: int
    list_id: int
    state: str = Field(description="queued, escalated, published, rejected or duplicate")
    hashes: dict[str, str]
    pdq_quality: int | None
    media_type: str
    media_bytes: int
    media_held: bool = Field(
        description="Whether the media is still kept (encrypted) for assessment; it is deleted "
        "once the item is decided, and never kept for a duplicate."
    )
    source: str
    duplicate_of_id: int | None = Field(description="The queued item showing the same image.")
    listed_entry_id: int | None = Field(description="The list entry that already has it.")
    required_grades: int
    created_at: str
    decided_at: str | None
    grade: str | None
    age_band: str | None
    entry_ids: list[int] = Field(description="The list entries published from this item.")


class AssessmentOut(BaseModel):
    analyst: str
    grade: str
    age_band: str | None
    labels: list[str]
    final: bool
    at: str


class ItemDetailOut(ItemOut):
    grades: list[AssessmentOut] | None = Field(
        description="Every grade given, for a senior analyst once the graders are done "
        "(escalated or decided items); null otherwise, so that grading stays independent."
    )


class QueueOut(BaseModel):
    analyst: str
    items: list[ItemOut]


class AnalystDayOut(BaseModel):
    analyst: str
    day: str = Field(description="YYYY-MM-DD, in UTC")
    grades: int


class CompositionOut(BaseModel):
    list_id: int
    list_name: str = Field(alias="list")
    images: int = Field(description="Published images on the list, each counted once")
    by_category: dict[str, int]
    by_age_band: dict[str, int]


class DashboardOut(BaseModel):
    organisation: str
    at: str
    queued: int
    escalated: int
    published: int
    rejected: int
    duplicates: int
    oldest_waiting_seconds: int | None = Field(
        description="Age of the oldest item waiting for a grade or a decision; null if none"
    )
    grades_per_day: list[AnalystDayOut] = Field(description="The last 14 days")
    agreement_rate: float | None = Field(
        description="Items decided by agreement, of those that reached their required grades"
    )
    decided_by_agreement: int
    reached_required_grades: int
    lists: list[CompositionOut]
