"""The `hashwatch` command: a thin shell over the domain services.

Each command parses its options, opens the store, calls one service and renders the result.
Results go to stdout as JSON (one object per line where there are many), so scripts can read
them; progress bars and errors go to stderr. Exit status: 0 on success, 1 when the work failed
or any file could not be hashed, 2 for a usage error.
"""

from __future__ import annotations

import io
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from hashwatch import (
    __version__,
    assessment,
    audit,
    cybertip,
    entryhashes,
    keys,
    listfiles,
    listimages,
    lists,
    organisations,
    people,
    reports,
    review,
    sharing,
)
from hashwatch.api.settings import ServiceSettings
from hashwatch.demo import DemoResult, run_demo
from hashwatch.errors import HashwatchError, ImportRejected, InvalidInput, MediaStoreError
from hashwatch.hashing import MediaHashes, hash_files, iter_media_paths
from hashwatch.matching import Matcher
from hashwatch.media import MediaLimits, check_byte_count
from hashwatch.mediastore import KEY_ENV, MediaStore, generate_key
from hashwatch.organisations import DEFAULT_ORGANISATION, get_or_create_organisation
from hashwatch.signals import parse_typed_value
from hashwatch.signals.pdq import MIN_QUALITY
from hashwatch.store import Store, open_store
from hashwatch.store.database import DEFAULT_URL
from hashwatch.store.models import ROLES, HashList
from hashwatch.tuning import tune_process

__all__ = ["app", "main"]

app = typer.Typer(
    name="hashwatch",
    help="Hash media, keep verified hash lists, and match files against them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
lists_app = typer.Typer(help="Create, import, export and revoke hash lists.", no_args_is_help=True)
db_app = typer.Typer(help="Manage the database schema.", no_args_is_help=True)
orgs_app = typer.Typer(help="Organisations: owners of lists and of API keys.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys for the HTTP service.", no_args_is_help=True)
users_app = typer.Typer(
    help="People who work in the console: analysts, senior analysts, administrators.",
    no_args_is_help=True,
)
app.add_typer(lists_app, name="lists")
app.add_typer(orgs_app, name="orgs")
app.add_typer(keys_app, name="keys")
app.add_typer(users_app, name="users")
app.add_typer(db_app, name="db")
reports_app = typer.Typer(
    help="CyberTipline reports of confirmed review jobs: export them, or submit them.",
    no_args_is_help=True,
)
app.add_typer(reports_app, name="reports")

err = Console(stderr=True)

Db = Annotated[
    str | None,
    typer.Option(
        "--db",
        envvar="HASHWATCH_DB",
        help=f"Database URL (default {DEFAULT_URL}), e.g. postgresql+psycopg://host/db",
        show_default=False,
    ),
]
Org = Annotated[
    str,
    typer.Option("--org", envvar="HASHWATCH_ORG", help="Organisation to act as."),
]
Workers = Annotated[
    int | None,
    typer.Option(
        "--workers", "-w", min=1, help="Processes hashing in parallel (default: one per core)."
    ),
]
MaxBytes = Annotated[
    int | None,
    typer.Option(
        "--max-bytes",
        min=1,
        help="Largest file in bytes (default 50000000, or HASHWATCH_MAX_BYTES).",
    ),
]
FullResolution = Annotated[
    bool,
    typer.Option(
        "--full-resolution",
        help="Decode large images at full size for PDQ (slower; bit-exact with the reference).",
    ),
]
MaxPixels = Annotated[
    int | None,
    typer.Option(
        "--max-pixels",
        min=1,
        help="Most pixels per image (default 100000000, or HASHWATCH_MAX_PIXELS).",
    ),
]
MediaDir = Annotated[
    str | None,
    typer.Option(
        "--media-dir",
        help="Where media waiting for assessment is kept, encrypted (default HASHWATCH_MEDIA_DIR, "
        f"or ./hashwatch-media). The key comes from {KEY_ENV} only.",
        show_default=False,
    ),
]


def main() -> None:
    tune_process()
    app()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", help="Show the version and exit.")] = False,
) -> None:
    if version:
        typer.echo(f"hashwatch {__version__}")
        raise typer.Exit()


# --- hashing and matching --------------------------------------------------------------------


@app.command("hash")
def hash_command(
    paths: Annotated[
        list[Path], typer.Argument(help="Files and directories (walked recursively).")
    ],
    workers: Workers = None,
    max_bytes: MaxBytes = None,
    max_pixels: MaxPixels = None,
    full_resolution: FullResolution = False,
    variants: Annotated[
        str,
        typer.Option(
            help="Also hash these variants of each image, comma-separated: dihedral (rotations "
            "and flips), trim (uniform borders cut off), or none. Printed as pdq_variants."
        ),
    ] = "none",
) -> None:
    """Print every hash of each file as one JSON line: path, md5, sha1, sha256, pdq, pdq_quality."""
    limits = _limits(max_bytes, max_pixels, full_resolution)
    with _domain_errors():
        kinds = lists.parse_variants([variants])
    failed = 0
    for result in _hash_with_progress(paths, limits, workers, kinds):
        _emit(result.to_json())
        failed += not result.ok
    if failed:
        raise typer.Exit(1)


