"""Learning activity as pre-programme engagement: features counted inside the engine.

Activity comes as xAPI statements exported from a learning record store (JSON lines: actor by
``account.name`` or ``mbox``, ``verb.id``, ``object.id``, ``timestamp``, ``result.duration``;
voided statements honoured), or as a table ``learner_id, verb, object_id, occurred_at,
duration_s`` from a file or a database (see `lcstats.data.sources`). Logs run to hundreds of
millions of events, so they are never loaded into pandas: the counting runs in the engine
(DuckDB for files, else the database or Spark that holds them) and only one row per learner
comes back.

Engagement is what a learner did *before* coaching: activity after coaching starts is an outcome
of coaching, and a covariate that holds it would hide part of the effect. Each learner has a
cut-off: the day coaching started (``coached_from``) for coached learners, and ``baseline_end``
for the others (by default the first coaching start of the programme). Only events in the
``activity_window_days`` before the cut-off count. Features (all 0 for a learner with no event in
the window; ``pre_days_since_last`` is then the window's length):

=========================  ==============================================================
``pre_active_weeks``        weeks (Monday to Sunday) with at least one event
``pre_minutes``             minutes of activity (durations summed)
``pre_items_started``       distinct items launched, initialised, attempted or finished
``pre_items_completed``     distinct items completed or passed
``pre_share_completed``     items completed / items started
``pre_days_since_last``     days from the last event to the cut-off
=========================  ==============================================================

Statements left out are counted by reason: voided (and the voiding statements themselves), an
actor who is not in the learners table, a timestamp that cannot be read, after the cut-off, and
before the window.
"""

from __future__ import annotations

import glob
import hashlib
import os
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from lcstats.core.errors import InputError, Problem
from lcstats.core.options import ACTIVITY_FEATURES

if TYPE_CHECKING:
    from lcstats.data.load import Programme
    from lcstats.params import TableSpec

FEATURES = ACTIVITY_FEATURES
XAPI_SUFFIXES = (".json", ".jsonl", ".ndjson", ".json.gz", ".jsonl.gz", ".ndjson.gz")
TABLE_COLUMNS = ("learner_id", "verb", "object_id", "occurred_at")
STARTED_VERBS = ("launched", "initialized", "attempted", "started", "experienced", "resumed")
COMPLETED_VERBS = ("completed", "passed", "mastered")
VOIDED_VERB = "voided"
ISO_DURATION = (
    r"^P(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?$"
)
REASONS = {
    "voided": "statement voided (or voiding another)",
    "unknown": "actor not in the learners table",
    "unreadable": "timestamp cannot be read",
    "after": "after the learner's cut-off (coaching start or baseline_end): an outcome, not a covariate",
    "before": "before the activity window",
}
XAPI_SQL = """
SELECT
    CAST(id AS VARCHAR) AS statement_id,
    coalesce(
        json_extract_string(actor, '$.account.name'),
        regexp_replace(json_extract_string(actor, '$.mbox'), '^mailto:', '')
    ) AS learner_id,
    json_extract_string(verb, '$.id') AS verb,
    json_extract_string(object, '$.id') AS object_id,
    json_extract_string(object, '$.objectType') AS object_type,
    CAST(try_cast("timestamp" AS TIMESTAMPTZ) AS TIMESTAMP) AS occurred_at,
    json_extract_string(result, '$.duration') AS duration
FROM read_json(
    {path},
    format = 'newline_delimited',
    columns = {{id: 'VARCHAR', actor: 'JSON', verb: 'JSON', object: 'JSON',
               result: 'JSON', "timestamp": 'VARCHAR'}}
)
"""


@dataclass(frozen=True)
class ActivitySummary:
    """What the activity log held and what of it counted (no learner-level rows)."""

    source: str
    kind: str  # xapi | table
    rows_read: int
    rows_used: int
    excluded: dict[str, int]
    baseline_end: str
    window_days: int
    fingerprint: str = ""  # SHA-256 of the file, or of the features and counts (a database)


