"""Documentation an analyst can find: the generated pages are current and the site builds with
no warnings (mkdocs --strict turns every warning, such as a broken link or a docstring naming
a parameter the function lacks, into a failure)."""

from __future__ import annotations

import importlib.util
import os
import pkgutil
import subprocess
import sys

import lcstats
from tests.conftest import ROOT


def _make_docs():
    spec = importlib.util.spec_from_file_location("make_docs", ROOT / "tools" / "make_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_pages_are_current():
    stale = [
        str(path.relative_to(ROOT))
        for path, text in _make_docs().pages().items()
        if not path.exists() or path.read_text(encoding="utf-8") != text
    ]
    assert not stale, f"out of date (run `make docs`): {stale}"


def test_parameters_reference_names_every_key_and_its_default():
    from lcstats.params import CostsSpec, Params, TableSpec

    text = (ROOT / "docs" / "parameters.md").read_text(encoding="utf-8")
    for model in (Params, CostsSpec, TableSpec):
        for name, field in model.model_fields.items():
            assert f"| `{name}` |" in text, name
            assert field.description, f"{model.__name__}.{name} has no description"
    assert "| `alpha` | number | `0.05` |" in text
    assert "| `as_of` | text | **required** |" in text


def test_every_module_is_in_the_api_reference():
    pages = "".join(p.read_text(encoding="utf-8") for p in (ROOT / "docs" / "api").glob("*.md"))
    modules = [m.name for m in pkgutil.walk_packages(lcstats.__path__, prefix="lcstats.")]
    missing = [m for m in modules if f"::: {m}\n" not in pages + "\n" and m != "lcstats.__main__"]
    assert not missing


def test_readme_links_the_docs():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "make docs" in readme
    assert "docs/parameters.md" in readme


def test_site_builds_without_warnings(tmp_path):
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    warnings = [line for line in done.stderr.splitlines() if "WARNING" in line]
    assert done.returncode == 0 and not warnings, done.stderr[-3000:]
    page = (tmp_path / "site" / "api" / "estimation" / "index.html").read_text(encoding="utf-8")
    assert "estimate_effect" in page and "Parameters" in page
    assert "fonts.googleapis" not in (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