@app.command("match")
def match_command(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Files and directories to match.")
    ] = None,
    list_names: Annotated[
        list[str] | None, typer.Option("--list", "-l", help="Match only this list (repeatable).")
    ] = None,
    hashes: Annotated[
        list[str] | None,
        typer.Option(
            "--hash", help="Match a hash without a file, as SIGNAL_TYPE:VALUE (repeatable)."
        ),
    ] = None,
    quality_floor: Annotated[
        int, typer.Option(min=0, max=100, help="Lowest perceptual hash quality used for matching.")
    ] = MIN_QUALITY,
    workers: Workers = None,
    max_bytes: MaxBytes = None,
    max_pixels: MaxPixels = None,
    full_resolution: FullResolution = False,
    variants: Annotated[
        str,
        typer.Option(
            help="Kinds of variant of each image to match, comma-separated: dihedral (rotations "
            "and flips), trim (uniform borders cut off), or none. Each matches only the lists "
            "that take it (lists create --variants)."
        ),
    ] = "dihedral,trim",
    db: Db = None,
    org: Org = DEFAULT_ORGANISATION,
) -> None:
    """Match files (and --hash values) against lists; one JSON line per file with its matches."""
    if not paths and not hashes:
        raise typer.BadParameter("give at least one PATH or --hash")
    limits = _limits(max_bytes, max_pixels, full_resolution)
    with _domain_errors():
        kinds = lists.parse_variants([variants])
        queries = [_parse_hash_option(text) for text in hashes or []]
        store = open_store(db)
        with store.session() as session:
            owner = get_or_create_organisation(session, org)
            chosen = (
                [lists.get_list(session, owner, name) for name in list_names]
                if list_names
                else lists.list_lists(session, owner)
            )
            with _spinner("loading lists"):
                matcher = Matcher.from_store(session, chosen)
        store.close()
        for (kind, value), text in zip(queries, hashes or [], strict=True):
            report = matcher.match_value(kind, value)
            _emit({"hash": text.strip(), "matches": [m.to_json() for m in report.matches]})
    failed = 0
    for result in _hash_with_progress(paths or [], limits, workers, kinds):
        report = matcher.match_media(result, quality_floor)
        line: dict[str, Any] = {
            "path": result.path,
            "matches": [m.to_json() for m in report.matches],
        }
        if report.skipped:
            line["skipped"] = report.skipped
        if result.error:
            line["error"] = result.error
            failed += 1
        _emit(line)
    if failed:
        raise typer.Exit(1)


# --- intake and assessment --------------------------------------------------------------------


@app.command("intake")
def intake_command(
    paths: Annotated[
        list[Path], typer.Argument(help="Files and directories (walked recursively).")
    ],
    list_name: Annotated[
        str, typer.Option("--list", "-l", help="The list the media is assessed for.")
    ],
    source: Annotated[
        str, typer.Option(help="Where the media came from: a case or report number.")
    ] = "",
    media_dir: MediaDir = None,
    max_bytes: MaxBytes = None,
    max_pixels: MaxPixels = None,
    db: Db = None,
    org: Org = DEFAULT_ORGANISATION,
) -> None:
    """Put media into a list's assessment queue; one JSON line per file with its item and state.

    Each file is hashed and, unless it is already listed or queued (then it is grouped with that
    as a duplicate), kept encrypted in the media store until analysts have graded it.
    """
    limits = _limits(max_bytes, max_pixels, full_resolution=False)
    files = list(iter_media_paths(paths))
    actor = _actor()
    with _domain_errors():
        vault = MediaStore.from_config(media_dir)
        store = open_store(db)
    try:
        with _domain_errors(), store.session() as session:
            owner = get_or_create_organisation(session, org)
            hash_list = lists.get_list(session, owner, list_name)
            lists.ensure_writable(hash_list)
            list_id = hash_list.id
            with _spinner("loading the list"):
                # One index for every file: building it per file would cost a list load each.
                matcher = Matcher.from_store(session, [hash_list])
        failed = 0
        with _progress() as progress:
            task = progress.add_task("taking in", total=len(files))
            for path in files:
                line: dict[str, Any] = {"path": path}
                try:
                    data = _read_media(path, limits)
                    with store.session() as session:
                        current = session.get(HashList, list_id)
                        if current is None:
                            raise InvalidInput(f"list {list_name!r} was deleted")
                        item = assessment.intake(
                            session,
                            vault,
                            current,
                            data,
                            actor,
                            source=source,
                            limits=limits,
                            matcher=matcher,
                        )
                    line.update(item=item.id, state=item.state)
                    if item.duplicate_of_id is not None:
                        line["duplicate_of"] = item.duplicate_of_id
                    if item.listed_entry_id is not None:
                        line["listed_entry"] = item.listed_entry_id
                except HashwatchError as exc:
                    line["error"] = str(exc)
                    failed += 1
                _emit(line)
                progress.advance(task)
    finally:
        store.close()
    if failed:
        raise typer.Exit(1)


@app.command("media-key")
def media_key_command() -> None:
    """Print a new random key for the encrypted media store, alone on one line."""
    typer.echo(generate_key())
    err.print(
        f"set it as {KEY_ENV} wherever `hashwatch serve` and `hashwatch intake` run, e.g. "
        f"export {KEY_ENV}=<key>; keep it secret and safe: media waiting for assessment cannot "
        "be read without it",
        highlight=False,
        soft_wrap=True,
    )


@app.command("purge")
def purge_command(
    media_dir: MediaDir = None,
    db: Db = None,
) -> None:
    """Delete what is kept past its period: confirmed review jobs' events and media after their
    preservation, unconfirmed events after the organisation's period. Run it daily (cron)."""
    with _domain_errors():
        try:
            vault: MediaStore | None = MediaStore.from_config(media_dir)
        except MediaStoreError:
            vault = None  # no media store configured: there is no media to delete either
    with _store_session(db) as session:
        counts = review.purge(session, vault)
    _emit(counts)


