"""Synthetic coaching programme: the example data and the ground truth for validating estimators.

`simulate_programme` draws a programme in the data contract (``learners``, ``action_items``,
``skill_assessments``) together with the true effects that generated it; `write_programme` writes
the tables (CSV or Parquet) and ``truth.json``. The same arguments always give the same tables and
the same bytes on disk: all randomness comes from ``numpy.random.default_rng`` seeded from ``seed``.

Data-generating process
-----------------------
Notation: ``expit(x) = 1 / (1 + exp(-x))``; ``u`` terms are team random effects, ``e`` terms
learner noise; all effects below are fixed constants of the module unless they are arguments.

Covariates (observed)
    Teams of about ``team_size`` learners, one manager per team. ``cohort`` is one of the four
    consecutive quarters ending with the quarter that contains ``as_of - 90 days`` (equal shares);
    ``role`` one of five job families; ``tenure_months = min(floor(Gamma(shape 4, scale 9)), 480)`` (mean 36, SD 18);
    ``engagement`` = prior survey score ``N(3.5, 0.7)`` clipped to 1-5 and rounded to one decimal.
    The standardised versions used below are computed from the recorded values:
    ``z_eng = (engagement - 3.5) / 0.7`` and ``z_ten = (tenure - 36) / 18`` (linear in the recorded months, so a model with
    ``tenure_months`` as a covariate is correctly specified).

Manager coaching (randomised by manager)
    ``manager_coached ~ Bernoulli(0.35)`` per manager, independent of everything else.

Learner coaching (selection on observed covariates)
    ``coached ~ Bernoulli(expit(-0.45 + confounding (0.8 z_eng - 0.5 z_ten) + w_cohort + v_team))``
    with cohort wave effects ``w = (-0.7, -0.25, 0.25, 0.7)`` (coaching rolled out in waves, later
    cohorts more often coached) and a team intercept ``v_team ~ N(0, 0.5)``. ``v_team`` is
    independent of every outcome term, so it creates clustering of treatment only: engagement,
    tenure and cohort are the confounders (role affects the outcomes only), and adjusting for them
    identifies the effects. ``confounding=0`` means coaching is random given cohort and team; the
    cohort terms of the outcomes are small, so the naive difference is then close to the truth.
    Every learner has a latent
    number of potential sessions ``s = 1 + Binomial(11, 0.42)`` (1-12); ``coaching_sessions`` is
    ``s`` for the coached and 0 otherwise. The dose factor is
    ``d = 0.6 + 0.8 min(s, 8) / 8``, divided by its mean over the coached learners, so the average
    effect among the coached equals the ``effect_*`` arguments (dose-response, defined for all).

Follow-through (Kirkpatrick level 3)
    Linear predictor ``eta0 = -0.2 + 0.45 z_eng - 0.15 z_ten + role + cohort + u_team + e``
    (role and cohort terms: ``FT_ROLE``, ``FT_COHORT``)
    where ``sd(u_team)^2 = icc * 0.8^2`` and ``sd(e)^2 = (1 - icc) * 0.8^2`` (``icc`` is the team
    share of the residual latent variance). Each learner's items are on time independently with
    ``p = expit(eta0 + coached * tau + manager_coached * effect_manager_logit)``, where
    ``tau = effect_follow_through_logit * d``. Each learner has 2-8 items (2% have no action plan),
    created within the cohort's quarter and due 30-90 days later, never after ``as_of``. An on-time
    item is completed between creation and its due date; 40% of late items are completed after the
    due date (no later than ``as_of``), the rest are never completed. Follow-through is the share of
    items completed on or before ``due_on``, so ``E[follow_through | learner] = p`` exactly.

Skills (Kirkpatrick level 2/3), scale ``(lo, hi)``, ``unit = (hi - lo) / 4``
    Each role has 3-4 skills with a target level (mostly 3-5 on a 1-5 scale). A learner-skill's
    pre-programme latent level is ``lo + 0.4 (hi - lo) + unit (0.55 a + 0.15 z_ten + 0.25 z_eng +
    0.45 n)`` with learner ability ``a`` and skill noise ``n`` standard normal. The post latent
    level adds growth ``0.30 + 0.12 z_eng + role + cohort`` (points), a team effect and learner
    noise (sd ``0.4 unit`` in total, team share ``icc``), ``coached * effect_skills * d`` and
    ``manager_coached * effect_manager_skills`` and post-assessment noise ``N(0, 0.5 unit)`` per
    skill. Observed levels are the latent levels rounded half up and clipped to the scale. The
    skills gap of a learner is the mean over their skills of ``max(0, target - level)`` at the post
    wave; 5% of learners miss the post wave at random.

Truth
    For each outcome the individual effect is ``E[Y(1) - Y(0)]`` given the learner's covariates,
    team effect and learner noise: exact for follow-through (a difference of two ``expit``), and a
    Monte Carlo average over ``truth_draws`` draws of the post-assessment noise (common random
    numbers for both arms) for the skills gap. ATE averages it over learners whose outcome is
    defined (at least one item; a post assessment), ATT over the coached among them. The
    ``manager_coached`` effects hold the learner's own coaching at its observed value. The naive
    difference is the coached minus uncoached mean of the observed outcome in the tables.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd

from lcstats.data.simulate_logs import simulate_activity, simulate_sessions, write_xapi

__all__ = ["SimulatedProgramme", "simulate_programme", "with_logs", "write_programme"]

OutputFormat = Literal["csv", "parquet"]
ActivityFormat = Literal["parquet", "csv", "xapi"]
TABLES = ("learners", "action_items", "skill_assessments")

ROLES = ("Engineer", "Analyst", "Sales", "Operations", "Team Lead")
ROLE_PROBS = np.array([0.30, 0.20, 0.20, 0.20, 0.10])
SKILLS = (
    "Data literacy",
    "Stakeholder management",
    "Coaching others",
    "Planning",
    "Problem solving",
    "Commercial awareness",
)
# Per role: (skill, target as a fraction of the scale width: 0.5 -> 3, 0.75 -> 4, 1 -> 5 on 1-5).
ROLE_SKILLS: dict[str, tuple[tuple[str, float], ...]] = {
    "Engineer": (
        ("Data literacy", 0.75),
        ("Problem solving", 0.75),
        ("Stakeholder management", 0.5),
        ("Planning", 0.5),
    ),
    "Analyst": (("Data literacy", 1.0), ("Stakeholder management", 0.5), ("Planning", 0.75)),
    "Sales": (
        ("Stakeholder management", 1.0),
        ("Commercial awareness", 0.75),
        ("Planning", 0.5),
        ("Data literacy", 0.5),
    ),
    "Operations": (("Planning", 0.75), ("Data literacy", 0.5), ("Problem solving", 0.75)),
    "Team Lead": (
        ("Coaching others", 0.75),
        ("Stakeholder management", 0.75),
        ("Planning", 0.75),
        ("Data literacy", 0.5),
    ),
}
MAX_SKILLS = max(len(v) for v in ROLE_SKILLS.values())

# Treatment model.
TREAT_INTERCEPT = -0.45
TREAT_ENGAGEMENT = 0.8
TREAT_TENURE = -0.5
TREAT_COHORT = np.array([-0.7, -0.25, 0.25, 0.7])
TREAT_TEAM_SD = 0.5
MANAGER_COACHED_PROB = 0.35

# Follow-through model (logit scale).
FT_INTERCEPT = -0.2
FT_ENGAGEMENT = 0.45
FT_TENURE = -0.15
FT_ROLE = np.array([0.0, 0.10, -0.15, 0.05, 0.15])
FT_COHORT = np.array([-0.03, -0.01, 0.01, 0.03])
FT_RESIDUAL_SD = 0.8

# Skills model (points; noise scaled by unit = scale width / 4).
PRE_CENTRE = 0.4
PRE_ABILITY = 0.55
PRE_TENURE = 0.15
PRE_ENGAGEMENT = 0.25
PRE_NOISE = 0.45
GROWTH = 0.30
GROWTH_ENGAGEMENT = 0.12
GROWTH_ROLE = np.array([0.0, 0.05, -0.05, 0.0, 0.05])
GROWTH_COHORT = np.array([0.01, 0.0, 0.0, -0.01])
GROWTH_RESIDUAL_SD = 0.4
POST_NOISE_SD = 0.5

# Items, attrition and timing.
NO_PLAN_SHARE = 0.02
ITEMS_MIN, ITEMS_MAX = 2, 8
DUE_MIN, DUE_MAX = 30, 90
LATE_COMPLETED_SHARE = 0.4
LATE_MAX_DAYS = 60
POST_ATTRITION = 0.05
SESSIONS_MAX = 12
SESSIONS_P = 0.42
TENURE_MAX = 480
TRUTH_CHUNK = 50


@dataclass(frozen=True)
class SimulatedProgramme:
    """A synthetic programme in the data contract and the true effects behind it.

    Parameters
    ----------
    learners, action_items, skill_assessments : pandas.DataFrame
        The three input tables (dates as ``datetime64[ns]``, missing completion as ``NaT``).
    truth : dict
        JSON-serialisable: ``seed``, ``n_learners``, ``parameters``, ``effects`` (one entry per
        outcome, treatment and estimand) and ``naive_difference`` (coached minus uncoached means).
    """

    learners: pd.DataFrame
    action_items: pd.DataFrame
    skill_assessments: pd.DataFrame
    truth: dict
    coaching_sessions: pd.DataFrame | None = None  # see `with_logs`
    activity: pd.DataFrame | None = None  # see `with_logs`

    def effect(self, outcome: str, treatment: str = "coached", estimand: str = "ATE") -> float:
        """Return one true effect from ``truth["effects"]``.

        Parameters
        ----------
        outcome : str
            ``"follow_through"`` or ``"skills_gap"``.
        treatment : str
            ``"coached"`` or ``"manager_coached"``.
        estimand : str
            ``"ATE"`` or ``"ATT"`` (``"ATT"`` only for ``"coached"``).

        Returns
        -------
        float
        """
        for row in self.truth["effects"]:
            if (row["outcome"], row["treatment"], row["estimand"]) == (
                outcome,
                treatment,
                estimand,
            ):
                return float(row["value"])
        raise KeyError(f"no true effect for {outcome=}, {treatment=}, {estimand=}")


EFFECT_NAMES = (
    "effect_follow_through_logit",
    "effect_skills",
    "effect_manager_logit",
    "effect_manager_skills",
)


@dataclass(frozen=True)
class _Scenario:
    """The validated arguments of `simulate_programme` that the drawing steps use."""

    n: int
    team_size: float
    effect_follow_through_logit: float
    effect_skills: float
    effect_manager_logit: float
    effect_manager_skills: float
    confounding: float
    icc: float
    lo: int
    hi: int
    as_of: date
    truth_draws: int

    @property
    def unit(self) -> float:
        """One quarter of the skill scale's width (the unit of the skills model's noise)."""
        return (self.hi - self.lo) / 4.0

    @property
    def as_of_day(self) -> np.datetime64:
        """The extraction date as a day."""
        return np.datetime64(self.as_of, "D")


@dataclass(frozen=True)
class _Learners:
    """Per-learner covariates (observed and standardised) and treatments, one entry a learner."""

    n_teams: int
    team: np.ndarray
    cohort: np.ndarray
    role: np.ndarray
    tenure: np.ndarray
    engagement: np.ndarray
    z_eng: np.ndarray
    z_ten: np.ndarray
    manager_coached: np.ndarray
    coached_b: np.ndarray
    coached: np.ndarray
    sessions: np.ndarray
    dose: np.ndarray


@dataclass(frozen=True)
class _FollowThrough:
    """Latent follow-through: log-odds of an item on time without coaching, and the coaching effect."""

    eta_base: np.ndarray
    tau: np.ndarray


@dataclass(frozen=True)
class _Items:
    """The action items: owner (learner position), dates as days, and items per learner."""

    n_items: np.ndarray
    owner: np.ndarray
    created: np.ndarray
    due: np.ndarray
    completed: np.ndarray


@dataclass(frozen=True)
class _Skills:
    """Padded learner x skill arrays of the skills model, and the assessment dates."""

    skill_idx: np.ndarray
    mask: np.ndarray
    target: np.ndarray
    pre_latent: np.ndarray
    post_base: np.ndarray  # no coaching of either kind, no post noise
    post_latent: np.ndarray
    skill_tau: np.ndarray
    mgr_skills: np.ndarray
    has_post: np.ndarray
    pre_on: np.ndarray
    post_on: np.ndarray


def _expit(x: np.ndarray) -> np.ndarray:
    """The logistic function ``1 / (1 + exp(-x))``."""
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _is_int(value: Any) -> bool:
    """Whether `value` is an integer (Python or numpy), not a bool."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _is_finite(value: Any) -> bool:
    """Whether `value` is a finite Python int or float."""
    return isinstance(value, int | float) and math.isfinite(value)


