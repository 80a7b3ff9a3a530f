"""Reading the input tables (CSV or Parquet), mapping column names, and checking the contract.

Every value is read as text first (so nothing is silently turned into a number, a date or a
missing value), with the row numbers a spreadsheet shows; `lcstats.contract` then parses and
checks the tables, and every problem found in every file is reported at once.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import io
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from lcstats.contract import (
    BINARY_COLUMNS,
    REQUIRED_COLUMNS,
    cross_table_problems,
    parse_table,
    schema_problems,
)
from lcstats.errors import InputError, Problem
from lcstats.options import TABLES
from lcstats.resources import check_input_size

SEPARATORS = ((";", "semicolons"), ("\t", "tabs"), ("|", "'|' characters"))


@dataclass(frozen=True)
class SourceFile:
    """Where a table came from: path, SHA-256 of its bytes, and rows read."""

    table: str
    path: str
    sha256: str
    rows_read: int


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

    def table(self, name: str) -> pd.DataFrame:
        """Return a table by its canonical name."""
        return getattr(self, name)

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{s.table}</td><td>{s.rows_read:,}</td><td><code>{s.sha256[:12]}</code></td></tr>"
            for s in self.sources.values()
        )
        return (
            "<table><thead><tr><th>table</th><th>rows read</th><th>sha256</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>"
        )


def _norm(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


def _closest(name: str, candidates: list[str]) -> str | None:
    """The candidate that `name` most probably means (same name up to case, spaces or a typo)."""
    normed = {_norm(c): c for c in reversed(candidates)}
    if _norm(name) in normed:
        return normed[_norm(name)]
    match = difflib.get_close_matches(_norm(name), list(normed), n=1, cutoff=0.6)
    return normed[match[0]] if match else None


def _listing(columns: list[str], limit: int = 15) -> str:
    shown = ", ".join(f"'{c}'" for c in columns[:limit])
    return shown + (f" and {len(columns) - limit} more" if len(columns) > limit else "")


def _decode(raw: bytes, source: str) -> str:
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


def _read_csv_text(text: str, source: str, table: str) -> pd.DataFrame:
    """Parse CSV text into a frame of text whose index is the line number minus 2."""
    reader = csv.reader(io.StringIO(text, newline=""), skipinitialspace=True, strict=True)
    records: list[list[str]] = []
    starts: list[int] = []
    line = 1
    try:
        for record in reader:
            records.append(record)
            starts.append(line)
            line = reader.line_num + 1
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
    while records and not any(f.strip() for f in records[0]):  # blank lines before the header
        records.pop(0)
        starts.pop(0)
    if not records:
        raise InputError(
            Problem(source, "the file is empty", hint=f"export the {table} table again")
        )
    header = [h.strip() for h in records[0]]
    if len(header) == 1:
        for sep, name in SEPARATORS:
            if sep in header[0]:
                raise InputError(
                    Problem(
                        source,
                        f"the columns are separated by {name}, expected commas",
                        hint="export as comma-separated CSV (in Excel: 'CSV UTF-8 (Comma delimited)')",
                    )
                )
    width = len(header)
    body, index, too_long = [], [], []
    for record, start in zip(records[1:], starts[1:], strict=True):
        if not any(f.strip() for f in record):
            continue  # blank line
        if len(record) > width:
            if any(f.strip() for f in record[width:]):
                too_long.append(start)
            record = record[:width]
        body.append(record + [""] * (width - len(record)))
        index.append(start - 2)
    if too_long:
        raise InputError(
            Problem(
                source,
                f"{len(too_long)} row(s) have more values than the header has columns ({width})",
                rows=tuple(too_long[:5]),
                n_rows=len(too_long),
                hint="a value probably contains a comma: put such values in double quotes, "
                "or remove the extra values",
            )
        )
    return pd.DataFrame(body, columns=header, index=pd.Index(index, dtype="int64"), dtype="str")


def _clean(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Stripped text names and values; empty cells missing; empty unnamed columns dropped.

    Raises `InputError` when two columns have the same name.
    """
    columns: dict[str, pd.Series] = {}
    names: list[str] = []
    for i in range(frame.shape[1]):
        name = str(frame.columns[i]).strip()
        values = frame.iloc[:, i]
        text = values.astype("str").where(values.notna()).str.strip()
        text = text.where(text != "")
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


def _read_parquet(raw: bytes, source: str) -> pd.DataFrame:
    try:
        frame = pd.read_parquet(io.BytesIO(raw))
    except Exception as exc:  # pyarrow raises many types for a corrupt file
        raise InputError(
            Problem(
                source,
                f"not a readable Parquet file ({type(exc).__name__}: {exc})",
                hint="export the table again, or as CSV",
            )
        ) from None
    if any(name is not None for name in frame.index.names):
        frame = frame.reset_index()  # a column saved as the index (e.g. learner_id) is a column
    frame = frame.reset_index(drop=True)
    for name in frame.columns:
        values = frame[name]
        # whole numbers stored as floats (an id or count column with gaps) read as in a CSV: 7, not 7.0
        if pd.api.types.is_float_dtype(values) and values.notna().any():
            known = values.dropna()
            if (known % 1 == 0).all() and known.abs().max() < 2**53:
                frame[name] = values.astype("Int64")
    return frame


