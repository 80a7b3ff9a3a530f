"""Evaluation parameters: one YAML file per evaluation, checked before any kernel starts.

Every key of a params file is also a parameter of the evaluation notebook (papermill only warns
about unknown keys, so they are rejected here instead).
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lcstats.errors import InputError, Problem
from lcstats.options import Estimand, Method

DATA_KEYS = ("learners", "action_items", "skill_assessments")


class Params(BaseModel):
    """Parameters of one evaluation (the keys of ``params/<evaluation>.yaml``)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    evaluation: str = Field(description="short name of the evaluation; names the report folder")
    title: str = "Coaching evaluation"
    learners: str = Field(description="learners table (CSV or Parquet)")
    action_items: str = Field(description="action-plan items table (CSV or Parquet)")
    skill_assessments: str = Field(description="skill assessments table (CSV or Parquet)")
    columns: dict[str, dict[str, str]] = Field(
        default_factory=dict,
        description="per table, canonical column name -> column name in your export",
    )
    treatment: str = "coached"
    covariates: list[str] = Field(
        default_factory=lambda: ["tenure_months", "engagement", "role", "cohort", "manager_coached"]
    )
    cluster: str | None = "team_id"
    methods: list[Method] = Field(
        default_factory=lambda: ["difference", "regression", "ipw", "aipw"]
    )
    headline_method: Method = "aipw"
    estimand: Estimand = "ATE"
    alpha: float = 0.05
    scale_min: int = 1
    scale_max: int = 5
    as_of: str = Field(description="date the evaluation is 'as of' (YYYY-MM-DD), never the clock")
    min_group_size: int = 5

    @field_validator("evaluation")
    @classmethod
    def _slug(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,79}", v):
            raise ValueError(
                "use letters, digits, '-', '_' or '.', starting with a letter or digit (max 80)"
            )
        return v

    @field_validator("as_of")
    @classmethod
    def _date(cls, v: str) -> str:
        try:
            dt.date.fromisoformat(v)
        except ValueError:
            raise ValueError("expected a date written as YYYY-MM-DD, in quotes") from None
        return v

    @field_validator("alpha")
    @classmethod
    def _alpha(cls, v: float) -> float:
        if not 0 < v < 0.5:
            raise ValueError("expected a number between 0 and 0.5 (0.05 gives 95% intervals)")
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
        unknown = sorted(set(v) - set(DATA_KEYS))
        if unknown:
            raise ValueError(
                f"unknown table(s) {', '.join(unknown)}; use {', '.join(DATA_KEYS)}"
            )
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Params:
        if self.scale_min >= self.scale_max:
            raise ValueError("scale_min must be smaller than scale_max")
        if self.headline_method not in self.methods:
            raise ValueError(f"headline_method '{self.headline_method}' must be one of methods")
        if self.cluster is not None and self.cluster in self.covariates:
            raise ValueError(f"'{self.cluster}' cannot be both the cluster and a covariate")
        return self

    def notebook_parameters(self) -> dict[str, Any]:
        """Return the parameters as papermill injects them (plain JSON-able values)."""
        return self.model_dump(mode="json")


def _plain(value: Any) -> Any:
    """YAML turns unquoted dates into date objects; accept them as ISO text."""
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _describe_error(err: dict[str, Any]) -> str:
    loc = ".".join(str(p) for p in err["loc"]) or "(file)"
    found = err.get("input")
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        return f"unknown parameter '{loc}'"
    if err["type"] == "missing":
        return f"parameter '{loc}' is required but missing"
    shown = repr(found) if not isinstance(found, dict | list) else type(found).__name__
    return f"parameter '{loc}': {msg} (found {shown})"


def parse_params(raw: dict[str, Any], *, source: str = "parameters", base_dir: Path | None = None) -> Params:
    """Check a mapping of parameters and return them with defaults filled in.

    Relative data paths are resolved against `base_dir` (the params file's folder).

    Raises
    ------
    InputError
        Listing every unknown, missing or mistyped parameter.
    """
    if not isinstance(raw, dict):
        raise InputError(
            Problem(source, "expected a mapping of 'key: value' lines", hint="see params/example.yaml")
        )
    values = {k: _plain(v) for k, v in raw.items()}
    try:
        params = Params.model_validate(values)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            hint = "see params/example.yaml for the expected keys and types"
            if err["type"] == "extra_forbidden":
                from difflib import get_close_matches

                close = get_close_matches(str(err["loc"][0]), list(Params.model_fields), n=1)
                hint = f"did you mean '{close[0]}'?" if close else "remove it; " + hint
            elif err["type"] in ("string_type",):
                hint = "put the value in quotes"
            problems.append(Problem(source=source, message=_describe_error(err), hint=hint))
        raise InputError(problems) from None
    if base_dir is not None:
        resolved = {
            key: str((base_dir / getattr(params, key)).resolve())
            for key in DATA_KEYS
            if not Path(getattr(params, key)).is_absolute()
        }
        params = params.model_copy(update=resolved)
    return params


def load_params(path: str | Path) -> Params:
    """Read and check a params YAML file.

    Examples
    --------
    >>> p = load_params("params/example.yaml")  # doctest: +SKIP
    >>> p.evaluation  # doctest: +SKIP
    'example'
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(
            Problem(str(path), "parameters file not found", hint="check the path; see params/")
        )
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InputError(
            Problem(str(path), f"not readable as YAML: {exc}", hint="fix the YAML syntax")
        ) from None
    return parse_params(raw or {}, source=str(path), base_dir=path.parent)
