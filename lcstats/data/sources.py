"""Tables from databases and engines, through one interface: Ibis.

A params table may be ``{source: "${HR_DB_URL}", table: "hr.learners"}`` (or ``query:``). The
source names an engine by its URL scheme:

=====================================  ====================================================
``duckdb:///path/file.duckdb``          a DuckDB database file (also a plain path ending
                                        ``.duckdb``); the embedded default
``postgresql://user:pw@host:5432/db``   PostgreSQL (``postgres://`` too)
``spark:local[2]``, ``spark://host:7077``  Spark: a master URL (local mode or a cluster);
``sc://host:15002``                     Spark Connect
=====================================  ====================================================

``${VAR}`` is read from the environment, so that credentials stay out of params files. They
never reach an output: every description of a source (messages, run.json, results.json, the
ledger, the report) is `masked`, and messages from the drivers are masked too.

Rows come back in a fixed order (by the table's key), so that the same rows give the same
results whatever the engine; their fingerprint is what ``--skip-unchanged`` compares.
"""

from __future__ import annotations

import os
import re
import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lcstats.core.errors import InputError, Problem

if TYPE_CHECKING:
    import pandas as pd

    from lcstats.params import TableSpec

ENV_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
SCHEMES = {
    "duckdb": "duckdb",
    "postgres": "postgres",
    "postgresql": "postgres",
    "spark": "spark",
    "sc": "spark",
}
DUCKDB_SUFFIXES = (".duckdb", ".ddb", ".db")
SPARK_OPTIONS = {
    "spark.sql.shuffle.partitions": "8",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.session.timeZone": "UTC",
    "spark.ui.enabled": "false",
}
_CONNECTIONS: dict[str, Any] = {}


@dataclass(frozen=True)
class Source:
    """A database source as the params give it, resolved: engine, target and masked text."""

    engine: str  # duckdb | postgres | spark
    target: str  # the URL or path, with variables expanded (holds credentials: never shown)
    shown: str  # the same with passwords masked, as written in messages and outputs

    def describe(self, spec: TableSpec) -> str:
        """Where a table comes from, for people (no credentials)."""
        what = f"table {spec.table}" if spec.table else "query"
        return f"{self.engine} {what} ({self.shown})"


def mask(text: str) -> str:
    """`text` with the password of every URL and every ``password=`` setting replaced by ***.

    Examples
    --------
    >>> mask("postgresql://app:s3cret@db:5432/hr?sslmode=require&password=x")
    'postgresql://app:***@db:5432/hr?sslmode=require&password=***'
    """
    text = re.sub(r"(?P<head>[a-z][a-z0-9+.\-]*://[^:/@\s]+:)[^@\s]*@", r"\g<head>***@", text)
    return re.sub(r"(?i)(password=)[^&\s]*", r"\1***", text)


def _masked_everywhere(text: str, secret: str) -> str:
    """`text` with `secret`'s password masked, wherever a driver repeated it."""
    parsed = urllib.parse.urlsplit(secret) if "://" in secret else None
    password = parsed.password if parsed else None
    text = mask(text)
    for value in filter(None, (password, urllib.parse.unquote(password or ""))):
        text = text.replace(value, "***")
    return text


def expand(text: str, where: str) -> str:
    """`text` with each ``${VAR}`` replaced by the environment variable's value.

    Raises
    ------
    InputError
        Naming the variable that is not set.
    """

    def value(match: re.Match) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise InputError(
                Problem(
                    where,
                    f"the environment variable {name} is not set",
                    hint=f"set {name} to the database's connection URL before running (it is read "
                    "from the environment so that no password is written in a file)",
                )
            )
        return os.environ[name]

    return ENV_VARIABLE.sub(value, text)


def resolve(source: str, where: str) -> Source:
    """The engine and target of a params ``source`` (variables expanded, checked)."""
    target = expand(source, where)
    shown = mask(target)
    scheme = target.split(":", 1)[0].lower() if ":" in target else ""
    if scheme not in SCHEMES and target.lower().endswith(DUCKDB_SUFFIXES):
        return Source("duckdb", target, shown)
    if scheme not in SCHEMES:
        raise InputError(
            Problem(
                where,
                f"the source '{shown}' names no engine lcstats knows",
                hint="use duckdb:///path/file.duckdb, postgresql://user:password@host/database, "
                "spark:local[2], spark://host:7077 or sc://host:15002 (usually through "
                "${VARIABLE} set in the environment)",
            )
        )
    engine = SCHEMES[scheme]
    if engine == "duckdb":
        target = target.split("://", 1)[1] if "://" in target else target.split(":", 1)[1]
    return Source(engine, target, shown)


def _spark(target: str) -> Any:
    """A Spark session for a master URL (or a Spark Connect URL); created once per process."""
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName("lcstats")
    if target.startswith("sc://"):
        return builder.remote(target).getOrCreate()
    master = target if target.startswith("spark://") else target.removeprefix("spark:")
    for key, value in SPARK_OPTIONS.items():
        builder = builder.config(key, value)
    session = builder.master(master).getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


def connect(source: Source) -> Any:
    """An Ibis connection to a source (kept for the process: a run reads several tables)."""
    key = f"{source.engine}|{source.target}"
    if key in _CONNECTIONS:
        return _CONNECTIONS[key]
    import ibis

    try:
        if source.engine == "duckdb":
            con = ibis.duckdb.connect(source.target, read_only=True)
        elif source.engine == "postgres":
            con = ibis.connect(source.target)
        else:
            con = ibis.pyspark.connect(_spark(source.target))
    except Exception as exc:  # drivers raise many types: show the cause, never the password
        raise InputError(
            Problem(
                source.shown,
                f"cannot connect to the {source.engine} source: "
                f"{_masked_everywhere(str(exc).strip().splitlines()[0], source.target)}",
                hint="check the URL (host, port, database, user), that the server is running and "
                "reachable, and the password in the environment variable",
            )
        ) from None
    _CONNECTIONS[key] = con
    return con


def close_connections() -> None:
    """Close every connection this process opened (Spark sessions are left running)."""
    for key, con in list(_CONNECTIONS.items()):
        if not key.startswith("spark|"):
            con.disconnect()
        del _CONNECTIONS[key]


def table_expression(con: Any, spec: TableSpec) -> Any:
    """The Ibis expression of a spec's table (``schema.table`` allowed) or query."""
    if spec.query is not None:
        return con.sql(spec.query)
    schema, _, name = spec.table.rpartition(".")
    return con.table(name, database=schema) if schema else con.table(name)


def read_source_table(spec: TableSpec, table: str, where: str) -> tuple[pd.DataFrame, Source]:
    """All rows and columns of a database table or query, fetched through Arrow.

    Raises
    ------
    InputError
        When the variable is not set, the engine unknown, the connection or the query fails.
    """
    source = resolve(spec.source, where)
    con = connect(source)
    try:
        frame = table_expression(con, spec).to_pyarrow().to_pandas()
    except Exception as exc:  # a missing table, a bad query, a lost connection
        raise InputError(
            Problem(
                source.describe(spec),
                f"cannot read the {table} table: "
                f"{_masked_everywhere(str(exc).strip().splitlines()[0], source.target)}",
                hint="check the table name (schema.table) or the query, and the user's rights",
            )
        ) from None
    return frame, source
