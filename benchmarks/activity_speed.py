"""100M learning-activity events into 1M learners' engagement features: lcstats against hand-written
DuckDB SQL, pandas and Spark local (issue 11, item 6).

Data (made once, kept in ``--work``, default ``/tmp/lcstats-bench``; same seed, same bytes):
``--events`` activity events of ``--learners`` learners as Parquet files of about ``--rows-per-file``
rows (``learner_id, verb, object_id, occurred_at, duration_s``), written chunk by chunk with numpy
and pyarrow (about 0.3 GB of memory at any size), in time order as a learning record store exports
them, plus the learners' cut-offs (``learners.parquet``: ``learner_id, coached, coached_from``).
Learner ids are those of ``lcstats simulate --learners N`` (``L0000001`` for 1M learners). Events
are spread over two years (2024-07-01 to 2026-07-01); a learner's share of them is
``Gamma(1.5)``; 0.5% come from guests (actors who are not learners), 0.01% lack a timestamp;
verbs launched 40%, completed 25%, experienced 20%, passed 5%, attempted 5%, answered 5%; items
from a catalogue of 5,000 (popularity ~ rank^-0.8); 5% of durations are missing. 40% of learners
were coached, starting 0-21 days into one of four quarters from 2025-07-01; the others' cut-off is
``--baseline-end`` (2025-07-01); the window is 182 days.

Methods, each measured in a fresh process (so that peak memory is per method), interleaved over
``--repeats`` rounds (the order rotates each round):

``lcstats``         ``lcstats.data.activity.activity_features(TableSpec(path="<dir>/*.parquet"),
                    learners, baseline_end=..., window_days=182)`` (DuckDB through Ibis)
``duckdb``          hand-written DuckDB SQL, one pass: events joined to the cut-offs, counted by
                    reason and aggregated per learner, left-joined to all learners (features 0
                    where no event counted), fetched as one learner-level frame
``pandas``          pyarrow reads each file (strings as dictionaries), pandas/numpy classify the
                    events and keep the used ones, then pandas groupby on those
``spark-lcstats``   Spark local[2] (shuffle partitions 8, driver memory 6g, Arrow on): the Parquet
                    folder registered as a temp view, then ``activity_features`` with
                    ``TableSpec(source="spark:local[2]", table="activity_events")``
``spark-sql``       the same session and view, a hand-written Spark SQL query like ``duckdb``

Measured per run: wall time and CPU time (user + system of the process and its children, the JVM
included) of the call alone (imports, reading the 1M-row learners frame and starting Spark are
before it), and the peak resident memory of the process tree during the call (``VmHWM`` reset
through ``/proc/self/clear_refs`` before the call; the JVM's own high-water mark added for
Spark). Each row of the table gives the median, min-max, and the 1-minute load average around
the run; the ratio is to the hand-written DuckDB median.

``--check`` runs every method once in one process on the ``--quick`` data and compares their
features and reason counts with lcstats' (maximum absolute difference). ``--profile`` runs the
steps of ``activity_features`` one by one (cut-offs, Arrow upload of the cut-offs, the reason
count query, the feature query, pandas post-processing, the file fingerprint) with their times.
``--lcstats-source NAME=DIR`` adds a method ``NAME`` running ``activity_features`` from another
source tree (``PYTHONPATH=DIR``), e.g. a patched copy, for a before/after comparison.

Usage::

    .venv/bin/python benchmarks/activity_speed.py --quick                 # smoke check, < 1 min
    .venv/bin/python benchmarks/activity_speed.py --check                 # same numbers?
    nice -n 5 .venv/bin/python benchmarks/activity_speed.py               # 100M events, 3 repeats
    nice -n 5 .venv/bin/python benchmarks/activity_speed.py --methods lcstats duckdb --profile
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

ROOT = Path(__file__).resolve().parent.parent
GB = 1024**3
SPAN = ("2024-07-01", "2026-07-01")
QUARTERS = ("2025-07-01", "2025-10-01", "2026-01-01", "2026-04-01")
BASELINE_END = "2025-07-01"
WINDOW_DAYS = 182
VERBS = ("launched", "completed", "experienced", "passed", "attempted", "answered")
VERB_P = (0.40, 0.25, 0.20, 0.05, 0.05, 0.05)
STARTED = ("launched", "initialized", "attempted", "started", "experienced", "resumed")
COMPLETED = ("completed", "passed", "mastered")
CATALOGUE = 5000
GUEST_SHARE = 0.005
NULL_TS_SHARE = 0.0001
NULL_DURATION_SHARE = 0.05
CHUNK = 2_000_000
FEATURES = (
    "pre_active_weeks",
    "pre_minutes",
    "pre_items_started",
    "pre_items_completed",
    "pre_share_completed",
    "pre_days_since_last",
)
METHODS = ("lcstats", "duckdb", "pandas", "spark-lcstats", "spark-sql")
VIEW = "activity_events"


# --- data ---------------------------------------------------------------------------------------


def learner_ids(n: int, prefix: str = "L") -> list[str]:
    """Ids as ``lcstats simulate`` writes them: prefix + 1..n, at least 5 digits."""
    width = max(5, len(str(n)))
    return [f"{prefix}{i:0{width}d}" for i in range(1, n + 1)]


def _learners_table(n: int, rng: np.random.Generator):
    """Learners' cut-off inputs: learner_id, coached, coached_from (40% coached)."""
    import pyarrow as pa

    coached = rng.random(n) < 0.4
    quarter = np.array(QUARTERS, dtype="datetime64[D]")[rng.integers(0, 4, n)]
    start = (quarter + rng.integers(0, 22, n)).astype("datetime64[us]")
    return pa.table(
        {
            "learner_id": pa.array(learner_ids(n)),
            "coached": pa.array(coached.astype(np.int64)),
            "coached_from": pa.array(start, mask=~coached),
        }
    )


