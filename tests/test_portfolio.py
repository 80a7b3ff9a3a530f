"""Leadership across programmes: `run-all` over the example evaluations writes the portfolio page
(latest headlines, trend, pooled evidence checked against statsmodels), each report says what
changed since the last run and, with costs, what coaching cost per outcome; `--pdf` prints it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lcstats.core.errors import PrivacyError
from lcstats.running.runner import run_evaluation
from tests.conftest import ROOT, write_params

LCSTATS = Path(sys.executable).parent / "lcstats"
EXAMPLES = ("example", "example-pilot", "example-rollout", "example-sales")


@pytest.fixture(scope="module")
def portfolio(tmp_path_factory):
    """run-all over the example params (copied so that paths stay relative to the data)."""
    tmp = tmp_path_factory.mktemp("portfolio")
    reports = tmp / "reports"
    done = subprocess.run(
        [
            str(LCSTATS),
            "run-all",
            str(ROOT / "params"),
            "--jobs",
            "2",
            "--output-dir",
            str(reports),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr
    return reports, done


def test_run_all_writes_the_portfolio_with_every_evaluation(portfolio):
    reports, done = portfolio
    assert f"portfolio: {reports / 'index.html'}" in done.stderr
    doc = json.loads((reports / "portfolio.json").read_text())
    assert sorted(e["evaluation"] for e in doc["evaluations"]) == sorted(EXAMPLES)
    for e in doc["evaluations"]:
        assert {h["outcome"] for h in e["headlines"]} == {"follow_through", "skills_gap"}
        assert (reports / e["report"]).is_file()  # the link resolves
        assert e["trend"] and e["design"] in ("observational", "staggered", "randomised")
    html = (reports / "index.html").read_text()
    assert not re.search(r"""(src|href)=["']?https?://""", html)  # self-contained
    assert "Across 4 programmes coaching raised follow-through" in html
    for name in EXAMPLES:
        ids = set(pd.read_csv(ROOT / "data" / name / "learners.csv", dtype=str)["learner_id"])
        assert not any(i in html for i in ids)


def test_pooled_evidence_matches_statsmodels(portfolio):
    from statsmodels.stats.meta_analysis import combine_effects

    reports, _ = portfolio
    doc = json.loads((reports / "portfolio.json").read_text())
    rows = sorted(
        (e["evaluation"], next(h for h in e["headlines"] if h["outcome"] == "follow_through"))
        for e in doc["evaluations"]
    )
    y = np.array([h["estimate"] for _, h in rows])
    v = np.array([h["std_error"] for _, h in rows]) ** 2
    res = combine_effects(y, v, method_re="iterated", atol=1e-10)
    pooled = doc["pooled"]["follow_through"]
    assert pooled["k"] == 4
    assert pooled["estimate"] == pytest.approx(res.mean_effect_re, abs=1e-6)
    assert pooled["std_error"] == pytest.approx(res.sd_eff_w_re, abs=1e-6)
    assert pooled["tau2"] == pytest.approx(max(res.tau2, 0.0), abs=1e-6)


