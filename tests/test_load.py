"""The data contract: every kind of bad input gets one clear problem (file, column, rows, what to do).

Most tests copy a small slice of the example programme (the first 40 learners with their action
items and assessments) to a temporary folder, break one thing, and check the problems reported.
Row numbers are CSV line numbers (the header is line 1), so data row ``i`` (0-based) is ``i + 2``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from lcstats.core.errors import InputError, Problem
from lcstats.data.load import Programme, load_programme, read_table
from tests.conftest import EXAMPLE

TABLES = ("learners", "action_items", "skill_assessments")
FILES = {t: f"{t}.csv" for t in TABLES}


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def mini(tmp_path_factory) -> dict[str, pd.DataFrame]:
    """The first 40 learners of the example, with their items and assessments (all text)."""
    learners = _read(EXAMPLE / "learners.csv").head(40)
    ids = set(learners["learner_id"])
    out = {"learners": learners}
    for table in ("action_items", "skill_assessments"):
        frame = _read(EXAMPLE / f"{table}.csv")
        out[table] = frame[frame["learner_id"].isin(ids)].reset_index(drop=True)
    assert set(learners["coached"]) == {"0", "1"}
    return out


Edit = Callable[[pd.DataFrame], pd.DataFrame] | str | bytes


@pytest.fixture
def make(tmp_path, mini) -> Callable[..., Path]:
    """Write the mini programme to a folder, with per-table edits (a function, text or bytes)."""

    def _make(**edits: Edit) -> Path:
        for table in TABLES:
            edit = edits.get(table)
            path = tmp_path / FILES[table]
            if isinstance(edit, bytes):
                path.write_bytes(edit)
            elif isinstance(edit, str):
                path.write_text(edit, encoding="utf-8")
            else:
                frame = mini[table].copy()
                if edit is not None:
                    frame = edit(frame)
                frame.to_csv(path, index=False)
        return tmp_path

    return _make


def load(folder: Path, **kwargs) -> Programme:
    return load_programme(*(folder / FILES[t] for t in TABLES), **kwargs)


def check_no_cascades(problems: tuple[Problem, ...]) -> None:
    """No duplicate problems, and no row reported twice for the same file and column."""
    assert len(set(problems)) == len(problems), problems
    seen: dict[tuple[str, str | None], set[int]] = {}
    for p in problems:
        rows = set(p.rows)
        key = (p.source, p.column)
        assert not rows & seen.get(key, set()), f"rows reported twice for {key}: {problems}"
        seen.setdefault(key, set()).update(rows)
        text = str(p).lower()
        for word in (
            "traceback",
            "dtype",
            "coerce",
            "pandera",
            "schemaerror",
            "none",
            "nan",
            "nat",
        ):
            assert not re.search(rf"\b{word}\b", text), p


def problems_of(folder: Path, **kwargs) -> tuple[Problem, ...]:
    with pytest.raises(InputError) as info:
        load(folder, **kwargs)
    problems = info.value.problems
    assert problems
    check_no_cascades(problems)
    return problems


def only(
    problems: tuple[Problem, ...], table: str | None = None, column: str | None = "?"
) -> Problem:
    """The one problem (optionally: in this table's file, about this column)."""
    found = [
        p
        for p in problems
        if (table is None or Path(p.source).name == FILES[table])
        and (column == "?" or p.column == column)
    ]
    assert len(found) == 1, problems
    return found[0]


def setcell(column: str, rows: dict[int, str]) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def edit(frame: pd.DataFrame) -> pd.DataFrame:
        for i, value in rows.items():
            frame.loc[i, column] = value
        return frame

    return edit


def text_of(frame: pd.DataFrame, sep: str = ",") -> str:
    return frame.to_csv(index=False, sep=sep)


# --- a valid programme -----------------------------------------------------------------------


def test_valid_programme_loads_with_typed_columns(make, mini):
    prog = load(make())
    assert prog.sources["learners"].rows_read == 40
    assert prog.sources["action_items"].rows_read == len(mini["action_items"])
    assert len(prog.sources["learners"].sha256) == 64
    assert prog.learners["coached"].dtype == "Int64"
    assert prog.learners["tenure_months"].dtype == float
    assert str(prog.action_items["due_on"].dtype) == "datetime64[ns]"
    assert prog.action_items["completed_on"].isna().any()  # empty = not done, kept as missing
    assert prog.skill_assessments["level"].dtype == float
    for table in TABLES:
        assert isinstance(prog.table(table).index, pd.RangeIndex)
    html = prog._repr_html_()
    assert "<table" in html and "Programme: 40 learners" in html


def test_optional_values_may_be_empty(make):
    folder = make(
        learners=setcell("tenure_months", {0: ""}),
        action_items=setcell("completed_on", {0: ""}),
        skill_assessments=lambda f: setcell("assessed_on", {1: ""})(setcell("level", {0: ""})(f)),
    )
    prog = load(folder)
    assert pd.isna(prog.learners.loc[0, "tenure_months"])
    assert pd.isna(prog.skill_assessments.loc[0, "level"])


# --- files that cannot be read ---------------------------------------------------------------


def test_missing_file(make, tmp_path):
    folder = make()
    (folder / "action_items.csv").unlink()
    p = only(problems_of(folder))
    assert Path(p.source).name == "action_items.csv"
    assert "does not exist" in p.message and "action_items" in p.message
    assert "path" in p.hint


def test_all_unreadable_files_are_reported_together(tmp_path):
    (tmp_path / "folder.csv").mkdir()
    (tmp_path / "items.json").write_bytes(b"{}")
    with pytest.raises(InputError) as info:
        load_programme(tmp_path / "nope.csv", tmp_path / "items.json", tmp_path / "folder.csv")
    problems = info.value.problems
    assert [Path(p.source).name for p in problems] == ["nope.csv", "items.json", "folder.csv"]
    assert "does not exist" in problems[0].message
    assert (
        "unsupported file type '.json'" in problems[1].message
        and ".csv, .parquet or Excel" in problems[1].hint
    )
    assert "folder" in problems[2].message


def test_file_that_cannot_be_opened(make, monkeypatch):
    folder = make()

    def refuse(self):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "read_bytes", refuse)
    problems = problems_of(folder)
    assert len(problems) == 3
    assert all("cannot be opened (Permission denied)" in p.message for p in problems)


