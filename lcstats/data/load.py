"""Reading the input tables (CSV or Parquet), mapping column names, and checking the contract.

Every value is read as text first (so nothing is silently turned into a number, a date or a
missing value), with the row numbers a spreadsheet shows; `lcstats.data.contract` then parses and
checks the tables, and every problem found in every file is reported at once.
"""

from __future__ import annotations

import array
import codecs
import contextlib
import csv
import difflib
import gc
import hashlib
import io
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from lcstats.core.display import summary_html
from lcstats.core.errors import InputError, Problem
from lcstats.core.options import TABLES, UNKNOWN_LEARNERS, check_choice
from lcstats.core.resources import check_input_size
from lcstats.core.threads import calls_side_by_side, side_by_side, usable_cores
from lcstats.data.contract import (
    BINARY_COLUMNS,
    REQUIRED_COLUMNS,
    TABLE_KEYS,
    WAVES,
    cross_table_problems,
    distinct_values,
    is_in,
    parse_table,
    prepare_schemas,
    schema_problems,
    spread_values,
    strip_text,
)
from lcstats.data.sessions import DERIVED_COLUMNS, derive_coaching
from lcstats.data.typed import as_text, read_excel, read_parquet
from lcstats.params import EXCEL_SUFFIXES, TableSpec, as_spec

SEPARATORS = ((";", "semicolons"), ("\t", "tabs"), ("|", "'|' characters"))
BOM = codecs.BOM_UTF8
# text as pandas holds it by default (pandas >= 3: "str", stored by pyarrow, missing is NaN)
TEXT = pd.StringDtype("pyarrow", na_value=np.nan)
_QUOTE, _COMMA, _LF, _CR = b'"'[0], b","[0], b"\n"[0], b"\r"[0]
# input files read side by side from this size (about 200,000 learners of CSV; smaller inputs
# read faster one after the other: threads then contend for the interpreter lock)
SIDE_BY_SIDE_BYTES = 100 << 20
RELEASE_AFTER_VALUES = 1_000_000  # tables with fewer values are not worth `_release_memory`
STRICT_CHUNK_ROWS = 1 << 16  # rows the strict reader holds as Python text at once
_CHUNK = 1 << 22  # bytes looked at at once when checking quotes and encoding (bounds the memory)


@dataclass(frozen=True)
class SourceFile:
    """Where a table came from, and what reading it did.

    ``path`` is the file, or for a database a description without credentials (see
    `lcstats.data.sources`); ``sha256`` is the file's bytes (for a database: the fingerprint of
    the rows read); ``fingerprint`` is the SHA-256 of the validated rows in key order, the same
    whatever the source; ``notes`` counts values changed while reading (spaces trimmed, times of
    day dropped, yes/no written as 1/0, a byte-order mark removed).
    """

    table: str
    path: str
    sha256: str
    rows_read: int
    kind: str = "file"  # file | duckdb | postgres | spark
    fingerprint: str = ""
    notes: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Programme:
    """The three validated input tables of one programme, with their sources.

    Build it with `load_programme`; the frames have canonical column names and parsed types.
    """

    learners: pd.DataFrame
    action_items: pd.DataFrame
    skill_assessments: pd.DataFrame
    sources: dict[str, SourceFile]
    scale: tuple[float, float]
    excluded: dict[str, dict[str, int]] = field(default_factory=dict)  # by table, rows by reason
    coaching_sessions: pd.DataFrame | None = None  # the session log used, when one was given
    activity: Any = None  # an `lcstats.data.activity.ActivitySummary`, when a log was given

    def table(self, name: str) -> pd.DataFrame:
        """Return a table by its canonical name."""
        return getattr(self, name)

    def __repr__(self) -> str:
        return (
            f"Programme({len(self.learners):,} learners, {len(self.action_items):,} action items, "
            f"{len(self.skill_assessments):,} skill assessments)"
        )

    def _repr_html_(self) -> str:
        learners = self.learners
        coached = int(learners["coached"].sum()) if "coached" in learners else None
        lines = [
            f"{len(self.action_items):,} action items, {len(self.skill_assessments):,} skill "
            "assessments"
            + (", a coaching-session log" if self.coaching_sessions is not None else "")
            + (
                f", an activity log ({self.activity.rows_used:,} events used)"
                if self.activity
                else ""
            ),
            *(
                f"{table}: {n:,} rows left out ({reason})"
                for table, reasons in self.excluded.items()
                for reason, n in reasons.items()
                if n
            ),
        ]
        sources = pd.DataFrame(
            {
                "table": [s.table for s in self.sources.values()],
                "from": [s.kind for s in self.sources.values()],
                "rows read": [s.rows_read for s in self.sources.values()],
                "location": [s.path for s in self.sources.values()],
                "sha256": [s.sha256[:12] for s in self.sources.values()],
            }
        )
        headline = f"Programme: {len(learners):,} learners" + (
            f", {coached:,} coached" if coached is not None else ""
        )
        return summary_html(headline, lines, {"Sources": sources})


def _norm(name: str) -> str:
    """A column name compared loosely: stripped, lower case, spaces and dashes as '_'."""
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


def _closest(name: str, candidates: list[str]) -> str | None:
    """The candidate that `name` most probably means (same name up to case, spaces or a typo)."""
    normed = {_norm(c): c for c in reversed(candidates)}
    if _norm(name) in normed:
        return normed[_norm(name)]
    match = difflib.get_close_matches(_norm(name), list(normed), n=1, cutoff=0.6)
    return normed[match[0]] if match else None


