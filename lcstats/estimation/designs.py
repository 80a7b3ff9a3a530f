"""The evaluation's design: what identifies the effect, and the estimates that follow from it.

``observational`` (the default)
    Coached and other learners are compared once the recorded covariates are accounted for: the
    standard evaluation (`lcstats.estimation.analysis.estimate_effects`) is the design's estimate.
``staggered``
    Coaching was rolled out to teams in waves. Follow-through is measured per team and period
    (`lcstats.outcomes.panel`), and the effect is the Callaway & Sant'Anna average of group-time
    effects (`lcstats.estimation.staggered`): how follow-through changed in teams that started
    coaching, against teams never (or not yet) coached. Its headline is the simple aggregation;
    the event study (effects by periods since coaching started, with a simultaneous band) and
    the pre-trends test say how far to trust it. Where skills were assessed in more than two
    waves (``skill_waves``), the skills gap is estimated the same way on the team x wave panel
    (`lcstats.outcomes.panel.skills_gap_panel`) and that is its headline; measured before and
    after only, it stays an adjusted comparison.
``randomised``
    A randomised pilot: difference in means with Lin's covariate adjustment
    (`lcstats.estimation.randomised`), clustered when whole teams were assigned; the balance of
    the covariates is shown as a check of the randomisation.

Every design also measures the time to follow-through: completion curves by group (weighted
for the covariates) and a Cox hazard ratio (`lcstats.estimation.survival`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pandas as pd

from lcstats.core.display import summary_html
from lcstats.core.errors import EstimationError, InputError, Problem
from lcstats.core.options import DESIGN_ASSUMPTIONS
from lcstats.core.threads import calls_side_by_side

if TYPE_CHECKING:
    from lcstats.data.load import Programme
    from lcstats.estimation.analysis import EffectSet
    from lcstats.estimation.balance import Balance
    from lcstats.estimation.effects import EffectEstimate
    from lcstats.estimation.staggered import StaggeredAggregate, StaggeredResult
    from lcstats.estimation.survival import CompletionCurves, HazardRatio
    from lcstats.outcomes.learner import LearnerOutcomes
    from lcstats.outcomes.panel import BalancedPanel
    from lcstats.params import Params

AGGREGATIONS = ("simple", "group", "dynamic", "calendar")


@dataclass(frozen=True)
class DesignResult:
    """What an evaluation's design adds to the standard estimates.

    ``estimates`` holds the design's own estimates (staggered aggregations, randomised
    comparisons); the standard ones stay in the `EffectSet`. ``skipped`` says what could not be
    estimated and why.
    """

    design: str
    assumption: str
    estimates: tuple[EffectEstimate, ...] = ()
    staggered: StaggeredResult | None = None
    aggregates: dict[str, StaggeredAggregate] = field(default_factory=dict)
    panel: BalancedPanel | None = None
    skills: StaggeredResult | None = None
    skills_panel: BalancedPanel | None = None
    completion: CompletionCurves | None = None
    hazard: HazardRatio | None = None
    balance: Balance | None = None
    skipped: dict[str, str] = field(default_factory=dict)

    def headline(
        self, outcome: str, effects: EffectSet, method: str, treatment: str = "coached"
    ) -> EffectEstimate:
        """The estimate the executive summary quotes for an outcome."""
        for estimate in self.estimates:
            if (
                estimate.outcome == outcome
                and getattr(estimate, "aggregation", "simple") == "simple"
            ):
                return estimate
        return effects.get(outcome, method, treatment)

    def reading(self) -> str:
        """One sentence naming the design and its key assumption."""
        names = {
            "observational": "an adjusted comparison of coached and other learners",
            "staggered": "a roll-out to teams in waves, compared over time with teams not yet coached",
            "randomised": "a randomised pilot",
        }
        return f"The design is {names[self.design]}; it assumes that {self.assumption}."

    def __repr__(self) -> str:
        return f"DesignResult({self.design}, {len(self.estimates)} estimates)"

    def _repr_html_(self) -> str:
        lines = [
            e.reading() for e in self.estimates if getattr(e, "aggregation", "simple") == "simple"
        ]
        lines += [self.hazard.reading()] if self.hazard is not None else []
        lines += [f"not estimated: {what} ({why})" for what, why in self.skipped.items()]
        details = {"The design's estimates": estimates_frame(self)} if self.estimates else {}
        if self.hazard is not None:
            details["Time to complete an item (hazard ratio)"] = self.hazard.to_frame()
        return summary_html(self.reading(), lines, details)


def _staggered_panel(params: Params, programme: Programme) -> BalancedPanel:
    """The balanced team x period follow-through panel of a roll-out."""
    from lcstats.outcomes.panel import balanced_panel, follow_through_panel

    panel = follow_through_panel(
        programme.action_items, programme.learners, as_of=params.as_of, period=params.period
    )
    return balanced_panel(panel, level="team")


def check_design(params: Params, programme: Programme) -> None:
    """Raise `InputError` listing what the chosen design needs and the data lack."""
    problems = design_problems(params, programme)
    if problems:
        raise InputError(problems)


def design_problems(params: Params, programme: Programme) -> list[Problem]:
    """What the chosen design needs from the data, and does not find (empty when all is there)."""
    if params.design != "staggered":
        return []
    source = programme.sources["learners"].path
    learners = programme.learners
    if "coached_from" not in learners:
        return [
            Problem(
                source,
                "a staggered design needs the date each learner's coaching started (coached_from)",
                hint="add a coached_from column to the learners table, or give a coaching_sessions log",
            )
        ]
    missing = learners.index[(learners["coached"] == 1) & learners["coached_from"].isna()]
    problems = []
    if len(missing):
        problems.append(
            Problem(
                source,
                f"{len(missing)} coached learner(s) have no coaching start date (coached_from)",
                column="coached_from",
                rows=tuple(int(i) + 2 for i in missing[:5]),
                n_rows=len(missing),
                hint="fill in coached_from for every coached learner",
            )
        )
    if problems:
        return problems
    return _rollout_problems(params, programme, source)


def _rollout_problems(params: Params, programme: Programme, source: str) -> list[Problem]:
    """Checks of the roll-out itself: teams start together, waves, periods, comparison group."""
    from lcstats.outcomes.panel import follow_through_panel, team_panel

    try:
        panel = team_panel(
            follow_through_panel(
                programme.action_items, programme.learners, as_of=params.as_of, period=params.period
            )
        )
    except ValueError as exc:
        return [
            Problem(
                source,
                str(exc),
                column="coached_from",
                hint="a staggered design compares teams: start each team's coaching on the same period",
            )
        ]
    teams = panel.drop_duplicates("team_id")
    waves = sorted(g for g in teams["group"].unique() if g > 0)
    problems = []
    hint = "a staggered design needs teams coached in waves, with periods of data before the first"
    if not waves:
        return [Problem(source, "no team started coaching during the evaluation", hint=hint)]
    if (panel["time"] < waves[0]).groupby(panel["time"]).any().sum() < 2:
        problems.append(
            Problem(
                source,
                "fewer than two periods of follow-through before the first wave of coaching",
                hint=hint + "; use an earlier as-of window or period: month",
            )
        )
    never = (teams["group"] == 0).any()
    later = len(waves) > 1
    if params.control_group == "never_treated" and not never:
        problems.append(
            Problem(
                source,
                "no team was left uncoached, so there is no never-coached comparison group",
                hint='set control_group: "not_yet_treated" to compare with teams coached later',
            )
        )
    elif not (never or later):
        problems.append(
            Problem(
                source,
                "every team started coaching at once: no team is left to compare with",
                hint=hint,
            )
        )
    learners_per_wave = panel.drop_duplicates("team_id").groupby("group")["n_learners"].sum()
    small = [int(g) for g, n in learners_per_wave.items() if g > 0 and n < params.min_group_size]
    if small:
        problems.append(
            Problem(
                source,
                f"{len(small)} wave(s) have fewer than {params.min_group_size} learners (min_group_size)",
                hint="merge small waves, or lower min_group_size if your privacy rules allow",
            )
        )
    return problems


def _team_fit(params: Params, balanced: BalancedPanel, outcome: str) -> StaggeredResult:
    """The staggered fit of an outcome on a balanced team panel."""
    from lcstats.estimation.staggered import staggered_att

    return staggered_att(
        balanced.data,
        outcome=outcome,
        unit="team_id",
        time="time",
        group="group",
        control_group=params.control_group,
        method="dr",
        alpha=params.alpha,
    )


def _staggered(params: Params, programme: Programme) -> dict:
    """The staggered fit, its four aggregations and the panel."""

    balanced = _staggered_panel(params, programme)
    result = _team_fit(params, balanced, "follow_through")
    aggregates = {kind: result.aggregate(kind) for kind in AGGREGATIONS}
    return {
        "staggered": result,
        "aggregates": aggregates,
        "panel": balanced,
        "estimates": (aggregates["simple"],),
    }


def _staggered_skills(params: Params, programme: Programme) -> dict:
    """The staggered fit of the skills gap when more than two assessment waves are declared
    (``skill_waves``; none with two). ValueError when the data hold fewer than three."""
    from lcstats.outcomes.panel import skills_gap_panel

    if len(params.skill_waves) <= 2:
        return {}
    assessed = programme.skill_assessments
    balanced = skills_gap_panel(assessed, programme.learners, period=params.period)
    result = _team_fit(params, balanced, "skills_gap")
    return {"skills": result, "skills_panel": balanced, "skills_simple": result.aggregate("simple")}


def _randomised(params: Params, outcomes: LearnerOutcomes, effects: EffectSet) -> dict:
    """Lin-adjusted differences in means for both outcomes, and the randomisation check."""
    from lcstats.estimation.analysis import outcome_covariates
    from lcstats.estimation.balance import balance_table
    from lcstats.estimation.randomised import randomised_effect

    estimates = tuple(
        randomised_effect(
            sample.data,
            outcome=outcome,
            treatment=params.treatment,
            covariates=outcome_covariates(outcome, params.covariates),
            cluster=params.cluster,
            alpha=params.alpha,
        )
        for outcome, sample in effects.samples.items()
    )
    sample = effects.samples["follow_through"].data
    balance = balance_table(
        sample, treatment=params.treatment, covariates=params.covariates, method="difference"
    )
    return {"estimates": estimates, "balance": balance}


def _timing(params: Params, programme: Programme) -> dict:
    """Time to follow-through: completion curves and the hazard ratio."""
    from lcstats.estimation.survival import completion_curves, completion_hazard, completion_times

    learners = programme.learners
    covariates = [c for c in params.covariates if c in learners]
    used = [params.treatment, *covariates, *([params.cluster] if params.cluster else [])]
    items = completion_times(programme.action_items, learners, as_of=params.as_of, columns=used)
    items = items.dropna(subset=[params.treatment, *covariates])
    curves, hazard = calls_side_by_side(
        [
            lambda: completion_curves(items, treatment=params.treatment, covariates=covariates),
            lambda: completion_hazard(
                items,
                treatment=params.treatment,
                covariates=covariates,
                cluster=params.cluster,
                alpha=params.alpha,
                max_items=params.hazard_max_items,
            ),
        ],
        rows=len(learners),
    )
    return {"completion": curves, "hazard": hazard}


def design_estimates(
    params: Params, programme: Programme, outcomes: LearnerOutcomes, effects: EffectSet
) -> DesignResult:
    """The design's estimates for an evaluation (see the module docstring).

    Raises
    ------
    InputError
        When the data lack what the design needs (see `design_problems`).
    """
    check_design(params, programme)
    parts: dict = {}
    skipped: dict[str, str] = {}
    if params.design == "staggered":
        parts |= _staggered(params, programme)
        try:
            skills = _staggered_skills(params, programme)
        except (EstimationError, ValueError) as exc:
            skipped["the skills gap over assessment waves"] = str(exc)
        else:
            if skills:
                parts["estimates"] += (skills.pop("skills_simple"),)
                parts |= skills
    elif params.design == "randomised":
        parts |= _randomised(params, outcomes, effects)
    try:
        parts |= _timing(params, programme)
    except (EstimationError, ValueError) as exc:
        skipped["time to follow-through"] = str(exc)
    return DesignResult(params.design, DESIGN_ASSUMPTIONS[params.design], skipped=skipped, **parts)


def design_of(estimate: EffectEstimate, design: str) -> str:
    """The design an estimate belongs to: its own (staggered aggregations), else the evaluation's
    for its headline methods, else observational (the adjusted comparisons every design keeps)."""
    own = getattr(estimate, "design", None)
    if own:
        return own
    return design if design == "randomised" and estimate.method == "lin" else "observational"


def estimates_frame(result: DesignResult) -> pd.DataFrame:
    """The design's estimates as a tidy frame."""
    if not result.estimates:
        return pd.DataFrame()
    return pd.concat([e.to_frame() for e in result.estimates], ignore_index=True)


def headline_estimates(
    params: Params, effects: EffectSet, design: DesignResult | None
) -> list[EffectEstimate]:
    """The estimate quoted for each outcome: the design's when it has one, else the headline
    method's."""
    outcomes = dict.fromkeys(
        e.outcome for e in effects.estimates if e.treatment == params.treatment
    )
    if design is None:
        return [effects.get(o, params.headline_method, params.treatment) for o in outcomes]
    return [design.headline(o, effects, params.headline_method, params.treatment) for o in outcomes]
