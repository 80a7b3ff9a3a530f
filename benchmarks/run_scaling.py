"""Wall time and peak memory of one whole evaluation (`lcstats run`) at 1k to 1M learners.

For each size the programme is generated once with ``lcstats simulate --learners N --out DIR``
(timed, with its peak memory; reused on later runs unless ``--regenerate``), a params file like
``params/example.yaml`` pointing at it is written next to the data, and
``lcstats run PARAMS --output-dir <tmp>`` is run as a subprocess. Measured:

- wall time of the process, and the step breakdown from papermill's per-cell timestamps (same
  mapping as ``run_speed.py``);
- peak memory of the whole process tree (CLI + kernel): a sampler thread sums the resident set
  (RSS) of the process and all its descendants every 0.2 s (psutil; without psutil, ``VmRSS``
  from ``/proc/<pid>/status`` of the tree). It also keeps each process's own high-water mark
  (``VmHWM``): the CLI's and the kernel's peaks;
- ``ru_maxrss`` of the CLI process from ``os.wait4`` after it exits (the rusage of the child and
  of the descendants it reaped, i.e. the largest single process of the tree, kernel included).

Limits: a run is stopped (its whole process tree killed) after ``--time-limit`` seconds or when
the tree's RSS passes ``--mem-limit-gb``; the table then says so, and which process held the
memory.

``--steps N [N ...]`` runs the evaluation's steps (load, outcomes, effects, diagnostics, design,
results, report) in one plain Python process instead (no papermill, no kernel, but the
environment a run gives its kernel: one BLAS thread, the allocator settings of
``lcstats.core.allocator``) for the given sizes, with per-step wall time, RSS high-water mark (reset
before each step through ``/proc/self/clear_refs``) and RSS growth; add ``--tracemalloc`` for
Python-level peaks too (numpy registers with tracemalloc; Arrow-backed pandas strings do not,
and tracemalloc slows the steps down, so times are then not comparable).

Usage::

    .venv/bin/python benchmarks/run_scaling.py                           # 1k, 10k, 100k
    .venv/bin/python benchmarks/run_scaling.py --sizes 1000000 --time-limit 1800
    .venv/bin/python benchmarks/run_scaling.py --format parquet --sizes 1000000
    .venv/bin/python benchmarks/run_scaling.py --steps 100000 1000000
    .venv/bin/python benchmarks/run_scaling.py --steps 1000000 --source /tmp/lcstats-before

``--source DIR`` runs the steps with the package of another source tree (for example
``git archive <commit> | tar -x -C DIR``), for a before/after comparison on the same data.
Each step row ends with the 1-minute load average when it finished.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_speed import STEPS, VENV_BIN, loadavg, notebook_steps  # noqa: E402

try:
    import psutil
except ImportError:  # pragma: no cover - psutil is in the venv today
    psutil = None

ROOT = Path(__file__).resolve().parent.parent
PYTHON = str(VENV_BIN / "python")
GB = 1024**3


# --- RSS of a process tree ----------------------------------------------------------------------


def _proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process in bytes, from /proc/<pid>/status."""
    out = {}
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    key, value = line.split(":", 1)
                    out[key] = int(value.split()[0]) * 1024
    except OSError:
        pass
    return out


def _children_proc(pid: int) -> list[int]:
    """Descendants of a process from /proc/*/stat (used when psutil is missing)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _label(pid: int) -> str:
    """A short name of a process: kernel, cli, or its program's name."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            cmd = fh.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "?"
    if "ipykernel" in cmd:
        return "kernel"
    if "lcstats" in cmd and (" run " in cmd or " simulate " in cmd):
        return "cli"
    return cmd.split(" ")[0].rsplit("/", 1)[-1] or "?"


