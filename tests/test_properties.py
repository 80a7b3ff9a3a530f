"""Property tests: whatever bytes a file holds, reading it either works or raises InputError.

Hypothesis generates malformed tables (random subsets and spellings of the columns, cells that are
empty, unicode, numbers of every size, dates in odd formats, repeated ids), writes them as CSV
bytes with random delimiters, quoting, line ends and encodings (or as Parquet, or as random
bytes), and feeds them to `read_table`, `load_programme` and `parse_table`. Anything but a
loaded table or an `InputError` (with problems a person can read) is a bug. Each bug found this
way is fixed in the source and kept as an `@example`.

The runs are derandomized (the same examples on every machine) and sized to finish in well under
40 seconds; set HYPOTHESIS_PROFILE=deep to search longer.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from lcstats.core.errors import InputError, Problem
from lcstats.data.contract import (
    REQUIRED_COLUMNS,
    cross_table_problems,
    parse_table,
    schema_problems,
)
from lcstats.data.load import Programme, load_programme, read_table

TABLES = ("learners", "action_items", "skill_assessments")
DEEP = os.environ.get("HYPOTHESIS_PROFILE") == "deep"


def sized(n: int):
    """Settings for `n` examples (x20 under HYPOTHESIS_PROFILE=deep), repeatable, no deadline."""
    return settings(
        max_examples=n * 20 if DEEP else n,
        deadline=None,
        derandomize=not DEEP,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# --- cells ------------------------------------------------------------------------------------

ODD = st.sampled_from(
    [
        "",
        " ",
        "nan",
        "NaN",
        "None",
        "NULL",
        "NA",
        "#N/A",
        "inf",
        "-inf",
        "1e400",
        "-1e400",
        "1e-400",
        "9" * 40,
        "-0",
        "0x1F",
        "1_000",
        "3,5",
        "١٢",
        "½",
        "Ⅻ",
        "True",
        "1.",
        ".5",
        "+3",
        "3 months",
        "\u00a0",
        "\u200b",
        "\x00",
        "é",
        "\ufeff",
        '"',
        "'",
        "=1+1",
        "L1\nL2",
    ]
)
NUMBERS = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.floats(min_value=-10, max_value=10).map(lambda x: f"{x:.3f}"),
    st.integers(0, 6).map(str),
)
DATES = st.one_of(
    st.dates().map(str),
    st.dates().map(lambda d: d.strftime("%d/%m/%Y")),
    st.dates().map(lambda d: d.strftime("%Y%m%d")),
    st.datetimes().map(lambda d: d.isoformat()),
    st.from_regex(
        r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}([ T][0-9]{1,2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?(Z|[+-][0-9]{2}:?[0-9]{2})?)?",
        fullmatch=True,
    ),
    st.sampled_from(["2026-02-30", "0000-01-01", "9999-12-31", "2026-1-5", "1677-09-21"]),
)
BINARY = st.sampled_from(
    ["0", "1", "yes", "No", "TRUE", "f", "y", "2", "-1", "1.0", "0.0", "maybe"]
)
IDS = st.sampled_from(["L1", "L2", "L3", " L1 ", "l1", "M1", "T1", "A1", "A2", "1", "1.0"])
WAVES = st.sampled_from(["pre", "post", "PRE", " Post ", "mid", "pre-post"])
TEXT = st.text(max_size=10)
CELL = st.one_of(ODD, TEXT, NUMBERS, DATES, BINARY, IDS, WAVES)

COLUMN_CELLS = {
    "learner_id": IDS,
    "item_id": IDS,
    "team_id": IDS,
    "manager_id": IDS,
    "coached": BINARY,
    "manager_coached": BINARY,
    "tenure_months": NUMBERS,
    "coaching_sessions": NUMBERS,
    "engagement": NUMBERS,
    "level": NUMBERS,
    "target_level": NUMBERS,
    "created_on": DATES,
    "due_on": DATES,
    "completed_on": DATES,
    "assessed_on": DATES,
    "wave": WAVES,
}


def cells_for(column: str) -> st.SearchStrategy[str]:
    """Mostly values of the column's kind (so the deeper checks run), sometimes anything."""
    own = COLUMN_CELLS.get(column)
    return st.one_of(own, own, st.just(""), CELL) if own is not None else CELL


