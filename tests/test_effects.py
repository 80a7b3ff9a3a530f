"""The effect estimators: agreement with statsmodels, resampling checks of the standard errors,
errors on data that cannot answer the question, and the result object.

Reference points:
- ``statsmodels.treatment.TreatmentEffect`` stacks the propensity and outcome models in one GMM,
  so its standard errors include the nuisance-estimation terms; it divides by n where we divide
  by n - 1 (factor sqrt(n / (n - 1))). It has no clustering and no AIPW for the treated.
- statsmodels OLS with HC0 / cluster (no small-sample correction) for the difference in means.
- Cluster (pairs) bootstrap and cluster jackknife for the clustered standard errors; the
  nonparametric bootstrap and jackknife for AIPW ATT, which has no statsmodels counterpart.
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats
from statsmodels.treatment.treatment_effects import TreatmentEffect

from lcstats.core.errors import EstimationError
from lcstats.estimation.effects import EffectEstimate, estimate_effect, fit_outcome

COMBOS = [(m, e) for m in ("regression", "ipw", "aipw") for e in ("ATE", "ATT")]
ALL_COMBOS = [("difference", "ATE"), ("difference", "ATT"), *COMBOS]
DESIGN_COLUMNS = [
    "outcome",
    "treatment",
    "estimand",
    "method",
    "estimate",
    "std_error",
    "ci_low",
    "ci_high",
    "p_value",
    "n_treated",
    "n_control",
    "units",
]


def expit(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def confounded(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """Confounded learners with good overlap and an effect that varies with x1 (ATT != ATE)."""
    x1 = rng.normal(size=n)
    x2 = rng.normal(size=n)
    role = rng.choice(["analyst", "engineer", "sales"], size=n, p=[0.3, 0.4, 0.3])
    t = (rng.random(n) < expit(-0.2 + 0.6 * x1 - 0.4 * x2 + 0.3 * (role == "sales"))).astype(int)
    y = (
        1.0
        + 0.5 * x1
        + 0.3 * x2
        + 0.4 * (role == "engineer")
        + t * (1.0 + 0.5 * x1)
        + rng.normal(size=n)
    )
    return pd.DataFrame({"y": y, "t": t, "x1": x1, "x2": x2, "role": role})


def clustered(rng: np.random.Generator, n_clusters: int = 60, n: int = 900) -> pd.DataFrame:
    """Teams with strong within-team correlation of outcomes, treatment and treatment effects."""
    team = np.sort(rng.integers(n_clusters, size=n))
    z = rng.normal(size=n_clusters)  # observed team-level covariate
    u = rng.normal(0.0, 1.5, size=n_clusters)  # team outcome effect
    v = rng.normal(0.0, 0.8, size=n_clusters)  # team selection into treatment
    h = rng.normal(0.0, 1.5, size=n_clusters)  # team-specific treatment effect
    x1 = 0.6 * z[team] + rng.normal(size=n)
    role = rng.choice(["analyst", "engineer", "sales"], size=n)
    lin = -0.2 + 0.7 * x1 + 0.3 * (role == "sales") + 0.4 * z[team] + v[team]
    t = (rng.random(n) < expit(lin)).astype(int)
    y = (
        1.0
        + x1
        + 0.4 * (role == "engineer")
        + 0.8 * z[team]
        + t * (0.5 + h[team])
        + u[team]
        + rng.normal(size=n)
    )
    return pd.DataFrame(
        {"y": y, "t": t, "x1": x1, "z": z[team], "role": role, "team": [f"T{k:03d}" for k in team]}
    )


COVS = ["x1", "x2", "role"]
CLUSTER_COVS = ["x1", "z", "role"]


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return confounded(np.random.default_rng(20261128), 1000)


@pytest.fixture(scope="module")
def teams() -> pd.DataFrame:
    return clustered(np.random.default_rng(5))


def fit(df: pd.DataFrame, method: str, estimand: str = "ATE", **kw) -> EffectEstimate:
    kw.setdefault("covariates", COVS)
    return estimate_effect(df, outcome="y", treatment="t", method=method, estimand=estimand, **kw)


# --------------------------------------------------------------------------------------------
# Agreement with statsmodels
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sm_effect(data) -> TreatmentEffect:
    role = data["role"]
    x = np.column_stack(
        [
            np.ones(len(data)),
            data["x1"],
            data["x2"],
            (role == "engineer").astype(float),  # "analyst" (first level) is dropped, as ours
            (role == "sales").astype(float),
        ]
    )
    y, t = data["y"].to_numpy(), data["t"].to_numpy(dtype=int)
    select = sm.Logit(t, x).fit(disp=0)
    # statsmodels clips propensity scores at 0.01/0.99 (0.001/0.999 for AIPW) in its moment
    # conditions: the comparison is only exact when no score is near those bounds.
    assert select.predict().min() > 0.05 and select.predict().max() < 0.95
    return TreatmentEffect(sm.OLS(y, x), t, results_select=select)


# statsmodels' IPW divides each group's weighted sums by the sum of its weights (normalised, our
# default); its AIPW divides by n (unnormalised, our weights="unnormalised").
@pytest.mark.parametrize(
    ("sm_method", "effect_group", "method", "estimand", "weights"),
    [
        ("ra", "all", "regression", "ATE", "normalised"),
        ("ra", 1, "regression", "ATT", "normalised"),
        ("ipw", "all", "ipw", "ATE", "normalised"),
        ("ipw", 1, "ipw", "ATT", "normalised"),
        ("aipw", "all", "aipw", "ATE", "unnormalised"),
    ],
)
def test_agrees_with_statsmodels_treatment_effect(
    data, sm_effect, sm_method, effect_group, method, estimand, weights
):
    kwargs = {} if effect_group == "all" else {"effect_group": effect_group}
    res = getattr(sm_effect, sm_method)(**kwargs)
    sm_est = float(res.summary_frame().iloc[0]["coef"])
    sm_se = math.sqrt(res.results_gmm.cov_params()[0, 0])
    ours = fit(data, method, estimand, weights=weights, small_sample=False)
    n = len(data)
    assert ours.estimate == pytest.approx(sm_est, rel=1e-8)
    assert ours.std_error == pytest.approx(sm_se * math.sqrt(n / (n - 1)), rel=1e-4)
    # Unclustered intervals are normal-based.
    z = stats.norm.ppf(0.975)
    assert ours.ci_low == pytest.approx(ours.estimate - z * ours.std_error, rel=1e-12)
    assert ours.ci_high == pytest.approx(ours.estimate + z * ours.std_error, rel=1e-12)
    assert ours.n_treated + ours.n_control == n
    assert ours.n_treated == int(data["t"].sum())


def test_att_differs_from_ate_when_the_effect_varies(data):
    # The effect grows with x1 and the coached have higher x1: the two estimands must differ,
    # so the statsmodels agreement above really distinguishes them.
    for method in ("regression", "ipw", "aipw"):
        ate, att = fit(data, method, "ATE"), fit(data, method, "ATT")
        assert att.estimate - ate.estimate > 2 * 0.05


def test_difference_matches_ols_hc0(data):
    n = len(data)
    ols = sm.OLS(data["y"], sm.add_constant(data["t"].astype(float))).fit(cov_type="HC0")
    for estimand in ("ATE", "ATT"):
        est = fit(data, "difference", estimand)
        assert est.estimate == pytest.approx(ols.params["t"], rel=1e-10)
        assert est.std_error == pytest.approx(ols.bse["t"] * math.sqrt(n / (n - 1)), rel=1e-10)
        assert est.covariates == ()  # the difference ignores covariates


def test_difference_matches_ols_cluster(teams):
    groups = pd.factorize(teams["team"])[0]
    g = len(np.unique(groups))
    ols = sm.OLS(teams["y"], sm.add_constant(teams["t"].astype(float))).fit(
        cov_type="cluster", cov_kwds={"groups": groups, "use_correction": False}
    )
    est = fit(teams, "difference", covariates=(), cluster="team")
    assert est.n_clusters == g == 60
    assert est.estimate == pytest.approx(ols.params["t"], rel=1e-10)
    assert est.std_error == pytest.approx(ols.bse["t"] * math.sqrt(g / (g - 1)), rel=1e-10)
    # Clustered intervals and p-values use t with (clusters - 1) degrees of freedom.
    crit = stats.t.ppf(0.975, g - 1)
    assert est.ci_high - est.estimate == pytest.approx(crit * est.std_error, rel=1e-10)
    assert est.p_value == pytest.approx(
        2 * stats.t.sf(abs(est.estimate / est.std_error), g - 1), rel=1e-10
    )


@pytest.mark.parametrize(("method", "estimand"), ALL_COMBOS)
def test_singleton_clusters_give_the_unclustered_standard_error(data, method, estimand):
    # Summing influence values within clusters of one learner is no summing at all, and the
    # G/(G-1) correction is then n/(n-1): the clustered path must reduce to the unclustered one.
    ids = data.assign(learner=np.arange(len(data)))
    plain = fit(ids, method, estimand)
    single = fit(ids, method, estimand, cluster="learner")
    assert single.n_clusters == len(data)
    assert single.estimate == plain.estimate
    assert single.std_error == pytest.approx(plain.std_error, rel=1e-12)


# --------------------------------------------------------------------------------------------
# Resampling checks of the standard errors
# --------------------------------------------------------------------------------------------


def _members(df: pd.DataFrame, cluster: str) -> list[np.ndarray]:
    codes = pd.factorize(df[cluster])[0]
    return [np.flatnonzero(codes == k) for k in range(codes.max() + 1)]


@pytest.mark.parametrize(("method", "estimand"), COMBOS)
def test_clustered_se_matches_cluster_bootstrap(teams, method, estimand):
    clus = fit(teams, method, estimand, covariates=CLUSTER_COVS, cluster="team")
    plain = fit(teams, method, estimand, covariates=CLUSTER_COVS)
    # The data have strong within-team correlation: ignoring it understates the uncertainty.
    assert clus.std_error > 1.3 * plain.std_error
    members = _members(teams, "team")
    g = len(members)
    boot_rng = np.random.default_rng(7)
    draws = []
    for _ in range(200):
        rows = np.concatenate([members[k] for k in boot_rng.integers(g, size=g)])
        draws.append(fit(teams.iloc[rows], method, estimand, covariates=CLUSTER_COVS).estimate)
    ratio = np.std(draws, ddof=1) / clus.std_error
    assert 0.8 < ratio < 1.2, ratio


@pytest.mark.parametrize(("method", "estimand"), ALL_COMBOS)
def test_clustered_se_matches_cluster_jackknife(teams, method, estimand):
    # Leave-one-team-out is deterministic and, with 60 teams, within a few percent of the
    # sandwich (slightly above it): a tighter check than the bootstrap. The small-sample
    # (leverage) correction moves the adjusted methods' standard errors towards it: here 1-2%
    # below it instead of 2-3% (it ignores leverage shared within a team).
    clus = fit(teams, method, estimand, covariates=CLUSTER_COVS, cluster="team")
    plain = fit(
        teams, method, estimand, covariates=CLUSTER_COVS, cluster="team", small_sample=False
    )
    members = _members(teams, "team")
    g = len(members)
    loo = np.array(
        [
            fit(
                teams.iloc[np.concatenate(members[:k] + members[k + 1 :])],
                method,
                estimand,
                covariates=CLUSTER_COVS,
            ).estimate
            for k in range(g)
        ]
    )
    jack = math.sqrt((g - 1) / g * np.sum((loo - loo.mean()) ** 2))
    assert 0.98 < jack / clus.std_error < 1.08, jack / clus.std_error
    if method == "difference":
        assert clus.std_error == plain.std_error  # the textbook standard error, uncorrected
    else:
        assert plain.std_error < clus.std_error < jack


@pytest.mark.parametrize("method", ["aipw", "ipw"])
def test_att_se_matches_bootstrap(data, method):
    est = fit(data, method, "ATT")
    boot_rng = np.random.default_rng(11)
    n = len(data)
    draws = [
        fit(data.iloc[boot_rng.integers(n, size=n)], method, "ATT").estimate for _ in range(300)
    ]
    ratio = np.std(draws, ddof=1) / est.std_error
    assert 0.85 < ratio < 1.15, ratio


def test_aipw_att_se_matches_jackknife():
    df = confounded(np.random.default_rng(3), 300)
    est = fit(df, "aipw", "ATT")
    n = len(df)
    keep = np.ones(n, dtype=bool)
    loo = []
    for i in range(n):
        keep[i] = False
        loo.append(fit(df[keep], "aipw", "ATT").estimate)
        keep[i] = True
    loo = np.array(loo)
    jack = math.sqrt((n - 1) / n * np.sum((loo - loo.mean()) ** 2))
    assert 0.97 < jack / est.std_error < 1.06, jack / est.std_error


# --------------------------------------------------------------------------------------------
# Covariates: indicators, invariance
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "estimand"), COMBOS)
def test_text_covariate_expands_to_indicators(data, method, estimand):
    dummies = data.assign(
        is_engineer=(data["role"] == "engineer").astype(int),
        is_sales=(data["role"] == "sales").astype(int),
    )
    text = fit(data, method, estimand)
    manual = fit(dummies, method, estimand, covariates=["x1", "x2", "is_engineer", "is_sales"])
    assert text.estimate == pytest.approx(manual.estimate, rel=1e-10)
    assert text.std_error == pytest.approx(manual.std_error, rel=1e-8)
    without = fit(data, method, estimand, covariates=["x1", "x2"])
    assert without.estimate != pytest.approx(text.estimate, rel=1e-6)  # the role really is used


@pytest.mark.parametrize(("method", "estimand"), COMBOS)
def test_invariant_to_row_order_and_category_labels(data, teams, method, estimand):
    base = fit(teams, method, estimand, covariates=CLUSTER_COVS, cluster="team")
    shuffled = teams.sample(frac=1.0, random_state=np.random.default_rng(1))  # index shuffled too
    # Relabelling changes the sort order, hence which level is the reference category.
    relabel = {"analyst": "zz analyst", "engineer": "b engineer", "sales": "a sales"}
    shuffled = shuffled.assign(
        role=shuffled["role"].map(relabel).astype("category"),
        team=shuffled["team"].str.replace("T", "team-", regex=False),
    )
    other = fit(shuffled, method, estimand, covariates=CLUSTER_COVS, cluster="team")
    assert other.estimate == pytest.approx(base.estimate, rel=1e-9)
    assert other.std_error == pytest.approx(base.std_error, rel=1e-7)
    assert (other.n_treated, other.n_control, other.n_clusters) == (
        base.n_treated,
        base.n_control,
        base.n_clusters,
    )


def test_collinear_covariates_are_harmless(data):
    twice = data.assign(x1_again=2 * data["x1"] + 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for method, estimand in COMBOS:
            a = fit(data, method, estimand)
            b = fit(twice, method, estimand, covariates=[*COVS, "x1_again"])
            assert b.estimate == pytest.approx(a.estimate, rel=1e-8)
            assert b.std_error == pytest.approx(a.std_error, rel=1e-6)


@pytest.mark.parametrize(("method", "estimand"), ALL_COMBOS)
def test_no_warnings_on_ordinary_data(data, method, estimand):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est = fit(data, method, estimand)
    assert est.notes == ()


def test_boolean_and_text_treatment_codes(data):
    base = fit(data, "aipw")
    assert fit(data.assign(t=data["t"].astype(bool)), "aipw").estimate == base.estimate
    assert fit(data.assign(t=data["t"].astype(str)), "aipw").estimate == base.estimate
    assert fit(data.assign(t=data["t"].astype(float)), "aipw").estimate == base.estimate


# --------------------------------------------------------------------------------------------
# Errors and edge cases
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, 1])
@pytest.mark.parametrize("method", ["difference", "regression", "ipw", "aipw"])
def test_no_comparison_group(data, value, method):
    with pytest.raises(EstimationError, match="comparison"):
        fit(data.assign(t=value), method)


@pytest.mark.parametrize("method", ["difference", "regression", "ipw", "aipw"])
def test_too_few_learners_in_a_group(data, method):
    few = data.assign(t=(np.arange(len(data)) < 3).astype(int))
    with pytest.raises(EstimationError, match="too few learners"):
        fit(few, method)


def test_too_few_learners_for_the_covariates(data):
    # Six treated learners are enough for the difference in means, not for outcome models with
    # six parameters (intercept, x1, x2, two role indicators, x3): those need seven.
    six = data.assign(t=(np.arange(len(data)) < 6).astype(int), x3=np.arange(len(data)) % 5)
    fit(six, "difference")
    with pytest.raises(EstimationError, match="fewer covariates"):
        fit(six, "regression", covariates=[*COVS, "x3"])


@pytest.mark.parametrize("method", ["regression", "ipw", "aipw"])
@pytest.mark.parametrize("kind", ["numeric", "text"])
def test_constant_covariate(data, method, kind):
    const = data.assign(c=1.0 if kind == "numeric" else "everyone")
    with pytest.raises(EstimationError, match="'c'"):
        fit(const, method, covariates=["x1", "c"])


@pytest.mark.parametrize("method", ["regression", "ipw", "aipw"])
@pytest.mark.parametrize("estimand", ["ATE", "ATT"])
@pytest.mark.parametrize("kind", ["copy", "threshold", "category"])
def test_covariate_that_predicts_treatment(data, method, estimand, kind):
    rng = np.random.default_rng(4)
    t = data["t"].to_numpy()
    if kind == "copy":  # a 0/1 flag equal to the treatment
        bad = data.assign(p=t)
    elif kind == "threshold":  # continuous, above 0.5 exactly for the treated
        bad = data.assign(p=np.where(t == 1, 0.5 + rng.random(len(t)), -0.5 - rng.random(len(t))))
    else:  # a category that only treated learners have
        bad = data.assign(p=np.where((t == 1) & (rng.random(len(t)) < 0.2), "pilot", "main"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clear error, not a statsmodels warning
        with pytest.raises(EstimationError, match="coached"):
            fit(bad, method, estimand, covariates=["x1", "p"])


def test_att_tolerates_comparison_learners_unlike_any_coached(data):
    # Forty comparison learners far outside the coached range (propensity about 1e-7): they
    # leave the ATE unidentified but get weight ~0 in an ATT (as in Dehejia-Wahba's NSW-CPS).
    rng = np.random.default_rng(8)
    x1, x2 = -25.0 + rng.normal(size=40), rng.normal(size=40)
    far = pd.DataFrame(
        {"y": 1 + 0.5 * x1 + 0.3 * x2 + rng.normal(size=40), "t": 0, "x1": x1, "x2": x2}
    ).assign(role="analyst")
    df = pd.concat([data, far], ignore_index=True)
    for method in ("regression", "ipw", "aipw"):
        with pytest.raises(EstimationError, match="propensity scores of 0 or 1"):
            fit(df, method, "ATE")
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            est = fit(df, method, "ATT")
        assert est.n_control == int((data["t"] == 0).sum()) + 40
        assert est.notes == ()  # low scores are not an overlap problem for the ATT
        # IPW gives them weight ~0; the outcome models do use them (high leverage), a little.
        base = fit(data, method, "ATT")
        tolerance = 0.01 if method == "ipw" else 0.5
        assert abs(est.estimate - base.estimate) < tolerance * base.std_error


def test_outcome_model_refuses_a_covariate_constant_within_a_group(data):
    # A backstop behind the propensity check: a column constant among the comparison learners
    # leaves their model's predictions for the coached arbitrary.
    x = np.column_stack([np.ones(len(data)), data["x1"], data["t"]])
    y = data["y"].to_numpy()
    with pytest.raises(EstimationError, match=r"comparison learners.*\(flag is the same"):
        fit_outcome(
            y, x, data["t"].to_numpy() == 0, ["const", "x1", "flag"], rank=3, group="comparison"
        )


@pytest.mark.parametrize("bad", [2, -1, 0.5, "yes"])
def test_treatment_not_zero_one(data, bad):
    t = data["t"].astype(object)
    t.iloc[5] = bad
    with pytest.raises(ValueError, match="0/1"):
        fit(data.assign(t=t), "aipw")


@pytest.mark.parametrize("column", ["y", "t", "x1", "role", "team"])
def test_missing_values_name_the_column(teams, column):
    df = teams.copy()
    df[column] = df[column].astype(object)
    df.loc[7, column] = None
    with pytest.raises(ValueError, match=f"missing values in {column}"):
        fit(df, "aipw", covariates=CLUSTER_COVS, cluster="team")


def test_infinite_covariate_names_the_column(data):
    with pytest.raises(ValueError, match="'x2'"):
        fit(data.assign(x2=data["x2"].where(data.index != 3, np.inf)), "regression")


def test_unknown_column(data):
    with pytest.raises(ValueError, match="nope"):
        fit(data, "aipw", covariates=["x1", "nope"])
    with pytest.raises(ValueError, match="cannot also be covariates"):
        fit(data, "aipw", covariates=["x1", "t"])


def test_unknown_method_and_estimand(data):
    with pytest.raises(ValueError, match="difference, regression, ipw, aipw"):
        fit(data, "matching")
    with pytest.raises(ValueError, match="ATE, ATT"):
        fit(data, "aipw", "ATC")
    with pytest.raises(ValueError, match="alpha"):
        fit(data, "aipw", alpha=1.5)


@pytest.mark.parametrize("method", ["difference", "regression", "ipw", "aipw"])
def test_single_cluster(data, method):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no division-by-zero warning on the way
        with pytest.raises(EstimationError, match="single value"):
            fit(data.assign(team="T1"), method, cluster="team")


def test_few_clusters_are_flagged(teams):
    few = teams.assign(team=teams["team"].str[-1])  # 10 clusters
    est = fit(few, "aipw", covariates=CLUSTER_COVS, cluster="team")
    assert est.n_clusters == 10
    assert any("only 10 clusters" in note for note in est.notes)


# --------------------------------------------------------------------------------------------
# The result object
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def estimate(teams) -> EffectEstimate:
    return fit(teams, "aipw", covariates=CLUSTER_COVS, cluster="team")


def test_result_is_frozen(estimate):
    with pytest.raises(dataclasses.FrozenInstanceError):
        estimate.estimate = 0.0  # type: ignore[misc]


def test_to_frame_columns(estimate):
    frame = estimate.to_frame()
    assert len(frame) == 1
    extras = [c for c in estimate.as_dict() if c not in DESIGN_COLUMNS]
    assert list(frame.columns) == DESIGN_COLUMNS + extras
    assert extras == ["alpha", "cluster", "n_clusters", "covariates", "n_trimmed"]
    row = frame.iloc[0]
    assert row["estimate"] == estimate.estimate
    assert (row["outcome"], row["treatment"], row["method"], row["estimand"]) == (
        "y",
        "t",
        "aipw",
        "ATE",
    )
    assert row["cluster"] == "team" and row["n_clusters"] == 60
    assert row["covariates"] == CLUSTER_COVS


@pytest.mark.parametrize("cluster", [None, "team"])
@pytest.mark.parametrize(("method", "estimand"), ALL_COMBOS)
def test_interval_and_p_value_are_consistent(teams, method, estimand, cluster):
    # Adding k * t to the outcome moves every estimator by exactly k and leaves its influence
    # values unchanged: place the estimate at chosen multiples of its standard error, on both
    # sides of the critical values (1.96 / t(59) 2.00 at alpha 0.05; 1.28 / 1.30 at alpha 0.2).
    base = fit(teams, method, estimand, covariates=CLUSTER_COVS, cluster=cluster)
    for alpha in (0.05, 0.2):
        significant = []
        for z in (0.0, 1.2, 1.35, 1.95, 2.05, 4.0):
            shift = z * base.std_error - base.estimate
            df = teams.assign(y=teams["y"] + shift * teams["t"])
            est = fit(df, method, estimand, covariates=CLUSTER_COVS, cluster=cluster, alpha=alpha)
            assert est.estimate == pytest.approx(z * base.std_error, abs=1e-9)
            assert est.std_error == pytest.approx(base.std_error, rel=1e-9)
            assert est.ci_low < est.estimate < est.ci_high
            outside = est.ci_low > 0 or est.ci_high < 0
            assert (est.p_value < alpha) == outside
            significant.append(outside)
            assert est.confidence == round(100 * (1 - alpha))
        if alpha == 0.05:
            assert significant == [False, False, False, False, True, True]
        else:
            assert significant == [False, False, True, True, True, True]


def test_summary_returns_text_and_prints_nothing(estimate, capsys):
    text = estimate.summary()
    assert isinstance(text, str)
    assert capsys.readouterr().out == ""
    assert "aipw" in text and "60 clusters" in text and f"{estimate.std_error:.3g}" in text
    assert repr(estimate) == text


def made(outcome: str, estimate: float, low: float, high: float, **kw) -> EffectEstimate:
    se = (high - low) / (2 * 1.96)
    return EffectEstimate(
        outcome=outcome,
        treatment=kw.pop("treatment", "coached"),
        estimand=kw.pop("estimand", "ATE"),
        method="aipw",
        estimate=estimate,
        std_error=se,
        ci_low=low,
        ci_high=high,
        p_value=float(2 * stats.norm.sf(abs(estimate / se))),
        n_treated=100,
        n_control=120,
        **kw,
    )


@pytest.mark.parametrize(
    ("outcome", "estimate", "low", "high", "expected", "absent"),
    [
        (
            "follow_through",
            0.082,
            0.03,
            0.134,
            ["Coaching raised follow-through by about 8.2 percentage points"],
            ["lowered", "cannot tell"],
        ),
        (
            "follow_through",
            -0.05,
            -0.09,
            -0.01,
            ["Coaching lowered follow-through by about 5.0 percentage points"],
            ["raised", "cannot tell", "about -"],
        ),
        (
            "follow_through",
            0.012,
            -0.02,
            0.044,
            ["cannot tell whether coaching changed follow-through", "+1.2 percentage points"],
            ["raised", "lowered"],
        ),
        (
            "skills_gap",
            -0.25,
            -0.35,
            -0.15,
            ["Coaching narrowed the skills gap by about 0.25 points"],
            ["widened", "cannot tell", "about -"],
        ),
        (
            "skills_gap",
            0.2,
            0.05,
            0.35,
            ["Coaching widened the skills gap by about 0.20 points"],
            ["narrowed", "cannot tell"],
        ),
        (
            "skills_gap",
            -0.03,
            -0.12,
            0.06,
            ["cannot tell whether coaching changed the skills gap", "-0.03 points", "no effect"],
            ["narrowed", "widened"],
        ),
    ],
)
def test_reading(outcome, estimate, low, high, expected, absent):
    text = made(outcome, estimate, low, high).reading()
    for part in expected:
        assert part in text
    for part in absent:
        assert part not in text
    if outcome == "follow_through":
        # a clear effect is read as a size, with the interval of that size; an unclear one
        # with its signed interval
        clear = low > 0 or high < 0
        lo, hi = sorted((abs(low), abs(high))) if clear else (low, high)
        assert f"{100 * lo:.1f} to {100 * hi:.1f} percentage points" in text


def test_reading_for_the_treated():
    text = made("follow_through", 0.08, 0.03, 0.13, estimand="ATT").reading()
    assert "for the learners who were coached" in text


def test_repr_html_escapes_text():
    est = made("a<b>&c", 1.0, 0.5, 1.5, treatment="<script>alert(1)</script>", units="<i>u</i>")
    html = est._repr_html_()
    assert "<script>" not in html and "<i>" not in html and "<b>" not in html
    assert "&lt;script&gt;" in html
    assert "<table" in html


def _overlap_data(seed: int, n: int = 1500):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    e = 1 / (1 + np.exp(-(0.2 + 2.2 * x)))  # strong selection: some scores near 0 and 1
    t = (rng.random(n) < e).astype(int)
    y = 1.0 + 0.5 * t + x + 0.5 * t * x + rng.normal(size=n)
    return pd.DataFrame({"y": y, "t": t, "x": x})


def test_overlap_weights_se_agrees_with_bootstrap():
    df = _overlap_data(5)
    est = estimate_effect(
        df, outcome="y", treatment="t", covariates=["x"], method="ipw", estimand="ATO"
    )
    rng = np.random.default_rng(9)
    boot = []
    for _ in range(250):
        idx = rng.integers(len(df), size=len(df))
        boot.append(
            estimate_effect(
                df.iloc[idx].reset_index(drop=True),
                outcome="y",
                treatment="t",
                covariates=["x"],
                method="ipw",
                estimand="ATO",
            ).estimate
        )
    assert np.std(boot, ddof=1) / est.std_error == pytest.approx(1.0, abs=0.15)
    assert est.notes == ()  # overlap weights never warn about extreme weights


def test_overlap_weights_target_the_overlap_population():
    # effect 0.5 + 0.5 x, overlap weights centre on x near the selection boundary (x ~ -0.1)
    ests = [
        estimate_effect(
            _overlap_data(s, 3000),
            outcome="y",
            treatment="t",
            covariates=["x"],
            method="ipw",
            estimand="ATO",
        ).estimate
        for s in range(5)
    ]
    assert np.mean(ests) == pytest.approx(0.45, abs=0.06)


def test_ato_only_with_ipw():
    df = _overlap_data(1)
    with pytest.raises(ValueError, match="ATO"):
        estimate_effect(
            df, outcome="y", treatment="t", covariates=["x"], method="aipw", estimand="ATO"
        )


def test_trimming_drops_extreme_scores_and_reports_them():
    df = _overlap_data(2)
    full = estimate_effect(df, outcome="y", treatment="t", covariates=["x"], method="aipw")
    trimmed = estimate_effect(
        df, outcome="y", treatment="t", covariates=["x"], method="aipw", trim=(0.05, 0.95)
    )
    assert full.n_trimmed == 0
    assert trimmed.n_trimmed > 0
    assert trimmed.n_treated + trimmed.n_control + trimmed.n_trimmed == len(df)
    assert "left out (trimming)" in trimmed.notes[0]
    assert trimmed.as_dict()["n_trimmed"] == trimmed.n_trimmed
    with pytest.raises(ValueError, match="trim"):
        estimate_effect(df, outcome="y", treatment="t", covariates=["x"], trim=(0.9, 0.1))


def test_a_level_with_no_comparison_is_named(data):
    bad = data.copy()
    bad["cohort"] = "main"
    coached = bad.index[bad["t"] == 1][:3]
    bad.loc[coached, "cohort"] = "pilot"
    with pytest.raises(EstimationError, match=r"cohort = 'pilot' \(3 learners, all coached\)"):
        fit(bad, "aipw", covariates=["x1", "cohort"])
    # trimming leaves them out instead, and says so
    est = fit(bad, "aipw", covariates=["x1", "cohort"], trim=(0.01, 0.99))
    assert est.n_trimmed >= 3


def test_a_learner_dominating_the_weights_is_flagged():
    rng = np.random.default_rng(1)
    n = 1500
    x = rng.normal(size=n)
    x[0] = 6.0  # far outside the coached learners' range
    t = (rng.random(n) < 1 / (1 + np.exp(0.3 + 1.3 * x))).astype(int)
    t[0] = 1
    df = pd.DataFrame({"y": 0.5 * t + 0.3 * x + rng.normal(0, 0.3, n), "t": t, "x": x})
    for method in ("ipw", "aipw"):
        est = estimate_effect(df, outcome="y", treatment="t", covariates=["x"], method=method)
        assert any("carries" in note and "coached group's weight" in note for note in est.notes)
    calm = estimate_effect(df.iloc[1:], outcome="y", treatment="t", covariates=["x"], method="ipw")
    assert not any("carries" in note for note in calm.notes)


# --------------------------------------------------------------------------------------------
# Normalised and unnormalised weights against a hand-written reference
#
# The point estimates are written out as formulas; their standard errors come from the stacked
# moment conditions (logit score, least squares in each group, the estimator's own moments)
# through the M-estimation sandwich A^-1 B A^-T / n with A differentiated numerically: an
# independent check of the analytic influence functions, clustered and not.
# --------------------------------------------------------------------------------------------


def _reference_data(seed: int = 12, n: int = 240, binary: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    team = rng.integers(30, size=n)
    x1 = rng.normal(size=n) + 0.4 * rng.normal(size=30)[team]
    x2 = (rng.random(n) < 0.4).astype(float)
    t = (rng.random(n) < expit(-0.3 + 0.9 * x1 - 0.6 * x2)).astype(int)
    lin = 0.5 + 0.8 * x1 + 0.4 * x2 + t * (0.6 + 0.4 * x1) + rng.normal(0, 0.7, 30)[team]
    y = (rng.random(n) < expit(lin - 0.5)).astype(float) if binary else lin + rng.normal(size=n)
    return pd.DataFrame({"y": y, "t": t, "x1": x1, "x2": x2, "team": team})


def _nuisance(theta: np.ndarray, x: np.ndarray):
    k = x.shape[1]
    e = expit(x @ theta[:k])
    return e, x @ theta[k : 2 * k], x @ theta[2 * k : 3 * k], theta[3 * k :]


def _nuisance_moments(theta: np.ndarray, x: np.ndarray, y: np.ndarray, t: np.ndarray):
    """The propensity and the two outcome models' score columns, and the fitted values."""
    e, m1, m0, p = _nuisance(theta, x)
    cols = [x * (t - e)[:, None], x * (t * (y - m1))[:, None], x * ((1 - t) * (y - m0))[:, None]]
    return cols, e, m1, m0, p


