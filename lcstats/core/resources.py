"""Machine resources: is there enough memory to analyse these input files?

`check_input_size` is called before any input table is read (by `lcstats.data.load.load_programme`),
so an export too large for the machine gets a clear answer (exit 2) instead of the process being
killed by the operating system half-way, with nothing recorded.

How much memory a table needs was measured, not guessed: the peak resident memory added by
``load_programme`` + ``learner_outcomes`` (``/proc/self/status`` VmHWM after resetting it, minus
the resident memory before, imports done), divided by the bytes of the three input files:

==========================================  =========  ===========  ===============
input (simulated programme)                 file size  peak added   bytes per byte
==========================================  =========  ===========  ===============
data/example, CSV (2,000 learners)            1.1 MB       9 MB           7.8
20,000 learners, CSV                         11.3 MB      93 MB           8.2
100,000 learners, CSV                        57.8 MB     271 MB           4.7
100,000 learners, CSV of short values        37.1 MB     247 MB           6.7
1,000,000 learners, CSV                     598 MB      2030 MB           3.4
1,000,000 learners, CSV, strict reader      598 MB      1904 MB           3.2
2,000 learners, Parquet                       0.20 MB     24 MB         119
20,000 learners, Parquet                      1.9 MB      85 MB          44
100,000 learners, Parquet                     8.8 MB     219 MB          25
1,000,000 learners, Parquet                  79.2 MB    1798 MB          23
==========================================  =========  ===========  ===============

("Short values": ids without prefix, one-letter codes, no assessment dates; "strict reader": a
blank line in each file, which `lcstats.data.load` leaves to its row-by-row reader.) Small inputs are
dominated by a fixed ~10-80 MB that never matters against the gigabytes a machine has; large
inputs settle near 3.4-4.7 bytes per CSV byte and 23-25 per Parquet byte. Files of short values
need more per byte (every value costs 8 bytes of bookkeeping in memory, however short it is).
`CSV_FACTOR` (8) is about 70 % above the simulated programmes and 20 % above short values;
`PARQUET_FACTOR` (35) about 40 % above (other exports compress differently; the analysis after
loading needs some memory too). Before the loader read CSV with pyarrow and parsed each distinct
value once, the figures were about 14 bytes per CSV byte and 32-34 per Parquet byte (1,000,000
learners: 7.9 GB added for the CSV files, 2.5 GB for the Parquet ones).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from lcstats.core.errors import InputError, Problem

CSV_FACTOR = 8.0
PARQUET_FACTOR = 35.0
LIMIT_ENV_VAR = "LCSTATS_MEMORY_LIMIT_BYTES"
MEMINFO = Path("/proc/meminfo")
CGROUP_DIR = Path("/sys/fs/cgroup")

__all__ = [
    "CSV_FACTOR",
    "LIMIT_ENV_VAR",
    "PARQUET_FACTOR",
    "available_memory_bytes",
    "bytes_text",
    "check_input_size",
    "free_disk_bytes",
    "input_memory_need",
]


def _meminfo_available() -> int | None:
    try:
        for line in MEMINFO.read_text(encoding="ascii").splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024  # reported in kB
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_available() -> int | None:
    """Memory left under the cgroup (v2) limit: limit - usage + reclaimable file cache."""
    folder = CGROUP_DIR
    try:
        limit = (folder / "memory.max").read_text(encoding="ascii").strip()
    except OSError:
        return None
    if not limit.isdigit():
        return None  # "max": no limit set
    try:
        used = int((folder / "memory.current").read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        used = 0
    reclaimable = 0
    try:
        for line in (folder / "memory.stat").read_text(encoding="ascii").splitlines():
            key, _, value = line.partition(" ")
            if key == "inactive_file":
                reclaimable = int(value)
    except (OSError, ValueError):
        pass
    return max(0, min(int(limit), int(limit) - used + reclaimable))


def _fallback_available() -> int | None:
    try:
        import psutil
    except ImportError:
        pass
    else:
        return int(psutil.virtual_memory().available)
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def available_memory_bytes() -> int | None:
    """Memory this process can still use, in bytes (``None`` when it cannot be told).

    The smaller of ``MemAvailable`` in ``/proc/meminfo`` and what is left under the cgroup limit
    (``/sys/fs/cgroup/memory.max``, when one is set: containers, CI runners); without
    ``/proc/meminfo``, psutil's ``virtual_memory().available`` if psutil is installed, else
    ``os.sysconf`` (free physical pages).

    Examples
    --------
    >>> available_memory_bytes() > 0
    True
    """
    found = [v for v in (_meminfo_available(), _cgroup_available()) if v is not None]
    return min(found) if found else _fallback_available()


def _env_limit() -> int | None:
    text = os.environ.get(LIMIT_ENV_VAR, "").strip()
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise InputError(
            Problem(
                LIMIT_ENV_VAR,
                f"the environment variable {LIMIT_ENV_VAR} is set to {text!r}, expected a whole "
                "number of bytes",
                hint="set it to a number of bytes (for example 8000000000 for 8 GB), or unset it "
                "to use the memory the machine has",
            )
        )
    return value


def _factor(path: Path) -> float:
    return PARQUET_FACTOR if path.suffix.lower() == ".parquet" else CSV_FACTOR


def input_memory_need(paths: Mapping[str, str | Path], *, factor: float | None = None) -> int:
    """Estimated peak memory (bytes) to load and analyse these files, from their sizes alone.

    Files that do not exist (or cannot be looked at) count as 0: reading them reports that.
    """
    need = 0.0
    for path in paths.values():
        path = Path(path)
        try:
            size = path.stat().st_size if path.is_file() else 0
        except OSError:
            size = 0
        need += size * (factor if factor is not None else _factor(path))
    return int(need)


def bytes_text(n: float) -> str:
    """Bytes for people: "3.1 MB", "747.9 kB"."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} bytes"


