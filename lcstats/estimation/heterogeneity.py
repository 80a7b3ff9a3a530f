"""Who gains most from coaching: dose-response, subgroup effects and manager coaching.

Every effect here is an `lcstats.estimation.effects.estimate_effect` fit on a subset of learners, so it has
the same estimators, clustering and checks as the headline estimate:

- `dose_response`: each band of coaching sessions (1-2, 3-5, 6+) against the uncoached (0
  sessions), fitted on the band members plus the uncoached;
- `subgroup_effects`: the effect within each level of role, cohort, manager coaching..., with
  p-values adjusted for the number of subgroups (statsmodels ``multipletests``) and a Cochran Q
  test per variable that the subgroup effects are equal;
- `manager_effects`: coaching the line manager as a second treatment (clustered by manager), and
  whether learner coaching works differently when the manager was coached too.

A band or level with too few learners (or whose effect cannot be estimated) stays in the result
with the reason in ``note``: nothing is silently dropped. Like `lcstats.estimate_effects`, the
skills-gap outcome is also adjusted for the learner's pre-programme gap.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from html import escape
from typing import Literal, get_args

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

from lcstats.core.errors import EstimationError
from lcstats.core.options import ESTIMANDS, METHODS, check_choice
from lcstats.estimation.analysis import outcome_covariates
from lcstats.estimation.effects import (
    EffectEstimate,
    estimate_effect,
    format_effect,
    format_p,
    plain_reading,
)
from lcstats.outcomes.learner import LearnerOutcomes, analysis_sample

__all__ = [
    "DoseBand",
    "DoseResponse",
    "HeterogeneityTest",
    "ManagerEffects",
    "SubgroupEffect",
    "SubgroupEffects",
    "dose_response",
    "manager_effects",
    "subgroup_effects",
]

Correction = Literal[
    "holm",
    "bonferroni",
    "sidak",
    "holm-sidak",
    "simes-hochberg",
    "hommel",
    "fdr_bh",
    "fdr_by",
    "fdr_tsbh",
    "fdr_tsbky",
]
CORRECTIONS: tuple[str, ...] = get_args(Correction)
CORRECTION_LABELS = {
    "holm": "Holm",
    "bonferroni": "Bonferroni",
    "sidak": "Sidak",
    "holm-sidak": "Holm-Sidak",
    "simes-hochberg": "Simes-Hochberg",
    "hommel": "Hommel",
    "fdr_bh": "Benjamini-Hochberg false discovery rate",
    "fdr_by": "Benjamini-Yekutieli false discovery rate",
    "fdr_tsbh": "two-stage Benjamini-Hochberg false discovery rate",
    "fdr_tsbky": "two-stage Benjamini-Krieger-Yekutieli false discovery rate",
}
DEFAULT_BANDS: tuple[tuple[int, int | None], ...] = ((0, 0), (1, 2), (3, 5), (6, None))
MAX_SUBGROUP_LEVELS = 30

# Words for readings: which direction is good, and how to say "higher" and "lower".
BETTER_SIGN = {"follow_through": 1.0, "skills_gap": -1.0}
COMPARATIVES = {"follow_through": ("higher", "lower"), "skills_gap": ("larger", "smaller")}
OUTCOME_NAMES = {"follow_through": "follow-through", "skills_gap": "the skills gap"}
TREATMENT_NAMES = {"coached": "coaching", "manager_coached": "coaching the line manager"}
VARIABLE_NAMES = {
    "role": "roles",
    "cohort": "cohorts",
    "manager_coached": "learners whose manager was and was not coached",
    "team_id": "teams",
}

LEVEL_NAMES = {
    ("manager_coached", "1"): "manager coached",
    ("manager_coached", "0"): "manager not coached",
    ("coached", "1"): "coached",
    ("coached", "0"): "not coached",
}

# Tidy-frame columns. Every effect row has the estimate columns, then the group sizes and a note.
ESTIMATE_COLUMNS = ("estimate", "std_error", "ci_low", "ci_high", "p_value")
GROUP_COLUMNS = ("n_treated", "n_control", "note")
SUBGROUP_COLUMNS = (
    *("outcome", "treatment", "subgroup_variable", "subgroup_level"),
    *ESTIMATE_COLUMNS,
    "p_adjusted",
    *GROUP_COLUMNS,
)
MANAGER_COLUMNS = tuple(c for c in SUBGROUP_COLUMNS if c != "p_adjusted")  # no multiple testing
DOSE_COLUMNS = (
    *("outcome", "treatment", "band", "sessions_min", "sessions_max", "n_learners", "mean_outcome"),
    *ESTIMATE_COLUMNS,
    *GROUP_COLUMNS,
)
TEST_COLUMNS = (
    "outcome",
    "treatment",
    "subgroup_variable",
    "statistic",
    "df",
    "p_value",
    "n_levels",
    "note",
)


# ----------------------------------------------------------------------------------------------
# Small helpers shared by the three analyses


def _frame(data: LearnerOutcomes | pd.DataFrame) -> pd.DataFrame:
    frame = data.data if isinstance(data, LearnerOutcomes) else data
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"data must be a DataFrame or LearnerOutcomes, got {type(data).__name__}")
    return frame


def _check_columns(frame: pd.DataFrame, columns: Sequence[str]) -> None:
    missing = [c for c in dict.fromkeys(columns) if c not in frame.columns]
    if missing:
        raise ValueError(
            f"column(s) {', '.join(missing)} not in data; have {', '.join(map(str, frame.columns))}"
        )


def _check_common(method: str, alpha: float, min_group_size: int) -> None:
    check_choice("method", method, METHODS)
    if not isinstance(alpha, int | float) or not 0 < alpha < 1:
        raise ValueError(f"alpha={alpha!r} must be between 0 and 1")
    if isinstance(min_group_size, bool) or not isinstance(min_group_size, int | np.integer):
        raise ValueError(f"min_group_size={min_group_size!r} must be a whole number")
    if min_group_size < 1:
        raise ValueError(f"min_group_size={min_group_size!r} must be at least 1")


def _counts(frame: pd.DataFrame, treatment: str) -> tuple[int, int]:
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
    out: list[str] = []
    for part in parts:
        items = [part] if isinstance(part, str) else list(part)
        out += [p for p in items if p]
    return "; ".join(out)


def _outcome_name(outcome: str) -> str:
    return OUTCOME_NAMES.get(outcome, outcome.replace("_", " "))


def _treatment_name(treatment: str) -> str:
    return TREATMENT_NAMES.get(treatment, f"'{treatment}'")


def _interval(est: EffectEstimate | ManagerEffects) -> str:
    """'95% interval 2.0 to 9.1 percentage points' (an estimate, or the manager interaction)."""
    return (
        f"{round(100 * (1 - est.alpha))}% interval "
        f"{format_effect(est.ci_low, est.outcome, signed=False)} "
        f"to {format_effect(est.ci_high, est.outcome, signed=False)}"
    )


def _p_phrase(p: float) -> str:
    """'p = 0.412' or 'p < 0.001' (formatted by `lcstats.estimation.effects.format_p`)."""
    text = format_p(p)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def _clear(est: EffectEstimate | ManagerEffects) -> bool:
    """True when the interval excludes no effect."""
    return est.ci_low > 0 or est.ci_high < 0


def _comparison(value: float, outcome: str) -> str:
    """'14.0 percentage points higher' / '0.30 points smaller' (right for either sign)."""
    up, down = COMPARATIVES.get(outcome, ("higher", "lower"))
    return f"{format_effect(abs(value), outcome, signed=False)} {up if value > 0 else down}"


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


def _html(reading: str, *frames: pd.DataFrame) -> str:
    """The reading above the tidy frames, for notebooks."""
    tables = "".join(
        f.to_html(index=False, float_format="{:.4g}".format, na_rep="") for f in frames
    )
    return f"<p>{escape(reading)}</p>{tables}"


# ----------------------------------------------------------------------------------------------
# Dose-response over coaching sessions


@dataclass(frozen=True)
class DoseBand:
    """One band of coaching sessions: its learners, mean outcome and effect against 0 sessions.

    ``effect`` is None for the reference band (0 sessions) and for bands that could not be
    estimated; ``note`` then says why. ``mean_outcome`` is hidden (NaN) for bands with fewer
    learners than the minimum group size.
    """

    label: str
    low: int
    high: int | None
    n_learners: int
    mean_outcome: float
    effect: EffectEstimate | None
    n_treated: int
    n_control: int
    note: str = ""

    @property
    def is_reference(self) -> bool:
        """True for the 0-session band every other band is compared with."""
        return self.low == 0 and self.high == 0


@dataclass(frozen=True)
class DoseResponse:
    """Effects of each band of coaching sessions against the uncoached (0 sessions).

    Each band's effect is an ATE on the band members plus the uncoached learners: the average
    difference the band's amount of coaching would make for that population. Sessions are not
    assigned at random, so the estimate is causal only if the covariates capture why some
    learners attended more sessions than others.
    """

    outcome: str
    sessions: str
    method: str
    alpha: float
    bands: tuple[DoseBand, ...]
    covariates: tuple[str, ...] = ()
    cluster: str | None = None
    min_group_size: int = 5
    excluded: dict[str, int] = field(default_factory=dict)

    def band(self, label: str) -> DoseBand:
        """Return the band with this label (``"0"``, ``"1-2"``, ``"6+"``...)."""
        for b in self.bands:
            if b.label == label:
                return b
        raise KeyError(f"no band {label!r}; have {', '.join(b.label for b in self.bands)}")

    def to_frame(self) -> pd.DataFrame:
        """Tidy frame: one row per band (the 0-session reference first), snake_case columns."""
        rows = [
            _effect_row(
                b,
                outcome=self.outcome,
                treatment=self.sessions,
                band=b.label,
                sessions_min=b.low,
                sessions_max=math.inf if b.high is None else float(b.high),
                n_learners=b.n_learners,
                mean_outcome=b.mean_outcome,
            )
            for b in self.bands
        ]
        return _tidy(rows, DOSE_COLUMNS)

    def reading(self) -> str:
        """Plain-language finding: which band gained most, right for gains, losses and no effect."""
        name = _outcome_name(self.outcome)
        subject = name.removeprefix("the ")
        pairs = [(b.label, b.effect) for b in self.bands if b.effect is not None]
        if not pairs:
            return f"No band of coaching sessions had enough learners to estimate its effect on {name}."
        better = BETTER_SIGN.get(self.outcome, 1.0)

        def describe(label: str, est: EffectEstimate) -> str:
            return (
                f"{label} sessions {format_effect(est.estimate, self.outcome)} ({_interval(est)})"
            )

        def others(skip: str) -> list[str]:
            return [describe(label, est) for label, est in pairs if label != skip]

        skipped = [b.label for b in self.bands if b.effect is None and not b.is_reference]
        tail = (
            f" Not estimated (too few learners or no comparison): {', '.join(skipped)} sessions."
            if skipped
            else ""
        )
        clear = [p for p in pairs if _clear(p[1])] or pairs  # rank the bands with clear effects
        best_label, best = max(clear, key=lambda p: better * p[1].estimate)
        worst_label, worst = min(clear, key=lambda p: better * p[1].estimate)
        if _clear(best) and better * best.estimate > 0:
            rest = others(best_label)
            more = f" Compared with uncoached learners: {'; '.join(rest)}." if rest else ""
            close = [
                label
                for label, est in pairs
                if label != best_label and best.ci_low <= est.estimate <= best.ci_high
            ]
            if close:
                more += (
                    f" The estimate for {', '.join(close)} sessions lies within this interval, so "
                    "the ranking of the bands is uncertain."
                )
            return (
                f"{'Among the bands with a clear effect, l' if len(clear) < len(pairs) else 'L'}"
                f"earners with {best_label} coaching sessions {'gained most' if rest else 'gained'}: "
                f"their {subject} was {_comparison(best.estimate, self.outcome)} than uncoached "
                f"learners' ({_interval(best)}).{more}{tail}"
            )
        if _clear(worst) and better * worst.estimate < 0:
            rest = others(worst_label)
            more = f" Other bands: {'; '.join(rest)}." if rest else ""
            return (
                f"No band of coaching sessions showed a clear benefit, and learners with "
                f"{worst_label} sessions did worse: their {subject} was "
                f"{_comparison(worst.estimate, self.outcome)} than uncoached learners' "
                f"({_interval(worst)}).{more}{tail}"
            )
        lo_label, lo = min(pairs, key=lambda p: p[1].estimate)
        hi_label, hi = max(pairs, key=lambda p: p[1].estimate)
        spread = (
            f"estimates ranged from {format_effect(lo.estimate, self.outcome)} ({lo_label} "
            f"sessions) to {format_effect(hi.estimate, self.outcome)} ({hi_label} sessions)"
            if len(pairs) > 1
            else f"the estimate was {format_effect(lo.estimate, self.outcome)} ({lo_label} sessions)"
        )
        return (
            f"No number of coaching sessions showed a clear effect on {name}: {spread}, and every "
            f"interval includes no effect.{tail}"
        )

    def summary(self) -> str:
        """Return a short text summary (not printed)."""
        clus = f", clustered by {self.cluster}" if self.cluster else ""
        drop = ("sessions_min", "sessions_max", "std_error", "n_treated", "n_control")
        lines = [
            f"Dose-response: effect of {self.sessions} bands vs 0 on {self.outcome} "
            f"(ATE, {self.method}{clus})",
            _text(self.to_frame(), drop=("outcome", "treatment", *drop)),
            self.reading(),
        ]
        if self.excluded:
            lines.append(
                "excluded learners: " + ", ".join(f"{k}: {v}" for k, v in self.excluded.items())
            )
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        return _html(self.reading(), self.to_frame())


def _band_label(low: int, high: int | None) -> str:
    if high is None:
        return f"{low}+"
    return f"{low}" if low == high else f"{low}-{high}"


def _check_bands(bands: Sequence[tuple[int, int | None]]) -> tuple[tuple[int, int | None], ...]:
    out: list[tuple[int, int | None]] = []
    for band in bands:
        if not isinstance(band, tuple | list) or len(band) != 2:
            raise ValueError(f"each band must be a pair (low, high), got {band!r}")
        low, high = band
        if isinstance(low, bool) or not isinstance(low, int | np.integer) or low < 0:
            raise ValueError(f"band {band!r}: low must be a whole number >= 0")
        if high is not None and (
            isinstance(high, bool) or not isinstance(high, int | np.integer) or high < low
        ):
            raise ValueError(
                f"band {band!r}: high must be a whole number >= low, or None for 'and more'"
            )
        out.append((int(low), None if high is None else int(high)))
    if not out or out[0] != (0, 0):
        raise ValueError(
            f"bands={tuple(bands)!r}: the first band must be (0, 0), the uncoached learners every "
            "other band is compared with"
        )
    for (_, hi1), (lo2, _) in zip(out, out[1:], strict=False):
        if hi1 is None or lo2 <= hi1:
            raise ValueError(
                f"bands={tuple(bands)!r} must be in increasing order without overlaps "
                "(only the last band may be open-ended)"
            )
    return tuple(out)


def dose_response(
    data: LearnerOutcomes | pd.DataFrame,
    *,
    outcome: str,
    sessions: str = "coaching_sessions",
    bands: Sequence[tuple[int, int | None]] = DEFAULT_BANDS,
    covariates: Sequence[str] = (),
    method: str = "aipw",
    cluster: str | None = None,
    alpha: float = 0.05,
    min_group_size: int = 5,
) -> DoseResponse:
    """Effect of each band of coaching sessions against no coaching (0 sessions).

    For every band other than ``(0, 0)`` the learners in the band (treated) and the uncoached
    learners (comparison) are analysed with `lcstats.estimate_effect` (ATE on that subset).

    Parameters
    ----------
    data : LearnerOutcomes or DataFrame
        One row per learner; learners missing the outcome, sessions, a covariate or the cluster
        are excluded and counted in ``excluded``.
    outcome : str
        Outcome column, e.g. ``"follow_through"``.
    sessions : str
        Column with the number of coaching sessions (0 for the uncoached).
    bands : sequence of (low, high)
        Inclusive session ranges in increasing order; the first must be ``(0, 0)`` (the reference)
        and ``high=None`` means "and more". Labels are ``"0"``, ``"1-2"``, ``"6+"``.
    covariates : sequence of str
        Confounders to adjust for (the skills gap also adjusts for its pre-programme value).
    method : {"difference", "regression", "ipw", "aipw"}
        Estimator passed to `estimate_effect`.
    cluster : str, optional
        Column for cluster-robust standard errors (team or manager).
    alpha : float
        1 - confidence level.
    min_group_size : int
        Bands with fewer learners than this (treated or comparison) are reported, not estimated;
        their mean outcome is hidden too.

    Returns
    -------
    DoseResponse

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(3)
    >>> s = rng.choice([0, 1, 2, 4, 7], size=600)
    >>> df = pd.DataFrame({"y": 0.05 * s + rng.normal(0, 0.2, 600), "coaching_sessions": s})
    >>> dose = dose_response(df, outcome="y", method="difference")
    >>> dose.to_frame()["band"].tolist()
    ['0', '1-2', '3-5', '6+']
    >>> bool(dose.band("6+").effect.estimate > dose.band("1-2").effect.estimate)
    True
    """
    _check_common(method, alpha, min_group_size)
    checked = _check_bands(bands)
    frame = _frame(data)
    covs = outcome_covariates(outcome, covariates)
    if sessions in covs or outcome in covs:
        raise ValueError("the outcome and the sessions column cannot also be covariates")
    _check_columns(frame, [outcome, sessions, *covs, *([cluster] if cluster else [])])
    sample = analysis_sample(
        frame, outcome=outcome, treatment=sessions, covariates=covs, cluster=cluster
    )
    df = sample.data
    s = pd.to_numeric(df[sessions], errors="coerce")
    if s.isna().any():
        raise ValueError(f"column '{sessions}' must hold numbers of sessions")
    if (s < 0).any():
        raise ValueError(f"column '{sessions}' has negative numbers of sessions")
    members = {}
    for low, high in checked:
        upper = np.inf if high is None else high
        members[(low, high)] = ((s >= low) & (s <= upper)).to_numpy()
    in_any = np.logical_or.reduce(list(members.values()))
    excluded = {k: v for k, v in sample.excluded.items() if v}
    if (~in_any).sum():
        excluded[f"{sessions} in no band"] = int((~in_any).sum())
    reference = members[(0, 0)]
    y = pd.to_numeric(df[outcome], errors="coerce")
    fit = {"outcome": outcome, "method": method, "cluster": cluster, "alpha": alpha}
    indicator = "_in_band"
    out = []
    for low, high in checked:
        label = _band_label(low, high)
        mask = members[(low, high)]
        n = int(mask.sum())
        small = n < min_group_size
        mean = math.nan if small or n == 0 else float(y[mask].mean())
        if (low, high) == (0, 0):
            note = "reference: uncoached learners (0 sessions)"
            if small:
                note += f"; fewer than {min_group_size} learners (mean hidden)"
            out.append(DoseBand(label, low, high, n, mean, None, 0, n, note))
            continue
        subset = df.loc[mask | reference].assign(**{indicator: mask[mask | reference].astype(int)})
        est, note = _try_estimate(
            subset,
            min_group_size=min_group_size,
            treatment=indicator,
            covariates=covs,
            estimand="ATE",
            **fit,
        )
        if est is not None:
            est = replace(est, treatment=sessions)
        elif small and n:
            note += " (mean hidden)"
        out.append(DoseBand(label, low, high, n, mean, est, n, int(reference.sum()), note))
    return DoseResponse(
        outcome=outcome,
        sessions=sessions,
        method=method,
        alpha=alpha,
        bands=tuple(out),
        covariates=covs if method != "difference" else (),
        cluster=cluster,
        min_group_size=min_group_size,
        excluded=excluded,
    )


# ----------------------------------------------------------------------------------------------
# Subgroup effects


@dataclass(frozen=True)
class SubgroupEffect:
    """The effect within one level of one subgrouping variable (``effect`` None: see ``note``)."""

    variable: str
    level: str
    n_treated: int
    n_control: int
    effect: EffectEstimate | None
    p_adjusted: float = math.nan
    note: str = ""


def _subgroup_effect(
    subset: pd.DataFrame, variable: str, level: str, *, treatment: str, **fit
) -> SubgroupEffect:
    """The effect within one subgroup (``fit``: the arguments of `_try_estimate`)."""
    n_t, n_c = _counts(subset, treatment)
    est, note = _try_estimate(subset, treatment=treatment, **fit)
    return SubgroupEffect(variable, level, n_t, n_c, est, math.nan, note)


def _subgroup_name(e: SubgroupEffect) -> str:
    """A subgroup's name in sentences ("manager coached", "role A")."""
    return LEVEL_NAMES.get((e.variable, e.level), f"{e.variable} {e.level}")