def _estimator_moments(method, estimand, weights, y, t, e, m1, m0, p):
    """The estimator's own moment conditions (columns), its parameters ``p`` ending with tau."""
    c = 1 - t
    if method == "ipw":
        m1 = m0 = np.zeros_like(y)  # IPW: AIPW without outcome models
    if estimand == "ATE":
        w1, w0 = t / e, c / (1 - e)
        if weights == "normalised":  # p = (a1, d1, a0, d0, tau)
            tau = np.full_like(y, p[0] + p[1] - p[2] - p[3] - p[4])
            return [m1 - p[0], w1 * (y - m1 - p[1]), m0 - p[2], w0 * (y - m0 - p[3]), tau]
        # p = (mu1, mu0, tau)
        tau = np.full_like(y, p[0] - p[1] - p[2])
        return [m1 + w1 * (y - m1) - p[0], m0 + w0 * (y - m0) - p[1], tau]
    odds = c * e / (1 - e)
    if weights == "normalised":  # p = (a, d, tau)
        return [t * (y - m0 - p[0]), odds * (y - m0 - p[1]), np.full_like(y, p[0] - p[1] - p[2])]
    return [(t - odds) * (y - m0) - t * p[0]]  # p = (tau,)


def _reference_nuisance(method, df):
    """Design, outcome, treatment, logit and least-squares coefficients, scores, predictions."""
    x = np.column_stack([np.ones(len(df)), df["x1"], df["x2"]])
    y, t = df["y"].to_numpy(), df["t"].to_numpy(dtype=float)
    gamma = np.asarray(sm.Logit(t, x).fit(disp=0).params)
    b1 = np.linalg.lstsq(x[t == 1], y[t == 1], rcond=None)[0]
    b0 = np.linalg.lstsq(x[t == 0], y[t == 0], rcond=None)[0]
    m1, m0 = (x @ b1, x @ b0) if method == "aipw" else (0 * y, 0 * y)
    return x, y, t, np.concatenate([gamma, b1, b0]), expit(x @ gamma), m1, m0