def _listing(columns: list[str], limit: int = 15) -> str:
    """Column names quoted and listed, the first `limit` of them."""
    shown = ", ".join(f"'{c}'" for c in columns[:limit])
    return shown + (f" and {len(columns) - limit} more" if len(columns) > limit else "")


def _decode(raw: bytes, source: str) -> str:
    """UTF-8 bytes as text; `InputError` naming the first byte that is not UTF-8."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError(
            Problem(
                source,
                f"the file is not UTF-8 text: byte 0x{raw[exc.start]:02x} on line {line} cannot be read "
                "(the file was probably saved as Latin-1/Windows text)",
                rows=(line,),
                n_rows=1,
                hint="save or export it as 'CSV UTF-8'",
            )
        ) from None


def _check_text(raw: bytes, source: str, table: str) -> None:
    """Raise the problem `_decode` would for bytes that are not UTF-8, or the file is blank.

    Decodes piece by piece, so that the text is never held whole.
    """
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    view = memoryview(raw)
    blank = True
    try:
        for lo in range(0, len(raw), _CHUNK):
            if decoder.decode(view[lo : lo + _CHUNK]).strip():
                blank = False
        if decoder.decode(b"", final=True).strip():
            blank = False
    except UnicodeDecodeError:
        _decode(raw, source)  # raises the problem, naming the byte and its line
    if blank:
        raise InputError(_empty(source, table))


def _text_columns(rows: list[list[str]]) -> list[pa.Array]:
    """Rows of text as one pyarrow text array per column."""
    return [pa.array(values, type=pa.large_string()) for values in zip(*rows, strict=True)]


def _csv_records(raw: bytes, source: str) -> Iterator[tuple[int, list[str]]]:
    """The non-blank rows of CSV bytes (UTF-8), each with the line it starts on.

    Raises `InputError` naming the line of a row the `csv` module cannot read.
    """
    lines = io.TextIOWrapper(io.BytesIO(raw), encoding="utf-8-sig", newline="")
    reader = csv.reader(lines, skipinitialspace=True, strict=True)
    line = 1
    try:
        for record in reader:
            start, line = line, reader.line_num + 1
            if any(f.strip() for f in record):  # else a blank line (before the header too)
                yield start, record
    except csv.Error as exc:
        raise InputError(
            Problem(
                source,
                f"not a readable CSV file: {exc} (in the row starting on line {line})",
                rows=(line,),
                n_rows=1,
                hint="check the quotes in this row: a value containing a quote must be in double "
                'quotes with the quote doubled ("")',
            )
        ) from None


def _csv_columns(
    records: Iterator[tuple[int, list[str]]], width: int
) -> tuple[list[pa.ChunkedArray], array.array, list[int]]:
    """The data rows as text columns of `width` values a row, their index, and overlong rows.

    Short rows are padded with empty values and long ones cut; the lines of rows whose values
    beyond `width` are not all empty are returned last. Rows become pyarrow columns
    `STRICT_CHUNK_ROWS` at a time.
    """
    rows: list[list[str]] = []
    chunks: list[list[pa.Array]] = []
    index = array.array("q")
    too_long: list[int] = []
    for start, record in records:
        if len(record) > width:
            if any(f.strip() for f in record[width:]):
                too_long.append(start)
            record = record[:width]
        elif len(record) < width:
            record += [""] * (width - len(record))
        rows.append(record)
        index.append(start - 2)
        if len(rows) == STRICT_CHUNK_ROWS:
            chunks.append(_text_columns(rows))
            rows = []
    if rows:
        chunks.append(_text_columns(rows))
    columns = [pa.chunked_array([c[i] for c in chunks], pa.large_string()) for i in range(width)]
    return columns, index, too_long


def _check_separator(name: str, source: str) -> None:
    """Raise `InputError` when the name of a file's only column holds another separator."""
    for sep, sep_name in SEPARATORS:
        if sep in name:
            raise InputError(
                Problem(
                    source,
                    f"the columns are separated by {sep_name}, expected commas",
                    hint="export as comma-separated CSV (in Excel: 'CSV UTF-8 (Comma delimited)')",
                )
            )


def _read_csv_text(raw: bytes, source: str, table: str) -> pd.DataFrame:
    """Parse CSV bytes (UTF-8) into a frame of text whose index is the line number minus 2.

    The strict reader: Python's `csv` module, row by row, so that every problem names its line.
    Rows become pyarrow columns `STRICT_CHUNK_ROWS` at a time, and the text is decoded as it
    is read, so that the memory needed stays near that of the file's values.
    """
    records = _csv_records(raw, source)
    first = next(records, None)
    if first is None:
        raise InputError(
            Problem(source, "the file is empty", hint=f"export the {table} table again")
        )
    header = [h.strip() for h in first[1]]
    columns, index, too_long = _csv_columns(records, len(header))
    if len(header) == 1:
        _check_separator(header[0], source)
    if too_long:
        raise InputError(
            Problem(
                source,
                f"{len(too_long)} row(s) have more values than the header has columns ({len(header)})",
                rows=tuple(too_long[:5]),
                n_rows=len(too_long),
                hint="a value probably contains a comma: put such values in double quotes, "
                "or remove the extra values",
            )
        )
    frame = pd.DataFrame(
        {i: TEXT.__from_arrow__(column) for i, column in enumerate(columns)},
        index=pd.Index(np.frombuffer(index, dtype=np.int64), dtype="int64"),
        copy=False,
    )
    frame.columns = header
    return frame


