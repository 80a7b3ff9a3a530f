"""`lcstats validate PARAMS.yaml`: exit 0 when valid; exit 2 with every problem listed otherwise."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from lcstats.cli import main
from tests.conftest import EXAMPLE, ROOT, write_params

LCSTATS = Path(sys.executable).parent / "lcstats"
TABLES = ("learners", "action_items", "skill_assessments")


@pytest.fixture(scope="module")
def mini_dir(tmp_path_factory) -> Path:
    """The first 60 learners of the example with their items and assessments."""
    out = tmp_path_factory.mktemp("mini")
    learners = pd.read_csv(EXAMPLE / "learners.csv", dtype=str, keep_default_na=False).head(60)
    learners.to_csv(out / "learners.csv", index=False)
    for table in TABLES[1:]:
        frame = pd.read_csv(EXAMPLE / f"{table}.csv", dtype=str, keep_default_na=False)
        frame[frame["learner_id"].isin(learners["learner_id"])].to_csv(
            out / f"{table}.csv", index=False
        )
    return out


def broken_copy(src: Path, dst: Path, edits: dict[str, dict[tuple[int, str], str]]) -> Path:
    """Copy the three tables of `src` to `dst`, setting cells {(row, column): value} per table."""
    dst.mkdir(parents=True, exist_ok=True)
    for table in TABLES:
        frame = pd.read_csv(src / f"{table}.csv", dtype=str, keep_default_na=False)
        for (row, column), value in edits.get(table, {}).items():
            frame.loc[row, column] = value
        frame.to_csv(dst / f"{table}.csv", index=False)
    return dst


def validate(capsys, params: Path) -> tuple[int, str, str]:
    code = main(["validate", str(params)])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert "internal error" not in err
    return code, out, err


def numbered(err: str) -> list[str]:
    """The numbered problem lines of an InputError description."""
    return [line for line in err.splitlines() if re.match(r"\s+\d+\. ", line)]


def test_example_params_are_valid(capsys):
    code, out, err = validate(capsys, ROOT / "params" / "example.yaml")
    assert code == 0, err
    assert "valid" in out
    assert "learners 2,000 rows" in out
    assert err == ""


def test_every_problem_in_every_file_is_listed_with_file_and_column(capsys, mini_dir, tmp_path):
    data = broken_copy(
        mini_dir,
        tmp_path / "data",
        {
            "learners": {(2, "team_id"): "", (4, "coached"): "maybe"},
            "action_items": {(3, "due_on"): "31/02/2026"},
            "skill_assessments": {(1, "wave"): "follow-up", (5, "level"): "9"},
        },
    )
    code, out, err = validate(capsys, write_params(tmp_path / "p.yaml", data))
    assert code == 2
    assert out == ""
    assert err.startswith("5 problems found:")
    lines = numbered(err)
    assert len(lines) == 5
    expected = [
        ("learners.csv", "team_id", "rows 4"),
        ("learners.csv", "coached", "rows 6"),
        ("action_items.csv", "due_on", "rows 5"),
        ("skill_assessments.csv", "wave", "rows 3"),
        ("skill_assessments.csv", "level", "rows 7"),
    ]
    for name, column, rows in expected:
        assert any(
            name in line and f"column '{column}'" in line and rows in line for line in lines
        ), (name, column, err)
    assert err.count("what to do:") == 5


def test_missing_file_and_missing_column(capsys, mini_dir, tmp_path):
    data = broken_copy(mini_dir, tmp_path / "data", {})
    (data / "action_items.csv").unlink()
    frame = pd.read_csv(data / "learners.csv", dtype=str).rename(columns={"team_id": "Team_ID"})
    frame.to_csv(data / "learners.csv", index=False)
    code, _, err = validate(capsys, write_params(tmp_path / "p.yaml", data))
    assert code == 2
    assert "2 problems found" in err
    assert "action_items.csv: the action_items file does not exist" in err
    assert "learners.csv, column 'team_id': required column 'team_id' is missing" in err
    assert "rename 'Team_ID' to 'team_id'" in err


def test_covariate_not_in_the_learners_file(capsys, mini_dir, tmp_path):
    params = write_params(tmp_path / "p.yaml", mini_dir, covariates=["tenure_months", "engagment"])
    code, _, err = validate(capsys, params)
    assert code == 2
    assert "column 'engagment'" in err and "did you mean 'engagement'" in err


def test_bad_parameters(capsys, mini_dir, tmp_path):
    params = write_params(
        tmp_path / "p.yaml", mini_dir, covariate=["role"], alpha="0.05x", as_of=...
    )
    code, _, err = validate(capsys, params)
    assert code == 2
    assert "3 problems found" in err
    assert "unknown parameter 'covariate'" in err and "did you mean 'covariates'" in err
    assert "parameter 'alpha': expected a number" in err
    assert "parameter 'as_of' is required but missing" in err
    assert str(params) in err


def test_missing_params_file(capsys, tmp_path):
    code, _, err = validate(capsys, tmp_path / "nope.yaml")
    assert code == 2
    assert "nope.yaml: parameters file not found" in err


def test_invalid_yaml(capsys, tmp_path):
    params = tmp_path / "p.yaml"
    params.write_text('evaluation: "x\nas_of: 2026-06-30\n', encoding="utf-8")
    code, _, err = validate(capsys, params)
    assert code == 2
    assert "not readable as YAML" in err


@pytest.fixture(scope="module")
def example_variants(tmp_path_factory) -> Path:
    """Learner tables for the example programme: everyone coached; a constant covariate."""
    out = tmp_path_factory.mktemp("variants")
    learners = pd.read_csv(EXAMPLE / "learners.csv", dtype=str, keep_default_na=False)
    learners.assign(coached="1").to_csv(out / "all_coached.csv", index=False)
    learners.assign(engagement="3.5").to_csv(out / "constant.csv", index=False)
    return out


def test_every_learner_coached_cannot_be_estimated(capsys, example_variants, tmp_path):
    params = write_params(
        tmp_path / "p.yaml", EXAMPLE, learners=str(example_variants / "all_coached.csv")
    )
    code, _, err = validate(capsys, params)
    assert code == 2
    assert err.startswith("cannot estimate:")
    assert "no comparison group" in err


def test_constant_covariate_cannot_be_estimated(capsys, example_variants, tmp_path):
    params = write_params(
        tmp_path / "p.yaml",
        EXAMPLE,
        learners=str(example_variants / "constant.csv"),
        covariates=["tenure_months", "engagement"],
    )
    code, _, err = validate(capsys, params)
    assert code == 2
    assert err.startswith("cannot estimate:")
    assert "covariate 'engagement' has the same value for every learner" in err


def test_console_script_exits_2_for_a_broken_file(mini_dir, tmp_path):
    data = broken_copy(
        mini_dir, tmp_path / "data", {"action_items": {(0, "created_on"): "tomorrow"}}
    )
    params = write_params(tmp_path / "p.yaml", data)
    result = subprocess.run(
        [str(LCSTATS), "validate", str(params)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "1 problem found" in result.stderr
    assert "action_items.csv, column 'created_on'" in result.stderr
    assert "'tomorrow'" in result.stderr and "[rows 2]" in result.stderr
