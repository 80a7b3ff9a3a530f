"""Independent pieces of work side by side on the machine's cores (`side_by_side`).

Threads, not processes: the statistics spend their time in numpy and pyarrow, which release the
interpreter lock, and threads share the learners' tables instead of copying them. While the
threads run, the numerical libraries' own thread pools (OpenBLAS) are held to one thread each,
so that the pieces do not fight over the same cores: measured on 2 cores, four AIPW fits of
500,000 learners took 3.1 s one after the other (BLAS on 2 threads) and 2.2 s two at a time
(BLAS on 1 thread each), and 3.2 s two at a time with BLAS left on 2 threads.

The package multiplies matrices with `np.dot`, never with ``@``: numpy's ``@`` (`np.matmul`)
holds the interpreter lock while OpenBLAS works, so threads multiplying with it take turns
(cross-products of a 1M x 20 matrix, 4 in turn against 2 on each of 2 threads: 0.98x with
``@``, 1.94x with `np.dot`; ``benchmarks/matmul_lock.py``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from threadpoolctl import threadpool_limits

T = TypeVar("T")
R = TypeVar("R")
# the thread a run's step runs in when it has a time limit (`lcstats.running.runner.within`)
STEP_THREAD = "lcstats-step"
# below this many rows, work runs in turn: short Python-heavy pieces then contend for the
# interpreter lock and threads cost more than they save (diagnostics of 2,000 learners 0.47 s
# -> 0.62 s side by side, of 10,000 0.55 -> 0.74 s, of 100,000 equal, of 1M 16 s -> 11.4 s)
MIN_ROWS = 200_000


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # no affinity on this platform
        return max(1, os.cpu_count() or 1)


def workers_for(rows: int) -> int:
    """How many pieces of work on this many rows to run at once: `usable_cores`, or 1 below
    `MIN_ROWS`."""
    return usable_cores() if rows >= MIN_ROWS else 1


def side_by_side(
    func: Callable[[T], R], items: Sequence[T], *, workers: int | None = None
) -> list[R]:
    """``[func(item) for item in items]``, computed on up to `workers` threads at once.

    Parameters
    ----------
    func : callable
        Must not change anything the other items use (each call works on its own data).
    items : sequence
    workers : int, optional
        At most this many threads (default: `usable_cores`); with one, or one item, the items
        are computed in turn in the calling thread.

    Returns
    -------
    list
        The results in the order of `items`. The first exception raised, in that order, is
        raised again.
    """
    workers = min(len(items), workers or usable_cores())
    if workers <= 1:
        return [func(item) for item in items]
    with threadpool_limits(limits=1), ThreadPoolExecutor(workers, "lcstats-side") as pool:
        return list(pool.map(func, items))


def calls_side_by_side(calls: Sequence[Callable[[], R]], *, rows: int) -> list[R]:
    """``[call() for call in calls]``: side by side on the machine's cores when the work is on
    at least `MIN_ROWS` rows (`workers_for`), else in turn.

    Examples
    --------
    >>> calls_side_by_side([lambda: 1, lambda: 2], rows=10)
    [1, 2]
    """
    return side_by_side(_call, calls, workers=workers_for(rows))


def _call(call: Callable[[], R]) -> R:
    return call()
