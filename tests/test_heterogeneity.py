"""Dose-response, subgroup effects and manager coaching, checked against the simulator's truth.

One simulated programme (8,000 learners, 800 teams) goes through the real pipeline
(write_programme -> load_programme -> learner_outcomes). Its learner-coaching effect on the
log-odds of follow-through is 1.5 (the default is 0.53) so that the dose gradient is resolvable:
only about 1% of learners have 1-2 sessions, and at the default effect the expected gap between
1-2 and 6+ sessions is under one standard error at this size. The dose factor of the simulator is
``0.6 + 0.8 min(sessions, 8) / 8``, so the true band effects rise from 1-2 to 6+ sessions.
"""

from __future__ import annotations

import math
import re

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from scipy import stats
from statsmodels.stats.multitest import multipletests

from lcstats.data.load import load_programme
from lcstats.data.simulate import simulate_programme, write_programme
from lcstats.estimation.heterogeneity import dose_response, manager_effects, subgroup_effects
from lcstats.outcomes.learner import learner_outcomes
from lcstats.reporting.plots import dose_response_plot, subgroup_plot

# The simulator's treatment model uses log tenure, so the analyst's covariate is log tenure too
# (raw months give propensity scores of 0 for the rare 1-2 session band).
COVARIATES = ("engagement", "log_tenure", "cohort", "role")
SUBGROUP_COLUMNS = [
    "outcome",
    "treatment",
    "subgroup_variable",
    "subgroup_level",
    "estimate",
    "std_error",
    "ci_low",
    "ci_high",
    "p_value",
    "p_adjusted",
    "n_treated",
    "n_control",
    "note",
]


@pytest.fixture(scope="module")
def programme(tmp_path_factory):
    return simulate_programme(
        n_learners=8000, seed=20261128, effect_follow_through_logit=1.5, truth_draws=50
    )


@pytest.fixture(scope="module")
def learners(programme, tmp_path_factory) -> pd.DataFrame:
    folder = tmp_path_factory.mktemp("heterogeneity")
    paths = write_programme(programme, folder)
    prog = load_programme(paths["learners"], paths["action_items"], paths["skill_assessments"])
    data = learner_outcomes(prog, as_of="2026-06-30").data
    return data.assign(log_tenure=np.log1p(data["tenure_months"]))


@pytest.fixture(scope="module")
def dose(learners):
    return dose_response(
        learners, outcome="follow_through", covariates=COVARIATES, cluster="team_id"
    )


@pytest.fixture(scope="module")
def subgroups(learners):
    return subgroup_effects(
        learners, outcome="follow_through", covariates=COVARIATES, cluster="team_id"
    )


# ----------------------------------------------------------------------------------------------
# Dose-response


def test_dose_response_rises_with_sessions(dose):
    frame = dose.to_frame().set_index("band")
    assert list(frame.index) == ["0", "1-2", "3-5", "6+"]
    assert frame.loc["6+", "estimate"] > frame.loc["1-2", "estimate"]
    assert frame.loc["6+", "estimate"] > frame.loc["3-5", "estimate"]
    assert (frame.loc[["1-2", "3-5", "6+"], "ci_low"] > 0).all()
    # each band is compared with the same uncoached learners
    assert (frame.loc[["1-2", "3-5", "6+"], "n_control"] == frame.loc["0", "n_learners"]).all()
    assert (
        frame.loc[["1-2", "3-5", "6+"], "n_treated"]
        == frame.loc[["1-2", "3-5", "6+"], "n_learners"]
    ).all()
    assert math.isnan(frame.loc["0", "estimate"])
    assert "reference" in frame.loc["0", "note"]
    assert dose.reading().startswith("Learners with 6+ coaching sessions gained most")
    assert "higher" in dose.reading()


def test_dose_response_frame_columns_and_means(dose, learners):
    frame = dose.to_frame()
    assert list(frame.columns) == [
        "outcome",
        "treatment",
        "band",
        "sessions_min",
        "sessions_max",
        "n_learners",
        "mean_outcome",
        "estimate",
        "std_error",
        "ci_low",
        "ci_high",
        "p_value",
        "n_treated",
        "n_control",
        "note",
    ]
    assert frame["sessions_max"].iloc[-1] == math.inf
    have = learners.dropna(subset=["follow_through"])
    six_plus = have.loc[have["coaching_sessions"] >= 6, "follow_through"]
    assert frame["mean_outcome"].iloc[-1] == pytest.approx(six_plus.mean())
    assert frame["n_learners"].iloc[-1] == len(six_plus)
    assert dose.excluded == {
        "no action items due by the as-of date": learners["follow_through"].isna().sum()
    }