def _reference_estimate(method, estimand, weights, df):
    """The point estimate written out, and its parameters for the moment conditions."""
    x, y, t, nuisance, e, m1, m0 = _reference_nuisance(method, df)
    c = 1 - t
    w1, w0, odds = t / e, c / (1 - e), c * e / (1 - e)
    if estimand == "ATE" and weights == "normalised":
        a1, a0 = m1.mean(), m0.mean()
        d1, d0 = np.sum(w1 * (y - m1)) / w1.sum(), np.sum(w0 * (y - m0)) / w0.sum()
        p = [a1, d1, a0, d0, a1 + d1 - a0 - d0]
    elif estimand == "ATE":
        mu1, mu0 = np.mean(m1 + w1 * (y - m1)), np.mean(m0 + w0 * (y - m0))
        p = [mu1, mu0, mu1 - mu0]
    elif weights == "normalised":  # Sant'Anna and Zhao (2020), cross-section form
        a, d = np.sum(t * (y - m0)) / t.sum(), np.sum(odds * (y - m0)) / odds.sum()
        p = [a, d, a - d]
    else:
        p = [np.sum((t - odds) * (y - m0)) / t.sum()]
    return x, y, t, np.concatenate([nuisance, p])


def _sandwich_se(moments, theta, n, groups=None):
    """Standard error of the last parameter: A^-1 B A^-T / n, A by central differences."""
    g = moments(theta)
    jac = np.empty((theta.size, theta.size))
    for j in range(theta.size):
        h = 1e-6 * max(1.0, abs(theta[j]))
        up, down = theta.copy(), theta.copy()
        up[j] += h
        down[j] -= h
        jac[:, j] = (moments(up).mean(axis=0) - moments(down).mean(axis=0)) / (2 * h)
    if groups is None:
        meat, factor = g.T @ g / n, n / (n - 1)
    else:
        codes = pd.factorize(groups)[0]
        sums = np.vstack([np.bincount(codes, weights=g[:, j]) for j in range(g.shape[1])]).T
        meat, factor = sums.T @ sums / n, len(sums) / (len(sums) - 1)
    inv = np.linalg.inv(jac)
    return math.sqrt((inv @ meat @ inv.T)[-1, -1] / n * factor)


