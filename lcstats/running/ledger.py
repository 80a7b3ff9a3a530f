"""The run ledger: one record per run attempt in an SQLite file under the reports folder.

Several processes write to it at once (run-all workers, two schedulers), so it uses SQLite's
write-ahead log, a busy timeout and ``BEGIN IMMEDIATE`` for writes: a writer waits for the
others instead of failing with "database is locked". A ledger that is not a database any more
(a truncated copy, a failed restore) is moved aside as ``runs.sqlite.damaged-<time>`` with a
warning, and a fresh one is started: a damaged history never stops an evaluation.
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lcstats.core.errors import LcstatsError

if TYPE_CHECKING:
    import pandas as pd


LEDGER_NAME = "runs.sqlite"
BUSY_TIMEOUT_S = 60.0
STATUSES = ("running", "succeeded", "failed", "invalid", "interrupted", "skipped")
SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    evaluation   TEXT NOT NULL,
    run_id       TEXT NOT NULL,
    status       TEXT NOT NULL,
    started      TEXT NOT NULL,
    duration_s   REAL,
    inputs_sha256 TEXT,
    params_sha256 TEXT,
    code_version TEXT,
    run_dir      TEXT,
    message      TEXT,
    pid          INTEGER,
    PRIMARY KEY (evaluation, run_id)
)
"""


@dataclass(frozen=True)
class RunRecord:
    """One line of the ledger. ``pid`` is the process of a run still ``running``."""

    evaluation: str
    run_id: str
    status: str
    started: str
    duration_s: float | None
    inputs_sha256: str | None
    params_sha256: str | None
    code_version: str | None
    run_dir: str | None
    message: str = ""
    pid: int | None = None


COLUMNS = tuple(RunRecord.__dataclass_fields__)


class LedgerError(LcstatsError):
    """The ledger could not be written (a full disk, a folder that is not writable)."""


def damaged_copies(root: str | Path) -> list[Path]:
    """Ledgers moved aside because they could not be read, oldest first."""
    return sorted(Path(root).glob(f"{LEDGER_NAME}.damaged-*"))


def _is_damaged(exc: sqlite3.DatabaseError) -> bool:
    """True when SQLite says the file is not (or no longer) a database."""
    if isinstance(exc, sqlite3.OperationalError):
        return "malformed" in str(exc)
    return True  # "file is not a database", "database disk image is malformed"


def _move_aside(path: Path, exc: sqlite3.DatabaseError) -> Path:
    """Rename a damaged ledger (and its journal files) and say so on standard error."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    target = path.with_name(f"{path.name}.damaged-{stamp}")
    os.replace(path, target)
    for suffix in ("-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    print(
        f"warning: the run ledger {path} could not be read ({exc}); it was moved to "
        f"{target.name} and a new ledger was started. Older runs are listed in the moved file.",
        file=sys.stderr,
    )
    return target


def _create(path: Path) -> None:
    """Create a new ledger in WAL mode with its table, atomically.

    Switching a shared database to WAL does not wait for other connections (SQLite reports
    "database is locked" at once), so a new ledger is built in a private file and linked into
    place; of several processes creating it at once, one link wins and the others use it.
    """
    draft = path.with_name(f".{path.name}.new-{os.getpid()}")
    draft.unlink(missing_ok=True)
    try:
        con = sqlite3.connect(draft, isolation_level=None)
        try:
            con.execute("PRAGMA journal_mode = WAL")
            con.execute(SCHEMA)
        finally:
            con.close()
        os.link(draft, path)
    except FileExistsError:
        pass
    except OSError:  # a file system without hard links: a rename, if nobody was faster
        if not path.exists():
            os.replace(draft, path)
    finally:
        draft.unlink(missing_ok=True)


def _to_wal(con: sqlite3.Connection) -> None:
    """Switch a ledger written in the older rollback-journal mode to WAL, waiting for others."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while con.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        try:
            con.execute("PRAGMA journal_mode = WAL")
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _open(path: Path) -> sqlite3.Connection:
    """Open the ledger in WAL mode with a busy timeout, creating it if needed."""
    if not path.exists():
        _create(path)
    con = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    try:
        con.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        _to_wal(con)
        con.execute("BEGIN IMMEDIATE")
        con.execute(SCHEMA)
        have = {row[1] for row in con.execute("PRAGMA table_info(runs)")}
        if "pid" not in have:  # ledgers written before run attempts were recorded
            con.execute("ALTER TABLE runs ADD COLUMN pid INTEGER")
        con.execute("COMMIT")
    except BaseException:
        con.close()
        raise
    return con