@users_app.command("create")
def users_create(
    username: Annotated[
        str, typer.Argument(help="3 to 100 characters: letters, digits and . _ @ -")
    ],
    org: Annotated[str, typer.Option("--org", help="The organisation the person works for.")],
    role: Annotated[
        str, typer.Option(help=f"One of {', '.join(ROLES)}.", show_default=True)
    ] = "analyst",
    password_stdin: Annotated[
        bool,
        typer.Option(
            "--password-stdin", help="Read the password from standard input instead of asking."
        ),
    ] = False,
    db: Db = None,
) -> None:
    """Create a console account; the password is asked for twice (at least 12 characters)."""
    if role not in ROLES:
        raise typer.BadParameter(f"must be one of {', '.join(ROLES)}", param_hint="'--role'")
    password = _new_password(password_stdin)
    with _store_session(db) as session:
        organisation = organisations.get_organisation(session, org)
        user = people.create_user(session, organisation, username, password, role, _actor())
        _emit(people.describe(user, organisation.name))


@users_app.command("set-password")
def users_set_password(
    username: Annotated[str, typer.Argument(help="The account.")],
    password_stdin: Annotated[
        bool,
        typer.Option(
            "--password-stdin", help="Read the password from standard input instead of asking."
        ),
    ] = False,
    db: Db = None,
) -> None:
    """Give an account a new password; this also lifts a login lock and signs it out everywhere."""
    password = _new_password(password_stdin)
    with _store_session(db) as session:
        user = people.get_user(session, username)
        people.set_password(session, user, password, _actor())
        _emit({"username": user.username, "password_changed": True})


def _new_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))


@users_app.command("list")
def users_list(
    org: Annotated[str, typer.Option("--org", help="The organisation whose people to show.")],
    db: Db = None,
) -> None:
    """Print an organisation's console accounts (never their passwords), one JSON line each."""
    with _store_session(db) as session:
        organisation = organisations.get_organisation(session, org)
        for user in people.list_users(session, organisation):
            _emit(people.describe(user, organisation.name))


@users_app.command("disable")
def users_disable(
    username: Annotated[str, typer.Argument(help="The account to disable.")],
    db: Db = None,
) -> None:
    """Stop a person signing in, and sign them out everywhere; their decisions stay recorded."""
    with _store_session(db) as session:
        user = people.disable_user(session, people.get_user(session, username), _actor())
        _emit(
            {
                "username": user.username,
                "disabled_at": user.disabled_at.isoformat() if user.disabled_at else None,
            }
        )


# --- lists -----------------------------------------------------------------------------------


@lists_app.command("create")
def lists_create(
    name: str,
    description: Annotated[str, typer.Option(help="What the list holds.")] = "",
    threshold: Annotated[
        list[str] | None,
        typer.Option("--threshold", help="Match threshold as SIGNAL_TYPE=DISTANCE, e.g. pdq=31."),
    ] = None,
    variants: Annotated[
        str,
        typer.Option(
            help="Kinds of variant of a query image that match this list, comma-separated: "
            "dihedral (rotations and flips), trim (uniform borders cut off), or none."
        ),
    ] = "dihedral,trim",
    required_grades: Annotated[
        int,
        typer.Option(
            help="Independent agreeing grades an intake item needs before it is published."
        ),
    ] = 2,
    entry_hashes: Annotated[
        str,
        typer.Option(
            "--entry-hashes",
            help="Extra hashes made for each image listed here (published intake items, "
            "lists add-images), so cropped and recoloured copies match: crops+tones, crops, "
            "crops+tilts, wide or none.",
        ),
    ] = entryhashes.DEFAULT_SETTING,
    db: Db = None,
    org: Org = DEFAULT_ORGANISATION,
) -> None:
    """Create an empty list."""
    with _store_session(db) as session:
        owner = get_or_create_organisation(session, org)
        thresholds = lists.parse_thresholds(threshold or [])
        hash_list = lists.create_list(
            session,
            owner,
            name,
            _actor(),
            description=description,
            thresholds=thresholds,
            variants=lists.parse_variants([variants]),
            required_grades=required_grades,
            entry_hashes=entry_hashes,
        )
        _emit(lists.list_summary(session, hash_list))


@lists_app.command("update")
def lists_update(
    name: str,
    description: Annotated[str | None, typer.Option(help="New description.")] = None,
    threshold: Annotated[
        list[str] | None,
        typer.Option("--threshold", help="Set a threshold as SIGNAL_TYPE=DISTANCE (repeatable)."),
    ] = None,
    variants: Annotated[
        str | None,
        typer.Option(
            help="Kinds of query variant that match the list: dihedral, trim, both "
            "(dihedral,trim) or none."
        ),
    ] = None,
    required_grades: Annotated[
        int | None,
        typer.Option(
            help="Independent agreeing grades an intake item needs (items taken in "
            "later; those waiting keep theirs)."
        ),
    ] = None,
    entry_hashes: Annotated[
        str | None,
        typer.Option(
            "--entry-hashes",
            help="Extra hashes made for images listed from now on: crops+tones, crops, "
            "crops+tilts, wide or none (entries already listed keep theirs).",
        ),
    ] = None,
    db: Db = None,
    org: Org = DEFAULT_ORGANISATION,
) -> None:
    """Change a list's description, match thresholds, variant kinds, required grades or entry
    hashes."""
    with _store_session(db) as session:
        hash_list = lists.get_list(session, get_or_create_organisation(session, org), name)
        thresholds = lists.parse_thresholds(threshold or [])
        kinds = None if variants is None else lists.parse_variants([variants])
        lists.update_list(
            session,
            hash_list,
            _actor(),
            description,
            thresholds,
            kinds,
            required_grades=required_grades,
            entry_hashes=entry_hashes,
        )
        _emit(lists.list_summary(session, hash_list))


