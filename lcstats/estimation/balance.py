"""Covariate balance and overlap: is the comparison group comparable before and after adjustment?

One balance engine, as in R's cobalt: every adjustment method is first turned into weights
(`balance_weights`, `weights_from_propensity`), and one function (`compute_balance`) turns any
weights into the same tidy table of standardised mean differences (SMD) and variance ratios.
`balance_table` does both steps for a method name.

Conventions (those of cobalt's ``bal.tab``, stated so a reader can check them):

- SMD = (weighted mean among the treated - weighted mean among the comparison group) / SD, where
  the SD is always that of the *unweighted* sample, so that before and after rows share one
  denominator and a change in SMD is a change in the means only. For the ATE (and the overlap
  population, ATO) the SD is pooled, ``sqrt((s1^2 + s0^2) / 2)``; for the ATT it is the treated
  group's SD ``s1``. Numeric covariates use the sample variance (n - 1); binary covariates and
  each level of a categorical covariate use ``p (1 - p)``.
- The variance ratio is the weighted variance among the treated over that among the comparison
  group (numeric covariates only; it is not informative for binary ones). Weighted variances use
  the unbiased form ``sum w (x - m)^2 / (sum w - sum w^2 / sum w)``, which is the sample
  variance when all weights are equal.
- Categorical (text) covariates get one indicator row per level, every level shown (the design
  matrix of the estimators drops the first level; a balance table should not).
- |SMD| <= 0.1 is the usual threshold for adequate balance (Austin 2009; Stuart 2010); variance
  ratios between 0.5 and 2 are usually taken as acceptable (Rubin 2001).

Overlap of the propensity score (`overlap_summary`) and fixed-bounds trimming in the spirit of
Crump et al. (2009) (`trim_mask`) complete the diagnostics.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal, get_args

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from lcstats.core.display import summary_html
from lcstats.core.options import check_choice
from lcstats.estimation.effects import MAX_LEVELS, _design, fit_propensity

__all__ = [
    "BALANCE_ESTIMANDS",
    "BALANCE_METHODS",
    "Balance",
    "Overlap",
    "balance_from_propensity",
    "balance_table",
    "balance_weights",
    "compute_balance",
    "overlap_summary",
    "propensity_scores",
    "trim_mask",
    "weights_from_propensity",
]

BalanceMethod = Literal["difference", "regression", "ipw", "aipw", "overlap"]
BalanceEstimand = Literal["ATE", "ATT", "ATO"]
BALANCE_METHODS: tuple[str, ...] = get_args(BalanceMethod)
BALANCE_ESTIMANDS: tuple[str, ...] = get_args(BalanceEstimand)

THRESHOLD = 0.1
VARIANCE_RATIO_RANGE = (0.5, 2.0)  # acceptable variance ratios (Rubin 2001)
LOW_ESS_SHARE = 0.5  # warn when weighting keeps less than half of a group's sample size
COLUMNS = (
    "covariate",
    "level",
    "type",
    "mean_treated",
    "mean_control",
    "smd",
    "variance_ratio",
    "adjusted",
)


# --------------------------------------------------------------------------------------------
# input checks


def _treated(data: pd.DataFrame, treatment: str) -> np.ndarray:
    """The 0/1 treatment as floats (a missing column, other codes or one group refused)."""
    if treatment not in data.columns:
        raise ValueError(
            f"column '{treatment}' not in data; have {', '.join(map(str, data.columns))}"
        )
    t = pd.to_numeric(data[treatment], errors="coerce")
    if not t.isin([0, 1]).all():
        raise ValueError(f"treatment column '{treatment}' must be coded 0/1 with no missing values")
    t = t.to_numpy(dtype=float)
    if t.sum() == 0 or t.sum() == len(t):
        raise ValueError(f"treatment column '{treatment}' has only one group; balance needs both")
    return t


def _check_covariates(
    data: pd.DataFrame, treatment: str, covariates: Sequence[str]
) -> tuple[str, ...]:
    """The covariates as a tuple: at least one, all present, none missing, not the treatment."""
    if isinstance(covariates, str):
        raise ValueError("covariates must be a list of column names, not a single string")
    covariates = tuple(covariates)
    if not covariates:
        raise ValueError("give at least one covariate to check balance on")
    missing = [c for c in covariates if c not in data.columns]
    if missing:
        raise ValueError(
            f"column(s) {', '.join(missing)} not in data; have {', '.join(map(str, data.columns))}"
        )
    if treatment in covariates:
        raise ValueError("the treatment cannot also be a covariate")
    nan_cols = [c for c in covariates if data[c].isna().any()]
    if nan_cols:
        raise ValueError(
            f"missing values in {', '.join(nan_cols)}; use lcstats.analysis_sample to exclude "
            "and count those learners first"
        )
    return covariates


def _check_estimand(method: str, estimand: str) -> None:
    """Refuse unknown methods and estimands, and overlap weights without the ATO (or vice versa)."""
    check_choice("method", method, BALANCE_METHODS)
    check_choice("estimand", estimand, BALANCE_ESTIMANDS)
    if (method == "overlap") != (estimand == "ATO"):
        raise ValueError(
            f"method={method!r} with estimand={estimand!r} is not allowed: overlap weights "
            "target the overlap population, so use method='overlap' with estimand='ATO' "
            "(and estimand 'ATE' or 'ATT' with the other methods)"
        )


def _check_bounds(bounds: tuple[float, float]) -> tuple[float, float]:
    """Propensity bounds as two floats with 0 <= lower < upper <= 1."""
    lo, hi = (float(b) for b in bounds)
    if not 0 <= lo < hi <= 1:
        raise ValueError(f"bounds={bounds!r} must be two numbers with 0 <= lower < upper <= 1")
    return lo, hi


def _as_propensity(
    propensity: ArrayLike, treated: ArrayLike | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Propensity scores (and the 0/1 treatment, if given) as checked flat arrays."""
    e = np.asarray(propensity, dtype=float).ravel()
    if e.size == 0 or not np.all((e >= 0) & (e <= 1)):
        raise ValueError("propensity scores must be numbers between 0 and 1 with no missing values")
    if treated is None:
        return e, None
    t = np.asarray(treated, dtype=float).ravel()
    if t.shape != e.shape:
        raise ValueError(
            f"propensity has {e.size} values but treated has {t.size}; they must match"
        )
    if not np.all((t == 0) | (t == 1)):
        raise ValueError("treated must be coded 0/1 with no missing values")
    if t.sum() == 0 or t.sum() == t.size:
        raise ValueError(
            "treated has only one group; both coached and uncoached learners are needed"
        )
    return e, t