def _is_utf8(raw: bytes, start: int, end: int) -> bool:
    """Whether ``raw[start:end]`` is UTF-8 text (decoded piece by piece: no copy of the file)."""
    if raw.isascii():
        return True
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(raw)
    try:
        for lo in range(start, end, _CHUNK):
            decoder.decode(view[lo : min(lo + _CHUNK, end)])
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _quotes_are_plain(raw: bytes, start: int, end: int) -> bool:
    """Whether every double quote in ``raw[start:end]`` belongs to a plainly quoted value.

    Plainly quoted: the opening quote comes right after a comma or a line break (or at the
    start), quotes inside are doubled (``""``), and the closing quote comes right before a comma,
    a line break or the end. The strict reader and pyarrow read such values alike; anything else
    (a quote after a space, inside an unquoted value, text after a closing quote, an unbalanced
    quote) is left to the strict reader. Quote number ``k`` (from 0) opens a value when ``k`` is
    even, and closes it or doubles a quote when ``k`` is odd.
    """
    data = np.frombuffer(raw, dtype=np.uint8)
    may_precede = np.array([_COMMA, _LF, _CR], dtype=np.uint8)
    may_follow = np.array([_QUOTE, _COMMA, _LF, _CR], dtype=np.uint8)
    seen, last = 0, -2
    for lo in range(start, end, _CHUNK):
        pos = np.flatnonzero(data[lo : min(lo + _CHUNK, end)] == _QUOTE) + lo
        if not len(pos):
            continue
        opens = (np.arange(seen, seen + len(pos)) % 2) == 0
        before = np.where(pos > start, data[pos - 1], _LF)
        after = np.where(pos + 1 < end, data[np.minimum(pos + 1, end - 1)], _LF)
        doubled = np.concatenate(([last], pos[:-1])) + 1 == pos  # the second quote of ""
        ok = np.where(opens, np.isin(before, may_precede) | doubled, np.isin(after, may_follow))
        if not ok.all():
            return False
        seen, last = seen + len(pos), int(pos[-1])
    return seen % 2 == 0


def _plain_bytes(raw: bytes, start: int, end: int) -> bool:
    """Whether ``raw[start:end]`` is UTF-8 text without NUL bytes or lone carriage returns."""
    if raw.find(b"\x00") != -1:
        return False
    if raw.find(b"\r", start, end) != -1 and raw.count(b"\r", start, end) != raw.count(
        b"\r\n", start, end
    ):
        return False  # a lone carriage return ends a line for the strict reader
    return _is_utf8(raw, start, end)


def _plain_header(raw: bytes, start: int, first: int) -> list[str] | None:
    """The column names of the header line ``raw[start:first]``; ``None`` when unsure.

    Unsure: the `csv` module cannot read the line, or it has fewer than two columns (the strict
    reader tells a one-column file from one with other separators).
    """
    try:
        line = raw[start:first].decode("utf-8")
        header = next(csv.reader([line], skipinitialspace=True, strict=True))
    except (csv.Error, StopIteration):
        return None
    return header if len(header) >= 2 else None


def _arrow_text_table(
    raw: bytes, first: int, end: int, n_columns: int, *, quoted: bool
) -> pa.Table | None:
    """The data rows ``raw[first + 1:end]`` read as text by pyarrow; ``None`` when unsure.

    Unsure: rows with more or fewer values than the header (or what else pyarrow refuses),
    blank lines or line breaks inside quoted values, and values longer than the `csv` module's
    field limit.
    """
    names = [f"f{i}" for i in range(n_columns)]
    body = pa.py_buffer(raw).slice(first + 1, end - first - 1)
    try:
        table = pa_csv.read_csv(
            pa.BufferReader(body),
            read_options=pa_csv.ReadOptions(column_names=names),
            parse_options=pa_csv.ParseOptions(newlines_in_values=quoted, ignore_empty_lines=True),
            convert_options=pa_csv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.large_string()),
                null_values=[],
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
                check_utf8=False,  # checked by `_plain_bytes`
            ),
        )
    except pa.ArrowException:
        return None  # rows with more or fewer values than the header, and what else pyarrow refuses
    if table.num_rows != raw.count(b"\n", first + 1, end) + 1:
        return None  # blank lines, or line breaks inside quoted values
    limit = csv.field_size_limit()  # longer values are an error for the strict reader
    if any((pc.max(pc.binary_length(column)).as_py() or 0) > limit for column in table.columns):
        return None
    return table


