"""When one machine stops being enough for activity logs, and the whole 1M-learner evaluation with
activity features (issue 11, items 5 and 6).

``--sizes``: lcstats' activity aggregation (``activity_features`` on a glob of Parquet files, DuckDB
through Ibis) at growing numbers of events for ``--learners`` learners, each run in a fresh
process (the ``lcstats`` worker of ``activity_speed.py``: same data generator, same
measurements: wall and CPU time of the call, peak RSS of the process during it), ``--repeats``
times interleaved across sizes; ``--with-duckdb`` adds the hand-written DuckDB query. The data
of each size is generated once under ``--work`` (``activity_speed.ensure_data``: 20M-row files;
300M events take about 5 GB of disk and 10 minutes). It prints a table and a straight-line fit of
wall time and peak memory against events, and the sizes where the fit crosses 10 minutes and the
machine's memory (an extrapolation past the largest size measured, and said so).

``--evaluation``: ``lcstats run`` on a 1M-learner programme (``lcstats simulate --out
<work>/m1 --learners 1000000 --seed 1``, made if missing) with the ``--events`` activity log (a
glob over the Parquet folder), a coaching-session log (one session per coached learner, on a day
0-21 days into their cohort's quarter: it gives ``coached_from``, the cut-off) and the example's
covariates (``engagement`` and ``pre_active_weeks`` among them). Measured as ``run_scaling.py``
measures a run: wall time, peak RSS of the process tree (CLI + kernel, sampled with psutil every
0.2 s) and each one's high-water mark, and the steps from papermill's timestamps; the
aggregation happens in the CLI's pre-flight. ``--eval-steps`` runs the same evaluation's steps in
one plain Python process (reading the tables, activity features, outcomes, estimation,
diagnostics, results and report) with per-step wall time and peak RSS. ``--source DIR`` runs
either with the lcstats of another source tree (e.g. a patched copy).

Usage::

    nice -n 5 .venv/bin/python benchmarks/activity_scaling.py --sizes 10_000_000 30_000_000 100_000_000
    nice -n 5 .venv/bin/python benchmarks/activity_scaling.py --sizes 300_000_000 --repeats 1
    nice -n 5 .venv/bin/python benchmarks/activity_scaling.py --evaluation --eval-steps
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import activity_speed  # noqa: E402
from run_scaling import PYTHON, VENV_BIN, _run_evaluation, run_measured  # noqa: E402
from run_speed import notebook_steps  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
GB = 1024**3
TEN_MINUTES = 600.0


def _int(text: str) -> int:
    return int(text.replace("_", ""))


# --- aggregation at growing sizes ---------------------------------------------------------------


def _measure(method: str, folder: Path, args: argparse.Namespace) -> dict:
    ns = argparse.Namespace(
        sources={"lcstats": args.source} if args.source else {},
        time_limit=args.time_limit,
        mem_limit_gb=args.mem_limit_gb,
        work=args.work,
    )
    return activity_speed.measure(method, folder, ns)


def scaling(args: argparse.Namespace) -> None:
    """Run the aggregation at every size, interleaved; the table and the fits."""
    folders = {}
    for n in args.sizes:
        folders[n] = activity_speed.ensure_data(
            args.work, n, args.learners, args.seed, args.rows_per_file
        )
        print(f"data: {folders[n]}", flush=True)
    methods = ["lcstats", *(["duckdb"] if args.with_duckdb else [])]
    runs = []
    for rep in range(args.repeats):
        for n in args.sizes:
            for method in methods:
                res = _measure(method, folders[n], args)
                res["events"] = n
                runs.append(res)
                with _log(args).open("a") as fh:
                    fh.write(json.dumps(res, default=str) + "\n")
                shown = f"{res['wall']:.1f} s" if res.get("wall") else res["status"]
                peak = f"{res['peak_rss'] / GB:.2f} GB" if res.get("peak_rss") else "-"
                print(
                    f"  round {rep + 1} {n:>13,} events {method:<8} {shown:>9}, peak {peak},"
                    f" load {res['load'][0]:.1f}->{res['load'][1]:.1f}",
                    flush=True,
                )
    print(f"runs appended to {_log(args)}")
    summary(args)


def _log(args: argparse.Namespace) -> Path:
    return args.work / f"activity_scaling-{args.learners}-s{args.seed}.jsonl"


def summary(args: argparse.Namespace) -> None:
    """The table and the fits over every run recorded (this and earlier invocations)."""
    runs = [json.loads(line) for line in _log(args).open()]
    sizes = sorted({r["events"] for r in runs})
    methods = list(dict.fromkeys(r["method"] for r in runs))
    rows = _scaling_rows(runs, sizes, methods)
    _print_scaling(rows)
    _extrapolate([r for r in rows if r["method"] == "lcstats" and r["wall"]])


def _scaling_rows(runs: list[dict], sizes: list[int], methods: list[str]) -> list[dict]:
    rows = []
    for n in sizes:
        for method in methods:
            ok = [
                r
                for r in runs
                if r["events"] == n and r["method"] == method and r["status"] == "ok"
            ]
            loads = [
                x for r in runs if r["events"] == n and r["method"] == method for x in r["load"]
            ]
            failed = [
                r["status"]
                for r in runs
                if r["events"] == n and r["method"] == method and r["status"] != "ok"
            ]
            rows.append(
                {
                    "events": n,
                    "method": method,
                    "n": len(ok),
                    "failed": failed,
                    "wall": statistics.median(r["wall"] for r in ok) if ok else None,
                    "range": (min(r["wall"] for r in ok), max(r["wall"] for r in ok))
                    if ok
                    else None,
                    "cpu": statistics.median(r["cpu"] for r in ok) if ok else None,
                    "peak": statistics.median(r["peak_rss"] for r in ok) if ok else None,
                    "load": (min(loads), max(loads)) if loads else None,
                }
            )
    return rows


def _print_scaling(rows: list[dict]) -> None:
    print(
        f"\n{'events':>13} {'method':<8} {'wall median (min-max)':>24} {'CPU':>8} {'peak RSS':>9}"
        f" {'events/s':>10} {'load':>9}"
    )
    for r in rows:
        if r["wall"] is None:
            print(f"{r['events']:>13,} {r['method']:<8} failed: {r['failed']}")
            continue
        print(
            f"{r['events']:>13,} {r['method']:<8} {r['wall']:>8.1f} s ({r['range'][0]:.1f}-"
            f"{r['range'][1]:.1f}) {r['cpu']:>7.1f}s {r['peak'] / GB:>6.2f} GB"
            f" {r['events'] / r['wall'] / 1e6:>7.2f} M/s {r['load'][0]:>4.1f}-{r['load'][1]:<4.1f}"
        )


def _extrapolate(rows: list[dict]) -> None:
    """Straight lines through (events, wall) and (events, peak): where 10 minutes and the RAM are."""
    if len(rows) < 2:
        return
    x = np.array([r["events"] for r in rows], float)
    wall = np.polyfit(x, [r["wall"] for r in rows], 1)
    peak = np.polyfit(x, [r["peak"] for r in rows], 1)
    ram = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    largest = x.max()
    print(
        f"\nfit (lcstats): wall = {wall[1]:.1f} s + {wall[0] * 1e8:.1f} s per 100M events;"
        f" peak RSS = {peak[1] / GB:.2f} GB + {peak[0] * 1e8 / GB:.2f} GB per 100M events"
    )
    for what, coef, limit, unit in (
        ("wall time reaches 10 minutes", wall, TEN_MINUTES, ""),
        (f"peak RSS reaches the machine's {ram / GB:.0f} GB", peak, ram, ""),
    ):
        if coef[0] <= 0:
            print(f"  {what}: not on this trend")
            continue
        at = (limit - coef[1]) / coef[0]
        note = "extrapolated" if at > largest else "within the measured range"
        print(f"  {what} at about {at / 1e6:,.0f}M events ({note}){unit}")


# --- the whole evaluation -----------------------------------------------------------------------


def _quarter_start(label: str) -> np.datetime64:
    year, quarter = label.split("-Q")
    return np.datetime64(f"{year}-{3 * (int(quarter) - 1) + 1:02d}-01", "D")


def ensure_programme(work: Path, time_limit: float) -> Path:
    """The 1M-learner programme (``lcstats simulate``) and its coaching-session log."""
    import pandas as pd

    folder = work / "m1"
    if not (folder / "truth.json").is_file():
        cmd = [str(VENV_BIN / "lcstats"), "simulate", "--out", str(folder)]
        res = run_measured(
            [*cmd, "--learners", "1000000", "--seed", "1"], time_limit=time_limit, mem_limit=None
        )
        print(f"simulated 1M learners in {res['wall']:.0f} s (peak {res['peak_tree'] / GB:.2f} GB)")
    sessions = folder / "coaching_sessions.parquet"
    if not sessions.is_file():
        learners = pd.read_csv(folder / "learners.csv", usecols=["learner_id", "cohort", "coached"])
        coached = learners[learners["coached"] == 1]
        rng = np.random.default_rng(1)
        starts = {c: _quarter_start(c) for c in coached["cohort"].unique()}
        first = coached["cohort"].map(starts).to_numpy("datetime64[D]")
        day = first + rng.integers(0, 22, len(coached))
        pd.DataFrame(
            {
                "learner_id": coached["learner_id"].to_numpy(),
                "session_on": day.astype("datetime64[s]"),
            }
        ).to_parquet(sessions, index=False)
    return folder


def write_params(work: Path, programme: Path, activity: Path) -> Path:
    """A params file like the example's, pointing at the 1M programme and the activity glob."""
    import yaml

    params = yaml.safe_load((ROOT / "params" / "example.yaml").read_text())
    params["evaluation"] = "activity-1m"
    for table in ("learners", "action_items", "skill_assessments"):
        params[table] = str(programme / f"{table}.csv")
    params["coaching_sessions"] = str(programme / "coaching_sessions.parquet")
    params["activity"] = activity_speed.events_glob(activity)
    params["baseline_end"] = activity_speed.BASELINE_END
    path = work / "params-activity-1m.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


