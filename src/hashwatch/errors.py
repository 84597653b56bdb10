"""The one error hierarchy of hashwatch's domain code.

Shells (the CLI now, the HTTP API later) catch these and map them to exit codes or status codes;
the errors themselves know nothing of either. Every message is written for the person who sent
the input: it says what was wrong and, where it helps, what was expected.

    HashwatchError
     ├── InvalidInput             a value the caller gave is malformed
     │    ├── InvalidHash          a hash of the wrong length or alphabet
     │    ├── UnknownSignalType
     │    └── InvalidCategory
     ├── MediaError               one file could not be hashed
     │    ├── EmptyMedia
     │    ├── MediaTooLarge        more bytes than the configured limit
     │    ├── TooManyPixels        more pixels than the limit: a decompression bomb is never decoded
     │    ├── UnsupportedMedia     not an image in one of the accepted formats
     │    └── CorruptMedia         truncated or damaged image data
     ├── ImportRejected           a list import had bad rows; nothing was written
     ├── SyncError                another server refused or failed a sync of its list
     ├── CyberTiplineError        the CyberTipline API refused a step or stayed unreachable
     ├── MediaStoreError          the encrypted media store is not configured, or a file in it
     │                            cannot be read (wrong key, tampered)
     ├── LoginFailed              wrong user name or password, or a disabled account: all alike
     │    └── LoginThrottled       too many failures: wait `retry_after` seconds
     ├── NotFound
     │    ├── ListNotFound
     │    ├── EntryNotFound
     │    ├── UserNotFound
     │    └── ItemNotFound         an intake item (another organisation's is not found either)
     ├── Forbidden                the caller may see the thing but not do this to it
     └── Conflict
          ├── ListExists
          └── AmbiguousValue       a bare value that names entries of several signal types
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "AmbiguousValue",
    "Conflict",
    "CorruptMedia",
    "CyberTiplineError",
    "EmptyMedia",
    "EntryNotFound",
    "Forbidden",
    "HashwatchError",
    "ImportRejected",
    "InvalidCategory",
    "InvalidHash",
    "InvalidInput",
    "ItemNotFound",
    "LineError",
    "ListExists",
    "ListNotFound",
    "LoginFailed",
    "LoginThrottled",
    "MediaError",
    "MediaStoreError",
    "MediaTooLarge",
    "NotFound",
    "SyncError",
    "TooManyPixels",
    "UnknownSignalType",
    "UnsupportedMedia",
    "UserNotFound",
]


class HashwatchError(Exception):
    """Base of every error hashwatch raises on purpose."""


class InvalidInput(HashwatchError):
    pass


class InvalidHash(InvalidInput):
    pass


class UnknownSignalType(InvalidInput):
    pass


class InvalidCategory(InvalidInput):
    pass


class MediaError(HashwatchError):
    pass


class EmptyMedia(MediaError):
    pass


class MediaTooLarge(MediaError):
    pass


class TooManyPixels(MediaError):
    pass


class UnsupportedMedia(MediaError):
    pass


class CorruptMedia(MediaError):
    pass


@dataclass(frozen=True)
class LineError:
    """One bad row of an import file: its 1-based line number in the file and why it is bad."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


class ImportRejected(HashwatchError):
    """An import found bad rows. It carries every one of them; the list was left unchanged."""

    def __init__(self, errors: Sequence[LineError]) -> None:
        self.errors = list(errors)
        noun = "row" if len(self.errors) == 1 else "rows"
        super().__init__(
            f"import rejected, nothing was imported: {len(self.errors)} bad {noun}\n"
            + "\n".join(str(e) for e in self.errors)
        )


class SyncError(HashwatchError):
    """The origin server of a local copy refused a sync (a bad key, no access, no such list), or
    kept failing (unreachable, 5xx, rate limited) until retries ran out. The copy is left as it
    was after its last applied page."""


class CyberTiplineError(HashwatchError):
    """The CyberTipline API refused a step, or could not be reached until retries ran out."""


class MediaStoreError(HashwatchError):
    pass


class LoginFailed(HashwatchError):
    pass


class LoginThrottled(LoginFailed):
    """Too many failed logins for this account: it is locked for `retry_after` more seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NotFound(HashwatchError):
    pass


class ListNotFound(NotFound):
    pass


class EntryNotFound(NotFound):
    pass


class UserNotFound(NotFound):
    pass


class ItemNotFound(NotFound):
    pass


class Forbidden(HashwatchError):
    pass


class Conflict(HashwatchError):
    pass


class ListExists(Conflict):
    pass


class AmbiguousValue(Conflict):
    pass
