"""Notebook display: every result object shows a compact summary, with its tables folded away.

"Compact" is measured: the text a reader sees before opening anything (outside ``<details>``)
stays short, and ``repr`` is a line, not the 30,000 characters a dataclass repr of the tables
would print.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import pytest

import lcstats
from lcstats.core.display import Readings, summary_html

VISIBLE_LIMIT = 2_000  # characters of text shown before any <details> is opened
# repr of a result holding other results is one line; a leaf result prints its text summary
# (an estimate, a balance or subgroup table), as statsmodels' results do
CONTAINER_REPR_LIMIT = 200
CONTAINERS = {"Evaluation", "Programme", "LearnerOutcomes", "DataQuality", "EffectSet"}
CONTAINERS |= {"Diagnostics", "DesignResult"}
REPR_LIMIT = 6_000


def visible_text(html: str) -> str:
    """The text of an HTML fragment outside <details> blocks."""
    folded = re.sub(r"<details>.*?</details>", "", html, flags=re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", folded)).strip()


def results_of(ev) -> dict[str, object]:
    """Every result object an evaluation holds, by name."""
    found = {
        "Evaluation": ev,
        "Programme": ev.programme,
        "LearnerOutcomes": ev.outcomes,
        "DataQuality": ev.outcomes.quality,
        "EffectSet": ev.effects,
        "EffectEstimate": ev.effects.estimates[0],
        "Diagnostics": ev.diagnostics,
        "Balance": ev.diagnostics.balance,
        "DesignResult": ev.design,
        "HazardRatio": ev.design.hazard,
        "CompletionCurves": ev.design.completion,
    }
    for kind in ("evalues", "dose", "subgroups", "manager"):
        for outcome, result in getattr(ev.diagnostics, kind).items():
            found[f"{kind} ({outcome})"] = result
    return found


def test_every_result_of_an_evaluation_is_compact(example_evaluation):
    for name, result in results_of(example_evaluation).items():
        html = result._repr_html_()
        assert 'class="lcstats-summary"' in html, name
        shown = visible_text(html)
        assert 20 < len(shown) <= VISIBLE_LIMIT, (name, len(shown), shown[:200])
        limit = CONTAINER_REPR_LIMIT if name in CONTAINERS else REPR_LIMIT
        assert len(repr(result)) <= limit, (name, len(repr(result)))


def test_evaluation_shows_its_headlines_and_folds_its_tables(example_evaluation):
    ev = example_evaluation
    html = ev._repr_html_()
    shown = visible_text(html)
    for sentence in ev.headlines():
        assert sentence.split(" (")[0] in shown
    titles = re.findall(r"<summary>(.*?)</summary>", html)
    assert {"Every estimate", "Data quality", "Balance of the covariates"} <= set(titles)
    assert "<table" not in re.sub(r"<details>.*?</details>", "", html, flags=re.S)
    assert repr(ev).startswith("Evaluation('example', observational, 2,000 learners")


def test_data_quality_is_a_table_of_every_table(example_evaluation):
    quality = example_evaluation.outcomes.quality
    frame = quality.to_frame()
    assert list(frame.index) == list(quality)
    assert (frame["rows read"] >= frame["rows used"]).all()
    assert dict(quality)["learners"] is quality["learners"]
    assert "<table" in quality._repr_html_()


def test_diagnostics_readings_are_markdown(example_evaluation):
    readings = example_evaluation.diagnostics.readings()
    text = readings._repr_markdown_()
    assert text.count("\n- ") >= 4 and text.startswith("- **")
    assert "pre\\_active\\_weeks" in text or "pre_active_weeks" not in repr(readings)


def test_summary_escapes_text_and_folds_tables():
    import pandas as pd

    html = summary_html("<b>1 < 2</b>", ["a & b"], {"T": pd.DataFrame({"x": [1.23456]})})
    assert "&lt;b&gt;1 &lt; 2&lt;/b&gt;" in html and "a &amp; b" in html
    assert "<details><summary>T</summary>" in html and "1.235" in html
    assert Readings({"a_b": "x*y"})._repr_markdown_() == "- **a\\_b**: x\\*y"


def _result_classes() -> list[type]:
    """Classes of lcstats that are results: they have a reading() or a to_frame()."""
    found = {}
    for info in pkgutil.walk_packages(lcstats.__path__, prefix="lcstats."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and (
                hasattr(cls, "reading") or hasattr(cls, "to_frame")
            ):
                found[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return [found[k] for k in sorted(found)]


@pytest.mark.parametrize("cls", _result_classes(), ids=lambda c: c.__qualname__)
def test_every_result_class_has_a_compact_display(cls):
    source = inspect.getsource(cls._repr_html_) if hasattr(cls, "_repr_html_") else ""
    assert source, f"{cls.__qualname__} has no _repr_html_"
    assert "summary_html" in source or "super()._repr_html_" in source or "_html(" in source
