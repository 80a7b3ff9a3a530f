"""The leadership report shows no learner, escapes hostile labels and suppresses small groups.

A small simulated programme is rewritten so that it looks like a real HR export (learner ids
``EMP-0001234``, manager ids ``MGR-000123``), with hostile category names (a cohort, a role and a
skill that are HTML, an event handler and a ``javascript:`` link) and a cohort of three learners.
The evaluation is run end to end and the published report.html and results.json are checked as
text. A second run, whose title names a learner, must be stopped by the runner's privacy gate.
"""

from __future__ import annotations

import json
import re
from concurrent.futures import ProcessPoolExecutor
from html.parser import HTMLParser
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lcstats.running.runner import identifier_leaks, run_evaluation
from tests.conftest import write_params

MIN_GROUP = 5
HOSTILE_COHORT = "<script>alert(1)</script>"
HOSTILE_ROLE = "<img src=x onerror=alert(1)>"
HOSTILE_SKILL = "[x](javascript:alert(1))"
TINY_COHORT = "2025-Q2 pilot"
TINY_LEARNERS = 3  # two coached, one not: both cells hidden, and complementary cells with them
# the example's covariates: the three-learner cohort is one of the categories adjusted for (it has
# coached and uncoached learners; were all three coached, the propensity model could not be fitted)
COVARIATES = ["tenure_months", "engagement", "role", "cohort", "manager_coached"]


def hostile_programme(out: Path) -> dict[str, set[str]]:
    """Write a rewritten simulated programme to `out`; return its learner and manager ids."""
    from lcstats.data.simulate import simulate_programme, write_programme

    sim = simulate_programme(n_learners=320, seed=41, truth_draws=20)
    write_programme(sim, out)
    tables = {
        name: pd.read_csv(out / f"{name}.csv", dtype=str, keep_default_na=False)
        for name in ("learners", "action_items", "skill_assessments")
    }
    learners = tables["learners"]
    rng = np.random.default_rng(5)
    old = learners["learner_id"].tolist()
    numbers = rng.choice(np.arange(1_000, 100_000), size=len(old), replace=False)  # EMP-0001234
    learner_map = {o: f"EMP-{n:07d}" for o, n in zip(old, numbers, strict=True)}
    managers = sorted(set(learners["manager_id"]))
    numbers = rng.choice(np.arange(100, 1_000), size=len(managers), replace=False)  # MGR-000123
    manager_map = {o: f"MGR-{n:06d}" for o, n in zip(managers, numbers, strict=True)}
    for frame in tables.values():
        frame["learner_id"] = frame["learner_id"].map(learner_map)
    learners["manager_id"] = learners["manager_id"].map(manager_map)

    cohorts = sorted(set(learners["cohort"]))
    learners["cohort"] = learners["cohort"].replace({cohorts[0]: HOSTILE_COHORT})
    roles = learners["role"].value_counts()
    learners["role"] = learners["role"].replace({roles.index[0]: HOSTILE_ROLE})
    skills = tables["skill_assessments"]["skill"].value_counts()
    tables["skill_assessments"]["skill"] = tables["skill_assessments"]["skill"].replace(
        {skills.index[0]: HOSTILE_SKILL}
    )
    # a tiny cohort: two coached learners and one not, taken from the last cohort
    last = learners["cohort"] == cohorts[-1]
    coached = learners.index[last & (learners["coached"] == "1")][:2]
    other = learners.index[last & (learners["coached"] == "0")][: TINY_LEARNERS - 2]
    learners.loc[coached.union(other), "cohort"] = TINY_COHORT

    for name, frame in tables.items():
        frame.to_csv(out / f"{name}.csv", index=False, lineterminator="\n")
    assert learners["learner_id"].is_unique
    assert (learners["cohort"] == TINY_COHORT).sum() == TINY_LEARNERS
    return {"learners": set(learner_map.values()), "managers": set(manager_map.values())}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """Two runs on the hostile programme, started side by side in separate processes.

    One is the evaluation to check; the other's title names a learner, so the privacy gate must
    stop it. Both write to the same evaluation folder (the second queues behind the first's
    lock), so `latest` must end up at the good run.
    """
    tmp = tmp_path_factory.mktemp("privacy")
    ids = hostile_programme(tmp / "data")
    common = {"evaluation": "hostile", "covariates": COVARIATES, "min_group_size": MIN_GROUP}
    good = write_params(tmp / "hostile.yaml", tmp / "data", **common)
    leaker = sorted(ids["learners"])[0]
    leaky = write_params(
        tmp / "leaky.yaml", tmp / "data", **common, title=f"Coaching report for {leaker}"
    )
    reports = tmp / "reports"
    with ProcessPoolExecutor(max_workers=2, mp_context=get_context("spawn")) as pool:
        runs = [
            pool.submit(run_evaluation, p, output_dir=reports, wait=True) for p in (good, leaky)
        ]
        outcome, blocked = (r.result() for r in runs)
    return {
        "outcome": outcome,
        "blocked": blocked,
        "leaker": leaker,
        "ids": ids,
        "reports": reports,
    }


