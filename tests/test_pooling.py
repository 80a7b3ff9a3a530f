"""Pooled evidence (random-effects meta-analysis) against metafor, R meta and statsmodels.

Every reference number below names the R call and the file it was published in. The data are
embedded here (not read from statsmodels' test files) so the tests do not depend on them.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose
from scipy import stats
from statsmodels.stats.meta_analysis import combine_effects, effectsize_2proportions

from lcstats.core.errors import EstimationError
from lcstats.data.load import load_programme
from lcstats.estimation.effects import EffectEstimate, estimate_effect
from lcstats.estimation.pooling import PooledEffect, cohort_estimates, pool_effects
from lcstats.outcomes.learner import learner_outcomes
from tests.conftest import EXAMPLE

# metafor's dat.bcg: 13 trials of the BCG vaccine (Colditz et al. 1994), 2x2 tables.
TPOS = np.array([4, 6, 3, 62, 33, 180, 8, 505, 29, 17, 186, 5, 27])
TNEG = np.array([119, 300, 228, 13536, 5036, 1361, 2537, 87886, 7470, 1699, 50448, 2493, 16886])
CPOS = np.array([11, 29, 11, 248, 47, 372, 10, 499, 45, 65, 141, 3, 29])
CNEG = np.array([128, 274, 209, 12619, 5761, 1079, 619, 87892, 7232, 1600, 27197, 2338, 17825])

# Kacker (2004) interlaboratory data, as in statsmodels/stats/tests/results/results_meta.py
KACKER_Y = np.array([61.0, 61.4, 62.21, 62.3, 62.34, 62.6, 62.7, 62.84, 65.9])
KACKER_V = np.array([0.2025, 1.2100, 0.0900, 0.2025, 0.3844, 0.5625, 0.0676, 0.0225, 1.8225])

# metafor's dat.fine1993 (events/totals, second outcome), as in results_meta.results_or_dl_hk
FINE_EV_E = np.array([18, 22, 21, 14, 42, 80, 13, 37, 23, 19, 106, 170, 34, 18, 13, 12, 42])
FINE_N_E = np.array([19, 34, 72, 22, 70, 183, 26, 61, 36, 45, 246, 386, 59, 45, 14, 26, 74])
FINE_EV_C = np.array([12, 12, 15, 5, 13, 33, 18, 30, 12, 14, 76, 46, 17, 3, 14, 10, 40])
FINE_N_C = np.array([22, 35, 68, 20, 32, 94, 50, 55, 25, 35, 208, 141, 32, 15, 18, 19, 75])

PUBLISHED = 5e-5  # numbers published to 4 decimals


def frame(y: np.ndarray, v: np.ndarray, outcome: str = "log_ratio") -> pd.DataFrame:
    return pd.DataFrame({"estimate": y, "std_error": np.sqrt(v), "outcome": outcome})


@pytest.fixture(scope="module")
def bcg() -> pd.DataFrame:
    # == metafor: escalc(measure="RR", ai=tpos, bi=tneg, ci=cpos, di=cneg, data=dat.bcg)
    y, v = effectsize_2proportions(TPOS, TPOS + TNEG, CPOS, CPOS + CNEG, statistic="risk-ratio")
    return frame(y, v)


# ----------------------------------------------------------------------------------------------
# Published reference numbers


def test_bcg_dersimonian_laird_matches_metafor(bcg):
    p = pool_effects(bcg, method="dl")
    # metafor tests/testthat/test_misc_metan_vs_rma.uni_with_dat.bcg.r: rma(yi, vi, method="DL")
    assert_allclose(p.estimate, -0.7141, atol=PUBLISHED)
    assert_allclose([p.ci_low, p.ci_high], [-1.0644, -0.3638], atol=PUBLISHED)
    assert_allclose(p.estimate / p.std_error, -3.9952, atol=PUBLISHED)  # zval
    assert_allclose(p.tau2, 0.3088, atol=PUBLISHED)
    assert_allclose(100 * p.i2, 92.1173, atol=PUBLISHED)  # I2 92.12% (DL; 92.22% is REML)
    assert_allclose(
        np.exp([p.estimate, p.ci_low, p.ci_high]), [0.4896, 0.3449, 0.6950], atol=PUBLISHED
    )
    # same file, rma(yi, vi, method="FE"): QE (Cochran's Q does not depend on tau²)
    assert_allclose(p.q, 152.2330, atol=PUBLISHED)
    assert p.k == 13 and p.q_df == 12 and p.q_p_value < 1e-20


def test_bcg_paule_mandel_matches_metafor(bcg):
    p = pool_effects(bcg, method="pm")
    # metafor tests/testthat/test_misc_rma_uni.r: rma(yi, vi, method="DLIT") and "SJIT" -> tau2
    # 0.3181 (iterated DL and SJ converge to the Paule-Mandel solution)
    assert_allclose(p.tau2, 0.3181, atol=PUBLISHED)
    # metafor's I² = tau² / (tau² + s²) (not statsmodels' Q-based i2, which ignores tau²)
    w = 1 / bcg["std_error"].to_numpy() ** 2
    s2 = 12 / (w.sum() - (w**2).sum() / w.sum())
    assert_allclose(p.i2, p.tau2 / (p.tau2 + s2), rtol=1e-12)
    assert p.i2 > 0.92


@pytest.mark.parametrize(
    "method, tau, mu, se",
    # metafor tests/testthat/test_analysis_example_dersimonian2007.r (DerSimonian & Kacker 2007,
    # Tables 3-4, CLASP trials): PM tau 0.3681, mu -0.3811, se 0.2060; DL 0.2323, -0.3240, 0.1540
    [("pm", 0.3681, -0.3811, 0.2060), ("dl", 0.2323, -0.3240, 0.1540)],
)
def test_clasp_matches_dersimonian_kacker(method, tau, mu, se):
    n1 = np.array([156, 303, 565, 1570, 103, 4659])
    n2 = np.array([74, 303, 477, 1565, 105, 4650])
    a = np.array([5, 5, 12, 69, 9, 313])
    c = np.array([8, 17, 9, 94, 11, 352])
    y, v = effectsize_2proportions(a, n1, c, n2, statistic="odds-ratio")  # escalc("OR", ...)
    p = pool_effects(frame(y, v), method=method)
    assert_allclose([p.tau, p.estimate, p.std_error], [tau, mu, se], atol=PUBLISHED)


def test_kacker_paule_mandel_matches_metafor_to_many_digits():
    p = pool_effects(frame(KACKER_Y, KACKER_V), method="pm")
    # statsmodels results_meta.exk1_metafor: rma(y, v, method="PM", control=list(tol=1e-9))
    assert_allclose(p.estimate, 62.4076199113286, rtol=1e-10)
    assert_allclose(p.std_error, 0.338030602684471, rtol=1e-8)
    assert_allclose([p.ci_low, p.ci_high], [61.7450921043947, 63.0701477182625], rtol=1e-10)
    assert_allclose(p.tau2, 0.705395309224248, rtol=1e-8)
    assert_allclose(p.q, 24.801897741835, rtol=1e-10)  # QE
    assert_allclose(p.q_p_value, 0.00167935146372742, rtol=1e-8)  # QEp
    assert_allclose(100 * p.i2, 83.7218626490482, rtol=1e-8)  # I2 (statsmodels' own i2: 67.7)
    assert_allclose(p.h2, 6.14320900751909, rtol=1e-8)  # H2


def test_kacker_dersimonian_laird_matches_metafor():
    p = pool_effects(frame(KACKER_Y, KACKER_V), method="dl")
    # statsmodels results_meta.exk1_dl: rma(y, v, method="DL", control=list(tol=1e-9))
    assert_allclose(p.estimate, 62.3901386044504, rtol=1e-12)
    assert_allclose(p.std_error, 0.245749668040304, rtol=1e-10)
    assert_allclose([p.ci_low, p.ci_high], [61.9084781058787, 62.8717991030221], rtol=1e-12)
    assert_allclose(p.tau2, 0.288049246973751, rtol=1e-10)
    assert_allclose(100 * p.i2, 67.744403741711, rtol=1e-10)
    assert_allclose(p.h2, 3.10023721772938, rtol=1e-10)


def test_hartung_knapp_and_prediction_interval_match_r_meta():
    y, v = effectsize_2proportions(FINE_EV_E, FINE_N_E, FINE_EV_C, FINE_N_C, statistic="odds-ratio")
    p = pool_effects(frame(y, v), method="dl", hartung_knapp=True)
    # statsmodels results_meta.results_or_dl_hk: R meta 4.11-0, metabin(e2i, nei, c2i, nci,
    # sm="OR", method.tau="DL", hakn=TRUE, Q.Cochrane=FALSE, backtransf=FALSE) on dat.fine1993
    assert_allclose(p.estimate, 0.429520368698268, rtol=1e-10)  # TE_random
    assert_allclose(p.std_error, 0.0915952752397692, rtol=1e-10)  # seTE_random (HKSJ)
    assert_allclose([p.ci_low, p.ci_high], [0.235347059333852, 0.623693678062684], rtol=1e-10)
    assert_allclose(p.tau2, 0.0016783981912744, rtol=1e-10)
    assert_allclose([p.q, p.q_p_value], [16.181374262823, 0.440375456698129], rtol=1e-10)
    assert_allclose(p.i2, 0.0112088293538659, rtol=1e-8)  # I2 (a fraction in R meta)
    # prediction interval: t with k - 2 df on sqrt(tau² + SE²) (lower_predict, upper_predict)
    assert_allclose([p.pi_low, p.pi_high], [0.215650965184522, 0.643389772212014], rtol=1e-12)
    assert p.hartung_knapp and "Hartung-Knapp" in p.summary()


@pytest.mark.parametrize("method, sm_method", [("dl", "chi2"), ("pm", "iterated")])
def test_agrees_with_statsmodels_combine_effects(rng, method, sm_method):
    """Without truncation our numbers are statsmodels' (we add I², PI, truncation, wording)."""
    y = rng.normal(0.1, 0.12, size=8)
    v = rng.uniform(0.0004, 0.002, size=8)
    p = pool_effects(frame(y, v, "follow_through"), method=method)
    res = combine_effects(y, v, method_re=sm_method, atol=1e-10, maxiter=200)
    assert res.tau2 > 0  # heterogeneous draws: nothing truncated
    ci = res.conf_int(use_t=False)[1]
    assert_allclose(
        [p.estimate, p.std_error, p.ci_low, p.ci_high, p.tau2, p.q],
        [res.mean_effect_re, res.sd_eff_w_re, ci[0], ci[1], res.tau2, res.q],
        rtol=1e-10,
    )
    assert_allclose(p.studies["weight"], res.weights_rel_re, rtol=1e-10)
    half = stats.t.isf(0.025, 6) * math.sqrt(res.tau2 + res.sd_eff_w_re**2)
    assert_allclose([p.pi_low, p.pi_high], [p.estimate - half, p.estimate + half], rtol=1e-12)