@dataclass(frozen=True)
class HeterogeneityTest:
    """Cochran's Q test that the effects in the levels of one variable are equal.

    ``Q = sum_i w_i (b_i - b_bar)^2`` with ``w_i = 1 / se_i^2`` and ``b_bar`` the
    inverse-variance weighted mean; chi-squared with ``k - 1`` degrees of freedom under equal
    effects. NaN when fewer than two levels could be estimated.
    """

    variable: str
    statistic: float
    df: int
    p_value: float
    n_levels: int
    note: str = ""


@dataclass(frozen=True)
class SubgroupEffects:
    """Effects of a treatment within subgroups, adjusted p-values and heterogeneity tests."""

    outcome: str
    treatment: str
    method: str
    estimand: str
    alpha: float
    correction: str
    effects: tuple[SubgroupEffect, ...]
    tests: tuple[HeterogeneityTest, ...]
    covariates: tuple[str, ...] = ()
    cluster: str | None = None
    min_group_size: int = 5
    excluded: dict[str, int] = field(default_factory=dict)

    def to_frame(self) -> pd.DataFrame:
        """Tidy frame: one row per subgroup level, grouped by variable."""
        rows = [
            _effect_row(
                e,
                outcome=self.outcome,
                treatment=self.treatment,
                subgroup_variable=e.variable,
                subgroup_level=e.level,
                p_adjusted=e.p_adjusted,
            )
            for e in self.effects
        ]
        return _tidy(rows, SUBGROUP_COLUMNS)

    def heterogeneity_frame(self) -> pd.DataFrame:
        """Tidy frame: one heterogeneity test per subgrouping variable."""
        rows = [
            {
                "outcome": self.outcome,
                "treatment": self.treatment,
                "subgroup_variable": t.variable,
                "statistic": t.statistic,
                "df": t.df,
                "p_value": t.p_value,
                "n_levels": t.n_levels,
                "note": t.note,
            }
            for t in self.tests
        ]
        return _tidy(rows, TEST_COLUMNS)

    def test(self, variable: str) -> HeterogeneityTest:
        """Return the heterogeneity test of one variable."""
        for t in self.tests:
            if t.variable == variable:
                return t
        raise KeyError(f"no subgroup variable {variable!r}")

    def reading(self) -> str:
        """One sentence per variable on whether the effect differed, then the corrected count."""
        treat = _treatment_name(self.treatment)
        name = _outcome_name(self.outcome)
        sentences = []
        for t in self.tests:
            groups = VARIABLE_NAMES.get(t.variable, f"levels of {t.variable}")
            if math.isnan(t.p_value):
                sentences.append(
                    f"Whether the effect of {treat} on {name} differed between {groups} could not "
                    f"be tested: {t.note or 'fewer than two levels could be estimated'}."
                )
                continue
            pairs = [
                (e.level, e.effect)
                for e in self.effects
                if e.variable == t.variable and e.effect is not None
            ]
            lo_level, lo = min(pairs, key=lambda p: p[1].estimate)
            hi_level, hi = max(pairs, key=lambda p: p[1].estimate)
            spread = (
                f"from {format_effect(lo.estimate, self.outcome)} "
                f"({_level_name(t.variable, lo_level)}) "
                f"to {format_effect(hi.estimate, self.outcome)} ({_level_name(t.variable, hi_level)})"
            )
            if t.p_value < self.alpha:
                sentences.append(
                    f"The effect of {treat} on {name} differed between {groups} "
                    f"({_p_phrase(t.p_value)}): estimates ranged {spread}."
                )
            else:
                sentences.append(
                    f"The effect of {treat} on {name} did not differ clearly between {groups} "
                    f"({_p_phrase(t.p_value)}; estimates {spread})."
                )
        tested = [e for e in self.effects if e.effect is not None]
        if tested:
            clear = [e for e in tested if e.p_adjusted < self.alpha]
            label = CORRECTION_LABELS[self.correction]
            if len(clear) == len(tested) > 1:
                count = f"all {len(tested)} subgroups showed a clear effect"
            else:
                count = (
                    f"{len(clear)} subgroup{'s' if len(clear) != 1 else ''} showed a clear effect"
                )
                if 0 < len(clear) <= 6:
                    count += ": " + ", ".join(_subgroup_name(e) for e in clear)
            sentences.append(
                f"After the {label} correction for {len(tested)} subgroup comparisons, {count}."
            )
        skipped = [e for e in self.effects if e.effect is None]
        if skipped:
            names = ", ".join(_subgroup_name(e) for e in skipped[:6])
            more = f" and {len(skipped) - 6} more" if len(skipped) > 6 else ""
            sentences.append(
                f"Not estimated (too few learners or no comparison within the subgroup): {names}{more}."
            )
        return " ".join(sentences)

    def summary(self) -> str:
        """Return a short text summary (not printed)."""
        clus = f", clustered by {self.cluster}" if self.cluster else ""
        lines = [
            f"Subgroup effects of {self.treatment} on {self.outcome} ({self.estimand}, "
            f"{self.method}{clus}; p adjusted: {self.correction})",
            _text(self.to_frame(), drop=("outcome", "treatment", "std_error")),
            "Heterogeneity (Cochran Q):",
            _text(self.heterogeneity_frame(), drop=("outcome", "treatment")),
            self.reading(),
        ]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        return _html(self.reading(), self.to_frame(), self.heterogeneity_frame())


