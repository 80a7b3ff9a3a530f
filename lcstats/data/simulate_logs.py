"""Simulated coaching-session and learning-activity logs for a simulated programme.

Both are drawn from the learners table of `lcstats.data.simulate` alone, with a random stream of
their own, so that adding them leaves the programme's tables unchanged.

Coaching sessions
    Each coached learner's coaching starts (``coached_from``) 0-21 days into their cohort's
    quarter; their ``coaching_sessions`` sessions follow every 14 days (closer when the as-of date
    comes first), 30, 45 or 60 minutes each, with one of 15 coaches.

Activity (what an LMS or learning record store holds)
    Weekly, from 200 days before the first cohort starts to the as-of date, a learner is
    active with probability ``expit(-0.8 + 1.4 z_eng + 1.0 coached_since)``: engagement drives
    activity (and, in the programme, coaching), and coaching raises activity once it has started
    (an outcome of coaching, which a covariate must not contain). An active week holds
    ``1 + Poisson(0.3)`` events: launched (50%), completed (35%) or experienced (15%) an item of a
    150-item catalogue, lasting ``Gamma(2, 12)`` minutes. About 0.5% of statements come from
    accounts that are not learners (guests), and about 0.5% are voided by a later statement.
"""

from __future__ import annotations

import json
import uuid
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

LMS = "https://lms.example.org"
VERBS = ("launched", "completed", "experienced")
VERB_PROBS = (0.5, 0.35, 0.15)
CATALOGUE = 150
LEAD_DAYS = 200
GUEST_SHARE = 0.005
VOIDED_SHARE = 0.005


def _quarter_start(label: str) -> date:
    """The first day of a cohort quarter labelled ``YYYY-Qn``."""
    year, quarter = label.split("-Q")
    return date(int(year), 3 * (int(quarter) - 1) + 1, 1)


def simulate_sessions(
    learners: pd.DataFrame, *, as_of: str, rng: np.random.Generator
) -> pd.DataFrame:
    """One row per coaching session of each coached learner (see the module docstring)."""
    end = np.datetime64(as_of, "D")
    rows = []
    for lid, cohort, n in learners.loc[
        learners["coached"] == 1, ["learner_id", "cohort", "coaching_sessions"]
    ].itertuples(index=False):
        start = np.datetime64(_quarter_start(cohort), "D") + int(rng.integers(0, 22))
        step = max(1, min(14, int((end - start).astype(int)) // max(int(n), 1)))
        days = start + np.arange(int(n)) * step
        rows.append(
            pd.DataFrame(
                {
                    "learner_id": lid,
                    "session_on": days.astype("datetime64[ns]"),
                    "coach_id": f"C{int(rng.integers(1, 16)):02d}",
                    "minutes": rng.choice((30, 45, 60), size=int(n)),
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


def simulate_activity(
    learners: pd.DataFrame, sessions: pd.DataFrame, *, as_of: str, rng: np.random.Generator
) -> pd.DataFrame:
    """Activity events ``learner_id, verb, object_id, occurred_at, duration_s`` (module docstring)."""
    start = sessions.groupby("learner_id")["session_on"].min()
    z_eng = ((learners["engagement"] - 3.5) / 0.7).to_numpy()
    coached_from = learners["learner_id"].map(start).to_numpy(dtype="datetime64[ns]")
    starts = np.array([np.datetime64(_quarter_start(c), "D") for c in learners["cohort"]])
    first = np.full(len(learners), starts.min() - LEAD_DAYS)  # everyone uses the LMS all along
    end = np.datetime64(as_of, "D")
    weeks = np.arange(first.min(), end, 7)  # the grid of weeks, learners start at their own
    frames = []
    for w in weeks:
        alive = (first <= w) & (w < end)
        since = ~np.isnat(coached_from) & (coached_from <= np.datetime64(w, "ns"))
        p = 1 / (1 + np.exp(-(-0.8 + 1.4 * z_eng + 1.0 * since)))
        active = alive & (rng.random(len(p)) < p)
        n = np.where(active, 1 + rng.poisson(0.3, size=len(p)), 0)
        who = np.repeat(np.arange(len(p)), n)
        seconds = rng.integers(0, 7 * 86400, size=len(who))
        frames.append(
            pd.DataFrame(
                {
                    "learner": who,
                    "occurred_at": np.datetime64(w, "s") + seconds.astype("timedelta64[s]"),
                    "verb": rng.choice(len(VERBS), size=len(who), p=VERB_PROBS),
                    "item": rng.integers(1, CATALOGUE + 1, size=len(who)),
                    "duration_s": np.round(rng.gamma(2.0, 12.0, size=len(who)) * 60),
                }
            )
        )
    events = pd.concat(frames, ignore_index=True)
    events = events[events["occurred_at"] < np.datetime64(as_of, "s")]
    return pd.DataFrame(
        {
            "learner_id": learners["learner_id"].to_numpy()[events["learner"]],
            "verb": np.array(VERBS, dtype=object)[events["verb"]],
            "object_id": [f"{LMS}/course/C{k:03d}" for k in events["item"]],
            "occurred_at": events["occurred_at"].to_numpy(),
            "duration_s": events["duration_s"].to_numpy(),
        }
    ).sort_values(["learner_id", "occurred_at"], ignore_index=True)


def _statement(
    sid: str, actor: dict, verb: str, obj: dict, *, when: pd.Timestamp, seconds: float | None
) -> dict:
    """One xAPI statement."""
    statement = {
        "id": sid,
        "actor": actor,
        "verb": {"id": f"http://adlnet.gov/expapi/verbs/{verb}", "display": {"en-US": verb}},
        "object": obj,
        "timestamp": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if seconds is not None:
        statement["result"] = {"duration": f"PT{int(seconds) // 60}M{int(seconds) % 60}S"}
    return statement


def write_xapi(activity: pd.DataFrame, path: str | Path, *, rng: np.random.Generator) -> Path:
    """Write activity as xAPI statements (JSON lines), with guest actors and voided statements."""
    n, guests = len(activity), int(len(activity) * GUEST_SHARE)
    ids = [str(uuid.UUID(int=int(v))) for v in rng.integers(0, 2**63, size=2 * n + guests)]
    lines = []
    voided = rng.random(n) < VOIDED_SHARE
    for i, row in enumerate(activity.itertuples(index=False)):
        actor = {"objectType": "Agent", "account": {"homePage": LMS, "name": row.learner_id}}
        obj = {"objectType": "Activity", "id": row.object_id}
        when = pd.Timestamp(row.occurred_at)
        lines.append(_statement(ids[i], actor, row.verb, obj, when=when, seconds=row.duration_s))
        if voided[i]:
            ref = {"objectType": "StatementRef", "id": ids[i]}
            later = when + timedelta(days=1)
            lines.append(_statement(ids[n + i], actor, "voided", ref, when=later, seconds=None))
    for k in range(guests):
        row = activity.iloc[int(rng.integers(n))]
        guest = {"objectType": "Agent", "mbox": f"mailto:guest{k}@example.org"}
        obj = {"objectType": "Activity", "id": row.object_id}
        when = pd.Timestamp(row.occurred_at)
        lines.append(
            _statement(ids[2 * n + k], guest, row.verb, obj, when=when, seconds=row.duration_s)
        )
    path = Path(path)
    path.write_text("".join(json.dumps(s, sort_keys=True) + "\n" for s in lines), encoding="utf-8")
    return path