# ----------------------------------------------------------------------------------------------
# Edge cases


def test_homogeneous_studies_truncate_tau2_at_zero():
    # Four studies that differ less than chance: Q = 0.546875 < df = 3, so statsmodels' DL tau²
    # is negative. By hand: equal SEs 0.02 -> fixed-effect mean = plain mean = 0.10875 and
    # SE = 0.02 / sqrt(4) = 0.01; Q = sum((y - 0.10875)^2) / 0.0004
    #   = (0.00875² + 0.00125² + 0.01125² + 0.00375²) / 0.0004 = 0.00021875 / 0.0004 = 0.546875.
    y = np.array([0.10, 0.11, 0.12, 0.105])
    v = np.full(4, 0.02**2)
    assert combine_effects(y, v, method_re="chi2").tau2 < 0  # the pitfall this guards against
    for method in ("dl", "pm"):
        p = pool_effects(frame(y, v, "follow_through"), method=method)
        assert p.tau2 == 0 and p.i2 == 0 and p.h2 == 1
        assert_allclose([p.estimate, p.std_error, p.q], [0.10875, 0.01, 0.546875], rtol=1e-12)
        assert_allclose(p.studies["weight"], 0.25)
        # PI = mu ± t(0.975, 2 df) * sqrt(0 + 0.01²) = 0.10875 ± 4.302653 * 0.01
        assert_allclose(
            [p.pi_low, p.pi_high], [0.10875 - 0.04302653, 0.10875 + 0.04302653], atol=1e-8
        )
        assert "agree" in p.reading()