def _chunk(rng, n, t0, t1, *, ids, weights_cum, objects, object_cum):
    """One chunk of n events between t0 and t1 (microseconds), in time order."""
    import pyarrow as pa
    import pyarrow.compute as pc

    ts = np.sort(rng.integers(t0, t1, n))
    guest = rng.random(n) < GUEST_SHARE
    who = np.searchsorted(weights_cum, rng.random(n) * weights_cum[-1], side="right")
    n_learners = len(weights_cum)
    who = np.where(guest, n_learners + rng.integers(0, len(ids) - n_learners, n), who)
    verb = np.searchsorted(np.cumsum(VERB_P), rng.random(n) * sum(VERB_P), side="right")
    item = np.searchsorted(object_cum, rng.random(n) * object_cum[-1], side="right")
    duration = np.round(rng.gamma(2.0, 12.0, n) * 60)
    return pa.table(
        {
            "learner_id": ids.take(pa.array(who.astype(np.int32))),
            "verb": pc.take(pa.array(VERBS), pa.array(np.minimum(verb, 5).astype(np.int8))),
            "object_id": objects.take(pa.array(np.minimum(item, CATALOGUE - 1).astype(np.int32))),
            "occurred_at": pa.array(
                ts.astype("datetime64[us]"), mask=rng.random(n) < NULL_TS_SHARE
            ),
            "duration_s": pa.array(duration, mask=rng.random(n) < NULL_DURATION_SHARE),
        }
    )


def generate(folder: Path, events: int, learners: int, seed: int, rows_per_file: int) -> None:
    """Write the events (time-ordered Parquet files) and the learners' cut-off table."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(_learners_table(learners, rng), folder / "learners.parquet")
    n_guests = max(100, learners // 100)
    ids = pa.array(learner_ids(learners) + learner_ids(n_guests, "G"))
    weights_cum = np.cumsum(rng.gamma(1.5, 1.0, learners))
    objects = pa.array([f"https://lms.example.org/activities/A{k:05d}" for k in range(CATALOGUE)])
    object_cum = np.cumsum(1.0 / np.arange(1, CATALOGUE + 1) ** 0.8)
    t_lo, t_hi = (np.datetime64(d, "us").astype(np.int64) for d in SPAN)
    n_chunks = -(-events // min(CHUNK, events))
    edges = np.linspace(t_lo, t_hi, n_chunks + 1).astype(np.int64)
    per_file = max(1, rows_per_file // min(CHUNK, events))
    writer, done = None, 0
    for k in range(n_chunks):
        if k % per_file == 0:
            if writer is not None:
                writer.close()
            part = folder / f"part-{k // per_file:03d}.parquet.tmp"
            writer = None
        n = min(CHUNK, events - done)
        table = _chunk(
            rng,
            n,
            edges[k],
            edges[k + 1],
            ids=ids,
            weights_cum=weights_cum,
            objects=objects,
            object_cum=object_cum,
        )
        if writer is None:
            writer = pq.ParquetWriter(part, table.schema)
        writer.write_table(table, row_group_size=1_000_000)
        done += n
        if k % per_file == per_file - 1 or k == n_chunks - 1:
            writer.close()
            writer = None
            part.rename(part.with_suffix(""))
    if writer is not None:
        writer.close()


def ensure_data(work: Path, events: int, learners: int, seed: int, rows_per_file: int) -> Path:
    """The data folder for these sizes, generated once (``meta.json`` marks it complete)."""
    folder = work / f"activity-{events}-{learners}-s{seed}"
    meta = folder / "meta.json"
    if meta.is_file():
        return folder
    for old in folder.glob("part-*"):
        old.unlink()
    t = time.perf_counter()
    generate(folder, events, learners, seed, rows_per_file)
    files = sorted(folder.glob("part-*.parquet"))
    meta.write_text(
        json.dumps(
            {
                "events": events,
                "learners": learners,
                "seed": seed,
                "seconds": time.perf_counter() - t,
                "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
                "files": {p.name: p.stat().st_size for p in files},
            },
            indent=1,
        )
    )
    return folder


def events_glob(folder: Path) -> str:
    return str(folder / "part-*.parquet")


def read_learners(folder: Path):
    """The learners frame the methods start from (pandas, as lcstats has it after loading)."""
    import pandas as pd

    frame = pd.read_parquet(folder / "learners.parquet")
    frame["coached_from"] = frame["coached_from"].astype("datetime64[ns]")
    return frame


# --- methods ------------------------------------------------------------------------------------


def run_lcstats(folder: Path, learners, *, path: str | None = None):
    """lcstats' own aggregation (DuckDB through Ibis) on a glob of the Parquet files."""
    from lcstats.data.activity import activity_features
    from lcstats.params import TableSpec

    features, summary = activity_features(
        TableSpec(path=path or events_glob(folder)),
        learners,
        baseline_end=BASELINE_END,
        window_days=WINDOW_DAYS,
    )
    return features, _lcstats_reasons(summary)