@lists_app.command("show")
def lists_show(
    name: Annotated[str | None, typer.Argument(help="A list; all lists when left out.")] = None,
    db: Db = None,
    org: Org = DEFAULT_ORGANISATION,
) -> None:
    """Show one list, or every list, with entry counts by signal type and category (JSON)."""
    with _store_session(db) as session:
        owner = get_or_create_organisation(session, org)
        if name is not None:
            _emit(lists.list_summary(session, lists.get_list(session, owner, name)), indent=2)
            return
        for hash_list in lists.list_lists(session, owner):
            _emit(lists.list_summary(session, hash_list))


@lists_app.command("import")
def lists_import(
    name: str,
    file: Annotated[Path, typer.Argument(help="The file to import, or - for standard input.")],
    fmt: Annotated[
        str,
        typer.Option(
            "--format", "-f", help="csv, jsonl, threatexchange, or auto (from name and header)."
        ),
    ] = "auto",
    db: Db = None,
    org: Org = DEFAULT_ORGANISATION,
) -> None:
    """Import hashes into a list in one transaction: all rows, or none if any row is bad."""
    with _domain_errors(), _open_input(file) as stream:
        chosen = _choose_format(fmt, file, stream)
        with (
            _store_session(db) as session,
            _import_progress() as (on_rows, on_write_start, on_write),
        ):
            hash_list = lists.get_list(session, get_or_create_organisation(session, org), name)
            try:
                result = listfiles.import_file(
                    session, hash_list, stream, chosen, _actor(), on_rows, on_write, on_write_start
                )
            except ImportRejected as exc:
                _emit({"list": hash_list.name, "added": 0, "rejected": len(exc.errors)})
                raise
        _emit({"list": name.strip(), "format": chosen, **result.to_json()})


@lists_app.command("add-images")
def lists_add_images(
    name: str,
    paths: Annotated[
        list[Path], typer.Argument(help="Image files and directories (walked recursively).")
    ],
    category: Annotated[
        str | None, typer.Option(help="The images' grade: A, B, C, A1, A2, B1 or B2.")
    ] = None,
    labels: Annotated[str | None, typer.Option(help="Labels separated by ';'.")] = None,
    source: Annotated[str, typer.Option(help="Where the images came from.")] = "",
    note: Annotated[str, typer.Option(help="A note kept with each entry.")] = "",
    signal_types: Annotated[
        str,
        typer.Option("--types", help="The hashes to list for each image, comma-separated."),
    ] = "pdq,md5,sha1,sha256",
    max_bytes: MaxBytes = None,
    max_pixels: MaxPixels = None,
    db: Db = None,
    org: Org = DEFAULT_ORGANISATION,
) -> None:
    """List images you hold: their hashes become entries, and each PDQ entry carries the entry
    hashes the list makes (lists create --entry-hashes), so cropped copies match too.

    One JSON line per file (entries made, entry hashes, or error), then the totals. All or
    nothing: if any file cannot be hashed, nothing is added.
    """
    limits = _limits(max_bytes, max_pixels, full_resolution=False)
    files = list(iter_media_paths(paths))
    with _domain_errors():
        chosen = listimages.parse_signal_types(signal_types)
        lists.parse_category(category)  # a bad grade is refused before any image is hashed
    with _store_session(db) as session:
        hash_list = lists.get_list(session, get_or_create_organisation(session, org), name)
        lists.ensure_writable(hash_list)
        setting = hash_list.entry_hashes
        entries: list[lists.NewEntry] = []
        failed = 0
        with _progress() as progress:
            task = progress.add_task("hashing", total=len(files))
            for path in files:
                line: dict[str, Any] = {"path": path}
                try:
                    listed = listimages.image_entries(
                        _read_media(path, limits),
                        setting,
                        limits,
                        signal_types=chosen,
                        category=category,
                        labels=labels,
                        source=source,
                        note=note,
                    )
                except HashwatchError as exc:
                    line["error"] = str(exc)
                    failed += 1
                else:
                    entries.extend(listed.entries)
                    line.update(entries=len(listed.entries), extra_hashes=listed.extra_hashes)
                    if listed.pdq_quality is not None:
                        line["pdq_quality"] = listed.pdq_quality
                    if listed.skipped:
                        line["skipped"] = listed.skipped
                _emit(line)
                progress.advance(task)
        if failed:
            err.print(f"[red]error:[/red] {failed} file(s) could not be hashed; nothing was added")
            raise typer.Exit(1)
        result = lists.add_entries(session, hash_list, entries, _actor())
        _emit({"list": hash_list.name, "images": len(files), **result.to_json()})


@lists_app.command("export")
def lists_export(
    name: str,
    fmt: Annotated[str, typer.Option("--format", "-f", help="csv or jsonl.")] = "csv",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of standard output.")
    ] = None,
    db: Db = None,
    org: Org = DEFAULT_ORGANISATION,
) -> None:
    """Export a list's active entries in an importable format (revoked entries are left out)."""
    if fmt not in listfiles.EXPORT_FORMATS:
        raise typer.BadParameter(f"format must be one of {', '.join(listfiles.EXPORT_FORMATS)}")
    with _store_session(db) as session:
        hash_list = lists.get_list(session, get_or_create_organisation(session, org), name)
        extra = lists.has_extra_hashes(session, [hash_list])
        entries = lists.iter_active_entries(session, [hash_list])
        if output is None:
            listfiles.write_entries(sys.stdout, entries, fmt, extra_hashes=extra)
            return
        with output.open("w", encoding="utf-8", newline="") as handle:
            count = listfiles.write_entries(handle, entries, fmt, extra_hashes=extra)
        err.print(f"wrote {count} entries to {output}")


