"""Typed tables (Parquet, Excel, databases) turned into the text the contract reads.

CSV files are read as text. Other sources hand over numbers, dates and flags already typed; they
are written here as the text a careful CSV export would hold (whole numbers without ``.0``, dates
``YYYY-MM-DD``, a time only when there is one, flags 1/0), so that every source goes through the
same parsing and checks, with the same messages. Excel rows keep their spreadsheet numbers.
"""

from __future__ import annotations

import datetime as dt
import io

import numpy as np
import pandas as pd

from lcstats.core.errors import InputError, Problem


def _value_text(value: object) -> object:
    """One typed value as text (missing stays missing)."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NaT:
        return np.nan
    if isinstance(value, bool | np.bool_):
        return "1" if value else "0"
    if isinstance(value, dt.datetime | pd.Timestamp):
        return value.strftime("%Y-%m-%d" if value.time() == dt.time(0) else "%Y-%m-%d %H:%M:%S")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float | np.floating) and float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return str(value)


def _column_text(values: pd.Series) -> pd.Series:
    """A typed column as text, each distinct value converted once."""
    if values.dtype == "str":
        return values
    if pd.api.types.is_bool_dtype(values):
        return values.map({True: "1", False: "0"}).astype("str")
    try:
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
    except TypeError:  # values that cannot be hashed (lists in a Parquet column)
        return pd.Series([_value_text(v) for v in values], index=values.index, dtype="str")
    text = pd.Series([_value_text(v) for v in uniques] + [np.nan], dtype="str")
    return pd.Series(text.to_numpy()[codes], index=values.index, dtype="str")


def as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Every column of a typed frame as text (see the module docstring); index kept."""
    return pd.DataFrame(
        {name: _column_text(frame[name]) for name in frame.columns}, index=frame.index
    )


def read_parquet(raw: bytes, source: str) -> pd.DataFrame:
    """A Parquet file's columns (the index as columns) as text; `InputError` when unreadable."""
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
    return as_text(frame.reset_index(drop=True))


def read_excel(raw: bytes, source: str, sheet: str | int | None) -> pd.DataFrame:
    """A sheet of an Excel workbook as text, indexed by spreadsheet row minus 2 (header row 1).

    Read with calamine (fast, no Excel needed). Raises `InputError` naming the sheets when the
    one asked for is not in the workbook, or when the file is not a workbook.
    """
    try:
        book = pd.ExcelFile(io.BytesIO(raw), engine="calamine")
    except Exception as exc:  # not a workbook, or damaged
        raise InputError(
            Problem(source, f"not a readable Excel workbook ({exc})", hint="save it again as .xlsx")
        ) from None
    names = book.sheet_names
    chosen = names[0] if sheet is None else sheet
    if isinstance(chosen, int):
        chosen = names[chosen] if 0 <= chosen < len(names) else None
    if chosen not in names:
        raise InputError(
            Problem(
                source,
                f"the workbook has no sheet {sheet!r}",
                hint=f"set 'sheet' to one of {', '.join(repr(n) for n in names)}",
            )
        )
    frame = pd.read_excel(book, sheet_name=chosen, dtype=object)
    return as_text(frame)