def _cochran_q(variable: str, effects: Sequence[SubgroupEffect]) -> HeterogeneityTest:
    ests = [e.effect for e in effects if e.effect is not None]
    usable = [e for e in ests if e.std_error > 0 and math.isfinite(e.std_error)]
    k = len(usable)
    if k < 2:
        return HeterogeneityTest(
            variable,
            math.nan,
            max(k - 1, 0),
            math.nan,
            k,
            f"only {k} level{'s' if k != 1 else ''} could be estimated; need 2",
        )
    b = np.array([e.estimate for e in usable])
    w = 1.0 / np.array([e.std_error for e in usable]) ** 2
    b_bar = float(np.sum(w * b) / np.sum(w))
    q = float(np.sum(w * (b - b_bar) ** 2))
    p = float(stats.chi2.sf(q, k - 1))
    return HeterogeneityTest(variable, q, k - 1, p, k)


def subgroup_effects(
    data: LearnerOutcomes | pd.DataFrame,
    *,
    outcome: str,
    treatment: str = "coached",
    by: Sequence[str] = ("role", "cohort", "manager_coached"),
    covariates: Sequence[str] = (),
    method: str = "aipw",
    estimand: str = "ATE",
    cluster: str | None = None,
    alpha: float = 0.05,
    correction: str = "holm",
    min_group_size: int = 5,
) -> SubgroupEffects:
    """Effect of a treatment within each level of each subgrouping variable.

    Within the subgroups of a variable, that variable is dropped from the covariates. p-values
    are adjusted across all subgroup effects with
    ``statsmodels.stats.multitest.multipletests(method=correction)``, and each variable gets a
    Cochran Q test that its subgroup effects are equal. Subgroups are disjoint, so their
    estimates are independent unless clusters span several levels (a note then says the test is
    approximate).

    Parameters
    ----------
    data : LearnerOutcomes or DataFrame
        One row per learner; learners missing the outcome, treatment, a subgroup variable, a
        covariate or the cluster are excluded and counted in ``excluded``.
    outcome, treatment : str
        Outcome column and 0/1 treatment column.
    by : sequence of str
        Subgrouping variables (categories or few distinct values).
    covariates : sequence of str
        Confounders to adjust for (the skills gap also adjusts for its pre-programme value).
    method : {"difference", "regression", "ipw", "aipw"}
        Estimator passed to `estimate_effect`.
    estimand : {"ATE", "ATT"}
        Average effect over all learners of the subgroup, or over its treated learners.
    cluster : str, optional
        Column for cluster-robust standard errors.
    alpha : float
        1 - confidence level; also the level for "clear" effects after correction.
    correction : str
        A ``multipletests`` method: holm (default), bonferroni, sidak, holm-sidak,
        simes-hochberg, hommel, fdr_bh, fdr_by, fdr_tsbh, fdr_tsbky.
    min_group_size : int
        Levels with fewer treated or comparison learners are reported with the reason.

    Returns
    -------
    SubgroupEffects

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(5)
    >>> n = 800
    >>> g = rng.choice(["a", "b"], size=n)
    >>> t = rng.integers(0, 2, size=n)
    >>> df = pd.DataFrame({"y": 0.3 * t + rng.normal(size=n), "t": t, "g": g})
    >>> sub = subgroup_effects(df, outcome="y", treatment="t", by=["g"], method="difference")
    >>> sub.to_frame()["subgroup_level"].tolist()
    ['a', 'b']
    >>> bool((sub.to_frame()["p_adjusted"] >= sub.to_frame()["p_value"]).all())
    True
    """
    _check_common(method, alpha, min_group_size)
    check_choice("estimand", estimand, ESTIMANDS)
    check_choice("correction", correction, CORRECTIONS)
    by = tuple(by)
    if not by:
        raise ValueError("by must name at least one subgrouping variable")
    if len(set(by)) != len(by):
        raise ValueError(f"by={by!r} names a variable twice")
    if treatment in by or outcome in by:
        raise ValueError("the outcome and the treatment cannot be subgrouping variables")
    frame = _frame(data)
    covs = outcome_covariates(outcome, covariates)
    _check_columns(frame, [outcome, treatment, *by, *covs, *([cluster] if cluster else [])])
    sample = analysis_sample(
        frame,
        outcome=outcome,
        treatment=treatment,
        covariates=tuple(dict.fromkeys([*covs, *by])),
        cluster=cluster,
    )
    df = sample.data
    fit = {"outcome": outcome, "method": method, "cluster": cluster, "alpha": alpha}
    effects: list[SubgroupEffect] = []
    notes_by_var: dict[str, str] = {}
    for var in by:
        levels = sorted(df[var].unique(), key=lambda v: (str(type(v)), v))
        if len(levels) > MAX_SUBGROUP_LEVELS:
            raise ValueError(
                f"subgroup variable '{var}' has {len(levels)} levels; group it into at most "
                f"{MAX_SUBGROUP_LEVELS} bands first"
            )
        var_covs = tuple(c for c in covs if c != var)
        effects += [
            _subgroup_effect(
                df.loc[df[var] == level],
                var,
                _level_label(level),
                treatment=treatment,
                min_group_size=min_group_size,
                covariates=var_covs,
                estimand=estimand,
                **fit,
            )
            for level in levels
        ]
        if cluster is not None and df.groupby(cluster)[var].nunique().max() > 1:
            notes_by_var[var] = (
                f"some {cluster} clusters span several levels of {var}: subgroup estimates are "
                "not fully independent, so the test is approximate"
            )
    p_raw = [e.effect.p_value for e in effects if e.effect is not None]
    if p_raw:
        adjusted = iter(multipletests(p_raw, alpha=alpha, method=correction)[1])
        effects = [
            replace(e, p_adjusted=float(next(adjusted))) if e.effect is not None else e
            for e in effects
        ]
    tests = []
    for var in by:
        t = _cochran_q(var, [e for e in effects if e.variable == var])
        if var in notes_by_var:
            t = replace(t, note=_join_notes(t.note, notes_by_var[var]))
        tests.append(t)
    return SubgroupEffects(
        outcome=outcome,
        treatment=treatment,
        method=method,
        estimand=estimand,
        alpha=alpha,
        correction=correction,
        effects=tuple(effects),
        tests=tuple(tests),
        covariates=covs if method != "difference" else (),
        cluster=cluster,
        min_group_size=min_group_size,
        excluded={k: v for k, v in sample.excluded.items() if v},
    )