@pytest.mark.parametrize("weights", ["normalised", "unnormalised"])
@pytest.mark.parametrize("estimand", ["ATE", "ATT"])
@pytest.mark.parametrize("method", ["ipw", "aipw"])
@pytest.mark.parametrize("cluster", [None, "team"])
def test_weights_agree_with_a_hand_written_reference(method, estimand, weights, cluster):
    df = _reference_data()
    x, y, t, theta = _reference_estimate(method, estimand, weights, df)
    k = x.shape[1]

    def moments(th):
        cols, e, m1, m0, p = _nuisance_moments(th, x, y, t)
        extra = _estimator_moments(method, estimand, weights, y, t, e, m1, m0, p)
        return np.column_stack([*cols, *extra])

    assert np.abs(moments(theta).mean(axis=0)).max() < 1e-8  # theta solves the moments
    ours = estimate_effect(
        df,
        outcome="y",
        treatment="t",
        covariates=["x1", "x2"],
        method=method,
        estimand=estimand,
        weights=weights,
        cluster=cluster,
        small_sample=False,  # the plain sandwich, as the reference computes it
    )
    assert ours.estimate == pytest.approx(theta[-1], rel=1e-9)
    groups = df["team"].to_numpy() if cluster else None
    assert ours.std_error == pytest.approx(_sandwich_se(moments, theta, len(df), groups), rel=1e-5)
    assert ours.weights == weights
    assert theta.size > 3 * k