STEP_CODE = r"""
import gc, json, os, sys, tempfile, time
from pathlib import Path

def status():
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(("VmRSS:", "VmHWM:")):
                k, v = line.split(":", 1)
                out[k] = int(v.split()[0]) * 1024
    return out
def step(name, fn):
    gc.collect()
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    t = time.perf_counter()
    value = fn()
    row = {"step": name, "seconds": time.perf_counter() - t, "hwm": status()["VmHWM"],
           "rss_after": status()["VmRSS"], "load": os.getloadavg()[0]}
    print(json.dumps(row), flush=True)
    return value

def imports():
    import lcstats, lcstats.reporting.report, lcstats.reporting.results  # noqa
    import ibis, duckdb  # noqa
    return lcstats
lc = step("imports", imports)
from lcstats.data.activity import FEATURES, with_activity_features
from lcstats.data.inputs import required_learner_columns
from lcstats.data.load import load_programme
from lcstats.params import as_spec
from lcstats.reporting.report import build_report
from lcstats.reporting.results import results_document, write_results
params = lc.load_params(sys.argv[1])
programme = step("read + validate tables", lambda: load_programme(
    params.learners, params.action_items, params.skill_assessments, columns=params.columns,
    scale=(params.scale_min, params.scale_max),
    required_learner_columns=required_learner_columns(params), derived_learner_columns=FEATURES,
    unknown_learners=params.unknown_learners, coaching_sessions=params.coaching_sessions,
    as_of=params.as_of))
programme = step("activity features (DuckDB)", lambda: with_activity_features(
    programme, as_spec(params.activity), baseline_end=params.baseline_end,
    window_days=params.activity_window_days, columns=params.columns.get("activity")))
print(json.dumps({"activity": {"rows_read": programme.activity.rows_read,
                               "rows_used": programme.activity.rows_used}}), flush=True)
outcomes = step("learner_outcomes", lambda: lc.learner_outcomes(programme, as_of=params.as_of))
effects = step("estimate_effects", lambda: lc.estimate_effects(
    outcomes, treatment=params.treatment, covariates=params.covariates, methods=params.methods,
    estimand=params.estimand, cluster=params.cluster, alpha=params.alpha))
diagnostics = step("diagnose", lambda: lc.diagnose(
    outcomes, effects, treatment=params.treatment, covariates=params.covariates,
    cluster=params.cluster, headline_method=params.headline_method, estimand=params.estimand,
    alpha=params.alpha, min_group_size=params.min_group_size))
out = Path(tempfile.mkdtemp(prefix="lcstats-activity-steps-"))
step("results + report", lambda: (write_results(results_document(
    params=params, programme=programme, outcomes=outcomes, effects=effects,
    diagnostics=diagnostics), out), build_report(
    params=params, programme=programme, outcomes=outcomes, effects=effects,
    diagnostics=diagnostics, run_id="bench").write(out / "report.html")))
"""


