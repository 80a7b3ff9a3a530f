"""Cost per outcome and, when the analyst values an outcome, a Phillips-style return on investment.

The costs come from the parameters (``costs: {per_session: 120, per_learner: 300, currency:
"GBP"}``, optionally ``value_per_follow_through`` and ``value_per_skill_point``) and are taken as
known: the total is ``per_learner * n_coached + per_session * sessions_total``. The supplied
figures should be fully loaded (coaches' time, materials, learners' time away from work), as the
Phillips methodology asks; nothing here adds to them.

Outcomes bought, per coached learner, are the effect of coaching in the helpful direction:

- ``"followed_through"``: the effect on the share of learners who followed through (a 0/1
  outcome per learner); ``n_coached * effect`` is the number of additional learners who followed
  through. This is the estimate to use when the evaluation has it.
- ``"follow_through"``: otherwise, the effect on the share of action items done on time;
  ``n_coached * effect`` then counts additional learners' worth of action plans done on time
  (one "additional learner who followed through" = one whole action plan done on time).
- ``"skills_gap"``: points of skills gap closed; the effect is negative when the gap narrowed,
  so the points closed are ``-effect`` per coached learner.

Intervals. With the costs known, Fieller's interval for ``C / (n * g)`` is the effect's interval
``[g_lo, g_hi]`` carried through the ratio: ``[C / (n g_hi), C / (n g_lo)]`` when ``g_lo > 0``;
when the effect's interval reaches zero the cost per outcome has no upper limit (the effect could
be nil), and when the whole interval is at or below zero no finite cost buys an outcome. The
delta method (``se = C se_g / (n g²)``, symmetric) is the second option; it misleads when the
effect is imprecise, which is why Fieller is the default.

Nothing is computed without costs: `cost_effectiveness` and `roi` return None, and the report
skips the section.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import pandas as pd
from scipy import stats

from lcstats.core.display import summary_html
from lcstats.core.options import check_choice

CostOutcome = Literal["followed_through", "follow_through", "skills_gap"]
COST_OUTCOMES: tuple[str, ...] = get_args(CostOutcome)
IntervalMethod = Literal["fieller", "delta"]
INTERVAL_METHODS: tuple[str, ...] = get_args(IntervalMethod)
COST_KEYS = ("per_session", "per_learner", "currency")
VALUE_KEYS = ("value_per_follow_through", "value_per_skill_point")
EXPECTED_COSTS = (
    "costs: {per_session: number >= 0 (cost of one coaching session), per_learner: number >= 0 "
    "(cost per coached learner), currency: a three-letter code such as 'GBP', "
    "value_per_follow_through: optional number > 0, value_per_skill_point: optional number > 0}"
    " (per_session and per_learner not both 0)"
)
VALUE_KEY = {
    "followed_through": "value_per_follow_through",
    "follow_through": "value_per_follow_through",
    "skills_gap": "value_per_skill_point",
}
UNIT_WORDS = {  # outcome -> (one unit bought, many)
    "followed_through": (
        "additional learner who followed through",
        "additional learners who followed through",
    ),
    "follow_through": (
        "additional learner who followed through",
        "additional learners who followed through",
    ),
    "skills_gap": ("point of skills gap closed", "points of skills gap closed"),
}
CE_COLUMNS = (
    "outcome",
    "currency",
    "total_cost",
    "n_coached",
    "sessions_total",
    "gain_per_learner",
    "additional_outcomes",
    "additional_ci_low",
    "additional_ci_high",
    "cost_per_outcome",
    "interval",
    "ci_low",
    "ci_high",
    "bounded",
    "primary",
)
ROI_COLUMNS = (
    "value_multiplier",
    "value_per_outcome",
    "benefits",
    "benefits_ci_low",
    "benefits_ci_high",
    "total_cost",
    "bcr",
    "bcr_ci_low",
    "bcr_ci_high",
    "roi_percent",
    "roi_ci_low",
    "roi_ci_high",
)


# ----------------------------------------------------------------------------------------------
# Costs from the parameters


@dataclass(frozen=True)
class Costs:
    """A programme's costs (taken as known) and the analyst's optional values per outcome."""

    per_session: float
    per_learner: float
    currency: str
    value_per_follow_through: float | None = None
    value_per_skill_point: float | None = None

    def total(self, n_coached: int, sessions_total: float) -> float:
        """Total programme cost: per_learner * n_coached + per_session * sessions_total."""
        return self.per_learner * n_coached + self.per_session * sessions_total

    def value(self, outcome: str) -> float | None:
        """The analyst's value of one unit of an outcome, if given."""
        return getattr(self, VALUE_KEY[outcome])