@pytest.mark.parametrize(
    "content", [b"", b"\n\n  \n", b"\xef\xbb\xbf"], ids=["0 bytes", "blank lines", "BOM only"]
)
def test_empty_file(make, content):
    p = only(problems_of(make(learners=content)))
    assert Path(p.source).name == "learners.csv"
    assert "empty" in p.message
    assert "export the learners table again" in p.hint


def test_header_only_file(make, mini):
    p = only(
        problems_of(make(skill_assessments=",".join(mini["skill_assessments"].columns) + "\n"))
    )
    assert Path(p.source).name == "skill_assessments.csv"
    assert "header but no data rows" in p.message


@pytest.mark.parametrize(("sep", "word"), [(";", "semicolons"), ("\t", "tabs")])
def test_wrong_delimiter(make, mini, sep, word):
    p = only(problems_of(make(learners=text_of(mini["learners"], sep=sep))))
    assert Path(p.source).name == "learners.csv"
    assert f"separated by {word}, expected commas" in p.message
    assert "comma-separated" in p.hint


def test_non_utf8_bytes(make, mini):
    text = text_of(mini["learners"]).replace("Analyst", "Analysté", 1)
    line = next(i for i, row in enumerate(text.splitlines(), 1) if "Analysté" in row)
    p = only(problems_of(make(learners=text.encode("latin-1"))))
    assert Path(p.source).name == "learners.csv"
    assert "not UTF-8" in p.message and f"line {line}" in p.message
    assert p.rows == (line,)
    assert "CSV UTF-8" in p.hint


def test_byte_order_mark_loads_fine(make, mini):
    prog = load(make(learners=text_of(mini["learners"]).encode("utf-8-sig")))
    assert prog.learners.columns[0] == "learner_id"
    assert prog.learners["learner_id"].tolist() == mini["learners"]["learner_id"].tolist()


