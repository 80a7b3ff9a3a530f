"""Dose-response: each band of coaching sessions (1-2, 3-5, 6+) against the uncoached (0 sessions).

Each band's effect is an `lcstats.estimation.effects.estimate_effect` fit on the band members plus
the uncoached learners. A band with too few learners (or whose effect cannot be estimated) stays
in the result with the reason in ``note``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from lcstats.estimation.analysis import outcome_covariates
from lcstats.estimation.effects import EffectEstimate, format_effect
from lcstats.estimation.heterogeneity.common import (
    ESTIMATE_COLUMNS,
    GROUP_COLUMNS,
    _check_common,
    _clear,
    _effect_row,
    _frame,
    _html,
    _interval,
    _outcome_name,
    _sample,
    _text,
    _tidy,
    _try_estimate,
)
from lcstats.outcomes.learner import LearnerOutcomes

DEFAULT_BANDS: tuple[tuple[int, int | None], ...] = ((0, 0), (1, 2), (3, 5), (6, None))
DOSE_COLUMNS = (
    *("outcome", "treatment", "band", "sessions_min", "sessions_max", "n_learners", "mean_outcome"),
    *ESTIMATE_COLUMNS,
    *GROUP_COLUMNS,
)

# Words for readings: which direction is good, and how to say "higher" and "lower".
BETTER_SIGN = {"follow_through": 1.0, "skills_gap": -1.0}
COMPARATIVES = {"follow_through": ("higher", "lower"), "skills_gap": ("larger", "smaller")}


@dataclass(frozen=True)
class DoseBand:
    """One band of coaching sessions: its learners, mean outcome and effect against 0 sessions.

    ``effect`` is None for the reference band (0 sessions) and for bands that could not be
    estimated; ``note`` then says why. ``mean_outcome`` is hidden (NaN) for bands with fewer
    learners than the minimum group size.
    """

    label: str
    low: int
    high: int | None
    n_learners: int
    mean_outcome: float
    effect: EffectEstimate | None
    n_treated: int
    n_control: int
    note: str = ""

    @property
    def is_reference(self) -> bool:
        """True for the 0-session band every other band is compared with."""
        return self.low == 0 and self.high == 0


@dataclass(frozen=True)
class DoseResponse:
    """Effects of each band of coaching sessions against the uncoached (0 sessions).

    Each band's effect is an ATE on the band members plus the uncoached learners: the average
    difference the band's amount of coaching would make for that population. Sessions are not
    assigned at random, so the estimate is causal only if the covariates capture why some
    learners attended more sessions than others.
    """

    outcome: str
    sessions: str
    method: str
    alpha: float
    bands: tuple[DoseBand, ...]
    covariates: tuple[str, ...] = ()
    cluster: str | None = None
    min_group_size: int = 5
    excluded: dict[str, int] = field(default_factory=dict)

    def band(self, label: str) -> DoseBand:
        """Return the band with this label (``"0"``, ``"1-2"``, ``"6+"``...)."""
        for b in self.bands:
            if b.label == label:
                return b
        raise KeyError(f"no band {label!r}; have {', '.join(b.label for b in self.bands)}")

    def to_frame(self) -> pd.DataFrame:
        """Tidy frame: one row per band (the 0-session reference first), snake_case columns."""
        rows = [
            _effect_row(
                b,
                outcome=self.outcome,
                treatment=self.sessions,
                band=b.label,
                sessions_min=b.low,
                sessions_max=math.inf if b.high is None else float(b.high),
                n_learners=b.n_learners,
                mean_outcome=b.mean_outcome,
            )
            for b in self.bands
        ]
        return _tidy(rows, DOSE_COLUMNS)

    def reading(self) -> str:
        """Plain-language finding: which band gained most, right for gains, losses and no effect."""
        pairs = [(b.label, b.effect) for b in self.bands if b.effect is not None]
        if not pairs:
            return (
                "No band of coaching sessions had enough learners to estimate its effect on "
                f"{_outcome_name(self.outcome)}."
            )
        skipped = [b.label for b in self.bands if b.effect is None and not b.is_reference]
        tail = (
            f" Not estimated (too few learners or no comparison): {', '.join(skipped)} sessions."
            if skipped
            else ""
        )
        better = BETTER_SIGN.get(self.outcome, 1.0)
        clear = [p for p in pairs if _clear(p[1])] or pairs  # rank the bands with clear effects
        best = max(clear, key=lambda p: better * p[1].estimate)
        worst = min(clear, key=lambda p: better * p[1].estimate)
        if _clear(best[1]) and better * best[1].estimate > 0:
            return (
                _gain_reading(self.outcome, pairs, best, among_clear=len(clear) < len(pairs)) + tail
            )
        if _clear(worst[1]) and better * worst[1].estimate < 0:
            return _loss_reading(self.outcome, pairs, worst) + tail
        return _null_reading(self.outcome, pairs) + tail

    def summary(self) -> str:
        """Return a short text summary (not printed)."""
        clus = f", clustered by {self.cluster}" if self.cluster else ""
        drop = ("sessions_min", "sessions_max", "std_error", "n_treated", "n_control")
        lines = [
            f"Dose-response: effect of {self.sessions} bands vs 0 on {self.outcome} "
            f"(ATE, {self.method}{clus})",
            _text(self.to_frame(), drop=("outcome", "treatment", *drop)),
            self.reading(),
        ]
        if self.excluded:
            lines.append(
                "excluded learners: " + ", ".join(f"{k}: {v}" for k, v in self.excluded.items())
            )
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        return _html(self.reading(), effects_by_band=self.to_frame())


# ----------------------------------------------------------------------------------------------
# The reading: a gain, a loss, or no clear effect

_Pair = tuple[str, EffectEstimate]  # a band's label and its effect


def _comparison(value: float, outcome: str) -> str:
    """'14.0 percentage points higher' / '0.30 points smaller' (right for either sign)."""
    up, down = COMPARATIVES.get(outcome, ("higher", "lower"))
    return f"{format_effect(abs(value), outcome, signed=False)} {up if value > 0 else down}"


def _others(outcome: str, pairs: Sequence[_Pair], skip: str) -> list[str]:
    """'1-2 sessions +4.0 percentage points (95% interval ...)' for each band but ``skip``."""
    return [
        f"{label} sessions {format_effect(est.estimate, outcome)} ({_interval(est)})"
        for label, est in pairs
        if label != skip
    ]


def _gain_reading(outcome: str, pairs: Sequence[_Pair], best: _Pair, *, among_clear: bool) -> str:
    """The band that gained most, the other bands, and whether their ranking is uncertain."""
    best_label, est = best
    rest = _others(outcome, pairs, best_label)
    more = f" Compared with uncoached learners: {'; '.join(rest)}." if rest else ""
    close = [
        label
        for label, other in pairs
        if label != best_label and est.ci_low <= other.estimate <= est.ci_high
    ]
    if close:
        names = close[0] if len(close) == 1 else f"{', '.join(close[:-1])} and {close[-1]}"
        verb = "estimate for" if len(close) == 1 else "estimates for"
        lies = "lies" if len(close) == 1 else "lie"
        more += (
            f" The {verb} {names} sessions {lies} within this interval, so the ranking of the "
            "bands is uncertain."
        )
    subject = _outcome_name(outcome).removeprefix("the ")
    return (
        f"{'Among the bands with a clear effect, l' if among_clear else 'L'}"
        f"earners with {best_label} coaching sessions {'gained most' if rest else 'gained'}: "
        f"their {subject} was {_comparison(est.estimate, outcome)} than uncoached "
        f"learners' ({_interval(est, size=True)}).{more}"
    )


def _loss_reading(outcome: str, pairs: Sequence[_Pair], worst: _Pair) -> str:
    """No band gained clearly, and one did clearly worse than the uncoached."""
    worst_label, est = worst
    rest = _others(outcome, pairs, worst_label)
    more = f" Other bands: {'; '.join(rest)}." if rest else ""
    subject = _outcome_name(outcome).removeprefix("the ")
    return (
        f"No band of coaching sessions showed a clear benefit, and learners with "
        f"{worst_label} sessions did worse: their {subject} was "
        f"{_comparison(est.estimate, outcome)} than uncoached learners' "
        f"({_interval(est, size=True)}).{more}"
    )


def _null_reading(outcome: str, pairs: Sequence[_Pair]) -> str:
    """No band showed a clear effect: the range of the estimates."""
    lo_label, lo = min(pairs, key=lambda p: p[1].estimate)
    hi_label, hi = max(pairs, key=lambda p: p[1].estimate)
    spread = (
        f"estimates ranged from {format_effect(lo.estimate, outcome)} ({lo_label} "
        f"sessions) to {format_effect(hi.estimate, outcome)} ({hi_label} sessions)"
        if len(pairs) > 1
        else f"the estimate was {format_effect(lo.estimate, outcome)} ({lo_label} sessions)"
    )
    return (
        f"No number of coaching sessions showed a clear effect on {_outcome_name(outcome)}: "
        f"{spread}, and every interval includes no effect."
    )


# ----------------------------------------------------------------------------------------------
# The estimation


def _band_label(low: int, high: int | None) -> str:
    """'0', '1-2' or '6+'."""
    if high is None:
        return f"{low}+"
    return f"{low}" if low == high else f"{low}-{high}"


def _check_bands(bands: Sequence[tuple[int, int | None]]) -> tuple[tuple[int, int | None], ...]:
    """The bands as (low, high) whole numbers: (0, 0) first, increasing, without overlaps."""
    out: list[tuple[int, int | None]] = []
    for band in bands:
        if not isinstance(band, tuple | list) or len(band) != 2:
            raise ValueError(f"each band must be a pair (low, high), got {band!r}")
        low, high = band
        if isinstance(low, bool) or not isinstance(low, int | np.integer) or low < 0:
            raise ValueError(f"band {band!r}: low must be a whole number >= 0")
        if high is not None and (
            isinstance(high, bool) or not isinstance(high, int | np.integer) or high < low
        ):
            raise ValueError(
                f"band {band!r}: high must be a whole number >= low, or None for 'and more'"
            )
        out.append((int(low), None if high is None else int(high)))
    if not out or out[0] != (0, 0):
        raise ValueError(
            f"bands={tuple(bands)!r}: the first band must be (0, 0), the uncoached learners every "
            "other band is compared with"
        )
    for (_, hi1), (lo2, _) in zip(out, out[1:], strict=False):
        if hi1 is None or lo2 <= hi1:
            raise ValueError(
                f"bands={tuple(bands)!r} must be in increasing order without overlaps "
                "(only the last band may be open-ended)"
            )
    return tuple(out)


def _session_counts(df: pd.DataFrame, sessions: str) -> pd.Series:
    """The sessions column as numbers (non-numbers and negative numbers refused)."""
    s = pd.to_numeric(df[sessions], errors="coerce")
    if s.isna().any():
        raise ValueError(f"column '{sessions}' must hold numbers of sessions")
    if (s < 0).any():
        raise ValueError(f"column '{sessions}' has negative numbers of sessions")
    return s


def _dose_band(
    df: pd.DataFrame,
    band: tuple[int, int | None],
    mask: np.ndarray,
    reference: np.ndarray,
    *,
    y: pd.Series,
    sessions: str,
    min_group_size: int,
    **fit,
) -> DoseBand:
    """One band's learners, mean outcome and effect against the reference (``fit``: of the effect)."""
    low, high = band
    label = _band_label(low, high)
    n = int(mask.sum())
    small = n < min_group_size
    mean = math.nan if small or n == 0 else float(y[mask].mean())
    if band == (0, 0):
        note = "reference: uncoached learners (0 sessions)"
        if small:
            note += f"; fewer than {min_group_size} learners (mean hidden)"
        return DoseBand(label, low, high, n, mean, None, 0, n, note)
    indicator = "_in_band"
    subset = df.loc[mask | reference].assign(**{indicator: mask[mask | reference].astype(int)})
    est, note = _try_estimate(
        subset, min_group_size=min_group_size, treatment=indicator, estimand="ATE", **fit
    )
    if est is not None:
        est = replace(est, treatment=sessions)
    elif small and n:
        note += " (mean hidden)"
    return DoseBand(label, low, high, n, mean, est, n, int(reference.sum()), note)