def columns_of(table: str) -> list[str]:
    extra = ["manager_coached", "engagement"] if table == "learners" else []
    return [*REQUIRED_COLUMNS[table], *extra]


@st.composite
def headers(draw, table: str) -> list[str]:
    """The table's columns: usually all, sometimes some missing, misspelled, repeated or added."""
    canonical = columns_of(table)
    if draw(st.booleans()):
        names = list(canonical)
    else:
        names = draw(st.lists(st.sampled_from(canonical), min_size=0, max_size=len(canonical) + 2))
        spelled = st.one_of(
            st.sampled_from(canonical).map(str.upper),
            st.sampled_from(canonical).map(lambda c: c.replace("_", " ")),
            st.sampled_from(canonical).map(lambda c: c[:-1]),
            TEXT,
            st.just(""),
        )
        names += draw(st.lists(spelled, max_size=3))
        names = draw(st.permutations(names))
    return names


@st.composite
def rows_for(draw, names: list[str], max_rows: int = 6) -> list[list[str]]:
    n = draw(st.integers(0, max_rows))
    rows = []
    for _ in range(n):
        row = [draw(cells_for(name)) for name in names]
        ragged = draw(st.sampled_from(["same"] * 8 + ["short", "long"]))
        if ragged == "short" and row:
            row = row[: draw(st.integers(0, len(row) - 1))]
        elif ragged == "long":
            row += draw(st.lists(CELL, min_size=1, max_size=2))
        rows.append(row)
    return rows


@st.composite
def csv_bytes(draw, names: list[str], rows: list[list[str]]) -> bytes:
    """The table written as CSV with a random dialect and encoding; sometimes damaged."""
    delimiter = draw(st.sampled_from([",", ",", ",", ";", "\t", "|"]))
    quoting = draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONE]))
    terminator = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    buffer = io.StringIO(newline="")
    writer = csv.writer(
        buffer,
        delimiter=delimiter,
        quoting=quoting,
        escapechar="\\" if quoting == csv.QUOTE_NONE else None,
        lineterminator=terminator,
    )
    try:
        writer.writerows([names, *rows])
    except csv.Error:  # QUOTE_NONE cannot write a lone empty field: quote as usual
        buffer = io.StringIO(newline="")
        csv.writer(buffer, delimiter=delimiter, lineterminator=terminator).writerows([names, *rows])
    text = buffer.getvalue()
    if draw(st.booleans()):
        text += draw(st.sampled_from(["", "\n", "\n\n", ",,,\n", '"', "\x00", "\n \n"]))
    encoding = draw(st.sampled_from(["utf-8"] * 4 + ["utf-8-sig", "latin-1", "utf-16", "cp1252"]))
    raw = text.encode(encoding, errors="replace")
    damage = draw(st.sampled_from(["none"] * 6 + ["truncate", "insert", "replace"]))
    if damage != "none" and raw:
        at = draw(st.integers(0, len(raw)))
        junk = draw(st.binary(min_size=1, max_size=4))
        raw = {
            "truncate": raw[:at],
            "insert": raw[:at] + junk,
            "replace": raw[:at] + junk + raw[at + len(junk) :],
        }[damage] + (raw[at:] if damage == "insert" else b"")
    return raw


@st.composite
def table_files(draw, table: str) -> bytes:
    names = draw(headers(table))
    return draw(csv_bytes(names, draw(rows_for(names))))


ANY_TABLE_FILE = st.sampled_from(TABLES).flatmap(lambda t: st.tuples(st.just(t), table_files(t)))


def check_problems(exc: InputError) -> None:
    """An InputError always holds readable problems: a source, a message, plain text."""
    assert exc.problems
    for p in exc.problems:
        assert isinstance(p, Problem) and p.source and p.message
        text = str(p)
        assert "Traceback" not in text and "SchemaError" not in text
    assert exc.describe().startswith(f"{len(exc.problems)} problem")


