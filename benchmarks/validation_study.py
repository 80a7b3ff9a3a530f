"""Statistical validation of lcstats' effect estimators on simulated data with known truth.

Not a test: it prints its figures (and writes them as CSV) so a person can judge them.

Two data-generating processes (DGPs), each replicated ``--reps`` times with independent seeds:

``programme``
    `lcstats.data.simulate.simulate_programme` (``--n-programme`` learners in teams of about 10, team
    share of outcome variance ``--icc``, selection into coaching on engagement, tenure and cohort,
    team-level clustering of coaching), taken through the product's own path:
    `lcstats.outcomes.learner.learner_outcomes` then `lcstats.estimation.analysis.estimate_effects` with the
    covariates of ``params/example.yaml`` (spec ``example``: tenure in months, linearly, as the
    simulator uses it) and, as a mild misspecification, with log tenure instead (spec
    ``log_tenure``). The truth is the programme's own ``truth`` (the average of each simulated learner's individual
    effect, over all learners or over the coached ones), for both outcomes (follow-through,
    skills gap). The outcome models are linear, which is only an approximation here (the
    follow-through model is logistic, the skills gap is a rounded, truncated measure), so some
    bias of the adjusted methods is expected.
``linear``
    ``--clusters`` clusters of ``--cluster-size`` units. A cluster-level covariate ``xc`` and unit
    covariates ``x1`` (correlated with ``xc``) and ``x2`` (binary) drive both treatment
    (logistic) and the outcome (linear); a cluster random effect carries ``--linear-icc`` of the
    residual outcome variance, and an unobserved cluster intercept (SD 1) in the treatment model
    makes assignment clustered beyond the covariates (as when coaching is rolled out team by
    team). That intercept is independent of the outcome, so it is not a confounder; the logistic
    propensity model without it is a close approximation. The effect is a constant 0.5, so
    ATE = ATT = 0.5, and the outcome model is correctly specified.
``overlap``
    Poor overlap, to compare normalised (Hajek, the default) and unnormalised
    (Horvitz-Thompson) weights in IPW and AIPW. ``--n-overlap`` learners with a confounder
    ``x ~ N(0, 1)`` and a covariate ``eng ~ N(0, 1)``; coaching is logistic,
    ``logit e = 0.3 + s x + 0.5 eng`` with ``s`` each of ``--overlap-strengths`` (1.5: 7% of
    scores outside [0.05, 0.95], 2.0: 16%, 2.5: 25%), so the propensity model is correctly
    specified; the outcome is a share of 6 items, each on time with probability
    ``expit(-0.3 + 1.5 [x > 0.8] + 0.3 eng + 0.5 t)``, so the linear outcome model is not (a
    threshold in the confounder) and the weights must correct it. The truth is the population
    ATE / ATT (from 4 million draws of the covariates). Both weightings are consistent here;
    the question is how far a few learners with extreme weights move them, and whether their
    intervals say so.

For every DGP x covariate spec x outcome x estimand (ATE, ATT) x method (difference, regression, ipw, aipw) x
weights (normalised; unnormalised too in the overlap DGP) x standard errors (clustered by team /
cluster, or not; the overlap DGP has no clusters) it reports: mean bias (and its Monte
Carlo SE), bias in units of the mean standard error, median error, RMSE, coverage of the
nominal 95% interval, mean standard error, the empirical SD of the estimation error, and their
ratio. Clustering changes only the standard errors, never the estimate. The Monte Carlo
standard error of a coverage near 0.95 is sqrt(0.95 * 0.05 / reps): 0.014 at 250 replications,
0.010 at 500. The programme truth is the average over the simulated learners (a sample average
effect), while the standard errors target the population average, so a ratio slightly above 1
is expected there.

``--plain-se`` also records, in the programme DGP, the adjusted methods' plain sandwich standard
errors (``small_sample=False``) beside the default leverage-corrected ones (column ``se``), on
the same replications: the evidence for what the correction changes.

``--rollouts N`` adds the roll-out study (issue 12): ``N`` programmes simulated by
`lcstats.data.rollout.simulate_rollout` (teams start coaching in waves; an unrecorded learner
trait raises follow-through and brings the team's wave forward), each estimated with the
staggered simple aggregation (Callaway and Sant'Anna, never-coached comparison) and with
cross-sectional AIPW for the coached on the recorded covariates
(`lcstats.estimation.staggered.rollout_study`). Skills are assessed quarterly
(``assessment_gap=3``: five waves), so the study also estimates the effect on the skills gap on
the team x wave panel (staggered, against its known truth). Programmes run in chunks of 50 whose
seeds come from ``--seed`` and the chunk number, so the table does not depend on ``--jobs``.

Usage (about 3 minutes with the defaults, 5.5 minutes with --reps 500, on 2 cores)::

    .venv/bin/python benchmarks/validation_study.py                  # 250 replications per DGP
    .venv/bin/python benchmarks/validation_study.py --reps 500 --seed 1 --raw /tmp/raw.csv
    .venv/bin/python benchmarks/validation_study.py --dgp overlap --reps 1000 --seed 1
    .venv/bin/python benchmarks/validation_study.py --dgp none --rollouts 1000 --seed 1
"""