class TreeSampler(threading.Thread):
    """Polls the RSS of a process and its descendants; keeps the peak sum and per-process peaks."""

    def __init__(self, pid: int, interval: float = 0.2, limit: float | None = None):
        super().__init__(daemon=True)
        self.pid, self.interval, self.limit = pid, interval, limit
        self.peak = 0  # bytes, sum over the tree
        self.hwm: dict[str, int] = {}  # label -> largest VmHWM seen
        self.pids: set[int] = set()
        self.over_limit = False
        self._halt = threading.Event()

    def tree(self) -> list[int]:
        if psutil is not None:
            try:
                return [
                    self.pid,
                    *(c.pid for c in psutil.Process(self.pid).children(recursive=True)),
                ]
            except psutil.Error:
                return []
        return [self.pid, *_children_proc(self.pid)]

    def run(self) -> None:
        while not self._halt.is_set():
            total = 0
            for pid in self.tree():
                status = _proc_status(pid)
                if not status:
                    continue
                self.pids.add(pid)
                total += status.get("VmRSS", 0)
                label = _label(pid)
                self.hwm[label] = max(self.hwm.get(label, 0), status.get("VmHWM", 0))
            self.peak = max(self.peak, total)
            if self.limit and total > self.limit:
                self.over_limit = True
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def run_measured(
    cmd: list[str],
    *,
    time_limit: float,
    mem_limit: float | None,
    log: Path | None = None,
    source: Path | None = None,
    env: dict[str, str] | None = None,
) -> dict:
    """Run a command, sampling the RSS of its tree; kill the tree past the time or memory limit.

    ``source``: run it with the ``lcstats`` of another source tree (its folder first on the
    path, and as the working directory), e.g. an unpacked older commit to compare against.
    ``env``: its environment (default: this process's).
    """
    if source is not None:
        env = {**(env or os.environ), "PYTHONPATH": str(source)}
    err = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115
    stdout = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (a pipe could fill up)
    t_start = time.time()
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        stdout=stdout,
        stderr=err,
        text=True,
        cwd=source or ROOT,
        env=env,
        start_new_session=True,
    )
    sampler = TreeSampler(proc.pid, limit=mem_limit)
    sampler.start()
    stopped = None
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        elapsed = time.perf_counter() - t0
        if elapsed > time_limit or sampler.over_limit:
            stopped = "time limit" if elapsed > time_limit else "memory limit"
            for p in reversed(sampler.tree()):  # the kernel may sit in its own session
                with contextlib.suppress(OSError):
                    os.kill(p, signal.SIGKILL)
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.1)
    wall = time.perf_counter() - t0
    t_end = time.time()
    sampler.stop()
    proc.returncode = os.waitstatus_to_exitcode(status)
    stdout.seek(0)
    text = stdout.read()
    stdout.close()
    if log:
        err.close()
    return {
        "wall": wall,
        "t_start": t_start,
        "t_end": t_end,
        "rc": proc.returncode,
        "stopped": stopped,
        "stdout": text,
        "peak_tree": sampler.peak,
        "hwm": sampler.hwm,
        "ru_maxrss": usage.ru_maxrss * 1024,  # KiB on Linux
        "children_maxrss": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024,
    }


# --- data and params ----------------------------------------------------------------------------


def ensure_data(n: int, work: Path, fmt: str, regenerate: bool, time_limit: float) -> dict:
    """Generate (or reuse) a programme of n learners and its params file."""
    import yaml

    folder = work / f"{fmt}-{n}"
    params_path = folder / "params.yaml"
    info_path = folder / "generation.json"
    if regenerate or not info_path.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        cmd = [str(VENV_BIN / "lcstats"), "simulate", "--learners", str(n), "--out", str(folder)]
        res = run_measured(
            [*cmd, "--format", fmt],
            time_limit=time_limit,
            mem_limit=None,
            log=folder / "simulate.log",
        )
        if res["rc"] != 0:
            raise SystemExit(f"simulate failed for n={n}: see {folder / 'simulate.log'}")
        sizes = {p.name: p.stat().st_size for p in folder.glob(f"*.{fmt}")}
        info = {"seconds": res["wall"], "peak_tree": res["peak_tree"], "bytes": sizes}
        info_path.write_text(json.dumps(info, indent=1))
    params = yaml.safe_load((ROOT / "params" / "example.yaml").read_text())
    params["evaluation"] = f"scaling-{n}"
    # the simulated tables come without the example's session and activity logs
    for log in ("coaching_sessions", "activity"):
        params.pop(log, None)
    params["covariates"] = [c for c in params["covariates"] if not c.startswith("pre_")]
    for table in ("learners", "action_items", "skill_assessments"):
        params[table] = str(folder / f"{table}.{fmt}")
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    return {"params": params_path, **json.loads(info_path.read_text())}


# --- the steps in one process -------------------------------------------------------------------

