"""Wall time of `lcstats run-all` over 8 evaluations with ``--jobs 1`` and ``--jobs 2``.

Eight params files, copies of ``params/example.yaml`` with different ``evaluation`` names and
absolute paths to ``data/example``, are written to a temporary folder; ``lcstats run-all DIR
--jobs J --output-dir <tmp>`` is then timed as a subprocess, alternating J = 1 and J = 2,
``--repeats`` times each (median reported), with the median of the per-evaluation durations
``run-all`` reports (each run's own wall time inside its worker, which leaves out the worker's
start). ``run-all`` forks each worker from a server that has imported lcstats and papermill once.

Usage::

    .venv/bin/python benchmarks/run_all_jobs.py                # 3 repeats of each
    .venv/bin/python benchmarks/run_all_jobs.py --repeats 2 --evaluations 8 --jobs 1 2
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = (
    ROOT / ".venv" / "bin" if (ROOT / ".venv" / "bin").is_dir() else Path(sys.executable).parent
)
ROW = re.compile(r"^(\S+)\s+(succeeded|failed|invalid|skipped)\s+(-?\d+)\s+([\d.]+)\s", re.M)


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def write_params(folder: Path, count: int) -> None:
    """`count` params files like params/example.yaml, paths made absolute."""
    source = ROOT / "params" / "example.yaml"
    base = yaml.safe_load(source.read_text())
    for table in ("learners", "action_items", "skill_assessments"):
        base[table] = str((source.parent / base[table]).resolve())
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(1, count + 1):
        params = dict(base, evaluation=f"bench-{i:02d}", title=f"Benchmark evaluation {i}")
        (folder / f"bench-{i:02d}.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def run_all(folder: Path, jobs: int, out: Path) -> dict[str, float]:
    cmd = [str(VENV_BIN / "lcstats"), "run-all", str(folder), "--jobs", str(jobs)]
    t0 = time.perf_counter()
    proc = subprocess.run([*cmd, "--output-dir", str(out)], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(
            f"run-all failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr[-3000:]}"
        )
    rows = ROW.findall(proc.stdout)
    return {
        "wall": wall,
        "runs": len(rows),
        "per_run": statistics.median(float(r[3]) for r in rows) if rows else float("nan"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3, help="runs of each --jobs value (default 3)")
    ap.add_argument("--evaluations", type=int, default=8, help="params files (default 8)")
    ap.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    args = ap.parse_args()

    print(f"machine: {os.cpu_count()} cores; load average at start: {loadavg()}")
    results: dict[int, list[dict[str, float]]] = {j: [] for j in args.jobs}
    with tempfile.TemporaryDirectory(prefix="lcstats-runall-") as tmp:
        folder = Path(tmp) / "params"
        write_params(folder, args.evaluations)
        for rep in range(args.repeats):
            order = args.jobs if rep % 2 == 0 else list(reversed(args.jobs))
            for jobs in order:
                res = run_all(folder, jobs, Path(tmp) / f"out-{jobs}-{rep}")
                results[jobs].append(res)
                print(
                    f"  repeat {rep + 1} --jobs {jobs}: {res['wall']:.1f} s wall,"
                    f" {res['runs']} runs (load {loadavg()})",
                    flush=True,
                )

    print(
        f"\nlcstats run-all over {args.evaluations} evaluations of the example data, medians of {args.repeats}"
    )
    print(f"  {'--jobs':<7}  {'wall':>8}  {'min':>8}  {'max':>8}  {'per eval':>9}  {'one run':>8}")
    walls = {}
    for jobs, rs in results.items():
        wall = [r["wall"] for r in rs]
        walls[jobs] = med = statistics.median(wall)
        print(
            f"  {jobs:<7}  {med:>7.1f}s  {min(wall):>7.1f}s  {max(wall):>7.1f}s"
            f"  {med / args.evaluations:>8.1f}s  {statistics.median(r['per_run'] for r in rs):>7.1f}s"
        )
    base = min(args.jobs)
    for jobs, wall in walls.items():
        if jobs != base:
            print(f"speed-up --jobs {jobs} vs --jobs {base}: {walls[base] / wall:.2f}x")
    print(f"load average at end: {loadavg()}")


if __name__ == "__main__":
    main()