def test_the_trend_follows_the_successful_runs(portfolio, tmp_path):
    reports, _ = portfolio
    shutil.copytree(reports, tmp_path / "reports", symlinks=True)
    copy = tmp_path / "reports"
    # the ledger names the original folders: a second run into the copy adds one more success
    outcome = run_evaluation(ROOT / "params" / "example-pilot.yaml", output_dir=reports)
    assert outcome.status == "succeeded"
    done = subprocess.run(
        [str(LCSTATS), "portfolio", str(reports)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads((reports / "portfolio.json").read_text())
    pilot = next(e for e in doc["evaluations"] if e["evaluation"] == "example-pilot")
    assert len([t for t in pilot["trend"] if t["outcome"] == "follow_through"]) == 2
    assert pilot["latest_run"] == outcome.run_dir.name
    assert copy.exists()


def test_each_report_says_what_changed_since_the_last_run(small_programme_dir, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(small_programme_dir, data)
    params = write_params(tmp_path / "p.yaml", data, evaluation="history")
    first = run_evaluation(params, output_dir=tmp_path / "reports")
    assert (
        "This is the first successful run of this evaluation"
        in (first.run_dir / "report.html").read_text()
    )
    learners = pd.read_csv(data / "learners.csv", dtype=str)
    extra = learners.head(12).assign(learner_id=lambda f: "NEW" + f["learner_id"], cohort="2026-Q9")
    pd.concat([learners, extra]).to_csv(data / "learners.csv", index=False)
    items = pd.read_csv(data / "action_items.csv", dtype=str, keep_default_na=False)
    items.iloc[::5].to_csv(data / "action_items.csv", index=False)  # a later, partial export
    params = write_params(tmp_path / "p.yaml", data, evaluation="history", alpha=0.1)
    second = run_evaluation(params, output_dir=tmp_path / "reports")
    html = (second.run_dir / "report.html").read_text()
    line = re.search(r'<p id="since-last-run">(.*?)</p>', html, re.S).group(1)
    assert f"Since the last successful run ({first.run_dir.name})" in line
    assert "12 more learners" in line and "new cohort: 2026-Q9" in line
    assert "parameters changed: alpha" in line and "moved from" in line


def test_costs_give_the_cost_per_outcome_and_no_costs_give_nothing(portfolio):
    reports, _ = portfolio
    sales = json.loads((reports / "example-sales" / "latest" / "results.json").read_text())
    costs = sales["value_for_money"]["cost_per_outcome"]
    assert {c["outcome"] for c in costs} == {"follow_through", "skills_gap"}
    first = next(
        c for c in costs if c["outcome"] == "follow_through" and c["interval"] == "fieller"
    )
    assert first["cost_per_outcome"] == pytest.approx(
        first["total_cost"] / first["additional_outcomes"]
    )
    html = (reports / "example-sales" / "latest" / "report.html").read_text()
    assert "What it cost" in html and "benefit-cost ratio" in html
    plain = (reports / "example" / "latest" / "report.html").read_text()
    assert "What it cost" not in plain
    assert "value_for_money" not in json.loads(
        (reports / "example" / "latest" / "results.json").read_text()
    )


def test_run_pdf_writes_a_readable_report_pdf(small_programme_dir, tmp_path):
    params = write_params(tmp_path / "p.yaml", small_programme_dir, evaluation="printed")
    done = subprocess.run(
        [str(LCSTATS), "run", str(params), "--output-dir", str(tmp_path / "r"), "--pdf"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    run_dir = Path(done.stdout.strip().splitlines()[-1])
    pdf = run_dir / "report.pdf"
    pages = int(
        re.search(
            r"Pages:\s+(\d+)",
            subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True).stdout,
        ).group(1)
    )
    assert pages >= 5
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True).stdout
    assert "Executive summary" in text and "Coaching raised follow-through" in " ".join(
        text.split()
    )
    ids = pd.read_csv(small_programme_dir / "learners.csv", dtype=str)["learner_id"]
    assert not any(i in text for i in ids)


def test_the_portfolio_refuses_a_group_below_the_minimum(portfolio, tmp_path):
    from lcstats.reporting.portfolio import PortfolioRun, build_portfolio

    reports, _ = portfolio
    run_dir = (reports / "example" / "latest").resolve()
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    doc = json.loads((copy / "results.json").read_text())
    doc["headlines"][0]["n_control"] = 3
    (copy / "results.json").write_text(json.dumps(doc))
    page = build_portfolio([PortfolioRun("example", "x", "2026-01-01", copy)], page_dir=tmp_path)
    with pytest.raises(PrivacyError, match="smaller than its minimum group size"):
        page.write(tmp_path / "index.html")
    assert not (tmp_path / "index.html").exists()