from __future__ import annotations

import os

# One BLAS thread per process, set before numpy loads: the work is many small matrix
# factorisations, for which OpenBLAS threads only add overhead, and on a busy 2-core machine
# they can make each call 100x slower (see benchmarks/README.md).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import itertools  # noqa: E402
import math  # noqa: E402
import multiprocessing  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from lcstats.core.errors import EstimationError  # noqa: E402
from lcstats.data.load import Programme, SourceFile  # noqa: E402
from lcstats.data.simulate import simulate_programme  # noqa: E402
from lcstats.estimation.analysis import estimate_effects  # noqa: E402
from lcstats.estimation.effects import estimate_effect  # noqa: E402
from lcstats.outcomes.learner import learner_outcomes  # noqa: E402

METHODS = ("difference", "regression", "ipw", "aipw")
ESTIMANDS = ("ATE", "ATT")
OUTCOMES = ("follow_through", "skills_gap")
PROGRAMME_SPECS = {
    "example": ("tenure_months", "engagement", "role", "cohort", "manager_coached"),
    "log_tenure": ("log_tenure", "engagement", "role", "cohort", "manager_coached"),
}
LINEAR_COVARIATES = ("xc", "x1", "x2")
LINEAR_EFFECT = 0.5
WEIGHTINGS = ("normalised", "unnormalised")
OVERLAP_TRUTH_DRAWS = 4_000_000
DGPS = {"both": ("programme", "linear"), "all": ("programme", "linear", "overlap"), "none": ()}
ROLLOUT_CHUNK = 50
AS_OF = "2026-06-30"
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "validation.csv"


def _record(
    est,
    *,
    dgp,
    spec,
    outcome,
    estimand,
    clustered,
    method,
    truth,
    weights="normalised",
    se="corrected",
) -> dict:
    """One row of the raw results: the design, the truth and the estimate (NaN if it failed)."""
    row = {
        "dgp": dgp,
        "spec": spec,
        "outcome": outcome,
        "estimand": estimand,
        "method": method,
        "weights": weights if method in ("ipw", "aipw") else "-",
        "clustered": clustered,
        "se": se if method != "difference" else "-",
        "truth": truth,
        "estimate": math.nan,
        "std_error": math.nan,
        "ci_low": math.nan,
        "ci_high": math.nan,
        "failed": est is None,
    }
    if est is not None:
        row.update(
            estimate=est.estimate, std_error=est.std_error, ci_low=est.ci_low, ci_high=est.ci_high
        )
    return row


