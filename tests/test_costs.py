"""Cost per outcome and return on investment, against hand calculations written out here.

The programme in every example: per_learner GBP 300, per_session GBP 120, 200 coached learners
and 1,400 sessions, so the total cost is 300 x 200 + 120 x 1,400 = 60,000 + 168,000 = 228,000.
"""

from __future__ import annotations

import json
import math

import pytest
from numpy.testing import assert_allclose

from lcstats.core.files import dumps_json
from lcstats.estimation.costs import (
    CE_COLUMNS,
    Costs,
    check_costs,
    cost_effectiveness,
    roi,
)
from lcstats.estimation.effects import EffectEstimate

COSTS = {"per_session": 120, "per_learner": 300, "currency": "GBP"}
N, SESSIONS, TOTAL = 200, 1400, 228_000


def ce_of(effect: dict, outcome: str = "followed_through", **kwargs):
    return cost_effectiveness(
        effect,
        outcome=outcome,
        n_coached=N,
        sessions_total=SESSIONS,
        costs=kwargs.pop("costs", COSTS),
        **kwargs,
    )


# effect on the share who followed through: +0.12 (95% interval 0.08 to 0.16, SE 0.02, so the
# interval's critical value is (0.16 - 0.08) / (2 x 0.02) = 2)
FOLLOWED = {"estimate": 0.12, "std_error": 0.02, "ci_low": 0.08, "ci_high": 0.16}


def test_cost_per_additional_learner_who_followed_through():
    ce = ce_of(FOLLOWED)
    assert ce.total_cost == TOTAL
    # additional learners: 200 x 0.12 = 24; cost each: 228,000 / 24 = 9,500
    assert_allclose(ce.additional_outcomes, 24)
    assert_allclose(ce.cost_per_outcome, 9_500)
    # Fieller (costs known): [228,000 / (200 x 0.16), 228,000 / (200 x 0.08)]
    #                       = [228,000 / 32, 228,000 / 16] = [7,125, 14,250]
    assert_allclose(ce.fieller, (7_125, 14_250))
    assert (ce.ci_low, ce.ci_high) == ce.fieller and ce.bounded
    # delta: se = C se_g / (n g²) = 228,000 x 0.02 / (200 x 0.0144) = 4,560 / 2.88 = 1,583.33;
    # 9,500 ± 2 x 1,583.33 = [6,333.33, 12,666.67]
    assert_allclose(ce.delta, (9_500 - 2 * 4_560 / 2.88, 9_500 + 2 * 4_560 / 2.88))
    assert ce.reading() == (
        "Coaching 200 learners cost GBP 228,000 in total and bought about 24 additional learners "
        "who followed through (95% interval 16 to 32): each additional learner who followed "
        "through cost about GBP 9,500 (95% interval GBP 7,125 to GBP 14,250)."
    )


def test_delta_method_can_be_the_interval_read():
    ce = ce_of(FOLLOWED, interval="delta")
    assert_allclose((ce.ci_low, ce.ci_high), (6_333.333333, 12_666.666667))
    frame = ce.to_frame()
    assert list(frame.columns) == list(CE_COLUMNS)
    assert frame["interval"].tolist() == ["fieller", "delta"]
    assert frame["primary"].tolist() == [False, True]
    assert "GBP 6,333 to GBP 12,667" in ce.reading()


def test_skills_gap_effect_is_negative_when_the_gap_narrows():
    # -0.25 points (95% interval -0.35 to -0.15): 0.25 points closed per coached learner;
    # 200 x 0.25 = 50 points closed; 228,000 / 50 = 4,560 per point;
    # Fieller: [228,000 / (200 x 0.35), 228,000 / (200 x 0.15)] = [228,000 / 70, 228,000 / 30]
    #        = [3,257.14, 7,600]
    ce = ce_of(
        {"estimate": -0.25, "std_error": 0.05, "ci_low": -0.35, "ci_high": -0.15}, "skills_gap"
    )
    assert_allclose([ce.gain_per_learner, ce.gain_ci_low, ce.gain_ci_high], [0.25, 0.15, 0.35])
    assert_allclose(ce.cost_per_outcome, 4_560)
    assert_allclose(ce.fieller, (228_000 / 70, 7_600))
    text = ce.reading()
    assert "bought about 50 points of skills gap closed (95% interval 30 to 70)" in text
    assert "GBP 3,257 to GBP 7,600" in text and "-" not in text


