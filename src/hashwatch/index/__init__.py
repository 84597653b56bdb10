"""In-memory match indexes. They are caches: always rebuildable from the store, never persisted."""

from __future__ import annotations

from hashwatch.index.exact import ExactIndex
from hashwatch.index.hamming import HammingIndex

__all__ = ["ExactIndex", "HammingIndex"]
