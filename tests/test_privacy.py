"""Small-cell suppression: nothing below the minimum shown, nothing recoverable from margins."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lcstats.reporting.privacy import suppress_counts, suppress_groups


def _recoverable(shown: pd.DataFrame) -> bool:
    """True when some hidden cell is the only hidden cell of its row or column (total - others)."""
    hidden = shown.isna().to_numpy()
    return bool((hidden.sum(axis=1) == 1).any() or (hidden.sum(axis=0) == 1).any())


@pytest.mark.parametrize("k", [3, 5, 10])
def test_random_tables_hide_small_cells_and_their_complements(rng, k):
    for _ in range(200):
        shape = tuple(rng.integers(2, 6, size=2))
        counts = pd.DataFrame(rng.integers(0, 25, size=shape))
        shown, hidden = suppress_counts(counts, k)
        values = counts.to_numpy()
        visible = shown.notna().to_numpy()
        assert not ((values > 0) & (values < k) & visible).any()
        assert hidden == (~visible).sum()
        assert not _recoverable(shown)
        # shown cells are untouched
        np.testing.assert_array_equal(shown.to_numpy(dtype=float)[visible], values[visible])


def test_nothing_hidden_when_all_cells_are_large_or_zero():
    counts = pd.DataFrame({"a": [10, 0], "b": [7, 9]})
    shown, hidden = suppress_counts(counts, 5)
    assert hidden == 0
    assert shown.notna().all().all()


def test_group_rows_below_minimum_are_blanked():
    frame = pd.DataFrame({"cohort": ["x", "y"], "learners": [12, 3], "follow_through": [0.5, 0.9]})
    out, hidden = suppress_groups(frame, "learners", 5)
    assert hidden == 1
    assert out.loc[1, "cohort"] == "y"
    assert pd.isna(out.loc[1, "follow_through"]) and pd.isna(out.loc[1, "learners"])
    assert out.loc[0, "follow_through"] == 0.5


def test_report_tables_fail_closed_on_a_small_group():
    from lcstats.core.errors import PrivacyError
    from lcstats.reporting.report import _Tables

    table = _Tables(min_group_size=5)
    ok = pd.DataFrame({"Group": ["a", "b"], "Learners": ["1,234", "suppressed"]})
    assert "1,234" in table(ok, counts=("Learners",))
    bad = pd.DataFrame({"Group": ["a", "b"], "Learners": ["12", "3"]})
    with pytest.raises(PrivacyError, match="group of 3 learners"):
        table(bad, counts=("Learners",))


def test_report_tables_escape_text():
    from lcstats.reporting.report import _Tables

    html = _Tables(5)(pd.DataFrame({"<b>Cohort</b>": ["<script>alert(1)</script>"]}))
    assert "<script>" not in html and "&lt;script&gt;" in html and "&lt;b&gt;" in html