def programme_replicate(seed: int, args: argparse.Namespace) -> list[dict]:
    """One simulated programme, through learner_outcomes and estimate_effects."""
    sim = simulate_programme(
        n_learners=args.n_programme, seed=seed, icc=args.icc, truth_draws=args.truth_draws
    )
    sources = {
        t: SourceFile(t, f"<simulated {t}>", "0" * 64, len(getattr(sim, t)))
        for t in ("learners", "action_items", "skill_assessments")
    }
    programme = Programme(
        learners=sim.learners,
        action_items=sim.action_items,
        skill_assessments=sim.skill_assessments,
        sources=sources,
        scale=(1, 5),
    )
    outcomes = learner_outcomes(programme, as_of=AS_OF)
    data = outcomes.data.assign(log_tenure=np.log1p(outcomes.data["tenure_months"]))
    outcomes = dataclasses.replace(outcomes, data=data)
    rows = []
    forms = ("corrected", "plain") if args.plain_se else ("corrected",)
    for spec, estimand, clustered, se in itertools.product(
        args.specs, ESTIMANDS, (False, True), forms
    ):
        try:
            effects = estimate_effects(
                outcomes,
                covariates=PROGRAMME_SPECS[spec],
                methods=METHODS if se == "corrected" else METHODS[1:],
                estimand=estimand,
                cluster="team_id" if clustered else None,
                small_sample=se == "corrected",
            )
        except EstimationError:  # one method failing drops the set: all count as failed
            effects = None
        for outcome in OUTCOMES:
            truth = sim.effect(outcome, "coached", estimand)
            for method in METHODS if se == "corrected" else METHODS[1:]:
                est = effects.get(outcome, method) if effects is not None else None
                rows.append(
                    _record(
                        est,
                        dgp="programme",
                        spec=spec,
                        outcome=outcome,
                        estimand=estimand,
                        clustered=clustered,
                        method=method,
                        truth=truth,
                        se=se,
                    )
                )
    return rows


def linear_data(rng: np.random.Generator, args: argparse.Namespace) -> pd.DataFrame:
    """Clustered linear DGP with a constant effect and correctly specified nuisance models."""
    g, m = args.clusters, args.cluster_size
    cluster = np.repeat(np.arange(g), m)
    xc = rng.standard_normal(g)[cluster]  # cluster-level covariate (e.g. team climate)
    x1 = 0.5 * xc + rng.standard_normal(g * m)
    x2 = (rng.random(g * m) < 0.4).astype(float)
    v = rng.standard_normal(g)[cluster]  # unobserved team roll-out, unrelated to the outcome
    logit = -0.4 + 1.0 * xc + 0.7 * x1 - 0.5 * x2 + v
    t = (rng.random(g * m) < 1 / (1 + np.exp(-logit))).astype(int)
    u = math.sqrt(args.linear_icc) * rng.standard_normal(g)[cluster]
    e = math.sqrt(1 - args.linear_icc) * rng.standard_normal(g * m)
    y = 1.0 + LINEAR_EFFECT * t + 1.0 * xc + 1.0 * x1 + 0.5 * x2 + u + e
    return pd.DataFrame({"y": y, "t": t, "xc": xc, "x1": x1, "x2": x2, "cluster": cluster})


def linear_replicate(seed: int, args: argparse.Namespace) -> list[dict]:
    data = linear_data(np.random.default_rng(seed), args)
    rows = []
    for estimand in ESTIMANDS:
        for clustered in (False, True):
            for method in METHODS:
                try:
                    est = estimate_effect(
                        data,
                        outcome="y",
                        treatment="t",
                        covariates=LINEAR_COVARIATES,
                        method=method,
                        estimand=estimand,
                        cluster="cluster" if clustered else None,
                    )
                except EstimationError:
                    est = None
                rows.append(
                    _record(
                        est,
                        dgp="linear",
                        spec="correct",
                        outcome="y",
                        estimand=estimand,
                        clustered=clustered,
                        method=method,
                        truth=LINEAR_EFFECT,
                    )
                )
    return rows


def _overlap_covariates(rng: np.random.Generator, n: int, strength: float):
    """Confounder, second covariate, true propensity and the two potential outcome means."""
    x = rng.standard_normal(n)
    eng = rng.standard_normal(n)
    e = 1 / (1 + np.exp(-(0.3 + strength * x + 0.5 * eng)))
    lin = -0.3 + 1.5 * (x > 0.8) + 0.3 * eng
    return x, eng, e, 1 / (1 + np.exp(-lin)), 1 / (1 + np.exp(-(lin + 0.5)))