def test_unbalanced_quote(make, mini):
    lines = text_of(mini["learners"]).splitlines()
    lines[3] = lines[3].replace("L00003", '"L00003')
    p = only(problems_of(make(learners="\n".join(lines) + "\n")))
    assert "not a readable CSV file" in p.message and "line 4" in p.message
    assert p.rows == (4,)
    assert "quote" in p.hint


def test_row_with_more_values_than_columns(make, mini):
    lines = text_of(mini["learners"]).splitlines()
    lines[5] += ",oops"
    p = only(problems_of(make(learners="\n".join(lines) + "\n")))
    assert "more values than the header has columns" in p.message
    assert p.rows == (6,)
    assert "double quotes" in p.hint


def test_trailing_commas_and_blank_lines_do_not_shift_row_numbers(make, mini):
    lines = [line + "," for line in text_of(mini["learners"]).splitlines()]
    lines.insert(3, "")  # a blank line 4: the learner on line 7 is then data row 5
    lines[6] = lines[6].replace("L00005", "")
    p = only(problems_of(make(learners="\n".join(lines) + "\n")))
    assert (p.column, p.rows) == ("learner_id", (7,))
    assert "empty" in p.message


def test_values_are_stripped_of_spaces(make):
    folder = make(
        learners=setcell("learner_id", {0: "  L00001 "}),
        action_items=setcell("learner_id", {0: "L00001  "}),
    )
    prog = load(folder)
    assert prog.learners.loc[0, "learner_id"] == "L00001"
    assert prog.action_items.loc[0, "learner_id"] == "L00001"


def test_duplicate_column_names(make, mini):
    lines = text_of(mini["learners"]).splitlines()
    lines = [lines[0] + ",role"] + [line + ",x" for line in lines[1:]]
    p = only(problems_of(make(learners="\n".join(lines) + "\n")))
    assert (Path(p.source).name, p.column) == ("learners.csv", "role")
    assert "appears 2 times" in p.message


# --- columns ----------------------------------------------------------------------------------


def test_missing_column(make):
    p = only(problems_of(make(action_items=lambda f: f.drop(columns=["due_on"]))))
    assert (Path(p.source).name, p.column) == ("action_items.csv", "due_on")
    assert "required column 'due_on' is missing" in p.message
    assert "columns:" in p.hint and "created_on" in p.hint  # how to map it; the columns it has
    assert "rename" not in p.hint  # never suggests a column that is already used as itself


@pytest.mark.parametrize(
    ("theirs", "ours"),
    [
        ("teamid", "team_id"),
        ("Learner_ID", "learner_id"),
        ("Team ID", "team_id"),
        ("coachd", "coached"),
    ],
)
def test_misspelled_column_suggests_the_closest_name(make, theirs, ours):
    p = only(problems_of(make(learners=lambda f: f.rename(columns={ours: theirs}))))
    assert (Path(p.source).name, p.column) == ("learners.csv", ours)
    assert f"required column '{ours}' is missing" in p.message
    assert f"rename '{theirs}' to '{ours}'" in p.hint
    assert f"{{learners: {{{ours}: '{theirs}'}}}}" in p.hint


def test_column_mapping(make, mini):
    folder = make(learners=lambda f: f.rename(columns={"learner_id": "EmployeeRef"}))
    prog = load(folder, columns={"learners": {"learner_id": "EmployeeRef"}})
    assert "EmployeeRef" not in prog.learners
    assert prog.learners["learner_id"].tolist() == mini["learners"]["learner_id"].tolist()


def test_column_mapping_to_a_column_that_is_not_there(make):
    folder = make(learners=lambda f: f.rename(columns={"learner_id": "EmployeeRef"}))
    p = only(problems_of(folder, columns={"learners": {"learner_id": "Employee_Ref"}}))
    assert (Path(p.source).name, p.column) == ("learners.csv", "learner_id")
    assert "'Employee_Ref', which is not in the file" in p.message
    assert "did you mean 'EmployeeRef'" in p.hint


def test_column_mapping_onto_a_column_the_file_also_has(make):
    p = only(problems_of(make(), columns={"learners": {"team_id": "manager_id"}}))
    assert p.column == "team_id"
    assert "both 'team_id' and 'manager_id'" in p.message


