"""The package's shape: layers enforced by import-linter, functions that fit on one screen, and an
ARCHITECTURE.md that names every module of the tree."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "lcstats"
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
MAX_FUNCTION_LINES = 60  # a function's body (docstring aside) must fit on one screen
LAYERS = ("core", "data", "outcomes", "estimation", "reporting", "running")


def lint_imports(cwd: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(cwd / "pyproject.toml"), "--no-cache", *extra],
        cwd=cwd,
        env={"PYTHONPATH": str(cwd), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_layers_contract_is_kept():
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 kept, 0 broken" in done.stdout


def test_a_lower_layer_importing_a_higher_one_is_caught(tmp_path):
    shutil.copytree(PACKAGE, tmp_path / "lcstats", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    errors = tmp_path / "lcstats" / "core" / "errors.py"
    errors.write_text(errors.read_text() + "\nfrom lcstats.running import runner  # wrong way\n")
    done = lint_imports(tmp_path)
    assert done.returncode == 1, done.stdout
    assert "lcstats.core is not allowed to import lcstats.running" in done.stdout
    assert "lcstats.core.errors -> lcstats.running" in done.stdout


def _body_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    body = node.body
    first = body[0]
    if isinstance(first, ast.Expr) and isinstance(getattr(first, "value", None), ast.Constant):
        body = body[1:] or body
    return body[-1].end_lineno - body[0].lineno + 1


def test_every_function_fits_on_one_screen():
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = _body_lines(node)
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({n} lines)")
    assert not long, "split these at their natural seams:\n" + "\n".join(long)


@pytest.mark.parametrize("layer", LAYERS)
def test_each_subpackage_says_what_lives_there_and_what_it_may_use(layer):
    doc = ast.get_docstring(ast.parse((PACKAGE / layer / "__init__.py").read_text()))
    assert doc and len(doc.splitlines()) <= 6
    assert re.search(r"may use|imports nothing", doc), doc


def test_architecture_md_names_every_module_of_the_tree():
    text = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    modules = {
        p.relative_to(PACKAGE).as_posix()
        for p in PACKAGE.rglob("*.py")
        if p.name not in ("__init__.py", "__main__.py")
    }
    missing = sorted(m for m in modules if f"{Path(m).name}" not in text)
    assert not missing, f"ARCHITECTURE.md does not mention: {missing}"
    others = {p.name for d in ("tools", "tests", "benchmarks") for p in (ROOT / d).glob("*.py")}
    known = {Path(m).name for m in modules} | others | {"__init__.py", "__main__.py"}
    stale = sorted(set(re.findall(r"\b([a-z_]+\.py)\b", text)) - known)
    assert not stale, f"ARCHITECTURE.md names modules that no longer exist: {stale}"


def test_no_complexity_noqa_in_the_package():
    found = [
        f"{p.relative_to(ROOT)}:{i}"
        for p in PACKAGE.rglob("*.py")
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if re.search(r"noqa:.*\b(C901|PLR09\d\d)\b", line)
    ]
    assert not found, found


def test_ruff_finds_nothing():
    ruff = Path(sys.executable).parent / "ruff"
    done = subprocess.run(
        [str(ruff), "check", "lcstats", "tests", "benchmarks", "tools"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
