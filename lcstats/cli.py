"""The ``lcstats`` command line: simulate, validate, run, run-all, runs, power.

Exit codes: 0 success; 2 invalid input (a message says which file, column and rows, and what to
do); 1 any other failure.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from lcstats.core.errors import EstimationError, InputError, Interrupted, LcstatsError

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a Unix tool killed by a closed pipe returns
# pandera imports these when they are installed, for what a command never does: hypothesis for
# strategies that make example data (the tests use it), pyspark.pandas for pandas-on-Spark types
# (Spark sources are read through pyspark.sql). 0.07 and 0.11 s of a run's pre-flight, measured.
UNUSED_IMPORTS = ("hypothesis", "pyspark.pandas")


def _simulated(args: argparse.Namespace):
    """The programme `lcstats simulate` asked for, by design."""
    from lcstats.data.rollout import simulate_rollout
    from lcstats.data.simulate import simulate_programme

    if args.design == "staggered":
        team_size = 10
        return simulate_rollout(
            n_teams=max(6, args.learners // team_size),
            team_size=team_size,
            seed=args.seed,
            assessment_gap=args.assessment_gap,
        )
    if args.assessment_gap:
        raise ValueError("--assessment-gap is for --design staggered")
    confounding = 0.0 if args.design == "randomised" else args.confounding
    return simulate_programme(n_learners=args.learners, seed=args.seed, confounding=confounding)


def _cmd_simulate(args: argparse.Namespace) -> int:
    from lcstats.data.simulate import with_logs, write_programme

    try:
        programme = _simulated(args)
    except ValueError as exc:
        raise InputError(str(exc), source="lcstats simulate") from None
    if args.activity:
        programme = with_logs(programme)
    paths = write_programme(
        programme, args.out, fmt=args.format, activity_format=args.activity or "parquet"
    )
    for name, path in paths.items():
        print(f"{name}: {path}")
    return EXIT_OK


def validate_evaluation(params_path: str | Path) -> str:
    """Check parameters, every input table, and that each effect can be estimated.

    Returns a short summary; raises `InputError` or `EstimationError` otherwise.
    """
    from lcstats.estimation.designs import design_estimates
    from lcstats.estimation.evaluation import estimate
    from lcstats.outcomes.learner import learner_outcomes
    from lcstats.params import load_params
    from lcstats.running.runner import preflight

    params = load_params(params_path)
    _, programme = preflight(params)
    outcomes = learner_outcomes(programme, as_of=params.as_of)
    effects = estimate(params, outcomes)
    design_estimates(params, programme, outcomes, effects)  # what the design needs, and its fit
    rows = ", ".join(f"{t} {s.rows_read:,} rows" for t, s in programme.sources.items())
    samples = ", ".join(f"{o}: {len(s.data):,} learners" for o, s in effects.samples.items())
    return f"{params_path}: valid ({rows}; analysis samples {samples})"


def _cmd_validate(args: argparse.Namespace) -> int:
    print(validate_evaluation(args.params))
    return EXIT_OK


def _report_outcome(outcome) -> None:
    if outcome.status == "succeeded":
        print(outcome.run_dir)
        print(f"report: {outcome.run_dir / 'report.html'}", file=sys.stderr)
    elif outcome.status == "skipped":
        print(f"skipped {outcome.evaluation}: {outcome.message}", file=sys.stderr)
        if outcome.run_dir:
            print(outcome.run_dir)
    else:
        where = f" (run folder: {outcome.run_dir})" if outcome.run_dir else ""
        print(f"{outcome.evaluation}: {outcome.status}{where}\n{outcome.message}", file=sys.stderr)


def _cmd_run(args: argparse.Namespace) -> int:
    from lcstats.core.allocator import keep_freed_memory
    from lcstats.core.errors import install_termination_handler
    from lcstats.running.kernel import NOTEBOOK_DIR, RunKernel

    install_termination_handler()
    keep_freed_memory()  # before any thread starts (see lcstats.core.allocator)
    # the kernel starts (and imports the statistics) while this process imports the rest
    kernel = None if args.skip_unchanged else RunKernel(NOTEBOOK_DIR)
    try:
        if kernel is not None:
            kernel.wait_started()
        from lcstats.running.runner import run_evaluation
    except BaseException:  # Ctrl-C or SIGTERM meanwhile: the run would have stopped it
        if kernel is not None:
            kernel.stop()
        raise
    outcome = run_evaluation(
        args.params,
        output_dir=args.output_dir,
        skip_unchanged=args.skip_unchanged,
        timeout_minutes=args.timeout,
        wait=args.wait,
        pdf=args.pdf,
        kernel=kernel,
    )
    _report_outcome(outcome)
    return outcome.exit_code


def _cmd_run_all(args: argparse.Namespace) -> int:
    from lcstats.core.errors import install_termination_handler
    from lcstats.running.run_all import run_all

    def progress(done: int, total: int, outcome) -> None:
        where = f" -> {outcome.run_dir}" if outcome.run_dir else ""
        print(
            f"[{done}/{total}] {outcome.evaluation}: {outcome.status} ({outcome.duration_s:.1f} s){where}",
            file=sys.stderr,
            flush=True,
        )
        if outcome.status not in ("succeeded", "skipped"):
            print("    " + outcome.message.replace("\n", "\n    "), file=sys.stderr)

    install_termination_handler()
    outcomes = run_all(
        args.folder,
        jobs=args.jobs,
        output_dir=args.output_dir,
        skip_unchanged=args.skip_unchanged,
        timeout_minutes=args.timeout,
        progress=progress,
    )
    width = max(len(o.evaluation) for o in outcomes)
    print(f"{'evaluation':<{width}}  status       exit  seconds  run folder")
    for o in outcomes:
        print(
            f"{o.evaluation:<{width}}  {o.status:<11}  {o.exit_code:>4}  {o.duration_s:>7.1f}  {o.run_dir or '-'}"
        )
    _refresh_portfolio(args.output_dir)
    codes = {o.exit_code for o in outcomes}
    if codes - {EXIT_OK, EXIT_INVALID}:
        return EXIT_FAILED
    return EXIT_INVALID if EXIT_INVALID in codes else EXIT_OK


def _refresh_portfolio(output_dir: Path) -> None:
    """After run-all: the portfolio page of the reports folder, brought up to date."""
    from lcstats.running.portfolio import refresh_portfolio

    try:
        page, _ = refresh_portfolio(output_dir)
    except InputError:
        print("portfolio: no successful run to show yet", file=sys.stderr)
    except LcstatsError as exc:
        print(f"portfolio not written: {exc}", file=sys.stderr)
    else:
        print(f"portfolio: {page}", file=sys.stderr)


def _cmd_power(args: argparse.Namespace) -> int:
    from lcstats.estimation.power import plan_pilot

    try:
        plan = plan_pilot(
            n_treated=args.n_treated,
            n_control=args.n_control,
            effect=args.effect,
            outcome_sd=args.outcome_sd,
            baseline=args.baseline,
            target=args.target,
            alpha=args.alpha,
            power=args.power,
            ratio=args.ratio,
            cluster_size=args.cluster_size,
            icc=args.icc,
            direction=args.direction,
        )
    except ValueError as exc:
        raise InputError(str(exc), source="lcstats power") from None
    print(plan.summary())
    return EXIT_OK


def _cmd_runs(args: argparse.Namespace) -> int:
    from lcstats.running.ledger import damaged_copies, list_runs

    table = list_runs(args.output_dir, evaluation=args.evaluation, limit=args.limit)
    older = [str(p) for p in damaged_copies(args.output_dir)]
    if args.json:
        rows = table.astype(object).where(table.notna(), None).to_dict(orient="records")
        print(json.dumps({"runs": rows, "older_ledgers": older}, indent=2))
        return EXIT_OK
    if table.empty:
        print("no runs recorded")
    else:
        cols = ["evaluation", "run_id", "status", "started", "duration_s", "message"]
        table["message"] = table["message"].fillna("").str.replace("\n", " ", regex=False)
        print(table[cols].to_string(index=False, max_colwidth=60))
    for path in older:
        print(
            f"note: older runs are recorded in {path} (a ledger that could not be read was "
            "moved there)",
            file=sys.stderr,
        )
    return EXIT_OK


def _add_simulate(sub) -> None:
    p = sub.add_parser("simulate", help="write a synthetic programme and its true effects")
    p.add_argument(
        "--out", required=True, type=Path, help="folder to write the tables and truth.json to"
    )
    p.add_argument("--learners", type=int, default=2000, help="number of learners (default 2000)")
    p.add_argument("--seed", type=int, default=20261128, help="random seed (default 20261128)")
    p.add_argument(
        "--confounding",
        type=float,
        default=1.0,
        help="strength of selection into coaching (0 = none)",
    )
    p.add_argument("--format", choices=("csv", "parquet"), default="csv")
    p.add_argument(
        "--design",
        choices=("observational", "staggered", "randomised"),
        default="observational",
        help="observational: coaching chosen for engaged learners (default); staggered: teams "
        "coached in waves, brought forward by a trait nobody recorded; randomised: coaching "
        "assigned at random within cohorts (a pilot)",
    )
    p.add_argument(
        "--assessment-gap",
        type=int,
        default=0,
        metavar="MONTHS",
        help="staggered: assess skills every MONTHS months (waves pre, mid1, ..., post; list "
        "them in skill_waves) instead of before and after only",
    )
    p.add_argument(
        "--activity",
        nargs="?",
        const="parquet",
        choices=("parquet", "csv", "xapi"),
        help="also write a coaching-session log and a learning-activity log (a table, or xAPI "
        "statements as JSON lines); engagement drives both activity and coaching",
    )
    p.set_defaults(func=_cmd_simulate)


def _add_run_options(p: argparse.ArgumentParser, *, what: str) -> None:
    p.add_argument("--output-dir", type=Path, default=Path("reports"))
    p.add_argument(
        "--skip-unchanged",
        action="store_true",
        help=f"skip {what} whose inputs, parameters and code are unchanged",
    )
    p.add_argument(
        "--timeout",
        type=float,
        metavar="MINUTES",
        help="time limit of each run, overriding timeout_minutes of the params file",
    )


def _add_runs(sub) -> None:
    p = sub.add_parser("validate", help="check parameters and input tables; exit 2 when invalid")
    p.add_argument("params", type=Path)
    p.set_defaults(func=_cmd_validate)

    p = sub.add_parser("run", help="run one evaluation and print its run folder")
    p.add_argument("params", type=Path)
    _add_run_options(p, what="the evaluation when it is one")
    p.add_argument(
        "--wait",
        action="store_true",
        help="when this evaluation is already running, wait for it instead of refusing",
    )
    p.add_argument("--pdf", action="store_true", help="also write report.pdf beside report.html")
    p.set_defaults(func=_cmd_run)

    p = sub.add_parser("run-all", help="run every params file of a folder (for schedulers)")
    p.add_argument("folder", type=Path)
    p.add_argument("--jobs", type=int, default=1, help="runs at a time, each in its own process")
    _add_run_options(p, what="evaluations")
    p.set_defaults(func=_cmd_run_all)

    p = sub.add_parser("runs", help="list recorded runs (the run ledger)")
    p.add_argument("--output-dir", type=Path, default=Path("reports"))
    p.add_argument("--evaluation", default=None)
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true", help="machine-readable output for schedulers")
    p.set_defaults(func=_cmd_runs)


def _cmd_portfolio(args: argparse.Namespace) -> int:
    from lcstats.running.portfolio import refresh_portfolio

    page, data = refresh_portfolio(args.reports_dir, output=args.output, pdf=args.pdf)
    print(page)
    print(f"data: {data}", file=sys.stderr)
    return EXIT_OK


def _add_portfolio(sub) -> None:
    p = sub.add_parser(
        "portfolio",
        help="write index.html and portfolio.json: every evaluation's latest headline, trend, pooled evidence",
    )
    p.add_argument("reports_dir", type=Path, nargs="?", default=Path("reports"))
    p.add_argument("--output", type=Path, help="the page to write (default REPORTS_DIR/index.html)")
    p.add_argument("--pdf", action="store_true", help="also print the page to a PDF beside it")
    p.set_defaults(func=_cmd_portfolio)


def _add_power(sub) -> None:
    p = sub.add_parser(
        "power",
        help="plan a pilot: learners needed for an effect, or the effect a pilot can detect",
        description="Give --baseline and --target (a proportion such as follow-through), or "
        "--effect and --outcome-sd, for the learners needed; or --n-treated [--n-control] for the "
        "minimum detectable effect. --cluster-size and --icc add the design effect of teams.",
    )
    p.add_argument("--n-treated", type=int, help="coached learners in the pilot")
    p.add_argument("--n-control", type=int, help="comparison learners (default: n-treated x ratio)")
    p.add_argument("--effect", type=float, help="effect to detect, in the outcome's units")
    p.add_argument("--outcome-sd", type=float, help="standard deviation of the outcome")
    p.add_argument("--baseline", type=float, help="baseline proportion, e.g. 0.45 follow-through")
    p.add_argument("--target", type=float, help="proportion hoped for with coaching, e.g. 0.55")
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--power", type=float, default=0.8)
    p.add_argument(
        "--ratio", type=float, default=1.0, help="comparison learners per coached learner"
    )
    p.add_argument("--cluster-size", type=float, default=1.0, help="learners per team (cluster)")
    p.add_argument(
        "--icc", type=float, default=0.0, help="intra-cluster correlation (0.05-0.15 typical)"
    )
    p.add_argument("--direction", choices=("increase", "decrease"), default="increase")
    p.set_defaults(func=_cmd_power)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``lcstats`` command."""
    parser = argparse.ArgumentParser(prog="lcstats", description="Coaching-evaluation workbench")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_simulate(sub)
    _add_runs(sub)
    _add_portfolio(sub)
    _add_power(sub)
    return parser


