"""Evaluation parameters: one YAML file per evaluation, checked before any kernel starts.

Every key of a params file is also a parameter of the evaluation notebook (papermill only warns
about unknown keys, so they are rejected here instead).
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from lcstats.core.errors import InputError, Problem
from lcstats.core.options import (
    ACTIVITY_FEATURES,
    METHODS,
    ControlGroup,
    Design,
    Estimand,
    Method,
    Period,
    UnknownLearners,
)

DATA_KEYS = ("learners", "action_items", "skill_assessments")
OPTIONAL_DATA_KEYS = ("activity", "coaching_sessions")
INPUT_KEYS = DATA_KEYS + OPTIONAL_DATA_KEYS
EXCEL_SUFFIXES = (".xlsx", ".xlsm", ".xls", ".ods")
RUN_ONLY_FIELDS = ("timeout_minutes", "cell_timeout_minutes")  # read by the runner only
SEE_EXAMPLE = "see params/example.yaml for the expected keys and types"
# how each required key looks in a params file (for the hint when it is missing)
EXAMPLES = {
    "evaluation": 'evaluation: "spring-2026"',
    "as_of": 'as_of: "2026-06-30"',
    "learners": 'learners: "../data/example/learners.csv"',
    "action_items": 'action_items: "../data/example/action_items.csv"',
    "skill_assessments": 'skill_assessments: "../data/example/skill_assessments.csv"',
}
# pydantic error type -> (what was expected, what to do)
EXPECTED_TYPES = {
    "string_type": ("expected text", "put the value in quotes"),
    "float_type": ("expected a number", "write a plain number such as 0.05, without quotes"),
    "float_parsing": ("expected a number", "write a plain number such as 0.05, without quotes"),
    "int_type": ("expected a whole number", "write a whole number such as 5, without quotes"),
    "int_parsing": ("expected a whole number", "write a whole number such as 5, without quotes"),
    "int_from_float": ("expected a whole number", "write a whole number such as 5, without quotes"),
    "list_type": ("expected a list", 'write a list in square brackets, for example ["aipw"]'),
    "dict_type": ("expected a mapping of names", "write it as {name: value, ...}"),
}


class TableSpec(BaseModel):
    """Where one input table is and how to read it.

    A file with reading options (``path``, Excel ``sheet``, ``date_format`` or ``dayfirst``), or
    a database table or query (``source`` with ``table`` or ``query``). ``source`` is a
    connection URL, usually ``"${VARIABLE}"`` naming an environment variable that holds it, so
    that no credential is written in the params file.
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    path: str | None = Field(
        default=None, description="a file (CSV, Parquet, Excel), relative to the params file"
    )
    sheet: str | int | None = Field(
        default=None, description="Excel: the sheet's name or position (default the first)"
    )
    date_format: str | None = Field(
        default=None, description='how dates are written in the file, such as "%d/%m/%Y"'
    )
    dayfirst: bool = Field(
        default=False, description="dates with the day first (31/01/2026) when no date_format"
    )
    source: str | None = Field(
        default=None,
        description='a connection URL, usually "${VARIABLE}" naming an environment variable',
    )
    table: str | None = Field(default=None, description="a table (or view) of the source")
    query: str | None = Field(default=None, description="a SQL query run by the source")

    @model_validator(mode="after")
    def _one_place(self) -> TableSpec:
        problems = _spec_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def is_file(self) -> bool:
        """True for a file, False for a database table or query."""
        return self.path is not None


def _spec_problems(spec: TableSpec) -> list[str]:
    """What is inconsistent in a table's mapping (empty when it is fine)."""
    problems = []
    if (spec.path is None) == (spec.source is None):
        problems.append("give either 'path' (a file) or 'source' (a database), not both or neither")
    if spec.source is not None and (spec.table is None) == (spec.query is None):
        problems.append("with 'source', give either 'table' or 'query'")
    if spec.path is not None and (spec.table or spec.query):
        problems.append("'table' and 'query' go with 'source', not with 'path'")
    if spec.sheet is not None and not str(spec.path or "").lower().endswith(EXCEL_SUFFIXES):
        problems.append("'sheet' is for Excel files (.xlsx, .xlsm, .xls, .ods)")
    if spec.date_format and spec.dayfirst:
        problems.append("give 'date_format' or 'dayfirst', not both")
    if spec.date_format and not _is_date_format(spec.date_format):
        problems.append(
            f"'date_format' {spec.date_format!r} is not a date format: write it with %d (day), "
            '%m (month) and %Y (year), for example "%d/%m/%Y"'
        )
    return problems


