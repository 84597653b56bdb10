"""Exact lookup: the index for cryptographic hashes, where a match means equality."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["ExactIndex"]


class ExactIndex:
    """Maps each value to the ids stored under it. Several ids may share a value (several lists)."""

    def __init__(self) -> None:
        self._ids: dict[str, list[int]] = {}
        self._values: dict[int, str] = {}

    def __len__(self) -> int:
        return len(self._values)

    def add(self, value: str, id_: int) -> None:
        self._ids.setdefault(value, []).append(id_)
        self._values[id_] = value

    def add_many(self, items: Iterable[tuple[str, int]]) -> None:
        for value, id_ in items:
            self.add(value, id_)

    def remove(self, id_: int) -> None:
        value = self._values.pop(id_, None)
        if value is None:
            return
        ids = self._ids[value]
        ids.remove(id_)
        if not ids:
            del self._ids[value]

    def search(self, value: str) -> list[int]:
        return list(self._ids.get(value, ()))
