"""Learner-level outcomes computed by hand on tiny tables."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from lcstats.data.load import Programme, SourceFile
from lcstats.outcomes.learner import analysis_sample, learner_outcomes


def _programme(learners, items, assessments, scale=(1, 5)) -> Programme:
    def dates(frame, cols):
        frame = frame.copy()
        for c in cols:
            frame[c] = pd.to_datetime(frame[c]).astype("datetime64[ns]")
        return frame

    sources = {
        t: SourceFile(t, f"{t}.csv", "0" * 64, n)
        for t, n in [
            ("learners", len(learners)),
            ("action_items", len(items)),
            ("skill_assessments", len(assessments)),
        ]
    }
    return Programme(
        learners=learners,
        action_items=dates(items, ["created_on", "due_on", "completed_on"]),
        skill_assessments=dates(assessments, ["assessed_on"]),
        sources=sources,
        scale=scale,
    )


@pytest.fixture
def tiny() -> Programme:
    learners = pd.DataFrame(
        {
            "learner_id": ["a", "b", "c"],
            "team_id": ["t1", "t1", "t2"],
            "manager_id": ["m1", "m1", "m2"],
            "cohort": ["q1", "q1", "q2"],
            "role": ["r", "r", "s"],
            "tenure_months": [10.0, 20.0, None],
            "coached": pd.array([1, 0, 1], dtype="Int64"),
            "coaching_sessions": [3.0, 0.0, 2.0],
        }
    )
    items = pd.DataFrame(
        {
            "learner_id": ["a", "a", "a", "a", "b", "b", "c"],
            "item_id": [f"i{i}" for i in range(7)],
            "created_on": ["2026-01-01"] * 7,
            "due_on": [
                "2026-02-01",
                "2026-02-01",
                "2026-03-01",
                "2026-09-01",
                "2026-02-01",
                "2026-02-01",
                "2026-12-01",
            ],
            # a: on time, late, never, (not yet due) -> 1/3 ; b: on time, done after as_of -> 1/2; c: nothing due
            "completed_on": [
                "2026-01-20",
                "2026-02-10",
                None,
                "2026-01-15",
                "2026-02-01",
                "2026-07-30",
                None,
            ],
        }
    )
    assessments = pd.DataFrame(
        {
            "learner_id": ["a", "a", "a", "a", "b", "b", "c"],
            "skill": ["x", "y", "x", "y", "x", "x", "x"],
            "wave": ["pre", "pre", "post", "post", "pre", "post", "pre"],
            "assessed_on": ["2026-01-01"] * 7,
            "level": [2.0, 5.0, 3.0, 4.0, 1.0, None, 2.0],
            "target_level": [4.0, 4.0, 4.0, 4.0, 3.0, 3.0, 3.0],
        }
    )
    return _programme(learners, items, assessments)


def test_follow_through_counts_items_due_by_as_of(tiny):
    out = learner_outcomes(tiny, as_of="2026-06-30").data.set_index("learner_id")
    assert out.loc["a", "n_items"] == 3
    assert out.loc["a", "follow_through"] == pytest.approx(1 / 3)
    # completed after the as-of date counts as not done by then
    assert out.loc["b", "follow_through"] == pytest.approx(1 / 2)
    assert math.isnan(out.loc["c", "follow_through"])
    assert out.loc["a", "median_days_to_complete"] == pytest.approx((19 + 40) / 2)


def test_skills_gap_is_mean_of_positive_shortfalls(tiny):
    out = learner_outcomes(tiny, as_of="2026-06-30").data.set_index("learner_id")
    assert out.loc["a", "skills_gap_pre"] == pytest.approx((2 + 0) / 2)  # 4-2, max(0, 4-5)
    assert out.loc["a", "skills_gap"] == pytest.approx((1 + 0) / 2)
    assert out.loc["b", "skills_gap_pre"] == pytest.approx(2)
    assert math.isnan(out.loc["b", "skills_gap"])  # post level missing
    assert math.isnan(out.loc["c", "skills_gap"])


def test_every_excluded_row_is_counted_with_its_reason(tiny):
    out = learner_outcomes(tiny, as_of="2026-06-30")
    items = out.quality["action_items"]
    assert items.rows_read == 7
    assert items.rows_used == 5
    assert items.excluded == {"created after the as-of date": 0, "not yet due on the as-of date": 2}
    assert items.rows_used + sum(items.excluded.values()) == items.rows_read
    sa = out.quality["skill_assessments"]
    assert sa.as_dict() == {
        "rows_read": 7,
        "rows_used": 6,
        "excluded": {"level missing (not assessed)": 1},
        "notes": {},
    }


def test_rows_left_out_while_reading_and_values_changed_are_in_the_quality(tiny):
    from dataclasses import replace

    reason = "learner not in the learners table"
    sources = dict(tiny.sources)
    sources["action_items"] = replace(
        sources["action_items"], rows_read=10, notes={"spaces trimmed after values": 4}
    )
    prog = replace(tiny, sources=sources, excluded={"action_items": {reason: 3}})
    items = learner_outcomes(prog, as_of="2026-06-30").quality["action_items"]
    assert items.rows_read == 10 and items.rows_used == 5
    assert items.excluded[reason] == 3
    assert items.rows_used + sum(items.excluded.values()) == items.rows_read
    assert items.as_dict()["notes"] == {"spaces trimmed after values": 4}


def test_analysis_sample_counts_each_learner_once(tiny):
    out = learner_outcomes(tiny, as_of="2026-06-30")
    sample = analysis_sample(
        out, outcome="follow_through", treatment="coached", covariates=["tenure_months"]
    )
    assert list(sample.data["learner_id"]) == ["a", "b"]
    # c has no items due AND no tenure: counted once, under the first reason
    assert sample.as_dict()["excluded"] == {"no action items due by the as-of date": 1}
    assert sample.excluded["covariate missing (tenure_months)"] == 0
    assert sample.as_dict()["learners_used"] + sum(sample.excluded.values()) == sample.n_available


def test_example_programme_outcomes_are_in_range():
    from lcstats.data.load import load_programme
    from tests.conftest import EXAMPLE

    prog = load_programme(
        EXAMPLE / "learners.csv", EXAMPLE / "action_items.csv", EXAMPLE / "skill_assessments.csv"
    )
    data = learner_outcomes(prog, as_of="2026-06-30").data
    assert data["follow_through"].dropna().between(0, 1).all()
    assert (data["skills_gap"].dropna() >= 0).all()
    assert data["skills_gap"].dropna().le(4).all()
    assert len(data) == prog.sources["learners"].rows_read


def _outcomes_by_id(programme: Programme, as_of: str) -> pd.DataFrame:
    """The learner outcomes as first written: rows grouped by learner id and joined."""
    cutoff = pd.Timestamp(as_of)
    items = programme.action_items
    used = items[(items["created_on"] <= cutoff) & (items["due_on"] <= cutoff)]
    done = used["completed_on"].notna() & (used["completed_on"] <= cutoff)
    per = (
        pd.DataFrame(
            {
                "learner_id": used["learner_id"],
                "n_items": 1,
                "n_on_time": (done & (used["completed_on"] <= used["due_on"])).astype(int),
                "n_done": done.astype(int),
                "days": (used["completed_on"] - used["created_on"]).dt.days.where(done),
            }
        )
        .groupby("learner_id")
        .agg(
            n_items=("n_items", "sum"),
            n_on_time=("n_on_time", "sum"),
            n_done=("n_done", "sum"),
            median_days_to_complete=("days", "median"),
        )
    )
    sa = programme.skill_assessments
    sa = sa[sa["wave"].isin(["pre", "post"]) & sa["level"].notna()]
    gaps = (
        sa.assign(gap=(sa["target_level"] - sa["level"]).clip(lower=0))
        .groupby(["learner_id", "wave"])["gap"]
        .agg(["mean", "size"])
        .unstack("wave")
    )
    out = programme.learners.set_index("learner_id", drop=False).join(per, how="left")
    for c in ("n_items", "n_on_time", "n_done"):
        out[c] = out[c].fillna(0).astype(int)
    out["follow_through"] = out["n_on_time"] / out["n_items"].where(out["n_items"] > 0)
    out["skills_gap_pre"] = gaps[("mean", "pre")].reindex(out.index)
    out["skills_gap"] = gaps[("mean", "post")].reindex(out.index)
    out["n_skills_post"] = gaps[("size", "post")].reindex(out.index).fillna(0).astype(int)
    return out.reset_index(drop=True)


def test_outcomes_grouped_by_position_equal_those_grouped_by_id():
    """Rows are grouped by their learner's position: the same frame as grouping by id and
    joining, with learners in any order and index, some with no rows, rows of unknown learners
    left out, and every kind of excluded row."""
    rng = np.random.default_rng(7)
    n = 300
    ids = np.array([f"L{i:04d}" for i in range(n)])
    learners = pd.DataFrame({"learner_id": ids, "team_id": "t", "coached": 1}).sample(
        frac=1, random_state=1
    )
    learners.index = rng.permutation(np.arange(1000, 1000 + n))  # neither sorted nor 0..n-1
    with_rows = np.r_[ids[: n - 20], ["STRANGER"]]  # 20 learners have no rows
    day = pd.Timestamp("2026-01-01")
    k = 3000
    created = day + pd.to_timedelta(rng.integers(0, 200, k), "D")
    due = created + pd.to_timedelta(rng.integers(0, 120, k), "D")
    completed = pd.Series(created + pd.to_timedelta(rng.integers(0, 150, k), "D"))
    completed[rng.random(k) < 0.3] = pd.NaT
    items = pd.DataFrame(
        {
            "learner_id": rng.choice(with_rows, k),
            "item_id": [f"i{i}" for i in range(k)],
            "created_on": created,
            "due_on": due,
            "completed_on": completed,
        }
    )
    level = rng.integers(1, 6, k).astype(float)
    level[rng.random(k) < 0.1] = np.nan
    assessments = pd.DataFrame(
        {
            "learner_id": rng.choice(with_rows, k),
            "skill": rng.choice(["x", "y", "z"], k),
            "wave": rng.choice(["pre", "post", "mid"], k, p=[0.45, 0.45, 0.1]),
            "assessed_on": day,
            "level": level,
            "target_level": rng.integers(1, 6, k).astype(float),
        }
    )
    programme = _programme(learners, items, assessments)
    found = learner_outcomes(programme, as_of="2026-06-30").data
    pd.testing.assert_frame_equal(found, _outcomes_by_id(programme, "2026-06-30"))
    assert (found["n_items"] == 0).sum() >= 20 and found["skills_gap"].isna().sum() >= 20