@lists_app.command("revoke")
def lists_revoke(
    name: str,
    value: Annotated[
        str, typer.Argument(help="The hash to revoke, as VALUE or SIGNAL_TYPE:VALUE.")
    ],
    reason: Annotated[
        str, typer.Option("--reason", help="Why, kept in the change feed and audit log.")
    ],
    db: Db = None,
    org: Org = DEFAULT_ORGANISATION,
) -> None:
    """Revoke an entry: it never matches again and the revocation enters the change feed."""
    with _store_session(db) as session:
        hash_list = lists.get_list(session, get_or_create_organisation(session, org), name)
        entry = lists.revoke(session, hash_list, value, reason, _actor())
        _emit(
            {
                "list": hash_list.name,
                "entry_id": entry.id,
                "signal_type": entry.signal_type,
                "value": entry.value,
                "revoked_at": entry.revoked_at.isoformat() if entry.revoked_at else None,
                "seq": entry.revoked_seq,
                "reason": entry.revoke_reason,
            }
        )


@lists_app.command("changes")
def lists_changes(
    name: str,
    after: Annotated[
        int, typer.Option(min=0, help="Cursor: show changes after this sequence number.")
    ] = 0,
    limit: Annotated[int, typer.Option(min=1, max=100_000, help="Most changes to show.")] = 1000,
    db: Db = None,
    org: Org = DEFAULT_ORGANISATION,
) -> None:
    """Print a list's change feed (adds and revocations) in sequence order, one JSON line each."""
    with _store_session(db) as session:
        hash_list = lists.get_list(session, get_or_create_organisation(session, org), name)
        for change in lists.changes(session, hash_list, after, limit):
            _emit(change.to_json())


@lists_app.command("grant")
def lists_grant(
    name: str,
    to: Annotated[str, typer.Option("--to", help="The organisation to share the list with.")],
    access: Annotated[
        str, typer.Option(help="match (match against it) or read (also read its entries).")
    ] = "match",
    db: Db = None,
    org: Org = DEFAULT_ORGANISATION,
) -> None:
    """Share a list with another organisation (replaces any earlier grant to it)."""
    with _store_session(db) as session:
        hash_list = lists.get_list(session, get_or_create_organisation(session, org), name)
        grantee = organisations.get_organisation(session, to)
        made = sharing.grant(session, hash_list, grantee, access, _actor())
        _emit({"list": hash_list.name, "list_id": hash_list.id, "to": to, "access": made.access})


@lists_app.command("ungrant")
def lists_ungrant(
    name: str,
    to: Annotated[str, typer.Option("--to", help="The organisation to withdraw the grant from.")],
    db: Db = None,
    org: Org = DEFAULT_ORGANISATION,
) -> None:
    """Withdraw another organisation's access to a list."""
    with _store_session(db) as session:
        hash_list = lists.get_list(session, get_or_create_organisation(session, org), name)
        grantee = organisations.get_organisation(session, to)
        sharing.revoke_grant(session, hash_list, grantee, _actor())
        _emit({"list": hash_list.name, "list_id": hash_list.id, "to": to, "access": None})


# --- CyberTipline reports ------------------------------------------------------------------

ReportOrg = Annotated[str, typer.Option("--org", help="The organisation whose job it is.")]
ContactName = Annotated[
    str | None,
    typer.Option(
        "--contact-name",
        envvar=reports.REPORTER_ENV["contact_name"],
        help="The reporting person's name.",
        show_default=False,
    ),
]
ContactEmail = Annotated[
    str | None,
    typer.Option(
        "--email",
        envvar=reports.REPORTER_ENV["email"],
        help="The reporting person's email (the CyberTipline requires one).",
        show_default=False,
    ),
]
ContactPhone = Annotated[
    str | None,
    typer.Option(
        "--phone",
        envvar=reports.REPORTER_ENV["phone"],
        help="The reporting person's phone.",
        show_default=False,
    ),
]
Service = Annotated[
    str | None,
    typer.Option(
        "--service",
        envvar=reports.REPORTER_ENV["service"],
        help="Your product or service the user used (default: the organisation's name).",
        show_default=False,
    ),
]


@reports_app.command("export")
def reports_export(
    job_id: Annotated[int, typer.Argument(min=1, help="The confirmed review job.")],
    org: ReportOrg,
    fmt: Annotated[str, typer.Option("--format", "-f", help="xml or text.")] = "xml",
    contact_name: ContactName = None,
    email: ContactEmail = None,
    phone: ContactPhone = None,
    service: Service = None,
    db: Db = None,
) -> None:
    """Print a confirmed job's CyberTipline report: XML in the API's field names, or text."""
    if fmt not in ("xml", "text"):
        raise typer.BadParameter("format must be xml or text", param_hint="'--format'")
    with _store_session(db) as session:
        organisation = organisations.get_organisation(session, org)
        reporter = reports.Reporter(
            organisation.name,
            contact_name=contact_name or "",
            email=email or "",
            phone=phone or "",
            service=service or "",
        )
        made = reports.get_report(session, organisation.id, job_id, reporter)
    if fmt == "text":
        sys.stdout.write(reports.summary(made))
    else:
        sys.stdout.write(reports.to_xml(made).decode("utf-8"))
    sys.stdout.flush()