def test_required_learner_columns_missing_with_suggestion(make):
    problems = problems_of(
        make(learners=lambda f: f.drop(columns=["cohort"])),
        required_learner_columns=("coached", "Engagement", "tenure", "grade"),
    )
    assert {p.column for p in problems} == {"cohort", "Engagement", "tenure", "grade"}
    assert "required column 'cohort' is missing" in only(problems, column="cohort").message
    engagement = only(problems, column="Engagement")
    assert "named in the parameters" in engagement.message
    assert "did you mean 'engagement'" in engagement.hint
    assert "did you mean 'tenure_months'" in only(problems, column="tenure").hint
    assert "remove it from the parameters" in only(problems, column="grade").hint


def test_further_learner_columns_are_numbers_only_when_every_value_is_one(make):
    def edit(frame: pd.DataFrame) -> pd.DataFrame:
        frame["score"] = [str(i / 2) for i in range(len(frame))]
        frame.loc[3, "score"] = ""
        frame["grade"] = ["7"] * len(frame)
        frame.loc[5, "grade"] = "7b"
        frame["empty"] = ""
        return frame

    prog = load(make(learners=edit), required_learner_columns=("score", "grade", "engagement"))
    assert prog.learners["engagement"].dtype == float
    assert prog.learners["score"].dtype == float and pd.isna(prog.learners.loc[3, "score"])
    assert prog.learners.loc[4, "score"] == 2.0
    assert not pd.api.types.is_numeric_dtype(prog.learners["grade"])
    assert prog.learners.loc[5, "grade"] == "7b"
    assert prog.learners["empty"].isna().all()


# --- values -----------------------------------------------------------------------------------


def test_duplicate_learner_ids(make):
    p = only(problems_of(make(learners=lambda f: pd.concat([f, f.iloc[[5]]], ignore_index=True))))
    assert (Path(p.source).name, p.column) == ("learners.csv", "learner_id")
    assert p.rows == (7, 42) and p.n_rows == 2
    assert "only once" in p.message and "'L00006'" in p.message
    assert "duplicated rows" in p.hint


def test_duplicate_item_ids(make):
    p = only(problems_of(make(action_items=setcell("item_id", {4: "A000001"}))))
    assert (Path(p.source).name, p.column) == ("action_items.csv", "item_id")
    assert p.rows == (2, 6)
    assert "'A000001'" in p.message


def test_rows_for_unknown_learners_are_excluded_and_counted_by_default(make):
    folder = make(
        action_items=setcell("learner_id", {3: "L99999", 8: "L99999"}),
        skill_assessments=setcell("learner_id", {2: "X1"}),
    )
    prog = load(folder)
    reason = "learner not in the learners table"
    assert prog.excluded == {"action_items": {reason: 2}, "skill_assessments": {reason: 1}}
    assert len(prog.action_items) == prog.sources["action_items"].rows_read - 2
    assert not prog.action_items["learner_id"].eq("L99999").any()


def test_rows_for_unknown_learners_are_rejected_when_asked(make):
    problems = problems_of(
        make(
            action_items=setcell("learner_id", {3: "L99999", 8: "L99999"}),
            skill_assessments=setcell("learner_id", {2: "X1"}),
        ),
        unknown_learners="reject",
    )
    assert len(problems) == 2
    items = only(problems, "action_items", "learner_id")
    assert items.rows == (5, 10) and items.n_rows == 2
    assert "not in the learners table" in items.message and "'L99999'" in items.message
    assert "same population" in items.hint
    assessments = only(problems, "skill_assessments", "learner_id")
    assert assessments.rows == (4,) and "'X1'" in assessments.message


def test_unknown_learners_are_excluded_alike_when_looked_up_side_by_side(make, monkeypatch):
    from lcstats.core import threads

    folder = make(
        action_items=setcell("learner_id", {3: "L99999", 8: "L99999"}),
        skill_assessments=setcell("learner_id", {2: "X1"}),
    )
    in_turn = load(folder)
    monkeypatch.setattr(threads, "MIN_ROWS", 0)  # any size runs side by side
    assert threads.workers_for(1) > 1 or threads.usable_cores() == 1
    side = load(folder)
    assert side.excluded == in_turn.excluded
    for table in ("learners", "action_items", "skill_assessments"):
        pd.testing.assert_frame_equal(getattr(side, table), getattr(in_turn, table))


