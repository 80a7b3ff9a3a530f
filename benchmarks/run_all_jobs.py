"""Wall time of `lcstats run-all` over 8 evaluations with ``--jobs 1`` and ``--jobs 2``.

Eight params files, copies of ``params/example.yaml`` with different ``evaluation`` names and
absolute paths to ``data/example``, are written to a temporary folder; ``lcstats run-all DIR
--jobs J --output-dir <tmp>`` is then timed as a subprocess, alternating J = 1 and J = 2,
``--repeats`` times each (median reported). Also measured: the CPU seconds the whole process
tree used (``RUSAGE_CHILDREN`` user + system: the workers and kernels are reaped by their
parents, so their time is included), hence the average number of busy cores, and the median of
the per-evaluation durations ``run-all`` reports (each run's own wall time inside its worker,
which leaves out the worker's start and imports).

``--forkserver`` adds, for each ``--jobs`` value, the same command run through a wrapper that
makes ``run_all``'s ``spawn`` context a ``forkserver`` context preloading ``lcstats.runner`` and
``papermill``: still a fresh process per evaluation, but forked from one that has already paid
for the imports (nothing in ``lcstats/`` is edited; the wrapper patches
``multiprocessing.get_context``).

Usage::

    .venv/bin/python benchmarks/run_all_jobs.py                # 3 repeats of each
    .venv/bin/python benchmarks/run_all_jobs.py --repeats 2 --evaluations 8 --jobs 1 2
    .venv/bin/python benchmarks/run_all_jobs.py --forkserver
"""

from __future__ import annotations

import argparse
import os
import re
import resource
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


FORKSERVER = r"""
import multiprocessing, sys
ctx = multiprocessing.get_context("forkserver")
ctx.set_forkserver_preload(["lcstats.runner", "papermill"])
get_context = multiprocessing.get_context
multiprocessing.get_context = lambda method=None: ctx if method == "spawn" else get_context(method)
from lcstats.cli import main
sys.exit(main(sys.argv[1:]))
"""


def run_all(folder: Path, jobs: int, out: Path, forkserver: bool = False) -> dict[str, float]:
    cmd = [str(VENV_BIN / "lcstats"), "run-all", str(folder), "--jobs", str(jobs)]
    if forkserver:
        cmd = [str(VENV_BIN / "python"), "-c", FORKSERVER, *cmd[1:]]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([*cmd, "--output-dir", str(out)], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(
            f"run-all failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr[-3000:]}"
        )
    rows = ROW.findall(proc.stdout)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "wall": wall,
        "cpu": cpu,
        "runs": len(rows),
        "per_run": statistics.median(float(r[3]) for r in rows) if rows else float("nan"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3, help="runs of each --jobs value (default 3)")
    ap.add_argument("--evaluations", type=int, default=8, help="params files (default 8)")
    ap.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--forkserver", action="store_true", help="also: forkserver with preloading")
    args = ap.parse_args()
    variants = [(j, False) for j in args.jobs] + (
        [(j, True) for j in args.jobs] if args.forkserver else []
    )

    print(f"machine: {os.cpu_count()} cores; load average at start: {loadavg()}")
    results: dict[tuple[int, bool], list[dict[str, float]]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory(prefix="lcstats-runall-") as tmp:
        folder = Path(tmp) / "params"
        write_params(folder, args.evaluations)
        for rep in range(args.repeats):
            order = variants if rep % 2 == 0 else list(reversed(variants))
            for jobs, fork in order:
                res = run_all(folder, jobs, Path(tmp) / f"out-{jobs}-{fork}-{rep}", fork)
                results[(jobs, fork)].append(res)
                print(
                    f"  repeat {rep + 1} --jobs {jobs}{' forkserver' if fork else ''}:"
                    f" {res['wall']:.1f} s wall, {res['cpu']:.1f} s CPU,"
                    f" {res['runs']} runs (load {loadavg()})",
                    flush=True,
                )

    print(
        f"\nlcstats run-all over {args.evaluations} evaluations of the example data, medians of {args.repeats}"
    )
    print(
        f"  {'--jobs':<17}  {'wall':>8}  {'min':>8}  {'max':>8}  {'per eval':>9}  {'CPU':>8}"
        f"  {'busy cores':>10}  {'one run':>8}"
    )
    walls = {}
    for (jobs, fork), rs in results.items():
        wall = [r["wall"] for r in rs]
        cpu = statistics.median(r["cpu"] for r in rs)
        walls[(jobs, fork)] = med = statistics.median(wall)
        name = f"{jobs}{' (forkserver)' if fork else ''}"
        # the forkserver, not run-all, reaps the workers: their CPU time does not reach us
        cpu_cols = f"{'n/a':>8}  {'n/a':>10}" if fork else f"{cpu:>7.1f}s  {cpu / med:>10.2f}"
        print(
            f"  {name:<17}  {med:>7.1f}s  {min(wall):>7.1f}s  {max(wall):>7.1f}s"
            f"  {med / args.evaluations:>8.1f}s  {cpu_cols}"
            f"  {statistics.median(r['per_run'] for r in rs):>7.1f}s"
        )
    base = (min(args.jobs), False)
    for key, wall in walls.items():
        if key != base:
            label = f"--jobs {key[0]}{' forkserver' if key[1] else ''}"
            print(f"speed-up {label} vs --jobs {base[0]}: {walls[base] / wall:.2f}x")
    print(f"load average at end: {loadavg()}")


if __name__ == "__main__":
    main()
