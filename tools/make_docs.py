"""Write the generated documentation pages: the parameters reference and the API pages.

``docs/parameters.md`` comes from the `Params` model and ``docs/api/<layer>.md`` names every
module of the layer, so neither can drift from the code (tests/test_docs.py checks both).
Run by ``make docs`` before ``mkdocs build --strict``.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import sys
from pathlib import Path

import lcstats
from lcstats.params_reference import parameters_markdown

DOCS = Path(__file__).resolve().parent.parent / "docs"
# one API page per layer, top-down as in ARCHITECTURE.md: (page, title, what it holds)
LAYERS = [
    ("package", "The package", "The names a notebook uses, imported as `import lcstats as lc`."),
    ("running", "Running", "Running evaluations unattended: the runner, kernels, the ledger."),
    ("reporting", "Reporting", "What people read: the report, results.json, plots, portfolio."),
    ("estimation", "Estimation", "Effects of coaching, designs, diagnostics and pooling."),
    ("outcomes", "Outcomes", "Learner-level outcomes and panels from the validated tables."),
    ("data", "Data", "Reading, validating and simulating the input tables."),
    ("params", "Parameters", "The parameter model (see also the parameters reference)."),
    ("core", "Core", "Errors, files, options and provenance shared by every layer."),
]


def layer_modules(layer: str) -> list[str]:
    """Every module of a layer, the layer's package first."""
    if layer == "params":
        return ["lcstats.params", "lcstats.params_reference"]
    extra = ["lcstats.cli"] if layer == "running" else []
    package = importlib.import_module(f"lcstats.{layer}")
    names = [
        info.name for info in pkgutil.walk_packages(package.__path__, prefix=f"lcstats.{layer}.")
    ]
    return [f"lcstats.{layer}", *sorted(names), *extra]


def _summary(obj: object) -> str:
    """The first line of an object's docstring."""
    return (inspect.getdoc(obj) or "").split("\n", 1)[0].replace("|", "\\|")


def package_blocks() -> list[str]:
    """The package page: its docstring, then a table of the names it exports, linked."""
    rows = ["| name | what it is |", "|---|---|"]
    for name in sorted(lcstats._EXPORTS, key=str.lower):
        path = f"{lcstats._EXPORTS[name]}.{name}"
        rows.append(f"| [`{name}`][{path}] | {_summary(getattr(lcstats, name))} |")
    return ["::: lcstats\n    options:\n      members: false", "\n".join(rows)]


def api_page(layer: str, title: str, about: str) -> str:
    """The Markdown of one API page: a title, a sentence, then mkdocstrings blocks."""
    if layer == "package":
        blocks = package_blocks()
    else:
        blocks = [f"::: {module}" for module in layer_modules(layer)]
    return "\n\n".join([f"# {title}", about, *blocks]) + "\n"


def pages() -> dict[Path, str]:
    """Every generated page, by path."""
    out = {DOCS / "parameters.md": parameters_markdown()}
    for layer, title, about in LAYERS:
        out[DOCS / "api" / f"{layer}.md"] = api_page(layer, title, about)
    return out


def main() -> int:
    for path, text in pages().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(DOCS.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