def _is_date_format(fmt: str) -> bool:
    """True when `fmt` writes and reads back a date (day, month and year all present)."""
    day = dt.date(2031, 12, 25)
    try:
        return dt.datetime.strptime(day.strftime(fmt), fmt).date() == day
    except ValueError:
        return False


TableValue = str | TableSpec


class CostsSpec(BaseModel):
    """What coaching cost, and optionally what an outcome is worth (for a return on investment).

    Costs are fully loaded and taken as known: ``per_learner`` for each coached learner and
    ``per_session`` for each session held. The values per outcome are the analyst's assumptions;
    a return on investment is shown only when one is given.
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    per_session: float = Field(default=0.0, description="fully loaded cost of one session")
    per_learner: float = Field(default=0.0, description="cost per coached learner")
    currency: str = Field(default="GBP", description="three-letter currency code")
    value_per_follow_through: float | None = Field(
        default=None, description="what one more learner who follows through is worth"
    )
    value_per_skill_point: float | None = Field(
        default=None, description="what closing one point of one learner's skills gap is worth"
    )

    @model_validator(mode="after")
    def _sensible(self) -> CostsSpec:
        problems = []
        if self.per_session < 0 or self.per_learner < 0:
            problems.append("per_session and per_learner cannot be negative")
        if self.per_session == 0 and self.per_learner == 0:
            problems.append("give per_session or per_learner (what coaching cost)")
        if not re.fullmatch(r"[A-Z]{3}", self.currency):
            problems.append("currency is a three-letter code such as GBP, EUR or USD")
        values = (self.value_per_follow_through, self.value_per_skill_point)
        if any(v is not None and v <= 0 for v in values):
            problems.append("a value per outcome must be above 0")
        if problems:
            raise ValueError("; ".join(problems))
        return self


class Params(BaseModel):
    """Parameters of one evaluation (the keys of ``params/<evaluation>.yaml``)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    evaluation: str = Field(description="short name of the evaluation; names the report folder")
    title: str = Field(default="Coaching evaluation", description="title of the report")
    learners: TableValue = Field(
        description="learners table, one row per learner: a path, or a table mapping (below)"
    )
    action_items: TableValue = Field(description="action-plan items table, one row per item")
    skill_assessments: TableValue = Field(
        description="skill assessments table, one row per learner, skill and occasion"
    )
    activity: TableValue | None = Field(
        default=None,
        description="learning activity: xAPI statements (JSON lines) or a table learner_id, verb, "
        "object_id, occurred_at, duration_s (a file, a glob such as logs/*.parquet over a folder of "
        "files, or a database table); gives pre-programme engagement features",
    )
    coaching_sessions: TableValue | None = Field(
        default=None,
        description="coaching sessions (learner_id, session_on, coach_id, minutes); gives "
        "coaching_sessions and coached_from when the learners table lacks them",
    )
    baseline_end: str | None = Field(
        default=None,
        description="activity features of learners never coached use events before this date "
        "(YYYY-MM-DD); default the first coaching start",
    )
    activity_window_days: int = Field(
        default=182, description="days of activity before each learner's cut-off that count"
    )
    design: Design = Field(
        default="observational",
        description="what identifies the effect: observational (adjust for covariates), staggered "
        "(teams coached in waves), randomised (a randomised pilot)",
    )
    period: Period = Field(
        default="month", description="period of the follow-through panel (staggered)"
    )
    hazard_max_items: int | None = Field(
        default=200_000,
        description="the Cox model of the time to follow-through is fitted on at most about this "
        "many action items: whole teams drawn at random (seeded, said in the report) beyond it; "
        "null fits every item (statsmodels' PHReg: about 3 s per 200,000 items)",
    )
    control_group: ControlGroup = Field(
        default="never_treated",
        description="staggered: compare with teams never coached, or not yet coached",
    )
    costs: CostsSpec | None = Field(
        default=None,
        description="{per_session, per_learner, currency[, value_per_follow_through, "
        "value_per_skill_point]}: gives the cost per outcome (and a return on investment)",
    )
    unknown_learners: UnknownLearners = Field(
        default="exclude",
        description="rows naming learners absent from the learners table: exclude (counted) or reject",
    )
    columns: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description="per table, canonical column name -> column name in your export",
    )
    treatment: str = Field(
        default="coached", description="0/1 column of the learners table: who was coached"
    )
    covariates: list[str] = Field(
        default_factory=lambda: [
            "tenure_months",
            "engagement",
            "role",
            "cohort",
            "manager_coached",
        ],
        description="what coached and other learners are made alike on (learner columns or "
        "activity features pre_*)",
    )
    cluster: str | None = Field(
        default="team_id",
        description="cluster of the standard errors (learners in a team share influences); "
        "null for none",
    )
    methods: list[Method] = Field(
        default_factory=lambda: ["difference", "regression", "ipw", "aipw"],
        description="estimators to run",
    )
    headline_method: Method = Field(
        default="aipw", description="the estimate quoted in the executive summary"
    )
    estimand: Estimand = Field(
        default="ATE",
        description="ATE (all learners), ATT (the coached) or ATO (overlap weights; ipw only)",
    )
    alpha: float = Field(default=0.05, description="1 - confidence level of the intervals")
    scale_min: int = Field(default=1, description="lowest level of the skill scale")
    scale_max: int = Field(default=5, description="highest level of the skill scale")
    skill_waves: list[str] = Field(
        default_factory=lambda: ["pre", "post"],
        description="the assessment waves the skill assessments name: pre, post and any in "
        "between (ordered by assessed_on); with more than two, a staggered design also "
        "estimates the effect on the skills gap over the waves",
    )
    as_of: str = Field(
        description='the evaluation date ("YYYY-MM-DD", quoted), never the clock; items due '
        "later are not yet counted"
    )
    min_group_size: int = Field(
        default=5, description="smallest group any breakdown in the report may show"
    )
    followed_through_share: float = Field(
        default=0.8,
        description="share of items on time for a learner to count as having followed through",
    )
    trim: list[float] | None = Field(
        default=None,
        description="[low, high], such as [0.05, 0.95]: leave out learners whose chance of "
        "coaching is outside it (counted in the report)",
    )
    timeout_minutes: float | None = Field(
        default=None,
        description="time limit of a whole run; default 30 minutes plus 1 per 10 MB of input",
    )
    cell_timeout_minutes: float | None = Field(
        default=None,
        description="time limit of one notebook cell; default 20 minutes plus 1 per 20 MB of input",
    )

    @field_validator("evaluation")
    @classmethod
    def _slug(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,79}", v):
            raise ValueError(
                "expected a short name of letters, digits, '-', '_' or '.', starting with a letter "
                "or digit (at most 80; no spaces or slashes: it names the report folder)"
            )
        return v

    @field_validator("costs", mode="before")
    @classmethod
    def _costs(cls, v: Any) -> Any:
        if isinstance(v, dict):
            try:
                return CostsSpec.model_validate(
                    {
                        k: float(x) if isinstance(x, int) and not isinstance(x, bool) else x
                        for k, x in v.items()
                    }
                )
            except ValidationError as exc:
                raise ValueError(_spec_error(exc, CostsSpec)) from None
        return v

    @field_validator(*INPUT_KEYS, mode="before")
    @classmethod
    def _table(cls, v: Any) -> Any:
        if isinstance(v, dict):
            try:
                return TableSpec.model_validate(v)
            except ValidationError as exc:
                raise ValueError(_spec_error(exc, TableSpec)) from None
        return v

    @field_validator("activity_window_days")
    @classmethod
    def _window(cls, v: int) -> int:
        if not 1 <= v <= 3660:
            raise ValueError("expected a number of days between 1 and 3660 (182 is about 6 months)")
        return v

    @field_validator("as_of", "baseline_end")
    @classmethod
    def _date(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            dt.date.fromisoformat(v)
        except ValueError:
            raise ValueError("expected a real date written as YYYY-MM-DD, in quotes") from None
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", v):
            raise ValueError("expected a date written as YYYY-MM-DD, in quotes") from None
        return v

    @field_validator("hazard_max_items")
    @classmethod
    def _max_items(cls, v: int | None) -> int | None:
        if v is not None and v < 1000:
            raise ValueError("expected a number of items of at least 1000, or null for all")
        return v

    @field_validator("skill_waves")
    @classmethod
    def _waves(cls, v: list[str]) -> list[str]:
        waves = [w.strip().lower() for w in v]
        if any(not w for w in waves) or len(set(waves)) < len(waves):
            raise ValueError("expected distinct, non-empty wave names such as [pre, mid, post]")
        if not {"pre", "post"} <= set(waves):
            raise ValueError(
                "expected a list that includes pre and post (the assessments before and after "
                "the programme), such as [pre, mid, post]"
            )
        return waves

    @field_validator("alpha")
    @classmethod
    def _alpha(cls, v: float) -> float:
        if not 0 < v < 0.5:
            raise ValueError("expected a number between 0 and 0.5 (0.05 gives 95% intervals)")
        return v

    @field_validator("trim")
    @classmethod
    def _trim(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and not (len(v) == 2 and 0 <= v[0] < v[1] <= 1):
            raise ValueError(
                "expected two numbers [low, high] between 0 and 1, such as [0.05, 0.95]"
            )
        return v

    @field_validator("timeout_minutes", "cell_timeout_minutes")
    @classmethod
    def _limit(cls, v: float | None) -> float | None:
        if v is not None and not 0 < v <= 7 * 24 * 60:
            raise ValueError("expected a number of minutes above 0 (at most a week), or null")
        return v

    @field_validator("followed_through_share")
    @classmethod
    def _share(cls, v: float) -> float:
        if not 0 < v <= 1:
            raise ValueError("expected a share between 0 and 1 (0.8 means 80% of items on time)")
        return v

    @field_validator("min_group_size")
    @classmethod
    def _min_group(cls, v: int) -> int:
        if v < 1:
            raise ValueError("expected a whole number of at least 1 (5 is the usual minimum)")
        return v

    @field_validator("columns")
    @classmethod
    def _tables(cls, v: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        unknown = sorted(set(v) - set(INPUT_KEYS))
        if unknown:
            close = [difflib.get_close_matches(u, INPUT_KEYS, n=1) for u in unknown]
            means = "; ".join(
                f"did you mean '{c[0]}' for '{u}'?"
                for u, c in zip(unknown, close, strict=True)
                if c
            )
            raise ValueError(
                f"unknown table(s) {', '.join(repr(u) for u in unknown)}; the tables are "
                f"{', '.join(INPUT_KEYS)}" + (f" ({means})" if means else "")
            )
        return v

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> Params:
        if info.context and info.context.get("defer_consistency"):
            return self  # parse_params reports these with the key concerned
        issues = consistency_problems(self)
        if issues:
            raise ValueError("; ".join(message for _, message, _ in issues))
        return self

    def notebook_parameters(self) -> dict[str, Any]:
        """Return the parameters as papermill injects them (plain JSON-able values).

        The run's time limits are left out: they steer the runner, not the results.
        """
        return self.model_dump(mode="json", exclude=set(RUN_ONLY_FIELDS))


Issue = tuple[str, str, str]  # key, what is wrong, what to do


def _scale_and_methods(params: Params) -> list[Issue]:
    """The skill scale's order, and the headline method among the methods."""
    issues = []
    if params.scale_min >= params.scale_max:
        issues.append(
            (
                "scale_min",
                f"scale_min ({params.scale_min}) must be smaller than scale_max ({params.scale_max})",
                "set the lowest and highest level of your skill scale",
            )
        )
    if params.headline_method not in params.methods:
        issues.append(
            (
                "headline_method",
                f"headline_method '{params.headline_method}' is not one of the methods "
                f"({', '.join(params.methods) or 'none'})",
                f"add '{params.headline_method}' to methods, or choose one of them as headline_method",
            )
        )
    if params.estimand == "ATO" and set(params.methods) - {"difference", "ipw"}:
        issues.append(
            (
                "estimand",
                "estimand 'ATO' (overlap weights) is available with the ipw method only",
                'use methods: ["difference", "ipw"] and headline_method: "ipw" with ATO',
            )
        )
    return issues


def _roles_of_columns(params: Params) -> list[Issue]:
    """A column is one of treatment, cluster or covariate; activity features need a log."""
    issues = []
    if params.cluster is not None and params.cluster in params.covariates:
        issues.append(
            (
                "cluster",
                f"'{params.cluster}' cannot be both the cluster and a covariate",
                f"remove '{params.cluster}' from covariates",
            )
        )
    if params.treatment in params.covariates or params.treatment == params.cluster:
        issues.append(
            (
                "treatment",
                f"the treatment '{params.treatment}' cannot also be a covariate or the cluster",
                f"remove '{params.treatment}' from covariates (and cluster)",
            )
        )
    features = [c for c in params.covariates if c in ACTIVITY_FEATURES]
    if features and params.activity is None:
        issues.append(
            (
                "covariates",
                f"covariate(s) {', '.join(features)} come from an activity log, and none is given",
                'add activity: "<xAPI statements .jsonl or activity table>" to the parameters, or '
                "remove them from covariates",
            )
        )
    return issues


def _repeats(params: Params) -> list[Issue]:
    """Covariates and methods listed more than once."""
    issues = []
    for key in ("covariates", "methods"):
        values = list(getattr(params, key))
        repeated = sorted({v for v in values if values.count(v) > 1})
        if repeated:
            issues.append(
                (
                    key,
                    f"{key} lists {', '.join(map(repr, repeated))} more than once",
                    "list each once",
                )
            )
    return issues


def consistency_problems(params: Params) -> list[Issue]:
    """Checks across keys: ``(key, what is wrong, what to do)`` for each inconsistency."""
    return _scale_and_methods(params) + _roles_of_columns(params) + _repeats(params)


def _plain(value: Any) -> Any:
    """YAML turns unquoted dates into date objects; accept them as ISO text."""
    if isinstance(value, dt.datetime):
        return value.isoformat()  # a date with a time is not a date: reported by the validator
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _where(loc: tuple[Any, ...]) -> str:
    text = str(loc[0]) if loc else "(file)"
    for part in loc[1:]:
        text += f" (item {part + 1})" if isinstance(part, int) else f".{part}"
    return text


def _found(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _error_problem(err: dict[str, Any], source: str) -> Problem:
    key = str(err["loc"][0]) if err["loc"] else None
    where = _where(err["loc"])
    kind = err["type"]
    if kind == "extra_forbidden":
        close = difflib.get_close_matches(key.lower(), list(Params.model_fields), n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"remove it; {SEE_EXAMPLE}"
        return Problem(source, f"unknown parameter '{where}'", hint=hint)
    if kind == "missing":
        example = EXAMPLES.get(key)
        hint = f"add a line such as  {example}" if example else SEE_EXAMPLE
        return Problem(source, f"parameter '{where}' is required but missing", hint=hint)
    if kind == "literal_error":
        allowed = err.get("ctx", {}).get("expected", "")
        return Problem(
            source,
            f"parameter '{where}': expected one of {allowed}, found {_found(err.get('input'))}",
            hint="use one of the allowed values, spelled exactly so",
        )
    if kind in EXPECTED_TYPES:
        expected, hint = EXPECTED_TYPES[kind]
        if key == "methods" and kind == "list_type":
            hint = f'write a list in square brackets, for example methods: ["aipw"] (allowed: {", ".join(METHODS)})'
        elif key == "covariates" and kind == "list_type":
            hint = 'write a list in square brackets, for example covariates: ["tenure_months"] (or [] for none)'
        return Problem(
            source, f"parameter '{where}': {expected}, found {_found(err.get('input'))}", hint=hint
        )
    msg = str(err["msg"]).removeprefix("Value error, ")
    hint = f"for example  {EXAMPLES[key]}" if key in EXAMPLES else SEE_EXAMPLE
    return Problem(
        source, f"parameter '{where}': {msg} (found {_found(err.get('input'))})", hint=hint
    )


def parse_params(
    raw: dict[str, Any], *, source: str = "parameters", base_dir: Path | None = None
) -> Params:
    """Check a mapping of parameters and return them with defaults filled in.

    Relative data paths are resolved against `base_dir` (the params file's folder).

    Raises
    ------
    InputError
        Listing every unknown, missing, mistyped or inconsistent parameter.
    """
    if not isinstance(raw, dict):
        raise InputError(
            Problem(
                source,
                f"expected a mapping of 'key: value' lines, found {_found(raw)}",
                hint="see params/example.yaml",
            )
        )
    values = {str(k): _plain(v) for k, v in raw.items()}
    try:
        params = Params.model_validate(values, context={"defer_consistency": True})
    except ValidationError as exc:
        raise InputError([_error_problem(err, source) for err in exc.errors()]) from None
    issues = consistency_problems(params)
    if issues:
        raise InputError([Problem(source, msg, hint=hint) for key, msg, hint in issues])
    if base_dir is not None:
        resolved = {
            key: _resolved(getattr(params, key), Path(base_dir))
            for key in INPUT_KEYS
            if getattr(params, key) is not None
        }
        params = params.model_copy(update=resolved)
    return params


def _absolute(path: str, base_dir: Path) -> str:
    """A path relative to `base_dir` (the params file's folder) made absolute."""
    found = Path(path).expanduser()
    return str(found if found.is_absolute() else (base_dir / found).resolve())


def _resolved(value: TableValue, base_dir: Path) -> TableValue:
    """A table's value with its file path (or DuckDB file) made absolute."""
    if isinstance(value, str):
        return _absolute(value, base_dir)
    if value.path is not None:
        return value.model_copy(update={"path": _absolute(value.path, base_dir)})
    prefix = "duckdb://"
    if value.source.startswith(prefix) and not value.source.startswith(prefix + "/"):
        return value.model_copy(
            update={"source": prefix + _absolute(value.source[len(prefix) :], base_dir)}
        )
    return value


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses a key given twice (YAML would keep the last silently)."""


def _mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if not isinstance(key, str | int | float | bool | None):
            continue  # construct_mapping reports keys that cannot be keys
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"the key '{key}' is given twice (lines {seen[key]} and {line})",
                key_node.start_mark,
            )
        seen[key] = line
    return loader.construct_mapping(node, deep=True)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def load_params(path: str | Path) -> Params:
    """Read and check a params YAML file.

    Examples
    --------
    >>> p = load_params("params/example.yaml")
    >>> p.evaluation, p.as_of
    ('example', '2026-06-30')
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(
            Problem(
                str(path),
                "parameters file not found",
                hint="check the path; see params/ for examples",
            )
        )
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
    except OSError as exc:
        raise InputError(
            Problem(
                str(path),
                f"the parameters file cannot be opened ({exc.strerror or exc})",
                hint="check that you may read the file",
            )
        ) from None
    except UnicodeDecodeError:
        raise InputError(
            Problem(str(path), "the parameters file is not UTF-8 text", hint="save it as UTF-8")
        ) from None
    except yaml.YAMLError as exc:
        raise InputError(
            Problem(
                str(path),
                "not readable as YAML: " + str(exc).replace('"<unicode string>"', f'"{path.name}"'),
                hint="fix the YAML syntax at the line shown (check indentation, colons and quotes)",
            )
        ) from None
    return parse_params(raw if raw is not None else {}, source=str(path), base_dir=path.parent)


def notebook_fields() -> tuple[str, ...]:
    """The parameters a notebook declares: every field except the runner's own."""
    return tuple(f for f in Params.model_fields if f not in RUN_ONLY_FIELDS)


def _spec_error(exc: ValidationError, model: type[BaseModel]) -> str:
    """One plain sentence for what is wrong in a mapping (a table's, or the costs)."""
    keys = ", ".join(model.model_fields)
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            parts.append(f"unknown key '{where}' (the keys are {keys})")
        elif where:
            parts.append(f"'{where}': {err['msg']}")
        else:
            parts.append(str(err["msg"]).removeprefix("Value error, "))
    return "; ".join(parts)


def table_location(value: TableValue) -> str | None:
    """The file path of a table (None for a database table or query)."""
    return value if isinstance(value, str) else value.path


def as_spec(value: TableValue) -> TableSpec:
    """A table's value as a `TableSpec` (a path string becomes ``{path: ...}``)."""
    return TableSpec(path=value) if isinstance(value, str) else value
