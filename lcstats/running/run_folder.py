"""A run's folder: built under a hidden ``.partial`` name, published whole, or removed.

``<reports>/<evaluation>/.<run_id>.partial/`` holds a run while it works (including the validated
tables handed to the kernel, which are learner-level data). It is renamed to
``<reports>/<evaluation>/<run_id>/`` when complete; ``latest`` then points to it if the run
succeeded. A run that cannot finish its folder (a full disk) removes it. Folders left by runs
that were killed are removed by the next run of the evaluation, which holds the evaluation's
lock, so no other run can own them.
"""

from __future__ import annotations

import datetime as dt
import errno
import os
import shutil
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from lcstats.core.errors import InputError, LcstatsError, Problem
from lcstats.core.resources import bytes_text, free_disk_bytes

OUTPUT_ALLOWANCE = (
    1024 * 1024
)  # report, results.json, run.json, executed notebook (measured: 0.7 MB)
PARTIAL_SUFFIX = ".partial"


class DiskFull(LcstatsError):
    """The run cannot write what it needs in its output folder."""


@dataclass(frozen=True)
class RunFolder:
    """Where one run is built and where it is published."""

    eval_root: Path
    run_id: str

    @property
    def staging(self) -> Path:
        """The hidden folder the run is built in."""
        return self.eval_root / f".{self.run_id}{PARTIAL_SUFFIX}"

    @property
    def final(self) -> Path:
        """The folder the run is published as."""
        return self.eval_root / self.run_id

    def publish(self) -> Path:
        """Rename the staging folder into place; return the published folder."""
        os.replace(self.staging, self.final)
        return self.final

    def discard(self) -> None:
        """Remove the staging folder and everything in it."""
        shutil.rmtree(self.staging, ignore_errors=True)


def run_id_base(stamp: dt.datetime, tag: str) -> str:
    """A run's id before any suffix: its start time (to the second) and a tag."""
    return f"{stamp:%Y%m%dT%H%M%SZ}-{tag[:8]}"


def new_run_folder(
    eval_root: Path, stamp: dt.datetime, tag: str, *, recorded: Collection[str] = ()
) -> RunFolder:
    """A run folder with an unused id made of the start time and a tag; its staging created.

    An id is used when a folder has it or the ledger records it (`recorded`): a run killed in
    the same second, whose folder the next run removed, keeps its record.
    """
    base = run_id_base(stamp, tag)
    run_id, n = base, 1
    while (
        run_id in recorded
        or (eval_root / run_id).exists()
        or (eval_root / f".{run_id}{PARTIAL_SUFFIX}").exists()
    ):
        n += 1
        run_id = f"{base}-{n}"
    folder = RunFolder(eval_root, run_id)
    folder.staging.mkdir()
    return folder


def point_latest(eval_root: Path, run_id: str) -> None:
    """Point ``latest`` at a run folder atomically; a ``latest`` that is not a link is moved aside."""
    link = eval_root / "latest"
    if link.exists() and not link.is_symlink():  # a folder or file put there by hand or a restore
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        os.replace(link, eval_root / f"latest.replaced-{stamp}")
    tmp = eval_root / f".latest.{os.getpid()}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(run_id, target_is_directory=True)
    os.replace(tmp, link)


def remove_stale_partials(eval_root: Path) -> list[Path]:
    """Remove the staging folders of runs that are gone; call only while holding the lock.

    Returns the folders removed.
    """
    stale = sorted(p for p in eval_root.glob(f".*{PARTIAL_SUFFIX}") if p.is_dir())
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    for tmp in eval_root.glob(".latest.*"):
        tmp.unlink(missing_ok=True)
    return stale


def check_writable(root: Path) -> None:
    """Refuse an output folder the run cannot write to (exit 2: the user's setting).

    Raises
    ------
    InputError
        Naming the folder and what to do.
    """
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise DiskFull(disk_full_message(root, need=OUTPUT_ALLOWANCE)) from None
        raise InputError(
            Problem(
                str(root),
                f"the output folder cannot be written to ({exc.strerror or exc})",
                hint="choose another folder with --output-dir, or make this one writable",
            )
        ) from None


def space_needed(handover_bytes: int) -> int:
    """Bytes a run writes at its peak: the handed-over tables plus the run's own files."""
    return handover_bytes + OUTPUT_ALLOWANCE


def _no_free_files(root: Path) -> bool:
    """True when the file system holding `root` cannot take another file (no inodes left)."""
    where = root
    while not where.exists() and where != where.parent:
        where = where.parent
    stats = os.statvfs(where)
    return stats.f_files > 0 and stats.f_favail == 0


def disk_is_full(root: Path) -> bool:
    """True when the file system holding `root` has no room for another small file."""
    return _no_free_files(root) or free_disk_bytes(root) < 64 * 1024


def disk_full_message(root: Path, *, need: int) -> str:
    """Plain words for a full disk: the folder, what the run needs and what is free."""
    free_bytes = free_disk_bytes(root)
    free = bytes_text(free_bytes)
    if _no_free_files(root) or free_bytes >= need:
        problem = (
            f"the disk holding {root} is full: it had no room for more files (no free inodes, "
            f"or a quota), although {free} are free"
        )
    else:
        problem = f"the disk holding {root} is full: this run needs about {bytes_text(need)} there and {free} are free"
    return (
        f"{problem}. Free some space (old run folders can go) or choose another folder with "
        "--output-dir. Nothing was published; the last good report is unchanged."
    )


def check_space(root: Path, *, need: int) -> None:
    """Refuse to start when the free space is clearly (under half) below what the run needs.

    Raises
    ------
    DiskFull
        Naming the folder, the space needed and the space free.
    """
    if free_disk_bytes(root) < need / 2:
        raise DiskFull(disk_full_message(root, need=need))


def is_disk_full(exc: BaseException) -> bool:
    """True for "no space left" (and quota) errors, wherever they were raised."""
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(exc)
    return "No space left on device" in text or "database or disk is full" in text
