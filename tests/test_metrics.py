"""Learner-level outcomes computed by hand on tiny tables."""

from __future__ import annotations

import math

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