def _level_name(variable: str, level: str) -> str:
    """A readable name for a level in sentences (0/1 flags get words)."""
    return LEVEL_NAMES.get((variable, level), level)


def _level_label(level: object) -> str:
    if isinstance(level, float | np.floating) and float(level).is_integer():
        return str(int(level))
    return str(level)


# ----------------------------------------------------------------------------------------------
# Manager coaching as a second treatment


@dataclass(frozen=True)
class ManagerEffects:
    """The effect of coaching line managers, and how it combines with learner coaching.

    ``manager`` is the effect of ``manager_coached`` on the outcome. ``within`` holds the effect
    of learner coaching among learners whose manager was coached (level ``"1"``) and was not
    (``"0"``); ``difference`` is the first minus the second (the interaction), with
    ``se = sqrt(se_1^2 + se_0^2)`` because the two subsamples are independent (disjoint, and
    clusters nest within them when clustering by manager), a normal interval and p-value.
    """

    outcome: str
    method: str
    alpha: float
    manager: EffectEstimate
    within: tuple[SubgroupEffect, ...]
    difference: float
    std_error: float
    ci_low: float
    ci_high: float
    p_value: float
    covariates: tuple[str, ...] = ()
    cluster: str | None = None
    adjust_for_learner_coaching: bool = False
    excluded: dict[str, int] = field(default_factory=dict)
    note: str = ""

    def to_frame(self) -> pd.DataFrame:
        """Tidy frame: the manager effect, learner coaching by manager coaching, and the difference."""
        m = self.manager
        adjusted = (
            "adjusted for learner coaching"
            if self.adjust_for_learner_coaching
            else "not adjusted for learner coaching"
        )
        overall = SubgroupEffect(
            "", "all learners", m.n_treated, m.n_control, m, note=_join_notes(adjusted, m.notes)
        )
        labels = {"outcome": self.outcome, "treatment": "coached", "subgroup_variable": m.treatment}
        rows = [
            _effect_row(
                overall,
                outcome=self.outcome,
                treatment=m.treatment,
                subgroup_variable="",
                subgroup_level="all learners",
            ),
            *(_effect_row(e, **labels, subgroup_level=e.level) for e in self.within),
            {
                **labels,
                "subgroup_level": "difference (1 - 0)",
                "estimate": self.difference,
                "std_error": self.std_error,
                "ci_low": self.ci_low,
                "ci_high": self.ci_high,
                "p_value": self.p_value,
                "n_treated": pd.NA,
                "n_control": pd.NA,
                "note": self.note,
            },
        ]
        return _tidy(rows, MANAGER_COLUMNS)

    def reading(self) -> str:
        """Plain language: the manager effect, then whether learner coaching worked differently."""
        first = plain_reading(self.manager)
        name = _outcome_name(self.outcome)
        by_level = {e.level: e for e in self.within}
        with_m, without = by_level.get("1"), by_level.get("0")
        if with_m is None or without is None or with_m.effect is None or without.effect is None:
            return (
                f"{first} Whether learner coaching worked differently when the manager was coached "
                f"could not be estimated: {self.note or 'too few learners'}."
            )
        diff = (
            f"the difference, {format_effect(self.difference, self.outcome)} "
            f"({_interval(self)}, {_p_phrase(self.p_value)})"
        )
        verdict = "is clear" if _clear(self) else "could be chance"
        return (
            f"{first} The effect of learner coaching on {name} was "
            f"{format_effect(with_m.effect.estimate, self.outcome)} where the manager was coached "
            f"and {format_effect(without.effect.estimate, self.outcome)} where not; {diff} {verdict}."
        )

    def summary(self) -> str:
        """Return a short text summary (not printed)."""
        clus = f", clustered by {self.cluster}" if self.cluster else ""
        return "\n".join(
            [
                f"Manager coaching and learner coaching on {self.outcome} ({self.method}{clus})",
                _text(self.to_frame(), drop=("outcome", "std_error", "note")),
                self.reading(),
            ]
        )

    def __repr__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        return _html(self.reading(), self.to_frame())