def check_input_size(
    paths: Mapping[str, str | Path],
    *,
    factor: float | None = None,
    limit: int | None = None,
) -> None:
    """Refuse inputs that need more memory than is available, before anything is read.

    Parameters
    ----------
    paths : dict of table name to path
        The input files.
    factor : float, optional
        Bytes of memory per byte of file for every file; by default `CSV_FACTOR` for CSV and
        `PARQUET_FACTOR` for Parquet files (measured: see the module docstring).
    limit : int, optional
        Memory available, in bytes. By default the environment variable
        ``LCSTATS_MEMORY_LIMIT_BYTES`` when set, else `available_memory_bytes()`.

    Raises
    ------
    InputError
        Naming the largest file, the memory needed and available, and what to do.

    Examples
    --------
    >>> paths = {"learners": "data/example/learners.csv"}
    >>> check_input_size(paths, limit=10**9)  # enough: returns quietly
    >>> try:
    ...     check_input_size(paths, limit=100_000)
    ... except InputError as exc:
    ...     print(exc.problems[0].message.split(" (")[0])
    the input tables need about 747.9 kB of memory to analyse, but only 100.0 kB is available
    """
    origin = "the limit given"
    if limit is None:
        limit, origin = _env_limit(), f"the limit set by {LIMIT_ENV_VAR}"
    if limit is None:
        limit, origin = available_memory_bytes(), "free on this machine"
    if limit is None:
        return  # cannot tell: let the operating system decide
    need = input_memory_need(paths, factor=factor)
    if need <= limit:
        return
    sizes = {}
    for path in map(Path, paths.values()):
        try:
            sizes[path] = path.stat().st_size if path.is_file() else 0
        except OSError:
            sizes[path] = 0
    largest = max(sizes, key=sizes.__getitem__)
    total = sum(sizes.values())
    raise InputError(
        Problem(
            str(largest),
            f"the input tables need about {bytes_text(need)} of memory to analyse, but only "
            f"{bytes_text(limit)} is available ({origin}); the {len(paths)} file(s) hold "
            f"{bytes_text(total)}, this one {bytes_text(sizes[largest])}",
            hint="run on a larger machine, or reduce the export (fewer columns, or a date "
            "range / one cohort at a time); nothing was read",
        )
    )


def free_disk_bytes(path: str | Path) -> int:
    """Free bytes on the file system holding `path` (or its nearest existing parent)."""
    import shutil

    where = Path(path).resolve()
    while not where.exists() and where != where.parent:
        where = where.parent
    return shutil.disk_usage(where).free