def reads_or_input_error(func, *args, **kwargs):
    try:
        return func(*args, **kwargs)
    except InputError as exc:
        check_problems(exc)
        return None


def written(folder: Path, name: str, raw: bytes) -> Path:
    path = folder / name
    path.write_bytes(raw)
    return path


# --- read_table -------------------------------------------------------------------------------


NAMES = st.one_of(
    st.sampled_from([*columns_of("learners"), *columns_of("action_items"), "wave", "skill"]),
    TEXT,
)


@sized(200)
@given(
    case=ANY_TABLE_FILE,
    mapping=st.dictionaries(NAMES, NAMES, max_size=3),
    required=st.lists(NAMES, max_size=3).map(tuple),
)
def test_read_table_loads_or_raises_input_error(case, mapping, required):
    """Also with random column mappings and further required columns (from the parameters)."""
    table, raw = case
    with tempfile.TemporaryDirectory() as tmp:
        path = written(Path(tmp), f"{table}.csv", raw)
        result = reads_or_input_error(read_table, path, table, columns=mapping, required=required)
    if result is not None:
        frame, source = result
        assert source.rows_read == len(frame) > 0
        assert set(REQUIRED_COLUMNS[table]) <= set(frame.columns)
        assert frame.index.is_unique


@sized(60)
@given(raw=st.binary(max_size=300), suffix=st.sampled_from([".csv", ".parquet", ".txt"]))
@example(raw=b"PAR1\x00\x00\x00\x00PAR1", suffix=".parquet")
@example(raw=b"\xff\xfe\x00\x00", suffix=".csv")
def test_random_bytes_load_or_raise_input_error(raw, suffix):
    with tempfile.TemporaryDirectory() as tmp:
        path = written(Path(tmp), f"learners{suffix}", raw)
        reads_or_input_error(read_table, path, "learners")


PARQUET_VALUES = {
    "text": st.one_of(CELL, st.none()),
    "int": st.integers(-(2**63), 2**63 - 1),
    "float": st.one_of(st.floats(), st.none()),
    "bool": st.booleans(),
    "date": st.one_of(st.datetimes(), st.none()),
}


@st.composite
def parquet_frames(draw, table: str) -> pd.DataFrame:
    names = list(dict.fromkeys(n for n in draw(headers(table)) if n))
    n = draw(st.integers(0, 5))
    columns = {}
    for name in names:
        kind = draw(st.sampled_from(sorted(PARQUET_VALUES)))
        values = draw(st.lists(PARQUET_VALUES[kind], min_size=n, max_size=n))
        columns[name] = pd.Series(values, dtype=object if kind in ("text", "date") else None)
    frame = pd.DataFrame(columns, index=pd.RangeIndex(n))
    if names and draw(st.booleans()):
        frame = frame.set_index(names[0])  # a column saved as the index
    return frame


@sized(80)
@given(table=st.sampled_from(TABLES), data=st.data())
def test_parquet_tables_load_or_raise_input_error(table, data):
    frame = data.draw(parquet_frames(table))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{table}.parquet"
        try:
            frame.to_parquet(path)
        except (ValueError, TypeError, OverflowError):  # pyarrow's errors derive from these
            return  # pyarrow cannot write this mixture: not an input anyone can have
        reads_or_input_error(read_table, path, table)


# --- parse_table and the schema checks --------------------------------------------------------


@st.composite
def text_frames(draw, table: str) -> pd.DataFrame:
    """A table as `read_table` hands it on: stripped text, empty cells missing."""
    names = list(dict.fromkeys(n.strip() for n in draw(headers(table)) if n.strip()))
    rows = draw(st.lists(st.tuples(*(cells_for(n) for n in names)), max_size=8))
    frame = pd.DataFrame(list(rows), columns=names, dtype="str")
    for name in names:
        text = frame[name].str.strip()
        frame[name] = text.where(text != "")
    return frame


