"""Everything that says how far to trust the headline estimates, computed in one place.

`diagnose` runs, for an evaluation: balance and overlap of the propensity model, E-values of the
headline estimates, dose-response over coaching sessions, effects by subgroup, and the effect of
coaching line managers with its interaction with learner coaching.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from statsmodels.regression.linear_model import OLS

from lcstats.core.errors import EstimationError
from lcstats.estimation.analysis import EffectSet, outcome_covariates
from lcstats.estimation.balance import (
    Balance,
    Overlap,
    balance_table,
    overlap_summary,
    propensity_scores,
)
from lcstats.estimation.effects import _design
from lcstats.estimation.heterogeneity import (
    DoseResponse,
    ManagerEffects,
    SubgroupEffects,
    dose_response,
    manager_effects,
    subgroup_effects,
)
from lcstats.estimation.sensitivity import EValue, control_sd, evalue_from_estimate
from lcstats.outcomes.learner import LearnerOutcomes

SUBGROUP_VARIABLES = ("role", "cohort", "manager_coached")


@dataclass(frozen=True)
class Diagnostics:
    """Balance, overlap, sensitivity and heterogeneity results of one evaluation.

    Per-outcome results are keyed by outcome id. ``skipped`` says which analyses could not be run
    and why (for example no ``manager_coached`` column), so nothing is silently missing.
    """

    balance: Balance
    overlap: Overlap
    propensity: np.ndarray = field(repr=False)
    treated: np.ndarray = field(repr=False)
    evalues: dict[str, EValue]
    dose: dict[str, DoseResponse]
    subgroups: dict[str, SubgroupEffects]
    manager: dict[str, ManagerEffects]
    skipped: dict[str, str] = field(default_factory=dict)


def diagnose(
    outcomes: LearnerOutcomes,
    effects: EffectSet,
    *,
    treatment: str,
    covariates: Sequence[str],
    cluster: str | None,
    headline_method: str,
    estimand: str = "ATE",
    alpha: float = 0.05,
    min_group_size: int = 5,
) -> Diagnostics:
    """Run every diagnostic of an evaluation on the samples its estimates used.

    Balance and overlap are shown for the follow-through sample (the larger one in practice);
    the weights are those of inverse probability weighting for the chosen estimand.
    """
    sample = effects.samples["follow_through"].data
    covs = list(covariates)
    propensity = propensity_scores(sample, treatment=treatment, covariates=covs)
    treated = sample[treatment].to_numpy(dtype=int)
    balance = balance_table(
        sample,
        treatment=treatment,
        covariates=covs,
        method="overlap" if estimand == "ATO" else "ipw",
        estimand=estimand,
    )
    overlap = overlap_summary(propensity, treated)
    by_outcome = _by_outcome(
        outcomes,
        effects,
        treatment=treatment,
        covariates=covariates,
        cluster=cluster,
        headline_method=headline_method,
        estimand=estimand,
        alpha=alpha,
        min_group_size=min_group_size,
    )
    return Diagnostics(balance, overlap, propensity, treated, **by_outcome)


def _by_outcome(
    outcomes: LearnerOutcomes,
    effects: EffectSet,
    *,
    treatment: str,
    covariates: Sequence[str],
    cluster: str | None,
    headline_method: str,
    estimand: str,
    alpha: float,
    min_group_size: int,
) -> dict[str, dict]:
    """E-values, dose-response, subgroup and manager effects of each outcome, and what was skipped.

    Each uses the outcome's own analysis sample; the result holds the fields of `Diagnostics`
    from ``evalues`` to ``skipped``.
    """
    has_manager = (
        "manager_coached" in outcomes.data and outcomes.data["manager_coached"].notna().all()
    )
    by = tuple(
        v
        for v in SUBGROUP_VARIABLES
        if v in outcomes.data and (v != "manager_coached" or has_manager)
    )
    fit = {"method": headline_method, "alpha": alpha, "min_group_size": min_group_size}
    evalues, dose, subgroups, manager, skipped = {}, {}, {}, {}, {}
    for outcome, smp in effects.samples.items():
        data = smp.data
        covs = outcome_covariates(outcome, covariates)
        head = effects.get(outcome, headline_method, treatment)
        evalues[outcome] = evalue_from_estimate(
            head, outcome_sd=control_sd(data, outcome=outcome, treatment=treatment)
        )
        if treatment == "coached" and "coaching_sessions" in data:
            dose[outcome] = dose_response(
                data, outcome=outcome, covariates=covs, cluster=cluster, **fit
            )
        subgroups[outcome] = subgroup_effects(
            data,
            outcome=outcome,
            treatment=treatment,
            by=by,
            covariates=covs,
            estimand=estimand,
            cluster=cluster,
            **fit,
        )
        if has_manager and "manager_id" in data and treatment == "coached":
            try:
                manager[outcome] = manager_effects(
                    data,
                    outcome=outcome,
                    covariates=[c for c in covs if c != "manager_coached"],
                    cluster="manager_id",
                    **fit,
                )
            except EstimationError as exc:
                skipped[f"manager coaching ({outcome})"] = str(exc)
    if not has_manager:
        skipped["manager coaching"] = "the learners table has no complete manager_coached column"
    return {
        "evalues": evalues,
        "dose": dose,
        "subgroups": subgroups,
        "manager": manager,
        "skipped": skipped,
    }


def outcome_residuals(
    data: pd.DataFrame, *, outcome: str, treatment: str, covariates: Sequence[str]
) -> pd.DataFrame:
    """Fitted values and residuals of the outcome model in each treatment group (for analysts).

    Returns one row per learner with ``group``, ``fitted`` and ``residual``: analyst material,
    never shown in the leadership report.
    """
    x, _ = _design(data, covariates)
    y = data[outcome].to_numpy(dtype=float)
    t = data[treatment].to_numpy(dtype=int)
    rows = []
    for flag, group in ((1, "coached"), (0, "not coached")):
        mask = t == flag
        res = OLS(y[mask], x[mask]).fit()
        rows.append(
            pd.DataFrame({"group": group, "fitted": res.fittedvalues, "residual": res.resid})
        )
    return pd.concat(rows, ignore_index=True)
