"""Everything that says how far to trust the headline estimates, computed in one place.

`diagnose` runs, for an evaluation: balance and overlap of the propensity model, E-values of the
headline estimates, dose-response over coaching sessions, effects by subgroup, and the effect of
coaching line managers with its interaction with learner coaching.

What is shared rather than computed again: balance and overlap use the propensity model the
estimates fitted (`EffectSet.propensity`); E-values use the headline estimates; and the dose,
subgroup and manager analyses of an outcome run on one compact copy of its sample, coded once
(only the columns they use, text as categories, cluster identifiers as integer codes), so that
each of their many estimates neither copies the whole learner table nor codes its text again.
Their estimates equal those on the original table: a subgroup has its own propensity and
outcome models, which the maths does not let one fit share. These analyses, for both outcomes,
and the balance of the covariates run side by side on the machine's cores
(`lcstats.core.forks.calls_on_cores`: in threads at scale, in forked copies below 200,000
learners, where the many small fits are mostly Python); in threads the balance starts first, on
a thread of its own, while the samples are coded.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from html import escape
from typing import Any

import numpy as np
import pandas as pd
from statsmodels.regression.linear_model import OLS
from threadpoolctl import threadpool_limits

from lcstats.core.display import Readings, summary_html
from lcstats.core.errors import EstimationError
from lcstats.core.forks import calls_on_cores
from lcstats.core.options import OUTCOME_LABELS
from lcstats.core.threads import workers_for
from lcstats.estimation.analysis import EffectSet, outcome_covariates
from lcstats.estimation.balance import (
    Balance,
    Overlap,
    balance_from_propensity,
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
from lcstats.estimation.pooling import PooledEffect, cohort_estimates
from lcstats.estimation.sensitivity import EValue, control_sd, evalue_from_estimate
from lcstats.outcomes.learner import LearnerOutcomes

SUBGROUP_VARIABLES = ("role", "cohort", "manager_coached")
ANALYSES = ("subgroups", "dose", "cohorts", "manager", "balance")  # by time, the longest first
MAY_FAIL = {"manager": "manager coaching", "cohorts": "pooling across cohorts"}  # and their names


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
    cohorts: dict[str, PooledEffect] = field(default_factory=dict)  # pooled across cohorts

    def readings(self) -> Readings:
        """Every diagnostic's reading in plain words, labelled (a Markdown list in notebooks)."""
        out = {"Balance": self.balance.reading(), "Overlap": self.overlap.reading()}
        for label, results in (
            ("Sensitivity", self.evalues),
            ("Dose", self.dose),
            ("Subgroups", self.subgroups),
            ("Manager coaching", self.manager),
            ("Across cohorts", self.cohorts),
        ):
            for outcome, result in results.items():
                out[f"{label}, {OUTCOME_LABELS.get(outcome, outcome)}"] = result.reading()
        out |= {f"Not run: {what}": why for what, why in self.skipped.items()}
        return Readings(out)

    def __repr__(self) -> str:
        return f"Diagnostics({len(self.readings().items)} readings)"

    def _repr_html_(self) -> str:
        readings = [f"{label}: {text}" for label, text in self.readings().items]
        first = [r for r in readings if r.startswith(("Overlap", "Sensitivity"))]
        rest = [r for r in readings[1:] if r not in first]
        details = {
            "Dose, subgroups and manager coaching": "<ul>"
            + "".join(f"<li>{escape(r)}</li>" for r in rest)
            + "</ul>",
            "Balance of the covariates": self.balance.to_frame(),
            **{f"Sensitivity: {o}": e.to_frame() for o, e in self.evalues.items()},
        }
        return summary_html(self.balance.reading(), first, details)


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
    propensity = _estimated_propensity(effects, treatment=treatment, covariates=covs)
    if propensity is None:
        propensity = propensity_scores(sample, treatment=treatment, covariates=covs)
    treated = sample[treatment].to_numpy(dtype=int)
    balance = partial(
        balance_from_propensity,
        sample,
        treatment=treatment,
        covariates=covs,
        propensity=propensity,
        method="overlap" if estimand == "ATO" else "ipw",
        estimand=estimand,
    )
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
        balance=balance,
    )
    overlap = overlap_summary(propensity, treated)
    return Diagnostics(by_outcome.pop("balance"), overlap, propensity, treated, **by_outcome)


