"""Wall time of one whole evaluation (`lcstats run`) against the bare papermill + nbconvert pair.

Issue 5.7: "a run costs what its statistics cost, not what the tooling costs". This script runs,
``--repeats`` times each (interleaved, after one unrecorded warm-up of each):

(a) ``lcstats run params/example.yaml --output-dir <tmp>`` as a subprocess, timed by wall clock,
    and broken down into steps with the timestamps papermill records in the executed notebook
    (``metadata.papermill`` of the notebook and of every cell). The run starts the kernel first
    (it imports the statistics libraries while the CLI checks the inputs), so the first two
    steps overlap on the machine's two cores:

    ======================================  =====================================================
    CLI start + params/data pre-flight      process start -> papermill's notebook start
                                            (imports, params, inputs read and validated, handed
                                            over; the kernel starts meanwhile)
    waiting for the kernel                  notebook start -> first cell start (what is left
                                            of the kernel's start and imports)
    parameters cells                        cells before the first ``## `` heading
    data load (in kernel)                   cells under "## 1. Load and validate ..." (the
                                            validated tables taken over, learner outcomes)
    estimation                              cells under "## 2. Effects ..."
    diagnostics                             cells under "## 3. How far to trust them"
    plotting + HTML report                  cells under "## 4. Results and report"
    kernel shutdown                         last cell end -> papermill's notebook end
    after papermill                         notebook end -> process exit (kernel stop, privacy
                                            gate, run.json, ledger, interpreter exit)
    ======================================  =====================================================

    Cells are mapped to steps by their section heading (keywords, else position).

(b) the bare baseline on the same machine: ``papermill`` on a one-cell notebook (``print(1)``,
    kernel ``lcstats``) and then ``jupyter nbconvert --to html`` of its output: two subprocesses,
    the venv's executables.

It prints a table of medians (with min and max) and the ratio whole evaluation / bare pair.

``--profile`` adds where the time goes: import times of the CLI process and of the kernel
(``python -X importtime``) and the evaluation's steps run in one plain Python process (what the
statistics themselves cost).

Usage::

    .venv/bin/python benchmarks/run_speed.py                 # 5 repeats
    .venv/bin/python benchmarks/run_speed.py --repeats 9 --profile
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = (
    ROOT / ".venv" / "bin" if (ROOT / ".venv" / "bin").is_dir() else Path(sys.executable).parent
)
PYTHON = str(VENV_BIN / "python")
NOTEBOOK_DIR = ROOT / "notebooks"

STEPS = (
    "CLI start + params/data pre-flight",
    "waiting for the kernel",
    "parameters cells",
    "data load (in kernel)",
    "estimation",
    "diagnostics",
    "plotting + HTML report",
    "kernel shutdown",
    "after papermill (gate, run.json, exit)",
)
SECTIONS = (  # (step, keywords of its heading), in notebook order
    ("data load (in kernel)", ("load", "valid", "input")),
    ("estimation", ("effect", "estimat")),
    ("diagnostics", ("trust", "diagnos", "balance")),
    ("plotting + HTML report", ("report", "result")),
)


def _ts(stamp: str) -> float:
    return dt.datetime.fromisoformat(stamp).timestamp()


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _section_of(heading: str, seen: int) -> str:
    low = heading.lower()
    for step, words in SECTIONS:
        if any(w in low for w in words):
            return step
    return SECTIONS[min(seen, len(SECTIONS) - 1)][0]  # by position


def notebook_steps(nb_path: Path, t_start: float, t_end: float) -> dict[str, float]:
    """Seconds per step of one run, from papermill's timestamps and the process's start and end.

    A run stopped part-way (no end time) counts the cell that was running up to `t_end` and
    adds ``"stopped in"`` (the step) to the result.
    """
    nb = json.loads(nb_path.read_text(encoding="utf-8"))
    meta = nb["metadata"]["papermill"]
    nb_start = _ts(meta["start_time"])
    nb_end = _ts(meta["end_time"]) if meta.get("end_time") else None
    spans: dict[str, list[float]] = {}
    section, seen, running = "parameters cells", 0, None
    first_cell = last_cell = None
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            for line in "".join(cell["source"]).splitlines():
                if line.startswith("## "):
                    section = _section_of(line[3:], seen)
                    seen += 1
                    break
        pm = cell.get("metadata", {}).get("papermill", {})
        if not pm.get("start_time"):
            continue
        a = _ts(pm["start_time"])
        if pm.get("end_time"):
            b = _ts(pm["end_time"])
        else:
            b, running = t_end, section
        first_cell = a if first_cell is None else min(first_cell, a)
        last_cell = b if last_cell is None else max(last_cell, b)
        lo, hi = spans.get(section, [a, b])
        spans[section] = [min(lo, a), max(hi, b)]
    steps: dict = {s: 0.0 for s in STEPS}
    steps["CLI start + params/data pre-flight"] = nb_start - t_start
    steps["waiting for the kernel"] = (first_cell if first_cell is not None else t_end) - nb_start
    for name, (a, b) in spans.items():
        steps[name] = b - a
    if nb_end is not None and last_cell is not None:
        steps["kernel shutdown"] = nb_end - last_cell
        steps["after papermill (gate, run.json, exit)"] = t_end - nb_end
    else:
        steps["stopped in"] = running or ("waiting for the kernel" if first_cell is None else "?")
    return steps


def run_evaluation(params: Path, out: Path, cmd: list[str] | None = None) -> dict[str, float]:
    """One `lcstats run` subprocess; returns its wall time and step breakdown."""
    cmd = cmd or [str(VENV_BIN / "lcstats"), "run", str(params), "--output-dir", str(out)]
    t0 = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    t1 = time.time()
    if proc.returncode != 0:
        raise SystemExit(f"lcstats run failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    run_dir = Path(proc.stdout.strip().splitlines()[-1])
    steps = notebook_steps(run_dir / "evaluation.ipynb", t0, t1)
    steps["whole evaluation"] = t1 - t0
    return steps


def trivial_notebook(path: Path) -> None:
    nb = {
        "cells": [
            {
                "cell_type": "code",
                "execution_count": None,
                "metadata": {},
                "outputs": [],
                "source": ["print(1)"],
            }
        ],
        "metadata": {
            "kernelspec": {
                "display_name": "Python (lcstats)",
                "language": "python",
                "name": "lcstats",
            },
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 4,
    }
    path.write_text(json.dumps(nb), encoding="utf-8")


def run_bare_pair(work: Path) -> dict[str, float]:
    """papermill on a one-cell notebook, then jupyter nbconvert --to html: two subprocesses."""
    src, out = work / "trivial.ipynb", work / "trivial_out.ipynb"
    trivial_notebook(src)
    times = {}
    for name, cmd in (
        (
            "papermill (trivial notebook)",
            [str(VENV_BIN / "papermill"), str(src), str(out), "-k", "lcstats"],
        ),
        (
            "jupyter nbconvert --to html",
            [str(VENV_BIN / "jupyter"), "nbconvert", "--to", "html", str(out)],
        ),
    ):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=work)
        times[name] = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"{cmd[0]} failed:\n{proc.stderr[-3000:]}")
    times["bare pair"] = sum(times.values())
    return times


def _table(rows: dict[str, list[float]], title: str, unit: str = "s") -> None:
    width = max(len(k) for k in rows)
    print(f"\n{title}")
    print(f"  {'':<{width}}  {'median':>8}  {'min':>8}  {'max':>8}")
    for name, values in rows.items():
        if not values:
            continue
        print(
            f"  {name:<{width}}  {statistics.median(values):>7.2f}{unit}  {min(values):>7.2f}{unit}"
            f"  {max(values):>7.2f}{unit}"
        )


# --- profiling ---------------------------------------------------------------------------------

IMPORT_LINE = re.compile(r"import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)")
WATCHED = (
    "lcstats",
    "lcstats.estimation.analysis",
    "statsmodels.api",
    "scipy.stats",
    "pandas",
    "pandera.pandas",
    "pydantic",
    "papermill",
    "nbformat",
    "jsonschema",
    "rfc3987_syntax",
    "nbclient",
    "jupyter_client",
    "matplotlib.pyplot",
    "seaborn",
    "lcstats.reporting.report",
)


def import_profile(code: str, repeats: int, pre: str = "") -> tuple[list[float], dict[str, float]]:
    """Wall time of a fresh `python -X importtime -c code` and the median cumulative import
    time (s) of the watched modules (as first imported, i.e. where the cost was paid)."""
    walls, cums = [], {}
    for _ in range(repeats):
        t0 = time.perf_counter()
        proc = subprocess.run(
            [PYTHON, "-X", "importtime", "-c", pre + code], capture_output=True, text=True
        )
        walls.append(time.perf_counter() - t0)
        for m in IMPORT_LINE.finditer(proc.stderr):
            if m.group(4) in WATCHED:
                cums.setdefault(m.group(4), []).append(int(m.group(2)) / 1e6)
    return walls, {k: statistics.median(v) for k, v in cums.items()}


STEP_CODE = r"""
import json, sys, tempfile, time
from pathlib import Path
T = {}
t = time.perf_counter()
import lcstats as lc
T["import lcstats"] = time.perf_counter() - t; t = time.perf_counter()
from lcstats.reporting.report import build_report
from lcstats.reporting.results import results_document, write_results
T["import lcstats.reporting.report, .results"] = time.perf_counter() - t; t = time.perf_counter()
params = lc.load_params(sys.argv[1])
programme = lc.load_inputs(params)
T["load_programme (read + validate)"] = time.perf_counter() - t; t = time.perf_counter()
outcomes = lc.learner_outcomes(programme, as_of=params.as_of)
T["learner_outcomes"] = time.perf_counter() - t; t = time.perf_counter()
effects = lc.estimate_effects(outcomes, treatment=params.treatment, covariates=params.covariates,
    methods=params.methods, estimand=params.estimand, cluster=params.cluster, alpha=params.alpha)