def _read_csv_fast(raw: bytes) -> pd.DataFrame | None:
    """Read plain CSV bytes with pyarrow, as `_read_csv_text` would; ``None`` when unsure.

    Every value is read as text (nothing converted, no value missing). The result equals the
    strict reader's once `_clean` has run and rows left wholly empty are dropped (see
    `read_table`). Files the two might read differently are refused (``None``), so that the
    strict reader reads them and reports their problems as always: not UTF-8, NUL bytes, lone
    carriage returns, quotes other than plain quoted values, a header of fewer than two columns,
    no data rows, rows with more or fewer values than the header, values longer than the `csv`
    module's field limit, blank lines (pyarrow skips them, which would shift the row numbers)
    and line breaks inside quoted values (one row per line is what keeps the index equal to the
    line number minus 2).
    """
    start = len(BOM) if raw.startswith(BOM) else 0
    end = len(raw)
    while end > start and raw[end - 1] in (_LF, _CR):
        end -= 1  # trailing line breaks (blank lines at the end shift no row)
    first = raw.find(b"\n", start, end)  # the end of the header line
    if first == -1 or not _plain_bytes(raw, start, end):
        return None
    quoted = raw.find(b'"', start, end) != -1
    if quoted and not _quotes_are_plain(raw, start, end):
        return None
    header = _plain_header(raw, start, first)
    if header is None:
        return None
    table = _arrow_text_table(raw, first, end, len(header), quoted=quoted)
    if table is None:
        return None
    frame = pd.DataFrame(
        {i: TEXT.__from_arrow__(table.column(i)) for i in range(table.num_columns)},
        index=pd.RangeIndex(table.num_rows),
        copy=False,
    )
    frame.columns = [h.strip() for h in header]
    return frame


def _release_memory(frame: pd.DataFrame) -> None:
    """Free what the last step on `frame` left behind, and hand it back to the system.

    Validation leaves reference cycles holding whole columns (pandera's and pandas' objects
    refer to each other), which Python's cycle collector may not visit for a long while; and
    pyarrow's allocator keeps the memory it freed for later, which numpy cannot use. Without
    this, a load holds about the peak of every step at once (measured at 1,000,000 learners).
    Small tables are skipped: a collection takes some 40 ms, longer than their whole load.
    """
    if frame.size >= RELEASE_AFTER_VALUES:
        release_memory()


def release_memory() -> None:
    """Collect reference cycles and hand pyarrow's freed memory back to the system."""
    gc.collect()
    pa.default_memory_pool().release_unused()