def test_a_widening_gap_buys_nothing():
    # +0.10 points (gap widened), interval 0.02 to 0.18: no points closed, no cost per point
    ce = ce_of({"estimate": 0.10, "std_error": 0.04, "ci_low": 0.02, "ci_high": 0.18}, "skills_gap")
    assert ce.gain_per_learner == -0.10 and math.isinf(ce.cost_per_outcome)
    assert ce.fieller == (math.inf, math.inf) and not ce.bounded
    assert all(math.isnan(x) for x in ce.delta)
    assert "bought no points of skills gap closed" in ce.reading()
    assert "there is no cost per point of skills gap closed" in ce.reading()


UNCLEAR = {"estimate": 0.03, "std_error": 0.02, "ci_low": -0.01, "ci_high": 0.07}


def test_interval_through_zero_has_no_upper_limit():
    # +0.03 (95% interval -0.01 to 0.07): Fieller lower limit 228,000 / (200 x 0.07) = 16,285.71,
    # no upper limit (the effect could be nil); point 228,000 / (200 x 0.03) = 38,000
    ce = ce_of(UNCLEAR)
    assert_allclose(ce.fieller[0], 16_285.714286)
    assert math.isinf(ce.fieller[1]) and not ce.bounded
    assert_allclose(ce.cost_per_outcome, 38_000)
    text = ce.reading()
    assert "has no upper limit" in text and "at least GBP 16,286" in text
    assert "about GBP 38,000 at the estimate" in text
    # delta: 38,000 ± 2 x 228,000 x 0.02 / (200 x 0.03²) = 38,000 ± 50,666.67: below zero
    assert_allclose(ce.delta, (38_000 - 50_666.666667, 38_000 + 50_666.666667))
    assert any("delta-method interval reaches zero" in n for n in ce.notes)
    # the same plain words when the delta interval is the one read: the effect could be nil
    assert ce_of(UNCLEAR, interval="delta").reading() == text
    doc = ce.as_dict()
    assert doc["ci_high"] is None and doc["bounded"] is False
    json.loads(dumps_json(doc))  # strict JSON: no inf or NaN


def test_follow_through_proportion_effect_is_used_with_a_note():
    ce = ce_of(FOLLOWED, "follow_through")
    assert_allclose(ce.cost_per_outcome, 9_500)
    assert any("whole action plan done on time" in n for n in ce.notes)


def test_effect_estimate_at_another_level_gets_a_normal_interval():
    est = EffectEstimate(
        outcome="follow_through", treatment="coached", estimand="ATE", method="aipw",
        estimate=0.12, std_error=0.02, ci_low=0.08, ci_high=0.16, p_value=1e-9,
        n_treated=200, n_control=300, alpha=0.05,
    )  # fmt: skip
    ce = ce_of(est, "follow_through", alpha=0.10)
    # 90%: 0.12 ± 1.644854 x 0.02 = [0.0871029, 0.1528971]
    lo, hi = 0.12 - 1.6448536 * 0.02, 0.12 + 1.6448536 * 0.02
    assert_allclose(ce.fieller, (TOTAL / (N * hi), TOTAL / (N * lo)), rtol=1e-6)
    assert any("ATE" in n and "ATT" in n for n in ce.notes)
    with pytest.raises(ValueError, match="effect is on 'follow_through' but outcome='skills_gap'"):
        ce_of(est, "skills_gap")


# ----------------------------------------------------------------------------------------------
# Return on investment


def test_roi_over_a_range_of_values():
    costs = COSTS | {"value_per_follow_through": 12_000}
    r = roi(ce_of(FOLLOWED, costs=costs))
    # 1x: benefits 12,000 x 24 = 288,000; BCR 288,000 / 228,000 = 1.263158; ROI 26.3158%
    one = r.at(1.0)
    assert_allclose(
        [one["benefits"], one["bcr"], one["roi_percent"]], [288_000, 1.263158, 26.315789], rtol=1e-6
    )
    # its interval: 12,000 x 200 x [0.08, 0.16] = [192,000, 384,000] -> BCR [0.842105, 1.684211]
    # -> ROI [-15.79%, 68.42%]
    assert_allclose([one["benefits_ci_low"], one["benefits_ci_high"]], [192_000, 384_000])
    assert_allclose([one["roi_ci_low"], one["roi_ci_high"]], [-15.789474, 68.421053], rtol=1e-6)
    # 0.5x: 6,000 x 24 = 144,000 -> BCR 0.631579, ROI -36.84%; 2x: 576,000 -> 2.526316, 152.63%
    assert_allclose(
        r.at(0.5)[["bcr", "roi_percent"]].astype(float), [0.631579, -36.842105], rtol=1e-6
    )
    assert_allclose(
        r.at(2.0)[["bcr", "roi_percent"]].astype(float), [2.526316, 152.631579], rtol=1e-6
    )
    text = r.reading()
    assert text.startswith(
        "This rests on the assumption that one additional learner who followed through is worth "
        "GBP 12,000 (a value supplied by the analyst, not measured here)."
    )
    assert "benefit-cost ratio of 1.26 and an ROI of 26% (95% interval -16% to 68%)" in text
    assert "at GBP 6,000 the ratio is 0.63" in text and "at GBP 24,000 the ratio is 2.53" in text