@reports_app.command("submit")
def reports_submit(
    job_id: Annotated[int, typer.Argument(min=1, help="The confirmed review job.")],
    org: ReportOrg,
    base_url: Annotated[
        str,
        typer.Option(
            "--base-url",
            help=f"The CyberTipline API: {cybertip.PRODUCTION_URL}, or NCMEC's test "
            f"environment {cybertip.TESTING_URL}.",
        ),
    ],
    contact_name: ContactName = None,
    email: ContactEmail = None,
    phone: ContactPhone = None,
    service: Service = None,
    media_dir: MediaDir = None,
    db: Db = None,
) -> None:
    """Send a confirmed job's report to the CyberTipline: submit, upload each file with its
    details, finish. Credentials come from HASHWATCH_CYBERTIP_USER and _PASSWORD only.

    Prints the submission as JSON; exits 1 if a step failed (the report is then retracted)."""
    actor = _actor()
    with _domain_errors():
        client = cybertip.CyberTiplineClient(
            base_url,
            os.environ.get(cybertip.USER_ENV, ""),
            os.environ.get(cybertip.PASSWORD_ENV, ""),
        )
    with client, _store_session(db) as session:
        organisation = organisations.get_organisation(session, org)
        reporter = reports.Reporter(
            organisation.name,
            contact_name=contact_name or "",
            email=email or "",
            phone=phone or "",
            service=service or "",
        )
        job = reports.get_job(session, organisation.id, job_id)
        files = reports.build_report(session, job, reporter).files
        vault = MediaStore.from_config(media_dir) if any(f.has_media for f in files) else None
        submission = cybertip.submit_job(session, client, job, reporter, vault, actor=actor)
        record = {
            "job": job_id,
            "submission": submission.id,
            "state": submission.state,
            "remote_id": submission.remote_id,
            "error": submission.error,
        }
    _emit(record)
    if record["state"] != cybertip.SubmissionState.FINISHED:
        err.print(f"[red]error:[/] {escape(str(record['error']))}", highlight=False)
        raise typer.Exit(1)


# --- the service: organisations, keys, serve ------------------------------------------------


@orgs_app.command("create")
def orgs_create(name: str, db: Db = None) -> None:
    """Create an organisation."""
    with _store_session(db) as session:
        organisation = organisations.create_organisation(session, name, _actor())
        _emit({"id": organisation.id, "name": organisation.name})


@orgs_app.command("list")
def orgs_list(db: Db = None) -> None:
    """Print every organisation, one JSON line each."""
    with _store_session(db) as session:
        for organisation in organisations.list_organisations(session):
            _emit({"id": organisation.id, "name": organisation.name})


@keys_app.command("create")
def keys_create(
    org: Annotated[str, typer.Option("--org", help="The organisation the key acts for.")],
    scopes: Annotated[
        str, typer.Option(help=f"Comma-separated, from: {', '.join(keys.SCOPES)}.")
    ] = "match",
    name: Annotated[str, typer.Option(help="What the key is for, shown in listings.")] = "",
    db: Db = None,
) -> None:
    """Make an API key and print it once, alone on the first line; only its hash is kept."""
    with _store_session(db) as session:
        organisation = organisations.get_organisation(session, org)
        issued = keys.create_key(session, organisation, scopes.split(","), _actor(), name)
    typer.echo(issued.secret)
    err.print(
        f"key id {issued.key.key_id} for {org} with scopes {','.join(issued.key.scopes)}; "
        "store the key now, it is not shown again"
    )


@keys_app.command("list")
def keys_list(
    org: Annotated[str, typer.Option("--org", help="The organisation whose keys to show.")],
    db: Db = None,
) -> None:
    """Print an organisation's keys (never the secrets), one JSON line each."""
    with _store_session(db) as session:
        organisation = organisations.get_organisation(session, org)
        for key in keys.list_keys(session, organisation):
            _emit(
                {
                    "key_id": key.key_id,
                    "name": key.name,
                    "scopes": key.scopes,
                    "created_at": key.created_at.isoformat(),
                    "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
                }
            )


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id, as `keys list` shows it.")],
    db: Db = None,
) -> None:
    """Revoke a key: requests with it get 401 (within a second on every worker)."""
    with _store_session(db) as session:
        key = keys.revoke_key(session, key_id, _actor())
        revoked_at = key.revoked_at.isoformat() if key.revoked_at else None
        _emit({"key_id": key.key_id, "revoked_at": revoked_at})


@app.command("serve")
def serve_command(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    workers: Annotated[
        int, typer.Option("--workers", "-w", min=1, help="Worker processes, each with its indexes.")
    ] = 1,
    max_staleness: Annotated[
        float,
        typer.Option(min=0.1, help="Seconds within which every change is matched everywhere."),
    ] = ServiceSettings.max_staleness,
    rate_limit: Annotated[
        float, typer.Option(min=0, help="Requests per second per key and worker; 0: no limit.")
    ] = ServiceSettings.rate_limit,
    max_batch: Annotated[
        int, typer.Option(min=1, help="Most hashes in one match request.")
    ] = ServiceSettings.max_batch,
    request_timeout: Annotated[
        float, typer.Option(min=0, help="Seconds before an unanswered request gets 503.")
    ] = ServiceSettings.request_timeout,
    log_unmatched: Annotated[
        bool,
        typer.Option(help="Also log hashes of content that matched nothing (off: only matches)."),
    ] = False,
    match_threads: Annotated[
        int,
        typer.Option(
            min=0,
            help="Match requests each worker runs at once; 0: the cores shared among workers.",
        ),
    ] = ServiceSettings.match_threads,
    max_bytes: MaxBytes = None,
    max_pixels: MaxPixels = None,
    media_dir: MediaDir = None,
    db: Db = None,
) -> None:
    """Run the HTTP API (docs at /docs, schema at /openapi.json)."""
    limits = _limits(max_bytes, max_pixels, full_resolution=False)
    with _domain_errors():
        open_store(db).close()  # migrate once, before workers start
    try:
        MediaStore.from_config(media_dir)
    except MediaStoreError as exc:
        # Matching and lists work without it; say at once why intake and grading will not.
        err.print(
            f"[yellow]warning:[/] intake and assessment are unavailable: {escape(str(exc))}",
            highlight=False,
            soft_wrap=True,
        )
    settings = ServiceSettings(
        db_url=db,
        max_staleness=max_staleness,
        rate_limit=rate_limit,
        max_batch=max_batch,
        request_timeout=request_timeout,
        log_unmatched=log_unmatched,
        max_upload_bytes=limits.max_bytes,
        max_pixels=limits.max_pixels,
        media_dir=media_dir,
        workers=workers,
        match_threads=match_threads,
    )
    from hashwatch.api.app import serve  # FastAPI loads only for this command

    serve(settings, host, port, workers)


