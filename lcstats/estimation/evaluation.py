"""One evaluation's statistics from its parameters, computed as the evaluation notebook does.

The notebook spells out each call for its readers; `evaluate` makes the same calls in one go for
scripts, tests and benchmarks (a test checks that both give the same results.json).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lcstats.data.load import Programme
    from lcstats.estimation.analysis import EffectSet
    from lcstats.estimation.costs import ValueForMoney
    from lcstats.estimation.designs import DesignResult
    from lcstats.estimation.diagnostics import Diagnostics
    from lcstats.outcomes.learner import LearnerOutcomes
    from lcstats.params import Params


@dataclass(frozen=True, repr=False)
class Evaluation:
    """The parameters, validated inputs, learner outcomes, effects and diagnostics of a run.

    In a notebook it shows the headline estimates in plain words, with the tables (every
    estimate, data quality, the design's estimates, balance) folded below them.
    """

    params: Params
    programme: Programme
    outcomes: LearnerOutcomes
    effects: EffectSet
    diagnostics: Diagnostics
    design: DesignResult | None = None
    value: ValueForMoney | None = None

    def headlines(self) -> list[str]:
        """The headline estimate of each outcome, in plain words."""
        from lcstats.estimation.designs import headline_estimates

        return [e.reading() for e in headline_estimates(self.params, self.effects, self.design)]

    def __repr__(self) -> str:
        learners = len(self.outcomes.data)
        return (
            f"Evaluation({self.params.evaluation!r}, {self.params.design}, {learners:,} learners, "
            f"as of {self.params.as_of})"
        )

    def _repr_html_(self) -> str:
        from lcstats.core.display import summary_html

        details = {
            "Every estimate": self.effects.to_frame(),
            "Data quality": self.outcomes.quality.to_frame(),
            "Balance of the covariates": self.diagnostics.balance.to_frame(),
        }
        if self.design is not None and self.design.estimates:
            from lcstats.estimation.designs import estimates_frame

            details["The design's estimates"] = estimates_frame(self.design)
        if self.value is not None:
            details["What it cost"] = self.value.to_frame()
        title = (
            f"{self.params.title} (as of {self.params.as_of}, {len(self.outcomes.data):,} learners)"
        )
        lines = [*self.headlines(), self.diagnostics.balance.reading()]
        return summary_html(title, lines, details)

    def report_arguments(self, run_id: str) -> dict[str, Any]:
        """Keyword arguments of `lcstats.reporting.report.build_report` (``results_document`` takes the
        same without `run_id`)."""
        return {**{f: getattr(self, f) for f in self.__dataclass_fields__}, "run_id": run_id}


def estimate(params: Params, outcomes: LearnerOutcomes) -> EffectSet:
    """The effects of coaching the parameters ask for (`lcstats.estimate_effects`)."""
    from lcstats.estimation.analysis import estimate_effects

    return estimate_effects(
        outcomes,
        treatment=params.treatment,
        covariates=params.covariates,
        methods=params.methods,
        estimand=params.estimand,
        cluster=params.cluster,
        alpha=params.alpha,
        trim=params.trim,
    )


def diagnose_evaluation(
    params: Params, outcomes: LearnerOutcomes, effects: EffectSet
) -> Diagnostics:
    """How far to trust the effects, as the parameters ask (`lcstats.diagnose`)."""
    from lcstats.estimation.diagnostics import diagnose

    return diagnose(
        outcomes,
        effects,
        treatment=params.treatment,
        covariates=params.covariates,
        cluster=params.cluster,
        headline_method=params.headline_method,
        estimand=params.estimand,
        alpha=params.alpha,
        min_group_size=params.min_group_size,
    )


def evaluate(params: Params, *, programme: Programme | None = None) -> Evaluation:
    """Compute an evaluation: inputs, learner outcomes, effects and diagnostics.

    Parameters
    ----------
    params : Params
        The evaluation's parameters (`lcstats.load_params`).
    programme : Programme, optional
        Validated inputs, when already loaded; read from the parameters' files otherwise.
    """
    from lcstats.data.inputs import load_inputs
    from lcstats.estimation.designs import check_design, design_estimates
    from lcstats.outcomes.learner import learner_outcomes

    programme = programme if programme is not None else load_inputs(params)
    check_design(params, programme)
    outcomes = learner_outcomes(programme, as_of=params.as_of)
    effects = estimate(params, outcomes)
    diagnostics = diagnose_evaluation(params, outcomes, effects)
    design = design_estimates(params, programme, outcomes, effects)
    value = value_for_money(params, effects, design)
    return Evaluation(params, programme, outcomes, effects, diagnostics, design, value)


def value_for_money(
    params: Params, effects: EffectSet, design: DesignResult
) -> ValueForMoney | None:
    """Cost per outcome of the headline effects, when the parameters give costs."""
    from lcstats.estimation.costs import evaluation_costs
    from lcstats.estimation.designs import headline_estimates

    headlines = headline_estimates(params, effects, design)
    return evaluation_costs(
        headlines,
        effects.samples,
        costs=params.costs,
        treatment=params.treatment,
        alpha=params.alpha,
    )