def test_dose_response_small_and_empty_bands_are_reported(learners):
    dose = dose_response(
        learners,
        outcome="follow_through",
        covariates=COVARIATES,
        bands=((0, 0), (1, 2), (3, 12), (13, None)),
        min_group_size=200,
    )
    frame = dose.to_frame().set_index("band")
    assert list(frame.index) == ["0", "1-2", "3-12", "13+"]  # nothing dropped
    for band in ("1-2", "13+"):
        assert math.isnan(frame.loc[band, "estimate"])
        assert "fewer than 200 learners" in frame.loc[band, "note"]
        assert math.isnan(frame.loc[band, "mean_outcome"])  # small cells are hidden
    assert frame.loc["13+", "n_learners"] == 0
    assert frame.loc["3-12", "estimate"] > 0
    assert "Not estimated" in dose.reading() and "1-2, 13+" in dose.reading()


@pytest.mark.parametrize(
    "bands",
    [
        ((1, 2), (3, None)),  # no reference band
        ((0, 0), (3, 5), (1, 2)),  # not increasing
        ((0, 0), (1, 3), (3, 5)),  # overlapping
        ((0, 0), (1, None), (5, 8)),  # open-ended band not last
        ((0, 0), (2, 1)),  # high below low
        ((0, 0), (1.5, 3)),  # not whole numbers
    ],
)
def test_dose_response_rejects_bad_bands(learners, bands):
    with pytest.raises(ValueError, match="band"):
        dose_response(learners, outcome="follow_through", bands=bands)


def test_dose_response_rejects_bad_options(learners):
    with pytest.raises(ValueError, match="method"):
        dose_response(learners, outcome="follow_through", method="magic")
    with pytest.raises(ValueError, match="not in data"):
        dose_response(learners, outcome="follow_through", sessions="visits")
    with pytest.raises(ValueError, match="min_group_size"):
        dose_response(learners, outcome="follow_through", min_group_size=0)


# ----------------------------------------------------------------------------------------------
# Subgroup effects


def test_subgroup_frame_and_holm_matches_statsmodels(subgroups):
    frame = subgroups.to_frame()
    assert list(frame.columns) == SUBGROUP_COLUMNS
    assert list(dict.fromkeys(frame["subgroup_variable"])) == ["role", "cohort", "manager_coached"]
    assert len(frame) == 5 + 4 + 2
    assert (frame["p_adjusted"] >= frame["p_value"]).all()
    expected = multipletests(frame["p_value"].to_numpy(), alpha=0.05, method="holm")[1]
    np.testing.assert_allclose(frame["p_adjusted"].to_numpy(), expected, rtol=1e-12)
    assert set(subgroups.heterogeneity_frame().columns) >= {
        "subgroup_variable",
        "statistic",
        "df",
        "p_value",
    }


def test_subgroup_other_corrections_and_validation(learners):
    sub = subgroup_effects(
        learners,
        outcome="follow_through",
        by=("role",),
        covariates=COVARIATES,
        method="regression",
        correction="fdr_bh",
    )
    frame = sub.to_frame()
    expected = multipletests(frame["p_value"].to_numpy(), method="fdr_bh")[1]
    np.testing.assert_allclose(frame["p_adjusted"].to_numpy(), expected, rtol=1e-12)
    assert "Benjamini-Hochberg" in sub.reading()
    with pytest.raises(ValueError, match="correction='tukey' is not allowed; choose one of holm"):
        subgroup_effects(learners, outcome="follow_through", correction="tukey")
    with pytest.raises(ValueError, match="estimand"):
        subgroup_effects(learners, outcome="follow_through", estimand="ATC")
    with pytest.raises(ValueError, match="subgrouping"):
        subgroup_effects(learners, outcome="follow_through", by=("coached",))
    with pytest.raises(ValueError, match="levels"):
        subgroup_effects(learners, outcome="follow_through", by=("learner_id",))