def test_roi_needs_a_value_and_costs():
    assert roi(ce_of(FOLLOWED)) is None  # no value per outcome: no ROI
    assert roi(None) is None
    assert ce_of(FOLLOWED, costs=None) is None  # no costs: nothing at all
    r = roi(ce_of(FOLLOWED), value_per_outcome=9_500, multipliers=(1.0,))
    assert_allclose(r.at(1.0)["bcr"], 1.0)  # the break-even value is the cost per outcome
    with pytest.raises(ValueError, match="multipliers"):
        roi(ce_of(FOLLOWED), value_per_outcome=100, multipliers=(0,))
    with pytest.raises(ValueError, match="value_per_outcome=-5 must be greater than 0"):
        roi(ce_of(FOLLOWED), value_per_outcome=-5)
    skills = ce_of(
        {"estimate": -0.25, "std_error": 0.05},
        "skills_gap",
        costs=COSTS | {"value_per_skill_point": 1_000},
    )
    assert_allclose(roi(skills).at(1.0)["benefits"], 1_000 * 50)


# ----------------------------------------------------------------------------------------------
# Validation


@pytest.mark.parametrize(
    "costs, message",
    [
        ({"per_session": 120, "per_learner": 300}, "currency=None is not a three-letter code"),
        (
            {"per_session": -1, "per_learner": 300, "currency": "GBP"},
            "per_session=-1 must not be negative",
        ),
        ({"per_learner": 300, "currency": "GBP"}, "per_session is missing"),
        (
            {"per_session": "120", "per_learner": 300, "currency": "GBP"},
            "per_session='120' is not a finite number",
        ),
        (
            {"per_session": True, "per_learner": 300, "currency": "GBP"},
            "per_session=True is not a finite number",
        ),
        (COSTS | {"per_lerner": 3}, "unknown key 'per_lerner'"),
        ({"per_session": 0, "per_learner": 0, "currency": "GBP"}, "both 0"),
        (COSTS | {"value_per_skill_point": 0}, "value_per_skill_point=0 must be greater than 0"),
        (COSTS | {"currency": "pounds"}, "currency='pounds'"),
    ],
)
def test_bad_costs_are_refused_with_what_is_expected(costs, message):
    with pytest.raises(ValueError, match=message) as caught:
        check_costs(costs)
    assert "Expected costs: {per_session: number >= 0" in str(caught.value)
    assert "value_per_follow_through: optional number > 0" in str(caught.value)


def test_every_cost_problem_is_listed_at_once():
    with pytest.raises(ValueError) as caught:
        check_costs({"per_session": -1, "currency": "gbp", "extra": 1})
    text = str(caught.value)
    for part in (
        "unknown key 'extra'",
        "per_session=-1",
        "per_learner is missing",
        "currency='gbp'",
    ):
        assert part in text


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"outcome": "roi"}, "choose one of followed_through, follow_through, skills_gap"),
        ({"interval": "bootstrap"}, "choose one of fieller, delta"),
        ({"n_coached": 0}, "n_coached=0 must be a whole number of at least 1"),
        ({"sessions_total": -3}, "sessions_total=-3"),
        ({"alpha": 0}, "alpha=0"),
    ],
)
def test_bad_arguments_are_refused(kwargs, message):
    args = {"outcome": "followed_through", "n_coached": N, "sessions_total": SESSIONS}
    with pytest.raises(ValueError, match=message):
        cost_effectiveness(FOLLOWED, costs=COSTS, **(args | kwargs))


def test_bad_effects_are_refused():
    with pytest.raises(ValueError, match="effect std_error=0 must be greater than 0"):
        ce_of({"estimate": 0.1, "std_error": 0})
    with pytest.raises(ValueError, match="effect estimate=None is not a finite number"):
        ce_of({"std_error": 0.1})
    with pytest.raises(ValueError, match="does not contain its estimate"):
        ce_of({"estimate": 0.1, "std_error": 0.02, "ci_low": 0.2, "ci_high": 0.3})


def test_costs_object_and_displays():
    costs = check_costs(COSTS)
    assert isinstance(costs, Costs) and check_costs(costs) is costs
    assert costs.total(N, SESSIONS) == TOTAL and costs.value("skills_gap") is None
    ce = ce_of(FOLLOWED, costs=costs)
    assert "228,000 = 300 x 200 learners + 120 x 1400 sessions" in ce.summary()
    assert "<strong>Coaching 200 learners" in ce._repr_html_() and repr(ce) == ce.summary()
