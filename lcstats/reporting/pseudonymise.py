"""Pseudonyms for identifiers that go into analyst outputs (extracts, learner-level tables).

A pseudonym is a keyed hash (HMAC-SHA256) of the identifier under a secret salt: the same salt
always gives the same pseudonym (so tables from different runs still join), another salt gives
unrelated ones, and without the salt nobody can recompute them from a list of employee numbers
(a plain hash of ``L00001`` could be reversed by hashing every possible number).

The salt comes from the environment (``LCSTATS_SALT``), never from a params file or git: papermill
writes every parameter into the executed notebook, so a salt passed as a parameter would be
published with it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Sequence

import pandas as pd

from lcstats.core.errors import InputError, Problem

SALT_ENV_VAR = "LCSTATS_SALT"
MIN_SALT_LENGTH = 16
ID_COLUMNS = ("learner_id", "manager_id")

__all__ = ["ID_COLUMNS", "SALT_ENV_VAR", "pseudonymise", "pseudonymise_frame", "resolve_salt"]

_HOW_TO_SET = (
    "set the environment variable {var} to a long random secret before starting Jupyter or "
    "lcstats, for example:  export {var}=\"$(python -c 'import secrets; "
    "print(secrets.token_hex(32))')\"  Keep it out of git and out of params files, and reuse the "
    "same value when pseudonyms must match earlier outputs"
)


def resolve_salt(salt: str | None = None, *, env_var: str = SALT_ENV_VAR) -> str:
    """The salt to use: `salt` when given, else the environment variable `env_var`.

    Raises
    ------
    InputError
        When there is no salt, or it is shorter than 16 characters, saying how to set one.
    """
    where = "the salt argument" if salt is not None else f"the environment variable {env_var}"
    if salt is None:
        salt = os.environ.get(env_var)
    if salt is None or not str(salt).strip():
        raise InputError(
            Problem(
                env_var,
                f"no salt for pseudonymising identifiers: {where} is not set (or empty)",
                hint=_HOW_TO_SET.format(var=env_var),
            )
        )
    if not isinstance(salt, str):
        raise TypeError(f"salt must be text, got {type(salt).__name__}")
    if len(salt) < MIN_SALT_LENGTH:
        raise InputError(
            Problem(
                env_var,
                f"the salt in {where} is too short ({len(salt)} characters, at least "
                f"{MIN_SALT_LENGTH} needed): short salts can be guessed",
                hint=_HOW_TO_SET.format(var=env_var),
            )
        )
    return salt


def _text(value: object) -> str:
    """Identifiers as text; a whole number stored as a float (7.0) reads as 7, as in a CSV."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def pseudonymise(
    values: pd.Series,
    *,
    salt: str | None = None,
    env_var: str = SALT_ENV_VAR,
    prefix: str = "P-",
    length: int = 12,
) -> pd.Series:
    """Replace identifiers by salted keyed hashes (HMAC-SHA256); missing values stay missing.

    Parameters
    ----------
    values : Series
        Identifiers (text or numbers; compared as text).
    salt : str, optional
        The secret key. By default read from the environment variable `env_var`: pass it
        explicitly only in examples and tests, never from a params file.
    env_var : str
        Environment variable holding the salt (default ``LCSTATS_SALT``).
    prefix : str
        Put in front of every pseudonym (so they are not mistaken for real identifiers).
    length : int
        Hexadecimal characters kept of the hash (8 to 64). 12 (48 bits) keeps collisions unlikely
        below a million distinct identifiers; a collision is detected and raises an error.

    Returns
    -------
    Series
        Text pseudonyms with the same index and name.

    Raises
    ------
    InputError
        When no salt is set (saying how to set one), or the salt is too short.
    ValueError
        When two different identifiers get the same pseudonym (use a larger `length`).

    Examples
    --------
    >>> ids = pd.Series(["L00001", "L00002", None, "L00001"], name="learner_id")
    >>> pseudonymise(ids, salt="example-salt-not-a-secret").tolist()
    ['P-dda3c6880f93', 'P-f37a189ad852', nan, 'P-dda3c6880f93']
    >>> pseudonymise(ids, salt="another-salt-not-a-secret")[0] != "P-dda3c6880f93"
    True
    """
    if not isinstance(values, pd.Series):
        raise TypeError(f"values must be a pandas Series, got {type(values).__name__}")
    if isinstance(length, bool) or not isinstance(length, int) or not 8 <= length <= 64:
        raise ValueError(f"length must be a whole number from 8 to 64, got {length!r}")
    if not isinstance(prefix, str):
        raise TypeError(f"prefix must be text, got {type(prefix).__name__}")
    key = resolve_salt(salt, env_var=env_var).encode("utf-8")
    present = values.notna()
    distinct = pd.unique(values[present].map(_text))
    mapping = {
        text: prefix
        + hmac.new(key, text.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:length]
        for text in distinct
    }
    if len(set(mapping.values())) < len(mapping):
        raise ValueError(
            f"two different identifiers got the same pseudonym with length={length}; "
            "use a larger length"
        )
    out = pd.Series(pd.NA, index=values.index, name=values.name, dtype="str")
    out[present] = values[present].map(_text).map(mapping)
    return out


def pseudonymise_frame(
    frame: pd.DataFrame,
    columns: Sequence[str] | None = None,
    *,
    salt: str | None = None,
    env_var: str = SALT_ENV_VAR,
    prefix: str = "P-",
    length: int = 12,
) -> pd.DataFrame:
    """A copy of `frame` with its identifier columns pseudonymised (see `pseudonymise`).

    Parameters
    ----------
    frame : DataFrame
        A table for analysts (learners, outcomes, an extract).
    columns : sequence of str, optional
        Columns to pseudonymise; each must be in `frame`. By default those of ``learner_id`` and
        ``manager_id`` that the frame has (at least one of them).

    Examples
    --------
    >>> frame = pd.DataFrame({"learner_id": ["L1", "L2"], "manager_id": ["M1", "M1"], "x": [1, 2]})
    >>> out = pseudonymise_frame(frame, salt="example-salt-not-a-secret")
    >>> out["x"].tolist(), out["manager_id"].nunique(), out["learner_id"].str.startswith("P-").all()
    ([1, 2], 1, np.True_)
    """
    if columns is None:
        columns = [c for c in ID_COLUMNS if c in frame.columns]
        if not columns:
            raise ValueError(
                f"the frame has none of the identifier columns {', '.join(ID_COLUMNS)}; "
                "name the columns to pseudonymise"
            )
    else:
        columns = [columns] if isinstance(columns, str) else list(columns)
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise KeyError(f"columns not in the frame: {', '.join(missing)}")
    salt = resolve_salt(salt, env_var=env_var)
    out = frame.copy()
    for col in columns:
        out[col] = pseudonymise(out[col], salt=salt, env_var=env_var, prefix=prefix, length=length)
    return out