def _duration_seconds(text: Any) -> Any:
    """An ISO 8601 duration (``PT1H2M3S``) as seconds, in the engine (null stays null)."""
    import ibis

    def part(i: int) -> Any:
        return text.re_extract(ISO_DURATION, i).nullif("").cast("float64").fill_null(0)

    seconds = part(1) * 86400 + part(2) * 3600 + part(3) * 60 + part(4)
    return text.isnull().ifelse(ibis.null("float64"), seconds)


def _short_verb(verb: Any) -> Any:
    """The last part of a verb IRI, lower case (``.../verbs/completed`` -> ``completed``)."""
    return verb.re_extract(r"([^/#]+)$", 1).lower()


def _xapi_events(path: str) -> tuple[Any, Any]:
    """xAPI statements of a JSON-lines file as events, voided ones removed; and all of them."""
    import ibis

    con = ibis.duckdb.connect()
    con.raw_sql("SET TimeZone = 'UTC'")
    quoted = "'" + str(path).replace("'", "''") + "'"
    raw = con.sql(XAPI_SQL.format(path=quoted)).mutate(verb=lambda t: _short_verb(t.verb))
    voiding = raw.filter((raw.verb == VOIDED_VERB) & (raw.object_type == "StatementRef"))
    targets = voiding.select(voided_id=voiding.object_id).distinct()
    marked = raw.left_join(targets, raw.statement_id == targets.voided_id)
    flagged = marked.mutate(
        voided=marked.voided_id.notnull() | (marked.verb == VOIDED_VERB),
        duration_s=_duration_seconds(marked.duration),
    )
    return flagged.select(
        "learner_id", "verb", "object_id", "occurred_at", "duration_s", "voided"
    ), con


def _table_events(spec: TableSpec, columns: dict[str, str]) -> tuple[Any, Any]:
    """Events of a table (a file read by DuckDB, or a database table or query)."""
    import ibis

    from lcstats.data.sources import connect, resolve, table_expression

    if spec.is_file:
        con = ibis.duckdb.connect()
        con.raw_sql("SET TimeZone = 'UTC'")
        path = str(spec.path)
        table = con.read_parquet(path) if path.lower().endswith(".parquet") else con.read_csv(path)
    else:
        con = connect(resolve(spec.source, "activity (source)"))
        table = table_expression(con, spec)
    rename = {canon: theirs for canon, theirs in columns.items() if theirs in table.columns}
    table = table.rename(rename) if rename else table
    missing = [c for c in TABLE_COLUMNS if c not in table.columns]
    if missing:
        raise InputError(
            Problem(
                str(spec.path or spec.table or "activity query"),
                f"the activity table lacks the column(s) {', '.join(missing)}",
                hint="an activity table has learner_id, verb, object_id, occurred_at and "
                "duration_s (optional); map other names with columns: {activity: {...}}",
            )
        )
    duration = (
        table.duration_s.cast("float64") if "duration_s" in table.columns else ibis.null("float64")
    )
    events = table.select(
        learner_id=table.learner_id.cast("string"),
        verb=_short_verb(table.verb.cast("string")),
        object_id=table.object_id.cast("string"),
        occurred_at=table.occurred_at.cast("timestamp"),
        duration_s=duration,
        voided=ibis.literal(False),
    )
    return events, con


def cutoffs(
    learners: pd.DataFrame, *, baseline_end: str | None, window_days: int
) -> tuple[pd.DataFrame, str]:
    """Each learner's cut-off (coaching start, else `baseline_end`) and window start; and the
    baseline end used (the first coaching start when not given).

    Raises
    ------
    InputError
        When no baseline end is given and no learner has a coaching start date.
    """
    starts = (
        learners["coached_from"]
        if "coached_from" in learners
        else pd.Series(pd.NaT, index=learners.index)
    )
    coached = (
        learners["coached"].eq(1).to_numpy()
        if "coached" in learners
        else np.zeros(len(learners), bool)
    )
    if baseline_end is None:
        if starts.notna().sum() == 0:
            raise InputError(
                Problem(
                    "parameters",
                    "activity features need a cut-off for learners never coached, and no learner "
                    "has a coaching start date",
                    hint='set baseline_end: "YYYY-MM-DD" (the day the programme began), or give '
                    "coached_from in the learners table or a coaching_sessions log",
                )
            )
        baseline_end = f"{starts.min():%Y-%m-%d}"
    base = pd.Timestamp(baseline_end)
    cut = pd.Series(np.where(coached & starts.notna(), starts, base), index=learners.index)
    cut = pd.to_datetime(cut).astype("datetime64[us]")
    frame = pd.DataFrame(
        {"learner_id": learners["learner_id"].astype(str).to_numpy(), "cutoff": cut.to_numpy()}
    )
    frame["window_start"] = frame["cutoff"] - pd.Timedelta(days=window_days)
    return frame, baseline_end