def overlap_truth(strength: float) -> dict[str, float]:
    """Population ATE and ATT of the overlap DGP (a fixed seed: the same in every worker)."""
    _, _, e, mu0, mu1 = _overlap_covariates(
        np.random.default_rng(20261201), OVERLAP_TRUTH_DRAWS, strength
    )
    return {"ATE": float(np.mean(mu1 - mu0)), "ATT": float(np.sum(e * (mu1 - mu0)) / e.sum())}


def overlap_replicate(seed: int, args: argparse.Namespace) -> list[dict]:
    """Poor overlap: IPW and AIPW with normalised and unnormalised weights (no clusters)."""
    rng = np.random.default_rng(seed)
    rows = []
    for strength in args.overlap_strengths:
        x, eng, e, mu0, mu1 = _overlap_covariates(rng, args.n_overlap, strength)
        t = (rng.random(args.n_overlap) < e).astype(int)
        y = rng.binomial(6, np.where(t == 1, mu1, mu0)) / 6
        data = pd.DataFrame({"y": y, "t": t, "x": x, "eng": eng})
        truth = args.overlap_truths[strength]
        for estimand in ESTIMANDS:
            for method in ("ipw", "aipw"):
                for weights in WEIGHTINGS:
                    try:
                        est = estimate_effect(
                            data,
                            outcome="y",
                            treatment="t",
                            covariates=("x", "eng"),
                            method=method,
                            estimand=estimand,
                            weights=weights,
                        )
                    except EstimationError:
                        est = None
                    rows.append(
                        _record(
                            est,
                            dgp="overlap",
                            spec=f"strength {strength:g}",
                            outcome="y",
                            estimand=estimand,
                            clustered=False,
                            method=method,
                            truth=truth[estimand],
                            weights=weights,
                        )
                    )
    return rows


REPLICATES = {
    "programme": programme_replicate,
    "linear": linear_replicate,
    "overlap": overlap_replicate,
}


def replicate(task: tuple[str, int, int, argparse.Namespace]) -> list[dict]:
    dgp, rep, seed, args = task
    rows = REPLICATES[dgp](seed, args)
    for row in rows:
        row["rep"] = rep
    return rows


def summarise(raw: pd.DataFrame) -> pd.DataFrame:
    """One row per DGP x spec x outcome x estimand x method x clustered."""

    def stats(g: pd.DataFrame) -> pd.Series:
        ok = g[~g["failed"]]
        err = ok["estimate"] - ok["truth"]
        covered = (ok["ci_low"] <= ok["truth"]) & (ok["truth"] <= ok["ci_high"])
        reps = len(ok)
        mean_se = ok["std_error"].mean()
        emp_sd = err.std(ddof=1)
        bias = err.mean()
        return pd.Series(
            {
                "reps": reps,
                "failed": int(g["failed"].sum()),
                "truth": ok["truth"].mean(),
                "bias": bias,
                "mc_se_bias": emp_sd / math.sqrt(reps) if reps else math.nan,
                "bias_over_se": bias / mean_se,
                "median_error": err.median(),
                "rmse": math.sqrt((err**2).mean()),
                "max_abs_error": err.abs().max(),
                "coverage": covered.mean(),
                "mean_se": mean_se,
                "emp_sd": emp_sd,
                "se_ratio": mean_se / emp_sd,
            }
        )

    raw = raw.assign(se=raw["se"].fillna("corrected")) if "se" in raw else raw.assign(se="-")
    keys = ["dgp", "spec", "outcome", "estimand", "method", "weights", "clustered", "se"]
    out = raw.groupby(keys, sort=False).apply(stats, include_groups=False).reset_index()
    out = out.astype({"reps": int, "failed": int})
    order = {m: i for i, m in enumerate(METHODS)}
    out["_m"] = out["method"].map(order)
    out = out.sort_values(
        ["dgp", "spec", "outcome", "estimand", "_m", "weights", "clustered", "se"], kind="stable"
    )
    return out.drop(columns="_m").reset_index(drop=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=250, help="replications per DGP (default 250)")
    p.add_argument("--seed", type=int, default=1, help="master seed (default 1)")
    p.add_argument(
        "--dgp",
        choices=("both", "all", "none", *REPLICATES),
        default="both",
        help="which DGP(s): both = programme and linear; all = the three; none (with --rollouts)",
    )
    p.add_argument("--n-overlap", type=int, default=1500, help="learners (overlap DGP)")
    p.add_argument(
        "--overlap-strengths",
        type=float,
        nargs="+",
        default=[1.5, 2.0],
        help="slopes of the confounder in the propensity model (overlap DGP)",
    )
    p.add_argument("--n-programme", type=int, default=1500, help="learners per programme")
    p.add_argument("--icc", type=float, default=0.2, help="team share of outcome variance")
    p.add_argument(
        "--specs",
        nargs="+",
        choices=tuple(PROGRAMME_SPECS),
        default=list(PROGRAMME_SPECS),
        help="covariate specs for the programme DGP (default: both)",
    )
    p.add_argument("--truth-draws", type=int, default=200, help="MC draws for skills-gap truth")
    p.add_argument("--clusters", type=int, default=100, help="clusters in the linear DGP")
    p.add_argument("--cluster-size", type=int, default=20, help="units per cluster (linear DGP)")
    p.add_argument("--linear-icc", type=float, default=0.5, help="cluster share (linear DGP)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes")
    p.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"CSV path (default {DEFAULT_OUT})"
    )
    p.add_argument("--raw", type=Path, help="also write every replication's estimates here (CSV)")
    p.add_argument(
        "--plain-se",
        action="store_true",
        help="programme DGP: also the plain sandwich SEs (small_sample=False) beside the "
        "leverage-corrected ones",
    )
    p.add_argument(
        "--rollouts",
        type=int,
        default=0,
        help="also run the roll-out study (staggered against AIPW) on this many programmes",
    )
    return p.parse_args(argv)


