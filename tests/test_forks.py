"""Calls shared with forked copies of the process (`lcstats.core.forks`): the same results as
made in turn, work really done in a copy, and a copy that fails, dies or hangs costing only time."""

from __future__ import annotations

import os
import sys
import threading
import time
import warnings
from functools import partial
from pathlib import Path

import pytest

from lcstats.core import forks

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="forking is used on Linux only")
PARENT = os.getpid()


def _pid_after(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def _square(i: int) -> int:
    return i * i


def _in_a_copy() -> bool:
    return os.getpid() != PARENT


def test_results_come_in_the_order_of_the_calls():
    calls = [partial(_square, i) for i in range(40)]
    assert forks.calls_forked(calls, processes=2) == [i * i for i in range(40)]
    assert forks.calls_forked(calls, processes=1) == [i * i for i in range(40)]
    assert forks.calls_forked([]) == []


def test_calls_are_made_in_a_forked_copy_too():
    # each call takes 0.2 s: while this process makes one, the copy takes the next
    pids = forks.calls_forked([partial(_pid_after, 0.2)] * 6, processes=2)
    assert PARENT in pids
    assert set(pids) - {PARENT}, "no call was made in a copy"


def test_one_process_or_a_large_one_makes_every_call_here(monkeypatch):
    calls = [partial(_pid_after, 0.05)] * 4
    assert set(forks.calls_forked(calls, processes=1)) == {PARENT}
    monkeypatch.setattr(forks, "MAX_FORK_RSS", 1)  # this process is "too large" to fork
    assert not forks.can_fork()
    assert set(forks.calls_forked(calls, processes=2)) == {PARENT}


def _fails_in_a_copy(i: int) -> int:
    time.sleep(0.05)
    if _in_a_copy():
        raise RuntimeError("only in a copy")
    return i


def test_a_call_that_raises_in_a_copy_is_made_again_here():
    assert forks.calls_forked(
        [partial(_fails_in_a_copy, i) for i in range(8)], processes=2
    ) == list(range(8))


def _dies_in_a_copy(i: int) -> int:
    time.sleep(0.05)
    if _in_a_copy():
        os._exit(3)
    return i


def test_a_copy_that_dies_costs_only_time():
    assert forks.calls_forked([partial(_dies_in_a_copy, i) for i in range(8)], processes=2) == list(
        range(8)
    )


def _hangs_in_a_copy(i: int, note: Path) -> int:
    if _in_a_copy():
        note.write_text(str(os.getpid()))
        time.sleep(120)
    time.sleep(0.05)
    return i


def test_a_copy_that_hangs_is_stopped_and_its_calls_made_here(monkeypatch, tmp_path):
    monkeypatch.setattr(forks, "GRACE_SECONDS", 0.5)
    note = tmp_path / "copy.pid"
    start = time.monotonic()
    got = forks.calls_forked([partial(_hangs_in_a_copy, i, note) for i in range(6)], processes=2)
    assert got == list(range(6))
    assert time.monotonic() - start < 30  # not the copy's 120 s
    pid = int(note.read_text())
    assert not Path(f"/proc/{pid}").exists(), "the hung copy was not killed and reaped"


def test_an_exception_is_raised_here_with_its_own_message():
    def fails() -> int:
        raise ValueError("the call's own message")

    with pytest.raises(ValueError, match="the call's own message"):
        forks.calls_forked([partial(_square, 1), fails, partial(_square, 2)], processes=2)


def _speaks(i: int) -> int:
    time.sleep(0.1)
    if _in_a_copy():
        print(f"printed by a copy ({i})")
        warnings.warn(f"warned by a copy ({i})", UserWarning, stacklevel=1)
    return i


def test_what_a_copy_prints_and_warns_reaches_this_process(capsys):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = forks.calls_forked([partial(_speaks, i) for i in range(4)], processes=2)
    assert got == list(range(4))
    printed = capsys.readouterr().out
    copies = [str(w.message) for w in caught if "by a copy" in str(w.message)]
    assert "printed by a copy" in printed
    assert copies and all(w.startswith("warned by a copy") for w in copies)
    assert len(copies) == printed.count("printed by a copy")


def test_no_copy_is_left_behind():
    pids = forks.calls_forked([partial(_pid_after, 0.1)] * 6, processes=2)
    copies = set(pids) - {PARENT}
    assert copies
    assert not [pid for pid in copies if Path(f"/proc/{pid}").exists()]


def _where() -> tuple[int, str]:
    time.sleep(0.1)
    return os.getpid(), threading.current_thread().name


def test_large_work_runs_in_threads_and_small_work_in_forked_copies():
    from lcstats.core.threads import MIN_ROWS

    large = forks.calls_on_cores([_where] * 4, rows=MIN_ROWS)
    assert {pid for pid, _ in large} == {PARENT}
    assert any(name.startswith("lcstats-side") for _, name in large)
    small = forks.calls_on_cores([_where] * 4, rows=MIN_ROWS - 1)
    assert {pid for pid, _ in small} - {PARENT}


def _document(evaluation, diagnostics) -> str:
    import json

    from lcstats.reporting.results import results_document

    arguments = evaluation.report_arguments("test")
    arguments.pop("run_id")
    arguments["diagnostics"] = diagnostics
    return json.dumps(results_document(**arguments), sort_keys=True, default=str)


def test_diagnostics_made_in_forked_copies_equal_those_made_here(
    example_evaluation, forks_counted, monkeypatch
):
    """The example's diagnostics (below 200,000 learners: in forked copies) are the same, to
    the last digit of results.json, as with every analysis made in this process."""
    from lcstats.estimation.evaluation import diagnose_evaluation

    ev = example_evaluation
    shared = diagnose_evaluation(ev.params, ev.outcomes, ev.effects)
    assert forks_counted, "no copy was forked"
    monkeypatch.setattr(forks, "MAX_FORK_RSS", 0)  # no forking: every analysis made here
    here = diagnose_evaluation(ev.params, ev.outcomes, ev.effects)
    assert _document(ev, shared) == _document(ev, here)
    assert shared.skipped == here.skipped