def _events(spec: TableSpec, columns: dict[str, str]) -> tuple[Any, Any, str]:
    """The events of an activity input, its connection, and its kind (xapi or table)."""
    if spec.is_file and str(spec.path).lower().endswith(XAPI_SUFFIXES):
        events, con = _xapi_events(str(spec.path))
        return events, con, "xapi"
    events, con = _table_events(spec, columns)
    return events, con, "table"


def _classified(events: Any, cut: Any) -> Any:
    """Events joined to their learner's cut-off, each with the reason it is left out (or none)."""
    import ibis

    cut = cut.rename(cut_learner="learner_id")
    joined = events.left_join(cut, events.learner_id == cut.cut_learner)
    reason = ibis.cases(
        (joined.voided, "voided"),
        (joined.cut_learner.isnull(), "unknown"),
        (joined.occurred_at.isnull(), "unreadable"),
        (joined.occurred_at >= joined.cutoff, "after"),
        (joined.occurred_at < joined.window_start, "before"),
        else_="used",
    )
    return joined.mutate(reason=reason)


def _used(events: Any, cut: Any) -> Any:
    """The events that count: not voided, of a learner in `cut`, in the window before the cut-off.

    The rows `_classified` marks "used", selected by an inner join on the learner and the window,
    so that the engine filters while it joins: the same rows through the CASE of `_classified`
    cost DuckDB about 1.1x the wall time at 100M events (benchmarks/README.md).
    """
    cut = cut.rename(cut_learner="learner_id")
    joined = events.join(
        cut,
        [
            events.learner_id == cut.cut_learner,
            events.occurred_at < cut.cutoff,
            events.occurred_at >= cut.window_start,
        ],
    )
    return joined.filter(~joined.voided)


def _features(used: Any) -> Any:
    """Per learner, the counts of the events that count (an Ibis expression)."""
    started = used.verb.isin(STARTED_VERBS + COMPLETED_VERBS)
    return used.group_by(used.learner_id).aggregate(
        pre_active_weeks=used.occurred_at.truncate("W").nunique(),
        pre_minutes=used.duration_s.sum() / 60,
        pre_items_started=used.object_id.nunique(where=started),
        pre_items_completed=used.object_id.nunique(where=used.verb.isin(COMPLETED_VERBS)),
        last_event=used.occurred_at.max(),
    )


def _learner_features(counts: pd.DataFrame, cut: pd.DataFrame, window_days: int) -> pd.DataFrame:
    """The features of every learner (zeros when no event counted), in the learners' order."""
    out = cut[["learner_id", "cutoff"]].merge(counts, on="learner_id", how="left")
    for column in ("pre_active_weeks", "pre_items_started", "pre_items_completed"):
        out[column] = out[column].fillna(0).astype(float)
    out["pre_minutes"] = out["pre_minutes"].astype(float).fillna(0.0).round(6)
    started = out["pre_items_started"]
    out["pre_share_completed"] = np.where(
        started > 0, out["pre_items_completed"] / started.clip(lower=1), 0.0
    )
    last = pd.to_datetime(out["last_event"]).astype("datetime64[us]")
    days = (out["cutoff"] - last).dt.total_seconds() / 86400
    out["pre_days_since_last"] = days.fillna(float(window_days)).round(6)
    return out[["learner_id", *FEATURES]]


