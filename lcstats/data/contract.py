"""The data contract: the three input tables, declared as pandera schemas.

`parse_table` turns the text read from a file into typed columns and records every value it
cannot read; `schema_problems` checks the typed table against its pandera schema; and
`cross_table_problems` checks what spans tables or columns. Each turns failures into
plain-language `Problem` objects (file, column, example rows, what was expected, what to do).
Row numbers are the line numbers a spreadsheet shows for a CSV file (the header is line 1): a
table's index holds ``line - 2`` (0 for the first data row of a file without blank lines).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from lcstats.core.errors import Problem

if TYPE_CHECKING:  # pandera is imported where it is used: reading a saved Programme needs none
    import pandera.pandas as pandera

YES = frozenset({"1", "1.0", "yes", "y", "true", "t"})
NO = frozenset({"0", "0.0", "no", "n", "false", "f"})
BINARY_SPELLINGS = "0/1, yes/no, y/n or true/false"
DATE_FORMAT = "%Y-%m-%d"
# YYYY-MM-DD, optionally followed by a time (and time zone) as spreadsheets and databases export it
DATE_PATTERN = (
    r"(\d{4}-\d{1,2}-\d{1,2})(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"
)

REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "learners": (
        "learner_id",
        "team_id",
        "manager_id",
        "cohort",
        "role",
        "tenure_months",
        "coached",
        "coaching_sessions",
    ),
    "action_items": ("learner_id", "item_id", "created_on", "due_on", "completed_on"),
    "skill_assessments": (
        "learner_id",
        "skill",
        "wave",
        "assessed_on",
        "level",
        "target_level",
    ),
}
# the optional log of coaching sessions (coach_id and minutes may be absent)
REQUIRED_COLUMNS["coaching_sessions"] = ("learner_id", "session_on")
BINARY_COLUMNS = {"learners": ("coached", "manager_coached")}
DATE_COLUMNS = {
    "learners": ("coached_from",),
    "action_items": ("created_on", "due_on", "completed_on"),
    "skill_assessments": ("assessed_on",),
    "coaching_sessions": ("session_on",),
}
NUMBER_COLUMNS = {
    "learners": ("tenure_months", "coaching_sessions"),
    "skill_assessments": ("level", "target_level"),
    "coaching_sessions": ("minutes",),
}
# columns that may be left empty (every other column of the contract needs a value in every row)
OPTIONAL_VALUES = {
    "learners": ("tenure_months", "coached_from"),
    "coaching_sessions": ("minutes",),
    "action_items": ("completed_on",),
    "skill_assessments": ("assessed_on", "level"),
}
# the range of dates pandas holds to the nanosecond (whole days)
FIRST_DATE = pd.Timestamp.min.ceil("D")
LAST_DATE = pd.Timestamp.max.floor("D")
WAVES = ("pre", "post")
ASSESSMENT_KEY = ("learner_id", "skill", "wave")
# what identifies a row of each table (rows from a database are named by it; its order is kept)
TABLE_KEYS = {
    "learners": ("learner_id",),
    "action_items": ("item_id",),
    "skill_assessments": ASSESSMENT_KEY,
    "coaching_sessions": ("learner_id", "session_on"),
}
# values changed while reading, as counted in the data-quality notes
MAPPED_FLAGS = "yes/no or true/false written as 1/0"
TIMES_DROPPED = "times of day dropped from dates"
DAY_FIRST = "dates read day first (day/month/year)"
DMY = r"(\d{1,2})[./\-](\d{1,2})[./\-](\d{4})"


def _text(unique: bool = False, nullable: bool = False) -> pandera.Column:
    """A pandera column of non-empty text."""
    import pandera.pandas as pandera

    checks = [pandera.Check.str_length(min_value=1)]
    if unique:
        checks.append(pandera.Check(_each_once, name="field_uniqueness"))
    return pandera.Column(str, nullable=nullable, checks=checks)


def _each_once(values: pd.Series) -> pd.Series | bool:
    """False for the values another row has too (missing values pass: they are reported as
    empty); True, for the whole column, when no value repeats.

    A column of 100,000 values or more is first counted by DuckDB (`count(DISTINCT ...)`): 4.9M
    item ids 0.9 s on one core, where pyarrow's ``unique``, which pandera's ``unique=True``
    calls, took 2.5 s the first time in a process (0.9 s after).

    Examples
    --------
    >>> _each_once(pd.Series(["a", "b", "a", None])).tolist()
    [False, True, False, True]
    """
    arrow = _arrow_text(values)
    if arrow is not None and len(values) >= 100_000:
        import duckdb

        with duckdb.connect() as con:
            con.execute("SET threads TO 1")  # the tables are checked side by side
            con.register("column_values", pa.table({"v": arrow[0]}))
            distinct, present = con.execute(
                "SELECT count(DISTINCT v), count(v) FROM column_values"
            ).fetchone()
        if distinct == present:
            return True
    return ~values.duplicated(keep=False) | values.isna()


def _binary(required: bool = True) -> pandera.Column:
    """A pandera column of 0/1 flags."""
    import pandera.pandas as pandera

    return pandera.Column("Int64", pandera.Check.isin([0, 1]), nullable=False, required=required)


def _whole_number() -> pandera.Check:
    """A pandera check that numbers are whole."""
    import pandera.pandas as pandera

    return pandera.Check(lambda s: s % 1 == 0, name="whole_number")


def _once_per_key(frame: pd.DataFrame) -> pd.Series:
    """False for the rows sharing their learner, skill and wave with another row (missing
    values equal, as pandera's ``unique``); all True when a key column is missing.

    The key's columns are coded as integers and the rows counted by code, instead of
    ``frame.duplicated`` on the text: the schema check of 7M assessments of 1M learners took
    0.91 s instead of 2.28 s on one core.

    Examples
    --------
    >>> frame = pd.DataFrame({"learner_id": ["a", "a", "b"], "skill": ["s", "s", "s"],
    ...                       "wave": ["pre", "pre", "post"]})
    >>> _once_per_key(frame).tolist()
    [False, False, True]
    """
    if not set(ASSESSMENT_KEY) <= set(frame.columns):
        return pd.Series(True, index=frame.index)
    coded = [pd.factorize(frame[c], use_na_sentinel=False) for c in ASSESSMENT_KEY]
    size = math.prod(max(len(levels), 1) for _, levels in coded)
    if size >= 2**62:  # the combined code would not fit in 64 bits
        return ~frame[list(ASSESSMENT_KEY)].duplicated(keep=False)
    key = np.zeros(len(frame), dtype=np.int64)
    for codes, levels in coded:
        key = key * len(levels) + codes
    if size <= 8 * len(frame) + 1024:
        repeated = np.bincount(key, minlength=size)[key] > 1
    else:  # too many combinations to count by position
        repeated = pd.Series(key).duplicated(keep=False).to_numpy()
    return pd.Series(~repeated, index=frame.index)


def schemas(
    scale: tuple[float, float], waves: Sequence[str] = WAVES
) -> dict[str, pandera.DataFrameSchema]:
    """Return the pandera schema of each table for a skill scale ``(min, max)`` and the
    assessment waves a programme has (more than two waves need every ``assessed_on``: the
    waves are ordered by it)."""
    lo, hi = scale
    return dict(_schemas(float(lo), float(hi), tuple(waves)))


def prepare_schemas(scale: tuple[float, float], waves: Sequence[str] = WAVES) -> None:
    """Build the schemas and validate an empty table of each, before tables are checked side by
    side: pandera imports its modules and registers its back-ends on first use, which is not
    safe from several threads at once (two threads importing it deadlocked)."""
    for schema in schemas(scale, waves).values():
        columns = schema.columns.items()
        schema.validate(pd.DataFrame({n: pd.Series([], dtype=c.dtype.type) for n, c in columns}))


@functools.lru_cache(maxsize=8)
def _schemas(lo: float, hi: float, waves: tuple[str, ...]) -> dict[str, pandera.DataFrameSchema]:
    """The schemas of `schemas`, built once per scale and waves."""
    import pandera.pandas as pandera

    level = pandera.Check.in_range(lo, hi)
    return {
        "learners": pandera.DataFrameSchema(
            {
                "learner_id": _text(unique=True),
                "team_id": _text(),
                "manager_id": _text(),
                "cohort": _text(),
                "role": _text(),
                "tenure_months": pandera.Column(float, pandera.Check.ge(0), nullable=True),
                "coached": _binary(),
                "coaching_sessions": pandera.Column(
                    float, [pandera.Check.ge(0), _whole_number()], nullable=False
                ),
                "manager_coached": _binary(required=False),
                "coached_from": pandera.Column("datetime64[ns]", nullable=True, required=False),
            },
            strict=False,
            name="learners",
        ),
        "action_items": pandera.DataFrameSchema(
            {
                "learner_id": _text(),
                "item_id": _text(unique=True),
                "created_on": pandera.Column("datetime64[ns]", nullable=False),
                "due_on": pandera.Column("datetime64[ns]", nullable=False),
                "completed_on": pandera.Column("datetime64[ns]", nullable=True),
            },
            strict=False,
            name="action_items",
        ),
        "skill_assessments": pandera.DataFrameSchema(
            {
                "learner_id": _text(),
                "skill": _text(),
                "wave": pandera.Column(str, pandera.Check.isin(list(waves))),
                "assessed_on": pandera.Column("datetime64[ns]", nullable=len(waves) <= 2),
                "level": pandera.Column(float, level, nullable=True),
                "target_level": pandera.Column(float, level, nullable=False),
            },
            strict=False,
            name="skill_assessments",
            checks=pandera.Check(_once_per_key, name="multiple_fields_uniqueness"),
        ),
        "coaching_sessions": pandera.DataFrameSchema(
            {
                "learner_id": _text(),
                "session_on": pandera.Column("datetime64[ns]", nullable=False),
                "minutes": pandera.Column(
                    float, pandera.Check.ge(0), nullable=True, required=False
                ),
            },
            strict=False,
            name="coaching_sessions",
        ),
    }


EXPECTED = {
    "str_length": "a non-empty value",
    "field_uniqueness": "each value only once",
    "multiple_fields_uniqueness": "one row per learner, skill and wave",
    "not_nullable": "a value in every row (these rows are empty)",
    "isin": "one of the allowed values",
    "in_range": "a value on the skill scale",
    "greater_than_or_equal_to": "a number of at least 0",
    "whole_number": "a whole number",
}


@dataclass(frozen=True)
class ParsedTable:
    """A table after parsing: typed columns, and the problems found while parsing.

    `unreadable` maps a column to the index of the values that could not be read; they are
    missing in `frame` and already reported in `problems` (so `schema_problems` skips them).
    """

    frame: pd.DataFrame
    problems: tuple[Problem, ...]
    unreadable: dict[str, pd.Index] = field(default_factory=dict)
    notes: dict[str, int] = field(default_factory=dict)  # values changed while parsing, counted


def _rows(index: Iterable[int]) -> tuple[int, ...]:
    """Index values as the line numbers a spreadsheet shows."""
    return tuple(int(i) + 2 for i in index)


def _problem(source: str, column: str | None, message: str, bad: pd.Index, hint: str) -> Problem:
    """A `Problem` naming the first rows of `bad` and how many there are."""
    bad = pd.Index(bad).unique().sort_values()
    rows = _rows(bad[:5])
    return Problem(source, message, column=column, rows=rows, n_rows=len(bad), hint=hint)


def _show(value: object) -> str:
    """A value as quoted in a message (whole numbers without '.0', dates as YYYY-MM-DD)."""
    if isinstance(value, float | np.floating) and np.isfinite(value) and float(value).is_integer():
        value = int(value)
    elif isinstance(value, pd.Timestamp):
        value = value.strftime(DATE_FORMAT)
    return repr(str(value))


def _examples(values: pd.Series | Iterable[object]) -> str:
    """Up to three distinct values, quoted, for a message."""
    values = pd.Series(list(values), dtype=object).dropna()
    shown = list(dict.fromkeys(_show(v) for v in values))
    return ", ".join(shown[:3])


def _may_be_padded(chunk: pa.Array) -> bool:
    """Whether a value of `chunk` (pyarrow text) may begin or end with whitespace.

    Looks at the first and last byte of every value: whitespace is a byte up to 0x20, or a
    character of several bytes (0x80 and above in UTF-8), so ``False`` is certain and ``True``
    only possible (accented letters count too).
    """
    if not pa.types.is_large_string(chunk.type):
        return True
    if len(chunk) == 0 or chunk.buffers()[2] is None:
        return False  # no values, or only empty ones
    _, offsets, data = chunk.buffers()
    ends = np.frombuffer(offsets, dtype=np.int64)[chunk.offset : chunk.offset + len(chunk) + 1]
    starts, ends = ends[:-1], ends[1:]
    filled = ends > starts
    data = np.frombuffer(data, dtype=np.uint8)
    first, last = data[starts[filled]], data[ends[filled] - 1]
    return bool(((first <= 0x20) | (first >= 0x80) | (last <= 0x20) | (last >= 0x80)).any())


def strip_text(text: pd.Series) -> pd.Series:
    """``text.str.strip()``, sharing `text`'s memory when no value changes (the usual case)."""
    if text.dtype == "str" and text.dtype.storage == "pyarrow":
        values = text.array.__arrow_array__()
        if not any(_may_be_padded(chunk) for chunk in values.chunks):
            return text
        if pc.all(pc.equal(pc.utf8_trim_whitespace(values), values)).as_py() is not False:
            return text  # (all missing: None)
    return text.str.strip()


def distinct_values(text: pd.Series) -> tuple[pd.Series, np.ndarray | None]:
    """The distinct values of `text` and, per row, the position of its value among them.

    Exports repeat values a lot (dates, levels, codes), so values are parsed once each and
    spread back with `spread_values`. The distinct values include one missing value when `text` has
    any, so that a parser sees the same set of values as in the whole column (and infers the
    same result type). When values barely repeat, `text` itself is returned (positions None).
    """
    try:
        codes, uniques = pd.factorize(text)
    except TypeError:  # values that cannot be hashed (lists in a Parquet column)
        return text, None
    if 2 * len(uniques) > len(text):
        return text, None
    distinct = pd.Series(uniques, dtype=text.dtype)
    missing = codes < 0
    if missing.any():
        codes[missing] = len(uniques)
        distinct = pd.concat([distinct, pd.Series([np.nan], dtype=text.dtype)], ignore_index=True)
    return distinct, codes


def spread_values(values: pd.Series, codes: np.ndarray | None, index: pd.Index) -> pd.Series:
    """Values of distinct values (see `distinct_values`) spread back to the rows of `index`."""
    return values if codes is None else values.take(codes).set_axis(index)


def _numbers(text: pd.Series) -> pd.Series:
    """Text as finite numbers (NaN where it is not one)."""
    value = pd.to_numeric(text.str.strip(), errors="coerce").astype(float)
    return value.where(np.isfinite(value))


# A failure found while parsing a column: which of its (distinct) values fail, message, hint.
_Failure = tuple[pd.Series, str, str]
# A note on values changed while parsing: which of the (distinct) values, and what was done.
_Note = tuple[pd.Series, str]


@dataclass(frozen=True)
class Reading:
    """How the dates of a table are written, besides YYYY-MM-DD (from its params mapping)."""

    date_format: str | None = None
    dayfirst: bool = False


def _iso_dates(text: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Text written YYYY-MM-DD (a time after it is ignored) as dates; and which had a time."""
    stripped = text.str.strip()
    day = stripped.str.extract(f"^{DATE_PATTERN}$", expand=False)
    timed = day.notna() & (stripped.str.len() > day.str.len())
    return pd.to_datetime(day, format=DATE_FORMAT, errors="coerce"), timed


def _other_dates(text: pd.Series, reading: Reading) -> tuple[pd.Series, pd.Series]:
    """Dates written as `reading` says (day first, or a format); and which had a time."""
    stripped = text.str.strip()
    if reading.date_format:
        full = pd.to_datetime(stripped, format=reading.date_format, errors="coerce")
        return full.dt.normalize(), full.notna() & (full != full.dt.normalize())
    parts = stripped.str.extract(f"^{DMY}(?:[ T].*)?$")
    ymd = parts[2].str.zfill(4) + "-" + parts[1].str.zfill(2) + "-" + parts[0].str.zfill(2)
    parsed = pd.to_datetime(ymd, format=DATE_FORMAT, errors="coerce")
    return parsed, parsed.notna() & (
        stripped.str.len() > stripped.str.extract(f"^({DMY})")[0].str.len()
    )


def _date_failure(text: pd.Series, parsed: pd.Series, reading: Reading) -> _Failure:
    """Dates that cannot be read: the message names the params option that would read them."""
    bad = text.notna() & parsed.isna()
    if reading.date_format:
        return (
            bad,
            f"expected a real date written {reading.date_format} (date_format) or YYYY-MM-DD",
            "check the day and month exist, or correct 'date_format' in the parameters",
        )
    if reading.dayfirst:
        return (
            bad,
            "expected a real date written day/month/year or YYYY-MM-DD",
            "check the day and month exist",
        )
    if text[bad].str.strip().str.match(f"^{DMY}").any():
        return (
            bad,
            "expected a date written YYYY-MM-DD; dates such as 05/01/2026 are ambiguous (5 January "
            "or 1 May?)",
            "say how this table writes dates in the parameters: dayfirst: true (05/01/2026 is "
            '5 January) or date_format: "%m/%d/%Y" (1 May), for example '
            'action_items: {path: "items.csv", dayfirst: true}; or export dates as YYYY-MM-DD '
            "(for example 2026-03-31)",
        )
    return (
        bad,
        "expected a real date written YYYY-MM-DD",
        "export dates in ISO format (for example 2026-03-31) and check the day and month exist",
    )


def _parse_binary(
    text: pd.Series, col: str, table: str, reading: Reading
) -> tuple[pd.Series, list[_Failure], list[_Note]]:
    """0/1 flags from their accepted spellings (`YES`, `NO`)."""
    lowered = text.str.strip().str.lower()
    value = pd.Series(pd.NA, index=text.index, dtype="Int64")
    value[lowered.isin(YES)] = 1
    value[lowered.isin(NO)] = 0
    failure = (
        text.notna() & value.isna(),
        f"expected {BINARY_SPELLINGS}",
        f"code '{col}' as 1 (yes) or 0 (no) in every row",
    )
    mapped = value.notna() & ~lowered.isin(("0", "1"))
    return value, [failure], [(mapped, MAPPED_FLAGS)]


def _parse_number(
    text: pd.Series, col: str, table: str, reading: Reading
) -> tuple[pd.Series, list[_Failure], list[_Note]]:
    """Finite numbers."""
    value = _numbers(text)
    hint = "use plain numbers with a '.' decimal point and no units or text"
    if col in OPTIONAL_VALUES.get(table, ()):
        hint += "; leave the cell empty when there is no value"
    return value, [(text.notna() & value.isna(), "expected a number", hint)], []


def _parse_date(
    text: pd.Series, col: str, table: str, reading: Reading
) -> tuple[pd.Series, list[_Failure], list[_Note]]:
    """Dates written YYYY-MM-DD (or as `reading` says), within the range pandas holds."""
    parsed, timed = _iso_dates(text)
    notes: list[_Note] = []
    if reading.date_format or reading.dayfirst:
        other, other_timed = _other_dates(text, reading)
        used = parsed.isna() & other.notna()
        parsed, timed = parsed.where(~used, other), timed | (used & other_timed)
        what = (
            f"dates read with the format {reading.date_format}"
            if reading.date_format
            else DAY_FIRST
        )
        notes.append((used, what))
    notes.append((timed & parsed.notna(), TIMES_DROPPED))
    # dates are held to the nanosecond, which reaches from 1677-09-22 to 2262-04-11 only
    too_far = parsed.notna() & ((parsed < FIRST_DATE) | (parsed > LAST_DATE))
    value = parsed.where(~too_far).astype("datetime64[ns]")
    failures = [
        _date_failure(text, parsed, reading),
        (
            too_far,
            f"expected a date between {FIRST_DATE:%Y-%m-%d} and {LAST_DATE:%Y-%m-%d}",
            "check the year in these rows (a typing slip such as 2206 for 2026?)",
        ),
    ]
    return value, failures, notes


# the columns of each kind, and the parser of that kind (in the order they are parsed)
_PARSERS = (
    (BINARY_COLUMNS, _parse_binary),
    (NUMBER_COLUMNS, _parse_number),
    (DATE_COLUMNS, _parse_date),
)


def _distinct_text(values: pd.Series) -> tuple[pd.Series, np.ndarray | None]:
    """`distinct_values` of a column as text (missing values stay missing)."""
    if values.dtype != "str":
        values = values.astype("str").where(values.notna())
    return distinct_values(values)


def _parse_covariates(out: pd.DataFrame) -> None:
    """Further learner columns (covariates) as numbers when every value reads as one (in place).

    Other covariates stay text (categories).
    """
    known = set(REQUIRED_COLUMNS["learners"]) | set(BINARY_COLUMNS["learners"])
    for col in [c for c in out.columns if c not in known]:
        text, codes = _distinct_text(out[col])
        value = _numbers(text)
        if text.notna().any() and value.notna().sum() == text.notna().sum():
            out[col] = spread_values(value, codes, out.index)


def _count(mask: pd.Series, codes: np.ndarray | None) -> int:
    """Rows for which a mask over distinct values holds."""
    values = mask.to_numpy(dtype=bool)
    return int(values.sum() if codes is None else values[codes].sum())


def parse_table(
    table: str,
    frame: pd.DataFrame,
    source: str,
    *,
    date_format: str | None = None,
    dayfirst: bool = False,
) -> ParsedTable:
    """Turn text columns into numbers, dates and 0/1 flags, recording what cannot be read.

    `frame` holds text (as read from the file, empty cells missing); values that cannot be
    parsed become problems (one per column, with example rows), not silent missing values.
    Dates are written YYYY-MM-DD, or as `date_format` (strptime) or day first (`dayfirst`) say.
    Values changed on the way (yes/no as 1/0, times of day dropped, dates read day first) are
    counted in the result's ``notes``.
    """
    out = frame.copy(deep=False)  # copy on write: `frame` stays as it is
    index = out.index
    reading = Reading(date_format, dayfirst)
    problems: list[Problem] = []
    unreadable: dict[str, pd.Index] = {}
    notes: dict[str, int] = {}
    for columns, parse in _PARSERS:
        for col in [c for c in columns.get(table, ()) if c in out]:
            text, codes = _distinct_text(out[col])
            value, failures, changed = parse(text, col, table, reading)
            for mask, message, hint in failures:
                bad = index[spread_values(mask, codes, index).to_numpy(dtype=bool)]
                if len(bad):
                    unreadable[col] = unreadable[col].union(bad) if col in unreadable else bad
                    found = _examples(frame.loc[bad, col])
                    problems.append(_problem(source, col, f"{message}, found {found}", bad, hint))
            for mask, what in changed:
                if n := _count(mask, codes):
                    notes[what] = notes.get(what, 0) + n
            out[col] = spread_values(value, codes, index)
    if table == "learners":
        _parse_covariates(out)
    if table == "skill_assessments" and "wave" in out:
        text, codes = _distinct_text(out["wave"])
        out["wave"] = spread_values(text.str.strip().str.lower(), codes, index)
    return ParsedTable(out, tuple(problems), unreadable, notes)


# message and hint of a failed schema check, by check; filled in by `_describe_check`
_CHECK_TEXT = {
    "isin": ("expected one of {allowed}, found {found}", "fix these rows"),
    "in_range": (
        "expected a level on the skill scale {lo:g} to {hi:g}, found {found}",
        "check the scale (scale_min / scale_max in the parameters) or fix these rows",
    ),
    "field_uniqueness": (
        "expected each {column} only once; found repeated values such as {found}",
        "remove the duplicated rows from the export (all rows sharing a value are listed)",
    ),
    "not_nullable": ("expected {expected}", "fill in '{column}' in these rows, or remove the rows"),
    "str_length": ("expected {expected}", "fill in '{column}' in these rows, or remove the rows"),
    "greater_than_or_equal_to": (
        "expected a number of at least 0, found {found}",
        "fix these rows (negative values are not possible)",
    ),
    "whole_number": (
        "expected a whole number, found {found}",
        "'{column}' is a count: use whole numbers",
    ),
}
_WAVE_TEXT = (
    "expected 'pre' or 'post', found {found}",
    "use 'pre' for the assessment before the programme and 'post' for the one after (list any "
    "other waves in skill_waves in the parameters)",
)
_WAVES_TEXT = (
    "expected one of the waves in skill_waves ({allowed}), found {found}",
    "fix these rows, or add the wave to skill_waves in the parameters",
)
_DATE_TEXT = (
    "expected the date of every assessment (these rows are empty)",
    "with more than two assessment waves (skill_waves) the waves are ordered by assessed_on: "
    "fill it in in these rows",
)
_OTHER_CHECK_TEXT = ("expected {expected}, found {found}", "fix or remove these rows")


def _describe_check(
    column: str, name: str, check: str, cases: pd.DataFrame, scale: tuple[float, float]
) -> tuple[str, str]:
    """Message and hint of a failed schema check, with examples of the values that fail it."""
    if (name, column) == ("isin", "wave"):
        message, hint = _WAVE_TEXT if check == f"isin({list(WAVES)})" else _WAVES_TEXT
    elif (name, column) == ("not_nullable", "assessed_on"):
        message, hint = _DATE_TEXT
    else:
        message, hint = _CHECK_TEXT.get(name, _OTHER_CHECK_TEXT)
    fields = {
        "column": column,
        "found": _examples(cases["failure_case"]),
        "allowed": check[check.find("(") + 1 : check.rfind(")")],
        "expected": EXPECTED.get(name, check),
        "lo": scale[0],
        "hi": scale[1],
    }
    return message.format(**fields), hint.format(**fields)


def schema_problems(
    table: str,
    frame: pd.DataFrame,
    source: str,
    scale: tuple[float, float],
    *,
    waves: Sequence[str] = WAVES,
    unreadable: Mapping[str, pd.Index] | None = None,
) -> list[Problem]:
    """Validate a parsed table against its pandera schema; one `Problem` per column and check.

    Values listed in `unreadable` (column -> index, see `ParsedTable`) were already reported by
    `parse_table` and are not reported again as missing. Missing columns are reported when the
    file is read, and are skipped here.
    """
    from pandera.errors import SchemaErrors

    schema = schemas(scale, waves)[table]
    try:
        # pandera copies the frame unless told not to; a shallow copy (copy on write) keeps the
        # caller's frame untouched at no cost (the schemas coerce nothing)
        schema.validate(frame.copy(deep=False), lazy=True, inplace=True)
    except SchemaErrors as exc:
        cases = exc.failure_cases
    else:
        return []
    unreadable = unreadable or {}
    problems = []
    cases = cases.assign(check=cases["check"].astype(str), column=cases["column"].astype(str))
    cases = cases[cases["index"].notna()]
    key_rows = cases[cases["check"] == "multiple_fields_uniqueness"]
    cases = cases[cases["check"] != "multiple_fields_uniqueness"]
    for (column, check), group in cases.groupby(["column", "check"], sort=True):
        name = check.split("(")[0]
        if name in ("coerce_dtype", "dtype", "column_in_dataframe"):
            continue  # parse_table reports unreadable values; read_table reports missing columns
        if name == "field_uniqueness":
            group = group[group["failure_case"].notna()]  # empty cells are reported as empty
        if column in unreadable:
            group = group[~group["index"].isin(unreadable[column])]
        if group.empty:
            continue
        msg, hint = _describe_check(column, name, check, group, scale)
        problems.append(_problem(source, column, msg, pd.Index(group["index"].astype(int)), hint))
    # a key column missing from the table is reported when the file is read
    if not key_rows.empty and set(ASSESSMENT_KEY) <= set(frame.columns):
        index = pd.Index(key_rows["index"].astype(int).unique())
        keys = frame.loc[
            index, list(ASSESSMENT_KEY)
        ].dropna()  # rows lacking a key part are reported as empty
        if len(keys):
            shown = " / ".join(str(v) for v in keys.iloc[0])
            problems.append(
                _problem(
                    source,
                    None,
                    f"expected one row per learner, skill and wave (columns {', '.join(ASSESSMENT_KEY)}); "
                    f"found repeated rows such as '{shown}'",
                    keys.index,
                    "remove the duplicated assessments from the export (all rows sharing a "
                    "learner, skill and wave are listed)",
                )
            )
    return problems


def _arrow_text(*series: pd.Series) -> list[pa.ChunkedArray] | None:
    """The series as pyarrow arrays when every one holds text held by pyarrow, else None."""
    if not all(s.dtype == "str" and s.dtype.storage == "pyarrow" for s in series):
        return None
    return [pa.chunked_array(s.array.__arrow_array__()) for s in series]


def positions(values: pd.Series, keys: pd.Series) -> np.ndarray:
    """The position of each value in `keys` (unique), -1 where it is absent (or missing).

    Text held by pyarrow is looked up by pyarrow's hash table (4.9M learner ids of action items
    among 1M learners: 0.45 s, against 1.3 s by pandas' factorize); other values by looking
    up the distinct values once, much cheaper than ``values.map(...)`` on millions of rows.

    Examples
    --------
    >>> positions(pd.Series(["b", "a", "b", "z"]), pd.Series(["a", "b"])).tolist()
    [1, 0, 1, -1]
    """
    arrow = _arrow_text(values, keys)
    if arrow is not None:
        found = pc.index_in(arrow[0], value_set=arrow[1].combine_chunks(), skip_nulls=True)
        return pc.fill_null(found, -1).to_numpy().astype(np.int64, copy=False)
    codes, distinct = pd.factorize(values)
    found = pd.Index(keys).get_indexer(distinct)
    return np.where(codes >= 0, found[codes], -1)


def is_in(values: pd.Series, known: pd.Series) -> np.ndarray:
    """``values.isin(set(known))`` as a boolean array; by pyarrow when both hold text.

    (pandas' `isin` on text held by pyarrow turns every known value into a Python object.)
    """
    arrow = _arrow_text(values, known)
    if arrow is not None:
        found = pc.is_in(arrow[0], value_set=arrow[1].combine_chunks())
        return np.asarray(found, dtype=bool)
    return values.isin(set(known)).to_numpy(dtype=bool)


def cross_table_problems(
    learners: pd.DataFrame,
    action_items: pd.DataFrame,
    skill_assessments: pd.DataFrame,
    sources: dict[str, str],
    *,
    treatment: str = "coached",
    unknown_learners: bool = True,
) -> list[Problem]:
    """Checks that span tables or columns: unknown learners, date order, coaching counts.

    Missing or unreadable values (reported elsewhere) are never reported again here. Rows naming
    unknown learners are looked for only when `unknown_learners` (not once they were excluded).
    """
    problems: list[Problem] = []
    if unknown_learners and "learner_id" in learners and learners["learner_id"].notna().all():
        known = learners["learner_id"]
        for table, frame in (
            ("action_items", action_items),
            ("skill_assessments", skill_assessments),
        ):
            if "learner_id" not in frame:
                continue
            bad = frame.index[~is_in(frame["learner_id"], known) & frame["learner_id"].notna()]
            if len(bad):
                problems.append(
                    _problem(
                        sources[table],
                        "learner_id",
                        f"{len(bad)} row(s) name learners that are not in the learners table "
                        f"({sources['learners']}), such as {_examples(frame.loc[bad, 'learner_id'])}",
                        bad,
                        "export the learners table and this table from the same population "
                        "(or at the same time)",
                    )
                )
    items = action_items
    for later, earlier in (("due_on", "created_on"), ("completed_on", "created_on")):
        if not {later, earlier} <= set(items):
            continue
        bad = items.index[(items[later] < items[earlier]).fillna(False).astype(bool)]
        if len(bad):
            problems.append(
                _problem(
                    sources["action_items"],
                    later,
                    f"'{later}' is before '{earlier}', which is not possible",
                    bad,
                    "check the dates in these rows (day and month swapped?)",
                )
            )
    if treatment == "coached":
        problems.extend(coaching_problems(learners, sources["learners"]))
    return problems


def coaching_problems(learners: pd.DataFrame, source: str) -> list[Problem]:
    """Learners marked not coached who have coaching sessions or a coaching start date."""
    problems = []
    if "coached" not in learners:
        return problems
    not_coached = learners["coached"] == 0
    checks = []
    if "coaching_sessions" in learners:
        sessions = learners["coaching_sessions"]
        # fractional counts are reported by the schema already; judge only whole numbers here
        checks.append(
            (
                "coaching_sessions",
                not_coached & (sessions > 0) & (sessions == sessions.round()),
                "learners marked not coached (coached = 0) have coaching sessions (expected 0)",
                "set coached = 1 for them, or their session count to 0",
            )
        )
    if "coached_from" in learners:
        checks.append(
            (
                "coached_from",
                not_coached & learners["coached_from"].notna(),
                "learners marked not coached (coached = 0) have a coaching start date",
                "set coached = 1 for them, or leave coached_from empty",
            )
        )
    for column, mask, message, hint in checks:
        bad = learners.index[mask.fillna(False).astype(bool)]
        if len(bad):
            problems.append(_problem(source, column, message, bad, hint))
    return problems
