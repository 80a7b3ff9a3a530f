"""Tests of the synthetic programme generator (`lcstats.data.simulate`)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lcstats.data.simulate import SimulatedProgramme, simulate_programme, write_programme

AS_OF = pd.Timestamp("2026-06-30")
LEARNER_COLUMNS = [
    "learner_id",
    "team_id",
    "manager_id",
    "cohort",
    "role",
    "tenure_months",
    "engagement",
    "coached",
    "coaching_sessions",
    "manager_coached",
]
ITEM_COLUMNS = ["learner_id", "item_id", "created_on", "due_on", "completed_on"]
SKILL_COLUMNS = ["learner_id", "skill", "wave", "assessed_on", "level", "target_level"]
EFFECT_KEYS = [
    ("follow_through", "coached", "ATE"),
    ("follow_through", "coached", "ATT"),
    ("skills_gap", "coached", "ATE"),
    ("skills_gap", "coached", "ATT"),
    ("follow_through", "manager_coached", "ATE"),
    ("skills_gap", "manager_coached", "ATE"),
]


@pytest.fixture(scope="module")
def programme() -> SimulatedProgramme:
    return simulate_programme()


@pytest.fixture(scope="module")
def unconfounded() -> SimulatedProgramme:
    return simulate_programme(n_learners=5000, confounding=0.0, seed=7)


def truth_value(truth: dict, outcome: str, treatment: str, estimand: str) -> float:
    (value,) = [
        row["value"]
        for row in truth["effects"]
        if (row["outcome"], row["treatment"], row["estimand"]) == (outcome, treatment, estimand)
    ]
    return value


def outcomes_from_csv(folder: Path) -> pd.DataFrame:
    """Learner follow-through and post skills gap recomputed with plain pandas from the CSVs."""
    learners = pd.read_csv(folder / "learners.csv", dtype={"learner_id": str})
    items = pd.read_csv(folder / "action_items.csv", parse_dates=["due_on", "completed_on"])
    skills = pd.read_csv(folder / "skill_assessments.csv")
    items["on_time"] = items["completed_on"].notna() & (items["completed_on"] <= items["due_on"])
    follow = items.groupby("learner_id")["on_time"].mean().rename("follow_through")
    post = skills[skills["wave"] == "post"].copy()
    post["gap"] = (post["target_level"] - post["level"]).clip(lower=0)
    gap = post.groupby("learner_id")["gap"].mean().rename("skills_gap")
    return learners.set_index("learner_id").join(follow).join(gap)


def naive(outcomes: pd.DataFrame, column: str) -> float:
    means = outcomes.groupby("coached")[column].mean()
    return means[1] - means[0]


# --- determinism -----------------------------------------------------------------------------


def test_same_seed_gives_identical_frames_and_truth(programme):
    again = simulate_programme()
    pd.testing.assert_frame_equal(programme.learners, again.learners)
    pd.testing.assert_frame_equal(programme.action_items, again.action_items)
    pd.testing.assert_frame_equal(programme.skill_assessments, again.skill_assessments)
    assert programme.truth == again.truth


def test_other_seed_gives_other_data(programme):
    other = simulate_programme(seed=1)
    assert not programme.learners["coached"].equals(other.learners["coached"])


def test_truth_draws_do_not_change_the_data(programme):
    fewer = simulate_programme(truth_draws=20)
    pd.testing.assert_frame_equal(programme.skill_assessments, fewer.skill_assessments)
    pd.testing.assert_frame_equal(programme.action_items, fewer.action_items)
    ate = truth_value(programme.truth, "skills_gap", "coached", "ATE")
    assert truth_value(fewer.truth, "skills_gap", "coached", "ATE") == pytest.approx(ate, abs=0.02)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_writing_twice_gives_identical_bytes(programme, tmp_path, fmt):
    first = write_programme(programme, tmp_path / "a", fmt=fmt)
    second = write_programme(simulate_programme(), tmp_path / "b", fmt=fmt)
    assert sorted(first) == ["action_items", "learners", "skill_assessments", "truth"]
    for name, path in first.items():
        assert path.name == ("truth.json" if name == "truth" else f"{name}.{fmt}")
        assert path.read_bytes() == second[name].read_bytes(), name


def test_csv_format(programme, tmp_path):
    paths = write_programme(programme, tmp_path)
    items_text = paths["action_items"].read_text(encoding="utf-8").splitlines()
    assert items_text[0] == ",".join(ITEM_COLUMNS)
    created, due, completed = items_text[1].split(",")[2:]
    assert len(created) == len(due) == 10 and created[4] == "-" and created[7] == "-"
    raw = pd.read_csv(paths["action_items"], dtype=str, keep_default_na=False)
    assert set(raw["completed_on"].str.len()) == {0, 10}  # empty when not done
    learners = pd.read_csv(paths["learners"], dtype=str)
    assert list(learners.columns) == LEARNER_COLUMNS
    assert learners["learner_id"].str.fullmatch(r"L\d{5}").all()
    assert learners["team_id"].str.fullmatch(r"T\d{3}").all()
    assert learners["manager_id"].str.fullmatch(r"M\d{3}").all()
    assert pd.read_csv(paths["action_items"])["item_id"].str.fullmatch(r"A\d{6}").all()


def test_parquet_round_trip(programme, tmp_path):
    paths = write_programme(programme, tmp_path, fmt="parquet")
    back = pd.read_parquet(paths["action_items"])
    pd.testing.assert_frame_equal(
        back, programme.action_items, check_dtype=False, check_index_type=False
    )


def test_truth_json_matches_truth(programme, tmp_path):
    path = write_programme(programme, tmp_path)["truth"]
    text = path.read_text(encoding="utf-8")
    assert json.loads(text) == programme.truth
    assert text == json.dumps(programme.truth, sort_keys=True, indent=2) + "\n"


# --- schema --------------------------------------------------------------------------------------


def test_columns_and_dtypes(programme):
    learners, items, skills = (
        programme.learners,
        programme.action_items,
        programme.skill_assessments,
    )
    assert list(learners.columns) == LEARNER_COLUMNS
    assert list(items.columns) == ITEM_COLUMNS
    assert list(skills.columns) == SKILL_COLUMNS
    for col in ["tenure_months", "coached", "coaching_sessions", "manager_coached"]:
        assert pd.api.types.is_integer_dtype(learners[col]), col
    assert pd.api.types.is_float_dtype(learners["engagement"])
    for col in ["created_on", "due_on", "completed_on"]:
        assert pd.api.types.is_datetime64_any_dtype(items[col]), col
    assert pd.api.types.is_datetime64_any_dtype(skills["assessed_on"])
    assert pd.api.types.is_integer_dtype(skills["level"])
    assert pd.api.types.is_integer_dtype(skills["target_level"])
    assert len(learners) == 2000


def test_learner_values(programme):
    learners = programme.learners
    assert learners["learner_id"].is_unique
    assert set(learners["coached"]) == {0, 1}
    assert set(learners["manager_coached"]) == {0, 1}
    assert (learners["tenure_months"] >= 0).all()
    assert learners["engagement"].between(1, 5).all()
    assert np.allclose(learners["engagement"], learners["engagement"].round(1))
    assert sorted(learners["cohort"].unique()) == ["2025-Q3", "2025-Q4", "2026-Q1", "2026-Q2"]
    assert learners["role"].nunique() == 5


def test_sessions_zero_iff_not_coached(programme):
    learners = programme.learners
    coached = learners["coached"] == 1
    assert (learners.loc[~coached, "coaching_sessions"] == 0).all()
    assert learners.loc[coached, "coaching_sessions"].between(1, 12).all()


def test_one_manager_per_team_and_manager_coaching_constant(programme):
    learners = programme.learners
    assert (learners.groupby("team_id")["manager_id"].nunique() == 1).all()
    assert (learners.groupby("manager_id")["team_id"].nunique() == 1).all()
    assert (learners.groupby("manager_id")["manager_coached"].nunique() == 1).all()
    share = learners.groupby("manager_id")["manager_coached"].first().mean()
    assert 0.25 <= share <= 0.45
    assert 7 <= learners.groupby("team_id").size().mean() <= 13


def test_action_items(programme):
    items = programme.action_items
    learners = programme.learners
    assert items["item_id"].is_unique
    assert set(items["learner_id"]) <= set(learners["learner_id"])
    counts = items.groupby("learner_id").size().reindex(learners["learner_id"], fill_value=0)
    assert set(counts) <= {0, *range(2, 9)}
    assert 0.005 <= (counts == 0).mean() <= 0.04
    assert (items["created_on"] <= items["due_on"]).all()
    assert (items["due_on"] <= AS_OF).all()
    days = (items["due_on"] - items["created_on"]).dt.days
    assert days.between(30, 90).all()
    done = items["completed_on"].notna()
    assert (items.loc[done, "completed_on"] >= items.loc[done, "created_on"]).all()
    assert (items.loc[done, "completed_on"] <= AS_OF).all()
    late_done = done & (items["completed_on"] > items["due_on"])
    assert late_done.any() and (~done).any()
    # created within the learner's cohort quarter
    cohort = items["learner_id"].map(learners.set_index("learner_id")["cohort"])
    quarter = pd.PeriodIndex(cohort.str.replace("-", ""), freq="Q")
    assert (items["created_on"].dt.to_period("Q") == quarter).all()


def test_skill_assessments(programme):
    skills = programme.skill_assessments
    learners = programme.learners
    assert not skills.duplicated(["learner_id", "skill", "wave"]).any()
    assert set(skills["wave"]) == {"pre", "post"}
    assert skills["level"].between(1, 5).all() and skills["target_level"].between(1, 5).all()
    assert skills["target_level"].isin([3, 4, 5]).mean() > 0.9
    pre = skills[skills["wave"] == "pre"]
    post = skills[skills["wave"] == "post"]
    assert set(pre["learner_id"]) == set(learners["learner_id"])
    assert pre.groupby("learner_id").size().between(3, 4).all()
    missing_post = 1 - post["learner_id"].nunique() / len(learners)
    assert 0.02 <= missing_post <= 0.09
    # post covers the same skills as pre, with the same targets, and comes later
    merged = pre.merge(post, on=["learner_id", "skill"], suffixes=("_pre", "_post"))
    assert len(merged) == len(post)
    assert (merged["target_level_pre"] == merged["target_level_post"]).all()
    assert (merged["assessed_on_post"] > merged["assessed_on_pre"]).all()
    assert (skills["assessed_on"] <= AS_OF).all()
    # a skill's target depends on role and skill only
    roles = skills["learner_id"].map(learners.set_index("learner_id")["role"])
    assert (skills.groupby([roles, skills["skill"]])["target_level"].nunique() == 1).all()


def test_other_scale_and_as_of():
    prog = simulate_programme(n_learners=300, scale=(0, 10), as_of="2026-02-15", seed=5)
    skills, items = prog.skill_assessments, prog.action_items
    assert skills["level"].between(0, 10).all() and skills["target_level"].between(0, 10).all()
    assert skills["level"].nunique() > 5
    assert (items["due_on"] <= pd.Timestamp("2026-02-15")).all()
    assert sorted(prog.learners["cohort"].unique())[-1] == "2025-Q4"


def test_small_programme_works():
    prog = simulate_programme(n_learners=50, team_size=100, seed=3)
    assert len(prog.learners) == 50
    assert prog.learners["team_id"].nunique() == 1


# --- statistical properties --------------------------------------------------------------------


def test_default_magnitudes(programme):
    learners = programme.learners
    assert 0.30 <= learners["coached"].mean() <= 0.50
    by_cohort = learners.groupby("cohort")["coached"].mean()
    assert by_cohort["2026-Q2"] > by_cohort["2025-Q3"] + 0.1  # roll-out waves
    truth = programme.truth
    assert 0.08 <= truth_value(truth, "follow_through", "coached", "ATE") <= 0.14
    assert 0.08 <= truth_value(truth, "follow_through", "coached", "ATT") <= 0.14
    assert -0.35 <= truth_value(truth, "skills_gap", "coached", "ATE") <= -0.15
    assert -0.35 <= truth_value(truth, "skills_gap", "coached", "ATT") <= -0.15
    assert 0 < truth_value(truth, "follow_through", "manager_coached", "ATE") < 0.08
    assert -0.2 < truth_value(truth, "skills_gap", "manager_coached", "ATE") < 0


def test_naive_difference_recomputed_from_tables(programme, tmp_path):
    write_programme(programme, tmp_path)
    outcomes = outcomes_from_csv(tmp_path)
    uncoached_ft = outcomes.loc[outcomes["coached"] == 0, "follow_through"].mean()
    assert 0.40 <= uncoached_ft <= 0.50
    stored = programme.truth["naive_difference"]
    assert stored["follow_through"] == pytest.approx(naive(outcomes, "follow_through"), abs=1e-6)
    assert stored["skills_gap"] == pytest.approx(naive(outcomes, "skills_gap"), abs=1e-6)
    assert outcomes["skills_gap"].notna().mean() < 1  # attrition leaves gaps undefined


def test_naive_difference_is_biased_with_default_confounding(programme):
    truth = programme.truth
    att = truth_value(truth, "follow_through", "coached", "ATT")
    assert truth["naive_difference"]["follow_through"] - att >= 0.03
    gap_att = truth_value(truth, "skills_gap", "coached", "ATT")
    assert truth["naive_difference"]["skills_gap"] < gap_att  # overstates the gap closing


@pytest.mark.parametrize(("outcome", "tolerance"), [("follow_through", 0.03), ("skills_gap", 0.06)])
def test_naive_difference_near_truth_without_confounding(unconfounded, outcome, tolerance):
    # Sampling sd of the naive difference at n=5000 is about 0.008 (follow-through) and 0.02
    # (skills gap) across seeds, so these tolerances are about 3 sd.
    truth = unconfounded.truth
    naive_diff = truth["naive_difference"][outcome]
    for estimand in ("ATT", "ATE"):
        value = truth_value(truth, outcome, "coached", estimand)
        assert naive_diff == pytest.approx(value, abs=tolerance)


def test_follow_through_matches_its_expectation_without_confounding(unconfounded):
    # Coaching at random: the coached/uncoached means of observed follow-through must sit near the
    # true ATE, and manager coaching (randomised by manager) likewise.
    learners = unconfounded.learners
    items = unconfounded.action_items.assign(
        on_time=lambda d: d["completed_on"].notna() & (d["completed_on"] <= d["due_on"])
    )
    follow = items.groupby("learner_id")["on_time"].mean()
    frame = learners.set_index("learner_id").join(follow.rename("ft")).dropna(subset=["ft"])
    by_manager = frame.groupby("manager_coached")["ft"].mean()
    truth = truth_value(unconfounded.truth, "follow_through", "manager_coached", "ATE")
    assert by_manager[1] - by_manager[0] == pytest.approx(truth, abs=0.04)


def test_zero_effects_give_zero_truth():
    prog = simulate_programme(
        n_learners=300,
        effect_follow_through_logit=0.0,
        effect_skills=0.0,
        effect_manager_logit=0.0,
        effect_manager_skills=0.0,
        truth_draws=20,
    )
    assert all(row["value"] == 0 for row in prog.truth["effects"])


def test_larger_effect_gives_larger_truth():
    small = simulate_programme(n_learners=300, effect_skills=0.1, truth_draws=50)
    large = simulate_programme(n_learners=300, effect_skills=0.6, truth_draws=50)
    assert truth_value(large.truth, "skills_gap", "coached", "ATE") < truth_value(
        small.truth, "skills_gap", "coached", "ATE"
    )


def test_truth_structure(programme):
    truth = programme.truth
    assert set(truth) == {"seed", "n_learners", "parameters", "effects", "naive_difference"}
    assert truth["seed"] == 20261128 and truth["n_learners"] == 2000
    assert truth["parameters"]["scale"] == [1, 5]
    assert truth["parameters"]["as_of"] == "2026-06-30"
    assert [(r["outcome"], r["treatment"], r["estimand"]) for r in truth["effects"]] == EFFECT_KEYS
    for row in truth["effects"]:
        assert row["value"] == round(row["value"], 6)
    json.dumps(truth, allow_nan=False)
    assert programme.effect("skills_gap", "coached", "ATT") == truth_value(
        truth, "skills_gap", "coached", "ATT"
    )


# --- argument validation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_learners": 49}, "n_learners"),
        ({"n_learners": 100.0}, "n_learners"),
        ({"confounding": -0.1}, "confounding"),
        ({"icc": 1.0}, "icc"),
        ({"icc": -0.01}, "icc"),
        ({"scale": (5, 1)}, "scale"),
        ({"scale": (3, 3)}, "scale"),
        ({"team_size": 0.5}, "team_size"),
        ({"as_of": "30/06/2026"}, "as_of"),
        ({"truth_draws": 0}, "truth_draws"),
        ({"seed": -1}, "seed"),
        ({"effect_skills": float("nan")}, "effect_skills"),
    ],
)
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        simulate_programme(**kwargs)


def test_invalid_format(programme, tmp_path):
    with pytest.raises(ValueError, match="fmt"):
        write_programme(programme, tmp_path, fmt="xlsx")
    assert not any(tmp_path.iterdir())
