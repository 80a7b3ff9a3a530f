"""E-values (lcstats.estimation.sensitivity) against the R package EValue (VanderWeele & Ding 2017).

R is not installed here: the reference numbers are the outputs printed in the EValue package's
README, vignette and help pages (and, where marked, a line-by-line port of its R source).
"""

from __future__ import annotations

import math

import pytest

from lcstats.estimation.effects import EffectEstimate
from lcstats.estimation.sensitivity import (
    EValue,
    control_sd,
    evalue_from_estimate,
    evalue_md,
    evalue_rr,
)


def test_risk_ratio_readme_example():
    # EValue README / vignette: evalues.RR(est = 10.73, lo = 8.02, hi = 14.36)
    # prints "E-values 20.94777 15.52336 NA"
    ev = evalue_rr(10.73, 8.02, 14.36)
    assert ev.point == pytest.approx(20.94777, abs=1e-5)
    assert ev.ci_limit == pytest.approx(15.52336, abs=1e-5)
    assert ev.rr_ci_limit == 8.02


def test_protective_risk_ratio_uses_the_upper_limit():
    # EValue vignette, leukemia example: evalues.RR(est = 0.80, lo = 0.71, hi = 0.91)
    # prints "E-values 1.809017 NA 1.428571"
    ev = evalue_rr(0.80, 0.71, 0.91)
    assert ev.point == pytest.approx(1.809017, abs=1e-5)
    assert ev.ci_limit == pytest.approx(1.428571, abs=1e-5)
    assert ev.rr_ci_limit == 0.91
    # symmetric: a protective RR has the E-value of its inverse
    assert ev.point == pytest.approx(evalue_rr(1 / 0.80).point, rel=1e-12)


def test_standardised_mean_difference_help_example():
    # EValue help page example evalues.MD(.5, .25): RR 1.576173 [1.01005, 2.459603],
    # E-values 2.529142 (estimate) and 1.110803 (lower limit) (port of the R source)
    ev = evalue_md(0.5, 0.25)
    assert ev.rr == pytest.approx(1.576173, abs=1e-5)
    assert ev.rr_low == pytest.approx(1.01005, abs=1e-5)
    assert ev.rr_high == pytest.approx(2.459603, abs=1e-5)
    assert ev.point == pytest.approx(2.529142, abs=1e-5)
    assert ev.ci_limit == pytest.approx(1.110803, abs=1e-5)
    assert ev.scale == "standardised_difference"


def test_rare_outcome_odds_ratio_is_treated_as_a_risk_ratio():
    # EValue vignette, paper example (Victora et al. 1987):
    # evalues.OR(est = 3.9, lo = 1.8, hi = 8.7, rare = TRUE) -> 7.263034 and 3.0 (port of the
    # R source); 1.8 + sqrt(1.8 * 0.8) = 3 exactly
    ev = evalue_rr(3.9, 1.8, 8.7)
    assert ev.point == pytest.approx(7.263034, abs=1e-5)
    assert ev.ci_limit == pytest.approx(3.0, abs=1e-12)


def test_interval_including_the_null_needs_no_confounding():
    ev = evalue_rr(1.3, 0.9, 1.8)
    assert ev.ci_limit == 1.0 and ev.includes_null
    assert ev.point == pytest.approx(1.3 + math.sqrt(1.3 * 0.3))
    assert "no unmeasured confounding is needed" in ev.reading()
    protective = evalue_rr(0.85, 0.6, 1.05)
    assert protective.ci_limit == 1.0
    md = evalue_md(0.1, 0.2)  # interval exp(0.091 -/+ 0.356) includes 1
    assert md.ci_limit == 1.0


def test_reading_when_the_interval_excludes_the_null():
    reading = evalue_rr(0.80, 0.71, 0.91).reading()
    assert reading == (
        "An unmeasured factor would need to be associated with both coaching and the outcome by "
        "a risk ratio of at least 1.81 each to explain away the estimate (1.43 to move the "
        "interval to include no effect)."
    )
    assert evalue_rr(2.0).ci_limit is None
    assert "to explain away the estimate" in evalue_rr(2.0).reading()
    assert "nothing for unmeasured confounding" in evalue_rr(1.0).reading()


def test_point_estimate_without_interval_and_one_sided_limits():
    assert evalue_md(0.5).point == pytest.approx(2.529142, abs=1e-5)
    assert evalue_md(0.5).ci_limit is None
    # only the limit closer to the null matters; the other one alone gives no CI E-value
    assert evalue_rr(2.0, hi=3.0).ci_limit is None
    assert evalue_rr(2.0, lo=1.5).ci_limit == pytest.approx(1.5 + math.sqrt(1.5 * 0.5))


def test_invalid_inputs():
    with pytest.raises(ValueError, match="positive"):
        evalue_rr(0.0)
    with pytest.raises(ValueError, match="inside the interval"):
        evalue_rr(2.0, 2.5, 3.0)
    with pytest.raises(ValueError, match="non-negative"):
        evalue_md(0.5, -1)


def _estimate(**kw) -> EffectEstimate:
    base = {
        "outcome": "follow_through",
        "treatment": "coached",
        "estimand": "ATE",
        "method": "aipw",
        "estimate": 0.05,
        "std_error": 0.025,
        "ci_low": 0.05 - 1.78 / 0.91 * 0.025,
        "ci_high": 0.05 + 1.78 / 0.91 * 0.025,
        "p_value": 0.04,
        "n_treated": 300,
        "n_control": 500,
    }
    return EffectEstimate(**(base | kw))


def test_evalue_from_estimate_standardises_by_the_outcome_sd():
    # d = 0.05 / 0.1 = 0.5 and se_d = 0.25 with R's 1.78 multiplier: evalues.MD(.5, .25)
    ev = evalue_from_estimate(_estimate(), outcome_sd=0.1)
    assert ev.estimate == pytest.approx(0.5)
    assert ev.point == pytest.approx(2.529142, abs=1e-5)
    assert ev.ci_limit == pytest.approx(1.110803, abs=1e-5)
    assert (ev.treatment, ev.outcome) == ("coached", "follow_through")
    assert "coaching and follow-through" in ev.reading()
    assert list(ev.to_frame().columns) == list(EValue.COLUMNS)


def test_evalue_from_estimate_follows_the_reported_interval():
    # a cluster-robust (t) interval that includes 0 although estimate / se > 1.96: the E-value
    # for the interval must agree with the reported interval
    est = _estimate(estimate=0.05, std_error=0.025, ci_low=-0.001, ci_high=0.101)
    ev = evalue_from_estimate(est, outcome_sd=0.1)
    assert ev.ci_limit == 1.0
    assert "no unmeasured confounding is needed" in ev.reading()
    # a negative (beneficial) skills-gap effect uses the upper limit
    gap = _estimate(outcome="skills_gap", estimate=-0.3, ci_low=-0.4, ci_high=-0.2)
    ev = evalue_from_estimate(gap, outcome_sd=0.6)
    assert ev.rr < 1 and ev.rr_ci_limit == pytest.approx(math.exp(0.91 * -0.2 / 0.6))
    assert "the skills gap" in ev.reading()
    with pytest.raises(ValueError, match="outcome_sd"):
        evalue_from_estimate(gap, outcome_sd=0)


def test_control_sd():
    import pandas as pd

    df = pd.DataFrame({"y": [0.1, 0.5, 0.9, 0.0, 1.0], "t": [0, 0, 0, 1, 1]})
    assert control_sd(df, outcome="y", treatment="t") == pytest.approx(0.4)