def test_no_heterogeneity_by_role_is_not_flagged(subgroups):
    role = subgroups.test("role")
    assert role.df == 4 and role.n_levels == 5
    assert role.p_value > 0.01
    # Cochran's Q recomputed from the frame
    rows = subgroups.to_frame().query("subgroup_variable == 'role'")
    w = 1 / rows["std_error"] ** 2
    b_bar = np.sum(w * rows["estimate"]) / np.sum(w)
    q = float(np.sum(w * (rows["estimate"] - b_bar) ** 2))
    assert role.statistic == pytest.approx(q)
    assert role.p_value == pytest.approx(stats.chi2.sf(q, 4))
    assert "did not differ clearly between roles" in subgroups.reading()
    assert "teams" in role.note or "team_id" in role.note  # learners of a team span roles


def test_subgroup_within_variable_is_dropped_from_covariates(subgroups):
    for e in subgroups.effects:
        assert e.effect is not None
        assert e.variable not in e.effect.covariates
        assert set(e.effect.covariates) == set(COVARIATES) - {e.variable}


def test_small_subgroup_levels_are_reported_with_reason(learners):
    leads = learners.index[learners["role"] == "Team Lead"]
    small = learners.drop(leads[3:])  # 3 team leads left
    sub = subgroup_effects(small, outcome="follow_through", by=("role",), covariates=COVARIATES)
    frame = sub.to_frame().set_index("subgroup_level")
    assert "Team Lead" in frame.index
    row = frame.loc["Team Lead"]
    assert math.isnan(row["estimate"]) and math.isnan(row["p_adjusted"])
    assert row["note"].startswith("not estimated: fewer than 5 learners")
    assert row["n_treated"] + row["n_control"] == 3
    # only the estimated levels are corrected and tested
    estimated = frame.dropna(subset=["estimate"])
    expected = multipletests(estimated["p_value"].to_numpy(), method="holm")[1]
    np.testing.assert_allclose(estimated["p_adjusted"].to_numpy(), expected)
    assert sub.test("role").n_levels == 4
    assert (
        "Not estimated (too few learners or no comparison within the subgroup): role Team Lead"
        in sub.reading()
    )


def test_untestable_variable_is_reported(learners):
    frame = learners.assign(site=np.where(np.arange(len(learners)) < 4, "Remote", "Office"))
    sub = subgroup_effects(frame, outcome="follow_through", by=("site",), method="difference")
    test = sub.test("site")
    assert math.isnan(test.p_value) and "only 1 level" in test.note
    assert "could not be tested" in sub.reading()


# ----------------------------------------------------------------------------------------------
# Manager coaching


@pytest.mark.parametrize("outcome", ["follow_through", "skills_gap"])
def test_manager_effect_covers_truth(learners, programme, outcome):
    res = manager_effects(learners, outcome=outcome, covariates=COVARIATES)
    truth = programme.effect(outcome, "manager_coached")
    m = res.manager
    assert m.treatment == "manager_coached" and m.cluster == "manager_id"
    assert m.n_clusters == learners["manager_id"].nunique()
    assert "coached" not in m.covariates
    assert abs(m.estimate - truth) < 3 * m.std_error
    verb = "raised follow-through" if outcome == "follow_through" else "narrowed the skills gap"
    assert res.reading().startswith(f"Coaching the line manager {verb}")


def test_manager_interaction_and_option(learners, programme):
    res = manager_effects(learners, outcome="follow_through", covariates=COVARIATES)
    frame = res.to_frame()
    assert list(frame.columns) == [c for c in SUBGROUP_COLUMNS if c != "p_adjusted"]
    assert frame["subgroup_level"].tolist() == ["all learners", "1", "0", "difference (1 - 0)"]
    e1, e0 = res.within[0].effect, res.within[1].effect
    assert res.difference == pytest.approx(e1.estimate - e0.estimate)
    assert res.std_error == pytest.approx(math.hypot(e1.std_error, e0.std_error))
    assert res.p_value == pytest.approx(2 * stats.norm.sf(abs(res.difference) / res.std_error))
    assert res.ci_low < res.difference < res.ci_high
    adjusted = manager_effects(
        learners, outcome="follow_through", covariates=COVARIATES, adjust_for_learner_coaching=True
    )
    assert "coached" in adjusted.manager.covariates
    truth = programme.effect("follow_through", "manager_coached")
    assert abs(adjusted.manager.estimate - truth) < 3 * adjusted.manager.std_error
    assert "adjusted for learner coaching" in adjusted.to_frame()["note"].iloc[0]
    with pytest.raises(ValueError, match="adjust_for_learner_coaching"):
        manager_effects(learners, outcome="follow_through", covariates=("coached",))