def test_one_study_is_not_pooled_and_says_so():
    est = EffectEstimate(
        outcome="skills_gap", treatment="coached", estimand="ATE", method="aipw",
        estimate=-0.20, std_error=0.023, ci_low=-0.24, ci_high=-0.15, p_value=1e-6,
        n_treated=300, n_control=400,
    )  # fmt: skip
    p = pool_effects([est], labels=["Leaders 2025"])
    assert (p.k, p.estimate, p.ci_low, p.ci_high) == (1, -0.20, -0.24, -0.15)
    assert all(math.isnan(x) for x in (p.tau2, p.i2, p.q, p.pi_low, p.pi_high))
    assert p.reading() == (
        "Only 1 programme, so nothing was pooled: in it coaching narrowed the skills gap by about "
        "0.20 points (95% interval 0.15 to 0.24 points)."
    )
    assert "nothing to pool" in p.notes[0]
    assert list(p.forest_frame()["kind"]) == ["study", "pooled"]
    assert p.to_frame()["n_treated"].tolist() == [300, 300]


def test_two_studies_have_no_prediction_interval_and_say_so():
    p = pool_effects(
        pd.DataFrame({"estimate": [0.08, 0.12], "std_error": [0.02, 0.03]}, index=["A", "B"]),
        outcome="follow_through",
    )
    assert p.k == 2 and math.isnan(p.pi_low) and math.isnan(p.pi_high)
    assert "no range can be given for a new programme" in p.reading()
    assert "at least 3" in p.notes[0]
    assert "prediction" not in set(p.forest_frame()["kind"])
    assert list(p.studies["label"]) == ["A", "B"]
    json.dumps(p.as_dict(), allow_nan=False)  # NaN limits become null


