"""Work side by side on the machine's cores (`lcstats.core.threads`)."""

from __future__ import annotations

import ast
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from threadpoolctl import threadpool_info

import lcstats
from lcstats.core.threads import side_by_side, usable_cores


def _blas_threads() -> list[int]:
    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


def test_results_come_in_the_order_of_the_items_from_several_threads():
    names = set()

    def square(i):
        names.add(threading.current_thread().name)
        return i * i

    assert side_by_side(square, list(range(50)), workers=2) == [i * i for i in range(50)]
    assert all(name.startswith("lcstats-side") for name in names)


def test_one_worker_or_one_item_runs_in_the_calling_thread():
    here = threading.current_thread().name
    assert side_by_side(lambda _: threading.current_thread().name, [1, 2], workers=1) == [here] * 2
    assert side_by_side(lambda _: threading.current_thread().name, [1]) == [here]
    assert side_by_side(lambda _: 1, []) == []


def test_blas_runs_on_one_thread_meanwhile_and_is_given_back_its_threads():
    before = _blas_threads()
    assert before  # numpy's OpenBLAS is found, so the check below says something
    inside = side_by_side(lambda _: _blas_threads(), [1, 2], workers=2)
    assert inside == [[1] * len(before)] * 2
    assert _blas_threads() == before


def test_the_first_exception_in_item_order_is_raised():
    def fail(i):
        if i >= 3:
            raise ValueError(f"item {i}")
        return i

    with pytest.raises(ValueError, match="item 3"):
        side_by_side(fail, list(range(8)), workers=2)


def test_usable_cores_counts_at_least_one():
    assert usable_cores() >= 1


def test_workers_for_few_rows_is_one():
    from lcstats.core.threads import MIN_ROWS, workers_for

    assert workers_for(MIN_ROWS - 1) == 1
    assert workers_for(MIN_ROWS) == usable_cores()


@pytest.fixture(scope="module")
def sessions_programme_dir(tmp_path_factory):
    """A programme whose coaching comes from a session log (the learners table lacks it)."""
    from lcstats.data.simulate import simulate_programme, with_logs, write_programme

    sim = with_logs(simulate_programme(n_learners=300, seed=5))
    out = tmp_path_factory.mktemp("sessions")
    write_programme(sim, out)
    learners = sim.learners.drop(columns=["coached", "coaching_sessions"])
    # a long text column: the learners are the largest file, read first
    learners.assign(remarks="x" * 1000).to_csv(out / "learners.csv", index=False)
    return out


def _case_folder(case: str, small: Path, sessions: Path, tmp_path: Path) -> Path:
    """The programme of a case of `test_tables_read_side_by_side_equal_the_tables_read_in_turn`."""
    import shutil

    if case in ("valid", "with a session log"):
        return sessions if case == "with a session log" else small
    folder = tmp_path / "edited"
    shutil.copytree(small, folder)
    if case == "with problems":  # a problem in every table: reported in the tables' order
        for name, old, new in (
            ("learners.csv", ",Analyst,", ",,"),
            ("action_items.csv", ",2025-", ",not a date-"),
            ("skill_assessments.csv", ",pre,", ",early,"),
        ):
            path = folder / name
            path.write_text(path.read_text().replace(old, new, 3))
        return folder
    for name in ("action_items.csv", "skill_assessments.csv"):  # rows of unknown learners
        frame = pd.read_csv(folder / name, dtype=str, keep_default_na=False)
        extra = frame.head(5).assign(learner_id="L-nobody")
        if "item_id" in frame:
            extra["item_id"] = [f"I-nobody-{i}" for i in range(5)]
        pd.concat([frame, extra]).to_csv(folder / name, index=False)
    return folder


def _learners_first(load, monkeypatch) -> None:
    """Let the other tables be read only once the learners have been (the largest file here)."""
    learners_read, real_load = threading.Event(), load._load_table

    def ordered(table, location, options):
        if table != "learners":
            learners_read.wait(30)
            time.sleep(0.2)
        found = real_load(table, location, options)
        if table == "learners":
            learners_read.set()
        return found

    monkeypatch.setattr(load, "_load_table", ordered)


@pytest.mark.parametrize(
    "case", ["valid", "with problems", "with unknown learners", "with a session log"]
)
def test_tables_read_side_by_side_equal_the_tables_read_in_turn(
    small_programme_dir, sessions_programme_dir, tmp_path, monkeypatch, case
):
    """Read side by side, the tables, their sources and fingerprints, and the problems found
    are those read in turn; so are the fingerprints taken while another table was still being
    read, also for the tables the reading changes afterwards (rows of unknown learners left
    out; the learners and the session log, from which coaching is derived)."""
    import lcstats.data.load as load
    from lcstats.core.errors import InputError

    folder = _case_folder(case, small_programme_dir, sessions_programme_dir, tmp_path)
    sessions = folder / "coaching_sessions.csv" if case == "with a session log" else None

    def read():
        try:
            return load.load_programme(
                folder / "learners.csv",
                folder / "action_items.csv",
                folder / "skill_assessments.csv",
                coaching_sessions=sessions,
                as_of="2026-06-30",
            )
        except InputError as exc:
            return [str(p) for p in exc.problems]

    in_turn = read()
    monkeypatch.setattr(load, "SIDE_BY_SIDE_BYTES", 0)
    monkeypatch.setattr(load, "usable_cores", lambda: 2)
    calls, early = [], []
    real, fingerprints = load.prepare_schemas, load.table_fingerprints
    monkeypatch.setattr(load, "prepare_schemas", lambda *a: calls.append(a) or real(*a))
    monkeypatch.setattr(
        load,
        "table_fingerprints",
        lambda frames, *, threads=None: (
            early.extend(frames) if threads == 1 else None,
            fingerprints(frames, threads=threads),
        )[1],
    )
    if case == "with a session log":
        _learners_first(load, monkeypatch)
    together = read()
    assert calls  # the schemas were prepared for the threads
    if case == "with problems":
        assert isinstance(in_turn, list) and len(in_turn) >= 3
        assert together == in_turn
        assert not early  # no fingerprint of a table with problems
        return
    assert early  # at least the first table read while others were still being read
    for table in ("learners", "action_items", "skill_assessments"):
        pd.testing.assert_frame_equal(together.table(table), in_turn.table(table))
    assert together.sources == in_turn.sources
    assert together.excluded == in_turn.excluded
    if case == "with unknown learners":
        assert set(in_turn.excluded) == {"action_items", "skill_assessments"}
    if case == "with a session log":
        assert "learners" in early and "coaching_sessions" in together.sources


