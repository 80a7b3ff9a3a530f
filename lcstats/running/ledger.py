"""The run ledger: one record per run in an SQLite file under the reports folder."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


LEDGER_NAME = "runs.sqlite"
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
    PRIMARY KEY (evaluation, run_id)
)
"""


@dataclass(frozen=True)
class RunRecord:
    """One line of the ledger."""

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


@contextmanager
def _connect(root: Path) -> Iterator[sqlite3.Connection]:
    root.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(root / LEDGER_NAME, timeout=30)
    try:
        con.execute(SCHEMA)
        yield con
        con.commit()
    finally:
        con.close()


def record_run(root: str | Path, record: RunRecord) -> None:
    """Add (or update) a run's record; each write is one SQLite transaction."""
    with _connect(Path(root)) as con:
        fields = asdict(record)
        con.execute(
            f"INSERT OR REPLACE INTO runs ({', '.join(fields)}) VALUES ({', '.join('?' * len(fields))})",
            list(fields.values()),
        )


def last_success(root: str | Path, evaluation: str) -> RunRecord | None:
    """The most recent successful run of an evaluation, if any."""
    path = Path(root) / LEDGER_NAME
    if not path.exists():
        return None
    with _connect(Path(root)) as con:
        row = con.execute(
            "SELECT * FROM runs WHERE evaluation = ? AND status = 'succeeded' ORDER BY started DESC, run_id DESC LIMIT 1",
            (evaluation,),
        ).fetchone()
    return RunRecord(*row) if row else None


def list_runs(root: str | Path, *, evaluation: str | None = None, limit: int = 50) -> pd.DataFrame:
    """The ledger as a table, newest first."""
    import pandas as pd

    path = Path(root) / LEDGER_NAME
    columns = list(RunRecord.__dataclass_fields__)
    if not path.exists():
        return pd.DataFrame(columns=columns)
    query = "SELECT * FROM runs"
    args: tuple = ()
    if evaluation:
        query += " WHERE evaluation = ?"
        args = (evaluation,)
    query += " ORDER BY started DESC, run_id DESC LIMIT ?"
    with _connect(Path(root)) as con:
        rows = con.execute(query, (*args, limit)).fetchall()
    return pd.DataFrame(rows, columns=columns)
