"""Coaching-session logs: how many sessions each learner had, and when coaching started.

A log of ``learner_id, session_on[, coach_id, minutes]`` (params ``coaching_sessions``) gives the
learner columns ``coaching_sessions`` (sessions held by the as-of date), ``coached`` (at least
one) and ``coached_from`` (the date of the first session) wherever the learners table lacks
them; columns the learners table has are kept as they are. Sessions after the as-of date are
left out, and counted.
"""

from __future__ import annotations

import pandas as pd

AFTER_AS_OF = "session after the as-of date"
DERIVED_COLUMNS = ("coached", "coaching_sessions", "coached_from")


def derive_coaching(
    learners: pd.DataFrame, sessions: pd.DataFrame, *, as_of: str | None
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int]]:
    """The learners with the columns a session log gives, the sessions used, and the rest counted.

    Parameters
    ----------
    learners : DataFrame
        The validated learners table (``learner_id`` and whatever columns it has).
    sessions : DataFrame
        The validated session log (``learner_id``, ``session_on``), learners all known.
    as_of : str, optional
        Sessions after this date (``YYYY-MM-DD``) have not happened yet for the evaluation.

    Examples
    --------
    >>> learners = pd.DataFrame({"learner_id": ["a", "b"]})
    >>> log = pd.DataFrame({"learner_id": ["a", "a"],
    ...                     "session_on": pd.to_datetime(["2026-02-01", "2026-01-15"])})
    >>> out, used, left = derive_coaching(learners, log, as_of="2026-06-30")
    >>> out[["coached", "coaching_sessions"]].to_numpy().tolist()
    [[1, 2.0], [0, 0.0]]
    >>> str(out.loc[0, "coached_from"].date())
    '2026-01-15'
    """
    future = (
        sessions["session_on"] > pd.Timestamp(as_of) if as_of else sessions["session_on"].isna()
    )
    used = sessions[~future]
    per = used.groupby("learner_id", sort=True)["session_on"].agg(["size", "min"])
    held = learners["learner_id"].map(per["size"]).fillna(0).astype(float)
    derived = {
        "coaching_sessions": held,
        "coached": (held > 0).astype("Int64"),
        "coached_from": learners["learner_id"].map(per["min"]).astype("datetime64[ns]"),
    }
    out = learners.copy()
    for column in DERIVED_COLUMNS:
        if column not in out:
            out[column] = derived[column]
    return out, used, {AFTER_AS_OF: int(future.sum())}