# --- sync ------------------------------------------------------------------------------------


@app.command("sync")
def sync_command(
    server: Annotated[
        str,
        typer.Option("--server", help="The server holding the list, e.g. https://hashes.example"),
    ],
    list_id: Annotated[int, typer.Option("--list", min=1, help="The list's id on that server.")],
    key: Annotated[
        str,
        typer.Option(
            "--key",
            envvar="HASHWATCH_KEY",
            help="API key with scope lists:read. Prefer setting HASHWATCH_KEY: `ps` shows options.",
            show_default=False,
        ),
    ],
    name: Annotated[
        str | None,
        typer.Option(
            "--as", help="Name for the local copy when it is made (default: its name there)."
        ),
    ] = None,
    every: Annotated[
        str | None,
        typer.Option(
            "--every",
            help="Sync again at this interval (30s, 10m, 1h), one line per run, until Ctrl-C.",
        ),
    ] = None,
    page_size: Annotated[
        int,
        typer.Option(min=1, max=10_000, help="Changes per request, each page one transaction."),
    ] = 10_000,
    db: Db = None,
    org: Org = DEFAULT_ORGANISATION,
) -> None:
    """Keep a local copy of another server's list up to date from its change feed.

    The copy takes the list's description, thresholds, entries and revocations, and changes only
    through sync. A run cut short keeps every page it applied; the next one goes on from there.
    """
    import time

    from sqlalchemy.exc import OperationalError

    from hashwatch.sync import SyncProgress, parse_duration, sync_list  # loads the HTTP client

    interval = None
    if every is not None:
        try:
            interval = parse_duration(every)
        except InvalidInput as exc:
            raise typer.BadParameter(str(exc), param_hint="'--every'") from None

    def run_once(store: Store) -> dict[str, Any]:
        with _progress() as progress:
            task = progress.add_task(f"syncing list {list_id}", total=None)

            def on_page(done: SyncProgress) -> None:
                progress.update(
                    task,
                    description=f"syncing {done.list_name}",
                    completed=done.cursor,
                    total=done.last_seq,
                )

            result = sync_list(
                store,
                server,
                key,
                list_id,
                organisation=org,
                name=name,
                page_size=page_size,
                on_page=on_page,
            )
        return result.to_json()

    with _domain_errors():
        store = open_store(db)
    try:
        if interval is None:
            with _domain_errors():
                _emit(run_once(store))
            return
        while True:
            started = time.monotonic()
            at = datetime.now(UTC).isoformat(timespec="seconds")
            try:
                _emit({"at": at, **run_once(store)})
            except (HashwatchError, OperationalError) as exc:
                # Reported and tried again at the next interval: the origin or the database
                # may be back by then, and the copy keeps every page already applied.
                message = escape(str(exc))  # the origin's words, not markup
                err.print(f"[red]error:[/] {at} {message}", highlight=False, soft_wrap=True)
            time.sleep(max(0.0, started + interval - time.monotonic()))
    except KeyboardInterrupt:
        if interval is None:
            raise
        err.print("sync stopped")
    finally:
        store.close()


# --- audit, database, demo -------------------------------------------------------------------


