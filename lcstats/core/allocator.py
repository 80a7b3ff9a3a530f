"""The C library's memory allocator: keep freed memory for the next arrays, hand it back at will.

By default glibc maps every block above a (self-adjusting) threshold straight from the system
and unmaps it when freed, so each of the many arrays of millions of values a run builds and
drops is mapped, zeroed by the system page by page, and unmapped again. On the project machine
(a virtual machine) page faults are dear: the pre-flight of 1,000,000 learners faulted 624,000
times (perf stat) and spent 7-9 s in the system, against 12-14 s in Python and the libraries. `MMAP_THRESHOLD` and `TRIM_THRESHOLD`
keep arrays up to 256 MB on the heap and up to 512 MB of freed memory at its top for reuse
(pre-flight of 1M learners, 3 runs each, interleaved: 13.4-14.7 s -> 11.1-12.0 s; system time
6.8-9.2 s -> 5.2-5.8 s).

Threads (`lcstats.core.threads`) would each get an arena of their own, and memory freed in one
is kept there, not reused by the others: with the settings above and the steps of a 1M-learner
run side by side, the kernel grew step by step to 3.9 GB (the tree to 4.15-4.43 GB, 3 runs).
`ARENA_MAX` keeps one arena for all threads (the tree's peak 3.28 GB; the threads do their
work in numpy and pyarrow, which allocate a few large blocks, so they hardly wait on its lock).

The run's kernel gets the same settings through its environment (`ENVIRONMENT`, read by glibc
at start-up); the run's own process sets them with ``mallopt`` (`keep_freed_memory`) and gives
the kept memory back with ``malloc_trim`` (`hand_back_freed_memory`) once it has handed the
tables to the kernel. Elsewhere than glibc (macOS, musl) both do nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os

MMAP_THRESHOLD = 256 << 20
TRIM_THRESHOLD = 512 << 20
ARENA_MAX = 1
ENVIRONMENT = {
    "MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD),
    "MALLOC_TRIM_THRESHOLD_": str(TRIM_THRESHOLD),
    "MALLOC_ARENA_MAX": str(ARENA_MAX),
}
_OPTIONS = (-3, -1, -8)  # M_MMAP_THRESHOLD, M_TRIM_THRESHOLD, M_ARENA_MAX (glibc's malloc.h)

__all__ = ["ENVIRONMENT", "hand_back_freed_memory", "keep_freed_memory"]


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """glibc, or None when this process runs on another C library."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018 (only glibc has it)
    except (OSError, AttributeError):
        return None
    return libc


def keep_freed_memory() -> bool:
    """Set `MMAP_THRESHOLD`, `TRIM_THRESHOLD` and `ARENA_MAX` in this process (before it starts
    threads), each unless its environment variable (`ENVIRONMENT`) is set; True when glibc took
    them."""
    libc = _glibc()
    if libc is None:
        return False
    done = True
    for option, (variable, value) in zip(_OPTIONS, ENVIRONMENT.items(), strict=True):
        if variable not in os.environ:
            done &= libc.mallopt(option, int(value)) == 1
    return done


def hand_back_freed_memory() -> None:
    """Give the memory freed on the heap back to the system (``malloc_trim``)."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
