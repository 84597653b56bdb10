"""Process settings for hashwatch's own long-running and batch processes.

glibc returns every allocation above its mmap threshold (128 KiB, raised only as large blocks are
freed) straight to the kernel, so each large NumPy temporary, decoded image or candidate array is
fresh memory that must be page-faulted in again. Keeping such blocks in the heap made batched
index searches about 25% faster and a decode+PDQ worker pool about 1.5x faster here
(docs/benchmarks.md).

hashwatch runs one process per core (service workers, hashing pools), so a BLAS library's own
threads only compete with the other processes: the exact dihedral hashes are a matrix product
(hashwatch.dihedral), and with OpenBLAS's threads spinning beside a second worker the service
hashed 31 image uploads a second instead of 88 (bench/service.py, 2 workers, 2 cores).

The CLI, its worker processes and the service call `tune_process()` at start; the library never
does so on import, since it changes the whole process.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from collections.abc import Callable
from functools import cache
from typing import Any

__all__ = ["release_free_memory", "tune_allocator", "tune_process"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_KEEP_BELOW = 256 * 1024 * 1024

_tuned = False
_limits: object = None  # threadpoolctl's limits, kept alive for the life of the process


def tune_process() -> None:
    """The allocator settings, and one thread for native numeric libraries (BLAS, OpenMP)."""
    global _limits
    tune_allocator()
    if _limits is None:
        import numpy  # noqa: F401  (loads its BLAS, which threadpoolctl finds among loaded libraries)
        from threadpoolctl import threadpool_limits

        _limits = threadpool_limits(limits=1)


def tune_allocator() -> bool:
    """Keep blocks below 256 MiB in the heap and do not trim it eagerly. Linux/glibc only.

    Returns whether the settings were applied; elsewhere it does nothing.
    """
    global _tuned
    if _tuned:
        return True
    mallopt = _glibc("mallopt", (ctypes.c_int, ctypes.c_int))
    if mallopt is None:
        return False
    _tuned = bool(mallopt(_M_MMAP_THRESHOLD, _KEEP_BELOW)) and bool(
        mallopt(_M_TRIM_THRESHOLD, _KEEP_BELOW)
    )
    return _tuned


def release_free_memory() -> bool:
    """Hand memory that is free in the heap back to the system (glibc's malloc_trim), after a
    burst of temporaries such as a matcher's load. Unlike tune_allocator this changes no
    setting, so library code may call it. Returns whether it could; elsewhere it does nothing."""
    trim = _glibc("malloc_trim", (ctypes.c_size_t,))
    if trim is None:
        return False
    trim(0)
    return True


@cache
def _glibc(name: str, argtypes: tuple[Any, ...]) -> Callable[..., int] | None:
    """glibc's function `name` (returning an int), or None off Linux or off glibc (musl has
    neither mallopt nor malloc_trim)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = getattr(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"), name)
    except (OSError, AttributeError):
        return None
    function.argtypes = list(argtypes)
    function.restype = ctypes.c_int
    return function  # type: ignore[no-any-return]