def test_the_unknown_learner_check_is_left_out_once_they_were_excluded():
    from lcstats.data.contract import cross_table_problems

    learners = pd.DataFrame({"learner_id": ["L1", "L2"]}, dtype="str")
    items = pd.DataFrame({"learner_id": ["L1", "L9"]}, dtype="str")
    assessments = pd.DataFrame({"learner_id": ["L2"]}, dtype="str")
    sources = {t: f"{t}.csv" for t in ("learners", "action_items", "skill_assessments")}
    found = cross_table_problems(learners, items, assessments, sources)
    assert [(p.column, p.rows) for p in found] == [("learner_id", (3,))]
    assert cross_table_problems(learners, items, assessments, sources, unknown_learners=False) == []


@pytest.mark.parametrize(
    "bad", ["31/02/2026", "tomorrow", "2026-02-30", "2026-13-01", "2026-02-1399", "46000"]
)
def test_dates_that_do_not_parse_are_reported_once(make, bad):
    p = only(problems_of(make(action_items=setcell("due_on", {6: bad}))))
    assert (Path(p.source).name, p.column, p.rows) == ("action_items.csv", "due_on", (8,))
    assert "YYYY-MM-DD" in p.message and repr(bad) in p.message
    assert "2026-03-31" in p.hint


@pytest.mark.parametrize(
    "day", ["2026-02-15T09:30:00", "2026-02-15 09:30", "2026-2-15", "2026-2-15T9:30"]
)
def test_dates_with_a_time_are_accepted(make, day):
    folder = make(action_items=setcell("completed_on", {1: day}))
    prog = load(folder)
    assert prog.action_items.loc[1, "completed_on"] == pd.Timestamp("2026-02-15")


def test_bad_dates_in_several_columns(make):
    problems = problems_of(
        make(
            action_items=setcell("created_on", {0: "tomorrow"}),
            skill_assessments=setcell("assessed_on", {1: "14.01.2026"}),
        )
    )
    assert len(problems) == 2
    assert only(problems, "action_items", "created_on").rows == (2,)
    assert only(problems, "skill_assessments", "assessed_on").rows == (3,)


def test_due_before_created(make):
    p = only(problems_of(make(action_items=setcell("due_on", {2: "2025-01-01"}))))
    assert (Path(p.source).name, p.column, p.rows) == ("action_items.csv", "due_on", (4,))
    assert "'due_on' is before 'created_on'" in p.message
    assert "day and month" in p.hint


def test_completed_before_created(make):
    p = only(problems_of(make(action_items=setcell("completed_on", {1: "2025-12-31"}))))
    assert (p.column, p.rows) == ("completed_on", (3,))
    assert "'completed_on' is before 'created_on'" in p.message


def test_levels_outside_the_scale(make):
    problems = problems_of(
        make(
            skill_assessments=lambda f: setcell("target_level", {3: "0"})(
                setcell("level", {1: "7"})(f)
            )
        )
    )
    level = only(problems, "skill_assessments", "level")
    assert level.rows == (3,) and "scale 1 to 5" in level.message and "'7'" in level.message
    assert "scale_min / scale_max" in level.hint
    target = only(problems, "skill_assessments", "target_level")
    assert target.rows == (5,) and "'0'" in target.message


def test_scale_parameter_sets_the_allowed_levels(make):
    folder = make(skill_assessments=setcell("level", {1: "7"}))
    assert load(folder, scale=(0, 10)).skill_assessments.loc[1, "level"] == 7
    p = only(problems_of(make(), scale=(1, 3)), "skill_assessments", "target_level")
    assert "scale 1 to 3" in p.message


def test_non_numeric_level_is_reported_once(make):
    p = only(problems_of(make(skill_assessments=setcell("level", {4: "three"}))))
    assert (p.column, p.rows) == ("level", (6,))
    assert "expected a number" in p.message and "'three'" in p.message
    assert "leave the cell empty" in p.hint


