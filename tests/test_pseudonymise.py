"""Pseudonyms: keyed by a salt from the environment; stable, unlinkable across salts, nothing lost."""

from __future__ import annotations

import hashlib
import hmac

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lcstats.core.errors import InputError
from lcstats.reporting.pseudonymise import pseudonymise, pseudonymise_frame

SALT = "test-salt-0123456789abcdef"
OTHER = "other-salt-0123456789abcdef"


@pytest.fixture(autouse=True)
def no_salt_in_environment(monkeypatch):
    monkeypatch.delenv("LCSTATS_SALT", raising=False)


def test_missing_salt_says_how_to_set_it():
    with pytest.raises(InputError) as info:
        pseudonymise(pd.Series(["L1"]))
    text = info.value.describe()
    assert "LCSTATS_SALT" in text and "not set" in text
    assert "export LCSTATS_SALT=" in text and "out of git" in text


def test_empty_or_short_salt_is_refused(monkeypatch):
    monkeypatch.setenv("LCSTATS_SALT", "   ")
    with pytest.raises(InputError, match="not set"):
        pseudonymise(pd.Series(["L1"]))
    monkeypatch.setenv("LCSTATS_SALT", "short")
    with pytest.raises(InputError, match="too short"):
        pseudonymise(pd.Series(["L1"]))


def test_salt_is_read_from_the_environment(monkeypatch):
    ids = pd.Series(["L00001", "L00002"])
    monkeypatch.setenv("LCSTATS_SALT", SALT)
    assert pseudonymise(ids).tolist() == pseudonymise(ids, salt=SALT).tolist()
    monkeypatch.setenv("MY_SALT", OTHER)
    assert pseudonymise(ids, env_var="MY_SALT").tolist() == pseudonymise(ids, salt=OTHER).tolist()


def test_pseudonym_is_the_keyed_hash_with_prefix_and_length():
    out = pseudonymise(pd.Series(["L00001"]), salt=SALT, prefix="X_", length=20)
    digest = hmac.new(SALT.encode(), b"L00001", hashlib.sha256).hexdigest()
    assert out[0] == "X_" + digest[:20]


def test_same_salt_same_pseudonyms_other_salt_different():
    ids = pd.Series([f"L{i:05d}" for i in range(500)])
    first, again = pseudonymise(ids, salt=SALT), pseudonymise(ids, salt=SALT)
    other = pseudonymise(ids, salt=OTHER)
    assert first.tolist() == again.tolist()
    assert not set(first) & set(other)
    assert first.nunique() == 500  # nothing merged


def test_missing_values_stay_missing_and_index_and_name_are_kept():
    ids = pd.Series(
        ["L1", None, np.nan, pd.NA, "L1"], index=[10, 11, 12, 13, 14], name="learner_id"
    )
    out = pseudonymise(ids, salt=SALT)
    assert out.index.tolist() == [10, 11, 12, 13, 14] and out.name == "learner_id"
    assert out.isna().tolist() == [False, True, True, True, False]
    assert out[10] == out[14]


def test_numbers_are_pseudonymised_as_they_read_in_a_csv():
    as_text = pseudonymise(pd.Series(["7", "8"]), salt=SALT)
    as_float = pseudonymise(pd.Series([7.0, 8.0]), salt=SALT)
    as_int = pseudonymise(pd.Series([7, 8], dtype="Int64"), salt=SALT)
    assert as_text.tolist() == as_float.tolist() == as_int.tolist()


def test_the_original_identifier_does_not_appear():
    ids = pd.Series(["EMP-0001234", "EMP-0001235"])
    out = pseudonymise(ids, salt=SALT)
    assert not any("0001234" in v or "EMP" in v for v in out)


def test_collision_is_detected_not_silently_merged(monkeypatch):
    import lcstats.reporting.pseudonymise as mod

    class Same:
        def hexdigest(self):
            return "0" * 64

    monkeypatch.setattr(mod.hmac, "new", lambda *a, **k: Same())
    with pytest.raises(ValueError, match="same pseudonym"):
        pseudonymise(pd.Series(["a", "b"]), salt=SALT)


@pytest.mark.parametrize("length", [0, 7, 65, 12.0, True])
def test_bad_length(length):
    with pytest.raises(ValueError, match="length"):
        pseudonymise(pd.Series(["a"]), salt=SALT, length=length)


def test_frame_pseudonymises_identifier_columns_only():
    frame = pd.DataFrame(
        {"learner_id": ["L1", "L2", "L3"], "manager_id": ["L1", "M9", None], "score": [1, 2, 3]}
    )
    out = pseudonymise_frame(frame, salt=SALT)
    assert out["score"].tolist() == [1, 2, 3]
    assert frame["learner_id"].tolist() == ["L1", "L2", "L3"]  # the input is not changed
    assert out.loc[0, "learner_id"] == out.loc[0, "manager_id"]  # same person, same pseudonym
    assert pd.isna(out.loc[2, "manager_id"])
    assert not set(out["learner_id"]) & {"L1", "L2", "L3"}


def test_frame_default_uses_the_identifier_columns_it_has():
    out = pseudonymise_frame(pd.DataFrame({"learner_id": ["L1"], "x": [1]}), salt=SALT)
    assert out.loc[0, "learner_id"].startswith("P-")
    with pytest.raises(ValueError, match="none of the identifier columns"):
        pseudonymise_frame(pd.DataFrame({"x": [1]}), salt=SALT)


def test_frame_named_columns_must_exist():
    frame = pd.DataFrame({"learner_id": ["L1"], "team_id": ["T1"]})
    assert pseudonymise_frame(frame, ["team_id"], salt=SALT).loc[0, "learner_id"] == "L1"
    with pytest.raises(KeyError, match="learnr_id"):
        pseudonymise_frame(frame, ["learnr_id"], salt=SALT)


def test_frame_without_salt_is_a_clear_error():
    with pytest.raises(InputError, match="LCSTATS_SALT"):
        pseudonymise_frame(pd.DataFrame({"learner_id": ["L1"]}))


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.lists(st.one_of(st.text(), st.none(), st.integers()), max_size=20))
def test_pseudonyms_are_deterministic_injective_and_keep_missing(values):
    series = pd.Series(values, dtype=object)
    out = pseudonymise(series, salt=SALT)
    assert out.isna().tolist() == series.isna().tolist()
    known = series.notna()
    pairs = set(zip(series[known].map(str), out[known], strict=True))
    assert len({a for a, _ in pairs}) == len({b for _, b in pairs}) == len(pairs)
    assert out.tolist() == pseudonymise(series, salt=SALT).tolist()