# ----------------------------------------------------------------------------------------------
# Readings in every direction (small synthetic data, unadjusted differences: fast and exact)


def _synthetic(effect_by_sessions, n=2400, seed=1, noise=0.05):
    rng = np.random.default_rng(seed)
    s = rng.choice([0, 0, 0, 1, 2, 4, 7], size=n)
    mgr = rng.integers(0, 120, size=n)
    m = (mgr % 3 == 0).astype(int)
    y = 0.45 + np.vectorize(effect_by_sessions)(s) + rng.normal(0, noise, n)
    return pd.DataFrame(
        {
            "follow_through": y,
            "coaching_sessions": s,
            "coached": (s > 0).astype(int),
            "manager_coached": m,
            "manager_id": mgr,
            "role": rng.choice(["A", "B", "C"], size=n),
        }
    )


def test_dose_readings_positive_negative_null():
    up = dose_response(
        _synthetic(lambda s: 0.02 * s), outcome="follow_through", method="difference"
    )
    assert up.reading().startswith("Learners with 6+ coaching sessions gained most")
    assert "percentage points higher" in up.reading()
    down = dose_response(
        _synthetic(lambda s: -0.02 * s), outcome="follow_through", method="difference"
    )
    assert down.reading().startswith("No band of coaching sessions showed a clear benefit")
    assert "6+ sessions did worse" in down.reading() and "lower" in down.reading()
    null = dose_response(_synthetic(lambda s: 0.0), outcome="follow_through", method="difference")
    gap = _synthetic(lambda s: -0.1 * min(s, 5)).rename(columns={"follow_through": "skills_gap"})
    gap["skills_gap_pre"] = 1.0  # the skills gap is always adjusted for its baseline
    closed = dose_response(gap, outcome="skills_gap", method="difference")
    assert closed.reading().startswith(
        "Learners with 6+ coaching sessions gained most: their skills gap was 0.50 points smaller"
    )
    assert "lies within this interval" not in closed.reading()
    same = _synthetic(lambda s: 0.1 * min(s, 4))  # 3-5 and 6+ sessions have equal effects
    tied = dose_response(same, outcome="follow_through", method="difference").reading()
    assert re.search(r"The estimate for (3-5|6\+) sessions lies within this interval", tied)
    assert null.reading().startswith("No number of coaching sessions showed a clear effect")


def test_subgroup_readings_flag_real_heterogeneity():
    df = _synthetic(lambda s: 0.0)
    df["follow_through"] += np.where(df["role"] == "A", 0.3, 0.0) * df["coached"]
    sub = subgroup_effects(df, outcome="follow_through", by=("role",), method="difference")
    assert sub.test("role").p_value < 0.001
    assert "The effect of coaching on follow-through differed between roles (p < 0.001)" in (
        sub.reading()
    )
    assert re.search(r"to \+(29|30)\.\d percentage points \(A\)", sub.reading())
    assert "1 subgroup showed a clear effect: role A" in sub.reading()


def test_manager_readings_follow_the_sign():
    for sign, verb in ((1, "raised"), (-1, "lowered")):
        df = _synthetic(lambda s: 0.0)
        df["follow_through"] += sign * 0.05 * df["manager_coached"]
        res = manager_effects(df, outcome="follow_through", method="difference")
        assert res.reading().startswith(f"Coaching the line manager {verb} follow-through")
        assert "could be chance" in res.reading()


def test_displays_escape_data_and_return_text():
    df = _synthetic(lambda s: 0.01 * s)
    df["role"] = np.where(df["role"] == "A", "<b>A</b>", df["role"])
    sub = subgroup_effects(df, outcome="follow_through", by=("role",), method="difference")
    html = sub._repr_html_()
    assert "<b>A</b>" not in html and "&lt;b&gt;A&lt;/b&gt;" in html
    assert isinstance(sub.summary(), str) and sub.reading() in sub.summary()
    dose = dose_response(df, outcome="follow_through", method="difference")
    assert dose.reading() in dose.summary() and "<table" in dose._repr_html_()
    res = manager_effects(df, outcome="follow_through", method="difference")
    assert "<table" in res._repr_html_() and res.reading() in res.summary()