def evaluation(args: argparse.Namespace) -> None:
    """``lcstats run`` (and, with --eval-steps, the steps in one process) at 1M learners."""
    programme = ensure_programme(args.work, args.time_limit)
    activity = activity_speed.ensure_data(
        args.work, args.events, args.learners, args.seed, args.rows_per_file
    )
    params = write_params(args.work, programme, activity)
    print(f"params: {params}; activity {activity}", flush=True)
    for rep in range(args.repeats):
        load = os.getloadavg()[0]
        ns = argparse.Namespace(
            time_limit=args.time_limit, mem_limit_gb=args.mem_limit_gb, work=args.work, format="csv"
        )
        if args.source:
            res, steps = _run_source(params, args)
        else:
            res, steps = _run_evaluation({"params": params}, 1_000_000, ns)
        status = res["stopped"] or ("ok" if res["rc"] == 0 else f"exit {res['rc']}")
        print(
            f"\nlcstats run, round {rep + 1} ({status}; load {load:.1f}->{os.getloadavg()[0]:.1f}):"
            f" {res['wall']:.1f} s; peak RSS of the tree {res['peak_tree'] / GB:.2f} GB;"
            f" CLI {res['hwm'].get('cli', 0) / GB:.2f} GB, kernel {res['hwm'].get('kernel', 0) / GB:.2f} GB",
            flush=True,
        )
        for name, seconds in steps.items():
            if isinstance(seconds, float):
                print(f"    {name:<40} {seconds:>8.1f} s")
        if res["rc"] != 0:
            print("    stderr tail:", (args.work / "run-csv-1000000.log").read_text()[-800:])
    if args.eval_steps:
        _eval_steps(params, args)


