"""Balance engine, overlap and trimming (lcstats.estimation.balance) and their figures (lcstats.reporting.plots)."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure

from lcstats.data.simulate import simulate_programme
from lcstats.estimation.balance import (
    BALANCE_METHODS,
    balance_table,
    balance_weights,
    compute_balance,
    overlap_summary,
    propensity_scores,
    trim_mask,
    weights_from_propensity,
)
from lcstats.estimation.effects import estimate_effect
from lcstats.reporting import plots

COVS = ["engagement", "log_tenure", "cohort", "role"]


def _expit(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


@pytest.fixture(scope="module")
def learners() -> pd.DataFrame:
    """Simulated programme with selection on engagement, tenure and cohort (confounding=1).

    The simulation's treatment model uses log tenure, so the propensity model does too.
    """
    sim = simulate_programme(n_learners=2000, seed=11, truth_draws=1)
    df = sim.learners.copy()
    df["log_tenure"] = np.log1p(df["tenure_months"])
    return df


@pytest.fixture
def small(rng) -> pd.DataFrame:
    n = 600
    x = rng.normal(size=n)
    b = (rng.random(n) < 0.4).astype(int)
    g = rng.choice(["north", "south", "east"], size=n)
    t = (rng.random(n) < _expit(0.8 * x + 0.5 * b + 0.4 * (g == "east"))).astype(int)
    return pd.DataFrame({"t": t, "x": x, "b": b, "g": g, "y": 1.5 * t + x + rng.normal(size=n)})


# ---------------------------------------------------------------------------- the SMD itself


def test_smd_before_weighting_matches_direct_pandas(small):
    bal = compute_balance(small, treatment="t", covariates=["x", "b", "g"], weights=None)
    tr, co = small[small["t"] == 1], small[small["t"] == 0]
    rows = bal.frame.set_index(["covariate", "level"], drop=False)

    # numeric: pooled SD sqrt((s1^2 + s0^2) / 2), sample variances (ddof=1)
    expected_x = (tr["x"].mean() - co["x"].mean()) / math.sqrt((tr["x"].var() + co["x"].var()) / 2)
    assert rows.loc[("x", None), "smd"] == pytest.approx(expected_x, rel=1e-12)
    assert rows.loc[("x", None), "type"] == "numeric"
    assert rows.loc[("x", None), "variance_ratio"] == pytest.approx(
        tr["x"].var() / co["x"].var(), rel=1e-12
    )
    # 0/1 covariate: binary, SD = sqrt(p(1-p)) per group, pooled
    p1, p0 = tr["b"].mean(), co["b"].mean()
    expected_b = (p1 - p0) / math.sqrt((p1 * (1 - p1) + p0 * (1 - p0)) / 2)
    assert rows.loc[("b", None), "smd"] == pytest.approx(expected_b, rel=1e-12)
    assert rows.loc[("b", None), "type"] == "binary"
    assert math.isnan(rows.loc[("b", None), "variance_ratio"])
    # one level of a text covariate
    q1, q0 = (tr["g"] == "east").mean(), (co["g"] == "east").mean()
    expected_east = (q1 - q0) / math.sqrt((q1 * (1 - q1) + q0 * (1 - q0)) / 2)
    assert rows.loc[("g", "east"), "smd"] == pytest.approx(expected_east, rel=1e-12)
    assert rows.loc[("g", "east"), "mean_treated"] == pytest.approx(q1)


def test_att_standardises_by_the_treated_sd(small):
    bal = compute_balance(small, treatment="t", covariates=["x"], weights=None, estimand="ATT")
    tr, co = small[small["t"] == 1], small[small["t"] == 0]
    expected = (tr["x"].mean() - co["x"].mean()) / tr["x"].std()
    assert bal.frame["smd"].iloc[0] == pytest.approx(expected, rel=1e-12)


def test_weighted_means_and_variance_ratio_use_the_weights(small, rng):
    w = rng.uniform(0.2, 3, size=len(small))
    bal = compute_balance(small, treatment="t", covariates=["x"], weights=w)
    after = bal.frame[bal.frame["adjusted"]].iloc[0]
    t = small["t"].to_numpy() == 1
    x = small["x"].to_numpy()

    def wvar(v, ww):
        m = np.average(v, weights=ww)
        return np.sum(ww * (v - m) ** 2) / (ww.sum() - np.sum(ww**2) / ww.sum())

    assert after["mean_treated"] == pytest.approx(np.average(x[t], weights=w[t]))
    assert after["mean_control"] == pytest.approx(np.average(x[~t], weights=w[~t]))
    assert after["variance_ratio"] == pytest.approx(wvar(x[t], w[t]) / wvar(x[~t], w[~t]))
    # the SMD after weighting keeps the unweighted denominator (cobalt's convention)
    sd = math.sqrt((x[t].var(ddof=1) + x[~t].var(ddof=1)) / 2)
    assert after["smd"] == pytest.approx((after["mean_treated"] - after["mean_control"]) / sd)


def test_variance_ratio_is_one_for_identical_distributions():
    x = np.linspace(-2, 3, 50)
    df = pd.DataFrame({"t": np.repeat([1, 0], 50), "x": np.concatenate([x, x])})
    bal = compute_balance(df, treatment="t", covariates=["x"], weights=np.ones(100))
    assert bal.frame["variance_ratio"].tolist() == pytest.approx([1.0, 1.0], abs=1e-12)
    assert bal.frame["smd"].tolist() == pytest.approx([0.0, 0.0], abs=1e-12)


def test_every_level_of_a_categorical_is_shown_before_and_after(small):
    bal = balance_table(small, treatment="t", covariates=["x", "g"], method="ipw")
    for adjusted in (False, True):
        rows = bal.frame[(bal.frame["covariate"] == "g") & (bal.frame["adjusted"] == adjusted)]
        assert rows["level"].tolist() == ["east", "north", "south"]  # first level too
        assert set(rows["type"]) == {"binary"}
    # pandas Categorical keeps its category order
    cat = small.assign(g=pd.Categorical(small["g"], categories=["south", "north", "east"]))
    levels = compute_balance(cat, treatment="t", covariates=["g"], weights=None).frame["level"]
    assert levels.tolist() == ["south", "north", "east"]
    assert list(bal.frame.columns) == [
        "covariate",
        "level",
        "type",
        "mean_treated",
        "mean_control",
        "smd",
        "variance_ratio",
        "adjusted",
    ]
    assert bal.frame.loc[bal.frame["covariate"] == "x", "level"].tolist() == [None, None]


# ------------------------------------------------------------------------ weighting methods


def test_ipw_removes_confounding_imbalance_in_the_simulated_programme(learners):
    bal = balance_table(learners, treatment="coached", covariates=COVS, method="ipw")
    before, after = bal.max_abs_smd(False), bal.max_abs_smd(True)
    # measured (seed 11, 2,000 learners): 0.638 before, 0.019 after
    assert before > 0.2
    assert after < 0.1
    assert bal.reading().startswith("After weighting, every covariate is within 0.1 SD")
    att = balance_table(
        learners, treatment="coached", covariates=COVS, method="ipw", estimand="ATT"
    )
    assert att.max_abs_smd(False) > 0.2 and att.max_abs_smd(True) < 0.1


def test_balance_reveals_a_misspecified_propensity_model():
    # Selection on log tenure; a linear tenure term leaves long-tenure learners with large
    # weights, which the table shows. The correctly specified model balances.
    rng = np.random.default_rng(0)
    n = 2000
    log_tenure = rng.normal(3.4, 0.8, n)
    coached = (rng.random(n) < 1 / (1 + np.exp(0.4 + (log_tenure - 3.4) / 0.8))).astype(int)
    df = pd.DataFrame(
        {
            "coached": coached,
            "tenure_months": np.floor(np.exp(log_tenure)),
            "engagement": rng.normal(3.5, 0.7, n),
        }
    )
    covs = ["engagement", "tenure_months"]
    bal = balance_table(df, treatment="coached", covariates=covs, method="ipw")
    assert bal.max_abs_smd(False) > 0.5
    assert bal.max_abs_smd(True) > 0.1
    assert "tenure_months" in bal.imbalanced()["covariate"].tolist()
    assert "imbalanced" in bal.reading()
    right = balance_table(
        df.assign(tenure_months=np.log(df["tenure_months"] + 1)),
        treatment="coached",
        covariates=covs,
        method="ipw",
    )
    assert right.max_abs_smd(True) < 0.05


def test_att_weights_reproduce_treated_means_exactly(learners):
    w = balance_weights(
        learners, treatment="coached", covariates=COVS, method="ipw", estimand="ATT"
    )
    t = learners["coached"].to_numpy() == 1
    assert np.all(w[t] == 1.0)
    assert w[~t].mean() == pytest.approx(1.0)
    bal = compute_balance(learners, treatment="coached", covariates=COVS, weights=w, estimand="ATT")
    before = bal.frame[~bal.frame["adjusted"]].reset_index(drop=True)
    after = bal.frame[bal.frame["adjusted"]].reset_index(drop=True)
    np.testing.assert_allclose(after["mean_treated"], before["mean_treated"], rtol=0, atol=1e-12)


def test_overlap_weights_balance_model_covariates_exactly(learners):
    # Li, Morgan & Zaslavsky (2018): with a logistic propensity model, overlap weights give
    # exact mean balance for every covariate in the model.
    bal = balance_table(
        learners, treatment="coached", covariates=COVS, method="overlap", estimand="ATO"
    )
    assert bal.max_abs_smd(False) > 0.2
    assert bal.max_abs_smd(True) < 1e-8


def test_balance_weights_are_the_weights_the_ipw_estimator_uses(small):
    for estimand in ("ATE", "ATT"):
        w = balance_weights(
            small, treatment="t", covariates=["x", "b", "g"], method="ipw", estimand=estimand
        )
        t = small["t"].to_numpy() == 1
        y = small["y"].to_numpy()
        weighted = np.average(y[t], weights=w[t]) - np.average(y[~t], weights=w[~t])
        est = estimate_effect(
            small,
            outcome="y",
            treatment="t",
            covariates=["x", "b", "g"],
            method="ipw",
            estimand=estimand,
        )
        assert est.estimate == pytest.approx(weighted, rel=1e-10)


def test_difference_aipw_and_regression_weights(small):
    kw = {"treatment": "t", "covariates": ["x", "g"], "estimand": "ATE"}
    assert np.all(balance_weights(small, method="difference", **kw) == 1.0)
    ipw = balance_weights(small, method="ipw", **kw)
    np.testing.assert_array_equal(balance_weights(small, method="aipw", **kw), ipw)
    np.testing.assert_array_equal(balance_weights(small, method="regression", **kw), ipw)
    t = small["t"].to_numpy() == 1
    assert ipw[t].mean() == pytest.approx(1.0) and ipw[~t].mean() == pytest.approx(1.0)


def test_weights_from_propensity_formulas():
    e = np.array([0.2, 0.5, 0.25, 0.8])
    t = np.array([1, 1, 0, 0])
    ate = weights_from_propensity(e, t, estimand="ATE")
    # 1/e = 5, 2 (mean 3.5) and 1/(1-e) = 4/3, 5 (mean 19/6), normalised within group
    np.testing.assert_allclose(ate, [5 / 3.5, 2 / 3.5, (4 / 3) / (19 / 6), 5 / (19 / 6)])
    ato = weights_from_propensity(e, t, estimand="ATO")
    np.testing.assert_allclose(ato, [0.8 / 0.65, 0.5 / 0.65, 0.25 / 0.525, 0.8 / 0.525])


def test_propensity_scores_are_the_estimators_fit(small):
    e = propensity_scores(small, treatment="t", covariates=["x", "b", "g"])
    assert e.shape == (len(small),)
    assert np.all((e > 0) & (e < 1))
    # the logistic score equations hold: sum of (t - e) times each covariate is zero
    assert abs(np.sum(small["t"] - e)) < 1e-6
    assert abs(np.sum((small["t"] - e) * small["x"])) < 1e-6


def test_trimmed_learners_can_be_zero_weights(small):
    e = propensity_scores(small, treatment="t", covariates=["x"])
    keep, dropped = trim_mask(e, bounds=(0.2, 0.8))
    w = weights_from_propensity(e, small["t"], estimand="ATE") * keep
    bal = compute_balance(small, treatment="t", covariates=["x"], weights=w)
    assert bal.ess_treated + bal.ess_control <= len(small) - dropped + 1e-9


# ----------------------------------------------------------------------- readings and results


def test_unweighted_balance_has_only_before_rows(small):
    bal = compute_balance(small, treatment="t", covariates=["x", "b"], weights=None)
    assert not bal.frame["adjusted"].any()
    assert math.isnan(bal.max_abs_smd(True))
    assert bal.reading().startswith("Without any adjustment, 2 covariates differ")


def test_reading_lists_imbalanced_covariates():
    df = pd.DataFrame(
        {"t": [1, 1, 1, 0, 0, 0], "x": [3.0, 4.0, 5.0, 0.0, 1.0, 2.0], "g": list("aabbab")}
    )
    bal = compute_balance(df, treatment="t", covariates=["x", "g"], weights=np.ones(6))
    reading = bal.reading()
    assert reading.startswith("After weighting, 2 covariates remain imbalanced (|SMD| > 0.1): ")
    assert "x (+3.00)" in reading and "g: a" in reading and "g: b" in reading
    assert "every covariate is within 5 SD" in bal.reading(threshold=5)
    assert "x" in bal.summary() and "remain imbalanced" in bal._repr_html_()


def test_html_escapes_names_from_data():
    df = pd.DataFrame({"t": [1, 1, 0, 0, 1, 0], "g": ["<b>", "x", "x", "<b>", "x", "x"]})
    html = compute_balance(df, treatment="t", covariates=["g"], weights=None)._repr_html_()
    assert "<b>" not in html and "&lt;b&gt;" in html


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "matching", "estimand": "ATE"}, "choose one of difference, regression"),
        ({"method": "ipw", "estimand": "ATC"}, "choose one of ATE, ATT, ATO"),
        ({"method": "overlap", "estimand": "ATE"}, "estimand='ATO'"),
        ({"method": "ipw", "estimand": "ATO"}, "estimand='ATO'"),
    ],
)
def test_options_are_checked_with_their_allowed_values(small, kwargs, message):
    with pytest.raises(ValueError, match=message):
        balance_table(small, treatment="t", covariates=["x"], **kwargs)
    assert set(BALANCE_METHODS) == {"difference", "regression", "ipw", "aipw", "overlap"}


def test_bad_inputs_are_reported(small):
    with pytest.raises(ValueError, match="must match"):
        compute_balance(small, treatment="t", covariates=["x"], weights=np.ones(3))
    with pytest.raises(ValueError, match="non-negative"):
        compute_balance(small, treatment="t", covariates=["x"], weights=-np.ones(len(small)))
    with pytest.raises(ValueError, match="coded 0/1"):
        compute_balance(
            small.assign(t=small["t"] * 2), treatment="t", covariates=["x"], weights=None
        )
    with pytest.raises(ValueError, match="missing values in x"):
        compute_balance(small.assign(x=np.nan), treatment="t", covariates=["x"], weights=None)
    with pytest.raises(ValueError, match="not in data"):
        compute_balance(small, treatment="t", covariates=["nope"], weights=None)


# ------------------------------------------------------------------------ overlap, trimming


def test_overlap_summary_flags_extreme_propensities_and_passes_good_ones(rng):
    n = 4000
    x = rng.normal(size=n)
    e_good = _expit(0.5 * x)
    e_bad = _expit(3.5 * x)
    t_good = (rng.random(n) < e_good).astype(int)
    t_bad = (rng.random(n) < e_bad).astype(int)
    good = overlap_summary(e_good, t_good)
    bad = overlap_summary(e_bad, t_bad)
    assert not good.poor and good.warning == ""
    assert good.reading().startswith("Coached and uncoached learners overlap well")
    assert bad.poor and bad.share_outside > 0.3
    assert bad.reading() == bad.warning and bad.warning.startswith("Limited overlap")
    assert bad.n_outside == int(np.sum((e_bad < 0.05) | (e_bad > 0.95)))
    assert bad.min_treated == pytest.approx(e_bad[t_bad == 1].min())
    assert bad.max_control == pytest.approx(e_bad[t_bad == 0].max())
    assert list(bad.to_frame()["group"]) == ["treated", "control"]
    # the bounds are arguments
    assert overlap_summary(e_good, t_good, bounds=(0.45, 0.55)).poor


def test_trim_mask_counts_dropped_learners():
    e = np.array([0.01, 0.05, 0.3, 0.5, 0.95, 0.96, 0.99])
    keep, dropped = trim_mask(e)
    assert keep.tolist() == [False, True, True, True, True, False, False]
    assert dropped == 3
    keep, dropped = trim_mask(e, bounds=(0.1, 0.9))
    assert dropped == 5 and keep.sum() == 2
    with pytest.raises(ValueError, match="lower < upper"):
        trim_mask(e, bounds=(0.9, 0.1))


# ---------------------------------------------------------------------------------- figures


def test_love_plot_draws_one_row_per_covariate_level(small):
    bal = balance_table(small, treatment="t", covariates=["x", "b", "g"], method="ipw")
    fig = plots.love_plot(bal)
    try:
        assert isinstance(fig, Figure)
        ax = fig.axes[0]
        labels = [t.get_text() for t in ax.get_yticklabels()]
        assert labels == ["x", "b", "g: east", "g: north", "g: south"]
        points = [c for c in ax.collections if isinstance(c, PathCollection)]
        assert len(points) == 2  # before and after
        assert all(len(p.get_offsets()) == 5 for p in points)
        assert [list(line.get_xdata()) for line in ax.get_lines()] == [[0.1, 0.1]]
        assert ax.get_title(loc="left").replace("\n", " ") == bal.reading()
    finally:
        plt.close(fig)
    fig = plots.love_plot(bal, threshold=0.05, title="A stated finding")
    try:
        assert fig.axes[0].get_title(loc="left") == "A stated finding"
    finally:
        plt.close(fig)


def test_propensity_plot_draws_both_groups(rng):
    e = rng.uniform(0.05, 0.95, size=200)
    t = (rng.random(200) < e).astype(int)
    fig, ax = plt.subplots()
    try:
        out = plots.propensity_plot(e, t, bounds=(0.05, 0.95), ax=ax)
        assert out is fig
        assert len(ax.patches) == 2  # one filled histogram per group
        assert ax.get_xlabel() == "Estimated chance of being coached"
        assert len(ax.get_lines()) == 2  # the bounds
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["Not coached", "Coached"]
    finally:
        plt.close(fig)