def manager_effects(
    data: LearnerOutcomes | pd.DataFrame,
    *,
    outcome: str,
    covariates: Sequence[str] = (),
    method: str = "aipw",
    cluster: str | None = "manager_id",
    alpha: float = 0.05,
    adjust_for_learner_coaching: bool = False,
    manager_treatment: str = "manager_coached",
    learner_treatment: str = "coached",
    min_group_size: int = 5,
) -> ManagerEffects:
    """Effect of coaching line managers, and its interaction with learner coaching.

    The manager effect is estimated with `estimate_effect` (ATE), clustered by manager because
    managers, not learners, were coached. Learner coaching is *not* adjusted for by default: a
    coached manager may push their learners into coaching, so learner coaching can be a
    consequence of manager coaching, and adjusting for it would remove that part of the effect
    (and can bias the rest). ``adjust_for_learner_coaching=True`` adds it as a covariate and gives
    the effect of manager coaching with learner coaching held fixed.

    The interaction is the effect of learner coaching among learners whose manager was coached
    minus the effect among those whose manager was not (each estimated with ``covariates``).

    Parameters
    ----------
    data : LearnerOutcomes or DataFrame
        One row per learner.
    outcome : str
        Outcome column.
    covariates : sequence of str
        Confounders (the skills gap also adjusts for its pre-programme value); pass the
        confounders of learner coaching too, as they are used for the interaction.
    method : {"difference", "regression", "ipw", "aipw"}
        Estimator passed to `estimate_effect`.
    cluster : str or None
        Column for cluster-robust standard errors (default ``"manager_id"``).
    alpha : float
        1 - confidence level.
    adjust_for_learner_coaching : bool
        Add the learner-coaching flag to the covariates of the manager effect.
    manager_treatment, learner_treatment : str
        The 0/1 columns for manager and learner coaching.
    min_group_size : int
        Subsamples with fewer treated or comparison learners are reported, not estimated.

    Returns
    -------
    ManagerEffects

    Raises
    ------
    EstimationError
        When the manager effect itself cannot be estimated (the interaction parts are reported
        with their reason instead).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(2)
    >>> mgr = np.repeat(np.arange(80), 10)
    >>> m = rng.integers(0, 2, size=80)[mgr]
    >>> t = rng.integers(0, 2, size=800)
    >>> y = 0.2 * m + 0.3 * t + rng.normal(size=800)
    >>> df = pd.DataFrame({"y": y, "manager_coached": m, "coached": t, "manager_id": mgr})
    >>> res = manager_effects(df, outcome="y", method="difference")
    >>> res.to_frame()["subgroup_level"].tolist()
    ['all learners', '1', '0', 'difference (1 - 0)']
    """
    _check_common(method, alpha, min_group_size)
    if not isinstance(adjust_for_learner_coaching, bool):
        raise ValueError("adjust_for_learner_coaching must be True or False")
    frame = _frame(data)
    covs = outcome_covariates(outcome, covariates)
    bad = {manager_treatment, learner_treatment, outcome} & set(covs)
    if bad:
        raise ValueError(
            f"{', '.join(sorted(bad))} cannot be in covariates; use adjust_for_learner_coaching "
            "to adjust the manager effect for learner coaching"
        )
    _check_columns(
        frame,
        [outcome, manager_treatment, learner_treatment, *covs, *([cluster] if cluster else [])],
    )
    sample = analysis_sample(
        frame,
        outcome=outcome,
        treatment=manager_treatment,
        covariates=(*covs, learner_treatment),
        cluster=cluster,
    )
    df = sample.data
    fit = {"outcome": outcome, "method": method, "cluster": cluster, "alpha": alpha}
    manager_covs = (*covs, learner_treatment) if adjust_for_learner_coaching else covs
    manager = estimate_effect(
        df, treatment=manager_treatment, covariates=manager_covs, estimand="ATE", **fit
    )
    m = pd.to_numeric(df[manager_treatment], errors="coerce")
    within = [
        _subgroup_effect(
            df.loc[m == level],
            manager_treatment,
            str(level),
            treatment=learner_treatment,
            min_group_size=min_group_size,
            covariates=covs,
            estimand="ATE",
            **fit,
        )
        for level in (1, 0)
    ]
    e1, e0 = within[0].effect, within[1].effect
    if e1 is not None and e0 is not None:
        diff = e1.estimate - e0.estimate
        se = math.sqrt(e1.std_error**2 + e0.std_error**2)
        crit = float(stats.norm.ppf(1 - alpha / 2))
        p = float(2 * stats.norm.sf(abs(diff) / se)) if se > 0 else math.nan
        lo, hi, note = diff - crit * se, diff + crit * se, ""
        if cluster is not None and df.groupby(cluster)[manager_treatment].nunique().max() > 1:
            note = (
                f"{manager_treatment} varies within {cluster} clusters: the two subsamples share "
                "clusters, so the standard error of the difference is approximate"
            )
    else:
        diff = se = lo = hi = p = math.nan
        missing = [f"{manager_treatment} = {w.level}" for w in within if w.effect is None]
        note = f"learner coaching effect not estimated where {' and '.join(missing)}"
    return ManagerEffects(
        outcome=outcome,
        method=method,
        alpha=alpha,
        manager=manager,
        within=tuple(within),
        difference=diff,
        std_error=se,
        ci_low=lo,
        ci_high=hi,
        p_value=p,
        covariates=covs if method != "difference" else (),
        cluster=cluster,
        adjust_for_learner_coaching=adjust_for_learner_coaching,
        excluded={k: v for k, v in sample.excluded.items() if v},
        note=note,
    )