def _number_problem(key: str, value: Any, *, optional: bool, positive: bool) -> str | None:
    """What is wrong with one cost figure, or None."""
    if value is None:
        return None if optional else f"{key} is missing"
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return f"{key}={value!r} is not a finite number"
    if positive and value <= 0:
        return f"{key}={value!r} must be greater than 0"
    if value < 0:
        return f"{key}={value!r} must not be negative"
    return None


def _cost_problems(costs: Mapping[str, Any]) -> list[str]:
    """Every problem of a costs mapping (unknown keys, missing or bad figures, currency)."""
    problems = [f"unknown key {k!r}" for k in costs if k not in COST_KEYS + VALUE_KEYS]
    for key in ("per_session", "per_learner"):
        problems.append(_number_problem(key, costs.get(key), optional=False, positive=False))
    for key in VALUE_KEYS:
        problems.append(_number_problem(key, costs.get(key), optional=True, positive=True))
    currency = costs.get("currency")
    if not (
        isinstance(currency, str)
        and len(currency) == 3
        and currency.isalpha()
        and currency.isupper()
    ):
        problems.append(f"currency={currency!r} is not a three-letter code such as 'GBP'")
    problems = [p for p in problems if p]
    if not problems and costs["per_session"] == 0 and costs["per_learner"] == 0:
        problems.append("per_session and per_learner are both 0: the programme costs nothing")
    return problems


def check_costs(costs: Mapping[str, Any] | Costs | None) -> Costs | None:
    """Validate params-shaped costs; None stays None (no costs: nothing is computed).

    Raises
    ------
    ValueError
        Listing every problem and what is expected.

    Examples
    --------
    >>> check_costs({"per_session": 120, "per_learner": 300, "currency": "GBP"}).total(10, 40)
    7800
    >>> check_costs(None) is None
    True
    """
    if costs is None or isinstance(costs, Costs):
        return costs
    if not isinstance(costs, Mapping):
        raise ValueError(
            f"costs must be a mapping, got {type(costs).__name__}; expected {EXPECTED_COSTS}"
        )
    problems = _cost_problems(costs)
    if problems:
        raise ValueError(f"costs: {'; '.join(problems)}. Expected {EXPECTED_COSTS}")
    return Costs(**{k: costs.get(k) for k in COST_KEYS + VALUE_KEYS})


# ----------------------------------------------------------------------------------------------
# Cost per outcome


