"""Roll-outs in waves: staggered difference-in-differences (Callaway and Sant'Anna 2021).

`staggered_att` estimates the group-time average effects ATT(g, t) of coaching on the units
(teams or learners) that started coaching in period g, at period t, by comparing how their outcome
changed since the base period with how it changed among units never coached (or not yet coached),
doubly robust as in Sant'Anna and Zhao (2020) when covariates are given. `StaggeredResult`
aggregates them (``simple``, ``group``, ``dynamic`` event study, ``calendar``), with a pre-trends
test, simultaneous bands for the event study, and a plain-language reading.

What moderndid does and what we do
----------------------------------
The engine is moderndid 0.2.0 (``att_gt``, ``aggte``), which reproduces R ``did`` to 6 decimals:
it gives the ATT(g, t), the aggregations, and the per-unit influence functions of every one of
them. Everything about uncertainty is computed here from those influence functions, because:

- moderndid's analytic standard errors cannot be clustered, and its clustered bootstrap weights
  cluster *means* (every team counts the same, whatever its size), unlike cluster-robust
  standard errors; clustering passed to ``att_gt`` is silently lost by ``aggte`` in some
  combinations, and it switches the pre-trends test off;
- the pre-trends test needs the clustered covariance, a small-sample reference distribution
  (Hotelling's T^2 as F) and fewer dimensions than R did's test of every pre-period cell, which
  rejects far too often with few teams per wave (see `_pre_trends`).

So: standard errors are ``sqrt(sum psi^2) / n`` (as R ``did``) without clustering and
``sqrt(G / (G - 1) * sum_c (sum_{i in c} psi_i)^2) / n`` with ``G`` clusters (as
`lcstats.estimation.effects`). Pointwise intervals use the normal distribution, or t with G - 1
degrees of freedom when clustered. Simultaneous bands use a multiplier bootstrap (Mammen weights
drawn per unit, or per cluster, from ``numpy.random.default_rng(seed)``) of the sup-t statistic,
in `StaggeredResult.aggregate` (``n_boot``, ``seed``: the same seed gives the same band); the
band is never narrower than the pointwise interval. The influence functions' rows are the units
sorted by cohort (never coached last) then unit; `_prepare` rebuilds that order and `_engine`
checks it against moderndid's own cohort vector. Without covariates the three methods are the
same difference in differences, and the engine runs its (fastest) outcome-regression form.

Data handling (before moderndid, so that nothing is dropped silently): units treated from the
first period (plus anticipation) are dropped, cohorts starting after the last period count as
never coached, units without an outcome in every period are dropped (moderndid would do the same);
each is counted in the result's ``notes``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, get_args

import numpy as np
import pandas as pd
from scipy import stats

from lcstats.core.display import summary_html
from lcstats.core.errors import EstimationError
from lcstats.core.options import OUTCOME_UNITS, check_choice
from lcstats.estimation.effects import (
    VERBS,
    EffectEstimate,
    _design,
    format_effect,
    format_interval,
    format_p,
)

__all__ = [
    "PreTrendTest",
    "StaggeredAggregate",
    "StaggeredResult",
    "rollout_study",
    "staggered_att",
    "summarise_rollout_study",
]

ControlGroup = Literal["never_treated", "not_yet_treated"]
DidMethod = Literal["dr", "ipw", "reg"]
BasePeriod = Literal["varying", "universal"]
Aggregation = Literal["simple", "group", "dynamic", "calendar"]
CONTROL_GROUPS: tuple[str, ...] = get_args(ControlGroup)
DID_METHODS: tuple[str, ...] = get_args(DidMethod)
BASE_PERIODS: tuple[str, ...] = get_args(BasePeriod)
AGGREGATIONS: tuple[str, ...] = get_args(Aggregation)
ENGINE_CONTROL = {"never_treated": "nevertreated", "not_yet_treated": "notyettreated"}
LEVEL_COLUMNS = ("level", "estimate", "std_error", "ci_low", "ci_high", "band_low", "band_high")
GT_COLUMNS = ("group", "time", "event_time", "post", "estimate", "std_error", "ci_low", "ci_high")
SE_TOLERANCE = math.sqrt(np.finfo(float).eps) * 10
BOOT_CHUNK = 2_000_000  # bootstrap weights drawn at a time (draws x clusters)


# ----------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class PreTrendTest:
    """Wald test that effects before coaching started are zero (parallel trends before coaching).

    ``scope`` says which estimates are tested: ``"event_time"``, the event-study estimates of the
    pre-periods that every wave has (``-L .. -1``, L = the shortest pre-period history of a
    wave), or ``"group_time"``, every pre-period ATT(g, t) (R did's pre-test). ``statistic`` is
    F with ``df`` (estimates tested) and ``df_denom`` (units, or clusters, minus ``df``) degrees
    of freedom: Hotelling's T^2 of the influence functions, a small-sample version of the chi2
    test whose statistic is ``wald`` (R did's). ``p_value`` is NaN when the test cannot be
    computed (no pre-period estimate, a singular covariance, too few clusters).
    """

    statistic: float
    df: int
    p_value: float
    df_denom: int | None = None
    wald: float = math.nan
    scope: str = "event_time"

    def reading(self, alpha: float = 0.05) -> str:
        """Half a sentence on what the test says."""
        if not math.isfinite(self.p_value):
            return "the pre-trend test could not be computed"
        p = format_p(self.p_value)
        if self.p_value >= alpha:
            return (
                "before coaching started the two groups moved alike as far as the data show "
                f"(pre-trend test p = {p})"
            )
        return (
            "but before coaching started the groups already moved differently "
            f"(pre-trend test p = {p}), so the comparison may be biased"
        )

    def _repr_html_(self) -> str:
        return summary_html(
            f"Pre-trend test: {self.reading()}",
            [f"F = {self.statistic:.3g} on {self.df} and {self.df_denom} degrees of freedom"],
        )

    def as_dict(self) -> dict:
        """The JSON form."""
        return {
            "statistic": self.statistic,
            "df": self.df,
            "df_denom": self.df_denom,
            "p_value": self.p_value,
            "wald": self.wald,
            "scope": self.scope,
        }


def _comparison(control_group: str) -> str:
    return "never coached" if control_group == "never_treated" else "not yet coached"


def _unit_noun(unit: str) -> str:
    return {"team_id": "teams", "learner_id": "learners"}.get(unit, "units")


NAMES = {"follow_through": "follow-through", "skills_gap": "the skills gap"}
SCOPE = {
    "simple": "",
    "group": " (averaged over the waves)",
    "dynamic": " (averaged over the periods since coaching started)",
    "calendar": " (averaged over calendar periods)",
}


@dataclass(frozen=True, eq=False, repr=False)  # repr: EffectEstimate's, the summary
class StaggeredAggregate(EffectEstimate):
    """An aggregation of the ATT(g, t): the fields of `EffectEstimate` plus a by-level frame.

    ``by_level`` has ``level, estimate, std_error, ci_low, ci_high, band_low, band_high`` (the
    simultaneous band over the levels) and ``post``; the level is the wave for ``group``, the
    event time (periods since coaching started) for ``dynamic``, the period for ``calendar``, and
    there are no levels for ``simple``.
    """

    aggregation: str = "simple"
    by_level: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=LEVEL_COLUMNS))
    band_critical_value: float = math.nan
    control_group: str = "never_treated"
    unit: str = "unit"
    pre_trend: PreTrendTest | None = None
    design: str = "staggered"

    def as_dict(self) -> dict:
        """The record for results.json: EffectEstimate's plus design, aggregation, control."""
        return super().as_dict() | {
            "design": self.design,
            "aggregation": self.aggregation,
            "control_group": self.control_group,
        }

    def reading(self) -> str:
        """One plain-language sentence."""
        up, down = VERBS.get(
            self.outcome, (f"increased {self.outcome}", f"decreased {self.outcome}")
        )
        what = NAMES.get(self.outcome, self.outcome)
        noun = _unit_noun(self.unit)
        who = f"in {noun} {'who' if noun == 'learners' else 'that'} started coaching"
        who += SCOPE[self.aggregation]
        versus = f"compared with {_unit_noun(self.unit)} {_comparison(self.control_group)}"
        if self.ci_low > 0 or self.ci_high < 0:
            verb = up if self.estimate > 0 else down
            size = format_effect(abs(self.estimate), self.outcome, signed=False)
            low, high = sorted((abs(self.ci_low), abs(self.ci_high)))  # of the size quoted
            ci = f"{self.confidence}% interval {format_interval(low, high, self.outcome)}"
            text = f"Coaching {verb} by about {size} ({ci}) {who}, {versus}"
        else:
            ci = f"{self.confidence}% interval {format_interval(self.ci_low, self.ci_high, self.outcome)}"
            text = (
                f"We cannot tell whether coaching changed {what} {who}, {versus}: the estimate is "
                f"{format_effect(self.estimate, self.outcome)}, but the {ci} includes no effect"
            )
        tail = f"; {self.pre_trend.reading(self.alpha)}" if self.pre_trend is not None else ""
        return text + tail + "."

    def _repr_html_(self) -> str:
        details = {} if self.by_level.empty else {"By level": self.by_level}
        return summary_html(self.reading(), details=details)

    def summary(self) -> str:
        """Short text: the overall effect and, if any, the by-level table (returned)."""
        clus = f", clustered by {self.cluster} ({self.n_clusters} clusters)" if self.cluster else ""
        noun = _unit_noun(self.unit)
        lines = [
            f"{self.aggregation} aggregation of the ATT(g, t) of {self.treatment} on {self.outcome} "
            f"({self.method}{clus})",
            f"  estimate {self.estimate:.4g}  std. error {self.std_error:.3g}  "
            f"{self.confidence}% CI [{self.ci_low:.4g}, {self.ci_high:.4g}]  p = {format_p(self.p_value)}",
            f"  {noun}: {self.n_treated} started coaching, {self.n_control} comparison "
            f"({_comparison(self.control_group)}); outcome in {self.units}",
            f"  {self.reading()}",
        ]
        if not self.by_level.empty:
            table = self.by_level.to_string(index=False, float_format="{:.4g}".format)
            lines += ["  " + row for row in table.splitlines()]
        return "\n".join(lines + [f"  note: {n}" for n in self.notes])


@dataclass(frozen=True, eq=False)
class StaggeredResult:
    """Group-time effects of a roll-out in waves and their aggregations.

    Attributes
    ----------
    att_gt : DataFrame
        ``group, time, event_time, post, estimate, std_error, ci_low, ci_high`` (pointwise).
    pre_trend : PreTrendTest
        The pre-trends test used in readings: the pre-period event-study estimates that every
        wave has are zero (F test).
    pre_trend_cells : PreTrendTest
        The same for every pre-period ATT(g, t), as R did's pre-test; its ``wald`` is R did's
        statistic. In small samples (few units per wave, many pre-periods) it rejects too often.
    n_treated, n_control : int
        Units that started coaching in the panel, and units that serve as comparison (never
        coached; with ``not_yet_treated`` also those of every wave but the first).
    """

    outcome: str
    unit: str
    att_gt: pd.DataFrame
    pre_trend: PreTrendTest
    pre_trend_cells: PreTrendTest
    control_group: str = "never_treated"
    estimation: str = "dr"
    base_period: str = "varying"
    anticipation: int = 0
    covariates: tuple[str, ...] = ()
    cluster: str | None = None
    n_clusters: int | None = None
    n_units: int = 0
    n_treated: int = 0
    n_control: int = 0
    alpha: float = 0.05
    notes: tuple[str, ...] = ()
    treatment: str = "coached"
    design: str = "staggered"
    method: str = "callaway_santanna"
    _fit: _Fit | None = field(default=None, repr=False)
    _cache: dict = field(default_factory=dict, repr=False)

    def aggregate(
        self, kind: Aggregation = "simple", *, n_boot: int = 999, seed: int | None = 20261128
    ) -> StaggeredAggregate:
        """The ``simple``, ``group``, ``dynamic`` (event study) or ``calendar`` aggregation.

        Parameters
        ----------
        kind : {"simple", "group", "dynamic", "calendar"}
            Over all post-coaching cells (weighted by wave size), by wave, by periods since
            coaching started (pre-periods included), or by calendar period.
        n_boot : int
            Multiplier-bootstrap draws for the simultaneous band over the levels.
        seed : int, optional
            Seed of the bootstrap: the same seed gives the same band.
        """
        check_choice("kind", kind, AGGREGATIONS)
        if not isinstance(n_boot, int | np.integer) or n_boot < 99:
            raise ValueError(f"n_boot={n_boot!r} must be an integer of at least 99")
        key = (kind, int(n_boot), seed)
        if key not in self._cache:
            rng = np.random.default_rng(seed)
            self._cache[key] = _aggregate(self, kind, n_boot=int(n_boot), rng=rng)
        return self._cache[key]

    def reading(self) -> str:
        """The simple aggregation and the pre-trends test in one sentence."""
        return self.aggregate("simple").reading()

    def to_frame(self) -> pd.DataFrame:
        """One row per aggregation (the overall effects), tidy."""
        return pd.DataFrame([self.aggregate(kind).as_dict() for kind in AGGREGATIONS])

    def summary(self) -> str:
        """Short text summary (returned, not printed)."""
        clus = f", clustered by {self.cluster} ({self.n_clusters} clusters)" if self.cluster else ""
        lines = [
            f"Staggered DiD (Callaway & Sant'Anna, {self.estimation}) of {self.treatment} on "
            f"{self.outcome}: {self.n_units} {_unit_noun(self.unit)}, comparison "
            f"{_comparison(self.control_group)}, {self.base_period} base period{clus}",
        ]
        for label, pt in (("event study", self.pre_trend), ("all cells", self.pre_trend_cells)):
            p = format_p(pt.p_value) if math.isfinite(pt.p_value) else "n/a"
            lines.append(
                f"  pre-trend test ({label}): F({pt.df}, {pt.df_denom}) = {pt.statistic:.3f}, p = {p}"
            )
        frame = self.to_frame()[
            ["aggregation", "estimate", "std_error", "ci_low", "ci_high", "p_value"]
        ]
        lines += [
            "  " + row
            for row in frame.to_string(index=False, float_format="{:.4g}".format).splitlines()
        ]
        lines += [f"  {self.reading()}"] + [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        frame = self.to_frame()[
            ["aggregation", "estimate", "std_error", "ci_low", "ci_high", "p_value"]
        ]
        return summary_html(self.reading(), self.notes, {"Aggregations": frame})


# ----------------------------------------------------------------------------------------------
# Inference from the influence functions


@dataclass(frozen=True, eq=False)
class _Clusters:
    """How influence values are summed before squaring: per unit (codes None) or per cluster."""

    codes: np.ndarray | None = None
    n_clusters: int | None = None

    def contributions(self, psi: np.ndarray) -> tuple[np.ndarray, float]:
        """Per-unit or per-cluster sums of the influence values, and the small-sample factor."""
        if self.codes is None:
            return psi, 1.0
        sums = np.zeros((self.n_clusters, psi.shape[1]))
        np.add.at(sums, self.codes, psi)
        return sums, self.n_clusters / (self.n_clusters - 1)

    def vcov(self, psi: np.ndarray) -> np.ndarray:
        """Covariance of the estimates whose influence values are the columns of ``psi``."""
        sums, adj = self.contributions(psi)
        return adj * np.dot(sums.T, sums) / psi.shape[0] ** 2

    def critical(self, alpha: float) -> float:
        """Pointwise critical value: normal, or t with clusters - 1 degrees of freedom."""
        if self.codes is None:
            return float(stats.norm.ppf(1 - alpha / 2))
        return float(stats.t.ppf(1 - alpha / 2, self.n_clusters - 1))

    def p_value(self, z: np.ndarray) -> np.ndarray:
        """Two-sided p-values of standardised estimates."""
        if self.codes is None:
            return 2 * stats.norm.sf(np.abs(z))
        return 2 * stats.t.sf(np.abs(z), self.n_clusters - 1)


def _pointwise(estimate: np.ndarray, psi: np.ndarray, clusters: _Clusters, alpha: float) -> dict:
    """Standard errors, pointwise intervals and p-values (NaN where the SE is degenerate)."""
    se = np.sqrt(np.clip(np.diag(clusters.vcov(psi)), 0, None))
    se = np.where(se <= SE_TOLERANCE, np.nan, se)
    crit = clusters.critical(alpha)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = clusters.p_value(estimate / se)
    return {
        "estimate": estimate,
        "std_error": se,
        "ci_low": estimate - crit * se,
        "ci_high": estimate + crit * se,
        "p_value": p,
    }


def _mammen(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Mammen's two-point multipliers (mean 0, variance 1), as R ``did`` uses."""
    root5 = math.sqrt(5.0)
    kappa = (1 + root5) / 2
    return np.where(rng.random(shape) < kappa / root5, 1 - kappa, kappa)


def _band_critical(
    psi: np.ndarray,
    se: np.ndarray,
    clusters: _Clusters,
    *,
    alpha: float,
    n_boot: int,
    rng: np.random.Generator,
) -> float:
    """Sup-t critical value of a simultaneous band by multiplier bootstrap (unit or cluster).

    Each draw multiplies the per-unit (or per-cluster) sums of the influence values by Mammen
    weights; the critical value is the 1 - alpha quantile of max_k |draw_k| / se_k, and never
    below the pointwise critical value.
    """
    valid = np.isfinite(se)
    pointwise = clusters.critical(alpha)
    if valid.sum() < 2:
        return pointwise
    sums, adj = clusters.contributions(psi[:, valid])
    scale = math.sqrt(adj) / psi.shape[0] / se[valid]
    sup = np.empty(n_boot)
    step = max(1, BOOT_CHUNK // sums.shape[0])
    for start in range(0, n_boot, step):
        stop = min(n_boot, start + step)
        draws = np.dot(_mammen(rng, (stop - start, sums.shape[0])), sums)
        sup[start:stop] = np.max(np.abs(draws) * scale, axis=1)
    return max(float(np.quantile(sup, 1 - alpha, method="inverted_cdf")), pointwise)


def _pre_trend(
    att: np.ndarray, psi: np.ndarray, pre: np.ndarray, clusters: _Clusters, scope: str
) -> PreTrendTest:
    """Wald test of the ``pre`` estimates = 0, referred to F as Hotelling's T^2.

    ``wald`` is the usual statistic (R did's, chi2 with k degrees of freedom in large samples).
    With G independent units (or clusters) and k restrictions, ``T^2 = wald * (G - 1) / G`` for
    units (the clustered covariance already has the factor G / (G - 1)), and
    ``F = T^2 (G - k) / (k (G - 1))`` is F(k, G - k) for normal scores.
    """
    k = int(pre.sum())
    if k == 0:
        return PreTrendTest(math.nan, 0, math.nan, scope=scope)
    vcov = clusters.vcov(psi[:, pre])
    theta = att[pre]
    g = clusters.n_clusters if clusters.codes is not None else psi.shape[0]
    if np.linalg.matrix_rank(vcov) < k or g <= k:
        return PreTrendTest(math.nan, k, math.nan, scope=scope)
    wald = float(np.dot(theta, np.linalg.solve(vcov, theta)))
    t2 = wald if clusters.codes is not None else wald * (g - 1) / g
    f_stat = t2 * (g - k) / (k * (g - 1))
    p = float(stats.f.sf(f_stat, k, g - k))
    return PreTrendTest(f_stat, k, p, g - k, wald, scope)


def _pre_trends(
    res, att_gt: pd.DataFrame, clusters: _Clusters
) -> tuple[PreTrendTest, PreTrendTest]:
    """The event-study pre-trends test (used in readings) and R did's test of every cell.

    The event-study test keeps the pre-periods every wave has: its estimates pool all waves,
    whereas the cells of the latest wave's long pre-history rest on that wave's units alone, and a
    covariance estimated from few units in many dimensions makes a Wald test reject too often (in
    simulated roll-outs of 60 teams in 3 waves with 18 pre-period cells, R did's chi2 test
    rejected 51% of the time at 5%, the F test on all cells 9%, the event-study test 3%).
    """
    from moderndid import aggte

    pre_cells = (~att_gt["post"] & att_gt["std_error"].notna()).to_numpy()
    cells = _pre_trend(
        att_gt["estimate"].to_numpy(), res.influence_func, pre_cells, clusters, "group_time"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        dyn = aggte(res, type="dynamic", cband=False)
    if not pre_cells.any():
        return PreTrendTest(math.nan, 0, math.nan), cells
    depth = -att_gt.loc[pre_cells].groupby("group")["event_time"].min()
    e = np.asarray(dyn.event_times, dtype=float)
    psi = np.asarray(dyn.influence_func, dtype=float)
    se = np.sqrt(np.diag(clusters.vcov(psi)))
    window = (e < 0) & (e >= -depth.min()) & (se > SE_TOLERANCE)
    est = np.asarray(dyn.att_by_event, dtype=float)
    return _pre_trend(est, psi, window, clusters, "event_time"), cells


# ----------------------------------------------------------------------------------------------
# Preparing the panel for the engine


@dataclass(frozen=True, eq=False)
class _Panel:
    """The engine's input and what is needed to read its output.

    ``long`` has ``_id, _t, _g, _y`` (integer codes: periods 1..T, cohort 0 = never) and the
    covariates ``x1..xk``; ``units`` has one row per unit in the row order of the influence
    functions (``_id``, ``_g``, ``label``, ``cluster``); ``times`` are the original period values
    (code = position + 1).
    """

    long: pd.DataFrame
    units: pd.DataFrame
    times: np.ndarray
    xformla: str | None
    notes: tuple[str, ...]


def _check_columns(data: pd.DataFrame, used: Sequence[str], *, unit: str, time: str) -> None:
    """Refuse missing columns, duplicated unit-periods and missing values in the keys."""
    missing = [c for c in used if c not in data.columns]
    if missing:
        raise ValueError(
            f"column(s) {', '.join(missing)} not in data; have {', '.join(map(str, data.columns))}"
        )
    if data.duplicated([unit, time]).any():
        raise ValueError(
            f"more than one row for some ({unit}, {time}): one row per unit and period"
        )
    nan_cols = [c for c in used[1:] if data[c].isna().any()]
    if nan_cols:
        raise ValueError(f"missing values in {', '.join(nan_cols)}")
    for col in used[2:4]:
        if not pd.api.types.is_numeric_dtype(data[col]):
            raise ValueError(f"column '{col}' must hold period numbers (integers)")


def _unit_constant(data: pd.DataFrame, unit: str, column: str) -> pd.Series:
    """The value of ``column`` per unit; ValueError when it changes within a unit."""
    per_unit = data.groupby(unit, sort=True)[column]
    if (per_unit.nunique() > 1).any():
        raise ValueError(f"'{column}' must be the same in every period of a unit")
    return per_unit.first()


def _cohort_codes(
    g: pd.Series, times: np.ndarray, anticipation: int, notes: list[str]
) -> pd.Series:
    """Cohort codes (first observed period at or after the start; 0 never) and the early ones.

    Units whose cohort starts after the last period count as never coached; units already
    coached in the first period (after anticipation) get code -1 (to be dropped).
    """
    late = (g > times[-1]).sum()
    if late:
        notes.append(f"{late} units start after the last period: counted as not yet coached")
    codes = np.where((g == 0) | (g > times[-1]), 0, np.searchsorted(times, g) + 1)
    early = (codes > 0) & (codes <= 1 + anticipation)
    if early.any():
        notes.append(
            f"{int(early.sum())} units were already coached in the first period "
            f"{'(with anticipation) ' if anticipation else ''}and are left out"
        )
    return pd.Series(np.where(early, -1, codes), index=g.index)


def _balance(long: pd.DataFrame, n_times: int, notes: list[str]) -> pd.DataFrame:
    """Drop units without an outcome in every period (as moderndid would), and count them."""
    n_before = long["_id"].nunique()
    long = long[np.isfinite(long["_y"].to_numpy(dtype=float))]
    counts = long.groupby("_id")["_t"].transform("size")
    long = long[counts == n_times]
    dropped = n_before - long["_id"].nunique()
    if dropped:
        notes.append(
            f"{dropped} units without an outcome in every period are left out (balanced panel)"
        )
    return long


def _last_wave_as_comparison(
    long: pd.DataFrame, times: np.ndarray, control_group: str, anticipation: int, notes: list[str]
) -> tuple[pd.DataFrame, np.ndarray]:
    """Without never-coached units, the last wave is the comparison until it starts (R did)."""
    if (long["_g"] == 0).any():
        return long, times
    if control_group == "never_treated":
        raise EstimationError(
            "no unit is never coached, so there is no never-coached comparison group; use "
            "control_group='not_yet_treated' (units compared with those whose coaching starts later)"
        )
    last = int(long["_g"].max())
    cutoff = last - anticipation
    long = long[long["_t"] < cutoff].assign(_g=lambda d: d["_g"].where(d["_g"] != last, 0))
    notes.append(
        "no unit is never coached: the last wave is the comparison group, and the periods from "
        "its start on are left out"
    )
    return long, times[: cutoff - 1]


def _covariate_columns(data: pd.DataFrame, covariates: tuple[str, ...]) -> pd.DataFrame:
    """Covariates as numeric columns x1..xk (text columns as indicators) for the engine."""
    if not covariates:
        return pd.DataFrame(index=data.index)
    x, _ = _design(data, covariates)
    return pd.DataFrame(x[:, 1:], index=data.index).rename(columns=lambda j: f"x{j + 1}")


def _prepare(
    data: pd.DataFrame,
    *,
    outcome: str,
    unit: str,
    time: str,
    group: str,
    covariates: tuple[str, ...],
    cluster: str | None,
    anticipation: int,
    control_group: str,
) -> _Panel:
    """Recode, clean and balance the panel; the units in the engine's row order."""
    used = [outcome, unit, time, group, *covariates] + ([cluster] if cluster else [])
    _check_columns(data, used, unit=unit, time=time)
    if not pd.api.types.is_numeric_dtype(data[outcome]):
        raise ValueError(f"outcome column '{outcome}' must be numeric")
    notes: list[str] = []
    times = np.sort(pd.unique(data[time].to_numpy()))
    codes = _cohort_codes(_unit_constant(data, unit, group), times, anticipation, notes)
    unit_code = pd.Series(np.arange(len(codes)), index=codes.index)
    long = pd.DataFrame(
        {
            "_id": data[unit].map(unit_code).to_numpy(),
            "_t": np.searchsorted(times, data[time].to_numpy()) + 1,
            "_g": data[unit].map(codes).to_numpy(),
            "_y": data[outcome].to_numpy(dtype=float),
        }
    ).join(_covariate_columns(data, covariates).reset_index(drop=True))
    long = long[long["_g"] >= 0]
    long, times = _last_wave_as_comparison(long, times, control_group, anticipation, notes)
    long = _balance(long, len(times), notes).reset_index(drop=True)
    if not (long["_g"] > 0).any() or len(times) < 2:
        raise EstimationError(
            "no unit starts coaching within the periods of the panel after its first period, so "
            "there is nothing to compare; check the group column and the panel's periods"
        )
    if control_group == "never_treated" and not (long["_g"] == 0).any():
        raise EstimationError("every never-coached unit was left out: no comparison group")
    units = long.groupby("_id", sort=True)["_g"].first().reset_index()
    units["label"] = codes.index.to_numpy()[units["_id"].to_numpy()]
    if cluster:
        units["cluster"] = units["label"].map(_unit_constant(data, unit, cluster)).to_numpy()
    order = np.lexsort((units["_id"], np.where(units["_g"] == 0, np.inf, units["_g"])))
    n_x = long.shape[1] - 4
    xformla = "~ " + " + ".join(f"x{j + 1}" for j in range(n_x)) if n_x else None
    return _Panel(long, units.iloc[order].reset_index(drop=True), times, xformla, tuple(notes))


# ----------------------------------------------------------------------------------------------
# The engine (moderndid) and the results


def _engine(panel: _Panel, *, control_group: str, method: str, base_period: str, anticipation: int):
    """Run moderndid's ``att_gt`` (analytic, no bootstrap); its warnings become notes."""
    from moderndid import att_gt

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        try:
            res = att_gt(
                data=panel.long,
                yname="_y",
                tname="_t",
                idname="_id",
                gname="_g",
                xformla=panel.xformla,
                # without covariates the three methods are the same difference in differences;
                # outcome regression skips fitting an intercept-only propensity model per cell
                est_method=method if panel.xformla else "reg",
                control_group=ENGINE_CONTROL[control_group],
                base_period=base_period,
                anticipation=anticipation,
                boot=False,
                cband=False,
            )
        except (ValueError, ZeroDivisionError, np.linalg.LinAlgError) as exc:
            message = str(exc).replace("'notyettreated'", "'not_yet_treated'")
            raise EstimationError(
                f"the staggered estimator could not be computed: {message}"
            ) from exc
    expected = np.where(panel.units["_g"] == 0, np.inf, panel.units["_g"]).astype(float)
    if res.influence_func.shape[0] != len(expected) or not np.array_equal(
        np.asarray(res.G, dtype=float), expected
    ):
        raise RuntimeError("moderndid's influence-function rows are not in the expected unit order")
    skip = ("Wald", "anticipation =", "pre-test", "small groups")
    notes = [
        str(w.message)
        for w in caught
        if issubclass(w.category, UserWarning) and not any(s in str(w.message) for s in skip)
    ]
    return res, _small_waves(panel) + notes


def _small_waves(panel: _Panel) -> list[str]:
    """A note on waves (or a comparison group) with fewer units than R did asks for (k + 5)."""
    need = (panel.long.shape[1] - 4) + 5
    sizes = panel.units.groupby("_g").size()
    small = [
        "the never coached" if g == 0 else f"the wave starting in period {panel.times[g - 1]}"
        for g, n in sizes.items()
        if n < need
    ]
    if not small:
        return []
    return [f"fewer than {need} units in: {', '.join(small)}; their estimates are fragile"]


def _cluster_codes(panel: _Panel, cluster: str | None) -> _Clusters:
    """Cluster codes of the units in influence-function row order."""
    if cluster is None:
        return _Clusters()
    codes, levels = pd.factorize(panel.units["cluster"], sort=True)
    if len(levels) < 2:
        raise EstimationError(f"cluster '{cluster}' has a single value: cannot cluster")
    return _Clusters(codes, len(levels))


def _att_gt_frame(res, panel: _Panel, clusters: _Clusters, alpha: float) -> pd.DataFrame:
    """Tidy ATT(g, t) with original period values and event time."""
    g_code = np.asarray(res.groups).astype(int)
    t_code = np.asarray(res.times).astype(int)
    inf = _pointwise(np.asarray(res.att_gt, dtype=float), res.influence_func, clusters, alpha)
    frame = pd.DataFrame(
        {
            "group": panel.times[g_code - 1],
            "time": panel.times[t_code - 1],
            "event_time": t_code - g_code,
            "post": t_code >= g_code,
        }
        | inf
    )
    return frame[list(GT_COLUMNS) + ["p_value"]]


@dataclass(frozen=True, eq=False)
class _Fit:
    """The engine's result and what is needed to read it (kept by `StaggeredResult`)."""

    res: object
    panel: _Panel
    clusters: _Clusters


def _levels(agg, kind: str, panel: _Panel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The by-level values (original periods, or event times), estimates and influence values."""
    if kind == "simple":
        return np.array([], dtype=float), np.array([]), np.zeros((panel.units.shape[0], 0))
    codes = np.asarray(agg.event_times)
    values = codes.astype(int) if kind == "dynamic" else panel.times[codes.astype(int) - 1]
    psi = np.asarray(agg.influence_func, dtype=float).reshape(panel.units.shape[0], -1)
    return values, np.asarray(agg.att_by_event, dtype=float), psi


def _aggregate(
    result: StaggeredResult, kind: str, *, n_boot: int, rng: np.random.Generator
) -> StaggeredAggregate:
    """One aggregation: moderndid's estimates and influence functions, our inference."""
    from moderndid import aggte

    res, panel, clusters = result._fit.res, result._fit.panel, result._fit.clusters

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        agg = aggte(res, type=kind, cband=False)
    values, est, psi = _levels(agg, kind, panel)
    overall = np.asarray(agg.influence_func_overall, dtype=float).reshape(-1, 1)
    inf = _pointwise(
        np.r_[float(agg.overall_att), est], np.column_stack([overall, psi]), clusters, result.alpha
    )
    se = inf["std_error"][1:]
    crit = (
        _band_critical(psi, se, clusters, alpha=result.alpha, n_boot=n_boot, rng=rng)
        if values.size
        else math.nan
    )
    by_level = pd.DataFrame(
        {"level": values}
        | {k: v[1:] for k, v in inf.items() if k != "p_value"}
        | {"band_low": est - crit * se, "band_high": est + crit * se}
        | {"post": values >= 0 if kind == "dynamic" else np.ones(values.size, dtype=bool)}
    )
    first = {k: float(v[0]) for k, v in inf.items()}
    return StaggeredAggregate(
        outcome=result.outcome,
        treatment=result.treatment,
        estimand="ATT",
        method="callaway_santanna",
        **first,
        n_treated=result.n_treated,
        n_control=result.n_control,
        alpha=result.alpha,
        units=OUTCOME_UNITS.get(result.outcome, "outcome units"),
        covariates=result.covariates,
        cluster=result.cluster,
        n_clusters=clusters.n_clusters,
        notes=result.notes,
        aggregation=kind,
        by_level=by_level,
        band_critical_value=crit,
        control_group=result.control_group,
        unit=result.unit,
        pre_trend=result.pre_trend,
    )


def _check_options(
    *, control_group: str, method: str, base_period: str, anticipation: int, alpha: float
) -> None:
    """Refuse unknown options with a ValueError that lists the allowed values."""
    check_choice("control_group", control_group, CONTROL_GROUPS)
    check_choice("method", method, DID_METHODS)
    check_choice("base_period", base_period, BASE_PERIODS)
    if not isinstance(anticipation, int | np.integer) or anticipation < 0:
        raise ValueError(f"anticipation={anticipation!r} must be a whole number of periods >= 0")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha={alpha!r} must be between 0 and 1")


def _counts(panel: _Panel, control_group: str) -> tuple[int, int]:
    """Units that started coaching, and units that serve as comparison in some period."""
    g = panel.units["_g"].to_numpy()
    treated = g > 0
    if control_group == "never_treated" or not treated.any():
        return int(treated.sum()), int((g == 0).sum())
    return int(treated.sum()), int(((g == 0) | (g > g[treated].min())).sum())


def staggered_att(
    data: pd.DataFrame,
    *,
    outcome: str,
    unit: str,
    time: str,
    group: str,
    covariates: Sequence[str] = (),
    control_group: ControlGroup = "never_treated",
    method: DidMethod = "dr",
    base_period: BasePeriod = "varying",
    anticipation: int = 0,
    cluster: str | None = None,
    alpha: float = 0.05,
) -> StaggeredResult:
    """Group-time effects of a roll-out in waves (Callaway and Sant'Anna 2021), aggregated.

    Parameters
    ----------
    data : DataFrame
        A long panel, one row per unit and period (see `lcstats.outcomes.panel`). Units without
        an outcome in some period are left out (counted in ``notes``).
    outcome, unit, time, group : str
        Columns: the outcome; the unit (team or learner); the period number (integers,
        consecutive periods differ by one); the period number in which the unit's coaching
        started (0 = never coached; the same in every row of a unit).
    covariates : sequence of str
        Characteristics fixed before coaching (text columns become indicators) for conditional
        parallel trends; ``method`` says how they are used.
    control_group : {"never_treated", "not_yet_treated"}
        Compare with units never coached, or with units not yet coached in that period.
    method : {"dr", "ipw", "reg"}
        Doubly robust (Sant'Anna and Zhao 2020), inverse probability weighting or outcome
        regression (the same without covariates).
    base_period : {"varying", "universal"}
        Pre-periods compared with the period before ("varying", as R did) or all with the period
        before coaching ("universal").
    anticipation : int
        Periods before the start in which coaching may already act.
    cluster : str, optional
        Column of clusters (teams) containing units (learners) for cluster-robust inference.
    alpha : float
        1 - confidence level of intervals and bands.

    Returns
    -------
    StaggeredResult

    Raises
    ------
    ValueError
        Unknown option, missing column, duplicated unit-period, a group or cluster that changes
        within a unit.
    EstimationError
        No comparison group, no unit starting coaching within the panel, or the engine failed.

    Examples
    --------
    >>> from moderndid import load_mpdta
    >>> mpdta = load_mpdta().to_pandas()
    >>> res = staggered_att(mpdta, outcome="lemp", unit="countyreal", time="year",
    ...                     group="first.treat")
    >>> round(res.aggregate("simple").estimate, 4), round(res.aggregate("simple").std_error, 4)
    (-0.04, 0.012)
    """
    _check_options(
        control_group=control_group,
        method=method,
        base_period=base_period,
        anticipation=anticipation,
        alpha=alpha,
    )
    covariates = tuple(covariates)
    panel = _prepare(
        data,
        outcome=outcome,
        unit=unit,
        time=time,
        group=group,
        covariates=covariates,
        cluster=cluster,
        anticipation=anticipation,
        control_group=control_group,
    )
    res, engine_notes = _engine(
        panel,
        control_group=control_group,
        method=method,
        base_period=base_period,
        anticipation=anticipation,
    )
    clusters = _cluster_codes(panel, cluster)
    att_gt = _att_gt_frame(res, panel, clusters, alpha)
    pre_trend, pre_trend_cells = _pre_trends(res, att_gt, clusters)
    notes = panel.notes + tuple(engine_notes)
    if clusters.n_clusters is not None and clusters.n_clusters < 20:
        notes += (f"only {clusters.n_clusters} clusters: intervals may be too narrow",)
    n_treated, n_control = _counts(panel, control_group)
    return StaggeredResult(
        outcome=outcome,
        unit=unit,
        att_gt=att_gt.drop(columns="p_value"),
        pre_trend=pre_trend,
        pre_trend_cells=pre_trend_cells,
        control_group=control_group,
        estimation=method,
        base_period=base_period,
        anticipation=anticipation,
        covariates=covariates,
        cluster=cluster,
        n_clusters=clusters.n_clusters,
        n_units=int(panel.units.shape[0]),
        n_treated=n_treated,
        n_control=n_control,
        alpha=alpha,
        notes=notes,
        _fit=_Fit(res, panel, clusters),
    )


# ----------------------------------------------------------------------------------------------
# Validation on simulated roll-outs with known truth (tests and benchmarks/validation_study.py)

RECORDED_COVARIATES = ("tenure_months", "engagement", "role")


def _study_rep(seed: int, simulate: dict) -> list[dict]:
    """One simulated roll-out: the staggered simple aggregation and cross-sectional AIPW."""
    from lcstats.data.load import Programme
    from lcstats.data.rollout import simulate_rollout
    from lcstats.estimation.effects import estimate_effect
    from lcstats.outcomes.learner import learner_outcomes
    from lcstats.outcomes.panel import balanced_panel, follow_through_panel, skills_gap_panel

    prog = simulate_rollout(seed=seed, **simulate)
    as_of = prog.truth["rollout"]["as_of"]
    panel = follow_through_panel(prog.action_items, prog.learners, as_of=as_of)
    teams = balanced_panel(panel, level="team").data
    res = staggered_att(teams, outcome="follow_through", unit="team_id", time="time", group="group")
    simple = res.aggregate("simple")
    programme = Programme(prog.learners, prog.action_items, prog.skill_assessments, {}, (1, 5))
    learners = learner_outcomes(programme, as_of=as_of).data.dropna(subset=["follow_through"])
    aipw = estimate_effect(
        learners,
        outcome="follow_through",
        treatment="coached",
        covariates=RECORDED_COVARIATES,
        method="aipw",
        estimand="ATT",
        cluster="team_id",
    )
    fits = [
        ("staggered simple", simple, "simple", res.pre_trend),
        ("AIPW (ATT)", aipw, "ATT", None),
    ]
    if simulate.get("assessment_gap"):
        skills = skills_gap_panel(prog.skill_assessments, prog.learners).data
        res = staggered_att(
            skills, outcome="skills_gap", unit="team_id", time="time", group="group"
        )
        fits.append(("staggered skills gap", res.aggregate("simple"), "simple", res.pre_trend))
    rows = []
    for label, est, estimand, pre_trend in fits:
        truth = prog.effect(est.outcome, estimand=estimand)
        rows.append(
            {"seed": seed, "method": label, "truth": truth, "estimate": est.estimate}
            | {"std_error": est.std_error, "ci_low": est.ci_low, "ci_high": est.ci_high}
            | {"covered": bool(est.ci_low <= truth <= est.ci_high)}
            | {"pre_trend_p": pre_trend.p_value if pre_trend is not None else np.nan}
        )
    return rows


def rollout_study(n_programmes: int = 200, *, seed: int = 1, **simulate) -> pd.DataFrame:
    """Estimate the effect in many simulated roll-outs (`lcstats.data.rollout.simulate_rollout`).

    For each programme: the staggered simple aggregation on the balanced team x month panel
    (never-coached comparison, no covariates) against ``truth`` ``simple``, and cross-sectional
    AIPW for the coached (ATT) on learner-level follow-through with the recorded covariates
    (tenure, engagement, role; clustered by team) against ``truth`` ``ATT``. With an
    ``assessment_gap``, also the staggered simple aggregation of the skills gap on the team x
    wave panel against its ``simple`` truth.

    Parameters
    ----------
    n_programmes : int
        Number of simulated programmes.
    seed : int
        Seed from which the programmes' seeds are drawn.
    **simulate
        Arguments of `simulate_rollout` (``n_teams``, ``effect``, ``confounding`` ...).

    Returns
    -------
    DataFrame
        One row per programme and method: ``seed, method, truth, estimate, std_error, ci_low,
        ci_high, covered, pre_trend_p``. `summarise_rollout_study` makes the table.
    """
    seeds = np.random.SeedSequence(seed).generate_state(n_programmes)
    rows = [row for s in seeds for row in _study_rep(int(s), simulate)]
    return pd.DataFrame(rows)


def summarise_rollout_study(raw: pd.DataFrame) -> pd.DataFrame:
    """Bias, its Monte Carlo SE, RMSE, coverage, mean SE and SD of the estimates by method.

    Examples
    --------
    >>> raw = pd.DataFrame({"method": ["m"] * 2, "truth": [0.1, 0.1], "estimate": [0.1, 0.14],
    ...     "std_error": [0.02, 0.02], "covered": [True, False], "pre_trend_p": [0.5, 0.01]})
    >>> summarise_rollout_study(raw)[["method", "bias", "coverage"]]
      method  bias  coverage
    0      m  0.02       0.5
    """
    error = raw["estimate"] - raw["truth"]
    out = (
        raw.assign(error=error, sq=error**2, pre_reject=raw["pre_trend_p"] < 0.05)
        .groupby("method", sort=False)
        .agg(
            n=("error", "size"),
            truth=("truth", "mean"),
            bias=("error", "mean"),
            sd=("estimate", "std"),
            mse=("sq", "mean"),
            coverage=("covered", "mean"),
            mean_se=("std_error", "mean"),
            pre_trend_rejects=("pre_reject", "mean"),
        )
        .reset_index()
    )
    out["mc_se_bias"] = out["sd"] / np.sqrt(out["n"])
    out["rmse"] = np.sqrt(out.pop("mse"))
    return out