def test_run_succeeds(hostile):
    outcome = hostile["outcome"]
    assert outcome.status == "succeeded", outcome.message
    assert outcome.exit_code == 0
    assert (outcome.run_dir / "report.html").is_file()


@pytest.fixture(scope="module")
def report(hostile) -> str:
    outcome = hostile["outcome"]
    if outcome.status != "succeeded":
        pytest.fail(f"the run did not succeed: {outcome.message}")
    return (outcome.run_dir / "report.html").read_text(encoding="utf-8")


def test_report_shows_no_learner_or_manager_id(report, hostile):
    ids = hostile["ids"]
    every = ids["learners"] | ids["managers"]
    assert identifier_leaks(report, every) == []
    shown = [i for i in sorted(every) if i in report]  # plain substrings too, images included
    assert shown == []
    # nor the bare number of an id (e.g. "0001234" after a prefix was stripped)
    numbers = {i.split("-", 1)[1] for i in every}
    assert (
        not set(re.findall(r"(?<![\w-])\d{6,7}(?![\w-])", re.sub(r"data:[^\"']+", "", report)))
        & numbers
    )


def test_results_json_holds_no_learner_or_manager_id(hostile):
    outcome, ids = hostile["outcome"], hostile["ids"]
    text = (outcome.run_dir / "results.json").read_text(encoding="utf-8")
    assert [i for i in sorted(ids["learners"] | ids["managers"]) if i in text] == []


def test_hostile_labels_appear_only_escaped(report):
    lower = report.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in report  # the cohort is shown, as text
    assert "&lt;img src=x onerror=alert(1)&gt;" in report  # so is the role
    assert "<script" not in lower
    assert "<img src=x" not in lower
    # no element carries an event handler attribute
    assert not re.search(r"<[a-z][^>]*\son[a-z]+\s*=", lower)
    # no link or source points at javascript: (escaped text such as "[x](javascript:" is fine)
    assert not re.search(r"""(?:href|src|action)\s*=\s*["']?\s*javascript:""", lower)
    assert "<a " not in lower  # the report has no links at all


