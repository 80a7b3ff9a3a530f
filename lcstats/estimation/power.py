"""Pilot planning: how many learners a coaching pilot needs, or what effect it can detect.

The power calculations are statsmodels' (``statsmodels.stats.power``): a two-sample t-test
(``TTestIndPower``) for an outcome in its own units with a known standard deviation, and a normal
test on Cohen's h (``NormalIndPower`` with ``proportion_effectsize``) for a proportion such as
follow-through. Nothing here re-implements a power formula.

Coaching reaches whole teams, so learners in a team are alike: with teams of ``m`` learners and
intra-class correlation ``ICC`` the design effect ``DE = 1 + (m - 1) * ICC`` multiplies the number
of learners needed, and divides the learners a pilot has into "effective" independent learners
for the minimum detectable effect (Donner & Klar 2000, *Design and Analysis of Cluster
Randomization Trials in Health Research*, ch. 5).

``ratio`` is the number of comparison learners per coached learner (statsmodels' ``nobs2 =
ratio * nobs1``). All tests are two-sided.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Literal, get_args

import pandas as pd
from statsmodels.stats.power import NormalIndPower, TTestIndPower
from statsmodels.stats.proportion import proportion_effectsize

from lcstats.core.display import summary_html
from lcstats.core.options import check_choice

__all__ = [
    "PowerResult",
    "design_effect",
    "minimum_detectable_effect",
    "minimum_detectable_effect_proportion",
    "plan_pilot",
    "required_sample_size",
    "required_sample_size_proportion",
]

Analysis = Literal["sample_size", "minimum_detectable_effect"]
Test = Literal["t", "proportions"]
Direction = Literal["increase", "decrease"]
DIRECTIONS: tuple[str, ...] = get_args(Direction)
TEST_LABELS = {
    "t": "two-sample t-test (statsmodels TTestIndPower)",
    "proportions": "two-sample test of proportions on Cohen's h (statsmodels NormalIndPower)",
}
POWER_CLASSES = {"t": TTestIndPower, "proportions": NormalIndPower}
COLUMNS = (
    "analysis",
    "test",
    "alpha",
    "power",
    "effect_size",
    "effect",
    "outcome_sd",
    "baseline",
    "target",
    "n_treated",
    "n_control",
    "n_treated_effective",
    "n_control_effective",
    "cluster_size",
    "icc",
    "design_effect",
    "n_clusters_treated",
    "n_clusters_control",
)


@dataclass(frozen=True)
class PowerResult:
    """A pilot plan: the learners needed for an effect, or the effect a pilot can detect.

    ``effect_size`` is standardised (Cohen's d for the t-test, Cohen's h for proportions) and
    positive. ``effect`` is in the outcome's units (a proportion difference for proportions), or
    None when no standard deviation was given. ``n_treated`` / ``n_control`` are learners (after
    the design effect); ``n_*_effective`` are the equivalent numbers of independent learners.
    """

    analysis: Analysis
    test: Test
    alpha: float
    power: float
    effect_size: float
    effect: float | None
    outcome_sd: float | None
    baseline: float | None
    target: float | None
    n_treated: int
    n_control: int
    n_treated_effective: float
    n_control_effective: float
    cluster_size: float
    icc: float
    design_effect: float
    label: str = "the outcome"
    units: str = ""
    note: str = ""

    @property
    def n_clusters_treated(self) -> int | None:
        """Teams needed (or available) for the coached learners; None without clustering."""
        return math.ceil(self.n_treated / self.cluster_size) if self.cluster_size > 1 else None

    @property
    def n_clusters_control(self) -> int | None:
        """Teams needed (or available) for the comparison learners; None without clustering."""
        return math.ceil(self.n_control / self.cluster_size) if self.cluster_size > 1 else None

    def as_dict(self) -> dict:
        """The record of `to_frame` as a dict (JSON-friendly)."""
        d = asdict(self)
        d["n_clusters_treated"] = self.n_clusters_treated
        d["n_clusters_control"] = self.n_clusters_control
        return {k: d[k] for k in COLUMNS}

    def to_frame(self) -> pd.DataFrame:
        """A one-row tidy frame with snake_case columns."""
        frame = pd.DataFrame([self.as_dict()], columns=list(COLUMNS))
        for col in ("n_treated", "n_control", "n_clusters_treated", "n_clusters_control"):
            frame[col] = frame[col].astype("Int64")
        for col in ("effect", "outcome_sd", "baseline", "target"):
            frame[col] = frame[col].astype(float)
        return frame

    def _effect_words(self) -> str:
        """'a rise in follow-through from 45% to 55%' or 'an effect of 0.2 points (0.25 SD)'."""
        if self.test == "proportions" and self.baseline is not None:
            if self.target is None or math.isnan(self.target):
                return f"any change in {self.label} from {_pct(self.baseline)}"
            word = "rise" if self.target > self.baseline else "fall"
            return f"a {word} in {self.label} from {_pct(self.baseline)} to {_pct(self.target)}"
        sd = f"{self.effect_size:.2g} standard deviations"
        if self.effect is None:
            return f"an effect on {self.label} of {sd}"
        units = f" {self.units}" if self.units else ""
        return f"an effect on {self.label} of {abs(self.effect):.3g}{units} ({sd})"

    def _design_words(self) -> str:
        """' (in teams of 10 with ICC 0.05: design effect 1.45)', or '' without clustering."""
        if self.design_effect == 1:
            return ""
        return (
            f" (in teams of {self.cluster_size:g} with ICC {self.icc:g}: design effect "
            f"{self.design_effect:.3g})"
        )

    def reading(self) -> str:
        """The plan in plain words."""
        level = f"{self.power:.0%} power (two-sided test at the {self.alpha:.0%} level)"
        if self.analysis == "sample_size":
            return (
                f"To detect {self._effect_words()} with {level}, a pilot needs about "
                f"{self.n_treated:,} coached and {self.n_control:,} comparison learners"
                f"{self._design_words()}."
            )
        if self.note:
            return (
                f"With {self.n_treated:,} coached and {self.n_control:,} comparison learners"
                f"{self._design_words()}, {self.note}."
            )
        more = "or larger" if self.test != "proportions" else "or a larger change"
        return (
            f"With {self.n_treated:,} coached and {self.n_control:,} comparison learners"
            f"{self._design_words()}, a pilot has {level} to detect {self._effect_words()} "
            f"{more}; smaller effects could easily go unnoticed."
        )

    def summary(self) -> str:
        """Return a short text summary (not printed)."""
        row = self.as_dict()
        width = max(len(k) for k in row)
        lines = [f"Pilot plan ({TEST_LABELS[self.test]})"]
        for k, v in row.items():
            if v is None:
                continue
            text = f"{v:.4g}" if isinstance(v, float) else str(v)
            lines.append(f"  {k:<{width}}  {text}")
        lines.append(self.reading())
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        return summary_html(self.reading(), details={"Calculation": self.to_frame()})


def _ceil(x: float) -> int:
    """Round a number of learners up, ignoring root-finding noise (150.0000001 -> 150)."""
    return math.ceil(round(x, 6))


def _pct(p: float) -> str:
    """A proportion as a percentage without trailing zeros ('45%', '12.5%')."""
    text = f"{100 * p:.1f}".rstrip("0").rstrip(".")
    return f"{text}%"


# ----------------------------------------------------------------------------------------------
# Argument checks (ValueError naming the argument and what is allowed)


def _number(name: str, value: object) -> float:
    """A finite number (booleans and other types refused)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name}={value!r} must be a number")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name}={value!r} must be finite")
    return value


