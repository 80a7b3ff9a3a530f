"""What the dose, subgroup and manager analyses share: input checks, an effect on a subset that
never raises, the words of their readings, and their tidy frames (text and HTML)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from lcstats.core.display import summary_html
from lcstats.core.errors import EstimationError
from lcstats.core.options import METHODS, check_choice
from lcstats.estimation.effects import (
    EffectEstimate,
    estimate_effect,
    format_interval,
    format_p,
)
from lcstats.outcomes.learner import LearnerOutcomes, analysis_sample

if TYPE_CHECKING:
    from lcstats.estimation.heterogeneity.dose import DoseBand
    from lcstats.estimation.heterogeneity.manager import ManagerEffects
    from lcstats.estimation.heterogeneity.subgroups import SubgroupEffect

OUTCOME_NAMES = {"follow_through": "follow-through", "skills_gap": "the skills gap"}

# Tidy-frame columns. Every effect row has the estimate columns, then the group sizes and a note.
ESTIMATE_COLUMNS = ("estimate", "std_error", "ci_low", "ci_high", "p_value")
GROUP_COLUMNS = ("n_treated", "n_control", "note")


# ----------------------------------------------------------------------------------------------
# Inputs, and an effect on a subset of learners


def _frame(data: LearnerOutcomes | pd.DataFrame) -> pd.DataFrame:
    """The learners' frame of a `LearnerOutcomes` or a DataFrame (anything else refused)."""
    frame = data.data if isinstance(data, LearnerOutcomes) else data
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"data must be a DataFrame or LearnerOutcomes, got {type(data).__name__}")
    return frame


def _check_columns(frame: pd.DataFrame, columns: Sequence[str]) -> None:
    """Refuse columns that are not in the frame, naming them and the ones it has."""
    missing = [c for c in dict.fromkeys(columns) if c not in frame.columns]
    if missing:
        raise ValueError(
            f"column(s) {', '.join(missing)} not in data; have {', '.join(map(str, frame.columns))}"
        )


def _sample(
    frame: pd.DataFrame,
    *,
    check: Sequence[str],
    outcome: str,
    treatment: str,
    covariates: Sequence[str],
    cluster: str | None,
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Refuse missing columns, then keep the learners with every column used (and count the rest)."""
    _check_columns(frame, [*check, *([cluster] if cluster else [])])
    sample = analysis_sample(
        frame, outcome=outcome, treatment=treatment, covariates=covariates, cluster=cluster
    )
    return sample.data, {k: v for k, v in sample.excluded.items() if v}


def _check_common(method: str, alpha: float, min_group_size: int) -> None:
    """Check the options the three analyses share (method, alpha, minimum group size)."""
    check_choice("method", method, METHODS)
    if not isinstance(alpha, int | float) or not 0 < alpha < 1:
        raise ValueError(f"alpha={alpha!r} must be between 0 and 1")
    if isinstance(min_group_size, bool) or not isinstance(min_group_size, int | np.integer):
        raise ValueError(f"min_group_size={min_group_size!r} must be a whole number")
    if min_group_size < 1:
        raise ValueError(f"min_group_size={min_group_size!r} must be at least 1")


def _counts(frame: pd.DataFrame, treatment: str) -> tuple[int, int]:
    """Numbers of treated and comparison learners."""
    t = pd.to_numeric(frame[treatment], errors="coerce")
    n_t = int((t == 1).sum())
    return n_t, int(len(frame) - n_t)


def _try_estimate(
    frame: pd.DataFrame,
    *,
    min_group_size: int,
    treatment: str,
    **fit,
) -> tuple[EffectEstimate | None, str]:
    """Estimate on a subset with its notes, or the reason it cannot be done (never raises).

    ``fit`` holds the other arguments of `estimate_effect`; only `EstimationError` is caught.
    """
    n_t, n_c = _counts(frame, treatment)
    if min(n_t, n_c) < min_group_size:
        return None, (
            f"not estimated: fewer than {min_group_size} learners in a group "
            f"({n_t} treated, {n_c} comparison)"
        )
    try:
        est = estimate_effect(frame, treatment=treatment, **fit)
    except EstimationError as exc:
        return None, f"not estimated: {exc}"
    return est, _join_notes(est.notes)


def _join_notes(*parts: str | Sequence[str]) -> str:
    """The non-empty notes joined with semicolons."""
    out: list[str] = []
    for part in parts:
        items = [part] if isinstance(part, str) else list(part)
        out += [p for p in items if p]
    return "; ".join(out)


# ----------------------------------------------------------------------------------------------
# Words for readings


def _outcome_name(outcome: str) -> str:
    """The outcome's name in sentences ("follow-through", "the skills gap")."""
    return OUTCOME_NAMES.get(outcome, outcome.replace("_", " "))


def _interval(est: EffectEstimate | ManagerEffects, *, size: bool = False) -> str:
    """'95% interval 2.0 to 9.1 percentage points' (an estimate, or the manager interaction).

    With ``size=True`` the interval is that of the size of the effect (its absolute value), for
    sentences that say the direction in words: "0.20 points smaller (95% interval 0.14 to 0.25
    points)" rather than "-0.25 to -0.14".
    """
    low, high = est.ci_low, est.ci_high
    if size and high < 0:
        low, high = -high, -low
    return f"{round(100 * (1 - est.alpha))}% interval {format_interval(low, high, est.outcome)}"


def _p_phrase(p: float) -> str:
    """'p = 0.412' or 'p < 0.001' (formatted by `lcstats.estimation.effects.format_p`)."""
    text = format_p(p)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def _clear(est: EffectEstimate | ManagerEffects) -> bool:
    """True when the interval excludes no effect."""
    return est.ci_low > 0 or est.ci_high < 0


# ----------------------------------------------------------------------------------------------
# Tidy frames and their display


def _effect_row(part: DoseBand | SubgroupEffect, **labels: object) -> dict:
    """One row of a tidy frame: the labels, the estimate (NaN if not estimated), sizes, note."""
    est = part.effect
    if est is None:
        estimate = dict.fromkeys(ESTIMATE_COLUMNS, math.nan)
    else:
        estimate = {col: getattr(est, col) for col in ESTIMATE_COLUMNS}
    sizes = {"n_treated": part.n_treated, "n_control": part.n_control, "note": part.note}
    return {**labels, **estimate, **sizes}


def _tidy(rows: list[dict], columns: Sequence[str]) -> pd.DataFrame:
    """The rows as a frame with these columns: counts as nullable integers, labels as text."""
    frame = pd.DataFrame(rows, columns=list(columns))
    for col in ("n_treated", "n_control", "n_learners", "df", "n_levels"):
        if col in frame.columns:
            frame[col] = frame[col].astype("Int64")
    for col in ("note", "band", "subgroup_variable", "subgroup_level", "outcome", "treatment"):
        if col in frame.columns:
            frame[col] = frame[col].astype(str)
    return frame


def _text(frame: pd.DataFrame, *, drop: Sequence[str]) -> str:
    """A tidy frame as text for a summary (the columns in ``drop`` left out)."""
    return frame.drop(columns=list(drop)).to_string(
        index=False, float_format="{:.4g}".format, na_rep="-"
    )


def _html(reading: str, **tables: pd.DataFrame) -> str:
    """The reading, with the tidy frames folded below it, for notebooks."""
    return summary_html(
        reading, details={k.replace("_", " ").capitalize(): f for k, f in tables.items()}
    )
