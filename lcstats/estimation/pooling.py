"""Pooled evidence: a random-effects meta-analysis of one outcome across evaluations or cohorts.

The effects of coaching on the same outcome in several programmes (or in the cohorts of one
programme) are combined with statsmodels' `combine_effects`, with the between-programme
variance tau² estimated by DerSimonian-Laird (``"dl"``, one step) or Paule-Mandel (``"pm"``,
iterated; the default, which behaves better when programmes differ in size). The numbers follow
R's metafor, which they are tested against:

- tau² is truncated at 0 (statsmodels' DerSimonian-Laird value can be negative); with tau² = 0
  the random-effects results are the fixed-effect ones;
- I² = tau² / (tau² + s²) with s² = (k - 1) / (sum w - sum w² / sum w), w = 1 / v (metafor's
  definition; equal to the Q-based (Q - df) / Q for DerSimonian-Laird), and H² = (tau² + s²) / s²;
- the interval for the pooled effect uses the normal distribution (metafor's default), or with
  ``hartung_knapp=True`` the Hartung-Knapp-Sidik-Jonkman standard error and t with k - 1 df.

The prediction interval (where the effect in a new programme is expected to lie) is
``mu ± t(k - 2) · sqrt(tau² + SE(mu)²)`` (Higgins, Thompson & Spiegelhalter 2009; R meta's
default). It needs at least 3 programmes. metafor's ``predict()`` uses the normal quantile
instead, which gives a narrower interval; we keep the t version because evaluations pool few
programmes.

Cohorts within one evaluation (`cohort_estimates`) share teams and managers, so their estimates
are not fully independent; read that pooled interval as approximate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.meta_analysis import combine_effects

from lcstats.core.display import summary_html
from lcstats.core.errors import EstimationError
from lcstats.core.options import METHODS, OUTCOME_UNITS, check_choice
from lcstats.estimation.analysis import outcome_covariates
from lcstats.estimation.effects import (
    VERBS,
    EffectEstimate,
    estimate_effect,
    format_effect,
    format_interval,
    format_p,
)
from lcstats.outcomes.learner import LearnerOutcomes, analysis_sample

PoolingMethod = Literal["dl", "pm"]
POOLING_METHODS: tuple[str, ...] = get_args(PoolingMethod)
METHOD_LABELS = {"dl": "DerSimonian-Laird", "pm": "Paule-Mandel"}
_STATSMODELS_METHOD = {"dl": "chi2", "pm": "iterated"}
PM_TOLERANCE = 1e-10  # on Paule-Mandel's estimating equation (statsmodels' default is 1e-5)
PM_MAX_ITERATIONS = 200
TREATMENT_WORDS = {"coached": "coaching", "manager_coached": "coaching the line manager"}
OUTCOME_WORDS = {"follow_through": "follow-through", "skills_gap": "the skills gap"}
CHANGE_WORDS = {  # outcome -> (a positive change, a negative change)
    "follow_through": ("a rise", "a fall"),
    "skills_gap": ("a widening", "a narrowing"),
}
STUDY_COLUMNS = (
    "label",
    "kind",
    "estimate",
    "std_error",
    "ci_low",
    "ci_high",
    "weight",
    "weight_fixed",
    "n_treated",
    "n_control",
    "pi_low",
    "pi_high",
)
FOREST_COLUMNS = ("label", "kind", "estimate", "ci_low", "ci_high", "weight", "text", "unit")


@dataclass(frozen=True)
class PooledEffect:
    """A random-effects pooled effect of a treatment on one outcome, and its heterogeneity.

    ``estimate`` is in the outcome's units (a proportion for follow-through, shown in percentage
    points; points for the skills gap, negative when the gap narrowed). ``i2`` is a fraction
    (0.92 = 92%). Heterogeneity and prediction-interval fields are NaN where they cannot be
    computed (one study; a prediction interval with two). ``studies`` has one row per study:
    ``label, estimate, std_error, ci_low, ci_high, weight`` (random-effects, summing to 1),
    ``weight_fixed``, ``n_treated``, ``n_control``.
    """

    outcome: str
    treatment: str
    method: str
    estimate: float
    std_error: float
    ci_low: float
    ci_high: float
    p_value: float
    tau2: float
    i2: float
    h2: float
    q: float
    q_df: int
    q_p_value: float
    k: int
    pi_low: float
    pi_high: float
    studies: pd.DataFrame = field(compare=False, repr=False)
    alpha: float = 0.05
    hartung_knapp: bool = False
    noun: str = "programme"
    units: str = ""
    scale: tuple[float, float] | None = None
    notes: tuple[str, ...] = ()

    @property
    def tau(self) -> float:
        """The between-study standard deviation of the effect (sqrt of tau²)."""
        return math.sqrt(self.tau2) if self.tau2 >= 0 else math.nan

    @property
    def confidence(self) -> int:
        """The confidence level in percent (95 for alpha = 0.05)."""
        return round(100 * (1 - self.alpha))

    def to_frame(self) -> pd.DataFrame:
        """Tidy frame: one row per study (``kind="study"``), then the pooled row."""
        studies = self.studies.assign(kind="study", pi_low=math.nan, pi_high=math.nan)
        pooled = {
            "label": "pooled",
            "kind": "pooled",
            "estimate": self.estimate,
            "std_error": self.std_error,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "weight": 1.0,
            "weight_fixed": 1.0,
            "n_treated": studies["n_treated"].sum(min_count=1),
            "n_control": studies["n_control"].sum(min_count=1),
            "pi_low": self.pi_low,
            "pi_high": self.pi_high,
        }
        frame = pd.concat([studies, pd.DataFrame([pooled])], ignore_index=True)
        frame = frame[list(STUDY_COLUMNS)].assign(outcome=self.outcome, method=self.method)
        for col in ("n_treated", "n_control"):
            frame[col] = frame[col].astype("Int64")
        return frame

    def forest_frame(self) -> pd.DataFrame:
        """What a forest plot draws, in display units (percentage points for follow-through).

        One row per study (``kind="study"``, ``weight`` for the marker size), the pooled effect
        (``"pooled"``, drawn as a diamond) and, where defined, the prediction interval
        (``"prediction"``: ``ci_low``/``ci_high`` are its limits). ``text`` is the estimate and
        interval as printed beside the row; ``unit`` names the axis.
        """
        factor, unit = _display_scale(self.outcome)
        frame = self.to_frame()
        rows = frame[["label", "kind", "estimate", "ci_low", "ci_high", "weight"]].copy()
        if self.k >= 3 and np.isfinite(self.pi_low):
            rows.loc[len(rows)] = {
                "label": f"prediction interval (a new {self.noun})",
                "kind": "prediction",
                "estimate": self.estimate,
                "ci_low": self.pi_low,
                "ci_high": self.pi_high,
                "weight": math.nan,
            }
        for col in ("estimate", "ci_low", "ci_high"):
            rows[col] = rows[col] * factor
        rows["text"] = [
            f"{e:.{_digits(self.outcome)}f} ({lo:.{_digits(self.outcome)}f} to "
            f"{hi:.{_digits(self.outcome)}f})"
            for e, lo, hi in zip(rows["estimate"], rows["ci_low"], rows["ci_high"], strict=True)
        ]
        rows["unit"] = unit
        return rows[list(FOREST_COLUMNS)].reset_index(drop=True)

    def as_dict(self) -> dict[str, Any]:
        """The pooled numbers as JSON-ready values (NaN as None) for results.json."""
        keys = [f.name for f in fields(self) if f.name not in ("studies", "scale", "notes")]
        values = {key: getattr(self, key) for key in keys}
        out = {
            k: None if isinstance(v, float) and not math.isfinite(v) else v
            for k, v in values.items()
        }
        return out | {"notes": list(self.notes)}

    def reading(self) -> str:
        """The pooled effect, and how much programmes differ, in plain words."""
        return _reading(self)

    def summary(self) -> str:
        """Return a short text summary (not printed)."""
        return _summary(self)

    def __repr__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        return summary_html(self.reading(), self.notes, {"Evaluations pooled": self.to_frame()})


# ----------------------------------------------------------------------------------------------
# Inputs


def _from_estimates(estimates: Sequence[EffectEstimate]) -> pd.DataFrame:
    """The studies' frame of a sequence of `EffectEstimate` (or objects with the same fields)."""
    rows = []
    for i, est in enumerate(estimates):
        missing = [a for a in ("estimate", "std_error") if not hasattr(est, a)]
        if missing:
            raise ValueError(
                f"estimates[{i}] has no {', '.join(missing)}; pass EffectEstimate objects or a "
                "DataFrame with columns estimate and std_error"
            )
        rows.append({col: getattr(est, col, None) for col in _INPUT_COLUMNS})
    return pd.DataFrame(rows, columns=list(_INPUT_COLUMNS))


