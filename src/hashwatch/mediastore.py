"""The media store: images taken in for assessment, kept encrypted until they are decided.

Intake (hashwatch.assessment) puts an image here and keeps only the returned name on the item;
the console reads it back to show the analysts, and the decision deletes it. Each file is
AES-256-GCM encrypted with a key from HASHWATCH_MEDIA_KEY, kept apart from the database, so
neither a copied disk nor a copied database alone gives up the images. The file's name is the
associated data of its encryption: a file renamed to another item's name fails to decrypt, so
one item can never be made to show another's image.

A file is `HWM1` (format and version), a 12-byte random nonce, then the ciphertext and its tag.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hashwatch.errors import MediaStoreError

__all__ = ["DEFAULT_ROOT", "KEY_ENV", "ROOT_ENV", "MediaStore", "generate_key"]

ROOT_ENV = "HASHWATCH_MEDIA_DIR"
KEY_ENV = "HASHWATCH_MEDIA_KEY"
DEFAULT_ROOT = "./hashwatch-media"

MAGIC = b"HWM1"
NONCE_BYTES = 12
TAG_BYTES = 16
KEY_BYTES = 32
NAME = re.compile(r"[0-9a-f]{32}")

HOW_TO_KEY = f"create one with `hashwatch media-key` and set {KEY_ENV} to it"


def generate_key() -> str:
    """A new random media key, as URL-safe base64 (the form HASHWATCH_MEDIA_KEY takes)."""
    return base64.urlsafe_b64encode(os.urandom(KEY_BYTES)).decode("ascii")


class MediaStore:
    """Encrypted files in one directory that only the service's user may read."""

    def __init__(self, root: str | Path, key: bytes) -> None:
        if not isinstance(key, bytes) or len(key) != KEY_BYTES:
            raise MediaStoreError(f"a media key must be {KEY_BYTES} bytes; {HOW_TO_KEY}")
        self.root = Path(root)
        try:
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
            # An existing directory may have been made with looser permissions.
            self.root.chmod(0o700)
        except OSError as exc:
            raise MediaStoreError(
                f"cannot use {self.root} as the media directory: {exc.strerror or exc}"
            ) from None
        if not self.root.is_dir():
            raise MediaStoreError(f"the media directory {self.root} is not a directory")
        self._aead = AESGCM(key)

    @classmethod
    def from_config(cls, root: str | Path | None = None, key: str | None = None) -> MediaStore:
        """The store at `root` (else HASHWATCH_MEDIA_DIR, else ./hashwatch-media) with `key`
        (else HASHWATCH_MEDIA_KEY), a key written as URL-safe base64 of 32 bytes."""
        chosen_root = root or os.environ.get(ROOT_ENV) or DEFAULT_ROOT
        encoded = key or os.environ.get(KEY_ENV) or ""
        if not encoded.strip():
            raise MediaStoreError(f"no media key is set: {HOW_TO_KEY}")
        return cls(chosen_root, _decode_key(encoded))

    def __repr__(self) -> str:
        return f"MediaStore({str(self.root)!r})"

    def put(self, data: bytes) -> str:
        """Encrypt and keep `data`; its new random name."""
        name = secrets.token_hex(16)
        nonce = os.urandom(NONCE_BYTES)
        content = MAGIC + nonce + self._aead.encrypt(nonce, data, name.encode("ascii"))
        path = self.root / name
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600)
        except OSError as exc:
            raise MediaStoreError(f"cannot create media {name}: {exc.strerror or exc}") from None
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(content)
                file.flush()
                # On disk before the item naming it commits.
                os.fsync(file.fileno())
        except OSError as exc:
            path.unlink(missing_ok=True)
            raise MediaStoreError(f"cannot write media {name}: {exc.strerror or exc}") from None
        return name

    def get(self, name: str) -> bytes:
        """The decrypted media called `name`."""
        path = self._path(name)
        try:
            content = path.read_bytes()
        except FileNotFoundError:
            raise MediaStoreError(f"no media named {name} in {self.root}") from None
        except OSError as exc:
            raise MediaStoreError(f"cannot read media {name}: {exc.strerror or exc}") from None
        if not content.startswith(MAGIC) or len(content) < len(MAGIC) + NONCE_BYTES + TAG_BYTES:
            raise MediaStoreError(f"media {name} is not a hashwatch media file (damaged?)")
        nonce = content[len(MAGIC) : len(MAGIC) + NONCE_BYTES]
        try:
            return self._aead.decrypt(nonce, content[len(MAGIC) + NONCE_BYTES :], name.encode())
        except InvalidTag:
            raise MediaStoreError(
                f"media {name} cannot be decrypted: {KEY_ENV} is not the key it was stored "
                "with, or the file was changed or renamed"
            ) from None

    def delete(self, name: str) -> bool:
        """Remove the media called `name`; whether there was a file to remove."""
        path = self._path(name)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise MediaStoreError(f"cannot delete media {name}: {exc.strerror or exc}") from None
        return True

    def names(self) -> list[str]:
        """The names of all media held, sorted (other files in the directory are ignored)."""
        try:
            return sorted(
                entry.name
                for entry in os.scandir(self.root)
                if NAME.fullmatch(entry.name) and entry.is_file(follow_symlinks=False)
            )
        except OSError as exc:
            raise MediaStoreError(f"cannot list {self.root}: {exc.strerror or exc}") from None

    def _path(self, name: str) -> Path:
        # Names come back from requests and the database: never let one leave the directory.
        if not isinstance(name, str) or not NAME.fullmatch(name):
            raise MediaStoreError("not a media name: expected 32 lower-case hexadecimal digits")
        return self.root / name


# Refuse to write through a symbolic link planted where a new file should go.
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _decode_key(encoded: str) -> bytes:
    text = encoded.strip()
    try:
        key = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise MediaStoreError(
            f"the media key is not URL-safe base64 of {KEY_BYTES} bytes; {HOW_TO_KEY}"
        ) from None
    if len(key) != KEY_BYTES:
        raise MediaStoreError(
            f"the media key is {len(key)} bytes, not {KEY_BYTES}; {HOW_TO_KEY}"
        ) from None
    return key