def _estimated_propensity(
    effects: EffectSet, *, treatment: str, covariates: Sequence[str]
) -> np.ndarray | None:
    """The follow-through propensity scores of the estimates, if their model is the one asked for.

    That is when an adjusted estimate of follow-through used this treatment and covariates (and
    its model did not separate the groups); otherwise None, and the model is fitted afresh.
    """
    scores = effects.propensity.get("follow_through")
    wanted = outcome_covariates("follow_through", covariates)
    same = any(
        e.outcome == "follow_through"
        and e.treatment == treatment
        and e.method != "difference"
        and e.covariates == wanted
        for e in effects.estimates
    )
    return scores if same else None


def _compact(data: pd.DataFrame, columns: Sequence[str], codes: Sequence[str]) -> pd.DataFrame:
    """The columns an outcome's diagnostics use, coded once for their many estimates.

    Text columns become categories and the identifier columns in ``codes`` (clusters) become
    integer codes in the order of their text, missing values kept: every estimate on the copy
    equals the one on the original columns (the design matrix sorts levels as text, and clusters
    only need to be told apart), but subsets are cheaper to take and nothing is coded twice.
    """
    out = {}
    for col in dict.fromkeys(c for c in columns if c in data.columns):
        values = data[col]
        if col in codes:
            coded, _ = pd.factorize(values, sort=True)
            out[col] = np.where(coded < 0, np.nan, coded.astype(float))
        elif pd.api.types.is_string_dtype(values) and not values.isna().any():
            out[col] = pd.Categorical(values)
        else:
            out[col] = values
    return pd.DataFrame(out, index=data.index)


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
    balance: Callable[[], Balance],
) -> dict[str, Any]:
    """E-values, dose-response, subgroup and manager effects of each outcome, its effect within
    each cohort pooled (random effects), and what was skipped; and the ``balance`` computed
    side by side with them.

    Each uses the outcome's own analysis sample; the result holds the fields of `Diagnostics`
    from ``evalues`` to ``cohorts``. Cohorts with fewer than ``min_group_size`` coached or
    not-coached learners are left out of the pooling and named in its notes. With many learners
    the analyses run side by side on the machine's cores (`lcstats.core.forks.calls_on_cores`):
    their dozens of refits take seconds at a million learners.
    """
    data = outcomes.data
    has_manager = "manager_coached" in data and data["manager_coached"].notna().all()
    by = tuple(
        v for v in SUBGROUP_VARIABLES if v in data and (v != "manager_coached" or has_manager)
    )
    pooled = "cohort" in data and data["cohort"].nunique() >= 2
    fit = {"method": headline_method, "alpha": alpha, "min_group_size": min_group_size}
    result: dict[str, Any] = {k: {} for k in ("evalues", "dose", "subgroups", "manager", "cohorts")}
    tasks: list[tuple[str, str, Callable[[], Any]]] = []  # (analysis, outcome, what computes it)
    common = {
        "treatment": treatment,
        "covariates": covariates,
        "cluster": cluster,
        "headline_method": headline_method,
        "by": by,
        "estimand": estimand,
        "fit": fit,
        "pooled": pooled,
        "has_manager": has_manager,
    }
    with contextlib.ExitStack() as stack:
        ahead = None
        if workers_for(len(data)) > 1:
            # in threads (see `calls_on_cores`) the balance, which needs no coded sample, starts
            # at once: the other core would otherwise wait while the samples are coded (1M
            # learners, in one process: 9.9-10.5 s -> 9.2-9.5 s, 3 runs each, interleaved)
            stack.enter_context(threadpool_limits(limits=1))
            ahead = stack.enter_context(ThreadPoolExecutor(1, "lcstats-balance")).submit(balance)
        else:
            tasks.append(("balance", "follow_through", balance))
        for outcome, smp in effects.samples.items():
            evalue, analyses = _outcome_analyses(smp.data, outcome, outcomes, effects, **common)
            result["evalues"][outcome] = evalue
            tasks += [(kind, outcome, task) for kind, task in analyses.items()]
        # the longest first: the cores finish together
        tasks.sort(key=lambda task: ANALYSES.index(task[0]))
        found = calls_on_cores(
            [partial(_attempt, (kind in MAY_FAIL, task)) for kind, _, task in tasks],
            rows=len(data),
        )
        if ahead is not None:
            result["balance"] = ahead.result()
    skipped = {}
    for (kind, outcome, _), value in zip(tasks, found, strict=True):
        if kind == "balance":
            result["balance"] = value
        elif isinstance(value, EstimationError):
            skipped[f"{MAY_FAIL[kind]} ({outcome})"] = str(value)
        else:
            result[kind][outcome] = value
    if not has_manager:
        skipped["manager coaching"] = "the learners table has no complete manager_coached column"
    if not pooled:
        skipped["pooling across cohorts"] = "fewer than two cohorts"
    return result | {"skipped": skipped}


