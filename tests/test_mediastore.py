"""The encrypted media store: round trips, what lies on disk, and every way a read can fail."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from hashwatch.errors import MediaStoreError
from hashwatch.mediastore import MediaStore, generate_key
from tests.imaging import encode

KEY = bytes(range(32))


@pytest.fixture
def media(tmp_path: Path) -> MediaStore:
    return MediaStore(tmp_path / "media", KEY)


def test_round_trip(media: MediaStore) -> None:
    gradient = np.tile(np.arange(64, dtype=np.uint8), (48, 1))
    data = encode(np.dstack([gradient, gradient[::-1], 255 - gradient]), "PNG")
    name = media.put(data)
    assert len(name) == 32
    assert media.get(name) == data
    assert media.names() == [name]


def test_each_put_gets_a_new_name(media: MediaStore) -> None:
    first, second = media.put(b"same bytes"), media.put(b"same bytes")
    assert first != second
    assert media.names() == sorted([first, second])
    assert media.get(first) == media.get(second) == b"same bytes"


def test_empty_media_round_trips(media: MediaStore) -> None:
    assert media.get(media.put(b"")) == b""


def test_ciphertext_does_not_contain_the_plaintext(media: MediaStore) -> None:
    data = b"plain text that must never lie on disk " * 20
    name = media.put(data)
    content = (media.root / name).read_bytes()
    assert content.startswith(b"HWM1")
    assert b"plain text" not in content
    assert len(content) == 4 + 12 + len(data) + 16


def test_file_and_directory_modes(tmp_path: Path) -> None:
    root = tmp_path / "deep" / "media"
    media = MediaStore(root, KEY)
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    name = media.put(b"benign")
    assert stat.S_IMODE((root / name).stat().st_mode) == 0o600


def test_an_existing_directory_is_made_private(tmp_path: Path) -> None:
    root = tmp_path / "media"
    root.mkdir(mode=0o755)
    root.chmod(0o755)
    MediaStore(root, KEY)
    assert stat.S_IMODE(root.stat().st_mode) == 0o700


def test_a_file_in_the_way_of_the_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "media").write_bytes(b"")
    with pytest.raises(MediaStoreError, match="media directory"):
        MediaStore(tmp_path / "media", KEY)


@pytest.mark.parametrize("key", [b"", b"short", bytes(31), bytes(33)])
def test_keys_must_be_32_bytes(tmp_path: Path, key: bytes) -> None:
    with pytest.raises(MediaStoreError, match="32 bytes"):
        MediaStore(tmp_path / "media", key)


def test_wrong_key_fails_clearly(tmp_path: Path, media: MediaStore) -> None:
    name = media.put(b"benign bytes")
    other = MediaStore(media.root, bytes(32))
    with pytest.raises(MediaStoreError, match="cannot be decrypted") as caught:
        other.get(name)
    assert "HASHWATCH_MEDIA_KEY" in str(caught.value)
    assert "benign" not in str(caught.value)


@pytest.mark.parametrize("position", [0, 5, 20, -1])
def test_a_tampered_byte_fails(media: MediaStore, position: int) -> None:
    name = media.put(b"benign bytes, tampered with")
    path = media.root / name
    content = bytearray(path.read_bytes())
    content[position] ^= 0x01
    path.write_bytes(bytes(content))
    with pytest.raises(MediaStoreError, match=name) as caught:
        media.get(name)
    assert "benign" not in str(caught.value)


def test_a_truncated_file_fails(media: MediaStore) -> None:
    name = media.put(b"benign")
    path = media.root / name
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(MediaStoreError, match="not a hashwatch media file"):
        media.get(name)


def test_swapped_files_fail(media: MediaStore) -> None:
    first, second = media.put(b"first image"), media.put(b"second image")
    # Give the second item's name to the first item's file: it must not decrypt as the second.
    os.replace(media.root / first, media.root / second)
    with pytest.raises(MediaStoreError, match="renamed"):
        media.get(second)


def test_missing_media(media: MediaStore) -> None:
    with pytest.raises(MediaStoreError, match="no media named"):
        media.get("0" * 32)


@pytest.mark.parametrize("name", ["", "../etc/passwd", "0" * 31, "0" * 33, "A" * 32, "g" * 32])
def test_bad_names_are_refused(media: MediaStore, name: str) -> None:
    with pytest.raises(MediaStoreError, match="not a media name"):
        media.get(name)
    with pytest.raises(MediaStoreError, match="not a media name"):
        media.delete(name)


def test_delete(media: MediaStore) -> None:
    kept, deleted = media.put(b"kept"), media.put(b"deleted")
    assert media.delete(deleted) is True
    assert media.delete(deleted) is False
    assert media.names() == [kept]
    with pytest.raises(MediaStoreError, match="no media named"):
        media.get(deleted)


def test_names_ignore_other_files(media: MediaStore) -> None:
    name = media.put(b"benign")
    (media.root / "README").write_text("not media")
    (media.root / ("f" * 32)).mkdir()
    assert media.names() == [name]


def test_generate_key() -> None:
    key = generate_key()
    assert len(base64.urlsafe_b64decode(key)) == 32
    assert generate_key() != key


def test_from_config_arguments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HASHWATCH_MEDIA_DIR", raising=False)
    monkeypatch.delenv("HASHWATCH_MEDIA_KEY", raising=False)
    key = generate_key()
    media = MediaStore.from_config(tmp_path / "a", key)
    name = media.put(b"benign")
    assert media.root == tmp_path / "a"
    assert MediaStore(tmp_path / "a", base64.urlsafe_b64decode(key)).get(name) == b"benign"


def test_from_config_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key = generate_key()
    monkeypatch.setenv("HASHWATCH_MEDIA_DIR", str(tmp_path / "from-env"))
    monkeypatch.setenv("HASHWATCH_MEDIA_KEY", key.rstrip("="))  # padding is optional
    media = MediaStore.from_config()
    assert media.root == tmp_path / "from-env"
    assert media.get(media.put(b"benign")) == b"benign"
    # An argument wins over the environment.
    assert MediaStore.from_config(tmp_path / "arg").root == tmp_path / "arg"


def test_from_config_default_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HASHWATCH_MEDIA_DIR", raising=False)
    monkeypatch.setenv("HASHWATCH_MEDIA_KEY", generate_key())
    media = MediaStore.from_config()
    assert media.root.resolve() == tmp_path / "hashwatch-media"


@pytest.mark.parametrize("value", [None, "", "   "])
def test_from_config_missing_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    if value is None:
        monkeypatch.delenv("HASHWATCH_MEDIA_KEY", raising=False)
    else:
        monkeypatch.setenv("HASHWATCH_MEDIA_KEY", value)
    with pytest.raises(MediaStoreError, match="no media key") as caught:
        MediaStore.from_config(tmp_path / "media")
    assert "hashwatch media-key" in str(caught.value)
    assert "HASHWATCH_MEDIA_KEY" in str(caught.value)


@pytest.mark.parametrize(
    "value",
    [
        "not base64 at all!",
        base64.urlsafe_b64encode(bytes(16)).decode(),
        base64.urlsafe_b64encode(bytes(48)).decode(),
        "ключ",
    ],
)
def test_from_config_malformed_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("HASHWATCH_MEDIA_KEY", value)
    with pytest.raises(MediaStoreError) as caught:
        MediaStore.from_config(tmp_path / "media")
    message = str(caught.value)
    assert "hashwatch media-key" in message
    assert "HASHWATCH_MEDIA_KEY" in message
    assert value not in message  # the key, even a wrong one, stays out of messages


def test_repr_hides_the_key(media: MediaStore) -> None:
    assert KEY.hex() not in repr(media)
    assert repr(KEY) not in repr(media)
