"""Pilot planning against statsmodels' power classes and published table values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from statsmodels.stats.power import NormalIndPower, TTestIndPower
from statsmodels.stats.proportion import proportion_effectsize

from lcstats.estimation.power import (
    design_effect,
    minimum_detectable_effect,
    minimum_detectable_effect_proportion,
    plan_pilot,
    required_sample_size,
    required_sample_size_proportion,
)

COLUMNS = [
    "analysis",
    "test",
    "alpha",
    "power",
    "effect_size",
    "effect",
    "outcome_sd",
    "baseline",
    "target",
    "n_treated",
    "n_control",
    "n_treated_effective",
    "n_control_effective",
    "cluster_size",
    "icc",
    "design_effect",
    "n_clusters_treated",
    "n_clusters_control",
]


def test_textbook_two_sample_t():
    # Cohen (1988), Statistical Power Analysis, Table 2.4.1: d = 0.5, two-sided alpha 0.05,
    # power 0.80 -> 64 per group (statsmodels: 63.77).
    plan = required_sample_size(effect=0.5, outcome_sd=1.0)
    assert plan.n_treated_effective == pytest.approx(63.7656, abs=1e-3)
    assert (plan.n_treated, plan.n_control) == (64, 64)
    # the same effect in outcome units: 0.2 points with SD 0.4 is d = 0.5
    assert required_sample_size(effect=0.2, outcome_sd=0.4).n_treated == 64
    # sign does not matter (two-sided): narrowing a skills gap by 0.2 points
    assert required_sample_size(effect=-0.2, outcome_sd=0.4).n_treated == 64


def test_textbook_proportions():
    # Cohen (1988), Table 6.4.1: h = 0.20, two-sided alpha 0.05, power 0.80 -> n = 392 per group.
    # 45% -> 55% follow-through is h = 0.2003.
    plan = required_sample_size_proportion(baseline=0.45, target=0.55)
    assert plan.effect_size == pytest.approx(0.2003, abs=1e-4)
    assert plan.n_treated == 392 and plan.n_control == 392
    assert plan.effect == pytest.approx(0.10)


@pytest.mark.parametrize(
    ("d", "alpha", "power", "ratio"),
    [(0.2, 0.05, 0.8, 1.0), (0.36, 0.05, 0.9, 2.0), (0.5, 0.01, 0.8, 0.5), (0.8, 0.1, 0.7, 3.0)],
)
def test_sample_size_matches_statsmodels(d, alpha, power, ratio):
    n1 = TTestIndPower().solve_power(effect_size=d, alpha=alpha, power=power, ratio=ratio)
    plan = required_sample_size(
        effect=d * 2.5, outcome_sd=2.5, alpha=alpha, power=power, ratio=ratio
    )
    assert plan.n_treated_effective == pytest.approx(n1)
    assert plan.n_treated == math.ceil(n1)
    assert plan.n_control == math.ceil(n1 * ratio)
    h = proportion_effectsize(0.6, 0.45)
    n1 = NormalIndPower().solve_power(effect_size=h, alpha=alpha, power=power, ratio=ratio)
    plan = required_sample_size_proportion(
        baseline=0.45, target=0.6, alpha=alpha, power=power, ratio=ratio
    )
    assert plan.n_treated == math.ceil(n1) and plan.n_control == math.ceil(n1 * ratio)


def test_design_effect_doubles_the_sample():
    assert design_effect(11, 0.1) == pytest.approx(2.0)
    assert design_effect(10, 0.1) == pytest.approx(1.9)
    assert design_effect(1, 0.5) == 1.0 and design_effect(30, 0.0) == 1.0
    plain = required_sample_size(effect=0.5, outcome_sd=1.0)
    clustered = required_sample_size(effect=0.5, outcome_sd=1.0, cluster_size=11, icc=0.1)
    assert clustered.design_effect == pytest.approx(2.0)
    assert clustered.n_treated == 128 == 2 * plain.n_treated
    assert clustered.n_clusters_treated == math.ceil(128 / 11)
    prop = required_sample_size_proportion(baseline=0.45, target=0.55, cluster_size=11, icc=0.1)
    assert prop.n_treated == math.ceil(2 * prop.n_treated_effective)
    assert plain.n_clusters_treated is None


def test_minimum_detectable_effect_matches_statsmodels_and_round_trips():
    mde = minimum_detectable_effect(n_treated=150, n_control=300, outcome_sd=0.8)
    d = TTestIndPower().solve_power(nobs1=150, alpha=0.05, power=0.8, ratio=2.0)
    assert mde.effect_size == pytest.approx(d)
    assert mde.effect == pytest.approx(d * 0.8)
    back = required_sample_size(effect=mde.effect, outcome_sd=0.8, ratio=2.0)
    # statsmodels' root finder solves the effect size to about 1e-5 in power, so the round trip
    # lands within a hundredth of a learner (150.0013), not exactly on 150
    assert back.n_treated_effective == pytest.approx(150, abs=0.01)
    assert back.n_control_effective == pytest.approx(300, abs=0.02)
    # 64 per group detect d = 0.5 (the textbook value, the other way round)
    assert minimum_detectable_effect(n_treated=64, n_control=64).effect_size == pytest.approx(
        0.5, abs=0.002
    )
    assert minimum_detectable_effect(n_treated=64, n_control=64).effect is None


def test_minimum_detectable_effect_shrinks_with_n_and_grows_with_clustering():
    sizes = [20, 50, 100, 400, 1600]
    mdes = [minimum_detectable_effect(n_treated=n, n_control=n).effect_size for n in sizes]
    assert all(np.diff(mdes) < 0)
    # roughly 1 / sqrt(n) for large n: quadrupling n halves the MDE
    assert mdes[-1] / mdes[-2] == pytest.approx(0.5, abs=0.01)
    clustered = minimum_detectable_effect(n_treated=400, n_control=400, cluster_size=11, icc=0.1)
    assert clustered.n_treated_effective == pytest.approx(200)
    assert clustered.effect_size == pytest.approx(
        minimum_detectable_effect(n_treated=200, n_control=200).effect_size
    )


def test_minimum_detectable_proportion():
    mde = minimum_detectable_effect_proportion(n_treated=392, n_control=392, baseline=0.45)
    assert mde.target == pytest.approx(0.55, abs=0.001)
    h = NormalIndPower().solve_power(nobs1=392, alpha=0.05, power=0.8, ratio=1.0)
    assert proportion_effectsize(mde.target, 0.45) == pytest.approx(h)
    down = minimum_detectable_effect_proportion(
        n_treated=392, n_control=392, baseline=0.45, direction="decrease"
    )
    assert down.target < 0.45 and proportion_effectsize(0.45, down.target) == pytest.approx(h)
    tiny = minimum_detectable_effect_proportion(n_treated=3, n_control=3, baseline=0.95)
    assert math.isnan(tiny.target) and "too small" in tiny.reading()


def test_readings():
    plan = required_sample_size_proportion(baseline=0.45, target=0.55, cluster_size=10, icc=0.1)
    assert plan.reading() == (
        "To detect a rise in follow-through from 45% to 55% with 80% power (two-sided test at the "
        "5% level), a pilot needs about 744 coached and 744 comparison learners (in teams of 10 "
        "with ICC 0.1: design effect 1.9)."
    )
    fall = required_sample_size_proportion(baseline=0.45, target=0.35)
    assert "a fall in follow-through from 45% to 35%" in fall.reading()
    gap = required_sample_size(effect=-0.2, outcome_sd=0.8, label="the skills gap", units="points")
    assert gap.reading().startswith(
        "To detect an effect on the skills gap of 0.2 points (0.25 standard deviations)"
    )
    mde = minimum_detectable_effect(n_treated=100, n_control=200)
    assert mde.reading().startswith(
        "With 100 coached and 200 comparison learners, a pilot has 80% power"
    )
    assert "0.34 standard deviations or larger" in mde.reading()


def test_frames_and_displays():
    plan = required_sample_size(effect=0.3, outcome_sd=1.0, cluster_size=10, icc=0.05)
    frame = plan.to_frame()
    assert list(frame.columns) == COLUMNS and len(frame) == 1
    assert frame["n_treated"].iloc[0] == plan.n_treated
    assert plan.reading() in plan.summary()
    html = plan._repr_html_()
    assert html.startswith('<div class="lcstats-summary">') and "<table" in html
    assert plan.reading().split(" ")[0] in html
    assert (
        list(
            minimum_detectable_effect_proportion(n_treated=50, n_control=50, baseline=0.4)
            .to_frame()
            .columns
        )
        == COLUMNS
    )


def test_plan_pilot_dispatch():
    assert plan_pilot(baseline=0.45, target=0.55) == required_sample_size_proportion(
        baseline=0.45, target=0.55
    )
    assert plan_pilot(effect=0.5, outcome_sd=1.0).n_treated == 64
    assert plan_pilot(n_treated=64, n_control=64).analysis == "minimum_detectable_effect"
    assert plan_pilot(n_treated=100, baseline=0.45).test == "proportions"
    assert plan_pilot(n_treated=100, ratio=1.5).n_control == 150
    for bad, match in [
        ({}, "nothing to plan"),
        ({"n_treated": 100, "effect": 0.2}, "not both"),
        ({"baseline": 0.45}, "both baseline and target"),
        ({"baseline": 0.45, "target": 0.5, "effect": 0.1}, "not both"),
        ({"n_control": 100}, "needs n_treated"),
        ({"n_treated": 100, "baseline": 0.4, "outcome_sd": 1.0}, "outcome_sd is not used"),
        ({"effect": 0.2}, "nothing to plan"),
    ]:
        with pytest.raises(ValueError, match=match):
            plan_pilot(**bad)


@pytest.mark.parametrize(
    ("call", "kwargs", "match"),
    [
        (required_sample_size, {"effect": 0.0, "outcome_sd": 1.0}, "effect=0"),
        (required_sample_size, {"effect": 0.2, "outcome_sd": 0.0}, "outcome_sd"),
        (required_sample_size, {"effect": 0.2, "outcome_sd": 1.0, "alpha": 0.0}, "alpha"),
        (required_sample_size, {"effect": 0.2, "outcome_sd": 1.0, "alpha": 1.0}, "alpha"),
        (required_sample_size, {"effect": 0.2, "outcome_sd": 1.0, "power": 1.0}, "power"),
        (
            required_sample_size,
            {"effect": 0.2, "outcome_sd": 1.0, "power": 0.04},
            "greater than alpha",
        ),
        (required_sample_size, {"effect": 0.2, "outcome_sd": 1.0, "ratio": -1}, "ratio"),
        (required_sample_size, {"effect": 0.2, "outcome_sd": 1.0, "icc": 1.0}, "icc"),
        (required_sample_size, {"effect": 0.2, "outcome_sd": 1.0, "icc": -0.1}, "icc"),
        (
            required_sample_size,
            {"effect": 0.2, "outcome_sd": 1.0, "cluster_size": 0.5},
            "cluster_size",
        ),
        (required_sample_size, {"effect": float("nan"), "outcome_sd": 1.0}, "finite"),
        (required_sample_size, {"effect": "0.2", "outcome_sd": 1.0}, "must be a number"),
        (required_sample_size_proportion, {"baseline": 0.45, "target": 0.45}, "equals baseline"),
        (required_sample_size_proportion, {"baseline": 45, "target": 55}, "between 0 and 1"),
        (minimum_detectable_effect, {"n_treated": 1, "n_control": 50}, "n_treated"),
        (minimum_detectable_effect, {"n_treated": 50.5, "n_control": 50}, "whole number"),
        (minimum_detectable_effect, {"n_treated": True, "n_control": 50}, "whole number"),
        (
            minimum_detectable_effect,
            {"n_treated": 50, "n_control": 50, "outcome_sd": -1},
            "outcome_sd",
        ),
        (
            minimum_detectable_effect,
            {"n_treated": 10, "n_control": 10, "cluster_size": 50, "icc": 0.5},
            "fewer than 2 independent",
        ),
        (
            minimum_detectable_effect_proportion,
            {"n_treated": 50, "n_control": 50, "baseline": 0.4, "direction": "up"},
            "direction='up' is not allowed; choose one of increase, decrease",
        ),
    ],
)
def test_argument_validation(call, kwargs, match):
    with pytest.raises(ValueError, match=match):
        call(**kwargs)


def test_power_command_prints_a_plan_and_rejects_incomplete_input(capsys):
    from lcstats.cli import main

    assert (
        main(
            [
                "power",
                "--baseline",
                "0.45",
                "--target",
                "0.55",
                "--cluster-size",
                "10",
                "--icc",
                "0.1",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "744 coached and 744 comparison" in out and "design effect 1.9" in out
    assert main(["power", "--baseline", "0.45"]) == 2
    err = capsys.readouterr().err
    assert "baseline and target" in err and "Traceback" not in err
