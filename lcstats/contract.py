"""The data contract: the three input tables, declared as pandera schemas.

`check_tables` turns every schema failure and cross-table inconsistency into a plain-language
`Problem` (file, column, example rows, what was expected, what to do). Row numbers are the line
numbers a spreadsheet shows for a CSV file (the header is line 1).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd
import pandera.pandas as pa

from lcstats.errors import Problem

YES = frozenset({"1", "1.0", "yes", "y", "true", "t"})
NO = frozenset({"0", "0.0", "no", "n", "false", "f"})
BINARY_SPELLINGS = "0/1, yes/no, y/n or true/false"
DATE_FORMAT = "%Y-%m-%d"

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
BINARY_COLUMNS = {"learners": ("coached", "manager_coached")}
DATE_COLUMNS = {
    "action_items": ("created_on", "due_on", "completed_on"),
    "skill_assessments": ("assessed_on",),
}
NUMBER_COLUMNS = {
    "learners": ("tenure_months", "coaching_sessions"),
    "skill_assessments": ("level", "target_level"),
}
WAVES = ("pre", "post")


def _text(unique: bool = False, nullable: bool = False) -> pa.Column:
    return pa.Column(str, nullable=nullable, unique=unique, checks=pa.Check.str_length(min_value=1))


def _binary(required: bool = True) -> pa.Column:
    return pa.Column("Int64", pa.Check.isin([0, 1]), nullable=False, required=required)


def schemas(scale: tuple[float, float]) -> dict[str, pa.DataFrameSchema]:
    """Return the pandera schema of each table for a skill scale ``(min, max)``."""
    lo, hi = scale
    level = pa.Check.in_range(lo, hi)
    return {
        "learners": pa.DataFrameSchema(
            {
                "learner_id": _text(unique=True),
                "team_id": _text(),
                "manager_id": _text(),
                "cohort": _text(),
                "role": _text(),
                "tenure_months": pa.Column(float, pa.Check.ge(0), nullable=True),
                "coached": _binary(),
                "coaching_sessions": pa.Column(float, pa.Check.ge(0), nullable=False),
                "manager_coached": _binary(required=False),
            },
            strict=False,
            name="learners",
        ),
        "action_items": pa.DataFrameSchema(
            {
                "learner_id": _text(),
                "item_id": _text(unique=True),
                "created_on": pa.Column("datetime64[ns]", nullable=False),
                "due_on": pa.Column("datetime64[ns]", nullable=False),
                "completed_on": pa.Column("datetime64[ns]", nullable=True),
            },
            strict=False,
            name="action_items",
        ),
        "skill_assessments": pa.DataFrameSchema(
            {
                "learner_id": _text(),
                "skill": _text(),
                "wave": pa.Column(str, pa.Check.isin(list(WAVES))),
                "assessed_on": pa.Column("datetime64[ns]", nullable=True),
                "level": pa.Column(float, level, nullable=True),
                "target_level": pa.Column(float, level, nullable=False),
            },
            strict=False,
            name="skill_assessments",
            unique=["learner_id", "skill", "wave"],
        ),
    }


EXPECTED = {
    "str_length": "a non-empty value",
    "field_uniqueness": "each value only once",
    "multiple_fields_uniqueness": "one row per learner, skill and wave",
    "not_nullable": "a value (it is empty)",
    "isin": "one of the allowed values",
    "in_range": "a value on the skill scale",
    "greater_than_or_equal_to": "a number of at least 0",
}


@dataclass(frozen=True)
class ParsedTable:
    """A table after parsing: typed columns, and the problems found while parsing."""

    frame: pd.DataFrame
    problems: tuple[Problem, ...]


def _rows(index: Iterable[int]) -> tuple[int, ...]:
    return tuple(int(i) + 2 for i in index)


def _problem(source: str, column: str | None, message: str, bad: pd.Index, hint: str) -> Problem:
    rows = _rows(bad[:5])
    return Problem(source, message, column=column, rows=rows, n_rows=len(bad), hint=hint)


def _examples(values: pd.Series) -> str:
    shown = [repr(v) for v in pd.unique(values.astype(str))[:3]]
    return ", ".join(shown)


def parse_table(table: str, frame: pd.DataFrame, source: str) -> ParsedTable:
    """Turn text columns into numbers, dates and 0/1 flags, recording what cannot be read.

    `frame` holds text (as read from the file); values that cannot be parsed become problems, not
    silent missing values.
    """
    out = frame.copy()
    problems: list[Problem] = []
    for col in BINARY_COLUMNS.get(table, ()):
        if col not in out:
            continue
        text = out[col].str.strip().str.lower()
        value = pd.Series(pd.NA, index=out.index, dtype="Int64")
        value[text.isin(YES)] = 1
        value[text.isin(NO)] = 0
        bad = out.index[text.notna() & value.isna()]
        if len(bad):
            problems.append(
                _problem(
                    source,
                    col,
                    f"expected {BINARY_SPELLINGS}, found {_examples(out.loc[bad, col])}",
                    bad,
                    f"code '{col}' as 1 (yes) or 0 (no)",
                )
            )
        out[col] = value
    for col in NUMBER_COLUMNS.get(table, ()):
        if col not in out:
            continue
        value = pd.to_numeric(out[col].str.strip(), errors="coerce")
        bad = out.index[out[col].notna() & value.isna()]
        if len(bad):
            problems.append(
                _problem(
                    source,
                    col,
                    f"expected a number, found {_examples(out.loc[bad, col])}",
                    bad,
                    "use plain numbers with a '.' decimal point and no units",
                )
            )
        out[col] = value.astype(float)
    for col in DATE_COLUMNS.get(table, ()):
        if col not in out:
            continue
        text = out[col].str.strip().str.slice(0, 10)
        value = pd.to_datetime(text, format=DATE_FORMAT, errors="coerce").astype("datetime64[ns]")
        bad = out.index[text.notna() & value.isna()]
        if len(bad):
            problems.append(
                _problem(
                    source,
                    col,
                    f"expected a date written YYYY-MM-DD, found {_examples(out.loc[bad, col])}",
                    bad,
                    "export dates in ISO format (for example 2026-03-31)",
                )
            )
        out[col] = value
    if table == "learners":
        known = set(REQUIRED_COLUMNS["learners"]) | set(BINARY_COLUMNS["learners"])
        for col in [c for c in out.columns if c not in known]:
            # further covariates: numbers when every value reads as one, categories otherwise
            value = pd.to_numeric(out[col].str.strip(), errors="coerce")
            if out[col].notna().any() and value.notna().sum() == out[col].notna().sum():
                out[col] = value.astype(float)
    if table == "skill_assessments" and "wave" in out:
        out["wave"] = out["wave"].str.strip().str.lower()
    return ParsedTable(out, tuple(problems))


def schema_problems(
    table: str, frame: pd.DataFrame, source: str, scale: tuple[float, float]
) -> list[Problem]:
    """Validate a parsed table against its pandera schema; one `Problem` per column and check."""
    schema = schemas(scale)[table]
    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
    else:
        return []
    problems = []
    cases = cases.assign(check=cases["check"].astype(str), column=cases["column"].astype(str))
    for (column, check), group in cases.groupby(["column", "check"], sort=True, dropna=False):
        name = check.split("(")[0]
        if name in ("coerce_dtype", "dtype"):
            continue  # parse_table reports unreadable values with their rows already
        index = pd.Index(group["index"].dropna().astype(int).unique())
        if name == "column_in_dataframe":
            continue  # missing columns are reported when the file is read
        if name == "isin":
            lo_hi = check[check.find("[") :]
            msg = f"expected one of {lo_hi}, found {_examples(group['failure_case'])}"
            hint = "fix or remove these rows"
        elif name == "in_range":
            msg = f"expected a level on the scale {scale[0]:g}-{scale[1]:g}, found {_examples(group['failure_case'])}"
            hint = "check the scale (scale_min / scale_max in the parameters) or fix these rows"
        elif name in ("field_uniqueness", "multiple_fields_uniqueness"):
            what = "one row per learner, skill and wave" if column in ("None", "nan") else f"each {column} only once"
            msg = f"expected {what}; found duplicates such as {_examples(group['failure_case'])}"
            hint = "remove the duplicated rows from the export"
        else:
            msg = f"expected {EXPECTED.get(name, name)}"
            if name != "not_nullable":
                msg += f", found {_examples(group['failure_case'])}"
            hint = "fill in or remove these rows"
        col = None if column in ("None", "nan") else column
        problems.append(_problem(source, col, msg, index, hint))
    return problems


def cross_table_problems(
    learners: pd.DataFrame,
    action_items: pd.DataFrame,
    skill_assessments: pd.DataFrame,
    sources: dict[str, str],
    *,
    treatment: str = "coached",
) -> list[Problem]:
    """Checks that span tables or columns: unknown learners, date order, coaching counts."""
    problems: list[Problem] = []
    known = set(learners["learner_id"].dropna())
    for table, frame in (("action_items", action_items), ("skill_assessments", skill_assessments)):
        bad = frame.index[~frame["learner_id"].isin(known) & frame["learner_id"].notna()]
        if len(bad):
            problems.append(
                _problem(
                    sources[table],
                    "learner_id",
                    f"{len(bad)} row(s) name learners that are not in the learners table, "
                    f"such as {_examples(frame.loc[bad, 'learner_id'])}",
                    bad,
                    "export the learners table and this table from the same population",
                )
            )
    items = action_items
    for later, earlier in (("due_on", "created_on"), ("completed_on", "created_on")):
        bad = items.index[items[later] < items[earlier]]
        if len(bad):
            problems.append(
                _problem(
                    sources["action_items"],
                    later,
                    f"'{later}' is before '{earlier}'",
                    bad,
                    "check the dates in these rows (day and month swapped?)",
                )
            )
    if treatment == "coached" and {"coached", "coaching_sessions"} <= set(learners):
        bad = learners.index[(learners["coached"] == 0) & (learners["coaching_sessions"] > 0)]
        if len(bad):
            problems.append(
                _problem(
                    sources["learners"],
                    "coaching_sessions",
                    "learners marked not coached (coached = 0) have coaching sessions",
                    bad,
                    "set coached = 1 for them, or their session count to 0",
                )
            )
    return problems
