"""The input tables an evaluation's parameters name: read and validated once per run.

`lcstats run` checks the inputs before the notebook's kernel is ready (its pre-flight) and hands
the validated tables to the kernel through a file in the run's staging folder, so a run reads and
validates its data once. The notebook calls `load_inputs` either way: interactively it reads the
files; under `lcstats run` it takes the tables the pre-flight validated.
"""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path
from typing import TYPE_CHECKING

from lcstats.core.errors import LcstatsError
from lcstats.core.files import dumps_json
from lcstats.params import INPUT_KEYS, as_spec, table_location

if TYPE_CHECKING:
    from lcstats.data.load import Programme
    from lcstats.params import Params

HANDOVER_FORMAT = "lcstats-validated-inputs-1"


def params_fingerprint(params: Params) -> str:
    """SHA-256 of the parameters after defaults (canonical JSON)."""
    return hashlib.sha256(dumps_json(params.notebook_parameters()).encode()).hexdigest()


def required_learner_columns(params: Params) -> tuple[str, ...]:
    """Learner columns the parameters name: treatment, covariates and cluster."""
    return (params.treatment, *params.covariates, *([params.cluster] if params.cluster else []))


def read_inputs(params: Params) -> Programme:
    """Read, parse and validate the tables the parameters name (see `load_programme`).

    A coaching-session log, when given, adds ``coaching_sessions``, ``coached`` and
    ``coached_from`` where the learners table lacks them (`lcstats.data.sessions`); an activity
    log adds pre-programme engagement features (`lcstats.data.activity`).
    """
    from lcstats.data.activity import FEATURES, with_activity_features
    from lcstats.data.load import load_programme

    derived = FEATURES if params.activity is not None else ()
    programme = load_programme(
        params.learners,
        params.action_items,
        params.skill_assessments,
        columns=params.columns,
        scale=(params.scale_min, params.scale_max),
        waves=tuple(params.skill_waves),
        required_learner_columns=required_learner_columns(params),
        derived_learner_columns=derived,
        unknown_learners=params.unknown_learners,
        coaching_sessions=params.coaching_sessions,
        as_of=params.as_of,
    )
    if params.activity is None:
        return programme
    return with_activity_features(
        programme,
        as_spec(params.activity),
        baseline_end=params.baseline_end,
        window_days=params.activity_window_days,
        columns=params.columns.get("activity"),
    )


def input_hashes(programme: Programme) -> dict[str, str]:
    """What identifies each input read: a file's SHA-256, else (a database) its rows' fingerprint."""
    hashes = {t: s.sha256 or s.fingerprint for t, s in programme.sources.items()}
    if programme.activity is not None:
        hashes["activity"] = programme.activity.fingerprint
    return hashes


def file_hashes(params: Params) -> dict[str, str] | None:
    """SHA-256 of every input file, without reading the tables; None when an input is a
    database (its rows must be read to know them) or a file cannot be read."""
    from lcstats.core.files import sha256_file

    hashes = {}
    for key in INPUT_KEYS:
        value = getattr(params, key)
        if value is None:
            continue
        path = table_location(value)
        if path is None:
            return None
        try:
            hashes[key] = sha256_file(path)
        except OSError:
            return None
    return hashes


def hand_over(programme: Programme, params: Params, path: str | Path) -> Path:
    """Write validated tables for the run's kernel (a pickle in the run's own staging folder).

    The file is bound to the parameters it was validated under and is removed by the runner
    before the run folder is published.
    """
    path = Path(path)
    with path.open("wb") as fh:
        pickle.dump(
            (HANDOVER_FORMAT, params_fingerprint(params), programme),
            fh,
            protocol=pickle.HIGHEST_PROTOCOL,
        )
    return path


def load_inputs(params: Params, *, prepared: str | Path | None = None) -> Programme:
    """The validated input tables of an evaluation.

    Parameters
    ----------
    params : Params
        The evaluation's parameters (paths, column mapping, scale, analysis columns).
    prepared : path, optional
        Tables handed over by `lcstats run` (set by the runner; leave it None otherwise). They
        are used only if they were validated under the same parameters.

    Raises
    ------
    InputError
        When a file is missing or breaks the contract (every problem at once).
    """
    if prepared is None:
        return read_inputs(params)
    with Path(prepared).open("rb") as fh:
        fmt, fingerprint, programme = pickle.load(fh)  # noqa: S301 - written by this run's runner
    if fmt != HANDOVER_FORMAT or fingerprint != params_fingerprint(params):
        raise LcstatsError(
            f"the validated tables in '{prepared}' were prepared for other parameters; "
            "run the evaluation again with lcstats run"
        )
    return programme
