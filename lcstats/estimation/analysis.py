"""The standard evaluation: each outcome x each method, on the learners each outcome can use."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from lcstats.core.options import OUTCOMES
from lcstats.estimation.effects import EffectEstimate, estimate_effect
from lcstats.outcomes.learner import AnalysisSample, LearnerOutcomes, analysis_sample

BASELINE = {"skills_gap": ("skills_gap_pre",)}  # baseline of an outcome, adjusted for too


def outcome_covariates(outcome: str, covariates: Sequence[str]) -> tuple[str, ...]:
    """The covariates used for an outcome: the chosen ones plus the outcome's own baseline."""
    return tuple(covariates) + tuple(c for c in BASELINE.get(outcome, ()) if c not in covariates)


@dataclass(frozen=True)
class EffectSet:
    """All estimates of one evaluation, and the analysis sample behind each outcome."""

    estimates: tuple[EffectEstimate, ...]
    samples: dict[str, AnalysisSample]

    def to_frame(self) -> pd.DataFrame:
        """Tidy frame: one row per outcome, treatment, estimand and method."""
        return pd.concat([e.to_frame() for e in self.estimates], ignore_index=True)

    def get(self, outcome: str, method: str, treatment: str = "coached") -> EffectEstimate:
        """Return the estimate for an outcome and method."""
        for e in self.estimates:
            if (e.outcome, e.method, e.treatment) == (outcome, method, treatment):
                return e
        raise KeyError((outcome, method, treatment))

    def _repr_html_(self) -> str:
        cols = [
            "outcome",
            "method",
            "estimand",
            "estimate",
            "ci_low",
            "ci_high",
            "p_value",
            "n_treated",
            "n_control",
        ]
        return self.to_frame()[cols].to_html(index=False, float_format="{:.4g}".format)


def estimate_effects(
    outcomes: LearnerOutcomes,
    *,
    treatment: str = "coached",
    covariates: Sequence[str] = (),
    methods: Sequence[str] = ("difference", "regression", "ipw", "aipw"),
    estimand: str = "ATE",
    cluster: str | None = None,
    alpha: float = 0.05,
    trim: Sequence[float] | None = None,
    outcome_ids: Sequence[str] = OUTCOMES,
) -> EffectSet:
    """Estimate the effect of `treatment` on every outcome with every method.

    Each outcome uses the learners that have it and every covariate (exclusions are counted in
    the returned samples); the skills gap also adjusts for the learner's pre-programme gap.
    `trim` (low, high) leaves out learners with extreme estimated chances of treatment in the
    adjusted methods (see `estimate_effect`).
    """
    estimates = []
    samples = {}
    for outcome in outcome_ids:
        covs = outcome_covariates(outcome, covariates)
        sample = analysis_sample(
            outcomes, outcome=outcome, treatment=treatment, covariates=covs, cluster=cluster
        )
        samples[outcome] = sample
        for method in methods:
            estimates.append(
                estimate_effect(
                    sample.data,
                    outcome=outcome,
                    treatment=treatment,
                    covariates=covs,
                    method=method,
                    estimand=estimand,
                    cluster=cluster,
                    alpha=alpha,
                    trim=tuple(trim) if trim is not None else None,
                )
            )
    return EffectSet(tuple(estimates), samples)
