"""The standard evaluation: each outcome x each method, on the learners each outcome can use;
and a binary outcome's risk difference and risk ratio (`estimate_binary_effect`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from lcstats.core.display import summary_html
from lcstats.core.errors import EstimationError
from lcstats.core.options import OUTCOMES
from lcstats.core.threads import side_by_side, workers_for
from lcstats.estimation.effects import (
    EffectEstimate,
    _fit_methods,
    _reference,
    _Request,
    _variance_codes,
    format_p,
)
from lcstats.estimation.sensitivity import EValue, evalue_rr
from lcstats.outcomes.learner import AnalysisSample, LearnerOutcomes, analysis_sample

BASELINE = {"skills_gap": ("skills_gap_pre",)}  # baseline of an outcome, adjusted for too


def outcome_covariates(outcome: str, covariates: Sequence[str]) -> tuple[str, ...]:
    """The covariates used for an outcome: the chosen ones plus the outcome's own baseline."""
    return tuple(covariates) + tuple(c for c in BASELINE.get(outcome, ()) if c not in covariates)


@dataclass(frozen=True)
class EffectSet:
    """All estimates of one evaluation, and the analysis sample behind each outcome."""

    estimates: tuple[EffectEstimate, ...]
    samples: dict[str, AnalysisSample]
    # the propensity scores the adjusted methods used, by outcome (analysis sample before any
    # trimming), so that diagnostics reuse the model instead of fitting it again
    propensity: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    def to_frame(self) -> pd.DataFrame:
        """Tidy frame: one row per outcome, treatment, estimand and method."""
        return pd.concat([e.to_frame() for e in self.estimates], ignore_index=True)

    def get(self, outcome: str, method: str, treatment: str = "coached") -> EffectEstimate:
        """Return the estimate for an outcome and method."""
        for e in self.estimates:
            if (e.outcome, e.method, e.treatment) == (outcome, method, treatment):
                return e
        raise KeyError((outcome, method, treatment))

    def __repr__(self) -> str:
        outcomes = ", ".join(dict.fromkeys(e.outcome for e in self.estimates))
        methods = ", ".join(dict.fromkeys(e.method for e in self.estimates))
        return f"EffectSet({len(self.estimates)} estimates; outcomes {outcomes}; methods {methods})"

    def _repr_html_(self) -> str:
        last = {e.outcome: e for e in self.estimates}  # per outcome, the last method (aipw)
        lines = [f"{e.method}: {e.reading()}" for e in last.values()]
        samples = pd.DataFrame({o: s.as_dict() for o, s in self.samples.items()}).T
        cols = [
            "outcome",
            "method",
            "estimand",
            "estimate",
            "ci_low",
            "ci_high",
            "p_value",
            "n_treated",
            "n_control",
        ]
        return summary_html(
            f"{len(self.estimates)} estimates of the effect of coaching",
            lines,
            {"Every estimate": self.to_frame()[cols], "Learners used, by outcome": samples},
        )


def estimate_effects(
    outcomes: LearnerOutcomes,
    *,
    treatment: str = "coached",
    covariates: Sequence[str] = (),
    methods: Sequence[str] = ("difference", "regression", "ipw", "aipw"),
    estimand: str = "ATE",
    cluster: str | None = None,
    alpha: float = 0.05,
    trim: Sequence[float] | None = None,
    outcome_ids: Sequence[str] = OUTCOMES,
    weights: str = "normalised",
    small_sample: bool = True,
) -> EffectSet:
    """Estimate the effect of `treatment` on every outcome with every method.

    Each outcome uses the learners that have it and every covariate (exclusions are counted in
    the returned samples); the skills gap also adjusts for the learner's pre-programme gap.
    `trim` (low, high) leaves out learners with extreme estimated chances of treatment in the
    adjusted methods, `weights` sets how IPW and AIPW scale their weights and `small_sample`
    whether their standard errors are corrected for leverage (see `estimate_effect`). The
    methods of one outcome share its design matrix and nuisance models: each estimate equals
    `estimate_effect` with that method alone. From 200,000 learners the outcomes are estimated
    side by side on the machine's cores (`lcstats.core.threads`).
    """

    def fit(outcome: str) -> tuple[AnalysisSample, list]:
        covs = outcome_covariates(outcome, covariates)
        sample = analysis_sample(
            outcomes, outcome=outcome, treatment=treatment, covariates=covs, cluster=cluster
        )
        request = _Request(
            outcome,
            treatment,
            covs,
            estimand,
            cluster,
            alpha,
            tuple(trim) if trim is not None else None,
            weights,
            small_sample,
        )
        return sample, _fit_methods(sample.data, methods=methods, req=request)

    found = side_by_side(fit, list(outcome_ids), workers=workers_for(len(outcomes.data)))
    estimates: list[EffectEstimate] = []
    samples, propensity = {}, {}
    for outcome, (sample, fitted) in zip(outcome_ids, found, strict=True):
        samples[outcome] = sample
        estimates += [f.estimate for f in fitted]
        scores = fitted[-1].design.fitted_scores() if fitted else None
        if scores is not None:
            propensity[outcome] = scores
    return EffectSet(tuple(estimates), samples, propensity)