class _Tables(HTMLParser):
    """The report's tables as lists of rows of cell text, keyed by the heading just before them."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._heading = ""
        self._in_heading = False
        self._rows: list[list[str]] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag in ("h2", "h3"):
            self._in_heading, self._heading = True, ""
        elif tag == "table":
            self._rows = []
        elif tag == "tr" and self._rows is not None:
            self._rows.append([])
        elif tag in ("td", "th") and self._rows is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("h2", "h3"):
            self._in_heading = False
        elif tag in ("td", "th") and self._cell is not None and self._rows is not None:
            self._rows[-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table" and self._rows is not None:
            self.tables.setdefault(self._heading, self._rows)
            self._rows = None

    def handle_data(self, data):
        if self._in_heading:
            self._heading += data
        if self._cell is not None:
            self._cell.append(data)


def _tables(report: str) -> dict[str, pd.DataFrame]:
    parser = _Tables()
    parser.feed(report)
    return {
        heading: pd.DataFrame(rows[1:], columns=rows[0])
        for heading, rows in parser.tables.items()
        if rows
    }


BREAKDOWNS = {
    "Learners by cohort": ("Coached", "Not coached"),
    "Learners by role": ("Coached", "Not coached"),
    "On-time completion by cohort": ("Coached: learners", "Not coached: learners"),
    "On-time completion by role": ("Coached: learners", "Not coached: learners"),
    "Gap closure": ("Learners",),
    "Those who learn and those who don't": ("Learners",),
    "Success cases": ("Learners",),
}


def test_every_group_count_shown_is_large_enough_or_suppressed(report):
    tables = _tables(report)
    assert set(BREAKDOWNS) <= set(tables), sorted(tables)
    for heading, columns in BREAKDOWNS.items():
        for col in columns:
            for value in tables[heading][col]:
                if value == "suppressed":
                    continue
                n = int(value.replace(",", ""))
                assert n == 0 or n >= MIN_GROUP, (heading, col, value)


@pytest.mark.parametrize(
    "heading", ["Learners by cohort", "On-time completion by cohort"], ids=["counts", "follow"]
)
def test_tiny_cohort_is_suppressed_with_a_complementary_cell(report, heading):
    frame = _tables(report)[heading].set_index("Cohort")
    assert HOSTILE_COHORT in frame.index  # html.parser unescapes the text: the label is intact
    counts = frame[list(BREAKDOWNS[heading])]
    tiny = counts.loc[TINY_COHORT]
    assert (tiny == "suppressed").all(), tiny.to_dict()
    # the tiny cohort's cells cannot be recovered from the column totals (the header shows how
    # many learners were coached): each of its columns hides at least one other cohort's cell
    others = counts.drop(index=TINY_COHORT)
    for col in counts.columns:
        if tiny[col] == "suppressed":
            assert (others[col] == "suppressed").any(), (heading, col, counts.to_dict())
    # and no row shows exactly one hidden cell next to a visible one (total minus the other)
    assert ((counts == "suppressed").sum(axis=1) != 1).all(), counts.to_dict()
    # the rates of hidden counts are hidden too
    if heading.startswith("On-time"):
        rates = frame[["Coached: on time", "Not coached: on time"]]
        assert ((rates == "suppressed").to_numpy() == (counts == "suppressed").to_numpy()).all()


def test_report_says_how_many_cells_were_hidden(report):
    found = re.search(r"Cells suppressed for privacy in this report: (\d+)", report)
    assert found and int(found.group(1)) >= 4


def test_identifier_leaks_finds_ids_in_text_and_attributes():
    ids = {"EMP-0001234", "MGR-000123"}
    assert identifier_leaks("<p>Report for EMP-0001234</p>", ids) == ["EMP-0001234"]
    assert identifier_leaks("<td>MGR&#45;000123</td>", ids) == ["MGR-000123"]  # entities decoded
    assert identifier_leaks('<img alt="EMP-0001234">', ids) == ["EMP-0001234"]
    assert identifier_leaks("<p>EMP-00012345 and XMGR-000123</p>", ids) == []  # whole words only
    assert identifier_leaks("<img src='data:image/png;base64,EMP0001234'>", ids) == []


def test_privacy_gate_blocks_a_report_that_names_a_learner(hostile):
    blocked, learner, reports = hostile["blocked"], hostile["leaker"], hostile["reports"]
    assert blocked.status == "failed" and blocked.exit_code == 1, blocked
    assert "privacy gate" in blocked.message
    assert learner not in blocked.message
    run_dir = blocked.run_dir
    assert run_dir is not None and run_dir.parent == reports / "hostile"
    assert not (run_dir / "report.html").exists()  # not published
    kept = (run_dir / "report.blocked.html").read_text(encoding="utf-8")  # kept for the analyst
    assert f"Coaching report for {learner}" in kept  # the title is what leaked
    failure = (run_dir / "failure.html").read_text(encoding="utf-8")
    assert "privacy gate" in failure and learner not in failure
    assert json.loads((run_dir / "run.json").read_text())["status"] == "failed"
    # `latest` points at the good run, never at the blocked one
    latest = reports / "hostile" / "latest"
    assert latest.resolve() == hostile["outcome"].run_dir.resolve() != run_dir.resolve()
    assert not (latest / "report.blocked.html").exists()