# ----------------------------------------------------------------------------------------------
# Wording: the number and the interval read the same way


def _numbers(text: str) -> list[float]:
    return [float(x) for x in re.findall(r"-?\d+\.\d+", text)]


def test_reading_of_programmes_that_differ(rng):
    y = np.array([0.02, 0.14, 0.08, 0.12, 0.05, 0.10])
    p = pool_effects(frame(y, np.full(6, 0.02**2), "follow_through"))
    assert p.i2 > 0.5
    first = (
        f"Across 6 programmes coaching raised follow-through by about {100 * p.estimate:.1f} "
        f"percentage points (95% interval {100 * p.ci_low:.1f} to {100 * p.ci_high:.1f} "
        "percentage points); the programmes differ a good deal: in a new programme expect "
    )
    assert p.reading().startswith(first), p.reading()
    assert p.pi_low < 0 < p.pi_high
    assert p.reading().endswith(
        f"anything from a fall of {-100 * p.pi_low:.1f} percentage points to a rise of "
        f"{100 * p.pi_high:.1f} percentage points."
    )


def test_skills_gap_reading_keeps_sign_and_interval_the_same_way():
    y = np.array([-0.22, -0.18, -0.20, -0.21, -0.19])
    p = pool_effects(frame(y, np.full(5, 0.04**2), "skills_gap"), scale=(1, 5))
    text = p.reading()
    assert "narrowed the skills gap by about 0.20 points on the 1-5 skill scale" in text
    assert "-" not in text.replace("1-5", "")  # no negative number anywhere
    low, high = _numbers(text.split("interval ")[1])[:2]
    assert low < high and low == pytest.approx(-p.ci_high, abs=0.005)
    assert "expect a narrowing of between" in text


def test_unclear_skills_gap_reading_names_both_directions():
    y = np.array([-0.20, 0.15, -0.05, -0.10, 0.02])
    p = pool_effects(frame(y, np.array([0.04, 0.05, 0.04, 0.05, 0.05]) ** 2, "skills_gap"))
    assert p.ci_low < 0 < p.ci_high
    text = p.reading()
    assert text.startswith(
        "Across 5 programmes we cannot tell whether coaching changed the skills gap"
    )
    assert (
        "from a narrowing of" in text
        and "to a widening of" in text
        and "includes no effect" in text
    )


