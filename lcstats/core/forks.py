"""Short, independent, interpreter-bound calls shared with forked copies of this process.

Threads (`lcstats.core.threads`) share the cores only where the work releases the interpreter
lock (numpy, pyarrow). Drawing figures does not (matplotlib lays out and draws in Python), nor
do the diagnostics' many small fits below 200,000 learners: in threads they take turns on one
core while the machine's others wait. `calls_forked` forks this process (Linux only), and the
copies and this process take the calls one at a time from a shared queue (a pipe holding their
numbers: a read of a few bytes is atomic, and a copy that dies holds no lock), each call where
a process is first free; the copies send their results back (pickled) through a temporary file.

A copy never decides the outcome: a call that raises in a copy, a copy that dies or one that
does not finish in time only costs time, since this process then makes the calls whose results
it has not received itself (and raises their exceptions, with their own traceback, here).
What a copy warns is warned again here; what it prints is printed here.

Forking is skipped (the calls run in turn, here) off Linux, on one core, for fewer than two
calls or more than `MAX_CALLS` (the queue's pipe would fill), and when this process holds more
than `MAX_FORK_RSS` bytes: the copy's page tables and the pages it writes to would then cost
more than the calls save. `calls_on_cores` chooses threads or copies by the rows worked on.
One BLAS thread per process while the calls run, as in `lcstats.core.threads`.
"""

from __future__ import annotations

import contextlib
import gc
import io
import os
import pickle
import signal
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any, BinaryIO, TypeVar

from threadpoolctl import threadpool_limits

from lcstats.core import threads

R = TypeVar("R")
MAX_FORK_RSS = 1 << 30  # bytes resident in this process above which calls run here, in turn
_INDEX = 4  # bytes per call number in the queue
MAX_CALLS = 16_384  # call numbers that fit in a pipe's buffer (64 KiB on Linux)
# a copy that has not finished this long after this process ran out of calls is stopped
# (the calls it held are made here): at least GRACE_SECONDS, else GRACE_FACTOR times the
# longest call this process made
GRACE_SECONDS = 10.0
GRACE_FACTOR = 5.0


def resident_bytes() -> int:
    """This process's resident set size in bytes (0 where /proc is not there)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def can_fork() -> bool:
    """Whether `calls_forked` may fork here: Linux, and at most `MAX_FORK_RSS` resident."""
    return sys.platform == "linux" and 0 < resident_bytes() <= MAX_FORK_RSS


def calls_forked(calls: Sequence[Callable[[], R]], *, processes: int | None = None) -> list[R]:
    """``[call() for call in calls]``, shared between this process and forked copies of it.

    Parameters
    ----------
    calls : sequence of callables
        Each must return a picklable value and change nothing another call or this process
        uses afterwards (what a call changes in a copy is lost with the copy).
    processes : int, optional
        At most this many processes, this one included (default: one per usable core). With
        one, or where `can_fork` says no, the calls are made here, in turn.

    Returns
    -------
    list
        The results in the order of `calls`. An exception a call raises is raised here.

    Examples
    --------
    >>> calls_forked([lambda: 1, lambda: 2])
    [1, 2]
    """
    processes = min(len(calls), processes or threads.usable_cores())
    if processes <= 1 or len(calls) > MAX_CALLS or not can_fork():
        return [call() for call in calls]
    with threadpool_limits(limits=1):  # one BLAS thread in each process, as in each thread
        return _forked(calls, processes)


def calls_on_cores(calls: Sequence[Callable[[], R]], *, rows: int) -> list[R]:
    """``[call() for call in calls]`` on the machine's cores: in threads (`calls_side_by_side`)
    for work on at least `~lcstats.core.threads.MIN_ROWS` rows, which numpy and pyarrow do with
    the interpreter lock released (and the rows are not copied); in forked copies
    (`calls_forked`) below, where the calls are mostly Python (many small fits) and threads
    would take turns. The calls' results must be picklable and small.

    Examples
    --------
    >>> calls_on_cores([lambda: 1, lambda: 2], rows=10)
    [1, 2]
    """
    if rows >= threads.MIN_ROWS:
        return threads.calls_side_by_side(calls, rows=rows)
    return calls_forked(calls)


def _forked(calls: Sequence[Callable[[], R]], processes: int) -> list[R]:
    """`calls_forked` with `processes` processes (forking allowed)."""
    queue = _queue(len(calls))
    copies: dict[int, BinaryIO] = {}  # pid: where it writes, while it is not reaped
    results: dict[int, Any] = {}
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        for _ in range(processes - 1):
            out = tempfile.TemporaryFile()  # noqa: SIM115 (closed by _read, or below)
            try:
                pid = os.fork()
            except OSError:  # no more processes allowed: fewer copies, or none
                out.close()
                break
            if pid == 0:  # the copy: it never returns from here
                _serve(calls, queue, out)
            copies[pid] = out
        longest = _take_calls(calls, queue, results)
        grace = max(GRACE_SECONDS, GRACE_FACTOR * longest)
        for pid in list(copies):
            if _reaped(pid, grace):
                _read(copies.pop(pid), results)
    finally:
        os.close(queue)
        for pid, out in copies.items():  # still running: stopped, its results not read
            _end(pid)
            out.close()
    # what no copy delivered (a call that raised, a copy that died or was stopped): made here
    return [results[i] if i in results else calls[i]() for i in range(len(calls))]


def _queue(n: int) -> int:
    """A pipe's reading end holding the numbers 0 to n - 1 (its writing end closed)."""
    read, write = os.pipe()
    with os.fdopen(write, "wb") as f:
        f.write(b"".join(i.to_bytes(_INDEX, "little") for i in range(n)))
    return read