def test_negative_tenure_and_fractional_sessions(make):
    problems = problems_of(
        make(
            learners=lambda f: setcell("coaching_sessions", {0: "2.5"})(
                setcell("tenure_months", {1: "-3"})(f)
            )
        )
    )
    assert "whole number" in only(problems, column="coaching_sessions").message
    tenure = only(problems, column="tenure_months")
    assert tenure.rows == (3,) and "at least 0" in tenure.message


@pytest.mark.parametrize(
    ("yes", "no"),
    [("1", "0"), ("yes", "no"), ("y", "n"), ("true", "false"), ("Yes", "NO"), ("TRUE", " f ")],
)
def test_documented_treatment_spellings_are_accepted(make, mini, yes, no):
    coached = mini["learners"]["coached"].map({"1": yes, "0": no})
    prog = load(make(learners=lambda f: f.assign(coached=coached)))
    assert prog.learners["coached"].tolist() == mini["learners"]["coached"].astype(int).tolist()


@pytest.mark.parametrize("bad", ["2", "maybe", "coached", "-1"])
def test_treatment_not_0_or_1(make, bad):
    p = only(problems_of(make(learners=setcell("manager_coached", {5: bad}))))
    assert (Path(p.source).name, p.column, p.rows) == ("learners.csv", "manager_coached", (7,))
    assert "0/1, yes/no, y/n or true/false" in p.message and repr(bad) in p.message
    assert "1 (yes) or 0 (no)" in p.hint


def test_not_coached_but_with_sessions(make, mini):
    row = int(mini["learners"].index[mini["learners"]["coached"] == "0"][0])
    p = only(problems_of(make(learners=setcell("coaching_sessions", {row: "3"}))))
    assert (Path(p.source).name, p.column, p.rows) == (
        "learners.csv",
        "coaching_sessions",
        (row + 2,),
    )
    assert "coached = 0" in p.message
    assert "session count to 0" in p.hint


def test_wave_not_pre_or_post(make):
    p = only(problems_of(make(skill_assessments=setcell("wave", {2: "follow-up"}))))
    assert (Path(p.source).name, p.column, p.rows) == ("skill_assessments.csv", "wave", (4,))
    assert "expected 'pre' or 'post'" in p.message and "'follow-up'" in p.message


def test_more_waves_are_accepted_when_listed_and_need_their_dates(make, mini):
    folder = make(skill_assessments=setcell("wave", {2: "Mid"}))
    prog = load(folder, waves=("pre", "mid", "post"))
    assert set(prog.skill_assessments["wave"]) == {"pre", "mid", "post"}
    # a wave not listed is named with the waves that are
    p = only(problems_of(folder, waves=("pre", "q2", "post")))
    assert (p.column, p.rows) == ("wave", (4,))
    assert "skill_waves (['pre', 'q2', 'post'])" in p.message and "'mid'" in p.message
    assert "add the wave to skill_waves" in p.hint
    # with more than two waves the waves are ordered by date: every assessment needs one
    undated = make(
        skill_assessments=lambda f: setcell("assessed_on", {5: ""})(setcell("wave", {2: "mid"})(f))
    )
    p = only(problems_of(undated, waves=("pre", "mid", "post")))
    assert (p.column, p.rows) == ("assessed_on", (7,))
    assert "ordered by assessed_on" in p.hint
    assert load(make(skill_assessments=setcell("assessed_on", {5: ""}))) is not None


def test_wave_is_case_insensitive(make, mini):
    waves = mini["skill_assessments"]["wave"].map({"pre": "Pre", "post": "POST"})
    prog = load(make(skill_assessments=lambda f: f.assign(wave=waves)))
    assert set(prog.skill_assessments["wave"]) == {"pre", "post"}


def test_duplicate_learner_skill_and_wave(make, mini):
    n = len(mini["skill_assessments"])
    p = only(
        problems_of(
            make(skill_assessments=lambda f: pd.concat([f, f.iloc[[3]]], ignore_index=True))
        )
    )
    assert Path(p.source).name == "skill_assessments.csv"
    assert p.column is None
    assert p.rows == (5, n + 2)
    assert "one row per learner, skill and wave" in p.message
    key = mini["skill_assessments"].iloc[3]
    assert f"{key['learner_id']} / {key['skill']} / {key['wave']}" in p.message