_INPUT_COLUMNS = (
    "label",
    "outcome",
    "treatment",
    "estimate",
    "std_error",
    "ci_low",
    "ci_high",
    "n_treated",
    "n_control",
)


def _from_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The studies' frame of a DataFrame with at least ``estimate`` and ``std_error``."""
    missing = [c for c in ("estimate", "std_error") if c not in frame.columns]
    if missing:
        raise ValueError(
            f"estimates has no column(s) {', '.join(missing)}; expected columns estimate and "
            "std_error, optionally label, outcome, treatment, ci_low, ci_high, n_treated, n_control"
        )
    out = frame.reindex(columns=list(_INPUT_COLUMNS)).reset_index(drop=True)
    if "label" not in frame.columns and not isinstance(frame.index, pd.RangeIndex):
        out["label"] = [str(i) for i in frame.index]
    return out


def _labels(frame: pd.DataFrame, labels: Sequence[str] | None, noun: str) -> list[str]:
    """Study labels: the argument, else the input's labels, else "programme 1", ...."""
    k = len(frame)
    if labels is not None:
        labels = [str(x) for x in labels]
        if len(labels) != k:
            raise ValueError(f"labels has {len(labels)} entries for {k} estimates")
        return labels
    given = frame["label"]
    return [
        str(v) if v is not None and not pd.isna(v) else f"{noun} {i}"
        for i, v in enumerate(given, start=1)
    ]