@app.command("audit")
def audit_command(
    list_name: Annotated[
        str | None, typer.Option("--list", help="Only this list's events.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="Most events to show, newest first.")] = 100,
    db: Db = None,
    org: Org = DEFAULT_ORGANISATION,
) -> None:
    """Print the audit log: who changed what, newest first, one JSON line each."""
    with _store_session(db) as session:
        owner = get_or_create_organisation(session, org)
        list_id = lists.get_list(session, owner, list_name).id if list_name else None
        for event in audit.recent_events(session, owner.id, list_id, limit):
            _emit(
                {
                    "at": event.at.isoformat(),
                    "actor": event.actor,
                    "action": event.action,
                    "detail": event.detail,
                }
            )


@db_app.command("upgrade")
def db_upgrade(db: Db = None) -> None:
    """Create or migrate the database schema to the current version."""
    with _domain_errors():
        store = open_store(db)
        store.close()
    err.print("database schema is up to date")


@app.command("demo")
def demo_command(
    db: Annotated[
        str | None,
        typer.Option(
            "--db", help="Database to use (default: a fresh SQLite file in the work folder)."
        ),
    ] = None,
    workdir: Annotated[
        Path | None,
        typer.Option(
            help="Keep the generated images, CSV and database here (default: a temporary folder)."
        ),
    ] = None,
) -> None:
    """Build a sample list from generated benign images and match altered and unrelated images."""
    with _domain_errors(), _work_folder(workdir) as folder:
        url = db or f"sqlite:///{folder / 'demo.db'}"
        store = open_store(url)
        list_name = "demo" if db is None else f"demo-{datetime.now(UTC):%Y%m%d-%H%M%S}"
        with _spinner("building the sample list and matching"):
            result = run_demo(store, folder, list_name)
        store.close()
        _render_demo(result, url, folder, keep=workdir is not None)
        if result.correct != len(result.queries):
            raise typer.Exit(1)


# --- helpers ---------------------------------------------------------------------------------


def _render_demo(result: DemoResult, url: str, folder: Path, keep: bool) -> None:
    out = Console()
    imported = result.imported
    out.print(
        f"[bold]Sample list[/] {result.list_name!r}: {imported.added} hashes (PDQ and MD5) of "
        f"{imported.added // 2} generated images, imported from {result.csv_path.name} into {url}"
    )
    table = Table(title=f"Uploads matched against list {result.list_name!r}", show_lines=False)
    for column in ("upload", "result", "entry", "signal", "bits", "variant", "grade"):
        table.add_column(
            column, no_wrap=column != "upload", min_width=12 if column == "upload" else None
        )
    for query in result.queries:
        verdict = "[green]match[/]" if query.report.matches else "no match"
        if bool(query.report.matches) != query.should_match:
            verdict += " [red](unexpected)[/]"
        best = query.report.matches[0] if query.report.matches else None
        table.add_row(
            query.what,
            verdict,
            str(best.entry_id) if best else "",
            ", ".join(sorted({m.signal_type for m in query.report.matches})),
            str(best.distance) if best else "",
            best.variant if best else "",
            (best.category or "") if best else "",
        )
    out.print(table)
    out.print(
        "Exact copies match by MD5 and PDQ (0 bits apart); altered copies match by PDQ within "
        "the threshold of 31 bits out of 256, mirrored ones through the mirrored variant of "
        "their hash; unrelated images are about 128 bits away and do not match."
    )
    out.print(f"{result.correct} of {len(result.queries)} uploads gave the expected result.")
    if keep:
        out.print(f"Images, CSV and database kept in {folder}")


def _emit(record: dict[str, Any], indent: int | None = None) -> None:
    sys.stdout.write(json.dumps(record, ensure_ascii=False, indent=indent) + "\n")
    sys.stdout.flush()


def _actor() -> str:
    return f"cli:{audit.local_user()}"


def _read_media(path: str, limits: MediaLimits) -> bytes:
    """A file's bytes, refused unread when over the byte limit."""
    try:
        with open(path, "rb") as handle:
            check_byte_count(os.fstat(handle.fileno()).st_size, limits)
            data = handle.read(limits.max_bytes + 1)
    except OSError as exc:
        raise InvalidInput(f"could not read file: {exc.strerror or exc}") from None
    check_byte_count(len(data), limits)
    return data


def _limits(max_bytes: int | None, max_pixels: int | None, full_resolution: bool) -> MediaLimits:
    try:
        base = MediaLimits.from_env()
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    return MediaLimits(
        max_bytes=max_bytes or base.max_bytes,
        max_pixels=max_pixels or base.max_pixels,
        min_side=None if full_resolution else base.min_side,
    )


def _parse_hash_option(text: str) -> tuple[str, str]:
    kind, value = parse_typed_value(text)
    return kind.name, value


def _hash_with_progress(
    paths: list[Path], limits: MediaLimits, workers: int | None, variants: Sequence[str] = ()
) -> Iterator[MediaHashes]:
    files = list(iter_media_paths(paths))
    with _progress() as progress:
        task = progress.add_task("hashing", total=len(files))
        for result in hash_files(files, limits, workers, variants):
            progress.advance(task)
            yield result


@contextmanager
def _domain_errors() -> Iterator[None]:
    try:
        yield
    except HashwatchError as exc:
        # Messages may quote input (a server's answer, a file's row): never read it as markup.
        err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None


@contextmanager
def _store_session(db: str | None) -> Iterator[Any]:
    with _domain_errors():
        store: Store = open_store(db)
        try:
            with store.session() as session:
                yield session
        finally:
            store.close()


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )


@contextmanager
def _spinner(text: str) -> Iterator[None]:
    with _progress() as progress:
        progress.add_task(text, total=None)
        yield


@contextmanager
def _import_progress() -> Iterator[
    tuple[Callable[[int], None], Callable[[int], None], Callable[[int], None]]
]:
    with _progress() as progress:
        reading = progress.add_task("reading rows", total=None)
        writing = progress.add_task("writing entries", total=None, visible=False)

        def on_rows(count: int) -> None:
            progress.advance(reading, count)

        def on_write_start(total: int) -> None:
            progress.update(reading, total=progress.tasks[reading].completed)
            progress.update(writing, total=total, visible=True)

        def on_write(count: int) -> None:
            progress.advance(writing, count)

        yield on_rows, on_write_start, on_write


@contextmanager
def _open_input(file: Path) -> Iterator[IO[bytes]]:
    if str(file) == "-":
        yield io.BytesIO(sys.stdin.buffer.read())
        return
    try:
        handle = file.open("rb")
    except OSError as exc:
        raise InvalidInput(f"cannot read {file}: {exc.strerror or exc}") from None
    with handle:
        yield handle


def _choose_format(fmt: str, file: Path, stream: IO[bytes]) -> str:
    if fmt != "auto":
        if fmt not in listfiles.FORMATS:
            raise InvalidInput(f"--format must be auto or one of {', '.join(listfiles.FORMATS)}")
        return fmt
    first = stream.readline().decode("utf-8", errors="replace")
    stream.seek(0)
    return listfiles.detect_format(file.name, first)


@contextmanager
def _work_folder(workdir: Path | None) -> Iterator[Path]:
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
        yield workdir
        return
    with tempfile.TemporaryDirectory(prefix="hashwatch-demo-") as folder:
        yield Path(folder)