# ----------------------------------------------------------------------------------------------
# Frames and display


def test_frames_are_tidy(bcg):
    p = pool_effects(bcg, labels=[f"trial {i}" for i in range(1, 14)])
    t = p.to_frame()
    assert list(t.columns[:12]) == [
        "label", "kind", "estimate", "std_error", "ci_low", "ci_high", "weight",
        "weight_fixed", "n_treated", "n_control", "pi_low", "pi_high",
    ]  # fmt: skip
    assert len(t) == 14 and t["kind"].tolist() == ["study"] * 13 + ["pooled"]
    assert_allclose(t.loc[t["kind"] == "study", "weight"].sum(), 1.0)
    assert t.iloc[-1]["pi_low"] == p.pi_low and math.isnan(t.iloc[0]["pi_low"])
    f = p.forest_frame()
    assert f["kind"].tolist()[-2:] == ["pooled", "prediction"]
    assert f.iloc[-1]["ci_low"] == p.pi_low  # not a known outcome: no rescaling
    assert re.fullmatch(r"-?\d+\.\d{2} \(-?\d+\.\d{2} to -?\d+\.\d{2}\)", f.iloc[0]["text"])


def test_forest_frame_of_follow_through_is_in_percentage_points():
    p = pool_effects(frame(np.array([0.06, 0.10, 0.08]), np.full(3, 0.02**2), "follow_through"))
    f = p.forest_frame()
    assert_allclose(f.loc[f["kind"] == "pooled", "estimate"], 100 * p.estimate)
    assert set(f["unit"]) == {"percentage points"}


def test_displays_escape_labels_and_return_text():
    p = pool_effects(
        frame(np.array([0.1, 0.2, 0.15]), np.full(3, 0.001), "follow_through"),
        labels=["<b>North</b>", "South & East", "West"],
    )
    html = p._repr_html_()
    assert "<b>North" not in html and "&lt;b&gt;North" in html
    assert isinstance(p.summary(), str) and "prediction interval" in p.summary()
    assert repr(p) == p.summary()
    json.dumps(p.as_dict(), allow_nan=False)


# ----------------------------------------------------------------------------------------------
# Validation


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"method": "reml"}, "choose one of dl, pm"),
        ({"alpha": 1.5}, "alpha"),
        ({"labels": ["only one"]}, "labels has 1 entries for 3 estimates"),
    ],
)
def test_bad_options_are_refused(kwargs, message):
    studies = frame(np.array([0.1, 0.2, 0.15]), np.full(3, 0.001), "follow_through")
    with pytest.raises(ValueError, match=message):
        pool_effects(studies, **kwargs)


def test_bad_estimates_are_refused():
    with pytest.raises(ValueError, match="no column.*std_error"):
        pool_effects(pd.DataFrame({"estimate": [0.1]}), outcome="follow_through")
    with pytest.raises(ValueError, match="positive, finite std_error"):
        pool_effects(frame(np.array([0.1, 0.2]), np.array([0.001, 0.0]), "follow_through"))
    with pytest.raises(ValueError, match="pool one outcome at a time"):
        pool_effects(pd.DataFrame({"estimate": [0.1, -0.2], "std_error": [0.02, 0.03],
                                   "outcome": ["follow_through", "skills_gap"]}))  # fmt: skip
    with pytest.raises(ValueError, match="say which outcome"):
        pool_effects(pd.DataFrame({"estimate": [0.1], "std_error": [0.02]}))
    with pytest.raises(ValueError, match="at least one"):
        pool_effects([])


# ----------------------------------------------------------------------------------------------
# Cohorts within one evaluation (the example programme; truth from data/example/truth.json)

COVARIATES = ["tenure_months", "engagement", "role", "cohort", "manager_coached"]


@pytest.fixture(scope="module")
def example_outcomes():
    prog = load_programme(
        EXAMPLE / "learners.csv", EXAMPLE / "action_items.csv", EXAMPLE / "skill_assessments.csv"
    )
    return learner_outcomes(prog, as_of="2026-06-30")