def _one_value(frame: pd.DataFrame, column: str, given: str | None, default: str) -> str:
    """The single outcome (or treatment) of all studies; refuse a mix."""
    values = {str(v) for v in frame[column] if v is not None and not pd.isna(v)}
    if given is not None:
        values.add(str(given))
    if len(values) > 1:
        raise ValueError(
            f"the estimates are of different {column}s ({', '.join(sorted(values))}); "
            f"pool one {column} at a time"
        )
    return values.pop() if values else default


def _studies(
    estimates: pd.DataFrame | Sequence[EffectEstimate],
    *,
    labels: Sequence[str] | None,
    outcome: str | None,
    noun: str,
    alpha: float,
) -> tuple[pd.DataFrame, str, str]:
    """Check the inputs; return the studies' frame, the outcome and the treatment."""
    if isinstance(estimates, pd.DataFrame):
        frame = _from_frame(estimates)
    elif isinstance(estimates, Sequence) and not isinstance(estimates, str):
        frame = _from_estimates(estimates)
    else:
        raise TypeError("estimates must be a DataFrame or a sequence of EffectEstimate")
    if len(frame) == 0:
        raise ValueError("no estimates to pool: pass at least one")
    if outcome is None and frame["outcome"].isna().all():
        raise ValueError("say which outcome the estimates are of: outcome='follow_through', ...")
    out = _one_value(frame, "outcome", outcome, "")
    treatment = _one_value(frame, "treatment", None, "coached")
    y = pd.to_numeric(frame["estimate"], errors="coerce").to_numpy(dtype=float)
    se = pd.to_numeric(frame["std_error"], errors="coerce").to_numpy(dtype=float)
    bad = [
        i for i in range(len(frame)) if not (np.isfinite(y[i]) and np.isfinite(se[i]) and se[i] > 0)
    ]
    if bad:
        raise ValueError(
            f"estimates {', '.join(map(str, bad[:5]))} (counting from 0) need a finite estimate "
            "and a positive, finite std_error"
        )
    z = stats.norm.isf(alpha / 2)
    ci_low = pd.to_numeric(frame["ci_low"], errors="coerce").to_numpy(dtype=float)
    ci_high = pd.to_numeric(frame["ci_high"], errors="coerce").to_numpy(dtype=float)
    ci_missing = ~(np.isfinite(ci_low) & np.isfinite(ci_high))
    studies = pd.DataFrame(
        {
            "label": _labels(frame, labels, noun),
            "estimate": y,
            "std_error": se,
            "ci_low": np.where(ci_missing, y - z * se, ci_low),
            "ci_high": np.where(ci_missing, y + z * se, ci_high),
            "n_treated": pd.to_numeric(frame["n_treated"], errors="coerce").astype("Int64"),
            "n_control": pd.to_numeric(frame["n_control"], errors="coerce").astype("Int64"),
        }
    )
    return studies, out, treatment