def _drop_blank_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Without the rows whose every value is missing (the strict reader skips such lines)."""
    blank = None
    for i in range(frame.shape[1]):
        missing = frame.iloc[:, i].isna().to_numpy()
        blank = missing if blank is None else blank & missing
        if not blank.any():
            return frame
    return frame if blank is None else frame[~blank]


def _read_csv(raw: bytes, source: str, table: str) -> tuple[pd.DataFrame, bool]:
    """Read CSV bytes as text: quickly when `_read_csv_fast` can, else with the strict reader.

    Returns the frame and whether it came from the fast reader (whose wholly empty rows must be
    dropped after `_clean`).
    """
    frame = _read_csv_fast(raw)
    if frame is not None:
        return frame, True
    _check_text(raw, source, table)
    return _read_csv_text(raw, source, table), False


def _cleaned(
    frame: pd.DataFrame, source: str, *, fast: bool, notes: dict[str, int] | None = None
) -> pd.DataFrame:
    """`_clean`, and for the fast reader (or a typed source) without rows left wholly empty."""
    frame = _clean(frame, source, notes)
    if fast:
        frame = _drop_blank_rows(frame)
    _release_memory(frame)
    return frame


def _empty(source: str, table: str) -> Problem:
    """The problem of a file without any content."""
    return Problem(
        source,
        "the file is empty (0 bytes or only blank lines)",
        hint=f"export the {table} table again",
    )


TRIMMED = "spaces trimmed after values"
BOM_REMOVED = "byte-order mark removed from the start of the file"


def _clean(frame: pd.DataFrame, source: str, notes: dict[str, int] | None = None) -> pd.DataFrame:
    """Stripped text names and values; empty cells missing; empty unnamed columns dropped.

    Values whose spaces were trimmed are counted in `notes`. Raises `InputError` when two
    columns have the same name.
    """
    columns: dict[str, pd.Series] = {}
    names: list[str] = []
    notes = {} if notes is None else notes
    for i in range(frame.shape[1]):
        name = str(frame.columns[i]).strip()
        values = frame.iloc[:, i]
        if values.dtype != "str":  # each distinct value written once
            distinct, codes = distinct_values(values)
            text = distinct.astype("str").where(distinct.notna())
            values = spread_values(text, codes, values.index)
        text = strip_text(values)
        if text is not values:
            # spaces before a value are CSV layout (after a comma), not counted
            changed = int(((values.str.lstrip(" ") != text) & (text != "")).fillna(False).sum())
            if changed:
                notes[TRIMMED] = notes.get(TRIMMED, 0) + changed
        empty = text == ""
        if empty.any():
            text = text.where(~empty)
        if not name or name.startswith("Unnamed: "):
            if text.isna().all():
                continue  # a trailing separator in the header, or an empty index column
            name = f"column_{i + 1}"
        names.append(name)
        columns[name] = text
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise InputError(
            [
                Problem(
                    source,
                    f"the column '{name}' appears {names.count(name)} times in the header",
                    column=name,
                    hint="keep one of them, or rename the others",
                )
                for name in repeated
            ]
        )
    return pd.DataFrame(columns, index=frame.index)


def _map_columns(
    frame: pd.DataFrame, table: str, columns: dict[str, str], source: str
) -> tuple[pd.DataFrame, list[Problem]]:
    """`frame` with the columns the parameters map renamed to their canonical names; problems."""
    problems = []
    present = list(frame.columns)
    rename = {}
    for canon, theirs in columns.items():
        theirs = str(theirs).strip()
        if theirs == canon:
            continue
        if theirs not in frame:
            if canon in frame:
                continue  # the file already uses the canonical name
            close = _closest(theirs, present)
            problems.append(
                Problem(
                    source,
                    f"the parameters map column '{canon}' to '{theirs}', which is not in the file",
                    column=canon,
                    hint=f"did you mean '{close}'? Correct 'columns: {{{table}: {{{canon}: ...}}}}' in the parameters"
                    if close
                    else f"the file has the columns {_listing(present)}",
                )
            )
        elif canon in frame:
            problems.append(
                Problem(
                    source,
                    f"the parameters map column '{canon}' to '{theirs}', but the file has both '{canon}' "
                    f"and '{theirs}'",
                    column=canon,
                    hint=f"remove the mapping of '{canon}' from the parameters, or the extra column from the file",
                )
            )
        else:
            rename[theirs] = canon
    return frame.rename(columns=rename), problems


def _read_bytes(path: Path, table: str) -> bytes:
    """The bytes of an input file; `InputError` when it is a folder, missing or cannot be opened."""
    source = str(path)
    if path.is_dir():
        raise InputError(
            Problem(
                source,
                f"this is a folder, expected the {table} file",
                hint="check the path in the parameters file",
            )
        )
    if not path.is_file():
        raise InputError(
            Problem(
                source,
                f"the {table} file does not exist",
                hint="check the path in the parameters file",
            )
        )
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputError(
            Problem(
                source,
                f"the {table} file cannot be opened ({exc.strerror or exc})",
                hint="check that you may read the file and that no other program locks it",
            )
        ) from None


FILE_TYPES = (".csv", ".txt", ".parquet", *EXCEL_SUFFIXES)


def _read_file(
    path: Path, table: str, sheet: str | int | None = None
) -> tuple[pd.DataFrame, str, dict[str, int]]:
    """A file's values as clean text (see `read_table`), the SHA-256 of its bytes, and notes.

    The reader is chosen by the file type. Raises `InputError` when the file is missing, of an
    unsupported type, empty or unreadable, or has no data rows.
    """
    source = str(path)
    raw = _read_bytes(path, table)
    digest = hashlib.sha256(raw).hexdigest()
    suffix = path.suffix.lower()
    if suffix not in FILE_TYPES:
        raise InputError(
            Problem(
                source,
                f"unsupported file type '{suffix or path.name}'",
                hint="use a .csv, .parquet or Excel (.xlsx) file, or a database source",
            )
        )
    if not raw or raw.isspace():  # (raw.strip() would copy the file)
        raise InputError(_empty(source, table))
    notes: dict[str, int] = {BOM_REMOVED: 1} if raw.startswith(BOM) else {}
    fast = True  # typed sources may have wholly empty rows (Excel): dropped like the fast reader's
    if suffix == ".parquet":
        frame = read_parquet(raw, source)
    elif suffix in EXCEL_SUFFIXES:
        frame = read_excel(raw, source, sheet)
    else:
        frame, fast = _read_csv(raw, source, table)
    del raw  # the file's bytes are no longer needed: free them before cleaning
    frame = _cleaned(frame, source, fast=fast, notes=notes)
    if frame.empty:
        raise InputError(
            Problem(
                source,
                "the file has a header but no data rows",
                hint=f"export the {table} table again",
            )
        )
    return frame, digest, notes


def _read_database(spec: TableSpec, table: str) -> tuple[pd.DataFrame, SourceFile]:
    """A database table as clean text in key order (rows numbered from 0), and its source."""
    from lcstats.data.sources import read_source_table

    typed, source = read_source_table(spec, table, where=f"{table} (source)")
    where = source.describe(spec)
    notes: dict[str, int] = {}
    frame = _cleaned(as_text(typed), where, fast=True, notes=notes)
    if frame.empty:
        raise InputError(
            Problem(where, f"the {table} table has no rows", hint="check the table or the query")
        )
    keys = [k for k in TABLE_KEYS[table] if k in frame]
    if keys:
        frame = frame.sort_values(keys, kind="stable", ignore_index=True)
    return frame, SourceFile(table, where, "", len(frame), kind=source.engine, notes=notes)


def _missing_columns(
    frame: pd.DataFrame, table: str, source: str, *, mapped: set[str | None]
) -> list[Problem]:
    """Problems for the contract's columns of `table` that are neither in `frame` nor in `mapped`."""
    present = list(frame.columns)
    canonical = set(REQUIRED_COLUMNS[table]) | set(BINARY_COLUMNS.get(table, ()))
    spare = [c for c in present if c not in canonical]  # columns that may be misnamed ones
    problems = []
    for col in REQUIRED_COLUMNS[table]:
        if col in frame or col in mapped:
            continue
        close = _closest(col, spare)
        hint = (
            f"rename '{close}' to '{col}', or map it in the parameters: columns: {{{table}: {{{col}: '{close}'}}}}"
            if close
            else f"add the column, or map yours in the parameters: columns: {{{table}: {{{col}: <your column>}}}}; "
            f"the file has {_listing(present)}"
        )
        problems.append(
            Problem(source, f"required column '{col}' is missing", column=col, hint=hint)
        )
    return problems


