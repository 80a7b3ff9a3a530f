"""Time to follow-through: censored completion times, IPW Kaplan-Meier curves, Cox hazard ratio."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.duration.hazard_regression import PHReg
from statsmodels.duration.survfunc import SurvfuncRight

from lcstats.core.errors import EstimationError
from lcstats.estimation.survival import (
    HazardRatio,
    cluster_covariance,
    completion_curves,
    completion_hazard,
    completion_times,
    sample_units,
    weighted_km,
)

BASE_RATE = 0.05  # completions per day without coaching, at x = 0
X_EFFECT = 0.5


def _items(
    rng: np.random.Generator,
    *,
    n_learners: int = 600,
    per_learner: int = 4,
    hazard_ratio: float = 1.5,
    confounding: float = 0.0,
) -> pd.DataFrame:
    """Exponential completion times with a known hazard ratio, censored at a follow-up of 10-60 days.

    ``x`` raises the completion rate and, with ``confounding``, the chance of being coached.
    Times are whole days (rounded up), as `completion_times` gives them.
    """
    x = rng.normal(size=n_learners)
    coached = (rng.random(n_learners) < 1 / (1 + np.exp(-confounding * x))).astype(int)
    rate = BASE_RATE * np.exp(np.log(hazard_ratio) * coached + X_EFFECT * x)
    owner = np.repeat(np.arange(n_learners), per_learner)
    time = rng.exponential(1 / rate[owner])
    follow_up = rng.uniform(10, 60, size=owner.size)
    return pd.DataFrame(
        {
            "learner_id": owner.astype(str),
            "team_id": (owner // 10).astype(str),
            "coached": coached[owner],
            "x": x[owner],
            "days": np.ceil(np.minimum(time, follow_up)),
            "completed": (time <= follow_up).astype(int),
        }
    )


def test_completion_times_are_censored_at_the_as_of_date():
    items = pd.DataFrame(
        {
            "learner_id": ["a", "a", "b", "b"],
            "item_id": ["1", "2", "3", "4"],
            "created_on": pd.to_datetime(["2025-01-01", "2025-01-10", "2025-01-05", "2025-03-01"]),
            "due_on": pd.to_datetime(["2025-01-20", "2025-02-01", "2025-01-25", "2025-03-20"]),
            "completed_on": pd.to_datetime(["2025-01-04", "2025-02-20", None, None]),
        }
    )
    learners = pd.DataFrame({"learner_id": ["a", "b"], "coached": [1, 0], "team_id": ["T", "U"]})
    out = completion_times(items, learners, as_of="2025-02-10")
    assert out["item_id"].tolist() == ["1", "2", "3"]  # item 4 was created after the as-of date
    assert out["days"].tolist() == [3, 31, 36]  # item 2 was done after the as-of date: censored
    assert out["completed"].tolist() == [1, 0, 0]
    assert out["team_id"].tolist() == ["T", "T", "U"]
    # only the learner columns asked for; items of unknown learners are left out
    some = completion_times(items, learners.iloc[[1]], as_of="2025-02-10", columns=["coached"])
    assert some.columns.tolist() == ["learner_id", "item_id", "days", "completed", "coached"]
    assert some["item_id"].tolist() == ["3"] and some["coached"].tolist() == [0]
    with pytest.raises(ValueError, match="column\\(s\\) tenure not in the learners table"):
        completion_times(items, learners, as_of="2025-02-10", columns=["tenure"])


def test_cox_recovers_a_known_hazard_ratio(rng):
    items = _items(rng, n_learners=1500, hazard_ratio=1.5)
    hr = completion_hazard(items, covariates=["x"], cluster="team_id")
    assert isinstance(hr, HazardRatio)
    assert hr.ci_low < 1.5 < hr.ci_high
    assert hr.hazard_ratio == pytest.approx(1.5, rel=0.08)
    assert hr.n_items == 6000 and hr.n_events == items["completed"].sum()
    assert "1.5 times as fast" in hr.reading()
    assert hr.to_frame()["hazard_ratio"].iloc[0] == hr.hazard_ratio


def test_cox_equals_statsmodels_phreg_model_based_and_clustered(rng):
    items = _items(rng)
    exog = items[["coached", "x"]].to_numpy(dtype=float)
    model = PHReg(items["days"], exog, status=items["completed"], ties="efron")
    plain = model.fit()
    hr = completion_hazard(items, covariates=["x"], cluster=None)
    assert hr.log_hr == pytest.approx(plain.params[0])
    assert hr.std_error == pytest.approx(plain.bse[0])
    groups = pd.factorize(items["team_id"], sort=True)[0]
    robust = model.fit(groups=groups)
    clustered = completion_hazard(items, covariates=["x"], cluster="team_id")
    se = robust.bse[0] * np.sqrt(60 / 59)  # small-sample factor G / (G - 1)
    assert clustered.std_error == pytest.approx(se)
    assert clustered.std_error != pytest.approx(plain.bse[0])
    assert clustered.n_clusters == 60
    crit = stats.t.ppf(0.975, 59)
    assert clustered.ci_high == pytest.approx(np.exp(robust.params[0] + crit * se))


def test_fast_cluster_covariance_equals_statsmodels_robust_covariance(rng):
    items = _items(rng, n_learners=400)
    items["z"] = rng.normal(size=len(items))
    exog = items[["coached", "x", "z"]].to_numpy(dtype=float)
    days, event = items["days"].to_numpy(dtype=float), items["completed"].to_numpy(dtype=float)
    assert len(np.unique(days[event > 0])) < event.sum()  # tied event times
    groups = pd.factorize(items["team_id"], sort=True)[0]
    model = PHReg(days, exog, status=event, ties="efron")
    params = model.fit(groups=groups).params  # statsmodels keeps the groups on the model
    ours = cluster_covariance(model, params, groups)
    np.testing.assert_allclose(ours, model.robust_covariance(params), rtol=1e-9, atol=1e-14)


def test_a_cox_model_on_many_items_is_fitted_on_whole_teams_drawn_at_random(rng):
    items = _items(rng, n_learners=3000, hazard_ratio=1.5)  # 12,000 items in 300 teams
    full = completion_hazard(items, covariates=["x"])
    assert completion_hazard(items, covariates=["x"], max_items=12_000) == full  # not above
    hr = completion_hazard(items, covariates=["x"], max_items=4_000)
    assert 4_000 <= hr.n_items < 4_040 and hr.n_clusters == hr.n_items // 40
    assert hr.notes == (
        f"fitted on {hr.n_clusters} of 300 teams drawn at random ({hr.n_items:,} of 12,000 "
        "items) to bound the run time; the interval is that of this sample",
    )
    assert hr.as_dict()["notes"] == list(hr.notes)
    assert hr.ci_low < 1.5 < hr.ci_high and hr.std_error > full.std_error
    # the same draw whatever the order of the rows; whole teams
    shuffled = completion_hazard(
        items.sample(frac=1, random_state=3), covariates=["x"], max_items=4_000
    )
    assert shuffled.log_hr == pytest.approx(hr.log_hr, rel=1e-9)
    kept, _ = sample_units(items, "team_id", 4_000)
    sizes = items["team_id"].value_counts()
    assert (kept["team_id"].value_counts() == sizes[kept["team_id"].unique()]).all()
    learners, note = sample_units(items, "learner_id", 4_000)  # no cluster: learners
    assert "of 3,000 learners drawn at random" in note and len(learners) == 4_000
    with pytest.raises(ValueError, match="at least 1"):
        sample_units(items, "team_id", 0)


@pytest.mark.slow
def test_cox_intervals_cover_the_truth_in_simulations(rng):
    covered = []
    for _ in range(100):
        hr = completion_hazard(_items(rng, n_learners=300), covariates=["x"], cluster="team_id")
        covered.append(hr.ci_low <= 1.5 <= hr.ci_high)
    assert 0.89 <= np.mean(covered) <= 0.99  # 100 draws: MC SE 0.022 around 0.95


def test_readings_for_slower_and_unclear_completion():
    slower = HazardRatio("coached", 0.8, np.log(0.8), 0.05, 0.72, 0.88, 0.001, 100, 80, 20)
    assert "more slowly" in slower.reading()
    unclear = HazardRatio("coached", 1.1, np.log(1.1), 0.1, 0.9, 1.34, 0.3, 100, 80, 20)
    assert unclear.reading().startswith("We cannot tell")
    assert "<p>" in unclear._repr_html_() and "HR 1.100" in unclear.summary()


def _hand_weighted_km(days: np.ndarray, event: np.ndarray, w: np.ndarray) -> pd.Series:
    """S(t) = prod over event times of (1 - weighted events / weighted at risk)."""
    times = np.unique(days[event == 1])
    surv, s = [], 1.0
    for t in times:
        at_risk = w[days >= t].sum()
        s *= 1 - w[(days == t) & (event == 1)].sum() / at_risk
        surv.append(s)
    return pd.Series(surv, index=times)


def test_weighted_kaplan_meier_matches_a_hand_computation(rng):
    days = np.floor(rng.exponential(10, size=200))
    event = (rng.random(200) < 0.8).astype(float)
    w = rng.uniform(0.2, 3.0, size=200)
    curve = weighted_km(days, event, w).set_index("days")
    hand = _hand_weighted_km(days, event, w)
    np.testing.assert_allclose(1 - curve.loc[hand.index, "completed"], hand.to_numpy())
    assert curve["completed"].iloc[0] == 0 or curve.index[0] == 0


def test_unadjusted_curves_are_statsmodels_kaplan_meier(rng):
    items = _items(rng, n_learners=200)
    curves = completion_curves(items)
    for g in (0, 1):
        mask = items["coached"] == g
        sf = SurvfuncRight(items.loc[mask, "days"], items.loc[mask, "completed"])
        mine = curves.curves[curves.curves["group"] == g].set_index("days")["completed"]
        np.testing.assert_allclose(mine.loc[sf.surv_times].to_numpy(), 1 - sf.surv_prob)
    assert curves.medians[1] < curves.medians[0]  # coached learners finish sooner
    assert "Half of the coached learners' items" in curves.reading()


def _true_share_completed(days: float, rng: np.random.Generator) -> float:
    """Share completed within ``days`` in the whole population without coaching (no censoring)."""
    x = rng.normal(size=400_000)
    return float(np.mean(1 - np.exp(-BASE_RATE * np.exp(X_EFFECT * x) * days)))


def test_ipw_curves_remove_confounding_by_a_recorded_covariate(rng):
    items = _items(rng, n_learners=2000, hazard_ratio=1.0, confounding=1.5)
    naive = completion_curves(items).share_completed(20)
    adjusted = completion_curves(items, covariates=["x"])
    ipw = adjusted.share_completed(20)
    truth = _true_share_completed(20, rng)
    assert naive[1] - naive[0] > 0.08  # the coached have higher x, so finish sooner
    assert abs(ipw[1] - ipw[0]) < 0.03
    assert ipw[1] == pytest.approx(truth, abs=0.03)
    assert ipw[0] == pytest.approx(truth, abs=0.03)
    assert "adjusted for x" in adjusted.reading()
    assert "inverse probability weighted" in adjusted.summary()


def test_bad_inputs_are_refused(rng):
    items = _items(rng, n_learners=50)
    with pytest.raises(ValueError, match="not in the items table"):
        completion_hazard(items, covariates=["age"])
    with pytest.raises(ValueError, match="coded 0/1"):
        completion_curves(items.assign(coached=items["coached"] + 1))
    with pytest.raises(EstimationError, match="nothing to compare"):
        completion_hazard(items.assign(coached=1))
    with pytest.raises(EstimationError, match="no item was completed"):
        completion_hazard(items.assign(completed=0))