def _lcstats_reasons(summary) -> dict[str, int]:
    from lcstats.data.activity import REASONS

    short = {text: key for key, text in REASONS.items()}
    out = {short[text]: n for text, n in summary.excluded.items()}
    out["used"] = summary.rows_used
    return {k: v for k, v in out.items() if v}


def _cutoff_frame(learners):
    """learner_id, cutoff, window_start (the same rule as lcstats: coaching start or baseline)."""
    import pandas as pd

    coached = learners["coached"].eq(1) & learners["coached_from"].notna()
    cut = learners["coached_from"].where(coached, pd.Timestamp(BASELINE_END))
    cut = cut.astype("datetime64[us]")
    return pd.DataFrame(
        {
            "learner_id": learners["learner_id"].astype(str).to_numpy(),
            "cutoff": cut.to_numpy(),
            "window_start": (cut - pd.Timedelta(days=WINDOW_DAYS)).to_numpy(),
        }
    )


def _in(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


USED = "e.occurred_at < c.cutoff AND e.occurred_at >= c.window_start"
# Hand-written DuckDB: the reason counts (one pass), then the features of the events that count
# (a second pass, with the cut-off range as a join filter) left-joined to every learner. One pass
# computing both (count(DISTINCT ...) FILTER over all events grouped by actor) took 2.8x as long.
REASONS_SQL = f"""
SELECT
    count(*) FILTER (WHERE c.learner_id IS NULL) AS unknown,
    count(*) FILTER (WHERE c.learner_id IS NOT NULL AND e.occurred_at IS NULL) AS unreadable,
    count(*) FILTER (WHERE e.occurred_at >= c.cutoff) AS after,
    count(*) FILTER (WHERE e.occurred_at < c.window_start) AS before,
    count(*) FILTER (WHERE {USED}) AS used
FROM {{events}} e LEFT JOIN cut c ON e.learner_id = c.learner_id
"""
FEATURES_SQL = f"""
WITH per AS (
    SELECT
        e.learner_id,
        count(DISTINCT date_trunc('week', e.occurred_at)) AS weeks,
        sum(e.duration_s) AS seconds,
        count(DISTINCT e.object_id) FILTER (WHERE e.verb IN ({_in(STARTED + COMPLETED)})) AS started,
        count(DISTINCT e.object_id) FILTER (WHERE e.verb IN ({_in(COMPLETED)})) AS completed,
        max(e.occurred_at) AS last_event
    FROM {{events}} e JOIN cut c ON e.learner_id = c.learner_id
    WHERE {USED}
    GROUP BY e.learner_id
)
SELECT
    c.learner_id,
    coalesce(p.weeks, 0)::DOUBLE AS pre_active_weeks,
    round(coalesce(p.seconds, 0) / 60, 6) AS pre_minutes,
    coalesce(p.started, 0)::DOUBLE AS pre_items_started,
    coalesce(p.completed, 0)::DOUBLE AS pre_items_completed,
    CASE WHEN p.started > 0 THEN p.completed / p.started ELSE 0 END AS pre_share_completed,
    round(coalesce(epoch(c.cutoff - p.last_event) / 86400, {WINDOW_DAYS}), 6)
        AS pre_days_since_last
FROM cut c LEFT JOIN per p ON c.learner_id = p.learner_id
ORDER BY c.i
"""


def _cut_with_order(learners):
    import numpy as np

    cut = _cutoff_frame(learners)
    cut.insert(0, "i", np.arange(len(cut)))
    return cut


def run_duckdb(folder: Path, learners, *, path: str | None = None):
    """Hand-written DuckDB SQL on the same files: reason counts, then per-learner features."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("cut_frame", _cut_with_order(learners))
    con.execute("CREATE TEMP TABLE cut AS SELECT * FROM cut_frame")
    events = f"read_parquet('{path or events_glob(folder)}')"
    names = ("unknown", "unreadable", "after", "before", "used")
    counts = con.execute(REASONS_SQL.format(events=events)).fetchone()
    features = con.execute(FEATURES_SQL.format(events=events)).df()
    con.close()
    return features, {k: int(v) for k, v in zip(names, counts, strict=True) if v}


# --- pandas -------------------------------------------------------------------------------------


def _week_index(ts_us: np.ndarray) -> np.ndarray:
    """Monday-based week number of microsecond timestamps (1970-01-01 was a Thursday)."""
    return (ts_us // 86_400_000_000 + 3) // 7


def _pandas_file(path: str, cut, index, objects: dict[str, int], reasons: dict[str, int]):
    """One file's used events as numpy columns (learner row, week, item, verb flags, ...)."""
    import pyarrow.parquet as pq

    frame = pq.read_table(path, read_dictionary=["learner_id", "verb", "object_id"]).to_pandas()
    lid = frame["learner_id"].cat
    row = index.get_indexer(lid.categories)[lid.codes]
    ts = frame["occurred_at"].to_numpy("datetime64[us]")
    known = row >= 0
    cutoff = np.where(known, cut["cutoff"].to_numpy()[row], np.datetime64("NaT"))
    start = np.where(known, cut["window_start"].to_numpy()[row], np.datetime64("NaT"))
    reason = np.select(
        [~known, np.isnat(ts), ts >= cutoff, ts < start],
        ["unknown", "unreadable", "after", "before"],
        "used",
    )
    for key, n in zip(*np.unique(reason, return_counts=True), strict=True):
        reasons[str(key)] = reasons.get(str(key), 0) + int(n)
    used = reason == "used"
    verbs = frame["verb"].cat
    started = np.isin(verbs.categories, STARTED + COMPLETED)[verbs.codes]
    completed = np.isin(verbs.categories, COMPLETED)[verbs.codes]
    items = frame["object_id"].cat
    item_code = np.array([objects.setdefault(o, len(objects)) for o in items.categories])
    return {
        "row": row[used],
        "week": _week_index(ts[used].astype(np.int64)),
        "item": item_code[items.codes[used]],
        "started": started[used],
        "completed": completed[used],
        "seconds": frame["duration_s"].to_numpy()[used],
        "ts": ts[used],
    }


def run_pandas(folder: Path, learners, *, path: str | None = None):
    """pyarrow reads each file; numpy classifies its events; pandas groups the used ones."""
    import pandas as pd

    cut = _cutoff_frame(learners)
    index = pd.Index(cut["learner_id"])
    objects: dict[str, int] = {}
    reasons: dict[str, int] = {}
    parts = [
        _pandas_file(p, cut, index, objects, reasons)
        for p in sorted(glob.glob(path or events_glob(folder)))
    ]
    used = pd.DataFrame({k: np.concatenate([p[k] for p in parts]) for k in parts[0]})
    del parts
    by = used.groupby("row")
    per = pd.DataFrame(
        {
            "weeks": used[["row", "week"]].drop_duplicates().groupby("row").size(),
            "seconds": by["seconds"].sum(),
            "started": used.loc[used["started"], ["row", "item"]]
            .drop_duplicates()
            .groupby("row")
            .size(),
            "completed": used.loc[used["completed"], ["row", "item"]]
            .drop_duplicates()
            .groupby("row")
            .size(),
            "last": by["ts"].max(),
        }
    ).reindex(np.arange(len(cut)))
    started = per["started"].fillna(0).to_numpy(float)
    completed = per["completed"].fillna(0).to_numpy(float)
    days = (cut["cutoff"] - per["last"].to_numpy()).dt.total_seconds() / 86400
    features = pd.DataFrame(
        {
            "learner_id": cut["learner_id"],
            "pre_active_weeks": per["weeks"].fillna(0).to_numpy(float),
            "pre_minutes": (per["seconds"].fillna(0) / 60).round(6).to_numpy(),
            "pre_items_started": started,
            "pre_items_completed": completed,
            "pre_share_completed": np.where(started > 0, completed / np.maximum(started, 1), 0.0),
            "pre_days_since_last": days.fillna(float(WINDOW_DAYS)).round(6).to_numpy(),
        }
    )
    return features, {k: v for k, v in reasons.items() if v}


# --- Spark --------------------------------------------------------------------------------------

SPARK_MASTER = "local[2]"
SPARK_SQL_REASONS = REASONS_SQL.replace("{events}", VIEW)
SPARK_SQL_FEATURES = f"""
WITH per AS (
    SELECT
        e.learner_id,
        count(DISTINCT date_trunc('week', e.occurred_at)) AS weeks,
        sum(e.duration_s) AS seconds,
        count(DISTINCT CASE WHEN e.verb IN ({_in(STARTED + COMPLETED)}) THEN e.object_id END)
            AS started,
        count(DISTINCT CASE WHEN e.verb IN ({_in(COMPLETED)}) THEN e.object_id END) AS completed,
        max(e.occurred_at) AS last_event
    FROM {VIEW}_ltz e JOIN cut c ON e.learner_id = c.learner_id
    WHERE {USED}
    GROUP BY e.learner_id
)
SELECT
    c.i,
    c.learner_id,
    CAST(coalesce(p.weeks, 0) AS DOUBLE) AS pre_active_weeks,
    round(coalesce(p.seconds, 0) / 60, 6) AS pre_minutes,
    CAST(coalesce(p.started, 0) AS DOUBLE) AS pre_items_started,
    CAST(coalesce(p.completed, 0) AS DOUBLE) AS pre_items_completed,
    CASE WHEN p.started > 0 THEN p.completed / p.started ELSE 0D END AS pre_share_completed,
    round(coalesce((unix_micros(c.cutoff) - unix_micros(p.last_event)) / 86400e6,
                   {WINDOW_DAYS}D), 6) AS pre_days_since_last
FROM cut c LEFT JOIN per p ON c.learner_id = p.learner_id
"""


def spark_session(memory: str = "6g"):
    """A local[2] session as the issue's notes recommend (started before the timed call)."""
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.appName("activity_speed")
        .master(SPARK_MASTER)
        .config("spark.driver.memory", memory)
        .config("spark.sql.shuffle.partitions", "8")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    return session


def _spark_view(session, folder: Path, path: str | None) -> None:
    session.read.parquet(path or events_glob(folder)).createOrReplaceTempView(VIEW)


def run_spark_lcstats(folder: Path, learners, *, path: str | None = None):
    """``activity_features`` with the events as a Spark temp view (``source: spark:local[2]``)."""
    from lcstats.data.activity import activity_features
    from lcstats.params import TableSpec

    _spark_view(spark_session(), folder, path)
    features, summary = activity_features(
        TableSpec(source=f"spark:{SPARK_MASTER}", table=VIEW),
        learners,
        baseline_end=BASELINE_END,
        window_days=WINDOW_DAYS,
    )
    return features, _lcstats_reasons(summary)


def run_spark_sql(folder: Path, learners, *, path: str | None = None):
    """Hand-written Spark SQL (the DuckDB queries' twins) on the same temp view."""
    session = spark_session()
    _spark_view(session, folder, path)
    session.sql(
        f"SELECT learner_id, verb, object_id, CAST(occurred_at AS TIMESTAMP) AS occurred_at, "
        f"duration_s FROM {VIEW}"
    ).createOrReplaceTempView(f"{VIEW}_ltz")
    session.createDataFrame(_cut_with_order(learners)).createOrReplaceTempView("cut")
    row = session.sql(SPARK_SQL_REASONS.replace(VIEW, f"{VIEW}_ltz")).collect()[0]
    features = session.sql(SPARK_SQL_FEATURES).toPandas().sort_values("i").drop(columns="i")
    return features.reset_index(drop=True), {k: int(v) for k, v in row.asDict().items() if v}


RUNNERS = {
    "lcstats": run_lcstats,
    "duckdb": run_duckdb,
    "pandas": run_pandas,
    "spark-lcstats": run_spark_lcstats,
    "spark-sql": run_spark_sql,
}


# --- one measurement, in its own process --------------------------------------------------------


def _tree():
    import psutil

    me = psutil.Process()
    return [me, *me.children(recursive=True)]


def _tree_cpu() -> float:
    """User + system CPU seconds of this process and its living descendants (the JVM)."""
    total = 0.0
    for proc in _tree():
        with contextlib.suppress(Exception):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


def _status(pid: int | str, key: str) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


def _reset_hwm() -> None:
    """Reset the RSS high-water mark of this process and its descendants."""
    for proc in _tree():
        with contextlib.suppress(OSError), open(f"/proc/{proc.pid}/clear_refs", "w") as fh:
            fh.write("5")


def _tree_hwm() -> int:
    total = 0
    for proc in _tree():
        with contextlib.suppress(OSError):
            total += _status(proc.pid, "VmHWM")
    return total


def _glob_safe_fingerprint() -> None:
    """Let `activity_features` finish on a glob path: its file fingerprint opens the path as one
    file (FileNotFoundError). Where that happens, hash the matched files instead (the fix
    proposed in the README); where lcstats handles globs itself this changes nothing."""
    import hashlib

    import lcstats.data.activity as activity
    from lcstats.core.files import sha256_file

    original = activity._fingerprint

    def fingerprint(spec, features, by_reason):
        try:
            return original(spec, features, by_reason)
        except FileNotFoundError:
            digest = hashlib.sha256()
            for path in sorted(glob.glob(spec.path)):
                digest.update(f"{Path(path).name}:{sha256_file(path)}\n".encode())
            return digest.hexdigest()

    activity._fingerprint = fingerprint


def worker(method: str, folder: Path, path: str | None) -> dict:
    """Run one method once (imports and data set-up first, untimed); its measurements."""
    learners = read_learners(folder)
    import duckdb  # noqa: F401  (imports are not part of the call)
    import ibis  # noqa: F401
    import pandas  # noqa: F401

    import lcstats.data.activity  # noqa: F401

    _glob_safe_fingerprint()
    spark_start = None
    if method.startswith("spark"):
        t = time.perf_counter()
        spark_session()
        spark_start = time.perf_counter() - t
    rss_before = sum(_status(p.pid, "VmRSS") for p in _tree())
    _reset_hwm()
    cpu, t = _tree_cpu(), time.perf_counter()
    features, reasons = RUNNERS[method](folder, learners, path=path)
    wall, cpu = time.perf_counter() - t, _tree_cpu() - cpu
    out = {
        "method": method,
        "wall": wall,
        "cpu": cpu,
        "peak_rss": _tree_hwm(),
        "rss_before": rss_before,
        "spark_start": spark_start,
        "reasons": reasons,
        "rows": len(features),
        "sums": {c: float(features[c].sum()) for c in FEATURES},
        "lcstats": lcstats.data.activity.__file__,
    }
    if method.startswith("spark"):
        from pyspark.sql import SparkSession

        SparkSession.builder.getOrCreate().stop()
    return out


# --- the driver ---------------------------------------------------------------------------------


def measure(method: str, folder: Path, args: argparse.Namespace) -> dict:
    """Run one method in a fresh process (its own tree sampled too); its measurements."""
    from run_scaling import PYTHON, run_measured

    runner, source = method, None
    if method in args.sources:
        runner, source = "lcstats", args.sources[method]
    cmd = [PYTHON, str(Path(__file__).resolve()), "--worker", runner, "--data", str(folder)]
    load_before = os.getloadavg()[0]
    res = run_measured(
        cmd,
        time_limit=args.time_limit,
        mem_limit=args.mem_limit_gb * GB,
        log=args.work / f"worker-{method}.log",
        source=source,
    )
    rows = [json.loads(line) for line in res["stdout"].splitlines() if line.startswith("{")]
    out = rows[-1] if rows and res["rc"] == 0 else {"method": method}
    out.update(
        method=method,
        status=res["stopped"] or ("ok" if res["rc"] == 0 else f"exit {res['rc']}"),
        process_wall=res["wall"],
        tree_peak_sampled=res["peak_tree"],
        load=(load_before, os.getloadavg()[0]),
    )
    return out


def _median(runs: list[dict], key: str) -> float | None:
    values = [r[key] for r in runs if r.get("status") == "ok" and r.get(key) is not None]
    return statistics.median(values) if values else None


def summarise(runs: list[dict], methods: list[str]) -> list[dict]:
    """Per method: medians, ranges and the load averages around its runs."""
    rows = []
    for method in methods:
        mine = [r for r in runs if r["method"] == method]
        ok = [r for r in mine if r.get("status") == "ok"]
        loads = [x for r in mine for x in r["load"]]
        rows.append(
            {
                "method": method,
                "n": len(ok),
                "failed": [r["status"] for r in mine if r.get("status") != "ok"],
                "wall": _median(mine, "wall"),
                "wall_range": (min(r["wall"] for r in ok), max(r["wall"] for r in ok))
                if ok
                else None,
                "cpu": _median(mine, "cpu"),
                "peak_rss": _median(mine, "peak_rss"),
                "spark_start": _median(mine, "spark_start"),
                "load": (min(loads), max(loads)) if loads else None,
                "reasons": ok[0]["reasons"] if ok else None,
            }
        )
    base = next((r["wall"] for r in rows if r["method"] == "duckdb"), None)
    for row in rows:
        row["ratio"] = row["wall"] / base if base and row["wall"] else None
    return rows


def print_table(rows: list[dict]) -> None:
    print(
        f"\n{'method':<16} {'wall median (min-max)':>24} {'CPU':>8} {'peak RSS':>9} "
        f"{'ratio':>6} {'load':>9}  notes"
    )
    for r in rows:
        if r["wall"] is None:
            print(f"{r['method']:<16} failed: {', '.join(r['failed'])}")
            continue
        lo, hi = r["wall_range"]
        notes = f"Spark start {r['spark_start']:.1f} s (not in wall)" if r["spark_start"] else ""
        notes += f" failed: {r['failed']}" if r["failed"] else ""
        ratio = f"{r['ratio']:.2f}" if r["ratio"] else "-"
        print(
            f"{r['method']:<16} {r['wall']:>8.2f} s ({lo:.2f}-{hi:.2f}) {r['cpu']:>7.1f}s"
            f" {r['peak_rss'] / GB:>6.2f} GB {ratio:>6} {r['load'][0]:>4.1f}-{r['load'][1]:<4.1f} {notes}"
        )


def run_benchmark(folder: Path, args: argparse.Namespace) -> None:
    """Interleaved fresh-process runs of every method; the table, and the runs as JSON."""
    runs = []
    log = args.work / f"activity_speed-{folder.name}.jsonl"
    for rep in range(args.repeats):
        order = args.methods[rep % len(args.methods) :] + args.methods[: rep % len(args.methods)]
        for method in [m for m in order if rep == 0 or m not in args.once]:
            res = measure(method, folder, args)
            runs.append(res)
            with log.open("a") as fh:
                fh.write(json.dumps(res, default=str) + "\n")
            shown = f"{res['wall']:.2f} s" if res.get("wall") else res["status"]
            peak = f"{res['peak_rss'] / GB:.2f} GB" if res.get("peak_rss") else "-"
            print(
                f"  round {rep + 1} {method:<16} {shown:>10}, peak {peak}, load "
                f"{res['load'][0]:.1f}->{res['load'][1]:.1f}",
                flush=True,
            )
    rows = summarise(runs, args.methods)
    print_table(rows)
    reasons = {r["method"]: r["reasons"] for r in rows if r["reasons"]}
    print("\nreason counts:", json.dumps(reasons, indent=None))
    out = args.work / f"activity_speed-{folder.name}.json"
    out.write_text(json.dumps({"runs": runs, "summary": rows}, indent=1, default=str))
    print(f"runs written to {out}")


# --- check and profile --------------------------------------------------------------------------


def check(folder: Path, methods: list[str]) -> None:
    """Every method once in this process; features and reason counts against lcstats'."""
    learners = read_learners(folder)
    _glob_safe_fingerprint()
    reference, ref_reasons = run_lcstats(folder, learners)
    print(f"lcstats: {len(reference):,} learners, reasons {ref_reasons}")
    for method in [m for m in methods if m != "lcstats" and m in RUNNERS]:
        features, reasons = RUNNERS[method](folder, learners)
        same_ids = features["learner_id"].astype(str).tolist() == reference["learner_id"].tolist()
        diffs = {
            c: float(np.nanmax(np.abs(features[c].to_numpy(float) - reference[c].to_numpy(float))))
            for c in FEATURES
        }
        worst = max(diffs.values())
        print(
            f"{method:<14} same learners in order: {same_ids}; reasons equal: "
            f"{reasons == ref_reasons}; max |difference| per feature: "
            + ", ".join(f"{c.removeprefix('pre_')} {v:.2g}" for c, v in diffs.items())
            + ("  OK" if same_ids and reasons == ref_reasons and worst < 1e-6 else "  DIFFERENT")
        )
        if reasons != ref_reasons:
            print(f"{'':<14} reasons {reasons}")


def profile(folder: Path, path: str | None = None) -> None:
    """The steps of `activity_features` one at a time (same code, timed apart)."""
    import ibis
    import pyarrow as pa

    from lcstats.data import activity as A
    from lcstats.params import TableSpec

    learners = read_learners(folder)
    spec = TableSpec(path=path or events_glob(folder))
    _glob_safe_fingerprint()

    def timed(name: str, fn):
        cpu, t = time.process_time(), time.perf_counter()
        value = fn()
        print(
            f"  {name:<52} {time.perf_counter() - t:>7.2f} s wall {time.process_time() - cpu:>7.2f}"
            f" s CPU  (RSS {_status('self', 'VmRSS') / GB:.2f} GB, load {os.getloadavg()[0]:.1f})",
            flush=True,
        )
        return value

    print(f"steps of activity_features on {spec.path}:")
    cut, _ = timed(
        "cutoffs (pandas)",
        lambda: A.cutoffs(learners, baseline_end=BASELINE_END, window_days=WINDOW_DAYS),
    )
    events, con, _ = timed(
        "events expression (DuckDB connect, read_parquet)", lambda: A._events(spec, {})
    )
    memtable = timed(
        "cut-offs to Arrow + memtable",
        lambda: ibis.memtable(pa.Table.from_pandas(cut, preserve_index=False)),
    )
    classified = A._classified(events, memtable)
    timed(
        "reason counts query (a pass over the events)",
        lambda: classified.group_by("reason").aggregate(n=classified.count()).to_pyarrow(),
    )
    table = timed(
        "features query (another pass) to Arrow", lambda: A._features(classified).to_pyarrow()
    )
    counts = timed("Arrow to pandas", table.to_pandas)
    features = timed(
        "_learner_features (pandas merge, 1M rows)",
        lambda: A._learner_features(counts, cut, WINDOW_DAYS),
    )
    timed("fingerprint (SHA-256 of the files)", lambda: A._fingerprint(spec, features, {}))
    con.disconnect()


# --- command line -------------------------------------------------------------------------------


def _parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=lambda s: int(s.replace("_", "")), default=100_000_000)
    ap.add_argument("--learners", type=lambda s: int(s.replace("_", "")), default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--methods", nargs="+", default=list(METHODS), help=" ".join(METHODS))
    ap.add_argument(
        "--quick",
        action="store_true",
        help="1M events of 10k learners, 1 repeat, no spark-sql (smoke check)",
    )
    ap.add_argument(
        "--check", action="store_true", help="compare every method's numbers (quick data)"
    )
    ap.add_argument("--profile", action="store_true", help="time activity_features' steps first")
    ap.add_argument(
        "--once",
        nargs="*",
        default=[],
        help="methods to run in the first round only (e.g. the 5-10 minute Spark runs)",
    )
    ap.add_argument(
        "--summary",
        action="store_true",
        help="only print the table of every run recorded for this data (all invocations)",
    )
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--rows-per-file", type=int, default=20_000_000)
    ap.add_argument("--work", type=Path, default=Path("/tmp/lcstats-bench"))
    ap.add_argument("--time-limit", type=float, default=1800, help="seconds per run")
    ap.add_argument("--mem-limit-gb", type=float, default=16, help="kill a run past this RSS")
    ap.add_argument(
        "--lcstats-source",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="also run activity_features from the source tree DIR as method NAME",
    )
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--path", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.quick or args.check:
        args.events, args.learners = 1_000_000, 10_000
        if args.quick and "--repeats" not in (argv or sys.argv):
            args.repeats = 1
        if args.quick and "--methods" not in (argv or sys.argv):
            args.methods = ["lcstats", "duckdb", "pandas", "spark-lcstats"]
    args.sources = {}
    for item in args.lcstats_source:
        name, _, folder = item.partition("=")
        args.sources[name] = Path(folder).resolve()
        args.methods.append(name)
    return args


def main(argv: list[str] | None = None) -> None:
    args = _parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.data, args.path)), flush=True)
        return
    args.work.mkdir(parents=True, exist_ok=True)
    print(
        f"machine: {os.cpu_count()} cores, "
        f"{os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') / GB:.1f} GB; "
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
        flush=True,
    )
    folder = ensure_data(args.work, args.events, args.learners, args.seed, args.rows_per_file)
    meta = json.loads((folder / "meta.json").read_text())
    print(
        f"data: {folder} ({args.events:,} events, {args.learners:,} learners, "
        f"{len(meta['files'])} files, {sum(meta['files'].values()) / 1e9:.2f} GB; generated in "
        f"{meta['seconds']:.0f} s with peak RSS {meta['peak_rss_gb']:.2f} GB)",
        flush=True,
    )
    if args.check:
        check(folder, args.methods)
        return
    if args.summary:
        runs = [json.loads(x) for x in (args.work / f"activity_speed-{folder.name}.jsonl").open()]
        methods = list(dict.fromkeys(r["method"] for r in runs))
        print_table(summarise(runs, [m for m in args.methods if m in methods] or methods))
        return
    if args.profile:
        profile(folder)
    run_benchmark(folder, args)


if __name__ == "__main__":
    main()