def _missing_named_columns(
    frame: pd.DataFrame,
    table: str,
    required: tuple[str, ...],
    source: str,
    *,
    mapped: set[str | None],
) -> list[Problem]:
    """Problems for the further columns the parameters name (`required`) that are not in `frame`."""
    present = list(frame.columns)
    problems = []
    for col in dict.fromkeys(required):
        if col in frame or col in REQUIRED_COLUMNS[table] or col in mapped:
            continue
        close = _closest(col, present)
        problems.append(
            Problem(
                source,
                f"column '{col}' is named in the parameters (treatment, covariates or cluster) but is not in the file",
                column=col,
                hint=f"did you mean '{close}'? Correct the parameters, or rename the column"
                if close
                else f"remove it from the parameters or add the column; the file has {_listing(present)}",
            )
        )
    return problems


def read_table(
    path: str | Path | TableSpec,
    table: str,
    *,
    columns: dict[str, str] | None = None,
    required: tuple[str, ...] = (),
    optional: tuple[str, ...] = (),
) -> tuple[pd.DataFrame, SourceFile]:
    """Read one input table as text with canonical column names.

    Every value is stripped text (empty cells are missing); the index holds the CSV line number
    minus 2 (so blank lines do not shift the row numbers in problems); a table from a database
    is in key order, numbered from 0.

    Parameters
    ----------
    path : str, Path or TableSpec
        A ``.csv``, ``.parquet`` or Excel file, or a `TableSpec` (a file with its sheet, or a
        database table or query).
    table : {"learners", "action_items", "skill_assessments"}
        Which table of the contract this is.
    columns : dict, optional
        Canonical column name -> the column's name in this file.
    required : tuple of str
        Further columns the parameters name (treatment, covariates, cluster) that must be present.
    optional : tuple of str
        Columns of the contract that may be absent because they are derived from another input
        (``coaching_sessions`` and ``coached`` from a coaching-session log).

    Raises
    ------
    InputError
        When the file is missing, empty, unreadable or lacks a required column.
    """
    if table not in CONTRACT_TABLES:
        raise ValueError(
            f"table={table!r} is not allowed; choose one of {', '.join(CONTRACT_TABLES)}"
        )
    spec = as_spec(str(path)) if isinstance(path, str | Path) else path
    if spec.is_file:
        frame, digest, notes = _read_file(Path(spec.path), table, spec.sheet)
        src = SourceFile(table, str(spec.path), digest, len(frame), notes=notes)
    else:
        frame, src = _read_database(spec, table)
    frame, problems = _map_columns(frame, table, columns or {}, src.path)
    mapped = {p.column for p in problems}
    problems += _missing_columns(frame, table, src.path, mapped=mapped | set(optional))
    problems += _missing_named_columns(frame, table, required, src.path, mapped=mapped)
    if problems:
        raise InputError(problems)
    return frame, replace(src, rows_read=len(frame))


UNKNOWN_LEARNER = "learner not in the learners table"
CONTRACT_TABLES = (*TABLES, "coaching_sessions")


def _with_keys(problems: list[Problem], frame: pd.DataFrame, table: str) -> list[Problem]:
    """Problems of a database table naming rows by their key values (it has no row numbers)."""
    keys = [k for k in TABLE_KEYS[table] if k in frame]
    out = []
    for problem in problems:
        if not problem.rows or not keys:
            out.append(problem)
            continue
        rows = frame.loc[[r - 2 for r in problem.rows if r - 2 in frame.index], keys]
        shown = tuple(
            " / ".join("(empty)" if pd.isna(v) else str(v) for v in row)
            for row in rows.itertuples(index=False)
        )
        out.append(replace(problem, rows=(), keys=shown, key=" / ".join(keys)))
    return out


def _read_plan(locations: dict[str, Any]) -> tuple[list[str], int]:
    """The tables in the order to read them, and how many at once.

    One per core when every input is a file and they hold at least `SIDE_BY_SIDE_BYTES`
    together, the largest file first (so that the smaller ones share a core while it is read:
    1M learners, 308 + 236 + 55 MB, take as long as the largest alone); else one at a time, in
    the given order.
    """
    specs = {t: as_spec(str(s)) if isinstance(s, str | Path) else s for t, s in locations.items()}
    if not all(s.is_file for s in specs.values()):
        return list(locations), 1
    size = dict.fromkeys(specs, 0)
    for table, spec in specs.items():
        with contextlib.suppress(OSError):  # a missing file is reported when it is read
            size[table] = Path(spec.path).stat().st_size
    if sum(size.values()) < SIDE_BY_SIDE_BYTES:
        return list(locations), 1
    return sorted(locations, key=size.__getitem__, reverse=True), usable_cores()


def _load_table(
    table: str, location: str | Path | TableSpec, options: dict
) -> tuple[pd.DataFrame | None, SourceFile | None, list[Problem]]:
    """Read, parse and check one table; its parsed frame, source and problems."""
    spec = as_spec(str(location)) if isinstance(location, str | Path) else location
    scale, waves = options.pop("scale"), options.pop("waves")
    try:
        frame, src = read_table(spec, table, **options)
    except InputError as exc:
        return None, None, list(exc.problems)
    parsed = parse_table(
        table, frame, src.path, date_format=spec.date_format, dayfirst=spec.dayfirst
    )
    _release_memory(parsed.frame)
    problems = list(parsed.problems) + schema_problems(
        table, parsed.frame, src.path, scale, waves=waves, unreadable=parsed.unreadable
    )
    if not spec.is_file:
        problems = _with_keys(problems, frame, table)
    del frame
    _release_memory(parsed.frame)
    return parsed.frame, replace(src, notes=src.notes | parsed.notes), problems


