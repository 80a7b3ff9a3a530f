"""Tables from real engines: a DuckDB file, a PostgreSQL server and Spark in local mode.

The PostgreSQL server and the Spark session are started by the test session (see conftest.py).
The same programme read from CSV, DuckDB, PostgreSQL and Spark gives the same results.json apart
from the description of where the data came from; a run whose learners come from PostgreSQL,
activity from xAPI statements and action items from an Excel sheet with day-first dates works
through `lcstats run`; and no credential reaches any output.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import lcstats as lc
from lcstats.core.errors import InputError
from lcstats.core.files import dumps_json
from lcstats.data.contract import TABLE_KEYS
from lcstats.params import INPUT_KEYS, TableSpec
from lcstats.reporting.results import results_document
from tests.conftest import write_params

LCSTATS = Path(sys.executable).parent / "lcstats"
LOGS = ("coaching_sessions", "activity")
COVARIATES = ["tenure_months", "engagement", "pre_active_weeks", "pre_minutes", "role", "cohort"]
SQL_TYPES = {"i": "bigint", "f": "double precision", "M": "timestamp", "O": "text", "U": "text"}


@pytest.fixture(scope="module")
def programme(tmp_path_factory):
    """A simulated programme with its logs: typed frames (in key order) and the same as files."""
    from lcstats.data.simulate import simulate_programme, with_logs, write_programme

    sim = with_logs(simulate_programme(n_learners=400, seed=7))
    frames = {t: getattr(sim, t) for t in (*TABLE_KEYS, "activity") if t != "coaching_sessions"}
    frames["coaching_sessions"] = sim.coaching_sessions
    for table, keys in TABLE_KEYS.items():
        frames[table] = frames[table].sort_values(list(keys), ignore_index=True)
    folder = tmp_path_factory.mktemp("engines")
    for table, frame in frames.items():
        if table == "activity":
            frame.to_parquet(folder / "activity.parquet", index=False)
        else:
            frame.to_csv(folder / f"{table}.csv", index=False, date_format="%Y-%m-%d")
    write_programme(sim, folder / "xapi", activity_format="xapi")
    return frames, folder


def evaluate_doc(params_path: Path) -> dict:
    done = lc.evaluate(lc.load_params(params_path))
    return results_document(
        **{k: v for k, v in done.report_arguments("x").items() if k != "run_id"}
    )


def without_sources(doc: dict) -> str:
    """results.json without the description of where each input came from."""
    doc = json.loads(json.dumps(doc))
    for key in INPUT_KEYS:
        doc["parameters"].pop(key, None)
    for entry in doc["inputs"].values():
        entry.pop("source")
    return dumps_json(doc)


def params_for(tmp: Path, name: str, folder: Path, tables: dict) -> Path:
    return write_params(
        tmp / f"{name}.yaml", folder, evaluation=name, covariates=COVARIATES, **tables
    )


@pytest.fixture(scope="module")
def csv_doc(programme, tmp_path_factory):
    frames, folder = programme
    tmp = tmp_path_factory.mktemp("csv")
    logs = {
        "coaching_sessions": str(folder / "coaching_sessions.csv"),
        "activity": str(folder / "activity.parquet"),
    }
    return evaluate_doc(params_for(tmp, "csv", folder, logs))


def sources(variable: str, table_name) -> dict:
    return {
        t: {"source": f"${{{variable}}}", "table": table_name(t)} for t in (*TABLE_KEYS, "activity")
    }


def test_a_duckdb_file_gives_the_same_results(programme, csv_doc, tmp_path, monkeypatch):
    import duckdb

    frames, folder = programme
    path = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE SCHEMA hr")
        for table, frame in frames.items():
            con.register("frame", frame)
            con.execute(f"CREATE TABLE hr.{table} AS SELECT * FROM frame")
            con.unregister("frame")
    monkeypatch.setenv("LCSTATS_TEST_DUCKDB", f"duckdb://{path}")
    doc = evaluate_doc(
        params_for(tmp_path, "csv", folder, sources("LCSTATS_TEST_DUCKDB", lambda t: f"hr.{t}"))
    )
    assert without_sources(doc) == without_sources(csv_doc)
    assert doc["inputs"]["learners"]["source"]["kind"] == "duckdb"


def load_postgres(url: str, frames: dict[str, pd.DataFrame]) -> None:
    """The tables into schema hr, loaded with COPY (not row-by-row inserts)."""
    import psycopg

    with psycopg.connect(url.replace("%21", "!")) as con, con.cursor() as cur:
        cur.execute("CREATE SCHEMA IF NOT EXISTS hr")
        for table, frame in frames.items():
            columns = ", ".join(f'"{c}" {SQL_TYPES[frame[c].dtype.kind]}' for c in frame.columns)
            cur.execute(f"DROP TABLE IF EXISTS hr.{table}; CREATE TABLE hr.{table} ({columns})")
            with cur.copy(f"COPY hr.{table} FROM STDIN") as copy:
                for row in frame.astype(object).itertuples(index=False, name=None):
                    copy.write_row([None if pd.isna(v) else v for v in row])


@pytest.fixture(scope="module")
def loaded_postgres(postgres_url, programme):
    load_postgres(postgres_url, programme[0])
    return postgres_url


def test_postgresql_gives_the_same_results(
    loaded_postgres, programme, csv_doc, tmp_path, monkeypatch
):
    frames, folder = programme
    monkeypatch.setenv("LCSTATS_TEST_PG", loaded_postgres)
    doc = evaluate_doc(
        params_for(tmp_path, "csv", folder, sources("LCSTATS_TEST_PG", lambda t: f"hr.{t}"))
    )
    assert without_sources(doc) == without_sources(csv_doc)
    assert "S3cret" not in json.dumps(doc)


def test_spark_gives_the_same_results(spark, programme, csv_doc, tmp_path, monkeypatch):
    frames, folder = programme
    for table, frame in frames.items():
        spark.createDataFrame(frame).createOrReplaceTempView(f"lcstats_{table}")
    monkeypatch.setenv("LCSTATS_TEST_SPARK", "spark:local[2]")
    doc = evaluate_doc(
        params_for(tmp_path, "csv", folder, sources("LCSTATS_TEST_SPARK", lambda t: f"lcstats_{t}"))
    )
    assert without_sources(doc) == without_sources(csv_doc)
    assert doc["inputs"]["learners"]["source"]["kind"] == "spark"


def test_a_problem_in_a_database_table_names_the_rows_by_their_key(
    loaded_postgres, programme, tmp_path, monkeypatch
):
    import psycopg

    frames, folder = programme
    with psycopg.connect(loaded_postgres.replace("%21", "!")) as con:
        con.execute("CREATE TABLE hr.bad_skills AS SELECT * FROM hr.skill_assessments")
        con.execute(
            "UPDATE hr.bad_skills SET level = 9 WHERE learner_id = 'L00003' AND wave = 'post'"
        )
    monkeypatch.setenv("LCSTATS_TEST_PG", loaded_postgres)
    spec = TableSpec(source="${LCSTATS_TEST_PG}", table="hr.bad_skills")
    with pytest.raises(InputError) as info:
        lc.load_programme(folder / "learners.csv", folder / "action_items.csv", spec)
    problem = next(p for p in info.value.problems if p.column == "level")
    assert problem.keys and problem.key == "learner_id / skill / wave"
    assert all(k.startswith("L00003 / ") and k.endswith(" / post") for k in problem.keys)
    assert "postgres table hr.bad_skills" in problem.source and "S3cret" not in str(info.value)
    assert "[learner_id / skill / wave L00003 / " in str(problem)


def test_a_wrong_password_or_table_is_a_clear_error_without_the_password(
    loaded_postgres, programme, monkeypatch
):
    frames, folder = programme
    wrong = loaded_postgres.replace("S3cret-pw%21x", "Wr0ng-pw")
    for url, table, words in (
        (wrong, "hr.learners", "cannot connect to the postgres source"),
        (loaded_postgres, "hr.nowhere", "cannot read the learners table"),
    ):
        monkeypatch.setenv("LCSTATS_TEST_PG", url)
        with pytest.raises(InputError) as info:
            lc.load_programme(
                TableSpec(source="${LCSTATS_TEST_PG}", table=table),
                folder / "action_items.csv",
                folder / "skill_assessments.csv",
            )
        text = str(info.value)
        assert words in text and "Wr0ng" not in text and "S3cret" not in text, text


def test_a_run_from_postgres_xapi_and_excel_with_no_credential_in_any_output(
    loaded_postgres, programme, tmp_path
):
    frames, folder = programme
    items = pd.read_csv(folder / "action_items.csv", dtype=str, keep_default_na=False)
    for col in ("created_on", "due_on", "completed_on"):
        items[col] = pd.to_datetime(items[col]).dt.strftime("%d/%m/%Y").where(items[col] != "", "")
    with pd.ExcelWriter(tmp_path / "items.xlsx", engine="openpyxl") as writer:
        items.to_excel(writer, sheet_name="Action items", index=False)
    params = write_params(
        tmp_path / "mixed.yaml",
        folder,
        evaluation="mixed",
        learners={"source": "${HR_DB_URL}", "table": "hr.learners"},
        action_items={
            "path": str(tmp_path / "items.xlsx"),
            "sheet": "Action items",
            "dayfirst": True,
        },
        coaching_sessions=str(folder / "coaching_sessions.csv"),
        activity=str(folder / "xapi" / "activity.jsonl"),
        covariates=COVARIATES,
    )
    reports = tmp_path / "reports"
    env = {**os.environ, "HR_DB_URL": loaded_postgres}
    done = subprocess.run(
        [str(LCSTATS), "run", str(params), "--output-dir", str(reports)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    run_dir = Path(done.stdout.strip().splitlines()[-1])
    run = json.loads((run_dir / "run.json").read_text())
    assert run["inputs"]["learners"]["kind"] == "postgres"
    assert run["inputs"]["learners"]["source"].startswith(
        "postgres table hr.learners (postgresql://lcstats:***@"
    )
    assert run["parameters"]["learners"]["source"] == "${HR_DB_URL}"
    secrets = ("S3cret", "S3cret-pw%21x", "S3cret-pw!x")
    outputs = [
        done.stdout,
        done.stderr,
        *(p.read_bytes().decode("utf-8", "replace") for p in reports.rglob("*") if p.is_file()),
    ]
    for text in outputs:
        assert not any(s in text for s in secrets)
    listing = subprocess.run(
        [str(LCSTATS), "runs", "--output-dir", str(reports), "--json"],
        capture_output=True,
        text=True,
    )
    assert "S3cret" not in listing.stdout
    results = json.loads((run_dir / "results.json").read_text())
    assert (
        results["data_quality"]["action_items"]["notes"]["dates read day first (day/month/year)"]
        > 0
    )
    assert results["data_quality"]["activity"]["excluded"]


def test_skip_unchanged_reads_a_database_and_skips_when_its_rows_are_the_same(
    loaded_postgres, programme, tmp_path
):
    frames, folder = programme
    params = write_params(
        tmp_path / "db.yaml",
        folder,
        evaluation="db",
        learners={"source": "${HR_DB_URL}", "table": "hr.learners"},
    )
    reports = tmp_path / "reports"
    env = {**os.environ, "HR_DB_URL": loaded_postgres}
    run = [str(LCSTATS), "run", str(params), "--output-dir", str(reports), "--skip-unchanged"]
    assert subprocess.run(run, capture_output=True, env=env, timeout=300).returncode == 0
    again = subprocess.run(run, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 0 and "skipped db: unchanged since run" in again.stderr
