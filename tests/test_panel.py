"""The learner x period follow-through panel, its team pooling and its balancing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lcstats.data.load import Programme
from lcstats.data.rollout import simulate_rollout
from lcstats.outcomes.learner import learner_outcomes
from lcstats.outcomes.panel import (
    balanced_panel,
    follow_through_panel,
    period_label,
    period_number,
    skills_gap_panel,
    team_panel,
)


def _items(rows: list[tuple[str, str, str, str | None]]) -> pd.DataFrame:
    """Items from (learner, created, due, completed) tuples."""
    learner, created, due, done = zip(*rows, strict=True)
    return pd.DataFrame(
        {
            "learner_id": pd.Series(learner, dtype="str"),
            "item_id": pd.Series([f"A{i}" for i in range(len(rows))], dtype="str"),
            "created_on": pd.to_datetime(list(created)),
            "due_on": pd.to_datetime(list(due)),
            "completed_on": pd.to_datetime(list(done)),
        }
    )


@pytest.fixture
def small():
    items = _items(
        [
            ("a", "2025-01-01", "2025-01-20", "2025-01-15"),  # Jan, on time
            ("a", "2025-01-05", "2025-01-31", "2025-02-03"),  # Jan, late
            ("a", "2025-02-01", "2025-03-10", None),  # Mar, never done
            ("b", "2025-01-10", "2025-02-01", "2025-02-01"),  # Feb, on the due date: on time
            ("b", "2025-03-01", "2025-03-20", "2025-03-02"),  # Mar, on time
            ("b", "2025-03-01", "2025-04-10", "2025-03-05"),  # due after as_of: not counted
        ]
    )
    learners = pd.DataFrame(
        {
            "learner_id": pd.Series(["a", "b", "c"], dtype="str"),
            "team_id": pd.Series(["T1", "T1", "T2"], dtype="str"),
            "coached": [1, 1, 0],
            "coached_from": pd.to_datetime(["2025-02-15", "2025-02-01", None]),
        }
    )
    return items, learners


def test_panel_counts_items_due_by_period_and_on_time(small):
    items, learners = small
    panel = follow_through_panel(items, learners, as_of="2025-03-31")
    assert list(panel.columns[:7]) == [
        "learner_id",
        "team_id",
        "period",
        "time",
        "n_due",
        "n_on_time",
        "follow_through",
    ]
    a = panel[panel["learner_id"] == "a"].set_index("period")
    assert a["n_due"].tolist() == [2, 0, 1]
    assert a["n_on_time"].tolist() == [1, 0, 0]
    assert a.loc["2025-01", "follow_through"] == 0.5
    assert np.isnan(a.loc["2025-02", "follow_through"])  # nothing due: missing, not 0
    b = panel[panel["learner_id"] == "b"].set_index("period")
    assert b["n_due"].tolist() == [0, 1, 1]  # the item due in April is not counted
    assert b["follow_through"].tolist()[1:] == [1.0, 1.0]
    # every learner has one row per period, even one without items
    assert panel.groupby("learner_id").size().tolist() == [3, 3, 3]


def test_groups_are_period_numbers_of_the_start_and_zero_for_never(small):
    items, learners = small
    panel = follow_through_panel(items, learners, as_of="2025-03-31")
    groups = panel.groupby("learner_id")["group"].first()
    assert groups.to_dict() == {"a": 2025 * 12 + 2, "b": 2025 * 12 + 2, "c": 0}
    assert (panel["time"] - panel["time"].min()).max() == 2
    quarterly = follow_through_panel(items, learners, as_of="2025-03-31", period="quarter")
    assert quarterly["period"].unique().tolist() == ["2025Q1"]
    assert quarterly.groupby("learner_id")["n_due"].sum().tolist() == [3, 2, 0]
    assert quarterly.groupby("learner_id")["group"].first().tolist() == [2025 * 4 + 1] * 2 + [0]


def test_coached_from_that_disagrees_with_coached_is_refused(small):
    items, learners = small
    bad = learners.assign(coached=[1, 0, 0])
    with pytest.raises(ValueError, match="1 learners have coached and coached_from"):
        follow_through_panel(items, bad, as_of="2025-03-31")
    without = follow_through_panel(items, learners.drop(columns="coached_from"), as_of="2025-03-31")
    assert "group" not in without.columns


def test_other_learner_columns_are_carried_on_request(small):
    items, learners = small
    people = learners.assign(engagement=[3.0, 4.5, 2.0])
    panel = follow_through_panel(items, people, as_of="2025-03-31", columns=["engagement"])
    assert panel.groupby("learner_id")["engagement"].first().tolist() == [3.0, 4.5, 2.0]
    with pytest.raises(ValueError, match="age not in the learners table"):
        follow_through_panel(items, people, as_of="2025-03-31", columns=["age"])


def test_unknown_period_is_refused_with_the_allowed_values(small):
    items, learners = small
    with pytest.raises(ValueError, match="choose one of month, quarter"):
        follow_through_panel(items, learners, as_of="2025-03-31", period="week")


def test_period_numbers_and_labels_round_trip():
    dates = pd.Series(pd.to_datetime(["2024-12-31", "2025-01-01", "2025-11-30"]))
    numbers = period_number(dates, "month")
    assert np.diff(numbers).tolist() == [1, 10]
    assert [period_label(n) for n in numbers] == ["2024-12", "2025-01", "2025-11"]
    quarters = period_number(dates, "quarter")
    assert [period_label(n, "quarter") for n in quarters] == ["2024Q4", "2025Q1", "2025Q4"]


def test_team_panel_pools_items_not_learners(small):
    items, learners = small
    panel = follow_through_panel(items, learners, as_of="2025-03-31")
    teams = team_panel(panel).set_index(["team_id", "period"])
    # March in T1: a has 1 item (late), b has 1 (on time) -> 1/2; January: a's 2 items -> 1/2
    assert teams.loc[("T1", "2025-03"), "follow_through"] == 0.5
    assert teams.loc[("T1", "2025-01"), "n_due"] == 2
    assert teams.loc[("T1", "2025-01"), "n_learners"] == 2
    assert np.isnan(teams.loc[("T2", "2025-01"), "follow_through"])
    mixed = panel.assign(group=np.where(panel["learner_id"] == "a", 24302, 24303))
    mixed.loc[mixed["learner_id"] == "c", "group"] = 0
    with pytest.raises(ValueError, match="1 teams have learners who started coaching"):
        team_panel(mixed)


def test_balanced_panel_drops_and_counts_units_with_an_empty_period(small):
    items, learners = small
    panel = follow_through_panel(items, learners, as_of="2025-03-31")
    by_learner = balanced_panel(panel, level="learner")
    assert by_learner.n_dropped == 3 and by_learner.n_units == 0
    by_team = balanced_panel(panel, level="team")
    assert (by_team.unit, by_team.n_units, by_team.n_dropped) == ("team_id", 1, 1)
    assert by_team.data["follow_through"].notna().all()
    assert "1 teams x 3 periods" in by_team.summary()
    with pytest.raises(ValueError, match="choose one of team, learner"):
        balanced_panel(panel, level="manager")


def test_panel_totals_agree_with_learner_outcomes():
    prog = simulate_rollout(n_teams=8, seed=4)
    as_of = prog.truth["rollout"]["as_of"]
    panel = follow_through_panel(prog.action_items, prog.learners, as_of=as_of)
    totals = panel.groupby("learner_id")[["n_due", "n_on_time"]].sum()
    programme = Programme(prog.learners, prog.action_items, prog.skill_assessments, {}, (1, 5))
    outcomes = learner_outcomes(programme, as_of=as_of).data.set_index("learner_id")
    assert (totals["n_due"] == outcomes["n_items"]).all()
    ratio = totals["n_on_time"] / totals["n_due"]
    np.testing.assert_allclose(ratio, outcomes["follow_through"].reindex(ratio.index))


# ----------------------------------------------------------------------------------------------
# The skills gap over more than two assessment waves


@pytest.fixture(scope="module")
def quarterly():
    return simulate_rollout(n_teams=12, team_size=4, seed=3, assessment_gap=3)


def test_skills_gap_panel_is_the_team_mean_of_learner_gaps_by_wave(quarterly):
    sa, learners = quarterly.skill_assessments, quarterly.learners
    panel = skills_gap_panel(sa, learners)
    assert panel.n_units == 12 and panel.n_dropped == 0 and panel.n_periods == 5
    data = panel.data
    assert data["wave"].unique().tolist() == ["pre", "mid1", "mid2", "mid3", "post"]
    # by hand: gap per skill, mean per learner and wave, mean per team and wave
    gap = (sa["target_level"] - sa["level"]).clip(lower=0)
    learner = sa.assign(gap=gap).groupby(["learner_id", "wave"])["gap"].mean().reset_index()
    learner = learner.merge(learners[["learner_id", "team_id"]], on="learner_id")
    by_hand = learner.groupby(["team_id", "wave"])["gap"].mean()
    got = data.set_index(["team_id", "wave"])["skills_gap"]
    pd.testing.assert_series_equal(got.sort_index(), by_hand.sort_index(), check_names=False)
    # time is the period of the wave's assessments; group the period coaching started
    first = data[data["team_id"] == data["team_id"].iloc[0]]
    assert first["period"].tolist() == ["2025-01", "2025-04", "2025-07", "2025-10", "2026-01"]
    starts = learners.groupby("team_id")["coached_from"].min()
    expected = period_number(starts.reindex(data["team_id"]).reset_index(drop=True))
    assert data["group"].tolist() == expected.tolist()


def test_skills_gap_panel_drops_and_counts_teams_missing_a_wave(quarterly):
    sa, learners = quarterly.skill_assessments, quarterly.learners
    team_of = learners.set_index("learner_id")["team_id"]
    gone = (sa["wave"] == "mid2") & (sa["learner_id"].map(team_of) == "T001")
    panel = skills_gap_panel(sa[~gone], learners)
    assert (panel.n_units, panel.n_dropped) == (11, 1)
    assert "T001" not in set(panel.data["team_id"])
    assert "1 teams dropped because some assessment wave had no learner" in panel.summary()
    # a learner not assessed (level missing) is not used; the team stays
    sa2 = sa.copy()
    sa2.loc[gone, "level"] = np.nan
    assert skills_gap_panel(sa2, learners).n_dropped == 1


def test_skills_gap_panel_refuses_two_waves_or_waves_in_one_period(quarterly):
    sa, learners = quarterly.skill_assessments, quarterly.learners
    with pytest.raises(ValueError, match=r"2 wave\(s\) \(pre, post\).*at least three"):
        skills_gap_panel(sa[sa["wave"].isin(["pre", "post"])], learners)
    moved = sa.copy()
    moved.loc[moved["wave"] == "mid1", "assessed_on"] = pd.Timestamp("2025-02-10")
    with pytest.raises(ValueError, match=r"fall in the same quarter \(2025Q1\)"):
        skills_gap_panel(moved, learners, period="quarter")
    assert skills_gap_panel(moved, learners, period="month").n_periods == 5
    with pytest.raises(ValueError, match="no coached_from"):
        skills_gap_panel(sa, learners.drop(columns="coached_from"))