def test_an_evaluation_side_by_side_equals_the_evaluation_in_turn(example_evaluation, monkeypatch):
    """From 200,000 learners the outcomes' two tables, the effects of the two outcomes, the
    design's curves and hazard ratio, and the report's two summaries of the items and
    assessments are computed side by side: the same numbers and the same report as in turn."""
    import lcstats
    import lcstats.core.threads
    import lcstats.estimation.diagnostics as diagnostics
    from lcstats.reporting.report import build_report

    pools = []

    class Counted(lcstats.core.threads.ThreadPoolExecutor):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            pools.append(self)

    monkeypatch.setattr(lcstats.core.threads, "ThreadPoolExecutor", Counted)
    monkeypatch.setattr(lcstats.core.threads, "MIN_ROWS", 0)
    monkeypatch.setattr(lcstats.core.threads, "usable_cores", lambda: 2)
    balanced_on = []  # the diagnostics' balance starts on a thread of its own, at once
    real_balance = diagnostics.balance_from_propensity
    monkeypatch.setattr(
        diagnostics,
        "balance_from_propensity",
        lambda *a, **k: (
            balanced_on.append(threading.current_thread().name) or real_balance(*a, **k)
        ),
    )
    ev = lcstats.evaluate(example_evaluation.params)
    ref = example_evaluation
    assert len(pools) >= 5  # exclusion, outcomes, effects, diagnostics, design, report
    assert [name.split("_")[0] for name in balanced_on] == ["lcstats-balance"]
    pd.testing.assert_frame_equal(ev.outcomes.data, ref.outcomes.data, check_exact=True)
    pd.testing.assert_frame_equal(ev.effects.to_frame(), ref.effects.to_frame(), check_exact=True)
    pd.testing.assert_frame_equal(
        ev.design.completion.curves, ref.design.completion.curves, check_exact=True
    )
    assert ev.design.hazard == ref.design.hazard

    def report(e):
        return build_report(
            params=e.params,
            programme=e.programme,
            outcomes=e.outcomes,
            effects=e.effects,
            diagnostics=e.diagnostics,
            design=e.design,
            run_id="same",
        ).render()

    before = len(pools)
    side = report(ev)
    assert len(pools) == before + 1
    monkeypatch.setattr(lcstats.core.threads, "MIN_ROWS", 10**12)
    in_turn = report(ref)
    assert side == in_turn


def test_calls_side_by_side_runs_each_call_once_in_order():
    from lcstats.core.threads import MIN_ROWS, calls_side_by_side

    calls = [lambda i=i: (i, threading.current_thread().name) for i in range(4)]
    assert [i for i, _ in calls_side_by_side(calls, rows=MIN_ROWS)] == [0, 1, 2, 3]
    names = {name for _, name in calls_side_by_side(calls, rows=MIN_ROWS - 1)}
    assert names == {threading.current_thread().name}  # few rows: in turn, here


def test_large_files_are_read_largest_first_small_ones_in_the_given_order(tmp_path, monkeypatch):
    from lcstats.data import load

    files = {}
    for table, size in (("learners", 10), ("action_items", 30), ("skill_assessments", 20)):
        files[table] = tmp_path / f"{table}.csv"
        files[table].write_bytes(b"x" * size)
    assert load._read_plan(files) == (list(files), 1)  # 60 bytes: one at a time
    monkeypatch.setattr(load, "SIDE_BY_SIDE_BYTES", 50)
    monkeypatch.setattr(load, "usable_cores", lambda: 2)
    assert load._read_plan(files) == (["action_items", "skill_assessments", "learners"], 2)
    database = {**files, "learners": load.TableSpec(source="postgresql://h/db", table="t")}
    assert load._read_plan(database) == (list(files), 1)


def test_the_package_multiplies_matrices_with_np_dot_not_the_operator():
    # numpy's `@` (np.matmul) holds the interpreter lock around OpenBLAS, np.dot releases it:
    # threads side by side multiply with `@` one at a time (benchmarks/matmul_lock.py)
    root = Path(lcstats.__file__).parent
    found = [
        f"{path.relative_to(root.parent)}:{node.lineno}"
        for path in sorted(root.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.BinOp | ast.AugAssign) and isinstance(node.op, ast.MatMult)
    ]
    assert found == []
