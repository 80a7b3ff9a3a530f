"""Randomised pilots: difference in means with Lin (2013) adjustment, HC2 or clustered errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import stats

from lcstats.core.errors import EstimationError
from lcstats.estimation.effects import EffectEstimate
from lcstats.estimation.randomised import randomised_effect


def _pilot(rng: np.random.Generator, n: int = 120, effect: float = 0.4) -> pd.DataFrame:
    """Complete randomisation of half the learners; heterogeneous effects (mean ``effect``)."""
    x = rng.normal(size=n)
    role = rng.choice(["Analyst", "Engineer", "Sales"], size=n)
    t = rng.permutation(np.arange(n) < n // 2).astype(int)
    tau = effect + 0.3 * (x - x.mean())  # the sample ATE is exactly `effect`
    y = 1.0 + x + 0.5 * (role == "Sales") + t * tau + rng.normal(size=n)
    return pd.DataFrame({"y": y, "t": t, "x": x, "role": pd.Series(role, dtype="str")})


def test_without_covariates_it_is_the_difference_in_means_with_neyman_errors(rng):
    df = _pilot(rng)
    est = randomised_effect(df, outcome="y", treatment="t")
    y1, y0 = df.loc[df["t"] == 1, "y"], df.loc[df["t"] == 0, "y"]
    assert isinstance(est, EffectEstimate)
    assert (est.method, est.estimand) == ("lin", "ATE")
    assert est.estimate == pytest.approx(y1.mean() - y0.mean())
    # HC2 in the two-group regression is Neyman's conservative variance
    neyman = np.sqrt(y1.var(ddof=1) / len(y1) + y0.var(ddof=1) / len(y0))
    assert est.std_error == pytest.approx(neyman)
    crit = stats.t.ppf(0.975, len(df) - 2)
    assert est.ci_high == pytest.approx(est.estimate + crit * neyman)
    assert (est.n_treated, est.n_control) == (60, 60)
    assert est.notes[0] == "randomised pilot: difference in means without covariates"


def test_lin_estimate_matches_a_hand_built_interacted_regression(rng):
    df = _pilot(rng)
    est = randomised_effect(df, outcome="y", treatment="t", covariates=["x", "role"])
    hand = df.assign(
        xc=df["x"] - df["x"].mean(),
        eng=(df["role"] == "Engineer") - (df["role"] == "Engineer").mean(),
        sales=(df["role"] == "Sales") - (df["role"] == "Sales").mean(),
    )
    fit = smf.ols("y ~ t * (xc + eng + sales)", data=hand).fit(cov_type="HC2", use_t=True)
    assert est.estimate == pytest.approx(fit.params["t"])
    assert est.std_error == pytest.approx(fit.bse["t"])
    assert est.p_value == pytest.approx(fit.pvalues["t"])
    low, high = fit.conf_int().loc["t"]
    assert (est.ci_low, est.ci_high) == (pytest.approx(low), pytest.approx(high))
    assert est.covariates == ("x", "role")
    assert "Lin (2013) adjustment for x, role" in est.notes[0]


def test_coverage_and_precision_gain_in_simulated_pilots(rng):
    covered, se_lin, se_dim = [], [], []
    for _ in range(300):
        df = _pilot(rng, n=80)
        lin = randomised_effect(df, outcome="y", treatment="t", covariates=["x"])
        dim = randomised_effect(df, outcome="y", treatment="t")
        covered.append(lin.ci_low <= 0.4 <= lin.ci_high)
        se_lin.append(lin.std_error)
        se_dim.append(dim.std_error)
    assert 0.92 <= np.mean(covered) <= 0.98  # MC SE 0.013
    assert np.mean(se_lin) < 0.85 * np.mean(se_dim)  # the covariate explains outcome variance


def _team_pilot(rng: np.random.Generator, teams: int = 30, size: int = 8) -> pd.DataFrame:
    """Whole teams randomised; a team effect makes learners of a team alike."""
    team = np.repeat(np.arange(teams), size)
    t_team = rng.permutation(np.arange(teams) < teams // 2).astype(int)
    x = rng.normal(size=teams * size)
    y = 0.3 * t_team[team] + 0.5 * x + rng.normal(size=teams)[team] + rng.normal(size=team.size)
    return pd.DataFrame({"y": y, "t": t_team[team], "x": x, "team_id": team.astype(str)})


def test_team_assignment_gives_cluster_robust_errors(rng):
    df = _team_pilot(rng)
    est = randomised_effect(df, outcome="y", treatment="t", covariates=["x"], cluster="team_id")
    hand = df.assign(xc=df["x"] - df["x"].mean())
    codes = pd.factorize(df["team_id"], sort=True)[0]
    fit = smf.ols("y ~ t * xc", data=hand).fit(
        cov_type="cluster", cov_kwds={"groups": codes}, use_t=True
    )
    assert est.std_error == pytest.approx(fit.bse["t"])
    assert (est.cluster, est.n_clusters) == ("team_id", 30)
    crit = stats.t.ppf(0.975, 29)  # t with clusters - 1 degrees of freedom
    assert est.ci_high - est.estimate == pytest.approx(crit * est.std_error)
    assert any("cluster-robust" in n for n in est.notes)


def test_clustering_is_needed_when_teams_were_assigned(rng):
    clustered, ignored = [], []
    for _ in range(200):
        df = _team_pilot(rng)
        c = randomised_effect(df, outcome="y", treatment="t", covariates=["x"], cluster="team_id")
        i = randomised_effect(df, outcome="y", treatment="t", covariates=["x"])
        clustered.append(c.ci_low <= 0.3 <= c.ci_high)
        ignored.append(i.ci_low <= 0.3 <= i.ci_high)
    assert np.mean(clustered) >= 0.91
    assert np.mean(ignored) < 0.85  # HC2 treats learners of a team as independent


def test_bad_inputs_are_refused(rng):
    df = _pilot(rng)
    with pytest.raises(ValueError, match="coded 0/1"):
        randomised_effect(df.assign(t=df["t"] * 2), outcome="y", treatment="t")
    with pytest.raises(ValueError, match="alpha"):
        randomised_effect(df, outcome="y", treatment="t", alpha=1.5)
    constant_in_treated = df.assign(z=np.where(df["t"] == 1, 1.0, rng.normal(size=len(df))))
    with pytest.raises(EstimationError, match="does not vary within"):
        randomised_effect(constant_in_treated, outcome="y", treatment="t", covariates=["z"])
    with pytest.raises(EstimationError, match="single value"):
        randomised_effect(df.assign(team="A"), outcome="y", treatment="t", cluster="team")
    with pytest.raises(EstimationError, match="too few learners"):
        randomised_effect(df.sort_values("t").iloc[56:66], outcome="y", treatment="t")