@dataclass(frozen=True)
class CostEffectiveness:
    """What one additional outcome cost, with intervals from the effect's uncertainty.

    ``gain_per_learner`` is the effect per coached learner in the helpful direction (points
    closed for the skills gap); ``additional_outcomes = n_coached * gain_per_learner``.
    ``cost_per_outcome`` is ``inf`` when coaching bought no outcome (gain at or below zero);
    Fieller limits are ``inf`` where unbounded; delta-method limits are NaN without a gain.
    """

    outcome: str
    costs: Costs
    total_cost: float
    n_coached: int
    sessions_total: float
    effect: float
    effect_ci_low: float
    effect_ci_high: float
    gain_per_learner: float
    gain_ci_low: float
    gain_ci_high: float
    cost_per_outcome: float
    fieller: tuple[float, float]
    delta: tuple[float, float]
    interval: str = "fieller"
    alpha: float = 0.05
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def currency(self) -> str:
        return self.costs.currency

    @property
    def confidence(self) -> int:
        return round(100 * (1 - self.alpha))

    @property
    def additional_outcomes(self) -> float:
        return self.n_coached * self.gain_per_learner

    @property
    def ci_low(self) -> float:
        return (self.fieller if self.interval == "fieller" else self.delta)[0]

    @property
    def ci_high(self) -> float:
        return (self.fieller if self.interval == "fieller" else self.delta)[1]

    @property
    def bounded(self) -> bool:
        """Whether Fieller's interval has a finite upper limit (the effect clearly helped)."""
        return math.isfinite(self.fieller[1])

    def to_frame(self) -> pd.DataFrame:
        """Tidy frame: one row per interval method (Fieller, delta); ``primary`` marks the one read."""
        base = {
            "outcome": self.outcome,
            "currency": self.currency,
            "total_cost": self.total_cost,
            "n_coached": self.n_coached,
            "sessions_total": self.sessions_total,
            "gain_per_learner": self.gain_per_learner,
            "additional_outcomes": self.additional_outcomes,
            "additional_ci_low": self.n_coached * self.gain_ci_low,
            "additional_ci_high": self.n_coached * self.gain_ci_high,
            "cost_per_outcome": self.cost_per_outcome,
        }
        rows = [
            base
            | {"interval": name, "ci_low": lo, "ci_high": hi, "bounded": bool(math.isfinite(hi))}
            | {"primary": name == self.interval}
            for name, (lo, hi) in (("fieller", self.fieller), ("delta", self.delta))
        ]
        return pd.DataFrame(rows, columns=list(CE_COLUMNS))

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready values (infinite or missing as None, with ``bounded``) for results.json."""
        row = self.to_frame().iloc[0 if self.interval == "fieller" else 1].to_dict()
        row["ci_low"], row["ci_high"] = self.ci_low, self.ci_high
        row["bounded"] = self.bounded
        clean = {k: _json_value(v) for k, v in row.items()}
        return clean | {"alpha": self.alpha, "notes": list(self.notes)}

    def reading(self) -> str:
        """What coaching cost and what one additional outcome cost, in plain words."""
        return _ce_reading(self)

    def summary(self) -> str:
        """Return a short text summary (not printed)."""
        lines = [
            f"Cost per outcome ({self.outcome}): total cost {_money(self.total_cost, self.currency)} "
            f"= {self.costs.per_learner:g} x {self.n_coached} learners + "
            f"{self.costs.per_session:g} x {self.sessions_total:g} sessions",
            self.to_frame()
            .drop(columns=["outcome", "currency"])
            .to_string(index=False, float_format="{:.4g}".format),
            self.reading(),
        ]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        return summary_html(self.reading(), self.notes, {"Cost per outcome": self.to_frame()})


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item"):  # numpy scalars
        return _json_value(value.item())
    return value


def _field(effect: Any, name: str) -> Any:
    """A field of an effect given as an object (EffectEstimate) or a mapping."""
    if isinstance(effect, Mapping):
        return effect.get(name)
    return getattr(effect, name, None)


def _effect_interval(effect: Any, alpha: float) -> tuple[float, float, float, float, float]:
    """(estimate, std_error, ci_low, ci_high, critical value) of the effect at level `alpha`.

    The effect's own interval is used when it is at this level (it may be a t interval for
    clustered data); otherwise a normal interval is made from the estimate and standard error.
    """
    est, se = _field(effect, "estimate"), _field(effect, "std_error")
    for name, value in (("estimate", est), ("std_error", se)):
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise ValueError(
                f"effect {name}={value!r} is not a finite number; pass an EffectEstimate or a "
                "mapping with estimate, std_error and optionally ci_low, ci_high, alpha"
            )
    if se <= 0:
        raise ValueError(f"effect std_error={se!r} must be greater than 0")
    lo, hi = _field(effect, "ci_low"), _field(effect, "ci_high")
    own_alpha = _field(effect, "alpha")
    same_level = own_alpha is None or math.isclose(float(own_alpha), alpha)
    if same_level and lo is not None and hi is not None and math.isfinite(lo) and math.isfinite(hi):
        if not lo <= est <= hi:
            raise ValueError(f"effect interval [{lo}, {hi}] does not contain its estimate {est}")
        return float(est), float(se), float(lo), float(hi), (hi - lo) / (2 * se)
    crit = float(stats.norm.isf(alpha / 2))
    return float(est), float(se), est - crit * se, est + crit * se, crit


def _fieller(cost: float, n: int, gain_low: float, gain_high: float) -> tuple[float, float]:
    """Fieller's interval of C / (n g) for known C: the gain's interval carried through."""
    low = cost / (n * gain_high) if gain_high > 0 else math.inf
    high = cost / (n * gain_low) if gain_low > 0 else math.inf
    return low, high


def _delta(cost: float, n: int, gain: float, se: float, crit: float) -> tuple[float, float]:
    """Delta-method interval of C / (n g): symmetric, se = C se_g / (n g²); NaN without a gain."""
    if gain <= 0:
        return math.nan, math.nan
    ratio = cost / (n * gain)
    half = crit * cost * se / (n * gain**2)
    return ratio - half, ratio + half


def _check_counts(n_coached: Any, sessions_total: Any, alpha: Any) -> None:
    if isinstance(n_coached, bool) or not isinstance(n_coached, int) or n_coached < 1:
        raise ValueError(f"n_coached={n_coached!r} must be a whole number of at least 1")
    bad_sessions = isinstance(sessions_total, bool) or not isinstance(sessions_total, int | float)
    if bad_sessions or not math.isfinite(sessions_total) or sessions_total < 0:
        raise ValueError(f"sessions_total={sessions_total!r} must be a number of sessions >= 0")
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 < alpha < 1:
        raise ValueError(f"alpha={alpha!r} must be between 0 and 1")


def _notes(effect: Any, outcome: str) -> list[str]:
    """What the reader should know about the inputs (the estimand, the outcome used)."""
    notes = ["costs are taken as known: the intervals reflect only the uncertainty of the effect"]
    if outcome == "follow_through":
        notes.append(
            "the effect is on the share of action items done on time, so one additional learner "
            "who followed through means one learner's whole action plan done on time"
        )
    if _field(effect, "estimand") not in (None, "ATT"):
        notes.append(
            f"the effect is an {_field(effect, 'estimand')}; the effect on the coached (ATT) "
            "is the one that matches their costs"
        )
    return notes


def cost_effectiveness(
    effect: Any,
    *,
    outcome: CostOutcome,
    n_coached: int,
    sessions_total: float,
    costs: Mapping[str, Any] | Costs | None,
    alpha: float = 0.05,
    interval: IntervalMethod = "fieller",
) -> CostEffectiveness | None:
    """The cost per additional learner who followed through, or per point of skills gap closed.

    Parameters
    ----------
    effect : EffectEstimate or mapping
        The effect of coaching: ``estimate`` and ``std_error``, and ``ci_low``, ``ci_high`` (with
        its ``alpha``) when known. For the skills gap it is negative when the gap narrowed.
    outcome : {"followed_through", "follow_through", "skills_gap"}
        What the effect is on (see the module's notes): the share of learners who followed
        through (preferred), the share of action items done on time, or the skills gap.
    n_coached : int
        Coached learners (whose costs are counted and who gained the effect).
    sessions_total : float
        Coaching sessions delivered in total.
    costs : mapping or Costs or None
        ``{per_session, per_learner, currency}`` and optional values (`check_costs`).
        None: no costs given, and None is returned.
    alpha : float
        1 - confidence level of the intervals.
    interval : {"fieller", "delta"}
        The interval read in ``reading()`` and returned as ``ci_low``/``ci_high``; both are in
        the tidy frame.

    Returns
    -------
    CostEffectiveness or None

    Examples
    --------
    >>> ce = cost_effectiveness({"estimate": 0.10, "std_error": 0.02}, outcome="followed_through",
    ...                         n_coached=100, sessions_total=500,
    ...                         costs={"per_session": 120, "per_learner": 300, "currency": "GBP"})
    >>> ce.total_cost, round(ce.cost_per_outcome)
    (90000, 9000)
    """
    checked = check_costs(costs)
    if checked is None:
        return None
    check_choice("outcome", outcome, COST_OUTCOMES)
    check_choice("interval", interval, INTERVAL_METHODS)
    _check_counts(n_coached, sessions_total, alpha)
    given = _field(effect, "outcome")
    if given is not None and given != outcome:
        raise ValueError(f"the effect is on {given!r} but outcome={outcome!r}")
    est, se, lo, hi, crit = _effect_interval(effect, alpha)
    sign = -1.0 if outcome == "skills_gap" else 1.0  # a narrower gap is a gain
    gain, gain_lo, gain_hi = sign * est, min(sign * lo, sign * hi), max(sign * lo, sign * hi)
    total = checked.total(n_coached, sessions_total)
    delta = _delta(total, n_coached, gain, se, crit)
    notes = _notes(effect, outcome)
    if delta[0] <= 0:
        notes.append(
            "the delta-method interval reaches zero or below, which has no meaning for a cost: "
            "read Fieller's interval"
        )
    return CostEffectiveness(
        outcome=outcome,
        costs=checked,
        total_cost=total,
        n_coached=n_coached,
        sessions_total=sessions_total,
        effect=est,
        effect_ci_low=lo,
        effect_ci_high=hi,
        gain_per_learner=gain,
        gain_ci_low=gain_lo,
        gain_ci_high=gain_hi,
        cost_per_outcome=total / (n_coached * gain) if gain > 0 else math.inf,
        fieller=_fieller(total, n_coached, gain_lo, gain_hi),
        delta=delta,
        interval=interval,
        alpha=float(alpha),
        notes=tuple(notes),
    )


# ----------------------------------------------------------------------------------------------
# Return on investment (only with a value per outcome)


@dataclass(frozen=True)
class ReturnOnInvestment:
    """Benefit-cost ratio and ROI % over a range of values per outcome (an assumption).

    ``frame`` has one row per value multiplier: ``value_per_outcome`` = multiplier x the
    analyst's value; ``benefits`` = value x additional outcomes; ``bcr`` = benefits / costs;
    ``roi_percent`` = (benefits - costs) / costs x 100; each with the interval carried from the
    effect's (costs and values taken as known).
    """

    cost_effectiveness: CostEffectiveness
    value_per_outcome: float
    frame: pd.DataFrame = field(compare=False, repr=False)

    @property
    def outcome(self) -> str:
        return self.cost_effectiveness.outcome

    def to_frame(self) -> pd.DataFrame:
        """Tidy frame: one row per value assumed."""
        return self.frame.copy()

    def at(self, multiplier: float = 1.0) -> pd.Series:
        """The row for one multiplier of the analyst's value."""
        rows = self.frame[self.frame["value_multiplier"] == multiplier]
        if rows.empty:
            raise KeyError(f"no row for value multiplier {multiplier}")
        return rows.iloc[0]

    def reading(self) -> str:
        """The ratio and ROI at the analyst's value and the others, labelled as an assumption."""
        return _roi_reading(self)

    def summary(self) -> str:
        """Return a short text summary (not printed)."""
        table = self.frame.to_string(index=False, float_format="{:.4g}".format)
        return f"Return on investment ({self.outcome})\n{table}\n{self.reading()}"

    def __repr__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        return summary_html(self.reading(), details={"Return on investment": self.frame})


def roi(
    ce: CostEffectiveness | None,
    *,
    value_per_outcome: float | None = None,
    multipliers: Sequence[float] = (0.5, 1.0, 2.0),
) -> ReturnOnInvestment | None:
    """Phillips-style benefit-cost ratio and ROI %, only when an outcome has a value.

    Parameters
    ----------
    ce : CostEffectiveness or None
        From `cost_effectiveness` (None: no costs, and None is returned).
    value_per_outcome : float, optional
        What one additional learner who followed through (or one point of skills gap closed)
        is worth; by default ``value_per_follow_through`` or ``value_per_skill_point`` of the
        costs. Without a value None is returned.
    multipliers : sequence of float
        The values shown, as multiples of the value (the result rests on that assumption).

    Returns
    -------
    ReturnOnInvestment or None

    Examples
    --------
    >>> ce = cost_effectiveness({"estimate": 0.10, "std_error": 0.02}, outcome="followed_through",
    ...                         n_coached=100, sessions_total=500,
    ...                         costs={"per_session": 120, "per_learner": 300, "currency": "GBP",
    ...                                "value_per_follow_through": 18000})
    >>> r = roi(ce)
    >>> float(r.at(1.0)["bcr"]), float(r.at(1.0)["roi_percent"])
    (2.0, 100.0)
    """
    if ce is None:
        return None
    value = ce.costs.value(ce.outcome) if value_per_outcome is None else value_per_outcome
    if value is None:
        return None
    problem = _number_problem("value_per_outcome", value, optional=False, positive=True)
    if problem:
        raise ValueError(problem)
    mults = [float(m) for m in multipliers]
    if not mults or any(not math.isfinite(m) or m <= 0 for m in mults):
        raise ValueError(
            f"multipliers={list(multipliers)!r} must be positive numbers (e.g. 0.5, 1, 2)"
        )
    cost, n = ce.total_cost, ce.n_coached
    rows = []
    for m in mults:
        v = m * value
        benefits = [v * n * g for g in (ce.gain_per_learner, ce.gain_ci_low, ce.gain_ci_high)]
        bcr = [b / cost for b in benefits]
        rows.append([m, v, *benefits, cost, *bcr, *[100 * (r - 1) for r in bcr]])
    return ReturnOnInvestment(ce, float(value), pd.DataFrame(rows, columns=list(ROI_COLUMNS)))


# ----------------------------------------------------------------------------------------------
# Words


def _money(amount: float, currency: str) -> str:
    """``GBP 1,234`` (pence shown below 100)."""
    if not math.isfinite(amount):
        return "no upper limit"
    return f"{currency} {amount:,.0f}" if abs(amount) >= 100 else f"{currency} {amount:,.2f}"


def _count(value: float) -> str:
    """A number of outcomes: whole numbers from 10 up, one decimal below."""
    return f"{value:,.1f}" if abs(value) < 10 else f"{value:,.0f}"


def _ce_reading(ce: CostEffectiveness) -> str:
    """The total, the outcomes bought and their cost, in the direction the reader expects."""
    one, many = UNIT_WORDS[ce.outcome]
    cur, conf = ce.currency, f"{ce.confidence}% interval"
    head = f"Coaching {ce.n_coached:,} learners cost {_money(ce.total_cost, cur)} in total"
    if ce.gain_ci_high <= 0:
        return (
            f"{head}. It bought no {many}: the {conf} of the effect is at or below no effect, so "
            f"there is no cost per {one}."
        )
    bought = (
        f"about {_count(ce.additional_outcomes)} {many} ({conf} "
        f"{_count(ce.n_coached * ce.gain_ci_low)} to "
        f"{_count(ce.n_coached * ce.gain_ci_high)})"
    )
    if not ce.bounded:  # whichever interval is read: the effect could be nil
        at_estimate = (
            f", about {_money(ce.cost_per_outcome, cur)} at the estimate"
            if ce.gain_per_learner > 0
            else ""
        )
        return (
            f"{head}; the effect could be nil (the {conf} of the effect includes no effect), so "
            f"the cost per {one} has no upper limit: it is at least "
            f"{_money(ce.fieller[0], cur)}{at_estimate}."
        )
    return (
        f"{head} and bought {bought}: each {one} cost about {_money(ce.cost_per_outcome, cur)} "
        f"({conf} {_money(ce.ci_low, cur)} to {_money(ce.ci_high, cur)})."
    )


def _roi_reading(r: ReturnOnInvestment) -> str:
    """BCR and ROI at each value, labelled as resting on the analyst's value."""
    ce = r.cost_effectiveness
    one, _ = UNIT_WORDS[ce.outcome]
    cur = ce.currency
    base = r.at(1.0) if (r.frame["value_multiplier"] == 1.0).any() else r.frame.iloc[0]
    parts = [
        f"This rests on the assumption that one {one} is worth {_money(base['value_per_outcome'], cur)} "
        f"(a value supplied by the analyst, not measured here)."
    ]
    parts.append(
        f"At that value the estimated benefits are {_money(base['benefits'], cur)} against costs of "
        f"{_money(ce.total_cost, cur)}: a benefit-cost ratio of {base['bcr']:.2f} and an ROI of "
        f"{base['roi_percent']:.0f}% ({ce.confidence}% interval {base['roi_ci_low']:.0f}% to "
        f"{base['roi_ci_high']:.0f}%)."
    )
    others = r.frame[r.frame["value_multiplier"] != base["value_multiplier"]]
    if len(others):
        shown = "; ".join(
            f"at {_money(row.value_per_outcome, cur)} the ratio is {row.bcr:.2f} (ROI {row.roi_percent:.0f}%)"
            for row in others.itertuples()
        )
        parts.append(f"With other values: {shown}.")
    parts.append(
        "Benefits count only the coached learners' additional outcomes in this evaluation."
    )
    return " ".join(parts)


@dataclass(frozen=True)
class ValueForMoney:
    """An evaluation's cost per outcome for each headline effect, and its return on investment
    where the analyst valued the outcome."""

    costs: tuple[CostEffectiveness, ...]
    returns: tuple[ReturnOnInvestment, ...] = ()

    def to_frame(self) -> pd.DataFrame:
        """One row per outcome."""
        return pd.concat([c.to_frame() for c in self.costs], ignore_index=True)

    def readings(self) -> list[str]:
        """A plain sentence per cost per outcome and per return on investment."""
        return [c.reading() for c in self.costs] + [r.reading() for r in self.returns]

    def as_dict(self) -> dict[str, Any]:
        """The JSON form used in results.json."""
        return {
            "cost_per_outcome": [c.as_dict() for c in self.costs],
            "return_on_investment": [
                {"outcome": r.outcome, "table": r.to_frame().to_dict(orient="records")}
                for r in self.returns
            ],
        }

    def _repr_html_(self) -> str:
        first, *rest = self.readings() or ["No costs"]
        return summary_html(first, rest, {"Costs and outcomes": self.to_frame()})


def evaluation_costs(
    headlines: Sequence[Any],
    samples: Mapping[str, Any],
    *,
    costs: Any,
    treatment: str = "coached",
    alpha: float = 0.05,
) -> ValueForMoney | None:
    """Cost per outcome of each headline effect (None without costs).

    Parameters
    ----------
    headlines : sequence of EffectEstimate
        The effect quoted for each outcome (``follow_through``, ``skills_gap``).
    samples : mapping of outcome to AnalysisSample
        The learners behind each effect: the coached among them, and their sessions, are what
        was paid for.
    costs : CostsSpec or mapping, optional
        The params' ``costs``.
    """
    if costs is None:
        return None
    spec = check_costs(costs.model_dump() if hasattr(costs, "model_dump") else costs)
    found, returns = [], []
    for effect in headlines:
        data = samples[effect.outcome].data
        coached = data[data[treatment] == 1]
        sessions = (
            float(coached["coaching_sessions"].sum()) if "coaching_sessions" in coached else 0.0
        )
        ce = cost_effectiveness(
            effect,
            outcome=effect.outcome,
            n_coached=len(coached),
            sessions_total=sessions,
            costs=spec,
            alpha=alpha,
        )
        if ce is None:
            continue
        found.append(ce)
        r = roi(ce, value_per_outcome=spec.value(effect.outcome))
        if r is not None:
            returns.append(r)
    return ValueForMoney(tuple(found), tuple(returns)) if found else None
