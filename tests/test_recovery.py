"""Statistical validation against known truth.

1. The synthetic programme (`lcstats.data.simulate`): written in the data contract, read back with
   `load_programme`, turned into learner outcomes and estimated with `estimate_effects`; the
   adjusted estimates must recover the simulator's true effects and the naive difference must not.
2. A coverage study on a simpler confounded, clustered linear process with a known constant
   effect: the 95% intervals of every adjusted estimator must cover it about 95% of the time.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lcstats.data.load import load_programme
from lcstats.data.simulate import simulate_programme, write_programme
from lcstats.estimation.analysis import estimate_effects
from lcstats.estimation.effects import estimate_effect
from lcstats.outcomes.learner import learner_outcomes

COVARIATES = ("tenure_months", "engagement", "role", "cohort", "manager_coached")
ADJUSTED = ("regression", "ipw", "aipw")
SEEDS = (11, 12)


@pytest.fixture(scope="module", params=SEEDS, ids=lambda s: f"seed{s}")
def programme(request, tmp_path_factory):
    """A simulated programme of 2,500 learners, round-tripped through CSV and the loader."""
    sim = simulate_programme(n_learners=2500, seed=request.param)
    paths = write_programme(sim, tmp_path_factory.mktemp(f"programme{request.param}"))
    prog = load_programme(paths["learners"], paths["action_items"], paths["skill_assessments"])
    outcomes = learner_outcomes(prog, as_of=sim.truth["parameters"]["as_of"])
    effects = {
        estimand: estimate_effects(
            outcomes, covariates=COVARIATES, cluster="team_id", estimand=estimand
        )
        for estimand in ("ATE", "ATT")
    }
    return sim, outcomes, effects


@pytest.mark.parametrize("estimand", ["ATE", "ATT"])
@pytest.mark.parametrize("outcome", ["follow_through", "skills_gap"])
@pytest.mark.parametrize("method", ADJUSTED)
def test_adjusted_estimates_recover_the_truth(programme, method, outcome, estimand):
    sim, _, effects = programme
    est = effects[estimand].get(outcome, method)
    truth = sim.effect(outcome, "coached", estimand)
    assert est.estimand == estimand and est.cluster == "team_id"
    assert est.n_clusters == 250
    assert abs(est.estimate - truth) < 3 * est.std_error, (est.estimate, truth, est.std_error)
    # The effects are large enough to be detected at this size, in the right direction.
    assert np.sign(est.estimate) == np.sign(truth)
    assert est.p_value < 0.05


@pytest.mark.parametrize("estimand", ["ATE", "ATT"])
def test_naive_difference_is_confounded(programme, estimand):
    sim, _, effects = programme
    naive = effects[estimand].get("follow_through", "difference")
    truth = sim.effect("follow_through", "coached", estimand)
    # Engaged learners are both more often coached and better at follow-through.
    assert naive.estimate - truth > 3 * naive.std_error
    # Every adjusted estimate is closer to the truth than the naive one.
    for method in ADJUSTED:
        adjusted = effects[estimand].get("follow_through", method)
        assert abs(adjusted.estimate - truth) < abs(naive.estimate - truth) / 2


@pytest.mark.parametrize("outcome", ["follow_through", "skills_gap"])
def test_naive_difference_matches_the_simulator(programme, outcome):
    # Learner outcomes computed from the written tables agree with the simulator's own count.
    sim, _, effects = programme
    naive = effects["ATE"].get(outcome, "difference")
    assert naive.estimate == pytest.approx(sim.truth["naive_difference"][outcome], abs=2e-6)


def test_samples_and_covariates(programme):
    _, outcomes, effects = programme
    data = outcomes.data
    for outcome in ("follow_through", "skills_gap"):
        has = data[outcome].notna()
        for est in effects["ATE"].estimates:
            if est.outcome != outcome:
                continue
            assert est.n_treated == int(data.loc[has, "coached"].sum())
            assert est.n_control == int((has & (data["coached"] == 0)).sum())
            if est.method == "difference":
                assert est.covariates == ()
            elif outcome == "skills_gap":  # adjusted for its own baseline automatically
                assert est.covariates == (*COVARIATES, "skills_gap_pre")
            else:
                assert est.covariates == COVARIATES


# --------------------------------------------------------------------------------------------
# Coverage study
# --------------------------------------------------------------------------------------------

TAU = 0.5
N, CLUSTERS, REPLICATIONS = 600, 50, 500


def draw_clustered(rng: np.random.Generator) -> pd.DataFrame:
    """Confounded, clustered, linear outcome with a constant effect TAU (ATE = ATT = TAU).

    Teams share an observed covariate z, an outcome effect u and a selection effect v; v is
    independent of the outcome, so x1, x2 and z are the only confounders.
    """
    team = rng.integers(CLUSTERS, size=N)
    z = rng.normal(size=CLUSTERS)
    u = rng.normal(0.0, 0.8, size=CLUSTERS)
    v = rng.normal(0.0, 0.3, size=CLUSTERS)
    x1 = 0.5 * z[team] + rng.normal(size=N)
    x2 = (rng.random(N) < 0.4).astype(float)
    lin = -0.3 + 0.6 * x1 - 0.5 * x2 + 0.4 * z[team] + v[team]
    t = (rng.random(N) < 1.0 / (1.0 + np.exp(-lin))).astype(int)
    y = 1.0 + x1 + 0.5 * x2 + 0.7 * z[team] + TAU * t + u[team] + rng.normal(size=N)
    return pd.DataFrame({"y": y, "t": t, "x1": x1, "x2": x2, "z": z[team], "team": team})


def coverage_study(seed: int, replications: int) -> dict[tuple[str, str], dict[str, float]]:
    """Coverage, bias and calibration of each estimator over simulated data sets."""
    combos = [("difference", "ATE")] + [(m, e) for m in ADJUSTED for e in ("ATE", "ATT")]
    rng = np.random.default_rng(seed)
    rows: dict[tuple[str, str], list[tuple[float, float, bool]]] = {c: [] for c in combos}
    for _ in range(replications):
        df = draw_clustered(rng)
        for method, estimand in combos:
            est = estimate_effect(
                df,
                outcome="y",
                treatment="t",
                covariates=["x1", "x2", "z"],
                method=method,
                estimand=estimand,
                cluster="team",
            )
            rows[(method, estimand)].append(
                (est.estimate, est.std_error, est.ci_low <= TAU <= est.ci_high)
            )
    out = {}
    for combo, values in rows.items():
        a = np.array(values, dtype=float)
        out[combo] = {
            "coverage": float(a[:, 2].mean()),
            "bias": float(a[:, 0].mean() - TAU),
            "mean_se": float(a[:, 1].mean()),
            "sd": float(a[:, 0].std(ddof=1)),
        }
    return out


@pytest.fixture(scope="module")
def coverage():
    return coverage_study(seed=20261128, replications=REPLICATIONS)


@pytest.mark.slow
@pytest.mark.parametrize("estimand", ["ATE", "ATT"])
@pytest.mark.parametrize("method", ADJUSTED)
def test_interval_coverage(coverage, method, estimand):
    res = coverage[(method, estimand)]
    assert 0.90 <= res["coverage"] <= 0.99, res
    assert abs(res["bias"]) < 0.25 * res["mean_se"], res
    # Standard errors are calibrated: their average is close to the spread of the estimates.
    assert 0.8 < res["mean_se"] / res["sd"] < 1.25, res


@pytest.mark.slow
def test_naive_difference_is_biased_in_the_coverage_study(coverage):
    res = coverage[("difference", "ATE")]
    assert res["bias"] > 3 * res["mean_se"], res
    assert res["coverage"] < 0.2, res