def _open_unit(name: str, value: object) -> float:
    """A number strictly between 0 and 1."""
    v = _number(name, value)
    if not 0 < v < 1:
        raise ValueError(f"{name}={value!r} must be strictly between 0 and 1")
    return v


def _positive(name: str, value: object) -> float:
    """A number greater than 0."""
    v = _number(name, value)
    if v <= 0:
        raise ValueError(f"{name}={value!r} must be greater than 0")
    return v


def _count(name: str, value: object, minimum: int = 2) -> int:
    """A whole number of at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}={value!r} must be a whole number of at least {minimum}")
    return value


def _levels(alpha: object, power: object) -> tuple[float, float]:
    """Alpha and power, each strictly between 0 and 1, power above alpha."""
    a, p = _open_unit("alpha", alpha), _open_unit("power", power)
    if p <= a:
        raise ValueError(f"power={power!r} must be greater than alpha={alpha!r}")
    return a, p


def design_effect(cluster_size: float = 1.0, icc: float = 0.0) -> float:
    """Design effect of clustering, ``1 + (cluster_size - 1) * icc``.

    Parameters
    ----------
    cluster_size : float
        Average number of learners per team (cluster), at least 1.
    icc : float
        Intra-class correlation of the outcome within teams, ``0 <= icc < 1``.

    Examples
    --------
    >>> design_effect(11, 0.1)
    2.0
    """
    m = _number("cluster_size", cluster_size)
    if m < 1:
        raise ValueError(f"cluster_size={cluster_size!r} must be at least 1 (learners per team)")
    rho = _number("icc", icc)
    if not 0 <= rho < 1:
        raise ValueError(f"icc={icc!r} must be at least 0 and below 1")
    return 1.0 + (m - 1.0) * rho


def _plan(
    test: Test,
    *,
    alpha: float,
    power: float,
    cluster_size: float,
    icc: float,
    effect_size: float | None = None,
    ratio: float = 1.0,
    n: tuple[int, int] | None = None,
) -> PowerResult:
    """The learners needed for ``effect_size``, or the effect the pilot's ``n`` learners detect.

    The standardised effect only: callers check the arguments before, and add the effect in
    the outcome's units and the words for the reading after (``dataclasses.replace``).
    """
    analysis: Analysis = "sample_size" if n is None else "minimum_detectable_effect"
    de = design_effect(cluster_size, icc)
    solver = POWER_CLASSES[test]()
    if n is None:  # solve for independent coached learners, then count learners in teams
        e1 = float(
            solver.solve_power(effect_size=effect_size, alpha=alpha, power=power, ratio=ratio)
        )
        e0 = e1 * ratio
        n = (_ceil(e1 * de), _ceil(e0 * de))
    else:  # learners in teams count as n / DE independent learners
        e1, e0 = _effective(*n, de)
        effect_size = float(solver.solve_power(nobs1=e1, alpha=alpha, power=power, ratio=e0 / e1))
    return PowerResult(
        analysis=analysis,
        test=test,
        alpha=alpha,
        power=power,
        effect_size=effect_size,
        effect=None,
        outcome_sd=None,
        baseline=None,
        target=None,
        n_treated=n[0],
        n_control=n[1],
        n_treated_effective=e1,
        n_control_effective=e0,
        cluster_size=float(cluster_size),
        icc=float(icc),
        design_effect=de,
    )


# ----------------------------------------------------------------------------------------------
# Sample size for a given effect


def required_sample_size(
    *,
    effect: float,
    outcome_sd: float,
    alpha: float = 0.05,
    power: float = 0.8,
    ratio: float = 1.0,
    cluster_size: float = 1.0,
    icc: float = 0.0,
    label: str = "the outcome",
    units: str = "",
) -> PowerResult:
    """Learners a pilot needs to detect an effect in the outcome's units (two-sample t-test).

    Parameters
    ----------
    effect : float
        The smallest effect worth detecting, in the outcome's units (sign ignored: two-sided).
    outcome_sd : float
        Standard deviation of the outcome among learners (from past data or a pilot).
    alpha, power : float
        Significance level and power.
    ratio : float
        Comparison learners per coached learner.
    cluster_size, icc : float
        Team size and intra-class correlation for the design effect.
    label, units : str
        Words for the reading (``"skills gap"``, ``"points"``).

    Returns
    -------
    PowerResult

    Examples
    --------
    >>> plan = required_sample_size(effect=0.5, outcome_sd=1.0)
    >>> plan.n_treated, plan.n_control
    (64, 64)
    >>> required_sample_size(effect=0.5, outcome_sd=1.0, cluster_size=11, icc=0.1).n_treated
    128
    """
    eff = _number("effect", effect)
    if eff == 0:
        raise ValueError("effect=0: a pilot cannot be sized to detect no effect")
    sd = _positive("outcome_sd", outcome_sd)
    a, p = _levels(alpha, power)
    r = _positive("ratio", ratio)
    d = abs(eff) / sd
    plan = _plan("t", alpha=a, power=p, cluster_size=cluster_size, icc=icc, effect_size=d, ratio=r)
    return replace(plan, effect=eff, outcome_sd=sd, label=label, units=units)


def required_sample_size_proportion(
    *,
    baseline: float,
    target: float,
    alpha: float = 0.05,
    power: float = 0.8,
    ratio: float = 1.0,
    cluster_size: float = 1.0,
    icc: float = 0.0,
    label: str = "follow-through",
) -> PowerResult:
    """Learners a pilot needs to detect a change in a proportion, such as follow-through.

    Uses Cohen's h (``statsmodels.stats.proportion.proportion_effectsize``) and
    ``NormalIndPower``.

    Parameters
    ----------
    baseline : float
        The proportion without coaching (e.g. 0.45 for 45% of action items done on time).
    target : float
        The proportion with coaching that is worth detecting.
    alpha, power, ratio, cluster_size, icc
        As in `required_sample_size`.
    label : str
        The outcome's name in the reading.

    Returns
    -------
    PowerResult

    Examples
    --------
    >>> plan = required_sample_size_proportion(baseline=0.45, target=0.55)
    >>> plan.n_treated
    392
    >>> required_sample_size_proportion(baseline=0.45, target=0.55, cluster_size=10,
    ...                                 icc=0.1).reading()  # doctest: +NORMALIZE_WHITESPACE
    'To detect a rise in follow-through from 45% to 55% with 80% power (two-sided test at the
    5% level), a pilot needs about 744 coached and 744 comparison learners (in teams of 10 with
    ICC 0.1: design effect 1.9).'
    """
    p0, p1 = _open_unit("baseline", baseline), _open_unit("target", target)
    if p0 == p1:
        raise ValueError("target equals baseline: a pilot cannot be sized to detect no change")
    a, p = _levels(alpha, power)
    r = _positive("ratio", ratio)
    h = abs(float(proportion_effectsize(p1, p0)))
    plan = _plan(
        "proportions", alpha=a, power=p, cluster_size=cluster_size, icc=icc, effect_size=h, ratio=r
    )
    return replace(plan, effect=p1 - p0, baseline=p0, target=p1, label=label)


# ----------------------------------------------------------------------------------------------
# Minimum detectable effect for a given pilot


def _effective(n_treated: int, n_control: int, de: float) -> tuple[float, float]:
    """Group sizes divided by the design effect (refused below 2 per group)."""
    e1, e0 = n_treated / de, n_control / de
    if min(e1, e0) < 2:
        raise ValueError(
            f"with a design effect of {de:.3g}, {n_treated} coached and {n_control} comparison "
            "learners count as fewer than 2 independent learners per group: too few to plan with"
        )
    return e1, e0


def minimum_detectable_effect(
    *,
    n_treated: int,
    n_control: int,
    alpha: float = 0.05,
    power: float = 0.8,
    outcome_sd: float | None = None,
    cluster_size: float = 1.0,
    icc: float = 0.0,
    label: str = "the outcome",
    units: str = "",
) -> PowerResult:
    """Smallest effect a pilot of this size detects with the given power (two-sample t-test).

    Parameters
    ----------
    n_treated, n_control : int
        Coached and comparison learners in the pilot.
    alpha, power : float
        Significance level and power.
    outcome_sd : float, optional
        Standard deviation of the outcome; when given, ``effect`` is in the outcome's units,
        otherwise only the standardised effect (Cohen's d) is reported.
    cluster_size, icc : float
        Team size and intra-class correlation: the learners count as ``n / DE`` independent ones.
    label, units : str
        Words for the reading.

    Returns
    -------
    PowerResult

    Examples
    --------
    >>> mde = minimum_detectable_effect(n_treated=64, n_control=64)
    >>> round(mde.effect_size, 3)
    0.499
    >>> round(minimum_detectable_effect(n_treated=64, n_control=64, outcome_sd=2.0).effect, 3)
    0.998
    """
    n1, n0 = _count("n_treated", n_treated), _count("n_control", n_control)
    a, p = _levels(alpha, power)
    sd = None if outcome_sd is None else _positive("outcome_sd", outcome_sd)
    plan = _plan("t", alpha=a, power=p, cluster_size=cluster_size, icc=icc, n=(n1, n0))
    effect = None if sd is None else plan.effect_size * sd
    return replace(plan, effect=effect, outcome_sd=sd, label=label, units=units)


def minimum_detectable_effect_proportion(
    *,
    n_treated: int,
    n_control: int,
    baseline: float,
    alpha: float = 0.05,
    power: float = 0.8,
    cluster_size: float = 1.0,
    icc: float = 0.0,
    direction: str = "increase",
    label: str = "follow-through",
) -> PowerResult:
    """Smallest change from a baseline proportion a pilot detects with the given power.

    Solves ``NormalIndPower`` for Cohen's h and converts it back to a proportion:
    ``target = sin(asin(sqrt(baseline)) +/- h / 2)^2``.

    Parameters
    ----------
    n_treated, n_control : int
        Coached and comparison learners in the pilot.
    baseline : float
        The proportion without coaching.
    alpha, power, cluster_size, icc
        As in `minimum_detectable_effect`.
    direction : {"increase", "decrease"}
        Whether coaching is expected to raise or lower the proportion.
    label : str
        The outcome's name in the reading.

    Returns
    -------
    PowerResult
        ``target`` is the detectable proportion (NaN, with a note, when even 0% or 100% could
        not be detected).

    Examples
    --------
    >>> mde = minimum_detectable_effect_proportion(n_treated=392, n_control=392, baseline=0.45)
    >>> round(mde.target, 3)
    0.55
    """
    n1, n0 = _count("n_treated", n_treated), _count("n_control", n_control)
    p0 = _open_unit("baseline", baseline)
    a, p = _levels(alpha, power)
    check_choice("direction", direction, DIRECTIONS)
    plan = _plan("proportions", alpha=a, power=p, cluster_size=cluster_size, icc=icc, n=(n1, n0))
    h = plan.effect_size
    phi = math.asin(math.sqrt(p0)) + (h / 2 if direction == "increase" else -h / 2)
    note = ""
    if 0 <= phi <= math.pi / 2:
        p1 = math.sin(phi) ** 2
    else:
        p1 = math.nan
        note = (
            f"the pilot is too small to detect even a {'rise to 100%' if direction == 'increase' else 'fall to 0%'} "
            f"in {label} from {_pct(p0)} with {p:.0%} power"
        )
    return replace(plan, effect=p1 - p0, baseline=p0, target=p1, label=label, note=note)


def plan_pilot(
    *,
    n_treated: int | None = None,
    n_control: int | None = None,
    effect: float | None = None,
    outcome_sd: float | None = None,
    baseline: float | None = None,
    target: float | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
    ratio: float = 1.0,
    cluster_size: float = 1.0,
    icc: float = 0.0,
    direction: str = "increase",
) -> PowerResult:
    """Pick the right calculation from the arguments given (for the command line).

    - ``n_treated`` (and ``n_control``, default ``n_treated * ratio``): the minimum detectable
      effect, as a proportion when ``baseline`` is given, otherwise in SD units (and in the
      outcome's units when ``outcome_sd`` is given);
    - ``baseline`` and ``target``: learners needed for that change in a proportion;
    - ``effect`` and ``outcome_sd``: learners needed for that effect.

    Raises
    ------
    ValueError
        When the arguments match none of these, or mix two of them.

    Examples
    --------
    >>> plan_pilot(baseline=0.45, target=0.55).n_treated
    392
    >>> plan_pilot(n_treated=100, ratio=2).n_control
    200
    """
    common = {"alpha": alpha, "power": power, "cluster_size": cluster_size, "icc": icc}
    if n_treated is not None:
        extra = [k for k, v in (("effect", effect), ("target", target)) if v is not None]
        if extra:
            raise ValueError(
                f"give either the pilot's size (n_treated) to get the detectable effect, or the "
                f"effect to get the size, not both (also given: {', '.join(extra)})"
            )
        return _detectable_effect(
            n_treated=n_treated,
            n_control=n_control,
            outcome_sd=outcome_sd,
            baseline=baseline,
            ratio=ratio,
            direction=direction,
            common=common,
        )
    if n_control is not None:
        raise ValueError("n_control needs n_treated too")
    if baseline is not None or target is not None:
        if baseline is None or target is None:
            raise ValueError("a change in a proportion needs both baseline and target")
        if effect is not None or outcome_sd is not None:
            raise ValueError(
                "give either baseline and target (a proportion) or effect and outcome_sd, not both"
            )
        return required_sample_size_proportion(
            baseline=baseline, target=target, ratio=ratio, **common
        )
    if effect is not None and outcome_sd is not None:
        return required_sample_size(effect=effect, outcome_sd=outcome_sd, ratio=ratio, **common)
    raise ValueError(
        "nothing to plan: give n_treated (for the detectable effect), baseline and target (for a "
        "change in a proportion such as follow-through), or effect and outcome_sd"
    )


def _detectable_effect(
    *,
    n_treated: int,
    n_control: int | None,
    outcome_sd: float | None,
    baseline: float | None,
    ratio: float,
    direction: str,
    common: dict,
) -> PowerResult:
    """`plan_pilot` given the pilot's size: the detectable effect (``common``: alpha, power...)."""
    if n_control is None:
        r = _positive("ratio", ratio)
        n_control = max(2, round(n_treated * r)) if isinstance(n_treated, int) else n_treated
    if baseline is None:
        return minimum_detectable_effect(
            n_treated=n_treated, n_control=n_control, outcome_sd=outcome_sd, **common
        )
    if outcome_sd is not None:
        raise ValueError("outcome_sd is not used with baseline (a proportion's SD follows from it)")
    return minimum_detectable_effect_proportion(
        n_treated=n_treated, n_control=n_control, baseline=baseline, direction=direction, **common
    )
