"""Coaching the line manager as a second treatment (clustered by manager), and whether learner
coaching works differently when the manager was coached too."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd
from scipy import stats

from lcstats.estimation.analysis import outcome_covariates
from lcstats.estimation.effects import EffectEstimate, estimate_effect, format_effect, plain_reading
from lcstats.estimation.heterogeneity.common import (
    _check_common,
    _clear,
    _effect_row,
    _frame,
    _html,
    _interval,
    _join_notes,
    _outcome_name,
    _p_phrase,
    _sample,
    _text,
    _tidy,
)
from lcstats.estimation.heterogeneity.subgroups import (
    SUBGROUP_COLUMNS,
    SubgroupEffect,
    _subgroup_effect,
)
from lcstats.outcomes.learner import LearnerOutcomes

INTERACTION_FIELDS = ("difference", "std_error", "ci_low", "ci_high", "p_value")
MANAGER_COLUMNS = tuple(c for c in SUBGROUP_COLUMNS if c != "p_adjusted")  # no multiple testing


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
        return _html(self.reading(), effects_by_manager_coaching=self.to_frame())


def _interaction(
    df: pd.DataFrame,
    within: Sequence[SubgroupEffect],
    *,
    treatment: str,
    cluster: str | None,
    alpha: float,
) -> dict[str, float | str]:
    """The effect of learner coaching where the manager was coached minus where not.

    ``within`` holds those two effects (manager coached first); ``treatment`` is the manager
    coaching column. Returns the fields of `ManagerEffects` from ``difference`` to ``note``.
    """
    e1, e0 = within[0].effect, within[1].effect
    if e1 is None or e0 is None:
        missing = [f"{treatment} = {w.level}" for w in within if w.effect is None]
        note = f"learner coaching effect not estimated where {' and '.join(missing)}"
        return {**dict.fromkeys(INTERACTION_FIELDS, math.nan), "note": note}
    diff = e1.estimate - e0.estimate
    se = math.sqrt(e1.std_error**2 + e0.std_error**2)
    crit = float(stats.norm.ppf(1 - alpha / 2))
    note = ""
    if cluster is not None and df.groupby(cluster)[treatment].nunique().max() > 1:
        note = (
            f"{treatment} varies within {cluster} clusters: the two subsamples share "
            "clusters, so the standard error of the difference is approximate"
        )
    return {
        "difference": diff,
        "std_error": se,
        "ci_low": diff - crit * se,
        "ci_high": diff + crit * se,
        "p_value": float(2 * stats.norm.sf(abs(diff) / se)) if se > 0 else math.nan,
        "note": note,
    }


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
    df, excluded = _sample(
        frame,
        check=[outcome, manager_treatment, learner_treatment, *covs],
        outcome=outcome,
        treatment=manager_treatment,
        covariates=(*covs, learner_treatment),
        cluster=cluster,
    )
    fit = {"outcome": outcome, "method": method, "cluster": cluster, "alpha": alpha}
    manager_covs = (*covs, learner_treatment) if adjust_for_learner_coaching else covs
    manager = estimate_effect(
        df, treatment=manager_treatment, covariates=manager_covs, estimand="ATE", **fit
    )
    m = pd.to_numeric(df[manager_treatment], errors="coerce")
    within = tuple(
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
    )
    return ManagerEffects(
        outcome=outcome,
        method=method,
        alpha=alpha,
        manager=manager,
        within=within,
        **_interaction(df, within, treatment=manager_treatment, cluster=cluster, alpha=alpha),
        covariates=covs if method != "difference" else (),
        cluster=cluster,
        adjust_for_learner_coaching=adjust_for_learner_coaching,
        excluded=excluded,
    )
