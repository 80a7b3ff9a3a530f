"""Small-cell suppression for every breakdown a report shows.

A count below the minimum group size is hidden, and so is a complementary cell in the same row or
column when a hidden cell could otherwise be recovered as a total minus the others.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def suppress_counts(counts: pd.DataFrame, min_group_size: int) -> tuple[pd.DataFrame, int]:
    """Hide small counts (1 to min_group_size - 1) with complementary suppression.

    Parameters
    ----------
    counts : DataFrame
        A two-way table of learner counts (margins are computed by the reader, so they must not
        reveal a hidden cell).
    min_group_size : int
        Smallest count that may be shown.

    Returns
    -------
    (DataFrame, int)
        The table with hidden cells as missing values (nullable integers), and the number of
        cells hidden.

    Examples
    --------
    >>> t = pd.DataFrame({"a": [10, 2], "b": [7, 9]}, index=["x", "y"])
    >>> shown, hidden = suppress_counts(t, 5)
    >>> hidden, shown.isna().to_numpy().tolist()
    (4, [[True, True], [True, True]])
    """
    values = counts.to_numpy(dtype=float)
    hide = (values > 0) & (values < min_group_size)
    changed = True
    while changed:
        changed = False
        for axis in (0, 1):
            lines = hide if axis == 1 else hide.T
            vals = values if axis == 1 else values.T
            for i in range(lines.shape[0]):
                if lines[i].sum() == 1 and lines.shape[1] > 1:
                    # hide the smallest visible cell too (a zero counts: total - 0 reveals the cell),
                    # preferring one whose crossing line already hides a cell: that protects both
                    # lines at once instead of starting a new line that needs a complement too
                    candidates = np.where(~lines[i], vals[i], np.inf)
                    crossing = (lines.sum(axis=0) - lines[i]) > 0
                    if np.isfinite(candidates[crossing]).any():
                        candidates = np.where(crossing, candidates, np.inf)
                    lines[i, int(np.argmin(candidates))] = True
                    changed = True
            if axis == 0:
                hide = lines.T
    shown = counts.astype("Int64").mask(hide)
    return shown, int(hide.sum())


def suppress_groups(
    frame: pd.DataFrame, count_column: str, min_group_size: int
) -> tuple[pd.DataFrame, int]:
    """Blank every statistic of a group row with fewer than `min_group_size` learners.

    Returns the frame with the small rows' values (other than their label columns) missing, and
    the number of rows hidden.
    """
    small = frame[count_column] < min_group_size
    out = frame.copy()
    value_cols = [c for c in out.columns if pd.api.types.is_numeric_dtype(out[c])]
    for col in value_cols:
        out[col] = (
            out[col].astype("Float64") if out[col].dtype.kind == "f" else out[col].astype("Int64")
        )
        out.loc[small, col] = pd.NA
    return out, int(small.sum())