def _check_sizes(n_learners: Any, seed: Any, team_size: Any) -> None:
    """Raise `ValueError` for a bad number of learners, seed or team size."""
    if not _is_int(n_learners) or n_learners < 50:
        raise ValueError(f"n_learners must be an integer of at least 50, got {n_learners!r}")
    if not _is_int(seed) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if not _is_finite(team_size) or team_size < 1:
        raise ValueError(f"team_size must be a finite number of at least 1, got {team_size!r}")


def _check_model(arguments: dict[str, Any]) -> None:
    """Raise `ValueError` for a bad effect size, confounding strength, icc or scale."""
    for name in EFFECT_NAMES:
        if not _is_finite(arguments[name]):
            raise ValueError(f"{name} must be a finite number, got {arguments[name]!r}")
    confounding, icc, scale = arguments["confounding"], arguments["icc"], arguments["scale"]
    if not isinstance(confounding, int | float) or not (0 <= confounding < math.inf):
        raise ValueError(f"confounding must be a finite number >= 0, got {confounding!r}")
    if not isinstance(icc, int | float) or not (0 <= icc < 1):
        raise ValueError(f"icc must be a number with 0 <= icc < 1, got {icc!r}")
    if (
        not isinstance(scale, tuple | list)
        or len(scale) != 2
        or not all(_is_int(v) for v in scale)
        or not scale[0] < scale[1]
    ):
        raise ValueError(f"scale must be two integers (min, max) with min < max, got {scale!r}")