def _fingerprint(spec: TableSpec, features: pd.DataFrame, by_reason: dict[str, int]) -> str:
    """SHA-256 of an activity file (of the name and bytes of each file a glob matches), or of
    what was computed from a database's activity."""
    from lcstats.core.files import sha256_file

    if spec.is_file:
        path = str(spec.path)
        if not glob.has_magic(path):
            return sha256_file(path)
        digest = hashlib.sha256()
        for name in sorted(glob.glob(path)):
            digest.update(f"{os.path.basename(name)}\0{sha256_file(name)}\n".encode())
        return digest.hexdigest()
    digest = hashlib.sha256(pd.util.hash_pandas_object(features, index=False).to_numpy().tobytes())
    digest.update(repr(sorted(by_reason.items())).encode())
    return digest.hexdigest()


def activity_features(
    spec: TableSpec,
    learners: pd.DataFrame,
    *,
    baseline_end: str | None,
    window_days: int,
    columns: dict[str, str] | None = None,
) -> tuple[pd.DataFrame, ActivitySummary]:
    """Pre-programme engagement features of each learner, counted in the engine.

    Parameters
    ----------
    spec : TableSpec
        The activity input: xAPI JSON lines, or a table (file or database).
    learners : DataFrame
        Validated learners with ``learner_id`` (and ``coached``, ``coached_from`` when known).
    baseline_end : str, optional
        Cut-off of learners without a coaching start (default: the first coaching start).
    window_days : int
        Days before each cut-off whose events count.
    columns : dict, optional
        Canonical column name -> the name in an activity table.

    Returns
    -------
    features : DataFrame
        ``learner_id`` and the `FEATURES`, one row per learner, in the learners' order.
    summary : ActivitySummary
        Rows read, used, and left out by reason.
    """
    import ibis

    cut, baseline_end = cutoffs(learners, baseline_end=baseline_end, window_days=window_days)
    events, con, kind = _events(spec, columns or {})
    try:
        cut_table = ibis.memtable(pa.Table.from_pandas(cut, preserve_index=False))
        classified = _classified(events, cut_table)
        reasons = (
            classified.group_by("reason").aggregate(n=classified.count()).to_pyarrow().to_pandas()
        )
        counts = _features(_used(events, cut_table)).to_pyarrow().to_pandas()
    except Exception as exc:  # an engine's error on the activity data: name the source
        raise InputError(
            Problem(
                str(spec.path or spec.table or "activity query"),
                f"the activity log cannot be read: {str(exc).splitlines()[0]}",
                hint="check that the file is xAPI JSON lines or a table with learner_id, verb, object_id, occurred_at",
            )
        ) from None
    by_reason = dict(zip(reasons["reason"], reasons["n"].astype(int), strict=True))
    features = _learner_features(counts, cut, window_days)
    summary = ActivitySummary(
        source=str(spec.path) if spec.is_file else f"{spec.table or 'query'}",
        kind=kind,
        rows_read=sum(by_reason.values()),
        rows_used=by_reason.get("used", 0),
        excluded={REASONS[k]: v for k, v in sorted(by_reason.items()) if k in REASONS},
        baseline_end=baseline_end,
        window_days=window_days,
        fingerprint=_fingerprint(spec, features, by_reason),
    )
    return features, summary


def with_activity_features(
    programme: Programme,
    spec: TableSpec,
    *,
    baseline_end: str | None,
    window_days: int,
    columns: dict[str, str] | None = None,
) -> Programme:
    """The programme with the activity features added to its learners (see `activity_features`).

    Raises
    ------
    InputError
        When the learners table already has a column of that name, or the log cannot be read.
    """
    taken = [c for c in FEATURES if c in programme.learners]
    if taken:
        raise InputError(
            Problem(
                programme.sources["learners"].path,
                f"the learners table has column(s) {', '.join(taken)}, which the activity log computes",
                hint="rename or drop them in the export, or leave out the activity log",
            )
        )
    features, summary = activity_features(
        spec,
        programme.learners,
        baseline_end=baseline_end,
        window_days=window_days,
        columns=columns,
    )
    learners = programme.learners.copy()
    for column in FEATURES:
        learners[column] = features[column].to_numpy()
    return replace(programme, learners=learners, activity=summary)
