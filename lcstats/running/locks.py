"""One run of an evaluation at a time: a lock file the operating system releases with its holder.

The lock is ``fcntl.flock`` on ``<reports>/<evaluation>/.lock``: it belongs to the open file,
so a run that dies in any way (even SIGKILL) releases it, and no stale lock can block the next
run. The file records the holder's process id for the message a second run prints.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from lcstats.core.errors import LcstatsError

LOCK_NAME = ".lock"


class EvaluationBusy(LcstatsError):
    """Another run of the same evaluation holds its lock."""


def _holder(path: Path) -> str:
    """The process id written by the lock's holder, or '?'."""
    try:
        return path.read_text(encoding="ascii").strip() or "?"
    except OSError:
        return "?"


@contextmanager
def evaluation_lock(
    eval_root: str | Path,
    *,
    wait: bool = False,
    on_wait: Callable[[str], None] | None = None,
) -> Iterator[None]:
    """Hold the lock of an evaluation's folder for the duration of a run.

    Parameters
    ----------
    eval_root : path
        The evaluation's folder under the reports folder (created if missing).
    wait : bool
        Queue behind the run holding the lock instead of refusing.
    on_wait : callable, optional
        Called once with a message when the run has to wait.

    Raises
    ------
    EvaluationBusy
        When another run holds the lock and `wait` is False.
    """
    eval_root = Path(eval_root)
    eval_root.mkdir(parents=True, exist_ok=True)
    path = eval_root / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _acquire(fd, path, wait=wait, on_wait=on_wait)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        yield
    finally:
        os.close(fd)  # closing the file releases the lock


def _acquire(fd: int, path: Path, *, wait: bool, on_wait: Callable[[str], None] | None) -> None:
    """Take the lock at once, or wait for it, or raise EvaluationBusy."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return
    except BlockingIOError:
        pass
    evaluation = path.parent.name
    holder = _holder(path)
    if not wait:
        raise EvaluationBusy(
            f"evaluation '{evaluation}' is already running (process {holder}); this run was not "
            "started. Wait for it to finish, or pass --wait to queue behind it."
        )
    if on_wait:
        on_wait(f"evaluation '{evaluation}' is already running (process {holder}); waiting for it")
    started = time.monotonic()
    fcntl.flock(fd, fcntl.LOCK_EX)
    if on_wait:
        on_wait(f"waited {time.monotonic() - started:.0f} s; starting '{evaluation}'")


def is_locked(eval_root: str | Path) -> bool:
    """True when some process holds the evaluation's lock (checked without taking it)."""
    path = Path(eval_root) / LOCK_NAME
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False