def _run_source(params: Path, args: argparse.Namespace) -> tuple[dict, dict]:
    """``lcstats run`` with the lcstats of another source tree."""
    with tempfile.TemporaryDirectory(prefix="lcstats-activity-run-") as tmp:
        res = run_measured(
            [str(VENV_BIN / "lcstats"), "run", str(params), "--output-dir", tmp],
            time_limit=args.time_limit,
            mem_limit=args.mem_limit_gb * GB,
            log=args.work / "run-csv-1000000.log",
            source=args.source,
        )
        steps = {}
        notebooks = sorted(Path(tmp).glob("*/*/evaluation.ipynb"))
        if notebooks:
            with contextlib.suppress(KeyError, TypeError, ValueError):
                steps = notebook_steps(notebooks[0], res["t_start"], res["t_end"])
    return res, steps


def _eval_steps(params: Path, args: argparse.Namespace) -> None:
    res = run_measured(
        [PYTHON, "-c", STEP_CODE, str(params)],
        time_limit=args.time_limit,
        mem_limit=args.mem_limit_gb * GB,
        log=args.work / "eval-steps.log",
        source=args.source,
    )
    print("\nthe evaluation's steps in one Python process:")
    print(f"  {'step':<30} {'seconds':>8} {'peak RSS':>9} {'RSS after':>10} {'load':>5}")
    for line in res["stdout"].splitlines():
        row = json.loads(line) if line.startswith("{") else None
        if row and "step" in row:
            print(
                f"  {row['step']:<30} {row['seconds']:>8.1f} {row['hwm'] / GB:>6.2f} GB"
                f" {row['rss_after'] / GB:>7.2f} GB {row['load']:>5.1f}"
            )
        elif row:
            print(f"  {row}")
    print(
        f"  whole process: {res['wall']:.1f} s, exit {res['rc']}, {res['stopped'] or 'not stopped'}"
    )


def _parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=_int, nargs="*", default=[], help="events per run (scaling)")
    ap.add_argument("--learners", type=_int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--with-duckdb", action="store_true", help="also the hand-written DuckDB query")
    ap.add_argument("--summary", action="store_true", help="only the table of the runs recorded")
    ap.add_argument("--evaluation", action="store_true", help="lcstats run at 1M learners")
    ap.add_argument("--eval-steps", action="store_true", help="the evaluation's steps in-process")
    ap.add_argument("--events", type=_int, default=100_000_000, help="activity of the evaluation")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--rows-per-file", type=_int, default=20_000_000)
    ap.add_argument("--work", type=Path, default=Path("/tmp/lcstats-bench"))
    ap.add_argument("--time-limit", type=float, default=3600, help="seconds per run")
    ap.add_argument("--mem-limit-gb", type=float, default=16, help="kill a run past this RSS")
    ap.add_argument("--source", type=Path, help="run the lcstats of this source tree")
    args = ap.parse_args()
    if not args.sizes and not args.evaluation and not args.summary:
        args.sizes = [10_000_000, 30_000_000, 100_000_000]
    return args


def main() -> None:
    args = _parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    print(f"machine: {os.cpu_count()} cores; load average {os.getloadavg()}", flush=True)
    if args.summary:
        summary(args)
        return
    if args.sizes:
        scaling(args)
    if args.evaluation:
        evaluation(args)


if __name__ == "__main__":
    main()