# ----------------------------------------------------------------------------------------------
# The meta-analysis


def _i2_h2(var: np.ndarray, tau2: float) -> tuple[float, float]:
    """metafor's I² = tau² / (tau² + s²) and H² = (tau² + s²) / s², s² the typical variance."""
    w = 1 / var
    s2 = (len(var) - 1) / (w.sum() - (w**2).sum() / w.sum())
    return tau2 / (tau2 + s2), (tau2 + s2) / s2


def _pm_converged(y: np.ndarray, var: np.ndarray, tau2: float) -> bool:
    """Whether tau² solves Paule-Mandel's equation (generalised Q = k - 1, or tau² = 0)."""
    w = 1 / (var + tau2)
    mu = np.dot(w, y) / w.sum()
    q_gen = np.dot(w, (y - mu) ** 2)
    if tau2 <= 0:
        return bool(q_gen <= len(y) - 1 + 1e-8)
    return bool(abs(q_gen - (len(y) - 1)) <= 1e-6 * (len(y) - 1))


def _random_effects(res: Any, var: np.ndarray) -> dict[str, Any]:
    """tau² truncated at 0, and the pooled mean, its standard errors and weights to match.

    A negative DerSimonian-Laird tau² means the studies vary less than chance alone would make
    them: tau² is set to 0 (as metafor does) and the fixed-effect results are used.
    """
    negative = res.tau2 < 0
    tau2 = 0.0 if negative else float(res.tau2)
    i2, h2 = _i2_h2(var, tau2)
    return {
        "tau2": tau2,
        "i2": float(i2),
        "h2": float(h2),
        "estimate": float(res.mean_effect_fe if negative else res.mean_effect_re),
        "se_normal": float(res.sd_eff_w_fe if negative else res.sd_eff_w_re),
        "se_hksj": float(res.sd_eff_w_fe_hksj if negative else res.sd_eff_w_re_hksj),
        "weights": np.asarray(res.weights_rel_fe if negative else res.weights_rel_re, dtype=float),
        "weights_fixed": np.asarray(res.weights_rel_fe, dtype=float),
    }


def _intervals(
    mu: float, se: float, tau2: float, *, k: int, alpha: float, hartung_knapp: bool
) -> dict[str, float]:
    """Interval and p-value of the pooled mean; the prediction interval (t, k - 2 df)."""
    dist, df = (stats.t, (k - 1,)) if hartung_knapp else (stats.norm, ())
    crit = float(dist.isf(alpha / 2, *df))
    pi = (math.nan, math.nan)
    if k >= 3:
        half = stats.t.isf(alpha / 2, k - 2) * math.sqrt(tau2 + se**2)
        pi = (float(mu - half), float(mu + half))
    return {
        "std_error": se,
        "ci_low": mu - crit * se,
        "ci_high": mu + crit * se,
        "p_value": float(2 * dist.sf(abs(mu / se), *df)),
        "pi_low": pi[0],
        "pi_high": pi[1],
    }