def _exclude_unknown(frames: dict[str, pd.DataFrame]) -> dict[str, dict[str, int]]:
    """Drop rows naming learners absent from the learners table (in place); counts by table.

    The tables are looked up side by side on the machine's cores when they are large."""
    known = frames["learners"]["learner_id"]
    excluded: dict[str, dict[str, int]] = {}
    if known.isna().any():
        return excluded  # missing learner ids are reported as problems
    tables = [t for t in ("action_items", "skill_assessments", "coaching_sessions") if t in frames]
    found = calls_side_by_side(
        [partial(is_in, frames[t]["learner_id"], known) for t in tables],
        rows=sum(len(frames[t]) for t in tables),
    )
    for table, is_known in zip(tables, found, strict=True):
        frame = frames[table]
        unknown = ~is_known & frame["learner_id"].notna().to_numpy()
        if unknown.any():
            frames[table] = frame[~unknown]
            excluded[table] = {UNKNOWN_LEARNER: int(unknown.sum())}
    return excluded


def table_fingerprint(frame: pd.DataFrame) -> str:
    """SHA-256 of a validated table's column names and its rows' hashes in sorted order: the
    same rows give the same value, whatever the source or the order they came in.

    A row's hash is DuckDB's ``hash`` of its values, the columns in the sorted order of their
    names (categories as their text), computed and sorted by DuckDB on the machine's cores from
    an Arrow view of the table: at 1M learners the three tables' fingerprints took 2.0 s, one
    table after the other, against 4.0 s with pandas' ``hash_pandas_object`` two at a time.

    Examples
    --------
    >>> rows = pd.DataFrame({"id": ["a", "b"], "n": [1.0, 2.0]})
    >>> table_fingerprint(rows) == table_fingerprint(rows.iloc[::-1])
    True
    """
    return table_fingerprints({"table": frame})["table"]


def table_fingerprints(
    frames: Mapping[str, pd.DataFrame], *, threads: int | None = None
) -> dict[str, str]:
    """`table_fingerprint` of each table, on one DuckDB connection (15 ms to open) with
    ``threads`` threads (default: `usable_cores`)."""
    import duckdb

    found = {}
    if not frames:
        return found
    with duckdb.connect() as con:
        con.execute(f"SET threads TO {threads or usable_cores()}")
        for name, frame in frames.items():
            columns = sorted(frame.columns)
            rows = pa.table(
                [_hashable(frame[c]) for c in columns],
                names=[f"c{i}" for i in range(len(columns))],
            )
            con.register("table_rows", rows)
            hashes = con.execute(
                f"SELECT hash({', '.join(rows.column_names)}) AS h FROM table_rows ORDER BY h"
            ).fetchnumpy()["h"]
            con.unregister("table_rows")
            digest = hashlib.sha256("\x1f".join(columns).encode())
            digest.update(np.asarray(hashes, dtype=np.uint64).tobytes())
            found[name] = digest.hexdigest()
    return found