# ----------------------------------------------------------------------------------------------
# A binary outcome: risk difference and risk ratio

FOLLOWED_THROUGH = "followed_through"
BINARY_COLUMNS = (
    "outcome",
    "treatment",
    "estimand",
    "method",
    "measure",
    "estimate",
    "std_error",
    "log_std_error",
    "ci_low",
    "ci_high",
    "p_value",
    "risk_treated",
    "risk_control",
    "n_treated",
    "n_control",
    "evalue_point",
    "evalue_ci",
)


def followed_through(
    data: LearnerOutcomes | pd.DataFrame, *, share: float = 0.8, column: str = "follow_through"
) -> pd.Series:
    """Whether each learner followed through: at least ``share`` of their action items on time.

    Parameters
    ----------
    data : LearnerOutcomes or DataFrame
        Learner outcomes with the share of items done on time (``follow_through``).
    share : float
        The threshold (``followed_through_share`` of the parameters, default 0.8); a learner
        exactly at it counts as having followed through (4 of 5 items at 0.8).
    column : str
        The column holding each learner's share of items on time.

    Returns
    -------
    pandas.Series
        ``followed_through``: 1.0 or 0.0, missing where ``column`` is missing (no items due).

    Examples
    --------
    >>> import pandas as pd
    >>> followed_through(pd.DataFrame({"follow_through": [0.8, 0.75, None, 1.0]})).tolist()
    [1.0, 0.0, nan, 1.0]
    """
    frame = data.data if isinstance(data, LearnerOutcomes) else data
    if not 0 < share <= 1:
        raise ValueError(f"share={share!r} must be between 0 and 1 (0.8: 80% of items on time)")
    if column not in frame.columns:
        raise ValueError(
            f"column '{column}' not in data; have {', '.join(map(str, frame.columns))}"
        )
    values = pd.to_numeric(frame[column], errors="coerce")
    # shares are ratios of small counts: 1e-9 absorbs the rounding of k / n against a decimal
    flag = (values >= share - 1e-9).astype(float).where(values.notna())
    return flag.rename(FOLLOWED_THROUGH)


@dataclass(frozen=True)
class BinaryEffect:
    """The effect of a treatment on a 0/1 outcome as a risk difference and a risk ratio.

    ``risk_treated`` and ``risk_control`` are the two arm means of the estimator: for the ATE,
    the share of learners with the outcome had every learner been treated and had none been;
    for the ATT, the treated learners' share and what it would have been without treatment.
    ``risk_difference`` is their difference as an `EffectEstimate` (proportion points). The
    risk ratio is their ratio; its interval and p-value come from the log risk ratio, whose
    standard error (``log_std_error``) is the delta method applied to the same influence values
    (clustered alike). ``evalue`` holds the E-values on the risk-ratio scale.
    """

    risk_difference: EffectEstimate
    risk_treated: float
    risk_control: float
    risk_ratio: float
    rr_ci_low: float
    rr_ci_high: float
    log_std_error: float
    rr_p_value: float
    evalue: EValue
    notes: tuple[str, ...] = ()

    def to_frame(self) -> pd.DataFrame:
        """Tidy frame: one row for the risk difference and one for the risk ratio.

        ``std_error`` is the risk difference's; ``log_std_error`` the log risk ratio's (the
        scale on which the risk ratio's interval is built).
        """
        rd = self.risk_difference
        common = {
            "outcome": rd.outcome,
            "treatment": rd.treatment,
            "estimand": rd.estimand,
            "method": rd.method,
            "risk_treated": self.risk_treated,
            "risk_control": self.risk_control,
            "n_treated": rd.n_treated,
            "n_control": rd.n_control,
            "evalue_point": self.evalue.point,
            "evalue_ci": self.evalue.ci_limit,
        }
        rows = [
            common
            | {"measure": "risk_difference", "estimate": rd.estimate, "std_error": rd.std_error}
            | {"log_std_error": math.nan, "ci_low": rd.ci_low, "ci_high": rd.ci_high}
            | {"p_value": rd.p_value},
            common
            | {"measure": "risk_ratio", "estimate": self.risk_ratio, "std_error": math.nan}
            | {"log_std_error": self.log_std_error, "ci_low": self.rr_ci_low}
            | {"ci_high": self.rr_ci_high, "p_value": self.rr_p_value},
        ]
        return pd.DataFrame(rows, columns=list(BINARY_COLUMNS))

    def reading(self) -> str:
        """Plain language: the two shares, the difference and ratio, and the E-value."""
        rd = self.risk_difference
        who = " among the learners who were coached" if rd.estimand == "ATT" else ""
        shares = (
            f"{100 * self.risk_treated:.0f}% with coaching against {100 * self.risk_control:.0f}% "
            f"without{who}"
        )
        ratio = (
            f"risk ratio {self.risk_ratio:.2f}, {rd.confidence}% interval "
            f"{self.rr_ci_low:.2f} to {self.rr_ci_high:.2f}"
        )
        what = "who followed through" if rd.outcome == FOLLOWED_THROUGH else f"with {rd.outcome}"
        return f"{rd.reading()} Share of learners {what}: {shares} ({ratio}). " + (
            self.evalue.reading()
        )

    def summary(self) -> str:
        """Return a short text summary (not printed)."""
        rd = self.risk_difference
        frame = self.to_frame().drop(columns=["outcome", "treatment", "estimand", "method"])
        return "\n".join(
            [
                f"{rd.estimand} of {rd.treatment} on {rd.outcome} ({rd.method}); p(RR = 1) = "
                f"{format_p(self.rr_p_value)}",
                frame.to_string(index=False, float_format="{:.4g}".format, na_rep="-"),
                self.reading(),
                *[f"note: {n}" for n in self.notes],
            ]
        )

    def __repr__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        return summary_html(self.reading(), self.notes, {"Estimates": self.to_frame()})