def dose_response(
    data: LearnerOutcomes | pd.DataFrame,
    *,
    outcome: str,
    sessions: str = "coaching_sessions",
    bands: Sequence[tuple[int, int | None]] = DEFAULT_BANDS,
    covariates: Sequence[str] = (),
    method: str = "aipw",
    cluster: str | None = None,
    alpha: float = 0.05,
    min_group_size: int = 5,
) -> DoseResponse:
    """Effect of each band of coaching sessions against no coaching (0 sessions).

    For every band other than ``(0, 0)`` the learners in the band (treated) and the uncoached
    learners (comparison) are analysed with `lcstats.estimate_effect` (ATE on that subset).

    Parameters
    ----------
    data : LearnerOutcomes or DataFrame
        One row per learner; learners missing the outcome, sessions, a covariate or the cluster
        are excluded and counted in ``excluded``.
    outcome : str
        Outcome column, e.g. ``"follow_through"``.
    sessions : str
        Column with the number of coaching sessions (0 for the uncoached).
    bands : sequence of (low, high)
        Inclusive session ranges in increasing order; the first must be ``(0, 0)`` (the reference)
        and ``high=None`` means "and more". Labels are ``"0"``, ``"1-2"``, ``"6+"``.
    covariates : sequence of str
        Confounders to adjust for (the skills gap also adjusts for its pre-programme value).
    method : {"difference", "regression", "ipw", "aipw"}
        Estimator passed to `estimate_effect`.
    cluster : str, optional
        Column for cluster-robust standard errors (team or manager).
    alpha : float
        1 - confidence level.
    min_group_size : int
        Bands with fewer learners than this (treated or comparison) are reported, not estimated;
        their mean outcome is hidden too.

    Returns
    -------
    DoseResponse

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(3)
    >>> s = rng.choice([0, 1, 2, 4, 7], size=600)
    >>> df = pd.DataFrame({"y": 0.05 * s + rng.normal(0, 0.2, 600), "coaching_sessions": s})
    >>> dose = dose_response(df, outcome="y", method="difference")
    >>> dose.to_frame()["band"].tolist()
    ['0', '1-2', '3-5', '6+']
    >>> bool(dose.band("6+").effect.estimate > dose.band("1-2").effect.estimate)
    True
    """
    _check_common(method, alpha, min_group_size)
    checked = _check_bands(bands)
    frame = _frame(data)
    covs = outcome_covariates(outcome, covariates)
    if sessions in covs or outcome in covs:
        raise ValueError("the outcome and the sessions column cannot also be covariates")
    df, excluded = _sample(
        frame,
        check=[outcome, sessions, *covs],
        outcome=outcome,
        treatment=sessions,
        covariates=covs,
        cluster=cluster,
    )
    s = _session_counts(df, sessions)
    members = {
        (low, high): ((s >= low) & (s <= (np.inf if high is None else high))).to_numpy()
        for low, high in checked
    }
    outside = int((~np.logical_or.reduce(list(members.values()))).sum())
    if outside:
        excluded[f"{sessions} in no band"] = outside
    y = pd.to_numeric(df[outcome], errors="coerce")
    fit = {"outcome": outcome, "method": method, "cluster": cluster, "alpha": alpha}
    dose_bands = tuple(
        _dose_band(
            df,
            band,
            members[band],
            members[(0, 0)],
            y=y,
            sessions=sessions,
            min_group_size=min_group_size,
            covariates=covs,
            **fit,
        )
        for band in checked
    )
    return DoseResponse(
        outcome=outcome,
        sessions=sessions,
        method=method,
        alpha=alpha,
        bands=dose_bands,
        covariates=covs if method != "difference" else (),
        cluster=cluster,
        min_group_size=min_group_size,
        excluded=excluded,
    )
