"""What changed since the last successful run of an evaluation, in plain words.

Compares two results.json documents: how each headline effect moved, and what is known to have
changed around it (more or fewer learners, new cohorts, other parameters). The first run says
that it is the first. Only aggregates are compared: nothing here names a learner.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lcstats.core.display import summary_html
from lcstats.core.options import OUTCOME_LABELS

SCALE = {"follow_through": (100.0, " percentage points", 1), "skills_gap": (1.0, " points", 2)}
IGNORED_PARAMETERS = (
    "learners",
    "action_items",
    "skill_assessments",
    "activity",
    "coaching_sessions",
)


@dataclass(frozen=True)
class SinceLastRun:
    """How the headline moved since the previous successful run, and what changed."""

    previous_run: str | None
    moves: tuple[str, ...] = ()
    changes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def first(self) -> bool:
        """True when there is no earlier successful run to compare with."""
        return self.previous_run is None

    def reading(self) -> str:
        """One or two sentences for the report."""
        if self.first:
            return "This is the first successful run of this evaluation: there is no earlier result to compare with."
        moved = "; ".join(self.moves) if self.moves else "the headline effects are the same"
        changed = (
            "; ".join(self.changes)
            if self.changes
            else "no change in the learners, cohorts or parameters"
        )
        return f"Since the last successful run ({self.previous_run}): {moved}. What changed: {changed}."

    def _repr_html_(self) -> str:
        return summary_html(self.reading())

    def as_dict(self) -> dict[str, Any]:
        """The JSON form (for run.json)."""
        return {
            "previous_run": self.previous_run,
            "moves": list(self.moves),
            "changes": list(self.changes),
        }


def _effect(value: float, outcome: str) -> str:
    """An effect in its display unit, signed."""
    factor, unit, digits = SCALE.get(outcome, (1.0, "", 3))
    return f"{value * factor:+.{digits}f}{unit}"


def _moves(current: dict, previous: dict) -> list[str]:
    """How each headline effect moved (outcomes in both documents)."""
    before = {h["outcome"]: h for h in previous.get("headlines", [])}
    moves = []
    for h in current.get("headlines", []):
        old = before.get(h["outcome"])
        if old is None:
            continue
        label = OUTCOME_LABELS.get(h["outcome"], h["outcome"]).split(" (")[0].lower()
        if round(old["estimate"], 6) == round(h["estimate"], 6):
            moves.append(
                f"the effect on {label} is unchanged at {_effect(h['estimate'], h['outcome'])}"
            )
        else:
            moves.append(
                f"the effect on {label} moved from {_effect(old['estimate'], h['outcome'])} to "
                f"{_effect(h['estimate'], h['outcome'])}"
            )
    return moves


def _programme_changes(current: dict, previous: dict) -> list[str]:
    """More or fewer learners, and cohorts added or gone."""
    now, then = current.get("programme", {}), previous.get("programme", {})
    changes = []
    diff = now.get("learners", 0) - then.get("learners", 0)
    if then and diff:
        changes.append(
            f"{abs(diff):,} {'more' if diff > 0 else 'fewer'} learners ({now.get('learners', 0):,} in all)"
        )
    added = sorted(set(now.get("cohorts", [])) - set(then.get("cohorts", [])))
    gone = sorted(set(then.get("cohorts", [])) - set(now.get("cohorts", [])))
    if then and added:
        changes.append(f"new cohort{'s' if len(added) > 1 else ''}: {', '.join(added)}")
    if then and gone:
        changes.append(
            f"cohort{'s' if len(gone) > 1 else ''} no longer in the data: {', '.join(gone)}"
        )
    return changes


def _parameter_changes(current: dict, previous: dict) -> list[str]:
    """Parameters that differ (where the data come from is left out: paths move)."""
    now, then = current.get("parameters", {}), previous.get("parameters", {})
    keys = sorted(
        k for k in set(now) | set(then) if k not in IGNORED_PARAMETERS and now.get(k) != then.get(k)
    )
    return [f"parameters changed: {', '.join(keys)}"] if keys else []


def since_last_run(
    current: dict, previous: dict | str | Path | None, *, previous_run: str | None = None
) -> SinceLastRun:
    """Compare an evaluation's results with its previous successful run's.

    Parameters
    ----------
    current : dict
        This run's results.json document.
    previous : dict, path or None
        The previous successful run's results.json (or its path); None for a first run.
    previous_run : str, optional
        The previous run's id, as the report names it.
    """
    if previous is None:
        return SinceLastRun(None)
    if not isinstance(previous, dict):
        path = Path(previous)
        previous_run = previous_run or path.parent.name
        try:
            previous = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return SinceLastRun(None)
    changes = _programme_changes(current, previous) + _parameter_changes(current, previous)
    if previous.get("as_of") != current.get("as_of"):
        changes.insert(0, f"data as of {current.get('as_of')} (was {previous.get('as_of')})")
    return SinceLastRun(
        previous_run or "previous run", tuple(_moves(current, previous)), tuple(changes)
    )
