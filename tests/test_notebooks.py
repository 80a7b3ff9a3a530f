"""Notebooks: parameters declared, params files match them, outputs stripped in git."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
import yaml

from lcstats.params import RUN_ONLY_FIELDS, notebook_fields
from tests.conftest import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
# the notebooks lcstats run can run with a params file (explore.ipynb reads one itself)
PARAMETERISED = [
    ROOT / "notebooks" / f"{n}.ipynb" for n in ("evaluation", "data_quality", "diagnostics")
]
PARAMS_FILES = sorted((ROOT / "params").glob("*.yaml"))
RUNNER_ONLY = {"output_dir", "run_id", "prepared_inputs", "previous_results"}


def declared_parameters(path: Path) -> dict[str, ast.AnnAssign | ast.Assign]:
    nb = json.loads(path.read_text(encoding="utf-8"))
    cells = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, f"{path.name} needs exactly one cell tagged 'parameters'"
    tree = ast.parse("".join(cells[0]["source"]))
    out = {}
    for node in tree.body:
        if isinstance(node, ast.AnnAssign):
            out[node.target.id] = node
        elif isinstance(node, ast.Assign):
            out[node.targets[0].id] = node
    return out


def test_every_notebook_is_known():
    assert {p.name for p in NOTEBOOKS} == {p.name for p in PARAMETERISED} | {"explore.ipynb"}


@pytest.mark.parametrize("notebook", PARAMETERISED, ids=lambda p: p.name)
def test_parameters_cell_is_commented(notebook):
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    cell = next(c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
    for line in "".join(cell["source"]).splitlines():
        if "=" in line and not line.startswith("#"):
            assert "#" in line, f"parameter line without a comment: {line}"


@pytest.mark.parametrize("params_file", PARAMS_FILES, ids=lambda p: p.name)
def test_every_params_key_is_a_notebook_parameter(params_file):
    keys = set(yaml.safe_load(params_file.read_text(encoding="utf-8"))) - set(RUN_ONLY_FIELDS)
    declared = declared_parameters(ROOT / "notebooks" / "evaluation.ipynb")
    assert keys <= set(declared), f"not declared in the notebook: {sorted(keys - set(declared))}"


def test_notebook_declares_exactly_the_params_model_fields():
    declared = set(declared_parameters(ROOT / "notebooks" / "evaluation.ipynb"))
    assert declared - RUNNER_ONLY == set(notebook_fields())


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_are_stored_without_outputs(notebook):
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    assert "papermill" not in nb.get("metadata", {})
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell.get("outputs", []) == [] and cell.get("execution_count") is None
