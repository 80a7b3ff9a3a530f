"""Sensitivity of an effect estimate to unmeasured confounding: E-values.

The E-value (VanderWeele & Ding 2017, Annals of Internal Medicine 167:268-274) is the minimum
strength of association, on the risk-ratio scale, that an unmeasured confounder would need to
have with both the treatment and the outcome, conditional on the measured covariates, to fully
explain away an observed association. For a risk ratio ``RR >= 1`` it is
``RR + sqrt(RR (RR - 1))``; a protective ``RR < 1`` is inverted first. The E-value for the
confidence interval uses the limit closer to the null, and is 1 when the interval includes the
null (no confounding at all is needed to move it there).

Continuous outcomes go through a standardised mean difference ``d`` and the approximation
``RR = exp(0.91 d)`` (VanderWeele 2017; R package ``EValue``, ``evalues.MD`` and
``evalues.OLS``). The formulas follow the current ``EValue`` R source (``threshold``,
``evalues.RR``, ``evalues.MD``); tests reproduce its documented examples.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from lcstats.core.display import summary_html
from lcstats.estimation.effects import EffectEstimate

__all__ = [
    "EValue",
    "control_sd",
    "evalue_from_estimate",
    "evalue_md",
    "evalue_rr",
]

MD_TO_LOG_RR = 0.91  # log RR per SD of a standardised mean difference (VanderWeele 2017)
MD_CI_FACTOR = 1.78  # 0.91 * 1.96, as in EValue::evalues.MD

TREATMENT_WORDS = {"coached": "coaching", "manager_coached": "coaching of the line manager"}
OUTCOME_WORDS = {"follow_through": "follow-through", "skills_gap": "the skills gap"}


def _threshold(rr: float) -> float:
    """E-value of a risk ratio: ``RR + sqrt(RR (RR - 1))`` after inverting ``RR < 1``."""
    x = 1 / rr if rr < 1 else rr
    return x + math.sqrt(x * (x - 1))


@dataclass(frozen=True)
class EValue:
    """E-values for a point estimate and its confidence interval.

    ``point`` and ``ci_limit`` are E-values (``ci_limit`` is 1 when the interval includes no
    effect, None when no interval was given); ``rr`` and ``rr_ci_limit`` are the risk ratios they
    were computed from (``rr_ci_limit`` is the interval limit closer to 1). ``scale`` says what
    ``estimate``, ``ci_low`` and ``ci_high`` are: ``"risk_ratio"`` or ``"standardised_difference"``.
    """

    point: float
    ci_limit: float | None
    rr: float
    rr_ci_limit: float | None
    rr_low: float | None = None
    rr_high: float | None = None
    scale: str = "risk_ratio"
    estimate: float = math.nan
    ci_low: float | None = None
    ci_high: float | None = None
    treatment: str | None = None
    outcome: str | None = None

    COLUMNS = (
        "scale",
        "estimate",
        "ci_low",
        "ci_high",
        "rr",
        "rr_low",
        "rr_high",
        "rr_ci_limit",
        "evalue_point",
        "evalue_ci",
    )

    @property
    def includes_null(self) -> bool:
        """Whether the confidence interval includes no effect (risk ratio 1)."""
        return self.ci_limit is not None and self.ci_limit == 1.0

    def to_frame(self) -> pd.DataFrame:
        """Return a one-row tidy frame with snake_case columns."""
        d = asdict(self)
        d["evalue_point"], d["evalue_ci"] = self.point, self.ci_limit
        return pd.DataFrame([{k: d[k] for k in self.COLUMNS}])

    def reading(self) -> str:
        """One plain-language sentence on how strong unmeasured confounding would need to be."""
        treat = TREATMENT_WORDS.get(self.treatment or "coached", f"'{self.treatment}'")
        outcome = OUTCOME_WORDS.get(self.outcome or "", "the outcome")
        if self.point == 1.0:
            return (
                "The estimate is no effect at all (risk ratio 1), so there is nothing for "
                "unmeasured confounding to explain away."
            )
        if self.includes_null:
            return (
                "The interval already includes no effect, so no unmeasured confounding is needed "
                "to explain the result away; an unmeasured factor associated with both "
                f"{treat} and {outcome} by a risk ratio of {self.point:.2f} each would also move "
                "the point estimate itself to no effect."
            )
        sentence = (
            f"An unmeasured factor would need to be associated with both {treat} and {outcome} "
            f"by a risk ratio of at least {self.point:.2f} each to explain away the estimate"
        )
        if self.ci_limit is None:
            return sentence + "; weaker confounding could not."
        return sentence + f" ({self.ci_limit:.2f} to move the interval to include no effect)."

    def summary(self) -> str:
        """Return a short text summary (not printed)."""
        ci = "" if self.ci_limit is None else f", for the interval limit {self.ci_limit:.3f}"
        rr_ci = ""
        if self.rr_low is not None and self.rr_high is not None:
            rr_ci = f" [{self.rr_low:.4g}, {self.rr_high:.4g}]"
        return "\n".join(
            [
                f"E-value for the estimate {self.point:.3f}{ci}",
                f"  risk ratio {self.rr:.4g}{rr_ci} (from a {self.scale.replace('_', ' ')})",
                f"  {self.reading()}",
            ]
        )

    def __repr__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        return summary_html(self.reading(), details={"E-values": self.to_frame()})


def _check_positive(name: str, value: float | None) -> float | None:
    """A positive finite risk ratio, or None."""
    if value is None:
        return None
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name}={value!r} must be a positive finite risk ratio")
    return value


def evalue_rr(rr: float, lo: float | None = None, hi: float | None = None) -> EValue:
    """E-values for a risk ratio and, optionally, its confidence interval.

    Parameters
    ----------
    rr : float
        Risk ratio (treated over untreated); below 1 for a protective effect.
    lo, hi : float, optional
        Confidence limits. Only the limit closer to 1 is used (``lo`` when ``rr > 1``, ``hi``
        when ``rr < 1``); its E-value is 1 when the interval includes 1.

    Returns
    -------
    EValue

    Examples
    --------
    Reproduces ``EValue::evalues.RR(est = 10.73, lo = 8.02, hi = 14.36)`` (package README):

    >>> ev = evalue_rr(10.73, 8.02, 14.36)
    >>> round(ev.point, 5), round(ev.ci_limit, 5)
    (20.94777, 15.52336)
    """
    rr = _check_positive("rr", rr)
    lo, hi = _check_positive("lo", lo), _check_positive("hi", hi)
    if (lo is not None and lo > rr) or (hi is not None and hi < rr):
        raise ValueError(f"the point estimate {rr} must lie inside the interval [{lo}, {hi}]")
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(f"lo={lo} must not exceed hi={hi}")
    limit = lo if rr > 1 else hi if rr < 1 else None
    if rr == 1:
        ci_limit: float | None = 1.0 if (lo is not None or hi is not None) else None
    elif limit is None:
        ci_limit = None
    elif (rr > 1 and limit <= 1) or (rr < 1 and limit >= 1):
        ci_limit = 1.0
    else:
        ci_limit = _threshold(limit)
    return EValue(
        point=_threshold(rr),
        ci_limit=ci_limit,
        rr=rr,
        rr_ci_limit=limit,
        rr_low=lo,
        rr_high=hi,
        scale="risk_ratio",
        estimate=rr,
        ci_low=lo,
        ci_high=hi,
    )


def evalue_md(d: float, se_d: float | None = None) -> EValue:
    """E-values for a standardised mean difference, via ``RR = exp(0.91 d)``.

    The interval is ``exp(0.91 d -/+ 1.78 se_d)`` (95%), exactly as ``EValue::evalues.MD``.

    Parameters
    ----------
    d : float
        Standardised mean difference (mean difference / outcome SD).
    se_d : float, optional
        Its standard error.

    Returns
    -------
    EValue

    Examples
    --------
    Reproduces the ``EValue::evalues.MD`` help example ``evalues.MD(0.5, 0.25)``:

    >>> ev = evalue_md(0.5, 0.25)
    >>> round(ev.point, 6), round(ev.ci_limit, 6)
    (2.529142, 1.110803)
    """
    d = float(d)
    if not math.isfinite(d):
        raise ValueError(f"d={d!r} must be a finite number")
    if se_d is None:
        ev = evalue_rr(math.exp(MD_TO_LOG_RR * d))
        return _with_scale(ev, d, None, None)
    se_d = float(se_d)
    if not (math.isfinite(se_d) and se_d >= 0):
        raise ValueError(f"se_d={se_d!r} must be a non-negative finite number")
    lo = math.exp(MD_TO_LOG_RR * d - MD_CI_FACTOR * se_d)
    hi = math.exp(MD_TO_LOG_RR * d + MD_CI_FACTOR * se_d)
    ev = evalue_rr(math.exp(MD_TO_LOG_RR * d), lo, hi)
    return _with_scale(
        ev, d, d - MD_CI_FACTOR / MD_TO_LOG_RR * se_d, d + MD_CI_FACTOR / MD_TO_LOG_RR * se_d
    )


def _with_scale(ev: EValue, d: float, d_lo: float | None, d_hi: float | None) -> EValue:
    """The E-value restated for an effect on the standardised-difference scale."""
    return EValue(
        point=ev.point,
        ci_limit=ev.ci_limit,
        rr=ev.rr,
        rr_ci_limit=ev.rr_ci_limit,
        rr_low=ev.rr_low,
        rr_high=ev.rr_high,
        scale="standardised_difference",
        estimate=d,
        ci_low=d_lo,
        ci_high=d_hi,
    )


def control_sd(data: pd.DataFrame, *, outcome: str, treatment: str) -> float:
    """Standard deviation of an outcome among the untreated (comparison) learners.

    The scale used to standardise an effect for `evalue_from_estimate`.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"y": [0.2, 0.4, 0.6, 0.9], "t": [0, 0, 0, 1]})
    >>> round(control_sd(df, outcome="y", treatment="t"), 3)
    0.2
    """
    for col in (outcome, treatment):
        if col not in data.columns:
            raise ValueError(
                f"column '{col}' not in data; have {', '.join(map(str, data.columns))}"
            )
    t = pd.to_numeric(data[treatment], errors="coerce")
    y = pd.to_numeric(data[outcome], errors="coerce")[t == 0].dropna()
    if len(y) < 2:
        raise ValueError(f"fewer than two comparison learners with '{outcome}': no SD")
    return float(np.std(y.to_numpy(dtype=float), ddof=1))


def evalue_from_estimate(estimate: EffectEstimate, *, outcome_sd: float) -> EValue:
    """E-values for an `EffectEstimate` of a continuous or proportion outcome.

    The effect is standardised, ``d = estimate / outcome_sd``, and converted with
    ``RR = exp(0.91 d)`` (the route of ``EValue::evalues.OLS`` and ``evalues.MD``). For
    ``follow_through``, a proportion per learner rather than a yes/no outcome, the same
    standardised-difference route is used; pass the outcome's SD among the comparison (uncoached)
    learners (`control_sd`), and do the same for ``skills_gap`` for consistency.

    The interval is the estimate's own ``[ci_low, ci_high]`` divided by ``outcome_sd``, so the
    E-value for the interval is 1 exactly when the reported interval includes no effect,
    whatever its confidence level or distribution (cluster-robust intervals use a t
    distribution). For a normal 95% interval this equals ``evalues.OLS(est, se, sd)`` except
    that R rounds 0.91 x 1.96 = 1.784 to 1.78.

    Parameters
    ----------
    estimate : EffectEstimate
        Result of `lcstats.estimate_effect`.
    outcome_sd : float
        Standard deviation of the outcome used to standardise the effect.

    Returns
    -------
    EValue

    Examples
    --------
    >>> from lcstats.estimation.effects import EffectEstimate
    >>> est = EffectEstimate(outcome="skills_gap", treatment="coached", estimand="ATE",
    ...     method="aipw", estimate=-0.3, std_error=0.05, ci_low=-0.398, ci_high=-0.202,
    ...     p_value=1e-9, n_treated=400, n_control=600)
    >>> ev = evalue_from_estimate(est, outcome_sd=0.6)
    >>> round(ev.point, 3), round(ev.ci_limit, 3)
    (2.529, 2.056)
    >>> ev.reading()
    'An unmeasured factor would need to be associated with both coaching and the skills gap by a risk ratio of at least 2.53 each to explain away the estimate (2.06 to move the interval to include no effect).'
    """
    sd = float(outcome_sd)
    if not (math.isfinite(sd) and sd > 0):
        raise ValueError(f"outcome_sd={outcome_sd!r} must be a positive number")
    d = estimate.estimate / sd
    d_lo, d_hi = estimate.ci_low / sd, estimate.ci_high / sd
    if not all(math.isfinite(v) for v in (d, d_lo, d_hi)):
        raise ValueError("the estimate and its interval must be finite numbers")
    ev = evalue_rr(
        math.exp(MD_TO_LOG_RR * d),
        math.exp(MD_TO_LOG_RR * d_lo),
        math.exp(MD_TO_LOG_RR * d_hi),
    )
    return EValue(
        point=ev.point,
        ci_limit=ev.ci_limit,
        rr=ev.rr,
        rr_ci_limit=ev.rr_ci_limit,
        rr_low=ev.rr_low,
        rr_high=ev.rr_high,
        scale="standardised_difference",
        estimate=d,
        ci_low=d_lo,
        ci_high=d_hi,
        treatment=estimate.treatment,
        outcome=estimate.outcome,
    )