STEP_CODE = r"""
import gc, json, sys, tempfile, threading, time, tracemalloc
from pathlib import Path

use_tm = "--tracemalloc" in sys.argv
def status():
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(("VmRSS:", "VmHWM:")):
                k, v = line.split(":", 1)
                out[k] = int(v.split()[0]) * 1024
    return out
def reset_hwm():
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass
rows = []
def step(name, fn):
    gc.collect()
    reset_hwm()
    before = status()["VmRSS"]
    if use_tm:
        tracemalloc.start(); tracemalloc.reset_peak()
    t = time.perf_counter()
    value = fn()
    wall = time.perf_counter() - t
    tm_peak = tracemalloc.get_traced_memory()[1] if use_tm else None
    if use_tm:
        tracemalloc.stop()
    after = status()
    rows.append({"step": name, "seconds": wall, "rss_before": before, "rss_after": after["VmRSS"],
                 "hwm": after["VmHWM"], "tracemalloc_peak": tm_peak,
                 "load": __import__("os").getloadavg()[0]})
    print(json.dumps(rows[-1]), flush=True)
    return value

def imports():
    import lcstats, lcstats.reporting.report, lcstats.reporting.results  # noqa
    return lcstats
lc = step("imports", imports)
print(json.dumps({"lcstats": lc.__file__}), flush=True)
from lcstats.reporting.report import build_report
from lcstats.reporting.results import results_document, write_results
params = lc.load_params(sys.argv[1])
programme = step("load_programme", lambda: lc.load_inputs(params))
outcomes = step("learner_outcomes", lambda: lc.learner_outcomes(programme, as_of=params.as_of))
effects = step("estimate_effects", lambda: lc.estimate_effects(
    outcomes, treatment=params.treatment, covariates=params.covariates, methods=params.methods,
    estimand=params.estimand, cluster=params.cluster, alpha=params.alpha))
diagnostics = step("diagnose", lambda: lc.diagnose(
    outcomes, effects, treatment=params.treatment, covariates=params.covariates,
    cluster=params.cluster, headline_method=params.headline_method, estimand=params.estimand,
    alpha=params.alpha, min_group_size=params.min_group_size))
design = step("design_estimates", lambda: lc.design_estimates(params, programme, outcomes, effects))
out = Path(tempfile.mkdtemp(prefix="lcstats-steps-"))
step("results_document + write", lambda: write_results(results_document(
    params=params, programme=programme, outcomes=outcomes, effects=effects,
    diagnostics=diagnostics, design=design), out))
step("build_report + write", lambda: build_report(
    params=params, programme=programme, outcomes=outcomes, effects=effects,
    diagnostics=diagnostics, design=design, run_id="bench").write(out / "report.html"))
"""


def run_steps(
    params: Path, *, tracemalloc: bool, time_limit: float, log: Path, source: Path | None = None
) -> list[dict]:
    """Run the evaluation's steps in one Python process (in the environment a run gives its
    kernel: one BLAS thread, the allocator's settings); one row of measurements per step."""
    from lcstats.running.kernel import kernel_environment

    cmd = [PYTHON, "-c", STEP_CODE, str(params), *(["--tracemalloc"] if tracemalloc else [])]
    res = run_measured(
        cmd,
        time_limit=time_limit,
        mem_limit=None,
        log=log,
        source=source,
        env=kernel_environment(),
    )
    rows = [json.loads(line) for line in res["stdout"].splitlines() if line.startswith("{")]
    for row in [r for r in rows if "lcstats" in r]:
        print(f"  (lcstats imported from {row['lcstats']})")
        rows.remove(row)
    if res["rc"] != 0 or res["stopped"]:
        rows.append({"step": f"stopped ({res['stopped'] or 'exit ' + str(res['rc'])}); see {log}"})
    # clear_refs resets the high-water mark ru_maxrss reads, so the process peak is the steps' max
    peak = max((r.get("hwm") or 0 for r in rows), default=0)
    rows.append({"step": "whole process", "seconds": res["wall"], "hwm": peak})
    return rows


def _gb(b: float | None) -> str:
    """Bytes as gigabytes, ``-`` when unknown."""
    return "-" if b is None else f"{b / GB:.2f} GB"