# --------------------------------------------------------------------------------------------
# weights


def propensity_scores(
    data: pd.DataFrame, *, treatment: str, covariates: Sequence[str]
) -> np.ndarray:
    """Estimated chance of treatment for every row, from the estimators' own propensity model.

    The logistic model and its design matrix (text covariates as indicators) are the ones
    `lcstats.estimate_effect` fits, so balance and overlap describe the weights the estimates use.

    Parameters
    ----------
    data : DataFrame
        One row per learner, no missing values in the columns used.
    treatment : str
        0/1 treatment column.
    covariates : sequence of str
        Covariates of the propensity model.

    Returns
    -------
    numpy.ndarray
        Propensity scores in (0, 1), in the row order of `data`.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(1)
    >>> x = rng.normal(size=300)
    >>> df = pd.DataFrame({"t": (rng.random(300) < 1 / (1 + np.exp(-x))).astype(int), "x": x})
    >>> e = propensity_scores(df, treatment="t", covariates=["x"])
    >>> e.shape, bool(np.all(np.diff(e[np.argsort(x)]) > 0))  # increases with x
    ((300,), True)
    """
    t = _treated(data, treatment)
    covariates = _check_covariates(data, treatment, covariates)
    x, names = _design(data, covariates)
    return fit_propensity(t, x, names).score


def weights_from_propensity(
    propensity: ArrayLike, treated: ArrayLike, *, estimand: str = "ATE"
) -> np.ndarray:
    """Balancing weights implied by propensity scores, normalised to mean 1 within each group.

    ``ATE``: 1/e for the treated, 1/(1-e) for the comparison group. ``ATT``: 1 for the treated,
    e/(1-e) for the comparison group. ``ATO`` (overlap weights, Li, Morgan & Zaslavsky 2018):
    1-e for the treated, e for the comparison group.

    Parameters
    ----------
    propensity : array-like
        Propensity scores, strictly between 0 and 1 for ``ATE`` and ``ATT``.
    treated : array-like
        0/1 treatment indicator of the same length.
    estimand : {"ATE", "ATT", "ATO"}
        Population the weights make the groups resemble.

    Returns
    -------
    numpy.ndarray

    Examples
    --------
    >>> weights_from_propensity([0.2, 0.5, 0.5, 0.8], [1, 1, 0, 0], estimand="ATT")
    array([1. , 1. , 0.4, 1.6])
    """
    check_choice("estimand", estimand, BALANCE_ESTIMANDS)
    e, t = _as_propensity(propensity, treated)
    if estimand != "ATO" and not np.all((e > 0) & (e < 1)):
        raise ValueError(f"{estimand} weights need propensity scores strictly between 0 and 1")
    if estimand == "ATE":
        w = np.where(t == 1, 1 / np.where(t == 1, e, 1), 1 / np.where(t == 0, 1 - e, 1))
    elif estimand == "ATT":
        w = np.where(t == 1, 1.0, e / np.where(t == 0, 1 - e, 1))
    else:
        w = np.where(t == 1, 1 - e, e)
    for g in (0, 1):
        mask = t == g
        total = w[mask].sum()
        if total <= 0:
            raise ValueError(
                "every weight in one group is zero; the weights cannot balance anything"
            )
        w[mask] = w[mask] * mask.sum() / total
    return w