def _scenario(arguments: dict[str, Any]) -> _Scenario:
    """Check the arguments of `simulate_programme` (`ValueError` naming the first bad one)."""
    _check_sizes(arguments["n_learners"], arguments["seed"], arguments["team_size"])
    _check_model(arguments)
    truth_draws, as_of = arguments["truth_draws"], arguments["as_of"]
    if not _is_int(truth_draws) or truth_draws < 1:
        raise ValueError(f"truth_draws must be a positive integer, got {truth_draws!r}")
    try:
        as_of_date = date.fromisoformat(as_of)
    except (TypeError, ValueError):
        raise ValueError(f"as_of must be a date written YYYY-MM-DD, got {as_of!r}") from None
    lo, hi = arguments["scale"]
    return _Scenario(
        n=int(arguments["n_learners"]),
        team_size=arguments["team_size"],
        **{name: arguments[name] for name in EFFECT_NAMES},
        confounding=arguments["confounding"],
        icc=arguments["icc"],
        lo=int(lo),
        hi=int(hi),
        as_of=as_of_date,
        truth_draws=truth_draws,
    )


def _cohorts(as_of: date) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Return labels, first days and last days of the four cohort quarters."""
    anchor = as_of - timedelta(days=DUE_MAX)
    index = anchor.year * 4 + (anchor.month - 1) // 3
    labels, starts, ends = [], [], []
    for q in range(index - 3, index + 1):
        year, quarter = divmod(q, 4)
        start = date(year, 3 * quarter + 1, 1)
        nxt = date(year + (quarter == 3), (3 * quarter + 3) % 12 + 1, 1)
        labels.append(f"{year}-Q{quarter + 1}")
        starts.append(start)
        ends.append(nxt - timedelta(days=1))
    return labels, np.array(starts, dtype="datetime64[D]"), np.array(ends, dtype="datetime64[D]")


def _ids(prefix: str, n: int, width: int) -> np.ndarray:
    """Identifiers ``prefix`` + 1..n, zero-padded to `width` digits (more when n needs them)."""
    width = max(width, len(str(n)))
    return np.array([f"{prefix}{i:0{width}d}" for i in range(1, n + 1)], dtype=object)


def _levels(latent: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Observed levels: latent levels rounded half up and clipped to the scale."""
    return np.clip(np.floor(latent + 0.5), lo, hi)


