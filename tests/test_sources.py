"""Exports as they come: Excel sheets, day-first dates, values changed while reading (counted),
rows for unknown learners, coaching-session logs, and learning-activity logs (xAPI and tables),
whose features never contain activity after coaching started."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import lcstats as lc
from lcstats.core.errors import InputError
from lcstats.data.activity import FEATURES, REASONS, activity_features
from lcstats.data.load import load_programme, table_fingerprint
from lcstats.data.sources import expand, mask, resolve
from lcstats.data.typed import as_text
from lcstats.params import TableSpec, parse_params
from tests.conftest import write_params

TABLES = ("learners", "action_items", "skill_assessments")


def csv_programme(folder: Path):
    return load_programme(*(folder / f"{t}.csv" for t in TABLES))


def write_excel(path: Path, sheets: dict[str, pd.DataFrame]) -> Path:
    with pd.ExcelWriter(path, engine="openpyxl") as writer:
        for name, frame in sheets.items():
            frame.to_excel(writer, sheet_name=name, index=False)
    return path


def day_first(frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """Dates written 05/01/2026 (5 January), as many HR exports do."""
    out = frame.copy()
    for col in columns:
        out[col] = pd.to_datetime(out[col]).dt.strftime("%d/%m/%Y").where(out[col].notna(), "")
    return out


# --- Excel, date formats -------------------------------------------------------------------------


def test_an_excel_sheet_with_day_first_dates_reads_like_the_csv(small_programme_dir, tmp_path):
    items = pd.read_csv(small_programme_dir / "action_items.csv", dtype=str, keep_default_na=False)
    book = write_excel(
        tmp_path / "export.xlsx",
        {
            "Read me": pd.DataFrame({"x": [1]}),
            "Items": day_first(items, ("created_on", "due_on", "completed_on")),
        },
    )
    spec = TableSpec(path=str(book), sheet="Items", dayfirst=True)
    excel = load_programme(
        small_programme_dir / "learners.csv", spec, small_programme_dir / "skill_assessments.csv"
    )
    csv = csv_programme(small_programme_dir)
    pd.testing.assert_frame_equal(excel.action_items, csv.action_items)
    assert excel.sources["action_items"].fingerprint == csv.sources["action_items"].fingerprint
    dates = items[["created_on", "due_on", "completed_on"]].ne("").to_numpy().sum()
    assert excel.sources["action_items"].notes == {"dates read day first (day/month/year)": dates}


def test_excel_real_date_cells_and_a_date_format(small_programme_dir, tmp_path):
    items = pd.read_csv(small_programme_dir / "action_items.csv", dtype=str, keep_default_na=False)
    typed = items.assign(
        created_on=pd.to_datetime(items["created_on"]),  # real Excel date cells
        due_on=pd.to_datetime(items["due_on"]).dt.strftime("%d.%m.%Y"),
    )
    book = write_excel(tmp_path / "items.xlsx", {"Sheet1": typed})
    spec = TableSpec(path=str(book), date_format="%d.%m.%Y")
    excel = load_programme(
        small_programme_dir / "learners.csv", spec, small_programme_dir / "skill_assessments.csv"
    )
    pd.testing.assert_frame_equal(
        excel.action_items, csv_programme(small_programme_dir).action_items
    )


def test_a_sheet_that_is_not_there_names_the_sheets(small_programme_dir, tmp_path):
    book = write_excel(
        tmp_path / "book.xlsx",
        {"Learners": pd.DataFrame({"a": [1]}), "Items": pd.DataFrame({"b": [2]})},
    )
    with pytest.raises(InputError) as info:
        load_programme(
            small_programme_dir / "learners.csv",
            TableSpec(path=str(book), sheet="Actions"),
            small_programme_dir / "skill_assessments.csv",
        )
    p = info.value.problems[0]
    assert "the workbook has no sheet 'Actions'" in p.message and "'Learners', 'Items'" in p.hint


def test_ambiguous_dates_are_rejected_with_the_option_that_reads_them(
    small_programme_dir, tmp_path
):
    items = pd.read_csv(small_programme_dir / "action_items.csv", dtype=str, keep_default_na=False)
    day_first(items, ("due_on",)).to_csv(tmp_path / "items.csv", index=False)
    with pytest.raises(InputError) as info:
        load_programme(
            small_programme_dir / "learners.csv",
            tmp_path / "items.csv",
            small_programme_dir / "skill_assessments.csv",
        )
    p = next(p for p in info.value.problems if p.column == "due_on")
    assert "ambiguous" in p.message and p.n_rows == len(items)
    assert "dayfirst: true" in p.hint and "date_format" in p.hint
    ok = load_programme(
        small_programme_dir / "learners.csv",
        TableSpec(path=str(tmp_path / "items.csv"), dayfirst=True),
        small_programme_dir / "skill_assessments.csv",
    )
    assert ok.action_items["due_on"].equals(
        csv_programme(small_programme_dir).action_items["due_on"]
    )


def test_table_mappings_are_checked_in_the_params(tmp_path):
    base = {
        "evaluation": "x",
        "as_of": "2026-06-30",
        "action_items": "a.csv",
        "skill_assessments": "s.csv",
    }
    for spec, words in (
        ({"path": "l.csv", "sheet": "A"}, "'sheet' is for Excel files"),
        ({"path": "l.xlsx", "dayfirst": True, "date_format": "%d/%m/%Y"}, "not both"),
        ({"path": "l.csv", "date_format": "%d"}, "is not a date format"),
        ({"source": "${DB}"}, "give either 'table' or 'query'"),
        ({"path": "l.csv", "source": "${DB}", "table": "t"}, "not both or neither"),
        ({"path": "l.csv", "shet": "A"}, "unknown key 'shet'"),
    ):
        with pytest.raises(InputError) as info:
            parse_params({**base, "learners": spec})
        assert words in str(info.value), (spec, str(info.value))
    params = parse_params(
        {**base, "learners": {"path": "exports/l.xlsx", "sheet": "L"}}, base_dir=tmp_path
    )
    assert params.learners.path == str(tmp_path / "exports" / "l.xlsx")


# --- values changed while reading -------------------------------------------------------------


def test_values_changed_while_reading_are_counted_in_the_quality_and_results(
    small_programme_dir, tmp_path
):
    learners = pd.read_csv(small_programme_dir / "learners.csv", dtype=str, keep_default_na=False)
    learners.loc[:9, "role"] = learners.loc[:9, "role"] + "  "  # trailing spaces
    learners.loc[:4, "coached"] = learners.loc[:4, "coached"].map({"1": "Yes", "0": "no"})
    items = pd.read_csv(small_programme_dir / "action_items.csv", dtype=str, keep_default_na=False)
    items.loc[:2, "due_on"] = items.loc[:2, "due_on"] + " 17:30:00"
    data = tmp_path / "data"
    data.mkdir()
    (data / "learners.csv").write_bytes(b"\xef\xbb\xbf" + learners.to_csv(index=False).encode())
    items.to_csv(data / "action_items.csv", index=False)
    (data / "skill_assessments.csv").write_bytes(
        (small_programme_dir / "skill_assessments.csv").read_bytes()
    )
    params = lc.load_params(write_params(tmp_path / "p.yaml", data))
    done = lc.evaluate(params)
    quality = {t: q.as_dict()["notes"] for t, q in done.outcomes.quality.items()}
    assert quality["learners"] == {
        "byte-order mark removed from the start of the file": 1,
        "spaces trimmed after values": 10,
        "yes/no or true/false written as 1/0": 5,
    }
    assert quality["action_items"] == {"times of day dropped from dates": 3}
    from lcstats.reporting.results import results_document

    doc = results_document(**{k: v for k, v in done.report_arguments("x").items() if k != "run_id"})
    assert doc["data_quality"]["learners"]["notes"]["spaces trimmed after values"] == 10


def test_rows_for_unknown_learners_are_counted_in_the_data_quality(small_programme_dir, tmp_path):
    items = pd.read_csv(small_programme_dir / "action_items.csv", dtype=str, keep_default_na=False)
    items.loc[[3, 8, 9, 10, 11], "learner_id"] = "GONE-1"
    data = tmp_path / "data"
    data.mkdir()
    items.to_csv(data / "action_items.csv", index=False)
    for t in ("learners", "skill_assessments"):
        (data / f"{t}.csv").write_bytes((small_programme_dir / f"{t}.csv").read_bytes())
    done = lc.evaluate(lc.load_params(write_params(tmp_path / "p.yaml", data)))
    q = done.outcomes.quality["action_items"]
    assert q.excluded["learner not in the learners table"] == 5
    assert q.rows_read == len(items) and q.rows_used + sum(q.excluded.values()) == q.rows_read


# --- coaching sessions -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def with_logs(tmp_path_factory):
    from lcstats.data.simulate import simulate_programme, with_logs, write_programme

    sim = with_logs(simulate_programme(n_learners=300, seed=5))
    out = tmp_path_factory.mktemp("logs")
    paths = write_programme(sim, out, activity_format="xapi")
    write_programme(sim, out / "table", activity_format="csv")
    return sim, out, paths


def test_a_session_log_gives_the_coaching_columns(with_logs, tmp_path):
    sim, folder, _ = with_logs
    learners = sim.learners.drop(columns=["coached", "coaching_sessions"])
    learners.to_csv(tmp_path / "learners.csv", index=False)
    later = pd.DataFrame(
        {
            "learner_id": [sim.learners["learner_id"][0]],
            "session_on": ["2027-01-05"],
            "coach_id": ["C1"],
            "minutes": [30],
        }
    )
    log = pd.concat([pd.read_csv(folder / "coaching_sessions.csv", dtype=str), later.astype(str)])
    log.to_csv(tmp_path / "sessions.csv", index=False)
    prog = load_programme(
        tmp_path / "learners.csv",
        folder / "action_items.csv",
        folder / "skill_assessments.csv",
        coaching_sessions=tmp_path / "sessions.csv",
        as_of="2026-06-30",
    )
    assert prog.learners["coached"].tolist() == sim.learners["coached"].tolist()
    assert (
        prog.learners["coaching_sessions"].tolist()
        == sim.learners["coaching_sessions"].astype(float).tolist()
    )
    first = sim.coaching_sessions.groupby("learner_id")["session_on"].min()
    got = prog.learners.set_index("learner_id")["coached_from"].dropna()
    assert got.equals(first.astype("datetime64[ns]").rename("coached_from").reindex(got.index))
    assert prog.excluded["coaching_sessions"] == {"session after the as-of date": 1}


def test_a_session_for_a_learner_marked_not_coached_is_a_problem(with_logs, tmp_path):
    sim, folder, _ = with_logs
    sim.learners.drop(columns=["coaching_sessions"]).to_csv(tmp_path / "learners.csv", index=False)
    uncoached = sim.learners.loc[sim.learners["coached"] == 0, "learner_id"].iloc[0]
    log = pd.concat(
        [
            sim.coaching_sessions,
            pd.DataFrame(
                {
                    "learner_id": [uncoached],
                    "session_on": [pd.Timestamp("2026-01-05")],
                    "coach_id": ["C1"],
                    "minutes": [30],
                }
            ),
        ]
    )
    log.to_csv(tmp_path / "sessions.csv", index=False, date_format="%Y-%m-%d")
    with pytest.raises(InputError) as info:
        load_programme(
            tmp_path / "learners.csv",
            folder / "action_items.csv",
            folder / "skill_assessments.csv",
            coaching_sessions=tmp_path / "sessions.csv",
            as_of="2026-06-30",
        )
    assert any("have coaching sessions" in p.message for p in info.value.problems)


# --- activity ------------------------------------------------------------------------------------

STATEMENT_ID = "00000000-0000-0000-0000-{:012d}"


def statement(i, who, verb, obj, when, duration=None, object_type="Activity"):
    actor = (
        {"account": {"homePage": "https://lms", "name": who}}
        if not who.startswith("mailto:")
        else {"mbox": who}
    )
    out = {
        "id": STATEMENT_ID.format(i),
        "actor": actor,
        "verb": {"id": f"http://adlnet.gov/expapi/verbs/{verb}"},
        "object": {"id": obj, "objectType": object_type},
        "timestamp": when,
    }
    if duration:
        out["result"] = {"duration": duration}
    return out


LEARNERS = pd.DataFrame(
    {
        "learner_id": ["L1", "L2", "L3"],
        "coached": [1, 0, 0],
        "coached_from": pd.to_datetime(["2026-02-01", None, None]),
    }
)
STATEMENTS = [
    statement(1, "L1", "launched", "c1", "2026-01-05T10:00:00Z", "PT30M"),
    statement(2, "mailto:L1", "completed", "c1", "2026-01-06T10:00:00Z", "PT1H"),
    statement(3, "L1", "completed", "c2", "2026-03-05T10:00:00Z", "PT10H"),  # after coaching began
    statement(4, "L2", "launched", "c1", "2026-01-20T10:00:00+02:00", "PT15M"),
    statement(5, "L2", "completed", "c1", "2026-01-21T10:00:00Z", "PT15M"),
    statement(
        6,
        "L2",
        "voided",
        STATEMENT_ID.format(5),
        "2026-01-22T10:00:00Z",
        object_type="StatementRef",
    ),
    statement(7, "guest", "launched", "c1", "2026-01-20T10:00:00Z"),
    statement(8, "L2", "launched", "c3", "yesterday"),
    statement(9, "L3", "launched", "c4", "2024-01-01T00:00:00Z"),  # before the window
]


def write_jsonl(path: Path, statements: list[dict]) -> Path:
    path.write_text("".join(json.dumps(s) + "\n" for s in statements), encoding="utf-8")
    return path


def test_xapi_statements_give_the_features_and_count_what_is_left_out(tmp_path):
    path = write_jsonl(tmp_path / "statements.jsonl", STATEMENTS)
    features, summary = activity_features(
        TableSpec(path=str(path)), LEARNERS, baseline_end=None, window_days=182
    )
    got = features.set_index("learner_id")
    assert summary.baseline_end == "2026-02-01"  # the first coaching start
    assert got.loc["L1"].tolist() == [1.0, 90.0, 1.0, 1.0, 1.0, pytest.approx(25 + 14 / 24)]
    # L2's completion was voided; its launch (08:00 UTC on 20 January) counts
    assert got.loc["L2"].tolist() == [1.0, 15.0, 1.0, 0.0, 0.0, pytest.approx(11 + 16 / 24)]
    assert got.loc["L3"].tolist() == [0.0, 0.0, 0.0, 0.0, 0.0, 182.0]
    assert summary.excluded == {
        REASONS["after"]: 1,
        REASONS["before"]: 1,
        REASONS["unknown"]: 1,
        REASONS["unreadable"]: 1,
        REASONS["voided"]: 2,
    }
    assert summary.rows_read == len(STATEMENTS) and summary.rows_used == 3


def test_activity_after_coaching_starts_never_enters_a_feature(tmp_path):
    """Whatever happens after a learner's cut-off (coaching start, or baseline_end for the
    others), however much of it, the features stay the same."""
    rng = np.random.default_rng(3)
    before = write_jsonl(tmp_path / "before.jsonl", STATEMENTS)
    extra = []
    for i in range(400):
        who = ["L1", "L2", "L3"][i % 3]
        cut = pd.Timestamp("2026-02-01")  # L1's coaching start; baseline_end of L2 and L3
        when = cut + pd.Timedelta(seconds=int(rng.integers(0, 200 * 86400)))
        extra.append(
            statement(
                1000 + i,
                who,
                ["completed", "launched", "passed"][i % 3],
                f"x{i}",
                when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "PT9H",
            )
        )
    after = write_jsonl(tmp_path / "after.jsonl", STATEMENTS + extra)
    spec = {"baseline_end": "2026-02-01", "window_days": 182}
    a, _ = activity_features(TableSpec(path=str(before)), LEARNERS, **spec)
    b, summary = activity_features(TableSpec(path=str(after)), LEARNERS, **spec)
    pd.testing.assert_frame_equal(a, b)
    assert summary.excluded[REASONS["after"]] == 1 + len(extra)


def test_an_activity_table_gives_what_the_same_statements_give(with_logs, tmp_path):
    """The same events as xAPI statements and as a table (CSV, Parquet) give the same features."""
    sim, folder, paths = with_logs
    prog = load_programme(
        *(folder / f"{t}.csv" for t in TABLES),
        coaching_sessions=folder / "coaching_sessions.csv",
        as_of="2026-06-30",
    )
    spec = {"baseline_end": None, "window_days": 182}
    x, xs = activity_features(TableSpec(path=str(paths["activity"])), prog.learners, **spec)
    assert xs.excluded[REASONS["unknown"]] > 0 and xs.excluded[REASONS["voided"]] > 0
    statements = pd.read_json(paths["activity"], lines=True, dtype=False)
    voided = set(
        statements.loc[statements["verb"].map(lambda v: v["id"].endswith("voided")), "object"].map(
            lambda o: o["id"]
        )
    )
    kept = statements[
        ~statements["id"].isin(voided)
        & ~statements["verb"].map(lambda v: v["id"].endswith("voided"))
    ]
    table = pd.DataFrame(
        {
            "learner_id": kept["actor"].map(
                lambda a: a.get("account", {}).get("name", a.get("mbox"))
            ),
            "verb": kept["verb"].map(lambda v: v["id"].rsplit("/", 1)[1]),
            "object_id": kept["object"].map(lambda o: o["id"]),
            "occurred_at": kept["timestamp"],
            "duration_s": kept["result"].map(lambda r: _seconds(r["duration"])),
        }
    )
    table.to_csv(tmp_path / "activity.csv", index=False)
    table.assign(occurred_at=pd.to_datetime(table["occurred_at"]).dt.tz_localize(None)).to_parquet(
        tmp_path / "activity.parquet"
    )
    for name in ("activity.csv", "activity.parquet"):
        t, ts = activity_features(TableSpec(path=str(tmp_path / name)), prog.learners, **spec)
        pd.testing.assert_frame_equal(x, t)
        assert ts.rows_used == xs.rows_used
    # a folder of Parquet files, as large logs are exported, read through a glob
    whole = pd.read_parquet(tmp_path / "activity.parquet")
    (tmp_path / "parts").mkdir()
    for i, part in enumerate((whole.iloc[::2], whole.iloc[1::2])):
        part.to_parquet(tmp_path / "parts" / f"part-{i}.parquet")
    glob_spec = TableSpec(path=str(tmp_path / "parts" / "*.parquet"))
    t, ts = activity_features(glob_spec, prog.learners, **spec)
    pd.testing.assert_frame_equal(x, t)
    assert ts.rows_used == xs.rows_used
    whole.iloc[:10].to_parquet(tmp_path / "parts" / "part-1.parquet")  # one file changes
    assert activity_features(glob_spec, prog.learners, **spec)[1].fingerprint != ts.fingerprint


def _seconds(duration: str) -> float:
    minutes, seconds = duration.removeprefix("PT").removesuffix("S").split("M")
    return 60.0 * int(minutes) + int(seconds)


def test_activity_features_go_into_the_evaluation_and_its_quality(with_logs, tmp_path):
    sim, folder, paths = with_logs
    covariates = ["tenure_months", "pre_active_weeks", "pre_share_completed", "role"]
    params = lc.load_params(
        write_params(
            tmp_path / "p.yaml",
            folder,
            activity=str(paths["activity"]),
            coaching_sessions=str(folder / "coaching_sessions.csv"),
            covariates=covariates,
        )
    )
    done = lc.evaluate(params)
    assert set(FEATURES) <= set(done.outcomes.data.columns)
    assert done.effects.get("follow_through", "aipw").covariates == tuple(covariates)
    q = done.outcomes.quality["activity"]
    assert q.rows_used + sum(q.excluded.values()) == q.rows_read


def test_activity_features_need_a_cut_off(tmp_path):
    path = write_jsonl(tmp_path / "s.jsonl", STATEMENTS)
    learners = LEARNERS.drop(columns=["coached_from"])
    with pytest.raises(InputError, match="baseline_end"):
        activity_features(TableSpec(path=str(path)), learners, baseline_end=None, window_days=182)


def test_a_covariate_from_activity_without_a_log_is_refused():
    with pytest.raises(InputError, match="come from an activity log"):
        parse_params(
            {
                "evaluation": "x",
                "as_of": "2026-06-30",
                "learners": "l.csv",
                "action_items": "a.csv",
                "skill_assessments": "s.csv",
                "covariates": ["pre_minutes"],
            }
        )


# --- sources: variables, masking, typed values -------------------------------------------------


def test_credentials_are_masked_and_variables_must_be_set(monkeypatch):
    assert mask("postgresql://hr:pa55@db:5432/x") == "postgresql://hr:***@db:5432/x"
    monkeypatch.setenv("LCSTATS_TEST_URL", "postgresql://hr:pa55@db/x")
    source = resolve("${LCSTATS_TEST_URL}", "learners")
    assert source.engine == "postgres" and "pa55" not in source.shown
    monkeypatch.delenv("LCSTATS_TEST_URL")
    with pytest.raises(InputError, match="LCSTATS_TEST_URL is not set"):
        expand("${LCSTATS_TEST_URL}", "learners")
    with pytest.raises(InputError) as info:
        resolve("mysql://hr:pa55@db/x", "learners")
    assert "pa55" not in str(info.value) and "names no engine" in str(info.value)


def test_typed_values_are_written_as_a_careful_csv_export_would():
    frame = pd.DataFrame(
        {
            "n": [1.0, 2.5, None],
            "flag": [True, False, True],
            "when": pd.to_datetime(["2026-01-02", "2026-01-03 10:30", None], format="ISO8601"),
            "text": ["a", None, "c"],
        }
    )
    text = as_text(frame)
    assert text["n"].tolist()[:2] == ["1", "2.5"] and pd.isna(text["n"][2])
    assert text["flag"].tolist() == ["1", "0", "1"]
    assert text["when"].tolist()[:2] == ["2026-01-02", "2026-01-03 10:30:00"]


def test_the_rows_fingerprint_ignores_row_order(small_programme_dir):
    prog = csv_programme(small_programme_dir)
    shuffled = prog.action_items.sample(frac=1, random_state=1)
    assert table_fingerprint(shuffled) == table_fingerprint(prog.action_items)
    assert table_fingerprint(prog.action_items) == prog.sources["action_items"].fingerprint
    # the same values held otherwise (text as categories or Python objects): the same fingerprint
    held = prog.action_items.astype({"learner_id": "category", "item_id": object})
    assert table_fingerprint(held) == table_fingerprint(prog.action_items)
    changed = prog.action_items.assign(due_on=prog.action_items["due_on"] + pd.Timedelta(days=1))
    assert table_fingerprint(changed) != prog.sources["action_items"].fingerprint
    # a value moved to another row changes it, though every column keeps its values
    swapped = prog.action_items.copy()
    swapped.loc[swapped.index[:2], "due_on"] = swapped["due_on"].iloc[[1, 0]].to_numpy()
    assert swapped["due_on"].iloc[0] != prog.action_items["due_on"].iloc[0]
    assert table_fingerprint(swapped) != table_fingerprint(prog.action_items)
    renamed = prog.action_items.rename(columns={"item_id": "id"})
    assert table_fingerprint(renamed) != table_fingerprint(prog.action_items)