@pytest.fixture(scope="module")
def truth() -> dict:
    doc = json.loads((EXAMPLE / "truth.json").read_text(encoding="utf-8"))
    return {
        e["outcome"]: e["value"]
        for e in doc["effects"]
        if e["treatment"] == "coached" and e["estimand"] == "ATE"
    }


@pytest.mark.parametrize("outcome", ["follow_through", "skills_gap"])
def test_cohorts_are_estimated_and_pooled(example_outcomes, truth, outcome):
    p = cohort_estimates(
        example_outcomes, outcome=outcome, covariates=COVARIATES, cluster="team_id"
    )
    assert isinstance(p, PooledEffect) and p.noun == "cohort"
    assert list(p.studies["label"]) == ["2025-Q3", "2025-Q4", "2026-Q1", "2026-Q2"]
    assert p.ci_low < truth[outcome] < p.ci_high
    assert p.reading().startswith("Across 4 cohorts coaching")
    # each cohort is the evaluation's estimator on that cohort, without the cohort covariate
    data = example_outcomes.data
    covs = [c for c in COVARIATES if c != "cohort"] + (
        ["skills_gap_pre"] if outcome == "skills_gap" else []
    )
    one = data[data["cohort"] == "2026-Q1"].dropna(subset=[outcome, *covs])
    est = estimate_effect(
        one, outcome=outcome, treatment="coached", covariates=covs, cluster="team_id"
    )
    row = p.studies.set_index("label").loc["2026-Q1"]
    assert_allclose([row["estimate"], row["std_error"]], [est.estimate, est.std_error], rtol=1e-10)
    assert row["n_treated"] == est.n_treated


def test_small_cohorts_are_left_out_and_named(example_outcomes):
    # coached learners per cohort: 2025-Q3 132, 2025-Q4 185, 2026-Q1 231, 2026-Q2 258 (before
    # learners without follow-through are dropped), so 200 keeps the last two
    p = cohort_estimates(
        example_outcomes, outcome="follow_through", covariates=COVARIATES, min_group_size=200
    )
    assert list(p.studies["label"]) == ["2026-Q1", "2026-Q2"]
    left = [n for n in p.notes if "left out" in n]
    assert len(left) == 2 and "2025-Q3" in left[0] and "fewer than 200" in left[0]
    assert not any(re.search(r"\b1[0-9]{2}\b", n) for n in left)  # counts are not shown
    with pytest.raises(EstimationError, match="no cohort has at least 300"):
        cohort_estimates(example_outcomes, outcome="follow_through", min_group_size=300)
    with pytest.raises(ValueError, match="column 'wave' not in data"):
        cohort_estimates(example_outcomes, outcome="follow_through", cohort="wave")
    with pytest.raises(ValueError, match="pooling='reml' is not allowed; choose one of dl, pm"):
        cohort_estimates(example_outcomes, outcome="follow_through", pooling="reml")
    with pytest.raises(ValueError, match="min_group_size=0"):
        cohort_estimates(example_outcomes, outcome="follow_through", min_group_size=0)


def test_an_evaluation_pools_its_cohorts_and_reports_them(example_evaluation):
    from lcstats.estimation.pooling import cohort_estimates
    from lcstats.reporting.report import build_report
    from lcstats.reporting.results import results_document

    ev = example_evaluation
    params = ev.params
    pooled = ev.diagnostics.cohorts["follow_through"]
    direct = cohort_estimates(
        ev.outcomes,
        outcome="follow_through",
        treatment=params.treatment,
        covariates=params.covariates,
        method=params.headline_method,
        estimand=params.estimand,
        cluster=params.cluster,
        alpha=params.alpha,
        min_group_size=params.min_group_size,
    )
    assert pooled.estimate == direct.estimate and pooled.k == ev.outcomes.data["cohort"].nunique()
    args = {k: v for k, v in ev.report_arguments("t").items() if k != "run_id"}
    block = results_document(**args)["diagnostics"]["across_cohorts"]["follow_through"]
    assert block["pooled"]["k"] == pooled.k and len(block["cohorts"]) == pooled.k
    html = build_report(**ev.report_arguments("t")).render()
    assert (
        "<strong>Across cohorts.</strong> Across 4 cohorts coaching raised follow-through" in html
    )
