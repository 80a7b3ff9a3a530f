"""The example evaluation's results.json, byte for byte, against the reference kept in git.

A change that moves any number of the example (a refactoring must not) fails here. When a change
is meant to move them, regenerate the reference and say why in the commit:

    LCSTATS_UPDATE_REFERENCE=1 .venv/bin/python -m pytest tests/test_reference_results.py
"""

from __future__ import annotations

import os
from pathlib import Path

from lcstats.core.files import dumps_json
from lcstats.reporting.results import results_document

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = ROOT / "tests" / "reference" / "example-results.json"


def test_example_results_are_byte_identical_to_the_reference(example_evaluation):
    done = example_evaluation
    args = {k: v for k, v in done.report_arguments("reference").items() if k != "run_id"}
    # the data paths are absolute: the reference holds them relative to the repository
    text = dumps_json(results_document(**args)).replace(str(ROOT), "<repository>")
    if os.environ.get("LCSTATS_UPDATE_REFERENCE") == "1":
        REFERENCE.write_text(text, encoding="utf-8")
    assert text == REFERENCE.read_text(encoding="utf-8")