def _parse_args() -> argparse.Namespace:
    """The command line's options."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    ap.add_argument("--format", choices=("csv", "parquet"), default="csv")
    ap.add_argument(
        "--work",
        type=Path,
        default=Path(tempfile.gettempdir()) / "lcstats-scaling",
        help="where generated data are kept between runs",
    )
    ap.add_argument("--regenerate", action="store_true")
    ap.add_argument("--time-limit", type=float, default=1800, help="seconds per run (default 1800)")
    ap.add_argument("--mem-limit-gb", type=float, default=8.0, help="kill the run past this RSS")
    ap.add_argument("--steps", type=int, nargs="*", help="run the steps in-process for these sizes")
    ap.add_argument("--tracemalloc", action="store_true", help="with --steps: tracemalloc peaks")
    ap.add_argument(
        "--source",
        type=Path,
        help="with --steps: use the lcstats of this source tree (e.g. an older commit's files)",
    )
    return ap.parse_args()


def _print_steps(n: int, args: argparse.Namespace) -> None:
    """Run the steps in one Python process for n learners and print their table."""
    data = ensure_data(n, args.work, args.format, args.regenerate, args.time_limit)
    print(f"\nsteps in one Python process, {n:,} learners ({args.format}):", flush=True)
    print(
        f"  {'step':<26} {'seconds':>8} {'RSS before':>11} {'RSS after':>10} {'peak RSS':>9} "
        f"{'tracemalloc':>11} {'load':>5}"
    )
    log = args.work / f"steps-{args.format}-{n}.log"
    for r in run_steps(
        data["params"],
        tracemalloc=args.tracemalloc,
        time_limit=args.time_limit,
        log=log,
        source=args.source,
    ):
        if "seconds" not in r:
            print(f"  {r['step']}")
            continue
        load = f"{r['load']:>5.1f}" if "load" in r else f"{'-':>5}"
        print(
            f"  {r['step']:<26} {r['seconds']:>8.2f} {_gb(r.get('rss_before')):>11}"
            f" {_gb(r.get('rss_after')):>10} {_gb(r.get('hwm')):>9} {_gb(r.get('tracemalloc_peak')):>11}"
            f" {load}"
        )


def _run_evaluation(data: dict, n: int, args: argparse.Namespace) -> tuple[dict, dict]:
    """Run ``lcstats run`` on a generated programme; its measurements and its step breakdown."""
    with tempfile.TemporaryDirectory(prefix="lcstats-scaling-run-") as tmp:
        res = run_measured(
            [str(VENV_BIN / "lcstats"), "run", str(data["params"]), "--output-dir", tmp],
            time_limit=args.time_limit,
            mem_limit=args.mem_limit_gb * GB,
            log=args.work / f"run-{args.format}-{n}.log",
        )
        steps = {}
        nbs = sorted(Path(tmp).glob("*/*/evaluation.ipynb")) + sorted(
            Path(tmp).glob("*/.*.partial/evaluation.ipynb")
        )
        if nbs:
            try:
                steps = notebook_steps(nbs[0], res["t_start"], res["t_end"])
            except (KeyError, TypeError, ValueError):
                steps = {}
    return res, steps


def _measure_size(n: int, args: argparse.Namespace) -> tuple[int, dict, dict, str]:
    """Generate (or reuse) n learners, run the evaluation, and print what it took."""
    data = ensure_data(n, args.work, args.format, args.regenerate, args.time_limit)
    size_mb = sum(data["bytes"].values()) / 1e6
    print(
        f"\n{n:,} learners: data {size_mb:,.1f} MB ({args.format}), generated in"
        f" {data['seconds'] or math.nan:.1f} s, simulate peak RSS {_gb(data['peak_tree'])}; running"
        f" (load {loadavg()})",
        flush=True,
    )
    res, steps = _run_evaluation(data, n, args)
    status = res["stopped"] or ("ok" if res["rc"] == 0 else f"exit {res['rc']}")
    print(
        f"  {status}: {res['wall']:.1f} s; peak RSS of the tree {_gb(res['peak_tree'])};"
        f" CLI {_gb(res['hwm'].get('cli'))}, kernel {_gb(res['hwm'].get('kernel'))};"
        f" ru_maxrss {_gb(res['ru_maxrss'])}",
        flush=True,
    )
    for name in STEPS:
        if name in steps:
            print(f"    {name:<40} {steps[name]:>8.1f} s")
    if "stopped in" in steps:
        print(f"    stopped while running: {steps['stopped in']}")
    elif res["stopped"] and not steps:
        print("    stopped before papermill started (CLI start + pre-flight)")
    return n, res, steps, status


def _print_summary(results: list[tuple[int, dict, dict, str]]) -> None:
    """The table of all sizes."""
    print(
        f"\n{'learners':>10}  {'status':<12} {'wall':>8}  {'tree peak':>10}  {'CLI peak':>9}  {'kernel peak':>11}  {'ru_maxrss':>9}"
    )
    for n, res, _, status in results:
        print(
            f"{n:>10,}  {status:<12} {res['wall']:>7.1f}s  {_gb(res['peak_tree']):>10}"
            f"  {_gb(res['hwm'].get('cli')):>9}  {_gb(res['hwm'].get('kernel')):>11}  {_gb(res['ru_maxrss']):>9}"
        )


def main() -> None:
    """Measure each size (or, with ``--steps``, the steps in one process) and print the tables."""
    args = _parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    print(
        f"machine: {os.cpu_count()} cores, {_gb(os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE'))};"
        f" load average at start: {loadavg()}; psutil: {psutil is not None}",
        flush=True,
    )
    if args.steps:
        for n in args.steps:
            _print_steps(n, args)
        print(f"load average at end: {loadavg()}")
        return
    results = [_measure_size(n, args) for n in args.sizes]
    print(f"\nload average at end: {loadavg()}")
    _print_summary(results)


if __name__ == "__main__":
    main()