def _gap(latent: np.ndarray, target: np.ndarray, mask: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Mean over a learner's skills of max(0, target - level); last axis is the skill."""
    gaps = np.maximum(target - _levels(latent, lo, hi), 0.0) * mask
    return gaps.sum(axis=-1) / mask.sum(axis=-1)


def _dates(days: np.ndarray) -> pd.Series:
    """Days as a ``datetime64[ns]`` series (NaT stays NaT)."""
    return pd.Series(days.astype("datetime64[D]").astype("datetime64[ns]"))


def _draw_learners(rng: np.random.Generator, scenario: _Scenario) -> _Learners:
    """Draw teams and covariates, then manager coaching (by team) and learner coaching."""
    n = scenario.n
    # Every draw has a fixed size, so changing an effect size or `confounding` keeps
    # the same underlying random numbers (common random numbers across scenarios).
    n_teams = max(1, min(n, round(n / scenario.team_size)))
    team = np.sort(np.concatenate([np.arange(n_teams), rng.integers(n_teams, size=n - n_teams)]))
    cohort = rng.integers(4, size=n)
    role = rng.choice(len(ROLES), size=n, p=ROLE_PROBS)
    tenure = np.minimum(np.floor(rng.gamma(4.0, 9.0, size=n)), TENURE_MAX).astype(np.int64)
    engagement = np.round(np.clip(rng.normal(3.5, 0.7, size=n), 1.0, 5.0), 1)
    z_eng = (engagement - 3.5) / 0.7
    z_ten = (tenure - 36.0) / 18.0

    manager_coached = (rng.random(n_teams) < MANAGER_COACHED_PROB).astype(np.int64)[team]
    v_team = rng.normal(0.0, TREAT_TEAM_SD, size=n_teams)
    treat_logit = (
        TREAT_INTERCEPT
        + scenario.confounding * (TREAT_ENGAGEMENT * z_eng + TREAT_TENURE * z_ten)
        + TREAT_COHORT[cohort]
        + v_team[team]
    )
    coached_b = rng.random(n) < _expit(treat_logit)
    potential_sessions = 1 + rng.binomial(SESSIONS_MAX - 1, SESSIONS_P, size=n)
    dose = 0.6 + 0.8 * np.minimum(potential_sessions, 8) / 8.0
    dose = dose / (dose[coached_b].mean() if coached_b.any() else dose.mean())
    return _Learners(
        n_teams=n_teams,
        team=team,
        cohort=cohort,
        role=role,
        tenure=tenure,
        engagement=engagement,
        z_eng=z_eng,
        z_ten=z_ten,
        manager_coached=manager_coached,
        coached_b=coached_b,
        coached=coached_b.astype(np.int64),
        sessions=np.where(coached_b, potential_sessions, 0).astype(np.int64),
        dose=dose,
    )


def _draw_follow_through(
    rng: np.random.Generator, learners: _Learners, scenario: _Scenario
) -> _FollowThrough:
    """Draw the team and learner terms of the follow-through log-odds."""
    icc = scenario.icc
    u_team = np.sqrt(icc) * FT_RESIDUAL_SD * rng.standard_normal(learners.n_teams)
    e_learner = np.sqrt(1.0 - icc) * FT_RESIDUAL_SD * rng.standard_normal(learners.team.size)
    eta_base = (
        FT_INTERCEPT
        + FT_ENGAGEMENT * learners.z_eng
        + FT_TENURE * learners.z_ten
        + FT_ROLE[learners.role]
        + FT_COHORT[learners.cohort]
        + u_team[learners.team]
        + e_learner
    )
    return _FollowThrough(eta_base, scenario.effect_follow_through_logit * learners.dose)


def _completion_dates(
    rng: np.random.Generator,
    created: np.ndarray,
    due: np.ndarray,
    due_days: np.ndarray,
    *,
    p_on_time: np.ndarray,
    as_of_day: np.datetime64,
) -> np.ndarray:
    """Draw the completion day of each item (NaT when never completed), given its on-time chance."""
    m = created.size
    on_time = rng.random(m) < p_on_time
    done_on_time = created + np.floor(rng.random(m) * (due_days + 1)).astype(np.int64)
    late_window = np.minimum(due + LATE_MAX_DAYS, as_of_day) - due
    late_done = rng.random(m) < LATE_COMPLETED_SHARE
    done_late = due + 1 + np.floor(rng.random(m) * late_window.astype(np.int64)).astype(np.int64)
    late_done &= late_window.astype(np.int64) > 0
    nat = np.datetime64("NaT", "D")
    return np.where(on_time, done_on_time, np.where(late_done, done_late, nat))


def _draw_action_items(
    rng: np.random.Generator, learners: _Learners, follow: _FollowThrough, scenario: _Scenario
) -> _Items:
    """Draw each learner's action items within their cohort's quarter, and their completion."""
    p_on_time = _expit(
        follow.eta_base
        + learners.coached * follow.tau
        + learners.manager_coached * scenario.effect_manager_logit
    )
    _, q_start, q_end = _cohorts(scenario.as_of)
    n = learners.cohort.size
    no_plan = rng.random(n) < NO_PLAN_SHARE
    n_items = np.where(no_plan, 0, rng.integers(ITEMS_MIN, ITEMS_MAX + 1, size=n))
    owner = np.repeat(np.arange(n), n_items)
    due_days = rng.integers(DUE_MIN, DUE_MAX + 1, size=owner.size)
    first = q_start[learners.cohort[owner]]
    # >= first by construction
    last = np.minimum(q_end[learners.cohort[owner]], scenario.as_of_day - due_days)
    span = (last - first).astype(np.int64) + 1
    created = first + np.floor(rng.random(owner.size) * span).astype(np.int64)
    due = created + due_days
    completed = _completion_dates(
        rng, created, due, due_days, p_on_time=p_on_time[owner], as_of_day=scenario.as_of_day
    )
    return _Items(n_items, owner, created, due, completed)


def _role_skills(lo: int, hi: int) -> tuple[np.ndarray, np.ndarray]:
    """Per role, the skill indices (padded with -1) and target levels (padded with 0)."""
    role_skill = np.full((len(ROLES), MAX_SKILLS), -1)
    role_target = np.zeros((len(ROLES), MAX_SKILLS))
    for r, name in enumerate(ROLES):
        for k, (skill, frac) in enumerate(ROLE_SKILLS[name]):
            role_skill[r, k] = SKILLS.index(skill)
            role_target[r, k] = np.floor(lo + frac * (hi - lo) + 0.5)
    return role_skill, role_target


def _draw_pre_latent(
    rng: np.random.Generator, learners: _Learners, scenario: _Scenario
) -> np.ndarray:
    """Draw learner ability and skill noise: the latent pre-programme level of each skill."""
    lo, hi = scenario.lo, scenario.hi
    ability = rng.standard_normal(learners.team.size)
    skill_noise = rng.standard_normal((learners.team.size, MAX_SKILLS))
    pre_deviation = (
        PRE_ABILITY * ability[:, None]
        + PRE_TENURE * learners.z_ten[:, None]
        + PRE_ENGAGEMENT * learners.z_eng[:, None]
        + PRE_NOISE * skill_noise
    )
    return lo + PRE_CENTRE * (hi - lo) + scenario.unit * pre_deviation


def _draw_growth(rng: np.random.Generator, learners: _Learners, scenario: _Scenario) -> np.ndarray:
    """Draw the team and learner terms of skill growth without coaching (points)."""
    icc, unit = scenario.icc, scenario.unit
    w_team = np.sqrt(icc) * GROWTH_RESIDUAL_SD * unit * rng.standard_normal(learners.n_teams)
    g_learner = (
        np.sqrt(1.0 - icc) * GROWTH_RESIDUAL_SD * unit * rng.standard_normal(learners.team.size)
    )
    return (
        GROWTH
        + GROWTH_ENGAGEMENT * learners.z_eng
        + GROWTH_ROLE[learners.role]
        + GROWTH_COHORT[learners.cohort]
        + w_team[learners.team]
        + g_learner
    )


def _draw_skills(rng: np.random.Generator, learners: _Learners, scenario: _Scenario) -> _Skills:
    """Draw the latent pre and post skill levels, post-wave attrition and assessment dates."""
    n = learners.team.size
    role_skill, role_target = _role_skills(scenario.lo, scenario.hi)
    skill_idx = role_skill[learners.role]
    pre_latent = _draw_pre_latent(rng, learners, scenario)
    post_base = pre_latent + _draw_growth(rng, learners, scenario)[:, None]
    skill_tau = scenario.effect_skills * learners.dose
    mgr_skills = learners.manager_coached * scenario.effect_manager_skills
    post_noise = POST_NOISE_SD * scenario.unit * rng.standard_normal((n, MAX_SKILLS))
    post_latent = post_base + (learners.coached * skill_tau + mgr_skills)[:, None] + post_noise
    has_post = rng.random(n) >= POST_ATTRITION
    _, q_start, _ = _cohorts(scenario.as_of)
    pre_on = q_start[learners.cohort] + rng.integers(0, 14, size=n)
    post_on = np.minimum(pre_on + rng.integers(60, 81, size=n), scenario.as_of_day)
    return _Skills(
        skill_idx=skill_idx,
        mask=(skill_idx >= 0).astype(float),
        target=role_target[learners.role],
        pre_latent=pre_latent,
        post_base=post_base,
        post_latent=post_latent,
        skill_tau=skill_tau,
        mgr_skills=mgr_skills,
        has_post=has_post,
        pre_on=pre_on,
        post_on=post_on,
    )


def _learner_table(
    learners: _Learners, learner_id: np.ndarray, scenario: _Scenario
) -> pd.DataFrame:
    """The ``learners`` table."""
    labels, _, _ = _cohorts(scenario.as_of)
    team_ids = _ids("T", learners.n_teams, 3)
    manager_ids = _ids("M", learners.n_teams, 3)
    return pd.DataFrame(
        {
            "learner_id": pd.Series(learner_id, dtype="str"),
            "team_id": pd.Series(team_ids[learners.team], dtype="str"),
            "manager_id": pd.Series(manager_ids[learners.team], dtype="str"),
            "cohort": pd.Series(np.array(labels, dtype=object)[learners.cohort], dtype="str"),
            "role": pd.Series(np.array(ROLES, dtype=object)[learners.role], dtype="str"),
            "tenure_months": learners.tenure,
            "engagement": learners.engagement,
            "coached": learners.coached,
            "coaching_sessions": learners.sessions,
            "manager_coached": learners.manager_coached,
        }
    )


def _action_item_table(items: _Items, learner_id: np.ndarray) -> pd.DataFrame:
    """The ``action_items`` table."""
    return pd.DataFrame(
        {
            "learner_id": pd.Series(learner_id[items.owner], dtype="str"),
            "item_id": pd.Series(_ids("A", items.owner.size, 6), dtype="str"),
            "created_on": _dates(items.created),
            "due_on": _dates(items.due),
            "completed_on": _dates(items.completed),
        }
    )


def _assessment_table(skills: _Skills, learner_id: np.ndarray, scenario: _Scenario) -> pd.DataFrame:
    """The ``skill_assessments`` table: by learner, the pre wave then the post wave, by skill."""
    rows_i, rows_k = np.nonzero(skills.mask > 0)
    post_rows = skills.has_post[rows_i]
    wave = np.concatenate([np.zeros(rows_i.size, np.int64), np.ones(post_rows.sum(), np.int64)])
    li = np.concatenate([rows_i, rows_i[post_rows]])
    lk = np.concatenate([rows_k, rows_k[post_rows]])
    order = np.lexsort((lk, wave, li))
    li, lk, wave = li[order], lk[order], wave[order]
    pre_level = _levels(skills.pre_latent, scenario.lo, scenario.hi)
    post_level = _levels(skills.post_latent, scenario.lo, scenario.hi)
    skill_names = np.array(SKILLS, dtype=object)[skills.skill_idx[li, lk]]
    return pd.DataFrame(
        {
            "learner_id": pd.Series(learner_id[li], dtype="str"),
            "skill": pd.Series(skill_names, dtype="str"),
            "wave": pd.Series(np.where(wave == 0, "pre", "post").astype(object), dtype="str"),
            "assessed_on": _dates(np.where(wave == 0, skills.pre_on[li], skills.post_on[li])),
            "level": np.where(wave == 0, pre_level[li, lk], post_level[li, lk]).astype(np.int64),
            "target_level": skills.target[li, lk].astype(np.int64),
        }
    )


def _learner_outcomes(
    learners: pd.DataFrame, action_items: pd.DataFrame, skill_assessments: pd.DataFrame
) -> pd.DataFrame:
    """Observed follow-through and post skills gap per learner, from the tables."""
    items = action_items.assign(
        on_time=(action_items["completed_on"] <= action_items["due_on"]).astype(float)
    )
    follow = items.groupby("learner_id", sort=False)["on_time"].mean()
    post = skill_assessments[skill_assessments["wave"] == "post"]
    gap = (
        (post["target_level"] - post["level"])
        .clip(lower=0)
        .groupby(post["learner_id"], sort=False)
        .mean()
    )
    out = learners[["learner_id", "coached"]].set_index("learner_id")
    return out.assign(follow_through=follow, skills_gap=gap)


def _naive(outcomes: pd.DataFrame, outcome: str) -> float:
    """Coached minus uncoached mean of an observed outcome."""
    means = outcomes.groupby("coached")[outcome].mean()
    return float(means.get(1, np.nan) - means.get(0, np.nan))


def _round(value: Any) -> Any:
    """`value` made JSON-ready: floats to 6 decimals (NaN and inf as None), numpy ints as int."""
    if isinstance(value, dict):
        return {k: _round(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_round(v) for v in value]
    if isinstance(value, float | np.floating):
        value = float(value)
        return round(value, 6) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def _mean(values: np.ndarray) -> float:
    """The mean of `values`, NaN when there are none."""
    return float(values.mean()) if values.size else math.nan


def _true_follow_through(
    learners: _Learners, follow: _FollowThrough, scenario: _Scenario
) -> tuple[np.ndarray, np.ndarray]:
    """Exact individual effects on follow-through of learner and of manager coaching."""
    eta_no_coach = follow.eta_base + learners.manager_coached * scenario.effect_manager_logit
    ft_coached = _expit(eta_no_coach + follow.tau) - _expit(eta_no_coach)
    eta_no_mgr = follow.eta_base + learners.coached * follow.tau
    ft_manager = _expit(eta_no_mgr + scenario.effect_manager_logit) - _expit(eta_no_mgr)
    return ft_coached, ft_manager


def _true_skills_gap(
    truth_rng: np.random.Generator, learners: _Learners, skills: _Skills, scenario: _Scenario
) -> tuple[np.ndarray, np.ndarray]:
    """Individual effects on the post skills gap of learner and of manager coaching (Monte Carlo)."""
    # learners with a post wave; draws of the post noise shared by both arms (common random numbers)
    lo, hi, draws = scenario.lo, scenario.hi, scenario.truth_draws
    has_post = skills.has_post
    base = skills.post_base[has_post]
    t_tau = skills.skill_tau[has_post][:, None]
    t_mgr = skills.mgr_skills[has_post][:, None]
    t_coached = learners.coached[has_post][:, None]
    t_target, t_mask = skills.target[has_post], skills.mask[has_post]
    sg_coached = np.zeros(base.shape[0])
    sg_manager = np.zeros(base.shape[0])
    done = 0
    while done < draws:
        d = min(TRUTH_CHUNK, draws - done)
        eps = POST_NOISE_SD * scenario.unit * truth_rng.standard_normal((d, *base.shape))
        no_coach = base + t_mgr + eps
        sg_coached += (
            _gap(no_coach + t_tau, t_target, t_mask, lo, hi)
            - _gap(no_coach, t_target, t_mask, lo, hi)
        ).sum(axis=0)
        no_mgr = base + t_coached * t_tau + eps
        sg_manager += (
            _gap(no_mgr + scenario.effect_manager_skills, t_target, t_mask, lo, hi)
            - _gap(no_mgr, t_target, t_mask, lo, hi)
        ).sum(axis=0)
        done += d
    return sg_coached / draws, sg_manager / draws


def _true_effects(
    truth_rng: np.random.Generator,
    learners: _Learners,
    *,
    follow: _FollowThrough,
    items: _Items,
    skills: _Skills,
    scenario: _Scenario,
) -> list[dict[str, Any]]:
    """The true ATE and ATT of each outcome and treatment (the ``effects`` of ``truth.json``)."""
    has_items = items.n_items > 0
    coached_b = learners.coached_b
    ft_coached, ft_manager = _true_follow_through(learners, follow, scenario)
    sg_coached, sg_manager = _true_skills_gap(truth_rng, learners, skills, scenario)
    effects = [
        ("follow_through", "coached", "ATE", _mean(ft_coached[has_items])),
        ("follow_through", "coached", "ATT", _mean(ft_coached[has_items & coached_b])),
        ("skills_gap", "coached", "ATE", _mean(sg_coached)),
        ("skills_gap", "coached", "ATT", _mean(sg_coached[coached_b[skills.has_post]])),
        ("follow_through", "manager_coached", "ATE", _mean(ft_manager[has_items])),
        ("skills_gap", "manager_coached", "ATE", _mean(sg_manager)),
    ]
    return [{"outcome": o, "treatment": t, "estimand": e, "value": v} for o, t, e, v in effects]


def simulate_programme(
    *,
    n_learners: int = 2000,
    seed: int = 20261128,
    team_size: float = 10.0,
    effect_follow_through_logit: float = 0.53,
    effect_skills: float = 0.30,
    effect_manager_logit: float = 0.2,
    effect_manager_skills: float = 0.15,
    confounding: float = 1.0,
    icc: float = 0.10,
    scale: tuple[int, int] = (1, 5),
    as_of: str = "2026-06-30",
    truth_draws: int = 200,
) -> SimulatedProgramme:
    """Simulate a coaching programme with known effects (see the module docstring for the model).

    Parameters
    ----------
    n_learners : int
        Number of learners (at least 50).
    seed : int
        Seed of ``numpy.random.default_rng``; the same arguments give identical tables.
    team_size : float
        Average team size (one manager per team).
    effect_follow_through_logit : float
        Average effect of learner coaching on the log-odds of an item being done on time
        (0.53 is an odds ratio of about 1.7: 45% -> about 58%).
    effect_skills : float
        Average effect of learner coaching on the latent post skill level, in scale points.
    effect_manager_logit, effect_manager_skills : float
        Effects of the line manager being coached (log-odds; points).
    confounding : float
        Strength of selection into coaching on engagement and tenure (0 = random given cohort and
        team, 1 = default).
    icc : float
        Team share of the residual latent outcome variance, ``0 <= icc < 1``.
    scale : tuple of int
        Skill scale ``(min, max)``.
    as_of : str
        Extraction date ``YYYY-MM-DD``: no due date or completion is after it.
    truth_draws : int
        Monte Carlo draws of post-assessment noise for the true skills-gap effects.
    Returns
    -------
    SimulatedProgramme

    Examples
    --------
    >>> prog = simulate_programme(n_learners=200, seed=1)
    >>> list(prog.learners.columns[:3])
    ['learner_id', 'team_id', 'manager_id']
    >>> prog.effect("follow_through") > 0
    True
    """
    arguments = {
        "n_learners": n_learners,
        "seed": seed,
        "team_size": team_size,
        "effect_follow_through_logit": effect_follow_through_logit,
        "effect_skills": effect_skills,
        "effect_manager_logit": effect_manager_logit,
        "effect_manager_skills": effect_manager_skills,
        "confounding": confounding,
        "icc": icc,
        "scale": scale,
        "as_of": as_of,
        "truth_draws": truth_draws,
    }
    scenario = _scenario(arguments)
    data_seq, truth_seq = np.random.SeedSequence(seed).spawn(2)
    rng = np.random.default_rng(data_seq)
    learners = _draw_learners(rng, scenario)
    follow = _draw_follow_through(rng, learners, scenario)
    items = _draw_action_items(rng, learners, follow, scenario)
    skills = _draw_skills(rng, learners, scenario)

    learner_id = _ids("L", scenario.n, 5)
    tables = {
        "learners": _learner_table(learners, learner_id, scenario),
        "action_items": _action_item_table(items, learner_id),
        "skill_assessments": _assessment_table(skills, learner_id, scenario),
    }
    outcomes = _learner_outcomes(**tables)
    truth = {
        "seed": seed,
        "n_learners": scenario.n,
        "parameters": {**arguments, "scale": list(scale)},
        "effects": _true_effects(
            np.random.default_rng(truth_seq),
            learners,
            follow=follow,
            items=items,
            skills=skills,
            scenario=scenario,
        ),
        "naive_difference": {
            "follow_through": _naive(outcomes, "follow_through"),
            "skills_gap": _naive(outcomes, "skills_gap"),
        },
    }
    return SimulatedProgramme(**tables, truth=_round(truth))


def with_logs(programme: SimulatedProgramme) -> SimulatedProgramme:
    """The programme with a coaching-session log and a learning-activity log added.

    Drawn from a random stream of their own (see `lcstats.data.simulate_logs`): the three
    tables and the truth stay as they are.

    Examples
    --------
    >>> prog = with_logs(simulate_programme(n_learners=100, seed=3))
    >>> len(prog.coaching_sessions) == int(prog.learners["coaching_sessions"].sum())
    True
    """
    seed, as_of = programme.truth["seed"], programme.truth["parameters"]["as_of"]
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(3)[2])
    sessions = simulate_sessions(programme.learners, as_of=as_of, rng=rng)
    activity = simulate_activity(programme.learners, sessions, as_of=as_of, rng=rng)
    return replace(programme, coaching_sessions=sessions, activity=activity)


def _write_table(frame: pd.DataFrame, path: Path) -> Path:
    """One table as CSV (dates ``YYYY-MM-DD``, times when there are any) or Parquet."""
    if path.suffix == ".csv":
        frame.to_csv(path, index=False, date_format="%Y-%m-%d", lineterminator="\n")
    else:
        frame.to_parquet(path, index=False)
    return path


def _write_activity(programme: SimulatedProgramme, out: Path, fmt: str) -> Path:
    """The activity log as a table or as xAPI statements."""
    if fmt not in get_args(ActivityFormat):
        raise ValueError(
            f"activity_format must be one of {', '.join(get_args(ActivityFormat))}; got {fmt!r}"
        )
    if fmt == "xapi":
        rng = np.random.default_rng(np.random.SeedSequence(programme.truth["seed"]).spawn(4)[3])
        return write_xapi(programme.activity, out / "activity.jsonl", rng=rng)
    frame = (
        programme.activity.assign(
            occurred_at=programme.activity["occurred_at"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        )
        if fmt == "csv"
        else programme.activity
    )
    return _write_table(frame, out / f"activity.{fmt}")


def write_programme(
    programme: SimulatedProgramme,
    out_dir: str | Path,
    *,
    fmt: OutputFormat = "csv",
    activity_format: ActivityFormat = "parquet",
) -> dict[str, Path]:
    """Write the three tables and ``truth.json`` to a folder.

    Parameters
    ----------
    programme : SimulatedProgramme
        The output of `simulate_programme`.
    out_dir : str or Path
        Folder to write to (created if missing; existing files of the same names are replaced).
    fmt : {"csv", "parquet"}
        Table format. CSV dates are written ``YYYY-MM-DD`` and a missing completion date is empty.
    activity_format : {"parquet", "csv", "xapi"}
        Format of the activity log, when the programme has one: a table, or xAPI statements as
        JSON lines (``activity.jsonl``).

    Returns
    -------
    dict of str to Path
        The written paths by table name, plus ``"truth"``.

    Examples
    --------
    >>> import tempfile
    >>> prog = simulate_programme(n_learners=100, seed=3)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     sorted(write_programme(prog, tmp))
    ['action_items', 'learners', 'skill_assessments', 'truth']
    """
    if fmt not in get_args(OutputFormat):
        raise ValueError(f"fmt must be one of {', '.join(get_args(OutputFormat))}; got {fmt!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: _write_table(getattr(programme, name), out / f"{name}.{fmt}") for name in TABLES}
    if programme.coaching_sessions is not None:
        paths["coaching_sessions"] = _write_table(
            programme.coaching_sessions, out / f"coaching_sessions.{fmt}"
        )
    if programme.activity is not None:
        paths["activity"] = _write_activity(programme, out, activity_format)
    truth_path = out / "truth.json"
    text = json.dumps(programme.truth, sort_keys=True, indent=2, allow_nan=False) + "\n"
    truth_path.write_text(text, encoding="utf-8", newline="\n")
    paths["truth"] = truth_path
    return paths