def _fit(
    y: np.ndarray, var: np.ndarray, *, method: str, alpha: float, hartung_knapp: bool
) -> dict[str, Any]:
    """Pool k >= 2 estimates with statsmodels' combine_effects, truncating tau² at 0."""
    k = len(y)
    options = {"atol": PM_TOLERANCE, "maxiter": PM_MAX_ITERATIONS} if method == "pm" else {}
    res = combine_effects(y, var, method_re=_STATSMODELS_METHOD[method], alpha=alpha, **options)
    fit = _random_effects(res, var)
    se = fit.pop("se_hksj") if hartung_knapp else fit.pop("se_normal")
    fit.pop("se_hksj", None)
    fit.pop("se_normal", None)
    homogeneity = res.test_homogeneity()
    notes = []
    if method == "pm" and not _pm_converged(y, var, fit["tau2"]):
        notes.append("the Paule-Mandel estimate of tau² did not converge; try method='dl'")
    return {
        **fit,
        **_intervals(
            fit["estimate"], se, fit["tau2"], k=k, alpha=alpha, hartung_knapp=hartung_knapp
        ),
        "q": float(homogeneity.statistic),
        "q_df": k - 1,
        "q_p_value": float(homogeneity.pvalue),
        "notes": notes,
    }


def _single(studies: pd.DataFrame) -> dict[str, Any]:
    """One study: nothing to pool; its own estimate is passed through."""
    row = studies.iloc[0]
    z = float(row["estimate"]) / float(row["std_error"])
    nan = math.nan
    return {
        "estimate": float(row["estimate"]),
        "std_error": float(row["std_error"]),
        "ci_low": float(row["ci_low"]),
        "ci_high": float(row["ci_high"]),
        "p_value": float(2 * stats.norm.sf(abs(z))),
        **dict.fromkeys(("tau2", "i2", "h2", "q", "q_p_value", "pi_low", "pi_high"), nan),
        "q_df": 0,
        "weights": np.ones(1),
        "weights_fixed": np.ones(1),
        "notes": [],
    }


def pool_effects(
    estimates: pd.DataFrame | Sequence[EffectEstimate],
    *,
    method: PoolingMethod = "pm",
    alpha: float = 0.05,
    labels: Sequence[str] | None = None,
    outcome: str | None = None,
    hartung_knapp: bool = False,
    noun: str = "programme",
    scale: tuple[float, float] | None = None,
) -> PooledEffect:
    """Pool effects of coaching on one outcome with a random-effects meta-analysis.

    Parameters
    ----------
    estimates : DataFrame or sequence of EffectEstimate
        One estimate per programme (or cohort). A frame needs ``estimate`` and ``std_error``;
        ``label``, ``outcome``, ``treatment``, ``ci_low``, ``ci_high``, ``n_treated`` and
        ``n_control`` are used when present (a non-default index serves as labels).
    method : {"pm", "dl"}
        How the between-programme variance tau² is estimated: Paule-Mandel (iterated) or
        DerSimonian-Laird (one step).
    alpha : float
        1 - confidence level of the intervals.
    labels : sequence of str, optional
        The studies' names (programmes, cohorts), in order.
    outcome : str, optional
        The outcome, when the estimates do not say (a frame without an ``outcome`` column).
    hartung_knapp : bool
        Use the Hartung-Knapp-Sidik-Jonkman standard error and t with k - 1 df for the pooled
        interval (wider, better coverage with few studies; R meta's ``hakn=TRUE``).
    noun : str
        What a study is, in the reading ("programme", "cohort"); an "s" makes the plural.
    scale : (low, high), optional
        The skill scale, named in the reading of the skills gap ("on the 1-5 skill scale").

    Returns
    -------
    PooledEffect

    Raises
    ------
    ValueError
        Unknown method, alpha outside (0, 1), no estimates, a missing or non-positive standard
        error, estimates of different outcomes, labels of the wrong length.

    Examples
    --------
    >>> import pandas as pd
    >>> studies = pd.DataFrame({"estimate": [0.06, 0.10, 0.08, 0.12],
    ...                         "std_error": [0.02, 0.03, 0.025, 0.04]},
    ...                        index=["North", "South", "East", "West"])
    >>> pooled = pool_effects(studies, outcome="follow_through")
    >>> round(pooled.estimate, 4), pooled.tau2, pooled.k
    (0.0795, 0.0, 4)
    >>> print(pooled.reading().split(";")[0])
    Across 4 programmes coaching raised follow-through by about 8.0 percentage points (95% interval 5.4 to 10.5 percentage points)
    """
    check_choice("method", method, POOLING_METHODS)
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 < alpha < 1:
        raise ValueError(f"alpha={alpha!r} must be between 0 and 1")
    studies, outcome, treatment = _studies(
        estimates, labels=labels, outcome=outcome, noun=noun, alpha=alpha
    )
    y = studies["estimate"].to_numpy(dtype=float)
    var = studies["std_error"].to_numpy(dtype=float) ** 2
    k = len(y)
    fit = (
        _single(studies)
        if k == 1
        else _fit(y, var, method=method, alpha=alpha, hartung_knapp=hartung_knapp)
    )
    studies = studies.assign(weight=fit.pop("weights"), weight_fixed=fit.pop("weights_fixed"))
    notes = fit.pop("notes")
    if k == 1:
        notes.insert(0, f"only one {noun}: nothing to pool; its own estimate is shown")
    elif k == 2:
        notes.insert(0, "a prediction interval needs at least 3 studies (t with k - 2 df)")
    return PooledEffect(
        outcome=outcome,
        treatment=treatment,
        method=method,
        **fit,
        k=k,
        studies=studies,
        alpha=float(alpha),
        hartung_knapp=bool(hartung_knapp and k > 1),
        noun=noun,
        units=OUTCOME_UNITS.get(outcome, "outcome units"),
        scale=scale,
        notes=tuple(notes),
    )