def _outcome_analyses(
    sample: pd.DataFrame,
    outcome: str,
    outcomes: LearnerOutcomes,
    effects: EffectSet,
    *,
    treatment: str,
    covariates: Sequence[str],
    cluster: str | None,
    headline_method: str,
    by: tuple[str, ...],
    **analysis: Any,
) -> tuple[EValue, dict[str, Callable[[], Any]]]:
    """The E-value of an outcome's headline estimate and its analyses (`_analyses`), on one
    compact copy of its analysis sample (``analysis``: the other arguments of `_analyses`)."""
    covs = outcome_covariates(outcome, covariates)
    used = [outcome, treatment, *covs, *by, "coaching_sessions", "manager_coached", "coached"]
    ids = [c for c in (cluster, "manager_id") if c is not None]
    compact = _compact(sample, [*used, *ids], ids)
    evalue = evalue_from_estimate(
        effects.get(outcome, headline_method, treatment),
        outcome_sd=control_sd(compact, outcome=outcome, treatment=treatment),
    )
    analyses = _analyses(
        compact,
        outcomes,
        outcome=outcome,
        treatment=treatment,
        covariates=covariates,
        cluster=cluster,
        by=by,
        **analysis,
    )
    return evalue, analyses


def _analyses(
    compact: pd.DataFrame,
    outcomes: LearnerOutcomes,
    *,
    outcome: str,
    treatment: str,
    covariates: Sequence[str],
    by: tuple[str, ...],
    cluster: str | None,
    estimand: str,
    fit: dict[str, Any],
    pooled: bool,
    has_manager: bool,
) -> dict[str, Callable[[], Any]]:
    """The analyses of one outcome that apply, by name in `ANALYSES`: calls without arguments."""
    covs = outcome_covariates(outcome, covariates)
    common = {"outcome": outcome, "cluster": cluster, **fit}
    found: dict[str, Callable[[], Any]] = {
        "subgroups": partial(
            subgroup_effects,
            compact,
            treatment=treatment,
            by=by,
            covariates=covs,
            estimand=estimand,
            **common,
        )
    }
    if treatment == "coached" and "coaching_sessions" in compact:
        found["dose"] = partial(dose_response, compact, covariates=covs, **common)
    if pooled:
        found["cohorts"] = partial(
            cohort_estimates,
            outcomes,
            treatment=treatment,
            covariates=covariates,
            estimand=estimand,
            **common,
        )
    if has_manager and "manager_id" in compact and treatment == "coached":
        found["manager"] = partial(
            manager_effects,
            compact,
            covariates=[c for c in covs if c != "manager_coached"],
            **common | {"cluster": "manager_id"},
        )
    return found


def _attempt(task: tuple[bool, Callable[[], Any]]) -> Any:
    """The result of ``task = (may_fail, compute)``, or the `EstimationError` it raised if it
    may fail (a manager or cohort analysis the data cannot give)."""
    may_fail, compute = task
    if not may_fail:
        return compute()
    try:
        return compute()
    except EstimationError as exc:
        return exc


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
