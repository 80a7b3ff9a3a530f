"""Average effects of a binary treatment (coaching) on a learner outcome.

Every estimator is written as an M-estimator. The nuisance models are fitted once per sample: a
logistic propensity model, by the Newton-Raphson steps of statsmodels' ``Logit`` (one pass over
the rows per step; tests check the fit against statsmodels), and a linear outcome model per
group, solved from its k x k cross-product (no n x k decomposition). Each effect is the
difference of two arm means (the coached arm's and the comparison arm's, over all learners for
the ATE or over the coached for the ATT), and each arm mean comes with its influence values,
which include the terms for the estimated nuisance parameters. Summing influence values within
clusters gives cluster-robust standard errors (coaching and managers act on whole teams); the
same influence values give the risk ratio of a binary outcome by the delta method
(`lcstats.estimation.analysis.estimate_binary_effect`).

Weights. IPW and AIPW divide each group's weighted sums by the sum of its weights by default
(``weights="normalised"``, the Hajek form): an IPW arm is a weighted mean of the outcome and an
AIPW arm adds the weighted mean of the outcome model's residuals to the model's mean
prediction, so one learner with a huge weight can move an arm at most to that learner's own
outcome (IPW) or residual (AIPW). For the ATE the weights are normalised within each arm; the
ATT is Sant'Anna and Zhao's (2020) doubly robust estimator (as in the R package DRDID), the
comparison group's odds weights normalised to sum to one. ``weights="unnormalised"`` divides by
the number of learners instead (Horvitz-Thompson): for AIPW that is statsmodels'
``TreatmentEffect.aipw``. (statsmodels' ``TreatmentEffect.ipw`` is the normalised IPW.)

Why not ``statsmodels.treatment.TreatmentEffect`` directly: it offers no clustering, no AIPW for
the treated (ATT), refits its GMM with Nelder-Mead (impractical at 10^5-10^6 learners) and clips
propensity scores in its inference but not in its IPW point estimate. Our unclustered standard
errors are tested to agree with it where both apply (see tests/test_effects.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property

import numpy as np
import pandas as pd
from scipy import stats

from lcstats.core.display import summary_html
from lcstats.core.errors import EstimationError
from lcstats.core.options import ESTIMANDS, METHODS, OUTCOME_UNITS, WEIGHTS, check_choice

MIN_PER_GROUP = 5
MAX_LEVELS = 60
OVERLAP_WARN = 0.02
CHUNK_ROWS = 4096  # rows per block when accumulating a cross-product (no n x k temporary)
RANK_TOL = 1e-10  # eigenvalue cut-off for column-scaled cross-products (unit diagonal)
DOMINANCE = 10  # a weight note needs one learner to hold the weight of this many average ones
WEIGHTED_METHODS = ("ipw", "aipw")


@dataclass(frozen=True)
class EffectEstimate:
    """An average effect of a treatment on an outcome, with its uncertainty.

    ``estimate`` is the difference treated minus untreated in the outcome's units; for
    ``skills_gap`` a negative value means coaching closed the gap. ``weights`` says how IPW and
    AIPW scaled their weights (``"normalised"`` or ``"unnormalised"``; None for the methods
    without weights).
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
    weights: str | None = None

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
        how = ", unnormalised weights" if self.weights == "unnormalised" else ""
        lines = [
            f"{self.estimand} of {self.treatment} on {self.outcome} ({self.method}{how}{clus})",
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
        frame = self.to_frame()[list(self.COLUMNS)]
        return summary_html(self.reading(), self.notes, {"Estimate": frame})


def format_p(p: float) -> str:
    """Format a p-value for readers (``< 0.001`` below one in a thousand)."""
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def format_effect(value: float, outcome: str, *, signed: bool = True) -> str:
    """Format an effect in its outcome's units (percentage points for follow-through)."""
    sign = "+" if signed else ""
    if outcome in ("follow_through", "followed_through"):
        return f"{100 * value:{sign}.1f} percentage points"
    if outcome == "skills_gap":
        return f"{value:{sign}.2f} points"
    return f"{value:{sign},.4g}"


VERBS = {  # outcome -> (verb when the estimate is positive, verb when negative)
    "follow_through": ("raised follow-through", "lowered follow-through"),
    "skills_gap": ("widened the skills gap", "narrowed the skills gap"),
    "followed_through": (
        "raised the share of learners who followed through",
        "lowered the share of learners who followed through",
    ),
}


NOUNS = {  # outcome -> how a sentence names it
    "follow_through": "follow-through",
    "skills_gap": "the skills gap",
    "skills_gap_pre": "the skills gap before the programme",
    "followed_through": "the share of learners who followed through",
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
    noun = NOUNS.get(est.outcome, est.outcome.replace("_", " "))
    up, down = VERBS.get(est.outcome, (f"increased {noun}", f"decreased {noun}"))
    who = " for the learners who were coached" if est.estimand == "ATT" else ""
    if est.ci_low > 0 or est.ci_high < 0:
        verb = up if est.estimate > 0 else down
        size = format_effect(abs(est.estimate), est.outcome, signed=False)
        # the interval of the size just quoted: "narrowed by 0.16 (0.12 to 0.21)", not "-0.21 to -0.12"
        low, high = sorted((abs(est.ci_low), abs(est.ci_high)))
        ci = f"{est.confidence}% interval {format_interval(low, high, est.outcome)}"
        return f"{treat} {verb} by about {size}{who} ({ci}); an effect of zero is not plausible given these data."
    ci = f"{est.confidence}% interval {format_interval(est.ci_low, est.ci_high, est.outcome)}"
    return (
        f"We cannot tell whether {treat.lower()} changed {noun}{who}: the estimate is "
        f"{format_effect(est.estimate, est.outcome)}, but the {ci} includes no effect."
    )


# ----------------------------------------------------------------------------------------------
# The design matrix


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
            if not ((values == 0.0) | (values == 1.0)).all():
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


def _text_codes(col: pd.Series) -> tuple[np.ndarray, list[str]]:
    """Codes and levels of a text covariate, levels sorted as text (as ``col.astype(str)``).

    Categorical columns are coded from their categories and string columns factorised as they
    are: converting a million values to Python strings first costs seconds.
    """
    if isinstance(col.dtype, pd.CategoricalDtype):
        codes = col.cat.codes.to_numpy()
        names = np.asarray([str(c) for c in col.cat.categories], dtype=object)
        present = np.flatnonzero(np.bincount(codes, minlength=len(names)) > 0)
        order = present[np.argsort(names[present], kind="stable")]
        recode = np.full(len(names), -1, dtype=np.int64)
        recode[order] = np.arange(len(order))
        return recode[codes], [str(v) for v in names[order]]
    text = col if pd.api.types.is_string_dtype(col) else col.astype(str)
    codes, levels = pd.factorize(text, sort=True)
    return codes, [str(v) for v in levels]


def _design_parts(data: pd.DataFrame, covariates: Sequence[str]) -> list[tuple[str, object]]:
    """Each covariate as ``("numeric", values)`` or ``("text", (codes, levels))``, checked."""
    parts: list[tuple[str, object]] = []
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
            parts.append(("numeric", values))
            continue
        codes, levels = _text_codes(col)
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
        parts.append(("text", (codes, levels)))
    return parts


def _design(data: pd.DataFrame, covariates: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Intercept plus covariates; text columns become indicator columns (first level dropped)."""
    parts = _design_parts(data, covariates)
    names = ["const"]
    for cov, (kind, part) in zip(covariates, parts, strict=True):
        names += [cov] if kind == "numeric" else [f"{cov}[{lv}]" for lv in part[1][1:]]
    n = len(data)
    x = np.zeros((n, len(names)))
    x[:, 0] = 1.0
    j = 1
    rows = np.arange(n)
    for kind, part in parts:
        if kind == "numeric":
            x[:, j] = part
            j += 1
            continue
        codes, levels = part
        hit = codes > 0  # the first level is the reference: no column
        x[rows[hit], j - 1 + codes[hit]] = 1.0
        j += len(levels) - 1
    return x, names


# ----------------------------------------------------------------------------------------------
# Nuisance models: cross-products, the propensity model, the outcome models


def _crossprod(
    x: np.ndarray, *, weights: np.ndarray | None = None, rows: np.ndarray | None = None
) -> np.ndarray:
    """``sum_i w_i x_i x_i'`` over all rows, or those where ``rows`` is True, in blocks of rows.

    Weights must be non-negative. Without weights or rows this is ``x.T @ x``; otherwise the
    rows are taken ``CHUNK_ROWS`` at a time, which avoids an n x k temporary.
    """
    if weights is None and rows is None:
        return np.dot(x.T, x)
    k = x.shape[1]
    out = np.zeros((k, k))
    root = np.sqrt(weights) if weights is not None else None
    for start in range(0, x.shape[0], CHUNK_ROWS):
        stop = start + CHUNK_ROWS
        block = x[start:stop]
        if root is not None:
            block = block * root[start:stop, None]
        if rows is not None:
            block = block[rows[start:stop]]
        out += np.dot(block.T, block)
    return out


def _scaled_pinv(xtx: np.ndarray) -> tuple[np.ndarray, int]:
    """Pseudo-inverse and rank of a cross-product matrix, through its column-scaled form.

    Columns are scaled to unit length first (the matrix then has a unit diagonal) and
    eigenvalues below ``RANK_TOL`` count as zero: exactly collinear covariates give a rank
    below the number of columns, and predictions stay unique.
    """
    scale = np.sqrt(np.diag(xtx))
    scale = np.where(scale > 0, scale, 1.0)
    vals, vecs = np.linalg.eigh(xtx / np.outer(scale, scale))
    keep = vals > RANK_TOL
    inv = np.dot(vecs[:, keep] / vals[keep], vecs[:, keep].T)
    return inv / np.outer(scale, scale), int(keep.sum())


def _leverage(x: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``x_i' M x_i`` for every row, in blocks of rows (the diagonal of ``x M x'``)."""
    out = np.empty(x.shape[0])
    for start in range(0, x.shape[0], CHUNK_ROWS):
        block = x[start : start + CHUNK_ROWS]
        out[start : start + CHUNK_ROWS] = np.einsum("ij,ij->i", np.dot(block, matrix), block)
    return out


def _left_out(values: np.ndarray, leverage: np.ndarray | float) -> np.ndarray:
    """Residual-type values as if their learner had been left out: ``values / (1 - h)``.

    The jackknife's (HC3-type) small-sample correction; leverages are capped at 0.99.
    """
    return values / (1 - np.minimum(leverage, 0.99))


@dataclass(frozen=True)
class _Propensity:
    """The fitted propensity model: coefficients, scores and the inverse of the Hessian of its
    log-likelihood, ``(sum_i e_i (1 - e_i) x_i x_i')^+``."""

    params: np.ndarray
    score: np.ndarray
    hessian_inv: np.ndarray


def _logit_pass(
    t: np.ndarray, x: np.ndarray, params: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores, score vector and information of the logit log-likelihood at ``params``.

    One pass over the rows in blocks: ``e = 1 / (1 + exp(-x b))`` (statsmodels' ``Logit.cdf``),
    ``sum_i (t_i - e_i) x_i`` and ``sum_i e_i (1 - e_i) x_i x_i'``, without n x k temporaries.
    """
    n, k = x.shape
    score = np.empty(n)
    grad = np.zeros(k)
    info = np.zeros((k, k))
    for start in range(0, n, CHUNK_ROWS):
        stop = start + CHUNK_ROWS
        block = x[start:stop]
        e = 1 / (1 + np.exp(-np.dot(block, params)))
        score[start:stop] = e
        grad += np.dot(block.T, t[start:stop] - e)
        root = block * np.sqrt(e * (1 - e))[:, None]
        info += np.dot(root.T, root)
    return score, grad, info


def _newton_logit(
    t: np.ndarray, x: np.ndarray, *, stop_if_separated: bool, maxiter: int = 100, tol: float = 1e-8
) -> _Propensity | None:
    """Maximum likelihood of the logistic model by Newton-Raphson, as statsmodels' ``Logit``.

    The steps of ``Logit(t, x).fit(method="newton")``: start at 0, solve with the information
    divided by n plus a ridge of 1e-10, stop when no coefficient moves by more than ``tol``, and
    check after each step whether the fit predicts every learner's treatment (perfect
    separation: statsmodels' ``PerfectSeparationWarning``). Each step is one pass over the
    rows (`_logit_pass`) instead of statsmodels' separate passes for the Hessian, the score and
    the check. Returns None on separation when ``stop_if_separated``.
    """
    n, k = x.shape
    new, old = np.zeros(k), np.full(k, np.inf)
    score, grad, info = _logit_pass(t, x, new)
    for _ in range(maxiter):
        if not np.any(np.abs(new - old) > tol):
            break
        step_matrix = info / n
        step_matrix[np.diag_indices(k)] += 1e-10
        old, new = new, new + np.linalg.solve(step_matrix, grad / n)
        score, grad, info = _logit_pass(t, x, new)
        if stop_if_separated and np.allclose(score - t, 0):
            return None
    return _Propensity(new, score, np.linalg.pinv(info))


SEPARATION = (
    "the covariates predict coaching perfectly (no overlap between coached and "
    "uncoached learners). Remove the covariate that decides who was coached"
)


def _fit_logit(treated: np.ndarray, x: np.ndarray, *, separated_ok: bool) -> _Propensity | None:
    """Fit the logistic propensity model; None if the groups are separated (and not ``ok``)."""
    with np.errstate(over="ignore"):  # exp(-x b) = inf gives a score of 0, as it should
        try:
            return _newton_logit(treated, x, stop_if_separated=not separated_ok)
        except np.linalg.LinAlgError as exc:
            raise EstimationError(
                "the covariates predict coaching perfectly (no overlap between coached and "
                f"uncoached learners): {exc}. Remove the covariate that decides who was coached"
            ) from None


def _propensity(
    treated: np.ndarray,
    x: np.ndarray,
    names: Sequence[str],
    estimand: str,
    *,
    allow_extreme: bool,
    cache: dict,
) -> _Propensity:
    """The propensity model of a sample (fitted once, kept in ``cache``), checked for overlap."""
    if "logit" not in cache:
        cache["logit"] = _fit_logit(treated, x, separated_ok=False)
    prop = cache["logit"]
    if prop is None:
        if not allow_extreme:
            raise EstimationError(SEPARATION)
        if "logit_separated" not in cache:
            cache["logit_separated"] = _fit_logit(treated, x, separated_ok=True)
        prop = cache["logit_separated"]
    score = prop.score
    low = score.min() < 1e-6 and estimand == "ATE"
    if (low or score.max() > 1 - 1e-6) and not allow_extreme:
        worst = [n for n, b in zip(names, np.abs(prop.params), strict=True) if b > 15]
        raise EstimationError(
            "the covariates almost perfectly predict coaching (propensity scores of 0 or 1), "
            "so coached and uncoached learners cannot be compared"
            + (f"; look at {', '.join(worst)}" if worst else "")
        )
    return prop


def fit_propensity(
    treated: np.ndarray,
    x: np.ndarray,
    names: Sequence[str],
    estimand: str = "ATE",
    *,
    allow_extreme: bool = False,
) -> _Propensity:
    """Fit the logistic propensity model (statsmodels' Newton steps); refuse without overlap.

    For the ATE both tails matter (a score near 0 or 1 leaves one potential outcome without
    comparable learners). For the ATT only scores near 1 do: comparison learners unlike any
    coached learner (scores near 0) get weight near 0 and are harmless, as in Dehejia and
    Wahba's NSW-CPS comparison (control scores down to 1e-9).
    """
    return _propensity(treated, x, names, estimand, allow_extreme=allow_extreme, cache={})


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
    """Fit the linear outcome model in one group by least squares, from its cross-product.

    The coefficients solve the normal equations through the pseudo-inverse of the column-scaled
    k x k cross-product (one step of iterative refinement restores the accuracy the normal
    equations lose on ill-conditioned designs): no n x k decomposition. The model's
    predictions for the other group are determined only when the covariates vary within the
    group as much as in the whole sample (same rank): a covariate or category that is constant
    within one group separates the groups and leaves the prediction arbitrary. Collinear
    covariates in the whole sample are harmless (the predictions are unique) and pass silently.
    """
    xtx_inv, group_rank = _scaled_pinv(_crossprod(x, rows=mask))
    if group_rank < rank:
        sub = x[mask]
        constant = [n for j, n in enumerate(names) if n != "const" and np.ptp(sub[:, j]) == 0]
        raise EstimationError(
            f"the covariates do not vary among the {group} learners as they do overall"
            + (f" ({', '.join(constant)} is the same for all of them)" if constant else "")
            + ", so coached and uncoached learners cannot be compared on them; remove or merge "
            "the covariate (or category) that decides who was coached"
        )
    beta = np.dot(xtx_inv, np.dot(x.T, np.where(mask, y, 0.0)))
    fitted = np.dot(x, beta)
    beta = beta + np.dot(xtx_inv, np.dot(x.T, np.where(mask, y - fitted, 0.0)))  # refinement
    fitted = np.dot(x, beta)
    return _Outcome(fitted, np.where(mask, y - fitted, 0.0), xtx_inv, mask)


@dataclass(frozen=True, eq=False)
class _Sample:
    """The arrays one estimate is computed from: outcome, 0/1 treatment, design matrix (with its
    column names) and each learner's cluster (None without clustering). The nuisance models are
    fitted once and kept (``fits``), so every method and estimand estimated on the sample shares
    them."""

    y: np.ndarray
    t: np.ndarray
    x: np.ndarray
    names: list[str]
    groups: np.ndarray | None
    fits: dict = field(default_factory=dict, repr=False)

    @property
    def counts(self) -> tuple[int, int]:
        """Numbers of treated and comparison learners."""
        return int(self.t.sum()), int(len(self.t) - self.t.sum())

    @cached_property
    def rank(self) -> int:
        """Rank of the design matrix, from the k x k cross-product of the column-scaled design.

        An SVD of n x k costs seconds at a million learners; this costs microseconds.
        """
        return _scaled_pinv(_crossprod(self.x))[1]

    @cached_property
    def cluster_codes(self) -> np.ndarray | None:
        """Each learner's cluster as a code 0..G-1 (None without clustering)."""
        return None if self.groups is None else _cluster_codes(self.groups)

    def propensity(self, estimand: str, *, allow_extreme: bool = False) -> _Propensity:
        """The propensity model (see `fit_propensity`), fitted on the first call."""
        return _propensity(
            self.t, self.x, self.names, estimand, allow_extreme=allow_extreme, cache=self.fits
        )

    def leverage(self, key: str) -> np.ndarray:
        """Each learner's leverage in a fitted nuisance model (``"logit"``, ``"outcome0"``,
        ``"outcome1"``): ``e (1 - e) x' H^-1 x`` for the propensity model, ``x' (X'X)^-1 x`` in
        an outcome model's group (0 outside it)."""
        name = f"leverage_{key}"
        if name not in self.fits:
            if key == "logit":
                prop = self.fits["logit"] or self.fits["logit_separated"]
                weight = prop.score * (1 - prop.score)
                self.fits[name] = weight * _leverage(self.x, prop.hessian_inv)
            else:
                model = self.fits[key]
                self.fits[name] = np.where(model.mask, _leverage(self.x, model.xtx_inv), 0.0)
        return self.fits[name]

    def fitted_scores(self) -> np.ndarray | None:
        """The propensity scores, if the model has been fitted (and does not separate)."""
        prop = self.fits.get("logit")
        return None if prop is None else prop.score

    def outcome_model(self, group: int) -> _Outcome:
        """The linear outcome model of the treated (``group=1``) or the comparison group (0)."""
        key = f"outcome{group}"
        if key not in self.fits:
            label = "coached" if group == 1 else "comparison"
            self.fits[key] = fit_outcome(
                self.y, self.x, self.t == group, self.names, rank=self.rank, group=label
            )
        return self.fits[key]


# ----------------------------------------------------------------------------------------------
# Estimators. An effect is the difference of two arm means; each arm mean comes with influence
# values (mean zero) that include the terms for the estimated nuisance parameters.


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
    """Warn when one learner carries much of a group's weight (the estimate then rests on it).

    A note needs one learner to hold more than ``max_share`` of the group's weight *and* the
    weight of more than ``DOMINANCE`` average learners: in a group of 15, every learner holds
    almost 7% of the weight even when all weights are equal, which is no reason for a warning
    (the 5% rule alone flagged such small subgroups and dose bands).
    """
    c = 1 - t
    groups = [("comparison", c, c * (e / (1 - e) if estimand == "ATT" else 1 / (1 - e)))]
    if estimand == "ATE":
        groups.insert(0, ("coached", t, t / e))
    notes = []
    for label, members, w in groups:
        total = w.sum()
        top = float(w.max() / total) if total > 0 else 0.0
        ess = float(total**2 / (w**2).sum()) if total > 0 else 0.0
        if top > max_share and top * members.sum() > DOMINANCE:
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
    return n * np.dot(x, np.dot(matrix, grad)) * factor


@dataclass(frozen=True)
class _Weighting:
    """How an arm weights its learners: ``sum(weight * r) / sum(divisor)`` of a residual ``r``.

    Normalised weights divide by the sum of the weights (``divisor = weight``); unnormalised ones
    by the number of learners the arm describes (all, or the coached for the ATT). ``d_weight``
    and ``d_divisor`` are their derivatives with respect to each learner's linear predictor in
    the propensity model (None when they do not depend on it).
    """

    weight: np.ndarray
    divisor: np.ndarray
    d_weight: np.ndarray | None = None
    d_divisor: np.ndarray | None = None


def _weighting(t: np.ndarray, e: np.ndarray, estimand: str, arm: int, weights: str) -> _Weighting:
    """The inverse probability weights of one arm (1 coached, 0 comparison) for an estimand."""
    c = 1 - t
    if estimand == "ATT" and arm == 1:
        return _Weighting(t, t)  # the coached learners themselves
    if estimand == "ATO":  # overlap weights, always normalised
        w, dw = (t * (1 - e), -t * e * (1 - e)) if arm == 1 else (c * e, c * e * (1 - e))
        return _Weighting(w, w, dw, dw)
    if estimand == "ATE":
        w, dw = (t / e, -t * (1 - e) / e) if arm == 1 else (c / (1 - e), c * e / (1 - e))
        described = np.ones_like(t)  # the ATE describes every learner
    else:
        w = c * e / (1 - e)
        dw, described = w, t  # the ATT describes the coached
    if weights == "normalised":
        return _Weighting(w, w, dw, dw)
    return _Weighting(w, described, dw, None)


@dataclass(frozen=True)
class _Arms:
    """The two means an effect contrasts and their influence values (mean zero).

    For the ATE both are means over all learners (with and without treatment); for the ATT both
    are over the treated learners. The effect is ``mu1 - mu0``.
    """

    mu1: float
    psi1: np.ndarray
    mu0: float
    psi0: np.ndarray

    @property
    def tau(self) -> float:
        """The effect: treated arm minus comparison arm."""
        return float(self.mu1 - self.mu0)

    @property
    def psi(self) -> np.ndarray:
        """Influence values of the effect."""
        return self.psi1 - self.psi0


def _weighted_term(
    s: _Sample,
    weighting: _Weighting,
    r: np.ndarray,
    prop: _Propensity | None,
    left_out: np.ndarray | None,
) -> tuple[float, np.ndarray, np.ndarray]:
    """The weighted mean of ``r``, its influence values and its outcome-coefficient gradient.

    Returns ``delta = sum(w r) / sum(divisor)``, the influence values of ``delta`` (with the
    propensity model's term) and ``-d delta / d beta`` of an outcome model behind ``r``.
    ``left_out``: the small-sample correction's factor 1 / (1 - h) of each residual in ``r``
    (None: no correction; see `_arm`).
    """
    n = s.y.shape[0]
    div_mean = weighting.divisor.mean()
    delta = float(np.dot(weighting.weight, r) / weighting.divisor.sum())
    if weighting.d_weight is not None:
        moved = weighting.d_weight * r
        if weighting.d_divisor is not None:
            moved = moved - weighting.d_divisor * delta
        grad_gamma = np.dot(s.x.T, moved) / (n * div_mean)
    own_r = r if left_out is None else r * left_out
    own = (weighting.weight * own_r - weighting.divisor * delta) / div_mean
    score = s.t - prop.score if prop is not None else None
    if left_out is not None:
        # a learner's leverage in the mean is its share of the divisor: its weight's share when
        # normalised (a Hajek mean), 1 / n or 1 / n_treated when not (a sum divided by a count)
        own = _left_out(own, weighting.divisor / weighting.divisor.sum())
        if score is not None:
            score = _left_out(score, s.leverage("logit"))
    if weighting.d_weight is not None:
        own = own + _correction(s.x, prop.hessian_inv, grad_gamma, score)
    return delta, own, np.dot(s.x.T, weighting.weight) / (n * div_mean)


def _arm(
    s: _Sample,
    *,
    model: tuple[int, _Outcome] | None = None,
    base: np.ndarray | None = None,
    weighting: _Weighting | None = None,
    prop: _Propensity | None = None,
    small_sample: bool = False,
) -> tuple[float, np.ndarray]:
    """One arm's mean and influence values.

    The mean is the outcome model's mean prediction over the ``base`` learners (1 for all, t for
    the treated), plus the weighted mean of its residuals (without a model: of the outcome).
    Regression has a model (``(group, fit)``) and no weighting, IPW weighting and no model, AIPW
    both. ``small_sample`` divides each residual-type term of the influence values by one minus
    its learner's leverage in the model it comes from (outcome model, propensity model,
    weighted mean): they then approximate the jackknife's leave-one-out changes (HC3-type),
    whose variance exceeds the plain sandwich's by about the models' leverage.
    """
    n = s.y.shape[0]
    mu, psi, fitted, grad_beta, left_out = 0.0, np.zeros(n), 0.0, None, None
    if model is not None:
        group, fit = model
        base_mean = base.mean()
        fitted = fit.fitted
        mu = float(np.dot(base, fitted) / base.sum())
        psi = base * (fitted - mu) / base_mean
        grad_beta = np.dot(s.x.T, base) / (n * base_mean)
        if small_sample:
            left_out = _left_out(np.ones(n), s.leverage(f"outcome{group}"))
    elif small_sample and weighting is not None:
        left_out = np.ones(n)
    if weighting is not None:
        delta, own, grad_w = _weighted_term(s, weighting, s.y - fitted, prop, left_out)
        mu += delta
        psi = psi + own
        if grad_beta is not None:
            grad_beta = grad_beta - grad_w
    if model is not None:
        resid = fit.resid if left_out is None else fit.resid * left_out
        psi = psi + _correction(s.x, fit.xtx_inv, grad_beta, resid)
    return mu, psi


def _difference(s: _Sample) -> _Arms:
    """Difference in means (the same for every estimand)."""
    c = 1 - s.t
    return _Arms(*_arm(s, weighting=_Weighting(s.t, s.t)), *_arm(s, weighting=_Weighting(c, c)))


def _adjusted_arm(
    s: _Sample,
    prop: _Propensity,
    method: str,
    estimand: str,
    *,
    weights: str,
    arm: int,
    small_sample: bool,
) -> tuple[float, np.ndarray]:
    """One arm of regression adjustment, IPW or AIPW."""
    if estimand == "ATT" and arm == 1:  # the coached learners' own mean
        return _arm(s, weighting=_Weighting(s.t, s.t), small_sample=small_sample)
    model = (arm, s.outcome_model(arm)) if method in ("regression", "aipw") else None
    base = np.ones_like(s.t) if estimand == "ATE" else s.t
    weighting = (
        _weighting(s.t, prop.score, estimand, arm, weights) if method in WEIGHTED_METHODS else None
    )
    return _arm(
        s, model=model, base=base, weighting=weighting, prop=prop, small_sample=small_sample
    )


def _influence(
    method: str,
    estimand: str,
    s: _Sample,
    weights: str = "normalised",
    small_sample: bool = True,
) -> tuple[_Arms, list[str]]:
    """Return the two arm means with their influence values, and notes.

    ``small_sample`` applies the leverage correction of `_arm` to the adjusted methods (the
    difference in means keeps its textbook standard error).
    """
    if method == "difference":
        return _difference(s), []
    # Every adjusted method needs overlap: regression would otherwise extrapolate silently, so it
    # fits the propensity model too (only to check overlap and report limited overlap).
    prop = s.propensity(estimand)
    notes = _overlap_notes(prop.score, estimand)
    if method in WEIGHTED_METHODS and estimand != "ATO":
        notes.extend(_weight_notes(s.t, prop.score, estimand))
    kw = {"weights": weights, "small_sample": small_sample}
    arms = _Arms(
        *_adjusted_arm(s, prop, method, estimand, arm=1, **kw),
        *_adjusted_arm(s, prop, method, estimand, arm=0, **kw),
    )
    return arms, notes


# ----------------------------------------------------------------------------------------------
# Inference


def _variance_codes(psi: np.ndarray, codes: np.ndarray | None) -> tuple[float, int | None]:
    """Sandwich variance of a mean of influence values, cluster-robust when codes are given."""
    n = psi.shape[0]
    if codes is None:
        return float(np.sum(psi**2) / n**2 * n / (n - 1)), None
    sums = np.bincount(codes, weights=psi)
    g = sums.shape[0]
    if g < 2:
        return math.nan, g
    return float(np.sum(sums**2) / n**2 * g / (g - 1)), g


def _variance(psi: np.ndarray, groups: np.ndarray | None) -> tuple[float, int | None]:
    """Sandwich variance of a mean of influence values, cluster-robust when groups are given."""
    codes = None if groups is None else _cluster_codes(groups)
    return _variance_codes(psi, codes)


def _cluster_codes(groups: np.ndarray) -> np.ndarray:
    """Each learner's cluster as a code 0..G-1 in sorted order, ``pd.factorize(groups,
    sort=True)[0]``; by counting when the clusters are already small whole numbers (the
    diagnostics' integer codes), which at 1M learners saves 20 ms of each of their 42 refits.

    Examples
    --------
    >>> _cluster_codes(np.array([7.0, 2.0, 7.0, 4.0])).tolist()
    [2, 0, 2, 1]
    """
    if groups.dtype.kind in "iuf" and len(groups):
        if groups.dtype.kind == "f" and not np.isfinite(groups).all():
            return pd.factorize(groups, sort=True)[0]
        whole = groups.astype(np.int64)
        if (whole == groups).all() and whole.min() >= 0 and whole.max() < 4 * len(groups) + 1024:
            return np.cumsum(np.bincount(whole) > 0)[whole] - 1
    return pd.factorize(groups, sort=True)[0]


def _reference(alpha: float, n_clusters: int | None) -> tuple[object, tuple, float]:
    """The reference distribution, its extra arguments and the critical value of an interval.

    Clustered: a t distribution with (clusters - 1) degrees of freedom; otherwise the normal.
    Unfrozen distributions: freezing one costs about a millisecond per call (bootstraps).
    """
    dist, df = (stats.t, (n_clusters - 1,)) if n_clusters else (stats.norm, ())
    return dist, df, float(dist.ppf(1 - alpha / 2, *df))


def _inference(
    tau: float, psi: np.ndarray, codes: np.ndarray | None, *, alpha: float, cluster: str | None
) -> dict:
    """Standard error, interval and p-value: the fields of `EffectEstimate` they fill.

    Clustered, the interval and p-value use a t distribution with (clusters - 1) degrees of
    freedom, otherwise the normal distribution.
    """
    var, n_clusters = _variance_codes(psi, codes)
    if n_clusters is not None and n_clusters < 2:
        raise EstimationError(
            f"cluster '{cluster}' has a single value: cannot cluster standard errors"
        )
    se = math.sqrt(var)
    dist, df, crit = _reference(alpha, n_clusters)
    stat = tau / se if se > 0 else (math.inf if tau != 0 else 0.0)
    return {
        "std_error": se,
        "ci_low": float(tau - crit * se),
        "ci_high": float(tau + crit * se),
        "p_value": float(2 * dist.sf(abs(stat), *df)),
        "n_clusters": n_clusters,
    }


# ----------------------------------------------------------------------------------------------
# Checks of the inputs


def _check_options(
    method: str,
    estimand: str,
    alpha: float,
    trim: tuple[float, float] | None,
    weights: str = "normalised",
) -> None:
    """Refuse unknown options and impossible combinations of them."""
    check_choice("method", method, METHODS)
    check_choice("estimand", estimand, ESTIMANDS)
    check_choice("weights", weights, WEIGHTS)
    if estimand == "ATO" and method not in ("ipw", "difference"):
        raise ValueError("estimand='ATO' (overlap weights) is available with method='ipw' only")
    if estimand == "ATO" and weights != "normalised":
        raise ValueError("estimand='ATO' (overlap weights) needs weights='normalised'")
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


def _trim(s: _Sample, trim: tuple[float, float], *, estimand: str) -> tuple[_Sample, int]:
    """Leave out learners whose propensity score is outside ``trim``; the rest and their number."""
    score = s.propensity("ATE" if estimand == "ATO" else estimand, allow_extreme=True).score
    keep = (score >= trim[0]) & (score <= trim[1])
    x = s.x[keep]
    varies = np.r_[True, x[:, 1:].std(axis=0) > 0]  # a level may vanish with the trimmed
    kept = _Sample(
        y=s.y[keep],
        t=s.t[keep],
        x=x[:, varies],
        names=[n for n, v in zip(s.names, varies, strict=True) if v],
        groups=s.groups[keep] if s.groups is not None else None,
    )
    return kept, int((~keep).sum())


# ----------------------------------------------------------------------------------------------
# From a data frame to estimates


@dataclass(frozen=True)
class _Request:
    """What an estimate is asked for: the columns and every option but the method."""

    outcome: str
    treatment: str
    covariates: tuple[str, ...]
    estimand: str
    cluster: str | None
    alpha: float
    trim: tuple[float, float] | None
    weights: str
    small_sample: bool = True


@dataclass(frozen=True)
class _Fitted:
    """One method's estimate, its two arm means with their influence values, and its sample."""

    estimate: EffectEstimate
    arms: _Arms
    sample: _Sample = field(repr=False)
    design: _Sample = field(repr=False)  # the sample before any trimming


def _adjusted_sample(full: _Sample, data: pd.DataFrame, req: _Request) -> tuple[_Sample, int]:
    """The sample the adjusted methods use: every learner, or those left after trimming."""
    if req.trim is None:
        lonely = _levels_without_comparison(data, full.t, req.covariates, req.estimand)
        if lonely:
            raise EstimationError(
                f"no comparison group within {'; '.join(lonely[:5])}: these learners cannot be "
                f"compared with anyone for {req.outcome}. Merge the level with a similar one, leave "
                "these learners out, or use trim: [0.05, 0.95]"
            )
        return full, 0
    return _trim(full, req.trim, estimand=req.estimand)


def _fit_one(s: _Sample, method: str, req: _Request, n_trimmed: int, *, design: _Sample) -> _Fitted:
    """Estimate one method on a prepared sample."""
    arms, notes = _influence(method, req.estimand, s, req.weights, req.small_sample)
    if n_trimmed:
        notes.insert(
            0,
            f"{n_trimmed} learners with an estimated chance of treatment outside "
            f"[{req.trim[0]:g}, {req.trim[1]:g}] were left out (trimming)",
        )
    inference = _inference(
        arms.tau, arms.psi, s.cluster_codes, alpha=req.alpha, cluster=req.cluster
    )
    n_clusters = inference["n_clusters"]
    if n_clusters is not None and n_clusters < 20:
        notes.append(f"only {n_clusters} clusters: cluster-robust intervals may be too narrow")
    n_t, n_c = s.counts
    estimate = EffectEstimate(
        outcome=req.outcome,
        treatment=req.treatment,
        estimand=req.estimand,
        method=method,
        estimate=arms.tau,
        **inference,
        n_treated=n_t,
        n_control=n_c,
        alpha=req.alpha,
        units=OUTCOME_UNITS.get(req.outcome, "outcome units"),
        covariates=req.covariates if method != "difference" else (),
        cluster=req.cluster,
        n_trimmed=n_trimmed,
        notes=tuple(notes),
        weights=req.weights if method in WEIGHTED_METHODS else None,
    )
    return _Fitted(estimate, arms, s, design)


def _fit_methods(data: pd.DataFrame, *, methods: Sequence[str], req: _Request) -> list[_Fitted]:
    """Estimate several methods on one data frame, sharing the design and the nuisance models.

    Each estimate equals the one `estimate_effect` gives for its method alone: the checks run in
    the same order, and the propensity and outcome models are the same fits.
    """
    for method in methods:
        _check_options(method, req.estimand, req.alpha, req.trim, req.weights)
    y, t = _outcome_and_treatment(
        data,
        outcome=req.outcome,
        treatment=req.treatment,
        covariates=req.covariates,
        cluster=req.cluster,
    )
    _check_comparison_group(t, outcome=req.outcome, treatment=req.treatment)
    plain = _Sample(y, t, np.ones((len(t), 1)), ["const"], None)
    for method in methods:  # groups too small for any method, before covariates are examined
        _check_group_sizes(plain, method=method, outcome=req.outcome)
    if any(m != "difference" for m in methods):
        x, names = _design(data, req.covariates)
    else:
        x, names = np.ones((len(t), 1)), ["const"]
    full = _Sample(y, t, x, names, data[req.cluster].to_numpy() if req.cluster else None)
    adjusted: tuple[_Sample, int] | None = None
    fitted = []
    for method in methods:
        need = _check_group_sizes(full, method=method, outcome=req.outcome)
        if method == "difference":
            fitted.append(_fit_one(full, method, req, 0, design=full))
            continue
        if adjusted is None:
            adjusted = _adjusted_sample(full, data, req)
        s, n_trimmed = adjusted
        n_t, n_c = s.counts
        if n_trimmed and min(n_t, n_c) < need:
            raise EstimationError(
                f"after trimming {n_trimmed} learners outside {req.trim}, too few remain for "
                f"{req.outcome}: {n_t} treated and {n_c} comparison"
            )
        fitted.append(_fit_one(s, method, req, n_trimmed, design=full))
    return fitted


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
    weights: str = "normalised",
    small_sample: bool = True,
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
        or augmented IPW (doubly robust). Every adjusted method (regression too) fits the
        propensity model and refuses data without overlap.
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
    weights : {"normalised", "unnormalised"}
        How IPW and AIPW scale each group's weighted sums (ignored by the other methods).
        ``"normalised"`` (Hajek) divides by the sum of the weights within each arm: IPW arms are
        weighted means, AIPW adds the weighted mean of the outcome model's residuals (for the
        ATT, Sant'Anna and Zhao's 2020 doubly robust estimator). ``"unnormalised"``
        (Horvitz-Thompson) divides by the number of learners, as statsmodels'
        ``TreatmentEffect.aipw``; with poor overlap a few learners with large weights can then
        move the estimate far outside the range of the data.
    small_sample : bool
        Correct the adjusted methods' standard errors for the leverage of each learner in the
        fitted models (default): every residual in the influence values is divided by one minus
        the learner's leverage in its model (outcome model, propensity model, weighted mean),
        so that the variance approximates the jackknife's (HC3-type) rather than the plain
        sandwich's, which is too small in samples of a few thousand learners. ``False`` gives
        the plain sandwich (statsmodels' ``TreatmentEffect`` up to n / (n - 1)).

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
    req = _Request(
        outcome, treatment, tuple(covariates), estimand, cluster, alpha, trim, weights, small_sample
    )
    return _fit_methods(data, methods=(method,), req=req)[0].estimate
