"""Allowed values of every option, declared once and checked at the public boundary."""

from __future__ import annotations

from typing import Literal, get_args

Method = Literal["difference", "regression", "ipw", "aipw"]
Estimand = Literal["ATE", "ATT", "ATO"]
# How IPW and AIPW scale each group's weighted sums: by the sum of the weights (Hajek, the
# default) or by the group's size (Horvitz-Thompson; statsmodels' TreatmentEffect.aipw).
Weights = Literal["normalised", "unnormalised"]
Outcome = Literal["follow_through", "skills_gap"]
Table = Literal["learners", "action_items", "skill_assessments"]
UnknownLearners = Literal["exclude", "reject"]
Design = Literal["observational", "staggered", "randomised"]
Period = Literal["month", "quarter"]
ControlGroup = Literal["never_treated", "not_yet_treated"]

METHODS: tuple[str, ...] = get_args(Method)
ESTIMANDS: tuple[str, ...] = get_args(Estimand)
WEIGHTS: tuple[str, ...] = get_args(Weights)
OUTCOMES: tuple[str, ...] = get_args(Outcome)
TABLES: tuple[str, ...] = get_args(Table)
UNKNOWN_LEARNERS: tuple[str, ...] = get_args(UnknownLearners)
DESIGNS: tuple[str, ...] = get_args(Design)
# what each design assumes, in one sentence for the executive summary
DESIGN_ASSUMPTIONS = {
    "observational": "coached and other learners are comparable once the recorded differences "
    "between them (the covariates) are taken into account",
    "staggered": "without coaching, follow-through in teams that started coaching would have moved "
    "as it did in teams not (yet) coached",
    "randomised": "coaching was assigned at random, so coached and other learners differ only by "
    "chance",
}

OUTCOME_UNITS = {
    "follow_through": "proportion of action items done on time (0-1)",
    "skills_gap": "points on the skill scale",
    "followed_through": "share of learners who followed through (0-1)",
}
OUTCOME_LABELS = {
    "follow_through": "Follow-through (share of action items done on time)",
    "skills_gap": "Skills gap after the programme (target minus assessed level)",
    "followed_through": "Followed through (enough action items done on time)",
}


def check_choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    """Raise a ValueError naming the allowed values when `value` is not one of them."""
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not allowed; choose one of {', '.join(allowed)}")


# learner columns an activity log gives (see lcstats.data.activity)
ACTIVITY_FEATURES = (
    "pre_active_weeks",
    "pre_minutes",
    "pre_items_started",
    "pre_items_completed",
    "pre_share_completed",
    "pre_days_since_last",
)