def balance_weights(
    data: pd.DataFrame,
    *,
    treatment: str,
    covariates: Sequence[str],
    method: str,
    estimand: str,
) -> np.ndarray:
    """The weights an estimation method implies, for the balance table.

    ``difference`` gives equal weights (the unadjusted comparison). ``ipw`` gives the inverse
    probability weights of `lcstats.estimate_effect` (normalised within each group). ``aipw`` and
    ``regression`` have no weights of their own: their balance is shown with the same IPW weights
    (AIPW is IPW plus an outcome-model correction; for regression the IPW balance shows whether
    the groups overlap enough for the model not to extrapolate). ``overlap`` gives overlap weights
    for the overlap population (``estimand="ATO"``).

    Parameters
    ----------
    data : DataFrame
        One row per learner, no missing values in the columns used.
    treatment : str
        0/1 treatment column.
    covariates : sequence of str
        Covariates of the propensity model (text columns become indicators).
    method : {"difference", "regression", "ipw", "aipw", "overlap"}
        Estimation or weighting method.
    estimand : {"ATE", "ATT", "ATO"}
        ``ATO`` goes with ``overlap`` only, and ``overlap`` with ``ATO`` only.

    Returns
    -------
    numpy.ndarray
        One weight per row, mean 1 within each group.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(2)
    >>> x = rng.normal(size=200)
    >>> df = pd.DataFrame({"t": (rng.random(200) < 1 / (1 + np.exp(-x))).astype(int), "x": x})
    >>> w = balance_weights(df, treatment="t", covariates=["x"], method="ipw", estimand="ATT")
    >>> bool(np.all(w[df["t"] == 1] == 1)), round(float(w[df["t"] == 0].mean()), 6)
    (True, 1.0)
    """
    _check_estimand(method, estimand)
    t = _treated(data, treatment)
    covariates = _check_covariates(data, treatment, covariates)
    if method == "difference":
        return np.ones(len(t))
    e = propensity_scores(data, treatment=treatment, covariates=covariates)
    return weights_from_propensity(e, t, estimand=estimand)


# --------------------------------------------------------------------------------------------
# the balance engine


def _indicators(
    data: pd.DataFrame, covariates: Sequence[str]
) -> list[tuple[str, str | None, str, np.ndarray]]:
    """(covariate, level, type, values) rows: numeric and 0/1 columns as is, text by level."""
    rows: list[tuple[str, str | None, str, np.ndarray]] = []
    for cov in covariates:
        col = data[cov]
        if pd.api.types.is_bool_dtype(col) or pd.api.types.is_numeric_dtype(col):
            values = col.to_numpy(dtype=float)
            if not np.isfinite(values).all():
                raise ValueError(
                    f"covariate '{cov}' has infinite values; it must be finite numbers"
                )
            kind = "binary" if np.isin(values, (0.0, 1.0)).all() else "numeric"
            rows.append((cov, None, kind, values))
            continue
        codes, text = _text_levels(col)
        present = set(text[np.bincount(codes, minlength=len(text)) > 0])
        if isinstance(col.dtype, pd.CategoricalDtype):
            levels = list(dict.fromkeys(str(c) for c in col.cat.categories if str(c) in present))
        else:
            levels = sorted(present)
        if len(levels) > MAX_LEVELS:
            raise ValueError(
                f"covariate '{cov}' has {len(levels)} different text values; a category with "
                f"more than {MAX_LEVELS} levels looks like an identifier or a number stored as text"
            )
        rows += [(cov, level, "binary", (text == level)[codes].astype(float)) for level in levels]
    return rows