# ----------------------------------------------------------------------------------------------
# Cohorts within one evaluation


def _cohort_effect(
    frame: pd.DataFrame, *, treatment: str, min_group_size: int, fit: dict[str, Any]
) -> tuple[EffectEstimate | None, str]:
    """The effect within one cohort, or why it was left out (no counts: they may be small)."""
    t = pd.to_numeric(frame[treatment], errors="coerce")
    if min(int((t == 1).sum()), int((t == 0).sum())) < min_group_size:
        return None, f"fewer than {min_group_size} coached or not-coached learners"
    try:
        return estimate_effect(frame, treatment=treatment, **fit), ""
    except EstimationError as exc:
        return None, f"could not be estimated ({exc})"


def cohort_estimates(
    outcomes: LearnerOutcomes | pd.DataFrame,
    *,
    outcome: str,
    treatment: str = "coached",
    covariates: Sequence[str] = (),
    method: str = "aipw",
    estimand: str = "ATE",
    cluster: str | None = None,
    cohort: str = "cohort",
    min_group_size: int = 5,
    alpha: float = 0.05,
    pooling: PoolingMethod = "pm",
    scale: tuple[float, float] | None = None,
) -> PooledEffect:
    """Estimate the effect within each cohort of one evaluation, then pool the cohorts.

    Each cohort uses the same estimator as the evaluation (`lcstats.estimate_effect`) on the
    learners with the outcome and every covariate (the skills gap also adjusts for its
    pre-programme gap); the cohort column itself is not a covariate within a cohort. Cohorts
    with fewer than `min_group_size` coached or not-coached learners, and cohorts the estimator
    refuses (`EstimationError`), are left out and named in ``notes``.

    Parameters
    ----------
    outcomes : LearnerOutcomes or DataFrame
        Learner-level outcomes (`lcstats.learner_outcomes`).
    outcome, treatment, covariates, method, estimand, cluster, alpha
        As in `lcstats.estimate_effect`.
    cohort : str
        The column naming each learner's cohort.
    min_group_size : int
        The least number of coached, and of not-coached, learners a cohort needs.
    pooling : {"pm", "dl"}
        The estimator of tau² (`pool_effects`).
    scale : (low, high), optional
        The skill scale, named in the reading.

    Returns
    -------
    PooledEffect
        With one study per cohort (``noun="cohort"``).

    Raises
    ------
    EstimationError
        When no cohort can be estimated.
    """
    check_choice("method", method, METHODS)
    check_choice("pooling", pooling, POOLING_METHODS)
    if (
        isinstance(min_group_size, bool)
        or not isinstance(min_group_size, int)
        or min_group_size < 1
    ):
        raise ValueError(f"min_group_size={min_group_size!r} must be a whole number of at least 1")
    frame = outcomes.data if isinstance(outcomes, LearnerOutcomes) else outcomes
    if cohort not in frame.columns:
        raise ValueError(
            f"column {cohort!r} not in data; have {', '.join(map(str, frame.columns))}"
        )
    covs = tuple(c for c in outcome_covariates(outcome, covariates) if c != cohort)
    sample = analysis_sample(
        frame[frame[cohort].notna()],
        outcome=outcome,
        treatment=treatment,
        covariates=covs,
        cluster=cluster,
    ).data
    fit = {"outcome": outcome, "covariates": covs, "method": method, "estimand": estimand}
    fit |= {"cluster": cluster, "alpha": alpha}
    found, left_out = [], []
    for name, part in sample.groupby(cohort, sort=True):
        est, why = _cohort_effect(part, treatment=treatment, min_group_size=min_group_size, fit=fit)
        if est is None:
            left_out.append(f"cohort {name} left out: {why}")
        else:
            found.append((str(name), est))
    if not found:
        raise EstimationError(
            f"no cohort has at least {min_group_size} coached and {min_group_size} not-coached "
            f"learners with {outcome} that could be estimated: {'; '.join(left_out)}"
        )
    pooled = pool_effects(
        [e for _, e in found],
        method=pooling,
        alpha=alpha,
        labels=[n for n, _ in found],
        noun="cohort",
        scale=scale,
    )
    return _with_notes(pooled, left_out)


