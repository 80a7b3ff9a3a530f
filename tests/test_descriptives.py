"""Descriptive breakdowns: right numbers, no small cells, nothing learner-level."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import lcstats as lc
from lcstats.reporting import descriptives as d
from tests.conftest import EXAMPLE


@pytest.fixture(scope="module")
def example():
    prog = lc.load_programme(
        EXAMPLE / "learners.csv", EXAMPLE / "action_items.csv", EXAMPLE / "skill_assessments.csv"
    )
    return prog, lc.learner_outcomes(prog, as_of="2026-06-30")


def test_group_means_match_pandas_and_hide_small_cells(example):
    _, out = example
    data = out.data
    table = d.group_means(
        data, by="cohort", value="follow_through", treatment="coached", min_group_size=5
    )
    row = table.frame[
        (table.frame["cohort"] == "2026-Q1") & (table.frame["group"] == "coached")
    ].iloc[0]
    sel = data[
        (data["cohort"] == "2026-Q1") & (data["coached"] == 1) & data["follow_through"].notna()
    ]
    assert row["learners"] == len(sel)
    assert row["follow_through"] == pytest.approx(sel["follow_through"].mean())
    # a tiny group is hidden, with a complementary cell
    small = data.copy()
    small.loc[small.index[:3], "cohort"] = "pilot"
    t = d.group_means(
        small, by="cohort", value="follow_through", treatment="coached", min_group_size=5
    )
    shown = t.frame.dropna(subset=["learners"])
    assert (shown["learners"] >= 5).all()
    assert t.hidden >= 2
    assert t.frame[t.frame["learners"].isna()]["follow_through"].isna().all()


def test_funnel_counts_items(example):
    _, out = example
    f = d.item_funnel(out, treatment="coached").frame.set_index(["group", "stage"])
    total = out.data["n_items"].sum()
    assert (
        f.loc[("coached", "committed"), "items"] + f.loc[("not coached", "committed"), "items"]
        == total
    )
    for g in ("coached", "not coached"):
        assert (
            f.loc[(g, "committed"), "items"]
            >= f.loc[(g, "done"), "items"]
            >= f.loc[(g, "done on time"), "items"]
        )


def test_completion_curves_are_monotone_and_censor_at_as_of(example):
    prog, out = example
    curves = d.completion_curves(prog, out, treatment="coached")
    for _, part in curves.frame.groupby("group"):
        assert part["share_completed"].is_monotonic_increasing
        assert part["share_completed"].between(0, 1).all()
    assert sum(curves.items.values()) == int(out.data["n_items"].sum())
    # coached learners complete faster in the example programme
    assert curves.medians["coached"] < curves.medians["not coached"]


def test_completion_curves_equal_kaplan_meier_item_by_item(example):
    # the curves are estimated from the tally of (days, completed) pairs: the same as from the
    # items one by one
    from statsmodels.duration.survfunc import SurvfuncRight

    prog, out = example
    curves = d.completion_curves(prog, out, treatment="coached")
    cutoff = pd.Timestamp(out.as_of)
    items = prog.action_items
    items = items[(items["created_on"] <= cutoff) & (items["due_on"] <= cutoff)]
    coached = items["learner_id"].map(out.data.set_index("learner_id")["coached"])
    done = items["completed_on"].notna() & (items["completed_on"] <= cutoff)
    days = (items["completed_on"].where(done, cutoff) - items["created_on"]).dt.days.clip(lower=0)
    for flag, group in d.GROUP.items():
        mask = (coached == flag).to_numpy()
        sf = SurvfuncRight(days.to_numpy()[mask] + 0.5, done.to_numpy()[mask].astype(float))
        part = curves.frame[curves.frame["group"] == group]
        np.testing.assert_array_equal(part["days"].to_numpy(), np.r_[0.0, sf.surv_times])
        np.testing.assert_allclose(
            part["share_completed"].to_numpy(), 1 - np.r_[1.0, sf.surv_prob], rtol=1e-14
        )
        assert curves.medians[group] == sf.quantile(0.5)


def test_skill_grid_means_and_suppression(example):
    prog, _ = example
    grid = d.skill_gaps_by_role(prog, min_group_size=5).frame
    sa = prog.skill_assessments.merge(prog.learners[["learner_id", "role"]], on="learner_id")
    sel = sa[
        (sa["role"] == "Sales") & (sa["wave"] == "pre") & (sa["skill"] == grid["skill"].iloc[0])
    ]
    cell = grid[
        (grid["role"] == "Sales")
        & (grid["wave"] == "pre")
        & (grid["skill"] == grid["skill"].iloc[0])
    ]
    if len(sel):
        assert cell["gap"].iloc[0] == pytest.approx(
            (sel["target_level"] - sel["level"]).clip(lower=0).mean()
        )
    big = d.skill_gaps_by_role(prog, min_group_size=10**6)
    assert big.frame["gap"].isna().all() and big.hidden == len(big.frame)


def test_learner_contrast_is_an_association_with_interval(example):
    _, out = example
    c = d.learners_who_follow_through(out, treatment="coached", threshold=0.8, min_group_size=5)
    assert c.ci_low < c.difference < c.ci_high
    assert "association" in c.reading()
    assert set(c.frame["group"]) == {"followed through", "did not"}
    assert c.success_cases[["clear_success", "clear_non_success"]].sum(axis=1).le(1).all()


def test_gap_closure_bounds(example):
    _, out = example
    g = d.gap_closure(out, treatment="coached", min_group_size=5).frame.set_index("group")
    assert g.loc["coached", "mean_closure"] > g.loc["not coached", "mean_closure"]
    assert np.all(g["share_all_targets_met"].between(0, 1))
    hidden = d.gap_closure(out, treatment="coached", min_group_size=10**6).frame
    assert hidden["learners"].isna().all() and hidden["mean_closure"].isna().all()
    assert isinstance(hidden, pd.DataFrame)
