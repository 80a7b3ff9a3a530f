"""Allowed values of every option, declared once and checked at the public boundary."""

from __future__ import annotations

from typing import Literal, get_args

Method = Literal["difference", "regression", "ipw", "aipw"]
Estimand = Literal["ATE", "ATT", "ATO"]
Outcome = Literal["follow_through", "skills_gap"]
Table = Literal["learners", "action_items", "skill_assessments"]

METHODS: tuple[str, ...] = get_args(Method)
ESTIMANDS: tuple[str, ...] = get_args(Estimand)
OUTCOMES: tuple[str, ...] = get_args(Outcome)
TABLES: tuple[str, ...] = get_args(Table)

OUTCOME_UNITS = {
    "follow_through": "proportion of action items done on time (0-1)",
    "skills_gap": "points on the skill scale",
}
OUTCOME_LABELS = {
    "follow_through": "Follow-through (share of action items done on time)",
    "skills_gap": "Skills gap after the programme (target minus assessed level)",
}


def check_choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    """Raise a ValueError naming the allowed values when `value` is not one of them."""
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not allowed; choose one of {', '.join(allowed)}")