def _next(queue: int) -> int | None:
    """The next call's number from the queue, or None when all are taken."""
    taken = os.read(queue, _INDEX)
    return int.from_bytes(taken, "little") if taken else None


def _take_calls(calls: Sequence[Callable[[], Any]], queue: int, results: dict[int, Any]) -> float:
    """Make calls until none is left; the longest call's seconds."""
    longest = 0.0
    while (i := _next(queue)) is not None:
        start = time.perf_counter()
        results[i] = calls[i]()
        longest = max(longest, time.perf_counter() - start)
    return longest


def _serve(calls: Sequence[Callable[[], Any]], queue: int, out: BinaryIO) -> None:
    """In a copy: make calls until none is left or one raises, writing each result to `out`
    as soon as it is made; leave with ``os._exit`` (no clean-up of what the parent owns)."""
    code = 1
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # an interrupt ends the copy at once
        gc.disable()  # short-lived: the collector would only write to pages shared with the parent
        printed = io.StringIO()
        with (
            warnings.catch_warnings(record=True) as caught,
            contextlib.redirect_stdout(printed),
            contextlib.redirect_stderr(printed),
        ):
            try:
                while (i := _next(queue)) is not None:
                    pickle.dump(("result", i, calls[i]()), out, protocol=pickle.HIGHEST_PROTOCOL)
                    out.flush()
            finally:
                notes = [(str(w.message), w.category, w.filename, w.lineno) for w in caught]
                pickle.dump(("notes", printed.getvalue(), notes), out)
                out.flush()
        code = 0
    finally:
        os._exit(code)


def _reaped(pid: int, grace: float) -> bool:
    """Wait up to `grace` seconds for a copy to end; whether it ended (and was reaped)."""
    deadline = time.monotonic() + grace
    while os.waitpid(pid, os.WNOHANG) == (0, 0):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


def _read(out: BinaryIO, results: dict[int, Any]) -> None:
    """What an ended copy delivered: its results into `results`; its output and warnings here.
    A record cut short (a copy that died while writing it) ends the reading."""
    records = []
    with out, contextlib.suppress(Exception):
        out.seek(0)
        while True:
            records.append(pickle.load(out))
    for record in records:
        if record[0] == "result":
            results[record[1]] = record[2]
        else:
            _, printed, notes = record
            sys.stdout.write(printed)
            for message, category, filename, lineno in notes:
                warnings.warn_explicit(message, category, filename, lineno)


def _end(pid: int) -> None:
    """Kill a copy if it still runs, and reap it."""
    with contextlib.suppress(ProcessLookupError, ChildProcessError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
