"""Subgroup effects: the effect within each level of role, cohort, manager coaching...

Each is an `lcstats.estimation.effects.estimate_effect` fit on the learners of one level, with
p-values adjusted for the number of subgroups (statsmodels ``multipletests``) and a Cochran Q test
per variable that the subgroup effects are equal. A level with too few learners (or whose effect
cannot be estimated) stays in the result with the reason in ``note``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, get_args

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

from lcstats.core.options import ESTIMANDS, check_choice
from lcstats.estimation.analysis import outcome_covariates
from lcstats.estimation.effects import EffectEstimate, format_effect
from lcstats.estimation.heterogeneity.common import (
    ESTIMATE_COLUMNS,
    GROUP_COLUMNS,
    _check_common,
    _counts,
    _effect_row,
    _frame,
    _html,
    _join_notes,
    _outcome_name,
    _p_phrase,
    _sample,
    _text,
    _tidy,
    _try_estimate,
)
from lcstats.outcomes.learner import LearnerOutcomes

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
MAX_SUBGROUP_LEVELS = 30

# Words for readings: the treatments, the subgrouping variables and the levels of 0/1 flags.
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

SUBGROUP_COLUMNS = (
    *("outcome", "treatment", "subgroup_variable", "subgroup_level"),
    *ESTIMATE_COLUMNS,
    "p_adjusted",
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
        sentences = [_test_sentence(self, t) for t in self.tests]
        sentences += [s for s in (_count_sentence(self), _skipped_sentence(self)) if s]
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
        return _html(
            self.reading(),
            effects_by_subgroup=self.to_frame(),
            differences_between_subgroups=self.heterogeneity_frame(),
        )


# ----------------------------------------------------------------------------------------------
# The reading: one sentence per variable, the count of clear effects, the levels not estimated


def _level_name(variable: str, level: str) -> str:
    """A readable name for a level in sentences (0/1 flags get words)."""
    return LEVEL_NAMES.get((variable, level), level)


def _subgroup_name(e: SubgroupEffect) -> str:
    """A subgroup's name in sentences ("manager coached", "role A")."""
    return LEVEL_NAMES.get((e.variable, e.level), f"{e.variable} {e.level}")


def _test_sentence(sub: SubgroupEffects, t: HeterogeneityTest) -> str:
    """Whether the effect differed between the levels of one variable, and the range."""
    treat = TREATMENT_NAMES.get(sub.treatment, f"'{sub.treatment}'")
    name = _outcome_name(sub.outcome)
    groups = VARIABLE_NAMES.get(t.variable, f"levels of {t.variable}")
    if math.isnan(t.p_value):
        return (
            f"Whether the effect of {treat} on {name} differed between {groups} could not "
            f"be tested: {t.note or 'fewer than two levels could be estimated'}."
        )
    pairs = [
        (e.level, e.effect)
        for e in sub.effects
        if e.variable == t.variable and e.effect is not None
    ]
    lo_level, lo = min(pairs, key=lambda p: p[1].estimate)
    hi_level, hi = max(pairs, key=lambda p: p[1].estimate)
    spread = (
        f"from {format_effect(lo.estimate, sub.outcome)} "
        f"({_level_name(t.variable, lo_level)}) "
        f"to {format_effect(hi.estimate, sub.outcome)} ({_level_name(t.variable, hi_level)})"
    )
    if t.p_value < sub.alpha:
        return (
            f"The effect of {treat} on {name} differed between {groups} "
            f"({_p_phrase(t.p_value)}): estimates ranged {spread}."
        )
    return (
        f"The effect of {treat} on {name} did not differ clearly between {groups} "
        f"({_p_phrase(t.p_value)}; estimates {spread})."
    )


def _count_sentence(sub: SubgroupEffects) -> str:
    """How many subgroups showed a clear effect after the correction ('' if none estimated)."""
    tested = [e for e in sub.effects if e.effect is not None]
    if not tested:
        return ""
    clear = [e for e in tested if e.p_adjusted < sub.alpha]
    if len(clear) == len(tested) > 1:
        count = f"all {len(tested)} subgroups showed a clear effect"
    else:
        count = f"{len(clear)} subgroup{'s' if len(clear) != 1 else ''} showed a clear effect"
        if 0 < len(clear) <= 6:
            count += ": " + ", ".join(_subgroup_name(e) for e in clear)
    label = CORRECTION_LABELS[sub.correction]
    return f"After the {label} correction for {len(tested)} subgroup comparisons, {count}."


def _skipped_sentence(sub: SubgroupEffects) -> str:
    """The subgroups that could not be estimated ('' if none)."""
    skipped = [e for e in sub.effects if e.effect is None]
    if not skipped:
        return ""
    names = ", ".join(_subgroup_name(e) for e in skipped[:6])
    more = f" and {len(skipped) - 6} more" if len(skipped) > 6 else ""
    return f"Not estimated (too few learners or no comparison within the subgroup): {names}{more}."


# ----------------------------------------------------------------------------------------------
# The estimation