def _with_notes(pooled: PooledEffect, notes: Sequence[str]) -> PooledEffect:
    """The pooled effect with more notes."""
    return replace(pooled, notes=pooled.notes + tuple(notes))


# ----------------------------------------------------------------------------------------------
# Words


def _display_scale(outcome: str) -> tuple[float, str]:
    """Multiplier and unit of the numbers shown (percentage points for follow-through)."""
    if outcome == "follow_through":
        return 100.0, "percentage points"
    if outcome == "skills_gap":
        return 1.0, "points"
    return 1.0, OUTCOME_UNITS.get(outcome, "outcome units")


def _digits(outcome: str) -> int:
    return 1 if outcome == "follow_through" else 2


def _amount(value: float, outcome: str) -> str:
    """A size without sign in its units ("8.1 percentage points", "0.20 points")."""
    return format_effect(abs(value), outcome, signed=False)


def _change(value: float, outcome: str) -> str:
    """A signed change in words: "a rise of 2.0 percentage points", "a narrowing of 0.05 points"."""
    up, down = CHANGE_WORDS.get(outcome, ("an increase", "a decrease"))
    if value == 0:
        return "no change"
    return f"{up if value > 0 else down} of {_amount(value, outcome)}"


def _magnitudes(low: float, high: float, outcome: str, *, joiner: str = "to") -> str:
    """An interval on one side of zero as sizes without sign, smaller first: "0.15 to 0.24 points"."""
    a, b = sorted((abs(low), abs(high)))
    text = format_interval(a, b, outcome)
    return text.replace(" to ", f" {joiner} ", 1)


def _scale_words(p: PooledEffect) -> str:
    if p.outcome == "skills_gap" and p.scale is not None:
        return f" on the {p.scale[0]:g}-{p.scale[1]:g} skill scale"
    return ""


