"""Evaluation parameters: unknown, missing, mistyped and inconsistent keys are clear problems."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from lcstats.core.errors import InputError, Problem
from lcstats.core.options import METHODS
from lcstats.params import Params, load_params, parse_params
from tests.conftest import ROOT

BASE = {
    "evaluation": "spring",
    "learners": "/data/learners.csv",
    "action_items": "/data/action_items.csv",
    "skill_assessments": "/data/skill_assessments.csv",
    "as_of": "2026-06-30",
}


def problems_of(**changes) -> tuple[Problem, ...]:
    raw = {k: v for k, v in {**BASE, **changes}.items() if v is not ...}
    with pytest.raises(InputError) as info:
        parse_params(raw, source="spring.yaml")
    problems = info.value.problems
    assert len(set(problems)) == len(problems)
    for p in problems:
        assert p.source == "spring.yaml"
        assert p.hint, p
        assert "Input should" not in p.message and "Value error" not in p.message, p
    return problems


def only(problems: tuple[Problem, ...]) -> Problem:
    assert len(problems) == 1, problems
    return problems[0]


def write_yaml(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_are_filled_in():
    p = parse_params(dict(BASE))
    assert p.methods == list(METHODS) and p.headline_method == "aipw"
    assert (p.alpha, p.scale_min, p.scale_max, p.estimand, p.cluster) == (
        0.05,
        1,
        5,
        "ATE",
        "team_id",
    )
    assert p.notebook_parameters()["as_of"] == "2026-06-30"


def test_example_params_load_with_paths_resolved_against_the_yaml_folder():
    p = load_params(ROOT / "params" / "example.yaml")
    assert p.evaluation == "example"
    for key in ("learners", "action_items", "skill_assessments"):
        path = Path(getattr(p, key))
        assert path.is_absolute() and path.is_file()
        assert path == (ROOT / "data" / "example" / f"{key}.csv").resolve()


def test_relative_paths_resolve_against_the_yaml_folder_not_the_working_directory(
    tmp_path, monkeypatch
):
    folder = tmp_path / "params"
    folder.mkdir()
    path = write_yaml(
        folder / "x.yaml",
        'evaluation: "x"\nas_of: "2026-06-30"\nlearners: "../data/l.csv"\n'
        'action_items: "items.csv"\nskill_assessments: "/abs/s.csv"\n',
    )
    monkeypatch.chdir(ROOT)
    p = load_params(path)
    assert p.learners == str((tmp_path / "data" / "l.csv").resolve())
    assert p.action_items == str((folder / "items.csv").resolve())
    assert p.skill_assessments == "/abs/s.csv"


@pytest.mark.parametrize(
    ("typo", "meant"),
    [("covariate", "covariates"), ("Alpha", "alpha"), ("headline", "headline_method")],
)
def test_unknown_key_is_rejected_with_a_suggestion(typo, meant):
    p = only(problems_of(**{typo: "x"}))
    assert f"unknown parameter '{typo}'" in p.message
    assert f"did you mean '{meant}'" in p.hint


def test_unknown_key_without_a_close_match():
    p = only(problems_of(favourite_food="soup"))
    assert "unknown parameter 'favourite_food'" in p.message and "remove it" in p.hint


@pytest.mark.parametrize(
    ("key", "value", "expected", "hint"),
    [
        ("alpha", "0.05x", "expected a number, found '0.05x'", "plain number"),
        ("methods", "aipw", "expected a list, found 'aipw'", '["aipw"]'),
        ("covariates", "tenure_months", "expected a list", '["tenure_months"]'),
        ("scale_min", "1", "expected a whole number, found '1'", "without quotes"),
        ("min_group_size", 2.5, "expected a whole number, found 2.5", "whole number"),
        ("title", 5, "expected text, found 5", "quotes"),
        ("columns", ["learners"], "expected a mapping", "{name: value"),
    ],
)
def test_wrong_types(key, value, expected, hint):
    p = only(problems_of(**{key: value}))
    assert f"parameter '{key}'" in p.message and expected in p.message
    assert hint in p.hint


@pytest.mark.parametrize("alpha", [0, 0.5, 1, -0.05])
def test_alpha_out_of_range(alpha):
    p = only(problems_of(alpha=alpha))
    assert "between 0 and 0.5" in p.message


def test_skill_waves_are_normalised_and_must_include_pre_and_post():
    assert parse_params({**BASE, "skill_waves": [" Pre", "MID", "post"]}).skill_waves == [
        "pre",
        "mid",
        "post",
    ]
    assert parse_params(BASE).skill_waves == ["pre", "post"]
    p = only(problems_of(skill_waves=["mid", "post"]))
    assert "parameter 'skill_waves'" in p.message and "includes pre and post" in p.message
    p = only(problems_of(skill_waves=["pre", "mid", "Mid", "post"]))
    assert "distinct, non-empty wave names" in p.message


def test_hazard_max_items_is_a_number_of_items_or_null():
    assert parse_params(BASE).hazard_max_items == 200_000
    assert parse_params({**BASE, "hazard_max_items": None}).hazard_max_items is None
    p = only(problems_of(hazard_max_items=10))
    assert "parameter 'hazard_max_items'" in p.message and "at least 1000" in p.message


def test_unquoted_yaml_date_is_accepted_and_normalised(tmp_path):
    path = write_yaml(
        tmp_path / "p.yaml",
        "evaluation: x\nas_of: 2026-06-30\nlearners: l.csv\naction_items: a.csv\nskill_assessments: s.csv\n",
    )
    assert yaml.safe_load(path.read_text())["as_of"] == dt.date(2026, 6, 30)
    p = load_params(path)
    assert p.as_of == "2026-06-30" and isinstance(p.as_of, str)
    assert parse_params({**BASE, "as_of": dt.date(2026, 1, 2)}).as_of == "2026-01-02"


@pytest.mark.parametrize(
    "bad", ["30/06/2026", "2026-02-30", "June 2026", "20260630", dt.datetime(2026, 6, 30, 9, 0)]
)
def test_bad_as_of_date(bad):
    p = only(problems_of(as_of=bad))
    assert "parameter 'as_of'" in p.message and "YYYY-MM-DD" in p.message
    assert 'as_of: "2026-06-30"' in p.hint


def test_missing_required_keys():
    problems = problems_of(evaluation=..., as_of=..., learners=..., skill_assessments=...)
    messages = [p.message for p in problems]
    for key in ("evaluation", "as_of", "learners", "skill_assessments"):
        assert f"parameter '{key}' is required but missing" in messages
    as_of = next(p for p in problems if "'as_of'" in p.message)
    assert 'as_of: "2026-06-30"' in as_of.hint


def test_headline_method_not_in_methods():
    p = only(problems_of(methods=["difference", "ipw"]))
    assert "headline_method 'aipw' is not one of the methods (difference, ipw)" in p.message
    assert "add 'aipw' to methods" in p.hint


def test_cluster_also_a_covariate():
    p = only(problems_of(covariates=["tenure_months", "team_id"], cluster="team_id"))
    assert "'team_id' cannot be both the cluster and a covariate" in p.message
    assert "remove 'team_id' from covariates" in p.hint


def test_treatment_also_a_covariate():
    p = only(problems_of(treatment="manager_coached"))  # manager_coached is a default covariate
    assert "treatment 'manager_coached' cannot also be a covariate" in p.message


def test_repeated_covariate():
    p = only(problems_of(covariates=["role", "cohort", "role"]))
    assert "'role' more than once" in p.message


def test_several_inconsistencies_are_reported_together():
    problems = problems_of(
        scale_min=5, scale_max=1, methods=["ipw"], cluster="role", covariates=["role"]
    )
    assert len(problems) == 3
    assert "scale_min (5) must be smaller than scale_max (1)" in problems[0].message


def test_params_built_directly_are_checked_too():
    with pytest.raises(ValidationError, match="not one of the methods"):
        Params(**BASE, methods=["ipw"])


@pytest.mark.parametrize(
    ("changes", "found"),
    [
        ({"methods": ["aipw", "dr"]}, "'dr'"),
        ({"headline_method": "doubly-robust"}, "'doubly-robust'"),
    ],
)
def test_unknown_method_lists_the_allowed_values(changes, found):
    p = only(problems_of(**changes))
    assert "expected one of 'difference', 'regression', 'ipw' or 'aipw'" in p.message
    assert f"found {found}" in p.message


def test_unknown_estimand():
    p = only(problems_of(estimand="att"))
    assert "'ATE', 'ATT' or 'ATO'" in p.message and "'att'" in p.message


@pytest.mark.parametrize("name", ["a/b", "my evaluation", "../up", "-x", "", "x" * 81])
def test_evaluation_name_must_be_a_folder_name(name):
    p = only(problems_of(evaluation=name))
    assert "parameter 'evaluation'" in p.message and "no spaces or slashes" in p.message


def test_unknown_table_in_columns():
    p = only(problems_of(columns={"learner": {"learner_id": "EmployeeRef"}}))
    assert "parameter 'columns'" in p.message and "unknown table(s) 'learner'" in p.message
    assert "did you mean 'learners'" in p.message


def test_column_mapping_values_must_be_text():
    p = only(problems_of(columns={"learners": {"learner_id": 5}}))
    assert "parameter 'columns.learners.learner_id': expected text, found 5" in p.message
    assert "quotes" in p.hint


def test_all_problems_at_once():
    problems = problems_of(covariate=["x"], alpha="high", evaluation=...)
    assert len(problems) == 3


def test_params_file_missing(tmp_path):
    with pytest.raises(InputError) as info:
        load_params(tmp_path / "nope.yaml")
    p = only(info.value.problems)
    assert p.source == str(tmp_path / "nope.yaml")
    assert "parameters file not found" in p.message


@pytest.mark.parametrize(
    "text",
    ['evaluation: "x\nas_of: "2026-06-30"\n', "evaluation: x\n  as_of: 2026-06-30\n", "a: [1, 2\n"],
    ids=["open quote", "bad indent", "open bracket"],
)
def test_invalid_yaml_syntax(tmp_path, text):
    path = write_yaml(tmp_path / "bad.yaml", text)
    with pytest.raises(InputError) as info:
        load_params(path)
    p = only(info.value.problems)
    assert p.source == str(path)
    assert "not readable as YAML" in p.message and "line" in p.message
    assert "YAML syntax" in p.hint


def test_key_given_twice_is_rejected(tmp_path):
    path = write_yaml(tmp_path / "twice.yaml", 'evaluation: "a"\nalpha: 0.05\nalpha: 0.1\n')
    with pytest.raises(InputError) as info:
        load_params(path)
    p = only(info.value.problems)
    assert "'alpha' is given twice (lines 2 and 3)" in p.message


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "just text\n"], ids=["empty", "list", "scalar"])
def test_params_file_that_is_not_a_mapping(tmp_path, text):
    path = write_yaml(tmp_path / "p.yaml", text)
    with pytest.raises(InputError) as info:
        load_params(path)
    assert all(p.source == str(path) for p in info.value.problems)
    if text:
        assert "expected a mapping of 'key: value' lines" in only(info.value.problems).message
    else:
        assert len(info.value.problems) == 5  # every required key is reported missing


def test_params_file_not_utf8(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_bytes('title: "Évaluation"\n'.encode("latin-1"))
    with pytest.raises(InputError, match="not UTF-8"):
        load_params(path)
