"""Follow-through by period: the learner x period panel a roll-out in waves is analysed on.

Follow-through of a learner in a period = share of the action items *due* in that period that were
completed on or before their due date. Items due after the as-of date are not counted (the as-of
period itself counts only the items due by the as-of date).

Periods and groups are numbered so that consecutive periods differ by one: ``time`` is
``year * 12 + month`` for months and ``year * 4 + quarter`` for quarters, and ``group`` (the
period coaching started, the cohort of Callaway and Sant'Anna) uses the same numbers, with ``0``
for learners never coached. Event time is then ``time - group`` periods.

Unbalanced cells
----------------
A learner has no follow-through in a period in which none of their items was due. The panel keeps
such cells (``n_due = 0``, ``follow_through`` missing) so that every learner has one row per period
and nothing is hidden. The staggered estimator needs a balanced panel (R ``did`` and moderndid
drop every unit that misses any period), and learner-level panels are sparse: with one or two
items a month most learners miss some month. Roll-outs are by team, so the recommended unit is the
team: `team_panel` pools a team's items in each period (follow-through = on-time items / items due
of the whole team), and `balanced_panel` returns the team x period (or learner x period) panel
with the units that miss a period dropped and counted.

Skills gap over assessment waves
--------------------------------
Where skills were assessed in more than two waves, `skills_gap_panel` gives the team x wave panel
of the mean skills gap (the learner gap of `lcstats.outcomes.learner`, averaged over the team's
learners assessed in the wave). A wave's period is that of the median of its ``assessed_on``
dates, and the waves are ordered by it; a team's coaching counts from the first wave assessed in
or after the period its coaching started.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import pandas as pd

from lcstats.core.display import summary_html
from lcstats.core.options import check_choice

__all__ = [
    "BalancedPanel",
    "balanced_panel",
    "follow_through_panel",
    "period_label",
    "period_number",
    "skills_gap_panel",
    "team_panel",
]

Period = Literal["month", "quarter"]
PanelLevel = Literal["team", "learner"]
PERIODS: tuple[str, ...] = get_args(Period)
PANEL_LEVELS: tuple[str, ...] = get_args(PanelLevel)
FREQ = {"month": "M", "quarter": "Q"}
PER_YEAR = {"month": 12, "quarter": 4}


def period_number(dates: pd.Series, period: Period = "month") -> pd.Series:
    """The period number of each date: ``year * 12 + month`` or ``year * 4 + quarter``.

    Missing dates give ``0`` (the number used for "never coached").

    Examples
    --------
    >>> period_number(pd.Series(pd.to_datetime(["2025-03-15", None])), "month").tolist()
    [24303, 0]
    """
    check_choice("period", period, PERIODS)
    dates = pd.to_datetime(dates)
    sub = dates.dt.month if period == "month" else dates.dt.quarter
    number = dates.dt.year * PER_YEAR[period] + sub
    return number.fillna(0).astype("int64")


def period_label(number: int, period: Period = "month") -> str:
    """The label of a period number (``24303 -> '2025-03'``, quarters ``'2025Q1'``).

    Examples
    --------
    >>> period_label(24303), period_label(8101, "quarter")
    ('2025-03', '2025Q1')
    """
    check_choice("period", period, PERIODS)
    year, sub = divmod(int(number) - 1, PER_YEAR[period])
    return f"{year}-{sub + 1:02d}" if period == "month" else f"{year}Q{sub + 1}"


def _item_counts(items: pd.DataFrame, cutoff: pd.Timestamp, period: Period) -> pd.DataFrame:
    """Items due and done on time by learner and period number (items due by `cutoff`)."""
    used = items[(items["due_on"] <= cutoff) & (items["created_on"] <= cutoff)]
    on_time = used["completed_on"].notna() & (used["completed_on"] <= used["due_on"])
    return (
        pd.DataFrame(
            {
                "learner_id": used["learner_id"].to_numpy(),
                "time": period_number(used["due_on"], period).to_numpy(),
                "n_due": 1,
                "n_on_time": on_time.to_numpy().astype("int64"),
            }
        )
        .groupby(["learner_id", "time"], sort=True)
        .sum()
    )


def _cohort_groups(learners: pd.DataFrame, period: Period) -> pd.Series:
    """The period number in which each learner's coaching started, 0 for never coached.

    Raises a ValueError when ``coached`` and ``coached_from`` disagree.
    """
    start = pd.to_datetime(learners["coached_from"])
    if "coached" in learners.columns:
        coached = learners["coached"].fillna(0).astype(int) == 1
        bad = (coached & start.isna()) | (~coached & start.notna())
        if bad.any():
            ids = ", ".join(map(str, learners.loc[bad, "learner_id"].head(5)))
            raise ValueError(
                f"{int(bad.sum())} learners have coached and coached_from that disagree "
                f"(e.g. {ids}): every coached learner needs the date coaching started, and the "
                "others none"
            )
    return period_number(start, period)


def follow_through_panel(
    action_items: pd.DataFrame,
    learners: pd.DataFrame,
    *,
    as_of: str | pd.Timestamp,
    period: Period = "month",
    columns: Sequence[str] = (),
) -> pd.DataFrame:
    """A learner x period panel of follow-through (share of the items due done on time).

    Parameters
    ----------
    action_items : DataFrame
        The validated ``action_items`` table (``learner_id``, ``created_on``, ``due_on``,
        ``completed_on`` as datetimes).
    learners : DataFrame
        The validated ``learners`` table (``learner_id``, ``team_id``; optionally ``coached`` and
        ``coached_from``, the date coaching started).
    as_of : str or Timestamp
        Items due (or created) after it are not counted.
    period : {"month", "quarter"}
        The length of a period.
    columns : sequence of str
        Other learner columns to carry into every row (covariates for the staggered estimator).

    Returns
    -------
    DataFrame
        One row per learner and period, from the first period in which any item is due to the
        as-of period: ``learner_id``, ``team_id``, ``period`` (label), ``time`` (period number),
        ``n_due``, ``n_on_time``, ``follow_through`` (missing when ``n_due`` is 0) and, when the
        learners table has ``coached_from``: ``coached_from`` and ``group`` (the period number
        coaching started, 0 for never coached).

    Examples
    --------
    >>> items = pd.DataFrame({"learner_id": ["a", "a", "b"], "item_id": ["1", "2", "3"],
    ...     "created_on": pd.to_datetime(["2025-01-01", "2025-01-05", "2025-01-10"]),
    ...     "due_on": pd.to_datetime(["2025-01-20", "2025-02-10", "2025-02-01"]),
    ...     "completed_on": pd.to_datetime(["2025-01-15", None, "2025-01-30"])})
    >>> people = pd.DataFrame({"learner_id": ["a", "b"], "team_id": ["T1", "T1"]})
    >>> follow_through_panel(items, people, as_of="2025-02-28")[["learner_id", "period", "n_due", "follow_through"]]
      learner_id   period  n_due  follow_through
    0          a  2025-01      1             1.0
    1          a  2025-02      1             0.0
    2          b  2025-01      0             NaN
    3          b  2025-02      1             1.0
    """
    check_choice("period", period, PERIODS)
    cutoff = pd.Timestamp(as_of)
    counts = _item_counts(action_items, cutoff, period)
    if counts.empty:
        raise ValueError(f"no action item is due on or before the as-of date {cutoff.date()}")
    last = int(period_number(pd.Series([cutoff]), period).iloc[0])
    first = int(counts.index.get_level_values("time").min())
    times = np.arange(first, last + 1, dtype=np.int64)
    grid = pd.MultiIndex.from_product(
        [learners["learner_id"].to_numpy(), times], names=["learner_id", "time"]
    )
    panel = counts.reindex(grid, fill_value=0).reset_index()
    panel["follow_through"] = (panel["n_on_time"] / panel["n_due"]).where(panel["n_due"] > 0)
    missing = [c for c in columns if c not in learners.columns]
    if missing:
        raise ValueError(f"column(s) {', '.join(missing)} not in the learners table")
    coached = ["coached"] if "coached" in learners.columns else []
    keep = list(dict.fromkeys(["learner_id", "team_id", *coached, *columns]))
    info = learners[keep].reset_index(drop=True)
    if "coached_from" in learners.columns:
        info["coached_from"] = pd.to_datetime(learners["coached_from"]).to_numpy()
        info["group"] = _cohort_groups(learners, period).to_numpy()
    panel = panel.merge(info, on="learner_id", how="left", validate="many_to_one")
    labels = pd.Series([period_label(t, period) for t in times], index=times, dtype="str")
    panel["period"] = panel["time"].map(labels)
    front = ["learner_id", "team_id", "period", "time", "n_due", "n_on_time", "follow_through"]
    return panel[front + [c for c in panel.columns if c not in front]]


def team_panel(panel: pd.DataFrame) -> pd.DataFrame:
    """Pool a learner x period panel into a team x period panel.

    A team's follow-through in a period is the share of all its items due in that period that
    were done on time (items, not learners, are averaged). ``group`` must be the same for every
    learner of a team (teams start coaching together); ``n_learners`` counts the team's learners.

    Examples
    --------
    >>> lp = pd.DataFrame({"learner_id": ["a", "a", "b", "b"], "team_id": ["T"] * 4,
    ...     "period": ["2025-01", "2025-02"] * 2, "time": [24301, 24302] * 2,
    ...     "n_due": [1, 2, 3, 0], "n_on_time": [1, 1, 2, 0], "group": [24302] * 4})
    >>> team_panel(lp)[["team_id", "time", "n_due", "follow_through", "group"]]
      team_id   time  n_due  follow_through  group
    0       T  24301      4            0.75  24302
    1       T  24302      2            0.50  24302
    """
    grouped = panel.groupby(["team_id", "time"], sort=True)
    out = grouped.agg(
        period=("period", "first"),
        n_learners=("learner_id", "nunique"),
        n_due=("n_due", "sum"),
        n_on_time=("n_on_time", "sum"),
    ).reset_index()
    out["follow_through"] = (out["n_on_time"] / out["n_due"]).where(out["n_due"] > 0)
    if "group" in panel.columns:
        out["group"] = _team_groups(panel, "analyse the learner-level panel instead")[
            out["team_id"]
        ].to_numpy()
    return out


def _team_groups(rows: pd.DataFrame, hint: str) -> pd.Series:
    """The period each team started coaching (``group`` of its learners' rows), by team_id.

    Raises a ValueError (ending with `hint`) when a team's learners started in different periods.
    """
    starts = rows.groupby("team_id", sort=True)["group"].agg(["min", "max"])
    mixed = starts.index[starts["min"] != starts["max"]]
    if len(mixed):
        raise ValueError(
            f"{len(mixed)} teams have learners who started coaching in different periods "
            f"(e.g. {', '.join(map(str, mixed[:5]))}); {hint}"
        )
    return starts["min"].astype("int64")


@dataclass(frozen=True)
class BalancedPanel:
    """A balanced panel (every unit has follow-through in every period) and what was dropped.

    Attributes
    ----------
    data : DataFrame
        The panel rows of the units kept.
    unit : str
        The unit column (``team_id`` or ``learner_id``).
    n_units, n_dropped : int
        Units kept, and units dropped because some period had no item due.
    n_periods : int
        Number of periods.
    gap : str
        What a dropped unit missed.
    """

    data: pd.DataFrame
    unit: str
    n_units: int
    n_dropped: int
    n_periods: int
    gap: str = "some period had no action item due"

    def summary(self) -> str:
        """One line: units kept and dropped (returned, not printed)."""
        noun = "teams" if self.unit == "team_id" else "learners"
        return (
            f"{self.n_units} {noun} x {self.n_periods} periods; {self.n_dropped} {noun} dropped "
            f"because {self.gap}"
        )

    def __repr__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        return summary_html(self.summary())


def balanced_panel(panel: pd.DataFrame, *, level: PanelLevel = "team") -> BalancedPanel:
    """Balance a learner x period panel for the staggered estimator.

    Parameters
    ----------
    panel : DataFrame
        The output of `follow_through_panel`.
    level : {"team", "learner"}
        ``"team"`` pools each team's items by period (`team_panel`) and drops the teams with a
        period without any item due; ``"learner"`` keeps the learner rows and drops the learners
        with such a period.

    Returns
    -------
    BalancedPanel

    Examples
    --------
    >>> lp = pd.DataFrame({"learner_id": ["a", "a", "b", "b"], "team_id": ["T", "T", "U", "U"],
    ...     "period": ["2025-01", "2025-02"] * 2, "time": [24301, 24302] * 2,
    ...     "n_due": [1, 2, 3, 0], "n_on_time": [1, 1, 2, 0],
    ...     "follow_through": [1.0, 0.5, 2 / 3, None]})
    >>> balanced_panel(lp, level="learner").summary()
    '1 learners x 2 periods; 1 learners dropped because some period had no action item due'
    """
    check_choice("level", level, PANEL_LEVELS)
    data = team_panel(panel) if level == "team" else panel
    unit = "team_id" if level == "team" else "learner_id"
    empty = data.loc[data["n_due"] == 0, unit].unique()
    kept = data[~data[unit].isin(empty)].reset_index(drop=True)
    return BalancedPanel(
        data=kept,
        unit=unit,
        n_units=int(kept[unit].nunique()),
        n_dropped=int(len(empty)),
        n_periods=int(data["time"].nunique()),
    )


def _wave_periods(gaps: pd.DataFrame, period: Period) -> pd.Series:
    """The period number of each wave (of its median assessment date), in date order.

    Raises a ValueError for fewer than three waves, or two waves in the same period.
    """
    dates = gaps.groupby("wave", sort=True)["assessed_on"].median().sort_values()
    if len(dates) < 3:
        raise ValueError(
            f"skills were assessed in {len(dates)} wave(s) ({', '.join(dates.index)}): "
            "the skills gap over waves needs at least three"
        )
    numbers = period_number(dates.reset_index(drop=True), period)
    numbers.index = dates.index
    shared = numbers[numbers.duplicated(keep=False)]
    if len(shared):
        raise ValueError(
            f"assessment waves {', '.join(shared.index)} fall in the same {period} "
            f"({period_label(int(shared.iloc[0]), period)}); use period: month, or merge the waves"
        )
    return numbers


def skills_gap_panel(
    skill_assessments: pd.DataFrame, learners: pd.DataFrame, *, period: Period = "month"
) -> BalancedPanel:
    """The team x assessment-wave panel of the skills gap, for a roll-out (see the module
    docstring).

    Parameters
    ----------
    skill_assessments : DataFrame
        The validated ``skill_assessments`` table (``assessed_on`` in every row); rows without
        a level (not assessed) are not used.
    learners : DataFrame
        The validated ``learners`` table with ``team_id`` and ``coached_from``.
    period : {"month", "quarter"}
        The period that places each wave and each team's start of coaching.

    Returns
    -------
    BalancedPanel
        Rows ``team_id``, ``wave``, ``period``, ``time`` (the wave's period number),
        ``n_learners`` (assessed), ``skills_gap`` and ``group`` (the period coaching started,
        0 for never); teams with no learner assessed in some wave are dropped and counted.

    Raises
    ------
    ValueError
        Fewer than three waves, two waves in one period, or a team whose learners started
        coaching in different periods.

    Examples
    --------
    >>> sa = pd.DataFrame({"learner_id": ["a", "a", "a", "b", "b", "b"],
    ...     "wave": ["pre", "mid", "post"] * 2, "level": [2.0, 3, 4, 2, 2, 3],
    ...     "target_level": [4.0] * 6,
    ...     "assessed_on": pd.to_datetime(["2025-01-10", "2025-04-10", "2025-07-10"] * 2)})
    >>> people = pd.DataFrame({"learner_id": ["a", "b"], "team_id": ["T", "U"],
    ...     "coached_from": pd.to_datetime(["2025-03-01", None])})
    >>> skills_gap_panel(sa, people).data[["team_id", "wave", "skills_gap", "group"]]
      team_id  wave  skills_gap  group
    0       T   pre         2.0  24303
    1       T   mid         1.0  24303
    2       T  post         0.0  24303
    3       U   pre         2.0      0
    4       U   mid         2.0      0
    5       U  post         1.0      0
    """
    from lcstats.outcomes.learner import skill_gaps

    check_choice("period", period, PERIODS)
    if "coached_from" not in learners.columns:
        raise ValueError("the learners table has no coached_from: when did each team start?")
    gaps = skill_gaps(skill_assessments)
    times = _wave_periods(gaps, period)
    per_learner = gaps.groupby(["learner_id", "wave"], sort=False)["gap"].mean().reset_index()
    people = learners[["learner_id", "team_id"]].assign(
        group=_cohort_groups(learners, period).to_numpy()
    )
    rows = per_learner.merge(people, on="learner_id", how="inner", validate="many_to_one")
    out = (
        rows.groupby(["team_id", "wave"], sort=False)
        .agg(n_learners=("learner_id", "size"), skills_gap=("gap", "mean"))
        .reset_index()
    )
    out["time"] = out["wave"].map(times).astype("int64")
    out["period"] = out["time"].map(lambda t: period_label(t, period))
    starts = _team_groups(people, "the skills gap is compared by team")
    out["group"] = starts[out["team_id"]].to_numpy()
    n_waves = out.groupby("team_id")["wave"].transform("size")
    kept = out[n_waves == len(times)].sort_values(["team_id", "time"]).reset_index(drop=True)
    columns = ["team_id", "wave", "period", "time", "n_learners", "skills_gap", "group"]
    return BalancedPanel(
        data=kept[columns],
        unit="team_id",
        n_units=int(kept["team_id"].nunique()),
        n_dropped=int(out["team_id"].nunique() - kept["team_id"].nunique()),
        n_periods=len(times),
        gap="some assessment wave had no learner of theirs assessed",
    )