FORMATS = {
    "truth": "{:.4f}".format,
    "bias": "{:+.4f}".format,
    "mc_se_bias": "{:.4f}".format,
    "bias_over_se": "{:+.2f}".format,
    "median_error": "{:+.4f}".format,
    "rmse": "{:.4f}".format,
    "max_abs_error": "{:.4f}".format,
    "coverage": "{:.3f}".format,
    "mean_se": "{:.4f}".format,
    "emp_sd": "{:.4f}".format,
    "se_ratio": "{:.2f}".format,
}


def print_overlap(table: pd.DataFrame) -> None:
    """The poor-overlap comparison of normalised and unnormalised weights."""
    rows = table[table["dgp"] == "overlap"]
    if rows.empty:
        return
    cols = ["spec", "estimand", "method", "weights", "bias", "rmse", "max_abs_error"]
    cols += ["coverage", "se_ratio", "failed"]
    print("\npoor overlap: normalised (Hajek) against unnormalised (Horvitz-Thompson) weights")
    print(rows[cols].to_string(index=False, formatters=FORMATS))


def print_tables(table: pd.DataFrame, args: argparse.Namespace, elapsed: float, dgps) -> None:
    """The study's header and its tables."""
    print(
        f"lcstats validation study: {args.reps} replications per DGP ({', '.join(dgps)}), "
        f"seed {args.seed}, {args.jobs} worker(s), {elapsed:.0f} s, load average "
        f"{os.getloadavg()[0]:.1f}"
    )
    print(
        f"programme: {args.n_programme} learners, teams of ~10, icc {args.icc}; SEs clustered "
        "by team_id or not; covariate specs: "
        + "; ".join(f"{k} = {', '.join(PROGRAMME_SPECS[k])}" for k in args.specs)
    )
    print(
        f"linear: {args.clusters} clusters x {args.cluster_size}, cluster share "
        f"{args.linear_icc}, clustered roll-out, constant effect {LINEAR_EFFECT}; covariates "
        "xc, x1, x2"
    )
    if "overlap" in dgps:
        print(
            f"overlap: {args.n_overlap} learners, strengths "
            f"{', '.join(f'{s:g}' for s in args.overlap_strengths)}; no clusters"
        )
    print(f"Monte Carlo SE of a 95% coverage: {math.sqrt(0.95 * 0.05 / args.reps):.3f}\n")
    shown = table.assign(clustered=table["clustered"].map({True: "yes", False: "no"}))
    with pd.option_context("display.width", 220, "display.max_rows", 500):
        print(shown.drop(columns="max_abs_error").to_string(index=False, formatters=FORMATS))
        print_overlap(table)