@contextmanager
def _connect(root: Path) -> Iterator[sqlite3.Connection]:
    """A connection to the ledger of `root`; a damaged ledger is moved aside first."""
    path = root / LEDGER_NAME
    try:
        root.mkdir(parents=True, exist_ok=True)
        con = _open(path)
    except OSError as exc:
        raise LedgerError(f"the run ledger {path} cannot be written: {exc}") from exc
    except sqlite3.DatabaseError as exc:
        if not (_is_damaged(exc) and path.exists()):
            raise LedgerError(f"the run ledger {path} cannot be written: {exc}") from exc
        _move_aside(path, exc)
        con = _open(path)
    try:
        yield con
    finally:
        con.close()


def _write(root: str | Path, sql: str, args: tuple) -> None:
    """Run one write statement as its own immediate transaction."""
    try:
        with _connect(Path(root)) as con:
            con.execute("BEGIN IMMEDIATE")
            con.execute(sql, args)
            con.execute("COMMIT")
    except sqlite3.Error as exc:
        raise LedgerError(f"the run ledger in {root} cannot be written: {exc}") from exc


def record_run(root: str | Path, record: RunRecord) -> None:
    """Add (or replace) a run's record; each write is one SQLite transaction.

    Raises
    ------
    LedgerError
        When the ledger cannot be written (a full disk, a read-only folder).
    """
    fields = asdict(record)
    _write(
        root,
        f"INSERT OR REPLACE INTO runs ({', '.join(fields)}) VALUES ({', '.join('?' * len(fields))})",
        tuple(fields.values()),
    )


def _read(root: str | Path, sql: str, args: tuple) -> list[tuple]:
    """Rows of a query, or none when there is no ledger yet."""
    if not (Path(root) / LEDGER_NAME).exists():
        return []
    with _connect(Path(root)) as con:
        return con.execute(sql, args).fetchall()


def last_success(root: str | Path, evaluation: str) -> RunRecord | None:
    """The most recent successful run of an evaluation, if any."""
    rows = _read(
        root,
        f"SELECT {', '.join(COLUMNS)} FROM runs WHERE evaluation = ? AND status = 'succeeded' "
        "ORDER BY started DESC, run_id DESC LIMIT 1",
        (evaluation,),
    )
    return RunRecord(*rows[0]) if rows else None


def recorded_run_ids(root: str | Path, evaluation: str, prefix: str) -> set[str]:
    """The ids of an evaluation's recorded runs that begin with `prefix`."""
    pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    rows = _read(
        root,
        "SELECT run_id FROM runs WHERE evaluation = ? AND run_id LIKE ? ESCAPE '\\'",
        (evaluation, pattern),
    )
    return {row[0] for row in rows}


def unfinished_runs(root: str | Path, evaluation: str) -> list[RunRecord]:
    """Runs of an evaluation still recorded as ``running``."""
    rows = _read(
        root,
        f"SELECT {', '.join(COLUMNS)} FROM runs WHERE evaluation = ? AND status = 'running'",
        (evaluation,),
    )
    return [RunRecord(*row) for row in rows]


def list_runs(root: str | Path, *, evaluation: str | None = None, limit: int = 50) -> pd.DataFrame:
    """The ledger as a table, newest first."""
    import pandas as pd

    where, args = (" WHERE evaluation = ?", (evaluation,)) if evaluation else ("", ())
    rows = _read(
        root,
        f"SELECT {', '.join(COLUMNS)} FROM runs{where} ORDER BY started DESC, run_id DESC LIMIT ?",
        (*args, limit),
    )
    return pd.DataFrame(rows, columns=list(COLUMNS))