# ----------------------------------------------------------------------------------------------
# Plots take the result and never re-estimate


def test_plots(dose, subgroups):
    fig = dose_response_plot(dose)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert "percentage points" in ax.get_ylabel() and "sessions" in ax.get_xlabel()
    assert [t.get_text().split("\n")[0] for t in ax.get_xticklabels()] == ["0", "1-2", "3-5", "6+"]
    fig2 = subgroup_plot(subgroups)
    labels = [t.get_text().strip() for t in fig2.axes[0].get_yticklabels()]
    assert labels[:2] == ["Role", "Analyst"] and "manager coached" in labels
    assert "percentage points" in fig2.axes[0].get_xlabel()
    shared, axes = plt.subplots(1, 2)
    assert dose_response_plot(dose, ax=axes[0]) is shared
    assert subgroup_plot(subgroups, ax=axes[1]) is shared
    for f in (fig, fig2, shared):
        plt.close(f)


def test_plots_show_not_estimated_rows(learners):
    small = dose_response(
        learners,
        outcome="follow_through",
        bands=((0, 0), (1, 2), (3, None)),
        min_group_size=500,
        method="difference",
    )
    fig = dose_response_plot(small)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert "not estimated" in texts and "reference" in texts
    assert "n < 500" in fig.axes[0].get_xticklabels()[1].get_text()
    plt.close(fig)


# ----------------------------------------------------------------------------------------------
# diagnose: shared fits and coded copies give the results of the analyses run one by one


@pytest.mark.parametrize("side_by_side", [False, True], ids=["in turn", "side by side"])
def test_diagnose_equals_the_analyses_run_one_by_one(
    small_programme_dir, monkeypatch, side_by_side
):
    import lcstats.core.threads
    from lcstats.estimation.analysis import estimate_effects, outcome_covariates
    from lcstats.estimation.balance import balance_table
    from lcstats.estimation.diagnostics import diagnose
    from lcstats.estimation.pooling import cohort_estimates

    folder = small_programme_dir
    prog = load_programme(
        folder / "learners.csv", folder / "action_items.csv", folder / "skill_assessments.csv"
    )
    outcomes = learner_outcomes(prog, as_of="2026-06-30")
    covs = ("tenure_months", "engagement", "role", "cohort", "manager_coached")
    effects = estimate_effects(outcomes, covariates=covs, cluster="team_id")
    assert set(effects.propensity) == {"follow_through", "skills_gap"}
    if side_by_side:  # as with 200,000 learners or more: the analyses run on two threads
        monkeypatch.setattr(lcstats.core.threads, "MIN_ROWS", 0)
        monkeypatch.setattr(lcstats.core.threads, "usable_cores", lambda: 2)
    diag = diagnose(
        outcomes,
        effects,
        treatment="coached",
        covariates=covs,
        cluster="team_id",
        headline_method="aipw",
    )
    sample = effects.samples["follow_through"].data
    ref = balance_table(sample, treatment="coached", covariates=covs)
    pd.testing.assert_frame_equal(diag.balance.frame, ref.frame, check_exact=True)
    fit = {"method": "aipw", "alpha": 0.05, "min_group_size": 5}
    for outcome, smp in effects.samples.items():
        data, full = smp.data, outcome_covariates(outcome, covs)
        sub = subgroup_effects(
            data,
            outcome=outcome,
            by=("role", "cohort", "manager_coached"),
            covariates=full,
            cluster="team_id",
            **fit,
        )
        dose = dose_response(data, outcome=outcome, covariates=full, cluster="team_id", **fit)
        mgr = manager_effects(
            data, outcome=outcome, covariates=[c for c in full if c != "manager_coached"], **fit
        )
        pooled = cohort_estimates(
            outcomes, outcome=outcome, covariates=covs, cluster="team_id", **fit
        )
        for ours, theirs in (
            (diag.subgroups[outcome], sub),
            (diag.dose[outcome], dose),
            (diag.manager[outcome], mgr),
            (diag.cohorts[outcome], pooled),
        ):
            pd.testing.assert_frame_equal(ours.to_frame(), theirs.to_frame(), check_exact=True)
