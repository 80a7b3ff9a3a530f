"""Designs end to end: a roll-out in waves (staggered), a randomised pilot, and what each needs.

The staggered example (`lcstats simulate --design staggered`, committed in data/example-rollout)
runs through `lcstats run`: its report has the roll-out section, and results.json's simple
aggregation covers the simulated truth. The randomised example runs too. `lcstats validate`
names what a staggered design lacks.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from lcstats.running.runner import run_evaluation
from tests.conftest import ROOT, write_params

LCSTATS = Path(sys.executable).parent / "lcstats"


@pytest.fixture(scope="module")
def rollout_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("rollout")
    outcome = run_evaluation(ROOT / "params" / "example-rollout.yaml", output_dir=out)
    assert outcome.status == "succeeded", outcome.message
    return outcome.run_dir


def test_a_rollout_runs_with_its_section_and_covers_the_truth(rollout_run):
    doc = json.loads((rollout_run / "results.json").read_text())
    truth = json.loads((ROOT / "data" / "example-rollout" / "truth.json").read_text())
    target = next(
        e["value"]
        for e in truth["effects"]
        if e["estimand"] == "simple" and e["outcome"] == "follow_through"
    )
    simple = next(
        e
        for e in doc["estimates"]
        if e.get("aggregation") == "simple" and e["outcome"] == "follow_through"
    )
    assert simple["method"] == "callaway_santanna" and simple["design"] == "staggered"
    assert simple["ci_low"] <= target <= simple["ci_high"], (simple, target)
    headline = next(h for h in doc["headlines"] if h["outcome"] == "follow_through")
    assert headline["aggregation"] == "simple"
    assert all("design" in e for e in doc["estimates"])
    dynamic = [e for e in doc["estimates"] if e.get("aggregation") == "dynamic"]
    assert dynamic and all("event_time" in e for e in dynamic)
    assert min(e["event_time"] for e in dynamic) < 0 < max(e["event_time"] for e in dynamic)
    html = (rollout_run / "report.html").read_text()
    assert '<section id="rollout">' in html and "Roll-out in waves" in html
    assert "teams never coached" in html and "before coaching started" in html.lower()
    assert "roll-out to teams in waves" in html  # the executive summary names the design


def test_skills_assessed_in_five_waves_are_compared_over_the_waves_too(rollout_run):
    doc = json.loads((rollout_run / "results.json").read_text())
    truth = json.loads((ROOT / "data" / "example-rollout" / "truth.json").read_text())
    target = next(e["value"] for e in truth["effects"] if e["outcome"] == "skills_gap")
    skills = next(
        e
        for e in doc["estimates"]
        if e.get("aggregation") == "simple" and e["outcome"] == "skills_gap"
    )
    assert skills["method"] == "callaway_santanna" and skills["design"] == "staggered"
    assert skills["ci_low"] <= target <= skills["ci_high"], (skills, target)
    assert skills["ci_high"] < 0  # coaching narrowed the gap, and the interval says so
    headline = next(h for h in doc["headlines"] if h["outcome"] == "skills_gap")
    assert headline["aggregation"] == "simple"
    block = doc["design"]["staggered_skills_gap"]
    assert {r["time"] for r in block["att_gt"]} and block["pre_trend"]["df"] >= 1
    assert block["panel"].startswith("60 teams x 5 periods")
    # the learner-level gaps use pre and post; the rows between are counted, not hidden
    quality = doc["data_quality"]["skill_assessments"]
    between = "in a wave between pre and post (used only by the roll-out's skills-gap panel)"
    assert quality["excluded"][between] == 3 * 600 * 2  # mid1-mid3, 600 learners, 2 skills
    html = (rollout_run / "report.html").read_text()
    assert "Skills gaps over 5 assessment waves" in html
    words = r"narrowed the skills gap by about 0\.\d\d points \(95% interval 0\.\d\d to 0\.\d\d points\)"
    assert re.search(words, html)


def test_the_rollout_example_is_what_lcstats_simulate_writes(tmp_path):
    command = [str(LCSTATS), "simulate", "--design", "staggered", "--learners", "600"]
    command += ["--seed", "20261201", "--assessment-gap", "3", "--out", str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    for name in ("learners.csv", "action_items.csv", "skill_assessments.csv", "truth.json"):
        committed = (ROOT / "data" / "example-rollout" / name).read_bytes()
        assert (tmp_path / name).read_bytes() == committed, name
    wrong = subprocess.run(
        [str(LCSTATS), "simulate", "--assessment-gap", "3", "--out", str(tmp_path / "x")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert wrong.returncode == 2 and "--assessment-gap is for --design staggered" in wrong.stderr
    assert "Traceback" not in wrong.stderr


def _design_of(tmp_path: Path, frames: dict, **overrides):
    from lcstats.data.inputs import load_inputs
    from lcstats.estimation.designs import design_estimates
    from lcstats.estimation.evaluation import estimate
    from lcstats.outcomes.learner import learner_outcomes
    from lcstats.params import load_params

    params = load_params(rollout_params(write_rollout(tmp_path, frames), **overrides))
    programme = load_inputs(params)
    outcomes = learner_outcomes(programme, as_of=params.as_of)
    return design_estimates(params, programme, outcomes, estimate(params, outcomes))


def test_skills_before_and_after_only_stay_an_adjusted_comparison(tmp_path, rollout_data):
    sa = rollout_data["skill_assessments"]
    frames = rollout_data | {"skill_assessments": sa[sa["wave"].isin(["pre", "post"])]}
    design = _design_of(tmp_path, frames, skill_waves=["pre", "post"])
    assert design.skills is None and not design.skipped
    assert [e.outcome for e in design.estimates] == ["follow_through"]
    # more waves declared than the data hold: said, not silently dropped
    declared = _design_of(tmp_path, frames)
    reason = declared.skipped["the skills gap over assessment waves"]
    assert "skills were assessed in 2 wave(s) (pre, post)" in reason


def test_skills_waves_that_cannot_be_compared_are_skipped_with_the_reason(tmp_path, rollout_data):
    sa = rollout_data["skill_assessments"].copy()
    sa.loc[sa["wave"] == "mid1", "assessed_on"] = "2025-01-20"  # in the month of pre
    design = _design_of(tmp_path, rollout_data | {"skill_assessments": sa})
    assert design.skills is None
    reason = design.skipped["the skills gap over assessment waves"]
    assert "fall in the same month (2025-01)" in reason
    assert [e.outcome for e in design.estimates] == ["follow_through"]


def test_the_cross_sectional_estimate_of_a_rollout_is_biased_and_says_which_design_it_is(
    rollout_run,
):
    doc = json.loads((rollout_run / "results.json").read_text())
    truth = json.loads((ROOT / "data" / "example-rollout" / "truth.json").read_text())
    att = next(e["value"] for e in truth["effects"] if e["estimand"] == "ATT")
    aipw = next(
        e for e in doc["estimates"] if e["method"] == "aipw" and e["outcome"] == "follow_through"
    )
    assert aipw["design"] == "observational"
    assert aipw["ci_low"] > att  # an unrecorded trait brings coaching forward: AIPW is biased up


def test_a_randomised_pilot_runs_end_to_end(tmp_path):
    outcome = run_evaluation(ROOT / "params" / "example-pilot.yaml", output_dir=tmp_path)
    assert outcome.status == "succeeded", outcome.message
    doc = json.loads((outcome.run_dir / "results.json").read_text())
    lin = [e for e in doc["estimates"] if e["method"] == "lin"]
    assert {e["outcome"] for e in lin} == {"follow_through", "skills_gap"}
    assert all(e["design"] == "randomised" for e in lin)
    assert [h["method"] for h in doc["headlines"]] == ["lin", "lin"]
    truth = json.loads((ROOT / "data" / "example-pilot" / "truth.json").read_text())
    ate = next(
        e["value"]
        for e in truth["effects"]
        if e["outcome"] == "follow_through"
        and e["estimand"] == "ATE"
        and e["treatment"] == "coached"
    )
    ft = next(e for e in lin if e["outcome"] == "follow_through")
    assert ft["ci_low"] <= ate <= ft["ci_high"]
    html = (outcome.run_dir / "report.html").read_text()
    assert "a randomised pilot" in html and "the randomisation check" in html
    timing = doc["design"]["time_to_follow_through"]["hazard_ratio"]
    assert timing["hazard_ratio"] > 1 and timing["ci_low"] > 0
    assert "How fast items were completed" in html


def validate(params: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LCSTATS), "validate", str(params)], capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def rollout_data():
    folder = ROOT / "data" / "example-rollout"
    return {
        t: pd.read_csv(folder / f"{t}.csv", dtype=str, keep_default_na=False)
        for t in ("learners", "action_items", "skill_assessments")
    }


def write_rollout(tmp: Path, frames: dict) -> Path:
    for name, frame in frames.items():
        frame.to_csv(tmp / f"{name}.csv", index=False)
    return tmp


def rollout_params(tmp: Path, **overrides) -> Path:
    return write_params(
        tmp / "p.yaml",
        tmp,
        evaluation="r",
        design="staggered",
        as_of="2026-02-28",
        **{
            "covariates": ["tenure_months", "role"],
            "skill_waves": ["pre", "mid1", "mid2", "mid3", "post"],
        }
        | overrides,
    )


@pytest.mark.parametrize(
    ("change", "overrides", "words"),
    [
        (
            lambda f: f["learners"].drop(columns=["coached_from"]),
            {},
            "needs the date each learner's coaching started",
        ),
        (
            lambda f: f["learners"].assign(
                coached_from=f["learners"]["coached_from"].where(
                    f["learners"]["coached"] == "0", ""
                )
            ),
            {},
            "coached learner(s) have no coaching start date",
        ),
        (
            lambda f: f["learners"].assign(
                coached=f["learners"]["coached"].replace("0", "1"),
                coached_from=f["learners"]["coached_from"].replace("", "2025-11-01"),
                coaching_sessions=f["learners"]["coaching_sessions"].replace("0", "3"),
            ),
            {},
            "no never-coached comparison group",
        ),
        (lambda f: f["learners"], {"min_group_size": 200}, "wave(s) have fewer than 200 learners"),
        (
            lambda f: f["learners"].assign(
                coached_from=f["learners"]["coached_from"].replace("2025-05-01", "2025-01-01")
            ),
            {},
            "fewer than two periods of follow-through before the first wave",
        ),
    ],
    ids=[
        "no start dates",
        "missing start dates",
        "no never-coached teams",
        "small wave",
        "no pre-periods",
    ],
)
def test_validate_names_what_a_staggered_design_lacks(
    tmp_path, rollout_data, change, overrides, words
):
    frames = dict(rollout_data)
    frames["learners"] = change(frames)
    params = rollout_params(write_rollout(tmp_path, frames), **overrides)
    done = validate(params)
    assert done.returncode == 2, done.stdout + done.stderr
    assert words in done.stderr and "Traceback" not in done.stderr
    assert "what to do:" in done.stderr


def test_validate_passes_a_good_rollout(tmp_path, rollout_data):
    done = validate(rollout_params(write_rollout(tmp_path, dict(rollout_data))))
    assert done.returncode == 0, done.stderr
