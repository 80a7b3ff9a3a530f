"""Reading the input tables (CSV or Parquet), mapping column names, and checking the contract."""

from __future__ import annotations

import difflib
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from lcstats.contract import REQUIRED_COLUMNS, cross_table_problems, parse_table, schema_problems
from lcstats.errors import InputError, Problem
from lcstats.options import TABLES


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


def _closest(name: str, candidates: list[str]) -> str | None:
    lowered = {c.lower().strip(): c for c in candidates}
    if name.lower() in lowered:
        return lowered[name.lower()]
    match = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return match[0] if match else None


def _decode(raw: bytes, source: str) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise InputError(
            Problem(
                source,
                f"the file is not UTF-8 text (byte 0x{raw[exc.start]:02x} on line {line})",
                hint="save or export it as 'CSV UTF-8'",
            )
        ) from None


def read_table(path: str | Path, table: str, *, columns: dict[str, str] | None = None) -> tuple[pd.DataFrame, SourceFile]:
    """Read one input table as text with canonical column names.

    Parameters
    ----------
    path : str or Path
        A ``.csv`` or ``.parquet`` file.
    table : {"learners", "action_items", "skill_assessments"}
        Which table of the contract this is.
    columns : dict, optional
        Canonical column name -> the column's name in this file.

    Raises
    ------
    InputError
        When the file is missing, empty, unreadable or lacks a required column.
    """
    path = Path(path)
    source = str(path)
    if table not in TABLES:
        raise ValueError(f"table={table!r} is not allowed; choose one of {', '.join(TABLES)}")
    if not path.is_file():
        raise InputError(
            Problem(source, f"the {table} file does not exist", hint="check the path in the parameters file")
        )
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if not raw.strip():
        raise InputError(Problem(source, "the file is empty", hint=f"export the {table} table again"))
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        try:
            frame = pd.read_parquet(io.BytesIO(raw))
        except Exception as exc:  # pyarrow raises many types for a corrupt file
            raise InputError(Problem(source, f"not a readable Parquet file ({exc})")) from None
        frame = frame.astype("str").where(frame.notna())
    elif suffix in (".csv", ".txt"):
        text = _decode(raw, source)
        try:
            frame = pd.read_csv(
                io.StringIO(text), dtype=str, keep_default_na=False, na_values=[""], skipinitialspace=True
            )
        except pd.errors.ParserError as exc:
            raise InputError(
                Problem(source, f"not a readable CSV file ({exc})", hint="check quotes and separators")
            ) from None
        header = text.splitlines()[0]
        if frame.shape[1] == 1:
            for sep, name in ((";", "semicolons"), ("\t", "tabs"), ("|", "'|'")):
                if sep in header:
                    raise InputError(
                        Problem(
                            source,
                            f"the columns are separated by {name}, expected commas",
                            hint="export as comma-separated CSV",
                        )
                    )
    else:
        raise InputError(
            Problem(source, f"unsupported file type '{suffix}'", hint="use a .csv or .parquet file")
        )
    frame.columns = [str(c).strip() for c in frame.columns]
    if frame.empty:
        raise InputError(Problem(source, "the file has a header but no data rows", hint=f"export the {table} table again"))
    rename = {src: canon for canon, src in (columns or {}).items()}
    frame = frame.rename(columns=rename)
    problems = []
    present = list(frame.columns)
    for col in REQUIRED_COLUMNS[table]:
        if col not in frame:
            close = _closest(col, present)
            hint = (
                f"rename '{close}' to '{col}', or map it in the parameters: columns: {{{table}: {{{col}: '{close}'}}}}"
                if close
                else f"add the column, or map it in the parameters: columns: {{{table}: {{{col}: <your column>}}}}"
            )
            problems.append(Problem(source, f"required column '{col}' is missing", column=col, hint=hint))
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
        Further learner columns the analysis needs (covariates, cluster).

    Raises
    ------
    InputError
        With one `Problem` per file, column and check that failed.

    Examples
    --------
    >>> prog = load_programme("data/example/learners.csv", "data/example/action_items.csv",
    ...                       "data/example/skill_assessments.csv")
    >>> prog.sources["learners"].rows_read > 0
    True
    """
    paths = {"learners": learners, "action_items": action_items, "skill_assessments": skill_assessments}
    columns = columns or {}
    frames: dict[str, pd.DataFrame] = {}
    sources: dict[str, SourceFile] = {}
    problems: list[Problem] = []
    for table, path in paths.items():
        try:
            frame, src = read_table(path, table, columns=columns.get(table))
        except InputError as exc:
            problems.extend(exc.problems)
            continue
        parsed = parse_table(table, frame, src.path)
        problems.extend(parsed.problems)
        problems.extend(schema_problems(table, parsed.frame, src.path, scale))
        frames[table], sources[table] = parsed.frame, src
    if "learners" in frames:
        present = list(frames["learners"].columns)
        for col in required_learner_columns:
            if col not in present:
                close = _closest(col, present)
                problems.append(
                    Problem(
                        sources["learners"].path,
                        f"column '{col}' is named in the parameters (covariates or cluster) but is not in the file",
                        column=col,
                        hint=f"did you mean '{close}'?" if close else "remove it from the parameters or add the column",
                    )
                )
    if not problems and len(frames) == len(paths):
        problems.extend(
            cross_table_problems(
                frames["learners"],
                frames["action_items"],
                frames["skill_assessments"],
                {t: s.path for t, s in sources.items()},
            )
        )
    if problems:
        raise InputError(problems)
    return Programme(
        learners=frames["learners"],
        action_items=frames["action_items"],
        skill_assessments=frames["skill_assessments"],
        sources=sources,
        scale=(float(scale[0]), float(scale[1])),
    )
