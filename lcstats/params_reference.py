"""The parameters reference (``docs/parameters.md``), written from the `Params` model itself.

The reference cannot drift from the code: ``make docs`` writes it and a test checks that the
committed copy is what the model gives.
"""

from __future__ import annotations

import json
import types
import typing
from typing import Any, Literal

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from lcstats.params import RUN_ONLY_FIELDS, CostsSpec, Params, TableSpec, notebook_fields

_NAMES = {
    str: "text",
    int: "whole number",
    float: "number",
    bool: "true/false",
    type(None): "null",
    TableSpec: "table mapping",
    CostsSpec: "costs mapping",
}

INTRO = """# Parameters

One YAML file per evaluation (`params/<evaluation>.yaml`) holds these keys. Unknown keys and
wrong types are rejected before anything runs (`lcstats validate`), with the key, what was found
and what to write instead. Paths are relative to the YAML file.

This page is written from the parameter model in `lcstats/params.py` by `make docs`
(`python -m lcstats.params_reference`); a test fails when it is out of date.
"""


def _type_name(annotation: Any) -> str:
    """Plain words for a field's type: ``"text or null"``, ``"one of: ATE, ATT, ATO"``."""
    if annotation in _NAMES:
        return _NAMES[annotation]
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Literal:
        name = "one of: " + ", ".join(f"`{a}`" for a in args)
    elif origin in (typing.Union, types.UnionType):
        name = " or ".join(_type_name(a) for a in args)
    elif origin is list:
        name = "list of " + _type_name(args[0]).replace("one of:", "any of:")
    else:
        name = "mapping" if origin is dict else getattr(annotation, "__name__", str(annotation))
    return name


def _default(field: Any) -> str:
    """A field's default as YAML would write it, or *required*."""
    if field.is_required():
        return "**required**"
    value = field.default_factory() if field.default_factory else field.default
    if value is PydanticUndefined:
        return "**required**"
    return f"`{json.dumps(value)}`"


def _rows(model: type[BaseModel], skip: tuple[str, ...] = ()) -> list[str]:
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for name, field in model.model_fields.items():
        if name in skip:
            continue
        meaning = (field.description or "").replace("|", "\\|")
        type_name = _type_name(field.annotation).replace("|", "\\|")
        rows.append(f"| `{name}` | {type_name} | {_default(field)} | {meaning} |")
    return rows


def parameters_markdown() -> str:
    """Return the parameters reference as Markdown.

    Returns
    -------
    str
        An introduction, then one table each for the evaluation's keys, the run's time limits,
        a table mapping (`TableSpec`) and the costs mapping (`CostsSpec`).
    """
    parts = [
        INTRO.strip(),
        "## Evaluation",
        "\n".join(_rows(Params, skip=RUN_ONLY_FIELDS)),
        "## Run limits",
        "Read by `lcstats run` only (they do not change the results); `--timeout` overrides "
        "`timeout_minutes`.",
        "\n".join(_rows(Params, skip=notebook_fields())),
        "## A table mapping",
        "Instead of a path, any table key (`learners`, `action_items`, `skill_assessments`, "
        "`coaching_sessions`, `activity`) takes a mapping: a file with reading options, or a "
        "database table or query. Give `path`, or `source` with `table` or `query`.",
        "\n".join(_rows(TableSpec)),
        "## Costs",
        "What coaching cost and, optionally, what an outcome is worth (the analyst's assumption; "
        "a return on investment is shown only when one is given).",
        "\n".join(_rows(CostsSpec)),
    ]
    return "\n\n".join(parts) + "\n"


if __name__ == "__main__":
    print(parameters_markdown(), end="")