def test_normalised_and_unnormalised_differ_and_methods_without_weights_ignore_it(data):
    for method, estimand in [("aipw", "ATE"), ("aipw", "ATT"), ("ipw", "ATE"), ("ipw", "ATT")]:
        norm = fit(data, method, estimand)
        unnorm = fit(data, method, estimand, weights="unnormalised")
        assert norm.weights == "normalised" and unnorm.weights == "unnormalised"
        assert abs(norm.estimate - unnorm.estimate) > 1e-6
        assert "unnormalised weights" in unnorm.summary()
    for method in ("difference", "regression"):
        a, b = fit(data, method), fit(data, method, weights="unnormalised")
        assert a == b and a.weights is None


def test_weights_option_is_checked(data):
    with pytest.raises(ValueError, match="normalised, unnormalised"):
        fit(data, "aipw", weights="hajek")
    with pytest.raises(ValueError, match="ATO"):
        fit(data, "ipw", "ATO", weights="unnormalised")


def test_normalised_weights_keep_the_arms_within_the_data():
    # One coached learner far out in x (score ~0.001) with a large outcome: the unnormalised
    # ATE adds (y - m1) / e of that learner divided by n, the normalised one by the sum of the
    # coached weights, which that same learner dominates.
    rng = np.random.default_rng(3)
    n = 400
    x = rng.normal(size=n)
    t = (rng.random(n) < expit(1.5 * x)).astype(int)
    y = 1.0 + 0.5 * t + 0.5 * x + rng.normal(0, 0.3, n)
    x[0], t[0], y[0] = -4.5, 1, 15.0
    df = pd.DataFrame({"y": y, "t": t, "x": x})
    kw = {"outcome": "y", "treatment": "t", "covariates": ["x"], "method": "ipw"}
    norm = estimate_effect(df, **kw)
    unnorm = estimate_effect(df, **kw, weights="unnormalised")
    # IPW arms: normalised ones are weighted means, so within [min y, max y] of their group
    assert y.min() - y.max() <= norm.estimate <= y.max() - y.min()
    assert abs(unnorm.estimate) > 3 * abs(norm.estimate)