@pytest.mark.parametrize("spread", [3, 50, 10**7], ids=["few keys", "many keys", "64 bits"])
def test_the_key_check_finds_the_rows_duplicated_does(spread, monkeypatch):
    import numpy as np

    import lcstats.data.contract as contract

    if spread == 10**7:  # 9 parts of 200 values: the combined code would overflow 64 bits
        key = list("abcdefghi")
        monkeypatch.setattr(contract, "ASSESSMENT_KEY", tuple(key))
        n = 200
        rng = np.random.default_rng(1)
        frame = pd.DataFrame({c: rng.integers(0, spread, n).astype(str) for c in key})
        frame.iloc[[5, 9]] = frame.iloc[[0, 0]].to_numpy()
    else:
        rng = np.random.default_rng(spread)
        n, key = 2000, list(contract.ASSESSMENT_KEY)
        frame = pd.DataFrame(
            {c: pd.Series(rng.integers(0, spread, n).astype(str), dtype="str") for c in key}
        )
        frame.loc[rng.choice(n, 40, replace=False), "skill"] = None  # missing values: equal
    expected = ~frame[key].duplicated(keep=False)
    assert not expected.all()  # there are repeated keys to find
    pd.testing.assert_series_equal(contract._once_per_key(frame), expected, check_names=False)


@pytest.mark.parametrize("repeated", [False, True], ids=["each once", "two repeats"])
def test_a_large_key_column_is_counted_by_duckdb_with_the_same_verdict(repeated):
    from lcstats.data.contract import _each_once

    values = pd.Series([f"I{i:07d}" for i in range(150_000)], dtype="str")
    values[[10, 20_000]] = None  # missing values are reported as empty, not as repeats
    if repeated:
        values[[5, 99_999, 140_000]] = "I0000007"
    found = _each_once(values)
    if not repeated:
        assert found is True
        return
    expected = ~values.duplicated(keep=False) | values.isna()
    pd.testing.assert_series_equal(found, expected)
    assert sorted(values.index[~found]) == [5, 7, 99_999, 140_000]


@pytest.mark.parametrize("blank", ["", "   "])
def test_empty_required_values(make, blank):
    p = only(problems_of(make(learners=setcell("team_id", {2: blank, 9: blank}))))
    assert (Path(p.source).name, p.column, p.rows) == ("learners.csv", "team_id", (4, 11))
    assert "empty" in p.message
    assert "fill in 'team_id'" in p.hint


def test_empty_values_in_every_table(make):
    problems = problems_of(
        make(
            learners=setcell("coached", {1: ""}),
            action_items=setcell("created_on", {2: ""}),
            skill_assessments=setcell("target_level", {3: ""}),
        )
    )
    assert {(Path(p.source).name, p.column, p.rows) for p in problems} == {
        ("learners.csv", "coached", (3,)),
        ("action_items.csv", "created_on", (4,)),
        ("skill_assessments.csv", "target_level", (5,)),
    }


def test_empty_learner_ids_are_reported_as_empty_not_duplicates(make):
    p = only(problems_of(make(learners=setcell("learner_id", {2: "", 3: ""}))))
    assert (p.column, p.rows) == ("learner_id", (4, 5))
    assert "empty" in p.message


# --- several problems at once -----------------------------------------------------------------


def test_several_problems_across_files_are_reported_at_once(make):
    folder = make(
        learners=lambda f: setcell("coached", {0: "maybe"})(f.rename(columns={"role": "Role "})),
        action_items=lambda f: setcell("learner_id", {1: "L99999"})(
            setcell("due_on", {2: "tomorrow"})(f)
        ),
        skill_assessments=lambda f: setcell("wave", {0: "mid"})(setcell("level", {1: "9"})(f)),
    )
    with pytest.raises(InputError) as info:
        load(folder)
    problems = info.value.problems
    check_no_cascades(problems)
    found = {(Path(p.source).name, p.column) for p in problems}
    assert found == {
        ("learners.csv", "role"),  # the learners file cannot be checked further without it
        ("action_items.csv", "due_on"),
        ("skill_assessments.csv", "wave"),
        ("skill_assessments.csv", "level"),
    }
    described = info.value.describe()
    assert described.startswith("4 problems found:")
    for name in ("learners.csv", "action_items.csv", "skill_assessments.csv"):
        assert name in described