OUT_OF_RANGE_DATES = pd.DataFrame(
    {"learner_id": ["L1", "L2"], "assessed_on": ["2263-01-01", "1600-02-03 10:00"]}, dtype="str"
)


@sized(120)
@given(
    case=st.sampled_from(TABLES).flatmap(lambda t: st.tuples(st.just(t), text_frames(t))),
    scale=st.sampled_from([(1, 5), (0, 10)]),
)
# regression: a date after 2262 or before 1677 raised OutOfBoundsDatetime (nanosecond range)
@example(case=("skill_assessments", OUT_OF_RANGE_DATES), scale=(1, 5))
# regression: repeated learner ids in assessments without 'skill' and 'wave' raised KeyError
@example(
    case=("skill_assessments", pd.DataFrame({"learner_id": ["L1", "L1"]}, dtype="str")),
    scale=(1, 5),
)
def test_parse_table_and_schema_checks_never_raise(case, scale):
    table, frame = case
    parsed = parse_table(table, frame, f"{table}.csv")
    assert parsed.frame.index.equals(frame.index)
    for problem in parsed.problems:
        assert problem.column in frame.columns and problem.rows
    problems = schema_problems(
        table, parsed.frame, f"{table}.csv", scale, unreadable=parsed.unreadable
    )
    for problem in [*parsed.problems, *problems]:
        assert isinstance(problem, Problem) and problem.message
        assert all(r >= 2 for r in problem.rows)


@sized(50)
@given(frames=st.tuples(*(text_frames(t) for t in TABLES)))
@example(
    frames=(
        pd.DataFrame({"learner_id": ["L1"]}, dtype="str"),
        pd.DataFrame(
            {"learner_id": ["L1"], "created_on": ["2000-01-01"], "due_on": ["2263-01-01"]},
            dtype="str",
        ),
        OUT_OF_RANGE_DATES,
    )
)
def test_cross_table_checks_never_raise(frames):
    parsed = [parse_table(t, f, f"{t}.csv").frame for t, f in zip(TABLES, frames, strict=True)]
    problems = cross_table_problems(*parsed, {t: f"{t}.csv" for t in TABLES})
    assert all(isinstance(p, Problem) for p in problems)


# --- whole programmes -------------------------------------------------------------------------


@st.composite
def programme_files(draw) -> dict[str, bytes]:
    """Three tables that mostly keep the contract's shape, so every check gets to run."""
    files = {}
    for table in TABLES:
        if draw(st.integers(0, 4)) == 0:
            files[table] = draw(table_files(table))
            continue
        names = columns_of(table)
        rows = draw(
            st.lists(st.tuples(*(cells_for(n) for n in names)).map(list), min_size=1, max_size=8)
        )
        buffer = io.StringIO(newline="")
        csv.writer(buffer, lineterminator="\n").writerows([names, *rows])
        files[table] = buffer.getvalue().encode("utf-8")
    return files


@sized(60)
@given(files=programme_files(), scale=st.sampled_from([(1, 5), (0, 4)]))
@example(  # regression: OutOfBoundsDatetime for a completion date in 2263
    files={
        "learners": b"\n",
        "action_items": b"learner_id,item_id,created_on,due_on,completed_on\n"
        b"L1,L1,2000-01-01,2000-01-01,2263-01-01\n",
        "skill_assessments": b"\n",
    },
    scale=(1, 5),
)
def test_load_programme_loads_or_raises_input_error(files, scale):
    with tempfile.TemporaryDirectory() as tmp:
        paths = [written(Path(tmp), f"{t}.csv", files[t]) for t in TABLES]
        programme = reads_or_input_error(
            load_programme, *paths, scale=scale, required_learner_columns=("coached",)
        )
    if programme is not None:
        assert isinstance(programme, Programme)
        assert programme.learners["learner_id"].is_unique
        assert set(programme.learners["coached"].dropna()) <= {0, 1}
        levels = programme.skill_assessments["level"].dropna()
        assert ((levels >= scale[0]) & (levels <= scale[1])).all()
        assert np.isfinite(programme.learners["coaching_sessions"]).all()