T["estimate_effects"] = time.perf_counter() - t; t = time.perf_counter()
diagnostics = lc.diagnose(outcomes, effects, treatment=params.treatment, covariates=params.covariates,
    cluster=params.cluster, headline_method=params.headline_method, estimand=params.estimand,
    alpha=params.alpha, min_group_size=params.min_group_size)
T["diagnose"] = time.perf_counter() - t; t = time.perf_counter()
out = Path(tempfile.mkdtemp())
write_results(results_document(params=params, programme=programme, outcomes=outcomes,
    effects=effects, diagnostics=diagnostics), out)
T["results.json"] = time.perf_counter() - t; t = time.perf_counter()
import lcstats.reporting.report as rep
rep.FIGURE_PROCESSES = 1  # every figure drawn in this process, where its time is taken
render = [0.0]
original = rep.figure_uri
def timed_uri(fig, **kw):
    t0 = time.perf_counter()
    try:
        return original(fig, **kw)
    finally:
        render[0] += time.perf_counter() - t0
rep.figure_uri = timed_uri
report = build_report(params=params, programme=programme, outcomes=outcomes, effects=effects,
                      diagnostics=diagnostics, run_id="bench")
report.write(out / "report.html")
T["build_report + write"] = time.perf_counter() - t
T["  of which figure PNG rendering"] = render[0]
import pickle
t = time.perf_counter(); blob = pickle.dumps(programme, protocol=5)
back = pickle.loads(blob)
T["(pickle round trip of the Programme)"] = time.perf_counter() - t
print(json.dumps(T))
"""


def step_profile(params: Path, repeats: int) -> dict[str, list[float]]:
    """The evaluation's steps in one plain Python process (no papermill, no kernel)."""
    rows: dict[str, list[float]] = {}
    for _ in range(repeats):
        proc = subprocess.run(
            [PYTHON, "-c", STEP_CODE, str(params)],
            capture_output=True,
            text=True,
            cwd=ROOT,
        )
        if proc.returncode != 0:
            raise SystemExit(proc.stderr[-3000:])
        for k, v in json.loads(proc.stdout.strip().splitlines()[-1]).items():
            rows.setdefault(k, []).append(v)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5, help="runs of each (default 5)")
    ap.add_argument("--params", type=Path, default=ROOT / "params" / "example.yaml")
    ap.add_argument("--no-warmup", action="store_true", help="skip the unrecorded first runs")
    ap.add_argument("--profile", action="store_true", help="imports, in-process steps, figures")
    args = ap.parse_args()

    print(
        f"lcstats run {args.params.relative_to(ROOT) if args.params.is_relative_to(ROOT) else args.params}"
    )
    print(f"machine: {os.cpu_count()} cores; load average at start: {loadavg()}")
    evals: dict[str, list[float]] = {s: [] for s in (*STEPS, "whole evaluation")}
    bare: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="lcstats-speed-") as tmp:
        work = Path(tmp)
        for i in range(args.repeats + (0 if args.no_warmup else 1)):
            out = work / f"run{i}"
            steps = run_evaluation(args.params, out)
            pair = run_bare_pair(work)
            if i == 0 and not args.no_warmup:
                continue
            for k, v in steps.items():
                evals[k].append(v)
            for k, v in pair.items():
                bare.setdefault(k, []).append(v)
            print(
                f"  repeat {len(evals['whole evaluation'])}: evaluation {steps['whole evaluation']:.2f} s,"
                f" bare pair {pair['bare pair']:.2f} s (load {loadavg()})",
                flush=True,
            )
    in_kernel = [
        sum(evals[s][i] for s in STEPS[2:7]) for i in range(len(evals["whole evaluation"]))
    ]
    _table(evals, f"whole evaluation, medians of {args.repeats} runs")
    _table({"sum of the cells (in kernel)": in_kernel}, "of which the notebook's cells")
    _table(bare, "bare pair: papermill print(1) + jupyter nbconvert --to html")
    whole, pair = statistics.median(evals["whole evaluation"]), statistics.median(bare["bare pair"])
    print(
        f"\nratio whole evaluation / bare pair: {whole / pair:.2f}"
        f" ({whole:.2f} s / {pair:.2f} s); target at most 0.80 (issue 14)"
    )
    print(f"load average at end: {loadavg()}")

    if args.profile:
        reps = max(3, args.repeats // 2)
        cli_code = "import lcstats.cli, lcstats.running.runner, lcstats.data.inputs, lcstats.data.load, papermill"
        for label, code, pre in (
            ("CLI process imports (lcstats.running.runner blocks rfc3987_syntax)", cli_code, ""),
            ("  until the kernel is started", "import lcstats.cli, lcstats.running.runner", ""),
            (
                "kernel's warm-up imports",
                "from lcstats.running.kernel import WARM_IMPORTS; exec(WARM_IMPORTS)",
                "",
            ),
            ("ipykernel start-up imports", "import ipykernel.kernelapp", ""),
        ):
            walls, cums = import_profile(code, reps, pre)
            print(f"\n{label}: python -c '...' wall median {statistics.median(walls):.2f} s")
            for mod in WATCHED:
                if mod in cums:
                    print(f"    {mod:<20} {cums[mod]:6.2f} s (cumulative, -X importtime)")
        rows = step_profile(args.params, reps)
        _table(rows, f"the evaluation's steps in one plain Python process, medians of {reps}")


if __name__ == "__main__":
    main()
