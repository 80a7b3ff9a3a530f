"""Average effects of a binary treatment (coaching) on a learner outcome.

Every estimator is written as an M-estimator: the nuisance models (a statsmodels ``Logit``
propensity model and ``OLS`` outcome models by group) are fitted with statsmodels, and the
standard error comes from the stacked influence function of the effect, which includes the terms
for the estimated nuisance parameters. Summing influence values within clusters gives
cluster-robust standard errors (coaching and managers act on whole teams).

Why not ``statsmodels.treatment.TreatmentEffect`` directly: it offers no clustering, no AIPW for
the treated (ATT), refits its GMM with Nelder-Mead (impractical at 10^5-10^6 learners) and clips
propensity scores in its inference but not in its IPW point estimate. Our unclustered standard
errors are tested to agree with it where both apply (see tests/test_effects.py).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.discrete.discrete_model import Logit
from statsmodels.regression.linear_model import OLS
from statsmodels.tools.sm_exceptions import (
    ConvergenceWarning,
    PerfectSeparationWarning,
    SingularMatrixWarning,
)

from lcstats.core.errors import EstimationError
from lcstats.core.options import ESTIMANDS, METHODS, OUTCOME_UNITS, check_choice

MIN_PER_GROUP = 5
MAX_LEVELS = 60
OVERLAP_WARN = 0.02


@dataclass(frozen=True)
class EffectEstimate:
    """An average effect of a treatment on an outcome, with its uncertainty.

    ``estimate`` is the difference treated minus untreated in the outcome's units; for
    ``skills_gap`` a negative value means coaching closed the gap.
    """

    outcome: str
    treatment: str
    estimand: str
    method: str
    estimate: float
    std_error: float
    ci_low: float
    ci_high: float
    p_value: float
    n_treated: int
    n_control: int
    alpha: float = 0.05
    units: str = ""
    covariates: tuple[str, ...] = ()
    cluster: str | None = None
    n_clusters: int | None = None
    n_trimmed: int = 0
    notes: tuple[str, ...] = field(default_factory=tuple)

    COLUMNS = (
        "outcome",
        "treatment",
        "estimand",
        "method",
        "estimate",
        "std_error",
        "ci_low",
        "ci_high",
        "p_value",
        "n_treated",
        "n_control",
        "units",
    )

    def as_dict(self) -> dict:
        """Return the record written to results.json (the design's field list)."""
        d = asdict(self)
        return {k: d[k] for k in self.COLUMNS} | {
            "alpha": self.alpha,
            "cluster": self.cluster,
            "n_clusters": self.n_clusters,
            "covariates": list(self.covariates),
            "n_trimmed": self.n_trimmed,
        }

    def to_frame(self) -> pd.DataFrame:
        """Return a one-row tidy frame with snake_case columns."""
        return pd.DataFrame([self.as_dict()])

    @property
    def confidence(self) -> int:
        """The confidence level in percent (95 for alpha = 0.05)."""
        return round(100 * (1 - self.alpha))

    def reading(self) -> str:
        """One plain-language sentence that is right for negative, null and positive effects."""
        return plain_reading(self)

    def summary(self) -> str:
        """Return a short text summary (not printed)."""
        clus = f", clustered by {self.cluster} ({self.n_clusters} clusters)" if self.cluster else ""
        lines = [
            f"{self.estimand} of {self.treatment} on {self.outcome} ({self.method}{clus})",
            f"  estimate {self.estimate:.4g}  std. error {self.std_error:.3g}  "
            f"{self.confidence}% CI [{self.ci_low:.4g}, {self.ci_high:.4g}]  p = {format_p(self.p_value)}",
            f"  learners: {self.n_treated} treated, {self.n_control} comparison; units: {self.units}",
            f"  {self.reading()}",
        ]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        from html import escape

        frame = self.to_frame()[list(self.COLUMNS)]
        return f"<p>{escape(self.reading())}</p>" + frame.to_html(
            index=False, float_format="{:.4g}".format
        )


def format_p(p: float) -> str:
    """Format a p-value for readers (``< 0.001`` below one in a thousand)."""
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def format_effect(value: float, outcome: str, *, signed: bool = True) -> str:
    """Format an effect in its outcome's units (percentage points for follow-through)."""
    sign = "+" if signed else ""
    if outcome == "follow_through":
        return f"{100 * value:{sign}.1f} percentage points"
    if outcome == "skills_gap":
        return f"{value:{sign}.2f} points"
    return f"{value:{sign},.4g}"


VERBS = {  # outcome -> (verb when the estimate is positive, verb when negative)
    "follow_through": ("raised follow-through", "lowered follow-through"),
    "skills_gap": ("widened the skills gap", "narrowed the skills gap"),
}


def format_interval(low: float, high: float, outcome: str) -> str:
    """An interval with its unit written once: '7.2 to 13.9 percentage points'."""
    lo = format_effect(low, outcome, signed=False)
    hi = format_effect(high, outcome, signed=False)
    number, _, unit = lo.partition(" ")
    return f"{number} to {hi}" if unit and hi.endswith(unit) else f"{lo} to {hi}"


def plain_reading(est: EffectEstimate) -> str:
    """Describe an estimate in one sentence for non-specialists."""
    treat = {"coached": "Coaching", "manager_coached": "Coaching the line manager"}.get(
        est.treatment, f"'{est.treatment}'"
    )
    up, down = VERBS.get(est.outcome, (f"increased {est.outcome}", f"decreased {est.outcome}"))
    ci = f"{est.confidence}% interval {format_interval(est.ci_low, est.ci_high, est.outcome)}"
    who = " for the learners who were coached" if est.estimand == "ATT" else ""
    if est.ci_low > 0 or est.ci_high < 0:
        verb = up if est.estimate > 0 else down
        size = format_effect(abs(est.estimate), est.outcome, signed=False)
        return f"{treat} {verb} by about {size}{who} ({ci}); an effect of zero is not plausible given these data."
    return (
        f"We cannot tell whether {treat.lower()} changed {est.outcome.replace('_', ' ')}{who}: the estimate is "
        f"{format_effect(est.estimate, est.outcome)}, but the {ci} includes no effect."
    )


def _levels_without_comparison(
    data: pd.DataFrame, t: np.ndarray, covariates: Sequence[str], estimand: str
) -> list[str]:
    """Levels of categorical (or 0/1) covariates whose learners are all treated or all untreated.

    Such learners have no one to be compared with: the propensity model separates them. For an
    ATT only all-treated levels matter (untreated learners without a match just get no weight).
    """
    found = []
    for cov in covariates:
        col = data[cov]
        if pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
            values = col.to_numpy(dtype=float)
            if not np.isin(values, (0.0, 1.0)).all():
                continue  # a continuous covariate: separation shows in the propensity model
        codes, levels = pd.factorize(col, sort=True)
        size = np.bincount(codes, minlength=len(levels))
        treated = np.bincount(codes, weights=t, minlength=len(levels))
        for level, n, n_t in zip(levels, size, treated, strict=True):
            if n_t == n or (n_t == 0 and estimand != "ATT"):
                who = "all coached" if n_t == n else "none coached"
                shown = int(level) if isinstance(level, float) and level.is_integer() else level
                found.append(f"{cov} = '{shown}' ({int(n)} learners, {who})")
    return found


def _design(data: pd.DataFrame, covariates: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Intercept plus covariates; text columns become indicator columns (first level dropped)."""
    columns = [np.ones(len(data))]
    names = ["const"]
    for cov in covariates:
        col = data[cov]
        if pd.api.types.is_bool_dtype(col) or pd.api.types.is_numeric_dtype(col):
            values = col.to_numpy(dtype=float)
            if not np.isfinite(values).all():
                raise ValueError(
                    f"covariate '{cov}' has infinite values; it must be finite numbers"
                )
            if values.min() == values.max():
                raise EstimationError(
                    f"covariate '{cov}' has the same value for every learner, so it cannot adjust "
                    "for anything; remove it from the covariates"
                )
            columns.append(values)
            names.append(cov)
        else:
            codes, levels = pd.factorize(col.astype(str), sort=True)
            if len(levels) > MAX_LEVELS:
                raise EstimationError(
                    f"covariate '{cov}' has {len(levels)} different text values; a category with "
                    f"more than {MAX_LEVELS} levels looks like an identifier or a number stored as text"
                )
            if len(levels) < 2:
                raise EstimationError(
                    f"covariate '{cov}' has a single value ('{levels[0]}') for every learner; "
                    "remove it from the covariates"
                )
            for k, level in enumerate(levels[1:], start=1):
                columns.append((codes == k).astype(float))
                names.append(f"{cov}[{level}]")
    return np.column_stack(columns), names


@dataclass(frozen=True)
class _Propensity:
    """The fitted propensity model: scores and the inverse Hessian of its log-likelihood."""

    score: np.ndarray
    hessian_inv: np.ndarray  # inverse of sum_i e_i (1 - e_i) x_i x_i'


def fit_propensity(
    treated: np.ndarray,
    x: np.ndarray,
    names: Sequence[str],
    estimand: str = "ATE",
    *,
    allow_extreme: bool = False,
) -> _Propensity:
    """Fit the logistic propensity model with statsmodels; refuse when there is no overlap.

    For the ATE both tails matter (a score near 0 or 1 leaves one potential outcome without
    comparable learners). For the ATT only scores near 1 do: comparison learners unlike any
    coached learner (scores near 0) get weight near 0 and are harmless, as in Dehejia and
    Wahba's NSW-CPS comparison (control scores down to 1e-9).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", PerfectSeparationWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        try:
            res = Logit(treated, x, check_rank=False).fit(disp=0, method="newton", maxiter=100)
        except PerfectSeparationWarning:
            if not allow_extreme:
                raise EstimationError(
                    "the covariates predict coaching perfectly (no overlap between coached and "
                    "uncoached learners). Remove the covariate that decides who was coached"
                ) from None
            warnings.simplefilter("ignore", PerfectSeparationWarning)
            res = Logit(treated, x, check_rank=False).fit(disp=0, method="newton", maxiter=100)
        except np.linalg.LinAlgError as exc:
            raise EstimationError(
                "the covariates predict coaching perfectly (no overlap between coached and "
                f"uncoached learners): {exc}. Remove the covariate that decides who was coached"
            ) from None
    score = np.asarray(res.predict(), dtype=float)
    low = score.min() < 1e-6 and estimand == "ATE"
    if (low or score.max() > 1 - 1e-6) and not allow_extreme:
        worst = [n for n, b in zip(names, np.abs(res.params), strict=True) if b > 15]
        raise EstimationError(
            "the covariates almost perfectly predict coaching (propensity scores of 0 or 1), "
            "so coached and uncoached learners cannot be compared"
            + (f"; look at {', '.join(worst)}" if worst else "")
        )
    weight = score * (1 - score)
    hess = (x * weight[:, None]).T @ x
    return _Propensity(score, np.linalg.pinv(hess))


@dataclass(frozen=True)
class _Outcome:
    """A linear outcome model fitted in one group, with what its influence term needs."""

    fitted: np.ndarray  # predictions for every learner
    resid: np.ndarray  # residuals (0 outside the group)
    xtx_inv: np.ndarray
    mask: np.ndarray


def fit_outcome(
    y: np.ndarray, x: np.ndarray, mask: np.ndarray, names: Sequence[str], *, rank: int, group: str
) -> _Outcome:
    """Fit the linear outcome model in one group with statsmodels OLS.

    The model's predictions for the other group are determined only when the covariates vary
    within the group as much as in the whole sample (same rank): a covariate or category that is
    constant within one group separates the groups and leaves the prediction arbitrary. Collinear
    covariates in the whole sample are harmless (the predictions are unique) and pass silently.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SingularMatrixWarning)
        res = OLS(y[mask], x[mask]).fit()
    if res.model.rank < rank:
        sub = x[mask]
        constant = [n for j, n in enumerate(names) if n != "const" and np.ptp(sub[:, j]) == 0]
        raise EstimationError(
            f"the covariates do not vary among the {group} learners as they do overall"
            + (f" ({', '.join(constant)} is the same for all of them)" if constant else "")
            + ", so coached and uncoached learners cannot be compared on them; remove or merge "
            "the covariate (or category) that decides who was coached"
        )
    fitted = x @ res.params
    resid = np.where(mask, y - fitted, 0.0)
    return _Outcome(fitted, resid, res.normalized_cov_params, mask)


@dataclass(frozen=True, eq=False)
class _Sample:
    """The arrays one estimate is computed from: outcome, 0/1 treatment, design matrix (with its
    column names) and each learner's cluster (None without clustering)."""

    y: np.ndarray
    t: np.ndarray
    x: np.ndarray
    names: list[str]
    groups: np.ndarray | None

    @property
    def counts(self) -> tuple[int, int]:
        """Numbers of treated and comparison learners."""
        return int(self.t.sum()), int(len(self.t) - self.t.sum())

    @cached_property
    def rank(self) -> int:
        """Rank of the design matrix, from the k x k cross-product of the column-scaled design.

        An SVD of n x k costs seconds at a million learners; this costs microseconds.
        """
        scale = np.sqrt((self.x**2).sum(axis=0))
        xs = self.x / np.where(scale > 0, scale, 1.0)
        return int(np.linalg.matrix_rank(xs.T @ xs, hermitian=True, tol=1e-10))

    def outcome_model(self, group: int) -> _Outcome:
        """The linear outcome model of the treated (``group=1``) or the comparison group (0)."""
        label = "coached" if group == 1 else "comparison"
        return fit_outcome(self.y, self.x, self.t == group, self.names, rank=self.rank, group=label)


# ----------------------------------------------------------------------------------------------
# Estimators. Each returns the estimate and its influence values (mean zero), which include the
# terms for the estimated nuisance parameters (the propensity and outcome models).


def _overlap_notes(e: np.ndarray, estimand: str) -> list[str]:
    """A note when 1% of learners or more have extreme propensity scores for the estimand."""
    if estimand == "ATO":  # overlap weights are bounded: extreme scores get little weight
        return []
    high = e > 1 - OVERLAP_WARN
    if estimand == "ATE":
        share = float(np.mean((e < OVERLAP_WARN) | high))
        where = f"below {OVERLAP_WARN} or above {1 - OVERLAP_WARN:.2f}"
    else:  # low scores get weight ~0 in an ATT
        share = float(np.mean(high))
        where = f"above {1 - OVERLAP_WARN:.2f}"
    if share < 0.01:
        return []
    return [
        f"{100 * share:.1f}% of learners have a propensity score {where}: overlap is "
        "limited and weights are large"
    ]


def _weight_notes(
    t: np.ndarray, e: np.ndarray, estimand: str, *, max_share: float = 0.05
) -> list[str]:
    """Warn when a few learners carry much of a group's weight (the estimate then rests on them)."""
    groups = [("comparison", (1 - t) * (e / (1 - e) if estimand == "ATT" else 1 / (1 - e)))]
    if estimand == "ATE":
        groups.insert(0, ("coached", t / e))
    notes = []
    for label, w in groups:
        total = w.sum()
        top = float(w.max() / total) if total > 0 else 0.0
        ess = float(total**2 / (w**2).sum()) if total > 0 else 0.0
        if top > max_share:
            notes.append(
                f"one {label} learner carries {100 * top:.0f}% of the {label} group's weight "
                f"(effective sample size {ess:.0f}): the estimate rests on very few learners; "
                "consider trim: [0.05, 0.95]"
            )
    return notes


def _correction(
    x: np.ndarray, matrix: np.ndarray, grad: np.ndarray, factor: np.ndarray
) -> np.ndarray:
    """Influence of estimated nuisance parameters: n * x_i' M g * factor_i."""
    n = x.shape[0]
    return n * (x @ (matrix @ grad)) * factor


def _difference(s: _Sample) -> tuple[float, np.ndarray]:
    """Difference in means (the same for every estimand)."""
    y, t = s.y, s.t
    p_bar = t.mean()
    mu1, mu0 = y[t == 1].mean(), y[t == 0].mean()
    psi = t * (y - mu1) / p_bar - (1 - t) * (y - mu0) / (1 - p_bar)
    return mu1 - mu0, psi


def _regression(s: _Sample, prop: _Propensity, estimand: str) -> tuple[float, np.ndarray]:
    """Regression adjustment with an outcome model per group (``prop`` only checked overlap)."""
    y, t, x = s.y, s.t, s.x
    m0 = s.outcome_model(0)
    if estimand == "ATE":
        m1 = s.outcome_model(1)
        tau = float(np.mean(m1.fitted - m0.fitted))
        xbar = x.mean(axis=0)
        psi = (
            m1.fitted
            - m0.fitted
            - tau
            + _correction(x, m1.xtx_inv, xbar, m1.resid)
            - _correction(x, m0.xtx_inv, xbar, m0.resid)
        )
        return tau, psi
    tau = float(np.sum(t * (y - m0.fitted)) / t.sum())
    xbar_t = x[t == 1].mean(axis=0)
    psi = t * (y - m0.fitted - tau) / t.mean() - _correction(x, m0.xtx_inv, xbar_t, m0.resid)
    return tau, psi


# The weighted means of each group, their influence (propensity model fixed) and its gradient
# with respect to the propensity model's coefficients.
_WeightedMeans = tuple[float, float, np.ndarray, np.ndarray]


def _normalised_means(
    y: np.ndarray, w1: np.ndarray, w0: np.ndarray
) -> tuple[float, float, np.ndarray]:
    """Each group's mean with its weights normalised to sum to one, and their influence."""
    mu1 = np.sum(w1 * y) / w1.sum()
    mu0 = np.sum(w0 * y) / w0.sum()
    return mu1, mu0, w1 * (y - mu1) / w1.mean() - w0 * (y - mu0) / w0.mean()


def _ipw_ate(y: np.ndarray, t: np.ndarray, x: np.ndarray, e: np.ndarray) -> _WeightedMeans:
    """Weights 1/e for the treated and 1/(1 - e) for the comparison group (the ATE)."""
    c = 1 - t
    w1, w0 = t / e, c / (1 - e)
    mu1, mu0, phi = _normalised_means(y, w1, w0)
    grad = (
        -(x * (t * (y - mu1) * (1 - e) / e)[:, None]).mean(axis=0) / w1.mean()
        - (x * (c * (y - mu0) * (e / (1 - e)))[:, None]).mean(axis=0) / w0.mean()
    )
    return mu1, mu0, phi, grad


def _ipw_ato(y: np.ndarray, t: np.ndarray, x: np.ndarray, e: np.ndarray) -> _WeightedMeans:
    """Overlap weights (Li, Morgan & Zaslavsky 2018): 1 - e for the treated, e for the others."""
    c = 1 - t
    w1, w0 = t * (1 - e), c * e
    mu1, mu0, phi = _normalised_means(y, w1, w0)
    de = e * (1 - e)  # d e / d(linear predictor)
    grad = (
        -(x * (t * (y - mu1) * de)[:, None]).mean(axis=0) / w1.mean()
        - (x * (c * (y - mu0) * de)[:, None]).mean(axis=0) / w0.mean()
    )
    return mu1, mu0, phi, grad


def _ipw_att(y: np.ndarray, t: np.ndarray, x: np.ndarray, e: np.ndarray) -> _WeightedMeans:
    """The treated unweighted, the comparison group weighted e/(1 - e) (the ATT)."""
    w0 = (1 - t) * (e / (1 - e))
    mu1 = y[t == 1].mean()
    mu0 = np.sum(w0 * y) / w0.sum()
    phi = t * (y - mu1) / t.mean() - w0 * (y - mu0) / w0.mean()
    grad = -(x * (w0 * (y - mu0))[:, None]).mean(axis=0) / w0.mean()
    return mu1, mu0, phi, grad


def _ipw(s: _Sample, prop: _Propensity, estimand: str) -> tuple[float, np.ndarray]:
    """Inverse probability weighting, the weights normalised within each group."""
    weighting = {"ATE": _ipw_ate, "ATO": _ipw_ato, "ATT": _ipw_att}[estimand]
    mu1, mu0, phi, grad = weighting(s.y, s.t, s.x, prop.score)
    psi = phi + _correction(s.x, prop.hessian_inv, grad, s.t - prop.score)
    return float(mu1 - mu0), psi


def _aipw_ate(s: _Sample, prop: _Propensity) -> tuple[float, np.ndarray]:
    """AIPW for the ATE: both outcome models, plus their inverse-probability-weighted residuals."""
    y, t, x, e = s.y, s.t, s.x, prop.score
    c = 1 - t
    m0 = s.outcome_model(0)
    m1 = s.outcome_model(1)
    r1, r0 = y - m1.fitted, y - m0.fitted
    a = m1.fitted - m0.fitted + t * r1 / e - c * r0 / (1 - e)
    tau = float(a.mean())
    g1 = (x * (1 - t / e)[:, None]).mean(axis=0)
    g0 = -(x * (1 - c / (1 - e))[:, None]).mean(axis=0)
    gp = -(x * (t * r1 * (1 - e) / e + c * r0 * (e / (1 - e)))[:, None]).mean(axis=0)
    psi = (
        a
        - tau
        + _correction(x, m1.xtx_inv, g1, m1.resid)
        + _correction(x, m0.xtx_inv, g0, m0.resid)
        + _correction(x, prop.hessian_inv, gp, t - e)
    )
    return tau, psi


def _aipw_att(s: _Sample, prop: _Propensity) -> tuple[float, np.ndarray]:
    """AIPW for the ATT: the comparison outcome model, plus its odds-weighted residuals."""
    y, t, x, e = s.y, s.t, s.x, prop.score
    c = 1 - t
    odds = e / (1 - e)
    p_bar = t.mean()
    m0 = s.outcome_model(0)
    r0 = y - m0.fitted
    b = t * r0 - c * odds * r0
    tau = float(b.sum() / t.sum())
    g0 = (x * (-t + c * odds)[:, None]).mean(axis=0) / p_bar
    gp = -(x * (c * odds * r0)[:, None]).mean(axis=0) / p_bar
    psi = (
        (b - t * tau) / p_bar
        + _correction(x, m0.xtx_inv, g0, m0.resid)
        + _correction(x, prop.hessian_inv, gp, t - e)
    )
    return tau, psi


def _aipw(s: _Sample, prop: _Propensity, estimand: str) -> tuple[float, np.ndarray]:
    """Augmented inverse probability weighting (doubly robust)."""
    return _aipw_ate(s, prop) if estimand == "ATE" else _aipw_att(s, prop)


ADJUSTED_ESTIMATORS = {"regression": _regression, "ipw": _ipw, "aipw": _aipw}


def _influence(method: str, estimand: str, s: _Sample) -> tuple[float, np.ndarray, list[str]]:
    """Return the estimate, its influence values (mean zero) and notes."""
    if method == "difference":
        tau, psi = _difference(s)
        return tau, psi, []
    # Every adjusted method needs overlap: regression would otherwise extrapolate silently, so it
    # fits the propensity model too (only to check overlap and report limited overlap).
    prop = fit_propensity(s.t, s.x, s.names, estimand)
    notes = _overlap_notes(prop.score, estimand)
    if method in ("ipw", "aipw") and estimand != "ATO":
        notes.extend(_weight_notes(s.t, prop.score, estimand))
    tau, psi = ADJUSTED_ESTIMATORS[method](s, prop, estimand)
    return tau, psi, notes


def _variance(psi: np.ndarray, groups: np.ndarray | None) -> tuple[float, int | None]:
    """Sandwich variance of a mean of influence values, cluster-robust when groups are given."""
    n = psi.shape[0]
    if groups is None:
        return float(np.sum(psi**2) / n**2 * n / (n - 1)), None
    codes, _ = pd.factorize(groups, sort=True)
    sums = np.bincount(codes, weights=psi)
    g = sums.shape[0]
    if g < 2:
        return math.nan, g
    return float(np.sum(sums**2) / n**2 * g / (g - 1)), g


def _check_options(
    method: str, estimand: str, alpha: float, trim: tuple[float, float] | None
) -> None:
    """Refuse unknown options and impossible combinations of them."""
    check_choice("method", method, METHODS)
    check_choice("estimand", estimand, ESTIMANDS)
    if estimand == "ATO" and method not in ("ipw", "difference"):
        raise ValueError("estimand='ATO' (overlap weights) is available with method='ipw' only")
    if trim is not None and not (0 <= trim[0] < trim[1] <= 1):
        raise ValueError(f"trim={trim!r} must be (low, high) with 0 <= low < high <= 1")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha={alpha!r} must be between 0 and 1")


def _outcome_and_treatment(
    data: pd.DataFrame,
    *,
    outcome: str,
    treatment: str,
    covariates: tuple[str, ...],
    cluster: str | None,
) -> tuple[np.ndarray, np.ndarray]:
    """The outcome and the 0/1 treatment as arrays, once the columns used pass their checks."""
    used = [outcome, treatment, *covariates] + ([cluster] if cluster else [])
    missing_cols = [c for c in used if c not in data.columns]
    if missing_cols:
        raise ValueError(
            f"column(s) {', '.join(missing_cols)} not in data; have {', '.join(map(str, data.columns))}"
        )
    if treatment in covariates or outcome in covariates:
        raise ValueError("the outcome and the treatment cannot also be covariates")
    nan_cols = [c for c in used if data[c].isna().any()]
    if nan_cols:
        raise ValueError(
            f"missing values in {', '.join(nan_cols)}; use lcstats.analysis_sample to exclude "
            "and count those learners first"
        )
    t_raw = pd.to_numeric(data[treatment], errors="coerce")
    if not t_raw.isin([0, 1]).all():
        raise ValueError(f"treatment column '{treatment}' must be coded 0/1")
    y = pd.to_numeric(data[outcome], errors="coerce").to_numpy(dtype=float)
    if not np.isfinite(y).all():
        raise ValueError(f"outcome column '{outcome}' must be numeric")
    return y, t_raw.to_numpy(dtype=float)


def _check_comparison_group(t: np.ndarray, *, outcome: str, treatment: str) -> None:
    """Refuse a treatment that every learner, or no learner, received."""
    n_t = int(t.sum())
    if n_t in (0, len(t)):
        who = "every learner was" if n_t == len(t) else "no learner was"
        raise EstimationError(
            f"{who} treated ('{treatment}'), so there is no comparison group for {outcome}. "
            f"The evaluation needs coached and uncoached learners: check the '{treatment}' "
            "column of the learners table, or export the whole population"
        )


def _check_group_sizes(s: _Sample, *, method: str, outcome: str) -> int:
    """Refuse groups too small for the method; return the size each group needs."""
    need = (
        MIN_PER_GROUP if method in ("difference", "ipw") else max(MIN_PER_GROUP, s.x.shape[1] + 1)
    )
    n_t, n_c = s.counts
    if min(n_t, n_c) < need:
        raise EstimationError(
            f"too few learners for {'an' if method[0] in 'ai' else 'a'} {method} estimate of "
            f"{outcome}: {n_t} treated and {n_c} "
            f"comparison (need at least {need} in each group"
            + (", or fewer covariates)" if method in ("regression", "aipw") else ")")
        )
    return need


def _trim(
    s: _Sample, trim: tuple[float, float], *, estimand: str, need: int, outcome: str
) -> tuple[_Sample, int]:
    """Leave out learners whose propensity score is outside ``trim``; the rest and their number."""
    score = fit_propensity(
        s.t, s.x, s.names, "ATE" if estimand == "ATO" else estimand, allow_extreme=True
    ).score
    keep = (score >= trim[0]) & (score <= trim[1])
    n_trimmed = int((~keep).sum())
    x = s.x[keep]
    varies = np.r_[True, x[:, 1:].std(axis=0) > 0]  # a level may vanish with the trimmed
    kept = _Sample(
        y=s.y[keep],
        t=s.t[keep],
        x=x[:, varies],
        names=[n for n, v in zip(s.names, varies, strict=True) if v],
        groups=s.groups[keep] if s.groups is not None else None,
    )
    n_t, n_c = kept.counts
    if min(n_t, n_c) < need:
        raise EstimationError(
            f"after trimming {n_trimmed} learners outside {trim}, too few remain for {outcome}: "
            f"{n_t} treated and {n_c} comparison"
        )
    return kept, n_trimmed


def _inference(
    tau: float, psi: np.ndarray, groups: np.ndarray | None, *, alpha: float, cluster: str | None
) -> dict:
    """Standard error, interval and p-value: the fields of `EffectEstimate` they fill.

    Clustered, the interval and p-value use a t distribution with (clusters - 1) degrees of
    freedom, otherwise the normal distribution.
    """
    var, n_clusters = _variance(psi, groups)
    if n_clusters is not None and n_clusters < 2:
        raise EstimationError(
            f"cluster '{cluster}' has a single value: cannot cluster standard errors"
        )
    se = math.sqrt(var)
    # Unfrozen distributions: freezing one costs about a millisecond per call (bootstraps).
    dist, df = (stats.t, (n_clusters - 1,)) if n_clusters else (stats.norm, ())
    crit = float(dist.ppf(1 - alpha / 2, *df))
    stat = tau / se if se > 0 else (math.inf if tau != 0 else 0.0)
    return {
        "std_error": se,
        "ci_low": float(tau - crit * se),
        "ci_high": float(tau + crit * se),
        "p_value": float(2 * dist.sf(abs(stat), *df)),
        "n_clusters": n_clusters,
    }


def estimate_effect(
    data: pd.DataFrame,
    *,
    outcome: str,
    treatment: str,
    covariates: Sequence[str] = (),
    method: str = "aipw",
    estimand: str = "ATE",
    cluster: str | None = None,
    alpha: float = 0.05,
    trim: tuple[float, float] | None = None,
) -> EffectEstimate:
    """Estimate the average effect of a 0/1 treatment on an outcome.

    Parameters
    ----------
    data : DataFrame
        One row per learner, with no missing values in the columns used (see
        `lcstats.analysis_sample`, which excludes and counts such rows).
    outcome, treatment : str
        Column names; the treatment must be coded 0/1.
    covariates : sequence of str
        Confounders to adjust for; text columns are expanded into indicators.
    method : {"difference", "regression", "ipw", "aipw"}
        Unadjusted difference in means, regression adjustment, inverse probability weighting
        (normalised weights) or augmented IPW (doubly robust). Every adjusted method (regression
        too) fits the propensity model and refuses data without overlap.
    estimand : {"ATE", "ATT", "ATO"}
        Average effect over all learners, over the treated learners, or (``method="ipw"``) over
        the overlap population weighted by e(1 - e).
    cluster : str, optional
        Column identifying clusters (team, manager) for cluster-robust standard errors; the
        interval then uses a t distribution with (clusters - 1) degrees of freedom.
    alpha : float
        1 - confidence level of the interval.
    trim : (low, high), optional
        Leave out learners whose estimated chance of treatment is outside ``[low, high]``
        (fixed-bounds trimming, e.g. ``(0.05, 0.95)``), then estimate on the rest; the number
        left out is ``n_trimmed`` and the effect is then for the remaining population.
        ``estimand="ATO"`` (overlap weights, ``method="ipw"`` only) is the smooth alternative.

    Returns
    -------
    EffectEstimate

    Raises
    ------
    ValueError
        Unknown option, missing column, missing or infinite values, treatment not coded 0/1.
    EstimationError
        The data cannot answer the question: no comparison group, too few learners per group, a
        constant covariate, covariates that predict treatment (no overlap), a single cluster.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(3)
    >>> x = rng.normal(size=400)
    >>> t = (rng.random(400) < 1 / (1 + np.exp(-x))).astype(int)
    >>> df = pd.DataFrame({"y": 2 * t + x + rng.normal(size=400), "t": t, "x": x})
    >>> est = estimate_effect(df, outcome="y", treatment="t", covariates=["x"])
    >>> bool(est.ci_low < 2 < est.ci_high)
    True
    """
    _check_options(method, estimand, alpha, trim)
    covariates = tuple(covariates)
    y, t = _outcome_and_treatment(
        data, outcome=outcome, treatment=treatment, covariates=covariates, cluster=cluster
    )
    _check_comparison_group(t, outcome=outcome, treatment=treatment)
    x, names = (
        _design(data, covariates) if method != "difference" else (np.ones((len(t), 1)), ["const"])
    )
    s = _Sample(y, t, x, names, data[cluster].to_numpy() if cluster else None)
    need = _check_group_sizes(s, method=method, outcome=outcome)
    if method != "difference" and trim is None:
        lonely = _levels_without_comparison(data, t, covariates, estimand)
        if lonely:
            raise EstimationError(
                f"no comparison group within {'; '.join(lonely[:5])}: these learners cannot be "
                f"compared with anyone for {outcome}. Merge the level with a similar one, leave "
                "these learners out, or use trim: [0.05, 0.95]"
            )
    n_trimmed = 0
    if trim is not None and method != "difference":
        s, n_trimmed = _trim(s, trim, estimand=estimand, need=need, outcome=outcome)
    tau, psi, notes = _influence(method, estimand, s)
    if n_trimmed:
        notes.insert(
            0,
            f"{n_trimmed} learners with an estimated chance of treatment outside "
            f"[{trim[0]:g}, {trim[1]:g}] were left out (trimming)",
        )
    inference = _inference(tau, psi, s.groups, alpha=alpha, cluster=cluster)
    n_clusters = inference["n_clusters"]
    if n_clusters is not None and n_clusters < 20:
        notes.append(f"only {n_clusters} clusters: cluster-robust intervals may be too narrow")
    n_t, n_c = s.counts
    return EffectEstimate(
        outcome=outcome,
        treatment=treatment,
        estimand=estimand,
        method=method,
        estimate=float(tau),
        **inference,
        n_treated=n_t,
        n_control=n_c,
        alpha=alpha,
        units=OUTCOME_UNITS.get(outcome, "outcome units"),
        covariates=covariates if method != "difference" else (),
        cluster=cluster,
        n_trimmed=n_trimmed,
        notes=tuple(notes),
    )