def _broken_pipe() -> int:
    """The reader of our output went away (``lcstats runs | head``): stop quietly, as Unix tools do."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())  # so that Python's final flush does not complain
    return EXIT_BROKEN_PIPE


# what each kind of ending prints and returns, in order of precedence
ENDINGS: tuple[tuple[type[BaseException], Callable[[BaseException], str], int | None], ...] = (
    (InputError, lambda e: e.describe(), EXIT_INVALID),
    (EstimationError, lambda e: f"cannot estimate: {e}", EXIT_INVALID),
    (LcstatsError, lambda e: f"error: {e}", EXIT_FAILED),
    (Interrupted, lambda e: e.message or "interrupted", None),
    (KeyboardInterrupt, lambda e: "interrupted", 130),
)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lcstats`` command; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        code = args.func(args)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        return _broken_pipe()
    except (Exception, KeyboardInterrupt, Interrupted) as exc:
        for kind, words, code in ENDINGS:
            if isinstance(exc, kind):
                print(words(exc), file=sys.stderr)
                return exc.exit_code if code is None else code
        traceback.print_exc()  # a bug, not a user mistake: keep the traceback for the report
        print(
            "internal error in lcstats (a bug): please report it with the lines above",
            file=sys.stderr,
        )
        return EXIT_FAILED


def entry() -> None:
    """The ``lcstats`` console script: `main`, then exit without a last sweep of the heap.

    The interpreter's exit collects garbage over every object the run imported or made: 0.47 s
    of the example's 7-8 s, 0.05-0.07 s frozen (2 runs each). Output is flushed and exit
    handlers run as usual, except after a step was given up at the time limit (see below). Not
    in `main`: a process that goes on (a test session) must keep collecting.
    """
    for name in UNUSED_IMPORTS:
        sys.modules.setdefault(name, None)
    code = main()
    gc.freeze()
    from lcstats.core.threads import STEP_THREAD

    if any(t.name == STEP_THREAD and t.is_alive() for t in threading.enumerate()):
        # a step given up at the run's time limit may still be inside native code (DuckDB,
        # pyarrow): finalising the interpreter under it aborts the process ("terminate called
        # without an active exception", exit 134) instead of exiting with the run's code
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    entry()