def _check_binary(data: pd.DataFrame, outcome: str) -> None:
    """Refuse an outcome column that is not coded 0/1 (missing values are refused later)."""
    if outcome not in data.columns:
        return  # the estimator names the missing column
    values = pd.to_numeric(data[outcome], errors="coerce").dropna()
    if not values.isin([0, 1]).all():
        raise ValueError(
            f"outcome column '{outcome}' must be coded 0/1 (learners with and without the "
            "outcome); for follow-through use lcstats.estimation.analysis.followed_through"
        )


def estimate_binary_effect(
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
) -> BinaryEffect:
    """Effect of a 0/1 treatment on a 0/1 outcome: risk difference, risk ratio and E-values.

    The same estimators as `lcstats.estimate_effect` (arguments as there) give the two arm means
    (risks) and their influence values. The risk difference is their difference; the risk ratio
    their ratio, with its interval ``exp(log RR -/+ c se)`` where ``se`` is the standard error of
    the log risk ratio from the influence values ``psi1 / r1 - psi0 / r0`` (delta method,
    clustered alike; ``c`` the normal or, clustered, t quantile). E-values are on the risk-ratio
    scale (`lcstats.estimation.sensitivity.evalue_rr`).

    Returns
    -------
    BinaryEffect

    Raises
    ------
    ValueError
        As `estimate_effect`, and an outcome not coded 0/1.
    EstimationError
        As `estimate_effect`, and a risk of 0 in an arm (no risk ratio).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(4)
    >>> x = rng.normal(size=2000)
    >>> t = (rng.random(2000) < 1 / (1 + np.exp(-x))).astype(int)
    >>> y = (rng.random(2000) < 1 / (1 + np.exp(-(-0.5 + 0.8 * t + x)))).astype(int)
    >>> df = pd.DataFrame({"y": y, "t": t, "x": x})
    >>> res = estimate_binary_effect(df, outcome="y", treatment="t", covariates=["x"])
    >>> res.to_frame()["measure"].tolist()
    ['risk_difference', 'risk_ratio']
    >>> bool(res.risk_ratio > 1 and res.rr_ci_low > 1 and res.evalue.point > res.risk_ratio)
    True
    """
    _check_binary(data, outcome)
    request = _Request(
        outcome, treatment, tuple(covariates), estimand, cluster, alpha, trim, weights, small_sample
    )
    fitted = _fit_methods(data, methods=(method,), req=request)[0]
    arms, rd = fitted.arms, fitted.estimate
    if min(arms.mu1, arms.mu0) <= 0:
        raise EstimationError(
            f"the estimated share with {outcome} is {arms.mu1:.3g} with and {arms.mu0:.3g} "
            "without treatment: a risk ratio needs both above 0 (use the risk difference)"
        )
    log_rr = math.log(arms.mu1 / arms.mu0)
    var, n_clusters = _variance_codes(
        arms.psi1 / arms.mu1 - arms.psi0 / arms.mu0, fitted.sample.cluster_codes
    )
    se = math.sqrt(var)
    dist, df, crit = _reference(alpha, n_clusters)
    low, high = math.exp(log_rr - crit * se), math.exp(log_rr + crit * se)
    ev = replace(evalue_rr(math.exp(log_rr), low, high), treatment=treatment, outcome=outcome)
    return BinaryEffect(
        risk_difference=rd,
        risk_treated=float(arms.mu1),
        risk_control=float(arms.mu0),
        risk_ratio=math.exp(log_rr),
        rr_ci_low=low,
        rr_ci_high=high,
        log_std_error=se,
        rr_p_value=float(2 * dist.sf(abs(log_rr) / se, *df)) if se > 0 else math.nan,
        evalue=ev,
        notes=rd.notes,
    )