def test_cross_table_problems_are_reported_with_other_problems(make):
    problems = problems_of(
        make(
            learners=setcell("team_id", {0: ""}),
            action_items=lambda f: setcell("learner_id", {1: "L99999"})(
                setcell("due_on", {2: "2020-01-01"})(f)
            ),
        ),
        unknown_learners="reject",
    )
    assert {(Path(p.source).name, p.column) for p in problems} == {
        ("learners.csv", "team_id"),
        ("action_items.csv", "learner_id"),
        ("action_items.csv", "due_on"),
    }


def test_problem_text_names_file_column_rows_and_what_to_do(make):
    p = only(problems_of(make(learners=setcell("team_id", {i: "" for i in range(7)}))))
    text = str(p)
    assert "learners.csv, column 'team_id'" in text
    assert "[rows 2, 3, 4, 5, 6 (and 2 more)]" in text
    assert "what to do: fill in 'team_id'" in text


# --- Parquet --------------------------------------------------------------------------------


def test_parquet_input_equals_csv_input(tmp_path):
    csv = load(EXAMPLE)
    for table in TABLES:
        frame = pd.read_csv(EXAMPLE / FILES[table])
        if table == "action_items":
            frame = frame.astype(
                {c: "datetime64[ns]" for c in ("created_on", "due_on", "completed_on")}
            )
        frame.to_parquet(tmp_path / f"{table}.parquet")
    parquet = load_programme(*(tmp_path / f"{t}.parquet" for t in TABLES))
    for table in TABLES:
        pd.testing.assert_frame_equal(parquet.table(table), csv.table(table))
        assert parquet.sources[table].rows_read == csv.sources[table].rows_read


def test_parquet_problems_name_the_file_and_rows(tmp_path, mini):
    for table in TABLES:
        mini[table].to_parquet(tmp_path / f"{table}.parquet")
    bad = mini["skill_assessments"].copy()
    bad.loc[2, "wave"] = "later"
    bad.to_parquet(tmp_path / "skill_assessments.parquet")
    with pytest.raises(InputError) as info:
        load_programme(*(tmp_path / f"{t}.parquet" for t in TABLES))
    p = only(info.value.problems)
    assert (Path(p.source).name, p.column, p.rows) == ("skill_assessments.parquet", "wave", (4,))


def test_parquet_ids_stored_as_floats_match_ids_stored_as_integers(tmp_path, mini):
    numeric = {
        t: mini[t].assign(learner_id=mini[t]["learner_id"].str[1:].astype(int)) for t in TABLES
    }
    numeric["learners"]["learner_id"] = numeric["learners"]["learner_id"].astype(float)
    for table in TABLES:
        numeric[table].to_parquet(tmp_path / f"{table}.parquet")
    prog = load_programme(*(tmp_path / f"{t}.parquet" for t in TABLES))
    assert prog.learners.loc[0, "learner_id"] == "1"
    assert set(prog.action_items["learner_id"]) <= set(prog.learners["learner_id"])


def test_corrupt_parquet(tmp_path):
    path = tmp_path / "learners.parquet"
    path.write_bytes(b"not parquet at all")
    with pytest.raises(InputError) as info:
        read_table(path, "learners")
    p = only(info.value.problems)
    assert "not a readable Parquet file" in p.message


def test_optional_values_match_the_schema():
    from lcstats.data.contract import OPTIONAL_VALUES, REQUIRED_COLUMNS, schemas

    for table, schema in schemas((1, 5)).items():
        named = set(REQUIRED_COLUMNS[table]) | set(OPTIONAL_VALUES.get(table, ()))
        nullable = {c for c in named if schema.columns[c].nullable}
        assert nullable == set(OPTIONAL_VALUES.get(table, ())), table


def test_read_table_rejects_an_unknown_table_name(tmp_path):
    with pytest.raises(ValueError, match="choose one of"):
        read_table(EXAMPLE / "learners.csv", "learner")