def _map_columns(
    frame: pd.DataFrame, table: str, columns: dict[str, str], source: str
) -> tuple[pd.DataFrame, list[Problem]]:
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


def read_table(
    path: str | Path,
    table: str,
    *,
    columns: dict[str, str] | None = None,
    required: tuple[str, ...] = (),
) -> tuple[pd.DataFrame, SourceFile]:
    """Read one input table as text with canonical column names.

    Every value is stripped text (empty cells are missing); the index holds the CSV line number
    minus 2 (so blank lines do not shift the row numbers in problems).

    Parameters
    ----------
    path : str or Path
        A ``.csv`` or ``.parquet`` file.
    table : {"learners", "action_items", "skill_assessments"}
        Which table of the contract this is.
    columns : dict, optional
        Canonical column name -> the column's name in this file.
    required : tuple of str
        Further columns the parameters name (treatment, covariates, cluster) that must be present.

    Raises
    ------
    InputError
        When the file is missing, empty, unreadable or lacks a required column.
    """
    path = Path(path)
    source = str(path)
    if table not in TABLES:
        raise ValueError(f"table={table!r} is not allowed; choose one of {', '.join(TABLES)}")
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
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(
            Problem(
                source,
                f"the {table} file cannot be opened ({exc.strerror or exc})",
                hint="check that you may read the file and that no other program locks it",
            )
        ) from None
    digest = hashlib.sha256(raw).hexdigest()
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".txt", ".parquet"):
        raise InputError(
            Problem(
                source,
                f"unsupported file type '{suffix or path.name}'",
                hint="use a .csv or .parquet file",
            )
        )
    empty = Problem(
        source,
        "the file is empty (0 bytes or only blank lines)",
        hint=f"export the {table} table again",
    )
    if not raw.strip():
        raise InputError(empty)
    if suffix == ".parquet":
        frame = _read_parquet(raw, source)
    else:
        text = _decode(raw, source)
        if not text.strip():
            raise InputError(empty)
        frame = _read_csv_text(text, source, table)
    frame = _clean(frame, source)
    if frame.empty:
        raise InputError(
            Problem(
                source,
                "the file has a header but no data rows",
                hint=f"export the {table} table again",
            )
        )
    frame, problems = _map_columns(frame, table, columns or {}, source)
    present = list(frame.columns)
    canonical = set(REQUIRED_COLUMNS[table]) | set(BINARY_COLUMNS.get(table, ()))
    spare = [c for c in present if c not in canonical]  # columns that may be misnamed ones
    mapped = {p.column for p in problems}
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
    if problems:
        raise InputError(problems)
    return frame, SourceFile(table, source, digest, len(frame))


def load_programme(
    learners: str | Path,
    action_items: str | Path,
    skill_assessments: str | Path,
    *,
    columns: dict[str, dict[str, str]] | None = None,
    scale: tuple[float, float] = (1, 5),
    required_learner_columns: tuple[str, ...] = (),
    memory_limit: int | None = None,
) -> Programme:
    """Read, parse and validate the three tables of a programme, reporting every problem at once.

    Parameters
    ----------
    learners, action_items, skill_assessments : str or Path
        The input files (CSV or Parquet).
    columns : dict, optional
        Per table, canonical column name -> the name in your export.
    scale : (min, max)
        The skill scale; levels outside it are errors.
    required_learner_columns : tuple of str
        Further learner columns the analysis needs (treatment, covariates, cluster).
    memory_limit : int, optional
        Memory available in bytes; by default the environment variable
        ``LCSTATS_MEMORY_LIMIT_BYTES`` when set, else what the machine has free. Inputs that
        would need more are refused before anything is read (see `lcstats.resources`).

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
    paths = {
        "learners": learners,
        "action_items": action_items,
        "skill_assessments": skill_assessments,
    }
    check_input_size(paths, limit=memory_limit)
    columns = columns or {}
    frames: dict[str, pd.DataFrame] = {}
    sources: dict[str, SourceFile] = {}
    problems: list[Problem] = []
    for table, path in paths.items():
        required = tuple(required_learner_columns) if table == "learners" else ()
        try:
            frame, src = read_table(path, table, columns=columns.get(table), required=required)
        except InputError as exc:
            problems.extend(exc.problems)
            continue
        parsed = parse_table(table, frame, src.path)
        problems.extend(parsed.problems)
        problems.extend(
            schema_problems(table, parsed.frame, src.path, scale, unreadable=parsed.unreadable)
        )
        frames[table], sources[table] = parsed.frame, src
    if len(frames) == len(paths):
        problems.extend(
            cross_table_problems(
                frames["learners"],
                frames["action_items"],
                frames["skill_assessments"],
                {t: s.path for t, s in sources.items()},
            )
        )
    if problems:
        raise InputError(list(dict.fromkeys(problems)))
    frames = {t: f.reset_index(drop=True) for t, f in frames.items()}
    return Programme(
        learners=frames["learners"],
        action_items=frames["action_items"],
        skill_assessments=frames["skill_assessments"],
        sources=sources,
        scale=(float(scale[0]), float(scale[1])),
    )