# --------------------------------------------------------------------------------------------
# The nuisance fits agree with statsmodels
# --------------------------------------------------------------------------------------------


def test_propensity_model_is_statsmodels_logit(data):
    from lcstats.estimation.effects import _design, fit_propensity

    x, names = _design(data, COVS)
    t = data["t"].to_numpy(dtype=float)
    ref = sm.Logit(t, x).fit(disp=0, method="newton", maxiter=100)
    ours = fit_propensity(t, x, names)
    np.testing.assert_allclose(ours.params, ref.params, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours.score, ref.predict(), rtol=1e-10)
    np.testing.assert_allclose(ours.hessian_inv, ref.normalized_cov_params, rtol=1e-8)


@pytest.mark.parametrize("design", ["plain", "polynomial", "collinear"])
def test_outcome_model_is_least_squares(data, design):
    # Solved from the scaled k x k cross-product with one refinement step; a badly scaled,
    # nearly collinear polynomial design (condition number of X about 5e7) and an exactly
    # collinear one included.
    x1 = data["x1"].to_numpy() + 3.0
    cols = [np.ones(len(data)), x1, data["x2"].to_numpy()]
    if design == "polynomial":
        cols += [x1**2 * 50, x1**3 * 1000, x1**4 * 1e4]
    if design == "collinear":
        cols += [2 * x1 + 1]
    x = np.column_stack(cols)
    y = data["y"].to_numpy()
    mask = data["t"].to_numpy() == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # statsmodels warns about the collinear design
        ref = sm.OLS(y[mask], x[mask]).fit()
    rank = int(np.linalg.matrix_rank(x))
    ours = fit_outcome(y, x, mask, [f"c{j}" for j in range(x.shape[1])], rank=rank, group="g")
    np.testing.assert_allclose(ours.fitted, x @ ref.params, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(ours.resid[mask], ref.resid, atol=1e-9)
    if design != "collinear":
        np.testing.assert_allclose(ours.xtx_inv, ref.normalized_cov_params, rtol=1e-6)


def test_estimate_effects_shares_fits_without_changing_any_estimate(data):
    from lcstats.estimation.effects import _fit_methods, _Request

    for estimand in ("ATE", "ATT"):
        req = _Request("y", "t", tuple(COVS), estimand, None, 0.05, None, "normalised")
        together = _fit_methods(data, methods=("difference", "regression", "ipw", "aipw"), req=req)
        for fitted in together:
            alone = fit(data, fitted.estimate.method, estimand)
            assert fitted.estimate == alone


def test_no_weight_note_for_small_groups_with_ordinary_weights():
    # 15 coached learners with ordinary weights: each holds over 5% of the coached group's
    # weight, as it would with equal weights; that is not a learner dominating the estimate.
    rng = np.random.default_rng(2)
    n = 300
    x = rng.normal(size=n)
    t = np.zeros(n, dtype=int)
    t[rng.choice(n, 15, replace=False)] = 1
    df = pd.DataFrame({"y": x + t + rng.normal(size=n), "t": t, "x": x})
    est = estimate_effect(df, outcome="y", treatment="t", covariates=["x"], method="aipw")
    assert not any("carries" in note for note in est.notes)


# --------------------------------------------------------------------------------------------
# Binary outcome: followed through, risk difference and risk ratio
# --------------------------------------------------------------------------------------------


def test_followed_through_uses_the_threshold_inclusively():
    from lcstats.estimation.analysis import followed_through

    shares = pd.DataFrame({"follow_through": [4 / 5, 3 / 4, np.nan, 1.0, 0.0, 7 / 9, 0.8 - 1e-6]})
    flag = followed_through(shares, share=0.8)
    assert flag.name == "followed_through"
    np.testing.assert_array_equal(flag.to_numpy(), [1.0, 0.0, np.nan, 1.0, 0.0, 0.0, 0.0])
    assert followed_through(shares, share=0.75).iloc[1] == 1.0  # 3 of 4 at 0.75
    with pytest.raises(ValueError, match="between 0 and 1"):
        followed_through(shares, share=1.5)
    with pytest.raises(ValueError, match="'nope'"):
        followed_through(shares, column="nope")


def _binary_programme(rng: np.random.Generator, n: int = 3000, teams: int = 300):
    """Learners with 2-8 action items, each on time with a logistic chance; 'followed through'
    when at least 80% are. Returns the data and, per learner, P(followed through) in each arm
    (exact binomial tails), so truths are averages of known probabilities."""
    team = rng.integers(teams, size=n)
    x1 = rng.normal(size=n)
    x2 = (rng.random(n) < 0.5).astype(float)
    u = rng.normal(0, 0.4, size=teams)[team]  # team effect on the outcome only
    t = (rng.random(n) < expit(-0.2 + 0.8 * x1 - 0.5 * x2)).astype(int)
    items = rng.integers(2, 9, size=n)
    need = np.ceil(0.8 * items - 1e-9)
    eta = 0.4 + 0.7 * x1 + 0.3 * x2 + u
    risk1 = stats.binom.sf(need - 1, items, expit(eta + 0.6))
    risk0 = stats.binom.sf(need - 1, items, expit(eta))
    on_time = rng.binomial(items, expit(eta + 0.6 * t))
    df = pd.DataFrame({"follow_through": on_time / items, "t": t, "x1": x1, "x2": x2, "team": team})
    return df, risk1, risk0, expit(-0.2 + 0.8 * x1 - 0.5 * x2)


def test_binary_effect_is_the_estimators_arms():
    from lcstats.estimation.analysis import estimate_binary_effect, followed_through
    from lcstats.estimation.sensitivity import evalue_rr

    df, *_ = _binary_programme(np.random.default_rng(1), n=1500)
    df = df.assign(followed_through=followed_through(df))
    kw = {"outcome": "followed_through", "treatment": "t", "covariates": ["x1", "x2"]}
    for estimand in ("ATE", "ATT"):
        res = estimate_binary_effect(df, estimand=estimand, cluster="team", **kw)
        plain = estimate_effect(df, estimand=estimand, cluster="team", **kw)
        assert res.risk_difference == plain  # the risk difference is the ordinary estimate
        assert res.risk_treated - res.risk_control == pytest.approx(plain.estimate, abs=1e-12)
        assert res.risk_ratio == pytest.approx(res.risk_treated / res.risk_control, rel=1e-12)
        assert res.rr_ci_low < res.risk_ratio < res.rr_ci_high
        # log scale: the interval is symmetric around log RR, with t(G - 1) quantiles
        crit = stats.t.ppf(0.975, plain.n_clusters - 1)
        assert math.log(res.rr_ci_high / res.risk_ratio) == pytest.approx(crit * res.log_std_error)
        ev = evalue_rr(res.risk_ratio, res.rr_ci_low, res.rr_ci_high)
        assert (res.evalue.point, res.evalue.ci_limit) == (ev.point, ev.ci_limit)
        assert res.evalue.outcome == "followed_through" and res.evalue.treatment == "t"
        if estimand == "ATT":  # the treated arm is the coached learners' own share
            assert res.risk_treated == pytest.approx(df.loc[df.t == 1, "followed_through"].mean())
    frame = res.to_frame()
    assert frame["measure"].tolist() == ["risk_difference", "risk_ratio"]
    assert frame["std_error"].isna().tolist() == [False, True]
    assert frame["log_std_error"].isna().tolist() == [True, False]
    assert "followed through" in res.reading() and "risk ratio" in res.reading()
    assert "<table" in res._repr_html_()


def test_binary_log_risk_ratio_standard_error_matches_the_sandwich():
    # Normalised AIPW (ATE) on a 0/1 outcome; parameters (a1, d1, a0, d0, log RR).
    from lcstats.estimation.analysis import estimate_binary_effect

    df = _reference_data(seed=5, n=400, binary=True)
    x, y, t, theta = _reference_estimate("aipw", "ATE", "normalised", df)
    a1, d1, a0, d0 = theta[-5:-1]
    theta[-1] = math.log((a1 + d1) / (a0 + d0))

    def moments(th):
        cols, e, m1, m0, p = _nuisance_moments(th, x, y, t)
        w1, w0 = t / e, (1 - t) / (1 - e)
        log_rr = np.full_like(y, math.log((p[0] + p[1]) / (p[2] + p[3])) - p[4])
        own = [m1 - p[0], w1 * (y - m1 - p[1]), m0 - p[2], w0 * (y - m0 - p[3]), log_rr]
        return np.column_stack([*cols, *own])

    res = estimate_binary_effect(
        df, outcome="y", treatment="t", covariates=["x1", "x2"], small_sample=False
    )
    assert math.log(res.risk_ratio) == pytest.approx(theta[-1], rel=1e-9)
    assert res.log_std_error == pytest.approx(_sandwich_se(moments, theta, len(df)), rel=1e-5)


def test_binary_outcome_must_be_zero_one(data):
    from lcstats.estimation.analysis import estimate_binary_effect

    with pytest.raises(ValueError, match="coded 0/1"):
        estimate_binary_effect(data, outcome="y", treatment="t", covariates=COVS)


@pytest.mark.slow
def test_binary_effect_recovers_the_truth_and_covers_it():
    # 200 simulated programmes of 3,000 learners in 300 teams: risk difference and risk ratio
    # (ATE and ATT, AIPW, clustered) against truths that are averages of exact binomial tails
    # over 2 million learners drawn from the same population.
    from lcstats.estimation.analysis import estimate_binary_effect, followed_through

    _, r1, r0, e = _binary_programme(np.random.default_rng(0), n=2_000_000, teams=200_000)
    truth = {
        "ATE": (r1.mean(), r0.mean()),
        "ATT": (np.sum(e * r1) / e.sum(), np.sum(e * r0) / e.sum()),
    }
    rng = np.random.default_rng(20261201)
    rows = []
    for _ in range(200):
        df, *_ = _binary_programme(rng)
        df = df.assign(followed_through=followed_through(df))
        for estimand, (p1, p0) in truth.items():
            res = estimate_binary_effect(
                df,
                outcome="followed_through",
                treatment="t",
                covariates=["x1", "x2"],
                estimand=estimand,
                cluster="team",
            )
            rd = res.risk_difference
            rows.append(
                {
                    "estimand": estimand,
                    "rd_error": rd.estimate - (p1 - p0),
                    "rd_se": rd.std_error,
                    "rd_covered": rd.ci_low <= p1 - p0 <= rd.ci_high,
                    "log_rr_error": math.log(res.risk_ratio) - math.log(p1 / p0),
                    "log_rr_se": res.log_std_error,
                    "rr_covered": res.rr_ci_low <= p1 / p0 <= res.rr_ci_high,
                }
            )
    for estimand, g in pd.DataFrame(rows).groupby("estimand"):
        for scale in ("rd", "log_rr"):
            err, se = g[f"{scale}_error"], g[f"{scale}_se"]
            assert abs(err.mean()) < 3 * err.std() / math.sqrt(len(err)), (estimand, scale)
            assert 0.85 < se.mean() / err.std() < 1.2, (estimand, scale)
        assert 0.91 <= g["rd_covered"].mean() <= 0.99, estimand
        assert 0.91 <= g["rr_covered"].mean() <= 0.99, estimand


def test_leverages_are_the_hat_matrix_diagonals(data):
    # The small-sample correction divides residuals by 1 - h: h must be the diagonal of the hat
    # matrix of each model (least squares in a group; the logit's weighted one).
    from lcstats.estimation.effects import _design, _Sample

    x, names = _design(data, COVS)
    t = data["t"].to_numpy(dtype=float)
    s = _Sample(data["y"].to_numpy(), t, x, names, None)
    s.propensity("ATE")
    s.outcome_model(0)
    x0 = x[t == 0]
    hat0 = x0 @ np.linalg.inv(x0.T @ x0) @ x0.T
    np.testing.assert_allclose(s.leverage("outcome0")[t == 0], np.diag(hat0), rtol=1e-9)
    assert (s.leverage("outcome0")[t == 1] == 0).all()
    e = s.fitted_scores()
    root = x * np.sqrt(e * (1 - e))[:, None]
    hat = root @ np.linalg.inv(root.T @ root) @ root.T
    np.testing.assert_allclose(s.leverage("logit"), np.diag(hat), rtol=1e-9)
    assert s.leverage("logit").sum() == pytest.approx(x.shape[1])  # trace = parameters


@pytest.mark.parametrize(
    "groups",
    [
        np.array([7.0, 2.0, 7.0, 4.0, 0.0]),  # the diagnostics' codes: small whole numbers
        np.array([3, 10**9, 3, 5]),  # too far apart to count: factorised
        np.array([1.0, np.nan, 2.0, 1.0]),  # a missing cluster
        np.array([1.5, 2.0, 1.5]),
        np.array([-1, 3, 3, 0]),
        np.array(["b", "a", "b"], dtype=object),
    ],
)
def test_cluster_codes_are_those_of_factorize(groups):
    from lcstats.estimation.effects import _cluster_codes

    expected = pd.factorize(groups, sort=True)[0]
    np.testing.assert_array_equal(_cluster_codes(groups), expected)