def _effect_sentence(p: PooledEffect, where: str) -> str:
    """The pooled effect: its direction and size, the interval read the same way."""
    treat = TREATMENT_WORDS.get(p.treatment, f"'{p.treatment}'")
    ci = f"{p.confidence}% interval"
    if p.ci_low > 0 or p.ci_high < 0:
        up, down = VERBS.get(p.outcome, (f"increased {p.outcome}", f"decreased {p.outcome}"))
        verb = up if p.estimate > 0 else down
        return (
            f"{where} {treat} {verb} by about {_amount(p.estimate, p.outcome)}{_scale_words(p)} "
            f"({ci} {_magnitudes(p.ci_low, p.ci_high, p.outcome)})"
        )
    what = OUTCOME_WORDS.get(p.outcome, p.outcome.replace("_", " "))
    return (
        f"{where} we cannot tell whether {treat} changed {what}: the pooled estimate is "
        f"{_change(p.estimate, p.outcome)}{_scale_words(p)}, and the {ci} runs from "
        f"{_change(p.ci_low, p.outcome)} to {_change(p.ci_high, p.outcome)}, so it includes no effect"
    )


def _spread_words(p: PooledEffect) -> str:
    """How much the studies differ (I² bands of Higgins et al. 2003: 25%, 50%)."""
    plural = f"{p.noun}s"
    if p.tau2 == 0:
        return f"the {plural} agree (no sign that the effect differs between them)"
    if p.i2 < 0.25:
        return f"the {plural} differ little"
    if p.i2 < 0.5:
        return f"the {plural} differ somewhat"
    return f"the {plural} differ a good deal"


def _prediction_words(p: PooledEffect) -> str:
    """Where the effect in a new study is expected, read in the direction of the effect."""
    lo, hi = p.pi_low, p.pi_high
    if lo > 0 or hi < 0:
        up, down = CHANGE_WORDS.get(p.outcome, ("an increase", "a decrease"))
        word = up if lo > 0 else down
        return f"in a new {p.noun} expect {word} of between {_magnitudes(lo, hi, p.outcome, joiner='and')}"
    return (
        f"in a new {p.noun} expect anything from {_change(lo, p.outcome)} "
        f"to {_change(hi, p.outcome)}"
    )


def _reading(p: PooledEffect) -> str:
    """The whole reading: effect; then spread and prediction, or why they are missing."""
    plural = f"{p.noun}s"
    if p.k == 1:
        return _effect_sentence(p, f"Only 1 {p.noun}, so nothing was pooled: in it") + "."
    first = _effect_sentence(p, f"Across {p.k} {plural}")
    if p.k == 2:
        return (
            f"{first}. With only 2 {plural}, how much the effect differs between {plural} "
            f"cannot be judged, and no range can be given for a new {p.noun} (that needs at "
            "least 3)."
        )
    return f"{first}; {_spread_words(p)}: {_prediction_words(p)}."


def _p(value: float) -> str:
    """'p = 0.412' or 'p < 0.001'."""
    text = format_p(value)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def _summary(p: PooledEffect) -> str:
    """The text summary of a pooled effect."""
    ci = "Hartung-Knapp t" if p.hartung_knapp else "normal"
    lines = [
        f"Random-effects meta-analysis of {p.treatment} on {p.outcome} across {p.k} "
        f"{p.noun if p.k == 1 else p.noun + 's'} "
        f"({METHOD_LABELS[p.method]} tau², {ci} interval)",
        f"  pooled {p.estimate:.4g}  std. error {p.std_error:.3g}  {p.confidence}% CI "
        f"[{p.ci_low:.4g}, {p.ci_high:.4g}]  {_p(p.p_value)}",
    ]
    if p.k > 1:
        lines.append(
            f"  heterogeneity: tau² {p.tau2:.4g} (tau {p.tau:.3g}), I² {100 * p.i2:.1f}%, "
            f"H² {p.h2:.3g}, Q {p.q:.4g} on {p.q_df} df, {_p(p.q_p_value)}"
        )
    if p.k > 2:
        lines.append(
            f"  {p.confidence}% prediction interval [{p.pi_low:.4g}, {p.pi_high:.4g}] "
            f"(t with {p.k - 2} df)"
        )
    lines.append(
        p.studies[["label", "estimate", "ci_low", "ci_high", "weight"]].to_string(
            index=False, float_format="{:.4g}".format
        )
    )
    lines.append(f"  {p.reading()}")
    lines += [f"  note: {n}" for n in p.notes]
    return "\n".join(lines)