def _text_levels(col: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Codes of a text column and the text of each code (as ``col.astype(str)`` writes it).

    Comparing integer codes is much cheaper than comparing a million strings per level.
    """
    if isinstance(col.dtype, pd.CategoricalDtype):
        codes = col.cat.codes.to_numpy()
        return codes, np.asarray([str(c) for c in col.cat.categories], dtype=object)
    codes, uniques = pd.factorize(col.astype(str))
    return codes, np.asarray([str(u) for u in uniques], dtype=object)


def _wmean(v: np.ndarray, w: np.ndarray) -> float:
    """Weighted mean."""
    return float(np.sum(w * v) / np.sum(w))


def _wvar(v: np.ndarray, w: np.ndarray) -> float:
    """Unbiased weighted variance (reliability weights); the sample variance for equal weights."""
    sw = np.sum(w)
    denom = sw - np.sum(w**2) / sw
    if denom <= 0:
        return math.nan
    return float(np.sum(w * (v - _wmean(v, w)) ** 2) / denom)


def _sd_denominator(v: np.ndarray, t: np.ndarray, kind: str, estimand: str) -> float:
    """SD of the unweighted sample used to standardise a mean difference (cobalt's s.d.denom)."""
    if kind == "binary":
        p1, p0 = v[t == 1].mean(), v[t == 0].mean()
        var1, var0 = p1 * (1 - p1), p0 * (1 - p0)
    else:
        ones = np.ones(len(v))
        var1, var0 = _wvar(v[t == 1], ones[t == 1]), _wvar(v[t == 0], ones[t == 0])
    if estimand == "ATT" and var1 > 0:
        return math.sqrt(var1)
    # ATE, ATO; and the ATT when the covariate does not vary among the treated
    pooled = (np.nan_to_num(var1) + np.nan_to_num(var0)) / 2
    return math.sqrt(pooled) if pooled > 0 else math.nan


def _rows(
    indicators: list[tuple[str, str | None, str, np.ndarray]],
    t: np.ndarray,
    w: np.ndarray,
    estimand: str,
    adjusted: bool,
) -> list[dict]:
    """One balance-table row per indicator: weighted means, SMD and variance ratio."""
    out = []
    for cov, level, kind, v in indicators:
        m1, m0 = _wmean(v[t == 1], w[t == 1]), _wmean(v[t == 0], w[t == 0])
        sd = _sd_denominator(v, t, kind, estimand)
        diff = m1 - m0
        # a covariate constant in both groups: no difference, or complete separation (NaN)
        smd = diff / sd if sd > 0 else (0.0 if abs(diff) < 1e-12 else math.nan)
        vr = math.nan
        if kind == "numeric":
            v1, v0 = _wvar(v[t == 1], w[t == 1]), _wvar(v[t == 0], w[t == 0])
            vr = v1 / v0 if v0 > 0 else math.nan
        out.append(
            {
                "covariate": cov,
                "level": level,
                "type": kind,
                "mean_treated": m1,
                "mean_control": m0,
                "smd": smd,
                "variance_ratio": vr,
                "adjusted": adjusted,
            }
        )
    return out


def _ess(w: np.ndarray) -> float:
    """Kish effective sample size, (sum w)^2 / sum w^2."""
    return float(np.sum(w) ** 2 / np.sum(w**2))


def _label(covariate: str, level: str | None) -> str:
    """A covariate's name in displays, with its level for text covariates ('role: a')."""
    return covariate if level is None else f"{covariate}: {level}"


@dataclass(frozen=True, eq=False)
class Balance:
    """Covariate balance between treated and comparison learners, before and after weighting.

    ``frame`` is tidy: one row per covariate (per level for categorical covariates) and per
    ``adjusted`` state, with columns ``covariate``, ``level`` (None for numeric and 0/1
    covariates), ``type`` ("numeric" or "binary"), ``mean_treated`` and ``mean_control``
    (weighted when ``adjusted``), ``smd`` (standardised by the SD of the unweighted sample:
    pooled for ATE/ATO, the treated group's for ATT), ``variance_ratio`` (numeric rows only) and
    ``adjusted``. See the module docstring for the conventions.
    """

    frame: pd.DataFrame
    treatment: str
    estimand: str
    method: str
    n_treated: int
    n_control: int
    ess_treated: float | None = None
    ess_control: float | None = None
    threshold: float = THRESHOLD

    @property
    def has_adjusted(self) -> bool:
        """Whether the table has rows after weighting."""
        return bool(self.frame["adjusted"].any())

    def to_frame(self) -> pd.DataFrame:
        """Return a copy of the tidy frame."""
        return self.frame.copy()

    def wide(self) -> pd.DataFrame:
        """One row per covariate (level), with before and after side by side."""
        keys = ["covariate", "level", "type"]
        values = ["mean_treated", "mean_control", "smd", "variance_ratio"]
        before = self.frame[~self.frame["adjusted"]].reset_index(drop=True)
        out = before[keys].copy()
        for col in values:
            out[f"{col}_before"] = before[col].to_numpy()
        if self.has_adjusted:
            after = self.frame[self.frame["adjusted"]].reset_index(drop=True)
            for col in values:
                out[f"{col}_after"] = after[col].to_numpy()
        return out

    def max_abs_smd(self, adjusted: bool = True) -> float:
        """Largest |SMD| before (``adjusted=False``) or after weighting.

        NaN when the table has no such rows; infinite when a covariate cannot be standardised
        (constant within both groups but different between them).
        """
        rows = self.frame[self.frame["adjusted"] == adjusted]
        if rows.empty:
            return math.nan
        smd = rows["smd"].abs()
        return math.inf if smd.isna().any() else float(smd.max())

    def imbalanced(self, adjusted: bool = True, threshold: float | None = None) -> pd.DataFrame:
        """Rows with |SMD| above the threshold (or an SMD that cannot be standardised)."""
        thr = self.threshold if threshold is None else threshold
        rows = self.frame[self.frame["adjusted"] == adjusted]
        return rows[~(rows["smd"].abs() <= thr)]

    def reading(self, threshold: float | None = None) -> str:
        """One plain-language sentence on balance after weighting (before, if not weighted)."""
        return _reading(self, self.threshold if threshold is None else threshold)

    def notes(self) -> list[str]:
        """Plain-language notes beyond the SMDs: effective sample size and variance ratios."""
        return [*_ess_notes(self), *_variance_ratio_notes(self)]

    def summary(self) -> str:
        """Return a short text summary (not printed)."""
        table = _display(self).to_string(index=False, float_format="{:.3f}".format, na_rep="")
        return "\n".join([_description(self), table, *self.notes(), self.reading()])

    def __repr__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        return summary_html(
            self.reading(),
            [_description(self), *self.notes()],
            {"Standardised differences, before and after weighting": _display(self)},
        )


# --------------------------------------------------------------------------------------------
# the words and the displayed table of a Balance


def _reading(bal: Balance, thr: float) -> str:
    """The sentence of `Balance.reading` for the threshold ``thr``."""
    after = bal.has_adjusted
    bad = bal.imbalanced(after, thr)
    largest = bal.max_abs_smd(after)
    if after:
        lead = "After weighting"
        was = f", {bal.max_abs_smd(False):.2f} before weighting"
    else:
        lead, was = "Without any adjustment", ""
    if bad.empty:
        return (
            f"{lead}, every covariate is within {thr:g} SD between the two groups "
            f"(largest |SMD| {largest:.2f}{was})."
        )
    n_cov = bad["covariate"].nunique()
    items = [
        f"{_label(r.covariate, r.level)} ({'groups do not overlap' if math.isnan(r.smd) else f'{r.smd:+.2f}'})"
        for r in bad.itertuples()
    ]
    noun = "covariate" if n_cov == 1 else "covariates"
    if after:
        verb = "remains imbalanced" if n_cov == 1 else "remain imbalanced"
        return f"{lead}, {n_cov} {noun} {verb} (|SMD| > {thr:g}): {', '.join(items)}."
    verb = "differs" if n_cov == 1 else "differ"
    return (
        f"{lead}, {n_cov} {noun} {verb} between the two groups by more than {thr:g} SD: "
        f"{', '.join(items)}."
    )


def _ess_notes(bal: Balance) -> list[str]:
    """The effective sample sizes after weighting, with a warning when they are small."""
    if bal.ess_treated is None or bal.ess_control is None:
        return []
    text = (
        f"Effective sample size after weighting: {bal.ess_treated:,.0f} treated "
        f"(of {bal.n_treated:,}), {bal.ess_control:,.0f} comparison (of {bal.n_control:,})."
    )
    share = min(bal.ess_treated / bal.n_treated, bal.ess_control / bal.n_control)
    if share < LOW_ESS_SHARE:
        text += (
            " The weights rest on few learners, so estimates are imprecise and sensitive "
            "to the propensity model (the log of a skewed covariate, trimming or overlap "
            "weights may help)."
        )
    return [text]


def _variance_ratio_notes(bal: Balance) -> list[str]:
    """The numeric covariates whose variance ratio is outside the acceptable range."""
    rows = bal.frame[bal.frame["adjusted"] == bal.has_adjusted]
    lo, hi = VARIANCE_RATIO_RANGE
    odd = rows[(rows["variance_ratio"] < lo) | (rows["variance_ratio"] > hi)]
    if odd.empty:
        return []
    items = ", ".join(f"{r.covariate} ({r.variance_ratio:.2f})" for r in odd.itertuples())
    return [f"Variance ratios outside {lo:g}-{hi:g}: {items}."]


def _description(bal: Balance) -> str:
    """What the table compares: the groups, the weights, the estimand and the SMD's SD."""
    weights = {
        "difference": "no weighting",
        "weights": "the supplied weights",
        "ipw": "inverse probability weights",
        "aipw": "the inverse probability weights of AIPW",
        "regression": "inverse probability weights (regression has no weights of its own)",
        "overlap": "overlap weights",
    }.get(bal.method, bal.method)
    denom = "SD of the treated" if bal.estimand == "ATT" else "pooled SD"
    return (
        f"Balance of {bal.treatment}: {bal.n_treated} treated vs {bal.n_control} comparison, "
        f"{weights}, {bal.estimand}. SMD = difference in means / {denom} before weighting "
        "(binary rows: SD = sqrt(p(1 - p)))."
    )


def _display(bal: Balance) -> pd.DataFrame:
    """The table shown in summaries: the SMDs before and after, and the variance ratios."""
    wide = bal.wide()
    shown = pd.DataFrame(
        {
            "covariate": [
                _label(c, lv) for c, lv in zip(wide["covariate"], wide["level"], strict=True)
            ]
        }
    )
    shown["smd_before"] = wide["smd_before"]
    if bal.has_adjusted:
        shown["smd_after"] = wide["smd_after"]
        shown["variance_ratio_after"] = wide["variance_ratio_after"]
    else:
        shown["variance_ratio_before"] = wide["variance_ratio_before"]
    return shown


def compute_balance(
    data: pd.DataFrame,
    *,
    treatment: str,
    covariates: Sequence[str],
    weights: ArrayLike | None,
    estimand: str = "ATE",
    threshold: float = THRESHOLD,
) -> Balance:
    """Balance table of any weights: SMDs and variance ratios before and after weighting.

    This is the one engine every method feeds: turn a method into weights (`balance_weights`,
    `weights_from_propensity`, trimming as zero weights) and pass them here.

    Parameters
    ----------
    data : DataFrame
        One row per learner, no missing values in the columns used.
    treatment : str
        0/1 treatment column.
    covariates : sequence of str
        Columns to check; text columns are shown level by level.
    weights : array-like or None
        One non-negative weight per row (any scale); None gives the unweighted rows only.
    estimand : {"ATE", "ATT", "ATO"}
        Sets the SD that standardises the differences: the treated group's SD for ATT, the
        pooled SD otherwise.
    threshold : float
        |SMD| above which a covariate counts as imbalanced in `Balance.reading`.

    Returns
    -------
    Balance

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"t": [1, 1, 0, 0], "x": [1.0, 3.0, 0.0, 2.0], "g": ["a", "b", "a", "a"]})
    >>> bal = compute_balance(df, treatment="t", covariates=["x", "g"], weights=None)
    >>> bal.frame[["covariate", "level", "smd"]]
      covariate level       smd
    0         x  None  0.707107
    1         g     a -1.414214
    2         g     b  1.414214
    """
    check_choice("estimand", estimand, BALANCE_ESTIMANDS)
    if not threshold > 0:
        raise ValueError(f"threshold={threshold!r} must be a positive number")
    t = _treated(data, treatment)
    covariates = _check_covariates(data, treatment, covariates)
    indicators = _indicators(data, covariates)
    rows = _rows(indicators, t, np.ones(len(t)), estimand, adjusted=False)
    ess1 = ess0 = None
    if weights is not None:
        w = np.asarray(weights, dtype=float).ravel()
        if w.shape != t.shape:
            raise ValueError(
                f"weights has {w.size} values but data has {t.size} rows; they must match"
            )
        if not (np.isfinite(w).all() and (w >= 0).all()):
            raise ValueError("weights must be finite and non-negative")
        if w[t == 1].sum() <= 0 or w[t == 0].sum() <= 0:
            raise ValueError(
                "every weight in one group is zero; the weights cannot balance anything"
            )
        rows += _rows(indicators, t, w, estimand, adjusted=True)
        ess1, ess0 = _ess(w[t == 1]), _ess(w[t == 0])
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    frame["level"] = frame["level"].astype(object).where(frame["level"].notna(), None)
    return Balance(
        frame=frame,
        treatment=treatment,
        estimand=estimand,
        method="weights" if weights is not None else "difference",
        n_treated=int(t.sum()),
        n_control=int(len(t) - t.sum()),
        ess_treated=ess1,
        ess_control=ess0,
        threshold=float(threshold),
    )


def balance_from_propensity(
    data: pd.DataFrame,
    *,
    treatment: str,
    covariates: Sequence[str],
    propensity: ArrayLike,
    method: str = "ipw",
    estimand: str = "ATE",
    threshold: float = THRESHOLD,
) -> Balance:
    """`balance_table` for propensity scores already estimated: the model is not fitted again.

    Pass the scores the estimates used (`lcstats.EffectSet.propensity`, or
    `propensity_scores`); the table is then the one `balance_table` gives for the same model.

    Parameters
    ----------
    data : DataFrame
        One row per learner, no missing values in the columns used.
    treatment : str
        0/1 treatment column.
    covariates : sequence of str
        Covariates shown in the table.
    propensity : array-like
        Each row's estimated chance of treatment.
    method : {"difference", "regression", "ipw", "aipw", "overlap"}
        See `balance_weights`.
    estimand : {"ATE", "ATT", "ATO"}
        ``ATO`` goes with ``overlap`` only.
    threshold : float
        |SMD| above which a covariate counts as imbalanced.

    Returns
    -------
    Balance

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(3)
    >>> x = rng.normal(size=1000)
    >>> df = pd.DataFrame({"t": (rng.random(1000) < 1 / (1 + np.exp(-x))).astype(int), "x": x})
    >>> e = propensity_scores(df, treatment="t", covariates=["x"])
    >>> bal = balance_from_propensity(df, treatment="t", covariates=["x"], propensity=e)
    >>> bal.frame.equals(balance_table(df, treatment="t", covariates=["x"]).frame)
    True
    """
    _check_estimand(method, estimand)
    t = _treated(data, treatment)
    if method == "difference":
        weights = np.ones(len(t))
    else:
        weights = weights_from_propensity(propensity, t, estimand=estimand)
    bal = compute_balance(
        data,
        treatment=treatment,
        covariates=covariates,
        weights=weights,
        estimand=estimand,
        threshold=threshold,
    )
    return replace(bal, method=method)


def balance_table(
    data: pd.DataFrame,
    *,
    treatment: str,
    covariates: Sequence[str],
    method: str = "ipw",
    estimand: str = "ATE",
    threshold: float = THRESHOLD,
) -> Balance:
    """Balance before (unweighted) and after the weighting a method implies.

    Parameters
    ----------
    data : DataFrame
        One row per learner, no missing values in the columns used.
    treatment : str
        0/1 treatment column.
    covariates : sequence of str
        Covariates of the propensity model, all shown in the table.
    method : {"difference", "regression", "ipw", "aipw", "overlap"}
        See `balance_weights` (``aipw`` and ``regression`` are shown with IPW weights).
    estimand : {"ATE", "ATT", "ATO"}
        ``ATO`` goes with ``overlap`` only.
    threshold : float
        |SMD| above which a covariate counts as imbalanced.

    Returns
    -------
    Balance

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(3)
    >>> x = rng.normal(size=1000)
    >>> df = pd.DataFrame({"t": (rng.random(1000) < 1 / (1 + np.exp(-x))).astype(int), "x": x})
    >>> bal = balance_table(df, treatment="t", covariates=["x"])
    >>> bal.reading()
    'After weighting, every covariate is within 0.1 SD between the two groups (largest |SMD| 0.01, 0.80 before weighting).'
    >>> bal.wide()[["covariate", "smd_before", "smd_after"]].round(3)
      covariate  smd_before  smd_after
    0         x       0.796      0.006
    """
    _check_estimand(method, estimand)
    weights = balance_weights(
        data, treatment=treatment, covariates=covariates, method=method, estimand=estimand
    )
    bal = compute_balance(
        data,
        treatment=treatment,
        covariates=covariates,
        weights=weights,
        estimand=estimand,
        threshold=threshold,
    )
    return replace(bal, method=method)


# --------------------------------------------------------------------------------------------
# overlap and trimming


@dataclass(frozen=True)
class Overlap:
    """Range of the propensity score in each group and the share of learners at its extremes."""

    min_treated: float
    max_treated: float
    min_control: float
    max_control: float
    n_treated: int
    n_control: int
    share_outside: float
    share_outside_treated: float
    share_outside_control: float
    n_outside: int
    bounds: tuple[float, float]
    max_share: float
    poor: bool
    warning: str

    def to_frame(self) -> pd.DataFrame:
        """Tidy frame: one row per group."""
        return pd.DataFrame(
            {
                "group": ["treated", "control"],
                "n": [self.n_treated, self.n_control],
                "propensity_min": [self.min_treated, self.min_control],
                "propensity_max": [self.max_treated, self.max_control],
                "share_outside": [self.share_outside_treated, self.share_outside_control],
            }
        )

    def reading(self) -> str:
        """One plain-language sentence: the warning when overlap is poor."""
        if self.poor:
            return self.warning
        lo, hi = self.bounds
        return (
            f"Coached and uncoached learners overlap well: estimated chances of being coached run "
            f"from {self.min_treated:.2g} to {self.max_treated:.2g} among the coached and from "
            f"{self.min_control:.2g} to {self.max_control:.2g} among the others, and "
            f"{100 * self.share_outside:.1f}% of learners are outside [{lo:g}, {hi:g}]."
        )

    def summary(self) -> str:
        """Return a short text summary (not printed)."""
        table = self.to_frame().to_string(index=False, float_format="{:.3f}".format)
        return f"Propensity score overlap (bounds {self.bounds[0]:g}-{self.bounds[1]:g})\n{table}\n{self.reading()}"

    def __repr__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        return summary_html(self.reading(), details={"Chances of being coached": self.to_frame()})


def overlap_summary(
    propensity: ArrayLike,
    treated: ArrayLike,
    *,
    bounds: tuple[float, float] = (0.05, 0.95),
    max_share: float = 0.05,
) -> Overlap:
    """Summarise overlap of the propensity score between treated and comparison learners.

    Parameters
    ----------
    propensity : array-like
        Estimated propensity scores (for example from `propensity_scores`).
    treated : array-like
        0/1 treatment indicator.
    bounds : (float, float)
        Scores outside ``[lower, upper]`` count as extreme.
    max_share : float
        Overlap is ``poor`` when more than this share of learners is outside the bounds.

    Returns
    -------
    Overlap

    Examples
    --------
    >>> ov = overlap_summary([0.02, 0.3, 0.6, 0.2, 0.5, 0.7], [1, 1, 1, 0, 0, 0])
    >>> ov.poor, round(ov.share_outside, 3)
    (True, 0.167)
    """
    e, t = _as_propensity(propensity, treated)
    lo, hi = _check_bounds(bounds)
    if not 0 <= max_share < 1:
        raise ValueError(f"max_share={max_share!r} must be between 0 and 1")
    outside = (e < lo) | (e > hi)
    e1, e0 = e[t == 1], e[t == 0]
    share = float(outside.mean())
    poor = share > max_share
    warning = ""
    if poor:
        warning = (
            f"Limited overlap: {100 * share:.1f}% of learners ({int(outside.sum()):,} of {e.size:,}) "
            f"have an estimated chance of being coached below {lo:g} or above {hi:g}, so some "
            "learners have almost no comparable counterpart in the other group and weighted "
            "estimates lean on a few of them. Consider trimming to those bounds (trim_mask) or "
            "overlap weights, and report the population the estimate then describes."
        )
    return Overlap(
        min_treated=float(e1.min()),
        max_treated=float(e1.max()),
        min_control=float(e0.min()),
        max_control=float(e0.max()),
        n_treated=int(e1.size),
        n_control=int(e0.size),
        share_outside=share,
        share_outside_treated=float(outside[t == 1].mean()),
        share_outside_control=float(outside[t == 0].mean()),
        n_outside=int(outside.sum()),
        bounds=(lo, hi),
        max_share=float(max_share),
        poor=poor,
        warning=warning,
    )


def trim_mask(
    propensity: ArrayLike, *, bounds: tuple[float, float] = (0.05, 0.95)
) -> tuple[np.ndarray, int]:
    """Keep learners whose propensity score lies within fixed bounds (Crump et al. 2009 style).

    Crump et al. derive an optimal cut-off (about 0.1 / 0.9 in many applications); fixed bounds
    are the common simple version. Trimming changes the population the estimate describes.

    Parameters
    ----------
    propensity : array-like
        Estimated propensity scores.
    bounds : (float, float)
        Keep scores in ``[lower, upper]`` (inclusive).

    Returns
    -------
    keep : numpy.ndarray of bool
        True for learners to keep.
    n_dropped : int
        Number of learners outside the bounds.

    Examples
    --------
    >>> keep, dropped = trim_mask([0.01, 0.2, 0.5, 0.97])
    >>> keep, dropped
    (array([False,  True,  True, False]), 2)
    """
    e, _ = _as_propensity(propensity)
    lo, hi = _check_bounds(bounds)
    keep = (e >= lo) & (e <= hi)
    return keep, int((~keep).sum())
