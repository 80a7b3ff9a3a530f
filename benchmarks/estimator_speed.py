"""Speed and memory of AIPW (ATT, cluster-robust) at scale, against one statsmodels Logit fit.

The reference is a single ``statsmodels`` ``Logit(...).fit(method="newton")`` on the same design
matrix (intercept, numeric covariates and category indicators): the propensity model alone, which
AIPW has to fit anyway. The ratio says how much the rest of the estimator costs on top of it
(target of issue 14: at most 1.0). lcstats fits the same model by the same Newton-Raphson steps
with one pass over the rows per step, and its outcome model from the k x k cross-product.

Every measurement runs in a fresh Python process (``--worker``): the data are generated there
(not timed), then one call is timed with ``time.perf_counter``. Peak memory is the process's
resident-set high-water mark (``VmHWM``, reset after the data are built through
``/proc/self/clear_refs`` so that it covers the call only; ``ru_maxrss`` of the whole process
is printed too). tracemalloc would miss most numpy and BLAS allocations.

Data: ``--n`` learners in teams of about 10 (the cluster), 20 covariates: 16 numeric and 4
categorical (5, 4, 8 and 6 levels), so the design matrix has 36 columns; treatment is logistic
in the covariates (about 30% treated), the outcome linear with a team effect.

Usage::

    .venv/bin/python benchmarks/estimator_speed.py                    # n = 1,000,000, 3 repeats
    .venv/bin/python benchmarks/estimator_speed.py --n 200000 --repeats 5
    .venv/bin/python benchmarks/estimator_speed.py --profile          # cProfile of one AIPW call
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

N_NUMERIC = 16
CATEGORIES = {"region": 5, "cohort": 4, "grade": 8, "function": 6}
TEAM_SIZE = 10
BLAS_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def make_data(n: int, seed: int):
    """A learner table with 20 covariates, a 0/1 treatment, an outcome and a team column."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    cols = {}
    num = rng.standard_normal((n, N_NUMERIC))
    for j in range(N_NUMERIC):
        cols[f"x{j:02d}"] = num[:, j]
    cats = {}
    for name, levels in CATEGORIES.items():
        codes = rng.integers(levels, size=n)
        cats[name] = codes
        cols[name] = pd.Categorical.from_codes(codes, [f"{name}_{k}" for k in range(levels)])
    beta_t = rng.normal(0, 0.25, N_NUMERIC)
    logit = -0.9 + num @ beta_t + 0.2 * (cats["grade"] - 3.5) / 2.3
    t = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    team = rng.integers(max(1, n // TEAM_SIZE), size=n)
    beta_y = rng.normal(0, 0.5, N_NUMERIC)
    u = 0.5 * rng.standard_normal(team.max() + 1)[team]
    y = 1.0 + 0.3 * t + num @ beta_y + 0.1 * cats["region"] + u + rng.standard_normal(n)
    frame = pd.DataFrame(cols)
    frame["coached"] = t
    frame["outcome"] = y
    frame["team_id"] = team
    covariates = [f"x{j:02d}" for j in range(N_NUMERIC)] + list(CATEGORIES)
    return frame, covariates


def _rss_kib(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def worker(task: str, n: int, seed: int, profile: bool) -> dict:
    """Build the data, then time one call of ``task`` ("aipw" or "logit")."""
    import numpy as np
    import statsmodels.api as sm

    from lcstats.estimation.effects import _design, estimate_effect

    frame, covariates = make_data(n, seed)
    if task == "logit":
        x, _ = _design(frame, covariates)  # the same design matrix as lcstats builds (not timed)
        t = frame["coached"].to_numpy(dtype=float)

        def call():
            res = sm.Logit(t, x).fit(method="newton", disp=0)
            return float(np.asarray(res.params)[0])
    else:

        def call():
            est = estimate_effect(
                frame,
                outcome="outcome",
                treatment="coached",
                covariates=covariates,
                method="aipw",
                estimand="ATT",
                cluster="team_id",
            )
            return est.estimate

    before = _rss_kib("VmRSS")
    reset = _reset_peak()
    if profile:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        start = time.perf_counter()
        prof.runcall(call)
        seconds = time.perf_counter() - start
        stats = pstats.Stats(prof, stream=sys.stderr)
        stats.sort_stats("cumulative").print_stats(40)
        stats.sort_stats("tottime").print_stats(25)
    else:
        start = time.perf_counter()
        call()
        seconds = time.perf_counter() - start
    return {
        "task": task,
        "n": n,
        "seconds": seconds,
        "load": os.getloadavg()[0],
        "rss_before_mib": before / 1024,
        "peak_call_mib": _rss_kib("VmHWM") / 1024 if reset else float("nan"),
        "maxrss_process_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_worker(task: str, args: argparse.Namespace, profile: bool = False) -> dict:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        task,
        "--n",
        str(args.n),
        "--seed",
        str(args.seed),
    ]
    if profile:
        cmd.append("--profile")
    env = dict(os.environ)
    if args.blas_threads:
        for var in BLAS_VARS:
            env[var] = str(args.blas_threads)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"worker {task} failed with exit code {proc.returncode}")
    if profile:
        sys.stdout.write(proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=1_000_000, help="learners (default 1,000,000)")
    p.add_argument("--repeats", type=int, default=3, help="fresh processes per task (default 3)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--profile", action="store_true", help="print a cProfile of one AIPW call")
    p.add_argument(
        "--blas-threads",
        type=int,
        default=0,
        help="set OPENBLAS/OMP/MKL_NUM_THREADS in the workers (default 0: library default)",
    )
    p.add_argument("--worker", choices=("aipw", "logit"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.worker:
        print(json.dumps(worker(args.worker, args.n, args.seed, args.profile)))
        return 0
    if args.profile:
        result = run_worker("aipw", args, profile=True)
        print(f"\nAIPW ATT (cluster) under cProfile: {result['seconds']:.2f} s")
        return 0

    load_start = os.getloadavg()
    runs: dict[str, list[dict]] = {"aipw": [], "logit": []}
    for _ in range(args.repeats):
        for task in runs:  # interleaved, so that a busy spell hits both
            runs[task].append(run_worker(task, args))
    load_end = os.getloadavg()

    print(
        f"n = {args.n:,} learners, 20 covariates (36 design columns), {args.n // TEAM_SIZE:,} "
        f"clusters; {args.repeats} repeats, each in a fresh process; {os.cpu_count()} CPUs, "
        f"load average {load_start[0]:.1f} at start, {load_end[0]:.1f} at end; BLAS threads: "
        + (str(args.blas_threads) if args.blas_threads else "library default")
    )
    print(f"{'task':<42} {'median s':>9} {'min s':>7} {'max s':>7} {'peak MiB':>9} {'RSS MiB':>8}")
    labels = {
        "aipw": "lcstats AIPW, ATT, clustered by team",
        "logit": "statsmodels Logit(method='newton').fit",
    }
    medians = {}
    for task, rows in runs.items():
        secs = [r["seconds"] for r in rows]
        medians[task] = statistics.median(secs)
        peak = max(r["peak_call_mib"] for r in rows)
        rss = max(r["maxrss_process_mib"] for r in rows)
        print(
            f"{labels[task]:<42} {medians[task]:>9.2f} {min(secs):>7.2f} {max(secs):>7.2f} "
            f"{peak:>9.0f} {rss:>8.0f}"
        )
    ratio = medians["aipw"] / medians["logit"]
    print(
        f"ratio AIPW / Logit (median times): {ratio:.2f} (target: at most 1.0); load average "
        f"{load_start[0]:.1f} to {load_end[0]:.1f}"
    )
    pairs = zip(runs["aipw"], runs["logit"], strict=True)
    print(
        "  per repeat, AIPW / Logit (s, load average after each): "
        + "; ".join(
            f"{a['seconds']:.2f} ({a['load']:.1f}) / {b['seconds']:.2f} ({b['load']:.1f})"
            for a, b in pairs
        )
    )
    print(
        "peak MiB: resident high-water mark during the call alone (data already in memory, "
        f"~{runs['aipw'][0]['rss_before_mib']:.0f} MiB); RSS MiB: ru_maxrss of the whole process"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