def _subgroup_effect(
    subset: pd.DataFrame, variable: str, level: str, *, treatment: str, **fit
) -> SubgroupEffect:
    """The effect within one subgroup (``fit``: the arguments of `_try_estimate`)."""
    n_t, n_c = _counts(subset, treatment)
    est, note = _try_estimate(subset, treatment=treatment, **fit)
    return SubgroupEffect(variable, level, n_t, n_c, est, math.nan, note)


def _level_label(level: object) -> str:
    """A level as text (whole numbers stored as floats without the '.0')."""
    if isinstance(level, float | np.floating) and float(level).is_integer():
        return str(int(level))
    return str(level)


def _check_by(by: Sequence[str], *, outcome: str, treatment: str) -> tuple[str, ...]:
    """The subgrouping variables: at least one, none twice, neither outcome nor treatment."""
    by = tuple(by)
    if not by:
        raise ValueError("by must name at least one subgrouping variable")
    if len(set(by)) != len(by):
        raise ValueError(f"by={by!r} names a variable twice")
    if treatment in by or outcome in by:
        raise ValueError("the outcome and the treatment cannot be subgrouping variables")
    return by


def _variable_effects(
    df: pd.DataFrame, variable: str, *, covariates: Sequence[str], **fit
) -> list[SubgroupEffect]:
    """The effect within each level of one variable (dropped from the covariates there)."""
    levels = sorted(df[variable].unique(), key=lambda v: (str(type(v)), v))
    if len(levels) > MAX_SUBGROUP_LEVELS:
        raise ValueError(
            f"subgroup variable '{variable}' has {len(levels)} levels; group it into at most "
            f"{MAX_SUBGROUP_LEVELS} bands first"
        )
    covs = tuple(c for c in covariates if c != variable)
    return [
        _subgroup_effect(
            df.loc[df[variable] == level], variable, _level_label(level), covariates=covs, **fit
        )
        for level in levels
    ]


def _adjust(
    effects: list[SubgroupEffect], *, alpha: float, correction: str
) -> list[SubgroupEffect]:
    """The effects with p-values adjusted across all of them (``multipletests``)."""
    p_raw = [e.effect.p_value for e in effects if e.effect is not None]
    if not p_raw:
        return effects
    adjusted = iter(multipletests(p_raw, alpha=alpha, method=correction)[1])
    return [
        replace(e, p_adjusted=float(next(adjusted))) if e.effect is not None else e for e in effects
    ]


def _cluster_note(df: pd.DataFrame, variable: str, cluster: str | None) -> str:
    """A note when clusters span several levels of the variable ('' otherwise)."""
    if cluster is None or df.groupby(cluster)[variable].nunique().max() <= 1:
        return ""
    return (
        f"some {cluster} clusters span several levels of {variable}: subgroup estimates are "
        "not fully independent, so the test is approximate"
    )


def _cochran_q(
    variable: str, effects: Sequence[SubgroupEffect], note: str = ""
) -> HeterogeneityTest:
    """Cochran's Q test over the estimated levels of one variable (``note`` added to its own)."""
    ests = [e.effect for e in effects if e.effect is not None]
    usable = [e for e in ests if e.std_error > 0 and math.isfinite(e.std_error)]
    k = len(usable)
    if k < 2:
        need = f"only {k} level{'s' if k != 1 else ''} could be estimated; need 2"
        return HeterogeneityTest(
            variable, math.nan, max(k - 1, 0), math.nan, k, _join_notes(need, note)
        )
    b = np.array([e.estimate for e in usable])
    w = 1.0 / np.array([e.std_error for e in usable]) ** 2
    b_bar = float(np.sum(w * b) / np.sum(w))
    q = float(np.sum(w * (b - b_bar) ** 2))
    p = float(stats.chi2.sf(q, k - 1))
    return HeterogeneityTest(variable, q, k - 1, p, k, note)


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
    by = _check_by(by, outcome=outcome, treatment=treatment)
    frame = _frame(data)
    covs = outcome_covariates(outcome, covariates)
    df, excluded = _sample(
        frame,
        check=[outcome, treatment, *by, *covs],
        outcome=outcome,
        treatment=treatment,
        covariates=tuple(dict.fromkeys([*covs, *by])),
        cluster=cluster,
    )
    fit = {
        "outcome": outcome,
        "treatment": treatment,
        "method": method,
        "estimand": estimand,
        "cluster": cluster,
        "alpha": alpha,
        "min_group_size": min_group_size,
    }
    effects = [e for var in by for e in _variable_effects(df, var, covariates=covs, **fit)]
    effects = _adjust(effects, alpha=alpha, correction=correction)
    tests = tuple(
        _cochran_q(var, [e for e in effects if e.variable == var], _cluster_note(df, var, cluster))
        for var in by
    )
    return SubgroupEffects(
        outcome=outcome,
        treatment=treatment,
        method=method,
        estimand=estimand,
        alpha=alpha,
        correction=correction,
        effects=tuple(effects),
        tests=tests,
        covariates=covs if method != "difference" else (),
        cluster=cluster,
        min_group_size=min_group_size,
        excluded=excluded,
    )
