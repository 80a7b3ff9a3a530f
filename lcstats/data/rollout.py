"""Synthetic programme rolled out to teams in waves, with a confounder nobody recorded.

`simulate_rollout` draws a programme in the data contract (the ``learners``, ``action_items`` and
``skill_assessments`` tables of `lcstats.data.simulate.SimulatedProgramme`, written by
`lcstats.data.simulate.write_programme`) in which teams start coaching in waves. The learners
table gains ``coached_from``: the first day of the team's wave month (missing for the teams never
coached). The same arguments give the same tables (``numpy.random.default_rng(seed)``).

Data-generating process (months ``t = 1..T``)
-------------------------------------------
Notation: ``expit(x) = 1 / (1 + exp(-x))``; ``z`` terms are standard normal.

Timing
    The window starts in January 2025 (month 1, ``START``). Wave ``k`` (``k = 1..n_waves``) starts in month
    ``pre_periods + 1 + (k - 1) * wave_gap``; the window ends ``post_periods`` months after the
    last wave started (``as_of`` is the last day of month ``T``). So at least ``pre_periods``
    (>= 2) months precede the first wave.
Unrecorded trait (motivation)
    A team trait ``m_team ~ N(0, 1)`` and a learner trait ``m = m_team + 0.7 z``. Nothing records
    them. Teams are ranked by ``confounding * m_team + z_team``: the top ``1 - never_share``
    of the teams are split into ``n_waves`` equal waves in rank order (the most motivated teams
    start first), the others are never coached.
Recorded covariates
    ``engagement`` = ``3.5 + 0.7 (0.35 m / sd(m) + 0.94 z)`` rounded to one decimal (a weak proxy
    of motivation), ``tenure_months`` (Gamma(4, 9), floored), ``role`` (five job families).
Follow-through
    Items are due monthly: each learner has ``Poisson(items_per_month)`` items due in each month,
    at a uniform day of the month, created 14-45 days before. Item ``j`` of learner ``i`` due in
    month ``t`` is done on time with probability
    ``p0 = 0.15 + 0.6 expit(0.6 m + 0.2 z_eng - 0.15 z_ten + role) + lambda_t + v_team,t``
    without coaching, where ``lambda_t = 0.03 sin(2 pi t / 12) + 0.002 t`` is common to everyone
    and ``v_team,t ~ N(0, 0.02)`` is a team shock. The untreated outcome is additive in a learner
    level and a common time effect, so trends are parallel on the scale of the outcome (a share)
    whatever the motivation. Coaching adds ``tau = effect * min(1, (e + 1) / 3)`` in event month
    ``e = t - start >= 0`` (the effect builds up over three months); probabilities are clipped to
    ``[0.01, 0.99]``. On-time items are completed between creation and due date; 40% of late
    items are completed within 60 days (never after ``as_of``), the others never.
Skills
    By default two skills assessed before the first wave and at the end (levels 1-5, target 4),
    with a small coaching effect; they are there so that the programme is complete, not for
    validation. With ``assessment_gap = a > 0`` the two skills are assessed every ``a`` months
    from month 1 (on the 10th; waves ``pre``, ``mid1``, ..., ``post``; at least three) and the
    skills gap is validated too: a learner's latent level in month ``t`` is
    ``mu = 2 + 0.8 (level0 - 0.15) / 0.6 + 0.2 u + 0.6 (t - 1) / T + 0.1 tanh(z_team,t)
    + SKILL_EFFECT min(1, (e + 1) / 3)`` (``level0`` the learner's untreated follow-through level,
    so motivated learners start with smaller gaps; ``u`` uniform per learner and skill; the last
    term from event month ``e >= 0``), the assessed level is ``floor(mu + v)`` with ``v``
    uniform on [0, 1) (so that its expectation is exactly ``mu``; it stays within 1-5) and the
    target is 5, so the expected gap is ``5 - mu``: trends in the gap are parallel, and coaching
    narrows it by ``SKILL_EFFECT`` once it has built up.

Truth (``truth["effects"]``, exact given the drawn items)
    ``estimand="simple"``: the estimand of the simple aggregation of the staggered estimator on the
    team x month panel (`lcstats.outcomes.panel.balanced_panel`): the average over the post cells
    ``(g, t)``, ``t >= g``, weighted by the number of teams in wave ``g``, of the average over the
    wave's teams of ``sum_i n_it tau_it / sum_i n_it`` (items due, pooled by team).
    With ``assessment_gap``, ``outcome="skills_gap", estimand="simple"``: the estimand of the
    simple aggregation on the team x wave panel (`lcstats.outcomes.panel.skills_gap_panel`),
    ``-SKILL_EFFECT`` times the mean ramp over the post cells weighted by teams per wave.
    ``estimand="ATT"``: the effect on learner-level follow-through over all items due by
    ``as_of`` among the coached learners (what a cross-sectional comparison of coached and
    uncoached learners targets): the mean over coached learners of their items' ``tau`` (0 for
    items due before coaching started).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from lcstats.data.simulate import (
    ROLES,
    SimulatedProgramme,
    _action_item_table,
    _dates,
    _ids,
)

__all__ = ["simulate_rollout"]

ROLE_PROBS = np.array([0.30, 0.20, 0.20, 0.20, 0.10])
ROLE_EFFECT = np.array([0.0, 0.10, -0.15, 0.05, 0.15])
LEARNER_TRAIT_SD = 0.7
TRAIT_EFFECT = 0.6
ENGAGEMENT_PROXY = 0.35
TEAM_SHOCK_SD = 0.02
RAMP_MONTHS = 3
LATE_COMPLETED_SHARE = 0.4
LATE_MAX_DAYS = 60
SKILLS = ("Planning", "Data literacy")
START = "2025-01"  # the first month of the window
SKILL_EFFECT = 0.4  # levels gained by the third month of coaching (assessment_gap > 0)
SKILL_GROWTH = 0.6  # levels everyone gains over the window
SKILL_DAY = 9  # days after the first of the month on which skills are assessed


@dataclass(frozen=True)
class _Design:
    """The checked arguments of `simulate_rollout` and the month grid they imply."""

    n_teams: int
    team_size: int
    n_waves: int
    effect: float
    confounding: float
    never_share: float
    pre_periods: int
    wave_gap: int
    post_periods: int
    items_per_month: float
    start: pd.Period
    assessment_gap: int = 0

    @property
    def n_months(self) -> int:
        """Months in the window."""
        return self.pre_periods + (self.n_waves - 1) * self.wave_gap + self.post_periods

    @property
    def wave_months(self) -> np.ndarray:
        """The month (1-based) each wave starts in."""
        return self.pre_periods + 1 + self.wave_gap * np.arange(self.n_waves)

    def month_start(self, month: np.ndarray) -> np.ndarray:
        """First day of month ``month`` (1-based) as datetime64[D]."""
        first = np.datetime64(self.start.start_time.date(), "M")
        return (first + (np.asarray(month) - 1)).astype("datetime64[D]")

    @property
    def assessment_months(self) -> np.ndarray:
        """The months skills are assessed in (``assessment_gap > 0``)."""
        return np.arange(1, self.n_months + 1, max(self.assessment_gap, 1))

    @property
    def skill_waves(self) -> list[str]:
        """The names of the assessment waves, in date order."""
        if not self.assessment_gap:
            return ["pre", "post"]
        n = self.assessment_months.size
        return ["pre", *(f"mid{k}" for k in range(1, n - 1)), "post"]

    @property
    def as_of_day(self) -> np.datetime64:
        """Last day of the window."""
        return self.month_start(np.array(self.n_months + 1)) - np.timedelta64(1, "D")


def _check(arguments: dict[str, Any]) -> _Design:
    """Validate the arguments (ValueError naming the first bad one)."""
    ints = {"n_teams": 4, "team_size": 1, "n_waves": 1, "pre_periods": 2, "wave_gap": 1}
    ints["assessment_gap"] = 0
    for name, low in ints.items():
        value = arguments[name]
        if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < low:
            raise ValueError(f"{name} must be an integer of at least {low}, got {value!r}")
    if not isinstance(arguments["post_periods"], int) or arguments["post_periods"] < 1:
        raise ValueError(f"post_periods must be an integer >= 1, got {arguments['post_periods']!r}")
    for name in ("effect", "confounding", "items_per_month"):
        if not isinstance(arguments[name], int | float) or not math.isfinite(arguments[name]):
            raise ValueError(f"{name} must be a finite number, got {arguments[name]!r}")
    if not 0 <= arguments["never_share"] < 1:
        raise ValueError(f"never_share must be in [0, 1), got {arguments['never_share']!r}")
    if arguments["items_per_month"] <= 0:
        raise ValueError("items_per_month must be positive")
    design = _Design(**{k: v for k, v in arguments.items() if k != "seed"})
    n_coached = design.n_teams - round(design.never_share * design.n_teams)
    if n_coached < design.n_waves:
        raise ValueError(
            f"{n_coached} coached teams cannot fill {design.n_waves} waves; add teams or waves"
        )
    if design.assessment_gap and design.assessment_months.size < 3:
        raise ValueError(
            f"assessment_gap={design.assessment_gap} gives {design.assessment_months.size} "
            f"assessments in {design.n_months} months; at least three are needed (or use 0)"
        )
    return design


@dataclass(frozen=True)
class _People:
    """Learner-level draws: team, wave (0 = never), traits and recorded covariates."""

    team: np.ndarray
    team_wave: np.ndarray
    level: np.ndarray  # untreated follow-through level of each learner
    engagement: np.ndarray
    tenure: np.ndarray
    role: np.ndarray


def _draw_people(rng: np.random.Generator, d: _Design) -> _People:
    """Teams, waves (earlier for motivated teams) and learner covariates."""
    n = d.n_teams * d.team_size
    team = np.repeat(np.arange(d.n_teams), d.team_size)
    m_team = rng.standard_normal(d.n_teams)
    rank = np.argsort(-(d.confounding * m_team + rng.standard_normal(d.n_teams)), kind="stable")
    n_coached = d.n_teams - round(d.never_share * d.n_teams)
    team_wave = np.zeros(d.n_teams, dtype=np.int64)
    team_wave[rank[:n_coached]] = 1 + np.arange(n_coached) * d.n_waves // n_coached
    m = m_team[team] + LEARNER_TRAIT_SD * rng.standard_normal(n)
    z_eng = ENGAGEMENT_PROXY * m / np.sqrt(1 + LEARNER_TRAIT_SD**2)
    z_eng = z_eng + np.sqrt(1 - ENGAGEMENT_PROXY**2) * rng.standard_normal(n)
    engagement = np.round(np.clip(3.5 + 0.7 * z_eng, 1.0, 5.0), 1)
    tenure = np.minimum(np.floor(rng.gamma(4.0, 9.0, size=n)), 480).astype(np.int64)
    role = rng.choice(len(ROLES), size=n, p=ROLE_PROBS)
    z_ten = (tenure - 36.0) / 18.0
    latent = TRAIT_EFFECT * m + 0.2 * (engagement - 3.5) / 0.7 - 0.15 * z_ten + ROLE_EFFECT[role]
    level = 0.15 + 0.6 / (1 + np.exp(-latent))
    return _People(team, team_wave, level, engagement, tenure, role)


@dataclass(frozen=True)
class _Items:
    """One entry per item: owner, month due, days, and its chances on time with/without coaching."""

    owner: np.ndarray
    month: np.ndarray
    created: np.ndarray
    due: np.ndarray
    completed: np.ndarray
    tau: np.ndarray  # p1 - p0 when the owner is coached in that month, else 0


def _on_time_chances(
    rng: np.random.Generator, d: _Design, people: _People
) -> tuple[np.ndarray, np.ndarray]:
    """Learner x month chances of an item on time without coaching, and the coaching effect."""
    months = np.arange(1, d.n_months + 1)
    common = 0.03 * np.sin(2 * np.pi * months / 12) + 0.002 * months
    shock = TEAM_SHOCK_SD * rng.standard_normal((d.n_teams, d.n_months))
    p0 = np.clip(people.level[:, None] + common[None, :] + shock[people.team], 0.01, 0.99)
    wave = people.team_wave[people.team]
    start = np.where(wave > 0, d.wave_months[np.maximum(wave, 1) - 1], d.n_months + 10**6)
    event = months[None, :] - start[:, None]
    ramp = np.where(event >= 0, np.minimum(1.0, (event + 1) / RAMP_MONTHS), 0.0)
    p1 = np.clip(p0 + d.effect * ramp, 0.01, 0.99)
    return p0, np.where(event >= 0, p1 - p0, 0.0)


def _draw_items(rng: np.random.Generator, d: _Design, people: _People) -> _Items:
    """Items due monthly, and whether and when each was completed."""
    p0, tau = _on_time_chances(rng, d, people)
    n, t_n = p0.shape
    counts = rng.poisson(d.items_per_month, size=(n, t_n))
    owner = np.repeat(np.repeat(np.arange(n), t_n), counts.ravel())
    month = np.repeat(np.tile(np.arange(1, t_n + 1), n), counts.ravel())
    first = d.month_start(month)
    days_in_month = (d.month_start(month + 1) - first).astype(np.int64)
    due = first + np.floor(rng.random(owner.size) * days_in_month).astype(np.int64)
    created = due - rng.integers(14, 46, size=owner.size)
    item_tau = tau[owner, month - 1]
    on_time = rng.random(owner.size) < p0[owner, month - 1] + item_tau
    span = (due - created).astype(np.int64)
    done_on_time = created + np.floor(rng.random(owner.size) * (span + 1)).astype(np.int64)
    late_window = np.minimum(due + LATE_MAX_DAYS, d.as_of_day) - due
    late_done = (rng.random(owner.size) < LATE_COMPLETED_SHARE) & (late_window > np.timedelta64(0))
    done_late = (
        due + 1 + np.floor(rng.random(owner.size) * late_window.astype(np.int64)).astype(np.int64)
    )
    nat = np.datetime64("NaT", "D")
    completed = np.where(on_time, done_on_time, np.where(late_done, done_late, nat))
    return _Items(owner, month, created, due, completed.astype("datetime64[D]"), item_tau)


def _learner_table(d: _Design, people: _People, rng: np.random.Generator) -> pd.DataFrame:
    """The ``learners`` table, with ``coached_from``."""
    n = people.team.size
    wave = people.team_wave[people.team]
    coached = (wave > 0).astype(np.int64)
    start = d.month_start(d.wave_months[np.maximum(wave, 1) - 1])
    sessions = np.where(coached == 1, 1 + rng.binomial(11, 0.42, size=n), 0).astype(np.int64)
    team_ids = _ids("T", d.n_teams, 3)
    return pd.DataFrame(
        {
            "learner_id": pd.Series(_ids("L", n, 5), dtype="str"),
            "team_id": pd.Series(team_ids[people.team], dtype="str"),
            "manager_id": pd.Series(_ids("M", d.n_teams, 3)[people.team], dtype="str"),
            "cohort": pd.Series([str(d.start.asfreq("Q"))] * n, dtype="str"),
            "role": pd.Series(np.array(ROLES, dtype=object)[people.role], dtype="str"),
            "tenure_months": people.tenure,
            "engagement": people.engagement,
            "coached": coached,
            "coaching_sessions": sessions,
            "manager_coached": np.zeros(n, dtype=np.int64),
            "coached_from": _dates(np.where(coached == 1, start, np.datetime64("NaT", "D"))),
        }
    )


def _skills_table(
    rng: np.random.Generator, d: _Design, people: _People, learner_id: np.ndarray
) -> pd.DataFrame:
    """Two skills assessed before the first wave and at the end (a small coaching effect)."""
    n, k = people.team.size, len(SKILLS)
    coached = (people.team_wave[people.team] > 0).astype(float)
    pre = np.clip(np.floor(2.6 + 0.8 * rng.standard_normal((n, k)) + 0.5), 1, 5)
    post_latent = pre + 0.2 + 0.3 * coached[:, None] + 0.5 * rng.standard_normal((n, k))
    post = np.clip(np.floor(post_latent + 0.5), 1, 5)
    pre_on = d.month_start(np.array(1)) + np.timedelta64(10, "D")
    post_on = d.as_of_day - np.timedelta64(10, "D")
    rows = []
    for wave, level, day in (("pre", pre, pre_on), ("post", post, post_on)):
        for j, skill in enumerate(SKILLS):
            rows.append(
                pd.DataFrame(
                    {
                        "learner_id": pd.Series(learner_id, dtype="str"),
                        "skill": pd.Series([skill] * n, dtype="str"),
                        "wave": pd.Series([wave] * n, dtype="str"),
                        "assessed_on": _dates(np.full(n, day)),
                        "level": level[:, j].astype(np.int64),
                        "target_level": np.full(n, 4, dtype=np.int64),
                    }
                )
            )
    out = pd.concat(rows, ignore_index=True)
    return out.sort_values(["learner_id", "wave", "skill"], ascending=[True, False, True])


def _skill_ramp(d: _Design, people: _People) -> np.ndarray:
    """Learner x assessment share of the full skill effect (0 before coaching started)."""
    wave = people.team_wave[people.team]
    start = np.where(wave > 0, d.wave_months[np.maximum(wave, 1) - 1], d.n_months + 10**6)
    event = d.assessment_months[None, :] - start[:, None]
    return np.where(event >= 0, np.minimum(1.0, (event + 1) / RAMP_MONTHS), 0.0)


def _skill_waves_table(
    rng: np.random.Generator, d: _Design, people: _People, learner_id: np.ndarray
) -> pd.DataFrame:
    """Two skills assessed every ``assessment_gap`` months (see the module docstring)."""
    n, k, months = people.team.size, len(SKILLS), d.assessment_months
    base = 2.0 + 0.8 * (people.level - 0.15) / 0.6
    mu = base[:, None, None] + 0.2 * rng.random((n, k, 1))
    shock = 0.1 * np.tanh(rng.standard_normal((d.n_teams, months.size)))
    mu = mu + (SKILL_GROWTH * (months - 1) / d.n_months + shock[people.team])[:, None, :]
    mu = mu + SKILL_EFFECT * _skill_ramp(d, people)[:, None, :]
    level = np.clip(np.floor(mu + rng.random(mu.shape)), 1, 5).astype(np.int64)
    days = d.month_start(months) + np.timedelta64(SKILL_DAY, "D")
    frames = [
        pd.DataFrame(
            {
                "learner_id": pd.Series(learner_id, dtype="str"),
                "skill": pd.Series([skill] * n, dtype="str"),
                "wave": pd.Series([wave] * n, dtype="str"),
                "assessed_on": _dates(np.full(n, days[t])),
                "level": level[:, j, t],
                "target_level": np.full(n, 5, dtype=np.int64),
            }
        )
        for t, wave in enumerate(d.skill_waves)
        for j, skill in enumerate(SKILLS)
    ]
    out = pd.concat(frames, ignore_index=True)
    return out.sort_values(["learner_id", "assessed_on", "skill"], kind="stable")


def _truth_skills(d: _Design, people: _People) -> float:
    """The estimand of the simple aggregation on the team x wave skills-gap panel."""
    months = d.assessment_months
    values, weights = [], []
    for k, start in enumerate(d.wave_months, start=1):
        post = months >= start
        teams = int((people.team_wave == k).sum())
        if teams and post.any() and post.argmax() > 0:  # starts after the first assessment
            ramp = np.minimum(1.0, (months[post] - start + 1) / RAMP_MONTHS)
            values.append(-SKILL_EFFECT * ramp)
            weights.append(np.full(ramp.size, teams))
    return float(np.average(np.concatenate(values), weights=np.concatenate(weights)))


def _truth_simple(d: _Design, people: _People, items: _Items) -> float:
    """The estimand of the simple aggregation on the balanced team x month panel."""
    team = people.team[items.owner]
    cell = team * d.n_months + (items.month - 1)
    size = d.n_teams * d.n_months
    n_due = np.bincount(cell, minlength=size).reshape(d.n_teams, d.n_months)
    tau_sum = np.bincount(cell, weights=items.tau, minlength=size).reshape(d.n_teams, d.n_months)
    balanced = (n_due > 0).all(axis=1)
    effect = tau_sum / np.maximum(n_due, 1)
    values, weights = [], []
    for k, month in enumerate(d.wave_months, start=1):
        in_wave = balanced & (people.team_wave == k)
        if in_wave.any():
            post = effect[in_wave][:, month - 1 :].mean(axis=0)
            values.append(post)
            weights.append(np.full(post.size, in_wave.sum()))
    return float(np.average(np.concatenate(values), weights=np.concatenate(weights)))


def _truth_att(people: _People, items: _Items) -> float:
    """Effect on learner-level follow-through (all items due), averaged over coached learners."""
    n = people.team.size
    n_items = np.bincount(items.owner, minlength=n)
    tau_sum = np.bincount(items.owner, weights=items.tau, minlength=n)
    coached = (people.team_wave[people.team] > 0) & (n_items > 0)
    return float(np.mean(tau_sum[coached] / n_items[coached]))


def simulate_rollout(
    *,
    n_teams: int = 60,
    team_size: int = 10,
    n_waves: int = 3,
    seed: int = 20261201,
    effect: float = 0.08,
    confounding: float = 1.0,
    never_share: float = 0.3,
    pre_periods: int = 4,
    wave_gap: int = 3,
    post_periods: int = 4,
    items_per_month: float = 1.5,
    assessment_gap: int = 0,
) -> SimulatedProgramme:
    """Simulate a programme rolled out to teams in waves (see the module docstring).

    Parameters
    ----------
    n_teams, team_size : int
        Number of teams and learners per team.
    n_waves : int
        Number of waves; about ``never_share`` of the teams are never coached.
    seed : int
        Seed of ``numpy.random.default_rng``.
    effect : float
        Full effect of coaching on the chance of an item being done on time (reached in the third
        month of coaching).
    confounding : float
        How strongly the unrecorded team motivation brings a team's wave forward (0 = waves at
        random).
    never_share : float
        Share of teams never coached.
    pre_periods, wave_gap, post_periods : int
        Months before the first wave (at least 2), months between waves, and months after the
        last wave started.
    items_per_month : float
        Mean number of items due per learner and month.
    assessment_gap : int
        Months between skill assessments (from month 1; at least three assessments); 0 assesses
        before the first wave and at the end only.

    Returns
    -------
    SimulatedProgramme
        ``truth["effects"]`` holds the true ``simple`` (staggered, team x month) and ``ATT``
        (cross-sectional, learner level) effects on follow-through (and, with
        ``assessment_gap``, the ``simple`` effect on the skills gap); ``truth["rollout"]`` the
        waves of coaching and of assessment (``skill_waves``).

    Examples
    --------
    >>> prog = simulate_rollout(n_teams=12, seed=1)
    >>> sorted(prog.learners["coached_from"].dropna().dt.strftime("%Y-%m").unique())
    ['2025-05', '2025-08', '2025-11']
    >>> 0 < prog.effect("follow_through", estimand="simple") < 0.08
    True
    """
    arguments = {
        "n_teams": n_teams,
        "team_size": team_size,
        "n_waves": n_waves,
        "effect": effect,
        "confounding": confounding,
        "never_share": never_share,
        "pre_periods": pre_periods,
        "wave_gap": wave_gap,
        "post_periods": post_periods,
        "items_per_month": items_per_month,
        "start": pd.Period(START, freq="M"),
        "assessment_gap": assessment_gap,
    }
    d = _check({**arguments, "seed": seed})
    rng = np.random.default_rng(seed)
    people = _draw_people(rng, d)
    items = _draw_items(rng, d, people)
    learner_id = _ids("L", people.team.size, 5)
    learners = _learner_table(d, people, rng)
    if d.assessment_gap:
        skills = _skill_waves_table(rng, d, people, learner_id)
    else:
        skills = _skills_table(rng, d, people, learner_id)
    effects = [("follow_through", "simple", _truth_simple(d, people, items))]
    effects.append(("follow_through", "ATT", _truth_att(people, items)))
    if d.assessment_gap:
        effects.append(("skills_gap", "simple", _truth_skills(d, people)))
    truth = {
        "seed": seed,
        "n_learners": int(people.team.size),
        "parameters": {**arguments, "start": str(d.start)},
        "effects": [
            {"outcome": o, "treatment": "coached", "estimand": e, "value": v} for o, e, v in effects
        ],
        "rollout": {
            "as_of": str(d.as_of_day),
            "period": "month",
            "waves": [str(d.start + int(m) - 1) for m in d.wave_months],
            "teams_per_wave": np.bincount(people.team_wave, minlength=d.n_waves + 1).tolist(),
            "skill_waves": d.skill_waves,
        },
    }
    return SimulatedProgramme(
        learners=learners,
        action_items=_action_item_table(items, learner_id),
        skill_assessments=skills.reset_index(drop=True),
        truth=truth,
    )
