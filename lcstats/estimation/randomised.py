"""Randomised pilots: difference in means with Lin's (2013) covariate adjustment.

When coaching was assigned at random (to learners, or to whole teams), the difference in mean
outcomes between coached and uncoached learners estimates the average effect (ATE) without any
model. Lin (2013) showed that adjusting for covariates by OLS of the outcome on the treatment,
the *centred* covariates and their interactions with the treatment never hurts precision
asymptotically, and that heteroskedasticity-robust HC2 standard errors are then conservative for
the randomisation distribution. When whole teams were assigned, the errors are cluster-robust by
team (statsmodels' CR1: factor G/(G-1) (n-1)/(n-k)) with t on G - 1 degrees of freedom; without
clustering the interval uses t on the residual degrees of freedom (pilots are small).

The regression is statsmodels ``OLS``; the result is an `lcstats.estimation.effects.EffectEstimate`
with ``method="lin"`` and ``estimand="ATE"``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from statsmodels.regression.linear_model import OLS

from lcstats.core.errors import EstimationError
from lcstats.core.options import OUTCOME_UNITS
from lcstats.estimation.effects import (
    MIN_PER_GROUP,
    EffectEstimate,
    _check_comparison_group,
    _design,
    _outcome_and_treatment,
)

__all__ = ["lin_design", "randomised_effect"]


def lin_design(
    data: pd.DataFrame, t: np.ndarray, covariates: Sequence[str]
) -> tuple[np.ndarray, list[str]]:
    """Columns of Lin's regression: constant, treatment, centred covariates and interactions.

    Text covariates become indicators (first level dropped) before centring.

    Examples
    --------
    >>> df = pd.DataFrame({"x": [1.0, 2.0, 3.0, 6.0]})
    >>> x, names = lin_design(df, np.array([1.0, 0.0, 1.0, 0.0]), ["x"])
    >>> names, x[:, 2].tolist()
    (['const', 'treated', 'x', 'treated:x'], [-2.0, -1.0, 0.0, 3.0])
    """
    base, base_names = _design(data, covariates)
    centred = base[:, 1:] - base[:, 1:].mean(axis=0)
    x = np.column_stack([np.ones(len(t)), t, centred, t[:, None] * centred])
    covs = base_names[1:]
    return x, ["const", "treated", *covs, *(f"treated:{c}" for c in covs)]


def _fit(y: np.ndarray, x: np.ndarray, groups: np.ndarray | None):
    """OLS with HC2 errors, or cluster-robust errors (t with clusters - 1 df) by ``groups``."""
    model = OLS(y, x)
    if groups is None:
        return model.fit(cov_type="HC2", use_t=True)
    codes, _ = pd.factorize(groups, sort=True)
    return model.fit(cov_type="cluster", cov_kwds={"groups": codes}, use_t=True)


def _notes(covariates: tuple[str, ...], cluster: str | None, n_clusters: int | None) -> list[str]:
    """What the reader should know about the design of the estimate."""
    adjusted = (
        f"with Lin (2013) adjustment for {', '.join(covariates)}"
        if covariates
        else "without covariates"
    )
    notes = [f"randomised pilot: difference in means {adjusted}"]
    if cluster:
        notes.append(f"coaching assigned by {cluster}: cluster-robust errors")
        if n_clusters is not None and n_clusters < 20:
            notes.append(f"only {n_clusters} clusters: cluster-robust intervals may be too narrow")
    return notes


def randomised_effect(
    data: pd.DataFrame,
    *,
    outcome: str,
    treatment: str,
    covariates: Sequence[str] = (),
    cluster: str | None = None,
    alpha: float = 0.05,
) -> EffectEstimate:
    """Average effect in a randomised pilot: difference in means, Lin-adjusted for covariates.

    Parameters
    ----------
    data : DataFrame
        One row per learner, no missing values in the columns used.
    outcome, treatment : str
        Columns; the treatment is the randomised 0/1 assignment.
    covariates : sequence of str
        Characteristics measured before assignment (text columns become indicators). They are
        centred and interacted with the treatment (Lin 2013).
    cluster : str, optional
        The unit of assignment when whole groups (teams) were randomised: cluster-robust errors.
    alpha : float
        1 - confidence level.

    Returns
    -------
    EffectEstimate
        ``method="lin"``, ``estimand="ATE"``.

    Examples
    --------
    >>> rng = np.random.default_rng(4)
    >>> t = rng.permutation(np.repeat([0, 1], 100))
    >>> x = rng.normal(size=200)
    >>> df = pd.DataFrame({"y": 0.5 * t + x + rng.normal(size=200), "t": t, "x": x})
    >>> est = randomised_effect(df, outcome="y", treatment="t", covariates=["x"])
    >>> est.method, round(est.estimate, 2), round(est.ci_low, 2), round(est.ci_high, 2)
    ('lin', 0.41, 0.13, 0.7)
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha={alpha!r} must be between 0 and 1")
    covariates = tuple(covariates)
    y, t = _outcome_and_treatment(
        data, outcome=outcome, treatment=treatment, covariates=covariates, cluster=cluster
    )
    _check_comparison_group(t, outcome=outcome, treatment=treatment)
    x, _ = lin_design(data, t, covariates)
    n_t, n_c = int(t.sum()), int(len(t) - t.sum())
    need = max(MIN_PER_GROUP, x.shape[1] // 2 + 1)
    if min(n_t, n_c) < need:
        raise EstimationError(
            f"too few learners for a Lin estimate of {outcome}: {n_t} treated and {n_c} "
            f"comparison (need at least {need} in each group, or fewer covariates)"
        )
    if np.linalg.matrix_rank(x) < x.shape[1]:
        raise EstimationError(
            "a covariate (or category) does not vary within the coached or the uncoached "
            "learners, so its interaction with the treatment cannot be estimated; remove or "
            "merge it"
        )
    groups = data[cluster].to_numpy() if cluster else None
    n_clusters = int(pd.Series(groups).nunique()) if cluster else None
    if n_clusters is not None and n_clusters < 2:
        raise EstimationError(f"cluster '{cluster}' has a single value: cannot cluster")
    res = _fit(y, x, groups)
    low, high = res.conf_int(alpha=alpha)[1]
    return EffectEstimate(
        outcome=outcome,
        treatment=treatment,
        estimand="ATE",
        method="lin",
        estimate=float(res.params[1]),
        std_error=float(res.bse[1]),
        ci_low=float(low),
        ci_high=float(high),
        p_value=float(res.pvalues[1]),
        n_treated=n_t,
        n_control=n_c,
        alpha=alpha,
        units=OUTCOME_UNITS.get(outcome, "outcome units"),
        covariates=covariates,
        cluster=cluster,
        n_clusters=n_clusters,
        notes=tuple(_notes(covariates, cluster, n_clusters)),
    )