def _rollout_chunk(task: tuple[int, int, int]) -> pd.DataFrame:
    """One chunk of the roll-out study: `rollout_study` on ``n`` programmes from its own seed."""
    from lcstats.estimation.staggered import rollout_study

    seed, chunk, n = task
    return rollout_study(n, seed=seed * 100_003 + chunk, assessment_gap=3).assign(chunk=chunk)


def rollout_table(args: argparse.Namespace) -> pd.DataFrame:
    """The roll-out study over ``--rollouts`` programmes, summarised by method."""
    from lcstats.estimation.staggered import summarise_rollout_study

    sizes = [ROLLOUT_CHUNK] * (args.rollouts // ROLLOUT_CHUNK)
    sizes += [args.rollouts % ROLLOUT_CHUNK] if args.rollouts % ROLLOUT_CHUNK else []
    tasks = [(args.seed, k, n) for k, n in enumerate(sizes)]
    if args.jobs > 1:
        with multiprocessing.get_context("fork").Pool(args.jobs) as pool:
            parts = pool.map(_rollout_chunk, tasks)
    else:
        parts = [_rollout_chunk(t) for t in tasks]
    return summarise_rollout_study(pd.concat(parts, ignore_index=True))


def print_rollouts(table: pd.DataFrame, args: argparse.Namespace, elapsed: float) -> None:
    """The roll-out study's table: staggered simple aggregation against cross-sectional AIPW."""
    print(
        f"\nroll-out in waves: {args.rollouts} programmes, seed {args.seed}, {elapsed:.0f} s, "
        f"load average {os.getloadavg()[0]:.1f}; an unrecorded trait raises follow-through and "
        "brings the team's wave forward"
    )
    cols = ["method", "n", "truth", "bias", "mc_se_bias", "rmse", "coverage", "mean_se", "sd"]
    cols += ["pre_trend_rejects"]
    fmt = {**FORMATS, "sd": "{:.4f}".format, "pre_trend_rejects": "{:.3f}".format}
    print(table[cols].to_string(index=False, formatters=fmt))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    dgps = DGPS.get(args.dgp, (args.dgp,))
    if "overlap" in dgps:  # computed once here, not in every replication
        args.overlap_truths = {s: overlap_truth(s) for s in args.overlap_strengths}
    tasks = []
    for k, dgp in enumerate(dgps):
        children = np.random.SeedSequence([args.seed, k]).spawn(args.reps)
        tasks += [(dgp, r, int(c.generate_state(1)[0]), args) for r, c in enumerate(children)]
    if args.rollouts:
        started = time.perf_counter()
        rollouts = rollout_table(args)
        out = args.out.with_name("rollout.csv")
        out.parent.mkdir(parents=True, exist_ok=True)
        rollouts.to_csv(out, index=False, float_format="%.6g", lineterminator="\n")
        print_rollouts(rollouts, args, time.perf_counter() - started)
        print(f"written: {out}")
    if not tasks:
        return 0
    started = time.perf_counter()
    rows: list[dict] = []
    if args.jobs > 1:
        with multiprocessing.get_context("fork").Pool(args.jobs) as pool:
            for chunk in pool.imap_unordered(replicate, tasks, chunksize=4):
                rows += chunk
    else:
        for task in tasks:
            rows += replicate(task)
    elapsed = time.perf_counter() - started
    raw = pd.DataFrame(rows).sort_values(["dgp", "rep"], kind="stable")
    table = summarise(raw)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False, float_format="%.6g", lineterminator="\n")
    if args.raw:
        args.raw.parent.mkdir(parents=True, exist_ok=True)
        raw.to_csv(args.raw, index=False, float_format="%.8g", lineterminator="\n")

    print_tables(table, args, elapsed, dgps)
    print(f"\nwritten: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