def _hashable(column: pd.Series) -> pa.ChunkedArray:
    """A column as Arrow values for `table_fingerprint`: categories as their values, text that
    Arrow cannot take (mixed Python objects) as text."""
    try:
        values = pa.array(column, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        values = pa.array(column.astype("str"), from_pandas=True)
    if isinstance(values, pa.Array):  # text held by pyarrow comes in its chunks
        values = pa.chunked_array([values])
    if pa.types.is_dictionary(values.type):
        values = values.cast(values.type.value_type)
    return values


def load_programme(
    learners: str | Path | TableSpec,
    action_items: str | Path | TableSpec,
    skill_assessments: str | Path | TableSpec,
    *,
    columns: dict[str, dict[str, str]] | None = None,
    scale: tuple[float, float] = (1, 5),
    waves: Sequence[str] = WAVES,
    required_learner_columns: tuple[str, ...] = (),
    derived_learner_columns: tuple[str, ...] = (),
    unknown_learners: str = "exclude",
    coaching_sessions: str | Path | TableSpec | None = None,
    as_of: str | None = None,
    memory_limit: int | None = None,
) -> Programme:
    """Read, parse and validate the three tables of a programme, reporting every problem at once.

    Parameters
    ----------
    learners, action_items, skill_assessments : str, Path or TableSpec
        The input files (CSV, Parquet or Excel), or `TableSpec` mappings (a sheet, a date
        format, a database table or query).
    columns : dict, optional
        Per table, canonical column name -> the name in your export.
    scale : (min, max)
        The skill scale; levels outside it are errors.
    waves : sequence of str
        The assessment waves the skill assessments may name (``pre`` and ``post``, and any
        waves in between); with more than two, every assessment needs ``assessed_on``.
    required_learner_columns : tuple of str
        Further learner columns the analysis needs (treatment, covariates, cluster).
    derived_learner_columns : tuple of str
        Learner columns another input provides (coaching sessions, activity features): the
        learners table need not have them.
    unknown_learners : {"exclude", "reject"}
        Rows of action items, skill assessments (and sessions) naming learners absent from the
        learners table are left out and counted (``exclude``), or are a problem (``reject``).
    coaching_sessions : str, Path or TableSpec, optional
        A log of coaching sessions; gives ``coaching_sessions``, ``coached`` and
        ``coached_from`` where the learners table lacks them (see `lcstats.data.sessions`).
    as_of : str, optional
        The evaluation date: sessions after it are left out (and counted).
    memory_limit : int, optional
        Memory available in bytes; by default the environment variable
        ``LCSTATS_MEMORY_LIMIT_BYTES`` when set, else what the machine has free. Inputs that
        would need more are refused before anything is read (see `lcstats.core.resources`).

    Raises
    ------
    InputError
        With one `Problem` per file, column and check that failed; or, before anything is read,
        when the files are too large for the memory available.

    Examples
    --------
    >>> prog = load_programme("data/example/learners.csv", "data/example/action_items.csv",
    ...                       "data/example/skill_assessments.csv")
    >>> prog.sources["learners"].rows_read > 0
    True
    """
    check_choice("unknown_learners", unknown_learners, UNKNOWN_LEARNERS)
    locations = {
        "learners": learners,
        "action_items": action_items,
        "skill_assessments": skill_assessments,
    }
    derived = set(derived_learner_columns)
    if coaching_sessions is not None:
        locations["coaching_sessions"] = coaching_sessions
        derived |= set(DERIVED_COLUMNS)
    files = {t: s for t, s in locations.items() if not isinstance(s, TableSpec) or s.is_file}
    check_input_size({t: getattr(s, "path", s) for t, s in files.items()}, limit=memory_limit)
    required = tuple(c for c in required_learner_columns if c not in derived)
    frames, sources, problems = _read_all(
        locations, columns or {}, (scale, tuple(waves)), required, tuple(derived)
    )
    excluded: dict[str, dict[str, int]] = {}
    if len(frames) == len(locations):
        excluded = _exclude_unknown(frames) if unknown_learners == "exclude" else {}
        if coaching_sessions is not None:
            frames["learners"], frames["coaching_sessions"], later = derive_coaching(
                frames["learners"], frames["coaching_sessions"], as_of=as_of
            )
            excluded.setdefault("coaching_sessions", {}).update(later)
        problems.extend(
            cross_table_problems(
                frames["learners"],
                frames["action_items"],
                frames["skill_assessments"],
                {t: s.path for t, s in sources.items()},
                unknown_learners=unknown_learners == "reject",  # else excluded already
            )
        )
    if problems:
        raise InputError(list(dict.fromkeys(problems)))
    frames = {t: f.reset_index(drop=True) for t, f in frames.items()}
    # fingerprints taken while another table was read hold for the tables left as they were read
    changed = set(excluded)
    if coaching_sessions is not None:  # `derive_coaching` rewrote both
        changed |= {"learners", "coaching_sessions"}
    fingerprints = table_fingerprints(
        {t: frames[t] for t, s in sources.items() if not s.fingerprint or t in changed}
    )
    sources = {
        t: replace(s, fingerprint=fingerprints.get(t, s.fingerprint)) for t, s in sources.items()
    }
    return Programme(
        learners=frames["learners"],
        action_items=frames["action_items"],
        skill_assessments=frames["skill_assessments"],
        sources=sources,
        scale=(float(scale[0]), float(scale[1])),
        excluded=excluded,
        coaching_sessions=frames.get("coaching_sessions"),
    )


def _read_all(
    locations: dict[str, Any],
    columns: dict[str, dict[str, str]],
    scale_and_waves: tuple[tuple[float, float], tuple[str, ...]],
    required: tuple[str, ...],
    derived: tuple[str, ...],
) -> tuple[dict[str, pd.DataFrame], dict[str, SourceFile], list[Problem]]:
    """Read, parse and check each table; the parsed frames and sources that could be read, and
    every problem found.

    Large files are read side by side on the machine's cores (`side_by_side`, the largest
    first); small ones, and tables from a database (on the connection they share), one after
    the other. Side by side, a table read while another is still being read gets its
    fingerprint at once, on its thread, where the core would otherwise wait for the largest
    file (1M learners: the pre-flight 7.2-8.5 s -> 6.5-7.3 s, 4 runs each, interleaved);
    `load_programme` takes the others, and those it changes, afterwards.
    """
    frames: dict[str, pd.DataFrame] = {}
    sources: dict[str, SourceFile] = {}
    problems: list[Problem] = []
    order, workers = _read_plan(locations)
    reading = [len(order)]  # tables not yet read
    lock = threading.Lock()

    def load(item: tuple[str, Any]) -> tuple[pd.DataFrame | None, SourceFile | None, list]:
        table, location = item
        learner_table = table == "learners"
        options = {
            "columns": columns.get(table),
            "required": required if learner_table else (),
            "optional": derived if learner_table else (),
            "scale": scale_and_waves[0],
            "waves": scale_and_waves[1],
        }
        frame, src, found = _load_table(table, location, options)
        with lock:
            reading[0] -= 1
            others = reading[0] > 0
        if workers > 1 and others and frame is not None and not found:
            fingerprint = table_fingerprints({table: frame}, threads=1)[table]
            src = replace(src, fingerprint=fingerprint)
        return frame, src, found

    if workers > 1:
        prepare_schemas(*scale_and_waves)
    found_in_order = side_by_side(load, [(t, locations[t]) for t in order], workers=workers)
    loaded = dict(zip(order, found_in_order, strict=True))
    for table in locations:  # problems and tables in the given order, whatever the read order
        frame, src, found = loaded[table]
        problems.extend(found)
        if frame is not None:
            frames[table], sources[table] = frame, src
    return frames, sources, problems
